/* int8 matrix products: C = dequant(q8(A) . Wq^T), the int8 weight type's kernel
 * (engine/eng_q8.h has the contract: quantization, error bound, blob layout).
 *
 * One result whatever the kernel. The integer sum of an output is exact in every kernel
 * (the VNNI ones compute sum((q + 128) w) - 128 rowsum(w), exact modulo 2^32 and so
 * exact, as the true sum fits in int32), the activations are quantized by the same
 * IEEE operations (a multiply and a round-to-nearest-even conversion), and the float
 * epilogue is the same expression in every kernel: (float)isum * (sa * sw), then
 * + bias (eng_gemm_q8_serial's), then + beta * c. This file is compiled with
 * -ffp-contract=off (Makefile) so that no kernel fuses that into an FMA. So the kernels,
 * the thread count and the other rows of a call never change a row's outputs.
 *
 * Layout (eng_q8.h): tiles of 16 weight rows, [Kp/4][16][4] each. One 64-byte block is
 * 4 k of 16 rows: the s8 operand of one AVX-512 vpdpbusd, whose u8 operand is 4
 * quantized activations of one row broadcast to the 16 lanes; the 16 lanes are then 16
 * outputs, so no horizontal sums. AVX-VNNI takes the block as two 256-bit halves, AVX2
 * sign-extends each half to int16 (vpmovsxbw) for vpmaddwd, whose pair sums cannot
 * saturate (|q| <= 127: 2 x 127 x 127 < 2^15), unlike vpmaddubsw's.
 *
 * Blocking: a kernel computes MR input rows x NT tiles with MR x NT accumulators in
 * registers, the full K at once; the tiles of a group stay in L1/L2 while every group of
 * rows passes by (an encoder's 512 rows read each weight once from memory), and a
 * decode step's 1-16 rows read each weight block once per 8 rows.
 *
 * Threads: OpenMP splits the tiles (and the quantization of the rows) between threads;
 * the parallel region is outside the target-specific functions (GCC cannot put an OpenMP
 * region's outlined body in them reliably, and the clang sanitizer builds have no
 * OpenMP: there everything runs serially). */
#include "engine/eng_q8.h"
#include "engine/eng_int.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define Q8_X86 1
#include <immintrin.h>
#endif

#define Q8_MAGIC "NLPDQ8W" /* 8 bytes with its NUL */
#define Q8_VERSION 1u
#define Q8_HDR 128     /* bytes of the header: scales start here */
#define Q8_TN 16       /* weight rows per tile */
#define Q8_KB 4        /* k per block */
#define Q8_TINY 1e-30f /* a row whose max |value| is below this is a row of zeros */

/* Products of fewer multiply-adds run on one thread: waking the other costs more. */
#define Q8_PAR_MIN (1 << 18)

/* The blob's header, little-endian, at offset 0 (read and written with memcpy). */
typedef struct q8_hdr {
    char magic[8];
    uint32_t version;
    uint32_t n, k;           /* the weight's shape */
    uint32_t np, kp;         /* padded: N to a multiple of 16, K of 4 */
    uint32_t tile_n, kblock; /* 16, 4: the layout's constants, checked */
    uint32_t reserved;
    uint64_t scales_off; /* float[np] */
    uint64_t sums_off;   /* int32[np] */
    uint64_t data_off;   /* int8 tiles, 64-byte aligned */
    uint64_t bytes;      /* the blob's length */
} q8_hdr;

_Static_assert(sizeof(q8_hdr) <= Q8_HDR, "header fits its 128 bytes");

/* The header of a well-formed blob of N x K (N, K valid). */
static q8_hdr q8_layout(int N, int K)
{
    q8_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, Q8_MAGIC, 8);
    h.version = Q8_VERSION;
    h.n = (uint32_t)N, h.k = (uint32_t)K;
    h.np = ((uint32_t)N + Q8_TN - 1) / Q8_TN * Q8_TN;
    h.kp = ((uint32_t)K + Q8_KB - 1) / Q8_KB * Q8_KB;
    h.tile_n = Q8_TN, h.kblock = Q8_KB;
    h.scales_off = Q8_HDR;
    h.sums_off = h.scales_off + 4ull * h.np;
    h.data_off = (h.sums_off + 4ull * h.np + 63) & ~63ull;
    h.bytes = h.data_off + (uint64_t)h.np * h.kp;
    return h;
}

static int q8_shape_ok(int N, int K)
{
    return N >= 1 && K >= 1 && K <= ENG_Q8_MAX_K && (uint64_t)N * ((K + 3) & ~3) < (1ull << 40);
}

size_t eng_q8_weight_bytes(int N, int K)
{
    if (!q8_shape_ok(N, K)) return 0;
    return (size_t)q8_layout(N, K).bytes;
}

static float q8_src_value(const void *src, int type, size_t i)
{
    switch (type) {
    case ENG_Q8_SRC_BF16: return eng_bf16_to_f32(((const uint16_t *)src)[i]);
    case ENG_Q8_SRC_F16: return eng_f16_to_f32(((const uint16_t *)src)[i]);
    default: return ((const float *)src)[i];
    }
}

/* Where row n, k sits in the tiles. */
static inline size_t q8_at(uint32_t kp, int n, int k)
{
    return ((size_t)(n / Q8_TN) * kp + (size_t)(k / Q8_KB) * Q8_KB) * Q8_TN +
           (size_t)(n % Q8_TN) * Q8_KB + (size_t)(k % Q8_KB);
}

/* Row n of src quantized into the blob; a row holding Inf or NaN gets a NaN scale. */
static void q8_pack_row(const void *src, int type, size_t row, int K, const q8_hdr *h, int n,
                        float *scales, int32_t *sums, int8_t *q)
{
    float mx = 0.0f;
    for (int k = 0; k < K; k++) {
        float w = q8_src_value(src, type, row + k);
        if (!isfinite(w)) {
            scales[n] = NAN;
            return;
        }
        mx = fabsf(w) > mx ? fabsf(w) : mx;
    }
    float s = mx < Q8_TINY ? 1.0f : mx / 127.0f;
    int32_t sum = 0;
    for (int k = 0; mx >= Q8_TINY && k < K; k++) {
        double v = nearbyint((double)q8_src_value(src, type, row + k) / (double)s);
        int qi = v > 127 ? 127 : v < -127 ? -127 : (int)v;
        q[q8_at(h->kp, n, k)] = (int8_t)qi;
        sum += qi;
    }
    scales[n] = s;
    sums[n] = sum;
}

