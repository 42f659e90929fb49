/* The encoder-decoder engine: Hugging Face seq2seq checkpoints (T5, FLAN-T5, mT5 today),
 * one parameterised Transformer behind an architecture table (engine/arch.c).
 *
 * Knows nothing of protobuf, ZeroMQ or tasks: token ids in, token ids and scores out.
 *
 *   eng_model   immutable weights (mmapped) + config. Shared read-only between threads.
 *   eng_ctx     working memory for one thread: all buffers are allocated in
 *               eng_ctx_new(), nothing is allocated per decode step. One ctx per thread.
 *
 * Return codes: 0 ok, < 0 one of enum eng_status. Constructors return NULL on error
 * and write the reason (naming the file or tensor) into `err`. */
#ifndef NLP_ENGINE_H
#define NLP_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct eng_model eng_model;
typedef struct eng_ctx eng_ctx;

enum eng_status {
    ENG_OK = 0,
    ENG_EINVAL = -1, /* bad argument: empty input, id out of vocab, bad params */
    ENG_ENOMEM = -2,
    ENG_ETOOLONG = -3, /* input or batch larger than the ctx was sized for */
    /* -4 was "not implemented": nothing returns it any more */
    ENG_ENONFINITE = -5, /* the model computed a NaN or infinity (logits of a decode row,
                          * or a label's score): damaged weights; no result */
};

/* How an architecture computes, read from config.json by its entry in the engine's
 * architecture table (engine/arch.c). One Transformer encoder-decoder (engine/tf.c) takes
 * these as parameters, CTranslate2-style: a new family is a new table entry (its config
 * keys, its tensor names) and, only when it computes something new, a new value here. */
typedef enum eng_norm_kind {
    ENG_NORM_RMS = 0,   /* w * x / sqrt(mean(x^2) + eps) (T5) */
    ENG_NORM_LAYER = 1, /* (x - mean) / sqrt(var + eps) * w + b (BART, Marian, ...) */
} eng_norm_kind;

typedef enum eng_act {
    ENG_ACT_RELU = 0,
    ENG_ACT_GELU = 1,      /* exact: x * Phi(x) with erf */
    ENG_ACT_GELU_TANH = 2, /* the tanh approximation (HF gelu_new / gelu_pytorch_tanh) */
    ENG_ACT_SILU = 3,      /* x * sigmoid(x) (HF silu / swish) */
} eng_act;

typedef enum eng_pos_kind {
    ENG_POS_RELATIVE = 0,   /* bucketed relative attention bias (T5) */
    ENG_POS_LEARNED = 1,    /* a learned table added to the embeddings, row pos + offset */
    ENG_POS_SINUSOIDAL = 2, /* a computed table added to the embeddings */
} eng_pos_kind;

typedef struct eng_arch_config {
    eng_norm_kind norm;
    float norm_eps;
    int pre_norm;   /* 1: x + f(norm(x)); 0: norm(x + f(x)) (post-norm) */
    int final_norm; /* a norm after each stack's last layer */
    int embed_norm; /* a norm right after the embeddings (layernorm_embedding) */
    eng_act act;
    int gated;         /* feed-forward act(x W0) * (x W1), else act(x W) */
    int bias;          /* Linear layers have biases */
    float attn_scale;  /* queries are multiplied by it (1 for T5, head_dim^-0.5) */
    float embed_scale; /* embeddings are multiplied by it (1, or sqrt(d_model)) */
    float lm_scale;    /* decoder output times it before lm_head (T5 tied: d^-0.5) */
    eng_pos_kind pos;
    int pos_offset;    /* learned / sinusoidal: the row of position p is p + offset */
    int max_positions; /* learned / sinusoidal: positions the table has (no limit: 0) */
    int pos_pad_zero;  /* fairseq's positions (M2M100): a pad token adds no position,
                                * and the encoder counts only the tokens that are not pad */
    int num_buckets;   /* relative: relative_attention_num_buckets */
    int max_distance;  /* relative: relative_attention_max_distance */
    int tied;          /* lm_head is the shared embedding */
    int logits_bias;   /* final_logits_bias is added to the logits */
} eng_arch_config;

