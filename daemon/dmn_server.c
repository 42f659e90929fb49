/* The server: start-up and teardown (main thread), and the I/O thread's loop (the main
 * thread again, once the worker runs).
 *
 * Threads and ownership:
 *   I/O thread (main): owns the transports (dmn_transport.h: the ZeroMQ ROUTER and
 *     pipeline today) and the PAIR from the worker. zmq_poll with a 100 ms timeout over
 *     all their items; transports hand it request payloads (dmn_server_submit), which
 *     it decodes and validates; answers errors, health and stats at once; queues task
 *     requests (the request then belongs to the queue/worker side); receives finished
 *     requests back over the PAIR, encodes them and sends them through the transport
 *     their route names, frees them.
 *     It also routes each task request to a model (dmn_models.c) and runs the registry's
 *     turn (models loaded, drained, SIGHUP reloads).
 *   workers (dmn_worker.c): one per model, each owning its model's eng_ctx; they share the
 *     PAIR's sending end, one at a time (done_lock).
 *   loader thread (dmn_models.c): loads models, at start-up and on SIGHUP.
 *   signal handler: sets dmn_srv.stop, nothing else. Signals are blocked in the workers
 *     and the loader, so they interrupt the I/O thread's poll.
 *
 * Shutdown: on stop, new task requests are answered SHUTTING_DOWN, transports that pull
 * work (the pipeline) are no longer read, the queue is closed (the worker drains it without waiting to fill
 * batches); once every accepted request is answered the worker is joined and the
 * sockets close with linger_ms for the replies to flush. Nothing accepted is lost. */
#include "daemon/dmn_server.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/common.h"
#include "daemon/dmn_curve.h"
#include "daemon/dmn_http.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_models.h"
#include "daemon/dmn_notify.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_route.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_transport.h"
#include "daemon/dmn_stats.h"
#include "daemon/dmn_redis.h"

/* The daemon's one global. */
dmn_server dmn_srv = { .log_level = DMN_LOG_INFO, .done_lock = PTHREAD_MUTEX_INITIALIZER };

#define DONE_ENDPOINT "inproc://nlpd-done"
#define POLL_MS 100

static void begin_shutdown(dmn_server *srv);

static void on_signal(int sig)
{
    (void)sig;
    dmn_srv.stop = 1;
}

/* SIGHUP: transports re-read their files (http.tokens_file) and the registry the config's
 * models (dmn_models_poll), in the I/O thread. */
static void on_hup(int sig)
{
    (void)sig;
    dmn_reload_gen = dmn_reload_gen + 1;
}

/* tasks.max_beams: a search wider than batching.max_rows runs in an engine call by itself */
static int max_beams(const dmn_server *srv) { return task_conf_max_beams(srv->tasks); }

/* Sends a packed response (ownership of buf moves) through the route's transport. */
static void send_reply(dmn_server *srv, const dmn_route *to, void *buf, size_t len, uint64_t seq,
                       uint64_t id)
{
    dmn_transport *t = to->transport >= 0 && to->transport < srv->n_transports
                           ? srv->transports[to->transport]
                           : NULL;
    if (!t) {
        free(buf);
        return;
    }
    t->ops->reply(t, to, buf, len, seq, id);
}

static void reply_error(dmn_server *srv, const dmn_route *to, uint64_t seq, uint64_t id, int code,
                        const char *msg)
{
    void *buf;
    size_t len;
    DMN_LOG_REQ(DMN_LOG_INFO, seq, id, "%s: %s", dmn_code_name(code), msg);
    dmn_stats_response(srv->stats, code, -1);
    if (dmn_resp_error(id, code, msg, &buf, &len) < 0) return;
    send_reply(srv, to, buf, len, seq, id);
}

int dmn_server_ok(dmn_server *srv) { return !srv->shutting_down && dmn_models_ok(srv); }

int dmn_server_depth(dmn_server *srv) { return dmn_models_depth(srv); }

