/* qa: the prompt tasks.qa.prompt ("question: {question} context: {context}"); the
 * document is the context. When the whole prompt exceeds env->max_input_tokens, the
 * context is split by tokens into chunks that overlap by tasks.qa.chunk_overlap tokens
 * (chunk bounds snapped to word starts), each chunk a generate job with the question
 * around it; the answer is the best hypothesis over all chunks by score (the engine's
 * hypothesis score: length-normalised log-prob with beams, sum of log-probs greedy),
 * and that score is the result's score. Ties go to the earlier chunk; with
 * return_hypotheses the hypotheses are the chosen chunk's.
 *
 * A question so long that less than tasks.qa.min_chunk_tokens of context fit per chunk
 * is TASK_ETOOLONG. qa is never "truncated": chunking reads the whole context. */
#include "tasks/task_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int task_qa_chunks(int n, int window, int overlap, const uint8_t *is_word_start, task_span **out)
{
    *out = NULL;
    if (window < 1) return TASK_EINVAL;
    if (overlap >= window) overlap = window - 1;
    if (overlap < 0) overlap = 0;
    int cap = n <= window ? 1 : (n - overlap) / (window - overlap) + 2;
    task_span *v = malloc((size_t)cap * sizeof *v);
    if (!v) return TASK_ENOMEM;
    int k = 0, start = 0;
    for (;;) {
        int end = start + window < n ? start + window : n;
        /* End at a word start (so no word is cut) when one is in the window's back half. */
        if (end < n && is_word_start) {
            int e = end;
            while (e > start + window / 2 && !is_word_start[e]) e--;
            if (e > start + window / 2) end = e;
        }
        if (k == cap) {
            task_span *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return TASK_ENOMEM;
            }
            v = nv;
        }
        v[k++] = (task_span){ (size_t)start, (size_t)(end - start) };
        if (end >= n) break;
        int next = end - overlap;
        if (is_word_start) {
            int s = next;
            while (s > start + 1 && !is_word_start[s]) s--;
            if (is_word_start[s]) next = s;
        }
        if (next <= start) next = start + 1;
        start = next;
    }
    *out = v;
    return k;
}

