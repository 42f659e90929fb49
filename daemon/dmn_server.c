/* The server: start-up and teardown (main thread), and the I/O thread's loop (the main
 * thread again, once the worker runs).
 *
 * Threads and ownership:
 *   I/O thread (main): owns every socket but the worker's PAIR end. zmq_poll with a
 *     100 ms timeout over the ROUTER, the optional PULL and the PAIR from the worker.
 *     Receives, decodes and validates requests; answers errors, health and stats at
 *     once; queues task requests (the request then belongs to the queue/worker side);
 *     receives finished requests back over the PAIR, encodes, sends, frees them.
 *   worker thread (dmn_worker.c): owns the eng_ctx and the PAIR's sending end.
 *   signal handler: sets dmn_srv.stop, nothing else. Signals are blocked in the worker,
 *     so they interrupt the I/O thread's poll.
 *
 * Shutdown: on stop, new task requests are answered SHUTTING_DOWN, the PULL socket is no
 * longer read, the queue is closed (the worker drains it without waiting to fill
 * batches); once every accepted request is answered the worker is joined and the
 * sockets close with linger_ms for the replies to flush. Nothing accepted is lost. */
#include "daemon/dmn_server.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "daemon/dmn_log.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_route.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_stats.h"

/* The daemon's one global. */
dmn_server dmn_srv = { .log_level = DMN_LOG_INFO };

#define DONE_ENDPOINT "inproc://nlpd-done"
#define POLL_MS 100
#define MAX_RECV_PER_POLL 256   /* then look at the worker's replies again */

double dmn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void begin_shutdown(dmn_server *srv);

static void on_signal(int sig)
{
    (void)sig;
    dmn_srv.stop = 1;
}

static int max_beams(const dmn_server *srv)
{
    return srv->conf.batching.max_rows < 16 ? srv->conf.batching.max_rows : 16;
}

int dmn_server_load(dmn_server *srv, char *err, size_t errlen)
{
    char path[1200], why[512];
    const dmn_conf *c = &srv->conf;

    snprintf(path, sizeof path, "%s/spiece.model", c->model_dir);
    srv->tok = tok_load(path, why, sizeof why);
    if (!srv->tok) {
        snprintf(err, errlen, "tokenizer: %s", why);
        return -1;
    }
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = c->threads;
    srv->model = eng_model_load(c->model_dir, &mp, why, sizeof why);
    if (!srv->model) {
        snprintf(err, errlen, "model: %s", why);
        return -1;
    }
    if (!srv->tasks) srv->tasks = c->path[0] ? task_conf_load(c->path, why, sizeof why)
                                             : task_conf_default();
    if (!srv->tasks) {
        snprintf(err, errlen, "tasks config: %s", c->path[0] ? why : "no defaults");
        return -1;
    }
    srv->env.tok = srv->tok;
    srv->env.model = eng_model_config(srv->model);
    srv->env.conf = srv->tasks;
    srv->env.max_input_tokens = c->limits.max_input_tokens;

    /* Sized for what the tasks produce (labels per job, tokens per label), grown to the
     * daemon's limits; a job over batching.max_rows on its own (a 16-beam search) still
     * runs, in a call by itself, so the context keeps the engine's default rows too. */
    eng_ctx_params cp = task_conf_ctx_params(srv->tasks);
    if (cp.max_rows < c->batching.max_rows) cp.max_rows = c->batching.max_rows;
    if (cp.max_input_len < c->limits.max_input_tokens) cp.max_input_len = c->limits.max_input_tokens;
    if (cp.max_new_tokens < c->limits.max_new_tokens) cp.max_new_tokens = c->limits.max_new_tokens;
    if (cp.max_cands < c->limits.max_labels) cp.max_cands = c->limits.max_labels;
    /* The worker hands the engine up to max_batch_tokens encoder tokens at once: size the
     * context for them, or the engine would split every full batch in two. */
    if (cp.max_batch_tokens < c->batching.max_batch_tokens)
        cp.max_batch_tokens = c->batching.max_batch_tokens;
    srv->ctx = eng_ctx_new(srv->model, &cp, why, sizeof why);
    if (!srv->ctx) {
        snprintf(err, errlen, "engine context: %s", why);
        return -1;
    }
    return 0;
}

