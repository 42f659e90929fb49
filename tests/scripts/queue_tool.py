#!/usr/bin/env python3
"""Helper of the queue tests (tests/scripts/queue_*.sh): makes jobs, puts them on a
Redis stream, waits for and checks their results. Uses Debian's python3-redis and the
generated nlp_pb2 ($NLP_BUILD/gen/python). Loopback only; every wait is bounded.

  gen N DIR [URL STREAM]    DIR/jobs.jsonl (mixed tasks, some as packed `req`) and
                            DIR/in_<task>.jsonl (the same inputs for nlpc batch); with
                            URL and STREAM also adds them all (as `add`): one process
  add URL STREAM DIR [FROM COUNT]   XADDs jobs; appends their entry ids to DIR/entries
  wait URL RESULTS N SECONDS        until the results stream has N entries
  check URL STREAM GROUP RESULTS DIR [--ref] [--wait SECONDS SETTLE]   one result per
                            job, none twice, none pending; with --ref each equal to
                            DIR/out_<task>.jsonl; with --wait first `wait` for one result
                            per job, then SETTLE seconds more (a second result for a job
                            would be there by then)
  pending URL STREAM GROUP [CONSUMER]   pending entries (of one consumer)
  bad URL STREAM GROUP RESULTS DEAD     malformed entries: each gets its error result
"""
import json
import os
import random
import sys
import time

import redis

sys.path.insert(0, os.path.join(os.environ.get("NLP_BUILD", "build"), "gen", "python"))
import nlp_pb2  # noqa: E402

TASKS = ["summarize", "translate", "classify", "qa", "text2text"]
WORDS = ("the cat dog house river city music paper green quick slow table window "
         "garden market bridge light stone winter summer").split()
MAX_NEW = 6


def conn(url):
    hostport = url[len("redis://"):]
    host, port = hostport.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), socket_timeout=30)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def gen(n, d):
    rnd = random.Random(19)
    jobs = []
    per_task = {t: [] for t in TASKS}
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        text = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 24))) + "."
        line = {"id": i, "text": text}
        if task == "classify":
            line["labels"] = rnd.sample(["sports", "music", "food", "news", "art"], 3)
        if task == "qa":
            line["question"] = "where is the " + rnd.choice(WORDS) + "?"
        if task == "translate":
            line["to"] = rnd.choice(["de", "fr", "ro"])
        per_task[task].append(line)
        job = dict(line, task=task, options={"max_new_tokens": MAX_NEW})
        job["enc"] = "req" if i % 6 == 5 else "json"
        jobs.append(job)
    with open(os.path.join(d, "jobs.jsonl"), "w") as f:
        for j in jobs:
            f.write(json.dumps(j) + "\n")
    for t, lines in per_task.items():
        with open(os.path.join(d, "in_%s.jsonl" % t), "w") as f:
            for l in lines:
                f.write(json.dumps(l) + "\n")


def packed(job):
    r = nlp_pb2.Request()
    r.id = job["id"]
    r.documents.append(job["text"])
    t = job["task"]
    if t == "summarize":
        r.summarize.SetInParent()
    elif t == "text2text":
        r.text2text.SetInParent()
    elif t == "translate":
        r.translate.target_lang = job["to"]
    elif t == "classify":
        r.classify.labels.extend(job["labels"])
    elif t == "qa":
        r.qa.question = job["question"]
    r.options.max_new_tokens = job["options"]["max_new_tokens"]
    return r.SerializeToString()


def load_jobs(d):
    with open(os.path.join(d, "jobs.jsonl")) as f:
        return [json.loads(l) for l in f]


def add(url, stream, d, start=0, count=None):
    r = conn(url)
    jobs = load_jobs(d)
    jobs = jobs[start:start + count if count is not None else None]
    p = r.pipeline(transaction=False)
    for j in jobs:
        if j["enc"] == "req":
            p.xadd(stream, {"req": packed(j)})
        else:
            body = {k: v for k, v in j.items() if k != "enc"}
            p.xadd(stream, {"json": json.dumps(body)})
    ids = p.execute()
    with open(os.path.join(d, "entries"), "a") as f:
        for j, e in zip(jobs, ids):
            f.write("%s %d\n" % (e.decode(), j["id"]))
    print("added %d" % len(ids))


def wait(url, results, n, secs):
    r = conn(url)
    end = time.time() + secs
    while time.time() < end:
        try:
            if r.xlen(results) >= n:
                return
        except redis.exceptions.ConnectionError:
            pass
        time.sleep(0.1)
    try:
        got = r.xlen(results)
    except redis.exceptions.ConnectionError:
        got = "?"
    fail("%s results after %d s, expected %d" % (got, secs, n))


