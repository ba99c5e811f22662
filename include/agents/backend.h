/* agents/backend.h - your own backend behind ag_client.
 *
 * The original package let its users subclass the base client to plug in
 * another engine. Here a backend is a table of functions: give it to
 * ag_client_new_backend() and the result is an ag_client like any other -
 * the agents, the sync wrappers, the batch runner, the engine and the
 * gateway's fan-in run on it unchanged. Uses: an in-process model, a test
 * double with canned answers, a proxy to a service with another protocol,
 * a recorder in front of a real client.
 *
 * The library keeps the contract of client.h for the caller: done exactly
 * once, never inside the starting call, cancel and free from any callback,
 * deadlines, timing (ttft, inter-token gaps), hooks and res->attempts. The
 * backend only answers. (Retry with backoff does not apply: a backend that
 * wants retries makes them itself.)
 *
 * Everything runs on the client's loop thread. For each request:
 * - start(self, req, call) is called inside the caller's starting call. The
 *   call's parameters are borrowed for its duration: copy what you need.
 *   Return 0 to accept, or an AG_E* code to refuse (the caller's done then
 *   says so, from the loop).
 * - Later, from the loop (a timer, a socket, another client's callback):
 *   ag_backend_chunk() for each piece of the answer, then ag_backend_done()
 *   once. ag_backend_done() may also be called inside start (the library
 *   defers it); ag_backend_chunk() may not (AG_EINVAL).
 * - cancel(self, req) when the caller cancels, a deadline passes or the
 *   client is freed: stop working on req and forget it; never use it again.
 *   When ag_backend_chunk() returns AG_ECANCELED the request ended inside the
 *   caller's callback: forget it the same way (cancel is not called then).
 * - destroy(self) once, when the client is freed, after every request ended.
 */
#ifndef AGENTS_BACKEND_H
#define AGENTS_BACKEND_H
#include "version.h"
#include "client.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ag_backend_kind { AG_BACKEND_CHAT = 1, AG_BACKEND_GENERATE, AG_BACKEND_EMBED, AG_BACKEND_ADMIN,
                       AG_BACKEND_FORWARD };

/* What a request asks for: kind says which member is set (borrowed). */
typedef struct ag_backend_call {
    int kind;
    const ag_chat_params *chat;
    const ag_generate_params *generate;
    const ag_embed_params *embed;
    int op;                           /* AG_BACKEND_ADMIN: enum ag_admin_op */
    const ag_model_params *model;     /* AG_BACKEND_ADMIN: may be NULL */
    const ag_forward_params *forward;
    int stream;                       /* the caller asked for a stream (chat, generate, pull) */
} ag_backend_call;

typedef struct ag_backend {
    const char *name; /* what res->node and the hooks say, e.g. "echo" (copied) */
    int (*start)(void *self, ag_request *req, const ag_backend_call *call);
    void (*cancel)(void *self, ag_request *req);
    void (*destroy)(void *self); /* may be NULL */
    void *self;
} ag_backend;

/* Makes a client on backend b (copied). base as for ag_client_new (NULL: a
 * private loop for the sync calls); opts may be NULL (host, TLS and
 * connection settings are unused; caps, the allocator and the user agent
 * apply). NULL with *err set when b lacks start or cancel (AG_EINVAL) or out
 * of memory. */
AG_API ag_client *ag_client_new_backend(struct event_base *base, const ag_backend *b,
                                        const ag_client_options *opts, int *err);

/* A piece of the answer (borrowed for the call, as the caller gets it).
 * Returns 0; AG_ECANCELED when the request ended from inside the caller's
 * callback (forget req); AG_EINVAL when req is not running (inside start,
 * or already done). */
AG_API int ag_backend_chunk(ag_request *req, const ag_chunk *chunk);
/* The end: res->status 0 or an AG_E* code, with whatever else the caller
 * should see (model, done_reason, server figures, embeddings, models, show,
 * version, error); borrowed for the call. The library fills timing, node and
 * attempts. After this, req is gone. */
AG_API int ag_backend_done(ag_request *req, const ag_result *res);

#ifdef __cplusplus
}
#endif
#endif
