/* The HTTP front's JSON (see dmn_json.h). Any thread: no state of its own.
 *
 * A body is read and a result written by common/cm_json.c, as `nlpc batch` reads a line
 * and writes its answer, so the two read alike (tests/scripts/http_api.sh compares them);
 * what is the HTTP front's own (documents, LibreTranslate, top-level decoding options,
 * the answer's shapes) is here. */
#include "daemon/dmn_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "daemon/dmn_req.h"

#define JSON_MAX_LABELS 1024 /* the daemon's limits.max_labels bounds it further */

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
    case DMN_UNKNOWN_TASK:
    case DMN_UNKNOWN_MODEL: return 404;
    case DMN_UNSUPPORTED: return 422; /* a task the model cannot do: the request is fine */
    case DMN_INPUT_TOO_LONG:
    case DMN_MESSAGE_TOO_LARGE:
    case DMN_TOO_MANY_DOCUMENTS: return 413;
    case DMN_OVERLOADED: return 429;
    case DMN_DEADLINE_EXCEEDED: return 504;
    case DMN_SHUTTING_DOWN: return 503;
    default: return 500;
    }
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
static int get_int(const cJSON *o, const char *key, long long lo, long long hi, long long *out,
                   char *err, size_t errlen)
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

/* An array of strings ("documents", LibreTranslate's "q") into *out (pointers into v; the
 * array is the caller's to free). Returns the count, or -1 with the reason. */
static int get_strings(const cJSON *v, const char *key, const char ***out, char *err, size_t errlen)
{
    int n = 0, cap = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
    const char **a = cap ? calloc((size_t)cap, sizeof *a) : NULL;
    const cJSON *e;
    if (cap && !a) goto fail;
    cJSON_ArrayForEach (e, v) {
        if (!cJSON_IsString(e) || n == cap) goto fail;
        a[n++] = e->valuestring;
    }
    if (n == 0) goto fail;
    *out = a;
    return n;
fail:
    free(a);
    snprintf(err, errlen, "\"%s\" must be a non-empty array of strings", key);
    return -1;
}

static int parse_options(const cJSON *o, nlpc_request *rq, char *err, size_t errlen)
{
    long long v;
    struct {
        const char *key;
        int *field;
        long long lo, hi;
    } ints[] = {
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
    struct {
        const char *key;
        float *field;
    } floats[] = {
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
    cJSON *o = cm_json_parse_object(body, len, "body", "byte", err, errlen);
    const char **docs = NULL, *labels[JSON_MAX_LABELS], *model = NULL;
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
        model = get_str(o, "model", &bad, &which);
        if (bad) {
            snprintf(err, errlen, "\"%s\" must be a string", which);
            goto out;
        }
        if (!q || (!cJSON_IsString(q) && !cJSON_IsArray(q))) {
            snprintf(err, errlen,
                     "Invalid request: missing q parameter (a string or an array "
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
        } else if ((rq.n_docs = get_strings(q, "q", &docs, err, errlen)) < 0) {
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
            rq.n_docs = get_strings(dj, "documents", &docs, err, errlen);
            if (rq.n_docs < 0) goto out;
        } else {
            snprintf(err, errlen,
                     "the body needs a string \"text\" (or \"documents\": an "
                     "array of strings)");
            goto out;
        }
        /* The task's own fields and "model", as on an nlpc batch line (common/cm_json.c). */
        if (cm_json_task_fields(o, &rq, &model, labels, JSON_MAX_LABELS, &labels_buf, err, errlen) <
            0)
            goto out;
        const char *need = cm_json_missing(&rq);
        if (need) {
            snprintf(err, errlen, "%s needs a \"%s\"", nlpc_task_name(task), need);
            goto out;
        }
        if (parse_options(o, &rq, err, errlen) < 0) goto out;
    }
    rq.docs = docs;
    int rc = nlpc_request_pack_model(&rq, model, id, &out->pb, &out->pb_len, err, errlen);
    if (rc == NLPC_ENOMEM) goto nomem;
    if (rc == 0) code = DMN_OK;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    code = DMN_INTERNAL;
out:
    free(docs);
    free(labels_buf);
    cJSON_Delete(o);
    return code;
}

/* ---- rendering ---- */

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
        cm_json_result(o, rq->task, one);
    } else {
        cJSON_AddStringToObject(o, "status", nlpc_code_name(r->code));
        if (r->code != NLPC_OK) cJSON_AddStringToObject(o, "error", r->message);
        cJSON *arr = cJSON_AddArrayToObject(o, "results");
        for (int i = 0; arr && i < r->n_results; i++) {
            cJSON *e = cJSON_CreateObject();
            if (e) cJSON_AddItemToArray(arr, cm_json_result(e, rq->task, &r->results[i]));
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
