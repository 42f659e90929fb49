#!/usr/bin/env bash
# Queue mode: redis-server (appendonly, fsync always) is killed -9 in the middle of a run
# and started again on its files once both daemons have logged the loss and a failed
# retry. The daemons log the loss, retry with backoff and serve again; nlpc batch --queue
# reconnects and reads on: every line is answered once, in input order, equal to the
# same lines over ZeroMQ; no job is lost or answered twice.
source tests/scripts/queue_lib.bash
N=${QUEUE_RESTART_JOBS:-150}
start_redis
for d in d1 d2; do write_qconf $d "claim_idle_ms = 2000;"; done
start_qds d1 d2
$PY -c "
import json, random
rnd = random.Random(5)
w = 'the cat dog house river city music paper green quick slow table'.split()
for i in range($N):
    print(json.dumps({'id': i, 'text': ' '.join(rnd.choice(w) for _ in range(rnd.randint(3, 20)))}))
" > "$TMP/in.jsonl"
"$B/nlpc" batch --task summarize --max-new-tokens 6 --reconnect 30000 --queue "$URL" \
    < "$TMP/in.jsonl" > "$TMP/q.out" 2> "$TMP/nlpc.err" &
NPID=$!
for i in $(seq 1 300); do
    n=$(rcli XLEN $RESULTS 2>/dev/null || echo 0)
    [ "${n:-0}" -ge $((N / 4)) ] && break
    sleep 0.02
done
kill_redis
# Redis stays down until both daemons have logged the loss and a retry that failed
# (their backoff at work), then comes back on its files
for i in $(seq 1 200); do
    grep -q "connection to Redis .* failed" "$TMP/d1.log" &&
        grep -q "connection to Redis .* failed" "$TMP/d2.log" && break
    sleep 0.05
done
start_redis
for i in $(seq 1 600); do kill -0 $NPID 2>/dev/null || break; sleep 0.1; done
if kill -0 $NPID 2>/dev/null; then
    kill -KILL $NPID
    echo "FAIL: nlpc batch --queue did not finish within 60 s after the restart" >&2
    cat "$TMP/nlpc.err" >&2
    show_logs d1 d2
    exit 1
fi
wait $NPID || { echo "FAIL: nlpc batch --queue exit code $?" >&2; cat "$TMP/nlpc.err" >&2; exit 1; }
"$B/nlpc" --connect "ipc://$TMP/d1.sock,ipc://$TMP/d2.sock" batch --task summarize \
    --max-new-tokens 6 < "$TMP/in.jsonl" > "$TMP/z.out" 2> /dev/null
cmp -s "$TMP/q.out" "$TMP/z.out" || {
    echo "FAIL: the output through the queue differs from ZeroMQ's:" >&2
    diff "$TMP/q.out" "$TMP/z.out" | head -5 >&2
    exit 1
}
# distinct jobs answered and entries pending, from one Python
read -r uniq pend < <($PY -c "
import redis; r = redis.Redis(port=$RPORT)
print(len({f[b'entry'] for _, f in r.xrange('$RESULTS')}),
      r.xpending('$STREAM', '$GROUP')['pending'])")
[ "$uniq" = "$N" ] || { echo "FAIL: $uniq distinct jobs answered, expected $N" >&2; exit 1; }
[ "$pend" = 0 ] || { echo "FAIL: $pend entries still pending" >&2; exit 1; }
grep -q "connection to Redis .* lost" "$TMP/d1.log" "$TMP/d2.log" ||
    { echo "FAIL: the loss of Redis was not logged" >&2; exit 1; }
grep -q "is back after" "$TMP/d1.log" "$TMP/d2.log" ||
    { echo "FAIL: the return of Redis was not logged" >&2; exit 1; }
for d in d1 d2; do
    stop_qd $d
    [ "$QD_RC" = 0 ] || { echo "FAIL: $d exit code $QD_RC" >&2; show_logs $d; exit 1; }
done
echo "ok: redis-server killed and restarted mid-run: $N lines answered once, in order"
