/* translate: source and target as ISO codes or English names (the table is
 * tasks.translate.languages); the prompt says the names ("translate English to German:
 * ..."). The text is split into sentences, each one generate job (the caller batches
 * them), and the outputs are joined in order with single spaces -- no space after a CJK
 * full stop. An over-long sentence is cut like any over-long input. */
#include "tasks/task_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* ---- sentence splitting ---- */

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Bytes of a CJK sentence end at s (。！？ and the fullwidth ．), else 0. */
static int cjk_stop(const unsigned char *s, size_t left)
{
    if (left < 3) return 0;
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x82) return 3;                 /* 。 */
    if (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x81 || s[2] == 0x9F || s[2] == 0x8E))
        return 3;                                                               /* ！？． */
    return 0;
}

/* Bytes of a closing quote or bracket at s (after a sentence end), else 0. */
static int closer(const unsigned char *s, size_t left)
{
    if (s[0] == '"' || s[0] == '\'' || s[0] == ')' || s[0] == ']') return 1;
    if (left >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x9D || s[2] == 0x99)) return 3; /* ” ’ */
    if (left >= 2 && s[0] == 0xC2 && s[1] == 0xBB) return 2;                                /* » */
    if (left >= 3 && s[0] == 0xE3 && s[1] == 0x80 && (s[2] == 0x8D || s[2] == 0x8F)) return 3; /* 」』 */
    if (left >= 3 && s[0] == 0xEF && s[1] == 0xBC && s[2] == 0x89) return 3;                /* ） */
    return 0;
}

/* Whether the '.' at text[dot] belongs to an abbreviation or an initial rather than
 * ending a sentence: the word before it is in the table ("Dr", "e.g"), is one capital
 * letter ("J. Smith"), or has inner dots ("U.S"). */
static int abbrev_before(const task_conf *conf, const char *text, size_t start, size_t dot)
{
    size_t b = dot;
    while (b > start && !is_space((unsigned char)text[b - 1])) b--;
    while (b < dot && (text[b] == '(' || text[b] == '"' || text[b] == '\'')) b++;
    size_t n = dot - b;
    if (n == 0) return 0;
    if (n == 1 && text[b] >= 'A' && text[b] <= 'Z') return 1;
    /* Dotted letters: "U.S", "e.g" (not numbers like "2.71"). */
    if (memchr(text + b, '.', n)) {
        int letters = 1;
        for (size_t i = b; i < dot; i++)
            if (!isalpha((unsigned char)text[i]) && text[i] != '.') letters = 0;
        if (letters) return 1;
    }
    for (int i = 0; i < conf->n_abbrevs; i++)
        if (strlen(conf->abbrevs[i]) == n && !memcmp(conf->abbrevs[i], text + b, n)) return 1;
    return 0;
}

