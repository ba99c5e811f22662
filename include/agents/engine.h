/* agents/engine.h - the library from any thread and any event loop.
 *
 * An ag_engine is a client (local or pool) that runs its own libevent loop on
 * a thread of its own. Every ag_engine_* call may be made from any thread,
 * at any time, concurrently; none of them waits for the network. Answers come
 * back in one of two ways:
 *
 * - Events: the starting calls (ag_engine_chat, ...) return at once with a
 *   request id; the request's chunks and its completion are queued as
 *   events. ag_engine_fd() is a file descriptor that is readable while
 *   events wait: watch it with epoll, poll, libuv's uv_poll, GLib's
 *   g_unix_fd_add, asyncio's add_reader or io_uring, and take the events with
 *   ag_engine_next(). A thread may also block in ag_engine_next().
 * - Blocking: ag_engine_chat_sync() and friends block the calling thread
 *   until their request completes, and only that thread: many threads may
 *   each wait on one engine, their requests running concurrently.
 *
 * The underlying contract is the client's (agents/client.h): a starting call
 * that returns 0 is followed by exactly one AG_EVENT_DONE for its id, last
 * (errors the engine's thread finds when it starts the request, such as
 * invalid JSON in a parameter, arrive as that event). A call that returns an
 * error queues nothing. Parameters are copied during the call.
 *
 * Backpressure: queued chunk bytes are capped (ag_engine_options.max_pending).
 * Past the cap, a request that delivers a chunk stops reading its socket until
 * the consumer has taken events down to half the cap, so a slow consumer
 * slows the node's stream instead of growing memory. Consecutive content (or
 * thinking) chunks of one request that are still queued are merged into one
 * event, unless no_coalesce is set: a consumer that falls behind gets fewer,
 * larger events, never lost text. (An agent's task is not paused: its chunks
 * queue past the cap; each of its model calls is bounded by the client's caps.)
 *
 * The engine's thread runs the client's callbacks and hooks, and the
 * functions given to ag_engine_call(); code running there must not call the
 * engine's blocking functions (they return AG_EINVAL there).
 */
#ifndef AGENTS_ENGINE_H
#define AGENTS_ENGINE_H
#include "version.h"
#include <stddef.h>
#include <stdint.h>
#include "client.h"
#include "pool.h"
#include "agent.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_engine ag_engine;

typedef struct ag_engine_options {
    /* The client to run: pool options make a pool (agents/pool.h), else
     * client options a local client; both NULL = a local client on
     * $OLLAMA_HOST. Strings are read during ag_engine_new only. */
    const ag_client_options *client;
    const ag_pool_options *pool;
    size_t max_pending;  /* cap on queued chunk bytes; 0 = 4 MiB */
    int no_coalesce;     /* 1: one event per chunk, never merged */
    /* Seconds the engine may wait before making the fd readable once events
     * are queued (0 = at once): one wake-up of the consumer for the events of
     * that window instead of one per event. Streams of real models emit a
     * token every 10 to 50 ms; 0.0005 adds at most half a millisecond and,
     * with many streams, takes the consumer's wake-ups per token down a lot
     * (bench/RESULTS.md). Blocked ag_engine_next callers are woken at once. */
    double notify_delay;
} ag_engine_options;

/* Makes an engine and starts its thread. Returns NULL with *err set (the
 * client's errors: AG_EHOST, AG_EINVAL, AG_ENOMEM). */
AG_API ag_engine *ag_engine_new(const ag_engine_options *opts, int *err);

/* Stops the engine: pending requests complete with AG_ESHUTDOWN (no events
 * for them), threads blocked in ag_engine_next() or a blocking call return
 * AG_ESHUTDOWN, every later call is refused with AG_ESHUTDOWN, and the
 * engine's thread ends. Returns once it has ended. The memory stays until
 * ag_engine_free(): stop, join the threads that use the engine, then free.
 * Any thread but the engine's; more than once is harmless. */
AG_API void ag_engine_stop(ag_engine *e);

/* Stops the engine if it runs, waits for threads still inside a blocking
 * call to leave it, then frees everything (events not taken, the fd). Call it
 * once, from any thread but the engine's, when no thread will call into the
 * engine again. NULL is ignored. */
AG_API void ag_engine_free(ag_engine *e);

/* Readable while events wait to be taken; never read or close it. Level-
 * triggered: it stays readable until ag_engine_next() took the last event. */
AG_API int ag_engine_fd(const ag_engine *e);

/* ---- starting requests (events) ----
 * Return 0 and *id (if id is not NULL) the request's id, unique for the
 * engine's life; ud is handed back on each of its events. AG_EINVAL for a
 * NULL engine or parameters, AG_ENOMEM, AG_ESHUTDOWN once the engine is
 * being freed. */
