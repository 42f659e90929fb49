# Shared by tests/scripts/daemon_*.sh (sourced; not a test itself: only *.sh are run).
# Starts build/nlpd on the tiny test model in a temp dir, on an ipc:// endpoint and a
# free loopback tcp port, and always kills it on exit. Every wait is bounded.
set -u
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
WIRE=tests/scripts/daemon_wire.py
MODEL=$PWD/tests/data/models/tiny-flan
TMP=$(mktemp -d /tmp/nlpd-test.XXXXXX)
DPID=
# The sanitizers' builds run the model 5-10x slower: bounded waits for the daemon's work
# (a reply in daemon_wire.py, the drain at SIGTERM) are 4x longer there, as the runner's
# timeouts are.
SLOW=1
[ -n "${NLP_ASAN:-}" ] && SLOW=4
export NLP_WIRE_TIMEOUT_MS=${NLP_WIRE_TIMEOUT_MS:-$((30000 * SLOW))}

daemon_cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap daemon_cleanup EXIT

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
IPC=ipc://$TMP/nlpd.sock
TCP=tcp://127.0.0.1:$PORT

# write_conf EXTRA: a config with the test's limits. The tasks group comes from the
# repository's conf/tasks.conf (copied: includes resolve against the config's directory)
# unless EXTRA has its own.
write_conf() {
    local inc=""
    # A test that sets its own tasks group does without the repository's.
    if [ -f conf/tasks.conf ] && [[ "$1" != *"tasks ="* ]]; then
        cp conf/tasks.conf "$TMP/tasks.conf"
        inc='@include "tasks.conf"'
    fi
    cat > "$TMP/nlpd.conf" <<CONF
model = "$MODEL";
threads = 1;
log_level = "debug";
linger_ms = 1000;
bind = [ "$IPC" ];
$1
$inc
CONF
}

# start_daemon [ARGS...]: starts nlpd and waits (bounded) for its "ready" line.
start_daemon() {
    "$B/nlpd" -c "$TMP/nlpd.conf" "$@" > "$TMP/nlpd.log" 2>&1 &
    DPID=$!
    local i
    for i in $(seq 1 300); do
        if grep -q " ready: " "$TMP/nlpd.log" 2>/dev/null; then return 0; fi
        if ! kill -0 "$DPID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "nlpd did not start; log:" >&2
    cat "$TMP/nlpd.log" >&2
    exit 1
}

# stop_daemon: SIGTERM, then the exit code (bounded wait) in $DAEMON_RC.
stop_daemon() {
    kill -TERM "$DPID"
    wait_daemon
}

wait_daemon() {
    local i
    for i in $(seq 1 $((300 * SLOW))); do
        if ! kill -0 "$DPID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if kill -0 "$DPID" 2>/dev/null; then
        echo "nlpd did not exit within $((30 * SLOW)) s; log:" >&2
        tail -n 30 "$TMP/nlpd.log" >&2
        exit 1
    fi
    wait "$DPID"
    DAEMON_RC=$?
    DPID=
}

show_log_on_failure() {
    echo "--- nlpd log (last 40 lines)" >&2
    tail -n 40 "$TMP/nlpd.log" >&2
}
