#!/bin/sh
# make run: start nlpd on conf/nlpd.conf (replaced by the daemon work).
exec "${1:-build}/nlpd" -c conf/nlpd.conf
