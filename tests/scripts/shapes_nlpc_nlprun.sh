#!/bin/bash
# nlprun and nlpc print the same shapes for the same result (issue 21): every task on the
# tiny model, once through nlprun and once through nlpd + nlpc, readable and --json.
# Readable: the same bytes. JSON: nlpc's object less the keys nlprun has not (the
# request's id and its timings) is nlprun's, byte for byte: the same keys in the same
# order, each with the same type and formatting (both print common/cm_json.c's
# cm_json_result; the readable lines are its cm_result_print). A task error has the same
# shape too ({"status", "error"}).
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; exit 1; }
M=tests/data/models/tiny-flan

write_conf ""
start_daemon
TEXT="The museum opened in 1901. It holds paintings and old maps of the city."
n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    eval "args=($line)"
    printf '%s' "$TEXT" | timeout 60 "$B/nlprun" "${args[@]}" --model "$M" >"$TMP/run.$n" \
        || fail "nlprun $line"
    printf '%s' "$TEXT" | timeout 60 "$B/nlprun" "${args[@]}" --model "$M" --json \
        >"$TMP/run.$n.json" || fail "nlprun $line --json"
    timeout 60 "$B/nlpc" --connect "$IPC" "${args[@]}" "$TEXT" >"$TMP/nlpc.$n" || fail "nlpc $line"
    timeout 60 "$B/nlpc" --connect "$IPC" --json "${args[@]}" "$TEXT" >"$TMP/nlpc.$n.json" \
        || fail "nlpc --json $line"
    [ -s "$TMP/run.$n" ] || fail "nlprun $line printed nothing"
    cmp -s "$TMP/run.$n" "$TMP/nlpc.$n" ||
        fail "$line: readable output differs: nlprun '$(cat "$TMP/run.$n")', nlpc '$(cat "$TMP/nlpc.$n")'"
    echo "$line" >"$TMP/args.$n"
    n=$((n + 1))
done <<'EOF'
summarize --max-new-tokens 8
summarize --max-new-tokens 6 --num-beams 2 --hypotheses
translate --to de --from English --max-new-tokens 6
classify --labels "art, history,sports"
classify --labels art,history --multi-label
qa --question "When did the museum open?" --max-new-tokens 4
text2text --max-new-tokens 5
text2text --max-new-tokens 5 --num-beams 2 --num-return 2 --hypotheses
summarize --max-new-tokens 6 --num-beams 3 --num-return 2
EOF

# A task error: nlprun exits 1 and nlpc 1, both with the object on stdout.
printf '%s' "$TEXT" | "$B/nlprun" translate --to Klingon --model "$M" --json >"$TMP/run.$n.json" 2>/dev/null
[ $? -eq 1 ] || fail "nlprun translate --to Klingon: not exit 1"
"$B/nlpc" --connect "$IPC" --json translate --to Klingon "$TEXT" >"$TMP/nlpc.$n.json" 2>/dev/null
[ $? -eq 1 ] || fail "nlpc translate --to Klingon: not exit 1"
echo "translate --to Klingon (error)" >"$TMP/args.$n"
n=$((n + 1))

$PY - "$TMP" "$n" <<'PYEOF' || fail "JSON shapes differ"
import json, re, sys
T, n = sys.argv[1], int(sys.argv[2])
bad = 0
for i in range(n):
    args = open("%s/args.%d" % (T, i)).read().strip()
    raw_run = open("%s/run.%d.json" % (T, i)).read()
    raw_nlpc = open("%s/nlpc.%d.json" % (T, i)).read()
    run, nlpc = json.loads(raw_run), json.loads(raw_nlpc)
    # the keys only nlpc has: the request's id and timings, nothing else
    extra = [k for k in nlpc if k not in run]
    missing = [k for k in run if k not in nlpc]
    why = None
    if extra != ["id", "timings"] or missing:
        why = "keys: nlpc alone %s, nlprun alone %s" % (extra, missing)
    else:
        for k in run:   # every shared key: equal value and type (bool is not a number)
            if run[k] != nlpc[k] or type(run[k]) is not type(nlpc[k]):
                why = "%r: nlprun %r, nlpc %r" % (k, run[k], nlpc[k])
                break
    if not why and list(run) != [k for k in nlpc if k in run]:
        why = "order: nlprun %s, nlpc %s" % (list(run), list(nlpc))
    if not why:
        # the same bytes: nlpc's line is nlprun's with the id first and the timings last
        m = re.fullmatch(r'\{"id":\d+,(.*),"timings":\{[^{}]*\}\}', raw_nlpc.strip(), re.S)
        if not m or "{" + m.group(1) + "}" != raw_run.strip():
            why = "bytes: nlprun %s, nlpc %s" % (raw_run.strip(), raw_nlpc.strip())
    if why:
        bad += 1
        print("%s: %s" % (args, why))
    else:
        print("ok  %-60s %s" % (args, raw_run.strip()[:70]))
sys.exit(1 if bad else 0)
PYEOF
stop_daemon
echo "shapes_nlpc_nlprun: nlprun and nlpc print the same readable and JSON shapes ($n cases)"
