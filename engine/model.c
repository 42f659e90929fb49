/* Model loading: config.json through the architecture table, then the entry binds its
 * tensors with the helpers here.
 *
 * Matrix weights (every Linear layer, the token embeddings and lm_head: eng_bind_lin,
 * eng_bind_mat) are held in the type eng_model_params.weights asks for (docs/models.md,
 * "Weight types"): auto keeps the checkpoint's own type, and a tensor already of the
 * held type is used in place from the mmap (no copy; F32 needs 4-byte alignment in the
 * file, F16/BF16 2-byte, else it is copied). Any other is converted once here into
 * memory the model owns (owned_bytes), and the source pages are dropped from the
 * process (st_release). The small vectors and tables (norm weights, biases, position
 * and relative-bias tables: eng_bind) are always F32: converted when the checkpoint has
 * them in half precision (a few KB per layer). */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"
#include "engine/hfconfig.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

eng_model_params eng_model_default_params(void)
{
    return (eng_model_params){ .n_threads = 0, .weights = ENG_WEIGHTS_AUTO };
}

static const char *const ml_weights_names[] = { "auto", "f32", "bf16", "f16", "int8" };

int eng_weights_parse(const char *s)
{
    for (int i = 0; s && i < (int)(sizeof ml_weights_names / sizeof *ml_weights_names); i++)
        if (strcmp(s, ml_weights_names[i]) == 0) return i;
    return -1;
}

const char *eng_weights_name(int w)
{
    return w >= 0 && w < (int)(sizeof ml_weights_names / sizeof *ml_weights_names)
               ? ml_weights_names[w]
               : "?";
}

eng_weights eng_model_weights(const eng_model *m) { return m ? m->weights : ENG_WEIGHTS_AUTO; }

size_t eng_model_resident_bytes(const eng_model *m)
{
    return m ? m->mapped_bytes + m->owned_bytes : 0;
}

const eng_config *eng_model_config(const eng_model *model) { return model ? &model->cfg : NULL; }

eng_gen_params eng_model_gen_params(const eng_model *m, unsigned *set)
{
    if (set) *set = m ? m->gen_set : 0;
    return m ? m->gen : eng_gen_default_params();
}

const char *eng_strerror(int status)
{
    switch (status) {
    case ENG_OK: return "ok";
    case ENG_EINVAL: return "invalid argument";
    case ENG_ENOMEM: return "out of memory";
    case ENG_ETOOLONG: return "input or batch larger than the context was sized for";
    case ENG_ENONFINITE: return "the model computed a NaN or an infinity (damaged weights?)";
    default: return "unknown engine error";
    }
}

int eng_relative_bucket(int relative_position, int bidirectional, int num_buckets, int max_distance)
{
    int bucket = 0;
    int n = num_buckets;
    int rp = relative_position;
    if (bidirectional) {
        n /= 2;
        if (rp > 0) bucket += n;
        rp = rp < 0 ? -rp : rp;
    } else {
        rp = rp < 0 ? -rp : 0;
    }
    int max_exact = n / 2;
    if (rp < max_exact) return bucket + rp;
    /* HF computes this in float32: log(rp / max_exact) / log(max_distance / max_exact)
     * (the latter a Python double, applied to a float32 tensor), then truncates. */
    float l = logf((float)rp / (float)max_exact);
    l = l / (float)log((double)max_distance / (double)max_exact);
    l = l * (float)(n - max_exact);
    int large = max_exact + (int)l;
    if (large > n - 1) large = n - 1;
    return bucket + large;
}

