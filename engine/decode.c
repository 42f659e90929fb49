/* Decoding: greedy, beam search (HF BeamSearchScorer, early stopping), sampling, the
 * logits processors, and label scoring. Semantics: DESIGN.md "Decoding semantics".
 *
 * A batch is run in groups that fit the context (rows = beams or returned samples of
 * every request; encoder tokens). Every request of a group owns a fixed range of row
 * slots; its beams' KV cache blocks are permuted only within that range, so no request
 * ever reads another's state and results do not depend on batch composition.
 *
 * A running generation holds its state in d, the KV cache and the first cross K/V
 * region only: the stream's hooks (join, between) may score on the same ctx between two
 * steps, into the second region (engine.h, eng_stream). */
#include "engine/eng_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct eng_greq {
    eng_gen_req *r;
    eng_gen_params p;
    int base, nrows; /* row slots [base, base + nrows) */
    int beam;        /* 1: beam search */
    int done;
    int nfin;     /* finished beam hypotheses in fin_* [base, base + nfin) */
    double worst; /* lowest finished score when nfin == num_beams */
    int enc_off, enc_len;
    int pos;    /* decode position of this step (its own: joiners start later) */
    int status; /* ENG_ENONFINITE once a row's logits were not finite */
} eng_greq;

size_t eng_greq_size(void) { return sizeof(eng_greq); }

eng_gen_params eng_gen_default_params(void)
{
    return (eng_gen_params){ .max_new_tokens = 64,
                             .min_new_tokens = 0,
                             .num_beams = 1,
                             .num_return_sequences = 1,
                             .length_penalty = 1.0f,
                             .no_repeat_ngram_size = 0,
                             .repetition_penalty = 1.0f,
                             .do_sample = 0,
                             .temperature = 1.0f,
                             .top_k = 0,
                             .top_p = 1.0f,
                             .seed = 0,
                             .early_stopping = ENG_EARLY_FALSE,
                             .forced_bos_token_id = -1,
                             .forced_eos_token_id = -1 };
}

void eng_gen_result_clear(eng_gen_result *r)
{
    if (!r) return;
    free(r->storage);
    memset(r, 0, sizeof *r);
}

/* ---- PRNG (splitmix64): per row, seeded from the request's seed and the row ---- */

static uint64_t dc_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double dc_uniform(uint64_t *s) { return (double)(dc_next(s) >> 11) * 0x1.0p-53; }

/* ---- logits processors (HF order): repetition penalty, no-repeat n-gram, bad words, min
 * new tokens, forced BOS, forced EOS. They act on float logits (greedy / sampling) or on
 * double log-probs (beam search, as HF applies them after log_softmax there). seq is the
 * decoder sequence incl. the start token, len its length: the token chosen next is
 * generated token len - 1. */

/* The token a forced-BOS / forced-EOS rule sets at this step, or -1. */
static int dc_forced(const eng_gen_params *p, int len)
{
    if (len == 1 && p->forced_bos_token_id >= 0) return p->forced_bos_token_id;
    if (len == p->max_new_tokens && p->forced_eos_token_id >= 0) return p->forced_eos_token_id;
    return -1;
}

/* Bad words whose prefix ends seq: their last token, for each, into fn(x, token). */
#define DC_BAD_WORDS(p, seq, len, BAN)                                                       \
    for (int bw = 0; bw < (p)->n_bad_words; bw++) {                                          \
        const int32_t *w = (p)->bad_words + (p)->bad_off[bw];                                \
        int wl = (p)->bad_off[bw + 1] - (p)->bad_off[bw] - 1;                                \
        if (wl <= (len) && !memcmp((seq) + (len)-wl, w, (size_t)wl * sizeof *w)) BAN(w[wl]); \
    }

/* Tokens the no-repeat n-gram and min-new-tokens rules forbid next, into ban[] (at most
 * len + 1 of them); returns the count. */
static int dc_bans(const int32_t *seq, int len, const eng_gen_params *p, int eos, int32_t *ban)
{
    int nb = 0, n = p->no_repeat_ngram_size;
    if (n > 0 && len + 1 >= n) {
        const int32_t *pre = seq + len - (n - 1); /* the last n - 1 tokens */
        for (int i = 0; i + n <= len; i++)
            if (n == 1 || !memcmp(seq + i, pre, (size_t)(n - 1) * sizeof *seq))
                ban[nb++] = seq[i + n - 1];
    }
    if (len - 1 < p->min_new_tokens) ban[nb++] = eos;
    return nb;
}

/* Repetition penalty applies once per distinct token of seq. */
static int dc_first_occurrence(const int32_t *seq, int i)
{
    for (int j = 0; j < i; j++)
        if (seq[j] == seq[i]) return 0;
    return 1;
}

static void dc_process_float(float *x, int V, const int32_t *seq, int len, const eng_gen_params *p,
                             int eos, int32_t *ban)
{
    float rp = p->repetition_penalty;
    if (rp != 1.0f)
        for (int i = 0; i < len; i++)
            if (dc_first_occurrence(seq, i)) {
                float v = x[seq[i]];
                x[seq[i]] = v < 0 ? v * rp : v / rp;
            }
    int nb = dc_bans(seq, len, p, eos, ban);
    for (int i = 0; i < nb; i++) x[ban[i]] = -INFINITY;
#define DC_BAN_F(t) x[t] = -INFINITY
    DC_BAD_WORDS(p, seq, len, DC_BAN_F)
#undef DC_BAN_F
    int f = dc_forced(p, len);
    if (f >= 0) {
        for (int v = 0; v < V; v++) x[v] = -INFINITY;
        x[f] = 0.0f;
    }
}

