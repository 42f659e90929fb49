/* A worker thread, one per model (dmn_models.c): the only user of its model's engine
 * context (eng_ctx); it takes documents from its model's queue only.
 *
 * Loop: take documents from the queue (priority, then arrival; waiting up to
 * batching.max_wait_ms to fill a batch), check each one's deadline, task_prepare() them,
 * and gather the jobs of all documents -- whatever their request or task. Generation
 * jobs run with continuous batching: eng_generate_stream() starts as many as fit, and
 * before every decode step the join hook hands it more -- first jobs still waiting in
 * this batch, then documents taken from the queue meanwhile -- so clients that arrive
 * while a generation runs join it at the next step instead of waiting for it to end.
 * A document is finished (task_finish) as soon as its last job is done and its request
 * goes back to the I/O thread over the inproc PAIR socket as soon as its last document
 * is (the pointer moves; the I/O thread owns the request from then on). Scoring jobs
 * (label scoring, and zero-shot's (text, label) pairs on an NLI model: eng_classify) run
 * between the decode steps of the running generation: before each step the scoring
 * documents at the head of the queue are taken (rows full or not) and one call bounded
 * by max_batch_tokens and max_rows runs, so that a classify request that arrives during
 * a long generation is answered at once and the running rows keep moving; what is left
 * when the generation ends (or all of them, when there is none) runs then.
 * The engine keeps the generation's state apart from what scoring uses (engine.h,
 * eng_stream): results do not depend on when a job runs.
 *
 * Working arrays are sized at start (documents: 4 x max_rows per batch) or grow to the
 * largest batch seen (jobs) and are reused: no allocation per batch once warm
 * (task_prepare/finish allocate their own results). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/common.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_models.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_server.h"
#include "daemon/dmn_stats.h"

/* A scoring job and the document (items[] index) it belongs to. */
typedef struct sjob {
    task_job *job;
    int doc;
} sjob;

typedef struct worker {
    dmn_server *srv;
    dmn_model *m;       /* the one model this worker serves (its queue, its ctx) */
    int max_items;      /* documents taken at the start of a batch (max_rows) */
    int cap_items;      /* documents a batch may hold, joiners included */
    int n_items;        /* documents in this batch */
    dmn_item *items;    /* [cap_items] */
    task_input *in;     /* [cap_items] per document */
    task_doc *docs;     /* [cap_items] */
    int *prepared;      /* [cap_items] 1: docs[i] holds jobs */
    int *left;          /* [cap_items] jobs not done yet */
    int *finished;      /* [cap_items] 1: answered (its request may be gone) */
    eng_gen_req **gptr; /* [max_rows] the requests of one eng_generate_stream call */
    /* job lists, grown on demand; generation jobs [ghead, ng) are still to start,
     * scoring jobs [shead, ns) to run */
    int cap;
    int ng, ghead, ns, shead;
    task_job **gjobs;        /* [cap] */
    sjob *sjobs;             /* [cap] */
    eng_score_req *sreq;     /* [cap] contiguous copies for eng_score */
    eng_cls_req *creq;       /* [cap] contiguous copies for eng_classify */
    int *lens, *rows, *ends; /* [cap] */
    /* the running engine call, for its stats line */
    int call_seqs; /* sequences started in it */
    uint64_t call_in, call_out;
    int live_rows, live_tokens; /* decoder rows and encoder tokens of its unfinished jobs */
    double replied_at;          /* when a reply last went out (0: none yet) */
} worker;

static int grow_array(void **a, size_t elsize, int cap)
{
    void *p = realloc(*a, (size_t)cap * elsize);
    if (!p) return -1;
    *a = p;
    return 0;
}

/* Makes the job arrays hold `need` jobs; -1 on allocation failure (arrays stay valid). */
static int grow(worker *w, int need)
{
    if (need <= w->cap) return 0;
    int cap = w->cap ? w->cap : 64;
    while (cap < need) cap *= 2;
    if (grow_array((void **)&w->gjobs, sizeof *w->gjobs, cap) < 0 ||
        grow_array((void **)&w->sjobs, sizeof *w->sjobs, cap) < 0 ||
        grow_array((void **)&w->sreq, sizeof *w->sreq, cap) < 0 ||
        grow_array((void **)&w->creq, sizeof *w->creq, cap) < 0 ||
        grow_array((void **)&w->lens, sizeof *w->lens, cap) < 0 ||
        grow_array((void **)&w->rows, sizeof *w->rows, cap) < 0 ||
        grow_array((void **)&w->ends, sizeof *w->ends, cap) < 0)
        return -1;
    w->cap = cap;
    return 0;
}