static void reply_health(dmn_server *srv, const dmn_route *to, uint64_t seq, uint64_t id)
{
    dmn_model *first = dmn_models_first(srv);
    dmn_model_info mi[2 * DMN_MAX_MODELS + DMN_MAX_MODELS];
    dmn_health h = {
        .ok = dmn_server_ok(srv),
        .shutting_down = srv->shutting_down,
        .model = first ? first->conf.path : srv->conf.model_dir,
        .version = "nlpd " DMN_VERSION,
        .uptime_s = cm_now() - srv->t_start,
        .env = first ? &first->env : NULL,
        .loading = dmn_models_loading(srv),
        .models = mi,
    };
    h.n_models = dmn_models_info(srv, mi, (int)(sizeof mi / sizeof mi[0]));
    void *buf;
    size_t len;
    dmn_stats_get_queue(srv->stats, &h.queue);
    dmn_stats_response(srv->stats, DMN_OK, -1);
    if (dmn_resp_health(id, &h, &buf, &len) < 0) return;
    send_reply(srv, to, buf, len, seq, id);
}

static void reply_stats(dmn_server *srv, const dmn_route *to, uint64_t seq, uint64_t id)
{
    dmn_stats_snap s;
    void *buf;
    size_t len;
    /* Counted before the snapshot, so a stats reply includes itself. */
    dmn_stats_response(srv->stats, DMN_OK, -1);
    dmn_stats_snapshot(srv->stats, &s, cm_now());
    s.queue_depth = (uint32_t)dmn_server_depth(srv);
    s.in_flight = (uint32_t)srv->in_flight;
    if (dmn_resp_stats(id, &s, &buf, &len) < 0) return;
    send_reply(srv, to, buf, len, seq, id);
}

void dmn_server_reject(dmn_server *srv, const dmn_route *to, int code, const char *msg)
{
    dmn_stats_request(srv->stats);
    reply_error(srv, to, ++srv->next_seq, 0, code, msg);
}

int dmn_server_prepare(dmn_server *srv, struct dmn_req *r)
{
    (void)srv;
    r->prep = calloc((size_t)r->n_docs, sizeof *r->prep);
    r->prep_rc = calloc((size_t)r->n_docs, sizeof *r->prep_rc);
    if (!r->prep || !r->prep_rc) return -1;
    for (int d = 0; d < r->n_docs; d++) {
        task_input in = r->in;
        char why[256] = "";
        in.text = r->docs[d];
        in.text_len = r->doc_lens[d];
        r->prep_rc[d] = task_prepare(&r->model->env, &in, &r->prep[d], why, sizeof why);
        if (r->prep_rc[d] < 0)
            dmn_doc_task_end(&r->out[d], r->prep_rc[d], why[0] ? why : "task_prepare failed");
    }
    return 0;
}

/* OVERLOADED: the queue of r's model cannot take all of r's documents. */
static void reply_full(dmn_server *srv, const dmn_route *to, uint64_t seq, uint64_t id,
                       const dmn_req *r)
{
    char err[300];
    snprintf(err, sizeof err,
             "the queue is full (model %s: %d documents waiting, limit "
             "%d): retry later",
             r->model->conf.name, dmn_queue_depth(r->model->queue), srv->conf.limits.queue_size);
    dmn_stats_task_refused(srv->stats, r, DMN_OVERLOADED);
    reply_error(srv, to, seq, id, DMN_OVERLOADED, err);
}

