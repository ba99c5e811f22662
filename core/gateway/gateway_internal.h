/* core/gateway/gateway_internal.h - private to the gateway: Ollama's API
 * served in front of an ag_client.
 *
 * The HTTP/1.1 server engine is transport/server.c; the gateway is what it
 * runs for each request, on top of the public client API plus the small
 * interface of core/client_ext.h:
 *
 * gateway.c    the request: routes, credentials, the body's model, one
 *              ag_forward() whose AG_CHUNK_BODY chunks go out as HTTP chunks
 * fan.c        /api/tags, /api/ps, /v1/models: every node asked, lists merged
 * export.c     /metrics (Prometheus text) and /dashboard.json
 * dashboard.c  /dashboard, one self-contained page
 */
#ifndef AG_CORE_GATEWAY_INTERNAL_H
#define AG_CORE_GATEWAY_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event_struct.h>

#include "agents/error.h"
#include "agents/gateway.h"
#include "agents/pool.h"
#include "transport/server.h"
#include "core/base/buf.h"

#include <yajl/yajl_tree.h>

enum groute {
    R_NONE, R_ROOT, R_METRICS, R_DASH, R_DASH_JSON, R_VERSION, R_TAGS, R_PS, R_V1_MODELS,
    R_MODEL,  /* routed by model: chat, generate, embed, show, /v1 */
    R_ADMIN,  /* to the node named in X-Agents-Node */
    R_PREFLIGHT /* a browser's CORS preflight (OPTIONS) */
};

typedef struct fan fan;
typedef struct gconn gconn;


/* A client key (keys.c): its settings from the keys file, its limits'
 * state and its figures. Kept across reloads (by name); a key a reload
 * removed is freed once no connection refers to it (refs). Memory that only
 * a used key needs (its minute, its TTFTs) is allocated on first use, so an
 * idle key costs a few hundred bytes. */
struct gkwin { /* the last minute, a second a slot: what was admitted and spent */
    int64_t sec;
    uint32_t req;
    uint64_t tok;
};
typedef struct gkey {
    struct ag_gateway *g;
    char name[64];
    unsigned char hash[32];  /* SHA-256 of the secret */
    char *models;            /* allowed models, '\n' after each ("name*": a prefix); NULL = any (libc) */
    int removed, wait, priority, admin;
    double rpm, tpm;         /* 0 = no limit */
    unsigned concurrent;     /* 0 = no limit */
    double tok_est;          /* tokens a request of this key costs (a moving mean; 0 = none seen) */
    double tok_reserved;     /* tok_est of each request in flight: counted before the nodes report */
    struct gkwin *win;       /* [60], NULL until the first request */
    unsigned in_flight, waiting, refs; /* refs: connections that hold the key */
    gconn *whead, **wtail;   /* requests waiting for the limits (over_limit: wait) */
    struct event wake;
    int wake_set;            /* wake assigned to the loop */
    uint64_t requests, refused, errors, tokens_in, tokens_out, wait_ns; /* wait_ns: over the requests admitted */
    float *ttft_ms;          /* [512] the last TTFTs, a ring (the quantiles are of these); NULL until one */
    unsigned nttft;
} gkey;

/* the keys now in force: an array and two open-addressing indexes (by name,
 * by the secret's digest) of positions + 1, 0 = empty; cap a power of two */
typedef struct gktab {
    gkey **keys;
    size_t n, cap;
    uint32_t *by_name, *by_hash;
} gktab;

struct keyload; /* a reload parsing on a thread of its own (keys.c) */

