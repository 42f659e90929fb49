/* libnlpclient: a C client for nlpd (ZeroMQ DEALER socket, nlp.v1 protobuf frames).
 *
 *   char err[256];
 *   nlpc_client *c = nlpc_client_new("tcp://127.0.0.1:5555", err, sizeof err);
 *   nlpc_request rq;
 *   nlpc_request_init(&rq, NLPC_TASK_SUMMARIZE);
 *   const char *doc = "...";
 *   rq.docs = &doc; rq.n_docs = 1;
 *   nlpc_response *r = NULL;
 *   if (nlpc_call(c, &rq, 5000, &r) == 0 && r->code == NLPC_OK) puts(r->results[0].text);
 *   nlpc_response_free(&r);
 *   nlpc_client_destroy(&c);
 *
 * Many requests may be in flight on one client: nlpc_send() returns each request's id at
 * once, nlpc_recv() hands back replies in the order they arrive (not the order sent),
 * each carrying its id. nlpc_call() sends one request and waits for its reply; replies to
 * other in-flight requests that arrive meanwhile are kept and returned by later
 * nlpc_recv() calls, so both styles can be mixed.
 *
 * Threads: a client (like the ZeroMQ socket inside it) belongs to one thread at a time.
 * Use one client per thread; clients are cheap. Protobuf types never appear here.
 *
 * Errors: functions return 0 (or an id > 0) on success and a negative NLPC_E* code on
 * failure; nlpc_client_error() gives the message of the client's last failure. A server
 * answer with a non-OK status is NOT a call failure: the call returns 0 and the response
 * carries the code and the server's message. */
#ifndef NLP_NLPCLIENT_H
#define NLP_NLPCLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct nlpc_client nlpc_client;

/* Call failures (negative). Values are stable. */
enum {
    NLPC_EINVAL = -1,   /* bad argument (programmer error or bad user option) */
    NLPC_ETIMEOUT = -2, /* no reply within the time given (daemon down or busy) */
    NLPC_ECONN = -3,    /* socket error: endpoint unusable, send failed */
    NLPC_EPROTO = -4,   /* the reply is not a valid Response */
    NLPC_ENOMEM = -5,
    NLPC_ETOOBIG = -6, /* the packed request is over nlpc_client_set_max_message() */
};

/* The nlpd release these clients belong to (the daemon's `nlpd --version`). */
#define NLPC_VERSION "0.1.0"

/* Server status codes: the values of nlp.v1.StatusCode, mirrored so callers need no
 * protobuf header. Only grow. */
enum {
    NLPC_OK = 0,
    NLPC_INVALID_ARGUMENT = 1,
    NLPC_UNKNOWN_TASK = 2,
    NLPC_INPUT_TOO_LONG = 3,
    NLPC_OVERLOADED = 4,
    NLPC_DEADLINE_EXCEEDED = 5,
    NLPC_INTERNAL = 6,
    NLPC_MESSAGE_TOO_LARGE = 7,
    NLPC_TOO_MANY_DOCUMENTS = 8,
    NLPC_SHUTTING_DOWN = 9,
    NLPC_MALFORMED = 10,
    NLPC_UNSUPPORTED = 11,   /* a task the model cannot do (qa on BART, ...) */
    NLPC_UNKNOWN_MODEL = 12, /* the request names no model the daemon serves */
};

typedef enum nlpc_task {
    NLPC_TASK_NONE = 0,
    NLPC_TASK_SUMMARIZE = 1,
    NLPC_TASK_TRANSLATE = 2,
    NLPC_TASK_CLASSIFY = 3,
    NLPC_TASK_QA = 4,
    NLPC_TASK_TEXT2TEXT = 5,
    NLPC_TASK_HEALTH = 6,
    NLPC_TASK_STATS = 7,
} nlpc_task;

/* Decoding options. Integer fields < 0 and float fields that are NAN mean "unset: the
 * server's default"; nlpc_request_init() sets them all unset. */
typedef struct nlpc_decode_opts {
    int max_new_tokens, min_new_tokens, num_beams, num_return_sequences;
    int no_repeat_ngram_size, top_k;
    float length_penalty, repetition_penalty, temperature, top_p;
    int64_t seed;          /* < 0: unset */
    int return_hypotheses; /* 0/1 */
} nlpc_decode_opts;

/* A request, as plain C. All pointers are borrowed: they must stay valid only for the
 * duration of nlpc_send()/nlpc_call() (the request is packed before they return). */
typedef struct nlpc_request {
    nlpc_task task;
    const char *const *docs; /* [n_docs] documents (qa: the contexts) */
    int n_docs;
    const char *source_lang;   /* translate; NULL: server default */
    const char *target_lang;   /* translate; required */
    const char *const *labels; /* classify: [n_labels] */
    int n_labels;
    int multi_label;      /* classify */
    const char *question; /* qa */
    nlpc_decode_opts opts;
    uint32_t deadline_ms; /* 0: server default */
    int priority;         /* -100..100; 0 default */
} nlpc_request;

