/* core/base/mem.h - allocation through an optional ag_alloc_funcs (NULL = libc). */
#ifndef AG_CORE_BASE_MEM_H
#define AG_CORE_BASE_MEM_H
#include <stdlib.h>
#include <string.h>
#include "agents/alloc.h"

static inline void *ag__malloc(const ag_alloc_funcs *a, size_t n) {
    return a ? a->malloc(a->ctx, n) : malloc(n);
}
static inline void *ag__calloc(const ag_alloc_funcs *a, size_t n) {
    void *p = ag__malloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}
static inline void *ag__realloc(const ag_alloc_funcs *a, void *p, size_t n) {
    return a ? a->realloc(a->ctx, p, n) : realloc(p, n);
}
static inline void ag__free(const ag_alloc_funcs *a, void *p) {
    if (!p) return;
    if (a) a->free(a->ctx, p);
    else free(p);
}
/* a copy of s (n bytes, then a NUL); NULL for NULL or out of memory */
static inline char *ag__strndup(const ag_alloc_funcs *a, const char *s, size_t n) {
    if (!s) return NULL;
    char *p = (char *)ag__malloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}
static inline char *ag__strdup(const ag_alloc_funcs *a, const char *s) {
    return s ? ag__strndup(a, s, strlen(s)) : NULL;
}
#endif
