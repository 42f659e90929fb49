/* The one door for matrix products, all computed by kernels of our own.
 *
 * One summation order. Every output of a product with weights (eng_linear: C = A W^T, W
 * an HF Linear weight [N, K] read in place) is one multiply-add chain over k in order,
 * whatever the number of rows and whichever kernel takes them: 1 to EK_FEW rows go to
 * the few-rows kernel (weights transposed in registers), more to the packed many-rows
 * kernel (input rows packed in panels, weights broadcast). The threads split the weight
 * rows, and an output is computed by one thread the same way whatever the split. So a
 * row's result is bitwise the same alone or beside any other rows, at any thread count:
 * the engine's promise that a document's result does not depend on who shares its calls
 * rests on this. OpenBLAS takes no product here: its kernels block K and change with the
 * row count, the thread count and OPENBLAS_CORETYPE.
 *
 * Why kernels of our own: OpenBLAS's sgemm packs the whole weight matrix into its own
 * panel layout on every call and its sgemv takes one row at a time, so for 2..32 rows it
 * runs at a fraction of the machine; at many rows the packed kernel matches its best
 * kernels (below). Attention's products (eng_gemm_serial, per head of one sequence) use
 * the row-times-columns kernels further down; each sequence always takes the same one.
 *
 * Threads: OpenMP splits the weight rows between threads. OpenBLAS is linked in its
 * OpenMP build (Makefile), so both share one thread pool instead of two pools fighting
 * over the cores. Without OpenMP (e.g. the clang ASan build) the kernels run serially.
 * This file is compiled with -ffp-contract=fast so that a*b+c is one FMA (in every clone
 * that has FMA; the baseline clone rounds the product first: the same in every kernel). */
#include "common/common.h"
#include "engine/eng_int.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* F16 weights are widened by F16C's vcvtph2ps in kernels compiled for x86-64-v4 and -v3
 * (EK_W_F16_V4, EK_W_F16_V3 below), chosen at run time: target_clones cannot tell a clone
 * which instructions it may use. immintrin.h declares the builtins they call. */
#define EK_F16C 1
#include <immintrin.h>
#define EK_TGT_V4 __attribute__((target("arch=x86-64-v4")))
#define EK_TGT_V3 __attribute__((target("arch=x86-64-v3")))
#endif

/* Products smaller than this many multiply-adds run on one thread: waking the others
 * costs more than it saves. */
#define EK_PAR_MIN (1 << 17)

/* Guards openblas_set_num_threads only: no product takes a lock (each calling thread has
 * its own packing buffer), so two engine contexts on two threads compute at once. */
static pthread_mutex_t ek_blas_lock = PTHREAD_MUTEX_INITIALIZER;

typedef float ek_v16 __attribute__((vector_size(64)));
typedef float ek_v8 __attribute__((vector_size(32)));
typedef float ek_v4 __attribute__((vector_size(16)));

