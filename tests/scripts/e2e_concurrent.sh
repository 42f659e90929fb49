#!/bin/bash
# Batching is invisible: 8 concurrent clients (threads, one libnlpclient client each, 4
# requests in flight each) x 25 mixed-task requests get the same results as the same
# cases sent one by one; nothing is lost, every reply reaches its own sender exactly once
# (nlpc_stress checks ids per client). Then the same through 8 nlpc processes.
source tests/scripts/lib/e2e.bash
CASES=tests/scripts/e2e_cases.jsonl
e2e_start

timeout 150 "$B/bench/nlpc_stress" --connect "$TCP" --cases "$CASES" --clients 8 \
    --requests 25 --window 4 --timeout 60000 >"$T/stress.out" 2>&1 \
    || { cat "$T/stress.out" >&2; e2e_fail "concurrent clients"; }
cat "$T/stress.out"
grep -q "200 equal, 0 wrong, 0 lost" "$T/stress.out" || e2e_fail "not 200 equal"

# The daemon did batch: fewer engine batches than documents.
"$B/nlpc" --connect "$TCP" --json stats | $PY -c '
import json, sys
s = json.load(sys.stdin)["stats"]
print("daemon: %d documents in %d batches (mean size %.2f)" %
      (s["documents"], s["batches"], s["mean_batch_size"]))
assert s["documents"] >= 211, s
assert s["mean_batch_size"] > 1.0, s
' || e2e_fail "stats after the concurrent run"

# 8 separate processes (one socket each) on the same classify input: same labels.
pids=()
for i in $(seq 8); do
    timeout 60 "$B/nlpc" --connect "$IPC" --json classify --labels "sports,politics,science" \
        "Case number $i: the match ended in a draw." >"$T/p.$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || e2e_fail "nlpc process $p failed"; done
for i in $(seq 8); do
    timeout 60 "$B/nlpc" --connect "$IPC" --json classify --labels "sports,politics,science" \
        "Case number $i: the match ended in a draw." >"$T/one.$i" || e2e_fail "nlpc one by one $i"
done
$PY -c '
import json, sys
for i in range(1, 9):
    a = json.load(open("%s/p.%d" % (sys.argv[1], i)))
    b = json.load(open("%s/one.%d" % (sys.argv[1], i)))
    if [l["label"] for l in a["labels"]] != [l["label"] for l in b["labels"]] or \
            not all(abs(x["score"] - y["score"]) < 1e-4 for x, y in zip(a["labels"], b["labels"])):
        sys.exit("process %d differs from its one-by-one result: %s %s" % (i, a, b))
' "$T" || e2e_fail "a process differs from its one-by-one result"
echo "e2e_concurrent: ok"
