#!/usr/bin/env python3
"""Regenerates the language table of engine/langs.c (between its GENERATED markers).

Inputs, both offline:
  - the NLLB-200 language codes in order: additional_special_tokens of
    tests/data/families/tokenizers/nllb-bpe/special_tokens_map.json (NLLB's own file);
  - Debian's iso-codes (apt-get install iso-codes): /usr/share/iso-codes/json/iso_639-3.json
    for ISO 639-1 codes, 639-2/B (bibliographic) codes and English names.

Every alias (a 639-1, 639-2/B or 639-3 code, or an English name) maps to the ISO 639-3
code of one NLLB language. Macrolanguages map to the individual language NLLB carries
(MACRO below: 'ar'/'ara'/'Arabic' -> arb, 'fa' -> pes, ...), by hand, since iso-codes
does not list macrolanguage members. Names are matched ignoring ASCII case.

Usage: scripts/gen_langs.py [engine/langs.c]   (rewrites the file in place)
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NLLB = os.path.join(ROOT, "tests/data/families/tokenizers/nllb-bpe/special_tokens_map.json")
ISO = "/usr/share/iso-codes/json/iso_639-3.json"

# Macrolanguage (or retired/alternative) 639-3 code -> the individual language in NLLB.
MACRO = {
    "ara": "arb", "fas": "pes", "msa": "zsm", "swa": "swh", "nep": "npi", "nor": "nob",
    "lav": "lvs", "uzb": "uzn", "orm": "gaz", "sqi": "als", "aze": "azj", "mon": "khk",
    "kur": "kmr", "mlg": "plt", "que": "quy", "yid": "ydd", "pus": "pbt", "ori": "ory",
    "kau": "knc", "din": "dik", "ful": "fuv", "tmh": "taq", "fil": "tgl", "ekk": "est",
}
# Names people use that iso-codes spells otherwise.
EXTRA_NAMES = {
    "Pashto": "pbt", "Farsi": "pes", "Persian": "pes", "Filipino": "tgl", "Punjabi": "pan",
    "Kyrgyz": "kir", "Uyghur": "uig", "Sinhalese": "sin", "Haitian Creole": "hat",
    "Gaelic": "gla", "Greek": "ell", "Slovene": "slv", "Castilian": "spa", "Flemish": "nld",
    "Cantonese": "yue", "Norwegian": "nob", "Bokmal": "nob", "Nynorsk": "nno",
    "Chinese": "zho", "Mandarin": "zho", "Malay": "zsm", "Swahili": "swh", "Nepali": "npi",
    "Latvian": "lvs", "Uzbek": "uzn", "Oromo": "gaz", "Albanian": "als", "Azerbaijani": "azj",
    "Azeri": "azj", "Mongolian": "khk", "Kurdish": "kmr", "Malagasy": "plt", "Quechua": "quy",
    "Yiddish": "ydd", "Oriya": "ory", "Kanuri": "knc", "Dinka": "dik", "Fula": "fuv",
    "Fulani": "fuv", "Arabic": "arb", "Sotho": "sot", "Sepedi": "nso", "Northern Sotho": "nso",
    "Chichewa": "nya", "Myanmar": "mya", "Tamazight": "tzm",
}
# Obsolete 639-1 codes still seen.
EXTRA_CODES = {"iw": "heb", "in": "ind", "ji": "ydd", "mo": "ron"}


def lower_ascii(s):
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "engine/langs.c")
    codes = json.load(open(NLLB, encoding="utf-8"))["additional_special_tokens"]
    iso = json.load(open(ISO, encoding="utf-8"))["639-3"]
    by3 = {e["alpha_3"]: e for e in iso}
    nllb3 = []
    for c in codes:
        if c[:3] not in nllb3:
            nllb3.append(c[:3])
    missing = [c for c in nllb3 if c not in by3]
    if missing:
        sys.exit("not in iso-codes: %s" % missing)

    alias = {}
    warn = []

    def add(key, iso3, strong=True):
        k = lower_ascii(key.strip())
        if not k:
            return
        if k in alias and alias[k] != iso3:
            if strong:
                warn.append("%s: %s kept over %s" % (key, alias[k], iso3))
            return
        alias[k] = iso3

    def names(e):
        out = []
        for f in ("name", "common_name", "inverted_name"):
            n = e.get(f)
            if n:
                out.append(n)
                base = re.sub(r"\s*\(.*?\)\s*", " ", n).strip()
                if base != n:
                    out.append(base)
        return out

    # Codes first (exact, strongest), then names of NLLB's languages, then macrolanguages.
    for c3 in nllb3:
        e = by3[c3]
        add(c3, c3)
        if "alpha_2" in e:
            add(e["alpha_2"], c3)
        if "bibliographic" in e:
            add(e["bibliographic"], c3)
    for m, c3 in sorted(MACRO.items()):
        e = by3.get(m)
        add(m, c3)
        if e and "alpha_2" in e:
            add(e["alpha_2"], c3)
        if e and "bibliographic" in e:
            add(e["bibliographic"], c3)
    for k, c3 in sorted(EXTRA_CODES.items()):
        add(k, c3)
    for k, c3 in sorted(EXTRA_NAMES.items()):
        add(k, c3)
    for c3 in nllb3:
        for n in names(by3[c3]):
            add(n, c3, strong=False)
    for m, c3 in sorted(MACRO.items()):
        if m in by3:
            for n in names(by3[m]):
                add(n, c3, strong=False)
    for w in warn:
        print("gen_langs: " + w, file=sys.stderr)

    lines = []
    lines.append("/* NLLB-200's language codes in its order (FAIRSEQ_LANGUAGE_CODES), each with")
    lines.append(" * its ISO 639-3 code, 639-1 code (\"\" if none) and English name. */")
    lines.append("static const struct lang_entry lang_nllb[%d] = {" % len(codes))
    for c in codes:
        e = by3[c[:3]]
        lines.append("    { %s, %s, %s, %s }," % (cstr(c), cstr(c[:3]), cstr(e.get("alpha_2", "")),
                                                  cstr(re.sub(r"\s*\(.*?\)", "", e["name"]))))
    lines.append("};")
    lines.append("")
    lines.append("/* Alias (ASCII lower case; sorted by bytes) -> ISO 639-3 code of an NLLB language. */")
    lines.append("static const struct lang_alias lang_aliases[%d] = {" % len(alias))
    for k in sorted(alias, key=lambda s: s.encode("utf-8")):
        lines.append("    { %s, %s }," % (cstr(k), cstr(alias[k])))
    lines.append("};")
    block = "\n".join(lines) + "\n"

    src = open(target, encoding="utf-8").read()
    begin = "/* BEGIN GENERATED by scripts/gen_langs.py: do not edit by hand */\n"
    end = "/* END GENERATED */\n"
    i, j = src.index(begin) + len(begin), src.index(end)
    open(target, "w", encoding="utf-8").write(src[:i] + block + src[j:])
    print("gen_langs: %d codes, %d aliases -> %s" % (len(codes), len(alias), target))


if __name__ == "__main__":
    main()
