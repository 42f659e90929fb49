/* nlpc_stress: drives nlpd through libnlpclient, for the end-to-end tests.
 *
 *   nlpc_stress --connect EP --cases FILE.jsonl [--clients N] [--requests M]
 *               [--window W] [--timeout MS] [--out FILE]
 *
 * FILE.jsonl: one case a line, {"task": "classify", "text": "...", "labels": [...],
 * "question": "...", "to": "de", "from": "en", "max_new_tokens": N, "num_beams": B}.
 *
 * 1. Reference: one client sends the cases one by one (nlpc_call); with --out, writes
 *    one JSON line per case: {"task", "text", "answer", "labels", "score"}.
 * 2. Load: N threads, each with its own client, send M requests each (case
 *    (thread * 7 + k) % n_cases), W in flight per client, all at once. Every reply must
 *    carry an id its own client sent, arrive exactly once, and equal the reference for
 *    its case: same text / answer / label order, scores within 1e-4.
 * Exit 0 when everything matched; the mismatches are printed. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "clients/libnlpclient/nlpclient.h"

#define MAX_CASES 256
#define MAX_LABELS 16
#define SCORE_TOL 1e-4

typedef struct scase {
    nlpc_request rq;
    const char *doc;
    const char *labels[MAX_LABELS];
} scase;

/* What a result must equal: rendered once from the reference run. */
typedef struct expect {
    char *text, *answer;
    int n_labels;
    char *labels[MAX_LABELS];
    double label_scores[MAX_LABELS];
    double score;
} expect;

static scase cases[MAX_CASES];
static expect want[MAX_CASES];
static int n_cases;
static const char *endpoint;
static int timeout_ms = 60000, n_requests = 25, window = 4;

static int load_cases(const char *path, cJSON **keep)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    cJSON *all = cJSON_CreateArray();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0 && n_cases < MAX_CASES) {
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        cJSON *o = cJSON_Parse(line);
        if (!o) {
            fprintf(stderr, "bad case line: %s", line);
            free(line);
            fclose(f);
            cJSON_Delete(all);
            return -1;
        }
        cJSON_AddItemToArray(all, o);
        scase *c = &cases[n_cases++];
        const cJSON *v = cJSON_GetObjectItem(o, "task");
        nlpc_request_init(&c->rq, nlpc_task_from_name(cJSON_GetStringValue(v)));
        c->doc = cJSON_GetStringValue(cJSON_GetObjectItem(o, "text"));
        c->rq.docs = &c->doc;
        c->rq.n_docs = 1;
        c->rq.question = cJSON_GetStringValue(cJSON_GetObjectItem(o, "question"));
        c->rq.target_lang = cJSON_GetStringValue(cJSON_GetObjectItem(o, "to"));
        c->rq.source_lang = cJSON_GetStringValue(cJSON_GetObjectItem(o, "from"));
        const cJSON *l;
        cJSON_ArrayForEach (l, cJSON_GetObjectItem(o, "labels")) {
            if (c->rq.n_labels < MAX_LABELS) c->labels[c->rq.n_labels++] = l->valuestring;
        }
        c->rq.labels = c->labels;
        if ((v = cJSON_GetObjectItem(o, "max_new_tokens"))) c->rq.opts.max_new_tokens = v->valueint;
        if ((v = cJSON_GetObjectItem(o, "num_beams"))) c->rq.opts.num_beams = v->valueint;
    }
    free(line);
    fclose(f);
    *keep = all;
    return n_cases ? 0 : -1;
}

static void remember(expect *e, const nlpc_result *r)
{
    e->text = strdup(r->text);
    e->answer = strdup(r->answer);
    e->score = r->score;
    e->n_labels = r->n_labels < MAX_LABELS ? r->n_labels : MAX_LABELS;
    for (int i = 0; i < e->n_labels; i++) {
        e->labels[i] = strdup(r->labels[i].label);
        e->label_scores[i] = r->labels[i].score;
    }
}