static void dc_process_double(double *x, int V, const int32_t *seq, int len,
                              const eng_gen_params *p, int eos, int32_t *ban)
{
    double rp = p->repetition_penalty;
    if (rp != 1.0)
        for (int i = 0; i < len; i++)
            if (dc_first_occurrence(seq, i)) {
                double v = x[seq[i]];
                x[seq[i]] = v < 0 ? v * rp : v / rp;
            }
    int nb = dc_bans(seq, len, p, eos, ban);
    for (int i = 0; i < nb; i++) x[ban[i]] = -INFINITY;
#define DC_BAN_D(t) x[t] = -INFINITY
    DC_BAD_WORDS(p, seq, len, DC_BAN_D)
#undef DC_BAN_D
    int f = dc_forced(p, len);
    if (f >= 0) {
        for (int v = 0; v < V; v++) x[v] = -INFINITY;
        x[f] = 0.0;
    }
}

static int dc_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* "a ranks before b": larger value first, then lower id. */
static int dc_before(const float *v, int a, int b)
{
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

static void dc_sift(int *idx, int n, int i, const float *v)
{
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) return;
        /* max-heap on "ranks after", so the heap top is the worst-ranked */
        if (c + 1 < n && dc_before(v, idx[c], idx[c + 1])) c++;
        if (!dc_before(v, idx[i], idx[c])) return;
        int t = idx[i];
        idx[i] = idx[c];
        idx[c] = t;
        i = c;
    }
}

/* Sorts ids by value, best first. Heapsort: glibc's qsort may allocate, and nothing in a
 * decode step does. */
static void dc_sort_desc(int *idx, int n, const float *v)
{
    for (int i = n / 2 - 1; i >= 0; i--) dc_sift(idx, n, i, v);
    for (int end = n - 1; end > 0; end--) {
        int t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        dc_sift(idx, end, 0, v);
    }
}

/* Temperature, top-k, top-p (HF warpers, in that order) on processed logits x, then a
 * draw from the softmax of what is left. */
static int dc_sample(const eng_rowbuf *rb, float *x, int V, const eng_gen_params *p, uint64_t *rng)
{
    if (p->temperature != 1.0f)
        for (int i = 0; i < V; i++) x[i] /= p->temperature;
    if (p->top_k > 0 && p->top_k < V) {
        /* k-th largest value: keep everything >= it (HF keeps ties). Small k: a sorted
         * array of the k best so far (most values fail the first comparison). */
        float kth;
        int k = p->top_k;
        if (k <= 1024) {
            float *best = rb->sort_val; /* [k] descending */
            int n = 0;
            for (int i = 0; i < V; i++) {
                float v = x[i];
                if (n == k && !(v > best[k - 1])) continue;
                int j = n < k ? n++ : k - 1;
                while (j > 0 && v > best[j - 1]) {
                    best[j] = best[j - 1];
                    j--;
                }
                best[j] = v;
            }
            kth = best[k - 1];
        } else {
            for (int i = 0; i < V; i++) rb->sort_idx[i] = i;
            dc_sort_desc(rb->sort_idx, V, x);
            kth = x[rb->sort_idx[k - 1]];
        }
        for (int i = 0; i < V; i++)
            if (x[i] < kth) x[i] = -INFINITY;
    }
    if (p->top_p < 1.0f) {
        int nf = 0;
        for (int i = 0; i < V; i++)
            if (x[i] != -INFINITY) rb->sort_idx[nf++] = i;
        dc_sort_desc(rb->sort_idx, nf, x);
        float *prob = rb->sort_val; /* [nf] softmax of the sorted values, fp32 as HF */
        for (int i = 0; i < nf; i++) prob[i] = x[rb->sort_idx[i]];
        eng_softmax(prob, nf);
        /* Ascending cumulative probability; drop while it stays <= 1 - top_p, always
         * keeping the most likely token. */
        float cum = 0.0f;
        for (int i = nf - 1; i >= 1; i--) {
            cum += prob[i];
            if (cum > 1.0f - p->top_p) break;
            x[rb->sort_idx[i]] = -INFINITY;
        }
    }
    /* draw from softmax(x); x is scratch from here on */
    eng_softmax(x, V);
    double total = 0.0;
    for (int i = 0; i < V; i++) total += x[i];
    double u = dc_uniform(rng) * total, acc = 0.0;
    int last = -1;
    for (int i = 0; i < V; i++) {
        if (x[i] <= 0.0f) continue;
        acc += x[i];
        last = i;
        if (acc > u) return i;
    }
    return last >= 0 ? last : dc_argmax(x, V); /* the max always has p > 0: not reached */
}

/* ---- validation ---- */

