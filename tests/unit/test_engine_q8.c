/* The int8 product (engine/gemm_q8.c) against references computed here from the
 * contract in engine/eng_q8.h:
 *   - exact: the outputs equal, bit for bit, (float)isum * (sa * sw) (+ beta c) with the
 *     quantized values and scales recomputed here (round-half-even of w / sw and of
 *     a * (127 / max|a|)), and the integer sums taken here;
 *   - error: against the double product of the float operands, each output is within
 *     the bound quantization implies, (sa/2) sum|w| + (sw/2) sum|a| + K sa sw / 4, plus
 *     1e-5 of sum|a w| for float rounding of the epilogue;
 *   - every kernel the CPU has gives the same bits, a row alone the same bits as in a
 *     batch, 1 thread the same as 2;
 *   - pack / check round trip, check refusing corrupted blobs, zero rows and extremes. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const q8t_kernels[] = { "avx512vnni", "avxvnni", "avx2", "c" };
#define Q8T_NK 4

static uint32_t q8t_rand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Values in [-1, 1) with a few larger ones, so rows have different scales. */
static void q8t_fill(float *x, size_t n, uint32_t *s)
{
    for (size_t i = 0; i < n; i++) {
        float v = (float)(q8t_rand(s) % 20001) / 10000.0f - 1.0f;
        if (q8t_rand(s) % 53 == 0) v *= 9.0f;
        x[i] = v;
    }
}

