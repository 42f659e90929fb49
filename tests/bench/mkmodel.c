/* mkmodel: writes a random-weight checkpoint in Hugging Face layout (config.json copied
 * verbatim + model.safetensors) for speed and memory benchmarks; a forward pass costs the
 * same whatever the weight values are. Every family the engine loads (engine/arch.c):
 *
 *   t5, mt5          T5ForConditionalGeneration: the C twin of
 *                    /work/shared/tools/make_random_t5.py (same names, shapes and scales)
 *   bart, mbart,     BartForConditionalGeneration and its kin, the tensors engine/arch_bart.c
 *   marian, m2m_100  binds, as transformers saves them: model.shared.weight (the encoder's and
 *                    decoder's embed_tokens are tied to it and not stored), learned positions
 *                    model.{encoder,decoder}.embed_positions.weight [max_position_embeddings
 *                    + 2, d] (bart, mbart; Marian's and M2M100's sinusoids are computed),
 *                    layernorm_embedding (bart, mbart), the stacks' final layer_norm (mbart,
 *                    m2m_100), final_logits_bias [1, vocab] (a zero buffer: bart, mbart,
 *                    marian), lm_head.weight only when tie_word_embeddings is false
 *
 * so `make bench` needs no Python.
 *
 *   mkmodel --config tests/data/configs/flan-t5-small.json --out DIR [--dtype f32|f16|bf16] [--seed N]
 *
 * Scales are those of transformers' own initialisation, so activations and attention
 * behave as a trained model's do: layer norms 1 (their biases 0), T5's shared.weight
 * ~ N(0, 1), T5's q ~ N(0, 1/(d_model d_kv)) (T5 does not divide its scores by sqrt(d_kv):
 * q carries it; at 1/d_model the scores spread ~8 wide, attention picks one key outright
 * and BF16 rounding alone moves the logits' cosine to 0.2-0.4) and its relative bias
 * ~ N(0, 1/d_model), BART's shared embedding and learned positions ~ N(0, 1/d_model)
 * (logits of the tied head ~ N(0, 1)), every other matrix ~ N(0, 1/in_features), Linear
 * biases 0. make_random_t5.py draws q at 1/d_model: its checkpoints differ there. */
#include "engine/hfconfig.h"
#include "engine/st.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MK_CHUNK (1 << 20) /* values generated and written per fwrite */
#define MK_ONES 0.0f       /* mk_tensor.scale: every value 1 */
#define MK_ZEROS -1.0f     /* mk_tensor.scale: every value 0 */

typedef struct mk_tensor {
    char name[96];
    int ndim;
    int64_t shape[2];
    float scale; /* std of the normal; MK_ONES: all ones (layer norms); MK_ZEROS */
} mk_tensor;

typedef struct mk_list {
    mk_tensor *t;
    int n, cap;
} mk_list;

static int mk_add(mk_list *l, const char *name, int64_t rows, int64_t cols, float scale)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        mk_tensor *nt = realloc(l->t, (size_t)cap * sizeof *nt);
        if (!nt) return -1;
        l->t = nt;
        l->cap = cap;
    }
    mk_tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->scale = scale;
    return 0;
}

/* ---- random numbers: splitmix64 + Box-Muller (deterministic per seed) ---- */

static uint64_t mk_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fills out[0..n) with N(0, 1) values: two per 64-bit draw, in float (24-bit uniforms:
 * the tails reach 5.8 sigma, past any row's maximum here). */
static void mk_normal(uint64_t *s, float *out, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        uint64_t z = mk_next(s);
        float u1 = ((float)(z >> 40) + 1.0f) * (1.0f / 16777216.0f); /* (0, 1] */
        float u2 = (float)((z >> 16) & 0xffffff) * (1.0f / 16777216.0f);
        float r = sqrtf(-2.0f * logf(u1)), sn, cs;
        sincosf(2.0f * (float)M_PI * u2, &sn, &cs);
        out[i] = r * cs;
        if (i + 1 < n) out[i + 1] = r * sn;
    }
}

/* ---- conversions (round to nearest even, as numpy / torch do) ---- */

static uint16_t mk_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static uint16_t mk_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf */
    if (a < 0x38800000u) {                                   /* half subnormal / 0 */
        float v;
        memcpy(&v, &a, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(v * 16777216.0f)); /* v / 2^-24 */
    }
    uint32_t m = a + 0xc8000fffu + ((a >> 13) & 1); /* rebias exponent 127->15, round */
    return (uint16_t)(sign | (m >> 13));
}

/* ---- the checkpoint ---- */

