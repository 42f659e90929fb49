/* nlprun generate / nlprun logits: the engine on token ids, without tokenizer or daemon.
 * Output formats are contracts (DESIGN.md "Command contracts"). Single-threaded caller;
 * Matrix products may use --threads threads. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/nlprun/nlprun.h"
#include "common/common.h"
#include "engine/engine.h"

#define EC_MAX_IDS 65536

static const char ec_gen_usage[] =
    "usage: nlprun generate --model DIR --ids 37,32099,1 [options]\n"
    "  --ids LIST                  encoder input ids, comma separated, EOS included\n"
    "  --max-new-tokens N          (64)\n"
    "  --min-new-tokens N          EOS forbidden before N tokens (0)\n"
    "  --num-beams B               beam search when > 1 (1)\n"
    "  --length-penalty F          beam score = sum_logprobs / n^F (1.0)\n"
    "  --no-repeat-ngram-size N    (0: off)\n"
    "  --num-return K              hypotheses printed (1)\n"
    "  --repetition-penalty F      (1.0: off)\n"
    "  --early-stopping MODE       beam search: true, false (HF's default) or never\n"
    "  --sample                    sample instead of argmax; with --temperature F (1.0),\n"
    "                              --top-k K (0: off), --top-p P (1.0: off), --seed S (0)\n"
    "  --threads N                 threads (0: up to the CPUs, fewer while they are busy)\n"
    "  --weights TYPE              how weights are held: auto (the checkpoint's type),\n"
    "                              f32, bf16, f16 or int8 (docs/models.md)\n"
    "Defaults are the model directory's own (generation_config.json, else config.json:\n"
    "lengths, beams, early stopping, forced first/last tokens, bad words), then the ones\n"
    "in parentheses; an option overrides both.\n"
    "Prints one line per hypothesis, best first: SCORE<TAB>id id id (no start token;\n"
    "EOS included when generated). Greedy score = sum of log-probs.\n";

static const char ec_logits_usage[] =
    "usage: nlprun logits --model DIR --ids 37,1 [--decoder-ids 0,...] [--top K] [--threads N]\n"
    "       [--weights auto|f32|bf16|f16|int8]\n"
    "Prints the next-token logits at the last decoder position, highest first:\n"
    "id<TAB>logit, K lines (10). On a sequence-classification checkpoint without\n"
    "--decoder-ids: one line per class, in class order: LABEL<TAB>logit.\n";

/* Parses "1,2,3" into a new array; NULL on a malformed list. */
static int32_t *ec_parse_ids(const char *s, int *n)
{
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    if (cap > EC_MAX_IDS) return NULL;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return NULL;
    int k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            return NULL;
        }
        ids[k++] = (int32_t)v;
        if (!*end) break;
        p = end + 1;
    }
    *n = k;
    return ids;
}

