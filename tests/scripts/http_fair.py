#!/usr/bin/env python3
"""Per-client fairness (daemon/dmn_sched.c), run by http_fair.sh: one ZeroMQ client
queues 1,000 documents (20 requests of 50) while another sends one request at a time;
the second's latency stays within a few batches (under a quarter of the job's time)
instead of waiting behind the 1,000.
Usage: http_fair.py ENDPOINT"""
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import daemon_wire as w  # noqa: E402

EP = sys.argv[1]
OPTS = {1: 2}   # max_new_tokens = 2
JOBS = 20   # requests of 50 documents
etl, one = w.dealer(EP), w.dealer(EP)
t0 = time.time()
for i in range(JOBS):
    etl.send(w.request(1000 + i, "summarize", docs=[f"document {i}-{k} of the job" for k in range(50)],
                       options=OPTS))
time.sleep(0.3)   # the job is queued and running
lat = []
for i in range(8):
    t = time.time()
    one.send(w.request(i + 1, "summarize", docs=["one interactive document"], options=OPTS))
    if not one.poll(60000):
        print("interactive request unanswered")
        sys.exit(1)
    one.recv()
    lat.append(time.time() - t)
done = 0
while done < JOBS and etl.poll(120000):
    etl.recv()
    done += 1
total = time.time() - t0
print(f"http_fair: job of {JOBS * 50} documents {total:.2f} s ({done}/{JOBS} replies); interactive "
      f"latencies {', '.join(f'{x * 1000:.0f}' for x in lat)} ms")
ok = done == JOBS and max(lat) < total / 4
sys.exit(0 if ok else 1)
