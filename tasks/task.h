/* Tasks: turn one input document into engine work, and engine output into a result.
 *
 * A task knows nothing of sockets or protobuf: the daemon (or nlprun) fills a
 * task_input, calls task_prepare(), runs the jobs on the engine -- batched with other
 * documents' jobs in any grouping it likes -- then calls task_finish().
 *
 *   task_input --prepare--> task_doc { jobs[] } --engine--> jobs done --finish--> task_result
 *
 * Prompts and defaults come from the `tasks` group of the config (conf/nlpd.conf),
 * read by task_conf_load() or task_conf_from(), never from code. */
#ifndef NLP_TASK_H
#define NLP_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/tok.h"

/* Values seen on the wire too: explicit, only grow. */
typedef enum task_kind {
    TASK_NONE = 0,
    TASK_SUMMARIZE = 1,
    TASK_TRANSLATE = 2,
    TASK_CLASSIFY = 3,
    TASK_QA = 4,
    TASK_TEXT2TEXT = 5,
} task_kind;

/* Result codes of a document; the daemon maps them to wire status codes. */
typedef enum task_status {
    TASK_OK = 0,
    TASK_EINVAL = -1,    /* bad argument: empty text, no labels, unknown language... */
    TASK_ETOOLONG = -2,  /* input over the configured token limit */
    TASK_EINTERNAL = -3, /* engine failure */
    TASK_ENOMEM = -4,
    TASK_EUNSUPPORTED = -5, /* the model cannot do this task (qa on BART...): never nonsense */
} task_status;

typedef struct task_conf task_conf; /* opaque: prompts, defaults, limits per task */

/* What the tasks need to know of the checkpoint beyond its eng_config: filled by
 * task_env_set_model(). All zero (known = 0): a T5-family model with no generation
 * settings of its own (tests, and what every model was before the families). */
typedef struct task_model_info {
    int known;
    eng_gen_params gen; /* eng_model_gen_params(): bad_words point into the model */
    unsigned gen_set;   /* its ENG_GEN_SET_* bits: what the checkpoint states */
    /* 1 (every family but T5's): what neither the checkpoint nor the tasks file states is
     * transformers' default (1 beam, length penalty 1, no minimum, no n-gram rule: NLLB
     * decodes greedily, as HF does), not the task's built-in T5 default. max_new_tokens
     * stays the task's (HF's max_length 20 is its own placeholder). */
    int hf_base;
    /* Marian: the one language pair it serves, as written in tokenizer_config.json
     * (source_lang / target_lang) or the directory name opus-mt-SRC-TGT; "" unknown. */
    char pair_src[24], pair_tgt[24];
} task_model_info;

/* Everything a task needs, shared read-only between threads. */
typedef struct task_env {
    const tok_model *tok;
    const eng_config *model; /* NULL: treated as T5 (tests that need no weights) */
    const task_conf *conf;
    int max_input_tokens; /* encoder tokens per job, EOS included */
    task_model_info info;
} task_env;

/* Sets env->model and env->info from a loaded checkpoint and its directory (generation
 * settings, Marian's language pair). Cannot fail: what is not found stays unknown. */
void task_env_set_model(task_env *env, const char *model_dir, const eng_model *model);

/* The family of the model in env as the tasks see it (docs/models.md). */
typedef enum task_family {
    TASK_FAM_T5 = 0,        /* prompted text-to-text: every task (also env->model NULL) */
    TASK_FAM_BART = 1,      /* bart generation: summarize, classify by label scoring */
    TASK_FAM_NLI = 2,       /* a classification head with an entail* label: zero-shot */
    TASK_FAM_MARIAN = 3,    /* one language pair (or one source, >>xx<< targets) */
    TASK_FAM_MANY = 4,      /* m2m_100 / NLLB / mbart: language codes in the tokenizer */
    TASK_FAM_OTHER_CLS = 5, /* a classification head without entailment: nothing */
} task_family;
task_family task_env_family(const task_env *env);
/* 1 if the model in env serves the task; else 0 and, when why is given, the reason. */
int task_served(const task_env *env, task_kind kind, char *why, size_t whylen);
/* The served tasks' names, space-separated ("summarize classify"), into buf. */
void task_served_list(const task_env *env, char *buf, size_t cap);

/* Decoding options as the client sent them: a field < 0 (or NAN for floats) means
 * "not set, use the task's default from the config". */
typedef struct task_decode_opts {
    int max_new_tokens, min_new_tokens, num_beams, num_return_sequences;
    int no_repeat_ngram_size, top_k;
    float length_penalty, repetition_penalty, temperature, top_p;
    int64_t seed;          /* < 0: not set; set => sampling */
    int return_hypotheses; /* include every hypothesis with its score in the result */
} task_decode_opts;

