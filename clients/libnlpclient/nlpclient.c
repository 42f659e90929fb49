/* libnlpclient: request packing, the DEALER socket, reply decoding and the buffer of
 * replies that arrived while nlpc_call() waited for another id. The only file that sees
 * the generated protobuf types. Runs in the caller's thread; one thread per client. */
#include "clients/libnlpclient/nlpclient.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "proto/nlp.pb-c.h"

_Static_assert((int)NLPC_UNSUPPORTED == (int)NLP__V1__STATUS_CODE__UNSUPPORTED,
               "codes mirror the wire");
_Static_assert((int)NLPC_UNKNOWN_MODEL == (int)NLP__V1__STATUS_CODE__UNKNOWN_MODEL,
               "codes mirror the wire");

/* Bounds how long nlpc_client_destroy() may block on unsent requests, and how long a
 * send may wait for queue room (the high-water mark) before it counts as a timeout. */
#define NLPC_LINGER_MS 200
#define NLPC_SEND_TIMEOUT_MS 10000

struct nlpc_client {
    void *zctx;          /* own context: a library must not share the caller's */
    void *sock;          /* DEALER */
    void *mon;           /* PAIR receiving the DEALER's connection events; NULL
                                  * when the monitor could not be set up */
    nlpc_conn_info conn; /* what the events said so far */
    size_t max_message;  /* 0: no limit */
    uint64_t next_id;
    int in_flight;
    /* Replies received while nlpc_call() waited for another id, oldest first. */
    nlpc_response **kept;
    int n_kept, cap_kept;
    char err[256];
};

/* ---- small helpers ---- */

static int fail(nlpc_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(nlpc_client *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connection events ---- */

/* The DEALER reports connects and disconnects to a PAIR over inproc (same context). The
 * events are read without blocking whenever the caller asks; a failure here only means
 * the events are not known, never that the client is unusable. */
static void monitor_start(nlpc_client *c)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://nlpc-monitor-%p", (void *)c);
    if (zmq_socket_monitor(c->sock, ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) return;
    void *mon = zmq_socket(c->zctx, ZMQ_PAIR);
    if (!mon) goto fail;
    int linger = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(mon, ep) != 0) {
        zmq_close(mon);
        goto fail;
    }
    c->mon = mon;
    return;
fail:
    zmq_socket_monitor(c->sock, NULL, 0);
}

/* Reads every event waiting on the monitor into c->conn. An event is two frames: 6
 * bytes (uint16 event, uint32 value) and the endpoint. */
static void monitor_drain(nlpc_client *c)
{
    if (!c->mon) return;
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&msg) >= 2) memcpy(&ev, zmq_msg_data(&msg), 2);
        while (zmq_msg_more(&msg)) {
            if (zmq_msg_recv(&msg, c->mon, 0) < 0) break;
        }
        zmq_msg_close(&msg);
        if (ev == ZMQ_EVENT_CONNECTED) {
            c->conn.connected++;
            c->conn.connects++;
        } else if (ev == ZMQ_EVENT_DISCONNECTED) {
            if (c->conn.connected > 0) c->conn.connected--;
            c->conn.disconnects++;
        }
    }
}

int nlpc_client_conn(nlpc_client *c, nlpc_conn_info *out)
{
    if (!c || !out) return NLPC_EINVAL;
    if (!c->mon) {
        memset(out, 0, sizeof *out);
        out->connected = 1;
        return NLPC_EINVAL;
    }
    monitor_drain(c);
    *out = c->conn;
    return 0;
}

int nlpc_client_wait_connected(nlpc_client *c, int timeout_ms)
{
    if (!c) return NLPC_EINVAL;
    if (!c->mon) return 0; /* unknown: let the reply's timeout decide */
    int64_t end = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        monitor_drain(c);
        if (c->conn.connected > 0) return 0;
        int64_t left = end - now_ms();
        if (left <= 0) break;
        zmq_pollitem_t it = { c->mon, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, (long)left) < 0) break; /* a signal: the caller decides */
    }
    return fail(c, NLPC_ETIMEOUT, "not connected within %d ms (is nlpd running there?)",
                timeout_ms);
}

