/* Requests and responses (protobuf-c). Decoding/validation and encoding run in the I/O
 * thread; dmn_req objects are handed to the worker and back (see dmn_req.h). */
#include "daemon/dmn_req.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "daemon/dmn_stats.h"
#include "proto/nlp.pb-c.h"

_Static_assert((int)DMN_MALFORMED == (int)NLP__V1__STATUS_CODE__MALFORMED, "codes follow the wire");
_Static_assert((int)DMN_UNSUPPORTED == (int)NLP__V1__STATUS_CODE__UNSUPPORTED,
               "codes follow the wire");
_Static_assert((int)DMN_SHUTTING_DOWN == (int)NLP__V1__STATUS_CODE__SHUTTING_DOWN,
               "codes follow the wire");
_Static_assert((int)DMN_INPUT_TOO_LONG == (int)NLP__V1__STATUS_CODE__INPUT_TOO_LONG,
               "codes follow the wire");
_Static_assert((int)DMN_UNKNOWN_MODEL == (int)NLP__V1__STATUS_CODE__UNKNOWN_MODEL,
               "codes follow the wire");

/* The wire enum's own names (protobuf-c's descriptor): a status added to nlp.proto is
 * named without an edit here. */
const char *dmn_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nlp__v1__status_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

/* The id of a frame protobuf-c could not unpack (or that is too large to unpack):
 * field 1 comes first in what every encoder we know writes. 0 when unreadable. */
static uint64_t peek_id(const uint8_t *b, size_t len)
{
    uint64_t v = 0;
    if (len < 2 || b[0] != 0x08) return 0;
    for (size_t i = 1; i < len && i < 11; i++) {
        v |= (uint64_t)(b[i] & 0x7F) << (7 * (i - 1));
        if (!(b[i] & 0x80)) return v;
    }
    return 0;
}

/* ---- strings on the wire ----
 * protobuf-c hands strings over NUL-terminated, so one with a NUL byte inside would reach
 * the tasks silently cut short. Every string field of the frame, sub-messages included,
 * is therefore checked on the wire, where its length is known: no NUL byte, valid UTF-8.
 * The descriptors say which fields are strings: a string field added to the proto is
 * checked without a change here. Runs on frames protobuf-c unpacked, so the wire is
 * well-formed; it stays bounds-checked anyway. */

#define WALK_MAX_DEPTH 8

static int read_varint(const uint8_t *b, size_t len, size_t *i, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t c = b[(*i)++];
        x |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Checks the string fields of the message b[0..len) of type d. `at` prefixes the names
 * in messages: "" for the request, "classify." in its classify field, and so on;
 * repeated fields are named with their index ("documents[2]"). */
static int check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *b, size_t len,
                         const char *at, int depth, char *err, size_t errlen)
{
    unsigned seen[64] = { 0 }; /* per field: occurrences so far (a repeated one's index) */
    size_t i = 0;
    while (i < len) {
        uint64_t key, n;
        if (read_varint(b, len, &i, &key) < 0) goto malformed;
        switch (key & 7) {
        case 0:
            if (read_varint(b, len, &i, &n) < 0) goto malformed;
            continue;
        case 1:
            if (len - i < 8) goto malformed;
            i += 8;
            continue;
        case 5:
            if (len - i < 4) goto malformed;
            i += 4;
            continue;
        case 2: break;
        default: goto malformed;
        }
        if (read_varint(b, len, &i, &n) < 0 || n > len - i) goto malformed;
        const uint8_t *v = b + i;
        i += (size_t)n;
        uint64_t fnum = key >> 3;
        const ProtobufCFieldDescriptor *f =
            fnum <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)fnum) : NULL;
        if (!f || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        size_t fi = (size_t)(f - d->fields);
        unsigned idx = fi < 64 ? seen[fi]++ : 0;
        char name[128];
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            snprintf(name, sizeof name, "%s%s[%u]", at, f->name, idx);
        else snprintf(name, sizeof name, "%s%s", at, f->name);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            char sub[130];
            int rc;
            if (depth >= WALK_MAX_DEPTH) continue;
            snprintf(sub, sizeof sub, "%s.", name);
            rc = check_strings(f->descriptor, v, (size_t)n, sub, depth + 1, err, errlen);
            if (rc != DMN_OK) return rc;
            continue;
        }
        const uint8_t *nul = memchr(v, 0, (size_t)n);
        size_t bad;
        if (nul) {
            snprintf(err, errlen, "%s: a NUL byte at byte %zu", name, (size_t)(nul - v));
            return DMN_INVALID_ARGUMENT;
        }
        if (!cm_utf8_valid((const char *)v, (size_t)n, &bad)) {
            snprintf(err, errlen, "%s: invalid UTF-8 at byte %zu", name, bad);
            return DMN_INVALID_ARGUMENT;
        }
    }
    return DMN_OK;
