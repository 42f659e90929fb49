/* The decoding options' one table (tasks/opts.c) and the config read once: the table
 * decides every range and its message; a request, the tasks file and nlprun say the same
 * thing about the same bad value; nlpd's daemon settings and tasks come from one read of
 * its file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cm_conf.h"
#include "daemon/dmn_conf.h"
#include "daemon/dmn_req.h"
#include "proto/nlp.pb-c.h"
#include "tasks/task.h"
#include "tests/harness/harness.h"

static char dir[64];

static void rm_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* A file in the test's scratch directory (removed when the test process ends). */
static char *tmp_file(const char *name, const char *body)
{
    static char path[8][128];
    static int n_paths;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/nlp-opts.XXXXXX");
        REQUIRE(mkdtemp(dir));
        atexit(rm_dir);
    }
    char *p = NULL; /* one buffer per name: a path handed out stays what it was */
    for (int i = 0; i < n_paths && !p; i++)
        if (!strcmp(strrchr(path[i], '/') + 1, name)) p = path[i];
    if (!p) {
        REQUIRE(n_paths < 8);
        p = path[n_paths++];
        snprintf(p, sizeof path[0], "%s/%s", dir, name);
    }
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs(body, f);
    fclose(f);
    return p;
}

/* Every row: the bounds and one step past them, with the range text built from the row
 * itself, so a changed row changes what the checks accept and what they say. */
TEST(opts_table_drives_the_checks_and_their_messages)
{
    const task_opt_limits hard = { 0, 0 };
    int rows = 0;
    for (int id = 0; id < TASK_OPT_N; id++) {
        const task_opt_def *d = task_opt(id);
        REQUIRE(d && d->name && d->max > d->min);
        rows++;
        CHECK_MSG(task_opt_find(d->name) == id, "%s", d->name);
        char dashed[64], err[256], want[256], range[64];
        snprintf(dashed, sizeof dashed, "%s", d->name);
        for (char *p = dashed; *p; p++) *p = *p == '_' ? '-' : *p;
        CHECK_MSG(task_opt_find(dashed) == id, "nlprun's spelling %s", dashed);
        task_opt_range(id, NULL, range, sizeof range);
        double step = d->type == TASK_OPT_FLOAT ? (d->max - d->min) / 1024 : 1;
        if (d->type == TASK_OPT_I64) continue; /* past INT64_MAX: not a double's step */
        /* the top: in, one step past it: out */
        CHECK_MSG(task_opt_check(id, d->max, "", &hard, err, sizeof err) == TASK_OK, "%s max",
                  d->name);
        CHECK(task_opt_check(id, d->max + step, "p.", &hard, err, sizeof err) == TASK_EINVAL);
        snprintf(want, sizeof want, "p.%s = ", d->name);
        CHECK_MSG(!strncmp(err, want, strlen(want)) && strstr(err, " is out of range ") &&
                      !strcmp(strstr(err, " is out of range ") + 17, range),
                  "%s: '%s' (range %s)", d->name, err, range);
        /* the bottom: in unless open, and one step below: out */
        CHECK_MSG((task_opt_check(id, d->min, "", &hard, err, sizeof err) == TASK_OK) ==
                      !d->min_open,
                  "%s min", d->name);
        CHECK(task_opt_check(id, d->min - step, "", &hard, err, sizeof err) == TASK_EINVAL);
        CHECK(task_opt_check(id, NAN, "", &hard, err, sizeof err) == TASK_EINVAL);
        if (d->type == TASK_OPT_INT)
            CHECK_MSG(task_opt_check(id, d->min + 0.5, "", &hard, err, sizeof err) == TASK_EINVAL,
                      "%s takes whole numbers", d->name);
        /* the default is a value of the range */
        CHECK_MSG(task_opt_in_range(id, d->def, &hard), "%s default %g", d->name, d->def);
    }
    CHECK(rows == TASK_OPT_N);
    CHECK(task_opt_find("num_beam") < 0 && task_opt_find("") < 0 && task_opt_find(NULL) < 0);

    /* Literal texts: the shape operators and clients read. */
    char err[256];
    task_opt_limits lim = { .max_new_tokens = 64, .max_beams = 8 };
    task_opt_check(TASK_OPT_NUM_BEAMS, 9, "options.", &lim, err, sizeof err);
    CHECK_MSG(!strcmp(err, "options.num_beams = 9 is out of range [1, 8]"), "%s", err);
    task_opt_check(TASK_OPT_MAX_NEW_TOKENS, 65, "", &lim, err, sizeof err);
    CHECK_MSG(!strcmp(err, "max_new_tokens = 65 is out of range [1, 64]"), "%s", err);
    task_opt_check(TASK_OPT_MIN_NEW_TOKENS, 65, "", &lim, err, sizeof err);
    CHECK_MSG(!strcmp(err, "min_new_tokens = 65 is out of range [0, 64]"), "%s", err);
    task_opt_check(TASK_OPT_TOP_P, 0, "", &lim, err, sizeof err);
    CHECK_MSG(!strcmp(err, "top_p = 0 is out of range (0, 1]"), "%s", err);
    /* a cap above the hard maximum does not raise it */
    lim.max_beams = 1000;
    CHECK(task_opt_check(TASK_OPT_NUM_BEAMS, TASK_MAX_BEAMS + 1, "", &lim, err, sizeof err) ==
          TASK_EINVAL);
    /* set: the value lands in its field, a bad one leaves the field alone */
    task_decode_opts o;
    task_decode_opts_unset(&o);
    CHECK(task_decode_opts_set(&o, TASK_OPT_TOP_K, 40, "", &lim, err, sizeof err) == TASK_OK &&
          o.top_k == 40);
    CHECK(task_decode_opts_set(&o, TASK_OPT_TEMPERATURE, 0.5, "", &lim, err, sizeof err) ==
              TASK_OK &&
          fabsf(o.temperature - 0.5f) < 1e-6);
    CHECK(task_decode_opts_set(&o, TASK_OPT_TEMPERATURE, -1, "", &lim, err, sizeof err) ==
              TASK_EINVAL &&
          fabsf(o.temperature - 0.5f) < 1e-6);
    CHECK(task_decode_opts_set(&o, TASK_OPT_DO_SAMPLE, 1, "", &lim, err, sizeof err) ==
          TASK_EINVAL);
}

