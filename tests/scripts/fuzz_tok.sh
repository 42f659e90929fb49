#!/bin/bash
# Runs the tokenizer fuzzer (build/fuzz/fuzz_tok, libFuzzer + ASan + UBSan) for ~20 s
# from the seed corpus. Passes only if no crash, leak, sanitizer report or
# consistency abort was found. New inputs go to a scratch copy of the corpus, so the
# checked-in seeds never change.
set -u
B=${NLP_BUILD:-build}
FZ=""
for c in "$B/fuzz/fuzz_tok" "$B/../fuzz/fuzz_tok" build/fuzz/fuzz_tok; do
    if [ -x "$c" ]; then FZ=$c; break; fi
done
if [ -z "$FZ" ]; then
    echo "fuzz_tok.sh: no fuzz_tok binary (make fuzz builds build/fuzz/fuzz_tok)" >&2
    exit 1
fi
SECS=${NLP_FUZZ_SECS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cp tests/fuzz/corpus/fuzz_tok/* "$work/corpus/" 2>/dev/null
export NLP_TOK_MODEL=tests/data/t5/spiece.model
# ASan options from `make asan` (abort_on_error) are fine here too; libFuzzer reports.
"$FZ" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1
rc=$?
if [ $rc -ne 0 ] || ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
    tail -n 60 "$work/log" >&2
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
        [ -e "$a" ] && { echo "artifact $a:" >&2; od -c "$a" | head -20 >&2; }
    done
    echo "fuzz_tok.sh: fuzzer failed (rc=$rc)" >&2
    exit 1
fi
grep -E "stat::number_of_executed_units|Done " "$work/log" | head -3
exit 0
