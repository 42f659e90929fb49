/* bench_engine: engine speed on one model directory, through the public API only
 * (engine/engine.h), next to a matrix-product peak measured in the same run: the best of
 * OpenBLAS's sgemm and the engine's own door for products (eng_gemm, which takes many-row
 * products itself when OpenBLAS runs kernels narrower than the CPU).
 *
 *   bench_engine --model DIR [--threads 2] [--reps 3] [--weights auto|f32|bf16|f16|int8]
 *                [--target-enc-frac 0.6] [--target-decode-b1 100]
 *
 * --weights is the type the engine holds the matrix weights in (eng_model_params.weights);
 * a type the engine refuses is an error naming it (exit 1). After load the resident memory
 * is printed: the process's VmRSS and the engine's own count (eng_model_resident_bytes).
 *
 * Figures:
 *   encoder 1 x 512       eng_encode on one 512-token sequence
 *   encoder 8 x 128       batched: eng_generate of 8 x 128-token inputs with exactly one
 *                         new token, minus one batch-8 decode step (measured below); this
 *                         includes the cross-attention K/V projections, counted in its FLOPs
 *   encoder 8 x 128 seq   eight eng_encode calls of 128 tokens (no batching), for reference
 *   decode b1 / b8        greedy, 64 new tokens per sequence (min = max = 64: EOS ignored),
 *                         16-token inputs; tokens/s counts generated tokens of all rows
 * FLOPs: 2*M*N*K per matmul (projections, FF) + 2 * 2*n*n*inner for attention scores and
 * context; norms, softmax and activations are left out (they are < 1%).
 * Every figure is the best of --reps runs after a warm-up: on a shared machine the best
 * run is the one least disturbed. The load average is printed before and after, since
 * other processes on the cores lower every figure (and the product peak with them).
 * Exit status: 0 when everything ran (targets are reported, not enforced), 1 otherwise. */
#include "engine/engine.h"
#include "engine/eng_int.h" /* eng_gemm: the engine's door, for the peak */

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BE_NEW 64          /* new tokens per decode run */
#define BE_DEC_IN 16       /* encoder tokens per decode request */

static double be_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Deterministic token ids in [5, 32000), EOS (1) last, as the tokenizer would end them. */
static void be_ids(int32_t *ids, int n, uint32_t seed, int vocab)
{
    uint32_t x = seed * 2654435761u + 12345u;
    int hi = vocab < 32000 ? vocab : 32000;
    for (int i = 0; i < n - 1; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = 5 + (int32_t)((x >> 8) % (uint32_t)(hi - 5));
    }
    ids[n - 1] = 1;
}

/* ---- product peak: X[M,K] * W[N,K]^T, the layout of HF Linear weights, by OpenBLAS's
 * sgemm (door 0) or the engine's eng_gemm (door 1) ---- */

static double be_sgemm_gflops(int m, int n, int k, int reps, int door)
{
    float *a = malloc((size_t)m * k * sizeof *a);  /* [m, k] */
    float *b = malloc((size_t)n * k * sizeof *b);  /* [n, k] */
    float *c = malloc((size_t)m * n * sizeof *c);  /* [m, n] */
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)((i * 5) % 11) * 0.01f;
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* first run warms up */
        double t0 = be_now();
        if (door)
            eng_gemm(m, n, k, a, k, b, k, 1, 0.0f, c, n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        double t = be_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * m * n * k / best / 1e9;
}

/* ---- FLOP counts from the config ---- */

static double be_enc_flops(const eng_config *c, double n)
{
    double d = c->d_model, in = (double)c->num_heads * c->d_kv, f = c->d_ff;
    double per = 3 * 2 * n * d * in     /* q, k, v */
               + 2 * n * in * d         /* o */
               + 2 * 2 * n * n * in     /* scores + context */
               + (c->arch.gated ? 3 : 2) * 2 * n * d * f;
    return per * c->num_layers;
}

/* Cross-attention K and V of every decoder layer over n encoder tokens. */
static double be_cross_kv_flops(const eng_config *c, double n)
{
    return c->num_decoder_layers * 2 * 2 * n * c->d_model * ((double)c->num_heads * c->d_kv);
}

