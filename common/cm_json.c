/* JSON requests and results as nlpc batch and the daemon's JSON fronts (HTTP, the
 * queue's json results) read and write them, on cJSON: one parser of a request object's
 * text and task fields, one renderer of a result, so a line of `nlpc batch` and an HTTP
 * answer to the same input read alike. A result's readable lines too: nlpc and nlprun
 * print a result with the same two functions (cm_json_result, cm_result_print), so the
 * same result prints the same bytes from either. Pure functions over their arguments:
 * any thread. The types are libnlpclient's (clients/libnlpclient/nlpclient.h): plain C,
 * no protobuf. */
#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clients/libnlpclient/nlpclient.h"

/* A lone UTF-16 surrogate escape (\ud800 not followed by a low one, or a low one alone)
 * is not a character: cJSON refuses it with no reason, so find it to say so. Returns its
 * byte offset, or -1. */
static long lone_surrogate(const char *s, size_t len)
{
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            in_str = !in_str;
            continue;
        }
        if (!in_str || s[i] != '\\') continue;
        if (i + 1 < len && s[i + 1] != 'u') {
            i++;
            continue;
        }
        unsigned u = 0, v = 0;
        if (i + 6 > len || sscanf(s + i + 2, "%4x", &u) != 1) return -1; /* cJSON says */
        if (u >= 0xDC00 && u <= 0xDFFF) return (long)i;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 12 > len || s[i + 6] != '\\' || s[i + 7] != 'u' ||
                sscanf(s + i + 8, "%4x", &v) != 1 || v < 0xDC00 || v > 0xDFFF)
                return (long)i;
            i += 6;
        }
        i += 5;
    }
    return -1;
}

/* The first key that appears twice in an object, at any depth; NULL if none. */
static const char *duplicate_key(const cJSON *o)
{
    for (const cJSON *a = o ? o->child : NULL; a; a = a->next) {
        if (cJSON_IsObject(o))
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && !strcmp(a->string, b->string)) return a->string;
        if (cJSON_IsObject(a) || cJSON_IsArray(a)) {
            const char *d = duplicate_key(a);
            if (d) return d;
        }
    }
    return NULL;
}

