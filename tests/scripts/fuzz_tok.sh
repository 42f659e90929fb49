#!/bin/bash
# The tokenizer (tests/fuzz/fuzz_tok.c: encoder mostly; decode, model loading and a
# fuzzed charsmap by the first byte) for ~20 s, on T5's spiece.model.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
export NLP_TOK_MODEL=tests/data/t5/spiece.model
fuzz_run fuzz_tok 20 8192
