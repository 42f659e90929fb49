#!/usr/bin/env bash
# Bearer tokens: 401 without, 403 wrong, 200 right; the tokens file re-read on SIGHUP
# (a removed token is refused, an added one taken; a file gone keeps the old tokens),
# SIGHUP never stops nlpd (with or without HTTP); http.open_health / open_metrics.
source tests/scripts/daemon_lib.bash
HP=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$HP
fail() { echo "http_auth: $*"; show_log_on_failure; exit 1; }
code() { curl -s -o /dev/null -m 30 -w '%{http_code}' "$@"; }
BODY='{"text":"Short.","max_new_tokens":4}'

printf 'alpha-token\n' > "$TMP/tokens"
write_conf "http = { bind = \"127.0.0.1:$HP\"; tokens_file = \"$TMP/tokens\";
                     open_health = false; open_metrics = true; };"
start_daemon
[ "$(code -d "$BODY" "$URL/v1/summarize")" = 401 ] || fail "no token: not 401"
[ "$(code -H 'Authorization: Bearer beta-token' -d "$BODY" "$URL/v1/summarize")" = 403 ] ||
    fail "wrong token: not 403"
[ "$(code -H 'Authorization: Bearer alpha-tokenX' -d "$BODY" "$URL/v1/summarize")" = 403 ] ||
    fail "a longer token: not 403"
[ "$(code -H 'Authorization: Bearer alpha-toke' -d "$BODY" "$URL/v1/summarize")" = 403 ] ||
    fail "a prefix: not 403"
[ "$(code -H 'Authorization: Basic YWxwaGE6eA==' -d "$BODY" "$URL/v1/summarize")" = 401 ] ||
    fail "Basic: not 401"
[ "$(code -H 'Authorization: Bearer alpha-token' -d "$BODY" "$URL/v1/summarize")" = 200 ] ||
    fail "right token: not 200"
[ "$(code "$URL/healthz")" = 401 ] || fail "open_health = false: healthz without a token"
[ "$(code -H 'Authorization: Bearer alpha-token' "$URL/readyz")" = 200 ] || fail "readyz"
[ "$(code "$URL/metrics")" = 200 ] || fail "open_metrics = true: metrics without a token"
[ "$(code "$URL/v1/models")" = 401 ] || fail "models without a token"

# SIGHUP: beta replaces alpha
printf '# rotated\nbeta-token\n' > "$TMP/tokens"
kill -HUP "$DPID"
for i in $(seq 1 50); do
    [ "$(code -H 'Authorization: Bearer beta-token' "$URL/v1/models")" = 200 ] && break
    sleep 0.1
done
[ "$(code -H 'Authorization: Bearer beta-token' "$URL/v1/models")" = 200 ] ||
    fail "SIGHUP: the new token is not taken"
[ "$(code -H 'Authorization: Bearer alpha-token' "$URL/v1/models")" = 403 ] ||
    fail "SIGHUP: the removed token still works"
grep -q "bearer token(s) from" "$TMP/nlpd.log" || fail "no reload line in the log"
# a file that is gone: the tokens held stay, the daemon says why
mv "$TMP/tokens" "$TMP/tokens.gone"
kill -HUP "$DPID"
sleep 0.5
kill -0 "$DPID" || fail "SIGHUP stopped nlpd"
[ "$(code -H 'Authorization: Bearer beta-token' "$URL/v1/models")" = 200 ] ||
    fail "tokens lost with their file"
grep -q "SIGHUP: http.tokens_file .*the previous tokens stay" "$TMP/nlpd.log" ||
    fail "no error for the missing file"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit code $DAEMON_RC"

# no HTTP at all: SIGHUP is caught, not fatal
write_conf ""
start_daemon
kill -HUP "$DPID"
sleep 0.3
kill -0 "$DPID" || fail "SIGHUP stopped nlpd without HTTP"
timeout 30 "$B/nlpc" --connect "$IPC" health > /dev/null || fail "health after SIGHUP"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit code $DAEMON_RC (no HTTP)"
# a tokens file that cannot be read stops the start with a reason
write_conf "http = { bind = \"127.0.0.1:$HP\"; tokens_file = \"$TMP/none\"; };"
"$B/nlpd" -c "$TMP/nlpd.conf" > "$TMP/err" 2>&1 && fail "started without its tokens file"
grep -q "http.tokens_file $TMP/none" "$TMP/err" || fail "no reason: $(cat "$TMP/err")"
echo "http_auth: ok"
