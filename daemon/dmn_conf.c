/* Daemon configuration. Main thread only, at start-up (see dmn_conf.h). */
#include "daemon/dmn_conf.h"

#include <libconfig.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cm_conf.h"
#include "common/common.h"
#include "daemon/dmn_curve.h"
#include "daemon/dmn_log.h"
#include "engine/engine.h"
#include "tasks/task.h"

enum key_type { KEY_INT = 1, KEY_STR = 2, KEY_BOOL = 3, KEY_LEVEL = 4 };

typedef struct conf_key {
    const char *path; /* dotted libconfig path */
    int type;
    size_t off;  /* offset in dmn_conf */
    size_t size; /* KEY_STR: buffer size */
    long long min, max, def;
    const char *sdef;
} conf_key;

#define INT_KEY(p, f, mn, mx, d)                              \
    {                                                         \
        p, KEY_INT, offsetof(dmn_conf, f), 0, mn, mx, d, NULL \
    }
#define STR_KEY(p, f, d)                                                          \
    {                                                                             \
        p, KEY_STR, offsetof(dmn_conf, f), sizeof(((dmn_conf *)0)->f), 0, 0, 0, d \
    }
#define BOOL_KEY(p, f, d)                                    \
    {                                                        \
        p, KEY_BOOL, offsetof(dmn_conf, f), 0, 0, 1, d, NULL \
    }

/* The one table of scalar keys: their defaults, ranges and where they land. `bind` (a
 * list) and the tasks group are handled apart. */
static const conf_key keys[] = {
    STR_KEY("model", model_dir, "models/flan-t5-small"),
    INT_KEY("threads", threads, 0, 256, 0),
    STR_KEY("weights", weights, "auto"),
    { "log_level", KEY_LEVEL, offsetof(dmn_conf, log_level), 0, 0, 3, DMN_LOG_INFO, "info" },
    INT_KEY("linger_ms", linger_ms, 0, 60000, 2000),
    STR_KEY("pipeline.pull", pull, ""),
    STR_KEY("pipeline.push", push, ""),
    BOOL_KEY("pipeline.connect", pipeline_connect, 1),
    INT_KEY("limits.max_message_bytes", limits.max_message_bytes, 64, 256 << 20, 1 << 20),
    INT_KEY("limits.max_documents", limits.max_documents, 1, 100000, 64),
    INT_KEY("limits.max_input_tokens", limits.max_input_tokens, 8, 8192, 512),
    INT_KEY("limits.max_new_tokens", limits.max_new_tokens, 1, 4096, 256),
    INT_KEY("limits.max_labels", limits.max_labels, 1, 1024, 64),
    INT_KEY("limits.queue_size", limits.queue_size, 1, 1000000, 1024),
    INT_KEY("limits.default_deadline_ms", limits.default_deadline_ms, 1, 86400000, 60000),
    INT_KEY("limits.max_envelope_bytes", limits.max_envelope_bytes, 0, 65536, 1024),
    INT_KEY("limits.max_reply_backlog_bytes", limits.max_reply_backlog_bytes, 65536, 1 << 30,
            16 << 20),
    INT_KEY("limits.max_queued_bytes", limits.max_queued_bytes, 1 << 20, 1 << 30, 256 << 20),
    INT_KEY("limits.max_client_documents", limits.max_client_documents, 0, 1000000, 0),
    INT_KEY("batching.max_batch_tokens", batching.max_batch_tokens, 8, 1 << 20, 8192),
    INT_KEY("batching.max_wait_ms", batching.max_wait_ms, 0, 10000, 5),
    INT_KEY("batching.max_rows", batching.max_rows, 1, 1024, 32),
    STR_KEY("queue.redis", queue.redis, ""),
    STR_KEY("queue.stream", queue.stream, "nlpd:requests"),
    STR_KEY("queue.group", queue.group, "nlpd"),
    STR_KEY("queue.consumer", queue.consumer, ""),
    STR_KEY("queue.results", queue.results, "nlpd:results"),
    STR_KEY("queue.dead_letter", queue.dead_letter, "nlpd:dead"),
    INT_KEY("queue.claim_idle_ms", queue.claim_idle_ms, 100, 86400000, 30000),
    INT_KEY("queue.max_deliveries", queue.max_deliveries, 1, 1000, 5),
    STR_KEY("http.bind", http.bind, ""),
    STR_KEY("http.tokens_file", http.tokens_file, ""),
    BOOL_KEY("http.open_health", http.open_health, 1),
    BOOL_KEY("http.open_metrics", http.open_metrics, 0),
    INT_KEY("http.max_connections", http.max_connections, 1, 65536, 256),
    INT_KEY("http.timeout_s", http.timeout_s, 1, 3600, 30),
    STR_KEY("security.curve_secret_key_file", security.curve_secret_key_file, ""),
    STR_KEY("security.curve_allowed_keys_dir", security.curve_allowed_keys_dir, ""),
    BOOL_KEY("security.allow_insecure", security.allow_insecure, 0),
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

/* Top-level names and groups that are the daemon's; anything else at the top level but
 * `tasks` is a typo worth an error. */
static const char *const groups[] = {
    "pipeline", "limits", "batching", "http", "security", "queue"
};

static void *field(dmn_conf *c, const conf_key *k) { return (char *)c + k->off; }

void dmn_conf_defaults(dmn_conf *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        const conf_key *k = &keys[i];
        if (k->type == KEY_STR) snprintf(field(c, k), k->size, "%s", k->sdef);
        else *(int *)field(c, k) = (int)k->def;
    }
    c->n_binds = 2;
    snprintf(c->binds[0], sizeof c->binds[0], "tcp://127.0.0.1:5555");
    /* the runtime directory ($RUNTIME_DIRECTORY, ...: cm_runtime_dir), not /tmp */
    if (cm_default_ipc(c->binds[1], sizeof c->binds[1]) < 0) c->n_binds = 1;
}

