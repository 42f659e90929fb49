#!/usr/bin/env bash
# Every kind of bad input gets its documented status (MALFORMED, INVALID_ARGUMENT,
# UNKNOWN_TASK, INPUT_TOO_LONG, MESSAGE_TOO_LARGE, TOO_MANY_DOCUMENTS), over ipc and
# loopback tcp; then normal requests, health and stats still answer, stats counting the
# errors by code; a NUL byte in any string field is INVALID_ARGUMENT naming it, and every
# Status.message is valid UTF-8, also quoting long multi-byte input; then SIGTERM exits 0.
. tests/scripts/daemon_lib.bash

write_conf '
limits = { max_message_bytes = 4096; max_documents = 4; max_input_tokens = 64;
           max_new_tokens = 64; queue_size = 64; };
batching = { max_batch_tokens = 1024; max_wait_ms = 2; max_rows = 8; };
tasks = { truncate = false; };'
start_daemon --bind "$IPC" --bind "$TCP"

if ! timeout 120 $PY $WIRE badinput "$IPC" "$TCP"; then
    show_log_on_failure
    exit 1
fi
# Strings on the wire (issue 13 #4, #5): a NUL byte in any string field is
# INVALID_ARGUMENT naming the field (protobuf-c used to cut the string there silently),
# and every Status.message is valid UTF-8 for a strict decoder, also when it quotes a long
# multi-byte label and is cut to a buffer's size.
if ! timeout 120 $PY - "$IPC" <<'PY'
import sys
sys.path.insert(0, "tests/scripts")
import daemon_wire as w

s = w.dealer(sys.argv[1])


def strict_message(raw):
    """Status.message of a raw Response, decoded as strict decoders do (raises on bad UTF-8)."""
    return w.one(w.parse(w.one(w.parse(raw), 2, b"")), 2, b"").decode("utf-8")


def call_raw(payload):
    s.send(payload)
    if not s.poll(w.TIMEOUT_MS):
        w.check(False, "no reply")
        return None
    return s.recv_multipart()[-1]


def expect(name, payload, code, needle):
    raw = call_raw(payload)
    if raw is None:
        return
    r = w.Resp(raw)
    try:
        msg = strict_message(raw)
    except UnicodeDecodeError as e:
        w.check(False, "%s: Status.message is not valid UTF-8: %s" % (name, e))
        return
    ok = w.check(r.code == code and needle in msg,
                 "%s: expected %s with %r, got %s %r" % (name, w.NAMES[code], needle,
                                                         w.NAMES.get(r.code), msg))
    if ok:
        print("ok  %-34s %-17s %s" % (name, w.NAMES[code], msg), flush=True)


IA = w.INVALID_ARGUMENT
nul = b"ab\0cd"
expect("NUL in a document", w.request(40, "summarize", docs=["fine", nul]), IA,
       "documents[1]: a NUL byte at byte 2")
expect("NUL in a label", w.request(41, "classify", w.classify_body([b"x", nul]), docs=["t"]),
       IA, "classify.labels[1]: a NUL byte")
expect("NUL in the question", w.request(42, "qa", w.f_bytes(1, nul), docs=["ctx"]), IA,
       "qa.question: a NUL byte")
expect("NUL in the source language",
       w.request(43, "translate", w.f_bytes(1, nul) + w.f_bytes(2, "de"), docs=["t"]), IA,
       "translate.source_lang: a NUL byte")
expect("NUL in the target language", w.request(44, "translate", w.f_bytes(2, nul), docs=["t"]),
       IA, "translate.target_lang: a NUL byte")
expect("NUL at the end of a document", w.request(45, "summarize", docs=[b"text\0"]), IA,
       "documents[0]: a NUL byte at byte 4")
# Messages that quote client text: a long label of 3-byte characters given twice, a label
# over the token limit, an unknown language; each cut to a buffer somewhere.
for i, pad in enumerate(["", "a", "ab"]):
    label = pad + "\u20ac" * 200
    expect("label given twice, cut (%d)" % i,
           w.request(50 + i, "classify", w.classify_body([label, label]), docs=["t"]), IA,
           "is given twice")
    expect("over-long label, cut (%d)" % i,
           w.request(60 + i, "classify", w.classify_body([label, "ok"]), docs=["t"]), IA,
           "tokens")
    expect("unknown language, cut (%d)" % i,
           w.request(70 + i, "translate", w.f_bytes(2, label), docs=["t"]), IA,
           "unknown target language")
w.normal(s, 80, "classify")
sys.exit(1 if w.failures else 0)
PY
then
    show_log_on_failure
    exit 1
fi
grep -q "\[r[0-9]* id=23\] INVALID_ARGUMENT" "$TMP/nlpd.log" ||
    { echo "log lines do not carry request ids"; show_log_on_failure; exit 1; }
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || { echo "nlpd exit code $DAEMON_RC"; show_log_on_failure; exit 1; }
echo "daemon_badinput: ok"