/* A request's options through the wire decoder; returns its code, the reason in err. */
static int wire(task_opt_id id, double v, const task_conf *conf, char *err, size_t errlen)
{
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    Nlp__V1__Summarize s = NLP__V1__SUMMARIZE__INIT;
    Nlp__V1__DecodingOptions o = NLP__V1__DECODING_OPTIONS__INIT;
    char *docs[] = { "a document" };
    q.has_id = 1, q.id = 1;
    q.task_case = NLP__V1__REQUEST__TASK_SUMMARIZE;
    q.summarize = &s;
    q.n_documents = 1, q.documents = docs;
    q.options = &o;
    switch (id) {
    case TASK_OPT_NUM_BEAMS: o.has_num_beams = 1, o.num_beams = (uint32_t)v; break;
    case TASK_OPT_MAX_NEW_TOKENS: o.has_max_new_tokens = 1, o.max_new_tokens = (uint32_t)v; break;
    case TASK_OPT_NO_REPEAT_NGRAM_SIZE:
        o.has_no_repeat_ngram_size = 1, o.no_repeat_ngram_size = (uint32_t)v;
        break;
    case TASK_OPT_TOP_P: o.has_top_p = 1, o.top_p = (float)v; break;
    case TASK_OPT_TEMPERATURE: o.has_temperature = 1, o.temperature = (float)v; break;
    case TASK_OPT_LENGTH_PENALTY: o.has_length_penalty = 1, o.length_penalty = (float)v; break;
    default: REQUIRE(!"an option this test sends");
    }
    uint8_t buf[1024];
    size_t n = nlp__v1__request__get_packed_size(&q);
    REQUIRE(n <= sizeof buf);
    nlp__v1__request__pack(&q, buf);
    dmn_conf dc;
    dmn_conf_defaults(&dc);
    dc.limits.max_new_tokens = task_conf_max_new_tokens(conf);
    dmn_req *r = NULL;
    uint64_t rid;
    int rc = dmn_req_decode(buf, n, &dc.limits, task_conf_max_beams(conf), &r, &rid, err, errlen);
    dmn_req_free(&r);
    return rc;
}