static int dc_check_params(const eng_ctx *c, const eng_gen_params *p, int *rows)
{
    if (p->max_new_tokens < 1 || p->min_new_tokens < 0 || p->num_beams < 1 ||
        p->num_return_sequences < 1 || p->num_return_sequences > ENG_MAX_RETURN ||
        p->no_repeat_ngram_size < 0 || !(p->repetition_penalty > 0.0f) ||
        !isfinite(p->length_penalty) || !isfinite(p->repetition_penalty) ||
        p->early_stopping < ENG_EARLY_FALSE || p->early_stopping > ENG_EARLY_NEVER ||
        p->forced_bos_token_id >= c->m->cfg.vocab_size ||
        p->forced_eos_token_id >= c->m->cfg.vocab_size || p->n_bad_words < 0 ||
        (p->n_bad_words > 0 && (!p->bad_words || !p->bad_off)))
        return ENG_EINVAL;
    for (int i = 0; i < p->n_bad_words; i++) {
        if (p->bad_off[i + 1] <= p->bad_off[i]) return ENG_EINVAL;
        for (int j = p->bad_off[i]; j < p->bad_off[i + 1]; j++)
            if (p->bad_words[j] < 0 || p->bad_words[j] >= c->m->cfg.vocab_size) return ENG_EINVAL;
    }
    if (p->num_beams > 1) {
        if (p->do_sample) return ENG_EINVAL; /* beam sampling is not supported */
        if (p->num_return_sequences > p->num_beams) return ENG_EINVAL;
        *rows = p->num_beams;
    } else {
        if (!p->do_sample && p->num_return_sequences > 1) return ENG_EINVAL;
        if (p->do_sample && (!(p->temperature > 0.0f) || !isfinite(p->temperature) ||
                             p->top_k < 0 || !(p->top_p > 0.0f) || p->top_p > 1.0f))
            return ENG_EINVAL;
        *rows = p->num_return_sequences;
    }
    if (p->max_new_tokens > c->p.max_new_tokens || *rows > c->p.max_rows) return ENG_ETOOLONG;
    return 0;
}

static int dc_check_ids(const eng_ctx *c, const int32_t *ids, int n, int maxn)
{
    if (!ids || n <= 0) return ENG_EINVAL;
    if (n > maxn) return ENG_ETOOLONG;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->m->cfg.vocab_size) return ENG_EINVAL;
    return 0;
}

/* ---- beam search bookkeeping ---- */

static void dc_beam_add(eng_ctx *c, eng_greq *g, const int32_t *toks, int n, double sum)
{
    int B = g->p.num_beams;
    double score = sum / pow((double)n, (double)g->p.length_penalty);
    int slot;
    if (g->nfin < B) {
        slot = g->nfin++;
    } else {
        if (!(score > g->worst)) return;
        slot = 0; /* replace the worst */
        for (int i = 1; i < B; i++)
            if (c->d.fin_score[g->base + i] < c->d.fin_score[g->base + slot]) slot = i;
    }
    int s = g->base + slot;
    memcpy(c->d.fin_tok + (size_t)s * c->p.max_new_tokens, toks, (size_t)n * sizeof *toks);
    c->d.fin_len[s] = n;
    c->d.fin_score[s] = score;
    c->d.fin_sum[s] = sum;
    if (g->nfin == B) {
        g->worst = INFINITY;
        for (int i = 0; i < B; i++)
            if (c->d.fin_score[g->base + i] < g->worst) g->worst = c->d.fin_score[g->base + i];
    }
}

