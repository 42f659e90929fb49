/* The encoder-decoder Transformer, parameterised by the architecture (eng_arch_config):
 * encoder over packed sequences, decoder step with a self-attention KV cache,
 * teacher-forced decoder, lm_head. One implementation serves every family in the
 * architecture table, the way CTranslate2's layers/transformer.h serves T5, BART and
 * Marian: a sublayer is norm / attention or feed-forward / residual, pre- or post-norm;
 * the pieces that differ (norm kind, biases, activation, attention scale, positions,
 * embedding scale) are parameters. Nothing here allocates: the context owns every buffer.
 *
 * Packing: sequences are laid back to back with no padding, so every Linear layer is one
 * product over all tokens of the batch while attention runs per sequence and head on its
 * own slice. Padding would only cost work: the result of a sequence never sees another's
 * rows. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *tf_kv_at(eng_ctx *c, int blk, int layer, int which)
{
    return c->w.kv + (size_t)blk * c->w.kv_block +
           ((size_t)(layer * 2 + which) * c->max_pos) * c->m->inner;
}

/* Keys and values of every decoder layer, for max_pos positions of one row. */
static size_t tf_kv_floats(const eng_model *m, int max_pos)
{
    return (size_t)m->cfg.num_decoder_layers * 2 * (size_t)max_pos * (size_t)m->inner;
}

/* The sublayer's input: norm(x) into h before it (pre-norm), or x itself (post-norm). */
static const float *tf_in(eng_ctx *c, const eng_norm_w *ln, int n)
{
    const eng_arch_config *a = &c->m->cfg.arch;
    if (!a->pre_norm) return c->w.x;
    eng_norm(a, ln, c->w.x, n, c->m->cfg.d_model, c->w.h);
    return c->w.h;
}

/* x += h (the sublayer's output), then the norm after it (post-norm). */
static void tf_residual(eng_ctx *c, const eng_norm_w *ln, int n)
{
    const eng_arch_config *a = &c->m->cfg.arch;
    int D = c->m->cfg.d_model;
    eng_add(c->w.x, c->w.h, (size_t)n * D);
    if (!a->pre_norm) eng_norm(a, ln, c->w.x, n, D, c->w.x);
}

/* x += h (the sublayer's output), then the input of the next sublayer (pre-norm: its
 * norm `next` of x into h; none when next is NULL), as tf_residual then tf_in compute it:
 * for an RMS norm, in one pass over x. */
static const float *tf_residual_in(eng_ctx *c, const eng_norm_w *ln, const eng_norm_w *next, int n)
{
    const eng_arch_config *a = &c->m->cfg.arch;
    if (next && a->pre_norm && a->norm == ENG_NORM_RMS) {
        eng_add_rmsnorm(c->w.x, c->w.h, next->w, n, c->m->cfg.d_model, a->norm_eps, c->w.h);
        return c->w.h;
    }
    tf_residual(c, ln, n);
    return next ? tf_in(c, next, n) : NULL;
}

/* The feed-forward of the sublayer's input in [n, d_model] into h (uses ff0, ff1); the
 * caller adds it to x. */
static void tf_ff_out(eng_ctx *c, const eng_layer_w *l, const float *in, int n)
{
    const eng_arch_config *a = &c->m->cfg.arch;
    size_t F = (size_t)c->m->cfg.d_ff;
    const eng_lin *wi[2] = { &l->wi, &l->wi1 };
    float *const out[2] = { c->w.ff0, c->w.ff1 };
    eng_lin_apply_n(wi, a->gated ? 2 : 1, in, n, out);
    eng_activate(a->act, c->w.ff0, a->gated ? c->w.ff1 : NULL, (size_t)n * F);
    eng_lin_apply(&l->wo, c->w.ff0, n, c->w.h);
}

/* Residual feed-forward on x[n, d_model] (uses h, ff0, ff1). */
static void tf_ff(eng_ctx *c, const eng_layer_w *l, int n)
{
    tf_ff_out(c, l, tf_in(c, &l->ln_ff, n), n);
    tf_residual(c, &l->ln_ff, n);
}

/* q, k, v [n, inner] from the sublayer's input (k and v only when not NULL); queries
 * scaled as the architecture says. */
static void tf_qkv(eng_ctx *c, const eng_attn_w *w, const float *in, int n, int kv)
{
    float s = c->m->cfg.arch.attn_scale;
    const eng_lin *ls[3] = { &w->q, &w->k, &w->v };
    float *const out[3] = { c->w.q, c->w.k, c->w.v };
    eng_lin_apply_n(ls, kv ? 3 : 1, in, n, out);
    if (s != 1.0f) eng_scale(c->w.q, (size_t)n * c->m->inner, s);
}

