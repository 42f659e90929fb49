/* A small test harness: tests register themselves, each runs in its own forked
 * process with a time bound, so one crash or hang is one failure.
 *
 *   TEST(tok_golden) { CHECK(x == 1); CHECK_MSG(a == b, "a=%d b=%d", a, b); }
 *   TEST_TIMEOUT(slow_case, 120) { ... }
 *
 * CHECK records a failure and goes on; REQUIRE records it and ends the test (the test
 * runs in a child process, so ending it is safe). The binary takes optional script paths:
 * each is run with bash as one more test (pass = exit 0). The run ends with the line
 * "N passed, N failed" and exits non-zero when any test failed. */
#ifndef NLP_HARNESS_H
#define NLP_HARNESS_H

#include <stdint.h>

#include <stdio.h>

typedef void (*th_fn)(void);
void th_register(const char *name, th_fn fn, int timeout_s);
void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void th_end(void) __attribute__((noreturn));

/* Path of a file under tests/data (NLP_TESTDATA overrides the directory). Static buffer
 * per call slot: valid until the 8th following call. */
const char *th_data(const char *rel);
/* Build directory with the binaries (NLP_BUILD, default "build"). */
const char *th_build(void);

struct cJSON;
/* The JSON file at th_data(rel), parsed (cJSON_Delete it), or NULL. */
struct cJSON *th_json(const char *rel);
/* The integers of a JSON array into out[0..max): returns how many it holds (may be > max). */
int th_ids(const struct cJSON *arr, int32_t *out, int max);

#define TH_DEFAULT_TIMEOUT 60

#define TEST_TIMEOUT(name, secs)                                   \
    static void name(void);                                        \
    __attribute__((constructor)) static void name##_register(void) \
    {                                                              \
        th_register(#name, name, (secs));                          \
    }                                                              \
    static void name(void)

#define TEST(name) TEST_TIMEOUT(name, TH_DEFAULT_TIMEOUT)

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) th_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_MSG(cond, ...)                                   \
    do {                                                       \
        if (!(cond)) th_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#define REQUIRE(cond)                                          \
    do {                                                       \
        if (!(cond)) {                                         \
            th_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond); \
            th_end();                                          \
        }                                                      \
    } while (0)

#define REQUIRE_MSG(cond, ...)                        \
    do {                                              \
        if (!(cond)) {                                \
            th_fail(__FILE__, __LINE__, __VA_ARGS__); \
            th_end();                                 \
        }                                             \
    } while (0)

#endif
