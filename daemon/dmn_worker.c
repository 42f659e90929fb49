/* The worker thread: the only user of the engine context (eng_ctx).
 *
 * Loop: take documents from the queue (priority, then arrival; waiting up to
 * batching.max_wait_ms to fill a batch), check each one's deadline, task_prepare() them,
 * gather the jobs of all documents -- whatever their request or task -- into as few
 * eng_generate()/eng_score() calls as the batch bounds allow (jobs sorted by length so
 * padding stays small), task_finish() each document, and hand every request whose last
 * document is done back to the I/O thread over the inproc PAIR socket (the pointer
 * moves; the I/O thread owns the request from then on).
 *
 * Working arrays grow to the largest batch seen and are reused: no allocation per batch
 * once warm (task_prepare/finish allocate their own results). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon/dmn_log.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_server.h"
#include "daemon/dmn_stats.h"

typedef struct worker {
    dmn_server *srv;
    int max_items;
    dmn_item *items;           /* [max_items] */
    task_input *in;            /* [max_items] per taken document */
    task_doc *docs;            /* [max_items] */
    int *prepared;             /* [max_items] 1: docs[i] holds jobs */
    /* job lists, grown on demand */
    int cap;
    task_job **gjobs, **sjobs; /* [cap] */
    eng_gen_req *greq;         /* [cap] contiguous copies for eng_generate */
    eng_score_req *sreq;       /* [cap] */
    int *lens, *rows, *ends;   /* [cap] */
    double replied_at;         /* when the last batch's replies went out (0: none yet) */
} worker;

int dmn_code_from_task(int st)
{
    switch (st) {
    case TASK_OK: return DMN_OK;
    case TASK_EINVAL: return DMN_INVALID_ARGUMENT;
    case TASK_ETOOLONG: return DMN_INPUT_TOO_LONG;
    default: return DMN_INTERNAL;
    }
}

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
        grow_array((void **)&w->greq, sizeof *w->greq, cap) < 0 ||
        grow_array((void **)&w->sreq, sizeof *w->sreq, cap) < 0 ||
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

static void fail_doc(dmn_req *r, int doc, int code, const char *msg)
{
    r->out[doc].code = code;
    snprintf(r->out[doc].message, sizeof r->out[doc].message, "%s", msg);
}

/* Runs the generation jobs in calls bounded by max_batch_tokens and max_rows. */
static void run_generate(worker *w, int n)
{
    dmn_server *srv = w->srv;
    if (n == 0) return;
    qsort(w->gjobs, (size_t)n, sizeof *w->gjobs, cmp_job_len);
    for (int i = 0; i < n; i++) {
        w->lens[i] = w->gjobs[i]->n_ids;
        w->rows[i] = w->gjobs[i]->params.num_beams > 0 ? w->gjobs[i]->params.num_beams : 1;
    }
    int calls = dmn_sched_split(w->lens, w->rows, n, srv->conf.batching.max_batch_tokens,
                                srv->conf.batching.max_rows, w->ends);
    for (int c = 0, start = 0; c < calls; start = w->ends[c++]) {
        int cnt = w->ends[c] - start;
        uint64_t in_tok = 0, out_tok = 0;
        for (int k = 0; k < cnt; k++) {
            w->greq[k] = w->gjobs[start + k]->gen;
            in_tok += (uint64_t)w->lens[start + k];
        }
        int rc = eng_generate(srv->ctx, w->greq, cnt);
        if (rc < 0)
            DMN_LOG(DMN_LOG_ERROR, "eng_generate(%d sequences): %s", cnt, eng_strerror(rc));
        for (int k = 0; k < cnt; k++) {
            task_job *j = w->gjobs[start + k];
            j->gen.status = rc < 0 ? rc : w->greq[k].status;
            if (j->gen.status == 0 && j->result.n_hyps > 0)
                out_tok += (uint64_t)j->result.hyps[0].n_tokens;
        }
        dmn_stats_batch(srv->stats, cnt, in_tok, out_tok, dmn_now());
    }
}

static void run_score(worker *w, int n)
{
    dmn_server *srv = w->srv;
    if (n == 0) return;
    qsort(w->sjobs, (size_t)n, sizeof *w->sjobs, cmp_job_len);
    for (int i = 0; i < n; i++) {
        w->lens[i] = w->sjobs[i]->n_ids;
        /* Candidates are teacher-forced, not decoder rows held across steps: the engine
         * groups them by its own workspace, so a call is bounded by tokens only. */
        w->rows[i] = 1;
    }
    int calls = dmn_sched_split(w->lens, w->rows, n, srv->conf.batching.max_batch_tokens,
                                srv->conf.batching.max_rows, w->ends);
    for (int c = 0, start = 0; c < calls; start = w->ends[c++]) {
        int cnt = w->ends[c] - start;
        uint64_t in_tok = 0;
        for (int k = 0; k < cnt; k++) {
            w->sreq[k] = w->sjobs[start + k]->score;
            in_tok += (uint64_t)w->lens[start + k];
        }
        int rc = eng_score(srv->ctx, w->sreq, cnt);
        if (rc < 0)
            DMN_LOG(DMN_LOG_ERROR, "eng_score(%d sequences): %s", cnt, eng_strerror(rc));
        for (int k = 0; k < cnt; k++)
            w->sjobs[start + k]->score.status = rc < 0 ? rc : w->sreq[k].status;
        dmn_stats_batch(srv->stats, cnt, in_tok, 0, dmn_now());
    }
}

