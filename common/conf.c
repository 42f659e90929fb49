/* Bounded libconfig reading and integers as written (see cm_conf.h). */
#include "common/cm_conf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* Deeper than libconfig 1.5's own limit (10), which then reports the nesting; this one
 * only stops an include cycle of empty files from recursing without end. */
#define MAX_DEPTH 16

typedef struct loader {
    cm_conf *c;
    const char *dir; /* include directory */
    int up;          /* its depth below / (absolute includes climb this much) */
    size_t left;     /* bytes the files may still have */
    size_t max;
    char *err;
    size_t errlen;
} loader;

static int add_src(loader *ld, const char *name, char *text)
{
    cm_conf_src *s = realloc(ld->c->src, (size_t)(ld->c->n_src + 1) * sizeof *s);
    char *nm = name ? strdup(name) : NULL;
    if (!s || (name && !nm)) {
        if (s) ld->c->src = s;
        free(nm);
        return -1;
    }
    ld->c->src = s;
    s[ld->c->n_src].name = nm;
    s[ld->c->n_src].text = text;
    ld->c->n_src++;
    return 0;
}

static int scan_includes(loader *ld, const char *text, const char *file, int depth);

/* libconfig 1.5 joins every @include path to the include directory, an absolute one
 * too ("/etc/nlpd//usr/share/x.conf"). In the top file, which libconfig reads from our
 * copy, `@include "/abs"` becomes `@include "../../abs"` with enough "../" to reach /
 * from the directory; lines keep their numbers. Returns the new text or NULL (memory). */
static char *climb_absolute(const char *text, int up)
{
    size_t n = 0, extra = 3 * (size_t)up;
    for (const char *p = text; (p = strstr(p, "@include")); p += 8) n++;
    char *out = malloc(strlen(text) + n * extra + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = text; *p;) {
        const char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p + 1) : strlen(p);
        if (!strncmp(q, "@include", 8) && (q[8] == ' ' || q[8] == '\t')) {
            const char *v = q + 8;
            while (*v == ' ' || *v == '\t') v++;
            if (v[0] == '"' && v[1] == '/') {
                memcpy(o, p, (size_t)(v + 1 - p));
                o += v + 1 - p;
                for (int i = 0; i < up; i++, o += 3) memcpy(o, "../", 3);
                len -= (size_t)(v + 2 - p);
                p = v + 2;
            }
        }
        memcpy(o, p, len);
        o += len;
        p += len;
    }
    *o = '\0';
    return out;
}

/* Reads one file within what is left of the budget and scans it for includes. `name` is
 * the include path as written (NULL for the top file), `shown` what errors call it. */
static int read_one(loader *ld, const char *path, const char *name, const char *shown, int line,
                    int depth)
{
    char *text;
    size_t len;
    int rc = cm_read_file(path, ld->left, &text, &len);
    if (rc == -EFBIG) {
        if (name)
            snprintf(ld->err, ld->errlen,
                     "%s:%d: @include \"%s\": the config files together are over %zu bytes", shown,
                     line, name, ld->max);
        else snprintf(ld->err, ld->errlen, "%s: the config file is over %zu bytes", path, ld->max);
        return -1;
    }
    if (rc < 0) {
        /* A missing include is libconfig's to report, with its line. */
        if (name) return 0;
        snprintf(ld->err, ld->errlen, "%s: cannot read the config file (%s)", path, strerror(-rc));
        return -1;
    }
    ld->left -= len;
    if (!name && ld->up > 0) {
        char *t = climb_absolute(text, ld->up);
        free(text);
        text = t;
        if (!text) {
            snprintf(ld->err, ld->errlen, "%s: out of memory", path);
            return -1;
        }
    }
    if (add_src(ld, name, text) < 0) {
        free(text);
        snprintf(ld->err, ld->errlen, "%s: out of memory", path);
        return -1;
    }
    return depth < MAX_DEPTH ? scan_includes(ld, text, name ? name : path, depth + 1) : 0;
}

/* Reads every file `text` includes, the way libconfig 1.5's scanner finds them: a line
 * that starts (after blanks) with `@include "path"`. A line inside a multi-line string
 * or comment counts too: at worst a file is measured that libconfig will not read. */
static int scan_includes(loader *ld, const char *text, const char *file, int depth)
{
    int line = 1;
    for (const char *p = text; *p; line++) {
        const char *eol = strchr(p, '\n');
        const char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (!strncmp(q, "@include", 8) && (q[8] == ' ' || q[8] == '\t')) {
            q += 8;
            while (*q == ' ' || *q == '\t') q++;
            if (*q == '"') {
                char name[1024], path[2048];
                size_t n = 0;
                for (q++; *q && *q != '"' && *q != '\n' && n < sizeof name - 1; q++) {
                    if (*q == '\\' && (q[1] == '"' || q[1] == '\\')) q++;
                    name[n++] = *q;
                }
                name[n] = '\0';
                if (name[0] == '/') { /* only the top file's are climbed */
                    snprintf(ld->err, ld->errlen,
                             "%s:%d: @include \"%s\": an absolute path "
                             "works in the top config file only (libconfig 1.5 reads it "
                             "under %s)",
                             file, line, name, ld->dir);
                    return -1;
                }
                snprintf(path, sizeof path, "%s/%s", ld->dir, name);
                if (*q == '"' && read_one(ld, path, name, file, line, depth) < 0) return -1;
            }
        }
        if (!eol) break;
        p = eol + 1;
    }
    return 0;
}

