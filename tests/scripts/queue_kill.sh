#!/usr/bin/env bash
# Queue mode: kill -9 one of 3 daemons while it holds pending jobs. Its entries stay
# pending on it until they have been idle claim_idle_ms (1 s here); the others claim
# them (XAUTOCLAIM) and answer them: every job gets exactly one result, none is lost,
# none is left pending, and the survivors' stats count the claims.
source tests/scripts/queue_lib.bash
N=${QUEUE_KILL_JOBS:-240}
start_redis
for d in d1 d2 d3; do write_qconf $d "claim_idle_ms = 1000;"; done
for d in d1 d2 d3; do start_qd $d; done
$PY $QT gen "$N" "$TMP" "$URL" $STREAM > /dev/null || exit 1
held=0
for i in $(seq 1 200); do
    held=$(pending_of d1)
    [ "$held" -gt 0 ] && break
    sleep 0.02
done
[ "$held" -gt 0 ] || { echo "FAIL: d1 never held a job" >&2; show_logs d1; exit 1; }
kill_qd d1
left=$(pending_of d1)
# all N results, then 0.5 s more: a second result for a reclaimed job would be there
$PY $QT check "$URL" $STREAM $GROUP $RESULTS "$TMP" --wait 90 0.5 || { show_logs d2 d3; exit 1; }
claims=0
for d in d2 d3; do
    c=$("$B/nlpc" --connect "ipc://$TMP/$d.sock" --json stats |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["stats"]["queue"]["claims"])')
    claims=$((claims + c))
done
if [ "$left" -gt 0 ] && [ "$claims" -lt "$left" ]; then
    echo "FAIL: d1 died holding $left entries, the others claimed $claims" >&2
    exit 1
fi
for d in d2 d3; do
    stop_qd $d
    [ "$QD_RC" = 0 ] || { echo "FAIL: $d exit code $QD_RC" >&2; show_logs $d; exit 1; }
done
echo "ok: kill -9 of a daemon holding $left job(s): $N jobs, one result each ($claims claims)"
