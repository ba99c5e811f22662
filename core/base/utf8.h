/* core/base/utf8.h - UTF-8 validation and repair for the text the library writes
 * into JSON. A user's prompt (or a node's message) may hold bytes that are not
 * UTF-8; copied raw they make the body invalid JSON, which a strict server
 * refuses. Like Go's encoding/json, each byte that does not start a well-formed
 * sequence becomes U+FFFD (overlong forms, surrogates and code points past
 * U+10FFFF are ill-formed, as RFC 3629 says). No dependencies: any layer may
 * include it. */
#ifndef AG_CORE_BASE_UTF8_H
#define AG_CORE_BASE_UTF8_H
#include <stddef.h>
#include <string.h>

/* The length of the well-formed sequence at s (1..4), or 0 when s[0] does not
 * start one within the n bytes given. n >= 1. */
static inline size_t ag__utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    size_t need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n < need) return 0;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* surrogates */
    else if (c == 0xF0) lo = 0x90; /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

/* The offset of the first ill-formed byte, or n when all of s is UTF-8. */
static inline size_t ag__utf8_check(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = ag__utf8_seq(p + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* Writes s with every ill-formed byte replaced by U+FFFD (EF BF BD) to out,
 * which holds at least 3 * n bytes; returns the length written. */
static inline size_t ag__utf8_repair(const char *s, size_t n, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = ag__utf8_seq(p + i, n - i);
        if (k) {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    return o;
}

#endif
