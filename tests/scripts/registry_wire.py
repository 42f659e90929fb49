#!/usr/bin/python3
"""Wire client for the model-registry tests (tests/scripts/registry_*.sh), on
daemon_wire.py's hand-rolled protobuf: Request.model (13), Health.models (10),
Health.loading (11), UNKNOWN_MODEL (12). Every wait is bounded; a failed expectation
exits 1 naming it.

  registry_wire.py health EP                      health as one JSON line
  registry_wire.py wait EP COND SECONDS           polls health until the Python
                                                  expression COND holds (h: health,
                                                  m: its models by name), bounded
  registry_wire.py route EP NLPRUN FLAN MG BART   routing by name, task and pair, each
                                                  result equal to nlprun on its model
  registry_wire.py flood EP                       a flood on one model, another served
  registry_wire.py clients EP N STOP OUT          N clients send until the file STOP
                                                  exists; counts by status into OUT
  registry_wire.py loading EP                     health says loading, requests refused
                                                  OVERLOADED until the models serve
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_wire as w  # noqa: E402

OK, INVALID_ARGUMENT, OVERLOADED, UNSUPPORTED, UNKNOWN_MODEL = 0, 1, 4, 11, 12
NAMES = dict(w.NAMES)
NAMES.update({11: "UNSUPPORTED", 12: "UNKNOWN_MODEL"})


def req(rid, task, docs, model=None, body=b"", max_new=8, deadline_ms=None):
    out = w.request(rid, task, body, docs, options={1: max_new} if max_new else None,
                    deadline_ms=deadline_ms)
    if model is not None:
        out += w.f_bytes(13, model)
    return out


def translate_body(to, src=None):
    return (w.f_bytes(1, src) if src else b"") + w.f_bytes(2, to)


def strs(p, f):
    return [v.decode() for v in p.get(f, [])]


def health(sock):
    r = w.call(sock, w.request(999, "health"))
    if r is None or r.health is None:
        return None
    h = r.health
    models = []
    for raw in h.get(10, []):
        m = w.parse(raw)
        models.append({
            "name": w.one(m, 1, b"").decode(), "path": w.one(m, 2, b"").decode(),
            "family": w.one(m, 3, b"").decode(), "weights": w.one(m, 4, b"").decode(),
            "tasks": strs(m, 5), "languages": strs(m, 6),
            "resident_bytes": w.one(m, 7, 0), "requests": w.one(m, 8, 0),
            "state": w.one(m, 9, b"").decode(),
        })
    return {"ok": bool(w.one(h, 1, 0)), "model": w.one(h, 2, b"").decode(),
            "model_type": w.one(h, 7, b"").decode(), "tasks": strs(h, 8),
            "loading": bool(w.one(h, 11, 0)), "models": models}


def text_of(r):
    return w.one(r.results[0], 2, b"").decode() if r and r.results else None


def nlprun(bin_, task, model_dir, text, args):
    p = subprocess.run([bin_, task, "--model", model_dir, "--json", "--threads", "1"] + args,
                       input=text.encode(), capture_output=True, timeout=120)
    if p.returncode != 0:
        w.check(False, "nlprun %s on %s: %s" % (task, model_dir, p.stderr.decode()[-300:]))
        return None
    return json.loads(p.stdout.decode().splitlines()[0])


def served(sock):
    h = health(sock)
    return {m["name"]: m["requests"] for m in h["models"]} if h else {}


def cmd_route(ep, nlprun_bin, flan, mg, bart):
    s = w.dealer(ep)
    h = health(s)
    w.check(h is not None and h["ok"] and not h["loading"], "health ok and not loading: %s" % h)
    names = [m["name"] for m in h["models"]]
    w.check(names == ["flan", "en-mg", "bart", "flan-again"], "models in config order: %s" % names)
    fam = {m["name"]: m["family"] for m in h["models"]}
    w.check(fam == {"flan": "t5", "en-mg": "marian", "bart": "bart", "flan-again": "t5"},
            "families: %s" % fam)
    for m in h["models"]:
        w.check(m["state"] == "serving" and m["resident_bytes"] > 0 and
                m["weights"] in ("f32", "bf16", "f16", "int8"),
                "model %s: serving, a weight type as loaded, resident bytes: %s" % (m["name"], m))
    bm = {m["name"]: m for m in h["models"]}
    w.check(bm["en-mg"]["languages"] == ["en", "mg"], "en-mg languages: %s" % bm["en-mg"])
    w.check(bm["bart"]["tasks"] == ["summarize"], "bart configured for summarize only: %s"
            % bm["bart"]["tasks"])
    w.check(h["model_type"] == "t5" and h["model"].endswith("tiny-flan"),
            "fields 2 and 7 describe the first model: %s %s" % (h["model"], h["model_type"]))
    print("ok  health lists 4 models", flush=True)

    doc = "the cat sat on the mat. this is a good day."
    rid = [0]

    def ask(task, model=None, body=b"", code=OK, max_new=8):
        rid[0] += 1
        r = w.call(s, req(rid[0], task, [doc], model, body, max_new))
        if r is None:
            return None
        w.check(r.code == code, "%s model=%s: expected %s, got %s %r" % (
            task, model, NAMES[code], NAMES.get(r.code), r.message))
        return r

    def same(r, task, mdir, args, what):
        ref = nlprun(nlprun_bin, task, mdir, doc, args)
        got = text_of(r)
        if ref is not None and w.check(got == ref.get("text"), "%s: daemon %r, nlprun %r" % (
                what, got, ref.get("text"))):
            print("ok  %-40s equal to nlprun (%r)" % (what, got), flush=True)

    before = served(s)
    # by name
    same(ask("summarize", "bart"), "summarize", bart, ["--max-new-tokens", "8"], "summarize by name bart")
    same(ask("summarize", "flan-again"), "summarize", flan, ["--max-new-tokens", "8"],
         "summarize by name flan-again")
    # by task: summarize -> flan, the first model configured for it
    same(ask("summarize"), "summarize", flan, ["--max-new-tokens", "8"], "summarize by task")
    # by language pair: mg -> en-mg (T5's table has no mg); de -> flan (T5 has it)
    same(ask("translate", None, translate_body("mg")), "translate", mg,
         ["--to", "mg", "--max-new-tokens", "8"], "translate to mg by pair")
    same(ask("translate", None, translate_body("de")), "translate", flan,
         ["--to", "de", "--max-new-tokens", "8"], "translate to de by pair")
    after = served(s)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    w.check(delta == {"flan": 2, "en-mg": 1, "bart": 1, "flan-again": 1},
            "documents served per model: %s" % delta)
    print("ok  routing counted per model: %s" % delta, flush=True)

    # refusals
    r = ask("summarize", "nope", code=UNKNOWN_MODEL)
    if r:
        w.check("flan" in r.message and "en-mg" in r.message and "bart" in r.message,
                "UNKNOWN_MODEL names the loaded models: %r" % r.message)
        print("ok  unknown model: %s" % r.message, flush=True)
    r = ask("translate", None, translate_body("xx"), code=INVALID_ARGUMENT)
    if r:
        w.check("no loaded model translates" in r.message and "en-mg" in r.message,
                "no model fits names what is loaded: %r" % r.message)
        print("ok  no model fits: %s" % r.message, flush=True)
    ask("classify", "bart", w.classify_body(["a", "b"]), code=UNSUPPORTED)
    ask("qa", "en-mg", w.f_bytes(1, "what?"), code=UNSUPPORTED)
    # health is unaffected by a model name
    rid[0] += 1
    r = w.call(s, w.request(rid[0], "health") + w.f_bytes(13, "nope"))
    w.check(r is not None and r.code == OK, "health with a model name: %s" % r)


def cmd_flood(ep):
    """32 long generations on flan, then one request on bart: bart's answer comes before
    the flood's end (its own worker), with most of the flood still unanswered."""
    flood, other = w.dealer(ep), w.dealer(ep)
    n = 32
    doc = "the cat sat on the mat. this is a good day. " * 4
    for i in range(n):
        flood.send(req(1000 + i, "summarize", [doc], "flan", max_new=16))
    time.sleep(0.05)
    t0 = time.time()
    other.send(req(1, "summarize", ["a dog ran home."], "bart", max_new=8))
    got = 0
    r = None
    while r is None and time.time() - t0 < 60:
        if other.poll(10):
            r = w.Resp(other.recv_multipart()[-1])
        while flood.poll(0):
            flood.recv_multipart()
            got += 1
    w.check(r is not None and r.code == OK, "bart answered during the flood: %s" % r)
    dt = time.time() - t0
    w.check(got < n // 2, "bart answered after %d of %d flood replies" % (got, n))
    print("ok  bart answered in %.0f ms, %d of %d flood replies before it" % (dt * 1e3, got, n),
          flush=True)
    while got < n and flood.poll(60000):
        flood.recv_multipart()
        got += 1
    w.check(got == n, "every flood request answered: %d of %d" % (got, n))


def cmd_clients(ep, n, stop, out):
    """N clients, each one request at a time (half by name, half by task), until STOP."""
    counts, lock, errors = {}, threading.Lock(), []

    def client(k):
        s = w.dealer(ep)
        i = 0
        while not os.path.exists(stop):
            i += 1
            model = "flan" if k % 2 else None
            s.send(req(k * 1000000 + i, "summarize", ["a dog ran home. the cat sat."], model,
                       max_new=4))
            if not s.poll(30000):
                with lock:
                    errors.append("client %d: request %d unanswered after 30 s" % (k, i))
                return
            r = w.Resp(s.recv_multipart()[-1])
            with lock:
                name = NAMES.get(r.code, str(r.code))
                counts[name] = counts.get(name, 0) + 1
                if r.code != OK and len(errors) < 20:
                    errors.append("client %d request %d: %s %s" % (k, i, name, r.message))

    th = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join(120)
    with open(out, "w") as f:
        json.dump({"counts": counts, "errors": errors}, f)


def cmd_loading(ep):
    s = w.dealer(ep)
    t0 = time.time()
    h = None
    while time.time() - t0 < 20:
        h = health(s)
        if h is not None:
            break
    w.check(h is not None, "health answered while loading")
    if h is None:
        return
    w.check(h["loading"] and not h["ok"], "loading = true, ok = false: %s" % h)
    st = {m["name"]: m["state"] for m in h["models"]}
    w.check(st.get("flan") == "loading", "the model is listed as loading: %s" % st)
    print("ok  health while loading: ok=%s loading=%s %s" % (h["ok"], h["loading"], st), flush=True)
    r = w.call(s, req(5, "summarize", ["a dog ran home."]))
    w.check(r is not None and r.code == OVERLOADED and "loading" in r.message,
            "a task while loading: OVERLOADED naming the load: %s" % r)
    print("ok  task while loading: %s" % r, flush=True)
    while time.time() - t0 < 60:
        h = health(s)
        if h and h["ok"]:
            break
        time.sleep(0.05)
    w.check(h and h["ok"] and not h["loading"], "serving after the load: %s" % h)
    r = w.call(s, req(6, "summarize", ["a dog ran home."]))
    w.check(r is not None and r.code == OK, "a task once loaded: %s" % r)
    print("ok  served once loaded", flush=True)


def main():
    cmd, ep = sys.argv[1], sys.argv[2]
    if cmd == "health":
        print(json.dumps(health(w.dealer(ep))))
    elif cmd == "wait":
        s, end, h = w.dealer(ep), time.time() + float(sys.argv[4]), None
        while time.time() < end:
            h = health(s)
            if h is not None and eval(sys.argv[3], {"h": h, "m": {x["name"]: x for x in h["models"]}}):
                return
            time.sleep(0.05)
        sys.exit("health never showed: %s (last: %s)" % (sys.argv[3], json.dumps(h)))
    elif cmd == "route":
        cmd_route(ep, *sys.argv[3:7])
    elif cmd == "flood":
        cmd_flood(ep)
    elif cmd == "clients":
        cmd_clients(ep, int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "loading":
        cmd_loading(ep)
    else:
        sys.exit("unknown command " + cmd)
    if w.failures:
        print("%d failure(s)" % len(w.failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
