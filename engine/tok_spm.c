/* SentencePiece unigram tokenizer behind engine/tok.h (the kind tok.c opens for
 * `spiece.model`), bit-exact with the sentencepiece library's
 * SentencePieceProcessor::Encode / Decode for unigram models, and with the begin/end
 * offsets of its EncodeAsImmutableProto.
 *
 * Pipeline of spm_encode, per text segment between `<extra_id_N>` markers:
 *   1. normalize (tok_normalize): user-defined pieces pass through untouched, otherwise
 *      the longest rule of the precompiled charsmap (a darts-clone double array whose
 *      values are offsets of NUL-terminated replacements) or one UTF-8 character as is;
 *      dummy prefix, extra-whitespace removal and ' ' -> U+2581 as the library does;
 *      when spans are asked for, the input offset of every normalized byte as the
 *      library's norm_to_orig;
 *   2. Viterbi over piece scores (the library's "optimized" encoder: best path ending at
 *      every byte offset, ties keep the earliest start), unknown characters scored
 *      min_score - 10;
 *   3. emit ids: runs of unknown pieces merge into one unk id, or become <0xNN> byte
 *      pieces when the model has byte fallback.
 *
 * A model of type BPE (trainer_spec.model_type) is loaded here too and shares all of this
 * but step 2: tok_spm_segment hands its normalised text to tok_spmbpe_merge
 * (engine/tok_spmbpe.c, through engine/tok_spm_int.h), and it has no sentinels.
 *
 * Invalid UTF-8: the library would turn each bad byte into U+FFFD; tok.h instead makes
 * it an error (TOK_EINVAL), which tok.c checks before calling in, so nothing below
 * reads a partial character.
 *
 * Everything is precomputed in tok_spm_load_mem(); afterwards the model is only read,
 * so any number of threads may share it. Per call, memory is taken from the stack for
 * short texts and from the heap (two buffers, three with spans) for long ones. */
#include "engine/tok_spm_int.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sentencepiece_model.pb-c.h"

#define TOK_NSENTINEL 100
#define TOK_UNK_PENALTY 10.0f
/* The library looks at no more than this many charsmap matches per position. */
#define TOK_CM_MAX_RESULTS 32
/* Texts up to this many bytes are encoded with stack buffers only. */
#define TOK_STACK_TEXT 256

static const char tok_ws[] = "\xe2\x96\x81"; /* U+2581, the escaped space */

/* "<extra_id_N>" for N = 0..99, written once (pthread_once) before any model exists
 * and only read afterwards. */
static char tok_sentinel_str[TOK_NSENTINEL][24];
static pthread_once_t tok_sentinel_once = PTHREAD_ONCE_INIT;

static void tok_sentinels_fill(void)
{
    for (int i = 0; i < TOK_NSENTINEL; i++)
        snprintf(tok_sentinel_str[i], sizeof tok_sentinel_str[i], "<extra_id_%d>", i);
}

static void tok_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tok_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- double array -- */

struct tok_key {
    const char *s;
    uint32_t len;
    int32_t id;
    float score;
    int user;
};

static int tok_key_cmp(const void *a, const void *b)
{
    const struct tok_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Double-array construction state. Free slots that may still start a placement sit on
 * a circular doubly-linked list (index 0, the root, is its head), so the first-fit
 * search never walks over used slots; a slot that failed too often as the first
 * label's slot is taken off the list (it stays free for other labels). */
struct tok_dabuild {
    struct tok_da *da;
    int32_t *next, *prev; /* [cap] free list links */
    uint8_t *fails;       /* [cap] failed placements starting at the slot */
    size_t cap;
};

#define TOK_DA_MAX_FAILS 8

static void tok_da_unlink(struct tok_dabuild *b, int32_t i)
{
    if (b->next[i] < 0) return; /* not on the list */
    b->next[b->prev[i]] = b->next[i];
    b->prev[b->next[i]] = b->prev[i];
    b->next[i] = b->prev[i] = -1;
}

static int tok_da_reserve(struct tok_dabuild *b, size_t need)
{
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need) {
        if (cap > (size_t)INT32_MAX / 2) return -1;
        cap *= 2;
    }
    struct tok_da *da = realloc(b->da, cap * sizeof *da);
    if (!da) return -1;
    b->da = da;
    int32_t *nx = realloc(b->next, cap * sizeof *nx);
    if (!nx) return -1;
    b->next = nx;
    int32_t *pv = realloc(b->prev, cap * sizeof *pv);
    if (!pv) return -1;
    b->prev = pv;
    uint8_t *f = realloc(b->fails, cap);
    if (!f) return -1;
    b->fails = f;
    size_t old = b->cap;
    if (!old) {
        /* Slot 0: the root, and the list head. */
        da[0] = (struct tok_da){ 0, -2, -1, 0.0f };
        nx[0] = pv[0] = 0;
        f[0] = 0;
        old = 1;
    }
    for (size_t i = old; i < cap; i++) {
        da[i] = (struct tok_da){ 0, -1, -1, 0.0f };
        f[i] = 0;
        /* append i at the tail */
        int32_t tail = pv[0];
        nx[tail] = (int32_t)i;
        pv[i] = tail;
        nx[i] = 0;
        pv[0] = (int32_t)i;
    }
    b->cap = cap;
    return 0;
}

