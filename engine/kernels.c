/* Tensor kernels: the elementwise pieces of the T5 forward pass (matrix products are in
 * gemm.c). Nothing here allocates. */
#include "engine/eng_int.h"

#include <math.h>
#include <string.h>

/* The loops below run 16 lanes at a time with GCC/Clang vector extensions, compiled for
 * AVX-512, AVX2 and the baseline (ENG_CLONES). This file is compiled without contracting
 * a * b + c into one FMA, so every clone computes the same bits, except in the region
 * marked below (attention's products), which contracts where the clone has FMA, as gemm.c
 * does. The helpers that take or return vectors are always inlined: a call between code
 * built for different CPUs would pass 64-byte vectors in different ways. */
typedef float ek_vf __attribute__((vector_size(64)));
typedef int32_t ek_vi __attribute__((vector_size(64)));
#define EK_LANES 16

__attribute__((always_inline)) static inline ek_vf ek_vload(const float *p)
{
    ek_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

__attribute__((always_inline)) static inline void ek_vstore(float *p, ek_vf v)
{
    memcpy(p, &v, sizeof v);
}

__attribute__((always_inline)) static inline ek_vf ek_vsplat(float f)
{
    ek_vf v;
    for (int l = 0; l < EK_LANES; l++) v[l] = f;
    return v;
}

/* The first n (< 16) values at p, the other lanes fill. */
__attribute__((always_inline)) static inline ek_vf ek_vload_part(const float *p, size_t n,
                                                                 float fill)
{
    ek_vf v = ek_vsplat(fill);
    memcpy(&v, p, n * sizeof(float));
    return v;
}

/* lanes of a where mask is set, else of b */
__attribute__((always_inline)) static inline ek_vf ek_vsel(ek_vi mask, ek_vf a, ek_vf b)
{
    return (ek_vf)((mask & (ek_vi)a) | (~mask & (ek_vi)b));
}

/* v's lanes h .. 2h - 1 (h = 8, 4, 2 or 1) moved to lanes 0 .. h - 1 (the lanes above
 * get copies): one step of the pairwise trees below, in registers (lane loops went
 * through memory). */
#define EK_HALF(v, h)                                                                               \
    ((h) == 8   ? __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, \
                                          14, 15)                                                   \
     : (h) == 4 ? __builtin_shufflevector(v, v, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7)     \
     : (h) == 2 ? __builtin_shufflevector(v, v, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3)     \
                : __builtin_shufflevector(v, v, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1))

/* The sum of the lanes, pairwise: lanes i and i + 8, then i + 4, i + 2, i + 1. */
__attribute__((always_inline)) static inline float ek_vsum(ek_vf v)
{
    v += EK_HALF(v, 8);
    v += EK_HALF(v, 4);
    v += EK_HALF(v, 2);
    v += EK_HALF(v, 1);
    return v[0];
}

/* The largest lane (none is NaN: the callers' maxima only take a value greater than
 * theirs), by the same tree: a max is the same value in any order. */
__attribute__((always_inline)) static inline float ek_vmax(ek_vf v)
{
    for (int h = EK_LANES / 2; h >= 1; h /= 2) {
        ek_vf u = EK_HALF(v, h);
        v = ek_vsel(u > v, u, v);
    }
    return v[0];
}

