/* int8 against F32 on a real-size random checkpoint (issue 16; the golden cases' part is
 * eng_wt_int8_accuracy in test_engine_weights.c). build/bench/mkmodel writes
 * flan-t5-small's config (77M parameters) with random weights into a temp dir; the same
 * file is loaded twice, --weights int8 (quantized at load) and --weights f32, and both
 * are teacher-forced along F32's greedy path (EOS forbidden) of a few random inputs. Per
 * step: top-1 agreement and the cosine of the full logits vectors; cosine >= 0.995 at
 * every step.
 *
 * Realistic scales. T5 does not divide its attention scores by sqrt(d_kv): trained
 * checkpoints and transformers' own initialisation fold that into q, ~ N(0, 1/(d_model
 * d_kv)), and so does mkmodel; the test checks the file's q RMS is there (rs_q_rms).
 * With q ~ N(0, 1/d_model), as mkmodel drew it before, the scores spread about
 * sqrt(d_kv) = 8 wide, the softmax picks one key almost outright, and the network
 * amplifies any perturbation: rounding the weights to BF16 alone (relative error 2^-9)
 * gave logits cosines down to 0.14-0.36 (means 0.45-0.70, top-1 agreement 0-15%) on
 * flan-t5-small, int8 down to 0.25 (mean 0.50). No trained checkpoint behaves so
 * (flan-t5 is trained in BF16). mkmodel's Gaussians have no outlier rows or channels as
 * trained weights and activations do: the figures are those of the dimensions (K = 512
 * and 1024, 8 + 8 layers, 32128 logits), not of a trained model's outliers.
 *
 * The check has teeth only if the logits are not degenerate: logits that hardly depend on
 * the position would give any two vectors a cosine near 1. So F32's logits at consecutive
 * positions must differ (their cosine < 0.9 on average; measured 0.6); the margin
 * between F32's best and second-best token is reported beside the agreement.
 *
 * NLP_Q8RS_CONFIG (a file under tests/data, default configs/flan-t5-small.json),
 * NLP_Q8RS_DTYPE (mkmodel's --dtype, f32 or bf16: the F32 reference then widens the BF16
 * values exactly), NLP_Q8RS_INPUTS, NLP_Q8RS_STEPS and NLP_Q8RS_THREADS change the
 * checkpoint and the work: tests/bench/bench_q8_accuracy.sh runs this test on more steps,
 * flan-t5-base and BF16 files that way. NLP_Q8RS_WEIGHTS=bf16 compares --weights bf16
 * (rounding only) in place of int8 against f32. */
#include "engine/eng_int.h"
#include "engine/hfconfig.h"
#include "engine/st.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RS_MAX_INPUTS 16
#define RS_MAX_STEPS 128
#define RS_MAX_LEN 96 /* encoder tokens of the longest input, EOS included */

typedef struct rs_stats {
    int steps, top1;
    double cos_min, cos_sum;
    double cross_max, cross_sum; /* F32 logits of two consecutive positions: cosine */
    int cross_n;
    double margin_sum;      /* F32's top-1 minus top-2 logit, summed over steps */
    double flip_margin_max; /* the largest F32 margin at a step where a's top-1 differs */
} rs_stats;

static int rs_env(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    int n = v && *v ? atoi(v) : def;
    REQUIRE_MSG(n >= lo && n <= hi, "%s=%s: want %d..%d", name, v, lo, hi);
    return n;
}