static void ml_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ml_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Element i of t as F32. */
static float ml_value(const st_tensor *t, size_t i)
{
    const unsigned char *src = t->data;
    if (t->dtype == ST_F32) {
        float f;
        memcpy(&f, src + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, src + 2 * i, 2);
    return t->dtype == ST_F16 ? eng_f16_to_f32(h) : eng_bf16_to_f32(h);
}

/* Finds `name` and checks its shape and values; NULL with the reason in err. */
static const st_tensor *ml_find(eng_model *m, const char *name, int64_t d0, int64_t d1, char *err,
                                size_t errlen)
{
    const st_tensor *t = st_find(m->st, name);
    if (!t) {
        ml_err(err, errlen, "%s: missing tensor '%s'", m->dir, name);
        return NULL;
    }
    int want_ndim = d1 > 0 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != d0 || (want_ndim == 2 && t->shape[1] != d1)) {
        char got[96] = "", want[64];
        size_t len = 0;
        for (int i = 0; i < t->ndim && len < sizeof got; i++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "",
                                    (long long)t->shape[i]);
        if (want_ndim == 2) snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        else snprintf(want, sizeof want, "%lld", (long long)d0);
        ml_err(err, errlen, "%s: tensor '%s' has shape [%s], expected [%s] from config.json",
               t->file, name, got, want);
        return NULL;
    }
    /* A NaN or infinite weight makes every output it reaches NaN, which greedy search
     * would turn into a run of token 0 and so an empty text that looks like success. */
    int64_t bad = st_first_nonfinite(t);
    if (bad >= 0) {
        float v = ml_value(t, (size_t)bad);
        ml_err(err, errlen, "%s: tensor '%s' holds %s at element %lld (%s): damaged checkpoint",
               t->file, name,
               isnan(v) ? "NaN"
               : v > 0  ? "+inf"
                        : "-inf",
               (long long)bad, st_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

/* Finds `name`, checks its shape, and returns F32 data (in place or converted). NULL with
 * the reason in err when missing, mis-shaped or out of memory. */
static const float *ml_bind(eng_model *m, const char *name, int64_t d0, int64_t d1, char *err,
                            size_t errlen)
{
    const st_tensor *t = ml_find(m, name, d0, d1, err, errlen);
    if (!t) return NULL;
    size_t n = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        m->mapped_bytes += t->nbytes;
        return (const float *)t->data;
    }

    float *f = eng_model_alloc(m, n);
    if (!f) {
        ml_err(err, errlen, "%s: out of memory converting tensor '%s' to F32", m->dir, name);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) f[i] = ml_value(t, i);
    if (t->dtype != ST_F32) st_release(m->st, t);
    return f;
}

/* Memory the model owns, of `bytes` (64-byte aligned); NULL out of memory. */
static void *ml_alloc(eng_model *m, size_t bytes)
{
    void *f = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    float **no = f ? realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *no) : NULL;
    if (!no) {
        free(f);
        return NULL;
    }
    m->owned = no;
    m->owned[m->n_owned++] = f;
    m->owned_bytes += bytes;
    return f;
}

float *eng_model_alloc(eng_model *m, size_t n) { return ml_alloc(m, n * sizeof(float)); }

/* F32 -> BF16 and F16, rounded to nearest even (finite inputs). F16 out of range gives
 * an infinity, which the caller refuses. */
static uint16_t ml_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static uint16_t ml_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* rounds past 65504: inf */
    if (a < 0x38800000u) {                       /* below 2^-14: subnormal */
        if (a < 0x33000000u) return sign;        /* below half the least: 0 */
        uint32_t man = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23); /* value / 2^-24 = man 2^(e-126) */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t r = a - 0x38000000u; /* rebias 127 -> 15 */
    uint32_t q = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return sign | (uint16_t)q;
}

/* t [l->out, l->in] quantized to an int8 blob (engine/eng_q8.h) owned by the model. */
static int ml_quantize(eng_model *m, eng_lin *l, const st_tensor *t, char *err, size_t errlen)
{
    size_t bytes = eng_q8_weight_bytes(l->out, l->in);
    const void *cached = bytes ? eng_q8cache_find(m->q8c, t->name, l->out, l->in) : NULL;
    if (cached) { /* from model.q8, mapped */
        l->w = cached;
        m->mapped_bytes += bytes;
        st_release(m->st, t);
        if (eng_q8cache_add(m->q8c, t->name, l->out, l->in, cached) == 0) return 0;
        ml_err(err, errlen, "%s: out of memory", m->dir);
        return -1;
    }
    if (!bytes) {
        ml_err(err, errlen, "%s: tensor '%s': [%d, %d] cannot be held as int8 (K <= %d)", t->file,
               t->name, l->out, l->in, ENG_Q8_MAX_K);
        return -1;
    }
    void *q = ml_alloc(m, bytes);
    if (!q) {
        ml_err(err, errlen, "%s: out of memory quantizing tensor '%s' to int8", m->dir, t->name);
        return -1;
    }
    int src = t->dtype == ST_BF16 ? ENG_W_BF16 : t->dtype == ST_F16 ? ENG_W_F16 : ENG_W_F32;
    const void *data = t->data;
    float *tmp = NULL;
    if ((uintptr_t)data % st_dtype_size(t->dtype)) { /* misaligned in the file: widen first */
        size_t n = (size_t)l->out * (size_t)l->in;
        if (!(tmp = malloc(n * sizeof *tmp))) {
            ml_err(err, errlen, "%s: out of memory quantizing tensor '%s'", m->dir, t->name);
            return -1;
        }
        for (size_t i = 0; i < n; i++) tmp[i] = ml_value(t, i);
        data = tmp, src = ENG_W_F32;
    }
    int rc = eng_q8_weight_pack(data, src, l->out, l->in, l->in, q);
    free(tmp);
    if (rc < 0) {
        ml_err(err, errlen, "%s: tensor '%s': int8 quantization failed", t->file, t->name);
        return -1;
    }
    l->w = q;
    st_release(m->st, t);
    m->q8_fresh = 1;
    if (eng_q8cache_add(m->q8c, t->name, l->out, l->in, q) == 0) return 0;
    ml_err(err, errlen, "%s: out of memory", m->dir);
    return -1;
}

