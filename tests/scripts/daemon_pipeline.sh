#!/usr/bin/env bash
# The PULL -> PUSH pipeline: nlpd connects as a worker to a ventilator and a sink (the
# test), answers every request on PUSH (a bad frame MALFORMED), and exits 0.
. tests/scripts/daemon_lib.bash

P1=ipc://$TMP/vent.sock
P2=ipc://$TMP/sink.sock
write_conf "
pipeline = { pull = \"$P1\"; push = \"$P2\"; connect = true; };
batching = { max_wait_ms = 2; };"
start_daemon
timeout 60 $PY $WIRE pipeline "$P1" "$P2" || { show_log_on_failure; exit 1; }
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_pipeline: ok"
