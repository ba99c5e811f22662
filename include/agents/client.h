/* agents/client.h - the client: one contract, many backends.
 *
 * An ag_client is a long-lived handle that starts requests on a libevent loop
 * the caller owns (or on a private one, for the *_sync calls). The local
 * client talks to one node; the pool client (agents/pool.h) to many, behind
 * the same functions.
 *
 * Threads: a client, and everything made on it (requests, a pool's nodes, a
 * gateway, agents), belongs to the thread that runs its event_base; call its
 * functions on that thread only. Clients on different threads, each with its
 * own base, share nothing: the library keeps no mutable global state
 * (test_threads runs four at once; helgrind, run on it, reports races only
 * inside libevent, on the debug-mode flag event_base_new writes). The
 * simulated node (agents sim, bench/sim) is test equipment with global state:
 * one thread. Programs with other threads, or on another event loop (epoll,
 * libuv, GLib, asyncio), use an ag_engine (agents/engine.h): a client on a
 * thread of its own that takes requests from any thread and hands answers
 * back through a file descriptor or to blocked callers.
 *
 * Contract (every backend):
 * - Single thread: every function is called on the loop's thread.
 * - A starting call (ag_chat, ag_embed, ...) that returns an error never calls
 *   back. One that returns 0 calls done exactly once, later, from the loop
 *   (never from inside the starting call).
 * - Chunk and result data are borrowed (see request.h).
 * - From inside any callback the user may cancel any request, start new ones,
 *   or free the client; the real teardown waits until the stack unwinds.
 * - ag_client_free() completes every pending request with AG_ESHUTDOWN.
 * - No total time limit: a generation takes as long as it takes while bytes
 *   flow. A node that never answers or goes silent is bounded by default
 *   (first-byte 300 s, idle 120 s), each configurable; TCP keep-alive finds
 *   dead peers.
 */
#ifndef AGENTS_CLIENT_H
#define AGENTS_CLIENT_H
#include "version.h"
#include <stddef.h>
#include <stdint.h>
#include "alloc.h"
#include "request.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct evdns_base;
typedef struct ag_client ag_client;

typedef struct ag_client_options {
    const char *host;             /* OLLAMA_HOST syntax; NULL = $OLLAMA_HOST, $OLLAMA_URL or 127.0.0.1:11434 */
    double connect_timeout;       /* seconds, DNS included; 0 = 10 s */
    /* Seconds of silence allowed once the answer began (between two reads of
     * a stream, or inside a body): 0 = AG_DEFAULT_IDLE_TIMEOUT (120 s),
     * negative = none. A node that stalls mid-stream ends the request with
     * AG_EIDLE (after output: not retried; the pool counts it against the node). */
    double idle_timeout;
    unsigned max_connections;     /* open connections per node; 0 = 1024 */
    unsigned max_idle;            /* idle keep-alive connections kept per node; 0 = 64 */
    unsigned max_queue;           /* requests waiting for a connection; 0 = 100000 */
    size_t max_body;              /* cap on a non-streamed response body; 0 = 256 MiB */
    size_t max_token;             /* cap on one JSON string/number; 0 = 16 MiB */
    const ag_alloc_funcs *alloc;  /* NULL = libc */
    struct evdns_base *dns;       /* NULL = the client makes one when a name needs it */
    const char *user_agent;       /* NULL = "agents/VERSION" */
    /* https:// nodes: the certificate is verified (chain and host name) against
     * the system's CA store, or tls_ca_file (PEM) when given; tls_insecure = 1
     * skips verification (say so loudly in your program). */
    const char *tls_ca_file;
    int tls_insecure;
    /* Credentials sent as an Authorization header. Credentials in a node's
     * address ("http://user:pass@host", "https://token@host") go to that node
     * only; these options go to every node of this client. Never logged. */
    const char *bearer_token;
    const char *basic_user, *basic_password;
    /* The API nodes speak unless their address says otherwise ("openai+http://"):
     * AG_API_OLLAMA (0) or AG_API_OPENAI (llama.cpp, vLLM, LocalAI, LM Studio,
     * TGI, Ollama's /v1). Everything above the client works the same on both;
     * model management (show, pull, delete, copy) is Ollama-only (AG_EINVAL). */
    int api;
    /* Seconds from sending a request to the first byte of its answer: the
     * wait covers a cold model load, which takes minutes for a large model on
     * a slow disk, so the default is generous. 0 = idle_timeout when that is
     * set, else AG_DEFAULT_FIRST_BYTE_TIMEOUT (300 s, as Ollama's own load
     * timeout); negative = none. Expiry: AG_EIDLE, retried on another node by
     * a pool. */
    double first_byte_timeout;
} ag_client_options;