static void hand_back(dmn_server *srv, dmn_req *r)
{
    r->t_done = dmn_now();
    if (zmq_send(srv->done_tx, &r, sizeof r, 0) != (int)sizeof r) {
        /* Only when the context is being torn down, which waits for this thread. */
        DMN_LOG_REQ(DMN_LOG_ERROR, r->seq, r->id, "cannot hand the response back: %s",
                    zmq_strerror(zmq_errno()));
        dmn_req_free(&r);
    }
}

static void run_batch(worker *w, int n)
{
    dmn_server *srv = w->srv;
    char err[256];
    int ng = 0, ns = 0, finished = 0;
    double now = dmn_now();

    for (int i = 0; i < n; i++) {
        dmn_req *r = w->items[i].req;
        int d = w->items[i].doc;
        w->prepared[i] = 0;
        w->in[i] = r->in;
        w->in[i].text = r->docs[d];
        w->in[i].text_len = r->doc_lens[d];
        if (now > r->t_deadline) {
            snprintf(err, sizeof err, "deadline passed after %.0f ms in the queue",
                     (now - r->t_recv) * 1e3);
            fail_doc(r, d, DMN_DEADLINE_EXCEEDED, err);
            DMN_LOG_REQ(DMN_LOG_INFO, r->seq, r->id, "document %d: %s", d, err);
            continue;
        }
        if (r->t_start == 0) r->t_start = now;
        memset(&w->docs[i], 0, sizeof w->docs[i]);
        err[0] = '\0';
        int rc = task_prepare(&srv->env, &w->in[i], &w->docs[i], err, sizeof err);
        if (rc < 0) {
            fail_doc(r, d, dmn_code_from_task(rc), err[0] ? err : "task_prepare failed");
            DMN_LOG_REQ(DMN_LOG_INFO, r->seq, r->id, "document %d: %s: %s", d,
                        dmn_code_name(r->out[d].code), r->out[d].message);
            continue;
        }
        w->prepared[i] = 1;
        if (grow(w, ng + ns + w->docs[i].n_jobs) < 0) {
            task_doc_clear(&w->docs[i]);
            w->prepared[i] = 0;
            fail_doc(r, d, DMN_INTERNAL, "out of memory");
            continue;
        }
        for (int j = 0; j < w->docs[i].n_jobs; j++) {
            task_job *job = &w->docs[i].jobs[j];
            if (job->kind == TASK_JOB_SCORE) w->sjobs[ns++] = job;
            else w->gjobs[ng++] = job;
        }
    }

    DMN_LOG(DMN_LOG_DEBUG, "batch: %d documents, %d generation and %d scoring jobs", n, ng, ns);
    run_generate(w, ng);
    run_score(w, ns);

    for (int i = 0; i < n; i++) {
        dmn_req *r = w->items[i].req;
        int d = w->items[i].doc;
        if (w->prepared[i]) {
            dmn_doc *o = &r->out[d];
            memset(&o->res, 0, sizeof o->res);
            task_finish(&srv->env, &w->in[i], &w->docs[i], &o->res);
            o->has_res = 1;
            o->code = dmn_code_from_task(o->res.status);
            if (o->code != DMN_OK)
                snprintf(o->message, sizeof o->message, "%s",
                         o->res.message[0] ? o->res.message : "task failed");
            finished++;
        }
    }
    /* Counted before any reply goes out, so a client's next stats request sees them. */
    dmn_stats_documents(srv->stats, finished);
    w->replied_at = dmn_now();
    for (int i = 0; i < n; i++) {
        dmn_req *r = w->items[i].req;
        if (atomic_fetch_sub(&r->n_left, 1) == 1) hand_back(srv, r);
    }
}

void *dmn_worker_main(void *arg)
{
    dmn_server *srv = arg;
    worker w = { .srv = srv };
    w.max_items = srv->conf.batching.max_rows;
    w.items = calloc((size_t)w.max_items, sizeof *w.items);
    w.in = calloc((size_t)w.max_items, sizeof *w.in);
    w.docs = calloc((size_t)w.max_items, sizeof *w.docs);
    w.prepared = calloc((size_t)w.max_items, sizeof *w.prepared);
    if (!w.items || !w.in || !w.docs || !w.prepared || grow(&w, 64) < 0) {
        /* Without working memory nothing can run: answer every document INTERNAL. */
        DMN_LOG(DMN_LOG_ERROR, "worker: out of memory");
    }
    DMN_LOG(DMN_LOG_DEBUG, "worker started");
    int last_n = 1;   /* documents in the last batch: how much company to wait for */
    for (;;) {
        dmn_item one;
        if (!w.items || !w.in || !w.docs || !w.prepared || !w.cap) {
            if (dmn_queue_take(srv->queue, &one, 1, 1 << 30, 0, 1, 0) == 0) break;
            fail_doc(one.req, one.doc, DMN_INTERNAL, "worker out of memory");
            if (atomic_fetch_sub(&one.req->n_left, 1) == 1) hand_back(srv, one.req);
            continue;
        }
        int n = dmn_queue_take(srv->queue, w.items, w.max_items,
                               srv->conf.batching.max_batch_tokens,
                               srv->conf.batching.max_wait_ms, last_n, w.replied_at);
        if (n == 0) break;   /* closed and drained */
        last_n = n;
        run_batch(&w, n);
    }
    DMN_LOG(DMN_LOG_DEBUG, "worker stopped: queue drained");
    free(w.items);
    free(w.in);
    free(w.docs);
    free(w.prepared);
    free(w.gjobs);
    free(w.sjobs);
    free(w.greq);
    free(w.sreq);
    free(w.lens);
    free(w.rows);
    free(w.ends);
    return NULL;
}
