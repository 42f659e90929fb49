/* The HTTP/JSON transport (see dmn_transport.h, docs/http.md).
 *
 * Threads:
 *   libmicrohttpd's one internal thread (the "HTTP thread"): accepts connections, reads
 *     requests, checks bearer tokens, parses and packs JSON bodies (dmn_json.c), then
 *     suspends the connection and hands the request (an `hx`) to the I/O thread through
 *     the inbox (a mutex-guarded list) and an eventfd; once resumed, renders the reply
 *     and sends it. It never touches the server struct, the queue or a ZeroMQ socket.
 *   the I/O thread: polls the eventfd among the transports' items, submits task
 *     requests with a route of two frames, the client (its token or connection) and
 *     the hx's key (dmn_server_submit), answers health,
 *     readiness, models and metrics itself, and when a reply comes back through
 *     http_reply() stores it in the hx and resumes the connection.
 * An hx belongs to the HTTP thread except between its hand-off and its resumption,
 * when it belongs to the I/O thread (the inbox, then the pending list). The mutex (and
 * libmicrohttpd's own, taken by MHD_resume_connection) orders the two.
 *
 * Every hx handed off is resumed exactly once: by its reply, or by http_close() with
 * SHUTTING_DOWN. A connection is never left suspended: libmicrohttpd neither times out
 * nor closes a suspended connection, and its stop would wait on one. */
#include "daemon/dmn_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/dmn_json.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_models.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_server.h"
#include "daemon/dmn_stats.h"
#include "tasks/task_int.h" /* the language table, for GET /v1/models (read-only) */

volatile sig_atomic_t dmn_reload_gen;

#define HTTP_MAX_TOKENS 1024
#define HTTP_MAX_TOKEN_LEN 256
#define HTTP_CONN_MEMORY (64 * 1024) /* per connection: request line + headers */
#define HTTP_N_STATUS 600

enum route {
    R_NONE = 0,
    R_TASK,
    R_LIBRE,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
    R_MODELS,
};

enum hx_state { HX_NEW = 0, HX_AWAY, HX_DONE };

/* One HTTP request, from its first header to its completion callback. */
typedef struct hx {
    struct MHD_Connection *conn;
    struct hx *next; /* inbox or pending list */
    uint64_t key;    /* the route's last frame and the wire request id */
    uint64_t client; /* the route's first frame: who sent it (client_of) */
    int route;       /* enum route */
    nlpc_task task;
    int state;  /* enum hx_state */
    char *body; /* the request body as read (bounded) */
    size_t len, cap;
    int too_big;
    dmn_json_req jr;
    /* the answer: a packed Response (task routes), or text ready to send */
    void *frame;
    size_t frame_len;
    int status;
    char *out;
    const char *ctype;
} hx;

typedef struct ht {
    dmn_transport base;
    struct MHD_Daemon *mhd;
    int efd;            /* eventfd: the inbox has items */
    pthread_mutex_t mu; /* inbox, closing, tokens */
    hx *inbox, *inbox_tail;
    int closing;
    hx *pending; /* I/O thread: submitted, awaiting reply() */
    atomic_uint_fast64_t next_key;
    atomic_int outstanding; /* hx alive (created, not completed) */
    atomic_uint_fast64_t by_status[HTTP_N_STATUS];
    /* bearer tokens (mu) */
    char (*tokens)[HTTP_MAX_TOKEN_LEN + 1];
    int n_tokens;
    int auth; /* tokens_file set: the API needs a token */
    sig_atomic_t reload_seen;
    size_t max_body;
    int port;
} ht;

/* ---- tokens ---- */

/* Reads http.tokens_file: one token a line, blank lines and lines starting with '#'
 * skipped. 0, or -1 with the reason (the tokens held stay as they were). */
