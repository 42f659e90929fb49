/* Engine golden parity: both tiny models, every case of tests/data/golden/<model>.json —
 * encoder output and the first three greedy steps' logits (max abs diff <= 1e-3), greedy
 * ids identical, beam hypotheses identical in tokens and order with scores within 1e-3. */
#include "engine/engine.h"
#include "engine/st.h"
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EG_TOL 1e-3

static cJSON *eg_load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

typedef struct eg_fix {
    cJSON *gold;
    st_set *gst;
    eng_model *m;
    eng_ctx *c;
} eg_fix;

static void eg_open(eg_fix *f, const char *name)
{
    char rel[128], err[512];
    snprintf(rel, sizeof rel, "golden/%s.json", name);
    f->gold = eg_load_json(th_data(rel));
    REQUIRE_MSG(f->gold, "cannot read %s", rel);
    snprintf(rel, sizeof rel, "golden/%s.safetensors", name);
    f->gst = st_open_file(th_data(rel), err, sizeof err);
    REQUIRE_MSG(f->gst, "%s", err);
    const cJSON *model = cJSON_GetObjectItem(f->gold, "model");
    REQUIRE(cJSON_IsString(model));
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1;
    f->m = eng_model_load(th_data(model->valuestring), &mp, err, sizeof err);
    REQUIRE_MSG(f->m, "%s", err);
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 16;
    cp.max_new_tokens = 32;
    f->c = eng_ctx_new(f->m, &cp, err, sizeof err);
    REQUIRE_MSG(f->c, "%s", err);
}

static void eg_close(eg_fix *f)
{
    eng_ctx_free(&f->c);
    eng_model_free(&f->m);
    st_close(&f->gst);
    cJSON_Delete(f->gold);
}

static const float *eg_tensor(eg_fix *f, const char *cs, const char *what, int64_t *n)
{
    char nm[128];
    snprintf(nm, sizeof nm, "%s.%s", cs, what);
    const st_tensor *t = st_find(f->gst, nm);
    if (!t || t->dtype != ST_F32) return NULL;
    *n = (int64_t)(t->nbytes / 4);
    return t->data;
}

static void eg_encoder_and_logits(const char *model)
{
    eg_fix f;
    eg_open(&f, model);
    const eng_config *cf = eng_model_config(f.m);
    int V = cf->vocab_size, D = cf->d_model;
    float *out = malloc(sizeof(float) * 512 * (size_t)(D > V ? D : V));
    REQUIRE(out);
    const cJSON *cs;
    int ncases = 0;
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(f.gold, "cases")) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        int32_t ids[512], dec[8];
        int n = th_ids(cJSON_GetObjectItem(cs, "input_ids"), ids, 512);
        REQUIRE(n <= 512);
        int64_t ne = 0, nl = 0;
        const float *genc = eg_tensor(&f, name, "encoder_out", &ne);
        const float *glog = eg_tensor(&f, name, "logits", &nl);
        REQUIRE_MSG(genc && glog && ne == (int64_t)n * D && nl == 3 * (int64_t)V,
                    "%s: golden tensors missing", name);
        CHECK(eng_encode(f.c, ids, n, out) == 0);
        double md = 0;
        for (int64_t i = 0; i < ne; i++) md = fmax(md, fabs((double)out[i] - genc[i]));
        CHECK_MSG(md <= EG_TOL, "%s/%s: encoder max abs diff %g", model, name, md);
        /* decoder input: start token, then the first greedy tokens */
        const cJSON *gt = cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "greedy"), "tokens");
        dec[0] = cf->decoder_start_token_id;
        for (int s = 1; s < 3; s++) dec[s] = cJSON_GetArrayItem(gt, s - 1)->valueint;
        for (int s = 0; s < 3; s++) {
            CHECK(eng_logits(f.c, ids, n, dec, s + 1, out) == 0);
            md = 0;
            for (int v = 0; v < V; v++)
                md = fmax(md, fabs((double)out[v] - glog[(size_t)s * V + v]));
            CHECK_MSG(md <= EG_TOL, "%s/%s: logits step %d max abs diff %g", model, name, s, md);
        }
        ncases++;
    }
    CHECK(ncases == 6);
    free(out);
    eg_close(&f);
}

TEST(eng_golden_encoder_logits_tiny_t5) { eg_encoder_and_logits("tiny-t5"); }
TEST(eng_golden_encoder_logits_tiny_flan) { eg_encoder_and_logits("tiny-flan"); }

