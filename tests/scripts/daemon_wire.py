#!/usr/bin/python3
"""Raw-wire test client for nlpd (used by tests/scripts/daemon_*.sh).

Speaks nlp.v1 with a tiny hand-rolled protobuf encoder/decoder, so tests can send
exactly the bytes they want (truncated frames, wrong wire types, invalid UTF-8) without
generated code. Every wait is bounded; any failed expectation exits 1 with a message.

  daemon_wire.py badinput ENDPOINT [ENDPOINT2]   every bad input gets its status
  daemon_wire.py sigterm ENDPOINT PID N          N requests in flight, SIGTERM, all OK
  daemon_wire.py deadline ENDPOINT               deadline_ms=1 behind a backlog
  daemon_wire.py priority ENDPOINT               higher priority runs first
  daemon_wire.py overload ENDPOINT               a small queue answers OVERLOADED
  daemon_wire.py pipeline PUSH_EP PULL_EP        the PULL -> PUSH pipeline
  daemon_wire.py envelope ENDPOINT ENV_BYTES     routing-frame bounds, unread replies
"""
import os
import random
import signal
import sys
import time

import zmq

# nlp.v1.StatusCode
OK, INVALID_ARGUMENT, UNKNOWN_TASK, INPUT_TOO_LONG, OVERLOADED = 0, 1, 2, 3, 4
DEADLINE_EXCEEDED, INTERNAL, MESSAGE_TOO_LARGE, TOO_MANY_DOCUMENTS = 5, 6, 7, 8
SHUTTING_DOWN, MALFORMED = 9, 10
NAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}

TIMEOUT_MS = int(os.environ.get("NLP_WIRE_TIMEOUT_MS", "30000"))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, flush=True)
    return cond


# ---- protobuf encoding ----
def varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wt):
    return varint(field << 3 | wt)