/* ---- client ---- */

nlpc_client *nlpc_client_new(const char *endpoint, char *err, size_t errlen)
{
    return nlpc_client_new_curve(endpoint, NULL, err, errlen);
}

/* The value of `name = "..."` on a certificate line, when it is 40 characters. */
static int cert_value(const char *line, const char *name, char *out)
{
    size_t nl = strlen(name);
    while (*line == ' ' || *line == '\t') line++;
    if (strncmp(line, name, nl) != 0) return -1;
    line += nl;
    while (*line == ' ' || *line == '\t') line++;
    if (*line++ != '=') return -1;
    while (*line == ' ' || *line == '\t') line++;
    char q = *line == '"' || *line == '\'' ? *line++ : 0;
    size_t n = 0;
    while (line[n] && line[n] != q && line[n] != '\n' && line[n] != '\r' && line[n] != ' ') n++;
    if (n != 40) return -2;
    memcpy(out, line, 40);
    out[40] = 0;
    return 0;
}

int nlpc_cert_read(const char *path, char *pub, char *sec, char *err, size_t errlen)
{
    char line[512];
    int lineno = 0, bad = 0;
    FILE *f = fopen(path, "r");
    pub[0] = 0;
    if (sec) sec[0] = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NLPC_EINVAL;
    }
    while (fgets(line, sizeof line, f) && lineno < 1000) {
        lineno++;
        if (cert_value(line, "public-key", pub) == -2) bad = lineno;
        if (sec && cert_value(line, "secret-key", sec) == -2) bad = lineno;
    }
    fclose(f);
    if (bad) snprintf(err, errlen, "%s:%d: a key is not 40 Z85 characters", path, bad);
    else if (!pub[0]) snprintf(err, errlen, "%s: no public-key (not a CZMQ certificate)", path);
    else return 0;
    return NLPC_EINVAL;
}

nlpc_client *nlpc_client_new_curve(const char *endpoint, const nlpc_curve_keys *keys, char *err,
                                   size_t errlen)
{
    if (!endpoint || !*endpoint) {
        snprintf(err, errlen, "no endpoint given");
        return NULL;
    }
    nlpc_client *c = calloc(1, sizeof *c);
    char *eps = strdup(endpoint);
    if (!c || !eps) {
        snprintf(err, errlen, "out of memory");
        goto fail_alloc;
    }
    c->next_id = 1;
    c->zctx = zmq_ctx_new();
    if (!c->zctx) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail_alloc;
    }
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->sock) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        goto fail_ctx;
    }
    int linger = NLPC_LINGER_MS, sndtimeo = NLPC_SEND_TIMEOUT_MS;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);

    /* With several daemons, queue only to connected ones (ZMQ_IMMEDIATE), so a daemon
     * that is down does not swallow every n-th request until its timeout. With one, keep
     * queueing while it (re)starts: the caller's timeout bounds the wait. */
    if (strchr(endpoint, ',')) {
        int one = 1;
        zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    }
    if (keys && (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, keys->server_public, 40) != 0 ||
                 zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, keys->client_public, 40) != 0 ||
                 zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, keys->client_secret, 40) != 0)) {
        snprintf(err, errlen, "CURVE keys: %s", zmq_strerror(errno));
        goto fail_sock;
    }
    monitor_start(c);
    int n_ok = 0;
    char *save = NULL;
    for (char *ep = strtok_r(eps, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ') ep++;
        if (!*ep) continue;
        if (zmq_connect(c->sock, ep) != 0) {
            snprintf(err, errlen, "cannot connect to '%s': %s", ep, zmq_strerror(errno));
            goto fail_sock;
        }
        n_ok++;
    }
    if (n_ok == 0) {
        snprintf(err, errlen, "no endpoint in '%s'", endpoint);
        goto fail_sock;
    }
    free(eps);
    return c;

fail_sock:
    if (c->mon) zmq_close(c->mon);
    zmq_close(c->sock);
fail_ctx:
    zmq_ctx_term(c->zctx);
fail_alloc:
    free(eps);
    free(c);
    return NULL;
}