/* One beam-search step for request g whose B beams' logits are rows a0.. of c->w.logits. */
static void dc_beam_step(eng_ctx *c, eng_greq *g, int a0, int pos)
{
    const eng_config *cf = &c->m->cfg;
    int V = cf->vocab_size, B = g->p.num_beams, K = 2 * B, eos = cf->eos_token_id;
    int P1 = c->max_pos + 1;
    int nc = 0;
    for (int b = 0; b < B; b++) {
        int slot = g->base + b;
        const float *lg = c->w.logits + (size_t)(a0 + b) * V;
        double lse = eng_logsumexp(lg, V);
        if (!isfinite(lse)) { /* a NaN or infinite logit (or all -inf): damaged weights */
            g->status = ENG_ENONFINITE;
            g->done = 1;
            return;
        }
        double *lp = c->d.rb[0].lp;
        for (int v = 0; v < V; v++) lp[v] = (double)lg[v] - lse;
        dc_process_double(lp, V, c->d.hist + (size_t)slot * P1, pos + 1, &g->p, eos,
                          c->d.rb[0].ban);
        /* this beam's top 2B by cumulative score; the global top 2B is among them */
        int first = nc;
        double bs = c->d.row_score[slot];
        for (int v = 0; v < V; v++) {
            double s = lp[v] + bs;
            int n = nc - first;
            if (n == K && !(s > c->d.beam_score[nc - 1])) continue;
            if (n < K) nc++;
            int i = nc - 1;
            while (i > first && s > c->d.beam_score[i - 1]) {
                c->d.beam_score[i] = c->d.beam_score[i - 1];
                c->d.beam_tok[i] = c->d.beam_tok[i - 1];
                c->d.beam_src[i] = c->d.beam_src[i - 1];
                i--;
            }
            c->d.beam_score[i] = s;
            c->d.beam_tok[i] = v;
            c->d.beam_src[i] = b;
        }
    }
    /* rank all candidates: selection of the top 2B, stable on (beam, token) order */
    for (int k = 0; k < K && k < nc; k++) {
        int best = k;
        for (int i = k + 1; i < nc; i++) {
            if (c->d.beam_score[i] > c->d.beam_score[best] ||
                (c->d.beam_score[i] == c->d.beam_score[best] &&
                 (c->d.beam_src[i] * V + c->d.beam_tok[i] <
                  c->d.beam_src[best] * V + c->d.beam_tok[best])))
                best = i;
        }
        if (best != k) {
            double ts = c->d.beam_score[k];
            c->d.beam_score[k] = c->d.beam_score[best];
            c->d.beam_score[best] = ts;
            int tt = c->d.beam_tok[k];
            c->d.beam_tok[k] = c->d.beam_tok[best];
            c->d.beam_tok[best] = tt;
            int tb = c->d.beam_src[k];
            c->d.beam_src[k] = c->d.beam_src[best];
            c->d.beam_src[best] = tb;
        }
    }
    /* scratch: the new beams' histories in this request's rows of hist2, and one
     * finished hypothesis in hist2's spare last row */
    int32_t *tmp = c->d.hist2 + (size_t)g->base * P1;
    int32_t *fin = c->d.hist2 + (size_t)c->p.max_rows * P1;
    int *parent = c->d.parent;
    int nb = 0;
    for (int k = 0; k < K && k < nc && nb < B; k++) {
        int tok = c->d.beam_tok[k], b = c->d.beam_src[k];
        const int32_t *h = c->d.hist + (size_t)(g->base + b) * P1;
        if (tok == eos) {
            if (k >= B) continue;
            memcpy(fin, h + 1, (size_t)pos * sizeof *fin);
            fin[pos] = eos;
            dc_beam_add(c, g, fin, pos + 1, c->d.beam_score[k]);
            continue;
        }
        memcpy(tmp + (size_t)nb * P1, h, (size_t)(pos + 1) * sizeof *h);
        tmp[(size_t)nb * P1 + pos + 1] = tok;
        c->d.row_score2[nb] = c->d.beam_score[k];
        parent[nb] = b;
        nb++;
    }
    /* KV blocks: the first child of a parent takes its block; others copy it into a
     * block freed by a parent without children (there are always enough). */
    int *claimed = c->d.block_used;
    for (int b = 0; b < B; b++) claimed[b] = 0;
    for (int i = 0; i < nb; i++) c->d.row_block2[i] = -1;
    for (int i = 0; i < nb; i++) {
        int par = parent[i];
        if (!claimed[par]) {
            claimed[par] = 1;
            c->d.row_block2[i] = c->d.row_block[g->base + par];
        }
    }
    int fi = 0;
    size_t used = (size_t)(pos + 1) * c->m->inner;
    for (int i = 0; i < nb; i++) {
        if (c->d.row_block2[i] >= 0) continue;
        while (claimed[fi]) fi++;
        claimed[fi] = 1;
        int dst = c->d.row_block[g->base + fi], src = c->d.row_block[g->base + parent[i]];
        for (int l = 0; l < cf->num_decoder_layers; l++)
            for (int w = 0; w < 2; w++)
                memcpy(c->m->arch->fwd->kv_at(c, dst, l, w), c->m->arch->fwd->kv_at(c, src, l, w),
                       used * sizeof(float));
        c->d.row_block2[i] = dst;
    }
    for (int i = 0; i < nb; i++) {
        int slot = g->base + i;
        memcpy(c->d.hist + (size_t)slot * P1, tmp + (size_t)i * P1,
               (size_t)(pos + 2) * sizeof *tmp);
        c->d.row_score[slot] = c->d.row_score2[i];
    }
    for (int i = 0; i < nb; i++) c->d.row_block[g->base + i] = c->d.row_block2[i];
    if (g->nfin >= B) { /* HF's BeamHypotheses.is_done, with n tokens generated */
        double lp = g->p.length_penalty, best = c->d.beam_score[0];
        int n = pos + 1;
        if (g->p.early_stopping == ENG_EARLY_TRUE) g->done = 1;
        else if (g->p.early_stopping == ENG_EARLY_NEVER && lp > 0.0)
            g->done = g->worst >= best / pow((double)g->p.max_new_tokens, lp);
        else g->done = g->worst >= best / pow((double)n, lp);
    }
    if (!g->done && pos + 1 == g->p.max_new_tokens) {
        for (int b = 0; b < nb; b++) {
            int slot = g->base + b;
            dc_beam_add(c, g, c->d.hist + (size_t)slot * P1 + 1, pos + 1, c->d.row_score[slot]);
        }
        g->done = 1;
    }
}

/* Greedy or sampling step for one row (slot) whose logits are row a of c->w.logits, with
 * scratch rb. Touches only the row's own state: rows run in parallel. */
static void dc_row_step(eng_ctx *c, const eng_rowbuf *rb, eng_greq *g, int slot, int a, int pos)
{
    const eng_config *cf = &c->m->cfg;
    int V = cf->vocab_size, eos = cf->eos_token_id, P1 = c->max_pos + 1;
    float *lg = c->w.logits + (size_t)a * V;
    int32_t *h = c->d.hist + (size_t)slot * P1;
    dc_process_float(lg, V, h, pos + 1, &g->p, eos, rb->ban);
    double lse = eng_logsumexp(lg, V);
    c->d.row_len[slot] = pos + 1;
    if (!isfinite(lse)) { /* a NaN or infinite logit: dc_run fails the request */
        c->d.row_score[slot] = NAN;
        c->d.row_done[slot] = 1;
        return;
    }
    int tok;
    double lp;
    if (g->p.do_sample) {
        /* The score is the log-prob under the processed model distribution, before
         * the warpers (which rewrite lg): keep the one value needed. */
        float *save = (float *)rb->lp; /* scratch, [vocab] */
        memcpy(save, lg, (size_t)V * sizeof *lg);
        tok = dc_sample(rb, lg, V, &g->p, &c->d.row_rng[slot]);
        lp = (double)save[tok] - lse;
    } else {
        tok = dc_argmax(lg, V);
        lp = (double)lg[tok] - lse;
    }
    h[pos + 1] = tok;
    c->d.row_score[slot] += lp;
    if (tok == eos || pos + 1 >= g->p.max_new_tokens) c->d.row_done[slot] = 1;
}