static int load_tokens(ht *h, char *err, size_t errlen)
{
    const char *path = h->base.srv->conf.http.tokens_file;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "http.tokens_file %s: %s", path, strerror(errno));
        return -1;
    }
    char(*tok)[HTTP_MAX_TOKEN_LEN + 1] = calloc(HTTP_MAX_TOKENS, sizeof *tok);
    int n = 0, rc = 0, lineno = 0;
    char line[1024];
    while (tok && fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strlen(line);
        while (l && strchr(" \t\r\n", line[l - 1])) line[--l] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        if (strlen(p) > HTTP_MAX_TOKEN_LEN || n == HTTP_MAX_TOKENS) {
            snprintf(err, errlen,
                     "http.tokens_file %s:%d: a token is longer than %d bytes, or "
                     "there are more than %d",
                     path, lineno, HTTP_MAX_TOKEN_LEN, HTTP_MAX_TOKENS);
            rc = -1;
            break;
        }
        memcpy(tok[n++], p, strlen(p) + 1); /* its length was checked above */
    }
    fclose(f);
    if (!tok) {
        snprintf(err, errlen, "out of memory reading http.tokens_file");
        return -1;
    }
    if (rc < 0) {
        free(tok);
        return -1;
    }
    pthread_mutex_lock(&h->mu);
    free(h->tokens);
    h->tokens = tok;
    h->n_tokens = n;
    pthread_mutex_unlock(&h->mu);
    DMN_LOG(DMN_LOG_INFO, "http: %d bearer token(s) from %s", n, path);
    return 0;
}

/* Constant time in the tokens' contents: every token is compared over the full length
 * of the buffer, whatever matches or not. */
static int token_ok(ht *h, const char *given, size_t glen)
{
    unsigned char want[HTTP_MAX_TOKEN_LEN + 1] = { 0 };
    int ok = 0;
    if (glen > HTTP_MAX_TOKEN_LEN) return 0;
    memcpy(want, given, glen);
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_tokens; i++) {
        volatile unsigned char diff = 0;
        const unsigned char *t = (const unsigned char *)h->tokens[i];
        for (int k = 0; k <= HTTP_MAX_TOKEN_LEN; k++) diff |= t[k] ^ want[k];
        ok |= diff == 0;
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

/* 0 when the request may go on, else the HTTP status to answer (401, 403). */
static int check_auth(ht *h, struct MHD_Connection *conn, int route, const char *api_key)
{
    const dmn_http_conf *c = &h->base.srv->conf.http;
    if (!h->auth) return 0;
    if ((route == R_HEALTHZ || route == R_READYZ) && c->open_health) return 0;
    if (route == R_METRICS && c->open_metrics) return 0;
    const char *a =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (a && strncasecmp(a, "Bearer ", 7) == 0) {
        a += 7;
        while (*a == ' ') a++;
        return token_ok(h, a, strlen(a)) ? 0 : 403;
    }
    if (api_key) return token_ok(h, api_key, strlen(api_key)) ? 0 : 403; /* LibreTranslate */
    return 401;
}

/* Who sent a request, for fair turns and limits.max_client_documents: its token (as a
 * hash: the token itself is not kept) when it presents one, else its connection (one
 * client behind a proxy's connections, or keep-alive requests, share it). */
static uint64_t client_of(struct MHD_Connection *conn, const char *api_key)
{
    char who[96] = "";
    const char *a =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (a && strncasecmp(a, "Bearer ", 7) == 0) {
        snprintf(who, sizeof who, "t:%.80s", a + 7);
    } else if (api_key && *api_key) {
        snprintf(who, sizeof who, "t:%.80s", api_key);
    } else {
        snprintf(who, sizeof who, "c:%p", (void *)conn);
    }
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = who; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* ---- the HTTP thread ---- */

static int route_of(const char *method, const char *url, nlpc_task *task, int *bad_method)
{
    static const struct {
        const char *path;
        int route;
        const char *method;
    } routes[] = {
        { "/v1/summarize", R_TASK, "POST" }, { "/v1/translate", R_TASK, "POST" },
        { "/v1/classify", R_TASK, "POST" },  { "/v1/qa", R_TASK, "POST" },
        { "/v1/text2text", R_TASK, "POST" }, { "/translate", R_LIBRE, "POST" },
        { "/healthz", R_HEALTHZ, "GET" },    { "/readyz", R_READYZ, "GET" },
        { "/metrics", R_METRICS, "GET" },    { "/v1/models", R_MODELS, "GET" },
    };
    *bad_method = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path)) continue;
        if (strcmp(method, routes[i].method) &&
            !(strcmp(routes[i].method, "GET") == 0 && strcmp(method, "HEAD") == 0)) {
            *bad_method = 1;
            return R_NONE;
        }
        *task = routes[i].route == R_TASK    ? nlpc_task_from_name(url + 4)
                : routes[i].route == R_LIBRE ? NLPC_TASK_TRANSLATE
                                             : NLPC_TASK_NONE;
        return routes[i].route;
    }
    return R_NONE;
}

