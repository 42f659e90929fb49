#!/bin/bash
# The safetensors header parser and the config.json reader (tests/fuzz/fuzz_st.c: both
# on the same bytes, in memory) for ~4 s: in make test a smoke run over its corpus;
# `make fuzz` runs it for minutes.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
fuzz_run fuzz_st 4 65536
