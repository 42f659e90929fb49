#!/bin/bash
# Runs the reply-decoder fuzzer of libnlpclient (build/fuzz/fuzz_response, libFuzzer + ASan + UBSan)
# for ~10 s from the seed corpus. Passes only if no crash, leak, sanitizer report or
# contract abort was found. New inputs go to a scratch copy of the corpus, so the
# checked-in seeds never change.
set -u
B=${NLP_BUILD:-build}
FZ=""
for c in "$B/fuzz/fuzz_response" "$B/../fuzz/fuzz_response" build/fuzz/fuzz_response; do
    if [ -x "$c" ]; then FZ=$c; break; fi
done
if [ -z "$FZ" ]; then
    echo "fuzz_response.sh: no fuzz_response binary (make fuzz builds build/fuzz/fuzz_response)" >&2
    exit 1
fi
SECS=${NLP_FUZZ_SECS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cp tests/fuzz/corpus/fuzz_response/* "$work/corpus/"
"$FZ" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1
rc=$?
if [ $rc -ne 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    tail -n 60 "$work/log" >&2
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
        [ -e "$a" ] && { echo "artifact $a:" >&2; od -c "$a" | head -20 >&2; }
    done
    echo "fuzz_response.sh: fuzzer failed (rc=$rc)" >&2
    exit 1
fi
grep -E "stat::number_of_executed_units|Done " "$work/log" | head -3
exit 0