malformed:
    snprintf(err, errlen, "not a valid nlp.v1.Request protobuf (%zu bytes)", len);
    return DMN_MALFORMED;
}

/* Bytes and encoding were checked on the wire (check_strings): only emptiness here. */
static int check_text(const char *what, int idx, const char *s, char *err, size_t errlen)
{
    if (!s || !s[0]) {
        if (idx >= 0) snprintf(err, errlen, "%s %d is empty", what, idx);
        else snprintf(err, errlen, "%s is empty", what);
        return DMN_INVALID_ARGUMENT;
    }
    return DMN_OK;
}

/* Options to task_decode_opts; an option the client did not set stays "unset". The
 * ranges and the messages are the decoding options' table's (tasks/opts.c), the same for
 * the tasks file and nlprun: "options.num_beams = 99 is out of range [1, 16]". */
static int read_options(const Nlp__V1__DecodingOptions *o, const dmn_limits *lim, int max_beams,
                        task_decode_opts *t, char *err, size_t errlen)
{
    task_decode_opts_unset(t);
    if (!o) return DMN_OK;
    const task_opt_limits ol = { .max_new_tokens = lim->max_new_tokens, .max_beams = max_beams };
    const struct {
        int has;
        task_opt_id id;
        double v;
    } set[] = {
        { o->has_max_new_tokens, TASK_OPT_MAX_NEW_TOKENS, o->max_new_tokens },
        { o->has_min_new_tokens, TASK_OPT_MIN_NEW_TOKENS, o->min_new_tokens },
        { o->has_num_beams, TASK_OPT_NUM_BEAMS, o->num_beams },
        /* The range only: how it relates to num_beams and sampling is the task's rule
         * (task_gen_params), which says exactly what is wrong. */
        { o->has_num_return_sequences, TASK_OPT_NUM_RETURN_SEQUENCES, o->num_return_sequences },
        { o->has_no_repeat_ngram_size, TASK_OPT_NO_REPEAT_NGRAM_SIZE, o->no_repeat_ngram_size },
        { o->has_top_k, TASK_OPT_TOP_K, o->top_k },
        { o->has_length_penalty, TASK_OPT_LENGTH_PENALTY, o->length_penalty },
        { o->has_repetition_penalty, TASK_OPT_REPETITION_PENALTY, o->repetition_penalty },
        { o->has_temperature, TASK_OPT_TEMPERATURE, o->temperature },
        { o->has_top_p, TASK_OPT_TOP_P, o->top_p },
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (set[i].has &&
            task_decode_opts_set(t, set[i].id, set[i].v, "options.", &ol, err, errlen) != TASK_OK)
            return DMN_INVALID_ARGUMENT;
    if (o->has_seed) t->seed = (int64_t)(o->seed & INT64_MAX); /* < 0 means unset */
    if (o->has_return_hypotheses) t->return_hypotheses = o->return_hypotheses;
    return DMN_OK;
}

/* Task-specific fields into the task_input template; strings stay in pb. */
static int read_task(dmn_req *r, Nlp__V1__Request *pb, const dmn_limits *lim, char *err,
                     size_t errlen)
{
    task_input *in = &r->in;
    int rc;
    switch (pb->task_case) {
    case NLP__V1__REQUEST__TASK_SUMMARIZE: in->kind = TASK_SUMMARIZE; return DMN_OK;
    case NLP__V1__REQUEST__TASK_TEXT2TEXT: in->kind = TASK_TEXT2TEXT; return DMN_OK;
    case NLP__V1__REQUEST__TASK_TRANSLATE:
        in->kind = TASK_TRANSLATE;
        if ((rc = check_text("translate.target_lang", -1, pb->translate->target_lang, err,
                             errlen)) != DMN_OK)
            return rc;
        in->target_lang = pb->translate->target_lang;
        if (pb->translate->source_lang && pb->translate->source_lang[0]) {
            if ((rc = check_text("translate.source_lang", -1, pb->translate->source_lang, err,
                                 errlen)) != DMN_OK)
                return rc;
            in->source_lang = pb->translate->source_lang;
        }
        return DMN_OK;
    case NLP__V1__REQUEST__TASK_CLASSIFY: {
        const Nlp__V1__Classify *c = pb->classify;
        in->kind = TASK_CLASSIFY;
        if (c->n_labels == 0) {
            snprintf(err, errlen, "classify needs at least one label");
            return DMN_INVALID_ARGUMENT;
        }
        if (c->n_labels > (size_t)lim->max_labels) {
            snprintf(err, errlen, "classify: %zu labels, the limit is %d", c->n_labels,
                     lim->max_labels);
            return DMN_INVALID_ARGUMENT;
        }
        for (size_t i = 0; i < c->n_labels; i++)
            if ((rc = check_text("label", (int)i, c->labels[i], err, errlen)) != DMN_OK) return rc;
        r->labels = calloc(c->n_labels, sizeof *r->labels);
        if (!r->labels) {
            snprintf(err, errlen, "out of memory");
            return DMN_INTERNAL;
        }
        for (size_t i = 0; i < c->n_labels; i++) r->labels[i] = c->labels[i];
        in->labels = r->labels;
        in->n_labels = (int)c->n_labels;
        in->multi_label = c->has_multi_label && c->multi_label;
        return DMN_OK;
    }
    case NLP__V1__REQUEST__TASK_QA:
        in->kind = TASK_QA;
        if ((rc = check_text("qa.question", -1, pb->qa->question, err, errlen)) != DMN_OK)
            return rc;
        in->question = pb->qa->question;
        return DMN_OK;
    default:
        snprintf(err, errlen, "no task set, or a task this server does not know");
        return DMN_UNKNOWN_TASK;
    }
}

int dmn_req_decode(const void *buf, size_t len, const dmn_limits *lim, int max_beams, dmn_req **out,
                   uint64_t *id, char *err, size_t errlen)
{
    Nlp__V1__Request *pb;
    dmn_req *r;
    int rc;

    *out = NULL;
    *id = peek_id(buf, len);
    if (len > (size_t)lim->max_message_bytes) {
        snprintf(err, errlen, "request is %zu bytes, the limit is %d", len, lim->max_message_bytes);
        return DMN_MESSAGE_TOO_LARGE;
    }
    pb = nlp__v1__request__unpack(NULL, len, buf);
    if (!pb) {
        snprintf(err, errlen, "not a valid nlp.v1.Request protobuf (%zu bytes)", len);
        return DMN_MALFORMED;
    }
    *id = pb->id;
    if ((rc = check_strings(&nlp__v1__request__descriptor, buf, len, "", 0, err, errlen)) !=
        DMN_OK) {
        nlp__v1__request__free_unpacked(pb, NULL);
        return rc;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        nlp__v1__request__free_unpacked(pb, NULL);
        snprintf(err, errlen, "out of memory");
        return DMN_INTERNAL;
    }
    r->pb = pb;
    r->id = pb->id;
    r->in.kind = TASK_NONE;
    task_decode_opts_unset(&r->in.opts);

    if (pb->has_priority && (pb->priority < -100 || pb->priority > 100)) {
        snprintf(err, errlen, "priority %d out of range (-100..100)", pb->priority);
        rc = DMN_INVALID_ARGUMENT;
        goto fail;
    }
    r->priority = pb->has_priority ? pb->priority : 0;
    r->deadline_ms = pb->has_deadline_ms ? pb->deadline_ms : 0;

    if (pb->task_case == NLP__V1__REQUEST__TASK_HEALTH ||
        pb->task_case == NLP__V1__REQUEST__TASK_STATS) {
        r->kind = pb->task_case == NLP__V1__REQUEST__TASK_HEALTH ? DMN_REQ_HEALTH : DMN_REQ_STATS;
        *out = r;
        return DMN_OK;
    }
    r->kind = DMN_REQ_TASK;
    if ((rc = read_task(r, pb, lim, err, errlen)) != DMN_OK) goto fail;
    /* The model it names (the registry routes it; checked there, against what is loaded). */
    r->model_name = pb->model && pb->model[0] ? pb->model : NULL;

    if (pb->n_documents == 0) {
        snprintf(err, errlen, "no documents");
        rc = DMN_INVALID_ARGUMENT;
        goto fail;
    }
    if (pb->n_documents > (size_t)lim->max_documents) {
        snprintf(err, errlen, "%zu documents, the limit is %d", pb->n_documents,
                 lim->max_documents);
        rc = DMN_TOO_MANY_DOCUMENTS;
        goto fail;
    }
    for (size_t i = 0; i < pb->n_documents; i++)
        if ((rc = check_text("document", (int)i, pb->documents[i], err, errlen)) != DMN_OK)
            goto fail;
    if ((rc = read_options(pb->options, lim, max_beams, &r->in.opts, err, errlen)) != DMN_OK)
        goto fail;

    r->n_docs = (int)pb->n_documents;
    r->docs = calloc((size_t)r->n_docs, sizeof *r->docs);
    r->doc_lens = calloc((size_t)r->n_docs, sizeof *r->doc_lens);
    r->out = calloc((size_t)r->n_docs, sizeof *r->out);
    if (!r->docs || !r->doc_lens || !r->out) {
        snprintf(err, errlen, "out of memory");
        rc = DMN_INTERNAL;
        goto fail;
    }
    for (int i = 0; i < r->n_docs; i++) {
        r->docs[i] = pb->documents[i];
        r->doc_lens[i] = strlen(pb->documents[i]);
    }
    r->n_left = r->n_docs;
    *out = r;
    return DMN_OK;
fail:
    dmn_req_free(&r);
    return rc;
}

void dmn_req_free(dmn_req **rp)
{
    dmn_req *r = *rp;
    if (!r) return;
    if (r->out)
        for (int i = 0; i < r->n_docs; i++)
            if (r->out[i].has_res) task_result_clear(&r->out[i].res);
    dmn_route_clear(&r->route);
    if (r->prep)
        for (int i = 0; i < r->n_docs; i++) task_doc_clear(&r->prep[i]);
    free(r->prep);
    free(r->prep_rc);
    if (r->pb) nlp__v1__request__free_unpacked(r->pb, NULL);
    free(r->labels);
    free(r->docs);
    free(r->doc_lens);
    free(r->out);
    free(r);
    *rp = NULL;
}

int dmn_code_from_task(int st)
{
    switch (st) {
    case TASK_OK: return DMN_OK;
    case TASK_EINVAL: return DMN_INVALID_ARGUMENT;
    case TASK_ETOOLONG: return DMN_INPUT_TOO_LONG;
    case TASK_EUNSUPPORTED: return DMN_UNSUPPORTED;
    default: return DMN_INTERNAL;
    }
}

void dmn_doc_task_end(dmn_doc *d, int status, const char *reason)
{
    d->code = dmn_code_from_task(status);
    if (d->code != DMN_OK)
        snprintf(d->message, sizeof d->message, "%s", reason && reason[0] ? reason : "task failed");
}

void dmn_doc_end(dmn_doc *d, int why, const char *reason)
{
    d->code = why == DMN_DOC_DEADLINE ? DMN_DEADLINE_EXCEEDED : DMN_INTERNAL;
    snprintf(d->message, sizeof d->message, "%s", reason);
}

int dmn_req_status(const dmn_req *r, char *msg, size_t cap)
{
    for (int i = 0; i < r->n_docs; i++)
        if (r->out[i].code != DMN_OK) {
            if (r->n_docs == 1) cm_fmt(msg, cap, "%s", r->out[i].message);
            else cm_fmt(msg, cap, "document %d: %s", i, r->out[i].message);
            return r->out[i].code;
        }
    if (cap) msg[0] = '\0';
    return DMN_OK;
}

/* ---- response strings ----
 * A protobuf string must be valid UTF-8: strict decoders (Python's, Go's, Java's) reject
 * the whole Response otherwise. Messages quote client input and are cut to buffer
 * sizes; generated text comes from token pieces. So pack() sends every string field of
 * the Response, sub-messages included, through one sanitizer: invalid bytes become
 * U+FFFD, a Status.message longer than DMN_MAX_MESSAGE is cut at a character boundary.
 * Clean strings (nearly all) are used in place; the others are copied, and the copies
 * freed once packed. The descriptors say which fields are strings, so a string field
 * added to the proto is covered without a change here. */

typedef struct owned {
    char **p; /* [n] copies made for one Response */
    size_t n, cap;
    int oom;
} owned;

static char *clean(owned *o, char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max && cm_utf8_valid(s, len, NULL)) return s;
    if (o->n == o->cap) {
        size_t nc = o->cap ? 2 * o->cap : 8;
        char **np = realloc(o->p, nc * sizeof *np);
        if (!np) goto oom;
        o->p = np;
        o->cap = nc;
    }
    /* Each bad byte may become 3 (U+FFFD); never more than max. */
    size_t cap = (len < max / 3 ? 3 * len : max) + 1;
    char *c = malloc(cap);
    if (!c) goto oom;
    cm_utf8_copy(c, cap, s, len);
    o->p[o->n++] = c;
    return c;
oom:
    o->oom = 1;
    return s;
}

