/* The BART family of checkpoints (fairseq's layout as HF stores it): BART (bart-large-cnn,
 * distilbart), mBART, Marian (opus-mt) and M2M100 (m2m100, NLLB-200). One naming scheme
 * (model.{encoder,decoder}.layers.N.{self_attn,encoder_attn}.{q,k,v,out}_proj, fc1, fc2,
 * LayerNorms with biases, biases on every projection, queries scaled by head_dim^-0.5)
 * and four structures:
 *
 *   model_type  norm  layernorm_embedding  final norms  positions
 *   bart        post  yes                  no           learned, row = position + 2
 *   mbart       pre   yes                  yes          learned, row = position + 2
 *   marian      post  no                   no           sinusoidal (computed), row = position
 *   m2m_100     pre   no                   yes          sinusoidal (computed), row = position + 2
 *
 * What config.json says is read from it, not assumed from the family: the activation
 * (activation_function), the embedding scale (scale_embedding), the sizes and ids, tied
 * embeddings; a final_logits_bias is used when the checkpoint has one. */
#include "engine/hfconfig.h"
#include "engine/st.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The structure of each model_type (the table above). */
typedef struct bart_kind {
    const char *model_type;
    int pre_norm, embed_norm, final_norm;
    eng_pos_kind pos;
    int pos_offset;
    int sin_shift; /* eng_sinusoids: 0 Marian's frequencies, 1 fairseq's */
} bart_kind;

static const bart_kind kinds[] = {
    { "bart", 0, 1, 0, ENG_POS_LEARNED, 2, 0 },
    { "mbart", 1, 1, 1, ENG_POS_LEARNED, 2, 0 },
    { "marian", 0, 0, 0, ENG_POS_SINUSOIDAL, 0, 0 },
    { "m2m_100", 1, 0, 1, ENG_POS_SINUSOIDAL, 2, 1 },
};

static const bart_kind *kind_of(const eng_config *c)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(c->model_type, kinds[i].model_type) == 0) return &kinds[i];
    return &kinds[0]; /* architectures[] named BartForConditionalGeneration */
}

/* Config keys as the family names them; the encoder's and decoder's sizes must agree
 * (the engine has one feed-forward width and one head count). */
typedef struct bart_ints {
    int enc_heads, dec_heads, enc_ffn, dec_ffn, max_pos, dec_vocab;
} bart_ints;

#define OFF(f) offsetof(eng_config, f)
#define BOFF(f) offsetof(bart_ints, f)

static const hf_int_key bart_cfg_ints[] = {
    { "vocab_size", OFF(vocab_size), 50265, 1, 1 << 22 },
    { "d_model", OFF(d_model), 1024, 1, 65536 },
    { "encoder_layers", OFF(num_layers), 12, 1, 256 },
    { "decoder_layers", OFF(num_decoder_layers), 12, 1, 256 },
    { "decoder_start_token_id", OFF(decoder_start_token_id), 2, 0, (1 << 22) - 1 },
    { "eos_token_id", OFF(eos_token_id), 2, 0, (1 << 22) - 1 },
    { "pad_token_id", OFF(pad_token_id), 1, 0, (1 << 22) - 1 },
};

static const hf_int_key bart_own_ints[] = {
    { "encoder_attention_heads", BOFF(enc_heads), 16, 1, 1024 },
    { "decoder_attention_heads", BOFF(dec_heads), 16, 1, 1024 },
    { "encoder_ffn_dim", BOFF(enc_ffn), 4096, 1, 1 << 18 },
    { "decoder_ffn_dim", BOFF(dec_ffn), 4096, 1, 1 << 18 },
    { "max_position_embeddings", BOFF(max_pos), 1024, 1, 1 << 20 },
    { "decoder_vocab_size", BOFF(dec_vocab), -1, 1, 1 << 22 },
};

