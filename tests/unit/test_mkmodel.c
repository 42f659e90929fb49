/* build/bench/mkmodel: its checkpoints load through the loader with every tensor HF's
 * T5ForConditionalGeneration has, in the requested dtype, with the documented scales; for
 * the BART family (bart, mbart, marian, m2m_100) it writes exactly the tensors, names and
 * shapes of the transformers-saved tiny checkpoints in tests/data/families/models, and
 * the engine loads them and computes finite logits. */
#include "tests/harness/harness.h"

#include "engine/engine.h"
#include "engine/hfconfig.h"
#include "engine/st.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *mkm_tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/nlp-mkm-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    return dir;
}

static void mkm_run(const char *dir, const char *cfg_json, const char *dtype, const char *sub)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/in.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(cfg_json, f);
    REQUIRE(fclose(f) == 0);
    snprintf(cmd, sizeof cmd,
             "%s/bench/mkmodel --config %s --out %s/%s --dtype %s --seed 3 >/dev/null", th_build(),
             path, dir, sub, dtype);
    REQUIRE_MSG(system(cmd) == 0, "failed: %s", cmd);
}

TEST(mkmodel_gated_untied_loads)
{
    const char *dir = mkm_tmpdir();
    mkm_run(dir,
            "{\"model_type\":\"t5\",\"vocab_size\":100,\"d_model\":16,\"d_kv\":4,\"num_heads\":3,"
            "\"d_ff\":24,\"num_layers\":2,\"num_decoder_layers\":1,\"feed_forward_proj\":\"gated-"
            "gelu\","
            "\"tie_word_embeddings\":false,\"relative_attention_num_buckets\":8,"
            "\"relative_attention_max_distance\":16}",
            "bf16", "m");
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/m", dir);
    st_set *s = st_open_dir(path, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    /* shared + enc (2 x (4 attn + bias in block 0 + 3 ffn + 2 norms)) + enc final
     * + dec (1 x (4 + bias + 4 + 3 + 3 norms)) + dec final + lm_head */
    int want = 1 + (2 * 9 + 1) + 1 + (4 + 1 + 4 + 3 + 3) + 1 + 1;
    CHECK_MSG(st_count(s) == want, "count %d want %d", st_count(s), want);
    const st_tensor *t = st_find(s, "encoder.block.0.layer.0.SelfAttention.q.weight");
    REQUIRE(t);
    CHECK(t->dtype == ST_BF16 && t->shape[0] == 12 && t->shape[1] == 16);
    t = st_find(s, "decoder.block.0.layer.1.EncDecAttention.o.weight");
    REQUIRE(t);
    CHECK(t->shape[0] == 16 && t->shape[1] == 12);
    t = st_find(s, "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    REQUIRE(t);
    CHECK(t->shape[0] == 8 && t->shape[1] == 3);
    CHECK(st_find(s, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight") ==
          NULL);
    CHECK(st_find(s, "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight") ==
          NULL);
    t = st_find(s, "decoder.block.0.layer.2.DenseReluDense.wi_1.weight");
    REQUIRE(t);
    CHECK(t->shape[0] == 24 && t->shape[1] == 16);
    CHECK(st_find(s, "lm_head.weight") != NULL);
    /* Layer norms are ones (BF16 0x3f80). */
    t = st_find(s, "decoder.final_layer_norm.weight");
    REQUIRE(t && t->shape[0] == 16);
    for (int i = 0; i < 16; i++) CHECK(((const uint16_t *)t->data)[i] == 0x3f80);
    st_close(&s);
    /* The config is copied and reads back. */
    eng_config c;
    snprintf(path, sizeof path, "%s/m/config.json", dir);
    REQUIRE_MSG(hf_config_load(path, &c, &(const eng_arch *){ NULL }, err, sizeof err) == 0, "%s",
                err);
    CHECK(c.d_model == 16 && c.arch.gated == 1 && c.arch.tied == 0 && c.num_decoder_layers == 1);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST(mkmodel_relu_tied_f32_scales)
{
    const char *dir = mkm_tmpdir();
    mkm_run(dir,
            "{\"model_type\":\"t5\",\"vocab_size\":300,\"d_model\":64,\"d_kv\":16,\"num_heads\":4,"
            "\"d_ff\":128,\"num_layers\":1}",
            "f32", "m");
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/m", dir);
    st_set *s = st_open_dir(path, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    int want = 1 + 9 + 1 + 14 + 1; /* relu: one wi; tied: no lm_head */
    CHECK_MSG(st_count(s) == want, "count %d want %d", st_count(s), want);
    CHECK(st_find(s, "lm_head.weight") == NULL);
    CHECK(st_find(s, "encoder.block.0.layer.1.DenseReluDense.wi.weight") != NULL);
    CHECK(st_find(s, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight") == NULL);
    /* Data offsets are 8-aligned (padded header) and the scales are as documented:
     * shared ~ N(0,1), wo ~ N(0, 1/d_ff). */
    const st_tensor *t = st_find(s, "shared.weight");
    REQUIRE(t && t->dtype == ST_F32);
    CHECK(((uintptr_t)t->data & 7) == 0);
    const float *w = t->data;
    double s2 = 0;
    for (int i = 0; i < 300 * 64; i++) s2 += (double)w[i] * w[i];
    double sd = sqrt(s2 / (300 * 64));
    CHECK_MSG(sd > 0.95 && sd < 1.05, "shared std %g", sd);
    t = st_find(s, "decoder.block.0.layer.2.DenseReluDense.wo.weight");
    REQUIRE(t && t->shape[0] == 64 && t->shape[1] == 128);
    w = t->data;
    s2 = 0;
    for (int i = 0; i < 64 * 128; i++) s2 += (double)w[i] * w[i];
    sd = sqrt(s2 / (64 * 128));
    CHECK_MSG(fabs(sd - 1 / sqrt(128.0)) < 0.01, "wo std %g", sd);
    st_close(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST(mkmodel_rejects_bad_args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s/bench/mkmodel --config %s --out /tmp/nlp-mkm-never --dtype i8 2>/dev/null",
             th_build(), th_data("configs/t5-small.json"));
    CHECK(system(cmd) != 0);
    snprintf(cmd, sizeof cmd,
             "%s/bench/mkmodel --config /nonexistent.json --out /tmp/nlp-mkm-never 2>/dev/null",
             th_build());
    CHECK(system(cmd) != 0);
}

/* mkmodel on a family's tiny config.json writes the reference checkpoint's layout: every
 * tensor it has, no other, the same shapes; norms are ones, biases zeros; the engine loads
 * it and eng_logits gives finite, not all equal, logits. */
static void mkm_family(const char *family)
{
    const char *dir = mkm_tmpdir();
    char ref[256], cfg[512], out[320], cmd[2048], err[512] = "";
    snprintf(ref, sizeof ref, "%s", th_data("families/models"));
    snprintf(cfg, sizeof cfg, "%s/%s/config.json", ref, family);
    snprintf(out, sizeof out, "%s/m", dir);
    snprintf(cmd, sizeof cmd, "%s/bench/mkmodel --config %s --out %s --seed 5 >/dev/null",
             th_build(), cfg, out);
    REQUIRE_MSG(system(cmd) == 0, "failed: %s", cmd);
    snprintf(ref + strlen(ref), sizeof ref - strlen(ref), "/%s", family);
    st_set *r = st_open_dir(ref, err, sizeof err);
    REQUIRE_MSG(r, "%s", err);
    st_set *s = st_open_dir(out, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    CHECK_MSG(st_count(s) == st_count(r), "%s: %d tensors, the reference has %d", family,
              st_count(s), st_count(r));
    for (int i = 0; i < st_count(r); i++) {
        const st_tensor *a = st_at(r, i), *b = st_find(s, a->name);
        CHECK_MSG(b, "%s: mkmodel did not write %s", family, a->name);
        if (!b) continue;
        CHECK_MSG(b->dtype == ST_F32 && b->ndim == a->ndim, "%s: %s", family, a->name);
        for (int d = 0; d < a->ndim && d < b->ndim; d++)
            CHECK_MSG(a->shape[d] == b->shape[d], "%s: %s dim %d: %lld, reference %lld", family,
                      a->name, d, (long long)b->shape[d], (long long)a->shape[d]);
        size_t len = strlen(a->name);
        const float *v = b->data;
        if (len > 5 && strcmp(a->name + len - 5, ".bias") == 0)
            CHECK_MSG(v[0] == 0.0f && v[b->shape[0] - 1] == 0.0f, "%s: %s", family, a->name);
        if (strstr(a->name, "norm.weight"))
            CHECK_MSG(v[0] == 1.0f && v[b->shape[0] - 1] == 1.0f, "%s: %s", family, a->name);
    }
    st_close(&s);
    st_close(&r);

    eng_model *m = eng_model_load(out, NULL, err, sizeof err);
    REQUIRE_MSG(m, "%s: %s", family, err);
    eng_ctx *c = eng_ctx_new(m, NULL, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    const eng_config *cf = eng_model_config(m);
    int32_t ids[6] = { 5, 17, 9, 33, 4, cf->eos_token_id };
    int32_t dec[3] = { cf->decoder_start_token_id, 11, 7 };
    float *lg = malloc((size_t)cf->vocab_size * sizeof *lg);
    REQUIRE(lg);
    CHECK_MSG(eng_logits(c, ids, 6, dec, 3, lg) == 0, "%s: eng_logits", family);
    float lo = lg[0], hi = lg[0];
    int finite = 1;
    for (int i = 0; i < cf->vocab_size; i++) {
        finite &= isfinite(lg[i]) != 0;
        lo = lg[i] < lo ? lg[i] : lo;
        hi = lg[i] > hi ? lg[i] : hi;
    }
    CHECK_MSG(finite && hi - lo > 0.1f, "%s: logits in [%g, %g]", family, lo, hi);
    free(lg);
    eng_ctx_free(&c);
    eng_model_free(&m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST(mkmodel_bart_layout_loads) { mkm_family("tiny-bart"); }
TEST(mkmodel_mbart_layout_loads) { mkm_family("tiny-mbart"); }
TEST(mkmodel_marian_layout_loads) { mkm_family("tiny-marian"); }
TEST(mkmodel_m2m100_layout_loads) { mkm_family("tiny-m2m100"); }

/* The real-shaped configs of make bench read back as their checkpoints' sizes (the
 * parameter counts of bench_families.sh follow from them). */
TEST(mkmodel_bench_configs_read)
{
    static const struct {
        const char *file;
        int layers, d, ff, heads, vocab, start;
    } cf[] = {
        { "configs/bart-large-cnn.json", 12, 1024, 4096, 16, 50264, 2 },
        { "configs/opus-mt-en-de.json", 6, 512, 2048, 8, 58101, 58100 },
        { "configs/nllb-200-distilled-600M.json", 12, 1024, 4096, 16, 256206, 2 },
    };
    for (size_t i = 0; i < sizeof cf / sizeof cf[0]; i++) {
        eng_config c;
        char err[512] = "";
        REQUIRE_MSG(hf_config_load(th_data(cf[i].file), &c, &(const eng_arch *){ NULL }, err,
                                   sizeof err) == 0,
                    "%s", err);
        CHECK_MSG(c.num_layers == cf[i].layers && c.num_decoder_layers == cf[i].layers &&
                      c.d_model == cf[i].d && c.d_ff == cf[i].ff && c.num_heads == cf[i].heads &&
                      c.vocab_size == cf[i].vocab && c.decoder_start_token_id == cf[i].start,
                  "%s", cf[i].file);
    }
}