/* observe.c: a request as the operator sees it */
struct gtry { /* one attempt, from res.tries */
    char node[64];
    int status, http;
    double start_ms, end_ms;
    char span[17];
};
typedef struct gobs {
    int64_t t0, wall0;    /* the head arrived (monotonic; wall clock for spans and the log) */
    char rid[72];         /* X-Request-Id: the client's, or made */
    char trace[33], parent[17], flags[3], span[17]; /* W3C: the trace, the client's span, ours */
    char tracestate[512];
    char hdrs[800];       /* to the node: X-Request-Id, traceparent, tracestate */
    size_t bytes_in;
    int have;             /* an answer's result was seen */
    int status;           /* AG_* */
    char err[200];
    struct gtry tries[8];
    int ntries;
    double ttft_ms, itl_ms, e2e_ms; /* -1: none */
    int64_t tok_in, tok_out;        /* -1: not reported */
} gobs;
#define AG__HIST_N 900 /* seconds of dashboard history */
#define AG__OBS_BUCKETS 14
#define AG__OBS_SERIES 256
struct gbuckets {
    uint64_t le[AG__OBS_BUCKETS], count;
    double sum;
};
typedef struct ghist { /* ttft, itl, queue, duration of one (node, model) */
    char node[64], model[256];
    struct gbuckets h[4];
} ghist;
typedef struct gtok {
    char key[64], model[256];
    uint64_t in, out;
} gtok;

struct ag_gateway {
    struct event_base *base;
    ag_client *c;
    const ag_alloc_funcs *a; /* the client's */
    ag_gateway_options opt;
    char *token;
    char *origins; /* the extra allowed origins, comma-separated (owned), or NULL */
    ag__srv *srv;
    int64_t t0;
    /* the gateway's own counters (the server keeps the HTTP ones) */
    uint64_t broken_streams, client_aborts;
    unsigned in_flight;
    char *keys_file; /* the keys (keys.c), or NULL */
    struct ssl_ctx_st *tls; /* https (tls_cert, tls_key), or NULL */
    gktab kt;               /* the keys (keys.c) */
    struct keyload *loading; /* a reload under way, or NULL */
    /* observe.c */
    char *log_path;          /* the access log's path, "-" (stdout) or NULL */
    int log_fd, log_err;     /* the access log (-1: none); the first write error */
    uint64_t log_lines;
    ghist *hist;             /* [AG__OBS_SERIES] */
    size_t nhist;
    gtok *tok;               /* [AG__OBS_SERIES] */
    size_t ntok;
    /* the dashboard's history (export.c): a ring of the last 15 minutes at
     * 1 s, so that a page opened now shows the past, and each node's tokens
     * a second for 5 s (its throughput over all its streams) */
    struct {
        struct event *tick;
        float tps[AG__HIST_N], in_flight[AG__HIST_N], queued[AG__HIST_N];
        uint32_t head, n;
        uint64_t last_tokens;
        struct { uint64_t h[256], tok[256]; size_t n; } snap[6];
        uint32_t nsnap;
    } hi;
    struct {
        ag_client *c;        /* to the collector, or NULL */
        char path[256];
        struct event *tick;
        ag__buf q;           /* spans waiting, each a JSON object and a NUL */
        size_t n, sending;
        ag__buf body;
        ag_request *req;     /* the batch on its way */
        uint64_t exported, dropped, failures;
        int stopping;
    } otlp;
};

