/* A document's results are bitwise the same alone and in any company, at any thread count
 * (docs/daemon.md, "Threads"): generation (greedy and beam search: tokens, scores and
 * log-prob sums) and label scoring (eng_score's log-likelihoods), compared with memcmp.
 * Alone, a short document's products take the few-rows kernel (up to 8 rows); in company
 * (documents of other lengths sharing every engine call, hundreds of encoder rows and 20+
 * decoder rows) the packed many-rows kernel. Both at 1 and 2 threads, on both tiny
 * models, and on tiny-flan held in int8; and sequence classification (tiny-bart-mnli).
 * And at the kernel level: a row's output through eng_gemm is the same bits at 1..200
 * rows, wherever the row falls. */
#include "engine/eng_int.h"
#include "engine/engine.h"
#include "tests/harness/harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BB_DOCS = 5, BB_LABELS = 5, BB_MAXLEN = 160, BB_COMPANY = 9 };

static unsigned bb_rand(unsigned *r)
{
    *r = *r * 1103515245u + 12345u;
    return *r >> 8;
}

/* n token ids in [3, 32000), EOS last */
static void bb_ids(int32_t *ids, int n, unsigned *r)
{
    for (int i = 0; i < n - 1; i++) ids[i] = 3 + (int32_t)(bb_rand(r) % 31997);
    ids[n - 1] = 1;
}

