/* Daemon units without sockets: config table, request decoding and validation,
 * response encoding, the work queue and batching rules, stats. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/cm_conf.h"
#include "common/common.h"
#include "daemon/dmn_conf.h"
#include "daemon/dmn_log.h"
#include "daemon/dmn_models.h"
#include "daemon/dmn_req.h"
#include "daemon/dmn_sched.h"
#include "daemon/dmn_server.h"
#include "daemon/dmn_stats.h"
#include "proto/nlp.pb-c.h"
#include "tests/harness/harness.h"

/* ---- helpers ---- */

/* Scratch files of one test process, removed when it exits (th_end calls exit). */
static char tmp_dir[64];
static char tmp_files[16][128];
static int n_tmp_files;

static void remove_tmp(void)
{
    for (int i = 0; i < n_tmp_files; i++) unlink(tmp_files[i]);
    if (tmp_dir[0]) rmdir(tmp_dir);
}

static const char *write_tmp(const char *name, const char *text)
{
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/nlpd-unit.XXXXXX");
        if (!mkdtemp(tmp_dir)) return NULL;
        atexit(remove_tmp);
    }
    char *p = NULL;
    for (int i = 0; i < n_tmp_files && !p; i++)
        if (strcmp(strrchr(tmp_files[i], '/') + 1, name) == 0) p = tmp_files[i];
    if (!p) {
        if (n_tmp_files == 16) return NULL;
        p = tmp_files[n_tmp_files++];
        snprintf(p, sizeof tmp_files[0], "%s/%s", tmp_dir, name);
    }
    FILE *f = fopen(p, "w");
    if (!f) return NULL;
    fputs(text, f);
    fclose(f);
    return p;
}

static dmn_limits test_limits(void)
{
    dmn_conf c;
    dmn_conf_defaults(&c);
    c.limits.max_documents = 4;
    c.limits.max_message_bytes = 4096;
    c.limits.max_new_tokens = 64;
    c.limits.max_labels = 8;
    return c.limits;
}

/* Packs a Request into buf; returns its length. */
static size_t pack_req(const Nlp__V1__Request *r, uint8_t *buf, size_t cap)
{
    size_t n = nlp__v1__request__get_packed_size(r);
    REQUIRE(n <= cap);
    return nlp__v1__request__pack(r, buf);
}

static int decode(const uint8_t *buf, size_t len, dmn_req **out, uint64_t *id, char *err)
{
    dmn_limits lim = test_limits();
    return dmn_req_decode(buf, len, &lim, 16, out, id, err, 256);
}

/* ---- config ---- */

TEST(daemon_conf_defaults)
{
    dmn_conf c;
    char err[256];
    dmn_conf_defaults(&c);
    CHECK(strcmp(c.model_dir, "models/flan-t5-small") == 0);
    CHECK(c.n_binds == 2);
    CHECK(strcmp(c.binds[0], "tcp://127.0.0.1:5555") == 0);
    /* the runtime directory's socket (cm_runtime_dir), not /tmp */
    char ipc[300];
    REQUIRE(cm_default_ipc(ipc, sizeof ipc) == 0);
    CHECK(strcmp(c.binds[1], ipc) == 0);
    CHECK(strcmp(c.binds[1], "ipc:///tmp/nlpd.sock") != 0);
    CHECK(c.limits.max_message_bytes == 1 << 20);
    CHECK(c.limits.queue_size == 1024);
    CHECK(c.batching.max_rows == 32);
    CHECK(c.log_level == DMN_LOG_INFO);
    CHECK(dmn_conf_check(&c, err, sizeof err) == 0);
}

