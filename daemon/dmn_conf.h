/* Daemon configuration: conf/nlpd.conf (libconfig). Run by the main thread at start-up;
 * the resulting dmn_conf is read-only afterwards and shared by every thread.
 *
 * Table-driven: every key has a type, a default and (numbers) a min and a max. A key out
 * of range, of the wrong type or unknown in the daemon's groups is an error naming
 * file:line. The `tasks` group (and `@include "tasks.conf"`) belongs to the tasks module:
 * nlpd reads the file once and hands it to both (dmn_conf_from, task_conf_from), so the
 * two never see two versions of it; include paths are relative to the
 * directory of the config file. The file and what it includes may have 256 KiB together
 * (CM_CONF_MAX_BYTES), and an integer is range-checked as written, also past 64 bits
 * (common/cm_conf.h). */
#ifndef NLP_DMN_CONF_H
#define NLP_DMN_CONF_H

#include <stddef.h>

#define DMN_MAX_BINDS 16

typedef struct dmn_limits {
    int max_message_bytes;       /* request frame bytes; larger -> MESSAGE_TOO_LARGE */
    int max_documents;           /* documents per request; more -> TOO_MANY_DOCUMENTS */
    int max_input_tokens;        /* encoder tokens per document (EOS incl.) */
    int max_new_tokens;          /* upper bound for DecodingOptions.max_new_tokens */
    int max_labels;              /* classify labels per request */
    int queue_size;              /* documents waiting; beyond -> OVERLOADED */
    int default_deadline_ms;     /* when the request sets none */
    int max_envelope_bytes;      /* routing frames before the payload, all together */
    int max_reply_backlog_bytes; /* replies queued unread on one connection */
    int max_queued_bytes;        /* request frames and routing frames held by accepted work */
    int max_client_documents;    /* one client's documents accepted, not answered (0: any) */
} dmn_limits;

typedef struct dmn_batching {
    int max_batch_tokens; /* padded encoder tokens per engine call */
    int max_wait_ms;      /* how long a short queue waits to fill a batch */
    int max_rows;         /* decoder rows per engine call (sum of beams / labels) */
} dmn_batching;

/* queue = { ... }: jobs from a Redis stream (docs/queue.md). redis "" = no queue. */
typedef struct dmn_queue_conf {
    char redis[256];       /* redis://HOST:PORT or unix:///PATH */
    char stream[128];      /* jobs */
    char group[128];       /* consumer group (created with MKSTREAM when missing) */
    char consumer[128];    /* "" = <hostname>-<pid> */
    char results[128];     /* result entries */
    char dead_letter[128]; /* entries delivered max_deliveries times */
    int claim_idle_ms;     /* pending this long on any consumer: claimed */
    int max_deliveries;
} dmn_queue_conf;

/* http = { ... }: the HTTP/JSON front (dmn_http.c, docs/http.md). bind "" = off. */
typedef struct dmn_http_conf {
    char bind[256];         /* HOST:PORT */
    char tokens_file[1024]; /* bearer tokens, one a line; "" = no authentication */
    int open_health;        /* /healthz and /readyz need no token */
    int open_metrics;       /* /metrics needs no token */
    int max_connections;    /* open at once; more wait in the listen backlog */
    int timeout_s;          /* an idle (or slow) connection is closed after this */
} dmn_http_conf;

/* security = { ... }: CurveZMQ for the ROUTER (dmn_curve.c). */
typedef struct dmn_security_conf {
    char curve_secret_key_file[1024];  /* PREFIX_secret of nlpd --make-keypair; "" = none */
    char curve_allowed_keys_dir[1024]; /* public certificates of the clients admitted */
    int allow_insecure;                /* bind non-loopback tcp:// without keys */
} dmn_security_conf;

/* models = ( { name = ...; path = ...; weights = ...; tasks = [...]; }, ... ): the
 * registry (dmn_models.c, docs/daemon.md). The old `model` key is one entry named after
 * its directory. */
#define DMN_MAX_MODELS 16
typedef struct dmn_model_conf {
    char name[128];   /* what requests name (Request.model) */
    char path[1024];  /* checkpoint directory */
    char weights[16]; /* "" : the daemon's `weights` */
    unsigned tasks;   /* 1 << task_kind routed to it; 0: all it serves */
} dmn_model_conf;

typedef struct dmn_conf {
    char path[1024];      /* the file read ("" for built-in defaults) */
    char model_dir[1024]; /* `model`; after load: the first model's path */
    char weights[16];     /* default weight type of the models (`weights`) */
    int n_models;
    dmn_model_conf models[DMN_MAX_MODELS];
    int threads;   /* matrix-product threads; 0 = all cores */
    int log_level; /* enum dmn_log_level */
    int n_binds;
    char binds[DMN_MAX_BINDS][256]; /* ROUTER endpoints */
    char pull[256];                 /* pipeline: requests in ("" = none) */
    char push[256];                 /* pipeline: responses out */
    int pipeline_connect;           /* 1: connect pull/push (worker); 0: bind them */
    int linger_ms;                  /* how long replies may flush at exit */
    dmn_limits limits;
    dmn_batching batching;
    dmn_http_conf http;         /* the HTTP/JSON front (dmn_http.c) */
    dmn_security_conf security; /* CurveZMQ (dmn_curve.c) */
    dmn_queue_conf queue;       /* Redis Streams queue mode (dmn_redis.c) */
} dmn_conf;

/* Built-in defaults (what an empty config file gives). */
void dmn_conf_defaults(dmn_conf *c);
/* Which config file nlpd reads: `given` (-c) when set, else $NLPD_CONF when set, else
 * /etc/nlpd/nlpd.conf when it exists, else conf/nlpd.conf of the source tree the binary
 * sits in (a directory up to three levels above /proc/self/exe holding conf/nlpd.conf
 * and daemon/main.c). The path goes to out. Returns 0, or -1 with what was tried in err. */
int dmn_conf_find(const char *given, char *out, size_t cap, char *err, size_t errlen);
#ifndef DMN_CONF_ETC
#define DMN_CONF_ETC "/etc/nlpd/nlpd.conf"
#endif
/* Reads `path` over the defaults. Returns 0, or -1 with "file:line: reason" in err.
 * Relative paths in it (model, http.tokens_file, security's files) are taken relative to
 * the file that sets them, not the working directory. */
int dmn_conf_load(dmn_conf *c, const char *path, char *err, size_t errlen);
/* The same from a file already read (common/cm_conf.h), named `path` in messages: nlpd
 * reads its file once and hands it to this and to task_conf_from(). */
struct cm_conf;
int dmn_conf_from(dmn_conf *c, const struct cm_conf *cf, const char *path, char *err,
                  size_t errlen);
/* Cross-key checks (also after command-line overrides). 0 or -1 with the reason. */
int dmn_conf_check(const dmn_conf *c, char *err, size_t errlen);
/* Appends one ROUTER endpoint; -1 when the list is full or the endpoint too long. */
int dmn_conf_add_bind(dmn_conf *c, const char *endpoint, char *err, size_t errlen);
/* Appends one model (name "" : its directory's name); -1 with the reason naming it
 * for a duplicate name, an empty path, an unknown weight type or a full list. */
int dmn_conf_add_model(dmn_conf *c, const char *name, const char *path, const char *weights,
                       unsigned tasks, char *err, size_t errlen);
/* Writes the effective settings, one "key = value" line each (for --check-config). */
void dmn_conf_dump(const dmn_conf *c, char *out, size_t cap);

#endif
