/* Small pieces every part of nlpd needs and used to write again: UTF-8 checks and
 * UTF-8-safe bounded text, whole-file reads with a size bound, the monotonic clock,
 * strict number parsing and the CPUs this process may use. Plain libc; thread-safe (no
 * state). Prefix cm_.
 * The libconfig reader lives apart in common/cm_conf.h. */
#ifndef NLP_COMMON_H
#define NLP_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- UTF-8 ---- */

/* 1 if s[0..len) is valid UTF-8 (no overlongs, surrogates, or code points past
 * U+10FFFF; NUL bytes are valid); else 0 and *bad (if not NULL) is the offset of the
 * first bad byte. */
int cm_utf8_valid(const char *s, size_t len, size_t *bad);

/* The largest n <= min(len, max) that does not split a character of s: the cut point
 * for keeping at most `max` bytes. Backs over at most 3 continuation bytes, so it is
 * exact on valid UTF-8 and never loops on garbage. */
size_t cm_utf8_cut(const char *s, size_t len, size_t max);

/* Copies s[0..len) into dst (capacity cap, NUL-terminated when cap > 0) as valid UTF-8:
 * each byte that does not start a valid sequence, and each NUL byte (the result is a C
 * string), becomes U+FFFD, but a character cut short by the end of s (what a byte-bounded
 * cut leaves) is dropped; the copy stops before the first character that would not fit,
 * so it is never cut inside one. Returns the bytes written, without the NUL. */
size_t cm_utf8_copy(char *dst, size_t cap, const char *s, size_t len);

/* How many bytes of client text a message quotes (cut with cm_utf8_cut, "..." after):
 * enough to recognise it, and the reason after the quote survives the message buffer. */
#define CM_QUOTE_MAX 64

/* snprintf whose result is always valid UTF-8, cut at a character boundary: for messages
 * that quote client input. Formats in full first, so dst may also be an argument.
 * Returns the bytes written, without the NUL. */
