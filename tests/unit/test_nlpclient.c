/* libnlpclient against a scripted ROUTER in a thread (no daemon, no model): packing of
 * every task and option, decoding of every reply field, replies out of order, nlpc_call
 * keeping other replies, timeouts, garbage frames, oversize requests refused before
 * sending and the connection events. The end-to-end tests against nlpd
 * are tests/scripts/e2e_*.sh. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zmq.h>

#include "clients/libnlpclient/nlpclient.h"
#include "common/common.h"
#include "daemon/dmn_req.h"
#include "proto/nlp.pb-c.h"
#include "tests/harness/harness.h"

/* The mock answers each request from what it asked, so the test can check both ways:
 * text = "<task>:<document>", score = number of options set, labels in reverse order
 * with scores 1/(i+1), answer = question. `hold` requests are collected and answered in
 * reverse order of arrival. A document "GARBAGE" gets a frame that is not a Response. */
typedef struct mock {
    char endpoint[128];
    void *zctx, *sock;
    int hold;
    int serve; /* requests to answer before the thread ends */
    pthread_t th;
    Nlp__V1__Request *last; /* copy of the last request seen (owned by the mock) */
} mock;

static int count_opts(const Nlp__V1__DecodingOptions *o)
{
    if (!o) return 0;
    return o->has_max_new_tokens + o->has_num_beams + o->has_length_penalty +
           o->has_min_new_tokens + o->has_no_repeat_ngram_size + o->has_repetition_penalty +
           o->has_temperature + o->has_top_k + o->has_top_p + o->has_seed +
           o->has_num_return_sequences + o->has_return_hypotheses;
}

static void answer(mock *m, zmq_msg_t *ident, Nlp__V1__Request *rq)
{
    Nlp__V1__Response r = NLP__V1__RESPONSE__INIT;
    Nlp__V1__Status st = NLP__V1__STATUS__INIT;
    Nlp__V1__Result res = NLP__V1__RESULT__INIT, *resp[1] = { &res };
    Nlp__V1__Status rst = NLP__V1__STATUS__INIT;
    Nlp__V1__LabelScore ls[8], *lsp[8];
    Nlp__V1__Health h = NLP__V1__HEALTH__INIT;
    Nlp__V1__Stats s = NLP__V1__STATS__INIT;
    Nlp__V1__CodeCount cc = NLP__V1__CODE_COUNT__INIT, *ccp[1] = { &cc };
    Nlp__V1__Timings tm = NLP__V1__TIMINGS__INIT;
    char text[256];

    r.has_id = 1;
    r.id = rq->id;
    r.status = &st;
    r.timings = &tm;
    tm.has_total_ms = 1;
    tm.total_ms = 1.5;
    res.status = &rst;
    int garbage = rq->n_documents && !strcmp(rq->documents[0], "GARBAGE");
    switch (rq->task_case) {
    case NLP__V1__REQUEST__TASK_HEALTH:
        r.health = &h;
        h.has_ok = h.ok = 1;
        h.model = "mock-model";
        h.version = "0.0";
        break;
    case NLP__V1__REQUEST__TASK_STATS:
        r.stats = &s;
        s.has_requests = 1;
        s.requests = 42;
        s.n_responses = 1;
        s.responses = ccp;
        cc.has_code = cc.has_count = 1;
        cc.code = NLP__V1__STATUS_CODE__OVERLOADED;
        cc.count = 3;
        break;
    default:
        if (rq->n_documents == 0) {
            st.has_code = 1;
            st.code = NLP__V1__STATUS_CODE__INVALID_ARGUMENT;
            st.message = "no documents";
            break;
        }
        r.n_results = 1;
        r.results = resp;
        snprintf(text, sizeof text, "%d:%s", (int)rq->task_case, rq->documents[0]);
        res.text = text;
        res.has_score = 1;
        res.score = count_opts(rq->options);
        if (rq->task_case == NLP__V1__REQUEST__TASK_CLASSIFY) {
            size_t n = rq->classify->n_labels < 8 ? rq->classify->n_labels : 8;
            for (size_t i = 0; i < n; i++) {
                Nlp__V1__LabelScore init = NLP__V1__LABEL_SCORE__INIT;
                ls[i] = init;
                ls[i].label = rq->classify->labels[n - 1 - i];
                ls[i].has_score = 1;
                ls[i].score = 1.0 / (double)(i + 1);
                lsp[i] = &ls[i];
            }
            res.n_labels = n;
            res.labels = lsp;
        }
        if (rq->model && *rq->model) { /* the model named, echoed */
            size_t k = strlen(text);
            snprintf(text + k, sizeof text - k, "@%s", rq->model);
        }
        if (rq->task_case == NLP__V1__REQUEST__TASK_QA) res.answer = rq->qa->question;
        if (rq->task_case == NLP__V1__REQUEST__TASK_TRANSLATE) {
            snprintf(text, sizeof text, "%s>%s:%s",
                     rq->translate->source_lang ? rq->translate->source_lang : "",
                     rq->translate->target_lang, rq->documents[0]);
        }
    }
    size_t len = nlp__v1__response__get_packed_size(&r);
    uint8_t *buf = malloc(len + 1);
    nlp__v1__response__pack(&r, buf);
    zmq_msg_send(ident, m->sock, ZMQ_SNDMORE);
    if (garbage) zmq_send(m->sock, "\xff\xff\xff", 3, 0);
    else zmq_send(m->sock, buf, len, 0);
    free(buf);
}

