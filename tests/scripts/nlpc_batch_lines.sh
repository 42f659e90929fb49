#!/bin/bash
# nlpc batch's per-line errors and the clients' command lines, against mock_nlpd.py (no
# model): trailing text, lone surrogates, duplicate keys and invalid UTF-8 get a clear
# error for that line only; fields and options of other tasks are ignored, not checked;
# --task translate without --to fails before anything is sent; an empty text gives the
# same message on every path (argument, stdin, batch line, Python, nlprun); nlpc and
# nlprun --version, "unknown option", ranges; health with nobody there fails on the
# connect probe; the Python CLI prints what nlpc prints, byte for byte.
set -u
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nlpc-lines.XXXXXX)
EP="ipc://$T/nlpd.sock"
MOCK_PID=
cleanup() {
    if [ -n "$MOCK_PID" ]; then
        kill "$MOCK_PID" 2>/dev/null
        wait "$MOCK_PID" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

NLP_BUILD=$B $PY tests/scripts/mock_nlpd.py "$EP" 120 >"$T/mock.out" 2>"$T/mock.err" &
MOCK_PID=$!
for _ in $(seq 100); do grep -q ready "$T/mock.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$T/mock.out" || fail "mock did not start: $(cat "$T/mock.err")"
NLPC="$B/nlpc --connect $EP --timeout 5000"
export NLP_BUILD=$B

# ---- JSON lines: one bad line, one error line, the rest answered ----
{
    echo '{"id":1,"text":"a"} trailing'
    echo '{"id":2,"text":"\ud800 alone"}'
    echo '{"id":3,"text":"b","text":"c"}'
    printf '{"id":4,"text":"\xff\xfe"}\n'
    echo '{"id":5,"text":"ok","labels":5,"question":[],"to":7}'
    echo '{"id":6,"text":" \t "}'
    echo '{"id":7,"text":"\ud83d\ude00 pair"}'
    echo '{"id":8,"text":"x",'
    echo '{"id":9,"meta":{"k":1,"k":2},"text":"nested"}'
} >"$T/in.jsonl"
rc=0
$NLPC batch --task summarize <"$T/in.jsonl" >"$T/out.jsonl" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "batch rc=$rc: $(cat "$T/err")"
$PY - "$T/out.jsonl" <<'PYEOF' || fail "per-line errors: $(cat "$T/out.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 9, rows
want = {1: "text after the JSON object at column 21",
        2: "lone UTF-16 surrogate \\ud800 at column 17",
        3: "the key \"text\" appears twice",
        4: "not valid UTF-8 (byte 17)",
        6: "summarize: the text is empty",
        8: "not valid JSON",
        9: "the key \"k\" appears twice"}
for n, r in enumerate(rows, 1):
    if n in want:
        assert r["status"] == "INVALID_ARGUMENT" and want[n] in r["error"], (n, r)
    else:
        assert r["status"] == "OK", (n, r)     # 5: other tasks' fields ignored
# lines that are not JSON objects are named by number, the others by id
assert rows[0] == {"line": 1, **{k: rows[0][k] for k in ("status", "error")}}, rows[0]
assert rows[5]["id"] == 6 and rows[6]["id"] == 7, rows
PYEOF

# ---- what a task needs: from the command line or the line ----
rc=0
printf '{"id":1,"text":"a"}\n' | $NLPC batch --task translate >"$T/o" 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "batch --task translate needs --to LANG" "$T/e" && [ ! -s "$T/o" ] \
    || fail "translate without --to: rc=$rc $(cat "$T/e")"
printf '{"id":1,"text":"a","to":"de"}\n{"id":2,"text":"b"}\n' |
    $NLPC batch --task translate >"$T/o" 2>/dev/null
grep -q '"id":1,"status":"OK","text":"translate|de|a"' "$T/o" &&
    grep -q '"id":2,"status":"INVALID_ARGUMENT","error":"translate needs --to LANG or a \\"to\\" on the line"' "$T/o" \
    || fail "per-line to: $(cat "$T/o")"
# options of another task are ignored, not checked
out=$($NLPC summarize --labels ",," --question "" --to "" "ab") || fail "summarize with stray options"
[ "$out" = "summarize||ba" ] || fail "stray options: '$out'"

# ---- an empty text: one message on every path ----
msg="INVALID_ARGUMENT: summarize: the text is empty"
rc=0; $NLPC summarize "  " 2>"$T/e1" || rc=$?
[ $rc -eq 1 ] && grep -qx "nlpc: $msg" "$T/e1" || fail "argument: rc=$rc $(cat "$T/e1")"
rc=0; printf '\n\n' | $NLPC summarize 2>"$T/e2" || rc=$?
[ $rc -eq 1 ] && grep -qx "nlpc: $msg" "$T/e2" || fail "stdin: rc=$rc $(cat "$T/e2")"
echo '{"id":1,"text":""}' | $NLPC batch --task summarize 2>/dev/null |
    grep -q '"error":"summarize: the text is empty"' || fail "batch line"
rc=0; $PY clients/python/nlpclient.py --connect "$EP" summarize "" 2>"$T/e3" || rc=$?
[ $rc -eq 1 ] && grep -qx "nlpclient: $msg" "$T/e3" || fail "python CLI: rc=$rc $(cat "$T/e3")"
rc=0; echo "" | $B/nlprun summarize --model tests/data/models/tiny-flan >/dev/null 2>"$T/e4" || rc=$?
grep -q "summarize: the text is empty" "$T/e4" || fail "nlprun: rc=$rc $(cat "$T/e4")"
rc=0; $NLPC qa --question q "" 2>"$T/e5" || rc=$?
grep -qx "nlpc: INVALID_ARGUMENT: qa: the context: the text is empty" "$T/e5" || fail "qa: $(cat "$T/e5")"

# ---- command lines ----
[ "$($B/nlpc --version)" = "nlpc 0.1.0" ] || fail "nlpc --version"
[ "$($B/nlprun --version)" = "nlprun 0.1.0" ] || fail "nlprun --version"
rc=0; $NLPC summarize --frobnicate x 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "unknown option --frobnicate" "$T/e" || fail "nlpc unknown option: rc=$rc"
rc=0; $B/nlprun --frobnicate 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "unknown option '--frobnicate'" "$T/e" || fail "nlprun unknown option: rc=$rc"
rc=0; $NLPC summarize --priority 101 x 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "out of range (range -100..100)" "$T/e" || fail "range: $(cat "$T/e")"
rc=0; $NLPC batch --task summarize --window 0 </dev/null 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "range 1..4096" "$T/e" || fail "window range: $(cat "$T/e")"
rc=0; $NLPC summarize --num-beams two x 2>"$T/e" || rc=$?
[ $rc -eq 2 ] && grep -q "not a whole number" "$T/e" || fail "not a number: $(cat "$T/e")"
# nobody there: the connect probe answers, not --timeout (the bound only guards the test);
# nlpc's and the Python CLI's probes wait side by side
rc=0; timeout 20 $B/nlpc --connect "ipc://$T/nobody.sock" --timeout 30000 health 2>"$T/e" &
ppid=$!
rc2=0; timeout 20 $PY clients/python/nlpclient.py --connect "ipc://$T/nobody.sock" health 2>"$T/e2" || rc2=$?
wait $ppid || rc=$?
[ $rc -eq 3 ] && grep -q "not connected within 1500 ms" "$T/e" || fail "health probe: rc=$rc $(cat "$T/e")"
[ $rc2 -eq 3 ] && grep -q "not connected within 1500 ms" "$T/e2" || fail "python health probe: rc=$rc2 $(cat "$T/e2")"

# ---- the Python CLI prints what nlpc prints ----
# nlpc once per case; the Python CLI's main() for every case in one Python (its stdout
# and exit code per case, as `nlpclient.py ARGS` prints and returns them)
n=0
while IFS= read -r args; do
    rc1=0
    eval "$NLPC $args" >"$T/c.$n.out" 2>/dev/null || rc1=$?
    echo "$rc1" >"$T/c.$n.rc"
    printf '%s\n' "$args" >>"$T/cases"
    n=$((n + 1))
done <<'ARGS'
summarize "hello world"
--json summarize --max-new-tokens 5 --num-beams 2 --length-penalty 0.5 --seed 0 ab
--json text2text --temperature 0.7 --top-k 5 --top-p 0.9 abc
translate --to de --from en abc
--json translate --to fr abc
classify --labels "pos, neg,neutral" x
--json classify --labels a,b,c --multi-label x
qa --question who? ctx
--json qa --question who? ctx
--json summarize FAIL
summarize --hypotheses --num-beams 2 --deadline 5000 --priority 3 ab
health
--json health
stats
--json stats
ARGS
[ "$n" = 15 ] || fail "$n CLI cases run, expected 15"
$PY - "$T" "$EP" <<'PYEOF' || fail "python vs nlpc"
import contextlib, io, os, shlex, sys
sys.path.insert(0, "clients/python")
import nlpclient
T, ep = sys.argv[1], sys.argv[2]
bad = 0
for n, args in enumerate(open(T + "/cases").read().splitlines()):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = nlpclient.main(["--connect", ep] + shlex.split(args))
    want = open("%s/c.%d.out" % (T, n), encoding="utf-8", newline="").read()
    want_rc = int(open("%s/c.%d.rc" % (T, n)).read())
    if rc != want_rc:
        bad += 1
        print("FAIL: python vs nlpc exit code for '%s': %d vs %d" % (args, rc, want_rc))
    if out.getvalue() != want:
        bad += 1
        print("FAIL: python vs nlpc for '%s':\n%s---\n%s" % (args, want, out.getvalue()))
sys.exit(1 if bad else 0)
PYEOF
echo "nlpc_batch_lines: per-line errors, task options, empty text, command lines, python = nlpc"
