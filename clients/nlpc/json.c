/* nlpc: JSON renderings of responses (cJSON). The field names match the wire schema's
 * (Result, Health, Stats), so `nlpc --json` reads like the proto. One document's result
 * is common/cm_json.c's, which the daemon's JSON fronts print too. */
#include <math.h>
#include <stdio.h>

#include "clients/nlpc/nlpc_cli.h"
#include "common/common.h"

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
    cJSON_AddNumberToObject(o, k, (double)v);
}

/* Milliseconds to the microsecond: the clocks measure no finer, and 17 digits read as
 * noise. */
static void add_ms(cJSON *o, const char *k, double ms)
{
    cJSON_AddNumberToObject(o, k, round(ms * 1000.0) / 1000.0);
}

void nlpc_json_timings(cJSON *o, const nlpc_response *r)
{
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    if (!t) return;
    add_ms(t, "queue_ms", r->queue_ms);
    add_ms(t, "compute_ms", r->compute_ms);
    add_ms(t, "total_ms", r->total_ms);
}

static void add_queue(cJSON *o, const nlpc_queue_stats *q)
{
    cJSON *j = q->has ? cJSON_AddObjectToObject(o, "queue") : NULL;
    if (!j) return;
    cJSON_AddBoolToObject(j, "connected", q->connected);
    add_u64(j, "lag", q->lag);
    add_u64(j, "pending", q->pending);
    add_u64(j, "held", q->held);
    add_u64(j, "claims", q->claims);
    add_u64(j, "dead_letters", q->dead_letters);
    add_u64(j, "results", q->results);
    add_u64(j, "lost", q->lost);
    add_u64(j, "reconnects", q->reconnects);
}

static void add_strings(cJSON *o, const char *k, const char *const *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
}

/* One of Health.models, keys in ModelInfo's order. */
static cJSON *model_json(const nlpc_model_info *m)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "model_type", m->model_type);
    cJSON_AddStringToObject(o, "weights", m->weights);
    add_strings(o, "tasks", m->tasks, m->n_tasks);
    add_strings(o, "languages", m->languages, m->n_languages);
    add_u64(o, "resident_bytes", m->resident_bytes);
    add_u64(o, "requests", m->requests);
    cJSON_AddStringToObject(o, "state", m->state);
    return o;
}

cJSON *nlpc_json_response(nlpc_task task, const nlpc_response *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_u64(o, "id", r->id);
    cJSON_AddStringToObject(o, "status", nlpc_code_name(r->code));
    if (r->code != NLPC_OK) cJSON_AddStringToObject(o, "error", r->message);
    if (r->n_results) {
        cJSON *arr = cJSON_AddArrayToObject(o, "results");
        for (int i = 0; arr && i < r->n_results; i++)
            cJSON_AddItemToArray(arr, cm_json_result(NULL, task, &r->results[i]));
    }
    if (r->has_health) {
        cJSON *h = cJSON_AddObjectToObject(o, "health");
        cJSON_AddBoolToObject(h, "ok", r->health.ok);
        cJSON_AddBoolToObject(h, "shutting_down", r->health.shutting_down);
        cJSON_AddStringToObject(h, "model", r->health.model);
        cJSON_AddStringToObject(h, "version", r->health.version);
        cJSON_AddNumberToObject(h, "uptime_s", r->health.uptime_s);
        cJSON_AddStringToObject(h, "model_type", r->health.model_type);
        add_strings(h, "tasks", r->health.tasks, r->health.n_tasks);
        add_strings(h, "languages", r->health.languages, r->health.n_languages);
        cJSON_AddBoolToObject(h, "loading", r->loading);
        cJSON *ms = cJSON_AddArrayToObject(h, "models");
        for (int i = 0; ms && i < r->n_models; i++)
            cJSON_AddItemToArray(ms, model_json(&r->models[i]));
        add_queue(h, &r->health.queue);
    }
    if (r->has_stats) {
        const nlpc_stats *s = &r->stats;
        cJSON *j = cJSON_AddObjectToObject(o, "stats");
        add_u64(j, "requests", s->requests);
        add_u64(j, "documents", s->documents);
        add_u64(j, "batches", s->batches);
        cJSON_AddNumberToObject(j, "mean_batch_size", s->mean_batch_size);
        cJSON_AddNumberToObject(j, "queue_depth", s->queue_depth);
        cJSON_AddNumberToObject(j, "in_flight", s->in_flight);
        cJSON_AddNumberToObject(j, "peak_rows", s->peak_rows);
        cJSON_AddNumberToObject(j, "replies_dropped", (double)s->replies_dropped);
        cJSON_AddNumberToObject(j, "tokens_per_s", s->tokens_per_s);
        add_ms(j, "latency_p50_ms", s->latency_p50_ms);
        add_ms(j, "latency_p90_ms", s->latency_p90_ms);
        add_ms(j, "latency_p99_ms", s->latency_p99_ms);
        add_u64(j, "input_tokens", s->input_tokens);
        add_u64(j, "output_tokens", s->output_tokens);
        cJSON_AddNumberToObject(j, "uptime_s", s->uptime_s);
        cJSON *rs = cJSON_AddObjectToObject(j, "responses");
        for (int i = 0; rs && i < s->n_responses; i++)
            add_u64(rs, nlpc_code_name(s->responses[i].code), s->responses[i].count);
        add_queue(j, &s->queue);
    }
    if (task != NLPC_TASK_HEALTH && task != NLPC_TASK_STATS) nlpc_json_timings(o, r);
    return o;
}
