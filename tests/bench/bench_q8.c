/* bench_q8: the int8 product (eng_gemm_q8), or the BF16/F16 one (eng_gemm_w, --mode
 * bf16|f16), against the F32 door (eng_gemm) on the model's shapes, side by side in one
 * run, at 1 and 2 threads.
 *
 *   bench_q8 [--mode q8|bf16|f16] [--reps 5] [--threads 1,2] [--set-mb 256] [--m LIST]
 *            [--cpu-time]
 *
 * Shapes: decode (M = 1, 16) and encoder (M = 128, 512; --m picks some) rows against weights N x K = 512 x 512,
 * 2048 x 512, 512 x 2048 (flan-t5-small's projections and feed-forward) and 32128 x 512
 * (its lm_head; decode only). A decode step reads each weight once and a model's weights
 * do not stay in the caches between steps, so decode shapes rotate through copies of the
 * weight (as many as make --set-mb MB of F32, the same count of int8 blobs) and a call
 * never finds its weight in L2; encoder shapes use one copy (computation-bound).
 * Figures: GFLOP/s (2 M N K per call) of each from its fastest call over --reps passes
 * (the least disturbed on a shared machine; at M <= 16 every call reads its weights cold),
 * the doors taking turns pass by pass, and the ratio int8 (or half) / F32. Half-precision
 * weights are the F32 copies rounded (BF16: to nearest even; F16: F16C's rounding). Exit 0
 * when everything ran. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>

/* --cpu-time: the process's CPU time instead of the wall clock (at one thread, a call's
 * time without the time other processes held the core: steadier on a loaded machine) */
static int bq_cpu_time;

static double bq_now(void)
{
    struct timespec ts;
    clock_gettime(bq_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bq_fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) % 2001) / 1000.0f - 1.0f;
    }
}

/* Whether m is in the comma-separated list. */
static int bq_listed(const char *list, int m)
{
    for (const char *p = list; p; p = strchr(p, ',')) {
        if (*p == ',') p++;
        if (atoi(p) == m) return 1;
    }
    return 0;
}

