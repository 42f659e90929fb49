/* Queue mode on Redis Streams (see dmn_redis.h, docs/queue.md). I/O thread only.
 *
 * Why hiredis's asynchronous API inside the server's zmq_poll, and not a thread of its
 * own: every request already enters and every reply already leaves through the I/O
 * thread, which owns the queue's room (backpressure), the deadlines and the routes. A
 * Redis thread would have to ask the I/O thread for all of that over an inproc socket
 * and hand each job and each result across twice; with the sockets' fds among the poll
 * items, a job goes from Redis to dmn_server_submit() and a reply from this transport's
 * reply() to Redis with no copy between threads and no locks. hiredis's event hooks
 * (addRead/addWrite...) only set the flags poll_items turns into zmq_pollitem_t.events.
 *
 * Two connections: `rd` only ever waits in XREADGROUP ... BLOCK (a blocked connection
 * answers nothing else), `wr` carries the rest: creating the group, the result scripts,
 * XAUTOCLAIM, heartbeats, XINFO. Either may drop at any time; both are reopened with
 * backoff (100 ms doubling to 5 s), and a command unanswered for too long (a network cut
 * without a reset) closes its connection.
 *
 * An entry's life here:
 *   read (XREADGROUP >) or claimed (XAUTOCLAIM, idle > claim_idle_ms on any consumer)
 *     -> decoded into a request payload (`json` built with libnlpclient's packer; the
 *        deadline rewritten to count from the entry's stream timestamp)
 *     -> waiting here while the daemon's queue has no room (reads ask only for the room
 *        there is, so this is rare) -> dmn_server_submit() with a route naming the entry
 *     -> reply(): the result (`resp`, or `json` rendered as `nlpc batch` prints it) goes
 *        out in FINISH_LUA, which writes it and acknowledges the entry only if this
 *        consumer still owns it (else it was claimed by another daemon: counted `lost`).
 *   While held, entries are kept fresh (HEARTBEAT_LUA resets their idle time, only where
 *   this consumer still owns them), so a slow but live daemon is not robbed of its work.
 *   A reply OVERLOADED or SHUTTING_DOWN (no room after all, or stopping), and any
 *   entry Redis delivers once the daemon stops, is released at once (RELEASE_LUA: moved
 *   to the consumer seen most recently, idle claim_idle_ms, so the next XAUTOCLAIM
 *   anywhere takes it and nothing stays pending on a daemon that stopped); INTERNAL
 *   only stops being refreshed: a retry after claim_idle_ms. An entry claimed for the
 *   (max_deliveries + 1)th time goes to dead_letter with the reason, with an error
 *   result, and is acknowledged, in one script.
 * Stopping (SIGTERM): no more reads or claims; a read blocked in Redis is ended with
 * CLIENT UNBLOCK and what it brings is released; close() waits (up to max(linger_ms,
 * 2 s)) until every result and release is written.
 * Results not written because Redis was away stay in the outbox and are sent again once
 * it is back: the ownership check makes a second send of an executed script a no-op. */
#include "daemon/dmn_redis.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "clients/libnlpclient/nlpclient.h"
#include "common/common.h"
#include "daemon/dmn_json.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_server.h"
#include "daemon/dmn_stats.h"

#define READ_BLOCK_MS 1000 /* XREADGROUP BLOCK: how long rd waits for entries */
#define READ_MAX 64        /* entries per read or claim */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CMD_TIMEOUT_S 10.0 /* a command unanswered this long: reconnect */
#define INFO_EVERY_S 1.0   /* XINFO GROUPS for lag and pending */
#define MAX_ECHO 4096      /* bytes of a json job's "id" kept for its result */
#define FAIL_RING 64       /* recent failure reasons, for dead letters */
#define MAX_LABELS 1024    /* a json job's labels (limits.max_labels is at most this) */

/* Writes the result and acknowledges the entry, only while this consumer owns it; with
 * dead-letter fields, also XADDs those to dead_letter. Returns 1 done, 0 not ours.
 * KEYS: stream results dead; ARGV: group consumer entry n_result_fields fields...
 * n_dead_fields fields... */
