/* Counters, latency percentiles, throughput. Written by the I/O thread (requests,
 * responses, latencies) and the worker thread (batches, tokens); read by the I/O thread
 * for StatsRequest. One mutex; every call is O(1) except the snapshot, which sorts the
 * latency ring (1024 doubles) and is only taken on request. */
#ifndef NLP_DMN_STATS_H
#define NLP_DMN_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "daemon/dmn_req.h"

#define DMN_LAT_RING 1024 /* latencies kept for percentiles: the most recent */
#define DMN_TPS_WINDOW 10 /* seconds of throughput history */

typedef struct dmn_stats dmn_stats;

struct dmn_stats_snap {
    uint64_t requests;
    uint64_t documents;
    uint64_t by_code[DMN_N_CODES]; /* responses by request-level code */
    uint32_t queue_depth;
    uint32_t in_flight;
    double tokens_per_s;
    double p50_ms, p90_ms, p99_ms; /* 0 when no latency recorded yet */
    uint64_t batches;
    double mean_batch_size;
    uint64_t input_tokens, output_tokens;
    double uptime_s;
    uint32_t peak_rows;
    uint64_t replies_dropped; /* to peers past limits.max_reply_backlog_bytes */
    dmn_qstats queue;         /* the Redis queue's (dmn_redis.c) */
};

/* `now`: CLOCK_MONOTONIC seconds at start. NULL on allocation failure. */
dmn_stats *dmn_stats_new(double now);
void dmn_stats_free(dmn_stats **s);

void dmn_stats_request(dmn_stats *s);
/* A response sent; latency_ms < 0 keeps it out of the percentiles (health, errors). */
void dmn_stats_response(dmn_stats *s, int code, double latency_ms);
/* One engine call of n_seqs sequences; the tokens it read and generated. */
void dmn_stats_batch(dmn_stats *s, int n_seqs, uint64_t in_tokens, uint64_t out_tokens, double now);
/* Decoder rows running at once in a generation (the most is kept). */
void dmn_stats_rows(dmn_stats *s, int rows);
void dmn_stats_documents(dmn_stats *s, int n);
/* A reply dropped because its peer left too much unread; returns the total so far. */
uint64_t dmn_stats_reply_dropped(dmn_stats *s);
/* The Redis queue's numbers: set by its transport, read by health and the snapshot. */
void dmn_stats_set_queue(dmn_stats *s, const dmn_qstats *q);
void dmn_stats_get_queue(dmn_stats *s, dmn_qstats *out);
/* Fills everything but queue_depth and in_flight (the server's). */
void dmn_stats_snapshot(dmn_stats *s, dmn_stats_snap *out, double now);

/* ---- Prometheus (GET /metrics, docs/http.md) ----
 * A task request answered (any code, I/O thread): counts it and its documents by task
 * and code, and observes its queue, compute and total seconds (r's t_* times). */
void dmn_stats_task(dmn_stats *s, const dmn_req *r, int code, double now);
/* A task request refused before it was queued (queue full, stopping). */
void dmn_stats_task_refused(dmn_stats *s, const dmn_req *r, int code);
/* Writes every counter and histogram in the Prometheus text format 0.0.4 (HELP, TYPE,
 * samples; histograms cumulative with +Inf, _sum and _count). Any thread. */
void dmn_stats_prometheus(dmn_stats *s, FILE *f, double now);

/* Nearest-rank percentile (0 < p <= 100) of v[0..n), sorting v in place; 0 if n == 0. */
double dmn_percentile(double *v, int n, double p);

#endif
