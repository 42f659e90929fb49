/* Engine internals shared by model.c, kernels.c, t5.c and decode.c. Not a public API.
 *
 * Conventions: every activation buffer is row-major float, one row per token; HF Linear
 * weights are [out, in] and are used as such (y = x W^T). */
#ifndef NLP_ENG_INT_H
#define NLP_ENG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/st.h"

/* ---- gemm.c: the one door for matrix products ---- */

/* C[M,N] = A[M,K] * op(B) (+ beta * C).
 *   trans_b = 1: B is [N, K] (an HF Linear weight, or keys): C = A B^T
 *   trans_b = 0: B is [K, N] (values): C = A B
 * Each output is one multiply-add chain over k in order (then beta), whatever M and the
 * thread count: a row's result is bitwise the same alone or beside any other rows. With
 * trans_b, up to 8 rows take the few-rows kernel, more the packed one; trans_b = 0 runs
 * on the calling thread. */
void eng_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
              int trans_b, float beta, float *C, int ldc);
/* y[rows, N] = x[rows, K] W^T for a Linear weight W [N, K], all dense. */
void eng_linear(const float *x, int rows, int K, const float *W, int N, float *y);
/* Matrix-product threads (n <= 0: all cores): OpenBLAS's count, and the calling thread's
 * OpenMP team size. Called at model load (which keeps the count returned) and by each
 * public entry point with the model's count, since OpenMP keeps the setting per thread.
 * Returns the count set (>= 1). */
int eng_set_threads(int n);
/* C[M,N] = A[M,K] W[N,K]^T (+ beta C) by the packed many-rows kernel whatever M (eng_gemm's
 * choice past 8 rows): for tests. 0, or -1 out of memory. */
int eng_gemm_many(int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                  float beta, float *C, int ldc);
/* dst[c][r] = src[r][c] for a rows x cols block (row strides lds, ldd), in 16 x 16 blocks
 * transposed in registers; on the calling thread. */
void eng_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd);
/* The same product computed on the calling thread alone, for work items that the threads
 * already share (attention heads): with trans_b by the 16-lanes-over-K kernel (each
 * output: 16 chains over k, summed pairwise, then the tail of K), a different order from
 * eng_gemm's; each sequence's attention always takes the same kernel. */
void eng_gemm_serial(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     int trans_b, float beta, float *C, int ldc);

/* ---- kernels compiled for several CPUs ----
 * Compiled for AVX-512, for AVX2 + FMA and for the baseline; the loader picks the clone
 * the CPU runs. Clang (the sanitizer and fuzzing builds) compiles one generic version: it
 * rejects 64-byte vectors between inlined functions in the AVX2 clone. An OpenMP parallel
 * region stays outside a cloned function, so that each thread runs the clone the CPU
 * supports. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ENG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ENG_CLONES
#endif

/* ---- threads for elementwise work ----
 * A loop whose iterations are independent and each computed the same way whichever
 * thread runs it, split between the engine's threads when cond says it is big enough to
 * pay for waking them: results are bitwise those of the serial loop. Without OpenMP (the
 * clang sanitizer build) the loop runs serially. */
#define ENG_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#define ENG_PARALLEL_FOR(cond) ENG_PRAGMA(omp parallel for schedule(static) if (cond))
/* The same with at most nt threads, for loops that index per-thread scratch by
 * eng_thread_id(), and with iterations handed out one by one (uneven costs). */
#define ENG_PARALLEL_FOR_NT(cond, nt) \
    ENG_PRAGMA(omp parallel for schedule(dynamic) num_threads(nt) if (cond))
#else
#define ENG_PARALLEL_FOR(cond)
#define ENG_PARALLEL_FOR_NT(cond, nt)
#endif
/* Floats of elementwise work below which a loop stays on one thread (a wake-up of the
 * team costs a few microseconds: about this many floats of work). */
#define ENG_PAR_FLOATS (1 << 15)
/* The index of the calling thread in its team (0 outside a parallel loop). */
#ifdef _OPENMP
#include <omp.h>
#define eng_thread_id() omp_get_thread_num()
#else
#define eng_thread_id() 0
#endif

/* ---- kernels.c: the elementwise kernels ---- */
/* out[rows, d] = w * x / sqrt(mean(x^2) + eps); out may alias x. */
void eng_rmsnorm(const float *x, const float *w, int rows, int d, float eps, float *out);
/* In place over n values; fp32 with max subtraction. -INFINITY entries become 0. */
void eng_softmax(float *x, int n);
/* x[i] = gelu_new(x[i]), times y[i] when y is not NULL (the gated feed-forward), over n
 * values. */
