/* Tasks: prompts, languages, sentence splitting, qa chunking, label probabilities,
 * config loading, and prepare -> (engine outputs filled by hand) -> finish for every
 * task; plus one real engine run per task on tiny-flan. */
#include "tests/harness/harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tasks/task_int.h"

/* ---- fixtures ---- */

typedef struct fx {
    tok_model *tok;
    task_conf *conf;
    task_env env;
} fx;

static void fx_init(fx *f, int max_input_tokens)
{
    char err[256];
    f->tok = tok_load(th_data("t5/spiece.model"), err, sizeof err);
    REQUIRE_MSG(f->tok, "tok_load: %s", err);
    f->conf = task_conf_default();
    REQUIRE(f->conf);
    f->env = (task_env){
        .tok = f->tok, .model = NULL, .conf = f->conf, .max_input_tokens = max_input_tokens
    };
}

static void fx_free(fx *f)
{
    tok_free(&f->tok);
    task_conf_free(&f->conf);
}

static task_input input(task_kind kind, const char *text)
{
    task_input in = { .kind = kind, .text = text, .text_len = text ? strlen(text) : 0 };
    task_decode_opts_unset(&in.opts);
    return in;
}

/* ids of text + EOS, malloc'ed. */
static int32_t *enc(const fx *f, const char *text, int eos, int *n)
{
    char err[128];
    int32_t *ids = NULL;
    int rc = task_encode(f->tok, text, strlen(text), eos, &ids, n, err, sizeof err);
    REQUIRE_MSG(rc == 0, "encode '%s': %s", text, err);
    return ids;
}

static int same_ids(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && !memcmp(a, b, (size_t)na * sizeof *a);
}

/* Pretends the engine ran a generate job: hypotheses are the given texts (EOS appended),
 * with the given scores. */
static void fake_gen(const fx *f, task_job *job, int n, const char *const *texts,
                     const double *scores)
{
    REQUIRE(job->kind == TASK_JOB_GENERATE);
    REQUIRE(job->gen.out == &job->result && job->gen.ids == job->ids);
    int total = 0, lens[ENG_MAX_RETURN];
    int32_t *ids[ENG_MAX_RETURN];
    for (int i = 0; i < n; i++) {
        ids[i] = enc(f, texts[i], 1, &lens[i]);
        total += lens[i];
    }
    job->result.storage = malloc((size_t)total * sizeof(int32_t) + 1);
    REQUIRE(job->result.storage);
    int at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(job->result.storage + at, ids[i], (size_t)lens[i] * sizeof(int32_t));
        job->result.hyps[i] = (eng_hyp){ job->result.storage + at, lens[i], scores[i], scores[i] };
        at += lens[i];
        free(ids[i]);
    }
    job->result.n_hyps = n;
    job->gen.status = 0;
}

/* ---- registry, options ---- */

TEST(task_kind_names)
{
    static const char *names[] = { "summarize", "translate", "classify", "qa", "text2text" };
    for (int k = 1; k <= 5; k++) {
        CHECK(task_kind_from_name(names[k - 1]) == (task_kind)k);
        CHECK(!strcmp(task_kind_name((task_kind)k), names[k - 1]));
    }
    CHECK(task_kind_from_name("summarise") == TASK_NONE);
    CHECK(task_kind_from_name(NULL) == TASK_NONE);
    CHECK(!strcmp(task_kind_name((task_kind)42), "none"));
}