static void mk_attn(mk_list *l, const char *p, const eng_config *c, int rel, int *bad)
{
    char n[96];
    int inner = c->num_heads * c->d_kv;
    const char *qkv[] = { "q", "k", "v" };
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s%s.weight", p, qkv[i]);
        float in = (float)c->d_model * (i == 0 ? (float)c->d_kv : 1.0f);
        *bad |= mk_add(l, n, inner, c->d_model, 1.0f / sqrtf(in));
    }
    snprintf(n, sizeof n, "%so.weight", p);
    *bad |= mk_add(l, n, c->d_model, inner, 1.0f / sqrtf((float)inner));
    if (rel) {
        snprintf(n, sizeof n, "%srelative_attention_bias.weight", p);
        *bad |= mk_add(l, n, c->arch.num_buckets, c->num_heads, 1.0f / sqrtf((float)c->d_model));
    }
}

static void mk_ffn(mk_list *l, const char *p, const eng_config *c, int *bad)
{
    char n[96];
    const char *wi[] = { "wi_0", "wi_1" };
    for (int i = 0; i < (c->arch.gated ? 2 : 1); i++) {
        snprintf(n, sizeof n, "%s%s.weight", p, c->arch.gated ? wi[i] : "wi");
        *bad |= mk_add(l, n, c->d_ff, c->d_model, 1.0f / sqrtf((float)c->d_model));
    }
    snprintf(n, sizeof n, "%swo.weight", p);
    *bad |= mk_add(l, n, c->d_model, c->d_ff, 1.0f / sqrtf((float)c->d_ff));
}

static void mk_norm(mk_list *l, const char *name, const eng_config *c, int *bad)
{
    *bad |= mk_add(l, name, c->d_model, 0, 0.0f);
}

/* Every tensor of HF T5ForConditionalGeneration for c, in HF's order. */
static int mk_shapes(const eng_config *c, mk_list *l)
{
    char p[96], n[96];
    int bad = 0;
    bad |= mk_add(l, "shared.weight", c->vocab_size, c->d_model, 1.0f);
    for (int i = 0; i < c->num_layers; i++) {
        snprintf(p, sizeof p, "encoder.block.%d.layer.0.SelfAttention.", i);
        mk_attn(l, p, c, i == 0, &bad);
        snprintf(n, sizeof n, "encoder.block.%d.layer.0.layer_norm.weight", i);
        mk_norm(l, n, c, &bad);
        snprintf(p, sizeof p, "encoder.block.%d.layer.1.DenseReluDense.", i);
        mk_ffn(l, p, c, &bad);
        snprintf(n, sizeof n, "encoder.block.%d.layer.1.layer_norm.weight", i);
        mk_norm(l, n, c, &bad);
    }
    mk_norm(l, "encoder.final_layer_norm.weight", c, &bad);
    for (int i = 0; i < c->num_decoder_layers; i++) {
        snprintf(p, sizeof p, "decoder.block.%d.layer.0.SelfAttention.", i);
        mk_attn(l, p, c, i == 0, &bad);
        snprintf(n, sizeof n, "decoder.block.%d.layer.0.layer_norm.weight", i);
        mk_norm(l, n, c, &bad);
        snprintf(p, sizeof p, "decoder.block.%d.layer.1.EncDecAttention.", i);
        mk_attn(l, p, c, 0, &bad);
        snprintf(n, sizeof n, "decoder.block.%d.layer.1.layer_norm.weight", i);
        mk_norm(l, n, c, &bad);
        snprintf(p, sizeof p, "decoder.block.%d.layer.2.DenseReluDense.", i);
        mk_ffn(l, p, c, &bad);
        snprintf(n, sizeof n, "decoder.block.%d.layer.2.layer_norm.weight", i);
        mk_norm(l, n, c, &bad);
    }
    mk_norm(l, "decoder.final_layer_norm.weight", c, &bad);
    if (!c->arch.tied)
        bad |=
            mk_add(l, "lm_head.weight", c->vocab_size, c->d_model, 1.0f / sqrtf((float)c->d_model));
    return bad ? -1 : 0;
}

/* ---- the BART family (engine/arch_bart.c's names) ---- */

/* prefix + "weight" [rows, cols] ~ N(0, 1/cols) and prefix + "bias" [rows] of zeros. */
static void mk_lin(mk_list *l, const char *p, int64_t rows, int64_t cols, int *bad)
{
    char n[96];
    snprintf(n, sizeof n, "%sweight", p);
    *bad |= mk_add(l, n, rows, cols, 1.0f / sqrtf((float)cols));
    snprintf(n, sizeof n, "%sbias", p);
    *bad |= mk_add(l, n, rows, 0, MK_ZEROS);
}

