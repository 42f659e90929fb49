/* The task registry (name -> ops) and the helpers the task modules share. Any thread:
 * nothing here keeps state between calls; task_env and task_conf are read-only. */
#include "tasks/task_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* Indexed by task_kind. */
static const task_ops *const registry[TASK_N_KINDS] = {
    [TASK_SUMMARIZE] = &task_summarize_ops, [TASK_TRANSLATE] = &task_translate_ops,
    [TASK_CLASSIFY] = &task_classify_ops,   [TASK_QA] = &task_qa_ops,
    [TASK_TEXT2TEXT] = &task_text2text_ops,
};

static const task_ops *ops_of(task_kind kind)
{
    return (int)kind > 0 && (int)kind < TASK_N_KINDS ? registry[kind] : NULL;
}

task_kind task_kind_from_name(const char *name)
{
    if (!name) return TASK_NONE;
    for (int k = 1; k < TASK_N_KINDS; k++)
        if (!strcmp(registry[k]->name, name)) return (task_kind)k;
    return TASK_NONE;
}

const char *task_kind_name(task_kind kind)
{
    const task_ops *ops = ops_of(kind);
    return ops ? ops->name : "none";
}

void task_decode_opts_unset(task_decode_opts *o)
{
    o->max_new_tokens = o->min_new_tokens = o->num_beams = o->num_return_sequences = -1;
    o->no_repeat_ngram_size = o->top_k = -1;
    o->length_penalty = o->repetition_penalty = o->temperature = o->top_p = NAN;
    o->seed = -1;
    o->return_hypotheses = 0;
}

int task_fail(task_result *out, int status, const char *fmt, ...)
{
    va_list ap;
    out->status = status;
    va_start(ap, fmt);
    cm_vfmt(out->message, sizeof out->message, fmt, ap); /* may quote client text */
    va_end(ap);
    return status;
}