static void *q8t_pack(const float *W, int N, int K, int lds)
{
    size_t bytes = eng_q8_weight_bytes(N, K);
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) return NULL;
    if (eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, lds, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* The contract's quantization of one row (scale max/127 for weights, or the
 * activation's multiply by 127/max): q[K] and the scale. */
static float q8t_quant_w(const float *w, int K, int *q)
{
    float mx = 0;
    for (int k = 0; k < K; k++) mx = fmaxf(mx, fabsf(w[k]));
    if (mx < 1e-30f) {
        for (int k = 0; k < K; k++) q[k] = 0;
        return 1.0f;
    }
    float s = mx / 127.0f;
    for (int k = 0; k < K; k++) q[k] = (int)nearbyint((double)w[k] / (double)s);
    return s;
}

static float q8t_quant_a(const float *a, int K, int *q)
{
    float mx = 0;
    for (int k = 0; k < K; k++) mx = fmaxf(mx, fabsf(a[k]));
    if (mx < 1e-30f) {
        for (int k = 0; k < K; k++) q[k] = 0;
        return 0.0f;
    }
    float inv = 127.0f / mx;
    for (int k = 0; k < K; k++) {
        float x = a[k] * inv;
        q[k] = (int)nearbyintf(fminf(fmaxf(x, -127.0f), 127.0f));
    }
    return mx / 127.0f;
}

/* Checks C (from eng_gemm_q8 with beta over C0) against the exact formula and the error
 * bound; returns the largest error relative to the bound (<= 1 passes) in *rel, and
 * counts outputs that differ from the formula's bits. */
static int q8t_verify(int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                      float beta, const float *C0, const float *C, int ldc, double *rel)
{
    int *qa = malloc((size_t)K * sizeof *qa), *qw = malloc((size_t)N * K * sizeof *qw);
    float *sw = malloc((size_t)N * sizeof *sw);
    int bad = 0;
    if (!qa || !qw || !sw) {
        free(qa), free(qw), free(sw);
        return -1;
    }
    for (int n = 0; n < N; n++) sw[n] = q8t_quant_w(W + (size_t)n * ldw, K, qw + (size_t)n * K);
    for (int m = 0; m < M; m++) {
        const float *a = A + (size_t)m * lda;
        float sa = q8t_quant_a(a, K, qa);
        for (int n = 0; n < N; n++) {
            const float *w = W + (size_t)n * ldw;
            const int *q = qw + (size_t)n * K;
            int32_t isum = 0;
            double exact = 0, sabs = 0, suma = 0, sumw = 0;
            for (int k = 0; k < K; k++) {
                isum += qa[k] * q[k];
                exact += (double)a[k] * w[k];
                sabs += fabs((double)a[k] * w[k]);
                suma += fabs(a[k]);
                sumw += fabs(w[k]);
            }
            float v = (float)isum * (sa * sw[n]);
            float c0 = C0 ? C0[(size_t)m * ldc + n] : 0.0f;
            float want = beta == 0.0f ? v : v + beta * c0;
            float got = C[(size_t)m * ldc + n];
            if (memcmp(&want, &got, sizeof got) != 0) bad++;
            double bound = sa / 2.0 * sumw + sw[n] / 2.0 * suma + K * (double)sa * sw[n] / 4.0 +
                           1e-5 * sabs + 1e-30;
            double err = fabs((double)got - (beta == 0.0f ? 0.0 : (double)beta * c0) - exact);
            *rel = fmax(*rel, err / bound);
        }
    }
    free(qa), free(qw), free(sw);
    return bad;
}

TEST(q8_pack_roundtrip)
{
    enum { N = 37, K = 301, LDS = 310 };
    static float W[N * LDS], row[K];
    uint32_t s = 5;
    q8t_fill(W, sizeof W / sizeof *W, &s);
    CHECK(eng_q8_weight_bytes(0, 5) == 0 && eng_q8_weight_bytes(5, 0) == 0);
    CHECK(eng_q8_weight_bytes(1, ENG_Q8_MAX_K + 1) == 0);
    size_t bytes = eng_q8_weight_bytes(N, K);
    CHECK(bytes >= (size_t)48 * 304 + 48 * 8); /* values, scales and sums at least */
    CHECK(bytes < (size_t)48 * 304 + 48 * 8 + 256);
    void *p = q8t_pack(W, N, K, LDS);
    REQUIRE(p);
    CHECK(eng_q8_weight_check(p, bytes, N, K) == 0);
    int q[K];
    double maxerr = 0;
    for (int n = 0; n < N; n++) {
        float sw = q8t_quant_w(W + (size_t)n * LDS, K, q);
        eng_q8_weight_row(p, N, K, n, row);
        for (int k = 0; k < K; k++) {
            CHECK_MSG(row[k] == (float)q[k] * sw, "row %d k %d: %g vs %g", n, k, row[k],
                      (float)q[k] * sw);
            maxerr = fmax(maxerr, fabs(row[k] - W[(size_t)n * LDS + k]) / sw);
        }
    }
    CHECK_MSG(maxerr <= 0.5 + 1e-6, "dequantized weights off by %g steps", maxerr);
    /* a row out of range writes nothing */
    row[0] = 42.0f;
    eng_q8_weight_row(p, N, K, N, row);
    eng_q8_weight_row(p, N, K, -1, row);
    CHECK(row[0] == 42.0f);
    /* BF16 and F16 sources: the same blob as their values widened to F32 */
    static uint16_t h[N * K];
    static float wide[N * K];
    void *pw = malloc(bytes), *ph = malloc(bytes);
    REQUIRE(pw && ph);
    for (int type = ENG_Q8_SRC_BF16; type <= ENG_Q8_SRC_F16; type++) {
        for (int i = 0; i < N * K; i++) {
            uint16_t v = (uint16_t)q8t_rand(&s);
            /* finite: exponent not all ones (bf16: 8 bits from bit 7; f16: 5 from bit 10) */
            if (type == ENG_Q8_SRC_BF16 && (v & 0x7f80) == 0x7f80) v &= 0xbfff;
            if (type == ENG_Q8_SRC_F16 && (v & 0x7c00) == 0x7c00) v &= 0xbfff;
            h[i] = v;
            wide[i] = type == ENG_Q8_SRC_BF16 ? eng_bf16_to_f32(v) : eng_f16_to_f32(v);
        }
        CHECK(eng_q8_weight_pack(h, type, N, K, K, ph) == 0);
        CHECK(eng_q8_weight_pack(wide, ENG_Q8_SRC_F32, N, K, K, pw) == 0);
        CHECK_MSG(memcmp(pw, ph, bytes) == 0, "type %d packs unlike its F32 values", type);
        CHECK(eng_q8_weight_check(ph, bytes, N, K) == 0);
    }
    /* bad arguments and non-finite weights */
    CHECK(eng_q8_weight_pack(W, 7, N, K, LDS, pw) < 0);
    CHECK(eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, K - 1, pw) < 0);
    CHECK(eng_q8_weight_pack(NULL, ENG_Q8_SRC_F32, N, K, K, pw) < 0);
    W[5 * LDS + 7] = NAN;
    CHECK(eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, LDS, pw) < 0);
    W[5 * LDS + 7] = INFINITY;
    CHECK(eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, LDS, pw) < 0);
    free(p), free(pw), free(ph);
}

