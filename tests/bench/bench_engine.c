/* bench_engine: engine speed on one model directory, through the public API only
 * (engine/engine.h), next to a matrix-product peak measured in the same run: the best of
 * OpenBLAS's sgemm and the engine's own door for products (eng_gemm, which takes many-row
 * products itself when OpenBLAS runs kernels narrower than the CPU).
 *
 *   bench_engine --model DIR [--threads 2] [--reps 3] [--warmup 1]
 *                [--weights auto|f32|bf16|f16|int8] [--only peak,encoder,greedy,beam4]
 *                [--batch 1,16] [--new-tokens 64] [--in-tokens 16]
 *                [--target-enc-frac 0.6] [--target-decode-b1 100]
 *
 * --weights is the type the engine holds the matrix weights in (eng_model_params.weights);
 * a type the engine refuses is an error naming it (exit 1). After load the resident memory
 * is printed: the process's VmRSS and the engine's own count (eng_model_resident_bytes).
 * --only picks the figures (default peak,encoder,greedy); --batch the decode batch sizes.
 *
 * Figures:
 *   peak                  sgemm 1024^3 and the encoder's own product shapes at 1024 rows
 *   encoder 1 x 128, 1 x 512
 *                         eng_encode on one sequence
 *   encoder 8 x 128 seq   eight eng_encode calls of 128 tokens (no batching)
 *   encoder 8 x 128       batched: eng_generate of 8 x 128-token inputs with exactly one
 *                         new token: the encoder, the cross-attention K/V projections and
 *                         one batch-8 decode step (all counted in its FLOPs; the step is
 *                         < 2% of them for every checkpoint of make bench)
 *   greedy decode batch B greedy, --new-tokens per sequence (min = max: EOS forbidden),
 *                         --in-tokens-token inputs; tokens/s counts the new tokens of all
 *                         B sequences
 *   beam4 decode batch B  4 beams, the same lengths; tokens/s counts the new tokens of the
 *                         B returned sequences (per sequence, as greedy: the work is 4
 *                         rows per sequence; the row figure, 4x, is printed beside it)
 * Decode times include the encoder of the inputs (--in-tokens each, small) and the result.
 * FLOPs: 2*M*N*K per matmul (projections, FF, lm_head) + 2 * 2*n*m*inner for attention
 * scores and context; norms, softmax, activations and beam bookkeeping are left out.
 * GFLOP/s of decode rows therefore compare checkpoints per parameter: the same figure
 * means the same cost per parameter and token.
 * Every figure is the best of --reps runs after --warmup runs: on a shared machine the
 * best run is the one least disturbed. The load average is printed before and after,
 * since other processes on the cores lower every figure (and the product peak with them).
 * Lines of figures start with two spaces and a fixed label, for scripts.
 * Exit status: 0 when everything ran (targets are reported, not enforced), 1 when the
 * engine failed, 2 on bad options. */
#include "common/common.h"
#include "engine/engine.h"
#include "engine/eng_int.h" /* eng_gemm: the engine's door, for the peak */

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BE_MAX_BATCHES 8

static double be_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Deterministic token ids in [5, min(vocab, 32000)), the model's EOS last, as the
 * tokenizer would end them; ids never equal pad (fairseq positions skip pad tokens). */
static void be_ids(int32_t *ids, int n, uint32_t seed, const eng_config *c)
{
    uint32_t x = seed * 2654435761u + 12345u;
    int hi = c->vocab_size < 32000 ? c->vocab_size : 32000;
    for (int i = 0; i < n - 1; i++) {
        do {
            x = x * 1664525u + 1013904223u;
            ids[i] = 5 + (int32_t)((x >> 8) % (uint32_t)(hi - 5));
        } while (ids[i] == c->pad_token_id || ids[i] == c->eos_token_id);
    }
    ids[n - 1] = c->eos_token_id;
}

/* ---- product peak: X[M,K] * W[N,K]^T, the layout of HF Linear weights, by OpenBLAS's
 * sgemm (door 0) or the engine's eng_gemm (door 1) ---- */