/* Fills g's result with its best num_return hypotheses (finished beams, or rows), best
 * first; equal scores keep slot order. The only allocation of a generation. */
static int dc_result(eng_ctx *c, eng_greq *g)
{
    eng_gen_result *out = g->r->out;
    memset(out, 0, sizeof *out);
    int P1 = c->max_pos + 1;
    int n = g->beam ? g->nfin : g->nrows;
    int k = g->p.num_return_sequences < n ? g->p.num_return_sequences : n;
    int pick[ENG_MAX_RETURN];
    size_t total = 0;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int s = g->base + i, used = 0;
            for (int q = 0; q < j && !used; q++) used = pick[q] == s;
            if (used) continue;
            double sc = g->beam ? c->d.fin_score[s] : c->d.row_score[s];
            double bs = best < 0 ? 0 : (g->beam ? c->d.fin_score[best] : c->d.row_score[best]);
            if (best < 0 || sc > bs) best = s;
        }
        pick[j] = best;
        total += (size_t)(g->beam ? c->d.fin_len[best] : c->d.row_len[best]);
    }
    out->storage = malloc((total ? total : 1) * sizeof(int32_t));
    if (!out->storage) return ENG_ENOMEM;
    size_t o = 0;
    for (int j = 0; j < k; j++) {
        int s = pick[j];
        const int32_t *src = g->beam ? c->d.fin_tok + (size_t)s * c->p.max_new_tokens
                                     : c->d.hist + (size_t)s * P1 + 1;
        int len = g->beam ? c->d.fin_len[s] : c->d.row_len[s];
        memcpy(out->storage + o, src, (size_t)len * sizeof *src);
        out->hyps[j] = (eng_hyp){ .tokens = out->storage + o,
                                  .n_tokens = len,
                                  .score = g->beam ? c->d.fin_score[s] : c->d.row_score[s],
                                  .sum_logprobs = g->beam ? c->d.fin_sum[s] : c->d.row_score[s] };
        o += (size_t)len;
    }
    out->n_hyps = k;
    return 0;
}

/* A running batch: requests gs[0..ng), each holding row slots [base, base + nrows) and
 * encoder tokens [enc_off, enc_off + enc_len) until it is done. A finished request's
 * slots and tokens go to the requests that join after it. */
typedef struct dc_batch {
    eng_greq *gs;
    int ng;
    const eng_stream *s;
} dc_batch;

/* Marks the row slots live requests hold in c->d.slot_used [max_rows]. */
static void dc_mark_rows(eng_ctx *c, const dc_batch *bt)
{
    memset(c->d.slot_used, 0, (size_t)c->p.max_rows * sizeof *c->d.slot_used);
    for (int i = 0; i < bt->ng; i++)
        if (!bt->gs[i].done)
            for (int b = 0; b < bt->gs[i].nrows; b++) c->d.slot_used[bt->gs[i].base + b] = 1;
}

/* The first run of `need` free row slots (need > 0), or -1; with need 0, the longest
 * run's length. */
static int dc_find_rows(eng_ctx *c, const dc_batch *bt, int need)
{
    int run = 0, best = 0;
    dc_mark_rows(c, bt);
    for (int s = 0; s < c->p.max_rows; s++) {
        run = c->d.slot_used[s] ? 0 : run + 1;
        if (need > 0 && run == need) return s - need + 1;
        if (run > best) best = run;
    }
    return need > 0 ? -1 : best;
}

/* The first gap of `len` encoder tokens between the live requests' ranges (len > 0), or
 * -1; with len 0, the longest gap's length. */
static int dc_find_tokens(eng_ctx *c, const dc_batch *bt, int len)
{
    int n = 0, *lo = c->d.slot_used; /* scratch: [max_rows] range starts, then ends */
    int *hi = c->d.slot_used + c->p.max_rows;
    for (int i = 0; i < bt->ng; i++) {
        const eng_greq *g = &bt->gs[i];
        if (g->done) continue;
        int j = n++; /* insertion by start: few live requests */
        while (j > 0 && lo[j - 1] > g->enc_off) lo[j] = lo[j - 1], hi[j] = hi[j - 1], j--;
        lo[j] = g->enc_off, hi[j] = g->enc_off + g->enc_len;
    }
    int at = 0, best = 0;
    for (int j = 0; j <= n; j++) {
        int end = j < n ? lo[j] : c->p.max_batch_tokens;
        if (len > 0 && end - at >= len) return at;
        if (end - at > best) best = end - at;
        if (j < n && hi[j] > at) at = hi[j];
    }
    return len > 0 ? -1 : best;
}

/* Checks request r and, if its rows and tokens are free, sets up its state as gs[ng]
 * (not yet encoded). Returns 0 (added), 1 (no room now: nothing changed) or its failed
 * status (set in r->status). */
static int dc_add(eng_ctx *c, dc_batch *bt, eng_gen_req *r)
{
    eng_gen_params dp = eng_gen_default_params();
    if (r->out) memset(r->out, 0, sizeof *r->out);
    const eng_gen_params *p = r->params ? r->params : &dp;
    int need = 0;
    int st = dc_check_params(c, p, &need);
    if (!st) st = dc_check_ids(c, r->ids, r->n_ids, c->p.max_input_len);
    if (!st && !r->out) st = ENG_EINVAL;
    r->status = st;
    if (st) return st;
    if (bt->ng == c->p.max_rows) return 1;
    int base = dc_find_rows(c, bt, need), off = dc_find_tokens(c, bt, r->n_ids);
    if (base < 0 || off < 0) return 1;
    eng_greq *g = &bt->gs[bt->ng++];
    memset(g, 0, sizeof *g);
    g->r = r;
    g->p = *p;
    g->base = base;
    g->nrows = need;
    g->beam = p->num_beams > 1;
    g->enc_off = off;
    g->enc_len = r->n_ids;
    return 0;
}

