/* nlpc: command-line client for nlpd. Parses options, runs one request (or batch mode)
 * and prints the result. Single-threaded. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/nlpc/nlpc_cli.h"
#include "common/common.h"

static const char usage_text[] =
    "usage: nlpc [--connect ENDPOINT] TASK [options] [TEXT|-]\n"
    "       nlpc batch --task TASK [task options] [-o out.jsonl [--resume]] < in.jsonl\n"
    "       nlpc --version | --help\n"
    "\n"
    "Sends TEXT (or stdin when TEXT is '-' or absent) to nlpd and prints the result.\n"
    "\n"
    "tasks:\n"
    "  summarize                     summary of the text\n"
    "  translate --to LANG [--from LANG]   LANG: ISO code (de) or English name (German)\n"
    "  classify --labels a,b,c [--multi-label]   one 'label<TAB>probability' line per label, best "
    "first\n"
    "  qa --question Q               answer from the text (the context)\n"
    "  text2text                     the text is the prompt, as is\n"
    "  health                        is the daemon up (exit 0) and which model it serves\n"
    "  models                        each model served: family, weights, tasks, languages,\n"
    "                                memory, requests served, state\n"
    "  stats                         the daemon's counters\n"
    "  batch --task TASK             JSON lines in, JSON lines out (see below)\n"
    "Options of another task are ignored.\n"
    "\n"
    "connection and request:\n"
    "  --connect ENDPOINT    default $NLPD_ENDPOINT, else " NLPC_DEFAULT_ENDPOINT "\n"
    "  --server-key FILE --key FILE   CurveZMQ: the daemon's public certificate and this\n"
    "                        client's secret one (nlpd --make-keypair writes both kinds)\n"
    "                        (several, comma-separated: requests spread over them)\n"
    "  --timeout MS          how long to wait for a reply (default 30000; batch: per\n"
    "                        request, then the daemon is asked whether it still owes it)\n"
    "  --deadline MS         server-side deadline: work not started by then is dropped\n"
    "  --priority N          -100..100, higher runs first (default 0)\n"
    "  --model NAME          the model, by a name `nlpc models` lists (default: the daemon\n"
    "                        picks by task and language pair)\n"
    "  --max-message-bytes N requests larger than this are refused before they are sent\n"
    "                        (MESSAGE_TOO_LARGE); default 1048576, nlpd's\n"
    "                        limits.max_message_bytes\n"
    "  --json                print one JSON object instead of readable text\n"
    "\n"
    "decoding (unset: the daemon's configured default for the task):\n"
    "  --max-new-tokens N  --min-new-tokens N  --num-beams N  --length-penalty F\n"
    "  --no-repeat-ngram-size N  --repetition-penalty F\n"
    "  --temperature F  --top-k N  --top-p F  --seed N   (any of these four: sampling)\n"
    "  --num-return N        sequences to return (<= num-beams; up to 16 when sampling);\n"
    "                        over 1: each printed as --hypotheses prints them\n"
    "  --hypotheses          print every hypothesis with its score\n"
    "\n"
    "batch mode: each input line is a JSON object {\"id\": any, \"text\": \"...\"} with optional\n"
    "per-line \"labels\" (array or \"a,b\"), \"question\", \"to\", \"from\", \"model\" overriding "
    "the\n"
    "options.\n"
    "Each output line is {\"id\": ..., <result>} or {\"id\": ..., \"error\": ...}, in input "
    "order;\n"
    "blank input lines are skipped. A late reply is waited for while the daemon still owes\n"
    "it; lost requests are sent again; only a daemon that is gone ends the run early.\n"
    "  --window N            lines in flight (default 32)\n"
    "  -o, --output FILE     write the output lines to FILE instead of stdout\n"
    "  --resume              keep FILE's answered lines and skip as many input lines\n"
    "  --retries N           OVERLOADED retries per line, with backoff (default 10)\n"
    "  --reconnect MS        how long an unreachable daemon is waited for (default 10000)\n"
    "  --drain MS            after SIGINT/SIGTERM, wait this long for replies (default 5000)\n"
    "  --progress / --no-progress   progress every second (default: when stderr is a tty)\n"
    "  --queue redis://HOST:PORT|unix:///PATH   through a Redis stream instead (nlpd in queue\n"
    "                        mode, docs/queue.md); --stream S (nlpd:requests), --results R\n"
    "                        (nlpd:results); output as above, in input order\n"
    "\n"
    "exit codes: 0 ok, 1 the server answered with an error (message on stderr, e.g.\n"
    "UNKNOWN_MODEL: no model of that name; batch: some line failed), 2 usage, 3 timeout or\n"
    "connection failure (batch: the daemon is gone, lines not written), 130 / 143 batch\n"
    "stopped by SIGINT / SIGTERM with lines not written (the summary on stderr says how\n"
    "many; --resume continues).\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "nlpc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(nlpc --help for usage)\n");
    return NLPC_EXIT_USAGE;
}

/* A number option's value in [lo, hi], or a usage error that gives the range. */
static int number_arg(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
    int rc = cm_parse_ll(v, lo, hi, out);
    if (rc == 0) return 0;
    fprintf(stderr, "nlpc: %s %s: %s (range %lld..%lld)\n(nlpc --help for usage)\n", opt, v,
            rc == -ERANGE ? "out of range" : "not a whole number", lo, hi);
    return -1;
}

