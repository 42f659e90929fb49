/* Placeholder so everything links before the tokenizer lands. DELETE when engine/tok.c
 * implement engine/tok.h. */
#include "engine/tok.h"

#include <stdio.h>

tok_model *tok_load(const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: tokenizer not implemented yet", path);
    return NULL;
}
tok_model *tok_load_mem(const void *buf, size_t len, char *err, size_t errlen)
{
    (void)buf, (void)len;
    snprintf(err, errlen, "tokenizer not implemented yet");
    return NULL;
}
void tok_free(tok_model **tok) { *tok = NULL; }
int tok_encode(const tok_model *tok, const char *text, size_t len, int add_eos, int32_t *ids, int cap)
{
    (void)tok, (void)text, (void)len, (void)add_eos, (void)ids, (void)cap;
    return TOK_EINVAL;
}
int tok_decode(const tok_model *tok, const int32_t *ids, int n, char *out, size_t cap)
{
    (void)tok, (void)ids, (void)n, (void)out, (void)cap;
    return TOK_ERANGE;
}
int tok_vocab_size(const tok_model *tok) { (void)tok; return 0; }
int tok_eos_id(const tok_model *tok) { (void)tok; return 1; }
int tok_pad_id(const tok_model *tok) { (void)tok; return 0; }
int tok_unk_id(const tok_model *tok) { (void)tok; return 2; }
const char *tok_piece(const tok_model *tok, int32_t id) { (void)tok, (void)id; return NULL; }
int tok_is_sentinel(const tok_model *tok, int32_t id) { (void)tok, (void)id; return 0; }