#define ENG_MAX_LABELS 64
#define ENG_LABEL_LEN 48

/* What every encoder-decoder has, as read from config.json, and its architecture's own
 * part. */
typedef struct eng_config {
    char model_type[32]; /* config.json's model_type, e.g. "t5" */
    int vocab_size;
    int d_model;
    int d_kv;      /* per head */
    int num_heads; /* inner_dim = num_heads * d_kv, may differ from d_model */
    int d_ff;
    int num_layers; /* encoder */
    int num_decoder_layers;
    int decoder_start_token_id;
    int eos_token_id;
    int pad_token_id;
    eng_arch_config arch;
    /* A sequence-classification head (BartForSequenceClassification): its classes, in
     * order, named by config.json's id2label (0: the model has none). */
    int num_labels;
    char labels[ENG_MAX_LABELS][ENG_LABEL_LEN];
} eng_config;

/* How weights are held in memory (nlprun/nlpd --weights, nlpd.conf weights = "..."):
 * AUTO keeps the checkpoint's own type (F32 stays F32, BF16 stays BF16, F16 stays F16). */
typedef enum eng_weights {
    ENG_WEIGHTS_AUTO = 0,
    ENG_WEIGHTS_F32 = 1,
    ENG_WEIGHTS_BF16 = 2,
    ENG_WEIGHTS_F16 = 3,
    ENG_WEIGHTS_INT8 = 4,
} eng_weights;

/* "auto", "f32", "bf16", "f16", "int8" -> the type; -1 for anything else. */
int eng_weights_parse(const char *s);
/* The lower-case name of a type ("auto" ... "int8"); "?" out of range. */
const char *eng_weights_name(int w);

typedef struct eng_model_params {
    int n_threads;       /* threads of each step; 0 = as many as are free (below) */
    eng_weights weights; /* ENG_WEIGHTS_AUTO */
} eng_model_params;

eng_model_params eng_model_default_params(void);
/* Loads a Hugging Face checkpoint directory (config.json + model.safetensors or a
 * sharded index). Weights F32/F16/BF16 are mmapped and, with p->weights AUTO, used in
 * place in the checkpoint's own type (the kernels widen BF16/F16 in registers); f32,
 * bf16 or f16 converts the matrices once here, int8 quantizes them (per-row scales,
 * engine/eng_q8.h; with NLPD_Q8_CACHE=1 the packed weights are kept in model.q8 beside
 * the checkpoint for the next load, docs/models.md). Missing or
 * mis-shaped tensors, and tensors holding a NaN or an infinity, fail with a message
 * naming the tensor (every weight is read once here to check). p may be NULL (defaults);
 * p->n_threads > 0 runs that many threads in every step of every call. 0 runs up to
 * cm_cpu_count() and fewer when the machine is contended: each step takes the CPUs the
 * process could use over the last fraction of a second (its own CPU time plus its CPUs'
 * idle time), shared between the contexts computing (engine/threads.c). Results do not
 * depend on the thread count. */
eng_model *eng_model_load(const char *dir, const eng_model_params *p, char *err, size_t errlen);
void eng_model_free(eng_model **model);
const eng_config *eng_model_config(const eng_model *model);
/* The type the model's matrix weights are held in after load (never AUTO). */
eng_weights eng_model_weights(const eng_model *model);
/* Bytes of weights the model keeps resident: the mapped tensors it uses in place plus
 * the memory it allocated at load (conversions, quantized copies, computed tables). */
size_t eng_model_resident_bytes(const eng_model *model);