static void clean_strings(ProtobufCMessage *m, owned *o, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *at = (char *)m + f->offset;
        size_t n = 1;
        void **items = (void **)at;
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(void ***)at;
            if (!items) continue;
        }
        size_t max = d == &nlp__v1__status__descriptor ? DMN_MAX_MESSAGE : SIZE_MAX / 4;
        for (size_t k = 0; k < n; k++) {
            if (!items[k]) continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) items[k] = clean(o, items[k], max);
            else if (depth < WALK_MAX_DEPTH) clean_strings(items[k], o, depth + 1);
        }
    }
}

/* Packs `resp` into a malloc'd buffer, its strings made clean first (resp's string
 * pointers are not to be used after). */
static int pack(Nlp__V1__Response *resp, void **buf, size_t *len)
{
    owned o = { 0 };
    int rc = -1;
    clean_strings(&resp->base, &o, 0);
    if (!o.oom) {
        size_t n = nlp__v1__response__get_packed_size(resp);
        uint8_t *b = malloc(n ? n : 1);
        if (b) {
            *len = nlp__v1__response__pack(resp, b);
            *buf = b;
            rc = 0;
        }
    }
    for (size_t i = 0; i < o.n; i++) free(o.p[i]);
    free(o.p);
    return rc;
}

static void set_status(Nlp__V1__Status *st, int code, const char *msg)
{
    st->has_code = 1;
    st->code = (Nlp__V1__StatusCode)code;
    st->message = (char *)(msg ? msg : "");
}

