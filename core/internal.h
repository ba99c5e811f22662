/* core/internal.h - private to the library: the request, the codecs, the
 * client's operation table. Names shared across files start with ag__. */
#ifndef AG_CORE_INTERNAL_H
#define AG_CORE_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "agents/version.h"
#include "agents/error.h"
#include "agents/alloc.h"
#include "agents/host.h"
#include "agents/request.h"
#include "agents/client.h"
#include "agents/pool.h"
#include "transport/http.h"
#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/json.h"
#include "core/base/mem.h"


/* ---- response kinds ---- */
enum ag__kind {
    AG__K_CHAT = 1,
    AG__K_GENERATE,
    AG__K_EMBED,
    AG__K_EMBED_LEGACY,
    AG__K_TAGS,
    AG__K_PS,
    AG__K_SHOW,
    AG__K_VERSION,
    AG__K_PULL,
    AG__K_EMPTY /* delete, copy, HEAD /: the body is not decoded */
};


/* ---- streaming decoder (core/codec/) ----
 * One per response. Fed body bytes in any split; emits chunks through sink
 * and fills the result fields. No allocation per streamed token. */
#define AG__MAXDEPTH 32
typedef int (*ag__sink_fn)(void *ctx, const ag_chunk *ch); /* nonzero: stop */

typedef struct ag__sstr {
    char *p; /* NUL-terminated, or NULL before the first value */
    size_t cap;
} ag__sstr;

typedef struct ag__dec {
    int kind;
    const ag_alloc_funcs *alloc;
    yajl_handle yh;
    ag__sink_fn sink;
    void *ctx;
    size_t max_token;
    uint64_t fed, last_token_at;
    int token_seen;
    /* container stack: for each open container, its kind and the key (in the
     * parent map) it sits under; cur_key is the key awaiting a value */
    int depth;
    uint8_t is_map[AG__MAXDEPTH];
    uint8_t under[AG__MAXDEPTH];
    uint8_t cur_key[AG__MAXDEPTH];
    int skip_depth; /* > 0: inside a subtree we do not decode */
    /* capture of tool-call arguments */
    yajl_gen cap;
    int cap_depth;
    ag__buf args, tname;
    int tool_index, in_tool;
    /* per response */
    int objects, got_final, stopped, err;
    int fast, line_start, tail_ws, tail_objs; /* Ollama chat/generate: token lines may skip yajl; at a
                                      line start; the unfinished line is blanks only */
    ag__buf fast_text;             /* a token's text with its escapes decoded */
    int ekeep;                     /* /api/embed: the body is kept for the fast path */
    ag__buf ebuf;
    const char *errmsg; /* the failure's detail, in the arena (NULL before one) */
    ag__buf server_error;
    /* strings of the response, each in a buffer of its own size (kept across
     * objects: a stream's tokens each carry model and created_at) */
    ag__sstr model, created_at, done_reason, version;
    ag_server_stats server;
    float *vec;
    size_t nvec, capvec, dim, row_len, rows;
    int64_t *ctxv;
    size_t nctx, capctx;
    ag_model_info *models;
    size_t nmodels, capmodels;
    ag_show_info show;
    const char **caps;
    size_t ncaps, capcaps;
    ag__arena arena;
    /* pull progress fields of the current object */
    ag__buf status, digest;
    int64_t total, completed;
    int has_status;
    /* the OpenAI-compatible dialect: Server-Sent Events framing, tool calls
     * arriving as fragments per index */
    int oai, sse;
    int sse_state, sse_flen, sse_plen;
    int sse_decided; /* the first byte that is not a blank was seen: SSE, or a whole JSON body */
    char sse_field[8], sse_pre[8];
    int finish_seen;
    /* tool calls' fragments by index, allocated at a stream's first tool call
     * (most answers have none: 384 bytes a request saved) */
    struct ag__oai_calls {
        ag__buf name[8], args[8];
    } *oai_calls;
    int oai_ncalls, oai_index;
} ag__dec;

