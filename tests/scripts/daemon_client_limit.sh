#!/usr/bin/env bash
# Per-client limit (issue 20): with limits.max_client_documents = 2, a client with two
# documents accepted and not answered has its next request refused OVERLOADED, naming
# the limit, while another client is still accepted and served; once its work is
# answered, the first client is accepted again. A ZeroMQ client is its connection; an
# HTTP client is its bearer token, whatever connections it uses (429 past the limit).
. tests/scripts/daemon_lib.bash

HP=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'token-a\ntoken-b\n' > "$TMP/tokens"
write_conf "
http = { bind = \"127.0.0.1:$HP\"; tokens_file = \"$TMP/tokens\"; };
limits = { max_client_documents = 2; max_new_tokens = 1024; };
batching = { max_rows = 1; max_wait_ms = 0; };"
# The HTTP part's busy generations: long enough that the first still runs when token a's
# third request arrives, which is sent as soon as /metrics shows both accepted (a bounded
# poll, not a sleep); the sanitizers' builds are slow enough with fewer steps (token b
# waits for both of them, within its 60 s deadline).
export BUSY=512 LONG=256
# (the ZeroMQ part's two long generations: LONG steps; under the sanitizers 32, as 256
# steps twice outlasted the 30 s client b waits on a loaded machine's ASan build)
[ -n "${NLP_ASAN:-}" ] && BUSY=64 LONG=32
start_daemon
timeout 120 $PY - "$IPC" <<'PYEOF' || { show_log_on_failure; exit 1; }
import os, sys
sys.path.insert(0, "tests/scripts")
import daemon_wire as w

ep = sys.argv[1]
n = int(os.environ["LONG"])
long_opts = {1: n, 4: n}   # max_new_tokens, min_new_tokens: a generation of LONG steps
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
timeout 120 $PY - "http://127.0.0.1:$HP" <<'PYEOF' || { show_log_on_failure; exit 1; }
import json, os, sys, threading, urllib.request, urllib.error
url = sys.argv[1] + "/v1/summarize"

def post(token, body):
    rq = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(rq, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")

n = int(os.environ["BUSY"])
busy = {"text": "Token a keeps the daemon busy.", "max_new_tokens": n, "min_new_tokens": n}
res = []
ts = [threading.Thread(target=lambda: res.append(post("token-a", busy))) for _ in range(2)]
for t in ts:
    t.start()
import re, time

def in_flight():
    rq = urllib.request.Request(sys.argv[1] + "/metrics",
                                headers={"Authorization": "Bearer token-b"})
    with urllib.request.urlopen(rq, timeout=10) as r:
        m = re.search(rb"^nlpd_in_flight_requests (\d+)$", r.read(), re.M)
        return int(m.group(1)) if m else -1

end = time.time() + 30
while in_flight() < 2 and time.time() < end:   # both accepted (one runs, one waits)
    time.sleep(0.01)
third = post("token-a", {"text": "One more from a.", "max_new_tokens": 4})
other = post("token-b", {"text": "Token b is served.", "max_new_tokens": 4})
for t in ts:
    t.join(60)
fails = []
if not (third[0] == 429 and "max_client_documents" in json.dumps(third[1])):
    fails.append("token a's third request: %r" % (third,))
if other[0] != 200:
    fails.append("token b while a is at its limit: %r" % (other,))
if sorted(r[0] for r in res) != [200, 200]:
    fails.append("token a's two accepted requests: %r" % ([r[0] for r in res],))
for f in fails:
    print("FAIL:", f)
print("http: %d failure(s)" % len(fails))
sys.exit(1 if fails else 0)
PYEOF
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; exit 1; }
echo "daemon_client_limit: ok"
