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
void eng_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b,
              float beta, float *C, int ldc);
/* y[rows, N] = x[rows, K] W^T for a Linear weight W [N, K], all dense. */
void eng_linear(const float *x, int rows, int K, const float *W, int N, float *y);
/* The same with weights W [N, K] (row stride ldw, in weights) of type wt: ENG_W_F32, or
 * BF16 / F16 read as they are and widened inside the kernels (exactly: the result is
 * bitwise that of W widened to F32, whatever M and the thread count). Not ENG_W_I8 (the
 * int8 blobs take eng_gemm_q8). */
void eng_gemm_w(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
                float beta, float *C, int ldc);
/* out[K] = row r of W (type wt as above) widened to F32. */
void eng_wrow(int wt, const void *W, int ldw, int r, int K, float *out);
/* Matrix-product threads (n <= 0: all cores): OpenBLAS's count, and the calling thread's
 * OpenMP team size. Called at model load (which keeps the count returned) and by each
 * public entry point with the model's count, since OpenMP keeps the setting per thread.
 * Returns the count set (>= 1). */
int eng_set_threads(int n);
/* The thread count of the next step of an engine call on c (engine/threads.c): the
 * model's n_threads, or with threads_auto the CPUs free over the last fraction of a
 * second shared between the contexts computing, at most n_threads. Sets it for the
 * calling thread (eng_set_threads) and keeps it in c->nt. Call it at every entry point
 * and decode step. */
int eng_threads_step(eng_ctx *c);
/* Takes the first reading (a model with threads_auto is loaded), so that the first
 * engine call judges the CPUs free since then. */
void eng_threads_prime(void);
/* The count for free_cpus CPUs free (cm_cpu_free; < 0: unknown, then max) shared by
 * `users` contexts, 1..max: threads_step's arithmetic, for tests. */
int eng_threads_pick(double free_cpus, int users, int max);
/* For tests: the F16 kernels use F16C at most at `level` (4: the AVX-512 kernels, 3: the
 * AVX2 ones, 0: the integer widening); -1 restores the CPU's best. Not thread-safe
 * against running products. 0, or -1 when the build has no F16C kernels (then every
 * level is the integer widening). */
int eng_gemm_set_f16c(int level);
/* C[M,N] = A[M,K] W[N,K]^T (+ beta C) by the packed many-rows kernel whatever M (eng_gemm's
 * choice past 8 rows): for tests. 0, or -1 out of memory. */
int eng_gemm_many(int M, int N, int K, const float *A, int lda, const float *W, int ldw, float beta,
                  float *C, int ldc);
