/* Weight types (issue 16): the BF16/F16 kernels against the F32 kernels and a double
 * reference over odd shapes; the widening itself (every F16 value); products called from
 * two threads at once; the tiny checkpoints converted to BF16 and F16 files and run in
 * place against the same files widened to F32 (every golden case: greedy and beam tokens,
 * logits, encoder output); --weights bf16 on an F32 checkpoint against the same rounding
 * done in a file; int8 against F32 (per-step top-1 agreement and cosine of the logits). */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- conversions written independently of model.c's ---- */

static uint16_t wt_bf16(float f) /* round to nearest even, finite f */
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t lsb = (u >> 16) & 1u;
    return (uint16_t)((u + 0x7fffu + lsb) >> 16);
}

static uint16_t wt_f16(float f) /* by frexp and nearbyint (round to nearest even) */
{
    uint16_t sign = signbit(f) ? 0x8000u : 0;
    double a = fabs((double)f);
    if (a == 0) return sign;
    if (a < 0x1p-14) return sign | (uint16_t)nearbyint(a * 0x1p24);
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    e -= 1;       /* a = 1.x 2^e */
    double q = nearbyint(a * ldexp(1.0, 10 - e));
    if (q >= 2048) q /= 2, e++;
    if (e > 15) return sign | 0x7c00u;
    return sign | (uint16_t)((e + 15) << 10 | ((int)q - 1024));
}

static float wt_widen(int wt, uint16_t h)
{
    return wt == ENG_W_BF16 ? eng_bf16_to_f32(h) : eng_f16_to_f32(h);
}