typedef struct nlpc_label {
    const char *label;
    double score; /* probability */
} nlpc_label;

typedef struct nlpc_hyp {
    const char *text;
    double score;
} nlpc_hyp;

/* One document's result. Strings are never NULL ("" when absent) and are owned by the
 * response that holds them. */
typedef struct nlpc_result {
    int code; /* NLPC_OK or a server status code */
    const char *message;
    const char *text;   /* summarize / translate / text2text */
    const char *answer; /* qa */
    double score;
    int n_labels; /* classify, best first */
    const nlpc_label *labels;
    int n_hyps; /* when return_hypotheses */
    const nlpc_hyp *hyps;
    unsigned input_tokens, output_tokens;
    int truncated;
} nlpc_result;

typedef struct nlpc_code_count {
    int code;
    uint64_t count;
} nlpc_code_count;

/* A daemon in queue mode (Redis Streams, docs/queue.md); has 0 for one without. */
typedef struct nlpc_queue_stats {
    int has, connected;
    uint64_t lag, pending; /* the consumer group's */
    unsigned held;         /* entries this daemon holds */
    uint64_t claims, dead_letters, results, lost, reconnects;
} nlpc_queue_stats;

typedef struct nlpc_health {
    int ok, shutting_down;
    const char *model, *version;
    double uptime_s;
    nlpc_queue_stats queue;
    const char *model_type;   /* the model's family: "t5", "bart", "marian", ... ("" if old) */
    const char *const *tasks; /* the tasks it serves */
    int n_tasks;
    const char *const *languages; /* translate: the language codes it takes */
    int n_languages;
} nlpc_health;

typedef struct nlpc_stats {
    uint64_t requests, documents, batches, input_tokens, output_tokens;
    unsigned queue_depth, in_flight;
    unsigned peak_rows;       /* most decoder rows the daemon has run at once */
    uint64_t replies_dropped; /* replies to connections that left too much unread */
    double tokens_per_s, latency_p50_ms, latency_p90_ms, latency_p99_ms;
    double mean_batch_size, uptime_s;
    int n_responses;
    const nlpc_code_count *responses;
    nlpc_queue_stats queue;
} nlpc_stats;

/* One model the daemon serves (Health.models; `nlpc models`). Strings are never NULL. */
typedef struct nlpc_model_info {
    const char *name;         /* what a request names it by (nlpc_send_model) */
    const char *path;         /* its checkpoint directory */
    const char *model_type;   /* family: "t5", "bart", "marian", ... */
    const char *weights;      /* how its weights are held: "f32", "bf16", "f16", "int8" */
    const char *const *tasks; /* the tasks it serves */
    int n_tasks;
    const char *const *languages; /* translate: the language codes it takes */
    int n_languages;
    uint64_t resident_bytes; /* weight memory it keeps resident */
    uint64_t requests;       /* documents it has served */
    const char *state;       /* "loading", "serving", "draining" */
} nlpc_model_info;

/* A reply. Owned by the caller; free with nlpc_response_free(). */
typedef struct nlpc_response {
    uint64_t id;
    int code; /* request-level status */
    const char *message;
    int n_results;
    const nlpc_result *results; /* [n_results], one per document, in order */
    double queue_ms, compute_ms, total_ms;
    int has_health;
    nlpc_health health;
    int has_stats;
    nlpc_stats stats;
    void *priv; /* the decoded frame the strings point into */
    /* Health of a daemon with a model registry (since 0.2). Appended, not in nlpc_health:
     * the library allocates responses, so programs built before keep their offsets. */
    int loading; /* a model is still loading (health.ok is 0 until one serves) */
    int n_models;
    const nlpc_model_info *models; /* every model the daemon serves, in its config's order */
} nlpc_response;

/* Connects a DEALER socket to `endpoint` (several may be given, separated by commas: the
 * requests are then spread round-robin over those connected; a send waits up to 10 s for
 * one to be). Connection is asynchronous: a daemon that is not there shows up as
 * NLPC_ETIMEOUT later. NULL on error, reason in err. */
nlpc_client *nlpc_client_new(const char *endpoint, char *err, size_t errlen);
/* Closes the socket (pending sends are dropped after at most 200 ms) and NULLs *c. */
void nlpc_client_destroy(nlpc_client **c);

/* CurveZMQ (a daemon with security.curve_secret_key_file): the keys as Z85 text (40
 * characters each). nlpc_client_new_curve() is nlpc_client_new() whose connections are
 * CURVE clients of server_public with the client's key pair; keys NULL is plain. A
 * daemon that does not admit the key answers nothing (requests time out). */
typedef struct nlpc_curve_keys {
    const char *server_public;
    const char *client_public;
    const char *client_secret;
} nlpc_curve_keys;
nlpc_client *nlpc_client_new_curve(const char *endpoint, const nlpc_curve_keys *keys, char *err,
                                   size_t errlen);
