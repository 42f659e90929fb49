/* SentencePiece BPE behind engine/tok.h, and the fairseq convention that NLLB-200,
 * M2M100 and mBART-50 put around a SentencePiece model.
 *
 * BPE (tok_spmbpe_merge, what tok_spm_segment runs for a model of type BPE), bit-exact
 * with sentencepiece's bpe_model.cc Encode: the normalised text (tok_spm.c's normaliser,
 * the same as for unigram) is split into characters, a user-defined piece being one
 * frozen symbol (longest match); then, repeatedly, the adjacent pair whose concatenation
 * is a piece with the highest score is merged, leftmost on ties (a priority queue whose
 * stale entries are skipped by the library's size check); a merged UNUSED piece is split
 * back along the merge that made it. Symbols that are not pieces are unknown: a run of
 * them is one unk id, or byte pieces with byte fallback (tok_spm_emit, as for unigram).
 *
 * fairseq (tok_fs_open_dir, opened for a directory with sentencepiece.bpe.model and
 * tokenizer_config.json), as transformers' slow NllbTokenizer / M2M100Tokenizer /
 * MBart50Tokenizer / MBartTokenizer lay ids out:
 * - without vocab.json (NLLB, mBART): <s>=0 <pad>=1 </s>=2 <unk>=3, piece id = spm id + 1
 *   (the spm unk becomes 3), language code k at spm_size + 1 + k, <mask> last; ids pinned
 *   in tokenizer_config.json's added_tokens_decoder win;
 * - with vocab.json (M2M100): ids of pieces and specials from vocab.json (a piece it lacks
 *   is <unk>), language token k (`__de__`) at len(vocab) + k;
 * - the codes are additional_special_tokens, in order (special_tokens_map.json over
 *   tokenizer_config.json, as from_pretrained reads them; NLLB's built-in 202 otherwise);
 * - [lang] text </s>, or text </s> [lang] for NLLB's legacy_behaviour and MBartTokenizer;
 *   the language is the source one, or the target one for TOK_TARGET (tok.c);
 * - language codes and the special strings inside a text are their ids (the longest at
 *   the leftmost place; <mask> takes the whitespace before it), each chunk between them
 *   is encoded on its own;
 * - decode is decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
 *   specials, codes and unk dropped, NLLB joins the pieces (U+2581 -> ' '), the others
 *   run sentencepiece's decode; then stripped. transformers' cleanup (its decode()'s
 *   default) is the caller's choice: tok.c's TOK_DECODE_CLEANUP.
 *
 * Models are immutable after loading; encode and decode allocate per call. */
#include "engine/tok_spm_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "engine/langs.h"

static const char tok_bpe_ws[] = "\xe2\x96\x81"; /* U+2581 */

/* ------------------------------------------------------------------------- BPE -- */

struct bpe_sym {
    int32_t prev, next; /* -1 at the ends */
    uint32_t off, len;  /* bytes of the normalised text; len 0: merged away */
    uint8_t freeze;     /* a user-defined piece: never merged */
};

struct bpe_pair {
    float score;
    int32_t left, right;
    uint32_t size;
};

/* The agenda's order: higher score first, then the smaller left index. */
static inline int bpe_before(const struct bpe_pair *a, const struct bpe_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

struct bpe_heap {
    struct bpe_pair *p;
    size_t n, cap;
};

static int bpe_push(struct bpe_heap *h, struct bpe_pair x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct bpe_pair *p = realloc(h->p, cap * sizeof *p);
        if (!p) return -1;
        h->p = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i) {
        size_t up = (i - 1) / 2;
        if (!bpe_before(&x, &h->p[up])) break;
        h->p[i] = h->p[up];
        i = up;
    }
    h->p[i] = x;
    return 0;
}

static struct bpe_pair bpe_pop(struct bpe_heap *h)
{
    struct bpe_pair top = h->p[0], x = h->p[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bpe_before(&h->p[c + 1], &h->p[c])) c++;
        if (!bpe_before(&h->p[c], &x)) break;
        h->p[i] = h->p[c];
        i = c;
    }
    if (h->n) h->p[i] = x;
    return top;
}