static uint32_t wt_rng = 12345;
static float wt_rand(void) /* in [-1, 1) */
{
    wt_rng = wt_rng * 1664525u + 1013904223u;
    return (float)((wt_rng >> 8) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

/* ---- kernels ---- */

/* Every F16 bit pattern widens as eng_f16_to_f32 widens it (the vector path's 16 at a
 * time and its scalar tail), NaNs staying NaNs. */
TEST(eng_wt_widen_every_f16)
{
    static uint16_t h[65536 + 7];
    static float out[65536 + 7];
    for (int i = 0; i < 65536 + 7; i++) h[i] = (uint16_t)i;
    eng_wrow(ENG_W_F16, h, 65536 + 7, 0, 65536 + 7, out);
    int bad = 0;
    for (int i = 0; i < 65536 + 7; i++) {
        float want = eng_f16_to_f32(h[i]);
        if (isnan(want) ? !isnan(out[i]) : memcmp(&want, &out[i], 4) != 0) {
            if (bad++ < 5)
                th_fail(__FILE__, __LINE__, "f16 %04x -> %a, want %a", h[i], out[i], want);
        }
    }
    CHECK(bad == 0);
    eng_wrow(ENG_W_BF16, h, 65536 + 7, 0, 65536 + 7, out);
    for (int i = 0; i < 65536 + 7; i++) {
        float want = eng_bf16_to_f32(h[i]);
        if (isnan(want) ? !isnan(out[i]) : memcmp(&want, &out[i], 4) != 0) bad++;
    }
    CHECK_MSG(bad == 0, "%d BF16 values widened wrong", bad);
    /* the converters of this test agree with the engine's widening */
    for (int i = 0; i < 65536; i++) {
        float f = eng_f16_to_f32((uint16_t)i);
        if (isfinite(f))
            CHECK_MSG(wt_f16(f) == i || (f == 0 && (wt_f16(f) & 0x7fff) == 0),
                      "wt_f16(%a) = %04x, want %04x", f, wt_f16(f), i);
    }
}

/* C = A W^T with W in BF16 / F16: bitwise the product with W widened to F32 (the few-rows
 * and the packed kernel, 1 and 2 threads, rows alone against the batch), and within
 * the F32 rounding of a double reference, over shapes with K not a multiple of 16. */
TEST(eng_wt_half_kernels)
{
    static const int Ms[] = { 1, 3, 17, 64, 300 }, Ks[] = { 1, 15, 33, 100, 517 },
                     Ns[] = { 1, 19, 45 };
    int maxM = 300, maxK = 517, maxN = 45;
    float *A = malloc(sizeof(float) * maxM * maxK), *Wf = malloc(sizeof(float) * maxN * maxK);
    uint16_t *Wh = malloc(2 * (size_t)maxN * maxK);
    float *C = malloc(sizeof(float) * maxM * maxN), *Cf = malloc(sizeof(float) * maxM * maxN);
    float *C1 = malloc(sizeof(float) * maxN), *Cm = malloc(sizeof(float) * maxM * maxN);
    REQUIRE(A && Wf && Wh && C && Cf && C1 && Cm);
    double worst = 0;
    int cases = 0;
    for (int wt = ENG_W_BF16; wt <= ENG_W_F16; wt++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++) {
                    int M = Ms[mi], K = Ks[ki], N = Ns[ni];
                    for (int i = 0; i < M * K; i++) A[i] = wt_rand();
                    for (int i = 0; i < N * K; i++) {
                        float v = wt_rand() * (i % 7 == 0 ? 4.0f : 0.5f);
                        Wh[i] = wt == ENG_W_BF16 ? wt_bf16(v) : wt_f16(v);
                        Wf[i] = wt_widen(wt, Wh[i]);
                    }
                    eng_set_threads(2);
                    eng_gemm_w(M, N, K, A, K, wt, Wh, K, 0.0f, C, N);
                    eng_gemm_w(M, N, K, A, K, ENG_W_F32, Wf, K, 0.0f, Cf, N);
                    CHECK_MSG(memcmp(C, Cf, sizeof(float) * M * N) == 0,
                              "wt %d M %d K %d N %d: differs from the F32 widening", wt, M, K, N);
                    eng_set_threads(1);
                    eng_gemm_w(M, N, K, A, K, wt, Wh, K, 0.0f, Cf, N);
                    CHECK_MSG(memcmp(C, Cf, sizeof(float) * M * N) == 0,
                              "wt %d M %d K %d N %d: 1 and 2 threads differ", wt, M, K, N);
                    /* the packed kernel whatever M, and a row alone */
                    REQUIRE(eng_gemm_many_w(M, N, K, A, K, wt, Wh, K, 0.0f, Cm, N) == 0);
                    CHECK_MSG(memcmp(C, Cm, sizeof(float) * M * N) == 0,
                              "wt %d M %d K %d N %d: packed kernel differs", wt, M, K, N);
                    int r = M / 2;
                    eng_gemm_w(1, N, K, A + (size_t)r * K, K, wt, Wh, K, 0.0f, C1, N);
                    CHECK_MSG(memcmp(C1, C + (size_t)r * N, sizeof(float) * N) == 0,
                              "wt %d M %d K %d N %d: row %d alone differs", wt, M, K, N, r);
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < N; n++) {
                            double ref = 0, mag = 0;
                            for (int k = 0; k < K; k++) {
                                ref += (double)A[m * K + k] * Wf[n * K + k];
                                mag += fabs((double)A[m * K + k] * Wf[n * K + k]);
                            }
                            double err = fabs(C[m * N + n] - ref) / (mag + 1e-30);
                            if (err > worst) worst = err;
                        }
                    cases++;
                }
    eng_set_threads(2);
    /* beta: C = A W^T + beta C on the half path too */
    for (int i = 0; i < 17 * 19; i++) C[i] = Cf[i] = (float)i * 0.25f;
    eng_gemm_w(17, 19, 33, A, 33, ENG_W_BF16, Wh, 33, 0.5f, C, 19);
    for (int i = 0; i < 19 * 33; i++) Wf[i] = eng_bf16_to_f32(Wh[i]);
    eng_gemm_w(17, 19, 33, A, 33, ENG_W_F32, Wf, 33, 0.5f, Cf, 19);
    CHECK(memcmp(C, Cf, sizeof(float) * 17 * 19) == 0);
    printf("%d shapes x 2 types: bitwise equal to the F32 widening; worst error against double "
           "%.3g of sum|a w|\n",
           cases / 2, worst);
    CHECK_MSG(worst < 1e-5, "relative error %g", worst);
    free(A), free(Wf), free(Wh), free(C), free(Cf), free(C1), free(Cm);
}

/* ---- two threads at once ---- */

typedef struct wt_job {
    int M, N, K, wt;
    const float *A;
    const void *W;
    float *C;
    int rounds;
} wt_job;

static void *wt_run(void *arg)
{
    wt_job *j = arg;
    eng_set_threads(2);
    for (int r = 0; r < j->rounds; r++)
        eng_gemm_w(j->M, j->N, j->K, j->A, j->K, j->wt, j->W, j->K, 0.0f, j->C, j->N);
    return NULL;
}

/* Products from two threads at once (each packing into its own buffer, no lock) give
 * the bits they give one at a time: packed shapes of different K (the buffers differ in
 * size), F32 and BF16. */
TEST(eng_wt_two_threads_same_bits)
{
    enum { M = 96, N = 200 };
    static const int Ks[2] = { 384, 1000 };
    float *A[2], *W[2], *ref[2], *got[2];
    uint16_t *Wh = malloc(2 * (size_t)N * Ks[1]);
    REQUIRE(Wh);
    for (int t = 0; t < 2; t++) {
        int K = Ks[t];
        A[t] = malloc(sizeof(float) * M * K), W[t] = malloc(sizeof(float) * N * K);
        ref[t] = malloc(sizeof(float) * M * N), got[t] = malloc(sizeof(float) * M * N);
        REQUIRE(A[t] && W[t] && ref[t] && got[t]);
        for (int i = 0; i < M * K; i++) A[t][i] = wt_rand();
        for (int i = 0; i < N * K; i++) W[t][i] = wt_rand();
    }
    for (int i = 0; i < N * Ks[1]; i++) Wh[i] = wt_bf16(W[1][i]);
    wt_job j[2] = {
        { M, N, Ks[0], ENG_W_F32, A[0], W[0], ref[0], 1 },
        { M, N, Ks[1], ENG_W_BF16, A[1], Wh, ref[1], 1 },
    };
    wt_run(&j[0]);
    wt_run(&j[1]);
    for (int round = 0; round < 3; round++) {
        pthread_t th[2];
        for (int t = 0; t < 2; t++) {
            j[t].C = got[t], j[t].rounds = 20;
            REQUIRE(pthread_create(&th[t], NULL, wt_run, &j[t]) == 0);
        }
        for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
        for (int t = 0; t < 2; t++)
            CHECK_MSG(memcmp(ref[t], got[t], sizeof(float) * M * N) == 0,
                      "round %d: thread %d's product differs from its product alone", round, t);
    }
    for (int t = 0; t < 2; t++) free(A[t]), free(W[t]), free(ref[t]), free(got[t]);
    free(Wh);
}

/* ---- checkpoints converted to BF16 / F16 files ---- */

static void wt_rmdir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* Converted by wt_convert: mats_only, the matrices the engine holds typed (not the
 * position and relative-bias tables it holds as F32). */
static int wt_conv(const st_tensor *t, int mats_only)
{
    return !mats_only || (t->ndim == 2 && !strstr(t->name, "relative_attention_bias") &&
                          !strstr(t->name, "embed_positions"));
}

/* dst (a new temp dir) = src with model.safetensors rewritten: every tensor (mats_only:
 * every 2-D tensor) of F32 or BF16/F16 as type `to` (ENG_W_BF16 / ENG_W_F16); the other
 * files are linked. */
static void wt_convert(const char *src, char *dst, size_t dstlen, int to, int mats_only)
{
    char path[700], err[512], abs[512];
    REQUIRE(realpath(src, abs));
    src = abs;
    snprintf(dst, dstlen, "/tmp/nlpd-wt-XXXXXX");
    REQUIRE(mkdtemp(dst));
    snprintf(path, sizeof path,
             "for f in '%s'/*; do case \"$f\" in *.safetensors|*golden*) ;; "
             "*) ln -s \"$f\" '%s'/ ;; esac; done",
             src, dst);
    REQUIRE(system(path) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    st_set *s = st_open_file(path, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    cJSON *h = cJSON_CreateObject();
    size_t total = 0;
    for (int i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_at(s, i);
        int conv = wt_conv(t, mats_only);
        total += conv ? t->nbytes / st_dtype_size(t->dtype) * 2 : t->nbytes;
    }
    unsigned char *data = malloc(total ? total : 1);
    REQUIRE(data);
    size_t o = 0;
    for (int i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_at(s, i);
        int conv = wt_conv(t, mats_only);
        size_t n = t->nbytes / st_dtype_size(t->dtype);
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(
            e, "dtype", conv ? (to == ENG_W_BF16 ? "BF16" : "F16") : st_dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        size_t len = conv ? 2 * n : t->nbytes;
        for (size_t k = 0; conv && k < n; k++) {
            float v;
            if (t->dtype == ST_F32) {
                memcpy(&v, (const char *)t->data + 4 * k, 4);
            } else {
                uint16_t x;
                memcpy(&x, (const char *)t->data + 2 * k, 2);
                v = t->dtype == ST_F16 ? eng_f16_to_f32(x) : eng_bf16_to_f32(x);
            }
            uint16_t y = to == ENG_W_BF16 ? wt_bf16(v) : wt_f16(v);
            memcpy(data + o + 2 * k, &y, 2);
        }
        if (!conv) memcpy(data + o, t->data, t->nbytes);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)o));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(o + len)));
        o += len;
    }
    char *js = cJSON_PrintUnformatted(h);
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8; /* data 8-byte aligned in the file */
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    uint64_t L = hl + pad;
    fwrite(&L, 8, 1, f);
    fwrite(js, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fwrite(data, 1, o, f);
    REQUIRE(fclose(f) == 0);
    free(js), free(data), cJSON_Delete(h), st_close(&s);
}

