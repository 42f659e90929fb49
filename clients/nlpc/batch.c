/* nlpc batch: JSON lines in, JSON lines out, in input order, with up to `window` lines
 * in flight so the daemon can batch them. Single-threaded: one loop reads input while
 * the window has room, writes every answered line at the head of the window, sends what
 * is due and waits for replies.
 *
 * No line is written that the daemon did not answer, and none is answered twice:
 * - Every id sent for a line stays matched to it until the line is written, so a late
 *   reply (or one to an earlier send of the line) answers it. --timeout is per request
 *   from its send: when one runs out, a stats probe asks the daemon (answered at once,
 *   on the same connection, so after every reply sent before it). A daemon that still
 *   has requests in flight owes ours: wait on. One with nothing in flight, or one that
 *   restarted (uptime went back), lost it: send it again. The line number makes a resend
 *   harmless: the first reply wins.
 * - A lost connection (the socket's disconnect events) loses every reply owed on it:
 *   those lines are sent again once connected. OVERLOADED and SHUTTING_DOWN are retried
 *   with backoff.
 * - Only a daemon that is gone ends the run early: no reply to anything (probes
 *   included) and no connection for --reconnect ms. What was not written is said in
 *   the summary, and `--resume` continues from the output file.
 * - SIGINT/SIGTERM: stop reading and sending, wait up to --drain ms for what is in flight,
 *   write what is answered in order, print the summary, exit 128 + signal.
 * Requests over --max-message-bytes are refused here (MESSAGE_TOO_LARGE for that line):
 * ZeroMQ would drop the connection, and every line in flight with it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/nlpc/nlpc_cli.h"
#include "common/common.h"

#define BATCH_RETRY_BASE_MS 50
#define BATCH_RETRY_MAX_MS 2000
#define BATCH_PROBE_MAX_MS 2000    /* a probe is answered at once; longer is "no answer" */
#define BATCH_RESEND_DELAY_MS 1000 /* a send the socket refused is tried again after */
/* A line in flight through this many lost connections gets an error instead of another
 * send: a request that makes the connection drop (a frame the daemon's ZeroMQ refuses
 * when --max-message-bytes is set above the daemon's limit) must not loop forever. */
#define BATCH_MAX_RESENDS 8

enum { S_FREE = 0, S_WAIT, S_SENT, S_DONE };

typedef struct slot {
    cJSON *in; /* the parsed input line; NULL when it is not JSON */
    char *out; /* the rendered output line, once answered (S_DONE) */
    long lineno;
    int state;
    int overloads;    /* OVERLOADED answers so far */
    int late;         /* its reply took longer than --timeout (counted once) */
    int resends;      /* sends lost with the connection or the daemon */
    uint64_t req_id;  /* id of the latest send (S_SENT) */
    int64_t sent_at;  /* S_SENT: since when the reply is awaited */
    int64_t retry_at; /* S_WAIT: send at or after this time */
} slot;

/* Every id sent for a line that is not written yet: replies are matched through it. */
typedef struct owed {
    uint64_t id;
    long seq;
} owed;

typedef struct batch {
    nlpc_cli *cli;
    nlpc_client *c;
    FILE *out;
    slot *slots; /* [window]; line seq s lives in slots[s % window] */
    int window;
    long head, next; /* seqs: first not yet written, next to read */
    owed *owed;
    int n_owed, cap_owed;
    int eof, stopping, gone;
    long lineno;     /* input lines read (blank ones included) */
    long to_skip;    /* --resume: non-blank lines already answered */
    FILE *resume_in; /* --resume: the kept output, read while skipping */
    long skipped;
    long total; /* non-blank input lines, -1 unknown (not a file) */
    long n_ok, n_err, n_retried, n_resent, n_late;
    int64_t t0, last_progress, stop_at;
    int progress;
    /* liveness */
    int probe_ms;
    uint64_t probe_id; /* the stats probe awaited; 0: none */
    int64_t probe_at;
    int64_t unreachable_since; /* 0: the daemon answered since it last looked gone */
    double uptime;             /* the daemon's, at the last probe (restart detection) */
    int connected;
    uint64_t disconnects;
    char usage[320]; /* set: a usage error found in the first line */
} batch;

