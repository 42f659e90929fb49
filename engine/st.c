/* Safetensors reader: mmap, header parse (cJSON), validation, sharded index.
 *
 * A file is: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {...}}
 * then the data region; offsets are relative to the data region's start (8 + N).
 *
 * Everything a file says is untrusted: each check below turns one kind of damage into a
 * message naming the file (and the tensor when there is one). Nothing here aborts on
 * file content. All tensors of a set are kept in one array sorted by name, so st_find
 * is a binary search and duplicates (within or across shards) are neighbours. */
#include "engine/st.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A real header is a few KB per hundred tensors; 100 MB is far beyond any checkpoint
 * and keeps a hostile length from making us parse gigabytes. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
/* Index files are small JSON too. */
#define ST_MAX_INDEX ((size_t)64 << 20)
/* Integers in JSON are doubles: beyond 2^53 they are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0

typedef struct st_file {
    char *path;                /* owned; for a caller's buffer, the name it was given */
    const unsigned char *data; /* [size] the whole file: map, or the caller's buffer */
    size_t size;
    void *map;        /* ours to munmap (== data), or NULL; MAP_FAILED never stored */
    int64_t mtime_ns; /* the mapped file's modification time (st_identity) */
} st_file;

struct st_set {
    st_file *files; /* [nfiles], owned */
    int nfiles;
    st_tensor *tensors; /* [ntensors] sorted by name; names owned (strdup) */
    int ntensors;
};

static void st_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void st_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

size_t st_dtype_size(st_dtype dt)
{
    switch (dt) {
    case ST_F32: return 4;
    case ST_F16: return 2;
    case ST_BF16: return 2;
    }
    return 0;
}

const char *st_dtype_name(st_dtype dt)
{
    switch (dt) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    }
    return "?";
}

/* ---- non-finite values ----
 * A value is NaN or infinite when its exponent bits are all ones: with the sign bit
 * cleared, its bits are above the largest finite value's. The scan reads whole blocks of
 * ST_SCAN_BLOCK values whose loop count is a constant, which GCC vectorises even at -O2
 * (its cheapest cost model wants no remainder loop); only a block that fails, and the
 * tail, are looked at one value at a time. It runs once per tensor at load, at about
 * the speed memory delivers the bytes. */

#define ST_SCAN_BLOCK 64

static int st_bad32(const unsigned char *p)
{
    int bad = 0;
    for (int i = 0; i < ST_SCAN_BLOCK; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, sizeof u);
        bad |= (u & 0x7fffffffu) > 0x7f7fffffu;
    }
    return bad;
}

/* F16 (max finite 0x7bff) and BF16 (0x7f7f) differ only by that bound. */
static int st_bad16(const unsigned char *p, uint16_t max_finite)
{
    int bad = 0;
    for (int i = 0; i < ST_SCAN_BLOCK; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        bad |= (uint16_t)(h & 0x7fffu) > max_finite;
    }
    return bad;
}

static int st_bad_at(const unsigned char *p, st_dtype dt, size_t i)
{
    if (dt == ST_F32) {
        uint32_t u;
        memcpy(&u, p + 4 * i, sizeof u);
        return (u & 0x7fffffffu) > 0x7f7fffffu;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, sizeof h);
    return (uint16_t)(h & 0x7fffu) > (dt == ST_F16 ? 0x7bffu : 0x7f7fu);
}

uint64_t st_identity(const st_set *set)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
#define ST_FNV(p, n) \
    for (size_t k_ = 0; k_ < (n); k_++) h = (h ^ ((const unsigned char *)(p))[k_]) * 1099511628211u
    for (int i = 0; set && i < set->nfiles; i++) {
        const st_file *f = &set->files[i];
        uint64_t size = f->size, hl = 0;
        ST_FNV(&size, sizeof size);
        ST_FNV(&f->mtime_ns, sizeof f->mtime_ns);
        if (f->size >= 8) memcpy(&hl, f->data, 8);
        if (hl > f->size - 8 || f->size < 8) hl = 0;
        ST_FNV(f->data, f->size >= 8 ? 8 + hl : 0);
    }
#undef ST_FNV
    return h;
}