static double rs_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static float rs_get(const st_tensor *t, size_t j)
{
    if (t->dtype == ST_F32) return ((const float *)t->data)[j];
    uint32_t u = (uint32_t)((const uint16_t *)t->data)[j] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int rs_is_q(const st_tensor *t)
{
    size_t n = strlen(t->name);
    if (n < 9 || strcmp(t->name + n - 9, ".q.weight") != 0) return 0;
    REQUIRE(t->dtype == ST_F32 || t->dtype == ST_BF16);
    return 1;
}

/* The RMS of a T5 checkpoint's q matrices over all layers, required within a factor
 * sqrt(2) of transformers' 1/sqrt(d_model d_kv); 0 for other families (their attention
 * divides by sqrt(d_kv) itself). */
static double rs_q_rms(const char *dir)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    eng_config cf;
    const eng_arch *arch = NULL;
    REQUIRE_MSG(hf_config_load(path, &cf, &arch, err, sizeof err) == 0, "%s", err);
    if (strcmp(arch->name, "t5") != 0) return 0;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_set *s = st_open_file(path, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    double sq = 0;
    size_t n = 0;
    for (int i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_at(s, i);
        if (!rs_is_q(t)) continue;
        for (size_t j = 0; j < t->nbytes / st_dtype_size(t->dtype); j++, n++)
            sq += (double)rs_get(t, j) * rs_get(t, j);
    }
    st_close(&s);
    REQUIRE(n > 0);
    double rms = sqrt(sq / (double)n), want = 1.0 / sqrt((double)cf.d_model * cf.d_kv);
    REQUIRE_MSG(rms > want / M_SQRT2 && rms < want * M_SQRT2,
                "q's RMS is %.4g, transformers' initialisation gives %.4g: not a realistic "
                "T5 checkpoint",
                rms, want);
    return rms;
}

static eng_model *rs_load(const char *dir, eng_weights w, int threads, char *err, size_t errlen)
{
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads, mp.weights = w;
    return eng_model_load(dir, &mp, err, errlen);
}

/* Logits at every decoder position of dec[0..n_dec) for input ids: out is [n_dec, vocab].
 * One encoder pass and one teacher-forced decoder pass, as eng_logits computes its last
 * row (the test checks that row against eng_logits). */
static void rs_logits_all(eng_ctx *c, const int32_t *ids, int n_ids, const int32_t *dec, int n_dec,
                          float *out)
{
    const eng_fwd *f = c->m->arch->fwd;
    eng_set_threads(c->m->n_threads);
    int off[2] = { 0, n_ids }, doff[2] = { 0, n_dec }, eoff = 0;
    f->encode(c, ids, off, 1, 0);
    f->decode_full(c, dec, doff, 1, &eoff, &n_ids, NULL, NULL);
    f->lm_head(c, c->w.h, n_dec, out);
}

static double rs_cos(const float *a, const float *b, int n)
{
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++)
        dot += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
    return dot / sqrt(na * nb);
}

/* The index of v's largest entry and its lead over the second largest. */
static int rs_top(const float *v, int n, float *margin)
{
    int b = 0, s = -1;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[b]) s = b, b = i;
        else if (s < 0 || v[i] > v[s]) s = i;
    }
    *margin = v[b] - v[s];
    return b;
}

/* n_in random inputs (ids in [2, vocab - 200), lengths spread over 8..RS_MAX_LEN, EOS
 * last) through a (int8, or the type under test) and r (F32): F32's greedy path of
 * `steps` tokens (all inputs in one batch), then both teacher-forced along the start
 * token and its first steps - 1 tokens, each of the steps positions compared. */
