#!/usr/bin/env bash
# Queue mode (issue 19, docs/queue.md): 3 daemons in one consumer group on the tiny model
# share 300 mixed jobs (5 tasks; every 6th a packed `req`, the rest `json`): 300 results,
# one per job, none twice, none left pending, each equal to the same input sent over
# ZeroMQ with nlpc batch (the json ones byte for byte: the queue's json result is nlpc
# batch's output line); all three daemons took work, none more than its queue's room;
# stats and health carry the queue; SIGTERM exits 0. 300 jobs are over twice what the
# three daemons can hold (3 x (8 + 32)): most of them wait in Redis, so the backpressure
# check sees daemons at their limit.
source tests/scripts/queue_lib.bash
N=${QUEUE_JOBS:-300}
start_redis
for d in d1 d2 d3; do write_qconf $d "claim_idle_ms = 5000;"; done
start_qds d1 d2 d3
t0=$(date +%s.%N)
$PY $QT gen "$N" "$TMP" "$URL" $STREAM > /dev/null || exit 1
# backpressure: a daemon holds no more than its queue's room (limits.queue_size = 8)
# plus what its worker took (batching.max_rows = 32); the rest waits in Redis
most=0
for i in $(seq 1 10); do
    for d in d1 d2 d3; do
        p=$(pending_of $d)
        [ "$p" -gt "$most" ] && most=$p
    done
    sleep 0.1
done
[ "$most" -le 40 ] || { echo "FAIL: a daemon held $most entries (room 8 + 32 rows)" >&2; exit 1; }
echo "backpressure: one daemon held at most $most entries"
$PY $QT wait "$URL" $RESULTS "$N" 120 || { show_logs d1 d2 d3; exit 1; }
t1=$(date +%s.%N)
sleep 0.3   # a second result for any job would be here by now
# every daemon took work: the results each wrote (before the ZeroMQ reference run)
for d in d1 d2 d3; do
    n=$("$B/nlpc" --connect "ipc://$TMP/$d.sock" --json stats |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["stats"]["queue"]["results"])')
    echo "$d wrote $n results"
    [ "$n" -gt 0 ] || { echo "FAIL: daemon $d took no work" >&2; exit 1; }
done
reference "$TMP" "ipc://$TMP/d1.sock,ipc://$TMP/d2.sock,ipc://$TMP/d3.sock" || exit 1
$PY $QT check "$URL" $STREAM $GROUP $RESULTS "$TMP" --ref || { show_logs d1 d2 d3; exit 1; }
# stats and health report the queue
out=$("$B/nlpc" --connect "ipc://$TMP/d1.sock" --json stats)
echo "$out" | grep -q '"queue":{"connected":true' || { echo "FAIL: stats: $out" >&2; exit 1; }
out=$("$B/nlpc" --connect "ipc://$TMP/d2.sock" --json health)
echo "$out" | grep -q '"queue":{"connected":true' || { echo "FAIL: health: $out" >&2; exit 1; }
# the Python client prints the queue as nlpc does
a=$("$B/nlpc" --connect "ipc://$TMP/d3.sock" health | sed 's/.* queue=/queue=/')
b=$(NLP_BUILD=$B $PY clients/python/nlpclient.py --connect "ipc://$TMP/d3.sock" health |
    sed 's/.* queue=/queue=/')
[ "$a" = queue=connected ] && [ "$b" = "$a" ] ||
    { echo "FAIL: health's queue: nlpc '$a', Python '$b'" >&2; exit 1; }
a=$("$B/nlpc" --connect "ipc://$TMP/d3.sock" stats | grep '^queue ')
b=$(NLP_BUILD=$B $PY clients/python/nlpclient.py --connect "ipc://$TMP/d3.sock" stats |
    grep '^queue ')
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: stats' queue: nlpc '$a', Python '$b'" >&2; exit 1; }
for d in d1 d2 d3; do
    stop_qd $d
    [ "$QD_RC" = 0 ] || { echo "FAIL: $d exit code $QD_RC" >&2; show_logs $d; exit 1; }
done
awk -v a="$t0" -v b="$t1" -v n="$N" \
    'BEGIN { printf "ok: %d jobs through 3 daemons in %.1f s\n", n, b - a }'
