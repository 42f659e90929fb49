/* bench_daemon: documents/s through nlpd with 1 and 16 concurrent clients, against the
 * same work done in-process (tasks + engine, no daemon) with the same batching.
 *
 *   bench_daemon --connect EP --model DIR [--config conf/nlpd.conf] [--threads N]
 *                [--max-rows 32] [--max-batch-tokens 8192] [--scale F] [--reps R]
 *
 * Work: classify (8 labels, 64-token documents) and summarize (greedy, exactly 32 new
 * tokens: min_new_tokens = max_new_tokens = 32 so EOS never ends a row early,
 * no_repeat_ngram_size 0). Every document is distinct.
 *
 * Through the daemon, C client threads (one libnlpclient client each) send one
 * document per request and one request at a time, until N documents are done: the
 * daemon sees C requests at once and batches them. In-process, the same N documents run
 * in groups of C: task_prepare, the jobs split into engine calls by the daemon's own rule
 * (dmn_sched_split with batching.max_rows / max_batch_tokens, jobs sorted by length),
 * eng_generate / eng_score, task_finish. So "1 client" vs "batch 1" and "16 clients" vs
 * "batch 16" do the same engine work; the difference is the daemon (sockets, protobuf,
 * queueing, max_wait_ms). Each row runs R times (default 5), daemon and in-process
 * alternating, and keeps the best documents/s of each: on a shared machine the best run
 * is the one least disturbed by other work.
 *
 * Prints a table and the targets: daemon overhead < 5% against in-process; with 16
 * clients summarize >= 4x and classify >= 1.5x the documents/s of 1 client. Exit 0 if
 * the runs worked (targets are reported, not enforced), 1 on errors. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients/libnlpclient/nlpclient.h"
#include "common/common.h"
#include "daemon/dmn_sched.h"
#include "engine/engine.h"
#include "engine/tok.h"
#include "tasks/task.h"

#define DOC_TOKENS 64
#define NEW_TOKENS 32
#define N_LABELS 8
#define MAX_DOCS 1024

static const char *const labels[N_LABELS] = {
    "business", "sports", "politics", "science", "health", "travel", "music", "weather",
};

static const char *const words[] = {
    "the",       "council",  "approved", "a",           "new",       "budget", "for",
    "public",    "parks",    "while",    "researchers", "reported",  "that",   "regular",
    "exercise",  "improves", "memory",   "in",          "older",     "adults", "and",
    "markets",   "rallied",  "after",    "strong",      "earnings",  "from",   "technology",
    "companies", "as",       "rain",     "is",          "expected",  "across", "the",
    "region",    "during",   "weekend",  "festival",    "of",        "music",  "food",
    "travelers", "crowded",  "airports", "team",        "won",       "final",  "match",
    "with",      "late",     "goal",     "minister",    "announced", "plans",
};

static char *docs[MAX_DOCS];
static int n_docs_made;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Distinct documents of exactly DOC_TOKENS tokens (EOS not counted): words are appended
 * (from a per-document pseudo-random walk) until the encoding reaches the length; a word
 * that overshoots is skipped. */
static int make_docs(const tok_model *tok, int n)
{
    int32_t ids[512];
    unsigned seed = 12345;
    size_t nw = sizeof words / sizeof words[0];
    for (int d = 0; d < n; d++) {
        char buf[2048];
        int len = 0, toks = 0, tries = 0;
        buf[0] = '\0';
        while (toks != DOC_TOKENS && tries++ < 10000) {
            seed = seed * 1103515245u + 12345u;
            const char *w = words[(seed >> 16) % nw];
            int add = snprintf(buf + len, sizeof buf - (size_t)len, "%s%s", len ? " " : "", w);
            int t = tok_encode(tok, buf, (size_t)(len + add), 0, ids, 512);
            if (t > DOC_TOKENS) {
                buf[len] = '\0';
                continue;
            }
            len += add;
            toks = t;
        }
        if (toks != DOC_TOKENS) return -1;
        docs[d] = strdup(buf);
    }
    n_docs_made = n;
    return 0;
}

