/* Logging: run by every thread (main at start-up, the I/O thread, the worker).
 * Stateless apart from the level, which lives in the server struct. */
#include "daemon/dmn_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/dmn_server.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int dmn_log_level(void) { return dmn_srv.log_level; }

void dmn_log_set_level(int level) { dmn_srv.log_level = level; }

int dmn_log_level_from_name(const char *name)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (name && strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

const char *dmn_log_level_name(int level)
{
    if (level < 0 || level > DMN_LOG_DEBUG) return "?";
    return level_names[level];
}

void dmn_log_write(int level, uint64_t seq, uint64_t id, int has_req, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ nlpd %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, dmn_log_level_name(level));
    if (has_req && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, "[r%llu id=%llu] ", (unsigned long long)seq,
                      (unsigned long long)id);
    if (n < (int)sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
    }
    /* A line cut at the buffer size still ends in a newline. */
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nowhere to report a failed log write */
}
