#!/usr/bin/python3
"""A scripted stand-in for nlpd, for testing the clients without a model.

usage: mock_nlpd.py ENDPOINT [MAX_SECONDS]

Answers are computed from the request, so a test can check that each reply went to the
right request: text = "<task>|<to>|<document reversed>", labels in the order given with
score 1/(i+1) normalised, answer = question + "@" + document, score = number of decoding
options set. Requests that are waiting together are answered in reverse order of arrival
(so replies come out of order). A document containing OVERLOAD is answered OVERLOADED the
first time it is seen; one containing FAIL gets an INVALID_ARGUMENT result. Ends after
MAX_SECONDS (default 120) so a forgotten mock never lingers.

Models: Health lists two (MODELS below; Health.model and its family fields stay the old
one-model mock's), each counting the documents sent naming it. A request naming one of
them gets "|<model>" after its text; one naming another is answered UNKNOWN_MODEL naming
the two. MOCK_LOADING=1 in the environment: Health says loading (and not ok), and the
second model's state is "loading".
"""
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.join(os.environ.get("NLP_BUILD", "build"), "gen", "python"))
import nlp_pb2  # noqa: E402

MODELS = (
    {"name": "mock-t5", "path": "/srv/models/flan-t5-small", "model_type": "t5",
     "weights": "f32", "tasks": ["summarize", "translate", "classify", "qa", "text2text"],
     "languages": ["en", "de", "fr", "ro"], "resident_bytes": 307 * 1024 * 1024 + 52429},
    {"name": "mock-marian", "path": "/srv/models/opus-mt-en-de", "model_type": "marian",
     "weights": "bf16", "tasks": ["translate"], "languages": ["en", "de"],
     "resident_bytes": 150000000},
)
LOADING = os.environ.get("MOCK_LOADING") == "1"
served = {m["name"]: 0 for m in MODELS}

OPTS = ("max_new_tokens", "min_new_tokens", "num_beams", "length_penalty",
        "no_repeat_ngram_size", "repetition_penalty", "temperature", "top_k", "top_p",
        "seed", "num_return_sequences", "return_hypotheses")


def answer(rq, seen):
    r = nlp_pb2.Response()
    r.id = rq.id
    task = rq.WhichOneof("task")
    if task == "health":
        r.health.ok = not LOADING
        r.health.model = "mock"
        r.health.version = "mock-1"
        r.health.loading = LOADING
        for i, m in enumerate(MODELS):
            mi = r.health.models.add()
            for k, v in m.items():
                if isinstance(v, list):
                    getattr(mi, k).extend(v)
                else:
                    setattr(mi, k, v)
            mi.requests = served[m["name"]]
            mi.state = "loading" if LOADING and i == 1 else "serving"
        return r
    if task == "stats":
        r.stats.requests = len(seen)
        return r
    if task is None:
        r.status.code = nlp_pb2.UNKNOWN_TASK
        r.status.message = "no task"
        return r
    if rq.model and rq.model not in served:
        r.status.code = nlp_pb2.UNKNOWN_MODEL
        r.status.message = "no model named '%s' (loaded: %s)" % (
            rq.model, ", ".join(m["name"] for m in MODELS))
        return r
    nopt = sum(1 for o in OPTS if rq.options.HasField(o))
    for doc in rq.documents:
        if "OVERLOAD" in doc and doc not in seen:
            seen.add(doc)
            r.ClearField("results")
            r.status.code = nlp_pb2.OVERLOADED
            r.status.message = "queue full"
            return r
        seen.add(doc)
        res = r.results.add()
        if "FAIL" in doc:
            res.status.code = nlp_pb2.INVALID_ARGUMENT
            res.status.message = "mock says no"
            r.status.code = nlp_pb2.INVALID_ARGUMENT
            r.status.message = "mock says no"
            continue
        to = rq.translate.target_lang if task == "translate" else ""
        res.text = "%s|%s|%s" % (task, to, doc[::-1])
        if rq.model:
            res.text += "|" + rq.model
            served[rq.model] += 1
        res.score = nopt
        if task == "classify":
            z = sum(1.0 / (i + 1) for i in range(len(rq.classify.labels)))
            for i, l in enumerate(rq.classify.labels):
                ls = res.labels.add()
                ls.label = l
                ls.score = 1.0 / (i + 1) / z
        if task == "qa":
            res.answer = rq.qa.question + "@" + doc
        res.input_tokens = len(doc.split()) + 1
        res.output_tokens = 3
    return r


def main():
    ep = sys.argv[1]
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(ep)
    print("ready", flush=True)
    seen = set()
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if not s.poll(100):
            continue
        time.sleep(0.002)   # let a few requests pile up, then answer them last first
        waiting = []
        while s.poll(0):
            frames = s.recv_multipart()
            rq = nlp_pb2.Request()
            try:
                rq.ParseFromString(frames[-1])
            except Exception:
                r = nlp_pb2.Response()
                r.status.code = nlp_pb2.MALFORMED
                s.send_multipart(frames[:-1] + [r.SerializeToString()])
                continue
            waiting.append((frames[:-1], rq))
        for head, rq in reversed(waiting):
            s.send_multipart(head + [answer(rq, seen).SerializeToString()])
    s.close()
    ctx.term()


if __name__ == "__main__":
    main()
