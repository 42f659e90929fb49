/* translate, per model family (docs/models.md):
 * - T5: source and target as ISO codes or English names (the table is
 *   tasks.translate.languages); the prompt says the names ("translate English to German:
 *   ...").
 * - Marian: one language pair (task_model_info: tokenizer_config.json or the directory
 *   name opus-mt-SRC-TGT); a request for another pair is TASK_EINVAL naming the pair. A
 *   model with several targets gets the target's `>>xx<<` token before each sentence.
 * - M2M100, NLLB, mBART-50: the languages are the tokenizer's codes (engine/langs.h
 *   reads what users write); the source code is put by the tokenizer, the target code is
 *   forced as the first generated token (forced_bos_token_id).
 * For all: the text is split into sentences, each one generate job (the caller batches
 * them), and the outputs are joined in order with single spaces -- no space after a CJK
 * full stop. An over-long sentence is cut like any over-long input. */
#include "tasks/task_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"
#include "engine/langs.h"

/* ---- sentence splitting ---- */

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Bytes of a CJK sentence end at s (。！？ and the fullwidth ．), else 0. */
static int cjk_stop(const unsigned char *s, size_t left)
{
    if (left < 3) return 0;
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x82) return 3; /* 。 */
    if (s[0] == 0xEF && s[1] == 0xBC && (s[2] == 0x81 || s[2] == 0x9F || s[2] == 0x8E))
        return 3; /* ！？． */
    return 0;
}

/* Bytes of a closing quote or bracket at s (after a sentence end), else 0. */
static int closer(const unsigned char *s, size_t left)
{
    if (s[0] == '"' || s[0] == '\'' || s[0] == ')' || s[0] == ']') return 1;
    if (left >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x9D || s[2] == 0x99))
        return 3;                                            /* ” ’ */
    if (left >= 2 && s[0] == 0xC2 && s[1] == 0xBB) return 2; /* » */
    if (left >= 3 && s[0] == 0xE3 && s[1] == 0x80 && (s[2] == 0x8D || s[2] == 0x8F))
        return 3;                                                            /* 」』 */
    if (left >= 3 && s[0] == 0xEF && s[1] == 0xBC && s[2] == 0x89) return 3; /* ） */
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

