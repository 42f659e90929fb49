#!/usr/bin/env bash
# Supervision: if the worker thread ever ends while the daemon runs (a bug; injected here
# with NLPD_TEST_WORKER_EXIT_AFTER=1: it returns after its first batch), nlpd must not
# linger accepting work nobody computes: it answers what is queued INTERNAL, logs why,
# and exits 1 for its supervisor to restart it.
. tests/scripts/daemon_lib.bash

write_conf '
batching = { max_wait_ms = 0; };'
NLPD_TEST_WORKER_EXIT_AFTER=1 start_daemon

out=$(timeout 30 "$B/nlpc" --connect "$IPC" --timeout 10000 text2text "Hello") ||
    { echo "the first request (before the fault) failed"; show_log_on_failure; exit 1; }
[ -n "$out" ] || { echo "empty answer"; exit 1; }
wait_daemon
[ "$DAEMON_RC" -eq 1 ] || { echo "nlpd exit code $DAEMON_RC, want 1"; show_log_on_failure; exit 1; }
grep -q "worker thread ended while the daemon was running" "$TMP/nlpd.log" ||
    { echo "no log line naming the fault"; show_log_on_failure; exit 1; }
echo "daemon_worker_lost: ok"
