/* The architecture table against Hugging Face: every golden case of the tiny family
 * checkpoints in tests/data/families/models (transformers' own code in float64; see that
 * directory's README): the encoder output after its last layer, and the raw logits
 * (final_logits_bias included) at the decoder positions whose inputs are [start] +
 * greedy.tokens[:2], within FAM_TOL. The largest difference of each model is printed. */
#include "common/common.h"
#include "engine/engine.h"
#include "engine/st.h"
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAM_TOL 1e-4

static cJSON *fam_json(const char *rel)
{
    char *buf;
    size_t n;
    if (cm_read_file(th_data(rel), 64 << 20, &buf, &n) != 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    return j;
}

static int fam_ids(const cJSON *arr, int32_t *out, int max)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (n < max) out[n] = (int32_t)e->valueint;
        n++;
    }
    return n;
}

/* max |a - b| over n floats of a golden F32 tensor named name. */
static double fam_diff(const st_set *g, const char *name, const float *got, size_t n)
{
    const st_tensor *t = st_find(g, name);
    REQUIRE_MSG(t && t->dtype == ST_F32 && t->nbytes == n * sizeof(float), "golden %s", name);
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        float w;
        memcpy(&w, (const char *)t->data + i * sizeof w, sizeof w);
        double d = fabs((double)got[i] - w);
        if (!(d <= mx)) mx = d;   /* NaN too */
    }
    return mx;
}

/* Encoder output and (generating models) the first three steps' logits of every case. */
static void fam_check(const char *model, int generating)
{
    char rel[160], err[512];
    snprintf(rel, sizeof rel, "families/models/%s/golden.json", model);
    cJSON *gold = fam_json(rel);
    REQUIRE_MSG(gold, "cannot read %s", rel);
    snprintf(rel, sizeof rel, "families/models/%s/golden.safetensors", model);
    st_set *gst = st_open_file(th_data(rel), err, sizeof err);
    REQUIRE_MSG(gst, "%s", err);
    snprintf(rel, sizeof rel, "families/models/%s", model);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1;
    eng_model *m = eng_model_load(th_data(rel), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    eng_ctx *c = eng_ctx_new(m, NULL, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    const eng_config *cf = eng_model_config(m);
    int V = cf->vocab_size, D = cf->d_model, cases = 0;
    double enc_max = 0, lg_max = 0;
    float *enc = malloc((size_t)512 * D * sizeof *enc), *lg = malloc((size_t)V * sizeof *lg);
    REQUIRE(enc && lg);
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(gold, "cases")) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        int32_t ids[512], dec[8];
        int n = fam_ids(cJSON_GetObjectItem(cs, "input_ids"), ids, 512);
        REQUIRE(n > 0 && n <= 512);
        REQUIRE(eng_encode(c, ids, n, enc) == 0);
        snprintf(rel, sizeof rel, "%s.encoder_out", name);
        double d = fam_diff(gst, rel, enc, (size_t)n * D);
        CHECK_MSG(d <= FAM_TOL, "%s %s: encoder output differs by %.3g", model, name, d);
        if (d > enc_max) enc_max = d;
        cases++;
        if (!generating) continue;
        const cJSON *start = cJSON_GetObjectItem(cs, "decoder_start_token_id");
        CHECK_MSG(start->valueint == cf->decoder_start_token_id, "%s: decoder start %d, want %d",
                  model, cf->decoder_start_token_id, start->valueint);
        dec[0] = cf->decoder_start_token_id;
        int ng = fam_ids(cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "greedy"), "tokens"),
                         dec + 1, 2);
        int k = ng + 1 < 3 ? ng + 1 : 3;
        snprintf(rel, sizeof rel, "%s.logits", name);
        const st_tensor *t = st_find(gst, rel);
        REQUIRE_MSG(t && t->ndim == 2 && t->shape[0] >= k && t->shape[1] == V, "golden %s", rel);
        for (int s = 0; s < k; s++) {
            REQUIRE(eng_logits(c, ids, n, dec, s + 1, lg) == 0);
            double mx = 0;
            for (int v = 0; v < V; v++) {
                float w;
                memcpy(&w, (const char *)t->data + ((size_t)s * V + v) * sizeof w, sizeof w);
                double dd = fabs((double)lg[v] - w);
                if (!(dd <= mx)) mx = dd;
            }
            CHECK_MSG(mx <= FAM_TOL, "%s %s: logits at step %d differ by %.3g", model, name, s, mx);
            if (mx > lg_max) lg_max = mx;
        }
    }
    CHECK(cases > 0);
    printf("%s: %d cases, encoder output max diff %.3g, logits max diff %.3g (tolerance %g)\n",
           model, cases, enc_max, lg_max, FAM_TOL);
    free(enc);
    free(lg);
    eng_ctx_free(&c);
    eng_model_free(&m);
    st_close(&gst);
    cJSON_Delete(gold);
}

TEST(fam_bart_encoder_and_logits) { fam_check("tiny-bart", 1); }
TEST(fam_bart_mnli_encoder) { fam_check("tiny-bart-mnli", 0); }
TEST(fam_marian_encoder_and_logits) { fam_check("tiny-marian", 1); }
TEST(fam_m2m100_encoder_and_logits) { fam_check("tiny-m2m100", 1); }
TEST(fam_mbart_encoder_and_logits) { fam_check("tiny-mbart", 1); }
TEST(fam_t5_v1_encoder_and_logits) { fam_check("tiny-t5-es", 1); }

/* config.json decides the computation: an unsupported family is named, with the list. */
TEST(fam_unknown_model_type_is_named)
{
    char dir[] = "/tmp/nlp-fam-XXXXXX", path[64], err[512];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("{\"model_type\": \"pegasus\", \"d_model\": 16}", f);
    fclose(f);
    eng_model *m = eng_model_load(dir, NULL, err, sizeof err);
    CHECK(m == NULL);
    CHECK_MSG(strstr(err, "unknown model_type 'pegasus'") && strstr(err, "bart") &&
              strstr(err, "marian") && strstr(err, "t5"), "%s", err);
    unlink(path);
    rmdir(dir);
}