static void eg_check_hyps(const char *what, const cJSON *want, const eng_gen_result *res, int beam)
{
    int nw = cJSON_GetArraySize(want);
    CHECK_MSG(res->n_hyps == nw, "%s: %d hypotheses, want %d", what, res->n_hyps, nw);
    for (int h = 0; h < nw && h < res->n_hyps; h++) {
        const cJSON *wh = cJSON_GetArrayItem(want, h);
        int32_t tk[256];
        int nt = th_ids(cJSON_GetObjectItem(wh, "tokens"), tk, 256);
        const eng_hyp *g = &res->hyps[h];
        int same = g->n_tokens == nt;
        for (int i = 0; same && i < nt; i++) same = g->tokens[i] == tk[i];
        CHECK_MSG(same, "%s: hypothesis %d tokens differ (n %d vs %d)", what, h, g->n_tokens, nt);
        if (beam) {
            double ws = cJSON_GetObjectItem(wh, "score")->valuedouble;
            double wsum = cJSON_GetObjectItem(wh, "sum_logprobs")->valuedouble;
            CHECK_MSG(fabs(g->score - ws) <= EG_TOL, "%s: hyp %d score %.6f want %.6f", what, h,
                      g->score, ws);
            CHECK_MSG(fabs(g->sum_logprobs - wsum) <= EG_TOL * fmax(1.0, fabs(wsum) / 10),
                      "%s: hyp %d sum %.6f want %.6f", what, h, g->sum_logprobs, wsum);
        }
    }
}

static void eg_generate(const char *model, int beams_too)
{
    eg_fix f;
    eg_open(&f, model);
    const cJSON *cs;
    int nbeam = 0;
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(f.gold, "cases")) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        int32_t ids[512];
        int n = th_ids(cJSON_GetObjectItem(cs, "input_ids"), ids, 512);
        const cJSON *gr = cJSON_GetObjectItem(cs, "greedy");
        eng_gen_params p = eng_gen_default_params();
        p.max_new_tokens = cJSON_GetObjectItem(gr, "max_new_tokens")->valueint;
        eng_gen_result res;
        eng_gen_req rq = { .ids = ids, .n_ids = n, .params = &p, .out = &res };
        char what[160];
        if (!beams_too) {
            REQUIRE(eng_generate(f.c, &rq, 1) == 0);
            REQUIRE_MSG(rq.status == 0, "%s: status %d", name, rq.status);
            cJSON *wrap = cJSON_CreateArray();
            cJSON *h = cJSON_CreateObject();
            cJSON_AddItemToObject(h, "tokens",
                                  cJSON_Duplicate(cJSON_GetObjectItem(gr, "tokens"), 1));
            cJSON_AddItemToArray(wrap, h);
            snprintf(what, sizeof what, "%s/%s greedy", model, name);
            eg_check_hyps(what, wrap, &res, 0);
            cJSON_Delete(wrap);
            eng_gen_result_clear(&res);
            continue;
        }
        const cJSON *b;
        cJSON_ArrayForEach (b, cJSON_GetObjectItem(cs, "beam")) {
            const cJSON *bp = cJSON_GetObjectItem(b, "params");
            p = eng_gen_default_params();
            p.num_beams = cJSON_GetObjectItem(bp, "num_beams")->valueint;
            p.num_return_sequences = p.num_beams;
            p.max_new_tokens = cJSON_GetObjectItem(bp, "max_new_tokens")->valueint;
            p.length_penalty = (float)cJSON_GetObjectItem(bp, "length_penalty")->valuedouble;
            const cJSON *x = cJSON_GetObjectItem(bp, "no_repeat_ngram_size");
            if (x) p.no_repeat_ngram_size = x->valueint;
            if ((x = cJSON_GetObjectItem(bp, "min_new_tokens"))) p.min_new_tokens = x->valueint;
            REQUIRE(eng_generate(f.c, &rq, 1) == 0);
            REQUIRE_MSG(rq.status == 0, "%s: status %d", name, rq.status);
            snprintf(what, sizeof what, "%s/%s beam%d lp%.1f", model, name, p.num_beams,
                     p.length_penalty);
            eg_check_hyps(what, cJSON_GetObjectItem(b, "hypotheses"), &res, 1);
            eng_gen_result_clear(&res);
            nbeam++;
        }
    }
    if (beams_too) CHECK(nbeam == 12);
    eg_close(&f);
}

TEST(eng_golden_greedy_tiny_t5) { eg_generate("tiny-t5", 0); }
TEST(eng_golden_greedy_tiny_flan) { eg_generate("tiny-flan", 0); }
TEST(eng_golden_beam_tiny_t5) { eg_generate("tiny-t5", 1); }
TEST(eng_golden_beam_tiny_flan) { eg_generate("tiny-flan", 1); }