/* Set by the signal handler only (the one thing a handler may touch): the last stop
 * signal and how many came. The loop reads them. */
static volatile sig_atomic_t batch_sig, batch_nsig;

static void on_signal(int sig)
{
    batch_sig = sig;
    batch_nsig = batch_nsig + 1;
}

/* ---- output ---- */

/* The output object starts with the input's id (or the line number when there is none). */
static cJSON *out_object(const slot *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const cJSON *id = s->in ? cJSON_GetObjectItemCaseSensitive(s->in, "id") : NULL;
    if (id) cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
    else cJSON_AddNumberToObject(o, "line", (double)s->lineno);
    return o;
}

static void finish(batch *b, slot *s, cJSON *o, int ok)
{
    s->out = o ? cJSON_PrintUnformatted(o) : NULL;
    if (!s->out) s->out = strdup("{\"error\":\"out of memory\"}");
    cJSON_Delete(o);
    s->state = S_DONE;
    if (ok) b->n_ok++;
    else b->n_err++;
}

static void finish_error(batch *b, slot *s, const char *status, const char *msg)
{
    cJSON *o = out_object(s);
    if (o) {
        cJSON_AddStringToObject(o, "status", status);
        cJSON_AddStringToObject(o, "error", msg);
    }
    finish(b, s, o, 0);
}

/* Writes the answered lines at the head, in order, and forgets their ids. */
static void write_done(batch *b)
{
    long h0 = b->head;
    while (b->head < b->next && b->slots[b->head % b->window].state == S_DONE) {
        slot *s = &b->slots[b->head % b->window];
        fputs(s->out, b->out);
        fputc('\n', b->out);
        free(s->out);
        cJSON_Delete(s->in);
        memset(s, 0, sizeof *s);
        b->head++;
    }
    if (b->head == h0) return;
    fflush(b->out);
    int k = 0;
    for (int i = 0; i < b->n_owed; i++)
        if (b->owed[i].seq >= b->head) b->owed[k++] = b->owed[i];
    b->n_owed = k;
}

/* ---- input lines ---- */

/* What a task needs that a line may carry instead of the command line: the line's key,
 * and the option in *opt. */
static const char *required_field(const nlpc_request *rq, const char **opt)
{
    const char *key = cm_json_missing(rq);
    *opt = !key                     ? NULL
           : !strcmp(key, "to")     ? "--to LANG"
           : !strcmp(key, "labels") ? "--labels a,b,c"
                                    : "--question Q";
    return key;
}

/* Builds the line's request from the command-line options and the line's overrides
 * (common/cm_json.c: only those of the task, others are ignored; "model" for every task)
 * into *rq and *model. 0, or -1 with the line answered with the reason. *doc, labels and
 * labels_buf back rq's pointers. */
static int line_request(batch *b, slot *s, nlpc_request *rq, const char **model, const char **doc,
                        const char **labels, char **labels_buf)
{
    *rq = b->cli->rq;
    *model = b->cli->model;
    nlpc_task t = rq->task;
    char msg[320] = "";
    const char *text = *doc = cm_json_str(s->in, "text", NULL, msg, sizeof msg);
    if (!text) {
        finish_error(b, s, "INVALID_ARGUMENT", "the line needs a string \"text\"");
        return -1;
    }
    if (nlpc_cli_empty_text(t, text, msg, sizeof msg)) {
        finish_error(b, s, "INVALID_ARGUMENT", msg);
        return -1;
    }
    rq->docs = doc;
    rq->n_docs = 1;
    if (cm_json_task_fields(s->in, rq, model, labels, NLPC_MAX_LABELS, labels_buf, msg,
                            sizeof msg) < 0) {
        finish_error(b, s, "INVALID_ARGUMENT", msg);
        return -1;
    }
    const char *opt, *field = required_field(rq, &opt);
    if (field) {
        snprintf(msg, sizeof msg, "%s needs %s or a \"%s\" on the line", nlpc_task_name(t), opt,
                 field);
        finish_error(b, s, "INVALID_ARGUMENT", msg);
        return -1;
    }
    return 0;
}

