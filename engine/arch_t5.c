/* T5, FLAN-T5 and mT5 (HF T5ForConditionalGeneration / MT5ForConditionalGeneration):
 * config.json keys with T5Config's defaults, and the checkpoint's tensor names. The
 * computation is the shared Transformer's with RMS norms, pre-norm, no biases, relative
 * position buckets, relu or gated gelu_new, and the tied lm_head scaled by d_model^-0.5. */
#include "engine/hfconfig.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define OFF(f) offsetof(eng_config, f)

static const hf_int_key t5_ints[] = {
    { "vocab_size", OFF(vocab_size), 32128, 1, 1 << 22 },
    { "d_model", OFF(d_model), 512, 1, 65536 },
    { "d_kv", OFF(d_kv), 64, 1, 4096 },
    { "num_heads", OFF(num_heads), 8, 1, 1024 },
    { "d_ff", OFF(d_ff), 2048, 1, 1 << 18 },
    { "num_layers", OFF(num_layers), 6, 1, 256 },
    { "num_decoder_layers", OFF(num_decoder_layers), -1, 1, 256 },
    { "relative_attention_num_buckets", OFF(arch.num_buckets), 32, 4, 4096 },
    { "relative_attention_max_distance", OFF(arch.max_distance), 128, 1, 1 << 20 },
    { "decoder_start_token_id", OFF(decoder_start_token_id), 0, 0, (1 << 22) - 1 },
    { "eos_token_id", OFF(eos_token_id), 1, 0, (1 << 22) - 1 },
    { "pad_token_id", OFF(pad_token_id), 0, 0, (1 << 22) - 1 },
};

static int t5_read_config(const char *path, const cJSON *root, eng_config *c, char *err,
                          size_t errlen)
{
    eng_arch_config *a = &c->arch;
    if (hf_read_ints(path, root, t5_ints, sizeof t5_ints / sizeof t5_ints[0], c, err, errlen))
        return -1;
    if (c->num_decoder_layers < 0) c->num_decoder_layers = c->num_layers;
    /* The bucket formula divides by log(max_distance / max_exact), max_exact being at
     * most num_buckets / 2: it must exceed that. */
    if (a->max_distance <= a->num_buckets / 2) {
        hf_err(err, errlen,
               "%s: key 'relative_attention_max_distance' = %d must exceed "
               "relative_attention_num_buckets / 2 = %d",
               path, a->max_distance, a->num_buckets / 2);
        return -1;
    }
    if (hf_read_float(path, root, "layer_norm_epsilon", 1e-6, 0.0, 1.0, &a->norm_eps, err,
                      errlen) ||
        hf_read_bool(path, root, "tie_word_embeddings", 1, &a->tied, err, errlen))
        return -1;
    const char *ff;
    if (hf_read_str(path, root, "feed_forward_proj", &ff, err, errlen)) return -1;
    /* The engine has relu and gated gelu_new; "gated-relu" (some mT5 variants) would
     * silently compute the wrong function, so it is refused. */
    if (!ff || strcmp(ff, "relu") == 0) {
        a->gated = 0, a->act = ENG_ACT_RELU;
    } else if (strcmp(ff, "gated-gelu") == 0) {
        a->gated = 1, a->act = ENG_ACT_GELU_TANH;
    } else {
        hf_err(err, errlen,
               "%s: unsupported feed_forward_proj '%.64s' (supported: relu, "
               "gated-gelu)",
               path, ff);
        return -1;
    }
    a->norm = ENG_NORM_RMS;
    a->pre_norm = 1;
    a->final_norm = 1;
    a->embed_norm = 0;
    a->bias = 0;
    a->attn_scale = 1.0f; /* T5 folds the scaling into its weights */
    a->embed_scale = 1.0f;
    a->lm_scale = a->tied ? 1.0f / sqrtf((float)c->d_model) : 1.0f;
    a->pos = ENG_POS_RELATIVE;
    a->logits_bias = 0;
    return 0;
}