/* A LayerNorm: prefix + "weight" of ones, prefix + "bias" of zeros. */
static void mk_ln(mk_list *l, const char *p, const eng_config *c, int *bad)
{
    char n[96];
    snprintf(n, sizeof n, "%sweight", p);
    *bad |= mk_add(l, n, c->d_model, 0, MK_ONES);
    snprintf(n, sizeof n, "%sbias", p);
    *bad |= mk_add(l, n, c->d_model, 0, MK_ZEROS);
}

static void mk_bart_stack(mk_list *l, const eng_config *c, const char *name, int dec, int *bad)
{
    const eng_arch_config *a = &c->arch;
    int64_t D = c->d_model, I = (int64_t)c->num_heads * c->d_kv, F = c->d_ff;
    char p[96];
    if (a->pos == ENG_POS_LEARNED) {
        snprintf(p, sizeof p, "model.%s.embed_positions.weight", name);
        *bad |= mk_add(l, p, a->max_positions + a->pos_offset, D, 1.0f / sqrtf((float)D));
    }
    if (a->embed_norm) {
        snprintf(p, sizeof p, "model.%s.layernorm_embedding.", name);
        mk_ln(l, p, c, bad);
    }
    int layers = dec ? c->num_decoder_layers : c->num_layers;
    const char *proj[] = { "q_proj", "k_proj", "v_proj", "out_proj" };
    const char *attn[] = { "self_attn", "encoder_attn" };
    for (int i = 0; i < layers; i++) {
        for (int k = 0; k < (dec ? 2 : 1); k++) {
            for (int j = 0; j < 4; j++) {
                snprintf(p, sizeof p, "model.%s.layers.%d.%s.%s.", name, i, attn[k], proj[j]);
                mk_lin(l, p, j < 3 ? I : D, j < 3 ? D : I, bad);
            }
            snprintf(p, sizeof p, "model.%s.layers.%d.%s_layer_norm.", name, i, attn[k]);
            mk_ln(l, p, c, bad);
        }
        snprintf(p, sizeof p, "model.%s.layers.%d.fc1.", name, i);
        mk_lin(l, p, F, D, bad);
        snprintf(p, sizeof p, "model.%s.layers.%d.fc2.", name, i);
        mk_lin(l, p, D, F, bad);
        snprintf(p, sizeof p, "model.%s.layers.%d.final_layer_norm.", name, i);
        mk_ln(l, p, c, bad);
    }
    if (a->final_norm) {
        snprintf(p, sizeof p, "model.%s.layer_norm.", name);
        mk_ln(l, p, c, bad);
    }
}

/* Every tensor of HF {Bart,MBart}ForConditionalGeneration, MarianMTModel and
 * M2M100ForConditionalGeneration for c, as save_pretrained writes them (tied copies
 * left out); the structure (positions, embedding and final norms) is c->arch, read from
 * the config by the engine's own entry, so what is written is what the binder wants. */
static int mk_bart_shapes(const eng_config *c, mk_list *l)
{
    float se = 1.0f / sqrtf((float)c->d_model);
    int bad = 0;
    /* transformers registers the buffer for BART, mBART and Marian; M2M100 has none. */
    if (strcmp(c->model_type, "m2m_100") != 0)
        bad |= mk_add(l, "final_logits_bias", 1, c->vocab_size, MK_ZEROS);
    if (!c->arch.tied) bad |= mk_add(l, "lm_head.weight", c->vocab_size, c->d_model, se);
    bad |= mk_add(l, "model.shared.weight", c->vocab_size, c->d_model, se);
    mk_bart_stack(l, c, "encoder", 0, &bad);
    mk_bart_stack(l, c, "decoder", 1, &bad);
    return bad ? -1 : 0;
}

static int64_t mk_elems(const mk_tensor *t)
{
    return t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
}

/* The header JSON, padded with spaces to a multiple of 8 so F32 data stays aligned. */
static char *mk_header(const mk_list *l, st_dtype dt, size_t *len, uint64_t *total)
{
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        const mk_tensor *t = &l->t[i];
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(dt));
        cJSON *s = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t->shape[d]));
        uint64_t nb = (uint64_t)mk_elems(t) * st_dtype_size(dt);
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) return NULL;
    size_t n = strlen(js), padded = (n + 7) & ~(size_t)7;
    char *out = realloc(js, padded + 1);
    if (!out) {
        free(js);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *len = padded;
    *total = off;
    return out;
}

static int mk_copy(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in && ferror(in)) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

