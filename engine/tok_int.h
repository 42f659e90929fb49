/* Private to engine/tok*.c: what a tokenizer implementation provides and what the
 * interface (engine/tok.c) gives it.
 *
 * An implementation is one file, engine/tok_<kind>.c: a struct whose first member is
 * `tok_model base` (so a tok_model * is a pointer to it), a tok_ops table, and a loader
 * that fills `base` and is listed in tok.c's table of kinds with the files a model
 * directory holds for it. tok.c checks arguments and UTF-8, adds the special ids
 * around the text and does the file and directory work; the implementation encodes
 * valid text and decodes ids. */
#ifndef NLP_TOK_INT_H
#define NLP_TOK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tok.h"

/* Where encoded ids go: every id is counted, the first `cap` are stored, with their
 * spans when `spans` is not NULL. */
typedef struct tok_out {
    int32_t *ids;
    tok_span *spans;
    size_t cap;
    size_t n;
    int flags; /* the caller's enum tok_encode_flags (TOK_TARGET: Marian's target.spm) */
} tok_out;

static inline void tok_emit(tok_out *o, int32_t id, size_t begin, size_t end)
{
    if (o->n < o->cap) {
        o->ids[o->n] = id;
        if (o->spans) o->spans[o->n] = (tok_span){ begin, end };
    }
    o->n++;
}

/* Widens the last id's span to end at `end` (an id that absorbed more input). */
static inline void tok_emit_extend(tok_out *o, size_t end)
{
    if (o->spans && o->n && o->n - 1 < o->cap) o->spans[o->n - 1].end = end;
}

/* Length of the valid UTF-8 character at s (n bytes available), 0 if malformed.
 * Same rules as sentencepiece's DecodeUTF8 and cm_utf8_valid: no overlongs, no
 * surrogates, <= U+10FFFF. tok.c checks every text with it before encoding: this
 * branch-per-range form costs half of what the general decoder does. */
static inline size_t tok_utf8_valid(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

typedef struct tok_ops {
    /* Encodes text[0..len), valid UTF-8, without special ids around it; spans are
     * relative to text. Returns 0 or TOK_ENOMEM. */
    int (*encode)(const tok_model *tok, const char *text, size_t len, tok_out *o);
    /* tok_decode()'s contract; n >= 0 and ids != NULL when n > 0 are checked. */
    int (*decode)(const tok_model *tok, const int32_t *ids, int n, char *out, size_t cap);
    /* tok_piece() and tok_word_start() for an id >= 0. */
    const char *(*piece)(const tok_model *tok, int32_t id);
    int (*word_start)(const tok_model *tok, int32_t id);
    void (*free)(tok_model *tok);
} tok_ops;

/* The part every tokenizer has. The loader fills it. */
struct tok_model {
    const tok_ops *ops;
    const char *kind; /* tok_kind(): static string */
    int vocab_size;
    int eos_id, pad_id, unk_id, bos_id; /* -1 when absent */
    /* Sentinel <extra_id_n> is id sentinel0 - n for n < n_sentinels (T5 counts them
     * down from the top of its ids). */
    int n_sentinels;
    int32_t sentinel0;
    tok_special_ids specials; /* TOK_ADD_SPECIAL */
    /* Between the two texts of tok_encode_pair with TOK_ADD_SPECIAL (BART: </s> </s>). */
    int n_pair_mid;
    int32_t pair_mid[TOK_MAX_SPECIALS];
};

/* SentencePiece (engine/tok_spm.c): a ModelProto from memory. */
tok_model *tok_spm_load_mem(const void *buf, size_t len, char *err, size_t errlen);

/* Byte-level BPE (engine/tok_bpe.c): dir/vocab.json + dir/merges.txt. */
tok_model *tok_bpe_open_dir(const char *dir, char *err, size_t errlen);
/* Marian (engine/tok_marian.c): dir/source.spm + dir/target.spm + dir/vocab.json. */
tok_model *tok_marian_open_dir(const char *dir, char *err, size_t errlen);

#endif