static int where(const config_setting_t *s, const char *fallback, char *err, size_t errlen)
{
    const char *file = config_setting_source_file(s);
    return snprintf(err, errlen, "%s:%u: ", file ? file : fallback, config_setting_source_line(s));
}

static int key_known(const char *group, const char *name)
{
    size_t gl = strlen(group);
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].path, group, gl) == 0 && keys[i].path[gl] == '.' &&
            strcmp(keys[i].path + gl + 1, name) == 0)
            return 1;
    return 0;
}

static int check_unknown(const config_t *cfg, const char *path, char *err, size_t errlen)
{
    const config_setting_t *root = config_root_setting(cfg);
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        int known =
            strcmp(name, "tasks") == 0 || strcmp(name, "bind") == 0 || strcmp(name, "models") == 0;
        for (int k = 0; k < N_KEYS && !known; k++) known = strcmp(keys[k].path, name) == 0;
        int is_group = 0;
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
            if (strcmp(groups[g], name) == 0) is_group = known = 1;
        if (!known) {
            int n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "unknown setting '%s'", name);
            return -1;
        }
        if (!is_group) continue;
        if (!config_setting_is_group(s)) {
            int n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "'%s' must be a group { ... }", name);
            return -1;
        }
        for (int j = 0; j < config_setting_length(s); j++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)j);
            if (!key_known(name, config_setting_name(e))) {
                int n = where(e, path, err, errlen);
                snprintf(err + n, errlen - n, "unknown setting '%s.%s'", name,
                         config_setting_name(e));
                return -1;
            }
        }
    }
    return 0;
}

static int read_key(dmn_conf *c, const cm_conf *cf, const conf_key *k, const config_setting_t *s,
                    const char *path, char *err, size_t errlen)
{
    int t = config_setting_type(s), n;
    switch (k->type) {
    case KEY_INT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "%s must be an integer", k->path);
            return -1;
        }
        /* As written: libconfig wraps what does not fit (99999999999999999999 is -1). */
        long long v;
        char lit[32];
        if (cm_conf_int(cf, s, &v, lit, sizeof lit) < 0 || v < k->min || v > k->max) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "%s = %s is out of range [%lld, %lld]", k->path, lit,
                     k->min, k->max);
            return -1;
        }
        *(int *)field(c, k) = (int)v;
        return 0;
    }
    case KEY_BOOL:
        if (t != CONFIG_TYPE_BOOL) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "%s must be true or false", k->path);
            return -1;
        }
        *(int *)field(c, k) = config_setting_get_bool(s);
        return 0;
    case KEY_STR:
    case KEY_LEVEL: {
        const char *v = t == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        if (!v) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "%s must be a string", k->path);
            return -1;
        }
        if (k->type == KEY_LEVEL) {
            int lvl = dmn_log_level_from_name(v);
            if (lvl < 0) {
                n = where(s, path, err, errlen);
                snprintf(err + n, errlen - n,
                         "%s = \"%s\": expected \"error\", \"warn\", \"info\" or \"debug\"",
                         k->path, v);
                return -1;
            }
            *(int *)field(c, k) = lvl;
            return 0;
        }
        if (strlen(v) >= k->size) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "%s is longer than %zu bytes", k->path, k->size - 1);
            return -1;
        }
        snprintf(field(c, k), k->size, "%s", v);
        return 0;
    }
    }
    return -1;
}