static eng_model *bb_model(const char *name, int threads, eng_weights weights)
{
    char rel[64], err[512];
    snprintf(rel, sizeof rel, "models/%s", name);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    mp.weights = weights;
    eng_model *m = eng_model_load(th_data(rel), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    return m;
}

static eng_ctx *bb_ctx(eng_model *m)
{
    char err[512];
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 64;
    cp.max_new_tokens = 16;
    cp.max_batch_tokens = 4096;
    eng_ctx *c = eng_ctx_new(m, &cp, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    return c;
}

/* What one document gets: greedy and beam hypotheses, label log-likelihoods. */
typedef struct bb_out {
    int n_hyps[2];
    int32_t tok[2][2][16];
    int len[2][2];
    double score[2][2], sum[2][2];
    double lp[BB_LABELS];
} bb_out;

typedef struct bb_doc {
    int32_t ids[BB_MAXLEN];
    int n;
} bb_doc;

static const int32_t bb_l0[] = { 2163 }, bb_l1[] = { 150, 13, 3 }, bb_l2[] = { 150, 13, 9 },
                     bb_l3[] = { 7163, 1465 };
static const int32_t *const bb_labels[BB_LABELS] = { bb_l0, bb_l1, bb_l2, bb_l3, bb_l1 };
static const int bb_label_lens[BB_LABELS] = { 1, 3, 3, 2, 0 };

static eng_gen_params bb_params(int beam)
{
    eng_gen_params p = eng_gen_default_params();
    p.max_new_tokens = 10;
    p.min_new_tokens = 6; /* several steps even when a random model likes EOS */
    if (beam) p.num_beams = 3, p.num_return_sequences = 2;
    return p;
}

/* Generates (greedy, then beam search) and scores docs[0..n) in single engine calls;
 * out[i] gets document i's results. */
static void bb_run(eng_ctx *c, const bb_doc *docs, int n, bb_out *out)
{
    static eng_gen_req q[64];
    static eng_gen_result res[64];
    REQUIRE(n <= 64);
    memset(out, 0, (size_t)n * sizeof *out);
    for (int beam = 0; beam < 2; beam++) {
        eng_gen_params p = bb_params(beam);
        for (int i = 0; i < n; i++)
            q[i] = (eng_gen_req){
                .ids = docs[i].ids, .n_ids = docs[i].n, .params = &p, .out = &res[i]
            };
        REQUIRE(eng_generate(c, q, n) == 0);
        for (int i = 0; i < n; i++) {
            REQUIRE_MSG(q[i].status == 0, "request %d: %d", i, q[i].status);
            out[i].n_hyps[beam] = res[i].n_hyps;
            for (int h = 0; h < res[i].n_hyps && h < 2; h++) {
                const eng_hyp *y = &res[i].hyps[h];
                REQUIRE(y->n_tokens <= 16);
                memcpy(out[i].tok[beam][h], y->tokens, (size_t)y->n_tokens * sizeof(int32_t));
                out[i].len[beam][h] = y->n_tokens;
                out[i].score[beam][h] = y->score;
                out[i].sum[beam][h] = y->sum_logprobs;
            }
            eng_gen_result_clear(&res[i]);
        }
    }
    static eng_score_req s[64];
    for (int i = 0; i < n; i++)
        s[i] = (eng_score_req){ .ids = docs[i].ids,
                                .n_ids = docs[i].n,
                                .n_cands = BB_LABELS,
                                .cand_ids = bb_labels,
                                .cand_lens = bb_label_lens,
                                .logprobs = out[i].lp };
    REQUIRE(eng_score(c, s, n) == 0);
    for (int i = 0; i < n; i++) REQUIRE_MSG(s[i].status == 0, "score %d: %d", i, s[i].status);
}

/* The number of documents whose results differ in any bit (the first few reported). */
static int bb_compare(const char *what, const bb_out *want, const bb_out *got, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const bb_out *a = &want[i], *b = &got[i];
        const char *diff = NULL;
        for (int beam = 0; beam < 2 && !diff; beam++) {
            if (a->n_hyps[beam] != b->n_hyps[beam]) diff = beam ? "beam hyps" : "greedy hyps";
            for (int h = 0; h < a->n_hyps[beam] && h < 2 && !diff; h++) {
                if (a->len[beam][h] != b->len[beam][h] ||
                    memcmp(a->tok[beam][h], b->tok[beam][h], (size_t)a->len[beam][h] * 4))
                    diff = beam ? "beam tokens" : "greedy tokens";
                else if (memcmp(&a->score[beam][h], &b->score[beam][h], sizeof(double)) ||
                         memcmp(&a->sum[beam][h], &b->sum[beam][h], sizeof(double)))
                    diff = beam ? "beam scores" : "greedy scores";
            }
        }
        for (int k = 0; k < BB_LABELS && !diff; k++)
            if (memcmp(&a->lp[k], &b->lp[k], sizeof(double))) diff = "label log-likelihoods";
        if (diff && bad++ < 4)
            CHECK_MSG(0,
                      "%s: document %d: %s differ (greedy score %.17g vs %.17g, label 0 "
                      "%.17g vs %.17g)",
                      what, i, diff, a->score[0][0], b->score[0][0], a->lp[0], b->lp[0]);
    }
    return bad;
}

/* The documents under test (lengths 3 to 40: alone, some stay within the few-rows kernel's
 * 8 rows, others not) alone at 1 thread are the reference; then alone at 2 threads, and
 * in two rounds of random company (other documents of 5 to 160 tokens, shuffled in) at 1
 * and 2 threads. */
static void bb_model_case(const char *name, eng_weights weights)
{
    static const int lens[BB_DOCS] = { 3, 7, 12, 25, 40 };
    static bb_doc docs[BB_DOCS], batch[BB_DOCS + BB_COMPANY];
    static bb_out ref[BB_DOCS], got[BB_DOCS + BB_COMPANY], mine[BB_DOCS];
    unsigned r = 2024;
    for (int d = 0; d < BB_DOCS; d++) {
        docs[d].n = lens[d];
        bb_ids(docs[d].ids, lens[d], &r);
    }
    int bad = 0;
    for (int threads = 1; threads <= 2; threads++) {
        eng_model *m = bb_model(name, threads, weights);
        eng_ctx *c = bb_ctx(m);
        for (int d = 0; d < BB_DOCS; d++) bb_run(c, &docs[d], 1, threads == 1 ? &ref[d] : &mine[d]);
        if (threads == 2) {
            char what[96];
            snprintf(what, sizeof what, "%s alone, 2 threads vs 1", name);
            bad += bb_compare(what, ref, mine, BB_DOCS);
        }
        for (int round = 0; round < 2; round++) {
            /* the documents under test at random places among the company */
            int n = BB_DOCS + BB_COMPANY, where[BB_DOCS + BB_COMPANY];
            for (int i = 0; i < n; i++) where[i] = i;
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(bb_rand(&r) % (unsigned)(i + 1)), t = where[i];
                where[i] = where[j];
                where[j] = t;
            }
            int tokens = 0;
            for (int i = 0; i < n; i++) {
                bb_doc *b = &batch[where[i]];
                if (i < BB_DOCS) {
                    *b = docs[i];
                } else {
                    b->n = 5 + (int)(bb_rand(&r) % (BB_MAXLEN - 5));
                    bb_ids(b->ids, b->n, &r);
                }
                tokens += b->n;
            }
            REQUIRE_MSG(tokens > 64, "company of %d tokens only", tokens);
            bb_run(c, batch, n, got);
            for (int d = 0; d < BB_DOCS; d++) mine[d] = got[where[d]];
            char what[96];
            snprintf(what, sizeof what, "%s in company (round %d, %d threads)", name, round,
                     threads);
            bad += bb_compare(what, ref, mine, BB_DOCS);
        }
        eng_ctx_free(&c);
        eng_model_free(&m);
    }
    CHECK_MSG(bad == 0, "%s: %d results not bitwise those of the document alone", name, bad);
}

