/* Marian (opus-mt) tokenizer behind engine/tok.h: `source.spm` + `target.spm` +
 * `vocab.json` in a model directory, id for id with transformers' MarianTokenizer.
 *
 * Encoding a text (TOK_TARGET: target-side text, with target.spm):
 *   1. the strings </s>, <unk>, <pad> are cut out first and become their ids (<s> and
 *      <mask> are plain text to Marian);
 *   2. in each other chunk, a language code `>>xxx<<` at its very start is one token
 *      (vocab.json's id, <unk> when absent), and every `>>...<<` anywhere in the chunk
 *      is removed before SentencePiece sees it (MarianTokenizer's
 *      language_code_re = ">>.+<<": `.` stops at a newline, `.+` is greedy);
 *   3. the rest goes through the SentencePiece model (engine/tok_spm.c, loaded from the
 *      .spm file as is) and each piece maps through vocab.json (a piece vocab.json lacks
 *      is <unk>; an unknown piece is looked up by its text, as sentencepiece names it).
 * TOK_ADD_SPECIAL appends </s>. Spans are the input bytes of each id, through the
 * removed language codes.
 *
 * Decoding: </s>, <unk> and <pad> are skipped (skip_special_tokens), the other ids'
 * vocab.json pieces are joined as target.spm's decode_pieces joins them (its control
 * pieces vanish, U+2581 becomes a space), and surrounding whitespace is stripped as
 * Python's str.strip() does.
 *
 * The .spm files are SentencePiece models as engine/tok_spm.c loads them; Marian text goes
 * through tok_spm_segment, which leaves `<extra_id_N>` (T5's sentinels) plain text.
 *
 * Read-only after loading: share it between threads. */
#include "engine/tok_spm_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define MAR_MAX_FILE ((size_t)256 << 20)
#define MAR_MAX_ID (1 << 24)
/* Texts whose pieces fit are encoded without the heap. */
#define MAR_STACK_IDS 256

enum { MAR_EOS, MAR_UNK, MAR_PAD, MAR_NSPECIAL };
static const char *const mar_special_str[MAR_NSPECIAL] = { "</s>", "<unk>", "<pad>" };

typedef struct tok_marian {
    tok_model base;      /* first: a tok_model * points here */
    tok_model *spm[2];   /* source.spm, target.spm; owns */
    int32_t *spm_map[2]; /* [that model's ids] -> vocab id (<unk> when absent) */
    int spm_n[2];
    int32_t n_vocab;
    uint32_t *off, *len; /* [n_vocab] into strs; off UINT32_MAX: no such id */
    char *strs;
    uint32_t *smap; /* piece -> id + 1, open addressing */
    size_t smap_mask;
    uint8_t *quiet; /* [n_vocab] 1: decodes to nothing (target.spm control) */
    int32_t special[MAR_NSPECIAL];
} tok_marian;

static void mar_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mar_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    cm_vfmt(err, errlen, fmt, ap);
    va_end(ap);
}

static inline uint64_t mar_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* vocab.json's id of the piece s[0..n), -1 if none. */
static int32_t mar_find(const tok_marian *m, const char *s, size_t n)
{
    for (size_t i = mar_hash(s, n) & m->smap_mask;; i = (i + 1) & m->smap_mask) {
        uint32_t v = m->smap[i];
        if (!v) return -1;
        int32_t id = (int32_t)v - 1;
        if (m->len[id] == n && !memcmp(m->strs + m->off[id], s, n)) return id;
    }
}

/* ------------------------------------------------------------------- encode -- */

/* End of the `>>.+<<` match at t[p..e) (t[p], t[p+1] == '>'), 0 if none: the last "<<"
 * on the line that leaves at least one character between the marks. */
static size_t mar_code_end(const char *t, size_t p, size_t e)
{
    const char *nl = memchr(t + p, '\n', e - p);
    size_t le = nl ? (size_t)(nl - t) : e;
    for (size_t q = le; q >= p + 5; q--)
        if (t[q - 2] == '<' && t[q - 1] == '<') return q;
    return 0;
}

/* A piece of the text kept for SentencePiece: `len` bytes from input offset `orig`. */
struct mar_seg {
    size_t at, orig, len; /* at: offset in the kept text */
};