/* Places the children of node `s`, which stands for the common prefix (length `depth`)
 * of the sorted keys [lo, hi), then recurses into each child. Recursion depth is at
 * most the longest piece length. */
static int tok_da_place(struct tok_dabuild *b, int32_t s, const struct tok_key *k, size_t lo,
                        size_t hi, uint32_t depth)
{
    if (lo < hi && k[lo].len == depth) {
        b->da[s].id = k[lo].user ? -2 - k[lo].id : k[lo].id;
        b->da[s].score = k[lo].score;
        lo++;
        /* A duplicate piece is rejected before the build. */
    }
    if (lo >= hi) return 0;

    unsigned char labels[256];
    size_t nl = 0;
    for (size_t i = lo; i < hi; i++) {
        unsigned char c = (unsigned char)k[i].s[depth];
        if (!nl || labels[nl - 1] != c) labels[nl++] = c;
    }

    /* First fit over the free list: the lowest base whose slots are all free. */
    size_t base = 0;
    for (int32_t p = b->next[0];;) {
        if (p == 0) {
            /* List exhausted: grow, the new slots join the list's tail. */
            size_t old = b->cap;
            if (tok_da_reserve(b, b->cap * 2) < 0) return -1;
            p = (int32_t)old;
            continue;
        }
        int32_t nextp = b->next[p];
        if ((size_t)p > labels[0]) {
            base = (size_t)p - labels[0];
            if (tok_da_reserve(b, base + 257) < 0) return -1;
            size_t j = 1;
            while (j < nl && b->da[base + labels[j]].check == -1) j++;
            if (j == nl) break;
            if (++b->fails[p] >= TOK_DA_MAX_FAILS) tok_da_unlink(b, p);
        }
        p = nextp;
    }
    b->da[s].base = (int32_t)base;
    for (size_t j = 0; j < nl; j++) {
        int32_t t = (int32_t)(base + labels[j]);
        b->da[t].check = s;
        tok_da_unlink(b, t);
    }

    size_t i = lo;
    for (size_t j = 0; j < nl; j++) {
        size_t e = i;
        while (e < hi && (unsigned char)k[e].s[depth] == labels[j]) e++;
        if (tok_da_place(b, (int32_t)(base + labels[j]), k, i, e, depth + 1) < 0) return -1;
        i = e;
    }
    return 0;
}

static inline int32_t tok_da_next(const struct tok_da *da, int32_t s, unsigned char c)
{
    int32_t base = da[s].base;
    if (!base) return -1;
    int32_t t = base + c;
    return da[t].check == s ? t : -1;
}

int32_t tok_spm_find(const tok_spm *m, const char *s, size_t len)
{
    int32_t node = 0;
    for (size_t i = 0; i < len && node >= 0; i++)
        node = tok_da_next(m->da, node, (unsigned char)s[i]);
    if (node < 0 || !len) return -1;
    int32_t id = m->da[node].id;
    return id <= -2 ? -2 - id : id;
}

/* ------------------------------------------------------------------- charsmap -- */

/* The longest charsmap rule matching a prefix of s[0..n), among the first 32 matches
 * as the library does. Returns its length (0: none) and writes the replacement. */
static size_t tok_cm_match(const tok_spm *m, const unsigned char *s, size_t n, const char **rep,
                           size_t *replen)
{
    const uint32_t *u = m->cm_units;
    size_t nu = m->cm_nunits;
    if (!nu) return 0;
    size_t best = 0;
    uint32_t bestv = 0;
    int found = 0;
#define TOK_CM_OFFSET(x) (((x) >> 10) << (((x) & (1u << 9)) >> 6))
#define TOK_CM_LABEL(x) ((x) & ((1u << 31) | 0xFFu))
    size_t pos = TOK_CM_OFFSET(u[0]);
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= nu) break;
        uint32_t unit = u[pos];
        if (TOK_CM_LABEL(unit) != s[i]) break;
        pos ^= TOK_CM_OFFSET(unit);
        if (pos >= nu) break;
        if ((unit >> 8) & 1) {
            if (found < TOK_CM_MAX_RESULTS) {
                best = i + 1;
                bestv = u[pos] & 0x7FFFFFFFu;
            }
            found++;
        }
    }
#undef TOK_CM_OFFSET
#undef TOK_CM_LABEL
    if (!best) return 0;
    if (bestv >= m->cm_normlen) {
        /* A rule pointing outside the table (checked file, so only a corrupt one) is
         * treated as mapping to nothing. */
        *rep = "";
        *replen = 0;
        return best;
    }
    const char *r = m->cm_norm + bestv;
    const char *z = memchr(r, 0, m->cm_normlen - bestv);
    *rep = r;
    *replen = z ? (size_t)(z - r) : m->cm_normlen - bestv;
    return best;
}

/* Walks the charsmap trie along s[0..n): -1 if no rule starts with these bytes, else 1
 * if a rule is exactly these bytes, 0 if rules only continue past them. */
static int tok_cm_path(const tok_spm *m, const unsigned char *s, size_t n)
{
    const uint32_t *u = m->cm_units;
    size_t nu = m->cm_nunits;
    if (!nu) return -1;
    int leaf = 0;
    size_t pos = ((u[0] >> 10) << ((u[0] & (1u << 9)) >> 6));
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= nu) return -1;
        uint32_t unit = u[pos];
        if ((unit & ((1u << 31) | 0xFFu)) != s[i]) return -1;
        pos ^= ((unit >> 10) << ((unit & (1u << 9)) >> 6));
        if (pos >= nu) return -1;
        leaf = (unit >> 8) & 1;
    }
    return leaf;
}

