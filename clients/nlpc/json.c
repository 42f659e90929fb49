/* nlpc: JSON renderings of results and responses (cJSON). The field names match the
 * wire schema's (Result, Health, Stats), so `nlpc --json` reads like the proto. */
#include <stdio.h>

#include "clients/nlpc/nlpc_cli.h"

static int is_generation(nlpc_task t)
{
    return t == NLPC_TASK_SUMMARIZE || t == NLPC_TASK_TRANSLATE || t == NLPC_TASK_TEXT2TEXT;
}

cJSON *nlpc_json_result(cJSON *o, nlpc_task task, const nlpc_result *r)
{
    if (!o) o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "status", nlpc_code_name(r->code));
    if (r->code != NLPC_OK) {
        cJSON_AddStringToObject(o, "error", r->message);
        return o;
    }
    if (is_generation(task)) cJSON_AddStringToObject(o, "text", r->text);
    if (task == NLPC_TASK_QA) cJSON_AddStringToObject(o, "answer", r->answer);
    if (task == NLPC_TASK_CLASSIFY) {
        cJSON *arr = cJSON_AddArrayToObject(o, "labels");
        for (int i = 0; arr && i < r->n_labels; i++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "label", r->labels[i].label);
            cJSON_AddNumberToObject(l, "score", r->labels[i].score);
            cJSON_AddItemToArray(arr, l);
        }
    } else {
        cJSON_AddNumberToObject(o, "score", r->score);
    }
    if (r->n_hyps) {
        cJSON *arr = cJSON_AddArrayToObject(o, "hypotheses");
        for (int i = 0; arr && i < r->n_hyps; i++) {
            cJSON *h = cJSON_CreateObject();
            cJSON_AddStringToObject(h, "text", r->hyps[i].text);
            cJSON_AddNumberToObject(h, "score", r->hyps[i].score);
            cJSON_AddItemToArray(arr, h);
        }
    }
    cJSON_AddNumberToObject(o, "input_tokens", r->input_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", r->output_tokens);
    cJSON_AddBoolToObject(o, "truncated", r->truncated);
    return o;
}

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
    cJSON_AddNumberToObject(o, k, (double)v);
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
            cJSON_AddItemToArray(arr, nlpc_json_result(NULL, task, &r->results[i]));
    }
    if (r->has_health) {
        cJSON *h = cJSON_AddObjectToObject(o, "health");
        cJSON_AddBoolToObject(h, "ok", r->health.ok);
        cJSON_AddBoolToObject(h, "shutting_down", r->health.shutting_down);
        cJSON_AddStringToObject(h, "model", r->health.model);
        cJSON_AddStringToObject(h, "version", r->health.version);
        cJSON_AddNumberToObject(h, "uptime_s", r->health.uptime_s);
        cJSON_AddStringToObject(h, "model_type", r->health.model_type);
        cJSON *t = cJSON_AddArrayToObject(h, "tasks");
        for (int i = 0; t && i < r->health.n_tasks; i++)
            cJSON_AddItemToArray(t, cJSON_CreateString(r->health.tasks[i]));
        cJSON *l = cJSON_AddArrayToObject(h, "languages");
        for (int i = 0; l && i < r->health.n_languages; i++)
            cJSON_AddItemToArray(l, cJSON_CreateString(r->health.languages[i]));
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
        cJSON_AddNumberToObject(j, "latency_p50_ms", s->latency_p50_ms);
        cJSON_AddNumberToObject(j, "latency_p90_ms", s->latency_p90_ms);
        cJSON_AddNumberToObject(j, "latency_p99_ms", s->latency_p99_ms);
        add_u64(j, "input_tokens", s->input_tokens);
        add_u64(j, "output_tokens", s->output_tokens);
        cJSON_AddNumberToObject(j, "uptime_s", s->uptime_s);
        cJSON *rs = cJSON_AddObjectToObject(j, "responses");
        for (int i = 0; rs && i < s->n_responses; i++)
            add_u64(rs, nlpc_code_name(s->responses[i].code), s->responses[i].count);
        add_queue(j, &s->queue);
    }
    if (task != NLPC_TASK_HEALTH && task != NLPC_TASK_STATS) {
        cJSON *t = cJSON_AddObjectToObject(o, "timings");
        cJSON_AddNumberToObject(t, "queue_ms", r->queue_ms);
        cJSON_AddNumberToObject(t, "compute_ms", r->compute_ms);
        cJSON_AddNumberToObject(t, "total_ms", r->total_ms);
    }
    return o;
}
