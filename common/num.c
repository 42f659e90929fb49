/* Strict number parsing for command lines and config values (see common.h). */
#include "common/common.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

int cm_parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (!s) return -EINVAL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end) return -EINVAL;
    if (errno == ERANGE || v < lo || v > hi) return -ERANGE;
    *out = v;
    return 0;
}

int cm_parse_double(const char *s, double *out)
{
    char *end;
    if (!s) return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) return -EINVAL;
    if (errno == ERANGE && fabs(v) > 1) return -ERANGE; /* underflow is fine */
    if (!isfinite(v)) return -ERANGE;
    *out = v;
    return 0;
}

int cm_parse_float(const char *s, float *out)
{
    double v;
    int rc = cm_parse_double(s, &v);
    if (rc < 0) return rc;
    if (fabs(v) > FLT_MAX) return -ERANGE;
    *out = (float)v;
    return 0;
}