static void rs_compare(eng_model *a, eng_model *r, int n_in, int steps, rs_stats *st)
{
    char err[512];
    const eng_config *cf = eng_model_config(r);
    int V = cf->vocab_size;
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = n_in, cp.max_input_len = RS_MAX_LEN, cp.max_new_tokens = steps;
    cp.max_batch_tokens = n_in * RS_MAX_LEN;
    eng_ctx *ca = eng_ctx_new(a, &cp, err, sizeof err), *cr = eng_ctx_new(r, &cp, err, sizeof err);
    REQUIRE_MSG(ca && cr, "%s", err);

    static int32_t ids[RS_MAX_INPUTS][RS_MAX_LEN];
    int len[RS_MAX_INPUTS];
    uint32_t rng = 20261201u;
    for (int i = 0; i < n_in; i++) {
        len[i] = 8 + (RS_MAX_LEN - 8) * i / (n_in > 1 ? n_in - 1 : 1);
        for (int t = 0; t < len[i] - 1; t++) {
            rng = rng * 1664525u + 1013904223u;
            ids[i][t] = 2 + (int32_t)((rng >> 8) % (uint32_t)(V - 202));
        }
        ids[i][len[i] - 1] = cf->eos_token_id;
    }

    eng_gen_params gp = eng_gen_default_params();
    gp.max_new_tokens = steps, gp.min_new_tokens = steps;
    eng_gen_result res[RS_MAX_INPUTS] = { 0 };
    eng_gen_req q[RS_MAX_INPUTS];
    for (int i = 0; i < n_in; i++)
        q[i] = (eng_gen_req){ .ids = ids[i], .n_ids = len[i], .params = &gp, .out = &res[i] };
    REQUIRE(eng_generate(cr, q, n_in) == 0);

    float *la = malloc(sizeof(float) * steps * V), *lr = malloc(sizeof(float) * steps * V);
    float *one = malloc(sizeof(float) * V);
    REQUIRE(la && lr && one);
    int32_t dec[RS_MAX_STEPS];
    for (int i = 0; i < n_in; i++) {
        REQUIRE_MSG(q[i].status == 0 && res[i].hyps[0].n_tokens == steps,
                    "input %d: status %d, %d tokens", i, q[i].status, res[i].hyps[0].n_tokens);
        const int32_t *greedy = res[i].hyps[0].tokens;
        dec[0] = cf->decoder_start_token_id;
        memcpy(dec + 1, greedy, sizeof(int32_t) * (steps - 1));
        rs_logits_all(ca, ids[i], len[i], dec, steps, la);
        rs_logits_all(cr, ids[i], len[i], dec, steps, lr);
        if (i == 0) { /* the last row is what the public door computes on its own */
            REQUIRE(eng_logits(cr, ids[i], len[i], dec, steps, one) == 0);
            double c1 = rs_cos(one, lr + (size_t)(steps - 1) * V, V);
            CHECK_MSG(c1 > 0.999999, "all-positions pass against eng_logits: cosine %.7f", c1);
        }
        for (int s = 0; s < steps; s++) {
            const float *pa = la + (size_t)s * V, *pr = lr + (size_t)s * V;
            float ma, mr;
            int ta = rs_top(pa, V, &ma), tr = rs_top(pr, V, &mr);
            /* along the greedy path, F32's argmax is the token greedy took (a near tie
             * may go either way between the step and the teacher-forced pass) */
            CHECK_MSG(tr == greedy[s] || pr[greedy[s]] >= pr[tr] - 1e-4f,
                      "input %d step %d: argmax %d, greedy took %d", i, s, tr, greedy[s]);
            double c = rs_cos(pa, pr, V);
            CHECK_MSG(c >= 0.995, "input %d step %d: cosine %.5f < 0.995", i, s, c);
            st->cos_min = fmin(st->cos_min, c), st->cos_sum += c;
            st->steps++, st->top1 += ta == tr;
            st->margin_sum += mr;
            if (ta != tr) st->flip_margin_max = fmax(st->flip_margin_max, mr);
            if (s > 0) {
                double x = rs_cos(pr, pr - V, V);
                st->cross_max = fmax(st->cross_max, x), st->cross_sum += x, st->cross_n++;
            }
        }
        eng_gen_result_clear(&res[i]);
    }
    free(la), free(lr), free(one);
    eng_ctx_free(&ca), eng_ctx_free(&cr);
}

