#!/bin/bash
# Every task on every family end to end (issue 15 "Tasks", issue 18): nlpd on each tiny
# family checkpoint (tests/scripts/families_dirs.py pairs each with a small tokenizer of
# its kind), each case through nlpc --json and the Python client, equal to
# `nlprun TASK --json` on the same input (texts equal, scores within 1e-4 relative); each
# case again as the middle document of a 3-document request (batched with others, equal
# to nlprun alone); the refusals: UNSUPPORTED for qa/text2text on BART and summarize on
# BART-MNLI, INVALID_ARGUMENT naming the pair for a Marian request into another language,
# and naming how to list the languages for an unknown language of NLLB/mBART; health
# reports each model's family and tasks. The six daemons (one family each) run side by
# side, and one Python compares every family's cases.
set -euo pipefail
B=${NLP_BUILD:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nlpd-fam.XXXXXX)
FAMS="t5 bart bart-mnli opus-mt-en-mg nllb mbart"
declare -A PID=() EPS=()

cleanup() {
    local f p
    for f in "${!PID[@]}"; do
        p=${PID[$f]}
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in $FAMS; do
        [ -f "$T/nlpd.$f.log" ] && { echo "--- nlpd $f log (tail)" >&2; tail -20 "$T/nlpd.$f.log" >&2; }
    done
    exit 1
}

timeout 60 $PY tests/scripts/families_dirs.py "$T/m" || fail "families_dirs.py"
# six free loopback ports, one per family's daemon
read -r -a PORTS <<<"$($PY -c 'import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"

# start FAMILY PORT: its daemon, on its own loopback port (all six run side by side)
start() {
    EPS[$1]="tcp://127.0.0.1:$2"
    "$B/nlpd" -c conf/nlpd.conf --model "$T/m/$1" --bind "${EPS[$1]}" --log-level warn \
        >"$T/nlpd.$1.log" 2>&1 &
    PID[$1]=$!
}

# ready FAMILY: until its daemon answers health (bounded)
ready() {
    for _ in $(seq 150); do
        if "$B/nlpc" --connect "${EPS[$1]}" --timeout 200 health >/dev/null 2>&1; then return 0; fi
        kill -0 "${PID[$1]}" 2>/dev/null || fail "nlpd exited at start on $1"
    done
    fail "nlpd did not answer health on $1"
}

# One line per case: family<TAB>expected status<TAB>message substring<TAB>task args (as
# nlprun/nlpc take them; the text is the last field).
cat >"$T/cases" <<'EOF'
t5	OK	-	summarize --max-new-tokens 8	the cat sat on the mat. this is a good day.
t5	OK	-	classify --labels sports,politics,science	the game was a good game.
bart	OK	-	summarize --max-new-tokens 12	the cat sat on the mat. this is a good day.
bart	OK	-	summarize --max-new-tokens 12 --num-beams 2	a dog ran home.
bart	OK	-	classify --labels sports,politics	the game was a good game.
bart	UNSUPPORTED	qa: not supported	qa --question what	the cat sat on the mat.
bart	UNSUPPORTED	text2text: not supported	text2text	the cat sat on the mat.
bart-mnli	OK	-	classify --labels sports,politics,business,science	the game was a good game.
bart-mnli	OK	-	classify --labels sports,politics --multi-label	the news is science news.
bart-mnli	OK	-	classify --labels sports	the news is science news.
bart-mnli	UNSUPPORTED	summarize: not supported	summarize	the cat sat on the mat.
opus-mt-en-mg	OK	-	translate --to mg --max-new-tokens 10	the cat sat on the mat. this is a good day.
opus-mt-en-mg	OK	-	translate --from English --to Malagasy --max-new-tokens 10 --num-beams 2	a dog ran home.
opus-mt-en-mg	INVALID_ARGUMENT	translates en to mg only, not to 'de'	translate --to de	the cat sat on the mat.
opus-mt-en-mg	INVALID_ARGUMENT	translates en to mg only, not from 'fr'	translate --from fr --to mg	the cat sat on the mat.
opus-mt-en-mg	UNSUPPORTED	summarize: not supported	summarize	the cat sat on the mat.
nllb	OK	-	translate --to German --max-new-tokens 10	the cat sat on the mat. this is a good day.
nllb	OK	-	translate --from fr --to deu_Latn --max-new-tokens 10 --num-beams 3	a dog ran home.
nllb	INVALID_ARGUMENT	health reply lists them, as `languages`	translate --to Klingon	the cat sat on the mat.
nllb	UNSUPPORTED	qa: not supported	qa --question what	the cat sat on the mat.
mbart	OK	-	translate --to de --max-new-tokens 10	the cat sat on the mat. this is a good day.
mbart	OK	-	translate --from en_XX --to French --max-new-tokens 10	a dog ran home.
mbart	INVALID_ARGUMENT	unknown target language 'ja'	translate --to ja	the cat sat on the mat.
EOF

i=0
for fam in $FAMS; do start "$fam" "${PORTS[$i]}"; i=$((i + 1)); done
for fam in $FAMS; do ready "$fam"; done
for fam in $FAMS; do
    EP=${EPS[$fam]}
    n=0
    : >"$T/list.$fam"
    while IFS=$'\t' read -r f want msg args text; do
        [ "$f" = "$fam" ] || continue
        # shellcheck disable=SC2086
        printf '%s' "$text" | timeout 120 "$B/nlprun" $args --model "$T/m/$fam" --json \
            >"$T/run.$fam.$n" 2>"$T/run.$fam.$n.err" || true
        # shellcheck disable=SC2086
        timeout 120 "$B/nlpc" --connect "$EP" --json $args "$text" \
            >"$T/nlpc.$fam.$n" 2>"$T/nlpc.$fam.$n.err" || true
        printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$want" "$msg" "$args" "$text" >>"$T/list.$fam"
        n=$((n + 1))
    done <"$T/cases"
