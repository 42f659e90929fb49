/* Task configuration: the `tasks` group of a libconfig file (conf/tasks.conf, included by
 * conf/nlpd.conf), plus limits.max_input_tokens / limits.max_new_tokens when present.
 * nlpd reads its file once (common/cm_conf.h) and hands the parsed file to both the
 * daemon's reader and task_conf_from(); nlprun and tests use task_conf_load(path).
 *
 * Table-driven like Redis' config: every scalar key has a type, a range and a default;
 * a key out of range, of the wrong type or unknown is an error naming file:line, so a
 * typo never silently falls back to a default. The decoding keys' names, types and ranges
 * are the decoding options' table (tasks/opts.c), which requests and nlprun are checked
 * against too. The built-in defaults (task_conf_default) are what an empty `tasks` group
 * gives; conf/tasks.conf spells them all out. */
#include "tasks/task_int.h"

#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cm_conf.h"

enum key_type { K_INT = 1, K_FLOAT, K_BOOL, K_STR, K_I64 };

typedef struct conf_key {
    const char *group;    /* under `tasks`: "" (the group itself), "summarize", ... */
    const char *name;     /* NULL for a decoding option: the table's name */
    int type;             /* 0 for a decoding option: from the table */
    size_t off;           /* in struct task_conf */
    size_t size;          /* K_STR: buffer size */
    double min, max, def; /* a decoding option: def only, NAN for the table's */
    const char *sdef;
    unsigned bit; /* decoding key: its ENG_GEN_SET_* bit (operator-set tracking) */
    int opt;      /* a decoding option: its task_opt_id + 1 (tasks/opts.c) */
} conf_key;

#define OFF(f) offsetof(struct task_conf, f)
#define SZ(f) sizeof(((struct task_conf *)0)->f)
#define KI(g, n, f, mn, mx, d)                        \
    {                                                 \
        g, n, K_INT, OFF(f), 0, mn, mx, d, NULL, 0, 0 \
    }
#define KB(g, n, f, d)                               \
    {                                                \
        g, n, K_BOOL, OFF(f), 0, 0, 1, d, NULL, 0, 0 \
    }
#define KS(g, n, f, d)                               \
    {                                                \
        g, n, K_STR, OFF(f), SZ(f), 0, 0, 0, d, 0, 0 \
    }
/* A decoding option of task k: name, type and range from the table (tasks/opts.c), the
 * default d (NAN: the table's). With an ENG_GEN_SET_* bit b, a key the checkpoint may
 * state too: the file setting one puts it above the checkpoint's value. */
#define KO(g, k, id, f, d, b)                                         \
    {                                                                 \
        g, NULL, 0, OFF(spec[k].dec.f), 0, 0, 0, d, NULL, b, (id) + 1 \
    }

/* The decoding keys every generating task has; defaults differ per task. */
#define DEC_KEYS(g, k, pr, maxnew, minnew, beams, lp, norep)                               \
    KS(g, "prompt", spec[k].prompt, pr),                                                   \
        KO(g, k, TASK_OPT_MAX_NEW_TOKENS, max_new_tokens, maxnew, ENG_GEN_SET_MAX_NEW),    \
        KO(g, k, TASK_OPT_MIN_NEW_TOKENS, min_new_tokens, minnew, ENG_GEN_SET_MIN_NEW),    \
        KO(g, k, TASK_OPT_NUM_BEAMS, num_beams, beams, ENG_GEN_SET_BEAMS),                 \
        KO(g, k, TASK_OPT_NUM_RETURN_SEQUENCES, num_return_sequences, NAN, 0),             \
        KO(g, k, TASK_OPT_LENGTH_PENALTY, length_penalty, lp, ENG_GEN_SET_LENGTH_PENALTY), \
        KO(g, k, TASK_OPT_NO_REPEAT_NGRAM_SIZE, no_repeat_ngram_size, norep,               \
           ENG_GEN_SET_NO_REPEAT),                                                         \
        KO(g, k, TASK_OPT_REPETITION_PENALTY, repetition_penalty, NAN,                     \
           ENG_GEN_SET_REPETITION_PENALTY),                                                \
        KO(g, k, TASK_OPT_DO_SAMPLE, do_sample, NAN, 0),                                   \
        KO(g, k, TASK_OPT_TEMPERATURE, temperature, NAN, 0),                               \
        KO(g, k, TASK_OPT_TOP_K, top_k, NAN, 0), KO(g, k, TASK_OPT_TOP_P, top_p, NAN, 0),  \
        KO(g, k, TASK_OPT_SEED, seed, NAN, 0)

