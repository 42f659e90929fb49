#!/usr/bin/python3
"""Structure-aware wire fuzzer for a live nlpd (tests/scripts/wire_fuzz.sh runs it).

  wire_fuzz.py --ep EP [--pull EP --push EP] --seed S [--seconds T] [--cases N]
               [--case K] [--max-message-bytes N] [--max-envelope-bytes N] [--max-docs N]

Each case starts from a valid request of one kind (summarize, translate, classify, qa,
text2text, health, stats), built as a tree of protobuf fields, and applies 1-3 mutations:
field lengths, varints (overlong, over 10 bytes, truncated, huge values), wire types,
unknown fields, deep nesting, huge repeats, invalid UTF-8, embedded NULs, long multi-byte
strings (quoted back in error messages), duplicate oneof and scalar fields, truncation,
random bytes; then sends it, from a DEALER (sometimes behind extra routing frames: many,
empty or big ones) or, when the pipeline is configured, through PUSH -> nlpd's PULL.

Case K of seed S is generated from its own RNG (seed S, case K): `--seed S --case K`
replays one case. Checks, per case (every violation is printed with seed, case, kind,
mutations and the frame's first bytes):
  - exactly one reply, within 5 s (frames over 4x max_message_bytes excepted: ZeroMQ
    closes such a connection unread, as documented), with the routing frames echoed;
  - it parses with the generated nlp_pb2, every string field in it is valid UTF-8 (a
    proto2 string field with invalid UTF-8 comes back from python protobuf as bytes, or
    the parse raises: both are violations), Status.message also checked on the raw wire;
  - its status codes (request and each result) are codes nlp.proto documents;
  - the code the input calls for where the input decides it: an empty frame UNKNOWN_TASK,
    a frame over max_message_bytes MESSAGE_TOO_LARGE, a frame that is not a protobuf
    (a length past the end, a truncated or over-long varint, wire type 6/7, a known
    field with the wrong wire type) MALFORMED, a well-formed one never MALFORMED, a
    valid request whose only fault is a NUL byte or invalid UTF-8 in one of its strings
    INVALID_ARGUMENT, more than 8 routing frames or more than max_envelope_bytes of them
    MALFORMED (answered to the peer without the echo), a multi-frame pipeline message
    MALFORMED; the request's id echoed (a malformed one's: its first field's, or 0);
    an OK task reply has one result per document;
  - at the end, a normal request is answered OK.
A self-test first feeds the checker crafted replies with invalid UTF-8 (and an unknown
code) and exits 1 unless it flags them: the check can fail.
"""
import argparse
import os
import random
import sys
import time
import warnings

import zmq

sys.setrecursionlimit(20000)   # deeply nested test messages

B = os.environ.get("NLP_BUILD", "build")
sys.path.insert(0, os.path.join(B, "gen", "python"))
import nlp_pb2 as pb  # noqa: E402
from google.protobuf import descriptor as gpd  # noqa: E402

OK, INVALID_ARGUMENT, UNKNOWN_TASK, INPUT_TOO_LONG, OVERLOADED = 0, 1, 2, 3, 4
DEADLINE_EXCEEDED, INTERNAL, MESSAGE_TOO_LARGE, TOO_MANY_DOCUMENTS = 5, 6, 7, 8
SHUTTING_DOWN, MALFORMED = 9, 10
# Every code nlp.proto documents (UNSUPPORTED, UNKNOWN_MODEL, ... included), by name.
NAMES = {v.number: v.name for v in pb.DESCRIPTOR.enum_types_by_name["StatusCode"].values}
DOCUMENTED = set(NAMES)
MAX_ENV_FRAMES = 8           # routing frames the daemon keeps (the peer's id included)
REPLY_TIMEOUT_S = 5           # the tiny model answers any valid case in milliseconds


def cname(c):
    return NAMES.get(c, "code %d" % c)


# ---- wire encoding ----
def varint(v, pad=0):
    """v as a varint; pad adds redundant continuation bytes (an overlong encoding)."""
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            break
    if pad:   # same value: the last byte continues into zero groups
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


class F:
    """One field on the wire. v: int (wt 0), bytes (wt 1/5, or raw wt 2), list of F (a
    sub-message, wt 2). raw_key / raw_len / raw_val replace the encoded parts."""
    __slots__ = ("num", "wt", "v", "raw_key", "raw_len", "raw_val", "path")

    def __init__(self, num, wt, v, path=""):
        self.num, self.wt, self.v, self.path = num, wt, v, path
        self.raw_key = self.raw_len = self.raw_val = None


