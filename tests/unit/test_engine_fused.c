/* The encoder's fused and blocked kernels (issue 16's encoder speed) against the plain
 * computations they replace, bit for bit: attention's products of one head
 * (eng_attn_scores with the position bias in its store, eng_attn_pv over blocks of keys)
 * against eng_gemm_serial plus the bias pass, the residual with the next RMS norm against
 * eng_add then eng_rmsnorm, the vectorised elementwise loops against scalar loops; and
 * against a double reference, so that both sides are known to be right. Odd shapes: rows
 * not a multiple of 4, keys and d_kv not multiples of 16, a single row and key. */
#include "engine/eng_int.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static unsigned fu_seed = 1;

static float fu_rand(void)
{
    fu_seed = fu_seed * 1103515245u + 12345u;
    return (float)((fu_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fu_fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * fu_rand();
}

TEST(eng_fused_attention_products_bitwise)
{
    static const int lqs[] = { 1, 3, 4, 5, 17, 64, 130 };
    static const int lks[] = { 1, 15, 16, 17, 63, 64, 65, 130, 300 };
    static const int dks[] = { 16, 24, 64, 80 };
    enum { MAXL = 300, MAXD = 80, LDQ = 2 * MAXD + 3, LDK = MAXL + 16 };
    float *q = malloc(sizeof(float) * MAXL * LDQ), *kt = malloc(sizeof(float) * MAXD * LDK),
          *v = malloc(sizeof(float) * MAXL * LDQ), *bias = malloc(sizeof(float) * (2 * MAXL + 1)),
          *s1 = malloc(sizeof(float) * MAXL * MAXL), *s2 = malloc(sizeof(float) * MAXL * MAXL),
          *o1 = malloc(sizeof(float) * MAXL * LDQ), *o2 = malloc(sizeof(float) * MAXL * LDQ);
    REQUIRE(q && kt && v && bias && s1 && s2 && o1 && o2);
    fu_fill(q, (size_t)MAXL * LDQ, 1.0f);
    fu_fill(kt, (size_t)MAXD * LDK, 1.0f);
    fu_fill(v, (size_t)MAXL * LDQ, 1.0f);
    fu_fill(bias, 2 * MAXL + 1, 4.0f);
    int cases = 0;
    double worst = 0;
    for (size_t a = 0; a < sizeof lqs / sizeof *lqs; a++)
        for (size_t b = 0; b < sizeof lks / sizeof *lks; b++)
            for (size_t d = 0; d < sizeof dks / sizeof *dks; d++)
                for (int withb = 0; withb < 2; withb++) {
                    int Lq = lqs[a], Lk = lks[b], dk = dks[d];
                    /* row i's bias starts MAXL - i into the table, as the encoder's */
                    const float *b0 = withb ? bias + MAXL : NULL;
                    eng_attn_scores(Lq, Lk, dk, q, LDQ, kt, LDK, b0, -1, s1, Lk);
                    eng_gemm_serial(Lq, Lk, dk, q, LDQ, kt, LDK, 0, 0.0f, s2, Lk);
                    for (int i = 0; withb && i < Lq; i++)
                        for (int j = 0; j < Lk; j++) s2[(size_t)i * Lk + j] += b0[j - i];
                    CHECK_MSG(memcmp(s1, s2, sizeof(float) * Lq * Lk) == 0,
                              "scores differ from eng_gemm_serial: Lq %d Lk %d dk %d bias %d", Lq,
                              Lk, dk, withb);
                    for (int i = 0; i < Lq; i++)
                        for (int j = 0; j < Lk; j++) {
                            double want = withb ? b0[j - i] : 0;
                            for (int k = 0; k < dk; k++)
                                want += (double)q[(size_t)i * LDQ + k] * kt[(size_t)k * LDK + j];
                            worst = fmax(worst, fabs(s1[(size_t)i * Lk + j] - want));
                        }
                    /* values through the same scores (any numbers will do) */
                    memset(o1, 0xff, sizeof(float) * MAXL * LDQ); /* NaN: nothing is read */
                    eng_attn_pv(Lq, Lk, dk, s1, Lk, v, LDQ, o1, LDQ);
                    eng_gemm_serial(Lq, dk, Lk, s1, Lk, v, LDQ, 0, 0.0f, o2, LDQ);
                    int same = 1;
                    for (int i = 0; i < Lq; i++)
                        same &= memcmp(o1 + (size_t)i * LDQ, o2 + (size_t)i * LDQ,
                                       sizeof(float) * dk) == 0;
                    CHECK_MSG(same, "p.v differs from eng_gemm_serial: Lq %d Lk %d dk %d", Lq, Lk,
                              dk);
                    for (int i = 0; i < Lq; i++)
                        for (int e = 0; e < dk; e++) {
                            double want = 0;
                            for (int j = 0; j < Lk; j++)
                                want += (double)s1[(size_t)i * Lk + j] * v[(size_t)j * LDQ + e];
                            worst = fmax(worst,
                                         fabs(o1[(size_t)i * LDQ + e] - want) / (1.0 + fabs(want)));
                        }
                    cases++;
                }
    CHECK_MSG(worst < 1e-4, "attention products off the double reference by %g", worst);
    CHECK(cases == 7 * 9 * 4 * 2);
    free(q), free(kt), free(v), free(bias), free(s1), free(s2), free(o1), free(o2);
}

TEST(eng_fused_add_rmsnorm_bitwise)
{
    static const int ds[] = { 1, 5, 16, 37, 512 };
    enum { ROWS = 70, MAXD = 512 }; /* 70 x 512: past the threads' threshold */
    float *x1 = malloc(sizeof(float) * ROWS * MAXD), *x2 = malloc(sizeof(float) * ROWS * MAXD),
          *h = malloc(sizeof(float) * ROWS * MAXD), *h1 = malloc(sizeof(float) * ROWS * MAXD),
          *o2 = malloc(sizeof(float) * ROWS * MAXD), *w = malloc(sizeof(float) * MAXD);
    REQUIRE(x1 && x2 && h && h1 && o2 && w);
    for (size_t c = 0; c < sizeof ds / sizeof *ds; c++) {
        int d = ds[c];
        size_t n = (size_t)ROWS * d;
        fu_fill(x1, n, 3.0f);
        fu_fill(h, n, 2.0f);
        fu_fill(w, (size_t)d, 1.5f);
        memcpy(x2, x1, n * sizeof(float));
        memcpy(h1, h, n * sizeof(float));
        eng_add_rmsnorm(x1, h1, w, ROWS, d, 1e-6f, h1); /* into h, as the encoder does */
        eng_add(x2, h, n);
        eng_rmsnorm(x2, w, ROWS, d, 1e-6f, o2);
        CHECK_MSG(memcmp(x1, x2, n * sizeof(float)) == 0, "residual differs at d %d", d);
        CHECK_MSG(memcmp(h1, o2, n * sizeof(float)) == 0, "norm differs at d %d", d);
        double worst = 0;
        for (int r = 0; r < ROWS; r++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double)x2[(size_t)r * d + i] * x2[(size_t)r * d + i];
            double inv = 1.0 / sqrt(ss / d + 1e-6);
            for (int i = 0; i < d; i++)
                worst =
                    fmax(worst, fabs(h1[(size_t)r * d + i] - w[i] * x2[(size_t)r * d + i] * inv));
        }
        CHECK_MSG(worst < 1e-5, "rmsnorm off the double reference by %g at d %d", worst, d);
    }
    free(x1), free(x2), free(h), free(h1), free(o2), free(w);
}

TEST(eng_fused_elementwise_as_scalar)
{
    enum { N = 40000 }; /* past the threads' threshold; and short lengths below */
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N),
          *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    REQUIRE(x && y && a && b);
    fu_fill(x, N, 5.0f);
    fu_fill(y, N, 5.0f);
    x[3] = -0.0f, x[5] = NAN, x[40] = INFINITY, x[41] = -INFINITY;
    static const size_t ns[] = { 1, 15, 17, 33, 100, N };
    for (size_t c = 0; c < sizeof ns / sizeof *ns; c++) {
        size_t n = ns[c];
        memcpy(a, x, n * sizeof(float));
        eng_add(a, y, n);
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            float want = x[i] + y[i];
            ok &= memcmp(&a[i], &want, sizeof want) == 0;
        }
        CHECK_MSG(ok, "eng_add differs from x + y (n %zu)", n);
        memcpy(a, x, n * sizeof(float));
        eng_scale(a, n, 0.125f + (float)c);
        ok = 1;
        for (size_t i = 0; i < n; i++) {
            float want = x[i] * (0.125f + (float)c);
            ok &= memcmp(&a[i], &want, sizeof want) == 0;
        }
        CHECK_MSG(ok, "eng_scale differs from x * s (n %zu)", n);
        memcpy(a, x, n * sizeof(float));
        eng_relu(a, n);
        ok = 1;
        for (size_t i = 0; i < n; i++) {
            float want = x[i] > 0.0f ? x[i] : 0.0f; /* NaN and -0 to +0 */
            ok &= memcmp(&a[i], &want, sizeof want) == 0;
        }
        CHECK_MSG(ok, "eng_relu differs from max(x, 0) (n %zu)", n);
    }
    /* softmax's max of four chains: a row whose largest value is in each position */
    for (int at = 0; at < 70; at++) {
        float r[70], want[70];
        double sum = 0;
        for (int i = 0; i < 70; i++) r[i] = (float)(i % 9) - 20.0f;
        r[at] = 3.0f;
        for (int i = 0; i < 70; i++) sum += exp((double)r[i] - 3.0);
        for (int i = 0; i < 70; i++) want[i] = (float)(exp((double)r[i] - 3.0) / sum);
        eng_softmax(r, 70);
        double worst = 0;
        for (int i = 0; i < 70; i++) worst = fmax(worst, fabs(r[i] - want[i]) / want[i]);
        CHECK_MSG(worst < 1e-5, "softmax with its max at %d: rel error %g", at, worst);
    }
    free(x), free(y), free(a), free(b);
}