typedef struct eng_ctx_params {
    int max_rows;         /* decoder rows in flight at once (sum of beams); default 64 */
    int max_input_len;    /* encoder tokens per sequence (incl. EOS); default 512 */
    int max_new_tokens;   /* upper bound for any request; default 256 */
    int max_cands;        /* label-scoring candidates per sequence; default 64 */
    int max_cand_len;     /* tokens per candidate (incl. EOS); default 32 */
    int max_batch_tokens; /* encoder tokens of all sequences of one batch together;
                               * default 4096 (at least max_input_len). eng_generate
                               * splits larger batches into runs that fit. */
} eng_ctx_params;

eng_ctx_params eng_ctx_default_params(void);
/* Allocates every workspace (fields <= 0 take the defaults). The largest is the decoder
 * KV cache: max_rows * num_decoder_layers * 2 * (max_new_tokens + 1) * inner floats,
 * then the cross-attention K/V: num_decoder_layers * 2 * max_batch_tokens * inner, twice
 * (the second is written only by scoring between a generation's steps, eng_stream).
 * Pages are touched only when used. A model with a position table (learned or
 * sinusoidal, max_positions rows) lowers max_input_len, max_new_tokens and max_cand_len
 * to max_positions: nothing longer can be computed. */
eng_ctx *eng_ctx_new(const eng_model *model, const eng_ctx_params *p, char *err, size_t errlen);
void eng_ctx_free(eng_ctx **ctx);
/* The threads the context's last step ran (eng_model_params.n_threads). Any thread. */
int eng_ctx_threads(const eng_ctx *c);
/* The longest sequence the model can compute: its position table's max_positions, or
 * `limit` when that is smaller or the model has no table (T5's relative positions).
 * Tasks truncate their inputs to it. */
int eng_model_max_len(const eng_model *model, int limit);

/* ---- generation ---- */

typedef struct eng_gen_params {
    int max_new_tokens;       /* 64 */
    int min_new_tokens;       /* 0: EOS is forbidden before this many tokens */
    int num_beams;            /* 1: greedy (or sampling) */
    int num_return_sequences; /* 1; <= num_beams with beam search; with do_sample, that
                                * many independent samples; greedy: must be 1 */
    float length_penalty;     /* 1.0 */
    int no_repeat_ngram_size; /* 0: off */
    float repetition_penalty; /* 1.0: off (HF semantics) */
    int do_sample;            /* 0: deterministic */
    float temperature;        /* 1.0 */
    int top_k;                /* 0: off */
    float top_p;              /* 1.0: off */
    uint64_t seed;            /* sampling seed: same seed, same output */
    int early_stopping;       /* beam search: enum eng_early (HF's early_stopping) */
    int forced_bos_token_id;  /* -1: none; else the first generated token, scored 0 */
    int forced_eos_token_id;  /* -1: none; else the token at max_new_tokens, scored 0 */
    /* Token sequences never generated (HF bad_words_ids): sequence i is
     * bad_words[bad_off[i] .. bad_off[i + 1]); its last token is banned when the tokens
     * before it end the decoder sequence. The caller owns the arrays. */
    const int32_t *bad_words;
    const int *bad_off; /* [n_bad_words + 1] */
    int n_bad_words;
} eng_gen_params;

/* When beam search stops (HF's early_stopping): once num_beams hypotheses are finished,
 * TRUE stops at once; FALSE (HF's default) stops when the best running candidate can no
 * longer beat the worst finished one at its current length; NEVER likewise at the
 * longest length possible (max_new_tokens) when length_penalty > 0. */
enum eng_early { ENG_EARLY_FALSE = 0, ENG_EARLY_TRUE = 1, ENG_EARLY_NEVER = 2 };

eng_gen_params eng_gen_default_params(void);

#define ENG_MAX_RETURN 16

typedef struct eng_hyp {
    const int32_t *tokens; /* generated ids (no start token; EOS included if reached) */
    int n_tokens;
    double score; /* beam: sum_logprobs / n_tokens^lp; greedy and sampling:
                                * sum_logprobs (log-softmax of the processed logits, before
                                * temperature / top-k / top-p) */
    double sum_logprobs;
} eng_hyp;

