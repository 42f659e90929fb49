#!/usr/bin/env bash
# scripts/run.sh (make run): with no model and no pinned download it starts on the tiny
# model with a loud warning; a download whose checksum does not match is deleted and
# falls back; a verified download is used. "Downloads" come from a local file:// mirror;
# nlpd is replaced by a stub that prints its arguments. Bounded in time.
set -u
TMP=$(mktemp -d /tmp/nlpd-run.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin" "$TMP/mirror"
printf '#!/bin/sh\necho "STUB-NLPD $*"\n' > "$TMP/bin/nlpd"
chmod +x "$TMP/bin/nlpd"
cp tests/data/models/tiny-flan/* "$TMP/mirror/"
fail() { echo "daemon_run: $*"; exit 1; }

# 1. Placeholders: no download attempted, tiny model, loud warning.
out=$(NLP_MODEL_DIR="$TMP/model" timeout 30 sh scripts/run.sh "$TMP/bin" 2>&1)
echo "$out" | grep -q "STUB-NLPD -c conf/nlpd.conf --model tests/data/models/tiny-flan" ||
    fail "placeholder case did not fall back: $out"
echo "$out" | grep -q "MEANINGLESS" || fail "no loud warning: $out"
[ ! -e "$TMP/model" ] || fail "placeholder case created the model dir"

# 2. Pinned, one checksum wrong: that file is deleted, fallback.
(cd "$TMP/mirror" && sha256sum config.json spiece.model) > "$TMP/sums"
echo "$(printf '1%.0s' $(seq 64))  model.safetensors" >> "$TMP/sums"
out=$(NLP_MODEL_DIR="$TMP/model" FLAN_REVISION=0123abcd FLAN_SUMS="$TMP/sums" \
      FLAN_URL="file://$TMP/mirror" timeout 60 sh scripts/run.sh "$TMP/bin" 2>&1)
echo "$out" | grep -q "checksum mismatch for model.safetensors" || fail "mismatch not caught: $out"
echo "$out" | grep -q "\-\-model tests/data/models/tiny-flan" || fail "mismatch did not fall back: $out"
[ ! -e "$TMP/model/model.safetensors" ] && [ ! -e "$TMP/model/model.safetensors.part" ] ||
    fail "the mismatching file was kept"

# 3. Pinned and matching: downloaded, verified, used.
(cd "$TMP/mirror" && sha256sum config.json model.safetensors spiece.model) > "$TMP/sums"
out=$(NLP_MODEL_DIR="$TMP/model" FLAN_REVISION=0123abcd FLAN_SUMS="$TMP/sums" \
      FLAN_URL="file://$TMP/mirror" timeout 60 sh scripts/run.sh "$TMP/bin" 2>&1)
echo "$out" | grep -q "STUB-NLPD -c conf/nlpd.conf --model $TMP/model" || fail "verified download not used: $out"
cmp -s "$TMP/model/model.safetensors" "$TMP/mirror/model.safetensors" || fail "download differs"

# 4. Unreachable mirror: quick fallback, no hang.
rm -rf "$TMP/model"
start=$(date +%s)
out=$(NLP_MODEL_DIR="$TMP/model" FLAN_REVISION=0123abcd FLAN_SUMS="$TMP/sums" \
      FLAN_URL="http://127.0.0.1:9/none" timeout 60 sh scripts/run.sh "$TMP/bin" 2>&1)
echo "$out" | grep -q "not reachable" || fail "unreachable not reported: $out"
echo "$out" | grep -q "\-\-model tests/data/models/tiny-flan" || fail "unreachable did not fall back"
[ $(( $(date +%s) - start )) -lt 20 ] || fail "fallback took too long"
echo "daemon_run: ok"
