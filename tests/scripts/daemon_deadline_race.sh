#!/usr/bin/env bash
# The worker's deadline race, deterministically: with batching.max_wait_ms = 1000, a
# 2-document request, then a 1-document request with a 50 ms deadline (the worker,
# expecting 2 documents, waits for company; the I/O thread expires the document meanwhile
# and empties the queue), then 1.5 s idle, then a normal request must still be computed
# and answered, health must say ok, stats' in_flight must be 0, and SIGTERM must exit 0.
# (Before the fix the worker thread took the empty queue for a closed one and returned:
# the normal request was never computed.)
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_new_tokens = 16; };
batching = { max_wait_ms = 1000; max_rows = 8; };'
start_daemon
timeout 60 $PY tests/scripts/chaos.py race --ep "$IPC" || { show_log_on_failure; exit 1; }
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_deadline_race: ok"
