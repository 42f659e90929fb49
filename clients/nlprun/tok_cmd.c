/* nlprun tokenize / detokenize: the tokenizer on stdin lines. Single-threaded.
 *
 *   nlprun tokenize --tokenizer PATH [--target] [--src-lang CODE] [--tgt-lang CODE]
 *        each line -> space-separated ids, the model's special ids included (T5: EOS;
 *        BART: <s> ... </s>; Marian: </s>); --target: as target-side text (Marian:
 *        target.spm); NLLB, M2M100, mBART: [lang] ... </s> (or ... </s> [lang] when
 *        legacy), the language from --src-lang, or --tgt-lang with --target, else the
 *        tokenizer config's
 *   nlprun detokenize --tokenizer PATH [--no-cleanup]
 *        each line of ids (space or comma separated) -> its text, as transformers'
 *        decode(ids, skip_special_tokens=True) gives it (clean_up_tokenization_spaces on
 *        unless --no-cleanup)
 *
 * PATH is one tokenizer file or a model directory holding a tokenizer (tok_open).
 *
 * Line endings: the trailing '\n' is not part of the text. A line that cannot be
 * processed (invalid UTF-8, an unknown id) gives an empty output line, so output lines
 * stay aligned with input lines, a message on stderr, and exit status 1 at the end. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/nlprun/nlprun.h"
#include "engine/langs.h"
#include "engine/tok.h"

static void tok_cmd_usage(FILE *f, const char *cmd)
{
    if (!strcmp(cmd, "tokenize"))
        fprintf(f, "usage: nlprun tokenize --tokenizer FILE|DIR [--target]\n"
                   "  Reads UTF-8 text from stdin, one text per line, and writes one line of\n"
                   "  space-separated token ids per input line, with the model's special ids\n"
                   "  (T5: EOS appended; BART: <s> ... </s>; Marian: </s> appended).\n"
                   "  <extra_id_N> in the text becomes its sentinel id (T5).\n"
                   "  FILE is one tokenizer file, DIR a model directory holding one.\n"
                   "  --target   tokenize as target-side text (Marian: target.spm)\n"
                   "  --src-lang CODE   the source language (NLLB, M2M100, mBART: its code id\n"
                   "             around the text, [CODE] text </s>, or text </s> [CODE] when\n"
                   "             the tokenizer config says legacy); a code of the model, or an\n"
                   "             ISO 639 code or English name of one of its languages\n"
                   "  --tgt-lang CODE   the same for --target text\n");
    else
        fprintf(f, "usage: nlprun detokenize --tokenizer FILE|DIR [--no-cleanup]\n"
                   "  Reads token ids from stdin, one sequence per line (separated by spaces\n"
                   "  or commas), and writes the decoded text of each line. Special ids are\n"
                   "  skipped (T5: pad and EOS), sentinels shown as <extra_id_N>; spaces\n"
                   "  before punctuation are cleaned up as transformers' decode() does.\n"
                   "  --no-cleanup   keep them (clean_up_tokenization_spaces=False)\n");
}

/* Parses `--tokenizer PATH` (or --tokenizer=PATH), and the command's flag (tokenize:
 * --target, *flag |= TOK_TARGET; detokenize: --no-cleanup, *flag &= ~TOK_DECODE_CLEANUP).
 * Returns 0, or the exit code. */
static int tok_cmd_args(int argc, char **argv, const char **path, int *flag)
{
    const int tokenize = !strcmp(argv[0], "tokenize");
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tok_cmd_usage(stdout, argv[0]);
            return -1;
        } else if (tokenize && !strcmp(argv[i], "--target")) {
            *flag |= TOK_TARGET;
        } else if (!tokenize && !strcmp(argv[i], "--no-cleanup")) {
            *flag &= ~TOK_DECODE_CLEANUP;
        } else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
            *path = argv[++i];
        } else if (!strncmp(argv[i], "--tokenizer=", 12)) {
            *path = argv[i] + 12;
        } else {
            fprintf(stderr, "nlprun %s: %s '%s'\n", argv[0],
                    argv[i][0] == '-' ? "unknown option" : "unexpected argument", argv[i]);
            tok_cmd_usage(stderr, argv[0]);
            return 2;
        }
    }
    if (!*path) {
        fprintf(stderr, "nlprun %s: --tokenizer FILE|DIR is required\n", argv[0]);
        tok_cmd_usage(stderr, argv[0]);
        return 2;
    }
    return 0;
}

