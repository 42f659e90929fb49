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
        if (!(d <= mx)) mx = d; /* NaN too */
    }
    return mx;
}

/* Encoder output and (generating models) the first three steps' logits of every case. */
static void fam_check(const char *model, int generating)
{
    char rel[160], err[512];
    snprintf(rel, sizeof rel, "families/models/%s/golden.json", model);
    cJSON *gold = th_json(rel);
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
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(gold, "cases")) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        int32_t ids[512], dec[8];
        int n = th_ids(cJSON_GetObjectItem(cs, "input_ids"), ids, 512);
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
        int ng =
            th_ids(cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "greedy"), "tokens"), dec + 1, 2);
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

/* Generation parameters from a golden "params" object (HF's names). Bad words go into
 * words/off, which must outlive the params. */
static eng_gen_params fam_params(const cJSON *j, int32_t *words, int *off)
{
    eng_gen_params p = eng_gen_default_params();
    const cJSON *v;
    if ((v = cJSON_GetObjectItem(j, "num_beams"))) p.num_beams = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "max_new_tokens"))) p.max_new_tokens = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "min_new_tokens"))) p.min_new_tokens = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "length_penalty"))) p.length_penalty = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItem(j, "no_repeat_ngram_size"))) p.no_repeat_ngram_size = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "num_return_sequences"))) p.num_return_sequences = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "forced_bos_token_id"))) p.forced_bos_token_id = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "forced_eos_token_id"))) p.forced_eos_token_id = v->valueint;
    if ((v = cJSON_GetObjectItem(j, "early_stopping")))
        p.early_stopping = cJSON_IsString(v) ? ENG_EARLY_NEVER
                           : cJSON_IsTrue(v) ? ENG_EARLY_TRUE
                                             : ENG_EARLY_FALSE;
    if ((v = cJSON_GetObjectItem(j, "bad_words_ids"))) {
        const cJSON *w, *t;
        int n = 0, k = 0;
        off[0] = 0;
        cJSON_ArrayForEach (w, v) {
            cJSON_ArrayForEach (t, w) words[k++] = t->valueint;
            off[++n] = k;
        }
        p.bad_words = words, p.bad_off = off, p.n_bad_words = n;
    }
    return p;
}

/* Greedy ids identical; beam hypotheses identical in tokens and order, scores and sums
 * within FAM_TOL; every case and beam configuration. */
static void fam_generate(const char *model)
{
    char rel[160], err[512];
    snprintf(rel, sizeof rel, "families/models/%s/golden.json", model);
    cJSON *gold = th_json(rel);
    REQUIRE_MSG(gold, "cannot read %s", rel);
    snprintf(rel, sizeof rel, "families/models/%s", model);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1;
    eng_model *m = eng_model_load(th_data(rel), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    eng_ctx *c = eng_ctx_new(m, NULL, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    int runs = 0, hyps = 0;
    double worst = 0;
    const cJSON *cs;
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(gold, "cases")) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        int32_t ids[512], want[64], words[64];
        int off[17];
        int n = th_ids(cJSON_GetObjectItem(cs, "input_ids"), ids, 512);
        const cJSON *gr = cJSON_GetObjectItem(cs, "greedy");
        eng_gen_params p = fam_params(cJSON_GetObjectItem(gr, "params"), words, off);
        p.max_new_tokens = cJSON_GetObjectItem(gr, "max_new_tokens")->valueint;
        eng_gen_result out;
        eng_gen_req r = { .ids = ids, .n_ids = n, .params = &p, .out = &out };
        REQUIRE(eng_generate(c, &r, 1) == 0);
        REQUIRE_MSG(r.status == 0, "%s %s greedy: %s", model, name, eng_strerror(r.status));
        int nw = th_ids(cJSON_GetObjectItem(gr, "tokens"), want, 64);
        CHECK_MSG(out.hyps[0].n_tokens == nw &&
                      !memcmp(out.hyps[0].tokens, want, (size_t)nw * sizeof *want),
                  "%s %s: greedy ids differ", model, name);
        eng_gen_result_clear(&out);
        runs++;
        const cJSON *bm;
        int bi = 0;
        cJSON_ArrayForEach (bm, cJSON_GetObjectItem(cs, "beam")) {
            p = fam_params(cJSON_GetObjectItem(bm, "params"), words, off);
            r = (eng_gen_req){ .ids = ids, .n_ids = n, .params = &p, .out = &out };
            REQUIRE(eng_generate(c, &r, 1) == 0);
            REQUIRE_MSG(r.status == 0, "%s %s beam %d: %s", model, name, bi,
                        eng_strerror(r.status));
            const cJSON *hs = cJSON_GetObjectItem(bm, "hypotheses"), *h;
            CHECK_MSG(out.n_hyps == cJSON_GetArraySize(hs),
                      "%s %s beam %d: %d hypotheses, "
                      "want %d",
                      model, name, bi, out.n_hyps, cJSON_GetArraySize(hs));
            int k = 0;
            cJSON_ArrayForEach (h, hs) {
                if (k >= out.n_hyps) break;
                nw = th_ids(cJSON_GetObjectItem(h, "tokens"), want, 64);
                const eng_hyp *got = &out.hyps[k];
                CHECK_MSG(got->n_tokens == nw &&
                              !memcmp(got->tokens, want, (size_t)nw * sizeof *want),
                          "%s %s beam %d: hypothesis %d differs", model, name, bi, k);
                double ds = fabs(got->score - cJSON_GetObjectItem(h, "score")->valuedouble);
                double dl =
                    fabs(got->sum_logprobs - cJSON_GetObjectItem(h, "sum_logprobs")->valuedouble);
                CHECK_MSG(ds <= FAM_TOL && dl <= FAM_TOL,
                          "%s %s beam %d hyp %d: score off by "
                          "%.3g, sum by %.3g",
                          model, name, bi, k, ds, dl);
                if (ds > worst) worst = ds;
                if (dl > worst) worst = dl;
                k++, hyps++;
            }
            eng_gen_result_clear(&out);
            bi++, runs++;
        }
    }
    printf("%s: %d generations, %d beam hypotheses, score max diff %.3g\n", model, runs, hyps,
           worst);
    eng_ctx_free(&c);
    eng_model_free(&m);
    cJSON_Delete(gold);
}

