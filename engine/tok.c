/* The tokenizer interface (engine/tok.h): which implementation a file or a model
 * directory gets, argument and UTF-8 checks, the special ids around a text, and the
 * queries every tokenizer answers alike. The algorithms live in engine/tok_<kind>.c
 * behind tok_ops (engine/tok_int.h); nothing here knows how a kind encodes.
 *
 * A new tokenizer is one new file engine/tok_<kind>.c (its tok_ops and a loader filling
 * the tok_model part) and one row in tok_kinds[] below naming the files a model
 * directory holds for it. Any thread: the table is constant, models are read-only. */
#include "engine/tok_spm_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"

/* A tokenizer file larger than this is refused rather than read (T5's is 0.8 MB,
 * NLLB's 4.8 MB). */
#define TOK_MAX_FILE ((size_t)1 << 30)
#define TOK_KIND_FILES 4

/* One kind of tokenizer: the files that show it in a model directory and how to open
 * it. */
typedef struct tok_kind_entry {
    const char *name;                  /* for messages */
    const char *files[TOK_KIND_FILES]; /* all present; unused slots NULL */
    /* A kind that is one file (files[0]): that file's bytes to a model. */
    tok_model *(*load_mem)(const void *buf, size_t len, char *err, size_t errlen);
    /* A kind made of several files: opens them in dir, naming a damaged one in err.
     * NULL for one-file kinds, which tok.c opens through load_mem. */
    tok_model *(*open_dir)(const char *dir, char *err, size_t errlen);
} tok_kind_entry;

/* Most specific first: a directory gets the first kind whose files are all there
 * (Marian's source.spm + target.spm + vocab.json sits above byte-level BPE's
 * vocab.json + merges.txt: both have vocab.json). A single file of unknown name is read
 * by the first kind with load_mem. */
static const tok_kind_entry tok_kinds[] = {
    { "Marian", { "source.spm", "target.spm", "vocab.json" }, NULL, tok_marian_open_dir },
    { "NLLB, M2M100, mBART",
      { "sentencepiece.bpe.model", "tokenizer_config.json" },
      NULL,
      tok_fs_open_dir },
    { "byte-level BPE", { "vocab.json", "merges.txt" }, NULL, tok_bpe_open_dir },
    { "SentencePiece", { "spiece.model" }, tok_spm_load_mem, NULL },
};
#define TOK_N_KINDS (sizeof tok_kinds / sizeof tok_kinds[0])

static void tok_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tok_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    cm_vfmt(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ load -- */

/* The one-file kind for a file: the one whose file name it has, else the first. */
static const tok_kind_entry *tok_kind_of_file(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const tok_kind_entry *first = NULL;
    for (size_t i = 0; i < TOK_N_KINDS; i++) {
        const tok_kind_entry *k = &tok_kinds[i];
        if (!k->load_mem) continue;
        if (!first) first = k;
        if (!strcmp(k->files[0], base)) return k;
    }
    return first;
}

tok_model *tok_load(const char *path, char *err, size_t errlen)
{
    if (!path) {
        tok_seterr(err, errlen, "(null): no tokenizer path");
        return NULL;
    }
    char *buf;
    size_t len;
    int rc = cm_read_file(path, TOK_MAX_FILE, &buf, &len);
    if (rc == -EFBIG) {
        tok_seterr(err, errlen, "%s: larger than %zu bytes", path, TOK_MAX_FILE);
        return NULL;
    }
    if (rc < 0) {
        tok_seterr(err, errlen, "%s: %s", path, strerror(-rc));
        return NULL;
    }
    char why[256] = "";
    tok_model *t = tok_kind_of_file(path)->load_mem(buf, len, why, sizeof why);
    free(buf);
    if (!t) tok_seterr(err, errlen, "%s: %s", path, why);
    return t;
}

tok_model *tok_load_mem(const void *buf, size_t len, char *err, size_t errlen)
{
    return tok_kind_of_file("")->load_mem(buf, len, err, errlen);
}

/* 1 if every file of kind k is in dir. */
static int tok_kind_present(const tok_kind_entry *k, const char *dir)
{
    char path[4096];
    struct stat st;
    for (int i = 0; i < TOK_KIND_FILES && k->files[i]; i++) {
        int n = snprintf(path, sizeof path, "%s/%s", dir, k->files[i]);
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0) return 0;
    }
    return 1;
}

