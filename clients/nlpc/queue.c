/* nlpc batch --queue URL: the JSON lines of `nlpc batch` through a Redis stream that nlpd
 * daemons in queue mode consume (docs/queue.md), so an ETL job uses the queue without
 * writing Redis code. Single-threaded, hiredis's blocking API.
 *
 * Each non-blank input line becomes one entry on --stream with field `json`: the line's
 * object plus the command line's task and options (a line's own "labels", "question",
 * "to", "from" win, as in nlpc batch), and "line": N when the line has no "id". The
 * daemon's result for it is the object nlpc batch would print, on --results with field
 * `entry` naming the job's entry; it is printed as is, in input order. Lines that
 * nlpc batch answers itself (not JSON, no "text", empty text, a missing "labels"...) are
 * answered here with the same words and never sent.
 *
 * Results are read from the Redis time before the first job was added, so none is
 * missed; results of other clients' jobs are skipped. Entry ids grow with time, so the
 * jobs' ids are sorted by input order and found by binary search. A Redis that goes
 * away is reconnected with backoff for up to --reconnect ms; jobs already added are
 * safe in the stream (with appendonly yes) and their results are still read. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/nlpc/nlpc_cli.h"
#include "common/common.h"

#define Q_CHUNK 256       /* XADDs per round trip */
#define Q_READ_COUNT 1000 /* results per XREAD */
#define Q_BLOCK_MS 500

typedef struct qline {
    long lineno;
    uint64_t ms, sq; /* its entry id, once added (ms 0: not yet) */
    char *job;       /* the entry's json (NULL once added or answered here) */
    char *out;       /* the output line, once answered */
    int ok;
} qline;

typedef struct qrun {
    nlpc_cli *cli;
    redisContext *rc;
    char host[256], path[256];
    int port;
    const char *stream, *results;
    qline *lines;
    long n, cap;
    long head;       /* first line not written */
    long added;      /* lines [0, added) have been through XADD or answered */
    char cursor[48]; /* results read up to here */
    FILE *out;
    long n_ok, n_err;
} qrun;

static volatile sig_atomic_t q_sig;

static void q_on_signal(int sig) { q_sig = sig; }

static int parse_url(qrun *q, const char *url)
{
    if (strncmp(url, "unix://", 7) == 0 && url[7] == '/') {
        snprintf(q->path, sizeof q->path, "%s", url + 7);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) return -1;
    const char *h = url + 8, *colon = strrchr(h, ':');
    size_t hl = colon ? (size_t)(colon - h) : strcspn(h, "/");
    if (!hl || hl >= sizeof q->host || strchr(h, '@')) return -1;
    memcpy(q->host, h, hl);
    q->host[hl] = '\0';
    q->port = 6379;
    if (colon) {
        char ps[16];
        size_t pl = strcspn(colon + 1, "/");
        long long p;
        if (!pl || pl >= sizeof ps) return -1;
        memcpy(ps, colon + 1, pl);
        ps[pl] = '\0';
        if (cm_parse_ll(ps, 1, 65535, &p) != 0) return -1;
        q->port = (int)p;
    }
    return 0;
}

/* Connects, retrying with backoff up to --reconnect ms. 0, or -1 (message printed). */
static int q_connect(qrun *q)
{
    int64_t until = cm_now_ms() + q->cli->reconnect_ms;
    int wait = 100;
    if (q->rc) redisFree(q->rc);
    q->rc = NULL;
    for (;;) {
        struct timeval tv = { 5, 0 };
        q->rc = q->path[0] ? redisConnectUnixWithTimeout(q->path, tv)
                           : redisConnectWithTimeout(q->host, q->port, tv);
        if (q->rc && !q->rc->err) return 0;
        const char *why = q->rc ? q->rc->errstr : "out of memory";
        if (q_sig || cm_now_ms() >= until) {
            fprintf(stderr, "nlpc: cannot reach Redis at %s: %s\n", q->cli->queue, why);
            if (q->rc) redisFree(q->rc);
            q->rc = NULL;
            return -1;
        }
        if (q->rc) redisFree(q->rc);
        q->rc = NULL;
        usleep((useconds_t)wait * 1000);
        wait = wait * 2 > 2000 ? 2000 : wait * 2;
    }
}