static void *mock_main(void *arg)
{
    mock *m = arg;
    zmq_msg_t ids[64];
    Nlp__V1__Request *held[64];
    int n_held = 0;
    while (m->serve > 0) {
        zmq_msg_t id, payload;
        zmq_msg_init(&id);
        zmq_msg_init(&payload);
        if (zmq_msg_recv(&id, m->sock, 0) < 0) break;
        if (zmq_msg_recv(&payload, m->sock, 0) < 0) break;
        Nlp__V1__Request *rq =
            nlp__v1__request__unpack(NULL, zmq_msg_size(&payload), zmq_msg_data(&payload));
        zmq_msg_close(&payload);
        if (!rq) {
            zmq_msg_close(&id);
            continue;
        }
        if (m->last) nlp__v1__request__free_unpacked(m->last, NULL);
        m->last = NULL;
        if (m->hold > 1) {
            ids[n_held] = id;
            held[n_held++] = rq;
            if (n_held == m->hold) {
                for (int i = n_held - 1; i >= 0; i--) {
                    answer(m, &ids[i], held[i]);
                    zmq_msg_close(&ids[i]);
                    nlp__v1__request__free_unpacked(held[i], NULL);
                    m->serve--;
                }
                n_held = 0;
            }
            continue;
        }
        answer(m, &id, rq);
        zmq_msg_close(&id);
        m->last = rq;
        m->serve--;
    }
    return NULL;
}

