/* The HTTP front's JSON (see dmn_json.h). Any thread: no state of its own.
 *
 * The result objects are the ones `nlpc batch` writes (clients/nlpc/json.c): the same
 * keys in the same order, so a line of `nlpc batch` output and an HTTP answer to the
 * same input read alike. That renderer lives in the nlpc program, not in a library the
 * daemon links, hence the second copy here; tests/scripts/http_api.sh compares the two. */
#include "daemon/dmn_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "daemon/dmn_req.h"

#define JSON_MAX_LABELS 1024   /* the daemon's limits.max_labels bounds it further */

void dmn_json_req_clear(dmn_json_req *r)
{
    cJSON_Delete(r->id);
    free(r->api_key);
    free(r->pb);
    memset(r, 0, sizeof *r);
}

int dmn_json_http_status(int code)
{
    switch (code) {
    case DMN_OK: return 200;
    case DMN_INVALID_ARGUMENT:
    case DMN_MALFORMED: return 400;
    case DMN_UNKNOWN_TASK: return 404;
    case DMN_INPUT_TOO_LONG:
    case DMN_MESSAGE_TOO_LARGE:
    case DMN_TOO_MANY_DOCUMENTS: return 413;
    case DMN_OVERLOADED: return 429;
    case DMN_DEADLINE_EXCEEDED: return 504;
    case DMN_SHUTTING_DOWN: return 503;
    default: return 500;
    }
}

/* A lone UTF-16 surrogate escape is not a character; cJSON refuses it without a reason.
 * Its byte offset, or -1. */
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
        if (i + 6 > len || sscanf(s + i + 2, "%4x", &u) != 1) return -1;   /* cJSON says */
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

static cJSON *parse_object(const char *body, size_t len, char *err, size_t errlen)
{
    size_t bad;
    if (!cm_utf8_valid(body, len, &bad)) {
        snprintf(err, errlen, "the body is not valid UTF-8 (byte %zu)", bad + 1);
        return NULL;
    }
    long ls = lone_surrogate(body, len);
    if (ls >= 0) {
        cm_fmt(err, errlen, "a lone UTF-16 surrogate %.6s at byte %ld is not a character",
               body + ls, ls + 1);
        return NULL;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        long col = at && at >= body && at <= body + len ? (long)(at - body) + 1 : 0;
        snprintf(err, errlen, "the body is not valid JSON (byte %ld)", col);
        return NULL;
    }
    size_t k = end ? (size_t)(end - body) : len;
    while (k < len && strchr(" \t\r\n", body[k])) k++;
    const char *dup = cJSON_IsObject(o) ? duplicate_key(o) : NULL;
    if (k < len) snprintf(err, errlen, "text after the JSON object at byte %zu", k + 1);
    else if (!cJSON_IsObject(o)) snprintf(err, errlen, "the body is not a JSON object");
    else if (dup) cm_fmt(err, errlen, "the key \"%.64s\" appears twice", dup);
    if (k < len || !cJSON_IsObject(o) || dup) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The member `key` if it is a string (NULL when absent or null); *bad when another type. */
static const char *get_str(const cJSON *o, const char *key, int *bad, const char **which)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    if (!*bad) *which = key;
    *bad = 1;
    return NULL;
}

/* An integer member in [lo, hi] into *out (untouched when absent). */
static int get_int(const cJSON *o, const char *key, long long lo, long long hi,
                   long long *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        snprintf(err, errlen, "\"%s\" must be an integer in [%lld, %lld]", key, lo, hi);
        return -1;
    }
    *out = (long long)v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "\"%s\" must be true or false", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An array of strings (or, for "labels", one "a,b,c" string) into docs[] (pointers into
 * o; split copies in *buf). Returns the count, or -1 with the reason. */