static int errf(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int errf(char *err, size_t errlen, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) cm_vfmt(err, errlen, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- prepare / finish ---- */

int task_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err, size_t errlen)
{
    memset(doc, 0, sizeof *doc);
    const task_ops *ops = ops_of(in->kind);
    if (!ops) return errf(err, errlen, TASK_EINVAL, "unknown task (%d)", (int)in->kind);
    if (!in->text || !task_has_text(in->text, in->text_len))
        return errf(err, errlen, TASK_EINVAL, "%s: the text is empty",
                    in->kind == TASK_QA ? "qa: the context" : ops->name);
    if (env->max_input_tokens < 2)
        return errf(err, errlen, TASK_EINVAL, "max_input_tokens (%d) is too small",
                    env->max_input_tokens);
    if (!task_served(env, in->kind, err, errlen)) return TASK_EUNSUPPORTED;
    doc->kind = in->kind;
    int rc = ops->prepare(env, in, doc, err, errlen);
    if (rc < 0) {
        task_doc_clear(doc);
        return rc;
    }
    return 0;
}

int task_finish(const task_env *env, const task_input *in, task_doc *doc, task_result *out)
{
    memset(out, 0, sizeof *out);
    const task_ops *ops = ops_of(doc->kind);
    if (!ops) {
        task_doc_clear(doc);
        return task_fail(out, TASK_EINVAL, "unknown task (%d)", (int)doc->kind);
    }
    out->input_tokens = doc->input_tokens;
    out->truncated = doc->truncated;
    int rc = TASK_OK;
    for (int i = 0; i < doc->n_jobs && rc == TASK_OK; i++) {
        rc = task_job_status(&doc->jobs[i], out->message, sizeof out->message);
        out->status = rc;
    }
    if (rc == TASK_OK) rc = ops->finish(env, in, doc, out);
    if (rc < 0) {
        /* Keep the reason and the counts, drop partial output. */
        char msg[sizeof out->message];
        memcpy(msg, out->message, sizeof msg);
        int it = out->input_tokens, tr = out->truncated;
        task_result_clear(out);
        out->status = rc;
        memcpy(out->message, msg, sizeof msg);
        out->input_tokens = it;
        out->truncated = tr;
    } else {
        out->status = TASK_OK;
        snprintf(out->message, sizeof out->message, "ok");
    }
    task_doc_clear(doc);
    return out->status;
}

void task_doc_clear(task_doc *doc)
{
    if (!doc) return;
    for (int i = 0; i < doc->n_jobs; i++) {
        task_job *j = &doc->jobs[i];
        free(j->ids);
        if (j->kind == TASK_JOB_GENERATE) eng_gen_result_clear(&j->result);
    }
    free(doc->jobs);
    const task_ops *ops = ops_of(doc->kind);
    if (doc->priv && ops && ops->free_priv) ops->free_priv(doc->priv);
    memset(doc, 0, sizeof *doc);
}

void task_result_clear(task_result *r)
{
    if (!r) return;
    free(r->text);
    for (int i = 0; i < r->n_labels; i++) free(r->labels[i].label);
    free(r->labels);
    for (int i = 0; i < r->n_hyps; i++) free(r->hyps[i].text);
    free(r->hyps);
    memset(r, 0, sizeof *r);
}

/* ---- templates ---- */

/* Length of the placeholder name at t (just after '{'), or -1 if t does not start one. */
static int placeholder(const char *t)
{
    int n = 0;
    while ((t[n] >= 'a' && t[n] <= 'z') || t[n] == '_') n++;
    return n > 0 && t[n] == '}' ? n : -1;
}

static int name_index(const char *t, int len, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if ((int)strlen(names[i]) == len && !strncmp(names[i], t, (size_t)len)) return i;
    return -1;
}

int task_template_check(const char *tmpl, const char *const *names, int n, const char *required,
                        char *err, size_t errlen)
{
    int seen = 0;
    for (const char *t = tmpl; *t; t++) {
        if (*t != '{') continue;
        int len = placeholder(t + 1);
        if (len < 0) continue; /* a literal brace */
        if (name_index(t + 1, len, names, n) < 0) {
            errf(err, errlen, TASK_EINVAL, "unknown placeholder {%.*s}", len, t + 1);
            return 0;
        }
        if (!strncmp(t + 1, required, (size_t)len) && strlen(required) == (size_t)len) seen++;
        t += len + 1;
    }
    if (!seen) {
        errf(err, errlen, TASK_EINVAL, "the prompt must contain {%s}", required);
        return 0;
    }
    return 1;
}

char *task_fill(const char *tmpl, const char *const *names, const char *const *vals,
                const size_t *vlens, int n, size_t *out_len)
{
    /* Two passes: measure, then write. */
    char *out = NULL;
    size_t len = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t w = 0;
        for (const char *t = tmpl; *t; t++) {
            int pl = *t == '{' ? placeholder(t + 1) : -1;
            int idx = pl > 0 ? name_index(t + 1, pl, names, n) : -1;
            if (pl > 0 && idx < 0) {
                free(out);
                return NULL;
            }
            if (idx >= 0) {
                if (out) memcpy(out + w, vals[idx], vlens[idx]);
                w += vlens[idx];
                t += pl + 1;
            } else {
                if (out) out[w] = *t;
                w++;
            }
        }
        if (!out) {
            len = w;
            out = malloc(len + 1);
            if (!out) return NULL;
        } else {
            out[w] = 0;
        }
    }
    if (out_len) *out_len = len;
    return out;
}

int task_has_text(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f') return 1;
    }
    return 0;
}

/* ---- tokenizing ---- */

int task_encode(const tok_model *tok, const char *text, size_t len, int add_special, int32_t **ids,
                int *n, char *err, size_t errlen)
{
    return task_encode_opt(tok, text, len, add_special, NULL, ids, n, err, errlen);
}

