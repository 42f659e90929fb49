/* Requests and responses (protobuf-c). Decoding/validation and encoding run in the I/O
 * thread; dmn_req objects are handed to the worker and back (see dmn_req.h). */
#include "daemon/dmn_req.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/dmn_stats.h"
#include "proto/nlp.pb-c.h"

_Static_assert((int)DMN_MALFORMED == (int)NLP__V1__STATUS_CODE__MALFORMED, "codes follow the wire");
_Static_assert((int)DMN_SHUTTING_DOWN == (int)NLP__V1__STATUS_CODE__SHUTTING_DOWN, "codes follow the wire");
_Static_assert((int)DMN_INPUT_TOO_LONG == (int)NLP__V1__STATUS_CODE__INPUT_TOO_LONG, "codes follow the wire");

static const char *const code_names[DMN_N_CODES] = {
    "OK", "INVALID_ARGUMENT", "UNKNOWN_TASK", "INPUT_TOO_LONG", "OVERLOADED",
    "DEADLINE_EXCEEDED", "INTERNAL", "MESSAGE_TOO_LARGE", "TOO_MANY_DOCUMENTS",
    "SHUTTING_DOWN", "MALFORMED",
};

const char *dmn_code_name(int code)
{
    return code >= 0 && code < DMN_N_CODES ? code_names[code] : "UNKNOWN";
}

int dmn_utf8_valid(const char *str, size_t len, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
        else goto fail;
        if (i + n >= len) goto fail;   /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto fail;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto fail;
        i += n + 1;
    }
    return 1;
fail:
    if (bad) *bad = i;
    return 0;
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

static int check_text(const char *what, int idx, const char *s, char *err, size_t errlen)
{
    size_t bad;
    if (!s || !s[0]) {
        if (idx >= 0) snprintf(err, errlen, "%s %d is empty", what, idx);
        else snprintf(err, errlen, "%s is empty", what);
        return DMN_INVALID_ARGUMENT;
    }
    if (!dmn_utf8_valid(s, strlen(s), &bad)) {
        if (idx >= 0) snprintf(err, errlen, "%s %d: invalid UTF-8 at byte %zu", what, idx, bad);
        else snprintf(err, errlen, "%s: invalid UTF-8 at byte %zu", what, bad);
        return DMN_INVALID_ARGUMENT;
    }
    return DMN_OK;
}

static int bad_opt(char *err, size_t errlen, const char *name, const char *range)
{
    snprintf(err, errlen, "options.%s out of range (%s)", name, range);
    return DMN_INVALID_ARGUMENT;
}