size_t cm_fmt(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t cm_vfmt(char *dst, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* ---- files ---- */

/* Reads the rest of f into a new NUL-terminated buffer (*out, the caller frees; *len
 * without the NUL). Returns 0, -EFBIG when f holds more than `max` bytes, -ENOMEM, or
 * -EIO (the errno of the failed read when there is one). *out is NULL on error. */
int cm_read_stream(FILE *f, size_t max, char **out, size_t *len);

/* cm_read_stream on the file at `path`; -errno when it cannot be opened (-ENOENT, ...). */
int cm_read_file(const char *path, size_t max, char **out, size_t *len);

/* ---- time ---- */

/* CLOCK_MONOTONIC: seconds, and whole milliseconds. Never fail. */
double cm_now(void);
int64_t cm_now_ms(void);

/* ---- numbers (command lines and config values) ---- */

/* The whole of s as a decimal integer in [lo, hi]. 0, -EINVAL when s is not one
 * (empty, trailing text), -ERANGE when it is outside [lo, hi] (overflow included). */
int cm_parse_ll(const char *s, long long lo, long long hi, long long *out);

/* The whole of s as a finite number (as strtod reads it). 0, -EINVAL when s is not
 * one, -ERANGE when it is not finite or overflows a float (cm_parse_float). */
int cm_parse_double(const char *s, double *out);
int cm_parse_float(const char *s, float *out);

/* ---- JSON requests and results (common/cm_json.c, on cJSON) ----
 * What `nlpc batch` and the daemon's JSON fronts (HTTP, the queue's json results) read and
 * write alike, and how nlpc and nlprun print a result (readable or --json). The request
 * and result types are libnlpclient's plain C ones. */
struct cJSON;
struct nlpc_request;
struct nlpc_result;

/* Parses s[0..len) as one JSON object (the caller deletes it): valid UTF-8, no lone UTF-16
 * surrogate escape, no key twice at any depth, nothing after it but white space. NULL
 * with the reason in err; `what` names the text in it ("line", "body") and `at` how its
 * 1-based positions count ("column", "byte"). */
struct cJSON *cm_json_parse_object(const char *s, size_t len, const char *what, const char *at,
                                   char *err, size_t errlen);

/* The string member `key` of o; dflt when it is absent or null. Another type: NULL and
 * `"key" must be a string` in err (which is left alone otherwise). */
const char *cm_json_str(const struct cJSON *o, const char *key, const char *dflt, char *err,
                        size_t errlen);

/* Reads o's task fields into rq, for rq->task only (another task's keys are ignored, as
 * nlpc ignores another task's options): "question" (qa), "to" and "from" (translate),
 * "labels" (classify: an array of non-empty strings or one "a,b,c" string), and for every
 * task "model" into *model ("" is NULL: no model named). An absent or null key leaves
 * what rq and *model held (the command line's value, say). Labels go into
 * labels[max_labels], pointing into o or into *buf (a split copy the caller frees).
 * 0, or -1 with the reason in err. */
int cm_json_task_fields(const struct cJSON *o, struct nlpc_request *rq, const char **model,
                        const char **labels, int max_labels, char **buf, char *err, size_t errlen);

/* The key of what rq's task needs and does not have ("to", "labels", "question"), or
 * NULL when it is complete. */
const char *cm_json_missing(const struct nlpc_request *rq);

/* One document's result into o (a new object when o is NULL; NULL when out of memory),
 * as `nlpc batch` prints it: "status", then "error" or the task's fields ("text" |
 * "answer" | "labels", "score", ["hypotheses"]), "input_tokens", "output_tokens",
 * "truncated". task is an nlpc_task. */
struct cJSON *cm_json_result(struct cJSON *o, int task, const struct nlpc_result *r);

/* One document's result as nlpc and nlprun print it readable (docs/clients.md's table):
 * classify `label<TAB>probability` lines, best first, to 4 decimals; qa the answer;
 * the others the text, or with hypotheses one `score<TAB>text` line each, best first.
 * Nothing for a result that is not OK (the caller reports it on stderr). */
void cm_result_print(FILE *f, int task, const struct nlpc_result *r);

/* ---- lists (command lines and JSON) ---- */

/* Splits "a, b,c" in place at the commas into out[] (pointers into buf), spaces around
 * each item trimmed. The count, or -1 when an item is empty or there are more than max. */
int cm_split_list(char *buf, const char **out, int max);

/* ---- CPUs (common/cpu.c) ---- */

/* The CPUs this process can use: its affinity mask's count (sched_getaffinity), lowered
 * by a cgroup CPU quota (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us; the
 * tightest from the process's cgroup up to the root) rounded to the nearest whole CPU;
 * at least 1. The engine's default thread count (threads = 0). Never fails. */
int cm_cpu_count(void);

/* cm_cpu_count with /proc/self and the cgroup mounts read under `root` ("" for the real
 * ones) and the affinity count given when > 0: for tests. */
int cm_cpu_count_at(const char *root, int affinity);

/* The cgroup CPU quota alone, in CPUs (1.5 for "150000 100000"); 0 when there is none. */
double cm_cpu_quota(const char *root);

/* A reading of the CPU time this process could have used until now: its own CPU time
 * (all threads, CLOCK_PROCESS_CPUTIME_ID) and the idle time of the CPUs in its affinity
 * mask (/proc/stat's idle + iowait), in seconds, at cm_now()'s wall time `wall`. */
typedef struct {
    double wall, own, idle;
} cm_cpu_reading;

/* Takes a reading: 0, or -1 when /proc/stat or the clocks cannot be read. The _at form
 * reads `root`/proc/stat (tests). */
int cm_cpu_read(cm_cpu_reading *r);
int cm_cpu_read_at(const char *root, cm_cpu_reading *r);

/* The CPUs the process had between readings a and b: (its CPU time + the idle time of
 * its CPUs) / wall time. What it used plus what nobody used: beside a busy neighbour it
 * is below the CPU count even while the process spins on every CPU it runs on. -1 when
 * b is not after a. */
double cm_cpu_free(const cm_cpu_reading *a, const cm_cpu_reading *b);

/* ---- the runtime directory (common/rundir.c) ---- */

/* Where nlpd's runtime files go (its default ipc socket): $RUNTIME_DIRECTORY (systemd's
 * RuntimeDirectory=nlpd; the first when it lists several), else $XDG_RUNTIME_DIR/nlpd,
 * else /run/nlpd for root, else /tmp/nlpd-UID (the daemon creates it 0700 and refuses
 * one it does not own). Not created here. 0, or -ENAMETOOLONG. */
int cm_runtime_dir(char *out, size_t cap);

/* "ipc://" + cm_runtime_dir + "/nlpd.sock": the daemon's default ipc endpoint. */
int cm_default_ipc(char *out, size_t cap);

#endif
