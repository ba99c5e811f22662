/* bench/sim/sim.c - a simulated Ollama node.
 *
 * Speaks enough of Ollama's API for every client path: models, streamed and
 * whole chat/generate answers with configurable timing, parallel slots with a
 * bounded queue that answers 503 as Ollama does, deterministic embeddings in
 * which texts sharing words are close, tool calls when tools are offered, a
 * pull progress stream, and injected faults. Answers are written as
 * preformatted lines straight into evhttp's chunk buffers, so the node stays
 * far cheaper than any client it serves.
 */
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
};

static const char *fault_names[] = {"",      "reset",  "error-line", "malformed",          "http500",
                                    "http503", "stall", "silent",     "close-before-final", "close-after-final", "truncate",
                                    "http429", "keepalive"};
enum { F_NONE, F_RESET, F_ERRLINE, F_MALFORMED, F_500, F_503, F_STALL, F_SILENT, F_CLOSE_BEFORE, F_CLOSE_AFTER, F_TRUNCATE,
       F_429, F_KEEPALIVE };

static int fault_id(const char *s) {
    for (size_t i = 1; i < sizeof fault_names / sizeof fault_names[0]; i++)
        if (strcmp(s, fault_names[i]) == 0) return (int)i;
    return F_NONE;
}

/* ---- deterministic text ---- */
typedef struct word {
    const char *raw, *json;
} word;
static const word vocab[] = {
    {"The ", "The "},   {"sky ", "sky "},         {"is ", "is "},
    {"blue ", "blue "}, {"because ", "because "}, {"air ", "air "},
    {"scatters ", "scatters "}, {"short ", "short "}, {"waves ", "waves "},
    {"of ", "of "},     {"light ", "light "},     {"more ", "more "},
    {"than ", "than "}, {"long ", "long "},       {"ones", "ones"},
    {". ", ". "},       {"Rayleigh ", "Rayleigh "}, {"café ", "café "},
    {"naïve ", "naïve "}, {"\"quoted\" ", "\\\"quoted\\\" "}, {"line\n", "line\\n"},
    {"tab\t", "tab\\t"}, {"🌍 ", "🌍 "},         {"and ", "and "},
    {"so ", "so "},     {"on ", "on "},           {"a ", "a "},
    {"model ", "model "}, {"answers ", "answers "}, {"token ", "token "},
    {"by ", "by "},     {"token. ", "token. "}};
#define NVOCAB (sizeof vocab / sizeof vocab[0])

static uint64_t fnv(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = a; p && *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = b; p && *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static const word *token_at(uint64_t seed, int i) {
    uint64_t x = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return &vocab[x % NVOCAB];
}

/* r1-style models: tokens 0..2 open the thought ("<thi", "nk>" cut across
 * tokens), then thinking, "</th" "ink>", then the answer */
static const word *r1_token(uint64_t seed, int i, int n) {
    static const word open1 = {"<thi", "<thi"}, open2 = {"nk>", "nk>"}, close1 = {"</th", "</th"},
                      close2 = {"ink>\n", "ink>\\n"};
    int think_end = n / 3 > 3 ? n / 3 : 3;
    if (i == 0) return &open1;
    if (i == 1) return &open2;
    if (i == think_end) return &close1;
    if (i == think_end + 1) return &close2;
    return token_at(seed, i);
}

static int is_r1(const char *model) {
    return strstr(model, "r1") != NULL;
}

const char *ag_sim_token(const char *model, const char *prompt, int i) {
    return token_at(fnv(model, prompt), i)->raw;
}

const char *ag_sim_token_n(const char *model, const char *prompt, int i, int n) {
    uint64_t seed = fnv(model, prompt);
    return is_r1(model) ? r1_token(seed, i, n)->raw : token_at(seed, i)->raw;
}

static uint32_t hash_word(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)tolower((unsigned char)s[i])) * 16777619u;
    return h;
}

void ag_sim_embed_text(const char *text, int dim, float *out) {
    memset(out, 0, sizeof(float) * (size_t)dim);
    const char *p = text;
    int any = 0;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p)) p++;
        const char *b = p;
        while (*p && isalnum((unsigned char)*p)) p++;
        if (p > b) {
            uint32_t h = hash_word(b, (size_t)(p - b));
            out[h % (uint32_t)dim] += (h & 0x80000000u) ? -1.0f : 1.0f;
            uint32_t h2 = h * 2654435761u;
            out[h2 % (uint32_t)dim] += (h2 & 0x80000000u) ? -0.5f : 0.5f;
            any = 1;
        }
    }
    if (!any) out[0] = 1.0f;
    double norm = 0;
    for (int i = 0; i < dim; i++) norm += (double)out[i] * out[i];
    norm = sqrt(norm);
    for (int i = 0; i < dim; i++) out[i] = (float)(out[i] / norm);
}

/* ---- helpers ---- */
/* name as served: itself, or without a tag the model's ":latest" (no copy:
 * a long name cannot be cut into another model's) */
static model *find_model(ag_sim *s, const char *name) {
    size_t nl = strlen(name);
    int tagged = strchr(name, ':') != NULL;
    for (int i = 0; i < s->nmodels; i++) {
        const char *m = s->models[i].name;
        if (strcmp(m, name) == 0) return &s->models[i];
        if (!tagged && strncmp(m, name, nl) == 0 && strcmp(m + nl, ":latest") == 0) return &s->models[i];
    }
    return NULL;
}

static void add_model(ag_sim *s, const char *name) {
    if (s->nmodels >= MAX_MODELS || find_model(s, name)) return;
    model *m = &s->models[s->nmodels++];
    snprintf(m->name, sizeof m->name, "%s%s", name, strchr(name, ':') ? "" : ":latest");
    m->loaded = 0;
    m->size = 2019393189 + (int64_t)s->nmodels * 1000;
}

static void now_str(char *buf, size_t n) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t l = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + l, n - l, ".%06ldZ", (long)tv.tv_usec);
}

static int64_t since_ns(const struct timeval *t0) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)(tv.tv_sec - t0->tv_sec) * 1000000000 + (int64_t)(tv.tv_usec - t0->tv_usec) * 1000;
}

/* s inside a JSON string (the quotes are the caller's) */
static void json_escape(struct evbuffer *b, const char *s) {
    ag__buf q = {0};
    if (ag__buf_json(NULL, &q, s, strlen(s)) == 0) evbuffer_add(b, q.p + 1, q.len - 2);
    ag__buf_free(NULL, &q);
}

static int oai_errors; /* the sim handling this request speaks OpenAI (one loop, one request at a time) */

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg) {
    struct evbuffer *b = evbuffer_new();
    if (oai_errors) {
        evbuffer_add_printf(b, "{\"error\":{\"message\":\"");
        json_escape(b, msg);
        evbuffer_add_printf(b, "\",\"type\":\"%s\",\"param\":null,\"code\":null}}",
                            code == 400 ? "invalid_request_error" : code == 404 ? "not_found_error" : "api_error");
    } else {
        evbuffer_add(b, "{\"error\":\"", 10);
        json_escape(b, msg);
        evbuffer_add(b, "\"}", 2);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, struct evbuffer *b) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
}