/* BartForSequenceClassification (tiny-bart-mnli): every case's logits and every zero-shot
 * pair's within FAM_TOL, class names from id2label, and the whole set in one call equal,
 * bit for bit, to each request alone. */
TEST(fam_bart_mnli_classify)
{
    char err[512];
    cJSON *gold = th_json("families/models/tiny-bart-mnli/golden.json");
    REQUIRE(gold);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1;
    eng_model *m = eng_model_load(th_data("families/models/tiny-bart-mnli"), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    eng_ctx *c = eng_ctx_new(m, NULL, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    const eng_config *cf = eng_model_config(m);
    REQUIRE(cf->num_labels == 3);
    CHECK(!strcmp(cf->labels[0], "contradiction") && !strcmp(cf->labels[1], "neutral") &&
          !strcmp(cf->labels[2], "entailment"));
    enum { MAXR = 64 };
    static int32_t ids[MAXR][128];
    static float got[MAXR][3], alone[3];
    static double want[MAXR][3];
    eng_cls_req reqs[MAXR];
    int n = 0;
    const cJSON *cs, *it, *pr, *v;
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(gold, "cases")) {
        REQUIRE(n < MAXR);
        int k = 0;
        cJSON_ArrayForEach (v, cJSON_GetObjectItem(cs, "logits")) want[n][k++] = v->valuedouble;
        reqs[n] =
            (eng_cls_req){ .ids = ids[n],
                           .logits = got[n],
                           .n_ids = th_ids(cJSON_GetObjectItem(cs, "input_ids"), ids[n], 128) };
        n++;
    }
    cJSON_ArrayForEach (it, cJSON_GetObjectItem(cJSON_GetObjectItem(gold, "zero_shot"), "items"))
        cJSON_ArrayForEach (pr, cJSON_GetObjectItem(it, "pairs")) {
            REQUIRE(n < MAXR);
            int k = 0;
            cJSON_ArrayForEach (v, cJSON_GetObjectItem(pr, "logits")) want[n][k++] = v->valuedouble;
            reqs[n] =
                (eng_cls_req){ .ids = ids[n],
                               .logits = got[n],
                               .n_ids = th_ids(cJSON_GetObjectItem(pr, "input_ids"), ids[n], 128) };
            n++;
        }
    REQUIRE(eng_classify(c, reqs, n) == 0);
    double mx = 0;
    for (int i = 0; i < n; i++) {
        REQUIRE_MSG(reqs[i].status == 0, "request %d: %s", i, eng_strerror(reqs[i].status));
        for (int l = 0; l < 3; l++) {
            double d = fabs(got[i][l] - want[i][l]);
            if (!(d <= mx)) mx = d;
        }
        eng_cls_req one = reqs[i];
        one.logits = alone;
        REQUIRE(eng_classify(c, &one, 1) == 0 && one.status == 0);
        CHECK_MSG(!memcmp(alone, got[i], sizeof alone), "request %d alone differs from batched", i);
    }
    CHECK_MSG(mx <= FAM_TOL, "classification logits differ by %.3g", mx);
    printf("tiny-bart-mnli: %d pairs classified, logits max diff %.3g (tolerance %g)\n", n, mx,
           FAM_TOL);
    /* no EOS: refused */
    int32_t noeos[3] = { 0, 5, 6 };
    eng_cls_req bad = { .ids = noeos, .n_ids = 3, .logits = alone };
    REQUIRE(eng_classify(c, &bad, 1) == 0);
    CHECK(bad.status == ENG_EINVAL);
    eng_ctx_free(&c);
    eng_model_free(&m);
    cJSON_Delete(gold);
}

/* generation_config.json's settings come with the model. */
TEST(fam_generation_config_defaults)
{
    char err[512];
    eng_model *m = eng_model_load(th_data("families/models/tiny-marian"), NULL, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    unsigned set;
    eng_gen_params p = eng_model_gen_params(m, &set);
    CHECK(p.forced_eos_token_id == 0 && p.forced_bos_token_id == -1);
    CHECK(p.n_bad_words == 1 && p.bad_words[p.bad_off[0]] == 127 && p.bad_off[1] == 1);
    CHECK((set & ENG_GEN_SET_FORCED_EOS) && (set & ENG_GEN_SET_BAD_WORDS) &&
          !(set & ENG_GEN_SET_BEAMS) && !(set & ENG_GEN_SET_FORCED_BOS));
    eng_model_free(&m);
    m = eng_model_load(th_data("families/models/tiny-m2m100"), NULL, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    p = eng_model_gen_params(m, &set);
    CHECK(p.forced_bos_token_id == 123 && set == ENG_GEN_SET_FORCED_BOS);
    eng_model_free(&m);
}

TEST(fam_bart_generate) { fam_generate("tiny-bart"); }
TEST(fam_marian_generate) { fam_generate("tiny-marian"); }
TEST(fam_m2m100_generate) { fam_generate("tiny-m2m100"); }
TEST(fam_mbart_generate) { fam_generate("tiny-mbart"); }
TEST(fam_t5_early_stopping_generate) { fam_generate("tiny-t5-es"); }

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
                  strstr(err, "marian") && strstr(err, "t5"),
              "%s", err);
    unlink(path);
    rmdir(dir);
}

/* A learned or sinusoidal position table has max_positions rows (64 in the tiny
 * checkpoints): a longer input, decoder sequence or candidate is ENG_ETOOLONG, never a
 * read past the table (it gave NaN before the context's limits were clamped). */
TEST(fam_position_table_bounds_lengths)
{
    static const char *const names[] = { "tiny-marian", "tiny-m2m100", "tiny-bart" };
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char err[512], dir[128];
        snprintf(dir, sizeof dir, "families/models/%s", names[k]);
        eng_model *m = eng_model_load(th_data(dir), NULL, err, sizeof err);
        REQUIRE_MSG(m, "%s", err);
        const eng_config *c = eng_model_config(m);
        int mp = c->arch.max_positions;
        REQUIRE_MSG(mp > 0 && mp < 200, "%s: max_positions %d", names[k], mp);
        eng_ctx_params cp = eng_ctx_default_params();
        cp.max_input_len = 512;
        cp.max_new_tokens = 256;
        eng_ctx *ctx = eng_ctx_new(m, &cp, err, sizeof err);
        REQUIRE_MSG(ctx, "%s", err);
        int32_t ids[200];
        for (int i = 0; i < mp + 1; i++) ids[i] = 5 + i % 7;
        ids[mp] = c->eos_token_id;
        float *enc = malloc(sizeof(float) * (size_t)(mp + 1) * (size_t)c->d_model);
        REQUIRE(enc);
        CHECK_MSG(eng_encode(ctx, ids, mp + 1, enc) == ENG_ETOOLONG, "%s", names[k]);
        ids[mp - 1] = c->eos_token_id;
        int rc = eng_encode(ctx, ids, mp, enc);
        CHECK_MSG(rc == 0, "%s: %d inputs: %s", names[k], mp, eng_strerror(rc));
        eng_gen_params gp = eng_gen_default_params();
        gp.max_new_tokens = mp + 1;
        eng_gen_result res = { 0 };
        eng_gen_req r = { .ids = ids, .n_ids = 8, .params = &gp, .out = &res };
        ids[7] = c->eos_token_id;
        CHECK(eng_generate(ctx, &r, 1) == 0 && r.status == ENG_ETOOLONG);
        gp.max_new_tokens = mp;
        gp.min_new_tokens = mp; /* every step runs: the last position is mp - 1 */
        r.status = 0;
        CHECK(eng_generate(ctx, &r, 1) == 0);
        CHECK_MSG(r.status == 0 && res.n_hyps == 1 && res.hyps[0].n_tokens == mp,
                  "%s: status %d, %d tokens", names[k], r.status,
                  res.n_hyps ? res.hyps[0].n_tokens : -1);
        eng_gen_result_clear(&res);
        free(enc);
        eng_ctx_free(&ctx);
        eng_model_free(&m);
    }
}