struct bpe_state {
    const tok_spm *m;
    const char *s;
    struct bpe_sym *sym;
    struct bpe_heap agenda;
    /* The library's rev_merge: rev_left[id] - 1 is the length of the left part of a
     * merged UNUSED piece as last recorded (a later record for the same piece replaces
     * an earlier one); 0: none. [m->n], allocated at the first such merge. */
    uint32_t *rev_left;
};

/* MaybeAddNewSymbolPair. */
static int bpe_add_pair(struct bpe_state *st, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || st->sym[l].freeze || st->sym[r].freeze) return 0;
    uint32_t size = st->sym[l].len + st->sym[r].len;
    int32_t id = tok_spm_find(st->m, st->s + st->sym[l].off, size);
    if (id < 0) return 0;
    struct bpe_pair x = { st->m->pieces[id].score, l, r, size };
    if (bpe_push(&st->agenda, x) < 0) return -1;
    if (st->m->pieces[id].type == TOK_T_UNUSED) {
        if (!st->rev_left && !(st->rev_left = calloc((size_t)st->m->n, sizeof *st->rev_left)))
            return -1;
        st->rev_left[id] = st->sym[l].len + 1;
    }
    return 0;
}

/* The library's resegment: an UNUSED piece is replaced by the two it was merged from,
 * recursively; anything else is emitted (a symbol that is no piece as unk). The
 * library's PieceToId also looks at control, unknown and byte pieces first; a symbol
 * could only be one of those if such a piece were one character long. */
static void bpe_resegment(struct bpe_state *st, uint32_t off, uint32_t len, tok_out *o,
                          const size_t *n2o, size_t base, int *prev_unk)
{
    const tok_spm *m = st->m;
    int32_t id = tok_spm_find(m, st->s + off, len);
    if (id >= 0 && m->pieces[id].type == TOK_T_UNUSED && st->rev_left && st->rev_left[id] &&
        st->rev_left[id] - 1 < len) {
        uint32_t ll = st->rev_left[id] - 1;
        bpe_resegment(st, off, ll, o, n2o, base, prev_unk);
        bpe_resegment(st, off + ll, len - ll, o, n2o, base, prev_unk);
        return;
    }
    if (id < 0) id = m->unk_id;
    tok_spm_emit(m, o, id, (const unsigned char *)st->s, off, (size_t)off + len, n2o, base,
                 prev_unk);
}

int tok_spmbpe_merge(const tok_spm *m, const char *s, size_t n, tok_out *o, const size_t *n2o,
                     size_t base)
{
    if (!n) return 0;
    if (n >= (size_t)INT32_MAX / 4) return TOK_ENOMEM;
    struct bpe_state st = { .m = m, .s = s };
    st.sym = malloc(n * sizeof *st.sym);
    if (!st.sym) return TOK_ENOMEM;
    int rc = 0;

    /* Characters, a user-defined piece (longest match) as one frozen symbol. */
    const unsigned char *u = (const unsigned char *)s;
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t len = 0;
        int freeze = 0;
        if (m->has_user) {
            int32_t node = 0;
            for (size_t k = i; k < n; k++) {
                int32_t base_ = m->da[node].base;
                if (!base_) break;
                int32_t t = base_ + u[k];
                if (m->da[t].check != node) break;
                node = t;
                if (m->da[t].id <= -2) len = k + 1 - i;
            }
            freeze = len > 0;
        }
        if (!len) {
            len = tok_spm_charlen(u[i]);
            if (len > n - i) len = n - i;
        }
        st.sym[ns] = (struct bpe_sym){ ns - 1, -1, (uint32_t)i, (uint32_t)len, (uint8_t)freeze };
        if (ns) st.sym[ns - 1].next = ns;
        ns++;
        i += len;
    }

    /* The whole text at once, as the library does; or, when no merge can cross a word
     * start (m->bpe_by_word), word by word: a pair inside one word is ordered against
     * another pair of that word as it would be in the whole text. */
    int prev_unk = 0;
    for (int32_t ws = 0, we; ws < ns; ws = we) {
        we = ns;
        if (m->bpe_by_word) {
            we = ws + 1;
            while (we < ns && !(st.sym[we].len >= 3 && !memcmp(s + st.sym[we].off, tok_bpe_ws, 3)))
                we++;
        }
        st.sym[ws].prev = -1;
        st.sym[we - 1].next = -1;
        for (int32_t i = ws + 1; i < we; i++)
            if (bpe_add_pair(&st, i - 1, i) < 0) goto oom;

        while (st.agenda.n) {
            struct bpe_pair top = bpe_pop(&st.agenda);
            struct bpe_sym *l = &st.sym[top.left], *r = &st.sym[top.right];
            if (!l->len || !r->len || l->len + r->len != top.size) continue; /* stale */
            l->len += r->len;
            l->next = r->next;
            if (r->next >= 0) st.sym[r->next].prev = top.left;
            r->len = 0;
            if (bpe_add_pair(&st, l->prev, top.left) < 0 ||
                bpe_add_pair(&st, top.left, st.sym[top.left].next) < 0)
                goto oom;
        }

        for (int32_t i = ws; i >= 0; i = st.sym[i].next)
            bpe_resegment(&st, st.sym[i].off, st.sym[i].len, o, n2o, base, &prev_unk);
    }
    goto out;