int nlpc_cli_empty_text(nlpc_task task, const char *text, char *msg, size_t len)
{
    for (const char *p = text; *p; p++)
        if (!strchr(" \t\n\r\v\f", *p)) return 0;
    /* the words of tasks/task.c's check, which nlprun and the daemon give for it */
    snprintf(msg, len, "%s: the text is empty",
             task == NLPC_TASK_QA ? "qa: the context" : nlpc_task_name(task));
    return 1;
}

/* Options that take an integer: name, where it goes, range. */
static int *int_opt(nlpc_cli *cli, const char *name, long long *lo, long long *hi)
{
    nlpc_decode_opts *o = &cli->rq.opts;
    *lo = 0;
    *hi = INT_MAX;
    if (!strcmp(name, "--max-new-tokens")) return &o->max_new_tokens;
    if (!strcmp(name, "--min-new-tokens")) return &o->min_new_tokens;
    if (!strcmp(name, "--num-beams")) return &o->num_beams;
    if (!strcmp(name, "--num-return")) return &o->num_return_sequences;
    if (!strcmp(name, "--no-repeat-ngram-size")) return &o->no_repeat_ngram_size;
    if (!strcmp(name, "--top-k")) return &o->top_k;
    if (!strcmp(name, "--timeout")) {
        *lo = 1;
        return &cli->timeout_ms;
    }
    if (!strcmp(name, "--retries")) {
        *hi = 1000;
        return &cli->retries;
    }
    if (!strcmp(name, "--reconnect")) {
        *lo = 1;
        return &cli->reconnect_ms;
    }
    if (!strcmp(name, "--drain")) return &cli->drain_ms;
    if (!strcmp(name, "--window")) {
        *lo = 1;
        *hi = 4096;
        return &cli->window;
    }
    if (!strcmp(name, "--priority")) {
        *lo = -100;
        *hi = 100;
        return &cli->rq.priority;
    }
    return NULL;
}

static float *float_opt(nlpc_cli *cli, const char *name)
{
    nlpc_decode_opts *o = &cli->rq.opts;
    if (!strcmp(name, "--length-penalty")) return &o->length_penalty;
    if (!strcmp(name, "--repetition-penalty")) return &o->repetition_penalty;
    if (!strcmp(name, "--temperature")) return &o->temperature;
    if (!strcmp(name, "--top-p")) return &o->top_p;
    return NULL;
}

nlpc_client *nlpc_cli_client_new(const nlpc_cli *cli, char *err, size_t errlen)
{
    char server[41], pub[41], sec[41];
    if (!cli->server_key && !cli->key) return nlpc_client_new(cli->endpoint, err, errlen);
    if (!cli->server_key || !cli->key) {
        snprintf(err, errlen, "--server-key and --key go together");
        return NULL;
    }
    if (nlpc_cert_read(cli->server_key, server, NULL, err, errlen) < 0 ||
        nlpc_cert_read(cli->key, pub, sec, err, errlen) < 0)
        return NULL;
    if (!sec[0]) {
        snprintf(err, errlen, "%s has no secret-key (give the PREFIX_secret file)", cli->key);
        return NULL;
    }
    nlpc_curve_keys keys = { server, pub, sec };
    nlpc_client *c = nlpc_client_new_curve(cli->endpoint, &keys, err, errlen);
    memset(sec, 0, sizeof sec);
    return c;
}

