/* agents/agent.h - agents on any ag_client (one node or a pool).
 *
 * An ag_agent is a reusable configuration: a client, a system prompt,
 * default options and optional hooks. Each run is a task: a small state
 * machine on the client's loop that may make several model calls (a tools
 * loop, retrieval then chat, map then reduce) and ends with exactly one
 * on_done, like a request. The agent must outlive its running tasks; freeing
 * the client completes them with AG_ESHUTDOWN.
 *
 * Strings in callbacks are borrowed (valid during the call); results passed
 * to on_done are borrowed too (ag_agent_result_dup keeps one).
 */
#ifndef AGENTS_AGENT_H
#define AGENTS_AGENT_H
#include "version.h"
#include <stddef.h>
#include "client.h"
#include "text.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_agent ag_agent;
typedef struct ag_task ag_task;

/* A source the research agent cited: [index] in the answer. */
typedef struct ag_source {
    int index;          /* 1-based, as cited */
    const char *name;   /* document name (file path or the name given) */
    const char *text;   /* the passage */
    double score;       /* cosine similarity to the question */
} ag_source;

typedef struct ag_agent_result {
    int status;              /* 0 or AG_E* */
    const char *error;       /* NULL when status == 0 */
    const char *text;        /* the answer, after the finish hook */
    size_t text_len;
    const char *thinking;    /* thinking, from `thinking` fields or <think> tags */
    size_t thinking_len;
    const ag_code_block *blocks; /* coding agent: fenced blocks of the answer */
    int n_blocks;
    const ag_source *sources;    /* research agent: the passages given as [1], [2], ... */
    int n_sources;
    const char *tool_log;    /* tools agent: JSON array of {"name","arguments","result"} */
    const float *embeddings; /* embedding agent: n_embeddings x dim */
    size_t n_embeddings, dim;
    int steps;               /* model calls made */
    int attempts;            /* whole-task attempts (retries) */
    ag_server_stats server;  /* of the last model call */
    int64_t eval_count;      /* output tokens over all calls */
    ag_timing timing;        /* of the whole task: ttft is to the first delivered chunk */
    const char *node;        /* the node of the last call */
} ag_agent_result;

typedef struct ag_agent_callbacks {
    /* AG_CHUNK_CONTENT / AG_CHUNK_THINKING pieces after the filter hook;
     * AG_CHUNK_TOOL_CALL for each tool the model calls. May be NULL. */
    void (*on_chunk)(ag_task *t, const ag_chunk *c, void *ud);
    void (*on_done)(ag_task *t, const ag_agent_result *res, void *ud);
    void *ud;
} ag_agent_callbacks;

/* A message list the prepare hook may edit (strings are copied in). */
typedef struct ag_msgs ag_msgs;
AG_API size_t ag_msgs_count(const ag_msgs *m);
AG_API const ag_message *ag_msgs_at(const ag_msgs *m, size_t i);
AG_API int ag_msgs_insert(ag_msgs *m, size_t at, const char *role, const char *content);
AG_API int ag_msgs_set_content(ag_msgs *m, size_t i, const char *content);
AG_API void ag_msgs_remove(ag_msgs *m, size_t i);

/* Hooks: every one optional. They run on the loop; keep them short. */
typedef struct ag_agent_hooks {
    /* Before each model call's messages are sent. The default (always run
     * first) prepends the system prompt and normalises roles. Return 0, or
     * an AG_E* code to fail the task. */
    int (*prepare)(ag_agent *a, ag_msgs *msgs, void *ud);
    /* Each streamed piece before the caller sees it: return 1 to drop it.
     * text and len may be pointed elsewhere (at storage that outlives the call). */
    int (*filter)(ag_agent *a, int kind, const char **text, size_t *len, void *ud);
    /* The whole answer, once: may replace it (return malloc'd text, or NULL
     * to keep it). */
    char *(*finish)(ag_agent *a, const char *text, size_t len, void *ud);
    void *ud;
} ag_agent_hooks;

typedef struct ag_agent_config {
    const char *name;          /* for logs and the CLI */
    const char *model;
    const char *system;        /* system prompt; NULL = none */
    const char *options_json;  /* Ollama options object */
    const char *keep_alive;
    const char *format;        /* "json" or a schema */
    const char *think;         /* "true", "false", "low", ... */
    ag_agent_hooks hooks;
    int max_steps;             /* tools loop: model calls at most; 0 = 8 */
    int retries;               /* whole-task retries on retryable failures; 0 = none */
    double retry_base;         /* backoff base seconds; 0 = 0.5 (max 30 s, full jitter) */
} ag_agent_config;

