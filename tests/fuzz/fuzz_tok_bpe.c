/* libFuzzer target for the byte-level BPE tokenizer (engine/tok_bpe.c, BART's files) and
 * Marian's (engine/tok_marian.c). Most inputs are text for the BPE encoder, as given
 * (invalid UTF-8, NULs, special-token strings, huge words and whitespace runs all arrive);
 * the first byte picks other modes: 0xFE the bytes as BPE ids to decode, 0xFD the text
 * for Marian (source and target side), 0xFC two texts split at the first 0xFF for the pair
 * encoder. Checks: no crash; ids inside the vocabulary, <s> first and </s> last; spans
 * inside the text, never backwards, at character starts; the same ids from a short buffer;
 * and byte-level BPE is lossless: a text without special-token strings decodes (without
 * clean-up) to itself.
 *
 * The tokenizers are found through NLP_TOK_BPE_DIR / NLP_TOK_MARIAN_DIR, else under
 * tests/data/families/tokenizers relative to the working directory (the repository root
 * under `make test`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok.h"

#define FZ_CAP (1 << 16)

static tok_model *fz_bpe, *fz_mar;

static tok_model *fz_open(const char *env, const char *dflt)
{
    const char *dir = getenv(env);
    if (!dir) dir = dflt;
    char err[512];
    tok_model *t = tok_open_dir(dir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "fuzz_tok_bpe: %s\n", err);
        abort();
    }
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_bpe = fz_open("NLP_TOK_BPE_DIR", "tests/data/families/tokenizers/bart-bpe");
    fz_mar = fz_open("NLP_TOK_MARIAN_DIR", "tests/data/families/tokenizers/marian-en-mg");
    return 0;
}

static int32_t fz_ids[FZ_CAP], fz_ids2[FZ_CAP];
static tok_span fz_sp[FZ_CAP];
static char fz_out[1 << 20];

/* Spans inside text[0..size), never backwards, at character starts. */
static void fz_spans(const uint8_t *data, size_t size, const tok_span *sp, int n)
{
    for (int i = 0; i < n; i++) {
        size_t b = sp[i].begin, e = sp[i].end;
        if (b > e || e > size || (i && sp[i - 1].end > b)) abort();
        if ((b < size && (data[b] & 0xC0) == 0x80) || (e < size && (data[e] & 0xC0) == 0x80))
            abort();
    }
}

/* One encoding with flags: ids in range, the special ids around, spans, short buffer. */
static int fz_encode_with(const tok_model *t, const uint8_t *data, size_t size, int flags)
{
    const char *s = (const char *)data;
    int n = tok_encode_spans(t, s, size, flags, fz_ids, fz_sp, FZ_CAP);
    if (n == TOK_EINVAL) return n;
    if (n < 0) abort();
    int lim = n < FZ_CAP ? n : FZ_CAP;
    int vs = tok_vocab_size(t);
    for (int i = 0; i < lim; i++)
        if (fz_ids[i] < 0 || fz_ids[i] >= vs) abort();
    tok_special_ids sp = tok_specials(t);
    if ((flags & TOK_ADD_SPECIAL) && n == lim) {
        if (n < sp.n_head + sp.n_tail) abort();
        for (int i = 0; i < sp.n_head; i++)
            if (fz_ids[i] != sp.head[i]) abort();
        for (int i = 0; i < sp.n_tail; i++)
            if (fz_ids[n - sp.n_tail + i] != sp.tail[i]) abort();
    }
    fz_spans(data, size, fz_sp, lim);
    int32_t few[3];
    if (tok_encode(t, s, size, flags, few, 3) != n) abort();
    for (int i = 0; i < 3 && i < n; i++)
        if (few[i] != fz_ids[i]) abort();
    if (tok_decode(t, fz_ids, lim, fz_out, sizeof fz_out) < 0) abort();
    for (int i = 0; i < lim; i++) (void)tok_word_start(t, fz_ids[i]);
    return n;
}