static void owe(batch *b, uint64_t id, long seq)
{
    if (b->n_owed == b->cap_owed) {
        int cap = b->cap_owed ? 2 * b->cap_owed : 2 * b->window;
        owed *o = realloc(b->owed, (size_t)cap * sizeof *o);
        if (!o) return; /* the line waits for its latest id only */
        b->owed = o;
        b->cap_owed = cap;
    }
    b->owed[b->n_owed++] = (owed){ id, seq };
}

static void mark_unreachable(batch *b, int64_t since)
{
    if (!b->unreachable_since) b->unreachable_since = since;
}

/* Sends the line's request. On a problem with the line itself, answers the line with the
 * reason; on a socket that takes nothing now, leaves it waiting. */
static void send_slot(batch *b, slot *s, long seq)
{
    nlpc_request rq;
    const char *doc, *model, *labels[NLPC_MAX_LABELS];
    char *labels_buf = NULL;
    if (line_request(b, s, &rq, &model, &doc, labels, &labels_buf) < 0) {
        free(labels_buf);
        return;
    }
    int64_t id = nlpc_send_model(b->c, &rq, model);
    free(labels_buf);
    int64_t now = cm_now_ms();
    if (id > 0) {
        owe(b, (uint64_t)id, seq);
        s->state = S_SENT;
        s->req_id = (uint64_t)id;
        s->sent_at = now;
        return;
    }
    if (id == NLPC_ETOOBIG) {
        char msg[320];
        snprintf(msg, sizeof msg, "%s (--max-message-bytes): not sent", nlpc_client_error(b->c));
        finish_error(b, s, "MESSAGE_TOO_LARGE", msg);
    } else if (id == NLPC_EINVAL || id == NLPC_ENOMEM) {
        finish_error(b, s, id == NLPC_EINVAL ? "INVALID_ARGUMENT" : "INTERNAL",
                     nlpc_client_error(b->c));
    } else {
        /* the socket's queue is full or closed: the daemon is not taking requests */
        s->state = S_WAIT;
        s->retry_at = now + BATCH_RESEND_DELAY_MS;
        mark_unreachable(b, now);
    }
}

/* ---- --resume ---- */

/* Keeps the complete lines of the output file (a partial last line, from a run that was
 * killed mid-write, is cut off) and arranges for that many input lines to be skipped.
 * 0, or -1 with the message printed. */