/* Options to task_decode_opts; an option the client did not set stays "unset". */
static int read_options(const Nlp__V1__DecodingOptions *o, const dmn_limits *lim,
                        int max_beams, task_decode_opts *t, char *err, size_t errlen)
{
    char range[64];
    task_decode_opts_unset(t);
    if (!o) return DMN_OK;
    if (o->has_max_new_tokens) {
        if (o->max_new_tokens < 1 || o->max_new_tokens > (uint32_t)lim->max_new_tokens) {
            snprintf(range, sizeof range, "1..%d", lim->max_new_tokens);
            return bad_opt(err, errlen, "max_new_tokens", range);
        }
        t->max_new_tokens = (int)o->max_new_tokens;
    }
    if (o->has_min_new_tokens) {
        if (o->min_new_tokens > (uint32_t)lim->max_new_tokens) {
            snprintf(range, sizeof range, "0..%d", lim->max_new_tokens);
            return bad_opt(err, errlen, "min_new_tokens", range);
        }
        t->min_new_tokens = (int)o->min_new_tokens;
    }
    if (o->has_num_beams) {
        if (o->num_beams < 1 || o->num_beams > (uint32_t)max_beams) {
            snprintf(range, sizeof range, "1..%d", max_beams);
            return bad_opt(err, errlen, "num_beams", range);
        }
        t->num_beams = (int)o->num_beams;
    }
    if (o->has_num_return_sequences) {
        /* The range only: how it relates to num_beams and sampling is the task's rule
         * (task_gen_params), which says exactly what is wrong. */
        uint32_t cap = ENG_MAX_RETURN;
        if (o->num_return_sequences < 1 || o->num_return_sequences > cap) {
            snprintf(range, sizeof range, "1..%u", cap);
            return bad_opt(err, errlen, "num_return_sequences", range);
        }
        t->num_return_sequences = (int)o->num_return_sequences;
    }
    if (o->has_no_repeat_ngram_size) {
        if (o->no_repeat_ngram_size > 64) return bad_opt(err, errlen, "no_repeat_ngram_size", "0..64");
        t->no_repeat_ngram_size = (int)o->no_repeat_ngram_size;
    }
    if (o->has_top_k) {
        if (o->top_k > 100000) return bad_opt(err, errlen, "top_k", "0..100000");
        t->top_k = (int)o->top_k;
    }
    if (o->has_length_penalty) {
        if (!isfinite(o->length_penalty) || fabsf(o->length_penalty) > 10)
            return bad_opt(err, errlen, "length_penalty", "-10..10");
        t->length_penalty = o->length_penalty;
    }
    if (o->has_repetition_penalty) {
        if (!isfinite(o->repetition_penalty) || o->repetition_penalty <= 0 ||
            o->repetition_penalty > 100)
            return bad_opt(err, errlen, "repetition_penalty", "> 0, at most 100");
        t->repetition_penalty = o->repetition_penalty;
    }
    if (o->has_temperature) {
        if (!isfinite(o->temperature) || o->temperature <= 0 || o->temperature > 100)
            return bad_opt(err, errlen, "temperature", "> 0, at most 100");
        t->temperature = o->temperature;
    }
    if (o->has_top_p) {
        if (!isfinite(o->top_p) || o->top_p <= 0 || o->top_p > 1)
            return bad_opt(err, errlen, "top_p", "> 0, at most 1");
        t->top_p = o->top_p;
    }
    if (o->has_seed) t->seed = (int64_t)(o->seed & INT64_MAX);   /* < 0 means unset */
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
    case NLP__V1__REQUEST__TASK_SUMMARIZE:
        in->kind = TASK_SUMMARIZE;
        return DMN_OK;
    case NLP__V1__REQUEST__TASK_TEXT2TEXT:
        in->kind = TASK_TEXT2TEXT;
        return DMN_OK;
    case NLP__V1__REQUEST__TASK_TRANSLATE:
        in->kind = TASK_TRANSLATE;
        if ((rc = check_text("translate.target_lang", -1, pb->translate->target_lang, err,
                             errlen)) != DMN_OK)
            return rc;
        in->target_lang = pb->translate->target_lang;
        if (pb->translate->source_lang && pb->translate->source_lang[0]) {
            if ((rc = check_text("translate.source_lang", -1, pb->translate->source_lang,
                                 err, errlen)) != DMN_OK)
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
            if ((rc = check_text("label", (int)i, c->labels[i], err, errlen)) != DMN_OK)
                return rc;
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

int dmn_req_decode(const void *buf, size_t len, const dmn_limits *lim, int max_beams,
                   dmn_req **out, uint64_t *id, char *err, size_t errlen)
{
    Nlp__V1__Request *pb;
    dmn_req *r;
    int rc;

    *out = NULL;
    *id = peek_id(buf, len);
    if (len > (size_t)lim->max_message_bytes) {
        snprintf(err, errlen, "request is %zu bytes, the limit is %d", len,
                 lim->max_message_bytes);
        return DMN_MESSAGE_TOO_LARGE;
    }
    pb = nlp__v1__request__unpack(NULL, len, buf);
    if (!pb) {
        snprintf(err, errlen, "not a valid nlp.v1.Request protobuf (%zu bytes)", len);
        return DMN_MALFORMED;
    }
    *id = pb->id;
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
        r->kind = pb->task_case == NLP__V1__REQUEST__TASK_HEALTH ? DMN_REQ_HEALTH
                                                                 : DMN_REQ_STATS;
        *out = r;
        return DMN_OK;
    }
    r->kind = DMN_REQ_TASK;
    if ((rc = read_task(r, pb, lim, err, errlen)) != DMN_OK) goto fail;

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
    if (r->pb) nlp__v1__request__free_unpacked(r->pb, NULL);
    free(r->labels);
    free(r->docs);
    free(r->doc_lens);
    free(r->out);
    free(r);
    *rp = NULL;
}

int dmn_req_status(const dmn_req *r, char *msg, size_t cap)
{
    for (int i = 0; i < r->n_docs; i++)
        if (r->out[i].code != DMN_OK) {
            if (r->n_docs == 1)
                snprintf(msg, cap, "%s", r->out[i].message);
            else
                snprintf(msg, cap, "document %d: %s", i, r->out[i].message);
            return r->out[i].code;
        }
    if (cap) msg[0] = '\0';
    return DMN_OK;
}

/* Packs `resp` into a malloc'd buffer. */
static int pack(const Nlp__V1__Response *resp, void **buf, size_t *len)
{
    size_t n = nlp__v1__response__get_packed_size(resp);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return -1;
    *len = nlp__v1__response__pack(resp, b);
    *buf = b;
    return 0;
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
    resp.has_id = 1, resp.id = id;
    resp.status = &st;
    resp.health = &hp;
    return pack(&resp, buf, len);
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
        o->has_input_tokens = 1, o->input_tokens = (uint32_t)(t->input_tokens > 0 ? t->input_tokens : 0);
        o->has_output_tokens = 1, o->output_tokens = (uint32_t)(t->output_tokens > 0 ? t->output_tokens : 0);
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
