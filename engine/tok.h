/* SentencePiece unigram tokenizer, bit-exact with the sentencepiece library.
 *
 * A tok_model is immutable after tok_load(): share it between threads freely.
 * Text is UTF-8. `<extra_id_N>` in text becomes the sentinel id
 * (vocab_size_spm + 99 - N, i.e. 32099 - N for T5); `</s>`, `<pad>`, `<unk>` in text are
 * plain text, never control tokens.
 *
 * Return codes: >= 0 success (a count), < 0 one of enum tok_status. */
#ifndef NLP_TOK_H
#define NLP_TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_model tok_model;

enum tok_status {
    TOK_OK = 0,
    TOK_EINVAL = -1,   /* invalid UTF-8 in the input text */
    TOK_ENOMEM = -2,
    TOK_ERANGE = -3,   /* an id outside the vocabulary (decode) */
};

/* Loads spiece.model (a ModelProto). On error, NULL is returned and `err` says why,
 * naming the file. */
tok_model *tok_load(const char *path, char *err, size_t errlen);
/* The same from bytes in memory (the caller keeps ownership of `buf`). */
tok_model *tok_load_mem(const void *buf, size_t len, char *err, size_t errlen);
/* Frees the model and NULLs the caller's pointer. NULL is fine. */
void tok_free(tok_model **tok);

/* Encodes `len` bytes of `text` into ids, appending EOS when add_eos is set.
 * Returns the number of ids the full encoding has; only the first `cap` are written
 * (so a return > cap means: call again with a bigger buffer). < 0 on error:
 * TOK_EINVAL for invalid UTF-8 (nothing useful is written). */
int tok_encode(const tok_model *tok, const char *text, size_t len, int add_eos,
               int32_t *ids, int cap);

/* Decodes ids into text: pieces joined, U+2581 turned into spaces, the leading space
 * dropped, pad and EOS skipped, sentinels shown as `<extra_id_N>`, unk as sentencepiece
 * shows it (" ⁇ "). Writes at most `cap` bytes including the terminating NUL, returns
 * the full length (snprintf-like), or TOK_ERANGE for an id outside the vocabulary. */
int tok_decode(const tok_model *tok, const int32_t *ids, int n, char *out, size_t cap);

int tok_vocab_size(const tok_model *tok);   /* pieces in spiece.model (32000 for T5) */
int tok_eos_id(const tok_model *tok);       /* 1 for T5 */
int tok_pad_id(const tok_model *tok);       /* 0 for T5 */
int tok_unk_id(const tok_model *tok);       /* 2 for T5 */
/* The piece text of an id (sentinels: "<extra_id_N>" in a static table), NULL if none. */
const char *tok_piece(const tok_model *tok, int32_t id);
/* 1 if id is a sentinel <extra_id_N>. */
int tok_is_sentinel(const tok_model *tok, int32_t id);

#endif
