/* text2text: the text as the prompt (tasks.text2text.prompt, "{text}" by default) with full
 * decoding control from the client over tasks.text2text defaults. One generate
 * job; an over-long text is cut to fit (truncated = 1) unless tasks.truncate = false. */
#include "tasks/task_int.h"

static int text2text_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err,
                             size_t errlen)
{
    return task_prepare_single(env, TASK_TEXT2TEXT, in, doc, err, errlen);
}

const task_ops task_text2text_ops = {
    .kind = TASK_TEXT2TEXT,
    .name = "text2text",
    .prepare = text2text_prepare,
    .finish = task_finish_single,
};
