/* classify, on an NLI model (a classification head whose id2label has an "entail..."
 * label, bart-large-mnli): HF's zero-shot pipeline. Each label makes the hypothesis
 * tasks.classify.hypothesis_template ("This example is {}."); each (text, hypothesis)
 * pair is one TASK_JOB_CLASSIFY laid out as the tokenizer's pair (<s> text </s></s>
 * hypothesis </s>); scores from the entailment logits (task_zs_scores). The pair ids are
 * built from separately encoded parts (task_pair_ids), as transformers' tokenizer does.
 *
 * On a generative model: zero-shot classification by label likelihood (DESIGN.md). The prompt
 * (tasks.classify.prompt, with {text} and {labels}) is encoded once; each candidate
 * label is tokenized WITHOUT EOS and scored by the engine as the teacher-forced sum of
 * log-probs of its tokens + EOS given that input.
 *
 * Single-label (default): probabilities are a softmax over the labels' log-likelihoods;
 * they sum to 1.
 * Multi-label: each label is compared on its own with a contrast label
 * (tasks.classify.multi_label_contrast, "none"), scored in the same encoder pass:
 * p(label) = exp(lp_label) / (exp(lp_label) + exp(lp_contrast)) = sigmoid(lp_label -
 * lp_contrast). Labels are independent (they need not sum to 1): a label is "on" when
 * the model prefers it to saying "none". A label equal to the contrast gets 0.5.
 *
 * Candidates are split into scoring jobs of at most tasks.classify.labels_per_job (the
 * engine's max_cands), each job re-encoding the same input. input_tokens counts the
 * encoded input once. An over-long text is cut like any over-long input. */
#include "tasks/task_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

typedef struct classify_priv {
    /* NLI zero-shot: one classification job per label, its logits here */
    int nli;
    int num_labels, entail, contra;
    float *logits; /* [n labels][num_labels], written by the engine */
    /* label scoring */
    int n_cands;        /* labels (+1: the contrast, last, in multi-label mode) */
    int32_t **cand_ids; /* [n_cands] -> [cand_lens[i]] */
    int *cand_lens;     /* [n_cands] */
    double *logprobs;   /* [n_cands], written by the engine */
} classify_priv;

static void classify_free(void *p)
{
    classify_priv *c = p;
    for (int i = 0; c->cand_ids && i < c->n_cands; i++) free(c->cand_ids[i]);
    free(c->cand_ids);
    free(c->cand_lens);
    free(c->logprobs);
    free(c->logits);
    free(c);
}