static int cmp_job_len(const void *a, const void *b)
{
    const task_job *x = *(task_job *const *)a, *y = *(task_job *const *)b;
    return (x->n_ids > y->n_ids) - (x->n_ids < y->n_ids);
}

static int cmp_sjob_len(const void *a, const void *b)
{
    const task_job *x = ((const sjob *)a)->job, *y = ((const sjob *)b)->job;
    return (x->n_ids > y->n_ids) - (x->n_ids < y->n_ids);
}

static void fail_doc(dmn_req *r, int doc, int why, const char *msg)
{
    dmn_doc_end(&r->out[doc], why, msg);
}

/* Decoder rows a generation job holds, counted as the engine counts them. */
static int job_rows(const task_job *j)
{
    if (j->params.num_beams > 1) return j->params.num_beams;
    return j->params.num_return_sequences > 1 ? j->params.num_return_sequences : 1;
}

static void hand_back(dmn_server *srv, dmn_req *r)
{
    r->t_done = cm_now();
    pthread_mutex_lock(&srv->done_lock); /* every model's worker sends on done_tx */
    int sent = zmq_send(srv->done_tx, &r, sizeof r, 0);
    pthread_mutex_unlock(&srv->done_lock);
    if (sent != (int)sizeof r) {
        /* Only when the context is being torn down, which waits for this thread. */
        DMN_LOG_REQ(DMN_LOG_ERROR, r->seq, r->id, "cannot hand the response back: %s",
                    zmq_strerror(zmq_errno()));
        dmn_req_free(&r);
    }
}

/* Document i's last job is done (or it has none): finish it and, when it is its
 * request's last document, send the request back. */
static void finish_doc(worker *w, int i)
{
    dmn_server *srv = w->srv;
    dmn_req *r = w->items[i].req;
    int d = w->items[i].doc;
    if (w->prepared[i]) {
        dmn_doc *o = &r->out[d];
        memset(&o->res, 0, sizeof o->res);
        task_finish(&w->m->env, &w->in[i], &w->docs[i], &o->res);
        o->has_res = 1;
        dmn_doc_task_end(o, o->res.status, o->res.message);
        /* Counted before the reply goes out, so a client's next stats request sees it. */
        dmn_stats_documents(srv->stats, 1);
    }
    w->finished[i] = 1;
    w->replied_at = cm_now();
    if (atomic_fetch_sub(&r->n_left, 1) == 1) hand_back(srv, r);
}

/* Checks the deadline of document i (items[i]), prepares its jobs and queues them:
 * generation jobs on the FIFO [ghead, ng), scoring jobs on sjobs. A document that
 * fails gets its error and no jobs (left 0). */
static void prepare_doc(worker *w, int i, double now)
{
    char err[256];
    dmn_req *r = w->items[i].req;
    int d = w->items[i].doc;
    w->prepared[i] = 0;
    w->finished[i] = 0;
    w->left[i] = 0;
    w->in[i] = r->in;
    w->in[i].text = r->docs[d];
    w->in[i].text_len = r->doc_lens[d];
    if (now > r->t_deadline) {
        snprintf(err, sizeof err, "deadline passed after %.0f ms in the queue",
                 (now - r->t_recv) * 1e3);
        fail_doc(r, d, DMN_DOC_DEADLINE, err);
        DMN_LOG_REQ(DMN_LOG_INFO, r->seq, r->id, "document %d: %s", d, err);
        return;
    }
    if (r->t_start == 0) r->t_start = now;
    /* Prepared on receipt by the I/O thread (dmn_server_submit): the jobs move here. */
    if (r->prep_rc[d] < 0) {
        DMN_LOG_REQ(DMN_LOG_INFO, r->seq, r->id, "document %d: %s: %s", d,
                    dmn_code_name(r->out[d].code), r->out[d].message);
        return;
    }
    w->docs[i] = r->prep[d];
    memset(&r->prep[d], 0, sizeof r->prep[d]);
    w->prepared[i] = 1;
    if (grow(w, w->ng + w->ns + w->docs[i].n_jobs) < 0) {
        task_doc_clear(&w->docs[i]);
        w->prepared[i] = 0;
        fail_doc(r, d, DMN_DOC_INTERNAL, "out of memory");
        return;
    }
    for (int j = 0; j < w->docs[i].n_jobs; j++) {
        task_job *job = &w->docs[i].jobs[j];
        if (job->kind == TASK_JOB_SCORE || job->kind == TASK_JOB_CLASSIFY) {
            w->sjobs[w->ns++] = (sjob){ .job = job, .doc = i };
        } else {
            job->gen.tag = (void *)(intptr_t)i;
            w->gjobs[w->ng++] = job;
        }
    }
    w->left[i] = w->docs[i].n_jobs;
}

