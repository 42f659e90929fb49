/* Private to tasks/: the config struct behind the opaque task_conf, the registry's ops
 * table, and helpers the task modules share (prompt templates, tokenizing with
 * truncation, decoding parameters, jobs). Also what tests/unit/test_tasks.c pokes at.
 * Not for the daemon: it codes against tasks/task.h only. */
#ifndef NLP_TASK_INT_H
#define NLP_TASK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tasks/task.h"

#define TASK_N_KINDS 6 /* task_kind values 0..5; index into per-kind tables */
#define TASK_PROMPT_MAX 1024
#define TASK_LANG_NAMES 4

/* Decoding defaults of one task, as read from `tasks.<task>`. */
typedef struct task_dec_defaults {
    int max_new_tokens, min_new_tokens, num_beams, num_return_sequences;
    int no_repeat_ngram_size, top_k, do_sample;
    double length_penalty, repetition_penalty, temperature, top_p;
    long long seed;
} task_dec_defaults;

typedef struct task_spec {
    char prompt[TASK_PROMPT_MAX];
    task_dec_defaults dec;
    unsigned dec_set; /* ENG_GEN_SET_* bits of the decoding keys the file sets (the
                             * operator's choices, above the checkpoint's own settings) */
} task_spec;

/* One row of the language table: an ISO code and up to TASK_LANG_NAMES English names;
 * names[0] is what the prompt says ("German"). */
typedef struct task_lang {
    char code[16];
    char names[TASK_LANG_NAMES][48];
    int n_names;
} task_lang;

struct task_conf {
    char path[1024];              /* "" for built-in defaults */
    int truncate;                 /* 1: cut over-long input (truncated=1); 0: TASK_ETOOLONG */
    int max_input_tokens;         /* limits.max_input_tokens (nlprun; the daemon passes env) */
    int max_new_tokens_limit;     /* limits.max_new_tokens: upper bound for any request */
    int max_beams;                /* upper bound for num_beams */
    task_spec spec[TASK_N_KINDS]; /* by task_kind; [0] unused */
    /* translate */
    char default_source[48];
    int n_langs;
    task_lang *langs; /* owned */
    int n_abbrevs;
    char (*abbrevs)[16]; /* owned; without the final '.' */
    /* classify */
    char label_separator[32];
    char contrast_label[64]; /* multi-label: each label vs this one */
    int labels_per_job;      /* candidates per eng_score_req (engine's max_cands) */
    int max_label_tokens;    /* tokens per label, EOS excluded (engine's max_cand_len - 1) */
    char hypothesis_template[TASK_PROMPT_MAX]; /* NLI zero-shot: "This example is {}." */
    /* model types (config.json's model_type, space-separated) that read the prompts */
    char prompted_types[256];
    /* qa */
    int qa_overlap;   /* context tokens shared by neighbouring chunks */
    int qa_min_chunk; /* below this many context tokens per chunk: ETOOLONG */
};

/* ---- registry ---- */

typedef struct task_ops {
    task_kind kind;
    const char *name;
    int (*prepare)(const task_env *env, const task_input *in, task_doc *doc, char *err,
                   size_t errlen);
    /* Fills out (not status on success: the registry does); doc is cleared afterwards by
     * the registry. */
    int (*finish)(const task_env *env, const task_input *in, task_doc *doc, task_result *out);
    void (*free_priv)(void *priv); /* NULL: priv unused */
} task_ops;

extern const task_ops task_summarize_ops;
extern const task_ops task_translate_ops;
extern const task_ops task_classify_ops;
extern const task_ops task_qa_ops;
extern const task_ops task_text2text_ops;

/* ---- helpers (tasks/task.c) ---- */

/* Expands `{name}` placeholders of tmpl; vals[i] (vlens[i] bytes) replaces `{names[i]}`.
 * Returns a malloc'ed NUL-terminated string (length in *out_len), NULL on ENOMEM or an
 * unknown placeholder. */
char *task_fill(const char *tmpl, const char *const *names, const char *const *vals,
                const size_t *vlens, int n, size_t *out_len);
/* 1 if tmpl uses only the given placeholders and has each of `required` at least once;
 * else 0 with the reason in err. */
int task_template_check(const char *tmpl, const char *const *names, int n, const char *required,
                        char *err, size_t errlen);

/* 1 if the text has anything but whitespace. */
int task_has_text(const char *text, size_t len);

/* Tokenizes into a malloc'ed array (*ids, *n); add_special: with the tokenizer's special
 * ids around the text (TOK_ADD_SPECIAL; T5: EOS after it). TASK_EINVAL on invalid
 * UTF-8. */
int task_encode(const tok_model *tok, const char *text, size_t len, int add_special, int32_t **ids,
                int *n, char *err, size_t errlen);

/* Tokenizes the prompt tmpl (with the special ids) where names[var] may be cut from the end so that
 * the whole fits max_tokens: the longest prefix (at a UTF-8 boundary) that fits is kept
 * and *truncated set. conf->truncate == 0 makes an over-long prompt TASK_ETOOLONG. */
int task_encode_prompt(const task_env *env, const char *tmpl, const char *const *names,
                       const char *const *vals, const size_t *vlens, int n, int var, int max_tokens,
                       int32_t **ids, int *n_ids, int *truncated, char *err, size_t errlen);

/* Client options over the task's defaults, checked against the limits. */
int task_gen_params(const task_conf *conf, task_kind kind, const task_decode_opts *o,
                    eng_gen_params *p, char *err, size_t errlen);
