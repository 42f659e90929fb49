#!/usr/bin/env bash
# nlpd's command line: --help tells the truth and exits 0; a bad config (the daemon's keys
# or the tasks group) exits 2 naming file:line; a missing model or a taken endpoint
# exits 1 with the reason; --bind replaces the config's endpoints.
set -u
B=${NLP_BUILD:-build}
TMP=$(mktemp -d /tmp/nlpd-cli.XXXXXX)
DPID=
cleanup() {
    [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "daemon_cli: $*"; exit 1; }

out=$("$B/nlpd" --help) || fail "--help exit $?"
for w in --config --model --bind --log-level SIGTERM SHUTTING_DOWN "Exit codes"; do
    echo "$out" | grep -q -- "$w" || fail "--help does not mention $w"
done
"$B/nlpd" --check-config > "$TMP/eff" || fail "conf/nlpd.conf does not check"
grep -q 'model = "models/flan-t5-small"' "$TMP/eff" || fail "default model: $(cat "$TMP/eff")"

printf 'threads = 1;\n\nlimits = { queue_size = -4; };\n' > "$TMP/bad.conf"
"$B/nlpd" -c "$TMP/bad.conf" 2> "$TMP/err"; rc=$?
[ $rc -eq 2 ] || fail "bad config exit $rc"
grep -q "bad.conf:3: limits.queue_size = -4 is out of range" "$TMP/err" || fail "message: $(cat "$TMP/err")"

printf 'tasks = {\n  qa = { max_new_tokens = 0; };\n};\n' > "$TMP/badt.conf"
"$B/nlpd" -c "$TMP/badt.conf" --check-config 2> "$TMP/err"; rc=$?
[ $rc -eq 2 ] || fail "bad tasks group exit $rc"
grep -q "badt.conf:2:" "$TMP/err" || fail "tasks message: $(cat "$TMP/err")"

"$B/nlpd" --bind "ipc://$TMP/a.sock" --log-level chatty 2> "$TMP/err"; rc=$?
[ $rc -eq 2 ] || fail "bad --log-level exit $rc"

printf 'model = "%s/none";\n' "$TMP" > "$TMP/nomodel.conf"
"$B/nlpd" -c "$TMP/nomodel.conf" --bind "ipc://$TMP/a.sock" 2> "$TMP/err"; rc=$?
[ $rc -eq 1 ] || fail "missing model exit $rc"
grep -q "cannot start" "$TMP/err" || fail "missing model message: $(cat "$TMP/err")"

# --bind replaces the config's list (the default tcp port is never touched) and a second
# daemon on the same tcp endpoint cannot start.
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'model = "%s";\nthreads = 1;\n' "$PWD/tests/data/models/tiny-flan" > "$TMP/ok.conf"
"$B/nlpd" -c "$TMP/ok.conf" --bind "tcp://127.0.0.1:$PORT" > "$TMP/log1" 2>&1 &
DPID=$!
for i in $(seq 1 300); do grep -q " ready: " "$TMP/log1" && break; sleep 0.1; done
grep -q "listening on tcp://127.0.0.1:$PORT" "$TMP/log1" || fail "first daemon: $(cat "$TMP/log1")"
grep -q "5555\|/tmp/nlpd.sock" "$TMP/log1" && fail "--bind did not replace the config's endpoints"
"$B/nlpd" -c "$TMP/ok.conf" --bind "tcp://127.0.0.1:$PORT" > "$TMP/log2" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "second daemon on a taken port: exit $rc"
grep -q "cannot bind tcp://127.0.0.1:$PORT" "$TMP/log2" || fail "bind message: $(cat "$TMP/log2")"
# nlpc models: the model's family and the tasks it serves (from the health reply).
m=$("$B/nlpc" --connect "tcp://127.0.0.1:$PORT" models) || fail "nlpc models exit $?"
echo "$m" | grep -q "^family     t5$" || fail "nlpc models family: $m"
echo "$m" | grep -q "^tasks      summarize translate classify qa text2text$" ||
    fail "nlpc models tasks: $m"
j=$("$B/nlpc" --connect "tcp://127.0.0.1:$PORT" --json models) || fail "nlpc --json models"
echo "$j" | /usr/bin/python3 -c 'import json,sys; h=json.load(sys.stdin)["health"]
assert h["model_type"] == "t5" and "qa" in h["tasks"], h' || fail "nlpc --json models: $j"
kill -TERM "$DPID"
for i in $(seq 1 300); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
wait "$DPID"; rc=$?
DPID=
[ $rc -eq 0 ] || fail "SIGTERM on an idle daemon: exit $rc"
echo "daemon_cli: ok"
