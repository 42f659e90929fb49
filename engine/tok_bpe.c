/* Byte-level BPE behind engine/tok.h (BART, RoBERTa, GPT-2: `vocab.json` +
 * `merges.txt` in a model directory), id for id with transformers' slow BartTokenizer /
 * RobertaTokenizer / GPT2Tokenizer.
 *
 * Encoding (bpe_encode):
 *   1. the special-token strings (<s> </s> <unk> <pad> <mask>) are cut out of the text
 *      first and become their ids; `<mask>` takes the whitespace before it (HF's
 *      AddedToken lstrip: Python's rstrip of the text before it);
 *   2. every other chunk is split by the GPT-2 pattern
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      written out by hand (bpe_pretok; \s is Unicode White_Space as the `regex` module
 *      has it, \p{L} / \p{N} come from engine/tok_unicode.c);
 *   3. each piece's bytes become symbols (the byte-to-unicode map's characters) that
 *      merge by rank: the lowest-ranked pair anywhere, every occurrence left to right, as
 *      the Python loop does, but with a heap over (rank, position) so a long word costs
 *      n log n, not n^2; a merged symbol not in vocab.json gives <unk>.
 * Spans are the bytes each token covers; a token that ends inside a character ends at
 * the character's start (the character belongs to the token holding its last byte).
 *
 * Decoding: special ids are skipped (skip_special_tokens), the tokens' characters map
 * back to bytes, which are read as UTF-8 with Python's errors='replace' (one U+FFFD per
 * maximal invalid subsequence).
 *
 * The model is read-only after loading: share it between threads. Each encode call takes
 * its working memory from the heap, sized to its longest word. */
#include "engine/tok_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/tok_unicode.h"

/* Refused rather than read: GPT-2's files are 1 MB and 0.5 MB. */
#define BPE_MAX_FILE ((size_t)256 << 20)
/* Ids above this in vocab.json are refused (the table is allocated up to the highest). */
#define BPE_MAX_ID (1 << 24)

/* The five special tokens of BART/RoBERTa, in HF's all_special_tokens roles. */
enum { BPE_BOS, BPE_EOS, BPE_UNK, BPE_PAD, BPE_MASK, BPE_NSPECIAL };
static const char *const bpe_special_str[BPE_NSPECIAL] = { "<s>", "</s>", "<unk>", "<pad>",
                                                           "<mask>" };

/* A merge: the pair (a, b) of symbols becomes symbol `to`, at `rank` (its line). */
struct bpe_merge {
    int32_t a, b, to;
    uint32_t rank;
};

typedef struct tok_bpe {
    tok_model base; /* first: a tok_model * points here */
    /* Symbols: ids 0 .. n_vocab - 1 are vocab.json's (holes have off == UINT32_MAX),
     * then strings merges.txt names that vocab.json lacks. */
    int32_t n_vocab, n_sym;
    uint32_t *sym_off, *sym_len; /* [n_sym] into strs (the byte-level form, "Ġworld") */
    char *strs;
    size_t strs_len, strs_cap;
    /* Raw bytes of each vocab token ("Ġworld" -> " world"), for decoding. */
    uint32_t *raw_off, *raw_len; /* [n_vocab] into raw */
    char *raw;
    uint8_t *is_special; /* [n_vocab] skipped by decode */
    /* string -> symbol: open addressing, slot = symbol + 1, 0 empty */
    uint32_t *smap;
    size_t smap_mask;
    /* (a, b) -> merge: open addressing, slot = merge index + 1 */
    struct bpe_merge *merges;
    size_t n_merges;
    uint32_t *mmap;
    size_t mmap_mask;
    int32_t byte_sym[256];         /* the symbol of each byte alone */
    int32_t special[BPE_NSPECIAL]; /* ids, -1 when vocab.json lacks the string */
} tok_bpe;

