/* Engine kernels against double-precision references: the vectorised exp behind softmax,
 * gelu_new and logsumexp, rmsnorm, F16/BF16 conversion, and the gemm door's four shapes
 * (few and many rows, B transposed or not, strided operands). */
#include "engine/eng_int.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TEST(eng_kernel_gelu_softmax_lse)
{
    enum { N = 4001 };
    static float x[N];
    double maxrel = 0, maxabs = 0;
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    static float g[N];
    memcpy(g, x, sizeof g);
    eng_gelu_new(g, NULL, N);
    for (int i = 0; i < N; i++) {
        double v = x[i];
        double want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        maxabs = fmax(maxabs, fabs(g[i] - want));
    }
    CHECK_MSG(maxabs < 2e-6, "gelu_new max abs error %g", maxabs);
    /* gated: gelu_new(x) * y, the last values (past the vector blocks) included */
    static float gy[N], y[N];
    memcpy(gy, x, sizeof gy);
    for (int i = 0; i < N; i++) y[i] = 0.5f - (float)(i % 7) * 0.25f;
    eng_gelu_new(gy, y, N);
    double gated = 0;
    for (int i = 0; i < N; i++) gated = fmax(gated, fabs(gy[i] - g[i] * y[i]));
    CHECK_MSG(gated == 0, "gated gelu_new differs from gelu_new times y by %g", gated);
    /* softmax over a wide range, with a masked entry */
    static float s[N];
    for (int i = 0; i < N; i++) s[i] = 0.05f * (float)((i * 37) % 401) - 10.0f;
    s[17] = -INFINITY;
    double ref[N], sum = 0, mx = -INFINITY;
    for (int i = 0; i < N; i++) mx = fmax(mx, s[i]);
    for (int i = 0; i < N; i++) sum += ref[i] = i == 17 ? 0 : exp(s[i] - mx);
    double lse = eng_logsumexp(s, N);
    CHECK_MSG(fabs(lse - (mx + log(sum))) < 1e-6, "logsumexp %.9f vs %.9f", lse, mx + log(sum));
    eng_softmax(s, N);
    for (int i = 0; i < N; i++) {
        double want = ref[i] / sum;
        if (want > 1e-30) maxrel = fmax(maxrel, fabs(s[i] - want) / want);
    }
    CHECK(s[17] == 0.0f);
    CHECK_MSG(maxrel < 1e-5, "softmax max rel error %g", maxrel);
    /* exp extremes: large negative underflows to 0, never NaN */
    float e[6] = { -200, -88, 0, 1, 80, -INFINITY };
    eng_softmax(e, 6);
    for (int i = 0; i < 6; i++) CHECK(isfinite(e[i]));
    CHECK(e[4] > 0.99f && e[5] == 0.0f);
}

TEST(eng_kernel_rmsnorm_and_conversions)
{
    float x[2][5] = { { 1, -2, 3, -4, 5 }, { 0.5f, 0.5f, 0.5f, 0.5f, 0.5f } },
          w[5] = { 1, 2, 1, 2, 1 };
    float o[2][5];
    eng_rmsnorm(&x[0][0], w, 2, 5, 1e-6f, &o[0][0]);
    double ms = (1 + 4 + 9 + 16 + 25) / 5.0;
    for (int i = 0; i < 5; i++) CHECK(fabs(o[0][i] - w[i] * x[0][i] / sqrt(ms + 1e-6)) < 1e-6);
    CHECK(fabs(o[1][1] - 2 * 0.5 / sqrt(0.25 + 1e-6)) < 1e-6);
    CHECK(eng_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(eng_bf16_to_f32(0xc040) == -3.0f);
    CHECK(eng_f16_to_f32(0x3c00) == 1.0f);
    CHECK(eng_f16_to_f32(0xc000) == -2.0f);
    CHECK(eng_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(eng_f16_to_f32(0x0001) == ldexpf(1.0f, -24));    /* smallest subnormal */
    CHECK(eng_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24)); /* largest subnormal */
    CHECK(isinf(eng_f16_to_f32(0x7c00)) && isnan(eng_f16_to_f32(0x7e00)));
    CHECK(eng_f16_to_f32(0x8000) == 0.0f && signbit(eng_f16_to_f32(0x8000)));
}

/* C = A op(B) + beta C in double; also the sum of |terms| per output (the error scale). */
static void et_ref_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        int tb, float beta, const float *C0, int ldc, double *R, double *mag)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = beta * (double)C0[i * ldc + j], a = fabs(s);
            for (int k = 0; k < K; k++) {
                double t = (double)A[i * lda + k] * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                s += t;
                a += fabs(t);
            }
            R[i * N + j] = s;
            mag[i * N + j] = a;
        }
}