int task_split_sentences(const task_conf *conf, const char *text, size_t len, task_span **out)
{
    const unsigned char *u = (const unsigned char *)text;
    task_span *v = NULL;
    int n = 0, cap = 0;
    size_t start = 0, i = 0;

    while (i < len) {
        size_t end = 0; /* > 0: a sentence ends before this offset */
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
            if (i < len && !is_space(u[i])) continue; /* 3.14, example.com, "x.y" */
            size_t nx = i;
            while (nx < len && is_space(u[nx])) nx++;
            if (nx < len && u[nx] >= 'a' && u[nx] <= 'z') continue; /* "approx. five" */
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

static int resolve(const task_env *env, const char *given, const char *what, const task_lang **out,
                   char *err, size_t errlen)
{
    *out = task_lang_find(env->conf, given);
    if (*out) return 0;
    char known[160] = "";
    size_t w = 0;
    for (int i = 0; i < env->conf->n_langs && w + 8 < sizeof known; i++)
        w += (size_t)snprintf(known + w, sizeof known - w, "%s%s", i ? ", " : "",
                              env->conf->langs[i].code);
    size_t q = cm_utf8_cut(given, strlen(given), CM_QUOTE_MAX);
    cm_fmt(err, errlen, "translate: unknown %s language '%.*s%s' (known: %s)", what, (int)q, given,
           given[q] ? "..." : "", known);
    return TASK_EINVAL;
}

/* A language name or code as ISO 639-3 (langs.h), NULL when unknown. */
static const char *iso3_of(const char *s, char buf[8])
{
    return s && *s ? lang_iso3(s, buf) : NULL;
}

/* Whether two names or codes name one language ("en", "eng", "English"). */
static int same_lang(const char *a, const char *b)
{
    char b1[8], b2[8];
    const char *x = iso3_of(a, b1), *y = iso3_of(b, b2);
    if (x && y) return !strcmp(x, y);
    return !strcasecmp(a, b);
}

/* Marian's multilingual targets: the id of the token ">>code<<" when the vocabulary has
 * it (a code the tokenizer lacks encodes as <unk>). */
static int marian_has_code(const tok_model *tok, const char *code)
{
    char t[40];
    int32_t ids[4];
    if (!code || !*code || strlen(code) > 16) return 0;
    snprintf(t, sizeof t, ">>%s<<", code);
    int n = tok_encode(tok, t, strlen(t), 0, ids, 4);
    return n == 1 && ids[0] != tok_unk_id(tok);
}

/* The >>xx<< prefix for target `tgt` ("" when the model is the pair's own target),
 * or TASK_EINVAL naming the pair the model serves. */
static int marian_langs(const task_env *env, const char *src, const char *tgt, char *prefix,
                        size_t cap, char *err, size_t errlen)
{
    const task_model_info *mi = &env->info;
    size_t qs = src ? cm_utf8_cut(src, strlen(src), CM_QUOTE_MAX) : 0;
    size_t qt = cm_utf8_cut(tgt, strlen(tgt), CM_QUOTE_MAX);
    prefix[0] = 0;
    if (src && mi->pair_src[0] && !same_lang(src, mi->pair_src)) {
        cm_fmt(err, errlen,
               "translate: this model (marian) translates %s to %s only, not "
               "from '%.*s'",
               mi->pair_src, mi->pair_tgt, (int)qs, src);
        return TASK_EINVAL;
    }
    if (mi->pair_tgt[0] && same_lang(tgt, mi->pair_tgt)) return 0;
    /* A multilingual target: >>code<< as the model writes it (ISO 639-1 or 639-3). */
    char b3[8];
    const task_lang *l = task_lang_find(env->conf, tgt);
    const char *cands[] = { tgt, l ? l->code : NULL, iso3_of(tgt, b3) };
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (marian_has_code(env->tok, cands[i])) {
            snprintf(prefix, cap, ">>%s<< ", cands[i]);
            return 0;
        }
    if (!mi->pair_tgt[0]) return 0; /* no pair known and no codes: take it as asked */
    cm_fmt(err, errlen,
           "translate: this model (marian) translates %s to %s only, not to "
           "'%.*s'",
           mi->pair_src[0] ? mi->pair_src : "?", mi->pair_tgt, (int)qt, tgt);
    return TASK_EINVAL;
}

/* The index of the model's language code for `user`, or TASK_EINVAL saying how to list
 * them. */
static int many_lang(const task_env *env, const char *user, const char *what, char *err,
                     size_t errlen)
{
    int n = tok_n_langs(env->tok);
    const char **codes = malloc((size_t)(n > 0 ? n : 1) * sizeof *codes);
    if (!codes) {
        snprintf(err, errlen, "out of memory");
        return TASK_ENOMEM;
    }
    for (int i = 0; i < n; i++) codes[i] = tok_lang_code(env->tok, i);
    int k = lang_resolve(user, codes, n);
    free(codes);
    if (k >= 0) return k;
    size_t q = cm_utf8_cut(user, strlen(user), CM_QUOTE_MAX);
    cm_fmt(err, errlen,
           "translate: unknown %s language '%.*s%s': the model has %d language "
           "codes (the daemon's health reply lists them, as `languages`; ISO 639 codes and "
           "English names are accepted too)",
           what, (int)q, user, user[q] ? "..." : "", n);
    return TASK_EINVAL;
}

static int translate_prepare(const task_env *env, const task_input *in, task_doc *doc, char *err,
                             size_t errlen)
{
    const task_lang *src = NULL, *tgt = NULL;
    eng_gen_params p;
    task_span *sp = NULL;
    tok_encode_opts eo = tok_encode_default_opts();
    const tok_encode_opts *opts = NULL;
    char prefix[48] = "";
    int rc;

    if (!in->target_lang || !task_has_text(in->target_lang, strlen(in->target_lang))) {
        snprintf(err, errlen, "translate: the target language is required");
        return TASK_EINVAL;
    }
    int given = in->source_lang && task_has_text(in->source_lang, strlen(in->source_lang));
    const char *s = given ? in->source_lang : env->conf->default_source;
    if ((rc = task_gen_params_env(env, TASK_TRANSLATE, &in->opts, &p, err, errlen)) < 0) return rc;
    task_family fam = task_env_family(env);
    if (fam == TASK_FAM_T5) {
        if ((rc = resolve(env, s, "source", &src, err, errlen)) < 0) return rc;
        if ((rc = resolve(env, in->target_lang, "target", &tgt, err, errlen)) < 0) return rc;
    } else if (fam == TASK_FAM_MARIAN) {
        rc = marian_langs(env, given ? in->source_lang : NULL, in->target_lang, prefix,
                          sizeof prefix, err, errlen);
        if (rc < 0) return rc;
    } else {
        /* Many-to-many: the source code through the tokenizer, the target forced as the
         * first generated token (HF: forced_bos_token_id = the target language's id). */
        int ks = many_lang(env, s, "source", err, errlen);
        if (ks < 0 && !given) {
            /* the configured default is not one of the model's: its tokenizer's own */
            eo.src_lang = tok_lang_default(env->tok, 0);
            ks = 0;
        } else if (ks < 0) {
            return ks;
        } else {
            eo.src_lang = tok_lang_id(env->tok, tok_lang_code(env->tok, ks));
        }
        int kt = many_lang(env, in->target_lang, "target", err, errlen);
        if (kt < 0) return kt;
        p.forced_bos_token_id = tok_lang_id(env->tok, tok_lang_code(env->tok, kt));
        opts = &eo;
    }

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
    /* T5 reads the prompt with the languages' names; the others get the sentence, after
     * Marian's >>xx<< when the model has several targets. */
    const char *tmpl =
        fam == TASK_FAM_T5 ? env->conf->spec[TASK_TRANSLATE].prompt : "{target}{text}";
    for (int i = 0; i < ns; i++) {
        const char *sn = src ? src->names[0] : "", *tn = tgt ? tgt->names[0] : prefix;
        const char *vals[] = { in->text + sp[i].off, sn, tn };
        size_t lens[] = { sp[i].len, strlen(sn), strlen(tn) };
        int32_t *ids;
        int n, cut;
        rc = task_encode_prompt_opt(env, opts, tmpl, names, vals, lens, 3, 0, env->max_input_tokens,
                                    &ids, &n, &cut, err, errlen);
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
