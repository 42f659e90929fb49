#!/usr/bin/env python3
"""CurveZMQ on nlpd's ROUTER (run by http_curve.sh): a client whose public key is in
security.curve_allowed_keys_dir is served; one with an unknown key, or without CURVE,
gets nothing while the allowed one goes on being served; after its certificate is added
and SIGHUP, the unknown key is served too. The key files are CZMQ certificates that
pyzmq's zmq.auth reads. The two clients that get nothing wait out their 1.5 s side by
side; after SIGHUP the daemon's log (NLPD_LOG) is polled for the re-read keys.
Usage: http_curve.py ENDPOINT KEYDIR NLPD_PID NLPD_LOG"""
import os
import shutil
import signal
import sys
import time

import zmq
import zmq.auth

sys.path.insert(0, os.path.dirname(__file__))
import daemon_wire as w  # noqa: E402

EP, KEYS, PID, LOG = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = zmq.Context()
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


server_pub, _ = zmq.auth.load_certificate(os.path.join(KEYS, "server"))
pub1, sec1 = zmq.auth.load_certificate(os.path.join(KEYS, "client1_secret"))
pub2, sec2 = zmq.auth.load_certificate(os.path.join(KEYS, "client2_secret"))
check(len(server_pub) == 40 and sec1 and len(sec1) == 40, "certificates read by zmq.auth")


def client(pub=None, sec=None):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if pub:
        s.curve_serverkey = server_pub
        s.curve_publickey = pub
        s.curve_secretkey = sec
    s.connect(EP)
    return s


def send_health(s, rid):
    # Never blocks: a refused handshake may leave the DEALER with no pipe to queue on.
    try:
        s.send(w.request(rid, "health"), zmq.NOBLOCK)
        return True
    except zmq.Again:
        return False


def health(s, rid, timeout_ms):
    if not send_health(s, rid) or not s.poll(timeout_ms):
        return None
    return w.parse(s.recv())


good = client(pub1, sec1)
check(health(good, 1, 10000) is not None, "allowed key: no answer")
refused = [("unknown key", client(pub2, sec2)), ("no CURVE", client())]
sent = [send_health(sock, 2) for _, sock in refused]
end = time.time() + 1.5   # both wait out the same 1.5 s
for (name, sock), was_sent in zip(refused, sent):
    got = was_sent and sock.poll(max(0, int((end - time.time()) * 1000))) != 0
    check(not got, f"{name}: answered")
    check(health(good, 3, 10000) is not None, f"allowed key not served after {name}")
for _, sock in refused:
    sock.close()

# the Python client's keys
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../clients/python"))
sys.path.insert(0, os.path.join(os.environ.get("NLP_BUILD", "build"), "gen/python"))
import nlpclient  # noqa: E402
pc = nlpclient.Client(EP, timeout_ms=10000, server_key=os.path.join(KEYS, "server"),
                      key=os.path.join(KEYS, "client1_secret"))
check(pc.health() is not None, "Python client with keys: no health")
pc.close()

shutil.copy(os.path.join(KEYS, "client2"), os.path.join(KEYS, "allowed", "client2"))
with open(LOG) as f:
    before = f.read().count("curve: 2 allowed client key(s)")
os.kill(PID, signal.SIGHUP)
end = time.time() + 10   # until the daemon logs the re-read set (bounded)
while time.time() < end:
    with open(LOG) as f:
        if f.read().count("curve: 2 allowed client key(s)") > before:
            break
    time.sleep(0.02)
late = client(pub2, sec2)
check(health(late, 4, 10000) is not None, "key added + SIGHUP: not served")
late.close()
good.close()
ctx.term()
print(f"http_curve.py: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
