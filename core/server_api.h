/* core/server_api.h - what a server built on a client (the gateway) may ask
 * of it beyond the public API: a small, named interface instead of the
 * client's insides. */
#ifndef AG_CORE_SERVER_API_H
#define AG_CORE_SERVER_API_H
#include "agents/alloc.h"
#include "agents/client.h"

/* The allocator the client was made with (NULL = libc): a server on it
 * allocates its own state the same way. */
const ag_alloc_funcs *ag__client_allocator(const ag_client *c);
/* 0 when c is a pool whose nodes' model lists are known and none has model
 * (same name and tag, "latest" when none); 1 otherwise */
int ag__pool_may_serve(ag_client *c, const char *model);
/* 1 when c is a pool with a node of that name (as ag_pool_nodes() names it),
 * or not a pool at all; 0 otherwise */
int ag__pool_has_node(ag_client *c, const char *name);

#endif