static double be_sgemm_gflops(int m, int n, int k, int reps, int door)
{
    float *a = malloc((size_t)m * k * sizeof *a); /* [m, k] */
    float *b = malloc((size_t)n * k * sizeof *b); /* [n, k] */
    float *c = malloc((size_t)m * n * sizeof *c); /* [m, n] */
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)((i * 5) % 11) * 0.01f;
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* first run warms up */
        double t0 = be_now();
        if (door) eng_gemm(m, n, k, a, k, b, k, 1, 0.0f, c, n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c,
                        n);
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
    double per = 3 * 2 * n * d * in   /* q, k, v */
                 + 2 * n * in * d     /* o */
                 + 2 * 2 * n * n * in /* scores + context */
                 + (c->arch.gated ? 3 : 2) * 2 * n * d * f;
    return per * c->num_layers;
}

/* Cross-attention K and V of every decoder layer over n encoder tokens. */
static double be_cross_kv_flops(const eng_config *c, double n)
{
    return c->num_decoder_layers * 2 * 2 * n * c->d_model * ((double)c->num_heads * c->d_kv);
}

/* One decoder step of one row at position t (t earlier tokens) over n_in encoder tokens:
 * self q, k, v, o, cross q, o, the feed-forward, attention over t + 1 and n_in positions,
 * then lm_head. */
static double be_step_flops(const eng_config *c, double t, double n_in)
{
    double d = c->d_model, in = (double)c->num_heads * c->d_kv, f = c->d_ff;
    double per = 6 * 2 * d * in + (c->arch.gated ? 3 : 2) * 2 * d * f + 2 * 2 * (t + 1) * in +
                 2 * 2 * n_in * in;
    return per * c->num_decoder_layers + 2 * d * c->vocab_size;
}

/* eng_generate of b sequences of n_in tokens, `rows` decoder rows each, n_new steps. */
static double be_gen_flops(const eng_config *c, int b, int rows, int n_in, int n_new)
{
    double f = b * (be_enc_flops(c, n_in) + be_cross_kv_flops(c, n_in));
    for (int t = 0; t < n_new; t++) f += (double)b * rows * be_step_flops(c, t, n_in);
    return f;
}

/* ---- engine runs ---- */

typedef struct be_batch {
    int n;
    int32_t *ids; /* [n, len] */
    int len;
    eng_gen_params gp;
    eng_gen_req *reqs;   /* [n] */
    eng_gen_result *res; /* [n] */
} be_batch;

static int be_batch_init(be_batch *b, int n, int len, int new_tokens, int beams,
                         const eng_config *c)
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
    b->gp.num_beams = beams;
    for (int i = 0; i < n; i++) be_ids(b->ids + (size_t)i * len, len, 100 + i, c);
    return 0;
}

static void be_batch_free(be_batch *b) { free(b->ids), free(b->reqs), free(b->res); }

/* One eng_generate of the batch; seconds, or < 0 on error (message printed). *tokens
 * gets the number of generated tokens of the best hypothesis of every sequence. */