static void set_request(nlpc_request *rq, task_kind kind)
{
    if (kind == TASK_CLASSIFY) {
        nlpc_request_init(rq, NLPC_TASK_CLASSIFY);
        rq->labels = labels;
        rq->n_labels = N_LABELS;
    } else {
        nlpc_request_init(rq, NLPC_TASK_SUMMARIZE);
        rq->opts.num_beams = 1;
        rq->opts.max_new_tokens = NEW_TOKENS;
        rq->opts.min_new_tokens = NEW_TOKENS;
        rq->opts.no_repeat_ngram_size = 0;
    }
    rq->n_docs = 1;
}

static void set_input(task_input *in, task_kind kind, const char *doc)
{
    memset(in, 0, sizeof *in);
    in->kind = kind;
    in->text = doc;
    in->text_len = strlen(doc);
    task_decode_opts_unset(&in->opts);
    if (kind == TASK_CLASSIFY) {
        in->labels = labels;
        in->n_labels = N_LABELS;
    } else {
        in->opts.num_beams = 1;
        in->opts.max_new_tokens = NEW_TOKENS;
        in->opts.min_new_tokens = NEW_TOKENS;
        in->opts.no_repeat_ngram_size = 0;
    }
}

/* ---- through the daemon ---- */

static const char *endpoint;

typedef struct drun {
    task_kind kind;
    int n_docs;
    int next; /* next document to send; under lock */
    int errors;
    int out_tokens;
    pthread_mutex_t lock;
} drun;

static void *client_main(void *arg)
{
    drun *d = arg;
    char err[256];
    nlpc_client *c = nlpc_client_new(endpoint, err, sizeof err);
    if (!c) {
        pthread_mutex_lock(&d->lock);
        d->errors++;
        pthread_mutex_unlock(&d->lock);
        return NULL;
    }
    nlpc_request rq;
    set_request(&rq, d->kind);
    for (;;) {
        pthread_mutex_lock(&d->lock);
        int i = d->next < d->n_docs ? d->next++ : -1;
        pthread_mutex_unlock(&d->lock);
        if (i < 0) break;
        const char *doc = docs[i % n_docs_made];
        rq.docs = &doc;
        nlpc_response *r = NULL;
        int rc = nlpc_call(c, &rq, 600000, &r);
        int bad = rc < 0 || r->code != NLPC_OK || r->n_results != 1;
        if (bad) fprintf(stderr, "bench_daemon: %s\n", rc < 0 ? nlpc_client_error(c) : r->message);
        pthread_mutex_lock(&d->lock);
        d->errors += bad;
        if (!bad) d->out_tokens += (int)r->results[0].output_tokens;
        pthread_mutex_unlock(&d->lock);
        nlpc_response_free(&r);
    }
    nlpc_client_destroy(&c);
    return NULL;
}

/* Returns documents/s, or -1 on errors. */
static double run_daemon(task_kind kind, int clients, int n_docs, int *out_tokens)
{
    drun d = { .kind = kind, .n_docs = n_docs };
    pthread_mutex_init(&d.lock, NULL);
    pthread_t th[64];
    double t0 = now_s();
    for (int i = 0; i < clients; i++) pthread_create(&th[i], NULL, client_main, &d);
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    pthread_mutex_destroy(&d.lock);
    *out_tokens = d.out_tokens;
    return d.errors ? -1 : n_docs / dt;
}

/* ---- in-process ---- */

typedef struct inproc {
    task_env env;
    eng_ctx *ctx;
    int max_rows, max_batch_tokens;
} inproc;

static int cmp_job(const void *a, const void *b)
{
    const task_job *x = *(task_job *const *)a, *y = *(task_job *const *)b;
    return (x->n_ids > y->n_ids) - (x->n_ids < y->n_ids);
}

/* Runs one group of documents the way the daemon's worker does. Returns the number of
 * failed documents. */
