#!/usr/bin/env bash
# Hostile HTTP leaves nlpd serving (http_hostile.py), then it stops cleanly. Loopback.
source tests/scripts/daemon_lib.bash
HP=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fail() { echo "http_hostile: $*"; show_log_on_failure; exit 1; }
write_conf "http = { bind = \"127.0.0.1:$HP\"; max_connections = 32; timeout_s = 1; };
limits = { max_message_bytes = 4096; };"
start_daemon
timeout 180 $PY tests/scripts/http_hostile.py "$HP" || fail "http_hostile.py"
kill -0 "$DPID" || fail "nlpd is gone"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit code $DAEMON_RC"
echo "http_hostile: ok"
