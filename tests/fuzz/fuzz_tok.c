/* libFuzzer target for the tokenizer. Most inputs are text for tok_encode (the text
 * as given, so invalid UTF-8, NULs, sentinel look-alikes and huge runs all arrive);
 * the first byte picks a few other modes: the bytes as ids for tok_decode, or as a
 * model file for tok_load_mem. Every result is checked for internal consistency.
 *
 * The T5 model is found through NLP_TOK_MODEL, else tests/data/t5/spiece.model
 * relative to the working directory (the repository root under `make test`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tok.h"

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
    if (n < 1) abort();                       /* at least EOS */
    if (ids[n < (1 << 16) ? n - 1 : (1 << 16) - 1] != tok_eos_id(fz_tok) && n <= (1 << 16))
        abort();
    int lim = n < (1 << 16) ? n : (1 << 16);
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
    } else {
        fz_encode(data, size);
    }
    return 0;
}
