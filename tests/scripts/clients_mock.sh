#!/bin/bash
# The clients (nlpc, nlpc batch, the Python client) against mock_nlpd.py, a scripted
# ROUTER that answers out of order: options and exit codes, batch order and ids, retries
# on OVERLOADED, per-line overrides. Needs no model; the end-to-end tests against the real
# daemon are e2e_*.sh.
set -euo pipefail
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nlpc-mock.XXXXXX)
EP="ipc://$T/nlpd.sock"
MOCK_PID=
cleanup() {
    if [ -n "$MOCK_PID" ]; then
        kill "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

NLP_BUILD=$B $PY tests/scripts/mock_nlpd.py "$EP" 150 >"$T/mock.out" 2>"$T/mock.err" &
MOCK_PID=$!
for _ in $(seq 100); do grep -q ready "$T/mock.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$T/mock.out" || fail "mock did not start: $(cat "$T/mock.err")"

NLPC="$B/nlpc --connect $EP --timeout 5000"

# ---- one-shot commands: readable and JSON ----
out=$($NLPC summarize "hello world")
[ "$out" = "summarize||dlrow olleh" ] || fail "summarize: '$out'"
out=$(printf 'from stdin\n' | $NLPC text2text -)
[ "$out" = "text2text||nidts morf" ] || fail "text2text stdin: '$out'"
out=$(echo abc | $NLPC translate --to de)
[ "$out" = "translate|de|cba" ] || fail "translate: '$out'"
out=$($NLPC classify --labels "pos, neg,neutral" "x")
[ "$(echo "$out" | cut -f1 | tr '\n' ' ')" = "pos neg neutral " ] || fail "classify: '$out'"
out=$($NLPC qa --question "who?" "ctx")
[ "$out" = "who?@ctx" ] || fail "qa: '$out'"
out=$(NLPD_ENDPOINT=$EP $B/nlpc --json summarize --max-new-tokens 5 --num-beams 2 \
      --length-penalty 0 --seed 0 --min-new-tokens 0 "ab")
echo "$out" | $PY -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == "OK" and d["text"] == "summarize||ba", d
assert d["score"] == 5, d          # five options set, zeros included
assert d["id"] >= 1 and "timings" in d and d["output_tokens"] == 3, d
' || fail "summarize --json: $out"
$NLPC --json classify --labels a,b,c "doc" | $PY -c '
import json, sys
d = json.load(sys.stdin)
assert [l["label"] for l in d["labels"]] == ["a", "b", "c"], d
assert abs(sum(l["score"] for l in d["labels"]) - 1) < 1e-9, d
' || fail "classify --json"
$NLPC health | grep -q '^ok model=mock' || fail "health"
$NLPC --json stats | $PY -c 'import json,sys; assert "stats" in json.load(sys.stdin)' \
    || fail "stats --json"

# ---- exit codes ----
rc=0; $NLPC summarize "FAIL" >/dev/null 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "INVALID_ARGUMENT: mock says no" "$T/err" || fail "server error rc=$rc"
rc=0; $NLPC classify "x" 2>/dev/null || rc=$?; [ $rc -eq 2 ] || fail "missing labels rc=$rc"
rc=0; $NLPC frobnicate "x" 2>/dev/null || rc=$?; [ $rc -eq 2 ] || fail "bad task rc=$rc"
rc=0; $NLPC summarize --num-beams x "x" 2>/dev/null || rc=$?; [ $rc -eq 2 ] || fail "bad num rc=$rc"
rc=0; $B/nlpc --connect "ipc://$T/nobody.sock" --timeout 300 summarize x 2>/dev/null || rc=$?
[ $rc -eq 3 ] || fail "no server rc=$rc"
$B/nlpc --help | grep -q "nlpc batch --task" || fail "--help"

# ---- batch: order, ids, errors, overrides, retries ----
$PY - "$T/in.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(300):
        if i == 7:
            f.write("this is not json\n")
        elif i == 8:
            f.write("\n")                                   # skipped
        elif i == 9:
            f.write(json.dumps({"id": "nine", "text": "FAIL here"}) + "\n")
        elif i == 10:
            f.write(json.dumps({"id": 10, "text": "o", "labels": ["x", "y"]}) + "\n")
        elif i == 11:
            f.write(json.dumps({"id": [11], "text": "OVERLOAD me"}) + "\n")
        elif i == 12:
            f.write(json.dumps({"id": 12}) + "\n")         # no text
        else:
            f.write(json.dumps({"id": i, "text": "doc %d" % i}) + "\n")
EOF
rc=0
$NLPC batch --task classify --labels a,b --window 16 --progress <"$T/in.jsonl" \
    >"$T/out.jsonl" 2>"$T/batch.err" || rc=$?
[ $rc -eq 1 ] || fail "batch rc=$rc (some lines fail: expect 1): $(cat "$T/batch.err")"
grep -q "nlpc batch: 299 done" "$T/batch.err" || fail "progress: $(cat "$T/batch.err")"
$PY - "$T/out.jsonl" <<'EOF' || fail "batch output"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 299, len(rows)
k = 0
for i in range(300):
    if i == 8:
        continue
    r = rows[k]; k += 1
    if i == 7:
        assert r["line"] == 8 and "error" in r, r
    elif i == 9:
        assert r["id"] == "nine" and r["status"] == "INVALID_ARGUMENT", r
    elif i == 10:
        assert [l["label"] for l in r["labels"]] == ["x", "y"], r
    elif i == 11:
        assert r["id"] == [11] and r["status"] == "OK", r      # retried after OVERLOADED
    elif i == 12:
        assert r["id"] == 12 and "text" in r["error"], r
    else:
        assert r["id"] == i and r["status"] == "OK", (i, r)
        assert [l["label"] for l in r["labels"]] == ["a", "b"], r
EOF
printf '{"id":1,"text":"abc","to":"fr"}\n{"id":2,"text":"de"}\n' |
    $NLPC batch --task translate --to de >"$T/tr.jsonl" 2>/dev/null || fail "batch translate"
[ "$(sed -n 1p "$T/tr.jsonl")" = '{"id":1,"status":"OK","text":"translate|fr|cba","score":0,"input_tokens":2,"output_tokens":3,"truncated":false}' ] \
    || fail "per-line to: $(cat "$T/tr.jsonl")"
grep -q '"text":"translate|de|ed"' "$T/tr.jsonl" || fail "default to"

# ---- Python client ----
NLP_BUILD=$B $PY - "$EP" <<'EOF' || fail "python client"
import sys
sys.path.insert(0, "clients/python")
import nlpclient
with nlpclient.Client(sys.argv[1], timeout_ms=5000) as c:
    assert c.summarize("abc")["text"] == "summarize||cba"
    assert c.translate("abc", to="de")["text"] == "translate|de|cba"
    assert [l["label"] for l in c.classify("x", ["p", "q"])["labels"]] == ["p", "q"]
    assert c.qa("ctx", "q?")["answer"] == "q?@ctx"
    assert c.text2text("ab", max_new_tokens=4, num_beams=2)["score"] == 2
    assert c.health()["ok"]
    try:
        c.summarize("FAIL")
        raise SystemExit("no NlpError")
    except nlpclient.NlpError as e:
        assert e.code == "INVALID_ARGUMENT"
    ids = [c.send(c.build("summarize", ["d%d" % i])) for i in range(20)]
    got = {}
    for _ in ids:
        r = c.recv()
        got[r.id] = r.results[0].text
    assert got == {rid: "summarize||%sd" % str(i)[::-1] for i, rid in enumerate(ids)}, got
with nlpclient.Client("ipc:///nonexistent/x.sock", timeout_ms=200) as c:
    try:
        c.summarize("x")
        raise SystemExit("no timeout")
    except TimeoutError:
        pass
EOF
out=$(NLP_BUILD=$B $PY clients/python/nlpclient.py --connect "$EP" qa --question q c)
[ "$out" = "q@c" ] || fail "python CLI: '$out'"
echo "clients_mock: ok"
