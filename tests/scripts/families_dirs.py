#!/usr/bin/python3
"""Model directories for the family end-to-end tests (tests/scripts/families_*.sh).

usage: families_dirs.py OUT

The tiny family checkpoints (tests/data/families/models) have 128 ids; the real
tokenizers have tens of thousands. Each directory made here pairs a tiny checkpoint
(symlinked) with a small tokenizer of the family's kind whose ids all fit:

  OUT/bart            tiny-bart      + byte-level BPE (vocab.json + merges.txt, 128 ids)
  OUT/bart-mnli       tiny-bart-mnli + the same BPE
  OUT/opus-mt-en-mg   tiny-marian    + opus-mt-en-mg's source/target.spm, vocab.json cut to
                                       ids < 127 (other pieces are <unk>), <pad> = 127; the
                                       pair comes from the directory's name
  OUT/nllb            tiny-m2m100    + a SentencePiece BPE of 80 pieces trained here
                                       (spm_train), NllbTokenizer, 3 language codes
  OUT/mbart           tiny-mbart     + the same model, MBart50Tokenizer, 3 language codes
  OUT/t5              tests/data/models/tiny-flan (T5 as before)

Deterministic: the same files every run (spm_train on a fixed corpus, one thread)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAM = os.path.join(REPO, "tests/data/families")
WORDS = ["the", "cat", "sat", "on", "mat", "this", "example", "is", "sports", "politics",
         "dog", "ran", "home", "a", "good", "day", "business", "science", "news", "game"]


def link_model(src, out):
    os.makedirs(out, exist_ok=True)
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        p = os.path.join(out, f)
        if not os.path.exists(p):
            os.symlink(os.path.join(src, f), p)


def bart_bpe(out):
    """Byte-level BPE whose ids are < 128: the specials, letters, space (G-dot), '.', ','
    and merges building WORDS with and without their leading space."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in "\u0120" + "abcdefghijklmnopqrstuvwxyz" + "TE.,":
        vocab[ch] = len(vocab)
    merges = []
    for w in WORDS:
        for word in (w, "\u0120" + w):
            cur = word[0]
            for ch in word[1:]:
                if len(vocab) >= 127:
                    break
                tok = cur + ch
                if tok not in vocab:
                    merges.append("%s %s" % (cur, ch))
                    vocab[tok] = len(vocab)
                cur = tok
    vocab["<mask>"] = 127
    assert max(vocab.values()) == 127 and len(set(vocab.values())) == len(vocab)
    with open(os.path.join(out, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def marian(out):
    src = os.path.join(FAM, "tokenizers/marian-en-mg")
    for f in ("source.spm", "target.spm"):
        p = os.path.join(out, f)
        if not os.path.exists(p):
            os.symlink(os.path.join(src, f), p)
    full = json.load(open(os.path.join(src, "vocab.json")))
    vocab = {k: v for k, v in full.items() if v < 127 and k != "<pad>"}
    vocab["<pad>"] = 127
    with open(os.path.join(out, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)


def spm(work):
    model = os.path.join(work, "tiny-spm-bpe.model")
    if os.path.exists(model):
        return model
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w") as f:
        for i in range(200):
            f.write(" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(8)) + ".\n")
    subprocess.run(["spm_train", "--input=" + corpus, "--model_prefix=" +
                    os.path.join(work, "tiny-spm-bpe"), "--model_type=bpe",
                    "--vocab_size=80", "--character_coverage=1.0", "--num_threads=1",
                    "--minloglevel=2"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return model


def many(out, model, cls, codes):
    p = os.path.join(out, "sentencepiece.bpe.model")
    if not os.path.exists(p):
        os.symlink(model, p)
    cfg = {"tokenizer_class": cls, "src_lang": codes[0], "tgt_lang": None,
           "additional_special_tokens": codes}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)


def main():
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    m = lambda name: os.path.join(FAM, "models", name)
    for d, src in (("bart", "tiny-bart"), ("bart-mnli", "tiny-bart-mnli")):
        link_model(m(src), os.path.join(out, d))
        bart_bpe(os.path.join(out, d))
    link_model(m("tiny-marian"), os.path.join(out, "opus-mt-en-mg"))
    marian(os.path.join(out, "opus-mt-en-mg"))
    model = spm(out)
    link_model(m("tiny-m2m100"), os.path.join(out, "nllb"))
    many(os.path.join(out, "nllb"), model, "NllbTokenizer", ["eng_Latn", "deu_Latn", "fra_Latn"])
    link_model(m("tiny-mbart"), os.path.join(out, "mbart"))
    many(os.path.join(out, "mbart"), model, "MBart50Tokenizer", ["en_XX", "de_DE", "fr_XX"])
    t5 = os.path.join(out, "t5")
    if not os.path.exists(t5):
        os.symlink(os.path.join(REPO, "tests/data/models/tiny-flan"), t5)


if __name__ == "__main__":
    main()
