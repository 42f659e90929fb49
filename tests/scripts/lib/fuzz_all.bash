#!/usr/bin/env bash
# `make fuzz`: every libFuzzer target for a set time, then the wire fuzzer for a long run.
# Not a test of `make test` (only tests/scripts/*.sh are); run from the repository root:
#
#   NLP_BUILD=build bash tests/scripts/lib/fuzz_all.bash
#
#   FUZZ_SECONDS       seconds per libFuzzer target (default 60)
#   WIRE_FUZZ_SECONDS  seconds of wire fuzzing against a live nlpd (default 300; 0 skips)
#   WIRE_FUZZ_SEED     the wire fuzzer's seed (default: from the clock; printed)
#   CHAOS_SECONDS      seconds of chaos traffic (tests/scripts/chaos.sh; default 120; 0 skips)
#
# Each target $NLP_BUILD/fuzz/fuzz_X starts from tests/fuzz/corpus/fuzz_X (a scratch copy:
# the checked-in seeds do not change) with the max_len its tests/scripts/fuzz_X.sh uses.
# Every target runs even when an earlier one fails; exits 1 if any failed.
set -u
B=${NLP_BUILD:-build}
SECS=${FUZZ_SECONDS:-60}
WSECS=${WIRE_FUZZ_SECONDS:-300}
CSECS=${CHAOS_SECONDS:-120}
. tests/scripts/lib/fuzz.bash
failed=()
n=0
for fz in "$B"/fuzz/fuzz_*; do
    [ -x "$fz" ] || continue
    name=$(basename "$fz")
    max_len=$(sed -n "s/^fuzz_run $name [0-9]* \([0-9]*\).*/\1/p" "tests/scripts/$name.sh" 2>/dev/null)
    max_len=${max_len:-65536}
    echo "=== $name: ${SECS}s, corpus tests/fuzz/corpus/$name, max_len $max_len"
    n=$((n + 1))
    NLP_FUZZ_SECS=$SECS fuzz_run "$name" "$SECS" "$max_len" || failed+=("$name")
done
[ $n -gt 0 ] || { echo "no fuzz targets in $B/fuzz (make fuzz-build builds them)"; exit 1; }
if [ "$WSECS" != 0 ]; then
    echo "=== wire_fuzz: ${WSECS}s against a live nlpd"
    WIRE_FUZZ_SECONDS=$WSECS NLP_BUILD=$B bash tests/scripts/wire_fuzz.sh || failed+=(wire_fuzz)
fi
if [ "$CSECS" != 0 ]; then
    echo "=== chaos: ${CSECS}s of random traffic and faults against live nlpds"
    CHAOS_SECONDS=$CSECS NLP_BUILD=$B bash tests/scripts/chaos.sh || failed+=(chaos)
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: $n libFuzzer targets (${SECS}s each), the wire fuzzer (${WSECS}s) and chaos (${CSECS}s): no failure"
