#!/bin/bash
# The reply decoder of libnlpclient (tests/fuzz/fuzz_response.c) for ~3 s: in make test
# a smoke run over its corpus; `make fuzz` runs it for minutes.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
fuzz_run fuzz_response 3 16384