static void mock_start(mock *m, int serve, int hold)
{
    memset(m, 0, sizeof *m);
    snprintf(m->endpoint, sizeof m->endpoint, "ipc:///tmp/nlpc-test-%d.sock", (int)getpid());
    m->zctx = zmq_ctx_new();
    m->sock = zmq_socket(m->zctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(m->sock, ZMQ_LINGER, &linger, sizeof linger);
    REQUIRE(zmq_bind(m->sock, m->endpoint) == 0);
    m->serve = serve;
    m->hold = hold;
    REQUIRE(pthread_create(&m->th, NULL, mock_main, m) == 0);
}

static void mock_stop(mock *m)
{
    pthread_join(m->th, NULL);
    if (m->last) nlp__v1__request__free_unpacked(m->last, NULL);
    zmq_close(m->sock);
    zmq_ctx_term(m->zctx);
    unlink(m->endpoint + strlen("ipc://"));
}

TEST(nlpc_call_every_task)
{
    mock m;
    mock_start(&m, 7, 1);
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    const char *doc = "hello world";
    nlpc_request rq;
    nlpc_response *r = NULL;

    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.docs = &doc;
    rq.n_docs = 1;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(r->code == NLPC_OK);
    REQUIRE(r->n_results == 1);
    CHECK_MSG(!strcmp(r->results[0].text, "2:hello world"), "text '%s'", r->results[0].text);
    CHECK(r->results[0].score == 0); /* no options set: none on the wire */
    CHECK(r->total_ms == 1.5);
    CHECK(!strcmp(r->results[0].answer, "")); /* absent strings are "" */
    nlpc_response_free(&r);
    CHECK(r == NULL);

    nlpc_request_init(&rq, NLPC_TASK_TRANSLATE);
    rq.docs = &doc;
    rq.n_docs = 1;
    rq.target_lang = "de";
    rq.source_lang = "en";
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK_MSG(!strcmp(r->results[0].text, "en>de:hello world"), "'%s'", r->results[0].text);
    nlpc_response_free(&r);

    const char *labels[] = { "a", "b", "c" };
    nlpc_request_init(&rq, NLPC_TASK_CLASSIFY);
    rq.docs = &doc;
    rq.n_docs = 1;
    rq.labels = labels;
    rq.n_labels = 3;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    REQUIRE(r->results[0].n_labels == 3);
    CHECK(!strcmp(r->results[0].labels[0].label, "c"));
    CHECK(!strcmp(r->results[0].labels[2].label, "a"));
    CHECK(fabs(r->results[0].labels[1].score - 0.5) < 1e-12);
    nlpc_response_free(&r);

    nlpc_request_init(&rq, NLPC_TASK_QA);
    rq.docs = &doc;
    rq.n_docs = 1;
    rq.question = "who?";
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(!strcmp(r->results[0].answer, "who?"));
    nlpc_response_free(&r);

    /* every decoding option reaches the wire: the mock counts them */
    nlpc_request_init(&rq, NLPC_TASK_TEXT2TEXT);
    rq.docs = &doc;
    rq.n_docs = 1;
    nlpc_decode_opts *o = &rq.opts;
    o->max_new_tokens = 5;
    o->min_new_tokens = 0; /* 0 is a value, not "unset" */
    o->num_beams = 2;
    o->num_return_sequences = 2;
    o->no_repeat_ngram_size = 3;
    o->top_k = 4;
    o->length_penalty = 0.0f;
    o->repetition_penalty = 1.2f;
    o->temperature = 0.7f;
    o->top_p = 0.9f;
    o->seed = 0;
    o->return_hypotheses = 1;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK_MSG(r->results[0].score == 12, "options on the wire: %g", r->results[0].score);
    nlpc_response_free(&r);

    nlpc_request_init(&rq, NLPC_TASK_HEALTH);
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(r->has_health && r->health.ok && !strcmp(r->health.model, "mock-model"));
    nlpc_response_free(&r);

    nlpc_request_init(&rq, NLPC_TASK_STATS);
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(r->has_stats && r->stats.requests == 42);
    REQUIRE(r->stats.n_responses == 1);
    CHECK(r->stats.responses[0].code == NLPC_OVERLOADED && r->stats.responses[0].count == 3);
    nlpc_response_free(&r);

    CHECK(nlpc_in_flight(c) == 0);
    nlpc_client_destroy(&c);
    CHECK(c == NULL);
    mock_stop(&m);
}

TEST(nlpc_many_in_flight_out_of_order)
{
    enum { N = 20 };
    mock m;
    mock_start(&m, N, N); /* answers all 20 only once all arrived, last first */
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE(c);
    char docs[N][16];
    int64_t ids[N];
    for (int i = 0; i < N; i++) {
        snprintf(docs[i], sizeof docs[i], "doc%d", i);
        const char *d = docs[i];
        nlpc_request rq;
        nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
        rq.docs = &d;
        rq.n_docs = 1;
        ids[i] = nlpc_send(c, &rq);
        REQUIRE(ids[i] > 0);
        if (i) CHECK(ids[i] > ids[i - 1]);
    }
    CHECK(nlpc_in_flight(c) == N);
    int seen[N] = { 0 };
    for (int k = 0; k < N; k++) {
        nlpc_response *r = NULL;
        REQUIRE(nlpc_recv(c, 5000, &r) == 0);
        int i = -1;
        for (int j = 0; j < N; j++)
            if ((uint64_t)ids[j] == r->id) i = j;
        REQUIRE(i >= 0);
        char want[32];
        snprintf(want, sizeof want, "2:doc%d", i);
        CHECK_MSG(!strcmp(r->results[0].text, want), "id %d got '%s'", i, r->results[0].text);
        if (k == 0) CHECK(i == N - 1); /* the mock answers last first */
        seen[i]++;
        nlpc_response_free(&r);
    }
    for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
    CHECK(nlpc_in_flight(c) == 0);
    nlpc_client_destroy(&c);
    mock_stop(&m);
}

TEST(nlpc_call_keeps_other_replies)
{
    mock m;
    mock_start(&m, 3, 3); /* three requests, answered in reverse */
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE(c);
    const char *a = "A", *b = "B", *x = "X";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.n_docs = 1;
    rq.docs = &a;
    int64_t ida = nlpc_send(c, &rq);
    rq.docs = &b;
    int64_t idb = nlpc_send(c, &rq);
    REQUIRE(ida > 0 && idb > 0);
    rq.docs = &x;
    nlpc_response *r = NULL;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0); /* X comes first, nothing kept yet */
    CHECK(!strcmp(r->results[0].text, "2:X"));
    nlpc_response_free(&r);
    REQUIRE(nlpc_recv(c, 5000, &r) == 0);
    CHECK(r->id == (uint64_t)idb && !strcmp(r->results[0].text, "2:B"));
    nlpc_response_free(&r);
    REQUIRE(nlpc_recv(c, 5000, &r) == 0);
    CHECK(r->id == (uint64_t)ida && !strcmp(r->results[0].text, "2:A"));
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    mock_stop(&m);
}

