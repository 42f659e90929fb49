/* Requests and responses: the daemon's one protobuf module.
 *
 * Decoding and validation run in the I/O thread; dmn_req objects then move to the queue
 * and the worker thread (ownership moves with the pointer: exactly one thread holds a
 * request at a time), and come back to the I/O thread, which encodes the response and
 * frees the request. No other daemon file sees a protobuf type.
 *
 *   frame --dmn_req_decode--> dmn_req (validated) --worker fills res[]--> dmn_resp_task
 *   frame --dmn_req_decode--> code != OK  ----------------------------> dmn_resp_error */
#ifndef NLP_DMN_REQ_H
#define NLP_DMN_REQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "daemon/dmn_conf.h"
#include "daemon/dmn_route.h"
#include "tasks/task.h"

/* The wire's nlp.v1.StatusCode, value for value (checked at compile time). */
enum dmn_code {
    DMN_OK = 0,
    DMN_INVALID_ARGUMENT = 1,
    DMN_UNKNOWN_TASK = 2,
    DMN_INPUT_TOO_LONG = 3,
    DMN_OVERLOADED = 4,
    DMN_DEADLINE_EXCEEDED = 5,
    DMN_INTERNAL = 6,
    DMN_MESSAGE_TOO_LARGE = 7,
    DMN_TOO_MANY_DOCUMENTS = 8,
    DMN_SHUTTING_DOWN = 9,
    DMN_MALFORMED = 10,
    DMN_UNSUPPORTED = 11,   /* the model cannot do the task (TASK_EUNSUPPORTED) */
    DMN_UNKNOWN_MODEL = 12, /* Request.model names no model the daemon serves */
    DMN_N_CODES = 13,
};

const char *dmn_code_name(int code);

/* The wire code of a task's result status (enum task_status). */
int dmn_code_from_task(int task_status);

/* Why the daemon, not the task, ended a document: what the worker and the I/O thread
 * record, in their terms; the protocol module makes it a wire code. */
enum dmn_doc_end { DMN_DOC_DEADLINE = 1, DMN_DOC_INTERNAL = 2 };

enum dmn_req_kind { DMN_REQ_TASK = 1, DMN_REQ_HEALTH = 2, DMN_REQ_STATS = 3 };

/* One document's outcome, written by the thread that dequeued the document. */
typedef struct dmn_doc {
    int code;          /* enum dmn_code */
    char message[256]; /* reason when code != OK */
    task_result res;   /* valid when done and code == OK (or partial) */
    int has_res;       /* res must be cleared */
} dmn_doc;

/* A document ended by its task (status: enum task_status, reason: its message), or by
 * the daemon (enum dmn_doc_end): sets code and message. */
void dmn_doc_task_end(dmn_doc *d, int status, const char *reason);
void dmn_doc_end(dmn_doc *d, int why, const char *reason);

typedef struct dmn_req {
    uint64_t seq;         /* the daemon's number for it (logs) */
    uint64_t id;          /* the client's */
    int kind;             /* enum dmn_req_kind */
    int priority;         /* -100..100, higher first */
    unsigned deadline_ms; /* from receipt; 0: the server's default */
    int n_docs;
    task_input in;       /* template: every field but text; strings point into pb */
    const char **docs;   /* [n_docs] into pb */
    size_t *doc_lens;    /* [n_docs] */
    dmn_doc *out;        /* [n_docs] */
    void *pb;            /* the unpacked protobuf; owned; freed by dmn_req_free */
    const char **labels; /* [in.n_labels] into pb */

    /* times: CLOCK_MONOTONIC seconds */
    double t_recv, t_deadline, t_start, t_done;
    /* Documents not finished. A queued document belongs to whoever dequeues it (the
     * worker, or the I/O thread expiring it); the thread that takes n_left to 0 owns
     * the request from then on and has it answered. */
    atomic_int n_left;

    dmn_route route; /* where the reply goes (I/O thread) */
    /* Each document's engine jobs, prepared (tokenised) by the I/O thread on receipt so
     * that the engine's thread never stalls on it; the worker moves them out when it
     * takes the document. prep_rc[d] < 0: preparing failed, out[d] says why. */
    task_doc *prep;          /* [n_docs] */
    int *prep_rc;            /* [n_docs] */
    size_t bytes;            /* its frame and routing frames: what it holds until answered */
    unsigned client;         /* dmn_client_slot of its route (I/O thread) */
    const char *model_name;  /* Request.model (into pb), NULL: route by task/languages */
    struct dmn_model *model; /* the registry's model serving it (dmn_models.h) */
} dmn_req;

