/* How many threads each engine call runs (eng_threads_step).
 *
 * libgomp's threads spin for a while at every barrier and at the end of every parallel
 * region (its default), so a decode step's ~150 regions cost almost nothing to enter on
 * a machine the process has to itself: 3.5x the tokens/s of sleeping threads on the 2-vCPU
 * development machine, where waking a sleeping vCPU is slow. Beside a busy neighbour the
 * same spinning is ruinous: a team waits at every barrier for the thread the kernel has
 * descheduled, while its partner burns the core the neighbour wanted (flan-t5-small:
 * beside a busy loop per CPU a spinning team did 0.5-0.6x one thread's documents/s, and
 * under heavier load a summary took 8-38 s where one thread took 1.1 s). No single
 * setting wins both (issue 21's contention figures, docs/deploy.md), so a model loaded
 * with n_threads = 0 chooses per step: it reads, about every TH_WINDOW_S seconds, the
 * CPUs the process could use (its own CPU time plus the idle time of its CPUs:
 * cm_cpu_free) and shares them between the engine contexts that ran in that window. A neighbour that takes a CPU takes a thread away; one
 * that leaves gives it back at the next reading. Results do not depend on the thread
 * count (every work item is computed the same way whichever thread takes it), so
 * changing it between steps changes no bits. A model loaded with n_threads = N > 0 runs
 * N threads always. */
#include "engine/eng_int.h"

#include "common/common.h"

#include <pthread.h>

#define TH_WINDOW_S 0.2

static pthread_mutex_t th_lock = PTHREAD_MUTEX_INITIALIZER;
static cm_cpu_reading th_last; /* the reading at the start of the current window */
static int th_have;            /* th_last holds a reading */
static double th_t0 = -1;      /* when the current window began (cm_now) */
static double th_free = -1;    /* CPUs free over the last window; -1: none yet */
static unsigned th_window = 1; /* the current window's number (0: never ran) */
static int th_users, th_prev;  /* contexts that ran in this window and in the last */

int eng_threads_pick(double free_cpus, int users, int max)
{
    if (max < 1) max = 1;
    if (free_cpus < 0) return max; /* no reading: what the model was loaded with */
    if (users < 1) users = 1;
    /* to the nearest: a neighbour that keeps a CPU busy (a spinning team beside it reads
     * 1.33 of 2 free, one thread 0.5-1) takes a thread; light, bursty ones (clients, the
     * daemon's other threads, a program starting) under half a CPU do not: a 2-thread
     * team beside 4 Python clients ran 20 documents/s, one thread 11.5 */
    int n = (int)(free_cpus / users + 0.5);
    return n < 1 ? 1 : n > max ? max : n;
}

/* Ends the current window: a reading, the CPUs free since the last one. th_lock held. */
static void th_roll(double now)
{
    cm_cpu_reading r;
    th_t0 = now;
    if (cm_cpu_read(&r) == 0) {
        if (th_have) th_free = cm_cpu_free(&th_last, &r);
        th_last = r;
        th_have = 1;
    } else { /* no /proc/stat: the model's count */
        th_free = -1;
        th_have = 0;
    }
    /* a window with no engine call (an idle daemon) says nobody else computes */
    th_prev = th_users;
    th_users = 0;
    th_window++;
}

void eng_threads_prime(void)
{
    pthread_mutex_lock(&th_lock);
    if (th_t0 < 0) th_roll(cm_now());
    pthread_mutex_unlock(&th_lock);
}

int eng_threads_step(eng_ctx *c)
{
    int n = c->m->n_threads;
    if (c->m->threads_auto) {
        double now = cm_now();
        pthread_mutex_lock(&th_lock);
        if (th_t0 < 0 || now - th_t0 >= TH_WINDOW_S) th_roll(now);
        if (c->nt_window != th_window) {
            c->nt_window = th_window;
            th_users++;
        }
        /* Before the first whole window, one thread: a team spinning beside busy CPUs
         * can be 30x slower than one thread, a thread too few alone 2x for 0.2 s. */
        double free_cpus = th_have && th_free < 0 ? 1.0 : th_free;
        n = eng_threads_pick(free_cpus, th_users > th_prev ? th_users : th_prev, n);
        pthread_mutex_unlock(&th_lock);
    }
    __atomic_store_n(&c->nt, n, __ATOMIC_RELAXED); /* eng_ctx_threads reads it anywhere */
#ifdef _OPENMP
    /* the calling thread's OpenMP setting, which other code may have changed */
    if (omp_get_max_threads() != n) eng_set_threads(n);
#endif
    return n;
}

int eng_ctx_threads(const eng_ctx *c) { return __atomic_load_n(&c->nt, __ATOMIC_RELAXED); }