/* A pack large enough for the threads to share its rows: the same blob at 1 and 2
 * threads, and a non-finite weight in any row still refused. */
TEST(q8_pack_threads)
{
    enum { N = 700, K = 512 };
    float *W = malloc(sizeof(float) * N * K);
    size_t bytes = eng_q8_weight_bytes(N, K);
    void *p1 = malloc(bytes), *p2 = malloc(bytes);
    REQUIRE(W && p1 && p2);
    uint32_t s = 21;
    q8t_fill(W, (size_t)N * K, &s);
    eng_set_threads(1);
    REQUIRE(eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, K, p1) == 0);
    eng_set_threads(2);
    REQUIRE(eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, K, p2) == 0);
    CHECK(memcmp(p1, p2, bytes) == 0);
    CHECK(eng_q8_weight_check(p2, bytes, N, K) == 0);
    W[(size_t)650 * K + 3] = NAN;
    CHECK(eng_q8_weight_pack(W, ENG_Q8_SRC_F32, N, K, K, p2) == -8);
    free(W), free(p1), free(p2);
}

TEST(q8_check_rejects_corrupt)
{
    enum { N = 21, K = 67 };
    static float W[N * K];
    uint32_t s = 9;
    q8t_fill(W, sizeof W / sizeof *W, &s);
    size_t bytes = eng_q8_weight_bytes(N, K);
    unsigned char *p = q8t_pack(W, N, K, K), *c = malloc(bytes + 64);
    REQUIRE(p && c);
    REQUIRE(eng_q8_weight_check(p, bytes, N, K) == 0);
    /* the layout eng_q8.h states: header, scales, sums, 64-aligned values */
    size_t np = 32, kp = 68, scales = 128, sums = scales + 4 * np;
    size_t data = (sums + 4 * np + 63) & ~(size_t)63;
    CHECK(bytes == data + np * kp);
    float nan = NAN, neg = -0.5f, zero = 0.0f;
    int32_t one = 1;
    struct {
        const char *what;
        size_t off;
        const void *val;
        size_t len;
        int rc;
    } cases[] = {
        { "magic", 0, "X", 1, -2 },
        { "version", 8, &one, 1, -2 },
        { "N in the header", 12, "\x16", 1, -2 },
        { "NaN scale", scales + 4 * 3, &nan, 4, -4 },
        { "negative scale", scales + 4 * 20, &neg, 4, -4 },
        { "zero scale", scales, &zero, 4, -4 },
        { "scale past N", scales + 4 * 21, &neg, 4, -4 },
        { "row sum", sums + 4 * 7, &one, 4, -6 },
        { "value -128", data + 5, "\x80", 1, -5 },
        { "value changed", data + 64 * 3 + 9, "\x7f", 1, -6 },
        { "padding past K", data + 64 * 16 + 4 * 2 + 3, "\x01", 1, -5 }, /* row 2, k 67 */
        { "padding past N", data + 16 * kp + 4 * 7, "\x01", 1, -5 },     /* row 23 */
        { "reserved header bytes", 100, "\x01", 1, -2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(c, p, bytes);
        if (cases[i].off == 8) {
            uint32_t v = 2;
            memcpy(c + 8, &v, 4);
        } else {
            memcpy(c + cases[i].off, cases[i].val, cases[i].len);
        }
        CHECK_MSG(memcmp(c, p, bytes) != 0, "%s: the case changes nothing", cases[i].what);
        int rc = eng_q8_weight_check(c, bytes, N, K);
        CHECK_MSG(rc == cases[i].rc, "%s: check gives %d (%s), not %d", cases[i].what, rc,
                  eng_q8_strerror(rc), cases[i].rc);
    }
    CHECK(strcmp(eng_q8_strerror(0), "ok") == 0);
    CHECK(strstr(eng_q8_strerror(-4), "scale") != NULL);
    CHECK(strstr(eng_q8_strerror(-3), "length") != NULL);
    memcpy(c, p, bytes);
    CHECK(eng_q8_weight_check(c, bytes, N, K) == 0);
    CHECK(eng_q8_weight_check(c, bytes - 1, N, K) == -3);
    CHECK(eng_q8_weight_check(c, bytes + 64, N, K) == -3);
    CHECK(eng_q8_weight_check(c, 100, N, K) == -3);
    CHECK(eng_q8_weight_check(c, bytes, N + 1, K) == -2);
    CHECK(eng_q8_weight_check(c, bytes, N, K - 1) == -2);
    CHECK(eng_q8_weight_check(c, bytes, K, N) == -2);
    CHECK(eng_q8_weight_check(NULL, bytes, N, K) < 0);
    /* the product refuses a blob of another shape */
    float A[K], C[N + 1];
    q8t_fill(A, K, &s);
    CHECK(eng_gemm_q8(1, N, K, A, K, p, 0.0f, C, N) == 0);
    CHECK(eng_gemm_q8(1, N + 1, K, A, K, p, 0.0f, C, N + 1) < 0);
    CHECK(eng_gemm_q8(1, N, K + 1, A, K + 1, p, 0.0f, C, N) < 0);
    CHECK(eng_gemm_q8(1, N, K, A, K - 1, p, 0.0f, C, N) < 0);
    memcpy(c, p, bytes);
    c[0] ^= 1;
    CHECK(eng_gemm_q8(1, N, K, A, K, c, 0.0f, C, N) < 0);
    free(p), free(c);
}

/* Every shape of the list on every kernel: exact against the formula, within the bound,
 * and the same bits on every kernel. */
TEST_TIMEOUT(q8_product_shapes_all_kernels, 120)
{
    static const int Ks[] = { 1, 3, 17, 63, 64, 65, 300, 1000 }, Ns[] = { 1, 5, 16, 17, 33, 64 };
    static const int Ms[] = { 1, 3, 17, 64, 300 };
    enum { LD = 1003, MAXM = 300, MAXN = 64, LDC = 67 };
    float *A = malloc(sizeof(float) * MAXM * LD), *W = malloc(sizeof(float) * MAXN * LD);
    float *C0 = malloc(sizeof(float) * MAXM * LDC), *C = malloc(sizeof(float) * MAXM * LDC);
    float *first = malloc(sizeof(float) * MAXM * LDC);
    REQUIRE(A && W && C0 && C && first);
    uint32_t s = 1234;
    q8t_fill(A, (size_t)MAXM * LD, &s);
    q8t_fill(W, (size_t)MAXN * LD, &s);
    q8t_fill(C0, (size_t)MAXM * LDC, &s);
    int kernels = 0;
    double worst = 0;
    for (int ki = 0; ki < Q8T_NK; ki++) {
        if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
        kernels++;
        CHECK(strcmp(eng_q8_kernel(), q8t_kernels[ki]) == 0);
        for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
            for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++) {
                int K = Ks[a], N = Ns[b];
                void *p = q8t_pack(W, N, K, LD);
                REQUIRE(p);
                for (size_t c = 0; c < sizeof Ms / sizeof *Ms; c++) {
                    int M = Ms[c];
                    float beta = (a + b + c) % 3 == 0 ? 0.5f : 0.0f;
                    memcpy(C, C0, sizeof(float) * MAXM * LDC);
                    REQUIRE(eng_gemm_q8(M, N, K, A, LD, p, beta, C, LDC) == 0);
                    double rel = 0;
                    int bad = q8t_verify(M, N, K, A, LD, W, LD, beta, C0, C, LDC, &rel);
                    CHECK_MSG(bad == 0, "%s M %d N %d K %d: %d outputs unlike the formula",
                              q8t_kernels[ki], M, N, K, bad);
                    CHECK_MSG(rel <= 1.0, "%s M %d N %d K %d: error %.3g of the bound",
                              q8t_kernels[ki], M, N, K, rel);
                    worst = fmax(worst, rel);
                    /* columns past N untouched */
                    for (int m = 0; m < M; m++)
                        for (int n = N; n < LDC; n++)
                            CHECK(C[(size_t)m * LDC + n] == C0[(size_t)m * LDC + n]);
                }
                free(p);
            }
    }
    /* all kernels agree bit for bit: the last shape again on each */
    int K = 1000, N = 33, M = 300;
    void *p = q8t_pack(W, N, K, LD);
    REQUIRE(p);
    int n = 0;
    for (int ki = 0; ki < Q8T_NK; ki++) {
        if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
        REQUIRE(eng_gemm_q8(M, N, K, A, LD, p, 0.0f, C, LDC) == 0);
        if (n++ == 0) memcpy(first, C, sizeof(float) * MAXM * LDC);
        else
            CHECK_MSG(memcmp(first, C, sizeof(float) * M * LDC) == 0, "%s differs from %s",
                      q8t_kernels[ki], q8t_kernels[0]);
    }
    printf("    q8: %d kernels, largest error %.3f of the quantization bound\n", kernels, worst);
    CHECK(kernels >= 1);
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    /* the CPU's kernels are all there */
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"))
        CHECK(eng_q8_set_kernel("avx512vnni") == 0);
    if (__builtin_cpu_supports("avx2")) CHECK(eng_q8_set_kernel("avx2") == 0);
#endif
    CHECK(eng_q8_set_kernel("c") == 0);
    CHECK(eng_q8_set_kernel("nonesuch") < 0);
    CHECK(eng_q8_set_kernel(NULL) == 0);
    free(p), free(A), free(W), free(C0), free(C), free(first);
}