int task_encode_opt(const tok_model *tok, const char *text, size_t len, int add_special,
                    const tok_encode_opts *opts, int32_t **ids, int *n, char *err, size_t errlen)
{
    tok_encode_opts o = opts ? *opts : tok_encode_default_opts();
    o.flags = add_special ? o.flags | TOK_ADD_SPECIAL : o.flags & ~TOK_ADD_SPECIAL;
    /* A first guess that fits most texts; a longer encoding is asked for again. */
    size_t cap0 = 2 * len + 4;
    if (cap0 > (size_t)1 << 30) return errf(err, errlen, TASK_ETOOLONG, "the text is too large");
    int cap = (int)cap0;
    int32_t *buf = malloc((size_t)cap * sizeof *buf);
    if (!buf) return errf(err, errlen, TASK_ENOMEM, "out of memory");
    int r = tok_encode_opt(tok, text, len, &o, buf, NULL, cap);
    if (r > cap) {
        int32_t *nb = realloc(buf, (size_t)r * sizeof *buf);
        if (!nb) {
            free(buf);
            return errf(err, errlen, TASK_ENOMEM, "out of memory");
        }
        buf = nb;
        cap = r;
        r = tok_encode_opt(tok, text, len, &o, buf, NULL, cap);
    }
    if (r < 0) {
        free(buf);
        if (r == TOK_EINVAL) return errf(err, errlen, TASK_EINVAL, "the text is not valid UTF-8");
        return errf(err, errlen, r == TOK_ENOMEM ? TASK_ENOMEM : TASK_EINTERNAL,
                    "tokenizer error %d", r);
    }
    *ids = buf;
    *n = r;
    return 0;
}

/* Fills the template with vals, names[var] cut to cut bytes, and tokenizes with the
 * special ids. */
static int encode_cut(const task_env *env, const tok_encode_opts *opts, const char *tmpl,
                      const char *const *names, const char *const *vals, const size_t *vlens, int n,
                      int var, size_t cut, int32_t **ids, int *n_ids, char *err, size_t errlen)
{
    size_t lens[8];
    if (n > 8) return errf(err, errlen, TASK_EINTERNAL, "too many placeholders");
    memcpy(lens, vlens, (size_t)n * sizeof *lens);
    if (var >= 0) lens[var] = cut;
    size_t plen;
    char *p = task_fill(tmpl, names, vals, lens, n, &plen);
    if (!p) return errf(err, errlen, TASK_ENOMEM, "out of memory (or a bad prompt template)");
    int rc = task_encode_opt(env->tok, p, plen, 1, opts, ids, n_ids, err, errlen);
    free(p);
    return rc;
}

int task_encode_prompt(const task_env *env, const char *tmpl, const char *const *names,
                       const char *const *vals, const size_t *vlens, int n, int var, int max_tokens,
                       int32_t **ids, int *n_ids, int *truncated, char *err, size_t errlen)
{
    return task_encode_prompt_opt(env, NULL, tmpl, names, vals, vlens, n, var, max_tokens, ids,
                                  n_ids, truncated, err, errlen);
}

