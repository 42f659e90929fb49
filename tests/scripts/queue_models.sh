#!/usr/bin/env bash
# Queue mode with two models (issues 17 and 19): jobs are routed as ZeroMQ requests are.
# A json job naming a model ("model": "t5") is computed by that model, one naming none by
# the first model configured for its task, a packed `req` job by its Request.model; each
# result equals `nlpc batch` over ZeroMQ for the same line on the same daemon. A job
# naming no loaded model gets UNKNOWN_MODEL with the loaded names, in its encoding, and is
# acknowledged; nothing stays pending; SIGTERM exits 0.
source tests/scripts/queue_lib.bash
T5=$PWD/tests/data/models/tiny-t5
start_redis
cp conf/tasks.conf "$TMP/tasks.conf"
cat > "$TMP/m.conf" <<CONF
models = ( { name = "flan"; path = "$MODEL"; }, { name = "t5"; path = "$T5"; } );
threads = 1;
linger_ms = 1000;
bind = [ "ipc://$TMP/m.sock" ];
queue = { redis = "$URL"; consumer = "m"; };
@include "tasks.conf"
CONF
start_qd m
EP=ipc://$TMP/m.sock
$PY - "$URL" "$STREAM" "$RESULTS" "$GROUP" "$B/nlpc" "$EP" <<'PY' || { show_logs m; exit 1; }
import json, os, subprocess, sys, time
import redis
sys.path.insert(0, os.path.join(os.environ.get("NLP_BUILD", "build"), "gen", "python"))
import nlp_pb2
url, stream, results, group, nlpc, ep = sys.argv[1:]
r = redis.Redis.from_url(url)
text = "The quick brown fox jumps over the lazy dog."
opts = {"max_new_tokens": 6}
jobs = {
    "t5": {"id": "t5", "task": "summarize", "model": "t5", "text": text, "options": opts},
    "flan": {"id": "flan", "task": "summarize", "model": "flan", "text": text, "options": opts},
    "first": {"id": "first", "task": "summarize", "text": text, "options": opts},
    "nope": {"id": "nope", "task": "summarize", "model": "nope", "text": text, "options": opts},
}
entry = {k: r.xadd(stream, {"json": json.dumps(v)}).decode() for k, v in jobs.items()}
req = nlp_pb2.Request(id=77, model="t5", documents=[text])
req.summarize.SetInParent()
req.options.max_new_tokens = 6
entry["req"] = r.xadd(stream, {"req": req.SerializeToString()}).decode()

end = time.time() + 60
while r.xlen(results) < len(entry) and time.time() < end:
    time.sleep(0.05)
got = {}
for eid, f in r.xrange(results):
    got[f[b"entry"].decode()] = f
fails = []
def check(c, what):
    if not c:
        fails.append(what)
        print("FAIL:", what)
check(len(got) == len(entry), f"{len(got)} results for {len(entry)} jobs")

def batch(line):
    """nlpc batch over ZeroMQ to the same daemon: the line's output object."""
    p = subprocess.run([nlpc, "--connect", ep, "batch", "--task", "summarize",
                        "--max-new-tokens", "6"],
                       input=json.dumps(line) + "\n", capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout.splitlines()[0])

ref = {k: batch(v) for k, v in jobs.items() if k != "nope"}
for k in ("t5", "flan", "first"):
    res = json.loads(got[entry[k]][b"json"]) if entry[k] in got else None
    check(res == ref[k], f"{k}: queue {res} != nlpc batch {ref[k]}")
    check(ref[k].get("status") == "OK", f"{k}: nlpc batch {ref[k]}")
check(ref["t5"]["text"] != ref["flan"]["text"], f"t5 and flan computed the same: {ref['t5']}")
check(ref["first"] == {**ref["flan"], "id": "first"}, f"no model: not flan's: {ref['first']}")
res = json.loads(got[entry["nope"]][b"json"]) if entry["nope"] in got else {}
check(res.get("status") == "UNKNOWN_MODEL" and "flan" in res.get("error", "")
      and "t5" in res.get("error", ""), f"unknown model: {res}")
resp = nlp_pb2.Response()
resp.ParseFromString(got.get(entry["req"], {}).get(b"resp", b""))
check(resp.id == 77 and resp.status.code == 0 and len(resp.results) == 1
      and resp.results[0].text == ref["t5"]["text"], f"req job naming t5: {resp}")
pend = r.xpending(stream, group)["pending"]
check(pend == 0, f"{pend} entries still pending")
print(f"queue_models: {len(got)} results; t5 {ref['t5']['text']!r}, flan {ref['flan']['text']!r};"
      f" unknown: {res.get('error')!r}")
sys.exit(1 if fails else 0)
PY
stop_qd m
[ "$QD_RC" = 0 ] || { echo "FAIL: exit $QD_RC after SIGTERM" >&2; show_logs m; exit 1; }
echo "queue_models: ok"