void dmn_server_unload(dmn_server *srv)
{
    eng_ctx_free(&srv->ctx);
    task_conf_free(&srv->tasks);
    eng_model_free(&srv->model);
    tok_free(&srv->tok);
}

/* Sends the route's frames, then the packed response (ownership of buf moves here).
 * Never blocks: a ROUTER drops what it cannot route; a full PUSH drops with a warning;
 * a reply that would take its peer's unread replies past max_reply_backlog_bytes is
 * dropped and counted (the peer is not reading: its connection pays, not the daemon). */
static void send_reply(dmn_server *srv, const dmn_route *to, void *buf, size_t len,
                       uint64_t seq, uint64_t id)
{
    void *sock = to->sock == DMN_SOCK_PUSH ? srv->push : srv->router;
    zmq_msg_t body;
    if (!sock) {
        free(buf);
        return;
    }
    /* A ROUTER peer is named by its routing id, the route's first frame; the PUSH
     * socket's readers share one count. */
    size_t keylen = to->sock == DMN_SOCK_ROUTER && to->n_env > 0 ? to->env_len[0] : 0;
    void *ticket = dmn_backlog_reserve(srv->backlog, to->env, keylen, len);
    if (!ticket) {
        free(buf);
        uint64_t n = dmn_stats_reply_dropped(srv->stats);
        if ((n & (n - 1)) == 0)   /* 1st, 2nd, 4th, ...: a flood logs a few lines */
            DMN_LOG_REQ(DMN_LOG_WARN, seq, id, "reply dropped: its connection leaves more "
                        "than limits.max_reply_backlog_bytes (%d) unread (%llu dropped so far)",
                        srv->conf.limits.max_reply_backlog_bytes, (unsigned long long)n);
        return;
    }
    if (zmq_msg_init_data(&body, buf, len, dmn_backlog_release, ticket) != 0) {
        dmn_backlog_release(buf, ticket);
        return;
    }
    for (int i = 0; i < to->n_env; i++) {
        zmq_msg_t f;
        if (zmq_msg_init_size(&f, to->env_len[i]) != 0) goto fail;
        memcpy(zmq_msg_data(&f), dmn_route_frame(to, i), to->env_len[i]);
        if (zmq_msg_send(&f, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            goto fail;
        }
    }
    if (zmq_msg_send(&body, sock, ZMQ_DONTWAIT) < 0) goto fail;
    return;
fail:
    DMN_LOG_REQ(DMN_LOG_WARN, seq, id, "reply dropped: %s", zmq_strerror(zmq_errno()));
    zmq_msg_close(&body);   /* gives the reservation back */
}

static void reply_error(dmn_server *srv, const dmn_route *to, uint64_t seq, uint64_t id,
                        int code, const char *msg)
{
    void *buf;
    size_t len;
    DMN_LOG_REQ(DMN_LOG_INFO, seq, id, "%s: %s", dmn_code_name(code), msg);
    dmn_stats_response(srv->stats, code, -1);
    if (dmn_resp_error(id, code, msg, &buf, &len) < 0) return;
    send_reply(srv, to, buf, len, seq, id);
}

static void reply_health(dmn_server *srv, const dmn_route *to, uint64_t seq, uint64_t id)
{
    dmn_health h = {
        .ok = !srv->shutting_down && atomic_load(&srv->worker_running),
        .shutting_down = srv->shutting_down,
        .model = srv->conf.model_dir,
        .version = "nlpd " DMN_VERSION,
        .uptime_s = dmn_now() - srv->t_start,
    };
    void *buf;
    size_t len;
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
    dmn_stats_snapshot(srv->stats, &s, dmn_now());
    s.queue_depth = (uint32_t)dmn_queue_depth(srv->queue);
    s.in_flight = (uint32_t)srv->in_flight;
    if (dmn_resp_stats(id, &s, &buf, &len) < 0) return;
    send_reply(srv, to, buf, len, seq, id);
}

/* One request payload with its route (consumed: moved into the queued request, or
 * cleared). */
static void handle_request(dmn_server *srv, dmn_route *to, const void *data, size_t size)
{
    char err[320];
    dmn_req *r = NULL;
    uint64_t id = 0, seq = ++srv->next_seq;
    double now = dmn_now();

    /* A signal that came while this message was on its way: it is already too late. */
    if (srv->stop && !srv->shutting_down) begin_shutdown(srv);
    dmn_stats_request(srv->stats);
    int code = dmn_req_decode(data, size, &srv->conf.limits, max_beams(srv), &r, &id, err,
                              sizeof err);
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
        reply_error(srv, to, seq, id, DMN_SHUTTING_DOWN,
                    "the daemon is stopping and takes no new work");
        goto done;
    }
    r->t_recv = now;
    r->t_deadline = now + (r->deadline_ms ? r->deadline_ms
                                          : (unsigned)srv->conf.limits.default_deadline_ms) * 1e-3;
    /* What the log and the expiry need, read before the request moves to the queue. */
    double deadline = r->t_deadline;
    int n_docs = r->n_docs, prio = r->priority;
    task_kind kind = r->in.kind;
    /* The route moves into the request, and with it to the queue/worker side. */
    r->route = *to;
    *to = (dmn_route){ .sock = r->route.sock };
    if (dmn_queue_push(srv->queue, r, now) < 0) {
        *to = r->route;
        r->route = (dmn_route){ .sock = to->sock };
        snprintf(err, sizeof err, "the queue is full (%d documents waiting, limit %d): retry later",
                 dmn_queue_depth(srv->queue), srv->conf.limits.queue_size);
        reply_error(srv, to, seq, id, DMN_OVERLOADED, err);
        goto done;
    }
    r = NULL;
    srv->in_flight++;
    if (!srv->next_expiry || deadline < srv->next_expiry) srv->next_expiry = deadline;
    DMN_LOG_REQ(DMN_LOG_DEBUG, seq, id, "queued %s, %d document(s), priority %d",
                task_kind_name(kind), n_docs, prio);
done:
    dmn_req_free(&r);
    dmn_route_clear(to);
}

