/* agents/gateway.h - an Ollama-compatible HTTP server in front of a client.
 *
 * The gateway listens on an address and serves Ollama's API (and the
 * OpenAI-compatible /v1 routes) on the caller's loop, forwarding every
 * request through an ag_client, normally a pool (agents/pool.h): any Ollama
 * client pointed at the gateway uses the whole cluster, with the pool's
 * routing, caps, queue and failover, and no code change.
 *
 * What it serves:
 * - POST /api/chat, /api/generate (streamed as the node streams them, byte
 *   for byte, or whole), /api/embed, /api/embeddings, /api/show,
 *   /v1/chat/completions, /v1/completions, /v1/embeddings: routed by the
 *   body's "model"; the body is forwarded unchanged.
 * - GET /api/version: from one routed node.
 * - GET /api/tags, /api/ps and /v1/models: every node that is not ejected is
 *   asked, and the lists are merged (one entry per model name, first node
 *   first). With a non-pool client, forwarded to its node.
 * - POST /api/pull, /api/push, /api/create, /api/copy, DELETE /api/delete and
 *   /api/blobs/...: to the node named in the "X-Agents-Node" header (a name
 *   from ag_pool_nodes() or /dashboard.json, e.g. "10.0.0.5:11434"); without
 *   the header, HTTP 400 saying so.
 * - GET and HEAD /: "Ollama is running".
 * - GET /metrics (Prometheus text), /dashboard (one self-contained page that
 *   updates itself every second; no external scripts or styles) and
 *   /dashboard.json (what the page reads).
 *
 * Failures follow the pool: a node that fails before the first byte reached
 * the gateway's client is replaced silently; after that the client sees the
 * stream end with an Ollama-style {"error": "..."} line (a "data:" event with
 * an "error" object on /v1 streams). A client that disconnects cancels its
 * upstream request. Errors the gateway produces itself are Ollama-style
 * bodies, {"error": "..."}, with a fitting status: 400 bad JSON or a missing
 * model, 401 a missing or wrong token, 404 unknown route or model nowhere,
 * 408 a request that did not arrive within request_timeout, 413 body over
 * max_body, 431 header limits, 502 a node failed, 503 no node or queue full,
 * too many clients, or too many body bytes buffered (max_buffered).
 *
 * Bounded under attack: a client's unsent output is capped (pipelined
 * requests are not read while over 1 MiB of answers waits for it, local
 * answers included); an answer waits at most send_timeout for a client that
 * stopped reading; bodies are read only after the token was checked and are
 * released as soon as they were handed on; when descriptors run out, accept
 * pauses (100 ms) instead of spinning; client sockets get TCP keep-alive.
 *
 * Threading and lifetime: like the client, single threaded on the loop. The
 * client must outlive the gateway. Freeing the gateway closes every client
 * connection and cancels their requests.
 */
#ifndef AGENTS_GATEWAY_H
#define AGENTS_GATEWAY_H
#include "version.h"
#include <stddef.h>
#include <stdint.h>
#include "client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_gateway ag_gateway;

