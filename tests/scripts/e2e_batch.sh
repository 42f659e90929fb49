#!/bin/bash
# nlpc batch against nlpd on the tiny model: output in input order, ids echoed, each
# line's result equal to the same request sent alone with nlpc; per-line labels/to/
# question; a bad line gets an error line and the rest goes on; progress on stderr.
source tests/scripts/lib/e2e.bash
e2e_start

$PY - "$T/in.jsonl" <<'PYEOF'
import json, sys
texts = ["The market rallied today.", "Rain is expected tomorrow.", "A new vaccine works.",
         "The striker scored twice.", "Parliament was dissolved.", "Bake the bread slowly."]
with open(sys.argv[1], "w") as f:
    for i in range(60):
        row = {"id": "doc-%d" % i, "text": "%s (%d)" % (texts[i % len(texts)], i)}
        if i % 10 == 3:
            row["labels"] = ["weather", "food"]
        f.write(json.dumps(row) + "\n")
        if i == 20:
            f.write('{"id": "broken", "text": 5}\n')
PYEOF
rc=0
timeout 120 "$B/nlpc" --connect "$TCP" batch --task classify --labels business,sports,politics,health \
    --window 8 --progress <"$T/in.jsonl" >"$T/out.jsonl" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || e2e_fail "batch rc=$rc (one bad line: expect 1): $(cat "$T/err")"
grep -q "nlpc batch: 61 done, 1 errors" "$T/err" || e2e_fail "progress: $(cat "$T/err")"

# one by one, the same requests (each line's text and labels read by one Python, as
# "text<US>labels" lines, US the unit separator 0x1f; the texts have no US or newline)
$PY -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    text = d["text"] if isinstance(d["text"], str) else ""
    assert "\x1f" not in text and "\n" not in text
    print(text + "\x1f" + ",".join(d.get("labels", ["business", "sports", "politics", "health"])))
' "$T/in.jsonl" >"$T/in.tsv"
while IFS=$'\x1f' read -r text labels; do
    if [ -z "$text" ]; then echo '{}'; continue; fi
    timeout 60 "$B/nlpc" --connect "$IPC" --json classify --labels "$labels" "$text"
done <"$T/in.tsv" >"$T/single.jsonl"

$PY - "$T/in.jsonl" "$T/out.jsonl" "$T/single.jsonl" <<'PYEOF' || e2e_fail "batch output"
import json, sys
ins = [json.loads(l) for l in open(sys.argv[1])]
outs = [json.loads(l) for l in open(sys.argv[2])]
singles = [json.loads(l) for l in open(sys.argv[3])]
assert len(outs) == len(ins) == len(singles) == 61, (len(ins), len(outs))
for i, (a, o, s) in enumerate(zip(ins, outs, singles)):
    assert o["id"] == a["id"], (i, a, o)
    if a["id"] == "broken":
        assert o["status"] == "INVALID_ARGUMENT" and "text" in o["error"], o
        continue
    assert o["status"] == "OK", o
    assert [l["label"] for l in o["labels"]] == [l["label"] for l in s["labels"]], (o, s)
    assert all(abs(x["score"] - y["score"]) < 1e-4 for x, y in zip(o["labels"], s["labels"])), (o, s)
    if "labels" in a:
        assert sorted(l["label"] for l in o["labels"]) == ["food", "weather"], o
print("batch: 61 lines in order, ids echoed, equal to one-by-one")
PYEOF

# generation tasks and per-line overrides in batch mode
printf '%s\n' '{"id":1,"text":"The house is small.","to":"French"}' \
    '{"id":2,"text":"The house is small."}' >"$T/tr.jsonl"
timeout 60 "$B/nlpc" --connect "$TCP" batch --task translate --to German --max-new-tokens 8 \
    <"$T/tr.jsonl" >"$T/tr.out" 2>/dev/null || e2e_fail "batch translate"
fr=$(timeout 60 "$B/nlpc" --connect "$TCP" --json translate --to French --max-new-tokens 8 "The house is small.")
de=$(timeout 60 "$B/nlpc" --connect "$TCP" --json translate --to German --max-new-tokens 8 "The house is small.")
$PY -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fr, de = json.loads(sys.argv[2]), json.loads(sys.argv[3])
assert [r["id"] for r in rows] == [1, 2], rows
assert rows[0]["text"] == fr["text"] and rows[1]["text"] == de["text"], (rows, fr, de)
' "$T/tr.out" "$fr" "$de" || e2e_fail "per-line to"
printf '%s\n' '{"id":"q","text":"Paris is the capital of France.","question":"What is the capital of France?"}' |
    timeout 60 "$B/nlpc" --connect "$TCP" batch --task qa --max-new-tokens 6 >"$T/qa.out" 2>/dev/null \
    || e2e_fail "batch qa"
grep -q '"id":"q","status":"OK","answer"' "$T/qa.out" || e2e_fail "qa line: $(cat "$T/qa.out")"
# two endpoints, one of them dead: every line still answered (only connected peers get work)
for i in $(seq 12); do echo "{\"id\":$i,\"text\":\"line $i\"}"; done >"$T/two.jsonl"
timeout 60 "$B/nlpc" --connect "ipc://$T/nobody.sock,$IPC" --timeout 10000 batch --task classify \
    --labels a,b <"$T/two.jsonl" >"$T/two.out" 2>/dev/null || e2e_fail "batch with a dead endpoint"
[ "$(grep -c '"status":"OK"' "$T/two.out")" -eq 12 ] || e2e_fail "dead endpoint: $(cat "$T/two.out")"
echo "e2e_batch: ok"