static const conf_key keys[] = {
    KB("", "truncate", truncate, 1),
    KI("", "max_beams", max_beams, 1, TASK_MAX_BEAMS, 16),
    KS("", "prompt_model_types", prompted_types, "t5 mt5 umt5 longt5"),
    DEC_KEYS("summarize", TASK_SUMMARIZE, "summarize: {text}", 128, 10, 4, 2.0, 3),
    DEC_KEYS("translate", TASK_TRANSLATE, "translate {source} to {target}: {text}", 128, 0, 4, 1.0,
             0),
    KS("translate", "default_source", default_source, "en"),
    KS("classify", "prompt", spec[TASK_CLASSIFY].prompt, "{text}\nOPTIONS:\n- {labels}"),
    KS("classify", "label_separator", label_separator, "\n- "),
    KS("classify", "multi_label_contrast", contrast_label, "none"),
    KS("classify", "hypothesis_template", hypothesis_template, "This example is {}."),
    KI("classify", "labels_per_job", labels_per_job, 1, 4096, 64),
    KI("classify", "max_label_tokens", max_label_tokens, 1, 1024, 31),
    DEC_KEYS("qa", TASK_QA, "question: {question} context: {context}", 32, 0, 4, 1.0, 0),
    KI("qa", "chunk_overlap", qa_overlap, 0, 4096, 64),
    KI("qa", "min_chunk_tokens", qa_min_chunk, 1, 4096, 32),
    DEC_KEYS("text2text", TASK_TEXT2TEXT, "{text}", 64, 0, 1, 1.0, 0),
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* The subgroups of `tasks` and the keys handled outside the table. */
static const char *const subgroups[] = { "summarize", "translate", "classify", "qa", "text2text" };

static const struct {
    const char *code;
    const char *name;
} builtin_langs[] = {
    { "en", "English" },   { "de", "German" },  { "fr", "French" },     { "ro", "Romanian" },
    { "es", "Spanish" },   { "it", "Italian" }, { "pt", "Portuguese" }, { "nl", "Dutch" },
    { "ru", "Russian" },   { "zh", "Chinese" }, { "ja", "Japanese" },   { "ko", "Korean" },
    { "ar", "Arabic" },    { "hi", "Hindi" },   { "pl", "Polish" },     { "sv", "Swedish" },
    { "tr", "Turkish" },   { "cs", "Czech" },   { "fi", "Finnish" },    { "el", "Greek" },
    { "uk", "Ukrainian" },
};

/* Words whose trailing '.' does not end a sentence (case-sensitive, no '.'). */
static const char *const builtin_abbrevs[] = {
    "Mr",  "Mrs",  "Ms",  "Dr",   "Prof", "Sr",  "Jr",  "St",  "vs",  "etc", "No",
    "Inc", "Ltd",  "Co",  "Corp", "Jan",  "Feb", "Mar", "Apr", "Jun", "Jul", "Aug",
    "Sep", "Sept", "Oct", "Nov",  "Dec",  "Gen", "Gov", "Sen", "Rep", "Mt",  "approx",
    "cf",  "al",   "Fig", "Nr",   "Hr",   "Fr",  "bzw", "usw", "Mme",
};

static void *field(struct task_conf *c, const conf_key *k) { return (char *)c + k->off; }

/* A key's type and name: a decoding option's come from the table. */
static int key_type(const conf_key *k)
{
    if (!k->opt) return k->type;
    switch (task_opt(k->opt - 1)->type) {
    case TASK_OPT_FLOAT: return K_FLOAT;
    case TASK_OPT_I64: return K_I64;
    case TASK_OPT_BOOL: return K_BOOL;
    default: return K_INT;
    }
}

static const char *key_name(const conf_key *k)
{
    return k->opt ? task_opt(k->opt - 1)->name : k->name;
}

static void set_defaults(struct task_conf *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        const conf_key *k = &keys[i];
        double def = k->opt && isnan(k->def) ? task_opt(k->opt - 1)->def : k->def;
        switch (key_type(k)) {
        case K_INT:
        case K_BOOL: *(int *)field(c, k) = (int)def; break;
        case K_FLOAT: *(double *)field(c, k) = def; break;
        case K_I64: *(long long *)field(c, k) = (long long)def; break;
        case K_STR: snprintf(field(c, k), k->size, "%s", k->sdef); break;
        }
    }
    c->max_input_tokens = 512;
    c->max_new_tokens_limit = 256;
    /* Classify generates nothing; its spec only carries the prompt. */
}