def result_obj(resp, task):
    """The nlpc batch object of a packed Response (the fields the json encoding has)."""
    names = nlp_pb2.StatusCode.Name
    if resp.status.code != 0 and not (len(resp.results) == 1 and resp.results[0].status.code):
        return {"status": names(resp.status.code), "error": resp.status.message}
    res = resp.results[0]
    o = {"status": names(res.status.code)}
    if res.status.code:
        o["error"] = res.status.message
        return o
    if task in ("summarize", "translate", "text2text"):
        o["text"] = res.text
    if task == "qa":
        o["answer"] = res.answer
    if task == "classify":
        o["labels"] = [{"label": l.label, "score": l.score} for l in res.labels]
    else:
        o["score"] = res.score
    o["input_tokens"] = res.input_tokens
    o["output_tokens"] = res.output_tokens
    o["truncated"] = res.truncated
    return o


def same(a, b):
    """Equal, numbers to 1e-12: cJSON prints 15 digits when they read back within
    its epsilon, so the JSON reference may round the last bits of a double."""
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def check(url, stream, group, results, d, ref):
    r = conn(url)
    jobs = {j["id"]: j for j in load_jobs(d)}
    entries = {}
    with open(os.path.join(d, "entries")) as f:
        for l in f:
            e, i = l.split()
            entries[e] = int(i)
    refs = {}
    if ref:
        for t in TASKS:
            with open(os.path.join(d, "out_%s.jsonl" % t)) as f:
                for l in f:
                    o = json.loads(l)
                    refs[o["id"]] = (l.rstrip("\n"), o)
    seen = {}
    for rid, fields in r.xrange(results):
        e = fields.get(b"entry", b"").decode()
        if e not in entries:
            fail("result %s for an entry that is no job: %s" % (rid, fields))
        if e in seen:
            fail("entry %s has two results (%s and %s)" % (e, seen[e], rid.decode()))
        seen[e] = rid.decode()
        job = jobs[entries[e]]
        if fields.get(b"id", b"").decode() != str(job["id"]):
            fail("entry %s: result id %r, job id %r" % (e, fields.get(b"id"), job["id"]))
        if job["enc"] == "json":
            if b"json" not in fields or b"resp" in fields:
                fail("entry %s (json job): result fields %s" % (e, list(fields)))
            got = fields[b"json"].decode()
            if ref and got != refs[job["id"]][0]:
                fail("job %d: queue gave %s\n   ZeroMQ gave %s" % (job["id"], got,
                                                                    refs[job["id"]][0]))
            if json.loads(got)["status"] != "OK":
                fail("job %d: %s" % (job["id"], got))
        else:
            if b"resp" not in fields or b"json" in fields:
                fail("entry %s (req job): result fields %s" % (e, list(fields)))
            resp = nlp_pb2.Response()
            resp.ParseFromString(fields[b"resp"])
            if resp.id != job["id"] or resp.status.code != 0:
                fail("job %d: response %s" % (job["id"], resp))
            if ref:
                want = dict(refs[job["id"]][1])
                del want["id"]
                got = result_obj(resp, job["task"])
                if not same(got, want):
                    fail("job %d: queue gave %s\n   ZeroMQ gave %s" % (job["id"], got, want))
    missing = [e for e in entries if e not in seen]
    if missing:
        fail("%d jobs without a result, e.g. %s" % (len(missing), missing[:5]))
    pend = r.xpending(stream, group)["pending"]
    if pend:
        fail("%d entries still pending" % pend)
    print("ok: %d jobs, %d results, each once%s, none pending" %
          (len(entries), len(seen), ", equal to ZeroMQ's" if ref else ""))


def pending(url, stream, group, consumer=None):
    r = conn(url)
    if consumer is None:
        print(r.xpending(stream, group)["pending"])
        return
    n = 0
    for c in r.xinfo_consumers(stream, group):
        if c["name"].decode() == consumer:
            n = c["pending"]
    print(n)