static enum MHD_Result send_text(ht *h, struct MHD_Connection *conn, int status, char *text,
                                 const char *ctype, const char *allow)
{
    if (!text) {
        status = 500;
        text = strdup("{\"status\":\"INTERNAL\",\"error\":\"out of memory\"}");
        if (!text) return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : "application/json");
    if (status == 429) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"nlpd\"");
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status > 0 && status < HTTP_N_STATUS) atomic_fetch_add(&h->by_status[status], 1);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* An error answered by the HTTP thread itself, in the route's JSON shape. */
static enum MHD_Result send_error(ht *h, hx *x, int status, int code, const char *msg)
{
    const char *allow = status == 405 ? "GET, HEAD, POST" : NULL;
    return send_text(h, x->conn, status, dmn_json_error(x->jr.shape ? &x->jr : NULL, code, msg),
                     NULL, allow);
}

/* Hands x to the I/O thread, the connection suspended until it answers. 0, or -1 when
 * the transport is closing (x is then still the caller's). */
static int hand_off(ht *h, hx *x)
{
    pthread_mutex_lock(&h->mu);
    if (h->closing) {
        pthread_mutex_unlock(&h->mu);
        return -1;
    }
    x->state = HX_AWAY;
    MHD_suspend_connection(x->conn);
    if (h->inbox_tail) h->inbox_tail->next = x;
    else h->inbox = x;
    h->inbox_tail = x;
    pthread_mutex_unlock(&h->mu);
    uint64_t one = 1;
    if (write(h->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        DMN_LOG(DMN_LOG_ERROR, "http: eventfd: %s", strerror(errno));
    return 0;
}

/* The hx is back from the I/O thread: send what it answered. */
static enum MHD_Result send_answer(ht *h, hx *x)
{
    if (x->route == R_TASK || x->route == R_LIBRE) {
        int code = DMN_INTERNAL;
        char *json = x->frame ? dmn_json_render(&x->jr, x->frame, x->frame_len, &code)
                              : dmn_json_error(&x->jr, x->status, x->out ? x->out : "");
        if (!x->frame) code = x->status;
        free(x->frame);
        x->frame = NULL;
        return send_text(h, x->conn, dmn_json_http_status(code), json, NULL, NULL);
    }
    char *out = x->out;
    x->out = NULL;
    return send_text(h, x->conn, x->status, out, x->ctype, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    ht *h = cls;
    hx *x = *con_cls;
    char err[400];
    (void)version;
    if (!x) { /* the headers are in */
        if (!(x = calloc(1, sizeof *x))) return MHD_NO;
        atomic_fetch_add(&h->outstanding, 1);
        x->conn = conn;
        *con_cls = x;
        int bad_method;
        x->route = route_of(method, url, &x->task, &bad_method);
        x->jr.task = x->task;
        if (x->route == R_LIBRE) x->jr.shape = DMN_JSON_LIBRE_ONE; /* its error shape */
        if (bad_method) {
            x->state = HX_DONE;
            snprintf(err, sizeof err, "%s is not allowed on %s", method, url);
            return send_error(h, x, 405, DMN_INVALID_ARGUMENT, err);
        }
        if (x->route == R_NONE) {
            x->state = HX_DONE;
            cm_fmt(err, sizeof err,
                   "no such path: %.200s (POST /v1/summarize, /v1/translate, "
                   "/v1/classify, /v1/qa, /v1/text2text, /translate; GET /v1/models, /healthz, "
                   "/readyz, /metrics)",
                   url);
            return send_error(h, x, 404, DMN_UNKNOWN_TASK, err);
        }
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->max_body) x->too_big = 1;
        /* LibreTranslate clients may carry the key in the body: checked once it is in. */
        int auth = x->route == R_LIBRE ? 0 : check_auth(h, conn, x->route, NULL);
        if (auth) {
            x->state = HX_DONE;
            return send_error(h, x, auth, DMN_INVALID_ARGUMENT,
                              auth == 401
                                  ? "this server needs a bearer token (Authorization: Bearer ...)"
                                  : "the bearer token is not valid");
        }
        if (x->too_big) { /* said before the body is sent (a client may wait: 100-continue) */
            x->state = HX_DONE;
            snprintf(err, sizeof err, "the body is over limits.max_message_bytes (%zu bytes)",
                     h->max_body);
            return send_error(h, x, 413, DMN_MESSAGE_TOO_LARGE, err);
        }
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        size_t n = *upload_size;
        *upload_size = 0;
        if (x->state != HX_NEW || x->too_big) return MHD_YES; /* answered: discard */
        if (x->len + n > h->max_body) {
            x->too_big = 1;
            free(x->body);
            x->body = NULL;
            x->len = x->cap = 0;
            return MHD_YES;
        }
        if (x->len + n > x->cap) {
            size_t cap = x->cap ? x->cap : 4096;
            while (cap < x->len + n) cap *= 2;
            if (cap > h->max_body) cap = h->max_body;
            char *b = realloc(x->body, cap);
            if (!b) return MHD_NO;
            x->body = b;
            x->cap = cap;
        }
        memcpy(x->body + x->len, upload, n);
        x->len += n;
        return MHD_YES;
    }
    /* the whole request is in (or the I/O thread resumed it) */
    if (x->state == HX_DONE) return send_answer(h, x);
    if (x->state != HX_NEW) return MHD_YES;
    x->state = HX_DONE; /* unless handed off below */
    if (x->too_big) {
        snprintf(err, sizeof err, "the body is over limits.max_message_bytes (%zu bytes)",
                 h->max_body);
        return send_error(h, x, 413, DMN_MESSAGE_TOO_LARGE, err);
    }
    if (x->route == R_TASK || x->route == R_LIBRE) {
        x->key = atomic_fetch_add(&h->next_key, 1);
        int code = dmn_json_parse(x->task, x->route == R_LIBRE, x->body ? x->body : "", x->len,
                                  x->key, &x->jr, err, sizeof err);
        if (x->route == R_LIBRE && !x->jr.shape) x->jr.shape = DMN_JSON_LIBRE_ONE;
        free(x->body);
        x->body = NULL;
        if (x->route == R_LIBRE) {
            int auth = check_auth(h, conn, x->route, x->jr.api_key);
            if (auth)
                return send_error(h, x, auth, DMN_INVALID_ARGUMENT,
                                  auth == 401 ? "this server needs an api_key or a bearer token"
                                              : "the api_key or bearer token is not valid");
        }
        if (code != DMN_OK) return send_error(h, x, dmn_json_http_status(code), code, err);
    }
    x->client = client_of(conn, x->jr.api_key);
    if (hand_off(h, x) < 0)
        return send_error(h, x, 503, DMN_SHUTTING_DOWN, "the daemon is stopping");
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    ht *h = cls;
    hx *x = *con_cls;
    (void)conn;
    (void)why;
    if (!x) return;
    dmn_json_req_clear(&x->jr);
    free(x->body);
    free(x->frame);
    free(x->out);
    free(x);
    *con_cls = NULL;
    atomic_fetch_sub(&h->outstanding, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l = strlen(msg);
    while (l && msg[l - 1] == '\n') msg[--l] = 0;
    DMN_LOG(DMN_LOG_WARN, "http: %s", msg);
}

/* ---- the I/O thread ---- */

/* Gives x back to the HTTP thread. */
static void resume(hx *x)
{
    x->state = HX_DONE;
    MHD_resume_connection(x->conn);
}

static void answer_local(hx *x, int status, char *out, const char *ctype)
{
    x->status = status;
    x->out = out;
    x->ctype = ctype;
    resume(x);
}

static long resident_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

/* Seconds from the process's start to the daemon serving: the model load, mostly. */
static double startup_seconds(const dmn_server *srv)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long start = 0;
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                     "%*d %*d %*d %*d %llu",
                     &start) != 1)
        return 0;
    struct timespec boot;
    clock_gettime(CLOCK_BOOTTIME, &boot);
    double now_boot = boot.tv_sec + boot.tv_nsec * 1e-9;
    double started = (double)start / (double)sysconf(_SC_CLK_TCK);
    double serving = now_boot - (cm_now() - srv->t_start);
    return serving > started ? serving - started : 0;
}

