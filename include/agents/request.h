/* agents/request.h - what a request asks for, what it streams, how it ends.
 *
 * Parameters are read during the call that starts a request and never after:
 * the caller may free or reuse them as soon as that call returns.
 *
 * Fields holding raw JSON (options_json, tools_json, format, arguments_json...)
 * are validated and re-encoded; invalid JSON makes the starting call fail with
 * AG_EINVAL. A field left NULL (or 0 where noted) is not sent at all, so the
 * server's default applies.
 */
#ifndef AGENTS_REQUEST_H
#define AGENTS_REQUEST_H
#include "version.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_request ag_request;

/* One chat message. role is "system", "user", "assistant" or "tool". */
typedef struct ag_message {
    const char *role;
    const char *content;
    const char *thinking;          /* optional */
    const char *const *images;     /* optional base64 strings */
    size_t n_images;
    const char *tool_calls_json;   /* optional: JSON array as the server sends it */
    const char *tool_name;         /* optional: for role "tool" */
} ag_message;

/* Shared generation options. */
/* Per-request controls. Every field at 0 or NULL keeps the client's setting;
 * the struct is read during the starting call only. */
typedef struct ag_request_options {
    double deadline;             /* seconds from the starting call to done; then AG_EDEADLINE (0 = none) */
    double first_token_deadline; /* seconds to the first chunk of output; then AG_EDEADLINE (0 = none) */
    double first_byte_timeout;   /* as ag_client_options' (negative = none), for this request */
    double idle_timeout;         /* as ag_client_options' (negative = none), for this request */
    /* Extra request headers: "Name: value" lines separated by "\n" (a
     * traceparent, a request id, a tenant's own credentials). A name that is
     * not a token, a CR, or an empty line refuses the call with AG_EINVAL. */
    const char *headers;
    int retry_budget;            /* pool: attempts after the first; 0 = the pool's, negative = none */
    const char *node;            /* pool: only this node (as ag_pool_nodes() names it); no failover */
    int read_end;                /* 1: an AG_CHUNK_READ_END after each read that delivered chunks */
    /* Retry with backoff (the original package's retry_with_backoff): after a
     * transient failure (refused, reset, timeout, 5xx, 503, 429, a broken
     * answer) before any output reached the caller, and after a pool's own
     * failover gave up, wait and send the request again, up to `retries`
     * times; the first wait is retry_delay seconds (0 = 1 s), each next one
     * retry_factor times longer (0 = 2). The deadline still bounds the whole.
     * res->attempts counts every attempt. 0 retries = none. */
    int retries;
    double retry_delay, retry_factor;
    /* Session affinity (a pool): requests with the same key go to the same
     * node while it can take them, so that the prefix it has cached (the
     * conversation so far, a long system prompt) is reused. Keys map to
     * nodes by rendezvous hashing with bounded loads (ag_pool_options.
     * affinity_slack); an ejected node's keys move to their next node and
     * come back over ag_pool_options.affinity_ramp. A client of one node
     * sends the key as an X-Session-Id header, which `agents gateway` routes
     * by. At most 256 bytes, no CR or LF (else AG_EINVAL). NULL = none (the
     * agents set one for each task). */
    const char *session;
    /* A pool's queue (requests wait there when every node is at its cap):
     * higher priority classes are served first (AG_PRIORITY_*, or any int;
     * 0 = default), and within a class the tenants take turns, one request
     * each (round robin: a tenant with 10,000 queued requests delays one
     * with a single request by at most one turn). tenant NULL = the class's
     * shared turn. Also what `agents gateway` sets from a client's key. */
    int priority;
    const char *tenant;
} ag_request_options;

enum ag_priority { AG_PRIORITY_BATCH = -1, AG_PRIORITY_DEFAULT = 0, AG_PRIORITY_INTERACTIVE = 1 };

typedef struct ag_gen_options {
    const char *format;       /* "json", or a JSON schema object as text */
    const char *options_json; /* JSON object passed through as "options" */
    const char *keep_alive;   /* "5m", "1h30m", or a number of seconds as text ("0", "-1") */
    const char *think;        /* "true", "false", "low", "medium", "high" */
    int no_stream;            /* 1 = ask for one object ("stream": false) */
} ag_gen_options;

typedef struct ag_chat_params {
    const char *model;
    const ag_message *messages;
    size_t n_messages;
    const char *tools_json; /* JSON array of {"type":"function","function":{...}} */
    ag_gen_options gen;
    const ag_request_options *request; /* NULL = the client's settings */
} ag_chat_params;

typedef struct ag_generate_params {
    const char *model;
    const char *prompt;
    const char *suffix;
    const char *system;
    const char *template_;
    const char *const *images;
    size_t n_images;
    int raw;                  /* 1 = "raw": true */
    ag_gen_options gen;
    const ag_request_options *request; /* NULL = the client's settings */
} ag_generate_params;

typedef struct ag_embed_params {
    const char *model;
    const char *const *inputs; /* one or more texts */
    size_t n_inputs;
    int truncate;              /* -1 = server default, 0 = false, 1 = true */
    int dimensions;            /* 0 = not sent */
    const char *options_json;
    const char *keep_alive;
    int legacy;                /* 1 = POST /api/embeddings (one input, "prompt") */
    const ag_request_options *request; /* NULL = the client's settings */
} ag_embed_params;

/* Model management; only the fields an endpoint uses are read. */
typedef struct ag_model_params {
    const char *model;        /* show, pull, delete; copy: source */
    const char *destination;  /* copy */
    int verbose;              /* show */
    int insecure;             /* pull */
    int no_stream;            /* pull */
    const ag_request_options *request; /* NULL = the client's settings */
} ag_model_params;

