#!/usr/bin/env bash
# Every kind of bad input gets its documented status (MALFORMED, INVALID_ARGUMENT,
# UNKNOWN_TASK, INPUT_TOO_LONG, MESSAGE_TOO_LARGE, TOO_MANY_DOCUMENTS), over ipc and
# loopback tcp; then normal requests, health and stats still answer, stats counting the
# errors by code; then SIGTERM exits 0.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_message_bytes = 4096; max_documents = 4; max_input_tokens = 64;
           max_new_tokens = 64; queue_size = 64; };
batching = { max_batch_tokens = 1024; max_wait_ms = 2; max_rows = 8; };
tasks = { truncate = false; };'
start_daemon --bind "$IPC" --bind "$TCP"

if ! timeout 120 $PY $WIRE badinput "$IPC" "$TCP"; then
    show_log_on_failure
    exit 1
fi
grep -q "\[r[0-9]* id=23\] INVALID_ARGUMENT" "$TMP/nlpd.log" ||
    { echo "log lines do not carry request ids"; show_log_on_failure; exit 1; }
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_badinput: ok"