/* activation_function as HF's ACT2FN names it. */
static int bart_act(const char *path, const char *name, eng_act *out, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        eng_act act;
    } acts[] = {
        { "gelu", ENG_ACT_GELU },           { "relu", ENG_ACT_RELU },
        { "silu", ENG_ACT_SILU },           { "swish", ENG_ACT_SILU },
        { "gelu_new", ENG_ACT_GELU_TANH },  { "gelu_pytorch_tanh", ENG_ACT_GELU_TANH },
        { "gelu_fast", ENG_ACT_GELU_TANH },
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(name, acts[i].name) == 0) {
            *out = acts[i].act;
            return 0;
        }
    hf_err(err, errlen,
           "%s: unsupported activation_function '%.64s' (supported: gelu, relu, "
           "silu, swish, gelu_new, gelu_pytorch_tanh, gelu_fast)",
           path, name);
    return -1;
}

/* id2label {"0": "contradiction", ...}: names of a classification head's classes, into
 * c->labels; c->num_labels is set by the binder, from the head's shape. Returns the count
 * named, or -1. */
static int bart_labels(const char *path, const cJSON *root, eng_config *c, char *err, size_t errlen)
{
    const cJSON *map = hf_get(root, "id2label"), *e;
    int n = 0;
    if (!map) return 0;
    if (!cJSON_IsObject(map)) goto bad;
    cJSON_ArrayForEach (e, map) {
        char *end;
        long i = strtol(e->string, &end, 10);
        if (end == e->string || *end || i < 0 || i >= ENG_MAX_LABELS || !cJSON_IsString(e))
            goto bad;
        snprintf(c->labels[i], ENG_LABEL_LEN, "%s", e->valuestring);
        if (i + 1 > n) n = (int)i + 1;
    }
    for (int i = 0; i < n; i++)
        if (!c->labels[i][0]) goto bad;
    return n;
bad:
    hf_err(err, errlen,
           "%s: key 'id2label' must map the class numbers 0..N-1 (N <= %d) to "
           "names",
           path, ENG_MAX_LABELS);
    return -1;
}

static int bart_read_config(const char *path, const cJSON *root, eng_config *c, char *err,
                            size_t errlen)
{
    eng_arch_config *a = &c->arch;
    bart_ints b;
    if (hf_read_ints(path, root, bart_cfg_ints, sizeof bart_cfg_ints / sizeof bart_cfg_ints[0], c,
                     err, errlen) ||
        hf_read_ints(path, root, bart_own_ints, sizeof bart_own_ints / sizeof bart_own_ints[0], &b,
                     err, errlen))
        return -1;
    if (b.enc_heads != b.dec_heads || b.enc_ffn != b.dec_ffn) {
        hf_err(err, errlen,
               "%s: encoder and decoder differ in attention heads (%d, %d) or "
               "feed-forward width (%d, %d): not supported",
               path, b.enc_heads, b.dec_heads, b.enc_ffn, b.dec_ffn);
        return -1;
    }
    if (b.dec_vocab > 0 && b.dec_vocab != c->vocab_size) {
        hf_err(err, errlen,
               "%s: decoder_vocab_size %d differs from vocab_size %d: separate "
               "source and target vocabularies are not supported",
               path, b.dec_vocab, c->vocab_size);
        return -1;
    }
    if (c->d_model % b.enc_heads) {
        hf_err(err, errlen, "%s: d_model %d is not a multiple of encoder_attention_heads %d", path,
               c->d_model, b.enc_heads);
        return -1;
    }
    c->num_heads = b.enc_heads;
    c->d_kv = c->d_model / b.enc_heads;
    c->d_ff = b.enc_ffn;

    const char *act;
    int scale;
    if (hf_read_str(path, root, "activation_function", &act, err, errlen) ||
        bart_act(path, act ? act : "gelu", &a->act, err, errlen) ||
        hf_read_bool(path, root, "scale_embedding", 0, &scale, err, errlen) ||
        hf_read_bool(path, root, "tie_word_embeddings", 1, &a->tied, err, errlen))
        return -1;
    const bart_kind *k = kind_of(c);
    a->norm = ENG_NORM_LAYER;
    a->norm_eps = 1e-5f; /* nn.LayerNorm's default: no config key */
    a->pre_norm = k->pre_norm;
    a->final_norm = k->final_norm;
    a->embed_norm = k->embed_norm;
    a->gated = 0;
    a->bias = 1;
    a->attn_scale = 1.0f / sqrtf((float)c->d_kv);
    a->embed_scale = scale ? sqrtf((float)c->d_model) : 1.0f;
    a->lm_scale = 1.0f;
    a->pos = k->pos;
    a->pos_offset = k->pos_offset;
    a->max_positions = b.max_pos;
    a->pos_pad_zero = strcmp(k->model_type, "m2m_100") == 0;
    return bart_labels(path, root, c, err, errlen) < 0 ? -1 : 0;
}

