#!/usr/bin/env bash
# The model registry (issue 17): one daemon serving tiny-flan (T5), a Marian en-mg pair,
# a BART configured for summarize only, and tiny-flan again under another name (its
# checkpoint shared, not loaded twice). Health lists each model (family, weights, tasks,
# languages, memory, documents served, state); requests are routed by name, by task (the
# first model configured for it) and by language pair (mg: the Marian pair; de: T5), each
# result equal to nlprun on that model; an unknown name is UNKNOWN_MODEL naming the
# loaded models, a pair no model serves INVALID_ARGUMENT naming them; a flood on one
# model does not keep another's request waiting; HTTP GET /v1/models lists the models.
. tests/scripts/daemon_lib.bash

fail() {
    echo "FAIL: $*" >&2
    show_log_on_failure
    exit 1
}

timeout 60 $PY tests/scripts/families_dirs.py "$TMP/m" >/dev/null || fail "families_dirs.py"
HPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
write_conf "
models = (
  { name = \"flan\"; path = \"$MODEL\"; },
  { name = \"en-mg\"; path = \"m/opus-mt-en-mg\"; weights = \"auto\"; },
  { name = \"bart\"; path = \"m/bart\"; tasks = [\"summarize\"]; },
  { name = \"flan-again\"; path = \"$MODEL/\"; weights = \"auto\"; }
);
http = { bind = \"127.0.0.1:$HPORT\"; };"
# the single `model` key of write_conf and models together are refused: drop `model`
sed -i '/^model = /d' "$TMP/nlpd.conf"

# --check-config: every entry (relative paths beside the config) and its expected memory
out=$("$B/nlpd" -c "$TMP/nlpd.conf" --check-config) || fail "--check-config: $out"
echo "$out" | grep -q "^models\[1\] = { name = \"en-mg\"; path = \"$TMP/m/opus-mt-en-mg\"" ||
    fail "relative model path not beside the config: $out"
echo "$out" | grep -q "^model flan: .*expected resident 8\.[0-9] MiB" ||
    fail "no expected memory for flan: $out"
echo "$out" | grep -q "^models: 4, expected resident" || fail "no total: $out"

start_daemon
grep -q "loading model en-mg ($TMP/m/opus-mt-en-mg, .* MiB, weights auto): model 2 of 4" "$TMP/nlpd.log" ||
    fail "no 'loading model' line with size and weights"
grep -q "model flan-again: the checkpoint of .* is loaded already (weights auto): shared" \
    "$TMP/nlpd.log" || fail "the same checkpoint was loaded twice"
grep -q "ready: model $MODEL (4 model(s): flan, en-mg, bart, flan-again)" "$TMP/nlpd.log" ||
    fail "ready line"

timeout 120 $PY tests/scripts/registry_wire.py route "$IPC" "$B/nlprun" "$MODEL" \
    "$TMP/m/opus-mt-en-mg" "$TMP/m/bart" || fail "routing"
timeout 120 $PY tests/scripts/registry_wire.py flood "$IPC" || fail "flood"

# HTTP: GET /v1/models lists them; a JSON "model" key routes; an unknown one is 404
j=$(curl -s -m 10 "http://127.0.0.1:$HPORT/v1/models") || fail "GET /v1/models"
echo "$j" | $PY -c 'import json, sys
j = json.load(sys.stdin)
names = [m["name"] for m in j["models"]]
assert names == ["flan", "en-mg", "bart", "flan-again"], names
m = {x["name"]: x for x in j["models"]}
assert m["en-mg"]["family"] == "marian" and m["en-mg"]["state"] == "serving", m["en-mg"]
assert [l["code"] for l in m["en-mg"]["languages"]] == ["en", "mg"], m["en-mg"]
assert m["bart"]["tasks"] == ["summarize"] and m["flan"]["requests"] >= 2, j
assert j["loading"] is False' || fail "/v1/models: $j"
code=$(curl -s -o "$TMP/h.json" -w '%{http_code}' -m 30 -H 'Content-Type: application/json' \
    -d '{"text": "a dog ran home.", "model": "nope"}' "http://127.0.0.1:$HPORT/v1/summarize")
[ "$code" = 404 ] || fail "HTTP unknown model: $code $(cat "$TMP/h.json")"
grep -q '"status":"UNKNOWN_MODEL"' "$TMP/h.json" || fail "HTTP unknown model: $(cat "$TMP/h.json")"
j=$(curl -s -m 60 -H 'Content-Type: application/json' \
    -d '{"text": "a dog ran home.", "model": "bart", "max_new_tokens": 4}' \
    "http://127.0.0.1:$HPORT/v1/summarize") || fail "HTTP by name"
echo "$j" | grep -q '"status":"OK"' || fail "HTTP by name: $j"

stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit code $DAEMON_RC"
echo "registry_route: ok"
