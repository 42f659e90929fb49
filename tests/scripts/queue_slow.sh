#!/usr/bin/env bash
# Queue mode: a slow daemon's jobs are reclaimed, and each still gets one result. d1 is
# paused (SIGSTOP) while it holds jobs, longer than claim_idle_ms (1 s): d2 claims them
# and answers them. d1 then resumes with those jobs still in its hands; its results for
# them are refused by the ownership check (counted `lost`), not written twice.
source tests/scripts/queue_lib.bash
N=${QUEUE_SLOW_JOBS:-150}
start_redis
for d in d1 d2; do write_qconf $d "claim_idle_ms = 1000;"; done
for d in d1 d2; do start_qd $d; done
$PY $QT gen "$N" "$TMP" "$URL" $STREAM > /dev/null || exit 1
held=0
for i in $(seq 1 200); do
    held=$(pending_of d1)
    [ "$held" -gt 0 ] && break
    sleep 0.02
done
[ "$held" -gt 0 ] || { echo "FAIL: d1 never held a job" >&2; show_logs d1; exit 1; }
kill -STOP "${DPID[d1]}"
stat() {   # stat DAEMON FIELD: a number of its stats' queue object
    "$B/nlpc" --connect "ipc://$TMP/$1.sock" --json stats |
        $PY -c "import json,sys; print(json.load(sys.stdin)['stats']['queue']['$2'])"
}
for i in $(seq 1 200); do
    [ "$(pending_of d1)" = 0 ] && break   # d2 took all of them over
    sleep 0.1
done
left=$(pending_of d1)
kill -CONT "${DPID[d1]}"
[ "$left" = 0 ] || { echo "FAIL: $left of d1's entries never claimed" >&2; show_logs d2; exit 1; }
for i in $(seq 1 100); do   # d1 finishes what it held: every such result refused
    [ "$(stat d1 held)" = 0 ] && break
    sleep 0.1
done
# all N results, then 0.3 s more: a second result for a job would be there
$PY $QT check "$URL" $STREAM $GROUP $RESULTS "$TMP" --wait 60 0.3 || { show_logs d1 d2; exit 1; }
lost=$(stat d1 lost)
claims=$(stat d2 claims)
[ "$lost" -ge 1 ] || { echo "FAIL: d1 lost no result (d2 claimed $claims)" >&2; show_logs d1; exit 1; }
for d in d1 d2; do
    stop_qd $d
    [ "$QD_RC" = 0 ] || { echo "FAIL: $d exit code $QD_RC" >&2; show_logs $d; exit 1; }
done
echo "ok: d1 paused holding $held job(s): d2 claimed $claims, d1's $lost late result(s)" \
     "refused, $N jobs answered once"
