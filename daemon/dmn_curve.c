/* CurveZMQ (see dmn_curve.h). The main thread makes key pairs and checks the config;
 * the I/O thread starts the ZAP handler and sets the ROUTER's options; the ZAP thread
 * (started here) owns its REP socket on inproc://zeromq.zap.01 and the set of allowed
 * keys, which it re-reads when SIGHUP bumps dmn_reload_gen. It ends when zmq_ctx_term
 * makes its poll fail with ETERM (the server terminates the context at exit).
 *
 * ZAP (ZeroMQ RFC 27): a request is version "1.0", request id, domain, address,
 * routing id, mechanism, then the credentials (CURVE: the client's 32-byte public key);
 * the reply is version, request id, status "200" or "400", text, user id, metadata. */
#include "daemon/dmn_curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon/dmn_http.h" /* dmn_reload_gen */
#include "daemon/dmn_log.h"
#include "daemon/dmn_server.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "nlpd"
#define MAX_ALLOWED 4096
#define CERT_MAX_BYTES 65536

/* ---- certificates ---- */

static int write_file(const char *path, const char *text, int mode, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rc = close(fd);
    if (w != (ssize_t)len || rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int dmn_curve_make_keypair(const char *prefix, char *err, size_t errlen)
{
    char pub[41], sec[41], path[4096], stamp[64], text[1024];
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "zmq_curve_keypair: %s (libzmq without CURVE?)",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    /* zcert_save's layout (ZPL), so czmq, pyzmq's zmq.auth and others read them. */
    snprintf(text, sizeof text,
             "#   ****  Generated on %s by nlpd  ****\n"
             "#   ZeroMQ CURVE **Secret** Certificate\n"
             "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
             "metadata\ncurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             stamp, pub, sec);
    if (snprintf(path, sizeof path, "%s_secret", prefix) >= (int)sizeof path) {
        snprintf(err, errlen, "the prefix is too long");
        return -1;
    }
    if (write_file(path, text, 0600, err, errlen) < 0) return -1;
    snprintf(text, sizeof text,
             "#   ****  Generated on %s by nlpd  ****\n"
             "#   ZeroMQ CURVE Public Certificate\n"
             "#   Exchange securely, or use a secure mechanism to verify the contents\n"
             "#   of this file after exchange. Store public certificates in your home\n"
             "#   directory, in the .curve subdirectory.\n\n"
             "metadata\ncurve\n    public-key = \"%s\"\n",
             stamp, pub);
    return write_file(prefix, text, 0644, err, errlen);
}

/* The value of `name = "Z85"` (or unquoted) on a line; 0 when found and 40 characters. */
static int key_value(const char *line, const char *name, char *out)
{
    while (*line == ' ' || *line == '\t') line++;
    size_t nl = strlen(name);
    if (strncmp(line, name, nl) != 0) return -1;
    line += nl;
    while (*line == ' ' || *line == '\t') line++;
    if (*line++ != '=') return -1;
    while (*line == ' ' || *line == '\t') line++;
    char q = *line == '"' || *line == '\'' ? *line++ : 0;
    size_t n = 0;
    while (line[n] && line[n] != q && line[n] != '\n' && line[n] != '\r' &&
           (q || (line[n] != ' ' && line[n] != '#')))
        n++;
    if (n != 40) return -2;
    memcpy(out, line, 40);
    out[40] = 0;
    return 0;
}

int dmn_curve_read_cert(const char *path, char *pub, char *sec, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int lineno = 0, bad = 0;
    pub[0] = 0;
    if (sec) sec[0] = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    long size = 0;
    while (fgets(line, sizeof line, f) && (size += (long)strlen(line)) <= CERT_MAX_BYTES) {
        lineno++;
        int rc = key_value(line, "public-key", pub);
        if (rc == -2) bad = lineno;
        if (sec) {
            rc = key_value(line, "secret-key", sec);
            if (rc == -2) bad = lineno;
        }
    }
    fclose(f);
    uint8_t bin[32];
    if (bad) snprintf(err, errlen, "%s:%d: a key is not 40 Z85 characters", path, bad);
    else if (!pub[0]) snprintf(err, errlen, "%s: no public-key (not a CZMQ certificate)", path);
    else if (!zmq_z85_decode(bin, pub) || (sec && sec[0] && !zmq_z85_decode(bin, sec)))
        snprintf(err, errlen, "%s: a key is not valid Z85", path);
    else return 0;
    return -1;
}

/* ---- config ---- */

static int loopback_tcp(const char *ep)
{
    const char *h = ep + 6; /* after tcp:// */
    return strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
           strncmp(h, "[::1]:", 6) == 0 || strncmp(h, "lo:", 3) == 0; /* lo: the interface */
}

int dmn_curve_check_conf(const dmn_conf *c, char *err, size_t errlen)
{
    const dmn_security_conf *s = &c->security;
    if ((s->curve_secret_key_file[0] != 0) != (s->curve_allowed_keys_dir[0] != 0)) {
        snprintf(err, errlen,
                 "security: curve_secret_key_file and curve_allowed_keys_dir go "
                 "together (a CURVE server admits the public keys of that directory)");
        return -1;
    }
    if (s->curve_secret_key_file[0] || s->allow_insecure) return 0;
    for (int i = 0; i < c->n_binds; i++)
        if (strncmp(c->binds[i], "tcp://", 6) == 0 && !loopback_tcp(c->binds[i])) {
            snprintf(err, errlen,
                     "bind %s is not a loopback address and the ROUTER has no "
                     "keys: anyone who reaches it could submit work. Set "
                     "security.curve_secret_key_file and security.curve_allowed_keys_dir "
                     "(nlpd --make-keypair makes keys), or security.allow_insecure = true",
                     c->binds[i]);
            return -1;
        }
    return 0;
}

/* ---- the ZAP handler ---- */

typedef struct zap {
    void *sock; /* REP, bound to ZAP_ENDPOINT; this thread's */
    char dir[1024];
    uint8_t (*keys)[32];
    int n_keys;
    sig_atomic_t reload_seen;
} zap;

/* Reads every certificate of the directory (files that are not are logged and skipped).
 * The set is replaced only when the directory could be read. */
static int load_keys(zap *z, char *err, size_t errlen)
{
    DIR *d = opendir(z->dir);
    if (!d) {
        snprintf(err, errlen, "security.curve_allowed_keys_dir %s: %s", z->dir, strerror(errno));
        return -1;
    }
    uint8_t(*keys)[32] = calloc(MAX_ALLOWED, sizeof *keys);
    int n = 0;
    struct dirent *e;
    while (keys && (e = readdir(d)) && n < MAX_ALLOWED) {
        char path[2048], pub[41], why[512];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", z->dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (dmn_curve_read_cert(path, pub, NULL, why, sizeof why) < 0) {
            DMN_LOG(DMN_LOG_WARN, "curve: skipped %s", why);
            continue;
        }
        zmq_z85_decode(keys[n++], pub);
    }
    closedir(d);
    if (!keys) {
        snprintf(err, errlen, "out of memory reading the allowed keys");
        return -1;
    }
    free(z->keys);
    z->keys = keys;
    z->n_keys = n;
    DMN_LOG(DMN_LOG_INFO, "curve: %d allowed client key(s) from %s", n, z->dir);
    return 0;
}

static int allowed(const zap *z, const uint8_t *key)
{
    for (int i = 0; i < z->n_keys; i++)
        if (memcmp(z->keys[i], key, 32) == 0) return 1;
    return 0;
}

/* Answers one ZAP request (all its frames read). -1 when the context is ending. */
static int zap_serve(zap *z)
{
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, z->sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
            return zmq_errno() == ETERM ? -1 : 0;
        }
        more = zmq_msg_more(&m);
        if (n < 8) f[n++] = m;
        else zmq_msg_close(&m);
    }
    /* 0 version, 1 request id, 2 domain, 3 address, 4 routing id, 5 mechanism, 6 key */
    int ok = n == 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
             zmq_msg_size(&f[6]) == 32 && allowed(z, zmq_msg_data(&f[6]));
    if (!ok) {
        char who[64] = "?";
        if (n >= 4)
            snprintf(who, sizeof who, "%.*s",
                     (int)zmq_msg_size(&f[3]) < 60 ? (int)zmq_msg_size(&f[3]) : 60,
                     (const char *)zmq_msg_data(&f[3]));
        DMN_LOG(DMN_LOG_WARN, "curve: refused a client from %s (%s)", who,
                n == 7 && zmq_msg_size(&f[6]) == 32 ? "key not in curve_allowed_keys_dir"
                                                    : "not CURVE");
    }
    const char *status = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0,
             ZMQ_SNDMORE);
    zmq_send(z->sock, status, 3, ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, "", 0, ZMQ_SNDMORE); /* user id */
    zmq_send(z->sock, "", 0, 0);           /* metadata */
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    return 0;
}