/* x rounded to BF16, to nearest even (x finite). */
static uint16_t bq_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* x rounded to F16 (F16C's conversion, to nearest even). */
__attribute__((target("f16c"))) static uint16_t bq_f16(float x) { return _cvtss_sh(x, 0); }

typedef struct bq_shape {
    int M, N, K;
} bq_shape;

/* Seconds of the fastest call of one pass over the copies (at least 4 calls); door 0
 * F32, 1 int8 (wt ENG_W_I8) or half precision (wt ENG_W_BF16, ENG_W_F16). */
static double bq_pass(int door, int wt, const bq_shape *s, int copies, float *const *wf,
                      void *const *wq, const float *A, float *C)
{
    double best = 1e30;
    int calls = copies < 4 ? 4 : copies;
    for (int i = 0; i < calls; i++) {
        int c = i % copies;
        double t0 = bq_now();
        if (door && wt == ENG_W_I8) eng_gemm_q8(s->M, s->N, s->K, A, s->K, wq[c], 0.0f, C, s->N);
        else if (door) eng_gemm_w(s->M, s->N, s->K, A, s->K, wt, wq[c], s->K, 0.0f, C, s->N);
        else eng_gemm(s->M, s->N, s->K, A, s->K, wf[c], s->K, 1, 0.0f, C, s->N);
        double t = bq_now() - t0;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    int reps = 5, set_mb = 256, tlist[4] = { 1, 2 }, nthr = 2;
    const char *mode = "q8", *mlist = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cpu-time") == 0) {
            bq_cpu_time = 1;
            continue;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_q8 [--mode q8|bf16|f16] [--reps N] [--threads 1,2] [--set-mb MB] "
                   "[--m 1,16,128,512] [--cpu-time]\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_q8: option %s needs a value\n", argv[i]);
            return 1;
        }
        if (strcmp(argv[i], "--mode") == 0) mode = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--set-mb") == 0) set_mb = atoi(argv[++i]);
        else if (strcmp(argv[i], "--m") == 0) mlist = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0) {
            const char *p = argv[++i];
            nthr = 0;
            while (*p && nthr < 4) {
                tlist[nthr++] = atoi(p);
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        } else {
            fprintf(stderr, "bench_q8: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    int wt = strcmp(mode, "q8") == 0     ? ENG_W_I8
             : strcmp(mode, "bf16") == 0 ? ENG_W_BF16
             : strcmp(mode, "f16") == 0  ? ENG_W_F16
                                         : -1;
    if (wt < 0 || reps < 1 || set_mb < 1 || nthr < 1) {
        fprintf(stderr, "bench_q8: bad arguments (modes: q8, bf16, f16)\n");
        return 1;
    }
    const char *wname = wt == ENG_W_I8 ? "int8" : mode;
    static const bq_shape shapes[] = {
        { 1, 512, 512 },    { 1, 2048, 512 },   { 1, 512, 2048 },   { 1, 32128, 512 },
        { 16, 512, 512 },   { 16, 2048, 512 },  { 16, 512, 2048 },  { 16, 32128, 512 },
        { 128, 512, 512 },  { 128, 2048, 512 }, { 128, 512, 2048 }, { 512, 512, 512 },
        { 512, 2048, 512 }, { 512, 512, 2048 },
    };
    enum { NS = sizeof shapes / sizeof *shapes };
    printf("bench_q8: %s against F32; int8 kernel %s, float kernels %s; weights rotate through "
           "%d MB of F32 copies at M <= 16\n",
           wname, eng_q8_kernel(), eng_kernels(), set_mb);
    printf("%-5s %-6s %-6s %-3s  %10s  %7s GF/s  %6s\n", "M", "N", "K", "thr", "F32 GF/s", wname,
           "ratio");
    int status = 0;
    for (int si = 0; si < NS; si++) {
        const bq_shape *s = &shapes[si];
        if (mlist && !bq_listed(mlist, s->M)) continue;
        size_t wn = (size_t)s->N * s->K;
        size_t qb = wt == ENG_W_I8 ? eng_q8_weight_bytes(s->N, s->K) : wn * sizeof(uint16_t);
        int copies = 1;
        if (s->M <= 16) {
            copies = (int)(((size_t)set_mb << 20) / (wn * sizeof(float)));
            if (copies < 2) copies = 2;
        }
        float **wf = calloc((size_t)copies, sizeof *wf);
        void **wq = calloc((size_t)copies, sizeof *wq);
        float *A = malloc((size_t)s->M * s->K * sizeof *A);
        float *C = malloc((size_t)s->M * s->N * sizeof *C);
        int ok = wf && wq && A && C;
        for (int c = 0; ok && c < copies; c++) {
            wf[c] = aligned_alloc(64, (wn * sizeof(float) + 63) & ~(size_t)63);
            wq[c] = aligned_alloc(64, (qb + 63) & ~(size_t)63);
            if (!wf[c] || !wq[c]) {
                ok = 0;
                break;
            }
            if (c == 0) {
                bq_fill(wf[0], wn, 7);
                if (wt == ENG_W_I8)
                    ok = eng_q8_weight_pack(wf[0], ENG_Q8_SRC_F32, s->N, s->K, s->K, wq[0]) == 0;
                else
                    for (size_t j = 0; j < wn; j++)
                        ((uint16_t *)wq[0])[j] =
                            wt == ENG_W_BF16 ? bq_bf16(wf[0][j]) : bq_f16(wf[0][j]);
            } else {
                memcpy(wf[c], wf[0], wn * sizeof(float));
                memcpy(wq[c], wq[0], qb);
            }
        }
        if (ok) bq_fill(A, (size_t)s->M * s->K, 11);
        for (int ti = 0; ok && ti < nthr; ti++) {
            eng_set_threads(tlist[ti]);
            /* the two doors take turns, so both see the same disturbances; pass 0 warms */
            double tf = 1e30, tq = 1e30;
            for (int r = 0; r <= reps; r++) {
                double f = bq_pass(0, wt, s, copies, wf, wq, A, C);
                double q = bq_pass(1, wt, s, copies, wf, wq, A, C);
                if (r > 0) tf = f < tf ? f : tf, tq = q < tq ? q : tq;
            }
            double fl = 2.0 * s->M * s->N * s->K / 1e9;
            printf("%-5d %-6d %-6d %-3d  %10.1f  %10.1f  %6.2f\n", s->M, s->N, s->K, tlist[ti],
                   fl / tf, fl / tq, tf / tq);
            fflush(stdout);
        }
        if (!ok) {
            fprintf(stderr, "bench_q8: out of memory at M %d N %d K %d\n", s->M, s->N, s->K);
            status = 1;
        }
        for (int c = 0; wf && wq && c < copies; c++) free(wf[c]), free(wq[c]);
        free(wf), free(wq), free(A), free(C);
    }
    return status;
}