/* Encodes requests gs[k0..ng) (runs of them whose token ranges follow each other go
 * together) and starts their rows. */
static void dc_start(eng_ctx *c, dc_batch *bt, int k0)
{
    const eng_config *cf = &c->m->cfg;
    int P1 = c->max_pos + 1;
    for (int i0 = k0, i1; i0 < bt->ng; i0 = i1) {
        int T = 0;
        for (i1 = i0; i1 < bt->ng; i1++) {
            const eng_greq *g = &bt->gs[i1];
            if (i1 > i0 && g->enc_off != bt->gs[i0].enc_off + T) break;
            c->w.tok_off[i1 - i0] = T;
            memcpy(c->w.enc_ids + T, g->r->ids, (size_t)g->enc_len * sizeof(int32_t));
            T += g->enc_len;
        }
        c->w.tok_off[i1 - i0] = T;
        c->m->arch->fwd->encode(c, c->w.enc_ids, c->w.tok_off, i1 - i0, bt->gs[i0].enc_off);
    }
    for (int i = k0; i < bt->ng; i++) {
        eng_greq *g = &bt->gs[i];
        for (int b = 0; b < g->nrows; b++) {
            int s = g->base + b;
            c->d.hist[(size_t)s * P1] = cf->decoder_start_token_id;
            c->d.row_block[s] = s;
            c->d.row_done[s] = 0;
            c->d.row_len[s] = 0;
            /* HF: only beam 0 is live at first, so step 0's candidates all come from it */
            c->d.row_score[s] = g->beam && b > 0 ? -1e9 : 0.0;
            c->d.row_rng[s] = g->p.seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(b + 1));
        }
    }
}

/* The request's result, then its report. */
static void dc_finish(eng_ctx *c, const dc_batch *bt, eng_greq *g)
{
    g->r->status = g->status ? g->status : dc_result(c, g);
    if (bt->s && bt->s->done) bt->s->done(bt->s->user, g->r);
}

/* The cross K/V region the forward pass uses: 0 the generation's, 1 while the stream's
 * hooks run (the calls they make encode there, the running rows' stay in 0). */
static void dc_cross(eng_ctx *c, int region)
{
    c->w.cross_k = c->w.cross[region][0];
    c->w.cross_v = c->w.cross[region][1];
}

/* Takes joiners from the stream while there is room, then encodes and starts them.
 * Finished requests leave gs first (they have been reported). */
static void dc_join(eng_ctx *c, dc_batch *bt)
{
    if (!bt->s || !bt->s->join) return;
    int live = 0;
    for (int i = 0; i < bt->ng; i++)
        if (!bt->gs[i].done) bt->gs[live++] = bt->gs[i];
    bt->ng = live;
    int k0 = bt->ng;
    while (bt->ng < c->p.max_rows) {
        /* the room: the longest free runs of slots and of tokens */
        int room_rows = dc_find_rows(c, bt, 0), room_toks = dc_find_tokens(c, bt, 0);
        if (room_rows <= 0 || room_toks <= 0) break;
        dc_cross(c, 1);
        eng_gen_req *r = bt->s->join(bt->s->user, room_rows, room_toks);
        dc_cross(c, 0);
        if (!r) break;
        int st = dc_add(c, bt, r);
        if (st == 1) { /* more than the room offered: refused */
            r->status = ENG_ETOOLONG;
            st = ENG_ETOOLONG;
        }
        if (st && bt->s->done) bt->s->done(bt->s->user, r);
    }
    dc_start(c, bt, k0);
}

/* Steps the batch until every request in it (joiners too) has its result. */
static void dc_run(eng_ctx *c, dc_batch *bt)
{
    int P1 = c->max_pos + 1;
    eng_greq *gs = bt->gs;
    for (;;) {
        dc_join(c, bt);
        int live = 0;
        for (int i = 0; i < bt->ng && !live; i++) live = !gs[i].done;
        if (!live) break;
        /* before the rows are laid out: the hook's calls use the same scratch */
        if (bt->s && bt->s->between) {
            dc_cross(c, 1);
            bt->s->between(bt->s->user);
            dc_cross(c, 0);
        }
        int na = 0;
        for (int i = 0; i < bt->ng; i++) {
            eng_greq *g = &gs[i];
            if (g->done) continue;
            for (int b = 0; b < g->nrows; b++) {
                int s = g->base + b;
                if (!g->beam && c->d.row_done[s]) continue;
                c->d.act[na] = s;
                c->d.act_req[na] = i;
                c->d.act_pos[na] = g->pos;
                c->d.act_tok[na] = c->d.hist[(size_t)s * P1 + g->pos];
                c->d.act_blk[na] = c->d.row_block[s];
                c->w.enc_off[na] = g->enc_off;
                c->w.enc_len[na] = g->enc_len;
                na++;
            }
        }
        if (!na) break;
        eng_threads_step(c);
        c->m->arch->fwd->decode_step(c, c->d.act_tok, c->d.act_blk, c->w.enc_off, c->w.enc_len, na,
                                     c->d.act_pos);
        c->m->arch->fwd->lm_head(c, c->w.h, na, c->w.logits);
        /* Greedy and sampled rows: each on its own (logits row a is active row a), shared
         * between the threads. Beam requests: one at a time, their beams together. */
        ENG_PARALLEL_FOR_NT(na > 1, c->nt)
        for (int a = 0; a < na; a++) {
            eng_greq *g = &gs[c->d.act_req[a]];
            if (!g->beam) dc_row_step(c, &c->d.rb[eng_thread_id()], g, c->d.act[a], a, g->pos);
        }
        for (int i = 0, a = 0; i < bt->ng; i++) {
            eng_greq *g = &gs[i];
            if (g->done) continue;
            if (g->beam) {
                dc_beam_step(c, g, a, g->pos);
                a += g->nrows;
            } else {
                int live = 0;
                for (int b = 0; b < g->nrows; b++) {
                    int s = g->base + b;
                    if (c->d.row_len[s] != g->pos + 1) continue; /* done before this step */
                    a++;
                    live += !c->d.row_done[s];
                    /* one value per row: a NaN or infinite logit makes it non-finite */
                    if (!isfinite(c->d.row_score[s])) g->status = ENG_ENONFINITE;
                }
                if (!live || g->status) g->done = 1;
            }
            if (g->done) dc_finish(c, bt, g);
            else g->pos++;
        }
    }
}

