/* The engine context: every workspace the forward pass and decoding use, sized once in
 * eng_ctx_new() from the model and the context parameters (nothing is allocated after
 * it), and the lower-level entry points eng_encode / eng_logits. */
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
    c->kv_block = model->arch->fwd->kv_floats(model, c->max_pos);
    int rel = cf->arch.pos == ENG_POS_RELATIVE;
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
    if (rel) {   /* the bucketed bias by relative position, per head */
        ALLOC(c->enc_bias, H * (2 * L - 1));
        ALLOC(c->dec_bias, H * L);
    }
    ALLOC(c->pos_ids, T);
    ALLOC(c->cls_dec, BT);
    ALLOC(c->cls_h, 2 * R * D);
    ALLOC(c->cls_run, R);
    ALLOC(c->cls_eos, R);
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
    for (size_t hd = 0; rel && hd < H; hd++) {
        for (int r = -(int)L + 1; r < (int)L; r++) {
            int b = eng_relative_bucket(r, 1, cf->arch.num_buckets, cf->arch.max_distance);
            c->enc_bias[hd * (2 * L - 1) + (size_t)(r + (int)L - 1)] = model->enc.rel[(size_t)b * H + hd];
        }
        for (int r = 0; r < (int)L; r++) {
            int b = eng_relative_bucket(-r, 0, cf->arch.num_buckets, cf->arch.max_distance);
            c->dec_bias[hd * L + (size_t)r] = model->dec.rel[(size_t)b * H + hd];
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
                     c->node_lse, c->pos_ids, c->cls_dec, c->cls_h, c->cls_run,
                     c->cls_eos };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(c);
    *ctx = NULL;
}

static int ctx_check_ids(const eng_ctx *c, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->m->cfg.vocab_size) return ENG_EINVAL;
    return 0;
}

int eng_encode(eng_ctx *c, const int32_t *ids, int n_ids, float *out)
{
    if (!c || !ids || !out || n_ids <= 0) return ENG_EINVAL;
    if (n_ids > c->p.max_input_len) return ENG_ETOOLONG;
    if (ctx_check_ids(c, ids, n_ids)) return ENG_EINVAL;
    eng_set_threads(c->m->n_threads);
    int off[2] = { 0, n_ids };
    c->m->arch->fwd->encode(c, ids, off, 1, -1);
    memcpy(out, c->enc_out, (size_t)n_ids * c->m->cfg.d_model * sizeof(float));
    return 0;
}

int eng_logits(eng_ctx *c, const int32_t *ids, int n_ids, const int32_t *dec_ids, int n_dec,
               float *out)
{
    if (!c || !ids || !dec_ids || !out || n_ids <= 0 || n_dec <= 0) return ENG_EINVAL;
    if (n_ids > c->p.max_input_len || n_dec > c->max_len || n_dec > c->max_tok)
        return ENG_ETOOLONG;
    if (ctx_check_ids(c, ids, n_ids) || ctx_check_ids(c, dec_ids, n_dec)) return ENG_EINVAL;
    eng_set_threads(c->m->n_threads);
    int off[2] = { 0, n_ids };
    const eng_fwd *f = c->m->arch->fwd;
    f->encode(c, ids, off, 1, 0);
    int doff[2] = { 0, n_dec }, eoff = 0;
    f->decode_full(c, dec_ids, doff, 1, &eoff, &n_ids, NULL, NULL);
    f->lm_head(c, c->h + (size_t)(n_dec - 1) * c->m->cfg.d_model, 1, out);
    return 0;
}
