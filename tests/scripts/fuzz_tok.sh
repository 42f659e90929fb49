#!/bin/bash
# The tokenizer (tests/fuzz/fuzz_tok.c: encoder mostly; decode, model loading and a
# fuzzed charsmap by the first byte) for ~4 s on T5's spiece.model: in make test a smoke
# run over its corpus; `make fuzz` runs it for minutes.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
export NLP_TOK_MODEL=tests/data/t5/spiece.model
fuzz_run fuzz_tok 4 8192