/* The label without surrounding whitespace. */
static void trimmed(const char *s, const char **b, size_t *n)
{
    size_t len = strlen(s);
    while (len && (*s == ' ' || *s == '\t' || *s == '\n')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n')) len--;
    *b = s;
    *n = len;
}

/* ---- zero-shot on an NLI model: HF's ZeroShotClassificationPipeline ---- */

int task_pair_layout_of(const tok_model *tok, task_pair_layout *l)
{
    int32_t ids[3 * TOK_MAX_SPECIALS + 1];
    tok_special_ids sp = tok_specials(tok);
    int n = tok_encode_pair(tok, "", 0, "", 0, TOK_ADD_SPECIAL, ids, NULL,
                            (int)(sizeof ids / sizeof ids[0]));
    memset(l, 0, sizeof *l);
    if (n < sp.n_head + sp.n_tail || n > (int)(sizeof ids / sizeof ids[0]) ||
        n - sp.n_head - sp.n_tail > TOK_MAX_SPECIALS)
        return TASK_EINTERNAL;
    l->n_head = sp.n_head;
    l->n_tail = sp.n_tail;
    l->n_mid = n - sp.n_head - sp.n_tail;
    memcpy(l->head, ids, (size_t)l->n_head * sizeof *ids);
    memcpy(l->mid, ids + l->n_head, (size_t)l->n_mid * sizeof *ids);
    memcpy(l->tail, ids + l->n_head + l->n_mid, (size_t)l->n_tail * sizeof *ids);
    return 0;
}

int task_pair_ids(const task_pair_layout *l, const int32_t *a, int na, const int32_t *b, int nb,
                  int32_t *out)
{
    int32_t *w = out;
    memcpy(w, l->head, (size_t)l->n_head * sizeof *w);
    memcpy(w += l->n_head, a, (size_t)na * sizeof *w);
    memcpy(w += na, l->mid, (size_t)l->n_mid * sizeof *w);
    memcpy(w += l->n_mid, b, (size_t)nb * sizeof *w);
    memcpy(w += nb, l->tail, (size_t)l->n_tail * sizeof *w);
    return l->n_head + na + l->n_mid + nb + l->n_tail;
}

int task_nli_ids(const eng_config *m, int *entail, int *contra)
{
    *entail = *contra = -1;
    if (!m || m->num_labels < 2) return -1;
    for (int i = 0; i < m->num_labels && *entail < 0; i++)
        if (!strncasecmp(m->labels[i], "entail", 6)) *entail = i;
    if (*entail < 0) return -1;
    *contra = *entail == 0 ? m->num_labels - 1 : 0;
    return 0;
}

void task_zs_scores(const float *logits, int n, int num_labels, int entail, int contra,
                    int multi_label, double *scores)
{
    if (multi_label || n == 1) {
        for (int i = 0; i < n; i++) {
            double e = logits[i * num_labels + entail], c = logits[i * num_labels + contra];
            double mx = e > c ? e : c;
            scores[i] = exp(e - mx) / (exp(e - mx) + exp(c - mx));
        }
        return;
    }
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (logits[i * num_labels + entail] > mx) mx = logits[i * num_labels + entail];
    for (int i = 0; i < n; i++) sum += scores[i] = exp(logits[i * num_labels + entail] - mx);
    for (int i = 0; i < n; i++) scores[i] /= sum;
}

/* "This example is {}." with the label in place of its {}: malloc'ed. */
static char *hypothesis(const char *tmpl, const char *label, size_t llen, size_t *out_len)
{
    const char *at = strstr(tmpl, "{}");
    size_t pre = (size_t)(at - tmpl), post = strlen(at + 2);
    char *h = malloc(pre + llen + post + 1);
    if (!h) return NULL;
    memcpy(h, tmpl, pre);
    memcpy(h + pre, label, llen);
    memcpy(h + pre + llen, at + 2, post + 1);
    *out_len = pre + llen + post;
    return h;
}

/* One TASK_JOB_CLASSIFY per label: <s> text </s></s> hypothesis </s> (the tokenizer's
 * pair), the text cut from its end when a pair is over the input limit (HF's
 * truncation="only_first"). */
static int nli_prepare(const task_env *env, const task_input *in, task_doc *doc, classify_priv *c,
                       char *err, size_t errlen)
{
    task_pair_layout lay;
    int32_t *prem = NULL, *hyp = NULL;
    int np, nh, rc;
    int n = in->n_labels;
    c->nli = 1;
    c->num_labels = env->model->num_labels;
    task_nli_ids(env->model, &c->entail, &c->contra);
    c->logits = calloc((size_t)n * (size_t)c->num_labels, sizeof *c->logits);
    if (!c->logits || task_doc_jobs(doc, n) < 0) goto oom;
    if (task_pair_layout_of(env->tok, &lay) < 0) {
        snprintf(err, errlen, "classify: the tokenizer has no pair layout");
        return TASK_EINTERNAL;
    }
    rc = task_encode(env->tok, in->text, in->text_len, 0, &prem, &np, err, errlen);
    if (rc < 0) return rc;
    int fixed = lay.n_head + lay.n_mid + lay.n_tail;
    for (int i = 0; i < n; i++) {
        const char *b;
        size_t bl, hl;
        trimmed(in->labels[i], &b, &bl);
        char *h = hypothesis(env->conf->hypothesis_template, b, bl, &hl);
        if (!h) goto oom;
        rc = task_encode(env->tok, h, hl, 0, &hyp, &nh, err, errlen);
        free(h);
        if (rc < 0) goto out;
        int keep = env->max_input_tokens - fixed - nh;
        if (keep > np) keep = np;
        if (keep < 1 || (keep < np && !env->conf->truncate)) {
            cm_fmt(err, errlen,
                   "classify: text and label %d are %d tokens, over the limit of "
                   "%d%s",
                   i + 1, fixed + np + nh, env->max_input_tokens,
                   keep < 1 ? " (the label alone leaves no room)" : " (truncation is off)");
            rc = TASK_ETOOLONG;
            goto out;
        }
        if (keep < np) doc->truncated = 1;
        task_job *job = &doc->jobs[i];
        job->ids = malloc((size_t)(fixed + keep + nh) * sizeof *job->ids);
        if (!job->ids) goto oom;
        job->kind = TASK_JOB_CLASSIFY;
        job->n_ids = task_pair_ids(&lay, prem, keep, hyp, nh, job->ids);
        job->cls = (eng_cls_req){ .ids = job->ids,
                                  .n_ids = job->n_ids,
                                  .logits = c->logits + (size_t)i * (size_t)c->num_labels };
        doc->input_tokens += job->n_ids;
        free(hyp);
        hyp = NULL;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
    rc = TASK_ENOMEM;
out:
    free(prem);
    free(hyp);
    return rc;
}

void task_label_probs(const double *lp, int n, int multi_label, double contrast_lp, double *probs)
{
    if (multi_label) {
        for (int i = 0; i < n; i++) {
            double d = lp[i] - contrast_lp;
            probs[i] = d >= 0 ? 1.0 / (1.0 + exp(-d)) : exp(d) / (1.0 + exp(d));
        }
        return;
    }
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (lp[i] > mx) mx = lp[i];
    for (int i = 0; i < n; i++) sum += probs[i] = exp(lp[i] - mx);
    for (int i = 0; i < n; i++) probs[i] /= sum;
}

static int classify_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err,
                            size_t errlen)
{
    const task_conf *conf = env->conf;
    int rc;

    if (in->n_labels < 1 || !in->labels) {
        snprintf(err, errlen, "classify: no labels given");
        return TASK_EINVAL;
    }
    for (int i = 0; i < in->n_labels; i++) {
        const char *b;
        size_t n;
        trimmed(in->labels[i] ? in->labels[i] : "", &b, &n);
        if (!n) {
            snprintf(err, errlen, "classify: label %d is empty", i + 1);
            return TASK_EINVAL;
        }
        for (int j = 0; j < i; j++) {
            const char *bj;
            size_t nj;
            trimmed(in->labels[j] ? in->labels[j] : "", &bj, &nj);
            if (nj == n && !memcmp(b, bj, n)) {
                size_t q = cm_utf8_cut(b, n, CM_QUOTE_MAX);
                cm_fmt(err, errlen, "classify: label '%.*s%s' is given twice", (int)q, b,
                       q < n ? "..." : "");
                return TASK_EINVAL;
            }
        }
    }

    classify_priv *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    doc->priv = c;
    if (task_env_family(env) == TASK_FAM_NLI) return nli_prepare(env, in, doc, c, err, errlen);
    c->n_cands = in->n_labels + (in->multi_label ? 1 : 0);
    c->cand_ids = calloc((size_t)c->n_cands, sizeof *c->cand_ids);
    c->cand_lens = calloc((size_t)c->n_cands, sizeof *c->cand_lens);
    c->logprobs = calloc((size_t)c->n_cands, sizeof *c->logprobs);
    if (!c->cand_ids || !c->cand_lens || !c->logprobs) goto oom;

    /* The labels as the prompt lists them, and as candidates. */
    size_t sep_len = strlen(conf->label_separator), list_len = 0;
    for (int i = 0; i < in->n_labels; i++) list_len += strlen(in->labels[i]) + sep_len;
    char *list = malloc(list_len + 1);
    if (!list) goto oom;
    size_t w = 0;
    for (int i = 0; i < c->n_cands; i++) {
        const char *label = i < in->n_labels ? in->labels[i] : conf->contrast_label;
        const char *b;
        size_t n;
        trimmed(label, &b, &n);
        if (i < in->n_labels) {
            if (i) {
                memcpy(list + w, conf->label_separator, sep_len);
                w += sep_len;
            }
            memcpy(list + w, b, n);
            w += n;
        }
        rc = task_encode(env->tok, b, n, 0, &c->cand_ids[i], &c->cand_lens[i], err, errlen);
        if (rc < 0) {
            free(list);
            return rc;
        }
        if (c->cand_lens[i] < 1 || c->cand_lens[i] > conf->max_label_tokens) {
            size_t q = cm_utf8_cut(label, strlen(label), CM_QUOTE_MAX);
            cm_fmt(err, errlen, "classify: label '%.*s%s' is %d tokens; a label must be 1 to %d",
                   (int)q, label, label[q] ? "..." : "", c->cand_lens[i], conf->max_label_tokens);
            free(list);
            return TASK_EINVAL;
        }
    }
    list[w] = 0;

    static const char *const names[] = { "text", "labels" };
    const char *vals[] = { in->text, list };
    size_t lens[] = { in->text_len, w };
    int32_t *ids;
    int n_ids;
    rc = task_encode_prompt(env, task_prompt(env, TASK_CLASSIFY), names, vals, lens, 2, 0,
                            env->max_input_tokens, &ids, &n_ids, &doc->truncated, err, errlen);
    free(list);
    if (rc < 0) return rc;

    int per = conf->labels_per_job;
    int nj = (c->n_cands + per - 1) / per;
    if ((rc = task_doc_jobs(doc, nj)) < 0) {
        free(ids);
        goto oom;
    }
    for (int j = 0; j < nj; j++) {
        task_job *job = &doc->jobs[j];
        int first = j * per, cnt = c->n_cands - first < per ? c->n_cands - first : per;
        job->kind = TASK_JOB_SCORE;
        if (j == 0) {
            job->ids = ids;
        } else {
            job->ids = malloc((size_t)n_ids * sizeof *ids);
            if (!job->ids) goto oom;
            memcpy(job->ids, ids, (size_t)n_ids * sizeof *ids);
        }
        job->n_ids = n_ids;
        job->score = (eng_score_req){
            .ids = job->ids,
            .n_ids = n_ids,
            .n_cands = cnt,
            .cand_ids = (const int32_t *const *)(c->cand_ids + first),
            .cand_lens = c->cand_lens + first,
            .logprobs = c->logprobs + first,
            .status = 0,
        };
    }
    doc->input_tokens = n_ids;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return TASK_ENOMEM;
}

static int classify_finish(const task_env *env, const task_input *in, task_doc *doc,
                           task_result *out)
{
    (void)env;
    const classify_priv *c = doc->priv;
    int n = in->n_labels;
    double *probs = malloc((size_t)n * sizeof *probs);
    out->labels = calloc((size_t)n, sizeof *out->labels);
    if (!probs || !out->labels) {
        free(probs);
        return task_fail(out, TASK_ENOMEM, "out of memory");
    }
    if (c->nli) {
        task_zs_scores(c->logits, n, c->num_labels, c->entail, c->contra, in->multi_label, probs);
        for (int i = 0; i < n; i++)
            if (!isfinite(probs[i])) {
                free(probs);
                return task_fail(out, TASK_EINTERNAL, "engine: label %d scored NaN", i + 1);
            }
    } else {
        for (int i = 0; i < c->n_cands; i++)
            if (!isfinite(c->logprobs[i]) && c->logprobs[i] != -INFINITY) {
                free(probs);
                return task_fail(out, TASK_EINTERNAL, "engine: label %d scored NaN", i + 1);
            }
        task_label_probs(c->logprobs, n, in->multi_label, in->multi_label ? c->logprobs[n] : 0.0,
                         probs);
    }
    /* Best first; ties keep the given order (insertion sort: n is small). */
    int *ord = malloc((size_t)n * sizeof *ord);
    if (!ord) {
        free(probs);
        return task_fail(out, TASK_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && probs[ord[j - 1]] < probs[i]) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = i;
    }
    for (int i = 0; i < n; i++) {
        const char *b;
        size_t len;
        trimmed(in->labels[ord[i]], &b, &len);
        out->labels[i].label = strndup(b, len);
        out->labels[i].score = probs[ord[i]];
        out->n_labels = i + 1;
        if (!out->labels[i].label) break;
    }
    free(ord);
    free(probs);
    if (out->n_labels < n || !out->labels[n - 1].label)
        return task_fail(out, TASK_ENOMEM, "out of memory");
    out->text = strdup(out->labels[0].label);
    if (!out->text) return task_fail(out, TASK_ENOMEM, "out of memory");
    out->score = out->labels[0].score;
    out->output_tokens = 0;
    return TASK_OK;
}

const task_ops task_classify_ops = {
    .kind = TASK_CLASSIFY,
    .name = "classify",
    .prepare = classify_prepare,
    .finish = classify_finish,
    .free_priv = classify_free,
};