/* Reads one multipart message from a ROUTER (routing frames + payload) or PULL (payload
 * alone). Every frame is read, so the next message starts clean; only the first
 * DMN_MAX_ENV + 1 and the last are kept, and what is kept past receipt is the routing
 * frames' bytes, bounded by limits.max_envelope_bytes. */
static void recv_one(dmn_server *srv, void *sock, int kind)
{
    zmq_msg_t parts[DMN_MAX_ENV + 2];   /* the first DMN_MAX_ENV + 1, then the last */
    int n = 0, frames = 0, more = 1;
    size_t bytes = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        frames++;
        bytes += zmq_msg_size(&m);
        if (n == DMN_MAX_ENV + 2) zmq_msg_close(&parts[--n]);   /* keep the latest last */
        parts[n++] = m;
    }
    if (n == 0) return;
    zmq_msg_t *payload = &parts[n - 1];
    size_t env_bytes = bytes - zmq_msg_size(payload);
    int n_env = frames - 1;
    const void *data[DMN_MAX_ENV];
    size_t len[DMN_MAX_ENV];
    dmn_route to = { .sock = kind };
    char err[200];
    if (kind == DMN_SOCK_PUSH && frames > 1) {
        snprintf(err, sizeof err, "a pipeline request is one frame, got %d", frames);
        dmn_stats_request(srv->stats);
        reply_error(srv, &to, ++srv->next_seq, 0, DMN_MALFORMED, err);
    } else if (n_env > DMN_MAX_ENV || env_bytes > (size_t)srv->conf.limits.max_envelope_bytes) {
        /* Answered through the first frame alone: the ROUTER's routing id of the peer
         * (at most 255 bytes), so the client hears why instead of nothing. */
        snprintf(err, sizeof err, "%d frame(s) of %zu bytes before the payload (routing "
                 "identity included): the limits are %d frames and limits.max_envelope_bytes "
                 "= %d bytes", n_env, env_bytes, DMN_MAX_ENV,
                 srv->conf.limits.max_envelope_bytes);
        data[0] = zmq_msg_data(&parts[0]);
        len[0] = zmq_msg_size(&parts[0]);
        dmn_stats_request(srv->stats);
        if (dmn_route_set(&to, kind, data, len, 1) == 0)
            reply_error(srv, &to, ++srv->next_seq, 0, DMN_MALFORMED, err);
        dmn_route_clear(&to);
    } else {
        for (int i = 0; i < n_env; i++) {
            data[i] = zmq_msg_data(&parts[i]);
            len[i] = zmq_msg_size(&parts[i]);
        }
        if (dmn_route_set(&to, kind, data, len, n_env) == 0)
            handle_request(srv, &to, zmq_msg_data(payload), zmq_msg_size(payload));
        else
            DMN_LOG(DMN_LOG_ERROR, "out of memory keeping a request's routing frames");
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
}