static const char FINISH_LUA[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end\n"
    "local nr = tonumber(ARGV[4])\n"
    "local r = {}\n"
    "for i = 5, 4 + nr do r[#r + 1] = ARGV[i] end\n"
    "redis.call('XADD', KEYS[2], '*', unpack(r))\n"
    "local nd = tonumber(ARGV[5 + nr])\n"
    "if nd > 0 then\n"
    "  local d = {}\n"
    "  for i = 6 + nr, 5 + nr + nd do d[#d + 1] = ARGV[i] end\n"
    "  local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])\n"
    "  if #e > 0 then for _, v in ipairs(e[1][2]) do d[#d + 1] = v end end\n"
    "  redis.call('XADD', KEYS[3], '*', unpack(d))\n"
    "end\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])\n"
    "return 1\n";

/* Resets the idle time of the entries this consumer still owns (JUSTID: the delivery
 * count stays). KEYS: stream; ARGV: group consumer ids... Returns how many. */
static const char HEARTBEAT_LUA[] =
    "local n = 0\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if #p > 0 and p[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Hands an entry this consumer owns back to the group: to the other consumer seen most
 * recently (this one when alone), idle ARGV[4] ms, so the next XAUTOCLAIM of any
 * consumer takes it, and a consumer that stops leaves nothing pending on itself.
 * KEYS: stream; ARGV: group consumer entry idle. */
static const char RELEASE_LUA[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end\n"
    "local to, best = ARGV[2], nil\n"
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
    "  local f = {}\n"
    "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "  if f['name'] ~= ARGV[2] and (best == nil or f['idle'] < best) then\n"
    "    to, best = f['name'], f['idle']\n"
    "  end\n"
    "end\n"
    "redis.call('XCLAIM', KEYS[1], ARGV[1], to, 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')\n"
    "return 1\n";

/* XAUTOCLAIM, with each entry's delivery count (after this claim). KEYS: stream; ARGV:
 * group consumer min_idle start count. Returns {cursor, {{id, deliveries, fields}...}}. */
static const char CLAIM_LUA[] =
    "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],"
    " 'COUNT', ARGV[5])\n"
    "local out = {}\n"
    "for _, e in ipairs(r[2]) do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)\n"
    "  local n = 0\n"
    "  if #p > 0 then n = p[1][4] end\n"
    "  out[#out + 1] = {e[1], n, e[2] or {}}\n"
    "end\n"
    "return {r[1], out}\n";

enum { ENC_REQ = 'r', ENC_JSON = 'j', ENC_BOTH = 'b' }; /* a job's encoding */
enum { CMD_FINISH = 1, CMD_RELEASE = 2 };

typedef struct rt rt;

/* One asynchronous connection. */
typedef struct rconn {
    rt *owner;
    const char *name;          /* "reader" / "writer" (logs) */
    redisAsyncContext *ac;     /* NULL while down */
    int up;                    /* the connect callback said OK */
    int want_read, want_write; /* hiredis's event hooks */
    int closing;               /* we free it: its disconnect is no loss */
    int n_out;                 /* commands sent, not answered */
    double deadline;           /* n_out > 0: an answer is due by then */
    double retry_at;           /* down: reconnect at or after */
    int backoff_ms;
    int failures; /* since it was last up (logging 1st, 2nd, 4th...) */
    double down_since;
} rconn;

/* A command for `wr` kept until Redis answered it (sent again after a reconnect). */
typedef struct cmd {
    struct cmd *next;
    int kind; /* CMD_FINISH / CMD_RELEASE */
    int sent; /* on the wire now */
    int dead; /* FINISH: a dead letter */
    char entry[48];
    uint64_t seq, id; /* logs */
    int argc;
    char **argv;
    size_t *argvlen;
} cmd;

/* An entry read but not yet submitted: the daemon's queue had no room. */
typedef struct waiting {
    struct waiting *next;
    char entry[48];
    int enc, task, docs;
    void *payload;
    size_t len;
    char *echo;
    uint64_t id;
} waiting;

struct rt {
    dmn_transport base;
    const dmn_queue_conf *q;
    char consumer[128];
    char host[256]; /* redis://HOST:PORT */
    int port;
    char path[256]; /* unix:///PATH */
    rconn rd, wr;
    long long rd_id; /* the reader's CLIENT ID (0: not known) */
    int id_pending, unblock_sent;
    int group_ok, group_pending;
    int read_pending, claim_pending, beat_pending, info_pending;
    double next_claim, next_beat, next_info, outbox_retry_at;
    char claim_cursor[48];
    int stopping;
    /* entries this consumer holds: submitted or waiting, until their result or release
     * got Redis's answer */
    char (*held)[48];
    int n_held, cap_held;
    waiting *wait_head, *wait_tail;
    int wait_docs;
    cmd *outbox, *outbox_tail;
    int n_outbox;
    uint64_t next_job_id; /* request ids of json jobs */
    struct {
        char entry[48];
        char why[200];
    } fails[FAIL_RING];
    int fail_next;
    dmn_qstats st;
    int item_conn[2]; /* poll item k belongs to rd (0) or wr (1) */
};

static rconn *conn_of(rt *r, int k) { return k == 0 ? &r->rd : &r->wr; }

static double wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
}

static const char *target(const rt *r, char *buf, size_t cap)
{
    if (r->path[0]) snprintf(buf, cap, "unix://%s", r->path);
    else snprintf(buf, cap, "%s:%d", r->host, r->port);
    return buf;
}

/* ---- held entries ---- */

static int held_find(const rt *r, const char *id)
{
    for (int i = 0; i < r->n_held; i++)
        if (strcmp(r->held[i], id) == 0) return i;
    return -1;
}

static void held_add(rt *r, const char *id)
{
    if (held_find(r, id) >= 0) return;
    if (r->n_held == r->cap_held) {
        int cap = r->cap_held ? 2 * r->cap_held : 64;
        char(*h)[48] = realloc(r->held, (size_t)cap * sizeof *h);
        if (!h) return; /* not kept fresh: at worst claimed by another, one result still */
        r->held = h;
        r->cap_held = cap;
    }
    snprintf(r->held[r->n_held++], 48, "%s", id);
}

static void held_remove(rt *r, const char *id)
{
    int i = held_find(r, id);
    if (i >= 0) memcpy(r->held[i], r->held[--r->n_held], 48);
}

static void note_failure(rt *r, const char *entry, const char *why)
{
    int k = r->fail_next++ % FAIL_RING;
    snprintf(r->fails[k].entry, sizeof r->fails[k].entry, "%s", entry);
    cm_fmt(r->fails[k].why, sizeof r->fails[k].why, "%s", why);
}

static const char *last_failure(const rt *r, const char *entry)
{
    for (int i = 0; i < FAIL_RING; i++)
        if (strcmp(r->fails[i].entry, entry) == 0) return r->fails[i].why;
    return NULL;
}

/* ---- connections ---- */

static void ev_add_read(void *p) { ((rconn *)p)->want_read = 1; }
static void ev_del_read(void *p) { ((rconn *)p)->want_read = 0; }
static void ev_add_write(void *p) { ((rconn *)p)->want_write = 1; }
static void ev_del_write(void *p) { ((rconn *)p)->want_write = 0; }
static void ev_cleanup(void *p) { ((rconn *)p)->want_read = ((rconn *)p)->want_write = 0; }

static void conn_down(rconn *c, const char *why)
{
    rt *r = c->owner;
    double now = cm_now();
    int was_up = c->up;
    c->ac = NULL;
    c->up = 0;
    c->n_out = 0;
    c->want_read = c->want_write = 0;
    if (c == &r->rd) r->read_pending = r->id_pending = 0, r->rd_id = 0;
    else r->group_pending = r->claim_pending = r->beat_pending = r->info_pending = 0;
    if (c->closing) {
        c->closing = 0;
        c->retry_at = now;
        return;
    }
    if (was_up) {
        r->st.reconnects++;
        c->down_since = now;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->failures = 0;
    } else {
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
    }
    c->retry_at = now + c->backoff_ms * 1e-3;
    c->failures++;
    if ((c->failures & (c->failures - 1)) == 0) { /* 1st, 2nd, 4th, ... */
        char t[300];
        DMN_LOG(was_up ? DMN_LOG_WARN : DMN_LOG_INFO,
                "queue: %s connection to Redis %s %s: "
                "%s; retrying in %d ms",
                c->name, target(r, t, sizeof t), was_up ? "lost" : "failed", why, c->backoff_ms);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (status != REDIS_OK) {
        conn_down(c, ac->errstr[0] ? ac->errstr : "cannot connect"); /* hiredis frees ac */
        return;
    }
    c->up = 1;
    c->backoff_ms = 0;
    if (c->down_since > 0) {
        char t[300];
        DMN_LOG(DMN_LOG_INFO, "queue: %s connection to Redis %s is back after %.1f s", c->name,
                target(c->owner, t, sizeof t), cm_now() - c->down_since);
        c->down_since = 0;
    }
    c->failures = 0;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    (void)status;
    conn_down(c, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void conn_open(rconn *c)
{
    rt *r = c->owner;
    redisAsyncContext *ac =
        r->path[0] ? redisAsyncConnectUnix(r->path) : redisAsyncConnect(r->host, r->port);
    if (!ac) {
        conn_down(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[200];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_down(c, why);
        return;
    }
    c->ac = ac;
    c->up = 0;
    c->n_out = 0;
    ac->data = c;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* hiredis asks for write readiness to learn the connect's outcome */
    c->want_write = 1;
}

/* Closes it now; every callback still owed runs with a NULL reply. Not from inside a
 * hiredis callback. */
static void conn_close(rconn *c, int loss, const char *why)
{
    if (!c->ac) return;
    redisAsyncContext *ac = c->ac;
    if (!loss) c->closing = 1;
    else if (c->up) {
        char t[300];
        DMN_LOG(DMN_LOG_WARN, "queue: %s connection to Redis %s: %s", c->name,
                target(c->owner, t, sizeof t), why);
    }
    int connected = (ac->c.flags & REDIS_CONNECTED) != 0;
    redisAsyncFree(ac); /* calls on_disconnect when it was connected */
    if (!connected || c->ac) conn_down(c, why);
}

static int conn_send(rconn *c, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                     const size_t *argvlen)
{
    if (!c->ac || !c->up) return -1;
    if (redisAsyncCommandArgv(c->ac, fn, priv, argc, argv, argvlen) != REDIS_OK) return -1;
    if (c->n_out++ == 0)
        c->deadline = cm_now() + CMD_TIMEOUT_S + (c == &c->owner->rd ? READ_BLOCK_MS * 1e-3 : 0);
    return 0;
}

/* Every callback starts here: one answer less owed. NULL when the connection went. */
static rconn *answered(redisAsyncContext *ac)
{
    rconn *c = ac->data;
    if (c->n_out > 0 && --c->n_out > 0)
        c->deadline = cm_now() + CMD_TIMEOUT_S + (c == &c->owner->rd ? READ_BLOCK_MS * 1e-3 : 0);
    return c;
}

static int is_error(const redisReply *rep, const char *prefix)
{
    return rep && rep->type == REDIS_REPLY_ERROR &&
           (!prefix || strncmp(rep->str, prefix, strlen(prefix)) == 0);
}

/* ---- the outbox ---- */

static void cmd_free(cmd *m)
{
    for (int i = 0; i < m->argc; i++) free(m->argv[i]);
    free(m->argv);
    free(m->argvlen);
    free(m);
}

static cmd *cmd_new(int kind, const char *entry, int argc)
{
    cmd *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->kind = kind;
    snprintf(m->entry, sizeof m->entry, "%s", entry);
    m->argv = calloc((size_t)argc, sizeof *m->argv);
    m->argvlen = calloc((size_t)argc, sizeof *m->argvlen);
    if (!m->argv || !m->argvlen) {
        free(m->argv);
        free(m->argvlen);
        free(m);
        return NULL;
    }
    return m;
}

static int cmd_arg(cmd *m, const void *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return -1;
    memcpy(p, s, n);
    p[n] = '\0';
    m->argv[m->argc] = p;
    m->argvlen[m->argc++] = n;
    return 0;
}

static int cmd_str(cmd *m, const char *s) { return cmd_arg(m, s, strlen(s)); }

static void outbox_push(rt *r, cmd *m)
{
    if (r->outbox_tail) r->outbox_tail->next = m;
    else r->outbox = m;
    r->outbox_tail = m;
    r->n_outbox++;
}

static void outbox_remove(rt *r, cmd *m)
{
    cmd *prev = NULL;
    for (cmd *p = r->outbox; p; prev = p, p = p->next)
        if (p == m) {
            if (prev) prev->next = p->next;
            else r->outbox = p->next;
            if (r->outbox_tail == p) r->outbox_tail = prev;
            r->n_outbox--;
            return;
        }
}

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    cmd *m = priv;
    redisReply *rep = reply;
    m->sent = 0;
    if (!rep) return; /* the connection went: sent again once it is back */
    if (rep->type == REDIS_REPLY_ERROR) {
        /* LOADING (a restarted Redis reading its AOF), NOGROUP, OOM...: try later */
        DMN_LOG_REQ(DMN_LOG_WARN, m->seq, m->id,
                    "queue: entry %s: Redis answered %s; "
                    "trying again",
                    m->entry, rep->str);
        r->outbox_retry_at = cm_now() + 0.5;
        if (is_error(rep, "NOGROUP")) r->group_ok = 0;
        return;
    }
    int done = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    if (m->kind == CMD_FINISH) {
        if (done && m->dead) r->st.dead_letters++;
        else if (done) r->st.results++;
        else {
            r->st.lost++;
            DMN_LOG_REQ(DMN_LOG_INFO, m->seq, m->id,
                        "queue: entry %s was claimed by another "
                        "consumer (this one was too slow): its result is theirs",
                        m->entry);
        }
    }
    held_remove(r, m->entry);
    outbox_remove(r, m);
    cmd_free(m);
}

static void outbox_flush(rt *r)
{
    if (!r->wr.up || !r->group_ok || cm_now() < r->outbox_retry_at) return;
    for (cmd *m = r->outbox; m; m = m->next) {
        if (m->sent) continue;
        if (conn_send(&r->wr, on_cmd_reply, m, m->argc, (const char **)m->argv, m->argvlen) < 0)
            return;
        m->sent = 1;
    }
}

/* ---- results ---- */

/* echo: the job's {"id": ...} or {"line": ...} (or NULL); a malloc'd line, or NULL. */
static char *json_render(const char *echo, int task, const nlpc_response *resp, int code,
                         const char *msg)
{
    cJSON *o = echo && echo[0] ? cJSON_Parse(echo) : NULL;
    if (!o) o = cJSON_CreateObject();
    if (!o) return NULL;
    const nlpc_result *res = resp && resp->n_results == 1 ? &resp->results[0] : NULL;
    if (!resp) {
        cJSON_AddStringToObject(o, "status", nlpc_code_name(code));
        cJSON_AddStringToObject(o, "error", msg);
    } else if (resp->code != NLPC_OK && !(res && res->code != NLPC_OK)) {
        cJSON_AddStringToObject(o, "status", nlpc_code_name(resp->code));
        cJSON_AddStringToObject(o, "error", resp->message);
    } else if (!res) {
        cJSON_AddStringToObject(o, "status", "MALFORMED");
        cJSON_AddStringToObject(o, "error", "the reply has no result");
    } else {
        dmn_json_result(o, task, res);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Queues the script that writes this entry's result (and its dead letter) and
 * acknowledges it. The result fields: entry, id, then resp and/or json. */
static void finish(rt *r, const char *entry, const char *idtext, const void *resp, size_t resp_len,
                   const char *json, const char *dead_reason, int deliveries, uint64_t seq,
                   uint64_t id)
{
    int nres = 4 + (resp ? 2 : 0) + (json ? 2 : 0);
    int ndead = dead_reason ? 6 : 0;
    cmd *m = cmd_new(CMD_FINISH, entry, 3 + 3 + 3 + 1 + nres + 1 + ndead);
    char num[32];
    int bad = !m;
    if (m) {
        m->dead = dead_reason != NULL;
        m->seq = seq;
        m->id = id;
        bad |= cmd_str(m, "EVAL") | cmd_str(m, FINISH_LUA) | cmd_str(m, "3");
        bad |= cmd_str(m, r->q->stream) | cmd_str(m, r->q->results) | cmd_str(m, r->q->dead_letter);
        bad |= cmd_str(m, r->q->group) | cmd_str(m, r->consumer) | cmd_str(m, entry);
        snprintf(num, sizeof num, "%d", nres);
        bad |= cmd_str(m, num);
        bad |= cmd_str(m, "entry") | cmd_str(m, entry);
        bad |= cmd_str(m, "id") | cmd_str(m, idtext);
        if (resp) bad |= cmd_str(m, "resp") | cmd_arg(m, resp, resp_len);
        if (json) bad |= cmd_str(m, "json") | cmd_str(m, json);
        snprintf(num, sizeof num, "%d", ndead);
        bad |= cmd_str(m, num);
        if (dead_reason) {
            snprintf(num, sizeof num, "%d", deliveries);
            bad |= cmd_str(m, "entry") | cmd_str(m, entry) | cmd_str(m, "reason") |
                   cmd_str(m, dead_reason) | cmd_str(m, "deliveries") | cmd_str(m, num);
        }
    }
    if (bad) {
        DMN_LOG_REQ(DMN_LOG_ERROR, seq, id,
                    "queue: out of memory writing the result of "
                    "entry %s: it stays pending and will be claimed again",
                    entry);
        if (m) cmd_free(m);
        return;
    }
    held_add(r, entry);
    outbox_push(r, m);
    outbox_flush(r);
}

/* Gives an entry back to the group: idle_ms > 0 makes it claimable at once. */
static void release(rt *r, const char *entry, int idle_ms)
{
    /* no longer kept fresh: a heartbeat would undo the idle time set here */
    held_remove(r, entry);
    if (idle_ms <= 0) return; /* nothing to tell Redis: it turns idle by itself */
    cmd *m = cmd_new(CMD_RELEASE, entry, 8);
    char num[32];
    snprintf(num, sizeof num, "%d", idle_ms);
    if (!m ||
        (cmd_str(m, "EVAL") | cmd_str(m, RELEASE_LUA) | cmd_str(m, "1") | cmd_str(m, r->q->stream) |
         cmd_str(m, r->q->group) | cmd_str(m, r->consumer) | cmd_str(m, entry) | cmd_str(m, num))) {
        if (m) cmd_free(m);
        return;
    }
    outbox_push(r, m);
    outbox_flush(r);
}

/* An error answered here, without the server: in the job's encoding (both for an entry
 * with both fields or neither). Counted as a request and a response. */
static void finish_error(rt *r, const char *entry, int enc, const char *echo, int task, uint64_t id,
                         const char *idtext, int code, const char *msg, const char *dead_reason,
                         int deliveries)
{
    dmn_server *srv = r->base.srv;
    void *pb = NULL;
    size_t pblen = 0;
    char *json = NULL;
    uint64_t seq = ++srv->next_seq;
    dmn_stats_request(srv->stats);
    dmn_stats_response(srv->stats, code, -1);
    DMN_LOG_REQ(DMN_LOG_INFO, seq, id, "queue: entry %s: %s: %s", entry, dmn_code_name(code), msg);
    if (enc != ENC_JSON && dmn_resp_error(id, code, msg, &pb, &pblen) < 0) pb = NULL;
    if (enc != ENC_REQ) json = json_render(echo, task, NULL, code, msg);
    finish(r, entry, idtext, pb, pblen, json, dead_reason, deliveries, seq, id);
    free(pb);
    cJSON_free(json);
}

/* ---- jobs in ---- */

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

/* What this transport needs of a packed Request, read off the wire (the daemon's one
 * protobuf module, dmn_req.c, decodes it for real): id (field 1), deadline_ms (11), the
 * number of documents (9). -1 when the bytes are not well-formed protobuf. */
static int scan_request(const uint8_t *b, size_t len, uint64_t *id, uint64_t *deadline, int *docs)
{
    size_t i = 0;
    *id = *deadline = 0;
    *docs = 0;
    while (i < len) {
        uint64_t key, v;
        if (read_varint(b, len, &i, &key) < 0) return -1;
        switch (key & 7) {
        case 0:
            if (read_varint(b, len, &i, &v) < 0) return -1;
            if (key >> 3 == 1) *id = v;
            if (key >> 3 == 11) *deadline = v;
            break;
        case 1:
            if (len - i < 8) return -1;
            i += 8;
            break;
        case 5:
            if (len - i < 4) return -1;
            i += 4;
            break;
        case 2:
            if (read_varint(b, len, &i, &v) < 0 || v > len - i) return -1;
            i += (size_t)v;
            if (key >> 3 == 9) (*docs)++;
            break;
        default: return -1;
        }
    }
    return 0;
}

static const char *str_field(const cJSON *in, const char *key, const char *dflt, int *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsString(v)) {
        *bad = 1;
        return NULL;
    }
    return v->valuestring;
}

/* options: {"max_new_tokens": 8, ...}, the names of nlp.v1.DecodingOptions. */
static int json_options(const cJSON *o, nlpc_decode_opts *d, char *msg, size_t mlen)
{
    static const char *const ints[] = { "max_new_tokens",       "min_new_tokens",       "num_beams",
                                        "num_return_sequences", "no_repeat_ngram_size", "top_k" };
    static const char *const floats[] = { "length_penalty", "repetition_penalty", "temperature",
                                          "top_p" };
    int *ip[] = { &d->max_new_tokens,       &d->min_new_tokens,       &d->num_beams,
                  &d->num_return_sequences, &d->no_repeat_ngram_size, &d->top_k };
    float *fp[] = { &d->length_penalty, &d->repetition_penalty, &d->temperature, &d->top_p };
    const cJSON *e;
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) {
        snprintf(msg, mlen, "\"options\" must be an object");
        return -1;
    }
    cJSON_ArrayForEach (e, o) {
        const char *k = e->string;
        int known = 0;
        for (int i = 0; i < 6 && !known; i++)
            if (strcmp(k, ints[i]) == 0) {
                known = 1;
                if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9 ||
                    e->valuedouble != floor(e->valuedouble)) {
                    cm_fmt(msg, mlen, "options.%s must be a whole number >= 0", k);
                    return -1;
                }
                *ip[i] = (int)e->valuedouble;
            }
        for (int i = 0; i < 4 && !known; i++)
            if (strcmp(k, floats[i]) == 0) {
                known = 1;
                if (!cJSON_IsNumber(e)) {
                    cm_fmt(msg, mlen, "options.%s must be a number", k);
                    return -1;
                }
                *fp[i] = (float)e->valuedouble;
            }
        if (!known && strcmp(k, "seed") == 0) {
            known = 1;
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 9e15) {
                cm_fmt(msg, mlen, "options.seed must be a whole number >= 0");
                return -1;
            }
            d->seed = (int64_t)e->valuedouble;
        }
        if (!known && strcmp(k, "return_hypotheses") == 0) {
            known = 1;
            if (!cJSON_IsBool(e)) {
                cm_fmt(msg, mlen, "options.return_hypotheses must be true or false");
                return -1;
            }
            d->return_hypotheses = cJSON_IsTrue(e);
        }
        if (!known) {
            cm_fmt(msg, mlen, "unknown option \"%.64s\"", k);
            return -1;
        }
    }
    return 0;
}

/* A json job: the object `nlpc batch` reads ("text", "labels", "question", "to",
 * "from", "model") with its "task" and, optionally, "options", "deadline_ms",
 * "priority", "multi_label", "id" (echoed first in the result, as nlpc prints it) or
 * "line". Fills *rq (pointers into the parsed object, labels into labels/lbuf) and
 * *model (NULL: none named). Returns DMN_OK, or a code with the reason in msg. */
static int json_request(const cJSON *in, nlpc_request *rq, const char **doc, const char **labels,
                        char **lbuf, const char **model, uint32_t *deadline, char *msg, size_t mlen)
{
    int bad = 0;
    const char *task = str_field(in, "task", NULL, &bad);
    if (bad || !task) {
        snprintf(msg, mlen, "the job needs a string \"task\"");
        return bad ? DMN_INVALID_ARGUMENT : DMN_UNKNOWN_TASK;
    }
    nlpc_task t = nlpc_task_from_name(task);
    if (t == NLPC_TASK_NONE || t >= NLPC_TASK_HEALTH) {
        cm_fmt(msg, mlen,
               "unknown task \"%.64s\" (summarize, translate, classify, qa, "
               "text2text)",
               task);
        return DMN_UNKNOWN_TASK;
    }
    nlpc_request_init(rq, t);
    const char *text = *doc = str_field(in, "text", NULL, &bad);
    if (bad || !text) {
        snprintf(msg, mlen, "the line needs a string \"text\"");
        return DMN_INVALID_ARGUMENT;
    }
    rq->docs = doc;
    rq->n_docs = 1;
    /* The task's own fields and "model", as on an nlpc batch line (common/cm_json.c). */
    *model = NULL;
    if (cm_json_task_fields(in, rq, model, labels, MAX_LABELS, lbuf, msg, mlen) < 0)
        return DMN_INVALID_ARGUMENT;
    const char *need = cm_json_missing(rq);
    if (need) {
        cm_fmt(msg, mlen, "%s needs \"%s\"", task, need);
        return DMN_INVALID_ARGUMENT;
    }
    if (t == NLPC_TASK_CLASSIFY) {
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(in, "multi_label");
        if (ml && !cJSON_IsNull(ml) && !cJSON_IsBool(ml)) {
            snprintf(msg, mlen, "\"multi_label\" must be true or false");
            return DMN_INVALID_ARGUMENT;
        }
        rq->multi_label = cJSON_IsTrue(ml);
    }
    if (json_options(cJSON_GetObjectItemCaseSensitive(in, "options"), &rq->opts, msg, mlen) < 0)
        return DMN_INVALID_ARGUMENT;
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(in, "deadline_ms");
    if (dl && !cJSON_IsNull(dl)) {
        if (!cJSON_IsNumber(dl) || dl->valuedouble < 0 || dl->valuedouble > UINT32_MAX) {
            snprintf(msg, mlen, "\"deadline_ms\" must be a whole number of milliseconds");
            return DMN_INVALID_ARGUMENT;
        }
        *deadline = (uint32_t)dl->valuedouble;
    }
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(in, "priority");
    if (pr && !cJSON_IsNull(pr)) {
        if (!cJSON_IsNumber(pr) || fabs(pr->valuedouble) > 1e6) {
            snprintf(msg, mlen, "\"priority\" must be a number (-100..100)");
            return DMN_INVALID_ARGUMENT;
        }
        rq->priority = (int)pr->valuedouble;
    }
    return DMN_OK;
}

static int room(const rt *r)
{
    const dmn_server *srv = r->base.srv;
    /* Every model's queue together (dmn_server_depth); none while no model serves yet. */
    dmn_server *srv_rw = r->base.srv;
    if (!dmn_server_ok(srv_rw)) return 0;
    return srv->conf.limits.queue_size - dmn_server_depth(srv_rw) - r->wait_docs;
}

static int stopping(rt *r)
{
    const dmn_server *srv = r->base.srv;
    if ((srv->stop || srv->shutting_down) && !r->stopping) {
        r->stopping = 1;
        DMN_LOG(DMN_LOG_INFO,
                "queue: stopping: no more entries are read; %d held entries "
                "are finished and acknowledged",
                r->n_held);
    }
    return r->stopping;
}

/* Hands the payload to the server with a route naming the entry. */
static void submit(rt *r, const char *entry, int enc, int task, const char *echo,
                   const void *payload, size_t len)
{
    unsigned char meta[2] = { (unsigned char)enc, (unsigned char)task };
    /* Frame 0 names the client for the scheduler's fair queueing (dmn_sched.c): every
     * job of this stream is one client, taking turns with the ZeroMQ clients. */
    const void *data[4] = { r->q->stream, entry, meta, echo ? echo : "" };
    size_t lens[4] = { strlen(r->q->stream), strlen(entry), 2, echo ? strlen(echo) : 0 };
    dmn_route to = { .transport = r->base.index };
    if (dmn_route_set(&to, r->base.index, data, lens, 4) < 0) {
        DMN_LOG(DMN_LOG_ERROR, "queue: out of memory keeping entry %s's route: released", entry);
        release(r, entry, r->q->claim_idle_ms);
        return;
    }
    held_add(r, entry);
    dmn_server_submit(r->base.srv, &to, payload, len); /* may reply before it returns */
}

static void wait_push(rt *r, const char *entry, int enc, int task, int docs, void *payload,
                      size_t len, char *echo)
{
    waiting *w = calloc(1, sizeof *w);
    if (!w) {
        free(payload);
        free(echo);
        release(r, entry, r->q->claim_idle_ms);
        return;
    }
    snprintf(w->entry, sizeof w->entry, "%s", entry);
    w->enc = enc, w->task = task, w->docs = docs;
    w->payload = payload, w->len = len, w->echo = echo;
    if (r->wait_tail) r->wait_tail->next = w;
    else r->wait_head = w;
    r->wait_tail = w;
    r->wait_docs += docs;
    held_add(r, entry);
}

/* Submits waiting entries while there is room; releases them all when stopping. */
static void wait_flush(rt *r)
{
    while (r->wait_head) {
        waiting *w = r->wait_head;
        int stop = stopping(r);
        if (!stop && room(r) + r->wait_docs < w->docs) return;
        r->wait_head = w->next;
        if (!r->wait_head) r->wait_tail = NULL;
        r->wait_docs -= w->docs;
        if (stop) release(r, w->entry, r->q->claim_idle_ms);
        else submit(r, w->entry, w->enc, w->task, w->echo, w->payload, w->len);
        free(w->payload);
        free(w->echo);
        free(w);
    }
}

static const redisReply *field_value(const redisReply *fields, const char *name, int *count)
{
    const redisReply *v = NULL;
    *count = 0;
    if (!fields || fields->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0) {
            v = fields->element[i + 1];
            (*count)++;
        }
    }
    return v;
}

/* Its error result names the job as a result of it would: the request id, or the json
 * job's "id" (else "line") and task. */
static void dead_letter(rt *r, const char *entry, int enc, const redisReply *req,
                        const redisReply *json, const char *reason, int deliveries)
{
    uint64_t id = 0, dl;
    int docs, task = 0;
    char idtext[32] = "", *echo = NULL, *idj = NULL;
    if (enc == ENC_REQ && req->type == REDIS_REPLY_STRING &&
        scan_request((const uint8_t *)req->str, req->len, &id, &dl, &docs) == 0)
        snprintf(idtext, sizeof idtext, "%" PRIu64, id);
    cJSON *in = enc == ENC_JSON && json->type == REDIS_REPLY_STRING
                    ? cJSON_ParseWithLength(json->str, json->len)
                    : NULL;
    if (cJSON_IsObject(in)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "id");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(in, "line");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(in, "task");
        cJSON *eo = cJSON_CreateObject();
        if (eo && (v || l))
            cJSON_AddItemToObject(eo, v ? "id" : "line", cJSON_Duplicate(v ? v : l, 1));
        echo = eo ? cJSON_PrintUnformatted(eo) : NULL;
        cJSON_Delete(eo);
        idj = v ? cJSON_PrintUnformatted(v) : NULL;
        if (cJSON_IsString(t)) task = nlpc_task_from_name(t->valuestring);
    }
    finish_error(r, entry, enc, echo, task, id, idj ? idj : idtext, DMN_INTERNAL, reason, reason,
                 deliveries);
    cJSON_free(echo);
    cJSON_free(idj);
    cJSON_Delete(in);
}