static int bart_attn(eng_model *m, eng_attn_w *w, const char *pfx, char *err, size_t errlen)
{
    char nm[200];
    int D = m->cfg.d_model, I = m->inner;
    const char *part[4] = { "q_proj", "k_proj", "v_proj", "out_proj" };
    eng_lin *l[4] = { &w->q, &w->k, &w->v, &w->o };
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "%s%s.", pfx, part[i]);
        if (eng_bind_lin(m, l[i], i < 3 ? I : D, i < 3 ? D : I, 1, err, errlen, nm)) return -1;
    }
    return 0;
}

/* Sinusoidal tables are computed, not stored: [max_positions + offset, d_model]. */
static const float *bart_sinusoids(eng_model *m, const bart_kind *k, char *err, size_t errlen)
{
    const eng_arch_config *a = &m->cfg.arch;
    int rows = a->max_positions + a->pos_offset, D = m->cfg.d_model;
    float *t = eng_model_alloc(m, (size_t)rows * D);
    if (!t) {
        hf_err(err, errlen, "%s: out of memory for the position table", m->dir);
        return NULL;
    }
    eng_sinusoids(t, rows, D, k->sin_shift);
    return t;
}

static int bart_stack(eng_model *m, const bart_kind *k, eng_stack_w *s, const eng_lin *embed,
                      const char *name, int dec, char *err, size_t errlen)
{
    const eng_arch_config *a = &m->cfg.arch;
    int D = m->cfg.d_model, F = m->cfg.d_ff;
    char pfx[200];
    s->embed = *embed;
    if (a->pos == ENG_POS_LEARNED) {
        if (!(s->pos = eng_bind(m, a->max_positions + a->pos_offset, D, err, errlen,
                                "model.%s.embed_positions.weight", name)))
            return -1;
    } else if (!(s->pos = bart_sinusoids(m, k, err, errlen))) {
        return -1;
    }
    if (a->embed_norm) {
        snprintf(pfx, sizeof pfx, "model.%s.layernorm_embedding.", name);
        if (eng_bind_norm(m, &s->embed_norm, err, errlen, pfx)) return -1;
    }
    if (a->final_norm) {
        snprintf(pfx, sizeof pfx, "model.%s.layer_norm.", name);
        if (eng_bind_norm(m, &s->final_norm, err, errlen, pfx)) return -1;
    }
    for (int i = 0; i < s->n_layers; i++) {
        eng_layer_w *l = &s->layers[i];
        snprintf(pfx, sizeof pfx, "model.%s.layers.%d.self_attn.", name, i);
        if (bart_attn(m, &l->self, pfx, err, errlen)) return -1;
        snprintf(pfx, sizeof pfx, "model.%s.layers.%d.self_attn_layer_norm.", name, i);
        if (eng_bind_norm(m, &l->ln_self, err, errlen, pfx)) return -1;
        if (dec) {
            snprintf(pfx, sizeof pfx, "model.%s.layers.%d.encoder_attn.", name, i);
            if (bart_attn(m, &l->cross, pfx, err, errlen)) return -1;
            snprintf(pfx, sizeof pfx, "model.%s.layers.%d.encoder_attn_layer_norm.", name, i);
            if (eng_bind_norm(m, &l->ln_cross, err, errlen, pfx)) return -1;
        }
        snprintf(pfx, sizeof pfx, "model.%s.layers.%d.fc1.", name, i);
        if (eng_bind_lin(m, &l->wi, F, D, 1, err, errlen, pfx)) return -1;
        snprintf(pfx, sizeof pfx, "model.%s.layers.%d.fc2.", name, i);
        if (eng_bind_lin(m, &l->wo, D, F, 1, err, errlen, pfx)) return -1;
        snprintf(pfx, sizeof pfx, "model.%s.layers.%d.final_layer_norm.", name, i);
        if (eng_bind_norm(m, &l->ln_ff, err, errlen, pfx)) return -1;
    }
    return 0;
}

