/* Stats: called from the I/O thread and the worker thread; one mutex guards it all. */
#include "daemon/dmn_stats.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct dmn_stats {
    pthread_mutex_t mu;
    double t0;
    uint64_t requests, documents, batches, batch_seqs, in_tokens, out_tokens;
    int peak_rows;
    uint64_t replies_dropped;
    dmn_qstats queue;
    uint64_t by_code[DMN_N_CODES];
    double lat[DMN_LAT_RING];        /* ring of the most recent latencies, ms */
    int lat_n, lat_next;
    /* generated tokens per whole second, the last DMN_TPS_WINDOW seconds */
    uint64_t tps_tokens[DMN_TPS_WINDOW];
    long tps_sec[DMN_TPS_WINDOW];    /* which second each bucket holds */
    double scratch[DMN_LAT_RING];    /* snapshot sorting space (no allocation) */
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
    pthread_mutex_unlock(&s->mu);
}

void dmn_stats_batch(dmn_stats *s, int n_seqs, uint64_t in_tokens, uint64_t out_tokens,
                     double now)
{
    long sec = (long)floor(now - s->t0);
    int b = (int)(sec % DMN_TPS_WINDOW);
    pthread_mutex_lock(&s->mu);
    s->batches++;
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
    int rank = (int)ceil(p / 100.0 * n);   /* nearest rank, 1-based */
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
    o->p50_ms = dmn_percentile(s->scratch, n, 50);   /* sorts: later calls see it sorted */
    o->p90_ms = dmn_percentile(s->scratch, n, 90);
    o->p99_ms = dmn_percentile(s->scratch, n, 99);
    pthread_mutex_unlock(&s->mu);
}