TEST(daemon_conf_file_values)
{
    dmn_conf c;
    char err[256] = "";
    const char *p = write_tmp(
        "a.conf", "model = \"/m\";\nthreads = 3;\nlog_level = \"debug\";\n"
                  "bind = [ \"ipc:///tmp/x.sock\" ];\n"
                  "limits = { max_documents = 7; queue_size = 70; max_input_tokens = 100; };\n"
                  "batching = { max_wait_ms = 0; max_rows = 5; max_batch_tokens = 100; };\n"
                  "pipeline = { pull = \"tcp://127.0.0.1:9\"; push = \"tcp://127.0.0.1:10\"; "
                  "connect = false; };\n"
                  "tasks = { anything = \"belongs to the tasks module\"; };\n");
    REQUIRE(p);
    dmn_conf_defaults(&c);
    REQUIRE_MSG(dmn_conf_load(&c, p, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(c.model_dir, "/m") == 0);
    CHECK(c.threads == 3);
    CHECK(c.log_level == DMN_LOG_DEBUG);
    CHECK(c.n_binds == 1 && strcmp(c.binds[0], "ipc:///tmp/x.sock") == 0);
    CHECK(c.limits.max_documents == 7 && c.limits.queue_size == 70);
    CHECK(c.limits.max_message_bytes == 1 << 20); /* untouched keys keep defaults */
    CHECK(c.batching.max_wait_ms == 0 && c.batching.max_rows == 5);
    CHECK(strcmp(c.pull, "tcp://127.0.0.1:9") == 0 && c.pipeline_connect == 0);
}

static void expect_conf_error(const char *text, const char *needle)
{
    dmn_conf c;
    char err[512] = "";
    const char *p = write_tmp("bad.conf", text);
    REQUIRE(p);
    dmn_conf_defaults(&c);
    CHECK_MSG(dmn_conf_load(&c, p, err, sizeof err) < 0, "accepted: %s", text);
    CHECK_MSG(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    CHECK_MSG(strstr(err, p) != NULL, "error '%s' does not name the file", err);
}

TEST(daemon_conf_errors_name_file_and_line)
{
    expect_conf_error("\n\nlimits = { queue_size = 0; };\n",
                      "bad.conf:3: limits.queue_size = 0 is out of range");
    expect_conf_error("threads = -1;\n", ":1: threads = -1 is out of range [0, 256]");
    expect_conf_error("limitz = { };\n", ":1: unknown setting 'limitz'");
    expect_conf_error("limits = { max_docs = 3; };\n", "unknown setting 'limits.max_docs'");
    expect_conf_error("limits = { max_documents = \"many\"; };\n", "must be an integer");
    expect_conf_error("limits = { max_documents = 1.5; };\n", "must be an integer");
    expect_conf_error("log_level = \"loud\";\n", "expected \"error\"");
    expect_conf_error("model = 3;\n", "model must be a string");
    expect_conf_error("bind = [ \"udp://x\" ];\n", "not tcp://, ipc:// or inproc://");
    expect_conf_error("bind = \"tcp://127.0.0.1:1\";\n", "bind must be a list");
    expect_conf_error("limits = 3;\n", "must be a group");
    expect_conf_error("limits = { max_documents = 10; queue_size = 5; };\n",
                      "must be at least limits.max_documents");
    expect_conf_error("pipeline = { pull = \"tcp://127.0.0.1:9\"; };\n", "both pull and push");
    expect_conf_error("limits = { max_documents = 3 \n", ":2:"); /* syntax error */
    expect_conf_error("@include \"missing.conf\"\n", "include");
}

/* Issue 13 item 7: libconfig wraps an integer literal that does not fit its type
 * (99999999999999999999 reads as -1, 4294968320 as 1024: accepted!). Every integer key
 * is range-checked as written. */
TEST(daemon_conf_integers_as_written)
{
    expect_conf_error("limits = { queue_size = 99999999999999999999; };\n",
                      ":1: limits.queue_size = 99999999999999999999 is out of range [1, 1000000]");
    expect_conf_error("limits = { queue_size = 4294968320; };\n",
                      "limits.queue_size = 4294968320 is out of range");
    expect_conf_error("limits = { queue_size = -99999999999999999999; };\n",
                      "limits.queue_size = -99999999999999999999 is out of range");
    expect_conf_error("limits = { queue_size = 99999999999999999999L; };\n",
                      "limits.queue_size = 99999999999999999999L is out of range");
    expect_conf_error("threads = 0x100000002;\n", "threads = 0x100000002 is out of range");
    expect_conf_error("model = \"queue_size = 5\"; "
                      "limits = { queue_size = 99999999999999999999; };\n",
                      "limits.queue_size = 99999999999999999999 is out of range");
    expect_conf_error("limits = {\n  queue_size =\n    4294968320; };\n",
                      ":2: limits.queue_size = 4294968320 is out of range");
    REQUIRE(write_tmp("ovinc.conf", "batching = { max_rows = 4294967298; };\n"));
    dmn_conf c;
    char err[512] = "";
    dmn_conf_defaults(&c);
    const char *p = write_tmp("bad.conf", "@include \"ovinc.conf\"\n");
    CHECK(dmn_conf_load(&c, p, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "ovinc.conf:1: batching.max_rows = 4294967298 is out of range"), "%s",
              err);

    /* Every integer key: those --check-config prints as numbers (but the boolean). */
    static char dump[8192];
    dmn_conf_defaults(&c);
    dmn_conf_dump(&c, dump, sizeof dump);
    int n_int = 0;
    for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
        char key[96], text[256], want[160];
        int v;
        if (sscanf(line, "%95s = %d", key, &v) != 2 || !strcmp(key, "pipeline.connect")) continue;
        char *dot = strchr(key, '.');
        if (dot) {
            *dot = '\0';
            snprintf(text, sizeof text, "%s = { %s = 18446744073709551617; };\n", key, dot + 1);
            *dot = '.';
        } else {
            snprintf(text, sizeof text, "%s = 18446744073709551617;\n", key);
        }
        snprintf(want, sizeof want, "%s = 18446744073709551617 is out of range", key);
        expect_conf_error(text, want);
        n_int++;
    }
    CHECK_MSG(n_int >= 14, "%d integer keys", n_int);

    /* The tasks module reads the same file: its integers too. */
    p = write_tmp("bad.conf", "tasks = { summarize = { num_beams = 4294967297; }; };\n");
    REQUIRE(p);
    task_conf *tc = task_conf_load(p, err, sizeof err);
    CHECK_MSG(!tc && strstr(err, "tasks.summarize.num_beams = 4294967297 is out of range"), "%s",
              err);
    task_conf_free(&tc);
    p = write_tmp("bad.conf", "tasks = { summarize = { length_penalty = 4294967297; }; };\n");
    tc = task_conf_load(p, err, sizeof err);
    CHECK_MSG(!tc && strstr(err, "length_penalty = 4.29497e+09 is out of range"), "%s", err);
    task_conf_free(&tc);
    p = write_tmp("bad.conf", "limits = { max_new_tokens = 4294967297; };\n");
    tc = task_conf_load(p, err, sizeof err);
    CHECK_MSG(!tc && strstr(err, "limits.max_new_tokens must be an integer in"), "%s", err);
    task_conf_free(&tc);
}

/* Issue 13 item 7: a 10 MB token took libconfig over 20 s. The file and its includes are
 * read first, CM_CONF_MAX_BYTES at most together. */
TEST(daemon_conf_size_is_bounded)
{
    size_t n = CM_CONF_MAX_BYTES + 16;
    char *big = malloc(n + 32);
    REQUIRE(big);
    memcpy(big, "model = \"", 9);
    memset(big + 9, 'm', n);
    memcpy(big + 9 + n, "\";\n", 4);
    /* read no further than the bound: the messages say where reading stopped */
    expect_conf_error(big, "is over 262144 bytes");
    /* an include that takes the total past the bound */
    REQUIRE(write_tmp("biginc.conf", big));
    expect_conf_error("threads = 1;\n@include \"biginc.conf\"\n",
                      ":2: @include \"biginc.conf\": the config files together are over");
    char err[512] = "";
    const char *p = write_tmp("bad.conf", "  @include \"biginc.conf\"\n");
    task_conf *tc = task_conf_load(p, err, sizeof err);
    CHECK_MSG(!tc && strstr(err, "the config files together are over"), "%s", err);
    /* just under the bound: parsed */
    memset(big + 9, 'm', CM_CONF_MAX_BYTES - 64);
    memcpy(big + 9 + CM_CONF_MAX_BYTES - 64, "\";\n", 4);
    dmn_conf c;
    dmn_conf_defaults(&c);
    p = write_tmp("big.conf", big);
    CHECK_MSG(dmn_conf_load(&c, p, err, sizeof err) < 0 && strstr(err, "longer than"), "%s", err);
    free(big);
}

TEST(daemon_conf_missing_file)
{
    dmn_conf c;
    char err[512] = "";
    dmn_conf_defaults(&c);
    CHECK(dmn_conf_load(&c, "/nonexistent/nlpd.conf", err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "/nonexistent/nlpd.conf") != NULL, "%s", err);
}

TEST(daemon_conf_include_is_relative_to_the_file)
{
    dmn_conf c;
    char err[512] = "";
    REQUIRE(write_tmp("inc.conf", "limits = { max_documents = 9; };\n"));
    const char *p = write_tmp("main.conf", "@include \"inc.conf\"\nthreads = 2;\n");
    REQUIRE(p);
    dmn_conf_defaults(&c);
    REQUIRE_MSG(dmn_conf_load(&c, p, err, sizeof err) == 0, "%s", err);
    CHECK(c.limits.max_documents == 9 && c.threads == 2);
}

/* The shipped conf/nlpd.conf parses (with whatever tasks group beside it). */
TEST(daemon_conf_shipped_file_parses)
{
    dmn_conf c;
    char err[512] = "", path[256];
    FILE *in = fopen("conf/nlpd.conf", "r");
    REQUIRE_MSG(in, "conf/nlpd.conf not found (tests run from the repository root)");
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    REQUIRE(write_tmp("tasks.conf", "tasks = { };\n"));
    const char *p = write_tmp("nlpd.conf", text);
    REQUIRE(p);
    snprintf(path, sizeof path, "%s", p);
    dmn_conf_defaults(&c);
    REQUIRE_MSG(dmn_conf_load(&c, path, err, sizeof err) == 0, "%s", err);
    dmn_conf d;
    dmn_conf_defaults(&d);
    /* The file spells out the defaults: loading it changes nothing. */
    CHECK(memcmp(&c.limits, &d.limits, sizeof d.limits) == 0);
    CHECK(memcmp(&c.batching, &d.batching, sizeof d.batching) == 0);
    CHECK(strcmp(c.model_dir, d.model_dir) == 0);
    CHECK(c.n_binds == 2);
}

TEST(daemon_conf_add_bind)
{
    dmn_conf c;
    char err[256];
    dmn_conf_defaults(&c);
    c.n_binds = 0;
    CHECK(dmn_conf_add_bind(&c, "tcp://127.0.0.1:1", err, sizeof err) == 0);
    CHECK(dmn_conf_add_bind(&c, "ftp://x", err, sizeof err) < 0);
    for (int i = 1; i < DMN_MAX_BINDS; i++)
        CHECK(dmn_conf_add_bind(&c, "ipc:///tmp/a", err, sizeof err) == 0);
    CHECK(dmn_conf_add_bind(&c, "ipc:///tmp/b", err, sizeof err) < 0);
    CHECK(c.n_binds == DMN_MAX_BINDS);
}

TEST(daemon_log_levels)
{
    CHECK(dmn_log_level_from_name("error") == DMN_LOG_ERROR);
    CHECK(dmn_log_level_from_name("debug") == DMN_LOG_DEBUG);
    CHECK(dmn_log_level_from_name("verbose") == -1);
    CHECK(dmn_log_level_from_name(NULL) == -1);
    CHECK(strcmp(dmn_log_level_name(DMN_LOG_WARN), "warn") == 0);
}

/* ---- UTF-8 ---- */

TEST(common_utf8_valid)
{
    size_t bad = 99;
    CHECK(cm_utf8_valid("", 0, NULL));
    CHECK(cm_utf8_valid("plain ascii", 11, NULL));
    CHECK(cm_utf8_valid("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, NULL));
    CHECK(!cm_utf8_valid("ab\xff", 3, &bad) && bad == 2);
    CHECK(!cm_utf8_valid("\xc0\xaf", 2, &bad) && bad == 0);  /* overlong '/' */
    CHECK(!cm_utf8_valid("\xe0\x80\xaf", 3, NULL));          /* overlong */
    CHECK(!cm_utf8_valid("\xed\xa0\x80", 3, NULL));          /* surrogate */
    CHECK(!cm_utf8_valid("\xf4\x90\x80\x80", 4, NULL));      /* > U+10FFFF */
    CHECK(!cm_utf8_valid("x\xe2\x82", 3, &bad) && bad == 1); /* truncated */
    CHECK(!cm_utf8_valid("\x80", 1, NULL));                  /* lone continuation */
    CHECK(!cm_utf8_valid("\xc3\x28", 2, NULL));              /* bad continuation */
    CHECK(dmn_utf8_valid("\xc3\xa9", 2, NULL) && !dmn_utf8_valid("\xc3", 1, NULL));
}

/* Text of 1-, 2-, 3- and 4-byte characters, and its character boundaries. */
static const char mixed[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z\xe4\xb8\xad\xc3\xb1";
static int is_boundary(size_t k)
{
    static const size_t b[] = { 0, 1, 3, 6, 10, 11, 14, 16 };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (b[i] == k) return 1;
    return 0;
}

TEST(common_utf8_cut_copy_and_format_at_every_offset)
{
    size_t n = sizeof mixed - 1;
    char out[64];
    for (size_t k = 0; k <= n; k++) {
        /* cut: the longest whole-character prefix of at most k bytes */
        size_t c = cm_utf8_cut(mixed, n, k);
        CHECK_MSG(c <= k && is_boundary(c), "cut at %zu gave %zu", k, c);
        for (size_t j = c + 1; j <= k; j++) CHECK(!is_boundary(j));
        /* copy into k + 1 bytes: a valid prefix, cut where cm_utf8_cut cuts */
        size_t w = cm_utf8_copy(out, k + 1, mixed, n);
        CHECK_MSG(w == c && strlen(out) == w && memcmp(out, mixed, w) == 0,
                  "copy into %zu bytes wrote %zu", k + 1, w);
        /* a text cut short inside a character by someone else: the piece is dropped */
        w = cm_utf8_copy(out, sizeof out, mixed, k);
        CHECK_MSG(w == c && cm_utf8_valid(out, w, NULL), "copy of %zu bytes wrote %zu", k, w);
        /* format: quoted text cut by the buffer stays valid */
        w = cm_fmt(out, k + 1, "%s", mixed);
        CHECK_MSG(w == c && cm_utf8_valid(out, w, NULL), "fmt into %zu bytes wrote %zu", k + 1, w);
        char quoted[96];
        w = cm_fmt(quoted, k + 9, "label '%s' is given twice", mixed);
        CHECK_MSG(cm_utf8_valid(quoted, w, NULL) && w == strlen(quoted) && w <= k + 8,
                  "quoted into %zu bytes: %zu", k + 9, w);
    }
    /* invalid bytes and NUL bytes become U+FFFD */
    CHECK(cm_utf8_copy(out, sizeof out,
                       "a\xff"
                       "b\0c\xc0\xaf",
                       7) == 15);
    CHECK(strcmp(out, "a\xef\xbf\xbd"
                      "b\xef\xbf\xbd"
                      "c\xef\xbf\xbd\xef\xbf\xbd") == 0);
    CHECK(cm_utf8_copy(out, 4, "a\xff", 2) == 1); /* U+FFFD does not fit: stop before */
    CHECK(cm_utf8_copy(out, 0, "abc", 3) == 0);
    /* dst may be an argument */
    snprintf(out, sizeof out, "why");
    cm_fmt(out, sizeof out, "sentence %d: %s", 2, out);
    CHECK(strcmp(out, "sentence 2: why") == 0);
    /* longer than the formatter's stack buffer, in full */
    static char long_in[3000], long_out[4000];
    for (size_t i = 0; i + 3 <= sizeof long_in - 1; i += 3) memcpy(long_in + i, "\xe2\x82\xac", 3);
    CHECK(cm_fmt(long_out, sizeof long_out, "%s", long_in) == strlen(long_in));
}

TEST(common_read_file_and_numbers)
{
    char *text;
    size_t len;
    const char *p = write_tmp("ten.txt", "0123456789");
    REQUIRE(p);
    CHECK(cm_read_file(p, 10, &text, &len) == 0 && len == 10 && strcmp(text, "0123456789") == 0);
    free(text);
    CHECK(cm_read_file(p, 9, &text, &len) == -EFBIG && text == NULL);
    CHECK(cm_read_file("/nonexistent/x", 10, &text, &len) == -ENOENT);
    long long v;
    CHECK(cm_parse_ll("42", 0, 100, &v) == 0 && v == 42);
    CHECK(cm_parse_ll("101", 0, 100, &v) == -ERANGE);
    CHECK(cm_parse_ll("99999999999999999999", 0, 100, &v) == -ERANGE);
    CHECK(cm_parse_ll("4x", 0, 100, &v) == -EINVAL);
    CHECK(cm_parse_ll("", 0, 100, &v) == -EINVAL);
    float f;
    CHECK(cm_parse_float("0.5", &f) == 0 && f == 0.5f);
    CHECK(cm_parse_float("1e39", &f) == -ERANGE);
    CHECK(cm_parse_float("nan", &f) == -ERANGE);
    CHECK(cm_parse_float("1.5.", &f) == -EINVAL);
    double t0 = cm_now();
    CHECK(t0 > 0 && cm_now() >= t0 && cm_now_ms() >= (int64_t)(t0 * 1000) - 1);
}

/* ---- request decoding ---- */

TEST(daemon_decode_valid_requests)
{
    uint8_t buf[4096];
    char err[256];
    dmn_req *r = NULL;
    uint64_t id = 0;
    char *docs[] = { "first document", "second" };
    char *labels[] = { "sports", "politics" };
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    Nlp__V1__Classify cl = NLP__V1__CLASSIFY__INIT;
    Nlp__V1__DecodingOptions o = NLP__V1__DECODING_OPTIONS__INIT;
    q.has_id = 1, q.id = 77;
    q.task_case = NLP__V1__REQUEST__TASK_CLASSIFY;
    q.classify = &cl;
    cl.n_labels = 2, cl.labels = labels;
    cl.has_multi_label = 1, cl.multi_label = 1;
    q.n_documents = 2, q.documents = docs;
    q.has_priority = 1, q.priority = -5;
    q.has_deadline_ms = 1, q.deadline_ms = 1234;
    q.options = &o;
    o.has_num_beams = 1, o.num_beams = 3;
    o.has_seed = 1, o.seed = 0;
    o.has_top_p = 1, o.top_p = 0.5f;
    size_t n = pack_req(&q, buf, sizeof buf);

    REQUIRE_MSG(decode(buf, n, &r, &id, err) == DMN_OK, "%s", err);
    REQUIRE(r);
    CHECK(id == 77 && r->id == 77);
    CHECK(r->kind == DMN_REQ_TASK);
    CHECK(r->in.kind == TASK_CLASSIFY);
    CHECK(r->n_docs == 2 && r->n_left == 2);
    CHECK(strcmp(r->docs[1], "second") == 0 && r->doc_lens[1] == 6);
    CHECK(r->in.n_labels == 2 && strcmp(r->in.labels[1], "politics") == 0);
    CHECK(r->in.multi_label == 1);
    CHECK(r->priority == -5 && r->deadline_ms == 1234);
    CHECK(r->in.opts.num_beams == 3);
    CHECK(r->in.opts.seed == 0); /* set, and 0: not "unset" */
    CHECK(fabsf(r->in.opts.top_p - 0.5f) < 1e-6);
    CHECK(r->in.opts.max_new_tokens < 0); /* not set: the task's default */
    CHECK(isnan(r->in.opts.temperature));
    dmn_req_free(&r);
    CHECK(r == NULL);

    Nlp__V1__Request h = NLP__V1__REQUEST__INIT;
    Nlp__V1__HealthRequest hr = NLP__V1__HEALTH_REQUEST__INIT;
    h.has_id = 1, h.id = 5;
    h.task_case = NLP__V1__REQUEST__TASK_HEALTH;
    h.health = &hr;
    n = pack_req(&h, buf, sizeof buf);
    REQUIRE(decode(buf, n, &r, &id, err) == DMN_OK);
    CHECK(r->kind == DMN_REQ_HEALTH && r->id == 5 && r->n_docs == 0);
    dmn_req_free(&r);
}

/* Builds a summarize request with the given documents and lets `tweak` alter it. */
static int decode_summarize(char **docs, size_t n_docs, uint64_t *id, char *err,
                            void (*tweak)(Nlp__V1__Request *))
{
    static uint8_t buf[65536];
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    Nlp__V1__Summarize s = NLP__V1__SUMMARIZE__INIT;
    q.has_id = 1, q.id = 9;
    q.task_case = NLP__V1__REQUEST__TASK_SUMMARIZE;
    q.summarize = &s;
    q.n_documents = n_docs, q.documents = docs;
    if (tweak) tweak(&q);
    size_t n = pack_req(&q, buf, sizeof buf);
    dmn_req *r = NULL;
    int rc = decode(buf, n, &r, id, err);
    CHECK((rc == DMN_OK) == (r != NULL));
    dmn_req_free(&r);
    return rc;
}

static void no_task(Nlp__V1__Request *q) { q->task_case = NLP__V1__REQUEST__TASK__NOT_SET; }
static void bad_priority(Nlp__V1__Request *q) { q->has_priority = 1, q->priority = 101; }
static Nlp__V1__DecodingOptions opts;
static void with_opts(Nlp__V1__Request *q) { q->options = &opts; }

TEST(daemon_decode_rejects_with_the_documented_code)
{
    char err[256];
    uint64_t id = 0;
    char *one[] = { "text" }, *empty[] = { "text", "" }, *five[] = { "a", "b", "c", "d", "e" };
    char *badutf[] = { "ok", "caf\xc3" };
    static char big[8192];
    memset(big, 'x', sizeof big - 1);
    char *bigdoc[] = { big };

    CHECK(decode_summarize(one, 1, &id, err, NULL) == DMN_OK);
    CHECK(decode_summarize(one, 0, &id, err, NULL) == DMN_INVALID_ARGUMENT);
    CHECK(decode_summarize(empty, 2, &id, err, NULL) == DMN_INVALID_ARGUMENT);
    CHECK_MSG(strstr(err, "document 1 is empty"), "%s", err);
    CHECK(decode_summarize(five, 5, &id, err, NULL) == DMN_TOO_MANY_DOCUMENTS);
    CHECK(decode_summarize(badutf, 2, &id, err, NULL) == DMN_INVALID_ARGUMENT);
    CHECK_MSG(strstr(err, "documents[1]: invalid UTF-8 at byte 3"), "%s", err);
    CHECK(decode_summarize(one, 1, &id, err, no_task) == DMN_UNKNOWN_TASK);
    CHECK(decode_summarize(one, 1, &id, err, bad_priority) == DMN_INVALID_ARGUMENT);
    id = 0;
    CHECK(decode_summarize(bigdoc, 1, &id, err, NULL) == DMN_MESSAGE_TOO_LARGE);
    CHECK_MSG(id == 9, "the id of an oversized request is still read (%llu)",
              (unsigned long long)id);

    nlp__v1__decoding_options__init(&opts);
    opts.has_num_beams = 1, opts.num_beams = 0;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.num_beams = 17;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.num_beams = 4;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_OK);
    /* Only the range here (1..16); its relation to num_beams and sampling is the
     * task's rule (task_gen_params), answered per document. */
    opts.has_num_return_sequences = 1, opts.num_return_sequences = 17;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.num_return_sequences = 0;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.num_return_sequences = 4;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_OK);
    opts.has_max_new_tokens = 1, opts.max_new_tokens = 65; /* limit 64 */
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.max_new_tokens = 64;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_OK);
    opts.has_temperature = 1, opts.temperature = 0;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.temperature = NAN;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.temperature = 0.7f;
    opts.has_top_p = 1, opts.top_p = 1.5f;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.top_p = 0.9f;
    opts.has_repetition_penalty = 1, opts.repetition_penalty = -1;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_INVALID_ARGUMENT);
    opts.repetition_penalty = 1.2f;
    CHECK(decode_summarize(one, 1, &id, err, with_opts) == DMN_OK);
}