__attribute__((always_inline)) static inline ek_v16 ek_load(const float *p)
{
    ek_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- weights of any float type (eng_wtype): BF16 and F16 are widened in registers ----
 * Both widen to F32 exactly, so a product with BF16 or F16 weights is bitwise the product
 * with their F32 widening: the kernels below run the same multiply-add chains on the
 * widened values. The widening is integer arithmetic on vectors (BF16: a shift; F16:
 * shift, rebias by a multiply by 2^112, which is exact, and the infinities and NaNs
 * kept), so every clone (AVX-512, AVX2, baseline) and compiler computes it the same. */
typedef uint16_t ek_h16 __attribute__((vector_size(32)));
typedef uint32_t ek_u16 __attribute__((vector_size(64)));
typedef int32_t ek_i16 __attribute__((vector_size(64)));

/* F16 weights widened by vcvtph2ps, 16 at once (AVX-512) or 8 (AVX2 + F16C): only in the
 * kernels compiled for those targets. The same values as the integer widening (F16 to F32
 * is exact; a signalling NaN comes out quiet, which no product can tell apart). */
enum { EK_W_F16_V4 = 16, EK_W_F16_V3 = 17 };

/* Bytes of one weight of type wt (F32, BF16, F16). */
static inline size_t ek_wsize(int wt) { return wt == ENG_W_F32 ? 4 : 2; }

/* The 16 weights at element k of p, widened. wt is a constant wherever this is inlined. */
__attribute__((always_inline)) static inline ek_v16 ek_wload(const void *p, int wt, size_t k)
{
    if (wt == ENG_W_F32) {
        ek_v16 v;
        memcpy(&v, (const float *)p + k, sizeof v);
        return v;
    }
    ek_h16 h;
    memcpy(&h, (const uint16_t *)p + k, sizeof h);
#ifdef EK_F16C
    if (wt == EK_W_F16_V4) {
        typedef short s16 __attribute__((vector_size(32)));
        typedef float f16v __attribute__((vector_size(64)));
        f16v r = __builtin_ia32_vcvtph2ps512_mask((s16)h, (f16v){ 0 }, (unsigned short)0xffff, 4);
        return (ek_v16)r;
    }
    if (wt == EK_W_F16_V3) {
        typedef short s8 __attribute__((vector_size(16)));
        typedef float f8 __attribute__((vector_size(32)));
        s8 lo = (s8)__builtin_shufflevector(h, h, 0, 1, 2, 3, 4, 5, 6, 7);
        s8 hi = (s8)__builtin_shufflevector(h, h, 8, 9, 10, 11, 12, 13, 14, 15);
        f8 a = __builtin_ia32_vcvtph2ps256(lo), b = __builtin_ia32_vcvtph2ps256(hi);
        return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }
#endif
    ek_u16 u = __builtin_convertvector(h, ek_u16);
    ek_v16 f;
    if (wt == ENG_W_BF16) {
        u <<= 16;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    ek_u16 em = (u & 0x7fffu) << 13, sign = (u & 0x8000u) << 16;
    memcpy(&f, &em, sizeof f);
    f *= 0x1p112f; /* exact: normals and subnormals alike */
    ek_u16 r;
    memcpy(&r, &f, sizeof r);
    ek_i16 big = (ek_i16)(em >= (0x7c00u << 13)); /* inf / NaN: all-ones lanes */
    r = (r & ~(ek_u16)big) | ((em | 0x7f800000u) & (ek_u16)big);
    r |= sign;
    memcpy(&f, &r, sizeof f);
    return f;
}

/* Weight k of p, widened. */
__attribute__((always_inline)) static inline float ek_wget(const void *p, int wt, size_t k)
{
    if (wt == ENG_W_F32) return ((const float *)p)[k];
    uint16_t h;
    memcpy(&h, (const uint16_t *)p + k, sizeof h);
    return wt == ENG_W_BF16 ? eng_bf16_to_f32(h) : eng_f16_to_f32(h);
}

/* Row r of a weight matrix with row stride ld (in weights). */
__attribute__((always_inline)) static inline const void *ek_wrow(const void *W, int wt, size_t r,
                                                                 size_t ld)
{
    return (const char *)W + r * ld * ek_wsize(wt);
}

/* The sum of the 16 lanes, pairwise (the same order on every target). */
__attribute__((always_inline)) static inline float ek_hsum(ek_v16 a)
{
    ek_v8 b = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
              __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    ek_v4 c = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
    return (c[0] + c[2]) + (c[1] + c[3]);
}

__attribute__((always_inline)) static inline float ek_dot_tail(const float *a, const float *w,
                                                               int k, int K)
{
    float s = 0.0f;
    for (; k < K; k++) s += a[k] * w[k];
    return s;
}

__attribute__((always_inline)) static inline void ek_store(float *c, float v, float beta)
{
    *c = beta == 0.0f ? v : v + beta * *c;
}

/* The cache lines at p, p + ldw, p + 2 ldw, p + 3 ldw: the next tile's weights. */
__attribute__((always_inline)) static inline void ek_prefetch4(const float *p, int ldw)
{
    for (int j = 0; j < 4; j++) __builtin_prefetch(p + (size_t)j * ldw);
}

/* c[0..3] = the sums of 4 accumulators (input row a times weight rows w0 + j ldw), each
 * plus the tail of K. */
__attribute__((always_inline)) static inline void ek_store4(float *c, const float *a,
                                                            const float *w0, int ldw, int K16,
                                                            int K, ek_v16 s0, ek_v16 s1, ek_v16 s2,
                                                            ek_v16 s3, float beta)
{
    ek_store(c + 0, ek_hsum(s0) + ek_dot_tail(a, w0, K16, K), beta);
    ek_store(c + 1, ek_hsum(s1) + ek_dot_tail(a, w0 + ldw, K16, K), beta);
    ek_store(c + 2, ek_hsum(s2) + ek_dot_tail(a, w0 + 2 * (size_t)ldw, K16, K), beta);
    ek_store(c + 3, ek_hsum(s3) + ek_dot_tail(a, w0 + 3 * (size_t)ldw, K16, K), beta);
}

/* Rows u and v of a 16 x 16 block exchange their off-diagonal h x h blocks (h = 8, 4, 2,
 * 1: after the four steps every row is a column). */
__attribute__((always_inline)) static inline void ek_swap8(ek_v16 *u, ek_v16 *v)
{
    ek_v16 a = *u, b = *v;
    *u = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    *v =
        __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}
__attribute__((always_inline)) static inline void ek_swap4(ek_v16 *u, ek_v16 *v)
{
    ek_v16 a = *u, b = *v;
    *u = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    *v = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
}
__attribute__((always_inline)) static inline void ek_swap2(ek_v16 *u, ek_v16 *v)
{
    ek_v16 a = *u, b = *v;
    *u = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    *v = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
}
__attribute__((always_inline)) static inline void ek_swap1(ek_v16 *u, ek_v16 *v)
{
    ek_v16 a = *u, b = *v;
    *u = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    *v = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}
__attribute__((always_inline)) static inline void ek_transpose16(ek_v16 x[16])
{
#pragma GCC unroll 16
    for (int i = 0; i < 8; i++) ek_swap8(&x[i], &x[i + 8]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (!(i & 4)) ek_swap4(&x[i], &x[i + 4]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (!(i & 2)) ek_swap2(&x[i], &x[i + 2]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) ek_swap1(&x[i], &x[i + 1]);
}

/* x[j] lane i = w[i][k0 + j], widened, for 16 BF16 weight rows w[0..15] (j < 16): the
 * transpose and the widening in one. Rows i and i + 8 are loaded into one vector (32
 * halves); a BF16 value widens to F32 by moving it to the high half of a 32-bit lane, so
 * each such vector gives the even k of both rows (shifted up 16) and the odd k (the low
 * half masked off) without a widening instruction. Those 16 vectors hold row bit 3 and
 * k bits 3..1 in their lanes and k bit 0 and row bits 2..0 in their index; three block
 * exchanges (4, 2, 1) move the row bits into the lanes: 48 shuffles for 16 x 16 weights
 * against the F32 transpose's 64. v[j] then holds k = 2 (j & 7) + (j >> 3). */
__attribute__((always_inline)) static inline void ek_bf16_block16(const void *const w[16], int k0,
                                                                  ek_v16 x[16])
{
    typedef uint16_t h32 __attribute__((vector_size(64)));
    ek_v16 v[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        ek_h16 lo, hi;
        memcpy(&lo, (const uint16_t *)w[i] + k0, sizeof lo);
        memcpy(&hi, (const uint16_t *)w[i + 8] + k0, sizeof hi);
        h32 z =
            __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
        ek_u16 d, e, o;
        memcpy(&d, &z, sizeof d);
        e = d << 16;
        o = d & 0xffff0000u;
        memcpy(&v[i], &e, sizeof e);
        memcpy(&v[i + 8], &o, sizeof o);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (!(i & 4)) ek_swap4(&v[i], &v[i + 4]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (!(i & 2)) ek_swap2(&v[i], &v[i + 2]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) ek_swap1(&v[i], &v[i + 1]);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) x[j] = v[(j >> 1) | (j & 1) << 3];
}

/* The 16 sums of 16 accumulators at once, added in the pairs ek_hsum adds (lanes i and
 * i + 8, then i + 4, i + 2, i + 1), so each equals ek_hsum of its accumulator: each
 * level adds the two halves of every accumulator's partial sums and packs two
 * accumulators' halves into one vector (levels 8 and 2 pack them as the transpose's
 * block exchanges do; 4 and 1 keep each accumulator's halves side by side). */
__attribute__((always_inline)) static inline ek_v16 ek_sum_half8(ek_v16 u, ek_v16 v)
{
    ek_swap8(&u, &v);
    return u + v;
}
__attribute__((always_inline)) static inline ek_v16 ek_sum_half4(ek_v16 u, ek_v16 v)
{
    return __builtin_shufflevector(u, v, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(u, v, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30,
                                   31);
}
__attribute__((always_inline)) static inline ek_v16 ek_sum_half2(ek_v16 u, ek_v16 v)
{
    ek_swap2(&u, &v);
    return u + v;
}
__attribute__((always_inline)) static inline ek_v16 ek_sum_half1(ek_v16 u, ek_v16 v)
{
    return __builtin_shufflevector(u, v, 0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28,
                                   30) +
           __builtin_shufflevector(u, v, 1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31);
}

/* C rows 0..M-1 x weight rows n0..n0+3: the 4 weight rows stay in L1 while every input
 * row passes by, 4 input rows at a time (16 accumulators in registers). A last group of
 * 2 or 3 rows repeats its last row (computed, not stored); a last single row has a loop
 * of its own. Each output is computed the same way wherever its row falls. The next
 * tile's weights are prefetched (when there is one: next), a share of its rows by each of
 * the first four groups: spread over the tile's work, the loads overlap the arithmetic
 * (all in the first group, they queue behind each other and the arithmetic waits;
 * docs/models.md, "Matrix-product kernels", has the measurements). */
__attribute__((always_inline)) static inline void ek_tile4(int M, int K, const float *A, int lda,
                                                           const float *W, int ldw, int n0,
                                                           int next, float beta, float *C, int ldc)
{
    const float *w0 = W + (size_t)n0 * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    const float *p0 = next ? w3 + ldw : NULL; /* the next tile's rows: p0 + j ldw */
    int K16 = K & ~15;
    int m = 0, m4 = M % 4 == 1 ? M - 1 : M; /* rows done in groups of 4 */
    for (; m < m4; m += 4) {
        int rows = M - m < 4 ? M - m : 4;
        const float *a0 = A + (size_t)m * lda;
        const float *a1 = A + (size_t)(m + (rows > 1)) * lda;
        const float *a2 = A + (size_t)(m + (rows > 2 ? 2 : rows - 1)) * lda;
        const float *a3 = A + (size_t)(m + rows - 1) * lda;
        /* this group prefetches the next tile's rows r0 .. r1 - 1 */
        int g = m / 4, G = (m4 + 3) / 4 < 4 ? (m4 + 3) / 4 : 4;
        int r0 = g < G ? g * 4 / G : 4, r1 = g < G ? (g + 1) * 4 / G : 4;
        int pf = p0 && r0 < r1;
        /* cRJ: input row m + R times weight row n0 + J */
        ek_v16 c00 = { 0 }, c01 = { 0 }, c02 = { 0 }, c03 = { 0 };
        ek_v16 c10 = { 0 }, c11 = { 0 }, c12 = { 0 }, c13 = { 0 };
        ek_v16 c20 = { 0 }, c21 = { 0 }, c22 = { 0 }, c23 = { 0 };
        ek_v16 c30 = { 0 }, c31 = { 0 }, c32 = { 0 }, c33 = { 0 };
        for (int k = 0; k < K16; k += 16) {
            ek_v16 x0 = ek_load(w0 + k), x1 = ek_load(w1 + k);
            ek_v16 x2 = ek_load(w2 + k), x3 = ek_load(w3 + k);
            if (pf)
                for (int r = r0; r < r1; r++) __builtin_prefetch(p0 + (size_t)r * ldw + k);
            ek_v16 y = ek_load(a0 + k);
            c00 += y * x0, c01 += y * x1, c02 += y * x2, c03 += y * x3;
            y = ek_load(a1 + k);
            c10 += y * x0, c11 += y * x1, c12 += y * x2, c13 += y * x3;
            y = ek_load(a2 + k);
            c20 += y * x0, c21 += y * x1, c22 += y * x2, c23 += y * x3;
            y = ek_load(a3 + k);
            c30 += y * x0, c31 += y * x1, c32 += y * x2, c33 += y * x3;
        }
        float *c = C + (size_t)m * ldc + n0;
        ek_v16 r = ek_sum_half1(
            ek_sum_half2(ek_sum_half4(ek_sum_half8(c00, c01), ek_sum_half8(c02, c03)),
                         ek_sum_half4(ek_sum_half8(c10, c11), ek_sum_half8(c12, c13))),
            ek_sum_half2(ek_sum_half4(ek_sum_half8(c20, c21), ek_sum_half8(c22, c23)),
                         ek_sum_half4(ek_sum_half8(c30, c31), ek_sum_half8(c32, c33))));
        /* lane 4 j + i: input row m + i times weight row n0 + j */
        r = __builtin_shufflevector(r, r, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        if (rows == 4 && K16 == K && beta == 0.0f) {
            for (int i = 0; i < 4; i++) {
                ek_v4 ri = { r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3] };
                memcpy(c + (size_t)i * ldc, &ri, sizeof ri);
            }
        } else {
            const float *ar[4] = { a0, a1, a2, a3 };
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < 4; j++)
                    ek_store(c + (size_t)i * ldc + j,
                             r[4 * i + j] + ek_dot_tail(ar[i], w0 + (size_t)j * ldw, K16, K), beta);
        }
    }
    if (m < M) { /* one row left: 4 accumulators (padding it to 4 would do 4 times the work) */
        const float *a = A + (size_t)m * lda;
        int pf = m == 0 && p0;
        ek_v16 c0 = { 0 }, c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
        for (int k = 0; k < K16; k += 16) {
            if (pf) ek_prefetch4(p0 + k, ldw);
            ek_v16 y = ek_load(a + k);
            c0 += y * ek_load(w0 + k);
            c1 += y * ek_load(w1 + k);
            c2 += y * ek_load(w2 + k);
            c3 += y * ek_load(w3 + k);
        }
        ek_store4(C + (size_t)m * ldc + n0, a, w0, ldw, K16, K, c0, c1, c2, c3, beta);
    }
}

/* One weight row (the last N % 4) against every input row. */
__attribute__((always_inline)) static inline void ek_tile1(int M, int K, const float *A, int lda,
                                                           const float *W, int ldw, int n,
                                                           float beta, float *C, int ldc)
{
    const float *w = W + (size_t)n * ldw;
    int K16 = K & ~15;
    for (int m = 0; m < M; m++) {
        const float *a = A + (size_t)m * lda;
        ek_v16 acc = { 0 };
        for (int k = 0; k < K16; k += 16) acc += ek_load(a + k) * ek_load(w + k);
        ek_store(C + (size_t)m * ldc + n, ek_hsum(acc) + ek_dot_tail(a, w, K16, K), beta);
    }
}

/* Tiles t0..t1-1 of C[M,N] = A[M,K] W[N,K]^T (+ beta C), and the last N % 4 weight
 * rows when t1 is the last tile. One thread's share of the product. */
ENG_CLONES
static void ek_rows_nt_part(int t0, int t1, int M, int N, int K, const float *A, int lda,
                            const float *W, int ldw, float beta, float *C, int ldc)
{
    for (int t = t0; t < t1; t++) ek_tile4(M, K, A, lda, W, ldw, 4 * t, t + 1 < t1, beta, C, ldc);
    if (t1 == N / 4)
        for (int n = 4 * t1; n < N; n++) ek_tile1(M, K, A, lda, W, ldw, n, beta, C, ldc);
}

/* Rows a[0..nr-1] (nr <= 4) by columns j .. j + 16 nc of C = A B (+ beta C) into rows
 * c[0..nr-1], stored from column js on: each output the sum over k in order. nr and nc
 * are constants at every call, so the nr x nc sums stay in registers. */
__attribute__((always_inline)) static inline void ek_nn_block(int nr, int nc, int K,
                                                              const float *const a[4],
                                                              const float *B, int ldb, int j,
                                                              int js, float beta, float *const c[4])
{
    ek_v16 s[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) s[r][q] = (ek_v16){ 0 };
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb + j;
        float x[4];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) x[r] = a[r][k];
#pragma GCC unroll 4
        for (int q = 0; q < nc; q++) {
            ek_v16 y = ek_load(b + 16 * q);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) s[r][q] += x[r] * y;
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int q = 0; q < nc; q++) {
            float *cq = c[r] + j + 16 * q;
            if (beta == 0.0f && j + 16 * q >= js) {
                memcpy(cq, &s[r][q], sizeof s[r][q]);
                continue;
            }
            for (int l = 0; l < 16; l++)
                if (j + 16 * q + l >= js) ek_store(cq + l, s[r][q][l], beta);
        }
}

/* Rows a[0..nr-1] of C = A B into rows c[0..nr-1]: 64 columns at a time, then 16 to 48,
 * then the last N % 16 as the last 16 columns again (computed alike, so the same values),
 * stored from where the others stopped; N < 16: one by one. */
__attribute__((always_inline)) static inline void ek_nn_rows(int nr, int N, int K,
                                                             const float *const a[4],
                                                             const float *B, int ldb, float beta,
                                                             float *const c[4])
{
    int j = 0;
    for (; j + 64 <= N; j += 64) ek_nn_block(nr, 4, K, a, B, ldb, j, j, beta, c);
    switch ((N - j) / 16) {
    case 3: ek_nn_block(nr, 3, K, a, B, ldb, j, j, beta, c); break;
    case 2: ek_nn_block(nr, 2, K, a, B, ldb, j, j, beta, c); break;
    case 1: ek_nn_block(nr, 1, K, a, B, ldb, j, j, beta, c); break;
    default: break;
    }
    j += (N - j) / 16 * 16;
    if (j == N) return;
    if (N >= 16) {
        ek_nn_block(nr, 1, K, a, B, ldb, N - 16, j, beta, c);
        return;
    }
    for (int r = 0; r < nr; r++)
        for (int jj = j; jj < N; jj++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++) sum += a[r][k] * B[(size_t)k * ldb + jj];
            ek_store(c[r] + jj, sum, beta);
        }
}

/* C[M,N] = A[M,K] B[K,N] (+ beta C), M small: each output is the sum over k in order of
 * A times B (the attention's weights times values). Four rows by 64 columns at a time
 * keep 16 sums in registers, and each k's 4 loads of B serve 16 multiply-adds (with two
 * rows the sums spilled to the stack and it ran at half the speed). */
ENG_CLONES
static void ek_rows_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc)
{
    int m = 0;
    for (; m < M; m += 4) {
        const float *a[4];
        float *c[4];
        for (int r = 0; r < 4; r++) {
            int row = m + r < M ? m + r : M - 1;
            a[r] = A + (size_t)row * lda;
            c[r] = C + (size_t)row * ldc;
        }
        switch (M - m) {
        case 1: ek_nn_rows(1, N, K, a, B, ldb, beta, c); break;
        case 2: ek_nn_rows(2, N, K, a, B, ldb, beta, c); break;
        case 3: ek_nn_rows(3, N, K, a, B, ldb, beta, c); break;
        default: ek_nn_rows(4, N, K, a, B, ldb, beta, c); break;
        }
    }
}

/* ---- many rows: packed input panels ----
 * Products of more than EK_FEW rows with weights, at the speed of OpenBLAS's best
 * sgemm kernels on the engine's shapes (docs/models.md, "Matrix-product kernels").
 *
 * The input rows are packed in panels of 32 rows as [K][32] (the threads pack, then split
 * the weight rows). A register tile is 12 weight rows x 32 input rows: 24 accumulators,
 * and each k costs 2 loads of the panel and 12 weight broadcasts for 24 multiply-adds.
 * Weights are read in place. Each output is one multiply-add chain over k in order, as in
 * the few-rows kernel, so a row's result does not depend on which rows share the call
 * nor on the thread split. */

#define EK_PW 32 /* input rows per panel (a last panel of <= 16 rows is 16 wide) */
#define EK_NR 12 /* weight rows per register tile */
/* The panels are packed a chunk at a time, kept in L2 while the weight tiles pass: about
 * this many floats (at least one panel). */
#define EK_CHUNK_FLOATS (1 << 17)

/* The calling thread's packing buffer (one chunk, plus each team thread's widened weight
 * tile for BF16/F16 weights): grown when a product needs more, kept for its next call,
 * freed when the thread ends. Per calling thread, so that products called from two
 * threads (two engine contexts, two models) run at once. */
static __thread float *ek_pack_buf;
static __thread size_t ek_pack_cap;
static pthread_key_t ek_pack_key;
static pthread_once_t ek_pack_once = PTHREAD_ONCE_INIT;

static void ek_pack_key_init(void)
{
    if (pthread_key_create(&ek_pack_key, free) != 0) abort();
}

/* The calling thread's buffer of at least need floats; NULL out of memory. */
static float *ek_pack_get(size_t need)
{
    if (need <= ek_pack_cap) return ek_pack_buf;
    pthread_once(&ek_pack_once, ek_pack_key_init);
    free(ek_pack_buf);
    ek_pack_buf = aligned_alloc(64, (need * sizeof(float) + 63) & ~(size_t)63);
    ek_pack_cap = ek_pack_buf ? need : 0;
    pthread_setspecific(ek_pack_key, ek_pack_buf);
    return ek_pack_buf;
}

ENG_CLONES
void eng_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd)
{
    int r = 0;
    for (; r + 16 <= rows; r += 16) {
        int c = 0;
        for (; c + 16 <= cols; c += 16) {
            ek_v16 x[16];
            for (int i = 0; i < 16; i++) x[i] = ek_load(src + (size_t)(r + i) * lds + c);
            /* the 16 rows are 16 streams: ask for each row's block 4 ahead */
            for (int i = 0; i < 16; i++) __builtin_prefetch(src + (size_t)(r + i) * lds + c + 64);
            ek_transpose16(x);
            for (int j = 0; j < 16; j++)
                memcpy(dst + (size_t)(c + j) * ldd + r, &x[j], sizeof x[j]);
        }
        for (; c < cols; c++)
            for (int i = 0; i < 16; i++)
                dst[(size_t)c * ldd + r + i] = src[(size_t)(r + i) * lds + c];
    }
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

/* Width of panel p of an M-row product: 32, or 16 for a last panel of <= 16 rows. */
static int ek_panel_width(int p, int M) { return M - p * EK_PW <= 16 ? 16 : EK_PW; }

/* Panels p0..p1-1 of A into the chunk at Ap (whose first panel is pc): panel p is rows
 * 32 p onwards as [K][width] (16 rows at a time transposed), rows past M 0. */
static void ek_pack_panels(int p0, int p1, int pc, int M, int K, const float *A, int lda, float *Ap)
{
    for (int p = p0; p < p1; p++) {
        int pw = ek_panel_width(p, M);
        float *d = Ap + (size_t)(p - pc) * K * EK_PW;
        for (int r0 = 0; r0 < pw; r0 += 16) {
            int m0 = p * EK_PW + r0, n = M - m0 < 16 ? M - m0 : 16;
            eng_transpose(n, K, A + (size_t)m0 * lda, lda, d + r0, pw);
            for (int k = 0; n < 16 && k < K; k++)
                memset(d + (size_t)k * pw + r0 + n, 0, (size_t)(16 - n) * sizeof(float));
        }
    }
}

/* Rows m0 .. m0 + rows - 1 (packed pw wide at ap; pw is 32 or 16 at every call) x weight
 * rows n0 .. n0 + nr - 1 (nr <= 12: the tile's rows past nr repeat the last, computed,
 * not stored). */
__attribute__((always_inline)) static inline void ek_many_tile(int pw, int K, const float *ap,
                                                               const float *W, int ldw, int n0,
                                                               int nr, int rows, const char *next,
                                                               size_t nld, int nes, float beta,
                                                               float *C, int ldc)
{
    /* next: the next tile's first weight row (nld bytes to the next row, nes bytes a
     * weight), fetched a line per row every 64 / nes k */
    int kmask = 64 / (nes ? nes : 4) - 1;
    const float *w[EK_NR];
    for (int i = 0; i < EK_NR; i++) w[i] = W + (size_t)(n0 + (i < nr ? i : nr - 1)) * ldw;
    ek_v16 s[2][16]; /* s[h][i]: weight row n0 + i times input rows 16 h .. 16 h + 15 */
    for (int i = 0; i < 16; i++) s[0][i] = s[1][i] = (ek_v16){ 0 };
    for (int k = 0; k < K; k++) {
        if (next && !(k & kmask))
#pragma GCC unroll 12
            for (int i = 0; i < EK_NR; i++)
                __builtin_prefetch(next + (size_t)i * nld + (size_t)k * nes, 0, 2);
        ek_v16 a0 = ek_load(ap + (size_t)k * pw);
        ek_v16 a1 = pw > 16 ? ek_load(ap + (size_t)k * pw + 16) : a0;
#pragma GCC unroll 12
        for (int i = 0; i < EK_NR; i++) {
            float x = w[i][k];
            s[0][i] += x * a0;
            if (pw > 16) s[1][i] += x * a1;
        }
    }
    /* s[h] transposed: s[h][j] lane i is input row 16 h + j times weight row n0 + i */
    for (int h = 0; h < pw / 16; h++) {
        ek_transpose16(s[h]);
        for (int j = 0; j < 16 && 16 * h + j < rows; j++) {
            float *c = C + (size_t)(16 * h + j) * ldc + n0;
            if (nr == EK_NR && beta == 0.0f) {
                memcpy(c, &s[h][j], EK_NR * sizeof(float));
            } else {
                for (int i = 0; i < nr; i++) ek_store(c + i, s[h][j][i], beta);
            }
        }
    }
}

/* Rows n0 .. n0 + nr - 1 of a BF16/F16 weight widened into wt16 [nr][K]. */
__attribute__((always_inline)) static inline void ek_widen_rows(int wt, const void *W, int ldw,
                                                                int n0, int nr, int K, float *out)
{
    int K16 = K & ~15;
    for (int i = 0; i < nr; i++) {
        const void *w = ek_wrow(W, wt, (size_t)n0 + i, ldw);
        float *o = out + (size_t)i * K;
        int k = 0;
        for (; k < K16; k += 16) {
            ek_v16 v = ek_wload(w, wt, k);
            memcpy(o + k, &v, sizeof v);
        }
        for (; k < K; k++) o[k] = ek_wget(w, wt, k);
    }
}

static int ek_f16c_cap = 4; /* eng_gemm_set_f16c */

int eng_gemm_set_f16c(int level)
{
    ek_f16c_cap = level < 0 ? 4 : level;
#ifdef EK_F16C
    return 0;
#else
    return -1;
#endif
}

#ifdef EK_F16C
/* The F16C level of this CPU: 4 (x86-64-v4: AVX-512), 3 (x86-64-v3: AVX2, F16C), 0;
 * at most ek_f16c_cap. */
static int ek_f16c_level(void)
{
    if (ek_f16c_cap >= 4 && __builtin_cpu_supports("x86-64-v4")) return 4;
    if (ek_f16c_cap >= 3 && __builtin_cpu_supports("x86-64-v3")) return 3;
    return 0;
}

EK_TGT_V4 static void ek_widen_f16_v4(const void *W, int ldw, int n0, int nr, int K, float *out)
{
    ek_widen_rows(EK_W_F16_V4, W, ldw, n0, nr, K, out);
}
EK_TGT_V3 static void ek_widen_f16_v3(const void *W, int ldw, int n0, int nr, int K, float *out)
{
    ek_widen_rows(EK_W_F16_V3, W, ldw, n0, nr, K, out);
}
#endif

ENG_CLONES
static void ek_widen_f16_int(const void *W, int ldw, int n0, int nr, int K, float *out)
{
    ek_widen_rows(ENG_W_F16, W, ldw, n0, nr, K, out);
}

/* F16 rows n0 .. n0 + nr - 1 widened into out [nr][K], by F16C where the CPU has it. */
static void ek_widen_f16(const void *W, int ldw, int n0, int nr, int K, float *out)
{
#ifdef EK_F16C
    switch (ek_f16c_level()) {
    case 4: ek_widen_f16_v4(W, ldw, n0, nr, K, out); return;
    case 3: ek_widen_f16_v3(W, ldw, n0, nr, K, out); return;
    default: break;
    }
#endif
    ek_widen_f16_int(W, ldw, n0, nr, K, out);
}

/* One thread's share of a chunk: weight tiles t0..t1-1 against the packed panels
 * p0..p1-1 at Ap. BF16/F16 weights: each tile is widened into wbuf [EK_NR][K] first (once
 * per tile and chunk, against up to a chunk of panels), then taken as F32 weights: the
 * same multiply-add chains on the same values. */
ENG_CLONES
static void ek_many_part(int t0, int t1, int p0, int p1, int M, int N, int K, const float *Ap,
                         int wt, const void *W, int ldw, float *wbuf, float beta, float *C, int ldc)
{
    for (int t = t0; t < t1; t++) {
        int n0 = t * EK_NR, nr = N - n0 < EK_NR ? N - n0 : EK_NR;
        const float *Wt = W;
        int ldt = ldw, nt0 = n0;
        if (wt != ENG_W_F32) {
            switch (wt) {
            case ENG_W_BF16: ek_widen_rows(ENG_W_BF16, W, ldw, n0, nr, K, wbuf); break;
            default: ek_widen_f16(W, ldw, n0, nr, K, wbuf); break;
            }
            Wt = wbuf, ldt = K, nt0 = 0;
        }
        for (int p = p0; p < p1; p++) {
            int m0 = p * EK_PW, rows = M - m0 < EK_PW ? M - m0 : EK_PW;
            /* the first panel of a tile fetches the next tile's weights (as they are in
             * W: F32, or the halves the next widening reads) into L2 */
            const char *next = p == p0 && n0 + 2 * EK_NR <= N
                                   ? (const char *)ek_wrow(W, wt, (size_t)n0 + EK_NR, ldw)
                                   : NULL;
            size_t nld = (size_t)ldw * ek_wsize(wt);
            int nes = (int)ek_wsize(wt);
            const float *ap = Ap + (size_t)(p - p0) * K * EK_PW;
            float *c = C + (size_t)m0 * ldc + n0 - nt0;
            if (ek_panel_width(p, M) == EK_PW)
                ek_many_tile(EK_PW, K, ap, Wt, ldt, nt0, nr, rows, next, nld, nes, beta, c, ldc);
            else ek_many_tile(16, K, ap, Wt, ldt, nt0, nr, rows, next, nld, nes, beta, c, ldc);
        }
    }
}

/* Row r of a weight of type wt (F32, BF16, F16) into out [K]. */
ENG_CLONES
static void ek_widen_rows_any(int wt, const void *W, int ldw, int r, int K, float *out)
{
    switch (wt) {
    case ENG_W_BF16: ek_widen_rows(ENG_W_BF16, W, ldw, r, 1, K, out); break;
    case ENG_W_F16: ek_widen_f16(W, ldw, r, 1, K, out); break;
    default: memcpy(out, ek_wrow(W, ENG_W_F32, (size_t)r, ldw), (size_t)K * sizeof *out); break;
    }
}

/* C[M,N] = A[M,K] W[N,K]^T (+ beta C), K >= 1, by packed panels: for each chunk of
 * panels, the threads pack it, then split the weight tiles over it. The chunk buffer is
 * the calling thread's (ek_pack_get). 0, or -1 when the buffer cannot grow. */
static int ek_many(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
                   float beta, float *C, int ldc)
{
    int np = (M + EK_PW - 1) / EK_PW, tiles = (N + EK_NR - 1) / EK_NR;
    int chunk = EK_CHUNK_FLOATS / K / EK_PW;
    if (chunk < 1) chunk = 1;
    int nt_max = 1;
#ifdef _OPENMP
    nt_max = omp_get_max_threads();
#endif
    /* sized for a full chunk whatever M, so the buffer grows once per K (at most); then a
     * widened weight tile per thread */
    size_t pack = (size_t)chunk * EK_PW * K;
    size_t need = pack + (wt != ENG_W_F32 ? (size_t)nt_max * EK_NR * K : 0);
    if (chunk > np) chunk = np;
    float *Ap = ek_pack_get(need);
    if (!Ap) return -1;
#ifdef _OPENMP
    if ((double)M * N * K >= EK_PAR_MIN) {
#pragma omp parallel num_threads(nt_max)
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int t0 = (int)((long)tiles * id / nt), t1 = (int)((long)tiles * (id + 1) / nt);
            float *wbuf = Ap + pack + (size_t)id * EK_NR * K;
            for (int p0 = 0; p0 < np; p0 += chunk) {
                int n = np - p0 < chunk ? np - p0 : chunk;
                ek_pack_panels(p0 + n * id / nt, p0 + n * (id + 1) / nt, p0, M, K, A, lda, Ap);
#pragma omp barrier
                ek_many_part(t0, t1, p0, p0 + n, M, N, K, Ap, wt, W, ldw, wbuf, beta, C, ldc);
#pragma omp barrier
            }
        }
        return 0;
    }
#endif
    for (int p0 = 0; p0 < np; p0 += chunk) {
        int p1 = np - p0 < chunk ? np : p0 + chunk;
        ek_pack_panels(p0, p1, p0, M, K, A, lda, Ap);
        ek_many_part(0, tiles, p0, p1, M, N, K, Ap, wt, W, ldw, Ap + pack, beta, C, ldc);
    }
    return 0;
}