int eng_q8_weight_pack(const void *src, int src_type, int N, int K, int lds, void *dst)
{
    if (!src || !dst || !q8_shape_ok(N, K) || lds < K || ((uintptr_t)dst & 3)) return -1;
    if (src_type != ENG_Q8_SRC_F32 && src_type != ENG_Q8_SRC_BF16 && src_type != ENG_Q8_SRC_F16)
        return -1;
    q8_hdr h = q8_layout(N, K);
    unsigned char *b = dst;
    memset(b, 0, (size_t)h.bytes);
    memcpy(b, &h, sizeof h);
    float *scales = (float *)(b + h.scales_off);
    int32_t *sums = (int32_t *)(b + h.sums_off);
    int8_t *q = (int8_t *)(b + h.data_off);
    /* rows are independent: the threads share them (a model's load packs ~10^8 weights) */
    ENG_PARALLEL_FOR((size_t)N * K >= (1u << 18))
    for (int n = 0; n < N; n++)
        q8_pack_row(src, src_type, (size_t)n * lds, K, &h, n, scales, sums, q);
    for (int n = 0; n < N; n++)
        if (isnan(scales[n])) return -8;
    return 0;
}

int eng_q8_weight_check(const void *packed, size_t bytes, int N, int K)
{
    if (!packed || ((uintptr_t)packed & 3) || !q8_shape_ok(N, K)) return -1;
    if (bytes < Q8_HDR) return -3;
    q8_hdr want = q8_layout(N, K), h;
    memcpy(&h, packed, sizeof h);
    if (memcmp(&h, &want, sizeof h) != 0) return -2; /* magic, version, shape or offsets */
    if (bytes != want.bytes) return -3;
    const unsigned char *b = packed;
    const float *scales = (const float *)(b + h.scales_off);
    const int32_t *sums = (const int32_t *)(b + h.sums_off);
    const int8_t *q = (const int8_t *)(b + h.data_off);
    for (uint32_t n = 0; n < h.np; n++) {
        float s = scales[n];
        if (n < h.n ? !(isfinite(s) && s > 0.0f) : s != 0.0f) return -4;
        const int8_t *t = q + (size_t)(n / Q8_TN) * h.kp * Q8_TN + (n % Q8_TN) * Q8_KB;
        int32_t sum = 0;
        for (uint32_t k = 0; k < h.kp; k++) {
            int v = t[(size_t)(k / Q8_KB) * Q8_TN * Q8_KB + k % Q8_KB];
            if (v < -127 || ((n >= h.n || k >= h.k) && v != 0)) return -5;
            sum += v;
        }
        if (sum != sums[n]) return -6;
    }
    /* the bytes between the row sums and the values are zero too: a blob is one thing */
    for (uint64_t i = h.sums_off + 4ull * h.np; i < h.data_off; i++)
        if (b[i]) return -7;
    for (size_t i = sizeof h; i < Q8_HDR; i++)
        if (b[i]) return -2;
    return 0;
}

const char *eng_q8_strerror(int rc)
{
    switch (rc) {
    case 0: return "ok";
    case -1: return "bad arguments (shape, stride, pointer or alignment)";
    case -2: return "header (magic, version, shape or offsets) does not match";
    case -3: return "length does not match the shape";
    case -4: return "a scale is not finite and positive (or a padding row's is not 0)";
    case -5: return "a value is out of range or padding is not zero";
    case -6: return "a row sum does not match its values";
    case -7: return "bytes between the parts are not zero";
    case -8: return "a weight is Inf or NaN";
    case -9: return "out of memory for the quantized activations";
    default: return "unknown error";
    }
}

void eng_q8_weight_row(const void *packed, int N, int K, int row, float *out)
{
    if (!packed || !out || row < 0 || row >= N || !q8_shape_ok(N, K)) return;
    q8_hdr h = q8_layout(N, K);
    const unsigned char *b = packed;
    float s;
    memcpy(&s, b + h.scales_off + 4ull * row, sizeof s);
    const int8_t *q = (const int8_t *)(b + h.data_off);
    for (int k = 0; k < K; k++) out[k] = (float)q[q8_at(h.kp, row, k)] * s;
}

/* ---- the product ---- */

/* What a kernel is handed: the quantized activations (rows as bytes apart, of the
 * kernel's element type), their scales, the blob's parts and the output. */
typedef struct q8_args {
    int M, N, kp;
    const void *aq; /* [M][as bytes] */
    size_t as;
    const float *sa;    /* [M] */
    const int8_t *w;    /* tiles */
    const float *sw;    /* [np] */
    const int32_t *sum; /* [np] */
    float beta;
    const float *bias; /* row m's at bias + m * bstep, or NULL */
    long bstep;
    float *C;
    int ldc;
} q8_args;

/* Quantizes one row a[K] into dst (kp elements of the kernel's type, zero past K in
 * value) and returns its scale. */
typedef float (*q8_quant_fn)(const float *a, int K, int kp, void *dst);
/* Tiles t0 .. t1 - 1 of the product, every row. */
typedef void (*q8_tiles_fn)(const q8_args *p, int t0, int t1);
/* Row a[K] quantized as an activation row is, signed, into its place in a blob's tiles
 * (t its first block, the next 64 bytes on, K's padding zero); its row sum in *sum, its
 * scale returned: eng_q8_pack_rows. */
typedef float (*q8_pack_fn)(const float *a, int K, int8_t *t, int32_t *sum);

/* The row's scale and 127 / max|a|, the same in every kernel; *inv 0 for a row of zeros
 * (or tiny values), NaN scale for a row with Inf or NaN. */
static inline float q8_row_scale(float mx, int finite, float *inv)
{
    if (!finite) {
        *inv = 0.0f;
        return NAN;
    }
    if (mx < Q8_TINY) {
        *inv = 0.0f;
        return 0.0f;
    }
    *inv = 127.0f / mx;
    return mx / 127.0f;
}

/* q8_row_scale of a row whose largest |a| has the bit pattern mb (the vector kernels'
 * way to find it: the same order as the values for non-negative floats; from 0x7f800000
 * up an infinity or a NaN). */