static int set_builtin_lists(struct task_conf *c)
{
    int nl = (int)(sizeof builtin_langs / sizeof builtin_langs[0]);
    int na = (int)(sizeof builtin_abbrevs / sizeof builtin_abbrevs[0]);
    c->langs = calloc((size_t)nl, sizeof *c->langs);
    c->abbrevs = calloc((size_t)na, sizeof *c->abbrevs);
    if (!c->langs || !c->abbrevs) return -1;
    for (int i = 0; i < nl; i++) {
        snprintf(c->langs[i].code, sizeof c->langs[i].code, "%s", builtin_langs[i].code);
        snprintf(c->langs[i].names[0], sizeof c->langs[i].names[0], "%s", builtin_langs[i].name);
        c->langs[i].n_names = 1;
    }
    c->n_langs = nl;
    for (int i = 0; i < na; i++)
        snprintf(c->abbrevs[i], sizeof c->abbrevs[i], "%s", builtin_abbrevs[i]);
    c->n_abbrevs = na;
    return 0;
}

static void free_lists(struct task_conf *c)
{
    free(c->langs);
    free(c->abbrevs);
    c->langs = NULL;
    c->abbrevs = NULL;
    c->n_langs = c->n_abbrevs = 0;
}

void task_conf_free(task_conf **conf)
{
    if (!conf || !*conf) return;
    free_lists(*conf);
    free(*conf);
    *conf = NULL;
}

/* Placeholders each prompt may use; the first is required. */
static const char *const ph_text[] = { "text" };
static const char *const ph_translate[] = { "text", "source", "target" };
static const char *const ph_classify[] = { "text", "labels" };
static const char *const ph_qa[] = { "context", "question" };

/* 0, or the task_kind whose prompt is bad, with the reason in err. */
static int check_prompts(const struct task_conf *c, char *err, size_t errlen)
{
    static const struct {
        task_kind k;
        const char *const *ph;
        int n;
    } t[] = {
        { TASK_SUMMARIZE, ph_text, 1 },    { TASK_TRANSLATE, ph_translate, 3 },
        { TASK_CLASSIFY, ph_classify, 2 }, { TASK_QA, ph_qa, 2 },
        { TASK_TEXT2TEXT, ph_text, 1 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char why[200];
        if (!task_template_check(c->spec[t[i].k].prompt, t[i].ph, t[i].n, t[i].ph[0], why,
                                 sizeof why)) {
            snprintf(err, errlen, "tasks.%s.prompt: %s", task_kind_name(t[i].k), why);
            return t[i].k;
        }
    }
    /* The zero-shot pipeline formats the template with the label: exactly one {}. */
    const char *h = strstr(c->hypothesis_template, "{}");
    if (!h || strstr(h + 2, "{}")) {
        snprintf(err, errlen,
                 "tasks.classify.hypothesis_template: it must contain {} once "
                 "(the label)");
        return TASK_CLASSIFY;
    }
    /* qa chunking splits the prompt around its one {context}. */
    const char *q = strstr(c->spec[TASK_QA].prompt, "{context}");
    if (q && strstr(q + 1, "{context}")) {
        snprintf(err, errlen, "tasks.qa.prompt: {context} may appear only once");
        return TASK_QA;
    }
    return 0;
}

task_conf *task_conf_default(void)
{
    struct task_conf *c = malloc(sizeof *c);
    if (!c) return NULL;
    set_defaults(c);
    if (set_builtin_lists(c) < 0) {
        task_conf_free(&c);
        return NULL;
    }
    return c;
}

/* "file:line: " of a setting, into err; returns the length written. */
static size_t where(const config_setting_t *s, const char *fallback, char *err, size_t errlen)
{
    const char *file = config_setting_source_file(s);
    int n = snprintf(err, errlen, "%s:%u: ", file ? file : fallback, config_setting_source_line(s));
    return n < 0 ? 0 : (size_t)n < errlen ? (size_t)n : errlen - 1;
}

/* Writes "file:line: reason" for setting s into err. */
static void __attribute__((format(printf, 5, 6)))
errat(const config_setting_t *s, const char *path, char *err, size_t errlen, const char *fmt, ...)
{
    size_t at = where(s, path, err, errlen);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + at, errlen - at, fmt, ap);
    va_end(ap);
}

