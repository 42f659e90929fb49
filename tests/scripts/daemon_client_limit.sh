#!/usr/bin/env bash
# Per-client limit (issue 20): with limits.max_client_documents = 2, a client with two
# documents accepted and not answered has its next request refused OVERLOADED, naming
# the limit, while another client is still accepted and served; once its work is
# answered, the first client is accepted again.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_client_documents = 2; max_new_tokens = 256; };
batching = { max_rows = 1; max_wait_ms = 0; };'
start_daemon
timeout 120 $PY - "$IPC" <<'PYEOF' || { show_log_on_failure; exit 1; }
import sys
sys.path.insert(0, "tests/scripts")
import daemon_wire as w

ep = sys.argv[1]
long_opts = {1: 256, 4: 256}   # max_new_tokens, min_new_tokens: a generation of 256 steps
a, b = w.dealer(ep), w.dealer(ep)
for rid in (1, 2):   # two documents of client a, accepted (one runs, one waits)
    a.send(w.request(rid, "summarize", docs=["Client a keeps the daemon busy %d." % rid],
                     options=long_opts))
r = w.call(a, w.request(3, "summarize", docs=["One more from a."], options={1: 4}))
w.check(r is not None and r.code == w.OVERLOADED and "max_client_documents" in r.message,
        "client a's third document: %r" % (r,))
r = w.call(b, w.request(4, "summarize", docs=["Client b is served."], options={1: 4}))
w.check(r is not None and r.code == w.OK, "client b, while a is at its limit: %r" % (r,))
got = {}
while len(got) < 2:   # a's two long requests are answered
    x = w.recv(a)
    w.check(x is not None, "client a's accepted requests are answered")
    if x is None:
        break
    got[x.id] = x.code
w.check(got == {1: w.OK, 2: w.OK}, "client a's answers: %r" % got)
r = w.call(a, w.request(5, "summarize", docs=["a again."], options={1: 4}))
w.check(r is not None and r.code == w.OK, "client a after its work was answered: %r" % (r,))
print("%d failure(s)" % len(w.failures))
sys.exit(1 if w.failures else 0)
PYEOF
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; exit 1; }
echo "daemon_client_limit: ok"