int task_encode_prompt_opt(const task_env *env, const tok_encode_opts *opts, const char *tmpl,
                           const char *const *names, const char *const *vals, const size_t *vlens,
                           int n, int var, int max_tokens, int32_t **ids, int *n_ids,
                           int *truncated, char *err, size_t errlen)
{
    *truncated = 0;
    int rc = encode_cut(env, opts, tmpl, names, vals, vlens, n, var, var >= 0 ? vlens[var] : 0, ids,
                        n_ids, err, errlen);
    if (rc < 0 || *n_ids <= max_tokens) return rc;
    int full = *n_ids;
    free(*ids);
    *ids = NULL;
    if (!env->conf->truncate || var < 0)
        return errf(err, errlen, TASK_ETOOLONG,
                    "the input is %d tokens, over the limit of %d (truncation is off)", full,
                    max_tokens);

    /* Longest prefix of vals[var] that fits: binary search over byte lengths at UTF-8
     * boundaries. lo always fits, hi never does. A first guess in proportion to the
     * token counts narrows the range to a few tokenizations of a short prefix. */
    const char *v = vals[var];
    size_t lo = 0, hi = vlens[var];
    int32_t *t = NULL;
    int nt = 0;
    rc = encode_cut(env, opts, tmpl, names, vals, vlens, n, var, 0, &t, &nt, err, errlen);
    if (rc < 0) return rc;
    free(t);
    if (nt > max_tokens)
        return errf(err, errlen, TASK_ETOOLONG,
                    "the prompt without the text is already %d tokens, over the limit of %d", nt,
                    max_tokens);
    size_t guess = (size_t)((double)hi * max_tokens / full * 1.25);
    for (int it = 0; hi - lo > 1 && it < 64; it++) {
        size_t mid = it == 0 && guess > lo && guess < hi ? guess : lo + (hi - lo) / 2;
        while (mid > lo && ((unsigned char)v[mid] & 0xC0) == 0x80) mid--;
        if (mid == lo) {
            /* No character boundary strictly inside (lo, hi) below the midpoint: try
             * above it. */
            mid = lo + (hi - lo) / 2 + 1;
            while (mid < hi && ((unsigned char)v[mid] & 0xC0) == 0x80) mid++;
            if (mid >= hi) break;
        }
        rc = encode_cut(env, opts, tmpl, names, vals, vlens, n, var, mid, &t, &nt, err, errlen);
        if (rc < 0) return rc;
        free(t);
        if (nt <= max_tokens) lo = mid;
        else hi = mid;
    }
    rc = encode_cut(env, opts, tmpl, names, vals, vlens, n, var, lo, ids, n_ids, err, errlen);
    if (rc < 0) return rc;
    *truncated = 1;
    return 0;
}

/* ---- decoding parameters ---- */

static int gen_params(const task_conf *conf, task_kind kind, const task_model_info *mi,
                      const task_decode_opts *o, eng_gen_params *p, char *err, size_t errlen);

int task_gen_params(const task_conf *conf, task_kind kind, const task_decode_opts *o,
                    eng_gen_params *p, char *err, size_t errlen)
{
    static const task_model_info none = { 0 };
    return gen_params(conf, kind, &none, o, p, err, errlen);
}

int task_gen_params_env(const task_env *env, task_kind kind, const task_decode_opts *o,
                        eng_gen_params *p, char *err, size_t errlen)
{
    return gen_params(env->conf, kind, &env->info, o, p, err, errlen);
}