/* A row's outputs alone equal its outputs in a batch of 300, at 1 and 2 threads, on every
 * kernel (sizes past the one-thread threshold). */
TEST_TIMEOUT(q8_rows_alone_batch_threads, 120)
{
    enum { M = 300, N = 77, K = 515, LD = 520 };
    float *A = malloc(sizeof(float) * M * LD), *W = malloc(sizeof(float) * N * K);
    float *C = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    REQUIRE(A && W && C && ref);
    uint32_t s = 99;
    q8t_fill(A, (size_t)M * LD, &s);
    q8t_fill(W, (size_t)N * K, &s);
    void *p = q8t_pack(W, N, K, K);
    REQUIRE(p);
    int runs = 0;
    for (int ki = 0; ki < Q8T_NK; ki++) {
        if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
        for (int threads = 1; threads <= 2; threads++) {
            eng_set_threads(threads);
            REQUIRE(eng_gemm_q8(M, N, K, A, LD, p, 0.0f, C, N) == 0);
            if (runs++ == 0) memcpy(ref, C, sizeof(float) * M * N);
            CHECK_MSG(memcmp(ref, C, sizeof(float) * M * N) == 0, "%s at %d threads differs",
                      q8t_kernels[ki], threads);
            static const int sizes[] = { 1, 2, 3, 7, 8, 9, 16, 17 };
            for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
                int m0 = (int)(i * 37) % (M - 17), rows = sizes[i];
                float out[17 * N];
                REQUIRE(eng_gemm_q8(rows, N, K, A + (size_t)m0 * LD, LD, p, 0.0f, out, N) == 0);
                CHECK_MSG(memcmp(out, ref + (size_t)m0 * N, sizeof(float) * rows * N) == 0,
                          "%s, %d threads: rows %d..%d alone differ from the batch",
                          q8t_kernels[ki], threads, m0, m0 + rows - 1);
            }
        }
    }
    CHECK(runs >= 2);
    free(p), free(A), free(W), free(C), free(ref);
}

