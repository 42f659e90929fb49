/* summarize: the configured prompt ("summarize: {text}") and decoding defaults (beams,
 * length penalty, no-repeat n-gram, length bounds) from tasks.summarize. One generate
 * job; an over-long text is cut to fit (truncated = 1) unless tasks.truncate = false. */
#include "tasks/task_int.h"

static int summarize_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err,
                             size_t errlen)
{
    return task_prepare_single(env, TASK_SUMMARIZE, in, doc, err, errlen);
}

const task_ops task_summarize_ops = {
    .kind = TASK_SUMMARIZE,
    .name = "summarize",
    .prepare = summarize_prepare,
    .finish = task_finish_single,
};
