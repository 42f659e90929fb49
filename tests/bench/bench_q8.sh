#!/bin/sh
# Compact-weight product benchmark (issue 16): eng_gemm_q8 (int8), then eng_gemm_w with
# BF16 and F16 weights, each against the F32 eng_gemm on flan-t5-small's shapes (decode
# M = 1, 16 with weights streamed; encoder M = 128, 512), 1 and 2 threads, ratios to F32
# from the same run. Reported, not enforced (see tests/bench/bench_q8.c).
#   BENCH_Q8_MODES="q8 bf16 f16"   the weight types to run
set -eu
B=${NLP_BUILD:-build}
for mode in ${BENCH_Q8_MODES:-q8 bf16 f16}; do
    "$B/bench/bench_q8" --mode "$mode" --threads 1,2 "$@"
done