static int get_strings(const cJSON *v, const char *key, int allow_csv, const char ***out,
                       char **buf, char *err, size_t errlen)
{
    int n = 0, cap = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
    if (allow_csv && cJSON_IsString(v)) {
        *buf = strdup(v->valuestring);
        cap = 1;
        for (const char *p = v->valuestring; *p; p++) cap += *p == ',';
    }
    if (cap > JSON_MAX_LABELS * 64) cap = JSON_MAX_LABELS * 64;
    const char **a = cap ? calloc((size_t)cap, sizeof *a) : NULL;
    if (cap && !a) goto fail;
    if (*buf) {
        for (char *p = *buf, *q; p && n < cap; p = q) {
            q = strchr(p, ',');
            if (q) *q++ = 0;
            a[n++] = p;
        }
    } else if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsString(e) || n == cap) goto fail;
            a[n++] = e->valuestring;
        }
    } else {
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(key, "labels") && !*a[i]) goto fail;
    if (n == 0) goto fail;
    *out = a;
    return n;
fail:
    free(a);
    snprintf(err, errlen, "\"%s\" must be a non-empty array of %sstrings%s", key,
             strcmp(key, "labels") ? "" : "non-empty ", allow_csv ? " or \"a,b,c\"" : "");
    return -1;
}

static int parse_options(const cJSON *o, nlpc_request *rq, char *err, size_t errlen)
{
    long long v;
    struct { const char *key; int *field; long long lo, hi; } ints[] = {
        { "max_new_tokens", &rq->opts.max_new_tokens, 1, 1 << 20 },
        { "min_new_tokens", &rq->opts.min_new_tokens, 0, 1 << 20 },
        { "num_beams", &rq->opts.num_beams, 1, 1024 },
        { "num_return_sequences", &rq->opts.num_return_sequences, 1, 1024 },
        { "no_repeat_ngram_size", &rq->opts.no_repeat_ngram_size, 0, 1024 },
        { "top_k", &rq->opts.top_k, 0, 1 << 20 },
        { "priority", &rq->priority, -100, 100 },
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = *ints[i].field;
        if (get_int(o, ints[i].key, ints[i].lo, ints[i].hi, &v, err, errlen) < 0) return -1;
        *ints[i].field = (int)v;
    }
    v = rq->deadline_ms;
    if (get_int(o, "deadline_ms", 0, 86400000, &v, err, errlen) < 0) return -1;
    rq->deadline_ms = (uint32_t)v;
    v = rq->opts.seed;
    if (get_int(o, "seed", 0, (1LL << 53), &v, err, errlen) < 0) return -1;
    rq->opts.seed = v;
    struct { const char *key; float *field; } floats[] = {
        { "length_penalty", &rq->opts.length_penalty },
        { "repetition_penalty", &rq->opts.repetition_penalty },
        { "temperature", &rq->opts.temperature },
        { "top_p", &rq->opts.top_p },
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, floats[i].key);
        if (!f || cJSON_IsNull(f)) continue;
        if (!cJSON_IsNumber(f)) {
            snprintf(err, errlen, "\"%s\" must be a number", floats[i].key);
            return -1;
        }
        *floats[i].field = (float)f->valuedouble;
    }
    if (get_bool(o, "return_hypotheses", &rq->opts.return_hypotheses, err, errlen) < 0 ||
        get_bool(o, "multi_label", &rq->multi_label, err, errlen) < 0)
        return -1;
    return 0;
}

