#!/bin/bash
# One daemon per ipc:// path (issue 21): a second nlpd on a live daemon's path refuses to
# start, naming the pid that holds it, and the first still serves; a stale socket file
# (nobody answers) is removed at start; the daemon removes its socket and lock file at
# exit; a socket that answers though no nlpd holds the lock is refused too. And the
# default endpoint is in the runtime directory, not /tmp.
source tests/scripts/daemon_lib.bash
PY=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
SOCK=$TMP/nlpd.sock

write_conf ""
start_daemon
[ -S "$SOCK" ] || fail "no socket file at $SOCK"
grep -qx "$DPID" "$SOCK.lock" || fail "lock file does not hold pid $DPID: $(cat "$SOCK.lock")"

# The second daemon on the same path: refused (exit 1) quickly, naming the first's pid.
timeout 20 "$B/nlpd" -c "$TMP/nlpd.conf" >"$TMP/second.log" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "second daemon: exit $rc, wanted 1; log: $(tail -n 5 "$TMP/second.log")"
grep -q "in use: process $DPID holds it" "$TMP/second.log" ||
    fail "second daemon's error does not name pid $DPID: $(tail -n 3 "$TMP/second.log")"
# ... and the first still answers on its socket.
"$B/nlpc" --connect "$IPC" --timeout 5000 health >/dev/null || fail "first daemon lost its socket"
out=$("$B/nlpc" --connect "$IPC" --timeout 20000 summarize --max-new-tokens 3 "The cat sat.") ||
    fail "first daemon does not serve after the second's attempt"
[ -n "$out" ] || fail "empty summary"

# A clean stop removes the socket file and the lock file.
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "stop: exit $DAEMON_RC"
[ -e "$SOCK" ] && fail "socket file left after exit"
[ -e "$SOCK.lock" ] && fail "lock file left after exit"

# A stale socket file (its daemon was killed): removed at start, the daemon serves.
start_daemon
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null
DPID=
[ -S "$SOCK" ] || fail "a killed daemon's socket file should still be there"
start_daemon
grep -q "removed the stale socket file $SOCK" "$TMP/nlpd.log" ||
    fail "stale socket not reported: $(grep -i sock "$TMP/nlpd.log")"
"$B/nlpc" --connect "$IPC" --timeout 5000 health >/dev/null || fail "no health after a stale socket"
stop_daemon

# A socket that answers without any nlpd's lock (another program): refused, left alone.
$PY - "$SOCK" <<'EOF' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(30)
EOF
LPID=$!
for i in $(seq 1 100); do [ -e "$SOCK.ready" ] && break; sleep 0.1; done
timeout 20 "$B/nlpd" -c "$TMP/nlpd.conf" >"$TMP/third.log" 2>&1
rc=$?
kill "$LPID" 2>/dev/null
wait "$LPID" 2>/dev/null
[ $rc -eq 1 ] || fail "daemon beside a foreign listener: exit $rc, wanted 1"
grep -q "something answers on $SOCK" "$TMP/third.log" ||
    fail "foreign listener not named: $(tail -n 3 "$TMP/third.log")"
[ -S "$SOCK" ] || fail "the foreign program's socket was removed"

# The default endpoint: the runtime directory, never /tmp/nlpd.sock.
cat >"$TMP/nobind.conf" <<CONF
model = "$MODEL";
CONF
eff=$(RUNTIME_DIRECTORY=/run/nlpd "$B/nlpd" -c "$TMP/nobind.conf" --check-config) ||
    fail "--check-config"
grep -q 'ipc:///run/nlpd/nlpd.sock' <<<"$eff" || fail "RUNTIME_DIRECTORY: $(grep bind <<<"$eff")"
eff=$(env -u RUNTIME_DIRECTORY XDG_RUNTIME_DIR=$TMP/xdg "$B/nlpd" -c "$TMP/nobind.conf" --check-config)
grep -q "ipc://$TMP/xdg/nlpd/nlpd.sock" <<<"$eff" || fail "XDG_RUNTIME_DIR: $(grep bind <<<"$eff")"
grep -q '/tmp/nlpd.sock' <<<"$eff" && fail "default still /tmp/nlpd.sock"
# ... and the daemon makes the socket's directory (one level, 0700: how the runtime
# directory under $XDG_RUNTIME_DIR comes to be) and serves there.
mkdir -m 700 "$TMP/xdg"
IPC=ipc://$TMP/xdg/nlpd/nlpd.sock
write_conf ""
start_daemon
"$B/nlpc" --connect "$IPC" --timeout 5000 health >/dev/null ||
    fail "endpoint in a new directory not served: $(tail -n 5 "$TMP/nlpd.log")"
[ "$(stat -c %a "$TMP/xdg/nlpd")" = 700 ] || fail "runtime directory mode $(stat -c %a "$TMP/xdg/nlpd")"
stop_daemon
echo "ok: second daemon refused (pid named), stale socket removed, files removed at exit"