/* An OpenAI-compatible decoder (sse = 1 for a streamed answer). */
int ag__dec_init_oai(ag__dec *d, int kind, int sse, const ag_alloc_funcs *a, size_t max_token,
                     ag__sink_fn sink, void *ctx);

int ag__dec_init(ag__dec *d, int kind, const ag_alloc_funcs *a, size_t max_token, ag__sink_fn sink,
                 void *ctx);
/* 0, or an AG_E* code (d->errmsg says more). After an error, stop feeding. */
int ag__dec_feed(ag__dec *d, const char *p, size_t n);
/* End of body: 0 or AG_EJSON for an unfinished value. */
int ag__dec_finish(ag__dec *d);
void ag__dec_free(ag__dec *d);
/* Points res's decoded members into d (borrowed). */
void ag__dec_result(ag__dec *d, ag_result *res);

/* ---- request encoder (core/codec/encode.c) ---- */
typedef struct ag__target {
    const char *host_header; /* "host:port" */
    const char *base_path;   /* "" or "/prefix" */
    const char *user_agent;
    const char *auth;        /* Authorization header value, or NULL */
    int dialect;             /* AG_API_OLLAMA or AG_API_OPENAI */
} ag__target;

/* An encoded request, independent of the node it will go to: the route and
 * the JSON body. ag__frame() lays out the HTTP/1.1 head for one node (Host,
 * base path) and the body in one buffer that the transport writes as is. */
typedef struct ag__body {
    const char *method, *path, *accept; /* static strings */
    char *data;                         /* JSON body; NULL for GET and HEAD */
    size_t len;
    int kind, is_head;
    size_t msgs_end;                    /* chat: offset of the ']' closing "messages" */
    char *model;                        /* for routing; "" when none (owned when model_owned) */
    int model_owned;
    /* the same request for an OpenAI-compatible node (NULL path: not encoded
     * or not expressible, e.g. /api/pull) */
    const char *oai_method, *oai_path, *oai_accept;
    char *oai;
    size_t oai_len;
    int oai_sse;                        /* the answer comes as Server-Sent Events */
    /* ag_forward(): the caller's own path and body, sent to either dialect */
    int fwd;
    char *own_path;
    char *pin;                          /* the one node it must go to (owned); NULL = routed */
    char *headers;                      /* the caller's extra header lines (CRLF each), owned */
    /* the caller's parameters, borrowed during the starting call only (a
     * backend client's start reads them): chat, generate, embed, model or
     * forward params by kind, and the admin op */
    const void *params;
    int op;
} ag__body;

int ag__encode_chat_oai(const ag_alloc_funcs *a, const ag_chat_params *p, ag__body *out);
int ag__encode_generate_oai(const ag_alloc_funcs *a, const ag_generate_params *p, ag__body *out);
int ag__encode_embed_oai(const ag_alloc_funcs *a, const ag_embed_params *p, ag__body *out);
void ag__encode_admin_oai(int op, ag__body *out);

int ag__encode_chat(const ag_alloc_funcs *a, const ag_chat_params *p, ag__body *out);
/* the body's model (a copy; NULL or "" = none): 0 or AG_ENOMEM */
int ag__body_set_model(const ag_alloc_funcs *a, ag__body *bd, const char *model);
int ag__encode_generate(const ag_alloc_funcs *a, const ag_generate_params *p, ag__body *out);
int ag__encode_embed(const ag_alloc_funcs *a, const ag_embed_params *p, ag__body *out);
int ag__encode_admin(const ag_alloc_funcs *a, int op, const ag_model_params *p, ag__body *out);
int ag__frame(const ag_alloc_funcs *a, const ag__target *t, const ag__body *b, char **wire,
              size_t *len);
void ag__body_free(const ag_alloc_funcs *a, ag__body *b);
/* A request's extra headers ("Name: value" lines) checked and framed; see
 * ag_request_options.headers. 0, AG_EINVAL or AG_ENOMEM; *out owned. */