TEST(daemon_decode_task_fields)
{
    uint8_t buf[4096];
    char err[256];
    uint64_t id;
    dmn_req *r = NULL;
    char *docs[] = { "context" };
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    q.n_documents = 1, q.documents = docs;

    Nlp__V1__Translate tr = NLP__V1__TRANSLATE__INIT;
    q.task_case = NLP__V1__REQUEST__TASK_TRANSLATE, q.translate = &tr;
    CHECK(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_INVALID_ARGUMENT);
    tr.target_lang = "de";
    REQUIRE(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_OK);
    CHECK(r->in.kind == TASK_TRANSLATE && strcmp(r->in.target_lang, "de") == 0);
    CHECK(r->in.source_lang == NULL);
    dmn_req_free(&r);
    tr.source_lang = "French";
    REQUIRE(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_OK);
    CHECK(strcmp(r->in.source_lang, "French") == 0);
    dmn_req_free(&r);

    Nlp__V1__QuestionAnswer qa = NLP__V1__QUESTION_ANSWER__INIT;
    q.task_case = NLP__V1__REQUEST__TASK_QA, q.qa = &qa;
    CHECK(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_INVALID_ARGUMENT);
    qa.question = "who?";
    REQUIRE(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_OK);
    CHECK(r->in.kind == TASK_QA && strcmp(r->in.question, "who?") == 0);
    dmn_req_free(&r);

    char *labels[9] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };
    Nlp__V1__Classify cl = NLP__V1__CLASSIFY__INIT;
    q.task_case = NLP__V1__REQUEST__TASK_CLASSIFY, q.classify = &cl;
    CHECK(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_INVALID_ARGUMENT);
    cl.labels = labels, cl.n_labels = 9; /* limit 8 */
    CHECK(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_INVALID_ARGUMENT);
    cl.n_labels = 8;
    CHECK(decode(buf, pack_req(&q, buf, sizeof buf), &r, &id, err) == DMN_OK);
    dmn_req_free(&r);
}