void eng_gelu_new(float *x, const float *y, size_t n);
void eng_relu(float *x, size_t n);
/* x[i] += y[i] over n values. */
void eng_add(float *x, const float *y, size_t n);
/* Natural-log normaliser of a logit row, accumulated in double: log(sum(exp(x))). */
double eng_logsumexp(const float *x, int n);
/* F16 / BF16 -> F32. */
float eng_f16_to_f32(uint16_t h);
float eng_bf16_to_f32(uint16_t h);

/* ---- model.c ---- */

typedef struct eng_attn_w {
    const float *q, *k, *v;    /* [inner, d_model] */
    const float *o;            /* [d_model, inner] */
} eng_attn_w;

typedef struct eng_layer_w {
    const float *ln_self;      /* [d_model] */
    eng_attn_w self;
    const float *ln_cross;     /* decoder only */
    eng_attn_w cross;          /* decoder only */
    const float *ln_ff;        /* [d_model] */
    const float *wi;           /* relu: [d_ff, d_model] */
    const float *wi0, *wi1;    /* gated: [d_ff, d_model] each */
    const float *wo;           /* [d_model, d_ff] */
} eng_layer_w;

struct eng_model {
    eng_config cfg;
    int inner;                 /* num_heads * d_kv */
    st_set *st;                /* owns the mmaps that F32 weights point into */
    const float *shared;       /* [vocab, d_model] */
    const float *lm_head;      /* [vocab, d_model]; == shared when tied */
    const float *enc_rel;      /* [num_buckets, num_heads] */
    const float *dec_rel;      /* [num_buckets, num_heads] */
    const float *enc_final_ln; /* [d_model] */
    const float *dec_final_ln; /* [d_model] */
    eng_layer_w *enc;          /* [num_layers] */
    eng_layer_w *dec;          /* [num_decoder_layers] */
    float **owned;             /* F32 copies of F16/BF16 (or misaligned) tensors */
    int n_owned;
    size_t owned_bytes;        /* memory cost of the conversion */
    int n_threads;
};

/* Label scoring runs lm_head over this many rows per call at least: every sgemm call
 * repacks the whole [vocab, d_model] weight, so small chunks pay that again and again. */
#define ENG_SCORE_CHUNK 128

/* ---- decode.c ---- */
size_t eng_greq_size(void);

/* ---- t5.c: the forward pass ---- */

/* One self-attention K/V cache block: one decoder row's keys and values for every
 * decoder layer, contiguous per layer: [n_dec_layers][2 (k, v)][max_pos][inner]. */

/* One thread's scratch for the logits processing of a decode row (decode.c). */
typedef struct eng_rowbuf {
    double *lp;                /* [vocab] a row's log-probs (beam); a saved row (sampling) */
    float *sort_val;           /* [vocab] */
    int *sort_idx;             /* [vocab] */
    int32_t *ban;              /* [max_pos + 2] tokens a processor forbids next */
} eng_rowbuf;

struct eng_ctx {
    const eng_model *m;
    eng_ctx_params p;
    int max_pos;               /* decoder positions per row: max_new_tokens + 1 */
    int max_tok;               /* rows of the packed workspaces */
    int max_len;               /* longest sequence any attention sees */

    /* packed workspaces, [max_tok, *] */
    float *x;                  /* [max_tok, d_model] residual stream */
    float *h;                  /* [max_tok, d_model] normed / projections out */
    float *q, *k, *v;          /* [max_tok, inner] */
    float *att;                /* [max_tok, inner] attention output, heads side by side */
    float *ff0, *ff1;          /* [max_tok, d_ff] */
    float *scores;             /* [n_threads][max_len, max_len]: a head each; or [max_rows, max_len] */
    float *keys_t;             /* [n_threads][d_kv, keys_ld]: a head's keys transposed */
    int keys_ld;               /* max_len rounded up to 16, plus 16 (no power-of-two stride) */
    float *enc_out;            /* [max_batch_tokens, d_model] */
    float *cross_k, *cross_v;  /* [n_dec_layers][max_batch_tokens][inner] */
    float *enc_bias;           /* [num_heads][2 * max_len - 1]: bias at rel pos r is [r + max_len - 1] */
    float *dec_bias;           /* [num_heads][max_len]: bias at rel pos -r (r >= 0) is [r] */
    float *kv;                 /* [max_rows] cache blocks, see above */
    size_t kv_block;           /* floats per block */
    int logit_rows;            /* max(max_rows, ENG_SCORE_CHUNK) */
    float *logits;             /* [logit_rows, vocab] */

