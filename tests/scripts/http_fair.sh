#!/usr/bin/env bash
# Fairness between clients: an interactive client is not starved by one that queued
# 1,000 documents (http_fair.py). Loopback only; bounded.
source tests/scripts/daemon_lib.bash
fail() { echo "http_fair: $*"; show_log_on_failure; exit 1; }
write_conf "log_level = \"info\";
limits = { queue_size = 4096; max_documents = 64; max_new_tokens = 8; };"
sed -i 's/^log_level = "debug";$//' "$TMP/nlpd.conf"
start_daemon
timeout 200 $PY tests/scripts/http_fair.py "$IPC" || fail "interactive client starved"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "exit code $DAEMON_RC"
echo "http_fair: ok"