/* Documented (docs/daemon.md): two task fields are not an error, the last one wins, as
 * protobuf decoders do for a oneof. */
TEST(daemon_decode_last_task_field_wins)
{
    static const uint8_t sum_then_tr[] = { 0x12, 0x00, 0x1a, 0x04, 0x12, 0x02,
                                           'd',  'e',  0x4a, 0x01, 'x' };
    static const uint8_t tr_then_sum[] = { 0x1a, 0x04, 0x12, 0x02, 'd', 'e',
                                           0x12, 0x00, 0x4a, 0x01, 'x' };
    char err[256];
    uint64_t id;
    dmn_req *r = NULL;
    REQUIRE_MSG(decode(sum_then_tr, sizeof sum_then_tr, &r, &id, err) == DMN_OK, "%s", err);
    CHECK(r->in.kind == TASK_TRANSLATE && strcmp(r->in.target_lang, "de") == 0);
    dmn_req_free(&r);
    REQUIRE_MSG(decode(tr_then_sum, sizeof tr_then_sum, &r, &id, err) == DMN_OK, "%s", err);
    CHECK(r->in.kind == TASK_SUMMARIZE && r->in.target_lang == NULL);
    dmn_req_free(&r);
}

TEST(daemon_decode_garbage)
{
    char err[256];
    uint64_t id = 1;
    dmn_req *r = (dmn_req *)1;
    const uint8_t trunc[] = { 0x08, 0x05, 0x4a, 0x10, 'a', 'b' }; /* string cut short */
    const uint8_t wt[] = { 0x08, 0x06, 0x48, 0x01 };              /* documents as varint */
    const uint8_t bad[] = { 0x07, 0x01, 0x02 };
    CHECK(decode(trunc, sizeof trunc, &r, &id, err) == DMN_MALFORMED);
    CHECK(r == NULL);
    CHECK(id == 5); /* peeked from the leading field */
    CHECK(decode(wt, sizeof wt, &r, &id, err) == DMN_MALFORMED);
    CHECK(id == 6);
    CHECK(decode(bad, sizeof bad, &r, &id, err) == DMN_MALFORMED);
    CHECK(id == 0);
    CHECK(decode((const uint8_t *)"", 0, &r, &id, err) == DMN_UNKNOWN_TASK);
}

/* ---- responses ---- */

TEST(daemon_responses_round_trip)
{
    void *buf;
    size_t len;
    REQUIRE(dmn_resp_error(42, DMN_OVERLOADED, "queue full", &buf, &len) == 0);
    Nlp__V1__Response *p = nlp__v1__response__unpack(NULL, len, buf);
    REQUIRE(p);
    CHECK(p->id == 42 && p->status && p->status->code == NLP__V1__STATUS_CODE__OVERLOADED);
    CHECK(strcmp(p->status->message, "queue full") == 0);
    nlp__v1__response__free_unpacked(p, NULL);
    free(buf);

    dmn_health h = { .ok = 1, .model = "m", .version = "v", .uptime_s = 2.5 };
    REQUIRE(dmn_resp_health(7, &h, &buf, &len) == 0);
    p = nlp__v1__response__unpack(NULL, len, buf);
    REQUIRE(p && p->health);
    CHECK(p->health->ok && strcmp(p->health->model, "m") == 0 && p->health->uptime_s == 2.5);
    nlp__v1__response__free_unpacked(p, NULL);
    free(buf);

    dmn_stats_snap s;
    memset(&s, 0, sizeof s);
    s.requests = 10, s.by_code[DMN_OK] = 6, s.by_code[DMN_MALFORMED] = 4;
    s.queue_depth = 3, s.p99_ms = 12.5, s.in_flight = 2;
    REQUIRE(dmn_resp_stats(8, &s, &buf, &len) == 0);
    p = nlp__v1__response__unpack(NULL, len, buf);
    REQUIRE(p && p->stats);
    CHECK(p->stats->requests == 10 && p->stats->queue_depth == 3);
    CHECK(p->stats->latency_p99_ms == 12.5 && p->stats->in_flight == 2);
    REQUIRE(p->stats->n_responses == 2);
    CHECK(p->stats->responses[0]->code == NLP__V1__STATUS_CODE__OK &&
          p->stats->responses[0]->count == 6);
    CHECK(p->stats->responses[1]->code == NLP__V1__STATUS_CODE__MALFORMED &&
          p->stats->responses[1]->count == 4);
    nlp__v1__response__free_unpacked(p, NULL);
    free(buf);
}

TEST(daemon_task_response_status_and_results)
{
    uint8_t pbuf[1024];
    char err[256];
    uint64_t id;
    dmn_req *r = NULL;
    char *docs[] = { "one", "two" };
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    Nlp__V1__Classify cl = NLP__V1__CLASSIFY__INIT;
    char *labels[] = { "x", "y" };
    q.has_id = 1, q.id = 3;
    q.task_case = NLP__V1__REQUEST__TASK_CLASSIFY, q.classify = &cl;
    cl.labels = labels, cl.n_labels = 2;
    q.n_documents = 2, q.documents = docs;
    REQUIRE(decode(pbuf, pack_req(&q, pbuf, sizeof pbuf), &r, &id, err) == DMN_OK);

    /* Document 0 done with two labels, document 1 past its deadline. */
    r->out[0].has_res = 1;
    r->out[0].res.n_labels = 2;
    r->out[0].res.labels = calloc(2, sizeof *r->out[0].res.labels);
    r->out[0].res.labels[0] = (task_label_score){ strdup("y"), 0.75 };
    r->out[0].res.labels[1] = (task_label_score){ strdup("x"), 0.25 };
    r->out[0].res.input_tokens = 4;
    r->out[1].code = DMN_DEADLINE_EXCEEDED;
    snprintf(r->out[1].message, sizeof r->out[1].message, "too late");
    r->t_recv = 1.0, r->t_start = 1.5, r->t_done = 2.0;

    char msg[320];
    CHECK(dmn_req_status(r, msg, sizeof msg) == DMN_DEADLINE_EXCEEDED);
    CHECK_MSG(strcmp(msg, "document 1: too late") == 0, "%s", msg);

    void *buf;
    size_t len;
    REQUIRE(dmn_resp_task(r, 2.5, &buf, &len) == 0);
    Nlp__V1__Response *p = nlp__v1__response__unpack(NULL, len, buf);
    REQUIRE(p);
    CHECK(p->id == 3);
    CHECK(p->status->code == NLP__V1__STATUS_CODE__DEADLINE_EXCEEDED);
    REQUIRE(p->n_results == 2);
    CHECK(p->results[0]->status->code == NLP__V1__STATUS_CODE__OK);
    REQUIRE(p->results[0]->n_labels == 2);
    CHECK(strcmp(p->results[0]->labels[0]->label, "y") == 0);
    CHECK(p->results[0]->labels[0]->score == 0.75);
    CHECK(p->results[0]->input_tokens == 4);
    CHECK(p->results[1]->status->code == NLP__V1__STATUS_CODE__DEADLINE_EXCEEDED);
    CHECK(fabs(p->timings->queue_ms - 500) < 1e-6);
    CHECK(fabs(p->timings->compute_ms - 500) < 1e-6);
    CHECK(fabs(p->timings->total_ms - 1500) < 1e-6);
    nlp__v1__response__free_unpacked(p, NULL);
    free(buf);
    dmn_req_free(&r);
}

/* Every string of a decoded Response is valid UTF-8 (what strict decoders demand). */
static int status_ok(const Nlp__V1__Status *st)
{
    return !st || !st->message || cm_utf8_valid(st->message, strlen(st->message), NULL);
}

static int str_ok(const char *s) { return !s || cm_utf8_valid(s, strlen(s), NULL); }

