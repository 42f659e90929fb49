/* The daemon: the server struct (the daemon's one global, `dmn_srv`), start-up, the I/O
 * thread's loop, shutdown. Run by the main thread, which becomes the I/O thread; the
 * worker thread reads the struct's read-only parts (conf, env, queue, stats, done_tx).
 * See dmn_server.c for the threads and who owns what.
 *
 * Exit codes of dmn_server_run(): 0 after a clean stop (SIGTERM/SIGINT), 1 when the
 * daemon could not start (model, sockets) or its worker thread ended while it ran. */
#ifndef NLP_DMN_SERVER_H
#define NLP_DMN_SERVER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/common.h"
#include "daemon/dmn_conf.h"
#include "daemon/dmn_transport.h"
#include "engine/engine.h"
#include "engine/tok.h"
#include "tasks/task.h"

#define DMN_VERSION "0.1.0"

struct dmn_stats;
struct dmn_queue;
struct dmn_req;

typedef struct dmn_server {
    int log_level;                 /* read by the log macros; set before threads start */
    volatile sig_atomic_t stop;    /* set by the signal handler only */

    dmn_conf conf;                 /* read-only once threads run */
    double t_start;                /* CLOCK_MONOTONIC seconds */

    /* the model, shared read-only by the worker (and the I/O thread for nothing) */
    eng_model *model;
    tok_model *tok;
    task_conf *tasks;
    task_env env;
    eng_ctx *ctx;                  /* created here, owned by the worker once it runs */

    struct dmn_queue *queue;
    struct dmn_stats *stats;

    /* I/O thread only */
    void *zctx;
    dmn_transport *transports[DMN_MAX_TRANSPORTS];   /* routes name them by index */
    int n_transports;
    void *done_rx;                 /* PAIR: finished requests from the worker */
    void *done_tx;                 /* PAIR: the worker's end (used by the worker only) */
    uint64_t next_seq;
    int in_flight;                 /* task requests queued or running */
    size_t queued_bytes;           /* what they hold (dmn_req.bytes): max_queued_bytes */
    int *client_docs;              /* [DMN_CLIENT_SLOTS] their documents, by client slot */
    double next_expiry;            /* earliest queued deadline (may be stale), 0: none */
    int shutting_down;
    pthread_t worker;
    int worker_started;
    /* 1 from before the worker starts until it returns: set to 0 by the worker as its
     * last act, read by the I/O thread (health, and the loop: a worker gone while the
     * daemon runs ends the daemon with exit code 1 rather than leave it accepting work
     * nobody computes). */
    atomic_int worker_running;
} dmn_server;

extern dmn_server dmn_srv;


/* Loads the model and tokenizer named by srv->conf, and the task config unless
 * srv->tasks is already set (main loads it early: its errors are config errors).
 * 0, or -1 with the reason in err. */
int dmn_server_load(dmn_server *srv, char *err, size_t errlen);
/* Binds the sockets, starts the worker, serves until a stop signal, drains, and tears
 * everything down. Returns the process exit code. */
int dmn_server_run(dmn_server *srv);
/* Frees what dmn_server_load made (safe on a partly loaded server). */
void dmn_server_unload(dmn_server *srv);

/* Prepares every document of a task request (tokenising, the task's jobs) into r->prep,
 * on the calling thread (the I/O thread, on receipt): a failure is the document's
 * outcome (out[d]), not the call's. 0, or -1 out of memory. */
int dmn_server_prepare(dmn_server *srv, struct dmn_req *r);

/* 1 while the daemon takes work: its worker runs and no stop signal came (health's ok;
 * a worker that ended makes it 0 until the daemon exits). I/O thread. */
int dmn_server_ok(dmn_server *srv);

/* Blocks SIGTERM/SIGINT in the calling thread (and the threads it creates later). */
void dmn_block_stop_signals(void);

/* The worker thread's body (dmn_worker.c); arg is the server. */
void *dmn_worker_main(void *arg);


#endif
