# Shared by tests/scripts/e2e_*.sh (sourced, not run as a test): start nlpd on the tiny
# model on a free loopback port and an ipc endpoint in a temp dir, and always stop it.
#   e2e_start            sets T (temp dir), TCP, IPC, NLPD_PID; waits for health
#   e2e_fail MSG         prints and exits 1
# The trap kills the daemon on any exit; every wait is bounded.
set -euo pipefail
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
MODEL=tests/data/models/tiny-flan
T=$(mktemp -d /tmp/nlpd-e2e.XXXXXX)
NLPD_PID=

e2e_cleanup() {
    if [ -n "$NLPD_PID" ] && kill -0 "$NLPD_PID" 2>/dev/null; then
        kill -TERM "$NLPD_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NLPD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NLPD_PID" 2>/dev/null || true
        wait "$NLPD_PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap e2e_cleanup EXIT

e2e_fail() {
    echo "FAIL: $*" >&2
    [ -f "$T/nlpd.log" ] && { echo "--- nlpd log (tail)" >&2; tail -20 "$T/nlpd.log" >&2; }
    exit 1
}

e2e_free_port() {
    $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

e2e_start() {
    local port
    port=$(e2e_free_port)
    TCP="tcp://127.0.0.1:$port"
    IPC="ipc://$T/nlpd.sock"
    "$B/nlpd" -c conf/nlpd.conf --model "$MODEL" --bind "$TCP" --bind "$IPC" \
        --log-level warn "$@" >"$T/nlpd.log" 2>&1 &
    NLPD_PID=$!
    for _ in $(seq 100); do
        if "$B/nlpc" --connect "$TCP" --timeout 200 health >/dev/null 2>&1; then return 0; fi
        kill -0 "$NLPD_PID" 2>/dev/null || e2e_fail "nlpd exited at start"
    done
    e2e_fail "nlpd did not answer health within ~20 s"
}

# e2e_cases_args CASES_JSONL: for each case (one Python for all), a line
# "ARGS<US>TEXT": ARGS the shell-quoted command-line arguments of the case's task and
# options (for nlprun and nlpc), US the unit separator 0x1f, TEXT the case's text.
e2e_cases_args() {
    $PY -c '
import json, shlex, sys
for l in open(sys.argv[1]):
    if not l.strip():
        continue
    c = json.loads(l)
    a = [c["task"]]
    for k, f in (("to", "--to"), ("from", "--from"), ("question", "--question"),
                 ("max_new_tokens", "--max-new-tokens"), ("num_beams", "--num-beams")):
        if k in c: a += [f, str(c[k])]
    if "labels" in c: a += ["--labels", ",".join(c["labels"])]
    assert "\x1f" not in c["text"] and "\n" not in c["text"]
    print(" ".join(shlex.quote(x) for x in a) + "\x1f" + c["text"])' "$1"
}