static eng_model *wt_load(const char *dir, eng_weights w)
{
    char err[512];
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1, mp.weights = w; /* 2-thread bits: eng_wt_half_kernels */
    eng_model *m = eng_model_load(dir, &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s (weights %s)", err, eng_weights_name(w));
    return m;
}

static cJSON *wt_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

static eng_gen_params wt_params(const cJSON *j)
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
    return p;
}

static int wt_same_hyps(const eng_gen_result *a, const eng_gen_result *b)
{
    if (a->n_hyps != b->n_hyps) return 0;
    for (int i = 0; i < a->n_hyps; i++)
        if (a->hyps[i].n_tokens != b->hyps[i].n_tokens ||
            memcmp(a->hyps[i].tokens, b->hyps[i].tokens, sizeof(int32_t) * a->hyps[i].n_tokens))
            return 0;
    return 1;
}

typedef struct wt_stats {
    int cases, gens, steps, top1;
    double enc_max, lg_max, cos_min;
} wt_stats;

/* Every golden case of model dir `gold` run on a (the type under test) and r (the
 * reference): encoder outputs, the logits at the first `steps` decoder positions of the
 * reference's greedy tokens, and (tokens) the greedy and beam tokens. Fills st. */
static void wt_compare(const char *gold, eng_model *a, eng_model *r, int steps, int tokens,
                       wt_stats *st)
{
    char err[512];
    cJSON *g = wt_json(gold);
    REQUIRE_MSG(g, "cannot read %s", gold);
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 8;
    eng_ctx *ca = eng_ctx_new(a, &cp, err, sizeof err), *cr = eng_ctx_new(r, &cp, err, sizeof err);
    REQUIRE_MSG(ca && cr, "%s", err);
    const eng_config *cf = eng_model_config(r);
    int V = cf->vocab_size, D = cf->d_model;
    float *ea = malloc(sizeof(float) * 512 * D), *er = malloc(sizeof(float) * 512 * D);
    float *la = malloc(sizeof(float) * V), *lr = malloc(sizeof(float) * V);
    REQUIRE(ea && er && la && lr);
    const cJSON *cs;
    cJSON_ArrayForEach (cs, cJSON_GetObjectItem(g, "cases")) {
        int32_t ids[512], dec[64];
        int n = th_ids(cJSON_GetObjectItem(cs, "input_ids"), ids, 512);
        REQUIRE(n > 0 && n <= 512);
        REQUIRE(eng_encode(ca, ids, n, ea) == 0);
        REQUIRE(eng_encode(cr, ids, n, er) == 0);
        for (int i = 0; i < n * D; i++)
            st->enc_max = fmax(st->enc_max, fabs((double)ea[i] - er[i]));
        st->cases++;
        const cJSON *greedy = cJSON_GetObjectItem(cs, "greedy");
        if (!greedy) continue; /* a classifier */
        eng_gen_params gp = wt_params(cJSON_GetObjectItem(greedy, "params"));
        gp.num_beams = 1, gp.num_return_sequences = 1;
        gp.max_new_tokens = cJSON_GetObjectItem(greedy, "max_new_tokens")->valueint;
        eng_gen_result ra = { 0 }, rr = { 0 };
        eng_gen_req qa = { .ids = ids, .n_ids = n, .params = &gp, .out = &ra };
        eng_gen_req qr = { .ids = ids, .n_ids = n, .params = &gp, .out = &rr };
        REQUIRE(eng_generate(cr, &qr, 1) == 0 && qr.status == 0);
        if (tokens) {
            REQUIRE(eng_generate(ca, &qa, 1) == 0 && qa.status == 0);
            CHECK_MSG(wt_same_hyps(&ra, &rr), "%s: greedy tokens differ", gold);
            st->gens++;
            const cJSON *b;
            cJSON_ArrayForEach (b, cJSON_GetObjectItem(cs, "beam")) {
                eng_gen_params bp = wt_params(cJSON_GetObjectItem(b, "params"));
                eng_gen_result ba = { 0 }, br = { 0 };
                eng_gen_req xa = { .ids = ids, .n_ids = n, .params = &bp, .out = &ba };
                eng_gen_req xr = { .ids = ids, .n_ids = n, .params = &bp, .out = &br };
                REQUIRE(eng_generate(ca, &xa, 1) == 0 && xa.status == 0);
                REQUIRE(eng_generate(cr, &xr, 1) == 0 && xr.status == 0);
                CHECK_MSG(wt_same_hyps(&ba, &br), "%s: beam tokens differ", gold);
                st->gens++;
                eng_gen_result_clear(&ba), eng_gen_result_clear(&br);
            }
        }
        /* logits along the reference's greedy path */
        dec[0] = cf->decoder_start_token_id;
        int k = rr.hyps[0].n_tokens < steps ? rr.hyps[0].n_tokens : steps;
        memcpy(dec + 1, rr.hyps[0].tokens, sizeof(int32_t) * k);
        for (int s = 0; s <= k && s < steps; s++) {
            REQUIRE(eng_logits(ca, ids, n, dec, s + 1, la) == 0);
            REQUIRE(eng_logits(cr, ids, n, dec, s + 1, lr) == 0);
            double dot = 0, na = 0, nr = 0;
            int ta = 0, tr = 0;
            for (int v = 0; v < V; v++) {
                st->lg_max = fmax(st->lg_max, fabs((double)la[v] - lr[v]));
                dot += (double)la[v] * lr[v], na += (double)la[v] * la[v],
                    nr += (double)lr[v] * lr[v];
                if (la[v] > la[ta]) ta = v;
                if (lr[v] > lr[tr]) tr = v;
            }
            st->cos_min = fmin(st->cos_min, dot / sqrt(na * nr));
            st->steps++, st->top1 += ta == tr;
        }
        eng_gen_result_clear(&ra), eng_gen_result_clear(&rr);
    }
    free(ea), free(er), free(la), free(lr);
    eng_ctx_free(&ca), eng_ctx_free(&cr);
    cJSON_Delete(g);
}