/* eng_gemm_many with weights of type wt (F32, BF16, F16). */
int eng_gemm_many_w(int M, int N, int K, const float *A, int lda, int wt, const void *W, int ldw,
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
/* x[rows, d] += h, then out = eng_rmsnorm(x) (bitwise the two calls); out may be h. */
void eng_add_rmsnorm(float *x, const float *h, const float *w, int rows, int d, float eps,
                     float *out);
/* In place over n values; fp32 with max subtraction. -INFINITY entries become 0. */
void eng_softmax(float *x, int n);
/* x[i] = gelu_new(x[i]), times y[i] when y is not NULL (the gated feed-forward), over n
 * values. */
void eng_gelu_new(float *x, const float *y, size_t n);
void eng_relu(float *x, size_t n);
/* x[i] += y[i] over n values. */
void eng_add(float *x, const float *y, size_t n);
/* Attention of one head, on the calling thread: S[Lq, Lk] (row stride lds) = Q[Lq, dk]
 * (row stride ldq) KT[dk, Lk] (the keys transposed, row stride ldk), plus row i's bias
 * bias + i * bstep ([Lk], when bias is not NULL) added to the sums. Each sum is the chain
 * eng_gemm_serial computes (bitwise the same), the bias added after it. */
void eng_attn_scores(int Lq, int Lk, int dk, const float *q, int ldq, const float *kt, int ldk,
                     const float *bias, long bstep, float *s, int lds);
/* O[Lq, dk] (row stride ldo) = P[Lq, Lk] (ldp) V[Lk, dk] (ldv), bitwise as eng_gemm_serial
 * (trans_b 0, beta 0). */
void eng_attn_pv(int Lq, int Lk, int dk, const float *p, int ldp, const float *v, int ldv, float *o,
                 int ldo);
/* Natural-log normaliser of a logit row, accumulated in double: log(sum(exp(x))). */
double eng_logsumexp(const float *x, int n);
/* F16 / BF16 -> F32. */
float eng_f16_to_f32(uint16_t h);
float eng_bf16_to_f32(uint16_t h);

/* ---- blocks.c: the building blocks the architectures are parameterised by ---- */

struct eng_norm_w;
struct eng_lin;
/* out[rows, d] = the architecture's norm of x with weights n (RMS: eng_rmsnorm; LayerNorm
 * with its bias); out may alias x. */
void eng_norm(const eng_arch_config *a, const struct eng_norm_w *n, const float *x, int rows, int d,
              float *out);
/* x[i] = act(x[i]), times y[i] when y is not NULL (a gated feed-forward), over n values. */
void eng_activate(eng_act act, float *x, const float *y, size_t n);
/* out[rows, d] = LayerNorm(x) * w + b (b may be NULL); out may alias x. */
void eng_layernorm(const float *x, const float *w, const float *b, int rows, int d, float eps,
                   float *out);
/* y[rows, l->out] = x[rows, l->in] W^T + b: the one door for Linear layers (every weight
 * type: eng_gemm_w, or eng_gemm_q8 for int8). */
void eng_lin_apply(const struct eng_lin *l, const float *x, int rows, float *y);
/* ys[i] = eng_lin_apply(ls[i], x) for n Linear layers of one input (q, k, v; a gated
 * feed-forward's halves), bitwise; int8 weights of the same input size take one product
 * (eng_gemm_q8_n: the input quantized once, one parallel region). */
void eng_lin_apply_n(const struct eng_lin *const ls[], int n, const float *x, int rows,
                     float *const ys[]);
/* out[l->in] = row r of l's weight widened or dequantized to F32 (the embedding gather). */
void eng_lin_row(const struct eng_lin *l, int r, float *out);
/* x[rows, d] *= s. */
void eng_scale(float *x, size_t n, float s);
/* Sinusoidal position tables, [rows, d]: row p is [sin(p f_i) | cos(p f_i)], i < d / 2,
 * f_i = exp(-ln(10000) i / (d / 2 - shift)): shift 0 is Marian's 10000^(-2i/d), shift 1
 * is fairseq's (M2M100, NLLB). */
void eng_sinusoids(float *out, int rows, int d, int shift);

/* ---- model.c: weights ---- */

/* A Linear layer y = x W^T + b. W is [out, in] as HF stores it; b may be NULL. The
 * weight's type travels with it to the matrix-product door: the compact types are a
 * kernel choice there, not a widening here. The token embeddings are one too (a row
 * gathered by eng_lin_row), and so a tied lm_head is the same eng_lin. */
typedef enum eng_wtype {
    ENG_W_F32 = 0,
    ENG_W_BF16 = 1, /* in place from the mmap, widened in the kernels */
    ENG_W_F16 = 2,
    ENG_W_I8 = 3, /* a packed int8 blob (engine/eng_q8.h) */
} eng_wtype;

typedef struct eng_lin {
    eng_wtype type;
    const void *w;  /* [out, in] of type */
    const float *b; /* [out] or NULL */
    int out, in;
} eng_lin;

typedef struct eng_norm_w {
    const float *w; /* [d_model] */
    const float *b; /* [d_model]: LayerNorm; NULL for RMS */
} eng_norm_w;

typedef struct eng_attn_w {
    eng_lin q, k, v; /* [inner, d_model] */
    eng_lin o;       /* [d_model, inner] */
} eng_attn_w;

typedef struct eng_layer_w {
    eng_norm_w ln_self; /* before self-attention (pre-norm) or after it (post) */
    eng_attn_w self;
    eng_norm_w ln_cross; /* decoder only */
    eng_attn_w cross;    /* decoder only */
    eng_norm_w ln_ff;
    eng_lin wi;  /* [d_ff, d_model]; gated: the activated half */
    eng_lin wi1; /* gated: the linear half */
    eng_lin wo;  /* [d_model, d_ff] */
} eng_layer_w;

/* One stack's weights around its layers. */
typedef struct eng_stack_w {
    eng_lin embed;         /* [vocab, d_model] token embeddings (no bias), typed */
    const float *pos;      /* learned / sinusoidal: [max_positions + pos_offset, d_model] */
    const float *rel;      /* relative: [num_buckets, num_heads] */
    eng_norm_w embed_norm; /* layernorm_embedding */
    eng_norm_w final_norm;
    eng_layer_w *layers;
    int n_layers;
} eng_stack_w;

struct eng_arch;

/* ---- weights_cache.c: the int8 cache file (model.q8 beside the checkpoint) ---- */
typedef struct eng_q8cache eng_q8cache;
/* Opens <dir>/model.q8 when it exists and is valid for a checkpoint of this identity
 * (st_identity); a file that is not is refused with its reason on stderr. NULL only out
 * of memory (then no cache). */
eng_q8cache *eng_q8cache_open(const char *dir, uint64_t identity);
/* The valid blob of tensor `name` [N, K] in the file (checked by eng_q8_weight_check),
 * or NULL (absent or refused: said on stderr, and the file will be written again). */
const void *eng_q8cache_find(eng_q8cache *c, const char *name, int N, int K);
/* Records a blob the model holds, for eng_q8cache_commit. 0 or -1 out of memory. */
int eng_q8cache_add(eng_q8cache *c, const char *name, int N, int K, const void *blob);
/* Writes the recorded blobs to the file (atomically) when some were quantized now
 * (fresh) or the file was refused. 0, or -1 (said on stderr; the load goes on). */
int eng_q8cache_commit(eng_q8cache *c, uint64_t identity, int fresh);
/* Unmaps the file (after the model that uses its blobs). */
void eng_q8cache_close(eng_q8cache **c);

struct eng_model {
    eng_config cfg;
    const struct eng_arch *arch; /* its entry in the architecture table */
    int inner;                   /* num_heads * d_kv */
    st_set *st;                  /* owns the mmaps that F32 weights point into */
    eng_stack_w enc, dec;
    eng_lin lm_head; /* [vocab, d_model], b: final_logits_bias or NULL */
    float **owned;   /* converted or quantized copies of tensors (model.c), and
                                * tables computed at load; any type, freed with free() */
    int n_owned;
    size_t owned_bytes;  /* memory allocated for them */
    size_t mapped_bytes; /* tensors used in place from the mmap */
    eng_weights weights; /* the type matrix weights are held in (eng_model_weights) */
    eng_q8cache *q8c;    /* int8: the cache file whose blobs it uses, or NULL */
    int q8_fresh;        /* int8: matrices quantized at this load (not from q8c) */
    int n_threads;       /* threads of a step: exactly, or at most with threads_auto */
    int threads_auto;    /* loaded with n_threads = 0: the step picks (eng_threads_step) */
    char dir[1024];      /* the checkpoint directory (messages) */
    eng_lin cls_dense;   /* classification head: [d_model, d_model] */
    eng_lin cls_out;     /* [num_labels, d_model] */
    eng_gen_params gen;  /* the checkpoint's generation settings */
    unsigned gen_set;    /* ENG_GEN_SET_* bits of what it states */
    int32_t *bad_words;  /* gen's bad_words_ids, owned */
    int *bad_off;
};

/* Binding tensors (model.c), for the architecture entries: finds `name`, checks its
 * shape ([d0] when d1 is 0, else [d0, d1]) and returns F32 data (in place, or converted
 * and owned by the model). NULL with the reason in err when missing, mis-shaped or out
 * of memory. The name is a printf format. */
const float *eng_bind(eng_model *m, int64_t d0, int64_t d1, char *err, size_t errlen,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* 1 if the checkpoint has a tensor of that name. */
int eng_has(const eng_model *m, const char *name);
/* A matrix weight [out, in] (a Linear's, the token embeddings, lm_head) held in the type
 * the model's weights choice says (model.c): in place from the mmap when the checkpoint
 * has it in that type, else converted or quantized once into memory the model owns. 0, or
 * -1 with the reason in err. `name` is the tensor's name. */
int eng_bind_mat(eng_model *m, eng_lin *l, int out, int in, char *err, size_t errlen,
                 const char *name);
/* The same for a Linear: "<pfx>weight" [out, in], and "<pfx>bias" [out] when bias. */
int eng_bind_lin(eng_model *m, eng_lin *l, int out, int in, int bias, char *err, size_t errlen,
                 const char *pfx);
/* A norm: "<pfx>weight", and "<pfx>bias" for a LayerNorm. */
int eng_bind_norm(eng_model *m, eng_norm_w *n, char *err, size_t errlen, const char *pfx);
/* Memory the model owns for a table computed at load ([n] floats); NULL out of memory. */
float *eng_model_alloc(eng_model *m, size_t n);

/* ---- arch.c: the architecture table ---- */

/* The forward pass of an architecture, over the context's workspaces. */
typedef struct eng_fwd {
    /* Encodes n sequences packed back to back (tok_off[i] .. tok_off[i+1]) into
     * c->enc_out, and (if cross_at >= 0) projects each decoder layer's cross-attention
     * K/V from it into the packed cross K/V from token cross_at on. */
    void (*encode)(eng_ctx *c, const int32_t *ids, const int *tok_off, int n, int cross_at);
    /* One decoder step for n rows: row i has input token tok[i] at position pos[i], its
     * self-attention cache in block blk[i], and attends to encoder tokens
     * [enc_off[i], enc_off[i] + enc_len[i]) of the packed cross K/V. Writes the final
     * hidden states to c->h [n, d_model], ready for lm_head. */
    void (*decode_step)(eng_ctx *c, const int32_t *tok, const int *blk, const int *enc_off,
                        const int *enc_len, int n, const int *pos);
    /* Teacher-forced decoder over n sequences packed back to back (off[i] .. off[i+1]),
     * sequence i attending causally to itself and to the packed encoder tokens
     * [enc_off[i], enc_off[i] + enc_len[i]). With dep and end (else NULL), each sequence
     * is a prefix tree of decoder inputs in preorder: row t is at decoder position
     * dep[t], its subtree is rows t .. (its sequence's first row + end[t] - 1), and it
     * attends to itself and its ancestors only; every root-to-node path computes what it
     * would alone. Final hidden states go to c->h [off[n], d_model]. */
    void (*decode_full)(eng_ctx *c, const int32_t *tok, const int *off, int n, const int *enc_off,
                        const int *enc_len, const int *dep, const int *end);
    /* logits[rows, vocab] from hidden[rows, d_model]. */
    void (*lm_head)(eng_ctx *c, const float *hidden, int rows, float *logits);
    /* The self-attention cache: floats one decoder row holds for max_pos positions, and
     * where (layer, which: 0 keys, 1 values) starts inside row block blk. */
    size_t (*kv_floats)(const eng_model *m, int max_pos);
    float *(*kv_at)(eng_ctx *c, int blk, int layer, int which);
} eng_fwd;

struct cJSON;

typedef struct eng_arch {
    const char *name;             /* for messages, e.g. "t5" */
    const char *model_types[4];   /* config.json model_type values it takes */
    const char *architectures[4]; /* architectures[] names, when model_type is absent */
    /* Reads the architecture's keys (and its defaults for the common ones) from
     * config.json's object. 0, or -1 with "<path>: reason" in err. */
    int (*read_config)(const char *path, const struct cJSON *root, eng_config *c, char *err,
                       size_t errlen);
    /* Binds its tensors into m (m->cfg is read). 0 or -1 with the reason in err. */
    int (*bind)(eng_model *m, const char *dir, char *err, size_t errlen);
    const eng_fwd *fwd;
} eng_arch;

/* The entry for config.json's root object, and in *model_type the table's name of the
 * model_type (from architectures[] when the key is absent); NULL with the reason (naming
 * the type and the supported ones) in err. */
const eng_arch *eng_arch_find(const char *path, const struct cJSON *root, const char **model_type,
                              char *err, size_t errlen);
/* "t5, mt5" (every supported model_type, for messages). */
const char *eng_arch_supported(void);

extern const eng_arch eng_arch_t5;   /* arch_t5.c */
extern const eng_arch eng_arch_bart; /* arch_bart.c: BART, mBART, Marian, M2M100 */
extern const eng_fwd eng_tf_fwd;     /* tf.c: the parameterised Transformer */

/* Label scoring runs lm_head over this many rows per call at least: every sgemm call
 * repacks the whole [vocab, d_model] weight, so small chunks pay that again and again. */
#define ENG_SCORE_CHUNK 128

/* ---- decode.c ---- */
size_t eng_greq_size(void);

/* ---- ctx.c / tf.c ---- */

/* One thread's scratch for the logits processing of a decode row (decode.c). */
typedef struct eng_rowbuf {
    double *lp;      /* [vocab] a row's log-probs (beam); a saved row (sampling) */
    float *sort_val; /* [vocab] */
    int *sort_idx;   /* [vocab] */
    int32_t *ban;    /* [max_pos + 2] tokens a processor forbids next */
} eng_rowbuf;

/* The forward pass's workspace (tf.c): packed activations, attention scratch, the
 * encoder output and cross K/V, the self-attention KV cache, logits, and the layout of
 * the packed batch. Between two decode steps of a running generation only kv (its
 * rows' caches) and cross[0] hold its state; everything else is scratch of one call,
 * free for eng_score / eng_classify / eng_encode / eng_logits made from its hooks
 * (tests/unit/test_engine_interleave.c overwrites it there). The constant tables
 * (enc_bias, dec_bias) are written once, in eng_ctx_new. */
typedef struct eng_work {
    float *x;         /* [max_tok, d_model] residual stream */
    float *h;         /* [max_tok, d_model] normed / projections out */
    float *q, *k, *v; /* [max_tok, inner] */
    float *att;       /* [max_tok, inner] attention output, heads side by side */
    float *ff0, *ff1; /* [max_tok, d_ff] */
    float *scores;    /* [n_threads][max_len, max_len]: a head each; or [max_rows, max_len] */
    float *keys_t;    /* [n_threads][d_kv, keys_ld]: a head's keys transposed */
    int keys_ld;      /* max_len rounded up to 16, plus 16 (no power-of-two stride) */
    /* int8 models: [n_threads][q8_attn_bytes], a head's keys [max_len, d_kv] then its
     * values transposed [d_kv, max_len] as int8 blobs, the second at q8_attn_v (tf.c);
     * else NULL and 0 */
    unsigned char *q8_attn;
    size_t q8_attn_v, q8_attn_bytes;
    float *enc_out;           /* [max_batch_tokens, d_model] */
    float *cross_k, *cross_v; /* [n_dec_layers][max_batch_tokens][inner]: the cross K/V
                                * the forward pass writes (encode) and reads (decoding):
                                * cross[0], or cross[1] while a generation's hook runs */
    float *cross[2][2];       /* [0: everyone's; 1: calls made between two decode steps
                                * of a running generation][0: K, 1: V]. A generation holds
                                * its rows' cross K/V in cross[0] from encode to its end,
                                * so scoring between its steps encodes into cross[1] (its
                                * pages are touched only by such calls) */
    float *enc_bias;  /* [num_heads][2 * max_len - 1]: bias at rel pos r is [r + max_len - 1] */
    float *dec_bias;  /* [num_heads][max_len]: bias at rel pos -r (r >= 0) is [r]
                                * (both for relative positions only, else NULL) */
    int *pos_ids;     /* [max_tok] the position of each packed row */
    float *kv;        /* [max_rows] cache blocks (eng_fwd.kv_at) */
    size_t kv_block;  /* floats per block */
    int logit_rows;   /* max(max_rows, ENG_SCORE_CHUNK) */
    float *logits;    /* [logit_rows, vocab] */
    int32_t *enc_ids; /* [max_batch_tokens] packed encoder input */
    int *tok_off;     /* [max_rows + 1] packed encoder offsets per sequence */
    int *enc_off, *enc_len; /* [max_rows + 1] encoder slice each decoder row reads */
} eng_work;

/* Generation's state (decode.c), all [max_rows ...] unless said. */
typedef struct eng_decstate {
    int32_t *hist, *hist2;       /* [max_rows][max_pos + 1] token history incl. start */
    int *row_block, *row_block2; /* cache block of each row slot */
    int *act;                    /* active slots this step */
    int *act_req;                /* the request of each active row */
    int *act_pos;                /* the decode position of each active row */
    int *act_blk;                /* cache block of each active row */
    int32_t *act_tok;            /* input token of each active row */
    int *slot_used;              /* [2 * max_rows] scratch: slots held; token ranges held */
    int *parent;                 /* beam search: parent beam of each new beam */
    int *block_used;
    double *row_score, *row_score2; /* cumulative log-prob */
    int *row_done;
    int *row_len;      /* generated tokens */
    uint64_t *row_rng; /* sampling PRNG state */
    int32_t *fin_tok;  /* [max_rows][max_new_tokens] finished beam hypotheses */
    int *fin_len;
    double *fin_score, *fin_sum;
    double *beam_score;       /* [max_rows * 2 * max_rows] a step's beam candidates: sum */
    int *beam_tok, *beam_src; /* idem: token, and the beam it extends */
    float *sort_val;          /* [n_threads][vocab] */
    int *sort_idx;            /* [n_threads][vocab] */
    double *lp_row;           /* [n_threads][vocab] */
    int32_t *ban;             /* [n_threads][max_pos + 2] */
    eng_rowbuf *rb;           /* [n_threads]: each thread's slices of the four above */
    struct eng_greq *greq;    /* per-request state of a running group */
    int running;              /* 1 while eng_generate_stream runs (its hooks may call
                                * eng_score, not generate again) */
} eng_decstate;

/* Label scoring's state (decode.c): a candidate of n tokens is n + 1 scored positions
 * (its tokens, then EOS), each read off one node of its request's prefix tree; a node is
 * one teacher-forced decoder row, shared by the candidates whose inputs agree so far. */
typedef struct eng_scorestate {
    int max_cand_total;         /* candidates of one scoring run (see eng_ctx_new) */
    int *run;                   /* [max_rows] the requests of one scoring run */
    int *cand_off;              /* [max_cand_total + 1] each candidate's first position */
    int *cand_order;            /* [max_cand_total] a request's candidates, sorted by tokens */
    double *cand_lp;            /* [max_cand_total] log-likelihood of each candidate */
    int32_t *cand_tgt;          /* [max_cand_total * max_cand_len] each position's target */
    int *cand_node;             /* idem: the node (decoder row) that predicts it */
    double *cand_pos_lp;        /* idem: its log-prob */
    int *tree_off;              /* [max_cand_total + 1] each tree's first node */
    int *tree_eoff, *tree_elen; /* [max_cand_total] encoder slice each tree attends to */
    int32_t *node_tok;          /* [max_cand_total * max_cand_len] each node's decoder input */
    int *node_dep, *node_end;   /* idem: its decoder position; its subtree's end in its tree */
    double *node_lse;           /* idem: logsumexp of its logits */
} eng_scorestate;

/* Sequence classification's state (classify.c). */
typedef struct eng_clsstate {
    int32_t *dec;   /* [max_batch_tokens] decoder inputs (shifted right) */
    float *h;       /* [2 * max_rows, d_model] the head's rows */
    int *run, *eos; /* [max_rows] a pass's requests; their last EOS */
} eng_clsstate;

/* Every buffer is carved from one allocation, sized in eng_ctx_new (its pages are
 * touched only when used); nothing is allocated afterwards. */
typedef struct eng_span {
    void *p;
    size_t bytes;
} eng_span;
#define ENG_MAX_SCRATCH 48

struct eng_ctx {
    const eng_model *m;
    eng_ctx_params p;
    int max_pos; /* decoder positions per row: max_new_tokens + 1 */
    int max_tok; /* rows of the packed workspaces */
    int max_len; /* longest sequence any attention sees */
    eng_work w;
    eng_decstate d;
    eng_scorestate s;
    eng_clsstate cl;
    void *mem; /* the one allocation */
    size_t mem_bytes;
    /* The buffers that hold nothing from one decode step to the next (the forward pass's
     * scratch, the hooks' cross K/V region, label scoring, classification): a test
     * overwrites them between steps to show no step reads what an earlier one left. */
    eng_span scratch[ENG_MAX_SCRATCH];
    int n_scratch;
    int nt;             /* threads of the current step (eng_threads_step) */
    unsigned nt_window; /* the last reading window this context computed in */
};

#endif