static void bpe_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bpe_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    cm_vfmt(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------- unicode -- */

/* The code point at s (valid UTF-8, checked by tok.c) and its length. */
static inline uint32_t bpe_cp(const unsigned char *s, size_t *len)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        *len = 3;
        return (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *len = 4;
    return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
           (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* \s of the `regex` module: the Unicode White_Space property. */
static inline int bpe_is_ws(uint32_t c)
{
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.isspace (what rstrip() removes): White_Space plus U+001C..U+001F. */
static inline int bpe_is_pyspace(uint32_t c) { return bpe_is_ws(c) || (c >= 0x1C && c <= 0x1F); }

enum { BPE_C_WS = 3 };

/* The class of the character at s: TOK_UNI_LETTER, TOK_UNI_NUMBER, BPE_C_WS or
 * TOK_UNI_OTHER; *len its byte length. */
static inline int bpe_class(const unsigned char *s, size_t *len)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return TOK_UNI_LETTER;
        if (c >= '0' && c <= '9') return TOK_UNI_NUMBER;
        if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return BPE_C_WS;
        return TOK_UNI_OTHER;
    }
    uint32_t cp = bpe_cp(s, len);
    if (bpe_is_ws(cp)) return BPE_C_WS;
    return tok_uni_class(cp);
}

/* The end of the GPT-2 pattern's match at s[i] (i < n): the first alternative that
 * matches, as the regex engine tries them. */
static size_t bpe_pretok(const unsigned char *s, size_t n, size_t i)
{
    size_t l;
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l'))
                return i + 3;
        }
    }
    /* " ?X+" for X = letters, numbers, neither-nor-space: the optional space is a plain
     * ' ' and only counts when the class follows it. */
    size_t j = i + (s[i] == ' ' && i + 1 < n);
    int k = bpe_class(s + j, &l);
    if (j > i && k == BPE_C_WS) {
        j = i;
        k = BPE_C_WS;
    }
    if (k != BPE_C_WS) {
        size_t e = j + l;
        while (e < n) {
            int k2 = bpe_class(s + e, &l);
            if (k2 != k) break;
            e += l;
        }
        return e;
    }
    /* Whitespace: \s+(?!\S) takes the run up to the end of the text, or all but its
     * last character when something else follows; a run of one before a non-space is
     * \s+ alone. */
    size_t e = i, last = i;
    while (e < n && bpe_class(s + e, &l) == BPE_C_WS) {
        last = e;
        e += l;
    }
    if (e == n || last == i) return e;
    return last;
}

/* ------------------------------------------------------------------- hashing -- */

static inline uint64_t bpe_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static inline uint64_t bpe_hash2(int32_t a, int32_t b)
{
    uint64_t h = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 31);
}

/* The symbol spelled s[0..n), -1 if none. */
static int32_t bpe_sym_find(const tok_bpe *m, const char *s, size_t n)
{
    for (size_t i = bpe_hash(s, n) & m->smap_mask;; i = (i + 1) & m->smap_mask) {
        uint32_t v = m->smap[i];
        if (!v) return -1;
        int32_t id = (int32_t)v - 1;
        if (m->sym_len[id] == n && !memcmp(m->strs + m->sym_off[id], s, n)) return id;
    }
}

/* The merge of (a, b), NULL if there is none. */
static const struct bpe_merge *bpe_merge_find(const tok_bpe *m, int32_t a, int32_t b)
{
    if (!m->mmap) return NULL;
    for (size_t i = bpe_hash2(a, b) & m->mmap_mask;; i = (i + 1) & m->mmap_mask) {
        uint32_t v = m->mmap[i];
        if (!v) return NULL;
        const struct bpe_merge *g = &m->merges[v - 1];
        if (g->a == a && g->b == b) return g;
    }
}

/* ------------------------------------------------------------------------ BPE -- */

/* A candidate merge at position pos (the left symbol; right is the next one then). */
struct bpe_cand {
    uint32_t rank;
    int32_t pos, rpos;
    int32_t lsym, rsym, to;
};