/* The largest of x[0..n), -inf for none (or all -inf). */
__attribute__((always_inline)) static inline float ek_max(const float *x, size_t n)
{
    ek_vf m = ek_vsplat(-INFINITY), m1 = m, m2 = m, m3 = m;
    size_t i = 0;
    /* four chains, for the latency of the compare and select: a max is the same value
     * in any order (a -0 for a +0 changes no difference x - max) */
    for (; i + 4 * EK_LANES <= n; i += 4 * EK_LANES) {
        ek_vf v = ek_vload(x + i), v1 = ek_vload(x + i + 16), v2 = ek_vload(x + i + 32),
              v3 = ek_vload(x + i + 48);
        m = ek_vsel(v > m, v, m);
        m1 = ek_vsel(v1 > m1, v1, m1);
        m2 = ek_vsel(v2 > m2, v2, m2);
        m3 = ek_vsel(v3 > m3, v3, m3);
    }
    m = ek_vsel(m1 > m, m1, m);
    m2 = ek_vsel(m3 > m2, m3, m2);
    m = ek_vsel(m2 > m, m2, m);
    for (; i + EK_LANES <= n; i += EK_LANES) {
        ek_vf v = ek_vload(x + i);
        m = ek_vsel(v > m, v, m);
    }
    if (i < n) {
        ek_vf v = ek_vload_part(x + i, n - i, -INFINITY);
        m = ek_vsel(v > m, v, m);
    }
    return ek_vmax(m);
}

/* o = w * (x / sqrt(ss / d + eps)): an RMS norm's scaling, ss the sum of x's squares. */
__attribute__((always_inline)) static inline void ek_rms_scale(const float *x, const float *w,
                                                               int d, float ss, float eps, float *o)
{
    float inv = 1.0f / sqrtf(ss / (float)d + eps);
    ek_vf vinv = ek_vsplat(inv);
    int i = 0;
    for (; i + EK_LANES <= d; i += EK_LANES)
        ek_vstore(o + i, ek_vload(w + i) * (ek_vload(x + i) * vinv));
    for (; i < d; i++) o[i] = w[i] * (x[i] * inv);
}

ENG_CLONES
static void ek_rmsnorm_row(const float *x, const float *w, int d, float eps, float *o)
{
    /* HF computes the variance in fp32 (hidden_states.to(torch.float32)). */
    ek_vf acc = { 0 };
    int i = 0;
    for (; i + EK_LANES <= d; i += EK_LANES) {
        ek_vf v = ek_vload(x + i);
        acc += v * v;
    }
    float ss = ek_vsum(acc);
    for (; i < d; i++) ss += x[i] * x[i];
    ek_rms_scale(x, w, d, ss, eps, o);
}

void eng_rmsnorm(const float *x, const float *w, int rows, int d, float eps, float *out)
{
    ENG_PARALLEL_FOR((size_t)rows * (size_t)d >= ENG_PAR_FLOATS)
    for (int r = 0; r < rows; r++)
        ek_rmsnorm_row(x + (size_t)r * d, w, d, eps, out + (size_t)r * d);
}

/* x += h, then out = the RMS norm of x (ek_rmsnorm_row's arithmetic): the residual and the
 * next sublayer's norm in one pass over x. out may be h. */
ENG_CLONES
static void ek_add_rmsnorm_row(float *x, const float *h, const float *w, int d, float eps, float *o)
{
    ek_vf acc = { 0 };
    int i = 0;
    for (; i + EK_LANES <= d; i += EK_LANES) {
        ek_vf v = ek_vload(x + i) + ek_vload(h + i);
        ek_vstore(x + i, v);
        acc += v * v;
    }
    float ss = ek_vsum(acc);
    for (; i < d; i++) {
        x[i] += h[i];
        ss += x[i] * x[i];
    }
    ek_rms_scale(x, w, d, ss, eps, o);
}

void eng_add_rmsnorm(float *x, const float *h, const float *w, int rows, int d, float eps,
                     float *out)
{
    ENG_PARALLEL_FOR((size_t)rows * (size_t)d >= ENG_PAR_FLOATS)
    for (int r = 0; r < rows; r++)
        ek_add_rmsnorm_row(x + (size_t)r * d, h + (size_t)r * d, w, d, eps, out + (size_t)r * d);
}

/* ---- exp: a Cephes-style polynomial (about 2 ulp). libm's expf and tanhf are a fifth of
 * the encoder's time otherwise (gelu, softmax). */
