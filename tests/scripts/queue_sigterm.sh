#!/usr/bin/env bash
# Queue mode: SIGTERM to a daemon in the middle of a run: it stops reading, finishes and
# acknowledges what it holds (anything Redis delivered after the signal is handed to
# another consumer), exits 0, and nothing is left pending on it. The other daemon
# completes the run: one result per job. claim_idle_ms is long (30 s): nothing here
# may rely on an idle entry being claimed. 150 jobs: more than the two daemons hold
# (2 x (8 + 32)), so some are still in Redis when d1 stops.
source tests/scripts/queue_lib.bash
N=${QUEUE_SIGTERM_JOBS:-150}
start_redis
for d in d1 d2; do write_qconf $d "claim_idle_ms = 30000;"; done
for d in d1 d2; do start_qd $d; done
$PY $QT gen "$N" "$TMP" "$URL" $STREAM > /dev/null || exit 1
held=0
for i in $(seq 1 200); do
    held=$(pending_of d1)
    [ "$held" -gt 0 ] && break
    sleep 0.02
done
[ "$held" -gt 0 ] || { echo "FAIL: d1 never held a job" >&2; show_logs d1; exit 1; }
stop_qd d1
[ "$QD_RC" = 0 ] || { echo "FAIL: d1 exit code $QD_RC after SIGTERM" >&2; show_logs d1; exit 1; }
left=$(pending_of d1)
[ "$left" = 0 ] || { echo "FAIL: $left entries left pending on d1" >&2; show_logs d1; exit 1; }
grep -q "queue: stopping" "$TMP/d1.log" || { echo "FAIL: no stop line" >&2; exit 1; }
$PY $QT check "$URL" $STREAM $GROUP $RESULTS "$TMP" --wait 60 0.3 || { show_logs d1 d2; exit 1; }
stop_qd d2
[ "$QD_RC" = 0 ] || { echo "FAIL: d2 exit code $QD_RC" >&2; show_logs d2; exit 1; }
echo "ok: SIGTERM while holding $held job(s): exit 0, none left pending, $N jobs done once"
