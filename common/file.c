/* Whole-file reads with a size bound (see common.h). */
#include "common/common.h"

#include <errno.h>
#include <stdlib.h>

int cm_read_stream(FILE *f, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    *out = NULL;
    if (!buf) return -ENOMEM;
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n > max) {
            free(buf);
            return -EFBIG;
        }
        if (n < cap) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                return -e;
            }
            break; /* end of file */
        }
        /* Full: grow, but never past max + 1 bytes, which is enough to see "too big". */
        size_t ncap = cap > max / 2 ? max + 1 : cap * 2;
        if (ncap <= cap) ncap = cap + 1;
        char *nb = realloc(buf, ncap + 1);
        if (!nb) {
            free(buf);
            return -ENOMEM;
        }
        buf = nb;
        cap = ncap;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int cm_read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    int rc = cm_read_stream(f, max, out, len);
    fclose(f);
    return rc;
}
