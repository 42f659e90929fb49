/* The ZeroMQ transports (see dmn_transport.h). I/O thread only, but
 * dmn_backlog_release, which libzmq calls from its own threads.
 *
 *   router:   one ROUTER bound to every `bind` endpoint; DEALER and REQ clients. A
 *             request is routing frames (the peer's routing id, a REQ's empty delimiter,
 *             a broker chain's identities) and the payload; the reply echoes the frames.
 *   pipeline: PULL in, PUSH out (`pipeline` in nlpd.conf); one frame each way. Read only
 *             while the daemon can queue work: backpressure instead of OVERLOADED.
 *
 * Unread replies are bounded per peer (limits.max_reply_backlog_bytes, dmn_route.h): a
 * ROUTER peer is its routing id; the PUSH socket's readers count as one.
 *
 * An ipc:// path belongs to one daemon (ipc_claim): libzmq removes whatever file is at
 * the path before it binds, so without a check a second daemon would silently take a
 * live one's clients. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/dmn_curve.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_server.h"
#include "daemon/dmn_stats.h"
#include "daemon/dmn_transport.h"

#define MAX_RECV_PER_POLL 256 /* then the server looks at the worker's replies again */
#define DMN_RCV_AHEAD 16      /* messages libzmq reads ahead per peer (ZMQ_RCVHWM) */

typedef struct zt {
    dmn_transport base;
    void *in;  /* ROUTER, or PULL */
    void *out; /* ROUTER again, or PUSH */
    int pipeline;
    dmn_backlog *backlog;
    double next_sweep; /* CLOCK_MONOTONIC seconds */
    struct ipc_claim { /* [n_ipc]: the ipc paths this transport holds */
        char path[sizeof((dmn_conf *)0)->binds[0]];
        int lock_fd; /* flock'ed PATH.lock, held while bound */
        dev_t dev;   /* the socket file bound, removed at exit if still it */
        ino_t ino;
    } ipc[DMN_MAX_BINDS];
    int n_ipc;
} zt;

/* 1 if something accepts connections on the unix socket at path (a live daemon, or
 * any program); 0 if nobody does (connection refused: a stale file) or it is no socket. */
static int ipc_answers(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path) return 0;
    memcpy(a.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return 0;
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int live = rc == 0 || errno == EAGAIN || errno == EINPROGRESS; /* EAGAIN: backlog full */
    close(fd);
    return live;
}

/* The socket's directory, made when missing (one level, 0700: $XDG_RUNTIME_DIR/nlpd,
 * /tmp/nlpd-UID); one made by another user is refused (it could hold a socket of theirs
 * that our clients would talk to). */