/* One entry, read or claimed (deliveries: its delivery count after the claim, 0 for a
 * first read). */
static void on_entry(rt *r, const char *entry, const redisReply *fields, long long deliveries)
{
    dmn_server *srv = r->base.srv;
    int nreq, njson;
    const redisReply *req = field_value(fields, "req", &nreq);
    const redisReply *json = field_value(fields, "json", &njson);
    int enc = nreq && !njson ? ENC_REQ : njson && !nreq ? ENC_JSON : ENC_BOTH;
    char msg[320];

    if (deliveries > r->q->max_deliveries) {
        const char *last = last_failure(r, entry);
        char reason[400];
        cm_fmt(reason, sizeof reason,
               "delivered %lld times without a result (max_deliveries "
               "%d): the daemons that took it died, stopped or failed%s%s",
               deliveries - 1, r->q->max_deliveries, last ? "; last: " : "", last ? last : "");
        DMN_LOG(DMN_LOG_WARN, "queue: entry %s goes to %s: %s", entry, r->q->dead_letter, reason);
        dead_letter(r, entry, enc, req, json, reason, (int)deliveries - 1);
        return;
    }
    if (stopping(r)) { /* read as the stop came: for another consumer */
        release(r, entry, r->q->claim_idle_ms);
        return;
    }
    if (enc == ENC_BOTH || (req && req->type != REDIS_REPLY_STRING) ||
        (json && json->type != REDIS_REPLY_STRING)) {
        snprintf(msg, sizeof msg,
                 "an entry has one field `req` (a packed nlp.v1.Request) or "
                 "`json` (a JSON object); this one has %s",
                 nreq + njson == 0  ? "neither"
                 : nreq + njson > 1 ? "more than one"
                                    : "a "
                                      "value that is not a string");
        finish_error(r, entry, ENC_BOTH, NULL, 0, 0, "", DMN_MALFORMED, msg, NULL, 0);
        return;
    }
    /* Deadlines count from the entry's stream timestamp (Redis's clock at XADD). */
    double added = (double)strtoull(entry, NULL, 10);
    double elapsed = wall_ms() - added;
    if (elapsed < 0) elapsed = 0;
    unsigned dflt = (unsigned)srv->conf.limits.default_deadline_ms;

    if (enc == ENC_REQ) {
        uint64_t id = 0, dl = 0;
        int docs = 1;
        size_t len = req->len;
        uint8_t *pb = malloc(len + 11);
        if (!pb) {
            release(r, entry, r->q->claim_idle_ms);
            return;
        }
        memcpy(pb, req->str, len);
        if (scan_request(pb, len, &id, &dl, &docs) == 0 &&
            len <= (size_t)srv->conf.limits.max_message_bytes) {
            double left = (double)(dl ? dl : dflt) - elapsed;
            char idtext[32];
            snprintf(idtext, sizeof idtext, "%" PRIu64, id);
            if (left < 1) {
                cm_fmt(msg, sizeof msg,
                       "deadline passed %.0f ms after the entry was added, "
                       "before a daemon took it",
                       elapsed);
                finish_error(r, entry, ENC_REQ, NULL, 0, id, idtext, DMN_DEADLINE_EXCEEDED, msg,
                             NULL, 0);
                free(pb);
                return;
            }
            /* deadline_ms again, last on the wire: protobuf's last one wins */
            if (len + 11 <= (size_t)srv->conf.limits.max_message_bytes) {
                uint64_t v = (uint64_t)left;
                pb[len++] = 11 << 3;
                do {
                    pb[len++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
                    v >>= 7;
                } while (v);
            }
        }
        if (docs < 1) docs = 1;
        if (room(r) >= docs) {
            submit(r, entry, ENC_REQ, 0, NULL, pb, len);
            free(pb);
        } else {
            wait_push(r, entry, ENC_REQ, 0, docs, pb, len, NULL);
        }
        return;
    }

    /* json */
    size_t bad;
    const char *end = NULL;
    cJSON *in = NULL;
    if (json->len > (size_t)srv->conf.limits.max_message_bytes) {
        snprintf(msg, sizeof msg, "the job is %zu bytes, the limit is %d (max_message_bytes)",
                 json->len, srv->conf.limits.max_message_bytes);
        finish_error(r, entry, ENC_JSON, NULL, 0, 0, "", DMN_MESSAGE_TOO_LARGE, msg, NULL, 0);
        return;
    }
    if (!cm_utf8_valid(json->str, json->len, &bad)) {
        snprintf(msg, sizeof msg, "the line is not valid UTF-8 (byte %zu)", bad + 1);
    } else if (!(in = cJSON_ParseWithLengthOpts(json->str, json->len, &end, 0)) ||
               !cJSON_IsObject(in)) {
        snprintf(msg, sizeof msg, "the line is not a JSON object");
    } else {
        size_t k = end ? (size_t)(end - json->str) : json->len;
        while (k < json->len && strchr(" \t\r\n", json->str[k])) k++;
        if (k < json->len) {
            snprintf(msg, sizeof msg, "text after the JSON object at column %zu", k + 1);
            cJSON_Delete(in);
            in = NULL;
        }
    }
    if (!in || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        finish_error(r, entry, ENC_JSON, NULL, 0, 0, "", DMN_MALFORMED, msg, NULL, 0);
        return;
    }
    /* what the result starts with: the job's "id", else its "line" (nlpc batch --queue) */
    char *echo = NULL, *idtext = NULL;
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(in, "id");
    const cJSON *lnj = cJSON_GetObjectItemCaseSensitive(in, "line");
    cJSON *eo = cJSON_CreateObject();
    if (eo && (idj || lnj))
        cJSON_AddItemToObject(eo, idj ? "id" : "line", cJSON_Duplicate(idj ? idj : lnj, 1));
    echo = eo ? cJSON_PrintUnformatted(eo) : NULL;
    cJSON_Delete(eo);
    idtext = idj ? cJSON_PrintUnformatted(idj) : NULL;
    nlpc_request rq;
    const char *doc, *labels[MAX_LABELS], *model = NULL;
    char *lbuf = NULL;
    uint32_t dl = 0;
    int task = 0;
    uint8_t *pb = NULL;
    size_t len = 0;
    int code = echo && strlen(echo) <= MAX_ECHO ? DMN_OK : DMN_INVALID_ARGUMENT;
    if (code != DMN_OK) snprintf(msg, sizeof msg, "the job's \"id\" is over %d bytes", MAX_ECHO);
    if (code == DMN_OK)
        code = json_request(in, &rq, &doc, labels, &lbuf, &model, &dl, msg, sizeof msg);
    if (code == DMN_OK) {
        double left = (double)(dl ? dl : dflt) - elapsed;
        task = rq.task;
        if (left < 1) {
            cm_fmt(msg, sizeof msg,
                   "deadline passed %.0f ms after the entry was added, "
                   "before a daemon took it",
                   elapsed);
            code = DMN_DEADLINE_EXCEEDED;
        } else {
            char err[256];
            rq.deadline_ms = (uint32_t)left;
            int rc =
                nlpc_request_pack_model(&rq, model, ++r->next_job_id, &pb, &len, err, sizeof err);
            if (rc < 0) {
                cm_fmt(msg, sizeof msg, "%s", err);
                code = rc == NLPC_ENOMEM ? DMN_INTERNAL : DMN_INVALID_ARGUMENT;
            }
        }
    }
    if (code != DMN_OK) {
        finish_error(r, entry, ENC_JSON, echo, task, 0, idtext ? idtext : "", code, msg, NULL, 0);
    } else if (room(r) >= 1) {
        submit(r, entry, ENC_JSON, task, echo, pb, len);
    } else {
        char *e = echo ? strdup(echo) : NULL;
        wait_push(r, entry, ENC_JSON, task, 1, pb, len, e);
        pb = NULL;
    }
    free(pb);
    free(lbuf);
    cJSON_free(echo);
    cJSON_free(idtext);
    cJSON_Delete(in);
}

/* ---- Redis commands ---- */

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    redisReply *rep = reply;
    (void)priv;
    r->group_pending = 0;
    if (!rep) return;
    if (rep->type == REDIS_REPLY_ERROR && !is_error(rep, "BUSYGROUP")) {
        DMN_LOG(DMN_LOG_ERROR, "queue: cannot create group %s on %s: %s", r->q->group, r->q->stream,
                rep->str);
        r->next_claim = cm_now() + 1.0; /* tried again after a while */
        return;
    }
    if (!is_error(rep, "BUSYGROUP"))
        DMN_LOG(DMN_LOG_INFO, "queue: created group %s on stream %s", r->q->group, r->q->stream);
    else DMN_LOG(DMN_LOG_INFO, "queue: consuming stream %s as group %s", r->q->stream, r->q->group);
    r->group_ok = 1;
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    redisReply *rep = reply;
    (void)priv;
    r->read_pending = 0;
    if (!rep) return;
    if (rep->type == REDIS_REPLY_ERROR) {
        DMN_LOG(DMN_LOG_WARN, "queue: XREADGROUP: %s", rep->str);
        if (is_error(rep, "NOGROUP")) r->group_ok = 0;
        r->rd.retry_at = cm_now() + 1.0; /* read again after a while */
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY) return; /* nil: BLOCK timed out */
    for (size_t s = 0; s < rep->elements; s++) {
        const redisReply *st = rep->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements < 2) continue;
        const redisReply *es = st->element[1];
        for (size_t i = 0; es->type == REDIS_REPLY_ARRAY && i < es->elements; i++) {
            const redisReply *e = es->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
                e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= 48)
                continue;
            on_entry(r, e->element[0]->str, e->elements > 1 ? e->element[1] : NULL, 0);
        }
    }
}