int dmn_json_parse(nlpc_task task, int libre, const char *body, size_t len, uint64_t id,
                   dmn_json_req *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->task = task;
    cJSON *o = parse_object(body, len, err, errlen);
    const char **docs = NULL, **labels = NULL;
    char *labels_buf = NULL;
    int code = DMN_INVALID_ARGUMENT, bad = 0;
    const char *which = NULL;
    nlpc_request rq;
    if (!o) return code;
    nlpc_request_init(&rq, task);

    if (libre) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "q");
        const char *source = get_str(o, "source", &bad, &which);
        const char *target = get_str(o, "target", &bad, &which);
        const char *format = get_str(o, "format", &bad, &which);
        const char *key = get_str(o, "api_key", &bad, &which);
        if (bad) {
            snprintf(err, errlen, "\"%s\" must be a string", which);
            goto out;
        }
        if (!q || (!cJSON_IsString(q) && !cJSON_IsArray(q))) {
            snprintf(err, errlen, "Invalid request: missing q parameter (a string or an array "
                     "of strings)");
            goto out;
        }
        if (!target || !*target) {
            snprintf(err, errlen, "Invalid request: missing target parameter");
            goto out;
        }
        if (format && strcmp(format, "text")) {
            snprintf(err, errlen, "format \"%s\" is not supported: only \"text\"", format);
            goto out;
        }
        if (key && !(out->api_key = strdup(key))) goto nomem;
        out->shape = cJSON_IsString(q) ? DMN_JSON_LIBRE_ONE : DMN_JSON_LIBRE_MANY;
        if (cJSON_IsString(q)) {
            if (!(docs = malloc(sizeof *docs))) goto nomem;
            docs[0] = q->valuestring;
            rq.n_docs = 1;
        } else if ((rq.n_docs = get_strings(q, "q", 0, &docs, &labels_buf, err, errlen)) < 0) {
            goto out;
        }
        rq.target_lang = target;
        rq.source_lang = source && *source && strcmp(source, "auto") ? source : NULL;
    } else {
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(o, "id");
        if (idj && !(out->id = cJSON_Duplicate(idj, 1))) goto nomem;
        const char *text = get_str(o, "text", &bad, &which);
        const cJSON *dj = cJSON_GetObjectItemCaseSensitive(o, "documents");
        if (bad) {
            snprintf(err, errlen, "\"text\" must be a string");
            goto out;
        }
        if (text && dj) {
            snprintf(err, errlen, "give \"text\" or \"documents\", not both");
            goto out;
        }
        if (text) {
            out->shape = DMN_JSON_ONE;
            if (!(docs = malloc(sizeof *docs))) goto nomem;
            docs[0] = text;
            rq.n_docs = 1;
        } else if (dj) {
            out->shape = DMN_JSON_MANY;
            char *none = NULL;
            rq.n_docs = get_strings(dj, "documents", 0, &docs, &none, err, errlen);
            if (rq.n_docs < 0) goto out;
        } else {
            snprintf(err, errlen, "the body needs a string \"text\" (or \"documents\": an "
                     "array of strings)");
            goto out;
        }
        /* Only the task's own fields are read, as on an nlpc batch line. */
        if (task == NLPC_TASK_QA) rq.question = get_str(o, "question", &bad, &which);
        if (task == NLPC_TASK_TRANSLATE) {
            rq.target_lang = get_str(o, "to", &bad, &which);
            rq.source_lang = get_str(o, "from", &bad, &which);
        }
        if (bad) {
            snprintf(err, errlen, "\"%s\" must be a string", which);
            goto out;
        }
        const cJSON *lj = task == NLPC_TASK_CLASSIFY
                              ? cJSON_GetObjectItemCaseSensitive(o, "labels") : NULL;
        if (lj && !cJSON_IsNull(lj)) {
            rq.n_labels = get_strings(lj, "labels", 1, &labels, &labels_buf, err, errlen);
            if (rq.n_labels < 0) goto out;
            rq.labels = labels;
        }
        const char *need = task == NLPC_TASK_TRANSLATE && !rq.target_lang ? "to"
                         : task == NLPC_TASK_CLASSIFY && !rq.n_labels     ? "labels"
                         : task == NLPC_TASK_QA && !rq.question           ? "question"
                                                                          : NULL;
        if (need) {
            snprintf(err, errlen, "%s needs a \"%s\"", nlpc_task_name(task), need);
            goto out;
        }
        if (parse_options(o, &rq, err, errlen) < 0) goto out;
    }
    rq.docs = docs;
    int rc = nlpc_request_pack(&rq, id, &out->pb, &out->pb_len, err, errlen);
    if (rc == NLPC_ENOMEM) goto nomem;
    if (rc == 0) code = DMN_OK;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    code = DMN_INTERNAL;
