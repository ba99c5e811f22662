/* agents/alloc.h - allocator hooks.
 *
 * A client may be given its own allocator; everything the client, its
 * connections and its requests allocate goes through it. NULL means libc.
 * The functions are called on the loop's thread only.
 */
#ifndef AGENTS_ALLOC_H
#define AGENTS_ALLOC_H
#include "version.h"
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_alloc_funcs {
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} ag_alloc_funcs;

#ifdef __cplusplus
}
#endif
#endif
