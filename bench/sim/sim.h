/* bench/sim/sim.h - a simulated Ollama node on evhttp, for tests, demos and
 * benchmarks. Deterministic: the same request gives the same answer. */
#ifndef AG_SIM_H
#define AG_SIM_H
#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct ag_sim ag_sim;

typedef struct ag_sim_config {
    const char *models;   /* comma-separated names; NULL = a default set */
    int tokens;           /* tokens per answer when num_predict is absent; 0 = 32 */
    double ttft_ms;       /* delay before the first token */
    double itl_ms;        /* delay between tokens; 0 = as fast as the socket drains */
    double load_ms;       /* extra delay the first time a model is used (cold load) */
    int slots;            /* requests generating at once; 0 = unlimited */
    int max_queue;        /* waiting requests beyond the slots; over it: 503. 0 = 512 */
    int dim;              /* embedding dimensions; 0 = 768 */
    const char *fault;    /* NULL or: reset, error-line, malformed, http500, http503, http429,
                             stall, silent, close-before-final, close-after-final, truncate,
                             keepalive (a blank line, or an SSE comment, every 100 ms; never a token) */
    int fault_after;      /* tokens sent before the fault strikes (http429: Retry-After seconds, 0 = none) */
    int fault_every;      /* strike every Nth generation request; 0 = every one */
    int quiet;
    const char *tls_cert, *tls_key; /* PEM files: serve https */
    int api;              /* 0 = Ollama's API, 1 = the OpenAI-compatible one (/v1/..., SSE) */
    /* A prefix cache, as model servers keep one: with prefill_rate > 0 the
     * prompt (the whole conversation as rendered) costs 1/prefill_rate s per
     * token (4 characters) not already cached, before the first token, and
     * prompt_eval_count and prompt_eval_duration report what was evaluated.
     * The cache holds the last prefix_cache conversations (0 = 64), each
     * with its answer, least recently used out first. 0 = off (as before). */
    double prefill_rate;
    int prefix_cache;
    /* What the node says of its capacity (with api 1; Ollama says nothing):
     * AG_SIM_SAYS_PROPS serves llama.cpp's GET /props ("total_slots") and GET
     * /slots (one object a slot, "is_processing"); AG_SIM_SAYS_METRICS serves
     * a vLLM-style GET /metrics (vllm:num_requests_running and _waiting). */
    int says;
} ag_sim_config;
enum { AG_SIM_SAYS_PROPS = 1, AG_SIM_SAYS_METRICS = 2 };

typedef struct ag_sim_stats {
    uint64_t requests, streams_done, faults, rejected_busy, disconnects;
    unsigned active, queued;
} ag_sim_stats;

/* A loop with precise timers (EVENT_BASE_FLAG_PRECISE_TIMER): libevent's
 * default monotonic clock on Linux is the coarse one (4 ms ticks), too rough
 * for inter-token delays of a few milliseconds. */
struct event_base *ag_sim_base_new(void);

/* Listens on addr:port (port 0 = ephemeral). NULL on failure. */
ag_sim *ag_sim_new(struct event_base *base, const char *addr, int port, const ag_sim_config *cfg);
int ag_sim_port(const ag_sim *s);
void ag_sim_set_fault(ag_sim *s, const char *fault, int after, int every);
void ag_sim_set_timing(ag_sim *s, double ttft_ms, double itl_ms);
void ag_sim_get_stats(const ag_sim *s, ag_sim_stats *out);
/* The body of the last request to path ("/api/chat", "/api/embed", ...), or
 * NULL; valid until the next request to that path. */
const char *ag_sim_last_body(const ag_sim *s, const char *path);
/* Of the last 256 requests whose path starts with path_prefix ("/api/",
 * "/api/embed"), how many carried the header line exactly ("Name: value",
 * the name without case); *total (if not NULL) gets how many there were. */
int ag_sim_count_header(const ag_sim *s, const char *path_prefix, const char *line, int *total);
/* The value of header name in the last request whose path starts with
 * path_prefix, copied into out; NULL when that request had none (or there
 * was none). */
const char *ag_sim_last_header(const ag_sim *s, const char *path_prefix, const char *name, char *out, size_t n);
/* The Authorization header of the last request, or NULL when it had none. */
const char *ag_sim_last_auth(const ag_sim *s);
void ag_sim_free(ag_sim *s);

/* The answer the sim gives: token i (0-based) of the answer for (model,
 * prompt), unescaped. Tests use it to know the expected text. Models whose
 * name contains "r1" think inline first: "<think>" ... "</think>", the tags
 * cut across tokens, as DeepSeek-R1 style models stream them. */
const char *ag_sim_token(const char *model, const char *prompt, int i);
/* The same for an answer of n tokens (r1-style models place their tags by n). */
const char *ag_sim_token_n(const char *model, const char *prompt, int i, int n);
/* The deterministic embedding of text (dim floats, unit length). */
void ag_sim_embed_text(const char *text, int dim, float *out);

#endif
