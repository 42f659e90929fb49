/* nlprun summarize|translate|classify|qa|text2text: one task on stdin text (the whole of
 * stdin is one document), without the daemon. Single-threaded.
 *
 * The output is deterministic (same model, config, options and text: same bytes), since
 * the daemon's end-to-end test compares the daemon's results with it. It is what nlpc
 * prints for the same result from nlpd, printed by the same functions (common/cm_json.c,
 * docs/clients.md; tests/scripts/shapes_nlpc_nlprun.sh compares them):
 *   text       summarize/translate/text2text: the text; classify: `label<TAB>prob` lines,
 *              best first, 4 decimals; qa: the answer. With --hypotheses (or
 *              --num-return > 1) every hypothesis as `score<TAB>text`, best first.
 *   --json     one JSON object, nlpc --json's without its id and timings: status, then
 *              error, or text (summarize/translate/text2text) | answer (qa) | labels
 *              [{label, score}] (classify), score (not classify), hypotheses [{text,
 *              score}] (when asked), input_tokens, output_tokens, truncated.
 * Exit: 0 ok, 1 the task failed (the reason on stderr; with --json also the object,
 * {"status", "error"}, on stdout), 2 usage. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/libnlpclient/nlpclient.h"
#include "clients/nlprun/nlprun.h"
#include "common/common.h"
#include "engine/engine.h"
#include "engine/tok.h"
#include "tasks/task.h"

#define DEFAULT_CONFIG "conf/tasks.conf"

typedef struct task_cli {
    const char *model_dir;
    const char *config;
    const char *from, *to;
    char *labels_arg; /* owned copy, cut into labels[] */
    const char **labels;
    int n_labels;
    int multi_label;
    const char *question;
    int json;
    int threads;
    int weights; /* eng_weights (--weights) */
    task_decode_opts opts;
    /* Decoding options as given, checked once the config's limits are known (the
     * options table, tasks/opts.c: the daemon's and the tasks file's ranges). */
    double opt_val[TASK_OPT_N];
    unsigned opt_set; /* bit per task_opt_id */
} task_cli;

/* The task's own options only (classify generates nothing: no decoding options); the
 * parser still takes every option, as nlpc ignores another task's. */
static void task_usage(FILE *f, const char *task)
{
    int generates = strcmp(task, "classify") != 0;
    fprintf(f, "usage: nlprun %s --model DIR [options] < TEXT\n", task);
    if (!strcmp(task, "summarize")) fputs("Summarizes the text on stdin (one document).\n", f);
    else if (!strcmp(task, "translate"))
        fputs("Translates the text on stdin.\n"
              "  --to LANG                target language: ISO code or English name (required)\n"
              "  --from LANG              source language (default: the config's)\n",
              f);
    else if (!strcmp(task, "classify"))
        fputs("Classifies the text on stdin: one 'label<TAB>probability' line per label.\n"
              "  --labels a,b,c           candidate labels (required)\n"
              "  --multi-label            independent per-label probabilities\n",
              f);
    else if (!strcmp(task, "qa"))
        fputs("Answers a question from the text on stdin (the context).\n"
              "  --question Q             the question (required)\n",
              f);
    else fputs("Generates from the text on stdin, the prompt as is.\n", f);
    if (generates)
        fputs("  --max-new-tokens N --min-new-tokens N --num-beams N --num-return N\n"
              "  --length-penalty F --no-repeat-ngram-size N --repetition-penalty F\n"
              "  --temperature F --top-k N --top-p F --seed N   (any of these four: sampling)\n"
              "  --hypotheses             every hypothesis with its score\n",
              f);
    fputs("  --config FILE            tasks settings (default: " DEFAULT_CONFIG
          " if present, else built-in)\n"
          "  --threads N              threads, 0..256 (default 1; 0 = up to the CPUs\n"
          "                           nlprun may use, fewer while they are busy)\n"
          "  --weights TYPE           weights held as auto (the checkpoint's), f32, bf16,\n"
          "                           f16 or int8 (docs/models.md)\n"
          "  --json                   one JSON object with the whole result\n",
          f);
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    long long v;
    if (cm_parse_ll(s, lo, hi, &v) < 0) return 1;
    *out = (int)v;
    return 0;
}