typedef struct ag_gateway_options {
    const char *listen;        /* "ADDR:PORT", "[V6]:PORT"; NULL = "127.0.0.1:11434"; port 0 = any free */
    unsigned max_clients;      /* open client connections; 0 = 1024; over it: 503 and close */
    size_t max_body;           /* request body cap; 0 = 64 MiB; over it: 413 */
    size_t max_head;           /* request line + headers, bytes; 0 = 16 KiB; over it: 431 */
    unsigned max_headers;      /* header count; 0 = 64; over it: 431 */
    double idle_timeout;       /* seconds a kept-alive connection may sit idle; 0 = 60 */
    double request_timeout;    /* seconds from a request's first byte to its last; 0 = 30; then 408 */
    const char *token;         /* non-NULL: clients must send "Authorization: Bearer TOKEN"
                                  (/dashboard, /dashboard.json and /metrics also take ?token=TOKEN);
                                  checked when the head arrives: a wrong one gets 401 and the
                                  connection closes before any body is read */
    double send_timeout;       /* seconds an answer may wait for a client that does not read; 0 = 30;
                                  then the connection closes and its upstream request is cancelled */
    size_t max_buffered;       /* request body bytes buffered over all clients at once; 0 = 256 MiB;
                                  over it: 503 and close */
    /* Browser origins allowed besides Ollama's defaults (http(s)://localhost,
     * 127.0.0.1 and 0.0.0.0 on any port, app://, file://, tauri://,
     * vscode-webview://, vscode-file://, browser extensions): a comma-separated
     * list where "*" stands for any characters (a scheme, then "*.example.com",
     * allows every subdomain). NULL = $OLLAMA_ORIGINS.
     * A request from another origin gets 403; an allowed one gets
     * Access-Control-Allow-Origin, and its preflight (OPTIONS) 204 with the
     * methods and headers Ollama allows. */
    const char *origins;
    /* 1: a pull without X-Agents-Node goes to every node that is not ejected,
     * answered as one pull: streamed, the nodes' progress merged (each status
     * once, a layer's total and completed summed over the nodes) and
     * {"status":"success"} when every node is done, else an {"error"} line;
     * with "stream": false, one answer when all are done ({"status":
     * "success"} when any succeeded). 0: to the node the pool chooses, its
     * progress streamed */
    int pull_all;
    /* Client keys, one JSON object a line ('#' lines are comments):
     *   {"name": "nightly", "secret": "...", "models": ["llama3.2", "qwen3:*"],
     *    "rpm": 600, "tpm": 200000, "concurrent": 32, "priority": "batch",
     *    "over_limit": "wait"}
     * name (unique), and "secret" (8 characters or more) or "sha256" (the
     * secret's SHA-256 in hex, so the file need not hold the secret); the rest
     * optional: allowed models (a name, or a prefix ending in "*"; absent = any),
     * requests and tokens (prompt + output, as the nodes report them) in any
     * minute (counted a second at a time over the last sixty; a request is
     * admitted while the minute is under both), requests at once, a priority
     * class
     * ("interactive", "default", "batch"), and what a request over a limit
     * gets: "refuse" (default: 429 with Retry-After, in Ollama's error shape,
     * or OpenAI's on /v1) or "wait" (it waits its turn, up to 60 s, then 429; at
     * most 1,024 waiting a key).
     * "admin": true lets a key manage models (pull, push, create, copy,
     * delete, blobs: 403 for other keys) and see every key's figures in
     * /metrics and /dashboard.json (another key sees its own); a key with
     * "models" sees those only in /api/tags, /api/ps and /v1/models. A
     * numeric "priority" is an integer from -1000 to 1000.
     * Clients send "Authorization: Bearer SECRET" (the dashboard and /metrics
     * also take ?token=SECRET); a key is found by the SHA-256 digest of the
     * presented secret and confirmed in constant time. With token set as
     * well, that token is an admin key without limits. Read at creation (a bad file: AG_EINVAL) and by
     * ag_gateway_reload(). */
    const char *keys_file;
    /* Serve https: a certificate chain and its private key, PEM files (both,
     * or neither). TLS 1.2 and up; HTTP/1.1 keep-alive as on plain HTTP. A
     * file that does not load, or a key that does not match: AG_ETLS. */
    const char *tls_cert, *tls_key;
    /* Connections at once from one client address (loopback included);
     * 0 = 64, -1 = no cap; over it: 503 and close (on https: closed). An
     * https connection's TLS handshake must be done within 10 s. */
    int max_clients_per_ip;
    /* The access log: one JSON line a request (time, request_id, trace_id,
     * client, key, method, path, model, status, bytes, duration, queue, TTFT,
     * tokens, each attempt's node and outcome, the error), appended with one
     * write each; "-" = stdout; NULL = none. ag_gateway_reopen_logs() opens it
     * again (after logrotate moved it). */
    const char *access_log;
    /* OTLP/HTTP (JSON) traces: "http://collector:4318" (spans go to
     * /v1/traces) or a URL with its own path. A span per request (server
     * kind, the child of the client's traceparent, or a new trace) and one
     * per attempt on a node (client kind; the node gets that span as the
     * parent in its traceparent), with OpenTelemetry's gen_ai attributes.
     * Sent in batches each second from a queue of 4,096 spans; when the
     * queue is full or the collector fails, spans are dropped and counted
     * (agents_otlp_spans_dropped_total): requests never wait for it. NULL =
     * none. Every request gets an X-Request-Id (the client's, or made) and a
     * traceparent on its way to the node either way. */
    const char *otlp_endpoint;
} ag_gateway_options;