int eng_generate_stream(eng_ctx *c, eng_gen_req *const *reqs, int n, const eng_stream *s)
{
    if (!c || n < 0 || (n > 0 && !reqs)) return ENG_EINVAL;
    if (c->d.running) return ENG_EINVAL; /* from a hook: its state is in use */
    c->d.running = 1;
    eng_threads_step(c);
    int i = 0;
    do {
        dc_batch bt = { .gs = c->d.greq, .s = s };
        for (; i < n; i++) {
            int st = dc_add(c, &bt, reqs[i]);
            if (st == 1 && bt.ng > 0) break;                  /* full: the next batch */
            if (st == 1) reqs[i]->status = st = ENG_ETOOLONG; /* fits no batch */
            if (st && s && s->done) s->done(s->user, reqs[i]);
        }
        dc_start(c, &bt, 0);
        dc_run(c, &bt);
    } while (i < n);
    c->d.running = 0;
    return 0;
}

int eng_generate(eng_ctx *c, eng_gen_req *reqs, int n)
{
    if (!c || n < 0 || (n > 0 && !reqs) || c->d.running) return ENG_EINVAL;
    enum { CHUNK = 256 };
    eng_gen_req *ptr[CHUNK];
    for (int i = 0; i < n; i += CHUNK) {
        int k = n - i < CHUNK ? n - i : CHUNK;
        for (int j = 0; j < k; j++) ptr[j] = &reqs[i + j];
        eng_generate_stream(c, ptr, k, NULL);
    }
    return 0;
}

/* ---- label scoring ---- */

/* 0 if the scoring request can run, else its status. */
static int dc_score_check(const eng_ctx *c, const eng_score_req *r)
{
    const eng_config *cf = &c->m->cfg;
    int st = dc_check_ids(c, r->ids, r->n_ids, c->p.max_input_len);
    if (st) return st;
    if (r->n_cands <= 0 || !r->cand_ids || !r->cand_lens || !r->logprobs) return ENG_EINVAL;
    if (r->n_cands > c->p.max_cands) return ENG_ETOOLONG;
    for (int k = 0; k < r->n_cands; k++) {
        int len = r->cand_lens[k];
        if (len < 0 || (len > 0 && !r->cand_ids[k])) return ENG_EINVAL;
        if (len + 1 > c->p.max_cand_len) return ENG_ETOOLONG;
        for (int j = 0; j < len; j++)
            if (r->cand_ids[k][j] < 0 || r->cand_ids[k][j] >= cf->vocab_size) return ENG_EINVAL;
    }
    return 0;
}

/* 1 if candidate a of r sorts before candidate b: token by token, a prefix first. */
static int dc_cand_less(const eng_score_req *r, int a, int b)
{
    int la = r->cand_lens[a], lb = r->cand_lens[b];
    for (int j = 0; j < la && j < lb; j++)
        if (r->cand_ids[a][j] != r->cand_ids[b][j]) return r->cand_ids[a][j] < r->cand_ids[b][j];
    return la < lb;
}

/* Lays out the decoder rows of request r (its candidates numbered from first, its
 * encoder tokens from eoff) as prefix trees from node *T on, and each candidate's
 * positions: position j of a candidate is read off the node that takes its first j
 * tokens after the start token, and targets its token j (EOS after the last). Candidates
 * whose first j tokens agree share those nodes, so a decoder input is run once however
 * many labels begin with it (all of them begin with the start token). Sorted candidates
 * make every subtree a run of nodes (preorder). A tree holds at most max_len nodes (the
 * attention's bound); a request with more starts another. */