static int ipc_dir(const char *path, char *err, size_t errlen)
{
    char dir[sizeof((dmn_conf *)0)->binds[0]];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = '\0';
    struct stat st;
    if (mkdir(dir, 0700) == 0) {
        DMN_LOG(DMN_LOG_INFO, "made the runtime directory %s", dir);
        return 0;
    }
    if (errno != EEXIST) return 0; /* bind says what is wrong with it */
    if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(err, errlen,
                 "%s: the directory is owned by uid %u, not by this user (%u): "
                 "another user's socket could stand there",
                 dir, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

/* Claims the path of an ipc:// endpoint before it is bound: PATH.lock is locked (flock,
 * this pid written in it) for as long as the daemon holds the socket. Another process
 * holding the lock: refused, naming its pid. The lock free and a socket file there that
 * nobody answers on: a stale file of a daemon that died, removed. One that answers
 * though nobody holds the lock (a daemon from before the lock files, another program):
 * refused too. Abstract (ipc://@name) and wildcard endpoints are not files: no claim.
 * 0, or -1 with the reason in err. */
static int ipc_claim(zt *z, const char *ep, char *err, size_t errlen)
{
    if (strncmp(ep, "ipc://", 6) != 0) return 0;
    const char *path = ep + 6;
    if (!path[0] || path[0] == '@' || !strcmp(path, "*")) return 0;
    struct ipc_claim *c = &z->ipc[z->n_ipc];
    char lock[sizeof c->path + 8];
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(lock, sizeof lock, "%s.lock", path);
    if (ipc_dir(path, err, errlen) < 0) return -1;
    int fd = -1;
    for (int tries = 0; tries < 8; tries++) {
        fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) break;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            char pid[32] = "";
            ssize_t n = errno == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            close(fd);
            snprintf(err, errlen,
                     "%s is in use: process %s holds it (lock file %s); stop "
                     "that daemon or bind another path",
                     ep, pid[0] ? pid : "(unknown)", lock);
            return -1;
        }
        /* The holder before us may have removed the file as we opened it: the lock
         * counts only on the file that is at the path now. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(lock, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        /* No lock file possible (a read-only directory): the probe alone decides. */
        DMN_LOG(DMN_LOG_WARN,
                "%s: no lock file (%s): a second daemon on this path would "
                "not be refused",
                lock, strerror(errno));
    } else {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
            DMN_LOG(DMN_LOG_WARN, "%s: cannot write the pid: %s", lock, strerror(errno));
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISSOCK(st.st_mode) && ipc_answers(path)) {
            snprintf(err, errlen,
                     "%s is in use: something answers on %s though no nlpd "
                     "holds %s (an older nlpd, another program?)",
                     ep, path, lock);
            if (fd >= 0) {
                unlink(lock);
                close(fd);
            }
            return -1;
        }
        if (S_ISSOCK(st.st_mode)) {
            if (unlink(path) == 0)
                DMN_LOG(DMN_LOG_INFO, "removed the stale socket file %s (nobody answered)", path);
        } else {
            snprintf(err, errlen, "%s: %s exists and is not a socket", ep, path);
            if (fd >= 0) {
                unlink(lock);
                close(fd);
            }
            return -1;
        }
    }
    c->lock_fd = fd;
    c->dev = 0;
    c->ino = 0;
    z->n_ipc++;
    return 0;
}

/* After the bind: which file is ours, so that exit removes it and no successor's. */
static void ipc_bound(zt *z, const char *ep)
{
    struct stat st;
    for (int i = 0; i < z->n_ipc; i++)
        if (!strcmp(z->ipc[i].path, ep + 6) && stat(z->ipc[i].path, &st) == 0) {
            z->ipc[i].dev = st.st_dev;
            z->ipc[i].ino = st.st_ino;
        }
}