/* Maps an offset x of the kept text back to the input. */
static size_t mar_orig(const struct mar_seg *sg, size_t ns, size_t x)
{
    size_t k = 0;
    while (k + 1 < ns && sg[k + 1].at <= x) k++;
    return sg[k].orig + (x - sg[k].at);
}

/* Encodes the chunk t[b..e) (no special strings in it). */
static int mar_chunk(const tok_marian *m, int side, const char *t, size_t b, size_t e, tok_out *o)
{
    size_t start = b;
    if (e - b >= 2 && t[b] == '>' && t[b + 1] == '>') {
        size_t ce = mar_code_end(t, b, e);
        if (ce) {
            int32_t id = mar_find(m, t + b, ce - b);
            tok_emit(o, id >= 0 ? id : m->special[MAR_UNK], b, ce);
        }
    }
    /* Every >>...<< goes (re.sub); what stays is gathered in segments. */
    struct mar_seg ssg[8], *sg = ssg;
    size_t ns = 0, nsg = 8, kept = 0;
    char *buf = NULL;
    int rc = 0;
    size_t p = start, seg = start;
    int removed = 0;
    while (p + 1 < e) {
        const char *g = memmem(t + p, e - p, ">>", 2);
        if (!g) break;
        p = (size_t)(g - t);
        size_t ce = mar_code_end(t, p, e);
        if (!ce) {
            p++;
            continue;
        }
        if (p > seg) {
            if (ns == nsg) {
                struct mar_seg *n2 = malloc(2 * nsg * sizeof *n2);
                if (!n2) {
                    rc = TOK_ENOMEM;
                    goto out;
                }
                memcpy(n2, sg, ns * sizeof *sg);
                if (sg != ssg) free(sg);
                sg = n2;
                nsg *= 2;
            }
            sg[ns++] = (struct mar_seg){ kept, seg, p - seg };
            kept += p - seg;
        }
        p = seg = ce;
        removed = 1;
    }
    const char *text = t + start;
    size_t len = e - start;
    if (removed) {
        if (e > seg) {
            if (ns == nsg) {
                struct mar_seg *n2 = malloc(2 * nsg * sizeof *n2);
                if (!n2) {
                    rc = TOK_ENOMEM;
                    goto out;
                }
                memcpy(n2, sg, ns * sizeof *sg);
                if (sg != ssg) free(sg);
                sg = n2;
                nsg *= 2;
            }
            sg[ns++] = (struct mar_seg){ kept, seg, e - seg };
            kept += e - seg;
        }
        buf = malloc(kept + 1);
        if (!buf) {
            rc = TOK_ENOMEM;
            goto out;
        }
        for (size_t k = 0; k < ns; k++) memcpy(buf + sg[k].at, t + sg[k].orig, sg[k].len);
        if (!ns) sg[ns++] = (struct mar_seg){ 0, e, 0 };
        text = buf;
        len = kept;
    } else {
        sg[ns++] = (struct mar_seg){ 0, start, len };
    }
    if (!len) goto out;

    /* SentencePiece's own ids first, then through vocab.json. */
    const tok_model *spm = m->spm[side];
    int32_t sids[MAR_STACK_IDS], *ids = sids;
    tok_span sspans[MAR_STACK_IDS], *spans = sspans;
    tok_out so = { ids, spans, MAR_STACK_IDS, 0, 0 };
    rc = tok_spm_segment((const tok_spm *)spm, text, len, &so, 0);
    if (rc < 0) goto out;
    if (so.n > MAR_STACK_IDS) {
        size_t n = so.n;
        ids = malloc(n * sizeof *ids);
        spans = malloc(n * sizeof *spans);
        if (!ids || !spans) {
            rc = TOK_ENOMEM;
            goto out2;
        }
        so = (tok_out){ ids, spans, n, 0, 0 };
        rc = tok_spm_segment((const tok_spm *)spm, text, len, &so, 0);
        if (rc < 0) goto out2;
    }
    const int32_t spm_unk = tok_unk_id(spm);
    for (size_t i = 0; i < so.n; i++) {
        int32_t sid = ids[i];
        int32_t id = sid >= 0 && sid < m->spm_n[side] ? m->spm_map[side][sid] : m->special[MAR_UNK];
        if (sid == spm_unk && spans[i].end > spans[i].begin) {
            /* sentencepiece names an unknown piece by its text, and vocab.json (shared
             * by both sides) may well have it. */
            int32_t v = mar_find(m, text + spans[i].begin, spans[i].end - spans[i].begin);
            if (v >= 0) id = v;
        }
        size_t bb = 0, ee = 0;
        if (o->spans) {
            bb = mar_orig(sg, ns, spans[i].begin);
            ee = mar_orig(sg, ns, spans[i].end);
            if (ee < bb) ee = bb;
        }
        tok_emit(o, id, bb, ee);
    }
out2:
    if (ids != sids) free(ids);
    if (spans != sspans) free(spans);
out:
    if (sg != ssg) free(sg);
    free(buf);
    return rc;
}