void task_decode_opts_unset(task_decode_opts *o);

/* ---- the decoding options' one table (tasks/opts.c) ----
 * Each option's name (the wire field of DecodingOptions, the `tasks.<task>` key, nlprun's
 * --flag with '-' for '_'), type, range and default. The wire validation
 * (daemon/dmn_req.c), the tasks file (tasks/conf.c) and nlprun check values here, so one
 * bad value gets one message wherever it comes from: "NAME = VALUE is out of range
 * [LO, HI]" ("(LO, HI]" when LO itself is out), after the caller's prefix ("options.",
 * "tasks.summarize."). Values explicit, only grow. */
typedef enum task_opt_id {
    TASK_OPT_MAX_NEW_TOKENS = 0,
    TASK_OPT_MIN_NEW_TOKENS = 1,
    TASK_OPT_NUM_BEAMS = 2,
    TASK_OPT_NUM_RETURN_SEQUENCES = 3,
    TASK_OPT_NO_REPEAT_NGRAM_SIZE = 4,
    TASK_OPT_TOP_K = 5,
    TASK_OPT_LENGTH_PENALTY = 6,
    TASK_OPT_REPETITION_PENALTY = 7,
    TASK_OPT_TEMPERATURE = 8,
    TASK_OPT_TOP_P = 9,
    TASK_OPT_SEED = 10,
    TASK_OPT_DO_SAMPLE = 11, /* the tasks file's only: a request samples by setting one */
    TASK_OPT_N = 12,
} task_opt_id;

enum task_opt_type { TASK_OPT_INT = 1, TASK_OPT_FLOAT = 2, TASK_OPT_I64 = 3, TASK_OPT_BOOL = 4 };

/* The configured limit that lowers an option's maximum: limits.max_new_tokens, or
 * tasks.max_beams. The hard maxima below are those limits' own upper bounds. */
enum task_opt_cap { TASK_CAP_NONE = 0, TASK_CAP_MAX_NEW_TOKENS = 1, TASK_CAP_MAX_BEAMS = 2 };
#define TASK_MAX_NEW_TOKENS 4096
#define TASK_MAX_BEAMS 64

typedef struct task_opt_def {
    const char *name;
    int type;        /* enum task_opt_type */
    double min, max; /* the hard range, inclusive */
    int min_open;    /* 1: min itself is out of range (temperature, top_p, ...) */
    int cap;         /* enum task_opt_cap */
    double def;      /* default where neither a task nor the checkpoint says */
} task_opt_def;

/* The configured limits a value is checked against; a field <= 0: the hard maximum. */
typedef struct task_opt_limits {
    int max_new_tokens; /* limits.max_new_tokens */
    int max_beams;      /* tasks.max_beams */
} task_opt_limits;

const task_opt_def *task_opt(task_opt_id id); /* NULL past the table */
int task_opt_find(const char *name);          /* its id ("top_k", "top-k"), or -1 */
/* The range under lim (NULL: the hard range) as text: "[1, 16]", "(0, 1]". */
void task_opt_range(task_opt_id id, const task_opt_limits *lim, char *buf, size_t cap);
/* 1 if v is in the range under lim (an integer option: a whole number), else 0. */
int task_opt_in_range(task_opt_id id, double v, const task_opt_limits *lim);
/* Writes "PREFIXNAME = VALUE is out of range RANGE" into err (VALUE as given: a config
 * literal as written). Returns TASK_EINVAL. */
int task_opt_error(task_opt_id id, const char *prefix, const char *value,
                   const task_opt_limits *lim, char *err, size_t errlen);
/* TASK_OK if v is in range, else task_opt_error's TASK_EINVAL. */
int task_opt_check(task_opt_id id, double v, const char *prefix, const task_opt_limits *lim,
                   char *err, size_t errlen);
/* task_opt_check, then v into o's field. */
int task_decode_opts_set(task_decode_opts *o, task_opt_id id, double v, const char *prefix,
                         const task_opt_limits *lim, char *err, size_t errlen);

/* One document of a request. Strings are borrowed for the duration of prepare/finish. */
typedef struct task_input {
    task_kind kind;
    const char *text; /* the document (qa: the context) */
    size_t text_len;
    const char *source_lang;   /* translate: ISO code or English name; may be NULL (-> conf) */
    const char *target_lang;   /* translate: required */
    const char *const *labels; /* classify */
    int n_labels;
    int multi_label;      /* classify: independent per-label probabilities */
    const char *question; /* qa */
    task_decode_opts opts;
} task_input;

enum task_job_kind { TASK_JOB_GENERATE = 1, TASK_JOB_SCORE = 2, TASK_JOB_CLASSIFY = 3 };