static int push(task_span **v, int *n, int *cap, const char *text, size_t a, size_t b)
{
    while (a < b && is_space((unsigned char)text[a])) a++;
    while (b > a && is_space((unsigned char)text[b - 1])) b--;
    if (a == b) return 0;
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        task_span *nv = realloc(*v, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = (task_span){ a, b - a };
    return 0;
}

int task_split_sentences(const task_conf *conf, const char *text, size_t len,
                         task_span **out)
{
    const unsigned char *u = (const unsigned char *)text;
    task_span *v = NULL;
    int n = 0, cap = 0;
    size_t start = 0, i = 0;

    while (i < len) {
        size_t end = 0;   /* > 0: a sentence ends before this offset */
        int k = cjk_stop(u + i, len - i);
        if (k) {
            i += (size_t)k;
            while (i < len && (k = closer(u + i, len - i))) i += (size_t)k;
            end = i;
        } else if (u[i] == '.' || u[i] == '!' || u[i] == '?') {
            size_t term = i;
            int only_dot = 1;
            while (i < len && (u[i] == '.' || u[i] == '!' || u[i] == '?')) {
                if (u[i] != '.') only_dot = 0;
                i++;
            }
            int single_dot = only_dot && i - term == 1;
            while (i < len && (k = closer(u + i, len - i))) i += (size_t)k;
            if (i < len && !is_space(u[i])) continue;   /* 3.14, example.com, "x.y" */
            size_t nx = i;
            while (nx < len && is_space(u[nx])) nx++;
            if (nx < len && u[nx] >= 'a' && u[nx] <= 'z') continue;   /* "approx. five" */
            if (single_dot && abbrev_before(conf, text, start, term)) continue;
            end = i;
        } else if (u[i] == '\n') {
            /* A blank line ends a paragraph and so a sentence. */
            size_t j = i + 1;
            while (j < len && (u[j] == ' ' || u[j] == '\t' || u[j] == '\r')) j++;
            i = j;
            if (j < len && u[j] == '\n') end = j;
            else continue;
        } else {
            i++;
            continue;
        }
        if (push(&v, &n, &cap, text, start, end) < 0) goto oom;
        start = end;
    }
    if (push(&v, &n, &cap, text, start, len) < 0) goto oom;
    *out = v;
    return n;
oom:
    free(v);
    *out = NULL;
    return TASK_ENOMEM;
}

/* ---- the task ---- */

static int resolve(const task_env *env, const char *given, const char *what,
                   const task_lang **out, char *err, size_t errlen)
{
    *out = task_lang_find(env->conf, given);
    if (*out) return 0;
    char known[160] = "";
    size_t w = 0;
    for (int i = 0; i < env->conf->n_langs && w + 8 < sizeof known; i++)
        w += (size_t)snprintf(known + w, sizeof known - w, "%s%s", i ? ", " : "",
                              env->conf->langs[i].code);
    size_t q = cm_utf8_cut(given, strlen(given), CM_QUOTE_MAX);
    cm_fmt(err, errlen, "translate: unknown %s language '%.*s%s' (known: %s)", what, (int)q,
           given, given[q] ? "..." : "", known);
    return TASK_EINVAL;
}

static int translate_prepare(const task_env *env, const task_input *in, task_doc *doc,
                             char *err, size_t errlen)
{
    const task_lang *src, *tgt;
    eng_gen_params p;
    task_span *sp = NULL;
    int rc;

    if (!in->target_lang || !task_has_text(in->target_lang, strlen(in->target_lang))) {
        snprintf(err, errlen, "translate: the target language is required");
        return TASK_EINVAL;
    }
    const char *s = in->source_lang && task_has_text(in->source_lang, strlen(in->source_lang))
                        ? in->source_lang
                        : env->conf->default_source;
    if ((rc = resolve(env, s, "source", &src, err, errlen)) < 0) return rc;
    if ((rc = resolve(env, in->target_lang, "target", &tgt, err, errlen)) < 0) return rc;
    if ((rc = task_gen_params(env->conf, TASK_TRANSLATE, &in->opts, &p, err, errlen)) < 0)
        return rc;

    int ns = task_split_sentences(env->conf, in->text, in->text_len, &sp);
    if (ns < 0) {
        snprintf(err, errlen, "out of memory");
        return ns;
    }
    if (ns == 0) {
        snprintf(err, errlen, "translate: the text is empty");
        return TASK_EINVAL;
    }
    if ((rc = task_doc_jobs(doc, ns)) < 0) {
        free(sp);
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    static const char *const names[] = { "text", "source", "target" };
    const char *const *tmpl_names = names;
    for (int i = 0; i < ns; i++) {
        const char *vals[] = { in->text + sp[i].off, src->names[0], tgt->names[0] };
        size_t lens[] = { sp[i].len, strlen(src->names[0]), strlen(tgt->names[0]) };
        int32_t *ids;
        int n, cut;
        rc = task_encode_prompt(env, env->conf->spec[TASK_TRANSLATE].prompt, tmpl_names, vals,
                                lens, 3, 0, env->max_input_tokens, &ids, &n, &cut, err, errlen);
        if (rc < 0) {
            /* Which sentence, for a long document. */
            cm_fmt(err, errlen, "translate: sentence %d of %d: %s", i + 1, ns, err);
            free(sp);
            return rc;
        }
        task_job_generate(&doc->jobs[i], ids, n, &p);
        doc->input_tokens += n;
        doc->truncated |= cut;
    }
    free(sp);
    return 0;
}

int task_join(char **buf, size_t *len, const char *s)
{
    size_t sl = strlen(s);
    if (!sl) return 0;
    /* No space after a CJK full stop (。！？ are 3 bytes ending 0x82 / 0x81 / 0x9F). */
    int space = *len > 0;
    if (*len >= 3 && cjk_stop((const unsigned char *)*buf + *len - 3, 3)) space = 0;
    char *nb = realloc(*buf, *len + (size_t)space + sl + 1);
    if (!nb) return -1;
    *buf = nb;
    if (space) nb[(*len)++] = ' ';
    memcpy(nb + *len, s, sl + 1);
    *len += sl;
    return 0;
}

/* The k-th hypothesis of every sentence joined; *score the mean of their scores. */
static char *join_hyp(const task_env *env, task_doc *doc, int k, double *score, int *n_out)
{
    char *buf = malloc(1);
    size_t len = 0;
    double sum = 0;
    int tokens = 0;
    if (!buf) return NULL;
    buf[0] = 0;
    for (int i = 0; i < doc->n_jobs; i++) {
        const eng_gen_result *r = &doc->jobs[i].result;
        const eng_hyp *h = &r->hyps[k < r->n_hyps ? k : r->n_hyps - 1];
        int nt;
        char *t = task_hyp_text(env->tok, h, &nt);
        if (!t || task_join(&buf, &len, t) < 0) {
            free(t);
            free(buf);
            return NULL;
        }
        free(t);
        sum += h->score;
        tokens += nt;
    }
    *score = sum / doc->n_jobs;
    if (n_out) *n_out = tokens;
    return buf;
}

static int translate_finish(const task_env *env, const task_input *in, task_doc *doc,
                            task_result *out)
{
    out->text = join_hyp(env, doc, 0, &out->score, &out->output_tokens);
    if (!out->text) return task_fail(out, TASK_EINTERNAL, "cannot decode the output tokens");
    if (!in->opts.return_hypotheses) return TASK_OK;
    /* Hypothesis k of the document: hypothesis k of every sentence. */
    int nh = ENG_MAX_RETURN;
    for (int i = 0; i < doc->n_jobs; i++)
        if (doc->jobs[i].result.n_hyps < nh) nh = doc->jobs[i].result.n_hyps;
    out->hyps = calloc((size_t)nh, sizeof *out->hyps);
    if (!out->hyps) return task_fail(out, TASK_ENOMEM, "out of memory");
    for (int k = 0; k < nh; k++) {
        out->hyps[k].text = join_hyp(env, doc, k, &out->hyps[k].score, NULL);
        out->n_hyps = k + 1;
        if (!out->hyps[k].text)
            return task_fail(out, TASK_EINTERNAL, "cannot decode the output tokens");
    }
    return TASK_OK;
}

const task_ops task_translate_ops = {
    .kind = TASK_TRANSLATE,
    .name = "translate",
    .prepare = translate_prepare,
    .finish = translate_finish,
};
