#!/usr/bin/env python3
"""Every path and status of nlpd's HTTP front through Python's standard library (urllib),
checked against docs/http.yaml both ways: each status the document lists for a path is
produced here, and the server answers nothing the document does not list.

Run by tests/scripts/http_api.sh against a daemon it started with bearer tokens,
limits.queue_size = 3, limits.max_message_bytes = 4096, limits.default_deadline_ms = 400
(2500 under sanitizers), every task's max_new_tokens 16 and one decoder row (so requests queue). Usage: http_api.py BASE_URL TOKEN NLPD_PID.
Ends by stopping the daemon (SIGTERM) to see 503. Exit 0 when every check passed; each failure is printed."""
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

import yaml

BASE, TOKEN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
TASKS = ["summarize", "translate", "classify", "qa", "text2text"]
POSTS = ["/v1/" + t for t in TASKS] + ["/translate"]
GETS = ["/v1/models", "/healthz", "/readyz", "/metrics"]
# Listed in docs/http.yaml but not produced by a healthy daemon on purpose.
EXEMPT = {"500": "INTERNAL needs a daemon fault (the worker lost, out of memory)"}
BODY = {
    "/v1/summarize": {"text": "The quick brown fox jumps over the lazy dog."},
    "/v1/translate": {"text": "Good morning.", "to": "de"},
    "/v1/classify": {"text": "The match ended two to one.", "labels": ["sports", "politics"]},
    "/v1/qa": {"text": "Paris is the capital of France.", "question": "What is the capital?"},
    "/v1/text2text": {"text": "Answer yes or no: is water wet?"},
    "/translate": {"q": "Good morning.", "source": "en", "target": "de", "format": "text"},
}