/* ---- few rows against weights: the packed kernel's order, weights transposed in registers
 * Products of up to EK_FEW rows with weights (the decoder's steps at small batches). Each
 * output is the same single multiply-add chain over k in order as in the packed kernel,
 * so a row's result is bitwise the same whichever kernel takes its call. Broadcasting
 * every weight (the packed kernel's way) costs a load per weight for at most 16 rows; here
 * each block of 16 weight rows x 16 k is loaded as 16 vectors and transposed in registers
 * (64 shuffles), then every input row takes 16 multiply-adds of 16 weight rows at once.
 * Each tile fetches the next tile's weights into L2 as it goes. It is made for weights
 * streamed from memory, as a decode step's are (with the weights in L2 it is slower than
 * a kernel summing 16 lanes over K, whose order the packed kernel cannot follow;
 * docs/models.md, "Matrix-product kernels"). BF16/F16 weights are loaded as 16 halves
 * and widened before the transpose: half the bytes streamed per output. */

/* Up to this many rows (all in registers): this kernel; more: the packed one, which from
 * 16 rows streams the weights as fast as the kernel this replaced, and from 32 faster. */
#define EK_FEW 8

/* Rows 0..M-1 (M <= EK_FEW, a constant at every call) x weight rows n0 .. n0 + nr - 1
 * (nr <= 16: the rows past nr repeat the last, computed, not stored). */