tok_model *tok_open_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (!dir) {
        tok_seterr(err, errlen, "(null): no model directory");
        return NULL;
    }
    if (stat(dir, &st) != 0) {
        tok_seterr(err, errlen, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        tok_seterr(err, errlen, "%s: not a directory", dir);
        return NULL;
    }
    for (size_t i = 0; i < TOK_N_KINDS; i++) {
        const tok_kind_entry *k = &tok_kinds[i];
        if (!tok_kind_present(k, dir)) continue;
        if (k->open_dir) return k->open_dir(dir, err, errlen);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, k->files[0]);
        return tok_load(path, err, errlen);
    }
    /* None: say what would have been taken, e.g. "spiece.model (SentencePiece)". */
    char looked[512];
    size_t w = 0;
    looked[0] = '\0';
    for (size_t i = 0; i < TOK_N_KINDS && w < sizeof looked; i++) {
        const tok_kind_entry *k = &tok_kinds[i];
        w += (size_t)snprintf(looked + w, sizeof looked - w, "%s", i ? "; " : "");
        for (int f = 0; f < TOK_KIND_FILES && k->files[f] && w < sizeof looked; f++)
            w += (size_t)snprintf(looked + w, sizeof looked - w, "%s%s", f ? " + " : "",
                                  k->files[f]);
        if (w < sizeof looked)
            w += (size_t)snprintf(looked + w, sizeof looked - w, " (%s)", k->name);
    }
    tok_seterr(err, errlen, "%s: no tokenizer found; looked for %s", dir, looked);
    return NULL;
}

tok_model *tok_open(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return tok_open_dir(path, err, errlen);
    return tok_load(path, err, errlen);
}

void tok_free(tok_model **tok)
{
    if (!tok || !*tok) return;
    (*tok)->ops->free(*tok);
    *tok = NULL;
}

const char *tok_kind(const tok_model *tok) { return tok ? tok->kind : "none"; }

/* -------------------------------------------------------------------- encode -- */