/* x[0..n) uniform in [-1, 1) from the generator state *r. */
static void et_fill_uniform(float *x, size_t n, unsigned *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((*r = *r * 1103515245u + 12345u) >> 8) / (1u << 24) * 2 - 1;
}

/* A product under test: C = A op(B) (+ beta C) as eng_gemm takes it; 0 if it ran. */
typedef int (*et_product)(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          int trans_b, float beta, float *C, int ldc);

/* Every (trans_b from tb0 to 1, beta 0 and 0.5, m, n, k) of the lists through fn, with
 * strided operands (row stride 320), against the double reference: each output within
 * 1e-6 of its sum of |terms|, nothing written past column n. The number of wrong outputs
 * (the first few reported with their shape). */
static int et_sweep(const char *who, et_product fn, int tb0, const int *ms, size_t nm,
                    const int *ns, size_t nn, const int *ks, size_t nk, unsigned seed)
{
    enum { LD = 320, MAXM = 200 };
    static float A[MAXM * LD], B[LD * LD], C[MAXM * LD], C0[MAXM * LD];
    static double R[MAXM * LD], MAG[MAXM * LD];
    et_fill_uniform(A, MAXM * LD, &seed);
    et_fill_uniform(B, LD * LD, &seed);
    for (int i = 0; i < MAXM * LD; i++) C0[i] = (float)(i % 7) - 3;
    int bad = 0;
    for (int tb = tb0; tb < 2; tb++)
        for (int bi = 0; bi < 2; bi++)
            for (size_t mi = 0; mi < nm; mi++)
                for (size_t ni = 0; ni < nn; ni++)
                    for (size_t ki = 0; ki < nk; ki++) {
                        int m = ms[mi], n = ns[ni], k = ks[ki];
                        float beta = bi ? 0.5f : 0.0f;
                        memcpy(C, C0, sizeof C);
                        if (fn(m, n, k, A, LD, B, LD, tb, beta, C, LD) != 0) {
                            CHECK_MSG(0, "%s m=%d n=%d k=%d failed", who, m, n, k);
                            return bad + 1;
                        }
                        et_ref_gemm(m, n, k, A, LD, B, LD, tb, beta, C0, LD, R, MAG);
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                double d = fabs(C[i * LD + j] - R[i * n + j]);
                                if (d > 1e-6 * MAG[i * n + j] + 1e-30 && bad++ < 5)
                                    CHECK_MSG(0,
                                              "%s m=%d n=%d k=%d trans_b=%d beta=%g: "
                                              "C[%d][%d] off by %g",
                                              who, m, n, k, tb, beta, i, j, d);
                            }
                            if (C[i * LD + n] != C0[i * LD + n] && bad++ < 5)
                                CHECK_MSG(0, "%s m=%d n=%d k=%d: wrote beyond N", who, m, n, k);
                        }
                    }
    return bad;
}

static int et_door(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   int trans_b, float beta, float *C, int ldc)
{
    eng_gemm(M, N, K, A, lda, B, ldb, trans_b, beta, C, ldc);
    return 0;
}