static int close_enough(double a, double b) { return fabs(a - b) <= SCORE_TOL * (1.0 + fabs(b)); }

/* 0 if r matches e; else writes why into why. */
static int compare(const expect *e, const nlpc_result *r, char *why, size_t n)
{
    if (r->code != NLPC_OK) {
        snprintf(why, n, "status %s: %s", nlpc_code_name(r->code), r->message);
        return -1;
    }
    if (strcmp(e->text, r->text)) {
        snprintf(why, n, "text '%s' != '%s'", r->text, e->text);
        return -1;
    }
    if (strcmp(e->answer, r->answer)) {
        snprintf(why, n, "answer '%s' != '%s'", r->answer, e->answer);
        return -1;
    }
    if (!close_enough(r->score, e->score)) {
        snprintf(why, n, "score %.9g != %.9g", r->score, e->score);
        return -1;
    }
    if (r->n_labels != e->n_labels) {
        snprintf(why, n, "%d labels != %d", r->n_labels, e->n_labels);
        return -1;
    }
    for (int i = 0; i < e->n_labels; i++) {
        if (strcmp(e->labels[i], r->labels[i].label) ||
            !close_enough(r->labels[i].score, e->label_scores[i])) {
            snprintf(why, n, "label %d: %s %.9g != %s %.9g", i, r->labels[i].label,
                     r->labels[i].score, e->labels[i], e->label_scores[i]);
            return -1;
        }
    }
    return 0;
}

static void write_ref(FILE *out, int i, const nlpc_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", nlpc_task_name(cases[i].rq.task));
    cJSON_AddStringToObject(o, "status", nlpc_code_name(r->code));
    cJSON_AddStringToObject(o, "text", r->text);
    cJSON_AddStringToObject(o, "answer", r->answer);
    cJSON_AddNumberToObject(o, "score", r->score);
    cJSON *arr = cJSON_AddArrayToObject(o, "labels");
    for (int k = 0; k < r->n_labels; k++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "label", r->labels[k].label);
        cJSON_AddNumberToObject(l, "score", r->labels[k].score);
        cJSON_AddItemToArray(arr, l);
    }
    char *s = cJSON_PrintUnformatted(o);
    fprintf(out, "%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
}

typedef struct worker {
    int index;
    int ok, bad, lost;
    pthread_t th;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char err[256], why[512];
    nlpc_client *c = nlpc_client_new(endpoint, err, sizeof err);
    if (!c) {
        fprintf(stderr, "client %d: %s\n", w->index, err);
        w->lost = n_requests;
        return NULL;
    }
    /* sent[k]: the id of request k; got[k]: replies seen for it */
    int64_t *sent = calloc((size_t)n_requests, sizeof *sent);
    int *got = calloc((size_t)n_requests, sizeof *got);
    int next = 0, done = 0;
    while (done < n_requests) {
        while (next < n_requests && nlpc_in_flight(c) < window) {
            int ci = (w->index * 7 + next) % n_cases;
            sent[next] = nlpc_send(c, &cases[ci].rq);
            if (sent[next] < 0) {
                fprintf(stderr, "client %d: send: %s\n", w->index, nlpc_client_error(c));
                w->lost += n_requests - done;
                goto out;
            }
            next++;
        }
        nlpc_response *r = NULL;
        if (nlpc_recv(c, timeout_ms, &r) < 0) {
            fprintf(stderr, "client %d: %s\n", w->index, nlpc_client_error(c));
            w->lost += n_requests - done;
            goto out;
        }
        int k = -1;
        for (int j = 0; j < next; j++)
            if ((uint64_t)sent[j] == r->id) k = j;
        if (k < 0) {
            fprintf(stderr, "client %d: reply to id %llu it never sent\n", w->index,
                    (unsigned long long)r->id);
            w->bad++;
        } else if (got[k]++) {
            fprintf(stderr, "client %d: second reply to request %d\n", w->index, k);
            w->bad++;
        } else {
            int ci = (w->index * 7 + k) % n_cases;
            done++;
            if (r->n_results != 1) {
                fprintf(stderr, "client %d req %d: %s: %s\n", w->index, k, nlpc_code_name(r->code),
                        r->message);
                w->bad++;
            } else if (compare(&want[ci], &r->results[0], why, sizeof why) < 0) {
                fprintf(stderr, "client %d req %d (case %d, %s): %s\n", w->index, k, ci,
                        nlpc_task_name(cases[ci].rq.task), why);
                w->bad++;
            } else {
                w->ok++;
            }
        }
        nlpc_response_free(&r);
    }
out:
    free(sent);
    free(got);
    nlpc_client_destroy(&c);
    return NULL;
}