static int read_binds(dmn_conf *c, const config_setting_t *s, const char *path, char *err,
                      size_t errlen)
{
    int n;
    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        n = where(s, path, err, errlen);
        snprintf(err + n, errlen - n, "bind must be a list of endpoints [ \"tcp://...\", ... ]");
        return -1;
    }
    c->n_binds = 0;
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *v =
            config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
        char why[256];
        if (!v) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "bind[%d] must be a string", i);
            return -1;
        }
        if (dmn_conf_add_bind(c, v, why, sizeof why) < 0) {
            n = where(s, path, err, errlen);
            snprintf(err + n, errlen - n, "bind[%d]: %s", i, why);
            return -1;
        }
    }
    return 0;
}

static int endpoint_ok(const char *ep)
{
    return strncmp(ep, "tcp://", 6) == 0 || strncmp(ep, "ipc://", 6) == 0 ||
           strncmp(ep, "inproc://", 9) == 0;
}

int dmn_conf_add_bind(dmn_conf *c, const char *ep, char *err, size_t errlen)
{
    if (c->n_binds >= DMN_MAX_BINDS) {
        snprintf(err, errlen, "more than %d bind endpoints", DMN_MAX_BINDS);
        return -1;
    }
    if (strlen(ep) >= sizeof c->binds[0]) {
        snprintf(err, errlen, "endpoint longer than %zu bytes", sizeof c->binds[0] - 1);
        return -1;
    }
    if (!endpoint_ok(ep)) {
        snprintf(err, errlen, "endpoint '%s' is not tcp://, ipc:// or inproc://", ep);
        return -1;
    }
    snprintf(c->binds[c->n_binds++], sizeof c->binds[0], "%s", ep);
    return 0;
}

/* ---- where the config is, and paths relative to it ---- */

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int dmn_conf_find(const char *given, char *out, size_t cap, char *err, size_t errlen)
{
    const char *env = getenv("NLPD_CONF");
    char exe[PATH_MAX], cand[PATH_MAX + 32], mark[PATH_MAX + 32];
    ssize_t n;

    /* Named ones are taken as named: a missing file is then an error, not a fallback. */
    if (!given && env && env[0]) given = env;
    if (!given && is_file(DMN_CONF_ETC)) given = DMN_CONF_ETC;
    if (given) {
        if (strlen(given) >= cap) {
            snprintf(err, errlen, "config path too long: %s", given);
            return -1;
        }
        snprintf(out, cap, "%s", given);
        return 0;
    }
    /* A development build: build/nlpd (or build/x/nlpd) under the source tree. */
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = '\0';
            snprintf(cand, sizeof cand, "%s/conf/nlpd.conf", exe);
            snprintf(mark, sizeof mark, "%s/daemon/main.c", exe);
            if (is_file(cand) && is_file(mark) && strlen(cand) < cap) {
                snprintf(out, cap, "%s", cand);
                return 0;
            }
        }
    }
    snprintf(err, errlen,
             "no config file: no -c FILE, NLPD_CONF unset, no %s, and nlpd "
             "does not run from a source tree (conf/nlpd.conf)",
             DMN_CONF_ETC);
    return -1;
}

