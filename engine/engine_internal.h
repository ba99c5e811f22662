/* engine/engine_internal.h - private to engine/: a request as the engine
 * keeps it (its parameters deep-copied into an arena, so that the caller's
 * memory may go as soon as the starting call returns), and the copies. */
#ifndef AG_ENGINE_INTERNAL_H
#define AG_ENGINE_INTERNAL_H
#include <pthread.h>
#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>

#include "agents/engine.h"
#include "agents/agent.h"
#include "core/base/buf.h"

#define NBUCKETS 1024 /* the id table's buckets */

enum { K_CHAT = 1, K_GENERATE, K_EMBED, K_ADMIN, K_FORWARD, K_AGENT };
enum { C_START = 1, C_CANCEL, C_CALL, C_RESUME, C_STOP };

typedef struct sync_wait {
    int done, status, oom;
    ag__buf text, thinking;
    ag_result *result;
    ag_agent_result *agent_result;
} sync_wait;

typedef struct ereq {
    struct ereq *hnext, *pnext; /* id bucket; paused list (loop thread only) */
    uint64_t id;
    void *ud;
    int kind, op, paused;
    sync_wait *sw; /* blocking caller, or NULL: events */
    ag__arena ar;  /* the copied parameters */
    union {
        ag_chat_params chat;
        ag_generate_params gen;
        ag_embed_params embed;
        ag_model_params model;
        ag_forward_params fwd;
        struct {
            ag_agent *agent;
            ag_message *msgs;
            size_t n;
            ag_run_options ro;
            int has_ro;
        } agent;
    } p;
    ag_request *req;
    ag_task *task;
} ereq;

typedef struct cmd {
    struct cmd *next;
    int type;
    uint64_t id;
    ereq *r;
    void (*fn)(ag_client *, void *);
    void *ud;
    int *done;
} cmd;

typedef struct ev {
    ag_event pub; /* first: ag_event_free takes its address */
    struct ev *next;
    char *buf; /* the chunk's strings */
    size_t cap, acct;
} ev;

struct ag_engine {
    pthread_mutex_t mu;
    pthread_cond_t ev_cv, done_cv;
    pthread_t th;
    int in_fd, out_fd;
    cmd *in_head, *in_tail, *stop_cmd;
    ev *out_head, *out_tail;
    size_t pending, max_pending;
    int need_resume, resume_posted, no_coalesce;
    int closing, stopped;
    int in_due, out_due; /* an eventfd to write once the mutex is released */
    unsigned inside; /* callers inside a function that may wait */
    ag_engine_stats st;
    uint64_t next_id;
    /* loop thread only */
    struct event_base *base;
    struct event *in_ev;
    struct event *notify_ev; /* notify_delay: the timer that writes out_fd */
    struct timeval notify_tv;
    int notify_armed;
    ag_client *c;
    ereq *buckets[NBUCKETS];
    ereq *paused;
};

/* engine.c: a request into the inbox (0, or the refusal); the mutex
 * released, then the eventfds written that are due */
int ag__eng_submit(ag_engine *e, ereq *r, uint64_t *id);
void ag__eng_unlock_signal(ag_engine *e);
/* a command into the inbox, under the mutex (then ag__eng_unlock_signal) */
void ag__eng_inbox_push(ag_engine *e, cmd *c);
/* 1 on the engine's own thread (where the blocking calls are refused) */
int ag__eng_on_engine_thread(const ag_engine *e);

/* a request of kind for ud, its arena empty; NULL when out of memory */
ereq *ag__eng_ereq_new(int kind, void *ud);
void ag__eng_ereq_free(ereq *r);
/* the caller's parameters copied into a new request (NULL: out of memory) */
ereq *ag__eng_copy_chat(const ag_chat_params *p, void *ud);
ereq *ag__eng_copy_generate(const ag_generate_params *p, void *ud);
ereq *ag__eng_copy_embed(const ag_embed_params *p, void *ud);
ereq *ag__eng_copy_model(const ag_model_params *p, int op, void *ud);
ereq *ag__eng_copy_forward(const ag_forward_params *p, void *ud);
ereq *ag__eng_copy_agent(ag_agent *a, const ag_message *m, size_t n, const ag_run_options *ro, void *ud);

#endif