done
# shellcheck disable=SC2046
NLP_BUILD=$B timeout 300 $PY - "$T" $(for f in $FAMS; do echo "$f=${EPS[$f]}"; done) \
    <<'PYEOF' || fail "results differ"
import json, shlex, sys
sys.path.insert(0, "clients/python")
import nlpclient
T = sys.argv[1]
bad = 0

def close(a, b):
    return abs(a - b) <= 1e-4 * (1 + abs(b))

def differ(task, ref, got):
    if got.get("status", "OK") != "OK":
        return "status %s: %s" % (got.get("status"), got.get("error"))
    if task in ("summarize", "translate", "text2text") and got["text"] != ref["text"]:
        return "text %r != %r" % (got["text"], ref["text"])
    if task == "classify":
        gl = [(l["label"], l["score"]) for l in got["labels"]]
        rl = [(l["label"], l["score"]) for l in ref["labels"]]
        if [l for l, _ in gl] != [l for l, _ in rl] or \
                not all(close(a, b) for (_, a), (_, b) in zip(gl, rl)):
            return "labels %r != %r" % (gl, rl)
    elif not close(got["score"], ref["score"]):
        return "score %r != %r" % (got["score"], ref["score"])
    return None

def kwargs(argv):
    task, kw, i = argv[0], {}, 1
    names = {"--to": "to", "--from": "from_", "--question": "question",
             "--max-new-tokens": "max_new_tokens", "--num-beams": "num_beams"}
    while i < len(argv):
        a = argv[i]
        if a == "--labels":
            kw["labels"] = argv[i + 1].split(","); i += 2
        elif a == "--multi-label":
            kw["multi_label"] = True; i += 1
        else:
            v = argv[i + 1]
            kw[names[a]] = int(v) if names[a] in ("max_new_tokens", "num_beams") else v
            i += 2
    return task, kw

def family(fam, ep):
    global bad
    with nlpclient.Client(ep, timeout_ms=120000) as c:
        h = c.call_raw(c.build("health")).health
        print("%s: health model_type=%s tasks=%s languages=%s" %
              (fam, h.model_type, ",".join(h.tasks), ",".join(h.languages)))
        want_type = {"t5": "t5", "bart": "bart", "bart-mnli": "bart", "opus-mt-en-mg": "marian",
                     "nllb": "m2m_100", "mbart": "mbart"}[fam]
        if h.model_type != want_type:
            bad += 1; print("%s: health model_type %r, not %r" % (fam, h.model_type, want_type))
        for line in open("%s/list.%s" % (T, fam)):
            n, want, msg, args, text = line.rstrip("\n").split("\t")
            argv = shlex.split(args)
            task, kw = kwargs(argv)
            ref = json.load(open("%s/run.%s.%s" % (T, fam, n)))
            got = json.load(open("%s/nlpc.%s.%s" % (T, fam, n)))
            where = "%s case %s (%s)" % (fam, n, args)
            if task not in h.tasks and want == "OK":
                bad += 1; print("%s: health does not list %s" % (where, task))
            if want != "OK":
                # nlprun names the status; the daemon's document status is the same code
                r = c.call_raw(c.build(task, [text], **kw))
                res = nlpclient.response_dict(task, r)
                st, err = res.get("status"), res.get("error", "")
                if ref["status"] != want or st != want or msg not in err or \
                        msg not in ref.get("error", ""):
                    bad += 1
                    print("%s: want %s ~%r; nlprun %s %r, daemon %s %r" %
                          (where, want, msg, ref["status"], ref.get("error"), st, err))
                else:
                    print("%s: nlprun and daemon %s: %s" % (where, st, err))
                continue
            if ref["status"] != "OK":
                bad += 1; print("%s: nlprun %s %s" % (where, ref["status"], ref.get("error"))); continue
            why = differ(task, ref, got)
            if why:
                bad += 1; print("%s nlpc: %s" % (where, why))
            py = getattr(c, task)(text, **{k: v for k, v in kw.items()}) \
                if task != "translate" else c.translate(text, **kw)
            why = differ(task, ref, py)
            if why:
                bad += 1; print("%s python: %s" % (where, why))
            # Batched: the case between two other documents of one request.
            r = c.call_raw(c.build(task, ["a good day.", text, "the dog sat on a mat."], **kw))
            docs = nlpclient.response_dict(task, r).get("results", [])
            why = differ(task, ref, docs[1]) if len(docs) == 3 else "no 3 results"
            if why:
                bad += 1; print("%s batched: %s" % (where, why))
            else:
                print("%s: nlprun = nlpc = python = batched: %s" %
                      (where, ref["text"] if "text" in ref else ref["answer"] if "answer" in ref
                       else [(l["label"], round(l["score"], 6)) for l in ref["labels"]]))

for a in sys.argv[2:]:
    family(*a.split("=", 1))
sys.exit(1 if bad else 0)
PYEOF
echo "families_e2e: every family's cases equal nlprun"