int dmn_resp_error(uint64_t id, int code, const char *msg, void **buf, size_t *len)
{
    Nlp__V1__Response resp = NLP__V1__RESPONSE__INIT;
    Nlp__V1__Status st = NLP__V1__STATUS__INIT;
    set_status(&st, code, msg);
    resp.has_id = 1;
    resp.id = id;
    resp.status = &st;
    return pack(&resp, buf, len);
}

static void queue_stats(Nlp__V1__QueueStats *q, const dmn_qstats *s)
{
    q->has_connected = 1, q->connected = s->connected;
    q->has_lag = 1, q->lag = s->lag;
    q->has_pending = 1, q->pending = s->pending;
    q->has_held = 1, q->held = s->held;
    q->has_claims = 1, q->claims = s->claims;
    q->has_dead_letters = 1, q->dead_letters = s->dead_letters;
    q->has_results = 1, q->results = s->results;
    q->has_lost = 1, q->lost = s->lost;
    q->has_reconnects = 1, q->reconnects = s->reconnects;
}

/* The tasks and languages of the model in env into the fields of Health or ModelInfo;
 * *langs is malloc'd (the caller frees it). `only`: a task mask (0: every task served). */
static void model_tasks_langs(const task_env *env, unsigned only, char **tasks, size_t *n_tasks,
                              char ***langs, size_t *n_langs)
{
    *n_tasks = 0, *n_langs = 0, *langs = NULL;
    for (int k = 1; k <= TASK_TEXT2TEXT; k++)
        if ((!only || (only & (1u << k))) && task_served(env, (task_kind)k, NULL, 0))
            tasks[(*n_tasks)++] = (char *)task_kind_name((task_kind)k);
    int nl = tok_n_langs(env->tok);
    if (task_served(env, TASK_TRANSLATE, NULL, 0) && nl > 0 &&
        (*langs = malloc((size_t)nl * sizeof **langs))) {
        for (int i = 0; i < nl; i++) (*langs)[i] = (char *)tok_lang_code(env->tok, i);
        *n_langs = (size_t)nl;
    } else if (env->info.pair_src[0] && (*langs = malloc(2 * sizeof **langs))) {
        (*langs)[0] = (char *)env->info.pair_src;
        (*langs)[1] = (char *)env->info.pair_tgt;
        *n_langs = 2;
    }
}