/* x[n, d_model] = the stack's embeddings of tok at positions pos (scaled, plus the
 * position table, then the embedding norm, as the architecture has them). */
static void tf_embed(eng_ctx *c, const eng_stack_w *s, const int32_t *tok, const int *pos, int n)
{
    const eng_arch_config *a = &c->m->cfg.arch;
    int D = c->m->cfg.d_model;
    for (int i = 0; i < n; i++) {
        float *xi = c->w.x + (size_t)i * D;
        eng_lin_row(&s->embed, tok[i], xi);
        if (a->embed_scale != 1.0f) eng_scale(xi, (size_t)D, a->embed_scale);
        if (s->pos && !(a->pos_pad_zero && tok[i] == c->m->cfg.pad_token_id)) {
            const float *p = s->pos + (size_t)(pos[i] + a->pos_offset) * D;
            for (int d = 0; d < D; d++) xi[d] += p[d];
        }
    }
    if (a->embed_norm) eng_norm(a, &s->embed_norm, c->w.x, n, D, c->w.x);
}

/* The stack's output: its final norm of x, or x, into out. */
static void tf_final(eng_ctx *c, const eng_stack_w *s, int n, float *out)
{
    int D = c->m->cfg.d_model;
    if (c->m->cfg.arch.final_norm) eng_norm(&c->m->cfg.arch, &s->final_norm, c->w.x, n, D, out);
    else if (out != c->w.x) memcpy(out, c->w.x, (size_t)n * D * sizeof(float));
}

/* Positions of packed rows: row t of sequence i is at t - off[i]; with fairseq's
 * positions (encoder), at the count of tokens before it that are not pad. */
static void tf_positions(eng_ctx *c, const int32_t *tok, const int *off, int n, int skip_pad)
{
    int pad = c->m->cfg.pad_token_id;
    for (int i = 0; i < n; i++)
        for (int t = off[i], p = 0; t < off[i + 1]; t++) {
            c->w.pos_ids[t] = skip_pad ? p : t - off[i];
            p += !skip_pad || tok[t] != pad;
        }
}

/* Attention of one head hd of one sequence: Lq queries (rows of c->w.q and c->w.att from q,
 * att) over Lk keys/values (rows of k, v). mode 0: bidirectional (with the relative
 * position bias, if the architecture has one); 1: causal (idem; queries and keys are the
 * same positions); 2: cross attention, no bias.
 * Mode 1 with a tree (dep, end not NULL): the sequence is a prefix tree in preorder, node
 * i at decoder position dep[i] with its subtree at [i, end[i]); a node sees itself and
 * its ancestors, as if each root-to-node path were a sequence of its own.
 * s: [Lq, Lk] scratch, kt: [d_kv, keys_ld] scratch. Runs on the calling thread.
 * With 4 queries or more the keys are transposed first, so that the scores are rows
 * times columns (16 sums of 4 rows x 64 keys in registers, 2x the speed of one dot
 * product per key), by eng_attn_scores and eng_attn_pv (blocked for L1; the bias added
 * in the scores' store: the bits eng_gemm_serial on the transposed keys gives); fewer
 * queries take eng_gemm_serial's dot products. q8: an int8 model's scratch for the
 * encoder's int8 attention (below), or NULL. */
