/* Work queue: pushed by the I/O thread, taken by the worker thread (see dmn_sched.h).
 *
 * Fairness between clients: within a priority, documents are served round-robin over
 * the clients that have some queued (start-time fair queueing), not in arrival order, so
 * one client with 2,000 queued documents delays another's next document by about one
 * document per client, not by 2,000. A client is its reply route's first frame (a
 * ROUTER peer's routing id; the pipeline's and each HTTP request's are their own). Each
 * document gets a tag, one past the larger of the client's last tag and the tag of the
 * last document taken (vtime); the heap orders by priority, tag, then arrival time, so
 * a client's own documents keep their order. dmn_item.order holds the tag. */
#include "daemon/dmn_sched.h"

#include "common/common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAIR_SLOTS DMN_CLIENT_SLOTS /* two clients that share a slot share a turn */

struct dmn_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on push and close */
    dmn_item *heap;    /* [cap] binary heap, best at 0 */
    int n, cap;
    int max_input_tokens;
    long est_sum;       /* sum of est_tokens queued */
    uint64_t vtime;     /* the tag of the last document taken */
    uint64_t *last_tag; /* [FAIR_SLOTS] by client hash: its last document's tag */
    int closed;
    dmn_clock_fn now; /* the clock waits are measured by (cm_now) */
    void *now_arg;
    uint64_t sleeps; /* take()'s waits on cv, for tests to synchronise on */
};

static double mono_now(void *arg)
{
    (void)arg;
    return cm_now();
}

dmn_queue *dmn_queue_new(int capacity, int max_input_tokens)
{
    dmn_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->heap = calloc((size_t)capacity, sizeof *q->heap);
    q->last_tag = calloc(FAIR_SLOTS, sizeof *q->last_tag);
    if (!q->heap || !q->last_tag) {
        free(q->heap);
        free(q->last_tag);
        free(q);
        return NULL;
    }
    q->cap = capacity;
    q->max_input_tokens = max_input_tokens;
    q->now = mono_now;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

void dmn_queue_free(dmn_queue **qp)
{
    dmn_queue *q = *qp;
    if (!q) return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->heap);
    free(q->last_tag);
    free(q);
    *qp = NULL;
}

void dmn_queue_set_clock(dmn_queue *q, dmn_clock_fn now, void *arg)
{
    pthread_mutex_lock(&q->mu);
    q->now = now ? now : mono_now;
    q->now_arg = now ? arg : NULL;
    pthread_mutex_unlock(&q->mu);
}

