/* Sequence classification with a classification head (BartForSequenceClassification:
 * bart-large-mnli, the NLI model zero-shot classification runs on). The decoder reads the
 * input shifted right (the start token, then the ids without the last), and the head
 * (dense, tanh, out_proj) reads the decoder's last-layer state at the input's last EOS.
 * Requests are packed back to back like generation's encoder inputs, so a batch is one
 * encoder pass and one teacher-forced decoder pass; a row attends only to its own
 * sequence, so each result is what it would be alone. */
#include "engine/eng_int.h"

#include <math.h>
#include <string.h>

/* The index of the last EOS of r's ids, or an error status. */
static int cl_check(const eng_ctx *c, const eng_cls_req *r, int *last_eos)
{
    const eng_config *cf = &c->m->cfg;
    if (!r->ids || r->n_ids <= 0 || !r->logits) return ENG_EINVAL;
    if (r->n_ids > c->p.max_input_len) return ENG_ETOOLONG;
    *last_eos = -1;
    for (int i = 0; i < r->n_ids; i++) {
        if (r->ids[i] < 0 || r->ids[i] >= cf->vocab_size) return ENG_EINVAL;
        if (r->ids[i] == cf->eos_token_id) *last_eos = i;
    }
    return *last_eos < 0 ? ENG_EINVAL : 0;
}

/* One pass over reqs[run[0..k)]: encoder, teacher-forced decoder, head. */
static void cl_pass(eng_ctx *c, eng_cls_req *reqs, const int *run, const int *eos, int k)
{
    const eng_model *m = c->m;
    const eng_fwd *f = m->arch->fwd;
    int D = m->cfg.d_model, T = 0;
    for (int i = 0; i < k; i++) {
        const eng_cls_req *r = &reqs[run[i]];
        c->w.tok_off[i] = T;
        c->w.enc_off[i] = T;
        c->w.enc_len[i] = r->n_ids;
        memcpy(c->w.enc_ids + T, r->ids, (size_t)r->n_ids * sizeof *r->ids);
        c->cl.dec[T] = m->cfg.decoder_start_token_id; /* shift right */
        memcpy(c->cl.dec + T + 1, r->ids, (size_t)(r->n_ids - 1) * sizeof *r->ids);
        T += r->n_ids;
    }
    c->w.tok_off[k] = T;
    f->encode(c, c->w.enc_ids, c->w.tok_off, k, 0);
    f->decode_full(c, c->cl.dec, c->w.tok_off, k, c->w.enc_off, c->w.enc_len, NULL, NULL);
    float *h = c->cl.h, *y = c->cl.h + (size_t)k * D; /* [k, D] each */
    for (int i = 0; i < k; i++)
        memcpy(h + (size_t)i * D, c->w.h + (size_t)(c->w.tok_off[i] + eos[i]) * D,
               (size_t)D * sizeof *h);
    eng_lin_apply(&m->cls_dense, h, k, y);
    for (size_t i = 0; i < (size_t)k * D; i++) y[i] = tanhf(y[i]);
    eng_lin_apply(&m->cls_out, y, k, h);
    for (int i = 0; i < k; i++) {
        eng_cls_req *r = &reqs[run[i]];
        memcpy(r->logits, h + (size_t)i * m->cfg.num_labels,
               (size_t)m->cfg.num_labels * sizeof *r->logits);
        for (int l = 0; l < m->cfg.num_labels; l++)
            if (!isfinite(r->logits[l])) r->status = ENG_ENONFINITE;
    }
}

int eng_classify(eng_ctx *c, eng_cls_req *reqs, int n)
{
    if (!c || n < 0 || (n > 0 && !reqs)) return ENG_EINVAL;
    if (c->m->cfg.num_labels <= 0) return ENG_EINVAL; /* no classification head */
    eng_threads_step(c);
    int R = c->p.max_rows, BT = c->p.max_batch_tokens;
    int *run = c->cl.run, *eos = c->cl.eos;
    int k = 0, tokens = 0;
    for (int i = 0; i <= n; i++) {
        int e = 0;
        if (i < n) {
            reqs[i].status = cl_check(c, &reqs[i], &e);
            if (reqs[i].status) continue;
        }
        if (k > 0 && (i == n || k == R || tokens + reqs[i].n_ids > BT)) {
            cl_pass(c, reqs, run, eos, k);
            k = 0, tokens = 0;
        }
        if (i == n) break;
        run[k] = i, eos[k] = e, k++;
        tokens += reqs[i].n_ids;
    }
    return 0;
}
