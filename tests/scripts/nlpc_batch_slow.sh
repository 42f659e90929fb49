#!/bin/bash
# nlpc batch against a daemon made slow (one decoder row at a time, so 20 summaries queue
# up behind each other) with a per-request --timeout far below the queue's wait: every
# line is answered in order, none is written TIMEOUT, and the summary counts the lines
# whose replies came late (they were waited for because the daemon still owed them).
source tests/scripts/daemon_lib.bash
fail() { echo "FAIL: $*" >&2; show_log_on_failure; exit 1; }
# new tokens a line; fewer under the sanitizers, whose worker is over 10x slower (the
# requests' 60 s deadline passed in the queue with 24)
TOK=24
[ -n "${NLP_ASAN:-}" ] && TOK=6

write_conf 'batching = { max_rows = 1; max_wait_ms = 0; };'
start_daemon

for i in $(seq 0 19); do
    echo "{\"id\":\"s-$i\",\"text\":\"Document $i is about the weather, the markets and the news.\"}"
done >"$TMP/in.jsonl"
rc=0
timeout 120 "$B/nlpc" --connect "$IPC" batch --task summarize --max-new-tokens $TOK \
    --window 20 --timeout 100 -o "$TMP/out.jsonl" <"$TMP/in.jsonl" 2>"$TMP/err" || rc=$?
[ $rc -eq 0 ] || fail "rc=$rc: $(cat "$TMP/err")"
$PY - "$TMP/out.jsonl" <<'PYEOF' || fail "output"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["id"] for r in rows] == ["s-%d" % i for i in range(20)], [r.get("id") for r in rows]
bad = [r for r in rows if r["status"] != "OK"]
assert not bad, bad[:3]
PYEOF
grep -q "TIMEOUT" "$TMP/out.jsonl" "$TMP/err" && fail "TIMEOUT written: $(cat "$TMP/err")"
# the run really had replies later than --timeout (else this test tests nothing)
late=$(sed -n 's/.* \([0-9]*\) late.*/\1/p' "$TMP/err" | tail -1)
[ -n "$late" ] && [ "$late" -gt 0 ] || fail "no late replies counted: $(cat "$TMP/err")"
grep -q "20/20 lines" "$TMP/err" || fail "summary without the total: $(cat "$TMP/err")"
echo "nlpc_batch_slow: 20 lines answered, $late of them after --timeout, none TIMEOUT"