/* What arrives while a request runs. Strings are borrowed: they point into
 * the parser's buffers, are not NUL-terminated (use len), and live only until
 * the callback returns. */
enum ag_chunk_kind {
    AG_CHUNK_CONTENT = 1,  /* a piece of the answer (chat content, generate response) */
    AG_CHUNK_THINKING,     /* a piece of the model's thinking */
    AG_CHUNK_TOOL_CALL,    /* one whole tool call: name + arguments_json */
    AG_CHUNK_PROGRESS,     /* pull progress: text = status, digest, total, completed */
    AG_CHUNK_RAW,          /* --json style: one whole NDJSON object (only with ag_request_set_raw);
                              from an OpenAI-compatible stream, each event's JSON payload */
    AG_CHUNK_BODY,         /* ag_forward(): response body bytes exactly as the node sent them
                              (after HTTP framing); index = the response's HTTP status */
    AG_CHUNK_READ_END      /* the chunks before it came from one socket read, and nothing more
                              is buffered: a forwarder flushes here, once a read rather than once
                              a token (only with ag_request_options.read_end; no text) */
};

typedef struct ag_chunk {
    int kind;
    const char *text;
    size_t len;
    /* AG_CHUNK_TOOL_CALL */
    const char *name;
    size_t name_len;
    const char *arguments_json; /* compact JSON object */
    size_t arguments_len;
    int index;                  /* position of the call within its message */
    /* AG_CHUNK_PROGRESS */
    const char *digest;
    int64_t total, completed;   /* -1 when absent */
} ag_chunk;

/* Server-reported figures from the final object; -1 when the server left
 * them out. Durations are nanoseconds. */
typedef struct ag_server_stats {
    int64_t total_duration;
    int64_t load_duration;
    int64_t prompt_eval_count;
    int64_t prompt_eval_duration;
    int64_t eval_count;
    int64_t eval_duration;
} ag_server_stats;

/* Client-side measurements, monotonic clock, taken when each chunk reached the
 * callback. Nanoseconds; ttft is -1 when no chunk arrived. */
typedef struct ag_timing {
    int64_t ttft_ns;       /* request start -> first content/thinking/tool chunk */
    int64_t e2e_ns;        /* request start -> completion */
    int64_t itl_mean_ns;   /* mean gap between consecutive chunks */
    int64_t itl_max_ns;    /* largest gap */
    int64_t chunks;        /* content + thinking + tool-call chunks delivered */
    int64_t bytes;         /* content + thinking bytes delivered (ag_forward: body bytes) */
} ag_timing;

typedef struct ag_model_info {
    const char *name, *model, *digest, *modified_at, *expires_at;
    int64_t size, size_vram;
    const char *family, *format, *parameter_size, *quantization_level, *parent_model;
} ag_model_info;

typedef struct ag_show_info {
    const char *modelfile, *parameters, *template_, *family, *parameter_size,
        *quantization_level, *format;
    const char *const *capabilities;
    size_t n_capabilities;
} ag_show_info;

/* One attempt of a request: a pool's failover, retries and resumes make
 * several, in order. */
typedef struct ag_attempt {
    const char *node;         /* "host:port" */
    int status;               /* how it ended: 0 or AG_E* (the last one's is the request's) */
    int http_status;          /* the node's, 0 when none came */
    double start_ms, end_ms;  /* from the starting call (the first start less 0: the queue wait) */
    /* the W3C span id (16 hex digits) this attempt sent as the parent in its
     * traceparent header: a request whose headers carry a traceparent has the
     * parent id rewritten for each attempt, so every attempt is a span of its
     * own; "" when the request has none */
    const char *span_id;
} ag_attempt;

/* The completion. Borrowed: valid only during the done callback (use
 * ag_result_dup() to keep it). Unused members are zero / NULL. */
typedef struct ag_result {
    int status;               /* 0 or AG_E* */
    const char *error;        /* the server's message or a detail; NULL when status == 0 */
    int http_status;          /* 0 when no response head arrived */
    const char *model;
    const char *created_at;   /* as the server wrote it */
    const char *done_reason;  /* "stop", "length", "load", "unload", ... */
    ag_server_stats server;
    ag_timing timing;
    /* /api/generate non-streamed or final: the context tokens */
    const int64_t *context;
    size_t n_context;
    /* /api/embed: n_embeddings vectors of dim floats, contiguous, row major */
    const float *embeddings;
    size_t n_embeddings, dim;
    /* /api/tags, /api/ps */
    const ag_model_info *models;
    size_t n_models;
    /* /api/show */
    const ag_show_info *show;
    /* /api/version */
    const char *version;
    /* the node that served the request (or the last one tried), "host:port";
     * NULL when no node was tried (AG_ENONODE at once, a cancel while queued) */
    const char *node;
    /* attempts made: 1, or more when a pool retried or failed over (0 when
     * none started) */
    int attempts;
    /* a pool's attempts, each with its node, outcome and times (the first 8;
     * NULL and 0 for a client of one node) */
    const ag_attempt *tries;
    size_t n_tries;
} ag_result;

/* Called for each chunk. Return 0; the request may be cancelled or the client
 * freed from here. */
typedef void (*ag_chunk_cb)(ag_request *req, const ag_chunk *chunk, void *ud);
/* Called exactly once per accepted request, last. req is invalid afterwards.
 * A NULL done callback is accepted (the request still completes, unseen). */
typedef void (*ag_done_cb)(ag_request *req, const ag_result *res, void *ud);

/* Deep copy of a result (every string, vector and list), one allocation with
 * libc malloc; release with ag_result_free(). NULL when out of memory. */
AG_API ag_result *ag_result_dup(const ag_result *res);
AG_API void ag_result_free(ag_result *res);

#ifdef __cplusplus
}
#endif
#endif