oom:
    rc = TOK_ENOMEM;
out:
    free(st.sym);
    free(st.agenda.p);
    free(st.rev_left);
    return rc;
}

/* tok_ops.encode of a raw SentencePiece BPE model: the whole text is one segment (no
 * sentinels: those are T5's). */
static int spmbpe_encode(const tok_model *tok, const char *text, size_t len, tok_out *o)
{
    return tok_spm_segment((const tok_spm *)tok, text, len, o, 0);
}

const tok_ops tok_spmbpe_ops = {
    .encode = spmbpe_encode,
    .decode = tok_spm_decode,
    .piece = tok_spm_piece,
    .word_start = tok_spm_word_start,
    .free = tok_spm_free,
};

/* -------------------------------------------------------------------- fairseq -- */

enum fs_style {
    FS_NLLB,    /* NllbTokenizer: pieces joined on decode; legacy_behaviour */
    FS_M2M100,  /* M2M100Tokenizer: vocab.json, __xx__ codes */
    FS_MBART50, /* MBart50Tokenizer: [lang] text </s> */
    FS_MBART,   /* MBartTokenizer (cc25): text </s> [lang] */
};

/* A string in the text that is one id (specials and language codes). */
struct fs_special {
    const char *s; /* a static string, or a code in tok_fs.names */
    size_t len;
    int32_t id;
    int lstrip; /* takes the whitespace before it (<mask>) */
};

typedef struct tok_fs {
    tok_model base; /* first */
    tok_model *spm; /* the SentencePiece model; owns */
    int style;
    int offset;      /* spm id -> id without vocab.json */
    int32_t *spm2id; /* [spm n] with vocab.json, else NULL */
    int32_t *id2spm; /* [vocab_size] spm id of each id, -1: none */
    char **names;    /* [vocab_size] owned text of ids that are no spm piece */
    tok_langs langs;
    int32_t mask_id;
    struct fs_special *sp; /* [nsp] longest first within each first byte */
    int nsp;
    int16_t first[257]; /* sp[first[c] .. first[c + 1]) start with byte c */
} tok_fs;

static const tok_ops fs_ops;

const tok_langs *tok_fs_langs(const tok_model *tok)
{
    return tok && tok->ops == &fs_ops ? &((const tok_fs *)tok)->langs : NULL;
}

static void fs_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fs_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    cm_vfmt(err, errlen, fmt, ap);
    va_end(ap);
}

static inline int32_t fs_map(const tok_fs *t, int32_t spm_id)
{
    const tok_spm *m = (const tok_spm *)t->spm;
    if (t->spm2id) return t->spm2id[spm_id];
    return spm_id == m->unk_id ? t->base.unk_id : spm_id + t->offset;
}

/* Python's str.isspace for the character at s (n bytes left); its length, 0 if not. */
static size_t fs_pyspace(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F));
    if (n >= 2 && c == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n < 3) return 0;
    uint32_t cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    if (c < 0xE0 || c > 0xEF) return 0;
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return 3;
    return 0;
}

/* Length of text[0..len) without its trailing Python whitespace (valid UTF-8). */
static size_t fs_rstrip(const char *text, size_t len)
{
    while (len) {
        size_t b = len - 1;
        while (b && ((unsigned char)text[b] & 0xC0) == 0x80) b--;
        if (fs_pyspace((const unsigned char *)text + b, len - b) != len - b) break;
        len = b;
    }
    return len;
}