__attribute__((always_inline)) static inline ek_vf ek_exp_any(ek_vf x, int may_overflow)
{
    ek_vf hi = ek_vsplat(88.3762626647949f), lo = ek_vsplat(-87.3365447504019f);
    if (may_overflow) x = ek_vsel(x > hi, hi, x);
    ek_vi under = x < lo; /* exp underflows: exactly 0 (also -inf); what the lanes
                           * compute below is masked off at the end */
    /* n = round(x / ln 2) via the 1.5 * 2^23 trick; r = x - n ln 2 in two parts */
    const float magic = 12582912.0f;
    ek_vf n = (x * 1.44269504088896341f + magic) - magic;
    ek_vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
    ek_vf p = r * 1.9875691500E-4f + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    ek_vf y = p * r * r + r + 1.0f;
    /* the underflowing lanes' n (down to -inf, or NaN) held at -127, so that the
     * conversion is in range (beside the polynomial, not on its chain) */
    ek_vf nlo = ek_vsplat(-127.0f);
    ek_vi e = (__builtin_convertvector(ek_vsel(n > nlo, n, nlo), ek_vi) + 127) << 23;
    y = y * (ek_vf)e;
    return (ek_vf)(~under & (ek_vi)y);
}

__attribute__((always_inline)) static inline ek_vf ek_exp(ek_vf x) { return ek_exp_any(x, 1); }

/* exp of x <= 0 (softmax's x - max): the same values without the overflow clamp. */
__attribute__((always_inline)) static inline ek_vf ek_exp_le0(ek_vf x) { return ek_exp_any(x, 0); }