/* Settings that name files: relative to the file that sets them. */
static int is_path_key(const char *key)
{
    static const char *const paths[] = { "model", "http.tokens_file",
                                         "security.curve_secret_key_file",
                                         "security.curve_allowed_keys_dir" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (strcmp(paths[i], key) == 0) return 1;
    return 0;
}

/* Rewrites a relative path value read from setting s of the config `path` so that it is
 * relative to that file's directory (an @include file's own directory: libconfig names
 * it as written, relative to the top file's directory). */
static int beside_conf_str(char *v, size_t size, const char *what, const config_setting_t *s,
                           const char *path, char *err, size_t errlen)
{
    char file[PATH_MAX * 2], joined[PATH_MAX * 3];
    const char *src = config_setting_source_file(s);
    if (!v[0] || v[0] == '/') return 0;
    if (src && src[0] != '/') {
        const char *slash = strrchr(path, '/');
        snprintf(file, sizeof file, "%.*s%s", slash ? (int)(slash - path + 1) : 0, path, src);
    } else {
        snprintf(file, sizeof file, "%s", src ? src : path);
    }
    char *slash = strrchr(file, '/');
    if (!slash) return 0; /* a file in the working directory: as is */
    slash[1] = '\0';
    int len = snprintf(joined, sizeof joined, "%s%s", file, v);
    if (len < 0 || (size_t)len >= size) {
        int w = where(s, path, err, errlen);
        snprintf(err + w, errlen - w, "%s: \"%s\" relative to %s is longer than %zu bytes", what, v,
                 file, size - 1);
        return -1;
    }
    snprintf(v, size, "%s", joined);
    return 0;
}

static int beside_conf(dmn_conf *c, const conf_key *k, const config_setting_t *s, const char *path,
                       char *err, size_t errlen)
{
    return beside_conf_str(field(c, k), k->size, k->path, s, path, err, errlen);
}

int dmn_conf_add_model(dmn_conf *c, const char *name, const char *path, const char *weights,
                       unsigned tasks, char *err, size_t errlen)
{
    char base[128];
    if (!path || !path[0]) {
        snprintf(err, errlen, "model%s%s%s: no path", name && name[0] ? " \"" : "",
                 name ? name : "", name && name[0] ? "\"" : "");
        return -1;
    }
    if (!name || !name[0]) { /* "models/x/" is x */
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && path[b - 1] != '/') b--;
        snprintf(base, sizeof base, "%.*s", (int)(n - b), path + b);
        name = base;
    }
    if (c->n_models >= DMN_MAX_MODELS) {
        snprintf(err, errlen, "model \"%s\": more than %d models", name, DMN_MAX_MODELS);
        return -1;
    }
    dmn_model_conf *m = &c->models[c->n_models];
    if (strlen(name) >= sizeof m->name || strlen(path) >= sizeof m->path) {
        snprintf(err, errlen, "model \"%.64s\": name or path too long", name);
        return -1;
    }
    for (int i = 0; i < c->n_models; i++)
        if (!strcmp(c->models[i].name, name)) {
            snprintf(err, errlen,
                     "model \"%s\": the name is given twice (models[%d] and "
                     "models[%d]); give each a distinct name = \"...\"",
                     name, i, c->n_models);
            return -1;
        }
    if (weights && weights[0] && eng_weights_parse(weights) < 0) {
        snprintf(err, errlen,
                 "model \"%s\": weights = \"%.32s\": expected \"auto\", "
                 "\"f32\", \"bf16\", \"f16\" or \"int8\"",
                 name, weights);
        return -1;
    }
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->path, sizeof m->path, "%s", path);
    snprintf(m->weights, sizeof m->weights, "%s", weights ? weights : "");
    m->tasks = tasks;
    c->n_models++;
    return 0;
}