static int run_group(inproc *p, task_kind kind, const char *const *group, int n, int *out_tok)
{
    task_input in[64];
    task_doc dd[64];
    task_job *jobs[1024];
    eng_gen_req greq[1024];
    eng_score_req sreq[1024];
    int lens[1024], rows[1024], ends[1024];
    int n_jobs = 0, bad = 0;
    char err[256];
    for (int i = 0; i < n; i++) {
        set_input(&in[i], kind, group[i]);
        memset(&dd[i], 0, sizeof dd[i]);
        if (task_prepare(&p->env, &in[i], &dd[i], err, sizeof err) < 0) {
            fprintf(stderr, "task_prepare: %s\n", err);
            return n;
        }
        for (int k = 0; k < dd[i].n_jobs && n_jobs < 1024; k++) jobs[n_jobs++] = &dd[i].jobs[k];
    }
    qsort(jobs, (size_t)n_jobs, sizeof *jobs, cmp_job);
    for (int i = 0; i < n_jobs; i++) {
        lens[i] = jobs[i]->n_ids;
        if (jobs[i]->kind == TASK_JOB_SCORE)
            rows[i] = jobs[i]->score.n_cands > 0 ? jobs[i]->score.n_cands : 1;
        else rows[i] = jobs[i]->params.num_beams > 0 ? jobs[i]->params.num_beams : 1;
    }
    int calls = dmn_sched_split(lens, rows, n_jobs, p->max_batch_tokens, p->max_rows, ends);
    for (int c = 0, start = 0; c < calls; start = ends[c++]) {
        int cnt = ends[c] - start;
        int rc;
        if (jobs[start]->kind == TASK_JOB_SCORE) {
            for (int k = 0; k < cnt; k++) sreq[k] = jobs[start + k]->score;
            rc = eng_score(p->ctx, sreq, cnt);
            for (int k = 0; k < cnt; k++)
                jobs[start + k]->score.status = rc < 0 ? rc : sreq[k].status;
        } else {
            for (int k = 0; k < cnt; k++) greq[k] = jobs[start + k]->gen;
            rc = eng_generate(p->ctx, greq, cnt);
            for (int k = 0; k < cnt; k++)
                jobs[start + k]->gen.status = rc < 0 ? rc : greq[k].status;
        }
    }
    for (int i = 0; i < n; i++) {
        task_result res;
        memset(&res, 0, sizeof res);
        task_finish(&p->env, &in[i], &dd[i], &res);
        if (res.status != TASK_OK) {
            fprintf(stderr, "task_finish: %s\n", res.message);
            bad++;
        }
        *out_tok += res.output_tokens;
        task_result_clear(&res);
    }
    return bad;
}

