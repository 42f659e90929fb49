/* Small pieces every part of nlpd needs and used to write again: UTF-8 checks and
 * UTF-8-safe bounded text, whole-file reads with a size bound, the monotonic clock and
 * strict number parsing. Plain libc; thread-safe (no state). Prefix cm_.
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
size_t cm_fmt(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
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

#endif