int dmn_resp_health(uint64_t id, const dmn_health *h, void **buf, size_t *len)
{
    Nlp__V1__Response resp = NLP__V1__RESPONSE__INIT;
    Nlp__V1__Status st = NLP__V1__STATUS__INIT;
    Nlp__V1__Health hp = NLP__V1__HEALTH__INIT;
    set_status(&st, DMN_OK, "");
    hp.has_ok = 1, hp.ok = h->ok;
    hp.model = (char *)h->model;
    hp.version = (char *)h->version;
    hp.has_uptime_s = 1, hp.uptime_s = h->uptime_s;
    hp.has_shutting_down = 1, hp.shutting_down = h->shutting_down;
    hp.has_loading = 1, hp.loading = h->loading;
    /* The model's family, tasks and languages: ASCII names from config.json, the task
     * table and the tokenizer's codes, valid while the model is. */
    char *tasks[8];
    char **langs = NULL;
    const task_env *env = h->env;
    if (env && env->model) {
        hp.model_type = (char *)env->model->model_type;
        model_tasks_langs(env, 0, tasks, &hp.n_tasks, &langs, &hp.n_languages);
        hp.tasks = tasks;
        hp.languages = langs;
    }
    /* Every model of the registry (fields 2 and 7-9 above describe the first). */
    int nm = h->n_models > 0 && h->models ? h->n_models : 0, rc = -1;
    Nlp__V1__ModelInfo *mi = nm ? calloc((size_t)nm, sizeof *mi) : NULL;
    Nlp__V1__ModelInfo **mip = nm ? calloc((size_t)nm, sizeof *mip) : NULL;
    char ***mlangs = nm ? calloc((size_t)nm, sizeof *mlangs) : NULL;
    char **mtaskp = nm ? calloc((size_t)nm * 8, sizeof *mtaskp) : NULL;
    if (nm && (!mi || !mip || !mlangs || !mtaskp)) goto out;
    for (int i = 0; i < nm; i++) {
        const dmn_model_info *m = &h->models[i];
        nlp__v1__model_info__init(&mi[i]);
        mi[i].name = (char *)m->name;
        mi[i].path = (char *)m->path;
        mi[i].weights = (char *)m->weights;
        mi[i].state = (char *)m->state;
        mi[i].has_resident_bytes = 1, mi[i].resident_bytes = m->resident_bytes;
        mi[i].has_requests = 1, mi[i].requests = m->requests;
        if (m->env && m->env->model) {
            mi[i].model_type = (char *)m->env->model->model_type;
            model_tasks_langs(m->env, m->tasks, mtaskp + 8 * i, &mi[i].n_tasks, &mlangs[i],
                              &mi[i].n_languages);
            mi[i].tasks = mtaskp + 8 * i;
            mi[i].languages = mlangs[i];
        }
        mip[i] = &mi[i];
    }
    hp.n_models = (size_t)nm, hp.models = mip;
    Nlp__V1__QueueStats qs = NLP__V1__QUEUE_STATS__INIT;
    if (h->queue.enabled) queue_stats(&qs, &h->queue), hp.queue = &qs;
    resp.has_id = 1, resp.id = id;
    resp.status = &st;
    resp.health = &hp;
    rc = pack(&resp, buf, len);
out:
    for (int i = 0; mlangs && i < nm; i++) free(mlangs[i]);
    free(mlangs);
    free(mtaskp);
    free(mip);
    free(mi);
    free(langs);
    return rc;
}

