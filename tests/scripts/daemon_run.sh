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

# 1. Placeholders: no download attempted, tiny model, loud warning. (Never the real
#    network: every case below points FLAN_URL at a local mirror or a dead port.)
printf '%064d  config.json\n' 0 > "$TMP/zeros"
out=$(NLP_MODEL_DIR="$TMP/model" FLAN_SUMS="$TMP/zeros" FLAN_URL="http://127.0.0.1:9/none" \
      timeout 30 sh scripts/run.sh "$TMP/bin" 2>&1)
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
# 5. The shipped modes: `lfs` (sha256 + size from the commit's LFS pointer) and
#    `json:FILE` (config equal as JSON to our copy), against a local mirror.
rm -rf "$TMP/model"
mkdir -p "$TMP/raw"
sum=$(sha256sum "$TMP/mirror/model.safetensors" | awk '{ print $1 }')
size=$(wc -c < "$TMP/mirror/model.safetensors" | tr -d ' ')
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %s\n' "$sum" "$size" \
    > "$TMP/raw/model.safetensors"
/usr/bin/python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), indent=4, sort_keys=True)' \
    "$TMP/mirror/config.json" "$TMP/config-reformatted.json"
{ echo "json:$TMP/config-reformatted.json  config.json"; echo "lfs  model.safetensors";
  (cd "$TMP/mirror" && sha256sum spiece.model); } > "$TMP/sums2"
out=$(NLP_MODEL_DIR="$TMP/model" FLAN_REVISION=0123abcd FLAN_SUMS="$TMP/sums2" \
      FLAN_URL="file://$TMP/mirror" FLAN_RAW_URL="file://$TMP/raw" timeout 60 sh scripts/run.sh "$TMP/bin" 2>&1)
echo "$out" | grep -q "STUB-NLPD -c conf/nlpd.conf --model $TMP/model" || fail "lfs/json download not used: $out"

# 6. The LFS pointer disagrees (size): deleted, fallback.
rm -rf "$TMP/model"
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %s\n' "$sum" 12 \
    > "$TMP/raw/model.safetensors"
out=$(NLP_MODEL_DIR="$TMP/model" FLAN_REVISION=0123abcd FLAN_SUMS="$TMP/sums2" \
      FLAN_URL="file://$TMP/mirror" FLAN_RAW_URL="file://$TMP/raw" timeout 60 sh scripts/run.sh "$TMP/bin" 2>&1)
echo "$out" | grep -q "size mismatch for model.safetensors" || fail "lfs size mismatch not caught: $out"
echo "$out" | grep -q "\-\-model tests/data/models/tiny-flan" || fail "lfs mismatch did not fall back"
echo "daemon_run: ok"
