/* The decoding options' one table (see task.h): what a request may set, what the tasks
 * file may set per task and what nlprun takes on its command line are checked here, so
 * that one bad value gets one message wherever it comes from. Pure: no state. */
#include "tasks/task.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

/* name, type, min, max, min excluded, cap, default. The default is what a key no task,
 * checkpoint or request sets takes (eng_gen_default_params's values); the tasks whose own
 * defaults differ say so in tasks/conf.c. */
static const task_opt_def opts[TASK_OPT_N] = {
    [TASK_OPT_MAX_NEW_TOKENS] = { "max_new_tokens", TASK_OPT_INT, 1, TASK_MAX_NEW_TOKENS, 0,
                                  TASK_CAP_MAX_NEW_TOKENS, 128 },
    [TASK_OPT_MIN_NEW_TOKENS] = { "min_new_tokens", TASK_OPT_INT, 0, TASK_MAX_NEW_TOKENS, 0,
                                  TASK_CAP_MAX_NEW_TOKENS, 0 },
    [TASK_OPT_NUM_BEAMS] = { "num_beams", TASK_OPT_INT, 1, TASK_MAX_BEAMS, 0, TASK_CAP_MAX_BEAMS,
                             1 },
    [TASK_OPT_NUM_RETURN_SEQUENCES] = { "num_return_sequences", TASK_OPT_INT, 1, ENG_MAX_RETURN, 0,
                                        TASK_CAP_NONE, 1 },
    [TASK_OPT_NO_REPEAT_NGRAM_SIZE] = { "no_repeat_ngram_size", TASK_OPT_INT, 0, 64, 0,
                                        TASK_CAP_NONE, 0 },
    [TASK_OPT_TOP_K] = { "top_k", TASK_OPT_INT, 0, 1 << 20, 0, TASK_CAP_NONE, 0 },
    [TASK_OPT_LENGTH_PENALTY] = { "length_penalty", TASK_OPT_FLOAT, -10, 10, 0, TASK_CAP_NONE,
                                  1.0 },
    [TASK_OPT_REPETITION_PENALTY] = { "repetition_penalty", TASK_OPT_FLOAT, 0, 100, 1,
                                      TASK_CAP_NONE, 1.0 },
    [TASK_OPT_TEMPERATURE] = { "temperature", TASK_OPT_FLOAT, 0, 100, 1, TASK_CAP_NONE, 1.0 },
    [TASK_OPT_TOP_P] = { "top_p", TASK_OPT_FLOAT, 0, 1, 1, TASK_CAP_NONE, 1.0 },
    [TASK_OPT_SEED] = { "seed", TASK_OPT_I64, 0, (double)INT64_MAX, 0, TASK_CAP_NONE, 0 },
    [TASK_OPT_DO_SAMPLE] = { "do_sample", TASK_OPT_BOOL, 0, 1, 0, TASK_CAP_NONE, 0 },
};

const task_opt_def *task_opt(task_opt_id id)
{
    return id >= 0 && id < TASK_OPT_N ? &opts[id] : NULL;
}

int task_opt_find(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < TASK_OPT_N; i++) {
        const char *a = opts[i].name, *b = name;
        /* nlprun's spelling: '-' for '_' */
        while (*a && (*a == *b || (*a == '_' && *b == '-'))) a++, b++;
        if (!*a && !*b) return i;
    }
    return -1;
}

/* The highest value allowed under lim. */
static double opt_max(const task_opt_def *d, const task_opt_limits *lim)
{
    double cap = 0;
    if (lim && d->cap == TASK_CAP_MAX_NEW_TOKENS) cap = lim->max_new_tokens;
    if (lim && d->cap == TASK_CAP_MAX_BEAMS) cap = lim->max_beams;
    return cap > 0 && cap < d->max ? cap : d->max;
}

static void fmt_num(char *buf, size_t cap, const task_opt_def *d, double v)
{
    if (d->type == TASK_OPT_FLOAT) snprintf(buf, cap, "%g", v);
    else if (d->type == TASK_OPT_I64 && v >= (double)INT64_MAX)
        snprintf(buf, cap, "%lld", (long long)INT64_MAX);
    else snprintf(buf, cap, "%.0f", v);
}

