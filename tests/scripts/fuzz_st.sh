#!/bin/bash
# The safetensors header parser and the config.json reader (tests/fuzz/fuzz_st.c: both
# on the same bytes, in memory) for ~15 s.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
fuzz_run fuzz_st 15 65536
