/* Private to engine/tok_spm.c and engine/tok_spmbpe.c: the SentencePiece model both
 * SentencePiece algorithms read.
 *
 * A ModelProto is loaded once (tok_spm_load_mem in tok_spm.c: pieces, the piece trie,
 * the normaliser's charsmap and flags); its trainer_spec.model_type picks how a
 * normalised segment is cut into pieces: unigram Viterbi (tok_spm.c) or BPE merges by
 * piece score (tok_spmbpe.c). Normalisation, unknown-run and byte-fallback emission,
 * decoding and the piece queries are the same code for both, as in the library, where
 * they live in the normaliser and the processor rather than the model.
 *
 * tok_spmbpe.c also holds the fairseq convention (NLLB, M2M100, mBART-50: special ids
 * first, piece ids shifted, language codes after the vocabulary), a tokenizer that wraps
 * a SentencePiece model and is opened from a model directory (tok_fs_open_dir). */
#ifndef NLP_TOK_SPM_INT_H
#define NLP_TOK_SPM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tok_int.h"

/* Piece types as stored in the model file (ModelProto.SentencePiece.Type). */
enum {
    TOK_T_NORMAL = 1,
    TOK_T_UNKNOWN = 2,
    TOK_T_CONTROL = 3,
    TOK_T_USER = 4,
    TOK_T_UNUSED = 5,
    TOK_T_BYTE = 6,
};

/* One slot of the double-array trie over piece texts. A transition from node s by
 * byte c goes to t = base + c when slot t's check is s. base 0 marks a node without
 * children (no slot can have such a node as parent). */
struct tok_da {
    int32_t base;
    int32_t check; /* parent slot, -1 when free */
    int32_t id;    /* piece id ending here; -1 if none (UNUSED pieces are left out of
                     * unigram models, kept in BPE models, where merges may reach them);
                     * a USER_DEFINED piece i is stored as -2 - i, so the hot loop
                     * tells it apart without touching the piece table */
    float score;   /* score of that piece */
};

struct tok_piece {
    uint32_t off; /* into tok_spm.strs; NUL-terminated */
    uint32_t len;
    float score;
    uint8_t type;
};

typedef struct tok_spm {
    tok_model base;           /* first: a tok_model * points here */
    int n;                    /* pieces in the model */
    int bpe;                  /* model_type BPE: segments are cut by tok_spmbpe_merge */
    int bpe_by_word;          /* BPE, and no piece has U+2581 past its start and none is
                                * unused: no merge crosses a word start, so words can be
                                * merged one by one (same result, small queues) */
    int nsent;                /* <extra_id_N> sentinels after the pieces (T5: 100;
                                * BPE models: 0) */
    struct tok_piece *pieces; /* [n] */
    char *strs;               /* piece texts, NUL-separated */

    struct tok_da *da; /* [da_size]; owns; slot 0 is the root */
    size_t da_size;

    /* precompiled charsmap (may be absent: then nothing is rewritten) */
    uint32_t *cm_units; /* [cm_nunits] darts-clone units, host order; owns */
    size_t cm_nunits;
    char *cm_norm; /* [cm_normlen] replacement strings; owns */
    size_t cm_normlen;

    int add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix;
    /* ascii_plain[c]: the normalizer keeps ASCII byte c as it is whenever the next
     * byte is ASCII too or the text ends (no charsmap rule is c alone or c followed by
     * ASCII, no user-defined pieces), so such runs are copied without lookups. */
    uint8_t ascii_plain[128];
    int has_user; /* any USER_DEFINED piece */
    int byte_fallback;
    int32_t byte_id[256]; /* id of <0xNN>, -1 if absent */

    float min_score, max_score, unk_score;
    int unk_id, eos_id, pad_id, bos_id;
    char *unk_surface; /* owns */
} tok_spm;

/* Byte length of the UTF-8 character led by c, the library's OneCharLen table. */
static inline size_t tok_spm_charlen(unsigned char c)
{
    static const uint8_t len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[c >> 4];
}

/* ---- tok_spm.c ---- */

/* Normalises one segment of valid UTF-8 text (starting at byte `base` of the caller's
 * text) and emits its pieces: Viterbi for unigram models, tok_spmbpe_merge for BPE.
 * 0 or TOK_ENOMEM. */
int tok_spm_segment(const tok_spm *m, const char *text, size_t len, tok_out *o, size_t base);

/* The id of the piece s[0..len) among the pieces segmentation can produce (normal,
 * user-defined, and unused ones of BPE models), -1 if there is none. */
int32_t tok_spm_find(const tok_spm *m, const char *s, size_t len);

/* Emits one segmented piece as the library's processor does: an unknown piece becomes
 * its <0xNN> byte pieces with byte fallback, else joins a directly preceding unknown
 * (*prev_unk) into one unk id. The piece is normalised bytes s[p..end); with n2o (the
 * normaliser's alignment) its span is base + n2o[p] .. base + n2o[end]. */
void tok_spm_emit(const tok_spm *m, tok_out *o, int32_t id, const unsigned char *s, size_t p,
                  size_t end, const size_t *n2o, size_t base, int *prev_unk);

/* The tok_ops both SentencePiece kinds share (tok_spm.c's contracts). */
int tok_spm_decode(const tok_model *base, const int32_t *ids, int n, char *out, size_t cap);
const char *tok_spm_piece(const tok_model *base, int32_t id);
int tok_spm_word_start(const tok_model *base, int32_t id);
void tok_spm_free(tok_model *base);

/* ---- tok_spmbpe.c ---- */

/* sentencepiece's bpe_model.cc Encode over normalised s[0..n), then tok_spm_emit for
 * each resulting piece. 0 or TOK_ENOMEM. */
int tok_spmbpe_merge(const tok_spm *m, const char *s, size_t n, tok_out *o, const size_t *n2o,
                     size_t base);
extern const tok_ops tok_spmbpe_ops;

/* Language codes of a tokenizer, NULL for a tokenizer without (tok.c's language
 * queries and special ids read this). */
typedef struct tok_langs {
    int n;
    char **codes;        /* [n] as the model writes them ("deu_Latn", "__de__") */
    int32_t *ids;        /* [n] their token ids */
    int32_t src_default; /* id of the source language when none is asked, -1: none */
    int32_t tgt_default; /* the same for target-side text */
    int legacy;          /* pieces </s> [lang] instead of [lang] pieces </s> */
    int32_t eos_id;
} tok_langs;
const tok_langs *tok_fs_langs(const tok_model *tok);

/* The fairseq tokenizer of a model directory holding sentencepiece.bpe.model and
 * tokenizer_config.json (special_tokens_map.json and vocab.json when there). */
tok_model *tok_fs_open_dir(const char *dir, char *err, size_t errlen);

#endif