static void on_claim(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    redisReply *rep = reply;
    (void)priv;
    r->claim_pending = 0;
    if (!rep) return;
    if (rep->type == REDIS_REPLY_ERROR) {
        DMN_LOG(DMN_LOG_WARN, "queue: XAUTOCLAIM: %s", rep->str);
        if (is_error(rep, "NOGROUP")) r->group_ok = 0;
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) return;
    const redisReply *cur = rep->element[0], *es = rep->element[1];
    if (cur->type == REDIS_REPLY_STRING && cur->len < sizeof r->claim_cursor)
        snprintf(r->claim_cursor, sizeof r->claim_cursor, "%s", cur->str);
    for (size_t i = 0; es->type == REDIS_REPLY_ARRAY && i < es->elements; i++) {
        const redisReply *e = es->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= 48)
            continue;
        long long n = e->element[1]->type == REDIS_REPLY_INTEGER ? e->element[1]->integer : 1;
        r->st.claims++;
        DMN_LOG(DMN_LOG_INFO, "queue: claimed entry %s (delivery %lld), idle over %d ms",
                e->element[0]->str, n, r->q->claim_idle_ms);
        on_entry(r, e->element[0]->str, e->element[2], n > 1 ? n : 2);
    }
    /* more to claim: go on at once */
    if (strcmp(r->claim_cursor, "0-0") != 0) r->next_claim = 0;
}