/* models = ( { name; path; weights; tasks }, ... ): each entry's errors name it. */
static int read_models(dmn_conf *c, const config_setting_t *list, const char *path, char *err,
                       size_t errlen)
{
    int n;
    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        n = where(list, path, err, errlen);
        snprintf(err + n, errlen - n, "models must be a list ( { name = ...; path = ...; }, ... )");
        return -1;
    }
    c->n_models = 0;
    for (int i = 0; i < config_setting_length(list); i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        char why[512], p[1024] = "";
        const char *name = "", *w = "", *v;
        unsigned tasks = 0;
        n = where(e, path, err, errlen);
        if (!config_setting_is_group(e)) {
            snprintf(err + n, errlen - n, "models[%d] must be a group { name = ...; path = ...; }",
                     i);
            return -1;
        }
        for (int j = 0; j < config_setting_length(e); j++) {
            const config_setting_t *f = config_setting_get_elem(e, (unsigned)j);
            const char *k = config_setting_name(f);
            if (strcmp(k, "name") && strcmp(k, "path") && strcmp(k, "weights") &&
                strcmp(k, "tasks")) {
                n = where(f, path, err, errlen);
                snprintf(err + n, errlen - n,
                         "models[%d]: unknown setting '%s' (name, path, "
                         "weights, tasks)",
                         i, k);
                return -1;
            }
        }
        const config_setting_t *f;
        if ((f = config_setting_get_member(e, "name"))) {
            if (!(name = config_setting_get_string(f)) || !name[0]) {
                n = where(f, path, err, errlen);
                snprintf(err + n, errlen - n, "models[%d]: name must be a non-empty string", i);
                return -1;
            }
        }
        if ((f = config_setting_get_member(e, "weights")) && !(w = config_setting_get_string(f))) {
            n = where(f, path, err, errlen);
            snprintf(err + n, errlen - n, "models[%d]: weights must be a string", i);
            return -1;
        }
        if ((f = config_setting_get_member(e, "path"))) {
            if (!(v = config_setting_get_string(f)) || strlen(v) >= sizeof p) {
                n = where(f, path, err, errlen);
                snprintf(err + n, errlen - n,
                         "models[%d]: path must be a string (under %zu "
                         "bytes)",
                         i, sizeof p);
                return -1;
            }
            snprintf(p, sizeof p, "%s", v);
            if (beside_conf_str(p, sizeof p, "models.path", f, path, err, errlen) < 0) return -1;
        }
        if ((f = config_setting_get_member(e, "tasks"))) {
            if (!config_setting_is_array(f) && !config_setting_is_list(f)) {
                n = where(f, path, err, errlen);
                snprintf(err + n, errlen - n,
                         "models[%d]: tasks must be a list [\"summarize\", ...]", i);
                return -1;
            }
            for (int j = 0; j < config_setting_length(f); j++) {
                const char *t = config_setting_get_string_elem(f, (unsigned)j);
                task_kind k = t ? task_kind_from_name(t) : TASK_NONE;
                if (k == TASK_NONE) {
                    n = where(f, path, err, errlen);
                    snprintf(err + n, errlen - n,
                             "models[%d]%s%s%s: unknown task '%.32s' in "
                             "tasks (summarize, translate, classify, qa, text2text)",
                             i, name[0] ? " (\"" : "", name, name[0] ? "\")" : "", t ? t : "?");
                    return -1;
                }
                tasks |= 1u << k;
            }
        }
        if (dmn_conf_add_model(c, name, p, w, tasks, why, sizeof why) < 0) {
            n = where(e, path, err, errlen);
            snprintf(err + n, errlen - n, "models[%d]: %s", i, why);
            return -1;
        }
    }
    if (c->n_models == 0) {
        n = where(list, path, err, errlen);
        snprintf(err + n, errlen - n, "models is empty: list at least one model");
        return -1;
    }
    return 0;
}

int dmn_conf_load(dmn_conf *c, const char *path, char *err, size_t errlen)
{
    cm_conf cf;
    snprintf(c->path, sizeof c->path, "%s", path);
    /* Bounded: the file and its includes together (libconfig is slow on huge tokens). */
    int rc = cm_conf_load(&cf, path, CM_CONF_MAX_BYTES, err, errlen);
    if (rc == 0) rc = dmn_conf_from(c, &cf, path, err, errlen);
    cm_conf_free(&cf);
    return rc;
}

