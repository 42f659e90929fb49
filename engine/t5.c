/* The T5 forward pass (HF T5ForConditionalGeneration): encoder over packed sequences,
 * decoder step with a self-attention KV cache, teacher-forced decoder, lm_head; and the
 * context that owns every buffer they use. Nothing here allocates after eng_ctx_new.
 *
 * Packing: sequences are laid back to back with no padding, so every Linear layer is one
 * sgemm over all tokens of the batch while attention runs per sequence and head on its
 * own slice. Padding would only cost work: the result of a sequence never sees another's
 * rows. */
#include "engine/eng_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

eng_ctx_params eng_ctx_default_params(void)
{
    return (eng_ctx_params){ .max_rows = 64, .max_input_len = 512, .max_new_tokens = 256,
                             .max_cands = 64, .max_cand_len = 32, .max_batch_tokens = 4096 };
}

static int imax(int a, int b) { return a > b ? a : b; }

float *t5_kv_block(eng_ctx *c, int blk, int layer, int which)
{
    return c->kv + (size_t)blk * c->kv_block +
           ((size_t)(layer * 2 + which) * c->max_pos) * c->m->inner;
}

eng_ctx *eng_ctx_new(const eng_model *model, const eng_ctx_params *p, char *err, size_t errlen)
{
    if (!model) {
        snprintf(err, errlen, "eng_ctx_new: no model");
        return NULL;
    }
    eng_ctx_params q = p ? *p : eng_ctx_default_params();
    eng_ctx_params d = eng_ctx_default_params();
    if (q.max_rows <= 0) q.max_rows = d.max_rows;
    if (q.max_input_len <= 0) q.max_input_len = d.max_input_len;
    if (q.max_new_tokens <= 0) q.max_new_tokens = d.max_new_tokens;
    if (q.max_cands <= 0) q.max_cands = d.max_cands;
    if (q.max_cand_len <= 0) q.max_cand_len = d.max_cand_len;
    if (q.max_batch_tokens <= 0) q.max_batch_tokens = d.max_batch_tokens;
    if (q.max_batch_tokens < q.max_input_len) q.max_batch_tokens = q.max_input_len;
    if (q.max_rows > 4096 || q.max_input_len > 65536 || q.max_new_tokens > 65536 ||
        q.max_cands > 65536 || q.max_cand_len > 65536 || q.max_batch_tokens > (1 << 22)) {
        snprintf(err, errlen, "eng_ctx_new: context parameters out of range");
        return NULL;
    }
    eng_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "eng_ctx_new: out of memory");
        return NULL;
    }
    const eng_config *cf = &model->cfg;
    c->m = model;
    c->p = q;
    c->max_pos = q.max_new_tokens + 1;
    c->max_len = imax(imax(q.max_input_len, c->max_pos), q.max_cand_len);
    /* Candidates of one scoring run: as many as the token workspace (>= max_batch_tokens
     * rows) holds at max_cand_len each, so batching labels costs no extra memory. */
    c->max_cand_total = imax(q.max_cands, imax(q.max_rows, q.max_batch_tokens / q.max_cand_len));
    c->max_tok = imax(imax(q.max_batch_tokens, c->max_cand_total * q.max_cand_len),
                      imax(q.max_rows, c->max_pos));
    size_t T = (size_t)c->max_tok, D = (size_t)cf->d_model, I = (size_t)model->inner;
    size_t F = (size_t)cf->d_ff, V = (size_t)cf->vocab_size, H = (size_t)cf->num_heads;
    size_t R = (size_t)q.max_rows, L = (size_t)c->max_len, BT = (size_t)q.max_batch_tokens;
    size_t NL = (size_t)cf->num_decoder_layers, P = (size_t)c->max_pos;
    c->kv_block = NL * 2 * P * I;
    /* Large buffers come from malloc (untouched pages cost no memory until used): the KV
     * pool is max_rows * layers * 2 * (max_new_tokens + 1) * inner floats. */
    int bad = 0;