/* The special string starting at text[0..len), NULL if none. */
static const struct fs_special *fs_special_at(const tok_fs *t, const char *text, size_t len)
{
    unsigned char c = (unsigned char)text[0];
    for (int i = t->first[c]; i < t->first[c + 1]; i++)
        if (t->sp[i].len <= len && !memcmp(text, t->sp[i].s, t->sp[i].len)) return &t->sp[i];
    return NULL;
}

static int fs_chunk(const tok_fs *t, const char *text, size_t from, size_t to, tok_out *o)
{
    if (to <= from) return 0;
    size_t n0 = o->n;
    int rc = tok_spm_segment((const tok_spm *)t->spm, text + from, to - from, o, from);
    if (rc < 0) return rc;
    for (size_t i = n0; i < o->n && i < o->cap; i++) o->ids[i] = fs_map(t, o->ids[i]);
    return 0;
}

/* tok_ops.encode: special strings are their ids, the chunks between them encoded one by
 * one. */
static int fs_encode(const tok_model *tok, const char *text, size_t len, tok_out *o)
{
    const tok_fs *t = (const tok_fs *)tok;
    size_t seg = 0;
    for (size_t i = 0; i < len;) {
        const struct fs_special *sp = fs_special_at(t, text + i, len - i);
        if (!sp) {
            i++;
            continue;
        }
        size_t end = sp->lstrip ? seg + fs_rstrip(text + seg, i - seg) : i;
        int rc = fs_chunk(t, text, seg, end, o);
        if (rc < 0) return rc;
        tok_emit(o, sp->id, i, i + sp->len);
        i += sp->len;
        seg = i;
    }
    return fs_chunk(t, text, seg, len, o);
}

/* ---- decode ---- */

struct fs_buf {
    char *p;
    size_t n, cap;
};

static int fs_put(struct fs_buf *b, const char *s, size_t n)
{
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* tok_ops.decode */
static int fs_decode(const tok_model *tok, const int32_t *ids, int n, char *out, size_t cap)
{
    const tok_fs *t = (const tok_fs *)tok;
    const tok_spm *m = (const tok_spm *)t->spm;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->base.vocab_size) return TOK_ERANGE;
    struct fs_buf b = { 0 };
    int rc = 0;
    if (t->style == FS_NLLB) {
        /* convert_tokens_to_string: the pieces joined, U+2581 -> ' '. */
        for (int i = 0; i < n; i++) {
            int32_t s = t->id2spm[ids[i]];
            if (s < 0 || s == m->unk_id) continue;
            const char *p = m->strs + m->pieces[s].off;
            const char *e = p + m->pieces[s].len;
            while (p < e) {
                const char *w = memmem(p, (size_t)(e - p), tok_bpe_ws, 3);
                const char *stop = w ? w : e;
                if ((stop > p && fs_put(&b, p, (size_t)(stop - p)) < 0) ||
                    (w && fs_put(&b, " ", 1) < 0))
                    goto oom;
                if (!w) break;
                p = w + 3;
            }
        }
    } else {
        /* sentencepiece's decode of the pieces. */
        int32_t *sid = malloc(((size_t)n + 1) * sizeof *sid);
        if (!sid) goto oom;
        int k = 0;
        for (int i = 0; i < n; i++) {
            int32_t s = t->id2spm[ids[i]];
            if (s >= 0 && s != m->unk_id) sid[k++] = s;
        }
        int len = tok_spm_decode(t->spm, sid, k, NULL, 0);
        if (len >= 0 && (size_t)len + 1 > b.cap) {
            b.p = malloc((size_t)len + 1);
            b.cap = b.p ? (size_t)len + 1 : 0;
        }
        if (len >= 0 && b.p) len = tok_spm_decode(t->spm, sid, k, b.p, b.cap);
        free(sid);
        if (len < 0 || !b.p) goto oom;
        b.n = (size_t)len;
    }
    /* strip() */
    size_t lead = 0, l;
    while (lead < b.n && (l = fs_pyspace((unsigned char *)b.p + lead, b.n - lead))) lead += l;
    if (lead) {
        memmove(b.p, b.p + lead, b.n - lead);
        b.n -= lead;
    }
    b.n = b.n ? fs_rstrip(b.p, b.n) : 0;
    if (b.n > INT_MAX) goto oom;
    rc = (int)b.n;
    if (out && cap) {
        size_t k = b.n < cap - 1 ? b.n : cap - 1;
        if (k) memcpy(out, b.p, k);
        out[k] = '\0';
    }
    free(b.p);
    return rc;
oom:
    free(b.p);
    return TOK_ENOMEM;
}