TEST(task_gen_params_defaults_and_overrides)
{
    task_conf *c = task_conf_default();
    REQUIRE(c);
    task_decode_opts o;
    task_decode_opts_unset(&o);
    CHECK(o.max_new_tokens < 0 && isnan(o.length_penalty) && o.seed < 0 && !o.return_hypotheses);
    eng_gen_params p;
    char err[256];
    REQUIRE(task_gen_params(c, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.num_beams == 4 && p.max_new_tokens == 128 && p.min_new_tokens == 10);
    CHECK(fabsf(p.length_penalty - 2.0f) < 1e-6 && p.no_repeat_ngram_size == 3);
    CHECK(p.do_sample == 0 && p.num_return_sequences == 1);

    o.max_new_tokens = 5; /* the configured minimum yields */
    o.num_beams = 2;
    o.return_hypotheses = 1; /* -> every beam */
    REQUIRE(task_gen_params(c, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.max_new_tokens == 5 && p.min_new_tokens == 5 && p.num_beams == 2);
    CHECK(p.num_return_sequences == 2);

    task_decode_opts_unset(&o);
    o.seed = 7;
    REQUIRE(task_gen_params(c, TASK_TEXT2TEXT, &o, &p, err, sizeof err) == 0);
    CHECK(p.do_sample == 1 && p.seed == 7);

    /* Sampling on a task whose default is beam search: one beam, unless the client chose
     * beams (then a clear error); several independent samples may come back. */
    task_decode_opts_unset(&o);
    o.temperature = 0.7f;
    REQUIRE(task_gen_params(c, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.do_sample == 1 && p.num_beams == 1 && p.num_return_sequences == 1);
    o.num_return_sequences = 3;
    REQUIRE(task_gen_params(c, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.num_beams == 1 && p.num_return_sequences == 3);
    o.num_return_sequences = ENG_MAX_RETURN + 1;
    CHECK(task_gen_params(c, TASK_SUMMARIZE, &o, &p, err, sizeof err) == TASK_EINVAL);
    o.num_return_sequences = -1;
    o.num_beams = 4;
    err[0] = 0;
    CHECK(task_gen_params(c, TASK_SUMMARIZE, &o, &p, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "beam sampling"), "message: %s", err);
    /* greedy returns one sequence */
    task_decode_opts_unset(&o);
    o.num_beams = 1, o.num_return_sequences = 2;
    CHECK(task_gen_params(c, TASK_TEXT2TEXT, &o, &p, err, sizeof err) == TASK_EINVAL);

    struct {
        const char *what;
        task_decode_opts o;
    } bad[4];
    for (int i = 0; i < 4; i++) task_decode_opts_unset(&bad[i].o);
    bad[0].o.max_new_tokens = 0;
    bad[1].o.num_beams = 1000;
    bad[2].o.num_beams = 2, bad[2].o.num_return_sequences = 3;
    bad[3].o.top_p = 1.5f;
    for (int i = 0; i < 4; i++) {
        err[0] = 0;
        CHECK_MSG(task_gen_params(c, TASK_TEXT2TEXT, &bad[i].o, &p, err, sizeof err) == TASK_EINVAL,
                  "bad option %d accepted", i);
        CHECK_MSG(err[0] != 0, "no message for bad option %d", i);
    }
    task_conf_free(&c);
    CHECK(c == NULL);
}

TEST(task_template_fill_and_check)
{
    static const char *const names[] = { "text", "source", "target" };
    const char *vals[] = { "Hello.", "English", "German" };
    size_t lens[] = { 6, 7, 6 };
    size_t n;
    char *s = task_fill("translate {source} to {target}: {text}", names, vals, lens, 3, &n);
    REQUIRE(s);
    CHECK(!strcmp(s, "translate English to German: Hello."));
    CHECK(n == strlen(s));
    free(s);
    s = task_fill("{json: {x} } {text}", names, vals, lens, 1, &n);
    CHECK(s == NULL); /* {x} unknown */
    s = task_fill("{ not a placeholder } {text}{text}", names, vals, lens, 1, &n);
    REQUIRE(s);
    CHECK(!strcmp(s, "{ not a placeholder } Hello.Hello."));
    free(s);
    char err[128];
    CHECK(task_template_check("summarize: {text}", names, 1, "text", err, sizeof err));
    CHECK(!task_template_check("summarize: {txt}", names, 1, "text", err, sizeof err));
    CHECK(strstr(err, "{txt}") != NULL);
    CHECK(!task_template_check("summarize:", names, 1, "text", err, sizeof err));
    CHECK(strstr(err, "{text}") != NULL);
}

/* ---- languages and sentences ---- */

TEST(task_lang_resolution)
{
    task_conf *c = task_conf_default();
    REQUIRE(c);
    const task_lang *de = task_lang_find(c, "de");
    REQUIRE(de);
    CHECK(!strcmp(de->names[0], "German"));
    CHECK(task_lang_find(c, "German") == de);
    CHECK(task_lang_find(c, "gErMaN") == de);
    CHECK(task_lang_find(c, "DE") == de);
    CHECK(task_lang_find(c, " de ") == de);
    CHECK(task_lang_find(c, "Klingon") == NULL);
    CHECK(task_lang_find(c, "") == NULL);
    CHECK(task_lang_find(c, NULL) == NULL);
    CHECK(task_lang_find(c, "ro") && !strcmp(task_lang_find(c, "ro")->names[0], "Romanian"));
    task_conf_free(&c);
}

static void check_split(const task_conf *c, const char *text, int n, const char *const *want)
{
    task_span *sp = NULL;
    int got = task_split_sentences(c, text, strlen(text), &sp);
    CHECK_MSG(got == n, "'%s': %d sentences, want %d", text, got, n);
    for (int i = 0; i < got && i < n; i++)
        CHECK_MSG(sp[i].len == strlen(want[i]) && !memcmp(text + sp[i].off, want[i], sp[i].len),
                  "'%s' sentence %d: '%.*s', want '%s'", text, i, (int)sp[i].len, text + sp[i].off,
                  want[i]);
    free(sp);
}

TEST(task_split_sentences_cases)
{
    task_conf *c = task_conf_default();
    REQUIRE(c);
    check_split(c, "One. Two! Three?", 3, (const char *[]){ "One.", "Two!", "Three?" });
    check_split(c, "  Dr. Smith arrived.  Mr. J. Doe left the U.S. today. ", 2,
                (const char *[]){ "Dr. Smith arrived.", "Mr. J. Doe left the U.S. today." });
    check_split(c, "Pi is 3.14 and e is 2.71. See example.com now.", 2,
                (const char *[]){ "Pi is 3.14 and e is 2.71.", "See example.com now." });
    check_split(c, "He said \"Stop!\" Then he left... And so on.", 3,
                (const char *[]){ "He said \"Stop!\"", "Then he left...", "And so on." });
    check_split(c, "It costs approx. five euros. Fine.", 2,
                (const char *[]){ "It costs approx. five euros.", "Fine." });
    check_split(c, "今日は晴れです。明日は雨です！本当？", 3,
                (const char *[]){ "今日は晴れです。", "明日は雨です！", "本当？" });
    check_split(c, "Title without stop\n\nFirst paragraph\nwraps here. Done", 3,
                (const char *[]){ "Title without stop", "First paragraph\nwraps here.", "Done" });
    check_split(c, "no terminator at all", 1, (const char *[]){ "no terminator at all" });
    check_split(c, " \n\t ", 0, NULL);
    task_conf_free(&c);
}

/* Random texts from pieces that exercise every rule: spans are ordered, disjoint,
 * trimmed, on UTF-8 boundaries, and cover every non-space byte. */
TEST(task_split_sentences_invariants)
{
    static const char *const pieces[] = {
        "word", "Dr.", "U.S.", "3.14", " ",  "  ", "\n", "\n\n", ". ",  "!",    "?",  "...", "\"",
        ")",    "。",  "！",   "？",   "」", "é",  "Ab", "x",    ".\n", "e.g.", "A.", "\t",
    };
    const int np = (int)(sizeof pieces / sizeof pieces[0]);
    task_conf *c = task_conf_default();
    REQUIRE(c);
    unsigned seed = 12345;
    char text[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        int n = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
        for (int i = 0; i < n; i++) {
            const char *p = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % (unsigned)np];
            size_t pl = strlen(p);
            if (len + pl >= sizeof text) break;
            memcpy(text + len, p, pl);
            len += pl;
        }
        text[len] = 0;
        task_span *sp = NULL;
        int k = task_split_sentences(c, text, len, &sp);
        REQUIRE(k >= 0);
        size_t end = 0;
        for (int i = 0; i < k; i++) {
            const char *a = text + sp[i].off, *z = a + sp[i].len - 1;
            CHECK_MSG(sp[i].len > 0 && sp[i].off >= end && sp[i].off + sp[i].len <= len,
                      "'%s': span %d out of order", text, i);
            CHECK_MSG(!strchr(" \t\n", *a) && !strchr(" \t\n", *z), "'%s': untrimmed", text);
            CHECK_MSG(
                ((unsigned char)*a & 0xC0) != 0x80 &&
                    (sp[i].off + sp[i].len == len || ((unsigned char)a[sp[i].len] & 0xC0) != 0x80),
                "'%s': span %d splits a character", text, i);
            for (size_t b = end; b < sp[i].off; b++)
                CHECK_MSG(strchr(" \t\n", text[b]), "'%s': byte %zu dropped", text, b);
            end = sp[i].off + sp[i].len;
        }
        for (size_t b = end; b < len; b++)
            CHECK_MSG(strchr(" \t\n", text[b]), "'%s': tail byte %zu dropped", text, b);
        free(sp);
    }
    task_conf_free(&c);
}

/* ---- qa chunks ---- */

TEST(task_qa_chunks_cover_and_overlap)
{
    uint8_t ws[1001];
    for (int i = 0; i <= 1000; i++) ws[i] = (i % 3 == 0);
    for (int n = 1; n <= 1000; n += 37)
        for (int window = 5; window <= 120; window += 23)
            for (int ov = 0; ov < window; ov += 7)
                for (int snap = 0; snap < 2; snap++) {
                    task_span *s = NULL;
                    int k = task_qa_chunks(n, window, ov, snap ? ws : NULL, &s);
                    REQUIRE(k >= 1 && s);
                    CHECK(s[0].off == 0 && s[k - 1].off + s[k - 1].len == (size_t)n);
                    for (int i = 0; i < k; i++) {
                        CHECK(s[i].len >= 1 && s[i].len <= (size_t)window);
                        if (i) {
                            CHECK(s[i].off > s[i - 1].off); /* progress */
                            /* contiguous coverage, and at least the overlap asked for */
                            CHECK(s[i].off <= s[i - 1].off + s[i - 1].len);
                            size_t shared = s[i - 1].off + s[i - 1].len - s[i].off;
                            CHECK_MSG(snap || shared == (size_t)(ov < window ? ov : window - 1),
                                      "n=%d w=%d ov=%d: shared %zu", n, window, ov, shared);
                            size_t least =
                                (size_t)ov < s[i - 1].len - 1 ? (size_t)ov : s[i - 1].len - 1;
                            CHECK_MSG(shared >= least, "n=%d w=%d ov=%d snap: shared %zu", n,
                                      window, ov, shared);
                        }
                    }
                    if (n <= window) CHECK(k == 1);
                    free(s);
                }
}

/* ---- label probabilities ---- */

TEST(task_label_probs_softmax_and_multi)
{
    double lp[3] = { -1.0, -2.0, -4.0 }, p[3];
    task_label_probs(lp, 3, 0, 0, p);
    double z = exp(-1.0) + exp(-2.0) + exp(-4.0);
    CHECK(fabs(p[0] - exp(-1.0) / z) < 1e-12 && fabs(p[2] - exp(-4.0) / z) < 1e-12);
    CHECK(fabs(p[0] + p[1] + p[2] - 1) < 1e-12);
    double big[2] = { -1000.0, -1001.0 }; /* stable far from 0 */
    task_label_probs(big, 2, 0, 0, p);
    CHECK(fabs(p[0] - 1 / (1 + exp(-1.0))) < 1e-12);
    task_label_probs(lp, 3, 1, -2.0, p);
    CHECK(fabs(p[0] - 1 / (1 + exp(-1.0))) < 1e-12);
    CHECK(fabs(p[1] - 0.5) < 1e-12);
    CHECK(fabs(p[2] - 1 / (1 + exp(2.0))) < 1e-12);
}

/* ---- config ---- */

static char *write_tmp(const char *dir, const char *name, const char *body)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ & 7];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs(body, f);
    fclose(f);
    return p;
}

static void tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/nlp_task_conf_XXXXXX");
    REQUIRE(mkdtemp(buf));
}

