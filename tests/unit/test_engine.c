/* Engine properties beyond the golden cases: bucket tables, batched = unbatched,
 * incremental decoding = full recompute, label scoring = teacher forcing by hand,
 * sampling reproducible and consistent with greedy at its limits, the processors, API
 * errors, and a distinct message for each kind of damaged checkpoint. */
#include "common/common.h"
#include "engine/engine.h"
#include "engine/eng_int.h" /* owned_bytes: which tensors were converted */
#include "tasks/task_int.h" /* task_job_status: how tasks report an engine status */
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static cJSON *et_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        fclose(f);
        return NULL;
    }
    b[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(b);
    free(b);
    return j;
}

typedef struct et_case {
    int32_t ids[512];
    int n;
} et_case;

/* The golden cases' inputs (6 per model, lengths 1..374). */
static int et_cases(const char *model, et_case *cs)
{
    char rel[64];
    snprintf(rel, sizeof rel, "golden/%s.json", model);
    cJSON *g = et_json(th_data(rel));
    REQUIRE(g);
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach (c, cJSON_GetObjectItem(g, "cases")) {
        const cJSON *e;
        cs[k].n = 0;
        cJSON_ArrayForEach (e, cJSON_GetObjectItem(c, "input_ids"))
            cs[k].ids[cs[k].n++] = e->valueint;
        k++;
    }
    cJSON_Delete(g);
    return k;
}

