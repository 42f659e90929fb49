#!/usr/bin/env bash
# Queue mode against ZeroMQ (issue 19, docs/queue.md): the same jobs (classify and
# summarize) through a Redis stream and over ZeroMQ, with 1 and 2 daemons, in one run.
# Prints jobs/s for each, the queue's cost per job from the throughputs
# (1/jobs_s_queue - 1/jobs_s_zmq), and the latency of one job at a time both ways
# (the queue's round trip: XADD, XREADGROUP, the result script, the client's XREAD).
# Not part of make test. threads = 1 per daemon (BENCH_THREADS): on a shared machine
# OpenMP threads that wait for a busy core cost more than they bring. Deadlines are an
# hour: in the queue they count from when a job was added, and all are added at once.
# Its own redis-server (appendonly yes, appendfsync everysec) on a free loopback port;
# everything is killed on exit.
#
#   BENCH_JOBS=400 BENCH_MODEL=models/flan-t5-small NLP_BUILD=build tests/bench/bench_queue.sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
N=${BENCH_JOBS:-400}
MODEL=${BENCH_MODEL:-$PWD/tests/data/models/tiny-flan}
# The config it is written into lives in a temp dir: a relative path would be read from there.
case $MODEL in /*) ;; *) MODEL=$PWD/$MODEL ;; esac
SERIAL=${BENCH_SERIAL:-40}
TMP=$(mktemp -d /tmp/nlpd-bench-queue.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }

RPORT=$(port)
URL=redis://127.0.0.1:$RPORT
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --appendonly yes \
    --appendfsync everysec --save '' --logfile "$TMP/redis.log" &
PIDS+=($!)
for i in $(seq 1 100); do
    [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
cp conf/tasks.conf "$TMP/tasks.conf"

# inputs: N lines of 10-40 words
$PY - "$N" > "$TMP/in.jsonl" <<'EOF'
import json, random, sys
rnd = random.Random(1)
w = ("the report says that growth in the region slowed during the last quarter as "
     "exports fell and companies cut investment while households kept spending").split()
for i in range(int(sys.argv[1])):
    text = " ".join(rnd.choice(w) for _ in range(rnd.randint(10, 40)))
    print(json.dumps({"id": i, "text": text}))
EOF

start() {   # start NAME: a daemon in queue mode that also listens on ipc
    cat > "$TMP/$1.conf" <<CONF
model = "$MODEL";
threads = ${BENCH_THREADS:-1};
log_level = "warn";
bind = [ "ipc://$TMP/$1.sock" ];
limits = { queue_size = 64; };
queue = { redis = "$URL"; consumer = "$1"; stream = "bench:jobs"; results = "bench:results"; };
@include "tasks.conf"
CONF
    "$B/nlpd" -c "$TMP/$1.conf" > "$TMP/$1.log" 2>&1 &
    PIDS+=($!)
    for i in $(seq 1 300); do
        "$B/nlpc" --connect "ipc://$TMP/$1.sock" --timeout 200 health > /dev/null 2>&1 && return
        sleep 0.1
    done
    echo "nlpd $1 did not start" >&2
    cat "$TMP/$1.log" >&2
    exit 1
}

run() {   # run MODE TASK ENDPOINTS: prints seconds
    local opts=(--task "$2" --deadline 3600000)
    [ "$2" = classify ] && opts+=(--labels "economy,sports,weather,politics")
    [ "$2" = summarize ] && opts+=(--max-new-tokens 16)
    local t0 t1
    t0=$(now)
    if [ "$1" = queue ]; then
        "$B/nlpc" batch "${opts[@]}" --queue "$URL" --stream bench:jobs \
            --results bench:results < "$TMP/in.jsonl" > "$TMP/out" 2> "$TMP/err"
    else
        "$B/nlpc" --connect "$3" batch "${opts[@]}" --window 64 \
            < "$TMP/in.jsonl" > "$TMP/out" 2> "$TMP/err"
    fi
    t1=$(now)
    if [ "$(grep -c '"status":"OK"' "$TMP/out")" != "$N" ]; then
        echo "nlpc batch ($1 $2): not every line OK:" >&2
        tail -n 2 "$TMP/err" >&2
        grep -v '"status":"OK"' "$TMP/out" | head -n 2 >&2
        echo "nan"
        return
    fi
    echo "$t1 - $t0" | awk '{ printf "%.3f", $1 - $3 }'
}

# one job at a time, both ways: mean milliseconds per job
serial() {   # serial ENDPOINT
    NLP_PY="$B/gen/python" $PY - "$URL" "$1" "$SERIAL" <<'EOF'
import os, sys, time
sys.path.insert(0, os.environ["NLP_PY"])
import nlp_pb2, redis, zmq
url, ep, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = url[len("redis://"):].rsplit(":", 1)
r = redis.Redis(host=host, port=int(port))
def req(i):
    q = nlp_pb2.Request(id=i + 1, documents=["the report says that growth slowed"])
    q.classify.labels.extend(["economy", "sports"])
    return q.SerializeToString()
s = zmq.Context().socket(zmq.DEALER)
s.connect(ep)
t = time.time()
for i in range(n):
    s.send(req(i)); s.recv()
z = (time.time() - t) / n * 1e3
last = r.xinfo_stream("bench:results")["last-generated-id"] if r.exists("bench:results") else b"0-0"
t = time.time()
for i in range(n):
    e = r.xadd("bench:jobs", {"req": req(i)})
    while True:
        got = r.xread({"bench:results": last}, block=5000, count=10)
        hit = False
        for _, es in got:
            for rid, f in es:
                last = rid
                hit = hit or f[b"entry"] == e
        if hit:
            break
q = (time.time() - t) / n * 1e3
print("%.2f %.2f" % (z, q))
EOF
}

printf '%-10s %-9s %8s %10s %10s %12s\n' daemons task jobs zmq_jobs/s queue_jobs/s overhead_ms
for d in 1 2; do
    start "d$d"
    eps=ipc://$TMP/d1.sock
    [ "$d" = 2 ] && eps="$eps,ipc://$TMP/d2.sock"
    for task in classify summarize; do
        run zmq "$task" "$eps" > /dev/null   # warm-up
        tz=$(run zmq "$task" "$eps")
        tq=$(run queue "$task" "$eps")
        awk -v d="$d" -v t="$task" -v n="$N" -v z="$tz" -v q="$tq" 'BEGIN {
            printf "%-10s %-9s %8d %10.1f %12.1f %12.2f\n", d, t, n, n / z, n / q,
                   (q - z) / n * 1e3 }'
    done
done
read -r zs qs < <(serial "ipc://$TMP/d1.sock")
echo "one classify job at a time (2 daemons up): ZeroMQ ${zs} ms, queue ${qs} ms" \
     "(overhead $(awk -v a="$zs" -v b="$qs" 'BEGIN { printf "%.2f", b - a }') ms)"
