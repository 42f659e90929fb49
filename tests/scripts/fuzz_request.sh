#!/bin/bash
# The request decoder and validator of nlpd (tests/fuzz/fuzz_request.c) for ~15 s.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
fuzz_run fuzz_request 15 16384
