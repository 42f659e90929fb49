#!/usr/bin/env python3
"""Hostile HTTP against nlpd's front: garbage, a header flood, bodies over the limit
(announced and chunked), slow senders, many idle connections. After each, a normal
request is served. Run by http_hostile.sh against a daemon with http.max_connections =
32, http.timeout_s = 1 and limits.max_message_bytes = 4096. Usage: http_hostile.py PORT
Waits for a timeout are bounded polls for the close, not fixed sleeps."""
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

PORT = int(sys.argv[1])
URL = f"http://127.0.0.1:{PORT}"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def served(what):
    """A normal request is answered 200."""
    try:
        req = urllib.request.Request(URL + "/v1/summarize", method="POST",
                                     data=b'{"text":"Still here?","max_new_tokens":4}')
        with urllib.request.urlopen(req, timeout=30) as r:
            ok = r.status == 200 and json.loads(r.read())["status"] == "OK"
    except Exception as e:   # noqa: BLE001 - any failure is the finding
        ok = False
        print("   ", what, "->", e)
    check(ok, f"not served after {what}")


def raw(data, read=True, timeout=10):
    """Sends bytes on a fresh connection; returns what comes back (until close/timeout)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass   # the server may close before it has read it all
    out = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except OSError:
            pass
    s.close()
    return out


def status(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def started(data):
    """raw(data) in a thread, begun now: the cases the server closes only at
    http.timeout_s wait side by side instead of one after the other. Returns a call
    that gives raw's answer."""
    out = []
    t = threading.Thread(target=lambda: out.append(raw(data)))
    t.start()
    return lambda: (t.join(), out[0])[1]


# garbage
GARBAGE = [b"\x00\xff\xfe garbage \r\n\r\n", b"GET\r\n\r\n", b"HELLO / FTP/9.9\r\n\r\n",
           bytes(range(256)) * 64, b"POST /v1/qa HTTP/1.1\r\nContent-Length: -5\r\n\r\n"]
body = b'{"text":"' + b"x" * 20000 + b'"}'
chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                   for i in range(0, len(body), 1000)) + b"0\r\n\r\n"
chunked_answer = started(b"POST /v1/summarize HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
for junk, answer in [(j, started(j)) for j in GARBAGE]:
    r = answer()
    check(r == b"" or status(r) in (400, 404, 405, 413, 431, 501, 505),
          f"garbage {junk[:20]!r}: {r[:60]!r}")
served("garbage")

# header flood: 200 KB of headers on one request, and one 100 KB header
flood = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
    b"X-Flood-%d: %s\r\n" % (i, b"y" * 90) for i in range(2000)) + b"\r\n"
r = raw(flood)
check(r == b"" or status(r) in (400, 413, 431), f"header flood: {r[:60]!r}")
r = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 100000 + b"\r\n\r\n")
check(r == b"" or status(r) in (400, 413, 431), f"one huge header: {r[:60]!r}")
served("header floods")

# bodies over the limit: announced (answered before the body is sent) and chunked
t0 = time.time()
r = raw(b"POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
        b"Content-Type: application/json\r\n\r\n")
check(status(r) == 413 and b"max_message_bytes" in r, f"Content-Length 100 MB: {r[:200]!r}")
# http.timeout_s = 1: a 413 that waited for the body (or the close) would take over 1 s
check(time.time() - t0 < 0.8, "a 413 for a body never sent took the connection timeout "
      f"({time.time() - t0:.2f} s)")
r = chunked_answer()   # sent with the garbage
check(status(r) == 413, f"chunked 20 KB: {r[:200]!r}")
try:
    req = urllib.request.Request(URL + "/v1/summarize", method="POST", data=body)
    urllib.request.urlopen(req, timeout=30)
    check(False, "urllib 20 KB: accepted")
except urllib.error.HTTPError as e:
    check(e.code == 413, f"urllib 20 KB: {e.code}")
except OSError:
    pass   # the server may close while urllib still sends: no answer is also a refusal
served("oversize bodies")

# slow senders: headers and a body that never finish; closed after http.timeout_s
slow = []
for i in range(5):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"POST /v1/summarize HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"te")
    slow.append(s)
s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
s.sendall(b"GET /heal")
slow.append(s)
served("slow senders (while they wait)")


def closed_by_server(socks, bound=20):
    """How many of socks the server closes within bound seconds (each read blocks
    until the close: the poll ends as soon as http.timeout_s has passed)."""
    n = 0
    end = time.time() + bound
    for s in socks:
        try:
            s.settimeout(max(0.1, end - time.time()))
            n += s.recv(100) == b""
        except socket.timeout:
            pass
        except OSError:
            n += 1   # reset by the server: closed too
    return n


closed = closed_by_server(slow)
for s in slow:
    s.close()
check(closed == len(slow), f"slow senders: {closed}/{len(slow)} closed after http.timeout_s")

# many idle connections: within the limit others are served; past it, served again once
# the idle ones time out
idle = [socket.create_connection(("127.0.0.1", PORT), timeout=10) for _ in range(28)]
served("28 idle connections")
more = []
for _ in range(60):
    try:
        more.append(socket.create_connection(("127.0.0.1", PORT), timeout=2))
    except OSError:
        break
n = closed_by_server(idle)   # http.timeout_s = 1
check(n == len(idle), f"idle connections: {n}/{len(idle)} closed after http.timeout_s")
served("88 idle connections, after the timeout")
for s in idle + more:
    s.close()

print(f"http_hostile.py: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