static void on_client_id(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    redisReply *rep = reply;
    (void)priv;
    r->id_pending = 0;
    if (rep && rep->type == REDIS_REPLY_INTEGER) r->rd_id = rep->integer;
}

static void on_beat(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    (void)reply;
    (void)priv;
    r->beat_pending = 0;
}

static void on_ignored(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)reply;
    (void)priv;
    answered(ac);
}

static void on_info(redisAsyncContext *ac, void *reply, void *priv)
{
    rt *r = answered(ac)->owner;
    redisReply *rep = reply;
    (void)priv;
    r->info_pending = 0;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) return;
    for (size_t g = 0; g < rep->elements; g++) {
        const redisReply *gr = rep->element[g];
        int mine = 0;
        long long pending = -1, lag = -1;
        for (size_t i = 0; gr->type == REDIS_REPLY_ARRAY && i + 1 < gr->elements; i += 2) {
            const redisReply *k = gr->element[i], *v = gr->element[i + 1];
            if (k->type != REDIS_REPLY_STRING) continue;
            if (!strcmp(k->str, "name") && v->type == REDIS_REPLY_STRING)
                mine = !strcmp(v->str, r->q->group);
            if (!strcmp(k->str, "pending") && v->type == REDIS_REPLY_INTEGER) pending = v->integer;
            if (!strcmp(k->str, "lag") && v->type == REDIS_REPLY_INTEGER) lag = v->integer;
        }
        if (!mine) continue;
        if (pending >= 0) r->st.pending = (uint64_t)pending;
        if (lag >= 0) r->st.lag = (uint64_t)lag;
    }
}