TEST_TIMEOUT(eng_batch_bits_tiny_flan, 300) { bb_model_case("tiny-flan", ENG_WEIGHTS_AUTO); }
TEST_TIMEOUT(eng_batch_bits_tiny_t5, 300) { bb_model_case("tiny-t5", ENG_WEIGHTS_AUTO); }
/* int8 (issue 16): its products, and its encoder's attention in int8 too (tf.c) */
TEST_TIMEOUT(eng_batch_bits_tiny_flan_int8, 300) { bb_model_case("tiny-flan", ENG_WEIGHTS_INT8); }

/* x[0..n) uniform in [-1, 1) */
static void bb_fill(float *x, size_t n, unsigned *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)bb_rand(r) / (1u << 24) * 2 - 1;
}

/* eng_gemm with weights: row i's outputs are the same bits in an m-row product (1 to 200
 * rows: the few-rows kernel up to 8, the packed one beyond, panels of 32 and 16) as alone,
 * and as through the packed kernel called directly, with K and N off the kernels' blocks
 * (K % 16 != 0: the few-rows kernel's tail; N % 16 and N % 12 != 0: partial tiles),
 * strided operands, beta 0 and not, at 1 and 2 threads. Sizes past EK_PAR_MIN so both
 * kernels split the weight rows between the threads. */
TEST_TIMEOUT(eng_batch_bits_gemm_rows, 120)
{
    enum { MAXM = 200, LD = 333 };
    static const int Ks[] = { 16, 77, 320 }, Ns[] = { 1, 13, 37, 300 };
    static const int ms[] = { 1, 2, 3, 5, 8, 9, 16, 17, 33, 64, 65, 200 };
    static float A[MAXM * LD], W[LD * LD], C[MAXM * LD], C0[MAXM * LD], one[LD], many[LD];
    unsigned r = 77;
    bb_fill(A, sizeof A / sizeof *A, &r);
    bb_fill(W, sizeof W / sizeof *W, &r);
    bb_fill(C0, sizeof C0 / sizeof *C0, &r);
    int bad = 0;
    for (int threads = 1; threads <= 2; threads++) {
        eng_set_threads(threads);
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                for (int bi = 0; bi < 2; bi++) {
                    int K = Ks[ki], N = Ns[ni];
                    float beta = bi ? 0.5f : 0.0f;
                    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++) {
                        int m = ms[mi];
                        memcpy(C, C0, sizeof C);
                        eng_gemm(m, N, K, A, LD, W, LD, 1, beta, C, LD);
                        for (int i = 0; i < m; i += (i < 40 ? 1 : 7)) {
                            memcpy(one, C0 + (size_t)i * LD, (size_t)N * sizeof(float));
                            memcpy(many, one, (size_t)N * sizeof(float));
                            eng_gemm(1, N, K, A + (size_t)i * LD, LD, W, LD, 1, beta, one, N);
                            REQUIRE(eng_gemm_many(1, N, K, A + (size_t)i * LD, LD, W, LD, beta,
                                                  many, N) == 0);
                            int d1 = memcmp(one, C + (size_t)i * LD, (size_t)N * sizeof(float));
                            int d2 = memcmp(many, one, (size_t)N * sizeof(float));
                            if ((d1 || d2) && bad++ < 5)
                                CHECK_MSG(0, "threads %d K %d N %d beta %g m %d row %d: %s",
                                          threads, K, N, beta, m, i,
                                          d1 ? "differs from the row alone"
                                             : "alone differs from the packed kernel");
                        }
                    }
                }
    }
    CHECK_MSG(bad == 0, "%d rows not bitwise alike", bad);
}