/* tok_ops.encode */
static int mar_encode(const tok_model *base, const char *text, size_t len, tok_out *o)
{
    const tok_marian *m = (const tok_marian *)base;
    int side = (o->flags & TOK_TARGET) ? 1 : 0;
    size_t seg = 0, i = 0;
    while (i < len) {
        const char *lt = memchr(text + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - text);
        int k = -1;
        size_t sl = 0;
        for (int s = 0; s < MAR_NSPECIAL; s++) {
            size_t l = strlen(mar_special_str[s]);
            if (l <= len - i && !memcmp(lt, mar_special_str[s], l)) {
                k = s;
                sl = l;
                break;
            }
        }
        if (k < 0) {
            i++;
            continue;
        }
        if (i > seg) {
            int rc = mar_chunk(m, side, text, seg, i, o);
            if (rc < 0) return rc;
        }
        tok_emit(o, m->special[k], i, i + sl);
        i += sl;
        seg = i;
    }
    return len > seg ? mar_chunk(m, side, text, seg, len, o) : 0;
}

/* ------------------------------------------------------------------- decode -- */

/* Python's str.isspace for the code point at s; its length in *l. */
static int mar_pyspace(const unsigned char *s, size_t n, size_t *l)
{
    unsigned c = s[0];
    *l = 1;
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    uint32_t cp;
    if (c < 0xE0 && n >= 2) {
        *l = 2;
        cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
    } else if (c < 0xF0 && n >= 3) {
        *l = 3;
        cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    } else {
        *l = n < 4 ? n : 4;
        return 0;
    }
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* tok_ops.decode */
static int mar_decode(const tok_model *base, const int32_t *ids, int n, char *out, size_t cap)
{
    const tok_marian *m = (const tok_marian *)base;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->n_vocab || m->off[ids[i]] == UINT32_MAX) return TOK_ERANGE;
        total += m->len[ids[i]];
    }
    char *buf = malloc(total + 1);
    if (!buf) return TOK_ENOMEM;
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id == m->special[MAR_EOS] || id == m->special[MAR_UNK] || id == m->special[MAR_PAD] ||
            m->quiet[id])
            continue;
        const char *s = m->strs + m->off[id], *e = s + m->len[id];
        while (s < e) {
            const char *u = memmem(s, (size_t)(e - s), "\xe2\x96\x81", 3);
            const char *stop = u ? u : e;
            memcpy(buf + w, s, (size_t)(stop - s));
            w += (size_t)(stop - s);
            if (!u) break;
            buf[w++] = ' ';
            s = u + 3;
        }
    }
    /* str.strip(): leading, then trailing whitespace. */
    const unsigned char *b = (const unsigned char *)buf;
    size_t lo = 0, hi = w, l;
    while (lo < hi && mar_pyspace(b + lo, hi - lo, &l)) lo += l;
    while (hi > lo) {
        size_t s = hi - 1;
        while (s > lo && (b[s] & 0xC0) == 0x80) s--;
        if (!mar_pyspace(b + s, hi - s, &l)) break;
        hi = s;
    }
    size_t len = hi - lo;
    if (cap && out) {
        size_t c = len < cap - 1 ? len : cap - 1;
        memcpy(out, buf + lo, c);
        out[c] = '\0';
    }
    free(buf);
    if (len > INT_MAX) return TOK_ENOMEM;
    return (int)len;
}