/* Options that take a value (the flags are matched before). */
static int known_value_opt(const char *a)
{
    static const char *const names[] = {
        "--max-new-tokens",
        "--min-new-tokens",
        "--num-beams",
        "--num-return",
        "--no-repeat-ngram-size",
        "--top-k",
        "--timeout",
        "--window",
        "--priority",
        "--retries",
        "--reconnect",
        "--drain",
        "--length-penalty",
        "--repetition-penalty",
        "--temperature",
        "--top-p",
        "--seed",
        "--deadline",
        "--max-message-bytes",
        "--output",
        "-o",
        "--connect",
        "--server-key",
        "--key",
        "--to",
        "--from",
        "--question",
        "--task",
        "--labels",
        "--queue",
        "--stream",
        "--results",
        "--model",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(a, names[i])) return 1;
    return 0;
}

/* Parses argv into cli. Returns -1 on success, or the exit code to leave with. */
static int parse_args(nlpc_cli *cli, int argc, char **argv, int *is_batch)
{
    const char *task = NULL, *batch_task = NULL;
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || !strcmp(a, "-")) {
            if (!task) task = a;
            else if (!cli->text) cli->text = a;
            else return usage_error("unexpected argument '%s' (quote the text)", a);
            continue;
        }
        if (!strcmp(a, "--")) {
            opts_done = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            /* `nlpc --help | grep -q X` may close the pipe before the text (over stdio's
             * 4 KiB buffer) is written: that is not a failure of --help. */
            signal(SIGPIPE, SIG_IGN);
            fputs(usage_text, stdout);
            return NLPC_EXIT_OK;
        }
        if (!strcmp(a, "--json")) {
            cli->json = 1;
            continue;
        }
        if (!strcmp(a, "--multi-label")) {
            cli->rq.multi_label = 1;
            continue;
        }
        if (!strcmp(a, "--hypotheses")) {
            cli->rq.opts.return_hypotheses = 1;
            continue;
        }
        if (!strcmp(a, "--progress")) {
            cli->progress = 1;
            continue;
        }
        if (!strcmp(a, "--resume")) {
            cli->resume = 1;
            continue;
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            printf("nlpc %s\n", NLPC_VERSION);
            return NLPC_EXIT_OK;
        }
        if (!known_value_opt(a)) return usage_error("unknown option %s", a);
        if (!strcmp(a, "--no-progress")) {
            cli->progress = 0;
            continue;
        }

        /* everything below takes a value */
        if (i + 1 >= argc) return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        long long lo, hi, n;
        int *ip;
        float *fp;
        if ((ip = int_opt(cli, a, &lo, &hi))) {
            if (number_arg(a, v, lo, hi, &n) < 0) return NLPC_EXIT_USAGE;
            *ip = (int)n;
            /* several sequences asked for: every one printed, as nlprun prints them */
            if (ip == &cli->rq.opts.num_return_sequences && n > 1)
                cli->rq.opts.return_hypotheses = 1;
        } else if ((fp = float_opt(cli, a))) {
            if (cm_parse_float(v, fp) < 0) return usage_error("%s needs a finite number", a);
        } else if (!strcmp(a, "--seed")) {
            if (number_arg(a, v, 0, INT64_MAX, &n) < 0) return NLPC_EXIT_USAGE;
            cli->rq.opts.seed = n;
        } else if (!strcmp(a, "--deadline")) {
            if (number_arg(a, v, 0, UINT32_MAX, &n) < 0) return NLPC_EXIT_USAGE;
            cli->rq.deadline_ms = (uint32_t)n;
        } else if (!strcmp(a, "--max-message-bytes")) {
            if (number_arg(a, v, 64, 1LL << 30, &n) < 0) return NLPC_EXIT_USAGE;
            cli->max_message = (long)n;
        } else if (!strcmp(a, "--output") || !strcmp(a, "-o")) {
            cli->output = v;
        } else if (!strcmp(a, "--connect")) {
            cli->endpoint = v;
        } else if (!strcmp(a, "--server-key")) {
            cli->server_key = v;
        } else if (!strcmp(a, "--key")) {
            cli->key = v;
        } else if (!strcmp(a, "--to")) {
            cli->rq.target_lang = v;
        } else if (!strcmp(a, "--from")) {
            cli->rq.source_lang = v;
        } else if (!strcmp(a, "--question")) {
            cli->rq.question = v;
        } else if (!strcmp(a, "--task")) {
            batch_task = v;
        } else if (!strcmp(a, "--labels")) {
            cli->labels_arg = v;
        } else if (!strcmp(a, "--model")) {
            if (!*v) return usage_error("%s needs a model's name (nlpc models lists them)", a);
            cli->model = v;
        } else if (!strcmp(a, "--queue")) {
            cli->queue = v;
        } else if (!strcmp(a, "--stream")) {
            cli->stream = v;
        } else if (!strcmp(a, "--results")) {
            cli->results = v;
        }
    }
    if (!task) {
        fputs(usage_text, stderr);
        return NLPC_EXIT_USAGE;
    }
    if (!strcmp(task, "models")) { /* the health reply, shown as the model's listing */
        cli->models = 1;
        task = "health";
    }
    *is_batch = !strcmp(task, "batch");
    if (*is_batch) {
        if (!batch_task) return usage_error("%s needs --task TASK", "batch");
        if (cli->text) return usage_error("batch reads stdin; unexpected '%s'", cli->text);
        task = batch_task;
    } else if (batch_task) {
        return usage_error("--task is for batch mode (got task '%s')", task);
    }
    cli->rq.task = nlpc_task_from_name(task);
    if (cli->rq.task == NLPC_TASK_NONE || (*is_batch && cli->rq.task >= NLPC_TASK_HEALTH))
        return usage_error("unknown task '%s'", task);
    int t = cli->rq.task;
    if (t == NLPC_TASK_CLASSIFY && cli->labels_arg) {
        /* checked only here: options of other tasks are ignored, not validated */
        cli->labels_buf = strdup(cli->labels_arg);
        if (!cli->labels_buf) return NLPC_EXIT_USAGE;
        int k = cm_split_list(cli->labels_buf, cli->labels, NLPC_MAX_LABELS);
        if (k < 0)
            return usage_error("bad --labels '%s' (comma-separated, none empty, at most 256)",
                               cli->labels_arg);
        cli->rq.labels = cli->labels;
        cli->rq.n_labels = k;
    }
    if (t != NLPC_TASK_TRANSLATE) cli->rq.target_lang = cli->rq.source_lang = NULL;
    if (t != NLPC_TASK_QA) cli->rq.question = NULL;
    if (cli->resume && !cli->output)
        return usage_error("%s needs --output FILE (the output it continues)", "--resume");
    if ((cli->queue || cli->stream || cli->results) && !*is_batch)
        return usage_error("%s is for batch mode", "--queue");
    if ((cli->stream || cli->results) && !cli->queue)
        return usage_error("%s needs --queue URL", cli->stream ? "--stream" : "--results");
    if (cli->queue && cli->resume) return usage_error("%s does not go with --queue", "--resume");
    if ((cli->output || cli->resume) && !*is_batch)
        return usage_error("%s is for batch mode", cli->resume ? "--resume" : "--output");
    if (t == NLPC_TASK_TRANSLATE && !cli->rq.target_lang && !*is_batch)
        return usage_error("%s needs --to LANG", "translate");
    if (t == NLPC_TASK_CLASSIFY && !cli->rq.n_labels && !*is_batch)
        return usage_error("%s needs --labels a,b,c", "classify");
    if (t == NLPC_TASK_QA && !cli->rq.question && !*is_batch)
        return usage_error("%s needs --question Q", "qa");
    if ((t == NLPC_TASK_HEALTH || t == NLPC_TASK_STATS) && cli->text)
        return usage_error("unexpected argument '%s'", cli->text);
    return -1;
}