TEST(task_conf_loads_repo_file)
{
    char err[512];
    task_conf *c = task_conf_load("conf/tasks.conf", err, sizeof err);
    REQUIRE_MSG(c, "%s", err);
    CHECK(!strcmp(c->spec[TASK_SUMMARIZE].prompt, "summarize: {text}"));
    CHECK(c->spec[TASK_SUMMARIZE].dec.num_beams == 4);
    CHECK(!strcmp(c->spec[TASK_QA].prompt, "question: {question} context: {context}"));
    CHECK(!strcmp(c->spec[TASK_CLASSIFY].prompt, "{text}\nOPTIONS:\n- {labels}"));
    CHECK(task_lang_find(c, "Deutsch") == task_lang_find(c, "de"));
    CHECK(task_lang_find(c, "ja") != NULL);
    CHECK(c->truncate == 1 && c->qa_overlap == 64);
    CHECK(task_conf_max_input_tokens(c) == 512); /* no limits group in tasks.conf */
    /* The file spells out the built-in defaults: the same decoding settings. */
    task_conf *d = task_conf_default();
    REQUIRE(d);
    for (int k = 1; k < TASK_N_KINDS; k++) {
        if (k == TASK_CLASSIFY) continue;
        CHECK_MSG(!memcmp(&c->spec[k].dec, &d->spec[k].dec, sizeof d->spec[k].dec),
                  "tasks.%s decoding defaults differ from the built-in ones",
                  task_kind_name((task_kind)k));
        CHECK(!strcmp(c->spec[k].prompt, d->spec[k].prompt));
    }
    task_conf_free(&d);
    task_conf_free(&c);
}

TEST(task_conf_include_and_limits)
{
    char dir[64], err[512];
    tmpdir(dir, sizeof dir);
    write_tmp(dir, "tasks.conf",
              "tasks = { truncate = false;\n"
              "  summarize = { num_beams = 2; length_penalty = 1; prompt = \"tl;dr: {text}\"; };\n"
              "  translate = { languages = { en = \"English\"; xx = [\"Xish\", \"Xian\"]; };\n"
              "                abbreviations = [\"Zt.\"]; };\n"
              "};\n");
    char *main =
        write_tmp(dir, "nlpd.conf",
                  "limits = { max_input_tokens = 64; max_new_tokens = 32; queue_size = 9; };\n"
                  "@include \"tasks.conf\"\n");
    char cwd[512];
    REQUIRE(getcwd(cwd, sizeof cwd));
    REQUIRE(chdir("/") == 0); /* the include resolves from the file's directory */
    task_conf *c = task_conf_load(main, err, sizeof err);
    REQUIRE(chdir(cwd) == 0);
    REQUIRE_MSG(c, "%s", err);
    CHECK(c->truncate == 0);
    CHECK(c->spec[TASK_SUMMARIZE].dec.num_beams == 2);
    CHECK(c->spec[TASK_SUMMARIZE].dec.length_penalty == 1.0);
    CHECK(!strcmp(c->spec[TASK_SUMMARIZE].prompt, "tl;dr: {text}"));
    CHECK(c->spec[TASK_SUMMARIZE].dec.no_repeat_ngram_size == 3); /* untouched default */
    CHECK(task_conf_max_input_tokens(c) == 64 && task_conf_max_new_tokens(c) == 32);
    CHECK(c->n_langs == 2 && task_lang_find(c, "xian") == task_lang_find(c, "xx"));
    CHECK(task_lang_find(c, "de") == NULL);
    CHECK(c->n_abbrevs == 1 && !strcmp(c->abbrevs[0], "Zt"));
    eng_ctx_params cp = task_conf_ctx_params(c);
    CHECK(cp.max_cands >= c->labels_per_job && cp.max_cand_len >= c->max_label_tokens + 1);
    task_conf_free(&c);
}

