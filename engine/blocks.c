/* The building blocks the architectures are parameterised by (eng_arch_config): norms,
 * activations, the Linear door, position tables. The hot elementwise loops live in
 * kernels.c (RMS norm, gelu_new, relu, softmax); what is here dispatches to them or is
 * written plainly, for GCC to vectorise. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"

#include <math.h>
#include <string.h>

void eng_norm(const eng_arch_config *a, const eng_norm_w *n, const float *x, int rows, int d,
              float *out)
{
    if (a->norm == ENG_NORM_RMS) eng_rmsnorm(x, n->w, rows, d, a->norm_eps, out);
    else eng_layernorm(x, n->w, n->b, rows, d, a->norm_eps, out);
}

void eng_layernorm(const float *x, const float *w, const float *b, int rows, int d, float eps,
                   float *out)
{
    ENG_PARALLEL_FOR((size_t)rows * d >= ENG_PAR_FLOATS)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        double sum = 0, sq = 0;
        for (int i = 0; i < d; i++) sum += xr[i];
        double mean = sum / d;
        for (int i = 0; i < d; i++) sq += (xr[i] - mean) * (xr[i] - mean);
        float inv = (float)(1.0 / sqrt(sq / d + eps)), mf = (float)mean;
        for (int i = 0; i < d; i++) o[i] = (xr[i] - mf) * inv * w[i] + (b ? b[i] : 0.0f);
    }
}

void eng_activate(eng_act act, float *x, const float *y, size_t n)
{
    switch (act) {
    case ENG_ACT_GELU_TANH:
        eng_gelu_new(x, y, n); /* the gate's product in the same pass */
        return;
    case ENG_ACT_RELU: eng_relu(x, n); break;
    case ENG_ACT_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    case ENG_ACT_SILU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    }
    if (y)
        for (size_t i = 0; i < n; i++) x[i] *= y[i];
}

/* y[rows, out] += the layer's bias, if it has one. */
static void lin_bias(const eng_lin *l, int rows, float *y)
{
    if (!l->b) return;
    ENG_PARALLEL_FOR((size_t)rows * l->out >= ENG_PAR_FLOATS)
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * l->out;
        for (int i = 0; i < l->out; i++) yr[i] += l->b[i];
    }
}

void eng_lin_apply(const eng_lin *l, const float *x, int rows, float *y)
{
    if (l->type != ENG_W_I8)
        eng_gemm_w(rows, l->out, l->in, x, l->in, l->type, l->w, l->in, 0.0f, y, l->out);
    else if (eng_gemm_q8(rows, l->out, l->in, x, l->in, l->w, 0.0f, y, l->out) < 0)
        for (size_t i = 0; i < (size_t)rows * l->out; i++) y[i] = NAN; /* no scratch: no result */
    lin_bias(l, rows, y);
}

void eng_lin_apply_n(const eng_lin *const ls[], int n, const float *x, int rows, float *const ys[])
{
    int shared = n > 1 && n <= ENG_Q8_MAX_SHARED;
    for (int i = 0; shared && i < n; i++)
        shared = ls[i]->type == ENG_W_I8 && ls[i]->in == ls[0]->in;
    if (!shared) {
        for (int i = 0; i < n; i++) eng_lin_apply(ls[i], x, rows, ys[i]);
        return;
    }
    /* zeroed: gcc -O1 cannot see that the loop below fills the first n */
    const void *w[ENG_Q8_MAX_SHARED] = { 0 };
    int N[ENG_Q8_MAX_SHARED] = { 0 }, ld[ENG_Q8_MAX_SHARED] = { 0 };
    for (int i = 0; i < n; i++) w[i] = ls[i]->w, N[i] = ld[i] = ls[i]->out;
    if (eng_gemm_q8_n(rows, ls[0]->in, x, ls[0]->in, n, w, N, ys, ld) < 0)
        for (int i = 0; i < n; i++) /* no scratch: no result */
            for (size_t j = 0; j < (size_t)rows * N[i]; j++) ys[i][j] = NAN;
    for (int i = 0; i < n; i++) lin_bias(ls[i], rows, ys[i]);
}

void eng_lin_row(const eng_lin *l, int r, float *out)
{
    if (l->type == ENG_W_I8) eng_q8_weight_row(l->w, l->out, l->in, r, out);
    else eng_wrow(l->type, l->w, l->in, r, l->in, out);
}

void eng_sinusoids(float *out, int rows, int d, int shift)
{
    int half = d / 2;
    double step = log(10000.0) / (double)(half - shift > 0 ? half - shift : 1);
    for (int p = 0; p < rows; p++) {
        float *o = out + (size_t)p * d;
        for (int i = 0; i < half; i++) {
            double f = exp(-step * i);
            o[i] = (float)sin(p * f);
            o[half + i] = (float)cos(p * f);
        }
        if (d % 2) o[d - 1] = 0.0f;
    }
}
