#!/usr/bin/python3
"""Chaos client for nlpd (used by tests/scripts/chaos.sh and daemon_deadline_race.sh).

  chaos.py run   --ep EP [--ep EP2] --pid PID --seed S --seconds T --nlprun BIN --model DIR
                 [--max-docs N] [--rounds N]
      Rounds of random traffic from several DEALER and REQ sockets: random tasks, document
      counts (1..over the limit), short and long texts, deadlines from 1 ms to seconds,
      priorities (some out of range), decoding options, routing envelopes; faults:
      sockets closed with requests in flight, trickles of 1-10 ms deadlines, bad frames.
      Every reply is checked (its code is one the request allows, one result per
      document, the envelope echoed, each id answered once, on its own socket). After
      every round a normal request must be answered exactly as at the start (and as
      nlprun computes it), and stats' in_flight and queue_depth must return to 0. At the
      end requests are put in flight, SIGTERM is sent, and every accepted one must be
      answered OK (the shell checks the exit code). Prints the figures.
  chaos.py race  --ep EP
      The worker's deadline race, deterministically (the daemon runs max_wait_ms = 1000):
      a 2-document request, a 1-document request with a 50 ms deadline (it expires while
      the worker waits for company), 1.5 s idle, then a normal request must be computed.

Every loop is bounded in count and time; every wait has a timeout. Exit 0 when every
check passed, 1 otherwise (each failure printed with the seed and the round).
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

import zmq

B = os.environ.get("NLP_BUILD", "build")
sys.path.insert(0, os.path.join(B, "gen", "python"))
import nlp_pb2 as pb  # noqa: E402

OK, INVALID_ARGUMENT, UNKNOWN_TASK, INPUT_TOO_LONG, OVERLOADED = 0, 1, 2, 3, 4
DEADLINE_EXCEEDED, INTERNAL, MESSAGE_TOO_LARGE, TOO_MANY_DOCUMENTS = 5, 6, 7, 8
SHUTTING_DOWN, MALFORMED = 9, 10
NAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)
         and 0 <= v <= 10}

CTX = zmq.Context()
failures = []
CONTEXT = {"where": "start"}


def fail(msg):
    line = "FAIL [%s]: %s" % (CONTEXT["where"], msg)
    failures.append(line)
    print(line, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def name(code):
    return NAMES.get(code, "code %d" % code)


# ---- sockets ----
def dealer(ep):
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    return s


def req_socket(ep):
    s = CTX.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    return s


def parse_resp(raw):
    r = pb.Response()
    r.ParseFromString(raw)
    return r


# ---- requests ----
WORDS = ("the quick brown fox jumps over a lazy dog while markets rallied and the council "
         "voted on a new budget for schools roads and hospitals in the northern region after "
         "a long debate about taxes weather sports music science history").split()
LABELS = sorted(set(WORDS))
NORMAL_DOC = "The quick brown fox jumps over the lazy dog."
NORMAL_OPTS = {"max_new_tokens": 8}
NORMAL_LABELS = ["sports", "politics"]


def text(rng, long):
    n = rng.randint(60, 400) if long else rng.randint(1, 14)
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def set_task(m, task, rng=None, labels=None, question=None, to=None):
    if task == "summarize":
        m.summarize.SetInParent()
    elif task == "text2text":
        m.text2text.SetInParent()
    elif task == "translate":
        m.translate.target_lang = to or "de"
    elif task == "classify":
        m.classify.labels.extend(labels or NORMAL_LABELS)
    elif task == "qa":
        m.qa.question = question or "Who voted?"
    elif task == "health":
        m.health.SetInParent()
    elif task == "stats":
        m.stats.SetInParent()


def simple(rid, task, docs=(), options=None, **kw):
    m = pb.Request()
    m.id = rid
    set_task(m, task, **kw)
    m.documents.extend(docs)
    for k, v in (options or {}).items():
        setattr(m.options, k, v)
    return m


class Sent:
    """What a request allows back."""

    def __init__(self, rid, sock_name, allowed, n_docs, task, env=(), note=""):
        self.rid, self.sock, self.allowed, self.n_docs = rid, sock_name, allowed, n_docs
        self.task, self.env, self.note = task, tuple(env), note


class Chaos:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.eps = a.ep
        self.next_id = 1000
        self.fig = dict(requests=0, rounds=0, disconnects=0, tiny_deadlines=0, bad_frames=0,
                        envelopes=0, normal_checks=0)
        self.codes = {}
        self.dealers = {}      # name -> socket
        self.reqs = {}         # name -> socket
        self.pending = {}      # rid -> Sent
        self.ctl = dealer(self.eps[0])
        self.ref = None
        self.nsock = 0

    def rid(self):
        self.next_id += 1
        return self.next_id

    def new_dealer(self):
        self.nsock += 1
        n = "dealer%d" % self.nsock
        self.dealers[n] = dealer(self.eps[self.nsock % len(self.eps)])
        return n

    def new_req(self):
        self.nsock += 1
        n = "req%d" % self.nsock
        self.reqs[n] = req_socket(self.eps[self.nsock % len(self.eps)])
        return n

    # -- one random request: (Request message, allowed codes, n_docs) --
    def random_request(self):
        rng = self.rng
        task = rng.choice(["summarize", "translate", "classify", "qa", "text2text"])
        r = rng.random()
        if r < 0.5:
            nd = 1
        elif r < 0.8:
            nd = rng.randint(2, 4)
        elif r < 0.96:
            nd = rng.randint(5, self.a.max_docs)
        else:
            nd = rng.randint(self.a.max_docs + 1, self.a.max_docs + 4)
        docs = [text(rng, rng.random() < 0.2) for _ in range(nd)]
        labels = rng.sample(LABELS, rng.randint(1, 6))
        m = simple(self.rid(), task, docs, labels=labels,
                   to=rng.choice(["de", "fr", "ro", "es", "German"]),
                   question=rng.choice(["Who voted?", "What rallied?", "Where?"]))
        m.options.max_new_tokens = rng.randint(1, 12)
        if rng.random() < 0.3:
            m.options.num_beams = rng.randint(1, 3)
        elif rng.random() < 0.15:   # sampling (beam sampling is INVALID_ARGUMENT)
            m.options.temperature = rng.uniform(0.5, 1.5)
            m.options.seed = rng.randint(0, 1 << 40)
        allowed = {OK, OVERLOADED}
        d = rng.random()
        if d < 0.25:
            m.deadline_ms = rng.randint(1, 10)
            self.fig["tiny_deadlines"] += 1
        elif d < 0.45:
            m.deadline_ms = rng.randint(10, 300)
        elif d < 0.7:
            m.deadline_ms = rng.randint(300, 5000)
        if m.HasField("deadline_ms"):
            allowed.add(DEADLINE_EXCEEDED)
        if rng.random() < 0.7:
            m.priority = rng.randint(-100, 100)
        if nd > self.a.max_docs:
            allowed = {TOO_MANY_DOCUMENTS}
        elif rng.random() < 0.03:
            m.priority = rng.choice([-101, 101, 5000, -(1 << 31)])
            allowed = {INVALID_ARGUMENT}
        return m, allowed, nd, task

    def send_dealer(self, sname, m, allowed, nd, task, env=()):
        frames = list(env) + [m.SerializeToString()]
        self.dealers[sname].send_multipart(frames)
        self.pending[m.id] = Sent(m.id, sname, allowed, nd, task, env)
        self.fig["requests"] += 1
        if env:
            self.fig["envelopes"] += 1

    # -- reply checks --
    def check_reply(self, sname, frames):
        try:
            r = parse_resp(frames[-1])
        except Exception as e:  # noqa: BLE001
            fail("%s: reply does not parse: %s" % (sname, e))
            return None
        s = self.pending.pop(r.id, None)
        if s is None:
            fail("%s: reply with unknown or repeated id %d (%s)" % (sname, r.id,
                                                                    name(r.status.code)))
            return r
        self.codes[r.status.code] = self.codes.get(r.status.code, 0) + 1
        check(s.sock == sname, "id %d sent on %s answered on %s" % (r.id, s.sock, sname))
        if not check(r.status.code in s.allowed,
                     "id %d (%s, %d docs%s): got %s %r, allowed %s"
                     % (r.id, s.task, s.n_docs, s.note, name(r.status.code), r.status.message,
                        sorted(name(c) for c in s.allowed))):
            return r
        if sname.startswith("dealer"):
            check(tuple(frames[:-1]) == s.env, "id %d: envelope %r echoed as %r"
                  % (r.id, s.env, tuple(frames[:-1])))
        if r.status.code in (OK, DEADLINE_EXCEEDED):
            if check(len(r.results) == s.n_docs, "id %d: %d results for %d documents"
                     % (r.id, len(r.results), s.n_docs)):
                dc = [x.status.code for x in r.results]
                if r.status.code == OK:
                    check(all(c == OK for c in dc), "id %d OK with document codes %r" % (r.id, dc))
                else:
                    check(set(dc) <= {OK, DEADLINE_EXCEEDED} and DEADLINE_EXCEEDED in dc,
                          "id %d DEADLINE_EXCEEDED with document codes %r" % (r.id, dc))
        return r

    def drain(self, timeout_s, want_ids=None):
        """Receives on every live socket until nothing is pending (or want_ids answered)."""
        end = time.time() + timeout_s
        poller = zmq.Poller()
        socks = dict(self.dealers)
        socks.update(self.reqs)
        for s in socks.values():
            poller.register(s, zmq.POLLIN)
        by_sock = {s: n for n, s in socks.items()}
        while time.time() < end:
            live = set(s.sock for s in self.pending.values())
            if want_ids is not None:
                live = set(self.pending[i].sock for i in want_ids if i in self.pending)
            if not live:
                return True
            for s, _ in poller.poll(50):
                for _ in range(100):
                    try:
                        frames = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.ZMQError:   # nothing more (a REQ: one reply per request)
                        break
                    self.check_reply(by_sock[s], frames)
        return False

    def call(self, sock, m, timeout_s):
        sock.send(m.SerializeToString())
        if not sock.poll(int(timeout_s * 1000)):
            return None
        return parse_resp(sock.recv_multipart()[-1])

    def stats(self):
        r = self.call(self.ctl, simple(self.rid(), "stats"), 10)
        return r.stats if r is not None else None

    # -- the normal request, and its reference --
    def normal(self, timeout_s=15):
        out = {}
        s = dealer(self.eps[self.rng.randrange(len(self.eps))])
        try:
            r = self.call(s, simple(self.rid(), "summarize", [NORMAL_DOC], NORMAL_OPTS), timeout_s)
            if r is None or r.status.code != OK:
                return None, ("summarize: no reply within %d s" % timeout_s if r is None else
                              "summarize: %s %r" % (name(r.status.code), r.status.message))
            out["summarize"] = r.results[0].text
            r = self.call(s, simple(self.rid(), "classify", [NORMAL_DOC], labels=NORMAL_LABELS),
                          timeout_s)
            if r is None or r.status.code != OK:
                return None, ("classify: no reply within %d s" % timeout_s if r is None else
                              "classify: %s %r" % (name(r.status.code), r.status.message))
            out["classify"] = [(x.label, x.score) for x in r.results[0].labels]
        finally:
            s.close()
        return out, None

    def same(self, got, ref):
        if got["summarize"] != ref["summarize"]:
            return "summarize %r, reference %r" % (got["summarize"], ref["summarize"])
        a, b = got["classify"], ref["classify"]
        if [x[0] for x in a] != [x[0] for x in b] or any(abs(x[1] - y[1]) > 1e-4
                                                         for x, y in zip(a, b)):
            return "classify %r, reference %r" % (a, b)
        return None

    def nlprun_ref(self):
        cmd = [self.a.nlprun, "summarize", "--model", self.a.model, "--json",
               "--max-new-tokens", str(NORMAL_OPTS["max_new_tokens"])]
        s = json.loads(subprocess.run(cmd, input=NORMAL_DOC.encode(), capture_output=True,
                                      timeout=60, check=True).stdout)
        c = json.loads(subprocess.run([self.a.nlprun, "classify", "--model", self.a.model,
                                       "--json", "--labels", ",".join(NORMAL_LABELS)],
                                      input=NORMAL_DOC.encode(), capture_output=True,
                                      timeout=60, check=True).stdout)
        return {"summarize": s["text"], "classify": [(x["label"], x["score"]) for x in c["labels"]]}

    def quiet(self, timeout_s=15):
        """stats: in_flight and queue_depth back to 0 (bounded)."""
        end = time.time() + timeout_s
        st = None
        while time.time() < end:
            st = self.stats()
            if st is not None and st.in_flight == 0 and st.queue_depth == 0:
                # Every request received was answered once (health and stats included;
                # this stats reply counts itself on both sides).
                answered = sum(c.count for c in st.responses)
                check(answered == st.requests, "stats: %d requests received, %d responses"
                      % (st.requests, answered))
                return st
            time.sleep(0.05)
        fail("in_flight %s, queue_depth %s %d s after the round" %
             (st.in_flight if st else "?", st.queue_depth if st else "?", timeout_s))
        return None

    # -- faults --
    def fault_disconnect(self):
        n = self.new_dealer()
        for _ in range(self.rng.randint(1, 4)):
            m, allowed, nd, task = self.random_request()
            self.dealers[n].send(m.SerializeToString())
            self.fig["requests"] += 1
        time.sleep(self.rng.choice([0, 0.001, 0.005, 0.02]))
        self.dealers.pop(n).close()
        self.fig["disconnects"] += 1

    def fault_req_disconnect(self):
        n = self.new_req()
        m, allowed, nd, task = self.random_request()
        self.reqs[n].send(m.SerializeToString())
        self.fig["requests"] += 1
        time.sleep(self.rng.choice([0, 0.002, 0.01]))
        self.reqs.pop(n).close()
        self.fig["disconnects"] += 1

    def fault_trickle(self):
        """On an idle daemon: single-document requests with 1-10 ms deadlines, one after
        the other, most of them right after a request of 2-4 documents (the worker then
        expects company and waits for it): they expire while it waits."""
        n = self.new_dealer()
        s = self.dealers[n]
        for k in range(self.rng.randint(3, 7)):
            if k == 0 or self.rng.random() < 0.6:
                m = simple(self.rid(), "text2text", [text(self.rng, False)
                                                     for _ in range(self.rng.randint(2, 4))],
                           {"max_new_tokens": 2})
                self.send_dealer(n, m, {OK}, len(m.documents), "before a tiny deadline")
                if not self.drain(15, want_ids=[m.id]):
                    fail("a request of %d documents on an idle daemon: no reply within 15 s"
                         % len(m.documents))
                    return False
            m = simple(self.rid(), self.rng.choice(["summarize", "text2text", "translate"]),
                       [text(self.rng, False)], {"max_new_tokens": self.rng.randint(1, 6)},
                       to="fr")
            m.deadline_ms = self.rng.randint(1, 10)
            self.pending[m.id] = Sent(m.id, n, {OK, DEADLINE_EXCEEDED}, 1, "trickle")
            s.send(m.SerializeToString())
            self.fig["requests"] += 1
            self.fig["tiny_deadlines"] += 1
            if not self.drain(10, want_ids=[m.id]):
                fail("a 1-document request with deadline_ms %d got no reply within 10 s"
                     % m.deadline_ms)
                return False
            time.sleep(self.rng.choice([0, 0.002, 0.01, 0.03]))
        return True

    def fault_bad_frames(self):
        n = self.rng.choice(list(self.dealers))
        kind = self.rng.randrange(3)
        rid = self.rid()
        if kind == 0:
            payload = b"\x07" + bytes(self.rng.randrange(256) for _ in range(self.rng.randint(0, 64)))
            allowed, rid = {MALFORMED}, 0
        elif kind == 1:
            good = simple(rid, "summarize", [text(self.rng, False) * 3]).SerializeToString()
            payload = good[:self.rng.randint(len(good) - 12, len(good) - 1)]
            # A cut that lands on a field boundary leaves a valid message without its
            # last fields: then no task (UNKNOWN_TASK) or no document (INVALID_ARGUMENT).
            allowed = {MALFORMED, UNKNOWN_TASK, INVALID_ARGUMENT}
        else:
            payload, allowed, rid = b"", {UNKNOWN_TASK}, 0
        # id 0 replies cannot be told apart: one bad frame of that kind in flight at a time
        if rid == 0 and 0 in self.pending:
            return
        self.pending[rid] = Sent(rid, n, allowed, 0, "bad frame")
        self.dealers[n].send(payload)
        self.fig["requests"] += 1
        self.fig["bad_frames"] += 1

    # -- a round --
    def round(self, k):
        CONTEXT["where"] = "seed %d round %d" % (self.a.seed, k)
        rng = self.rng
        while len(self.dealers) < 4:
            self.new_dealer()
        while len(self.reqs) < 2:
            self.new_req()
        for n in list(self.dealers):
            for _ in range(rng.randint(1, 5)):
                m, allowed, nd, task = self.random_request()
                env = ()
                if rng.random() < 0.15:
                    env = tuple(b"hop-%d" % i for i in range(rng.randint(1, 3)))
                self.send_dealer(n, m, allowed, nd, task, env)
        for n in list(self.reqs):
            m, allowed, nd, task = self.random_request()
            self.reqs[n].send(m.SerializeToString())
            self.pending[m.id] = Sent(m.id, n, allowed, nd, task)
            self.fig["requests"] += 1
        faults = [self.fault_disconnect, self.fault_req_disconnect,
                  self.fault_bad_frames, self.fault_bad_frames]
        for f in rng.sample(faults, rng.randint(1, len(faults))):
            f()
        if not self.drain(30):
            fail("%d request(s) unanswered 30 s after the round: %s" %
                 (len(self.pending), sorted((s.rid, s.task, s.sock) for s in
                                            self.pending.values())[:8]))
            return False
        if rng.random() < 0.6 and not self.fault_trickle():   # on the idle daemon
            return False
        got, why = self.normal()
        self.fig["normal_checks"] += 1
        if got is None:
            st = self.call(self.ctl, simple(self.rid(), "stats"), 2)
            h = self.call(self.ctl, simple(self.rid(), "health"), 2)
            fail("the normal request after the round: %s (then: health ok %s, in_flight %s, "
                 "queue_depth %s)" % (why, h.health.ok if h else "no reply",
                                      st.stats.in_flight if st else "?",
                                      st.stats.queue_depth if st else "?"))
            return False
        diff = self.same(got, self.ref)
        if diff:
            fail("the normal request after the round differs: " + diff)
        st = self.quiet()
        self.fig["rounds"] += 1
        return st is not None

    def sigterm_end(self):
        CONTEXT["where"] = "seed %d SIGTERM" % self.a.seed
        socks = [self.new_dealer() for _ in range(2)]
        st = self.stats()
        if not check(st is not None, "stats before SIGTERM: no reply"):
            return
        r0, calls = st.requests, 0
        for i in range(6):
            task = ("summarize", "text2text", "classify")[i % 3]
            m = simple(self.rid(), task,
                       [text(self.rng, False) for _ in range(self.rng.randint(1, 3))],
                       {"max_new_tokens": 12, "min_new_tokens": 12} if task != "classify"
                       else {}, labels=NORMAL_LABELS)
            self.send_dealer(socks[i % 2], m, {OK}, len(m.documents), "in flight at SIGTERM")
        # Every one received (the requests counter counts them and our stats calls).
        end = time.time() + 15
        while time.time() < end:
            st = self.stats()
            calls += 1
            if st is not None and st.requests >= r0 + 6 + calls:
                break
            time.sleep(0.005)
        os.kill(self.a.pid, signal.SIGTERM)
        # After the signal: a new task request is SHUTTING_DOWN.
        late = self.call(self.ctl, simple(self.rid(), "text2text", ["too late"]), 10)
        self.fig["requests"] += 1
        if check(late is not None, "a request after SIGTERM got no reply"):
            check(late.status.code == SHUTTING_DOWN, "a request after SIGTERM: %s"
                  % name(late.status.code))
        if not self.drain(30):
            fail("%d request(s) accepted before SIGTERM unanswered" % len(self.pending))

    def run(self):
        t0 = time.time()
        CONTEXT["where"] = "seed %d reference" % self.a.seed
        ref, why = self.normal(30)
        if ref is None:
            fail("the first normal request: " + why)
            return
        try:
            nr = self.nlprun_ref()
        except Exception as e:  # noqa: BLE001
            fail("nlprun reference: %s" % e)
            return
        diff = self.same(ref, nr)
        if not check(diff is None, "daemon vs nlprun: %s" % diff):
            return
        self.ref = ref
        k = 0
        while k < self.a.rounds and time.time() - t0 < self.a.seconds:
            if not self.round(k):
                break
            k += 1
        if not failures:
            self.sigterm_end()
        for s in list(self.dealers.values()) + list(self.reqs.values()) + [self.ctl]:
            s.close()
        dt = time.time() - t0
        print("replies by code:", {name(c): n for c, n in sorted(self.codes.items())})
        print("chaos-figures seed=%d max_wait_ms=%s requests=%d rounds=%d disconnects=%d "
              "tiny_deadlines=%d bad_frames=%d envelopes=%d normal_checks=%d time=%.1f"
              % (self.a.seed, self.a.label, self.fig["requests"], self.fig["rounds"],
                 self.fig["disconnects"], self.fig["tiny_deadlines"], self.fig["bad_frames"],
                 self.fig["envelopes"], self.fig["normal_checks"], dt), flush=True)


def race(a):
    CONTEXT["where"] = "race"
    s = dealer(a.ep[0])
    docs = ["The council voted on a new budget.", "Markets rallied after the vote."]
    s.send(simple(1, "text2text", docs, {"max_new_tokens": 4}).SerializeToString())
    if not s.poll(20000):
        fail("the 2-document request got no reply within 20 s")
        return
    r = parse_resp(s.recv())
    check(r.status.code == OK, "2-document request: %s" % name(r.status.code))
    # The worker now expects 2 documents: it waits up to max_wait_ms for company, and the
    # I/O thread takes this one out of the queue at 50 ms.
    m = simple(2, "text2text", ["A lone document in a hurry."], {"max_new_tokens": 4})
    m.deadline_ms = 50
    s.send(m.SerializeToString())
    if s.poll(20000):
        r = parse_resp(s.recv())
        check(r.status.code in (OK, DEADLINE_EXCEEDED),
              "50 ms request: %s %r" % (name(r.status.code), r.status.message))
        print("50 ms request: %s" % name(r.status.code), flush=True)
    else:
        fail("the 50 ms request got no reply within 20 s")
    time.sleep(1.5)
    t = time.time()
    s.send(simple(3, "text2text", ["A normal request after the race."],
                  {"max_new_tokens": 4}).SerializeToString())
    if not s.poll(15000):
        fail("the normal request after the race was not computed within 15 s "
             "(the worker thread is gone)")
        return
    r = parse_resp(s.recv())
    check(r.status.code == OK and len(r.results) == 1,
          "normal request after the race: %s %r" % (name(r.status.code), r.status.message))
    print("normal request after the race: %s in %.2f s" % (name(r.status.code), time.time() - t))
    s.send(simple(4, "health").SerializeToString())
    if check(s.poll(10000), "health got no reply"):
        r = parse_resp(s.recv())
        check(r.health.ok, "health ok = false after the race")
    s.send(simple(5, "stats").SerializeToString())
    if check(s.poll(10000), "stats got no reply"):
        r = parse_resp(s.recv())
        check(r.stats.in_flight == 0 and r.stats.queue_depth == 0,
              "stats after the race: in_flight %d, queue_depth %d"
              % (r.stats.in_flight, r.stats.queue_depth))
    s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["run", "race"])
    p.add_argument("--ep", action="append", required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--max-docs", type=int, default=16)
    p.add_argument("--nlprun", default=os.path.join(B, "nlprun"))
    p.add_argument("--model", default="tests/data/models/tiny-flan")
    p.add_argument("--label", default="?")
    a = p.parse_args()
    if a.cmd == "race":
        race(a)
    else:
        Chaos(a).run()
    if failures:
        print("%d failure(s)" % len(failures), flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