/* Each bad file must fail with "FILE:LINE: ..." naming the right line. */
TEST(task_conf_errors_name_file_and_line)
{
    static const struct {
        const char *body;
        int line;
        const char *needle;
    } cases[] = {
        { "tasks = {\n  summarize = {\n    num_beams = 0;\n  };\n};\n", 3, "num_beams" },
        { "tasks = {\n  summarise = { };\n};\n", 2, "unknown setting tasks.summarise" },
        { "tasks = {\n  qa = {\n\n    chunk_overlap = \"64\";\n  };\n};\n", 4, "integer" },
        { "tasks = {\n  truncate = 1;\n};\n", 2, "true or false" },
        { "tasks = {\n  summarize = { num_beams = ; };\n};\n", 2, NULL }, /* syntax */
        { "tasks = {\n  translate = {\n    languages = { de = 5; };\n  };\n};\n", 3,
          "language 'de'" },
        { "limits = {\n  max_input_tokens = 3;\n};\n", 2, "max_input_tokens" },
        { "tasks = {\n  text2text = { length_penalty = 1e9; };\n};\n", 2, "out of range" },
    };
    char dir[64];
    tmpdir(dir, sizeof dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], want[600], err[512] = "";
        snprintf(name, sizeof name, "bad%zu.conf", i);
        char *path = write_tmp(dir, name, cases[i].body);
        task_conf *c = task_conf_load(path, err, sizeof err);
        CHECK_MSG(c == NULL, "case %zu loaded", i);
        task_conf_free(&c);
        snprintf(want, sizeof want, "%s:%d: ", path, cases[i].line);
        CHECK_MSG(!strncmp(err, want, strlen(want)), "case %zu: '%s', want prefix '%s'", i, err,
                  want);
        if (cases[i].needle)
            CHECK_MSG(strstr(err, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].needle);
    }
    /* Cross-key and prompt errors name the key's line too. */
    char err[512], want[600];
    char *p =
        write_tmp(dir, "p.conf", "tasks = {\n qa = {\n prompt = \"{question} only\"; }; };\n");
    CHECK(task_conf_load(p, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "%s:3: tasks.qa.prompt: the prompt must contain {context}", p);
    CHECK_MSG(!strcmp(err, want), "'%s', want '%s'", err, want);
    p = write_tmp(dir, "d.conf", "tasks = { translate = {\n default_source = \"xx\"; }; };\n");
    CHECK(task_conf_load(p, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "%s:2: tasks.translate.default_source 'xx'", p);
    CHECK_MSG(!strncmp(err, want, strlen(want)), "'%s', want '%s'", err, want);
    p = write_tmp(dir, "b.conf", "tasks = { max_beams = 4;\n text2text = { num_beams = 5; }; };\n");
    CHECK(task_conf_load(p, err, sizeof err) == NULL);
    /* the range is the options table's, its maximum tasks.max_beams wherever that is set */
    snprintf(want, sizeof want, "%s:2: tasks.text2text.num_beams = 5 is out of range [1, 4]", p);
    CHECK_MSG(!strcmp(err, want), "'%s', want '%s'", err, want);
    p = write_tmp(dir, "m.conf", "tasks = {\n max_beams = 2; };\n");
    CHECK(task_conf_load(p, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "%s:2: tasks.summarize.num_beams (4) exceeds tasks.max_beams (2)",
             p);
    CHECK_MSG(!strcmp(err, want), "'%s', want '%s'", err, want);
    CHECK(task_conf_load("/nonexistent/nlpd.conf", err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "/nonexistent/nlpd.conf"), "%s", err);
}

/* ---- prepare / finish with hand-made engine outputs ---- */

TEST(task_summarize_prompt_and_finish)
{
    fx f;
    fx_init(&f, 512);
    const char *text = "The cat sat on the mat. It was warm.";
    task_input in = input(TASK_SUMMARIZE, text);
    in.opts.return_hypotheses = 1;
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 1 && doc.jobs[0].kind == TASK_JOB_GENERATE);
    int n;
    int32_t *want = enc(&f, "summarize: The cat sat on the mat. It was warm.", 1, &n);
    CHECK(same_ids(doc.jobs[0].ids, doc.jobs[0].n_ids, want, n));
    CHECK(doc.input_tokens == n && !doc.truncated);
    CHECK(doc.jobs[0].params.num_beams == 4 && doc.jobs[0].params.num_return_sequences == 4);
    CHECK(doc.jobs[0].gen.params == &doc.jobs[0].params && doc.jobs[0].gen.n_ids == n);
    free(want);
    fake_gen(&f, &doc.jobs[0], 2, (const char *[]){ "A cat sat.", "The cat." },
             (double[]){ -0.5, -0.9 });
    task_result r;
    REQUIRE(task_finish(&f.env, &in, &doc, &r) == TASK_OK);
    CHECK(r.status == 0 && r.text && !strcmp(r.text, "A cat sat."));
    CHECK(r.score == -0.5);
    int nout;
    free(enc(&f, "A cat sat.", 0, &nout));
    CHECK(r.output_tokens == nout && r.input_tokens == n);
    REQUIRE(r.n_hyps == 2);
    CHECK(!strcmp(r.hyps[1].text, "The cat.") && r.hyps[1].score == -0.9);
    CHECK(doc.jobs == NULL && doc.n_jobs == 0); /* finish released the doc */
    task_result_clear(&r);
    CHECK(r.text == NULL && r.hyps == NULL);
    fx_free(&f);
}

TEST(task_text2text_is_the_prompt)
{
    fx f;
    fx_init(&f, 512);
    task_input in = input(TASK_TEXT2TEXT, "Answer yes or no: is water wet?");
    in.opts.num_beams = 3;
    in.opts.max_new_tokens = 7;
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    int n;
    int32_t *want = enc(&f, in.text, 1, &n);
    CHECK(same_ids(doc.jobs[0].ids, doc.jobs[0].n_ids, want, n));
    CHECK(doc.jobs[0].params.num_beams == 3 && doc.jobs[0].params.max_new_tokens == 7);
    free(want);
    task_doc_clear(&doc);
    CHECK(doc.jobs == NULL);
    fx_free(&f);
}

TEST(task_translate_sentences_in_order)
{
    fx f;
    fx_init(&f, 512);
    task_input in = input(TASK_TRANSLATE, "Hello there. How are you? Fine.");
    in.target_lang = "german";
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 3);
    const char *want_prompts[] = { "translate English to German: Hello there.",
                                   "translate English to German: How are you?",
                                   "translate English to German: Fine." };
    int sum = 0;
    for (int i = 0; i < 3; i++) {
        int n;
        int32_t *want = enc(&f, want_prompts[i], 1, &n);
        CHECK_MSG(same_ids(doc.jobs[i].ids, doc.jobs[i].n_ids, want, n), "sentence %d", i);
        sum += n;
        free(want);
    }
    CHECK(doc.input_tokens == sum);
    fake_gen(&f, &doc.jobs[0], 1, (const char *[]){ "Hallo." }, (double[]){ -1 });
    fake_gen(&f, &doc.jobs[1], 1, (const char *[]){ "Wie geht es dir?" }, (double[]){ -2 });
    fake_gen(&f, &doc.jobs[2], 1, (const char *[]){ "Gut." }, (double[]){ -3 });
    task_result r;
    REQUIRE(task_finish(&f.env, &in, &doc, &r) == TASK_OK);
    CHECK_MSG(r.text && !strcmp(r.text, "Hallo. Wie geht es dir? Gut."), "'%s'", r.text);
    CHECK(fabs(r.score + 2.0) < 1e-12);
    task_result_clear(&r);

    /* source by code, target by code; prompt names both */
    in = input(TASK_TRANSLATE, "Bonjour.");
    in.source_lang = "FR";
    in.target_lang = "ro";
    REQUIRE(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0);
    int n;
    int32_t *want = enc(&f, "translate French to Romanian: Bonjour.", 1, &n);
    CHECK(same_ids(doc.jobs[0].ids, doc.jobs[0].n_ids, want, n));
    free(want);
    task_doc_clear(&doc);

    /* unknown / missing languages */
    in.target_lang = "Klingon";
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "Klingon") && strstr(err, "target"), "%s", err);
    CHECK(doc.jobs == NULL);
    in.target_lang = "de";
    in.source_lang = "xx";
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "source") && strstr(err, "'xx'"), "%s", err);
    in.source_lang = NULL;
    in.target_lang = NULL;
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "target language is required"), "%s", err);
    fx_free(&f);
}