static char *render_metrics(ht *h)
{
    dmn_server *srv = h->base.srv;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    dmn_stats_prometheus(srv->stats, f, cm_now());
    fprintf(f,
            "# HELP nlpd_queue_depth Documents waiting in the queues (every model's).\n"
            "# TYPE nlpd_queue_depth gauge\nnlpd_queue_depth %d\n",
            dmn_server_depth(srv));
    fprintf(f,
            "# HELP nlpd_queue_capacity Documents the queue holds (limits.queue_size).\n"
            "# TYPE nlpd_queue_capacity gauge\nnlpd_queue_capacity %d\n",
            srv->conf.limits.queue_size);
    fprintf(f,
            "# HELP nlpd_in_flight_requests Task requests queued or running.\n"
            "# TYPE nlpd_in_flight_requests gauge\nnlpd_in_flight_requests %d\n",
            srv->in_flight);
    fprintf(f,
            "# HELP nlpd_startup_seconds Seconds from the process start to serving "
            "(model load included).\n# TYPE nlpd_startup_seconds gauge\n"
            "nlpd_startup_seconds %.3f\n",
            startup_seconds(srv));
    fprintf(f,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes %ld\n",
            resident_bytes());
    fprintf(f,
            "# HELP nlpd_up 1 while the daemon takes work; 0 while it stops.\n"
            "# TYPE nlpd_up gauge\nnlpd_up %d\n",
            dmn_server_ok(srv));
    dmn_model *ms[4 * DMN_MAX_MODELS];
    int nm = dmn_models_list(srv, ms, (int)(sizeof ms / sizeof ms[0]));
    fprintf(f, "# HELP nlpd_model_threads Threads of the model's last engine step (threads = 0: "
               "its share of the CPUs free, docs/deploy.md).\n"
               "# TYPE nlpd_model_threads gauge\n");
    for (int i = 0; i < nm; i++) {
        fputs("nlpd_model_threads{model=\"", f);
        for (const char *p = ms[i]->conf.name; *p; p++) { /* a label value's escapes */
            if (*p == '\\' || *p == '"') fputc('\\', f);
            if (*p == '\n') fputs("\\n", f);
            else fputc(*p, f);
        }
        fprintf(f, "\"} %d\n", eng_ctx_threads(ms[i]->ctx));
    }
    dmn_qstats q; /* queue mode on Redis Streams (dmn_redis.c), when configured */
    dmn_stats_get_queue(srv->stats, &q);
    if (q.enabled) {
        static const char *const g = "gauge", *const c = "counter";
        const struct {
            const char *name, *type, *help;
            unsigned long long v;
        } m[] = {
            { "nlpd_redis_connected", g, "1 while connected to Redis.", (unsigned)q.connected },
            { "nlpd_redis_lag_entries", g, "Stream entries not yet delivered to the group.",
              q.lag },
            { "nlpd_redis_pending_entries", g, "Entries delivered to the group, not acknowledged.",
              q.pending },
            { "nlpd_redis_held_entries", g, "Entries this daemon holds.", q.held },
            { "nlpd_redis_claims_total", c, "Entries claimed from idle consumers.", q.claims },
            { "nlpd_redis_dead_letters_total", c, "Entries moved to the dead-letter stream.",
              q.dead_letters },
            { "nlpd_redis_results_total", c, "Result entries written.", q.results },
            { "nlpd_redis_lost_total", c,
              "Results dropped: another daemon answered the entry first.", q.lost },
            { "nlpd_redis_reconnects_total", c, "Reconnections to Redis.", q.reconnects },
        };
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", m[i].name, m[i].help, m[i].name,
                    m[i].type, m[i].name, m[i].v);
    }
    fprintf(f, "# HELP nlpd_http_responses_total HTTP responses sent, by HTTP status.\n"
               "# TYPE nlpd_http_responses_total counter\n");
    for (int s = 100; s < HTTP_N_STATUS; s++) {
        uint64_t n = atomic_load(&h->by_status[s]);
        if (n || s == 200)
            fprintf(f, "nlpd_http_responses_total{status=\"%d\"} %llu\n", s, (unsigned long long)n);
    }
    fclose(f);
    return buf;
}