/* Output of one generation. The tokens live in `storage`, owned by the result:
 * release with eng_gen_result_clear(). */
typedef struct eng_gen_result {
    int n_hyps; /* best first */
    eng_hyp hyps[ENG_MAX_RETURN];
    int32_t *storage;
} eng_gen_result;

void eng_gen_result_clear(eng_gen_result *r);

/* One sequence to generate from. */
typedef struct eng_gen_req {
    const int32_t *ids; /* encoder input, EOS included */
    int n_ids;
    const eng_gen_params *params;
    eng_gen_result *out; /* filled on success */
    int status;          /* out: 0 or enum eng_status, per request */
    void *tag;           /* the caller's; the engine does not touch it */
} eng_gen_req;

/* Runs n requests as one batch: the encoder batched over all inputs (packed back to back,
 * masked per sequence), the decoder stepping all live rows (all beams of all requests)
 * together. A request's result does not depend on what it is batched with nor on the
 * thread count: the same tokens and scores, bit for bit (docs/daemon.md, "Threads").
 * Batches larger than the ctx (max_rows, max_batch_tokens) run as several groups. Per
 * request status:
 * ENG_EINVAL (bad ids or params), ENG_ETOOLONG (n_ids > max_input_len, max_new_tokens
 * or rows beyond the ctx), ENG_ENOMEM (result allocation), ENG_ENONFINITE (a row's
 * logits held a NaN or an infinity: no result). Returns 0 if the batch ran
 * (see each req's status), < 0 (ENG_EINVAL) if nothing ran. */
int eng_generate(eng_ctx *ctx, eng_gen_req *reqs, int n);

/* Continuous batching: eng_generate_stream runs reqs[0..n) as eng_generate does, and
 * before every decode step asks join for more requests to start at once beside the
 * running ones, while there is room: a finished request's row slots and encoder tokens
 * go to the requests that join after it, so the batch runs as long as requests come.
 * done reports each request, joined or not, as soon as its result is ready (or it failed
 * its checks), exactly once, from the calling thread; a request must stay valid until
 * then. A joiner's rows are computed as if it ran alone (the same bits). */
typedef struct eng_stream {
    /* One more request that needs at most `rows` decoder rows (num_beams, or
     * num_return_sequences otherwise) and `tokens` encoder tokens (the longest free runs
     * of each), or NULL. A request over the room is refused (ENG_ETOOLONG, reported). */
    eng_gen_req *(*join)(void *user, int rows, int tokens);
    /* Reports a request; it must not call the engine (the step is half done). */
    void (*done)(void *user, eng_gen_req *req);
    /* Called before every decode step while rows run (after join), or NULL. */
    void (*between)(void *user);
    void *user;
} eng_stream;

/* Interleaving: join and between run on the calling thread between two decode steps and
 * may call eng_score, eng_classify, eng_encode and eng_logits on the same ctx. The
 * running generation keeps its state (its rows' KV caches, the cross K/V of their
 * inputs, histories, beams, finished hypotheses) where those calls do not write: they
 * encode into a cross K/V region of their own and use the workspace's scratch, which
 * holds nothing from one step to the next. So the generation's results and theirs are
 * bitwise what each gets alone (tests/unit/test_engine_interleave.c). Each call delays
 * the running rows by its own time: bound the work per step. eng_generate and
 * eng_generate_stream called from a hook are refused (ENG_EINVAL, nothing run). */

/* reqs: n pointers. Returns as eng_generate. */
int eng_generate_stream(eng_ctx *ctx, eng_gen_req *const *reqs, int n, const eng_stream *s);