/* The shared embedding under any of the names HF saves it by, into e. */
static int bart_embed(eng_model *m, eng_lin *e, char *err, size_t errlen)
{
    static const char *names[] = { "model.shared.weight", "model.encoder.embed_tokens.weight",
                                   "model.decoder.embed_tokens.weight", "lm_head.weight" };
    int V = m->cfg.vocab_size, D = m->cfg.d_model;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (eng_has(m, names[i])) return eng_bind_mat(m, e, V, D, err, errlen, names[i]);
    hf_err(err, errlen,
           "%s: missing tensor 'model.shared.weight' (nor any of its tied names: "
           "model.encoder.embed_tokens.weight, model.decoder.embed_tokens.weight)",
           m->dir);
    return -1;
}

/* BartForSequenceClassification's head, when the checkpoint has one: dense [D, D] and
 * out_proj [num_labels, D], both with biases; classes named by id2label (else LABEL_i). */
static int bart_head(eng_model *m, char *err, size_t errlen)
{
    eng_config *c = &m->cfg;
    const st_tensor *t = st_find(m->st, "classification_head.out_proj.weight");
    if (!t) return 0;
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[0] > ENG_MAX_LABELS) {
        hf_err(err, errlen, "%s: classification_head.out_proj.weight: 1..%d classes expected",
               t->file, ENG_MAX_LABELS);
        return -1;
    }
    int n = (int)t->shape[0], D = c->d_model;
    if (eng_bind_lin(m, &m->cls_dense, D, D, 1, err, errlen, "classification_head.dense.") ||
        eng_bind_lin(m, &m->cls_out, n, D, 1, err, errlen, "classification_head.out_proj."))
        return -1;
    for (int i = 0; i < n; i++)
        if (!c->labels[i][0]) snprintf(c->labels[i], ENG_LABEL_LEN, "LABEL_%d", i);
    if (n < ENG_MAX_LABELS && c->labels[n][0]) {
        hf_err(err, errlen, "%s: id2label names more classes than the head's %d", m->dir, n);
        return -1;
    }
    c->num_labels = n;
    return 0;
}

static int bart_bind(eng_model *m, const char *dir, char *err, size_t errlen)
{
    (void)dir;
    const eng_config *c = &m->cfg;
    const bart_kind *k = kind_of(c);
    eng_lin shared;
    if (bart_embed(m, &shared, err, errlen)) return -1;
    if (c->arch.tied || !eng_has(m, "lm_head.weight")) {
        m->lm_head = shared;
    } else if (eng_bind_lin(m, &m->lm_head, c->vocab_size, c->d_model, 0, err, errlen,
                            "lm_head.")) {
        return -1;
    }
    if (eng_has(m, "final_logits_bias")) {
        if (!(m->lm_head.b = eng_bind(m, 1, c->vocab_size, err, errlen, "final_logits_bias")))
            return -1;
        m->cfg.arch.logits_bias = 1;
    }
    if (bart_stack(m, k, &m->enc, &shared, "encoder", 0, err, errlen) ||
        bart_stack(m, k, &m->dec, &shared, "decoder", 1, err, errlen))
        return -1;
    return bart_head(m, err, errlen);
}

const eng_arch eng_arch_bart = {
    .name = "bart",
    .model_types = { "bart", "mbart", "marian", "m2m_100" },
    .architectures = { "BartForConditionalGeneration", "MBartForConditionalGeneration",
                       "MarianMTModel", "M2M100ForConditionalGeneration" },
    .read_config = bart_read_config,
    .bind = bart_bind,
    .fwd = &eng_tf_fwd,
};