#define AG_DEFAULT_FIRST_BYTE_TIMEOUT 300.0
#define AG_DEFAULT_IDLE_TIMEOUT 120.0

/* Makes a local (one node) client. base may be NULL: the client then owns a
 * private loop and only the *_sync calls are useful. opts may be NULL.
 * Returns NULL on failure with *err (if given) set: AG_EHOST for a bad host,
 * AG_ENOMEM. */
AG_API ag_client *ag_client_new(struct event_base *base, const ag_client_options *opts, int *err);

/* ---- hooks: what a host program may watch (logs, metrics, traces) ----
 * Called on the loop's thread, synchronously, from inside the library;
 * everything passed is borrowed for the call. A hook may read and record, and
 * must not free the client or cancel requests (do that from a timer or a
 * done callback). NULL members are skipped. */
enum ag_log_level { AG_LOG_DEBUG = 0, AG_LOG_INFO, AG_LOG_WARN, AG_LOG_ERROR };
typedef struct ag_hooks {
    /* a line for a log: node state changes, failovers, stalls (no newline) */
    void (*log)(int level, const char *message, void *ud);
    /* a pool's node changed state (enum ag_node_state, agents/pool.h) */
    void (*node_state)(const char *node, int from, int to, void *ud);
    /* an attempt of req starts on node: 1 for the first, more for each retry
     * or failover */
    void (*attempt)(const ag_request *req, const char *node, int attempt, void *ud);
    /* req is complete, with its result (its done callback runs right after) */
    void (*finished)(const ag_request *req, const ag_result *res, void *ud);
    void *ud;
} ag_hooks;
/* Installs hooks (copied; NULL removes them). For requests and events from
 * now on. */
AG_API void ag_client_set_hooks(ag_client *c, const ag_hooks *hooks);

/* Frees the client. Pending requests complete with AG_ESHUTDOWN (their done
 * callbacks run inside this call, or just after when called from a callback).
 * NULL is ignored. */
AG_API void ag_client_free(ag_client *c);
/* ag_client_free, and freed(ud) once the client's memory is released: within
 * this call when it is made outside the client's callbacks, else from the
 * loop a turn later (run the loop until then before freeing the loop itself,
 * or that last teardown is lost). Also for a client already being freed. */
AG_API void ag_client_free_notify(ag_client *c, void (*freed)(void *ud), void *ud);

AG_API struct event_base *ag_client_base(const ag_client *c);

/* Counters for tests and tools. */
typedef struct ag_client_stats {
    uint64_t requests_started, requests_done;
    uint64_t connections_opened, connections_reused, retries_stale;
    unsigned in_flight, queued, open_connections, idle_connections;
} ag_client_stats;
AG_API void ag_client_get_stats(const ag_client *c, ag_client_stats *out);

/* Starting calls. cb.on_chunk may be NULL. On success *out (if out is not
 * NULL) receives the request handle, valid until its done callback returns. */
typedef struct ag_callbacks {
    ag_chunk_cb on_chunk;
    ag_done_cb on_done;
    void *ud;
} ag_callbacks;

AG_API int ag_chat(ag_client *c, const ag_chat_params *p, const ag_callbacks *cb, ag_request **out);
AG_API int ag_generate(ag_client *c, const ag_generate_params *p, const ag_callbacks *cb,
                ag_request **out);
AG_API int ag_embed(ag_client *c, const ag_embed_params *p, const ag_callbacks *cb, ag_request **out);

enum ag_admin_op {
    AG_OP_TAGS = 1, /* GET /api/tags      -> res.models */
    AG_OP_PS,       /* GET /api/ps        -> res.models */
    AG_OP_SHOW,     /* POST /api/show     -> res.show */
    AG_OP_VERSION,  /* GET /api/version   -> res.version */
    AG_OP_PULL,     /* POST /api/pull     -> AG_CHUNK_PROGRESS chunks */
    AG_OP_DELETE,   /* DELETE /api/delete */
    AG_OP_COPY,     /* POST /api/copy */
    AG_OP_PING      /* HEAD /             -> status only */
};
AG_API int ag_admin(ag_client *c, int op, const ag_model_params *p, const ag_callbacks *cb,
             ag_request **out);