static eng_model *et_model(const char *name)
{
    char rel[64], err[512];
    snprintf(rel, sizeof rel, "models/%s", name);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1;
    eng_model *m = eng_model_load(th_data(rel), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    return m;
}

static eng_ctx *et_ctx(eng_model *m, int rows, int batch_tokens)
{
    char err[512];
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = rows;
    cp.max_new_tokens = 32;
    cp.max_batch_tokens = batch_tokens;
    eng_ctx *c = eng_ctx_new(m, &cp, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    return c;
}

static int et_same(const eng_gen_result *a, const eng_gen_result *b, double tol)
{
    if (a->n_hyps != b->n_hyps) return 0;
    for (int h = 0; h < a->n_hyps; h++) {
        if (a->hyps[h].n_tokens != b->hyps[h].n_tokens) return 0;
        if (memcmp(a->hyps[h].tokens, b->hyps[h].tokens, (size_t)a->hyps[h].n_tokens * 4)) return 0;
        /* relative: sgemv (one row) and sgemm (a batch) round differently */
        double s = a->hyps[h].score, t = a->hyps[h].sum_logprobs;
        if (fabs(s - b->hyps[h].score) > tol * fmax(1.0, fabs(s))) return 0;
        if (fabs(t - b->hyps[h].sum_logprobs) > tol * fmax(1.0, fabs(t))) return 0;
    }
    return 1;
}

/* ---- relative position buckets ---- */

TEST(eng_relative_buckets_match_table)
{
    cJSON *j = et_json(th_data("golden/relative_buckets.json"));
    REQUIRE(j);
    int from = cJSON_GetObjectItem(j, "relative_position_from")->valueint;
    const cJSON *t;
    int ntab = 0, nbad = 0, n = 0;
    cJSON_ArrayForEach (t, cJSON_GetObjectItem(j, "tables")) {
        int nb = cJSON_GetObjectItem(t, "num_buckets")->valueint;
        int md = cJSON_GetObjectItem(t, "max_distance")->valueint;
        int bi = cJSON_IsTrue(cJSON_GetObjectItem(t, "bidirectional"));
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach (e, cJSON_GetObjectItem(t, "bucket")) {
            int got = eng_relative_bucket(from + i, bi, nb, md);
            if (got != e->valueint && nbad++ < 5)
                CHECK_MSG(0, "bucket(%d, bi=%d, %d, %d) = %d, want %d", from + i, bi, nb, md, got,
                          e->valueint);
            i++;
            n++;
        }
        ntab++;
    }
    CHECK(ntab == 4);
    CHECK(n == 4 * 1201);
    CHECK(nbad == 0);
    cJSON_Delete(j);
}

/* ---- batching ---- */

/* Every case with several decoding setups, each alone and then all in one call (and in a
 * context so small the batch is split into runs): same tokens, scores within 1e-5. */
static void et_batched(const char *model, int rows, int batch_tokens)
{
    eng_model *m = et_model(model);
    eng_ctx *c = et_ctx(m, 16, 0);
    eng_ctx *cb = et_ctx(m, rows, batch_tokens);
    static et_case cs[8];
    int nc = et_cases(model, cs);
    enum { NP = 4 };
    eng_gen_params ps[NP];
    for (int i = 0; i < NP; i++) {
        ps[i] = eng_gen_default_params();
        ps[i].max_new_tokens = 12 + i;
    }
    ps[1].num_beams = 4;
    ps[1].num_return_sequences = 2;
    ps[2].num_beams = 3;
    ps[2].no_repeat_ngram_size = 2;
    ps[2].min_new_tokens = 4;
    ps[2].length_penalty = 2.0f;
    ps[3].do_sample = 1;
    ps[3].top_k = 20;
    ps[3].seed = 7;
    ps[3].num_return_sequences = 2;
    int n = nc * NP;
    eng_gen_req *alone = calloc((size_t)n, sizeof *alone),
                *batch = calloc((size_t)n, sizeof *batch);
    eng_gen_result *ra = calloc((size_t)n, sizeof *ra), *rb = calloc((size_t)n, sizeof *rb);
    REQUIRE(alone && batch && ra && rb);
    for (int i = 0; i < n; i++) {
        /* interleave lengths and decoding kinds */
        const et_case *k = &cs[i % nc];
        alone[i] = (eng_gen_req){
            .ids = k->ids, .n_ids = k->n, .params = &ps[(i / nc + i) % NP], .out = &ra[i]
        };
        batch[i] = alone[i];
        batch[i].out = &rb[i];
        REQUIRE(eng_generate(c, &alone[i], 1) == 0);
        REQUIRE_MSG(alone[i].status == 0, "alone %d: %d", i, alone[i].status);
    }
    REQUIRE(eng_generate(cb, batch, n) == 0);
    int same = 0;
    for (int i = 0; i < n; i++) {
        CHECK_MSG(batch[i].status == 0, "batched %d: %d", i, batch[i].status);
        int ok = et_same(&ra[i], &rb[i], 1e-5);
        CHECK_MSG(ok, "%s request %d (len %d, beams %d, sample %d) differs in a batch", model, i,
                  alone[i].n_ids, alone[i].params->num_beams, alone[i].params->do_sample);
        same += ok;
        eng_gen_result_clear(&ra[i]);
        eng_gen_result_clear(&rb[i]);
    }
    CHECK(same == n);
    free(alone), free(batch), free(ra), free(rb);
    eng_ctx_free(&cb);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

TEST(eng_batched_equals_unbatched_tiny_t5) { et_batched("tiny-t5", 64, 4096); }
TEST(eng_batched_equals_unbatched_tiny_flan) { et_batched("tiny-flan", 64, 4096); }
/* max_rows 5 and 400 encoder tokens: the 24 requests run in many groups */
TEST(eng_batch_split_into_runs) { et_batched("tiny-flan", 5, 400); }

/* ---- incremental decoding vs full recompute ---- */

static void et_incremental(const char *model)
{
    eng_model *m = et_model(model);
    eng_ctx *c = et_ctx(m, 4, 0);
    const eng_config *cf = eng_model_config(m);
    static et_case cs[8];
    int nc = et_cases(model, cs);
    float *lg = malloc((size_t)cf->vocab_size * sizeof *lg);
    REQUIRE(lg);
    for (int k = 0; k < nc; k += 2) {
        eng_gen_params p = eng_gen_default_params();
        p.max_new_tokens = 20;
        eng_gen_result r;
        eng_gen_req q = { .ids = cs[k].ids, .n_ids = cs[k].n, .params = &p, .out = &r };
        REQUIRE(eng_generate(c, &q, 1) == 0 && q.status == 0);
        int32_t dec[32];
        dec[0] = cf->decoder_start_token_id;
        double sum = 0;
        for (int t = 0; t < r.hyps[0].n_tokens; t++) {
            REQUIRE(eng_logits(c, cs[k].ids, cs[k].n, dec, t + 1, lg) == 0);
            int am = 0;
            for (int v = 1; v < cf->vocab_size; v++)
                if (lg[v] > lg[am]) am = v;
            CHECK_MSG(am == r.hyps[0].tokens[t], "%s case %d step %d: cached %d, recomputed %d",
                      model, k, t, r.hyps[0].tokens[t], am);
            double lse = 0, mx = lg[am];
            for (int v = 0; v < cf->vocab_size; v++) lse += exp(lg[v] - mx);
            sum += lg[r.hyps[0].tokens[t]] - (mx + log(lse));
            dec[t + 1] = r.hyps[0].tokens[t];
        }
        CHECK_MSG(fabs(sum - r.hyps[0].sum_logprobs) < 1e-4, "%s case %d: sum %.7f vs %.7f", model,
                  k, sum, r.hyps[0].sum_logprobs);
        CHECK(r.hyps[0].score == r.hyps[0].sum_logprobs);
        eng_gen_result_clear(&r);
    }
    free(lg);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

TEST(eng_incremental_equals_recompute_tiny_t5) { et_incremental("tiny-t5"); }
TEST(eng_incremental_equals_recompute_tiny_flan) { et_incremental("tiny-flan"); }

/* ---- label scoring ---- */

/* The log-likelihood of candidate cand[0 .. len) + EOS given ids, teacher-forced one
 * position at a time through eng_logits (a plain causal decoder, nothing shared). */
static double et_teacher_lp(eng_ctx *c, const eng_config *cf, const et_case *in,
                            const int32_t *cand, int len, float *lg)
{
    int32_t dec[40] = { cf->decoder_start_token_id };
    double sum = 0;
    for (int t = 0; t <= len; t++) {
        REQUIRE(t < 40 && eng_logits(c, in->ids, in->n, dec, t + 1, lg) == 0);
        int tgt = t < len ? cand[t] : cf->eos_token_id;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < cf->vocab_size; v++) mx = fmax(mx, lg[v]);
        for (int v = 0; v < cf->vocab_size; v++) s += exp(lg[v] - mx);
        sum += lg[tgt] - (mx + log(s));
        if (t < len) dec[t + 1] = cand[t];
    }
    return sum;
}

TEST(eng_score_equals_teacher_forcing)
{
    eng_model *m = et_model("tiny-flan");
    eng_ctx *c = et_ctx(m, 8, 0);
    const eng_config *cf = eng_model_config(m);
    static et_case cs[8];
    et_cases("tiny-flan", cs);
    static const int32_t c0[] = { 2163 }, c1[] = { 150, 13, 3 }, c2[] = { 7163, 1465 };
    const int32_t *cands[] = { c0, c1, c2, c1 };
    int lens[] = { 1, 3, 2, 0 };
    double lp[4] = { 0 }, lp2[4] = { 0 };
    eng_score_req rq[2] = {
        { .ids = cs[3].ids,
          .n_ids = cs[3].n,
          .n_cands = 4,
          .cand_ids = cands,
          .cand_lens = lens,
          .logprobs = lp },
        { .ids = cs[0].ids,
          .n_ids = cs[0].n,
          .n_cands = 3,
          .cand_ids = cands,
          .cand_lens = lens,
          .logprobs = lp2 },
    };
    REQUIRE(eng_score(c, rq, 2) == 0);
    REQUIRE(rq[0].status == 0 && rq[1].status == 0);
    float *lg = malloc((size_t)cf->vocab_size * sizeof *lg);
    REQUIRE(lg);
    for (int r = 0; r < 2; r++) {
        et_case in = { .n = rq[r].n_ids };
        memcpy(in.ids, rq[r].ids, (size_t)in.n * sizeof(int32_t));
        for (int k = 0; k < rq[r].n_cands; k++) {
            double sum = et_teacher_lp(c, cf, &in, cands[k], lens[k], lg);
            CHECK_MSG(fabs(sum - rq[r].logprobs[k]) < 1e-4, "req %d cand %d: %.6f vs %.6f", r, k,
                      rq[r].logprobs[k], sum);
            CHECK(rq[r].logprobs[k] < 0);
        }
    }
    /* bad candidates are refused per request */
    int32_t bad[] = { 99999 };
    const int32_t *bc[] = { bad };
    int bl[] = { 1 };
    eng_score_req br = { .ids = cs[0].ids,
                         .n_ids = cs[0].n,
                         .n_cands = 1,
                         .cand_ids = bc,
                         .cand_lens = bl,
                         .logprobs = lp };
    CHECK(eng_score(c, &br, 1) == 0 && br.status == ENG_EINVAL);
    int longl[] = { 40 };
    br.cand_lens = longl;
    CHECK(eng_score(c, &br, 1) == 0 && br.status == ENG_ETOOLONG);
    free(lg);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* Candidates that begin alike share decoder rows (a prefix tree per request): every
 * candidate still scores what it scores alone, whatever it shares, in any order given,
 * duplicates and prefixes of others included, and when the tree outgrows the attention
 * bound (max_len 20 here) and is split. */
TEST(eng_score_shared_prefixes_equal_teacher_forcing)
{
    static const int32_t a[] = { 150, 13, 3, 9 }, b[] = { 150, 13, 7 }, d[] = { 150, 13 },
                         e[] = { 42, 150, 13 }, f[] = { 150, 14, 3, 9, 11, 12 };
    const int32_t *base[] = { a, b, d, e, f, a, d };
    int base_len[] = { 4, 3, 2, 3, 6, 4, 0 };
    enum { NB = 7, NC = 21 };
    const int32_t *cands[NC];
    int lens[NC];
    int32_t uniq[NC - NB][3];
    for (int k = 0; k < NC; k++) {
        if (k < NB) {
            cands[k] = base[k];
            lens[k] = base_len[k];
        } else { /* 14 distinct 3-token candidates: 43 nodes with the ones above, > 20 */
            uniq[k - NB][0] = 200 + k;
            uniq[k - NB][1] = 13;
            uniq[k - NB][2] = 300 + 7 * k;
            cands[k] = uniq[k - NB];
            lens[k] = 3;
        }
    }
    const char *models[] = { "tiny-t5", "tiny-flan" };
    for (int mi = 0; mi < 2; mi++) {
        eng_model *m = et_model(models[mi]);
        const eng_config *cf = eng_model_config(m);
        static et_case cs[8];
        REQUIRE(et_cases(models[mi], cs) >= 2);
        char err[512];
        eng_ctx_params cp = eng_ctx_default_params();
        cp.max_rows = 4;
        cp.max_new_tokens = 8;
        cp.max_cand_len = 8;
        cp.max_input_len = 20;
        eng_ctx *small = eng_ctx_new(m, &cp, err, sizeof err);
        REQUIRE_MSG(small, "%s", err);
        eng_ctx *c = et_ctx(m, 8, 0);
        float *lg = malloc((size_t)cf->vocab_size * sizeof *lg);
        REQUIRE(lg);
        for (int r = 0; r < 2; r++) {
            et_case in = cs[r];
            if (in.n > 20) { /* the small context's input bound: keep the last 20 (EOS) */
                memmove(in.ids, in.ids + in.n - 20, 20 * sizeof(int32_t));
                in.n = 20;
            }
            double lp[NC], lp_small[NC];
            eng_score_req q = { .ids = in.ids,
                                .n_ids = in.n,
                                .n_cands = NC,
                                .cand_ids = cands,
                                .cand_lens = lens,
                                .logprobs = lp };
            REQUIRE(eng_score(c, &q, 1) == 0 && q.status == 0);
            q.logprobs = lp_small;
            REQUIRE(eng_score(small, &q, 1) == 0 && q.status == 0);
            for (int k = 0; k < NC; k++) {
                double want = et_teacher_lp(c, cf, &in, cands[k], lens[k], lg);
                CHECK_MSG(fabs(lp[k] - want) < 1e-4, "%s req %d cand %d: %.6f vs %.6f", models[mi],
                          r, k, lp[k], want);
                CHECK_MSG(fabs(lp_small[k] - want) < 1e-4, "%s req %d cand %d split: %.6f vs %.6f",
                          models[mi], r, k, lp_small[k], want);
            }
            CHECK(lp[0] == lp[5]); /* the same candidate twice: the same rows */
        }
        free(lg);
        eng_ctx_free(&c);
        eng_ctx_free(&small);
        eng_model_free(&m);
    }
}

/* Scoring batches across requests (one encoder pass for the run, every candidate of every
 * request in one decoder pass): each request's log-likelihoods equal scoring it alone,
 * also when the run is split by max_rows or max_batch_tokens. */
TEST(eng_score_batched_equals_alone)
{
    static et_case cs[8];
    static const int32_t c0[] = { 2163 }, c1[] = { 150, 13, 3 }, c2[] = { 7163, 1465 },
                         c3[] = { 5, 6, 7, 8, 9 };
    const int32_t *cands[] = { c0, c1, c2, c3, c1 };
    int lens[] = { 1, 3, 2, 5, 0 };
    const char *models[] = { "tiny-t5", "tiny-flan" };
    for (int mi = 0; mi < 2; mi++) {
        eng_model *m = et_model(models[mi]);
        int nc = et_cases(models[mi], cs);
        REQUIRE(nc >= 4);
        double alone[8][5], lp[8][5];
        eng_ctx *c1x = et_ctx(m, 8, 0);
        for (int r = 0; r < nc; r++) {
            int n = 1 + r % 5;
            eng_score_req q = { .ids = cs[r].ids,
                                .n_ids = cs[r].n,
                                .n_cands = n,
                                .cand_ids = cands,
                                .cand_lens = lens,
                                .logprobs = alone[r] };
            REQUIRE(eng_score(c1x, &q, 1) == 0 && q.status == 0);
        }
        /* rows 64: the whole batch in one run; rows 2 / 512 batch tokens: split runs */
        int rows[] = { 64, 2, 8 }, bt[] = { 0, 0, 512 };
        for (int v = 0; v < 3; v++) {
            eng_ctx *c = et_ctx(m, rows[v], bt[v]);
            eng_score_req q[8];
            for (int r = 0; r < nc; r++)
                q[r] = (eng_score_req){ .ids = cs[r].ids,
                                        .n_ids = cs[r].n,
                                        .n_cands = 1 + r % 5,
                                        .cand_ids = cands,
                                        .cand_lens = lens,
                                        .logprobs = lp[r] };
            REQUIRE(eng_score(c, q, nc) == 0);
            for (int r = 0; r < nc; r++) {
                CHECK_MSG(q[r].status == 0, "%s v%d req %d status %d", models[mi], v, r,
                          q[r].status);
                for (int k = 0; k < q[r].n_cands; k++)
                    CHECK_MSG(fabs(lp[r][k] - alone[r][k]) <= 1e-5 * fmax(1.0, fabs(alone[r][k])),
                              "%s v%d req %d cand %d: %.9f batched vs %.9f alone", models[mi], v, r,
                              k, lp[r][k], alone[r][k]);
            }
            eng_ctx_free(&c);
        }
        eng_ctx_free(&c1x);
        eng_model_free(&m);
    }
}

/* ---- sampling ---- */

static void et_gen1(eng_ctx *c, const et_case *k, const eng_gen_params *p, eng_gen_result *r)
{
    eng_gen_req q = { .ids = k->ids, .n_ids = k->n, .params = p, .out = r };
    REQUIRE(eng_generate(c, &q, 1) == 0);
    REQUIRE_MSG(q.status == 0, "status %d", q.status);
}

TEST(eng_sampling_seeded_and_limits)
{
    eng_model *m = et_model("tiny-t5");
    eng_ctx *c = et_ctx(m, 8, 0);
    static et_case cs[8];
    et_cases("tiny-t5", cs);
    eng_gen_params p = eng_gen_default_params();
    p.max_new_tokens = 24;
    p.do_sample = 1;
    p.temperature = 1.5f;
    p.num_return_sequences = 3;
    p.seed = 42;
    eng_gen_result a, b, d, g, s1;
    et_gen1(c, &cs[0], &p, &a);
    et_gen1(c, &cs[0], &p, &b);
    CHECK(a.n_hyps == 3);
    CHECK(et_same(&a, &b, 0));
    for (int i = 1; i < a.n_hyps; i++) CHECK(a.hyps[i - 1].score >= a.hyps[i].score);
    p.seed = 43;
    et_gen1(c, &cs[0], &p, &d);
    CHECK_MSG(!et_same(&a, &d, 0), "seeds 42 and 43 gave the same samples");
    /* top_k = 1 and a tiny top_p both leave only the argmax: sampling equals greedy */
    eng_gen_params gp = eng_gen_default_params();
    gp.max_new_tokens = 24;
    et_gen1(c, &cs[0], &gp, &g);
    p.num_return_sequences = 1;
    p.top_k = 1;
    et_gen1(c, &cs[0], &p, &s1);
    CHECK(et_same(&g, &s1, 1e-9));
    eng_gen_result_clear(&s1);
    p.top_k = 0;
    p.top_p = 1e-6f;
    p.temperature = 1.0f;
    et_gen1(c, &cs[0], &p, &s1);
    CHECK(et_same(&g, &s1, 1e-9));
    eng_gen_result_clear(&a), eng_gen_result_clear(&b), eng_gen_result_clear(&d);
    eng_gen_result_clear(&g), eng_gen_result_clear(&s1);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* ---- processors ---- */

TEST(eng_processors_greedy)
{
    eng_model *m = et_model("tiny-t5");
    eng_ctx *c = et_ctx(m, 8, 0);
    static et_case cs[8];
    et_cases("tiny-t5", cs);
    eng_gen_params p = eng_gen_default_params();
    p.max_new_tokens = 24;
    eng_gen_result r;
    /* plain greedy repeats tokens on this model (golden: 17190 17190 17190 ...) */
    et_gen1(c, &cs[0], &p, &r);
    int rep = 0;
    for (int i = 1; i < r.hyps[0].n_tokens; i++)
        rep += r.hyps[0].tokens[i] == r.hyps[0].tokens[i - 1];
    CHECK(rep > 0);
    eng_gen_result_clear(&r);
    /* no_repeat_ngram_size 1: no token twice (start token 0 included) */
    p.no_repeat_ngram_size = 1;
    et_gen1(c, &cs[0], &p, &r);
    for (int i = 0; i < r.hyps[0].n_tokens; i++) {
        CHECK(r.hyps[0].tokens[i] != 0);
        for (int j = 0; j < i; j++) CHECK(r.hyps[0].tokens[i] != r.hyps[0].tokens[j]);
    }
    eng_gen_result_clear(&r);
    /* no_repeat_ngram_size 2: no bigram twice in start + output */
    p.no_repeat_ngram_size = 2;
    et_gen1(c, &cs[1], &p, &r);
    int32_t seq[40] = { 0 };
    int n = r.hyps[0].n_tokens + 1;
    memcpy(seq + 1, r.hyps[0].tokens, (size_t)r.hyps[0].n_tokens * 4);
    for (int i = 0; i + 1 < n; i++)
        for (int j = 0; j < i; j++) CHECK(!(seq[i] == seq[j] && seq[i + 1] == seq[j + 1]));
    eng_gen_result_clear(&r);
    /* a strong repetition penalty removes immediate repeats here */
    p.no_repeat_ngram_size = 0;
    p.repetition_penalty = 50.0f;
    et_gen1(c, &cs[0], &p, &r);
    rep = 0;
    for (int i = 1; i < r.hyps[0].n_tokens; i++)
        rep += r.hyps[0].tokens[i] == r.hyps[0].tokens[i - 1];
    CHECK_MSG(rep == 0, "repetition penalty left %d repeats", rep);
    eng_gen_result_clear(&r);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* ---- API errors ---- */

TEST(eng_api_errors)
{
    eng_model *m = et_model("tiny-t5");
    eng_ctx *c = et_ctx(m, 4, 0);
    int32_t ids[] = { 37, 1 }, bad[] = { 37, 40000 };
    eng_gen_params p = eng_gen_default_params();
    p.max_new_tokens = 8;
    eng_gen_result r;
    eng_gen_req q[6] = {
        { .ids = ids, .n_ids = 0, .params = &p, .out = &r },
        { .ids = bad, .n_ids = 2, .params = &p, .out = &r },
        { .ids = ids, .n_ids = 2, .params = &p, .out = &r },
    };
    REQUIRE(eng_generate(c, q, 3) == 0);
    CHECK_MSG(q[0].status == ENG_EINVAL, "%d %d %d", q[0].status, q[1].status, q[2].status);
    CHECK(q[1].status == ENG_EINVAL);
    CHECK(q[2].status == 0);
    eng_gen_result_clear(&r);
    eng_gen_params pb = p;
    pb.num_beams = 8; /* more rows than the ctx has */
    q[0] = (eng_gen_req){ .ids = ids, .n_ids = 2, .params = &pb, .out = &r };
    CHECK(eng_generate(c, q, 1) == 0 && q[0].status == ENG_ETOOLONG);
    pb = p;
    pb.max_new_tokens = 100; /* ctx sized for 32 */
    CHECK(eng_generate(c, q, 1) == 0 && q[0].status == ENG_ETOOLONG);
    pb = p;
    pb.num_beams = 2;
    pb.num_return_sequences = 3;
    CHECK(eng_generate(c, q, 1) == 0 && q[0].status == ENG_EINVAL);
    pb = p;
    pb.do_sample = 1;
    pb.temperature = 0;
    CHECK(eng_generate(c, q, 1) == 0 && q[0].status == ENG_EINVAL);
    pb.temperature = 1;
    pb.top_p = 1.5f;
    CHECK(eng_generate(c, q, 1) == 0 && q[0].status == ENG_EINVAL);
    CHECK(eng_generate(NULL, q, 1) == ENG_EINVAL);
    float out[64 * 600];
    int32_t longids[600] = { 0 };
    CHECK(eng_encode(c, longids, 600, out) == ENG_ETOOLONG);
    CHECK(eng_encode(c, bad, 2, out) == ENG_EINVAL);
    CHECK(eng_logits(c, ids, 2, ids, 0, out) == ENG_EINVAL);
    CHECK(strcmp(eng_strerror(ENG_ETOOLONG), eng_strerror(ENG_EINVAL)) != 0);
    eng_ctx_free(&c);
    CHECK(c == NULL);
    eng_model_free(&m);
    CHECK(m == NULL);
}

/* ---- damaged checkpoints ---- */

/* Copies models/<src> into a temp dir, rewriting model.safetensors' header through
 * `edit` (data bytes unchanged), and returns the load error. */
typedef void (*et_edit_fn)(cJSON *hdr);
typedef void (*et_data_fn)(cJSON *hdr, char *data);

/* Reads a safetensors file into its header (parsed) and data region (malloc'ed). */
static cJSON *et_read_st(const char *path, char **data, size_t *nd)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    unsigned char b8[8];
    REQUIRE(fread(b8, 1, 8, f) == 8);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b8[i] << (8 * i);
    char *hdr = calloc(1, hl + 1);
    REQUIRE(hdr && fread(hdr, 1, hl, f) == hl);
    fseek(f, 0, SEEK_END);
    *nd = (size_t)ftell(f) - 8 - hl;
    *data = malloc(*nd);
    fseek(f, (long)(8 + hl), SEEK_SET);
    REQUIRE(*data && fread(*data, 1, *nd, f) == *nd);
    fclose(f);
    cJSON *h = cJSON_Parse(hdr);
    REQUIRE(h);
    free(hdr);
    return h;
}

/* Writes DIR/model.safetensors from a header and data; the header is space-padded to a
 * multiple of 8 bytes plus `extra_pad` (to misalign the data on purpose). */
static void et_write_st(const char *dir, const cJSON *h, size_t extra_pad, const char *data,
                        size_t nd)
{
    char path[256];
    char *nh = cJSON_PrintUnformatted(h);
    size_t nl = strlen(nh), pad = (8 - nl % 8) % 8 + extra_pad;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    uint64_t L = nl + pad;
    unsigned char b8[8];
    for (int i = 0; i < 8; i++) b8[i] = (unsigned char)(L >> (8 * i));
    fwrite(b8, 1, 8, f);
    fwrite(nh, 1, nl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fwrite(data, 1, nd, f);
    fclose(f);
    free(nh);
}

static void et_copy_model(char *dir, const char *src, et_edit_fn edit, et_data_fn dedit,
                          const char *cfg_from, const char *cfg_to)
{
    char path[256], rel[128];
    strcpy(dir, "/tmp/nlp-eng-XXXXXX");
    REQUIRE(mkdtemp(dir));
    snprintf(rel, sizeof rel, "models/%s/model.safetensors", src);
    size_t nd;
    char *data;
    cJSON *h = et_read_st(th_data(rel), &data, &nd);
    if (edit) edit(h);
    if (dedit) dedit(h, data);
    et_write_st(dir, h, 0, data, nd);
    /* config.json, with one textual substitution */
    snprintf(rel, sizeof rel, "models/%s/config.json", src);
    cJSON *cj = et_json(th_data(rel));
    REQUIRE(cj);
    char *ct = cJSON_Print(cj);
    if (cfg_from) {
        char *at = strstr(ct, cfg_from);
        REQUIRE(at);
        size_t need = strlen(ct) + strlen(cfg_to) + 1;
        char *nt = malloc(need);
        snprintf(nt, need, "%.*s%s%s", (int)(at - ct), ct, cfg_to, at + strlen(cfg_from));
        free(ct);
        ct = nt;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(ct, f);
    fclose(f);
    free(ct), cJSON_Delete(cj), cJSON_Delete(h), free(data);
}

static void et_rmdir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void et_damaged(const char *src, et_edit_fn edit, const char *cfg_from, const char *cfg_to,
                       char *err, size_t errlen)
{
    char dir[64];
    et_copy_model(dir, src, edit, NULL, cfg_from, cfg_to);
    eng_model *m = eng_model_load(dir, NULL, err, errlen);
    CHECK(m == NULL);
    eng_model_free(&m);
    et_rmdir(dir);
}

/* Make EOS the model's favourite: lm_head row 1 (tiny-flan is untied) becomes 8x the row
 * of the token greedy picks first on the translate case (5962), so EOS wins at step 0. */
static void et_boost_eos(cJSON *h, char *data)
{
    cJSON *t = cJSON_GetObjectItem(h, "lm_head.weight");
    REQUIRE(t && !strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, "BF16"));
    int off = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valueint;
    int d = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shape"), 1)->valueint;
    uint16_t *w = (uint16_t *)(void *)(data + off);
    for (int i = 0; i < d; i++) {
        uint16_t v = w[(size_t)5962 * d + i];
        /* bf16 * 8: add 3 to the exponent of normal values */
        w[d + i] = (v & 0x7f80) ? (uint16_t)(v + (3 << 7)) : v;
    }
}

/* min_new_tokens on a model that wants to stop at once: EOS only after the minimum */
TEST(eng_min_new_tokens)
{
    char dir[64], err[512];
    et_copy_model(dir, "tiny-flan", NULL, et_boost_eos, NULL, NULL);
    eng_model *m = eng_model_load(dir, NULL, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    eng_ctx *c = et_ctx(m, 8, 0);
    static et_case cs[8];
    et_cases("tiny-flan", cs);
    eng_gen_params p = eng_gen_default_params();
    p.max_new_tokens = 12;
    eng_gen_result r;
    et_gen1(c, &cs[0], &p, &r);
    CHECK_MSG(r.hyps[0].n_tokens == 1 && r.hyps[0].tokens[0] == 1, "EOS not first: n=%d",
              r.hyps[0].n_tokens);
    eng_gen_result_clear(&r);
    p.min_new_tokens = 5;
    et_gen1(c, &cs[0], &p, &r);
    /* the golden greedy tokens, then EOS as soon as it is allowed */
    static const int32_t want[] = { 5962, 18543, 19892, 11280, 4115, 1 };
    CHECK_MSG(r.hyps[0].n_tokens == 6, "n=%d", r.hyps[0].n_tokens);
    CHECK(r.hyps[0].n_tokens == 6 && !memcmp(r.hyps[0].tokens, want, sizeof want));
    eng_gen_result_clear(&r);
    /* beam search: every hypothesis ends in EOS after at least 5 tokens, scored per
     * DESIGN.md: sum / n^lp */
    p.num_beams = 3;
    p.num_return_sequences = 3;
    p.length_penalty = 0.5f;
    p.early_stopping = ENG_EARLY_TRUE; /* stop at 3 finished: all of them end in EOS */
    et_gen1(c, &cs[1], &p, &r);
    CHECK(r.n_hyps == 3);
    for (int h = 0; h < r.n_hyps; h++) {
        const eng_hyp *y = &r.hyps[h];
        CHECK(y->n_tokens >= 6 && y->tokens[y->n_tokens - 1] == 1);
        CHECK(fabs(y->score - y->sum_logprobs / pow(y->n_tokens, 0.5)) < 1e-9);
        if (h) CHECK(r.hyps[h - 1].score >= y->score);
    }
    eng_gen_result_clear(&r);
    eng_ctx_free(&c);
    eng_model_free(&m);
    et_rmdir(dir);
}

static void et_drop_wo(cJSON *h)
{
    cJSON_DeleteItemFromObject(h, "decoder.block.1.layer.2.DenseReluDense.wo.weight");
}
static void et_drop_lm_head(cJSON *h) { cJSON_DeleteItemFromObject(h, "lm_head.weight"); }
static void et_drop_bias(cJSON *h)
{
    cJSON_DeleteItemFromObject(
        h, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
}
static void et_drop_ln(cJSON *h)
{
    cJSON_DeleteItemFromObject(h, "encoder.final_layer_norm.weight");
}
/* [48, 64] -> [64, 48]: same bytes, wrong shape */
static void et_transpose_q(cJSON *h)
{
    cJSON *t = cJSON_GetObjectItem(h, "encoder.block.1.layer.0.SelfAttention.q.weight");
    cJSON *sh = cJSON_GetObjectItem(t, "shape");
    cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(64));
    cJSON_ReplaceItemInArray(sh, 1, cJSON_CreateNumber(48));
}
static void et_flatten_ln(cJSON *h)
{
    cJSON *t = cJSON_GetObjectItem(h, "decoder.block.0.layer.1.layer_norm.weight");
    cJSON *sh = cJSON_GetObjectItem(t, "shape");
    cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(1));
    cJSON_AddItemToArray(sh, cJSON_CreateNumber(64));
}

TEST_TIMEOUT(eng_damaged_checkpoints, 60)
{
    char e[8][512];
    et_damaged("tiny-flan", et_drop_wo, NULL, NULL, e[0], sizeof e[0]);
    CHECK_MSG(strstr(e[0], "missing tensor 'decoder.block.1.layer.2.DenseReluDense.wo.weight'"),
              "%s", e[0]);
    et_damaged("tiny-flan", et_drop_lm_head, NULL, NULL, e[1], sizeof e[1]);
    CHECK_MSG(strstr(e[1], "missing tensor 'lm_head.weight'"), "%s", e[1]);
    et_damaged("tiny-t5", et_drop_bias, NULL, NULL, e[2], sizeof e[2]);
    CHECK_MSG(strstr(e[2], "relative_attention_bias.weight'"), "%s", e[2]);
    et_damaged("tiny-t5", et_drop_ln, NULL, NULL, e[3], sizeof e[3]);
    CHECK_MSG(strstr(e[3], "missing tensor 'encoder.final_layer_norm.weight'"), "%s", e[3]);
    et_damaged("tiny-flan", et_transpose_q, NULL, NULL, e[4], sizeof e[4]);
    CHECK_MSG(strstr(e[4], "'encoder.block.1.layer.0.SelfAttention.q.weight' has shape [64, 48], "
                           "expected [48, 64]"),
              "%s", e[4]);
    et_damaged("tiny-flan", et_flatten_ln, NULL, NULL, e[5], sizeof e[5]);
    CHECK_MSG(
        strstr(e[5],
               "'decoder.block.0.layer.1.layer_norm.weight' has shape [1, 64], expected [64]"),
        "%s", e[5]);
    /* config disagrees with the weights: relu model declared gated */
    et_damaged("tiny-t5", NULL, "\"relu\"", "\"gated-gelu\"", e[6], sizeof e[6]);
    CHECK_MSG(strstr(e[6], "missing tensor 'encoder.block.0.layer.1.DenseReluDense.wi_0.weight'"),
              "%s", e[6]);
    et_damaged("tiny-t5", NULL, "\"d_ff\":\t128", "\"d_ff\":\t100", e[7], sizeof e[7]);
    CHECK_MSG(strstr(e[7], "DenseReluDense.wi.weight' has shape [128, 64], expected [100, 64]"),
              "%s", e[7]);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < i; j++)
            CHECK_MSG(strcmp(e[i], e[j]), "same message %d %d: %s", i, j, e[i]);
    char err[256];
    CHECK(eng_model_load("/nonexistent/model", NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/model") != NULL);
}

/* ---- other weight layouts: F16, and F32 whose data is not 4-byte aligned ---- */

/* IEEE half, round to nearest even (clang 14 has no _Float16 on x86-64). */
static uint16_t et_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    int exp = (int)((u >> 23) & 0xff) - 127 + 15;
    uint32_t mant = u & 0x7fffffu;
    if ((u & 0x7fffffffu) > 0x7f800000u) return sign | 0x7e00u;
    if (exp >= 31) return sign | 0x7c00u;
    if (exp <= 0) {
        if (exp < -10) return sign;
        mant |= 0x800000u;
        int shift = 14 - exp;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return sign | (uint16_t)h;
}

/* Rewrites models/tiny-t5 (F32) into dir: every tensor as F16 (to_f16), or as F32 with
 * the header padded so that all data sits 2 bytes off a 4-byte boundary. */
static void et_write_variant(char *dir, int to_f16)
{
    char rel[128];
    strcpy(dir, "/tmp/nlp-eng-XXXXXX");
    REQUIRE(mkdtemp(dir));
    size_t nd;
    char *data;
    cJSON *h = et_read_st(th_data("models/tiny-t5/model.safetensors"), &data, &nd);
    char *out = malloc(nd);
    REQUIRE(out);
    size_t o = 0;
    cJSON *t;
    cJSON_ArrayForEach (t, h) {
        if (!strcmp(t->string, "__metadata__")) continue;
        REQUIRE(!strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, "F32"));
        cJSON *offs = cJSON_GetObjectItem(t, "data_offsets");
        size_t a = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
        size_t b = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
        size_t n = (b - a) / 4;
        if (to_f16) {
            for (size_t i = 0; i < n; i++) {
                float v;
                memcpy(&v, data + a + 4 * i, 4);
                uint16_t hv = et_f32_to_f16(v);
                memcpy(out + o + 2 * i, &hv, 2);
            }
            cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("F16"));
        } else {
            memcpy(out + o, data + a, b - a);
        }
        size_t len = to_f16 ? 2 * n : b - a;
        cJSON_ReplaceItemInArray(offs, 0, cJSON_CreateNumber((double)o));
        cJSON_ReplaceItemInArray(offs, 1, cJSON_CreateNumber((double)(o + len)));
        o += len;
    }
    et_write_st(dir, h, to_f16 ? 0 : 2, out, o); /* F32 variant: 8 + L = 2 mod 8 */
    snprintf(rel, sizeof rel, "cp '%s' '%s/config.json'", th_data("models/tiny-t5/config.json"),
             dir);
    REQUIRE(system(rel) == 0);
    cJSON_Delete(h), free(out), free(data);
}

static void et_variant(int to_f16, double tol)
{
    char dir[64], err[512];
    et_write_variant(dir, to_f16);
    eng_model_params wp = eng_model_default_params();
    wp.weights = ENG_WEIGHTS_F32; /* the widening at load (auto keeps F16 in place) */
    eng_model *mv = eng_model_load(dir, &wp, err, sizeof err);
    REQUIRE_MSG(mv, "%s", err);
    eng_model *m = et_model("tiny-t5");
    CHECK(m->owned_bytes == 0); /* aligned F32: in place */
    CHECK_MSG(mv->owned_bytes > 8000000, "%zu bytes converted", mv->owned_bytes); /* all copied */
    eng_ctx *c = et_ctx(m, 2, 0), *cv = et_ctx(mv, 2, 0);
    static et_case cs[8];
    et_cases("tiny-t5", cs);
    int V = eng_model_config(m)->vocab_size;
    float *a = malloc((size_t)V * 4), *b = malloc((size_t)V * 4);
    REQUIRE(a && b);
    int32_t dec[2] = { 0, 37 };
    REQUIRE(eng_logits(c, cs[0].ids, cs[0].n, dec, 2, a) == 0);
    REQUIRE(eng_logits(cv, cs[0].ids, cs[0].n, dec, 2, b) == 0);
    double md = 0, mx = 0;
    for (int v = 0; v < V; v++) {
        md = fmax(md, fabs((double)a[v] - b[v]));
        mx = fmax(mx, fabs(a[v]));
    }
    CHECK_MSG(md <= tol, "%s: logits differ by %g (max |logit| %g)",
              to_f16 ? "F16" : "unaligned F32", md, mx);
    CHECK(mx > 1.0);
    free(a), free(b);
    eng_ctx_free(&c), eng_ctx_free(&cv);
    eng_model_free(&m), eng_model_free(&mv);
    et_rmdir(dir);
}

/* F16 weights are F32 rounded to 11 significant bits: logits agree to a few 1e-3 */
TEST(eng_f16_checkpoint)
{
    /* the test's own encoder first: exact values, rounding, subnormals */
    CHECK(et_f32_to_f16(1.0f) == 0x3c00 && et_f32_to_f16(-2.0f) == 0xc000);
    CHECK(et_f32_to_f16(65504.0f) == 0x7bff && et_f32_to_f16(1e6f) == 0x7c00);
    CHECK(et_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie to even */
    CHECK(et_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
    for (float v = -3.0f; v < 3.0f; v += 0.0123f)
        CHECK(fabsf(eng_f16_to_f32(et_f32_to_f16(v)) - v) <= fabsf(v) / 2048 + 1e-7f);
    CHECK(eng_f16_to_f32(et_f32_to_f16(3e-6f)) > 2.9e-6f &&
          eng_f16_to_f32(et_f32_to_f16(3e-6f)) < 3.1e-6f);
    et_variant(1, 2e-2);
}
/* misaligned F32 data is copied at load: bit-identical results */
TEST(eng_unaligned_f32_checkpoint) { et_variant(0, 0.0); }

/* Every sampled token lies inside the top-k set, or inside the top-p nucleus, of the
 * recomputed next-token distribution (temperature 2 flattens it so that the draw has
 * real choice). */
TEST(eng_sampling_respects_top_k_top_p)
{
    eng_model *m = et_model("tiny-t5");
    eng_ctx *c = et_ctx(m, 4, 0);
    int V = eng_model_config(m)->vocab_size;
    static et_case cs[8];
    et_cases("tiny-t5", cs);
    float *lg = malloc((size_t)V * sizeof *lg);
    double *pr = malloc((size_t)V * sizeof *pr);
    REQUIRE(lg && pr);
    int nonargmax = 0;
    for (int mode = 0; mode < 2; mode++) {
        for (uint64_t seed = 1; seed <= 4; seed++) {
            eng_gen_params p = eng_gen_default_params();
            p.max_new_tokens = 8;
            p.do_sample = 1;
            p.temperature = 2.0f;
            p.seed = seed;
            if (mode == 0) p.top_k = 3;
            else p.top_p = 0.3f;
            eng_gen_result r;
            et_gen1(c, &cs[4], &p, &r);
            int32_t dec[16] = { 0 };
            for (int t = 0; t < r.hyps[0].n_tokens; t++) {
                REQUIRE(eng_logits(c, cs[4].ids, cs[4].n, dec, t + 1, lg) == 0);
                int tok = r.hyps[0].tokens[t];
                if (mode == 0) {
                    int above = 0;
                    for (int v = 0; v < V; v++) above += lg[v] > lg[tok];
                    CHECK_MSG(above < 3, "seed %d step %d: token %d has %d better", (int)seed, t,
                              tok, above);
                    nonargmax += above > 0;
                } else {
                    double mx = -INFINITY, sum = 0, more = 0;
                    for (int v = 0; v < V; v++) mx = fmax(mx, lg[v] / 2.0);
                    for (int v = 0; v < V; v++) sum += pr[v] = exp(lg[v] / 2.0 - mx);
                    for (int v = 0; v < V; v++)
                        if (pr[v] > pr[tok]) more += pr[v] / sum;
                    CHECK_MSG(more < 0.3 + 1e-4, "seed %d step %d: mass above token %g", (int)seed,
                              t, more);
                }
                dec[t + 1] = tok;
            }
            eng_gen_result_clear(&r);
        }
    }
    CHECK_MSG(nonargmax > 0, "top-k 3 at temperature 2 never drew a non-argmax token");
    free(lg), free(pr);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* ---- one model, several threads: each with its own ctx, same results as serially ---- */

typedef struct et_thr {
    const eng_model *m;
    const et_case *k;
    eng_gen_params p;
    eng_gen_result r;
    int rc;
} et_thr;

static void *et_thr_run(void *arg)
{
    et_thr *t = arg;
    char err[256];
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 4;
    cp.max_new_tokens = 24;
    eng_ctx *c = eng_ctx_new(t->m, &cp, err, sizeof err);
    t->rc = -1;
    if (!c) return NULL;
    for (int rep = 0; rep < 3; rep++) {
        eng_gen_result_clear(&t->r);
        eng_gen_req q = { .ids = t->k->ids, .n_ids = t->k->n, .params = &t->p, .out = &t->r };
        t->rc = eng_generate(c, &q, 1);
        if (!t->rc) t->rc = q.status;
    }
    eng_ctx_free(&c);
    return NULL;
}

TEST(eng_threads_share_a_model)
{
    eng_model *m = et_model("tiny-flan");
    static et_case cs[8];
    et_cases("tiny-flan", cs);
    enum { NT = 4 };
    et_thr t[NT], s[NT];
    for (int i = 0; i < NT; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].m = m;
        t[i].k = &cs[i];
        t[i].p = eng_gen_default_params();
        t[i].p.max_new_tokens = 16;
        t[i].p.num_beams = i % 2 ? 3 : 1;
        t[i].p.num_return_sequences = t[i].p.num_beams;
        s[i] = t[i];
        et_thr_run(&s[i]);
        REQUIRE(s[i].rc == 0);
    }
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) REQUIRE(pthread_create(&th[i], NULL, et_thr_run, &t[i]) == 0);
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) {
        CHECK(t[i].rc == 0);
        CHECK_MSG(et_same(&t[i].r, &s[i].r, 0),
                  "thread %d differs from the serial run (%d/%d hyps, score %.17g vs %.17g, %d vs "
                  "%d tokens)",
                  i, t[i].r.n_hyps, s[i].r.n_hyps, t[i].r.hyps[0].score, s[i].r.hyps[0].score,
                  t[i].r.hyps[0].n_tokens, s[i].r.hyps[0].n_tokens);
        eng_gen_result_clear(&t[i].r);
        eng_gen_result_clear(&s[i].r);
    }
    eng_model_free(&m);
}

/* ---- the engine's own threads: results do not depend on how many there are ----
 * Elementwise loops, attention heads, decode rows and scored rows are shared between the
 * threads, each computed the same way whichever thread takes it. The batch here is big
 * enough to take every threaded path (8 inputs of 96 tokens: 768 encoder rows). */

static eng_model *et_model_threads(const char *name, int n_threads)
{
    char rel[64], err[512];
    snprintf(rel, sizeof rel, "models/%s", name);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = n_threads;
    eng_model *m = eng_model_load(th_data(rel), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    return m;
}

enum { ET_TN = 8, ET_TLEN = 96, ET_TLABELS = 8 };

/* Generation (greedy with a penalty and an n-gram ban, sampling, beams) and label scoring
 * of the same batch. */
static void et_threads_run(eng_model *m, eng_gen_result *res, double *lp)
{
    eng_ctx *c = et_ctx(m, 32, 2048);
    static int32_t ids[ET_TN][ET_TLEN];
    for (int d = 0; d < ET_TN; d++) {
        for (int i = 0; i < ET_TLEN - 1; i++) ids[d][i] = 3 + (d * 7919 + i * 104729) % 32000;
        ids[d][ET_TLEN - 1] = 1;
    }
    eng_gen_params p[ET_TN];
    eng_gen_req q[ET_TN];
    for (int d = 0; d < ET_TN; d++) {
        p[d] = eng_gen_default_params();
        p[d].max_new_tokens = 12;
        if (d % 4 == 1) p[d].do_sample = 1, p[d].seed = 42 + d, p[d].top_k = 50, p[d].top_p = 0.9f;
        if (d % 4 == 2) p[d].repetition_penalty = 1.3f, p[d].no_repeat_ngram_size = 2;
        if (d % 4 == 3) p[d].num_beams = 3, p[d].num_return_sequences = 2;
        q[d] = (eng_gen_req){ .ids = ids[d], .n_ids = ET_TLEN, .params = &p[d], .out = &res[d] };
    }
    REQUIRE(eng_generate(c, q, ET_TN) == 0);
    for (int d = 0; d < ET_TN; d++) CHECK_MSG(q[d].status == 0, "request %d: %d", d, q[d].status);

    static int32_t cand[ET_TLABELS][3];
    const int32_t *cp[ET_TLABELS];
    int cl[ET_TLABELS];
    for (int k = 0; k < ET_TLABELS; k++) {
        cl[k] = 1 + k % 3;
        for (int j = 0; j < 3; j++) cand[k][j] = 100 + 37 * k + j;
        cp[k] = cand[k];
    }
    eng_score_req s[ET_TN];
    for (int d = 0; d < ET_TN; d++)
        s[d] = (eng_score_req){ .ids = ids[d],
                                .n_ids = ET_TLEN,
                                .n_cands = ET_TLABELS,
                                .cand_ids = cp,
                                .cand_lens = cl,
                                .logprobs = lp + d * ET_TLABELS };
    REQUIRE(eng_score(c, s, ET_TN) == 0);
    for (int d = 0; d < ET_TN; d++) CHECK_MSG(s[d].status == 0, "score %d: %d", d, s[d].status);
    eng_ctx_free(&c);
}

TEST(eng_thread_count_does_not_change_results)
{
    const char *models[] = { "tiny-flan", "tiny-t5" };
    for (int mi = 0; mi < 2; mi++) {
        eng_gen_result r1[ET_TN], r2[ET_TN];
        double lp1[ET_TN * ET_TLABELS], lp2[ET_TN * ET_TLABELS];
        eng_model *m1 = et_model_threads(models[mi], 1), *m2 = et_model_threads(models[mi], 2);
        et_threads_run(m1, r1, lp1);
        et_threads_run(m2, r2, lp2);
        /* same tokens; scores equal up to OpenBLAS's rounding of the encoder's products,
         * which depends on its thread count */
        for (int d = 0; d < ET_TN; d++) {
            CHECK_MSG(et_same(&r1[d], &r2[d], 1e-5), "%s request %d: 1 and 2 threads differ",
                      models[mi], d);
            eng_gen_result_clear(&r1[d]);
            eng_gen_result_clear(&r2[d]);
        }
        for (int i = 0; i < ET_TN * ET_TLABELS; i++)
            CHECK_MSG(fabs(lp1[i] - lp2[i]) <= 1e-5 * fmax(1.0, fabs(lp1[i])),
                      "%s label score %d: %.9g vs %.9g", models[mi], i, lp1[i], lp2[i]);
        eng_model_free(&m1);
        eng_model_free(&m2);
    }
}

/* The thread count a step picks (eng_threads_step): the free CPUs shared between the
 * contexts computing, rounded to the nearest, within 1..max; the model's own with no
 * reading. */
TEST(eng_threads_pick_shares_free_cpus)
{
    CHECK(eng_threads_pick(-1, 1, 4) == 4);   /* no reading yet */
    CHECK(eng_threads_pick(2.0, 1, 2) == 2);  /* alone */
    CHECK(eng_threads_pick(1.75, 1, 2) == 2); /* a client's share of a CPU */
    CHECK(eng_threads_pick(1.5, 1, 2) == 2);  /* half a CPU busy */
    CHECK(eng_threads_pick(1.45, 1, 2) == 1);
    CHECK(eng_threads_pick(1.33, 1, 2) == 1); /* two spinning threads beside a hog */
    CHECK(eng_threads_pick(1.0, 1, 2) == 1);  /* one thread beside a hog */
    CHECK(eng_threads_pick(0.1, 1, 2) == 1);  /* never 0 */
    CHECK(eng_threads_pick(8.0, 1, 2) == 2);  /* never above the model's */
    CHECK(eng_threads_pick(2.0, 2, 2) == 1);  /* two contexts computing share them */
    CHECK(eng_threads_pick(15.0, 1, 16) == 15);
    CHECK(eng_threads_pick(16.0, 3, 16) == 5);
    CHECK(eng_threads_pick(16.0, 0, 16) == 16);
}

/* Beside busy processes on every CPU, a model loaded with n_threads = 0 steps on one
 * thread within a few readings; one loaded with 2 keeps 2. (Busy CPUs are the direction
 * a test can show on a machine others use: a test machine is never known to be idle.) */
TEST(eng_threads_auto_yields_to_busy_cpus)
{
    int ncpu = cm_cpu_count();
    if (ncpu > 16) ncpu = 16;
    pid_t hog[16];
    for (int i = 0; i < ncpu; i++) {
        hog[i] = fork();
        REQUIRE(hog[i] >= 0);
        if (hog[i] == 0) {
            alarm(30); /* never outlives a killed test */
            for (volatile unsigned long x = 0;; x++) continue;
        }
    }
    eng_model *ma = et_model_threads("tiny-flan", 0), *m2 = et_model_threads("tiny-flan", 2);
    eng_ctx *ca = et_ctx(ma, 4, 256), *c2 = et_ctx(m2, 4, 256);
    int32_t ids[] = { 13959, 1566, 12, 2968, 10, 8774, 1 };
    eng_gen_params p = eng_gen_default_params();
    p.max_new_tokens = 24;
    double t0 = cm_now();
    int steps = 0;
    while (cm_now() - t0 < 1.0) { /* five readings */
        eng_gen_result r;
        eng_gen_req q = { .ids = ids, .n_ids = 7, .params = &p, .out = &r };
        REQUIRE(eng_generate(ca, &q, 1) == 0 && q.status == 0);
        eng_gen_result_clear(&r);
        steps++;
    }
    int auto_nt = eng_ctx_threads(ca);
    eng_gen_result r;
    eng_gen_req q = { .ids = ids, .n_ids = 7, .params = &p, .out = &r };
    REQUIRE(eng_generate(c2, &q, 1) == 0 && q.status == 0);
    eng_gen_result_clear(&r);
    for (int i = 0; i < ncpu; i++) kill(hog[i], SIGKILL), waitpid(hog[i], NULL, 0);
    CHECK_MSG(auto_nt == 1, "auto: %d threads beside %d busy CPUs after %d calls", auto_nt, ncpu,
              steps);
    CHECK(eng_ctx_threads(c2) == 2);
    eng_ctx_free(&ca), eng_ctx_free(&c2);
    eng_model_free(&ma), eng_model_free(&m2);
}

/* ---- continuous batching: requests join a running batch ---- */

typedef struct et_stream {
    eng_gen_req *pool; /* requests handed out by join, in order */
    int n_pool, next;
    int calls;          /* join calls so far */
    int every;          /* hand out one request every `every` calls */
    int done_count[16]; /* per request (pool and initial), by tag */
    int bad_room;       /* a join asked with rows or tokens <= 0 */
} et_stream;

static eng_gen_req *et_join(void *user, int rows, int tokens)
{
    et_stream *s = user;
    if (rows <= 0 || tokens <= 0) s->bad_room = 1;
    if (s->next >= s->n_pool || s->calls++ % s->every) return NULL;
    eng_gen_req *r = &s->pool[s->next];
    const eng_gen_params *p = r->params;
    int need = p->num_beams > 1 ? p->num_beams : p->num_return_sequences;
    if (need > rows || r->n_ids > tokens) return NULL; /* later, when there is room */
    s->next++;
    return r;
}

static void et_done(void *user, eng_gen_req *r)
{
    et_stream *s = user;
    s->done_count[(int)(intptr_t)r->tag]++;
}

TEST(eng_stream_joiners_match_running_alone)
{
    eng_model *m = et_model("tiny-flan");
    static et_case cs[8];
    int nc = et_cases("tiny-flan", cs);
    REQUIRE(nc >= 6);
    eng_ctx *c = et_ctx(m, 16, 1024);
    enum { N = 8 };
    eng_gen_params p[N];
    eng_gen_result alone[N], joined[N];
    eng_gen_req q[N];
    static const int32_t bad_ids[2] = { 5, 99999999 };
    for (int i = 0; i < N; i++) {
        p[i] = eng_gen_default_params();
        p[i].max_new_tokens = 6 + 3 * i;
        if (i % 3 == 1) p[i].num_beams = 2, p[i].num_return_sequences = 2;
        if (i % 3 == 2) p[i].do_sample = 1, p[i].seed = 7 + i, p[i].top_k = 20;
        const et_case *k = &cs[i % nc];
        q[i] = (eng_gen_req){ .ids = k->ids,
                              .n_ids = k->n,
                              .params = &p[i],
                              .out = &alone[i],
                              .tag = (void *)(intptr_t)i };
        if (i == 5) q[i].ids = bad_ids, q[i].n_ids = 2; /* an invalid id: EINVAL */
        REQUIRE(eng_generate(c, &q[i], 1) == 0);
        CHECK(q[i].status == (i == 5 ? ENG_EINVAL : 0));
        q[i].out = &joined[i];
    }
    /* 2 requests start; the other 6 join one every 2 steps, into the same batch. */
    et_stream st = { .pool = q + 2, .n_pool = N - 2, .every = 2 };
    eng_stream s = { .join = et_join, .done = et_done, .user = &st };
    eng_gen_req *first[2] = { &q[0], &q[1] };
    REQUIRE(eng_generate_stream(c, first, 2, &s) == 0);
    CHECK(st.next == N - 2);
    CHECK(!st.bad_room);
    for (int i = 0; i < N; i++) {
        CHECK_MSG(st.done_count[i] == 1, "request %d reported %d times", i, st.done_count[i]);
        CHECK(q[i].status == (i == 5 ? ENG_EINVAL : 0));
        if (i != 5)
            CHECK_MSG(et_same(&alone[i], &joined[i], 1e-5), "request %d: joined differs", i);
        eng_gen_result_clear(&alone[i]);
        eng_gen_result_clear(&joined[i]);
    }
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* A joiner that does not fit the room it was offered is refused, not lost. */
static eng_gen_req *et_join_too_big(void *user, int rows, int tokens)
{
    (void)rows, (void)tokens;
    et_stream *s = user;
    if (s->next >= s->n_pool) return NULL;
    return &s->pool[s->next++];
}

TEST(eng_stream_refuses_a_joiner_beyond_the_room)
{
    eng_model *m = et_model("tiny-flan");
    eng_ctx *c = et_ctx(m, 4, 1024);
    static int32_t ids[8] = { 100, 200, 300, 1 };
    eng_gen_params p = eng_gen_default_params(), pb = p;
    p.max_new_tokens = 4;
    pb.max_new_tokens = 4, pb.num_beams = 4; /* 4 rows: more than the 3 left */
    eng_gen_result r0, r1;
    eng_gen_req q0 = { .ids = ids, .n_ids = 4, .params = &p, .out = &r0, .tag = (void *)0 };
    eng_gen_req q1 = { .ids = ids, .n_ids = 4, .params = &pb, .out = &r1, .tag = (void *)1 };
    et_stream st = { .pool = &q1, .n_pool = 1, .every = 1 };
    eng_stream s = { .join = et_join_too_big, .done = et_done, .user = &st };
    eng_gen_req *first = &q0;
    REQUIRE(eng_generate_stream(c, &first, 1, &s) == 0);
    CHECK(q0.status == 0 && r0.n_hyps == 1);
    CHECK(q1.status == ENG_ETOOLONG);
    CHECK(st.done_count[0] == 1 && st.done_count[1] == 1);
    eng_gen_result_clear(&r0);
    eng_gen_result_clear(&r1);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* Finished requests hand their row slots and encoder tokens to later joiners: 12
 * requests stream through a batch of 3 rows and 40 tokens (beams need a run of free
 * slots, inputs a gap of free tokens), each with the results of running alone. */
TEST(eng_stream_reuses_rows_and_tokens)
{
    eng_model *m = et_model("tiny-flan");
    char err[256];
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 3, cp.max_input_len = 32, cp.max_batch_tokens = 40, cp.max_new_tokens = 16;
    eng_ctx *c = eng_ctx_new(m, &cp, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    enum { N = 12 };
    static int32_t ids[N][16];
    eng_gen_params p[N];
    eng_gen_result alone[N], joined[N];
    eng_gen_req q[N];
    for (int i = 0; i < N; i++) {
        int len = 6 + (i * 5) % 10;
        for (int t = 0; t < len - 1; t++) ids[i][t] = 10 + (i * 331 + t * 977) % 30000;
        ids[i][len - 1] = 1;
        p[i] = eng_gen_default_params();
        p[i].max_new_tokens = 3 + (i * 7) % 11;
        if (i % 4 == 1) p[i].num_beams = 2, p[i].num_return_sequences = 2;
        if (i % 4 == 3) p[i].do_sample = 1, p[i].seed = 100 + i;
        q[i] = (eng_gen_req){ .ids = ids[i],
                              .n_ids = len,
                              .params = &p[i],
                              .out = &alone[i],
                              .tag = (void *)(intptr_t)i };
        REQUIRE(eng_generate(c, &q[i], 1) == 0);
        REQUIRE(q[i].status == 0);
        q[i].out = &joined[i];
    }
    et_stream st = { .pool = q + 1, .n_pool = N - 1, .every = 1 };
    eng_stream s = { .join = et_join, .done = et_done, .user = &st };
    eng_gen_req *first = &q[0];
    REQUIRE(eng_generate_stream(c, &first, 1, &s) == 0);
    CHECK(st.next == N - 1);
    CHECK(!st.bad_room);
    for (int i = 0; i < N; i++) {
        CHECK_MSG(st.done_count[i] == 1, "request %d reported %d times", i, st.done_count[i]);
        CHECK_MSG(q[i].status == 0, "request %d: status %d", i, q[i].status);
        CHECK_MSG(et_same(&alone[i], &joined[i], 1e-5), "request %d: joined differs", i);
        eng_gen_result_clear(&alone[i]);
        eng_gen_result_clear(&joined[i]);
    }
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* The kernels are named after the instruction set the CPU has, as the clones pick it. */
TEST(eng_kernels_names_the_instruction_set)
{
    const char *k = eng_kernels();
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    int v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    CHECK_MSG(!strcmp(k, v4 ? "AVX-512" : v3 ? "AVX2+FMA" : "baseline"), "%s", k);
#else
    CHECK_MSG(strstr(k, "portable") != NULL, "%s", k);
#endif
}

/* ---- NaN and infinity: refused at load, and an error (never OK) if computed ---- */

/* Rewrites DIR/model.safetensors with element `elem` of `tensor` set to the bits of
 * kind 'n' (NaN), '+' or '-' (infinities) in the tensor's own dtype. */
static void et_poison(const char *dir, const char *tensor, size_t elem, char kind)
{
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t nd;
    char *data;
    cJSON *h = et_read_st(path, &data, &nd);
    cJSON *t = cJSON_GetObjectItem(h, tensor);
    REQUIRE_MSG(t, "no tensor %s", tensor);
    const char *dt = cJSON_GetObjectItem(t, "dtype")->valuestring;
    size_t off = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble;
    int k = kind == 'n' ? 0 : kind == '+' ? 1 : 2;
    if (!strcmp(dt, "F32")) {
        static const uint32_t bits[] = { 0x7fc00000u, 0x7f800000u, 0xff800000u };
        memcpy(data + off + 4 * elem, &bits[k], 4);
    } else {
        static const uint16_t f16[] = { 0x7e00, 0x7c00, 0xfc00 },
                              bf16[] = { 0x7fc0, 0x7f80, 0xff80 };
        memcpy(data + off + 2 * elem, !strcmp(dt, "F16") ? &f16[k] : &bf16[k], 2);
    }
    et_write_st(dir, h, 0, data, nd);
    cJSON_Delete(h);
    free(data);
}

TEST(eng_nonfinite_weights_refused)
{
    static const struct {
        const char *src; /* tiny-t5 (F32), tiny-flan (BF16), or "f16" (tiny-t5 as F16) */
        const char *tensor;
        size_t elem;
        char kind;
        const char *want;
    } cases[] = {
        { "tiny-t5", "decoder.block.1.layer.2.DenseReluDense.wo.weight", 77, 'n',
          "holds NaN at element 77 (F32)" },
        { "tiny-t5", "shared.weight", 32128u * 64 - 1, '+', "holds +inf at element 2056191 (F32)" },
        { "tiny-t5", "encoder.final_layer_norm.weight", 0, '-', "holds -inf at element 0 (F32)" },
        { "tiny-flan", "lm_head.weight", 12345, 'n', "holds NaN at element 12345 (BF16)" },
        { "tiny-flan", "encoder.block.2.layer.1.DenseReluDense.wi_1.weight", 64, '+',
          "holds +inf at element 64 (BF16)" },
        { "f16", "encoder.block.0.layer.0.SelfAttention.q.weight", 5, 'n',
          "holds NaN at element 5 (F16)" },
        { "f16", "decoder.final_layer_norm.weight", 63, '+', "holds +inf at element 63 (F16)" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[64], err[512] = "";
        if (!strcmp(cases[i].src, "f16")) et_write_variant(dir, 1);
        else et_copy_model(dir, cases[i].src, NULL, NULL, NULL, NULL);
        et_poison(dir, cases[i].tensor, cases[i].elem, cases[i].kind);
        eng_model *m = eng_model_load(dir, NULL, err, sizeof err);
        CHECK_MSG(m == NULL, "case %zu: loaded with a non-finite weight", i);
        eng_model_free(&m);
        char want[256];
        snprintf(want, sizeof want, "%s/model.safetensors: tensor '%s' %s", dir, cases[i].tensor,
                 cases[i].want);
        CHECK_MSG(strstr(err, want), "case %zu: '%s' lacks '%s'", i, err, want);
        et_rmdir(dir);
    }
}

/* Weights poisoned in memory after load (tiny-flan is BF16, loaded as f32: every weight
 * is a converted copy, so writable): every path that reads logits reports ENG_ENONFINITE
 * and no result, and the ctx works again once the weight is repaired. */
TEST(eng_nonfinite_logits_are_errors)
{
    char err[512];
    eng_model_params wp = eng_model_default_params();
    wp.n_threads = 1, wp.weights = ENG_WEIGHTS_F32;
    eng_model *m = eng_model_load(th_data("models/tiny-flan"), &wp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    eng_ctx *c = et_ctx(m, 8, 0);
    const eng_config *cf = eng_model_config(m);
    static et_case cs[8];
    et_cases("tiny-flan", cs);
    int owned = 0;
    for (int i = 0; i < m->n_owned; i++)
        owned += m->owned[i] == m->lm_head.w || m->owned[i] == m->dec.final_norm.w ||
                 m->owned[i] == m->enc.final_norm.w;
    REQUIRE(owned == 3);
    float *targets[] = {
        (float *)m->lm_head.w + (size_t)5962 * cf->d_model + 3, /* one logit of every row */
        (float *)m->dec.final_norm.w,                           /* every decoder output */
        (float *)m->enc.final_norm.w + 5,                       /* the encoder's output */
    };
    const float poison[] = { NAN, INFINITY, NAN };
    eng_gen_params greedy = eng_gen_default_params();
    greedy.max_new_tokens = 8;
    eng_gen_result ref;
    et_gen1(c, &cs[0], &greedy, &ref);
    CHECK(ref.n_hyps == 1 && ref.hyps[0].n_tokens > 0);
    eng_gen_params beam = greedy, sample = greedy;
    beam.num_beams = 3;
    beam.num_return_sequences = 2;
    sample.do_sample = 1;
    sample.num_return_sequences = 3;
    sample.top_k = 20;
    static const int32_t c0[] = { 2163 }, c1[] = { 150, 13, 3 };
    const int32_t *cands[] = { c0, c1 };
    int lens[] = { 1, 3 };
    for (int p = 0; p < 3; p++) {
        float saved = *targets[p];
        *targets[p] = poison[p];
        eng_gen_result r[3];
        eng_gen_req q[3] = {
            { .ids = cs[0].ids, .n_ids = cs[0].n, .params = &greedy, .out = &r[0] },
            { .ids = cs[1].ids, .n_ids = cs[1].n, .params = &beam, .out = &r[1] },
            { .ids = cs[2].ids, .n_ids = cs[2].n, .params = &sample, .out = &r[2] },
        };
        REQUIRE(eng_generate(c, q, 3) == 0);
        for (int i = 0; i < 3; i++) {
            CHECK_MSG(q[i].status == ENG_ENONFINITE, "poison %d req %d: status %d", p, i,
                      q[i].status);
            CHECK(r[i].n_hyps == 0 && r[i].storage == NULL);
            eng_gen_result_clear(&r[i]);
        }
        double lp[2] = { 0, 0 };
        eng_score_req sr = { .ids = cs[3].ids,
                             .n_ids = cs[3].n,
                             .n_cands = 2,
                             .cand_ids = cands,
                             .cand_lens = lens,
                             .logprobs = lp };
        REQUIRE(eng_score(c, &sr, 1) == 0);
        CHECK_MSG(sr.status == ENG_ENONFINITE, "poison %d score: status %d", p, sr.status);
        *targets[p] = saved;
        /* repaired: the same ctx gives the same answer as before */
        eng_gen_result again;
        et_gen1(c, &cs[0], &greedy, &again);
        CHECK(et_same(&ref, &again, 0));
        eng_gen_result_clear(&again);
        sr.status = -99;
        REQUIRE(eng_score(c, &sr, 1) == 0);
        CHECK(sr.status == 0 && lp[0] < 0 && lp[1] < 0);
    }
    eng_gen_result_clear(&ref);
    CHECK(strstr(eng_strerror(ENG_ENONFINITE), "NaN") != NULL);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* The tasks layer turns the status into an internal error with the engine's reason: a
 * damaged model never answers OK with an empty text. */
TEST(eng_nonfinite_is_a_task_internal_error)
{
    task_job job;
    memset(&job, 0, sizeof job);
    char msg[256] = "";
    job.kind = TASK_JOB_GENERATE;
    job.gen.status = ENG_ENONFINITE;
    CHECK(task_job_status(&job, msg, sizeof msg) == TASK_EINTERNAL);
    CHECK_MSG(strstr(msg, "NaN"), "%s", msg);
    job.kind = TASK_JOB_SCORE;
    job.gen.status = 0;
    job.score.status = ENG_ENONFINITE;
    msg[0] = '\0';
    CHECK(task_job_status(&job, msg, sizeof msg) == TASK_EINTERNAL);
    CHECK_MSG(strstr(msg, "NaN"), "%s", msg);
}

TEST(eng_model_dir_path_too_long)
{
    char dir[4100], err[8192] = "";
    memset(dir, 'd', 4090);
    memcpy(dir, "/tmp/", 5);
    dir[4090] = '\0';
    CHECK(eng_model_load(dir, NULL, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "path too long"), "%s", err);
}
