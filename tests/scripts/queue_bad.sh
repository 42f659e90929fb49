#!/usr/bin/env bash
# Queue mode, what goes wrong: malformed entries (bad protobuf, bad JSON, both fields or
# neither, bad tasks and options) each get one error result with the ZeroMQ status codes,
# in the job's encoding, and are acknowledged; an entry added long before a daemon took
# it is DEADLINE_EXCEEDED (deadlines count from the stream timestamp); a poison job (it
# fails INTERNAL every time: a model whose output overflows) goes to dead_letter with the
# reason after max_deliveries, with one error result, and is acknowledged; config errors.
source tests/scripts/queue_lib.bash
start_redis
# an entry "added" in 1970, before the group exists (it is created from the stream's start)
rcli XADD $STREAM 1000-1 json '{"id":"old","task":"summarize","text":"a b c"}' > /dev/null
write_qconf d1 "claim_idle_ms = 1000;"
start_qd d1

# the poison job, on a daemon whose model computes infinities: started first, so that
# its three deliveries (claim_idle_ms apart) go on while d1 answers the malformed entries
mkdir -p "$TMP/poison"
$PY - "$MODEL" "$TMP/poison" <<'PY'
import json, shutil, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for f in ("config.json", "spiece.model"):
    shutil.copy(f"{src}/{f}", f"{dst}/{f}")
b = bytearray(open(f"{src}/model.safetensors", "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
s, e = h["lm_head.weight"]["data_offsets"]   # BF16 2^127: every logit overflows
b[8 + n + s:8 + n + e] = b"\x00\x7f" * ((e - s) // 2)
open(f"{dst}/model.safetensors", "wb").write(b)
PY
write_qconf p1 'stream = "poison:jobs"; results = "poison:results"; dead_letter = "poison:dead";
    claim_idle_ms = 300; max_deliveries = 3;'
start_qd p1 "$TMP/poison"
entry=$(rcli XADD poison:jobs '*' json '{"id":"p","task":"summarize","text":"poison"}')

$PY $QT bad "$URL" $STREAM $GROUP $RESULTS $DEAD || { show_logs d1; exit 1; }
res=$(rcli XRANGE $RESULTS - + | grep -a -A5 '^1000-1$' | grep -a '^{')
echo "$res" | grep -q '"id":"old","status":"DEADLINE_EXCEEDED","error":"deadline passed' ||
    { echo "FAIL: the entry of 1970: $res" >&2; show_logs d1; exit 1; }

for i in $(seq 1 300); do
    [ "$(rcli XLEN poison:dead)" = 1 ] && break
    sleep 0.1
done
dead=$(rcli XRANGE poison:dead - +)
echo "$dead" | grep -q "^$entry\$" && echo "$dead" | grep -q "^delivered 3 times" &&
    echo "$dead" | grep -q 'last: INTERNAL' &&
    echo "$dead" | grep -qx 'deliveries' && echo "$dead" | grep -qx '{"id":"p".*' || {
    echo "FAIL: dead letter: $dead" >&2; show_logs p1; exit 1; }
sleep 0.7   # claimed again after it went? (it must not be: it was acknowledged)
[ "$(rcli XLEN poison:dead)" = 1 ] || { echo "FAIL: dead-lettered twice" >&2; exit 1; }
res=$(rcli XRANGE poison:results - +)
[ "$(echo "$res" | grep -c '^{')" = 1 ] && echo "$res" | grep -q '"id":"p","status":"INTERNAL"' ||
    { echo "FAIL: poison results: $res" >&2; exit 1; }
[ "$(rcli XPENDING poison:jobs $GROUP | head -1)" = 0 ] ||
    { echo "FAIL: the poison job is still pending" >&2; exit 1; }
for d in d1 p1; do
    stop_qd $d
    [ "$QD_RC" = 0 ] || { echo "FAIL: $d exit code $QD_RC" >&2; show_logs $d; exit 1; }
done

# config errors: exit 2 naming the problem
"$B/nlpd" --queue http://x --check-config -c "$TMP/d1.conf" > /dev/null 2> "$TMP/err"
[ $? = 2 ] && grep -q "not redis://HOST:PORT or unix:///PATH" "$TMP/err" ||
    { echo "FAIL: --queue http://x: $(cat "$TMP/err")" >&2; exit 1; }
sed -i 's/claim_idle_ms = 1000;/claim_idle_ms = 1000; bogus = 1;/' "$TMP/d1.conf"
"$B/nlpd" --check-config -c "$TMP/d1.conf" > /dev/null 2> "$TMP/err"
[ $? = 2 ] && grep -q "d1.conf:7: unknown setting 'queue.bogus'" "$TMP/err" ||
    { echo "FAIL: queue.bogus: $(cat "$TMP/err")" >&2; exit 1; }
echo "ok: malformed entries answered, the 1970 entry DEADLINE_EXCEEDED," \
    "the poison job dead-lettered after 3 deliveries"