/* Reads all of stdin; trailing newlines are dropped (what `echo` adds is not text). */
static char *read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    buf[len] = '\0';
    return buf;
}

static void print_list(const char *key, const char *const *v, int n, const char *none)
{
    printf("%-10s", key);
    for (int i = 0; i < n; i++) printf(" %s", v[i]);
    if (n == 0) printf(" %s", none);
    putchar('\n');
}

/* `nlpc models`: a block per model, lines as the one-model listing has them (family,
 * tasks, languages) and what the registry adds. */
static void print_models(const nlpc_response *r)
{
    for (int i = 0; i < r->n_models; i++) {
        const nlpc_model_info *m = &r->models[i];
        if (i) putchar('\n');
        printf("model      %s\npath       %s\nfamily     %s\nweights    %s\n", m->name, m->path,
               m->model_type[0] ? m->model_type : "(not reported)",
               m->weights[0] ? m->weights : "(not reported)");
        print_list("tasks", m->tasks, m->n_tasks, "(none)");
        print_list("languages", m->languages, m->n_languages, "(none listed)");
        printf("memory     %.1f MiB\nrequests   %llu\nstate      %s\n",
               (double)m->resident_bytes / (1024.0 * 1024.0), (unsigned long long)m->requests,
               m->state[0] ? m->state : "(not reported)");
    }
    if (r->loading) printf("\n(loading: a model is not ready yet)\n");
}