static void tf_attend_head(const eng_ctx *c, const float *q, float *att, int Lq, const float *k,
                           const float *v, int Lk, int mode, const int *dep, const int *end, int hd,
                           float *s, float *kt, unsigned char *q8)
{
    int I = c->m->inner, dk = c->m->cfg.d_kv, L = c->max_len;
    /* the encoder's relative position bias: row i's is enc_bias[hd] from L - 1 - i */
    const float *eb = NULL;
    if (mode == 0 && c->w.enc_bias) eb = c->w.enc_bias + (size_t)hd * (2 * L - 1) + (L - 1);
    /* An int8 model's encoder: both products in int8 (eng_gemm_q8_serial; the keys and the
     * values transposed quantized per row, the queries and the probabilities per row as
     * any activation), the softmax in F32. Each row's result depends on the sequence's
     * own keys and values only. */
    if (q8 && mode == 0 && Lq >= 4) {
        unsigned char *kq = q8, *vq = q8 + c->w.q8_attn_v;
        int rc = eng_q8_pack_rows(k + hd * dk, Lk, dk, I, kq);
        if (rc == 0) rc = eng_gemm_q8_serial(Lq, Lk, dk, q + hd * dk, I, kq, eb, -1, s, Lk);
        for (int i = 0; rc == 0 && i < Lq; i++) eng_softmax(s + (size_t)i * Lk, Lk);
        eng_transpose(Lk, dk, v + hd * dk, I, kt, c->w.keys_ld);
        if (rc == 0) rc = eng_q8_pack_rows(kt, dk, Lk, c->w.keys_ld, vq);
        if (rc == 0) rc = eng_gemm_q8_serial(Lq, dk, Lk, s, Lk, vq, NULL, 0, att + hd * dk, I);
        for (int i = 0; rc < 0 && i < Lq; i++) /* no scratch: no result, as eng_lin_apply */
            for (int d = 0; d < dk; d++) att[(size_t)i * I + hd * dk + d] = NAN;
        return;
    }
    if (Lq >= 4) {
        eng_transpose(Lk, dk, k + hd * dk, I, kt, c->w.keys_ld);
        eng_attn_scores(Lq, Lk, dk, q + hd * dk, I, kt, c->w.keys_ld, eb, -1, s, Lk);
    } else {
        eng_gemm_serial(Lq, Lk, dk, q + hd * dk, I, k + hd * dk, I, 1, 0.0f, s, Lk);
        for (int i = 0; eb && i < Lq; i++)
            for (int j = 0; j < Lk; j++) s[(size_t)i * Lk + j] += eb[j - i];
    }
    for (int i = 0; i < Lq; i++) {
        float *si = s + (size_t)i * Lk;
        /* mode 0's bias is in the scores already; mode 2 has none */
        if (mode == 1 && c->w.dec_bias) {
            const float *b = c->w.dec_bias + (size_t)hd * L;
            if (dep) {
                for (int j = 0; j < Lk; j++)
                    si[j] = j <= i && i < end[j] ? si[j] + b[dep[i] - dep[j]] : -INFINITY;
            } else {
                for (int j = 0; j <= i; j++) si[j] += b[i - j];
                for (int j = i + 1; j < Lk; j++) si[j] = -INFINITY;
            }
        } else if (mode == 1) { /* causal, without a position bias */
            if (dep) {
                for (int j = 0; j < Lk; j++)
                    if (!(j <= i && i < end[j])) si[j] = -INFINITY;
            } else {
                for (int j = i + 1; j < Lk; j++) si[j] = -INFINITY;
            }
        }
        eng_softmax(si, Lk);
    }
    if (Lq >= 4) {
        /* the head's values made contiguous in kt (free once the scores are made): rows
         * inner apart fall into few L1 sets when inner is a multiple of 256 (768 in
         * flan-t5-base), and the product reads each block of them Lq / 4 times */
        for (int j = 0; j < Lk; j++)
            memcpy(kt + (size_t)j * dk, v + (size_t)j * I + hd * dk, (size_t)dk * sizeof(float));
        eng_attn_pv(Lq, Lk, dk, s, Lk, kt, dk, att + hd * dk, I);
    } else eng_gemm_serial(Lq, dk, Lk, s, Lk, v + hd * dk, I, 0, 0.0f, att + hd * dk, I);
}

/* Attention of n sequences into c->w.att: sequence i's queries are rows qoff[i] ..
 * qoff[i + 1] - 1 of c->w.q (qoff NULL: row i alone), its keys and values rows koff[i] ..
 * of k and v, klen[i] of them (klen NULL: the sequence's own rows, self-attention). The
 * (sequence, head) pairs are shared between the threads, each with its own
 * [max_len, max_len] slice of the scores workspace; every pair is computed the same way
 * whichever thread takes it. */