int ag__headers(const ag_alloc_funcs *a, const char *in, char **out);
/* Validates json and writes it into g as one value. AG_EINVAL when invalid. */
int ag__gen_raw(const ag_alloc_funcs *a, yajl_gen g, const char *json);

/* ---- client internals ---- */
enum ag__rq_phase { RQ_QUEUED, RQ_HEAD, RQ_STREAM, RQ_ERRBODY, RQ_DONE };

/* ---- log-linear histogram (core/metrics.c) ----
 * Nanosecond samples in buckets of 8 per power of two from 1 us to ~2^40 ns:
 * bounded relative error (12.5 %), constant memory, O(1) insert. */
#define AG__HIST_SUB 8
#define AG__HIST_BUCKETS (41 * AG__HIST_SUB)
typedef struct ag__hist {
    uint64_t count;
    int64_t sum, max;
    uint32_t b[AG__HIST_BUCKETS];
} ag__hist;
void ag__hist_add(ag__hist *h, int64_t ns);
int64_t ag__hist_quantile(const ag__hist *h, double q); /* 0 when empty */

struct ag_request {
    ag_client *client;
    ag_request *next, **prev;
    enum ag__rq_phase phase;
    int kind;
    int streaming;
    ag__body body;   /* what to send, node-independent */
    ag__http http;   /* the current attempt */
    char *wire;      /* the current attempt's bytes (head for its node + body) */
    size_t wire_len;
    ag__dec dec;
    ag_callbacks cb;
    int http_status;
    ag__buf errbody;
    ag__buf rawline;
    size_t body_bytes;
    int64_t t0, tlast, gap_sum, gap_max;
    ag_timing timing;
    unsigned in_cb : 1, cancel_req : 1, raw : 1, starting : 1, deferred : 1, keep_partial : 1,
        pinned : 1, fwd_out : 1, fwd_errbody : 1;
    int cancel_code;
    int def_status;
    char *def_detail;  /* a deferred or rewritten detail: ag__request_detail() */
    struct event defer_ev;
    /* The first-byte and idle timeouts count output, not bytes: a node that
     * sends keep-alive bytes (blank lines, SSE comments) but no token still
     * times out. tprog: the last progress (an object decoded; a whole
     * answer's bytes); the timer is re-armed lazily when it fires, so a token
     * costs one clock read, no timer operation. */
    struct event prog_ev;
    int64_t tsent, tprog;
    int64_t prog_objects; /* the decoder's object count at the last look */
    size_t prog_bytes;    /* body bytes at the last progress: none since is plain silence */
    int dialect;       /* of the current attempt's node: the decoder follows it */
    int budget;        /* attempts after the first the backend may make: 0 = its own, negative = none */
    /* the request's own deadlines and its retry wait, allocated when it has
     * one (most requests have none: 384 bytes a stream saved) */
    struct ag__rq_timers *tm;
    ag_result *bres;           /* a backend's result for the completion (core/backend.c) */
    uint64_t session;          /* ag_request_options.session hashed (0 = none) */
    uint64_t tenant;           /* ag_request_options.tenant hashed (0 = none) */
    int priority;              /* ag_request_options.priority */
    unsigned bres_owned : 1;
    unsigned backoff_on : 1;
    int backoff_left, backoff_tries;
    double backoff_delay, backoff_factor;
    unsigned deadline_on : 1, ttft_on : 1, read_end : 1, prog_on : 1;
    int64_t sunk, sunk_at_read_end; /* chunks handed to the caller; at the last AG_CHUNK_READ_END */
    void *pin;         /* a pinned request's node (the backend's, opaque here) */
    ag__hist *itl_hist; /* where the backend wants inter-token gaps recorded, or NULL */
    ag__buf partial;   /* with keep_partial: the content delivered so far (a resume) */
    /* the backend's own per-request state follows the struct (ops->req_size
     * bytes, ag__request_backend()) */
};

typedef struct ag__rq_timers {
    struct event deadline_ev, ttft_ev, backoff_ev;
    int64_t start_by; /* the first output is due by then (ns; 0 = no deadline): a queue may refuse ahead */
} ag__rq_timers;