void task_opt_range(task_opt_id id, const task_opt_limits *lim, char *buf, size_t cap)
{
    const task_opt_def *d = task_opt(id);
    char lo[32], hi[32];
    if (!d) {
        snprintf(buf, cap, "?");
        return;
    }
    fmt_num(lo, sizeof lo, d, d->min);
    fmt_num(hi, sizeof hi, d, opt_max(d, lim));
    snprintf(buf, cap, "%c%s, %s]", d->min_open ? '(' : '[', lo, hi);
}

int task_opt_in_range(task_opt_id id, double v, const task_opt_limits *lim)
{
    const task_opt_def *d = task_opt(id);
    if (!d || isnan(v)) return 0;
    if (d->min_open ? !(v > d->min) : !(v >= d->min)) return 0;
    if (!(v <= opt_max(d, lim))) return 0;
    /* an integer option takes whole numbers only */
    return d->type == TASK_OPT_FLOAT || v == floor(v);
}

int task_opt_error(task_opt_id id, const char *prefix, const char *value,
                   const task_opt_limits *lim, char *err, size_t errlen)
{
    const task_opt_def *d = task_opt(id);
    char range[80];
    task_opt_range(id, lim, range, sizeof range);
    /* the value may be a client's text (a literal as written): kept valid UTF-8 */
    cm_fmt(err, errlen, "%s%s = %.*s is out of range %s", prefix ? prefix : "", d ? d->name : "?",
           CM_QUOTE_MAX, value, range);
    return TASK_EINVAL;
}

int task_opt_check(task_opt_id id, double v, const char *prefix, const task_opt_limits *lim,
                   char *err, size_t errlen)
{
    const task_opt_def *d = task_opt(id);
    char num[48];
    if (!d) {
        snprintf(err, errlen, "unknown decoding option %d", (int)id);
        return TASK_EINVAL;
    }
    if (task_opt_in_range(id, v, lim)) return TASK_OK;
    if (d->type == TASK_OPT_FLOAT || v != floor(v) || fabs(v) > 1e18)
        snprintf(num, sizeof num, "%g", v);
    else snprintf(num, sizeof num, "%.0f", v);
    return task_opt_error(id, prefix, num, lim, err, errlen);
}

int task_decode_opts_set(task_decode_opts *o, task_opt_id id, double v, const char *prefix,
                         const task_opt_limits *lim, char *err, size_t errlen)
{
    int rc = task_opt_check(id, v, prefix, lim, err, errlen);
    if (rc != TASK_OK) return rc;
    switch (id) {
    case TASK_OPT_MAX_NEW_TOKENS: o->max_new_tokens = (int)v; break;
    case TASK_OPT_MIN_NEW_TOKENS: o->min_new_tokens = (int)v; break;
    case TASK_OPT_NUM_BEAMS: o->num_beams = (int)v; break;
    case TASK_OPT_NUM_RETURN_SEQUENCES: o->num_return_sequences = (int)v; break;
    case TASK_OPT_NO_REPEAT_NGRAM_SIZE: o->no_repeat_ngram_size = (int)v; break;
    case TASK_OPT_TOP_K: o->top_k = (int)v; break;
    case TASK_OPT_LENGTH_PENALTY: o->length_penalty = (float)v; break;
    case TASK_OPT_REPETITION_PENALTY: o->repetition_penalty = (float)v; break;
    case TASK_OPT_TEMPERATURE: o->temperature = (float)v; break;
    case TASK_OPT_TOP_P: o->top_p = (float)v; break;
    case TASK_OPT_SEED: o->seed = v >= (double)INT64_MAX ? INT64_MAX : (int64_t)v; break;
    default:
        /* do_sample is a tasks-file key: a request samples by setting a sampling option */
        snprintf(err, errlen, "%s%s cannot be set per request", prefix ? prefix : "",
                 task_opt(id)->name);
        return TASK_EINVAL;
    }
    return TASK_OK;
}