def enc(fields):
    out = bytearray()
    for f in fields:
        out += f.raw_key if f.raw_key is not None else varint(f.num << 3 | f.wt)
        if f.raw_val is not None and f.wt != 2:
            out += f.raw_val
            continue
        if f.wt == 0:
            out += varint(f.v)
        elif f.wt in (1, 5):
            out += f.v
        elif f.wt == 2:
            body = enc(f.v) if isinstance(f.v, list) else (f.raw_val if f.raw_val is not None
                                                          else f.v)
            out += f.raw_len if f.raw_len is not None else varint(len(body))
            out += body
        # wt 3, 4, 6, 7: the key alone
    return bytes(out)


# ---- the schema the daemon decodes (from the generated descriptors) ----
def schema_of(desc):
    out = {}
    for fd in desc.fields:
        if fd.type == gpd.FieldDescriptor.TYPE_MESSAGE:
            out[fd.number] = ("msg", schema_of(fd.message_type))
        elif fd.type == gpd.FieldDescriptor.TYPE_STRING:
            out[fd.number] = ("str", None)
        elif fd.type in (gpd.FieldDescriptor.TYPE_BYTES,):
            out[fd.number] = ("bytes", None)
        elif fd.type in (gpd.FieldDescriptor.TYPE_FLOAT, gpd.FieldDescriptor.TYPE_FIXED32,
                         gpd.FieldDescriptor.TYPE_SFIXED32):
            out[fd.number] = ("f32", None)
        elif fd.type in (gpd.FieldDescriptor.TYPE_DOUBLE, gpd.FieldDescriptor.TYPE_FIXED64,
                         gpd.FieldDescriptor.TYPE_SFIXED64):
            out[fd.number] = ("f64", None)
        elif fd.type == gpd.FieldDescriptor.TYPE_BOOL:
            out[fd.number] = ("bool", None)
        else:
            out[fd.number] = ("varint", None)
    return out


REQ_SCHEMA = schema_of(pb.Request.DESCRIPTOR)
WANT_WT = {"msg": 2, "str": 2, "bytes": 2, "f32": 5, "f64": 1, "varint": 0, "bool": 0}


def read_varint(b, i):
    v, shift, n = 0, 0, 0
    while True:
        if i >= len(b):
            return None, i, "truncated varint"
        c = b[i]
        i += 1
        n += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i, None if n <= 10 else "varint over 10 bytes"
        if n >= 10 and c & 0x80:
            return None, i, "varint over 10 bytes"


def wire_verdict(b, schema, depth=0):
    """'valid', 'invalid' (protobuf-c cannot unpack it) or 'unsure' (the library's choice:
    field number 0, tags over 2^29, groups). Known sub-messages are checked too."""
    i, verdict = 0, "valid"
    while i < len(b):
        key, i, err = read_varint(b, i)
        if err:
            return "invalid"
        num, wt = key >> 3, key & 7
        if wt in (6, 7):
            return "invalid"
        kind = schema.get(num, (None, None))
        if wt in (3, 4):   # groups: protobuf-c's choice; what follows is theirs to read
            return "invalid" if kind[0] is not None else "unsure"
        if num == 0 or num >= 1 << 29 or key >= 1 << 32:
            verdict = "unsure"
        if kind[0] is not None and WANT_WT[kind[0]] != wt:
            if kind[0] != "bool":
                return "invalid"
            verdict = "unsure"   # protobuf-c 1.4 reads a bool whatever its wire type
        if wt == 0:
            _, i, err = read_varint(b, i)
            if err:
                return "invalid"
        elif wt == 1:
            if len(b) - i < 8:
                return "invalid"
            i += 8
        elif wt == 5:
            if len(b) - i < 4:
                return "invalid"
            i += 4
        elif wt == 2:
            n, i, err = read_varint(b, i)
            if err or n > len(b) - i:
                return "invalid"
            if kind[0] == "msg" and depth < 16:
                sub = wire_verdict(b[i:i + n], kind[1], depth + 1)
                if sub == "invalid":
                    return "invalid"
                if sub == "unsure":
                    verdict = "unsure"
            i += n
    return verdict


def peek_id(b):
    """What the daemon echoes for a frame it cannot decode: field 1's varint when it
    comes first."""
    if len(b) < 2 or b[0] != 0x08:
        return 0
    v, _, err = read_varint(b, 1)
    return 0 if err else v