TEST(task_translate_join_and_hypotheses)
{
    /* The joining rule: single spaces, none after a CJK full stop, empty parts skipped. */
    char *buf = NULL;
    size_t len = 0;
    const char *parts[] = { "今日は。", "明日！", "", "Then English.", "End" };
    for (int i = 0; i < 5; i++) REQUIRE(task_join(&buf, &len, parts[i]) == 0);
    CHECK_MSG(buf && !strcmp(buf, "今日は。明日！Then English. End"), "'%s'", buf);
    CHECK(len == strlen(buf));
    free(buf);

    fx f;
    fx_init(&f, 512);
    task_input in = input(TASK_TRANSLATE, "Good morning. Thanks.");
    in.target_lang = "fr";
    in.opts.return_hypotheses = 1;
    in.opts.num_beams = 2;
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 2);
    fake_gen(&f, &doc.jobs[0], 2, (const char *[]){ "Bonjour.", "Salut." }, (double[]){ -1, -2 });
    fake_gen(&f, &doc.jobs[1], 2, (const char *[]){ "Merci.", "Merci bien." },
             (double[]){ -3, -4 });
    task_result r;
    REQUIRE(task_finish(&f.env, &in, &doc, &r) == TASK_OK);
    CHECK_MSG(!strcmp(r.text, "Bonjour. Merci."), "'%s'", r.text);
    REQUIRE(r.n_hyps == 2);
    CHECK_MSG(!strcmp(r.hyps[1].text, "Salut. Merci bien."), "'%s'", r.hyps[1].text);
    CHECK(fabs(r.hyps[1].score + 3.0) < 1e-12);
    int n1, n2;
    free(enc(&f, "Bonjour.", 0, &n1));
    free(enc(&f, "Merci.", 0, &n2));
    CHECK(r.output_tokens == n1 + n2);
    task_result_clear(&r);
    fx_free(&f);
}

/* Fills a scoring job's outputs: the candidate labels' log-likelihoods. */
static void fake_score(task_job *job, const double *lp)
{
    REQUIRE(job->kind == TASK_JOB_SCORE);
    for (int i = 0; i < job->score.n_cands; i++) job->score.logprobs[i] = lp[i];
    job->score.status = 0;
}

TEST(task_classify_probabilities_from_logprobs)
{
    fx f;
    fx_init(&f, 512);
    const char *labels[] = { "sports", "politics", "science fiction" };
    task_input in = input(TASK_CLASSIFY, "The match ended in a draw.");
    in.labels = labels;
    in.n_labels = 3;
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 1);
    task_job *j = &doc.jobs[0];
    CHECK(j->score.n_cands == 3 && j->score.ids == j->ids);
    int n;
    int32_t *want = enc(
        &f, "The match ended in a draw.\nOPTIONS:\n- sports\n- politics\n- science fiction", 1, &n);
    CHECK(same_ids(j->ids, j->n_ids, want, n));
    free(want);
    for (int i = 0; i < 3; i++) { /* labels without EOS */
        int32_t *l = enc(&f, labels[i], 0, &n);
        CHECK_MSG(same_ids(j->score.cand_ids[i], j->score.cand_lens[i], l, n), "label %d", i);
        free(l);
    }
    fake_score(j, (double[]){ -3.0, -1.0, -2.0 });
    task_result r;
    REQUIRE(task_finish(&f.env, &in, &doc, &r) == TASK_OK);
    REQUIRE(r.n_labels == 3);
    double z = exp(-3.0) + exp(-1.0) + exp(-2.0);
    CHECK(!strcmp(r.labels[0].label, "politics") &&
          fabs(r.labels[0].score - exp(-1.0) / z) < 1e-12);
    CHECK(!strcmp(r.labels[1].label, "science fiction"));
    CHECK(!strcmp(r.labels[2].label, "sports") && fabs(r.labels[2].score - exp(-3.0) / z) < 1e-12);
    CHECK(!strcmp(r.text, "politics") && r.score == r.labels[0].score);
    CHECK(r.output_tokens == 0 && r.input_tokens > 0);
    task_result_clear(&r);

    /* multi-label: the contrast label is the last candidate of the same encoder pass */
    in.multi_label = 1;
    REQUIRE(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0);
    REQUIRE(doc.n_jobs == 1 && doc.jobs[0].score.n_cands == 4);
    int32_t *none = enc(&f, "none", 0, &n);
    CHECK(same_ids(doc.jobs[0].score.cand_ids[3], doc.jobs[0].score.cand_lens[3], none, n));
    free(none);
    fake_score(&doc.jobs[0], (double[]){ -3.0, -1.0, -2.0, -2.0 });
    REQUIRE(task_finish(&f.env, &in, &doc, &r) == TASK_OK);
    REQUIRE(r.n_labels == 3);
    CHECK(!strcmp(r.labels[0].label, "politics") &&
          fabs(r.labels[0].score - 1 / (1 + exp(-1.0))) < 1e-12);
    CHECK(!strcmp(r.labels[1].label, "science fiction") && fabs(r.labels[1].score - 0.5) < 1e-12);
    CHECK(fabs(r.labels[2].score - 1 / (1 + exp(1.0))) < 1e-12);
    task_result_clear(&r);
    fx_free(&f);
}

TEST(task_classify_many_labels_split_jobs)
{
    fx f;
    fx_init(&f, 512);
    f.conf->labels_per_job = 2;
    const char *labels[] = { "a", "b", "c", "d", "e" };
    task_input in = input(TASK_CLASSIFY, "text");
    in.labels = labels;
    in.n_labels = 5;
    in.multi_label = 1; /* 6 candidates -> 3 jobs of 2 */
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 3);
    CHECK(doc.input_tokens == doc.jobs[0].n_ids); /* counted once */
    for (int i = 0; i < 3; i++) {
        CHECK(doc.jobs[i].score.n_cands == 2);
        CHECK(same_ids(doc.jobs[i].ids, doc.jobs[i].n_ids, doc.jobs[0].ids, doc.jobs[0].n_ids));
        CHECK(doc.jobs[i].ids != doc.jobs[0].ids || i == 0);
    }
    fake_score(&doc.jobs[0], (double[]){ -5, -1 });
    fake_score(&doc.jobs[1], (double[]){ -4, -3 });
    fake_score(&doc.jobs[2], (double[]){ -2, -3 }); /* e, then the contrast */
    task_result r;
    REQUIRE(task_finish(&f.env, &in, &doc, &r) == TASK_OK);
    REQUIRE(r.n_labels == 5);
    CHECK(!strcmp(r.labels[0].label, "b") && !strcmp(r.labels[1].label, "e"));
    CHECK(!strcmp(r.labels[2].label, "d") && fabs(r.labels[2].score - 0.5) < 1e-12);
    CHECK(!strcmp(r.labels[4].label, "a"));
    task_result_clear(&r);
    fx_free(&f);
}

