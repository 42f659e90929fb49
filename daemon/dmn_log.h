/* Logging. Any thread (I/O, worker, main at start-up).
 *
 * One line per call, written with one write(2) to stderr, so lines of the I/O and the
 * worker thread never interleave. The macros test the level before any formatting:
 * a debug line below the configured level costs one comparison.
 *
 *   DMN_LOG(DMN_LOG_INFO, "listening on %s", ep);
 *   DMN_LOG_REQ(DMN_LOG_WARN, req->seq, req->id, "deadline passed in queue");
 *
 * Request lines carry "[r<seq> id=<id>]": seq is the daemon's own number of the
 * request (unique), id the client's (echoed in the response; may repeat). */
#ifndef NLP_DMN_LOG_H
#define NLP_DMN_LOG_H

#include <stdint.h>

/* Explicit values: they are the order of verbosity. */
enum dmn_log_level {
    DMN_LOG_ERROR = 0,
    DMN_LOG_WARN = 1,
    DMN_LOG_INFO = 2,
    DMN_LOG_DEBUG = 3,
};

/* The level in force; it lives in the server struct (the one global), set once at
 * start-up before any thread starts, read-only afterwards. */
int dmn_log_level(void);
void dmn_log_set_level(int level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int dmn_log_level_from_name(const char *name);
const char *dmn_log_level_name(int level);

void dmn_log_write(int level, uint64_t seq, uint64_t id, int has_req, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define DMN_LOG(lvl, ...)                                                         \
    do {                                                                          \
        if ((lvl) <= dmn_log_level()) dmn_log_write((lvl), 0, 0, 0, __VA_ARGS__); \
    } while (0)

#define DMN_LOG_REQ(lvl, seq, id, ...)                                                   \
    do {                                                                                 \
        if ((lvl) <= dmn_log_level()) dmn_log_write((lvl), (seq), (id), 1, __VA_ARGS__); \
    } while (0)

#endif