/* Answers a task request whose every document is done; frees it. */
static void answer_task(dmn_server *srv, dmn_req *r)
{
    double now = dmn_now();
    char msg[320];
    int code = dmn_req_status(r, msg, sizeof msg);
    void *buf;
    size_t len;
    double latency = (now - r->t_recv) * 1e3;
    dmn_stats_response(srv->stats, code, latency);
    if (code == DMN_OK)
        DMN_LOG_REQ(DMN_LOG_DEBUG, r->seq, r->id, "OK, %d document(s) in %.1f ms", r->n_docs,
                    latency);
    else
        DMN_LOG_REQ(DMN_LOG_INFO, r->seq, r->id, "%s: %s (%.1f ms)", dmn_code_name(code), msg,
                    latency);
    if (dmn_resp_task(r, now, &buf, &len) == 0)
        send_reply(srv, &r->route, buf, len, r->seq, r->id);
    else
        DMN_LOG_REQ(DMN_LOG_ERROR, r->seq, r->id, "out of memory encoding the response");
    srv->in_flight--;
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
    double now = dmn_now(), next = 0;
    int n;
    if (!srv->next_expiry || now < srv->next_expiry) return;
    do {
        n = dmn_queue_expire(srv->queue, now, it, 64, &next);
        for (int i = 0; i < n; i++) {
            dmn_req *r = it[i].req;
            dmn_doc *d = &r->out[it[i].doc];
            d->code = DMN_DEADLINE_EXCEEDED;
            snprintf(d->message, sizeof d->message,
                     "deadline passed after %.0f ms in the queue", (now - r->t_recv) * 1e3);
            if (atomic_fetch_sub(&r->n_left, 1) == 1) {
                r->t_done = now;
                answer_task(srv, r);
            }
        }
    } while (n == 64);
    srv->next_expiry = next;
}