/* Sequence classification (tiny-bart-mnli, eng_classify): each document's logits alone at
 * 1 thread are bitwise those it gets alone at 2 threads and among 12 other documents
 * (hundreds of rows in every product) at 1 and 2 threads. */
TEST_TIMEOUT(eng_batch_bits_bart_classify, 120)
{
    enum { DOCS = 4, ALL = 16, LMAX = 60 };
    static const int lens[DOCS] = { 2, 5, 9, 30 };
    static int32_t ids[ALL][LMAX];
    static float ref[DOCS][8], got[ALL][8];
    int n_ids[ALL];
    unsigned r = 99;
    for (int d = 0; d < ALL; d++) {
        n_ids[d] = d < DOCS ? lens[d] : 20 + (int)(bb_rand(&r) % (LMAX - 20));
        ids[d][0] = 0; /* <s> */
        for (int i = 1; i < n_ids[d] - 1; i++) ids[d][i] = 3 + (int32_t)(bb_rand(&r) % 120);
        ids[d][n_ids[d] - 1] = 2; /* </s> */
    }
    int bad = 0;
    for (int threads = 1; threads <= 2; threads++) {
        char err[512];
        eng_model_params mp = eng_model_default_params();
        mp.n_threads = threads;
        eng_model *m =
            eng_model_load(th_data("families/models/tiny-bart-mnli"), &mp, err, sizeof err);
        REQUIRE_MSG(m, "%s", err);
        eng_ctx *c = eng_ctx_new(m, NULL, err, sizeof err);
        REQUIRE_MSG(c, "%s", err);
        int nl = eng_model_config(m)->num_labels;
        REQUIRE(nl > 0 && nl <= 8);
        for (int d = 0; d < DOCS; d++) {
            float one[8];
            eng_cls_req q = { .ids = ids[d],
                              .n_ids = n_ids[d],
                              .logits = threads == 1 ? ref[d] : one };
            REQUIRE(eng_classify(c, &q, 1) == 0 && q.status == 0);
            if (threads == 2 && memcmp(one, ref[d], (size_t)nl * sizeof(float)) && bad++ < 4)
                CHECK_MSG(0, "document %d alone: 2 threads differ from 1", d);
        }
        /* the documents under test last, first, and between the others */
        for (int order = 0; order < 2; order++) {
            eng_cls_req q[ALL];
            for (int i = 0; i < ALL; i++) {
                int d = order ? ALL - 1 - i : (i * 5) % ALL;
                q[i] = (eng_cls_req){ .ids = ids[d], .n_ids = n_ids[d], .logits = got[d] };
            }
            REQUIRE(eng_classify(c, q, ALL) == 0);
            for (int i = 0; i < ALL; i++) REQUIRE_MSG(q[i].status == 0, "request %d", i);
            for (int d = 0; d < DOCS; d++)
                if (memcmp(got[d], ref[d], (size_t)nl * sizeof(float)) && bad++ < 4)
                    CHECK_MSG(0,
                              "document %d in company (order %d, %d threads): %.9g vs %.9g "
                              "alone",
                              d, order, threads, got[d][0], ref[d][0]);
        }
        eng_ctx_free(&c);
        eng_model_free(&m);
    }
    CHECK_MSG(bad == 0, "%d classifications not bitwise those alone", bad);
}