/* Starts listening. c is borrowed. NULL with *err set: AG_EINVAL for a bad
 * listen address or options, AG_ECONNECT when the address cannot be bound,
 * AG_ENOMEM. */
AG_API ag_gateway *ag_gateway_new(struct event_base *base, ag_client *c, const ag_gateway_options *opts,
                           int *err);
/* Re-reads keys_file: keys keep their figures and buckets by name, removed
 * ones stop working at once (their requests waiting for a limit get 403; a
 * request of theirs already running ends as it would) and are freed when no
 * connection refers to them; new ones start. A bad file changes nothing:
 * AG_EINVAL with the reason (file and line) in err. AG_EINVAL too when the
 * gateway has no keys file; AG_EBUSY while ag_gateway_reload_start's reload
 * runs. Parses on the calling thread (about 0.3 s for 100,000 keys): from a
 * loop that must stay responsive, use ag_gateway_reload_start. */
AG_API int ag_gateway_reload(ag_gateway *g, char *err, size_t errlen);

/* The same reload without blocking the loop (call it from your SIGHUP
 * handler): the file is read and parsed on a thread of its own, then the new
 * keys replace the old on the loop in one step of a few milliseconds.
 * done(ud, rc, err) is called on the loop when it has ended (rc and err as
 * ag_gateway_reload's; err borrowed for the call); done may be NULL. Returns
 * 0 when started, AG_EBUSY while another reload runs, AG_EINVAL without a
 * keys file, AG_ENOMEM. A gateway freed meanwhile waits for the thread and
 * drops its result (done is not called). */
AG_API int ag_gateway_reload_start(ag_gateway *g, void (*done)(void *ud, int rc, const char *err), void *ud);

/* Reads a keys file as the gateway would, without a gateway: 0, or
 * AG_EINVAL with the reason (file and line) in err. */
AG_API int ag_gateway_keys_check(const char *path, char *err, size_t errlen);

/* A key's figures (ag_gateway_keys): borrowed until the next reload. */
typedef struct ag_key_info {
    const char *name;
    int priority;               /* -1 batch, 0 default, 1 interactive */
    unsigned in_flight, waiting;
    uint64_t requests;          /* admitted */
    uint64_t refused;           /* 429 (over a limit) and 403 (model not allowed) */
    uint64_t errors;            /* admitted requests that failed */
    uint64_t prompt_tokens, output_tokens; /* as the nodes reported them */
    double queue_wait_ms;       /* mean time from arrival to start (its limits' waits) */
    double ttft_p50_ms, ttft_p99_ms;
} ag_key_info;
/* Fills up to max records and returns the number of keys. */
AG_API size_t ag_gateway_keys(const ag_gateway *g, ag_key_info *out, size_t max);

/* Opens the access log again (its path may now be a new file, after a
 * rotation): 0, or AG_EINVAL when it cannot (the old one stays). */
AG_API int ag_gateway_reopen_logs(ag_gateway *g);

/* The port it listens on (useful with port 0). */
AG_API int ag_gateway_port(const ag_gateway *g);
/* Stops listening, closes every client connection (their upstream requests
 * are cancelled, so their done callbacks run, quietly, inside this call).
 * NULL is ignored. */
AG_API void ag_gateway_free(ag_gateway *g);

typedef struct ag_gateway_stats {
    uint64_t accepted;          /* client connections */
    uint64_t rejected;          /* connections turned away at max_clients or max_clients_per_ip */
    uint64_t requests;          /* requests parsed */
    uint64_t status_2xx, status_4xx, status_5xx;
    uint64_t broken_streams;    /* ended with an error line after output */
    uint64_t client_aborts;     /* clients gone before their answer ended */
    uint64_t bytes_out;         /* response body bytes forwarded */
    unsigned clients;           /* connected now */
    unsigned in_flight;         /* upstream requests running now */
    uint64_t send_timeouts;     /* clients closed for not reading their answer */
    uint64_t accept_errors;     /* accept() failures (descriptors exhausted: EMFILE, ENFILE) */
    size_t buffered;            /* request body bytes held now */
    size_t unsent;              /* answer bytes waiting for clients to read them, now */
    uint64_t rejected_per_ip;   /* of rejected: over max_clients_per_ip */
} ag_gateway_stats;
AG_API void ag_gateway_get_stats(const ag_gateway *g, ag_gateway_stats *out);

#ifdef __cplusplus
}
#endif
#endif