static void *open_socket(dmn_server *srv, int type, const char *ep, int bind, char *err,
                         size_t errlen)
{
    void *s = zmq_socket(srv->zctx, type);
    int linger = srv->conf.linger_ms;
    int64_t maxmsg = 4 * (int64_t)srv->conf.limits.max_message_bytes;
    if (!s) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    /* Frames up to 4x the limit are read and answered MESSAGE_TOO_LARGE; beyond that
     * libzmq drops the connection rather than buffer them. */
    if (type == ZMQ_ROUTER || type == ZMQ_PULL)
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* A DEALER may have a whole queue's worth of requests in flight: room for all their
     * replies (plus as many error replies) before a slow reader starts losing them. */
    int hwm = 2 * srv->conf.limits.queue_size > 1000 ? 2 * srv->conf.limits.queue_size : 1000;
    if (type == ZMQ_ROUTER || type == ZMQ_PUSH)
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if ((bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
        snprintf(err, errlen, "cannot %s %s: %s", bind ? "bind" : "connect to", ep,
                 zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    char last[256];
    size_t ll = sizeof last;
    if (bind && zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &ll) == 0)
        DMN_LOG(DMN_LOG_INFO, "listening on %s", last);
    else
        DMN_LOG(DMN_LOG_INFO, "%s %s", bind ? "bound" : "connected to", ep);
    return s;
}

static int open_sockets(dmn_server *srv, char *err, size_t errlen)
{
    const dmn_conf *c = &srv->conf;
    if (c->n_binds > 0) {
        srv->router = open_socket(srv, ZMQ_ROUTER, c->binds[0], 1, err, errlen);
        if (!srv->router) return -1;
        for (int i = 1; i < c->n_binds; i++) {
            if (zmq_bind(srv->router, c->binds[i]) != 0) {
                snprintf(err, errlen, "cannot bind %s: %s", c->binds[i],
                         zmq_strerror(zmq_errno()));
                return -1;
            }
            DMN_LOG(DMN_LOG_INFO, "listening on %s", c->binds[i]);
        }
    }
    if (c->pull[0]) {
        srv->pull = open_socket(srv, ZMQ_PULL, c->pull, !c->pipeline_connect, err, errlen);
        if (!srv->pull) return -1;
        srv->push = open_socket(srv, ZMQ_PUSH, c->push, !c->pipeline_connect, err, errlen);
        if (!srv->push) return -1;
    }
    int hwm = 0;   /* the worker must never drop a finished request */
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
    dmn_queue_close(srv->queue);
    DMN_LOG(DMN_LOG_INFO, "stop signal: taking no new work; finishing %d request(s) in flight",
            srv->in_flight);
}

/* The worker returned while the daemon runs (a bug: it ends only when the queue is
 * closed and drained): answer what is still queued INTERNAL, so no client waits for a
 * deadline, and have the daemon exit 1 for its supervisor to restart it. Requests the
 * worker held are lost with it: they stay unanswered. */
static void worker_lost(dmn_server *srv)
{
    dmn_item it[64];
    int n;
    DMN_LOG(DMN_LOG_ERROR, "the worker thread ended while the daemon was running: "
            "answering %d queued document(s) INTERNAL and exiting", dmn_queue_depth(srv->queue));
    dmn_queue_close(srv->queue);
    do {
        n = dmn_queue_expire(srv->queue, INFINITY, it, 64, NULL);
        for (int i = 0; i < n; i++) {
            dmn_req *r = it[i].req;
            dmn_doc *d = &r->out[it[i].doc];
            d->code = DMN_INTERNAL;
            snprintf(d->message, sizeof d->message, "the daemon's worker thread ended");
            if (atomic_fetch_sub(&r->n_left, 1) == 1) {
                r->t_done = dmn_now();
                answer_task(srv, r);
            }
        }
    } while (n == 64);
}

static int serve(dmn_server *srv)
{
    double next_sweep = 0;
    for (;;) {
        if (srv->stop && !srv->shutting_down) begin_shutdown(srv);
        if (!atomic_load(&srv->worker_running)) {
            recv_done(srv);   /* what it handed back before it returned */
            if (!srv->shutting_down || srv->in_flight > 0) {
                worker_lost(srv);
                return -1;
            }
        }
        if (srv->shutting_down && srv->in_flight == 0) return 0;

        zmq_pollitem_t items[3];
        int n = 0, i_router = -1, i_pull = -1;
        items[n++] = (zmq_pollitem_t){ srv->done_rx, 0, ZMQ_POLLIN, 0 };
        if (srv->router) {
            i_router = n;
            items[n++] = (zmq_pollitem_t){ srv->router, 0, ZMQ_POLLIN, 0 };
        }
        /* The pipeline is read only while the queue has room: backpressure rather than
         * OVERLOADED for queue-fed work. */
        if (srv->pull && !srv->shutting_down &&
            dmn_queue_depth(srv->queue) < srv->conf.limits.queue_size) {
            i_pull = n;
            items[n++] = (zmq_pollitem_t){ srv->pull, 0, ZMQ_POLLIN, 0 };
        }
        /* Wake for the next queued deadline, if it comes before the poll timeout. */
        long timeout = POLL_MS;
        if (srv->next_expiry) {
            double left = (srv->next_expiry - dmn_now()) * 1e3 + 1;
            timeout = left < 0 ? 0 : left < POLL_MS ? (long)left : POLL_MS;
        }
        int rc = zmq_poll(items, n, timeout);
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue;
            DMN_LOG(DMN_LOG_ERROR, "zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (items[0].revents & ZMQ_POLLIN) recv_done(srv);
        if (i_router >= 0 && (items[i_router].revents & ZMQ_POLLIN)) {
            int events = 0;
            size_t el = sizeof events;
            for (int k = 0; k < MAX_RECV_PER_POLL; k++) {
                if (zmq_getsockopt(srv->router, ZMQ_EVENTS, &events, &el) != 0 ||
                    !(events & ZMQ_POLLIN))
                    break;
                recv_one(srv, srv->router, DMN_SOCK_ROUTER);
            }
        }
        if (i_pull >= 0 && (items[i_pull].revents & ZMQ_POLLIN)) recv_one(srv, srv->pull, DMN_SOCK_PUSH);
        expire_queued(srv);
        if (dmn_now() >= next_sweep) {   /* forget peers with no reply outstanding */
            dmn_backlog_sweep(srv->backlog);
            next_sweep = dmn_now() + 1.0;
        }
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
    srv->t_start = dmn_now();
    srv->stats = dmn_stats_new(srv->t_start);
    srv->queue = dmn_queue_new(srv->conf.limits.queue_size, srv->conf.limits.max_input_tokens);
    srv->backlog = dmn_backlog_new((size_t)srv->conf.limits.max_reply_backlog_bytes);
    srv->zctx = zmq_ctx_new();
    if (!srv->stats || !srv->queue || !srv->backlog || !srv->zctx) {
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
    signal(SIGPIPE, SIG_IGN);

    atomic_store(&srv->worker_running, 1);
    int prc = pthread_create(&srv->worker, NULL, dmn_worker_main, srv);
    if (prc != 0) {
        atomic_store(&srv->worker_running, 0);
        DMN_LOG(DMN_LOG_ERROR, "cannot start the worker thread: %s", strerror(prc));
        goto out;
    }
    srv->worker_started = 1;
    int pinned;
    const char *core = eng_blas_core(&pinned);
    DMN_LOG(DMN_LOG_INFO, "nlpd %s ready: model %s, queue %d documents, batches of up to %d "
            "rows / %d tokens, waiting up to %d ms, OpenBLAS %s kernels", DMN_VERSION,
            srv->conf.model_dir, srv->conf.limits.queue_size, srv->conf.batching.max_rows,
            srv->conf.batching.max_batch_tokens, srv->conf.batching.max_wait_ms, core);
    if (pinned)
        DMN_LOG(DMN_LOG_INFO, "OPENBLAS_CORETYPE=%s holds OpenBLAS to AVX2 kernels on this "
                "AVX-512 CPU: the engine's own AVX-512 kernel runs the large matrix products",
                getenv("OPENBLAS_CORETYPE"));

    /* A signal that came during start-up is pending: it is handled right here. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    code = serve(srv) == 0 ? 0 : 1;
out:
    if (srv->queue) dmn_queue_close(srv->queue);
    if (srv->worker_started) {
        /* On a poll failure requests may still be in flight: let the worker finish them
         * and free what comes back, unanswered. */
        while (srv->in_flight > 0 && atomic_load(&srv->worker_running)) {
            dmn_req *r;
            if (zmq_recv(srv->done_rx, &r, sizeof r, 0) != (int)sizeof r) break;
            srv->in_flight--;
            dmn_req_free(&r);
        }
        pthread_join(srv->worker, NULL);
    }
    close_socket(&srv->done_tx);
    close_socket(&srv->done_rx);
    close_socket(&srv->pull);
    close_socket(&srv->push);
    close_socket(&srv->router);
    if (srv->zctx) zmq_ctx_term(srv->zctx);   /* waits up to linger_ms for replies */
    srv->zctx = NULL;
    dmn_backlog_free(&srv->backlog);          /* libzmq released every reply */
    dmn_queue_free((dmn_queue **)&srv->queue);
    dmn_stats_free((dmn_stats **)&srv->stats);
    if (code == 0) DMN_LOG(DMN_LOG_INFO, "stopped cleanly");
    return code;
}