/* "file:line: " of a key when the file sets it, else "file: "; returns the length. */
static size_t where_key(const config_t *cfg, const char *key, const char *path, char *err,
                        size_t errlen)
{
    const config_setting_t *s = config_lookup(cfg, key);
    if (s) return where(s, path, err, errlen);
    int n = snprintf(err, errlen, "%s: ", path);
    return n < 0 ? 0 : (size_t)n < errlen ? (size_t)n : errlen - 1;
}

static const conf_key *find_key(const char *group, const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].group, group) && !strcmp(key_name(&keys[i]), name)) return &keys[i];
    return NULL;
}

/* Whether v is in k's range; a decoding option's range is the table's, its maximum
 * lowered by tasks.max_beams (read first) but not by limits.max_new_tokens: a task's
 * default above that limit is cut to it when used, as a request's own value may not be. */
static int key_in_range(const struct task_conf *c, const conf_key *k, double v)
{
    if (!k->opt) return v >= k->min && v <= k->max;
    task_opt_limits lim = { .max_new_tokens = 0, .max_beams = c->max_beams };
    return task_opt_in_range(k->opt - 1, v, &lim);
}

/* "file:line: FULL = VALUE is out of range RANGE" for k set by s. */
static int range_error(const struct task_conf *c, const conf_key *k, const config_setting_t *s,
                       const char *path, const char *full, const char *value, char *err,
                       size_t errlen)
{
    char msg[256], prefix[128];
    if (!k->opt) {
        if (key_type(k) == K_FLOAT)
            snprintf(msg, sizeof msg, "%s = %s is out of range [%g, %g]", full, value, k->min,
                     k->max);
        else
            snprintf(msg, sizeof msg, "%s = %s is out of range [%.0f, %.0f]", full, value, k->min,
                     k->max);
    } else {
        task_opt_limits lim = { .max_new_tokens = 0, .max_beams = c->max_beams };
        snprintf(prefix, sizeof prefix, "tasks.%s%s", k->group, *k->group ? "." : "");
        task_opt_error(k->opt - 1, prefix, value, &lim, msg, sizeof msg);
    }
    errat(s, path, err, errlen, "%s", msg);
    return -1;
}

static int read_key(struct task_conf *c, const cm_conf *cf, const conf_key *k,
                    const config_setting_t *s, const char *path, const char *full, char *err,
                    size_t errlen)
{
    long long iv;
    char lit[32];
    int t = config_setting_type(s);
    switch (key_type(k)) {
    case K_INT:
    case K_I64: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
            errat(s, path, err, errlen, "%s must be an integer", full);
            return -1;
        }
        /* As written: libconfig wraps what does not fit (99999999999999999999 is -1). */
        if (cm_conf_int(cf, s, &iv, lit, sizeof lit) < 0 ||
            (key_type(k) == K_I64 ? iv < 0 : !key_in_range(c, k, (double)iv)))
            return range_error(c, k, s, path, full, lit, err, errlen);
        if (key_type(k) == K_INT) *(int *)field(c, k) = (int)iv;
        else *(long long *)field(c, k) = iv;
        if (k->bit) c->spec[task_kind_from_name(k->group)].dec_set |= k->bit;
        return 0;
    }
    case K_FLOAT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64 && t != CONFIG_TYPE_FLOAT) {
            errat(s, path, err, errlen, "%s must be a number", full);
            return -1;
        }
        double v = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) : 0;
        if (t != CONFIG_TYPE_FLOAT && cm_conf_int(cf, s, &iv, lit, sizeof lit) < 0)
            return range_error(c, k, s, path, full, lit, err, errlen);
        if (t != CONFIG_TYPE_FLOAT) v = (double)iv;
        if (!key_in_range(c, k, v)) {
            snprintf(lit, sizeof lit, "%g", v);
            return range_error(c, k, s, path, full, lit, err, errlen);
        }
        *(double *)field(c, k) = v;
        if (k->bit) c->spec[task_kind_from_name(k->group)].dec_set |= k->bit;
        return 0;
    }
    case K_BOOL:
        if (t != CONFIG_TYPE_BOOL) {
            errat(s, path, err, errlen, "%s must be true or false", full);
            return -1;
        }
        *(int *)field(c, k) = config_setting_get_bool(s);
        return 0;
    case K_STR: {
        const char *v = t == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        if (!v) {
            errat(s, path, err, errlen, "%s must be a string", full);
            return -1;
        }
        if (strlen(v) >= k->size) {
            errat(s, path, err, errlen, "%s is too long (at most %zu bytes)", full, k->size - 1);
            return -1;
        }
        snprintf(field(c, k), k->size, "%s", v);
        return 0;
    }
    }
    return -1;
}

