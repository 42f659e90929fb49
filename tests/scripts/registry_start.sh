#!/usr/bin/env bash
# Start-up with models (issue 17, issue 21's start-up item): the daemon binds and answers
# health before its model is loaded (loading = true, ok = false, the model listed as
# loading); a task request meanwhile is answered OVERLOADED saying the models are loading
# (a client retries; nothing waits on a model that may never load); the log names the
# model, its size and weight type, and the time its load took. NLPD_TEST_LOAD_DELAY_MS
# makes the load slow. Then the configuration's refusals: a duplicate name, an entry
# without a path, an unknown weight type, an unknown task (each naming the entry); a
# model that does not load ends the start with exit 1 naming it.
. tests/scripts/daemon_lib.bash

fail() {
    echo "FAIL: $*" >&2
    show_log_on_failure
    exit 1
}

write_conf "
models = ( { name = \"flan\"; path = \"$MODEL\"; } );"
sed -i '/^model = /d' "$TMP/nlpd.conf"
NLPD_TEST_LOAD_DELAY_MS=1500 "$B/nlpd" -c "$TMP/nlpd.conf" > "$TMP/nlpd.log" 2>&1 &
DPID=$!
timeout 60 $PY tests/scripts/registry_wire.py loading "$IPC" || fail "health while loading"
grep -q "loading model flan ($MODEL, 8\.[0-9] MiB, weights auto): model 1 of 1" "$TMP/nlpd.log" ||
    fail "no 'loading model' line"
grep -q "model flan ready in [0-9.]* s: t5, weights [a-z0-9]*, [0-9.]* MiB resident" \
    "$TMP/nlpd.log" || fail "no ready time"
stop_daemon
[ "$DAEMON_RC" -eq 0 ] || fail "exit code $DAEMON_RC"

# configuration errors: exit 2, the entry named
bad() {   # bad NAME EXPECTED-SUBSTRING MODELS-LIST
    printf 'models = (\n%s\n);\nbind = [ "%s" ];\n' "$3" "$IPC" > "$TMP/bad.conf"
    "$B/nlpd" -c "$TMP/bad.conf" --check-config > /dev/null 2> "$TMP/err"; rc=$?
    [ $rc -eq 2 ] || fail "$1: exit $rc ($(cat "$TMP/err"))"
    grep -qF "$2" "$TMP/err" || fail "$1: message $(cat "$TMP/err"), want $2"
}
bad duplicate 'model "a": the name is given twice (models[0] and models[1])' \
    "{ name = \"a\"; path = \"$MODEL\"; }, { name = \"a\"; path = \"$MODEL\"; }"
bad "no path" 'bad.conf:2: models[0]: model "a": no path' '{ name = "a"; }'
bad weights 'models[0]: model "a": weights = "q4"' "{ name = \"a\"; path = \"$MODEL\"; weights = \"q4\"; }"
bad task "models[1] (\"b\"): unknown task 'summarise'" \
    "{ path = \"$MODEL\"; }, { name = \"b\"; path = \"$MODEL\"; tasks = [\"summarise\"]; }"
bad key "models[0]: unknown setting 'pth'" "{ name = \"a\"; pth = \"$MODEL\"; }"
printf 'model = "%s";\nmodels = ( { path = "%s"; } );\n' "$MODEL" "$MODEL" > "$TMP/bad.conf"
"$B/nlpd" -c "$TMP/bad.conf" --check-config > /dev/null 2> "$TMP/err" && fail "model and models both"
grep -q "both model and models are set" "$TMP/err" || fail "model+models: $(cat "$TMP/err")"
"$B/nlpd" -c "$TMP/nlpd.conf" --weights q4 --check-config > /dev/null 2> "$TMP/err" &&
    fail "--weights q4 accepted"
grep -q "not auto, f32, bf16, f16 or int8" "$TMP/err" || fail "--weights: $(cat "$TMP/err")"
# --model twice: two models named after their directories; a duplicate is refused
"$B/nlpd" -c "$TMP/nlpd.conf" --model "$MODEL" --model "$PWD/tests/data/models/tiny-t5" \
    --check-config > "$TMP/eff" || fail "--model twice"
grep -q '^models\[1\] = { name = "tiny-t5"' "$TMP/eff" || fail "--model twice: $(cat "$TMP/eff")"
"$B/nlpd" -c "$TMP/nlpd.conf" --model "$MODEL" --model "$MODEL/" --check-config 2> "$TMP/err" \
    > /dev/null && fail "--model twice the same name"
grep -q 'the name is given twice' "$TMP/err" || fail "--model duplicate: $(cat "$TMP/err")"

# a model that does not load: exit 1 naming it (after binding)
write_conf "
models = ( { name = \"flan\"; path = \"$MODEL\"; }, { name = \"gone\"; path = \"$TMP/none\"; } );"
sed -i '/^model = /d' "$TMP/nlpd.conf"
"$B/nlpd" -c "$TMP/nlpd.conf" > "$TMP/nlpd.log" 2>&1 &
DPID=$!
wait_daemon
[ "$DAEMON_RC" -eq 1 ] || fail "a model that does not load: exit $DAEMON_RC"
grep -q "cannot start: model gone: " "$TMP/nlpd.log" || fail "no reason naming the model"
echo "registry_start: ok"