/* GET /v1/models: every model of the registry (dmn_models.h), in routing order. */
static char *render_models(ht *h)
{
    dmn_server *srv = h->base.srv;
    dmn_model *ms[4 * DMN_MAX_MODELS];
    int nm = dmn_models_list(srv, ms, (int)(sizeof ms / sizeof ms[0]));
    static const char *const states[] = { "loading", "serving", "draining" };
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "models");
    if (!o || !arr) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddBoolToObject(o, "loading", dmn_models_loading(srv));
    for (int i = 0; i < nm; i++) {
        const dmn_model *md = ms[i];
        const task_env *env = &md->env;
        const eng_config *ec = env->model;
        cJSON *m = cJSON_CreateObject();
        if (!m) break;
        cJSON_AddItemToArray(arr, m);
        cJSON_AddStringToObject(m, "name", md->conf.name);
        cJSON_AddStringToObject(m, "path", md->conf.path);
        cJSON_AddStringToObject(m, "family", ec->model_type); /* config.json's model_type */
        cJSON_AddStringToObject(m, "weight_type", md->conf.weights);
        cJSON_AddStringToObject(m, "state", states[md->state]);
        cJSON_AddNumberToObject(m, "resident_bytes", (double)md->resident);
        cJSON_AddNumberToObject(m, "requests", (double)md->served);
        cJSON_AddNumberToObject(m, "d_model", ec->d_model);
        cJSON_AddNumberToObject(m, "encoder_layers", ec->num_layers);
        cJSON_AddNumberToObject(m, "decoder_layers", ec->num_decoder_layers);
        cJSON_AddNumberToObject(m, "vocab_size", ec->vocab_size);
        cJSON *tasks = cJSON_AddArrayToObject(m, "tasks");
        for (int t = TASK_SUMMARIZE; t <= TASK_TEXT2TEXT; t++)
            if ((!md->conf.tasks || (md->conf.tasks & (1u << t))) &&
                task_served(env, (task_kind)t, NULL, 0))
                cJSON_AddItemToArray(tasks, cJSON_CreateString(task_kind_name((task_kind)t)));
        /* Languages: the tokenizer's codes (many-to-many), Marian's pair, else (T5) the
         * tasks file's table. */
        cJSON *langs = cJSON_AddArrayToObject(m, "languages");
        int nl = tok_n_langs(env->tok);
        if (!task_served(env, TASK_TRANSLATE, NULL, 0)) {
        } else if (nl > 0) {
            for (int k = 0; k < nl; k++) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddStringToObject(l, "code", tok_lang_code(env->tok, k));
                cJSON_AddItemToArray(langs, l);
            }
        } else if (env->info.pair_src[0]) {
            for (int k = 0; k < 2; k++) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddStringToObject(l, "code", k ? env->info.pair_tgt : env->info.pair_src);
                cJSON_AddItemToArray(langs, l);
            }
        } else {
            for (int k = 0; srv->tasks && k < srv->tasks->n_langs; k++) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddStringToObject(l, "code", srv->tasks->langs[k].code);
                cJSON_AddStringToObject(l, "name", srv->tasks->langs[k].names[0]);
                cJSON_AddItemToArray(langs, l);
            }
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void serve_one(ht *h, hx *x)
{
    dmn_server *srv = h->base.srv;
    int ready = dmn_server_ok(srv); /* health's ok */
    switch (x->route) {
    case R_TASK:
    case R_LIBRE: {
        /* first frame: the client (its turn, its limit); last: which request this is */
        const void *data[2] = { &x->client, &x->key };
        size_t len[2] = { sizeof x->client, sizeof x->key };
        dmn_route to = { .transport = h->base.index };
        if (dmn_route_set(&to, h->base.index, data, len, 2) < 0) {
            x->status = DMN_INTERNAL;
            x->out = strdup("out of memory");
            resume(x);
            return;
        }
        x->next = h->pending; /* before the submit: its reply may come at once */
        h->pending = x;
        dmn_server_submit(srv, &to, x->jr.pb, x->jr.pb_len);
        return;
    }
    case R_HEALTHZ: answer_local(x, 200, strdup("{\"status\":\"ok\"}"), NULL); return;
    case R_READYZ:
        answer_local(x, ready ? 200 : 503,
                     strdup(ready                   ? "{\"ready\":true}"
                            : srv->shutting_down    ? "{\"ready\":false,\"reason\":\"stopping\"}"
                            : !srv->serving_started ? "{\"ready\":false,\"reason\":\"loading\"}"
                                                    : "{\"ready\":false,\"reason\":\"worker\"}"),
                     NULL);
        return;
    case R_METRICS:
        answer_local(x, 200, render_metrics(h), "text/plain; version=0.0.4; charset=utf-8");
        return;
    case R_MODELS: answer_local(x, 200, render_models(h), NULL); return;
    }
    answer_local(x, 500, NULL, NULL);
}

