#!/bin/bash
# The README's usage examples run as written (issue 21): every line of its two command
# blocks under "## Usage" (nlpc against a daemon, nlprun without one) is run from a
# directory laid out like the repository's root (build/, examples/, tests/data), with
# DIR the tiny test model and the daemon on the tiny model reached through
# $NLPD_ENDPOINT. Each must exit 0 and print something; the batch example must answer
# every line of examples/in.jsonl.
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; exit 1; }

# The blocks: the ```sh fences after "## Usage", up to the next "## ".
awk '/^## Usage/ { on = 1; next } on && /^## / { exit }
     on && /^```sh/ { blk = 1; next } on && /^```/ { blk = 0; next }
     on && blk { print }' README.md >"$TMP/cmds"
[ "$(grep -c 'build/nlpc ' "$TMP/cmds")" -ge 5 ] || fail "README: nlpc examples not found"
[ "$(grep -c 'build/nlprun ' "$TMP/cmds")" -ge 4 ] || fail "README: nlprun examples not found"
# Every file an example reads is shipped.
for f in $(grep -o '[a-z_/]*examples/[A-Za-z0-9_.-]*\|tests/data/[A-Za-z0-9_./-]*' "$TMP/cmds"); do
    [ -e "$f" ] || fail "README example names $f, which does not exist"
done

write_conf ""
start_daemon
W=$TMP/root
mkdir -p "$W"
ln -s "$(cd "$B" && pwd)" "$W/build"
ln -s "$PWD/examples" "$W/examples"
ln -s "$PWD/tests" "$W/tests"
n=0
while IFS= read -r line; do
    [ -z "$line" ] && continue
    n=$((n + 1))
    (cd "$W" && NLPD_ENDPOINT=$IPC DIR=$MODEL timeout 120 bash -c "${line//DIR/\$DIR}") \
        >"$TMP/out.$n" 2>"$TMP/err.$n" ||
        fail "README example exits $?: $line: $(tail -n 3 "$TMP/err.$n")"
    if [[ "$line" != *"> out.jsonl"* ]]; then
        [ -s "$TMP/out.$n" ] || fail "README example printed nothing: $line"
    fi
done <"$TMP/cmds"
[ "$n" -ge 10 ] || fail "only $n example lines ran"
lines=$(grep -c . examples/in.jsonl)
[ "$(grep -c '"status":"OK"' "$W/out.jsonl")" -eq "$lines" ] ||
    fail "batch example: $(cat "$W/out.jsonl")"
stop_daemon
echo "ok: $n README example lines ran as written"