static int gen_params(const task_conf *conf, task_kind kind, const task_model_info *mi,
                      const task_decode_opts *o, eng_gen_params *p, char *err, size_t errlen)
{
    /* The task's defaults, with what the checkpoint states in place of those the
     * operator's file does not set. */
    task_dec_defaults dd = conf->spec[kind].dec;
    const task_dec_defaults *d = &dd;
    unsigned from_model = mi->known ? mi->gen_set & ~conf->spec[kind].dec_set : 0;
    const eng_gen_params *g = &mi->gen;
    if (mi->known && mi->hf_base) {
        /* Beneath the checkpoint: transformers' defaults, not T5's task defaults. */
        eng_gen_params h = eng_gen_default_params();
        unsigned op = conf->spec[kind].dec_set;
        if (!(op & ENG_GEN_SET_MIN_NEW)) dd.min_new_tokens = h.min_new_tokens;
        if (!(op & ENG_GEN_SET_BEAMS)) dd.num_beams = h.num_beams;
        if (!(op & ENG_GEN_SET_LENGTH_PENALTY)) dd.length_penalty = h.length_penalty;
        if (!(op & ENG_GEN_SET_NO_REPEAT)) dd.no_repeat_ngram_size = h.no_repeat_ngram_size;
        if (!(op & ENG_GEN_SET_REPETITION_PENALTY)) dd.repetition_penalty = h.repetition_penalty;
    }
    if (from_model & ENG_GEN_SET_MAX_NEW) dd.max_new_tokens = g->max_new_tokens;
    if (from_model & ENG_GEN_SET_MIN_NEW) dd.min_new_tokens = g->min_new_tokens;
    if (from_model & ENG_GEN_SET_BEAMS) dd.num_beams = g->num_beams;
    if (from_model & ENG_GEN_SET_LENGTH_PENALTY) dd.length_penalty = g->length_penalty;
    if (from_model & ENG_GEN_SET_NO_REPEAT) dd.no_repeat_ngram_size = g->no_repeat_ngram_size;
    if (from_model & ENG_GEN_SET_REPETITION_PENALTY) dd.repetition_penalty = g->repetition_penalty;
    if (dd.num_beams > conf->max_beams) dd.num_beams = conf->max_beams;
    *p = eng_gen_default_params();
    /* What only the checkpoint says (no tasks key): stopping rule, forced and banned
     * tokens. */
    if (mi->known) {
        if (mi->gen_set & ENG_GEN_SET_EARLY_STOPPING) p->early_stopping = g->early_stopping;
        if (mi->gen_set & ENG_GEN_SET_FORCED_BOS) p->forced_bos_token_id = g->forced_bos_token_id;
        if (mi->gen_set & ENG_GEN_SET_FORCED_EOS) p->forced_eos_token_id = g->forced_eos_token_id;
        if (mi->gen_set & ENG_GEN_SET_BAD_WORDS) {
            p->bad_words = g->bad_words;
            p->bad_off = g->bad_off;
            p->n_bad_words = g->n_bad_words;
        }
    }

    p->max_new_tokens = d->max_new_tokens;
    if (p->max_new_tokens > conf->max_new_tokens_limit)
        p->max_new_tokens = conf->max_new_tokens_limit;
    if (o->max_new_tokens >= 0) {
        if (o->max_new_tokens < 1 || o->max_new_tokens > conf->max_new_tokens_limit)
            return errf(err, errlen, TASK_EINVAL, "max_new_tokens must be in [1, %d], not %d",
                        conf->max_new_tokens_limit, o->max_new_tokens);
        p->max_new_tokens = o->max_new_tokens;
    }
    /* A configured minimum yields to a smaller client maximum; a client's own pair must
     * be consistent. */
    p->min_new_tokens = d->min_new_tokens;
    if (o->min_new_tokens >= 0) {
        if (o->min_new_tokens > p->max_new_tokens)
            return errf(err, errlen, TASK_EINVAL,
                        "min_new_tokens (%d) must not exceed max_new_tokens (%d)",
                        o->min_new_tokens, p->max_new_tokens);
        p->min_new_tokens = o->min_new_tokens;
    }
    if (p->min_new_tokens > p->max_new_tokens) p->min_new_tokens = p->max_new_tokens;

    p->num_beams = d->num_beams;
    if (o->num_beams >= 0) {
        if (o->num_beams < 1 || o->num_beams > conf->max_beams)
            return errf(err, errlen, TASK_EINVAL, "num_beams must be in [1, %d], not %d",
                        conf->max_beams, o->num_beams);
        p->num_beams = o->num_beams;
    }

    p->length_penalty = (float)d->length_penalty;
    if (!isnan(o->length_penalty)) {
        if (!isfinite(o->length_penalty) || fabsf(o->length_penalty) > 10)
            return errf(err, errlen, TASK_EINVAL, "length_penalty must be in [-10, 10]");
        p->length_penalty = o->length_penalty;
    }
    p->no_repeat_ngram_size = d->no_repeat_ngram_size;
    if (o->no_repeat_ngram_size >= 0) {
        if (o->no_repeat_ngram_size > 64)
            return errf(err, errlen, TASK_EINVAL, "no_repeat_ngram_size must be in [0, 64]");
        p->no_repeat_ngram_size = o->no_repeat_ngram_size;
    }
    p->repetition_penalty = (float)d->repetition_penalty;
    if (!isnan(o->repetition_penalty)) {
        if (!(o->repetition_penalty > 0) || !isfinite(o->repetition_penalty))
            return errf(err, errlen, TASK_EINVAL, "repetition_penalty must be > 0");
        p->repetition_penalty = o->repetition_penalty;
    }
    /* Sampling: on by config, or by the client setting any sampling option. */
    p->do_sample = d->do_sample;
    p->temperature = (float)d->temperature;
    if (!isnan(o->temperature)) {
        if (!(o->temperature > 0) || !isfinite(o->temperature))
            return errf(err, errlen, TASK_EINVAL, "temperature must be > 0");
        p->temperature = o->temperature;
        p->do_sample = 1;
    }
    p->top_k = d->top_k;
    if (o->top_k >= 0) {
        p->top_k = o->top_k;
        p->do_sample = 1;
    }
    p->top_p = (float)d->top_p;
    if (!isnan(o->top_p)) {
        if (!(o->top_p > 0 && o->top_p <= 1))
            return errf(err, errlen, TASK_EINVAL, "top_p must be in (0, 1]");
        p->top_p = o->top_p;
        p->do_sample = 1;
    }
    p->seed = (uint64_t)d->seed;
    if (o->seed >= 0) {
        p->seed = (uint64_t)o->seed;
        p->do_sample = 1;
    }
    /* Sampling draws from one row per returned sequence; beam sampling is not supported.
     * A task whose configured default is beam search (summarize) samples with one beam
     * when the client asks for sampling without choosing beams. */
    if (p->do_sample && p->num_beams > 1) {
        if (o->num_beams >= 0)
            return errf(err, errlen, TASK_EINVAL,
                        "sampling (temperature, top_k, top_p or seed) needs num_beams = 1, "
                        "not %d: beam sampling is not supported",
                        o->num_beams);
        p->num_beams = 1;
    }
    /* How many sequences come back: up to num_beams with beam search, up to
     * ENG_MAX_RETURN independent samples when sampling, one with greedy search.
     * return_hypotheses without a count: every beam. */
    int most = p->do_sample ? ENG_MAX_RETURN : p->num_beams;
    int nret = o->num_return_sequences >= 0 ? o->num_return_sequences
               : o->return_hypotheses       ? p->num_beams
                                            : d->num_return_sequences;
    if (nret > most) {
        if (o->num_return_sequences >= 0)
            return errf(err, errlen, TASK_EINVAL, "num_return_sequences (%d) must be in [1, %d]%s",
                        nret, most, p->do_sample ? "" : " (num_beams)");
        nret = most;
    }
    if (nret < 1) return errf(err, errlen, TASK_EINVAL, "num_return_sequences must be at least 1");
    p->num_return_sequences = nret;
    return 0;
}

