#!/bin/bash
# End to end, every task: nlpd on the tiny model; each case of e2e_cases.jsonl through
# nlpc --json (tcp and ipc), through libnlpclient (nlpc_stress --out) and through the
# Python client must equal `nlprun TASK --json` on the same input: same text / answer /
# label order, scores within 1e-4 (the daemon may batch and pad; nlprun runs alone).
source tests/scripts/lib/e2e.bash
CASES=tests/scripts/e2e_cases.jsonl
e2e_start

timeout 120 "$B/bench/nlpc_stress" --connect "$IPC" --cases "$CASES" --clients 0 \
    --out "$T/lib.jsonl" >/dev/null || e2e_fail "libnlpclient reference run"

n=0
e2e_cases_args "$CASES" >"$T/cases.args"
while IFS=$'\x1f' read -r args text; do
    ep=$TCP; [ $((n % 2)) -eq 1 ] && ep=$IPC
    eval "printf '%s' \"\$text\" | timeout 60 $B/nlprun $args --model $MODEL --json" \
        >"$T/run.$n" || e2e_fail "nlprun case $n ($args)"
    eval "timeout 60 $B/nlpc --connect $ep --json $args \"\$text\"" >"$T/nlpc.$n" \
        || e2e_fail "nlpc case $n ($args)"
    n=$((n + 1))
done <"$T/cases.args"

NLP_BUILD=$B timeout 120 $PY - "$CASES" "$T" "$TCP" <<'PYEOF' || e2e_fail "results differ"
import json, sys
sys.path.insert(0, "clients/python")
import nlpclient
cases = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
T, ep = sys.argv[2], sys.argv[3]
lib = [json.loads(l) for l in open(T + "/lib.jsonl")]
assert len(lib) == len(cases), (len(lib), len(cases))
bad = 0

def close(a, b):
    return abs(a - b) <= 1e-4 * (1 + abs(b))

def same(task, ref, got, who, i):
    global bad
    why = None
    if got.get("status", "OK") != "OK":
        why = "status %s" % got.get("status")
    elif task in ("summarize", "translate", "text2text") and got["text"] != ref["text"]:
        why = "text %r != %r" % (got["text"], ref["text"])
    elif task == "qa" and got["answer"] != ref["answer"]:
        why = "answer %r != %r" % (got["answer"], ref["answer"])
    elif task == "classify":
        gl = [(l["label"], l["score"]) for l in got["labels"]]
        rl = [(l["label"], l["score"]) for l in ref["labels"]]
        if [l for l, _ in gl] != [l for l, _ in rl] or \
                not all(close(a, b) for (_, a), (_, b) in zip(gl, rl)):
            why = "labels %r != %r" % (gl, rl)
        elif abs(sum(s for _, s in gl) - 1) > 1e-4:
            why = "label probabilities sum to %g" % sum(s for _, s in gl)
    elif not close(got["score"], ref["score"]):
        why = "score %r != %r" % (got["score"], ref["score"])
    if why:
        bad += 1
        print("case %d (%s) %s: %s" % (i, task, who, why))

with nlpclient.Client(ep, timeout_ms=60000) as c:
    for i, case in enumerate(cases):
        task = case["task"]
        ref = json.load(open("%s/run.%d" % (T, i)))
        assert ref["status"] == "OK", ref
        same(task, ref, json.load(open("%s/nlpc.%d" % (T, i))), "nlpc", i)
        same(task, ref, lib[i], "libnlpclient", i)
        kw = {k: case[k] for k in ("max_new_tokens", "num_beams") if k in case}
        if task == "translate":
            py = c.translate(case["text"], to=case["to"], from_=case.get("from"), **kw)
        elif task == "classify":
            py = c.classify(case["text"], case["labels"], **kw)
        elif task == "qa":
            py = c.qa(case["text"], case["question"], **kw)
        else:
            py = getattr(c, task)(case["text"], **kw)
        same(task, ref, py, "python", i)
print("%d cases x 3 clients compared with nlprun, %d differ" % (len(cases), bad))
sys.exit(1 if bad else 0)
PYEOF

# health and stats answer, and count what was done
"$B/nlpc" --connect "$TCP" health | grep -q "^ok model=$MODEL" || e2e_fail "health"
"$B/nlpc" --connect "$IPC" --json stats | $PY -c '
import json, sys
s = json.load(sys.stdin)["stats"]
assert s["documents"] >= 33, s       # 11 cases x (lib + nlpc + python)
assert s["responses"]["OK"] >= 33, s
' || e2e_fail "stats"
# server errors: exit 1, the code and message on stderr, the status in --json
rc=0; "$B/nlpc" --connect "$TCP" --json summarize --num-beams 999 "x" >"$T/e.json" 2>"$T/e.err" || rc=$?
[ $rc -eq 1 ] && grep -q '^nlpc: INVALID_ARGUMENT: ' "$T/e.err" \
    && grep -q '"status":"INVALID_ARGUMENT"' "$T/e.json" || e2e_fail "bad option: rc=$rc $(cat "$T/e.err")"
rc=0; "$B/nlpc" --connect "$IPC" translate --to klingon "x" 2>"$T/e.err" || rc=$?
[ $rc -eq 1 ] && grep -q "klingon" "$T/e.err" || e2e_fail "unknown language: rc=$rc"
NLP_BUILD=$B $PY - "$TCP" <<'PYEOF' || e2e_fail "python client error path"
import sys
sys.path.insert(0, "clients/python")
import nlpclient
with nlpclient.Client(sys.argv[1], timeout_ms=30000) as c:
    try:
        c.translate("x", to="klingon")
        raise SystemExit("no NlpError")
    except nlpclient.NlpError as e:
        assert e.code == "INVALID_ARGUMENT" and "klingon" in e.message, e
PYEOF
echo "e2e_tasks: ok"