static int tok_utf8_check(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = tok_utf8_valid(s + i, len - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

tok_encode_opts tok_encode_default_opts(void)
{
    return (tok_encode_opts){ TOK_ADD_SPECIAL, -1, -1 };
}

/* 1 if id is one of the model's language codes. */
static int tok_is_lang(const tok_langs *l, int32_t id)
{
    for (int i = 0; i < l->n; i++)
        if (l->ids[i] == id) return 1;
    return 0;
}

tok_special_ids tok_specials_opt(const tok_model *tok, const tok_encode_opts *opts)
{
    const tok_langs *l = tok_fs_langs(tok);
    if (!l) return tok ? tok->specials : (tok_special_ids){ 0 };
    int target = opts && (opts->flags & TOK_TARGET);
    int32_t lang = opts ? (target ? opts->tgt_lang : opts->src_lang) : -1;
    if (lang < 0) lang = target ? l->tgt_default : l->src_default;
    tok_special_ids s = { 0 };
    if (!l->legacy && lang >= 0) s.head[s.n_head++] = lang;
    s.tail[s.n_tail++] = l->eos_id;
    if (l->legacy && lang >= 0) s.tail[s.n_tail++] = lang;
    return s;
}

int tok_encode_opt(const tok_model *tok, const char *text, size_t len, const tok_encode_opts *opts,
                   int32_t *ids, tok_span *spans, int cap)
{
    const tok_encode_opts dflt = tok_encode_default_opts();
    if (!opts) opts = &dflt;
    const int flags = opts->flags;
    const tok_langs *l = tok_fs_langs(tok);
    int32_t lang = flags & TOK_TARGET ? opts->tgt_lang : opts->src_lang;
    if (l && lang >= 0 && !tok_is_lang(l, lang)) return TOK_ERANGE;
    if (!tok || (!text && len)) return TOK_EINVAL;
    if (!tok_utf8_check(text, len)) return TOK_EINVAL;
    tok_out o = { ids, spans, (ids && cap > 0) ? (size_t)cap : 0, 0, flags };
    const tok_special_ids spv = tok_specials_opt(tok, opts);
    const tok_special_ids *sp = &spv;
    if (flags & TOK_ADD_SPECIAL)
        for (int i = 0; i < sp->n_head; i++) tok_emit(&o, sp->head[i], 0, 0);
    int rc = tok->ops->encode(tok, text, len, &o);
    if (rc < 0) return rc;
    if (flags & TOK_ADD_SPECIAL)
        for (int i = 0; i < sp->n_tail; i++) tok_emit(&o, sp->tail[i], len, len);
    if (o.n > INT_MAX) return TOK_ENOMEM;
    return (int)o.n;
}

int tok_encode_spans(const tok_model *tok, const char *text, size_t len, int flags, int32_t *ids,
                     tok_span *spans, int cap)
{
    const tok_encode_opts o = { flags, -1, -1 };
    return tok_encode_opt(tok, text, len, &o, ids, spans, cap);
}

int tok_encode(const tok_model *tok, const char *text, size_t len, int flags, int32_t *ids, int cap)
{
    return tok_encode_spans(tok, text, len, flags, ids, NULL, cap);
}

int tok_encode_pair(const tok_model *tok, const char *a, size_t alen, const char *b, size_t blen,
                    int flags, int32_t *ids, tok_span *spans, int cap)
{
    if (!tok || (!a && alen) || (!b && blen)) return TOK_EINVAL;
    if (!tok_utf8_check(a, alen) || !tok_utf8_check(b, blen)) return TOK_EINVAL;
    tok_out o = { ids, spans, (ids && cap > 0) ? (size_t)cap : 0, 0, flags };
    const tok_special_ids *sp = &tok->specials;
    const int add = flags & TOK_ADD_SPECIAL;
    if (add)
        for (int i = 0; i < sp->n_head; i++) tok_emit(&o, sp->head[i], 0, 0);
    int rc = tok->ops->encode(tok, a, alen, &o);
    if (rc < 0) return rc;
    if (add)
        for (int i = 0; i < tok->n_pair_mid; i++) tok_emit(&o, tok->pair_mid[i], alen, alen);
    size_t b0 = o.n;
    rc = tok->ops->encode(tok, b, blen, &o);
    if (rc < 0) return rc;
    if (spans)
        for (size_t i = b0; i < o.n && i < o.cap; i++) {
            spans[i].begin += alen;
            spans[i].end += alen;
        }
    if (add)
        for (int i = 0; i < sp->n_tail; i++) tok_emit(&o, sp->tail[i], alen + blen, alen + blen);
    if (o.n > INT_MAX) return TOK_ENOMEM;
    return (int)o.n;
}

tok_special_ids tok_specials(const tok_model *tok)
{
    return tok ? tok->specials : (tok_special_ids){ 0 };
}

int tok_word_start(const tok_model *tok, int32_t id)
{
    return tok && id >= 0 && tok->ops->word_start(tok, id);
}

/* -------------------------------------------------------------------- decode -- */

int tok_decode(const tok_model *tok, const int32_t *ids, int n, char *out, size_t cap)
{
    if (!tok || n < 0 || (n && !ids)) return TOK_EINVAL;
    return tok->ops->decode(tok, ids, n, out, cap);
}

/* transformers' clean_up_tokenization: each replacement over the whole text in turn.
 * Every one shortens, so it works in place; returns the new length. */
static size_t tok_cleanup(char *s, size_t n)
{
    static const char *const from[] = { " .",   " ?",  " !",  " ,",   " ' ",
                                        " n't", " 'm", " 's", " 've", " 're" };
    static const char *const to[] = { ".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re" };
    for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
        const size_t fl = strlen(from[k]), tl = strlen(to[k]);
        size_t r = 0, w = 0;
        while (r < n) {
            if (n - r >= fl && !memcmp(s + r, from[k], fl)) {
                memcpy(s + w, to[k], tl);
                w += tl;
                r += fl;
            } else {
                s[w++] = s[r++];
            }
        }
        n = w;
    }
    return n;
}

int tok_decode_flags(const tok_model *tok, const int32_t *ids, int n, int flags, char *out,
                     size_t cap)
{
    if (!(flags & TOK_DECODE_CLEANUP)) return tok_decode(tok, ids, n, out, cap);
    int len = tok_decode(tok, ids, n, NULL, 0);
    if (len < 0) return len;
    char *buf = malloc((size_t)len + 1);
    if (!buf) return TOK_ENOMEM;
    len = tok_decode(tok, ids, n, buf, (size_t)len + 1);
    if (len >= 0) {
        len = (int)tok_cleanup(buf, (size_t)len);
        if (out && cap) {
            size_t c = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
            memcpy(out, buf, c);
            out[c] = '\0';
        }
    }
    free(buf);
    return len;
}

/* ---------------------------------------------------------------- vocabulary -- */

int tok_vocab_size(const tok_model *tok) { return tok ? tok->vocab_size : 0; }
int tok_eos_id(const tok_model *tok) { return tok ? tok->eos_id : -1; }
int tok_pad_id(const tok_model *tok) { return tok ? tok->pad_id : -1; }
int tok_unk_id(const tok_model *tok) { return tok ? tok->unk_id : -1; }
int tok_bos_id(const tok_model *tok) { return tok ? tok->bos_id : -1; }

const char *tok_piece(const tok_model *tok, int32_t id)
{
    return tok && id >= 0 ? tok->ops->piece(tok, id) : NULL;
}

int tok_is_sentinel(const tok_model *tok, int32_t id)
{
    return tok && id <= tok->sentinel0 && id > tok->sentinel0 - tok->n_sentinels;
}

int tok_sentinel_id(const tok_model *tok, int n)
{
    return tok && n >= 0 && n < tok->n_sentinels ? tok->sentinel0 - n : -1;
}

/* Embedding rows past the tokenizer's ids that are taken for padding (and no more than
 * 1/64 of the vocabulary beyond that). */
#define TOK_PAD_ROWS_MAX 1024

int tok_max_id(const tok_model *tok)
{
    if (!tok) return -1;
    int m = tok->vocab_size - 1;
    const int32_t ids[] = { tok->eos_id, tok->pad_id, tok->unk_id, tok->bos_id };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i] > m) m = ids[i];
    if (tok->n_sentinels > 0 && tok->sentinel0 > m) m = tok->sentinel0;
    for (int i = 0; i < tok->specials.n_head; i++)
        if (tok->specials.head[i] > m) m = tok->specials.head[i];
    for (int i = 0; i < tok->specials.n_tail; i++)
        if (tok->specials.tail[i] > m) m = tok->specials.tail[i];
    for (int i = 0; i < tok->n_pair_mid; i++)
        if (tok->pair_mid[i] > m) m = tok->pair_mid[i];
    return m;
}

