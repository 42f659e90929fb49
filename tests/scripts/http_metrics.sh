#!/usr/bin/env bash
# GET /metrics: `promtool check metrics` finds nothing to say, and the values move as
# requests are served on either door (HTTP and ZeroMQ). Loopback only; bounded.
source tests/scripts/daemon_lib.bash
command -v promtool > /dev/null || { echo "http_metrics: promtool missing (make deps)"; exit 1; }
HP=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$HP
write_conf "http = { bind = \"127.0.0.1:$HP\"; };"
start_daemon
fail() { echo "http_metrics: $*"; show_log_on_failure; exit 1; }

curl -s -m 10 "$URL/metrics" > "$TMP/m0" || fail "GET /metrics"
lint=$(promtool check metrics < "$TMP/m0" 2>&1) || fail "promtool: $lint"
[ -z "$lint" ] || fail "promtool: $lint"
for i in 1 2 3; do
    curl -s -m 30 -o /dev/null -d '{"text":"One sentence here.","max_new_tokens":8}' "$URL/v1/summarize"
done
curl -s -m 30 -o /dev/null -d '{"text":"   "}' "$URL/v1/summarize"   # INVALID_ARGUMENT
curl -s -m 30 -o /dev/null -d '{"text":"a goal","labels":["sports","art"]}' "$URL/v1/classify"
timeout 30 "$B/nlpc" --connect "$IPC" summarize --max-new-tokens 8 "Over ZeroMQ." > /dev/null ||
    fail "nlpc summarize"
curl -s -m 10 "$URL/metrics" > "$TMP/m1" || fail "GET /metrics again"
lint=$(promtool check metrics < "$TMP/m1" 2>&1) || fail "promtool (after): $lint"
[ -z "$lint" ] || fail "promtool (after): $lint"

$PY - "$TMP/m0" "$TMP/m1" <<'PY' || fail "values did not move as expected"
import re, sys
def load(p):
    v = {}
    for line in open(p):
        if line.startswith("#") or not line.strip():
            continue
        name, val = line.rsplit(" ", 1)
        v[name] = float(val)
    return v
a, b = load(sys.argv[1]), load(sys.argv[2])
def d(k):
    return b.get(k, 0) - a.get(k, 0)
want = {
    'nlpd_requests_total{task="summarize",code="OK"}': 4,          # 3 HTTP + 1 ZeroMQ
    'nlpd_requests_total{task="summarize",code="INVALID_ARGUMENT"}': 1,
    'nlpd_requests_total{task="classify",code="OK"}': 1,
    'nlpd_documents_total{task="summarize",code="OK"}': 4,
    'nlpd_request_duration_seconds_count{task="summarize"}': 5,
    'nlpd_request_duration_seconds_bucket{task="summarize",le="+Inf"}': 5,
    'nlpd_request_queue_seconds_count{task="classify"}': 1,
    'nlpd_http_responses_total{status="200"}': 4 + 1,   # 4 OK tasks + the first /metrics
    'nlpd_http_responses_total{status="400"}': 1,
}
bad = [f"{k}: moved {d(k)}, want {w}" for k, w in want.items() if d(k) != w]
for k in ["nlpd_input_tokens_total", "nlpd_output_tokens_total", "nlpd_batch_size_count",
          "nlpd_decoder_rows_count", 'nlpd_request_compute_seconds_count{task="summarize"}']:
    if d(k) <= 0:
        bad.append(f"{k} did not grow ({a.get(k)} -> {b.get(k)})")
for k in ["process_resident_memory_bytes", "nlpd_startup_seconds", "nlpd_up"]:
    if b.get(k, 0) <= 0:
        bad.append(f"{k} is {b.get(k)}")
# threads = 1 in the test config: every model's steps run exactly one thread
th = {k: v for k, v in b.items() if k.startswith('nlpd_model_threads{model="')}
if not th or any(v != 1 for v in th.values()):
    bad.append(f"nlpd_model_threads: {th}, want 1 for each model")
if b.get("nlpd_queue_depth") != 0 or b.get("nlpd_in_flight_requests") != 0:
    bad.append("queue depth / in flight not 0 when idle")
# histogram buckets are cumulative and end at _count
for k in b:
    m = re.match(r'(\w+)_bucket\{(.*)le="\+Inf"\}', k)
    if m and b[k] != b.get(m.group(1) + "_count" + ("{" + m.group(2).rstrip(",") + "}" if m.group(2) else ""), -1):
        bad.append(f"{k} != its _count")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit code $DAEMON_RC"
echo "http_metrics: ok"