/* tasks.translate.languages = { en = "English"; de = ["German", "Deutsch"]; ... }; */
static int read_languages(struct task_conf *c, const config_setting_t *g, const char *path,
                          char *err, size_t errlen)
{
    if (!config_setting_is_group(g)) {
        errat(g, path, err, errlen,
              "tasks.translate.languages must be a group: { de = \"German\"; ... }");
        return -1;
    }
    int n = config_setting_length(g);
    task_lang *langs = calloc(n ? (size_t)n : 1, sizeof *langs);
    if (!langs) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *code = config_setting_name(e);
        task_lang *l = &langs[i];
        if (strlen(code) >= sizeof l->code) {
            errat(e, path, err, errlen, "language code '%s' is too long", code);
            goto fail;
        }
        snprintf(l->code, sizeof l->code, "%s", code);
        if (config_setting_type(e) == CONFIG_TYPE_STRING) {
            const char *v = config_setting_get_string(e);
            if (!*v || strlen(v) >= sizeof l->names[0]) {
                errat(e, path, err, errlen, "language '%s': the name must be 1 to %zu bytes", code,
                      sizeof l->names[0] - 1);
                goto fail;
            }
            snprintf(l->names[0], sizeof l->names[0], "%s", v);
            l->n_names = 1;
        } else if (config_setting_is_array(e) && config_setting_length(e) >= 1 &&
                   config_setting_length(e) <= TASK_LANG_NAMES) {
            for (int j = 0; j < config_setting_length(e); j++) {
                const char *v = config_setting_get_string_elem(e, j);
                if (!v || !*v || strlen(v) >= sizeof l->names[0]) {
                    errat(e, path, err, errlen,
                          "language '%s': names must be strings of 1 to %zu bytes", code,
                          sizeof l->names[0] - 1);
                    goto fail;
                }
                snprintf(l->names[j], sizeof l->names[j], "%s", v);
            }
            l->n_names = config_setting_length(e);
        } else {
            errat(e, path, err, errlen, "language '%s' must be a name or an array of 1 to %d names",
                  code, TASK_LANG_NAMES);
            goto fail;
        }
    }
    free(c->langs);
    c->langs = langs;
    c->n_langs = n;
    return 0;
fail:
    free(langs);
    return -1;
}

static int read_abbrevs(struct task_conf *c, const config_setting_t *a, const char *path, char *err,
                        size_t errlen)
{
    if (!config_setting_is_array(a) && !config_setting_is_list(a)) {
        errat(a, path, err, errlen, "tasks.translate.abbreviations must be an array of strings");
        return -1;
    }
    int n = config_setting_length(a);
    char(*ab)[16] = calloc(n ? (size_t)n : 1, sizeof *ab);
    if (!ab) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *v = config_setting_get_string_elem(a, i);
        size_t len = v ? strlen(v) : 0;
        if (len && v[len - 1] == '.') len--; /* "Mr." and "Mr" both accepted */
        if (!v || !len || len >= sizeof ab[0]) {
            errat(a, path, err, errlen,
                  "tasks.translate.abbreviations[%d] must be a word of 1 to %zu bytes", i,
                  sizeof ab[0] - 1);
            free(ab);
            return -1;
        }
        memcpy(ab[i], v, len);
    }
    free(c->abbrevs);
    c->abbrevs = ab;
    c->n_abbrevs = n;
    return 0;
}

