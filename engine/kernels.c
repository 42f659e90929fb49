/* Tensor kernels: the elementwise pieces of the T5 forward pass (matrix products are in
 * gemm.c). Nothing here allocates. */
#include "engine/eng_int.h"

#include <math.h>
#include <string.h>

/* The loops below run 16 lanes at a time with GCC/Clang vector extensions, compiled for
 * AVX-512, AVX2 and the baseline (ENG_CLONES). This file is compiled without contracting
 * a * b + c into one FMA, so every clone computes the same bits. The helpers that take
 * or return vectors are always inlined: a call between code built for different CPUs
 * would pass 64-byte vectors in different ways. */
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

/* The sum of the lanes, pairwise: lanes i and i + 8, then i + 4, i + 2, i + 1. */
__attribute__((always_inline)) static inline float ek_vsum(ek_vf v)
{
    for (int h = EK_LANES / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) v[l] += v[l + h];
    return v[0];
}

__attribute__((always_inline)) static inline float ek_vmax(ek_vf v)
{
    float m = v[0];
    for (int l = 1; l < EK_LANES; l++) m = v[l] > m ? v[l] : m;
    return m;
}

/* The largest of x[0..n), -inf for none (or all -inf). */
__attribute__((always_inline)) static inline float ek_max(const float *x, size_t n)
{
    ek_vf m = ek_vsplat(-INFINITY);
    size_t i = 0;
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
    float inv = 1.0f / sqrtf(ss / (float)d + eps);
    for (i = 0; i < d; i++) o[i] = w[i] * (x[i] * inv);
}

void eng_rmsnorm(const float *x, const float *w, int rows, int d, float eps, float *out)
{
    ENG_PARALLEL_FOR((size_t)rows * (size_t)d >= ENG_PAR_FLOATS)
    for (int r = 0; r < rows; r++)
        ek_rmsnorm_row(x + (size_t)r * d, w, d, eps, out + (size_t)r * d);
}

/* ---- exp: a Cephes-style polynomial (about 2 ulp). libm's expf and tanhf are a fifth of
 * the encoder's time otherwise (gelu, softmax). */
__attribute__((always_inline)) static inline ek_vf ek_exp(ek_vf x)
{
    ek_vf hi = ek_vsplat(88.3762626647949f), lo = ek_vsplat(-87.3365447504019f);
    x = ek_vsel(x > hi, hi, x);
    ek_vi under = x < lo; /* exp underflows: exactly 0 (also -inf) */
    x = ek_vsel(under, lo, x);
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
    ek_vi e = (__builtin_convertvector(n, ek_vi) + 127) << 23;
    y = y * (ek_vf)e;
    return (ek_vf)(~under & (ek_vi)y);
}

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
        ek_vf v = ek_exp(ek_vload(x + i) - mx);
        acc += v;
        ek_vstore(x + i, v);
    }
    if (i < n) {
        ek_vf v = ek_exp(ek_vload_part(x + i, (size_t)(n - i), -INFINITY) - mx);
        acc += v;
        memcpy(x + i, &v, (size_t)(n - i) * sizeof(float));
    }
    float inv = 1.0f / ek_vsum(acc);
    for (i = 0; i < n; i++) x[i] *= inv;
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

void eng_relu(float *x, size_t n)
{
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0.0f)) x[i] = 0.0f;
}

void eng_add(float *x, const float *y, size_t n)
{
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

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
        for (; i + EK_LANES <= end; i += EK_LANES) acc += ek_exp(ek_vload(x + i) - mx);
        if (i < end) {
            acc += ek_exp(ek_vload_part(x + i, (size_t)(end - i), -INFINITY) - mx);
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