#define ALLOC(ptr, n) bad |= !((ptr) = malloc((size_t)(n) * sizeof *(ptr)))
    ALLOC(c->x, T * D);
    ALLOC(c->h, T * D);
    ALLOC(c->q, T * I);
    ALLOC(c->k, T * I);
    ALLOC(c->v, T * I);
    ALLOC(c->att, T * I);
    ALLOC(c->ff0, T * F);
    ALLOC(c->ff1, T * F);
    /* a thread's head of one sequence [L, L] each, or a decode step's rows [max_rows, L] */
    size_t SL = (size_t)model->n_threads * L;
    ALLOC(c->scores, (SL > R ? SL : R) * L);
    c->keys_ld = (int)((L + 15) & ~(size_t)15) + 16;
    ALLOC(c->keys_t, (size_t)model->n_threads * cf->d_kv * c->keys_ld);
    ALLOC(c->enc_out, BT * D);
    ALLOC(c->cross_k, NL * BT * I);
    ALLOC(c->cross_v, NL * BT * I);
    ALLOC(c->enc_bias, H * (2 * L - 1));
    ALLOC(c->dec_bias, H * L);
    ALLOC(c->kv, R * c->kv_block);
    c->logit_rows = imax(q.max_rows, ENG_SCORE_CHUNK);
    ALLOC(c->logits, (size_t)c->logit_rows * V);
    ALLOC(c->hist, R * (P + 1));
    ALLOC(c->hist2, (R + 1) * (P + 1));
    ALLOC(c->row_block, R);
    ALLOC(c->row_block2, R);
    ALLOC(c->act, R);
    ALLOC(c->parent, R);
    ALLOC(c->act_tok, R);
    ALLOC(c->block_used, R);
    ALLOC(c->row_score, R);
    ALLOC(c->row_score2, R);
    ALLOC(c->row_done, R);
    ALLOC(c->row_len, R);
    ALLOC(c->row_rng, R);
    ALLOC(c->fin_tok, R * (size_t)q.max_new_tokens);
    ALLOC(c->fin_len, R);
    ALLOC(c->fin_score, R);
    ALLOC(c->fin_sum, R);
    ALLOC(c->cand_score, 2 * R * R);
    ALLOC(c->cand_tok, 2 * R * R);
    ALLOC(c->cand_beam, 2 * R * R);
    size_t NT = (size_t)model->n_threads;
    ALLOC(c->sort_val, NT * V);
    ALLOC(c->sort_idx, NT * V);
    ALLOC(c->enc_off, R + 1);
    ALLOC(c->enc_len, R + 1);
    ALLOC(c->tok_off, R + 1);
    ALLOC(c->cand_off, (size_t)c->max_cand_total + 1);
    ALLOC(c->node_tok, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->cand_lp, c->max_cand_total);
    ALLOC(c->tree_eoff, c->max_cand_total);
    ALLOC(c->tree_elen, c->max_cand_total);
    ALLOC(c->lp_row, NT * V);
    ALLOC(c->rb, NT);
    ALLOC(c->act_req, R);
    ALLOC(c->act_pos, R);
    ALLOC(c->slot_used, 2 * R);
    ALLOC(c->cand_tgt, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->cand_pos_lp, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->cand_node, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->cand_order, c->max_cand_total);
    ALLOC(c->tree_off, (size_t)c->max_cand_total + 1);
    ALLOC(c->node_dep, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->node_end, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->node_lse, (size_t)c->max_cand_total * q.max_cand_len);
    ALLOC(c->act_blk, R);
    ALLOC(c->enc_ids, BT);
    ALLOC(c->ban, NT * (P + 2));
    c->greq = calloc(R, eng_greq_size());
    bad |= !c->greq;
#undef ALLOC
    for (size_t t = 0; !bad && t < NT; t++)
        c->rb[t] = (eng_rowbuf){ .lp = c->lp_row + t * V, .sort_val = c->sort_val + t * V,
                                 .sort_idx = c->sort_idx + t * V, .ban = c->ban + t * (P + 2) };
    if (bad) {
        snprintf(err, errlen, "eng_ctx_new: out of memory (workspaces for %d rows, %d tokens)",
                 q.max_rows, c->max_tok);
        eng_ctx_free(&c);
        return NULL;
    }
    /* Position bias tables: the bucketed bias depends only on (key - query). */
    for (size_t hd = 0; hd < H; hd++) {
        for (int r = -(int)L + 1; r < (int)L; r++) {
            int b = eng_relative_bucket(r, 1, cf->num_buckets, cf->max_distance);
            c->enc_bias[hd * (2 * L - 1) + (size_t)(r + (int)L - 1)] = model->enc_rel[(size_t)b * H + hd];
        }
        for (int r = 0; r < (int)L; r++) {
            int b = eng_relative_bucket(-r, 0, cf->num_buckets, cf->max_distance);
            c->dec_bias[hd * L + (size_t)r] = model->dec_rel[(size_t)b * H + hd];
        }
    }
    return c;
}