static int read_group(struct task_conf *c, const cm_conf *cf, const config_setting_t *g,
                      const char *gname, const char *path, char *err, size_t errlen)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        char full[128];
        snprintf(full, sizeof full, "tasks.%s%s%s", gname, *gname ? "." : "", name);
        if (!*gname) {
            int sub = 0;
            for (size_t j = 0; j < sizeof subgroups / sizeof subgroups[0]; j++)
                if (!strcmp(name, subgroups[j])) sub = 1;
            if (sub) {
                if (!config_setting_is_group(s)) {
                    errat(s, path, err, errlen, "%s must be a group { ... }", full);
                    return -1;
                }
                if (read_group(c, cf, s, name, path, err, errlen) < 0) return -1;
                continue;
            }
        }
        if (!strcmp(gname, "translate") && !strcmp(name, "languages")) {
            if (read_languages(c, s, path, err, errlen) < 0) return -1;
            continue;
        }
        if (!strcmp(gname, "translate") && !strcmp(name, "abbreviations")) {
            if (read_abbrevs(c, s, path, err, errlen) < 0) return -1;
            continue;
        }
        const conf_key *k = find_key(gname, name);
        if (!k) {
            errat(s, path, err, errlen, "unknown setting %s", full);
            return -1;
        }
        if (read_key(c, cf, k, s, path, full, err, errlen) < 0) return -1;
    }
    return 0;
}

/* limits.max_input_tokens / max_new_tokens: the daemon owns and checks the group; we only
 * pick these two up so nlprun honours the same limits. */
static int read_limits(struct task_conf *c, const cm_conf *cf, const char *path, char *err,
                       size_t errlen)
{
    static const struct {
        const char *path;
        size_t off;
        int min, max;
    } lk[] = {
        { "limits.max_input_tokens", OFF(max_input_tokens), 8, 8192 },
        { "limits.max_new_tokens", OFF(max_new_tokens_limit), 1, TASK_MAX_NEW_TOKENS },
    };
    for (size_t i = 0; i < sizeof lk / sizeof lk[0]; i++) {
        const config_setting_t *s = config_lookup(&cf->cfg, lk[i].path);
        if (!s) continue;
        int t = config_setting_type(s);
        long long v = 0;
        char lit[32];
        if ((t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) ||
            cm_conf_int(cf, s, &v, lit, sizeof lit) < 0 || v < lk[i].min || v > lk[i].max) {
            errat(s, path, err, errlen, "%s must be an integer in [%d, %d]", lk[i].path, lk[i].min,
                  lk[i].max);
            return -1;
        }
        *(int *)((char *)c + lk[i].off) = (int)v;
    }
    return 0;
}

task_conf *task_conf_load(const char *path, char *err, size_t errlen)
{
    cm_conf cf;
    task_conf *c = NULL;
    /* Bounded: the file and its includes together (libconfig is slow on huge tokens). */
    if (cm_conf_load(&cf, path, CM_CONF_MAX_BYTES, err, errlen) == 0)
        c = task_conf_from(&cf, path, err, errlen);
    cm_conf_free(&cf);
    return c;
}

