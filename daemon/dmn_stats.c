/* Stats: called from the I/O thread and the worker thread; one mutex guards it all. */
#include "daemon/dmn_stats.h"

#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Prometheus histograms: fixed upper bounds, counts per bucket (not cumulative here). */
#define HIST_MAX 16
typedef struct hist {
    uint64_t n[HIST_MAX + 1]; /* [n_bounds] is +Inf */
    uint64_t count;
    double sum;
} hist;

static const double lat_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
};
static const double size_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
#define N_LAT ((int)(sizeof lat_bounds / sizeof lat_bounds[0]))
#define N_SIZE ((int)(sizeof size_bounds / sizeof size_bounds[0]))
#define N_TASK 6 /* task_kind: 0 (none) .. TASK_TEXT2TEXT */

static void hist_add(hist *h, const double *bounds, int nb, double v)
{
    int i = 0;
    while (i < nb && v > bounds[i]) i++;
    h->n[i]++;
    h->count++;
    h->sum += v;
}

struct dmn_stats {
    pthread_mutex_t mu;
    /* Prometheus: by task (task_kind) and code */
    uint64_t task_req[N_TASK][DMN_N_CODES], task_docs[N_TASK][DMN_N_CODES];
    hist lat_queue[N_TASK], lat_compute[N_TASK], lat_total[N_TASK];
    hist batch_size, decoder_rows;
    double t0;
    uint64_t requests, documents, batches, batch_seqs, in_tokens, out_tokens;
    int peak_rows;
    uint64_t replies_dropped;
    dmn_qstats queue;
    uint64_t by_code[DMN_N_CODES];
    double lat[DMN_LAT_RING]; /* ring of the most recent latencies, ms */
    int lat_n, lat_next;
    /* generated tokens per whole second, the last DMN_TPS_WINDOW seconds */
    uint64_t tps_tokens[DMN_TPS_WINDOW];
    long tps_sec[DMN_TPS_WINDOW]; /* which second each bucket holds */
    double scratch[DMN_LAT_RING]; /* snapshot sorting space (no allocation) */
};

dmn_stats *dmn_stats_new(double now)
{
    dmn_stats *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->t0 = now;
    for (int i = 0; i < DMN_TPS_WINDOW; i++) s->tps_sec[i] = -1;
    return s;
}

void dmn_stats_free(dmn_stats **s)
{
    if (!*s) return;
    pthread_mutex_destroy(&(*s)->mu);
    free(*s);
    *s = NULL;
}