static void print_readable(const nlpc_cli *cli, const nlpc_response *r)
{
    if (r->has_health && cli->models && r->n_models) {
        print_models(r);
        return;
    }
    if (r->has_health && cli->models) { /* a daemon of one model, before the registry */
        const nlpc_health *h = &r->health;
        printf("model      %s\nfamily     %s\ntasks     ", h->model,
               h->model_type[0] ? h->model_type : "(not reported)");
        for (int i = 0; i < h->n_tasks; i++) printf(" %s", h->tasks[i]);
        printf("\nlanguages ");
        for (int i = 0; i < h->n_languages; i++) printf(" %s", h->languages[i]);
        if (h->n_languages == 0) printf(" (none listed)");
        putchar('\n');
        return;
    }
    if (r->has_health) {
        printf("%s model=%s version=%s uptime=%.1fs%s%s%s\n", r->health.ok ? "ok" : "NOT OK",
               r->health.model, r->health.version, r->health.uptime_s,
               r->loading ? " (loading)" : "", r->health.shutting_down ? " (shutting down)" : "",
               !r->health.queue.has        ? ""
               : r->health.queue.connected ? " queue=connected"
                                           : " queue=down");
        return;
    }
    if (r->has_stats) {
        const nlpc_stats *s = &r->stats;
        printf("uptime_s         %.1f\n", s->uptime_s);
        printf("requests         %llu\n", (unsigned long long)s->requests);
        printf("documents        %llu\n", (unsigned long long)s->documents);
        printf("in_flight        %u\n", s->in_flight);
        printf("peak_rows        %u\n", s->peak_rows);
        printf("replies_dropped  %llu\n", (unsigned long long)s->replies_dropped);
        printf("queue_depth      %u\n", s->queue_depth);
        printf("batches          %llu (mean size %.2f)\n", (unsigned long long)s->batches,
               s->mean_batch_size);
        printf("tokens_per_s     %.1f\n", s->tokens_per_s);
        printf("latency_ms       p50 %.1f  p90 %.1f  p99 %.1f\n", s->latency_p50_ms,
               s->latency_p90_ms, s->latency_p99_ms);
        printf("input_tokens     %llu\n", (unsigned long long)s->input_tokens);
        printf("output_tokens    %llu\n", (unsigned long long)s->output_tokens);
        for (int i = 0; i < s->n_responses; i++)
            printf("responses        %-18s %llu\n", nlpc_code_name(s->responses[i].code),
                   (unsigned long long)s->responses[i].count);
        if (s->queue.has) /* queue mode: docs/queue.md */
            printf("queue            %s lag %llu pending %llu held %u claims %llu "
                   "dead_letters %llu results %llu lost %llu reconnects %llu\n",
                   s->queue.connected ? "connected" : "down", (unsigned long long)s->queue.lag,
                   (unsigned long long)s->queue.pending, s->queue.held,
                   (unsigned long long)s->queue.claims, (unsigned long long)s->queue.dead_letters,
                   (unsigned long long)s->queue.results, (unsigned long long)s->queue.lost,
                   (unsigned long long)s->queue.reconnects);
        return;
    }
    /* nlprun prints its result with the same function (common/cm_json.c); one not OK
     * prints nothing here: the caller reports it on stderr */
    for (int i = 0; i < r->n_results; i++) cm_result_print(stdout, cli->rq.task, &r->results[i]);
}