static int resp_strings_valid(const Nlp__V1__Response *p)
{
    int ok = status_ok(p->status);
    for (size_t i = 0; i < p->n_results; i++) {
        const Nlp__V1__Result *r = p->results[i];
        ok &= status_ok(r->status) && str_ok(r->text) && str_ok(r->answer);
        for (size_t k = 0; k < r->n_labels; k++) ok &= str_ok(r->labels[k]->label);
        for (size_t k = 0; k < r->n_hypotheses; k++) ok &= str_ok(r->hypotheses[k]->text);
    }
    if (p->health) ok &= str_ok(p->health->model) && str_ok(p->health->version);
    return ok;
}

static Nlp__V1__Response *encode_error(const char *msg)
{
    void *buf;
    size_t len;
    REQUIRE(dmn_resp_error(1, DMN_INVALID_ARGUMENT, msg, &buf, &len) == 0);
    Nlp__V1__Response *p = nlp__v1__response__unpack(NULL, len, buf);
    free(buf);
    REQUIRE(p && p->status && p->status->message);
    return p;
}

/* Issue 13 item 4: messages cut inside a character by a buffer, or quoting invalid
 * input, went out as invalid UTF-8. */
TEST(daemon_responses_carry_only_valid_utf8)
{
    Nlp__V1__Response *p = encode_error("label '\xff\xfe' at \xc0\xaf, cut \xe2\x82");
    CHECK_MSG(resp_strings_valid(p), "message '%s'", p->status->message);
    CHECK(strncmp(p->status->message, "label '", 7) == 0);
    nlp__v1__response__free_unpacked(p, NULL);

    /* A long multi-byte text cut at every offset: what snprintf leaves in a buffer. Over
     * DMN_MAX_MESSAGE it is cut there, at a character boundary. */
    static char text[3 * 400 + 1], msg[sizeof text];
    for (int i = 0; i < 400; i++) memcpy(text + 3 * i, i % 2 ? "\xe2\x82\xac" : "\xe4\xb8\xad", 3);
    for (size_t k = 0; k <= strlen(text); k++) {
        memcpy(msg, text, k);
        msg[k] = '\0';
        p = encode_error(msg);
        size_t got = strlen(p->status->message);
        CHECK_MSG(resp_strings_valid(p), "cut at %zu: invalid UTF-8", k);
        size_t want = (k < DMN_MAX_MESSAGE ? k : DMN_MAX_MESSAGE) / 3 * 3;
        CHECK_MSG(got == want && memcmp(p->status->message, text, got) == 0,
                  "cut at %zu: %zu bytes", k, got);
        nlp__v1__response__free_unpacked(p, NULL);
    }

    /* Every other string a Response carries: text, answer, labels, hypotheses, the
     * per-document and request-level messages, the health strings. */
    uint8_t pbuf[1024];
    char err[256];
    uint64_t id;
    dmn_req *r = NULL;
    char *docs[] = { "one", "two" };
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    Nlp__V1__Summarize su = NLP__V1__SUMMARIZE__INIT;
    q.task_case = NLP__V1__REQUEST__TASK_SUMMARIZE, q.summarize = &su;
    q.n_documents = 2, q.documents = docs;
    REQUIRE(decode(pbuf, pack_req(&q, pbuf, sizeof pbuf), &r, &id, err) == DMN_OK);
    task_result *t = &r->out[0].res;
    r->out[0].has_res = 1;
    t->text = strdup("summary \xff end");
    t->n_labels = 1;
    t->labels = calloc(1, sizeof *t->labels);
    t->labels[0] = (task_label_score){ strdup("lab\xc3"), 0.5 };
    t->n_hyps = 1;
    t->hyps = calloc(1, sizeof *t->hyps);
    t->hyps[0].text = strdup("\xed\xa0\x80 surrogate");
    t->hyps[0].score = -1;
    r->out[1].code = DMN_INTERNAL;
    memset(r->out[1].message, 0, sizeof r->out[1].message);
    for (size_t i = 0; i + 3 < sizeof r->out[1].message; i += 3)
        memcpy(r->out[1].message + i, "\xe2\x82\xac", 3);
    r->out[1].message[sizeof r->out[1].message - 2] = '\0'; /* cut inside a character */
    void *buf;
    size_t len;
    REQUIRE(dmn_resp_task(r, 1.0, &buf, &len) == 0);
    p = nlp__v1__response__unpack(NULL, len, buf);
    free(buf);
    REQUIRE(p && p->n_results == 2);
    CHECK(resp_strings_valid(p));
    CHECK(strcmp(p->results[0]->text, "summary \xef\xbf\xbd end") == 0);
    CHECK(strncmp(p->status->message, "document 1: \xe2\x82\xac", 15) == 0);
    nlp__v1__response__free_unpacked(p, NULL);
    dmn_req_free(&r);

    dmn_health h = { .ok = 1, .model = "/models/caf\xe9s", .version = "v\xff" };
    REQUIRE(dmn_resp_health(7, &h, &buf, &len) == 0);
    p = nlp__v1__response__unpack(NULL, len, buf);
    free(buf);
    REQUIRE(p && p->health);
    CHECK(resp_strings_valid(p));
    CHECK(strcmp(p->health->model, "/models/caf\xef\xbf\xbds") == 0);
    nlp__v1__response__free_unpacked(p, NULL);
}

/* Builds a request whose strings may hold the marker "a#c"; packs it, puts `bad` in place
 * of each '#' on the wire (protobuf-c packs C strings: a NUL cannot be set any other
 * way) and decodes it. */
static int decode_with_byte(Nlp__V1__Request *q, char bad, char *err)
{
    static uint8_t buf[4096];
    size_t n = pack_req(q, buf, sizeof buf);
    for (size_t i = 0; i + 3 <= n; i++)
        if (!memcmp(buf + i, "a#c", 3)) buf[i + 1] = (uint8_t)bad;
    dmn_req *r = NULL;
    uint64_t id;
    int rc = decode(buf, n, &r, &id, err);
    dmn_req_free(&r);
    return rc;
}

/* Issue 13 item 5: a NUL byte inside a string silently cut it short. Each string field
 * of the Request, with a NUL and with an invalid byte, is rejected by name. */
