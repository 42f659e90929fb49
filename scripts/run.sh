#!/bin/sh
# make run: start nlpd on conf/nlpd.conf with a real model when there is one.
#
# 1. models/flan-t5-small present (config.json, model.safetensors, spiece.model): use it.
# 2. Else, when huggingface.co answers within a few seconds, download
#    google/flan-t5-small at the pinned commit FLAN_REVISION and verify each file as
#    scripts/flan-t5-small.sha256 says: a literal sha256, `lfs` (the sha256 and size in
#    the Git LFS pointer of that commit, read from FLAN_RAW_URL: content-addressed by the
#    pinned commit), or `json:FILE` (equal as JSON to a copy we ship). A mismatch deletes
#    the file.
# 3. Else start on the bundled tiny test model, with a loud warning: it has random
#    weights and its output is meaningless, but the daemon, the protocol and the clients
#    all work against it.
# Never hangs: every network step has a time limit. Then execs build/nlpd.
# Environment (tests): NLP_MODEL_DIR, FLAN_REVISION, FLAN_SUMS, FLAN_URL, FLAN_RAW_URL,
# NLPD_CONF.
set -u
B=${1:-build}
NLPD=$B/nlpd
CONF=${NLPD_CONF:-conf/nlpd.conf}
MODEL=${NLP_MODEL_DIR:-models/flan-t5-small}
FALLBACK=tests/data/models/tiny-flan
SUMS=${FLAN_SUMS:-scripts/flan-t5-small.sha256}
FILES="config.json model.safetensors spiece.model"

# The Hugging Face commit of google/flan-t5-small the checksums belong to.
FLAN_REVISION=${FLAN_REVISION:-e48659520aaf0069046c3413e9835d214fefa83c}
HF_URL=${FLAN_URL:-https://huggingface.co/google/flan-t5-small/resolve/$FLAN_REVISION}
RAW_URL=${FLAN_RAW_URL:-https://huggingface.co/google/flan-t5-small/raw/$FLAN_REVISION}

have_model() {
    for f in $FILES; do [ -s "$1/$f" ] || return 1; done
    return 0
}

pinned() {
    case $FLAN_REVISION in *PLACEHOLDER*) return 1 ;; esac
    grep -v '^#' "$SUMS" | grep -q '^0\{64\} ' && return 1
    return 0
}

expected_sum() {
    grep -v '^#' "$SUMS" | awk -v f="$1" '$2 == f { print $1 }'
}

# verify NAME FILE: 0 when FILE is what $SUMS pins for NAME.
verify() {
    want=$(expected_sum "$1")
    got=$(sha256sum "$2" | awk '{ print $1 }')
    case $want in
    lfs)
        ptr=$(curl -fsS --connect-timeout 5 --max-time 30 "$RAW_URL/$1" 2>/dev/null) || {
            echo "run: cannot read the LFS pointer of $1 at $FLAN_REVISION"; return 1; }
        want=$(echo "$ptr" | awk '$1 == "oid" { sub("sha256:", "", $2); print $2 }')
        size=$(echo "$ptr" | awk '$1 == "size" { print $2 }')
        if [ "$size" != "$(wc -c < "$2" | tr -d ' ')" ]; then
            echo "run: size mismatch for $1 (pointer says ${size:-nothing}): deleted"
            return 1
        fi ;;
    json:*)
        ref=${want#json:}
        if /usr/bin/python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
            "$ref" "$2" 2>/dev/null; then
            return 0
        fi
        echo "run: $1 differs from $ref: deleted"
        return 1 ;;
    esac
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
        echo "run: checksum mismatch for $1 (want ${want:-none}, got $got): deleted"
        return 1
    fi
    return 0
}

download() {
    command -v curl >/dev/null 2>&1 || { echo "run: curl is not installed"; return 1; }
    command -v sha256sum >/dev/null 2>&1 || { echo "run: sha256sum is not installed"; return 1; }
    if ! curl -fsS -o /dev/null -r 0-0 --connect-timeout 3 --max-time 6 "$HF_URL/config.json" 2>/dev/null; then
        echo "run: $HF_URL is not reachable (no network?)"
        return 1
    fi
    mkdir -p "$MODEL"
    for f in $FILES; do
        echo "run: downloading $f of google/flan-t5-small@$FLAN_REVISION"
        if ! curl -fL --connect-timeout 5 --max-time 900 --retry 2 -o "$MODEL/$f.part" "$HF_URL/$f"; then
            echo "run: download of $f failed"
            rm -f "$MODEL/$f.part"
            return 1
        fi
        if ! verify "$f" "$MODEL/$f.part"; then
            rm -f "$MODEL/$f.part"
            return 1
        fi
        mv "$MODEL/$f.part" "$MODEL/$f"
    done
    return 0
}

if [ ! -x "$NLPD" ]; then
    echo "run: $NLPD is missing: run make first" >&2
    exit 1
fi

dir=$MODEL
if ! have_model "$MODEL"; then
    if ! pinned; then
        echo "run: no $MODEL, and the download is not pinned (FLAN_REVISION / $SUMS hold placeholders)"
    elif download; then
        echo "run: $MODEL downloaded and verified"
    fi
    if ! have_model "$MODEL"; then
        dir=$FALLBACK
        cat >&2 <<WARN

##########################################################################
# WARNING: models/flan-t5-small is not available.
# nlpd is starting on the bundled TINY TEST MODEL:
#     $FALLBACK
# Its weights are RANDOM: every summary, translation, label and answer it
# returns is MEANINGLESS. The daemon, the protocol and the clients work.
# For real output put google/flan-t5-small (config.json, model.safetensors,
# spiece.model) in $MODEL/.
##########################################################################

WARN
    fi
fi
echo "run: exec $NLPD -c $CONF --model $dir"
exec "$NLPD" -c "$CONF" --model "$dir"
