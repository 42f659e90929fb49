/* The model registry (see dmn_models.h for the threads and who owns what). */
#include "daemon/dmn_models.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "daemon/dmn_http.h" /* dmn_reload_gen */
#include "daemon/dmn_log.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_server.h"
#include "engine/st.h"

#define MAX_LIVE (2 * DMN_MAX_MODELS)

struct dmn_ckpt {
    char key[PATH_MAX]; /* the directory, resolved */
    int weights;        /* enum eng_weights asked (AUTO included) */
    eng_model *model;
    tok_model *tok;
    int refs; /* models holding it (ck_mu) */
    dmn_ckpt *next;
};

/* A load the I/O thread asked for, and what came of it. */
typedef struct job {
    dmn_model_conf mc; /* weights resolved */
    int order, of;     /* its place in the config, of how many */
    dmn_model *m;      /* loaded, or NULL: why says */
    char why[768];
    struct job *next;
} job;

typedef struct dmn_registry {
    pthread_mutex_t mu; /* jobs, results, stop */
    pthread_cond_t cv;
    job *jobs, *results; /* to do (FIFO); done (any order) */
    int stop;
    pthread_t loader;
    int loader_started;
    pthread_mutex_t ck_mu; /* ckpts */
    dmn_ckpt *ckpts;
    /* I/O thread */
    dmn_model *live[MAX_LIVE]; /* serving and draining, serving ones by order */
    int n_live;
    dmn_model_conf want[DMN_MAX_MODELS]; /* the models of the last config loaded */
    int n_want;
    int outstanding; /* jobs asked for, results not taken yet */
    int starting;    /* 1 until the start-up models all serve */
    sig_atomic_t reload_seen;
} dmn_registry;

static dmn_registry *reg_of(struct dmn_server *srv) { return srv->reg; }

/* ---- checkpoints, shared ---- */

static void ckpt_key(const char *dir, char *key, size_t cap)
{
    char real[PATH_MAX];
    snprintf(key, cap, "%s", realpath(dir, real) ? real : dir);
}

/* The checkpoint of dir with weights w: one already loaded, or loaded now. */
static dmn_ckpt *ckpt_get(dmn_registry *g, const char *dir, int w, int threads, int *shared,
                          char *err, size_t errlen)
{
    char key[PATH_MAX], why[512];
    ckpt_key(dir, key, sizeof key);
    *shared = 0;
    pthread_mutex_lock(&g->ck_mu);
    for (dmn_ckpt *c = g->ckpts; c; c = c->next)
        /* the same type asked, or a type asked that the loaded one has */
        if (!strcmp(c->key, key) &&
            (c->weights == w || (w != ENG_WEIGHTS_AUTO && (int)eng_model_weights(c->model) == w))) {
            c->refs++;
            *shared = 1;
            pthread_mutex_unlock(&g->ck_mu);
            return c;
        }
    pthread_mutex_unlock(&g->ck_mu);
    /* Only the loader thread loads (and the start of a unit test): no second load of the
     * same key can race this one. */
    dmn_ckpt *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->key, sizeof c->key, "%s", key);
    c->weights = w;
    c->refs = 1;
    c->tok = tok_open_dir(dir, why, sizeof why);
    if (!c->tok) {
        snprintf(err, errlen, "tokenizer: %s", why);
        free(c);
        return NULL;
    }
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    mp.weights = (eng_weights)w;
    c->model = eng_model_load(dir, &mp, why, sizeof why);
    if (!c->model) {
        snprintf(err, errlen, "model: %s", why);
        tok_free(&c->tok);
        free(c);
        return NULL;
    }
    /* a tokenizer whose ids the model has no rows for (or far fewer ids than rows) */
    if (tok_check_vocab(c->tok, eng_model_config(c->model)->vocab_size, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s", why);
        eng_model_free(&c->model);
        tok_free(&c->tok);
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&g->ck_mu);
    c->next = g->ckpts;
    g->ckpts = c;
    pthread_mutex_unlock(&g->ck_mu);
    return c;
}

