#!/bin/sh
# Many models in one daemon (issue 17): documents/s of two models served at once against
# each alone, in one run. Two copies of the random-weight flan-t5-small (mkmodel; the second
# a directory of links to the same files, so a separate model, its own context, queue and
# worker), summarize with 8 new tokens (EOS forbidden before), 4 clients per model, one
# document per request. Each model's worker runs the engine with `threads` threads of its
# own: runs with threads = 0 (the default: each step takes its share of the free CPUs,
# engine/threads.c), threads = 1 (two models: two threads on the machine's cores) and
# threads = 2 (two models: four threads), to show what sharing the cores costs.
# Reported: docs/s alone, docs/s together, together/alone per model, and the sum (each the
# best of two runs, alternating).
# BENCH_SCALE=F scales the document counts.
set -eu
B=${NLP_BUILD:-build}
M=$B/bench-models/flan-t5-small
if [ ! -f "$M/model.safetensors" ]; then
    "$B/bench/mkmodel" --config tests/data/configs/flan-t5-small.json --out "$M" --dtype f32
fi
[ -f "$M/spiece.model" ] || cp tests/data/t5/spiece.model "$M/spiece.model"
T=$(mktemp -d /tmp/nlpd-bench-models.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    PID=
}
trap 'cleanup; rm -rf "$T"' EXIT INT TERM
mkdir -p "$T/b"
for f in config.json model.safetensors spiece.model; do ln -s "$PWD/$M/$f" "$T/b/$f"; done
[ -f "$M/generation_config.json" ] && ln -s "$PWD/$M/generation_config.json" "$T/b/"
cp conf/tasks.conf "$T/tasks.conf"
EP="ipc://$T/nlpd.sock"
N=$(awk "BEGIN { n = int(12 * ${BENCH_SCALE:-1}); print n < 4 ? 4 : n }")

# run THREADS MODELS-LIST DRIVE-MODELS...: one daemon, the models driven at once
run() {
    threads=$1 list=$2
    shift 2
    cat >"$T/nlpd.conf" <<CONF
models = ( $list );
threads = $threads;
log_level = "warn";
bind = [ "$EP" ];
@include "tasks.conf"
CONF
    "$B/nlpd" -c "$T/nlpd.conf" >"$T/log" 2>&1 &
    PID=$!
    i=0
    until "$B/nlpc" --connect "$EP" --timeout 500 health >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -ge 120 ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "bench_models: nlpd did not start" >&2
            cat "$T/log" >&2
            exit 1
        fi
    done
    /usr/bin/python3 tests/bench/bench_models.py "$EP" "$N" 8 4 "$@"
    cleanup
}

A="{ name = \"a\"; path = \"$PWD/$M\"; }"
Bm="{ name = \"b\"; path = \"$T/b\"; }"
max() { awk -v x="$1" -v y="$2" 'BEGIN { print (x > y ? x : y) }'; }
for th in 0 1 2; do
    # twice each, alternating, the best of the two: other load on the machine comes and
    # goes during a run, and the best is the figure least disturbed by it
    a=0 b=0 ta=0 tb=0
    for rep in 1 2; do
        a=$(max "$a" "$(run $th "$A" a | awk '{ print $2 }')")
        b=$(max "$b" "$(run $th "$Bm" b | awk '{ print $2 }')")
        both=$(run $th "$A, $Bm" a b)
        ta=$(max "$ta" "$(echo "$both" | awk '$1 == "a" { print $2 }')")
        tb=$(max "$tb" "$(echo "$both" | awk '$1 == "b" { print $2 }')")
    done
    awk -v th="$th" -v a="$a" -v b="$b" -v ta="$ta" -v tb="$tb" -v n="$N" 'BEGIN {
        printf "threads = %d (%d documents per model, 4 clients each)\n", th, n
        printf "  model a: alone %6.2f docs/s, with b %6.2f docs/s (%.2fx)\n", a, ta, ta / a
        printf "  model b: alone %6.2f docs/s, with a %6.2f docs/s (%.2fx)\n", b, tb, tb / b
        printf "  together %6.2f docs/s = %.2fx one model alone\n", ta + tb, (ta + tb) / ((a + b) / 2)
    }'
done