void eng_ctx_free(eng_ctx **ctx)
{
    if (!ctx || !*ctx) return;
    eng_ctx *c = *ctx;
    void *bufs[] = { c->x, c->h, c->q, c->k, c->v, c->att, c->ff0, c->ff1, c->scores,
                     c->keys_t, c->enc_out, c->cross_k, c->cross_v, c->enc_bias, c->dec_bias,
                     c->kv, c->logits, c->hist, c->hist2, c->row_block, c->row_block2, c->act,
                     c->parent, c->act_tok, c->block_used, c->row_score, c->row_score2,
                     c->row_done, c->row_len, c->row_rng, c->fin_tok, c->fin_len,
                     c->fin_score, c->fin_sum, c->cand_score, c->cand_tok, c->cand_beam,
                     c->sort_val, c->sort_idx, c->enc_off, c->enc_len, c->tok_off,
                     c->cand_off, c->node_tok, c->cand_lp, c->tree_eoff, c->tree_elen,
                     c->lp_row, c->act_blk, c->enc_ids, c->greq, c->ban, c->rb,
                     c->act_req, c->act_pos, c->slot_used, c->cand_tgt, c->cand_pos_lp,
                     c->cand_node, c->cand_order, c->tree_off, c->node_dep, c->node_end,
                     c->node_lse };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c);
    *ctx = NULL;
}

/* Residual feed-forward on x[n, d_model] (uses h, ff0, ff1). */
static void t5_ff(eng_ctx *c, const eng_layer_w *l, int n)
{
    const eng_config *cf = &c->m->cfg;
    int D = cf->d_model, F = cf->d_ff;
    eng_rmsnorm(c->x, l->ln_ff, n, D, cf->layer_norm_eps, c->h);
    if (cf->gated) {
        eng_linear(c->h, n, D, l->wi0, F, c->ff0);
        eng_linear(c->h, n, D, l->wi1, F, c->ff1);
        eng_gelu_new(c->ff0, c->ff1, (size_t)n * F);
    } else {
        eng_linear(c->h, n, D, l->wi, F, c->ff0);
        eng_relu(c->ff0, (size_t)n * F);
    }
    eng_linear(c->ff0, n, F, l->wo, D, c->h);
    eng_add(c->x, c->h, (size_t)n * D);
}

/* x += att[n, inner] Wo^T */
static void t5_attn_out(eng_ctx *c, const float *wo, int n)
{
    int D = c->m->cfg.d_model;
    eng_linear(c->att, n, c->m->inner, wo, D, c->h);
    eng_add(c->x, c->h, (size_t)n * D);
}

static void t5_embed(eng_ctx *c, const int32_t *tok, int n)
{
    int D = c->m->cfg.d_model;
    for (int i = 0; i < n; i++)
        memcpy(c->x + (size_t)i * D, c->m->shared + (size_t)tok[i] * D, (size_t)D * sizeof(float));
}

/* Attention of one head hd of one sequence: Lq queries (rows of c->q and c->att from q,
 * att) over Lk keys/values (rows of k, v). mode 0: bidirectional encoder bias; 1: causal
 * decoder bias (queries and keys are the same positions); 2: no bias (cross attention).
 * Mode 1 with a tree (dep, end not NULL): the sequence is a prefix tree in preorder, node
 * i at decoder position dep[i] with its subtree at [i, end[i]); a node sees itself and
 * its ancestors, as if each root-to-node path were a sequence of its own.
 * s: [Lq, Lk] scratch, kt: [d_kv, keys_ld] scratch. Runs on the calling thread.
 * With 4 queries or more the keys are transposed first, so that the scores are rows
 * times columns (16 sums of 4 rows x 64 keys in registers, 2x the speed of one dot
 * product per key); a single query takes the dot products. */
