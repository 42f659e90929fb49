/* The engine context: every workspace the forward pass and decoding use, sized once in
 * eng_ctx_new() from the model and the context parameters (nothing is allocated after
 * it), and the lower-level entry points eng_encode / eng_logits. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

eng_ctx_params eng_ctx_default_params(void)
{
    return (eng_ctx_params){ .max_rows = 64,
                             .max_input_len = 512,
                             .max_new_tokens = 256,
                             .max_cands = 64,
                             .max_cand_len = 32,
                             .max_batch_tokens = 4096 };
}

static int imax(int a, int b) { return a > b ? a : b; }

int eng_model_max_len(const eng_model *model, int limit)
{
    const eng_arch_config *ac = &model->cfg.arch;
    if (ac->pos != ENG_POS_RELATIVE && ac->max_positions > 0 && ac->max_positions < limit)
        return ac->max_positions;
    return limit;
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
    /* A learned or computed position table ends: no input, decoder sequence or
     * candidate may be longer than its rows (max_positions), else the embedding would
     * read past it. Clamping the context's limits makes every entry point refuse such a
     * sequence with ENG_ETOOLONG (transformers fails there too, with an IndexError). */
    q.max_input_len = eng_model_max_len(model, q.max_input_len);
    q.max_new_tokens = eng_model_max_len(model, q.max_new_tokens);
    q.max_cand_len = eng_model_max_len(model, q.max_cand_len);
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
    c->nt = model->n_threads;
    const eng_config *cf = &model->cfg;
    c->m = model;
    c->p = q;
    c->max_pos = q.max_new_tokens + 1;
    c->max_len = imax(imax(q.max_input_len, c->max_pos), q.max_cand_len);
    /* Candidates of one scoring run: as many as the token workspace (>= max_batch_tokens
     * rows) holds at max_cand_len each, so batching labels costs no extra memory. */
    c->s.max_cand_total = imax(q.max_cands, imax(q.max_rows, q.max_batch_tokens / q.max_cand_len));
    c->max_tok = imax(imax(q.max_batch_tokens, c->s.max_cand_total * q.max_cand_len),
                      imax(q.max_rows, c->max_pos));
    size_t T = (size_t)c->max_tok, D = (size_t)cf->d_model, I = (size_t)model->inner;
    size_t F = (size_t)cf->d_ff, V = (size_t)cf->vocab_size, H = (size_t)cf->num_heads;
    size_t R = (size_t)q.max_rows, L = (size_t)c->max_len, BT = (size_t)q.max_batch_tokens;
    size_t NL = (size_t)cf->num_decoder_layers, P = (size_t)c->max_pos;
    c->w.kv_block = model->arch->fwd->kv_floats(model, c->max_pos);
    int rel = cf->arch.pos == ENG_POS_RELATIVE;
    /* Two passes over one list: the first adds up the sizes (each buffer 64-byte
     * aligned), the second carves the buffers out of the one allocation. calloc's large
     * blocks are fresh zero pages: a buffer costs memory only once it is used (the KV
     * pool is max_rows * layers * 2 * (max_new_tokens + 1) * inner floats). */
    size_t NT = (size_t)model->n_threads;
    size_t SL = NT * L; /* a thread's head of one sequence [L, L] each, or [max_rows, L] */
    size_t CT = (size_t)c->s.max_cand_total, CP = CT * (size_t)q.max_cand_len;
    c->w.keys_ld = (int)((L + 15) & ~(size_t)15) + 16;
    /* an int8 model's encoder attention: a head's keys and values as int8 blobs (tf.c) */
    if (model->weights == ENG_WEIGHTS_INT8) {
        c->w.q8_attn_v = (eng_q8_weight_bytes((int)L, cf->d_kv) + 63) & ~(size_t)63;
        c->w.q8_attn_bytes =
            c->w.q8_attn_v + ((eng_q8_weight_bytes(cf->d_kv, (int)L) + 63) & ~(size_t)63);
    }
    c->w.logit_rows = imax(q.max_rows, ENG_SCORE_CHUNK);
    unsigned char *base = NULL;
    size_t used = 0;
