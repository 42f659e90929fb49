/* Model loading: binds the tensors of a Hugging Face T5 checkpoint to the forward pass.
 *
 * F32 tensors are used in place from the mmap (no copy). F16 and BF16 tensors are
 * converted to F32 once at load: the memory cost is 2x the checkpoint's size in
 * anonymous memory (e.g. ~0.6 GB for a BF16 flan-t5-small, whose lm_head and shared
 * embedding dominate), in exchange for the same sgemm/sgemv paths as F32. A F32 tensor
 * whose data is not 4-byte aligned in the file is copied too. */
#include "engine/eng_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

eng_model_params eng_model_default_params(void)
{
    return (eng_model_params){ .n_threads = 0 };
}

const eng_config *eng_model_config(const eng_model *model)
{
    return model ? &model->cfg : NULL;
}

const char *eng_strerror(int status)
{
    switch (status) {
    case ENG_OK: return "ok";
    case ENG_EINVAL: return "invalid argument";
    case ENG_ENOMEM: return "out of memory";
    case ENG_ETOOLONG: return "input or batch larger than the context was sized for";
    case ENG_ENOSYS: return "not implemented";
    case ENG_ENONFINITE: return "the model computed a NaN or an infinity (damaged weights?)";
    default: return "unknown engine error";
    }
}

int eng_relative_bucket(int relative_position, int bidirectional, int num_buckets,
                        int max_distance)
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

/* Finds `name`, checks its shape, and returns F32 data (in place or converted). NULL with
 * the reason in err when missing, mis-shaped or out of memory. */
static const float *ml_bind(eng_model *m, const char *dir, const char *name, int64_t d0,
                            int64_t d1, char *err, size_t errlen)
{
    const st_tensor *t = st_find(m->st, name);
    if (!t) {
        ml_err(err, errlen, "%s: missing tensor '%s'", dir, name);
        return NULL;
    }
    int want_ndim = d1 > 0 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != d0 || (want_ndim == 2 && t->shape[1] != d1)) {
        char got[96] = "", want[64];
        size_t len = 0;
        for (int i = 0; i < t->ndim && len < sizeof got; i++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld", i ? ", " : "",
                                    (long long)t->shape[i]);
        if (want_ndim == 2)
            snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        else
            snprintf(want, sizeof want, "%lld", (long long)d0);
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
               t->file, name, isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf", (long long)bad,
               st_dtype_name(t->dtype));
        return NULL;
    }
    size_t n = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0)
        return (const float *)t->data;

    float *f = malloc(n * sizeof *f);
    float **no = f ? realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *no) : NULL;
    if (!no) {
        free(f);
        ml_err(err, errlen, "%s: out of memory converting tensor '%s' to F32", dir, name);
        return NULL;
    }
    m->owned = no;
    m->owned[m->n_owned++] = f;
    m->owned_bytes += n * sizeof *f;
    for (size_t i = 0; i < n; i++) f[i] = ml_value(t, i);
    return f;
}

static int ml_attn(eng_model *m, const char *dir, const char *pfx, eng_attn_w *a, char *err,
                   size_t errlen)
{
    char nm[160];
    const eng_config *c = &m->cfg;
    snprintf(nm, sizeof nm, "%sq.weight", pfx);
    if (!(a->q = ml_bind(m, dir, nm, m->inner, c->d_model, err, errlen))) return -1;
    snprintf(nm, sizeof nm, "%sk.weight", pfx);
    if (!(a->k = ml_bind(m, dir, nm, m->inner, c->d_model, err, errlen))) return -1;
    snprintf(nm, sizeof nm, "%sv.weight", pfx);
    if (!(a->v = ml_bind(m, dir, nm, m->inner, c->d_model, err, errlen))) return -1;
    snprintf(nm, sizeof nm, "%so.weight", pfx);
    if (!(a->o = ml_bind(m, dir, nm, c->d_model, m->inner, err, errlen))) return -1;
    return 0;
}

static int ml_ff(eng_model *m, const char *dir, const char *pfx, eng_layer_w *l, char *err,
                 size_t errlen)
{
    char nm[160];
    const eng_config *c = &m->cfg;
    if (c->gated) {
        snprintf(nm, sizeof nm, "%swi_0.weight", pfx);
        if (!(l->wi0 = ml_bind(m, dir, nm, c->d_ff, c->d_model, err, errlen))) return -1;
        snprintf(nm, sizeof nm, "%swi_1.weight", pfx);
        if (!(l->wi1 = ml_bind(m, dir, nm, c->d_ff, c->d_model, err, errlen))) return -1;
    } else {
        snprintf(nm, sizeof nm, "%swi.weight", pfx);
        if (!(l->wi = ml_bind(m, dir, nm, c->d_ff, c->d_model, err, errlen))) return -1;
    }
    snprintf(nm, sizeof nm, "%swo.weight", pfx);
    if (!(l->wo = ml_bind(m, dir, nm, c->d_model, c->d_ff, err, errlen))) return -1;
    return 0;
}

static const float *ml_ln(eng_model *m, const char *dir, const char *name, char *err,
                          size_t errlen)
{
    return ml_bind(m, dir, name, m->cfg.d_model, 0, err, errlen);
}

