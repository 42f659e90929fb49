/* nlpc: the command-line client. Shared between the one-shot commands (main.c), batch
 * mode (batch.c) and JSON rendering (json.c). Single-threaded. */
#ifndef NLP_NLPC_CLI_H
#define NLP_NLPC_CLI_H

#include <cjson/cJSON.h>

#include "clients/libnlpclient/nlpclient.h"

/* Exit codes (stable: scripts rely on them). */
enum {
    NLPC_EXIT_OK = 0,
    NLPC_EXIT_SERVER = 1, /* the server answered with an error status */
    NLPC_EXIT_USAGE = 2,
    NLPC_EXIT_CONN = 3, /* timeout or connection failure; batch: the daemon is gone */
    /* batch stopped by SIGINT / SIGTERM with lines not written: 128 + the signal's
     * number (130, 143), what a shell reports for a process the signal ended. */
    NLPC_EXIT_SIGNAL_BASE = 128,
};

#define NLPC_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"
#define NLPC_DEFAULT_TIMEOUT_MS 30000
#define NLPC_MAX_LABELS 256
#define NLPC_DEFAULT_MAX_MESSAGE (1 << 20) /* nlpd's default limits.max_message_bytes */
#define NLPC_CONNECT_PROBE_MS 1500         /* health/stats: is anyone there at all */

typedef struct nlpc_cli {
    const char *endpoint;
    const char *server_key; /* --server-key: the daemon's public certificate (CURVE) */
    const char *key;        /* --key: this client's secret certificate (CURVE) */
    int timeout_ms;
    int json;
    int models;         /* `nlpc models`: health, printed as the model listing */
    int window;         /* batch: requests in flight */
    int progress;       /* batch: -1 auto (tty), 0 off, 1 on */
    long max_message;   /* request bytes; larger is refused before it is sent */
    int retries;        /* batch: OVERLOADED retries per line */
    int reconnect_ms;   /* batch: how long an unreachable daemon is waited for */
    int drain_ms;       /* batch: after SIGINT/SIGTERM, wait for replies this long */
    const char *output; /* batch: write here instead of stdout */
    int resume;         /* batch: keep the answered lines of `output`, skip them */
    nlpc_request rq;    /* task, options; docs filled per call */
    const char *model;  /* --model NAME: Request.model (NULL: the daemon picks) */
    char *labels_buf;   /* owns the strings rq.labels points at */
    const char *labels[NLPC_MAX_LABELS];
    const char *labels_arg; /* --labels as given: checked only when the task is classify */
    const char *text;       /* positional TEXT, "-" or NULL (stdin) */
    const char *queue;      /* batch --queue redis://HOST:PORT: through Redis (queue.c) */
    const char *stream;     /* --stream (default nlpd:requests) */
    const char *results;    /* --results (default nlpd:results) */
} nlpc_cli;

/* If text has nothing but whitespace, writes the message the daemon's task layer gives
 * for it ("summarize: the text is empty") into msg and returns 1, so the client says the
 * same thing on every path (argument, stdin, batch line) instead of whichever check the
 * daemon reaches first. */
int nlpc_cli_empty_text(nlpc_task task, const char *text, char *msg, size_t len);

/* Connects to cli->endpoint, as a CURVE client when --server-key and --key are given
 * (both, or neither). NULL with the reason in err. */
nlpc_client *nlpc_cli_client_new(const nlpc_cli *cli, char *err, size_t errlen);

/* batch.c: runs `nlpc batch`; returns the exit code. */
int nlpc_cli_batch(nlpc_cli *cli);
/* batch.c: one input line as `nlpc batch` reads it (cm_json_parse_object, the line's end
 * of line dropped): a JSON object in *out (the caller deletes it), or -1 with the reason
 * for the line's error in msg. */
int nlpc_cli_parse_line(const char *line, size_t len, cJSON **out, char *msg, size_t mlen);
/* queue.c: `nlpc batch --queue URL`: the same lines through a Redis stream. */
int nlpc_cli_queue_batch(nlpc_cli *cli);

/* json.c: a whole response as `nlpc --json` prints it (one document's result is
 * common/cm_json.c's cm_json_result); NULL when out of memory. */
cJSON *nlpc_json_response(nlpc_task task, const nlpc_response *r);
/* Adds r's "timings" {queue_ms, compute_ms, total_ms} to o, to the microsecond. */
void nlpc_json_timings(cJSON *o, const nlpc_response *r);

#endif