/* One client connection's request, as the gateway sees it. */
struct gconn {
    ag_gateway *g;
    ag__sconn *sc;
    char auth[512], node[300], model[256];
    int route, stream, v1;
    int stream_default; /* the route's, when the body does not say */
    size_t plen;        /* the URL's path part */
    ag_request *req;
    fan *fan;
    int paused;
    char origin[256];   /* the Origin header, "" when none */
    int preflight;      /* Access-Control-Request-Method was sent */
    /* a whole (non-streamed) answer, held to be sent with its length */
    ag__buf whole;
    int whole_status, whole_chunked;
    struct xlate *xl; /* a request translated for an OpenAI-compatible node (translate.c) */
    struct mx *mx;    /* an Anthropic Messages request translated for OpenAI-compatible nodes (messages.c) */
    struct rx *rx;    /* a Responses API request translated for them (responses.c) */
    int pull;         /* a pull fanned out to every node (pull_all) */
    char session[128]; /* X-Session-Id: the request's session key, "" when none */
    gkey *key;         /* the client's key (keys file), NULL for none or the single token */
    int key_taken;     /* counted against its key's limits until it ends */
    double tok_est;    /* the tokens it holds in its key's tok_reserved */
    int waiting;       /* in its key's wait list */
    gconn *wnext, **wprev;
    int64_t t_parsed;  /* when the whole request had arrived */
    double deadline;   /* X-Request-Deadline: seconds to the first token, 0 = none */
    gobs obs;          /* observe.c */
    /* /v1/messages, /v1/responses: forwarded undecoded, so the answer's last
     * bytes are kept (at most 8 KiB) to read its usage from when it ends (the
     * key's tokens, the log, the histograms) */
    int usage_tail;
    ag__buf tail;
};

/* the HTTP status for a request that failed before any byte was sent: the
 * node's own, else by the error table; AG_ENONODE is 404 when no node has
 * the model, 503 when one that has it is down */
int ag__gw_http_for(ag_gateway *g, const ag_result *res, const char *model);
/* the response is complete: per-request state cleared, the server told */
void ag__gw_finish(gconn *gc);
/* forwards the request to a node (routed by model, or pinned) */
void ag__gw_forward(gconn *gc, const char *model, const char *pin);

/* the request options the client's request carries: its session, its key's
 * class and turn, its deadline; 1 when any is set */
int ag__gw_request_options(gconn *gc, ag_request_options *ro);
/* errors in the route's shape (Ollama's, or OpenAI's on /v1) */
void ag__gw_send_error(gconn *gc, int status, const char *msg);
/* a model-routed request whose key admitted it: translated or forwarded */
void ag__gw_dispatch_model(gconn *gc);

/* keys.c */
int ag__gw_keys_load(ag_gateway *g, char *err, size_t errlen);
/* the keys file read and parsed on a thread of its own, swapped in on the
 * loop (a few ms for 100,000 keys); cb(ud, rc, err) on the loop when done.
 * AG_EBUSY while another reload is under way. */
int ag__gw_keys_reload_start(ag_gateway *g, void (*cb)(void *ud, int rc, const char *err), void *ud);
/* the connection holds k (or lets it go: a removed key is freed when none does) */
void ag__gw_key_hold(gconn *gc, gkey *k);
/* figures of every key (only NULL) or of one, as ag_gateway_keys */
size_t ag__gw_key_infos(const ag_gateway *g, const gkey *only, ag_key_info *out, size_t max);
gkey *ag__gw_key_for(ag_gateway *g, const char *secret, size_t len);
int ag__gw_key_allows(const gkey *k, const char *model);
/* added to the clock of the keys' minute windows: for tests only */
extern int64_t ag__gw_clock_skew_ns;
/* 1: go on now; 0: answered (403, 429) or waiting (ag__gw_dispatch_model later) */
int ag__gw_admit(gconn *gc);
/* the request ended (res NULL: without an answer): tokens counted, waiters woken */
void ag__gw_key_done(gconn *gc, const ag_result *res);
/* the connection closes: out of the wait list, its slot freed */
void ag__gw_key_gone(gconn *gc);
void ag__gw_keys_free(ag_gateway *g);

/* fan.c */
void ag__gw_fan(gconn *gc, const char *path);
/* delete or copy on every node (those without the model answer 404); one
 * answer: 200 when any did it */
void ag__gw_fan_admin(gconn *gc);
/* the client left: the fan-out's answers are dropped when they arrive */
void ag__gw_fan_detach(fan *f);

/* translate.c: Ollama's routes served by OpenAI-compatible nodes */
/* 1 when every node that is not ejected speaks the OpenAI-compatible API */
int ag__gw_openai_only(ag_gateway *g);
/* chat, generate, embed, embeddings: 1 when it took the request (and
 * answers it), 0 for another route */