static inline float q8_bits_scale(uint32_t mb, float *inv)
{
    float mx;
    memcpy(&mx, &mb, sizeof mx);
    return q8_row_scale(mx, mb < 0x7f800000u, inv);
}

/* One output: the epilogue every kernel computes (vectors do it lane by lane). b: its
 * bias, or NULL. */
static inline void q8_store1(float *c, int32_t isum, float sa, float sw, const float *b, float beta)
{
    float v = (float)isum * (sa * sw);
    if (b) v += *b;
    *c = beta == 0.0f ? v : v + beta * *c;
}

/* Row m's bias, or NULL. */
static inline const float *q8_bias(const q8_args *p, int m)
{
    return p->bias ? p->bias + (long)m * p->bstep : NULL;
}

/* -- portable C -- */

static float q8_quant_c(const float *a, int K, int kp, void *dst)
{
    int8_t *q = dst;
    float mx = 0.0f, z = 0.0f;
    for (int k = 0; k < K; k++) {
        float x = fabsf(a[k]);
        mx = x > mx ? x : mx;
        z += a[k] * 0.0f; /* NaN when any value is Inf or NaN */
    }
    float inv, s = q8_row_scale(mx, z == 0.0f, &inv);
    for (int k = 0; k < K; k++) {
        float x = a[k] * inv;
        x = x > 127.0f ? 127.0f : x < -127.0f ? -127.0f : x;
        q[k] = (int8_t)lrintf(inv != 0.0f ? x : 0.0f);
    }
    for (int k = K; k < kp; k++) q[k] = 0;
    return s;
}

static void q8_tiles_c(const q8_args *p, int t0, int t1)
{
    for (int t = t0; t < t1; t++) {
        const int8_t *wt = p->w + (size_t)t * p->kp * Q8_TN;
        int n0 = t * Q8_TN, nv = p->N - n0 < Q8_TN ? p->N - n0 : Q8_TN;
        for (int m = 0; m < p->M; m++) {
            const int8_t *a = (const int8_t *)((const char *)p->aq + (size_t)m * p->as);
            int32_t acc[Q8_TN] = { 0 };
            for (int kb = 0; kb < p->kp / Q8_KB; kb++) {
                const int8_t *wb = wt + (size_t)kb * Q8_TN * Q8_KB, *ab = a + kb * Q8_KB;
                for (int i = 0; i < Q8_TN; i++)
                    for (int j = 0; j < Q8_KB; j++) acc[i] += ab[j] * wb[i * Q8_KB + j];
            }
            float *c = p->C + (size_t)m * p->ldc + n0;
            const float *b = q8_bias(p, m);
            for (int i = 0; i < nv; i++)
                q8_store1(c + i, acc[i], p->sa[m], p->sw[n0 + i], b ? b + n0 + i : NULL, p->beta);
        }
    }
}

/* Scalar form of one quantized activation (the vector kernels' tails): clamped, then
 * rounded to nearest even as the vector conversions do. */
static inline int q8_q1(float a, float inv)
{
    float x = a * inv;
    x = x > 127.0f ? 127.0f : x < -127.0f ? -127.0f : x;
    return (int)lrintf(x);
}

/* A row of zeros in the tiles (a row whose scale is 0 or NaN): K rounded up to 4 values. */
static void q8_pack_zero(int K, int8_t *t, int32_t *sum)
{
    for (int kb = 0; kb < (K + Q8_KB - 1) / Q8_KB; kb++)
        memset(t + (size_t)kb * Q8_KB * Q8_TN, 0, Q8_KB);
    *sum = 0;
}

/* Values k0 .. K - 1 of a row quantized (q8_q1) into their places in the tiles (t the
 * row's first block), K's padding to a multiple of 4 zero: their sum. */
static int32_t q8_pack_from(const float *a, int k0, int K, float inv, int8_t *t)
{
    int32_t sm = 0;
    int k = k0;
    for (; k < K; k++) {
        int q = q8_q1(a[k], inv);
        t[(size_t)(k / Q8_KB) * Q8_KB * Q8_TN + k % Q8_KB] = (int8_t)q;
        sm += q;
    }
    for (; k % Q8_KB; k++) t[(size_t)(k / Q8_KB) * Q8_KB * Q8_TN + k % Q8_KB] = 0;
    return sm;
}

/* Row a[K] quantized as an activation row is (q8_quant_c's values, signed) into its
 * place in a blob's tiles: t is its first block, the next 64 bytes on; its row sum
 * in *sum, its scale returned. */
static float q8_pack_c(const float *a, int K, int8_t *t, int32_t *sum)
{
    /* max |a| as the largest bit pattern of |a| (q8_quant_512's way): from 0x7f800000 up
     * an infinity or a NaN */
    uint32_t mb = 0;
    for (int k = 0; k < K; k++) {
        uint32_t u;
        memcpy(&u, a + k, sizeof u);
        u &= 0x7fffffffu;
        mb = u > mb ? u : mb;
    }
    float inv, s = q8_bits_scale(mb, &inv);
    if (inv == 0.0f) {
        q8_pack_zero(K, t, sum);
        return s;
    }
    *sum = q8_pack_from(a, 0, K, inv, t);
    return s;
}

#ifdef Q8_X86
/* ---- AVX-512 VNNI: 16 lanes = 16 weight rows; MR rows x NT tiles in registers ---- */

#define Q8_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define Q8_MR512 8 /* rows at a time: 8 x 3 accumulators + 3 weight blocks + 1 */
#define Q8_NT512 3

/* The largest bit pattern of |a[k]| over the row (q8_bits_scale's argument). */
Q8_T512 __attribute__((always_inline)) static inline uint32_t q8_max_bits512(const float *a, int K)
{
    __m512i vmx = _mm512_setzero_si512(), absm = _mm512_set1_epi32(0x7fffffff);
    for (int k = 0; k < K; k += 16) {
        __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        vmx = _mm512_max_epu32(vmx, _mm512_and_si512(_mm512_maskz_loadu_epi32(mk, a + k), absm));
    }
    return (uint32_t)_mm512_reduce_max_epu32(vmx);
}

/* The row's max |a| found as the largest bit pattern of |a| (the same order for
 * non-negative floats; a pattern from 0x7f800000 up is an infinity or a NaN: not finite),
 * then 64 values at a time scaled, rounded to nearest even (vcvtps2dq) and packed to
 * bytes by saturating packs. No clamp: |a| <= max |a| makes |a inv| <= 127 (1 + 2^-24)^2,
 * which rounds to 127 at most. The same bytes as q8_quant_c. */