/* The type a matrix of dtype dt is held in under m->weights. */
static eng_wtype ml_held(const eng_model *m, st_dtype dt)
{
    switch (m->weights) {
    case ENG_WEIGHTS_F32: return ENG_W_F32;
    case ENG_WEIGHTS_BF16: return ENG_W_BF16;
    case ENG_WEIGHTS_F16: return ENG_W_F16;
    case ENG_WEIGHTS_INT8: return ENG_W_I8;
    default: return dt == ST_BF16 ? ENG_W_BF16 : dt == ST_F16 ? ENG_W_F16 : ENG_W_F32;
    }
}

int eng_bind_mat(eng_model *m, eng_lin *l, int out, int in, char *err, size_t errlen,
                 const char *name)
{
    *l = (eng_lin){ .type = ENG_W_F32, .out = out, .in = in };
    const st_tensor *t = ml_find(m, name, out, in, err, errlen);
    if (!t) return -1;
    eng_wtype held = ml_held(m, t->dtype);
    size_t n = (size_t)out * (size_t)in;
    static const eng_wtype of_dtype[] = {
        [ST_F32] = ENG_W_F32, [ST_F16] = ENG_W_F16, [ST_BF16] = ENG_W_BF16
    };
    l->type = held;
    if (held == of_dtype[t->dtype] && (uintptr_t)t->data % st_dtype_size(t->dtype) == 0) {
        l->w = t->data; /* in place */
        m->mapped_bytes += t->nbytes;
        return 0;
    }
    if (held == ENG_W_I8) return ml_quantize(m, l, t, err, errlen);
    size_t es = held == ENG_W_F32 ? 4 : 2;
    unsigned char *d = ml_alloc(m, n * es);
    if (!d) {
        ml_err(err, errlen, "%s: out of memory converting tensor '%s' to %s", m->dir, name,
               held == ENG_W_F32    ? "F32"
               : held == ENG_W_BF16 ? "BF16"
                                    : "F16");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        float v = ml_value(t, i);
        if (held == ENG_W_F32) {
            memcpy(d + 4 * i, &v, 4);
            continue;
        }
        uint16_t h = held == ENG_W_BF16 ? ml_f32_to_bf16(v) : ml_f32_to_f16(v);
        if (held == ENG_W_F16 && (h & 0x7c00u) == 0x7c00u) {
            ml_err(err, errlen,
                   "%s: tensor '%s' holds %g at element %zu, beyond F16's range "
                   "(65504): use --weights bf16 or f32",
                   t->file, name, (double)v, i);
            return -1;
        }
        memcpy(d + 2 * i, &h, 2);
    }
    l->w = d;
    st_release(m->st, t);
    return 0;
}

const float *eng_bind(eng_model *m, int64_t d0, int64_t d1, char *err, size_t errlen,
                      const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return ml_bind(m, name, d0, d1, err, errlen);
}

int eng_has(const eng_model *m, const char *name) { return st_find(m->st, name) != NULL; }

