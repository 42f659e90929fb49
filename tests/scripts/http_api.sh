#!/usr/bin/env bash
# The HTTP front: every path and status through Python's urllib (http_api.py, checked
# against docs/http.yaml), the same through curl, and an answer equal to the line
# `nlpc batch` writes for the same input. Loopback only; bounded.
source tests/scripts/daemon_lib.bash
HP=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$HP
TOKEN=tok-$RANDOM-$RANDOM
printf '# API tokens\n\nother-token\n%s\n' "$TOKEN" > "$TMP/tokens"
# The default deadline: past it behind two long generations (http_api.py's floods),
# within it for a LibreTranslate array's second document. Every task's default length is
# 16 tokens here (the random model never ends early), so a request without one is short.
# The floods' generations last FLOOD tokens (EOS forbidden): about 0.7 s; the sanitizers'
# builds are slow enough with fewer, and must finish them at SIGTERM in time.
DEADLINE=400
export FLOOD=384
[ -n "${NLP_ASAN:-}" ] && DEADLINE=2500 FLOOD=192
write_conf "http = { bind = \"127.0.0.1:$HP\"; tokens_file = \"$TMP/tokens\"; };
limits = { max_new_tokens = 1024; max_documents = 2; queue_size = 3; max_message_bytes = 4096;
           default_deadline_ms = $DEADLINE; };
batching = { max_rows = 1; max_wait_ms = 0; };"
sed -i 's/^\( *\)# max_new_tokens = [0-9]*;/\1max_new_tokens = 16;/' "$TMP/tasks.conf"
[ "$(grep -c '^ *max_new_tokens = 16;' "$TMP/tasks.conf")" -eq 4 ] || {
    echo "http_api: conf/tasks.conf no longer has the 4 generating tasks' commented max_new_tokens"; exit 1; }
start_daemon
fail() { echo "http_api: $*"; show_log_on_failure; exit 1; }
C() { curl -s -m 30 -H "Authorization: Bearer $TOKEN" "$@"; }

# curl: the answer to one nlpc batch line is that line's output, key for key.
line='{"id":"a1","text":"The quick brown fox jumps over the lazy dog.","max_new_tokens":16}'
http=$(C -d "$line" "$URL/v1/summarize") || fail "curl summarize"
cli=$(echo "$line" | timeout 60 "$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens 16) ||
    fail "nlpc batch: $cli"
$PY -c 'import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); sys.exit(a!=b)' \
    "$http" "$cli" || fail "HTTP and nlpc batch differ: $http / $cli"

# curl: statuses and headers
code() { curl -s -o /dev/null -m 30 -w '%{http_code}' "$@"; }
[ "$(code "$URL/healthz")" = 200 ] || fail "healthz"
[ "$(code "$URL/metrics")" = 401 ] || fail "metrics without a token"
[ "$(code -H "Authorization: Bearer other-token" "$URL/metrics")" = 200 ] || fail "second token"
[ "$(code -H "Authorization: Bearer x$TOKEN" "$URL/v1/models")" = 403 ] || fail "wrong token"
[ "$(code -H "Authorization: Bearer $TOKEN" -d '{"text":' "$URL/v1/qa")" = 400 ] || fail "bad JSON"
[ "$(code -H "Authorization: Bearer $TOKEN" "$URL/v2/x")" = 404 ] || fail "unknown path"
curl -s -D - -o /dev/null -m 10 "$URL/v1/models" | grep -qi '^WWW-Authenticate: Bearer' ||
    fail "401 without WWW-Authenticate"
out=$(C -d '{"q":"Good morning.","source":"en","target":"de","format":"text"}' "$URL/translate")
$PY -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (list(d)==["translatedText"] and isinstance(d["translatedText"], str)))' "$out" ||
    fail "LibreTranslate shape: $out"

# urllib: every path and status (ends with SIGTERM)
timeout 240 $PY tests/scripts/http_api.py "$URL" "$TOKEN" "$DPID" || fail "http_api.py"
wait_daemon
[ "$DAEMON_RC" = 0 ] || fail "nlpd exit code $DAEMON_RC after SIGTERM"
echo "http_api: ok"