    /* decoding state (decode.c), all [max_rows ...] */
    int32_t *hist, *hist2;     /* [max_rows][max_pos + 1] token history incl. start */
    int *row_block, *row_block2;/* cache block of each row slot */
    int *act;                  /* [max_rows] active slots this step */
    int *act_req;              /* [max_rows] the request of each active row */
    int *act_pos;              /* [max_rows] the decode position of each active row */
    int *slot_used;            /* [2 * max_rows] scratch: slots held; token ranges held */
    int *parent;              /* [max_rows] beam search: parent beam of each new beam */
    int32_t *act_tok;          /* [max_rows] input token of each active row */
    int *block_used;           /* [max_rows] */
    double *row_score, *row_score2;   /* [max_rows] cumulative log-prob */
    int *row_done;             /* [max_rows] */
    int *row_len;              /* [max_rows] generated tokens */
    uint64_t *row_rng;         /* [max_rows] sampling PRNG state */
    int32_t *fin_tok;          /* [max_rows][max_new_tokens] finished beam hypotheses */
    int *fin_len;              /* [max_rows] */
    double *fin_score, *fin_sum; /* [max_rows] */
    double *cand_score;        /* [max_rows * 2 * max_rows] beam candidates */
    int *cand_tok, *cand_beam; /* idem */
    float *sort_val;           /* [n_threads][vocab] */
    int *sort_idx;             /* [n_threads][vocab] */
    double *lp_row;            /* [n_threads][vocab] */
    eng_rowbuf *rb;            /* [n_threads]: each thread's slices of the three above and of ban */
    int *act_blk;              /* [max_rows] cache block of each active row */
    int *enc_off, *enc_len;    /* [max_rows + 1] encoder slice of each active row */
    int *tok_off;              /* [max_rows + 1] packed encoder offsets per request */
    int32_t *enc_ids;          /* [max_batch_tokens] packed encoder input */
    /* label scoring (decode.c): a candidate of n tokens is n + 1 scored positions (its
     * tokens, then EOS), each read off one node of its request's prefix tree; a node is
     * one teacher-forced decoder row, shared by the candidates whose inputs agree so far */
    int max_cand_total;        /* candidates of one scoring run (see eng_ctx_new) */
    int *cand_off;             /* [max_cand_total + 1] each candidate's first position */
    int *cand_order;           /* [max_cand_total] a request's candidates, sorted by tokens */
    double *cand_lp;           /* [max_cand_total] log-likelihood of each candidate */
    int32_t *cand_tgt;         /* [max_cand_total * max_cand_len] each position's target */
    int *cand_node;            /* idem: the node (decoder row) that predicts it */
    double *cand_pos_lp;       /* idem: its log-prob */
    int *tree_off;             /* [max_cand_total + 1] each tree's first node */
    int *tree_eoff, *tree_elen;/* [max_cand_total] encoder slice each tree attends to */
    int32_t *node_tok;         /* [max_cand_total * max_cand_len] each node's decoder input */
    int *node_dep, *node_end;  /* idem: its decoder position; its subtree's end in its tree */
    double *node_lse;          /* idem: logsumexp of its logits */
    struct eng_greq *greq;     /* [max_rows] per-request state of a running group */
    int32_t *ban;              /* [n_threads][max_pos + 2] */
};

/* Encodes n sequences packed back to back (tok_off[i] .. tok_off[i+1]) into ctx->enc_out,
 * and (if cross_at >= 0) projects each decoder layer's cross-attention K/V from it into
 * the packed cross K/V from token cross_at on. */
void t5_encode(eng_ctx *c, const int32_t *ids, const int *tok_off, int n, int cross_at);
/* One decoder step for n rows: row i has input token tok[i] at position pos[i], its
 * self-attention cache in block blk[i], and attends to encoder tokens
 * [enc_off[i], enc_off[i] + enc_len[i]) of the packed cross K/V. Writes the final hidden
 * states to c->h [n, d_model] (already scaled for tied models). */
void t5_decode_step(eng_ctx *c, const int32_t *tok, const int *blk, const int *enc_off,
                    const int *enc_len, int n, const int *pos);
/* Teacher-forced decoder over n sequences packed back to back (off[i] .. off[i+1]),
 * sequence i attending causally to itself and to the packed encoder tokens
 * [enc_off[i], enc_off[i] + enc_len[i]). With dep and end (else NULL), each sequence is
 * a prefix tree of decoder inputs in preorder: row t is at decoder position dep[t], its
 * subtree is rows t .. (its sequence's first row + end[t] - 1), and it attends to itself
 * and its ancestors only; every root-to-node path computes what it would alone.
 * Final hidden states go to c->h [off[n], d_model] (scaled for tied models). */
void t5_decode_full(eng_ctx *c, const int32_t *tok, const int *off, int n,
                    const int *enc_off, const int *enc_len, const int *dep, const int *end);
/* logits[rows, vocab] from hidden[rows, d_model]. */
void t5_lm_head(eng_ctx *c, const float *hidden, int rows, float *logits);
float *t5_kv_block(eng_ctx *c, int blk, int layer, int which);

#endif
