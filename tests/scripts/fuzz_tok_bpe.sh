#!/bin/bash
# The byte-level BPE and Marian tokenizers (tests/fuzz/fuzz_tok_bpe.c: BPE encoding with
# spans and the lossless round trip mostly; BPE decode, Marian source/target and pairs by
# the first byte) for ~4 s on BART's and opus-mt-en-mg's files: in make test a smoke run
# over its corpus; `make fuzz` runs it for minutes.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
export NLP_TOK_BPE_DIR=tests/data/families/tokenizers/bart-bpe
export NLP_TOK_MARIAN_DIR=tests/data/families/tokenizers/marian-en-mg
fuzz_run fuzz_tok_bpe 4 8192