/* -------------------------------------------------------------------- query -- */

static const char *mar_piece(const tok_model *base, int32_t id)
{
    const tok_marian *m = (const tok_marian *)base;
    if (id >= m->n_vocab || m->off[id] == UINT32_MAX) return NULL;
    return m->strs + m->off[id];
}

/* A piece that begins with U+2581, as SentencePiece's. */
static int mar_word_start(const tok_model *base, int32_t id)
{
    const tok_marian *m = (const tok_marian *)base;
    if (id >= m->n_vocab || m->off[id] == UINT32_MAX) return 0;
    return m->len[id] >= 3 && !memcmp(m->strs + m->off[id], "\xe2\x96\x81", 3);
}

/* --------------------------------------------------------------------- load -- */

static void mar_free(tok_model *base)
{
    tok_marian *m = (tok_marian *)base;
    if (!m) return;
    for (int s = 0; s < 2; s++) {
        tok_free(&m->spm[s]);
        free(m->spm_map[s]);
    }
    free(m->off);
    free(m->len);
    free(m->strs);
    free(m->smap);
    free(m->quiet);
    free(m);
}

static char *mar_read(const char *dir, const char *name, char *path, size_t pathlen, size_t *len,
                      char *err, size_t errlen)
{
    snprintf(path, pathlen, "%s/%s", dir, name);
    char *buf;
    int rc = cm_read_file(path, MAR_MAX_FILE, &buf, len);
    if (rc == -EFBIG) {
        mar_seterr(err, errlen, "%s: larger than %zu bytes", path, MAR_MAX_FILE);
        return NULL;
    }
    if (rc < 0) {
        mar_seterr(err, errlen, "%s: %s", path, strerror(-rc));
        return NULL;
    }
    return buf;
}

