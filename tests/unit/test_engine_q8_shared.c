/* eng_gemm_q8_n, the int8 products of several weights sharing one input (the encoder's
 * q, k, v and a gated feed-forward's two halves), against separate eng_gemm_q8 calls: bit
 * for bit, with every kernel, at 1 and 2 threads, over odd shapes (M = 1, 3, 17, 300; K
 * not a multiple of 4 or 64; N not a multiple of 16, and weights of different N); its
 * argument checks; and eng_lin_apply_n (the Linear door for several layers) against
 * eng_lin_apply, int8 with biases and F32. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const q8s_kernels[] = { "avx512vnni", "avxvnni", "avx2", "c" };

static uint32_t q8s_seed = 7;

static void q8s_fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        q8s_seed = q8s_seed * 1664525u + 1013904223u;
        float v = (float)((q8s_seed >> 8) % 20001) / 10000.0f - 1.0f;
        x[i] = (q8s_seed >> 3) % 41 == 0 ? 7.0f * v : v;
    }
}

static void *q8s_pack(const float *W, int N, int K)
{
    size_t bytes = eng_q8_weight_bytes(N, K);
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (p && eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, K, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

TEST_TIMEOUT(q8_shared_input_bitwise, 120)
{
    static const int Ms[] = { 1, 3, 17, 300 }, Ks[] = { 5, 64, 515 };
    static const int Ns[3] = { 77, 16, 33 }; /* three weights of different N */
    enum { MAXM = 300, MAXK = 515, MAXN = 77 };
    float *A = malloc(sizeof(float) * MAXM * MAXK), *W = malloc(sizeof(float) * 3 * MAXN * MAXK);
    float *one[3], *sh[3];
    for (int i = 0; i < 3; i++) {
        one[i] = malloc(sizeof(float) * MAXM * MAXN);
        sh[i] = malloc(sizeof(float) * MAXM * MAXN);
        REQUIRE(one[i] && sh[i]);
    }
    REQUIRE(A && W);
    q8s_fill(A, (size_t)MAXM * MAXK);
    q8s_fill(W, (size_t)3 * MAXN * MAXK);
    int runs = 0;
    for (size_t kc = 0; kc < sizeof Ks / sizeof *Ks; kc++) {
        int K = Ks[kc];
        void *p[3];
        for (int i = 0; i < 3; i++)
            REQUIRE((p[i] = q8s_pack(W + (size_t)i * MAXN * MAXK, Ns[i], K)));
        for (int ki = 0; ki < 4; ki++) {
            if (eng_q8_set_kernel(q8s_kernels[ki]) != 0) continue;
            for (int threads = 1; threads <= 2; threads++) {
                eng_set_threads(threads);
                for (size_t mc = 0; mc < sizeof Ms / sizeof *Ms; mc++)
                    for (int n = 1; n <= 3; n++) {
                        int M = Ms[mc];
                        const void *const pk[3] = { p[0], p[1], p[2] };
                        float *const C[3] = { sh[0], sh[1], sh[2] };
                        for (int i = 0; i < n; i++) {
                            REQUIRE(eng_gemm_q8(M, Ns[i], K, A, MAXK, p[i], 0.0f, one[i], Ns[i]) ==
                                    0);
                            memset(sh[i], 0xff, sizeof(float) * MAXM * MAXN);
                        }
                        REQUIRE(eng_gemm_q8_n(M, K, A, MAXK, n, pk, Ns, C, Ns) == 0);
                        for (int i = 0; i < n; i++)
                            CHECK_MSG(memcmp(one[i], sh[i], sizeof(float) * M * Ns[i]) == 0,
                                      "%s, %d threads, M %d K %d, %d weights: weight %d differs",
                                      q8s_kernels[ki], threads, M, K, n, i);
                        runs++;
                    }
            }
        }
        /* arguments: a weight of another K, too many weights, no output */
        const void *const bad[2] = { p[0], p[0] };
        float *const C2[2] = { sh[0], sh[1] };
        int N2[2] = { Ns[0], Ns[0] };
        CHECK(eng_gemm_q8_n(3, K + 1, A, MAXK, 2, bad, N2, C2, N2) < 0);
        CHECK(eng_gemm_q8_n(3, K, A, MAXK, ENG_Q8_MAX_SHARED + 1, bad, N2, C2, N2) == -1);
        float *const nul[2] = { sh[0], NULL };
        CHECK(eng_gemm_q8_n(3, K, A, MAXK, 2, bad, N2, nul, N2) == -1);
        for (int i = 0; i < 3; i++) free(p[i]);
    }
    eng_q8_set_kernel(NULL);
    eng_set_threads(1);
    CHECK(runs >= 3 * 2 * 4 * 3 * 2); /* at least the portable kernel and one other */
    free(A), free(W);
    for (int i = 0; i < 3; i++) free(one[i]), free(sh[i]);
}

TEST(q8_lin_apply_n_as_lin_apply)
{
    enum { M = 40, K = 96, N0 = 48, N1 = 20 };
    float *A = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * (N0 + N1) * K);
    float b0[N0], b1[N1], *y[4];
    for (int i = 0; i < 4; i++) REQUIRE((y[i] = malloc(sizeof(float) * M * N0)));
    REQUIRE(A && W);
    q8s_fill(A, (size_t)M * K);
    q8s_fill(W, (size_t)(N0 + N1) * K);
    q8s_fill(b0, N0);
    q8s_fill(b1, N1);
    void *p0 = q8s_pack(W, N0, K), *p1 = q8s_pack(W + (size_t)N0 * K, N1, K);
    REQUIRE(p0 && p1);
    for (int type = 0; type < 2; type++) { /* int8, then F32 (separate products) */
        eng_lin l0 = { .type = type ? ENG_W_F32 : ENG_W_I8,
                       .w = type ? (void *)W : p0,
                       .b = b0,
                       .out = N0,
                       .in = K };
        eng_lin l1 = { .type = l0.type,
                       .w = type ? (void *)(W + (size_t)N0 * K) : p1,
                       .b = NULL,
                       .out = N1,
                       .in = K };
        const eng_lin *const ls[2] = { &l0, &l1 };
        float *const ys[2] = { y[2], y[3] };
        eng_lin_apply(&l0, A, M, y[0]);
        eng_lin_apply(&l1, A, M, y[1]);
        eng_lin_apply_n(ls, 2, A, M, ys);
        CHECK_MSG(memcmp(y[0], y[2], sizeof(float) * M * N0) == 0, "type %d: first differs", type);
        CHECK_MSG(memcmp(y[1], y[3], sizeof(float) * M * N1) == 0, "type %d: second differs", type);
        /* and the bias is there: the first output of row 0 is near the float product */
        double want = b0[0];
        for (int k = 0; k < K; k++) want += (double)A[k] * W[k];
        CHECK_MSG(fabs(y[2][0] - want) < 0.05 * (1 + fabs(want)), "type %d: %g vs %g", type,
                  y[2][0], want);
    }
    free(A), free(W), free(p0), free(p1);
    for (int i = 0; i < 4; i++) free(y[i]);
}