static const char *recorded_paths[NREC] = {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings",
                                           "/api/show", "/api/pull", "/api/copy", "/api/delete",
                                           "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                                           "/api/create", "/api/push"};
static ag_sim *cur_sim; /* the sim handling the current request (one loop, one at a time) */

static char *body_of(struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    evbuffer_copyout(in, s, n);
    s[n] = 0;
    const char *uri = evhttp_request_get_uri(req);
    for (int i = 0; cur_sim && i < NREC; i++)
        if (!strncmp(uri, recorded_paths[i], strlen(recorded_paths[i])) && uri[strlen(recorded_paths[i])] == 0) {
            free(cur_sim->last_body[i]);
            cur_sim->last_body[i] = strdup(s);
        }
    return s;
}

const char *ag_sim_last_auth(const ag_sim *s) {
    return s->last_auth;
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg) {
    SSL *ssl = SSL_new(arg);
    return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
}

int ag_sim_count_header(const ag_sim *s, const char *path_prefix, const char *line, int *total) {
    int with = 0, all = 0;
    unsigned n = s->nheads < 256 ? s->nheads : 256;
    for (unsigned i = 0; i < n; i++) {
        const char *h = s->heads[i];
        if (!h || strncmp(h, path_prefix, strlen(path_prefix)) != 0) continue;
        all++;
        const char *nl = strchr(h, '\n');
        for (const char *q = nl ? nl + 1 : h + strlen(h); q && *q;) {
            const char *e = strchr(q, '\n');
            size_t l = e ? (size_t)(e - q) : strlen(q);
            if (l == strlen(line) && strncasecmp(q, line, l) == 0) {
                with++;
                break;
            }
            q = e ? e + 1 : NULL;
        }
    }
    if (total) *total = all;
    return with;
}

const char *ag_sim_last_header(const ag_sim *s, const char *path_prefix, const char *name, char *out, size_t n) {
    size_t nl = strlen(name);
    unsigned have = s->nheads < 256 ? s->nheads : 256;
    for (unsigned k = 0; k < have; k++) { /* the newest first */
        const char *h = s->heads[(s->nheads - 1 - k) % 256];
        if (!h || strncmp(h, path_prefix, strlen(path_prefix)) != 0) continue;
        for (const char *q = strchr(h, '\n'); q && *++q;) {
            const char *e = strchr(q, '\n');
            size_t l = e ? (size_t)(e - q) : strlen(q);
            if (l > nl + 1 && strncasecmp(q, name, nl) == 0 && q[nl] == ':') {
                const char *v = q + nl + 1;
                while (*v == ' ') v++;
                snprintf(out, n, "%.*s", (int)(q + l - v), v);
                return out;
            }
            q = e;
        }
        return NULL;
    }
    return NULL;
}

const char *ag_sim_last_body(const ag_sim *s, const char *path) {
    for (int i = 0; i < NREC; i++)
        if (!strcmp(path, recorded_paths[i])) return s->last_body[i];
    return NULL;
}

static yajl_val get(yajl_val obj, const char *key) {
    const char *path[] = {key, NULL};
    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

/* a message's text: its content, or in OpenAI's parts form ([{"type":
 * "text","text":...},{"type":"image_url",...}]) its first text part */
static const char *msg_text(yajl_val m) {
    yajl_val c = get(m, "content");
    if (c && YAJL_IS_STRING(c)) return YAJL_GET_STRING(c);
    if (c && YAJL_IS_ARRAY(c))
        for (size_t i = 0; i < c->u.array.len; i++) {
            const char *type = ag__json_str(c->u.array.values[i], "type");
            if (type && strcmp(type, "text") == 0) return ag__json_str(c->u.array.values[i], "text");
        }
    return NULL;
}

/* ---- streams ---- */
static void stream_step(evutil_socket_t fd, short what, void *arg);

static void stream_free(stream *st) {
    ag_sim *s = st->sim;
    free(st->rendered);
    if (st->timer) event_free(st->timer);
    if (st->aprev) {
        *st->aprev = st->anext;
        if (st->anext) st->anext->aprev = st->aprev;
    }
    if (st->has_slot) s->st.active--;
    if (st->phase == SP_WAIT_SLOT) {
        stream **pp = &s->waiting_head;
        stream *prev = NULL;
        while (*pp && *pp != st) { prev = *pp; pp = &(*pp)->qnext; }
        if (*pp) {
            *pp = st->qnext;
            if (s->waiting_tail == st) s->waiting_tail = prev;
            s->st.queued--;
        }
    }
    free(st);
}

static void admit_waiting(ag_sim *s);

static void cache_put(ag_sim *s, stream *st);

static void stream_end(stream *st) {
    ag_sim *s = st->sim;
    if (st->evcon) evhttp_connection_set_closecb(st->evcon, NULL, NULL);
    s->st.streams_done++;
    if (st->sent >= st->ntokens) cache_put(s, st);
    stream_free(st);
    admit_waiting(s);
}

static void on_client_close(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    stream *st = arg;
    ag_sim *s = st->sim;
    s->st.disconnects++;
    /* on a client's EOF evhttp detaches the unfinished request and leaves it
     * to us (libevent 2.1: evhttp_connection_incoming_fail) */
    if (evhttp_request_get_connection(st->req) == NULL) evhttp_request_free(st->req);
    stream_free(st);
    admit_waiting(s);
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void schedule(stream *st, double ms) {
    struct timeval tv = {(long)(ms / 1000), (long)(fmod(ms, 1000) * 1000)};
    evtimer_add(st->timer, &tv);
}

static void json_escape(struct evbuffer *b, const char *s);

/* the OpenAI forms of the last chunk (streamed) or of the whole answer, as
 * Ollama's /v1 writes them */
static void write_final_oai(stream *st, struct evbuffer *b, const char *content_all, const char *thinking_all) {
    const char *reason = st->tool_call ? "tool_calls" : st->limited ? "length" : "stop";
    int completion = st->sent - st->first, prompt = st->rendered ? st->prompt_tokens - st->cached_tokens : (int)(st->prompt_chars / 4 + 1);
    const char *obj = st->kind == S_CHAT ? (st->do_stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    if (!st->do_stream) {
        evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",",
                            st->oai_id, obj, st->created, st->model);
        if (st->kind == S_CHAT) {
            evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"",
                                content_all ? content_all : "");
            if (thinking_all && *thinking_all) evbuffer_add_printf(b, ",\"reasoning\":\"%s\"", thinking_all);
            if (st->tool_call) {
                evbuffer_add_printf(b, ",\"tool_calls\":[{\"id\":\"call_0\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"%s\",\"arguments\":\"", st->tool_name);
                json_escape(b, st->tool_args);
                evbuffer_add(b, "\"}}]", 4);
            }
            evbuffer_add_printf(b, "},\"finish_reason\":\"%s\"}]", reason);
        } else {
            evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"text\":\"%s\",\"finish_reason\":\"%s\"}]",
                                content_all ? content_all : "", reason);
        }
        evbuffer_add_printf(b, ",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}", prompt, completion, prompt + completion);
        return;
    }
    if (st->kind == S_CHAT)
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"%s\"}]}\n\n",
                            st->oai_id, obj, st->created, st->model, reason);
    else
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"%s\"}]}\n\n",
                            st->oai_id, obj, st->created, st->model, reason);
    if (st->usage) /* only when stream_options.include_usage asked for it */
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
                            st->oai_id, obj, st->created, st->model, prompt, completion, prompt + completion);
    evbuffer_add(b, "data: [DONE]\n\n", 14);
}

static void write_final(stream *st, struct evbuffer *b, const char *content_all, const char *thinking_all) {
    if (st->oai) {
        write_final_oai(st, b, content_all, thinking_all);
        return;
    }
    char ts[64];
    now_str(ts, sizeof ts);
    int64_t total = since_ns(&st->t0);
    /* as Ollama reports them: the wait for a slot is in total_duration only;
     * prompt evaluation is the time before the first token (the prefill,
     * or the configured TTFT); eval the rest */
    int64_t ped = st->rendered ? st->prefill_ns : (int64_t)(st->sim->cfg.ttft_ms * 1e6);
    int64_t eval = total - st->load_ns - st->wait_ns - ped;
    if (eval < 1) eval = 1;
    const char *reason = st->load == 1 ? "load" : st->load == 2 ? "unload" : st->limited ? "length" : "stop";
    if (st->kind == S_CHAT) {
        evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":\"", st->model, ts);
        if (content_all) evbuffer_add(b, content_all, strlen(content_all));
        if (thinking_all && *thinking_all) evbuffer_add_printf(b, "\",\"thinking\":\"%s", thinking_all);
        evbuffer_add_printf(b, "\"},\"done\":true,\"done_reason\":\"%s\"", reason);
    } else {
        evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"response\":\"", st->model, ts);
        if (content_all) evbuffer_add(b, content_all, strlen(content_all));
        if (thinking_all && *thinking_all) evbuffer_add_printf(b, "\",\"thinking\":\"%s", thinking_all);
        evbuffer_add_printf(b, "\",\"done\":true,\"done_reason\":\"%s\"", reason);
        if (!st->load) evbuffer_add_printf(b, ",\"context\":[1,2,3]");
    }
    int pe = st->rendered ? st->prompt_tokens - st->cached_tokens : (int)(st->prompt_chars / 4 + 1);
    evbuffer_add_printf(b, ",\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%d,"
                           "\"prompt_eval_duration\":%lld,\"eval_count\":%d,\"eval_duration\":%lld}\n",
                        (long long)total, (long long)st->load_ns, pe, (long long)ped, st->sent - st->first, (long long)eval);
}

/* one streamed line for token i */
/* one streamed line for token i, assembled with memcpy: the node must stay
 * far cheaper than the client it serves */
static size_t put(char *o, size_t n, size_t cap, const char *s) {
    size_t l = strlen(s);
    if (n + l > cap) l = cap - n;
    memcpy(o + n, s, l);
    return n + l;
}

