/* Reading a libconfig file with bounds: the file and everything it @includes are read
 * into memory first, CM_CONF_MAX_BYTES at most together (libconfig's scanner takes time
 * quadratic in a token's length: 10 MB took over 20 s), then parsed from the string.
 * And integers as the file wrote them: libconfig 1.5 wraps an integer literal that does
 * not fit its type (99999999999999999999 reads as -1, 4294968320 as 1024), so
 * cm_conf_int reads the literal itself. Used by the daemon's and the tasks' config
 * loaders; main thread, at start-up. */
#ifndef NLP_CM_CONF_H
#define NLP_CM_CONF_H

#include <libconfig.h>
#include <stddef.h>

#define CM_CONF_MAX_BYTES (256 << 10) /* a config file and its @includes together */

typedef struct cm_conf_src {
    char *name; /* as libconfig names it: NULL for the file itself, else
                                * the @include path as written */
    char *text; /* the file's bytes, NUL-terminated */
} cm_conf_src;

typedef struct cm_conf {
    config_t cfg; /* the parsed file: look settings up here */
    int n_src;
    cm_conf_src *src; /* [n_src]: the file, then each @include read */
} cm_conf;

/* Reads and parses `path` (@include paths resolve against its directory, as libconfig
 * does: always joined to it). Returns 0, or -1 with "file[:line]: reason" in err: the
 * file cannot be read, is (with its includes) over max_bytes, or does not parse.
 * c is initialised either way: call cm_conf_free after. */
int cm_conf_load(cm_conf *c, const char *path, size_t max_bytes, char *err, size_t errlen);
void cm_conf_free(cm_conf *c);

/* The value of an integer setting (CONFIG_TYPE_INT or INT64) as its literal says, in *v,
 * and that literal as written in lit (the value in decimal when the literal cannot be
 * found, e.g. a list element). Returns 0, or -ERANGE when the literal is past the range
 * of a 64-bit integer. */
int cm_conf_int(const cm_conf *c, const config_setting_t *s, long long *v, char *lit,
                size_t litcap);

#endif