static void t5_attend_head(const eng_ctx *c, const float *q, float *att, int Lq, const float *k,
                           const float *v, int Lk, int mode, const int *dep, const int *end,
                           int hd, float *s, float *kt)
{
    int I = c->m->inner, dk = c->m->cfg.d_kv, L = c->max_len;
    if (Lq >= 4) {
        eng_transpose(Lk, dk, k + hd * dk, I, kt, c->keys_ld);
        eng_gemm_serial(Lq, Lk, dk, q + hd * dk, I, kt, c->keys_ld, 0, 0.0f, s, Lk);
    } else {
        eng_gemm_serial(Lq, Lk, dk, q + hd * dk, I, k + hd * dk, I, 1, 0.0f, s, Lk);
    }
    for (int i = 0; i < Lq; i++) {
        float *si = s + (size_t)i * Lk;
        if (mode == 0) {
            const float *b = c->enc_bias + (size_t)hd * (2 * L - 1) + (L - 1) - i;
            for (int j = 0; j < Lk; j++) si[j] += b[j];
        } else if (mode == 1) {
            const float *b = c->dec_bias + (size_t)hd * L;
            if (dep) {
                for (int j = 0; j < Lk; j++)
                    si[j] = j <= i && i < end[j] ? si[j] + b[dep[i] - dep[j]] : -INFINITY;
            } else {
                for (int j = 0; j <= i; j++) si[j] += b[i - j];
                for (int j = i + 1; j < Lk; j++) si[j] = -INFINITY;
            }
        }
        eng_softmax(si, Lk);
    }
    eng_gemm_serial(Lq, dk, Lk, s, Lk, v + hd * dk, I, 0, 0.0f, att + hd * dk, I);
}

/* Attention of n sequences into c->att: sequence i's queries are rows qoff[i] ..
 * qoff[i + 1] - 1 of c->q (qoff NULL: row i alone), its keys and values rows koff[i] ..
 * of k and v, klen[i] of them (klen NULL: the sequence's own rows, self-attention). The
 * (sequence, head) pairs are shared between the threads, each with its own
 * [max_len, max_len] slice of the scores workspace; every pair is computed the same way
 * whichever thread takes it. */
static void t5_attend(eng_ctx *c, int n, const int *qoff, const float *k, const float *v,
                      const int *koff, const int *klen, int mode, const int *dep,
                      const int *end)
{
    int I = c->m->inner, H = c->m->cfg.num_heads, dk = c->m->cfg.d_kv;
    double work = 0; /* multiply-adds */
    for (int i = 0; i < n; i++) {
        int lq = qoff ? qoff[i + 1] - qoff[i] : 1;
        work += 2.0 * lq * (klen ? klen[i] : lq) * dk * H;
    }
    size_t L = (size_t)c->max_len;
    int par = work >= ENG_PAR_FLOATS * 4.0, nt = c->m->n_threads;
    (void)par, (void)nt; /* without OpenMP */
    ENG_PARALLEL_FOR_NT(par, nt)
    for (int it = 0; it < n * H; it++) {
        int i = it / H, hd = it % H;
        int q0 = qoff ? qoff[i] : i, lq = qoff ? qoff[i + 1] - q0 : 1;
        int k0 = klen ? koff[i] : q0, lk = klen ? klen[i] : lq;
        t5_attend_head(c, c->q + (size_t)q0 * I, c->att + (size_t)q0 * I, lq,
                       k + (size_t)k0 * I, v + (size_t)k0 * I, lk, mode,
                       dep ? dep + q0 : NULL, end ? end + q0 : NULL, hd,
                       c->scores + (size_t)eng_thread_id() * L * L,
                       c->keys_t + (size_t)eng_thread_id() * dk * c->keys_ld);
    }
}