int tok_check_vocab(const tok_model *tok, int model_vocab, char *err, size_t errlen)
{
    int top = tok_max_id(tok);
    if (top >= model_vocab) {
        tok_seterr(err, errlen,
                   "the tokenizer does not fit the model: it has %d ids (0..%d) "
                   "but the model's vocabulary (config.json vocab_size) is %d: ids past %d "
                   "have no embedding row (another checkpoint's tokenizer?)",
                   top + 1, top, model_vocab, model_vocab - 1);
        return TOK_ERANGE;
    }
    /* A few rows past the tokenizer's ids are padding (T5: 32128 rows, 32100 ids; mT5
     * 250112 and 250100). Far more is another checkpoint's tokenizer: the model would
     * write ids it cannot decode (a 32k spiece.model beside a 250k-vocab mT5). */
    long gap = (long)model_vocab - (top + 1);
    if (gap > TOK_PAD_ROWS_MAX && gap > model_vocab / 64) {
        tok_seterr(err, errlen,
                   "the tokenizer does not fit the model: it has %d ids but the "
                   "model's vocabulary (config.json vocab_size) is %d: %ld rows more than "
                   "padding explains (another checkpoint's tokenizer?)",
                   top + 1, model_vocab, gap);
        return TOK_ERANGE;
    }
    return 0;
}

/* ----------------------------------------------------------------- languages -- */

int tok_n_langs(const tok_model *tok)
{
    const tok_langs *l = tok_fs_langs(tok);
    return l ? l->n : 0;
}

const char *tok_lang_code(const tok_model *tok, int i)
{
    const tok_langs *l = tok_fs_langs(tok);
    return l && i >= 0 && i < l->n ? l->codes[i] : NULL;
}

int32_t tok_lang_id(const tok_model *tok, const char *code)
{
    const tok_langs *l = tok_fs_langs(tok);
    if (!l || !code) return -1;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->codes[i], code)) return l->ids[i];
    /* M2M100 writes its codes __de__; HF's src_lang is "de". */
    size_t n = strlen(code);
    for (int i = 0; i < l->n; i++) {
        const char *c = l->codes[i];
        if (strlen(c) == n + 4 && !memcmp(c, "__", 2) && !memcmp(c + 2, code, n) &&
            !strcmp(c + 2 + n, "__"))
            return l->ids[i];
    }
    return -1;
}

int32_t tok_lang_default(const tok_model *tok, int target)
{
    const tok_langs *l = tok_fs_langs(tok);
    return l ? (target ? l->tgt_default : l->src_default) : -1;
}