/* Zero rows, saturated values, large and tiny activations, Inf and NaN. */
TEST(q8_extremes)
{
    enum { N = 19, K = 70 };
    static float W[N * K], A[6 * K], C[6 * N];
    uint32_t s = 3;
    q8t_fill(W, sizeof W / sizeof *W, &s);
    for (int k = 0; k < K; k++) {
        W[0 * K + k] = 0.0f;                    /* a row of zeros */
        W[1 * K + k] = k % 2 ? 3.0f : -3.0f;    /* +-127 everywhere */
        W[2 * K + k] = k == 5 ? 1e-3f : 1e-35f; /* tiny but one */
        A[0 * K + k] = 0.0f;                    /* a row of zeros */
        A[1 * K + k] = k % 2 ? -2e30f : 2e30f;  /* large, +-127 */
        A[2 * K + k] = 1e-35f;                  /* tiny: zeros */
        A[3 * K + k] = (float)k - 35.0f;
        A[4 * K + k] = k == 9 ? NAN : 1.0f;
        A[5 * K + k] = k == 9 ? -INFINITY : 1.0f;
    }
    for (int k = 0; k < K; k++) W[3 * K + k] = 2e-31f; /* below the tiny bound: zeros */
    void *p = q8t_pack(W, N, K, K);
    REQUIRE(p);
    size_t bytes = eng_q8_weight_bytes(N, K);
    CHECK(eng_q8_weight_check(p, bytes, N, K) == 0);
    float row[K];
    eng_q8_weight_row(p, N, K, 1, row);
    for (int k = 0; k < K; k++) CHECK(row[k] == W[1 * K + k]);
    eng_q8_weight_row(p, N, K, 0, row);
    for (int k = 0; k < K; k++) CHECK(row[k] == 0.0f);
    for (int ki = 0; ki < Q8T_NK; ki++) {
        if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
        for (size_t i = 0; i < sizeof C / sizeof *C; i++) C[i] = 7.0f;
        REQUIRE(eng_gemm_q8(6, N, K, A, K, p, 0.0f, C, N) == 0);
        double rel = 0;
        /* the finite rows: exact and within the bound */
        int bad = q8t_verify(4, N, K, A, K, W, K, 0.0f, NULL, C, N, &rel);
        CHECK_MSG(bad == 0 && rel <= 1.0, "%s: %d outputs off, error %.3g of the bound",
                  q8t_kernels[ki], bad, rel);
        for (int n = 0; n < N; n++) {
            CHECK(C[0 * N + n] == 0.0f); /* zero activations */
            CHECK(C[2 * N + n] == 0.0f); /* tiny activations */
            CHECK_MSG(isnan(C[4 * N + n]) && isnan(C[5 * N + n]), "%s: Inf/NaN row gives %g %g",
                      q8t_kernels[ki], C[4 * N + n], C[5 * N + n]);
        }
        CHECK(C[1 * N + 0] == 0.0f && C[3 * N + 0] == 0.0f); /* zero weight row */
        /* +-127 against +-127: K * 127 * 127 * sa * sw, exactly the true product */
        float want = (float)(-K * 127 * 127) * ((2e30f / 127.0f) * (3.0f / 127.0f));
        CHECK_MSG(C[1 * N + 1] == want, "%s: saturated %g vs %g", q8t_kernels[ki], C[1 * N + 1],
                  want);
        CHECK(fabs(C[1 * N + 1] - (-K * 6e30)) < 1e-5 * K * 6e30);
        /* beta adds to C */
        float c2[N];
        for (int n = 0; n < N; n++) c2[n] = 1.0f;
        REQUIRE(eng_gemm_q8(1, N, K, A + 3 * K, K, p, 2.0f, c2, N) == 0);
        for (int n = 0; n < N; n++) CHECK(c2[n] == C[3 * N + n] + 2.0f);
    }
    CHECK(eng_gemm_q8(0, N, K, A, K, p, 0.0f, C, N) == 0);
    CHECK(eng_gemm_q8(-1, N, K, A, K, p, 0.0f, C, N) < 0);
    CHECK(eng_gemm_q8(1, N, K, NULL, K, p, 0.0f, C, N) < 0);
    free(p);
}