void dmn_server_submit(dmn_server *srv, dmn_route *to, const void *data, size_t size)
{
    char err[320];
    dmn_req *r = NULL;
    uint64_t id = 0, seq = ++srv->next_seq;
    double now = cm_now();

    /* A signal that came while this message was on its way: it is already too late. */
    if (srv->stop && !srv->shutting_down) begin_shutdown(srv);
    dmn_stats_request(srv->stats);
    int code =
        dmn_req_decode(data, size, &srv->conf.limits, max_beams(srv), &r, &id, err, sizeof err);
    if (code != DMN_OK) {
        reply_error(srv, to, seq, id, code, err);
        goto done;
    }
    r->seq = seq;
    if (r->kind == DMN_REQ_HEALTH) {
        reply_health(srv, to, seq, id);
        goto done;
    }
    if (r->kind == DMN_REQ_STATS) {
        reply_stats(srv, to, seq, id);
        goto done;
    }
    if (srv->shutting_down) {
        dmn_stats_task_refused(srv->stats, r, DMN_SHUTTING_DOWN);
        reply_error(srv, to, seq, id, DMN_SHUTTING_DOWN,
                    "the daemon is stopping and takes no new work");
        goto done;
    }
    /* Which model: by name, else by task and languages (dmn_models.c). */
    if ((code = dmn_models_route(srv, r, err, sizeof err)) != DMN_OK) {
        dmn_stats_task_refused(srv->stats, r, code);
        reply_error(srv, to, seq, id, code, err);
        goto done;
    }
    r->t_recv = now;
    r->t_deadline =
        now +
        (r->deadline_ms ? r->deadline_ms : (unsigned)srv->conf.limits.default_deadline_ms) * 1e-3;
    /* What the log and the expiry need, read before the request moves to the queue. */
    double deadline = r->t_deadline;
    int n_docs = r->n_docs, prio = r->priority;
    task_kind kind = r->in.kind;
    /* Accepted work holds its frame (as the decoded request) and its routing frames until
     * answered: bounded together, so that memory stays bounded whatever clients send. */
    r->bytes = size + dmn_route_bytes(to);
    if (srv->queued_bytes + r->bytes > (size_t)srv->conf.limits.max_queued_bytes) {
        snprintf(err, sizeof err,
                 "the daemon holds %zu KiB of accepted requests (limit "
                 "limits.max_queued_bytes = %d KiB): retry later",
                 srv->queued_bytes >> 10, srv->conf.limits.max_queued_bytes >> 10);
        reply_error(srv, to, seq, id, DMN_OVERLOADED, err);
        goto done;
    }
    /* One client's accepted documents are bounded apart (limits.max_client_documents), so
     * a flood from one client is refused while the others are served. */
    unsigned client = dmn_client_slot(to);
    int climit = srv->conf.limits.max_client_documents;
    if (climit > 0 && srv->client_docs[client] + n_docs > climit) {
        snprintf(err, sizeof err,
                 "this client has %d document(s) accepted and not answered "
                 "(limit limits.max_client_documents = %d): retry later",
                 srv->client_docs[client], climit);
        dmn_stats_task_refused(srv->stats, r, DMN_OVERLOADED);
        reply_error(srv, to, seq, id, DMN_OVERLOADED, err);
        goto done;
    }
    /* Tokenising and task preparation run here, off the engine's thread: a document that
     * joins a running generation costs its rows nothing. The queue's room is checked
     * first (the worker only frees room meanwhile), so refused work is not prepared. */
    dmn_model *model = r->model;
    if (dmn_queue_depth(model->queue) + n_docs > srv->conf.limits.queue_size) {
        reply_full(srv, to, seq, id, r);
        goto done;
    }
    if (dmn_server_prepare(srv, r) < 0) {
        reply_error(srv, to, seq, id, DMN_INTERNAL, "out of memory preparing the request");
        goto done;
    }
    /* The route moves into the request, and with it to the queue/worker side. */
    r->route = *to;
    *to = (dmn_route){ .transport = r->route.transport };
    if (dmn_queue_push(model->queue, r, now) < 0) {
        *to = r->route;
        r->route = (dmn_route){ .transport = to->transport };
        reply_full(srv, to, seq, id, r);
        goto done;
    }
    srv->queued_bytes += r->bytes;
    r->client = client;
    srv->client_docs[client] += n_docs;
    r = NULL;
    srv->in_flight++;
    model->in_flight++;
    if (!srv->next_expiry || deadline < srv->next_expiry) srv->next_expiry = deadline;
    DMN_LOG_REQ(DMN_LOG_DEBUG, seq, id, "queued %s for model %s, %d document(s), priority %d",
                task_kind_name(kind), model->conf.name, n_docs, prio);
done:
    dmn_req_free(&r);
    dmn_route_clear(to);
}

/* Answers a task request whose every document is done; frees it. */
static void answer_task(dmn_server *srv, dmn_req *r)
{
    double now = cm_now();
    char msg[320];
    int code = dmn_req_status(r, msg, sizeof msg);
    void *buf;
    size_t len;
    double latency = (now - r->t_recv) * 1e3;
    dmn_stats_response(srv->stats, code, latency);
    dmn_stats_task(srv->stats, r, code, now);
    if (code == DMN_OK)
        DMN_LOG_REQ(DMN_LOG_DEBUG, r->seq, r->id, "OK, %d document(s) in %.1f ms", r->n_docs,
                    latency);
    else
        DMN_LOG_REQ(DMN_LOG_INFO, r->seq, r->id, "%s: %s (%.1f ms)", dmn_code_name(code), msg,
                    latency);
    if (dmn_resp_task(r, now, &buf, &len) == 0) send_reply(srv, &r->route, buf, len, r->seq, r->id);
    else DMN_LOG_REQ(DMN_LOG_ERROR, r->seq, r->id, "out of memory encoding the response");
    srv->in_flight--;
    r->model->in_flight--;
    r->model->served += (uint64_t)r->n_docs;
    srv->queued_bytes -= r->bytes;
    srv->client_docs[r->client] -= r->n_docs;
    dmn_req_free(&r);
}