/* Everything time-driven: reconnects, the group, reads, claims, heartbeats, stats. */
static void tick(rt *r, int pull)
{
    dmn_server *srv = r->base.srv;
    double now = cm_now();
    int stop = stopping(r);
    char num[32], cnt[32];

    for (int k = 0; k < 2; k++) {
        rconn *c = conn_of(r, k);
        if (c->ac && c->n_out > 0 && now > c->deadline)
            conn_close(c, 1, "no answer in time: reconnecting");
    }
    /* Stopping: a read still waiting is ended (CLIENT UNBLOCK: it returns what it has,
     * at most), then the reader goes, so Redis delivers nothing more to this consumer.
     * Not before: entries Redis already delivered must be seen, and handed back. */
    if (stop && r->read_pending && r->rd_id && !r->unblock_sent && r->wr.up) {
        snprintf(num, sizeof num, "%lld", r->rd_id);
        const char *a[] = { "CLIENT", "UNBLOCK", num };
        if (conn_send(&r->wr, on_ignored, NULL, 3, a, NULL) == 0) r->unblock_sent = 1;
    }
    if (stop && r->rd.ac && !r->read_pending) conn_close(&r->rd, 0, "stopping");
    if (!r->wr.ac && now >= r->wr.retry_at) conn_open(&r->wr);
    if (!stop && !r->rd.ac && now >= r->rd.retry_at) conn_open(&r->rd);

    if (r->wr.up && !r->group_ok && !r->group_pending && now >= r->next_claim) {
        const char *a[] = { "XGROUP", "CREATE", r->q->stream, r->q->group, "0", "MKSTREAM" };
        if (conn_send(&r->wr, on_group, NULL, 6, a, NULL) == 0) r->group_pending = 1;
    }
    wait_flush(r);
    if (r->group_ok) {
        int space = pull ? room(r) : 0;
        if (space > READ_MAX) space = READ_MAX;
        if (!stop && r->rd.up && !r->rd_id && !r->id_pending) {
            const char *a[] = { "CLIENT", "ID" };
            if (conn_send(&r->rd, on_client_id, NULL, 2, a, NULL) == 0) r->id_pending = 1;
        }
        if (!stop && r->rd.up && !r->read_pending && space > 0 && now >= r->rd.retry_at) {
            snprintf(cnt, sizeof cnt, "%d", space);
            snprintf(num, sizeof num, "%d", READ_BLOCK_MS);
            const char *a[] = { "XREADGROUP", "GROUP", r->q->group, r->consumer,  "COUNT", cnt,
                                "BLOCK",      num,     "STREAMS",   r->q->stream, ">" };
            if (conn_send(&r->rd, on_read, NULL, 11, a, NULL) == 0) r->read_pending = 1;
        }
        if (!stop && r->wr.up && !r->claim_pending && space > 0 && now >= r->next_claim) {
            snprintf(num, sizeof num, "%d", r->q->claim_idle_ms);
            snprintf(cnt, sizeof cnt, "%d", space);
            const char *a[] = { "EVAL",       CLAIM_LUA,       "1",
                                r->q->stream, r->q->group,     r->consumer,
                                num,          r->claim_cursor, cnt };
            if (conn_send(&r->wr, on_claim, NULL, 9, a, NULL) == 0) r->claim_pending = 1;
            double every = r->q->claim_idle_ms * 1e-3 / 2;
            r->next_claim = now + (every < 0.05 ? 0.05 : every > 5 ? 5 : every);
        }
        if (r->wr.up && !r->beat_pending && r->n_held > 0 && now >= r->next_beat) {
            int n = r->n_held;
            const char **a = malloc((size_t)(n + 6) * sizeof *a);
            if (a) {
                a[0] = "EVAL", a[1] = HEARTBEAT_LUA, a[2] = "1", a[3] = r->q->stream;
                a[4] = r->q->group;
                a[5] = r->consumer;
                for (int i = 0; i < n; i++) a[6 + i] = r->held[i];
                if (conn_send(&r->wr, on_beat, NULL, n + 6, a, NULL) == 0) r->beat_pending = 1;
                free(a);
            }
            r->next_beat = now + r->q->claim_idle_ms * 1e-3 / 3;
        }
        if (r->wr.up && !r->info_pending && now >= r->next_info) {
            const char *a[] = { "XINFO", "GROUPS", r->q->stream };
            if (conn_send(&r->wr, on_info, NULL, 3, a, NULL) == 0) r->info_pending = 1;
            r->next_info = now + INFO_EVERY_S;
        }
    }
    outbox_flush(r);
    r->st.enabled = 1;
    r->st.connected = r->wr.up && (r->rd.up || stop) && r->group_ok;
    r->st.held = (uint32_t)r->n_held;
    dmn_stats_set_queue(srv->stats, &r->st);
}

