#!/bin/bash
# A line over the request size limit among normal lines: nlpc refuses that line before
# sending it (MESSAGE_TOO_LARGE, for that line only), so neither the daemon's own refusal
# nor ZeroMQ's dropped connection (frames over 4x limits.max_message_bytes) reaches the
# other lines in flight. The same holds for one-shot nlpc.
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; show_log_on_failure; exit 1; }

write_conf 'limits = { max_message_bytes = 65536; };'
start_daemon

$PY - "$TMP/in.jsonl" <<'PYEOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(30):
        text = "Line %d is short." % i
        if i == 10:
            text = "x" * 70000            # over the daemon's 64 KiB
        if i == 20:
            text = "y " * 200000          # over 4x: ZeroMQ would drop the connection
        f.write(json.dumps({"id": i, "text": text}) + "\n")
PYEOF
rc=0
timeout 120 "$B/nlpc" --connect "$IPC" batch --task classify --labels a,b --window 32 \
    --max-message-bytes 65536 <"$TMP/in.jsonl" >"$TMP/out.jsonl" 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] || fail "rc=$rc (two lines fail: expect 1): $(cat "$TMP/err")"
$PY - "$TMP/out.jsonl" <<'PYEOF' || fail "output: $(head -c 2000 "$TMP/out.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == list(range(30)), [r["id"] for r in rows]
for r in rows:
    if r["id"] in (10, 20):
        assert r["status"] == "MESSAGE_TOO_LARGE" and "not sent" in r["error"], r
    else:
        assert r["status"] == "OK", r
PYEOF
# nothing big reached the daemon: it saw no MESSAGE_TOO_LARGE, ran the 28 others
"$B/nlpc" --connect "$IPC" --json stats >"$TMP/stats.json" || fail "stats"
$PY -c '
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
assert "MESSAGE_TOO_LARGE" not in s["responses"], s
assert s["documents"] == 28 and s["replies_dropped"] == 0, s
' "$TMP/stats.json" || fail "daemon stats: $(cat "$TMP/stats.json")"

# one-shot: refused locally, exit 1 like a server error, the daemon untouched
rc=0
head -c 70000 /dev/zero | tr '\0' 'z' >"$TMP/big.txt"
"$B/nlpc" --connect "$IPC" --max-message-bytes 65536 summarize - <"$TMP/big.txt" \
    2>"$TMP/err1" >/dev/null || rc=$?
[ $rc -eq 1 ] && grep -q "MESSAGE_TOO_LARGE" "$TMP/err1" || fail "one-shot rc=$rc: $(cat "$TMP/err1")"
echo "nlpc_batch_oversize: the two big lines refused locally, 28 others OK"