/* ---- jobs ---- */

int task_doc_jobs(task_doc *doc, int n)
{
    doc->jobs = calloc((size_t)(n > 0 ? n : 1), sizeof *doc->jobs);
    if (!doc->jobs) return TASK_ENOMEM;
    doc->n_jobs = n;
    return 0;
}

void task_job_generate(task_job *job, int32_t *ids, int n_ids, const eng_gen_params *p)
{
    job->kind = TASK_JOB_GENERATE;
    job->ids = ids;
    job->n_ids = n_ids;
    job->params = *p;
    memset(&job->result, 0, sizeof job->result);
    job->gen = (eng_gen_req){
        .ids = job->ids, .n_ids = n_ids, .params = &job->params, .out = &job->result, .status = 0
    };
}

static int from_eng(int st)
{
    switch (st) {
    case ENG_EINVAL: return TASK_EINVAL;
    case ENG_ENOMEM: return TASK_ENOMEM;
    case ENG_ETOOLONG: return TASK_ETOOLONG;
    case ENG_ENONFINITE: return TASK_EINTERNAL; /* damaged weights: never OK with no text */
    default: return TASK_EINTERNAL;
    }
}

int task_job_status(const task_job *job, char *msg, size_t msglen)
{
    int st = job->kind == TASK_JOB_GENERATE   ? job->gen.status
             : job->kind == TASK_JOB_SCORE    ? job->score.status
             : job->kind == TASK_JOB_CLASSIFY ? job->cls.status
                                              : ENG_EINVAL;
    if (st != 0) return errf(msg, msglen, from_eng(st), "engine: %s", eng_strerror(st));
    if (job->kind == TASK_JOB_GENERATE && job->result.n_hyps < 1)
        return errf(msg, msglen, TASK_EINTERNAL, "engine: no hypothesis returned");
    return TASK_OK;
}