Q8_T512 static float q8_quant_512(const float *a, int K, int kp, void *dst)
{
    uint8_t *q = dst;
    float inv, s = q8_bits_scale(q8_max_bits512(a, K), &inv);
    if (inv == 0.0f) {
        memset(q, 128, (size_t)kp);
        return s;
    }
    __m512 vi = _mm512_set1_ps(inv);
    /* packs work within 128-bit lanes: after them lane l holds values 4 l .. of each of the
     * four vectors in turn; the permute puts them back in order */
    __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i flip = _mm512_set1_epi8((char)0x80);
    int k = 0;
    for (; k + 64 <= K; k += 64) {
        __m512i v0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k), vi));
        __m512i v1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k + 16), vi));
        __m512i v2 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k + 32), vi));
        __m512i v3 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k + 48), vi));
        __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(v0, v1), _mm512_packs_epi32(v2, v3));
        b = _mm512_xor_si512(_mm512_permutexvar_epi32(order, b), flip); /* + 128 */
        _mm512_storeu_si512(q + k, b);
    }
    __m512i off = _mm512_set1_epi32(128);
    for (; k < kp; k += 16) {
        int n = kp - k >= 16 ? 16 : kp - k;
        __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff
                       : K > k     ? (__mmask16)((1u << (K - k)) - 1)
                                   : 0;
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, a + k), vi);
        __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(x), off);
        _mm_mask_storeu_epi8(q + k, (__mmask16)((1u << n) - 1), _mm512_cvtepi32_epi8(v));
    }
    return s;
}

/* q8_pack_c's bytes, 16 values at a time: the max as q8_quant_512 finds it, the values as
 * it rounds them (no clamp needed), saturated to bytes, 4 blocks of 4 stored apart. */
Q8_T512 static float q8_pack_512(const float *a, int K, int8_t *t, int32_t *sum)
{
    float inv, s = q8_bits_scale(q8_max_bits512(a, K), &inv);
    if (inv == 0.0f) {
        q8_pack_zero(K, t, sum);
        return s;
    }
    __m512 vi = _mm512_set1_ps(inv);
    __m512i vs = _mm512_setzero_si512();
    for (int k = 0; k < K; k += 16) {
        __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, a + k), vi));
        vs = _mm512_add_epi32(vs, v);
        int32_t b[4];
        _mm_storeu_si128((__m128i *)b, _mm512_cvtsepi32_epi8(v));
        for (int j = 0; j < 4 && k + 4 * j < K; j++)
            memcpy(t + (size_t)(k / Q8_KB + j) * Q8_KB * Q8_TN, &b[j], Q8_KB);
    }
    *sum = _mm512_reduce_add_epi32(vs);
    return s;
}

/* Row r's 1-3 accumulators += its 4 activations (broadcast) times the NT weight blocks. */
Q8_T512 __attribute__((always_inline)) static inline void q8_dp512(int NT, const uint8_t *a,
                                                                   __m512i w0, __m512i w1,
                                                                   __m512i w2, __m512i *c0,
                                                                   __m512i *c1, __m512i *c2)
{
    int32_t x;
    memcpy(&x, a, 4);
    __m512i av = _mm512_set1_epi32(x);
    *c0 = _mm512_dpbusd_epi32(*c0, av, w0);
    if (NT > 1) *c1 = _mm512_dpbusd_epi32(*c1, av, w1);
    if (NT > 2) *c2 = _mm512_dpbusd_epi32(*c2, av, w2);
}

/* Output row m, tiles t0 .. t0 + NT - 1: the epilogue, 16 outputs per tile (the sums
 * c0 .. c2 started from -128 rowsum: they are the exact isums). */
Q8_T512 __attribute__((always_inline)) static inline void q8_out512(int NT, const q8_args *p, int m,
                                                                    int t0, __m512i c0, __m512i c1,
                                                                    __m512i c2)
{
    __m512i c[3] = { c0, c1, c2 };
    for (int t = 0; t < NT; t++) {
        int n0 = (t0 + t) * Q8_TN, nv = p->N - n0 < Q8_TN ? p->N - n0 : Q8_TN;
        __mmask16 mk = (__mmask16)((1u << nv) - 1);
        __m512 s = _mm512_mul_ps(_mm512_set1_ps(p->sa[m]), _mm512_loadu_ps(p->sw + n0));
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(c[t]), s);
        float *out = p->C + (size_t)m * p->ldc + n0;
        if (p->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, q8_bias(p, m) + n0));
        if (p->beta != 0.0f)
            v = _mm512_add_ps(
                v, _mm512_mul_ps(_mm512_set1_ps(p->beta), _mm512_maskz_loadu_ps(mk, out)));
        _mm512_mask_storeu_ps(out, mk, v);
    }
}

/* Rows m0 .. m0 + MR - 1 x tiles t0 .. t0 + nt - 1 (MR <= 8 and NT, 2 or 3, constants at
 * every call; nt <= NT: a group of fewer tiles repeats its last, computed, not stored, so
 * that there are 16 instances, not 24): 24 named accumulators (GCC keeps an array of them
 * in memory as well). */