/* One unit of engine work. `gen`, `score` or `cls` is ready to hand to eng_generate() /
 * eng_score() / eng_classify() as is (its pointers point into the job or the doc); the
 * engine writes the outputs. */
typedef struct task_job {
    int kind;
    int32_t *ids;
    int n_ids;
    eng_gen_params params;
    eng_gen_result result;
    eng_gen_req gen;
    eng_score_req score;
    eng_cls_req cls; /* TASK_JOB_CLASSIFY: one (premise, hypothesis) pair */
} task_job;

typedef struct task_doc {
    task_kind kind;
    int n_jobs;
    task_job *jobs;
    int input_tokens; /* tokens of the document as encoded (sum over jobs) */
    int truncated;    /* input was cut to fit */
    void *priv;       /* the task's own state (labels' ids, chunk offsets...) */
} task_doc;

typedef struct task_label_score {
    char *label;
    double score; /* probability */
} task_label_score;

typedef struct task_hyp {
    char *text;
    double score;
} task_hyp;

typedef struct task_result {
    int status;        /* enum task_status */
    char message[256]; /* human-readable reason when status != 0 */
    char *text;        /* summarize / translate / text2text output; qa answer */
    double score;      /* qa: answer score; others: best hypothesis score */
    int n_labels;      /* classify, sorted by score, best first */
    task_label_score *labels;
    int n_hyps; /* when return_hypotheses */
    task_hyp *hyps;
    int input_tokens;
    int output_tokens;
    int truncated;
} task_result;

/* Config: reads the `tasks` group (and `limits`) of a libconfig file. NULL on error,
 * with the reason (file:line) in err. */
task_conf *task_conf_load(const char *path, char *err, size_t errlen);
/* The same from a file already read (common/cm_conf.h), named `path` in messages: nlpd
 * reads its config once and hands it to its own reader and to this one. */
struct cm_conf;
task_conf *task_conf_from(const struct cm_conf *cf, const char *path, char *err, size_t errlen);
task_conf *task_conf_default(void); /* built-in defaults, for tests without a file */
void task_conf_free(task_conf **conf);
/* limits.max_input_tokens / limits.max_new_tokens of the file (512 / 256 when absent):
 * what a caller without its own limits (nlprun) puts in task_env and sizes the engine by. */
int task_conf_max_input_tokens(const task_conf *conf);
int task_conf_max_new_tokens(const task_conf *conf);
/* limits.max_new_tokens and tasks.max_beams: what a request's options are checked
 * against (nlprun; the daemon takes the same values from the same file). */
task_opt_limits task_conf_opt_limits(const task_conf *conf);
int task_conf_max_beams(const task_conf *conf);
/* eng_ctx_default_params() grown to what these settings need: input and output limits,
 * label candidates per scoring job and tokens per label. */
eng_ctx_params task_conf_ctx_params(const task_conf *conf);

task_kind task_kind_from_name(const char *name); /* TASK_NONE if unknown */
const char *task_kind_name(task_kind kind);

/* Per-task semantics (details in docs/tasks.md, docs/models.md and each tasks/<task>.c):
 * - Over-long input (more than env->max_input_tokens): with `tasks.truncate = true`
 *   (default) summarize/text2text/classify keep the longest prefix of the text whose
 *   whole prompt fits and set truncated = 1 (translate: per sentence); with false the
 *   document fails with TASK_ETOOLONG. qa chunks the context instead of truncating.
 * - classify on a generative model: single-label probabilities are a softmax over the
 *   labels' log-likelihoods; multi_label gives each label sigmoid(logprob(label) -
 *   logprob(contrast)), the contrast being tasks.classify.multi_label_contrast ("none"),
 *   scored in the same encoder pass. On an NLI model (TASK_FAM_NLI): HF's zero-shot
 *   pipeline, one TASK_JOB_CLASSIFY per (text, label) pair (tasks/classify.c).
 * - A task the model does not serve (task_served) is TASK_EUNSUPPORTED.
 * - Empty or whitespace-only text is TASK_EINVAL.
 * - input_tokens: encoder tokens (sum over jobs; classify counts its input once);
 *   output_tokens: generated tokens without EOS. */

/* Builds the document's jobs. On error returns < 0 with the reason in `err`, and the doc
 * holds nothing to free. */
int task_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err,
                 size_t errlen);
/* After every job ran: builds the result (which the caller frees with task_result_clear)
 * and releases the doc. Always fills out->status/message. */
int task_finish(const task_env *env, const task_input *in, task_doc *doc, task_result *out);
/* Releases a doc whose jobs will not run (deadline, shutdown). */
void task_doc_clear(task_doc *doc);
void task_result_clear(task_result *r);

#endif