/* Cuts "a, b,c" into trimmed labels pointing into cli->labels_arg. */
static int split_labels(task_cli *cli, const char *arg)
{
    free(cli->labels_arg);
    free(cli->labels);
    cli->labels_arg = strdup(arg);
    cli->labels = calloc(strlen(arg) + 1, sizeof *cli->labels);
    cli->n_labels = 0;
    if (!cli->labels_arg || !cli->labels) return -1;
    char *save = NULL;
    for (char *t = strtok_r(cli->labels_arg, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        size_t n = strlen(t);
        while (n && t[n - 1] == ' ') t[--n] = 0;
        if (n) cli->labels[cli->n_labels++] = t;
    }
    return 0;
}

enum {
    O_MODEL = 256,
    O_CONFIG,
    O_FROM,
    O_TO,
    O_LABELS,
    O_MULTI,
    O_QUESTION,
    O_JSON,
    O_THREADS,
    O_WEIGHTS,
    O_MAXNEW,
    O_MINNEW,
    O_BEAMS,
    O_NRET,
    O_LP,
    O_NOREP,
    O_REPP,
    O_TEMP,
    O_TOPK,
    O_TOPP,
    O_SEED,
    O_HYPS,
    O_HELP,
};

static int parse_args(int argc, char **argv, task_cli *cli)
{
    static const struct option lo[] = {
        { "model", required_argument, 0, O_MODEL },
        { "config", required_argument, 0, O_CONFIG },
        { "from", required_argument, 0, O_FROM },
        { "to", required_argument, 0, O_TO },
        { "labels", required_argument, 0, O_LABELS },
        { "multi-label", no_argument, 0, O_MULTI },
        { "question", required_argument, 0, O_QUESTION },
        { "json", no_argument, 0, O_JSON },
        { "threads", required_argument, 0, O_THREADS },
        { "weights", required_argument, 0, O_WEIGHTS },
        { "max-new-tokens", required_argument, 0, O_MAXNEW },
        { "min-new-tokens", required_argument, 0, O_MINNEW },
        { "num-beams", required_argument, 0, O_BEAMS },
        { "num-return", required_argument, 0, O_NRET },
        { "length-penalty", required_argument, 0, O_LP },
        { "no-repeat-ngram-size", required_argument, 0, O_NOREP },
        { "repetition-penalty", required_argument, 0, O_REPP },
        { "temperature", required_argument, 0, O_TEMP },
        { "top-k", required_argument, 0, O_TOPK },
        { "top-p", required_argument, 0, O_TOPP },
        { "seed", required_argument, 0, O_SEED },
        { "hypotheses", no_argument, 0, O_HYPS },
        { "help", no_argument, 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    task_decode_opts *o = &cli->opts;
    int c, li = 0, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", lo, &li)) != -1) {
        switch (c) {
        case O_MODEL: cli->model_dir = optarg; break;
        case O_CONFIG: cli->config = optarg; break;
        case O_FROM: cli->from = optarg; break;
        case O_TO: cli->to = optarg; break;
        case O_LABELS:
            if (split_labels(cli, optarg) < 0) return -1;
            break;
        case O_MULTI: cli->multi_label = 1; break;
        case O_QUESTION: cli->question = optarg; break;
        case O_JSON: cli->json = 1; break;
        case O_HYPS: o->return_hypotheses = 1; break;
        case O_THREADS: bad |= parse_int(optarg, 0, 256, &cli->threads); break;
        case O_WEIGHTS:
            if ((cli->weights = eng_weights_parse(optarg)) < 0) {
                fprintf(stderr, "nlprun: --weights needs auto, f32, bf16, f16 or int8\n");
                return -1;
            }
            break;
        case O_MAXNEW:
        case O_MINNEW:
        case O_BEAMS:
        case O_NRET:
        case O_NOREP:
        case O_TOPK:
        case O_LP:
        case O_REPP:
        case O_TEMP:
        case O_TOPP: {
            /* a number now; its range once the config is read (check_opts) */
            int id = c == O_NRET ? TASK_OPT_NUM_RETURN_SEQUENCES : task_opt_find(lo[li].name);
            double v = 0;
            bad |= id < 0 || cm_parse_double(optarg, &v) < 0;
            if (!bad) cli->opt_val[id] = v, cli->opt_set |= 1u << id;
            if (!bad && c == O_NRET && v > 1) o->return_hypotheses = 1;
            break;
        }
        case O_SEED: {
            long long v;
            if (cm_parse_ll(optarg, 0, LLONG_MAX, &v) < 0) bad = 1;
            else o->seed = v;
            break;
        }
        case O_HELP: return 1;
        default:
            if (c == ':' || (optopt && optopt >= O_MODEL)) /* a known option's value missing */
                fprintf(stderr, "nlprun %s: option '%s' needs a value\n", argv[0],
                        argv[optind - 1]);
            else fprintf(stderr, "nlprun %s: unknown option '%s'\n", argv[0], argv[optind - 1]);
            return -1;
        }
        if (bad && c == O_THREADS)
            fprintf(stderr, "nlprun %s: --threads needs an integer in [0, 256], not '%s'\n",
                    argv[0], optarg);
        else if (bad && c == O_SEED)
            fprintf(stderr, "nlprun %s: --seed needs an integer in [0, %lld], not '%s'\n", argv[0],
                    LLONG_MAX, optarg);
        else if (bad)
            fprintf(stderr, "nlprun %s: --%s needs a number, not '%s'\n", argv[0], lo[li].name,
                    optarg);
        if (bad) return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "nlprun %s: unexpected argument '%s' (the text goes on stdin)\n", argv[0],
                argv[optind]);
        return -1;
    }
    if (!cli->model_dir) {
        fprintf(stderr, "nlprun %s: --model DIR is required\n", argv[0]);
        return -1;
    }
    return 0;
}

/* The options given, checked against the options table under the config's limits
 * (limits.max_new_tokens, tasks.max_beams), into cli->opts: the message a request with
 * the same value gets from nlpd. 0, or -1 after saying why. */
static int check_opts(task_cli *cli, const task_conf *conf, const char *task)
{
    task_opt_limits lim = task_conf_opt_limits(conf);
    char err[256];
    for (int id = 0; id < TASK_OPT_N; id++)
        if ((cli->opt_set & (1u << id)) &&
            task_decode_opts_set(&cli->opts, id, cli->opt_val[id], "", &lim, err, sizeof err)) {
            fprintf(stderr, "nlprun %s: %s\n", task, err);
            return -1;
        }
    return 0;
}

/* Runs the doc's jobs: scoring jobs one by one, generate jobs batched up to the ctx's
 * decoder rows (a request's result does not depend on its batch). A batch that fails as
 * a whole marks each of its jobs. */
static void flush(eng_ctx *ctx, task_doc *doc, eng_gen_req *reqs, const int *idx, int *nb,
                  int *rows)
{
    if (!*nb) return;
    int rc = eng_generate(ctx, reqs, *nb);
    for (int k = 0; k < *nb; k++) doc->jobs[idx[k]].gen.status = rc < 0 ? rc : reqs[k].status;
    *nb = *rows = 0;
}

static void run_jobs(eng_ctx *ctx, const eng_ctx_params *cp, task_doc *doc)
{
    eng_gen_req *reqs = calloc((size_t)doc->n_jobs + 1, sizeof *reqs);
    int *idx = calloc((size_t)doc->n_jobs + 1, sizeof *idx);
    int nb = 0, rows = 0;
    for (int i = 0; i < doc->n_jobs; i++) {
        task_job *j = &doc->jobs[i];
        if (j->kind == TASK_JOB_SCORE) {
            int rc = eng_score(ctx, &j->score, 1);
            if (rc < 0) j->score.status = rc;
            continue;
        }
        if (j->kind == TASK_JOB_CLASSIFY) {
            /* one pair per call: the daemon batches them, and a result does not depend
             * on its batch */
            int rc = eng_classify(ctx, &j->cls, 1);
            if (rc < 0) j->cls.status = rc;
            continue;
        }
        if (!reqs || !idx) {
            j->gen.status = ENG_ENOMEM;
            continue;
        }
        int r = j->params.num_beams > 0 ? j->params.num_beams : 1;
        if (rows + r > cp->max_rows) flush(ctx, doc, reqs, idx, &nb, &rows);
        idx[nb] = i;
        reqs[nb++] = j->gen;
        rows += r;
    }
    if (reqs && idx) flush(ctx, doc, reqs, idx, &nb, &rows);
    free(reqs);
    free(idx);
}

/* The status code nlpd answers a document's task status with (dmn_code_from_task). */
static int result_code(int st)
{
    switch (st) {
    case TASK_OK: return NLPC_OK;
    case TASK_EINVAL: return NLPC_INVALID_ARGUMENT;
    case TASK_ETOOLONG: return NLPC_INPUT_TOO_LONG;
    case TASK_EUNSUPPORTED: return NLPC_UNSUPPORTED;
    default: return NLPC_INTERNAL;
    }
}

/* Prints r as nlpc prints the same result from nlpd: r as the clients' nlpc_result (what
 * nlpd's reply decodes to: qa's text as the answer, every string "" when absent), then
 * common/cm_json.c's printers, readable or --json (nlpc's object less its request id
 * and timings, which nlprun has not). */
static void print_result(task_kind kind, const task_result *r, int json)
{
    nlpc_task task = nlpc_task_from_name(task_kind_name(kind));
    nlpc_label *labels = calloc((size_t)r->n_labels + 1, sizeof *labels);
    nlpc_hyp *hyps = calloc((size_t)r->n_hyps + 1, sizeof *hyps);
    if (!labels || !hyps) {
        fprintf(stderr, "nlprun: out of memory\n");
        free(labels);
        free(hyps);
        return;
    }
    const char *text = r->text ? r->text : "";
    nlpc_result c = {
        .code = result_code(r->status),
        .message = r->message[0] ? r->message : "task failed",
        .text = kind == TASK_QA ? "" : text,
        .answer = kind == TASK_QA ? text : "",
        .score = r->score,
        .n_labels = r->n_labels,
        .labels = labels,
        .n_hyps = r->n_hyps,
        .hyps = hyps,
        .input_tokens = (unsigned)(r->input_tokens > 0 ? r->input_tokens : 0),
        .output_tokens = (unsigned)(r->output_tokens > 0 ? r->output_tokens : 0),
        .truncated = r->truncated != 0,
    };
    for (int i = 0; i < r->n_labels; i++)
        labels[i] = (nlpc_label){ r->labels[i].label, r->labels[i].score };
    for (int i = 0; i < r->n_hyps; i++) hyps[i] = (nlpc_hyp){ r->hyps[i].text, r->hyps[i].score };
    if (json) {
        cJSON *o = cm_json_result(NULL, task, &c);
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        if (s) printf("%s\n", s);
        else fprintf(stderr, "nlprun: out of memory\n");
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        cm_result_print(stdout, task, &c);
    }
    free(labels);
    free(hyps);
}

int nlprun_task(int argc, char **argv)
{
    task_kind kind = task_kind_from_name(argv[0]);
    task_cli cli = { 0 };
    task_conf *conf = NULL;
    tok_model *tok = NULL;
    eng_model *model = NULL;
    eng_ctx *ctx = NULL;
    char *text = NULL;
    char err[512];
    int ret = 1;

    if (kind == TASK_NONE) {
        fprintf(stderr, "nlprun: unknown task '%s'\n", argv[0]);
        return 2;
    }
    task_decode_opts_unset(&cli.opts);
    cli.threads = 1;
    int pr = parse_args(argc, argv, &cli);
    if (pr != 0) {
        if (pr > 0) task_usage(stdout, argv[0]);
        else fprintf(stderr, "(nlprun %s --help lists the options)\n", argv[0]);
        ret = pr > 0 ? 0 : 2;
        goto out;
    }

    const char *cpath = cli.config;
    if (!cpath && access(DEFAULT_CONFIG, R_OK) == 0) cpath = DEFAULT_CONFIG;
    conf = cpath ? task_conf_load(cpath, err, sizeof err) : task_conf_default();
    if (!conf) {
        fprintf(stderr, "nlprun: %s\n", cpath ? err : "out of memory");
        goto out;
    }
    if (check_opts(&cli, conf, argv[0]) < 0) {
        ret = 2;
        goto out;
    }
    size_t text_len = 0;
    if (cm_read_stream(stdin, SIZE_MAX, &text, &text_len) < 0) {
        fprintf(stderr, "nlprun: cannot read stdin\n");
        goto out;
    }

    tok = tok_open_dir(cli.model_dir, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "nlprun: %s\n", err);
        goto out;
    }
    /* The model first: what a task does depends on its family (docs/models.md). */
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = cli.threads;
    mp.weights = (eng_weights)cli.weights;
    eng_ctx_params cp = task_conf_ctx_params(conf);
    model = eng_model_load(cli.model_dir, &mp, err, sizeof err);
    if (model && tok_check_vocab(tok, eng_model_config(model)->vocab_size, err, sizeof err) < 0) {
        fprintf(stderr, "nlprun: %s: %s\n", cli.model_dir, err);
        goto out;
    }
    if (model) ctx = eng_ctx_new(model, &cp, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "nlprun: %s\n", err);
        goto out;
    }
    task_env env = { .tok = tok,
                     .conf = conf,
                     .max_input_tokens = task_conf_max_input_tokens(conf) };
    task_env_set_model(&env, cli.model_dir, model);
    task_input in = { .kind = kind,
                      .text = text,
                      .text_len = text_len,
                      .source_lang = cli.from,
                      .target_lang = cli.to,
                      .labels = cli.labels,
                      .n_labels = cli.n_labels,
                      .multi_label = cli.multi_label,
                      .question = cli.question,
                      .opts = cli.opts };
    task_doc doc;
    task_result res = { 0 };
    int rc = task_prepare(&env, &in, &doc, err, sizeof err);
    if (rc < 0) {
        res.status = rc;
        snprintf(res.message, sizeof res.message, "%.*s", (int)sizeof res.message - 1, err);
    } else {
        run_jobs(ctx, &cp, &doc);
        rc = task_finish(&env, &in, &doc, &res);
    }
    if (cli.json || rc >= 0) print_result(kind, &res, cli.json);
    if (rc < 0) fprintf(stderr, "nlprun: %s\n", res.message);
    else ret = 0;
    task_result_clear(&res);
out:
    fflush(stdout);
    eng_ctx_free(&ctx);
    eng_model_free(&model);
    tok_free(&tok);
    task_conf_free(&conf);
    free(text);
    free(cli.labels_arg);
    free(cli.labels);
    return ret;
}