Q8_T512 __attribute__((always_inline)) static inline void q8_mk512(int MR, int NT, int nt,
                                                                   const q8_args *p, int m0, int t0)
{
    size_t ts = (size_t)p->kp * Q8_TN, as = p->as;          /* bytes of a tile, of a row */
    size_t o1 = nt > 1 ? ts : 0, o2 = nt > 2 ? 2 * ts : o1; /* the 2nd and 3rd tiles */
    /* each tile's sums start from -128 times its weight rows' sums: the activations come
     * as q + 128 (exact modulo 2^32, so the exact isum at the end) */
    const int32_t *rs = p->sum + (size_t)t0 * Q8_TN;
    int r1 = nt > 1 ? Q8_TN : 0, r2 = nt > 2 ? 2 * Q8_TN : r1; /* their row sums */
    __m512i z = _mm512_setzero_si512();
    __m512i c00 = _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_loadu_si512(rs), 7));
    __m512i c01 = _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_loadu_si512(rs + r1), 7));
    __m512i c02 = _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_loadu_si512(rs + r2), 7));
    __m512i c10 = c00, c11 = c01, c12 = c02, c20 = c00, c21 = c01, c22 = c02;
    __m512i c30 = c00, c31 = c01, c32 = c02, c40 = c00, c41 = c01, c42 = c02;
    __m512i c50 = c00, c51 = c01, c52 = c02, c60 = c00, c61 = c01, c62 = c02;
    __m512i c70 = c00, c71 = c01, c72 = c02;
    const int8_t *w = p->w + (size_t)t0 * ts;
    const uint8_t *a = (const uint8_t *)p->aq + (size_t)m0 * as;
    int nkb = p->kp / Q8_KB;
    for (int kb = 0; kb < nkb; kb++, w += 64, a += Q8_KB) {
        __m512i w0 = _mm512_loadu_si512(w);
        __m512i w1 = _mm512_loadu_si512(w + o1);
        __m512i w2 = NT > 2 ? _mm512_loadu_si512(w + o2) : w1;
        q8_dp512(NT, a, w0, w1, w2, &c00, &c01, &c02);
        if (MR > 1) q8_dp512(NT, a + as, w0, w1, w2, &c10, &c11, &c12);
        if (MR > 2) q8_dp512(NT, a + 2 * as, w0, w1, w2, &c20, &c21, &c22);
        if (MR > 3) q8_dp512(NT, a + 3 * as, w0, w1, w2, &c30, &c31, &c32);
        if (MR > 4) q8_dp512(NT, a + 4 * as, w0, w1, w2, &c40, &c41, &c42);
        if (MR > 5) q8_dp512(NT, a + 5 * as, w0, w1, w2, &c50, &c51, &c52);
        if (MR > 6) q8_dp512(NT, a + 6 * as, w0, w1, w2, &c60, &c61, &c62);
        if (MR > 7) q8_dp512(NT, a + 7 * as, w0, w1, w2, &c70, &c71, &c72);
    }
    q8_out512(nt, p, m0, t0, c00, c01, c02);
    if (MR > 1) q8_out512(nt, p, m0 + 1, t0, c10, c11, c12);
    if (MR > 2) q8_out512(nt, p, m0 + 2, t0, c20, c21, c22);
    if (MR > 3) q8_out512(nt, p, m0 + 3, t0, c30, c31, c32);
    if (MR > 4) q8_out512(nt, p, m0 + 4, t0, c40, c41, c42);
    if (MR > 5) q8_out512(nt, p, m0 + 5, t0, c50, c51, c52);
    if (MR > 6) q8_out512(nt, p, m0 + 6, t0, c60, c61, c62);
    if (MR > 7) q8_out512(nt, p, m0 + 7, t0, c70, c71, c72);
}

/* Rows m .. of tiles t .. t + nt - 1 with the NT-tile kernel, by the rows left. */
#define Q8_ROWS512(NT)                                   \
    switch (p->M - m < Q8_MR512 ? p->M - m : Q8_MR512) { \
    case 1: q8_mk512(1, NT, nt, p, m, t); break;         \
    case 2: q8_mk512(2, NT, nt, p, m, t); break;         \
    case 3: q8_mk512(3, NT, nt, p, m, t); break;         \
    case 4: q8_mk512(4, NT, nt, p, m, t); break;         \
    case 5: q8_mk512(5, NT, nt, p, m, t); break;         \
    case 6: q8_mk512(6, NT, nt, p, m, t); break;         \
    case 7: q8_mk512(7, NT, nt, p, m, t); break;         \
    default: q8_mk512(8, NT, nt, p, m, t); break;        \
    }

Q8_T512 static void q8_tiles_512(const q8_args *p, int t0, int t1)
{
    for (int t = t0, nt; t < t1; t += nt) {
        /* groups of 3 tiles; 1 or 2 left, or 4 (an attention head's 64 values: 2 + 2,
         * not 3 + 1 computed as 3) by the 2-tile kernel */
        nt = t1 - t == 4 ? 2 : t1 - t < Q8_NT512 ? t1 - t : Q8_NT512;
        for (int m = 0; m < p->M; m += Q8_MR512) {
            if (nt == 3) {
                Q8_ROWS512(3)
            } else {
                Q8_ROWS512(2)
            }
        }
    }
}
#undef Q8_ROWS512

/* ---- 256-bit: AVX-VNNI (vpdpbusd on u8 activations) and AVX2 (vpmaddwd on int16) ----
 * A tile is two halves of 8 weight rows (32 bytes per 4 k); MR rows x one half. */

#define Q8_T256 __attribute__((target("avx2,fma")))
#define Q8_TVNNI __attribute__((target("avx2,fma,avxvnni")))
#define Q8_MR256 4

/* The row's max |a| and whether every value is finite, 8 lanes at a time. */
Q8_T256 __attribute__((always_inline)) static inline float q8_scan256(const float *a, int K,
                                                                      float *inv)
{
    __m256 vmx = _mm256_setzero_ps(), z = _mm256_setzero_ps(), zero = _mm256_setzero_ps();
    __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 x = _mm256_loadu_ps(a + k);
        vmx = _mm256_max_ps(vmx, _mm256_and_ps(x, mask));
        z = _mm256_add_ps(z, _mm256_mul_ps(x, zero));
    }
    float m[8], zz[8], mx = 0.0f, zs = 0.0f;
    _mm256_storeu_ps(m, vmx);
    _mm256_storeu_ps(zz, z);
    for (int i = 0; i < 8; i++) {
        mx = m[i] > mx ? m[i] : mx;
        zs += zz[i];
    }
    for (; k < K; k++) {
        float x = fabsf(a[k]);
        mx = x > mx ? x : mx;
        zs += a[k] * 0.0f;
    }
    return q8_row_scale(mx, zs == 0.0f, inv);
}

/* 8 activations quantized to int32 (clamped, rounded to nearest even). */
Q8_T256 __attribute__((always_inline)) static inline __m256i q8_q8x(const float *a, __m256 vi)
{
    __m256 x = _mm256_mul_ps(_mm256_loadu_ps(a), vi);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(x);
}