out:
    free(docs);
    free(labels);
    free(labels_buf);
    cJSON_Delete(o);
    return code;
}

/* ---- rendering ---- */

static int is_generation(int t)
{
    return t == NLPC_TASK_SUMMARIZE || t == NLPC_TASK_TRANSLATE || t == NLPC_TASK_TEXT2TEXT;
}

cJSON *dmn_json_result(cJSON *o, int task, const nlpc_result *r)
{
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

static int is_libre(const dmn_json_req *rq)
{
    return rq && (rq->shape == DMN_JSON_LIBRE_ONE || rq->shape == DMN_JSON_LIBRE_MANY);
}

static cJSON *new_object(const dmn_json_req *rq)
{
    cJSON *o = cJSON_CreateObject();
    if (o && rq && rq->id) cJSON_AddItemToObject(o, "id", cJSON_Duplicate(rq->id, 1));
    return o;
}

static char *print_free(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *dmn_json_error(const dmn_json_req *rq, int code, const char *msg)
{
    cJSON *o = is_libre(rq) ? cJSON_CreateObject() : new_object(rq);
    if (!o) return NULL;
    if (!is_libre(rq)) cJSON_AddStringToObject(o, "status", dmn_code_name(code));
    cJSON_AddStringToObject(o, "error", msg);
    return print_free(o);
}

char *dmn_json_render(const dmn_json_req *rq, const void *frame, size_t len, int *code)
{
    nlpc_response *r = NULL;
    if (nlpc_response_decode(frame, len, &r) != 0) {
        *code = DMN_INTERNAL;
        return dmn_json_error(rq, DMN_INTERNAL, "the daemon's reply did not decode");
    }
    *code = r->code;
    const nlpc_result *one = r->n_results == 1 ? &r->results[0] : NULL;
    char *s = NULL;
    /* No per-document results (refused as a whole), or LibreTranslate's error shape. */
    if ((r->code != NLPC_OK && (is_libre(rq) || !r->n_results)) ||
        (rq->shape == DMN_JSON_ONE && !one)) {
        s = dmn_json_error(rq, r->code, r->message);
        goto out;
    }
    if (is_libre(rq)) {
        cJSON *o = cJSON_CreateObject();
        if (!o) goto out;
        if (rq->shape == DMN_JSON_LIBRE_ONE) {
            cJSON_AddStringToObject(o, "translatedText", one ? one->text : "");
        } else {
            cJSON *arr = cJSON_AddArrayToObject(o, "translatedText");
            for (int i = 0; arr && i < r->n_results; i++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(r->results[i].text));
        }
        s = print_free(o);
        goto out;
    }
    cJSON *o = new_object(rq);
    if (!o) goto out;
    if (rq->shape == DMN_JSON_ONE && one) {
        dmn_json_result(o, rq->task, one);
    } else {
        cJSON_AddStringToObject(o, "status", nlpc_code_name(r->code));
        if (r->code != NLPC_OK) cJSON_AddStringToObject(o, "error", r->message);
        cJSON *arr = cJSON_AddArrayToObject(o, "results");
        for (int i = 0; arr && i < r->n_results; i++) {
            cJSON *e = cJSON_CreateObject();
            if (e) cJSON_AddItemToArray(arr, dmn_json_result(e, rq->task, &r->results[i]));
        }
        cJSON *t = cJSON_AddObjectToObject(o, "timings");
        cJSON_AddNumberToObject(t, "queue_ms", r->queue_ms);
        cJSON_AddNumberToObject(t, "compute_ms", r->compute_ms);
        cJSON_AddNumberToObject(t, "total_ms", r->total_ms);
    }
    s = print_free(o);
out:
    nlpc_response_free(&r);
    return s;
}