#define CARVE(ptr, n)                                             \
    do {                                                          \
        if (pass) (ptr) = (void *)(base + used);                  \
        used += ((size_t)(n) * sizeof *(ptr) + 63) & ~(size_t)63; \
    } while (0)
    /* A buffer that holds nothing from one decode step to the next: listed in c->scratch */
#define SCRATCH(ptr, n)                                                                          \
    do {                                                                                         \
        if (pass && c->n_scratch < ENG_MAX_SCRATCH)                                              \
            c->scratch[c->n_scratch++] = (eng_span){ base + used, (size_t)(n) * sizeof *(ptr) }; \
        CARVE(ptr, n);                                                                           \
    } while (0)
    for (int pass = 0; pass < 2; pass++) {
        used = 0;
        c->n_scratch = 0;
        /* the forward pass's workspace */
        SCRATCH(c->w.x, T * D);
        SCRATCH(c->w.h, T * D);
        SCRATCH(c->w.q, T * I);
        SCRATCH(c->w.k, T * I);
        SCRATCH(c->w.v, T * I);
        SCRATCH(c->w.att, T * I);
        SCRATCH(c->w.ff0, T * F);
        SCRATCH(c->w.ff1, T * F);
        SCRATCH(c->w.scores, (SL > R ? SL : R) * L);
        SCRATCH(c->w.keys_t, NT * cf->d_kv * c->w.keys_ld);
        if (c->w.q8_attn_bytes) SCRATCH(c->w.q8_attn, NT * c->w.q8_attn_bytes);
        SCRATCH(c->w.enc_out, BT * D);
        /* two cross K/V regions: a running generation's rows keep theirs in [0] while
         * its hooks score into [1] (eng_stream) */
        for (int r = 0; r < 2; r++)
            for (int kv = 0; kv < 2; kv++) {
                if (r) SCRATCH(c->w.cross[r][kv], NL * BT * I);
                else CARVE(c->w.cross[r][kv], NL * BT * I);
            }
        if (rel) { /* the bucketed bias by relative position, per head */
            CARVE(c->w.enc_bias, H * (2 * L - 1));
            CARVE(c->w.dec_bias, H * L);
        }
        SCRATCH(c->w.pos_ids, T);
        CARVE(c->w.kv, R * c->w.kv_block);
        SCRATCH(c->w.logits, (size_t)c->w.logit_rows * V);
        SCRATCH(c->w.enc_ids, BT);
        SCRATCH(c->w.tok_off, R + 1);
        SCRATCH(c->w.enc_off, R + 1);
        SCRATCH(c->w.enc_len, R + 1);
        /* generation */
        CARVE(c->d.hist, R * (P + 1));
        CARVE(c->d.hist2, (R + 1) * (P + 1));
        CARVE(c->d.row_block, R);
        CARVE(c->d.row_block2, R);
        CARVE(c->d.act, R);
        CARVE(c->d.act_req, R);
        CARVE(c->d.act_pos, R);
        CARVE(c->d.act_blk, R);
        CARVE(c->d.act_tok, R);
        CARVE(c->d.slot_used, 2 * R);
        CARVE(c->d.parent, R);
        CARVE(c->d.block_used, R);
        CARVE(c->d.row_score, R);
        CARVE(c->d.row_score2, R);
        CARVE(c->d.row_done, R);
        CARVE(c->d.row_len, R);
        CARVE(c->d.row_rng, R);
        CARVE(c->d.fin_tok, R * (size_t)q.max_new_tokens);
        CARVE(c->d.fin_len, R);
        CARVE(c->d.fin_score, R);
        CARVE(c->d.fin_sum, R);
        CARVE(c->d.beam_score, 2 * R * R);
        CARVE(c->d.beam_tok, 2 * R * R);
        CARVE(c->d.beam_src, 2 * R * R);
        CARVE(c->d.sort_val, NT * V);
        CARVE(c->d.sort_idx, NT * V);
        CARVE(c->d.lp_row, NT * V);
        CARVE(c->d.ban, NT * (P + 2));
        CARVE(c->d.rb, NT);
        if (pass) c->d.greq = (void *)(base + used);
        used += (R * eng_greq_size() + 63) & ~(size_t)63;
        /* label scoring */
        SCRATCH(c->s.run, R);
        SCRATCH(c->s.cand_off, CT + 1);
        SCRATCH(c->s.cand_order, CT);
        SCRATCH(c->s.cand_lp, CT);
        SCRATCH(c->s.cand_tgt, CP);
        SCRATCH(c->s.cand_node, CP);
        SCRATCH(c->s.cand_pos_lp, CP);
        SCRATCH(c->s.tree_off, CT + 1);
        SCRATCH(c->s.tree_eoff, CT);
        SCRATCH(c->s.tree_elen, CT);
        SCRATCH(c->s.node_tok, CP);
        SCRATCH(c->s.node_dep, CP);
        SCRATCH(c->s.node_end, CP);
        SCRATCH(c->s.node_lse, CP);
        /* classification */
        SCRATCH(c->cl.dec, BT);
        SCRATCH(c->cl.h, 2 * R * D);
        SCRATCH(c->cl.run, R);
        SCRATCH(c->cl.eos, R);
        if (pass == 0 && !(base = calloc(1, used))) break;
    }
    c->mem = base;
    c->mem_bytes = used;
    int bad = !base;
    c->w.cross_k = c->w.cross[0][0];
    c->w.cross_v = c->w.cross[0][1];