void dmn_queue_wake(dmn_queue *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

uint64_t dmn_queue_sleeps(dmn_queue *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t n = q->sleeps;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* a runs before b */
static int before(const dmn_item *a, const dmn_item *b)
{
    if (a->priority != b->priority) return a->priority > b->priority;
    if (a->order != b->order) return a->order < b->order; /* fair tags */
    return a->t_enq < b->t_enq;
}

static void sift_up(dmn_item *h, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(&h[i], &h[p])) break;
        dmn_item t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void sift_down(dmn_item *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[l], &h[m])) m = l;
        if (r < n && before(&h[r], &h[m])) m = r;
        if (m == i) break;
        dmn_item t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

unsigned dmn_client_slot(const dmn_route *rt)
{
    uint64_t h = 1469598103934665603ULL;
    size_t n = rt->n_env > 0 ? rt->env_len[0] : 0;
    for (size_t i = 0; i < n; i++) h = (h ^ rt->env[i]) * 1099511628211ULL;
    return (unsigned)(h % FAIR_SLOTS);
}

int dmn_queue_push(dmn_queue *q, dmn_req *r, double now)
{
    pthread_mutex_lock(&q->mu);
    if (q->closed || q->n + r->n_docs > q->cap) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    /* An empty queue forgets every client's turn: nobody is ahead of anybody. */
    if (q->n == 0) memset(q->last_tag, 0, FAIR_SLOTS * sizeof *q->last_tag);
    uint64_t *last = &q->last_tag[dmn_client_slot(&r->route)];
    for (int d = 0; d < r->n_docs; d++) {
        dmn_item *it = &q->heap[q->n];
        long est = (long)(r->doc_lens[d] / 4) + 2;
        it->req = r;
        it->doc = d;
        it->est_tokens = est > q->max_input_tokens ? q->max_input_tokens : (int)est;
        it->priority = r->priority;
        it->order = *last = (*last > q->vtime ? *last : q->vtime) + 1;
        it->t_enq = now;
        it->deadline = r->t_deadline;
        q->est_sum += it->est_tokens;
        sift_up(q->heap, q->n++);
    }
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int dmn_queue_depth(dmn_queue *q)
{
    pthread_mutex_lock(&q->mu);
    int n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void dmn_queue_close(dmn_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static double oldest(const dmn_queue *q)
{
    double t = q->heap[0].t_enq;
    for (int i = 1; i < q->n; i++)
        if (q->heap[i].t_enq < t) t = q->heap[i].t_enq;
    return t;
}

int dmn_queue_take(dmn_queue *q, dmn_item *out, int max_items, int max_tokens, int max_wait_ms,
                   int expect, double replied_at)
{
    int n = 0;
    pthread_mutex_lock(&q->mu);
    double free_at = q->now(q->now_arg);
    for (int i = 0; i < q->n; i++)
        if (q->heap[i].t_enq < replied_at) expect++;
    if (expect > max_items) expect = max_items;
    /* The queue can empty under a waiting worker: the I/O thread expires documents
     * whose deadline passed. That is not the end of the work: wait again. Only a closed
     * queue that is empty returns 0. */
    for (;;) {
        while (q->n == 0 && !q->closed) {
            q->sleeps++;
            pthread_cond_wait(&q->cv, &q->mu);
        }
        if (q->n == 0) break;
        /* A short queue waits a little for company, so the engine runs fuller batches.
         * The wait counts from when the worker became free or the oldest document
         * arrived, whichever is later: documents that queued during the last batch must
         * not end the wait at once, or the clients it just answered never catch up, and
         * batches alternate between a few early documents and everyone else. */
        while (!q->closed && q->n > 0 && q->n < expect && q->est_sum < max_tokens) {
            double from = oldest(q) > free_at ? oldest(q) : free_at;
            double until = from + max_wait_ms * 1e-3, now = q->now(q->now_arg);
            if (now >= until) break;
            /* The condition's timeout is CLOCK_MONOTONIC's: what the queue's clock has
             * left to go, from now. Woken or timed out, the loop reads the clock again:
             * the clock, not the timeout, ends the wait. */
            double at = cm_now() + (until - now);
            struct timespec ts;
            ts.tv_sec = (time_t)at;
            ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            q->sleeps++;
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        if (q->n > 0) break;
    }
    long tokens = 0;
    while (q->n > 0 && n < max_items) {
        if (n > 0 && tokens + q->heap[0].est_tokens > max_tokens) break;
        out[n] = q->heap[0];
        if (out[n].order > q->vtime) q->vtime = out[n].order;
        tokens += out[n].est_tokens;
        q->est_sum -= out[n].est_tokens;
        n++;
        q->heap[0] = q->heap[--q->n];
        sift_down(q->heap, q->n, 0);
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

int dmn_queue_try_take(dmn_queue *q, dmn_item *out)
{
    return dmn_queue_try_take_if(q, out, NULL, NULL);
}

int dmn_queue_try_take_if(dmn_queue *q, dmn_item *out, int (*ok)(const dmn_item *it, void *arg),
                          void *arg)
{
    int n = 0;
    pthread_mutex_lock(&q->mu);
    if (q->n > 0 && (!ok || ok(&q->heap[0], arg))) {
        *out = q->heap[0];
        if (out->order > q->vtime) q->vtime = out->order;
        q->est_sum -= out->est_tokens;
        q->heap[0] = q->heap[--q->n];
        sift_down(q->heap, q->n, 0);
        n = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

int dmn_queue_expire(dmn_queue *q, double now, dmn_item *out, int cap, double *next)
{
    int n = 0, kept = 0;
    double earliest = 0;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < q->n; i++) {
        dmn_item *it = &q->heap[i];
        if (it->deadline < now && n < cap) {
            out[n++] = *it;
            q->est_sum -= it->est_tokens;
            continue;
        }
        if (earliest == 0 || it->deadline < earliest) earliest = it->deadline;
        q->heap[kept++] = *it;
    }
    q->n = kept;
    if (n > 0) { /* the order broke: rebuild the heap */
        for (int i = kept / 2 - 1; i >= 0; i--) sift_down(q->heap, kept, i);
        /* A worker waiting for company re-counts what is left (and, if nothing is,
         * goes back to waiting for work). */
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (next) *next = earliest;
    return n;
}

int dmn_sched_split(const int *lens, const int *rows, int n, int max_tokens, int max_rows,
                    int *ends)
{
    int groups = 0, count = 0, longest = 0, nrows = 0;
    for (int i = 0; i < n; i++) {
        int l = lens[i] > longest ? lens[i] : longest;
        if (count > 0 && ((long)(count + 1) * l > max_tokens || nrows + rows[i] > max_rows)) {
            ends[groups++] = i;
            count = 0, longest = 0, nrows = 0;
            l = lens[i];
        }
        count++;
        longest = l;
        nrows += rows[i];
    }
    if (count > 0) ends[groups++] = n;
    return groups;
}