int dmn_conf_from(dmn_conf *c, const cm_conf *cf, const char *path, char *err, size_t errlen)
{
    int rc = -1;

    snprintf(c->path, sizeof c->path, "%s", path);
    const config_t *cfg = &cf->cfg;
    if (check_unknown(cfg, path, err, errlen) < 0) goto out;
    for (int i = 0; i < N_KEYS; i++) {
        const config_setting_t *s = config_lookup(cfg, keys[i].path);
        if (s && read_key(c, cf, &keys[i], s, path, err, errlen) < 0) goto out;
        if (s && is_path_key(keys[i].path) && beside_conf(c, &keys[i], s, path, err, errlen) < 0)
            goto out;
    }
    const config_setting_t *b = config_lookup(cfg, "bind");
    if (b && read_binds(c, b, path, err, errlen) < 0) goto out;
    const config_setting_t *ms = config_lookup(cfg, "models");
    if (ms && config_lookup(cfg, "model")) {
        int n = where(ms, path, err, errlen);
        snprintf(err + n, errlen - n,
                 "both model and models are set: list the model in "
                 "models instead");
        goto out;
    }
    if (ms && read_models(c, ms, path, err, errlen) < 0) goto out;
    if (!ms) { /* the old single key: one model named after its directory */
        c->n_models = 0;
        if (dmn_conf_add_model(c, "", c->model_dir, "", 0, err, errlen) < 0) goto out;
    }
    _Static_assert(sizeof c->model_dir == sizeof c->models[0].path, "one path size");
    memcpy(c->model_dir, c->models[0].path, sizeof c->model_dir);
    if (dmn_conf_check(c, err, errlen) < 0) {
        /* cross-key errors have no single line: name the file */
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

int dmn_conf_check(const dmn_conf *c, char *err, size_t errlen)
{
    const dmn_limits *l = &c->limits;
    if (c->n_binds == 0 && !c->pull[0] && !c->queue.redis[0]) {
        snprintf(err, errlen, "no endpoint: set bind (or pipeline.pull, or queue.redis)");
        return -1;
    }
    if ((c->pull[0] != 0) != (c->push[0] != 0)) {
        snprintf(err, errlen, "pipeline needs both pull and push endpoints");
        return -1;
    }
    if ((c->pull[0] && !endpoint_ok(c->pull)) || (c->push[0] && !endpoint_ok(c->push))) {
        snprintf(err, errlen, "pipeline endpoints must be tcp://, ipc:// or inproc://");
        return -1;
    }
    if (l->queue_size < l->max_documents) {
        snprintf(err, errlen,
                 "limits.queue_size (%d) must be at least limits.max_documents (%d), or a "
                 "full-size request could never be queued",
                 l->queue_size, l->max_documents);
        return -1;
    }
    if (c->batching.max_batch_tokens < l->max_input_tokens) {
        snprintf(err, errlen,
                 "batching.max_batch_tokens (%d) must be at least limits.max_input_tokens "
                 "(%d)",
                 c->batching.max_batch_tokens, l->max_input_tokens);
        return -1;
    }
    if (c->queue.redis[0] && strncmp(c->queue.redis, "redis://", 8) != 0 &&
        strncmp(c->queue.redis, "unix://", 7) != 0) {
        snprintf(err, errlen, "queue.redis '%s' is not redis://HOST:PORT or unix:///PATH",
                 c->queue.redis);
        return -1;
    }
    if (c->queue.redis[0] && (!c->queue.stream[0] || !c->queue.group[0] || !c->queue.results[0] ||
                              !c->queue.dead_letter[0])) {
        snprintf(err, errlen, "queue: stream, group, results and dead_letter must not be empty");
        return -1;
    }
    if (!c->model_dir[0]) {
        snprintf(err, errlen, "model is empty");
        return -1;
    }
    if (eng_weights_parse(c->weights) < 0) {
        snprintf(err, errlen,
                 "weights = \"%s\": expected \"auto\", \"f32\", \"bf16\", "
                 "\"f16\" or \"int8\"",
                 c->weights);
        return -1;
    }
    if (dmn_curve_check_conf(c, err, errlen) < 0) return -1;
    return 0;
}

void dmn_conf_dump(const dmn_conf *c, char *out, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < N_KEYS && n < cap; i++) {
        const conf_key *k = &keys[i];
        const void *f = (const char *)c + k->off;
        if (k->type == KEY_STR)
            n += snprintf(out + n, cap - n, "%s = \"%s\"\n", k->path, (const char *)f);
        else if (k->type == KEY_LEVEL)
            n += snprintf(out + n, cap - n, "%s = \"%s\"\n", k->path,
                          dmn_log_level_name(*(const int *)f));
        else if (k->type == KEY_BOOL) /* as libconfig writes it: the output reads back */
            n += snprintf(out + n, cap - n, "%s = %s\n", k->path,
                          *(const int *)f ? "true" : "false");
        else n += snprintf(out + n, cap - n, "%s = %d\n", k->path, *(const int *)f);
    }
    for (int i = 0; i < c->n_binds && n < cap; i++)
        n += snprintf(out + n, cap - n, "bind[%d] = \"%s\"\n", i, c->binds[i]);
    for (int i = 0; i < c->n_models && n < cap; i++) {
        const dmn_model_conf *m = &c->models[i];
        n += snprintf(out + n, cap - n,
                      "models[%d] = { name = \"%s\"; path = \"%s\"; "
                      "weights = \"%s\"; tasks = [",
                      i, m->name, m->path, m->weights[0] ? m->weights : c->weights);
        for (int k = 1, first = 1; k < 8 && n < cap; k++)
            if (m->tasks & (1u << k)) {
                n += snprintf(out + n, cap - n, "%s\"%s\"", first ? "" : ", ",
                              task_kind_name((task_kind)k));
                first = 0;
            }
        if (n < cap) n += snprintf(out + n, cap - n, "]; }\n");
    }
}