TEST(daemon_decode_rejects_nul_and_bad_utf8_in_every_string_field)
{
    static const struct {
        int task;
        const char *field; /* as the error names it */
    } cases[] = {
        { NLP__V1__REQUEST__TASK_SUMMARIZE, "documents[1]" },
        { NLP__V1__REQUEST__TASK_CLASSIFY, "classify.labels[1]" },
        { NLP__V1__REQUEST__TASK_QA, "qa.question" },
        { NLP__V1__REQUEST__TASK_TRANSLATE, "translate.source_lang" },
        { NLP__V1__REQUEST__TASK_TRANSLATE, "translate.target_lang" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *field = cases[c].field;
        char *docs[] = { "fine", strstr(field, "documents") ? "a#c" : "text" };
        char *labels[] = { "x", strstr(field, "labels") ? "a#c" : "y" };
        Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
        Nlp__V1__Summarize su = NLP__V1__SUMMARIZE__INIT;
        Nlp__V1__Classify cl = NLP__V1__CLASSIFY__INIT;
        Nlp__V1__QuestionAnswer qa = NLP__V1__QUESTION_ANSWER__INIT;
        Nlp__V1__Translate tr = NLP__V1__TRANSLATE__INIT;
        q.n_documents = 2, q.documents = docs;
        q.task_case = (Nlp__V1__Request__TaskCase)cases[c].task;
        switch (cases[c].task) { /* one member of the oneof's union */
        case NLP__V1__REQUEST__TASK_SUMMARIZE: q.summarize = &su; break;
        case NLP__V1__REQUEST__TASK_CLASSIFY: q.classify = &cl; break;
        case NLP__V1__REQUEST__TASK_QA: q.qa = &qa; break;
        default: q.translate = &tr; break;
        }
        cl.n_labels = 2, cl.labels = labels;
        qa.question = strstr(field, "question") ? "a#c" : "who?";
        tr.source_lang = strstr(field, "source") ? "a#c" : "en";
        tr.target_lang = strstr(field, "target") ? "a#c" : "de";
        char err[256] = "", want[96];
        /* the marker itself is fine */
        CHECK_MSG(decode_with_byte(&q, '#', err) == DMN_OK, "%s: %s", field, err);
        snprintf(want, sizeof want, "%s: a NUL byte at byte 1", field);
        CHECK_MSG(decode_with_byte(&q, '\0', err) == DMN_INVALID_ARGUMENT && strstr(err, want),
                  "%s with a NUL: '%s'", field, err);
        snprintf(want, sizeof want, "%s: invalid UTF-8 at byte 1", field);
        CHECK_MSG(decode_with_byte(&q, '\xff', err) == DMN_INVALID_ARGUMENT && strstr(err, want),
                  "%s with 0xff: '%s'", field, err);
    }
}

/* ---- queue and batching ---- */

/* A request with n documents of the given byte lengths. */
static dmn_req *fake_req(int n, int priority, size_t len)
{
    dmn_req *r = calloc(1, sizeof *r);
    r->n_docs = n;
    r->n_left = n;
    r->priority = priority;
    r->doc_lens = calloc((size_t)n, sizeof *r->doc_lens);
    r->docs = calloc((size_t)n, sizeof *r->docs);
    r->out = calloc((size_t)n, sizeof *r->out);
    for (int i = 0; i < n; i++) r->doc_lens[i] = len;
    return r;
}

TEST(daemon_queue_priority_then_arrival)
{
    dmn_queue *q = dmn_queue_new(16, 512);
    dmn_req *a = fake_req(2, 0, 8), *b = fake_req(1, 5, 8), *c = fake_req(1, -3, 8),
            *d = fake_req(1, 5, 8);
    dmn_item it[16];
    REQUIRE(q);
    CHECK(dmn_queue_push(q, a, 0) == 0);
    CHECK(dmn_queue_push(q, b, 0) == 0);
    CHECK(dmn_queue_push(q, c, 0) == 0);
    CHECK(dmn_queue_push(q, d, 0) == 0);
    CHECK(dmn_queue_depth(q) == 5);
    int n = dmn_queue_take(q, it, 16, 1 << 20, 0, 16, 0);
    REQUIRE(n == 5);
    CHECK(it[0].req == b && it[1].req == d); /* priority 5, in arrival order */
    CHECK(it[2].req == a && it[2].doc == 0 && it[3].req == a && it[3].doc == 1);
    CHECK(it[4].req == c); /* lowest priority last */
    CHECK(dmn_queue_depth(q) == 0);
    dmn_req_free(&a), dmn_req_free(&b), dmn_req_free(&c), dmn_req_free(&d);
    dmn_queue_free(&q);
    CHECK(q == NULL);
}

TEST(daemon_queue_is_bounded_all_or_nothing)
{
    dmn_queue *q = dmn_queue_new(4, 512);
    dmn_req *a = fake_req(3, 0, 8), *b = fake_req(2, 0, 8), *c = fake_req(1, 0, 8);
    CHECK(dmn_queue_push(q, a, 0) == 0);
    CHECK(dmn_queue_push(q, b, 0) < 0); /* 3 + 2 > 4: none of b is queued */
    CHECK(dmn_queue_depth(q) == 3);
    CHECK(dmn_queue_push(q, c, 0) == 0);
    CHECK(dmn_queue_depth(q) == 4);
    dmn_queue_close(q);
    dmn_req *late = fake_req(1, 0, 8);
    CHECK(dmn_queue_push(q, late, 0) < 0); /* closed: nothing more is taken */
    dmn_req_free(&late);
    dmn_item it[8];
    CHECK(dmn_queue_take(q, it, 8, 1 << 20, 1000, 8, 0) == 4); /* closed: no waiting */
    CHECK(dmn_queue_take(q, it, 8, 1 << 20, 1000, 8, 0) == 0); /* closed and drained */
    dmn_req_free(&a), dmn_req_free(&b), dmn_req_free(&c);
    dmn_queue_free(&q);
}

TEST(daemon_queue_take_respects_batch_bounds)
{
    dmn_queue *q = dmn_queue_new(64, 100);
    /* 10 documents of 200 bytes: estimate 200/4 + 2 = 52 tokens each. One of 4000 bytes:
     * capped at max_input_tokens (100). */
    dmn_req *a = fake_req(10, 0, 200), *b = fake_req(1, 0, 4000);
    dmn_item it[64];
    REQUIRE(dmn_queue_push(q, a, 0) == 0 && dmn_queue_push(q, b, 0) == 0);
    int n = dmn_queue_take(q, it, 3, 1 << 20, 0, 3, 0);
    CHECK(n == 3); /* max_items */
    CHECK(it[0].est_tokens == 52);
    n = dmn_queue_take(q, it, 64, 110, 0, 64, 0);
    CHECK_MSG(n == 2, "token bound: took %d", n); /* 52 + 52 <= 110 < 156 */
    n = dmn_queue_take(q, it, 64, 10, 0, 64, 0);
    CHECK(n == 1); /* always at least one */
    n = dmn_queue_take(q, it, 64, 1 << 20, 0, 64, 0);
    CHECK(n == 5 && it[4].req == b && it[4].est_tokens == 100);
    dmn_req_free(&a), dmn_req_free(&b);
    dmn_queue_free(&q);
}

/* The queue's clock in these tests: moved by hand, so a wait ends when the test says
 * the time has come, never by sleeping and measuring. */
static atomic_llong fake_us;

static double fake_now(void *arg)
{
    (void)arg;
    return (double)atomic_load(&fake_us) * 1e-6;
}

static void fake_set(double s) { atomic_store(&fake_us, (long long)llround(s * 1e6)); }

static dmn_queue *fake_queue(int capacity, double t)
{
    dmn_queue *q = dmn_queue_new(capacity, 512);
    REQUIRE(q);
    fake_set(t);
    dmn_queue_set_clock(q, fake_now, NULL);
    return q;
}

/* Until the queue has gone to sleep n times in all (the taker is waiting). A guard of
 * 10 s against a taker that never sleeps; no time is measured. */
static int slept(dmn_queue *q, uint64_t n)
{
    for (int i = 0; i < 20000; i++) {
        if (dmn_queue_sleeps(q) >= n) return 1;
        usleep(500);
    }
    return 0;
}

/* A take() on its own thread, with the arguments the worker passes. */
struct taker {
    dmn_queue *q;
    int max_wait_ms, expect;
    double replied_at;
    dmn_item it[8];
    int n;
    atomic_int returned;
    pthread_t th;
};

static void *take_thread(void *arg)
{
    struct taker *t = arg;
    t->n = dmn_queue_take(t->q, t->it, 4, 1 << 20, t->max_wait_ms, t->expect, t->replied_at);
    atomic_store(&t->returned, 1);
    return NULL;
}

static void take_start(struct taker *t, dmn_queue *q, int max_wait_ms, int expect,
                       double replied_at)
{
    memset(t, 0, sizeof *t);
    t->q = q, t->max_wait_ms = max_wait_ms, t->expect = expect, t->replied_at = replied_at;
    REQUIRE(pthread_create(&t->th, NULL, take_thread, t) == 0);
}

/* Moves the clock to s and lets a waiting taker see it. */
static void fake_move(dmn_queue *q, double s)
{
    fake_set(s);
    dmn_queue_wake(q);
}

TEST(daemon_queue_waits_to_fill_a_batch)
{
    dmn_queue *q = fake_queue(64, 100.0);
    dmn_req *a = fake_req(1, 0, 8), *b = fake_req(3, 0, 8), *c = fake_req(1, 0, 8);
    struct taker t;

    /* A short queue waits max_wait_ms by its clock, then runs what it has: still
     * waiting at 79 ms, done at 81. */
    REQUIRE(dmn_queue_push(q, a, 100.0) == 0);
    take_start(&t, q, 80, 4, 0);
    REQUIRE(slept(q, 1));
    fake_move(q, 100.079);
    REQUIRE(slept(q, 2)); /* woken, it read 79 ms and went back to waiting */
    CHECK_MSG(!atomic_load(&t.returned), "returned after 79 of 80 ms (took %d)", t.n);
    fake_move(q, 100.081);
    pthread_join(t.th, NULL);
    CHECK_MSG(t.n == 1 && t.it[0].req == a, "took %d", t.n);

    /* Company arriving within the wait fills the batch and ends the wait: the clock
     * never moves here. */
    REQUIRE(dmn_queue_push(q, c, 100.081) == 0);
    uint64_t s0 = dmn_queue_sleeps(q);
    take_start(&t, q, 2000, 4, 0);
    REQUIRE(slept(q, s0 + 1));
    CHECK(!atomic_load(&t.returned));
    REQUIRE(dmn_queue_push(q, b, 100.081) == 0);
    pthread_join(t.th, NULL);
    CHECK_MSG(t.n == 4, "took %d", t.n);

    /* As much company as the last batch had (expect) is enough: no waiting at all. */
    dmn_req *d = fake_req(1, 0, 8);
    dmn_item it[8];
    REQUIRE(dmn_queue_push(q, d, 100.081) == 0);
    s0 = dmn_queue_sleeps(q);
    CHECK(dmn_queue_take(q, it, 4, 1 << 20, 2000, 1, 0) == 1);
    CHECK_MSG(dmn_queue_sleeps(q) == s0, "expect 1 with 1 queued slept %llu time(s)",
              (unsigned long long)(dmn_queue_sleeps(q) - s0));

    /* A document queued before the last batch's replies went out came from another
     * client: it adds to the company awaited (expect 1 + 1), so the answered client's
     * next request joins it in one batch instead of running alone after it. */
    dmn_req *e = fake_req(1, 0, 8), *f = fake_req(1, 0, 8);
    fake_set(200.0);
    REQUIRE(dmn_queue_push(q, e, 200.0) == 0);
    s0 = dmn_queue_sleeps(q);
    take_start(&t, q, 2000, 1, 200.001);
    REQUIRE(slept(q, s0 + 1));
    CHECK_MSG(!atomic_load(&t.returned), "the early document ran alone");
    fake_set(200.002);
    REQUIRE(dmn_queue_push(q, f, 200.002) == 0);
    pthread_join(t.th, NULL);
    CHECK_MSG(t.n == 2, "took %d: the early document should have waited for company", t.n);

    /* A blocked take wakes on close. */
    s0 = dmn_queue_sleeps(q);
    take_start(&t, q, 2000, 4, 0);
    REQUIRE(slept(q, s0 + 1));
    dmn_queue_close(q);
    pthread_join(t.th, NULL);
    CHECK(t.n == 0);
    dmn_req_free(&a), dmn_req_free(&b), dmn_req_free(&c), dmn_req_free(&d);
    dmn_req_free(&e), dmn_req_free(&f);
    dmn_queue_free(&q);
}

TEST(daemon_queue_expire_removes_late_documents)
{
    dmn_queue *q = dmn_queue_new(16, 512);
    dmn_req *a = fake_req(2, 0, 8), *b = fake_req(1, 9, 8), *c = fake_req(1, 0, 8);
    dmn_item it[16];
    double next = -1;
    a->t_deadline = 10.0, b->t_deadline = 5.0, c->t_deadline = 20.0;
    REQUIRE(dmn_queue_push(q, a, 0) == 0 && dmn_queue_push(q, b, 0) == 0 &&
            dmn_queue_push(q, c, 0) == 0);
    CHECK(dmn_queue_expire(q, 4.0, it, 16, &next) == 0 && next == 5.0);
    CHECK(dmn_queue_expire(q, 11.0, it, 16, &next) == 3); /* b, and both of a */
    CHECK(next == 20.0);
    CHECK(dmn_queue_depth(q) == 1);
    int n = dmn_queue_take(q, it, 16, 1 << 20, 0, 16, 0);
    CHECK(n == 1 && it[0].req == c);
    CHECK(dmn_queue_expire(q, 100.0, it, 16, &next) == 0 && next == 0);
    /* The heap order survives an expiry in the middle. */
    dmn_req *d[6];
    for (int i = 0; i < 6; i++) {
        d[i] = fake_req(1, i, 8);
        d[i]->t_deadline = i % 2 ? 1.0 : 50.0;
        REQUIRE(dmn_queue_push(q, d[i], 0) == 0);
    }
    CHECK(dmn_queue_expire(q, 2.0, it, 16, NULL) == 3);
    n = dmn_queue_take(q, it, 16, 1 << 20, 0, 16, 0);
    CHECK(n == 3 && it[0].req == d[4] && it[1].req == d[2] && it[2].req == d[0]);
    for (int i = 0; i < 6; i++) dmn_req_free(&d[i]);
    dmn_req_free(&a), dmn_req_free(&b), dmn_req_free(&c);
    dmn_queue_free(&q);
}

/* Issue 13's critical fault: the worker waits for company (expect 2, max_wait 1 s) over
 * one queued document; the I/O thread expires that document meanwhile. take() must go
 * back to waiting for work -- returning 0 told the worker "closed and drained", and it
 * ended for good while the daemon kept accepting requests. */
TEST(daemon_queue_take_survives_an_expiry_during_the_wait)
{
    dmn_queue *q = fake_queue(16, 100.0);
    dmn_req *a = fake_req(1, 0, 8), *b = fake_req(1, 0, 8);
    dmn_item gone[4];
    struct taker t;
    a->t_deadline = 100.05;
    REQUIRE(dmn_queue_push(q, a, 100.0) == 0);
    take_start(&t, q, 1000, 2, 0);
    REQUIRE(slept(q, 1)); /* the taker waits for a second document */
    uint64_t s0 = dmn_queue_sleeps(q);
    fake_set(100.1);
    CHECK(dmn_queue_expire(q, 100.1, gone, 4, NULL) == 1 && gone[0].req == a);
    REQUIRE(slept(q, s0 + 1)); /* it woke to an empty queue and waits */
    fake_move(q, 101.2);       /* past max_wait_ms: nothing to take */
    REQUIRE(slept(q, s0 + 2));
    CHECK_MSG(!atomic_load(&t.returned), "take returned %d with the queue open", t.n);
    b->t_deadline = 160.0;
    REQUIRE(dmn_queue_push(q, b, 101.2) == 0);
    fake_move(q, 102.3); /* b alone waited its max_wait_ms too */
    pthread_join(t.th, NULL);
    CHECK_MSG(t.n == 1 && t.it[0].req == b, "took %d document(s)", t.n);
    dmn_req_free(&a), dmn_req_free(&b);
    dmn_queue_free(&q);
}

TEST(daemon_split_bounds_engine_calls)
{
    int ends[16];
    int lens[] = { 10, 10, 20, 30, 40, 200 };
    int rows[] = { 1, 1, 4, 4, 4, 1 };
    /* tokens <= 64 padded: {10,10,20} = 3*20 = 60; {30} then + 40 -> 2*40 = 80 > 64 */
    int n = dmn_sched_split(lens, rows, 6, 64, 100, ends);
    REQUIRE(n == 4);
    CHECK(ends[0] == 3 && ends[1] == 4 && ends[2] == 5 && ends[3] == 6); /* 200 alone */
    /* rows <= 5: {1,1} (+4 would be 6), {4}, {4}, {4,1} */
    n = dmn_sched_split(lens, rows, 6, 1 << 20, 5, ends);
    REQUIRE(n == 4);
    CHECK(ends[0] == 2 && ends[1] == 3 && ends[2] == 4 && ends[3] == 6);
    CHECK(dmn_sched_split(lens, rows, 0, 64, 4, ends) == 0);
    n = dmn_sched_split(lens, rows, 6, 1 << 20, 1000, ends);
    CHECK(n == 1 && ends[0] == 6);
}

/* ---- stats ---- */

TEST(daemon_percentiles)
{
    double v[100];
    for (int i = 0; i < 100; i++) v[i] = 100 - i; /* 100 .. 1, unsorted */
    CHECK(dmn_percentile(v, 100, 50) == 50);
    CHECK(dmn_percentile(v, 100, 90) == 90);
    CHECK(dmn_percentile(v, 100, 99) == 99);
    CHECK(dmn_percentile(v, 100, 100) == 100);
    CHECK(dmn_percentile(v, 0, 50) == 0);
    double one = 7;
    CHECK(dmn_percentile(&one, 1, 99) == 7);
}

TEST(daemon_stats_counts_and_window)
{
    dmn_stats *s = dmn_stats_new(100.0);
    dmn_stats_snap o;
    REQUIRE(s);
    for (int i = 0; i < 5; i++) dmn_stats_request(s);
    dmn_stats_response(s, DMN_OK, 10);
    dmn_stats_response(s, DMN_OK, 30);
    dmn_stats_response(s, DMN_MALFORMED, -1); /* not a latency sample */
    dmn_stats_response(s, 99, -1);            /* out of range: ignored */
    dmn_stats_batch(s, 4, 100, 40, 101.0);
    dmn_stats_batch(s, 2, 50, 20, 102.0);
    dmn_stats_documents(s, 6);
    dmn_stats_snapshot(s, &o, 104.0);
    CHECK(o.requests == 5 && o.documents == 6);
    CHECK(o.by_code[DMN_OK] == 2 && o.by_code[DMN_MALFORMED] == 1);
    CHECK(o.p50_ms == 10 && o.p99_ms == 30);
    CHECK(o.batches == 2 && o.mean_batch_size == 3);
    CHECK(o.input_tokens == 150 && o.output_tokens == 60);
    CHECK(o.uptime_s == 4);
    CHECK_MSG(fabs(o.tokens_per_s - 60.0 / 4) < 1e-9, "tokens/s %.3f", o.tokens_per_s);
    /* 30 s later the old tokens are out of the window. */
    dmn_stats_snapshot(s, &o, 134.0);
    CHECK(o.tokens_per_s == 0);
    /* the ring keeps the most recent DMN_LAT_RING samples */
    for (int i = 0; i < DMN_LAT_RING; i++) dmn_stats_response(s, DMN_OK, 1000);
    dmn_stats_snapshot(s, &o, 134.0);
    CHECK(o.p50_ms == 1000 && o.p99_ms == 1000);
    dmn_stats_free(&s);
    CHECK(s == NULL);
}

TEST(daemon_task_status_mapping)
{
    CHECK(dmn_code_from_task(TASK_OK) == DMN_OK);
    CHECK(dmn_code_from_task(TASK_EINVAL) == DMN_INVALID_ARGUMENT);
    CHECK(dmn_code_from_task(TASK_ETOOLONG) == DMN_INPUT_TOO_LONG);
    CHECK(dmn_code_from_task(TASK_EINTERNAL) == DMN_INTERNAL);
    CHECK(dmn_code_from_task(TASK_ENOMEM) == DMN_INTERNAL);
    CHECK(strcmp(dmn_code_name(DMN_MALFORMED), "MALFORMED") == 0);
    CHECK(strcmp(dmn_code_name(42), "UNKNOWN") == 0);
}

/* ---- the worker on the tiny model (no sockets but its inproc hand-back) ---- */

/* A packed request of one document, decoded into a queue-ready dmn_req. */
static dmn_req *make_req(int task, const char *doc, uint64_t id, double deadline_s)
{
    uint8_t buf[1024];
    char err[256];
    uint64_t rid;
    dmn_req *r = NULL;
    char *docs[] = { (char *)doc }, *labels[] = { "sports", "politics" };
    Nlp__V1__Request q = NLP__V1__REQUEST__INIT;
    Nlp__V1__Summarize su = NLP__V1__SUMMARIZE__INIT;
    Nlp__V1__Text2Text tt = NLP__V1__TEXT2_TEXT__INIT;
    Nlp__V1__Classify cl = NLP__V1__CLASSIFY__INIT;
    Nlp__V1__DecodingOptions o = NLP__V1__DECODING_OPTIONS__INIT;
    q.has_id = 1, q.id = id;
    q.task_case = task;
    if (task == NLP__V1__REQUEST__TASK_SUMMARIZE) q.summarize = &su;
    if (task == NLP__V1__REQUEST__TASK_TEXT2TEXT) q.text2text = &tt;
    if (task == NLP__V1__REQUEST__TASK_CLASSIFY) q.classify = &cl;
    cl.labels = labels, cl.n_labels = 2;
    q.n_documents = 1, q.documents = docs;
    o.has_max_new_tokens = 1, o.max_new_tokens = 8;
    if (task != NLP__V1__REQUEST__TASK_CLASSIFY) q.options = &o;
    dmn_limits lim = test_limits();
    if (dmn_req_decode(buf, pack_req(&q, buf, sizeof buf), &lim, 16, &r, &rid, err, sizeof err) !=
        DMN_OK)
        return NULL;
    r->t_recv = cm_now();
    r->t_deadline = r->t_recv + deadline_s;
    return r;
}

/* Queues reqs, runs the worker until the queue drains, collects what it hands back;
 * returns the stats. */
static void run_worker_tokens(int max_rows, int max_batch_tokens, dmn_req **reqs, int n,
                              dmn_stats_snap *snap)
{
    dmn_server *srv = &dmn_srv;
    char err[512];
    dmn_log_set_level(DMN_LOG_ERROR); /* the expected deadline line stays quiet */
    dmn_conf_defaults(&srv->conf);
    srv->conf.path[0] = '\0'; /* built-in task defaults */
    snprintf(srv->conf.model_dir, sizeof srv->conf.model_dir, "%s", th_data("models/tiny-flan"));
    srv->conf.batching.max_rows = max_rows;
    if (max_batch_tokens > 0) srv->conf.batching.max_batch_tokens = max_batch_tokens;
    srv->conf.batching.max_wait_ms = 0;
    /* One model of the registry (dmn_models.h): its context and queue, its worker. */
    srv->tasks = task_conf_default();
    dmn_model_conf mc = { .name = "tiny-flan" };
    memcpy(mc.path, srv->conf.model_dir, sizeof mc.path);
    REQUIRE(dmn_models_new(srv) == 0);
    dmn_model *m = dmn_model_load(srv, &mc, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    srv->stats = dmn_stats_new(cm_now());
    srv->zctx = zmq_ctx_new();
    srv->done_rx = zmq_socket(srv->zctx, ZMQ_PAIR);
    srv->done_tx = zmq_socket(srv->zctx, ZMQ_PAIR);
    REQUIRE(zmq_bind(srv->done_rx, "inproc://test-done") == 0);
    REQUIRE(zmq_connect(srv->done_tx, "inproc://test-done") == 0);
    for (int i = 0; i < n; i++) {
        REQUIRE(reqs[i]);
        reqs[i]->model = m;
        REQUIRE(dmn_server_prepare(srv, reqs[i]) == 0 &&
                dmn_queue_push(m->queue, reqs[i], cm_now()) == 0);
    }
    dmn_queue_close(m->queue); /* the worker drains it without waiting, then ends */
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, dmn_worker_main, m) == 0);
    pthread_join(th, NULL);
    for (int i = 0; i < n; i++) {
        dmn_req *r = NULL;
        REQUIRE(zmq_recv(srv->done_rx, &r, sizeof r, ZMQ_DONTWAIT) == (int)sizeof r);
        int found = 0;
        for (int k = 0; k < n; k++) found |= reqs[k] == r;
        CHECK(found);
    }
    dmn_req *extra;
    CHECK(zmq_recv(srv->done_rx, &extra, sizeof extra, ZMQ_DONTWAIT) < 0); /* each once */
    dmn_stats_snapshot(srv->stats, snap, cm_now());
    zmq_close(srv->done_rx);
    zmq_close(srv->done_tx);
    zmq_ctx_term(srv->zctx);
    dmn_model_free(&m);
    dmn_models_end(srv);
    dmn_stats_free((dmn_stats **)&srv->stats);
    task_conf_free(&srv->tasks);
}

