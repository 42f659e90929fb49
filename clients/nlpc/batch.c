/* nlpc batch: JSON lines in, JSON lines out, in input order, with up to `window`
 * requests in flight so the daemon can batch them. Single-threaded: one loop reads input
 * while the window has room, writes every finished line at the head of the window, and
 * waits for replies.
 *
 * Each input line becomes one single-document request, so the daemon's batcher (not this
 * client) decides how documents share engine batches. OVERLOADED replies are retried with
 * backoff; a window that gets no reply for --timeout ms is answered TIMEOUT line by line
 * and the run goes on (late replies to those ids are dropped). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clients/nlpc/nlpc_cli.h"

#define BATCH_MAX_RETRIES 6
#define BATCH_RETRY_BASE_MS 50

typedef struct slot {
    cJSON *in;                /* the parsed input line; NULL once written */
    char *out;                /* the rendered output line; NULL while pending */
    long lineno;
    uint64_t req_id;          /* id of the request in flight for it; 0: none */
    int attempts;
    int64_t retry_at;         /* > 0: resend at this time (ms) */
} slot;

typedef struct batch {
    nlpc_cli *cli;
    nlpc_client *c;
    slot *slots;              /* [window], line seq s lives in slots[s % window] */
    int window;
    long head, next;          /* seqs: first not yet written, next to read */
    long n_ok, n_err, n_timeout;
    int64_t t0, last_progress;
    int progress;
} batch;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    s->req_id = 0;
    s->retry_at = 0;
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

/* Builds the line's request from the command-line options and the line's overrides, and
 * sends it. On a problem with the line itself, answers the line with the reason. */
static void send_slot(batch *b, slot *s)
{
    nlpc_request rq = b->cli->rq;
    char msg[320];
    int bad = 0;
    const char *text = str_field(s->in, "text", NULL, &bad);
    if (bad || !text) {
        finish_error(b, s, "INVALID_ARGUMENT", "the line needs a string \"text\"");
        return;
    }
    rq.docs = &text;
    rq.n_docs = 1;
    rq.question = str_field(s->in, "question", rq.question, &bad);
    rq.target_lang = str_field(s->in, "to", rq.target_lang, &bad);
    rq.source_lang = str_field(s->in, "from", rq.source_lang, &bad);
    if (bad) {
        finish_error(b, s, "INVALID_ARGUMENT", "\"question\", \"to\" and \"from\" must be strings");
        return;
    }
    const char *labels[NLPC_MAX_LABELS];
    char *labels_buf = NULL;
    const cJSON *lj = cJSON_GetObjectItemCaseSensitive(s->in, "labels");
    if (lj && !cJSON_IsNull(lj)) {
        int n = -1;
        if (cJSON_IsString(lj)) {
            labels_buf = strdup(lj->valuestring);
            if (labels_buf) n = nlpc_cli_split_labels(labels_buf, labels, NLPC_MAX_LABELS);
        } else if (cJSON_IsArray(lj)) {
            const cJSON *e;
            n = 0;
            cJSON_ArrayForEach(e, lj) {
                if (!cJSON_IsString(e) || !*e->valuestring || n == NLPC_MAX_LABELS) {
                    n = -1;
                    break;
                }
                labels[n++] = e->valuestring;
            }
        }
        if (n < 1) {
            free(labels_buf);
            finish_error(b, s, "INVALID_ARGUMENT",
                         "\"labels\" must be a non-empty array of strings or \"a,b,c\"");
            return;
        }
        rq.labels = labels;
        rq.n_labels = n;
    }
    int64_t id = nlpc_send(b->c, &rq);
    free(labels_buf);
    if (id < 0) {
        snprintf(msg, sizeof msg, "%s", nlpc_client_error(b->c));
        finish_error(b, s, id == NLPC_EINVAL ? "INVALID_ARGUMENT" : "CONNECTION", msg);
        return;
    }
    s->req_id = (uint64_t)id;
    s->attempts++;
    s->retry_at = 0;
}

static void on_reply(batch *b, nlpc_response *r)
{
    slot *s = NULL;
    for (long q = b->head; q < b->next; q++) {
        slot *t = &b->slots[q % b->window];
        if (!t->out && t->req_id == r->id) {
            s = t;
            break;
        }
    }
    if (!s) return;   /* a late reply to a line already answered TIMEOUT */
    if (r->code == NLPC_OVERLOADED && s->attempts <= BATCH_MAX_RETRIES) {
        s->req_id = 0;
        s->retry_at = now_ms() + ((int64_t)BATCH_RETRY_BASE_MS << (s->attempts - 1));
        return;
    }
    const nlpc_result *res = r->n_results == 1 ? &r->results[0] : NULL;
    if (r->code != NLPC_OK && !(res && res->code != NLPC_OK)) {
        finish_error(b, s, nlpc_code_name(r->code), r->message);
        return;
    }
    if (!res) {
        finish_error(b, s, "MALFORMED", "the reply has no result");
        return;
    }
    cJSON *o = out_object(s);
    if (o) nlpc_json_result(o, b->cli->rq.task, res);
    finish(b, s, o, res->code == NLPC_OK);
}