static void dc_score_trees(eng_ctx *c, const eng_score_req *r, int first, int eoff, int *T, int *nt)
{
    int *ord = c->s.cand_order;
    for (int k = 0; k < r->n_cands; k++) { /* insertion sort of at most max_cands */
        int j = k;
        for (; j > 0 && dc_cand_less(r, k, ord[j - 1]); j--) ord[j] = ord[j - 1];
        ord[j] = k;
    }
    int root = -1, prev = -1;
    for (int o = 0; o < r->n_cands; o++) {
        int k = ord[o], len = r->cand_lens[k], lcp = 0;
        int *path = c->s.cand_node + c->s.cand_off[first + k];
        const int *prev_path = prev >= 0 ? c->s.cand_node + c->s.cand_off[first + prev] : NULL;
        if (prev >= 0)
            while (lcp < len && lcp < r->cand_lens[prev] &&
                   r->cand_ids[k][lcp] == r->cand_ids[prev][lcp])
                lcp++;
        if (root < 0 || *T - root + len - lcp > c->max_len) {
            root = (*T)++;
            lcp = 0;
            c->s.tree_off[*nt] = root;
            c->s.tree_eoff[*nt] = eoff;
            c->s.tree_elen[*nt] = r->n_ids;
            (*nt)++;
            c->s.node_tok[root] = c->m->cfg.decoder_start_token_id;
            c->s.node_dep[root] = 0;
            c->s.node_end[root] = 1;
        }
        path[0] = root;
        for (int j = 1; j <= len; j++) {
            if (j <= lcp) {
                path[j] = prev_path[j];
                continue;
            }
            int t = (*T)++;
            c->s.node_tok[t] = r->cand_ids[k][j - 1];
            c->s.node_dep[t] = j;
            path[j] = t;
            for (int a = 0; a <= j; a++) c->s.node_end[path[a]] = t + 1 - root;
        }
        for (int j = 0; j <= len; j++)
            c->s.cand_tgt[c->s.cand_off[first + k] + j] =
                j < len ? r->cand_ids[k][j] : c->m->cfg.eos_token_id;
        prev = k;
    }
}

/* Scores a run of checked requests (run[] indexes reqs) together: one packed encoder pass
 * over all of them, then one teacher-forced decoder pass over every request's prefix
 * trees of candidates, each attending to its own request's encoder output. The caller
 * keeps the run within max_rows requests, max_batch_tokens encoder tokens and
 * max_cand_total candidates. */
static void dc_score_run(eng_ctx *c, eng_score_req *reqs, const int *run, int nr)
{
    const eng_config *cf = &c->m->cfg;
    int E = 0, nc = 0, P = 0;
    for (int i = 0; i < nr; i++) {
        const eng_score_req *r = &reqs[run[i]];
        c->w.tok_off[i] = E;
        memcpy(c->w.enc_ids + E, r->ids, (size_t)r->n_ids * sizeof(int32_t));
        for (int k = 0; k < r->n_cands; k++, nc++) {
            c->s.cand_off[nc] = P;
            P += r->cand_lens[k] + 1;
        }
        E += r->n_ids;
    }
    c->w.tok_off[nr] = E;
    c->s.cand_off[nc] = P;
    int T = 0, nt = 0;
    for (int i = 0, first = 0; i < nr; i++) {
        dc_score_trees(c, &reqs[run[i]], first, c->w.tok_off[i], &T, &nt);
        first += reqs[run[i]].n_cands;
    }
    c->s.tree_off[nt] = T;
    const eng_fwd *fwd = c->m->arch->fwd;
    fwd->encode(c, c->w.enc_ids, c->w.tok_off, nr, 0);
    fwd->decode_full(c, c->s.node_tok, c->s.tree_off, nt, c->s.tree_eoff, c->s.tree_elen,
                     c->s.node_dep, c->s.node_end);
    int V = cf->vocab_size, D = cf->d_model, R = c->w.logit_rows;
    for (int t0 = 0; t0 < T; t0 += R) {
        int rows = T - t0 < R ? T - t0 : R;
        fwd->lm_head(c, c->w.h + (size_t)t0 * D, rows, c->w.logits);
        ENG_PARALLEL_FOR(rows > 1)
        for (int i = 0; i < rows; i++)
            c->s.node_lse[t0 + i] = eng_logsumexp(c->w.logits + (size_t)i * V, V);
        for (int p = 0; p < P; p++) {
            int t = c->s.cand_node[p];
            if (t >= t0 && t < t0 + rows)
                c->s.cand_pos_lp[p] =
                    (double)c->w.logits[(size_t)(t - t0) * V + c->s.cand_tgt[p]] - c->s.node_lse[t];
        }
    }
    for (int k = 0; k < nc; k++) {
        double sum = 0.0;
        for (int p = c->s.cand_off[k]; p < c->s.cand_off[k + 1]; p++) sum += c->s.cand_pos_lp[p];
        c->s.cand_lp[k] = sum;
    }
    for (int i = 0, first = 0; i < nr; i++) {
        eng_score_req *r = &reqs[run[i]];
        memcpy(r->logprobs, c->s.cand_lp + first, (size_t)r->n_cands * sizeof(double));
        /* a NaN or infinite logit (target or normaliser) leaves its sum non-finite */
        for (int k = 0; k < r->n_cands; k++)
            if (!isfinite(r->logprobs[k])) r->status = ENG_ENONFINITE;
        first += r->n_cands;
    }
}

int eng_score(eng_ctx *c, eng_score_req *reqs, int n)
{
    if (!c || n < 0 || (n > 0 && !reqs)) return ENG_EINVAL;
    eng_threads_step(c);
    int *run = c->s.run;
    int i = 0;
    while (i < n) {
        int nr = 0, toks = 0, cands = 0;
        for (; i < n; i++) {
            eng_score_req *r = &reqs[i];
            r->status = dc_score_check(c, r);
            if (r->status) continue;
            /* Each request alone fits a run (checked above), so a run is never empty. */
            if (nr == c->p.max_rows || toks + r->n_ids > c->p.max_batch_tokens ||
                cands + r->n_cands > c->s.max_cand_total)
                break;
            run[nr++] = i;
            toks += r->n_ids;
            cands += r->n_cands;
        }
        if (nr) dc_score_run(c, reqs, run, nr);
    }
    return 0;
}