static int ec_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    long long x;
    if (cm_parse_ll(v, lo, hi, &x) < 0) {
        fprintf(stderr, "nlprun: %s needs an integer in [%d, %d]\n", opt, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int ec_float(const char *opt, const char *v, float *out)
{
    float x;
    if (cm_parse_float(v, &x) < 0) {
        fprintf(stderr, "nlprun: %s needs a number\n", opt);
        return -1;
    }
    *out = x;
    return 0;
}

typedef struct ec_common {
    const char *model;
    int32_t *ids, *dec;
    int n_ids, n_dec;
    int threads;
    int weights; /* eng_weights */
} ec_common;

/* Options both commands share; 1 if `opt` was one of them (argv[*i] consumed), 0 if not,
 * -1 on a bad value. */
static int ec_common_opt(ec_common *c, int argc, char **argv, int *i)
{
    const char *opt = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(opt, "--model")) {
        if (!val) return -1;
        c->model = val;
    } else if (!strcmp(opt, "--ids") || !strcmp(opt, "--decoder-ids")) {
        int n = 0;
        int32_t *ids = val ? ec_parse_ids(val, &n) : NULL;
        if (!ids) {
            fprintf(stderr, "nlprun: %s needs comma-separated ids\n", opt);
            return -1;
        }
        if (opt[2] == 'i') {
            free(c->ids);
            c->ids = ids, c->n_ids = n;
        } else {
            free(c->dec);
            c->dec = ids, c->n_dec = n;
        }
    } else if (!strcmp(opt, "--threads")) {
        if (ec_int(opt, val, 0, 1024, &c->threads)) return -1;
    } else if (!strcmp(opt, "--weights")) {
        if ((c->weights = eng_weights_parse(val)) < 0) {
            fprintf(stderr, "nlprun: --weights needs auto, f32, bf16, f16 or int8\n");
            return -1;
        }
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

static eng_model *ec_load(const ec_common *c)
{
    char err[1024];
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = c->threads;
    mp.weights = (eng_weights)c->weights;
    eng_model *m = eng_model_load(c->model, &mp, err, sizeof err);
    if (!m) fprintf(stderr, "nlprun: %s\n", err);
    return m;
}

/* One generation option into p: 1 (argv[*i] and its value consumed), 0 if `o` is not
 * one, -1 on a bad value (said on stderr). */
static int ec_gen_opt(eng_gen_params *p, int argc, char **argv, int *i)
{
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int bad = 0, used = 1;
    if (!strcmp(o, "--max-new-tokens")) {
        bad = ec_int(o, v, 1, 65536, &p->max_new_tokens);
    } else if (!strcmp(o, "--min-new-tokens")) {
        bad = ec_int(o, v, 0, 65536, &p->min_new_tokens);
    } else if (!strcmp(o, "--num-beams")) {
        bad = ec_int(o, v, 1, 4096, &p->num_beams);
    } else if (!strcmp(o, "--num-return")) {
        bad = ec_int(o, v, 1, ENG_MAX_RETURN, &p->num_return_sequences);
    } else if (!strcmp(o, "--no-repeat-ngram-size")) {
        bad = ec_int(o, v, 0, 65536, &p->no_repeat_ngram_size);
    } else if (!strcmp(o, "--top-k")) {
        bad = ec_int(o, v, 0, INT_MAX, &p->top_k);
    } else if (!strcmp(o, "--length-penalty")) {
        bad = ec_float(o, v, &p->length_penalty);
    } else if (!strcmp(o, "--repetition-penalty")) {
        bad = ec_float(o, v, &p->repetition_penalty);
    } else if (!strcmp(o, "--temperature")) {
        bad = ec_float(o, v, &p->temperature);
    } else if (!strcmp(o, "--top-p")) {
        bad = ec_float(o, v, &p->top_p);
    } else if (!strcmp(o, "--early-stopping")) {
        if (v && !strcmp(v, "true")) p->early_stopping = ENG_EARLY_TRUE;
        else if (v && !strcmp(v, "false")) p->early_stopping = ENG_EARLY_FALSE;
        else if (v && !strcmp(v, "never")) p->early_stopping = ENG_EARLY_NEVER;
        else bad = 1, fprintf(stderr, "nlprun: --early-stopping takes true, false or never\n");
    } else if (!strcmp(o, "--seed")) {
        char *end;
        errno = 0;
        p->seed = v ? strtoull(v, &end, 10) : 0;
        bad = !v || end == v || *end || errno;
        if (bad) fprintf(stderr, "nlprun: --seed needs an unsigned integer\n");
    } else if (!strcmp(o, "--sample")) {
        p->do_sample = 1;
        used = 0;
    } else {
        return 0;
    }
    if (bad) return -1;
    *i += used;
    return 1;
}

int nlprun_generate(int argc, char **argv)
{
    ec_common c = { 0 };
    eng_gen_params p = eng_gen_default_params();
    int rc = 2;
    eng_model *m = NULL;
    eng_ctx *ctx = NULL;
    /* First pass: check every option; the generation options are applied once the
     * model's own settings are known (second pass), so that they override them. */
    for (int i = 1; i < argc; i++) {
        int r = ec_common_opt(&c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(ec_gen_usage, stdout);
            rc = 0;
            goto out;
        }
        r = ec_gen_opt(&p, argc, argv, &i);
        if (r < 0) goto out;
        if (r == 0) {
            fprintf(stderr, "nlprun generate: unknown option '%s'\n%s", argv[i], ec_gen_usage);
            goto out;
        }
    }
    if (!c.model || !c.ids) {
        fprintf(stderr, "nlprun generate: --model and --ids are required\n%s", ec_gen_usage);
        goto out;
    }
    rc = 1;
    if (!(m = ec_load(&c))) goto out;
    p = eng_model_gen_params(m, NULL);
    for (int i = 1; i < argc; i++) { /* second pass: the options over the model's own */
        ec_common seen = { 0 };
        int r = ec_common_opt(&seen, argc, argv, &i);
        free(seen.ids);
        free(seen.dec);
        if (r == 0) ec_gen_opt(&p, argc, argv, &i);
    }
    char err[512];
    eng_ctx_params cp = eng_ctx_default_params();
    int rows = p.num_beams > p.num_return_sequences ? p.num_beams : p.num_return_sequences;
    cp.max_rows = rows;
    cp.max_new_tokens = p.max_new_tokens;
    cp.max_input_len = c.n_ids > 512 ? c.n_ids : 512;
    cp.max_batch_tokens = cp.max_input_len;
    cp.max_cands = 1;
    cp.max_cand_len = 1;
    if (!(ctx = eng_ctx_new(m, &cp, err, sizeof err))) {
        fprintf(stderr, "nlprun: %s\n", err);
        goto out;
    }
    eng_gen_result res;
    eng_gen_req rq = { .ids = c.ids, .n_ids = c.n_ids, .params = &p, .out = &res };
    int st = eng_generate(ctx, &rq, 1);
    if (st == 0) st = rq.status;
    if (st) {
        fprintf(stderr, "nlprun generate: %s\n", eng_strerror(st));
        goto out;
    }
    for (int h = 0; h < res.n_hyps; h++) {
        printf("%.6f\t", res.hyps[h].score);
        for (int t = 0; t < res.hyps[h].n_tokens; t++)
            printf(t ? " %d" : "%d", res.hyps[h].tokens[t]);
        putchar('\n');
    }
    eng_gen_result_clear(&res);
    rc = fflush(stdout) ? 1 : 0;
out:
    eng_ctx_free(&ctx);
    eng_model_free(&m);
    free(c.ids);
    free(c.dec);
    return rc;
}

typedef struct ec_pair {
    float v;
    int id;
} ec_pair;

static int ec_cmp(const void *a, const void *b)
{
    const ec_pair *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->id - y->id;
}

/* A classification head's logits for c->ids, one line per class. */
static int ec_classify(const eng_model *m, const ec_common *c)
{
    char err[512];
    const eng_config *cf = eng_model_config(m);
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 1;
    cp.max_input_len = c->n_ids > 512 ? c->n_ids : 512;
    cp.max_batch_tokens = cp.max_input_len;
    cp.max_new_tokens = 1;
    cp.max_cands = 1;
    cp.max_cand_len = 1;
    eng_ctx *ctx = eng_ctx_new(m, &cp, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "nlprun: %s\n", err);
        return 1;
    }
    float lg[ENG_MAX_LABELS];
    eng_cls_req r = { .ids = c->ids, .n_ids = c->n_ids, .logits = lg };
    int st = eng_classify(ctx, &r, 1);
    if (st == 0) st = r.status;
    eng_ctx_free(&ctx);
    if (st) {
        fprintf(stderr, "nlprun logits: %s%s\n", eng_strerror(st),
                st == ENG_EINVAL ? " (the ids need an EOS, as the tokenizer adds it)" : "");
        return 1;
    }
    for (int l = 0; l < cf->num_labels; l++) printf("%s\t%.6f\n", cf->labels[l], lg[l]);
    return fflush(stdout) ? 1 : 0;
}

int nlprun_logits(int argc, char **argv)
{
    ec_common c = { 0 };
    int top = 10, rc = 2;
    eng_model *m = NULL;
    eng_ctx *ctx = NULL;
    float *lg = NULL;
    ec_pair *pr = NULL;
    for (int i = 1; i < argc; i++) {
        int r = ec_common_opt(&c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(ec_logits_usage, stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(argv[i], "--top")) {
            if (ec_int("--top", i + 1 < argc ? argv[i + 1] : NULL, 1, INT_MAX, &top)) goto out;
            i++;
        } else {
            fprintf(stderr, "nlprun logits: unknown option '%s'\n%s", argv[i], ec_logits_usage);
            goto out;
        }
    }
    if (!c.model || !c.ids) {
        fprintf(stderr, "nlprun logits: --model and --ids are required\n%s", ec_logits_usage);
        goto out;
    }
    rc = 1;
    if (!(m = ec_load(&c))) goto out;
    if (!c.dec && eng_model_config(m)->num_labels > 0) {
        rc = ec_classify(m, &c);
        goto out;
    }
    if (!c.dec) {
        fprintf(stderr, "nlprun logits: --decoder-ids is required (the model has no "
                        "classification head)\n");
        rc = 2;
        goto out;
    }
    char err[512];
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_rows = 1;
    cp.max_input_len = c.n_ids > 512 ? c.n_ids : 512;
    cp.max_batch_tokens = cp.max_input_len;
    cp.max_new_tokens = c.n_dec;
    cp.max_cands = 1;
    cp.max_cand_len = 1;
    if (!(ctx = eng_ctx_new(m, &cp, err, sizeof err))) {
        fprintf(stderr, "nlprun: %s\n", err);
        goto out;
    }
    int V = eng_model_config(m)->vocab_size;
    lg = malloc((size_t)V * sizeof *lg);
    pr = malloc((size_t)V * sizeof *pr);
    if (!lg || !pr) {
        fprintf(stderr, "nlprun: out of memory\n");
        goto out;
    }
    int st = eng_logits(ctx, c.ids, c.n_ids, c.dec, c.n_dec, lg);
    if (st) {
        fprintf(stderr, "nlprun logits: %s\n", eng_strerror(st));
        goto out;
    }
    for (int v = 0; v < V; v++) pr[v] = (ec_pair){ lg[v], v };
    qsort(pr, (size_t)V, sizeof *pr, ec_cmp);
    for (int k = 0; k < top && k < V; k++) printf("%d\t%.6f\n", pr[k].id, pr[k].v);
    rc = fflush(stdout) ? 1 : 0;
out:
    free(pr);
    free(lg);
    eng_ctx_free(&ctx);
    eng_model_free(&m);
    free(c.ids);
    free(c.dec);
    return rc;
}
