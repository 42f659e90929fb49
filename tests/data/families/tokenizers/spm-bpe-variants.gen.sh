#!/bin/sh
# Writes spm-bpe-variants.golden.json (next to this script): what the sentencepiece
# library itself (Debian's spm_encode / spm_decode 0.1.97) gives for the SentencePiece-BPE
# paths spm-bpe.golden.json does not reach, on its one-line texts plus a few that reach
# the user-defined pieces:
#   bytes:  spm-bpe-bytes/spm-bpe-bytes.model, a BPE model trained here on those texts
#           with byte fallback, user-defined <sep>, xyz and ▁qq, identity normalisation
#           and 98% character coverage (so unknown characters become <0xNN> pieces);
#   unused: spm-bpe/spm-bpe.model with every merged piece whose id is a multiple of 5
#           marked UNUSED (spm_encode --vocabulary without them, which is what a model
#           file with those pieces UNUSED does): merges reaching them are split back.
# Run by hand from the repository root (needs spm_train, spm_encode, spm_decode from
# Debian's sentencepiece package and python3); not run by make.
set -eu
D=tests/data/families/tokenizers
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
python3 - "$D" "$T" <<'EOF'
import json, sys
d, t = sys.argv[1], sys.argv[2]
g = json.load(open(d + "/spm-bpe.golden.json", encoding="utf-8"))
texts = [c["text"] for c in g["cases"] if not any(ch in c["text"] for ch in "\n\r\x00")]
texts += ["a<sep>b xyz", "\u2581qq qq", "xyzxyz<sep><sep>", "<sep>", " xyz ",
          "hello\u2581qq world", "emoji \U0001F600\U0001F44D\U0001F3FD end",
          "\u65e5\u672c\u8a9e", "tab\tsep<sep>x\u00e9"]
open(t + "/texts.txt", "w", encoding="utf-8").write("\n".join(texts) + "\n")
open(t + "/corpus.txt", "w", encoding="utf-8").write(
    ("\n".join(x for x in texts if x.strip()) + "\n") * 3)
pieces = [l.split("\t")[0] for l in open(d + "/spm-bpe/spm-bpe.vocab", encoding="utf-8")]
unused = [i for i in range(3, len(pieces)) if i % 5 == 0 and len(pieces[i]) > 1]
with open(t + "/vocab.txt", "w", encoding="utf-8") as f:
    for i, p in enumerate(pieces):
        if i >= 3 and i not in unused:
            f.write(p + "\t1\n")
json.dump(unused, open(t + "/unused.json", "w"))
EOF
(cd "$T" && spm_train --input=corpus.txt --model_prefix=spm-bpe-bytes --model_type=bpe \
    --vocab_size=1200 --character_coverage=0.98 --byte_fallback=true \
    --user_defined_symbols='<sep>,xyz,▁qq' --normalization_rule_name=identity \
    --num_threads=1 --minloglevel=2)
cp "$T/spm-bpe-bytes.model" "$D/spm-bpe-bytes/spm-bpe-bytes.model"
M=$D/spm-bpe/spm-bpe.model
MB=$D/spm-bpe-bytes/spm-bpe-bytes.model
spm_encode --model="$MB" --output_format=id <"$T/texts.txt" >"$T/bytes.ids"
spm_decode --model="$MB" --input_format=id <"$T/bytes.ids" >"$T/bytes.dec"
spm_encode --model="$M" --output_format=id --vocabulary="$T/vocab.txt" \
    <"$T/texts.txt" >"$T/unused.ids"
spm_decode --model="$M" --input_format=id <"$T/unused.ids" >"$T/unused.dec"
python3 - "$D" "$T" <<'EOF'
import json, sys
d, t = sys.argv[1], sys.argv[2]
rd = lambda n: open(t + "/" + n, encoding="utf-8").read().split("\n")[:-1]
texts = rd("texts.txt")
ids = lambda n: [[int(x) for x in l.split()] for l in rd(n)]
out = {"generator": "spm_train/spm_encode/spm_decode 0.1.97 (Debian), spm-bpe-variants.gen.sh",
       "bytes_model": "spm-bpe-bytes/spm-bpe-bytes.model", "unused_model": "spm-bpe/spm-bpe.model",
       "unused_pieces": json.load(open(t + "/unused.json")),
       "cases": [{"text": x, "bytes_ids": a, "bytes_decoded": b, "unused_ids": c,
                  "unused_decoded": e}
                 for x, a, b, c, e in zip(texts, ids("bytes.ids"), rd("bytes.dec"),
                                          ids("unused.ids"), rd("unused.dec"))]}
assert len(out["cases"]) == len(texts)
with open(d + "/spm-bpe-variants.golden.json", "w", encoding="utf-8") as f:
    f.write("{" + ", ".join('"%s": %s' % (k, json.dumps(v, ensure_ascii=False))
                            for k, v in out.items() if k != "cases") + ',\n "cases": [\n')
    f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in out["cases"]) + "]}\n")
print(len(texts), "cases")
EOF