static tok_model *tok_cmd_load(const char *cmd, const char *path)
{
    char err[512];
    tok_model *t = tok_open(path, err, sizeof err);
    if (!t) fprintf(stderr, "nlprun %s: %s\n", cmd, err);
    return t;
}

/* Takes --src-lang CODE / --tgt-lang CODE (or =CODE) out of argv (tokenize only), so
 * the other options parse as before. Returns 0, or the exit code. */
static int tok_cmd_lang_args(int *argc, char **argv, const char **lang)
{
    int w = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        int k = !strncmp(a, "--src-lang", 10) ? 0 : !strncmp(a, "--tgt-lang", 10) ? 1 : -1;
        if (k < 0 || (a[10] && a[10] != '=')) {
            argv[w++] = argv[i];
            continue;
        }
        if (a[10] == '=') {
            lang[k] = a + 11;
        } else if (i + 1 < *argc) {
            lang[k] = argv[++i];
        } else {
            fprintf(stderr, "nlprun %s: %s needs a language code\n", argv[0], a);
            return 2;
        }
    }
    *argc = w;
    return 0;
}

/* The id of the language `name` names in t: one of its codes, else what engine/langs.h
 * maps an ISO code or English name to. -1 (with a message) when t has none. */
static int32_t tok_cmd_lang(const char *cmd, const tok_model *t, const char *opt, const char *name)
{
    int n = tok_n_langs(t);
    if (!n) {
        fprintf(stderr, "nlprun %s: %s: this tokenizer (%s) has no language codes\n", cmd, opt,
                tok_kind(t));
        return -1;
    }
    int32_t id = tok_lang_id(t, name);
    if (id >= 0) return id;
    const char **codes = malloc((size_t)n * sizeof *codes);
    if (codes) {
        for (int i = 0; i < n; i++) codes[i] = tok_lang_code(t, i);
        int i = lang_resolve(name, codes, n);
        if (i >= 0) id = tok_lang_id(t, codes[i]);
        free(codes);
    }
    if (id < 0)
        fprintf(stderr,
                "nlprun %s: %s '%s': the tokenizer has no such language (it has %d "
                "codes: %s ... %s)\n",
                cmd, opt, name, n, tok_lang_code(t, 0), tok_lang_code(t, n - 1));
    return id;
}

/* Writes v in decimal to p, returns the length. */
static size_t tok_cmd_itoa(char *p, int32_t v)
{
    char tmp[12];
    size_t n = 0, k = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) p[k++] = '-';
    while (n) p[k++] = tmp[--n];
    return k;
}

