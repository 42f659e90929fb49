/* nlpc: the command-line client. Shared between the one-shot commands (main.c), batch
 * mode (batch.c) and JSON rendering (json.c). Single-threaded. */
#ifndef NLP_NLPC_CLI_H
#define NLP_NLPC_CLI_H

#include <cjson/cJSON.h>

#include "clients/libnlpclient/nlpclient.h"

/* Exit codes (stable: scripts rely on them). */
enum {
    NLPC_EXIT_OK = 0,
    NLPC_EXIT_SERVER = 1,     /* the server answered with an error status */
    NLPC_EXIT_USAGE = 2,
    NLPC_EXIT_CONN = 3,       /* timeout or connection failure */
};

#define NLPC_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"
#define NLPC_DEFAULT_TIMEOUT_MS 30000
#define NLPC_MAX_LABELS 256

typedef struct nlpc_cli {
    const char *endpoint;
    int timeout_ms;
    int json;
    int window;               /* batch: requests in flight */
    int progress;             /* batch: -1 auto (tty), 0 off, 1 on */
    nlpc_request rq;          /* task, options; docs filled per call */
    char *labels_buf;         /* owns the strings rq.labels points at */
    const char *labels[NLPC_MAX_LABELS];
    const char *text;         /* positional TEXT, "-" or NULL (stdin) */
} nlpc_cli;

/* Splits "a,b,c" into out[] (pointers into buf, which is modified). Returns the count,
 * or -1 if there are more than max or one is empty. */
int nlpc_cli_split_labels(char *buf, const char **out, int max);

/* batch.c: runs `nlpc batch`; returns the exit code. */
int nlpc_cli_batch(nlpc_cli *cli);

/* json.c: adds one document's result (the fields its task produces) to `o`, or to a new
 * object when o is NULL; returns o (NULL when out of memory). */
cJSON *nlpc_json_result(cJSON *o, nlpc_task task, const nlpc_result *r);
cJSON *nlpc_json_response(nlpc_task task, const nlpc_response *r);

#endif