/* Decodes and validates one request frame of `len` bytes (the envelope is the caller's).
 * Returns DMN_OK with a new request in *out (the caller owns it; t_* and routing unset),
 * or the status code to answer with, *out NULL, the reason in err, and *id the request
 * id when it could be read (else 0). Never crashes on any input. Every string field of
 * the frame (sub-messages too) must be valid UTF-8 without NUL bytes, checked on the
 * wire against its length: else INVALID_ARGUMENT naming the field ("documents[1]: ...").
 * Strings in the request are then exactly what the client sent. */
int dmn_req_decode(const void *buf, size_t len, const dmn_limits *lim, int max_beams, dmn_req **out,
                   uint64_t *id, char *err, size_t errlen);

/* Frees everything the request holds (pb, results, envelope frames) and NULLs *r. */
void dmn_req_free(dmn_req **r);

/* The request-level status of a finished task request: OK, or the first failing
 * document's code with "document N: reason" in msg. */
int dmn_req_status(const dmn_req *r, char *msg, size_t cap);

/* The Redis queue's numbers (dmn_redis.c, docs/queue.md); enabled 0: no queue. */
typedef struct dmn_qstats {
    int enabled, connected;
    uint64_t lag, pending; /* the group's, as last read from Redis */
    uint32_t held;         /* entries this daemon holds */
    uint64_t claims, dead_letters, results, lost, reconnects;
} dmn_qstats;

typedef struct dmn_health {
    int ok, shutting_down;
    const char *model;
    const char *version;
    double uptime_s;
    dmn_qstats queue;
    /* The model (NULL: not reported): its family, the tasks it serves, its languages */
    const task_env *env;
    int loading;  /* a model is still loading */
    int n_models; /* every model of the registry (Health.models) */
    const struct dmn_model_info *models;
} dmn_health;

/* One model as health lists it (nlp.v1.ModelInfo); strings valid while it is encoded. */
typedef struct dmn_model_info {
    const char *name, *path, *state;
    const char *weights; /* "f32", ... */
    const task_env *env; /* family, tasks, languages; NULL while loading */
    unsigned tasks;      /* 1 << task_kind of the tasks it is routed (0: served) */
    uint64_t resident_bytes, requests;
} dmn_model_info;

typedef struct dmn_stats_snap dmn_stats_snap; /* dmn_stats.h */

/* Encoders: each returns a malloc'd packed Response in *buf (caller frees) and its
 * length, or -1 on allocation failure. Every string they put on the wire is valid UTF-8:
 * invalid bytes become U+FFFD, and status messages are cut to DMN_MAX_MESSAGE bytes at a
 * character boundary, whatever the caller passes. */
#define DMN_MAX_MESSAGE 1024
int dmn_resp_error(uint64_t id, int code, const char *msg, void **buf, size_t *len);
/* `now` is the send time (for timings.total_ms). */
int dmn_resp_task(const dmn_req *r, double now, void **buf, size_t *len);
int dmn_resp_health(uint64_t id, const dmn_health *h, void **buf, size_t *len);
int dmn_resp_stats(uint64_t id, const dmn_stats_snap *s, void **buf, size_t *len);

/* The fuzz target's name for cm_utf8_valid (common/common.h), the one implementation. */
static inline int dmn_utf8_valid(const char *s, size_t len, size_t *bad)
{
    return cm_utf8_valid(s, len, bad);
}

#endif