seen = {}          # (path, method) -> set of statuses
failures = []
lock = threading.Lock()


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def call(method, path, body=None, token=TOKEN, raw=None, headers=None, timeout=60):
    """Returns (status, headers, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, text = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read().decode()
    if status == 405:   # documented under the path's own method
        method = "GET" if path in GETS else "POST"
    with lock:
        seen.setdefault((path, method.lower()), set()).add(str(status))
    ctype = hdrs.get("Content-Type", "")
    return status, hdrs, json.loads(text) if ctype.startswith("application/json") else text


def is_libre(path):
    return path == "/translate"


# ---- 200s and shapes ----
for p in POSTS:
    s, _, j = call("POST", p, BODY[p])
    check(s == 200, f"{p}: 200, got {s} {j}")
    if is_libre(p):
        check(isinstance(j.get("translatedText"), str), f"{p}: translatedText string: {j}")
    else:
        check(j.get("status") == "OK", f"{p}: status OK: {j}")
        check("input_tokens" in j and "truncated" in j, f"{p}: nlpc batch keys: {j}")
s, _, j = call("POST", "/v1/summarize", {"id": {"k": [1, 2]}, "text": "One. Two. Three."})
check(s == 200 and j.get("id") == {"k": [1, 2]} and list(j)[0] == "id", f"id echoed first: {j}")
s, _, j = call("POST", "/v1/classify", {"text": "a goal", "labels": "sports,politics"})
check(s == 200 and len(j.get("labels", [])) == 2, f"labels as a,b,c: {j}")
s, _, j = call("POST", "/v1/summarize", {"documents": ["one two", "three four"],
                                         "max_new_tokens": 8})
check(s == 200 and j["status"] == "OK" and len(j["results"]) == 2 and "timings" in j,
      f"documents: {j}")
s, _, j = call("POST", "/translate", {"q": ["Hello", "World"], "source": "auto", "target": "de"})
check(s == 200 and isinstance(j.get("translatedText"), list) and len(j["translatedText"]) == 2,
      f"LibreTranslate array: {j}")
s, _, j = call("POST", "/translate", {"q": "Hello", "target": "de"}, token=None,
               headers={})
check(s == 401 and set(j) == {"error"}, f"LibreTranslate without a key: 401 {{error}}: {s} {j}")
s, _, j = call("POST", "/translate", {"q": "Hello", "target": "de", "api_key": TOKEN}, token=None)
check(s == 200 and isinstance(j.get("translatedText"), str), f"LibreTranslate api_key: {s} {j}")
s, _, j = call("POST", "/translate", {"q": "Hello", "target": "de", "api_key": "nope"}, token=None)
check(s == 403 and set(j) == {"error"}, f"LibreTranslate wrong api_key: 403: {s} {j}")
for p in GETS:
    s, h, j = call("GET", p)
    check(s == 200, f"GET {p}: 200, got {s}")
s, h, m = call("GET", "/metrics")
check(h.get("Content-Type", "").startswith("text/plain; version=0.0.4"), "metrics content type")
check("nlpd_requests_total{" in m, "metrics has nlpd_requests_total")
s, _, j = call("GET", "/v1/models")
check(j["models"][0]["tasks"] == TASKS and j["models"][0]["languages"], f"models: {j}")

# ---- 400, 401, 403, 405, 413 on every path ----
bad_bodies = [
    (b'{"text": "x"', "not valid JSON"),
    (b'{"text": "\xff"}', "not valid UTF-8"),
    (b'{"text": "\\ud800"}', "lone UTF-16 surrogate"),
    (b'{"text": "a", "text": "b"}', "appears twice"),
    (b'["text"]', "not a JSON object"),
    (b'{"text": "a"} x', "text after"),
]
for p in POSTS:
    for raw, why in bad_bodies:
        s, _, j = call("POST", p, raw=raw)
        check(s == 400 and why in j.get("error", ""), f"{p} {why}: 400, got {s} {j}")
    if not is_libre(p):
        s, _, j = call("POST", p, {"text": 5})
        check(s == 400 and "must be a string" in j["error"], f"{p} text 5: {s} {j}")
        s, _, j = call("POST", p, {**BODY[p], "priority": "high"})
        check(s == 400 and "priority" in j["error"], f"{p} priority: {s} {j}")
        s, _, j = call("POST", p, {"text": "   "})
        check(s == 400, f"{p} empty text: {s} {j}")
    else:
        s, _, j = call("POST", p, {"q": "x"})
        check(s == 400 and "target" in j["error"], f"{p} no target: {s} {j}")
        s, _, j = call("POST", p, {"q": "x", "target": "de", "format": "html"})
        check(s == 400 and "format" in j["error"], f"{p} html: {s} {j}")
    s, _, j = call("POST", p, BODY[p], token=None)
    check(s == 401, f"{p} no token: 401, got {s}")
    s, _, j = call("POST", p, BODY[p], token="wrong-" + TOKEN)
    check(s == 403, f"{p} wrong token: 403, got {s}")
    s, _, j = call("GET", p)
    check(s == 405, f"GET {p}: 405, got {s}")
    big = {**BODY[p], ("q" if is_libre(p) else "text"): "word " * 2000}
    s, _, j = call("POST", p, big)
    check(s == 413, f"{p} 10 KB body: 413, got {s} {j}")
for p in GETS:
    s, _, _ = call("POST", p, {})
    check(s == 405, f"POST {p}: 405, got {s}")
for p in ["/v1/models", "/metrics"]:
    s, _, _ = call("GET", p, token=None)
    check(s == 401, f"GET {p} no token: 401, got {s}")
    s, _, _ = call("GET", p, token="x")
    check(s == 403, f"GET {p} wrong token: 403, got {s}")
for p in ["/healthz", "/readyz"]:
    s, _, _ = call("GET", p, token=None)
    check(s == 200, f"GET {p} open without a token: {s}")
s, _, j = call("GET", "/v1/nothing")
check(s == 404 and j["status"] == "UNKNOWN_TASK", f"unknown path: 404: {s} {j}")
seen.pop(("/v1/nothing", "get"), None)

# ---- 504 and 429: one decoder row kept busy by floods of long (1 s) generations ----
stop_flood = threading.Event()


def flood():
    while not stop_flood.is_set():
        try:
            # FLOOD tokens, EOS forbidden: a generation lasts about 0.7 s or more
            # whatever the machine, so a request queued behind two passes the deadline.
            n = int(os.environ.get("FLOOD", "384"))
            call("POST", "/v1/summarize", {"text": "a long text " * 10, "max_new_tokens": n,
                                           "min_new_tokens": n, "deadline_ms": 60000},
                 timeout=30)
        except Exception:
            time.sleep(0.05)


# Three floods: one generation running, the others' documents queued, so a request
# queued behind them waits two whole generations (past the default deadline) whatever
# the phase it comes in.
for _ in range(3):
    threading.Thread(target=flood, daemon=True).start()
time.sleep(0.3)
for p in POSTS:
    # Queued behind the floods past limits.default_deadline_ms:
    # DEADLINE_EXCEEDED. LibreTranslate's body has no deadline field: the default applies.
    # (429 while the queue is full: try again, for up to 30 s.)
    got = set()
    until = time.time() + 30
    while time.time() < until:
        s, _, j = call("POST", p, BODY[p])
        got.add(s)
        if s == 504:
            check("deadline" in j["error"], f"{p} 504 message: {j}")
            break
        time.sleep(0.2)
    check(504 in got, f"{p}: 504 queued behind a long generation (got {sorted(got)})")
    # Six at once into a queue of 3 documents: some are OVERLOADED.
    res = []
    ts = [threading.Thread(target=lambda: res.append(call("POST", p, BODY[p])))
          for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    over = [r for r in res if r[0] == 429]
    check(over, f"{p}: 429 with a full queue (got {sorted(r[0] for r in res)})")
    for s, h, j in over[:1]:
        check(h.get("Retry-After") == "1", f"{p} 429 Retry-After: {h.get('Retry-After')}")
        check("queue is full" in j["error"], f"{p} 429 message: {j}")

# ---- 503: stop the daemon while the floods keep it busy ----
long = threading.Thread(target=call, args=("POST", "/v1/text2text", {
    "text": "a long text", "max_new_tokens": int(os.environ.get("FLOOD", "384")),
    "deadline_ms": 60000}), daemon=True)
long.start()
time.sleep(0.2)   # queued behind the flood's generation: the drain takes seconds
os.kill(PID, signal.SIGTERM)
time.sleep(0.1)
for p in POSTS:
    s, _, j = call("POST", p, BODY[p])
    check(s == 503, f"{p} while stopping: 503, got {s} {j}")
s, _, j = call("GET", "/readyz")
check(s == 503 and j.get("ready") is False, f"readyz while stopping: {s} {j}")
stop_flood.set()

# ---- against docs/http.yaml ----
doc = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "../../docs/http.yaml")))
for path, ops in doc["paths"].items():
    for method, op in ops.items():
        listed = set(op["responses"])
        got = seen.get((path, method), set())
        for st in sorted(listed - got):
            check(st in EXEMPT, f"{method.upper()} {path}: documented {st} never produced")
        for st in sorted(got - listed):
            check(False, f"{method.upper()} {path}: answered {st}, not in docs/http.yaml")
for (path, method) in seen:
    check(path in doc["paths"] and method in doc["paths"][path] or method == "head",
          f"{method.upper()} {path} answered but not documented")

print(f"http_api.py: {len(failures)} failure(s); statuses seen: "
      + ", ".join(f"{m.upper()} {p} {sorted(s)}" for (p, m), s in sorted(seen.items())))
sys.exit(1 if failures else 0)