static void print_json(const nlpc_cli *cli, const nlpc_response *r)
{
    cJSON *o;
    if (r->n_results == 1) {
        /* one document: its result flattened (as nlprun --json prints it), plus the
         * request's id and timings */
        o = cJSON_CreateObject();
        if (o) {
            cJSON_AddNumberToObject(o, "id", (double)r->id);
            cm_json_result(o, cli->rq.task, &r->results[0]);
            nlpc_json_timings(o, r);
        }
    } else {
        o = nlpc_json_response(cli->rq.task, r);
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
}

static int run_one(nlpc_cli *cli)
{
    char *stdin_text = NULL;
    const char *doc = cli->text;
    if (cli->rq.task < NLPC_TASK_HEALTH) {
        if (!doc || !strcmp(doc, "-")) {
            stdin_text = read_stdin();
            if (!stdin_text) {
                fprintf(stderr, "nlpc: cannot read stdin\n");
                return NLPC_EXIT_USAGE;
            }
            doc = stdin_text;
        }
        cli->rq.docs = &doc;
        cli->rq.n_docs = 1;
        char msg[128];
        if (nlpc_cli_empty_text(cli->rq.task, doc, msg, sizeof msg)) {
            fprintf(stderr, "nlpc: INVALID_ARGUMENT: %s\n", msg);
            free(stdin_text);
            return NLPC_EXIT_SERVER;
        }
    }
    char err[256];
    nlpc_client *c = nlpc_cli_client_new(cli, err, sizeof err);
    if (!c) {
        fprintf(stderr, "nlpc: %s\n", err);
        free(stdin_text);
        return NLPC_EXIT_CONN;
    }
    nlpc_client_set_max_message(c, (size_t)cli->max_message);
    nlpc_response *r = NULL;
    int rc = 0;
    if (cli->rq.task >= NLPC_TASK_HEALTH) {
        /* answered at once when the daemon is there: do not wait --timeout for nobody */
        int probe =
            cli->timeout_ms < NLPC_CONNECT_PROBE_MS ? cli->timeout_ms : NLPC_CONNECT_PROBE_MS;
        rc = nlpc_client_wait_connected(c, probe);
    }
    if (rc == 0) rc = nlpc_call_model(c, &cli->rq, cli->model, cli->timeout_ms, &r);
    int code;
    if (rc == NLPC_ETOOBIG) {
        fprintf(stderr, "nlpc: MESSAGE_TOO_LARGE: %s (--max-message-bytes): not sent\n",
                nlpc_client_error(c));
        code = NLPC_EXIT_SERVER;
    } else if (rc < 0) {
        fprintf(stderr, "nlpc: %s (%s)\n", nlpc_client_error(c), cli->endpoint);
        code = rc == NLPC_EINVAL ? NLPC_EXIT_USAGE : NLPC_EXIT_CONN;
    } else {
        if (cli->json) print_json(cli, r);
        else print_readable(cli, r);
        code = NLPC_EXIT_OK;
        if (r->code != NLPC_OK) {
            fprintf(stderr, "nlpc: %s: %s\n", nlpc_code_name(r->code), r->message);
            code = NLPC_EXIT_SERVER;
        }
        for (int i = 0; i < r->n_results; i++)
            if (r->results[i].code != NLPC_OK) {
                if (r->code == NLPC_OK)
                    fprintf(stderr, "nlpc: %s: %s\n", nlpc_code_name(r->results[i].code),
                            r->results[i].message);
                code = NLPC_EXIT_SERVER;
            }
        if (r->has_health && !r->health.ok) code = NLPC_EXIT_SERVER;
    }
    nlpc_response_free(&r);
    nlpc_client_destroy(&c);
    free(stdin_text);
    return code;
}

int main(int argc, char **argv)
{
    nlpc_cli cli;
    memset(&cli, 0, sizeof cli);
    nlpc_request_init(&cli.rq, NLPC_TASK_NONE);
    const char *env = getenv("NLPD_ENDPOINT");
    cli.endpoint = env && *env ? env : NLPC_DEFAULT_ENDPOINT;
    cli.timeout_ms = NLPC_DEFAULT_TIMEOUT_MS;
    cli.window = 32;
    cli.progress = -1;
    cli.max_message = NLPC_DEFAULT_MAX_MESSAGE;
    cli.retries = 10;
    cli.reconnect_ms = 10000;
    cli.drain_ms = 5000;

    int is_batch = 0;
    int code = parse_args(&cli, argc, argv, &is_batch);
    if (code < 0) code = is_batch ? nlpc_cli_batch(&cli) : run_one(&cli);
    free(cli.labels_buf);
    return code;
}
