#!/bin/sh
# Tokenizer throughput, side by side with Debian's sentencepiece (spm_encode) on the
# same ~20 MB multilingual text in one run, and a check that both give the same ids.
# Text: every text of tests/data/golden/tokenizer.json (English, German, French,
# Russian, Japanese, Greek, Turkian, ... and the edge cases), one per line, repeated;
# texts with <extra_id_N> (spm_encode does not know sentinels) or NUL are left out.
set -eu
B=${NLP_BUILD:-build}
MODEL=tests/data/t5/spiece.model
MB=${NLP_BENCH_TOK_MB:-20}
PY=/usr/bin/python3
W=$B/bench/tok
mkdir -p "$W"

if ! command -v spm_encode >/dev/null 2>&1; then
    echo "bench_tok: spm_encode not found (Debian package sentencepiece; make deps)" >&2
    exit 1
fi

TEXT=$W/multilingual.txt
if [ ! -s "$TEXT" ] || [ "$(wc -c <"$TEXT")" -lt $((MB * 1000000)) ]; then
    $PY - "$TEXT" "$MB" <<'PYEOF'
import json, sys
out, mb = sys.argv[1], int(sys.argv[2])
cases = json.load(open("tests/data/golden/tokenizer.json"))["cases"]
lines = []
for c in cases:
    t = c["text"]
    if "<extra_id_" in t or "\0" in t:
        continue
    lines.append(t.replace("\r", " ").replace("\n", " "))
block = ("\n".join(lines) + "\n").encode("utf-8")
reps = max(1, mb * 1000000 // len(block) + 1)
with open(out, "wb") as f:
    for _ in range(reps):
        f.write(block)
PYEOF
fi
bytes=$(wc -c <"$TEXT")
lines=$(wc -l <"$TEXT")

now() { date +%s.%N; }

# Warm the page cache once so neither side pays the first read.
cat "$TEXT" >/dev/null

t0=$(now)
"$B/nlprun" tokenize --tokenizer "$MODEL" <"$TEXT" >"$W/ours.ids"
t1=$(now)
spm_encode --model "$MODEL" --output_format=id <"$TEXT" >"$W/spm.ids"
t2=$(now)

# nlprun appends EOS (id 1) to every line; spm_encode does not.
sed -E 's/(^| )1$//' "$W/ours.ids" >"$W/ours.noeos.ids"
if cmp -s "$W/ours.noeos.ids" "$W/spm.ids"; then same=yes; else same=NO; fi
tokens=$(wc -w <"$W/spm.ids")

awk -v b="$bytes" -v l="$lines" -v n="$tokens" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v same="$same" 'BEGIN {
    o = t1 - t0; s = t2 - t1;
    printf "input: %.1f MB, %d lines, %d tokens (without EOS)\n", b / 1e6, l, n;
    printf "%-22s %8.3f s %12.0f tokens/s %8.1f MB/s\n", "nlprun tokenize", o, n / o, b / 1e6 / o;
    printf "%-22s %8.3f s %12.0f tokens/s %8.1f MB/s\n", "spm_encode (0.1.97)", s, n / s, b / 1e6 / s;
    printf "speed ratio nlprun/spm_encode: %.2fx\n", s / o;
    printf "identical ids: %s\n", same;
}'
rm -f "$W/ours.ids" "$W/spm.ids" "$W/ours.noeos.ids"
[ "$same" = yes ]