static void ckpt_put(dmn_registry *g, dmn_ckpt **cp)
{
    dmn_ckpt *c = *cp;
    *cp = NULL;
    if (!c) return;
    int last = 0;
    pthread_mutex_lock(&g->ck_mu);
    if (--c->refs == 0) {
        for (dmn_ckpt **p = &g->ckpts; *p; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
        last = 1;
    }
    pthread_mutex_unlock(&g->ck_mu);
    if (!last) return;
    eng_model_free(&c->model);
    tok_free(&c->tok);
    free(c);
}

/* ---- one model ---- */

size_t dmn_model_expected_bytes(const char *dir, int weights, char *err, size_t errlen)
{
    st_set *st = st_open_dir(dir, err, errlen);
    if (!st) return 0;
    size_t total = 0;
    for (int i = 0; i < st_count(st); i++) {
        const st_tensor *t = st_at(st, i);
        size_t n = t->nbytes / st_dtype_size(t->dtype), el = 4;
        if (t->ndim == 2) { /* matrices are held in the weight type */
            switch (weights) {
            case ENG_WEIGHTS_AUTO: el = st_dtype_size(t->dtype); break;
            case ENG_WEIGHTS_BF16:
            case ENG_WEIGHTS_F16: el = 2; break;
            case ENG_WEIGHTS_INT8: /* a byte each and a float scale per row */
                total += (size_t)t->shape[0] * 4;
                el = 1;
                break;
            default: el = 4; break;
            }
        }
        total += n * el;
    }
    st_close(&st);
    return total;
}

static int resolved_weights(const struct dmn_server *srv, const dmn_model_conf *mc)
{
    return eng_weights_parse(mc->weights[0] ? mc->weights : srv->conf.weights);
}

dmn_model *dmn_model_load(struct dmn_server *srv, const dmn_model_conf *mc, char *err,
                          size_t errlen)
{
    const dmn_conf *c = &srv->conf;
    char why[512];
    int w = resolved_weights(srv, mc);
    if (w < 0) {
        snprintf(err, errlen, "weights \"%s\" is not a weight type", mc->weights);
        return NULL;
    }
    dmn_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->conf = *mc;
    snprintf(m->conf.weights, sizeof m->conf.weights, "%s", eng_weights_name(w));
    m->srv = srv;
    double t0 = cm_now();
    int shared;
    if (!(m->ck = ckpt_get(reg_of(srv), mc->path, w, c->threads, &shared, err, errlen))) goto fail;
    if (shared)
        DMN_LOG(DMN_LOG_INFO,
                "model %s: the checkpoint of %s is loaded already (weights %s): "
                "shared",
                mc->name, mc->path, eng_weights_name(w));
    m->env.tok = m->ck->tok;
    m->env.conf = srv->tasks;
    m->env.max_input_tokens = c->limits.max_input_tokens;
    task_env_set_model(&m->env, mc->path, m->ck->model);
    /* The tasks it is configured for must be tasks it can do. */
    for (int k = 1; k <= TASK_TEXT2TEXT; k++)
        if ((mc->tasks & (1u << k)) && !task_served(&m->env, (task_kind)k, NULL, 0)) {
            task_served_list(&m->env, why, sizeof why);
            snprintf(err, errlen,
                     "tasks lists %s, which this %s model does not serve (it "
                     "serves: %s)",
                     task_kind_name((task_kind)k), m->env.model->model_type, why);
            goto fail;
        }
    /* Sized as the single-model daemon was: for what the tasks produce, grown to the
     * daemon's limits and to max_batch_tokens (see dmn_worker.c). */
    eng_ctx_params cp = task_conf_ctx_params(srv->tasks);
    if (cp.max_rows < c->batching.max_rows) cp.max_rows = c->batching.max_rows;
    if (cp.max_input_len < c->limits.max_input_tokens)
        cp.max_input_len = c->limits.max_input_tokens;
    if (cp.max_new_tokens < c->limits.max_new_tokens) cp.max_new_tokens = c->limits.max_new_tokens;
    if (cp.max_cands < c->limits.max_labels) cp.max_cands = c->limits.max_labels;
    if (cp.max_batch_tokens < c->batching.max_batch_tokens)
        cp.max_batch_tokens = c->batching.max_batch_tokens;
    m->ctx = eng_ctx_new(m->ck->model, &cp, why, sizeof why);
    if (!m->ctx) {
        snprintf(err, errlen, "engine context: %s", why);
        goto fail;
    }
    m->queue = dmn_queue_new(c->limits.queue_size, c->limits.max_input_tokens);
    if (!m->queue) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    m->resident = eng_model_resident_bytes(m->ck->model);
    m->load_s = cm_now() - t0;
    return m;
fail:
    dmn_model_free(&m);
    return NULL;
}

int dmn_model_start(dmn_model *m, char *err, size_t errlen)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old); /* the worker inherits it */
    atomic_store(&m->worker_running, 1);
    int rc = pthread_create(&m->worker, NULL, dmn_worker_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        atomic_store(&m->worker_running, 0);
        snprintf(err, errlen, "cannot start the worker thread of model %s: %s", m->conf.name,
                 strerror(rc));
        return -1;
    }
    m->worker_started = 1;
    return 0;
}

