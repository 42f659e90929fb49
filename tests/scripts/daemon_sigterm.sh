#!/usr/bin/env bash
# SIGTERM with requests in flight: every accepted request is answered OK, a request
# arriving after the signal is answered SHUTTING_DOWN, and nlpd exits 0.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_new_tokens = 64; queue_size = 256; };
batching = { max_batch_tokens = 1024; max_wait_ms = 0; max_rows = 2; };'
start_daemon

N=12
timeout $((120 * SLOW)) $PY $WIRE sigterm "$IPC" "$DPID" "$N" || { show_log_on_failure; exit 1; }
wait_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
grep -q "stopped cleanly" "$TMP/nlpd.log" || { show_log_on_failure; exit 1; }
echo "daemon_sigterm: ok"
