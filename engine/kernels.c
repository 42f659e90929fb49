/* Tensor kernels: the elementwise pieces of the T5 forward pass (matrix products are in
 * gemm.c). Nothing here allocates. */
#include "engine/eng_int.h"

#include <math.h>
#include <string.h>

void eng_rmsnorm(const float *x, const float *w, int rows, int d, float eps, float *out)
{
    ENG_PARALLEL_FOR((size_t)rows * (size_t)d >= ENG_PAR_FLOATS)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        /* HF computes the variance in fp32 (hidden_states.to(torch.float32)). */
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)d + eps);
        for (int i = 0; i < d; i++) o[i] = w[i] * (xr[i] * inv);
    }
}

/* ---- exp: a Cephes-style polynomial (about 2 ulp), four lanes at a time with GCC/Clang
 * vector extensions so it vectorises at -O2 without -ffast-math. libm's expf and tanhf
 * are a fifth of the encoder's time otherwise (gelu, softmax). */

typedef float ek_v4sf __attribute__((vector_size(16)));
typedef int32_t ek_v4si __attribute__((vector_size(16)));

static inline ek_v4sf ek_exp4(ek_v4sf x)
{
    const ek_v4sf hi = { 88.3762626647949f, 88.3762626647949f, 88.3762626647949f, 88.3762626647949f };
    const ek_v4sf lo = { -87.3365447504019f, -87.3365447504019f, -87.3365447504019f, -87.3365447504019f };
    ek_v4si m = x > hi;
    x = (ek_v4sf)((m & (ek_v4si)hi) | (~m & (ek_v4si)x));
    ek_v4si under = x < lo; /* exp underflows: exactly 0 (also -inf) */
    x = (ek_v4sf)((under & (ek_v4si)lo) | (~under & (ek_v4si)x));
    /* n = round(x / ln 2) via the 1.5 * 2^23 trick; r = x - n ln 2 in two parts */
    const float magic = 12582912.0f;
    ek_v4sf n = (x * 1.44269504088896341f + magic) - magic;
    ek_v4sf r = x - n * 0.693359375f + n * 2.12194440e-4f;
    ek_v4sf p = r * 1.9875691500E-4f + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    ek_v4sf y = p * r * r + r + 1.0f;
    ek_v4si e = (__builtin_convertvector(n, ek_v4si) + 127) << 23;
    y = y * (ek_v4sf)e;
    return (ek_v4sf)(~under & (ek_v4si)y);
}

/* x[i] = exp(x[i] - shift) */
static void ek_exp_shift(float *x, size_t n, float shift)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ek_v4sf v;
        memcpy(&v, x + i, sizeof v);
        v = ek_exp4(v - shift);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {
        ek_v4sf v = { 0, 0, 0, 0 };
        size_t k = n - i;
        memcpy(&v, x + i, k * sizeof(float));
        v = ek_exp4(v - shift);
        memcpy(x + i, &v, k * sizeof(float));
    }
}

void eng_softmax(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) {
        /* Fully masked row: cannot happen for causal/self attention (the diagonal is
         * always visible); keep it finite rather than NaN. */
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    ek_exp_shift(x, (size_t)n, mx);
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i];
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* gelu_new over n values: the vector formula in groups of 4, libm's tanhf for a last 1-3. */
static void ek_gelu_new(float *x, size_t n)
{
    /* 0.5 x (1 + tanh(u)) = x * (1 - 1 / (1 + exp(2u))), u = sqrt(2/pi)(x + 0.044715 x^3) */
    const float c2 = 2.0f * 0.7978845608028654f;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ek_v4sf v;
        memcpy(&v, x + i, sizeof v);
        ek_v4sf e = ek_exp4(c2 * (v + 0.044715f * v * v * v));
        v = v - v / (1.0f + e);
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

/* Blocks of EK_BLOCK values (a multiple of 4, so every value but the last n % 4 takes the
 * vector formula, however the blocks are shared out). */
#define EK_BLOCK 4096

void eng_gelu_new(float *x, size_t n)
{
    long blocks = (long)((n + EK_BLOCK - 1) / EK_BLOCK);
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (long b = 0; b < blocks; b++) {
        size_t i = (size_t)b * EK_BLOCK;
        ek_gelu_new(x + i, n - i < EK_BLOCK ? n - i : EK_BLOCK);
    }
}

void eng_relu(float *x, size_t n)
{
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (size_t i = 0; i < n; i++)
        if (!(x[i] > 0.0f)) x[i] = 0.0f;
}

void eng_mul(float *x, const float *y, size_t n)
{
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (size_t i = 0; i < n; i++) x[i] *= y[i];
}

void eng_add(float *x, const float *y, size_t n)
{
    ENG_PARALLEL_FOR(n >= ENG_PAR_FLOATS)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

double eng_logsumexp(const float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) return -INFINITY;
    /* float exponentials (each <= 1), summed in float over 64 values, then in double */
    double s = 0.0;
    int i = 0;
    while (i < n) {
        ek_v4sf acc = { 0, 0, 0, 0 };
        int end = n - i > 64 ? i + 64 : n;
        for (; i < end; i += 4) {
            ek_v4sf v = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
            if (end - i >= 4)
                memcpy(&v, x + i, sizeof v);
            else
                memcpy(&v, x + i, (size_t)(end - i) * sizeof(float));
            acc += ek_exp4(v - mx);
        }
        s += (double)acc[0] + (double)acc[1] + (double)acc[2] + (double)acc[3];
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