/* ---- engine runs ---- */

typedef struct be_batch {
    int n;
    int32_t *ids;            /* [n, len] */
    int len;
    eng_gen_params gp;
    eng_gen_req *reqs;       /* [n] */
    eng_gen_result *res;     /* [n] */
} be_batch;

static int be_batch_init(be_batch *b, int n, int len, int new_tokens, int vocab)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    b->len = len;
    b->ids = malloc((size_t)n * len * sizeof *b->ids);
    b->reqs = calloc((size_t)n, sizeof *b->reqs);
    b->res = calloc((size_t)n, sizeof *b->res);
    if (!b->ids || !b->reqs || !b->res) return -1;
    b->gp = eng_gen_default_params();
    b->gp.max_new_tokens = new_tokens;
    b->gp.min_new_tokens = new_tokens;
    for (int i = 0; i < n; i++) be_ids(b->ids + (size_t)i * len, len, 100 + i, vocab);
    return 0;
}

static void be_batch_free(be_batch *b)
{
    free(b->ids), free(b->reqs), free(b->res);
}

/* One eng_generate of the batch; seconds, or < 0 on error (message printed). *tokens
 * gets the number of generated tokens over all rows. */
static double be_generate(eng_ctx *ctx, be_batch *b, long *tokens)
{
    for (int i = 0; i < b->n; i++)
        b->reqs[i] = (eng_gen_req){ .ids = b->ids + (size_t)i * b->len, .n_ids = b->len,
                                    .params = &b->gp, .out = &b->res[i] };
    double t0 = be_now();
    int rc = eng_generate(ctx, b->reqs, b->n);
    double t = be_now() - t0;
    if (rc < 0) {
        fprintf(stderr, "bench_engine: eng_generate: %s\n", eng_strerror(rc));
        return -1;
    }
    long tok = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->reqs[i].status < 0) {
            fprintf(stderr, "bench_engine: eng_generate request %d: %s\n", i,
                    eng_strerror(b->reqs[i].status));
            return -1;
        }
        tok += b->res[i].n_hyps > 0 ? b->res[i].hyps[0].n_tokens : 0;
        eng_gen_result_clear(&b->res[i]);
    }
    *tokens = tok;
    return t;
}

/* Best of reps (after one warm-up run) of a generate; -1 on error. */
static double be_generate_best(eng_ctx *ctx, be_batch *b, int reps, long *tokens)
{
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t = be_generate(ctx, b, tokens);
        if (t < 0) return -1;
        if (r > 0 && t < best) best = t;
    }
    return best;
}

/* Best of reps of `count` eng_encode calls of n tokens each; -1 on error. */
static double be_encode_best(eng_ctx *ctx, const eng_config *c, int count, int n, int reps)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *out = malloc((size_t)n * c->d_model * sizeof *out); /* [n, d_model] */
    double best = -1;
    if (!ids || !out) goto done;
    best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = be_now();
        for (int i = 0; i < count; i++) {
            be_ids(ids, n, 7 + i, c->vocab_size);
            int rc = eng_encode(ctx, ids, n, out);
            if (rc < 0) {
                fprintf(stderr, "bench_engine: eng_encode: %s\n", eng_strerror(rc));
                best = -1;
                goto done;
            }
        }
        double t = be_now() - t0;
        if (r > 0 && t < best) best = t;
    }
done:
    free(ids), free(out);
    return best;
}

static void be_loadavg(const char *when)
{
    char buf[64] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("load average %s: %s\n", when, buf);
}

