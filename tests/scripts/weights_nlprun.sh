#!/usr/bin/env bash
# nlprun --weights (issue 16) on generate, logits and a task command: tiny-flan is a BF16
# checkpoint, so auto and bf16 hold it in place and f32 widens it: the same tokens and
# logits, bit for bit; f16 and int8 run and give a result; an unknown type is refused
# naming the choices, before any model is read.
set -euo pipefail
B=${NLP_BUILD:-build}
R=$B/nlprun
M=tests/data/models/tiny-flan
fail=0
gen() { "$R" generate --model $M --ids 13959,1566,12,2968,10,8774,1 --max-new-tokens 12 --threads 1 "$@"; }
lg() { "$R" logits --model $M --ids 13959,1566,12,2968,10,8774,1 --decoder-ids 0,8774 --top 5 --threads 1 "$@"; }
ref_g=$(gen --weights f32) ref_l=$(lg --weights f32)
for w in auto bf16; do
  [ "$(gen --weights $w)" = "$ref_g" ] || { echo "FAIL generate --weights $w differs from f32"; fail=1; }
  [ "$(lg --weights $w)" = "$ref_l" ] || { echo "FAIL logits --weights $w differs from f32"; fail=1; }
done
for w in f16 int8; do
  out=$(gen --weights $w)
  [[ "$out" =~ ^-?[0-9.]+$'\t'[0-9] ]] || { echo "FAIL generate --weights $w: '$out'"; fail=1; }
  [ "$(lg --weights $w | wc -l)" = 5 ] || { echo "FAIL logits --weights $w"; fail=1; }
done
out=$(echo "The cat sat on the mat. It was warm." | "$R" summarize --model $M --weights int8 --max-new-tokens 8 --threads 1)
[ -n "$out" ] || { echo "FAIL summarize --weights int8 printed nothing"; fail=1; }
if err=$("$R" generate --model $M --ids 37,1 --weights f8 2>&1); then
  echo "FAIL --weights f8 accepted"; fail=1
fi
[[ "$err" == *"--weights needs auto, f32, bf16, f16 or int8"* ]] || { echo "FAIL message: $err"; fail=1; }
if err=$(echo hi | "$R" summarize --model $M --weights f8 2>&1); then
  echo "FAIL summarize --weights f8 accepted"; fail=1
fi
[[ "$err" == *"--weights needs"* ]] || { echo "FAIL summarize message: $err"; fail=1; }
[ $fail = 0 ] && echo "weights_nlprun: ok"
exit $fail
