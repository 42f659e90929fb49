/* The model registry: the models one daemon serves (nlpd.conf models = (...), or the old
 * single `model`), each with its own engine context, queue and worker thread; routing of
 * a request to one of them; loading on a loader thread (the daemon answers health, with
 * `loading`, before its models are ready); SIGHUP reloading the list. See
 * docs/daemon.md ("Many models").
 *
 * Threads:
 *   I/O thread: routes requests (dmn_models_route), owns the registry's list and each
 *     model's state and in_flight, starts and joins workers, frees drained models
 *     (dmn_models_poll, every turn of its loop).
 *   loader thread: loads checkpoints, tokenizers and contexts, one job at a time, and
 *     hands each finished model back to the I/O thread (a list under a mutex).
 *   one worker per model (dmn_worker.c): the only user of that model's eng_ctx; takes
 *     documents from that model's queue only, so documents of different models never
 *     share an engine call.
 * Checkpoints are shared: models naming the same directory with the same weight type hold
 * one eng_model and tokenizer (counted references), each with its own context. */
#ifndef NLP_DMN_MODELS_H
#define NLP_DMN_MODELS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/dmn_conf.h"
#include "engine/engine.h"
#include "engine/tok.h"
#include "tasks/task.h"

struct dmn_server;
struct dmn_queue;
struct dmn_req;
struct dmn_model_info;

enum dmn_model_state {
    DMN_MODEL_LOADING = 0,  /* loaded, its worker not started yet */
    DMN_MODEL_SERVING = 1,  /* takes requests */
    DMN_MODEL_DRAINING = 2, /* removed or replaced: finishes what it holds, then freed */
};

typedef struct dmn_ckpt dmn_ckpt; /* a loaded checkpoint + tokenizer, shared */

typedef struct dmn_model {
    dmn_model_conf conf; /* name, path, weights (resolved: never ""), tasks */
    struct dmn_server *srv;
    dmn_ckpt *ck;
    task_env env;            /* its family, tokenizer, generation settings */
    eng_ctx *ctx;            /* the worker's */
    struct dmn_queue *queue; /* its documents */
    pthread_t worker;
    int worker_started;
    atomic_int worker_running; /* 1 from its start until its worker returns */
    int state;                 /* enum dmn_model_state; I/O thread */
    int order;                 /* its place in the config: routing prefers the first */
    int in_flight;             /* I/O thread: requests routed to it, not answered */
    uint64_t served;           /* I/O thread: documents answered */
    size_t resident;           /* its checkpoint's resident bytes */
    double load_s;             /* seconds its load took */
    struct dmn_model *next;    /* the loader's hand-over list */
} dmn_model;

/* Loads one model (checkpoint shared with a model already loaded from the same path and
 * weight type), its context and queue; not serving yet. Any thread. NULL with the reason
 * in err. */
dmn_model *dmn_model_load(struct dmn_server *srv, const dmn_model_conf *mc, char *err,
                          size_t errlen);
/* Starts its worker thread (stop signals blocked in it). 0, or -1 with the reason. */
int dmn_model_start(dmn_model *m, char *err, size_t errlen);
/* Closes its queue, joins its worker (if started) and frees it. */
void dmn_model_free(dmn_model **m);

/* What a checkpoint directory will keep resident with weight type `weights` (enum
 * eng_weights), from its tensors' sizes: matrices in the weight type (auto: as stored),
 * everything else as f32. 0 with the reason in err when the checkpoint cannot be read. */
size_t dmn_model_expected_bytes(const char *dir, int weights, char *err, size_t errlen);

/* ---- the registry (I/O thread unless said) ---- */

/* Makes the (empty) registry: what dmn_model_load needs (dmn_models_begin makes it when
 * it is not there yet). 0, or -1 out of memory. */
int dmn_models_new(struct dmn_server *srv);
/* Starts the loader thread and queues the config's models (srv->conf.models). */
int dmn_models_begin(struct dmn_server *srv, char *err, size_t errlen);
/* One turn of the I/O thread's loop: starts the models the loader finished (swapping out
 * the ones they replace), frees drained ones, and on SIGHUP re-reads the config. Returns
 * 1 when the start-up models are all serving (once), -1 when one of them failed to load
 * (the daemon cannot start: the reason in err), else 0. */
int dmn_models_poll(struct dmn_server *srv, char *err, size_t errlen);
/* Chooses r's model: by name (r->model_name), else by task and, for translate, language
 * pair, preferring the model configured first. Sets r->model and returns DMN_OK, or the
 * code to answer with and the reason in err (UNKNOWN_MODEL, INVALID_ARGUMENT when no
 * model fits, OVERLOADED while the one asked for is still loading). */
int dmn_models_route(struct dmn_server *srv, struct dmn_req *r, char *err, size_t errlen);
/* The first serving model (health's fields 2 and 7-9), NULL when none serves. */
dmn_model *dmn_models_first(struct dmn_server *srv);
/* Documents queued over every model's queue. */
int dmn_models_depth(struct dmn_server *srv);
/* 1 while a model is loading (start-up or reload). */
int dmn_models_loading(struct dmn_server *srv);
/* 1 when the start-up models all serve (once), a model serves and every serving model's
 * worker runs. */
int dmn_models_ok(struct dmn_server *srv);
/* A serving model whose worker ended (a bug: the daemon exits 1), else NULL. */
dmn_model *dmn_models_lost_worker(struct dmn_server *srv);
/* Fills up to cap entries for health's models list; returns the count. */
int dmn_models_info(struct dmn_server *srv, struct dmn_model_info *out, int cap);
/* The registry's models in order (serving and draining), for the HTTP front. */
int dmn_models_list(struct dmn_server *srv, dmn_model **out, int cap);
/* Closes every model's queue (the daemon stops: workers drain and end). */
void dmn_models_close(struct dmn_server *srv);
/* Stops the loader, joins every worker, frees every model. */
void dmn_models_end(struct dmn_server *srv);

#endif
