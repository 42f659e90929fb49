#!/usr/bin/env bash
# The nlprun contracts on every family (issue 15): `nlprun generate` applies the model
# directory's generation config (forced first/last tokens, bad words) with no option and
# gives transformers' greedy ids and best beam; `--early-stopping` reaches beam search;
# `nlprun logits` on a sequence-classification checkpoint prints LABEL<TAB>logit per class
# in class order, within 1e-4 of transformers.
set -euo pipefail
B=${NLP_BUILD:-build}
export NLPRUN=$B/nlprun M=tests/data/families/models
/usr/bin/python3 - <<'PY'
import json, os, subprocess, sys
nlprun, M = os.environ["NLPRUN"], os.environ["M"]
fail = 0
def run(*args):
    return subprocess.run([nlprun, *args, "--threads", "1"], check=True, capture_output=True,
                          text=True).stdout.splitlines()
for m in ["tiny-bart", "tiny-marian", "tiny-m2m100", "tiny-mbart", "tiny-t5-es"]:
    g = json.load(open(f"{M}/{m}/golden.json"))
    for c in g["cases"][:3]:
        ids = ",".join(map(str, c["input_ids"]))
        got = run("generate", "--model", f"{M}/{m}", "--ids", ids,
                  "--max-new-tokens", str(c["greedy"]["max_new_tokens"]))
        want = " ".join(map(str, c["greedy"]["tokens"]))
        if got[0].split("\t")[1] != want:
            print(f"FAIL {m} {c['name']} greedy: {got[0]!r} != {want!r}"); fail += 1
        for b in c["beam"][:2] + c["beam"][5:6]:
            p = b["params"]
            es = p["early_stopping"]
            es = es if isinstance(es, str) else ("true" if es else "false")
            args = ["--num-beams", str(p["num_beams"]), "--max-new-tokens", str(p["max_new_tokens"]),
                    "--length-penalty", str(p["length_penalty"]), "--early-stopping", es,
                    "--num-return", str(p["num_return_sequences"])]
            if "no_repeat_ngram_size" in p: args += ["--no-repeat-ngram-size", str(p["no_repeat_ngram_size"])]
            got = run("generate", "--model", f"{M}/{m}", "--ids", ids, *args)
            for line, h in zip(got, b["hypotheses"]):
                score, toks = line.split("\t")
                if toks != " ".join(map(str, h["tokens"])) or abs(float(score) - h["score"]) > 1e-4:
                    print(f"FAIL {m} {c['name']} beam {p}: {line!r} vs {h['tokens']} {h['score']}"); fail += 1
            if len(got) != len(b["hypotheses"]):
                print(f"FAIL {m} {c['name']}: {len(got)} hypotheses"); fail += 1
g = json.load(open(f"{M}/tiny-bart-mnli/golden.json"))
for c in g["cases"]:
    got = run("logits", "--model", f"{M}/tiny-bart-mnli", "--ids", ",".join(map(str, c["input_ids"])))
    labels = [l.split("\t")[0] for l in got]
    vals = [float(l.split("\t")[1]) for l in got]
    if labels != c["labels"] or max(abs(a - b) for a, b in zip(vals, c["logits"])) > 1e-4:
        print(f"FAIL mnli {c['name']}: {got} vs {c['labels']} {c['logits']}"); fail += 1
print("engine_families_nlprun:", "ok" if not fail else f"{fail} failure(s)")
sys.exit(1 if fail else 0)
PY
