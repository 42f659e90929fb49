#!/bin/bash
# nlprun tokenize / detokenize on model directories of the BART and Marian tokenizers
# (issue 15's command contract): one line of ids per input line with the special ids as
# transformers adds them, --target for Marian's target side, detokenize's text as
# decode(ids, skip_special_tokens=True) with and without --no-cleanup, all against the
# golden cases that fit on one line (tests/data/families/tokenizers/*.golden.json);
# then a few fixed lines and the error exits.
set -u
B=${NLP_BUILD:-build}
NLPRUN=$B/nlprun
PY=/usr/bin/python3
D=tests/data/families/tokenizers
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The one-line golden cases of both tokenizers, each field in its own file (one Python):
# $work/NAME.FIELD, one case a line (ids space-separated).
$PY - "$D" "$work" bart-bpe marian-en-mg <<'PYEOF' || bad "golden files"
import json, sys
D, work = sys.argv[1], sys.argv[2]
for name in sys.argv[3:]:
    d = json.load(open("%s/%s.golden.json" % (D, name)))
    cases = [c for c in d["cases"]
             if not any(ch in c["text"] + c["decoded"] + c["decoded_no_cleanup"] for ch in "\n\r\0")]
    for field in ("text", "ids", "target_ids", "decoded", "decoded_no_cleanup"):
        if field not in cases[0]:
            continue
        with open("%s/%s.%s" % (work, name, field), "w") as f:
            for c in cases:
                v = c[field]
                f.write((" ".join(map(str, v)) if isinstance(v, list) else v) + "\n")
PYEOF
# golden NAME FIELD: the one-line cases' FIELD, one per line
golden() { cat "$work/$1.$2"; }

check() {  # what, got-file, want-file
    if ! cmp -s "$2" "$3"; then
        bad "$1: $(diff "$2" "$3" | head -4 | tr '\n' ' ')"
    else
        echo "ok: $1 ($(wc -l <"$3") lines)"
    fi
}

for spec in "bart-bpe:" "marian-en-mg:" "marian-en-mg:--target"; do
    name=${spec%%:*} opt=${spec#*:}
    golden "$name" text >"$work/text"
    field=ids
    [ "$opt" = --target ] && field=target_ids
    golden "$name" $field >"$work/want"
    # shellcheck disable=SC2086
    "$NLPRUN" tokenize --tokenizer "$D/$name" $opt <"$work/text" >"$work/got" ||
        bad "$name tokenize $opt: exit status"
    check "$name tokenize $opt" "$work/got" "$work/want"

    [ "$opt" = --target ] && continue
    golden "$name" ids >"$work/ids"
    golden "$name" decoded >"$work/want"
    "$NLPRUN" detokenize --tokenizer "$D/$name" <"$work/ids" >"$work/got" ||
        bad "$name detokenize: exit status"
    check "$name detokenize" "$work/got" "$work/want"
    golden "$name" decoded_no_cleanup >"$work/want"
    "$NLPRUN" detokenize --tokenizer "$D/$name" --no-cleanup <"$work/ids" >"$work/got" ||
        bad "$name detokenize --no-cleanup: exit status"
    check "$name detokenize --no-cleanup" "$work/got" "$work/want"
done

# Fixed lines: BART's specials and <mask>; Marian's language code and target side.
out=$(printf 'Hello world\nHello <mask> world\n\n' | "$NLPRUN" tokenize --tokenizer "$D/bart-bpe")
[ "$out" = $'0 31414 232 2\n0 31414 50264 232 2\n0 2' ] || bad "bart fixed lines: $out"
out=$(printf '>>fra<< Hello world\n' | "$NLPRUN" tokenize --tokenizer "$D/marian-en-mg")
[ "$out" = "1 34291 245 0" ] || bad "marian code: $out"
out=$(printf 'Hello world\n' | "$NLPRUN" tokenize --tokenizer "$D/marian-en-mg" --target)
[ "$out" = "448 17531 28 13946 0" ] || bad "marian --target: $out"
out=$(printf '0 31414 2156 232 2\n' | "$NLPRUN" detokenize --tokenizer "$D/bart-bpe")
[ "$out" = "Hello, world" ] || bad "bart clean-up: $out"
out=$(printf '0 31414 2156 232 2\n' | "$NLPRUN" detokenize --tokenizer "$D/bart-bpe" --no-cleanup)
[ "$out" = "Hello , world" ] || bad "bart --no-cleanup: $out"

# Errors: an id outside the vocabulary (exit 1, the line kept empty), a damaged file
# named, options in the wrong command (exit 2).
printf '0 50265 2\n0 31414 2\n' | "$NLPRUN" detokenize --tokenizer "$D/bart-bpe" \
    >"$work/got" 2>"$work/err"
rc=$?
[ $rc -eq 1 ] && [ "$(cat "$work/got")" = $'\nHello' ] || bad "bad id: rc $rc, $(cat "$work/got")"
grep -q "line 1" "$work/err" || bad "bad id message: $(cat "$work/err")"
mkdir "$work/bad"
cp "$D/bart-bpe/vocab.json" "$work/bad/"
printf '#version: 0.2\n\xc4\xa0 t\nnot a merge line\n' >"$work/bad/merges.txt"
"$NLPRUN" tokenize --tokenizer "$work/bad" </dev/null 2>"$work/err"
rc=$?
[ $rc -eq 1 ] || bad "bad merges: exit $rc"
grep -q "merges.txt: line 3" "$work/err" || bad "bad merges message: $(cat "$work/err")"
"$NLPRUN" tokenize --tokenizer "$D/bart-bpe" --no-cleanup </dev/null 2>/dev/null
[ $? -eq 2 ] || bad "tokenize --no-cleanup is not an option"
"$NLPRUN" detokenize --tokenizer "$D/bart-bpe" --target </dev/null 2>/dev/null
[ $? -eq 2 ] || bad "detokenize --target is not an option"

exit $fail
