#!/bin/bash
# nlprun generate / logits against the golden data (DESIGN.md command contracts):
# greedy and beam lines on both tiny models, logits order, usage and error exit codes.
set -u
B=${NLP_BUILD:-build}
NLPRUN=$B/nlprun
PY=/usr/bin/python3
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
TMP=$(mktemp -d /tmp/engine_nlprun.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
nb=0   # beam outputs, compared with the golden lines by one Python at the end

for model in tiny-t5 tiny-flan; do
    G=tests/data/golden/$model.json
    M=tests/data/models/$model
    prev=
    # case name, ids, greedy max_new, greedy tokens, beam params + expected lines (one
    # row per beam setting: a case's greedy and logits checks run on its first row)
    while IFS=$'\t' read -r name ids gmax gtok bargs blines; do
        if [ "$name" != "$prev" ]; then
            prev=$name
            out=$("$NLPRUN" generate --model "$M" --ids "$ids" --max-new-tokens "$gmax" --threads 1) ||
                { bad "$model/$name greedy exit"; continue; }
            [ "${out#*$'\t'}" = "$gtok" ] || bad "$model/$name greedy: got '${out#*$'\t'}' want '$gtok'"
            [[ "${out%%$'\t'*}" =~ ^-[0-9]+\.[0-9]{6}$ ]] && [[ "$out" != *$'\n'* ]] ||
                bad "$model/$name greedy score format: $out"
            # logits at the start position: the argmax is the first greedy token
            top=$("$NLPRUN" logits --model "$M" --ids "$ids" --decoder-ids 0 --top 5) || { bad "$model/$name logits exit"; continue; }
            mapfile -t tl <<<"$top"
            [ "${#tl[@]}" = 5 ] || bad "$model/$name logits: not 5 lines"
            [ "${tl[0]%%$'\t'*}" = "${gtok%% *}" ] || bad "$model/$name logits top id"
            sort -t$'\t' -k2,2 -g -r -c <<<"$top" 2>/dev/null || bad "$model/$name logits not sorted"
        fi
        # shellcheck disable=SC2086
        "$NLPRUN" generate --model "$M" --ids "$ids" $bargs >"$TMP/got.$nb" || { bad "$model/$name beam exit"; continue; }
        tr '|' '\n' <<<"$blines" >"$TMP/want.$nb"
        echo "$model/$name beam ($bargs)" >"$TMP/what.$nb"
        nb=$((nb + 1))
    done < <($PY - "$G" <<'PYEOF'
import json, sys
g = json.load(open(sys.argv[1]))
for c in g["cases"]:
    ids = ",".join(map(str, c["input_ids"]))
    gr = c["greedy"]
    for b in c["beam"]:
        p = b["params"]
        args = "--num-beams %d --num-return %d --max-new-tokens %d --length-penalty %s" % (
            p["num_beams"], p["num_beams"], p["max_new_tokens"], p["length_penalty"])
        if "no_repeat_ngram_size" in p: args += " --no-repeat-ngram-size %d" % p["no_repeat_ngram_size"]
        if "min_new_tokens" in p: args += " --min-new-tokens %d" % p["min_new_tokens"]
        lines = "|".join("%.6f\t%s" % (h["score"], " ".join(map(str, h["tokens"]))) for h in b["hypotheses"])
        print("\t".join([c["name"], ids, str(gr["max_new_tokens"]), " ".join(map(str, gr["tokens"])), args, lines]))
PYEOF
)
done
[ "$nb" = 24 ] || bad "$nb beam cases run, the golden files have 24"
$PY - "$TMP" "$nb" <<'PYEOF' || fail=1
import sys
d, n, bad = sys.argv[1], int(sys.argv[2]), 0
for i in range(n):
    got = [l.split("\t") for l in open("%s/got.%d" % (d, i)).read().splitlines()]
    want = [l.split("\t") for l in open("%s/want.%d" % (d, i)).read().splitlines()]
    ok = len(got) == len(want) and all(g[1] == w[1] and abs(float(g[0]) - float(w[0])) <= 1e-3 for g, w in zip(got, want))
    if not ok:
        bad += 1
        print("FAIL:", open("%s/what.%d" % (d, i)).read().strip(), "\ngot", got, "\nwant", want, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

M=tests/data/models/tiny-t5
# sampling: same seed, same lines; top-k 1 equals greedy
a=$("$NLPRUN" generate --model $M --ids 37,32099,1 --sample --seed 5 --top-k 50 --num-return 3 --max-new-tokens 10)
b=$("$NLPRUN" generate --model $M --ids 37,32099,1 --sample --seed 5 --top-k 50 --num-return 3 --max-new-tokens 10)
[ -n "$a" ] && [ "$a" = "$b" ] || bad "seeded sampling not reproducible"
[ "$(wc -l <<<"$a")" = 3 ] || bad "--num-return 3 sampling: not 3 lines"
g=$("$NLPRUN" generate --model $M --ids 37,32099,1 --max-new-tokens 10)
s=$("$NLPRUN" generate --model $M --ids 37,32099,1 --max-new-tokens 10 --sample --top-k 1 --seed 9)
[ "$g" = "$s" ] || bad "top-k 1 sampling differs from greedy"

# usage and errors
"$NLPRUN" generate --help | grep -q -- --num-beams || bad "generate --help"
"$NLPRUN" logits --help | grep -q -- --decoder-ids || bad "logits --help"
"$NLPRUN" generate --model $M >/dev/null 2>&1; [ $? = 2 ] || bad "missing --ids not exit 2"
"$NLPRUN" generate --model $M --ids 1,x >/dev/null 2>&1; [ $? = 2 ] || bad "bad --ids not exit 2"
"$NLPRUN" generate --model $M --ids 1 --bogus >/dev/null 2>&1; [ $? = 2 ] || bad "unknown option not exit 2"
err=$("$NLPRUN" generate --model /nonexistent --ids 1 2>&1 >/dev/null); [ $? = 1 ] || bad "bad model not exit 1"
grep -q nonexistent <<<"$err" || bad "bad model message: $err"
err=$("$NLPRUN" generate --model $M --ids 1,99999 2>&1 >/dev/null); [ $? = 1 ] || bad "id out of vocab not exit 1"
err=$("$NLPRUN" logits --model $M --ids 1 --decoder-ids 0,40000 2>&1 >/dev/null); [ $? = 1 ] || bad "logits bad decoder id not exit 1"
exit $fail
