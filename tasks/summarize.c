/* summarize: the configured prompt ("summarize: {text}") and decoding defaults (beams,
 * length penalty, no-repeat n-gram, length bounds) from tasks.summarize. One generate
 * job; an over-long text is cut to fit (truncated = 1) unless tasks.truncate = false. */
#include "tasks/task_int.h"

#include <stdlib.h>

static int summarize_prepare(const task_env *env, const task_input *in, task_doc *doc,
                             char *err, size_t errlen)
{
    static const char *const names[] = { "text" };
    const char *vals[] = { in->text };
    size_t lens[] = { in->text_len };
    eng_gen_params p;
    int32_t *ids;
    int n, rc;

    rc = task_gen_params(env->conf, TASK_SUMMARIZE, &in->opts, &p, err, errlen);
    if (rc < 0) return rc;
    rc = task_encode_prompt(env, env->conf->spec[TASK_SUMMARIZE].prompt, names, vals, lens, 1,
                            0, env->max_input_tokens, &ids, &n, &doc->truncated, err, errlen);
    if (rc < 0) return rc;
    if ((rc = task_doc_jobs(doc, 1)) < 0) {
        free(ids);
        return rc;
    }
    task_job_generate(&doc->jobs[0], ids, n, &p);
    doc->input_tokens = n;
    return 0;
}

const task_ops task_summarize_ops = {
    .kind = TASK_SUMMARIZE,
    .name = "summarize",
    .prepare = summarize_prepare,
    .finish = task_finish_single,
};