/* A plain agent (BaseAgent) from a config: strings are copied. */
AG_API ag_agent *ag_agent_new(ag_client *c, const ag_agent_config *cfg);
AG_API void ag_agent_free(ag_agent *a);
/* Changes one setting of an agent: "model", "system", "options" (a JSON
 * object), "keep_alive", "format", "think"; NULL value = unset. For tasks
 * started afterwards. AG_EINVAL for an unknown key or a bad options object. */
AG_API int ag_agent_set(ag_agent *a, const char *key, const char *value);
AG_API const char *ag_agent_name(const ag_agent *a);
AG_API ag_client *ag_agent_client(const ag_agent *a);

/* The built-in agents, each with its own prompt and post-processing. */
AG_API ag_agent *ag_agent_chat(ag_client *c, const char *model);      /* no system prompt */
AG_API ag_agent *ag_agent_coding(ag_client *c, const char *model);    /* fills blocks */
/* reasoning: asks for the steps in the answer; thinking the model sends as
 * thinking (or inside <think> tags) is split into result->thinking */
AG_API ag_agent *ag_agent_reasoning(ag_client *c, const char *model);
/* summarization: a conversation that fits context_tokens (0 = 2048) goes as
 * it is after the agent's prompt; longer text is summarised in parts, then
 * the parts' summaries together */
AG_API ag_agent *ag_agent_summarizer(ag_client *c, const char *model, size_t context_tokens);
AG_API ag_agent *ag_agent_embedder(ag_client *c, const char *model);  /* fills embeddings */

/* The system prompt a built-in agent sends (static text): "coding",
 * "reasoning", "research" (without documents), "research-docs",
 * "summarization"; NULL for "chat", "embedding" and unknown kinds. For
 * bindings that build agents of their own on the same prompts. */
AG_API const char *ag_agent_prompt(const char *kind);

/* A tool: a C function the model may call. args_json is the model's
 * arguments (a JSON object, borrowed). Write the result (any text; JSON is
 * customary) to *result as a malloc'd string; return 0, or nonzero to report
 * the failure to the model as the result. Success with *result left NULL
 * sends the model an empty result (""). A tool may call ag_task_cancel on its
 * own task: the task ends with AG_ECANCELED once the tool returns (its result
 * is logged, no further model call is made). */
typedef int (*ag_tool_fn)(const char *args_json, size_t args_len, char **result, void *ud);
AG_API int ag_agent_add_tool(ag_agent *a, const char *name, const char *description,
                      const char *parameters_schema_json, ag_tool_fn fn, void *ud);

/* ---- retrieval: the research agent's document store ---- */
typedef struct ag_docstore ag_docstore;
/* chunk_chars: passage size (0 = 800), overlap (0 = 120 characters). */
AG_API ag_docstore *ag_docstore_new(size_t chunk_chars, size_t overlap);
/* The same, allocating through alloc (copied; NULL = libc): a store belongs
 * to no client, so it takes an allocator of its own. */
AG_API ag_docstore *ag_docstore_new_with(size_t chunk_chars, size_t overlap, const ag_alloc_funcs *alloc);
AG_API void ag_docstore_free(ag_docstore *s);
AG_API int ag_docstore_add_text(ag_docstore *s, const char *name, const char *text);
AG_API int ag_docstore_add_file(ag_docstore *s, const char *path);
/* every regular file under dir (recursively), text files only */
AG_API int ag_docstore_add_dir(ag_docstore *s, const char *dir);
AG_API size_t ag_docstore_passages(const ag_docstore *s);
/* embeddings computed so far and how many requests made them (the cache
 * keys on (model, text): a second question reuses every passage vector) */
AG_API void ag_docstore_stats(const ag_docstore *s, size_t *cached_vectors, size_t *embed_requests);

/* Research: embed the question, rank passages by cosine, answer citing [n].
 * The store is borrowed: it must outlive the agent. top_k 0 = 4. With store
 * NULL (embed_model and top_k then unused): the original's research agent,
 * a researcher's prompt answering from what the model knows. */
AG_API ag_agent *ag_agent_research(ag_client *c, const char *model, const char *embed_model,
                            ag_docstore *store, int top_k);

