/* The half-precision kernel paths (engine/gemm.c): BF16 weights widened inside the
 * few-rows kernel's transpose (two rows a vector, even and odd k split, three block
 * exchanges), F16 weights widened by F16C (AVX-512 and AVX2 kernels chosen at run time,
 * the integer widening elsewhere: each forced in turn, eng_gemm_set_f16c), and the packed kernel's widened tiles with the next
 * tile's halves prefetched. Each against the same product with the weights widened to
 * F32 (bitwise: the contract of the weight types) and a double reference, over full and
 * partial 16-row tiles, several tiles (the prefetch), K not a multiple of 16 and M = 1,
 * 3, 17, 64, 300 (and every few-rows count), at 1 and 2 threads. */
#include "engine/eng_int.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t kh_rng = 271828;
static float kh_rand(void) /* in [-1, 1) */
{
    kh_rng = kh_rng * 1664525u + 1013904223u;
    return (float)((kh_rng >> 8) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

/* A random half of type wt: mostly ordinary values, some F16 subnormals and zeros of
 * both signs (the widening's edge cases that stay finite in a product). */
static uint16_t kh_half(int wt)
{
    kh_rng = kh_rng * 1664525u + 1013904223u;
    uint32_t r = kh_rng >> 8;
    uint16_t sign = (uint16_t)(r & 0x8000u);
    switch (r % 23) {
    case 0: return sign; /* +-0 */
    case 1:
        if (wt == ENG_W_F16) return sign | (uint16_t)(1 + (r >> 5) % 0x3ff); /* subnormal */
        return sign | (uint16_t)(0x0001u + (r >> 5) % 0x7f);                 /* BF16 subnormal */
    default: break;
    }
    float f = kh_rand() * (r % 5 == 0 ? 8.0f : 0.5f);
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (wt == ENG_W_BF16) return (uint16_t)(u >> 16);
    /* F16 by truncation: |f| < 8, normal or zero */
    uint32_t e = (u >> 23) & 0xff, m = (u >> 13) & 0x3ff;
    if (e < 127 - 14) return (uint16_t)(u >> 16 & 0x8000u);
    return (uint16_t)((u >> 16 & 0x8000u) | (e - 112) << 10 | m);
}

static float kh_widen(int wt, uint16_t h)
{
    return wt == ENG_W_BF16 ? eng_bf16_to_f32(h) : eng_f16_to_f32(h);
}

TEST(eng_kernel_half_paths)
{
    static const int Ms[] = { 1, 2, 3, 4, 5, 6, 7, 8, 16, 17, 64, 300 };
    static const int Ns[] = { 16, 35, 48, 100 };
    static const int Ks[] = { 16, 31, 48, 100, 517 };
    enum { MAXM = 300, MAXN = 100, MAXK = 517 };
    float *A = malloc(sizeof(float) * MAXM * MAXK), *Wf = malloc(sizeof(float) * MAXN * MAXK);
    uint16_t *Wh = malloc(sizeof(uint16_t) * MAXN * MAXK);
    float *C = malloc(sizeof(float) * MAXM * MAXN), *Cf = malloc(sizeof(float) * MAXM * MAXN);
    float *C1 = malloc(sizeof(float) * MAXM * MAXN);
    REQUIRE(A && Wf && Wh && C && Cf && C1);
    double worst = 0;
    int cases = 0, bad = 0;
    /* BF16; F16 at each F16C level the CPU has (4: AVX-512, 3: AVX2, 0: integer) */
    static const int runs[][2] = {
        { ENG_W_BF16, -1 }, { ENG_W_F16, 4 }, { ENG_W_F16, 3 }, { ENG_W_F16, 0 }
    };
    for (size_t ri = 0; ri < sizeof runs / sizeof *runs; ri++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
                    int wt = runs[ri][0], M = Ms[mi], N = Ns[ni], K = Ks[ki];
                    eng_gemm_set_f16c(runs[ri][1]);
                    if (M * N * K > 4000000 && K != 517) continue; /* one large K is enough */
                    for (int i = 0; i < M * K; i++) A[i] = kh_rand();
                    for (int i = 0; i < N * K; i++) {
                        Wh[i] = kh_half(wt);
                        Wf[i] = kh_widen(wt, Wh[i]);
                    }
                    eng_set_threads(2);
                    eng_gemm_w(M, N, K, A, K, wt, Wh, K, 0.0f, C, N);
                    eng_gemm_w(M, N, K, A, K, ENG_W_F32, Wf, K, 0.0f, Cf, N);
                    eng_set_threads(1);
                    eng_gemm_w(M, N, K, A, K, wt, Wh, K, 0.0f, C1, N);
                    size_t bytes = sizeof(float) * M * N;
                    if (memcmp(C, Cf, bytes) != 0 || memcmp(C1, Cf, bytes) != 0) {
                        if (bad++ < 5)
                            CHECK_MSG(0,
                                      "wt %d (F16C level %d) M %d N %d K %d: differs from the "
                                      "F32 widening",
                                      wt, runs[ri][1], M, N, K);
                        continue;
                    }
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < N; n++) {
                            double ref = 0, mag = 0;
                            for (int k = 0; k < K; k++) {
                                double t = (double)A[(size_t)m * K + k] * Wf[(size_t)n * K + k];
                                ref += t, mag += fabs(t);
                            }
                            double err = fabs(C[(size_t)m * N + n] - ref) / (mag + 1e-30);
                            if (err > worst) worst = err;
                        }
                    cases++;
                }
    eng_gemm_set_f16c(-1);
    CHECK_MSG(bad == 0, "%d shapes differ from the F32 widening", bad);
    /* one fp32 chain over up to 517 terms: sqrt(517) 2^-24 is 1.4e-6 */
    CHECK_MSG(worst <= 2e-6, "worst error %g of the sum of |terms|", worst);
    printf("half paths: %d shapes bitwise the F32 widening at 1 and 2 threads, worst error "
           "%.2g of the sum of |terms|\n",
           cases, worst);
    free(A), free(Wf), free(Wh), free(C), free(Cf), free(C1);
}

/* F16 infinities and NaNs widen as eng_f16_to_f32 widens them in the F16C kernels too: a
 * weight row holding one gives an infinite or NaN output exactly where the F32 widening
 * does (M = 1 and 4: the few-rows kernel; 20: the packed one). */
TEST(eng_kernel_half_f16_specials)
{
    enum { N = 32, K = 40 };
    static const uint16_t specials[] = { 0x7c00u, 0xfc00u, 0x7e00u, 0x7c01u, 0xfe00u };
    static uint16_t Wh[N * K];
    static float Wf[N * K], A[20 * K], C[20 * N], Cf[20 * N];
    for (int i = 0; i < 20 * K; i++) A[i] = 0.25f + (float)(i % 7) * 0.125f; /* positive */
    for (int i = 0; i < N * K; i++) Wh[i] = 0x3c00u;                         /* 1.0 */
    for (int n = 0; n < N; n += 3) Wh[n * K + (n * 7) % K] = specials[n % 5];
    for (int i = 0; i < N * K; i++) Wf[i] = eng_f16_to_f32(Wh[i]);
    static const int Ms[] = { 1, 4, 20 };
    for (size_t mi = 0; mi < 3 * sizeof Ms / sizeof *Ms; mi++) {
        int M = Ms[mi % 3];
        eng_gemm_set_f16c(mi < 3 ? 4 : mi < 6 ? 3 : 0);
        eng_gemm_w(M, N, K, A, K, ENG_W_F16, Wh, K, 0.0f, C, N);
        eng_gemm_set_f16c(-1);
        eng_gemm_w(M, N, K, A, K, ENG_W_F32, Wf, K, 0.0f, Cf, N);
        for (int i = 0; i < M * N; i++) {
            CHECK_MSG(isnan(C[i]) == isnan(Cf[i]) && (isnan(C[i]) || C[i] == Cf[i]),
                      "M %d output %d: %g against %g", M, i, C[i], Cf[i]);
        }
        CHECK(isinf(C[0]) && C[0] > 0);   /* weight row 0 holds +inf */
        CHECK(isnan(C[(M - 1) * N + 3])); /* row 3 a signalling NaN */
        CHECK(isinf(C[6]) && C[6] < 0);   /* row 6 -inf */
    }
}