def bad(url, stream, group, results, dead):
    """Malformed entries: each gets one error result with the ZeroMQ status codes."""
    r = conn(url)
    summ = json.dumps({"task": "summarize", "text": "a b c", "options": {"max_new_tokens": 2}})
    cases = [
        # (fields, expected code, encoding of the result, substring of the message)
        ({"req": b"\xff\xff\xff garbage"}, "MALFORMED", "resp", "not a valid nlp.v1.Request"),
        ({"req": nlp_pb2.Request(id=7).SerializeToString()}, "UNKNOWN_TASK", "resp", ""),
        ({"req": nlp_pb2.Request(id=8, summarize={}).SerializeToString()},
         "INVALID_ARGUMENT", "resp", "no documents"),
        ({"req": nlp_pb2.Request(id=9, summarize={}, documents=["x"],
                                 options={"num_beams": 99}).SerializeToString()},
         "INVALID_ARGUMENT", "resp", "num_beams"),
        ({"json": "not json"}, "MALFORMED", "json", "not a JSON object"),
        ({"json": "[1, 2]"}, "MALFORMED", "json", "not a JSON object"),
        ({"json": b"{\"task\": \"summarize\", \"text\": \"\xff\"}"}, "MALFORMED", "json",
         "not valid UTF-8"),
        ({"json": summ + " trailing"}, "MALFORMED", "json", "text after the JSON object"),
        ({"json": json.dumps({"id": "t1", "task": "summarize"})}, "INVALID_ARGUMENT", "json",
         "needs a string \"text\""),
        ({"json": json.dumps({"id": "t2", "task": "dance", "text": "x"})}, "UNKNOWN_TASK",
         "json", "unknown task"),
        ({"json": json.dumps({"id": "t3", "task": "classify", "text": "x"})},
         "INVALID_ARGUMENT", "json", "classify needs \"labels\""),
        ({"json": json.dumps({"id": "t4", "task": "summarize", "text": "x",
                              "options": {"bogus": 1}})}, "INVALID_ARGUMENT", "json",
         "unknown option"),
        ({"json": json.dumps({"id": "t5", "task": "summarize", "text": "x",
                              "options": {"max_new_tokens": 100000}})},
         "INVALID_ARGUMENT", "json", "max_new_tokens = 100000 is out of range"),
        ({"json": json.dumps({"id": "t6", "task": "summarize", "text": "   "})},
         "INVALID_ARGUMENT", "json", "the text is empty"),
        ({"json": json.dumps({"task": "summarize", "text": "a " * 600000})},
         "MESSAGE_TOO_LARGE", "json", "the limit is"),
        ({"req": nlp_pb2.Request(id=10, summarize={}, documents=["a " * 600000])
          .SerializeToString()}, "MESSAGE_TOO_LARGE", "resp", "the limit is"),
        ({"json": summ, "req": b"x"}, "MALFORMED", "both", "more than one"),
        ({"other": "x"}, "MALFORMED", "both", "neither"),
        ({"json": json.dumps({"id": "ok1", "task": "summarize", "text": "a b c",
                              "options": {"max_new_tokens": 2}})}, "OK", "json", ""),
    ]
    ids = [r.xadd(stream, f) for f, _, _, _ in cases]
    end = time.time() + 60
    while True:
        got = {}
        for rid, fields in r.xrange(results):
            e = fields[b"entry"]
            if e in got:
                fail("entry %s has two results" % e)
            got[e] = fields
        if all(e in got for e in ids) or time.time() > end:
            break
        time.sleep(0.1)
    for (f, code, enc, sub), e in zip(cases, ids):
        if e not in got:
            fail("no result for %s" % f)
        fl = got[e]
        msgs = []
        if enc in ("resp", "both"):
            if b"resp" not in fl:
                fail("%s: no resp field: %s" % (f, fl))
            resp = nlp_pb2.Response()
            resp.ParseFromString(fl[b"resp"])
            if nlp_pb2.StatusCode.Name(resp.status.code) != code:
                fail("%s: resp status %s, want %s" % (f, resp.status, code))
            msgs.append(resp.status.message)
        if enc in ("json", "both"):
            if b"json" not in fl:
                fail("%s: no json field: %s" % (f, fl))
            o = json.loads(fl[b"json"])
            if o["status"] != code:
                fail("%s: json %s, want %s" % (f, o, code))
            msgs.append(o.get("error", ""))
        if enc == "json" and b"resp" in fl or enc == "resp" and b"json" in fl:
            fail("%s: result in the wrong encoding: %s" % (f, list(fl)))
        if not all(sub in m for m in msgs):
            fail("%s: message %s lacks %r" % (f, msgs, sub))
    if got[ids[8]][b"id"] != b'"t1"':
        fail("json job's id field: %r" % got[ids[8]][b"id"])
    if got[ids[1]][b"id"] != b"7":
        fail("req job's id field: %r" % got[ids[1]][b"id"])
    pend = r.xpending(stream, group)["pending"]
    if pend:
        fail("%d entries pending after their error results" % pend)
    print("ok: %d malformed or refused entries, each with one error result" % len(cases))


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        sys.exit(2)
    cmd = a[0]
    if cmd == "gen":
        gen(int(a[1]), a[2])
        if len(a) > 4:
            add(a[3], a[4], a[2])
    elif cmd == "add":
        add(a[1], a[2], a[3], *(int(x) for x in a[4:6]))
    elif cmd == "wait":
        wait(a[1], a[2], int(a[3]), float(a[4]))
    elif cmd == "check":
        if "--wait" in a:
            k = a.index("--wait")
            with open(os.path.join(a[5], "entries")) as f:
                n = sum(1 for _ in f)
            wait(a[1], a[4], n, float(a[k + 1]))
            time.sleep(float(a[k + 2]))
        check(a[1], a[2], a[3], a[4], a[5], "--ref" in a)
    elif cmd == "pending":
        pending(*a[1:])
    elif cmd == "bad":
        bad(*a[1:6])
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