void st_release(const st_set *set, const st_tensor *t)
{
    if (!set || !t || !t->nbytes) return;
    const unsigned char *d = t->data;
    for (int i = 0; i < set->nfiles; i++) {
        const st_file *f = &set->files[i];
        if (!f->map || d < f->data || d + t->nbytes > f->data + f->size) continue;
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t a = ((uintptr_t)d + pg - 1) & ~(pg - 1),
                  b = ((uintptr_t)d + t->nbytes) & ~(pg - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
        return;
    }
}

int64_t st_first_nonfinite(const st_tensor *t)
{
    size_t esz = st_dtype_size(t->dtype);
    if (!esz || !t->data) return -1;
    size_t n = t->nbytes / esz;
    const unsigned char *p = t->data;
    uint16_t max16 = t->dtype == ST_F16 ? 0x7bff : 0x7f7f;
    for (size_t i0 = 0; i0 < n; i0 += ST_SCAN_BLOCK) {
        size_t i1 = n - i0 < ST_SCAN_BLOCK ? n : i0 + ST_SCAN_BLOCK;
        if (i1 - i0 == ST_SCAN_BLOCK) {
            const unsigned char *b = p + i0 * esz;
            if (!(t->dtype == ST_F32 ? st_bad32(b) : st_bad16(b, max16))) continue;
        }
        for (size_t i = i0; i < i1; i++)
            if (st_bad_at(p, t->dtype, i)) return (int64_t)i;
    }
    return -1;
}

/* ---- duplicate JSON keys: the last wins ---- */

typedef struct st_member {
    const char *key;
    int pos; /* in the object, so that equal keys sort in file order */
    cJSON *item;
} st_member;

static int st_cmp_member(const void *a, const void *b)
{
    const st_member *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

int st_json_last_wins(cJSON *obj)
{
    if (!cJSON_IsObject(obj)) return 0;
    int n = 0;
    for (const cJSON *e = obj->child; e; e = e->next) n++;
    if (n < 2) return 0;
    st_member small[32];
    st_member *m = n <= 32 ? small : malloc((size_t)n * sizeof *m);
    if (!m) return -1;
    int i = 0;
    for (cJSON *e = obj->child; e; e = e->next, i++)
        m[i] = (st_member){ e->string ? e->string : "", i, e };
    qsort(m, (size_t)n, sizeof *m, st_cmp_member);
    for (i = 0; i + 1 < n; i++)
        if (strcmp(m[i].key, m[i + 1].key) == 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(obj, m[i].item));
    if (m != small) free(m);
    return 0;
}

/* 0 and *out set when s names a supported dtype. */
static int st_parse_dtype(const char *s, st_dtype *out)
{
    static const struct {
        const char *name;
        st_dtype dt;
    } tab[] = {
        { "F32", ST_F32 },
        { "F16", ST_F16 },
        { "BF16", ST_BF16 },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) {
            *out = tab[i].dt;
            return 0;
        }
    return -1;
}

/* A JSON number that is an exact non-negative integer. */
static int st_json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static void st_tensors_free(st_tensor *t, int n)
{
    if (!t) return;
    for (int i = 0; i < n; i++) free((char *)t[i].name);
    free(t);
}

static int st_cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sort key for the overlap check: byte range start within one file. */
typedef struct st_range {
    uint64_t begin, end;
    const char *name;
} st_range;

static int st_cmp_range(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Opens path for reading if it is a regular file: a descriptor (size in *sb), or -1 with
 * err set. O_NONBLOCK: a FIFO planted in a checkpoint directory would block open() until
 * a writer came; this way fstat refuses it as not a regular file. */
static int st_open_regular(const char *path, struct stat *sb, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        st_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        st_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Maps f->path into f. 0 or -1 with err set. A file too short to map is left unmapped
 * (f->size says how short) for st_parse_file to refuse. */
static int st_map(st_file *f, char *err, size_t errlen)
{
    struct stat sb;
    int fd = st_open_regular(f->path, &sb, err, errlen);
    if (fd < 0) return -1;
    f->size = (size_t)sb.st_size;
    f->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    if (sb.st_size < 8) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file */
    if (m == MAP_FAILED) {
        st_err(err, errlen, "%s: mmap failed: %s", f->path, strerror(errno));
        return -1;
    }
    f->map = m;
    f->data = m;
    return 0;
}

/* Parses and validates one file's header (f->data, mapped or in memory). On success
 * *out holds *nout tensors (unsorted, names owned) pointing into f->data. */
static int st_parse_file(const st_file *f, st_tensor **out, int *nout, char *err, size_t errlen)
{
    const unsigned char *p = f->data;
    const char *path = f->path;
    if (f->size < 8) {
        st_err(err, errlen, "%s: truncated: %zu bytes, too short for the 8-byte header length",
               path, f->size);
        return -1;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > ST_MAX_HEADER) {
        st_err(err, errlen,
               "%s: header length %llu is absurd (limit %llu): not a safetensors file?", path,
               (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
        return -1;
    }
    if (n > f->size - 8) {
        st_err(err, errlen,
               "%s: truncated: header length %llu past the end of the file (%zu bytes)", path,
               (unsigned long long)n, f->size);
        return -1;
    }
    const unsigned char *data = p + 8 + n;
    uint64_t data_size = f->size - 8 - n;

    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)n);
    if (!root) {
        st_err(err, errlen, "%s: header is not valid JSON", path);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        st_err(err, errlen, "%s: header is not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }

    int cap = cJSON_GetArraySize(root);
    st_tensor *ts = calloc(cap > 0 ? (size_t)cap : 1, sizeof *ts);
    st_range *rs = calloc(cap > 0 ? (size_t)cap : 1, sizeof *rs);
    int nt = 0;
    if (!ts || !rs) {
        st_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }

    for (cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                st_err(err, errlen, "%s: __metadata__ is not a JSON object", path);
                goto fail;
            }
            continue;
        }
        if (!cJSON_IsObject(e)) {
            st_err(err, errlen, "%s: tensor '%.200s': entry is not a JSON object", path, name);
            goto fail;
        }
        if (st_json_last_wins(e) != 0) {
            st_err(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        st_tensor *t = &ts[nt];

        if (!cJSON_IsString(jd)) {
            st_err(err, errlen, "%s: tensor '%.200s': dtype missing or not a string", path, name);
            goto fail;
        }
        if (st_parse_dtype(jd->valuestring, &t->dtype) != 0) {
            st_err(err, errlen,
                   "%s: tensor '%.200s': unsupported dtype '%.32s' (F32, F16, BF16 only)", path,
                   name, jd->valuestring);
            goto fail;
        }

        if (!cJSON_IsArray(js)) {
            st_err(err, errlen, "%s: tensor '%.200s': shape missing or not an array", path, name);
            goto fail;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd > ST_MAX_DIMS) {
            st_err(err, errlen, "%s: tensor '%.200s': shape has %d dims, too many dims (max %d)",
                   path, name, nd, ST_MAX_DIMS);
            goto fail;
        }
        /* Product of dims in elements, checked against overflow at every step; any size
         * beyond the data region is rejected later anyway, so cap at 2^62. */
        uint64_t elems = 1;
        int d = 0;
        for (const cJSON *x = js->child; x; x = x->next, d++) {
            uint64_t v;
            if (st_json_uint(x, &v) != 0) {
                st_err(err, errlen, "%s: tensor '%.200s': shape[%d] is not a non-negative integer",
                       path, name, d);
                goto fail;
            }
            if (v != 0 && elems > ((uint64_t)1 << 62) / v) {
                st_err(err, errlen, "%s: tensor '%.200s': shape product overflows", path, name);
                goto fail;
            }
            elems *= v;
            t->shape[d] = (int64_t)v;
        }
        t->ndim = nd;

        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
            st_err(err, errlen, "%s: tensor '%.200s': data_offsets malformed (want [begin, end])",
                   path, name);
            goto fail;
        }
        uint64_t begin, end;
        if (st_json_uint(jo->child, &begin) != 0 || st_json_uint(jo->child->next, &end) != 0) {
            st_err(err, errlen,
                   "%s: tensor '%.200s': data_offsets malformed (not non-negative integers)", path,
                   name);
            goto fail;
        }
        if (end < begin) {
            st_err(err, errlen, "%s: tensor '%.200s': data_offsets end %llu < begin %llu", path,
                   name, (unsigned long long)end, (unsigned long long)begin);
            goto fail;
        }
        if (end > data_size) {
            st_err(err, errlen,
                   "%s: tensor '%.200s': data_offsets end %llu past the end of the data "
                   "region (%llu bytes): truncated or out of range",
                   path, name, (unsigned long long)end, (unsigned long long)data_size);
            goto fail;
        }
        uint64_t esz = st_dtype_size(t->dtype);
        if (elems > UINT64_MAX / esz || elems * esz != end - begin) {
            st_err(err, errlen,
                   "%s: tensor '%.200s': size %llu bytes does not match shape "
                   "(%llu elements of %s)",
                   path, name, (unsigned long long)(end - begin), (unsigned long long)elems,
                   st_dtype_name(t->dtype));
            goto fail;
        }
        t->name = strdup(name);
        if (!t->name) {
            st_err(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        t->data = data + begin;
        t->nbytes = (size_t)(end - begin);
        t->file = f->path;
        rs[nt] = (st_range){ begin, end, t->name };
        nt++;
    }

    /* Ranges may not share bytes; empty tensors take no bytes and never overlap. */
    qsort(rs, (size_t)nt, sizeof *rs, st_cmp_range);
    const st_range *prev = NULL;
    for (int i = 0; i < nt; i++) {
        if (rs[i].begin == rs[i].end) continue;
        if (prev && rs[i].begin < prev->end) {
            st_err(err, errlen,
                   "%s: tensor '%.200s': data_offsets [%llu, %llu) overlapping tensor "
                   "'%.200s' [%llu, %llu)",
                   path, rs[i].name, (unsigned long long)rs[i].begin, (unsigned long long)rs[i].end,
                   prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end);
            goto fail;
        }
        prev = &rs[i];
    }

    free(rs);
    cJSON_Delete(root);
    *out = ts;
    *nout = nt;
    return 0;

fail:
    free(rs);
    st_tensors_free(ts, nt);
    cJSON_Delete(root);
    return -1;
}

/* Sorts all tensors by name and rejects duplicates. */
static int st_index(st_set *s, char *err, size_t errlen)
{
    qsort(s->tensors, (size_t)s->ntensors, sizeof *s->tensors, st_cmp_name);
    for (int i = 1; i < s->ntensors; i++) {
        const st_tensor *a = &s->tensors[i - 1], *b = &s->tensors[i];
        if (strcmp(a->name, b->name) == 0) {
            if (a->file == b->file)
                st_err(err, errlen, "%s: tensor '%.200s': duplicate tensor name in header", a->file,
                       a->name);
            else
                st_err(err, errlen, "%s: tensor '%.200s': duplicate tensor name, also in %s",
                       b->file, b->name, a->file);
            return -1;
        }
    }
    return 0;
}

/* One more file of s, its path copied (data and size still unset); NULL when out of
 * memory. Counted at once, so that st_close releases it on any later failure. */
static st_file *st_new_file(st_set *s, const char *path, char *err, size_t errlen)
{
    st_file *nf = realloc(s->files, (size_t)(s->nfiles + 1) * sizeof *nf);
    if (!nf) {
        st_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    s->files = nf;
    st_file *f = &s->files[s->nfiles];
    *f = (st_file){ 0 };
    f->path = strdup(path);
    if (!f->path) {
        st_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    s->nfiles++;
    return f;
}

/* Parses file f of s and adds its tensors to s. */
static int st_add_tensors(st_set *s, const st_file *f, char *err, size_t errlen)
{
    st_tensor *ts = NULL;
    int nt = 0;
    if (st_parse_file(f, &ts, &nt, err, errlen) != 0) return -1;
    st_tensor *all = realloc(s->tensors, (size_t)(s->ntensors + nt + 1) * sizeof *all);
    if (!all) {
        st_tensors_free(ts, nt);
        st_err(err, errlen, "%s: out of memory", f->path);
        return -1;
    }
    memcpy(all + s->ntensors, ts, (size_t)nt * sizeof *ts);
    free(ts); /* names now owned by s->tensors */
    s->tensors = all;
    s->ntensors += nt;
    return 0;
}

/* Maps and parses one more file into s. */
static int st_add_file(st_set *s, const char *path, char *err, size_t errlen)
{
    st_file *f = st_new_file(s, path, err, errlen);
    if (!f || st_map(f, err, errlen) != 0) return -1;
    return st_add_tensors(s, f, err, errlen);
}

void st_close(st_set **set)
{
    if (!set || !*set) return;
    st_set *s = *set;
    st_tensors_free(s->tensors, s->ntensors);
    for (int i = 0; i < s->nfiles; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    free(s->files);
    free(s);
    *set = NULL;
}

st_set *st_open_mem(const void *buf, size_t size, const char *name, char *err, size_t errlen)
{
    if (!name) name = "(memory)";
    st_set *s = calloc(1, sizeof *s);
    if (!s) {
        st_err(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    st_file *f = st_new_file(s, name, err, errlen);
    if (f) {
        f->data = buf;
        f->size = buf ? size : 0;
    }
    if (!f || st_add_tensors(s, f, err, errlen) != 0 || st_index(s, err, errlen) != 0) {
        st_close(&s);
        return NULL;
    }
    return s;
}

st_set *st_open_file(const char *path, char *err, size_t errlen)
{
    st_set *s = calloc(1, sizeof *s);
    if (!s) {
        st_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (st_add_file(s, path, err, errlen) != 0 || st_index(s, err, errlen) != 0) {
        st_close(&s);
        return NULL;
    }
    return s;
}

char *st_read_file(const char *path, size_t limit, size_t *len, char *err, size_t errlen)
{
    struct stat sb;
    int fd = st_open_regular(path, &sb, err, errlen);
    if (fd < 0) return NULL;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        st_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            /* up to limit + 1 bytes: a file of exactly `limit` reads to its end */
            if (n > limit) {
                st_err(err, errlen, "%s: file too large (limit %zu bytes)", path, limit);
                goto fail;
            }
            cap = cap ? cap * 2 : 4096;
            if (cap > limit + 1) cap = limit + 1;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                st_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    if (ferror(fp)) {
        st_err(err, errlen, "%s: read error", path);
        goto fail;
    }
    fclose(fp);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    fclose(fp);
    return NULL;
}

static int st_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sharded form: model.safetensors.index.json {"weight_map": {tensor: shard}}. */
static st_set *st_open_index(const char *dir, const char *ipath, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = st_read_file(ipath, ST_MAX_INDEX, &len, err, errlen);
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    st_set *s = NULL;
    const char **shards = NULL;
    char path[4096];
    if (!root) {
        st_err(err, errlen, "%s: not valid JSON", ipath);
        goto fail;
    }
    if (st_json_last_wins(root) != 0) {
        st_err(err, errlen, "%s: out of memory", ipath);
        goto fail;
    }
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        st_err(err, errlen, "%s: no \"weight_map\" object", ipath);
        goto fail;
    }
    /* A tensor listed twice is in the shard named last (HF reads the map as a dict). */
    if (st_json_last_wins(wm) != 0) {
        st_err(err, errlen, "%s: out of memory", ipath);
        goto fail;
    }
    int nw = cJSON_GetArraySize(wm);
    if (nw == 0) {
        st_err(err, errlen, "%s: weight_map is empty", ipath);
        goto fail;
    }
    shards = calloc((size_t)nw, sizeof *shards);
    if (!shards) {
        st_err(err, errlen, "%s: out of memory", ipath);
        goto fail;
    }
    int ns = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        const char *tn = e->string ? e->string : "";
        if (!cJSON_IsString(e)) {
            st_err(err, errlen, "%s: tensor '%.200s': shard name is not a string", ipath, tn);
            goto fail;
        }
        const char *sh = e->valuestring;
        /* A shard is a file beside the index: no paths, so the index cannot reach out. */
        if (sh[0] == '\0' || strchr(sh, '/') || strstr(sh, "..")) {
            st_err(err, errlen,
                   "%s: tensor '%.200s': bad shard name '%.200s' (must be a plain "
                   "file name, no '/' or '..')",
                   ipath, tn, sh);
            goto fail;
        }
        shards[ns++] = sh;
    }
    qsort(shards, (size_t)ns, sizeof *shards, st_cmp_str);

    s = calloc(1, sizeof *s);
    if (!s) {
        st_err(err, errlen, "%s: out of memory", ipath);
        goto fail;
    }
    for (int i = 0; i < ns; i++) {
        if (i > 0 && strcmp(shards[i], shards[i - 1]) == 0) continue; /* each shard once */
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, shards[i]) >= sizeof path) {
            st_err(err, errlen, "%s: shard path too long", ipath);
            goto fail;
        }
        if (st_add_file(s, path, err, errlen) != 0) goto fail;
    }
    if (st_index(s, err, errlen) != 0) goto fail;

    /* Every tensor the index names must be in the shard it names. */
    for (const cJSON *e = wm->child; e; e = e->next) {
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        const st_tensor *t = st_find(s, e->string);
        if (!t || strcmp(t->file, path) != 0) {
            st_err(err, errlen, "%s: tensor '%.200s': listed in %s but missing from that shard%s%s",
                   path, e->string, ipath, t ? ", found in " : "", t ? t->file : "");
            goto fail;
        }
    }
    free(shards);
    cJSON_Delete(root);
    return s;

fail:
    st_close(&s);
    free(shards);
    cJSON_Delete(root);
    return NULL;
}

st_set *st_open_dir(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors", dir) >= sizeof path) {
        st_err(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    if (access(path, F_OK) == 0) return st_open_file(path, err, errlen);
    if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir) >=
        sizeof path) {
        st_err(err, errlen, "%s: path too long", dir);
        return NULL;
    }
    if (access(path, F_OK) == 0) return st_open_index(dir, path, err, errlen);
    st_err(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", dir);
    return NULL;
}

const st_tensor *st_find(const st_set *set, const char *name)
{
    if (!set || !name) return NULL;
    st_tensor key = { .name = name };
    return bsearch(&key, set->tensors, (size_t)set->ntensors, sizeof key, st_cmp_name);
}

int st_count(const st_set *set) { return set ? set->ntensors : 0; }

const st_tensor *st_at(const st_set *set, int i)
{
    if (!set || i < 0 || i >= set->ntensors) return NULL;
    return &set->tensors[i];
}
