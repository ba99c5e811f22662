/* core/client_ext.h - what a layer built on a client (the gateway, the
 * agents) may ask of it beyond the public API: a small, named interface
 * instead of the client's insides. */
#ifndef AG_CORE_CLIENT_EXT_H
#define AG_CORE_CLIENT_EXT_H
#include "agents/alloc.h"
#include "agents/client.h"

/* The allocator the client was made with (NULL = libc): what is built on it
 * allocates its own state the same way. */
const ag_alloc_funcs *ag__client_allocator(const ag_client *c);
/* Runs c's loop until *done is set (every accepted request completes, so a
 * flag its done callback sets is reached); 1 then, 0 if the loop failed.
 * For the blocking wrappers; never from a callback. */
int ag__client_wait(ag_client *c, const int *done);
/* 0 when c is a pool whose nodes' model lists are known and none has model
 * (same name and tag, "latest" when none); 1 otherwise */
int ag__pool_may_serve(ag_client *c, const char *model);
/* 1 when c is a pool with a node of that name (as ag_pool_nodes() names it),
 * or not a pool at all; 0 otherwise */
int ag__pool_has_node(ag_client *c, const char *name);

#endif
