#!/bin/bash
# nlpc batch and a daemon that dies mid-run (SIGKILL: every reply it owed is lost).
# 1. Restarted within --reconnect: the run goes on by itself, the lost lines are sent
#    again, and every line is in the output exactly once, in order. The same after a
#    graceful stop (SIGTERM) and start, whose SHUTTING_DOWN answers are retried.
# 2. Not back within --reconnect: the run ends (exit 3) with a summary of what is not
#    written; after a restart, --resume on the same output (with a torn last line, as a
#    killed writer leaves) completes it: every line exactly once, in order.
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; show_log_on_failure; exit 1; }
# new tokens a line; fewer under the sanitizers, whose worker is over 10x slower (the
# requests' 60 s deadline passed in the queue with 16)
TOK=16
[ -n "${NLP_ASAN:-}" ] && TOK=4

write_conf 'batching = { max_rows = 1; max_wait_ms = 0; };'
start_daemon
N=40
for i in $(seq 0 $((N - 1))); do
    echo "{\"id\":$i,\"text\":\"Document $i is about the weather and the markets.\"}"
    [ $((i % 17)) -eq 5 ] && echo ""          # blank lines are skipped, also on resume
done >"$TMP/in.jsonl"

# check_out FILE: ids 0..N-1 once each, in order, all OK
check_out() {
    $PY - "$1" "$N" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["id"] for r in rows]
assert ids == list(range(int(sys.argv[2]))), ids
bad = [r for r in rows if r["status"] != "OK"]
assert not bad, bad[:3]
PYEOF
}

# wait_lines FILE K: until FILE has K lines (bounded)
wait_lines() {
    local i
    for i in $(seq 300); do
        [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# nlpc's pid: its own, not the timeout wrapper's
NLPC_PID=
nlpc_cleanup() { [ -n "$NLPC_PID" ] && kill -KILL "$NLPC_PID" 2>/dev/null; daemon_cleanup; }
trap nlpc_cleanup EXIT

# ---- 1: killed and restarted within --reconnect ----
"$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK --window 16 \
    --timeout 500 --reconnect 30000 -o "$TMP/out1.jsonl" <"$TMP/in.jsonl" 2>"$TMP/err1" &
NLPC_PID=$!
wait_lines "$TMP/out1.jsonl" 5 || fail "no output before the kill: $(cat "$TMP/err1")"
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
sleep 0.5
start_daemon
rc=0
for _ in $(seq 600); do kill -0 "$NLPC_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NLPC_PID" 2>/dev/null && fail "nlpc still running 60 s after the restart: $(cat "$TMP/err1")"
wait "$NLPC_PID" || rc=$?
NLPC_PID=
[ $rc -eq 0 ] || fail "restart within --reconnect: rc=$rc: $(cat "$TMP/err1")"
check_out "$TMP/out1.jsonl" || fail "restart within --reconnect: output"
resent=$(sed -n 's/.* \([0-9]*\) resent.*/\1/p' "$TMP/err1" | tail -1)
[ -n "$resent" ] && [ "$resent" -gt 0 ] || fail "nothing counted as resent: $(cat "$TMP/err1")"

# ---- 1b: stopped gracefully (SIGTERM: it answers what it took, SHUTTING_DOWN to the
# rest) and started again: the refused lines are retried until the new daemon takes them
"$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK --window 16 \
    --timeout 500 --reconnect 30000 -o "$TMP/out1b.jsonl" <"$TMP/in.jsonl" 2>"$TMP/err1b" &
NLPC_PID=$!
wait_lines "$TMP/out1b.jsonl" 5 || fail "no output before SIGTERM: $(cat "$TMP/err1b")"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "nlpd exit $DAEMON_RC after SIGTERM"
start_daemon
rc=0
for _ in $(seq 600); do kill -0 "$NLPC_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NLPC_PID" 2>/dev/null && fail "nlpc still running 60 s after the restart: $(cat "$TMP/err1b")"
wait "$NLPC_PID" || rc=$?
NLPC_PID=
[ $rc -eq 0 ] || fail "graceful restart: rc=$rc: $(cat "$TMP/err1b")"
check_out "$TMP/out1b.jsonl" || fail "graceful restart: output"
retried=$(sed -n 's/.* \([0-9]*\) retried.*/\1/p' "$TMP/err1b" | tail -1)

# ---- 2: gone for longer than --reconnect, then --resume ----
"$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK --window 16 \
    --timeout 500 --reconnect 1000 -o "$TMP/out2.jsonl" <"$TMP/in.jsonl" 2>"$TMP/err2" &
NLPC_PID=$!
wait_lines "$TMP/out2.jsonl" 5 || fail "no output before the kill: $(cat "$TMP/err2")"
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
rc=0
for _ in $(seq 300); do kill -0 "$NLPC_PID" 2>/dev/null || break; sleep 0.1; done
wait "$NLPC_PID" || rc=$?
NLPC_PID=
[ $rc -eq 3 ] || fail "daemon gone: rc=$rc (expect 3): $(cat "$TMP/err2")"
grep -q "the daemon is gone" "$TMP/err2" && grep -q "lines not written" "$TMP/err2" \
    || fail "summary: $(cat "$TMP/err2")"
k=$(wc -l <"$TMP/out2.jsonl")
[ "$k" -lt $N ] || fail "all $N lines written although the daemon was killed"
printf '{"id":' >>"$TMP/out2.jsonl"           # the torn line of a killed writer
start_daemon
rc=0
timeout 120 "$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK \
    --window 16 -o "$TMP/out2.jsonl" --resume <"$TMP/in.jsonl" 2>"$TMP/err3" || rc=$?
[ $rc -eq 0 ] || fail "--resume: rc=$rc: $(cat "$TMP/err3")"
grep -q "$k skipped" "$TMP/err3" || fail "--resume did not skip $k lines: $(cat "$TMP/err3")"
check_out "$TMP/out2.jsonl" || fail "--resume: output"

# --resume against another input is refused before anything is sent
sed 's/"id":3,/"id":"three",/' "$TMP/in.jsonl" >"$TMP/other.jsonl"
head -n 10 "$TMP/out2.jsonl" >"$TMP/out4.jsonl"
rc=0
"$B/nlpc" --connect "$IPC" batch --task summarize -o "$TMP/out4.jsonl" --resume \
    <"$TMP/other.jsonl" 2>"$TMP/err4" || rc=$?
[ $rc -eq 2 ] && grep -q "does not answer input line" "$TMP/err4" || fail "wrong input: rc=$rc $(cat "$TMP/err4")"
echo "nlpc_batch_restart: restart within --reconnect ($resent resent), graceful restart ($retried retried) and --resume after $k lines: $N lines, each once"
