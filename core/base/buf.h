/* core/base/buf.h - the growable byte buffer and the arena every layer uses.
 *
 * ag__buf: bytes plus a NUL after them (so text can be read as a C string),
 * grown by doubling through an optional allocator. ag__arena: strings that
 * live until one free, in 4 KB blocks. Both take the allocator at each call
 * (the owner knows it; the buffer stays three words). */
#ifndef AG_CORE_BASE_BUF_H
#define AG_CORE_BASE_BUF_H
#include <stddef.h>
#include "agents/alloc.h"

typedef struct ag__buf {
    char *p;
    size_t len, cap;
} ag__buf;
/* 0 or AG_ENOMEM (the buffer is then unchanged). */
int ag__buf_add(const ag_alloc_funcs *a, ag__buf *b, const void *p, size_t n);
int ag__buf_str(const ag_alloc_funcs *a, ag__buf *b, const char *s);
/* s (n bytes) as a JSON string literal, quotes included: '"' and '\' and
 * control characters escaped, ill-formed UTF-8 written as U+FFFD. */
int ag__buf_json(const ag_alloc_funcs *a, ag__buf *b, const char *s, size_t n);
void ag__buf_free(const ag_alloc_funcs *a, ag__buf *b);

typedef struct ag__arena_blk ag__arena_blk;
typedef struct ag__arena {
    ag__arena_blk *head;
    size_t used_total;
} ag__arena;
char *ag__arena_strndup(const ag_alloc_funcs *a, ag__arena *ar, const char *s, size_t n);
void *ag__arena_alloc(const ag_alloc_funcs *a, ag__arena *ar, size_t n);
void ag__arena_free(const ag_alloc_funcs *a, ag__arena *ar);

#endif