static int et_many(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   int trans_b, float beta, float *C, int ldc)
{
    (void)trans_b; /* swept with trans_b = 1 only */
    return eng_gemm_many(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* Every shape class of the door: with B transposed (weights) the few-rows kernel (1..8
 * rows, K and N not multiples of 16: the tail of K, a partial tile of weight rows) and the
 * packed kernel (9+ rows); B not transposed (1..80 rows by 64, 16 and an overlapped last
 * 16 columns); strided operands, beta 0 and not. Error bound: 1e-6 of the sum of |terms|
 * (fp32 accumulation over up to 300 terms). Columns beyond N stay untouched. */
TEST(eng_kernel_gemm_door)
{
    static const int ms[] = { 1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 31, 33, 64, 65, 80 };
    static const int ns[] = { 1, 3, 4, 5, 8, 13, 37, 64, 85, 129 };
    static const int ks[] = { 1, 7, 16, 17, 48, 100, 300 };
    int bad = et_sweep("gemm", et_door, 0, ms, sizeof ms / sizeof *ms, ns, sizeof ns / sizeof *ns,
                       ks, sizeof ks / sizeof *ks, 12345);
    CHECK_MSG(bad == 0, "%d wrong outputs", bad);
    static float A[100], B[64 * 100], C0[64];
    unsigned r = 99;
    et_fill_uniform(A, 100, &r);
    et_fill_uniform(B, 64 * 100, &r);
    float y[64];
    double ry[64], my[64];
    eng_linear(A, 1, 100, B, 64, y);
    et_ref_gemm(1, 64, 100, A, 100, B, 100, 1, 0.0f, C0, 64, ry, my);
    for (int j = 0; j < 64; j++) CHECK(fabs(y[j] - ry[j]) <= 1e-6 * my[j]);
}

/* The door computes each output the same way whatever rows share the call: row i of a
 * 1..64-row product is bitwise the row computed alone, with the weights transposed (the
 * few-rows kernel up to 8 rows, the packed one beyond) or not (groups of 4 rows by 64, 16
 * and an overlapped last 16 columns at N = 37). tests/unit/test_engine_batch_bits.c
 * checks the same up to 200 rows, at 1 and 2 threads. */
TEST(eng_kernel_gemm_rows_independent)
{
    /* K = 200 has a tail past the 16-lane blocks, K = 192 none (the tiles' fast store) */
    enum { N = 37, KMAX = 200, MAXM = 64 };
    static float A[MAXM * KMAX], W[N * KMAX], C[MAXM * N], one[N];
    for (int i = 0; i < MAXM * KMAX; i++) A[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < N * KMAX; i++) W[i] = cosf(0.11f * (float)i);
    for (int tb = 0; tb < 2; tb++) /* W as [N, K] (tb), or as [K, N] */
        for (int K = 192; K <= KMAX; K += KMAX - 192)
            for (int m = 1; m <= MAXM; m++) {
                int ldw = tb ? K : N;
                eng_gemm(m, N, K, A, K, W, ldw, tb, 0.0f, C, N);
                for (int i = 0; i < m; i++) {
                    eng_gemm(1, N, K, A + (size_t)i * K, K, W, ldw, tb, 0.0f, one, N);
                    REQUIRE_MSG(memcmp(one, C + (size_t)i * N, sizeof one) == 0,
                                "trans_b=%d K=%d m=%d row %d", tb, K, m, i);
                }
            }
}

/* The packed many-rows kernel (eng_gemm's choice past 8 rows with weights), called
 * directly from one row on: panels of 32 and a last one of 16, rows past the panels'
 * fill, weight tiles of 12 and a partial last one, K not a multiple of 16, strided
 * operands, beta 0 and not. Same error bound as the door. Columns beyond N stay
 * untouched. */
TEST(eng_kernel_gemm_many)
{
    static const int ms[] = { 1, 15, 16, 17, 32, 33, 48, 49, 65, 100, 200 };
    static const int ns[] = { 1, 5, 12, 13, 25, 37, 130 };
    static const int ks[] = { 1, 7, 16, 17, 100, 300 };
    int bad = et_sweep("many", et_many, 1, ms, sizeof ms / sizeof *ms, ns, sizeof ns / sizeof *ns,
                       ks, sizeof ks / sizeof *ks, 777);
    CHECK_MSG(bad == 0, "%d wrong outputs", bad);

    /* K = 4500: one panel a chunk, so 70 rows take three chunks (packed and computed
     * one after the other in the same buffer). Bound 2e-5 of the sum of |terms|: one
     * fp32 chain over 4500 terms (sqrt(4500) x 2^-24 is 4e-6). */
    enum { BM = 70, BN = 13, BK = 4500 };
    static float BA[BM * BK], BW[BN * BK], BC[BM * BN];
    static double BR[BM * BN], BMAG[BM * BN];
    for (int i = 0; i < BM * BK; i++) BA[i] = sinf(0.7f * (float)i);
    for (int i = 0; i < BN * BK; i++) BW[i] = cosf(0.3f * (float)i);
    REQUIRE(eng_gemm_many(BM, BN, BK, BA, BK, BW, BK, 0.0f, BC, BN) == 0);
    et_ref_gemm(BM, BN, BK, BA, BK, BW, BK, 1, 0.0f, BC, BN, BR, BMAG);
    for (int i = 0; i < BM * BN; i++)
        if (fabs(BC[i] - BR[i]) > 2e-5 * BMAG[i] && bad++ < 5)
            CHECK_MSG(0, "many K=%d: C[%d][%d] off by %g", BK, i / BN, i % BN, fabs(BC[i] - BR[i]));
    CHECK_MSG(bad == 0, "%d wrong outputs at K = %d", bad, BK);
}

/* The packed kernel computes each output the same way wherever its row falls (first or
 * second half of a 32-row panel, a 16-wide last panel) and whatever rows share the call:
 * row i of an m-row product is bitwise the row computed alone. */
TEST(eng_kernel_gemm_many_rows_independent)
{
    enum { N = 29, K = 77, MAXM = 97 };
    static float A[MAXM * K], W[N * K], C[MAXM * N], one[N];
    for (int i = 0; i < MAXM * K; i++) A[i] = sinf(0.29f * (float)i);
    for (int i = 0; i < N * K; i++) W[i] = cosf(0.13f * (float)i);
    static const int ms[] = { 2, 16, 17, 33, 64, 65, 97 };
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
        int m = ms[mi];
        REQUIRE(eng_gemm_many(m, N, K, A, K, W, K, 0.0f, C, N) == 0);
        for (int i = 0; i < m; i++) {
            REQUIRE(eng_gemm_many(1, N, K, A + (size_t)i * K, K, W, K, 0.0f, one, N) == 0);
            REQUIRE_MSG(memcmp(one, C + (size_t)i * N, sizeof one) == 0, "m=%d row %d", m, i);
        }
    }
}

/* eng_transpose: whole 16 x 16 blocks (transposed in registers), the column and row
 * edges, strided source and destination; nothing written outside the block. */
TEST(eng_kernel_transpose)
{
    enum { LS = 53, LD = 61, MAX = 40 };
    static float src[MAX * LS], dst[LD * LD];
    for (int i = 0; i < MAX * LS; i++) src[i] = (float)i;
    static const int sizes[] = { 1, 3, 15, 16, 17, 31, 32, 33, 40 };
    for (size_t ri = 0; ri < sizeof sizes / sizeof *sizes; ri++)
        for (size_t ci = 0; ci < sizeof sizes / sizeof *sizes; ci++) {
            int rows = sizes[ri], cols = sizes[ci];
            for (int i = 0; i < LD * LD; i++) dst[i] = -1.0f;
            eng_transpose(rows, cols, src, LS, dst, LD);
            for (int c = 0; c < LD; c++)
                for (int r = 0; r < LD; r++) {
                    float want = c < cols && r < rows ? src[r * LS + c] : -1.0f;
                    REQUIRE_MSG(dst[c * LD + r] == want, "%d x %d: dst[%d][%d] = %g, want %g", rows,
                                cols, c, r, dst[c * LD + r], want);
                }
        }
}