/* The same bad value through the tasks file, a request and nlprun: one message. The
 * limits come from the file (max_beams 8, max_new_tokens 64), not from literals. */
TEST(opts_wire_config_and_nlprun_say_the_same)
{
    static const struct {
        task_opt_id id;
        const char *key, *flag, *lit;
        double v;
        const char *want;
    } cases[] = {
        { TASK_OPT_NUM_BEAMS, "num_beams", "--num-beams", "99", 99,
          "num_beams = 99 is out of range [1, 8]" },
        { TASK_OPT_NUM_BEAMS, "num_beams", "--num-beams", "0", 0,
          "num_beams = 0 is out of range [1, 8]" },
        { TASK_OPT_TOP_P, "top_p", "--top-p", "1.5", 1.5, "top_p = 1.5 is out of range (0, 1]" },
        { TASK_OPT_TEMPERATURE, "temperature", "--temperature", "0.0", 0,
          "temperature = 0 is out of range (0, 100]" },
        { TASK_OPT_LENGTH_PENALTY, "length_penalty", "--length-penalty", "-12.5", -12.5,
          "length_penalty = -12.5 is out of range [-10, 10]" },
        { TASK_OPT_NO_REPEAT_NGRAM_SIZE, "no_repeat_ngram_size", "--no-repeat-ngram-size", "65", 65,
          "no_repeat_ngram_size = 65 is out of range [0, 64]" },
    };
    const char *base = "limits = { max_new_tokens = 64; };\ntasks = { max_beams = 8; };\n";
    char err[512];
    const char *good = tmp_file("good.conf", base);
    task_conf *conf = task_conf_load(good, err, sizeof err);
    REQUIRE_MSG(conf, "%s", err);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* the table's own text, with no prefix */
        task_opt_limits lim = task_conf_opt_limits(conf);
        char mine[256];
        CHECK(task_opt_check(cases[i].id, cases[i].v, "", &lim, mine, sizeof mine) == TASK_EINVAL);
        CHECK_MSG(!strcmp(mine, cases[i].want), "table: '%s', want '%s'", mine, cases[i].want);

        /* wire */
        CHECK(wire(cases[i].id, cases[i].v, conf, err, sizeof err) == DMN_INVALID_ARGUMENT);
        char want[300];
        snprintf(want, sizeof want, "options.%s", cases[i].want);
        CHECK_MSG(!strcmp(err, want), "wire: '%s', want '%s'", err, want);

        /* the tasks file: the same key under tasks.summarize, on line 3 */
        char body[512];
        snprintf(body, sizeof body,
                 "limits = { max_new_tokens = 64; };\ntasks = { max_beams = 8;\n"
                 "summarize = { %s = %s; }; };\n",
                 cases[i].key, cases[i].lit);
        const char *bad = tmp_file("bad.conf", body);
        task_conf *c = task_conf_load(bad, err, sizeof err);
        CHECK(c == NULL);
        task_conf_free(&c);
        snprintf(want, sizeof want, "%s:3: tasks.summarize.%s", bad, cases[i].want);
        CHECK_MSG(!strcmp(err, want), "config: '%s', want '%s'", err, want);

        /* nlprun, with the good file: it checks before it reads stdin or the model */
        char cmd[1024], out[512] = "";
        snprintf(cmd, sizeof cmd,
                 "%s/nlprun summarize --model %s --config %s %s %s "
                 "</dev/null 2>&1",
                 th_build(), th_data("models/tiny-flan"), good, cases[i].flag, cases[i].lit);
        FILE *p = popen(cmd, "r");
        REQUIRE(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        int st = pclose(p);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "nlprun exit %d: %s", st, out);
        snprintf(want, sizeof want, "nlprun summarize: %s\n", cases[i].want);
        CHECK_MSG(!strcmp(out, want), "nlprun: '%s', want '%s'", out, want);
    }
    /* Within the limits: every way accepts it. */
    CHECK(wire(TASK_OPT_NUM_BEAMS, 8, conf, err, sizeof err) == DMN_OK);
    /* max_new_tokens: a request is held to limits.max_new_tokens; a task's default above
     * it is cut to it when used, so the file is held to the hard maximum only. */
    CHECK(wire(TASK_OPT_MAX_NEW_TOKENS, 65, conf, err, sizeof err) == DMN_INVALID_ARGUMENT);
    CHECK_MSG(!strcmp(err, "options.max_new_tokens = 65 is out of range [1, 64]"), "%s", err);
    task_conf_free(&conf);
}