# ---- reply checks ----
def utf8_ok(b):
    try:
        b.decode("utf-8", "strict")
        return True
    except UnicodeDecodeError:
        return False


def walk_strings(msg, path, out):
    """Every string field of a parsed message: bytes (python protobuf's answer to invalid
    UTF-8 in a proto2 string) or a str that does not encode is a violation."""
    for fd, val in msg.ListFields():
        vals = val if fd.label == gpd.FieldDescriptor.LABEL_REPEATED else [val]
        for k, v in enumerate(vals):
            p = "%s.%s" % (path, fd.name) + ("[%d]" % k if len(vals) > 1 else "")
            if fd.type == gpd.FieldDescriptor.TYPE_MESSAGE:
                walk_strings(v, p, out)
            elif fd.type == gpd.FieldDescriptor.TYPE_STRING:
                if isinstance(v, bytes):
                    out.append("%s is not valid UTF-8: %r" % (p, v[:80]))
                else:
                    try:
                        v.encode("utf-8")
                    except UnicodeEncodeError:
                        out.append("%s is not valid UTF-8: %r" % (p, v[:80]))


def raw_fields(b):
    out, i = {}, 0
    while i < len(b):
        key, i, err = read_varint(b, i)
        if err:
            raise ValueError(err)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i, err = read_varint(b, i)
            if err:
                raise ValueError(err)
        elif wt == 2:
            n, i, err = read_varint(b, i)
            if err or n > len(b) - i:
                raise ValueError("bad length")
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


class quiet_stderr:
    """libprotobuf (C++) logs every proto2 string with invalid UTF-8 it parses to fd 2:
    the fuzzer sends thousands on purpose, and reports the ones in replies itself."""
    null = os.open(os.devnull, os.O_WRONLY)

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        os.dup2(self.null, 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def parse_quiet(msg, raw):
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        msg.ParseFromString(raw)
    return msg


def check_reply(raw):
    """(parsed Response or None, [violations]) for one reply payload."""
    bad = []
    # Status.message on the raw wire, whatever the protobuf library does with it.
    try:
        # (python protobuf keeps an unknown proto2 enum value out of sight: code reads 0)
        top = raw_fields(raw)
        for where, sts in [("Status", top.get(2, []))] + [
                ("Result %d status" % k, raw_fields(res).get(1, []))
                for k, res in enumerate(top.get(3, []))]:
            for st in sts:
                sf = raw_fields(st)
                for c in sf.get(1, []):
                    if not isinstance(c, int) or c not in DOCUMENTED:
                        bad.append("%s: undocumented status code %r (raw)" % (where, c))
                for m in sf.get(2, []):
                    if not utf8_ok(m):
                        bad.append("%s.message is not valid UTF-8 (raw): %r" % (where, m[:80]))
    except ValueError as e:
        bad.append("reply is not protobuf on the wire: %s" % e)
    r = pb.Response()
    try:
        parse_quiet(r, raw)
    except Exception as e:  # noqa: BLE001
        bad.append("reply does not parse with nlp_pb2: %s" % e)
        return None, bad
    walk_strings(r, "Response", bad)
    if r.status.code not in DOCUMENTED:
        bad.append("undocumented status code %d" % r.status.code)
    for k, res in enumerate(r.results):
        if res.status.code not in DOCUMENTED:
            bad.append("result %d: undocumented status code %d" % (k, res.status.code))
    return r, bad


def self_test():
    """The checker must flag invalid UTF-8 in a reply's strings and undocumented codes."""
    def resp(code, msg, text=None):
        st = varint(1 << 3) + varint(code) + varint(2 << 3 | 2) + varint(len(msg)) + msg
        out = varint(1 << 3) + varint(7) + varint(2 << 3 | 2) + varint(len(st)) + st
        if text is not None:
            res = varint(2 << 3 | 2) + varint(len(text)) + text
            out += varint(3 << 3 | 2) + varint(len(res)) + res
        return out
    ok = True
    for name, raw in (("Status.message cut inside a character", resp(1, b"label '\xe2\x82")),
                      ("lone continuation byte in Result.text", resp(0, b"", b"ab\x80cd")),
                      ("undocumented code 99", resp(99, b"fine"))):
        _, bad = check_reply(raw)
        print("self-test: %-40s -> %s" % (name, "; ".join(bad) if bad else "NOT FLAGGED"),
              flush=True)
        ok &= bool(bad)
    _, bad = check_reply(resp(1, "document 0: caf\u00e9 \u20ac \U0001F600".encode()))
    print("self-test: %-40s -> %s" % ("valid multi-byte message", bad or "clean"), flush=True)
    return ok and not bad


# ---- valid requests of every kind ----
LANGS = ["de", "fr", "ro", "German", "es"]
WORDS = "the council voted on a budget for schools and roads after a long debate".split()


def rand_text(rng, lo=1, hi=12):
    kind = rng.random()
    if kind < 0.08:   # long multi-byte text: error messages that quote it must cut whole chars
        ch = rng.choice(["\u00e9", "\u20ac", "\U0001F600", "\u4e2d"])
        return (rng.choice(["", "x", "xy"]) + ch * rng.randint(40, 200)).encode()
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).encode()


