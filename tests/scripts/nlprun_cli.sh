#!/bin/bash
# nlprun's and nlpc's command lines (issue 21): each task's --help shows that task's
# options only; --version on both; an unknown option says "unknown option"; an
# out-of-range number says the range; nlpc --json's timings are to the microsecond; and
# the two print the same text for the same result (tiny model, greedy).
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- per-task help ----
help_of() { "$B/nlprun" "$1" --help 2>&1; }
for t in summarize translate classify qa text2text; do
    h=$(help_of $t) || fail "nlprun $t --help exit $?"
    grep -q "^usage: nlprun $t " <<<"$h" || fail "$t --help: no usage line: $h"
    grep -q -- "--json" <<<"$h" || fail "$t --help lacks --json"
done
h=$(help_of translate)
grep -q -- "--to LANG" <<<"$h" || fail "translate --help lacks --to"
grep -q -- "--labels\|--question\|--multi-label" <<<"$h" && fail "translate --help shows other tasks' options: $h"
h=$(help_of classify)
grep -q -- "--labels" <<<"$h" || fail "classify --help lacks --labels"
grep -q -- "--to \|--question\|--num-beams" <<<"$h" && fail "classify --help shows options it has not: $h"
h=$(help_of qa)
grep -q -- "--question" <<<"$h" || fail "qa --help lacks --question"
grep -q -- "--labels\|--to " <<<"$h" && fail "qa --help shows other tasks' options: $h"
h=$(help_of summarize)
grep -q -- "--max-new-tokens" <<<"$h" || fail "summarize --help lacks decoding options"
grep -q -- "--labels\|--to \|--question" <<<"$h" && fail "summarize --help shows other tasks' options: $h"

# ---- --version ----
"$B/nlprun" --version | grep -q '^nlprun [0-9]' || fail "nlprun --version"
"$B/nlpc" --version | grep -q '^nlpc [0-9]' || fail "nlpc --version"

# ---- unknown options: "unknown option", exit 2 ----
unknown() {
    local out rc
    out=$("$@" </dev/null 2>&1); rc=$?
    [ $rc -eq 2 ] || fail "$*: exit $rc, wanted 2"
    grep -q "unknown option" <<<"$out" || fail "$*: no 'unknown option': $out"
}
unknown "$B/nlprun" --bogus
unknown "$B/nlprun" summarize --bogus --model "$MODEL"
unknown "$B/nlprun" tokenize --bogus --tokenizer tests/data/t5/spiece.model
unknown "$B/nlprun" generate --bogus --model "$MODEL" --ids 1
unknown "$B/nlpc" --bogus health
unknown "$B/nlpc" summarize --bogus x
out=$("$B/nlprun" summarize --model 2>&1) && fail "nlprun --model without a value passed"
grep -q "needs a value" <<<"$out" || fail "missing value: $out"

# ---- out-of-range numbers name the range, exit 2 ----
range() {
    local want=$1 out rc
    shift
    out=$("$@" </dev/null 2>&1); rc=$?
    [ $rc -eq 2 ] || fail "$*: exit $rc, wanted 2 ($out)"
    grep -qF -- "$want" <<<"$out" || fail "$*: the range '$want' is not named: $out"
}
range "[0, 256]" "$B/nlprun" summarize --model "$MODEL" --threads 999
range "[0, 9223372036854775807]" "$B/nlprun" summarize --model "$MODEL" --seed -1
range "[1, 4096]" "$B/nlprun" generate --model "$MODEL" --ids 1 --num-beams 0
range "-100..100" "$B/nlpc" --priority 500 summarize x

# ---- nlpc and nlprun: same result, same text; timings to the microsecond ----
write_conf ""
start_daemon
TEXT="The city council met on Tuesday to discuss the new budget for public parks."
# (every task, readable and --json: tests/scripts/shapes_nlpc_nlprun.sh)
for args in "summarize --max-new-tokens 4" "translate --to de --max-new-tokens 4" \
            "text2text --max-new-tokens 4" "classify --labels parks,budget" \
            "qa --question Who? --max-new-tokens 4"; do
    a=$(echo "$TEXT" | "$B/nlpc" --connect "$IPC" $args -) || fail "nlpc $args"
    b=$(echo "$TEXT" | "$B/nlprun" $args --model "$MODEL") || fail "nlprun $args"
    [ "$a" = "$b" ] || fail "nlpc and nlprun print differently for $args: '$a' vs '$b'"
done
j=$(echo "$TEXT" | "$B/nlpc" --connect "$IPC" --json summarize --max-new-tokens 4 -)
$PY - "$j" <<'EOF' || fail "nlpc --json timings: $j"
import json, sys
t = json.loads(sys.argv[1])["timings"]
for k in ("queue_ms", "compute_ms", "total_ms"):
    v = t[k]
    assert v >= 0 and abs(round(v, 3) - v) < 1e-9, (k, v)
    assert len(repr(v).split(".")[-1]) <= 3, (k, v)
EOF
stop_daemon
echo "ok: per-task help, --version, unknown option, ranges, same text from nlpc and nlprun"