static void recv_done(dmn_server *srv)
{
    for (;;) {
        dmn_req *r;
        if (zmq_recv(srv->done_rx, &r, sizeof r, ZMQ_DONTWAIT) != (int)sizeof r) return;
        answer_task(srv, r);
    }
}

/* Documents whose deadline passed while queued are answered now, not when the worker
 * gets to them: a client asking for 50 ms hears back in about 50 ms. */
static void expire_queued(dmn_server *srv)
{
    dmn_item it[64];
    dmn_model *ms[4 * DMN_MAX_MODELS];
    double now = cm_now(), next = 0;
    int n;
    if (!srv->next_expiry || now < srv->next_expiry) return;
    int nm = dmn_models_list(srv, ms, (int)(sizeof ms / sizeof ms[0]));
    for (int k = 0; k < nm; k++) {
        double nk = 0;
        do {
            n = dmn_queue_expire(ms[k]->queue, now, it, 64, &nk);
            for (int i = 0; i < n; i++) {
                dmn_req *r = it[i].req;
                char why[96];
                snprintf(why, sizeof why, "deadline passed after %.0f ms in the queue",
                         (now - r->t_recv) * 1e3);
                dmn_doc_end(&r->out[it[i].doc], DMN_DOC_DEADLINE, why);
                if (atomic_fetch_sub(&r->n_left, 1) == 1) {
                    r->t_done = now;
                    answer_task(srv, r);
                }
            }
        } while (n == 64);
        if (nk && (!next || nk < next)) next = nk;
    }
    srv->next_expiry = next;
}