int dmn_resp_stats(uint64_t id, const dmn_stats_snap *s, void **buf, size_t *len)
{
    Nlp__V1__Response resp = NLP__V1__RESPONSE__INIT;
    Nlp__V1__Status st = NLP__V1__STATUS__INIT;
    Nlp__V1__Stats sp = NLP__V1__STATS__INIT;
    Nlp__V1__CodeCount cc[DMN_N_CODES];
    Nlp__V1__CodeCount *ccp[DMN_N_CODES];
    size_t n = 0;
    for (int c = 0; c < DMN_N_CODES; c++) {
        if (!s->by_code[c]) continue;
        nlp__v1__code_count__init(&cc[n]);
        cc[n].has_code = 1, cc[n].code = (Nlp__V1__StatusCode)c;
        cc[n].has_count = 1, cc[n].count = s->by_code[c];
        ccp[n] = &cc[n];
        n++;
    }
    set_status(&st, DMN_OK, "");
    sp.has_requests = 1, sp.requests = s->requests;
    sp.has_documents = 1, sp.documents = s->documents;
    sp.n_responses = n, sp.responses = ccp;
    sp.has_queue_depth = 1, sp.queue_depth = s->queue_depth;
    sp.has_tokens_per_s = 1, sp.tokens_per_s = s->tokens_per_s;
    sp.has_latency_p50_ms = 1, sp.latency_p50_ms = s->p50_ms;
    sp.has_latency_p90_ms = 1, sp.latency_p90_ms = s->p90_ms;
    sp.has_latency_p99_ms = 1, sp.latency_p99_ms = s->p99_ms;
    sp.has_batches = 1, sp.batches = s->batches;
    sp.has_mean_batch_size = 1, sp.mean_batch_size = s->mean_batch_size;
    sp.has_input_tokens = 1, sp.input_tokens = s->input_tokens;
    sp.has_output_tokens = 1, sp.output_tokens = s->output_tokens;
    sp.has_uptime_s = 1, sp.uptime_s = s->uptime_s;
    sp.has_in_flight = 1, sp.in_flight = s->in_flight;
    sp.has_peak_rows = 1, sp.peak_rows = s->peak_rows;
    sp.has_replies_dropped = 1, sp.replies_dropped = s->replies_dropped;
    Nlp__V1__QueueStats qs = NLP__V1__QUEUE_STATS__INIT;
    if (s->queue.enabled) queue_stats(&qs, &s->queue), sp.queue = &qs;
    resp.has_id = 1, resp.id = id;
    resp.status = &st;
    resp.stats = &sp;
    return pack(&resp, buf, len);
}