__attribute__((always_inline)) static inline void ek_few_tile(int M, int K, const float *A, int lda,
                                                              int wt, const void *W, int ldw,
                                                              int n0, int nr, int pf, float beta,
                                                              float *C, int ldc)
{
    const void *w[16];
    for (int i = 0; i < 16; i++) w[i] = ek_wrow(W, wt, (size_t)(n0 + (i < nr ? i : nr - 1)), ldw);
    size_t ahead = (size_t)16 * ldw * ek_wsize(wt); /* bytes to the next tile's rows */
    ek_v16 s[EK_FEW]; /* s[m] lane i: input row m times weight row n0 + i */
#pragma GCC unroll 8
    for (int m = 0; m < EK_FEW; m++) s[m] = (ek_v16){ 0 };
    int K16 = K & ~15;
    for (int k0 = 0; k0 < K16; k0 += 16) {
        ek_v16 x[16];
        if (wt == ENG_W_BF16) {
            ek_bf16_block16(w, k0, x); /* x[j] lane i: w[i][k0 + j] */
        } else {
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) x[i] = ek_wload(w[i], wt, k0);
            ek_transpose16(x); /* x[j] lane i: w[i][k0 + j] */
        }
        /* a line holds 16 F32 weights, 32 halves: prefetch each line once */
        if (pf && (wt == ENG_W_F32 || !(k0 & 31)))
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                __builtin_prefetch((const char *)w[i] + ahead + k0 * ek_wsize(wt), 0, 2);
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) s[m] += A[(size_t)m * lda + k0 + j] * x[j];
    }
    for (int k = K16; k < K; k++) {
        ek_v16 x;
        for (int i = 0; i < 16; i++) x[i] = ek_wget(w[i], wt, k);
        for (int m = 0; m < M; m++) s[m] += A[(size_t)m * lda + k] * x;
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        float *c = C + (size_t)m * ldc + n0;
        if (nr == 16 && beta == 0.0f) memcpy(c, &s[m], sizeof s[m]);
        else
            for (int i = 0; i < nr; i++) ek_store(c + i, s[m][i], beta);
    }
}

