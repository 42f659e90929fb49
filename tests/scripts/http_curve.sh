#!/usr/bin/env bash
# CurveZMQ on the ROUTER (security group): nlpd --make-keypair writes CZMQ certificates;
# allowed keys are served, others get nothing and the daemon goes on (http_curve.py);
# keys re-read on SIGHUP; a non-loopback tcp:// bind without keys is refused unless
# security.allow_insecure. Loopback only; bounded.
source tests/scripts/daemon_lib.bash
fail() { echo "http_curve: $*"; show_log_on_failure; exit 1; }
K=$TMP/keys
mkdir -p "$K/allowed"
for p in server client1 client2; do
    "$B/nlpd" --make-keypair "$K/$p" > /dev/null || fail "--make-keypair $p"
done
[ "$(stat -c %a "$K/server_secret")" = 600 ] || fail "the secret file is not 0600"
grep -q '^    public-key = "' "$K/server" && ! grep -q secret-key "$K/server" ||
    fail "public certificate: $(cat "$K/server")"
grep -q '^    secret-key = "' "$K/server_secret" || fail "secret certificate"
cp "$K/client1" "$K/allowed/"
echo "not a certificate" > "$K/allowed/README"

write_conf "security = { curve_secret_key_file = \"$K/server_secret\";
             curve_allowed_keys_dir = \"$K/allowed\"; };"
start_daemon --bind "$TCP"
grep -q "curve: 1 allowed client key(s)" "$TMP/nlpd.log" || fail "allowed keys not read"
# nlpc without keys gets nothing (exit 3 after its 1.5 s), waited out beside the Python part
timeout 30 "$B/nlpc" --connect "$TCP" --timeout 1500 health > /dev/null 2>&1 &
nokey=$!
timeout 120 $PY tests/scripts/http_curve.py "$TCP" "$K" "$DPID" "$TMP/nlpd.log" || fail "http_curve.py"
wait $nokey
[ $? = 3 ] || fail "nlpc without keys was answered"
grep -q "curve: refused a client" "$TMP/nlpd.log" || fail "refusals not logged"
# nlpc: --server-key / --key (one-shot and batch); without keys it gets nothing (exit 3)
out=$(timeout 30 "$B/nlpc" --connect "$TCP" --server-key "$K/server" --key "$K/client1_secret" \
      summarize --max-new-tokens 4 "Keys work.") || fail "nlpc with keys: $out"
echo '{"id":1,"text":"Batch too."}' | timeout 30 "$B/nlpc" --connect "$TCP" --server-key "$K/server" \
    --key "$K/client1_secret" batch --task summarize --max-new-tokens 4 2> /dev/null |
    grep -q '"status":"OK"' || fail "nlpc batch with keys"
timeout 30 "$B/nlpc" --connect "$TCP" --server-key "$K/server" --key "$K/client1" health \
    2> "$TMP/err" && fail "a public certificate as --key accepted"
grep -q "no secret-key" "$TMP/err" || fail "no reason: $(cat "$TMP/err")"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit code $DAEMON_RC"

# non-loopback without keys: refused; allow_insecure: accepted; half a key config: refused
write_conf ""
"$B/nlpd" -c "$TMP/nlpd.conf" -b "tcp://0.0.0.0:$PORT" --check-config > /dev/null 2> "$TMP/err" && fail "0.0.0.0 without keys accepted"
grep -q "not a loopback address" "$TMP/err" || fail "no reason: $(cat "$TMP/err")"
write_conf "security = { allow_insecure = true; };"
"$B/nlpd" -c "$TMP/nlpd.conf" -b "tcp://0.0.0.0:$PORT" --check-config > /dev/null || fail "allow_insecure refused"
write_conf "security = { curve_secret_key_file = \"$K/server_secret\"; };"
"$B/nlpd" -c "$TMP/nlpd.conf" --check-config > /dev/null 2>&1 && fail "a secret key without a directory"
echo "http_curve: ok"