static void write_token(stream *st, struct evbuffer *b, const char *ts, int i) {
    const char *txt;
    char tmp[640];
    if (st->tool_result[0] && i == 0) {
        snprintf(tmp, sizeof tmp, "Tool said: %s. ", st->tool_result);
        txt = tmp; /* already JSON-safe: built from escaped input */
    } else if (st->json_format) {
        if (i == 0) txt = "{\\\"answer\\\": \\\"";
        else if (i == st->ntokens - 1) txt = "done\\\"}";
        else txt = "word ";
    } else if (st->code_answer) {
        static const char *code[] = {"Here", " is", " code:\\n", "```py", "thon\\n", "print(",
                                     "42)\\n", "```", "\\nDone."};
        txt = i < 9 ? code[i] : " ";
    } else if (is_r1(st->model)) {
        txt = r1_token(st->seed, i, st->ntokens)->json;
    } else {
        txt = token_at(st->seed, i)->json;
    }
    char line[1536];
    size_t n = 0, cap = sizeof line;
    if (st->oai) { /* as Ollama's /v1 writes them: id, created, role in each delta */
        char head[160];
        snprintf(head, sizeof head, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"", st->oai_id,
                 st->kind == S_CHAT ? "chat.completion.chunk" : "text_completion", st->created);
        n = put(line, n, cap, head);
        n = put(line, n, cap, st->model);
        n = put(line, n, cap, "\",\"system_fingerprint\":\"fp_ollama\"");
        if (st->kind == S_CHAT)
            n = put(line, n, cap, i < st->think_tokens ? ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\""
                                                       : ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"");
        else
            n = put(line, n, cap, ",\"choices\":[{\"index\":0,\"text\":\"");
        n = put(line, n, cap, txt);
        n = put(line, n, cap, st->kind == S_CHAT ? "\"},\"finish_reason\":null}]}\n\n" : "\",\"finish_reason\":null}]}\n\n");
        evbuffer_add(b, line, n);
        return;
    }
    n = put(line, n, cap, "{\"model\":\"");
    n = put(line, n, cap, st->model);
    n = put(line, n, cap, "\",\"created_at\":\"");
    n = put(line, n, cap, ts);
    if (st->kind == S_CHAT) { /* a thinking piece has an empty content, as Ollama's */
        n = put(line, n, cap, i < st->think_tokens ? "\",\"message\":{\"role\":\"assistant\",\"thinking\":\""
                                                   : "\",\"message\":{\"role\":\"assistant\",\"content\":\"");
        n = put(line, n, cap, txt);
        n = put(line, n, cap, i < st->think_tokens ? "\",\"content\":\"\"},\"done\":false}\n" : "\"},\"done\":false}\n");
    } else {
        n = put(line, n, cap, i < st->think_tokens ? "\",\"response\":\"\",\"thinking\":\"" : "\",\"response\":\"");
        n = put(line, n, cap, txt);
        n = put(line, n, cap, "\",\"done\":false}\n");
    }
    evbuffer_add(b, line, n);
}

static void write_tool_call(stream *st, struct evbuffer *b) {
    if (st->oai) { /* the arguments in two fragments, as servers stream them */
        size_t half = strlen(st->tool_args) / 2;
        char first[600];
        snprintf(first, sizeof first, "%.*s", (int)half, st->tool_args);
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"%s\",\"arguments\":\"",
                            st->oai_id, st->created, st->model, st->tool_name);
        json_escape(b, first);
        evbuffer_add_printf(b, "\"}}]},\"finish_reason\":null}]}\n\ndata: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"",
                            st->oai_id, st->created, st->model);
        json_escape(b, st->tool_args + half);
        evbuffer_add(b, "\"}}]},\"finish_reason\":null}]}\n\n", strlen("\"}}]},\"finish_reason\":null}]}\n\n"));
        return;
    }
    char ts[64];
    now_str(ts, sizeof ts);
    evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"%s\",\"arguments\":%s}}]},\"done\":false}\n",
                        st->model, ts, st->tool_name, st->tool_args);
}

static void deferred_reset(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct evhttp_connection *evcon = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t s = bufferevent_getfd(bev);
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    evhttp_connection_free(evcon);
}

static void after_drain_shutdown(struct evhttp_connection *evcon, void *arg) {
    (void)arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void strike(stream *st) {
    ag_sim *s = st->sim;
    s->st.faults++;
    struct evbuffer *b = evbuffer_new();
    switch (st->fault) {
    case F_RESET: {
        struct evhttp_connection *evcon = st->evcon;
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        st->evcon = NULL;
        stream_free(st); /* the request dies with the connection */
        event_base_once(s->base, -1, EV_TIMEOUT, deferred_reset, evcon, &(struct timeval){0, 20000});
        admit_waiting(s);
        break;
    }
    case F_ERRLINE:
        if (st->oai) evbuffer_add_printf(b, "data: {\"error\":{\"message\":\"simulated failure: model runner crashed\",\"type\":\"server_error\"}}\n\n");
        else evbuffer_add_printf(b, "{\"error\":\"simulated failure: model runner crashed\"}\n");
        evhttp_send_reply_chunk(st->req, b);
        evhttp_send_reply_end(st->req);
        stream_end(st);
        break;
    case F_MALFORMED:
        if (st->oai) evbuffer_add_printf(b, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":nul}]}\n\n");
        else evbuffer_add_printf(b, "{\"model\":\"%s\",\"message\":{\"content\":\"x\"},\"done\":fal}\n", st->model);
        evhttp_send_reply_chunk(st->req, b);
        evhttp_send_reply_end(st->req);
        stream_end(st);
        break;
    case F_TRUNCATE: /* a well-formed HTTP end, but no final object */
        evhttp_send_reply_end(st->req);
        stream_end(st);
        break;
    case F_STALL:
        st->phase = SP_STALLED; /* keep the connection, send nothing more */
        break;
    case F_KEEPALIVE: /* bytes that keep a connection busy, never a token: a blank line, an SSE comment */
        st->phase = SP_KEEPALIVE;
        evbuffer_add_printf(b, "%s", st->oai ? ": keepalive\n\n" : "\n");
        evhttp_send_reply_chunk(st->req, b);
        schedule(st, 100);
        break;
    case F_CLOSE_BEFORE:
    case F_CLOSE_AFTER:
        if (st->fault == F_CLOSE_AFTER) write_final(st, b, NULL, NULL);
        else evbuffer_add(b, "\n", 1); /* evhttp skips empty chunks; a blank line is harmless */
        st->phase = SP_CLOSING; /* half-close once written; evhttp frees on the client's close */
        evhttp_send_reply_chunk_with_cb(st->req, b, after_drain_shutdown, NULL);
        break;
    default: break;
    }
    evbuffer_free(b);
}

/* the final object after what b holds, the end of the chunked reply, the stream freed */
static void finish_stream(stream *st, struct evbuffer *b) {
    write_final(st, b, NULL, NULL);
    evhttp_send_reply_chunk(st->req, b);
    evbuffer_free(b);
    evhttp_send_reply_end(st->req);
    stream_end(st);
}

static void stream_begin_output(stream *st) {
    evhttp_add_header(evhttp_request_get_output_headers(st->req), "Content-Type",
                      st->oai ? "text/event-stream" : "application/x-ndjson");
    evhttp_send_reply_start(st->req, 200, "OK");
}

static void stream_send_batch(stream *st);

static void on_drained(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    stream *st = arg;
    if (st->phase == SP_STREAM) stream_send_batch(st);
}

/* zero inter-token delay: write a batch, continue when the socket drains */
static void stream_send_batch(stream *st) {
    struct evbuffer *b = evbuffer_new();
    char ts[64];
    now_str(ts, sizeof ts);
    int lim = st->sent + 256;
    int fault_at = st->fault ? st->sim->cfg.fault_after : -1;
    while (st->sent < st->ntokens && st->sent < lim) {
        if (st->sent == fault_at) break;
        write_token(st, b, ts, st->sent++);
    }
    if (st->sent == fault_at && (st->fault == F_RESET || st->fault == F_ERRLINE || st->fault == F_MALFORMED ||
                                  st->fault == F_STALL || st->fault == F_CLOSE_BEFORE || st->fault == F_TRUNCATE ||
                                  st->fault == F_KEEPALIVE)) {
        if (evbuffer_get_length(b)) evhttp_send_reply_chunk(st->req, b);
        evbuffer_free(b);
        if (st->fault == F_RESET) {
            /* let the tokens reach the client first */
            st->fault = F_RESET;
            st->phase = SP_DELAY;
            st->sent = st->ntokens + 1; /* marks: strike on the next tick */
            schedule(st, 5);
            return;
        }
        strike(st);
        return;
    }
    if (st->sent >= st->ntokens) {
        if (st->fault == F_CLOSE_AFTER || (st->fault && fault_at >= st->ntokens)) {
            if (evbuffer_get_length(b)) evhttp_send_reply_chunk(st->req, b);
            evbuffer_free(b);
            if (st->fault == F_CLOSE_AFTER) { strike(st); return; }
            strike(st);
            return;
        }
        finish_stream(st, b);
        return;
    }
    evhttp_send_reply_chunk_with_cb(st->req, b, on_drained, st);
    evbuffer_free(b);
}

static void send_whole(stream *st) {
    struct evbuffer *content = evbuffer_new(), *thinking = evbuffer_new();
    for (int i = 0; i < st->ntokens; i++) {
        const char *t = is_r1(st->model) ? r1_token(st->seed, i, st->ntokens)->json : token_at(st->seed, i)->json;
        evbuffer_add(i < st->think_tokens ? thinking : content, t, strlen(t));
    }
    st->sent = st->ntokens;
    evbuffer_add(content, "", 1);
    evbuffer_add(thinking, "", 1);
    struct evbuffer *b = evbuffer_new();
    if (st->tool_call && st->oai) {
        st->sent = 1;
        write_final(st, b, "", NULL);
    } else if (st->tool_call) {
        char ts[64];
        now_str(ts, sizeof ts);
        int64_t total = since_ns(&st->t0), eval = total - st->load_ns;
        if (eval < 1) eval = 1;
        evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"%s\",\"arguments\":%s}}]},\"done\":true,\"done_reason\":\"stop\","
                               "\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%d,\"prompt_eval_duration\":%lld,\"eval_count\":1,\"eval_duration\":%lld}",
                            st->model, ts, st->tool_name, st->tool_args, (long long)total, (long long)st->load_ns,
                            (int)(st->prompt_chars / 4 + 1), (long long)(eval / 10), (long long)eval);
    } else {
        write_final(st, b, (const char *)evbuffer_pullup(content, -1), (const char *)evbuffer_pullup(thinking, -1));
    }
    evbuffer_free(content);
    evbuffer_free(thinking);
    reply_json(st->req, b);
    evbuffer_free(b);
    stream_end(st);
}