/* vocab.json: a JSON object of piece -> id. */
static int mar_load_vocab(tok_marian *m, const char *path, const char *js, size_t len, char *err,
                          size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(js, len);
    if (!root) {
        mar_seterr(err, errlen, "%s: not valid JSON", path);
        return -1;
    }
    int rc = -1;
    size_t bytes = 0, count = 0;
    int32_t maxid = -1;
    const cJSON *e;
    if (!cJSON_IsObject(root)) {
        mar_seterr(err, errlen, "%s: not a JSON object mapping pieces to ids", path);
        goto out;
    }
    cJSON_ArrayForEach (e, root) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v != floor(v) || v < 0 || v >= MAR_MAX_ID) {
            mar_seterr(err, errlen, "%s: the id of piece \"%.40s\" is not an integer in 0..%d",
                       path, e->string ? e->string : "", MAR_MAX_ID - 1);
            goto out;
        }
        if (!e->string || !e->string[0] || !cm_utf8_valid(e->string, strlen(e->string), NULL)) {
            mar_seterr(err, errlen, "%s: the piece with id %d is empty or not UTF-8", path, (int)v);
            goto out;
        }
        if ((int32_t)v > maxid) maxid = (int32_t)v;
        bytes += strlen(e->string) + 1;
        count++;
    }
    if (!count) {
        mar_seterr(err, errlen, "%s: no pieces", path);
        goto out;
    }
    m->n_vocab = maxid + 1;
    m->off = malloc((size_t)m->n_vocab * sizeof *m->off);
    m->len = calloc((size_t)m->n_vocab, sizeof *m->len);
    m->strs = malloc(bytes);
    m->quiet = calloc((size_t)m->n_vocab, 1);
    size_t slots = 1024;
    while (slots < 2 * count) slots *= 2;
    m->smap = calloc(slots, sizeof *m->smap);
    m->smap_mask = slots - 1;
    if (!m->off || !m->len || !m->strs || !m->quiet || !m->smap) {
        mar_seterr(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (int32_t i = 0; i < m->n_vocab; i++) m->off[i] = UINT32_MAX;
    size_t w = 0;
    cJSON_ArrayForEach (e, root) {
        int32_t id = (int32_t)e->valuedouble;
        size_t n = strlen(e->string);
        memcpy(m->strs + w, e->string, n + 1);
        m->off[id] = (uint32_t)w;
        m->len[id] = (uint32_t)n;
        w += n + 1;
        /* A repeated piece: the later id, as a Python dict keeps it. */
        for (size_t i = mar_hash(e->string, n) & m->smap_mask;; i = (i + 1) & m->smap_mask) {
            uint32_t v = m->smap[i];
            if (!v || (m->len[v - 1] == n && !memcmp(m->strs + m->off[v - 1], e->string, n))) {
                m->smap[i] = (uint32_t)id + 1;
                break;
            }
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* Loads one .spm and maps its ids to vocab.json's. */
static int mar_load_spm(tok_marian *m, int side, const char *dir, const char *name, char *err,
                        size_t errlen)
{
    char path[4096];
    size_t len;
    char *buf = mar_read(dir, name, path, sizeof path, &len, err, errlen);
    if (!buf) return -1;
    char why[256] = "";
    m->spm[side] = tok_spm_load_mem(buf, len, why, sizeof why);
    free(buf);
    if (!m->spm[side]) {
        mar_seterr(err, errlen, "%s: %s", path, why);
        return -1;
    }
    const tok_model *spm = m->spm[side];
    int n = spm->vocab_size + spm->n_sentinels;
    m->spm_n[side] = n;
    m->spm_map[side] = malloc((size_t)n * sizeof(int32_t));
    if (!m->spm_map[side]) {
        mar_seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *p = tok_piece(spm, i);
        int32_t id = p ? mar_find(m, p, strlen(p)) : -1;
        m->spm_map[side][i] = id >= 0 ? id : m->special[MAR_UNK];
    }
    return 0;
}

static const tok_ops mar_ops;

tok_model *tok_marian_open_dir(const char *dir, char *err, size_t errlen)
{
    char vpath[4096];
    size_t vlen;
    tok_marian *m = calloc(1, sizeof *m);
    if (!m) {
        mar_seterr(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    char *vj = mar_read(dir, "vocab.json", vpath, sizeof vpath, &vlen, err, errlen);
    if (!vj) goto fail;
    int rc = mar_load_vocab(m, vpath, vj, vlen, err, errlen);
    free(vj);
    if (rc < 0) goto fail;
    for (int i = 0; i < MAR_NSPECIAL; i++) {
        m->special[i] = mar_find(m, mar_special_str[i], strlen(mar_special_str[i]));
        if (m->special[i] < 0) {
            mar_seterr(err, errlen, "%s: lacks the piece %s", vpath, mar_special_str[i]);
            goto fail;
        }
    }
    if (mar_load_spm(m, 0, dir, "source.spm", err, errlen) < 0 ||
        mar_load_spm(m, 1, dir, "target.spm", err, errlen) < 0)
        goto fail;
    /* target.spm's control pieces (<s>, </s>) decode to nothing. */
    const tok_model *tgt = m->spm[1];
    const int ctl[3] = { tok_eos_id(tgt), tok_bos_id(tgt), tok_pad_id(tgt) };
    for (int c = 0; c < 3; c++) {
        const char *p = ctl[c] >= 0 ? tok_piece(tgt, ctl[c]) : NULL;
        int32_t id = p ? mar_find(m, p, strlen(p)) : -1;
        if (id >= 0) m->quiet[id] = 1;
    }

    m->base = (tok_model){
        .ops = &mar_ops,
        .kind = "marian",
        .vocab_size = m->n_vocab,
        .eos_id = m->special[MAR_EOS],
        .pad_id = m->special[MAR_PAD],
        .unk_id = m->special[MAR_UNK],
        .bos_id = -1,
        .n_sentinels = 0,
        .sentinel0 = -1,
    };
    /* MarianTokenizer: text </s>; a pair A B </s>. */
    m->base.specials.tail[m->base.specials.n_tail++] = m->special[MAR_EOS];
    return &m->base;
fail:
    mar_free(&m->base);
    return NULL;
}

static const tok_ops mar_ops = {
    .encode = mar_encode,
    .decode = mar_decode,
    .piece = mar_piece,
    .word_start = mar_word_start,
    .free = mar_free,
};
