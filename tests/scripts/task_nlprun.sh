#!/bin/bash
# nlprun TASK: usage and input errors (exit codes, messages, the JSON error object),
# config errors with file:line (input errors are found before the model loads); then one
# real run per task on tiny-flan: exit 0, complete JSON, text output agreeing with it,
# and the same bytes on a second run.
set -u
B=${NLP_BUILD:-build}
R="$B/nlprun"
M=tests/data/models/tiny-flan
fail=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() {   # check NAME WANT_RC GOT_RC OUTPUT PATTERN
    if [ "$3" != "$2" ]; then
        echo "FAIL $1: exit $3, want $2: $4" >&2; fail=1; return
    fi
    if ! grep -q -- "$5" <<<"$4"; then
        echo "FAIL $1: output lacks '$5': $4" >&2; fail=1
    fi
}

out=$("$R" summarize 2>&1 </dev/null); check "no --model" 2 $? "$out" "--model DIR is required"
out=$("$R" summarize --model $M --bogus 2>&1 </dev/null); check "unknown option" 2 $? "$out" "unknown option '--bogus'"
out=$("$R" qa --model $M --num-beams x 2>&1 </dev/null); check "bad number" 2 $? "$out" "--num-beams needs a number, not 'x'"
out=$("$R" classify --help 2>&1); check "help" 0 $? "$out" "--multi-label"
out=$(printf ' \n\t' | "$R" summarize --model $M 2>&1); check "empty text" 1 $? "$out" "the text is empty"
out=$(echo hi | "$R" classify --model $M 2>&1); check "no labels" 1 $? "$out" "no labels given"
out=$(echo hi | "$R" qa --model $M 2>&1); check "no question" 1 $? "$out" "question is empty"
out=$(echo hi | "$R" translate --model $M 2>&1); check "no target" 1 $? "$out" "target language is required"
out=$(echo hi | "$R" translate --model $M --to Klingon --json 2>/dev/null); rc=$?
check "unknown language json" 1 $rc "$out" '"status":"INVALID_ARGUMENT"'
check "unknown language message" 1 $rc "$out" "unknown target language 'Klingon'"
# a task's error: nlpc --json's shape for it (common/cm_json.c), status and error only
/usr/bin/python3 -c 'import json,sys; o=json.loads(sys.stdin.read()); assert list(o)==["status","error"] and "Klingon" in o["error"]' <<<"$out" \
    || { echo "FAIL json shape: $out" >&2; fail=1; }
out=$(echo hi | "$R" text2text --model $M --max-new-tokens 0 2>&1); check "bad max-new-tokens" 2 $? "$out" "max_new_tokens = 0 is out of range \[1, 256\]"

printf 'tasks = {\n  qa = {\n    chunk_overlap = -1;\n  };\n};\n' >"$work/bad.conf"
out=$(echo hi | "$R" qa --model $M --question q --config "$work/bad.conf" 2>&1)
check "bad config" 1 $? "$out" "$work/bad.conf:3: tasks.qa.chunk_overlap = -1 is out of range"
out=$(echo hi | "$R" qa --model $M --question q --config "$work/none.conf" 2>&1)
check "missing config" 1 $? "$out" "none.conf: cannot read"

# truncate = false makes an over-long input an error before any model work
printf 'tasks = { truncate = false; };\nlimits = { max_input_tokens = 16; };\n' >"$work/short.conf"
out=$(yes "Many words make a long text." | head -20 | "$R" summarize --model $M --config "$work/short.conf" 2>&1)
check "too long" 1 $? "$out" "over the limit of 16"

# ---- real runs ----
# The shapes are nlpc's (common/cm_json.c prints both; tests/scripts/shapes_nlpc_nlprun.sh
# compares the two on the same results): the JSON keys the task has, in nlpc's order;
# classify's probabilities to 4 decimals, qa's answer alone.
T="The museum opened in 1901. It holds paintings and old maps of the city."
nrun=0
run() {   # run NAME ARGS...: json and text output of one task (checked together below)
    local name=$1; shift
    local j1 j2 txt
    j1=$(echo "$T" | "$R" "$@" --model $M --json) || { echo "FAIL $name: exit $?" >&2; fail=1; return; }
    j2=$(echo "$T" | "$R" "$@" --model $M --json)
    [ "$j1" == "$j2" ] || { echo "FAIL $name: not deterministic" >&2; fail=1; }
    txt=$(echo "$T" | "$R" "$@" --model $M) || { echo "FAIL $name: text exit" >&2; fail=1; }
    printf '%s\n' "$name" "$1" >"$work/run.$nrun.meta"
    printf '%s' "$j1" >"$work/run.$nrun.json"
    printf '%s' "$txt" >"$work/run.$nrun.txt"
    nrun=$((nrun + 1))
}
run summarize summarize --max-new-tokens 8
run translate translate --to fr --from English --max-new-tokens 6
run classify classify --labels "art, history,sports"
run multi-label classify --labels "art,history" --multi-label
run qa qa --question "When did the museum open?" --max-new-tokens 4
run text2text text2text --max-new-tokens 5 --num-beams 2 --num-return 2
run sampling text2text --max-new-tokens 5 --seed 3 --top-k 20
[ "$nrun" = 7 ] || { echo "FAIL: $nrun of 7 runs" >&2; fail=1; }
# every run's JSON and text, in one Python
/usr/bin/python3 - "$work" "$nrun" <<'PY' || fail=1
import json, sys
bad = 0
for i in range(int(sys.argv[2])):
    base = "%s/run.%d" % (sys.argv[1], i)
    name, task = open(base + ".meta").read().split("\n")[:2]
    j, txt = json.loads(open(base + ".json").read()), open(base + ".txt").read()
    field = {"classify": ["labels"], "qa": ["answer", "score"]}.get(task, ["text", "score"])
    keys = ["status"] + field + (["hypotheses"] if "hypotheses" in j else []) + \
        ["input_tokens", "output_tokens", "truncated"]
    ok = list(j) == keys and j["status"] == "OK" and j["input_tokens"] > 0
    ok = ok and ("hypotheses" in j) == (name == "text2text")  # --num-return 2 asks for them
    if task == "classify":
        lines = [l.split("\t") for l in txt.splitlines()]
        ok = ok and [l[0] for l in lines] == [x["label"] for x in j["labels"]]
        ok = ok and all(l[1] == "%.4f" % x["score"] for l, x in zip(lines, j["labels"]))
        ok = ok and j["output_tokens"] == 0
    elif task == "qa":
        ok = ok and txt == j["answer"]
    elif "hypotheses" in j:
        ok = ok and txt.splitlines() == ["%.4f\t%s" % (h["score"], h["text"]) for h in j["hypotheses"]]
        ok = ok and j["text"] == j["hypotheses"][0]["text"]
    else:
        ok = ok and txt == j["text"] and j["output_tokens"] >= 1
    if not ok:
        bad += 1
        print("FAIL %s: %s | %r" % (name, j, txt), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

exit $fail