/* ---- queries ---- */

static const char *fs_piece(const tok_model *tok, int32_t id)
{
    const tok_fs *t = (const tok_fs *)tok;
    if (id >= t->base.vocab_size) return NULL;
    if (t->names[id]) return t->names[id];
    int32_t s = t->id2spm[id];
    return s >= 0 ? tok_spm_piece(t->spm, s) : NULL;
}

static int fs_word_start(const tok_model *tok, int32_t id)
{
    const tok_fs *t = (const tok_fs *)tok;
    if (id >= t->base.vocab_size || t->names[id]) return 0;
    int32_t s = t->id2spm[id];
    return s >= 0 && tok_spm_word_start(t->spm, s);
}

static void fs_free(tok_model *tok)
{
    tok_fs *t = (tok_fs *)tok;
    if (!t) return;
    tok_free(&t->spm);
    free(t->spm2id);
    free(t->id2spm);
    if (t->names)
        for (int i = 0; i < t->base.vocab_size; i++) free(t->names[i]);
    free(t->names);
    free(t->langs.codes); /* the strings are names[] */
    free(t->langs.ids);
    free(t->sp);
    free(t);
}

static const tok_ops fs_ops = {
    .encode = fs_encode,
    .decode = fs_decode,
    .piece = fs_piece,
    .word_start = fs_word_start,
    .free = fs_free,
};

/* ---- loading ---- */

/* Largest tokenizer JSON read (NLLB's tokenizer.json, not read here, is 17 MB; vocab.json
 * of M2M100 4 MB). */
#define FS_MAX_JSON ((size_t)64 << 20)
#define FS_MAX_IDS (1 << 24)

/* cm_read_file of a regular file: a FIFO would block the load until some writer came. */
static int fs_read(const char *path, size_t max, char **buf, size_t *len)
{
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    if (!S_ISREG(st.st_mode)) return -EINVAL;
    return cm_read_file(path, max, buf, len);
}

static const char *fs_strerror(int rc)
{
    return rc == -EINVAL ? "not a regular file" : rc == -EFBIG ? "too large" : strerror(-rc);
}

