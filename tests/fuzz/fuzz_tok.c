/* libFuzzer target for the tokenizer. Most inputs are text for tok_encode and
 * tok_encode_spans (the text as given, so invalid UTF-8, NULs, sentinel look-alikes and
 * huge runs all arrive);
 * the first byte picks a few other modes: the bytes as ids for tok_decode (0xFE), as a
 * model file for tok_load_mem (0xFD), or as the precompiled charsmap of a tiny model
 * plus a text to encode with it (0xFC). Every result is checked for internal consistency.
 *
 * The T5 model is found through NLP_TOK_MODEL, else tests/data/t5/spiece.model
 * relative to the working directory (the repository root under `make test`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok.h"
#include "proto/sentencepiece_model.pb-c.h"

static tok_model *fz_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *path = getenv("NLP_TOK_MODEL");
    if (!path) path = "tests/data/t5/spiece.model";
    char err[512];
    fz_tok = tok_load(path, err, sizeof err);
    if (!fz_tok) {
        fprintf(stderr, "fuzz_tok: %s\n", err);
        abort();
    }
    return 0;
}

static void fz_encode(const uint8_t *data, size_t size)
{
    static int32_t ids[1 << 16];
    int n = tok_encode(fz_tok, (const char *)data, size, 1, ids, 1 << 16);
    if (n == TOK_EINVAL) return;
    if (n < 1) abort(); /* at least EOS */
    int lim = n < (1 << 16) ? n : (1 << 16);
    if (n == lim && ids[n - 1] != tok_eos_id(fz_tok)) abort();
    int vs = tok_vocab_size(fz_tok);
    for (int i = 0; i < lim; i++)
        if (ids[i] < 0 || ids[i] >= vs + 100) abort();
    /* A short buffer sees the same prefix and the same total. */
    int32_t few[3];
    if (tok_encode(fz_tok, (const char *)data, size, 1, few, 3) != n) abort();
    for (int i = 0; i < 3 && i < n; i++)
        if (few[i] != ids[i]) abort();
    /* And the ids decode. */
    char out[256];
    if (tok_decode(fz_tok, ids, lim, out, sizeof out) < 0) abort();

    /* Spans: the same ids; inside the text, never backwards, at character starts;
     * EOS empty at the end. */
    static int32_t sids[1 << 16];
    static tok_span sp[1 << 16];
    if (tok_encode_spans(fz_tok, (const char *)data, size, TOK_ADD_SPECIAL, sids, sp, 1 << 16) != n)
        abort();
    if (memcmp(sids, ids, (size_t)lim * sizeof *ids)) abort();
    for (int i = 0; i < lim; i++) {
        size_t b = sp[i].begin, e = sp[i].end;
        if (b > e || e > size || (i && sp[i - 1].end > b)) abort();
        if ((b < size && (data[b] & 0xC0) == 0x80) || (e < size && (data[e] & 0xC0) == 0x80))
            abort();
        (void)tok_word_start(fz_tok, ids[i]);
    }
    if (n == lim && (sp[n - 1].begin != size || sp[n - 1].end != size)) abort();
}

static void fz_decode(const uint8_t *data, size_t size)
{
    int32_t ids[512];
    int n = 0;
    int vs = tok_vocab_size(fz_tok);
    for (size_t i = 0; i + 2 <= size && n < 512; i += 2)
        ids[n++] = (int32_t)((data[i] | data[i + 1] << 8) % (vs + 101)); /* some out of range */
    char small[7], big[8192];
    int a = tok_decode(fz_tok, ids, n, small, sizeof small);
    int b = tok_decode(fz_tok, ids, n, big, sizeof big);
    if (a != b) abort();
    if (a >= 0 && small[a < 6 ? a : 6] != '\0') abort();
}

/* A tiny unigram model whose precompiled charsmap is the fuzz input up to the first
 * 0xFF byte; the rest is text to encode with it. Exercises the charsmap reader on
 * arbitrary (mostly broken) tables. */
static void fz_charsmap(const uint8_t *data, size_t size)
{
    static const char *pieces[] = { "<pad>",
                                    "</s>",
                                    "<unk>",
                                    "\xe2\x96\x81",
                                    "a",
                                    "b",
                                    "ab",
                                    ("\xe2\x96\x81"
                                     "a"),
                                    "c",
                                    " ",
                                    "x",
                                    "\xc3\xa9",
                                    "<u>" };
    enum { NP = sizeof pieces / sizeof pieces[0] };
    Sentencepiece__ModelProto__SentencePiece sp[NP], *spp[NP];
    for (int i = 0; i < NP; i++) {
        Sentencepiece__ModelProto__SentencePiece init =
            SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__INIT;
        sp[i] = init;
        sp[i].piece = (char *)pieces[i];
        sp[i].has_score = 1;
        sp[i].score = -(float)i;
        sp[i].has_type = 1;
        sp[i].type = i < 2         ? SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL
                     : i == 2      ? SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNKNOWN
                     : i == NP - 1 ? SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__USER_DEFINED
                                   : SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL;
        spp[i] = &sp[i];
    }
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t cl = sep ? (size_t)(sep - data) : size;
    Sentencepiece__TrainerSpec ts = SENTENCEPIECE__TRAINER_SPEC__INIT;
    Sentencepiece__NormalizerSpec ns = SENTENCEPIECE__NORMALIZER_SPEC__INIT;
    ns.has_precompiled_charsmap = 1;
    ns.precompiled_charsmap.data = (uint8_t *)data;
    ns.precompiled_charsmap.len = cl;
    Sentencepiece__ModelProto mp = SENTENCEPIECE__MODEL_PROTO__INIT;
    mp.n_pieces = NP;
    mp.pieces = spp;
    mp.trainer_spec = &ts;
    mp.normalizer_spec = &ns;
    static uint8_t buf[1 << 14];
    size_t len = sentencepiece__model_proto__get_packed_size(&mp);
    if (len > sizeof buf) return;
    sentencepiece__model_proto__pack(&mp, buf);
    char err[256];
    tok_model *t = tok_load_mem(buf, len, err, sizeof err);
    if (!t) return;
    const char *text = sep ? (const char *)sep + 1 : "ab a\xc3\xa9 c<u>x";
    size_t tl = sep ? size - cl - 1 : strlen(text);
    int32_t ids[256];
    int n = tok_encode(t, text, tl, 1, ids, 256);
    if (n >= 0) {
        char out[128];
        if (tok_decode(t, ids, n < 256 ? n : 256, out, sizeof out) < 0) abort();
    }
    tok_free(&t);
}

static void fz_load(const uint8_t *data, size_t size)
{
    char err[256];
    tok_model *t = tok_load_mem(data, size, err, sizeof err);
    if (!t) return;
    int32_t ids[64];
    tok_encode(t, "Hello world", 11, 1, ids, 64);
    tok_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size && data[0] == 0xFE) {
        fz_decode(data + 1, size - 1);
    } else if (size && data[0] == 0xFD) {
        fz_load(data + 1, size - 1);
    } else if (size && data[0] == 0xFC) {
        fz_charsmap(data + 1, size - 1);
    } else {
        fz_encode(data, size);
    }
    return 0;
}
