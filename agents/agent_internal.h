/* agents/agent_internal.h - private to agents/: the agent and task structs
 * shared by agent.c, retrieval.c, summary.c and batch.c. */
#ifndef AG_AGENTS_INTERNAL_H
#define AG_AGENTS_INTERNAL_H
#include <stdint.h>
#include <time.h>

#include "agents.h"
#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/mem.h"
#include "core/client_ext.h"

/* calloc through an allocator: n items of size bytes, zeroed; NULL on overflow */
static inline void *ag__calloc_n(const ag_alloc_funcs *a, size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) return NULL;
    return ag__calloc(a, n * size);
}

struct ag_msgs {
    ag_message *v; /* every string owned */
    size_t n, cap;
    const ag_alloc_funcs *al; /* the agent's client's */
};
int ag__msgs_push(ag_msgs *m, const ag_message *src);
void ag__msgs_clear(ag_msgs *m);

enum agent_kind { AGK_PLAIN, AGK_CODING, AGK_REASONING, AGK_SUMMARY, AGK_EMBED, AGK_RESEARCH };

typedef struct ag_tool {
    char *name, *description, *schema;
    ag_tool_fn fn;
    void *ud;
} ag_tool;

struct ag_agent {
    ag_client *c;
    const ag_alloc_funcs *al; /* the client's: everything of the agent and its tasks */
    int kind;
    char *name, *model, *system, *options_json, *keep_alive, *format, *think;
    ag_agent_hooks hooks;
    int max_steps, retries;
    double retry_base;
    unsigned long long seed;
    ag_tool *tools;
    int ntools;
    char *tools_json;
    /* research */
    ag_docstore *store;
    char *embed_model;
    int top_k;
    /* summarization */
    size_t ctx_tokens;
};

enum task_phase {
    T_START,     /* (re)start: pick the kind's first phase */
    T_CHAT,      /* a model call is running */
    T_TOOLS,     /* running the tools the model asked for */
    T_EMBED_DOCS,/* research: embedding passages not cached yet */
    T_EMBED_Q,   /* research: embedding the question */
    T_RANK,      /* research: cosine top-k, then the cited chat */
    T_MAP,       /* summarization: parts summarised in parallel */
    T_REDUCE,    /* summarization: the summaries combined */
    T_EMBED,     /* embedding agent: batches */
    T_BACKOFF,   /* waiting to retry the whole task */
    T_DONE
};

#define AG_MAX_CALLS 16

struct ag_task {
    ag_agent *a;
    ag_agent_callbacks cb;
    enum task_phase phase;
    ag_msgs msgs;
    ag_request *req;
    void (*step_done)(ag_task *t); /* what follows the running model call */
    ag__buf text;      /* the current call's answer */
    ag__buf answer;    /* the task's answer */
    ag__buf thinking;
    ag__buf tool_log;
    ag__buf calls;
    char *call_name[AG_MAX_CALLS], *call_args[AG_MAX_CALLS];
    int ncalls;
    ag_think_splitter split;
    int steps, attempt, quiet, cancelled;
    int in_tool; /* inside a tool function: a cancel is deferred */
    int64_t delivered;
    int64_t t0;
    ag_timing timing;
    ag_server_stats server;
    int64_t eval_count;
    char *node, *error, *final_text;
    char *options_override, *system_override;
    int no_stream;             /* ag_run_options.no_stream */
    ag_request_options ro;     /* ag_run_options.request, its strings owned; ro.session is session */
    char session[257];         /* the task's session key (the caller's, up to 256 bytes, or one of
                                * its own): its model calls go to one node */
    ag_code_block *blocks;
    int n_blocks;
    struct event *timer;
    /* research */
    ag_source *sources;
    int n_sources;
    void *rs; /* research state */
    /* summarization */
    void *ss;
    /* embedding */
    char **inputs;
    size_t n_inputs, next_input, inflight;
    float *vecs;
    size_t nvecs, dim;
    int failed;
};

ag_task *ag__task_new(ag_agent *a, const ag_agent_callbacks *cb);
/* The task's own copy of a run's request options (its strings copied: the
 * task's later calls read them after the starting call returned). */
int ag__task_keep_ro(ag_task *t, const ag_request_options *ro);
void ag__task_free(ag_task *t); /* without calling back */
int ag__task_launch(ag_task *t, ag_task **out);
int ag__task_chat(ag_task *t, int with_tools, int quiet);
void ag__task_finish(ag_task *t, int status, const char *detail);
/* The last model call's text is the answer: finish with it. */
void ag__task_answer_done(ag_task *t);
void ag__task_fail(ag_task *t, int status, const char *detail);
/* session: the task's key (NULL: a key of its own) */
int ag__agent_run_ex(ag_agent *a, const ag_message *msgs, size_t n, const char *options_override,
                    const char *system_override, const char *session, const ag_agent_callbacks *cb, ag_task **out);
int ag__embed_texts_with(ag_agent *a, const char *const *texts, size_t n, const ag_request_options *ro,
                         const ag_agent_callbacks *cb, ag_task **out);
/* the run's request options for each model call: every call of a task
 * carries its session */
static inline const ag_request_options *ag__task_ro(const ag_task *t) {
    return &t->ro;
}

/* retrieval.c */
void ag__research_start(ag_task *t);
void ag__research_task_reset(ag_task *t);
void ag__research_task_free(ag_task *t);
int ag__research_cancel(ag_task *t);
/* summary.c (summarization and the embedding agent) */
void ag__summary_start(ag_task *t);
void ag__summary_task_reset(ag_task *t);
void ag__summary_task_free(ag_task *t);
int ag__summary_cancel(ag_task *t);
void ag__embed_start(ag_task *t);
int ag__embed_cancel(ag_task *t);

#endif