/* At exit: our socket file (if it is still ours) and the lock file go, then the lock. */
static void ipc_release(zt *z)
{
    for (int i = 0; i < z->n_ipc; i++) {
        struct ipc_claim *c = &z->ipc[i];
        struct stat st;
        if (c->ino && stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
            unlink(c->path);
        if (c->lock_fd >= 0) {
            char lock[sizeof c->path + 8];
            snprintf(lock, sizeof lock, "%s.lock", c->path);
            unlink(lock);
            close(c->lock_fd);
        }
    }
    z->n_ipc = 0;
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
     * replies (plus as many error replies) before a slow reader starts losing them. The
     * bytes those replies hold are bounded apart (the backlog). */
    int hwm = 2 * srv->conf.limits.queue_size > 1000 ? 2 * srv->conf.limits.queue_size : 1000;
    if (type == ZMQ_ROUTER || type == ZMQ_PUSH) zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    /* What libzmq reads ahead per peer before the I/O thread takes it: past this, the
     * peer's connection waits (backpressure, nothing lost). 1000 messages of 64 KiB
     * routing frames held 64 MiB per peer. */
    int rcvhwm = DMN_RCV_AHEAD;
    if (type == ZMQ_ROUTER || type == ZMQ_PULL)
        zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (type == ZMQ_ROUTER && dmn_curve_server(srv, s, err, errlen) < 0) { /* keys: CURVE */
        zmq_close(s);
        return NULL;
    }
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
    else DMN_LOG(DMN_LOG_INFO, "%s %s", bind ? "bound" : "connected to", ep);
    return s;
}

/* Sends the route's frames, then the packed response (ownership of buf moves here).
 * Never blocks: a ROUTER drops what it cannot route; a full PUSH drops with a warning;
 * a reply that would take its peer's unread replies past max_reply_backlog_bytes is
 * dropped and counted (the peer is not reading: its connection pays, not the daemon). */
static void zt_reply(dmn_transport *t, const dmn_route *to, void *buf, size_t len, uint64_t seq,
                     uint64_t id)
{
    zt *z = (zt *)t;
    dmn_server *srv = t->srv;
    zmq_msg_t body;
    if (!z->out) {
        free(buf);
        return;
    }
    /* The reply's routing frames count too (copies of up to max_envelope_bytes each):
     * they go out just before the body, so the body's release returns them as well. */
    size_t keylen = !z->pipeline && to->n_env > 0 ? to->env_len[0] : 0;
    void *ticket = dmn_backlog_reserve(z->backlog, to->env, keylen, len + dmn_route_bytes(to));
    if (!ticket) {
        free(buf);
        uint64_t n = dmn_stats_reply_dropped(srv->stats);
        if ((n & (n - 1)) == 0) /* 1st, 2nd, 4th, ...: a flood logs a few lines */
            DMN_LOG_REQ(DMN_LOG_WARN, seq, id,
                        "reply dropped: its connection leaves more "
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
        if (zmq_msg_send(&f, z->out, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            goto fail;
        }
    }
    if (zmq_msg_send(&body, z->out, ZMQ_DONTWAIT) < 0) goto fail;
    return;
fail:
    DMN_LOG_REQ(DMN_LOG_WARN, seq, id, "reply dropped: %s", zmq_strerror(zmq_errno()));
    zmq_msg_close(&body); /* gives the reservation back */
}

/* Reads one multipart message. Every frame is read, so the next message starts clean;
 * only the first DMN_MAX_ENV + 1 and the last are kept, and what is kept past receipt
 * is the routing frames' bytes, bounded by limits.max_envelope_bytes. */
static void recv_one(zt *z)
{
    dmn_server *srv = z->base.srv;
    zmq_msg_t parts[DMN_MAX_ENV + 2]; /* the first DMN_MAX_ENV + 1, then the last */
    int n = 0, frames = 0, more = 1;
    size_t bytes = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, z->in, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        frames++;
        bytes += zmq_msg_size(&m);
        if (n == DMN_MAX_ENV + 2) zmq_msg_close(&parts[--n]); /* keep the latest last */
        parts[n++] = m;
    }
    if (n == 0) return;
    zmq_msg_t *payload = &parts[n - 1];
    size_t env_bytes = bytes - zmq_msg_size(payload);
    int n_env = frames - 1;
    const void *data[DMN_MAX_ENV];
    size_t len[DMN_MAX_ENV];
    dmn_route to = { .transport = z->base.index };
    char err[200];
    if (z->pipeline && frames > 1) {
        snprintf(err, sizeof err, "a pipeline request is one frame, got %d", frames);
        dmn_server_reject(srv, &to, DMN_MALFORMED, err);
    } else if (n_env > DMN_MAX_ENV || env_bytes > (size_t)srv->conf.limits.max_envelope_bytes) {
        /* Answered through the first frame alone: the ROUTER's routing id of the peer
         * (at most 255 bytes), so the client hears why instead of nothing. */
        snprintf(err, sizeof err,
                 "%d frame(s) of %zu bytes before the payload (routing "
                 "identity included): the limits are %d frames and limits.max_envelope_bytes "
                 "= %d bytes",
                 n_env, env_bytes, DMN_MAX_ENV, srv->conf.limits.max_envelope_bytes);
        data[0] = zmq_msg_data(&parts[0]);
        len[0] = zmq_msg_size(&parts[0]);
        if (dmn_route_set(&to, z->base.index, data, len, 1) == 0)
            dmn_server_reject(srv, &to, DMN_MALFORMED, err);
        dmn_route_clear(&to);
    } else {
        for (int i = 0; i < n_env; i++) {
            data[i] = zmq_msg_data(&parts[i]);
            len[i] = zmq_msg_size(&parts[i]);
        }
        if (dmn_route_set(&to, z->base.index, data, len, n_env) == 0)
            dmn_server_submit(srv, &to, zmq_msg_data(payload), zmq_msg_size(payload));
        else DMN_LOG(DMN_LOG_ERROR, "out of memory keeping a request's routing frames");
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
}

static int zt_poll_items(dmn_transport *t, zmq_pollitem_t *items, int pull)
{
    zt *z = (zt *)t;
    double now = cm_now();
    if (now >= z->next_sweep) { /* forget peers with no reply outstanding */
        dmn_backlog_sweep(z->backlog);
        z->next_sweep = now + 1.0;
    }
    if (z->pipeline && !pull) return 0;
    items[0] = (zmq_pollitem_t){ z->in, 0, ZMQ_POLLIN, 0 };
    return 1;
}

static void zt_on_ready(dmn_transport *t, const zmq_pollitem_t *items, int n)
{
    zt *z = (zt *)t;
    if (n < 1 || !(items[0].revents & ZMQ_POLLIN)) return;
    if (z->pipeline) { /* one at a time: the server re-checks the queue's room */
        recv_one(z);
        return;
    }
    for (int k = 0; k < MAX_RECV_PER_POLL; k++) {
        int events = 0;
        size_t el = sizeof events;
        if (zmq_getsockopt(z->in, ZMQ_EVENTS, &events, &el) != 0 || !(events & ZMQ_POLLIN)) break;
        recv_one(z);
    }
}

static void zt_close(dmn_transport *t)
{
    zt *z = (zt *)t;
    if (z->in) zmq_close(z->in);
    if (z->out && z->out != z->in) zmq_close(z->out);
    z->in = z->out = NULL;
}

static void zt_destroy(dmn_transport **tp)
{
    zt *z = (zt *)*tp;
    if (!z) return;
    zt_close(&z->base);
    ipc_release(z);
    dmn_backlog_free(&z->backlog);
    free(z);
    *tp = NULL;
}

static const dmn_transport_ops router_ops = {
    "zmq-router", zt_poll_items, zt_on_ready, zt_reply, zt_close, zt_destroy,
};
static const dmn_transport_ops pipeline_ops = {
    "zmq-pipeline", zt_poll_items, zt_on_ready, zt_reply, zt_close, zt_destroy,
};

static zt *zt_new(dmn_server *srv, int index, const dmn_transport_ops *ops)
{
    zt *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->base = (dmn_transport){ .ops = ops, .srv = srv, .index = index };
    z->backlog = dmn_backlog_new((size_t)srv->conf.limits.max_reply_backlog_bytes);
    if (!z->backlog) {
        free(z);
        return NULL;
    }
    return z;
}

dmn_transport *dmn_zmq_router_new(dmn_server *srv, int index, char *err, size_t errlen)
{
    const dmn_conf *c = &srv->conf;
    zt *z = zt_new(srv, index, &router_ops);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < c->n_binds; i++)
        if (ipc_claim(z, c->binds[i], err, errlen) < 0) goto fail;
    z->in = z->out = open_socket(srv, ZMQ_ROUTER, c->binds[0], 1, err, errlen);
    if (!z->in) goto fail;
    ipc_bound(z, c->binds[0]);
    for (int i = 1; i < c->n_binds; i++) {
        if (zmq_bind(z->in, c->binds[i]) != 0) {
            snprintf(err, errlen, "cannot bind %s: %s", c->binds[i], zmq_strerror(zmq_errno()));
            goto fail;
        }
        ipc_bound(z, c->binds[i]);
        DMN_LOG(DMN_LOG_INFO, "listening on %s", c->binds[i]);
    }
    return &z->base;
fail:;
    dmn_transport *t = &z->base;
    zt_destroy(&t);
    return NULL;
}

dmn_transport *dmn_zmq_pipeline_new(dmn_server *srv, int index, char *err, size_t errlen)
{
    const dmn_conf *c = &srv->conf;
    zt *z = zt_new(srv, index, &pipeline_ops);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    z->pipeline = 1;
    int bind = !c->pipeline_connect;
    if (bind && (ipc_claim(z, c->pull, err, errlen) < 0 || ipc_claim(z, c->push, err, errlen) < 0))
        goto fail;
    z->in = open_socket(srv, ZMQ_PULL, c->pull, bind, err, errlen);
    if (z->in) z->out = open_socket(srv, ZMQ_PUSH, c->push, bind, err, errlen);
    if (bind && z->in) ipc_bound(z, c->pull);
    if (bind && z->out) ipc_bound(z, c->push);
    if (z->in && z->out) return &z->base;
fail:;
    dmn_transport *t = &z->base;
    zt_destroy(&t);
    return NULL;
}