/* ------------------------------------------------------------- growable buffer -- */

struct tok_buf {
    char *p;
    size_t len, cap;
    int heap; /* p is ours to free */
};

static int tok_buf_grow(struct tok_buf *b, size_t add)
{
    if (add > SIZE_MAX - b->len) return -1;
    size_t need = b->len + add;
    if (need <= b->cap) return 0;
    size_t cap = b->cap > 64 ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = b->heap ? realloc(b->p, cap) : malloc(cap);
    if (!p) return -1;
    if (!b->heap && b->len) memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
    b->heap = 1;
    return 0;
}

static inline int tok_buf_put(struct tok_buf *b, const char *s, size_t n)
{
    if (b->cap - b->len < n && tok_buf_grow(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* ------------------------------------------------------------------ normalize -- */

/* NormalizePrefix: what the next input unit becomes, and how many bytes it takes. */
static size_t tok_norm_prefix(const tok_spm *m, const unsigned char *s, size_t n, const char **rep,
                              size_t *replen)
{
    if (m->has_user) {
        /* User-defined pieces are matched on the raw text and kept as they are. */
        int32_t node = 0;
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            node = tok_da_next(m->da, node, s[i]);
            if (node < 0) break;
            if (m->da[node].id <= -2) best = i + 1;
        }
        if (best) {
            *rep = (const char *)s;
            *replen = best;
            return best;
        }
    }
    size_t l = tok_cm_match(m, s, n, rep, replen);
    if (l) return l;
    /* The input was validated, so this is one whole character. */
    l = tok_spm_charlen(s[0]);
    if (l > n) l = n;
    *rep = (const char *)s;
    *replen = l;
    return l;
}

/* Input offsets of the normalized bytes (the library's norm_to_orig), kept only when
 * spans are asked for: one per normalized byte, then one for the end. */
struct tok_align {
    size_t *p;
    size_t len, cap;
};

static int tok_align_fill(struct tok_align *al, size_t orig, size_t n, int step)
{
    if (al->cap - al->len < n) {
        size_t cap = al->cap ? al->cap : 64;
        while (cap - al->len < n) {
            if (cap > SIZE_MAX / 2 / sizeof *al->p) return -1;
            cap *= 2;
        }
        size_t *p = realloc(al->p, cap * sizeof *p);
        if (!p) return -1;
        al->p = p;
        al->cap = cap;
    }
    for (size_t i = 0; i < n; i++) al->p[al->len++] = orig + (step ? i : 0);
    return 0;
}

/* Appends n offsets: `orig` n times (step 0), or orig, orig + 1, ... (step 1).
 * Nothing without an alignment: the common case stays a test of `al`. */
static inline int tok_align_put(struct tok_align *al, size_t orig, size_t n, int step)
{
    return al ? tok_align_fill(al, orig, n, step) : 0;
}

/* An escaped (or plain) space standing for input offset `orig`. */
static inline int tok_put_ws(const tok_spm *m, struct tok_buf *out, struct tok_align *al,
                             size_t orig)
{
    if (tok_align_put(al, orig, m->escape_ws ? 3 : 1, 0) < 0) return -1;
    return m->escape_ws ? tok_buf_put(out, tok_ws, 3) : tok_buf_put(out, " ", 1);
}

/* Normalizer::Normalize; `in` is valid UTF-8. With `al`, also its norm_to_orig: every
 * byte a unit of input becomes maps to the unit's first byte, the end to where the
 * kept input ends. */
static int tok_normalize(const tok_spm *m, const char *in, size_t len, struct tok_buf *out,
                         struct tok_align *al)
{
    const unsigned char *s = (const unsigned char *)in, *const s0 = s;
    out->len = 0;
    if (al) al->len = 0;
    if (!len) return 0;
    const char *rep;
    size_t replen, used;

    if (m->remove_extra_ws) {
        while (len) {
            used = tok_norm_prefix(m, s, len, &rep, &replen);
            if (!(replen == 1 && rep[0] == ' ')) break;
            s += used;
            len -= used;
        }
    }
    if (!len) return 0;

    if (!m->ws_suffix && m->add_dummy_prefix && tok_put_ws(m, out, al, (size_t)(s - s0)) < 0)
        return -1;

    int prev_space = m->remove_extra_ws;
    while (len) {
        unsigned char c = s[0];
        if (c < 0x80 && m->ascii_plain[c] && (len == 1 || s[1] < 0x80)) {
            /* Same effect as the general path below for a character that maps to
             * itself: a run of them is copied at once, a space is escaped. */
            if (c == ' ') {
                if (!prev_space && tok_put_ws(m, out, al, (size_t)(s - s0)) < 0) return -1;
                prev_space = m->remove_extra_ws;
                s++;
                len--;
                continue;
            }
            size_t r = 1;
            while (r < len && s[r] < 0x80 && s[r] != ' ' && m->ascii_plain[s[r]] &&
                   (r + 1 == len || s[r + 1] < 0x80))
                r++;
            if (tok_buf_put(out, (const char *)s, r) < 0) return -1;
            if (tok_align_put(al, (size_t)(s - s0), r, 1) < 0) return -1;
            prev_space = 0;
            s += r;
            len -= r;
            continue;
        }
        used = tok_norm_prefix(m, s, len, &rep, &replen);
        const size_t at = (size_t)(s - s0);
        if (prev_space)
            while (replen && rep[0] == ' ') rep++, replen--;
        if (replen) {
            if (m->escape_ws) {
                /* Copy runs without spaces in one go. */
                const char *r = rep, *e = rep + replen;
                while (r < e) {
                    const char *sp = memchr(r, ' ', (size_t)(e - r));
                    const char *stop = sp ? sp : e;
                    if (stop > r && (tok_buf_put(out, r, (size_t)(stop - r)) < 0 ||
                                     tok_align_put(al, at, (size_t)(stop - r), 0) < 0))
                        return -1;
                    if (!sp) break;
                    if (tok_put_ws(m, out, al, at) < 0) return -1;
                    r = sp + 1;
                }
            } else if (tok_buf_put(out, rep, replen) < 0 || tok_align_put(al, at, replen, 0) < 0) {
                return -1;
            }
            prev_space = rep[replen - 1] == ' ';
        }
        s += used;
        len -= used;
        if (!m->remove_extra_ws) prev_space = 0;
    }

    /* Where the kept input ends: trimmed trailing spaces give it back. */
    size_t end = (size_t)(s - s0);
    if (m->remove_extra_ws) {
        const size_t wl = m->escape_ws ? 3 : 1;
        while (out->len >= wl && !memcmp(out->p + out->len - wl, m->escape_ws ? tok_ws : " ", wl)) {
            out->len -= wl;
            if (al) end = al->p[al->len = out->len];
        }
    }
    if (m->ws_suffix && m->add_dummy_prefix && tok_put_ws(m, out, al, end) < 0) return -1;
    return tok_align_put(al, end, 1, 0);
}

/* -------------------------------------------------------------------- viterbi -- */

/* Best path ending at a byte offset; after tok_viterbi's backtrack, `start` holds
 * the END of the piece starting here (a forward link) and `id` that piece. */
struct tok_best {
    float score;
    int32_t start;
    int32_t id;
};

/* Segments the normalized text s[0..n) (n < INT32_MAX) and emits its ids.
 * `best` has room for n + 1 entries. With n2o (the normalizer's alignment, n + 1
 * entries), spans are base + n2o[] of each piece's ends, as the library gives them. */
static void tok_viterbi(const tok_spm *m, const char *str, size_t n, struct tok_best *best,
                        tok_out *o, const size_t *n2o, size_t base)
{
    const unsigned char *s = (const unsigned char *)str;
    const struct tok_da *da = m->da;
    for (size_t i = 0; i <= n; i++) best[i].start = -1;
    best[0].score = 0.0f;

    for (size_t st = 0; st < n;) {
        const float here = best[st].score;
        size_t mblen = tok_spm_charlen(s[st]);
        if (mblen > n - st) mblen = n - st;
        int single = 0;
        int32_t node = 0;
        for (size_t k = st; k < n; k++) {
            int32_t base = da[node].base;
            if (!base) break;
            int32_t t = base + s[k];
            if (da[t].check != node) break;
            node = t;
            int32_t id = da[t].id;
            if (id == -1) continue;
            size_t length = k + 1 - st;
            struct tok_best *tg = &best[k + 1];
            if (id <= -2) {
                id = -2 - id;
                /* The library scores a user-defined piece in double:
                 * (length * max_score - 0.1), with length * max_score in float. */
                double cand = (double)((float)length * m->max_score) - 0.1 + (double)here;
                if (tg->start == -1 || cand > (double)tg->score) {
                    tg->score = (float)cand;
                    tg->start = (int32_t)st;
                    tg->id = id;
                }
            } else {
                float cand = da[t].score + here;
                if (tg->start == -1 || cand > tg->score) {
                    tg->score = cand;
                    tg->start = (int32_t)st;
                    tg->id = id;
                }
            }
            if (length == mblen) single = 1;
        }
        if (!single) {
            struct tok_best *tg = &best[st + mblen];
            float cand = m->unk_score + here;
            if (tg->start == -1 || cand > tg->score) {
                tg->score = cand;
                tg->start = (int32_t)st;
                tg->id = m->unk_id;
            }
        }
        st += mblen;
    }

    /* Reverse the backward chain into forward links, in place. */
    size_t pos = n;
    int32_t from = best[n].start, id = best[n].id;
    while (pos > 0) {
        int32_t nfrom = from > 0 ? best[from].start : -1;
        int32_t nid = from > 0 ? best[from].id : -1;
        best[from].start = (int32_t)pos;
        best[from].id = id;
        pos = (size_t)from;
        from = nfrom;
        id = nid;
    }

    int prev_unk = 0;
    for (size_t p = 0; p < n;) {
        size_t end = (size_t)best[p].start;
        tok_spm_emit(m, o, best[p].id, s, p, end, n2o, base, &prev_unk);
        p = end;
    }
}

void tok_spm_emit(const tok_spm *m, tok_out *o, int32_t id, const unsigned char *s, size_t p,
                  size_t end, const size_t *n2o, size_t base, int *prev_unk)
{
    size_t b = n2o ? base + n2o[p] : 0, e = n2o ? base + n2o[end] : 0;
    if (id == m->unk_id) {
        if (m->byte_fallback) {
            /* The character's span goes to its last byte piece, as the library
             * does; the others are empty at its start. */
            for (size_t i = p; i < end; i++) tok_emit(o, m->byte_id[s[i]], b, i + 1 < end ? b : e);
        } else if (!*prev_unk) {
            tok_emit(o, id, b, e); /* a run of unknowns is one unk */
        } else {
            tok_emit_extend(o, e);
        }
        *prev_unk = 1;
    } else {
        tok_emit(o, id, b, e);
        *prev_unk = 0;
    }
}

/* tok_spm_segment (engine/tok_spm_int.h): one segment of raw text (no sentinels in it),
 * which starts at byte `base` of the caller's text. */
int tok_spm_segment(const tok_spm *m, const char *text, size_t len, tok_out *o, size_t base)
{
    if (!len) return 0;
    char sbuf[TOK_STACK_TEXT * 3 + 16];
    struct tok_best sbest[TOK_STACK_TEXT * 3 + 17];
    struct tok_buf nb = { sbuf, 0, sizeof sbuf, 0 };
    struct tok_align al = { NULL, 0, 0 };
    int rc = 0;

    if (len > sizeof sbuf / 3 - 8) {
        /* Room for the text, some escaped spaces and the dummy prefix; rarer growth
         * (charsmap replacements longer than their input) reallocates. */
        if (len > (SIZE_MAX - 16) / 2) return TOK_ENOMEM;
        size_t cap = len + len / 2 + 16;
        nb.p = malloc(cap);
        if (!nb.p) return TOK_ENOMEM;
        nb.cap = cap;
        nb.heap = 1;
    }
    if (tok_normalize(m, text, len, &nb, o->spans ? &al : NULL) < 0) {
        rc = TOK_ENOMEM;
        goto out;
    }
    if (nb.len >= (size_t)INT32_MAX) {
        rc = TOK_ENOMEM;
        goto out;
    }
    if (m->bpe) {
        rc = tok_spmbpe_merge(m, nb.p, nb.len, o, o->spans ? al.p : NULL, base);
        goto out;
    }
    struct tok_best *best = sbest;
    if (nb.len + 1 > sizeof sbest / sizeof sbest[0]) {
        best = malloc((nb.len + 1) * sizeof *best);
        if (!best) {
            rc = TOK_ENOMEM;
            goto out;
        }
    }
    tok_viterbi(m, nb.p, nb.len, best, o, o->spans ? al.p : NULL, base);
    if (best != sbest) free(best);
out:
    if (nb.heap) free(nb.p);
    free(al.p);
    return rc;
}

/* If text[0..len) starts with "<extra_id_N>" (N = 0..99 written without leading
 * zeros), returns its length and sets *n. */
static size_t tok_sentinel_at(const char *t, size_t len, int *n)
{
    static const char pre[] = "<extra_id_";
    const size_t pl = sizeof pre - 1;
    if (len < pl + 2 || memcmp(t, pre, pl)) return 0;
    size_t i = pl;
    if (t[i] < '0' || t[i] > '9') return 0;
    int v = t[i++] - '0';
    if (i < len && t[i] >= '0' && t[i] <= '9') {
        if (v == 0) return 0;
        v = v * 10 + (t[i++] - '0');
    }
    if (i >= len || t[i] != '>') return 0;
    *n = v;
    return i + 1;
}

/* tok_ops.encode: the text between sentinel markers segment by segment, each marker
 * its sentinel id. */
static int spm_encode(const tok_model *tok, const char *text, size_t len, tok_out *o)
{
    const tok_spm *m = (const tok_spm *)tok;
    size_t seg = 0, i = 0;
    while (i < len) {
        const char *lt = memchr(text + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - text);
        int sn;
        size_t sl = tok_sentinel_at(lt, len - i, &sn);
        if (!sl) {
            i++;
            continue;
        }
        int rc = tok_spm_segment(m, text + seg, i - seg, o, seg);
        if (rc < 0) return rc;
        tok_emit(o, m->n + TOK_NSENTINEL - 1 - sn, i, i + sl);
        i += sl;
        seg = i;
    }
    return tok_spm_segment(m, text + seg, len - seg, o, seg);
}

/* --------------------------------------------------------------------- decode -- */

struct tok_sink {
    char *out;
    size_t cap;
    size_t n; /* full length so far */
};

static void tok_sink_put(struct tok_sink *k, const char *s, size_t len)
{
    if (k->cap && k->n < k->cap - 1) {
        size_t room = k->cap - 1 - k->n;
        memcpy(k->out + k->n, s, len < room ? len : room);
    }
    k->n += len;
}

/* Appends a piece with U+2581 turned into ' '. */
static void tok_sink_piece(struct tok_sink *k, const char *s, size_t len)
{
    const char *e = s + len;
    while (s < e) {
        const char *w = memmem(s, (size_t)(e - s), tok_ws, 3);
        const char *stop = w ? w : e;
        if (stop > s) tok_sink_put(k, s, (size_t)(stop - s));
        if (!w) break;
        tok_sink_put(k, " ", 1);
        s = w + 3;
    }
}

/* The byte of a "<0xNN>" piece, -1 if the piece is not one. */
static int tok_piece_byte(const char *p)
{
    if (strlen(p) != 6 || memcmp(p, "<0x", 3) || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Flushes pending byte pieces: valid UTF-8 as is, every stray byte as U+FFFD. */
static void tok_flush_bytes(struct tok_sink *k, const unsigned char *b, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = tok_utf8_valid(b + i, n - i);
        if (!l) {
            tok_sink_put(k, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            tok_sink_put(k, (const char *)b + i, l);
            i += l;
        }
    }
}

/* Feeds one byte of a <0xNN> run. Bytes gather while they can still complete one
 * character; anything else is flushed through tok_flush_bytes, which is what the
 * library's whole-run scan produces for the same bytes. */
static void tok_byte_push(struct tok_sink *k, unsigned char *pend, size_t *np, unsigned char b)
{
    if (*np) {
        if ((b & 0xC0) == 0x80 && *np < tok_spm_charlen(pend[0])) {
            pend[(*np)++] = b;
            if (*np == tok_spm_charlen(pend[0])) {
                tok_flush_bytes(k, pend, *np);
                *np = 0;
            }
            return;
        }
        tok_flush_bytes(k, pend, *np);
        *np = 0;
    }
    if (b >= 0xC0) {
        pend[(*np)++] = b;
        return;
    }
    tok_flush_bytes(k, &b, 1);
}

/* tok_ops.decode */
int tok_spm_decode(const tok_model *base, const int32_t *ids, int n, char *out, size_t cap)
{
    const tok_spm *tok = (const tok_spm *)base;
    struct tok_sink k = { out, out ? cap : 0, 0 };
    unsigned char pend[4];
    size_t np = 0;
    int bos = 1, bos_seen = 0;
    const int strip_lead = tok->add_dummy_prefix || tok->remove_extra_ws;

    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->n + tok->nsent) return TOK_ERANGE;

    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < tok->n && tok->pieces[id].type == TOK_T_BYTE) {
            int b = tok_piece_byte(tok->strs + tok->pieces[id].off);
            tok_byte_push(&k, pend, &np, (unsigned char)b);
            continue;
        }
        tok_flush_bytes(&k, pend, np);
        np = 0;
        /* The library strips the leading U+2581 only while nothing has been written
         * (or, without remove_extra_whitespaces, from the first piece only). */
        if (bos_seen || k.n) bos = 0;
        bos_seen = 0;
        if (id >= tok->n) {
            const char *s = tok_sentinel_str[tok->n + TOK_NSENTINEL - 1 - id];
            tok_sink_put(&k, s, strlen(s));
            continue;
        }
        const struct tok_piece *p = &tok->pieces[id];
        if (p->type == TOK_T_CONTROL) continue;
        if (p->type == TOK_T_UNKNOWN) {
            tok_sink_put(&k, tok->unk_surface, strlen(tok->unk_surface));
            continue;
        }
        const char *s = tok->strs + p->off;
        size_t len = p->len;
        if (bos && strip_lead && len >= 3 && !memcmp(s, tok_ws, 3)) {
            s += 3;
            len -= 3;
            bos_seen = !tok->remove_extra_ws;
        }
        tok_sink_piece(&k, s, len);
    }
    tok_flush_bytes(&k, pend, np);
    if (k.cap) k.out[k.n < k.cap ? k.n : k.cap - 1] = '\0';
    if (k.n > INT_MAX) return TOK_ENOMEM;
    return (int)k.n;
}

/* ------------------------------------------------------------------------ load -- */

/* tok_ops.free; also frees a model tok_build left half built. */
void tok_spm_free(tok_model *base)
{
    tok_spm *m = (tok_spm *)base;
    if (!m) return;
    free(m->pieces);
    free(m->strs);
    free(m->da);
    free(m->cm_units);
    free(m->cm_norm);
    free(m->unk_surface);
    free(m);
}

static int tok_load_charsmap(tok_spm *m, const uint8_t *b, size_t len, char *err, size_t errlen)
{
    if (len <= 4) {
        tok_seterr(err, errlen, "precompiled charsmap is broken (%zu bytes)", len);
        return -1;
    }
    uint32_t tsize =
        (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (tsize >= len - 4 || tsize % 4 || tsize < 4) {
        tok_seterr(err, errlen, "precompiled charsmap: trie size %u does not fit in %zu bytes",
                   tsize, len);
        return -1;
    }
    m->cm_nunits = tsize / 4;
    m->cm_units = malloc(tsize);
    m->cm_normlen = len - 4 - tsize;
    m->cm_norm = malloc(m->cm_normlen);
    if (!m->cm_units || !m->cm_norm) {
        tok_seterr(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < m->cm_nunits; i++) {
        const uint8_t *u = b + 4 + 4 * i;
        m->cm_units[i] =
            (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    memcpy(m->cm_norm, b + 4 + tsize, m->cm_normlen);
    return 0;
}

static int tok_find_piece(const tok_spm *m, const char *s, int type)
{
    if (!s) return -1;
    for (int i = 0; i < m->n; i++)
        if (m->pieces[i].type == type && !strcmp(m->strs + m->pieces[i].off, s)) return i;
    return -1;
}

static const tok_ops spm_ops;

static tok_spm *tok_build(const Sentencepiece__ModelProto *mp, char *err, size_t errlen)
{
    pthread_once(&tok_sentinel_once, tok_sentinels_fill);
    if (!mp->n_pieces) {
        tok_seterr(err, errlen, "model has no pieces");
        return NULL;
    }
    if (!mp->trainer_spec || !mp->normalizer_spec) {
        tok_seterr(err, errlen, "model lacks its trainer or normalizer spec (truncated file?)");
        return NULL;
    }
    const Sentencepiece__TrainerSpec *ts = mp->trainer_spec;
    const Sentencepiece__NormalizerSpec *ns = mp->normalizer_spec;
    const int bpe = ts->model_type == SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE;
    if (ts->model_type != SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM && !bpe) {
        tok_seterr(err, errlen,
                   "model type %d is neither unigram nor BPE (word and char "
                   "models are not supported)",
                   (int)ts->model_type);
        return NULL;
    }
    if (mp->n_pieces > (size_t)(INT32_MAX - 2 * TOK_NSENTINEL)) {
        tok_seterr(err, errlen, "too many pieces (%zu)", mp->n_pieces);
        return NULL;
    }

    tok_spm *m = calloc(1, sizeof *m);
    struct tok_key *keys = NULL;
    if (!m) goto oom;
    m->n = (int)mp->n_pieces;
    m->bpe = bpe;
    /* T5's <extra_id_N> belong to its unigram models; a BPE model has none. */
    m->nsent = bpe ? 0 : TOK_NSENTINEL;
    m->pieces = calloc((size_t)m->n, sizeof *m->pieces);
    if (!m->pieces) goto oom;

    size_t total = 0;
    for (int i = 0; i < m->n; i++) {
        const Sentencepiece__ModelProto__SentencePiece *p = mp->pieces[i];
        size_t l = p->piece ? strlen(p->piece) : 0;
        if (!l) {
            tok_seterr(err, errlen, "piece %d is empty", i);
            goto fail;
        }
        if (l > UINT32_MAX / 2 || total > UINT32_MAX / 2) {
            tok_seterr(err, errlen, "pieces too long");
            goto fail;
        }
        total += l + 1;
    }
    m->strs = malloc(total);
    if (!m->strs) goto oom;

    m->unk_id = m->eos_id = m->pad_id = m->bos_id = -1;
    m->min_score = 3.402823466e+38f; /* FLT_MAX, FLT_MIN as the library starts */
    m->max_score = 1.175494351e-38f;
    int have_normal = 0;
    for (int i = 0; i < 256; i++) m->byte_id[i] = -1;
    size_t off = 0, nkeys = 0;
    for (int i = 0; i < m->n; i++) {
        const Sentencepiece__ModelProto__SentencePiece *p = mp->pieces[i];
        size_t l = strlen(p->piece);
        memcpy(m->strs + off, p->piece, l + 1);
        int type = p->type;
        if (type < TOK_T_NORMAL || type > TOK_T_BYTE) {
            tok_seterr(err, errlen, "piece %d has unknown type %d", i, type);
            goto fail;
        }
        m->pieces[i] = (struct tok_piece){ (uint32_t)off, (uint32_t)l, p->score, (uint8_t)type };
        off += l + 1;
        if (type == TOK_T_UNKNOWN) {
            if (m->unk_id >= 0) {
                tok_seterr(err, errlen, "unk is defined twice (pieces %d and %d)", m->unk_id, i);
                goto fail;
            }
            m->unk_id = i;
        }
        if (type == TOK_T_USER) m->has_user = 1;
        if (type == TOK_T_NORMAL) {
            have_normal = 1;
            if (p->score < m->min_score) m->min_score = p->score;
            if (p->score > m->max_score) m->max_score = p->score;
        }
        if (type == TOK_T_BYTE) {
            int b = tok_piece_byte(p->piece);
            if (b < 0 || !ts->byte_fallback) {
                tok_seterr(err, errlen, "byte piece %d '%s' is invalid or byte_fallback is off", i,
                           p->piece);
                goto fail;
            }
            m->byte_id[b] = i;
        }
    }
    if (!have_normal) m->min_score = m->max_score = 0.0f;
    if (m->unk_id < 0) {
        tok_seterr(err, errlen, "model defines no unk piece");
        goto fail;
    }
    m->unk_score = m->min_score - TOK_UNK_PENALTY;
    m->byte_fallback = ts->byte_fallback;
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_id[b] < 0) {
                tok_seterr(err, errlen, "byte_fallback is on but <0x%02X> is missing", b);
                goto fail;
            }

    m->eos_id = tok_find_piece(m, ts->eos_piece, TOK_T_CONTROL);
    m->pad_id = tok_find_piece(m, ts->pad_piece, TOK_T_CONTROL);
    m->bos_id = tok_find_piece(m, ts->bos_piece, TOK_T_CONTROL);
    m->unk_surface = strdup(ts->unk_surface ? ts->unk_surface : " \xE2\x81\x87 ");
    if (!m->unk_surface) goto oom;

    m->add_dummy_prefix = ns->add_dummy_prefix;
    m->remove_extra_ws = ns->remove_extra_whitespaces;
    m->escape_ws = ns->escape_whitespaces;
    m->ws_suffix = ts->treat_whitespace_as_suffix;
    if (ns->has_precompiled_charsmap && ns->precompiled_charsmap.len &&
        tok_load_charsmap(m, ns->precompiled_charsmap.data, ns->precompiled_charsmap.len, err,
                          errlen) < 0)
        goto fail;

    for (int c = 0; c < 128 && !m->has_user; c++) {
        unsigned char k[2] = { (unsigned char)c, 0 };
        int r = tok_cm_path(m, k, 1);
        int plain = r < 0;
        if (r == 0) {
            /* Rules start with c (e.g. c + a combining mark) but none is c alone:
             * c stays itself when an ASCII byte follows, which no rule continues. */
            plain = 1;
            for (int d = 0; d < 128 && plain; d++) {
                k[1] = (unsigned char)d;
                plain = tok_cm_path(m, k, 2) < 0;
            }
        }
        m->ascii_plain[c] = (uint8_t)plain;
    }

    /* The Viterbi trie holds what the library's holds (normal, user-defined and unused
     * pieces) minus unused ones, which it skips anyway. BPE merges may form an unused
     * piece (and split it again), so BPE models keep them. */
    keys = malloc((size_t)m->n * sizeof *keys);
    if (!keys) goto oom;
    for (int i = 0; i < m->n; i++) {
        int t = m->pieces[i].type;
        if (t == TOK_T_NORMAL || t == TOK_T_USER || (bpe && t == TOK_T_UNUSED))
            keys[nkeys++] = (struct tok_key){ m->strs + m->pieces[i].off, m->pieces[i].len, i,
                                              m->pieces[i].score, t == TOK_T_USER };
    }
    qsort(keys, nkeys, sizeof *keys, tok_key_cmp);
    for (size_t i = 1; i < nkeys; i++)
        if (!tok_key_cmp(&keys[i - 1], &keys[i])) {
            tok_seterr(err, errlen, "piece '%s' is defined twice", keys[i].s);
            goto fail;
        }
    struct tok_dabuild b = { 0 };
    int brc = tok_da_reserve(&b, 1024);
    if (brc == 0) brc = tok_da_place(&b, 0, keys, 0, nkeys, 0);
    free(b.next);
    free(b.prev);
    free(b.fails);
    if (brc < 0) {
        free(b.da);
        goto oom;
    }
    /* Every base was placed with 257 slots reserved after it, so base + c never
     * overruns da_size. */
    m->da_size = b.cap;
    m->da = b.da;
    free(keys);

    if (bpe && !m->ws_suffix) {
        m->bpe_by_word = 1;
        for (int i = 0; i < m->n && m->bpe_by_word; i++) {
            const struct tok_piece *p = &m->pieces[i];
            if (p->type == TOK_T_UNUSED ||
                (p->type != TOK_T_CONTROL && p->type != TOK_T_UNKNOWN && p->len > 3 &&
                 memmem(m->strs + p->off + 1, p->len - 1, tok_ws, 3)))
                m->bpe_by_word = 0;
        }
    }

    m->base = (tok_model){
        .ops = bpe ? &tok_spmbpe_ops : &spm_ops,
        .kind = bpe ? "sentencepiece-bpe" : "sentencepiece-unigram",
        .vocab_size = m->n,
        .eos_id = m->eos_id,
        .pad_id = m->pad_id,
        .unk_id = m->unk_id,
        .bos_id = m->bos_id,
        .n_sentinels = m->nsent,
        .sentinel0 = m->n + m->nsent - 1,
    };
    /* T5's convention (transformers' T5Tokenizer): EOS after the text, nothing before. */
    if (m->eos_id >= 0) m->base.specials.tail[m->base.specials.n_tail++] = m->eos_id;
    return m;

oom:
    tok_seterr(err, errlen, "out of memory");
fail:
    free(keys);
    tok_spm_free((tok_model *)m);
    return NULL;
}

tok_model *tok_spm_load_mem(const void *buf, size_t len, char *err, size_t errlen)
{
    if (!buf || !len) {
        tok_seterr(err, errlen, "empty model");
        return NULL;
    }
    Sentencepiece__ModelProto *mp =
        sentencepiece__model_proto__unpack(NULL, len, (const uint8_t *)buf);
    if (!mp) {
        tok_seterr(err, errlen,
                   "not a sentencepiece model (protobuf parse failed: corrupt or "
                   "truncated)");
        return NULL;
    }
    tok_spm *m = tok_build(mp, err, errlen);
    sentencepiece__model_proto__free_unpacked(mp, NULL);
    return m ? &m->base : NULL;
}

/* ---------------------------------------------------------------------- query -- */

/* tok_ops.piece */
const char *tok_spm_piece(const tok_model *base, int32_t id)
{
    const tok_spm *tok = (const tok_spm *)base;
    if (id < tok->n) return tok->strs + tok->pieces[id].off;
    if (id < tok->n + tok->nsent) return tok_sentinel_str[tok->n + TOK_NSENTINEL - 1 - id];
    return NULL;
}

/* tok_ops.word_start: a piece that begins with the escaped space. Sentinels, control
 * and byte pieces never do. */
int tok_spm_word_start(const tok_model *base, int32_t id)
{
    const tok_spm *tok = (const tok_spm *)base;
    if (id >= tok->n) return 0;
    const struct tok_piece *p = &tok->pieces[id];
    return p->len >= 3 && !memcmp(tok->strs + p->off, tok_ws, 3);
}

static const tok_ops spm_ops = {
    .encode = spm_encode,
    .decode = tok_spm_decode,
    .piece = tok_spm_piece,
    .word_start = tok_spm_word_start,
    .free = tok_spm_free,
};