static void stream_step(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    stream *st = arg;
    ag_sim *s = st->sim;
    if (st->phase == SP_KEEPALIVE) { /* the keepalive fault: another blank line or comment, every 100 ms */
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "%s", st->oai ? ": keepalive\n\n" : "\n");
        evhttp_send_reply_chunk(st->req, b);
        evbuffer_free(b);
        schedule(st, 100);
        return;
    }
    if (st->phase == SP_DELAY) {
        if (st->fault == F_RESET && st->sent == st->ntokens + 1) { strike(st); return; }
        if (st->fault == F_429) { /* rate limited; fault_after = Retry-After seconds (0: no header) */
            s->st.faults++;
            if (s->cfg.fault_after > 0) {
                char ra[24];
                snprintf(ra, sizeof ra, "%d", s->cfg.fault_after);
                evhttp_add_header(evhttp_request_get_output_headers(st->req), "Retry-After", ra);
            }
            reply_error(st->req, 429, "Too Many Requests", "rate limit exceeded, slow down");
            stream_end(st);
            return;
        }
        if (st->fault == F_500 || st->fault == F_503) {
            s->st.faults++;
            if (st->fault == F_500) reply_error(st->req, 500, "Internal Server Error", "llama runner process has terminated: exit status 2");
            else reply_error(st->req, 503, "Service Unavailable", "server busy, please try again.  maximum pending requests exceeded");
            stream_end(st);
            return;
        }
        if (st->fault == F_SILENT) { s->st.faults++; st->phase = SP_STALLED; return; }
        if (!st->do_stream) { send_whole(st); return; }
        stream_begin_output(st);
        st->phase = SP_STREAM;
        if (st->tool_call) {
            struct evbuffer *b = evbuffer_new();
            write_tool_call(st, b);
            st->sent = 1;
            finish_stream(st, b);
            return;
        }
        if (st->ntokens == 0) { stream_send_batch(st); return; }
        if (s->cfg.itl_ms <= 0) { stream_send_batch(st); return; }
    }
    if (st->phase != SP_STREAM) return;
    /* timed tokens: one line per tick */
    int fault_at = st->fault ? s->cfg.fault_after : -1;
    if (st->sent == fault_at && st->fault != F_CLOSE_AFTER) { strike(st); return; }
    if (st->sent >= st->ntokens) {
        if (st->fault) { strike(st); return; }
        struct evbuffer *b = evbuffer_new();
        finish_stream(st, b);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    char ts[64];
    now_str(ts, sizeof ts);
    write_token(st, b, ts, st->sent++);
    if (st->sent >= st->ntokens && !st->fault) {
        finish_stream(st, b);
        return;
    }
    evhttp_send_reply_chunk(st->req, b);
    evbuffer_free(b);
    /* the next token is due itl after this one was due, not after now */
    if (st->next_at == 0) st->next_at = mono_ms();
    st->next_at += s->cfg.itl_ms;
    double wait = st->next_at - mono_ms();
    schedule(st, wait > 0 ? wait : 0);
}

/* the longest cached prefix of st's prompt, in tokens (4 characters) */
static int cached_prefix(ag_sim *s, const char *r) {
    size_t best = 0;
    int at = -1;
    for (int i = 0; i < s->npc; i++) {
        const char *c = s->pc[i];
        size_t k = 0;
        while (c[k] && r[k] && c[k] == r[k]) k++;
        if (k > best) {
            best = k;
            at = i;
        }
    }
    if (at > 0) { /* most recently used first */
        char *hit = s->pc[at];
        memmove(s->pc + 1, s->pc, (size_t)at * sizeof *s->pc);
        s->pc[0] = hit;
    }
    return (int)(best / 4);
}

/* a finished conversation (prompt and answer) into the cache, LRU */
static void cache_put(ag_sim *s, stream *st) {
    if (!st->rendered) return;
    int cap = s->cfg.prefix_cache > 0 ? s->cfg.prefix_cache : 64;
    size_t rl = strlen(st->rendered);
    struct evbuffer *ans = evbuffer_new();
    if (st->kind == S_CHAT) evbuffer_add(ans, "assistant\n", 10); /* as the next turn renders it */
    for (int i = st->think_tokens; i < st->sent && i < st->ntokens; i++) {
        const char *t = is_r1(st->model) ? r1_token(st->seed, i, st->ntokens)->raw : token_at(st->seed, i)->raw;
        evbuffer_add(ans, t, strlen(t));
    }
    size_t al = evbuffer_get_length(ans);
    char *e = malloc(rl + al + 1);
    if (!e) {
        evbuffer_free(ans);
        return;
    }
    memcpy(e, st->rendered, rl);
    evbuffer_remove(ans, e + rl, al);
    e[rl + al] = 0;
    evbuffer_free(ans);
    if (!s->pc) s->pc = calloc((size_t)cap, sizeof *s->pc);
    if (!s->pc) {
        free(e);
        return;
    }
    if (s->npc == cap) free(s->pc[--s->npc]);
    memmove(s->pc + 1, s->pc, (size_t)s->npc * sizeof *s->pc);
    s->pc[0] = e;
    s->npc++;
}

static void stream_start(stream *st) {
    ag_sim *s = st->sim;
    model *m = find_model(s, st->model);
    double delay = s->cfg.ttft_ms;
    st->wait_ns = since_ns(&st->t0);
    if (st->rendered) { /* prefill: what the cache does not hold */
        st->prompt_tokens = (int)(strlen(st->rendered) / 4) + 1;
        st->cached_tokens = cached_prefix(s, st->rendered);
        if (st->cached_tokens > st->prompt_tokens - 1) st->cached_tokens = st->prompt_tokens - 1;
        double ms = (st->prompt_tokens - st->cached_tokens) / s->cfg.prefill_rate * 1e3;
        st->prefill_ns = (int64_t)(ms * 1e6);
        delay += ms;
    }
    if (m) m->expires = time(NULL) + 300;
    if (m && !m->loaded) {
        delay += s->cfg.load_ms;
        st->load_ns = (int64_t)(s->cfg.load_ms * 1e6);
        m->loaded = 1;
    }
    if (st->load == 2 && m) m->loaded = 0;
    st->has_slot = 1;
    s->st.active++;
    st->phase = SP_DELAY;
    schedule(st, delay);
}

static void admit_waiting(ag_sim *s) {
    while (s->waiting_head && (s->cfg.slots <= 0 || (int)s->st.active < s->cfg.slots)) {
        stream *st = s->waiting_head;
        s->waiting_head = st->qnext;
        if (!s->waiting_head) s->waiting_tail = NULL;
        s->st.queued--;
        st->qnext = NULL;
        stream_start(st);
    }
}

/* The "model" member as Ollama's decoder reads it: the key matched without
 * (ASCII) case, the last one winning */
static const char *model_of(yajl_val root) {
    const char *m = NULL;
    if (!root || !YAJL_IS_OBJECT(root)) return NULL;
    for (size_t i = 0; i < root->u.object.len; i++)
        if (strcasecmp(root->u.object.keys[i], "model") == 0)
            m = YAJL_IS_STRING(root->u.object.values[i]) ? root->u.object.values[i]->u.string : NULL;
    return m;
}

/* Parses a request body that names a model we serve. On failure answers the
 * Ollama-style error (400 bad JSON or no model, 404 unknown model) and
 * returns NULL; otherwise *root owns the tree. */
static const char *model_request(ag_sim *s, struct evhttp_request *req, yajl_val *root) {
    char *body = body_of(req);
    char err[256];
    *root = body ? ag__json_tree(NULL, body, err, sizeof err) : NULL;
    free(body);
    const char *mname = model_of(*root);
    if (!mname || !*mname) {
        reply_error(req, 400, "Bad Request", *root && YAJL_IS_OBJECT(*root) ? "model is required" : "invalid JSON body");
    } else if (!find_model(s, mname)) {
        char msg[300];
        snprintf(msg, sizeof msg, "model \"%s\" not found, try pulling it first", mname);
        reply_error(req, 404, "Not Found", msg);
        mname = NULL;
    }
    if (!mname && *root) {
        ag__json_tree_free(NULL, *root);
        *root = NULL;
    }
    return mname;
}