/* ---- running ---- */
/* Starts a task on messages (copied). Returns 0 (on_done will run exactly
 * once, later) or an AG_E* code (no callback).
 *
 * Messages sent: the agent's system prompt first (when it has one), then the
 * messages given, a caller's own system messages included (as the original
 * package sends them). The embedding agent embeds the contents joined by
 * blank lines as one text: one vector in result->embeddings (an empty one,
 * with no request, when that text is blank). */
AG_API int ag_agent_run(ag_agent *a, const ag_message *msgs, size_t n, const ag_agent_callbacks *cb,
                 ag_task **out);

/* What one run may change (the original's run(messages, **options)); every
 * field 0 or NULL keeps the agent's setting. Read during the call only. */
typedef struct ag_run_options {
    /* Model options for this run: a JSON object laid over the agent's, key by
     * key ({"temperature":0.2,"num_predict":64}: these keys win, the agent's
     * others stay). */
    const char *options_json;
    /* The whole options object for this run, instead of the agent's (what the
     * batch runner does with a line's "options"); wins over options_json. */
    const char *options_replace;
    const char *system;        /* this run's system prompt instead of the agent's */
    int no_stream;             /* 1: ask for one whole answer ("stream": false) */
    const ag_request_options *request; /* for each model call of the run (deadline, retries, ...) */
} ag_run_options;
AG_API int ag_agent_run_with(ag_agent *a, const ag_message *msgs, size_t n, const ag_run_options *ro,
                             const ag_agent_callbacks *cb, ag_task **out);
/* One user prompt. */
AG_API int ag_agent_ask(ag_agent *a, const char *prompt, const ag_agent_callbacks *cb, ag_task **out);
/* Texts to embed (embedding agent), one vector each; only blank texts: empty
 * vectors (dim 0) without a request. */
AG_API int ag_agent_embed_texts(ag_agent *a, const char *const *texts, size_t n,
                         const ag_agent_callbacks *cb, ag_task **out);
/* Ends a running task with AG_ECANCELED (on_done runs once, as always).
 * Safe from any of the task's callbacks and from a tool function; a no-op
 * once on_done has run. result->tool_log is a complete JSON array however a
 * task ends. */
AG_API void ag_task_cancel(ag_task *t);

/* Blocking: runs the client's loop until done; *out is a copy to free with
 * ag_agent_result_free (may be NULL). Returns the status. */
AG_API int ag_agent_run_sync(ag_agent *a, const ag_message *msgs, size_t n,
                      void (*on_chunk)(ag_task *, const ag_chunk *, void *), void *ud,
                      ag_agent_result **out);
/* full_response: one prompt, the whole answer collected. */
AG_API int ag_agent_full_response(ag_agent *a, const char *prompt, ag_agent_result **out);
/* The original's get_full_response(messages, **options): a conversation and
 * this run's options (ro may be NULL), the whole answer in (*out)->text. */
AG_API int ag_agent_get_full_response(ag_agent *a, const ag_message *msgs, size_t n, const ag_run_options *ro,
                                      ag_agent_result **out);
/* Blocking ag_agent_embed_texts: one vector per text in (*out)->embeddings. */
AG_API int ag_agent_embed_sync(ag_agent *a, const char *const *texts, size_t n, ag_agent_result **out);

AG_API ag_agent_result *ag_agent_result_dup(const ag_agent_result *r);
AG_API void ag_agent_result_free(ag_agent_result *r);

/* ---- health ---- */
/* A node's health, blocking (the original's check_node_health, with more to
 * say): host in OLLAMA_HOST syntax, everything bounded by timeout seconds
 * (0 = 2). Fills *out and returns out->up: 1 when the node answered
 * GET /api/version. */
typedef struct ag_node_health {
    int up;
    char version[64];   /* the node's version, "" when down */
    double rtt_ms;      /* the round trip (or the time to the failure) */
    int status;         /* 0, or why it is down (AG_ECONNREFUSED, AG_EIDLE, AG_EDEADLINE, ...) */
    char error[256];    /* the failure's detail, "" when up */
} ag_node_health;
AG_API int ag_node_health_check(const char *host, double timeout, ag_node_health *out);

/* Checks a node (or a pool's chosen node): GET /api/version, timed.
 * done gets ok (1/0), the version and the round trip in ms. */
AG_API int ag_health_check(ag_client *c, void (*done)(int ok, const char *version, double rtt_ms, void *ud),
                    void *ud);

#ifdef __cplusplus
}
#endif
#endif