TEST(task_classify_bad_labels)
{
    fx f;
    fx_init(&f, 512);
    task_input in = input(TASK_CLASSIFY, "Some text.");
    task_doc doc;
    char err[256];
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "no labels"), "%s", err);
    const char *empty[] = { "ok", "  " };
    in.labels = empty;
    in.n_labels = 2;
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "label 2 is empty"), "%s", err);
    const char *dup[] = { "x", "y", " x " };
    in.labels = dup;
    in.n_labels = 3;
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "label 'x' is given twice"), "%s", err);
    f.conf->max_label_tokens = 2;
    const char *longl[] = { "a rather long label indeed" };
    in.labels = longl;
    in.n_labels = 1;
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "tokens"), "%s", err);
    CHECK(doc.jobs == NULL && doc.priv == NULL);
    fx_free(&f);
}

TEST(task_qa_single_and_chunked)
{
    fx f;
    fx_init(&f, 512);
    task_input in = input(TASK_QA, "Paris is the capital of France.");
    in.question = "What is the capital of France?";
    task_doc doc;
    char err[256];
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 1);
    int n;
    int32_t *want =
        enc(&f, "question: What is the capital of France? context: Paris is the capital of France.",
            1, &n);
    CHECK(same_ids(doc.jobs[0].ids, doc.jobs[0].n_ids, want, n));
    free(want);
    task_doc_clear(&doc);

    /* A long context over a small limit: chunks, each within the limit, each the
     * question prefix + a slice of the context + EOS, slices overlapping and covering. */
    char ctx[4096] = "";
    for (int i = 0; i < 60; i++) {
        char s[64];
        snprintf(s, sizeof s, "Sentence number %d talks about item %d. ", i, i * 7);
        strcat(ctx, s);
    }
    fx g;
    fx_init(&g, 96);
    g.conf->qa_overlap = 16;
    in = input(TASK_QA, ctx);
    in.question = "Which item?";
    REQUIRE_MSG(task_prepare(&g.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE_MSG(doc.n_jobs >= 3, "%d chunks", doc.n_jobs);
    int np, nc;
    int32_t *pre = enc(&g, "question: Which item? context:", 0, &np);
    int32_t *all = enc(&g, ctx, 0, &nc);
    int covered = 0, sum = 0, prev_start = -1;
    for (int i = 0; i < doc.n_jobs; i++) {
        task_job *j = &doc.jobs[i];
        CHECK(j->n_ids <= 96 && j->ids[j->n_ids - 1] == 1);
        CHECK(same_ids(j->ids, np, pre, np));
        sum += j->n_ids;
        /* find this slice in the context ids */
        int len = j->n_ids - np - 1, at = -1;
        for (int s = prev_start + 1; s + len <= nc && at < 0; s++)
            if (!memcmp(all + s, j->ids + np, (size_t)len * sizeof *all)) at = s;
        REQUIRE_MSG(at >= 0, "chunk %d is not a slice of the context", i);
        CHECK_MSG(at <= covered, "gap before chunk %d", i);
        if (i) CHECK_MSG(covered - at >= 16, "chunk %d overlaps by %d", i, covered - at);
        covered = at + len;
        prev_start = at;
    }
    CHECK(covered == nc);
    CHECK(doc.input_tokens == sum && !doc.truncated);
    free(pre);
    free(all);
    /* The best-scoring chunk's answer wins. */
    for (int i = 0; i < doc.n_jobs; i++) {
        char a[32];
        snprintf(a, sizeof a, "item %d", i);
        const char *t[] = { a };
        fake_gen(&g, &doc.jobs[i], 1, t, (double[]){ i == 2 ? -0.25 : -1.0 - i });
    }
    task_result r;
    REQUIRE(task_finish(&g.env, &in, &doc, &r) == TASK_OK);
    CHECK_MSG(!strcmp(r.text, "item 2") && r.score == -0.25, "'%s' %g", r.text, r.score);
    task_result_clear(&r);

    /* a question that leaves no room for context */
    char q[2048] = "";
    for (int i = 0; i < 40; i++) strcat(q, "why and how ");
    in.question = q;
    CHECK(task_prepare(&g.env, &in, &doc, err, sizeof err) == TASK_ETOOLONG);
    CHECK_MSG(strstr(err, "question"), "%s", err);
    in.question = " ";
    CHECK(task_prepare(&g.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    fx_free(&g);
    fx_free(&f);
}

/* qa's chunks through the tokenizer interface (tok_word_start, tok_specials) are the
 * ones it built from SentencePiece pieces before: word starts are pieces beginning with
 * U+2581, a chunk is prefix + context slice + suffix + EOS. Rebuilt here the old way and
 * compared id for id, on a tokenizer opened from a model directory. */
TEST(task_qa_chunks_as_from_pieces)
{
    fx g;
    fx_init(&g, 80);
    char err[256];
    tok_free(&g.tok);
    g.tok = tok_open_dir(th_data("models/tiny-flan"), err, sizeof err);
    REQUIRE_MSG(g.tok, "tok_open_dir: %s", err);
    g.env.tok = g.tok;
    g.conf->qa_overlap = 12;
    char ctx[8192] = "";
    const char *parts[] = { "Die Brücke über den Fluss wurde 1887 gebaut. ",
                            "Unbelievably, the re-opening (scheduled for 2025) slipped again. ",
                            "東京の人口は多い。", "C'est l'été à Montréal, n'est-ce pas? ",
                            "x <extra_id_4> y " };
    for (int i = 0; i < 40; i++) strcat(ctx, parts[i % 5]);
    task_input in = input(TASK_QA, ctx);
    in.question = "When was the bridge built?";
    task_doc doc;
    REQUIRE_MSG(task_prepare(&g.env, &in, &doc, err, sizeof err) == 0, "%s", err);

    /* The old way. */
    const char *tmpl = g.conf->spec[TASK_QA].prompt;
    const char *at = strstr(tmpl, "{context}");
    REQUIRE(at && !at[strlen("{context}")]); /* the default prompt ends with it */
    char *pre_t = strndup(tmpl, (size_t)(at - tmpl));
    static const char *const names[] = { "question" };
    const char *vals[] = { in.question };
    size_t lens[] = { strlen(in.question) }, plen;
    char *pre = task_fill(pre_t, names, vals, lens, 1, &plen);
    REQUIRE(pre);
    int np, nc;
    int32_t *pre_ids = enc(&g, pre, 0, &np), *ctx_ids = enc(&g, ctx, 0, &nc);
    uint8_t *ws = malloc((size_t)nc + 1);
    REQUIRE(ws);
    int differ = 0;
    for (int i = 0; i < nc; i++) {
        const char *piece = tok_piece(g.tok, ctx_ids[i]);
        ws[i] = piece && !strncmp(piece, "\xe2\x96\x81", 3);
        differ += ws[i] != tok_word_start(g.tok, ctx_ids[i]);
    }
    ws[nc] = 1;
    CHECK(differ == 0);
    int window = 80 - np - 0 - 1;
    int overlap = g.conf->qa_overlap < window / 2 ? g.conf->qa_overlap : window / 2;
    task_span *ch = NULL;
    int k = task_qa_chunks(nc, window, overlap, ws, &ch);
    REQUIRE(k >= 3);
    CHECK_MSG(doc.n_jobs == k, "%d jobs, %d chunks the old way", doc.n_jobs, k);
    for (int c = 0; c < k && c < doc.n_jobs; c++) {
        int n = np + (int)ch[c].len + 1;
        int32_t *want = malloc((size_t)n * sizeof *want);
        REQUIRE(want);
        memcpy(want, pre_ids, (size_t)np * sizeof *want);
        memcpy(want + np, ctx_ids + ch[c].off, ch[c].len * sizeof *want);
        want[n - 1] = 1;
        CHECK_MSG(same_ids(doc.jobs[c].ids, doc.jobs[c].n_ids, want, n), "chunk %d differs", c);
        free(want);
    }
    free(ch);
    free(ws);
    free(pre_ids);
    free(ctx_ids);
    free(pre);
    free(pre_t);
    task_doc_clear(&doc);
    fx_free(&g);
}

TEST(task_empty_text_is_einval)
{
    fx f;
    fx_init(&f, 512);
    const char *labels[] = { "a" };
    for (int k = 1; k < TASK_N_KINDS; k++) {
        const char *texts[] = { "", "  \n\t ", NULL };
        for (int t = 0; t < 3; t++) {
            task_input in = input((task_kind)k, texts[t]);
            in.target_lang = "de";
            in.labels = labels;
            in.n_labels = 1;
            in.question = "why?";
            task_doc doc;
            char err[256] = "";
            CHECK_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL, "%s text %d",
                      task_kind_name((task_kind)k), t);
            CHECK_MSG(strstr(err, "empty"), "%s: '%s'", task_kind_name((task_kind)k), err);
        }
    }
    task_input in = input(TASK_NONE, "x");
    task_doc doc;
    char err[128];
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    in = input(TASK_TEXT2TEXT, "bad \xff utf-8");
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "UTF-8"), "%s", err);
    fx_free(&f);
}