task_conf *task_conf_from(const cm_conf *cf, const char *path, char *err, size_t errlen)
{
    struct task_conf *c = NULL;

    snprintf(err, errlen, "ok");
    const config_t *cfg = &cf->cfg;
    c = task_conf_default();
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    snprintf(c->path, sizeof c->path, "%s", path);
    const config_setting_t *g = config_lookup(cfg, "tasks");
    if (g) {
        if (!config_setting_is_group(g)) {
            errat(g, path, err, errlen, "tasks must be a group { ... }");
            goto fail;
        }
        /* max_beams first: the tasks' num_beams are checked against it wherever it is */
        const config_setting_t *mb = config_setting_get_member(g, "max_beams");
        if (mb && read_key(c, cf, find_key("", "max_beams"), mb, path, "tasks.max_beams", err,
                           errlen) < 0)
            goto fail;
        if (read_group(c, cf, g, "", path, err, errlen) < 0) goto fail;
    }
    if (read_limits(c, cf, path, err, errlen) < 0) goto fail;

    /* Cross-key checks, pointing at the later key's line when the file has it. */
    for (int k = 1; k < TASK_N_KINDS; k++) {
        const task_dec_defaults *d = &c->spec[k].dec;
        const char *tn = task_kind_name((task_kind)k);
        char key[96];
        if (k == TASK_CLASSIFY) continue;
        if (d->num_return_sequences > d->num_beams) {
            snprintf(key, sizeof key, "tasks.%s.num_return_sequences", tn);
            size_t at = where_key(cfg, key, path, err, errlen);
            snprintf(err + at, errlen - at, "%s (%d) exceeds num_beams (%d)", key,
                     d->num_return_sequences, d->num_beams);
            goto fail;
        }
        if (d->num_beams > c->max_beams) {
            snprintf(key, sizeof key, "tasks.%s.num_beams", tn);
            /* A default over a lowered max_beams: the max_beams line is the culprit. */
            size_t at = where_key(cfg, config_lookup(cfg, key) ? key : "tasks.max_beams", path, err,
                                  errlen);
            snprintf(err + at, errlen - at, "%s (%d) exceeds tasks.max_beams (%d)", key,
                     d->num_beams, c->max_beams);
            goto fail;
        }
    }
    if (!task_lang_find(c, c->default_source)) {
        size_t at = where_key(cfg, "tasks.translate.default_source", path, err, errlen);
        snprintf(err + at, errlen - at,
                 "tasks.translate.default_source '%s' is not in the language table",
                 c->default_source);
        goto fail;
    }
    char why[256];
    int bad = check_prompts(c, why, sizeof why);
    if (bad > 0) {
        char key[96];
        snprintf(key, sizeof key, "tasks.%s.prompt", task_kind_name((task_kind)bad));
        if (!strncmp(why, "tasks.classify.hypothesis_template", 34))
            snprintf(key, sizeof key, "tasks.classify.hypothesis_template");
        size_t at = where_key(cfg, key, path, err, errlen);
        snprintf(err + at, errlen - at, "%s", why);
        goto fail;
    }
    return c;
fail:
    task_conf_free(&c);
    return NULL;
}

int task_conf_max_input_tokens(const task_conf *conf) { return conf->max_input_tokens; }
int task_conf_max_new_tokens(const task_conf *conf) { return conf->max_new_tokens_limit; }
int task_conf_max_beams(const task_conf *conf) { return conf->max_beams; }

task_opt_limits task_conf_opt_limits(const task_conf *conf)
{
    return (task_opt_limits){ .max_new_tokens = conf->max_new_tokens_limit,
                              .max_beams = conf->max_beams };
}

const task_lang *task_lang_find(const task_conf *conf, const char *s)
{
    if (!s) return NULL;
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') n--;
    if (!n) return NULL;
    for (int i = 0; i < conf->n_langs; i++) {
        const task_lang *l = &conf->langs[i];
        if (strlen(l->code) == n && !strncasecmp(l->code, s, n)) return l;
        for (int j = 0; j < l->n_names; j++)
            if (strlen(l->names[j]) == n && !strncasecmp(l->names[j], s, n)) return l;
    }
    return NULL;
}

eng_ctx_params task_conf_ctx_params(const task_conf *conf)
{
    eng_ctx_params p = eng_ctx_default_params();
    if (p.max_input_len < conf->max_input_tokens) p.max_input_len = conf->max_input_tokens;
    if (p.max_new_tokens < conf->max_new_tokens_limit)
        p.max_new_tokens = conf->max_new_tokens_limit;
    /* multi-label adds the contrast label to the last job's candidates: still within
     * labels_per_job, since classify splits by that count including it. */
    if (p.max_cands < conf->labels_per_job) p.max_cands = conf->labels_per_job;
    if (p.max_cand_len < conf->max_label_tokens + 1) p.max_cand_len = conf->max_label_tokens + 1;
    if (p.max_rows < conf->max_beams) p.max_rows = conf->max_beams;
    return p;
}
