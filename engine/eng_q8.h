/* int8 weights and their matrix product (issue 16): C = A W^T with W quantized once
 * (at load, or read back from a file) and A quantized per row on the fly.
 *
 * Quantization, symmetric, per row:
 *   weights      sw[n] = max_k |W[n,k]| / 127, q = round-half-even(W[n,k] / sw[n])
 *                (a row of zeros, or one whose max|w| is below 1e-30, gets scale 1 and
 *                q = 0: scales in a blob are always finite and positive)
 *   activations  sa[m] = max_k |A[m,k]| / 127, q = round-half-even(A[m,k] * (127 / max))
 *                (a row whose max|a| is below 1e-30 quantizes to zeros; a row holding
 *                Inf or NaN gives NaN outputs, as the float product would)
 *   C[m,n] = (float)isum(m, n) * (sa[m] * sw[n]) (+ beta C[m,n])
 * isum, the sum over k of the two int8 values, is exact (int32: K <= ENG_Q8_MAX_K), so
 * every kernel (AVX-512 VNNI, AVX-VNNI, AVX2, portable C) gives bitwise the same
 * outputs, and a row's outputs do not depend on the other rows nor the thread count.
 *
 * Error: with both operands rounded to within half a step, |C - A W^T| for one output is
 * at most (sa/2) sum|w| + (sw/2) sum|a| + K sa sw / 4 (sums over k), i.e. below
 * K max|a| max|w| (1/127 + 1/64516) for the worst row pair; for typical rows it is
 * ~sqrt(K) times smaller.
 *
 * The packed blob (eng_q8_weight_bytes bytes) is self-contained and position
 * independent (offsets from its start, little-endian), so it can be written to a file and
 * mmapped: a 128-byte header (magic "NLPDQ8W\0", layout version, N, K), the per-row scales
 * float[Np], the row sums int32[Np] (the VNNI kernels take activations as unsigned
 * q + 128 and subtract 128 * rowsum), then the values: tiles of 16 weight rows, each
 * [Kp/4][16][4] (4 consecutive k of each of the 16 rows in turn, the operand of one
 * vpdpbusd), Np = N rounded up to 16 (rows past N are zero, scale 0), Kp = K rounded up
 * to 4 (zeros). The values start 64-byte aligned from the blob's start.
 *
 * Threads: the product splits the weight tiles over the engine's OpenMP threads (small
 * products run on one); scratch for the quantized activations is the calling thread's
 * own, grown once and kept, so a warm call allocates nothing. Any number of threads may
 * call it at once. */
#ifndef NLPD_ENG_Q8_H
#define NLPD_ENG_Q8_H

#include <stddef.h>

/* Source types of eng_q8_weight_pack: the values of eng_wtype (engine/eng_int.h). */
#define ENG_Q8_SRC_F32 0
#define ENG_Q8_SRC_BF16 1
#define ENG_Q8_SRC_F16 2

/* The largest K: every int32 sum of K products of two values in [-127, 127] is exact. */
#define ENG_Q8_MAX_K 131072

/* Bytes of a packed int8 weight [N, K]; 0 when N < 1, K < 1 or K > ENG_Q8_MAX_K. */
size_t eng_q8_weight_bytes(int N, int K);

/* Quantizes src [N, K] (row stride lds elements, of src_type: ENG_W_F32, ENG_W_BF16,
 * ENG_W_F16) into dst (eng_q8_weight_bytes(N, K) bytes, any alignment; 64 is best).
 * 0, or <0 on bad arguments or a weight that is Inf or NaN (dst is then undefined). */
int eng_q8_weight_pack(const void *src, int src_type, int N, int K, int lds, void *dst);

/* Validates a blob read from a file: its header (magic, version, N, K, offsets), its
 * length, finite positive scales (zero past N), values in [-127, 127] (zero padding) and
 * row sums equal to the values' sums. 0 ok, <0 corrupt or not of this N, K. Reads the
 * whole blob (about 1 ms per 10 MB). */
int eng_q8_weight_check(const void *packed, size_t bytes, int N, int K);

/* What a negative return of eng_q8_weight_check (or of the other calls) means, for an
 * error message: "bad arguments", "header (magic, version, shape or offsets) does not
 * match", "length does not match", ... A static string; "ok" for 0. */
const char *eng_q8_strerror(int rc);

/* C[M, N] = dequant(q8(A) . Wq^T) (+ beta C): A [M, K] row stride lda, C row stride ldc,
 * packed from eng_q8_weight_pack of the same N, K (its header is checked: a mismatch
 * is an error, not a crash). beta 0 does not read C. 0, or <0 on bad arguments or when
 * the scratch cannot grow. */
int eng_gemm_q8(int M, int N, int K, const float *A, int lda, const void *packed, float beta,
                float *C, int ldc);

/* The products of up to ENG_Q8_MAX_SHARED weights with one input (attention's q, k, v; a
 * gated feed-forward's two halves; the decoder layers' cross K and V): C[i][M, N[i]] =
 * dequant(q8(A) . Wq_i^T), beta 0, row strides ldc[i]. A is quantized once and every
 * weight's tiles are shared between the threads in one parallel region: bitwise the n
 * calls of eng_gemm_q8. 0, or <0 as eng_gemm_q8 (nothing is written then). */
#define ENG_Q8_MAX_SHARED 16
int eng_gemm_q8_n(int M, int K, const float *A, int lda, int n, const void *const packed[],
                  const int N[], float *const C[], const int ldc[]);

/* An operand made at run time (an int8 model's attention keys and values, engine/tf.c):
 * src [N, K] F32 (row stride lds) quantized per row as activations are (scale max|a| /
 * 127, q = round-half-even(a * 127 / max|a|); a row of zeros gets scale 0, a row holding
 * Inf or NaN a NaN scale, so its outputs are NaN as the float product's would be) into a
 * blob of eng_q8_weight_bytes(N, K) bytes in eng_q8_weight_pack's layout. Vectorised: a
 * head of 512 x 64 values takes microseconds. 0, or -1 on bad arguments. */
int eng_q8_pack_rows(const float *src, int N, int K, int lds, void *dst);

/* eng_gemm_q8 (beta 0) on the calling thread only (inside a parallel region), plus row
 * m's bias + m * bstep [N] added to its outputs when bias is not NULL. */
int eng_gemm_q8_serial(int M, int N, int K, const float *A, int lda, const void *packed,
                       const float *bias, long bstep, float *C, int ldc);

/* out[K] = row `row` dequantized: q[row, k] * sw[row] (embedding gather, tied lm_head).
 * A row out of range writes nothing. */
void eng_q8_weight_row(const void *packed, int N, int K, int row, float *out);

/* ---- kernel choice (tests and benchmarks) ----
 * The kernel is the best the CPU has: "avx512vnni", "avxvnni", "avx2", else "c". The
 * environment variable NLPD_Q8_KERNEL, read at the first product, or eng_q8_set_kernel
 * forces one of these names (process-wide; not while products run). */
const char *eng_q8_kernel(void);
/* 0, or <0 when the name is unknown or the CPU lacks the instructions. NULL: the best. */
int eng_q8_set_kernel(const char *name);

#endif