TEST(task_overlong_input_truncates_or_fails)
{
    fx f;
    fx_init(&f, 32);
    char text[4096] = "";
    for (int i = 0; i < 50; i++) strcat(text, "Alpha beta gamma delta. ");
    const char *labels[] = { "greek", "latin" };
    task_kind kinds[] = { TASK_SUMMARIZE, TASK_TEXT2TEXT, TASK_CLASSIFY };
    for (int k = 0; k < 3; k++) {
        task_input in = input(kinds[k], text);
        in.labels = labels;
        in.n_labels = 2;
        task_doc doc;
        char err[256];
        REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
        CHECK(doc.truncated == 1);
        /* cut to the limit, and not much below it (a prefix one character longer would
         * not fit) */
        CHECK_MSG(doc.jobs[0].n_ids <= 32 && doc.jobs[0].n_ids >= 28, "%s: %d ids",
                  task_kind_name(kinds[k]), doc.jobs[0].n_ids);
        CHECK(doc.jobs[0].ids[doc.jobs[0].n_ids - 1] == 1);
        if (kinds[k] == TASK_CLASSIFY) { /* the prompt's end (the options) survives */
            int n;
            int32_t *tail = enc(&f, "OPTIONS:\n- greek\n- latin", 1, &n);
            int m = doc.jobs[0].n_ids;
            CHECK(m > n && same_ids(doc.jobs[0].ids + m - n + 1, n - 1, tail + 1, n - 1));
            free(tail);
        }
        task_doc_clear(&doc);
    }
    f.conf->truncate = 0;
    task_input in = input(TASK_SUMMARIZE, text);
    task_doc doc;
    char err[256];
    CHECK(task_prepare(&f.env, &in, &doc, err, sizeof err) == TASK_ETOOLONG);
    CHECK_MSG(strstr(err, "over the limit of 32"), "%s", err);
    /* translate: each sentence is short, so no truncation is needed at all */
    in = input(TASK_TRANSLATE, text);
    in.target_lang = "de";
    REQUIRE_MSG(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0, "%s", err);
    CHECK(doc.n_jobs == 50 && !doc.truncated);
    task_doc_clear(&doc);
    fx_free(&f);
}

TEST(task_engine_failure_is_reported)
{
    fx f;
    fx_init(&f, 512);
    task_input in = input(TASK_SUMMARIZE, "Some text.");
    task_doc doc;
    char err[256];
    REQUIRE(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0);
    doc.jobs[0].gen.status = ENG_ETOOLONG;
    task_result r;
    CHECK(task_finish(&f.env, &in, &doc, &r) == TASK_ETOOLONG);
    CHECK(r.status == TASK_ETOOLONG && r.message[0] && r.text == NULL && r.input_tokens > 0);
    task_result_clear(&r);
    REQUIRE(task_prepare(&f.env, &in, &doc, err, sizeof err) == 0);
    /* ran "fine" but returned nothing */
    CHECK(task_finish(&f.env, &in, &doc, &r) == TASK_EINTERNAL);
    CHECK_MSG(strstr(r.message, "no hypothesis"), "%s", r.message);
    task_result_clear(&r);
    fx_free(&f);
}

/* ---- real runs on tiny-flan: the task result equals the engine's own output ---- */

typedef struct rig {
    fx f;
    eng_model *model;
    eng_ctx *ctx;
} rig;

static void rig_init(rig *r, int max_input_tokens)
{
    char err[256];
    fx_init(&r->f, max_input_tokens);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = 1;
    r->model = eng_model_load(th_data("models/tiny-flan"), &mp, err, sizeof err);
    REQUIRE_MSG(r->model, "%s", err);
    eng_ctx_params cp = task_conf_ctx_params(r->f.conf);
    r->ctx = eng_ctx_new(r->model, &cp, err, sizeof err);
    REQUIRE_MSG(r->ctx, "%s", err);
    r->f.env.model = eng_model_config(r->model);
}

static void rig_free(rig *r)
{
    eng_ctx_free(&r->ctx);
    eng_model_free(&r->model);
    fx_free(&r->f);
}

/* prepare, run every job (generate jobs as one batch), finish. */
static int rig_run(rig *r, const task_input *in, task_result *out)
{
    task_doc doc;
    char err[256];
    int rc = task_prepare(&r->f.env, in, &doc, err, sizeof err);
    REQUIRE_MSG(rc == 0, "prepare: %s", err);
    eng_gen_req reqs[64];
    int n = 0;
    for (int i = 0; i < doc.n_jobs; i++) {
        if (doc.jobs[i].kind == TASK_JOB_SCORE) {
            REQUIRE(eng_score(r->ctx, &doc.jobs[i].score, 1) == 0);
        } else {
            REQUIRE(n < 64);
            reqs[n++] = doc.jobs[i].gen;
        }
    }
    if (n) REQUIRE(eng_generate(r->ctx, reqs, n) == 0);
    for (int i = 0, k = 0; i < doc.n_jobs; i++)
        if (doc.jobs[i].kind == TASK_JOB_GENERATE) doc.jobs[i].gen.status = reqs[k++].status;
    return task_finish(&r->f.env, in, &doc, out);
}