cJSON *cm_json_parse_object(const char *s, size_t len, const char *what, const char *at, char *err,
                            size_t errlen)
{
    size_t bad;
    if (!cm_utf8_valid(s, len, &bad)) {
        snprintf(err, errlen, "the %s is not valid UTF-8 (byte %zu)", what, bad + 1);
        return NULL;
    }
    long ls = lone_surrogate(s, len);
    if (ls >= 0) {
        cm_fmt(err, errlen, "a lone UTF-16 surrogate %.6s at %s %ld is not a character", s + ls, at,
               ls + 1);
        return NULL;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!o) {
        const char *e = cJSON_GetErrorPtr();
        long col = e && e >= s && e <= s + len ? (long)(e - s) + 1 : 0;
        snprintf(err, errlen, "the %s is not valid JSON (%s %ld)", what, at, col);
        return NULL;
    }
    size_t k = end ? (size_t)(end - s) : len;
    while (k < len && strchr(" \t\r\n", s[k])) k++;
    const char *dup = cJSON_IsObject(o) ? duplicate_key(o) : NULL;
    if (k < len) snprintf(err, errlen, "text after the JSON object at %s %zu", at, k + 1);
    else if (!cJSON_IsObject(o)) snprintf(err, errlen, "the %s is not a JSON object", what);
    else if (dup) cm_fmt(err, errlen, "the key \"%.64s\" appears twice", dup);
    if (k < len || !cJSON_IsObject(o) || dup) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

const char *cm_json_str(const cJSON *o, const char *key, const char *dflt, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (cJSON_IsString(v)) return v->valuestring;
    snprintf(err, errlen, "\"%s\" must be a string", key);
    return NULL;
}

int cm_split_list(char *buf, const char **out, int max)
{
    int n = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        while (*p == ' ') p++;
        size_t len = strlen(p);
        while (len && p[len - 1] == ' ') p[--len] = '\0';
        if (!*p || n == max) return -1;
        out[n++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

/* "labels": an array of non-empty strings, or one "a,b,c" string. */
static int read_labels(const cJSON *lj, const char **labels, int max, char **buf)
{
    int n = -1;
    if (cJSON_IsString(lj)) {
        free(*buf);
        *buf = strdup(lj->valuestring);
        if (*buf) n = cm_split_list(*buf, labels, max);
    } else if (cJSON_IsArray(lj)) {
        const cJSON *e;
        n = 0;
        cJSON_ArrayForEach (e, lj) {
            if (!cJSON_IsString(e) || !*e->valuestring || n == max) return -1;
            labels[n++] = e->valuestring;
        }
    }
    return n;
}

int cm_json_task_fields(const cJSON *o, nlpc_request *rq, const char **model, const char **labels,
                        int max_labels, char **buf, char *err, size_t errlen)
{
    const char *v;
    err[0] = '\0';
    if (rq->task == NLPC_TASK_QA) {
        v = cm_json_str(o, "question", rq->question, err, errlen);
        if (err[0]) return -1;
        rq->question = v;
    }
    if (rq->task == NLPC_TASK_TRANSLATE) {
        v = cm_json_str(o, "to", rq->target_lang, err, errlen);
        if (err[0]) return -1;
        rq->target_lang = v;
        v = cm_json_str(o, "from", rq->source_lang, err, errlen);
        if (err[0]) return -1;
        rq->source_lang = v;
    }
    const cJSON *lj =
        rq->task == NLPC_TASK_CLASSIFY ? cJSON_GetObjectItemCaseSensitive(o, "labels") : NULL;
    if (lj && !cJSON_IsNull(lj)) {
        int n = read_labels(lj, labels, max_labels, buf);
        if (n < 1) {
            snprintf(err, errlen,
                     "\"labels\" must be a non-empty array of non-empty strings "
                     "or \"a,b,c\" (at most %d)",
                     max_labels);
            return -1;
        }
        rq->labels = labels;
        rq->n_labels = n;
    }
    v = cm_json_str(o, "model", *model, err, errlen);
    if (err[0]) return -1;
    *model = v && *v ? v : NULL;
    return 0;
}

const char *cm_json_missing(const nlpc_request *rq)
{
    if (rq->task == NLPC_TASK_TRANSLATE && (!rq->target_lang || !*rq->target_lang)) return "to";
    if (rq->task == NLPC_TASK_CLASSIFY && rq->n_labels < 1) return "labels";
    if (rq->task == NLPC_TASK_QA && (!rq->question || !*rq->question)) return "question";
    return NULL;
}

/* ---- results ---- */

static int is_generation(int t)
{
    return t == NLPC_TASK_SUMMARIZE || t == NLPC_TASK_TRANSLATE || t == NLPC_TASK_TEXT2TEXT;
}

cJSON *cm_json_result(cJSON *o, int task, const nlpc_result *r)
{
    if (!o) o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "status", nlpc_code_name(r->code));
    if (r->code != NLPC_OK) {
        cJSON_AddStringToObject(o, "error", r->message);
        return o;
    }
    if (is_generation(task)) cJSON_AddStringToObject(o, "text", r->text);
    if (task == NLPC_TASK_QA) cJSON_AddStringToObject(o, "answer", r->answer);
    if (task == NLPC_TASK_CLASSIFY) {
        cJSON *arr = cJSON_AddArrayToObject(o, "labels");
        for (int i = 0; arr && i < r->n_labels; i++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "label", r->labels[i].label);
            cJSON_AddNumberToObject(l, "score", r->labels[i].score);
            cJSON_AddItemToArray(arr, l);
        }
    } else {
        cJSON_AddNumberToObject(o, "score", r->score);
    }
    if (r->n_hyps) {
        cJSON *arr = cJSON_AddArrayToObject(o, "hypotheses");
        for (int i = 0; arr && i < r->n_hyps; i++) {
            cJSON *h = cJSON_CreateObject();
            cJSON_AddStringToObject(h, "text", r->hyps[i].text);
            cJSON_AddNumberToObject(h, "score", r->hyps[i].score);
            cJSON_AddItemToArray(arr, h);
        }
    }
    cJSON_AddNumberToObject(o, "input_tokens", r->input_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", r->output_tokens);
    cJSON_AddBoolToObject(o, "truncated", r->truncated);
    return o;
}

void cm_result_print(FILE *f, int task, const nlpc_result *r)
{
    if (r->code != NLPC_OK) return; /* the caller says why, on stderr */
    if (task == NLPC_TASK_CLASSIFY) {
        for (int k = 0; k < r->n_labels; k++)
            fprintf(f, "%s\t%.4f\n", r->labels[k].label, r->labels[k].score);
    } else if (task == NLPC_TASK_QA) {
        fprintf(f, "%s\n", r->answer);
    } else if (r->n_hyps) {
        for (int k = 0; k < r->n_hyps; k++)
            fprintf(f, "%.4f\t%s\n", r->hyps[k].score, r->hyps[k].text);
    } else {
        fprintf(f, "%s\n", r->text);
    }
}