static void answer(qline *l, cJSON *o, int ok)
{
    l->out = o ? cJSON_PrintUnformatted(o) : NULL;
    if (!l->out) l->out = strdup("{\"error\":\"out of memory\"}");
    cJSON_Delete(o);
    free(l->job);
    l->job = NULL;
    l->ok = ok;
}

static void answer_error(qline *l, const cJSON *in, const char *status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *id = in ? cJSON_GetObjectItemCaseSensitive(in, "id") : NULL;
    if (o && id) cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
    else if (o) cJSON_AddNumberToObject(o, "line", (double)l->lineno);
    if (o) {
        cJSON_AddStringToObject(o, "status", status);
        cJSON_AddStringToObject(o, "error", msg);
    }
    answer(l, o, 0);
}

/* The command line's options as the job's "options" object (set ones only). */
static void add_options(cJSON *job, const nlpc_cli *cli)
{
    const nlpc_decode_opts *d = &cli->rq.opts;
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    if (d->max_new_tokens >= 0) cJSON_AddNumberToObject(o, "max_new_tokens", d->max_new_tokens);
    if (d->min_new_tokens >= 0) cJSON_AddNumberToObject(o, "min_new_tokens", d->min_new_tokens);
    if (d->num_beams >= 0) cJSON_AddNumberToObject(o, "num_beams", d->num_beams);
    if (d->num_return_sequences >= 0)
        cJSON_AddNumberToObject(o, "num_return_sequences", d->num_return_sequences);
    if (d->no_repeat_ngram_size >= 0)
        cJSON_AddNumberToObject(o, "no_repeat_ngram_size", d->no_repeat_ngram_size);
    if (d->top_k >= 0) cJSON_AddNumberToObject(o, "top_k", d->top_k);
    if (d->length_penalty == d->length_penalty)
        cJSON_AddNumberToObject(o, "length_penalty", d->length_penalty);
    if (d->repetition_penalty == d->repetition_penalty)
        cJSON_AddNumberToObject(o, "repetition_penalty", d->repetition_penalty);
    if (d->temperature == d->temperature) cJSON_AddNumberToObject(o, "temperature", d->temperature);
    if (d->top_p == d->top_p) cJSON_AddNumberToObject(o, "top_p", d->top_p);
    if (d->seed >= 0) cJSON_AddNumberToObject(o, "seed", (double)d->seed);
    if (d->return_hypotheses) cJSON_AddBoolToObject(o, "return_hypotheses", 1);
    if (cJSON_GetArraySize(o) > 0) cJSON_AddItemToObject(job, "options", o);
    else cJSON_Delete(o);
}