static int resume_open(batch *b)
{
    const char *path = b->cli->output;
    FILE *f = fopen(path, "r");
    if (!f && errno != ENOENT) {
        fprintf(stderr, "nlpc: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    long keep = 0, n = 0;
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        long off = 0;
        while ((len = getline(&line, &cap, f)) > 0) {
            if (line[len - 1] != '\n') break;
            cJSON *o = cJSON_Parse(line);
            int ok = cJSON_IsObject(o);
            cJSON_Delete(o);
            if (!ok) break;
            off += len;
            keep = off;
            n++;
        }
        free(line);
        fclose(f);
        if (truncate(path, keep) != 0) {
            fprintf(stderr, "nlpc: cannot cut %s to its complete lines: %s\n", path,
                    strerror(errno));
            return -1;
        }
        b->resume_in = fopen(path, "r");
    }
    b->to_skip = n;
    b->out = fopen(path, "a");
    if (!b->out) {
        fprintf(stderr, "nlpc: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* While skipping: the kept output line for this input line must answer it (same "id",
 * or "line" for an input line without one). 0, or -1 with b->usage set. */
static int resume_check(batch *b, const char *line, size_t len)
{
    char *o = NULL;
    size_t cap = 0;
    if (!b->resume_in || getline(&o, &cap, b->resume_in) <= 0) {
        free(o);
        return 0;
    }
    cJSON *oj = cJSON_Parse(o);
    free(o);
    cJSON *in;
    char msg[320];
    nlpc_cli_parse_line(line, len, &in, msg, sizeof msg); /* as the run read it: NULL if refused */
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(in, "id");
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(oj, want ? "id" : "line");
    int ok = want ? got && cJSON_Compare(want, got, 1)
                  : cJSON_IsNumber(got) && got->valuedouble == (double)b->lineno;
    if (!ok) {
        char *w = want ? cJSON_PrintUnformatted(want) : NULL;
        cm_fmt(b->usage, sizeof b->usage,
               "--resume: output line %ld does not answer input line %ld (%s %.60s): "
               "not the output of this input?",
               b->skipped + 1, b->lineno, want ? "id" : "line", w ? w : "");
        cJSON_free(w);
    }
    cJSON_Delete(in);
    cJSON_Delete(oj);
    return ok ? 0 : -1;
}

/* The number of non-blank lines of a regular-file stdin from where it stands (read with
 * pread: stdin's own position does not move); -1 when stdin is not a file. */
static long count_lines(void)
{
    struct stat st;
    if (fstat(0, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    off_t off = lseek(0, 0, SEEK_CUR);
    if (off < 0) return -1;
    char buf[65536];
    long n = 0;
    int has_text = 0;
    ssize_t k;
    while ((k = pread(0, buf, sizeof buf, off)) > 0) {
        for (ssize_t i = 0; i < k; i++) {
            char ch = buf[i];
            if (ch == '\n') {
                n += has_text;
                has_text = 0;
            } else if (!strchr(" \t\r", ch)) {
                has_text = 1;
            }
        }
        off += k;
    }
    return n + has_text;
}

/* ---- the loop's steps ---- */

static void read_lines(batch *b, char **line, size_t *cap)
{
    while (!b->eof && b->next < b->head + b->window && !batch_nsig) {
        errno = 0;
        ssize_t n = getline(line, cap, stdin);
        if (n < 0) {
            if (errno == EINTR) {
                clearerr(stdin);
                return; /* a signal: the loop stops reading */
            }
            b->eof = 1;
            if (b->to_skip > 0 && b->resume_in)
                cm_fmt(b->usage, sizeof b->usage,
                       "--resume: the output has more lines "
                       "than the input (%ld answered, %ld in the input)",
                       b->skipped + b->to_skip, b->skipped);
            return;
        }
        b->lineno++;
        size_t k = strspn(*line, " \t\r\n");
        if ((*line)[k] == '\0') continue;
        if (b->to_skip > 0) {
            if (resume_check(b, *line, (size_t)n) < 0) return;
            b->to_skip--;
            b->skipped++;
            continue;
        }
        long seq = b->next++;
        slot *s = &b->slots[seq % b->window];
        memset(s, 0, sizeof *s);
        s->lineno = b->lineno;
        char msg[320];
        if (nlpc_cli_parse_line(*line, (size_t)n, &s->in, msg, sizeof msg) < 0) {
            finish_error(b, s, "INVALID_ARGUMENT", msg);
            continue;
        }
        /* A task option missing from the command line and from the first line is
         * missing from the run: say so before anything is sent. */
        const char *opt, *field = required_field(&b->cli->rq, &opt);
        if (seq == 0 && field && !cJSON_GetObjectItemCaseSensitive(s->in, field)) {
            snprintf(b->usage, sizeof b->usage,
                     "batch --task %s needs %s (or a \"%s\" on "
                     "every line; line %ld has none)",
                     nlpc_task_name(b->cli->rq.task), opt, field, b->lineno);
            return;
        }
        s->state = S_WAIT; /* sent by send_due, once connected */
        s->retry_at = 0;
    }
}

/* Lines whose reply can no longer come (connection lost, daemon restarted) are sent
 * again; `before`: only those whose latest send has an id below it (0: all). */
static void resend_lost(batch *b, uint64_t before, int64_t now)
{
    for (long q = b->head; q < b->next; q++) {
        slot *s = &b->slots[q % b->window];
        if (s->state != S_SENT || (before && s->req_id >= before)) continue;
        if (++s->resends > BATCH_MAX_RESENDS) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "the connection was lost %d times with this line in "
                     "flight",
                     BATCH_MAX_RESENDS + 1);
            finish_error(b, s, "CONNECTION_LOST", msg);
            continue;
        }
        s->state = S_WAIT;
        s->retry_at = now;
        b->n_resent++;
    }
}

static void send_due(batch *b, int64_t now)
{
    if (b->connected <= 0) return;
    for (long q = b->head; q < b->next; q++) {
        slot *s = &b->slots[q % b->window];
        if (s->state == S_WAIT && s->retry_at <= now) send_slot(b, s, q);
    }
}

static int64_t backoff_ms(int n)
{
    int64_t ms = (int64_t)BATCH_RETRY_BASE_MS << (n < 10 ? n : 10);
    return ms < BATCH_RETRY_MAX_MS ? ms : BATCH_RETRY_MAX_MS;
}

static void on_probe(batch *b, const nlpc_response *r, int64_t now)
{
    if (r->id >= b->probe_id) b->probe_id = 0;
    double up = r->stats.uptime_s;
    int restarted = b->uptime > 0 && up + 0.5 < b->uptime;
    b->uptime = up;
    if (restarted || r->stats.in_flight == 0) {
        /* nothing owed: whatever was sent before this probe and is unanswered is lost */
        resend_lost(b, r->id, now);
        return;
    }
    for (long q = b->head; q < b->next; q++) {
        slot *s = &b->slots[q % b->window];
        if (s->state == S_SENT && now - s->sent_at >= b->cli->timeout_ms) {
            s->sent_at = now; /* late, and still owed: wait on */
            b->n_late += !s->late;
            s->late = 1;
        }
    }
}

static void on_reply(batch *b, nlpc_response *r)
{
    int64_t now = cm_now_ms();
    b->unreachable_since = 0;
    if (r->has_stats) {
        on_probe(b, r, now);
        return;
    }
    long seq = -1;
    for (int i = 0; i < b->n_owed; i++)
        if (b->owed[i].id == r->id) {
            seq = b->owed[i].seq;
            b->owed[i] = b->owed[--b->n_owed];
            break;
        }
    if (seq < b->head || seq >= b->next) return; /* written already */
    slot *s = &b->slots[seq % b->window];
    if (s->state == S_DONE) return; /* a second answer to a resent line */
    const nlpc_result *res = r->n_results == 1 ? &r->results[0] : NULL;
    if (!res && (r->code == NLPC_OVERLOADED || r->code == NLPC_SHUTTING_DOWN)) {
        if (s->state != S_SENT || r->id != s->req_id) return; /* a newer send is out */
        if (r->code == NLPC_OVERLOADED && s->overloads >= b->cli->retries) {
            char msg[400];
            cm_fmt(msg, sizeof msg, "%s (after %d retries)", r->message, s->overloads);
            finish_error(b, s, "OVERLOADED", msg);
            return;
        }
        /* OVERLOADED: the queue is full; SHUTTING_DOWN: the daemon is stopping, and a
         * restarted one (or the next endpoint) will take it. */
        int n = r->code == NLPC_OVERLOADED ? s->overloads++ : 4;
        s->state = S_WAIT;
        s->retry_at = now + backoff_ms(n);
        b->n_retried++;
        return;
    }
    if (r->code != NLPC_OK && !(res && res->code != NLPC_OK)) {
        finish_error(b, s, nlpc_code_name(r->code), r->message);
        return;
    }
    if (!res) {
        finish_error(b, s, "MALFORMED", "the reply has no result");
        return;
    }
    cJSON *o = out_object(s);
    if (o) cm_json_result(o, b->cli->rq.task, res);
    finish(b, s, o, res->code == NLPC_OK);
}

/* Connection events and probes: decides whether the daemon is gone. */
static void check_daemon(batch *b, int64_t now)
{
    nlpc_conn_info ci;
    nlpc_client_conn(b->c, &ci);
    if (ci.disconnects != b->disconnects) {
        b->disconnects = ci.disconnects;
        resend_lost(b, 0, now); /* the replies owed on that connection are dropped */
    }
    b->connected = ci.connected;
    if (b->connected <= 0) mark_unreachable(b, now);
    if (b->probe_id && now - b->probe_at >= b->probe_ms) {
        mark_unreachable(b, b->probe_at); /* no answer to what is answered at once */
        b->probe_id = 0;
    }
    if (b->unreachable_since && now - b->unreachable_since >= b->cli->reconnect_ms) {
        b->gone = 1;
        return;
    }
    if (b->probe_id || b->connected <= 0) return;
    int need = b->unreachable_since != 0;
    for (long q = b->head; !need && q < b->next; q++) {
        const slot *s = &b->slots[q % b->window];
        need = s->state == S_SENT && now - s->sent_at >= b->cli->timeout_ms;
    }
    if (!need) return;
    nlpc_request rq;
    nlpc_request_init(&rq, NLPC_TASK_STATS);
    int64_t id = nlpc_send(b->c, &rq);
    if (id > 0) {
        b->probe_id = (uint64_t)id;
        b->probe_at = now;
    } else {
        mark_unreachable(b, now);
    }
}

static long count_state(const batch *b, int state)
{
    long n = 0;
    for (long q = b->head; q < b->next; q++) n += b->slots[q % b->window].state == state;
    return n;
}

static void show_progress(batch *b, int final)
{
    int64_t t = cm_now_ms();
    if (!final && (!b->progress || t - b->last_progress < 1000)) return;
    b->last_progress = t;
    double secs = (double)(t - b->t0) / 1000.0;
    long done = b->n_ok + b->n_err;
    double rate = secs > 0 ? (double)done / secs : 0.0;
    char tot[96] = "";
    if (b->total >= 0) {
        long all = b->total - b->skipped;
        if (final || rate <= 0) snprintf(tot, sizeof tot, "; %ld/%ld lines", done, all);
        else
            snprintf(tot, sizeof tot, "; %ld/%ld lines, ETA %.0f s", done, all,
                     (double)(all - done) / rate);
    }
    char more[64] = "";
    if (b->skipped) snprintf(more, sizeof more, ", %ld skipped (--resume)", b->skipped);
    int tty = isatty(2) && !final;
    fprintf(stderr,
            "%snlpc batch: %ld done, %ld errors, %ld retried, %ld resent, %ld late"
            "%s%s, %.1f s, %.1f docs/s%s",
            tty ? "\r" : "", done, b->n_err, b->n_retried, b->n_resent, b->n_late, more, tot, secs,
            rate, tty ? "\033[K" : "\n");
}

/* The last line of every run, also after a signal or a daemon that is gone: what was
 * not written, and how to go on. */
static void summary(batch *b)
{
    if (b->progress && isatty(2)) fputc('\n', stderr);
    show_progress(b, 1);
    long read = b->next - b->head; /* read, not written */
    long unread = b->eof ? 0 : b->total >= 0 ? b->total - b->skipped - b->next : -1;
    if (read == 0 && unread == 0) return;
    const char *why = b->gone                ? "the daemon is gone (no answer, no connection)"
                      : batch_sig == SIGTERM ? "stopped by SIGTERM"
                      : batch_sig == SIGINT  ? "stopped by SIGINT"
                                             : "stopped";
    char rest[64] = "the rest of the input";
    if (unread >= 0) snprintf(rest, sizeof rest, "%ld not read", unread);
    fprintf(stderr,
            "nlpc batch: %s: %ld%s lines not written (%ld read: %ld in flight, %ld "
            "waiting to be sent; %s); %s\n",
            why, read + (unread > 0 ? unread : 0), unread < 0 ? "+" : "", read,
            count_state(b, S_SENT), count_state(b, S_WAIT), rest,
            b->cli->output ? "--resume continues" : "-o FILE --resume continues");
}

/* ---- the run ---- */

int nlpc_cli_parse_line(const char *line, size_t len, cJSON **out, char *msg, size_t mlen)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    *out = cm_json_parse_object(line, len, "line", "column", msg, mlen);
    return *out ? 0 : -1;
}

int nlpc_cli_batch(nlpc_cli *cli)
{
    char err[256];
    batch b;
    if (cli->queue) return nlpc_cli_queue_batch(cli); /* through Redis: queue.c */
    memset(&b, 0, sizeof b);
    b.cli = cli;
    b.window = cli->window;
    b.progress = cli->progress < 0 ? isatty(2) : cli->progress;
    b.probe_ms = cli->timeout_ms < BATCH_PROBE_MAX_MS ? cli->timeout_ms : BATCH_PROBE_MAX_MS;
    if (b.probe_ms < 200) b.probe_ms = 200;
    b.out = stdout;
    if (cli->output) {
        if (cli->resume) {
            if (resume_open(&b) < 0) return NLPC_EXIT_USAGE;
        } else if (!(b.out = fopen(cli->output, "w"))) {
            fprintf(stderr, "nlpc: cannot write %s: %s\n", cli->output, strerror(errno));
            return NLPC_EXIT_USAGE;
        }
    }
    b.slots = calloc((size_t)b.window, sizeof *b.slots);
    b.c = nlpc_cli_client_new(cli, err, sizeof err);
    if (!b.slots || !b.c) {
        fprintf(stderr, "nlpc: %s\n", b.c ? "out of memory" : err);
        free(b.slots);
        nlpc_client_destroy(&b.c);
        if (b.out != stdout) fclose(b.out);
        if (b.resume_in) fclose(b.resume_in);
        return NLPC_EXIT_CONN;
    }
    nlpc_client_set_max_message(b.c, (size_t)cli->max_message);
    b.total = count_lines();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns to the loop */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    b.t0 = b.last_progress = cm_now_ms();
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        int64_t now = cm_now_ms();
        if (batch_nsig && !b.stopping) {
            b.stopping = 1;
            b.stop_at = now + cli->drain_ms;
        }
        if (batch_nsig > 1) b.stop_at = now; /* a second signal: stop waiting */
        if (!b.stopping) read_lines(&b, &line, &cap);
        if (b.usage[0]) break;
        write_done(&b);
        if (b.head == b.next && (b.eof || b.stopping)) break;
        if (b.head == b.next) continue;
        now = cm_now_ms();
        if (b.stopping && (count_state(&b, S_SENT) == 0 || now >= b.stop_at)) break;
        check_daemon(&b, now);
        if (b.gone) break;
        if (!b.stopping) send_due(&b, now);

        /* wait for a reply, at most until the next resend is due */
        int wait = 100;
        for (long q = b.head; q < b.next; q++) {
            const slot *s = &b.slots[q % b.window];
            if (s->state == S_WAIT && b.connected > 0 && s->retry_at - now < wait)
                wait = s->retry_at > now ? (int)(s->retry_at - now) : 0;
        }
        nlpc_response *r = NULL;
        int rc = nlpc_recv(b.c, wait, &r);
        if (rc == 0) {
            on_reply(&b, r);
            nlpc_response_free(&r);
        } else if (rc != NLPC_ETIMEOUT && rc != NLPC_EPROTO) {
            fprintf(stderr, "nlpc: %s\n", nlpc_client_error(b.c));
            b.gone = 1;
            break;
        }
        show_progress(&b, 0);
    }
    write_done(&b);
    int code;
    if (b.usage[0]) {
        fprintf(stderr, "nlpc: %s\n", b.usage);
        code = NLPC_EXIT_USAGE;
    } else {
        summary(&b);
        int complete = b.head == b.next && b.eof;
        if (complete) code = b.n_err ? NLPC_EXIT_SERVER : NLPC_EXIT_OK;
        else if (b.gone) code = NLPC_EXIT_CONN;
        else code = NLPC_EXIT_SIGNAL_BASE + (batch_sig ? batch_sig : SIGINT);
    }
    for (long q = b.head; q < b.next; q++) {
        free(b.slots[q % b.window].out);
        cJSON_Delete(b.slots[q % b.window].in);
    }
    free(line);
    free(b.slots);
    free(b.owed);
    if (b.out != stdout && fclose(b.out) != 0) code = NLPC_EXIT_CONN;
    if (b.resume_in) fclose(b.resume_in);
    nlpc_client_destroy(&b.c);
    return code;
}
