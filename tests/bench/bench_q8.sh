#!/bin/sh
# int8 product benchmark: eng_gemm_q8 against the F32 eng_gemm on flan-t5-small's shapes
# (decode M = 1, 16 with weights streamed; encoder M = 512), 1 and 2 threads, ratios
# int8 / F32 from the same run. Reported, not enforced (see tests/bench/bench_q8.c).
set -eu
B=${NLP_BUILD:-build}
exec "$B/bench/bench_q8" --mode q8 --threads 1,2 "$@"