def base_request(rng, kind, rid, max_docs):
    f = [F(1, 0, rid, "id")]
    task_num = {"summarize": 2, "translate": 3, "classify": 4, "qa": 5, "text2text": 6,
                "health": 7, "stats": 8}[kind]
    body = []
    if kind == "translate":
        if rng.random() < 0.3:
            body.append(F(1, 2, rng.choice(LANGS).encode(), "translate.source_lang"))
        tl = rng.choice(LANGS).encode() if rng.random() < 0.9 else rand_text(rng)
        body.append(F(2, 2, tl, "translate.target_lang"))
    elif kind == "classify":
        labels = rng.sample(["sports", "politics", "business", "science", "music", "\u00e9t\u00e9"],
                            rng.randint(1, 4))
        if rng.random() < 0.1:   # a long label, given twice: the message quotes it
            labels = [rand_text(rng).decode()] * 2
        for lab in labels:
            body.append(F(1, 2, lab.encode(), "classify.labels"))
        if rng.random() < 0.3:
            body.append(F(2, 0, rng.randint(0, 1), "classify.multi_label"))
    elif kind == "qa":
        body.append(F(1, 2, rand_text(rng, 2, 6), "qa.question"))
    f.append(F(task_num, 2, body, kind))
    if kind not in ("health", "stats"):
        for _ in range(rng.randint(1, min(3, max_docs))):
            f.append(F(9, 2, rand_text(rng), "documents"))
        opts = [F(1, 0, rng.randint(1, 4), "options.max_new_tokens")]
        if kind != "classify" and rng.random() < 0.3:
            opts.append(F(2, 0, rng.randint(1, 2), "options.num_beams"))
        f.append(F(10, 2, opts, "options"))
        if rng.random() < 0.3:
            f.append(F(11, 0, rng.choice([1, 50, 5000, 60000]), "deadline_ms"))
        if rng.random() < 0.3:
            f.append(F(12, 0, rng.randint(-100, 100), "priority"))
    return f


def all_fields(fields, out=None):
    out = [] if out is None else out
    for f in fields:
        out.append((fields, f))
        if isinstance(f.v, list):
            all_fields(f.v, out)
    return out


STRING_PATHS = ("documents", "translate.source_lang", "translate.target_lang",
                "classify.labels", "qa.question")
BAD_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\x80", b"\xbf\xbf", b"\xe2\x82", b"\xf0\x9f\x98", b"\xf8\x88\x80\x80\x80", b"\xc3"]


# ---- mutations: (rng, fields, ctx) -> description; ctx collects what they imply ----
def m_length(rng, fields, ctx):
    cands = [(p, f) for p, f in all_fields(fields) if f.wt == 2]
    if not cands:
        return None
    _, f = rng.choice(cands)
    body = enc(f.v) if isinstance(f.v, list) else f.v
    n = max(0, len(body) + rng.choice([-3, -2, -1, 1, 2, 7, 1000, 1 << 31, (1 << 64) - 1]))
    f.raw_len = varint(n)
    return "length of %s %d -> %d" % (f.path or f.num, len(body), n)