/* Reads a CZMQ certificate (zcert_save's format, as nlpd --make-keypair writes): its
 * public key and, when sec is not NULL, its secret key ("" if the file has none), 41
 * bytes each with the NUL. 0, or NLPC_EINVAL with the reason in err. */
int nlpc_cert_read(const char *path, char *pub, char *sec, char *err, size_t errlen);
/* Message of the client's last failure ("" if none). Valid until the next call. */
const char *nlpc_client_error(const nlpc_client *c);
/* Number of requests sent whose replies have not been returned yet. */
int nlpc_in_flight(const nlpc_client *c);

/* Requests whose packed frame is over `bytes` are refused by nlpc_send()/nlpc_call()
 * with NLPC_ETOOBIG before anything is sent; 0 (the default) sends any size. Set it to
 * the daemon's limits.max_message_bytes: the daemon answers a larger frame
 * MESSAGE_TOO_LARGE, but ZeroMQ closes the connection on one over 4x that limit, and
 * every reply owed on the connection is lost with it. */
void nlpc_client_set_max_message(nlpc_client *c, size_t bytes);

/* The connection as the socket sees it. ZeroMQ reconnects by itself, and a ROUTER drops
 * replies to a connection that is gone: a request in flight when `disconnects` grows
 * will get no reply and must be sent again. Counts are since nlpc_client_new(). */
typedef struct nlpc_conn_info {
    int connected;        /* endpoints connected now */
    uint64_t connects;    /* connections made (reconnections included) */
    uint64_t disconnects; /* connections lost */
} nlpc_conn_info;
/* Fills *out from the connection events seen so far (does not block). 0, or
 * NLPC_EINVAL when the events are not available (then *out says connected). */
int nlpc_client_conn(nlpc_client *c, nlpc_conn_info *out);
/* Waits up to timeout_ms for at least one endpoint to be connected: 0, or
 * NLPC_ETIMEOUT with the reason in nlpc_client_error(). A quick way to tell "no daemon
 * there" from "the daemon is slow" before waiting for a reply. */
int nlpc_client_wait_connected(nlpc_client *c, int timeout_ms);

void nlpc_request_init(nlpc_request *rq, nlpc_task task);

/* Sends the request without waiting. Returns its id (> 0; increasing per client), or a
 * negative NLPC_E* code (NLPC_ETOOBIG: nothing was sent, the id is not used). */
int64_t nlpc_send(nlpc_client *c, const nlpc_request *rq);
/* Waits up to timeout_ms (< 0: forever) for the next reply and stores it in *out (the
 * caller frees it). 0 on success, NLPC_ETIMEOUT, NLPC_EPROTO (a frame that is not a
 * Response was dropped) or another negative code. */
int nlpc_recv(nlpc_client *c, int timeout_ms, nlpc_response **out);
/* nlpc_send() then wait up to timeout_ms for that request's reply; replies to other
 * requests are kept for nlpc_recv(). */
int nlpc_call(nlpc_client *c, const nlpc_request *rq, int timeout_ms, nlpc_response **out);

void nlpc_response_free(nlpc_response **r);

/* The same, for one model by name (Request.model; `nlpc models` lists the names): a
 * daemon without it answers NLPC_UNKNOWN_MODEL. model NULL or "": the daemon picks by
 * task and language pair, as the calls above do. A function of its own, not a field of
 * nlpc_request: programs built against the smaller struct keep working (since 0.2). */
int64_t nlpc_send_model(nlpc_client *c, const nlpc_request *rq, const char *model);
int nlpc_call_model(nlpc_client *c, const nlpc_request *rq, const char *model, int timeout_ms,
                    nlpc_response **out);

/* The wire format without the DEALER socket, for other transports (the daemon's
 * PUSH/PULL pipeline, files, queues). nlpc_request_pack() writes the packed Request with
 * `id` into a malloc'd buffer (*buf, *len; the caller frees): 0 or NLPC_EINVAL (with
 * the reason in err) / NLPC_ENOMEM. nlpc_response_decode() turns one frame into a
 * response the caller frees: 0, or NLPC_EPROTO for bytes that are not a Response. */
int nlpc_request_pack(const nlpc_request *rq, uint64_t id, uint8_t **buf, size_t *len, char *err,
                      size_t errlen);
int nlpc_response_decode(const void *frame, size_t len, nlpc_response **out);
/* nlpc_request_pack() with Request.model set (NULL or "": none). */
int nlpc_request_pack_model(const nlpc_request *rq, const char *model, uint64_t id, uint8_t **buf,
                            size_t *len, char *err, size_t errlen);

const char *nlpc_version(void);                  /* NLPC_VERSION of the library linked */
const char *nlpc_strerror(int err);              /* NLPC_E* */
const char *nlpc_code_name(int code);            /* "OK", "INVALID_ARGUMENT", ... */
const char *nlpc_task_name(nlpc_task task);      /* "summarize", ... */
nlpc_task nlpc_task_from_name(const char *name); /* NLPC_TASK_NONE if unknown */

#endif