void dmn_model_free(dmn_model **mp)
{
    dmn_model *m = *mp;
    if (!m) return;
    if (m->queue) dmn_queue_close(m->queue);
    if (m->worker_started) pthread_join(m->worker, NULL);
    eng_ctx_free(&m->ctx);
    dmn_queue_free(&m->queue);
    if (m->ck) ckpt_put(reg_of(m->srv), &m->ck);
    free(m);
    *mp = NULL;
}

/* ---- the loader thread ---- */

static void *loader_main(void *arg)
{
    struct dmn_server *srv = arg;
    dmn_registry *g = reg_of(srv);
    /* Fault injection for the start-up tests (tests/scripts/registry_*.sh): each load
     * takes this much longer, so health can be asked while a model loads. */
    const char *d = getenv("NLPD_TEST_LOAD_DELAY_MS");
    long delay_ms = d ? strtol(d, NULL, 10) : 0;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->jobs && !g->stop) pthread_cond_wait(&g->cv, &g->mu);
        if (g->stop) break;
        job *j = g->jobs;
        g->jobs = j->next;
        pthread_mutex_unlock(&g->mu);

        char err[512];
        int w = resolved_weights(srv, &j->mc);
        size_t bytes = dmn_model_expected_bytes(j->mc.path, w < 0 ? 0 : w, err, sizeof err);
        DMN_LOG(DMN_LOG_INFO, "loading model %s (%s, %.1f MiB, weights %s): model %d of %d",
                j->mc.name, j->mc.path, bytes / 1048576.0,
                w < 0 ? j->mc.weights : eng_weights_name(w), j->order + 1, j->of);
        if (delay_ms > 0) {
            struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        j->m = dmn_model_load(srv, &j->mc, err, sizeof err);
        if (!j->m) snprintf(j->why, sizeof j->why, "%s", err);
        else j->m->order = j->order;

        pthread_mutex_lock(&g->mu);
        j->next = g->results;
        g->results = j;
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* Queues a load (I/O thread). */
static int ask_load(dmn_registry *g, const dmn_model_conf *mc, int order)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->mc = *mc;
    j->order = order;
    j->of = g->n_want;
    pthread_mutex_lock(&g->mu);
    job **p = &g->jobs;
    while (*p) p = &(*p)->next;
    *p = j;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    g->outstanding++;
    return 0;
}

/* The config's models with their weights resolved. */
static void set_want(struct dmn_server *srv, dmn_registry *g, const dmn_conf *c)
{
    g->n_want = c->n_models;
    for (int i = 0; i < c->n_models; i++) {
        g->want[i] = c->models[i];
        int w = eng_weights_parse(c->models[i].weights[0] ? c->models[i].weights : c->weights);
        snprintf(g->want[i].weights, sizeof g->want[i].weights, "%s",
                 eng_weights_name(w < 0 ? 0 : w));
    }
    (void)srv;
}