void nlpc_client_destroy(nlpc_client **cp)
{
    if (!cp || !*cp) return;
    nlpc_client *c = *cp;
    for (int i = 0; i < c->n_kept; i++) nlpc_response_free(&c->kept[i]);
    free(c->kept);
    if (c->mon) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->mon);
    }
    zmq_close(c->sock);
    zmq_ctx_term(c->zctx);
    free(c);
    *cp = NULL;
}

const char *nlpc_client_error(const nlpc_client *c) { return c ? c->err : "no client"; }
int nlpc_in_flight(const nlpc_client *c) { return c->in_flight + c->n_kept; }
void nlpc_client_set_max_message(nlpc_client *c, size_t bytes)
{
    if (c) c->max_message = bytes;
}

void nlpc_request_init(nlpc_request *rq, nlpc_task task)
{
    memset(rq, 0, sizeof *rq);
    rq->task = task;
    nlpc_decode_opts *o = &rq->opts;
    o->max_new_tokens = o->min_new_tokens = o->num_beams = o->num_return_sequences = -1;
    o->no_repeat_ngram_size = o->top_k = -1;
    o->length_penalty = o->repetition_penalty = o->temperature = o->top_p = NAN;
    o->seed = -1;
}

/* ---- packing ---- */

static int is_task(nlpc_task t) { return t >= NLPC_TASK_SUMMARIZE && t <= NLPC_TASK_TEXT2TEXT; }

/* Only the request's own shape is checked here; the server validates values and
 * answers with a status, so a client never second-guesses server limits. */
static int pack_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int pack_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

int nlpc_request_pack(const nlpc_request *rq, uint64_t id, uint8_t **buf, size_t *len, char *err,
                      size_t errlen)
{
    return nlpc_request_pack_model(rq, NULL, id, buf, len, err, errlen);
}