static void *zap_main(void *arg)
{
    zap *z = arg;
    for (;;) {
        if (z->reload_seen != dmn_reload_gen) {
            char err[512];
            z->reload_seen = dmn_reload_gen;
            if (load_keys(z, err, sizeof err) < 0)
                DMN_LOG(DMN_LOG_ERROR, "SIGHUP: %s (the previous keys stay)", err);
        }
        zmq_pollitem_t it = { z->sock, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll(&it, 1, 200);
        if (rc < 0 && zmq_errno() == ETERM) break;
        if (rc > 0 && zap_serve(z) < 0) break;
    }
    zmq_close(z->sock);
    free(z->keys);
    free(z);
    return NULL;
}

int dmn_curve_start(dmn_server *srv, char *err, size_t errlen)
{
    const dmn_security_conf *s = &srv->conf.security;
    if (!s->curve_secret_key_file[0]) return 0;
    zap *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(z->dir, sizeof z->dir, "%s", s->curve_allowed_keys_dir);
    z->reload_seen = dmn_reload_gen;
    if (load_keys(z, err, errlen) < 0) goto fail;
    int linger = 0;
    z->sock = zmq_socket(srv->zctx, ZMQ_REP);
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "ZAP handler %s: %s", ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        goto fail;
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, zap_main, z);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the ZAP thread: %s", strerror(rc));
        goto fail;
    }
    return 0;
fail:
    if (z->sock) zmq_close(z->sock);
    free(z->keys);
    free(z);
    return -1;
}

int dmn_curve_server(dmn_server *srv, void *sock, char *err, size_t errlen)
{
    const dmn_security_conf *s = &srv->conf.security;
    char pub[41], sec[41];
    int one = 1;
    if (!s->curve_secret_key_file[0]) return 0;
    if (dmn_curve_read_cert(s->curve_secret_key_file, pub, sec, err, errlen) < 0) return -1;
    if (!sec[0]) {
        snprintf(err, errlen, "%s has no secret-key (give the PREFIX_secret file)",
                 s->curve_secret_key_file);
        return -1;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0) {
        snprintf(err, errlen, "CURVE server: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    /* Without a handler libzmq admits everyone: refuse instead (libzmq >= 4.3). */
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
    zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one);
#endif
    memset(sec, 0, sizeof sec);
    DMN_LOG(DMN_LOG_INFO, "CURVE server, public key %s", pub);
    return 0;
}
