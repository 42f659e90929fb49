/* Engine kernels against double-precision references: the vectorised exp behind softmax,
 * gelu_new and logsumexp, rmsnorm, F16/BF16 conversion, and the gemm door's four shapes
 * (sgemv and sgemm, B transposed or not, strided operands). */
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
    eng_gelu_new(g, N);
    for (int i = 0; i < N; i++) {
        double v = x[i];
        double want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        maxabs = fmax(maxabs, fabs(g[i] - want));
    }
    CHECK_MSG(maxabs < 2e-6, "gelu_new max abs error %g", maxabs);
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
    float x[2][5] = { { 1, -2, 3, -4, 5 }, { 0.5f, 0.5f, 0.5f, 0.5f, 0.5f } }, w[5] = { 1, 2, 1, 2, 1 };
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
    CHECK(eng_f16_to_f32(0x0001) == ldexpf(1.0f, -24));     /* smallest subnormal */
    CHECK(eng_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));  /* largest subnormal */
    CHECK(isinf(eng_f16_to_f32(0x7c00)) && isnan(eng_f16_to_f32(0x7e00)));
    CHECK(eng_f16_to_f32(0x8000) == 0.0f && signbit(eng_f16_to_f32(0x8000)));
}

static void et_ref_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        int tb, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[i * lda + k] * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)s;
        }
}

TEST(eng_kernel_gemm_door)
{
    enum { M = 5, N = 7, K = 9, LD = 12 };
    static float A[M * LD], B[16 * LD], C[M * LD], R[M * LD];
    for (int i = 0; i < M * LD; i++) A[i] = (float)((i * 13) % 17) / 7 - 1;
    for (int i = 0; i < 16 * LD; i++) B[i] = (float)((i * 5) % 11) / 5 - 1;
    for (int tb = 0; tb < 2; tb++) {
        static const int ms[] = { 1, 2, 3, 4, M }; /* sgemv, sgemv per row, sgemm */
        for (int mi = 0; mi < 5; mi++) {
            int m = ms[mi];
            memset(C, 0, sizeof C);
            memset(R, 0, sizeof R);
            eng_gemm(m, N, K, A, LD, B, LD, tb, 0.0f, C, LD);
            et_ref_gemm(m, N, K, A, LD, B, LD, tb, R, LD);
            double md = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < N; j++) md = fmax(md, fabs(C[i * LD + j] - R[i * LD + j]));
            CHECK_MSG(md < 1e-5, "gemm m=%d trans_b=%d: max diff %g", m, tb, md);
            /* columns beyond N untouched: the door respects ldc */
            for (int i = 0; i < m; i++) CHECK(C[i * LD + N] == 0.0f);
        }
    }
    float y[N];
    eng_linear(A, 1, K, B, N, y);
    et_ref_gemm(1, N, K, A, K, B, K, 1, R, N);
    for (int j = 0; j < N; j++) CHECK(fabs(y[j] - R[j]) < 1e-5);
}