static int qa_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err,
                      size_t errlen)
{
    const task_conf *conf = env->conf;
    const char *tmpl = conf->spec[TASK_QA].prompt;
    eng_gen_params p;
    int rc;

    if (!in->question || !task_has_text(in->question, strlen(in->question))) {
        snprintf(err, errlen, "qa: the question is empty");
        return TASK_EINVAL;
    }
    if ((rc = task_gen_params_env(env, TASK_QA, &in->opts, &p, err, errlen)) < 0) return rc;

    /* The whole prompt first: most contexts fit, and then it is one exact encoding. */
    static const char *const names[] = { "question", "context" };
    const char *vals[] = { in->question, in->text };
    size_t lens[] = { strlen(in->question), in->text_len };
    size_t plen;
    char *prompt = task_fill(tmpl, names, vals, lens, 2, &plen);
    if (!prompt) goto oom;
    int32_t *ids;
    int n_ids;
    rc = task_encode(env->tok, prompt, plen, 1, &ids, &n_ids, err, errlen);
    free(prompt);
    if (rc < 0) return rc;
    if (n_ids <= env->max_input_tokens) {
        if ((rc = task_doc_jobs(doc, 1)) < 0) {
            free(ids);
            goto oom;
        }
        task_job_generate(&doc->jobs[0], ids, n_ids, &p);
        doc->input_tokens = n_ids;
        return 0;
    }
    free(ids);

    /* Chunks: the tokenizer's head ids + prefix (the prompt before {context}) + context
     * tokens + suffix + its tail ids (T5: EOS). A tokenizer whose pieces do not cross
     * whitespace (T5's SentencePiece) encodes the parts apart as it encodes the whole
     * when {context} is surrounded by spaces or the prompt's ends. */
    const char *at = strstr(tmpl, "{context}");
    size_t pre_len = (size_t)(at - tmpl);
    char *pre_t = strndup(tmpl, pre_len);
    if (!pre_t) goto oom;
    size_t l1, l2;
    char *pre = task_fill(pre_t, names, vals, lens, 1, &l1);
    char *suf = task_fill(at + strlen("{context}"), names, vals, lens, 1, &l2);
    free(pre_t);
    int32_t *pre_ids = NULL, *suf_ids = NULL, *ctx_ids = NULL;
    int n_pre = 0, n_suf = 0, n_ctx = 0;
    uint8_t *ws = NULL;
    task_span *ch = NULL;
    if (!pre || !suf) {
        free(pre);
        free(suf);
        goto oom;
    }
    rc = task_encode(env->tok, pre, l1, 0, &pre_ids, &n_pre, err, errlen);
    if (rc == 0) rc = task_encode(env->tok, suf, l2, 0, &suf_ids, &n_suf, err, errlen);
    if (rc == 0)
        rc = task_encode(env->tok, in->text, in->text_len, 0, &ctx_ids, &n_ctx, err, errlen);
    free(pre);
    free(suf);
    if (rc < 0) goto out;

    const tok_special_ids sp = tok_specials(env->tok);
    int window = env->max_input_tokens - sp.n_head - n_pre - n_suf - sp.n_tail;
    if (window < conf->qa_min_chunk) {
        snprintf(err, errlen,
                 "qa: the question leaves %d context tokens per chunk of %d, at least %d are "
                 "needed",
                 window < 0 ? 0 : window, env->max_input_tokens, conf->qa_min_chunk);
        rc = TASK_ETOOLONG;
        goto out;
    }
    ws = malloc((size_t)n_ctx + 1);
    if (!ws) goto oom_out;
    for (int i = 0; i < n_ctx; i++) ws[i] = (uint8_t)tok_word_start(env->tok, ctx_ids[i]);
    ws[n_ctx] = 1;
    int overlap = conf->qa_overlap < window / 2 ? conf->qa_overlap : window / 2;
    int nc = task_qa_chunks(n_ctx, window, overlap, ws, &ch);
    if (nc < 0) goto oom_out;
    if ((rc = task_doc_jobs(doc, nc)) < 0) goto oom_out;
    for (int c = 0; c < nc; c++) {
        int cl = (int)ch[c].len, n = sp.n_head + n_pre + cl + n_suf + sp.n_tail;
        int32_t *j = malloc((size_t)n * sizeof *j), *w = j;
        if (!j) goto oom_out;
        memcpy(w, sp.head, (size_t)sp.n_head * sizeof *j);
        memcpy(w += sp.n_head, pre_ids, (size_t)n_pre * sizeof *j);
        memcpy(w += n_pre, ctx_ids + ch[c].off, (size_t)cl * sizeof *j);
        memcpy(w += cl, suf_ids, (size_t)n_suf * sizeof *j);
        memcpy(w += n_suf, sp.tail, (size_t)sp.n_tail * sizeof *j);
        task_job_generate(&doc->jobs[c], j, n, &p);
        doc->input_tokens += n;
    }
    rc = 0;
    goto out;
oom_out:
    snprintf(err, errlen, "out of memory");
    rc = TASK_ENOMEM;
out:
    free(pre_ids);
    free(suf_ids);
    free(ctx_ids);
    free(ws);
    free(ch);
    return rc;
oom:
    snprintf(err, errlen, "out of memory");
    return TASK_ENOMEM;
}

static int qa_finish(const task_env *env, const task_input *in, task_doc *doc, task_result *out)
{
    int best = 0;
    for (int i = 1; i < doc->n_jobs; i++)
        if (doc->jobs[i].result.hyps[0].score > doc->jobs[best].result.hyps[0].score) best = i;
    /* The chosen chunk's job becomes job 0's view for the shared single-job finish. */
    task_doc view = *doc;
    view.jobs = &doc->jobs[best];
    view.n_jobs = 1;
    return task_finish_single(env, in, &view, out);
}

const task_ops task_qa_ops = {
    .kind = TASK_QA,
    .name = "qa",
    .prepare = qa_prepare,
    .finish = qa_finish,
};
