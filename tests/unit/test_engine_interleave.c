/* Scoring between the decode steps of a running generation (engine.h, eng_stream: join and
 * between may call eng_score, eng_classify, eng_encode and eng_logits on the ctx whose
 * generation is running). Every result is compared with memcmp against the same call
 * made alone, on an idle ctx:
 *  - the generation's (greedy, beam search, sampling; initial requests and joiners):
 *    tokens, scores and log-prob sums, as the same stream gives without the hook;
 *  - the label scores (eng_score), classification logits (eng_classify, tiny-bart-mnli),
 *    encoder outputs (eng_encode) and next-token logits (eng_logits) computed between
 *    its steps, as each gives alone.
 * The hook also overwrites (0xff bytes: NaN floats, -1 ints) every part of the ctx the
 * contract calls scratch between two steps -- the forward pass's activations, attention
 * scratch, encoder output, logits, packed layout, the second cross K/V region, scoring's
 * and classification's state -- before and after its calls: the generation must not read
 * any of it across a step, nor a scoring call read what another left. A hook that starts
 * a generation is refused. On T5 (tiny-flan) and on the NLI model (tiny-bart-mnli). */
#include "engine/eng_int.h"
#include "engine/engine.h"
#include "tests/harness/harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IL_GEN = 6, IL_JOIN = 4, IL_SC = 10, IL_MAXLEN = 48, IL_LABELS = 4, IL_VMAX = 32128 };

static unsigned il_rand(unsigned *r)
{
    *r = *r * 1103515245u + 12345u;
    return *r >> 8;
}

/* n ids in [lo, lo + span), eos last (and `first` first when >= 0) */
static void il_ids(int32_t *ids, int n, int first, int lo, int span, int eos, unsigned *r)
{
    for (int i = 0; i < n - 1; i++) ids[i] = lo + (int32_t)(il_rand(r) % (unsigned)span);
    if (first >= 0) ids[0] = first;
    ids[n - 1] = eos;
}

static eng_model *il_model(const char *rel)
{
    char err[512];
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 2;
    eng_model *m = eng_model_load(th_data(rel), &mp, err, sizeof err);
    REQUIRE_MSG(m, "%s: %s", rel, err);
    return m;
}