/* ---- the transport ---- */

static int rt_poll_items(dmn_transport *t, zmq_pollitem_t *items, int pull)
{
    rt *r = (rt *)t;
    int n = 0;
    /* pull 0: the daemon's queue is full (or it stops); with room, reads ask for no
     * more entries than the room there is (room()) */
    tick(r, pull);
    for (int k = 0; k < 2; k++) {
        rconn *c = conn_of(r, k);
        if (!c->ac || (!c->want_read && !c->want_write)) continue;
        items[n] = (zmq_pollitem_t){
            NULL, c->ac->c.fd,
            (short)((c->want_read ? ZMQ_POLLIN : 0) | (c->want_write ? ZMQ_POLLOUT : 0)), 0
        };
        r->item_conn[n++] = k;
    }
    return n;
}

static void rt_on_ready(dmn_transport *t, const zmq_pollitem_t *items, int n)
{
    rt *r = (rt *)t;
    for (int i = 0; i < n; i++) {
        rconn *c = conn_of(r, r->item_conn[i]);
        if (c->ac && c->ac->c.fd == items[i].fd && (items[i].revents & ZMQ_POLLIN))
            redisAsyncHandleRead(c->ac);
        if (c->ac && c->ac->c.fd == items[i].fd && (items[i].revents & ZMQ_POLLOUT))
            redisAsyncHandleWrite(c->ac);
        if (c->ac && c->ac->c.fd == items[i].fd && (items[i].revents & ZMQ_POLLERR))
            redisAsyncHandleRead(c->ac); /* reads the error, then the disconnect */
    }
    wait_flush(r);
    outbox_flush(r);
}