/* nlpd reads its config once: from a pipe (which can be read only once) the tasks group
 * is still checked. Read twice, the tasks' read found the pipe empty and took the
 * built-in defaults without a word. */
TEST(nlpd_reads_its_config_once)
{
    char cmd[1024], out[1024] = "";
    snprintf(cmd, sizeof cmd,
             "printf 'threads = 1;\\ntasks = {\\n  summarize = { num_beams = 99; };\\n};\\n' | "
             "%s/nlpd --check-config -c /dev/stdin 2>&1",
             th_build());
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit %d: %s", st, out);
    CHECK_MSG(strstr(out, "/dev/stdin:3: tasks.summarize.num_beams = 99 is out of range "
                          "[1, 16]"),
              "%s", out);
    /* and a good one: the daemon's settings from the same read */
    snprintf(cmd, sizeof cmd,
             "printf 'threads = 3;\\ntasks = { max_beams = 4; summarize = { num_beams = 4; "
             "}; };\\n' | %s/nlpd --check-config -c /dev/stdin 2>&1",
             th_build());
    p = popen(cmd, "r");
    REQUIRE(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    st = pclose(p);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d: %s", st, out);
    CHECK_MSG(strstr(out, "threads = 3\n"), "%s", out);
}

/* One read, two readers: what the daemon and the tasks see is the text read, whatever
 * the file holds by the time they parse it. */
TEST(daemon_and_tasks_config_from_one_read)
{
    char err[512];
    const char *path = tmp_file("once.conf", "limits = { max_new_tokens = 64; };\n"
                                             "tasks = { max_beams = 8; };\n");
    cm_conf cf;
    REQUIRE_MSG(cm_conf_load(&cf, path, CM_CONF_MAX_BYTES, err, sizeof err) == 0, "%s", err);
    tmp_file("once.conf", "limits = { max_new_tokens = 32; };\ntasks = { max_beams = 6; };\n");
    dmn_conf dc;
    dmn_conf_defaults(&dc);
    CHECK_MSG(dmn_conf_from(&dc, &cf, path, err, sizeof err) == 0, "%s", err);
    task_conf *tc = task_conf_from(&cf, path, err, sizeof err);
    cm_conf_free(&cf);
    REQUIRE_MSG(tc, "%s", err);
    CHECK_MSG(dc.limits.max_new_tokens == 64 && task_conf_max_new_tokens(tc) == 64,
              "daemon %d, tasks %d", dc.limits.max_new_tokens, task_conf_max_new_tokens(tc));
    CHECK(task_conf_max_beams(tc) == 8 && !strcmp(dc.path, path));
    task_conf_free(&tc);
    /* the file as it is now, read again: the other view (the test's file did change) */
    tc = task_conf_load(path, err, sizeof err);
    REQUIRE_MSG(tc, "%s", err);
    CHECK(task_conf_max_beams(tc) == 6);
    task_conf_free(&tc);
}