def m_varint(rng, fields, ctx):
    cands = [(p, f) for p, f in all_fields(fields) if f.wt == 0]
    if not cands:
        return None
    _, f = rng.choice(cands)
    how = rng.randrange(4)
    if how == 0:
        pad = rng.randint(1, 12)
        f.raw_val = varint(f.v, pad)
        return "varint %s overlong (%d bytes)" % (f.path, len(f.raw_val))
    if how == 1:
        f.v = rng.choice([(1 << 64) - 1, 1 << 32, (1 << 32) - 1, 1 << 31, (1 << 63), 0])
        return "varint %s = %d" % (f.path, f.v)
    if how == 2:
        f.raw_val = b"\xff" * rng.randint(11, 20) + b"\x01"
        return "varint %s of %d bytes" % (f.path, len(f.raw_val))
    f.raw_val = varint(f.v)[:-1] + bytes([varint(f.v)[-1] | 0x80])
    return "varint %s unterminated" % f.path


def m_truncated_tail(rng, fields, ctx):
    """A truncated varint (or fixed value) at the very end."""
    tail = rng.choice([varint(11 << 3) + b"\x80", varint(1 << 3) + b"\xff\xff",
                       varint(9 << 3 | 2) + b"\x85", varint(13 << 3 | 1) + b"\x00\x01",
                       varint(13 << 3 | 5) + b"\x00", b"\x80"])
    f = F(0, 0, 0, "tail")
    f.raw_key, f.raw_val = tail, b""
    fields.append(f)
    return "truncated tail %s" % tail.hex()


def m_wiretype(rng, fields, ctx):
    _, f = rng.choice(all_fields(fields))
    new = rng.choice([w for w in (0, 1, 2, 3, 4, 5, 6, 7) if w != f.wt])
    f.raw_key = varint(f.num << 3 | new)
    return "wire type of %s %d -> %d" % (f.path or f.num, f.wt, new)


def rand_unknown(rng, depth=0):
    num = rng.choice([13, 14, 15, 31, 100, 1000, 2047, 65535, (1 << 29) - 1, 0])
    wt = rng.choice([0, 0, 1, 2, 2, 5, 3, 4])
    if wt == 0:
        f = F(num, 0, rng.choice([0, 1, 300, (1 << 64) - 1]))
    elif wt == 1:
        f = F(num, 1, bytes(rng.randrange(256) for _ in range(8)))
    elif wt == 5:
        f = F(num, 5, bytes(rng.randrange(256) for _ in range(4)))
    elif wt == 2:
        f = F(num, 2, bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))))
    else:
        f = F(num, wt, b"")
    f.path = "unknown field %d/wt %d" % (num, wt)
    return f


def m_unknown(rng, fields, ctx):
    targets = [fields] + [f.v for _, f in all_fields(fields) if isinstance(f.v, list)]
    t = rng.choice(targets)
    k = rng.randint(1, 4)
    added = []
    for _ in range(k):
        u = rand_unknown(rng)
        t.insert(rng.randint(0, len(t)), u)
        added.append(u.path)
    return "unknown fields: " + ", ".join(added)


def m_nest(rng, fields, ctx):
    depth = rng.choice([2, 10, 64, 100, 500, 2000])
    num = rng.choice([13, 9999, 2, 10])   # unknown, or (wrongly) inside task / options
    inner = [F(1, 0, 1)]
    for _ in range(depth):
        inner = [F(num, 2, inner)]
    where = rng.choice([fields] + [f.v for _, f in all_fields(fields) if isinstance(f.v, list)])
    where.append(inner[0])
    return "nesting %d deep (field %d)" % (depth, num)


def m_repeat(rng, fields, ctx):
    what = rng.randrange(4)
    n = rng.choice([9, 65, 1000, 5000, 20000])
    if what == 0:
        fields.extend(F(9, 2, b"d", "documents") for _ in range(n))
        return "%d more documents" % n
    if what == 1:
        fields.append(F(4, 2, [F(1, 2, b"l%d" % i, "classify.labels") for i in range(n)],
                        "classify"))
        return "classify with %d labels" % n
    if what == 2:
        fields.extend(F(1, 0, 7 + i, "id") for i in range(min(n, 2000)))
        return "id repeated %d times" % min(n, 2000)
    fields.extend(F(20, 0, i) for i in range(n))
    return "unknown field repeated %d times" % n


def string_fields(fields):
    return [(p, f) for p, f in all_fields(fields) if f.path in STRING_PATHS]


def m_bad_utf8(rng, fields, ctx):
    c = string_fields(fields)
    if not c:
        return None
    _, f = rng.choice(c)
    bad = rng.choice(BAD_UTF8)
    pos = rng.randint(0, len(f.v))
    f.v = f.v[:pos] + bad + f.v[pos:]
    ctx["string_fault"] = True
    return "invalid UTF-8 %s in %s at %d" % (bad.hex(), f.path, pos)