/* q8_pack_c's bytes, 8 values at a time (the clamp and rounding of q8_q8x). */
Q8_T256 static float q8_pack_256(const float *a, int K, int8_t *t, int32_t *sum)
{
    float inv, s = q8_scan256(a, K, &inv);
    if (inv == 0.0f) {
        q8_pack_zero(K, t, sum);
        return s;
    }
    __m256 vi = _mm256_set1_ps(inv);
    __m256i vs = _mm256_setzero_si256();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256i v = q8_q8x(a + k, vi);
        vs = _mm256_add_epi32(vs, v);
        __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        int32_t b[4];
        _mm_storeu_si128((__m128i *)b, _mm_packs_epi16(h, h));
        memcpy(t + (size_t)(k / Q8_KB) * Q8_KB * Q8_TN, &b[0], Q8_KB);
        memcpy(t + (size_t)(k / Q8_KB + 1) * Q8_KB * Q8_TN, &b[1], Q8_KB);
    }
    int32_t l[8], sm = q8_pack_from(a, k, K, inv, t);
    _mm256_storeu_si256((__m256i *)l, vs);
    for (int j = 0; j < 8; j++) sm += l[j];
    *sum = sm;
    return s;
}

/* AVX2: int16 activations. */
Q8_T256 static float q8_quant_avx2(const float *a, int K, int kp, void *dst)
{
    int16_t *q = dst;
    float inv, s = q8_scan256(a, K, &inv);
    if (inv == 0.0f) {
        memset(q, 0, (size_t)kp * sizeof *q);
        return s;
    }
    __m256 vi = _mm256_set1_ps(inv);
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256i v = q8_q8x(a + k, vi);
        __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storeu_si128((__m128i *)(q + k), h);
    }
    for (; k < K; k++) q[k] = (int16_t)q8_q1(a[k], inv);
    for (; k < kp; k++) q[k] = 0;
    return s;
}

/* AVX-VNNI: unsigned q + 128. */
Q8_T256 static float q8_quant_u8_256(const float *a, int K, int kp, void *dst)
{
    uint8_t *q = dst;
    float inv, s = q8_scan256(a, K, &inv);
    if (inv == 0.0f) {
        memset(q, 128, (size_t)kp);
        return s;
    }
    __m256 vi = _mm256_set1_ps(inv);
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256i v = _mm256_add_epi32(q8_q8x(a + k, vi), _mm256_set1_epi32(128));
        __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(q + k), _mm_packus_epi16(h, h));
    }
    for (; k < K; k++) q[k] = (uint8_t)(q8_q1(a[k], inv) + 128);
    for (; k < kp; k++) q[k] = 128;
    return s;
}

/* The epilogue of 8 outputs (rows n0 .. n0 + nv - 1 of one output row). */
Q8_T256 __attribute__((always_inline)) static inline void q8_store8(const q8_args *p, int m, int n0,
                                                                    int nv, __m256i isum)
{
    __m256 s = _mm256_mul_ps(_mm256_set1_ps(p->sa[m]), _mm256_loadu_ps(p->sw + n0));
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), s);
    float *c = p->C + (size_t)m * p->ldc + n0;
    float tmp[8];
    if (nv <= 0) return;
    if (p->bias) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, q8_bias(p, m) + n0, (size_t)nv * sizeof(float));
        v = _mm256_add_ps(v, _mm256_loadu_ps(tmp));
    }
    if (nv == 8) {
        if (p->beta != 0.0f)
            v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(p->beta), _mm256_loadu_ps(c)));
        _mm256_storeu_ps(c, v);
        return;
    }
    memset(tmp, 0, sizeof tmp);
    if (p->beta != 0.0f) {
        memcpy(tmp, c, (size_t)nv * sizeof(float));
        v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(p->beta), _mm256_loadu_ps(tmp)));
    }
    _mm256_storeu_ps(tmp, v);
    memcpy(c, tmp, (size_t)nv * sizeof(float));
}

/* AVX-VNNI: rows m0 .. m0 + MR - 1 x tile t, both halves at once (two dependency chains
 * per row, each 64-byte block read once). */
Q8_TVNNI __attribute__((always_inline)) static inline void q8_mkvnni(int MR, const q8_args *p,
                                                                     int m0, int t)
{
    __m256i lo[Q8_MR256], hi[Q8_MR256];
    const uint8_t *a = (const uint8_t *)p->aq + (size_t)m0 * p->as;
    const int8_t *w = p->w + (size_t)t * p->kp * Q8_TN;
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) lo[r] = hi[r] = _mm256_setzero_si256();
    for (int kb = 0; kb < p->kp / Q8_KB; kb++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(w + (size_t)kb * 64));
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(w + (size_t)kb * 64 + 32));
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            int32_t x;
            memcpy(&x, a + (size_t)r * p->as + (size_t)kb * Q8_KB, 4);
            __m256i av = _mm256_set1_epi32(x);
            lo[r] = _mm256_dpbusd_avx_epi32(lo[r], av, w0);
            hi[r] = _mm256_dpbusd_avx_epi32(hi[r], av, w1);
        }
    }
    int n0 = t * Q8_TN;
    __m256i c0 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(p->sum + n0)), 7);
    __m256i c1 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(p->sum + n0 + 8)), 7);
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        q8_store8(p, m0 + r, n0, p->N - n0 < 8 ? p->N - n0 : 8, _mm256_sub_epi32(lo[r], c0));
        q8_store8(p, m0 + r, n0 + 8, p->N - n0 - 8 < 8 ? p->N - n0 - 8 : 8,
                  _mm256_sub_epi32(hi[r], c1));
    }
}

Q8_TVNNI static void q8_tiles_vnni(const q8_args *p, int t0, int t1)
{
    for (int t = t0; t < t1; t++)
        for (int m = 0; m < p->M; m += Q8_MR256) {
            switch (p->M - m < Q8_MR256 ? p->M - m : Q8_MR256) {
            case 1: q8_mkvnni(1, p, m, t); break;
            case 2: q8_mkvnni(2, p, m, t); break;
            case 3: q8_mkvnni(3, p, m, t); break;
            default: q8_mkvnni(4, p, m, t); break;
            }
        }
}

/* AVX2: each 32-byte half-block sign-extended to two int16 vectors (rows 0-3, 4-7 of
 * the half, 4 k each), vpmaddwd with the row's 4 int16 activations repeated: lanes hold
 * pair sums per (row, k pair), added pairwise at the end. */
