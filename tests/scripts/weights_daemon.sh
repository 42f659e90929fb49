#!/bin/bash
# The daemon with compact weights (issue 16) gives what nlprun gives with the same
# --weights, byte for byte, though it batches: tiny-flan held in int8 (its products and
# its encoder's attention in int8) and in bf16, several tasks sent at once so that the
# daemon runs them in shared engine calls; each reply is compared with nlprun's output
# for that request alone. A document's int8 result must not depend on its company.
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; exit 1; }
M=tests/data/models/tiny-flan
TEXTS=(
    "The museum opened in 1901. It holds paintings and old maps of the city."
    "Rain fell all night on the harbour, and by morning the boats were gone."
    "A short one."
    "Prices rose again in March, the third month in a row, as fuel and food cost more than they had a year before."
)
ARGS=(
    "summarize --max-new-tokens 8"
    "summarize --max-new-tokens 6 --num-beams 2"
    "classify --labels art,history,sports"
    "text2text --max-new-tokens 5"
)
for w in int8 bf16; do
    write_conf "weights = \"$w\";"
    start_daemon
    grep -q "loading model .*weights $w" "$TMP/nlpd.log" ||
        fail "$w: the log does not name the weight type: $(grep 'loading model' "$TMP/nlpd.log")"
    pids=()
    for i in "${!TEXTS[@]}"; do
        for j in "${!ARGS[@]}"; do
            eval "a=(${ARGS[$j]})"
            timeout 60 "$B/nlpc" --connect "$IPC" "${a[@]}" "${TEXTS[$i]}" >"$TMP/nlpc.$w.$i.$j" &
            pids+=($!)
        done
    done
    for p in "${pids[@]}"; do wait "$p" || fail "$w: an nlpc request failed"; done
    stop_daemon
    [ "$DAEMON_RC" = 0 ] || fail "$w: nlpd exited $DAEMON_RC"
    # the point: documents shared engine calls (linger_ms 1000 holds the first batch)
    grep -Eq "batch: ([2-9]|[1-9][0-9]+) documents|[1-9][0-9]* documents joined while it ran" \
        "$TMP/nlpd.log" || fail "$w: no engine call held two documents: $(grep 'batch:' "$TMP/nlpd.log")"
    for i in "${!TEXTS[@]}"; do
        for j in "${!ARGS[@]}"; do
            eval "a=(${ARGS[$j]})"
            printf '%s' "${TEXTS[$i]}" | timeout 60 "$B/nlprun" "${a[@]}" --model "$M" \
                --weights "$w" --threads 1 >"$TMP/run.$w.$i.$j" || fail "nlprun ${ARGS[$j]} --weights $w"
            [ -s "$TMP/run.$w.$i.$j" ] || fail "nlprun ${ARGS[$j]} --weights $w printed nothing"
            cmp -s "$TMP/run.$w.$i.$j" "$TMP/nlpc.$w.$i.$j" ||
                fail "$w, text $i, ${ARGS[$j]}: nlpd '$(cat "$TMP/nlpc.$w.$i.$j")', nlprun '$(cat "$TMP/run.$w.$i.$j")'"
        done
    done
    echo "ok: $w: ${#TEXTS[@]} texts x ${#ARGS[@]} tasks sent at once, each nlprun's bytes"
done