/* The process's resident set (VmRSS of /proc/self/status) in bytes; 0 if unknown. */
static size_t be_vmrss(void)
{
    char line[256];
    size_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

static void be_usage(FILE *to)
{
    fprintf(to, "usage: bench_engine --model DIR [--threads N] [--reps N] [--weights auto|f32|bf16|f16|int8]\n"
                "                    [--target-enc-frac F] [--target-decode-b1 TOK_S]\n");
}

static void be_row(const char *what, double secs, double tokens, double flops, double peak)
{
    printf("  %-34s %9.1f ms %11.1f", what, secs * 1e3, tokens / secs);
    if (flops > 0)
        printf(" %9.1f %8.0f%%\n", flops / secs / 1e9, 100.0 * flops / secs / 1e9 / peak);
    else
        printf(" %9s %9s\n", "-", "-");
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int threads = 2, reps = 3;
    double target_frac = 0, target_b1 = 0;
    int weights = ENG_WEIGHTS_AUTO;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            be_usage(stdout);
            return 0;
        }
    if (argc % 2 == 0) {
        fprintf(stderr, "bench_engine: option %s needs a value\n", argv[argc - 1]);
        be_usage(stderr);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--model") == 0) dir = argv[i + 1];
        else if (strcmp(argv[i], "--weights") == 0) {
            weights = eng_weights_parse(argv[i + 1]);
            if (weights < 0) {
                fprintf(stderr, "bench_engine: --weights must be auto, f32, bf16, f16 or int8, not '%s'\n",
                        argv[i + 1]);
                return 2;
            }
        }
        else if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--target-enc-frac") == 0) target_frac = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--target-decode-b1") == 0) target_b1 = atof(argv[i + 1]);
        else {
            fprintf(stderr, "bench_engine: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!dir || threads < 1 || reps < 1) {
        be_usage(stderr);
        return 2;
    }
    openblas_set_num_threads(threads);
    be_loadavg("at start");
    /* Measured before loading, so the machine's figure shows even if the engine fails. */
    double cube = be_sgemm_gflops(1024, 1024, 1024, reps + 2, 0);
    printf("sgemm 1024 x 1024 x 1024 (OpenBLAS, %d threads, best of %d): %.1f GFLOP/s\n", threads, reps + 2, cube);
    fflush(stdout);

    double t0 = be_now();
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    mp.weights = (eng_weights)weights;
    size_t rss0 = be_vmrss();
    char err[512] = "";
    eng_model *m = eng_model_load(dir, &mp, err, sizeof err);
    if (!m) {
        fprintf(stderr, "bench_engine: %s\n", err);
        return 1;
    }
    double t_load = be_now() - t0;
    const eng_config *c = eng_model_config(m);
    int inner = c->num_heads * c->d_kv;

    /* product peak with the encoder's own shapes at 8 x 128 = 1024 rows, and the cube. */
    struct { const char *name; int m, n, k; } shapes[] = {
        { "1024 x inner x d_model (q,k,v)", 1024, inner, c->d_model },
        { "1024 x d_ff x d_model (wi)", 1024, c->d_ff, c->d_model },
        { "1024 x d_model x d_ff (wo)", 1024, c->d_model, c->d_ff },
    };
    double peak = cube;
    printf("model %s: d_model %d, heads %d x d_kv %d, d_ff %d, layers %d+%d, %s, vocab %d; "
           "%d threads; load %.0f ms\n", dir, c->d_model, c->num_heads, c->d_kv, c->d_ff,
           c->num_layers, c->num_decoder_layers, c->arch.gated ? "gated-gelu" : "relu",
           c->vocab_size, threads, t_load * 1e3);
    size_t rss1 = be_vmrss();
    printf("weights %s (asked %s): resident after load %.0f MiB VmRSS (%.0f MiB before load), "
           "eng_model_resident_bytes %.0f MiB\n", eng_weights_name(eng_model_weights(m)),
           eng_weights_name(weights), rss1 / 1048576.0, rss0 / 1048576.0,
           eng_model_resident_bytes(m) / 1048576.0);
    printf("  GFLOP/s                            OpenBLAS  eng_gemm\n");
    printf("  %-34s %8.1f\n", "1024 x 1024 x 1024", cube);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double g = be_sgemm_gflops(shapes[i].m, shapes[i].n, shapes[i].k, reps + 2, 0);
        double e = be_sgemm_gflops(shapes[i].m, shapes[i].n, shapes[i].k, reps + 2, 1);
        printf("  %-34s %8.1f  %8.1f\n", shapes[i].name, g, e);
        if (g > peak) peak = g;
        if (e > peak) peak = e;
    }
    printf("  product peak                       %8.1f\n\n", peak);

    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 8;
    cp.max_input_len = 512;
    cp.max_new_tokens = BE_NEW;
    eng_ctx *ctx = eng_ctx_new(m, &cp, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_engine: %s\n", err);
        eng_model_free(&m);
        return 1;
    }

    int rc = 1;
    be_batch pre = { 0 }, d1 = { 0 }, d8 = { 0 };
    long tok = 0;
    printf("  %-34s %12s %11s %9s %9s\n", "", "time", "tokens/s", "GFLOP/s", "of peak");

    double t_enc512 = be_encode_best(ctx, c, 1, 512, reps);
    if (t_enc512 < 0) goto done;
    be_row("encoder 1 x 512", t_enc512, 512, be_enc_flops(c, 512), peak);

    double t_seq = be_encode_best(ctx, c, 8, 128, reps);
    if (t_seq < 0) goto done;
    be_row("encoder 8 x 128 (8 x eng_encode)", t_seq, 1024, 8 * be_enc_flops(c, 128), peak);

    if (be_batch_init(&pre, 8, 128, 1, c->vocab_size) != 0 ||
        be_batch_init(&d1, 1, BE_DEC_IN, BE_NEW, c->vocab_size) != 0 ||
        be_batch_init(&d8, 8, BE_DEC_IN, BE_NEW, c->vocab_size) != 0) {
        fprintf(stderr, "bench_engine: out of memory\n");
        goto done;
    }
    /* Decode runs first: the batched encoder figure subtracts one batch-8 step. */
    double t_d1 = be_generate_best(ctx, &d1, reps, &tok);
    if (t_d1 < 0) goto done;
    long tok1 = tok;
    double t_d8 = be_generate_best(ctx, &d8, reps, &tok);
    if (t_d8 < 0) goto done;
    long tok8 = tok;
    d8.gp.max_new_tokens = d8.gp.min_new_tokens = 1;
    double t_d8_1 = be_generate_best(ctx, &d8, reps, &tok);
    if (t_d8_1 < 0) goto done;
    double step8 = (t_d8 - t_d8_1) / (BE_NEW - 1); /* one batch-8 decode step */
    double t_pre = be_generate_best(ctx, &pre, reps, &tok);
    if (t_pre < 0) goto done;
    double t_enc8 = t_pre - step8;
    if (t_enc8 <= 0) t_enc8 = t_pre; /* noise: keep the figure conservative */
    double f_enc8 = 8 * be_enc_flops(c, 128) + be_cross_kv_flops(c, 1024);
    be_row("encoder 8 x 128 (batched prefill)", t_enc8, 1024, f_enc8, peak);

    if (tok1 != BE_NEW || tok8 != 8 * BE_NEW)
        printf("  note: generated %ld / %ld tokens, expected %d / %d (min_new_tokens ignored?)\n",
               tok1, tok8, BE_NEW, 8 * BE_NEW);
    be_row("greedy decode batch 1 (64 new)", t_d1, (double)tok1, 0, peak);
    be_row("greedy decode batch 8 (64 new)", t_d8, (double)tok8, 0, peak);
    printf("  %-34s %9.2f ms/step (batch 8), %.2f ms/step (batch 1, incl. prefill)\n",
           "decode step", step8 * 1e3, t_d1 / BE_NEW * 1e3);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  %-34s %9.0f MiB\n", "peak RSS", ru.ru_maxrss / 1024.0);
    be_loadavg("at end");

    double frac = f_enc8 / t_enc8 / 1e9 / peak;
    if (target_frac > 0)
        printf("  target: encoder 8 x 128 >= %.0f%% of product peak: %s (%.0f%%)\n", target_frac * 100,
               frac >= target_frac ? "MET" : "NOT MET", frac * 100);
    if (target_b1 > 0)
        printf("  target: greedy decode batch 1 >= %.0f tokens/s: %s (%.1f)\n", target_b1,
               tok1 / t_d1 >= target_b1 ? "MET" : "NOT MET", tok1 / t_d1);
    rc = 0;
done:
    be_batch_free(&pre), be_batch_free(&d1), be_batch_free(&d8);
    eng_ctx_free(&ctx);
    eng_model_free(&m);
    return rc;
}