static void free_all(cJSON *keep)
{
    for (int i = 0; i < n_cases; i++) {
        free(want[i].text);
        free(want[i].answer);
        for (int k = 0; k < want[i].n_labels; k++) free(want[i].labels[k]);
    }
    cJSON_Delete(keep);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *cases_path = NULL, *out_path = NULL;
    int n_clients = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--connect")) endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--cases")) cases_path = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out_path = argv[i + 1];
        else if (!strcmp(argv[i], "--clients")) n_clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) n_requests = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--window")) window = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout")) timeout_ms = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "nlpc_stress: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!endpoint || !cases_path || n_clients < 0 || n_clients > 256 || n_requests < 1 ||
        window < 1) {
        fprintf(stderr, "usage: nlpc_stress --connect EP --cases FILE [--clients N] "
                        "[--requests M] [--window W] [--timeout MS] [--out FILE]\n");
        return 2;
    }
    cJSON *keep = NULL;
    if (load_cases(cases_path, &keep) < 0) return 2;

    /* 1. the one-by-one reference */
    char err[256];
    nlpc_client *c = nlpc_client_new(endpoint, err, sizeof err);
    if (!c) {
        fprintf(stderr, "nlpc_stress: %s\n", err);
        free_all(keep);
        return 3;
    }
    FILE *out = out_path ? fopen(out_path, "w") : NULL;
    int failed = 0;
    for (int i = 0; i < n_cases; i++) {
        nlpc_response *r = NULL;
        if (nlpc_call(c, &cases[i].rq, timeout_ms, &r) < 0) {
            fprintf(stderr, "case %d: %s\n", i, nlpc_client_error(c));
            nlpc_client_destroy(&c);
            if (out) fclose(out);
            free_all(keep);
            return 3;
        }
        if (r->n_results != 1 || r->results[0].code != NLPC_OK) {
            fprintf(stderr, "case %d: %s: %s\n", i, nlpc_code_name(r->code), r->message);
            failed = 1;
        } else {
            remember(&want[i], &r->results[0]);
            if (out) write_ref(out, i, &r->results[0]);
        }
        nlpc_response_free(&r);
    }
    nlpc_client_destroy(&c);
    if (out) fclose(out);
    printf("reference: %d cases one by one\n", n_cases);
    if (failed || n_clients == 0) {
        free_all(keep);
        return failed;
    }

    /* 2. everyone at once */
    worker *ws = calloc((size_t)n_clients, sizeof *ws);
    double t0 = now_s();
    for (int i = 0; i < n_clients; i++) {
        ws[i].index = i;
        pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
    }
    int ok = 0, bad = 0, lost = 0;
    for (int i = 0; i < n_clients; i++) {
        pthread_join(ws[i].th, NULL);
        ok += ws[i].ok;
        bad += ws[i].bad;
        lost += ws[i].lost;
    }
    double dt = now_s() - t0;
    printf("concurrent: %d clients x %d requests (window %d): %d equal, %d wrong, %d lost, "
           "%.2f s\n",
           n_clients, n_requests, window, ok, bad, lost, dt);
    free(ws);
    free_all(keep);
    return (bad || lost || ok != n_clients * n_requests) ? 1 : 0;
}