/* 1 if the queued document has no generation job (prepared on receipt: all its jobs
 * score, or it failed preparing and is answered as soon as it is taken). */
static int doc_scores_only(const dmn_item *it, void *arg)
{
    (void)arg;
    const dmn_req *r = it->req;
    if (r->prep_rc[it->doc] < 0) return 1;
    const task_doc *d = &r->prep[it->doc];
    for (int j = 0; j < d->n_jobs; j++)
        if (d->jobs[j].kind != TASK_JOB_SCORE && d->jobs[j].kind != TASK_JOB_CLASSIFY) return 0;
    return 1;
}

/* Takes documents from the queue into the running batch (while it has room for
 * documents): a document's scoring jobs run at the next steps (between_hook), its
 * generation jobs when rows free up. For join, only while no generation job waits, so one
 * that does not fit yet keeps its turn: at most one document is taken ahead of the
 * room. With scoring_only (between steps, the rows full or not), only while the best
 * queued document has no generation job: none is taken out of its turn. */
static void take_docs(worker *w, int scoring_only)
{
    while (w->n_items < w->cap_items && (scoring_only || w->ghead == w->ng)) {
        int i = w->n_items;
        if (!(scoring_only ? dmn_queue_try_take_if(w->m->queue, &w->items[i], doc_scores_only, NULL)
                           : dmn_queue_try_take(w->m->queue, &w->items[i])))
            return;
        w->n_items++;
        prepare_doc(w, i, cm_now());
        if (w->left[i] == 0) finish_doc(w, i); /* failed, or nothing to run: answer now */
    }
}

/* eng_stream.join: the next waiting generation job if it fits the room, else (none
 * waiting) a document taken from the queue, prepared, and its first job if it fits. A job
 * that does not fit yet starts at a later step, once running rows end, or in the next
 * call. */
static eng_gen_req *join_hook(void *user, int rows, int tokens)
{
    worker *w = user;
    /* the room left in the engine's batch, within the daemon's own bounds */
    const dmn_conf *cf = &w->srv->conf;
    if (rows > cf->batching.max_rows - w->live_rows) rows = cf->batching.max_rows - w->live_rows;
    if (tokens > cf->batching.max_batch_tokens - w->live_tokens)
        tokens = cf->batching.max_batch_tokens - w->live_tokens;
    if (rows < 1 || tokens < 1) return NULL;
    take_docs(w, 0);
    if (w->ghead == w->ng) return NULL;
    task_job *j = w->gjobs[w->ghead];
    if (job_rows(j) > rows || j->n_ids > tokens) return NULL;
    w->ghead++;
    w->call_seqs++;
    w->call_in += (uint64_t)j->n_ids;
    w->live_rows += job_rows(j);
    w->live_tokens += j->n_ids;
    dmn_stats_rows(w->srv->stats, w->live_rows);
    return &j->gen;
}

/* eng_stream.done: a generation job has its result (status in job->gen). */
static void done_hook(void *user, eng_gen_req *r)
{
    worker *w = user;
    int i = (int)(intptr_t)r->tag;
    const task_job *j = (const task_job *)(const void *)((const char *)r - offsetof(task_job, gen));
    w->live_rows -= job_rows(j);
    w->live_tokens -= j->n_ids;
    if (r->status == 0 && r->out->n_hyps > 0) w->call_out += (uint64_t)r->out->hyps[0].n_tokens;
    if (--w->left[i] == 0) finish_doc(w, i);
}

/* Runs scoring jobs [start, start + cnt) in one engine call of each kind (label scoring
 * on generative models, (text, label) pairs on NLI models: a model gives only one kind,
 * but nothing here depends on that), and finishes each document whose last job it was. */
