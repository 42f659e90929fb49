#!/usr/bin/env bash
# SIGHUP reloads the models (issue 17) while 8 clients send (half naming the model, half
# routed by task), with each load slowed (NLPD_TEST_LOAD_DELAY_MS) so requests arrive
# while it runs: a model added loads beside the others and serves when ready; a model
# removed stops taking requests, finishes what it holds and is freed; a changed path
# loads the new checkpoint first and swaps when ready; a config that does not parse, and
# one whose new model does not load, leave the running models serving and log why.
# Every request of every client is answered OK: none is lost or failed by a reload.
. tests/scripts/daemon_lib.bash

fail() {
    echo "FAIL: $*" >&2
    show_log_on_failure
    exit 1
}

timeout 60 $PY tests/scripts/families_dirs.py "$TMP/m" >/dev/null || fail "families_dirs.py"
mkdir -p "$TMP/flan2"   # the same checkpoint under another directory: a changed path
for f in config.json model.safetensors spiece.model; do ln -s "$MODEL/$f" "$TMP/flan2/$f"; done

conf() {   # conf MODELS-LIST: the test's config with that models list
    write_conf "models = ( $1 );"
    sed -i '/^model = /d' "$TMP/nlpd.conf"
}
# wait_for PYTHON-CONDITION-ON-h-AND-m: polls health from one Python (bounded, 30 s)
wait_for() {
    timeout 60 $PY tests/scripts/registry_wire.py wait "$IPC" "$1" 30 || fail "health: $1"
}
hup() {
    local n
    n=$(grep -c "SIGHUP" "$TMP/nlpd.log")
    kill -HUP "$DPID"
    for i in $(seq 1 100); do
        [ "$(grep -c "SIGHUP" "$TMP/nlpd.log")" -gt "$n" ] && return 0
        sleep 0.05
    done
    fail "SIGHUP not logged"
}

FLAN="{ name = \"flan\"; path = \"$MODEL\"; }"
FLAN2="{ name = \"flan\"; path = \"$TMP/flan2\"; }"
MG='{ name = "en-mg"; path = "m/opus-mt-en-mg"; }'
BART='{ name = "bart"; path = "m/bart"; }'
conf "$FLAN, $MG"
export NLPD_TEST_LOAD_DELAY_MS=300
start_daemon
unset NLPD_TEST_LOAD_DELAY_MS
$PY tests/scripts/registry_wire.py clients "$IPC" 8 "$TMP/stop" "$TMP/clients.json" &
CPID=$!
sleep 0.5

# add
conf "$FLAN, $MG, $BART"
hup
wait_for "m.get('bart', {}).get('state') == 'serving' and not h['loading']"
grep -q "SIGHUP: .*: 2 model(s) kept, 1 to load, 0 removed" "$TMP/nlpd.log" || fail "add: log"
echo "ok  bart added"

# remove
conf "$FLAN, $BART"
hup
wait_for "'en-mg' not in m and [x['name'] for x in h['models']] == ['flan', 'bart']"
grep -q "model en-mg is no longer in the config: takes no new requests" "$TMP/nlpd.log" ||
    fail "remove: log"
grep -q "model en-mg drained (.* documents served): freed" "$TMP/nlpd.log" || fail "not freed"
echo "ok  en-mg removed and freed"

# swap: a changed path loads first, then replaces the running one
conf "$FLAN2, $BART"
hup
wait_for "m['flan']['path'] == '$TMP/flan2' and m['flan']['state'] == 'serving' and len(h['models']) == 2"
grep -q "model flan ready in .* (swapped in)" "$TMP/nlpd.log" || fail "swap: log"
grep -q "model flan is replaced: takes no new requests" "$TMP/nlpd.log" || fail "swap: old"
echo "ok  flan swapped"

# a config that does not load: the models stay
printf 'models = ( { name = "x"; } );\n' > "$TMP/nlpd.conf"
hup
grep -q "SIGHUP: the config does not load, the models loaded keep serving: .*no path" \
    "$TMP/nlpd.log" || fail "broken config: log"
# a new model that does not load: the others stay
conf "$FLAN2, $BART, { name = \"gone\"; path = \"$TMP/none\"; }"
hup
for i in $(seq 1 100); do grep -q "model gone (.*) does not load; what was serving keeps serving" \
    "$TMP/nlpd.log" && break; sleep 0.1; done
grep -q "model gone (.*) does not load; what was serving keeps serving" "$TMP/nlpd.log" ||
    fail "a model that does not load: log"
sleep 0.3
wait_for "[x['name'] for x in h['models']] == ['flan', 'bart'] and h['ok']"
echo "ok  a broken config and a model that does not load leave the others serving"

touch "$TMP/stop"
wait "$CPID" || fail "clients"
$PY - "$TMP/clients.json" <<'PY' || fail "clients: $(cat "$TMP/clients.json")"
import json, sys
r = json.load(open(sys.argv[1]))
c, e = r["counts"], r["errors"]
assert not e and set(c) == {"OK"} and c["OK"] >= 40, r
print("ok  %d requests from 8 clients across the reloads, all OK" % c["OK"])
PY
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit code $DAEMON_RC"
echo "registry_reload: ok"