/* ---- request handlers ---- */
static void handle_generate(ag_sim *s, struct evhttp_request *req, enum skind kind) {
    yajl_val root;
    const char *mname = model_request(s, req, &root);
    if (!mname) return;
    if (strstr(mname, "embed")) { /* an embedding-only model, as Ollama answers */
        char msg[300];
        snprintf(msg, sizeof msg, "\"%s\" does not support %s", mname, kind == S_CHAT ? "chat" : "generate");
        reply_error(req, 400, "Bad Request", msg);
        ag__json_tree_free(NULL, root);
        return;
    }
    if (s->req_oai && kind == S_GENERATE) {
        yajl_val pr = get(root, "prompt");
        if (pr && !YAJL_IS_STRING(pr)) {
            reply_error(req, 400, "Bad Request", "invalid prompt: only a string is supported");
            ag__json_tree_free(NULL, root);
            return;
        }
    }
    int maxq = s->cfg.max_queue > 0 ? s->cfg.max_queue : 512;
    if (s->cfg.slots > 0 && (int)s->st.active >= s->cfg.slots && (int)s->st.queued >= maxq) {
        s->st.rejected_busy++;
        reply_error(req, 503, "Service Unavailable", "server busy, please try again.  maximum pending requests exceeded");
        ag__json_tree_free(NULL, root);
        return;
    }
    stream *st = calloc(1, sizeof *st);
    st->sim = s;
    st->req = req;
    st->kind = kind;
    gettimeofday(&st->t0, NULL);
    snprintf(st->model, sizeof st->model, "%s", mname);
    yajl_val sv = get(root, "stream");
    st->oai = s->req_oai;
    if (st->oai) {
        const char *up[] = {"stream_options", "include_usage", NULL};
        yajl_val iu = yajl_tree_get(root, up, yajl_t_true);
        st->usage = iu != NULL;
        snprintf(st->oai_id, sizeof st->oai_id, "%s-%llu", kind == S_CHAT ? "chatcmpl" : "cmpl",
                 (unsigned long long)++s->oai_ids);
        st->created = (long)time(NULL);
    }
    st->do_stream = st->oai ? sv && YAJL_IS_TRUE(sv) : !(sv && YAJL_IS_FALSE(sv)); /* OpenAI: off by default */
    st->ntokens = s->cfg.tokens > 0 ? s->cfg.tokens : 32;
    yajl_val mt = get(root, "max_tokens");
    if (st->oai && mt && YAJL_IS_INTEGER(mt) && YAJL_GET_INTEGER(mt) >= 0) {
        st->ntokens = (int)YAJL_GET_INTEGER(mt);
        st->limited = 1;
    }
    yajl_val opts = get(root, "options");
    yajl_val np = get(opts, "num_predict");
    if (np && YAJL_IS_INTEGER(np) && YAJL_GET_INTEGER(np) >= 0) {
        st->ntokens = (int)YAJL_GET_INTEGER(np);
        st->limited = 1;
    }
    yajl_val think = get(root, st->oai ? "reasoning_effort" : "think");
    int thinking = think && (YAJL_IS_TRUE(think) || YAJL_IS_STRING(think));
    yajl_val fmt = get(root, st->oai ? "response_format" : "format");
    st->json_format = fmt != NULL && !YAJL_IS_NULL(fmt);
    if (st->json_format && st->ntokens < 2) st->ntokens = 2;
    if (kind == S_GENERATE) {
        const char *p = ag__json_str(root, "prompt"), *sy = ag__json_str(root, "system");
        snprintf(st->prompt, sizeof st->prompt, "%s", p ? p : "");
        st->prompt_chars = (p ? strlen(p) : 0) + (sy ? strlen(sy) : 0);
        if (!p || !*p) {
            yajl_val ka = get(root, "keep_alive");
            int unload = ka && ((YAJL_IS_NUMBER(ka) && YAJL_GET_DOUBLE(ka) == 0) ||
                                (YAJL_IS_STRING(ka) && ka->u.string && strcmp(ka->u.string, "0") == 0));
            st->load = unload ? 2 : 1;
            st->ntokens = 0;
        }
    } else {
        yajl_val msgs = get(root, "messages");
        const char *last_user = "", *last_role = "";
        const char *tool_content = NULL, *assistant_prefix = NULL;
        if (msgs && YAJL_IS_ARRAY(msgs)) {
            for (size_t i = 0; i < msgs->u.array.len; i++) {
                yajl_val m = msgs->u.array.values[i];
                const char *role = ag__json_str(m, "role");
                const char *content = msg_text(m);
                if (!role) continue;
                last_role = role;
                if (strcmp(role, "user") == 0 && content) last_user = content;
                if (content) st->prompt_chars += strlen(content);
                if (strcmp(role, "tool") == 0) tool_content = content;
                if (strcmp(role, "system") == 0 && content && strstr(content, "fenced")) st->code_answer = 1;
                assistant_prefix = strcmp(role, "assistant") == 0 ? content : NULL;
            }
        }
        snprintf(st->prompt, sizeof st->prompt, "%s", last_user);
        st->seed = fnv(st->model, st->prompt);
        if (!st->oai && msgs && YAJL_IS_ARRAY(msgs) && msgs->u.array.len == 0) {
            /* no messages: Ollama loads (or, with keep_alive 0, unloads) the model */
            yajl_val ka = get(root, "keep_alive");
            int unload = ka && ((YAJL_IS_NUMBER(ka) && YAJL_GET_DOUBLE(ka) == 0) ||
                                (YAJL_IS_STRING(ka) && ka->u.string && strcmp(ka->u.string, "0") == 0));
            st->load = unload ? 2 : 1;
            st->ntokens = 0;
        }
        /* a trailing assistant message is continued, as Ollama does: find
         * how many of our tokens it already holds and go on from there */
        if (assistant_prefix && *assistant_prefix) {
            size_t off = 0, plen = strlen(assistant_prefix);
            int k = 0;
            while (k < st->ntokens) {
                const char *t = token_at(st->seed, k)->raw;
                size_t tl = strlen(t);
                if (off + tl > plen || memcmp(assistant_prefix + off, t, tl) != 0) break;
                off += tl;
                k++;
            }
            if (off == plen) st->sent = st->first = k;
        }
        yajl_val tools = get(root, "tools");
        if (tools && YAJL_IS_ARRAY(tools) && tools->u.array.len > 0 && strcmp(last_role, "tool") != 0) {
            yajl_val t0 = tools->u.array.values[0];
            const char *fpath[] = {"function", "name", NULL};
            yajl_val nm = yajl_tree_get(t0, fpath, yajl_t_string);
            if (nm) {
                st->tool_call = 1;
                snprintf(st->tool_name, sizeof st->tool_name, "%s", YAJL_GET_STRING(nm));
                /* arguments: each declared property, from the user's last word */
                const char *ppath[] = {"function", "parameters", "properties", NULL};
                yajl_val props = yajl_tree_get(t0, ppath, yajl_t_object);
                char lastw[64] = "x";
                const char *e = last_user + strlen(last_user);
                while (e > last_user && !isalnum((unsigned char)e[-1])) e--;
                const char *b = e;
                while (b > last_user && isalnum((unsigned char)b[-1])) b--;
                if (e > b) snprintf(lastw, sizeof lastw, "%.*s", (int)(e - b), b);
                size_t off = 0;
                off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "{");
                for (size_t i = 0; props && i < props->u.object.len && off < sizeof st->tool_args - 80; i++) {
                    yajl_val pv = props->u.object.values[i];
                    const char *ty = ag__json_str(pv, "type");
                    const char *k = props->u.object.keys[i];
                    if (ty && (strcmp(ty, "number") == 0 || strcmp(ty, "integer") == 0))
                        off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "%s\"%s\":42", i ? "," : "", k);
                    else if (ty && strcmp(ty, "boolean") == 0)
                        off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "%s\"%s\":true", i ? "," : "", k);
                    else
                        off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "%s\"%s\":\"%s\"", i ? "," : "", k, lastw);
                }
                snprintf(st->tool_args + off, sizeof st->tool_args - off, "}");
            }
        }
        if (tool_content) {
            /* echo the tool result, JSON-escaped by hand into a safe subset */
            size_t o = 0;
            for (const char *q = tool_content; *q && o < sizeof st->tool_result - 8; q++) {
                unsigned char ch = (unsigned char)*q;
                if (ch == '"' || ch == '\\') { st->tool_result[o++] = '\\'; st->tool_result[o++] = (char)ch; }
                else if (ch >= 0x20) st->tool_result[o++] = (char)ch;
            }
            st->tool_result[o] = 0;
        }
    }
    if (s->cfg.prefill_rate > 0) { /* the whole prompt, for the prefix cache */
        struct evbuffer *rb = evbuffer_new();
        if (kind == S_CHAT) {
            yajl_val msgs = get(root, "messages");
            for (size_t i = 0; msgs && YAJL_IS_ARRAY(msgs) && i < msgs->u.array.len; i++) {
                const char *role = ag__json_str(msgs->u.array.values[i], "role");
                const char *content = msg_text(msgs->u.array.values[i]);
                evbuffer_add_printf(rb, "%s\n%s\n", role ? role : "user", content ? content : "");
            }
        } else {
            const char *sys = ag__json_str(root, "system");
            evbuffer_add_printf(rb, "%s\n%s", sys ? sys : "", st->prompt);
        }
        size_t rl = evbuffer_get_length(rb);
        st->rendered = malloc(rl + 1);
        if (st->rendered) {
            evbuffer_remove(rb, st->rendered, rl);
            st->rendered[rl] = 0;
        }
        evbuffer_free(rb);
    }
    if (st->code_answer) st->ntokens = 9;
    if (thinking && !st->tool_call) st->think_tokens = st->ntokens / 4;
    if (!st->seed) st->seed = fnv(st->model, st->prompt);
    ag__json_tree_free(NULL, root);
    /* faults strike generation requests */
    if (s->fault[0]) {
        s->gen_count++;
        int every = s->cfg.fault_every > 0 ? s->cfg.fault_every : 1;
        if (s->gen_count % (uint64_t)every == 0) st->fault = fault_id(s->fault);
    }
    st->timer = evtimer_new(s->base, stream_step, st);
    st->evcon = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(st->evcon, on_client_close, st);
    st->anext = s->all;
    if (s->all) s->all->aprev = &st->anext;
    s->all = st;
    st->aprev = &s->all;
    if (s->cfg.slots > 0 && (int)s->st.active >= s->cfg.slots) {
        st->phase = SP_WAIT_SLOT;
        if (s->waiting_tail) s->waiting_tail->qnext = st;
        else s->waiting_head = st;
        s->waiting_tail = st;
        s->st.queued++;
        return;
    }
    stream_start(st);
}