AG_API int ag_engine_chat(ag_engine *e, const ag_chat_params *p, void *ud, uint64_t *id);
AG_API int ag_engine_generate(ag_engine *e, const ag_generate_params *p, void *ud, uint64_t *id);
AG_API int ag_engine_embed(ag_engine *e, const ag_embed_params *p, void *ud, uint64_t *id);
AG_API int ag_engine_admin(ag_engine *e, int op, const ag_model_params *p, void *ud, uint64_t *id);
AG_API int ag_engine_forward(ag_engine *e, const ag_forward_params *p, void *ud, uint64_t *id);
/* A task of an agent made on this engine's client (see ag_engine_client),
 * with this run's options (ro may be NULL; agent.h): events carry the
 * agent's chunks and, at the end, an ag_agent_result. */
AG_API int ag_engine_agent_run(ag_engine *e, ag_agent *a, const ag_message *msgs, size_t n,
                               const ag_run_options *ro, void *ud, uint64_t *id);

/* Cancels a request or task: its DONE event says AG_ECANCELED (unless it had
 * already completed: then nothing happens). */
AG_API void ag_engine_cancel(ag_engine *e, uint64_t id);

/* ---- events ---- */
enum ag_event_kind {
    AG_EVENT_CHUNK = 1, /* chunk holds a chunk (its strings owned by the event) */
    AG_EVENT_DONE       /* the request's end: result (requests) or agent_result (tasks) */
};
typedef struct ag_event {
    int kind;
    uint64_t id;
    void *ud;
    ag_chunk chunk;                     /* AG_EVENT_CHUNK */
    const ag_result *result;            /* AG_EVENT_DONE of a request */
    const ag_agent_result *agent_result;/* AG_EVENT_DONE of an agent task */
    int status;                         /* AG_EVENT_DONE: the status, either way */
} ag_event;

/* Takes the oldest event. timeout_ms: 0 = do not wait, negative = wait until
 * one comes. Returns 1 with *out set (free it with ag_event_free), 0 when
 * none came in time, AG_ESHUTDOWN once the engine is being freed. Events of
 * one request come in order; events of different requests interleave. */
AG_API int ag_engine_next(ag_engine *e, ag_event **out, int timeout_ms);
AG_API void ag_event_free(ag_event *ev);

/* Counters, read under the engine's lock (any thread). */
typedef struct ag_engine_stats {
    size_t pending_bytes;   /* chunk bytes queued and not yet taken */
    size_t queued_events;   /* events queued and not yet taken */
    unsigned active;        /* requests and tasks started and not yet complete */
    unsigned paused;        /* requests not reading, waiting for the consumer */
    uint64_t events;        /* events queued since the start */
    uint64_t merged;        /* chunks merged into a queued event */
    uint64_t pauses;        /* times a request was paused for the consumer */
} ag_engine_stats;
AG_API void ag_engine_get_stats(ag_engine *e, ag_engine_stats *out);

/* Takes queued text chunks (content and thinking) in one call, packed into
 * buf for bindings that pay per call (Python's ctypes, FFIs): records of a
 * 16-byte little-endian header - u64 ud, u32 text length, u16 chunk kind,
 * u16 zero - then the text, each record starting at a multiple of 8. Stops at
 * the first event that is not such a chunk (a DONE, a tool call: take it
 * with ag_engine_next) or when the next record does not fit (a chunk larger
 * than size is never packed: ag_engine_next takes it). Returns the bytes
 * written: 0 when nothing was packable at the head of the queue.
 * Backpressure and the fd behave as with ag_engine_next. */
AG_API size_t ag_engine_take_text(ag_engine *e, void *buf, size_t size);

/* ---- blocking calls: any thread but the engine's ----
 * As the client's *_sync calls (out as there: an ag_result copy and the
 * collected text and thinking), but only the calling thread waits. */
AG_API int ag_engine_chat_sync(ag_engine *e, const ag_chat_params *p, ag_sync_out *out);
AG_API int ag_engine_generate_sync(ag_engine *e, const ag_generate_params *p, ag_sync_out *out);
AG_API int ag_engine_embed_sync(ag_engine *e, const ag_embed_params *p, ag_sync_out *out);
AG_API int ag_engine_admin_sync(ag_engine *e, int op, const ag_model_params *p, ag_sync_out *out);
AG_API int ag_engine_agent_run_sync(ag_engine *e, ag_agent *a, const ag_message *msgs, size_t n,
                                    const ag_run_options *ro, ag_agent_result **out);

/* ---- anything else, on the engine's thread ----
 * Runs fn(client, ud) on the engine's thread and returns once it has run:
 * for making and freeing agents, reading a pool's nodes, setting hooks,
 * starting requests with callbacks of your own (which then run on the
 * engine's thread). Returns 0, AG_EINVAL when called from the engine's
 * thread, AG_ESHUTDOWN once the engine is being freed. */
AG_API int ag_engine_call(ag_engine *e, void (*fn)(ag_client *c, void *ud), void *ud);

/* The engine's client, for functions run by ag_engine_call and for the agent
 * constructors (agents/agent.h), which only allocate: an agent made on it may
 * be made, configured (ag_agent_set, ag_agent_add_tool) and freed from any
 * thread while none of its tasks runs, and must be freed before the engine.
 * Its hooks and tools run on the engine's thread. Memory the engine itself
 * allocates (copied parameters, events) comes from libc. */
AG_API ag_client *ag_engine_client(ag_engine *e);

#ifdef __cplusplus
}
#endif
#endif