/* eng_q8_pack_rows (an int8 model's attention keys and values, made at run time): on every
 * kernel the same bytes; each row's values and scale those of the activation rule
 * (q8t_quant_a), its row sum theirs, padding zero (eng_q8_weight_check passes); a row of
 * zeros gets scale 0, a row with Inf or NaN a NaN scale and NaN outputs. Shapes off the
 * vector widths: N 1, 3, 17, 64, 300; K 1 .. 515. */
TEST_TIMEOUT(q8_pack_rows_all_kernels, 120)
{
    static const int Ks[] = { 1, 3, 4, 17, 63, 64, 65, 515 }, Ns[] = { 1, 3, 17, 64, 300 };
    enum { LD = 520, MAXN = 300 };
    float *X = malloc(sizeof(float) * MAXN * LD);
    REQUIRE(X);
    uint32_t s = 777;
    q8t_fill(X, (size_t)MAXN * LD, &s);
    int q[LD], checked = 0;
    for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++) {
            int K = Ks[a], N = Ns[b];
            size_t bytes = eng_q8_weight_bytes(N, K);
            unsigned char *first = NULL;
            for (int ki = 0; ki < Q8T_NK; ki++) {
                if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
                unsigned char *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
                REQUIRE(p);
                memset(p, 0x5a, bytes); /* whatever was there before */
                REQUIRE(eng_q8_pack_rows(X, N, K, LD, p) == 0);
                if (!first) {
                    first = p;
                    CHECK_MSG(eng_q8_weight_check(p, bytes, N, K) == 0, "N %d K %d: %s", N, K,
                              eng_q8_strerror(eng_q8_weight_check(p, bytes, N, K)));
                    for (int n = 0; n < N; n++) {
                        float sc = q8t_quant_a(X + (size_t)n * LD, K, q), row[LD];
                        eng_q8_weight_row(p, N, K, n, row);
                        int off = 0;
                        for (int k = 0; k < K; k++) off += row[k] != (float)q[k] * sc;
                        CHECK_MSG(off == 0, "N %d K %d row %d: %d values off the rule", N, K, n,
                                  off);
                        checked++;
                    }
                    continue;
                }
                CHECK_MSG(memcmp(first, p, bytes) == 0, "N %d K %d: %s's blob differs", N, K,
                          q8t_kernels[ki]);
                free(p);
            }
            free(first);
        }
    printf("    pack_rows: %d rows as the activation rule, every kernel the same bytes\n", checked);
    /* extremes: zeros, tiny, Inf, NaN */
    enum { EN = 5, EK = 37 };
    float E[EN * EK], A[2 * EK], C[2 * EN];
    q8t_fill(E, EN * EK, &s);
    q8t_fill(A, 2 * EK, &s);
    for (int k = 0; k < EK; k++) {
        E[0 * EK + k] = 0.0f;
        E[1 * EK + k] = 1e-35f;
        E[3 * EK + k] = k == 30 ? INFINITY : E[3 * EK + k];
        E[4 * EK + k] = k == 2 ? NAN : E[4 * EK + k];
    }
    for (int ki = 0; ki < Q8T_NK; ki++) {
        if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
        size_t bytes = eng_q8_weight_bytes(EN, EK);
        unsigned char *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        REQUIRE(p);
        REQUIRE(eng_q8_pack_rows(E, EN, EK, EK, p) == 0);
        float row[EK];
        for (int n = 0; n < 2; n++) {
            eng_q8_weight_row(p, EN, EK, n, row);
            for (int k = 0; k < EK; k++) CHECK(row[k] == 0.0f && !signbit(row[k]));
        }
        REQUIRE(eng_gemm_q8(2, EN, EK, A, EK, p, 0.0f, C, EN) == 0);
        for (int m = 0; m < 2; m++) {
            CHECK(C[m * EN + 0] == 0.0f && C[m * EN + 1] == 0.0f);
            CHECK(isfinite(C[m * EN + 2]));
            CHECK_MSG(isnan(C[m * EN + 3]) && isnan(C[m * EN + 4]), "%s: Inf/NaN rows give %g %g",
                      q8t_kernels[ki], C[m * EN + 3], C[m * EN + 4]);
        }
        free(p);
    }
    CHECK(eng_q8_set_kernel(NULL) == 0);
    CHECK(eng_q8_pack_rows(NULL, 1, 1, 1, E) < 0);
    CHECK(eng_q8_pack_rows(E, 0, 1, 1, E) < 0);
    CHECK(eng_q8_pack_rows(E, 2, 8, 7, E) < 0); /* lds < K */
    free(X);
}