static void tf_attend(eng_ctx *c, int n, const int *qoff, const float *k, const float *v,
                      const int *koff, const int *klen, int mode, const int *dep, const int *end)
{
    int I = c->m->inner, H = c->m->cfg.num_heads, dk = c->m->cfg.d_kv;
    double work = 0; /* multiply-adds */
    for (int i = 0; i < n; i++) {
        int lq = qoff ? qoff[i + 1] - qoff[i] : 1;
        work += 2.0 * lq * (klen ? klen[i] : lq) * dk * H;
    }
    size_t L = (size_t)c->max_len;
    int par = work >= ENG_PAR_FLOATS * 4.0, nt = c->nt;
    (void)par, (void)nt; /* without OpenMP */
    ENG_PARALLEL_FOR_NT(par, nt)
    for (int it = 0; it < n * H; it++) {
        int i = it / H, hd = it % H;
        int q0 = qoff ? qoff[i] : i, lq = qoff ? qoff[i + 1] - q0 : 1;
        int k0 = klen ? koff[i] : q0, lk = klen ? klen[i] : lq;
        tf_attend_head(c, c->w.q + (size_t)q0 * I, c->w.att + (size_t)q0 * I, lq,
                       k + (size_t)k0 * I, v + (size_t)k0 * I, lk, mode, dep ? dep + q0 : NULL,
                       end ? end + q0 : NULL, hd, c->w.scores + (size_t)eng_thread_id() * L * L,
                       c->w.keys_t + (size_t)eng_thread_id() * dk * c->w.keys_ld,
                       c->w.q8_attn ? c->w.q8_attn + eng_thread_id() * c->w.q8_attn_bytes : NULL);
    }
}

static void tf_encode(eng_ctx *c, const int32_t *ids, const int *tok_off, int n, int cross_at)
{
    const eng_model *m = c->m;
    const eng_config *cf = &m->cfg;
    int D = cf->d_model, I = m->inner, T = tok_off[n];
    tf_positions(c, ids, tok_off, n, cf->arch.pos_pad_zero);
    tf_embed(c, &m->enc, ids, c->w.pos_ids, T);
    const float *in = cf->num_layers > 0 ? tf_in(c, &m->enc.layers[0].ln_self, T) : NULL;
    for (int li = 0; li < cf->num_layers; li++) {
        const eng_layer_w *l = &m->enc.layers[li];
        tf_qkv(c, &l->self, in, T, 1);
        tf_attend(c, n, tok_off, c->w.k, c->w.v, NULL, NULL, 0, NULL, NULL);
        eng_lin_apply(&l->self.o, c->w.att, T, c->w.h);
        tf_ff_out(c, l, tf_residual_in(c, &l->ln_self, &l->ln_ff, T), T);
        const eng_norm_w *next = li + 1 < cf->num_layers ? &m->enc.layers[li + 1].ln_self : NULL;
        in = tf_residual_in(c, &l->ln_ff, next, T);
    }
    tf_final(c, &m->enc, T, c->w.enc_out);
    if (cross_at < 0) return;
    size_t BT = (size_t)c->p.max_batch_tokens, at = (size_t)cross_at * I;
    /* every decoder layer's cross K and V from the same input: int8 quantizes it once
     * per ENG_Q8_MAX_SHARED / 2 layers */
    for (int l0 = 0; l0 < cf->num_decoder_layers; l0 += ENG_Q8_MAX_SHARED / 2) {
        const eng_lin *ls[ENG_Q8_MAX_SHARED];
        float *out[ENG_Q8_MAX_SHARED];
        int nl = 0;
        for (int li = l0; li < cf->num_decoder_layers && li < l0 + ENG_Q8_MAX_SHARED / 2; li++) {
            const eng_layer_w *l = &m->dec.layers[li];
            ls[nl] = &l->cross.k, out[nl++] = c->w.cross_k + li * BT * I + at;
            ls[nl] = &l->cross.v, out[nl++] = c->w.cross_v + li * BT * I + at;
        }
        eng_lin_apply_n(ls, nl, c->w.enc_out, T, out);
    }
    (void)D;
}

/* The decoder's output in h, ready for lm_head: the final norm, then lm_scale. */
static void tf_dec_out(eng_ctx *c, int n)
{
    float s = c->m->cfg.arch.lm_scale;
    tf_final(c, &c->m->dec, n, c->w.h);
    if (s != 1.0f) eng_scale(c->w.h, (size_t)n * c->m->cfg.d_model, s);
}

/* Self-attention of decode row i at position pos: its new key and value go into its KV
 * cache block, then its query attends over positions 0..pos. s: [pos + 1] scratch. Runs
 * on the calling thread (the threads share the rows). */