static void run_worker(int max_rows, dmn_req **reqs, int n, dmn_stats_snap *snap)
{
    run_worker_tokens(max_rows, 0, reqs, n, snap);
}

TEST_TIMEOUT(daemon_worker_batches_across_requests_and_tasks, 120)
{
    dmn_req *r[5] = {
        make_req(NLP__V1__REQUEST__TASK_SUMMARIZE, "The cat sat on the mat all day.", 1, 60),
        make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, "What is the capital of France?", 2, 60),
        make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, "Say something nice.", 3, 60),
        make_req(NLP__V1__REQUEST__TASK_CLASSIFY, "The match ended two to one.", 4, 60),
        make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, "Too late for this one.", 5, -1),
    };
    dmn_stats_snap s;
    run_worker(16, r, 5, &s);
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(r[i]->out[0].code == DMN_OK, "request %d: %s %s", i + 1,
                  dmn_code_name(r[i]->out[0].code), r[i]->out[0].message);
        CHECK(r[i]->out[0].has_res && r[i]->out[0].res.input_tokens > 0);
        CHECK(r[i]->t_start > 0 && r[i]->t_done >= r[i]->t_start);
    }
    CHECK(r[0]->out[0].res.text != NULL && r[1]->out[0].res.text != NULL);
    CHECK(r[3]->out[0].res.n_labels == 2);
    /* Past its deadline when the worker took it: never prepared, answered as such. */
    CHECK(r[4]->out[0].code == DMN_DEADLINE_EXCEEDED && !r[4]->out[0].has_res);
    /* Three generations (two tasks, three requests) in one engine call, 6 rows (4 beams
     * and 2 greedy) at once; one scoring call. */
    CHECK_MSG(s.batches == 2, "engine calls: %llu", (unsigned long long)s.batches);
    CHECK_MSG(s.peak_rows == 6, "rows at once: %u", s.peak_rows);
    CHECK_MSG(fabs(s.mean_batch_size - 2.0) < 1e-9, "mean batch %.2f", s.mean_batch_size);
    CHECK(s.documents == 4);
    CHECK(s.output_tokens > 0 && s.input_tokens > 0);
    for (int i = 0; i < 5; i++) dmn_req_free(&r[i]);
}