static void show_progress(batch *b, int final)
{
    int64_t t = now_ms();
    if (!final && (!b->progress || t - b->last_progress < 1000)) return;
    b->last_progress = t;
    double secs = (double)(t - b->t0) / 1000.0;
    long done = b->n_ok + b->n_err;
    fprintf(stderr, "%snlpc batch: %ld done, %ld errors (%ld timeouts), %.1f s, %.1f docs/s%s",
            isatty(2) ? "\r" : "", done, b->n_err, b->n_timeout, secs,
            secs > 0 ? (double)done / secs : 0.0, final || !isatty(2) ? "\n" : "");
}

int nlpc_cli_batch(nlpc_cli *cli)
{
    char err[256];
    batch b;
    memset(&b, 0, sizeof b);
    b.cli = cli;
    b.window = cli->window;
    b.progress = cli->progress < 0 ? isatty(2) : cli->progress;
    b.slots = calloc((size_t)b.window, sizeof *b.slots);
    if (!b.slots) return NLPC_EXIT_CONN;
    b.c = nlpc_client_new(cli->endpoint, err, sizeof err);
    if (!b.c) {
        fprintf(stderr, "nlpc: %s\n", err);
        free(b.slots);
        return NLPC_EXIT_CONN;
    }
    b.t0 = b.last_progress = now_ms();
    int64_t last_reply = b.t0;
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int eof = 0;
    while (!eof || b.head < b.next) {
        /* read while the window has room */
        while (!eof && b.next < b.head + b.window) {
            ssize_t n = getline(&line, &cap, stdin);
            if (n < 0) {
                eof = 1;
                break;
            }
            lineno++;
            size_t k = strspn(line, " \t\r\n");
            if (line[k] == '\0') continue;
            slot *s = &b.slots[b.next % b.window];
            memset(s, 0, sizeof *s);
            s->lineno = lineno;
            b.next++;
            s->in = cJSON_Parse(line);
            if (!s->in || !cJSON_IsObject(s->in)) {
                cJSON_Delete(s->in);
                s->in = NULL;
                finish_error(&b, s, "INVALID_ARGUMENT", "the line is not a JSON object");
                continue;
            }
            if (b.head == b.next - 1 || nlpc_in_flight(b.c) == 0) last_reply = now_ms();
            send_slot(&b, s);
        }
        /* write what is finished at the head, in order */
        while (b.head < b.next && b.slots[b.head % b.window].out) {
            slot *s = &b.slots[b.head % b.window];
            fputs(s->out, stdout);
            fputc('\n', stdout);
            free(s->out);
            cJSON_Delete(s->in);
            memset(s, 0, sizeof *s);
            b.head++;
        }
        if (b.head == b.next) continue;
        fflush(stdout);

        /* resend what was OVERLOADED once its backoff is over */
        int64_t t = now_ms(), next_retry = 0;
        for (long q = b.head; q < b.next; q++) {
            slot *s = &b.slots[q % b.window];
            if (s->out || !s->retry_at) continue;
            if (s->retry_at <= t) send_slot(&b, s);
            else if (!next_retry || s->retry_at < next_retry) next_retry = s->retry_at;
        }
        if (nlpc_in_flight(b.c) == 0) {
            if (next_retry) usleep((useconds_t)(next_retry - t) * 1000);
            last_reply = now_ms();
            continue;
        }
        int wait = 250;
        if (next_retry && next_retry - t < wait) wait = (int)(next_retry - t);
        nlpc_response *r = NULL;
        int rc = nlpc_recv(b.c, wait, &r);
        if (rc == 0) {
            last_reply = now_ms();
            on_reply(&b, r);
            nlpc_response_free(&r);
        } else if (rc == NLPC_ETIMEOUT) {
            if (now_ms() - last_reply >= cli->timeout_ms) {
                char msg[128];
                snprintf(msg, sizeof msg, "no reply within %d ms", cli->timeout_ms);
                for (long q = b.head; q < b.next; q++) {
                    slot *s = &b.slots[q % b.window];
                    if (s->out || !s->req_id) continue;
                    finish_error(&b, s, "TIMEOUT", msg);
                    b.n_timeout++;
                }
                last_reply = now_ms();
            }
        } else if (rc != NLPC_EPROTO) {
            fprintf(stderr, "nlpc: %s\n", nlpc_client_error(b.c));
            break;
        }
        show_progress(&b, 0);
    }
    fflush(stdout);
    show_progress(&b, 1);
    int broken = b.head < b.next;
    for (long q = b.head; q < b.next; q++) {
        free(b.slots[q % b.window].out);
        cJSON_Delete(b.slots[q % b.window].in);
    }
    free(line);
    free(b.slots);
    nlpc_client_destroy(&b.c);
    if (broken || b.n_timeout) return NLPC_EXIT_CONN;
    return b.n_err ? NLPC_EXIT_SERVER : NLPC_EXIT_OK;
}
