# Shared by tests/scripts/queue_*.sh (sourced; not a test itself: only *.sh are run).
# Starts its own redis-server (appendonly, fsync on every write) on a free loopback port
# in a temp dir, and nlpd daemons in queue mode on the tiny model; kills them all on
# exit. Every wait is bounded.
set -u
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
QT=tests/scripts/queue_tool.py
MODEL=$PWD/tests/data/models/tiny-flan
TMP=$(mktemp -d /tmp/nlpd-queue.XXXXXX)
RPID=
declare -A DPID=()
STREAM=nlpd:requests
GROUP=nlpd
RESULTS=nlpd:results
DEAD=nlpd:dead

queue_cleanup() {
    local n
    for n in "${!DPID[@]}"; do
        kill -KILL "${DPID[$n]}" 2>/dev/null
        wait "${DPID[$n]}" 2>/dev/null
    done
    if [ -n "$RPID" ]; then
        kill -KILL "$RPID" 2>/dev/null
        wait "$RPID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap queue_cleanup EXIT

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

RPORT=$(free_port)
URL=redis://127.0.0.1:$RPORT
mkdir -p "$TMP/redis"

# start_redis: (again) on the same port and directory: what it wrote is read back.
start_redis() {
    redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP/redis" --appendonly yes \
        --appendfsync always --save '' --daemonize no --logfile "$TMP/redis.log" \
        --maxmemory-policy noeviction &
    RPID=$!
    local i
    for i in $(seq 1 100); do
        if [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ]; then return 0; fi
        sleep 0.1
    done
    echo "redis-server did not start; log:" >&2
    cat "$TMP/redis.log" >&2
    exit 1
}

# kill_redis: SIGKILL: only what appendfsync wrote survives.
kill_redis() {
    kill -KILL "$RPID"
    wait "$RPID" 2>/dev/null
    RPID=
}

rcli() { redis-cli -p "$RPORT" "$@"; }

# pending_of CONSUMER: entries pending on it (redis-cli: quicker than a Python start).
pending_of() {
    rcli XPENDING "$STREAM" "$GROUP" - + 100000 "$1" | grep -c '^[0-9]*-[0-9]*$'
}

# write_qconf NAME EXTRA: a daemon's config: consumer NAME, its own ipc endpoint, a small
# queue (so the daemons share the jobs), EXTRA inside the queue group.
write_qconf() {
    cp conf/tasks.conf "$TMP/tasks.conf"
    cat > "$TMP/$1.conf" <<CONF
model = "$MODEL";
threads = 1;
log_level = "debug";
linger_ms = 1000;
bind = [ "ipc://$TMP/$1.sock" ];
limits = { queue_size = 8; max_documents = 8; };
queue = { redis = "$URL"; consumer = "$1"; $2 };
@include "tasks.conf"
CONF
}

# start_qd NAME [MODEL_DIR]: starts nlpd and waits (bounded) for its "ready" line.
start_qd() {
    launch_qd "$@"
    wait_ready "$1"
}

# start_qds NAME...: starts them side by side, then waits for each one's "ready" line.
start_qds() {
    local n
    for n in "$@"; do launch_qd "$n"; done
    for n in "$@"; do wait_ready "$n"; done
}

launch_qd() {
    local args=()
    [ $# -gt 1 ] && args=(--model "$2")
    "$B/nlpd" -c "$TMP/$1.conf" "${args[@]}" >> "$TMP/$1.log" 2>&1 &
    DPID[$1]=$!
}

wait_ready() {
    local i
    for i in $(seq 1 300); do
        if grep -q " ready: " "$TMP/$1.log" 2>/dev/null; then return 0; fi
        if ! kill -0 "${DPID[$1]}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "nlpd $1 did not start; log:" >&2
    cat "$TMP/$1.log" >&2
    exit 1
}

# stop_qd NAME: SIGTERM, then its exit code (bounded wait) in $QD_RC.
stop_qd() {
    kill -TERM "${DPID[$1]}"
    local i
    for i in $(seq 1 300); do
        if ! kill -0 "${DPID[$1]}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if kill -0 "${DPID[$1]}" 2>/dev/null; then
        echo "nlpd $1 did not exit within 30 s; log:" >&2
        tail -n 30 "$TMP/$1.log" >&2
        exit 1
    fi
    wait "${DPID[$1]}"
    QD_RC=$?
    unset "DPID[$1]"
}

kill_qd() {
    kill -KILL "${DPID[$1]}"
    wait "${DPID[$1]}" 2>/dev/null
    unset "DPID[$1]"
}

show_logs() {
    local n
    for n in "$@"; do
        echo "--- nlpd $n (last 25 lines)" >&2
        tail -n 25 "$TMP/$n.log" >&2
    done
    echo "--- redis" >&2
    tail -n 10 "$TMP/redis.log" >&2
}

# reference DIR ENDPOINTS: every job's input through nlpc batch over ZeroMQ, per task.
reference() {
    local t
    for t in summarize translate classify qa text2text; do
        "$B/nlpc" --connect "$2" batch --task "$t" --max-new-tokens 6 --window 16 \
            < "$1/in_$t.jsonl" > "$1/out_$t.jsonl" 2> "$1/ref_$t.err" || {
            echo "FAIL: nlpc batch --task $t over ZeroMQ:" >&2
            cat "$1/ref_$t.err" >&2
            return 1
        }
    done
}