void t5_encode(eng_ctx *c, const int32_t *ids, const int *tok_off, int n, int cross_at)
{
    const eng_model *m = c->m;
    const eng_config *cf = &m->cfg;
    int D = cf->d_model, I = m->inner, T = tok_off[n];
    t5_embed(c, ids, T);
    for (int li = 0; li < cf->num_layers; li++) {
        const eng_layer_w *l = &m->enc[li];
        eng_rmsnorm(c->x, l->ln_self, T, D, cf->layer_norm_eps, c->h);
        eng_linear(c->h, T, D, l->self.q, I, c->q);
        eng_linear(c->h, T, D, l->self.k, I, c->k);
        eng_linear(c->h, T, D, l->self.v, I, c->v);
        t5_attend(c, n, tok_off, c->k, c->v, NULL, NULL, 0, NULL, NULL);
        t5_attn_out(c, l->self.o, T);
        t5_ff(c, l, T);
    }
    eng_rmsnorm(c->x, m->enc_final_ln, T, D, cf->layer_norm_eps, c->enc_out);
    if (cross_at < 0) return;
    size_t BT = (size_t)c->p.max_batch_tokens, at = (size_t)cross_at * I;
    for (int li = 0; li < cf->num_decoder_layers; li++) {
        const eng_layer_w *l = &m->dec[li];
        eng_linear(c->enc_out, T, D, l->cross.k, I, c->cross_k + li * BT * I + at);
        eng_linear(c->enc_out, T, D, l->cross.v, I, c->cross_v + li * BT * I + at);
    }
}

static void t5_final(eng_ctx *c, int n)
{
    const eng_config *cf = &c->m->cfg;
    int D = cf->d_model;
    eng_rmsnorm(c->x, c->m->dec_final_ln, n, D, cf->layer_norm_eps, c->h);
    if (cf->tied) {
        float sc = 1.0f / sqrtf((float)D);
        for (size_t i = 0; i < (size_t)n * D; i++) c->h[i] *= sc;
    }
}

/* Self-attention of decode row i at position pos: its new key and value go into its KV
 * cache block, then its query attends over positions 0..pos. s: [pos + 1] scratch. Runs
 * on the calling thread (the threads share the rows). */
static void t5_step_self_row(eng_ctx *c, int li, int blk, int pos, int i, float *s)
{
    int I = c->m->inner, dk = c->m->cfg.d_kv, H = c->m->cfg.num_heads;
    float *kc = t5_kv_block(c, blk, li, 0); /* [max_pos, inner] */
    float *vc = t5_kv_block(c, blk, li, 1);
    memcpy(kc + (size_t)pos * I, c->k + (size_t)i * I, (size_t)I * sizeof(float));
    memcpy(vc + (size_t)pos * I, c->v + (size_t)i * I, (size_t)I * sizeof(float));
    const float *qi = c->q + (size_t)i * I;
    float *ai = c->att + (size_t)i * I;
    for (int hd = 0; hd < H; hd++) {
        eng_gemm_serial(1, pos + 1, dk, qi + hd * dk, I, kc + hd * dk, I, 1, 0.0f, s, pos + 1);
        const float *b = c->dec_bias + (size_t)hd * c->max_len;
        for (int j = 0; j <= pos; j++) s[j] += b[pos - j];
        eng_softmax(s, pos + 1);
        eng_gemm_serial(1, dk, pos + 1, s, pos + 1, vc + hd * dk, I, 0, 0.0f, ai + hd * dk, I);
    }
}

void t5_decode_step(eng_ctx *c, const int32_t *tok, const int *blk, const int *enc_off,
                    const int *enc_len, int n, const int *pos)
{
    const eng_model *m = c->m;
    const eng_config *cf = &m->cfg;
    int D = cf->d_model, I = m->inner;
    size_t BT = (size_t)c->p.max_batch_tokens;
    t5_embed(c, tok, n);
    for (int li = 0; li < cf->num_decoder_layers; li++) {
        const eng_layer_w *l = &m->dec[li];
        eng_rmsnorm(c->x, l->ln_self, n, D, cf->layer_norm_eps, c->h);
        eng_linear(c->h, n, D, l->self.q, I, c->q);
        eng_linear(c->h, n, D, l->self.k, I, c->k);
        eng_linear(c->h, n, D, l->self.v, I, c->v);
        /* Rows are independent here: the threads share them, each row with its own
         * slice of the scores workspace ([max_rows, max_len]). */
        ENG_PARALLEL_FOR(n > 1)
        for (int i = 0; i < n; i++)
            t5_step_self_row(c, li, blk[i], pos[i], i, c->scores + (size_t)i * c->max_len);
        t5_attn_out(c, l->self.o, n);

        eng_rmsnorm(c->x, l->ln_cross, n, D, cf->layer_norm_eps, c->h);
        eng_linear(c->h, n, D, l->cross.q, I, c->q);
        t5_attend(c, n, NULL, c->cross_k + li * BT * I, c->cross_v + li * BT * I, enc_off,
                  enc_len, 2, NULL, NULL);
        t5_attn_out(c, l->cross.o, n);
        t5_ff(c, l, n);
    }
    t5_final(c, n);
}

