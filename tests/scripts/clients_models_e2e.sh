#!/bin/bash
# The clients' model selection against a real nlpd serving two tiny models (`--model DIR`
# twice: each is named after its directory): nlpc --model, a batch line's "model", the
# Python client's model= each reach the named model (texts equal to nlprun on that
# model's directory, and the two models' texts differ, so a request that went to the
# other one fails); UNKNOWN_MODEL is printed with the daemon's message and exit 1;
# `nlpc models` lists both (readable and --json) with the documents each served, and the
# Python CLI prints the same bytes.
set -euo pipefail
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nlpc-models-e2e.XXXXXX)
NLPD_PID=
A=$PWD/tests/data/models/tiny-flan
C=$PWD/tests/data/models/tiny-t5
cleanup() {
    if [ -n "$NLPD_PID" ] && kill -0 "$NLPD_PID" 2>/dev/null; then
        kill -TERM "$NLPD_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NLPD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NLPD_PID" 2>/dev/null || true
        wait "$NLPD_PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    [ -f "$T/nlpd.log" ] && { echo "--- nlpd log (tail)" >&2; tail -20 "$T/nlpd.log" >&2; }
    exit 1
}

EP="ipc://$T/nlpd.sock"
"$B/nlpd" -c conf/nlpd.conf --model "$A" --model "$C" --bind "$EP" --log-level warn \
    >"$T/nlpd.log" 2>&1 &
NLPD_PID=$!
for _ in $(seq 150); do
    "$B/nlpc" --connect "$EP" --timeout 200 health >/dev/null 2>&1 && break
    kill -0 "$NLPD_PID" 2>/dev/null || fail "nlpd exited at start"
    sleep 0.1
done
"$B/nlpc" --connect "$EP" --timeout 2000 health >/dev/null || fail "nlpd not ok"
NLPC="$B/nlpc --connect $EP --timeout 30000"
PYC="$PY clients/python/nlpclient.py --connect $EP --timeout 30000"
export NLP_BUILD=$B
TEXT="the cat sat on the mat. this is a good day for a walk in the park."

# ---- each model by name: the text nlprun gives on that directory ----
for m in tiny-flan tiny-t5; do
    dir=$A; [ $m = tiny-t5 ] && dir=$C
    want=$(printf '%s' "$TEXT" | timeout 60 "$B/nlprun" summarize --model "$dir" \
           --max-new-tokens 8 --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["text"])') \
        || fail "nlprun on $m"
    got=$($NLPC --model $m summarize --max-new-tokens 8 "$TEXT") || fail "nlpc --model $m"
    [ "$got" = "$want" ] || fail "nlpc --model $m: '$got', nlprun: '$want'"
    got=$($PYC --model $m summarize --max-new-tokens 8 "$TEXT") || fail "python --model $m"
    [ "$got" = "$want" ] || fail "python --model $m: '$got', nlprun: '$want'"
    echo "$want" >"$T/want.$m"
done
cmp -s "$T/want.tiny-flan" "$T/want.tiny-t5" && fail "the two models give the same text: the test cannot tell them apart"

# ---- batch: a line's "model" over --model ----
{
    printf '{"id":1,"text":"%s"}\n' "$TEXT"
    printf '{"id":2,"text":"%s","model":"tiny-t5"}\n' "$TEXT"
    printf '{"id":3,"text":"%s","model":"nope"}\n' "$TEXT"
} >"$T/in.jsonl"
rc=0; $NLPC batch --task summarize --max-new-tokens 8 --model tiny-flan <"$T/in.jsonl" \
    >"$T/out.jsonl" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "batch rc=$rc: $(cat "$T/err")"
$PY - "$T/out.jsonl" "$(cat "$T/want.tiny-flan")" "$(cat "$T/want.tiny-t5")" <<'PYEOF' \
    || fail "batch: $(cat "$T/out.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == [1, 2, 3], rows
assert rows[0]["status"] == "OK" and rows[0]["text"] == sys.argv[2], rows[0]
assert rows[1]["status"] == "OK" and rows[1]["text"] == sys.argv[3], rows[1]
assert rows[2]["status"] == "UNKNOWN_MODEL", rows[2]
assert "tiny-flan" in rows[2]["error"] and "tiny-t5" in rows[2]["error"], rows[2]
PYEOF

# ---- UNKNOWN_MODEL: the daemon's message, exit 1; the Python library raises it ----
rc=0; $NLPC --model nope summarize "$TEXT" >"$T/o" 2>"$T/e" || rc=$?
[ $rc -eq 1 ] && grep -q "^nlpc: UNKNOWN_MODEL: .*nope" "$T/e" && grep -q "tiny-t5" "$T/e" \
    || fail "unknown model: rc=$rc $(cat "$T/e")"
$PY - "$EP" "$(cat "$T/want.tiny-t5")" <<'PYEOF' || fail "python library"
import sys
sys.path.insert(0, "clients/python")
from nlpclient import Client, NlpError
text = "the cat sat on the mat. this is a good day for a walk in the park."
with Client(sys.argv[1], timeout_ms=30000) as c:
    r = c.summarize(text, max_new_tokens=8, model="tiny-t5")
    assert r["text"] == sys.argv[2], r
    try:
        c.summarize(text, model="nope")
        raise SystemExit("no error for an unknown model")
    except NlpError as e:
        assert e.code == "UNKNOWN_MODEL" and "tiny-flan" in e.message, e
    names = [m["name"] for m in c.models()]
    assert names == ["tiny-flan", "tiny-t5"], names
PYEOF

# ---- nlpc models: both, in order, with what they served; Python prints the same ----
m=$($NLPC models) || fail "nlpc models"
[ "$(echo "$m" | grep '^model ' | awk '{print $2}' | tr '\n' ' ')" = "tiny-flan tiny-t5 " ] \
    || fail "nlpc models names: $m"
echo "$m" | grep -q "^family     t5$" && echo "$m" | grep -q "^state      serving$" \
    || fail "nlpc models: $m"
p=$($PYC models) || fail "python models"
[ "$m" = "$p" ] || fail "python models differ:"$'\n'"$m"$'\n---\n'"$p"
$NLPC --json models | $PY -c '
import json, sys
h = json.load(sys.stdin)["health"]
ms = {m["name"]: m for m in h["models"]}
assert list(ms) == ["tiny-flan", "tiny-t5"], h
assert h["loading"] is False, h
# tiny-flan: nlpc, python, batch line 1; tiny-t5: nlpc, python, batch line 2, library
assert ms["tiny-flan"]["requests"] >= 3 and ms["tiny-t5"]["requests"] >= 4, ms
for m in ms.values():
    assert m["model_type"] == "t5" and "summarize" in m["tasks"], m
    assert m["resident_bytes"] > 0 and m["state"] == "serving", m
' || fail "nlpc --json models: $($NLPC --json models)"
echo "clients_models_e2e: ok"
