#!/usr/bin/env bash
# Wire fuzzing of a live nlpd (tests/scripts/wire_fuzz.py): mutated requests of every
# kind (each task, health, stats) through the ROUTER (DEALER, with many, empty and big
# routing frames) and the PULL -> PUSH pipeline. Every reply must be one reply, valid
# protobuf with valid UTF-8 strings and a documented status code, and the code the input
# calls for where the input decides it (see wire_fuzz.py); at the end a normal request is
# answered and SIGTERM exits 0. Seeded: every violation prints its seed and case.
#   WIRE_FUZZ_SECONDS  how long to fuzz (default 5 in make test; `make fuzz` runs it for 300)
#   WIRE_FUZZ_SEED     the seed (default: from the clock; printed)
. tests/scripts/daemon_lib.bash

SECS=${WIRE_FUZZ_SECONDS:-5}
SEED=${WIRE_FUZZ_SEED:-$(( $(date +%s) % 1000000 ))}
PULL_EP=ipc://$TMP/pull.sock
PUSH_EP=ipc://$TMP/push.sock
write_conf "
limits = { max_message_bytes = 65536; max_documents = 8; max_input_tokens = 64;
           max_new_tokens = 8; max_labels = 16; queue_size = 256;
           max_envelope_bytes = 1024; };
batching = { max_batch_tokens = 1024; max_wait_ms = 0; max_rows = 8; };
pipeline = { pull = \"$PULL_EP\"; push = \"$PUSH_EP\"; connect = false; };"
# info, not debug: a log line per completed request would dominate a long run.
sed -i 's/^log_level = "debug";$/log_level = "info";/' "$TMP/nlpd.conf"
start_daemon
rc=0
timeout $(( ${SECS%.*} + 120 )) $PY tests/scripts/wire_fuzz.py --ep "$IPC" \
    --pull "$PULL_EP" --push "$PUSH_EP" --seed "$SEED" --seconds "$SECS" \
    --max-message-bytes 65536 --max-envelope-bytes 1024 --max-docs 8 || rc=1
stop_daemon
if [ "$DAEMON_RC" -ne 0 ]; then
    echo "FAIL: nlpd exit code $DAEMON_RC after SIGTERM"
    rc=1
fi
[ $rc -eq 0 ] || { show_log_on_failure; echo "wire_fuzz: FAILED (WIRE_FUZZ_SEED=$SEED)"; exit 1; }
echo "wire_fuzz: ok (seed $SEED)"
