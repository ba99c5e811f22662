/* core/base/hash.h - the two hashes the library keys things by: FNV-1a of a
 * string (session keys, tenants, node names, ids) and splitmix64's
 * finaliser (to spread a 64-bit key before comparing or indexing). */
#ifndef AG_CORE_BASE_HASH_H
#define AG_CORE_BASE_HASH_H
#include <stdint.h>

#define AG__FNV_SEED 1469598103934665603ull

/* FNV-1a of s (NUL-terminated) continued from h (AG__FNV_SEED to start) */
static inline uint64_t ag__fnv1a_from(uint64_t h, const char *s) {
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) h = (h ^ *q) * 1099511628211ull;
    return h;
}
static inline uint64_t ag__fnv1a(const char *s) {
    return ag__fnv1a_from(AG__FNV_SEED, s);
}

/* a key for a string: its FNV-1a, never 0 (0 stands for none) */
static inline uint64_t ag__key_of(const char *s) {
    uint64_t h = ag__fnv1a(s);
    return h ? h : 1;
}

static inline uint64_t ag__mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
#endif