TEST_TIMEOUT(daemon_worker_respects_max_rows, 120)
{
    /* summarize searches 4 beams by default: with max_rows 4 it never runs beside the
     * two greedy text2text jobs (1 row each); with continuous batching it may join their
     * engine call once their rows are free. */
    dmn_req *r[3] = {
        make_req(NLP__V1__REQUEST__TASK_SUMMARIZE, "The cat sat on the mat all day.", 1, 60),
        make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, "What is the capital of France?", 2, 60),
        make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, "Say something nice.", 3, 60),
    };
    dmn_stats_snap s;
    run_worker(4, r, 3, &s);
    for (int i = 0; i < 3; i++) CHECK(r[i]->out[0].code == DMN_OK);
    CHECK_MSG(s.peak_rows == 4, "rows at once: %u", s.peak_rows);
    CHECK(s.batches >= 1 && s.batches <= 2);
    for (int i = 0; i < 3; i++) dmn_req_free(&r[i]);
}

TEST_TIMEOUT(daemon_worker_joins_documents_into_a_running_generation, 120)
{
    /* Whitespace counts in the queue's estimate (bytes / 4) but not in the tokens: with a
     * 40-token batch bound the worker takes one document (estimates 27 + 27 > 40), and
     * the other two join its generation (about 6 tokens each): one engine call. The
     * results are those of the three taken together. */
    char docs[3][128];
    const char *text[3] = { "Say something nice.", "What is the capital of France?",
                            "Name a colour." };
    for (int i = 0; i < 3; i++) snprintf(docs[i], sizeof docs[i], "%-100s", text[i]);
    dmn_req *r[3], *t[3];
    for (int i = 0; i < 3; i++) {
        r[i] = make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, docs[i], (uint64_t)i + 1, 60);
        t[i] = make_req(NLP__V1__REQUEST__TASK_TEXT2TEXT, docs[i], (uint64_t)i + 1, 60);
    }
    dmn_stats_snap s, st;
    run_worker_tokens(16, 40, r, 3, &s);
    run_worker_tokens(16, 0, t, 3, &st);
    CHECK_MSG(s.batches == 1, "engine calls: %llu", (unsigned long long)s.batches);
    CHECK(st.batches == 1);
    for (int i = 0; i < 3; i++) {
        REQUIRE(r[i]->out[0].code == DMN_OK && t[i]->out[0].code == DMN_OK);
        CHECK_MSG(strcmp(r[i]->out[0].res.text, t[i]->out[0].res.text) == 0,
                  "document %d: \"%s\" joined, \"%s\" taken together", i, r[i]->out[0].res.text,
                  t[i]->out[0].res.text);
        dmn_req_free(&r[i]);
        dmn_req_free(&t[i]);
    }
}

/* Health reports a dead worker: ok needs a model serving, every serving model's worker
 * running and no stop signal. */
TEST_TIMEOUT(daemon_health_reports_a_dead_worker, 60)
{
    static dmn_server srv;
    char err[512];
    int rc = 0;
    dmn_conf_defaults(&srv.conf);
    srv.conf.path[0] = '\0';
    srv.conf.n_models = 0;
    srv.tasks = task_conf_default();
    REQUIRE(dmn_conf_add_model(&srv.conf, "", th_data("models/tiny-flan"), "", 0, err,
                               sizeof err) == 0);
    CHECK(dmn_server_ok(&srv) == 0); /* no model yet */
    REQUIRE_MSG(dmn_models_begin(&srv, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 30000 && rc == 0; i++)
        if ((rc = dmn_models_poll(&srv, err, sizeof err)) == 0) usleep(1000);
    REQUIRE_MSG(rc == 1, "the model did not load: %s", err);
    CHECK(dmn_server_ok(&srv) == 1);
    CHECK(dmn_models_lost_worker(&srv) == NULL);
    srv.shutting_down = 1;
    CHECK(dmn_server_ok(&srv) == 0);
    srv.shutting_down = 0;
    dmn_models_close(&srv); /* its worker drains the empty queue and returns */
    for (int i = 0; i < 30000 && dmn_models_lost_worker(&srv) == NULL; i++) usleep(1000);
    CHECK(dmn_models_lost_worker(&srv) != NULL);
    CHECK(dmn_server_ok(&srv) == 0);
    dmn_models_end(&srv);
    task_conf_free(&srv.tasks);
}
