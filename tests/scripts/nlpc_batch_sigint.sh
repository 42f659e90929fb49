#!/bin/bash
# SIGINT / SIGTERM to nlpc batch mid-run: it stops reading and sending, waits (up to
# --drain) for the lines in flight, writes what is answered in order, prints the summary
# (what is not written and how to go on) and exits 130 / 143, the codes docs/clients.md
# and `nlpc --help` give. --resume then completes the output, each line once.
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; show_log_on_failure; exit 1; }
# new tokens a line; fewer under the sanitizers, whose worker is over 10x slower (the
# requests' 60 s deadline passed in the queue with 16)
TOK=16
[ -n "${NLP_ASAN:-}" ] && TOK=4

"$B/nlpc" --help | tr "\n" " " | grep -q "130 / 143 batch stopped by SIGINT / SIGTERM" || fail "--help"
grep -q '130.*SIGINT' docs/clients.md || fail "docs/clients.md does not give the exit code"

write_conf 'batching = { max_rows = 1; max_wait_ms = 0; };'
start_daemon
N=50
for i in $(seq 0 $((N - 1))); do
    echo "{\"id\":$i,\"text\":\"Document $i is about the weather and the markets.\"}"
done >"$TMP/in.jsonl"

NLPC_PID=
nlpc_cleanup() { [ -n "$NLPC_PID" ] && kill -KILL "$NLPC_PID" 2>/dev/null; daemon_cleanup; }
trap nlpc_cleanup EXIT

# stop_run SIG OUT ERR: start a run, signal it once a few lines are out; sets rc
stop_run() {
    "$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK --window 8 \
        --drain 20000 -o "$2" <"$TMP/in.jsonl" 2>"$3" &
    NLPC_PID=$!
    local i
    for i in $(seq 300); do
        [ -f "$2" ] && [ "$(wc -l <"$2")" -ge 3 ] && break
        sleep 0.05
    done
    kill -"$1" "$NLPC_PID"
    for i in $(seq 300); do kill -0 "$NLPC_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$NLPC_PID" 2>/dev/null && fail "nlpc still running 30 s after SIG$1"
    rc=0
    wait "$NLPC_PID" || rc=$?
    NLPC_PID=
}

# check_prefix FILE: ids 0..k-1 in order, all OK; prints k
check_prefix() {
    $PY - "$1" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == list(range(len(rows))), [r["id"] for r in rows]
assert all(r["status"] == "OK" for r in rows), rows
print(len(rows))
PYEOF
}

stop_run INT "$TMP/out.jsonl" "$TMP/err"
[ $rc -eq 130 ] || fail "SIGINT: rc=$rc (expect 130): $(cat "$TMP/err")"
grep -q "stopped by SIGINT: [0-9]* lines not written ([0-9]* read: 0 in flight" "$TMP/err" \
    || fail "SIGINT summary (in flight drained?): $(cat "$TMP/err")"
grep -q "^nlpc batch: [0-9]* done" "$TMP/err" || fail "no counts: $(cat "$TMP/err")"
k=$(check_prefix "$TMP/out.jsonl") || fail "SIGINT output"
[ "$k" -lt $N ] || fail "SIGINT: every line written, the run was not stopped"
# the daemon computed nothing nlpc did not write (drained: nothing lost in flight)
docs=$("$B/nlpc" --connect "$IPC" --json stats | $PY -c 'import json,sys; print(json.load(sys.stdin)["stats"]["documents"])')
[ "$docs" -eq "$k" ] || fail "daemon ran $docs documents, $k written"

stop_run TERM "$TMP/out2.jsonl" "$TMP/err2"
[ $rc -eq 143 ] || fail "SIGTERM: rc=$rc (expect 143): $(cat "$TMP/err2")"
grep -q "stopped by SIGTERM" "$TMP/err2" || fail "SIGTERM summary: $(cat "$TMP/err2")"

rc=0
timeout 120 "$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK \
    -o "$TMP/out.jsonl" --resume <"$TMP/in.jsonl" 2>"$TMP/err3" || rc=$?
[ $rc -eq 0 ] || fail "--resume: rc=$rc: $(cat "$TMP/err3")"
[ "$(check_prefix "$TMP/out.jsonl")" = $N ] || fail "--resume output"
echo "nlpc_batch_sigint: SIGINT after $k lines: exit 130, summary, in flight drained; SIGTERM 143; --resume completes"
