/* bench/sim/sim_internal.h - what the simulated node's files share: its
 * state, a stream (one answer being written), and the helpers each uses.
 * sim.c: text, helpers, generate and embed, routing; stream.c: writing an
 * answer (timing, faults, the prefix cache); admin.c: models and their
 * management. */
#ifndef AG_SIM_INTERNAL_H
#define AG_SIM_INTERNAL_H
#include "sim.h"
#include "core/base/buf.h"
#include "core/base/json.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <yajl/yajl_tree.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define MAX_MODELS 64

#define NREC 14 /* request bodies kept for the tests, by path */

typedef struct model {
    char name[128];
    int loaded;
    time_t expires; /* loaded until (Ollama's keep_alive, 5 minutes) */
    int64_t size;
} model;

typedef struct stream stream;

struct ag_sim {
    struct event_base *base;
    struct evhttp *http;
    int port;
    ag_sim_config cfg;
    int req_oai; /* the request being handled is in the OpenAI dialect */
    int req_anth; /* ... in Anthropic's Messages dialect */
    int req_resp; /* ... in OpenAI's Responses dialect */
    model models[MAX_MODELS];
    int nmodels;
    char fault[32];
    uint64_t gen_count;
    ag_sim_stats st;
    stream *waiting_head, *waiting_tail;
    char *last_body[NREC]; /* by recorded_paths */
    char blobs[16][72];   /* digests uploaded to /api/blobs (the last 16) */
    int nblobs;
    char *last_auth;
    char *heads[256];    /* the last 256 requests: "PATH\nName: value\n..." (ag_sim_count_header) */
    unsigned nheads;
    SSL_CTX *tls;
    stream *all; /* every live stream, for teardown */
    uint64_t oai_ids; /* OpenAI response ids: one per request */
    /* the prefix cache (prefill_rate > 0): conversations with their answers,
     * most recently used first */
    char **pc;
    int npc;
};

enum skind { S_CHAT, S_GENERATE };
enum sphase { SP_WAIT_SLOT, SP_DELAY, SP_STREAM, SP_STALLED, SP_CLOSING, SP_KEEPALIVE };

struct stream {
    ag_sim *sim;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    stream *qnext;
    stream *anext, **aprev;
    enum skind kind;
    enum sphase phase;
    int has_slot;
    int do_stream;
    int ntokens, sent, think_tokens;
    int fault; /* index into fault names, 0 = none */
    int load;  /* done_reason load/unload answer */
    int tool_call;
    int json_format;
    char model[128];
    char prompt[512];
    size_t prompt_chars; /* the whole prompt's (every message, system and prompt): its count */
    char tool_name[128];
    char tool_args[512];
    char tool_result[256];
    struct timeval t0;
    int64_t load_ns;
    int64_t wait_ns; /* in the queue for a slot (in total_duration, in no other figure) */
    uint64_t seed;
    int first; /* first token index (a continued answer starts later) */
    int limited; /* num_predict set the length */
    int code_answer; /* the system prompt asked for fenced code */
    double next_at; /* when the next timed token is due (ms, monotonic): no drift */
    int oai;        /* answer in the OpenAI-compatible dialect (SSE when streamed) */
    int usage;      /* OpenAI: stream_options.include_usage asked for the usage chunk */
    char *rendered; /* the whole prompt as the prefix cache sees it (prefill_rate > 0) */
    int prompt_tokens, cached_tokens; /* of the rendered prompt; found in the cache */
    int64_t prefill_ns;
    char oai_id[32]; /* "chatcmpl-N": one per request */
    long created;   /* unix seconds, for OpenAI's "created" */
    char *structured; /* structured output: the JSON text asked for (format, response_format), or NULL */
    int anth;        /* Anthropic's Messages dialect (/v1/messages) */
    int resp, seq;   /* OpenAI's Responses dialect (/v1/responses); its events' sequence number */
    size_t slen;
};

enum { F_NONE, F_RESET, F_ERRLINE, F_MALFORMED, F_500, F_503, F_STALL, F_SILENT, F_CLOSE_BEFORE, F_CLOSE_AFTER, F_TRUNCATE,
       F_429, F_KEEPALIVE };

typedef struct word {
    const char *raw, *json;
} word;

void sim_add_model(ag_sim *s, const char *name);
char *sim_body_of(struct evhttp_request *req);
model *sim_find_model(ag_sim *s, const char *name);
uint64_t sim_fnv(const char *a, const char *b);
yajl_val sim_get(yajl_val obj, const char *key);
void sim_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg);
void sim_reply_json(struct evhttp_request *req, struct evbuffer *b);
int sim_is_r1(const char *model);
void sim_json_escape(struct evbuffer *b, const char *s);
void sim_now_str(char *buf, size_t n);
const word *sim_r1_token(uint64_t seed, int i, int n);
int64_t sim_since_ns(const struct timeval *t0);
const word *sim_token_at(uint64_t seed, int i);
const char *sim_model_request(ag_sim *s, struct evhttp_request *req, yajl_val *root);
void sim_stream_free(stream *st);
void sim_stream_start(stream *st);
void sim_handle_models_oai(ag_sim *s, struct evhttp_request *req);
void sim_handle_tags(ag_sim *s, struct evhttp_request *req, int ps);
void sim_handle_show(ag_sim *s, struct evhttp_request *req);
void sim_handle_pull(ag_sim *s, struct evhttp_request *req);
void sim_handle_push(ag_sim *s, struct evhttp_request *req);
void sim_handle_blob(ag_sim *s, struct evhttp_request *req, const char *digest, int head);
void sim_handle_create(ag_sim *s, struct evhttp_request *req);
void sim_handle_delete_copy(ag_sim *s, struct evhttp_request *req, int copy);
/* stream.c: a stream's timer, and its client gone (evhttp's callbacks) */
void sim_stream_step(evutil_socket_t fd, short what, void *arg);
void sim_on_client_close(struct evhttp_connection *evcon, void *arg);
/* stream.c: the answer's tokens up to n, JSON-escaped: thought and text, each NUL-terminated */
void sim_answer_text(const stream *st, int n, struct evbuffer *content, struct evbuffer *thinking);
/* responses.c: the Responses dialect's stream events and whole response */
void sim_resp_token(stream *st, struct evbuffer *b, const char *txt, int i);
void sim_resp_tool(stream *st, struct evbuffer *b);
void sim_resp_final(stream *st, struct evbuffer *b, const char *content, const char *thinking);
/* anthropic.c: the Messages dialect's stream events and whole message */
void sim_anth_token(stream *st, struct evbuffer *b, const char *txt, int i);
void sim_anth_tool(stream *st, struct evbuffer *b);
void sim_anth_final(stream *st, struct evbuffer *b, const char *content, const char *thinking);
void sim_anth_count_tokens(ag_sim *s, struct evhttp_request *req);
/* sim.c: errors in Anthropic's shape for this request */
extern int sim_anth_errors;
/* schema.c: structured output, the JSON text of an instance of schema (NULL
 * or not an object: an object of words, for format "json"); malloc'd */
char *sim_structured(yajl_val schema, uint64_t seed);
/* stream.c: the i-th piece of a structured answer, JSON-escaped, into out */
const char *sim_structured_piece(const stream *st, int i, char *out, size_t n);
#endif
