/* nlpd: the NLP task daemon. Main thread: parses the command line and the config,
 * then becomes the I/O thread (dmn_server_run), which loads the models. Exit codes: 0 after a
 * clean stop, 1 when the daemon could not start, 2 for a bad command line or config. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_conf.h"
#include "common/common.h"
#include "daemon/dmn_conf.h"
#include "daemon/dmn_curve.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_models.h"
#include "daemon/dmn_server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: nlpd [-c FILE] [--model DIR]... [--weights TYPE] [--bind ENDPOINT]...\n"
            "            [--log-level LEVEL]\n"
            "\n"
            "The nlpd NLP task daemon: answers nlp.v1 protobuf requests (summarize, translate,\n"
            "classify, qa, text2text, health, stats) on a ZeroMQ ROUTER socket, batching the\n"
            "work of all clients onto its models (each with its own batching; a request names\n"
            "one or is routed by task and language pair). See docs/daemon.md.\n"
            "\n"
            "  -c, --config FILE     config file (libconfig); without it: $NLPD_CONF, else\n"
            "                        /etc/nlpd/nlpd.conf, else conf/nlpd.conf of the source\n"
            "                        tree nlpd was built in\n"
            "  -m, --model DIR       model directory (config.json, model.safetensors, its\n"
            "                        tokenizer); repeatable: one model each, named after its\n"
            "                        directory; replaces the config's `model`/`models`\n"
            "      --weights TYPE    auto, f32, bf16, f16 or int8: how the models hold their\n"
            "                        weights unless their models entry says; overrides `weights`\n"
            "  -b, --bind ENDPOINT   tcp://HOST:PORT or ipc://PATH; repeatable; replaces the\n"
            "                        config's `bind` list\n"
            "  -l, --log-level LEVEL error, warn, info or debug; overrides `log_level`\n"
            "      --http HOST:PORT  also serve HTTP/JSON there (docs/http.md); overrides\n"
            "                        http.bind\n"
            "      --queue URL       also take jobs from a Redis stream (redis://HOST:PORT or\n"
            "                        unix:///PATH); overrides queue.redis (docs/queue.md)\n"
            "      --make-keypair PREFIX  write a CurveZMQ key pair (CZMQ certificates):\n"
            "                        PREFIX (public) and PREFIX_secret; then exit\n"
            "      --check-config    print the effective settings and each model's expected\n"
            "                        resident memory, and exit (0: valid)\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            this help\n"
            "\n"
            "Signals: SIGTERM or SIGINT stop taking work (new requests are answered\n"
            "SHUTTING_DOWN), finish and answer everything accepted, then exit 0. SIGHUP\n"
            "re-reads the config's models (added ones load beside the running ones, removed\n"
            "ones finish what they hold, changed ones swap when loaded) and http.tokens_file.\n"
            "Exit codes: 0 clean stop, 1 could not start (model, sockets), 2 bad usage/config.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "model", required_argument, NULL, 'm' },
        { "weights", required_argument, NULL, 'W' },
        { "bind", required_argument, NULL, 'b' },
        { "log-level", required_argument, NULL, 'l' },
        { "http", required_argument, NULL, 'H' },
        { "queue", required_argument, NULL, 'Q' },
        { "check-config", no_argument, NULL, 'C' },
        { "make-keypair", required_argument, NULL, 'K' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *level = NULL, *queue = NULL, *weights = NULL;
    const char *models[DMN_MAX_MODELS];
    int n_models = 0;
    const char *binds[DMN_MAX_BINDS + 1];
    const char *http = NULL;
    int n_binds = 0, check = 0, c;
    char err[1024];
    dmn_server *srv = &dmn_srv;

    while ((c = getopt_long(argc, argv, "c:m:b:l:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'm':
            if (n_models == DMN_MAX_MODELS) {
                fprintf(stderr, "nlpd: at most %d --model directories\n", DMN_MAX_MODELS);
                return 2;
            }
            models[n_models++] = optarg;
            break;
        case 'W': weights = optarg; break;
        case 'b':
            if (n_binds > DMN_MAX_BINDS) {
                fprintf(stderr, "nlpd: at most %d --bind endpoints\n", DMN_MAX_BINDS);
                return 2;
            }
            binds[n_binds++] = optarg;
            break;
        case 'l': level = optarg; break;
        case 'H': http = optarg; break;
        case 'Q': queue = optarg; break;
        case 'C': check = 1; break;
        case 'K':
            if (dmn_curve_make_keypair(optarg, err, sizeof err) < 0) {
                fprintf(stderr, "nlpd: --make-keypair: %s\n", err);
                return 1;
            }
            printf("%s\n%s_secret\n", optarg, optarg);
            return 0;
        case 'V': printf("nlpd %s\n", DMN_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nlpd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    static char conf_path[PATH_MAX];
    if (dmn_conf_find(config, conf_path, sizeof conf_path, err, sizeof err) < 0) {
        fprintf(stderr, "nlpd: %s\n", err);
        return 2;
    }
    config = conf_path;
    dmn_conf_defaults(&srv->conf);
    /* The file is read once: the daemon's settings and the tasks group (its errors are
     * config errors too) are two views of one text, never of two versions of the file. */
    cm_conf cf;
    int bad = cm_conf_load(&cf, config, CM_CONF_MAX_BYTES, err, sizeof err) < 0 ||
              dmn_conf_from(&srv->conf, &cf, config, err, sizeof err) < 0 ||
              !(srv->tasks = task_conf_from(&cf, config, err, sizeof err));
    cm_conf_free(&cf);
    if (bad) {
        fprintf(stderr, "nlpd: config: %s\n", err);
        return 2;
    }
    if (n_models > 0) { /* they replace the config's models, now and on SIGHUP */
        srv->conf.n_models = 0;
        for (int i = 0; i < n_models; i++)
            if (dmn_conf_add_model(&srv->conf, "", models[i], "", 0, err, sizeof err) < 0) {
                fprintf(stderr, "nlpd: --model: %s\n", err);
                return 2;
            }
        memcpy(srv->conf.model_dir, srv->conf.models[0].path, sizeof srv->conf.model_dir);
        srv->cli_models.n_models = srv->conf.n_models;
        memcpy(srv->cli_models.models, srv->conf.models, sizeof srv->cli_models.models);
    }
    if (weights) {
        if (strlen(weights) >= sizeof srv->conf.weights || eng_weights_parse(weights) < 0) {
            fprintf(stderr, "nlpd: --weights: '%s' is not auto, f32, bf16, f16 or int8\n", weights);
            return 2;
        }
        snprintf(srv->conf.weights, sizeof srv->conf.weights, "%s", weights);
        snprintf(srv->cli_weights, sizeof srv->cli_weights, "%s", weights);
    }
    if (n_binds > 0) {
        srv->conf.n_binds = 0;
        for (int i = 0; i < n_binds; i++)
            if (dmn_conf_add_bind(&srv->conf, binds[i], err, sizeof err) < 0) {
                fprintf(stderr, "nlpd: --bind: %s\n", err);
                return 2;
            }
    }
    if (queue) { /* queue mode on Redis Streams (docs/queue.md) */
        if (strlen(queue) >= sizeof srv->conf.queue.redis) {
            fprintf(stderr, "nlpd: --queue: URL too long\n");
            return 2;
        }
        snprintf(srv->conf.queue.redis, sizeof srv->conf.queue.redis, "%s", queue);
    }
    if (http) {
        if (strlen(http) >= sizeof srv->conf.http.bind) {
            fprintf(stderr, "nlpd: --http: address too long\n");
            return 2;
        }
        snprintf(srv->conf.http.bind, sizeof srv->conf.http.bind, "%s", http);
    }
    if (level) {
        int l = dmn_log_level_from_name(level);
        if (l < 0) {
            fprintf(stderr, "nlpd: --log-level: '%s' is not error, warn, info or debug\n", level);
            return 2;
        }
        srv->conf.log_level = l;
    }
    if (dmn_conf_check(&srv->conf, err, sizeof err) < 0) {
        fprintf(stderr, "nlpd: %s\n", err);
        return 2;
    }
    if (check) {
        static char dump[8192];
        dmn_conf_dump(&srv->conf, dump, sizeof dump);
        fputs(dump, stdout);
        task_conf_free(&srv->tasks);
        /* What each model will keep resident, from its checkpoint's tensors. */
        size_t total = 0;
        for (int i = 0; i < srv->conf.n_models; i++) {
            const dmn_model_conf *m = &srv->conf.models[i];
            const char *wn = m->weights[0] ? m->weights : srv->conf.weights;
            size_t b = dmn_model_expected_bytes(m->path, eng_weights_parse(wn), err, sizeof err);
            if (!b) { /* a checkpoint not there yet is no config error */
                printf("model %s: %s, weights %s, expected resident unknown: %s\n", m->name,
                       m->path, wn, err);
                continue;
            }
            total += b;
            printf("model %s: %s, weights %s, expected resident %.1f MiB\n", m->name, m->path, wn,
                   b / 1048576.0);
        }
        printf("models: %d, expected resident %.1f MiB (a checkpoint listed twice with one "
               "weight type counts once when loaded)\n",
               srv->conf.n_models, total / 1048576.0);
        return 0;
    }
    dmn_log_set_level(srv->conf.log_level);
    DMN_LOG(DMN_LOG_INFO, "config %s", config);
    /* Before the model load starts OpenBLAS's threads: they must not take the stop
     * signals, which belong to the I/O thread (dmn_server_run unblocks them there). */
    dmn_block_stop_signals();

    int rc = dmn_server_run(srv);
    task_conf_free(&srv->tasks);
    return rc;
}