void dmn_stats_request(dmn_stats *s)
{
    pthread_mutex_lock(&s->mu);
    s->requests++;
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_response(dmn_stats *s, int code, double latency_ms)
{
    pthread_mutex_lock(&s->mu);
    if (code >= 0 && code < DMN_N_CODES) s->by_code[code]++;
    if (latency_ms >= 0) {
        s->lat[s->lat_next] = latency_ms;
        s->lat_next = (s->lat_next + 1) % DMN_LAT_RING;
        if (s->lat_n < DMN_LAT_RING) s->lat_n++;
    }
    pthread_mutex_unlock(&s->mu);
}

uint64_t dmn_stats_reply_dropped(dmn_stats *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->replies_dropped;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void dmn_stats_set_queue(dmn_stats *s, const dmn_qstats *q)
{
    pthread_mutex_lock(&s->mu);
    s->queue = *q;
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_get_queue(dmn_stats *s, dmn_qstats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->queue;
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_rows(dmn_stats *s, int rows)
{
    pthread_mutex_lock(&s->mu);
    if (rows > s->peak_rows) s->peak_rows = rows;
    hist_add(&s->decoder_rows, size_bounds, N_SIZE, rows);
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_batch(dmn_stats *s, int n_seqs, uint64_t in_tokens, uint64_t out_tokens, double now)
{
    long sec = (long)floor(now - s->t0);
    int b = (int)(sec % DMN_TPS_WINDOW);
    pthread_mutex_lock(&s->mu);
    s->batches++;
    hist_add(&s->batch_size, size_bounds, N_SIZE, n_seqs);
    s->batch_seqs += (uint64_t)n_seqs;
    s->in_tokens += in_tokens;
    s->out_tokens += out_tokens;
    if (s->tps_sec[b] != sec) {
        s->tps_sec[b] = sec;
        s->tps_tokens[b] = 0;
    }
    s->tps_tokens[b] += out_tokens;
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_documents(dmn_stats *s, int n)
{
    pthread_mutex_lock(&s->mu);
    s->documents += (uint64_t)n;
    pthread_mutex_unlock(&s->mu);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double dmn_percentile(double *v, int n, double p)
{
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int rank = (int)ceil(p / 100.0 * n); /* nearest rank, 1-based */
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

void dmn_stats_snapshot(dmn_stats *s, dmn_stats_snap *o, double now)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&s->mu);
    o->requests = s->requests;
    o->documents = s->documents;
    memcpy(o->by_code, s->by_code, sizeof o->by_code);
    o->batches = s->batches;
    o->peak_rows = (uint32_t)s->peak_rows;
    o->replies_dropped = s->replies_dropped;
    o->queue = s->queue;
    o->mean_batch_size = s->batches ? (double)s->batch_seqs / (double)s->batches : 0;
    o->input_tokens = s->in_tokens;
    o->output_tokens = s->out_tokens;
    o->uptime_s = now - s->t0;

    /* Throughput over the complete seconds of the window plus the current one. */
    long sec = (long)floor(now - s->t0);
    uint64_t tok = 0;
    for (int i = 0; i < DMN_TPS_WINDOW; i++)
        if (s->tps_sec[i] >= 0 && s->tps_sec[i] > sec - DMN_TPS_WINDOW) tok += s->tps_tokens[i];
    double span = now - s->t0 < DMN_TPS_WINDOW ? now - s->t0 : DMN_TPS_WINDOW;
    o->tokens_per_s = span > 0 ? (double)tok / span : 0;

    int n = s->lat_n;
    memcpy(s->scratch, s->lat, sizeof(double) * (size_t)n);
    o->p50_ms = dmn_percentile(s->scratch, n, 50); /* sorts: later calls see it sorted */
    o->p90_ms = dmn_percentile(s->scratch, n, 90);
    o->p99_ms = dmn_percentile(s->scratch, n, 99);
    pthread_mutex_unlock(&s->mu);
}

/* ---- Prometheus ---- */

static int task_index(int kind) { return kind > 0 && kind < N_TASK ? kind : 0; }

void dmn_stats_task(dmn_stats *s, const dmn_req *r, int code, double now)
{
    int t = task_index(r->in.kind);
    /* A request expired in the queue never started: all of its time was queueing. */
    double done = r->t_done > 0 ? r->t_done : now;
    double start = r->t_start > 0 ? r->t_start : done;
    pthread_mutex_lock(&s->mu);
    if (code >= 0 && code < DMN_N_CODES) s->task_req[t][code]++;
    for (int i = 0; i < r->n_docs; i++)
        if (r->out[i].code >= 0 && r->out[i].code < DMN_N_CODES) s->task_docs[t][r->out[i].code]++;
    hist_add(&s->lat_queue[t], lat_bounds, N_LAT, start - r->t_recv);
    if (r->t_start > 0) hist_add(&s->lat_compute[t], lat_bounds, N_LAT, done - start);
    hist_add(&s->lat_total[t], lat_bounds, N_LAT, now - r->t_recv);
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_task_refused(dmn_stats *s, const dmn_req *r, int code)
{
    int t = task_index(r->in.kind);
    pthread_mutex_lock(&s->mu);
    if (code >= 0 && code < DMN_N_CODES) {
        s->task_req[t][code]++;
        s->task_docs[t][code] += (uint64_t)r->n_docs;
    }
    pthread_mutex_unlock(&s->mu);
}

static const char *const task_names[N_TASK] = { "none",     "summarize", "translate",
                                                "classify", "qa",        "text2text" };

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's samples; label is `task="x",` or "". */
static void hist_write(FILE *f, const char *name, const char *label, const hist *h,
                       const double *bounds, int nb)
{
    uint64_t cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += h->n[i];
        fprintf(f, "%s_bucket{%sle=\"%g\"} %llu\n", name, label, bounds[i],
                (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)h->count);
    size_t ll = strlen(label);
    if (ll) /* the label without its trailing comma */
        fprintf(f, "%s_sum{%.*s} %.9g\n%s_count{%.*s} %llu\n", name, (int)ll - 1, label, h->sum,
                name, (int)ll - 1, label, (unsigned long long)h->count);
    else
        fprintf(f, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                (unsigned long long)h->count);
}

static void task_hists(FILE *f, const char *name, const char *help, const hist *h)
{
    char label[48];
    head(f, name, "histogram", help);
    for (int t = 1; t < N_TASK; t++) {
        snprintf(label, sizeof label, "task=\"%s\",", task_names[t]);
        hist_write(f, name, label, &h[t], lat_bounds, N_LAT);
    }
}

void dmn_stats_prometheus(dmn_stats *s, FILE *f, double now)
{
    pthread_mutex_lock(&s->mu);
    head(f, "nlpd_requests_total", "counter",
         "Task requests answered, by task and status code (nlp.v1.StatusCode name).");
    for (int t = 0; t < N_TASK; t++)
        for (int c = 0; c < DMN_N_CODES; c++)
            if (s->task_req[t][c] || (t > 0 && c == DMN_OK))
                fprintf(f, "nlpd_requests_total{task=\"%s\",code=\"%s\"} %llu\n", task_names[t],
                        dmn_code_name(c), (unsigned long long)s->task_req[t][c]);
    head(f, "nlpd_documents_total", "counter",
         "Documents of task requests answered, by task and the document's status code.");
    for (int t = 0; t < N_TASK; t++)
        for (int c = 0; c < DMN_N_CODES; c++)
            if (s->task_docs[t][c] || (t > 0 && c == DMN_OK))
                fprintf(f, "nlpd_documents_total{task=\"%s\",code=\"%s\"} %llu\n", task_names[t],
                        dmn_code_name(c), (unsigned long long)s->task_docs[t][c]);
    head(f, "nlpd_responses_total", "counter",
         "Every response sent (task, health, stats, errors), by request-level status code.");
    for (int c = 0; c < DMN_N_CODES; c++)
        fprintf(f, "nlpd_responses_total{code=\"%s\"} %llu\n", dmn_code_name(c),
                (unsigned long long)s->by_code[c]);
    head(f, "nlpd_received_requests_total", "counter",
         "Request messages received on every transport (health and stats included).");
    fprintf(f, "nlpd_received_requests_total %llu\n", (unsigned long long)s->requests);
    task_hists(f, "nlpd_request_queue_seconds",
               "Time from receipt to the start of computation (all of it when expired queued).",
               s->lat_queue);
    task_hists(f, "nlpd_request_compute_seconds",
               "Time from the start of computation to the last document done.", s->lat_compute);
    task_hists(f, "nlpd_request_duration_seconds", "Time from receipt to the reply.", s->lat_total);
    head(f, "nlpd_input_tokens_total", "counter", "Encoder tokens read by engine calls.");
    fprintf(f, "nlpd_input_tokens_total %llu\n", (unsigned long long)s->in_tokens);
    head(f, "nlpd_output_tokens_total", "counter", "Tokens generated by engine calls.");
    fprintf(f, "nlpd_output_tokens_total %llu\n", (unsigned long long)s->out_tokens);
    head(f, "nlpd_batch_size", "histogram", "Sequences per engine call.");
    hist_write(f, "nlpd_batch_size", "", &s->batch_size, size_bounds, N_SIZE);
    head(f, "nlpd_decoder_rows", "histogram",
         "Decoder rows running at once, observed when a generation starts and when sequences join "
         "it.");
    hist_write(f, "nlpd_decoder_rows", "", &s->decoder_rows, size_bounds, N_SIZE);
    head(f, "nlpd_replies_dropped_total", "counter",
         "Replies dropped because their connection left too much unread.");
    fprintf(f, "nlpd_replies_dropped_total %llu\n", (unsigned long long)s->replies_dropped);
    head(f, "nlpd_uptime_seconds", "gauge", "Seconds since the daemon started serving.");
    fprintf(f, "nlpd_uptime_seconds %.3f\n", now - s->t0);
    pthread_mutex_unlock(&s->mu);
}