int dmn_resp_task(const dmn_req *r, double now, void **buf, size_t *len)
{
    Nlp__V1__Response resp = NLP__V1__RESPONSE__INIT;
    Nlp__V1__Status st = NLP__V1__STATUS__INIT;
    Nlp__V1__Timings tm = NLP__V1__TIMINGS__INIT;
    char msg[320];
    int n = r->n_docs, rc = -1;
    size_t n_labels = 0, n_hyps = 0;

    for (int i = 0; i < n; i++)
        if (r->out[i].has_res) {
            n_labels += (size_t)r->out[i].res.n_labels;
            n_hyps += (size_t)r->out[i].res.n_hyps;
        }
    /* All sub-messages in a few flat arrays: freed together after packing. */
    Nlp__V1__Result *res = calloc((size_t)n, sizeof *res);
    Nlp__V1__Result **resp_res = calloc((size_t)n, sizeof *resp_res);
    Nlp__V1__Status *rst = calloc((size_t)n, sizeof *rst);
    Nlp__V1__LabelScore *ls = calloc(n_labels + 1, sizeof *ls);
    Nlp__V1__LabelScore **lsp = calloc(n_labels + 1, sizeof *lsp);
    Nlp__V1__Hypothesis *hy = calloc(n_hyps + 1, sizeof *hy);
    Nlp__V1__Hypothesis **hyp = calloc(n_hyps + 1, sizeof *hyp);
    if (!res || !resp_res || !rst || !ls || !lsp || !hy || !hyp) goto out;

    size_t li = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        const dmn_doc *d = &r->out[i];
        Nlp__V1__Result *o = &res[i];
        nlp__v1__result__init(o);
        nlp__v1__status__init(&rst[i]);
        set_status(&rst[i], d->code, d->message);
        o->status = &rst[i];
        resp_res[i] = o;
        if (!d->has_res) continue;
        const task_result *t = &d->res;
        if (t->text) {
            if (r->in.kind == TASK_QA) o->answer = t->text;
            else o->text = t->text;
        }
        o->has_score = 1, o->score = t->score;
        o->has_input_tokens = 1,
        o->input_tokens = (uint32_t)(t->input_tokens > 0 ? t->input_tokens : 0);
        o->has_output_tokens = 1,
        o->output_tokens = (uint32_t)(t->output_tokens > 0 ? t->output_tokens : 0);
        o->has_truncated = 1, o->truncated = t->truncated != 0;
        o->labels = &lsp[li];
        for (int k = 0; k < t->n_labels; k++, li++) {
            nlp__v1__label_score__init(&ls[li]);
            ls[li].label = t->labels[k].label;
            ls[li].has_score = 1, ls[li].score = t->labels[k].score;
            lsp[li] = &ls[li];
        }
        o->n_labels = (size_t)t->n_labels;
        o->hypotheses = &hyp[hi];
        for (int k = 0; k < t->n_hyps; k++, hi++) {
            nlp__v1__hypothesis__init(&hy[hi]);
            hy[hi].text = t->hyps[k].text;
            hy[hi].has_score = 1, hy[hi].score = t->hyps[k].score;
            hyp[hi] = &hy[hi];
        }
        o->n_hypotheses = (size_t)t->n_hyps;
    }
    set_status(&st, dmn_req_status(r, msg, sizeof msg), msg);
    double t_start = r->t_start > 0 ? r->t_start : r->t_done;
    tm.has_queue_ms = 1, tm.queue_ms = (t_start - r->t_recv) * 1e3;
    tm.has_compute_ms = 1, tm.compute_ms = (r->t_done - t_start) * 1e3;
    tm.has_total_ms = 1, tm.total_ms = (now - r->t_recv) * 1e3;
    resp.has_id = 1, resp.id = r->id;
    resp.status = &st;
    resp.n_results = (size_t)n;
    resp.results = resp_res;
    resp.timings = &tm;
    rc = pack(&resp, buf, len);
out:
    free(res);
    free(resp_res);
    free(rst);
    free(ls);
    free(lsp);
    free(hy);
    free(hyp);
    return rc;
}
