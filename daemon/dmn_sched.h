/* The work queue between the I/O thread (push) and the worker thread (take), and the
 * batching rules. The queue holds documents (a request's documents are queued together
 * or not at all), ordered by request priority (higher first), then round-robin over
 * clients (each client's documents in arrival order; dmn_sched.c).
 *
 * Thread use: dmn_queue_push/close/depth from the I/O thread, dmn_queue_take from the
 * worker; one mutex + condition variable inside. dmn_sched_split is pure. */
#ifndef NLP_DMN_SCHED_H
#define NLP_DMN_SCHED_H

#include <stdint.h>

#include "daemon/dmn_req.h"

typedef struct dmn_item {
    dmn_req *req;   /* borrowed: the request is owned by the worker side */
    int doc;        /* document index */
    int est_tokens; /* cheap estimate (bytes / 4 + 2) used to fill batches */
    int priority;
    uint64_t order;  /* fair-queueing tag (dmn_sched.c): per client, in arrival order */
    double t_enq;    /* the queue's clock (CLOCK_MONOTONIC seconds) */
    double deadline; /* the request's, on the same clock */
} dmn_item;

typedef struct dmn_queue dmn_queue;

/* Clients told apart (by a hash of their route's first frame: a ROUTER peer's routing
 * id; every request of a transport without one is one client). */
#define DMN_CLIENT_SLOTS 4096
/* The client's slot: FNV-1a of its route's first frame (0 frames: one client). */
unsigned dmn_client_slot(const dmn_route *rt);

/* capacity: documents. max_input_tokens caps each estimate. NULL on failure. */
dmn_queue *dmn_queue_new(int capacity, int max_input_tokens);
void dmn_queue_free(dmn_queue **q);

/* The clock take() measures its waits by: seconds on the scale of the `now` and
 * deadline arguments (cm_now, CLOCK_MONOTONIC, unless set). Set before the queue is
 * used. A test sets its own and moves it: a waiting take() sees a moved clock when woken
 * (dmn_queue_wake), so what it waits for is decided by the clock, not by sleeping. */
typedef double (*dmn_clock_fn)(void *arg);
void dmn_queue_set_clock(dmn_queue *q, dmn_clock_fn now, void *arg);
/* Wakes a waiting take() to read the clock again. */
void dmn_queue_wake(dmn_queue *q);
/* How many times a take() has gone to sleep (for work, or for company): a test knows
 * from it that the taker is waiting. */
uint64_t dmn_queue_sleeps(dmn_queue *q);

/* Queues every document of r, or none: -1 when they do not all fit (OVERLOADED) or the
 * queue is closed. On 0 the request now belongs to the worker side. */
int dmn_queue_push(dmn_queue *q, dmn_req *r, double now);
int dmn_queue_depth(dmn_queue *q);
/* No more pushes; take() no longer waits to fill batches and returns 0 once empty. */
void dmn_queue_close(dmn_queue *q);

/* Blocks until there is work, then waits (up to max_wait_ms after the call or the oldest
 * document's arrival, whichever is later) for company: until `expect` documents (at most
 * max_items) or max_tokens estimated tokens are queued. The worker passes the size of its
 * last batch as expect and the time its replies went out as replied_at: the clients it
 * answered are likely to send again, so a lone client pays no batching delay while
 * concurrent clients fill batches. Documents queued before replied_at come from other
 * clients (nobody answered could have sent them), so they add to expect: a client that
 * arrived while a batch ran does not split the next batch from the ones just answered.
 * Takes the best documents (priority, then arrival) into out[], at least one, stopping
 * before the estimate would pass max_tokens. Returns the count, which is 0 only when the
 * queue is closed and empty: documents expired during the wait send it back to waiting
 * for work, never out with nothing. */
int dmn_queue_take(dmn_queue *q, dmn_item *out, int max_items, int max_tokens, int max_wait_ms,
                   int expect, double replied_at);

/* Takes the best queued document into *out without waiting: 1, or 0 if none is queued
 * (the worker's joins into a running generation). */
int dmn_queue_try_take(dmn_queue *q, dmn_item *out);
/* The same, only when the best queued document passes ok(document, arg) (called under
 * the queue's lock): the worker takes scoring documents between decode steps this way,
 * leaving a generation document at the head its turn. */
int dmn_queue_try_take_if(dmn_queue *q, dmn_item *out, int (*ok)(const dmn_item *it, void *arg),
                          void *arg);

/* Removes up to cap documents whose deadline is before `now` into out[] (the I/O thread
 * answers them DEADLINE_EXCEEDED without waiting for the worker). Returns the count;
 * *next (if not NULL) gets the earliest deadline still queued, or 0 if none. */
int dmn_queue_expire(dmn_queue *q, double now, dmn_item *out, int cap, double *next);

/* Splits n jobs, in the given order, into consecutive engine calls: each call's padded
 * encoder size (jobs * longest input) stays <= max_tokens and its decoder rows (beams or
 * label candidates) <= max_rows; a job over a bound on its own is a call by itself.
 * Writes the end index (exclusive) of each call into ends[] (room for n). Returns the
 * number of calls. */
int dmn_sched_split(const int *lens, const int *rows, int n, int max_tokens, int max_rows,
                    int *ends);

#endif
