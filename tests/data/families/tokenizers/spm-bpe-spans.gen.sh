#!/bin/sh
# Writes spm-bpe-spans.golden.json (next to this script): the ids and byte offsets (begin,
# end) the sentencepiece library itself gives (SentencePieceProcessor::
# EncodeAsSerializedProto) for a third of the one-line texts of spm-bpe-variants.golden.json
# and its last 60 (each case's "i" is its index there) on the two SentencePiece-BPE
# models: spm-bpe/spm-bpe.model ("bpe") and spm-bpe-bytes/spm-bpe-bytes.model ("bytes":
# byte fallback, user-defined pieces).
# Run by hand from the repository root, not by make: it needs Debian's libsentencepiece0
# (which ships no headers: the two members called are declared below), g++ and python3.
# Generated with sentencepiece 0.1.97.
set -eu
D=tests/data/families/tokenizers
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat >"$T/spans.cc" <<'EOF'
#include <cstdio>
#include <iostream>
#include <new>
#include <string>
#include <string_view>
namespace sentencepiece {
class SentencePieceProcessor {
 public:
  SentencePieceProcessor();
  void LoadOrDie(std::string_view filename);
  std::string EncodeAsSerializedProto(std::string_view input) const;
};
}  // namespace sentencepiece
// Each stdin line -> the serialized SentencePieceText in hex.
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  alignas(64) static char mem[1 << 16];  // more than the object needs
  auto *sp = new (mem) sentencepiece::SentencePieceProcessor();
  sp->LoadOrDie(argv[1]);
  std::string line;
  while (std::getline(std::cin, line)) {
    for (unsigned char c : sp->EncodeAsSerializedProto(line)) printf("%02x", c);
    printf("\n");
  }
}
EOF
g++ -std=c++17 -O1 -o "$T/spans" "$T/spans.cc" /usr/lib/x86_64-linux-gnu/libsentencepiece.so.0

python3 - "$T" "$D" <<'EOF'
import json, subprocess, sys
tmp, d = sys.argv[1], sys.argv[2]
allc = json.load(open(d + "/spm-bpe-variants.golden.json", encoding="utf-8"))["cases"]
# every third text, and all of the last 60 (the edge cases and the user-defined ones)
pick = [i for i in range(len(allc)) if i % 3 == 0 or i >= len(allc) - 60]
texts = [allc[i]["text"] for i in pick]

def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7F) << s; s += 7
        if c < 0x80: return v, i

def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0: v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        elif wt == 5: v = b[i:i + 4]; i += 4
        elif wt == 1: v = b[i:i + 8]; i += 8
        else: raise ValueError(wt)
        yield f, v

def spans(model):
    lines = "".join(t + "\n" for t in texts).encode("utf-8")
    out = subprocess.run([tmp + "/spans", model], input=lines, capture_output=True,
                         check=True).stdout.decode().split("\n")
    cases = []
    for i, t, h in zip(pick, texts, out):
        ids, sp = [], []
        for f, v in fields(bytes.fromhex(h)):
            if f != 2: continue   # SentencePieceText.pieces
            p = dict(fields(v))
            ids.append(p.get(2, 0)); sp.append([p.get(4, 0), p.get(5, 0)])
        cases.append({"i": i, "ids": ids, "spans": sp})
    return cases

out = {"bpe": spans(d + "/spm-bpe/spm-bpe.model"),
       "bytes": spans(d + "/spm-bpe-bytes/spm-bpe-bytes.model")}
with open(d + "/spm-bpe-spans.golden.json", "w", encoding="utf-8") as f:
    f.write("{\n")
    row = lambda c: json.dumps(c, separators=(",", ":"))
    f.write(",\n".join('"%s": [\n%s]' % (k, ",\n".join(row(c) for c in v))
                       for k, v in out.items()))
    f.write("}\n")
print({k: len(v) for k, v in out.items()})
EOF