int eng_bind_lin(eng_model *m, eng_lin *l, int out, int in, int bias, char *err, size_t errlen,
                 const char *pfx)
{
    char name[256];
    snprintf(name, sizeof name, "%sweight", pfx);
    if (eng_bind_mat(m, l, out, in, err, errlen, name)) return -1;
    if (bias && !(l->b = eng_bind(m, out, 0, err, errlen, "%sbias", pfx))) return -1;
    return 0;
}

int eng_bind_norm(eng_model *m, eng_norm_w *n, char *err, size_t errlen, const char *pfx)
{
    int D = m->cfg.d_model;
    n->b = NULL;
    if (!(n->w = eng_bind(m, D, 0, err, errlen, "%sweight", pfx))) return -1;
    if (m->cfg.arch.norm == ENG_NORM_LAYER &&
        !(n->b = eng_bind(m, D, 0, err, errlen, "%sbias", pfx)))
        return -1;
    return 0;
}

eng_model *eng_model_load(const char *dir, const eng_model_params *p, char *err, size_t errlen)
{
    if (!dir) {
        ml_err(err, errlen, "no model directory given");
        return NULL;
    }
    eng_model_params dp = eng_model_default_params();
    if (!p) p = &dp;
    if (p->n_threads <= 0) eng_threads_prime(); /* the load is the first window */
    if ((int)p->weights < ENG_WEIGHTS_AUTO || p->weights > ENG_WEIGHTS_INT8) {
        ml_err(err, errlen, "%s: weights %d: not a weight type (auto, f32, bf16, f16, int8)", dir,
               (int)p->weights);
        return NULL;
    }
    eng_model *m = calloc(1, sizeof *m);
    if (!m) {
        ml_err(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path ||
        (size_t)snprintf(m->dir, sizeof m->dir, "%s", dir) >= sizeof m->dir) {
        ml_err(err, errlen, "%.200s...: path too long", dir);
        goto fail;
    }
    m->weights = p->weights;
    if (hf_config_load(path, &m->cfg, &m->arch, err, errlen) < 0) goto fail;
    const eng_config *c = &m->cfg;
    m->inner = c->num_heads * c->d_kv;
    m->st = st_open_dir(dir, err, errlen);
    if (!m->st) goto fail;
    m->enc.n_layers = c->num_layers;
    m->dec.n_layers = c->num_decoder_layers;
    m->enc.layers = calloc((size_t)c->num_layers, sizeof *m->enc.layers);
    m->dec.layers = calloc((size_t)c->num_decoder_layers, sizeof *m->dec.layers);
    if (!m->enc.layers || !m->dec.layers) {
        ml_err(err, errlen, "%s: out of memory", dir);
        goto fail;
    }
    /* the int8 cache file beside the checkpoint: opt-in (NLPD_Q8_CACHE=1), since it
     * writes into the model's directory */
    const char *q8c = getenv("NLPD_Q8_CACHE");
    if (m->weights == ENG_WEIGHTS_INT8 && q8c && !strcmp(q8c, "1") &&
        !(m->q8c = eng_q8cache_open(dir, st_identity(m->st)))) {
        ml_err(err, errlen, "%s: out of memory", dir);
        goto fail;
    }
    if (m->arch->bind(m, dir, err, errlen) < 0) goto fail;
    if (m->q8c) eng_q8cache_commit(m->q8c, st_identity(m->st), m->q8_fresh);
    if (hf_generation_load(dir, m, err, errlen) < 0) goto fail;
    m->n_threads = eng_set_threads(p->n_threads);
    m->threads_auto = p->n_threads <= 0;
    if (m->weights == ENG_WEIGHTS_AUTO) /* what the checkpoint's lm_head is held in */
        m->weights = m->lm_head.type == ENG_W_BF16  ? ENG_WEIGHTS_BF16
                     : m->lm_head.type == ENG_W_F16 ? ENG_WEIGHTS_F16
                                                    : ENG_WEIGHTS_F32;
    return m;
fail:
    eng_model_free(&m);
    return NULL;
}

void eng_model_free(eng_model **model)
{
    if (!model || !*model) return;
    eng_model *m = *model;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->enc.layers);
    free(m->dec.layers);
    free(m->bad_words);
    free(m->bad_off);
    st_close(&m->st);
    eng_q8cache_close(&m->q8c);
    free(m);
    *model = NULL;
}