static eng_ctx *il_ctx(const eng_model *m)
{
    char err[512];
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 16, cp.max_input_len = 64, cp.max_new_tokens = 24;
    cp.max_batch_tokens = 256, cp.max_cands = 8, cp.max_cand_len = 8;
    eng_ctx *c = eng_ctx_new(m, &cp, err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    return c;
}

/* Every buffer of c that holds nothing from one decode step to the next (ctx.c lists them
 * as it carves them), overwritten with NaN. */
static void il_poison(eng_ctx *c)
{
    REQUIRE(c->n_scratch > 0 && c->n_scratch < ENG_MAX_SCRATCH);
    for (int i = 0; i < c->n_scratch; i++) memset(c->scratch[i].p, 0xff, c->scratch[i].bytes);
}

/* What the hooks run: scoring requests (label scoring, or classification on a model with
 * a head), one or two per call, eng_logits and eng_encode now and then. */
typedef struct il_side {
    int32_t ids[IL_SC][IL_MAXLEN];
    int n[IL_SC];
    double lp[IL_SC][IL_LABELS];  /* eng_score */
    float cls[IL_SC][8];          /* eng_classify */
    float logits[2][IL_VMAX];     /* eng_logits of side request 0 */
    float enc[2][IL_MAXLEN * 64]; /* eng_encode of side request 1 */
    int status[IL_SC];
} il_side;

static const int32_t il_c0[] = { 5 }, il_c1[] = { 7, 9, 11 }, il_c2[] = { 7, 9, 12 },
                     il_c3[] = { 20, 21 };
static const int32_t *const il_cands[IL_LABELS] = { il_c0, il_c1, il_c2, il_c3 };
static const int il_cand_lens[IL_LABELS] = { 1, 3, 3, 2 };

/* Runs side requests [k, k + cnt) in one call of the model's kind of scoring, into lp or
 * cls. */
static void il_side_run(eng_ctx *c, il_side *sd, int k, int cnt, int classify,
                        double (*lp)[IL_LABELS], float (*cls)[8])
{
    eng_score_req sq[2];
    eng_cls_req cq[2];
    for (int i = 0; i < cnt; i++) {
        sq[i] = (eng_score_req){ .ids = sd->ids[k + i],
                                 .n_ids = sd->n[k + i],
                                 .n_cands = IL_LABELS,
                                 .cand_ids = il_cands,
                                 .cand_lens = il_cand_lens,
                                 .logprobs = lp[k + i] };
        cq[i] = (eng_cls_req){ .ids = sd->ids[k + i], .n_ids = sd->n[k + i], .logits = cls[k + i] };
    }
    int rc = classify ? eng_classify(c, cq, cnt) : eng_score(c, sq, cnt);
    REQUIRE_MSG(rc == 0, "side call: %d", rc);
    for (int i = 0; i < cnt; i++) sd->status[k + i] = classify ? cq[i].status : sq[i].status;
}

typedef struct il_hook {
    eng_ctx *c;
    il_side *sd;
    int classify;
    int active; /* 0: the hooks only count the steps (the reference run) */
    int poison;
    int next;  /* side requests done */
    int calls; /* between calls */
    int join_calls;
    eng_gen_req *pool; /* joiners, one every 3 steps */
    int n_pool, next_join;
    int done_count[IL_GEN + IL_JOIN];
    int nested_rc[2];
    int extra_done; /* logits / encode ran in a hook */
    double lp[IL_SC][IL_LABELS];
    float cls[IL_SC][8];
} il_hook;

static void il_between(void *user)
{
    il_hook *h = user;
    eng_ctx *c = h->c;
    il_side *sd = h->sd;
    if (!h->active) {
        h->calls++;
        return;
    }
    if (h->poison) il_poison(c);
    int k = h->next;
    if (k < IL_SC) {
        int cnt = k + 2 <= IL_SC && h->calls % 2 ? 2 : 1;
        il_side_run(c, sd, k, cnt, h->classify, h->lp, h->cls);
        h->next += cnt;
    }
    if (h->calls == 3) {
        const int32_t dec[3] = { c->m->cfg.decoder_start_token_id, 5, 6 };
        CHECK(eng_logits(c, sd->ids[0], sd->n[0], dec, 3, sd->logits[1]) == 0);
        CHECK(eng_encode(c, sd->ids[1], sd->n[1], sd->enc[1]) == 0);
        h->extra_done = 1;
    }
    if (h->calls == 4) { /* a generation from a hook is refused, nothing run */
        eng_gen_params p = eng_gen_default_params();
        eng_gen_result res = { 0 };
        eng_gen_req q = {
            .ids = sd->ids[2], .n_ids = sd->n[2], .params = &p, .out = &res, .status = 12345
        };
        eng_gen_req *qp = &q;
        h->nested_rc[0] = eng_generate(c, &q, 1);
        h->nested_rc[1] = eng_generate_stream(c, &qp, 1, NULL);
        CHECK(q.status == 12345 && res.storage == NULL);
    }
    if (h->poison) il_poison(c);
    h->calls++;
}

static eng_gen_req *il_join(void *user, int rows, int tokens)
{
    il_hook *h = user;
    /* scoring from the join hook is legal too */
    if (h->join_calls++ == 1 && h->active && h->next < IL_SC) {
        if (h->poison) il_poison(h->c);
        il_side_run(h->c, h->sd, h->next, 1, h->classify, h->lp, h->cls);
        h->next++;
        if (h->poison) il_poison(h->c);
    }
    if (h->next_join >= h->n_pool || h->calls % 3 != 2) return NULL;
    eng_gen_req *r = &h->pool[h->next_join];
    const eng_gen_params *p = r->params;
    int need = p->num_beams > 1 ? p->num_beams : p->num_return_sequences;
    if (need > rows || r->n_ids > tokens) return NULL;
    h->next_join++;
    return r;
}

static void il_done(void *user, eng_gen_req *r)
{
    il_hook *h = user;
    h->done_count[(int)(intptr_t)r->tag]++;
}

/* 1 if a and b are the same bits: hypotheses, tokens, scores, sums. */
static int il_same(const eng_gen_result *a, const eng_gen_result *b)
{
    if (a->n_hyps != b->n_hyps) return 0;
    for (int i = 0; i < a->n_hyps; i++) {
        const eng_hyp *x = &a->hyps[i], *y = &b->hyps[i];
        if (x->n_tokens != y->n_tokens ||
            memcmp(x->tokens, y->tokens, (size_t)x->n_tokens * sizeof *x->tokens) ||
            memcmp(&x->score, &y->score, sizeof x->score) ||
            memcmp(&x->sum_logprobs, &y->sum_logprobs, sizeof x->sum_logprobs))
            return 0;
    }
    return 1;
}

/* One model: the generation (IL_GEN requests at the start, IL_JOIN joiners) run without
 * hooks scoring, and then with them (each poisoning the scratch or not); the side
 * requests alone on the idle ctx, and between the steps. */
static void il_case(const char *rel, int classify, int bos, int eos, int lo, int span)
{
    eng_model *m = il_model(rel);
    eng_ctx *c = il_ctx(m);
    int V = eng_model_config(m)->vocab_size;
    REQUIRE(V <= IL_VMAX);
    if (classify)
        REQUIRE(eng_model_config(m)->num_labels > 0 && eng_model_config(m)->num_labels <= 8);
    unsigned r = 4242;
    enum { NQ = IL_GEN + IL_JOIN };
    static int32_t gids[NQ][IL_MAXLEN];
    static eng_gen_params gp[NQ];
    static eng_gen_result ref[NQ], got[NQ];
    static eng_gen_req q[NQ];
    static il_side sd;
    static il_hook h;
    for (int i = 0; i < NQ; i++) {
        int n = 4 + (int)(il_rand(&r) % 30);
        il_ids(gids[i], n, bos, lo, span, eos, &r);
        gp[i] = eng_gen_default_params();
        gp[i].max_new_tokens = 10 + i % 5;
        gp[i].min_new_tokens = gp[i].max_new_tokens - 2; /* many steps even if EOS is likely */
        if (i % 3 == 1) gp[i].num_beams = 3, gp[i].num_return_sequences = 2;
        if (i % 3 == 2) gp[i].do_sample = 1, gp[i].seed = 11 + (uint64_t)i, gp[i].top_k = 30;
        q[i] = (eng_gen_req){
            .ids = gids[i], .n_ids = n, .params = &gp[i], .tag = (void *)(intptr_t)i
        };
    }
    for (int k = 0; k < IL_SC; k++) {
        sd.n[k] = 3 + (int)(il_rand(&r) % (IL_MAXLEN - 3));
        il_ids(sd.ids[k], sd.n[k], bos, lo, span, eos, &r);
    }
    /* the side requests alone, on the idle ctx, one call each */
    static double lp_alone[IL_SC][IL_LABELS];
    static float cls_alone[IL_SC][8];
    for (int k = 0; k < IL_SC; k++) {
        il_side_run(c, &sd, k, 1, classify, lp_alone, cls_alone);
        REQUIRE_MSG(sd.status[k] == 0, "side request %d alone: %d", k, sd.status[k]);
    }
    const int32_t dec[3] = { eng_model_config(m)->decoder_start_token_id, 5, 6 };
    REQUIRE(eng_logits(c, sd.ids[0], sd.n[0], dec, 3, sd.logits[0]) == 0);
    REQUIRE(eng_encode(c, sd.ids[1], sd.n[1], sd.enc[0]) == 0);
    size_t enc_bytes = (size_t)sd.n[1] * (size_t)eng_model_config(m)->d_model * sizeof(float);
    REQUIRE(enc_bytes <= sizeof sd.enc[0]);
    int bad = 0;
    /* run 0: the reference stream (joiners, no scoring); runs 1, 2: scoring between steps,
     * run 2 also poisoning the scratch around every hook call */
    for (int run = 0; run < 3; run++) {
        memset(&h, 0, sizeof h);
        h.c = c, h.sd = &sd, h.classify = classify, h.active = run > 0, h.poison = run == 2;
        h.pool = q + IL_GEN, h.n_pool = IL_JOIN;
        for (int i = 0; i < NQ; i++) q[i].out = run == 0 ? &ref[i] : &got[i], q[i].status = 99;
        eng_gen_req *first[IL_GEN];
        for (int i = 0; i < IL_GEN; i++) first[i] = &q[i];
        eng_stream s = { .join = il_join, .done = il_done, .between = il_between, .user = &h };
        REQUIRE(eng_generate_stream(c, first, IL_GEN, &s) == 0);
        CHECK_MSG(h.next_join == IL_JOIN, "run %d: %d joiners of %d", run, h.next_join, IL_JOIN);
        for (int i = 0; i < NQ; i++) {
            CHECK_MSG(h.done_count[i] == 1, "run %d: request %d reported %d times", run, i,
                      h.done_count[i]);
            REQUIRE_MSG(q[i].status == 0, "%s run %d: request %d: %d", rel, run, i, q[i].status);
        }
        if (run == 0) {
            for (int i = 0; i < NQ; i++) REQUIRE(ref[i].n_hyps > 0);
            continue;
        }
        /* the hooks ran while rows were live, and scored everything then */
        CHECK_MSG(h.calls >= 12, "%s: between called %d times", rel, h.calls);
        CHECK_MSG(h.next == IL_SC, "%s: %d side requests ran in the hooks", rel, h.next);
        CHECK(h.extra_done);
        CHECK_MSG(h.nested_rc[0] == ENG_EINVAL && h.nested_rc[1] == ENG_EINVAL,
                  "generation from a hook: %d %d", h.nested_rc[0], h.nested_rc[1]);
        for (int i = 0; i < NQ; i++) {
            if (!il_same(&ref[i], &got[i]) && bad++ < 4)
                CHECK_MSG(0,
                          "%s run %d: generation %d differs with scoring between its steps "
                          "(score %.17g vs %.17g)",
                          rel, run, i, ref[i].hyps[0].score, got[i].hyps[0].score);
            eng_gen_result_clear(&got[i]);
        }
        for (int k = 0; k < IL_SC; k++) {
            CHECK_MSG(sd.status[k] == 0, "side request %d in a hook: %d", k, sd.status[k]);
            int diff = classify ? memcmp(h.cls[k], cls_alone[k], sizeof cls_alone[k])
                                : memcmp(h.lp[k], lp_alone[k], sizeof lp_alone[k]);
            if (diff && bad++ < 8)
                CHECK_MSG(0, "%s run %d: side request %d differs between steps (%.17g vs %.17g)",
                          rel, run, k, classify ? h.cls[k][0] : h.lp[k][0],
                          classify ? cls_alone[k][0] : lp_alone[k][0]);
        }
        if (memcmp(sd.logits[0], sd.logits[1], (size_t)V * sizeof(float)) && bad++ < 8)
            CHECK_MSG(0, "%s run %d: eng_logits differs between steps", rel, run);
        if (memcmp(sd.enc[0], sd.enc[1], enc_bytes) && bad++ < 8)
            CHECK_MSG(0, "%s run %d: eng_encode differs between steps", rel, run);
    }
    /* the ctx is whole afterwards: a generation alone gives the reference again */
    eng_gen_result again = { 0 };
    q[1].out = &again;
    REQUIRE(eng_generate(c, &q[1], 1) == 0 && q[1].status == 0);
    CHECK_MSG(il_same(&ref[1], &again), "%s: a generation after the runs differs", rel);
    eng_gen_result_clear(&again);
    for (int i = 0; i < NQ; i++) eng_gen_result_clear(&ref[i]);
    CHECK_MSG(bad == 0, "%s: %d results not bitwise those alone", rel, bad);
    eng_ctx_free(&c);
    eng_model_free(&m);
}

/* T5: label scoring (eng_score) between the steps; ids in the SentencePiece range. */
TEST_TIMEOUT(eng_interleave_score_tiny_flan, 300)
{
    il_case("models/tiny-flan", 0, -1, 1, 3, 31997);
}

/* The NLI model: classification (eng_classify) between the steps; <s> ... </s>. */
TEST_TIMEOUT(eng_interleave_classify_bart_mnli, 300)
{
    il_case("families/models/tiny-bart-mnli", 1, 0, 2, 3, 120);
}

/* The NLI model with label scoring (its decoder as a generator) between the steps. */
TEST_TIMEOUT(eng_interleave_score_bart_mnli, 300)
{
    il_case("families/models/tiny-bart-mnli", 0, 0, 2, 3, 120);
}
