#!/bin/bash
# A tokenizer that does not fit the checkpoint is refused at load, naming both sizes, by
# nlprun and by nlpd (issue 21): the tiny T5 of the family tests (vocab_size 128) beside
# the real T5 spiece.model (32100 ids). The tiny FLAN-T5 (32128 rows: padding) with the
# same spiece.model still loads.
set -u
B=${NLP_BUILD:-build}
T=$(mktemp -d /tmp/nlp-tokvocab.XXXXXX)
DPID=
cleanup() {
    [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

M=$T/mismatch
mkdir -p "$M"
cp tests/data/families/models/tiny-t5-es/config.json "$M/"
ln -s "$PWD/tests/data/families/models/tiny-t5-es/model.safetensors" "$M/model.safetensors"
cp tests/data/t5/spiece.model "$M/"

# nlprun: refused before any work, both sizes in the message.
echo "A short text." | "$B/nlprun" summarize --model "$M" --max-new-tokens 3 >"$T/out" 2>"$T/err"
rc=$?
[ $rc -ne 0 ] || fail "nlprun accepted a 32100-id tokenizer for a 128-row model"
grep -q "32100 ids" "$T/err" && grep -q "is 128" "$T/err" ||
    fail "nlprun's message does not name both sizes: $(cat "$T/err")"
[ -s "$T/out" ] && fail "nlprun printed a result: $(cat "$T/out")"

# nlpd: the model does not load; the reason names both sizes.
cp conf/tasks.conf "$T/"
cat >"$T/nlpd.conf" <<CONF
model = "$M";
threads = 1;
bind = [ "ipc://$T/nlpd.sock" ];
@include "tasks.conf"
CONF
timeout 60 "$B/nlpd" -c "$T/nlpd.conf" >"$T/log" 2>&1 &
DPID=$!
for i in $(seq 1 300); do
    grep -q "32100 ids" "$T/log" && break
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
done
grep -q "32100 ids" "$T/log" && grep -q "is 128" "$T/log" ||
    fail "nlpd's log does not name both sizes: $(tail -n 5 "$T/log")"
if kill -0 "$DPID" 2>/dev/null; then
    # a daemon that stays up must not serve the model
    out=$("$B/nlpc" --connect "ipc://$T/nlpd.sock" --timeout 3000 summarize "A text." 2>&1) &&
        fail "nlpd served a mismatched model: $out"
    kill -KILL "$DPID"
fi
wait "$DPID" 2>/dev/null
DPID=

# A checkpoint with padding rows (32128 for 32100 ids) is fine.
echo "A short text." | "$B/nlprun" summarize --model tests/data/models/tiny-flan \
    --max-new-tokens 3 >"$T/out" 2>"$T/err" || fail "tiny-flan refused: $(cat "$T/err")"
echo "ok: mismatched tokenizer refused by nlprun and nlpd, padding rows accepted"
