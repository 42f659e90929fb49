#!/bin/sh
# Real-size benchmarks of the BART family (issues 15 and 18): random-weight F32
# checkpoints shaped as bart-large-cnn (406M parameters), opus-mt-en-de (74M) and
# nllb-200-distilled-600M (615M), written by mkmodel into $B/bench-models on first use
# (1.6 GB, 0.3 GB and 2.4 GB; once), timed by bench_engine beside flan-t5-base from the
# same binary in the same run:
#   bart-large-cnn, opus-mt-en-de  encoder tokens/s (1x128, 1x512, 8x128) and beam-4
#                                  decode tokens/s at batch 1 and 16
#   nllb-600M                      encoder tokens/s and greedy decode tokens/s at batch 1
#                                  and 16
#   flan-t5-base (baseline)        all of the above
# each with resident memory after load, at 1 and at 2 threads, for F32 and for each
# compact weight type the engine accepts (a type it refuses is skipped with a note).
# Decode: BENCH_NEW_TOKENS (16) new tokens per sequence, EOS forbidden, 16-token inputs;
# tokens/s counts the new tokens of the returned sequences (beam: per sequence, not per
# beam row). The summary compares GFLOP/s with flan-t5-base's in the same run (same
# threads, weights and figure): 1.00 means the same cost per parameter and token.
# Environment: BENCH_THREADS ("1 2"), BENCH_WEIGHTS ("f32 bf16 int8"), BENCH_REPS (1),
# BENCH_MODELS ("bart-large-cnn opus-mt-en-de nllb-600M"). Figures are reported, not
# enforced; the exit status is 1 only when a run fails for another reason than a
# refused weight type.
set -eu
B=${NLP_BUILD:-build}
M=$B/bench-models
R=$B/bench-families
NEW=${BENCH_NEW_TOKENS:-16}
THREADS=${BENCH_THREADS:-"1 2"}
WEIGHTS=${BENCH_WEIGHTS:-"f32 bf16 int8"}
REPS=${BENCH_REPS:-1}
MODELS=${BENCH_MODELS:-"bart-large-cnn opus-mt-en-de nllb-600M"}
mkdir -p "$M" "$R"

config_of() {
    case $1 in
        nllb-600M) echo nllb-200-distilled-600M ;;
        *) echo "$1" ;;
    esac
}

figures_of() {
    case $1 in
        bart-large-cnn | opus-mt-en-de) echo encoder,beam4 ;;
        nllb-600M) echo encoder,greedy ;;
        *) echo encoder,greedy,beam4 ;;
    esac
}

for name in flan-t5-base $MODELS; do
    if [ ! -f "$M/$name/model.safetensors" ]; then
        "$B/bench/mkmodel" --config "tests/data/configs/$(config_of "$name").json" \
            --out "$M/$name" --dtype f32
    fi
done

echo "machine: $(nproc) cores, shared; uptime:$(uptime)"
status=0
runs=""
for w in $WEIGHTS; do
    for t in $THREADS; do
        for name in flan-t5-base $MODELS; do
            out=$R/$name-t$t-$w.txt
            echo "--- $name, $t thread(s), weights $w"
            rc=0
            OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t "$B/bench/bench_engine" --model "$M/$name" \
                --threads "$t" --weights "$w" --only "$(figures_of "$name")" --batch 1,16 \
                --new-tokens "$NEW" --reps "$REPS" --warmup 0 >"$out" 2>"$out.err" || rc=$?
            cat "$out"
            if [ "$rc" -ne 0 ]; then
                if grep -q "weights $w" "$out.err" && ! grep -q "resident after load" "$out"; then
                    echo "note: the engine does not load weights $w yet: $(cat "$out.err"); skipped"
                    rm -f "$out"
                    continue 3
                fi
                cat "$out.err" >&2
                echo "FAILED: $name, $t thread(s), weights $w (exit $rc)"
                status=1
                continue
            fi
            runs="$runs $name-t$t-$w"
        done
    done
done

# Summary: every figure beside flan-t5-base's same figure (same threads and weights) and
# F32's (same model and threads).
echo
echo "=== summary (new tokens per sequence: $NEW; uptime:$(uptime))"
printf '%-16s %3s %-5s %-34s %10s %9s %10s %9s\n' model thr wts figure tokens/s GFLOP/s "vs t5-base" "vs f32"
for run in $runs; do
    name=${run%-t*}
    rest=${run##*-t}
    t=${rest%%-*}
    w=${rest#*-}
    awk -v name="$name" -v t="$t" -v w="$w" \
        -v base="$R/flan-t5-base-t$t-$w.txt" -v f32="$R/$name-t$t-f32.txt" '
        function load(file, arr, mine_,   line, label, n, f) {
            while ((getline line < file) > 0) {
                if (substr(line, 1, 2) != "  " || substr(line, 3, 1) == " ") continue
                label = substr(line, 3, 34); sub(/ +$/, "", label)
                n = split(substr(line, 37), f, " ")
                if (n >= 4 && f[2] == "ms") arr[label] = f[3] " " f[4]
                else if (n >= 2 && f[2] == "MiB") arr[label] = f[1] " -"
                else continue
                if (mine_) order[++norder] = label
            }
            close(file)
        }
        function ratio(a, b) { return (b + 0 > 0 && a + 0 > 0) ? sprintf("%.2f", a / b) : "-" }
        BEGIN {
            load(ARGV[1], mine, 1); load(base, bs, 0); load(f32, fs, 0); ARGV[1] = ""
            for (i = 1; i <= norder; i++) {
                k = order[i]
                split(mine[k], m, " "); split(bs[k], b, " "); split(fs[k], f, " ")
                if (k ~ /MiB|resident|peak RSS/ || m[2] == "-")
                    printf "%-16s %3s %-5s %-34s %10s %9s %10s %9s\n", name, t, w, k, m[1] " MiB", "-", "-", ratio(m[1], f[1])
                else
                    printf "%-16s %3s %-5s %-34s %10s %9s %10s %9s\n", name, t, w, k, m[1], m[2], ratio(m[2], b[2]), ratio(m[1], f[1])
            }
        }' "$R/$run.txt"
done
exit $status