int nlpc_request_pack_model(const nlpc_request *rq, const char *model, uint64_t id, uint8_t **buf,
                            size_t *len, char *err, size_t errlen)
{
    if (!rq || !buf || !len) return pack_fail(err, errlen, NLPC_EINVAL, "NULL argument");
    Nlp__V1__Request r = NLP__V1__REQUEST__INIT;
    Nlp__V1__Summarize sum = NLP__V1__SUMMARIZE__INIT;
    Nlp__V1__Translate tr = NLP__V1__TRANSLATE__INIT;
    Nlp__V1__Classify cl = NLP__V1__CLASSIFY__INIT;
    Nlp__V1__QuestionAnswer qa = NLP__V1__QUESTION_ANSWER__INIT;
    Nlp__V1__Text2Text tt = NLP__V1__TEXT2_TEXT__INIT;
    Nlp__V1__HealthRequest hr = NLP__V1__HEALTH_REQUEST__INIT;
    Nlp__V1__StatsRequest sr = NLP__V1__STATS_REQUEST__INIT;
    Nlp__V1__DecodingOptions op = NLP__V1__DECODING_OPTIONS__INIT;

    r.has_id = 1;
    r.id = id;
    switch (rq->task) {
    case NLPC_TASK_SUMMARIZE:
        r.task_case = NLP__V1__REQUEST__TASK_SUMMARIZE;
        r.summarize = &sum;
        break;
    case NLPC_TASK_TRANSLATE:
        if (!rq->target_lang || !*rq->target_lang)
            return pack_fail(err, errlen, NLPC_EINVAL, "translate needs a target language");
        r.task_case = NLP__V1__REQUEST__TASK_TRANSLATE;
        tr.source_lang = (char *)rq->source_lang;
        tr.target_lang = (char *)rq->target_lang;
        r.translate = &tr;
        break;
    case NLPC_TASK_CLASSIFY:
        if (rq->n_labels < 1 || !rq->labels)
            return pack_fail(err, errlen, NLPC_EINVAL, "classify needs at least one label");
        r.task_case = NLP__V1__REQUEST__TASK_CLASSIFY;
        cl.n_labels = (size_t)rq->n_labels;
        cl.labels = (char **)rq->labels;
        if (rq->multi_label) {
            cl.has_multi_label = 1;
            cl.multi_label = 1;
        }
        r.classify = &cl;
        break;
    case NLPC_TASK_QA:
        if (!rq->question || !*rq->question)
            return pack_fail(err, errlen, NLPC_EINVAL, "qa needs a question");
        r.task_case = NLP__V1__REQUEST__TASK_QA;
        qa.question = (char *)rq->question;
        r.qa = &qa;
        break;
    case NLPC_TASK_TEXT2TEXT:
        r.task_case = NLP__V1__REQUEST__TASK_TEXT2TEXT;
        r.text2text = &tt;
        break;
    case NLPC_TASK_HEALTH:
        r.task_case = NLP__V1__REQUEST__TASK_HEALTH;
        r.health = &hr;
        break;
    case NLPC_TASK_STATS:
        r.task_case = NLP__V1__REQUEST__TASK_STATS;
        r.stats = &sr;
        break;
    default: return pack_fail(err, errlen, NLPC_EINVAL, "unknown task %d", (int)rq->task);
    }
    if (is_task(rq->task)) {
        if (rq->n_docs < 1 || !rq->docs)
            return pack_fail(err, errlen, NLPC_EINVAL, "a %s request needs at least one document",
                             nlpc_task_name(rq->task));
        for (int i = 0; i < rq->n_docs; i++)
            if (!rq->docs[i]) return pack_fail(err, errlen, NLPC_EINVAL, "document %d is NULL", i);
        r.n_documents = (size_t)rq->n_docs;
        r.documents = (char **)rq->docs;
    }

    const nlpc_decode_opts *o = &rq->opts;
    int any = 0;
#define SET_INT(field, val)             \
    do {                                \
        if ((val) >= 0) {               \
            op.has_##field = 1;         \
            op.field = (uint32_t)(val); \
            any = 1;                    \
        }                               \
    } while (0)
#define SET_FLOAT(field, val)   \
    do {                        \
        if (!isnan(val)) {      \
            op.has_##field = 1; \
            op.field = (val);   \
            any = 1;            \
        }                       \
    } while (0)
    SET_INT(max_new_tokens, o->max_new_tokens);
    SET_INT(num_beams, o->num_beams);
    SET_INT(min_new_tokens, o->min_new_tokens);
    SET_INT(no_repeat_ngram_size, o->no_repeat_ngram_size);
    SET_INT(top_k, o->top_k);
    SET_INT(num_return_sequences, o->num_return_sequences);
    SET_FLOAT(length_penalty, o->length_penalty);
    SET_FLOAT(repetition_penalty, o->repetition_penalty);
    SET_FLOAT(temperature, o->temperature);
    SET_FLOAT(top_p, o->top_p);
#undef SET_INT
#undef SET_FLOAT
    if (o->seed >= 0) {
        op.has_seed = 1;
        op.seed = (uint64_t)o->seed;
        any = 1;
    }
    if (o->return_hypotheses) {
        op.has_return_hypotheses = 1;
        op.return_hypotheses = 1;
        any = 1;
    }
    if (any) r.options = &op;
    if (rq->deadline_ms) {
        r.has_deadline_ms = 1;
        r.deadline_ms = rq->deadline_ms;
    }
    if (rq->priority) {
        r.has_priority = 1;
        r.priority = rq->priority;
    }
    if (model && *model) r.model = (char *)model;

    *len = nlp__v1__request__get_packed_size(&r);
    *buf = malloc(*len ? *len : 1);
    if (!*buf) return pack_fail(err, errlen, NLPC_ENOMEM, "out of memory packing a request");
    nlp__v1__request__pack(&r, *buf);
    return 0;
}

int64_t nlpc_send(nlpc_client *c, const nlpc_request *rq) { return nlpc_send_model(c, rq, NULL); }