Q8_T256 __attribute__((always_inline)) static inline void q8_mkavx2(int MR, const q8_args *p,
                                                                    int m0, int t, int h)
{
    __m256i lo[Q8_MR256], hi[Q8_MR256];
    const int16_t *a[Q8_MR256];
    const int8_t *w = p->w + (size_t)t * p->kp * Q8_TN + 32 * h;
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        a[r] = (const int16_t *)((const char *)p->aq + (size_t)(m0 + r) * p->as);
        lo[r] = hi[r] = _mm256_setzero_si256();
    }
    for (int kb = 0; kb < p->kp / Q8_KB; kb++) {
        __m128i w0 = _mm_loadu_si128((const __m128i *)(w + (size_t)kb * 64));
        __m128i w1 = _mm_loadu_si128((const __m128i *)(w + (size_t)kb * 64 + 16));
        __m256i x0 = _mm256_cvtepi8_epi16(w0), x1 = _mm256_cvtepi8_epi16(w1);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            int64_t x;
            memcpy(&x, a[r] + (size_t)kb * Q8_KB, 8);
            __m256i av = _mm256_set1_epi64x(x);
            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(x0, av));
            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(x1, av));
        }
    }
    int n0 = t * Q8_TN + 8 * h;
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        /* hadd: rows 0 1 4 5 | 2 3 6 7; the 64-bit swap puts them in order */
        __m256i s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xD8);
        q8_store8(p, m0 + r, n0, p->N - n0 < 8 ? p->N - n0 : 8, s);
    }
}

Q8_T256 static void q8_tiles_avx2(const q8_args *p, int t0, int t1)
{
    for (int t = t0; t < t1; t++)
        for (int h = 0; h < 2 && t * Q8_TN + 8 * h < p->N; h++)
            for (int m = 0; m < p->M; m += Q8_MR256) {
                switch (p->M - m < Q8_MR256 ? p->M - m : Q8_MR256) {
                case 1: q8_mkavx2(1, p, m, t, h); break;
                case 2: q8_mkavx2(2, p, m, t, h); break;
                case 3: q8_mkavx2(3, p, m, t, h); break;
                default: q8_mkavx2(4, p, m, t, h); break;
                }
            }
}

/* What the CPU and the OS offer (cpuid leaf 7, and xgetbv: the OS saves the registers). */
static int q8_xcr0_has(unsigned bits)
{
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & bits) == bits;
}

static void q8_cpuid7(unsigned sub, unsigned r[4])
{
    __asm__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(7), "c"(sub));
}

static int q8_max_leaf(void)
{
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    return (int)a;
}

static int q8_has_avx2(void)
{
    unsigned r[4];
    if (q8_max_leaf() < 7 || !q8_xcr0_has(0x6)) return 0;
    q8_cpuid7(0, r);
    return (r[1] >> 5) & 1; /* EBX: AVX2 */
}

static int q8_has_avxvnni(void)
{
    unsigned r[4];
    if (!q8_has_avx2()) return 0;
    q8_cpuid7(1, r);
    return (r[0] >> 4) & 1; /* leaf 7.1 EAX: AVX-VNNI */
}

static int q8_has_512vnni(void)
{
    unsigned r[4];
    if (!q8_has_avx2() || !q8_xcr0_has(0xe6)) return 0; /* + opmask, ZMM state */
    q8_cpuid7(0, r);
    unsigned b = r[1], c = r[2];
    return ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) /* F, BW, VL */
           && ((c >> 11) & 1);                                   /* ECX: AVX512_VNNI */
}
#endif

/* ---- kernel choice ---- */

typedef struct q8_kernel {
    const char *name;
    int elem; /* bytes of one quantized activation */
    q8_quant_fn quant;
    q8_tiles_fn tiles;
    q8_pack_fn pack;
    int (*supported)(void);
} q8_kernel;

static int q8_always(void) { return 1; }

/* Best first. */
static const q8_kernel q8_kernels[] = {
#ifdef Q8_X86
    { "avx512vnni", 1, q8_quant_512, q8_tiles_512, q8_pack_512, q8_has_512vnni },
    { "avxvnni", 1, q8_quant_u8_256, q8_tiles_vnni, q8_pack_256, q8_has_avxvnni },
    { "avx2", 2, q8_quant_avx2, q8_tiles_avx2, q8_pack_256, q8_has_avx2 },
#endif
    { "c", 1, q8_quant_c, q8_tiles_c, q8_pack_c, q8_always },
};
#define Q8_NKERNELS ((int)(sizeof q8_kernels / sizeof q8_kernels[0]))

static const q8_kernel *volatile q8_cur;
static pthread_once_t q8_pick_once = PTHREAD_ONCE_INIT;

/* The best the CPU has: the table's first supported entry (best first). */
static const q8_kernel *q8_best(void)
{
    for (int i = 0; i < Q8_NKERNELS; i++)
        if (q8_kernels[i].supported()) return &q8_kernels[i];
    return &q8_kernels[Q8_NKERNELS - 1];
}

static const q8_kernel *q8_find(const char *name)
{
    for (int i = 0; i < Q8_NKERNELS; i++)
        if (strcmp(q8_kernels[i].name, name) == 0 && q8_kernels[i].supported())
            return &q8_kernels[i];
    return NULL;
}

static void q8_pick(void)
{
    const char *env = getenv("NLPD_Q8_KERNEL");
    const q8_kernel *k = env && *env ? q8_find(env) : NULL;
    q8_cur = k ? k : q8_best();
}

static const q8_kernel *q8_get(void)
{
    pthread_once(&q8_pick_once, q8_pick);
    return q8_cur;
}

const char *eng_q8_kernel(void) { return q8_get()->name; }

int eng_q8_set_kernel(const char *name)
{
    pthread_once(&q8_pick_once, q8_pick);
    const q8_kernel *k = name ? q8_find(name) : q8_best();
    if (!k) return -1;
    q8_cur = k;
    return 0;
}

