#!/bin/bash
# nlprun tokenize / detokenize on an NLLB tokenizer directory (issue 18) against
# spm-bpe.golden.json: --src-lang (default, a code, an English name), --target --tgt-lang,
# the legacy order from a tokenizer config with legacy_behaviour true, detokenize dropping
# the language codes, and the usage errors.
set -u
B=${NLP_BUILD:-build}
NLPRUN=$B/nlprun
PY=/usr/bin/python3
T=tests/data/families/tokenizers
D=$T/nllb-bpe
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One line per field: the texts (one a line), then each field's expected lines. Cases
# whose text holds a line break or NUL cannot be one stdin line; texts whose decoding
# the cleanup would change are left to the unit tests.
$PY - "$T/spm-bpe.golden.json" "$tmp" <<'PYEOF' || exit 1
import json, sys
g = json.load(open(sys.argv[1], encoding="utf-8"))
out = sys.argv[2]
cases = [c for c in g["cases"]
         if not any(ch in c["text"] for ch in "\n\r\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
         and not any(p in c["nllb_decoded"] for p in (" .", " ?", " !", " ,", " '", " n't"))]
pick = cases[:20] + [c for c in cases if c["kind"] == "edge"]
def w(name, rows):
    with open(out + "/" + name, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(r + "\n")
w("text", [c["text"] for c in pick])
for k in ("nllb_ids", "nllb_target_ids", "nllb_legacy_ids", "nllb_legacy_target_ids"):
    w(k, [" ".join(map(str, c[k])) for c in pick])
w("nllb_decoded", [c["nllb_decoded"] for c in pick])
print(len(pick), "cases", file=sys.stderr)
PYEOF

check() {  # name expected-file args...
    local name=$1 want=$2
    shift 2
    if ! "$NLPRUN" tokenize --tokenizer "$@" <"$tmp/text" >"$tmp/got"; then
        bad "$name: exit status"
        return
    fi
    cmp -s "$tmp/got" "$tmp/$want" || bad "$name: $(diff "$tmp/got" "$tmp/$want" | head -4)"
}

check "default source (eng_Latn)" nllb_ids "$D"
check "--src-lang eng_Latn" nllb_ids "$D" --src-lang eng_Latn
check "--src-lang=English" nllb_ids "$D" --src-lang=English
check "--target --tgt-lang fra_Latn" nllb_target_ids "$D" --target --tgt-lang fra_Latn
check "--target --tgt-lang fr" nllb_target_ids "$D" --tgt-lang fr --target

# legacy_behaviour: pieces </s> [lang]
mkdir "$tmp/legacy"
cp "$D/sentencepiece.bpe.model" "$D/special_tokens_map.json" "$tmp/legacy/"
printf '{"tokenizer_class": "NllbTokenizer", "legacy_behaviour": true}\n' \
    >"$tmp/legacy/tokenizer_config.json"
check "legacy --src-lang eng_Latn" nllb_legacy_ids "$tmp/legacy" --src-lang eng_Latn
check "legacy default" nllb_legacy_ids "$tmp/legacy"
check "legacy --target" nllb_legacy_target_ids "$tmp/legacy" --target --tgt-lang French

# detokenize drops the codes, for every layout
for f in nllb_ids nllb_target_ids nllb_legacy_ids; do
    "$NLPRUN" detokenize --tokenizer "$D" <"$tmp/$f" >"$tmp/dec" || bad "detokenize $f: exit"
    cmp -s "$tmp/dec" "$tmp/nllb_decoded" ||
        bad "detokenize $f: $(diff "$tmp/dec" "$tmp/nllb_decoded" | head -4)"
done

# errors: an unknown language, --tgt-lang without --target, a model without languages
err=$(echo hi | "$NLPRUN" tokenize --tokenizer "$D" --src-lang Klingon 2>&1 >/dev/null)
[ $? = 2 ] || bad "unknown language: exit status"
[[ $err == *"Klingon"*"202 codes"* ]] || bad "unknown language message: $err"
echo hi | "$NLPRUN" tokenize --tokenizer "$D" --tgt-lang fra_Latn >/dev/null 2>&1
[ $? = 2 ] || bad "--tgt-lang without --target: exit status"
err=$(echo hi | "$NLPRUN" tokenize --tokenizer "$D" --target 2>&1 >/dev/null)
[ $? = 2 ] && [[ $err == *"--tgt-lang"* ]] || bad "--target without a target language: $err"
echo hi | "$NLPRUN" tokenize --tokenizer "$D" --src-lang >/dev/null 2>&1
[ $? = 2 ] || bad "--src-lang without a value: exit status"
err=$(echo hi | "$NLPRUN" tokenize --tokenizer tests/data/t5/spiece.model --src-lang de 2>&1)
[ $? = 2 ] && [[ $err == *"no language codes"* ]] || bad "T5 --src-lang: $err"
"$NLPRUN" tokenize --help | grep -q -- "--src-lang" || bad "usage lacks --src-lang"

[ $fail = 0 ] && echo "tok_nllb_nlprun: ok"
exit $fail