int64_t nlpc_send_model(nlpc_client *c, const nlpc_request *rq, const char *model)
{
    if (!c || !rq) return NLPC_EINVAL;
    uint64_t id = c->next_id;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nlpc_request_pack_model(rq, model, id, &buf, &len, c->err, sizeof c->err);
    if (rc < 0) return rc;
    if (c->max_message && len > c->max_message) {
        free(buf);
        return fail(c, NLPC_ETOOBIG, "the request is %zu bytes, over the limit of %zu", len,
                    c->max_message);
    }
    int n = zmq_send(c->sock, buf, len, 0);
    int e = errno;
    free(buf);
    if (n < 0) {
        if (e == EAGAIN)
            return fail(c, NLPC_ETIMEOUT, "send timed out: the daemon takes no requests");
        return fail(c, NLPC_ECONN, "send: %s", zmq_strerror(e));
    }
    c->next_id++;
    c->in_flight++;
    return (int64_t)id;
}

/* ---- decoding ---- */

static void queue_stats(nlpc_queue_stats *d, const Nlp__V1__QueueStats *q)
{
    if (!q) return;
    d->has = 1;
    d->connected = q->connected;
    d->lag = q->lag;
    d->pending = q->pending;
    d->held = q->held;
    d->claims = q->claims;
    d->dead_letters = q->dead_letters;
    d->results = q->results;
    d->lost = q->lost;
    d->reconnects = q->reconnects;
}

/* Every array here is allocated once per response and freed by nlpc_response_free; the
 * strings stay in the unpacked protobuf (priv). */
static nlpc_response *convert(Nlp__V1__Response *pb)
{
    nlpc_response *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->priv = pb;
    r->id = pb->has_id ? pb->id : 0;
    r->code = pb->status && pb->status->has_code ? (int)pb->status->code : NLPC_OK;
    r->message = str_or_empty(pb->status ? pb->status->message : NULL);
    if (pb->timings) {
        r->queue_ms = pb->timings->queue_ms;
        r->compute_ms = pb->timings->compute_ms;
        r->total_ms = pb->timings->total_ms;
    }
    nlpc_result *res = NULL;
    if (pb->n_results) {
        res = calloc(pb->n_results, sizeof *res);
        if (!res) goto fail;
        r->results = res;
    }
    r->n_results = (int)pb->n_results;
    for (size_t i = 0; i < pb->n_results; i++) {
        const Nlp__V1__Result *p = pb->results[i];
        nlpc_result *q = &res[i];
        q->code = p->status && p->status->has_code ? (int)p->status->code : NLPC_OK;
        q->message = str_or_empty(p->status ? p->status->message : NULL);
        q->text = str_or_empty(p->text);
        q->answer = str_or_empty(p->answer);
        q->score = p->score;
        q->input_tokens = p->input_tokens;
        q->output_tokens = p->output_tokens;
        q->truncated = p->truncated;
        if (p->n_labels) {
            nlpc_label *l = calloc(p->n_labels, sizeof *l);
            if (!l) goto fail;
            for (size_t k = 0; k < p->n_labels; k++) {
                l[k].label = str_or_empty(p->labels[k]->label);
                l[k].score = p->labels[k]->score;
            }
            q->labels = l;
            q->n_labels = (int)p->n_labels;
        }
        if (p->n_hypotheses) {
            nlpc_hyp *h = calloc(p->n_hypotheses, sizeof *h);
            if (!h) goto fail;
            for (size_t k = 0; k < p->n_hypotheses; k++) {
                h[k].text = str_or_empty(p->hypotheses[k]->text);
                h[k].score = p->hypotheses[k]->score;
            }
            q->hyps = h;
            q->n_hyps = (int)p->n_hypotheses;
        }
    }
    if (pb->health) {
        const Nlp__V1__Health *h = pb->health;
        queue_stats(&r->health.queue, h->queue);
        r->has_health = 1;
        r->health.ok = h->ok;
        r->health.shutting_down = h->shutting_down;
        r->health.model = str_or_empty(h->model);
        r->health.version = str_or_empty(h->version);
        r->health.uptime_s = h->uptime_s;
        r->health.model_type = str_or_empty(h->model_type);
        r->health.tasks = (const char *const *)h->tasks;
        r->health.n_tasks = (int)h->n_tasks;
        r->health.languages = (const char *const *)h->languages;
        r->health.n_languages = (int)h->n_languages;
        r->loading = h->loading;
        if (h->n_models) {
            nlpc_model_info *m = calloc(h->n_models, sizeof *m);
            if (!m) goto fail;
            for (size_t k = 0; k < h->n_models; k++) {
                const Nlp__V1__ModelInfo *p = h->models[k];
                m[k].name = str_or_empty(p->name);
                m[k].path = str_or_empty(p->path);
                m[k].model_type = str_or_empty(p->model_type);
                m[k].weights = str_or_empty(p->weights);
                m[k].tasks = (const char *const *)p->tasks;
                m[k].n_tasks = (int)p->n_tasks;
                m[k].languages = (const char *const *)p->languages;
                m[k].n_languages = (int)p->n_languages;
                m[k].resident_bytes = p->resident_bytes;
                m[k].requests = p->requests;
                m[k].state = str_or_empty(p->state);
            }
            r->models = m;
            r->n_models = (int)h->n_models;
        }
    }
    if (pb->stats) {
        const Nlp__V1__Stats *s = pb->stats;
        nlpc_stats *d = &r->stats;
        r->has_stats = 1;
        d->requests = s->requests;
        d->documents = s->documents;
        d->batches = s->batches;
        d->input_tokens = s->input_tokens;
        d->output_tokens = s->output_tokens;
        d->queue_depth = s->queue_depth;
        d->in_flight = s->in_flight;
        d->peak_rows = s->peak_rows;
        d->replies_dropped = s->replies_dropped;
        d->tokens_per_s = s->tokens_per_s;
        d->latency_p50_ms = s->latency_p50_ms;
        d->latency_p90_ms = s->latency_p90_ms;
        d->latency_p99_ms = s->latency_p99_ms;
        d->mean_batch_size = s->mean_batch_size;
        d->uptime_s = s->uptime_s;
        queue_stats(&d->queue, s->queue);
        if (s->n_responses) {
            nlpc_code_count *cc = calloc(s->n_responses, sizeof *cc);
            if (!cc) goto fail;
            for (size_t k = 0; k < s->n_responses; k++) {
                cc[k].code = (int)s->responses[k]->code;
                cc[k].count = s->responses[k]->count;
            }
            d->responses = cc;
            d->n_responses = (int)s->n_responses;
        }
    }
    return r;

fail:
    r->priv = NULL; /* the caller still owns pb on failure */
    nlpc_response_free(&r);
    return NULL;
}