int nlprun_tokenize(int argc, char **argv)
{
    const char *path;
    int flags = TOK_ADD_SPECIAL;
    const char *lang[2] = { NULL, NULL }; /* --src-lang, --tgt-lang */
    int rc = tok_cmd_lang_args(&argc, argv, lang);
    if (!rc) rc = tok_cmd_args(argc, argv, &path, &flags);
    if (rc) return rc < 0 ? 0 : rc;
    if (lang[1] && !(flags & TOK_TARGET)) {
        fprintf(stderr, "nlprun %s: --tgt-lang is for target-side text: add --target\n", argv[0]);
        return 2;
    }
    tok_model *t = tok_cmd_load(argv[0], path);
    if (!t) return 1;
    tok_encode_opts opts = { flags, -1, -1 };
    if ((lang[0] && (opts.src_lang = tok_cmd_lang(argv[0], t, "--src-lang", lang[0])) < 0) ||
        (lang[1] && (opts.tgt_lang = tok_cmd_lang(argv[0], t, "--tgt-lang", lang[1])) < 0)) {
        tok_free(&t);
        return 2;
    }
    if ((flags & TOK_TARGET) && tok_n_langs(t) && opts.tgt_lang < 0 && tok_lang_default(t, 1) < 0) {
        /* transformers refuses target text without a target language too */
        fprintf(stderr,
                "nlprun %s: --target: give the target language with --tgt-lang (the "
                "tokenizer config names none)\n",
                argv[0]);
        tok_free(&t);
        return 2;
    }

    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    char *line = NULL;
    size_t lcap = 0;
    int32_t *ids = NULL;
    int idcap = 0;
    char *txt = NULL; /* formatted ids: <= 12 bytes each */
    long lineno = 0;
    int status = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        int k = tok_encode_opt(t, line, len, &opts, ids, NULL, idcap);
        if (k > idcap) {
            int ncap = k > INT_MAX / 2 ? k : k + k / 2 + 16;
            int32_t *ni = realloc(ids, (size_t)ncap * sizeof *ni);
            char *nt = realloc(txt, (size_t)ncap * 12 + 2);
            if (!ni || !nt) {
                free(ni ? ni : ids);
                free(nt ? nt : txt);
                free(line);
                tok_free(&t);
                fprintf(stderr, "nlprun %s: out of memory\n", argv[0]);
                return 1;
            }
            ids = ni;
            txt = nt;
            idcap = ncap;
            k = tok_encode_opt(t, line, len, &opts, ids, NULL, idcap);
        }
        if (k < 0) {
            fprintf(stderr, "nlprun %s: line %ld: %s\n", argv[0], lineno,
                    k == TOK_EINVAL ? "invalid UTF-8" : "out of memory");
            putchar('\n');
            status = 1;
            continue;
        }
        size_t o = 0;
        for (int i = 0; i < k; i++) {
            if (i) txt[o++] = ' ';
            o += tok_cmd_itoa(txt + o, ids[i]);
        }
        txt[o++] = '\n';
        fwrite(txt, 1, o, stdout);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "nlprun %s: write error: %s\n", argv[0], strerror(errno));
        status = 1;
    }
    free(line);
    free(ids);
    free(txt);
    tok_free(&t);
    return status;
}

int nlprun_detokenize(int argc, char **argv)
{
    const char *path;
    int flags = TOK_DECODE_CLEANUP;
    int rc = tok_cmd_args(argc, argv, &path, &flags);
    if (rc) return rc < 0 ? 0 : rc;
    tok_model *t = tok_cmd_load(argv[0], path);
    if (!t) return 1;

    char *line = NULL, *out = NULL;
    size_t lcap = 0, ocap = 0;
    int32_t *ids = NULL;
    size_t idcap = 0;
    long lineno = 0;
    int status = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, stdin)) >= 0) {
        lineno++;
        size_t nid = 0;
        const char *bad = NULL;
        char *p = line;
        for (;;) {
            while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '\r') p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
                (*end && !strchr(" ,\t\r\n", *end))) {
                bad = p;
                break;
            }
            if (nid == idcap) {
                size_t nc = idcap ? idcap * 2 : 64;
                int32_t *ni = realloc(ids, nc * sizeof *ni);
                if (!ni) {
                    bad = "(out of memory)";
                    break;
                }
                ids = ni;
                idcap = nc;
            }
            ids[nid++] = (int32_t)v;
            p = end;
        }
        int k = bad || nid > INT32_MAX ? TOK_EINVAL
                                       : tok_decode_flags(t, ids, (int)nid, flags, out, ocap);
        if (k >= 0 && (size_t)k >= ocap) {
            size_t nc = (size_t)k + 1;
            char *no = realloc(out, nc);
            if (!no) {
                k = TOK_ENOMEM;
            } else {
                out = no;
                ocap = nc;
                k = tok_decode_flags(t, ids, (int)nid, flags, out, ocap);
            }
        }
        if (k < 0) {
            if (bad)
                fprintf(stderr, "nlprun %s: line %ld: not an id list near '%.20s'\n", argv[0],
                        lineno, bad);
            else
                fprintf(stderr, "nlprun %s: line %ld: %s\n", argv[0], lineno,
                        k == TOK_ERANGE ? "id outside the vocabulary" : "out of memory");
            putchar('\n');
            status = 1;
            continue;
        }
        fwrite(out, 1, (size_t)k, stdout);
        putchar('\n');
    }
    if (fflush(stdout) != 0) status = 1;
    free(line);
    free(out);
    free(ids);
    tok_free(&t);
    return status;
}
