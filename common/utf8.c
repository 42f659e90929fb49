/* UTF-8 checks and UTF-8-safe bounded text (see common.h). */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

/* The length (1..4) of the valid UTF-8 sequence at s[0..len), len > 0; 0 when s[0] does
 * not start one (bad lead byte, short or bad continuation, overlong, surrogate, past
 * U+10FFFF). */
static size_t seq_len(const unsigned char *s, size_t len)
{
    unsigned c = s[0], cp, min;
    size_t n;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n > len) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

int cm_utf8_valid(const char *str, size_t len, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = seq_len(s + i, len - i);
        if (!n) {
            if (bad) *bad = i;
            return 0;
        }
        i += n;
    }
    return 1;
}

size_t cm_utf8_cut(const char *str, size_t len, size_t max)
{
    const unsigned char *s = (const unsigned char *)str;
    if (len <= max) return len;
    size_t n = max;
    for (int k = 0; k < 3 && n > 0 && (s[n] & 0xC0) == 0x80; k++) n--;
    /* Four continuation bytes in a row: no character to keep whole; cut where asked. */
    return (s[n] & 0xC0) == 0x80 ? max : n;
}

/* 1 when s[0..len) is the start of a multi-byte character that the end of the text
 * cut off: what a byte-bounded cut leaves, dropped rather than replaced. */
static int cut_short(const unsigned char *s, size_t len)
{
    size_t want = (s[0] & 0xE0) == 0xC0   ? 2
                  : (s[0] & 0xF0) == 0xE0 ? 3
                  : (s[0] & 0xF8) == 0xF0 ? 4
                                          : 0;
    if (want <= len) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return 1;
}

size_t cm_utf8_copy(char *dst, size_t cap, const char *str, size_t len)
{
    static const char repl[3] = { '\xEF', '\xBF', '\xBD' }; /* U+FFFD */
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, w = 0;
    if (!cap) return 0;
    while (i < len) {
        size_t n = s[i] ? seq_len(s + i, len - i) : 0;
        if (!n && cut_short(s + i, len - i)) break;
        const char *from = n ? (const char *)s + i : repl;
        size_t out = n ? n : sizeof repl;
        if (w + out > cap - 1) break;
        memcpy(dst + w, from, out);
        w += out;
        i += n ? n : 1;
    }
    dst[w] = '\0';
    return w;
}

size_t cm_vfmt(char *dst, size_t cap, const char *fmt, va_list ap)
{
    char small[512], *buf = small;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        small[0] = '\0';
        n = 0;
    } else if ((size_t)n >= sizeof small && cap > sizeof small) {
        /* Longer than the stack buffer and wanted in full: without memory, the first
         * sizeof small - 1 bytes of it, still cut cleanly. */
        char *big = malloc((size_t)n + 1);
        if (big && vsnprintf(big, (size_t)n + 1, fmt, ap2) == n) buf = big;
        else free(big);
    }
    va_end(ap2);
    size_t len = buf == small && (size_t)n >= sizeof small ? sizeof small - 1 : (size_t)n;
    size_t w = cm_utf8_copy(dst, cap, buf, len);
    if (buf != small) free(buf);
    return w;
}

size_t cm_fmt(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t w = cm_vfmt(dst, cap, fmt, ap);
    va_end(ap);
    return w;
}