/* ---- forwarding a request unchanged (what `agents gateway` does) ----
 * Sends body as is to a node chosen by model (the pool's routing, caps,
 * queue and failover apply) and delivers the node's response body unchanged
 * as AG_CHUNK_BODY chunks; no other chunk kind is delivered.
 *
 * - Chat and generate answers (/api/chat, /api/generate, /v1/chat/completions,
 *   /v1/completions) are decoded on the side for the node's metrics and to
 *   see errors; their bytes are delivered in whole lines, each line after it
 *   was decoded. A node that fails before the first byte was delivered (an
 *   error line first, a reset, a 5xx) is replaced by the pool, and the caller
 *   never sees the failed attempt's bytes.
 * - Other responses are delivered as they arrive, undecoded.
 * - An HTTP error answer that ends the request (4xx, or 5xx with no node left)
 *   is delivered as one AG_CHUNK_BODY chunk holding the node's error body
 *   (when it is under 4 KiB), index = its status; then done runs with the
 *   matching AG_E* status and res.http_status.
 * - Once bytes were delivered, a failure is final: done runs with AG_ELOST,
 *   AG_ESERVER (the node's error line was delivered as part of the body),
 *   AG_ETRUNCATED, ... and the caller decides how to tell its own client.
 * Paths under /v1/ may go to Ollama nodes (which serve them) and to
 * OpenAI-compatible nodes; other paths only to Ollama nodes. */
typedef struct ag_forward_params {
    const char *method;   /* "GET", "POST", "DELETE" or "HEAD" */
    const char *path;     /* "/api/chat", "/v1/models", ... (query allowed); the node's base path is prefixed */
    const char *body;     /* sent as is, Content-Type: application/json; NULL = none */
    size_t body_len;
    const char *model;    /* routes on it; NULL or "" = any node (at most 255 bytes) */
    const char *node;     /* pool: exactly this node, as ag_pool_nodes() names it; no failover */
    int stream;           /* 1: the answer is a stream (the body asked for one) */
    const ag_request_options *request; /* NULL = the client's settings (its node: see node above) */
} ag_forward_params;
AG_API int ag_forward(ag_client *c, const ag_forward_params *p, const ag_callbacks *cb, ag_request **out);

/* Cancels: done runs with AG_ECANCELED (immediately when called outside the
 * request's own callbacks, otherwise right after the callback returns). */
AG_API void ag_request_cancel(ag_request *req);

/* Backpressure: stop reading the request's socket. Chunks already decoded
 * from bytes in hand (at most one read's worth) may still arrive; then nothing
 * until ag_request_resume(). The idle timeout does not run while paused. */
AG_API void ag_request_pause(ag_request *req);
AG_API void ag_request_resume(ag_request *req);

/* Deliver each whole response object as an AG_CHUNK_RAW chunk (its exact
 * bytes; a CRLF or blank line is dropped) in addition to the decoded chunks.
 * Call right after the starting call. */
AG_API void ag_request_set_raw(ag_request *req, int on);

/* ---- synchronous wrappers ----
 * Run the client's loop until the request completes. Never call them from
 * inside a callback of the same loop. On a loop shared with other work, that
 * work's events run too, from inside this call, until it returns (a server
 * should not block its own loop this way: start the request and wait for its
 * done callback, or use an ag_engine's blocking calls from another thread). They work on any client; a client made
 * with base == NULL exists for them. *out receives an ag_result_dup() copy
 * (free it with ag_result_free); text collects every content chunk and
 * thinking every thinking chunk (NUL-terminated, malloc'd, may be NULL).
 * Returns the request's status. */
typedef struct ag_sync_out {
    ag_result *result;
    char *text;
    size_t text_len;
    char *thinking;
    size_t thinking_len;
} ag_sync_out;
AG_API void ag_sync_out_free(ag_sync_out *o);

AG_API int ag_chat_sync(ag_client *c, const ag_chat_params *p, ag_chunk_cb on_chunk, void *ud,
                 ag_sync_out *out);
AG_API int ag_generate_sync(ag_client *c, const ag_generate_params *p, ag_chunk_cb on_chunk, void *ud,
                     ag_sync_out *out);
AG_API int ag_embed_sync(ag_client *c, const ag_embed_params *p, ag_sync_out *out);
AG_API int ag_admin_sync(ag_client *c, int op, const ag_model_params *p, ag_chunk_cb on_chunk, void *ud,
                  ag_sync_out *out);

#ifdef __cplusplus
}
#endif
#endif