static const struct {
    const char *dir, *gold;
} wt_models[] = {
    { "models/tiny-t5", "golden/tiny-t5.json" },
    { "models/tiny-flan", "golden/tiny-flan.json" },
    { "families/models/tiny-bart", "families/models/tiny-bart/golden.json" },
    { "families/models/tiny-bart-mnli", "families/models/tiny-bart-mnli/golden.json" },
    { "families/models/tiny-m2m100", "families/models/tiny-m2m100/golden.json" },
    { "families/models/tiny-marian", "families/models/tiny-marian/golden.json" },
    { "families/models/tiny-mbart", "families/models/tiny-mbart/golden.json" },
    { "families/models/tiny-t5-es", "families/models/tiny-t5-es/golden.json" },
};
#define WT_NMODELS (int)(sizeof wt_models / sizeof *wt_models)

/* A tiny checkpoint converted to a BF16 (F16) file, loaded as it is (auto: the matrices
 * in place from the mmap, nothing widened but the norms) against the same file widened to
 * F32 at load: on every golden case the same greedy and beam tokens, and logits and
 * encoder outputs within 1e-4 (the widening is exact and the order of each sum the
 * same, so they are equal). */
static void wt_half_in_place(int wt)
{
    double lg = 0, enc = 0;
    int cases = 0, gens = 0;
    for (int i = 0; i < WT_NMODELS; i++) {
        char dir[64];
        wt_convert(th_data(wt_models[i].dir), dir, sizeof dir, wt, 0);
        eng_model *a = wt_load(dir, ENG_WEIGHTS_AUTO), *r = wt_load(dir, ENG_WEIGHTS_F32);
        CHECK_MSG(eng_model_weights(a) == (wt == ENG_W_BF16 ? ENG_WEIGHTS_BF16 : ENG_WEIGHTS_F16),
                  "%s: held as %s", wt_models[i].dir, eng_weights_name(eng_model_weights(a)));
        CHECK((int)a->lm_head.type == wt && (int)a->enc.embed.type == wt &&
              (int)a->dec.layers[0].wo.type == wt);
        /* in place: the widening load owns the matrices as F32, twice the bytes that the
         * in-place load maps (both own the same widened norms and computed tables) */
        CHECK_MSG(r->owned_bytes - a->owned_bytes == 2 * a->mapped_bytes,
                  "%s: owned %zu (widened %zu), mapped %zu", wt_models[i].dir, a->owned_bytes,
                  r->owned_bytes, a->mapped_bytes);
        wt_stats st = { .cos_min = 1 };
        wt_compare(th_data(wt_models[i].gold), a, r, 3, 1, &st);
        CHECK_MSG(st.lg_max <= 1e-4 && st.enc_max <= 1e-4,
                  "%s: logits differ by %.3g, encoder by %.3g", wt_models[i].dir, st.lg_max,
                  st.enc_max);
        CHECK(st.cases > 0);
        lg = fmax(lg, st.lg_max), enc = fmax(enc, st.enc_max);
        cases += st.cases, gens += st.gens;
        eng_model_free(&a), eng_model_free(&r);
        wt_rmdir(dir);
    }
    printf("%s in place vs widened to F32: %d models, %d cases, %d generations with the same "
           "tokens; logits max diff %.3g, encoder output max diff %.3g\n",
           wt == ENG_W_BF16 ? "BF16" : "F16", WT_NMODELS, cases, gens, lg, enc);
}