/* Parses dir/name; NULL with *missing = 1 when the file is absent (and optional). */
static cJSON *fs_json(const char *dir, const char *name, int *missing, char *err, size_t errlen)
{
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/%s", dir, name);
    *missing = 0;
    if (k < 0 || (size_t)k >= sizeof path) {
        fs_seterr(err, errlen, "%s/%s: path too long", dir, name);
        return NULL;
    }
    char *buf;
    size_t len;
    int rc = fs_read(path, FS_MAX_JSON, &buf, &len);
    if (rc == -ENOENT) {
        *missing = 1;
        return NULL;
    }
    if (rc < 0) {
        fs_seterr(err, errlen, "%s: %s", path, fs_strerror(rc));
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j || !cJSON_IsObject(j)) {
        fs_seterr(err, errlen, "%s: not a JSON object (damaged or truncated)", path);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* A token in a special-tokens list: "x" or {"content": "x", ...}. */
static const char *fs_token_text(const cJSON *v)
{
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int fs_sp_cmp(const void *a, const void *b)
{
    const struct fs_special *x = a, *y = b;
    unsigned char cx = (unsigned char)x->s[0], cy = (unsigned char)y->s[0];
    if (cx != cy) return cx < cy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
    return 0;
}

/* The id of a language named `code` in the config (src_lang / tgt_lang), -1 if none. */
static int32_t fs_lang_by_name(const tok_fs *t, const char *code)
{
    if (!code) return -1;
    for (int i = 0; i < t->langs.n; i++)
        if (!strcmp(t->langs.codes[i], code)) return t->langs.ids[i];
    if (t->style == FS_M2M100) {
        char w[64];
        snprintf(w, sizeof w, "__%s__", code);
        for (int i = 0; i < t->langs.n; i++)
            if (!strcmp(t->langs.codes[i], w)) return t->langs.ids[i];
    }
    return -1;
}

static const char *fs_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Names id `id` as `text` (a special or a language code). */
static int fs_name(tok_fs *t, int32_t id, const char *text, char *err, size_t errlen,
                   const char *where)
{
    if (id < 0 || id >= t->base.vocab_size || t->names[id] || t->id2spm[id] >= 0) {
        fs_seterr(err, errlen, "%s: id %d of '%s' is taken or outside the vocabulary", where,
                  (int)id, text);
        return -1;
    }
    t->names[id] = strdup(text);
    if (!t->names[id]) {
        fs_seterr(err, errlen, "out of memory");
        return -1;
    }
    t->id2spm[id] = -1;
    return 0;
}

tok_model *tok_fs_open_dir(const char *dir, char *err, size_t errlen)
{
    char path[4096], why[512] = "";
    cJSON *cfg = NULL, *stm = NULL, *voc = NULL;
    tok_fs *t = NULL;
    int missing;
    const cJSON *codes = NULL;
    int ncodes = 0;

    int k = snprintf(path, sizeof path, "%s/sentencepiece.bpe.model", dir);
    if (k < 0 || (size_t)k >= sizeof path) {
        fs_seterr(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    cfg = fs_json(dir, "tokenizer_config.json", &missing, err, errlen);
    if (!cfg) {
        if (missing) fs_seterr(err, errlen, "%s/tokenizer_config.json: missing", dir);
        return NULL;
    }
    stm = fs_json(dir, "special_tokens_map.json", &missing, err, errlen);
    if (!stm && !missing) goto fail_quiet;
    voc = fs_json(dir, "vocab.json", &missing, err, errlen);
    if (!voc && !missing) goto fail_quiet;

    t = calloc(1, sizeof *t);
    if (!t) goto oom;
    char *buf;
    size_t len;
    int rc = fs_read(path, (size_t)1 << 30, &buf, &len);
    if (rc < 0) {
        fs_seterr(err, errlen, "%s: %s", path, fs_strerror(rc));
        goto fail_quiet;
    }
    t->spm = tok_spm_load_mem(buf, len, why, sizeof why);
    free(buf);
    if (!t->spm) {
        fs_seterr(err, errlen, "%s: %s", path, why);
        goto fail_quiet;
    }
    const tok_spm *m = (const tok_spm *)t->spm;

    /* Other classes ship sentencepiece.bpe.model too (XLM-R, with no language codes and
     * <s> before the text): refused rather than given NLLB's layout. Without a class,
     * vocab.json says M2M100, else NLLB. */
    const char *cls = fs_str(cfg, "tokenizer_class");
    if (cls && !strncmp(cls, "M2M100", 6)) t->style = FS_M2M100;
    else if (cls && !strncmp(cls, "MBart50", 7)) t->style = FS_MBART50;
    else if (cls && !strncmp(cls, "MBartTokenizer", 14)) t->style = FS_MBART;
    else if (cls && !strncmp(cls, "Nllb", 4)) t->style = FS_NLLB;
    else if (cls) {
        fs_seterr(err, errlen,
                  "%s/tokenizer_config.json: tokenizer_class '%.64s' is not one "
                  "of NLLB, M2M100, mBART-50 or mBART",
                  dir, cls);
        goto fail_quiet;
    } else {
        t->style = voc ? FS_M2M100 : FS_NLLB;
    }
    if (t->style == FS_M2M100 && !voc) {
        fs_seterr(err, errlen, "%s/vocab.json: missing (an M2M100 tokenizer needs it)", dir);
        goto fail_quiet;
    }
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(cfg, "legacy_behaviour");
    t->langs.legacy = t->style == FS_MBART || (t->style == FS_NLLB && cJSON_IsTrue(lb));

    /* The language codes: special_tokens_map.json's list over tokenizer_config.json's. */
    const cJSON *a =
        stm ? cJSON_GetObjectItemCaseSensitive(stm, "additional_special_tokens") : NULL;
    if (!cJSON_IsArray(a)) a = cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens");
    if (cJSON_IsArray(a)) {
        codes = a;
        ncodes = cJSON_GetArraySize(a);
    } else if (t->style == FS_NLLB) {
        ncodes = lang_nllb_count(); /* NllbTokenizer's FAIRSEQ_LANGUAGE_CODES */
    } else {
        fs_seterr(err, errlen,
                  "%s: no additional_special_tokens (language codes) in "
                  "special_tokens_map.json or tokenizer_config.json",
                  dir);
        goto fail_quiet;
    }
    if (ncodes > 4096) {
        fs_seterr(err, errlen, "%s: %d language codes (at most 4096)", dir, ncodes);
        goto fail_quiet;
    }

    /* The id layout. */
    int32_t first_code;
    int nvoc = 0;
    if (voc) {
        int32_t maxid = -1;
        const cJSON *e;
        cJSON_ArrayForEach (e, voc) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= FS_MAX_IDS ||
                e->valuedouble != (double)(int32_t)e->valuedouble) {
                fs_seterr(err, errlen, "%s/vocab.json: '%s' has no valid id", dir, e->string);
                goto fail_quiet;
            }
            if (e->valueint > maxid) maxid = e->valueint;
            nvoc++;
        }
        first_code = nvoc;
        t->base.vocab_size = maxid + 1 > nvoc + ncodes ? maxid + 1 : nvoc + ncodes;
    } else {
        t->offset = 1;
        first_code = m->n + t->offset;
        t->base.vocab_size = first_code + ncodes + 1; /* <mask> last */
    }
    t->id2spm = malloc((size_t)t->base.vocab_size * sizeof *t->id2spm);
    t->names = calloc((size_t)t->base.vocab_size, sizeof *t->names);
    t->langs.codes = calloc((size_t)ncodes + 1, sizeof *t->langs.codes);
    t->langs.ids = calloc((size_t)ncodes + 1, sizeof *t->langs.ids);
    if (!t->id2spm || !t->names || !t->langs.codes || !t->langs.ids) goto oom;
    for (int i = 0; i < t->base.vocab_size; i++) t->id2spm[i] = -1;
    snprintf(why, sizeof why, "%s/tokenizer_config.json", dir);

    if (voc) {
        t->spm2id = malloc((size_t)m->n * sizeof *t->spm2id);
        if (!t->spm2id) goto oom;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(voc, "<unk>");
        int32_t unk = cJSON_IsNumber(u) ? u->valueint : -1;
        if (unk < 0) {
            fs_seterr(err, errlen, "%s/vocab.json: no <unk>", dir);
            goto fail_quiet;
        }
        for (int i = 0; i < m->n; i++) t->spm2id[i] = unk;
        const cJSON *e;
        cJSON_ArrayForEach (e, voc) {
            int32_t id = e->valueint;
            int32_t s = e->string ? tok_spm_find(m, e->string, strlen(e->string)) : -1;
            if (s >= 0) {
                t->spm2id[s] = id;
                t->id2spm[id] = s;
            } else if (e->string && !t->names[id] && !(t->names[id] = strdup(e->string))) {
                goto oom;
            }
        }
        const char *nm[4] = { "<s>", "<pad>", "</s>", "<unk>" };
        int32_t *dst[4] = { &t->base.bos_id, &t->base.pad_id, &t->base.eos_id, &t->base.unk_id };
        for (int i = 0; i < 4; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(voc, nm[i]);
            *dst[i] = cJSON_IsNumber(v) ? v->valueint : -1;
        }
        t->mask_id = -1;
    } else {
        for (int i = 0; i < m->n; i++)
            if (i != m->unk_id && i + t->offset > 3) t->id2spm[i + t->offset] = i;
        const char *nm[4] = { "<s>", "<pad>", "</s>", "<unk>" };
        for (int i = 0; i < 4; i++)
            if (fs_name(t, i, nm[i], err, errlen, why) < 0) goto fail_quiet;
        t->base.bos_id = 0;
        t->base.pad_id = 1;
        t->base.eos_id = 2;
        t->base.unk_id = 3;
        t->mask_id = first_code + ncodes;
    }
    t->base.n_sentinels = 0;
    t->base.sentinel0 = -1;

    /* Pinned ids (added_tokens_decoder of a checkpoint's tokenizer_config.json). */
    const cJSON *pins = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    for (int i = 0; i < ncodes; i++) {
        const char *c = codes ? fs_token_text(cJSON_GetArrayItem(codes, i)) : lang_nllb_code(i);
        if (!c || !*c) {
            fs_seterr(err, errlen, "%s: language code %d is not a string", dir, i);
            goto fail_quiet;
        }
        int32_t id = first_code + i;
        const cJSON *p;
        cJSON_ArrayForEach (p, pins) {
            const char *pc = fs_token_text(p);
            long long v;
            if (pc && !strcmp(pc, c) && p->string &&
                cm_parse_ll(p->string, 0, t->base.vocab_size - 1, &v) == 0)
                id = (int32_t)v;
        }
        if (fs_name(t, id, c, err, errlen, why) < 0) goto fail_quiet;
        t->langs.codes[i] = t->names[id];
        t->langs.ids[i] = id;
    }
    t->langs.n = ncodes;
    if (t->mask_id >= 0) {
        const cJSON *p;
        cJSON_ArrayForEach (p, pins) {
            const char *pc = fs_token_text(p);
            long long v;
            if (pc && !strcmp(pc, "<mask>") && p->string &&
                cm_parse_ll(p->string, 0, t->base.vocab_size - 1, &v) == 0)
                t->mask_id = (int32_t)v;
        }
        if (fs_name(t, t->mask_id, "<mask>", err, errlen, why) < 0) goto fail_quiet;
    }
    t->langs.eos_id = t->base.eos_id;
    if (t->base.eos_id < 0 || t->base.unk_id < 0) {
        fs_seterr(err, errlen, "%s: no </s> or <unk> id", dir);
        goto fail_quiet;
    }

    /* Strings that are one id inside a text. */
    t->sp = calloc((size_t)ncodes + 5, sizeof *t->sp);
    if (!t->sp) goto oom;
    {
        const char *nm[5] = { "<s>", "<pad>", "</s>", "<unk>", "<mask>" };
        int32_t id5[5] = { t->base.bos_id, t->base.pad_id, t->base.eos_id, t->base.unk_id,
                           t->mask_id };
        for (int i = 0; i < 5; i++)
            if (id5[i] >= 0)
                t->sp[t->nsp++] = (struct fs_special){ nm[i], strlen(nm[i]), id5[i], i == 4 };
        for (int i = 0; i < ncodes; i++)
            t->sp[t->nsp++] = (struct fs_special){ t->langs.codes[i], strlen(t->langs.codes[i]),
                                                   t->langs.ids[i], 0 };
        qsort(t->sp, (size_t)t->nsp, sizeof *t->sp, fs_sp_cmp);
        int j = 0;
        for (int c = 0; c <= 256; c++) {
            while (j < t->nsp && (unsigned char)t->sp[j].s[0] < c) j++;
            t->first[c] = (int16_t)j;
        }
    }

    /* Default languages: the config's, else what the tokenizer class assumes. */
    const char *dflt = t->style == FS_NLLB ? "eng_Latn" : t->style == FS_M2M100 ? "en" : "en_XX";
    const char *src = fs_str(cfg, "src_lang");
    t->langs.src_default = fs_lang_by_name(t, src ? src : dflt);
    t->langs.tgt_default = fs_lang_by_name(t, fs_str(cfg, "tgt_lang"));

    t->base.ops = &fs_ops;
    t->base.kind = t->style == FS_NLLB     ? "sentencepiece-bpe-nllb"
                   : t->style == FS_M2M100 ? "sentencepiece-bpe-m2m100"
                                           : "sentencepiece-bpe-mbart";
    tok_special_ids *sp = &t->base.specials;
    int32_t l = t->langs.src_default;
    if (!t->langs.legacy && l >= 0) sp->head[sp->n_head++] = l;
    sp->tail[sp->n_tail++] = t->base.eos_id;
    if (t->langs.legacy && l >= 0) sp->tail[sp->n_tail++] = l;

    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    cJSON_Delete(voc);
    return &t->base;

oom:
    fs_seterr(err, errlen, "out of memory");
fail_quiet:
    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    cJSON_Delete(voc);
    fs_free((tok_model *)t);
    return NULL;
}
