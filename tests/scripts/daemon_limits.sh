#!/usr/bin/env bash
# Deadlines, priority and the bounded queue: a request with deadline_ms=1 behind a
# backlog is answered DEADLINE_EXCEEDED at once; a late high-priority request overtakes
# queued low-priority ones; with a small queue, a burst gets OVERLOADED for what does not
# fit and OK for the rest; the daemon then still answers normally.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_new_tokens = 64; max_documents = 2; queue_size = 6; };
batching = { max_batch_tokens = 1024; max_wait_ms = 0; max_rows = 1; };'
start_daemon

timeout 60 $PY $WIRE deadline "$IPC" || { show_log_on_failure; exit 1; }
timeout 60 $PY $WIRE priority "$IPC" || { show_log_on_failure; exit 1; }
timeout 60 $PY $WIRE overload "$IPC" || { show_log_on_failure; exit 1; }
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_limits: ok"
