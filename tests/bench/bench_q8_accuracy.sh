#!/bin/sh
# int8 accuracy on real-size random checkpoints (issue 16), larger than make test's run:
# the unit test eng_q8_realsize_accuracy (tests/unit/test_engine_q8_realsize.c) on
# flan-t5-small and flan-t5-base, each from an F32 and from a BF16 mkmodel file (q at
# HF's scale; each made in a temp dir and removed), 8 (small) or 4 (base) random inputs x
# 32 teacher-forced steps along F32's greedy path: per step top-1 agreement and the
# cosine of the logits, int8 against f32 on the same file. The test requires cosine >=
# 0.995 at every step, so a failure here is an accuracy failure, not a slow machine.
#   BENCH_Q8ACC_MODELS="flan-t5-small"   configs to run (default both)
#   BENCH_Q8ACC_STEPS=32                 teacher-forced steps per input
set -eu
cd "$(dirname "$0")/../.."
B=${NLP_BUILD:-build}
MODELS=${BENCH_Q8ACC_MODELS:-flan-t5-small flan-t5-base}
STEPS=${BENCH_Q8ACC_STEPS:-32}
status=0
echo "load average at start: $(cat /proc/loadavg)"
for name in $MODELS; do
    inputs=8
    [ "$name" = flan-t5-small ] || inputs=4
    for dt in f32 bf16; do
        NLP_BUILD=$B NLP_Q8RS_CONFIG=configs/$name.json NLP_Q8RS_DTYPE=$dt \
            NLP_Q8RS_INPUTS=$inputs NLP_Q8RS_STEPS=$STEPS NLP_Q8RS_THREADS=1 \
            "$B/tests/unit" -j 1 -k eng_q8_realsize_accuracy || status=1
    done
done
exit $status
