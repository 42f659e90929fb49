# Shared by tests/scripts/fuzz_*.sh: runs one libFuzzer target (built by `make fuzz`,
# always with ASan + UBSan) for a bounded time from its seed corpus.
#
#   fuzz_run NAME SECONDS MAX_LEN
#
# Passes (returns 0) only if the fuzzer found no crash, leak, timeout, sanitizer report
# or contract abort. New inputs go to a scratch copy of tests/fuzz/corpus/NAME, so the
# checked-in seeds never change. NLP_FUZZ_SECS overrides SECONDS.
fuzz_run() {
    local name=$1 secs=${NLP_FUZZ_SECS:-$2} max_len=$3
    local B=${NLP_BUILD:-build} fz="" c
    for c in "$B/fuzz/$name" "$B/../fuzz/$name" "build/fuzz/$name"; do
        if [ -x "$c" ]; then fz=$c; break; fi
    done
    if [ -z "$fz" ]; then
        echo "$name: no fuzz binary (make fuzz builds build/fuzz/$name)" >&2
        return 1
    fi
    local work
    work=$(mktemp -d)
    mkdir -p "$work/corpus"
    cp tests/fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null
    "$fz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
        -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1
    local rc=$? a
    if [ $rc -ne 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
        tail -n 60 "$work/log" >&2
        for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
            [ -e "$a" ] && { echo "artifact $a:" >&2; od -c "$a" | head -20 >&2; }
        done
        echo "$name: fuzzer failed (rc=$rc)" >&2
        rm -rf "$work"
        return 1
    fi
    grep -E "stat::number_of_executed_units|Done " "$work/log" | head -3
    rm -rf "$work"
    return 0
}
