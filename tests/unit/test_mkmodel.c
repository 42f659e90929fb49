/* build/bench/mkmodel: its checkpoints load through the loader with every tensor HF's
 * T5ForConditionalGeneration has, in the requested dtype, with the documented scales. */
#include "tests/harness/harness.h"

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
    snprintf(cmd, sizeof cmd, "%s/bench/mkmodel --config %s --out %s/%s --dtype %s --seed 3 >/dev/null",
             th_build(), path, dir, sub, dtype);
    REQUIRE_MSG(system(cmd) == 0, "failed: %s", cmd);
}

TEST(mkmodel_gated_untied_loads)
{
    const char *dir = mkm_tmpdir();
    mkm_run(dir,
            "{\"model_type\":\"t5\",\"vocab_size\":100,\"d_model\":16,\"d_kv\":4,\"num_heads\":3,"
            "\"d_ff\":24,\"num_layers\":2,\"num_decoder_layers\":1,\"feed_forward_proj\":\"gated-gelu\","
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
    CHECK(st_find(s, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight") == NULL);
    CHECK(st_find(s, "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight") == NULL);
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
    REQUIRE_MSG(hf_config_load(path, &c, &(const eng_arch *){ NULL }, err, sizeof err) == 0, "%s", err);
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
    snprintf(cmd, sizeof cmd, "%s/bench/mkmodel --config %s --out /tmp/nlp-mkm-never --dtype i8 2>/dev/null",
             th_build(), th_data("configs/t5-small.json"));
    CHECK(system(cmd) != 0);
    snprintf(cmd, sizeof cmd, "%s/bench/mkmodel --config /nonexistent.json --out /tmp/nlp-mkm-never 2>/dev/null",
             th_build());
    CHECK(system(cmd) != 0);
}