typedef struct ag__client_ops {
    /* choose a node, frame the request for it, start (or queue) it */
    int (*submit)(ag_client *c, ag_request *r);
    /* detach the request from wherever it waits or runs; NULL = ag__http_abort */
    void (*abort)(ag_client *c, ag_request *r);
    /* a failed attempt: 1 if the backend resubmitted it elsewhere; when not,
     * it may change *status (then its message is in r->def_detail) */
    int (*retry)(ag_client *c, ag_request *r, int *status, int http_status, const char *detail);
    /* the request is about to complete (accounting, metrics) */
    void (*finished)(ag_client *c, ag_request *r, int status, const ag_result *res);
    void (*destroy)(ag_client *c);
    void (*stats)(const ag_client *c, ag_client_stats *out);
    const char *(*node_name)(const ag_client *c, const ag_request *r);
    /* attempts made so far (NULL = one, once submitted) */
    int (*attempts)(const ag_client *c, const ag_request *r);
    /* each attempt's node, outcome and times, into out (at most max); the
     * count (NULL = none kept) */
    size_t (*tries)(const ag_client *c, const ag_request *r, ag_attempt *out, size_t max);
    /* r is being freed: what the backend holds for it (NULL = nothing) */
    void (*release)(ag_client *c, ag_request *r);
    /* a retry with backoff is about to submit r again: every node may be
     * tried anew (NULL = nothing to forget) */
    void (*rearm)(ag_client *c, ag_request *r);
    /* the attempt's first output arrived (NULL = nothing to do) */
    void (*first_output)(ag_client *c, ag_request *r);
    /* 1: requests cannot be submitted again (no retry with backoff) */
    int no_backoff;
    /* 1: the backend routes by session key itself (a pool); otherwise the
     * key travels to the node as an X-Session-Id header (for a gateway) */
    int routes_sessions;
    /* bytes of per-request state the backend keeps after each request */
    size_t req_size;
} ag__client_ops;

/* The backend's per-request state (ops->req_size bytes, zeroed at the start). */
static inline void *ag__request_backend(const ag_request *r) {
    return (void *)(r + 1);
}

typedef struct ag__pool ag__pool;

/* which request bodies a client encodes */
enum ag__bodies { AG__BODIES_OLLAMA = 0, AG__BODIES_OPENAI = 1, AG__BODIES_BOTH = 2 };

struct ag_client {
    const ag__client_ops *ops;
    struct event_base *base;
    int own_base;
    ag_alloc_funcs alloc_store;
    const ag_alloc_funcs *alloc;
    ag_client_options opt;
    char user_agent[128];
    ag_request *reqs;
    unsigned in_flight;
    uint64_t started, done;
    int in_cb;
    int freeing;
    struct event free_ev;
    char auth_all[700];      /* from the options: for every node without its own */
    char *ca_file;
    struct ssl_ctx_st *tls;  /* made when a node is https */
    enum ag__bodies oai_mode; /* the bodies its requests carry: Ollama's, OpenAI's, or both (a mixed pool) */
    ag_hooks hooks;
    void (*freed)(void *ud); /* ag_client_free_notify */
    void *freed_ud;
    /* a backend embeds this struct as its first member (core/local.c,
     * core/pool/pool_internal.h) and keeps its own state after it */
};
/* The transport settings for node h from c's options (TLS set up when h is
 * https). 0 or AG_ETLS. */
int ag__node_cfg_for(ag_client *c, const ag_host *h, ag__node_cfg *out);
/* The API node h speaks: its own prefix, else the client's option. */
int ag__dialect_of(const ag_client *c, const ag_host *h);
/* The client's TLS context (made on first use). AG_ETLS when it cannot be set up. */
int ag__client_tls(ag_client *c, struct ssl_ctx_st **out);
/* The Authorization value from options (client-wide), and for a node: its
 * own credentials, else the client-wide ones. */
void ag__auth_options(const ag_client_options *o, char *out, size_t size);
void ag__auth_value(const ag_host *h, const char *client_wide, char *out, size_t size);

