#!/usr/bin/env bash
# Routing frames and unread replies (issue 13 #2, #3, #7): frames before the payload are
# bounded in count (8, routing id included) and bytes (limits.max_envelope_bytes) and
# answered MALFORMED past either; a connection that never reads has its replies dropped
# past limits.max_reply_backlog_bytes (counted in stats), and the daemon serves others.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_envelope_bytes = 512; max_reply_backlog_bytes = 65536; };
batching = { max_wait_ms = 0; };'
start_daemon
timeout 120 $PY $WIRE envelope "$IPC" 512 || { show_log_on_failure; exit 1; }
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_envelope: ok"
