/* agents/alloc.h - allocator hooks.
 *
 * A client may be given its own allocator (ag_client_options.alloc, or
 * ag_pool_options.client.alloc); NULL means libc. Everything the library
 * allocates for that client goes through it: the client, its connections,
 * its requests and their decoders and encoders (yajl's parsers and
 * generators, and the JSON trees the library builds, included), a pool's
 * nodes, probes and queue, a gateway made on it and its client connections,
 * agents made on it with their tasks, messages and tools (research,
 * summaries, embeddings), and batch runs of those agents. A document store
 * takes its own (ag_docstore_new_with). The functions are called on the
 * loop's thread only. test/test_alloc.c checks this from outside, by
 * watching libc while a chat, an embed, a pool failover, a gateway round
 * trip with a merged model list, an OpenAI-compatible chat, the agents (a
 * tool loop, research, a summary, embeddings) and a batch with its resume
 * run.
 *
 * What does not go through it, and why:
 * - libevent's own objects (the loop, events, bufferevents, evbuffers, evdns)
 *   and OpenSSL's (TLS contexts, sessions): those libraries take only a
 *   process-wide allocator (event_set_mem_functions, CRYPTO_set_mem_functions),
 *   which is the program's to set.
 * - stdio's own buffers: the batch runner's files, and the lines getline()
 *   reads from them.
 * - What belongs to no client and is freed without one: a document store
 *   made with ag_docstore_new (ag_docstore_new_with takes an allocator); the
 *   text utilities' results (ag_code_blocks, including
 *   the coding agent's blocks, ag_json_extract, ag_history_format); the copies
 *   that outlive callbacks (ag_result_dup, ag_agent_result_dup, the *_sync
 *   outputs), freed by their own free functions.
 * - What the caller made with malloc and hands over: a tool's result and a
 *   finish hook's text, which the library releases with free().
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