char *task_hyp_text(const tok_model *tok, const eng_hyp *h, int *n_out)
{
    int n = h->n_tokens;
    if (n > 0 && h->tokens[n - 1] == tok_eos_id(tok)) n--;
    if (n_out) *n_out = n;
    /* Checkpoints pad the vocabulary past the tokenizer's pieces and sentinels (T5:
     * 32128 vs 32100); an untrained model may emit those ids. They have no text: drop
     * them rather than fail the document. */
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    size_t cap = (size_t)n * 16 + 16;
    char *s = malloc(cap);
    if (!ids || !s) goto fail;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (tok_piece(tok, h->tokens[i])) ids[m++] = h->tokens[i];
    int r = tok_decode(tok, ids, m, s, cap);
    if (r >= 0 && (size_t)r >= cap) {
        cap = (size_t)r + 1;
        char *ns = realloc(s, cap);
        if (!ns) goto fail;
        s = ns;
        r = tok_decode(tok, ids, m, s, cap);
    }
    if (r < 0) goto fail;
    free(ids);
    return s;
fail:
    free(ids);
    free(s);
    return NULL;
}

int task_prepare_single(const task_env *env, task_kind kind, const task_input *in, task_doc *doc,
                        char *err, size_t errlen)
{
    static const char *const names[] = { "text" };
    const char *vals[] = { in->text };
    size_t lens[] = { in->text_len };
    eng_gen_params p;
    int32_t *ids;
    int n, rc;

    rc = task_gen_params_env(env, kind, &in->opts, &p, err, errlen);
    if (rc < 0) return rc;
    rc = task_encode_prompt(env, task_prompt(env, kind), names, vals, lens, 1, 0,
                            env->max_input_tokens, &ids, &n, &doc->truncated, err, errlen);
    if (rc < 0) return rc;
    if ((rc = task_doc_jobs(doc, 1)) < 0) {
        free(ids);
        return rc;
    }
    task_job_generate(&doc->jobs[0], ids, n, &p);
    doc->input_tokens = n;
    return 0;
}

int task_finish_single(const task_env *env, const task_input *in, task_doc *doc, task_result *out)
{
    const eng_gen_result *r = &doc->jobs[0].result;
    int n_out;
    out->text = task_hyp_text(env->tok, &r->hyps[0], &n_out);
    if (!out->text) return task_fail(out, TASK_EINTERNAL, "cannot decode the output tokens");
    out->score = r->hyps[0].score;
    out->output_tokens = n_out;
    if (!in->opts.return_hypotheses) return TASK_OK;
    out->hyps = calloc((size_t)r->n_hyps, sizeof *out->hyps);
    if (!out->hyps) return task_fail(out, TASK_ENOMEM, "out of memory");
    for (int i = 0; i < r->n_hyps; i++) {
        out->hyps[i].text = task_hyp_text(env->tok, &r->hyps[i], NULL);
        out->hyps[i].score = r->hyps[i].score;
        out->n_hyps = i + 1;
        if (!out->hyps[i].text)
            return task_fail(out, TASK_EINTERNAL, "cannot decode the output tokens");
    }
    return TASK_OK;
}