int eng_q8_pack_rows(const float *src, int N, int K, int lds, void *dst)
{
    if (!src || !dst || !q8_shape_ok(N, K) || lds < K || ((uintptr_t)dst & 3)) return -1;
    q8_hdr h = q8_layout(N, K);
    unsigned char *b = dst;
    memcpy(b, &h, sizeof h);
    memset(b + sizeof h, 0, (size_t)(h.data_off - sizeof h));
    float *scales = (float *)(b + h.scales_off);
    int32_t *sums = (int32_t *)(b + h.sums_off);
    int8_t *q = (int8_t *)(b + h.data_off);
    /* the rows past N are zeros (a row writes its own K padding) */
    if (h.np > (uint32_t)N)
        for (uint32_t kb = 0; kb < h.kp / Q8_KB; kb++)
            memset(q + ((size_t)(h.np / Q8_TN - 1) * h.kp + kb * Q8_KB) * Q8_TN +
                       (size_t)(N % Q8_TN) * Q8_KB,
                   0, (size_t)(h.np - (uint32_t)N) * Q8_KB);
    q8_pack_fn pack = q8_get()->pack;
    for (int n = 0; n < N; n++)
        scales[n] = pack(src + (size_t)n * lds, K, q + q8_at(h.kp, n, 0), &sums[n]);
    return 0;
}

/* ---- scratch: the calling thread's, grown once, freed when the thread exits ---- */

static pthread_key_t q8_key;
static pthread_once_t q8_key_once = PTHREAD_ONCE_INIT;
static _Thread_local void *q8_buf;
static _Thread_local size_t q8_cap;

static void q8_key_make(void) { (void)pthread_key_create(&q8_key, free); }

static void *q8_scratch(size_t need)
{
    if (need <= q8_cap) return q8_buf;
    pthread_once(&q8_key_once, q8_key_make);
    void *p = aligned_alloc(64, (need + 63) & ~(size_t)63);
    if (!p) return NULL;
    free(q8_buf);
    q8_buf = p, q8_cap = need;
    (void)pthread_setspecific(q8_key, p);
    return p;
}

/* Checks the arguments of one product; 0, or eng_gemm_q8's error. */
static int q8_check(int M, int N, int K, int lda, const void *packed, int ldc, q8_hdr *h)
{
    if (M < 0 || !q8_shape_ok(N, K) || lda < K || ldc < N || !packed || ((uintptr_t)packed & 3))
        return -1;
    q8_hdr want = q8_layout(N, K);
    memcpy(h, packed, sizeof *h);
    return memcmp(h, &want, sizeof *h) != 0 ? -2 : 0;
}

/* C[i] = dequant(q8(A) . Wq_i^T) (+ bias rows) (+ beta C[i]) for the n weights:
 * eng_gemm_q8 (n = 1), eng_gemm_q8_n and, on the calling thread only (serial),
 * eng_gemm_q8_serial. */
static int q8_products(int M, int K, const float *A, int lda, int n, const void *const packed[],
                       const int N[], float *const C[], const int ldc[], float beta,
                       const float *bias, long bstep, int serial)
{
    if (n < 1 || n > ENG_Q8_MAX_SHARED || M < 0) return -1;
    q8_hdr h[ENG_Q8_MAX_SHARED];
    double work = 0;
    for (int i = 0; i < n; i++) {
        int rc = q8_check(M, N[i], K, lda, packed[i], ldc[i], &h[i]);
        if (rc < 0) return rc;
        work += (double)M * N[i] * K;
    }
    if (M == 0) return 0;
    if (!A) return -1;
    for (int i = 0; i < n; i++)
        if (!C[i]) return -1;
    const q8_kernel *kern = q8_get();
    size_t as = ((size_t)h[0].kp * kern->elem + 63) & ~(size_t)63;
    char *buf = q8_scratch((size_t)M * as + (size_t)M * sizeof(float));
    if (!buf) return -9;
    float *sa = (float *)(buf + (size_t)M * as);
    q8_args p[ENG_Q8_MAX_SHARED];
    int first[ENG_Q8_MAX_SHARED + 1] = { 0 }; /* each weight's first tile of them all */
    for (int i = 0; i < n; i++) {
        const unsigned char *b = packed[i];
        p[i] = (q8_args){
            .M = M,
            .N = N[i],
            .kp = (int)h[i].kp,
            .aq = buf,
            .as = as,
            .sa = sa,
            .w = (const int8_t *)(b + h[i].data_off),
            .sw = (const float *)(b + h[i].scales_off),
            .sum = (const int32_t *)(b + h[i].sums_off),
            .beta = beta,
            .bias = bias,
            .bstep = bstep,
            .C = C[i],
            .ldc = ldc[i],
        };
        first[i + 1] = first[i] + (int)(h[i].np / Q8_TN);
    }
    int tiles = first[n];
    int nt = 1;
#ifdef _OPENMP
    if (work >= Q8_PAR_MIN && !serial) nt = omp_get_max_threads();
#endif
    (void)work, (void)nt, (void)serial; /* without OpenMP */
    /* Each thread quantizes its share of the rows, then computes its share of the tiles of
     * every weight (tiles t0 .. t1 - 1 of them all, in order): any split gives every
     * output the same exact integer sum and the same epilogue. */
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
#ifdef _OPENMP
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
#else
        int nth = 1, id = 0;
#endif
        for (int m = (int)((long)M * id / nth); m < (int)((long)M * (id + 1) / nth); m++)
            sa[m] = kern->quant(A + (size_t)m * lda, K, (int)h[0].kp, buf + (size_t)m * as);
#ifdef _OPENMP
#pragma omp barrier
#endif
        int t0 = (int)((long)tiles * id / nth), t1 = (int)((long)tiles * (id + 1) / nth);
        for (int i = 0; i < n; i++) {
            int a = t0 > first[i] ? t0 : first[i], z = t1 < first[i + 1] ? t1 : first[i + 1];
            if (a < z) kern->tiles(&p[i], a - first[i], z - first[i]);
        }
    }
    return 0;
}

int eng_gemm_q8_n(int M, int K, const float *A, int lda, int n, const void *const packed[],
                  const int N[], float *const C[], const int ldc[])
{
    return q8_products(M, K, A, lda, n, packed, N, C, ldc, 0.0f, NULL, 0, 0);
}

int eng_gemm_q8(int M, int N, int K, const float *A, int lda, const void *packed, float beta,
                float *C, int ldc)
{
    return q8_products(M, K, A, lda, 1, &packed, &N, &C, &ldc, beta, NULL, 0, 0);
}

int eng_gemm_q8_serial(int M, int N, int K, const float *A, int lda, const void *packed,
                       const float *bias, long bstep, float *C, int ldc)
{
    return q8_products(M, K, A, lda, 1, &packed, &N, &C, &ldc, 0.0f, bias, bstep, 1);
}