static int http_poll_items(dmn_transport *t, zmq_pollitem_t *items, int pull)
{
    ht *h = (ht *)t;
    (void)pull; /* clients, not a pipeline: the server answers OVERLOADED */
    sig_atomic_t gen = dmn_reload_gen;
    if (gen != h->reload_seen) {
        char err[512];
        h->reload_seen = gen;
        if (h->auth && load_tokens(h, err, sizeof err) < 0)
            DMN_LOG(DMN_LOG_ERROR, "SIGHUP: %s (the previous tokens stay)", err);
    }
    items[0] = (zmq_pollitem_t){ NULL, h->efd, ZMQ_POLLIN, 0 };
    return 1;
}

static void http_on_ready(dmn_transport *t, const zmq_pollitem_t *items, int n)
{
    ht *h = (ht *)t;
    uint64_t v;
    if (n < 1 || !(items[0].revents & ZMQ_POLLIN)) return;
    if (read(h->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        DMN_LOG(DMN_LOG_ERROR, "http: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&h->mu);
    hx *list = h->inbox;
    h->inbox = h->inbox_tail = NULL;
    pthread_mutex_unlock(&h->mu);
    while (list) {
        hx *x = list;
        list = x->next;
        x->next = NULL;
        serve_one(h, x);
    }
}

static void http_reply(dmn_transport *t, const dmn_route *to, void *buf, size_t len, uint64_t seq,
                       uint64_t id)
{
    ht *h = (ht *)t;
    uint64_t key = 0;
    if (to->n_env == 2 && to->env_len[1] == sizeof key)
        memcpy(&key, dmn_route_frame(to, 1), sizeof key);
    for (hx **p = &h->pending; *p; p = &(*p)->next) {
        if ((*p)->key != key) continue;
        hx *x = *p;
        *p = x->next;
        x->next = NULL;
        x->frame = buf;
        x->frame_len = len;
        resume(x);
        return;
    }
    DMN_LOG_REQ(DMN_LOG_WARN, seq, id, "http: reply to no pending request: dropped");
    free(buf);
}

/* Answers what still waits on the I/O thread SHUTTING_DOWN, lets the HTTP thread send
 * what is answered (up to linger_ms), then stops it. */
static void http_close(dmn_transport *t)
{
    ht *h = (ht *)t;
    if (!h->mhd) return;
    pthread_mutex_lock(&h->mu);
    h->closing = 1;
    hx *list = h->inbox;
    h->inbox = h->inbox_tail = NULL;
    pthread_mutex_unlock(&h->mu);
    while (h->pending) { /* none normally: the server closes once nothing is in flight */
        hx *x = h->pending;
        h->pending = x->next;
        x->next = list;
        list = x;
    }
    while (list) {
        hx *x = list;
        list = x->next;
        x->status = DMN_SHUTTING_DOWN;
        x->out = strdup("the daemon is stopping");
        if (x->route != R_TASK && x->route != R_LIBRE) {
            free(x->out);
            x->out = strdup("{\"status\":\"SHUTTING_DOWN\",\"error\":\"the daemon is stopping\"}");
            x->status = 503;
        }
        resume(x);
    }
    MHD_quiesce_daemon(h->mhd); /* no new connections */
    double until = cm_now() + h->base.srv->conf.linger_ms * 1e-3;
    while (atomic_load(&h->outstanding) > 0 && cm_now() < until) {
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
}

static void http_destroy(dmn_transport **tp)
{
    ht *h = (ht *)*tp;
    if (!h) return;
    http_close(&h->base);
    if (h->efd >= 0) close(h->efd);
    pthread_mutex_destroy(&h->mu);
    free(h->tokens);
    free(h);
    *tp = NULL;
}

static const dmn_transport_ops http_ops = {
    "http", http_poll_items, http_on_ready, http_reply, http_close, http_destroy,
};

/* "HOST:PORT" ("[v6]:PORT" too) into an address. 0, or -1 with the reason. */
static int parse_bind(const char *bind, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(bind, ':');
    if (!colon || colon == bind || strlen(bind) >= sizeof host) {
        snprintf(err, errlen, "http.bind '%s' is not HOST:PORT", bind);
        return -1;
    }
    size_t hl = (size_t)(colon - bind);
    memcpy(host, bind, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE },
                    *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "http.bind '%s': %s", bind, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

dmn_transport *dmn_http_new(dmn_server *srv, int index, char *err, size_t errlen)
{
    const dmn_http_conf *c = &srv->conf.http;
    struct sockaddr_storage ss;
    if (parse_bind(c->bind, &ss, err, errlen) < 0) return NULL;
    ht *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->base = (dmn_transport){ .ops = &http_ops, .srv = srv, .index = index };
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->next_key, 1);
    h->max_body = (size_t)srv->conf.limits.max_message_bytes;
    h->reload_seen = dmn_reload_gen;
    h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dmn_transport *t = &h->base;
    if (h->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    h->auth = c->tokens_file[0] != 0;
    if (h->auth && load_tokens(h, err, errlen) < 0) goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)c->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)c->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              (size_t)HTTP_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                              h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(err, errlen, "cannot listen on http %s (address in use, or not permitted)",
                 c->bind);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    DMN_LOG(DMN_LOG_INFO, "listening on http %s (port %d)%s", c->bind, h->port,
            h->auth ? ", bearer tokens required" : "");
    return t;
fail:
    http_destroy(&t);
    return NULL;
}