static void handle_embed(ag_sim *s, struct evhttp_request *req, int legacy) {
    yajl_val root;
    const char *mname = model_request(s, req, &root);
    if (!mname) return;
    int dim = s->cfg.dim > 0 ? s->cfg.dim : 768;
    yajl_val dv = get(root, "dimensions");
    if (dv && YAJL_IS_INTEGER(dv) && YAJL_GET_INTEGER(dv) > 0 && YAJL_GET_INTEGER(dv) < dim)
        dim = (int)YAJL_GET_INTEGER(dv);
    yajl_val in = get(root, legacy ? "prompt" : "input");
    const char *single = in && YAJL_IS_STRING(in) ? YAJL_GET_STRING(in) : NULL;
    size_t n = single ? 1 : (in && YAJL_IS_ARRAY(in) ? in->u.array.len : 0);
    if (n == 0 && !legacy) {
        reply_error(req, 400, "Bad Request", "input is required");
        ag__json_tree_free(NULL, root);
        return;
    }
    float *v = malloc(sizeof(float) * (size_t)dim);
    struct evbuffer *b = evbuffer_new();
    int oai = s->req_oai;
    const char *ef = oai ? ag__json_str(root, "encoding_format") : NULL;
    int b64 = ef && strcmp(ef, "base64") == 0; /* the OpenAI SDK's default: float32 LE, base64 */
    if (oai) evbuffer_add_printf(b, "{\"object\":\"list\",\"model\":\"%s\",\"data\":[", mname);
    else evbuffer_add_printf(b, legacy ? "{\"embedding\":" : "{\"model\":\"%s\",\"embeddings\":[", mname);
    for (size_t i = 0; i < n; i++) {
        const char *text = single;
        if (!text) {
            yajl_val e = in->u.array.values[i];
            text = YAJL_IS_STRING(e) ? YAJL_GET_STRING(e) : "";
        }
        ag_sim_embed_text(text, dim, v);
        if (b64) {
            static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            evbuffer_add_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":\"", i ? "," : "", i);
            const unsigned char *p = (const unsigned char *)v; /* little-endian hosts */
            size_t len = sizeof(float) * (size_t)dim;
            for (size_t k = 0; k < len; k += 3) {
                unsigned x = (unsigned)p[k] << 16 | (k + 1 < len ? (unsigned)p[k + 1] << 8 : 0) | (k + 2 < len ? p[k + 2] : 0);
                char q[4] = {tab[x >> 18 & 63], tab[x >> 12 & 63], k + 1 < len ? tab[x >> 6 & 63] : '=',
                             k + 2 < len ? tab[x & 63] : '='};
                evbuffer_add(b, q, 4);
            }
            evbuffer_add(b, "\"}", 2);
            continue;
        }
        if (oai) evbuffer_add_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[", i ? "," : "", i);
        else evbuffer_add(b, i ? ",[" : "[", i ? 2 : 1);
        char num[32];
        for (int j = 0; j < dim; j++) {
            int l = snprintf(num, sizeof num, j ? ",%.9g" : "%.9g", (double)v[j]);
            evbuffer_add(b, num, (size_t)l);
        }
        evbuffer_add(b, oai ? "]}" : "]", oai ? 2 : 1);
    }
    if (oai) evbuffer_add_printf(b, "],\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", n * 8, n * 8);
    else if (legacy) evbuffer_add_printf(b, "}");
    else if (!oai) evbuffer_add_printf(b, "],\"total_duration\":14143917,\"load_duration\":1019500,\"prompt_eval_count\":%zu}", n * 8);
    free(v);
    reply_json(req, b);
    evbuffer_free(b);
    ag__json_tree_free(NULL, root);
}

static void handle_models_oai(ag_sim *s, struct evhttp_request *req) {
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < s->nmodels; i++)
        evbuffer_add_printf(b, "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":1759320000,\"owned_by\":\"library\"}", i ? "," : "", s->models[i].name);
    evbuffer_add_printf(b, "]}");
    reply_json(req, b);
    evbuffer_free(b);
}

static void handle_tags(ag_sim *s, struct evhttp_request *req, int ps) {
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"models\":[");
    int first = 1;
    for (int i = 0; i < s->nmodels; i++) {
        model *m = &s->models[i];
        if (ps && !m->loaded) continue;
        int emb = strstr(m->name, "embed") != NULL;
        evbuffer_add_printf(b, "%s{\"name\":\"%s\",\"model\":\"%s\",%s\"size\":%lld,\"digest\":\"%016llx\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"%s\",\"families\":[\"%s\"],\"parameter_size\":\"%s\",\"quantization_level\":\"Q4_K_M\"}",
                            first ? "" : ",", m->name, m->name,
                            ps ? "" : "\"modified_at\":\"2026-10-01T12:00:00.000000Z\",",
                            (long long)m->size, (unsigned long long)fnv(m->name, ""),
                            emb ? "nomic-bert" : "llama", emb ? "nomic-bert" : "llama", emb ? "137M" : "3.2B");
        if (ps) {
            char until[40];
            struct tm tm;
            time_t e = m->expires ? m->expires : time(NULL) + 300;
            strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&e, &tm));
            evbuffer_add_printf(b, ",\"expires_at\":\"%s\",\"size_vram\":%lld,\"context_length\":4096", until,
                                (long long)m->size);
        }
        evbuffer_add(b, "}", 1);
        first = 0;
    }
    evbuffer_add_printf(b, "]}");
    reply_json(req, b);
    evbuffer_free(b);
}

static void handle_show(ag_sim *s, struct evhttp_request *req) {
    char *body = body_of(req);
    yajl_val root = body ? ag__json_tree(NULL, body, NULL, 0) : NULL;
    free(body);
    const char *mname = ag__json_str(root, "model");
    if (!mname) mname = ag__json_str(root, "name");
    model *m = mname ? find_model(s, mname) : NULL;
    if (!m) {
        char msg[300];
        snprintf(msg, sizeof msg, "model '%s' not found", mname ? mname : "");
        reply_error(req, 404, "Not Found", msg);
    } else {
        int emb = strstr(m->name, "embed") != NULL;
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"license\":\"sim\",\"modelfile\":\"# Modelfile generated by the agents simulator\\nFROM %s\\n\",\"parameters\":\"stop \\\"<|eot|>\\\"\\ntemperature 0.7\",\"template\":\"{{ .Prompt }}\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"%s\",\"families\":[\"%s\"],\"parameter_size\":\"%s\",\"quantization_level\":\"Q4_K_M\"},\"model_info\":{\"general.architecture\":\"llama\",\"general.parameter_count\":3212749888,\"llama.context_length\":131072,\"tokenizer.ggml.tokens\":[\"a\",\"b\"]},\"capabilities\":%s,\"modified_at\":\"2026-10-01T12:00:00Z\"}",
                            m->name, emb ? "nomic-bert" : "llama", emb ? "nomic-bert" : "llama", emb ? "137M" : "3.2B",
                            emb ? "[\"embedding\"]" : "[\"completion\",\"tools\",\"thinking\"]");
        reply_json(req, b);
        evbuffer_free(b);
    }
    if (root) ag__json_tree_free(NULL, root);
}