def f_varint(field, v):
    return key(field, 0) + varint(v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


TASKS = {"summarize": 2, "translate": 3, "classify": 4, "qa": 5, "text2text": 6,
         "health": 7, "stats": 8}


def request(rid, task=None, task_body=b"", docs=(), options=None, deadline_ms=None,
            priority=None):
    out = f_varint(1, rid)
    if task is not None:
        out += f_bytes(TASKS[task], task_body)
    for d in docs:
        out += f_bytes(9, d)
    if options:
        o = b""
        for fnum, val in sorted(options.items()):
            o += f_varint(fnum, val)
        out += f_bytes(10, o)
    if deadline_ms is not None:
        out += f_varint(11, deadline_ms)
    if priority is not None:
        out += f_varint(12, priority)
    return out


def classify_body(labels):
    return b"".join(f_bytes(1, l) for l in labels)


# ---- protobuf decoding (generic: field -> list of raw values) ----
def parse(buf):
    fields, i = {}, 0
    while i < len(buf):
        k, i = read_varint(buf, i)
        f, wt = k >> 3, k & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type %d" % wt)
        fields.setdefault(f, []).append(v)
    return fields


def read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def one(fields, f, default=None):
    return fields.get(f, [default])[0]


def double(b):
    import struct
    return struct.unpack("<d", b)[0] if b else 0.0


class Resp:
    def __init__(self, raw):
        p = parse(raw)
        self.id = one(p, 1, 0)
        st = parse(one(p, 2, b""))
        self.code = one(st, 1, 0)
        self.message = one(st, 2, b"").decode("utf-8", "replace")
        self.results = [parse(r) for r in p.get(3, [])]
        self.health = parse(one(p, 5)) if 5 in p else None
        self.stats = parse(one(p, 6)) if 6 in p else None

    def result_codes(self):
        return [one(parse(one(r, 1, b"")), 1, 0) for r in self.results]

    def __repr__(self):
        return "Resp(id=%d, %s %r, %d results)" % (self.id, NAMES.get(self.code), self.message,
                                                    len(self.results))


def stats_codes(stats):
    out = {}
    for cc in stats.get(3, []):
        c = parse(cc)
        out[one(c, 1, 0)] = one(c, 2, 0)
    return out


# ---- transport ----
CTX = zmq.Context()


def dealer(ep):
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    return s


def recv(sock, timeout_ms=TIMEOUT_MS):
    if not sock.poll(timeout_ms):
        return None
    frames = sock.recv_multipart()
    return Resp(frames[-1])


def call(sock, payload, timeout_ms=TIMEOUT_MS, frames=None):
    sock.send_multipart(frames if frames else [payload])
    r = recv(sock, timeout_ms)
    if r is None:
        check(False, "no reply within %d ms" % timeout_ms)
    return r


def expect(sock, name, payload, code, rid=None, frames=None):
    r = call(sock, payload, frames=frames)
    if r is None:
        return None
    ok = check(r.code == code, "%s: expected %s, got %s (%r)" % (name, NAMES[code],
                                                                  NAMES.get(r.code), r.message))
    if rid is not None:
        check(r.id == rid, "%s: id %d echoed as %d" % (name, rid, r.id))
    if ok:
        print("ok  %-28s %-20s %s" % (name, NAMES[code], r.message), flush=True)
    return r


def normal(sock, rid, task="summarize"):
    body = classify_body(["sports", "politics"]) if task == "classify" else b""
    r = expect(sock, "normal %s" % task, request(rid, task, body,
               docs=["The quick brown fox jumps over the lazy dog."],
               options={1: 4}), OK, rid)
    if r:
        check(len(r.results) == 1, "normal request: one result")
        check(r.result_codes() == [OK], "normal request: document status OK")
    return r


# ---- scenarios ----
def badinput(ep, ep2=None):
    s = dealer(ep)
    rng = random.Random(42)
    counts = {}

    def exp(name, payload, code, rid=None, frames=None):
        counts[code] = counts.get(code, 0) + 1
        return expect(s, name, payload, code, rid, frames)

    # Field 0 with wire type 7 cannot start any protobuf, whatever follows.
    exp("random bytes", b"\x07" + bytes(rng.randrange(256) for _ in range(200)), MALFORMED)
    good = request(11, "summarize", docs=["a perfectly fine document " * 4])
    exp("truncated protobuf", good[:len(good) - 20], MALFORMED, 11)
    exp("documents as varint", f_varint(1, 12) + f_varint(9, 5), MALFORMED, 12)
    exp("task as fixed32", f_varint(1, 13) + key(2, 5) + b"\0\0\0\0", MALFORMED, 13)
    exp("empty document", request(14, "summarize", docs=[""]), INVALID_ARGUMENT, 14)
    exp("second document empty", request(15, "summarize", docs=["fine", ""]),
        INVALID_ARGUMENT, 15)
    exp("no documents", request(16, "summarize"), INVALID_ARGUMENT, 16)
    exp("no task", request(17, docs=["hello"]), UNKNOWN_TASK, 17)
    exp("unknown task field 40", f_varint(1, 18) + f_bytes(40, b"") + f_bytes(9, "hello"),
        UNKNOWN_TASK, 18)
    exp("empty frame", b"", UNKNOWN_TASK, 0)
    exp("empty label list", request(19, "classify", docs=["hello"]), INVALID_ARGUMENT, 19)
    exp("empty label", request(20, "classify", classify_body(["a", ""]), docs=["hello"]),
        INVALID_ARGUMENT, 20)
    exp("over-long input", request(21, "text2text", docs=["word " * 600]), INPUT_TOO_LONG, 21)
    exp("oversized message", request(22, "summarize", docs=["x" * 10000]), MESSAGE_TOO_LARGE, 22)
    # Beyond 4x the limit libzmq drops the connection unread: no reply, nothing else hurt.
    big = dealer(ep)
    big.send(request(33, "summarize", docs=["x" * 40000]))
    check(big.poll(500) == 0, "a frame over 4x the limit gets no reply")
    big.close()
    exp("invalid UTF-8 document", request(23, "summarize", docs=[b"ok \xff\xfe bad"]),
        INVALID_ARGUMENT, 23)
    exp("overlong UTF-8 encoding", request(24, "summarize", docs=[b"\xc0\xaf"]),
        INVALID_ARGUMENT, 24)
    exp("invalid UTF-8 label", request(25, "classify", classify_body([b"\xe2\x82"]),
        docs=["hello"]), INVALID_ARGUMENT, 25)
    exp("too many documents", request(26, "summarize", docs=["d"] * 5), TOO_MANY_DOCUMENTS, 26)
    exp("num_beams 0", request(27, "summarize", docs=["d"], options={2: 0}), INVALID_ARGUMENT, 27)
    exp("max_new_tokens too big", request(28, "summarize", docs=["d"], options={1: 100000}),
        INVALID_ARGUMENT, 28)
    exp("priority out of range", request(29, "summarize", docs=["d"], priority=1000),
        INVALID_ARGUMENT, 29)
    exp("translate without target", request(30, "translate", docs=["hello"]),
        INVALID_ARGUMENT, 30)
    exp("qa without question", request(31, "qa", docs=["context"]), INVALID_ARGUMENT, 31)
    # A REQ-style envelope (empty delimiter) is echoed back around the reply.
    s.send_multipart([b"", request(32, "stats")])
    if check(s.poll(TIMEOUT_MS), "stats with delimiter: reply"):
        fr = s.recv_multipart()
        check(len(fr) == 2 and fr[0] == b"", "delimiter echoed: %r" % fr[:1])

    # After all that, the daemon still serves everyone.
    counts[OK] = counts.get(OK, 0)
    normal(s, 100, "summarize")
    normal(s, 101, "classify")
    counts[OK] += 2
    eps = [ep] + ([ep2] if ep2 else [])
    for e in eps:
        t = dealer(e)
        r = expect(t, "health on " + e.split(":")[0], request(200, "health"), OK, 200)
        if r:
            check(r.health is not None and one(r.health, 1) == 1, "health ok=true")
        normal(t, 201, "text2text")
        counts[OK] += 1
        t.close()
    r = expect(s, "stats", request(300, "stats"), OK, 300)
    if r and check(r.stats is not None, "stats present"):
        by = stats_codes(r.stats)
        for code, n in counts.items():
            if code == OK:
                check(by.get(OK, 0) >= n, "stats: OK counted %d >= %d" % (by.get(OK, 0), n))
            else:
                check(by.get(code, 0) == n, "stats: %s counted %d, expected %d"
                      % (NAMES[code], by.get(code, 0), n))
        check(one(r.stats, 1, 0) >= sum(counts.values()), "stats: requests counted")
        check(one(r.stats, 2, 0) >= 4, "stats: documents completed")
        check(one(r.stats, 9, 0) >= 1, "stats: batches counted")
        print("stats:", {NAMES[c]: n for c, n in by.items()}, flush=True)
    s.close()


def wait_in_flight(sock, n, timeout_s=20):
    """Polls stats until n requests are accepted (queued or running)."""
    end = time.time() + timeout_s
    while time.time() < end:
        r = call(sock, request(9999, "stats"))
        if r and r.stats and one(r.stats, 14, 0) >= n:
            return True
        time.sleep(0.005)
    return False


def sigterm(ep, pid, n):
    socks = [dealer(ep) for _ in range(3)]
    ctl = dealer(ep)
    for i in range(n):
        # Long outputs keep the worker busy well past the signal.
        socks[i % 3].send(request(1000 + i, "text2text",
                                  docs=["request %d in flight at shutdown" % i] * 2,
                                  options={1: 48, 4: 48}))
    check(wait_in_flight(ctl, n), "all %d requests accepted before SIGTERM" % n)
    os.kill(pid, signal.SIGTERM)
    print("sent SIGTERM with %d requests in flight" % n, flush=True)
    late = call(ctl, request(5000, "summarize", docs=["too late"]))
    if late:
        check(late.code == SHUTTING_DOWN, "request after SIGTERM: got %s" % NAMES.get(late.code))
    seen = set()
    end = time.time() + TIMEOUT_MS / 1000
    while len(seen) < n and time.time() < end:
        for s in socks:
            while s.poll(10):
                r = Resp(s.recv_multipart()[-1])
                check(r.code == OK, "in-flight request %d: %s %r" % (r.id, NAMES.get(r.code),
                                                                     r.message))
                check(len(r.results) == 2, "request %d: two results" % r.id)
                seen.add(r.id)
    check(len(seen) == n, "answered %d of %d in-flight requests" % (len(seen), n))
    print("answered %d of %d" % (len(seen), n), flush=True)


def deadline(ep):
    s = dealer(ep)
    # A backlog: the worker runs one document at a time (max_rows = 1 in the test config).
    for i in range(2):
        s.send(request(400 + i, "text2text", docs=["backlog document %d" % i] * 2,
                       options={1: 48, 4: 48}))
    t0 = time.time()
    s.send(request(450, "text2text", docs=["in a hurry"], deadline_ms=1))
    got, order = {}, []
    end = time.time() + TIMEOUT_MS / 1000
    while len(got) < 3 and time.time() < end:
        if s.poll(100):
            r = Resp(s.recv_multipart()[-1])
            got[r.id] = r
            order.append(r.id)
            if r.id == 450:
                waited = time.time() - t0
    # The I/O thread answers an expired document itself: before the backlog is done.
    check(order[:1] == [450], "deadline answered first, without waiting for the backlog: %r"
          % order)
    if 450 in got and got[450].code == DEADLINE_EXCEEDED:
        print("ok  deadline answered after %.1f ms" % (waited * 1e3), flush=True)
    check(len(got) == 3, "all 3 answered (%d)" % len(got))
    if 450 in got:
        r = got[450]
        check(r.code == DEADLINE_EXCEEDED, "deadline_ms=1: got %s %r" % (NAMES.get(r.code),
                                                                         r.message))
        check(r.result_codes() == [DEADLINE_EXCEEDED], "document status DEADLINE_EXCEEDED")
        print("ok  deadline_ms=1 -> %s (%s)" % (NAMES.get(r.code), r.message), flush=True)
    for i in range(2):
        if 400 + i in got:
            check(got[400 + i].code == OK, "backlog %d: %s" % (i, NAMES.get(got[400 + i].code)))
    normal(s, 460)


def priority(ep):
    """With one document per batch, a late high-priority request overtakes the queue."""
    s = dealer(ep)
    for i in range(5):
        s.send(request(900 + i, "text2text", docs=["low priority document %d" % i],
                       options={1: 48, 4: 48}, priority=-10))
    s.send(request(950, "text2text", docs=["urgent document"], options={1: 8}, priority=50))
    order = []
    end = time.time() + TIMEOUT_MS / 1000
    while len(order) < 6 and time.time() < end:
        if s.poll(100):
            r = Resp(s.recv_multipart()[-1])
            check(r.code == OK, "priority request %d: %s" % (r.id, NAMES.get(r.code)))
            order.append(r.id)
    check(len(order) == 6, "all 6 answered (%d)" % len(order))
    # At most the one low-priority document already running finishes first.
    check(950 in order[:2], "priority 50 answered among the first two: %r" % order)
    print("ok  priority order %r" % order, flush=True)


def overload(ep):
    s = dealer(ep)
    n = 12
    for i in range(n):
        s.send(request(600 + i, "text2text", docs=["overload document %d" % i] * 2,
                       options={1: 48, 4: 48}))
    codes = {}
    end = time.time() + TIMEOUT_MS / 1000
    while sum(codes.values()) < n and time.time() < end:
        if s.poll(100):
            r = Resp(s.recv_multipart()[-1])
            codes[r.code] = codes.get(r.code, 0) + 1
            if r.code == OK:
                check(len(r.results) == 2, "accepted request %d: two results" % r.id)
    print("overload:", {NAMES[c]: k for c, k in codes.items()}, flush=True)
    check(sum(codes.values()) == n, "every request answered")
    check(codes.get(OVERLOADED, 0) >= 1, "at least one OVERLOADED")
    check(codes.get(OK, 0) >= 1, "at least one accepted")
    check(set(codes) <= {OK, OVERLOADED}, "only OK or OVERLOADED")
    r = expect(s, "stats", request(700, "stats"), OK, 700)
    if r and r.stats:
        by = stats_codes(r.stats)
        check(by.get(OVERLOADED, 0) == codes.get(OVERLOADED, 0), "stats count OVERLOADED")
    normal(s, 701)


def pipeline(push_ep, pull_ep):
    """We are the ventilator (PUSH, bound) and the sink (PULL, bound); nlpd connects."""
    vent = CTX.socket(zmq.PUSH)
    vent.setsockopt(zmq.LINGER, 0)
    vent.bind(push_ep)
    sink = CTX.socket(zmq.PULL)
    sink.setsockopt(zmq.LINGER, 0)
    sink.bind(pull_ep)
    n = 6
    for i in range(n):
        vent.send(request(800 + i, "summarize", docs=["pipeline document %d" % i],
                          options={1: 4}))
    vent.send(b"\x07garbage")
    got = {}
    end = time.time() + TIMEOUT_MS / 1000
    while len(got) < n + 1 and time.time() < end:
        if sink.poll(100):
            r = Resp(sink.recv())
            got[r.id] = r
    check(len(got) == n + 1, "pipeline: %d of %d answered" % (len(got), n + 1))
    for i in range(n):
        if 800 + i in got:
            check(got[800 + i].code == OK, "pipeline %d: %s" % (i, NAMES.get(got[800 + i].code)))
    if 0 in got:
        check(got[0].code == MALFORMED, "pipeline garbage: MALFORMED")
    print("pipeline: %d answered" % len(got), flush=True)


def stats_field(sock, field):
    r = call(sock, request(999, "stats"))
    return one(r.stats, field, 0) if r and r.stats else None


def envelope(ep, env_bytes):
    """Frames before the payload are bounded (count and bytes) and answered MALFORMED
    past the bound, routed by the routing id; a connection that never reads has its
    replies dropped past max_reply_backlog_bytes, counted, while others are served."""
    env_bytes = int(env_bytes)
    s = dealer(ep)
    health = request(1, "health")
    # Within the bounds, every frame comes back in order before the reply.
    frames = [b"hop-a", b"", b"hop-b"]
    s.send_multipart(frames + [health])
    if check(s.poll(TIMEOUT_MS), "3 routing frames: no reply"):
        got = s.recv_multipart()
        check(got[:-1] == frames, "routing frames echoed as %r" % got[:-1])
        check(Resp(got[-1]).code == OK, "3 routing frames: health answered")
    # 7 frames from a DEALER (+ the routing id the ROUTER adds = 8): still served.
    expect(s, "7 routing frames", None, OK, frames=[b"x"] * 7 + [health])
    # 8 or more: MALFORMED, reaching the client without its frames (routing id only).
    for n in (8, 9, 40):
        r = expect(s, "%d routing frames" % n, None, MALFORMED, frames=[b"x"] * n + [health])
        if r:
            check("limits" in r.message, "the reason names the limits: %r" % r.message)
    # Bytes: the routing id (5 bytes) plus the frames must stay within env_bytes.
    expect(s, "envelope at the byte limit", None, OK,
           frames=[b"e" * (env_bytes - 5), b"", health])
    expect(s, "envelope past the byte limit", None, MALFORMED,
           frames=[b"e" * (env_bytes - 5 + 1), b"", health])
    expect(s, "1 MiB routing frame", None, MALFORMED, frames=[b"e" * (1 << 20), health])
    # A client that never reads: tiny receive buffers on its side, so replies pile up in
    # the daemon; past max_reply_backlog_bytes they are dropped and counted.
    lazy = CTX.socket(zmq.DEALER)
    lazy.setsockopt(zmq.LINGER, 0)
    lazy.setsockopt(zmq.RCVHWM, 1)
    lazy.setsockopt(zmq.RCVBUF, 4096)
    lazy.setsockopt(zmq.SNDHWM, 0)
    lazy.connect(ep)
    pad = [b"p" * (env_bytes - 5 - 1), b""]
    sent, dropped = 0, 0
    t_end = time.time() + 30
    while time.time() < t_end and sent < 200000:
        for _ in range(500):
            lazy.send_multipart(pad + [health])
        sent += 500
        dropped = stats_field(s, 16) or 0
        if dropped > 0:
            break
    check(dropped > 0, "no reply dropped after %d unread health requests" % sent)
    print("unread: %d requests sent, %d replies dropped" % (sent, dropped), flush=True)
    normal(s, 7, "classify")   # everyone else is still served
    lazy.close()
    s.close()


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "badinput":
        badinput(*args)
    elif cmd == "sigterm":
        sigterm(args[0], int(args[1]), int(args[2]))
    elif cmd == "deadline":
        deadline(args[0])
    elif cmd == "priority":
        priority(args[0])
    elif cmd == "overload":
        overload(args[0])
    elif cmd == "pipeline":
        pipeline(args[0], args[1])
    elif cmd == "envelope":
        envelope(args[0], args[1])
    else:
        print(__doc__)
        return 2
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