ENG_CLONES
void eng_softmax(float *x, int n)
{
    float mx = ek_max(x, (size_t)n);
    if (mx == -INFINITY) {
        /* Fully masked row: cannot happen for causal/self attention (the diagonal is
         * always visible); keep it finite rather than NaN. */
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    ek_vf acc = { 0 };
    int i = 0;
    for (; i + EK_LANES <= n; i += EK_LANES) {
        ek_vf v = ek_exp_le0(ek_vload(x + i) - mx);
        acc += v;
        ek_vstore(x + i, v);
    }
    if (i < n) {
        ek_vf v = ek_exp_le0(ek_vload_part(x + i, (size_t)(n - i), -INFINITY) - mx);
        acc += v;
        memcpy(x + i, &v, (size_t)(n - i) * sizeof(float));
    }
    float inv = 1.0f / ek_vsum(acc);
    ek_vf vinv = ek_vsplat(inv);
    for (i = 0; i + EK_LANES <= n; i += EK_LANES) ek_vstore(x + i, ek_vload(x + i) * vinv);
    for (; i < n; i++) x[i] *= inv;
}

/* gelu_new: 0.5 x (1 + tanh(u)) = x * (1 - 1 / (1 + exp(2u))),
 * u = sqrt(2/pi)(x + 0.044715 x^3). */
__attribute__((always_inline)) static inline ek_vf ek_gelu(ek_vf v)
{
    const float c2 = 2.0f * 0.7978845608028654f;
    ek_vf e = ek_exp(c2 * (v + 0.044715f * v * v * v));
    return v - v / (1.0f + e);
}

/* n values from x: gelu_new, times y[i] when y is not NULL (the gated FF's two halves). */
ENG_CLONES
static void ek_gelu_block(float *x, const float *y, size_t n)
{
    size_t i = 0;
    for (; i + EK_LANES <= n; i += EK_LANES) {
        ek_vf v = ek_gelu(ek_vload(x + i));
        ek_vstore(x + i, y ? v * ek_vload(y + i) : v);
    }
    if (i < n) {
        ek_vf v = ek_gelu(ek_vload_part(x + i, n - i, 0.0f));
        if (y) v *= ek_vload_part(y + i, n - i, 0.0f);
        memcpy(x + i, &v, (n - i) * sizeof(float));
    }
}

/* Blocks of EK_BLOCK values shared out between the threads. */
#define EK_BLOCK 4096

void eng_gelu_new(float *x, const float *y, size_t n)
{
    long blocks = (long)((n + EK_BLOCK - 1) / EK_BLOCK);
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (long b = 0; b < blocks; b++) {
        size_t i = (size_t)b * EK_BLOCK;
        ek_gelu_block(x + i, y ? y + i : NULL, n - i < EK_BLOCK ? n - i : EK_BLOCK);
    }
}

/* n values of x: op 0: x += y; 1: relu; 2: x *= s. Lane by lane, so the bits of the
 * plain loop. */
ENG_CLONES
static void ek_elem_block(int op, float *x, const float *y, float s, size_t n)
{
    size_t i = 0;
    ek_vf vs = ek_vsplat(s), z = { 0 };
    for (; i + EK_LANES <= n; i += EK_LANES) {
        ek_vf v = ek_vload(x + i);
        v = op == 0 ? v + ek_vload(y + i) : op == 1 ? ek_vsel(v > z, v, z) : v * vs;
        ek_vstore(x + i, v);
    }
    for (; i < n; i++)
        x[i] = op == 0 ? x[i] + y[i] : op == 1 ? (x[i] > 0.0f ? x[i] : 0.0f) : x[i] * s;
}

static void ek_elem(int op, float *x, const float *y, float s, size_t n)
{
    long blocks = (long)((n + EK_BLOCK - 1) / EK_BLOCK);
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (long b = 0; b < blocks; b++) {
        size_t i = (size_t)b * EK_BLOCK;
        ek_elem_block(op, x + i, y ? y + i : NULL, s, n - i < EK_BLOCK ? n - i : EK_BLOCK);
    }
}

void eng_relu(float *x, size_t n) { ek_elem(1, x, NULL, 0.0f, n); }

void eng_add(float *x, const float *y, size_t n) { ek_elem(0, x, y, 0.0f, n); }

void eng_scale(float *x, size_t n, float s) { ek_elem(2, x, NULL, s, n); }

ENG_CLONES
double eng_logsumexp(const float *x, int n)
{
    float mx = ek_max(x, (size_t)n);
    if (mx == -INFINITY) return -INFINITY;
    /* float exponentials (each <= 1), summed in float over 256 values, then in double */
    double s = 0.0;
    int i = 0;
    while (i < n) {
        ek_vf acc = { 0 };
        int end = n - i > 256 ? i + 256 : n;
        for (; i + EK_LANES <= end; i += EK_LANES) acc += ek_exp_le0(ek_vload(x + i) - mx);
        if (i < end) {
            acc += ek_exp_le0(ek_vload_part(x + i, (size_t)(end - i), -INFINITY) - mx);
            i = end;
        }
        s += (double)ek_vsum(acc);
    }
    return (double)mx + log(s);
}

float eng_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float eng_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- attention's products for one head ----
 * Each output is one multiply-add chain over k in order, as eng_gemm_serial computes it
 * (a*b+c is one FMA where the clone has FMA, else a product then a sum, as in gemm.c,
 * which is compiled with -ffp-contract=fast): the same bits as eng_gemm_serial, for
 * every row whatever the others. What differs is the order of the loops: a block of the
 * operand that every row reuses (64 columns of the transposed keys; 64 rows of the
 * values) stays in L1 while all the rows pass, instead of being read again from L2 for
 * every 4 rows. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#endif

/* The first n (<= 16) lanes of v to p. */
__attribute__((always_inline)) static inline void ek_vstore_part(float *p, ek_vf v, int n)
{
    if (n == EK_LANES) ek_vstore(p, v);
    else memcpy(p, &v, (size_t)n * sizeof(float));
}

/* Rows o[0..nr-1] by nc vectors of columns (the last nlast lanes wide) of O = A B over
 * the inner indices k0 .. k1 - 1, B row-major: each output one chain over k in order.
 * From zero when k0 is 0, else from O's sums so far (a later block of k); bias (rows
 * bstep apart) added at the store. Q KT (+ the position bias) and P V. */
__attribute__((always_inline)) static inline void ek_ab_block(int nr, int nc, int nlast, int k0,
                                                              int k1, const float *a, int lda,
                                                              const float *B, int ldb,
                                                              const float *bias, long bstep,
                                                              float *o, int ldo)
{
    ek_vf acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            int n = c == nc - 1 ? nlast : EK_LANES;
            acc[r][c] = (ek_vf){ 0 };
            if (r < nr && c < nc && k0 > 0)
                acc[r][c] = n == EK_LANES
                                ? ek_vload(o + (size_t)r * ldo + 16 * c)
                                : ek_vload_part(o + (size_t)r * ldo + 16 * c, (size_t)n, 0.0f);
        }
    for (int k = k0; k < k1; k++) {
        const float *bk = B + (size_t)k * ldb;
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++) {
            ek_vf y = c == nc - 1 && nlast < EK_LANES
                          ? ek_vload_part(bk + 16 * c, (size_t)nlast, 0.0f)
                          : ek_vload(bk + 16 * c);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) acc[r][c] += a[(size_t)r * lda + k] * y;
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < nc; c++) {
            int n = c == nc - 1 ? nlast : EK_LANES;
            ek_vf v = acc[r][c];
            if (bias)
                v += n == EK_LANES ? ek_vload(bias + r * bstep + 16 * c)
                                   : ek_vload_part(bias + r * bstep + 16 * c, (size_t)n, 0.0f);
            ek_vstore_part(o + (size_t)r * ldo + 16 * c, v, n);
        }
}