static int mk_mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int mk_write(const char *path, const mk_list *l, st_dtype dt, uint64_t seed, uint64_t *total)
{
    size_t hlen;
    char *hdr = mk_header(l, dt, &hlen, total);
    float *f = malloc(MK_CHUNK * sizeof *f);    /* [MK_CHUNK] values */
    uint16_t *h = malloc(MK_CHUNK * sizeof *h); /* [MK_CHUNK] half/bf16 */
    FILE *out = fopen(path, "wb");
    int rc = -1;
    if (!hdr || !f || !h || !out) goto done;
    setvbuf(out, NULL, _IOFBF, 1 << 22);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (fwrite(len8, 1, 8, out) != 8 || fwrite(hdr, 1, hlen, out) != hlen) goto done;
    uint64_t rng = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int i = 0; i < l->n; i++) {
        const mk_tensor *t = &l->t[i];
        for (int64_t left = mk_elems(t); left > 0;) {
            size_t n = left < MK_CHUNK ? (size_t)left : MK_CHUNK;
            if (t->scale <= 0.0f) {
                for (size_t k = 0; k < n; k++) f[k] = t->scale == MK_ONES ? 1.0f : 0.0f;
            } else {
                mk_normal(&rng, f, n);
                for (size_t k = 0; k < n; k++) f[k] *= t->scale;
            }
            size_t wrote;
            if (dt == ST_F32) {
                wrote = fwrite(f, 4, n, out); /* little-endian host */
            } else {
                for (size_t k = 0; k < n; k++) h[k] = dt == ST_BF16 ? mk_bf16(f[k]) : mk_f16(f[k]);
                wrote = fwrite(h, 2, n, out);
            }
            if (wrote != n) goto done;
            left -= (int64_t)n;
        }
    }
    rc = 0;
done:
    if (out && fclose(out) != 0) rc = -1;
    free(hdr);
    free(f);
    free(h);
    return rc;
}

static void mk_usage(FILE *to)
{
    fprintf(to,
            "usage: mkmodel --config CONFIG.json --out DIR [--dtype f32|f16|bf16] [--seed N]\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL, *outdir = NULL, *dtype = "f32";
    uint64_t seed = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            mk_usage(stdout);
            return 0;
        }
        if (!v) {
            mk_usage(stderr);
            return 2;
        }
        if (strcmp(a, "--config") == 0) config = v;
        else if (strcmp(a, "--out") == 0) outdir = v;
        else if (strcmp(a, "--dtype") == 0) dtype = v;
        else if (strcmp(a, "--seed") == 0) seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "mkmodel: unknown option %s\n", a);
            mk_usage(stderr);
            return 2;
        }
    }
    st_dtype dt;
    if (strcmp(dtype, "f32") == 0) dt = ST_F32;
    else if (strcmp(dtype, "f16") == 0) dt = ST_F16;
    else if (strcmp(dtype, "bf16") == 0) dt = ST_BF16;
    else {
        fprintf(stderr, "mkmodel: --dtype must be f32, f16 or bf16, not '%s'\n", dtype);
        return 2;
    }
    if (!config || !outdir) {
        mk_usage(stderr);
        return 2;
    }
    eng_config c;
    char err[512];
    const eng_arch *arch = NULL;
    if (hf_config_load(config, &c, &arch, err, sizeof err) != 0) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return 1;
    }
    mk_list l = { 0 };
    int rc;
    if (strcmp(arch->name, "t5") == 0) {
        rc = mk_shapes(&c, &l);
    } else if (strcmp(arch->name, "bart") == 0) {
        rc = mk_bart_shapes(&c, &l);
    } else {
        fprintf(stderr, "mkmodel: %s: no layout for the '%s' architecture (t5, bart)\n", config,
                arch->name);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "mkmodel: out of memory\n");
        return 1;
    }
    char path[4096];
    if (mk_mkdirs(outdir) != 0) {
        fprintf(stderr, "mkmodel: cannot create %s: %s\n", outdir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/config.json", outdir);
    if (mk_copy(config, path) != 0) {
        fprintf(stderr, "mkmodel: cannot write %s\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    uint64_t total = 0;
    if (mk_write(path, &l, dt, seed, &total) != 0) {
        fprintf(stderr, "mkmodel: cannot write %s: %s\n", path, strerror(errno));
        remove(path);
        return 1;
    }
    int64_t params = 0;
    for (int i = 0; i < l.n; i++) params += mk_elems(&l.t[i]);
    printf("%s: %d tensors, %.1fM parameters, %.0f MiB %s\n", outdir, l.n, params / 1e6,
           total / 1048576.0, st_dtype_name(dt));
    free(l.t);
    return 0;
}
