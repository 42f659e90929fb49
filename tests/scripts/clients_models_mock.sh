#!/bin/bash
# Model selection in the clients against mock_nlpd.py (no model, no daemon): nlpc --model
# on a task and in batch (a line's "model" over the option), UNKNOWN_MODEL printed with
# its message and exit 1, `nlpc models` readable and --json, health's loading, and the
# Python client (library and CLI) giving the same as nlpc. The mock echoes the model a
# request names after its text and counts the documents each model was sent.
set -euo pipefail
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nlpc-models.XXXXXX)
EP="ipc://$T/a.sock"
EP2="ipc://$T/b.sock"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

NLP_BUILD=$B $PY tests/scripts/mock_nlpd.py "$EP" 60 >"$T/m1.out" 2>"$T/m1.err" &
PIDS+=($!)
MOCK_LOADING=1 NLP_BUILD=$B $PY tests/scripts/mock_nlpd.py "$EP2" 60 >"$T/m2.out" 2>"$T/m2.err" &
PIDS+=($!)
for _ in $(seq 100); do
    grep -q ready "$T/m1.out" 2>/dev/null && grep -q ready "$T/m2.out" 2>/dev/null && break
    sleep 0.05
done
grep -q ready "$T/m1.out" && grep -q ready "$T/m2.out" || fail "mocks did not start: $(cat "$T"/m*.err)"

NLPC="$B/nlpc --connect $EP --timeout 5000"
PYC="$PY clients/python/nlpclient.py --connect $EP --timeout 5000"
export NLP_BUILD=$B

# ---- --model on one-shot tasks: the request carries it ----
out=$($NLPC --model mock-marian translate --to de "abc")
[ "$out" = "translate|de|cba|mock-marian" ] || fail "translate --model: '$out'"
out=$($NLPC summarize --model mock-t5 "hello")
[ "$out" = "summarize||olleh|mock-t5" ] || fail "summarize --model: '$out'"
out=$($NLPC summarize "hello")
[ "$out" = "summarize||olleh" ] || fail "no --model sends none: '$out'"
rc=0; $NLPC --model "" summarize x 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "model's name" "$T/e" || fail "--model '': rc=$rc $(cat "$T/e")"

# ---- UNKNOWN_MODEL: its name, the daemon's message, exit 1 ----
rc=0; $NLPC --model nope summarize "x" >"$T/o" 2>"$T/e" || rc=$?
[ $rc -eq 1 ] || fail "unknown model: rc=$rc"
grep -qx "nlpc: UNKNOWN_MODEL: no model named 'nope' (loaded: mock-t5, mock-marian)" "$T/e" \
    || fail "unknown model message: $(cat "$T/e")"
[ ! -s "$T/o" ] || fail "unknown model printed a result: $(cat "$T/o")"
rc=0; $NLPC --json --model nope summarize "x" >"$T/o" 2>/dev/null || rc=$?
[ $rc -eq 1 ] && grep -q '"status":"UNKNOWN_MODEL","error":"no model named' "$T/o" \
    || fail "unknown model --json: rc=$rc $(cat "$T/o")"
rc=0; $PYC --model nope summarize "x" >/dev/null 2>"$T/pe" || rc=$?
[ $rc -eq 1 ] && grep -q "^nlpclient: UNKNOWN_MODEL: no model named 'nope'" "$T/pe" \
    || fail "python unknown model: rc=$rc $(cat "$T/pe")"

# ---- batch: --model for every line, a line's "model" first ----
{
    echo '{"id":1,"text":"ab"}'
    echo '{"id":2,"text":"cd","model":"mock-marian"}'
    echo '{"id":3,"text":"ef","model":null}'
    echo '{"id":4,"text":"gh","model":5}'
    echo '{"id":5,"text":"ij","model":"nope"}'
} >"$T/in.jsonl"
rc=0; $NLPC batch --task translate --to de --model mock-t5 <"$T/in.jsonl" >"$T/out.jsonl" \
    2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "batch rc=$rc: $(cat "$T/err")"
$PY - "$T/out.jsonl" <<'PYEOF' || fail "batch models: $(cat "$T/out.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == [1, 2, 3, 4, 5], rows
assert rows[0]["text"] == "translate|de|ba|mock-t5", rows[0]
assert rows[1]["text"] == "translate|de|dc|mock-marian", rows[1]
assert rows[2]["text"] == "translate|de|fe|mock-t5", rows[2]       # null: the option's
assert rows[3] == {"id": 4, "status": "INVALID_ARGUMENT",
                   "error": "\"model\" must be a string"}, rows[3]
assert rows[4]["status"] == "UNKNOWN_MODEL" and "'nope'" in rows[4]["error"], rows[4]
PYEOF
out=$(echo '{"text":"xy","model":"mock-marian"}' | $NLPC batch --task summarize)
[ "$out" = '{"line":1,"status":"OK","text":"summarize||yx|mock-marian","score":0,"input_tokens":2,"output_tokens":3,"truncated":false}' ] \
    || fail "batch line model without --model: $out"