TEST_TIMEOUT(eng_wt_bf16_in_place_golden, 300) { wt_half_in_place(ENG_W_BF16); }

TEST_TIMEOUT(eng_wt_f16_in_place_golden, 300) { wt_half_in_place(ENG_W_F16); }

/* --weights bf16 / f16 on an F32 checkpoint rounds the matrices once at load: the same
 * results, bit for bit, as a file whose matrices were rounded the same way beforehand
 * (norms and biases F32 in both), and the model then owns only the rounded copies. */
TEST_TIMEOUT(eng_wt_convert_at_load, 120)
{
    for (int wt = ENG_W_BF16; wt <= ENG_W_F16; wt++) {
        char dir[64];
        wt_convert(th_data("models/tiny-t5"), dir, sizeof dir, wt, 1);
        eng_model *a = wt_load(th_data("models/tiny-t5"),
                               wt == ENG_W_BF16 ? ENG_WEIGHTS_BF16 : ENG_WEIGHTS_F16);
        eng_model *r = wt_load(dir, ENG_WEIGHTS_AUTO);
        CHECK((int)a->lm_head.type == wt && (int)r->lm_head.type == wt);
        CHECK_MSG(a->owned_bytes == r->mapped_bytes - (a->mapped_bytes), /* matrices */
                  "owned %zu, file's matrices %zu", a->owned_bytes,
                  r->mapped_bytes - a->mapped_bytes);
        wt_stats st = { .cos_min = 1 };
        wt_compare(th_data("golden/tiny-t5.json"), a, r, 3, 1, &st);
        CHECK_MSG(st.lg_max == 0 && st.enc_max == 0, "logits differ by %.3g, encoder by %.3g",
                  st.lg_max, st.enc_max);
        eng_model_free(&a), eng_model_free(&r);
        wt_rmdir(dir);
    }
}

