#!/bin/bash
# The reply decoder of libnlpclient (tests/fuzz/fuzz_response.c) for ~10 s.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
fuzz_run fuzz_response 10 16384