static void tf_step_self_row(eng_ctx *c, int li, int blk, int pos, int i, float *s)
{
    int I = c->m->inner, dk = c->m->cfg.d_kv, H = c->m->cfg.num_heads;
    float *kc = tf_kv_at(c, blk, li, 0); /* [max_pos, inner] */
    float *vc = tf_kv_at(c, blk, li, 1);
    memcpy(kc + (size_t)pos * I, c->w.k + (size_t)i * I, (size_t)I * sizeof(float));
    memcpy(vc + (size_t)pos * I, c->w.v + (size_t)i * I, (size_t)I * sizeof(float));
    const float *qi = c->w.q + (size_t)i * I;
    float *ai = c->w.att + (size_t)i * I;
    for (int hd = 0; hd < H; hd++) {
        eng_gemm_serial(1, pos + 1, dk, qi + hd * dk, I, kc + hd * dk, I, 1, 0.0f, s, pos + 1);
        if (c->w.dec_bias) {
            const float *b = c->w.dec_bias + (size_t)hd * c->max_len;
            for (int j = 0; j <= pos; j++) s[j] += b[pos - j];
        }
        eng_softmax(s, pos + 1);
        eng_gemm_serial(1, dk, pos + 1, s, pos + 1, vc + hd * dk, I, 0, 0.0f, ai + hd * dk, I);
    }
}

static void tf_decode_step(eng_ctx *c, const int32_t *tok, const int *blk, const int *enc_off,
                           const int *enc_len, int n, const int *pos)
{
    const eng_model *m = c->m;
    const eng_config *cf = &m->cfg;
    int I = m->inner;
    size_t BT = (size_t)c->p.max_batch_tokens;
    tf_embed(c, &m->dec, tok, pos, n);
    for (int li = 0; li < cf->num_decoder_layers; li++) {
        const eng_layer_w *l = &m->dec.layers[li];
        tf_qkv(c, &l->self, tf_in(c, &l->ln_self, n), n, 1);
        /* Rows are independent here: the threads share them, each row with its own
         * slice of the scores workspace ([max_rows, max_len]). */
        ENG_PARALLEL_FOR(n > 1)
        for (int i = 0; i < n; i++)
            tf_step_self_row(c, li, blk[i], pos[i], i, c->w.scores + (size_t)i * c->max_len);
        eng_lin_apply(&l->self.o, c->w.att, n, c->w.h);
        tf_residual(c, &l->ln_self, n);

        tf_qkv(c, &l->cross, tf_in(c, &l->ln_cross, n), n, 0);
        tf_attend(c, n, NULL, c->w.cross_k + li * BT * I, c->w.cross_v + li * BT * I, enc_off,
                  enc_len, 2, NULL, NULL);
        eng_lin_apply(&l->cross.o, c->w.att, n, c->w.h);
        tf_residual(c, &l->ln_cross, n);
        tf_ff(c, l, n);
    }
    tf_dec_out(c, n);
}

static void tf_decode_full(eng_ctx *c, const int32_t *tok, const int *off, int n,
                           const int *enc_off, const int *enc_len, const int *dep, const int *end)
{
    const eng_model *m = c->m;
    const eng_config *cf = &m->cfg;
    int I = m->inner, T = off[n];
    size_t BT = (size_t)c->p.max_batch_tokens;
    if (dep) /* a tree's rows are at their depth */
        for (int t = 0; t < T; t++) c->w.pos_ids[t] = dep[t];
    else /* as generation feeds them: a decoder row is at its index */
        tf_positions(c, tok, off, n, 0);
    tf_embed(c, &m->dec, tok, c->w.pos_ids, T);
    for (int li = 0; li < cf->num_decoder_layers; li++) {
        const eng_layer_w *l = &m->dec.layers[li];
        tf_qkv(c, &l->self, tf_in(c, &l->ln_self, T), T, 1);
        tf_attend(c, n, off, c->w.k, c->w.v, NULL, NULL, 1, dep, end);
        eng_lin_apply(&l->self.o, c->w.att, T, c->w.h);
        tf_residual(c, &l->ln_self, T);

        tf_qkv(c, &l->cross, tf_in(c, &l->ln_cross, T), T, 0);
        tf_attend(c, n, off, c->w.cross_k + li * BT * I, c->w.cross_v + li * BT * I, enc_off,
                  enc_len, 2, NULL, NULL);
        eng_lin_apply(&l->cross.o, c->w.att, T, c->w.h);
        tf_residual(c, &l->ln_cross, T);
        tf_ff(c, l, T);
    }
    tf_dec_out(c, T);
}

static void tf_lm_head(eng_ctx *c, const float *hidden, int rows, float *logits)
{
    eng_lin_apply(&c->m->lm_head, hidden, rows, logits);
}

const eng_fwd eng_tf_fwd = {
    .encode = tf_encode,
    .decode_step = tf_decode_step,
    .decode_full = tf_decode_full,
    .lm_head = tf_lm_head,
    .kv_floats = tf_kv_floats,
    .kv_at = tf_kv_at,
};