/* The transports the config asks for, then the worker's PAIR. */
static int open_sockets(dmn_server *srv, char *err, size_t errlen)
{
    const dmn_conf *c = &srv->conf;
    dmn_transport *t;
    /* The ZAP handler first: a CURVE socket bound before it would admit anyone. */
    if (dmn_curve_start(srv, err, errlen) < 0) return -1;
    if (c->n_binds > 0) {
        if (!(t = dmn_zmq_router_new(srv, srv->n_transports, err, errlen))) return -1;
        srv->transports[srv->n_transports++] = t;
    }
    if (c->pull[0]) {
        if (!(t = dmn_zmq_pipeline_new(srv, srv->n_transports, err, errlen))) return -1;
        srv->transports[srv->n_transports++] = t;
    }
    if (c->queue.redis[0]) {
        if (!(t = dmn_redis_new(srv, srv->n_transports, err, errlen))) return -1;
        srv->transports[srv->n_transports++] = t;
    }
    if (c->http.bind[0]) {
        if (!(t = dmn_http_new(srv, srv->n_transports, err, errlen))) return -1;
        srv->transports[srv->n_transports++] = t;
    }
    int hwm = 0; /* the worker must never drop a finished request */
    srv->done_rx = zmq_socket(srv->zctx, ZMQ_PAIR);
    srv->done_tx = zmq_socket(srv->zctx, ZMQ_PAIR);
    if (!srv->done_rx || !srv->done_tx) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    zmq_setsockopt(srv->done_rx, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(srv->done_tx, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zmq_bind(srv->done_rx, DONE_ENDPOINT) != 0 ||
        zmq_connect(srv->done_tx, DONE_ENDPOINT) != 0) {
        snprintf(err, errlen, "%s: %s", DONE_ENDPOINT, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static void close_socket(void **s)
{
    if (*s) zmq_close(*s);
    *s = NULL;
}

static void begin_shutdown(dmn_server *srv)
{
    srv->shutting_down = 1;
    dmn_notify_stopping();
    dmn_models_close(srv);
    DMN_LOG(DMN_LOG_INFO, "stop signal: taking no new work; finishing %d request(s) in flight",
            srv->in_flight);
}

/* A worker returned while the daemon runs (a bug: it ends only when its queue is closed
 * and drained): answer what is still queued for every model INTERNAL, so no client waits
 * for a deadline, and have the daemon exit 1 for its supervisor to restart it. Requests
 * the worker held are lost with it: they stay unanswered. */
static void worker_lost(dmn_server *srv, dmn_model *lost)
{
    dmn_item it[64];
    dmn_model *ms[4 * DMN_MAX_MODELS];
    int n;
    DMN_LOG(DMN_LOG_ERROR,
            "the worker thread ended while the daemon was running (model %s): "
            "answering %d queued document(s) INTERNAL and exiting",
            lost->conf.name, dmn_server_depth(srv));
    dmn_models_close(srv);
    int nm = dmn_models_list(srv, ms, (int)(sizeof ms / sizeof ms[0]));
    for (int k = 0; k < nm; k++) {
        do {
            n = dmn_queue_expire(ms[k]->queue, INFINITY, it, 64, NULL);
            for (int i = 0; i < n; i++) {
                dmn_req *r = it[i].req;
                dmn_doc_end(&r->out[it[i].doc], DMN_DOC_INTERNAL,
                            "the daemon's worker thread ended");
                if (atomic_fetch_sub(&r->n_left, 1) == 1) {
                    r->t_done = cm_now();
                    answer_task(srv, r);
                }
            }
        } while (n == 64);
    }
}

/* The start-up models all serve: the "ready" line (tests and operators wait for it). */
static void log_ready(dmn_server *srv)
{
    dmn_model *ms[4 * DMN_MAX_MODELS];
    char names[512];
    size_t w = 0;
    int nm = dmn_models_list(srv, ms, (int)(sizeof ms / sizeof ms[0]));
    names[0] = 0;
    for (int i = 0; i < nm && w < sizeof names; i++)
        w += (size_t)snprintf(names + w, sizeof names - w, "%s%s", i ? ", " : "", ms[i]->conf.name);
    DMN_LOG(DMN_LOG_INFO,
            "nlpd %s ready: model %s (%d model(s): %s) in %.2f s, queue %d "
            "documents, batches of up to %d rows / %d tokens, waiting up to %d ms, %s kernels",
            DMN_VERSION, srv->conf.model_dir, nm, names, cm_now() - srv->t_start,
            srv->conf.limits.queue_size, srv->conf.batching.max_rows,
            srv->conf.batching.max_batch_tokens, srv->conf.batching.max_wait_ms, eng_kernels());
    dmn_notify_ready(srv->conf.model_dir);
}

static int serve(dmn_server *srv)
{
    for (;;) {
        if (srv->stop && !srv->shutting_down) begin_shutdown(srv);
        char err[1024];
        int mrc = dmn_models_poll(srv, err, sizeof err);
        if (mrc < 0) {
            DMN_LOG(DMN_LOG_ERROR, "cannot start: %s", err);
            return -1;
        }
        if (mrc == 1 && !srv->serving_started) {
            srv->serving_started = 1;
            log_ready(srv);
        }
        dmn_model *lost = dmn_models_lost_worker(srv);
        if (lost) {
            recv_done(srv); /* what it handed back before it returned */
            if (!srv->shutting_down || srv->in_flight > 0) {
                worker_lost(srv, lost);
                return -1;
            }
        }
        if (srv->shutting_down && srv->in_flight == 0) return 0;

        /* Transports that pull work (a pipeline) read only while a model serves and the
         * queues have room: backpressure rather than OVERLOADED for queue-fed work. */
        int pull = !srv->shutting_down && srv->serving_started &&
                   dmn_server_depth(srv) < srv->conf.limits.queue_size;
        zmq_pollitem_t items[1 + DMN_MAX_TRANSPORTS * DMN_MAX_POLL_ITEMS];
        int at[DMN_MAX_TRANSPORTS], cnt[DMN_MAX_TRANSPORTS], n = 0;
        items[n++] = (zmq_pollitem_t){ srv->done_rx, 0, ZMQ_POLLIN, 0 };
        for (int i = 0; i < srv->n_transports; i++) {
            dmn_transport *t = srv->transports[i];
            at[i] = n;
            cnt[i] = t->ops->poll_items(t, items + n, pull);
            n += cnt[i];
        }
        /* Wake for the next queued deadline, if it comes before the poll timeout. */
        long timeout = POLL_MS;
        if (srv->next_expiry) {
            double left = (srv->next_expiry - cm_now()) * 1e3 + 1;
            timeout = left < 0 ? 0 : left < POLL_MS ? (long)left : POLL_MS;
        }
        int rc = zmq_poll(items, n, timeout);
        dmn_notify_watchdog();
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue;
            DMN_LOG(DMN_LOG_ERROR, "zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (items[0].revents & ZMQ_POLLIN) recv_done(srv);
        for (int i = 0; i < srv->n_transports; i++) {
            int ready = 0;
            for (int k = 0; k < cnt[i]; k++) ready |= items[at[i] + k].revents;
            if (ready) srv->transports[i]->ops->on_ready(srv->transports[i], items + at[i], cnt[i]);
        }
        expire_queued(srv);
    }
}

void dmn_block_stop_signals(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

int dmn_server_run(dmn_server *srv)
{
    char err[512];
    int code = 1;
    sigset_t stop;
    struct sigaction sa;

    /* Every thread made from here on (libzmq's, the worker) inherits a mask blocking the
     * stop signals; only the I/O thread unblocks them, so a signal normally interrupts
     * its zmq_poll. (OpenBLAS may start threads before main() runs; a signal taken by
     * one of those still sets the flag, seen within one poll timeout, and before any
     * further request is accepted.) */
    dmn_block_stop_signals();
    /* Frames of a megabyte or more (libzmq's receive buffers, a big request's copy) come
     * from mmap and go back to the system when freed: with glibc's sliding threshold they
     * would be carved from the heap after the first one, and the heap keeps its peak. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    srv->t_start = cm_now();
    srv->stats = dmn_stats_new(srv->t_start);
    srv->client_docs = calloc(DMN_CLIENT_SLOTS, sizeof *srv->client_docs);
    srv->zctx = zmq_ctx_new();
    if (!srv->stats || !srv->client_docs || !srv->zctx) {
        DMN_LOG(DMN_LOG_ERROR, "out of memory at start-up");
        goto out;
    }
    if (open_sockets(srv, err, sizeof err) < 0) {
        DMN_LOG(DMN_LOG_ERROR, "%s", err);
        goto out;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Bound and answering (health says loading) before the models are ready: the loader
     * thread loads them; the loop starts each one's worker when it is. */
    if (dmn_models_begin(srv, err, sizeof err) < 0) {
        DMN_LOG(DMN_LOG_ERROR, "cannot start: %s", err);
        goto out;
    }
    DMN_LOG(DMN_LOG_INFO, "nlpd %s answering (health: loading) while %d model(s) load", DMN_VERSION,
            srv->conf.n_models);
    /* A signal that came during start-up is pending: it is handled right here. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    code = serve(srv) == 0 ? 0 : 1;
out:
    dmn_models_close(srv);
    if (srv->reg) {
        /* On a poll failure requests may still be in flight: let the workers finish them
         * and free what comes back, unanswered. */
        while (srv->in_flight > 0 && dmn_models_ok(srv)) {
            dmn_req *r;
            if (zmq_recv(srv->done_rx, &r, sizeof r, 0) != (int)sizeof r) break;
            srv->in_flight--;
            dmn_req_free(&r);
        }
        dmn_models_end(srv); /* joins the workers and the loader, frees the models */
    }
    close_socket(&srv->done_tx);
    close_socket(&srv->done_rx);
    for (int i = 0; i < srv->n_transports; i++) srv->transports[i]->ops->close(srv->transports[i]);
    if (srv->zctx) zmq_ctx_term(srv->zctx); /* waits up to linger_ms for replies */
    srv->zctx = NULL;
    for (int i = 0; i < srv->n_transports; i++) /* libzmq released every reply */
        srv->transports[i]->ops->destroy(&srv->transports[i]);
    srv->n_transports = 0;
    free(srv->client_docs);
    srv->client_docs = NULL;
    dmn_stats_free((dmn_stats **)&srv->stats);
    if (code == 0) DMN_LOG(DMN_LOG_INFO, "stopped cleanly");
    return code;
}