void nlpc_response_free(nlpc_response **rp)
{
    if (!rp || !*rp) return;
    nlpc_response *r = *rp;
    for (int i = 0; i < r->n_results; i++) {
        free((void *)r->results[i].labels);
        free((void *)r->results[i].hyps);
    }
    free((void *)r->results);
    free((void *)r->stats.responses);
    free((void *)r->models);
    if (r->priv) nlp__v1__response__free_unpacked(r->priv, NULL);
    free(r);
    *rp = NULL;
}

/* Receives one message (all its frames) from the socket, waiting up to timeout_ms.
 * The payload is the last frame: a DEALER sees exactly one, but tolerate an empty
 * delimiter in front (a ROUTER that answers as if to a REQ). */
static int recv_one(nlpc_client *c, int timeout_ms, nlpc_response **out)
{
    zmq_pollitem_t it = { c->sock, 0, ZMQ_POLLIN, 0 };
    int n = zmq_poll(&it, 1, timeout_ms < 0 ? -1 : timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return fail(c, NLPC_ETIMEOUT, "interrupted while waiting");
        return fail(c, NLPC_ECONN, "poll: %s", zmq_strerror(errno));
    }
    if (n == 0)
        return fail(c, NLPC_ETIMEOUT, "no reply within %d ms (is nlpd running?)", timeout_ms);

    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        if (zmq_msg_recv(&msg, c->sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            return fail(c, NLPC_ECONN, "recv: %s", zmq_strerror(e));
        }
        if (!zmq_msg_more(&msg)) break;
    }
    size_t sz = zmq_msg_size(&msg);
    nlpc_response *r = NULL;
    int rc = nlpc_response_decode(zmq_msg_data(&msg), sz, &r);
    zmq_msg_close(&msg);
    if (rc == NLPC_EPROTO)
        return fail(c, rc, "dropped a %zu-byte reply that is not a Response", sz);
    if (rc < 0) return fail(c, rc, "out of memory decoding a reply");
    if (c->in_flight > 0) c->in_flight--;
    *out = r;
    return 0;
}