static int t5_attn(eng_model *m, eng_attn_w *w, const char *pfx, char *err, size_t errlen)
{
    char nm[200];
    int D = m->cfg.d_model, I = m->inner;
    const char *part[4] = { "q", "k", "v", "o" };
    eng_lin *l[4] = { &w->q, &w->k, &w->v, &w->o };
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "%s%s.", pfx, part[i]);
        if (eng_bind_lin(m, l[i], i < 3 ? I : D, i < 3 ? D : I, 0, err, errlen, nm)) return -1;
    }
    return 0;
}

static int t5_ff(eng_model *m, eng_layer_w *l, const char *pfx, char *err, size_t errlen)
{
    char nm[200];
    int D = m->cfg.d_model, F = m->cfg.d_ff;
    snprintf(nm, sizeof nm, m->cfg.arch.gated ? "%swi_0." : "%swi.", pfx);
    if (eng_bind_lin(m, &l->wi, F, D, 0, err, errlen, nm)) return -1;
    if (m->cfg.arch.gated) {
        snprintf(nm, sizeof nm, "%swi_1.", pfx);
        if (eng_bind_lin(m, &l->wi1, F, D, 0, err, errlen, nm)) return -1;
    }
    snprintf(nm, sizeof nm, "%swo.", pfx);
    return eng_bind_lin(m, &l->wo, D, F, 0, err, errlen, nm);
}

/* One stack: "encoder" or "decoder" (the decoder's layers have cross-attention). */
static int t5_stack(eng_model *m, eng_stack_w *s, const char *name, int dec, char *err,
                    size_t errlen)
{
    const eng_config *c = &m->cfg;
    char pfx[160];
    for (int i = 0; i < s->n_layers; i++) {
        eng_layer_w *l = &s->layers[i];
        snprintf(pfx, sizeof pfx, "%s.block.%d.layer.0.SelfAttention.", name, i);
        if (t5_attn(m, &l->self, pfx, err, errlen)) return -1;
        snprintf(pfx, sizeof pfx, "%s.block.%d.layer.0.layer_norm.", name, i);
        if (eng_bind_norm(m, &l->ln_self, err, errlen, pfx)) return -1;
        if (dec) {
            snprintf(pfx, sizeof pfx, "%s.block.%d.layer.1.EncDecAttention.", name, i);
            if (t5_attn(m, &l->cross, pfx, err, errlen)) return -1;
            snprintf(pfx, sizeof pfx, "%s.block.%d.layer.1.layer_norm.", name, i);
            if (eng_bind_norm(m, &l->ln_cross, err, errlen, pfx)) return -1;
        }
        snprintf(pfx, sizeof pfx, "%s.block.%d.layer.%d.DenseReluDense.", name, i, dec ? 2 : 1);
        if (t5_ff(m, l, pfx, err, errlen)) return -1;
        snprintf(pfx, sizeof pfx, "%s.block.%d.layer.%d.layer_norm.", name, i, dec ? 2 : 1);
        if (eng_bind_norm(m, &l->ln_ff, err, errlen, pfx)) return -1;
    }
    if (!(s->rel =
              eng_bind(m, c->arch.num_buckets, c->num_heads, err, errlen,
                       "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight", name)))
        return -1;
    snprintf(pfx, sizeof pfx, "%s.final_layer_norm.", name);
    return eng_bind_norm(m, &s->final_norm, err, errlen, pfx);
}

static int t5_bind(eng_model *m, const char *dir, char *err, size_t errlen)
{
    (void)dir;
    const eng_config *c = &m->cfg;
    eng_lin shared;
    if (eng_bind_mat(m, &shared, c->vocab_size, c->d_model, err, errlen, "shared.weight"))
        return -1;
    m->enc.embed = m->dec.embed = shared;
    if (c->arch.tied) {
        m->lm_head = shared;
    } else if (eng_bind_lin(m, &m->lm_head, c->vocab_size, c->d_model, 0, err, errlen,
                            "lm_head.")) {
        return -1;
    }
    if (t5_stack(m, &m->enc, "encoder", 0, err, errlen)) return -1;
    return t5_stack(m, &m->dec, "decoder", 1, err, errlen);
}

const eng_arch eng_arch_t5 = {
    .name = "t5",
    .model_types = { "t5", "mt5" },
    .architectures = { "T5ForConditionalGeneration", "MT5ForConditionalGeneration" },
    .read_config = t5_read_config,
    .bind = t5_bind,
    .fwd = &eng_tf_fwd,
};