TEST(nlpc_call_buffers_earlier_replies)
{
    mock m;
    mock_start(&m, 2, 1); /* answered in order: A's reply arrives while waiting for B */
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE(c);
    const char *a = "A", *b = "B";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.n_docs = 1;
    rq.docs = &a;
    int64_t ida = nlpc_send(c, &rq);
    rq.docs = &b;
    nlpc_response *r = NULL;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(!strcmp(r->results[0].text, "2:B"));
    nlpc_response_free(&r);
    CHECK(nlpc_in_flight(c) == 1); /* A's reply is kept, not yet returned */
    REQUIRE(nlpc_recv(c, 0, &r) == 0);
    CHECK(r->id == (uint64_t)ida && !strcmp(r->results[0].text, "2:A"));
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    mock_stop(&m);
}

TEST(nlpc_timeout_without_server)
{
    char err[256], ep[128];
    snprintf(ep, sizeof ep, "ipc:///tmp/nlpc-nobody-%d.sock", (int)getpid());
    nlpc_client *c = nlpc_client_new(ep, err, sizeof err);
    REQUIRE(c);
    const char *d = "x";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.docs = &d;
    rq.n_docs = 1;
    nlpc_response *r = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(nlpc_call(c, &rq, 200, &r) == NLPC_ETIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK_MSG(ms >= 150 && ms < 2000, "waited %.0f ms", ms);
    CHECK(r == NULL);
    CHECK(strstr(nlpc_client_error(c), "200 ms") != NULL);
    nlpc_client_destroy(&c); /* bounded linger: must not hang on the unsent request */
}

TEST(nlpc_garbage_reply_is_an_error)
{
    mock m;
    mock_start(&m, 2, 1);
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE(c);
    const char *g = "GARBAGE";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.docs = &g;
    rq.n_docs = 1;
    REQUIRE(nlpc_send(c, &rq) > 0);
    nlpc_response *r = NULL;
    CHECK(nlpc_recv(c, 5000, &r) == NLPC_EPROTO);
    CHECK(r == NULL);
    /* the client goes on working after a bad frame */
    const char *d = "ok";
    rq.docs = &d;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(!strcmp(r->results[0].text, "2:ok"));
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    mock_stop(&m);
}

TEST(nlpc_bad_requests_rejected_locally)
{
    char err[256];
    CHECK(nlpc_client_new("", err, sizeof err) == NULL);
    CHECK(nlpc_client_new("bogus://x", err, sizeof err) == NULL);
    CHECK(strlen(err) > 0);
    nlpc_client *c = nlpc_client_new("tcp://127.0.0.1:1", err, sizeof err);
    REQUIRE(c);
    const char *d = "x";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_CLASSIFY);
    rq.docs = &d;
    rq.n_docs = 1;
    CHECK(nlpc_send(c, &rq) == NLPC_EINVAL); /* no labels */
    CHECK(strstr(nlpc_client_error(c), "label") != NULL);
    nlpc_request_init(&rq, NLPC_TASK_TRANSLATE);
    rq.docs = &d;
    rq.n_docs = 1;
    CHECK(nlpc_send(c, &rq) == NLPC_EINVAL); /* no target */
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    CHECK(nlpc_send(c, &rq) == NLPC_EINVAL); /* no document */
    nlpc_request_init(&rq, (nlpc_task)99);
    CHECK(nlpc_send(c, &rq) == NLPC_EINVAL);
    CHECK(nlpc_in_flight(c) == 0);
    CHECK(nlpc_task_from_name("qa") == NLPC_TASK_QA);
    CHECK(nlpc_task_from_name("nope") == NLPC_TASK_NONE);
    CHECK(!strcmp(nlpc_code_name(NLPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED"));
    CHECK(!strcmp(nlpc_code_name(999), "UNKNOWN_STATUS"));
    nlpc_client_destroy(&c);
}

/* Every status the wire enum has is named by both sides as nlp.proto spells it, the
 * last one added (UNKNOWN_MODEL) included; a code past the enum is not a name. */
TEST(nlpc_status_names_are_the_wire_enums)
{
    const ProtobufCEnumDescriptor *d = &nlp__v1__status_code__descriptor;
    REQUIRE(d->n_values >= 13);
    for (unsigned i = 0; i < d->n_values; i++) {
        int code = d->values[i].value;
        CHECK_MSG(!strcmp(nlpc_code_name(code), d->values[i].name), "%d: %s", code,
                  nlpc_code_name(code));
        CHECK_MSG(!strcmp(dmn_code_name(code), d->values[i].name), "%d: %s", code,
                  dmn_code_name(code));
    }
    CHECK(!strcmp(nlpc_code_name(NLPC_UNKNOWN_MODEL), "UNKNOWN_MODEL"));
    CHECK(!strcmp(dmn_code_name(12), "UNKNOWN_MODEL"));
    CHECK(!strcmp(nlpc_code_name(-1), "UNKNOWN_STATUS"));
    CHECK(!strcmp(nlpc_code_name((int)d->n_values + 100), "UNKNOWN_STATUS"));
}

TEST(nlpc_pack_and_decode_without_socket)
{
    const char *doc = "d";
    const char *labels[] = { "x", "y" };
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_CLASSIFY);
    rq.docs = &doc;
    rq.n_docs = 1;
    rq.labels = labels;
    rq.n_labels = 2;
    rq.multi_label = 1;
    rq.priority = -5;
    rq.deadline_ms = 1234;
    rq.opts.num_beams = 3;
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[128];
    REQUIRE(nlpc_request_pack(&rq, 99, &buf, &len, err, sizeof err) == 0);
    Nlp__V1__Request *pb = nlp__v1__request__unpack(NULL, len, buf);
    REQUIRE(pb);
    CHECK(pb->id == 99 && pb->task_case == NLP__V1__REQUEST__TASK_CLASSIFY);
    CHECK(pb->classify->n_labels == 2 && !strcmp(pb->classify->labels[1], "y"));
    CHECK(pb->classify->has_multi_label && pb->classify->multi_label);
    CHECK(pb->has_priority && pb->priority == -5);
    CHECK(pb->has_deadline_ms && pb->deadline_ms == 1234);
    CHECK(pb->options && pb->options->has_num_beams && pb->options->num_beams == 3);
    CHECK(!pb->options->has_max_new_tokens && !pb->options->has_seed);
    nlp__v1__request__free_unpacked(pb, NULL);
    free(buf);

    rq.n_labels = 0;
    CHECK(nlpc_request_pack(&rq, 1, &buf, &len, err, sizeof err) == NLPC_EINVAL);
    CHECK(strstr(err, "label") != NULL);

    nlpc_response *r = NULL;
    CHECK(nlpc_response_decode("\xff\xff\xff", 3, &r) == NLPC_EPROTO && r == NULL);
    /* a zero-length frame is a valid, empty Response: id 0, OK, no results */
    REQUIRE(nlpc_response_decode("", 0, &r) == 0);
    CHECK(r->id == 0 && r->code == NLPC_OK && r->n_results == 0 && !strcmp(r->message, ""));
    nlpc_response_free(&r);
}

/* Request.model: sent by the _model calls and only by them ("" and NULL send none). */
TEST(nlpc_model_is_sent_by_name)
{
    mock m;
    mock_start(&m, 3, 1);
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    const char *doc = "hello";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.docs = &doc;
    rq.n_docs = 1;
    nlpc_response *r = NULL;
    REQUIRE(nlpc_call_model(c, &rq, "en-de", 5000, &r) == 0);
    char want[64];
    snprintf(want, sizeof want, "%d:hello", (int)NLP__V1__REQUEST__TASK_SUMMARIZE);
    CHECK_MSG(r->n_results == 1 && !strncmp(r->results[0].text, want, strlen(want)) &&
                  !strcmp(r->results[0].text + strlen(want), "@en-de"),
              "%s", r->n_results ? r->results[0].text : "(none)");
    nlpc_response_free(&r);
    REQUIRE(nlpc_call_model(c, &rq, "", 5000, &r) == 0);
    CHECK(r->n_results == 1 && !strcmp(r->results[0].text, want));
    nlpc_response_free(&r);
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(r->n_results == 1 && !strcmp(r->results[0].text, want));
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    mock_stop(&m);

    uint8_t *buf = NULL;
    size_t len = 0;
    REQUIRE(nlpc_request_pack_model(&rq, "bart-cnn", 7, &buf, &len, err, sizeof err) == 0);
    Nlp__V1__Request *pb = nlp__v1__request__unpack(NULL, len, buf);
    REQUIRE(pb);
    CHECK(pb->id == 7 && pb->model && !strcmp(pb->model, "bart-cnn"));
    nlp__v1__request__free_unpacked(pb, NULL);
    free(buf);
}

/* Health.models and Health.loading reach the caller, field for field. */
TEST(nlpc_health_models_decoded)
{
    Nlp__V1__Response r = NLP__V1__RESPONSE__INIT;
    Nlp__V1__Health h = NLP__V1__HEALTH__INIT;
    Nlp__V1__ModelInfo a = NLP__V1__MODEL_INFO__INIT, b = NLP__V1__MODEL_INFO__INIT;
    Nlp__V1__ModelInfo *mp[2] = { &a, &b };
    char *ta[] = { "summarize", "qa" }, *tb[] = { "translate" }, *lb[] = { "en", "de" };
    r.health = &h;
    h.has_ok = 1;
    h.has_loading = h.loading = 1;
    h.n_models = 2;
    h.models = mp;
    a.name = "flan";
    a.path = "/m/flan";
    a.model_type = "t5";
    a.weights = "f32";
    a.n_tasks = 2;
    a.tasks = ta;
    a.has_resident_bytes = 1;
    a.resident_bytes = 5000000000ULL;
    a.has_requests = 1;
    a.requests = 17;
    a.state = "serving";
    b.name = "en-de";
    b.n_tasks = 1;
    b.tasks = tb;
    b.n_languages = 2;
    b.languages = lb;
    b.state = "loading";
    size_t len = nlp__v1__response__get_packed_size(&r);
    uint8_t *buf = malloc(len);
    REQUIRE(buf);
    nlp__v1__response__pack(&r, buf);
    nlpc_response *out = NULL;
    REQUIRE(nlpc_response_decode(buf, len, &out) == 0);
    free(buf);
    CHECK(out->has_health && out->loading == 1 && out->n_models == 2);
    const nlpc_model_info *m = out->models;
    CHECK(!strcmp(m[0].name, "flan") && !strcmp(m[0].path, "/m/flan"));
    CHECK(!strcmp(m[0].model_type, "t5") && !strcmp(m[0].weights, "f32"));
    CHECK(m[0].n_tasks == 2 && !strcmp(m[0].tasks[1], "qa") && m[0].n_languages == 0);
    CHECK(m[0].resident_bytes == 5000000000ULL && m[0].requests == 17);
    CHECK(!strcmp(m[0].state, "serving") && !strcmp(m[1].state, "loading"));
    CHECK(!strcmp(m[1].name, "en-de") && !strcmp(m[1].weights, "") && !strcmp(m[1].path, ""));
    CHECK(m[1].n_languages == 2 && !strcmp(m[1].languages[1], "de"));
    nlpc_response_free(&out);
    CHECK(out == NULL);
}

static cJSON *parse_or(const char *s, char *err, size_t errlen)
{
    return cm_json_parse_object(s, strlen(s), "line", "column", err, errlen);
}

/* common/cm_json.c: what nlpc batch and the HTTP front refuse, with the reason. */
TEST(cm_json_parse_object_says_why)
{
    static const struct {
        const char *in, *what, *at, *msg;
    } cases[] = {
        { "{\"a\":1} x", "line", "column", "text after the JSON object at column 9" },
        { "{\"a\":\"\\ud800\"}", "body", "byte", "lone UTF-16 surrogate \\ud800 at byte 7" },
        { "{\"a\":1,\"a\":2}", "line", "column", "the key \"a\" appears twice" },
        { "{\"o\":{\"k\":1,\"k\":2}}", "line", "column", "the key \"k\" appears twice" },
        { "{\"a\":\"\xff\"}", "body", "byte", "the body is not valid UTF-8 (byte 7)" },
        { "[1]", "line", "column", "the line is not a JSON object" },
        { "{\"a\":", "body", "byte", "the body is not valid JSON (byte" },
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        cJSON *o = cm_json_parse_object(cases[i].in, strlen(cases[i].in), cases[i].what,
                                        cases[i].at, err, sizeof err);
        CHECK_MSG(!o && strstr(err, cases[i].msg), "%zu: %s", i, err);
        cJSON_Delete(o);
    }
    cJSON *o = parse_or("{\"a\":\"\\ud83d\\ude00\"} \r\n", err, sizeof err);
    CHECK_MSG(o && cJSON_IsObject(o), "%s", err);
    cJSON_Delete(o);
}

/* The task fields of a line or a body: only the task's own, "model" for every task, a
 * key absent or null keeps the default, a wrong type names the key. */
TEST(cm_json_task_fields_and_model)
{
    char err[256], *buf = NULL;
    const char *labels[4], *model = "dflt";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_CLASSIFY);
    cJSON *o = parse_or("{\"labels\":\" a , b,c\",\"to\":5,\"model\":\"m1\"}", err, sizeof err);
    REQUIRE(o);
    CHECK_MSG(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) == 0, "%s",
              err);
    CHECK(rq.n_labels == 3 && !strcmp(rq.labels[0], "a") && !strcmp(rq.labels[2], "c"));
    CHECK(!strcmp(model, "m1") && cm_json_missing(&rq) == NULL);
    cJSON_Delete(o);
    free(buf);
    buf = NULL;

    nlpc_request_init(&rq, NLPC_TASK_CLASSIFY);
    o = parse_or("{\"labels\":[\"a\",\"\"]}", err, sizeof err);
    CHECK(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "\"labels\" must be a non-empty array"), "%s", err);
    CHECK(!strcmp(cm_json_missing(&rq), "labels"));
    cJSON_Delete(o);
    o = parse_or("{\"labels\":\"a,b,c,d,e\"}", err, sizeof err);
    CHECK(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) < 0);
    cJSON_Delete(o);
    free(buf);
    buf = NULL;

    nlpc_request_init(&rq, NLPC_TASK_TRANSLATE);
    rq.target_lang = "fr";
    model = "dflt";
    o = parse_or("{\"from\":\"en\",\"model\":null,\"question\":1}", err, sizeof err);
    CHECK(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) == 0);
    CHECK(!strcmp(rq.target_lang, "fr") && !strcmp(rq.source_lang, "en"));
    CHECK(!strcmp(model, "dflt"));
    cJSON_Delete(o);
    o = parse_or("{\"model\":\"\"}", err, sizeof err);
    CHECK(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) == 0);
    CHECK(model == NULL);
    cJSON_Delete(o);
    o = parse_or("{\"model\":[\"x\"]}", err, sizeof err);
    CHECK(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) < 0);
    CHECK_MSG(!strcmp(err, "\"model\" must be a string"), "%s", err);
    cJSON_Delete(o);
    o = parse_or("{\"to\":7}", err, sizeof err);
    CHECK(cm_json_task_fields(o, &rq, &model, labels, 4, &buf, err, sizeof err) < 0);
    CHECK_MSG(!strcmp(err, "\"to\" must be a string"), "%s", err);
    cJSON_Delete(o);
    CHECK(buf == NULL);
}