ENG_CLONES
void eng_attn_scores(int Lq, int Lk, int dk, const float *q, int ldq, const float *kt, int ldk,
                     const float *bias, long bstep, float *s, int lds)
{
    for (int j = 0; j < Lk; j += 64) {
        int w = Lk - j < 64 ? Lk - j : 64, nc = (w + 15) / 16, nlast = w - 16 * (nc - 1);
        for (int i = 0; i < Lq; i += 4) {
            int nr = Lq - i < 4 ? Lq - i : 4;
            const float *qi = q + (size_t)i * ldq, *b = bias ? bias + i * bstep + j : NULL;
            float *si = s + (size_t)i * lds + j;
            /* the common shapes by constants, so that the accumulators stay in registers */
            if (nr == 4 && nc == 4)
                ek_ab_block(4, 4, nlast, 0, dk, qi, ldq, kt + j, ldk, b, bstep, si, lds);
            else if (nc == 4)
                ek_ab_block(nr, 4, nlast, 0, dk, qi, ldq, kt + j, ldk, b, bstep, si, lds);
            else ek_ab_block(nr, nc, nlast, 0, dk, qi, ldq, kt + j, ldk, b, bstep, si, lds);
        }
    }
}

/* Keys per block of the values kept in L1 while the rows pass (64 x 64 floats: 16 KiB). */
#define EK_PV_KEYS 64

ENG_CLONES
void eng_attn_pv(int Lq, int Lk, int dk, const float *p, int ldp, const float *v, int ldv, float *o,
                 int ldo)
{
    for (int j0 = 0; j0 < Lk; j0 += EK_PV_KEYS) {
        int j1 = Lk - j0 < EK_PV_KEYS ? Lk : j0 + EK_PV_KEYS;
        for (int d = 0; d < dk; d += 64) {
            int w = dk - d < 64 ? dk - d : 64, nc = (w + 15) / 16, nlast = w - 16 * (nc - 1);
            for (int i = 0; i < Lq; i += 4) {
                int nr = Lq - i < 4 ? Lq - i : 4;
                const float *pi = p + (size_t)i * ldp;
                float *oi = o + (size_t)i * ldo + d;
                if (nr == 4 && nc == 4 && nlast == EK_LANES)
                    ek_ab_block(4, 4, EK_LANES, j0, j1, pi, ldp, v + d, ldv, NULL, 0, oi, ldo);
                else ek_ab_block(nr, nc, nlast, j0, j1, pi, ldp, v + d, ldv, NULL, 0, oi, ldo);
            }
        }
    }
}
#if defined(__clang__)
#pragma clang fp contract(on)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
