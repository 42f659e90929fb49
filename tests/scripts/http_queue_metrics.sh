#!/usr/bin/env bash
# GET /metrics in queue mode (Redis Streams): the nlpd_redis_* numbers are there, lint
# clean, and move as a job is served. Loopback only (its own redis-server); bounded.
source tests/scripts/queue_lib.bash
fail() { echo "http_queue_metrics: $*"; [ -f "$TMP/nlpd.log" ] && tail -n 30 "$TMP/nlpd.log"; exit 1; }
command -v promtool > /dev/null || fail "promtool missing (make deps)"
HP=$(free_port)
start_redis
cat > "$TMP/nlpd.conf" <<CONF
model = "$MODEL";
threads = 1;
bind = [ "ipc://$TMP/nlpd.sock" ];
http = { bind = "127.0.0.1:$HP"; };
queue = { redis = "$URL"; };
CONF
"$B/nlpd" -c "$TMP/nlpd.conf" > "$TMP/nlpd.log" 2>&1 &
DPID[a]=$!
for i in $(seq 1 300); do
    curl -s -m 2 -o "$TMP/m0" "http://127.0.0.1:$HP/metrics" && grep -q '^nlpd_redis_connected 1' "$TMP/m0" && break
    sleep 0.1
done
grep -q '^nlpd_redis_connected 1' "$TMP/m0" || fail "no nlpd_redis_connected 1"
lint=$(promtool check metrics < "$TMP/m0" 2>&1) && [ -z "$lint" ] || fail "promtool: $lint"
rcli XADD "$STREAM" '*' json '{"task":"summarize","text":"A job from the stream.","max_new_tokens":4}' > /dev/null
for i in $(seq 1 100); do
    curl -s -m 2 "http://127.0.0.1:$HP/metrics" > "$TMP/m1"
    grep -q '^nlpd_redis_results_total 1$' "$TMP/m1" && break
    sleep 0.1
done
grep -q '^nlpd_redis_results_total 1$' "$TMP/m1" || fail "results_total did not reach 1: $(grep nlpd_redis "$TMP/m1")"
grep -q '^nlpd_requests_total{task="summarize",code="OK"} 1$' "$TMP/m1" || fail "the job is not in nlpd_requests_total"
kill -TERM "${DPID[a]}"
wait "${DPID[a]}" || fail "exit code $?"
unset 'DPID[a]'
echo "http_queue_metrics: ok"