/* The same with the checkpoint's generation settings (env->info) in their place: the
 * task's built-in defaults, beneath what the checkpoint states (including early_stopping,
 * forced BOS/EOS and bad words, which the config has no key for), beneath the keys the
 * operator's tasks file sets, beneath the request's options. */
int task_gen_params_env(const task_env *env, task_kind kind, const task_decode_opts *o,
                        eng_gen_params *p, char *err, size_t errlen);

/* The prompt of a task for the model in env: the configured one for a model type listed
 * in tasks.prompt_model_types (T5), else "{text}" (BART, Marian, M2M100... read the
 * text as is). */
const char *task_prompt(const task_env *env, task_kind kind);

/* task_encode / task_encode_prompt with the tokenizer's per-call options (source
 * language of a many-to-many model); opts NULL: the defaults. */
int task_encode_opt(const tok_model *tok, const char *text, size_t len, int add_special,
                    const tok_encode_opts *opts, int32_t **ids, int *n, char *err, size_t errlen);
int task_encode_prompt_opt(const task_env *env, const tok_encode_opts *opts, const char *tmpl,
                           const char *const *names, const char *const *vals, const size_t *vlens,
                           int n, int var, int max_tokens, int32_t **ids, int *n_ids,
                           int *truncated, char *err, size_t errlen);

/* Allocates doc->jobs (zeroed). */
int task_doc_jobs(task_doc *doc, int n);
/* A generate job over ids (ownership moves to the job); wires job->gen. */
void task_job_generate(task_job *job, int32_t *ids, int n_ids, const eng_gen_params *p);
/* TASK_OK if the job ran, else a status with the engine's reason in msg. */
int task_job_status(const task_job *job, char *msg, size_t msglen);
/* Text of a hypothesis (malloc'ed); *n_out: its tokens without EOS. NULL on error. */
char *task_hyp_text(const tok_model *tok, const eng_hyp *h, int *n_out);
/* Prepares the one generate job of a single-prompt task (summarize, text2text): the
 * task's configured prompt with {text}, its decoding defaults under the client's
 * options; the text is cut to fit (truncated = 1) unless tasks.truncate = false. */
int task_prepare_single(const task_env *env, task_kind kind, const task_input *in, task_doc *doc,
                        char *err, size_t errlen);
/* Fills text/score/hyps/output_tokens from one generate job (summarize, text2text). */
int task_finish_single(const task_env *env, const task_input *in, task_doc *doc, task_result *out);
/* Sets out->status/message: printf-like. Returns status. */
int task_fail(task_result *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- per task pieces, exposed for tests ---- */

/* translate: appends s to the malloc'ed *buf (length *len; *buf may start NULL) with one
 * space between parts, none after a CJK full stop; an empty s adds nothing. */
int task_join(char **buf, size_t *len, const char *s);

/* Language by ISO code or any of its names, ASCII case-insensitive; NULL if unknown. */
const task_lang *task_lang_find(const task_conf *conf, const char *s);

typedef struct task_span {
    size_t off, len;
} task_span;

/* Sentences of text, in order, each trimmed of surrounding whitespace; empty ones
 * dropped. Returns the count (spans malloc'ed in *out, NULL when 0), < 0 on ENOMEM. */
int task_split_sentences(const task_conf *conf, const char *text, size_t len, task_span **out);

/* Chunks over n context tokens: windows of at most `window` tokens, neighbours sharing
 * `overlap` tokens (start snapped back to a word start when is_word_start is given), the
 * union covering [0, n). Spans are in tokens. Returns the count, < 0 on ENOMEM. */
int task_qa_chunks(int n, int window, int overlap, const uint8_t *is_word_start, task_span **out);

/* ---- zero-shot classification on an NLI model (tasks/classify.c) ---- */

/* How the tokenizer lays out a pair: head a mid b tail (BART: <s> a </s></s> b </s>). */
typedef struct task_pair_layout {
    int n_head, n_mid, n_tail;
    int32_t head[TOK_MAX_SPECIALS], mid[TOK_MAX_SPECIALS], tail[TOK_MAX_SPECIALS];
} task_pair_layout;
/* The layout of tok's pairs (tok_encode_pair of two empty texts). < 0 on error. */
int task_pair_layout_of(const tok_model *tok, task_pair_layout *l);
/* head a mid b tail into out (room for n_head + na + n_mid + nb + n_tail); the count. */
int task_pair_ids(const task_pair_layout *l, const int32_t *a, int na, const int32_t *b, int nb,
                  int32_t *out);
/* HF's zero-shot pipeline's ids: entailment = the first label starting with "entail"
 * (ASCII case-insensitive), contradiction = 0, or the last label when entailment is 0.
 * Returns 0, or -1 when the model has no head or no entailment label. */
int task_nli_ids(const eng_config *m, int *entail, int *contra);
/* Scores of n labels from their pairs' logits ([n][num_labels]): softmax over the
 * entailment logits, or with multi_label (or n == 1) each label's softmax over
 * [contradiction, entailment]. In label order. */
void task_zs_scores(const float *logits, int n, int num_labels, int entail, int contra,
                    int multi_label, double *scores);

/* Label probabilities from label log-likelihoods: softmax over n labels, or with
 * multi_label each label's exp(lp) / (exp(lp) + exp(contrast_lp)). */
void task_label_probs(const double *lp, int n, int multi_label, double contrast_lp, double *probs);

#endif
