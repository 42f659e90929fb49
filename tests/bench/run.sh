#!/bin/sh
# make bench: every benchmark, in one run. Each tests/bench/bench_*.sh prints its figures.
set -eu
B=${NLP_BUILD:-build}
export NLP_BUILD=$B
status=0
for s in tests/bench/bench_*.sh; do
    [ -e "$s" ] || continue
    echo "=== $s"
    sh "$s" || status=1
done
exit $status