def m_nul(rng, fields, ctx):
    c = string_fields(fields)
    if not c:
        return None
    _, f = rng.choice(c)
    pos = rng.randint(0, len(f.v))
    f.v = f.v[:pos] + b"\x00" * rng.randint(1, 3) + f.v[pos:]
    ctx["string_fault"] = True
    return "NUL in %s at %d" % (f.path, pos)


def m_dup_oneof(rng, fields, ctx):
    other = rng.choice([2, 3, 4, 5, 6, 7, 8])
    body = {3: [F(2, 2, b"de")], 4: [F(1, 2, b"x")], 5: [F(1, 2, b"why")]}.get(other, [])
    fields.insert(rng.randint(0, len(fields)), F(other, 2, body, "task %d" % other))
    return "second task field %d" % other


def m_dup_scalar(rng, fields, ctx):
    num = rng.choice([1, 11, 12, 10])
    v = {1: rng.randint(0, 1 << 40), 11: rng.randint(0, 100000), 12: rng.randint(-200, 200)}
    if num == 10:
        fields.append(F(10, 2, [F(1, 0, rng.randint(0, 50))], "options"))
    else:
        fields.append(F(num, 0, v[num], {1: "id", 11: "deadline_ms", 12: "priority"}[num]))
    return "duplicate field %d" % num


def m_random_bytes(rng, fields, ctx):
    c = [(p, f) for p, f in all_fields(fields) if f.wt == 2]
    if not c:
        return None
    _, f = rng.choice(c)
    f.v = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
    return "random payload in %s" % (f.path or f.num)


# Weighted: about half keep the frame a well-formed protobuf (the daemon must then judge
# the content), half break the wire format (it must say MALFORMED).
MUTATIONS = ([m_length, m_varint, m_truncated_tail, m_wiretype, m_random_bytes] +
             [m_unknown, m_nest, m_repeat, m_dup_oneof, m_dup_scalar, m_varint] +
             [m_bad_utf8, m_nul] * 3)


# ---- one case ----
class Case:
    pass


def make_case(seed, k, a, pipeline_ok):
    rng = random.Random(seed * 1000003 + k)
    c = Case()
    c.k, c.rid = k, 100000 + k
    c.kind = rng.choice(["summarize", "translate", "classify", "qa", "text2text", "health",
                         "stats"])
    fields = base_request(rng, c.kind, c.rid, a.max_docs)
    ctx = {}
    c.muts = []
    nm = 0 if rng.random() < 0.05 else rng.choice([1, 1, 1, 2, 3])
    for _ in range(nm):
        d = rng.choice(MUTATIONS)(rng, fields, ctx)
        if d:
            c.muts.append(d)
    c.string_fault = ctx.get("string_fault") and len(c.muts) == 1
    c.payload = enc(fields)
    r = rng.random()
    if r < 0.03:
        c.payload, c.muts = b"", c.muts + ["empty frame"]
    elif r < 0.10 and c.payload:
        cut = rng.randrange(len(c.payload))
        c.payload, c.muts = c.payload[:cut], c.muts + ["truncated at %d of %d" % (cut, len(c.payload))]
        c.string_fault = False
    elif r < 0.13:   # a frame past max_message_bytes (an unknown field pads it)
        over = rng.choice([1, 100, a.max_message_bytes, 3 * a.max_message_bytes])
        pad = a.max_message_bytes - len(c.payload) + over
        c.payload += varint(15 << 3 | 2) + varint(pad) + b"p" * pad
        c.muts.append("padded to %d bytes" % len(c.payload))
    c.env = []
    c.via = "dealer"
    if pipeline_ok and rng.random() < 0.2:
        c.via = "pipeline"
        if rng.random() < 0.15:
            c.env = [b"x" * rng.choice([0, 1, 100])] * rng.randint(1, 3)
            c.muts.append("pipeline message of %d frames" % (len(c.env) + 1))
    elif rng.random() < 0.3:
        nf = rng.choice([1, 2, 3, 6, 7, 8, 9, 12, 30])
        size = rng.choice([0, 1, 16, 200, 1000, 4000, 65535, 70000, 200000])
        c.env = [bytes([rng.randrange(256)]) * (size if rng.random() < 0.7 else 0)
                 for _ in range(nf)]
        c.muts.append("%d routing frames of up to %d bytes" % (nf, size))
    return c