int nlpc_response_decode(const void *frame, size_t len, nlpc_response **out)
{
    if (!out || (!frame && len)) return NLPC_EINVAL;
    *out = NULL;
    Nlp__V1__Response *pb = nlp__v1__response__unpack(NULL, len, frame);
    if (!pb) return NLPC_EPROTO;
    nlpc_response *r = convert(pb);
    if (!r) {
        nlp__v1__response__free_unpacked(pb, NULL);
        return NLPC_ENOMEM;
    }
    *out = r;
    return 0;
}

static int keep(nlpc_client *c, nlpc_response *r)
{
    if (c->n_kept == c->cap_kept) {
        int cap = c->cap_kept ? 2 * c->cap_kept : 16;
        nlpc_response **k = realloc(c->kept, (size_t)cap * sizeof *k);
        if (!k) return NLPC_ENOMEM;
        c->kept = k;
        c->cap_kept = cap;
    }
    c->kept[c->n_kept++] = r;
    return 0;
}

int nlpc_recv(nlpc_client *c, int timeout_ms, nlpc_response **out)
{
    if (!c || !out) return NLPC_EINVAL;
    *out = NULL;
    if (c->n_kept) {
        *out = c->kept[0];
        memmove(c->kept, c->kept + 1, (size_t)(c->n_kept - 1) * sizeof *c->kept);
        c->n_kept--;
        return 0;
    }
    return recv_one(c, timeout_ms, out);
}

int nlpc_call(nlpc_client *c, const nlpc_request *rq, int timeout_ms, nlpc_response **out)
{
    return nlpc_call_model(c, rq, NULL, timeout_ms, out);
}

int nlpc_call_model(nlpc_client *c, const nlpc_request *rq, const char *model, int timeout_ms,
                    nlpc_response **out)
{
    if (!c || !out) return NLPC_EINVAL;
    *out = NULL;
    int64_t id = nlpc_send_model(c, rq, model);
    if (id < 0) return (int)id;
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t l = end - now_ms();
            left = l > 0 ? (int)l : 0;
        }
        nlpc_response *r = NULL;
        int rc = recv_one(c, left, &r);
        if (rc == NLPC_EPROTO) continue; /* garbage on the wire is not our reply */
        if (rc < 0) return rc;
        if (r->id == (uint64_t)id) {
            *out = r;
            return 0;
        }
        if (keep(c, r) < 0) {
            nlpc_response_free(&r);
            return fail(c, NLPC_ENOMEM, "out of memory keeping a reply");
        }
    }
}

/* ---- names ---- */

const char *nlpc_version(void) { return NLPC_VERSION; }

const char *nlpc_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case NLPC_EINVAL: return "invalid argument";
    case NLPC_ETIMEOUT: return "timed out";
    case NLPC_ECONN: return "connection error";
    case NLPC_EPROTO: return "protocol error";
    case NLPC_ENOMEM: return "out of memory";
    case NLPC_ETOOBIG: return "request too large";
    default: return "unknown error";
    }
}

/* The names are the wire enum's own (protobuf-c's descriptor), so a status added to
 * nlp.proto is named here without an edit. */
const char *nlpc_code_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nlp__v1__status_code__descriptor, code);
    return v ? v->name : "UNKNOWN_STATUS";
}

static const char *const task_names[] = {
    NULL, "summarize", "translate", "classify", "qa", "text2text", "health", "stats",
};

const char *nlpc_task_name(nlpc_task task)
{
    if (task > 0 && task <= NLPC_TASK_STATS) return task_names[task];
    return "none";
}

nlpc_task nlpc_task_from_name(const char *name)
{
    for (int i = 1; i <= NLPC_TASK_STATS; i++)
        if (name && !strcmp(name, task_names[i])) return (nlpc_task)i;
    return NLPC_TASK_NONE;
}