/* One result as nlpc batch prints it: the task's fields, in order. */
TEST(cm_json_result_shapes)
{
    nlpc_label l[2] = { { "pos", 0.75 }, { "neg", 0.25 } };
    nlpc_result r = { .code = NLPC_OK,
                      .message = "",
                      .text = "t",
                      .answer = "a",
                      .score = -1.5,
                      .n_labels = 2,
                      .labels = l,
                      .input_tokens = 4,
                      .output_tokens = 2 };
    static const struct {
        int task;
        const char *want;
    } cases[] = {
        { NLPC_TASK_SUMMARIZE, "{\"status\":\"OK\",\"text\":\"t\",\"score\":-1.5,"
                               "\"input_tokens\":4,\"output_tokens\":2,\"truncated\":false}" },
        { NLPC_TASK_QA, "{\"status\":\"OK\",\"answer\":\"a\",\"score\":-1.5,"
                        "\"input_tokens\":4,\"output_tokens\":2,\"truncated\":false}" },
        { NLPC_TASK_CLASSIFY,
          "{\"status\":\"OK\",\"labels\":[{\"label\":\"pos\",\"score\":0.75},"
          "{\"label\":\"neg\",\"score\":0.25}],\"input_tokens\":4,\"output_tokens\":2,"
          "\"truncated\":false}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *o = cm_json_result(NULL, cases[i].task, &r);
        char *s = cJSON_PrintUnformatted(o);
        CHECK_MSG(s && !strcmp(s, cases[i].want), "%d: %s", cases[i].task, s);
        cJSON_free(s);
        cJSON_Delete(o);
    }
    r.code = NLPC_UNKNOWN_MODEL;
    r.message = "no model named 'x'";
    cJSON *o = cm_json_result(NULL, NLPC_TASK_SUMMARIZE, &r);
    char *s = cJSON_PrintUnformatted(o);
    CHECK_MSG(s && !strcmp(s, "{\"status\":\"UNKNOWN_MODEL\",\"error\":\"no model named 'x'\"}"),
              "%s", s);
    cJSON_free(s);
    cJSON_Delete(o);
}

/* One result as nlpc and nlprun print it readable (cm_result_print): classify's lines to
 * 4 decimals, qa's answer alone, the hypotheses when there are some, nothing when not OK. */
TEST(cm_result_print_shapes)
{
    nlpc_label l[2] = { { "pos", 0.756789 }, { "neg", 0.243211 } };
    nlpc_hyp h[2] = { { "best", -0.123456 }, { "next", -2.5 } };
    nlpc_result r = { .code = NLPC_OK,
                      .message = "",
                      .text = "t",
                      .answer = "a",
                      .score = -1.5,
                      .n_labels = 2,
                      .labels = l };
    static const struct {
        int task, hyps;
        const char *want;
    } cases[] = {
        { NLPC_TASK_SUMMARIZE, 0, "t\n" },
        { NLPC_TASK_TEXT2TEXT, 1, "-0.1235\tbest\n-2.5000\tnext\n" },
        { NLPC_TASK_QA, 0, "a\n" },
        { NLPC_TASK_CLASSIFY, 0, "pos\t0.7568\nneg\t0.2432\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        REQUIRE(f);
        r.n_hyps = cases[i].hyps ? 2 : 0;
        r.hyps = cases[i].hyps ? h : NULL;
        cm_result_print(f, cases[i].task, &r);
        r.code = NLPC_INVALID_ARGUMENT; /* not OK: nothing */
        cm_result_print(f, cases[i].task, &r);
        r.code = NLPC_OK;
        fclose(f);
        CHECK_MSG(buf && !strcmp(buf, cases[i].want), "%d: '%s'", cases[i].task, buf);
        free(buf);
    }
}

TEST(nlpc_oversize_request_refused_before_sending)
{
    mock m;
    mock_start(&m, 1, 1);
    char err[256];
    nlpc_client *c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    nlpc_client_set_max_message(c, 64);
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *doc = big;
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.docs = &doc;
    rq.n_docs = 1;
    nlpc_response *r = NULL;
    CHECK(nlpc_send(c, &rq) == NLPC_ETOOBIG);
    CHECK(nlpc_call(c, &rq, 1000, &r) == NLPC_ETOOBIG && r == NULL);
    CHECK_MSG(strstr(nlpc_client_error(c), "over the limit of 64") != NULL, "%s",
              nlpc_client_error(c));
    CHECK(nlpc_in_flight(c) == 0);
    CHECK(!strcmp(nlpc_strerror(NLPC_ETOOBIG), "request too large"));
    /* nothing was sent and no id was used: the next request is id 1 and answered */
    const char *small = "ok";
    rq.docs = &small;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    CHECK(r->id == 1 && !strcmp(r->results[0].text, "2:ok"));
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    mock_stop(&m);
}

TEST(nlpc_connection_events)
{
    char err[256], ep[128];
    snprintf(ep, sizeof ep, "ipc:///tmp/nlpc-nobody-%d.sock", (int)getpid());
    nlpc_client *c = nlpc_client_new(ep, err, sizeof err);
    REQUIRE(c);
    CHECK(nlpc_client_wait_connected(c, 200) == NLPC_ETIMEOUT);
    CHECK(strstr(nlpc_client_error(c), "not connected") != NULL);
    nlpc_conn_info ci;
    REQUIRE(nlpc_client_conn(c, &ci) == 0);
    CHECK(ci.connected == 0 && ci.connects == 0 && ci.disconnects == 0);
    nlpc_client_destroy(&c);

    /* a daemon that answers, then goes away: connected, then one disconnect (the event
     * that tells a caller its requests in flight will get no reply) */
    mock m;
    mock_start(&m, 1, 1);
    c = nlpc_client_new(m.endpoint, err, sizeof err);
    REQUIRE(c);
    REQUIRE(nlpc_client_wait_connected(c, 5000) == 0);
    REQUIRE(nlpc_client_conn(c, &ci) == 0);
    CHECK(ci.connected == 1 && ci.connects == 1 && ci.disconnects == 0);
    const char *d = "x";
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
    rq.docs = &d;
    rq.n_docs = 1;
    nlpc_response *r = NULL;
    REQUIRE(nlpc_call(c, &rq, 5000, &r) == 0);
    nlpc_response_free(&r);
    mock_stop(&m); /* closes the ROUTER */
    for (int i = 0; i < 500; i++) {
        nlpc_client_conn(c, &ci);
        if (ci.disconnects) break;
        usleep(10000);
    }
    CHECK_MSG(ci.disconnects == 1 && ci.connected == 0, "disconnects %llu connected %d",
              (unsigned long long)ci.disconnects, ci.connected);
    nlpc_client_destroy(&c);
    CHECK(!strcmp(nlpc_version(), NLPC_VERSION));
}