static void handle_pull(ag_sim *s, struct evhttp_request *req) {
    char *body = body_of(req);
    yajl_val root = body ? ag__json_tree(NULL, body, NULL, 0) : NULL;
    free(body);
    const char *mname = ag__json_str(root, "model");
    if (!mname) mname = ag__json_str(root, "name");
    if (!mname) {
        reply_error(req, 400, "Bad Request", "model is required");
        if (root) ag__json_tree_free(NULL, root);
        return;
    }
    yajl_val sv = get(root, "stream");
    int stream = !(sv && YAJL_IS_FALSE(sv));
    add_model(s, mname);
    struct evbuffer *b = evbuffer_new();
    if (stream) {
        evbuffer_add_printf(b, "{\"status\":\"pulling manifest\"}\n");
        for (int i = 0; i <= 4; i++)
            evbuffer_add_printf(b, "{\"status\":\"pulling 6a0746a1ec1a\",\"digest\":\"sha256:6a0746a1ec1a\",\"total\":2019393189,\"completed\":%lld}\n",
                                (long long)2019393189 * i / 4);
        evbuffer_add_printf(b, "{\"status\":\"verifying sha256 digest\"}\n{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
        evhttp_send_reply_start(req, 200, "OK");
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
    } else {
        evbuffer_add_printf(b, "{\"status\":\"success\"}");
        reply_json(req, b);
    }
    evbuffer_free(b);
    ag__json_tree_free(NULL, root);
}

/* /api/push: the model's layers "uploaded" (progress as Ollama streams it) */
static void handle_push(ag_sim *s, struct evhttp_request *req) {
    char *body = body_of(req);
    yajl_val root = body ? ag__json_tree(NULL, body, NULL, 0) : NULL;
    free(body);
    const char *mname = ag__json_str(root, "model");
    if (!mname) mname = ag__json_str(root, "name");
    if (!mname || !find_model(s, mname)) {
        char msg[300];
        snprintf(msg, sizeof msg, "model '%s' not found", mname ? mname : "");
        reply_error(req, mname ? 404 : 400, mname ? "Not Found" : "Bad Request", mname ? msg : "model is required");
    } else {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"status\":\"retrieving manifest\"}\n");
        for (int i = 0; i <= 4; i++)
            evbuffer_add_printf(b, "{\"status\":\"pushing 6a0746a1ec1a\",\"digest\":\"sha256:6a0746a1ec1a\",\"total\":2019393189,\"completed\":%lld}\n",
                                (long long)2019393189 * i / 4);
        evbuffer_add_printf(b, "{\"status\":\"pushing manifest\"}\n{\"status\":\"success\"}\n");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    }
    if (root) ag__json_tree_free(NULL, root);
}

/* /api/blobs/sha256:HEX: HEAD says whether the node has it; POST takes it
 * when its bytes have that digest */
static void handle_blob(ag_sim *s, struct evhttp_request *req, const char *digest, int head) {
    int have = 0;
    for (int i = 0; i < s->nblobs && i < 16; i++) have |= !strcmp(s->blobs[i], digest);
    if (head) {
        evhttp_send_reply(req, have ? 200 : 404, have ? "OK" : "Not Found", NULL);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_Digest(evbuffer_pullup(in, -1), n, md, &ml, EVP_sha256(), NULL);
    char hex[72] = "sha256:";
    for (int i = 0; i < 32; i++) snprintf(hex + 7 + 2 * i, 3, "%02x", md[i]);
    if (strcmp(hex, digest) != 0) {
        reply_error(req, 400, "Bad Request", "digest mismatch");
        return;
    }
    if (!have) snprintf(s->blobs[s->nblobs++ % 16], sizeof s->blobs[0], "%s", hex);
    evhttp_send_reply(req, 201, "Created", NULL);
}

/* /api/create: from a model this node has, or from uploaded blobs */
static void handle_create(ag_sim *s, struct evhttp_request *req) {
    char *body = body_of(req);
    yajl_val root = body ? ag__json_tree(NULL, body, NULL, 0) : NULL;
    free(body);
    const char *mname = ag__json_str(root, "model"), *from = ag__json_str(root, "from");
    yajl_val files = get(root, "files");
    char msg[300] = "";
    if (!mname || !*mname) snprintf(msg, sizeof msg, "model is required");
    else if (!from && !(files && YAJL_IS_OBJECT(files))) snprintf(msg, sizeof msg, "neither 'from' nor 'files' was specified");
    else if (from && !find_model(s, from)) snprintf(msg, sizeof msg, "model '%s' not found", from);
    for (size_t i = 0; !msg[0] && files && YAJL_IS_OBJECT(files) && i < files->u.object.len; i++) {
        yajl_val d = files->u.object.values[i];
        int have = 0;
        for (int k = 0; YAJL_IS_STRING(d) && k < s->nblobs && k < 16; k++) have |= !strcmp(s->blobs[k], d->u.string);
        if (!have) snprintf(msg, sizeof msg, "invalid digest for file %s: missing blob", files->u.object.keys[i]);
    }
    if (msg[0]) reply_error(req, strstr(msg, "not found") ? 404 : 400, strstr(msg, "not found") ? "Not Found" : "Bad Request", msg);
    else {
        add_model(s, mname);
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"status\":\"%s\"}\n", from ? "using existing layer sha256:6a0746a1ec1a" : "parsing GGUF");
        if (get(root, "system") || get(root, "template") || get(root, "parameters") || get(root, "messages"))
            evbuffer_add_printf(b, "{\"status\":\"creating new layer sha256:1f2e3d4c5b6a\"}\n");
        evbuffer_add_printf(b, "{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    }
    if (root) ag__json_tree_free(NULL, root);
}

static void handle_delete_copy(ag_sim *s, struct evhttp_request *req, int copy) {
    char *body = body_of(req);
    yajl_val root = body ? ag__json_tree(NULL, body, NULL, 0) : NULL;
    free(body);
    const char *src = ag__json_str(root, copy ? "source" : "model");
    if (!src && !copy) src = ag__json_str(root, "name");
    model *m = src ? find_model(s, src) : NULL;
    if (!m) {
        char msg[300];
        snprintf(msg, sizeof msg, "model '%s' not found", src ? src : "");
        reply_error(req, 404, "Not Found", msg);
    } else if (copy) {
        const char *dst = ag__json_str(root, "destination");
        if (!dst) reply_error(req, 400, "Bad Request", "destination is required");
        else {
            add_model(s, dst);
            evhttp_send_reply(req, 200, "OK", NULL);
        }
    } else {
        int idx = (int)(m - s->models);
        memmove(&s->models[idx], &s->models[idx + 1], sizeof(model) * (size_t)(s->nmodels - idx - 1));
        s->nmodels--;
        evhttp_send_reply(req, 200, "OK", NULL);
    }
    if (root) ag__json_tree_free(NULL, root);
}

/* CORS as Ollama allows it by default: local origins (and app/file/tauri/
 * vscode schemes, browser extensions); 1 when the request was a preflight
 * and is answered, or came from another origin and was refused */
static int sim_cors(struct evhttp_request *req) {
    const char *o = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    if (!o) return 0;
    static const char *const ok[] = {"http://localhost", "https://localhost", "http://127.0.0.1", "https://127.0.0.1",
                                     "http://0.0.0.0", "https://0.0.0.0", "app://", "file://", "tauri://",
                                     "vscode-webview://", "vscode-file://", "chrome-extension://",
                                     "moz-extension://", "safari-extension://"};
    int allowed = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0] && !allowed; i++) {
        size_t l = strlen(ok[i]);
        allowed = strncmp(o, ok[i], l) == 0 && (ok[i][l - 1] == '/' || o[l] == 0 || o[l] == ':');
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (!allowed) {
        evhttp_send_reply(req, 403, "Forbidden", NULL);
        return 1;
    }
    evhttp_add_header(h, "Access-Control-Allow-Origin", o);
    evhttp_add_header(h, "Vary", "Origin");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS) {
        evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
        evhttp_add_header(h, "Access-Control-Allow-Headers",
                          "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, "
                          "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
                          "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout");
        evhttp_add_header(h, "Access-Control-Max-Age", "43200");
        evhttp_send_reply(req, 204, "No Content", NULL);
        return 1;
    }
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg) {
    ag_sim *s = arg;
    s->st.requests++;
    cur_sim = s;
    if (sim_cors(req)) return;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    free(s->last_auth);
    s->last_auth = auth ? strdup(auth) : NULL;
    { /* the request's path and headers, for tests that check what every call carried */
        struct evbuffer *hb = evbuffer_new();
        if (hb) {
            const char *u = evhttp_request_get_uri(req);
            evbuffer_add_printf(hb, "%s\n", u ? u : "");
            for (struct evkeyval *h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next)
                evbuffer_add_printf(hb, "%s: %s\n", h->key, h->value);
            evbuffer_add(hb, "", 1);
            unsigned at = s->nheads++ % 256;
            free(s->heads[at]);
            s->heads[at] = strdup((const char *)evbuffer_pullup(hb, -1));
            evbuffer_free(hb);
        }
    }
    /* token lines are small writes: do not let Nagle hold them for an ACK */
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) {
        int one = 1;
        setsockopt(bufferevent_getfd(evhttp_connection_get_bufferevent(evcon)), IPPROTO_TCP,
                   TCP_NODELAY, &one, sizeof one);
    }
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char path[256];
    const char *q = strchr(uri, '?');
    size_t pl = q ? (size_t)(q - uri) : strlen(uri);
    if (pl >= sizeof path) pl = sizeof path - 1;
    memcpy(path, uri, pl);
    path[pl] = 0;
    int post = cmd == EVHTTP_REQ_POST;
    /* Ollama serves the OpenAI-compatible routes too, under /v1 */
    s->req_oai = s->cfg.api == 1 || strncmp(path, "/v1/", 4) == 0;
    oai_errors = s->req_oai;
    if (s->req_oai) { /* the OpenAI-compatible dialect */
        if (post && strcmp(path, "/v1/chat/completions") == 0) handle_generate(s, req, S_CHAT);
        else if (post && strcmp(path, "/v1/completions") == 0) handle_generate(s, req, S_GENERATE);
        else if (post && strcmp(path, "/v1/embeddings") == 0) handle_embed(s, req, 0);
        else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/v1/models") == 0) handle_models_oai(s, req);
        else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/v1/models/", 11) == 0) {
            const char *id = path + 11;
            model *fm = *id ? find_model(s, id) : NULL;
            if (!fm) {
                char msg[300];
                snprintf(msg, sizeof msg, "model \"%s\" not found", id);
                reply_error(req, 404, "Not Found", msg);
            } else {
                struct evbuffer *b = evbuffer_new();
                evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"model\",\"created\":1759320000,\"owned_by\":\"library\"}", fm->name);
                reply_json(req, b);
                evbuffer_free(b);
            }
        }
        else if (cmd == EVHTTP_REQ_GET && (s->cfg.says & AG_SIM_SAYS_PROPS) && strcmp(path, "/props") == 0) {
            /* llama.cpp: the server's settings, its parallel slots among them */
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_printf(b, "{\"default_generation_settings\":{\"n_ctx\":4096,\"params\":{}},"
                                   "\"total_slots\":%d,\"model_path\":\"models/%s.gguf\",\"chat_template\":\"\"}",
                                s->cfg.slots > 0 ? s->cfg.slots : 1, s->nmodels ? s->models[0].name : "model");
            reply_json(req, b);
            evbuffer_free(b);
        }
        else if (cmd == EVHTTP_REQ_GET && (s->cfg.says & AG_SIM_SAYS_PROPS) && strcmp(path, "/slots") == 0) {
            /* llama.cpp: one object a slot, busy or not */
            struct evbuffer *b = evbuffer_new();
            int n = s->cfg.slots > 0 ? s->cfg.slots : 1;
            evbuffer_add(b, "[", 1);
            for (int i = 0; i < n; i++)
                evbuffer_add_printf(b, "%s{\"id\":%d,\"n_ctx\":4096,\"is_processing\":%s}", i ? "," : "", i,
                                    i < (int)s->st.active ? "true" : "false");
            evbuffer_add(b, "]", 1);
            reply_json(req, b);
            evbuffer_free(b);
        }
        else if (cmd == EVHTTP_REQ_GET && (s->cfg.says & AG_SIM_SAYS_METRICS) && strcmp(path, "/metrics") == 0) {
            /* vLLM: Prometheus text, requests running and waiting */
            struct evbuffer *b = evbuffer_new();
            const char *m = s->nmodels ? s->models[0].name : "model";
            evbuffer_add_printf(b,
                                "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n"
                                "# TYPE vllm:num_requests_running gauge\n"
                                "vllm:num_requests_running{model_name=\"%s\"} %u.0\n"
                                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
                                "# TYPE vllm:num_requests_waiting gauge\n"
                                "vllm:num_requests_waiting{model_name=\"%s\"} %u.0\n",
                                m, s->st.active, m, s->st.queued);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
            evhttp_send_reply(req, 200, "OK", b);
            evbuffer_free(b);
        }
        else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/health") == 0) {
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_printf(b, "{\"status\":\"ok\"}");
            reply_json(req, b);
            evbuffer_free(b);
        } else reply_error(req, 404, "Not Found", "unknown endpoint");
        return;
    }
    if (strcmp(path, "/") == 0 && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "Ollama is running");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else if (post && strcmp(path, "/api/chat") == 0) handle_generate(s, req, S_CHAT);
    else if (post && strcmp(path, "/api/generate") == 0) handle_generate(s, req, S_GENERATE);
    else if (post && strcmp(path, "/api/embed") == 0) handle_embed(s, req, 0);
    else if (post && strcmp(path, "/api/embeddings") == 0) handle_embed(s, req, 1);
    else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/api/tags") == 0) handle_tags(s, req, 0);
    else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/api/ps") == 0) handle_tags(s, req, 1);
    else if (post && strcmp(path, "/api/show") == 0) handle_show(s, req);
    else if (post && strcmp(path, "/api/pull") == 0) handle_pull(s, req);
    else if (cmd == EVHTTP_REQ_DELETE && strcmp(path, "/api/delete") == 0) handle_delete_copy(s, req, 0);
    else if (post && strcmp(path, "/api/copy") == 0) handle_delete_copy(s, req, 1);
    else if (post && strcmp(path, "/api/push") == 0) handle_push(s, req);
    else if (post && strcmp(path, "/api/create") == 0) handle_create(s, req);
    else if ((post || cmd == EVHTTP_REQ_HEAD) && strncmp(path, "/api/blobs/sha256:", 18) == 0 && strlen(path) == 18 + 64)
        handle_blob(s, req, path + 11, !post);
    else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/api/version") == 0) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"version\":\"0.12.6-sim\"}");
        reply_json(req, b);
        evbuffer_free(b);
    } else {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "404 page not found");
        evhttp_send_reply(req, 404, "Not Found", b);
        evbuffer_free(b);
    }
}