def expectation(c, a, rid_len):
    """(allowed codes or None for any documented code, expected id or set, echo frames)."""
    if c.via == "pipeline" and c.env:
        return {MALFORMED}, {0}, None
    if c.via == "dealer" and c.env:
        env_bytes = rid_len + sum(len(e) for e in c.env)
        if len(c.env) + 1 > MAX_ENV_FRAMES or env_bytes > a.max_envelope_bytes:
            return {MALFORMED}, {0}, []
    echo = list(c.env) if c.via == "dealer" else []
    p = c.payload
    if len(p) > a.max_message_bytes:
        return {MESSAGE_TOO_LARGE}, {0, peek_id(p)}, echo
    if not p:
        return {UNKNOWN_TASK}, {0}, echo
    v = wire_verdict(p, REQ_SCHEMA)
    if v == "invalid":
        return {MALFORMED}, {0, peek_id(p)}, echo
    ids = None
    try:
        ids = {parse_quiet(pb.Request(), p).id}
    except Exception:  # noqa: BLE001
        pass
    if v == "valid":
        if c.string_fault:
            return {INVALID_ARGUMENT}, ids, echo
        return DOCUMENTED - {MALFORMED}, ids, echo
    return None, ids | {0, peek_id(p)} if ids else None, echo


class Fuzzer:
    def __init__(self, a):
        self.a = a
        self.ctx = zmq.Context()
        self.rid_n = 0
        self.dealer = self.new_dealer()
        self.push = self.pull = None
        if a.pull and a.push:
            self.push = self.ctx.socket(zmq.PUSH)
            self.push.setsockopt(zmq.LINGER, 0)
            self.push.connect(a.pull)
            self.pull = self.ctx.socket(zmq.PULL)
            self.pull.setsockopt(zmq.LINGER, 0)
            self.pull.connect(a.push)
            # nlpd's PUSH drops a reply while no PULL is connected: wait until one comes
            # back (bounded) before fuzzing the pipeline.
            hello = pb.Request(id=1)
            hello.health.SetInParent()
            for _ in range(50):
                self.push.send(hello.SerializeToString())
                if self.pull.poll(200):
                    self.pull.recv_multipart()
                    while self.pull.poll(300):
                        self.pull.recv_multipart()
                    break
            else:
                raise SystemExit("FAIL: no health reply through the pipeline in 10 s")
        self.violations = []
        self.codes = {}
        self.cases = 0
        self.noreply_ok = 0
        self.case_bad = []

    def new_dealer(self):
        self.rid_n += 1
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        self.rid = b"wfz%05d" % self.rid_n   # a known routing id: its bytes count in the envelope
        s.setsockopt(zmq.ROUTING_ID, self.rid)
        s.connect(self.a.ep)
        return s

    def violation(self, c, what):
        self.violations.append((c, what))
        self.case_bad.append(what)

    def report(self, c):
        if not self.case_bad:
            return
        print("VIOLATION seed=%d case=%d kind=%s via=%s mutations=[%s]:\n      %s\n"
              "    replay: --seed %d --case %d; frame (%d bytes) starts %s"
              % (self.a.seed, c.k, c.kind, c.via, "; ".join(c.muts) or "none",
                 "\n      ".join(self.case_bad), self.a.seed, c.k, len(c.payload),
                 c.payload[:48].hex()), flush=True)

    def run_case(self, c):
        self.case_bad = []
        try:
            self.run_one(c)
        finally:
            self.report(c)

    def run_one(self, c):
        a = self.a
        self.cases += 1
        sock = self.dealer if c.via == "dealer" else self.push
        rsock = self.dealer if c.via == "dealer" else self.pull
        frames = list(c.env) + [c.payload]
        allowed, ids, echo = expectation(c, a, len(self.rid))
        if max(len(f) for f in frames) > 4 * a.max_message_bytes:
            # documented: ZeroMQ closes such a connection without reading it
            sock.send_multipart(frames)
            rsock.poll(200)
            self.noreply_ok += 1
            self.reset(c)
            return
        sock.send_multipart(frames)
        if not rsock.poll(REPLY_TIMEOUT_S * 1000):
            self.violation(c, "no reply within %d s" % REPLY_TIMEOUT_S)
            self.reset(c)
            return
        got = rsock.recv_multipart()
        r, bad = check_reply(got[-1])
        for b in bad:
            self.violation(c, b)
        if r is None:
            return
        self.codes[r.status.code] = self.codes.get(r.status.code, 0) + 1
        if allowed is not None and r.status.code not in allowed:
            self.violation(c, "got %s %r, expected %s" % (
                cname(r.status.code), r.status.message, "/".join(cname(x) for x in
                                                                   sorted(allowed))))
        if ids is not None and r.id not in ids:
            self.violation(c, "reply id %d, expected %s" % (r.id, sorted(ids)))
        if echo is not None and c.via == "dealer" and got[:-1] != echo:
            self.violation(c, "routing frames echoed as %d frame(s) %r, expected %d"
                           % (len(got) - 1, [x[:8] for x in got[:-1]][:4], len(echo)))
        if r.status.code == OK and c.kind not in ("health", "stats") and ids is not None:
            try:
                m = parse_quiet(pb.Request(), c.payload)
                if m.WhichOneof("task") not in ("health", "stats") and \
                        len(r.results) != len(m.documents):
                    self.violation(c, "OK with %d results for %d documents"
                                   % (len(r.results), len(m.documents)))
            except Exception:  # noqa: BLE001
                pass
        # nothing else may come for this one request
        if rsock.poll(0):
            extra = rsock.recv_multipart()
            self.violation(c, "a second reply (%d frames)" % len(extra))

    def reset(self, c):
        if c.via == "dealer":
            self.dealer.close()
            self.dealer = self.new_dealer()

    def normal(self):
        s = self.new_dealer()
        m = pb.Request(id=7, documents=["The quick brown fox jumps over the lazy dog."])
        m.summarize.SetInParent()
        m.options.max_new_tokens = 4
        s.send(m.SerializeToString())
        if not s.poll(30000):
            return "no reply within 30 s"
        r, bad = check_reply(s.recv())
        s.close()
        if bad or r is None:
            return "; ".join(bad)
        if r.status.code != OK or len(r.results) != 1 or r.id != 7:
            return "%s %r (%d results)" % (cname(r.status.code), r.status.message, len(r.results))
        return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ep", required=True)
    p.add_argument("--pull", help="nlpd's PULL endpoint (we PUSH to it)")
    p.add_argument("--push", help="nlpd's PUSH endpoint (we PULL from it)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--cases", type=int, default=1000000)
    p.add_argument("--case", type=int, help="replay this one case")
    p.add_argument("--max-message-bytes", type=int, default=65536)
    p.add_argument("--max-envelope-bytes", type=int, default=1024)
    p.add_argument("--max-docs", type=int, default=8)
    a = p.parse_args()
    if not self_test():
        print("FAIL: the reply checker does not flag what it must")
        return 1
    fz = Fuzzer(a)
    t0 = time.time()
    print("wire_fuzz: seed %d (--seed %d reproduces; --case K replays one case)"
          % (a.seed, a.seed), flush=True)
    if a.case is not None:
        c = make_case(a.seed, a.case, a, fz.push is not None)
        print("case %d: %s via %s, mutations %s, %d bytes, %d routing frames"
              % (c.k, c.kind, c.via, c.muts, len(c.payload), len(c.env)))
        fz.run_case(c)
    else:
        k = 0
        while k < a.cases and time.time() - t0 < a.seconds:
            fz.run_case(make_case(a.seed, k, a, fz.push is not None))
            k += 1
            time.sleep(0.001)   # leave the shared CPUs some air
    why = fz.normal()
    if why:
        print("FAIL: the normal request at the end: %s" % why)
    dt = time.time() - t0
    kinds = {}
    for _, what in fz.violations:
        key = what.split(":")[0] if "UTF-8" not in what else "invalid UTF-8 in a reply string"
        key = key.split(" '")[0].split(' "')[0]
        kinds[key] = kinds.get(key, 0) + 1
    print("wire_fuzz: seed %d, %d cases in %.1f s, replies by code %s, %d dropped unread "
          "(frames over 4x the limit), %d violation(s)%s"
          % (a.seed, fz.cases, dt, {cname(c): n for c, n in sorted(fz.codes.items())},
             fz.noreply_ok, len(fz.violations),
             "" if not kinds else ": " + "; ".join("%d x %s" % (n, k) for k, n in
                                                    sorted(kinds.items(), key=lambda x: -x[1]))),
          flush=True)
    return 1 if fz.violations or why else 0


if __name__ == "__main__":
    sys.exit(main())