static double be_generate(eng_ctx *ctx, be_batch *b, long *tokens)
{
    for (int i = 0; i < b->n; i++)
        b->reqs[i] = (eng_gen_req){
            .ids = b->ids + (size_t)i * b->len, .n_ids = b->len, .params = &b->gp, .out = &b->res[i]
        };
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

/* Best of reps (after warmup runs) of a generate; -1 on error. */
static double be_generate_best(eng_ctx *ctx, be_batch *b, int warmup, int reps, long *tokens)
{
    double best = 1e30;
    for (int r = 0; r < warmup + reps; r++) {
        double t = be_generate(ctx, b, tokens);
        if (t < 0) return -1;
        if (r >= warmup && t < best) best = t;
    }
    return best;
}

/* Best of reps (after warmup runs) of `count` eng_encode calls of n tokens each; -1 on
 * error. */
static double be_encode_best(eng_ctx *ctx, const eng_config *c, int count, int n, int warmup,
                             int reps)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *out = malloc((size_t)n * c->d_model * sizeof *out); /* [n, d_model] */
    double best = -1;
    if (!ids || !out) goto done;
    best = 1e30;
    for (int r = 0; r < warmup + reps; r++) {
        double t0 = be_now();
        for (int i = 0; i < count; i++) {
            be_ids(ids, n, 7 + i, c);
            int rc = eng_encode(ctx, ids, n, out);
            if (rc < 0) {
                fprintf(stderr, "bench_engine: eng_encode: %s\n", eng_strerror(rc));
                best = -1;
                goto done;
            }
        }
        double t = be_now() - t0;
        if (r >= warmup && t < best) best = t;
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
    fprintf(to, "usage: bench_engine --model DIR [--threads N] [--reps N] [--warmup N]\n"
                "                    [--weights auto|f32|bf16|f16|int8] [--only "
                "peak,encoder,greedy,beam4]\n"
                "                    [--batch 1,16] [--new-tokens N] [--in-tokens N]\n"
                "                    [--target-enc-frac F] [--target-decode-b1 TOK_S]\n");
}

static void be_row(const char *what, double secs, double tokens, double flops, double peak)
{
    printf("  %-34s %9.1f ms %11.1f", what, secs * 1e3, tokens / secs);
    if (flops > 0 && peak > 0)
        printf(" %9.1f %8.0f%%\n", flops / secs / 1e9, 100.0 * flops / secs / 1e9 / peak);
    else if (flops > 0) printf(" %9.1f %9s\n", flops / secs / 1e9, "-");
    else printf(" %9s %9s\n", "-", "-");
}

/* "1,16" -> out[0..n); -1 unless every item is an integer in 1..max. */
static int be_int_list(const char *s, int *out, int cap, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > max || n == cap || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return n > 0 ? n : -1;
}

/* What --only names: bits of BE_F_*; -1 on an unknown word. */
enum { BE_F_PEAK = 1, BE_F_ENC = 2, BE_F_GREEDY = 4, BE_F_BEAM = 8 };

static int be_only(const char *s)
{
    static const struct {
        const char *name;
        int bit;
    } f[] = {
        { "peak", BE_F_PEAK },
        { "encoder", BE_F_ENC },
        { "greedy", BE_F_GREEDY },
        { "beam4", BE_F_BEAM },
    };
    int bits = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        size_t i;
        for (i = 0; i < sizeof f / sizeof f[0]; i++)
            if (strlen(f[i].name) == len && strncmp(s, f[i].name, len) == 0) break;
        if (i == sizeof f / sizeof f[0]) return -1;
        bits |= f[i].bit;
        s += len + (s[len] == ',');
    }
    return bits ? bits : -1;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int threads = 2, reps = 3, warmup = 1, new_tokens = 64, in_tokens = 16;
    int only = BE_F_PEAK | BE_F_ENC | BE_F_GREEDY;
    int batches[BE_MAX_BATCHES] = { 1, 16 }, n_batches = 2;
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
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--model") == 0) dir = v;
        else if (strcmp(a, "--weights") == 0) {
            weights = eng_weights_parse(v);
            if (weights < 0) {
                fprintf(stderr,
                        "bench_engine: --weights must be auto, f32, bf16, f16 or int8, not '%s'\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--only") == 0) {
            if ((only = be_only(v)) < 0) {
                fprintf(stderr,
                        "bench_engine: --only takes peak, encoder, greedy, beam4 "
                        "(comma-separated), not '%s'\n",
                        v);
                return 2;
            }
        } else if (strcmp(a, "--batch") == 0) {
            if ((n_batches = be_int_list(v, batches, BE_MAX_BATCHES, 256)) < 0) {
                fprintf(stderr,
                        "bench_engine: --batch takes up to %d sizes 1..256, comma-separated, not "
                        "'%s'\n",
                        BE_MAX_BATCHES, v);
                return 2;
            }
        } else if (strcmp(a, "--threads") == 0) threads = atoi(v);
        else if (strcmp(a, "--reps") == 0) reps = atoi(v);
        else if (strcmp(a, "--warmup") == 0) warmup = atoi(v);
        else if (strcmp(a, "--new-tokens") == 0) new_tokens = atoi(v);
        else if (strcmp(a, "--in-tokens") == 0) in_tokens = atoi(v);
        else if (strcmp(a, "--target-enc-frac") == 0) target_frac = atof(v);
        else if (strcmp(a, "--target-decode-b1") == 0) target_b1 = atof(v);
        else {
            fprintf(stderr, "bench_engine: unknown option %s\n", a);
            be_usage(stderr);
            return 2;
        }
    }
    if (!dir || threads < 1 || reps < 1 || warmup < 0 || new_tokens < 1 || new_tokens > 4096 ||
        in_tokens < 2 || in_tokens > 512) {
        be_usage(stderr);
        return 2;
    }
    openblas_set_num_threads(threads);
    be_loadavg("at start");
    double peak = 0;
    if (only & BE_F_PEAK) {
        /* Measured before loading, so the machine's figure shows even if the engine fails. */
        peak = be_sgemm_gflops(1024, 1024, 1024, reps + 2, 0);
        printf("sgemm 1024 x 1024 x 1024 (OpenBLAS, %d threads, best of %d): %.1f GFLOP/s\n",
               threads, reps + 2, peak);
        fflush(stdout);
    }

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
    static const char *acts[] = { "relu", "gelu", "gelu-tanh", "silu" };

    printf("model %s (%s): d_model %d, heads %d x d_kv %d, d_ff %d, layers %d+%d, %s%s, vocab %d; "
           "%d threads; load %.0f ms\n",
           dir, c->model_type, c->d_model, c->num_heads, c->d_kv, c->d_ff, c->num_layers,
           c->num_decoder_layers, c->arch.gated ? "gated-" : "",
           c->arch.act >= 0 && c->arch.act < 4 ? acts[c->arch.act] : "?", c->vocab_size, threads,
           t_load * 1e3);
    size_t rss1 = be_vmrss();
    printf("weights %s (asked %s): resident after load %.0f MiB VmRSS (%.0f MiB before load), "
           "eng_model_resident_bytes %.0f MiB\n",
           eng_weights_name(eng_model_weights(m)), eng_weights_name(weights), rss1 / 1048576.0,
           rss0 / 1048576.0, eng_model_resident_bytes(m) / 1048576.0);
    printf("  %-34s %9.0f MiB\n", "resident after load (VmRSS)", rss1 / 1048576.0);
    printf("  %-34s %9.0f MiB\n", "eng_model_resident_bytes",
           eng_model_resident_bytes(m) / 1048576.0);

    if (only & BE_F_PEAK) {
        /* product peak with the encoder's own shapes at 8 x 128 = 1024 rows, and the cube. */
        struct {
            const char *name;
            int m, n, k;
        } shapes[] = {
            { "1024 x inner x d_model (q,k,v)", 1024, inner, c->d_model },
            { "1024 x d_ff x d_model (wi)", 1024, c->d_ff, c->d_model },
            { "1024 x d_model x d_ff (wo)", 1024, c->d_model, c->d_ff },
        };
        printf("  GFLOP/s                            OpenBLAS  eng_gemm\n");
        printf("  %-34s %8.1f\n", "1024 x 1024 x 1024", peak);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            double g = be_sgemm_gflops(shapes[i].m, shapes[i].n, shapes[i].k, reps + 2, 0);
            double e = be_sgemm_gflops(shapes[i].m, shapes[i].n, shapes[i].k, reps + 2, 1);
            printf("  %-34s %8.1f  %8.1f\n", shapes[i].name, g, e);
            if (g > peak) peak = g;
            if (e > peak) peak = e;
        }
        printf("  product peak                       %8.1f\n", peak);
    }
    printf("\n");

    int max_b = 8;
    for (int i = 0; i < n_batches; i++) max_b = batches[i] > max_b ? batches[i] : max_b;
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = max_b * ((only & BE_F_BEAM) ? 4 : 1);
    cp.max_input_len = 512;
    cp.max_new_tokens = new_tokens;
    cp.max_batch_tokens = 1024 > max_b * in_tokens ? 1024 : max_b * in_tokens;
    eng_ctx *ctx = eng_ctx_new(m, &cp, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_engine: %s\n", err);
        eng_model_free(&m);
        return 1;
    }

    int rc = 1;
    be_batch pre = { 0 }, dec = { 0 };
    long tok = 0;
    double frac = -1, b1_rate = -1, f_enc8 = 0, t_enc8 = 0;
    printf("  %-34s %12s %11s %9s %9s\n", "", "time", "tokens/s", "GFLOP/s", "of peak");

    /* The engine does not check inputs against a learned / sinusoidal table's length
     * (max_position_embeddings): a longer input would read past it. */
    int max_pos = c->arch.pos == ENG_POS_RELATIVE ? 0 : c->arch.max_positions;
    if ((only & BE_F_ENC) && max_pos > 0 && max_pos < 512) {
        printf("  encoder rows skipped: the model has %d positions, they need 512\n", max_pos);
        only &= ~BE_F_ENC;
    }
    if ((only & (BE_F_GREEDY | BE_F_BEAM)) && max_pos > 0 &&
        (in_tokens > max_pos || new_tokens + 1 > max_pos)) {
        fprintf(stderr,
                "bench_engine: --in-tokens %d / --new-tokens %d: the model has %d positions\n",
                in_tokens, new_tokens, max_pos);
        goto done;
    }
    if (only & BE_F_ENC) {
        double t = be_encode_best(ctx, c, 1, 128, warmup, reps);
        if (t < 0) goto done;
        be_row("encoder 1 x 128", t, 128, be_enc_flops(c, 128), peak);
        t = be_encode_best(ctx, c, 1, 512, warmup, reps);
        if (t < 0) goto done;
        be_row("encoder 1 x 512", t, 512, be_enc_flops(c, 512), peak);
        t = be_encode_best(ctx, c, 8, 128, warmup, reps);
        if (t < 0) goto done;
        be_row("encoder 8 x 128 (8 x eng_encode)", t, 1024, 8 * be_enc_flops(c, 128), peak);
        if (be_batch_init(&pre, 8, 128, 1, 1, c) != 0) {
            fprintf(stderr, "bench_engine: out of memory\n");
            goto done;
        }
        t_enc8 = be_generate_best(ctx, &pre, warmup, reps, &tok);
        if (t_enc8 < 0) goto done;
        f_enc8 = be_gen_flops(c, 8, 1, 128, 1);
        be_row("encoder 8 x 128 (batched)", t_enc8, 1024, f_enc8, peak);
        if (peak > 0) frac = f_enc8 / t_enc8 / 1e9 / peak;
        fflush(stdout);
    }

    for (int mode = 0; mode < 2; mode++) {
        int beams = mode ? 4 : 1;
        if (!(only & (mode ? BE_F_BEAM : BE_F_GREEDY))) continue;
        for (int i = 0; i < n_batches; i++) {
            int b = batches[i];
            char what[64];
            be_batch_free(&dec);
            if (be_batch_init(&dec, b, in_tokens, new_tokens, beams, c) != 0) {
                fprintf(stderr, "bench_engine: out of memory\n");
                goto done;
            }
            double t = be_generate_best(ctx, &dec, warmup, reps, &tok);
            if (t < 0) goto done;
            if (tok != (long)b * new_tokens)
                printf("  note: generated %ld tokens, expected %d (min_new_tokens ignored?)\n", tok,
                       b * new_tokens);
            snprintf(what, sizeof what, "%s decode batch %d (%d new)", mode ? "beam4" : "greedy", b,
                     new_tokens);
            be_row(what, t, (double)tok, be_gen_flops(c, b, beams, in_tokens, new_tokens), peak);
            if (mode)
                printf("  %-34s %12s %11.1f rows: %d beams x %d sequences\n", "  (per beam row)",
                       "", (double)tok * beams / t, beams, b);
            printf("  %-34s %9.2f ms/step\n", "  (step, incl. prefill)", t / new_tokens * 1e3);
            if (!mode && b == 1) b1_rate = tok / t;
            fflush(stdout);
        }
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  %-34s %9.0f MiB\n", "resident at end (VmRSS)", be_vmrss() / 1048576.0);
    printf("  %-34s %9.0f MiB\n", "peak RSS", ru.ru_maxrss / 1024.0);
    be_loadavg("at end");

    if (target_frac > 0 && frac >= 0)
        printf("  target: encoder 8 x 128 >= %.0f%% of product peak: %s (%.0f%%)\n",
               target_frac * 100, frac >= target_frac ? "MET" : "NOT MET", frac * 100);
    if (target_b1 > 0 && b1_rate >= 0)
        printf("  target: greedy decode batch 1 >= %.0f tokens/s: %s (%.1f)\n", target_b1,
               b1_rate >= target_b1 ? "MET" : "NOT MET", b1_rate);
    rc = 0;
done:
    be_batch_free(&pre), be_batch_free(&dec);
    eng_ctx_free(&ctx);
    eng_model_free(&m);
    return rc;
}
