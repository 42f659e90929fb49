#!/usr/bin/env bash
# Classify requests do not wait for a running generation (issue 14): the worker runs
# scoring jobs between its decode steps (docs/daemon.md, "Worker").
#  1. A summarize request of 4 documents, each made to run 150 tokens (min_new_tokens =
#     max_new_tokens), is sent; once its rows run (stats: peak_rows > 0) and while it is
#     still unanswered, a classify request comes from another client. Its reply must
#     arrive while the summarize is still unanswered, and the summarize must then be
#     answered OK with 4 summaries of 150 tokens.
#  2. The classify result (labels and probabilities, as doubles) must equal, bit for bit,
#     the same classify sent to the idle daemon afterwards, and nlprun's (--json prints 17
#     digits, which give back the same double).
#  3. Stats stay consistent: in_flight back to 0, 6 documents counted; SIGTERM exits 0.
# Figures: how long the summarize ran, when the classify was answered within it.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_new_tokens = 150; };
batching = { max_wait_ms = 0; max_rows = 16; };'
start_daemon

TEXT="The match ended in a draw after extra time, and both coaches praised the defence."
LABELS="sports,politics,science"
echo "$TEXT" | timeout 60 "$B/nlprun" classify --model "$MODEL" --labels "$LABELS" --json \
    > "$TMP/nlprun.json" || { echo "nlprun classify failed"; exit 1; }

timeout 120 $PY - "$IPC" "$TEXT" "$LABELS" "$TMP/nlprun.json" <<'PYEOF' || { show_log_on_failure; exit 1; }
import json, sys, time
sys.path.insert(0, "tests/scripts")
from daemon_wire import (OK, NAMES, Resp, call, check, classify_body, dealer, double,
                         failures, one, parse, request)

ep, text, labels, nlprun_json = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
N_DOCS, TOKENS = 4, 150


def label_scores(r):
    """[(label, probability)] of the response's one document, best first."""
    check(len(r.results) == 1, "classify: one result (%d)" % len(r.results))
    out = []
    for ls in r.results[0].get(3, []):
        f = parse(ls)
        out.append((one(f, 1, b"").decode(), double(one(f, 2, b""))))
    return out


def classify_req(rid):
    return request(rid, "classify", classify_body(labels), docs=[text])


summ, cls, mon = dealer(ep), dealer(ep), dealer(ep)
docs = ["Document %d: the council met on Tuesday to discuss the new bridge, the budget "
        "and the schedule of the works along the river." % i for i in range(N_DOCS)]
t0 = time.time()
summ.send(request(1, "summarize", docs=docs, options={1: TOKENS, 4: TOKENS}))
# wait until the generation runs
running = False
end = time.time() + 30
while time.time() < end and not running:
    r = call(mon, request(9000, "stats"))
    running = bool(r and r.stats and one(r.stats, 15, 0) > 0)
    if not running:
        time.sleep(0.002)
check(running, "the summarize started (peak_rows > 0)")
check(not summ.poll(0), "the summarize is still running when the classify is sent")
t_sent = time.time()
cls.send(classify_req(2))
got_cls = got_summ = None
t_cls = t_summ = None
end = time.time() + 60
while time.time() < end and (got_cls is None or got_summ is None):
    if got_cls is None and cls.poll(0):
        got_cls, t_cls = Resp(cls.recv_multipart()[-1]), time.time()
        # the summarize has not been answered yet
        check(got_summ is None and not summ.poll(0),
              "classify answered before the summarize")
    if got_summ is None and summ.poll(20):
        got_summ, t_summ = Resp(summ.recv_multipart()[-1]), time.time()
check(got_cls is not None and got_summ is not None, "both answered")
if got_cls is not None and got_summ is not None:
    check(t_cls < t_summ, "classify reply (%.3f s) before the summarize's (%.3f s)" %
          (t_cls - t0, t_summ - t0))
    check(got_cls.code == OK and got_cls.result_codes() == [OK],
          "classify OK: %s %r" % (NAMES.get(got_cls.code), got_cls.message))
    check(got_summ.code == OK and got_summ.result_codes() == [OK] * N_DOCS,
          "summarize OK: %s %r" % (NAMES.get(got_summ.code), got_summ.message))
    out_toks = [one(res, 8, 0) for res in got_summ.results]
    check(out_toks == [TOKENS] * N_DOCS, "summaries of %d tokens: %r" % (TOKENS, out_toks))
    print("summarize: %d documents x %d tokens in %.2f s; classify sent at %.2f s, answered "
          "%.3f s later" % (N_DOCS, TOKENS, t_summ - t0, t_sent - t0, t_cls - t_sent),
          flush=True)
    during = label_scores(got_cls)
    idle = label_scores(call(cls, classify_req(3)))
    check(len(during) == len(labels), "classify: %d labels (%r)" % (len(labels), during))
    check(during == idle, "classify during the summarize %r == idle %r" % (during, idle))
    ref = [(l["label"], l["score"]) for l in json.load(open(nlprun_json))["labels"]]
    check(during == ref, "classify during the summarize %r == nlprun's %r" % (during, ref))
    print("classify: %r (idle daemon and nlprun alike)" % (during,), flush=True)
# stats: nothing left in flight, every document counted
end = time.time() + 10
while True:
    st = call(mon, request(9001, "stats")).stats
    if one(st, 14, 0) == 0 or time.time() > end:
        break
    time.sleep(0.01)
check(one(st, 14, 0) == 0, "in_flight back to 0 (%d)" % one(st, 14, 0))
check(one(st, 2, 0) == N_DOCS + 2, "documents counted: %d, expected %d" %
      (one(st, 2, 0), N_DOCS + 2))
check(one(st, 4, 0) == 0, "queue_depth back to 0 (%d)" % one(st, 4, 0))
sys.exit(1 if failures else 0)
PYEOF
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_interleave: ok"