ag_sim *ag_sim_new(struct event_base *base, const char *addr, int port, const ag_sim_config *cfg) {
    ag_sim *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base = base;
    if (cfg) s->cfg = *cfg;
    const char *models = s->cfg.models ? s->cfg.models : "llama3.2,qwen3:4b,nomic-embed-text";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", models);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) add_model(s, t);
    s->cfg.models = NULL;
    if (s->cfg.fault) snprintf(s->fault, sizeof s->fault, "%s", s->cfg.fault);
    s->cfg.fault = NULL;
    s->http = evhttp_new(base);
    if (!s->http) { free(s); return NULL; }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(s->http, on_request, s);
    if (s->cfg.tls_cert && s->cfg.tls_key) {
        s->tls = SSL_CTX_new(TLS_server_method());
        if (!s->tls || SSL_CTX_use_certificate_chain_file(s->tls, s->cfg.tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(s->tls, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1) {
            if (s->tls) SSL_CTX_free(s->tls);
            evhttp_free(s->http);
            free(s);
            return NULL;
        }
        evhttp_set_bevcb(s->http, tls_bev, s->tls);
    }
    evhttp_set_timeout(s->http, 3600);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(s->http, addr ? addr : "127.0.0.1", (uint16_t)port);
    if (!h) {
        evhttp_free(s->http);
        free(s);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return s;
}

int ag_sim_port(const ag_sim *s) { return s->port; }

struct event_base *ag_sim_base_new(void) {
    struct event_config *cfg = event_config_new();
    if (!cfg) return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return b;
}

void ag_sim_set_fault(ag_sim *s, const char *fault, int after, int every) {
    snprintf(s->fault, sizeof s->fault, "%s", fault ? fault : "");
    s->cfg.fault_after = after;
    s->cfg.fault_every = every;
    s->gen_count = 0;
}

void ag_sim_set_timing(ag_sim *s, double ttft_ms, double itl_ms) {
    s->cfg.ttft_ms = ttft_ms;
    s->cfg.itl_ms = itl_ms;
}

void ag_sim_get_stats(const ag_sim *s, ag_sim_stats *out) { *out = s->st; }

void ag_sim_free(ag_sim *s) {
    if (!s) return;
    while (s->all) {
        stream *st = s->all;
        if (st->evcon) evhttp_connection_set_closecb(st->evcon, NULL, NULL);
        if (st->phase == SP_WAIT_SLOT) st->phase = SP_DELAY; /* list emptied below */
        stream_free(st);
    }
    s->waiting_head = s->waiting_tail = NULL;
    evhttp_free(s->http);
    for (int i = 0; i < NREC; i++) free(s->last_body[i]);
    for (int i = 0; i < 256; i++) free(s->heads[i]);
    free(s->last_auth);
    for (int i = 0; i < s->npc; i++) free(s->pc[i]);
    free(s->pc);
    if (s->tls) SSL_CTX_free(s->tls);
    if (cur_sim == s) cur_sim = NULL;
    free(s);
}
