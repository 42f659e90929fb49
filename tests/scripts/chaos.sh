#!/usr/bin/env bash
# Chaos: nlpd on the tiny model under random traffic and injected faults, in three phases
# of batching.max_wait_ms (5 ms, the default, then 1 and 25 ms: the worker waits for
# company in every one).
# Each phase starts its own daemon (ipc in a temp dir + loopback tcp) and runs
# tests/scripts/chaos.py: rounds of requests from 4 DEALER and 2 REQ sockets (random
# tasks, 1..over-the-limit documents, short and long texts, deadlines 1 ms..5 s,
# priorities, options, routing envelopes) with faults (sockets closed with requests in
# flight, trickles of 1-10 ms deadlines, bad frames). After every round a normal request
# must be answered as at the start (and as nlprun computes it) and stats' in_flight must
# return to 0; at the end requests are in flight at SIGTERM, every one must be answered
# OK and nlpd must exit 0.
#
# Figures (requests, rounds, faults, time) are printed per phase and in total.
#   CHAOS_SEED     the seed of the first phase (default: from the clock; printed)
#   CHAOS_SECONDS  traffic time over all phases (default 9 in make test; `make fuzz` runs
#                  it for 120; rounds are also capped)
. tests/scripts/daemon_lib.bash

SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
SECS=${CHAOS_SECONDS:-9}
PHASES=(5 1 25)
PER=$($PY -c "print(max(1.0, $SECS / ${#PHASES[@]}))")
echo "chaos: seed $SEED (CHAOS_SEED=$SEED reproduces the traffic), ${PER}s per phase"
T0=$(date +%s.%N)
rc=0
: > "$TMP/figures"
for i in "${!PHASES[@]}"; do
    w=${PHASES[$i]}
    seed=$((SEED + i))
    write_conf "
limits = { max_message_bytes = 65536; max_documents = 16; max_input_tokens = 96;
           max_new_tokens = 32; queue_size = 96; };
batching = { max_batch_tokens = 1024; max_wait_ms = $w; max_rows = 8; };"
    start_daemon --bind "$IPC" --bind "$TCP"
    echo "--- phase $((i + 1)): max_wait_ms = $w, seed $seed"
    timeout 120 $PY tests/scripts/chaos.py run --ep "$IPC" --ep "$TCP" --pid "$DPID" \
        --seed "$seed" --seconds "$PER" --rounds $((SECS * 3 + 20)) --max-docs 16 --label "$w" \
        --nlprun "$B/nlprun" --model "$MODEL" > "$TMP/chaos.out" 2>&1
    prc=$?
    cat "$TMP/chaos.out"
    grep '^chaos-figures' "$TMP/chaos.out" >> "$TMP/figures"
    if [ $prc -ne 0 ]; then
        echo "FAIL: phase max_wait_ms = $w (seed $seed)"
        show_log_on_failure
        rc=1
        # The client sends SIGTERM only when every round passed; a daemon whose worker
        # is gone never finishes its in-flight requests: 5 s, then SIGKILL.
        kill -TERM "$DPID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
        DPID=
        break
    fi
    wait_daemon
    if [ "$DAEMON_RC" -ne 0 ] || ! grep -q "stopped cleanly" "$TMP/nlpd.log"; then
        echo "FAIL: phase max_wait_ms = $w: nlpd exit code $DAEMON_RC after SIGTERM"
        show_log_on_failure
        rc=1
    fi
done
T1=$(date +%s.%N)
awk -v t0="$T0" -v t1="$T1" '
{ for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
END { printf "chaos total: %d requests, %d rounds, faults: %d disconnects, %d tiny deadlines, %d bad frames (%d envelopes); %d normal checks; %.1f s\n",
      s["requests"], s["rounds"], s["disconnects"], s["tiny_deadlines"], s["bad_frames"],
      s["envelopes"], s["normal_checks"], t1 - t0 }' "$TMP/figures"
[ $rc -eq 0 ] && echo "chaos: ok" || echo "chaos: FAILED (seed $SEED)"
exit $rc