int dmn_models_new(struct dmn_server *srv)
{
    dmn_registry *g = calloc(1, sizeof *g);
    if (!g) return -1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_mutex_init(&g->ck_mu, NULL);
    g->reload_seen = dmn_reload_gen;
    srv->reg = g;
    return 0;
}

int dmn_models_begin(struct dmn_server *srv, char *err, size_t errlen)
{
    if (!srv->reg && dmn_models_new(srv) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    dmn_registry *g = reg_of(srv);
    set_want(srv, g, &srv->conf);
    g->starting = 1;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&g->loader, NULL, loader_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the loader thread: %s", strerror(rc));
        return -1;
    }
    g->loader_started = 1;
    for (int i = 0; i < g->n_want; i++)
        if (ask_load(g, &g->want[i], i) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return 0;
}

static int want_index(const dmn_registry *g, const dmn_model_conf *mc, int same_load)
{
    for (int i = 0; i < g->n_want; i++)
        if (!strcmp(g->want[i].name, mc->name) &&
            (!same_load ||
             (!strcmp(g->want[i].path, mc->path) && !strcmp(g->want[i].weights, mc->weights))))
            return i;
    return -1;
}

static void drain(dmn_model *m, const char *why)
{
    m->state = DMN_MODEL_DRAINING;
    dmn_queue_close(m->queue); /* its worker finishes what is queued, then ends */
    DMN_LOG(DMN_LOG_INFO, "model %s %s: takes no new requests, finishing %d in flight",
            m->conf.name, why, m->in_flight);
}

/* Serving models first, by config order, then draining ones. */
static void sort_live(dmn_registry *g)
{
    for (int i = 1; i < g->n_live; i++)
        for (int k = i; k > 0; k--) {
            dmn_model *a = g->live[k - 1], *b = g->live[k];
            int ka = a->state == DMN_MODEL_SERVING ? a->order : 1000 + a->order;
            int kb = b->state == DMN_MODEL_SERVING ? b->order : 1000 + b->order;
            if (ka <= kb) break;
            g->live[k - 1] = b, g->live[k] = a;
        }
}

static dmn_model *serving(dmn_registry *g, const char *name)
{
    for (int i = 0; i < g->n_live; i++)
        if (g->live[i]->state == DMN_MODEL_SERVING && !strcmp(g->live[i]->conf.name, name))
            return g->live[i];
    return NULL;
}

/* SIGHUP: the config again; its models list is applied (the rest needs a restart). */
static void reload(struct dmn_server *srv, dmn_registry *g)
{
    static dmn_conf nc; /* big; the I/O thread's only */
    char err[1024];
    dmn_conf_defaults(&nc);
    if (!srv->conf.path[0] || dmn_conf_load(&nc, srv->conf.path, err, sizeof err) < 0) {
        DMN_LOG(DMN_LOG_ERROR,
                "SIGHUP: the config does not load, the models loaded keep "
                "serving: %s",
                srv->conf.path[0] ? err : "no config file");
        return;
    }
    if (srv->cli_models.n_models > 0) { /* --model on the command line wins */
        nc.n_models = srv->cli_models.n_models;
        memcpy(nc.models, srv->cli_models.models, sizeof nc.models);
    }
    if (srv->cli_weights[0]) snprintf(nc.weights, sizeof nc.weights, "%s", srv->cli_weights);
    set_want(srv, g, &nc);
    int added = 0, kept = 0, removed = 0;
    for (int i = 0; i < g->n_live; i++) {
        dmn_model *m = g->live[i];
        if (m->state != DMN_MODEL_SERVING) continue;
        int w = want_index(g, &m->conf, 0);
        if (w < 0) {
            drain(m, "is no longer in the config");
            removed++;
        } else if (want_index(g, &m->conf, 1) == w) {
            m->order = w;
            m->conf.tasks = g->want[w].tasks;
            kept++;
        }
        /* a changed path or weight type: the new one loads first, then they swap */
    }
    for (int i = 0; i < g->n_want; i++) {
        dmn_model *m = serving(g, g->want[i].name);
        if (m && !strcmp(m->conf.path, g->want[i].path) &&
            !strcmp(m->conf.weights, g->want[i].weights))
            continue;
        if (ask_load(g, &g->want[i], i) < 0) {
            DMN_LOG(DMN_LOG_ERROR, "SIGHUP: out of memory queueing model %s", g->want[i].name);
            continue;
        }
        added++;
    }
    sort_live(g);
    DMN_LOG(DMN_LOG_INFO,
            "SIGHUP: %s: %d model(s) kept, %d to load, %d removed (only "
            "models and weights are reloaded; other settings need a restart)",
            srv->conf.path, kept, added, removed);
}

/* A finished load: start it (swapping out the model it replaces) or drop it. */
static int take_result(dmn_registry *g, job *j, char *err, size_t errlen)
{
    dmn_model *m = j->m;
    char why[256];
    g->outstanding--;
    if (!m) {
        DMN_LOG(DMN_LOG_ERROR, "model %s (%s) does not load%s: %s", j->mc.name, j->mc.path,
                g->starting ? "" : "; what was serving keeps serving", j->why);
        if (g->starting) {
            snprintf(err, errlen, "model %s: %s", j->mc.name, j->why);
            return -1;
        }
        return 0;
    }
    int w = want_index(g, &m->conf, 1);
    if (w < 0 || g->n_live == MAX_LIVE) { /* a later reload changed it again */
        DMN_LOG(DMN_LOG_INFO, "model %s loaded but no longer wanted: freed", m->conf.name);
        dmn_model_free(&m);
        return 0;
    }
    m->order = w;
    m->conf.tasks = g->want[w].tasks;
    if (dmn_model_start(m, why, sizeof why) < 0) {
        DMN_LOG(DMN_LOG_ERROR, "%s", why);
        dmn_model_free(&m);
        if (g->starting) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        return 0;
    }
    dmn_model *old = serving(g, m->conf.name);
    m->state = DMN_MODEL_SERVING;
    g->live[g->n_live++] = m;
    if (old) drain(old, "is replaced");
    sort_live(g);
    DMN_LOG(DMN_LOG_INFO, "model %s ready in %.2f s: %s, weights %s, %.1f MiB resident%s",
            m->conf.name, m->load_s, m->env.model->model_type,
            eng_weights_name(eng_model_weights(m->ck->model)), m->resident / 1048576.0,
            old ? " (swapped in)" : "");
    return 0;
}

int dmn_models_poll(struct dmn_server *srv, char *err, size_t errlen)
{
    dmn_registry *g = reg_of(srv);
    if (!g) return 0;
    if (g->reload_seen != dmn_reload_gen) {
        g->reload_seen = dmn_reload_gen;
        if (g->starting)
            DMN_LOG(DMN_LOG_WARN, "SIGHUP during start-up: ignored (send it once the models "
                                  "serve)");
        else if (!srv->shutting_down) reload(srv, g);
    }
    pthread_mutex_lock(&g->mu);
    job *done = g->results;
    g->results = NULL;
    pthread_mutex_unlock(&g->mu);
    int rc = 0;
    while (done) {
        job *j = done;
        done = j->next;
        if (rc == 0 && !srv->shutting_down) {
            rc = take_result(g, j, err, errlen);
        } else {
            g->outstanding--;
            dmn_model_free(&j->m);
        }
        free(j);
    }
    if (rc < 0) return -1;
    /* Drained models: queue closed and empty, worker ended, nothing unanswered. */
    for (int i = 0; i < g->n_live; i++) {
        dmn_model *m = g->live[i];
        if (m->state != DMN_MODEL_DRAINING || m->in_flight > 0 || atomic_load(&m->worker_running))
            continue;
        DMN_LOG(DMN_LOG_INFO, "model %s drained (%llu documents served): freed", m->conf.name,
                (unsigned long long)m->served);
        memmove(&g->live[i], &g->live[i + 1], (size_t)(g->n_live - i - 1) * sizeof *g->live);
        g->n_live--;
        i--;
        dmn_model_free(&m);
    }
    if (g->starting && g->outstanding == 0) {
        g->starting = 0;
        return 1;
    }
    return 0;
}

/* ---- routing ---- */

/* Whether m serves r's translation (its languages): the task's own check, on a word. */
static int fits_pair(dmn_model *m, const struct dmn_req *r, char *why, size_t whylen)
{
    task_input in = r->in;
    task_doc d;
    memset(&d, 0, sizeof d);
    in.text = "a";
    in.text_len = 1;
    int rc = task_prepare(&m->env, &in, &d, why, whylen);
    task_doc_clear(&d);
    return rc >= 0;
}

/* "a (t5: summarize translate ...), b (marian: translate en-mg)" */
static void loaded_list(dmn_registry *g, char *buf, size_t cap)
{
    size_t w = 0;
    buf[0] = 0;
    for (int i = 0; i < g->n_live && w < cap; i++) {
        dmn_model *m = g->live[i];
        char tasks[96] = "";
        if (m->state != DMN_MODEL_SERVING) continue;
        size_t t = 0;
        for (int k = 1; k <= TASK_TEXT2TEXT && t < sizeof tasks; k++)
            if ((!m->conf.tasks || (m->conf.tasks & (1u << k))) &&
                task_served(&m->env, (task_kind)k, NULL, 0))
                t += (size_t)snprintf(tasks + t, sizeof tasks - t, "%s%s", t ? " " : "",
                                      task_kind_name((task_kind)k));
        w += (size_t)snprintf(buf + w, cap - w, "%s%s (%s: %s%s%s%s%s)", w ? ", " : "",
                              m->conf.name, m->env.model->model_type, tasks,
                              m->env.info.pair_src[0] ? ", " : "", m->env.info.pair_src,
                              m->env.info.pair_src[0] ? "-" : "", m->env.info.pair_tgt);
    }
}

int dmn_models_route(struct dmn_server *srv, struct dmn_req *r, char *err, size_t errlen)
{
    dmn_registry *g = reg_of(srv);
    char list[600];
    int n_serving = 0;
    for (int i = 0; g && i < g->n_live; i++) n_serving += g->live[i]->state == DMN_MODEL_SERVING;
    if (n_serving == 0) {
        snprintf(err, errlen,
                 "the daemon is loading its models (health says loading): retry "
                 "shortly");
        return DMN_OVERLOADED;
    }
    task_kind kind = r->in.kind;
    if (r->model_name) {
        dmn_model *m = serving(g, r->model_name);
        if (!m) {
            for (int i = 0; i < g->n_want; i++)
                if (!strcmp(g->want[i].name, r->model_name) && g->outstanding > 0) {
                    cm_fmt(err, errlen, "model '%.128s' is still loading: retry shortly",
                           r->model_name);
                    return DMN_OVERLOADED;
                }
            loaded_list(g, list, sizeof list);
            cm_fmt(err, errlen, "no model named '%.128s'; loaded: %s", r->model_name, list);
            return DMN_UNKNOWN_MODEL;
        }
        if (m->conf.tasks && !(m->conf.tasks & (1u << kind))) {
            loaded_list(g, list, sizeof list);
            cm_fmt(err, errlen, "model '%s' is not configured for %s; loaded: %s", m->conf.name,
                   task_kind_name(kind), list);
            return DMN_UNSUPPORTED;
        }
        r->model = m;
        return DMN_OK;
    }
    /* One model: it takes everything and answers for itself (as the one-model daemon). */
    if (n_serving == 1) {
        r->model = g->live[0];
        return DMN_OK;
    }
    char why[320] = "", first_why[320] = "";
    for (int i = 0; i < g->n_live; i++) {
        dmn_model *m = g->live[i];
        if (m->state != DMN_MODEL_SERVING) continue;
        if (m->conf.tasks ? !(m->conf.tasks & (1u << kind)) : !task_served(&m->env, kind, NULL, 0))
            continue;
        if (kind == TASK_TRANSLATE && !fits_pair(m, r, why, sizeof why)) {
            if (!first_why[0]) cm_fmt(first_why, sizeof first_why, "%s: %s", m->conf.name, why);
            continue;
        }
        r->model = m;
        return DMN_OK;
    }
    loaded_list(g, list, sizeof list);
    if (kind == TASK_TRANSLATE)
        cm_fmt(err, errlen, "no loaded model translates %s%.32s%sto %.32s (%s); loaded: %s",
               r->in.source_lang && r->in.source_lang[0] ? "from " : "",
               r->in.source_lang ? r->in.source_lang : "",
               r->in.source_lang && r->in.source_lang[0] ? " " : "",
               r->in.target_lang ? r->in.target_lang : "?",
               first_why[0] ? first_why : "none translates", list);
    else cm_fmt(err, errlen, "no loaded model serves %s; loaded: %s", task_kind_name(kind), list);
    return DMN_INVALID_ARGUMENT;
}

/* ---- what the I/O thread asks ---- */

dmn_model *dmn_models_first(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    return g && g->n_live > 0 && g->live[0]->state == DMN_MODEL_SERVING ? g->live[0] : NULL;
}

int dmn_models_depth(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    int n = 0;
    for (int i = 0; g && i < g->n_live; i++) n += dmn_queue_depth(g->live[i]->queue);
    return n;
}

int dmn_models_loading(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    return g ? g->outstanding > 0 : 0;
}

int dmn_models_ok(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    int n = 0;
    if (!g || g->starting) return 0; /* ready once every model of the start serves */
    for (int i = 0; g && i < g->n_live; i++) {
        dmn_model *m = g->live[i];
        if (m->state != DMN_MODEL_SERVING) continue;
        if (!atomic_load(&m->worker_running)) return 0;
        n++;
    }
    return n > 0;
}

dmn_model *dmn_models_lost_worker(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    for (int i = 0; g && i < g->n_live; i++)
        if (g->live[i]->state == DMN_MODEL_SERVING && !atomic_load(&g->live[i]->worker_running))
            return g->live[i];
    return NULL;
}

int dmn_models_info(struct dmn_server *srv, dmn_model_info *out, int cap)
{
    dmn_registry *g = reg_of(srv);
    static const char *const states[] = { "loading", "serving", "draining" };
    int n = 0;
    for (int i = 0; g && i < g->n_live && n < cap; i++, n++) {
        dmn_model *m = g->live[i];
        out[n] = (dmn_model_info){
            .name = m->conf.name,
            .path = m->conf.path,
            .state = states[m->state],
            .weights = eng_weights_name(eng_model_weights(m->ck->model)),
            .env = &m->env,
            .tasks = m->conf.tasks,
            .resident_bytes = m->resident,
            .requests = m->served,
        };
    }
    /* Models asked for and not serving yet (start-up or a reload adding them). */
    for (int i = 0; g && g->outstanding > 0 && i < g->n_want && n < cap; i++) {
        if (serving(g, g->want[i].name)) continue;
        out[n++] = (dmn_model_info){ .name = g->want[i].name,
                                     .path = g->want[i].path,
                                     .state = "loading",
                                     .weights = g->want[i].weights,
                                     .tasks = g->want[i].tasks };
    }
    return n;
}

int dmn_models_list(struct dmn_server *srv, dmn_model **out, int cap)
{
    dmn_registry *g = reg_of(srv);
    int n = 0;
    for (int i = 0; g && i < g->n_live && n < cap; i++) out[n++] = g->live[i];
    return n;
}

void dmn_models_close(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    for (int i = 0; g && i < g->n_live; i++) dmn_queue_close(g->live[i]->queue);
}

void dmn_models_end(struct dmn_server *srv)
{
    dmn_registry *g = reg_of(srv);
    if (!g) return;
    if (g->loader_started) {
        pthread_mutex_lock(&g->mu);
        g->stop = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->loader, NULL); /* after the load it may be in */
    }
    for (job *j = g->jobs, *n; j; j = n) {
        n = j->next;
        free(j);
    }
    for (job *j = g->results, *n; j; j = n) {
        n = j->next;
        dmn_model_free(&j->m);
        free(j);
    }
    for (int i = 0; i < g->n_live; i++) dmn_model_free(&g->live[i]);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->ck_mu);
    free(g);
    srv->reg = NULL;
}
