#!/bin/sh
# Writes tests/data/golden/tok_spans.json: the ids and the byte offsets (begin, end) the
# sentencepiece library itself gives (SentencePieceProcessor::EncodeAsSerializedProto,
# i.e. the pieces of EncodeAsImmutableProto) for every text of golden/tokenizer.json
# without sentinels, line breaks or NUL, on T5's spiece.model ("t5") and on the variant
# tests/unit/test_tok.c builds (byte fallback with 256 <0xNN> pieces, user-defined
# <sep>, xyz and ▁qq, "▁the" unused; "variant") plus texts that reach those pieces.
#
# Run by hand from the repository root, not by make: it needs Debian's libsentencepiece0
# (the library spm_encode uses, which ships no headers: the two members called are
# declared below), g++, protoc and python3-protobuf. Generated with sentencepiece 0.1.97.
set -eu
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
protoc --proto_path=proto --python_out="$T" proto/sentencepiece_model.proto

/usr/bin/python3 - "$T" <<'EOF'
import json, subprocess, sys
tmp = sys.argv[1]
sys.path.insert(0, tmp)
import sentencepiece_model_pb2 as pb

# The variant model, built as tests/unit/test_tok.c's tok_t_variant() builds it.
m = pb.ModelProto()
m.ParseFromString(open("tests/data/t5/spiece.model", "rb").read())
for b in range(256):
    p = m.pieces.add(piece="<0x%02X>" % b, score=0.0, type=pb.ModelProto.SentencePiece.BYTE)
for u in ("<sep>", "xyz", "\u2581qq"):
    m.pieces.add(piece=u, score=0.0, type=pb.ModelProto.SentencePiece.USER_DEFINED)
assert m.pieces[8].piece == "\u2581the"
m.pieces[8].type = pb.ModelProto.SentencePiece.UNUSED
m.trainer_spec.byte_fallback = True
open(tmp + "/variant.model", "wb").write(m.SerializeToString())

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

def spans(model, texts):
    out = subprocess.run([tmp + "/spans", model], input="".join(t + "\n" for t in texts),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    cases = []
    for t, h in zip(texts, out):
        ids, sp = [], []
        for f, v in fields(bytes.fromhex(h)):
            if f != 2: continue
            d = dict(fields(v))
            ids.append(d.get(2, 0)); sp.append([d.get(4, 0), d.get(5, 0)])
        cases.append({"text": t, "ids": ids, "spans": sp})
    return cases

texts = [c["text"] for c in json.load(open("tests/data/golden/tokenizer.json"))["cases"]
         if "<extra_id_" not in c["text"] and not any(ch in c["text"] for ch in "\n\r\0")]
extra = ["a<sep>b xyzxyz <sep> the theme", "qq \u2581qq xqq the", "\u65e5\u672c\u8a9e ok \u0133",
         "\u041f\u0440\u0438\u0432\u0435\u0442 <sep>\u043c\u0438\u0440", "the the",
         "\U0001F600\U0001F600 emoji", "  \u65e5x\u00e9\u0301 \u2460 xyz  "]
doc = {
    "generator": "tests/data/golden/tok_spans.gen.sh (sentencepiece 0.1.97)",
    "convention": "ids without EOS; spans are [begin, end) byte offsets into the UTF-8 text",
    "t5": spans("tests/data/t5/spiece.model", texts),
    "variant": spans(tmp + "/variant.model", texts + extra),
}
with open("tests/data/golden/tok_spans.json", "w") as f:
    json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
print("t5: %d cases, variant: %d cases" % (len(doc["t5"]), len(doc["variant"])))
EOF