#undef SCRATCH
#undef CARVE
    for (size_t t = 0; !bad && t < NT; t++)
        c->d.rb[t] = (eng_rowbuf){ .lp = c->d.lp_row + t * V,
                                   .sort_val = c->d.sort_val + t * V,
                                   .sort_idx = c->d.sort_idx + t * V,
                                   .ban = c->d.ban + t * (P + 2) };
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
            c->w.enc_bias[hd * (2 * L - 1) + (size_t)(r + (int)L - 1)] =
                model->enc.rel[(size_t)b * H + hd];
        }
        for (int r = 0; r < (int)L; r++) {
            int b = eng_relative_bucket(-r, 0, cf->arch.num_buckets, cf->arch.max_distance);
            c->w.dec_bias[hd * L + (size_t)r] = model->dec.rel[(size_t)b * H + hd];
        }
    }
    return c;
}

void eng_ctx_free(eng_ctx **ctx)
{
    if (!ctx || !*ctx) return;
    free((*ctx)->mem);
    free(*ctx);
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
    eng_threads_step(c);
    int off[2] = { 0, n_ids };
    c->m->arch->fwd->encode(c, ids, off, 1, -1);
    size_t n = (size_t)n_ids * c->m->cfg.d_model;
    memcpy(out, c->w.enc_out, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i])) return ENG_ENONFINITE;
    return 0;
}

int eng_logits(eng_ctx *c, const int32_t *ids, int n_ids, const int32_t *dec_ids, int n_dec,
               float *out)
{
    if (!c || !ids || !dec_ids || !out || n_ids <= 0 || n_dec <= 0) return ENG_EINVAL;
    if (n_ids > c->p.max_input_len || n_dec > c->max_len || n_dec > c->max_tok) return ENG_ETOOLONG;
    if (ctx_check_ids(c, ids, n_ids) || ctx_check_ids(c, dec_ids, n_dec)) return ENG_EINVAL;
    eng_threads_step(c);
    int off[2] = { 0, n_ids };
    const eng_fwd *f = c->m->arch->fwd;
    f->encode(c, ids, off, 1, 0);
    int doff[2] = { 0, n_dec }, eoff = 0;
    f->decode_full(c, dec_ids, doff, 1, &eoff, &n_ids, NULL, NULL);
    f->lm_head(c, c->w.h + (size_t)(n_dec - 1) * c->m->cfg.d_model, 1, out);
    for (int v = 0; v < c->m->cfg.vocab_size; v++)
        if (!isfinite(out[v])) return ENG_ENONFINITE;
    return 0;
}