/* int8 (quantized at load from the checkpoint's own type) against F32: per-step top-1
 * agreement and the cosine of the logits vectors at the first 8 steps of every golden
 * case's F32 greedy path; cosine >= 0.995 at every step. */
TEST_TIMEOUT(eng_wt_int8_accuracy, 300)
{
    int steps = 0, top1 = 0;
    double cos_min = 1;
    for (int i = 0; i < WT_NMODELS; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s", th_data(wt_models[i].dir));
        eng_model *a = wt_load(dir, ENG_WEIGHTS_INT8), *r = wt_load(dir, ENG_WEIGHTS_F32);
        CHECK(eng_model_weights(a) == ENG_WEIGHTS_INT8);
        CHECK(a->lm_head.type == ENG_W_I8 && a->enc.embed.type == ENG_W_I8 &&
              a->dec.layers[0].self.q.type == ENG_W_I8);
        wt_stats st = { .cos_min = 1 };
        wt_compare(th_data(wt_models[i].gold), a, r, 8, 0, &st);
        printf("int8 %-32s %3d steps: top-1 agreement %5.1f%%, min cosine %.5f\n", wt_models[i].dir,
               st.steps, st.steps ? 100.0 * st.top1 / st.steps : 0, st.cos_min);
        CHECK_MSG(st.cos_min >= 0.995, "%s: cosine %.5f < 0.995", wt_models[i].dir, st.cos_min);
        steps += st.steps, top1 += st.top1, cos_min = fmin(cos_min, st.cos_min);
        eng_model_free(&a), eng_model_free(&r);
    }
    CHECK(steps > 0);
    printf("int8 vs F32: %d steps, top-1 agreement %.1f%%, min cosine %.5f\n", steps,
           100.0 * top1 / steps, cos_min);
}