static void set_default(cJSON *job, const char *key, cJSON *v)
{
    if (!v) return;
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(job, key);
    if (have && !cJSON_IsNull(have)) {
        cJSON_Delete(v);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(job, key);
    cJSON_AddItemToObject(job, key, v);
}

/* One input line: answered here (nlpc batch's own per-line errors) or made a job.
 * Returns -1 with a usage error printed (nlpc batch's first-line rule). */
static int take_line(qrun *q, const char *line, size_t len, long lineno)
{
    const nlpc_cli *cli = q->cli;
    nlpc_task t = cli->rq.task;
    if (q->n == q->cap) {
        long cap = q->cap ? 2 * q->cap : 1024;
        qline *nl = realloc(q->lines, (size_t)cap * sizeof *nl);
        if (!nl) {
            fprintf(stderr, "nlpc: out of memory\n");
            return -1;
        }
        q->lines = nl;
        q->cap = cap;
    }
    qline *l = &q->lines[q->n++];
    memset(l, 0, sizeof *l);
    l->lineno = lineno;
    char msg[320];
    cJSON *in = NULL;
    if (nlpc_cli_parse_line(line, len, &in, msg, sizeof msg) < 0) {
        answer_error(l, NULL, "INVALID_ARGUMENT", msg);
        return 0;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(in, "text");
    const char *field = t == NLPC_TASK_TRANSLATE && !cli->rq.target_lang ? "to"
                        : t == NLPC_TASK_CLASSIFY && !cli->rq.n_labels   ? "labels"
                        : t == NLPC_TASK_QA && !cli->rq.question         ? "question"
                                                                         : NULL;
    const char *opt = t == NLPC_TASK_TRANSLATE  ? "--to LANG"
                      : t == NLPC_TASK_CLASSIFY ? "--labels a,b,c"
                                                : "--question Q";
    const cJSON *fv = field ? cJSON_GetObjectItemCaseSensitive(in, field) : NULL;
    if (q->n == 1 && field && !fv) {
        fprintf(stderr,
                "nlpc: batch --task %s needs %s (or a \"%s\" on every line; line %ld "
                "has none)\n",
                nlpc_task_name(t), opt, field, lineno);
        cJSON_Delete(in);
        return -1;
    }
    if (!cJSON_IsString(text)) {
        answer_error(l, in, "INVALID_ARGUMENT", "the line needs a string \"text\"");
    } else if (nlpc_cli_empty_text(t, text->valuestring, msg, sizeof msg)) {
        answer_error(l, in, "INVALID_ARGUMENT", msg);
    } else if (field && (!fv || cJSON_IsNull(fv))) {
        snprintf(msg, sizeof msg, "%s needs %s or a \"%s\" on the line", nlpc_task_name(t), opt,
                 field);
        answer_error(l, in, "INVALID_ARGUMENT", msg);
    } else {
        cJSON *job = cJSON_Duplicate(in, 1);
        if (job) {
            cJSON_DeleteItemFromObjectCaseSensitive(job, "task");
            cJSON_AddStringToObject(job, "task", nlpc_task_name(t));
            if (!cJSON_GetObjectItemCaseSensitive(job, "id")) {
                cJSON_DeleteItemFromObjectCaseSensitive(job, "line");
                cJSON_AddNumberToObject(job, "line", (double)lineno);
            }
            if (t == NLPC_TASK_CLASSIFY && cli->rq.n_labels)
                set_default(job, "labels",
                            cJSON_CreateStringArray(cli->rq.labels, cli->rq.n_labels));
            if (t == NLPC_TASK_CLASSIFY && cli->rq.multi_label)
                set_default(job, "multi_label", cJSON_CreateTrue());
            if (t == NLPC_TASK_QA && cli->rq.question)
                set_default(job, "question", cJSON_CreateString(cli->rq.question));
            if (t == NLPC_TASK_TRANSLATE && cli->rq.target_lang)
                set_default(job, "to", cJSON_CreateString(cli->rq.target_lang));
            if (t == NLPC_TASK_TRANSLATE && cli->rq.source_lang)
                set_default(job, "from", cJSON_CreateString(cli->rq.source_lang));
            if (cli->model) set_default(job, "model", cJSON_CreateString(cli->model));
            cJSON_DeleteItemFromObjectCaseSensitive(job, "options");
            add_options(job, cli);
            cJSON_DeleteItemFromObjectCaseSensitive(job, "deadline_ms");
            if (cli->rq.deadline_ms)
                cJSON_AddNumberToObject(job, "deadline_ms", cli->rq.deadline_ms);
            cJSON_DeleteItemFromObjectCaseSensitive(job, "priority");
            if (cli->rq.priority) cJSON_AddNumberToObject(job, "priority", cli->rq.priority);
            l->job = cJSON_PrintUnformatted(job);
            cJSON_Delete(job);
        }
        if (!l->job) answer_error(l, in, "INTERNAL", "out of memory");
    }
    cJSON_Delete(in);
    return 0;
}

static int parse_id(const char *s, uint64_t *ms, uint64_t *sq)
{
    char *end;
    errno = 0;
    *ms = strtoull(s, &end, 10);
    if (errno || *end != '-') return -1;
    *sq = strtoull(end + 1, &end, 10);
    return errno || *end ? -1 : 0;
}

/* XADDs the lines not added yet, Q_CHUNK per round trip. 0, or -1 on a connection
 * error (the lines without an id are sent again after a reconnect). */
static int add_jobs(qrun *q)
{
    while (q->added < q->n && !q_sig) {
        long from = q->added, k = 0, idx[Q_CHUNK];
        for (long i = from; i < q->n && k < Q_CHUNK; i++) {
            qline *l = &q->lines[i];
            if (!l->job) continue;
            const char *argv[5] = { "XADD", q->stream, "*", "json", l->job };
            if (redisAppendCommandArgv(q->rc, 5, argv, NULL) != REDIS_OK) return -1;
            idx[k++] = i;
        }
        long last = from;
        for (long j = 0; j < k; j++) {
            redisReply *rep = NULL;
            if (redisGetReply(q->rc, (void **)&rep) != REDIS_OK || !rep) return -1;
            qline *l = &q->lines[idx[j]];
            if (rep->type == REDIS_REPLY_STRING && parse_id(rep->str, &l->ms, &l->sq) == 0) {
                free(l->job);
                l->job = NULL;
            } else {
                char msg[300];
                cm_fmt(msg, sizeof msg, "Redis refused the job: %s",
                       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
                answer_error(l, NULL, "INTERNAL", msg);
            }
            freeReplyObject(rep);
            last = idx[j];
        }
        /* every line up to the last sent is added or answered */
        q->added = k ? last + 1 : q->n;
    }
    return 0;
}

static qline *find(qrun *q, uint64_t ms, uint64_t sq)
{
    long lo = 0, hi = q->added; /* added lines' ids grow with the index */
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        long m = mid;
        while (m < hi && !q->lines[m].ms) m++; /* lines answered here have no id */
        if (m == hi) {
            hi = mid;
            continue;
        }
        const qline *l = &q->lines[m];
        if (l->ms == ms && l->sq == sq) return &q->lines[m];
        if (l->ms < ms || (l->ms == ms && l->sq < sq)) lo = m + 1;
        else hi = mid;
    }
    return NULL;
}

static const redisReply *value(const redisReply *fields, const char *name)
{
    for (size_t i = 0; fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1];
    return NULL;
}

/* One XREAD of the results. 0, or -1 on a connection error. */
static int read_results(qrun *q)
{
    char block[16], count[16];
    snprintf(block, sizeof block, "%d", Q_BLOCK_MS);
    snprintf(count, sizeof count, "%d", Q_READ_COUNT);
    const char *argv[] = {
        "XREAD", "COUNT", count, "BLOCK", block, "STREAMS", q->results, q->cursor
    };
    redisReply *rep = redisCommandArgv(q->rc, 8, argv, NULL);
    if (!rep) return -1;
    for (size_t s = 0; rep->type == REDIS_REPLY_ARRAY && s < rep->elements; s++) {
        const redisReply *st = rep->element[s];
        if (st->type != REDIS_REPLY_ARRAY || st->elements < 2) continue;
        const redisReply *es = st->element[1];
        for (size_t i = 0; es->type == REDIS_REPLY_ARRAY && i < es->elements; i++) {
            const redisReply *e = es->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
            if (e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < sizeof q->cursor)
                snprintf(q->cursor, sizeof q->cursor, "%s", e->element[0]->str);
            const redisReply *en = value(e->element[1], "entry");
            const redisReply *js = value(e->element[1], "json");
            uint64_t ms, sq;
            if (!en || en->type != REDIS_REPLY_STRING || parse_id(en->str, &ms, &sq) < 0) continue;
            qline *l = find(q, ms, sq);
            if (!l || l->out) continue; /* another client's, or answered already */
            cJSON *o = js && js->type == REDIS_REPLY_STRING ? cJSON_Parse(js->str) : NULL;
            if (!o) {
                cJSON *eo = cJSON_CreateObject();
                if (eo) {
                    cJSON_AddNumberToObject(eo, "line", (double)l->lineno);
                    cJSON_AddStringToObject(eo, "status", "MALFORMED");
                    cJSON_AddStringToObject(eo, "error", "the result has no json field");
                }
                answer(l, eo, 0);
                continue;
            }
            const cJSON *stj = cJSON_GetObjectItemCaseSensitive(o, "status");
            int ok = cJSON_IsString(stj) && strcmp(stj->valuestring, "OK") == 0;
            /* printed as the daemon wrote it: nlpc batch's object */
            l->out = strdup(js->str);
            l->ok = ok;
            cJSON_Delete(o);
        }
    }
    freeReplyObject(rep);
    return 0;
}

static void write_done(qrun *q)
{
    long h0 = q->head;
    while (q->head < q->n && q->lines[q->head].out) {
        qline *l = &q->lines[q->head++];
        fputs(l->out, q->out);
        fputc('\n', q->out);
        if (l->ok) q->n_ok++;
        else q->n_err++;
        free(l->out);
        l->out = NULL;
    }
    if (q->head != h0) fflush(q->out);
}

int nlpc_cli_queue_batch(nlpc_cli *cli)
{
    qrun q;
    memset(&q, 0, sizeof q);
    q.cli = cli;
    q.stream = cli->stream ? cli->stream : "nlpd:requests";
    q.results = cli->results ? cli->results : "nlpd:results";
    q.out = stdout;
    int code = NLPC_EXIT_OK;
    if (parse_url(&q, cli->queue) < 0) {
        fprintf(stderr, "nlpc: --queue '%s' is not redis://HOST:PORT or unix:///PATH\n",
                cli->queue);
        return NLPC_EXIT_USAGE;
    }
    /* input first: a usage error in it stops the run before anything is sent */
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        if (take_line(&q, line, (size_t)n, lineno) < 0) {
            code = NLPC_EXIT_USAGE;
            goto out;
        }
    }
    if (cli->output && !(q.out = fopen(cli->output, "w"))) {
        fprintf(stderr, "nlpc: cannot write %s: %s\n", cli->output, strerror(errno));
        q.out = stdout;
        code = NLPC_EXIT_USAGE;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = q_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (q_connect(&q) < 0) {
        code = NLPC_EXIT_CONN;
        goto out;
    }
    /* results are read from just before the first job: none is missed */
    redisReply *t = redisCommand(q.rc, "TIME");
    if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
        fprintf(stderr, "nlpc: Redis TIME failed: %s\n", q.rc->err ? q.rc->errstr : "?");
        if (t) freeReplyObject(t);
        code = NLPC_EXIT_CONN;
        goto out;
    }
    uint64_t ms = strtoull(t->element[0]->str, NULL, 10) * 1000 +
                  strtoull(t->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(t);
    snprintf(q.cursor, sizeof q.cursor, "%" PRIu64 "-0", ms > 0 ? ms - 1 : 0);

    int64_t t0 = cm_now_ms();
    while (!q_sig) {
        write_done(&q);
        if (q.head == q.n) break;
        if (add_jobs(&q) < 0 || read_results(&q) < 0) {
            fprintf(stderr, "nlpc: the connection to Redis was lost (%s): reconnecting\n",
                    q.rc->errstr);
            if (q_connect(&q) < 0) {
                code = NLPC_EXIT_CONN;
                break;
            }
        }
    }
    write_done(&q);
    double secs = (double)(cm_now_ms() - t0) / 1000.0;
    fprintf(stderr, "nlpc batch: %ld done, %ld errors through %s, %.1f s\n", q.n_ok + q.n_err,
            q.n_err, cli->queue, secs);
    if (q.head < q.n) {
        fprintf(stderr,
                "nlpc batch: %s: %ld lines not written (their jobs stay on %s; "
                "their results will be on %s)\n",
                q_sig == SIGTERM ? "stopped by SIGTERM"
                : q_sig          ? "stopped by SIGINT"
                                 : "Redis is gone",
                q.n - q.head, q.stream, q.results);
        if (code == NLPC_EXIT_OK) code = NLPC_EXIT_SIGNAL_BASE + (q_sig ? q_sig : SIGINT);
    } else if (q.n_err) {
        code = NLPC_EXIT_SERVER;
    }
out:
    for (long i = 0; i < q.n; i++) {
        free(q.lines[i].job);
        free(q.lines[i].out);
    }
    free(q.lines);
    free(line);
    if (q.rc) redisFree(q.rc);
    if (q.out != stdout && fclose(q.out) != 0) code = NLPC_EXIT_CONN;
    return code;
}