static int fz_has_special(const uint8_t *data, size_t size)
{
    static const char *const sp[] = { "<s>", "</s>", "<unk>", "<pad>", "<mask>" };
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        if (memmem(data, size, sp[i], strlen(sp[i]))) return 1;
    return 0;
}

static void fz_bpe_text(const uint8_t *data, size_t size)
{
    int n = fz_encode_with(fz_bpe, data, size, TOK_ADD_SPECIAL);
    if (n < 0 || n > FZ_CAP) return;
    /* Lossless: every byte is in some token. */
    if (!fz_has_special(data, size) && size < sizeof fz_out) {
        int k = tok_decode(fz_bpe, fz_ids, n, fz_out, sizeof fz_out);
        if (k != (int)size || memcmp(fz_out, data, size)) abort();
    }
    if (tok_decode_flags(fz_bpe, fz_ids, n, TOK_DECODE_CLEANUP, fz_out, 9) < 0) abort();
}

static void fz_bpe_decode(const uint8_t *data, size_t size)
{
    int n = 0, vs = tok_vocab_size(fz_bpe);
    for (size_t i = 0; i + 2 <= size && n < 512; i += 2)
        fz_ids[n++] = (int32_t)((data[i] | data[i + 1] << 8 | (data[i] & 1) << 16) % (vs + 3));
    char small[7];
    int a = tok_decode(fz_bpe, fz_ids, n, small, sizeof small);
    int b = tok_decode(fz_bpe, fz_ids, n, fz_out, sizeof fz_out);
    if (a != b) abort();
    if (b >= 0 && (size_t)b < sizeof fz_out) {
        /* Invalid bytes became U+FFFD: the text is valid UTF-8. */
        if (tok_encode(fz_bpe, fz_out, (size_t)b, 0, NULL, 0) == TOK_EINVAL) abort();
    }
    int c = tok_decode_flags(fz_bpe, fz_ids, n, TOK_DECODE_CLEANUP, fz_out, sizeof fz_out);
    if ((a < 0) != (c < 0) || c > b) abort();
}

static void fz_marian(const uint8_t *data, size_t size)
{
    fz_encode_with(fz_mar, data, size, TOK_ADD_SPECIAL);
    fz_encode_with(fz_mar, data, size, TOK_ADD_SPECIAL | TOK_TARGET);
}

static void fz_pair(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t al = sep ? (size_t)(sep - data) : size / 2;
    const char *a = (const char *)data, *b = (const char *)data + al + (sep ? 1 : 0);
    size_t bl = size - al - (sep ? 1 : 0);
    int na = tok_encode(fz_bpe, a, al, 0, NULL, 0);
    int nb = tok_encode(fz_bpe, b, bl, 0, NULL, 0);
    int n = tok_encode_pair(fz_bpe, a, al, b, bl, TOK_ADD_SPECIAL, fz_ids2, fz_sp, FZ_CAP);
    if (na == TOK_EINVAL || nb == TOK_EINVAL) {
        if (n != TOK_EINVAL) abort();
        return;
    }
    if (n != na + nb + 4) abort();
    /* As if b followed a in one buffer: spans sane over that length, b's inside b. */
    int lim = n < FZ_CAP ? n : FZ_CAP;
    for (int i = 0; i < lim; i++) {
        if (fz_sp[i].begin > fz_sp[i].end || fz_sp[i].end > al + bl) abort();
        if (i && fz_sp[i - 1].end > fz_sp[i].begin) abort();
        if (i > na + 2 && fz_sp[i].begin < al) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size && data[0] == 0xFE) fz_bpe_decode(data + 1, size - 1);
    else if (size && data[0] == 0xFD) fz_marian(data + 1, size - 1);
    else if (size && data[0] == 0xFC) fz_pair(data + 1, size - 1);
    else fz_bpe_text(data, size);
    return 0;
}