static void score_call(worker *w, int start, int cnt)
{
    dmn_server *srv = w->srv;
    int nsc = 0, ncl = 0;
    uint64_t in_tok = 0;
    for (int k = start; k < start + cnt; k++) {
        task_job *j = w->sjobs[k].job;
        if (j->kind == TASK_JOB_CLASSIFY) w->creq[ncl++] = j->cls;
        else w->sreq[nsc++] = j->score;
        in_tok += (uint64_t)j->n_ids;
    }
    int rs = nsc > 0 ? eng_score(w->m->ctx, w->sreq, nsc) : 0;
    if (rs < 0) DMN_LOG(DMN_LOG_ERROR, "eng_score(%d sequences): %s", nsc, eng_strerror(rs));
    int rc = ncl > 0 ? eng_classify(w->m->ctx, w->creq, ncl) : 0;
    if (rc < 0) DMN_LOG(DMN_LOG_ERROR, "eng_classify(%d sequences): %s", ncl, eng_strerror(rc));
    dmn_stats_batch(srv->stats, cnt, in_tok, 0, cm_now());
    nsc = ncl = 0;
    for (int k = start; k < start + cnt; k++) {
        task_job *j = w->sjobs[k].job;
        if (j->kind == TASK_JOB_CLASSIFY) j->cls.status = rc < 0 ? rc : w->creq[ncl++].status;
        else j->score.status = rs < 0 ? rs : w->sreq[nsc++].status;
        if (--w->left[w->sjobs[k].doc] == 0) finish_doc(w, w->sjobs[k].doc);
    }
}

/* eng_stream.between: before each decode step, the scoring documents at the head of the
 * queue (join is not asked when the rows are full), then one scoring call over the
 * waiting scoring jobs in the order they came, bounded by max_batch_tokens and max_rows
 * (at least one job), so that the running rows wait for one bounded call per step. */
static void between_hook(void *user)
{
    worker *w = user;
    const dmn_conf *cf = &w->srv->conf;
    take_docs(w, 1);
    int cnt = 0, tokens = 0;
    while (w->shead + cnt < w->ns && cnt < cf->batching.max_rows) {
        int t = w->sjobs[w->shead + cnt].job->n_ids;
        if (cnt > 0 && tokens + t > cf->batching.max_batch_tokens) break;
        tokens += t;
        cnt++;
    }
    if (cnt == 0) return;
    int start = w->shead;
    w->shead += cnt;
    score_call(w, start, cnt);
}

/* Runs the generation FIFO: each call starts with the waiting jobs that fit one batch
 * (max_batch_tokens, max_rows), shortest first for the initial ones, and takes joiners
 * until the FIFO and the queue are both empty. */
static void run_generate(worker *w)
{
    dmn_server *srv = w->srv;
    const eng_stream hooks = {
        .join = join_hook, .done = done_hook, .between = between_hook, .user = w
    };
    if (w->ng > w->ghead)
        qsort(w->gjobs + w->ghead, (size_t)(w->ng - w->ghead), sizeof *w->gjobs, cmp_job_len);
    while (w->ghead < w->ng) {
        int n = w->ng - w->ghead;
        for (int k = 0; k < n; k++) {
            w->lens[k] = w->gjobs[w->ghead + k]->n_ids;
            w->rows[k] = job_rows(w->gjobs[w->ghead + k]);
        }
        dmn_sched_split(w->lens, w->rows, n, srv->conf.batching.max_batch_tokens,
                        srv->conf.batching.max_rows, w->ends);
        int cnt = w->ends[0];
        w->call_seqs = cnt, w->call_in = 0, w->call_out = 0;
        w->live_rows = 0, w->live_tokens = 0;
        for (int k = 0; k < cnt; k++) {
            w->gptr[k] = &w->gjobs[w->ghead + k]->gen;
            w->call_in += (uint64_t)w->lens[k];
            w->live_rows += w->rows[k];
            w->live_tokens += w->lens[k];
        }
        w->ghead += cnt;
        dmn_stats_rows(srv->stats, w->live_rows);
        int rc = eng_generate_stream(w->m->ctx, w->gptr, cnt, &hooks);
        if (rc < 0) { /* nothing ran, nothing was reported: fail the call's jobs */
            DMN_LOG(DMN_LOG_ERROR, "eng_generate(%d sequences): %s", cnt, eng_strerror(rc));
            for (int k = 0; k < cnt; k++) {
                w->gptr[k]->status = rc;
                done_hook(w, w->gptr[k]);
            }
        }
        dmn_stats_batch(srv->stats, w->call_seqs, w->call_in, w->call_out, cm_now());
    }
}

/* Runs the scoring jobs the generation left (all of them without one) in calls bounded
 * by max_batch_tokens, similar lengths together. */