int cm_conf_load(cm_conf *c, const char *path, size_t max_bytes, char *err, size_t errlen)
{
    char dir[1024];
    memset(c, 0, sizeof *c);
    config_init(&c->cfg);
    /* Includes resolve against the config file's directory, not the cwd. */
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    config_set_include_dir(&c->cfg, dir);

    loader ld = { c, dir, 0, max_bytes, max_bytes, err, errlen };
    char real[PATH_MAX];
    if (realpath(dir, real)) /* else the file cannot be read either: said below */
        for (const char *s = real; *s; s++) ld.up += *s == '/' && s[1];
    ld.up += 1; /* "/" itself, and a symlinked directory resolves no deeper */
    if (read_one(&ld, path, NULL, path, 0, 0) < 0) return -1;
    if (!config_read_string(&c->cfg, c->src[0].text)) {
        const char *f = config_error_file(&c->cfg);
        if (config_error_type(&c->cfg) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read the config file", f ? f : path);
        else
            snprintf(err, errlen, "%s:%d: %s", f ? f : path, config_error_line(&c->cfg),
                     config_error_text(&c->cfg));
        return -1;
    }
    return 0;
}

void cm_conf_free(cm_conf *c)
{
    config_destroy(&c->cfg);
    for (int i = 0; i < c->n_src; i++) {
        free(c->src[i].name);
        free(c->src[i].text);
    }
    free(c->src);
    c->src = NULL;
    c->n_src = 0;
}

static int name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '*';
}

static const char *skip_blank(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

/* 1 when `at` is inside a string that starts on the same line at or after p. */
static int in_string(const char *p, const char *at)
{
    int in = 0;
    for (; p < at; p++) {
        if (in && *p == '\\' && p + 1 < at) p++;
        else if (*p == '"') in = !in;
    }
    return in;
}

/* The integer literal assigned to `name` on line `line` of text: its start and length,
 * or NULL. The name comes first on the setting's line; the value may follow on later
 * lines. A float ("1.5", "1e3") is not an integer literal. */
static const char *find_literal(const char *text, int line, const char *name, size_t *len)
{
    const char *p = text;
    for (int l = 1; l < line && p; l++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p) return NULL;
    const char *eol = strchr(p, '\n');
    size_t nl = strlen(name);
    for (const char *at = p; (at = strstr(at, name)) && (!eol || at < eol); at += nl) {
        if ((at > text && name_char(at[-1])) || name_char(at[nl]) || in_string(p, at)) continue;
        const char *q = skip_blank(at + nl);
        if (*q != '=' && *q != ':') continue;
        const char *lit = skip_blank(q + 1), *e = lit;
        if (*e == '-' || *e == '+') e++;
        if (e[0] == '0' && (e[1] == 'x' || e[1] == 'X')) {
            e += 2;
            while ((*e >= '0' && *e <= '9') || (*e >= 'a' && *e <= 'f') || (*e >= 'A' && *e <= 'F'))
                e++;
        } else {
            const char *d = e;
            while (*e >= '0' && *e <= '9') e++;
            if (e == d) continue;
        }
        while (*e == 'L') e++;
        if (name_char(*e) || *e == '.') continue;
        *len = (size_t)(e - lit);
        return lit;
    }
    return NULL;
}

int cm_conf_int(const cm_conf *c, const config_setting_t *s, long long *v, char *lit, size_t litcap)
{
    long long lv = config_setting_get_int64(s);
    const char *name = config_setting_name(s), *file = config_setting_source_file(s);
    const char *text = NULL, *l;
    size_t len;

    *v = lv;
    snprintf(lit, litcap, "%lld", lv);
    for (int i = 0; i < c->n_src && !text && name; i++)
        if ((!file && !c->src[i].name) || (file && c->src[i].name && !strcmp(file, c->src[i].name)))
            text = c->src[i].text;
    if (!text || !(l = find_literal(text, (int)config_setting_source_line(s), name, &len)))
        return 0;
    snprintf(lit, litcap, "%.*s", (int)len, l);
    int neg = *l == '-';
    const char *d = l + (*l == '-' || *l == '+');
    char *end;
    errno = 0;
    int hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
    unsigned long long mag = strtoull(d, &end, hex ? 16 : 10);
    if (errno == ERANGE || mag > (unsigned long long)LLONG_MAX + neg) return -ERANGE;
    *v = neg ? (mag == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)mag)
             : (long long)mag;
    return 0;
}