/* A line for the client's log hook (printf format); nothing without one. */
void ag__log(const ag_client *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The base of a backend of `size` bytes (its struct embeds ag_client first). */
ag_client *ag__client_alloc(struct event_base *base, const ag_client_options *opts, size_t size, int *err);
void ag__client_dealloc(ag_client *c);
/* (Re)builds r's bytes for target t, and readies the decoder for its dialect. */
int ag__request_frame(ag_request *r, const ag__target *t);
/* Output reached the caller (a retry elsewhere would repeat it). */
static inline int ag__request_has_output(const ag_request *r) {
    return r->body.fwd ? r->fwd_out : r->timing.chunks > 0;
}
/* Completes r from the loop, off the current stack. */
void ag__request_fail_later(ag_request *r, int status, const char *detail);
/* r's buffer (AG__DETAIL bytes) for a detail that outlives its maker, made
 * on first use (most requests never need one); NULL when out of memory */
#define AG__DETAIL 512
char *ag__request_detail(ag_request *r);
/* core/backend.c's way in: a chunk as if decoded (AG_ECANCELED when the
 * request ended in the caller's callback), and the completion with the
 * backend's result (deferred when inside the starting call) */
int ag__request_deliver(ag_request *r, const ag_chunk *ch);
int ag__request_complete_with(ag_request *r, const ag_result *res);
/* A request for one given node, outside routing (the pool's health probes).
 * It is not counted in the client's request statistics. */
int ag__admin_pinned(ag_client *c, int op, const ag_model_params *p, void *node,
                     const ag_callbacks *cb, ag_request **out);
/* GET path from one node (a pool's health probe), the path sent as it is in
 * either dialect; the body comes as AG_CHUNK_BODY chunks. */
int ag__get_pinned(ag_client *c, const char *path, void *node, const ag_callbacks *cb, ag_request **out);
#include "core/client_ext.h"
/* "host:port" with IPv6 brackets */
int ag__host_header(const ag_host *h, char *buf, size_t size);


/* ---- what the request's files share (client.c: the state machine;
 * forward.c: ag_forward's body; submit.c: starting requests;
 * client_life.c: a client made and freed) ---- */
/* output at time now: what the progress timer compares with */
static inline void ag__progress_at(ag_request *r, int64_t now) {
    r->prog_objects = r->dec.objects;
    r->prog_bytes = r->body_bytes;
    r->tprog = now;
}
/* output arrived: an object decoded since the last look */
static inline void ag__progress_check(ag_request *r) {
    if (r->dec.objects != r->prog_objects) ag__progress_at(r, ag__now_ns());
}

int ag__sink(void *ctx, const ag_chunk *ch);
void ag__note_chunk(ag_request *r);
void ag__defer_cb(evutil_socket_t fd, short what, void *arg);
void ag__deadline_cb(evutil_socket_t fd, short what, void *arg);
extern const ag__http_ops ag__http_ops_client;
/* forward.c: the node's bytes, decoded on the side where they are answers */
int ag__fwd_body(ag_request *r, const char *p, size_t n);
int ag__fwd_emit(ag_request *r, const char *p, size_t n);
int ag__blank_line(const char *p, size_t n);
/* submit.c: a request made from its body and started (pin: a node of a pool) */
int ag__req_start(ag_client *c, ag__body *body, int streaming, const ag_callbacks *cb, ag_request **out, void *pin,
                  const ag_request_options *ro);
/* client.c: a request's end (complete: now; complete_later: from the
 * loop), its unlinking and freeing, its decoder for the answer's kind, a
 * transport abort */
void ag__complete(ag_request *r, int status, const char *detail);
void ag__complete_later(ag_request *r, int status, const char *detail);
void ag__req_unlink(ag_request *r);
void ag__req_free(ag_request *r);
int ag__dec_init_for(ag_request *r);
void ag__c_abort(ag_request *r);
/* client_life.c */
void ag__client_real_free(ag_client *c);

#endif
