#!/bin/bash
# The request decoder and validator of nlpd (tests/fuzz/fuzz_request.c) for ~4 s: in
# make test a smoke run over its corpus; `make fuzz` runs it for minutes.
set -u
. "$(dirname "$0")/lib/fuzz.bash"
fuzz_run fuzz_request 4 16384