static int ml_bind_all(eng_model *m, const char *dir, char *err, size_t errlen)
{
    const eng_config *c = &m->cfg;
    char nm[160], pfx[128];
    if (!(m->shared = ml_bind(m, dir, "shared.weight", c->vocab_size, c->d_model, err, errlen)))
        return -1;
    if (c->tied) {
        m->lm_head = m->shared;
    } else if (!(m->lm_head = ml_bind(m, dir, "lm_head.weight", c->vocab_size, c->d_model,
                                      err, errlen))) {
        return -1;
    }
    for (int i = 0; i < c->num_layers; i++) {
        eng_layer_w *l = &m->enc[i];
        snprintf(pfx, sizeof pfx, "encoder.block.%d.layer.0.SelfAttention.", i);
        if (ml_attn(m, dir, pfx, &l->self, err, errlen)) return -1;
        snprintf(nm, sizeof nm, "encoder.block.%d.layer.0.layer_norm.weight", i);
        if (!(l->ln_self = ml_ln(m, dir, nm, err, errlen))) return -1;
        snprintf(pfx, sizeof pfx, "encoder.block.%d.layer.1.DenseReluDense.", i);
        if (ml_ff(m, dir, pfx, l, err, errlen)) return -1;
        snprintf(nm, sizeof nm, "encoder.block.%d.layer.1.layer_norm.weight", i);
        if (!(l->ln_ff = ml_ln(m, dir, nm, err, errlen))) return -1;
    }
    for (int i = 0; i < c->num_decoder_layers; i++) {
        eng_layer_w *l = &m->dec[i];
        snprintf(pfx, sizeof pfx, "decoder.block.%d.layer.0.SelfAttention.", i);
        if (ml_attn(m, dir, pfx, &l->self, err, errlen)) return -1;
        snprintf(nm, sizeof nm, "decoder.block.%d.layer.0.layer_norm.weight", i);
        if (!(l->ln_self = ml_ln(m, dir, nm, err, errlen))) return -1;
        snprintf(pfx, sizeof pfx, "decoder.block.%d.layer.1.EncDecAttention.", i);
        if (ml_attn(m, dir, pfx, &l->cross, err, errlen)) return -1;
        snprintf(nm, sizeof nm, "decoder.block.%d.layer.1.layer_norm.weight", i);
        if (!(l->ln_cross = ml_ln(m, dir, nm, err, errlen))) return -1;
        snprintf(pfx, sizeof pfx, "decoder.block.%d.layer.2.DenseReluDense.", i);
        if (ml_ff(m, dir, pfx, l, err, errlen)) return -1;
        snprintf(nm, sizeof nm, "decoder.block.%d.layer.2.layer_norm.weight", i);
        if (!(l->ln_ff = ml_ln(m, dir, nm, err, errlen))) return -1;
    }
    if (!(m->enc_rel = ml_bind(m, dir,
                               "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                               c->num_buckets, c->num_heads, err, errlen)))
        return -1;
    if (!(m->dec_rel = ml_bind(m, dir,
                               "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                               c->num_buckets, c->num_heads, err, errlen)))
        return -1;
    if (!(m->enc_final_ln = ml_ln(m, dir, "encoder.final_layer_norm.weight", err, errlen)))
        return -1;
    if (!(m->dec_final_ln = ml_ln(m, dir, "decoder.final_layer_norm.weight", err, errlen)))
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
    eng_model *m = calloc(1, sizeof *m);
    if (!m) {
        ml_err(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path) {
        ml_err(err, errlen, "%s: path too long", dir);
        goto fail;
    }
    if (hf_config_load(path, &m->cfg, err, errlen) < 0) goto fail;
    const eng_config *c = &m->cfg;
    if (c->vocab_size <= 0 || c->d_model <= 0 || c->d_kv <= 0 || c->num_heads <= 0 ||
        c->d_ff <= 0 || c->num_layers <= 0 || c->num_decoder_layers <= 0 ||
        c->num_buckets <= 1 || c->max_distance <= 0 || c->eos_token_id < 0 ||
        c->eos_token_id >= c->vocab_size || c->decoder_start_token_id < 0 ||
        c->decoder_start_token_id >= c->vocab_size) {
        ml_err(err, errlen, "%s: config.json has out-of-range dimensions or token ids", path);
        goto fail;
    }
    m->inner = c->num_heads * c->d_kv;
    m->st = st_open_dir(dir, err, errlen);
    if (!m->st) goto fail;
    m->enc = calloc((size_t)c->num_layers, sizeof *m->enc);
    m->dec = calloc((size_t)c->num_decoder_layers, sizeof *m->dec);
    if (!m->enc || !m->dec) {
        ml_err(err, errlen, "%s: out of memory", dir);
        goto fail;
    }
    if (ml_bind_all(m, dir, err, errlen) < 0) goto fail;
    m->n_threads = eng_set_threads(p->n_threads);
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
    free(m->enc);
    free(m->dec);
    st_close(&m->st);
    free(m);
    *model = NULL;
}