void t5_decode_full(eng_ctx *c, const int32_t *tok, const int *off, int n,
                    const int *enc_off, const int *enc_len, const int *dep, const int *end)
{
    const eng_model *m = c->m;
    const eng_config *cf = &m->cfg;
    int D = cf->d_model, I = m->inner, T = off[n];
    size_t BT = (size_t)c->p.max_batch_tokens;
    t5_embed(c, tok, T);
    for (int li = 0; li < cf->num_decoder_layers; li++) {
        const eng_layer_w *l = &m->dec[li];
        eng_rmsnorm(c->x, l->ln_self, T, D, cf->layer_norm_eps, c->h);
        eng_linear(c->h, T, D, l->self.q, I, c->q);
        eng_linear(c->h, T, D, l->self.k, I, c->k);
        eng_linear(c->h, T, D, l->self.v, I, c->v);
        t5_attend(c, n, off, c->k, c->v, NULL, NULL, 1, dep, end);
        t5_attn_out(c, l->self.o, T);

        eng_rmsnorm(c->x, l->ln_cross, T, D, cf->layer_norm_eps, c->h);
        eng_linear(c->h, T, D, l->cross.q, I, c->q);
        t5_attend(c, n, off, c->cross_k + li * BT * I, c->cross_v + li * BT * I, enc_off,
                  enc_len, 2, NULL, NULL);
        t5_attn_out(c, l->cross.o, T);
        t5_ff(c, l, T);
    }
    t5_final(c, T);
}

void t5_lm_head(eng_ctx *c, const float *hidden, int rows, float *logits)
{
    eng_linear(hidden, rows, c->m->cfg.d_model, c->m->lm_head, c->m->cfg.vocab_size, logits);
}

static int t5_check_ids(const eng_ctx *c, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->m->cfg.vocab_size) return ENG_EINVAL;
    return 0;
}

int eng_encode(eng_ctx *c, const int32_t *ids, int n_ids, float *out)
{
    if (!c || !ids || !out || n_ids <= 0) return ENG_EINVAL;
    if (n_ids > c->p.max_input_len) return ENG_ETOOLONG;
    if (t5_check_ids(c, ids, n_ids)) return ENG_EINVAL;
    eng_set_threads(c->m->n_threads);
    int off[2] = { 0, n_ids };
    t5_encode(c, ids, off, 1, -1);
    memcpy(out, c->enc_out, (size_t)n_ids * c->m->cfg.d_model * sizeof(float));
    return 0;
}

int eng_logits(eng_ctx *c, const int32_t *ids, int n_ids, const int32_t *dec_ids, int n_dec,
               float *out)
{
    if (!c || !ids || !dec_ids || !out || n_ids <= 0 || n_dec <= 0) return ENG_EINVAL;
    if (n_ids > c->p.max_input_len || n_dec > c->max_len || n_dec > c->max_tok)
        return ENG_ETOOLONG;
    if (t5_check_ids(c, ids, n_ids) || t5_check_ids(c, dec_ids, n_dec)) return ENG_EINVAL;
    eng_set_threads(c->m->n_threads);
    int off[2] = { 0, n_ids };
    t5_encode(c, ids, off, 1, 0);
    int doff[2] = { 0, n_dec }, eoff = 0;
    t5_decode_full(c, dec_ids, doff, 1, &eoff, &n_ids, NULL, NULL);
    t5_lm_head(c, c->h + (size_t)(n_dec - 1) * c->m->cfg.d_model, 1, out);
    return 0;
}