/* eng_gemm_q8_serial: the bits of eng_gemm_q8 (beta 0) plus the bias row added to each
 * output (row m's at bias + m * bstep: attention's position bias is bstep -1, one table
 * read from further left each row), on every kernel; bias NULL is eng_gemm_q8; inside a
 * parallel region each thread's call gives those bits too. */
TEST_TIMEOUT(q8_serial_bias, 120)
{
    static const int Ms[] = { 1, 3, 17, 64, 300 }, Ks[] = { 3, 64, 130 }, Ns[] = { 5, 64, 300 };
    enum { LD = 301, MAXM = 300, BL = 2 * 300 + 300 };
    float *A = malloc(sizeof(float) * MAXM * LD), *W = malloc(sizeof(float) * 300 * LD);
    float *C = malloc(sizeof(float) * MAXM * LD), *R = malloc(sizeof(float) * MAXM * LD);
    float *bias = malloc(sizeof(float) * BL);
    REQUIRE(A && W && C && R && bias);
    uint32_t s = 4242;
    q8t_fill(A, (size_t)MAXM * LD, &s);
    q8t_fill(W, (size_t)300 * LD, &s);
    q8t_fill(bias, BL, &s);
    int cases = 0;
    for (int ki = 0; ki < Q8T_NK; ki++) {
        if (eng_q8_set_kernel(q8t_kernels[ki]) != 0) continue;
        for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
            for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++) {
                int K = Ks[a], N = Ns[b];
                size_t bytes = eng_q8_weight_bytes(N, K);
                unsigned char *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
                REQUIRE(p);
                REQUIRE(eng_q8_pack_rows(W, N, K, LD, p) == 0);
                for (size_t c = 0; c < sizeof Ms / sizeof *Ms; c++) {
                    int M = Ms[c];
                    for (int mode = 0; mode < 3; mode++) {
                        /* mode 0: no bias; 1: bstep -1 from the middle; 2: bstep N */
                        const float *b0 = mode == 0 ? NULL : mode == 1 ? bias + MAXM : bias;
                        long step = mode == 1 ? -1 : N;
                        if (mode == 2 && (long)(M - 1) * N + N > BL) continue;
                        REQUIRE(eng_gemm_q8(M, N, K, A, LD, p, 0.0f, R, LD) == 0);
                        for (int m = 0; b0 && m < M; m++)
                            for (int n = 0; n < N; n++) R[(size_t)m * LD + n] += b0[m * step + n];
                        for (size_t i = 0; i < (size_t)M * LD; i++) C[i] = 7.0f;
                        REQUIRE(eng_gemm_q8_serial(M, N, K, A, LD, p, b0, step, C, LD) == 0);
                        int off = 0;
                        for (int m = 0; m < M; m++) {
                            off += memcmp(C + (size_t)m * LD, R + (size_t)m * LD,
                                          sizeof(float) * N) != 0;
                            for (int n = N; n < LD; n++) off += C[(size_t)m * LD + n] != 7.0f;
                        }
                        CHECK_MSG(off == 0, "%s M %d N %d K %d bias mode %d: %d rows differ",
                                  q8t_kernels[ki], M, N, K, mode, off);
                        cases++;
                    }
                }
                free(p);
            }
    }
    /* two threads at once, each its own serial products: the same bits */
    int M = 300, N = 300, K = 130;
    size_t bytes = eng_q8_weight_bytes(N, K);
    unsigned char *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    REQUIRE(p);
    CHECK(eng_q8_set_kernel(NULL) == 0);
    REQUIRE(eng_q8_pack_rows(W, N, K, LD, p) == 0);
    REQUIRE(eng_gemm_q8_serial(M, N, K, A, LD, p, bias + MAXM, -1, R, LD) == 0);
    float *C2 = malloc(sizeof(float) * MAXM * LD);
    REQUIRE(C2);
    eng_set_threads(2);
    int rc[2] = { -1, -1 };
#ifdef _OPENMP
#pragma omp parallel for num_threads(2)
#endif
    for (int t = 0; t < 2; t++)
        rc[t] = eng_gemm_q8_serial(M, N, K, A, LD, p, bias + MAXM, -1, t ? C2 : C, LD);
    CHECK(rc[0] == 0 && rc[1] == 0);
    for (int m = 0; m < M; m++) {
        CHECK(memcmp(C + (size_t)m * LD, R + (size_t)m * LD, sizeof(float) * N) == 0);
        CHECK(memcmp(C2 + (size_t)m * LD, R + (size_t)m * LD, sizeof(float) * N) == 0);
    }
    /* a blob of another shape is refused */
    CHECK(eng_gemm_q8_serial(M, N - 1, K, A, LD, p, NULL, 0, C, LD) < 0);
    printf("    serial + bias: %d cases bitwise eng_gemm_q8 + bias\n", cases);
    free(p), free(A), free(W), free(C), free(C2), free(R), free(bias);
}