/* The checkpoint's own generation settings: generation_config.json, else the generation
 * keys of config.json (as transformers' GenerationConfig.from_model_config), over
 * eng_gen_default_params(). max_length / min_length count the decoder start token, as
 * HF's do (max_new_tokens = max_length - 1). *set (if not NULL) gets an ENG_GEN_SET_*
 * bit for each field the checkpoint states, so that a caller can put its own defaults
 * beneath them and a request's options above. bad_words point into the model. */
eng_gen_params eng_model_gen_params(const eng_model *model, unsigned *set);

enum eng_gen_set {
    ENG_GEN_SET_MAX_NEW = 1 << 0,
    ENG_GEN_SET_MIN_NEW = 1 << 1,
    ENG_GEN_SET_BEAMS = 1 << 2,
    ENG_GEN_SET_LENGTH_PENALTY = 1 << 3,
    ENG_GEN_SET_NO_REPEAT = 1 << 4,
    ENG_GEN_SET_EARLY_STOPPING = 1 << 5,
    ENG_GEN_SET_REPETITION_PENALTY = 1 << 6,
    ENG_GEN_SET_FORCED_BOS = 1 << 7,
    ENG_GEN_SET_FORCED_EOS = 1 << 8,
    ENG_GEN_SET_BAD_WORDS = 1 << 9,
};

/* ---- sequence classification (a classification head: NLI, zero-shot) ---- */

typedef struct eng_cls_req {
    const int32_t *ids; /* encoder input as the tokenizer lays it out, EOS included */
    int n_ids;
    float *logits; /* out: [num_labels] */
    int status;    /* out: 0 or enum eng_status */
} eng_cls_req;

/* BartForSequenceClassification: the decoder reads shift_right(ids) (start token, then
 * ids without the last), and the head (dense, tanh, out_proj) reads its last-layer state
 * at the last EOS of ids. ENG_EINVAL when the model has no head, ids have no EOS or an id
 * is out of range; ENG_ETOOLONG past the context's max_input_len. Requests are batched
 * into as few passes as the context holds; each result is what it would be alone. */
int eng_classify(eng_ctx *ctx, eng_cls_req *reqs, int n);

/* ---- label scoring (zero-shot classification) ---- */

typedef struct eng_score_req {
    const int32_t *ids; /* encoder input, EOS included */
    int n_ids;
    int n_cands;
    const int32_t *const *cand_ids; /* each candidate's tokens, WITHOUT EOS (added here) */
    const int *cand_lens;
    double *logprobs; /* out: n_cands teacher-forced sums incl. EOS */
    int status;       /* out */
} eng_score_req;

/* One encoder pass per request, all candidates scored against it (teacher forced, as
 * rows of one decoder pass). Per request status as eng_generate; ENG_ETOOLONG when
 * n_cands > max_cands or a candidate + EOS is longer than max_cand_len; ENG_ENONFINITE
 * when a candidate's sum is not finite (logprobs then unspecified). */
int eng_score(eng_ctx *ctx, eng_score_req *reqs, int n);

/* ---- lower-level access (tests, nlprun) ---- */

/* Encoder output after the final layer norm: out is [n_ids, d_model]. Both calls return
 * ENG_ENONFINITE (out filled all the same) when a value is a NaN or an infinity. */
int eng_encode(eng_ctx *ctx, const int32_t *ids, int n_ids, float *out);
/* Next-token logits at the last decoder position: out is [vocab_size]. */
int eng_logits(eng_ctx *ctx, const int32_t *ids, int n_ids, const int32_t *dec_ids, int n_dec,
               float *out);

/* T5 relative position bucket of (memory position - query position). */
int eng_relative_bucket(int relative_position, int bidirectional, int num_buckets,
                        int max_distance);

const char *eng_strerror(int status);

/* The instruction set the engine's kernels run with on this CPU: "AVX-512", "AVX2+FMA" or
 * "baseline" (the clone each kernel's resolver picks). The engine's kernels run every
 * matrix product, each output in one summation order, whatever OpenBLAS (and
 * OPENBLAS_CORETYPE) would choose. */
const char *eng_kernels(void);

#endif
