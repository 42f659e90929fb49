/* Model families as the tasks see them: which tasks a checkpoint serves, its prompts,
 * and the checkpoint's own generation settings beneath the operator's and the client's
 * (docs/models.md). Any thread: task_env is read-only once task_env_set_model() filled
 * it at load. */
#include "tasks/task_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

/* "xx" from tokenizer_config.json's key, if it is a short string. */
static void json_lang(const cJSON *o, const char *key, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) < cap)
        snprintf(out, cap, "%s", v->valuestring);
}

/* Marian's pair: tokenizer_config.json (source_lang, target_lang), else the directory's
 * name opus-mt-SRC-TGT (Helsinki-NLP's naming; SRC and TGT have no '-' of their own
 * except for the group names, e.g. opus-mt-en-ROMANCE). */
static void marian_pair(const char *dir, task_model_info *info)
{
    char path[4096];
    char *buf = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (cm_read_file(path, 1 << 20, &buf, &len) == 0) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        if (cJSON_IsObject(o)) {
            json_lang(o, "source_lang", info->pair_src, sizeof info->pair_src);
            json_lang(o, "target_lang", info->pair_tgt, sizeof info->pair_tgt);
        }
        cJSON_Delete(o);
        free(buf);
    }
    if (info->pair_src[0] && info->pair_tgt[0]) return;
    info->pair_src[0] = info->pair_tgt[0] = 0;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    const char *base = dir + b;
    size_t blen = n - b;
    if (blen < 8 || strncmp(base, "opus-mt-", 8)) return;
    const char *s = base + 8, *dash = memchr(s, '-', blen - 8);
    if (!dash) return;
    size_t ls = (size_t)(dash - s), lt = blen - 8 - ls - 1;
    if (!ls || !lt || ls >= sizeof info->pair_src || lt >= sizeof info->pair_tgt) return;
    memcpy(info->pair_src, s, ls);
    info->pair_src[ls] = 0;
    memcpy(info->pair_tgt, dash + 1, lt);
    info->pair_tgt[lt] = 0;
}

void task_env_set_model(task_env *env, const char *model_dir, const eng_model *model)
{
    memset(&env->info, 0, sizeof env->info);
    env->model = eng_model_config(model);
    env->info.known = 1;
    env->info.gen = eng_model_gen_params(model, &env->info.gen_set);
    if (!strcmp(env->model->model_type, "marian")) marian_pair(model_dir, &env->info);
    env->info.hf_base = task_env_family(env) != TASK_FAM_T5;
    /* Inputs are cut to what the model's position table can compute. */
    if (env->max_input_tokens > 0)
        env->max_input_tokens = eng_model_max_len(model, env->max_input_tokens);
}

/* 1 if word is one of the space-separated words of list. */
static int in_list(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, " ,");
        if (n && n == wl && !strncmp(p, word, n)) return 1;
        p += n;
    }
    return 0;
}

task_family task_env_family(const task_env *env)
{
    const eng_config *m = env->model;
    if (!m) return TASK_FAM_T5;
    if (m->num_labels > 0) {
        int e, c;
        return task_nli_ids(m, &e, &c) == 0 ? TASK_FAM_NLI : TASK_FAM_OTHER_CLS;
    }
    if (in_list(env->conf->prompted_types, m->model_type)) return TASK_FAM_T5;
    if (!strcmp(m->model_type, "marian")) return TASK_FAM_MARIAN;
    if (tok_n_langs(env->tok) > 0) return TASK_FAM_MANY;
    return TASK_FAM_BART;
}

const char *task_prompt(const task_env *env, task_kind kind)
{
    return task_env_family(env) == TASK_FAM_T5 ? env->conf->spec[kind].prompt : "{text}";
}

int task_served(const task_env *env, task_kind kind, char *why, size_t whylen)
{
    task_family f = task_env_family(env);
    int ok;
    const char *what = "";
    switch (f) {
    case TASK_FAM_T5: ok = 1; break;
    case TASK_FAM_BART:
        ok = kind == TASK_SUMMARIZE || kind == TASK_CLASSIFY;
        what = "it summarizes and classifies";
        break;
    case TASK_FAM_NLI:
        ok = kind == TASK_CLASSIFY;
        what = "a sequence-classification (NLI) model only classifies";
        break;
    case TASK_FAM_MARIAN:
    case TASK_FAM_MANY:
        ok = kind == TASK_TRANSLATE || kind == TASK_CLASSIFY;
        what = "a translation model translates and classifies";
        break;
    default:
        ok = 0;
        what = "its classification head has no entailment label (id2label), so no task "
               "can use it";
        break;
    }
    if (!ok && why)
        cm_fmt(why, whylen,
               "%s: not supported by this model (model_type %s): %s; "
               "the daemon's health reply (tasks) lists what it serves",
               task_kind_name(kind), env->model ? env->model->model_type : "t5", what);
    return ok;
}

void task_served_list(const task_env *env, char *buf, size_t cap)
{
    size_t w = 0;
    if (cap) buf[0] = 0;
    for (int k = 1; k < TASK_N_KINDS; k++)
        if (task_served(env, (task_kind)k, NULL, 0) && w < cap)
            w += (size_t)snprintf(buf + w, cap - w, "%s%s", w ? " " : "",
                                  task_kind_name((task_kind)k));
}