int ag__gw_translate(gconn *gc, const char *path, size_t plen);

/* translate.c: a translated request's end (the books), and its error answer
 * when nothing went out (in the route's shape) */
void ag__gw_translated_end(gconn *gc, const ag_result *res);
void ag__gw_translated_error(gconn *gc, const ag_result *res, const char *model);
/* translate.c: a JSON value as text, in the arena (NULL: none, or out of memory) */
const char *ag__gw_json_text(const ag_alloc_funcs *a, ag__arena *ar, yajl_val v);
/* translate.c, what the three translations share:
 * - the request's body as a JSON object (owned by the caller), or NULL after
 *   answering 400 and finishing the request;
 * - after the starting call: frees root, releases the body; rc 0 counts the
 *   request in flight and gives 0, else answers the error (why, or the
 *   code's text) and finishes the request, and gives rc;
 * - a message's content as text: a string, or its text parts joined by
 *   newlines ("" when none);
 * - function tools (name, description, the schema under schema_key) as the
 *   chat API's "tools" JSON (NULL when none; a server's own tools skipped);
 * - max_key, temperature, top_p, top_k, stop_sequences as Ollama's options
 *   JSON (NULL when none). Texts live in the arena. */
yajl_val ag__gw_body_tree(gconn *gc);
int ag__gw_translated_start(gconn *gc, yajl_val root, int rc, const char *why, const char *model);
const char *ag__gw_text_parts(const ag_alloc_funcs *a, ag__arena *ar, yajl_val content);
const char *ag__gw_function_tools(const ag_alloc_funcs *a, ag__arena *ar, yajl_val tools, const char *schema_key);
const char *ag__gw_sampling_options(const ag_alloc_funcs *a, ag__arena *ar, yajl_val root, const char *max_key);
/* messages.c: /v1/messages (count: /v1/messages/count_tokens) served by
 * OpenAI-compatible nodes; it answers, and finishes the request */
void ag__gw_translate_messages(gconn *gc, int count);
/* responses.c: /v1/responses served by OpenAI-compatible nodes (their chat completions) */
void ag__gw_translate_responses(gconn *gc);

/* export.c */
void ag__gw_metrics(ag_gateway *g, const gconn *gc, struct evbuffer *b);
/* 0, or AG_ENOMEM; *out is the caller's to free with the client's allocator */
int ag__gw_dash_json(ag_gateway *g, const gconn *gc, char **out, size_t *len);
/* the history's one-second sample (a timer the gateway keeps) */
void ag__gw_history_tick(evutil_socket_t fd, short what, void *arg);

/* cors.c: an allowed origin (Ollama's defaults, then --origins); the
 * headers a preflight's answer carries */
int ag__gw_origin_ok(const ag_gateway *g, const char *o);
extern const char ag__gw_cors_preflight[];

/* observe.c */
void ag__obs_header(gconn *gc, const char *f, size_t fl, const char *v, size_t vl);
void ag__obs_head(gconn *gc);
/* the headers a node gets: X-Request-Id, traceparent (with the gateway's
 * span as the parent; the pool gives each attempt its own), tracestate */
const char *ag__obs_node_headers(gconn *gc);
void ag__obs_result(gconn *gc, const ag_result *res);
void ag__obs_finish(gconn *gc);
void ag__obs_refused(gconn *gc, int status, const char *msg);
int ag__obs_open_log(ag_gateway *g);
int ag__obs_otlp_start(ag_gateway *g, const char *endpoint);
void ag__obs_otlp_stop(ag_gateway *g);
/* only: the key whose series are shown (a key that is not an admin), NULL = all */
void ag__obs_metrics(ag_gateway *g, const gkey *only, struct evbuffer *b);

/* dashboard.c */
extern const char ag__dashboard_html[];

#endif