/* ---- the int8 cache file ---- */

/* stderr into a file while f runs, then the file's text in out. */
static void wt_stderr_to(const char *path, int on)
{
    static int saved = -1;
    fflush(stderr);
    if (on) {
        saved = dup(2);
        FILE *f = fopen(path, "w");
        REQUIRE(f && saved >= 0);
        dup2(fileno(f), 2);
        fclose(f);
    } else {
        dup2(saved, 2);
        close(saved);
    }
}

static void wt_read(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    size_t k = f ? fread(out, 1, n - 1, f) : 0;
    out[k] = 0;
    if (f) fclose(f);
}

/* Loads dir as int8 with stderr captured into msg; the logits of one input into lg. */
static eng_model *wt_q8_load(const char *dir, char *msg, size_t msglen, float *lg)
{
    char log[700];
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    wt_stderr_to(log, 1);
    eng_model *m = wt_load(dir, ENG_WEIGHTS_INT8);
    wt_stderr_to(log, 0);
    wt_read(log, msg, msglen);
    char err[512];
    eng_ctx *c = eng_ctx_new(m, NULL, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    static const int32_t ids[] = { 13959, 1566, 12, 2968, 10, 8774, 1 }, dec[] = { 0, 8774 };
    REQUIRE(eng_logits(c, ids, 7, dec, 2, lg) == 0);
    eng_ctx_free(&c);
    return m;
}

static long wt_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* --weights int8 writes model.q8 beside the checkpoint once and maps it on the next load
 * (the same logits, bit for bit, and no quantized copy owned); a truncated file, a flipped
 * byte in a blob, a damaged header and a changed checkpoint are each refused with their
 * reason, the model is quantized again (same logits) and the file written anew. */
TEST_TIMEOUT(eng_wt_int8_cache_file, 120)
{
    char dir[64], q8[128], cmd[2048], msg[2048];
    snprintf(dir, sizeof dir, "/tmp/nlpd-wt-XXXXXX");
    REQUIRE(mkdtemp(dir));
    char abs[512];
    REQUIRE(realpath(th_data("models/tiny-flan"), abs));
    snprintf(cmd, sizeof cmd, "cp '%s'/config.json '%s'/model.safetensors '%s'/", abs, abs, dir);
    REQUIRE(system(cmd) == 0);
    snprintf(q8, sizeof q8, "%s/model.q8", dir);
    REQUIRE(setenv("NLPD_Q8_CACHE", "1", 1) == 0); /* this test's process only */
    int V = 32128;
    float *ref = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * V);
    REQUIRE(ref && lg);

    eng_model *m = wt_q8_load(dir, msg, sizeof msg, ref);
    CHECK_MSG(msg[0] == 0, "first load said: %s", msg);
    size_t quantized = m->owned_bytes;
    eng_model_free(&m);
    long size = wt_size(q8);
    CHECK_MSG(size > (long)quantized / 2, "model.q8 is %ld bytes", size);

    m = wt_q8_load(dir, msg, sizeof msg, lg); /* from the file */
    CHECK_MSG(msg[0] == 0, "second load said: %s", msg);
    CHECK(memcmp(ref, lg, sizeof(float) * V) == 0);
    CHECK_MSG(m->owned_bytes + quantized / 2 < quantized, "owned %zu of %zu: blobs not mapped",
              m->owned_bytes, quantized);
    eng_model_free(&m);

    static const struct {
        const char *damage, *want;
    } cases[] = {
        { "truncate -s 1000 '%s'", "truncated" },
        { "flip", "is damaged" },
        { "printf 'XX' | dd of='%s' bs=1 seek=0 conv=notrunc status=none", "bad magic" },
        { "touch -d '2001-01-01' '%s'/../model.safetensors", "made from another checkpoint" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (!strcmp(cases[i].damage, "flip")) { /* 4 bytes inside the first blob */
            FILE *f = fopen(q8, "r+b");
            uint64_t off = 0;
            REQUIRE(f && fseek(f, 64 + 232 + 8, SEEK_SET) == 0 && fread(&off, 8, 1, f) == 1);
            REQUIRE(fseek(f, (long)off + 300, SEEK_SET) == 0);
            REQUIRE(fwrite("\xff\xff\xff\xff", 1, 4, f) == 4 && fclose(f) == 0);
        } else {
            if (strstr(cases[i].damage, "/../"))
                snprintf(cmd, sizeof cmd, "touch -d '2001-01-01' '%s/model.safetensors'", dir);
            else snprintf(cmd, sizeof cmd, cases[i].damage, q8);
            REQUIRE(system(cmd) == 0);
        }
        m = wt_q8_load(dir, msg, sizeof msg, lg);
        CHECK_MSG(strstr(msg, cases[i].want) && strstr(msg, "quantizing the model from its "
                                                            "checkpoint again"),
                  "case %zu: said '%s', want '%s'", i, msg, cases[i].want);
        CHECK_MSG(memcmp(ref, lg, sizeof(float) * V) == 0, "case %zu: logits differ", i);
        eng_model_free(&m);
        CHECK_MSG(wt_size(q8) == size, "case %zu: model.q8 not written again", i);
        m = wt_q8_load(dir, msg, sizeof msg, lg); /* and valid again */
        CHECK_MSG(msg[0] == 0, "case %zu: the rewritten file said: %s", i, msg);
        CHECK(memcmp(ref, lg, sizeof(float) * V) == 0);
        eng_model_free(&m);
    }
    /* a directory that cannot be written: the model loads, the reason is said */
    snprintf(cmd, sizeof cmd, "rm -f '%s' && chmod 555 '%s'", q8, dir);
    REQUIRE(system(cmd) == 0);
    if (access(dir, W_OK) != 0) { /* (root writes anyway) */
        char log[128];
        snprintf(log, sizeof log, "/tmp/nlpd-wt-log-%d", (int)getpid());
        wt_stderr_to(log, 1);
        m = wt_load(dir, ENG_WEIGHTS_INT8);
        wt_stderr_to(log, 0);
        wt_read(log, msg, sizeof msg);
        unlink(log);
        CHECK_MSG(strstr(msg, "not written"), "read-only dir said '%s'", msg);
        eng_model_free(&m);
    }
    snprintf(cmd, sizeof cmd, "chmod 755 '%s'", dir);
    REQUIRE(system(cmd) == 0);
    wt_rmdir(dir);
    free(ref), free(lg);
}