static void run_score(worker *w)
{
    dmn_server *srv = w->srv;
    int n = w->ns - w->shead;
    if (n <= 0) return;
    qsort(w->sjobs + w->shead, (size_t)n, sizeof *w->sjobs, cmp_sjob_len);
    for (int i = 0; i < n; i++) {
        w->lens[i] = w->sjobs[w->shead + i].job->n_ids;
        /* Candidates are teacher-forced, not decoder rows held across steps: the engine
         * groups them by its own workspace, so a call is bounded by tokens only. */
        w->rows[i] = 1;
    }
    int calls = dmn_sched_split(w->lens, w->rows, n, srv->conf.batching.max_batch_tokens,
                                srv->conf.batching.max_rows, w->ends);
    for (int c = 0, start = 0; c < calls; start = w->ends[c++])
        score_call(w, w->shead + start, w->ends[c] - start);
    w->shead = w->ns;
}

static void run_batch(worker *w, int n)
{
    double now = cm_now();
    w->n_items = n;
    w->ng = w->ghead = w->ns = w->shead = 0;
    for (int i = 0; i < n; i++) prepare_doc(w, i, now);
    DMN_LOG(DMN_LOG_DEBUG, "batch: %d documents, %d generation and %d scoring jobs", n, w->ng,
            w->ns);
    run_generate(w);
    run_score(w);
    /* Every document not yet answered: scored ones, failed ones, those without jobs. */
    for (int i = 0; i < w->n_items; i++)
        if (!w->finished[i]) finish_doc(w, i);
    if (w->n_items > n)
        DMN_LOG(DMN_LOG_DEBUG, "batch: %d documents joined while it ran", w->n_items - n);
}

void *dmn_worker_main(void *arg)
{
    dmn_model *m = arg;
    dmn_server *srv = m->srv;
    worker w = { .srv = srv, .m = m };
    w.max_items = srv->conf.batching.max_rows;
    w.cap_items = 4 * w.max_items;
    size_t ci = (size_t)w.cap_items;
    w.items = calloc(ci, sizeof *w.items);
    w.in = calloc(ci, sizeof *w.in);
    w.docs = calloc(ci, sizeof *w.docs);
    w.prepared = calloc(ci, sizeof *w.prepared);
    w.left = calloc(ci, sizeof *w.left);
    w.finished = calloc(ci, sizeof *w.finished);
    w.gptr = calloc((size_t)w.max_items, sizeof *w.gptr);
    int ok = w.items && w.in && w.docs && w.prepared && w.left && w.finished && w.gptr &&
             grow(&w, 64) == 0;
    if (!ok) /* Without working memory nothing can run: answer every document INTERNAL. */
        DMN_LOG(DMN_LOG_ERROR, "worker: out of memory");
    DMN_LOG(DMN_LOG_DEBUG, "worker started");
    int last_n = 1; /* documents in the last batch: how much company to wait for */
    /* Fault injection for the supervision test (tests/scripts/daemon_worker_lost.sh):
     * the worker returns after this many batches, as a bug would end it. */
    const char *fault = getenv("NLPD_TEST_WORKER_EXIT_AFTER");
    long batches_left = fault ? strtol(fault, NULL, 10) : -1;
    for (;;) {
        dmn_item one;
        if (!ok) {
            if (dmn_queue_take(m->queue, &one, 1, 1 << 30, 0, 1, 0) == 0) break;
            fail_doc(one.req, one.doc, DMN_DOC_INTERNAL, "worker out of memory");
            if (atomic_fetch_sub(&one.req->n_left, 1) == 1) hand_back(srv, one.req);
            continue;
        }
        int n = dmn_queue_take(m->queue, w.items, w.max_items, srv->conf.batching.max_batch_tokens,
                               srv->conf.batching.max_wait_ms, last_n, w.replied_at);
        if (n == 0) break; /* closed and drained: the daemon is stopping */
        run_batch(&w, n);
        last_n = w.n_items < w.max_items ? w.n_items : w.max_items;
        if (batches_left > 0 && --batches_left == 0) {
            DMN_LOG(DMN_LOG_ERROR, "worker: NLPD_TEST_WORKER_EXIT_AFTER reached: ending");
            break;
        }
    }
    DMN_LOG(DMN_LOG_DEBUG, "worker stopped");
    free(w.items);
    free(w.in);
    free(w.docs);
    free(w.prepared);
    free(w.left);
    free(w.finished);
    free(w.gptr);
    free(w.gjobs);
    free(w.sjobs);
    free(w.sreq);
    free(w.creq);
    free(w.lens);
    free(w.rows);
    free(w.ends);
    atomic_store(&m->worker_running, 0);
    return NULL;
}