# ---- nlpc models: a block per model; --json; the counts moved with the requests ----
m=$($NLPC models) || fail "nlpc models exit $?"
printf '%s\n' "$m" >"$T/models.txt"
$PY - "$T/models.txt" <<'PYEOF' || fail "nlpc models: $m"
import sys
blocks = open(sys.argv[1]).read().strip("\n").split("\n\n")
assert len(blocks) == 2, blocks
a = dict(l.split(None, 1) for l in blocks[0].splitlines())
b = dict(l.split(None, 1) for l in blocks[1].splitlines())
assert a == {"model": "mock-t5", "path": "/srv/models/flan-t5-small", "family": "t5",
             "weights": "f32", "tasks": "summarize translate classify qa text2text",
             "languages": "en de fr ro", "memory": "307.1 MiB", "requests": "3",
             "state": "serving"}, a
assert b["model"] == "mock-marian" and b["family"] == "marian" and b["weights"] == "bf16", b
assert b["tasks"] == "translate" and b["languages"] == "en de", b
assert b["memory"] == "143.1 MiB" and b["requests"] == "3" and b["state"] == "serving", b
PYEOF
j=$($NLPC --json models) || fail "nlpc --json models exit $?"
echo "$j" | $PY -c '
import json, sys
h = json.load(sys.stdin)["health"]
assert h["loading"] is False and h["ok"] is True, h
m = h["models"]
assert [x["name"] for x in m] == ["mock-t5", "mock-marian"], m
assert list(m[0]) == ["name", "path", "model_type", "weights", "tasks", "languages",
                      "resident_bytes", "requests", "state"], m[0]
assert m[0]["resident_bytes"] == 307 * 1024 * 1024 + 52429 and m[1]["requests"] == 3, m
' || fail "nlpc --json models: $j"

# ---- the Python client: the same shapes, byte for byte ----
# One Python runs each case as nlpc (a process) and then as the Python CLI (its main(), in
# this process: the stdout and exit code `nlpclient.py ARGS` gives), in turn as before.
$PY - "$B/nlpc" "$EP" <<'PYEOF' || fail "python vs nlpc"
import contextlib, io, re, shlex, subprocess, sys
sys.path.insert(0, "clients/python")
import nlpclient
nlpc, ep = sys.argv[1], sys.argv[2]

def norm(out):   # the ids and uptimes differ; requests counts moved between the two calls
    out = "\n".join(re.sub(r"uptime=[0-9.]*s", "uptime=Ns", re.sub(r'"id":[0-9]*', '"id":N', l, 1), 1)
                    for l in out.split("\n"))
    out = "\n".join(re.sub(r"^requests .*", "requests N", re.sub(r'"requests":[0-9]*', '"requests":N', l))
                    for l in out.split("\n"))
    return out.rstrip("\n")   # as $(...) keeps it

for args in ["models", "--json models", "--json health", "health",
             "--model mock-marian translate --to de abc", "--json --model mock-t5 qa --question q c"]:
    argv = ["--connect", ep, "--timeout", "5000"] + shlex.split(args)
    p = subprocess.run([nlpc] + argv, stdout=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("FAIL: nlpc %s: exit %d" % (args, p.returncode))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = nlpclient.main(argv)
    if rc != 0:
        sys.exit("FAIL: python %s: exit %d" % (args, rc))
    a, b = norm(p.stdout.decode()), norm(out.getvalue())
    if a != b:
        sys.exit("FAIL: python vs nlpc for '%s':\n%s\n---\n%s" % (args, a, b))
PYEOF
$PY - "$EP" <<'PYEOF' || fail "python library"
import sys
sys.path.insert(0, "clients/python")
from nlpclient import Client, NlpError
with Client(sys.argv[1], timeout_ms=5000) as c:
    assert c.translate("abc", "de", model="mock-marian")["text"] == "translate|de|cba|mock-marian"
    assert c.summarize("abc")["text"] == "summarize||cba"
    try:
        c.classify("x", ["a", "b"], model="nope")
        raise SystemExit("no error for an unknown model")
    except NlpError as e:
        assert e.code == "UNKNOWN_MODEL" and "mock-t5" in e.message, e
    ms = c.models()
    assert [m["name"] for m in ms] == ["mock-t5", "mock-marian"], ms
    assert ms[1]["weights"] == "bf16" and ms[1]["state"] == "serving", ms
PYEOF

# ---- a daemon still loading: health says so (and is not ok: exit 1) ----
rc=0; out=$($B/nlpc --connect "$EP2" health) || rc=$?
[ $rc -eq 1 ] && [[ "$out" == "NOT OK model=mock version=mock-1 uptime="*"s (loading)" ]] \
    || fail "health while loading: rc=$rc '$out'"
rc=0; $B/nlpc --connect "$EP2" --json health >"$T/o" || rc=$?
[ $rc -eq 1 ] && grep -q '"loading":true' "$T/o" || fail "--json health loading: $(cat "$T/o")"
rc=0; out=$($B/nlpc --connect "$EP2" models) || rc=$?
echo "$out" | grep -q "^state      loading$" && echo "$out" | grep -q "^(loading: " \
    || fail "models while loading: $out"
rc=0; b=$($PY clients/python/nlpclient.py --connect "$EP2" models) || rc=$?
[ "$out" = "$b" ] || fail "python models while loading: $b"
echo "clients_models_mock: ok"