static void rt_reply(dmn_transport *t, const dmn_route *to, void *buf, size_t len, uint64_t seq,
                     uint64_t id)
{
    rt *r = (rt *)t;
    char entry[48], idtext[32];
    if (to->n_env != 4 || to->env_len[1] >= sizeof entry || to->env_len[2] != 2) {
        free(buf);
        return;
    }
    memcpy(entry, dmn_route_frame(to, 1), to->env_len[1]);
    entry[to->env_len[1]] = '\0';
    const unsigned char *meta = dmn_route_frame(to, 2);
    int enc = meta[0], task = meta[1];
    char *echo = NULL;
    if (to->env_len[3]) {
        echo = malloc(to->env_len[3] + 1u);
        if (echo) {
            memcpy(echo, dmn_route_frame(to, 3), to->env_len[3]);
            echo[to->env_len[3]] = '\0';
        }
    }
    nlpc_response *resp = NULL;
    int code = nlpc_response_decode(buf, len, &resp) == 0 ? resp->code : DMN_INTERNAL;
    int has_res = resp && resp->n_results > 0;
    if ((code == DMN_OVERLOADED || code == DMN_SHUTTING_DOWN) && !has_res) {
        /* not refused for what it is: another consumer (or this one later) takes it */
        DMN_LOG_REQ(DMN_LOG_DEBUG, seq, id, "queue: entry %s released (%s)", entry,
                    dmn_code_name(code));
        release(r, entry, r->q->claim_idle_ms);
    } else if (code == DMN_INTERNAL) {
        /* an engine failure may not happen elsewhere: retried after claim_idle_ms,
         * dead-lettered after max_deliveries */
        char why[260];
        cm_fmt(why, sizeof why, "INTERNAL: %s", resp ? resp->message : "undecodable reply");
        DMN_LOG_REQ(DMN_LOG_WARN, seq, id,
                    "queue: entry %s failed (%s): left pending for a "
                    "retry",
                    entry, why);
        note_failure(r, entry, why);
        release(r, entry, 0);
    } else {
        char *json = NULL, *idj = NULL;
        if (enc == ENC_JSON) {
            json = json_render(echo, task, resp, code, "");
            /* the result's id: the job's "id" as JSON text, when it has one */
            cJSON *eo = echo ? cJSON_Parse(echo) : NULL;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(eo, "id");
            idj = v ? cJSON_PrintUnformatted(v) : NULL;
            cJSON_Delete(eo);
        }
        snprintf(idtext, sizeof idtext, "%" PRIu64, id);
        if (enc == ENC_JSON && !json)
            DMN_LOG_REQ(DMN_LOG_ERROR, seq, id,
                        "queue: out of memory rendering entry %s's "
                        "result: it stays pending",
                        entry);
        else
            finish(r, entry, enc == ENC_JSON ? (idj ? idj : "") : idtext,
                   enc == ENC_JSON ? NULL : buf, len, json, NULL, 0, seq, id);
        cJSON_free(idj);
        cJSON_free(json);
    }
    nlpc_response_free(&resp);
    free(echo);
    free(buf);
}

static void rt_close(dmn_transport *t)
{
    rt *r = (rt *)t;
    dmn_server *srv = t->srv;
    double end = cm_now() + (srv->conf.linger_ms > 2000 ? srv->conf.linger_ms : 2000) * 1e-3;
    r->stopping = 1;
    wait_flush(r); /* releases what waits */
    /* What the daemon answered must reach Redis before it goes, and what a read or a
     * claim still brings is handed back (released to another consumer). */
    while ((r->outbox || r->read_pending || r->claim_pending) && cm_now() < end) {
        tick(r, 0);
        struct pollfd p[2];
        rconn *pc[2];
        int n = 0;
        for (int k = 0; k < 2; k++) {
            rconn *c = conn_of(r, k);
            if (!c->ac || (!c->want_read && !c->want_write)) continue;
            p[n] = (struct pollfd){
                c->ac->c.fd, (short)((c->want_read ? POLLIN : 0) | (c->want_write ? POLLOUT : 0)), 0
            };
            pc[n++] = c;
        }
        if (poll(p, (nfds_t)n, 50) <= 0) continue;
        for (int i = 0; i < n; i++) {
            if (pc[i]->ac && (p[i].revents & (POLLIN | POLLERR | POLLHUP)))
                redisAsyncHandleRead(pc[i]->ac);
            if (pc[i]->ac && (p[i].revents & POLLOUT)) redisAsyncHandleWrite(pc[i]->ac);
        }
    }
    if (r->n_outbox)
        DMN_LOG(DMN_LOG_WARN,
                "queue: %d result(s) not written (Redis unreachable): their "
                "entries stay pending and another consumer will claim them",
                r->n_outbox);
    conn_close(&r->rd, 0, "closing");
    conn_close(&r->wr, 0, "closing");
    r->st.connected = 0;
    dmn_stats_set_queue(srv->stats, &r->st);
}

static void rt_destroy(dmn_transport **tp)
{
    rt *r = (rt *)*tp;
    if (!r) return;
    conn_close(&r->rd, 0, "closing");
    conn_close(&r->wr, 0, "closing");
    while (r->outbox) {
        cmd *m = r->outbox;
        r->outbox = m->next;
        cmd_free(m);
    }
    while (r->wait_head) {
        waiting *w = r->wait_head;
        r->wait_head = w->next;
        free(w->payload);
        free(w->echo);
        free(w);
    }
    free(r->held);
    free(r);
    *tp = NULL;
}

static const dmn_transport_ops redis_ops = {
    "redis", rt_poll_items, rt_on_ready, rt_reply, rt_close, rt_destroy,
};

/* redis://HOST[:PORT][/] or unix:///PATH. */
static int parse_url(rt *r, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "unix://", 7) == 0) {
        if (url[7] != '/' || strlen(url + 7) >= sizeof r->path) goto bad;
        snprintf(r->path, sizeof r->path, "%s", url + 7);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) goto bad;
    const char *h = url + 8, *colon = strrchr(h, ':'), *slash = strchr(h, '/');
    if (strchr(h, '@')) {
        snprintf(err, errlen, "queue.redis '%s': passwords in the URL are not supported", url);
        return -1;
    }
    size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof r->host) goto bad;
    memcpy(r->host, h, hl);
    r->host[hl] = '\0';
    r->port = 6379;
    if (colon) {
        long long p;
        char ps[16];
        size_t pl = slash && slash > colon ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (pl == 0 || pl >= sizeof ps) goto bad;
        memcpy(ps, colon + 1, pl);
        ps[pl] = '\0';
        if (cm_parse_ll(ps, 1, 65535, &p) != 0) goto bad;
        r->port = (int)p;
    }
    return 0;
bad:
    snprintf(err, errlen, "queue.redis '%s' is not redis://HOST:PORT or unix:///PATH", url);
    return -1;
}

dmn_transport *dmn_redis_new(dmn_server *srv, int index, char *err, size_t errlen)
{
    rt *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->base = (dmn_transport){ .ops = &redis_ops, .srv = srv, .index = index };
    r->q = &srv->conf.queue;
    if (parse_url(r, r->q->redis, err, errlen) < 0) {
        free(r);
        return NULL;
    }
    if (r->q->consumer[0]) {
        snprintf(r->consumer, sizeof r->consumer, "%s", r->q->consumer);
    } else {
        char host[64] = "nlpd";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(r->consumer, sizeof r->consumer, "%s-%d", host, (int)getpid());
    }
    snprintf(r->claim_cursor, sizeof r->claim_cursor, "0-0");
    r->rd = (rconn){ .owner = r, .name = "reader" };
    r->wr = (rconn){ .owner = r, .name = "writer" };
    r->st.enabled = 1;
    char tg[300];
    DMN_LOG(DMN_LOG_INFO,
            "queue: consumer %s of group %s on stream %s at Redis %s; results "
            "to %s",
            r->consumer, r->q->group, r->q->stream, target(r, tg, sizeof tg), r->q->results);
    return &r->base;
}
