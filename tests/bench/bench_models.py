#!/usr/bin/python3
"""Drives nlpd for tests/bench/bench_models.sh: C clients per model, each sending one
summarize request (one document, greedy, NEW tokens) at a time, N documents in all per
model, every model at once. Prints "MODEL docs/s" per model.

  bench_models.py ENDPOINT N NEW CLIENTS MODEL...
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import daemon_wire as w  # noqa: E402

DOC = ("The city council met on Tuesday to discuss the new budget for schools and roads. "
       "Several members argued that the plan spends too little on repairs, while others "
       "said taxes could not rise again this year. A vote is expected next month.")


def main():
    ep, n, new, clients, models = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), sys.argv[5:]
    done, lock, bad = {m: 0 for m in models}, threading.Lock(), []
    t_end = {}
    left = {m: n for m in models}

    def client(m, k):
        s = w.dealer(ep)
        while True:
            with lock:
                if left[m] == 0:
                    return
                left[m] -= 1
            req = w.request(k, "summarize", b"", [DOC], options={1: new, 4: new})
            req += w.f_bytes(13, m)
            s.send(req)
            if not s.poll(300000):
                bad.append("%s: no reply" % m)
                return
            r = w.Resp(s.recv_multipart()[-1])
            with lock:
                if r.code != 0:
                    bad.append("%s: %s %s" % (m, w.NAMES.get(r.code, r.code), r.message))
                done[m] += 1
                if done[m] == n:
                    t_end[m] = time.time()

    th = [threading.Thread(target=client, args=(m, k)) for m in models for k in range(clients)]
    t0 = time.time()
    for t in th:
        t.start()
    for t in th:
        t.join()
    if bad:
        sys.exit("bench_models: %s" % bad[:3])
    for m in models:
        print("%s %.2f" % (m, n / (t_end[m] - t0)))


if __name__ == "__main__":
    main()