/* Tiles t0..t1-1 (16 weight rows each, the last one partial) of C[M,N] = A[M,K] W[N,K]^T
 * (+ beta C), M <= EK_FEW: one thread's share. */
/* Tiles of one weight type wt (a constant where it is inlined). */
__attribute__((always_inline)) static inline void ek_few_tiles(int wt, int t0, int t1, int M, int N,
                                                               int K, const float *A, int lda,
                                                               const void *W, int ldw, float beta,
                                                               float *C, int ldc)
{
    for (int t = t0; t < t1; t++) {
        int n0 = 16 * t, nr = N - n0 < 16 ? N - n0 : 16, pf = n0 + 32 <= N;
        switch (M) {
        case 1: ek_few_tile(1, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        case 2: ek_few_tile(2, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        case 3: ek_few_tile(3, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        case 4: ek_few_tile(4, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        case 5: ek_few_tile(5, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        case 6: ek_few_tile(6, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        case 7: ek_few_tile(7, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        default: ek_few_tile(8, K, A, lda, wt, W, ldw, n0, nr, pf, beta, C, ldc); break;
        }
    }
}

ENG_CLONES
static void ek_few_part(int t0, int t1, int M, int N, int K, const float *A, int lda, int wt,
                        const void *W, int ldw, float beta, float *C, int ldc)
{
    switch (wt) {
    case ENG_W_BF16: ek_few_tiles(ENG_W_BF16, t0, t1, M, N, K, A, lda, W, ldw, beta, C, ldc); break;
    case ENG_W_F16: ek_few_tiles(ENG_W_F16, t0, t1, M, N, K, A, lda, W, ldw, beta, C, ldc); break;
    default: ek_few_tiles(ENG_W_F32, t0, t1, M, N, K, A, lda, W, ldw, beta, C, ldc); break;
    }
}

#ifdef EK_F16C
EK_TGT_V4 static void ek_few_part_f16_v4(int t0, int t1, int M, int N, int K, const float *A,
                                         int lda, int wt, const void *W, int ldw, float beta,
                                         float *C, int ldc)
{
    (void)wt;
    ek_few_tiles(EK_W_F16_V4, t0, t1, M, N, K, A, lda, W, ldw, beta, C, ldc);
}
EK_TGT_V3 static void ek_few_part_f16_v3(int t0, int t1, int M, int N, int K, const float *A,
                                         int lda, int wt, const void *W, int ldw, float beta,
                                         float *C, int ldc)
{
    (void)wt;
    ek_few_tiles(EK_W_F16_V3, t0, t1, M, N, K, A, lda, W, ldw, beta, C, ldc);
}
#endif

static void ek_few(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
                   float beta, float *C, int ldc)
{
    int tiles = (N + 15) / 16;
    void (*part)(int, int, int, int, int, const float *, int, int, const void *, int, float,
                 float *, int) = ek_few_part;
#ifdef EK_F16C
    if (wt == ENG_W_F16) {
        int level = ek_f16c_level();
        if (level == 4) part = ek_few_part_f16_v4;
        else if (level == 3) part = ek_few_part_f16_v3;
    }
#endif
#ifdef _OPENMP
    if ((double)M * N * K >= EK_PAR_MIN) {
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int t0 = (int)((long)tiles * id / nt), t1 = (int)((long)tiles * (id + 1) / nt);
            part(t0, t1, M, N, K, A, lda, wt, W, ldw, beta, C, ldc);
        }
        return;
    }
#endif
    part(0, tiles, M, N, K, A, lda, wt, W, ldw, beta, C, ldc);
}

const char *eng_kernels(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    /* What the target_clones resolvers pick (ENG_CLONES): x86-64-v4, v3, or default. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "AVX-512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "AVX2+FMA";
    return "baseline";
#else
    return "portable (a build without CPU clones)";
#endif
}

int eng_set_threads(int n)
{
    /* OpenBLAS's OpenMP build sizes each call by the calling thread's OpenMP setting
     * (and its own rounding depends on that size), and openblas_set_num_threads sets it
     * for the calling thread: so every thread that runs the engine computes with the same
     * thread count, and so does the few-rows kernel's OpenMP team. */
    if (n <= 0) n = cm_cpu_count(); /* the quota and affinity, not the host's cores */
    if (n <= 0) n = 1;
    pthread_mutex_lock(&ek_blas_lock);
    openblas_set_num_threads(n);
    pthread_mutex_unlock(&ek_blas_lock);
    return n;
}

/* C = beta C: the product of an empty K. */
static void ek_scale(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

void eng_gemm_serial(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     int trans_b, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) ek_scale(M, N, beta, C, ldc);
    else if (trans_b) ek_rows_nt_part(0, N / 4, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else ek_rows_nn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* The products with weights of type wt (F32, BF16, F16), trans_b. */
static void ek_gemm_w(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
                      float beta, float *C, int ldc)
{
    if (M > EK_FEW && ek_many(M, N, K, A, lda, wt, W, ldw, beta, C, ldc) == 0) return;
    /* few rows; or many when the packing buffer cannot grow: EK_FEW rows at a time, each
     * output computed as the packed kernel computes it */
    for (int m = 0; m < M; m += EK_FEW)
        ek_few(M - m < EK_FEW ? M - m : EK_FEW, N, K, A + (size_t)m * lda, lda, wt, W, ldw, beta,
               C + (size_t)m * ldc, ldc);
}

void eng_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b,
              float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        ek_scale(M, N, beta, C, ldc);
        return;
    }
    if (!trans_b) {
        ek_rows_nn(M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    ek_gemm_w(M, N, K, A, lda, ENG_W_F32, B, ldb, beta, C, ldc);
}

void eng_gemm_w(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
                float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        ek_scale(M, N, beta, C, ldc);
        return;
    }
    ek_gemm_w(M, N, K, A, lda, wt, W, ldw, beta, C, ldc);
}

void eng_linear(const float *x, int rows, int K, const float *W, int N, float *y)
{
    eng_gemm(rows, N, K, x, K, W, K, 1, 0.0f, y, N);
}

int eng_gemm_many(int M, int N, int K, const float *A, int lda, const float *W, int ldw, float beta,
                  float *C, int ldc)
{
    return eng_gemm_many_w(M, N, K, A, lda, ENG_W_F32, W, ldw, beta, C, ldc);
}

int eng_gemm_many_w(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
                    float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) {
        ek_scale(M, N, beta, C, ldc);
        return 0;
    }
    return ek_many(M, N, K, A, lda, wt, W, ldw, beta, C, ldc);
}

void eng_wrow(int wt, const void *W, int ldw, int r, int K, float *out)
{
    ek_widen_rows_any(wt, W, ldw, r, K, out);
}