TEST_TIMEOUT(eng_q8_realsize_accuracy, 300)
{
    const char *cfg = getenv("NLP_Q8RS_CONFIG"), *dtype = getenv("NLP_Q8RS_DTYPE");
    if (!cfg || !*cfg) cfg = "configs/flan-t5-small.json";
    if (!dtype || !*dtype) dtype = "f32";
    REQUIRE_MSG(!strcmp(dtype, "f32") || !strcmp(dtype, "bf16"), "NLP_Q8RS_DTYPE=%s", dtype);
    int n_in = rs_env("NLP_Q8RS_INPUTS", 3, 1, RS_MAX_INPUTS);
    int steps = rs_env("NLP_Q8RS_STEPS", 16, 2, RS_MAX_STEPS);
    int threads = rs_env("NLP_Q8RS_THREADS", 1, 1, 64);
    const char *wname = getenv("NLP_Q8RS_WEIGHTS");
    eng_weights w = wname && *wname ? eng_weights_parse(wname) : ENG_WEIGHTS_INT8;
    REQUIRE_MSG(w == ENG_WEIGHTS_INT8 || w == ENG_WEIGHTS_BF16, "NLP_Q8RS_WEIGHTS=%s", wname);
    int wt = w == ENG_WEIGHTS_INT8 ? ENG_W_I8 : ENG_W_BF16;
    unsetenv("NLPD_Q8_CACHE"); /* no model.q8 beside the temp checkpoint */

    char dir[64], mk[1024], rm[128], err[512] = "", err2[512] = "";
    snprintf(dir, sizeof dir, "/tmp/nlpd-q8rs-XXXXXX");
    REQUIRE(mkdtemp(dir));
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    double t0 = rs_now();
    snprintf(mk, sizeof mk,
             "'%s/bench/mkmodel' --config '%s' --out '%s' --dtype %s --seed 7 >/dev/null",
             th_build(), th_data(cfg), dir, dtype);
    if (system(mk) != 0) {
        CHECK(system(rm) == 0);
        REQUIRE_MSG(0, "failed: %s", mk);
    }
    double q_rms = rs_q_rms(dir);
    double t1 = rs_now();
    eng_model *a = rs_load(dir, w, threads, err, sizeof err);
    double t2 = rs_now();
    eng_model *r = rs_load(dir, ENG_WEIGHTS_F32, threads, err2, sizeof err2);
    double t3 = rs_now();
    CHECK(system(rm) == 0); /* the models keep their mappings; nothing is left behind */
    REQUIRE_MSG(a, "%s: %s", eng_weights_name(w), err);
    REQUIRE_MSG(r, "f32: %s", err2);
    CHECK(eng_model_weights(a) == w && eng_model_weights(r) == ENG_WEIGHTS_F32);
    CHECK((int)a->lm_head.type == wt && (int)a->enc.embed.type == wt &&
          (int)a->dec.layers[0].self.q.type == wt && (int)a->enc.layers[0].wo.type == wt);

    rs_stats st = { .cos_min = 1 };
    rs_compare(a, r, n_in, steps, &st);
    double t4 = rs_now();
    REQUIRE(st.steps == n_in * steps && st.cross_n > 0);
    CHECK_MSG(st.cross_sum / st.cross_n < 0.9,
              "F32 logits of consecutive positions: mean cosine %.4f: degenerate",
              st.cross_sum / st.cross_n);
    printf("%s vs F32, random %s (%s file; q RMS %.4g), %d inputs x %d "
           "teacher-forced steps = %d steps:\n"
           "  top-1 agreement %.1f%% (%d/%d), cosine min %.5f mean %.5f (required >= 0.995)\n"
           "  F32: top-1 margin mean %.3f, largest where %s's top-1 differs %.3f; "
           "consecutive positions' cosine mean %.3f max %.3f\n"
           "  time: mkmodel %.1f s, %s load %.1f s, f32 load %.1f s, compare %.1f s\n",
           eng_weights_name(w), cfg, dtype, q_rms, n_in, steps, st.steps,
           100.0 * st.top1 / st.steps, st.top1, st.steps, st.cos_min, st.cos_sum / st.steps,
           st.margin_sum / st.steps, eng_weights_name(w), st.flip_margin_max,
           st.cross_sum / st.cross_n, st.cross_max, t1 - t0, eng_weights_name(w), t2 - t1, t3 - t2,
           t4 - t3);
    eng_model_free(&a), eng_model_free(&r);
}