static inline int bpe_cand_less(const struct bpe_cand *x, const struct bpe_cand *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

/* Working memory of one encode call, grown to its longest word. */
struct bpe_work {
    int32_t *sym, *next, *prev;   /* [cap] per byte position: symbol, neighbours */
    struct bpe_cand *heap, *pend; /* [3 * cap], [2 * cap] */
    size_t cap, nheap, npend;
};

static int bpe_work_grow(struct bpe_work *w, size_t n)
{
    if (n <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    if (cap > SIZE_MAX / (3 * sizeof(struct bpe_cand))) return -1;
    int32_t *a = realloc(w->sym, cap * sizeof *a);
    if (!a) return -1;
    w->sym = a;
    a = realloc(w->next, cap * sizeof *a);
    if (!a) return -1;
    w->next = a;
    a = realloc(w->prev, cap * sizeof *a);
    if (!a) return -1;
    w->prev = a;
    struct bpe_cand *c = realloc(w->heap, 3 * cap * sizeof *c);
    if (!c) return -1;
    w->heap = c;
    c = realloc(w->pend, 2 * cap * sizeof *c);
    if (!c) return -1;
    w->pend = c;
    w->cap = cap;
    return 0;
}

static void bpe_heap_push(struct bpe_work *w, struct bpe_cand c)
{
    size_t i = w->nheap++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!bpe_cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static struct bpe_cand bpe_heap_pop(struct bpe_work *w)
{
    struct bpe_cand top = w->heap[0], last = w->heap[--w->nheap];
    size_t i = 0, n = w->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bpe_cand_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bpe_cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Queues the pair at l (if l and its right neighbour have a merge) into the pending
 * list; they join the heap when the current rank is done. */
static void bpe_pend(const tok_bpe *m, struct bpe_work *w, int32_t l)
{
    if (l < 0) return;
    int32_t r = w->next[l];
    if (r < 0) return;
    const struct bpe_merge *g = bpe_merge_find(m, w->sym[l], w->sym[r]);
    if (g) w->pend[w->npend++] = (struct bpe_cand){ g->rank, l, r, g->a, g->b, g->to };
}

/* Start of the character holding byte i of s[0..n) (i == n: n). */
static inline size_t bpe_char_floor(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && i > 0 && (s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* BPE over the word s[0..n) (n >= 1), which starts at byte `at` of the text t[0..tn);
 * emits its tokens. */
static int bpe_word(const tok_bpe *m, struct bpe_work *w, const unsigned char *s, size_t n,
                    tok_out *o, const unsigned char *t, size_t tn, size_t at)
{
    if (n > INT32_MAX / 2 || bpe_work_grow(w, n) < 0) return TOK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = m->byte_sym[s[i]];
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        w->prev[i] = (int32_t)i - 1;
    }
    w->nheap = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const struct bpe_merge *g = bpe_merge_find(m, w->sym[i], w->sym[i + 1]);
        if (g)
            bpe_heap_push(
                w, (struct bpe_cand){ g->rank, (int32_t)i, (int32_t)i + 1, g->a, g->b, g->to });
    }
    while (w->nheap) {
        /* Every occurrence of the lowest rank, left to right; pairs the merges make
         * wait until the rank is done (Python's loop rescans only then). */
        uint32_t rank = w->heap[0].rank;
        w->npend = 0;
        while (w->nheap && w->heap[0].rank == rank) {
            struct bpe_cand c = bpe_heap_pop(w);
            if (w->sym[c.pos] != c.lsym || w->next[c.pos] != c.rpos || w->sym[c.rpos] != c.rsym)
                continue;
            int32_t r = c.rpos, nx = w->next[r];
            w->sym[c.pos] = c.to;
            w->sym[r] = -1;
            w->next[c.pos] = nx;
            if (nx >= 0) w->prev[nx] = c.pos;
            bpe_pend(m, w, w->prev[c.pos]);
            bpe_pend(m, w, c.pos);
        }
        for (size_t k = 0; k < w->npend; k++) bpe_heap_push(w, w->pend[k]);
    }
    for (int32_t p = 0; p >= 0; p = w->next[p]) {
        int32_t sym = w->sym[p];
        size_t e = w->next[p] >= 0 ? (size_t)w->next[p] : n;
        int32_t id = sym < m->n_vocab && m->sym_off[sym] != UINT32_MAX ? sym : m->special[BPE_UNK];
        tok_emit(o, id, bpe_char_floor(t, tn, at + (size_t)p), bpe_char_floor(t, tn, at + e));
    }
    return 0;
}

/* Pre-tokenizes and merges the chunk t[b..e) of the text t[0..tn). */
static int bpe_chunk(const tok_bpe *m, struct bpe_work *w, const unsigned char *t, size_t tn,
                     size_t b, size_t e, tok_out *o)
{
    size_t i = b;
    while (i < e) {
        size_t j = bpe_pretok(t, e, i);
        int rc = bpe_word(m, w, t + i, j - i, o, t, tn, i);
        if (rc < 0) return rc;
        i = j;
    }
    return 0;
}

/* The special token starting at s[0..n), its length (0: none) and role in *k. */
static size_t bpe_special_at(const tok_bpe *m, const char *s, size_t n, int *k)
{
    for (int i = 0; i < BPE_NSPECIAL; i++) {
        if (m->special[i] < 0) continue;
        size_t l = strlen(bpe_special_str[i]);
        if (l <= n && !memcmp(s, bpe_special_str[i], l)) {
            *k = i;
            return l;
        }
    }
    return 0;
}

/* The end of t[b..e) without trailing Python whitespace. */
static size_t bpe_rstrip(const unsigned char *t, size_t b, size_t e)
{
    while (e > b) {
        size_t s = e - 1;
        while (s > b && (t[s] & 0xC0) == 0x80) s--;
        size_t l;
        if (!bpe_is_pyspace(bpe_cp(t + s, &l))) break;
        e = s;
    }
    return e;
}

/* tok_ops.encode */
static int bpe_encode(const tok_model *base, const char *text, size_t len, tok_out *o)
{
    const tok_bpe *m = (const tok_bpe *)base;
    const unsigned char *t = (const unsigned char *)text;
    struct bpe_work w = { 0 };
    int rc = 0;
    size_t seg = 0, i = 0;
    while (i < len) {
        const char *lt = memchr(text + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - text);
        int k;
        size_t sl = bpe_special_at(m, lt, len - i, &k);
        if (!sl) {
            i++;
            continue;
        }
        size_t end = k == BPE_MASK ? bpe_rstrip(t, seg, i) : i;
        rc = bpe_chunk(m, &w, t, len, seg, end, o);
        if (rc < 0) goto out;
        tok_emit(o, m->special[k], end, i + sl);
        i += sl;
        seg = i;
    }
    rc = bpe_chunk(m, &w, t, len, seg, len, o);
out:
    free(w.sym);
    free(w.next);
    free(w.prev);
    free(w.heap);
    free(w.pend);
    return rc;
}

/* --------------------------------------------------------------------- decode -- */

struct bpe_sink {
    char *out;
    size_t cap, n;
    unsigned char pend[4];
    size_t np, need;
};

static void bpe_put(struct bpe_sink *k, const void *s, size_t len)
{
    if (k->cap && k->n < k->cap - 1) {
        size_t room = k->cap - 1 - k->n;
        memcpy(k->out + k->n, s, len < room ? len : room);
    }
    k->n += len;
}

/* Feeds one byte to a UTF-8 reader with Python's errors='replace': a sequence that
 * cannot be completed becomes one U+FFFD, and the byte that broke it starts afresh. */
static void bpe_byte(struct bpe_sink *k, unsigned char b)
{
    if (k->np) {
        unsigned lo = 0x80, hi = 0xBF;
        if (k->np == 1) {
            if (k->pend[0] == 0xE0) lo = 0xA0;
            else if (k->pend[0] == 0xED) hi = 0x9F;
            else if (k->pend[0] == 0xF0) lo = 0x90;
            else if (k->pend[0] == 0xF4) hi = 0x8F;
        }
        if (b >= lo && b <= hi) {
            k->pend[k->np++] = b;
            if (k->np == k->need) {
                bpe_put(k, k->pend, k->np);
                k->np = 0;
            }
            return;
        }
        bpe_put(k, "\xEF\xBF\xBD", 3);
        k->np = 0;
    }
    if (b < 0x80) {
        bpe_put(k, &b, 1);
    } else if (b >= 0xC2 && b <= 0xF4) {
        k->pend[0] = b;
        k->np = 1;
        k->need = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    } else {
        bpe_put(k, "\xEF\xBF\xBD", 3);
    }
}

/* tok_ops.decode: transformers' decode(ids, skip_special_tokens=True) before its
 * clean-up (tok.c does that on TOK_DECODE_CLEANUP). */
static int bpe_decode(const tok_model *base, const int32_t *ids, int n, char *out, size_t cap)
{
    const tok_bpe *m = (const tok_bpe *)base;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->n_vocab || m->sym_off[ids[i]] == UINT32_MAX)
            return TOK_ERANGE;
    struct bpe_sink k = { out, out ? cap : 0, 0, { 0 }, 0, 0 };
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (m->is_special[id]) continue;
        const unsigned char *r = (const unsigned char *)m->raw + m->raw_off[id];
        for (uint32_t j = 0; j < m->raw_len[id]; j++) bpe_byte(&k, r[j]);
    }
    if (k.np) bpe_put(&k, "\xEF\xBF\xBD", 3);
    if (k.cap) k.out[k.n < k.cap ? k.n : k.cap - 1] = '\0';
    if (k.n > INT_MAX) return TOK_ENOMEM;
    return (int)k.n;
}

/* ---------------------------------------------------------------------- query -- */

/* tok_ops.piece: the token as vocab.json spells it ("Ġworld"). */
static const char *bpe_piece(const tok_model *base, int32_t id)
{
    const tok_bpe *m = (const tok_bpe *)base;
    if (id >= m->n_vocab || m->sym_off[id] == UINT32_MAX) return NULL;
    return m->strs + m->sym_off[id];
}

/* tok_ops.word_start: a token that begins with whitespace (the space a word carries,
 * a newline). Specials never. */
static int bpe_word_start(const tok_model *base, int32_t id)
{
    const tok_bpe *m = (const tok_bpe *)base;
    if (id >= m->n_vocab || m->sym_off[id] == UINT32_MAX || m->is_special[id]) return 0;
    if (!m->raw_len[id]) return 0;
    unsigned char c = (unsigned char)m->raw[m->raw_off[id]];
    return c == ' ' || (c >= 0x09 && c <= 0x0D);
}

/* ----------------------------------------------------------------------- load -- */

static void bpe_free(tok_model *base)
{
    tok_bpe *m = (tok_bpe *)base;
    if (!m) return;
    free(m->sym_off);
    free(m->sym_len);
    free(m->strs);
    free(m->raw_off);
    free(m->raw_len);
    free(m->raw);
    free(m->is_special);
    free(m->smap);
    free(m->merges);
    free(m->mmap);
    free(m);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others
 * (controls, space, 0x7F-0xA0, 0xAD) for 256, 257, ... in byte order. */
static uint32_t bpe_byte_cp(int b)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (printable) return (uint32_t)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) k++;
    return 256u + (uint32_t)k;
}

static size_t bpe_utf8_put(char *p, uint32_t c)
{
    if (c < 0x80) {
        p[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        p[0] = (char)(0xC0 | c >> 6);
        p[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    p[0] = (char)(0xE0 | c >> 12);
    p[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    p[2] = (char)(0x80 | (c & 0x3F));
    return 3;
}

/* Appends a string to the arena; its offset in *off. */
static int bpe_str_add(tok_bpe *m, const char *s, size_t n, uint32_t *off)
{
    if (m->strs_cap - m->strs_len < n + 1) {
        size_t cap = m->strs_cap ? m->strs_cap : 1 << 16;
        while (cap - m->strs_len < n + 1) cap *= 2;
        if (cap > UINT32_MAX - 1) return -1;
        char *p = realloc(m->strs, cap);
        if (!p) return -1;
        m->strs = p;
        m->strs_cap = cap;
    }
    memcpy(m->strs + m->strs_len, s, n);
    m->strs[m->strs_len + n] = '\0';
    *off = (uint32_t)m->strs_len;
    m->strs_len += n + 1;
    return 0;
}

/* Puts symbol id in the string map (a later string replaces an equal earlier one, as a
 * Python dict does). */
static void bpe_smap_put(tok_bpe *m, int32_t id)
{
    const char *s = m->strs + m->sym_off[id];
    size_t n = m->sym_len[id];
    for (size_t i = bpe_hash(s, n) & m->smap_mask;; i = (i + 1) & m->smap_mask) {
        uint32_t v = m->smap[i];
        if (!v || (m->sym_len[v - 1] == n && !memcmp(m->strs + m->sym_off[v - 1], s, n))) {
            m->smap[i] = (uint32_t)id + 1;
            return;
        }
    }
}

static size_t bpe_pow2(size_t n)
{
    size_t c = 1024;
    while (c < 2 * n) c *= 2;
    return c;
}

/* The symbol spelled s[0..n), added after the vocabulary when new. -1: out of memory. */
static int32_t bpe_sym_intern(tok_bpe *m, const char *s, size_t n, size_t *sym_cap)
{
    int32_t id = bpe_sym_find(m, s, n);
    if (id >= 0) return id;
    if ((size_t)m->n_sym == *sym_cap) {
        size_t cap = *sym_cap * 2;
        uint32_t *a = realloc(m->sym_off, cap * sizeof *a);
        if (!a) return -1;
        m->sym_off = a;
        a = realloc(m->sym_len, cap * sizeof *a);
        if (!a) return -1;
        m->sym_len = a;
        *sym_cap = cap;
    }
    if ((size_t)m->n_sym * 2 >= m->smap_mask) {
        /* Rehash into a table twice the size. */
        size_t nsz = (m->smap_mask + 1) * 2;
        uint32_t *ns = calloc(nsz, sizeof *ns);
        if (!ns) return -1;
        free(m->smap);
        m->smap = ns;
        m->smap_mask = nsz - 1;
        for (int32_t i = 0; i < m->n_sym; i++)
            if (m->sym_off[i] != UINT32_MAX) bpe_smap_put(m, i);
    }
    id = m->n_sym++;
    if (bpe_str_add(m, s, n, &m->sym_off[id]) < 0) return -1;
    m->sym_len[id] = (uint32_t)n;
    bpe_smap_put(m, id);
    return id;
}

/* vocab.json: a JSON object of token -> id. */
static int bpe_load_vocab(tok_bpe *m, const char *path, const char *js, size_t len, size_t *sym_cap,
                          char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(js, len);
    if (!root) {
        bpe_seterr(err, errlen, "%s: not valid JSON (near byte %zu)", path,
                   cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - js) : (size_t)0);
        return -1;
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        bpe_seterr(err, errlen, "%s: not a JSON object mapping tokens to ids", path);
        goto out;
    }
    int32_t maxid = -1;
    size_t count = 0;
    const cJSON *e;
    cJSON_ArrayForEach (e, root) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v != floor(v) || v < 0 || v >= BPE_MAX_ID) {
            bpe_seterr(err, errlen, "%s: the id of token \"%.40s\" is not an integer in 0..%d",
                       path, e->string ? e->string : "", BPE_MAX_ID - 1);
            goto out;
        }
        if (!e->string || !e->string[0]) {
            bpe_seterr(err, errlen, "%s: an empty token (id %d)", path, (int)v);
            goto out;
        }
        if (!cm_utf8_valid(e->string, strlen(e->string), NULL)) {
            bpe_seterr(err, errlen, "%s: token with id %d is not valid UTF-8", path, (int)v);
            goto out;
        }
        if ((int32_t)v > maxid) maxid = (int32_t)v;
        count++;
    }
    if (!count) {
        bpe_seterr(err, errlen, "%s: no tokens", path);
        goto out;
    }
    m->n_vocab = m->n_sym = maxid + 1;
    *sym_cap = (size_t)m->n_vocab + 1024;
    m->sym_off = malloc(*sym_cap * sizeof *m->sym_off);
    m->sym_len = calloc(*sym_cap, sizeof *m->sym_len);
    m->smap_mask = bpe_pow2((size_t)m->n_vocab + 1024) - 1;
    m->smap = calloc(m->smap_mask + 1, sizeof *m->smap);
    if (!m->sym_off || !m->sym_len || !m->smap) goto oom;
    for (int32_t i = 0; i < m->n_vocab; i++) m->sym_off[i] = UINT32_MAX;
    cJSON_ArrayForEach (e, root) {
        int32_t id = (int32_t)e->valuedouble;
        size_t n = strlen(e->string);
        if (bpe_str_add(m, e->string, n, &m->sym_off[id]) < 0) goto oom;
        m->sym_len[id] = (uint32_t)n;
        bpe_smap_put(m, id);
    }
    rc = 0;
    goto out;
oom:
    bpe_seterr(err, errlen, "%s: out of memory", path);
out:
    cJSON_Delete(root);
    return rc;
}

static int bpe_mmap_put(tok_bpe *m, size_t idx)
{
    const struct bpe_merge *g = &m->merges[idx];
    for (size_t i = bpe_hash2(g->a, g->b) & m->mmap_mask;; i = (i + 1) & m->mmap_mask) {
        uint32_t v = m->mmap[i];
        if (!v) {
            m->mmap[i] = (uint32_t)idx + 1;
            return 1;
        }
        struct bpe_merge *o = &m->merges[v - 1];
        if (o->a == g->a && o->b == g->b) {
            /* A repeated pair: the later line's rank, as Python's dict keeps it. */
            o->rank = g->rank;
            return 0;
        }
    }
}

/* merges.txt: "#version..." first (skipped), then one "left right" pair per line, in
 * rank order. A line that is not two tokens is an error naming it. */
static int bpe_load_merges(tok_bpe *m, const char *path, const char *txt, size_t len,
                           size_t *sym_cap, char *err, size_t errlen)
{
    size_t bad;
    if (!cm_utf8_valid(txt, len, &bad)) {
        size_t line = 1;
        for (size_t i = 0; i < bad; i++) line += txt[i] == '\n';
        bpe_seterr(err, errlen, "%s: line %zu: invalid UTF-8", path, line);
        return -1;
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += txt[i] == '\n';
    m->merges = malloc(lines * sizeof *m->merges);
    m->mmap_mask = bpe_pow2(lines) - 1;
    m->mmap = calloc(m->mmap_mask + 1, sizeof *m->mmap);
    if (!m->merges || !m->mmap) goto oom;
    char buf[1024];
    size_t lineno = 0, p = 0;
    uint32_t rank = 0;
    while (p < len) {
        const char *nl = memchr(txt + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - txt) : len;
        const char *s = txt + p;
        size_t n = e - p;
        lineno++;
        p = e + 1;
        if (lineno == 1 && n && s[0] == '#') continue;
        /* Split on ASCII whitespace (byte-level tokens hold none). */
        const char *f[3];
        size_t fl[3], nf = 0, i = 0;
        while (i < n && nf < 3) {
            while (i < n && strchr(" \t\r\v\f", s[i]) && s[i]) i++;
            if (i >= n) break;
            size_t b = i;
            while (i < n && !(strchr(" \t\r\v\f", s[i]) && s[i])) i++;
            f[nf] = s + b;
            fl[nf++] = i - b;
        }
        if (nf == 0 && p >= len) break; /* an empty last line */
        if (nf != 2) {
            bpe_seterr(err, errlen, "%s: line %zu: expected two tokens \"left right\", found %s",
                       path, lineno,
                       nf == 0   ? "an empty line"
                       : nf == 1 ? "one"
                                 : "more");
            return -1;
        }
        if (fl[0] + fl[1] > sizeof buf) {
            bpe_seterr(err, errlen, "%s: line %zu: merge longer than %zu bytes", path, lineno,
                       sizeof buf);
            return -1;
        }
        int32_t a = bpe_sym_intern(m, f[0], fl[0], sym_cap);
        int32_t b = a < 0 ? -1 : bpe_sym_intern(m, f[1], fl[1], sym_cap);
        memcpy(buf, f[0], fl[0]);
        memcpy(buf + fl[0], f[1], fl[1]);
        int32_t to = b < 0 ? -1 : bpe_sym_intern(m, buf, fl[0] + fl[1], sym_cap);
        if (to < 0) goto oom;
        m->merges[m->n_merges] = (struct bpe_merge){ a, b, to, rank++ };
        m->n_merges += (size_t)bpe_mmap_put(m, m->n_merges);
    }
    return 0;
oom:
    bpe_seterr(err, errlen, "%s: out of memory", path);
    return -1;
}

/* Reads dir/name whole; the path in `path`. */
static char *bpe_read(const char *dir, const char *name, char *path, size_t pathlen, size_t *len,
                      char *err, size_t errlen)
{
    snprintf(path, pathlen, "%s/%s", dir, name);
    char *buf;
    int rc = cm_read_file(path, BPE_MAX_FILE, &buf, len);
    if (rc == -EFBIG) {
        bpe_seterr(err, errlen, "%s: larger than %zu bytes", path, BPE_MAX_FILE);
        return NULL;
    }
    if (rc < 0) {
        bpe_seterr(err, errlen, "%s: %s", path, strerror(-rc));
        return NULL;
    }
    return buf;
}

static const tok_ops bpe_ops;

tok_model *tok_bpe_open_dir(const char *dir, char *err, size_t errlen)
{
    char vpath[4096], mpath[4096];
    size_t vlen, mlen, sym_cap = 0;
    char *vj = NULL, *mt = NULL;
    tok_bpe *m = calloc(1, sizeof *m);
    if (!m) {
        bpe_seterr(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    vj = bpe_read(dir, "vocab.json", vpath, sizeof vpath, &vlen, err, errlen);
    if (!vj) goto fail;
    mt = bpe_read(dir, "merges.txt", mpath, sizeof mpath, &mlen, err, errlen);
    if (!mt) goto fail;
    if (bpe_load_vocab(m, vpath, vj, vlen, &sym_cap, err, errlen) < 0) goto fail;
    for (int i = 0; i < BPE_NSPECIAL; i++)
        m->special[i] = bpe_sym_find(m, bpe_special_str[i], strlen(bpe_special_str[i]));
    if (m->special[BPE_BOS] < 0 || m->special[BPE_EOS] < 0 || m->special[BPE_UNK] < 0) {
        bpe_seterr(err, errlen, "%s: lacks one of the tokens <s>, </s>, <unk>", vpath);
        goto fail;
    }
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t l = bpe_utf8_put(s, bpe_byte_cp(b));
        m->byte_sym[b] = bpe_sym_intern(m, s, l, &sym_cap);
        if (m->byte_sym[b] < 0) {
            bpe_seterr(err, errlen, "%s: out of memory", dir);
            goto fail;
        }
    }
    if (bpe_load_merges(m, mpath, mt, mlen, &sym_cap, err, errlen) < 0) goto fail;

    /* Raw bytes of every vocab token: each character back through the byte map (one
     * outside it, as in "<s>", stays as its UTF-8). */
    int32_t inv[512];
    for (int c = 0; c < 512; c++) inv[c] = -1;
    for (int b = 0; b < 256; b++) inv[bpe_byte_cp(b)] = b;
    m->raw_off = calloc((size_t)m->n_vocab, sizeof *m->raw_off);
    m->raw_len = calloc((size_t)m->n_vocab, sizeof *m->raw_len);
    m->is_special = calloc((size_t)m->n_vocab, 1);
    m->raw = malloc(m->strs_len + 1);
    if (!m->raw_off || !m->raw_len || !m->is_special || !m->raw) {
        bpe_seterr(err, errlen, "%s: out of memory", dir);
        goto fail;
    }
    size_t ro = 0;
    for (int32_t id = 0; id < m->n_vocab; id++) {
        if (m->sym_off[id] == UINT32_MAX) continue;
        const unsigned char *s = (const unsigned char *)m->strs + m->sym_off[id];
        size_t n = m->sym_len[id], i = 0;
        m->raw_off[id] = (uint32_t)ro;
        while (i < n) {
            size_t l;
            uint32_t c = bpe_cp(s + i, &l);
            if (c < 512 && inv[c] >= 0) {
                m->raw[ro++] = (char)inv[c];
            } else {
                memcpy(m->raw + ro, s + i, l);
                ro += l;
            }
            i += l;
        }
        m->raw_len[id] = (uint32_t)(ro - m->raw_off[id]);
    }
    for (int i = 0; i < BPE_NSPECIAL; i++)
        if (m->special[i] >= 0) m->is_special[m->special[i]] = 1;
    free(vj);
    free(mt);

    m->base = (tok_model){
        .ops = &bpe_ops,
        .kind = "bpe-bytelevel",
        .vocab_size = m->n_vocab,
        .eos_id = m->special[BPE_EOS],
        .pad_id = m->special[BPE_PAD],
        .unk_id = m->special[BPE_UNK],
        .bos_id = m->special[BPE_BOS],
        .n_sentinels = 0,
        .sentinel0 = -1,
    };
    /* BART/RoBERTa: <s> text </s>; a pair <s> A </s></s> B </s>. */
    tok_special_ids *sp = &m->base.specials;
    sp->head[sp->n_head++] = m->special[BPE_BOS];
    sp->tail[sp->n_tail++] = m->special[BPE_EOS];
    m->base.pair_mid[m->base.n_pair_mid++] = m->special[BPE_EOS];
    m->base.pair_mid[m->base.n_pair_mid++] = m->special[BPE_EOS];
    return &m->base;
fail:
    free(vj);
    free(mt);
    bpe_free(&m->base);
    return NULL;
}

static const tok_ops bpe_ops = {
    .encode = bpe_encode,
    .decode = bpe_decode,
    .piece = bpe_piece,
    .word_start = bpe_word_start,
    .free = bpe_free,
};