/* The engine's best hypothesis for a prompt, decoded. */
static char *direct(rig *r, const char *prompt, const eng_gen_params *p, double *score)
{
    int n;
    int32_t *ids = enc(&r->f, prompt, 1, &n);
    eng_gen_result res = { 0 };
    eng_gen_req q = { .ids = ids, .n_ids = n, .params = p, .out = &res };
    REQUIRE(eng_generate(r->ctx, &q, 1) == 0 && q.status == 0 && res.n_hyps >= 1);
    char *t = task_hyp_text(r->f.tok, &res.hyps[0], NULL);
    *score = res.hyps[0].score;
    eng_gen_result_clear(&res);
    free(ids);
    return t;
}

TEST_TIMEOUT(task_real_summarize_and_text2text, 120)
{
    rig r;
    rig_init(&r, 512);
    const char *text =
        "The city council met on Monday to discuss the new park. Residents asked for more trees.";
    task_input in = input(TASK_SUMMARIZE, text);
    in.opts.max_new_tokens = 12;
    task_result res;
    REQUIRE(rig_run(&r, &in, &res) == TASK_OK);
    eng_gen_params p;
    char err[128];
    REQUIRE(task_gen_params(r.f.conf, TASK_SUMMARIZE, &in.opts, &p, err, sizeof err) == 0);
    char prompt[512];
    snprintf(prompt, sizeof prompt, "summarize: %s", text);
    double score;
    char *want = direct(&r, prompt, &p, &score);
    CHECK_MSG(!strcmp(res.text, want), "'%s' vs '%s'", res.text, want);
    CHECK(res.score == score && res.output_tokens >= 1 && res.output_tokens <= 12);
    free(want);
    task_result_clear(&res);

    in = input(TASK_TEXT2TEXT, "Answer the question: what is two plus two?");
    in.opts.max_new_tokens = 6;
    in.opts.num_beams = 3;
    in.opts.return_hypotheses = 1;
    REQUIRE(rig_run(&r, &in, &res) == TASK_OK);
    REQUIRE(res.n_hyps == 3);
    CHECK(res.hyps[0].score >= res.hyps[1].score && res.hyps[1].score >= res.hyps[2].score);
    CHECK(!strcmp(res.text, res.hyps[0].text) && res.score == res.hyps[0].score);
    task_result_clear(&res);
    rig_free(&r);
}

TEST_TIMEOUT(task_real_translate, 120)
{
    rig r;
    rig_init(&r, 512);
    task_input in = input(TASK_TRANSLATE, "The house is small. The garden is big.");
    in.target_lang = "German";
    in.opts.max_new_tokens = 8;
    in.opts.num_beams = 2;
    task_result res;
    REQUIRE(rig_run(&r, &in, &res) == TASK_OK);
    eng_gen_params p;
    char err[128];
    REQUIRE(task_gen_params(r.f.conf, TASK_TRANSLATE, &in.opts, &p, err, sizeof err) == 0);
    double s1, s2;
    char *a = direct(&r, "translate English to German: The house is small.", &p, &s1);
    char *b = direct(&r, "translate English to German: The garden is big.", &p, &s2);
    char *want = NULL;
    size_t len = 0;
    REQUIRE(task_join(&want, &len, a) == 0 && task_join(&want, &len, b) == 0);
    CHECK_MSG(want && !strcmp(res.text, want), "'%s' vs '%s'", res.text, want);
    /* Batched (the task's two sentences together) and single runs differ in float
     * rounding only: the text is the same, the score to ~1e-6. */
    CHECK_MSG(fabs(res.score - (s1 + s2) / 2) < 1e-4, "%.17g vs %.17g (%g %g)", res.score,
              (s1 + s2) / 2, s1, s2);
    free(a);
    free(b);
    free(want);
    task_result_clear(&res);
    rig_free(&r);
}

TEST_TIMEOUT(task_real_classify, 120)
{
    rig r;
    rig_init(&r, 512);
    const char *labels[] = { "positive", "negative", "neutral" };
    task_input in = input(TASK_CLASSIFY, "I loved this film, it was wonderful.");
    in.labels = labels;
    in.n_labels = 3;
    task_result res;
    REQUIRE(rig_run(&r, &in, &res) == TASK_OK);
    REQUIRE(res.n_labels == 3);
    double sum = 0;
    for (int i = 0; i < 3; i++) sum += res.labels[i].score;
    CHECK(fabs(sum - 1) < 1e-9);
    CHECK(res.labels[0].score >= res.labels[1].score && res.labels[1].score >= res.labels[2].score);
    /* the same numbers straight from eng_score */
    int n, nl[3];
    int32_t *ids = enc(
        &r.f, "I loved this film, it was wonderful.\nOPTIONS:\n- positive\n- negative\n- neutral",
        1, &n);
    int32_t *li[3];
    for (int i = 0; i < 3; i++) li[i] = enc(&r.f, labels[i], 0, &nl[i]);
    double lp[3], pr[3];
    eng_score_req q = { ids, n, 3, (const int32_t *const *)li, nl, lp, 0 };
    REQUIRE(eng_score(r.ctx, &q, 1) == 0 && q.status == 0);
    task_label_probs(lp, 3, 0, 0, pr);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (!strcmp(res.labels[i].label, labels[j]))
                CHECK_MSG(fabs(res.labels[i].score - pr[j]) < 1e-12, "%s", labels[j]);
    for (int i = 0; i < 3; i++) free(li[i]);
    free(ids);
    task_result_clear(&res);

    in.multi_label = 1;
    REQUIRE(rig_run(&r, &in, &res) == TASK_OK);
    REQUIRE(res.n_labels == 3);
    for (int i = 0; i < 3; i++) CHECK(res.labels[i].score > 0 && res.labels[i].score < 1);
    task_result_clear(&res);
    rig_free(&r);
}

TEST_TIMEOUT(task_real_qa_chunked, 120)
{
    rig r;
    rig_init(&r, 64);
    r.f.conf->qa_overlap = 8;
    r.f.conf->qa_min_chunk = 16;
    char ctx[2048] = "";
    for (int i = 0; i < 12; i++) {
        char s[80];
        snprintf(s, sizeof s, "Room %d of the museum shows paintings from year %d. ", i,
                 1800 + i * 9);
        strcat(ctx, s);
    }
    task_input in = input(TASK_QA, ctx);
    in.question = "Which room shows 1863?";
    in.opts.max_new_tokens = 5;
    task_doc doc;
    char err[256];
    REQUIRE(task_prepare(&r.f.env, &in, &doc, err, sizeof err) == 0);
    int chunks = doc.n_jobs;
    task_doc_clear(&doc);
    REQUIRE_MSG(chunks >= 2, "%d chunks", chunks);
    task_result res;
    REQUIRE(rig_run(&r, &in, &res) == TASK_OK);
    CHECK(res.text != NULL && res.output_tokens <= 5 && !res.truncated);
    CHECK(isfinite(res.score) && res.score <= 0);
    task_result_clear(&res);
    rig_free(&r);
}
