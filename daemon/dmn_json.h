/* The HTTP front's JSON: request bodies to wire requests, wire responses to the JSON
 * `nlpc batch` prints (docs/http.md). Pure functions over their arguments: any thread
 * (the HTTP transport calls them from libmicrohttpd's thread).
 *
 * The wire format goes through libnlpclient's nlpc_request_pack() and
 * nlpc_response_decode() (the transport-neutral half of the client library), so this
 * module sees no protobuf type: dmn_req.c stays the daemon's one protobuf module. */
#ifndef NLP_DMN_JSON_H
#define NLP_DMN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "clients/libnlpclient/nlpclient.h"
#include "common/common.h"

/* How a body was asked and how its answer is shaped. */
typedef enum dmn_json_shape {
    DMN_JSON_ONE = 1,        /* {"text": ...}: one result object, nlpc batch's line */
    DMN_JSON_MANY = 2,       /* {"documents": [...]}: {"status", "results": [...]} */
    DMN_JSON_LIBRE_ONE = 3,  /* LibreTranslate, "q" a string: {"translatedText": s} */
    DMN_JSON_LIBRE_MANY = 4, /* "q" an array: {"translatedText": [...]} */
} dmn_json_shape;

typedef struct dmn_json_req {
    nlpc_task task;
    dmn_json_shape shape;
    cJSON *id;     /* the body's "id", echoed (owned; NULL when none) */
    char *api_key; /* LibreTranslate's "api_key" (owned; NULL when none) */
    uint8_t *pb;   /* the packed nlp.v1.Request (owned) */
    size_t pb_len;
} dmn_json_req;

/* Parses a body (len bytes, not NUL-terminated) for `task` (NLPC_TASK_TRANSLATE with
 * libre set: LibreTranslate's /translate) and packs the request with wire id `id`.
 * 0, or the nlp.v1 status code to answer (INVALID_ARGUMENT: not UTF-8, not JSON, a
 * wrong type or a missing field; the reason in err). Fills *out; the caller frees it
 * with dmn_json_req_clear() either way. */
int dmn_json_parse(nlpc_task task, int libre, const char *body, size_t len, uint64_t id,
                   dmn_json_req *out, char *err, size_t errlen);
void dmn_json_req_clear(dmn_json_req *r);

/* Renders a packed nlp.v1.Response for a request parsed by dmn_json_parse() (task,
 * shape and id are read from rq). Returns a malloc'd JSON text and the response's
 * status code in *code (a frame that does not decode gives INTERNAL); NULL when out of
 * memory. */
char *dmn_json_render(const dmn_json_req *rq, const void *frame, size_t len, int *code);

/* {"status": NAME, "error": msg} (LibreTranslate: {"error": msg}), with the id when
 * rq has one. malloc'd; NULL when out of memory. rq may be NULL. */
char *dmn_json_error(const dmn_json_req *rq, int code, const char *msg);

/* The HTTP status for an nlp.v1 status code: 200, 400, 404, 413, 429, 500, 503, 504. */
int dmn_json_http_status(int code);
/* One document's result into o, as `nlpc batch` prints it: common/cm_json.c's renderer,
 * under the name the queue's json results (dmn_redis.c) call it by. */
static inline cJSON *dmn_json_result(cJSON *o, int task, const nlpc_result *r)
{
    return cm_json_result(o, task, r);
}

#endif
