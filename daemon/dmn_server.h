/* The daemon: the server struct (the daemon's one global, `dmn_srv`), start-up, the I/O
 * thread's loop, shutdown. Run by the main thread, which becomes the I/O thread; the
 * workers read the struct's read-only parts (conf, tasks, stats, done_tx under done_lock)
 * and their own model (dmn_models.h).
 * See dmn_server.c for the threads and who owns what.
 *
 * Exit codes of dmn_server_run(): 0 after a clean stop (SIGTERM/SIGINT), 1 when the
 * daemon could not start (a model, sockets) or a worker thread ended while it ran. */
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
struct dmn_registry;

typedef struct dmn_server {
    int log_level;              /* read by the log macros; set before threads start */
    volatile sig_atomic_t stop; /* set by the signal handler only */

    dmn_conf conf;  /* read-only once threads run */
    double t_start; /* CLOCK_MONOTONIC seconds */

    /* The models: the registry (dmn_models.h), each model with its own context, queue and
     * worker. tasks is the config's tasks group, shared read-only by every model. */
    struct dmn_registry *reg;
    task_conf *tasks;
    /* --model and --weights from the command line: they override the config's models and
     * weights, at start and on every SIGHUP reload. */
    struct {
        int n_models;
        dmn_model_conf models[DMN_MAX_MODELS];
    } cli_models;
    char cli_weights[16];
    int serving_started; /* the start-up models all loaded: "ready" was logged */

    struct dmn_stats *stats;

    /* I/O thread only */
    void *zctx;
    dmn_transport *transports[DMN_MAX_TRANSPORTS]; /* routes name them by index */
    int n_transports;
    void *done_rx; /* PAIR: finished requests from the workers */
    void *done_tx; /* PAIR: the workers' end (each under done_lock) */
    uint64_t next_seq;
    int in_flight;       /* task requests queued or running */
    size_t queued_bytes; /* what they hold (dmn_req.bytes): max_queued_bytes */
    int *client_docs;    /* [DMN_CLIENT_SLOTS] their documents, by client slot */
    double next_expiry;  /* earliest queued deadline (may be stale), 0: none */
    int shutting_down;
    /* The workers hand finished requests back through done_tx, one at a time. */
    pthread_mutex_t done_lock;
} dmn_server;

extern dmn_server dmn_srv;

/* Binds the sockets, loads the models (on the loader thread: health answers `loading`
 * meanwhile), starts their workers, serves until a stop signal, drains, and tears
 * everything down. Returns the process exit code (1 also when a model does not load). */
int dmn_server_run(dmn_server *srv);

/* Prepares every document of a task request (tokenising, the task's jobs) for its
 * model (r->model) into r->prep, on the calling thread (the I/O thread, on receipt): a
 * failure is the document's outcome (out[d]), not the call's. 0, or -1 out of memory. */
int dmn_server_prepare(dmn_server *srv, struct dmn_req *r);

/* 1 while the daemon takes work: a model serves, every serving model's worker runs and no
 * stop signal came (health's ok; a worker that ended makes it 0 until the daemon exits).
 * I/O thread. */
int dmn_server_ok(dmn_server *srv);

/* Blocks SIGTERM/SIGINT in the calling thread (and the threads it creates later). */
void dmn_block_stop_signals(void);

/* Documents queued for every model together. I/O thread. */
int dmn_server_depth(dmn_server *srv);

/* A worker thread's body (dmn_worker.c); arg is its model (dmn_model, dmn_models.h). */
void *dmn_worker_main(void *arg);

#endif