static double run_inproc(inproc *p, task_kind kind, int batch, int n_docs, int *out_tokens)
{
    const char *group[64];
    int bad = 0;
    *out_tokens = 0;
    double t0 = now_s();
    for (int i = 0; i < n_docs; i += batch) {
        int n = n_docs - i < batch ? n_docs - i : batch;
        for (int k = 0; k < n; k++) group[k] = docs[(i + k) % n_docs_made];
        bad += run_group(p, kind, group, n, out_tokens);
    }
    double dt = now_s() - t0;
    return bad ? -1 : n_docs / dt;
}

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *config = "conf/nlpd.conf";
    int threads = 0, max_rows = 32, max_batch_tokens = 8192;
    double scale = 1.0;
    int reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--connect")) endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--model")) model_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--config")) config = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-rows")) max_rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-batch-tokens")) max_batch_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--scale")) scale = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_daemon: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!endpoint || !model_dir || scale <= 0 || reps < 1) {
        fprintf(stderr,
                "usage: bench_daemon --connect EP --model DIR [--config FILE] "
                "[--threads N] [--max-rows N] [--max-batch-tokens N] [--scale F] [--reps R]\n");
        return 2;
    }

    char err[512], path[1024];
    inproc p;
    memset(&p, 0, sizeof p);
    p.max_rows = max_rows;
    p.max_batch_tokens = max_batch_tokens;
    snprintf(path, sizeof path, "%s/spiece.model", model_dir);
    tok_model *tok = tok_load(path, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "bench_daemon: %s\n", err);
        return 1;
    }
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    eng_model *model = eng_model_load(model_dir, &mp, err, sizeof err);
    task_conf *conf = model ? task_conf_load(config, err, sizeof err) : NULL;
    if (!model || !conf) {
        fprintf(stderr, "bench_daemon: %s\n", err);
        return 1;
    }
    p.env.tok = tok;
    p.env.model = eng_model_config(model);
    p.env.conf = conf;
    p.env.max_input_tokens = task_conf_max_input_tokens(conf);
    eng_ctx_params cp = task_conf_ctx_params(conf);
    if (cp.max_rows < max_rows) cp.max_rows = max_rows;
    p.ctx = eng_ctx_new(model, &cp, err, sizeof err);
    if (!p.ctx || make_docs(tok, 512) < 0) {
        fprintf(stderr, "bench_daemon: %s\n", p.ctx ? "cannot make 64-token documents" : err);
        return 1;
    }

    struct {
        task_kind kind;
        const char *name;
        int conc;
        int n;
    } runs[] = {
        { TASK_CLASSIFY, "classify", 1, 24 },
        { TASK_CLASSIFY, "classify", 16, 96 },
        { TASK_SUMMARIZE, "summarize", 1, 8 },
        { TASK_SUMMARIZE, "summarize", 16, 64 },
    };
    double dps[4][2];
    int failed = 0;
    printf("bench_daemon: model %s, %d-token documents, classify %d labels, summarize greedy "
           "%d new tokens (EOS ignored); %s kernels\n",
           model_dir, DOC_TOKENS, N_LABELS, NEW_TOKENS, eng_kernels());
    printf("best of %d rounds of all rows\n", reps);
    printf("%-10s %8s %6s %14s %14s %10s\n", "task", "clients", "docs", "daemon doc/s",
           "in-proc doc/s", "overhead");

    /* warm both paths (page in the weights, first-touch workspaces) */
    int tok_out;
    run_inproc(&p, TASK_CLASSIFY, 1, 2, &tok_out);
    run_daemon(TASK_CLASSIFY, 1, 2, &tok_out);

    /* Rounds of all four rows (daemon, then in-process, each), best of the rounds: the
     * machine's speed drifts over seconds, and a row measured in every round is compared
     * with rows measured beside it, not minutes apart. */
    int n_of[4];
    for (int r = 0; r < 4; r++) {
        n_of[r] = (int)(runs[r].n * scale + 0.5);
        if (n_of[r] < runs[r].conc) n_of[r] = runs[r].conc;
        dps[r][0] = dps[r][1] = 0;
    }
    for (int k = 0; k < reps; k++) {
        for (int r = 0; r < 4; r++) {
            int n = n_of[r], t_d = 0, t_i = 0;
            double dk = run_daemon(runs[r].kind, runs[r].conc, n, &t_d);
            double ik = run_inproc(&p, runs[r].kind, runs[r].conc, n, &t_i);
            if (dk < 0 || ik < 0) failed = 1;
            if (runs[r].kind == TASK_SUMMARIZE &&
                (t_d != n * NEW_TOKENS || t_i != n * NEW_TOKENS)) {
                fprintf(stderr,
                        "bench_daemon: expected %d output tokens, daemon %d, "
                        "in-process %d\n",
                        n * NEW_TOKENS, t_d, t_i);
                failed = 1;
            }
            if (dk > dps[r][0]) dps[r][0] = dk;
            if (ik > dps[r][1]) dps[r][1] = ik;
        }
    }
    for (int r = 0; r < 4; r++)
        printf("%-10s %8d %6d %14.2f %14.2f %9.1f%%\n", runs[r].name, runs[r].conc, n_of[r],
               dps[r][0], dps[r][1], 100.0 * (1.0 - dps[r][0] / dps[r][1]));

    double worst = 0;
    for (int r = 0; r < 4; r++) {
        double o = 1.0 - dps[r][0] / dps[r][1];
        if (o > worst) worst = o;
    }
    double cls_x = dps[1][0] / dps[0][0], sum_x = dps[3][0] / dps[2][0];
    double cls_xi = dps[1][1] / dps[0][1], sum_xi = dps[3][1] / dps[2][1];
    printf("16 clients / 1 client: classify %.2fx (in-process batch 16 / 1: %.2fx), "
           "summarize %.2fx (in-process %.2fx)\n",
           cls_x, cls_xi, sum_x, sum_xi);
    printf("  target: daemon overhead < 5%% in every row: %s (worst %.1f%%)\n",
           worst < 0.05 ? "MET" : "NOT MET", worst * 100);
    printf("  target: summarize 16 clients >= 4x 1 client: %s (%.2fx)\n",
           sum_x >= 4 ? "MET" : "NOT MET", sum_x);
    printf("  target: classify 16 clients >= 1.5x 1 client: %s (%.2fx)\n",
           cls_x >= 1.5 ? "MET" : "NOT MET", cls_x);

    for (int i = 0; i < n_docs_made; i++) free(docs[i]);
    eng_ctx_free(&p.ctx);
    task_conf_free(&conf);
    eng_model_free(&model);
    tok_free(&tok);
    return failed;
}
