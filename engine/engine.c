/* engine/engine.c - a client on a thread of its own, for any thread and
 * any event loop (agents/engine.h).
 *
 * Two queues under one mutex. The inbox carries commands (start, cancel,
 * call, resume, stop) from any thread to the engine's loop, which watches an
 * eventfd for them. The outbox carries events from the loop to whoever takes
 * them; its eventfd is readable exactly while the outbox is not empty (written
 * on the empty -> non-empty step, read on the non-empty -> empty one, both
 * under the mutex). Parameters are deep-copied into an arena per request at
 * the starting call; the loop's thread is the only one that touches a
 * request after that, until its completion is published under the mutex. */
#include "agents/engine.h"

#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "agents/error.h"
#include "core/base/buf.h"
#include "core/base/mem.h"

#define DEFAULT_MAX_PENDING (4u << 20)

#include "engine/engine_internal.h"

/* ---- the two queues ---- */

static void fd_signal(int fd) {
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void fd_drain(int fd) {
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* The eventfds are written after the mutex is released (unlock_signal), so
 * that the woken thread does not find it still held. A write can then land
 * after the queue was emptied again: the reader then finds nothing, drains the
 * fd and goes back to waiting (a spurious wake-up, never a lost one). */
static void maybe_resume(ag_engine *e);

void ag__eng_unlock_signal(ag_engine *e) {
    int in = e->in_due, out = e->out_due;
    e->in_due = e->out_due = 0;
    pthread_mutex_unlock(&e->mu);
    if (in) fd_signal(e->in_fd);
    if (out && e->notify_ev && ag__eng_on_engine_thread(e)) {
        /* notify_delay: one write for the events of a short window (the
         * timer belongs to the loop: only its thread arms it) */
        if (!e->notify_armed) {
            e->notify_armed = 1;
            evtimer_add(e->notify_ev, &e->notify_tv);
        }
    } else if (out) {
        fd_signal(e->out_fd);
    }
}

static void notify_cb(evutil_socket_t fd, short what, void *ud) {
    (void)fd;
    (void)what;
    ag_engine *e = ud;
    e->notify_armed = 0;
    fd_signal(e->out_fd);
}

/* under the mutex; then unlock_signal */
void ag__eng_inbox_push(ag_engine *e, cmd *c) {
    int was_empty = !e->in_head;
    c->next = NULL;
    if (e->in_tail) e->in_tail->next = c;
    else e->in_head = c;
    e->in_tail = c;
    if (was_empty) e->in_due = 1;
}

/* under the mutex; then unlock_signal */
static void outbox_push(ag_engine *e, ev *v) {
    int was_empty = !e->out_head;
    v->next = NULL;
    if (e->out_tail) e->out_tail->next = v;
    else e->out_head = v;
    e->out_tail = v;
    e->pending += v->acct;
    e->st.queued_events++;
    e->st.events++;
    if (was_empty) e->out_due = 1;
    pthread_cond_signal(&e->ev_cv);
}

static void ev_free(ev *v) {
    if (!v) return;
    ag_result_free((ag_result *)v->pub.result);
    ag_agent_result_free((ag_agent_result *)v->pub.agent_result);
    free(v->buf);
    free(v);
}

void ag_event_free(ag_event *e) {
    ev_free((ev *)e);
}

/* ---- the loop's side ---- */

static ereq **bucket(ag_engine *e, uint64_t id) {
    return &e->buckets[id % NBUCKETS];
}

static void live_add(ag_engine *e, ereq *r) {
    ereq **b = bucket(e, r->id);
    r->hnext = *b;
    *b = r;
}

static ereq *live_find(ag_engine *e, uint64_t id) {
    for (ereq *r = *bucket(e, id); r; r = r->hnext)
        if (r->id == id) return r;
    return NULL;
}

static void live_remove(ag_engine *e, ereq *r) {
    for (ereq **pp = bucket(e, r->id); *pp; pp = &(*pp)->hnext)
        if (*pp == r) {
            *pp = r->hnext;
            break;
        }
    if (r->paused)
        for (ereq **pp = &e->paused; *pp; pp = &(*pp)->pnext)
            if (*pp == r) {
                *pp = r->pnext;
                break;
            }
}

typedef struct ectx {
    ag_engine *e;
    ereq *r;
} ectx;

static int coalescible(int kind) {
    return kind == AG_CHUNK_CONTENT || kind == AG_CHUNK_THINKING || kind == AG_CHUNK_BODY;
}

/* a chunk, for the events consumer: merged into the queued tail when it can be */
static void deliver_chunk(ag_engine *e, ereq *r, const ag_chunk *ch) {
    if (r->sw) {
        sync_wait *s = r->sw; /* only this thread writes it until done */
        if (ch->kind == AG_CHUNK_CONTENT) s->oom |= ag__buf_add(NULL, &s->text, ch->text, ch->len) != 0;
        else if (ch->kind == AG_CHUNK_THINKING)
            s->oom |= ag__buf_add(NULL, &s->thinking, ch->text, ch->len) != 0;
        return;
    }
    size_t need = ch->len + ch->name_len + ch->arguments_len + (ch->digest ? strlen(ch->digest) : 0) + 4;
    pthread_mutex_lock(&e->mu);
    ev *t = e->out_tail;
    if (!e->no_coalesce && coalescible(ch->kind) && t && t->pub.kind == AG_EVENT_CHUNK &&
        t->pub.id == r->id && t->pub.chunk.kind == ch->kind && t->pub.chunk.index == ch->index) {
        size_t len = t->pub.chunk.len;
        if (len + ch->len + 1 > t->cap) {
            size_t nc = t->cap * 2 > len + ch->len + 1 ? t->cap * 2 : len + ch->len + 1;
            char *nb = realloc(t->buf, nc);
            if (!nb) goto fresh;
            t->buf = nb;
            t->cap = nc;
        }
        memcpy(t->buf + len, ch->text, ch->len);
        t->buf[len + ch->len] = 0;
        t->pub.chunk.text = t->buf;
        t->pub.chunk.len = len + ch->len;
        t->acct += ch->len;
        e->pending += ch->len;
        e->st.merged++;
        goto check;
    }
fresh:
    ag__eng_unlock_signal(e);
    {
        ev *v = calloc(1, sizeof *v);
        char *buf = malloc(need < 64 ? 64 : need);
        if (!v || !buf) {
            free(v);
            free(buf);
            /* out of memory: the request ends rather than losing text */
            if (r->req) ag_request_cancel(r->req);
            else if (r->task) ag_task_cancel(r->task);
            return;
        }
        v->buf = buf;
        v->cap = need < 64 ? 64 : need;
        v->pub.kind = AG_EVENT_CHUNK;
        v->pub.id = r->id;
        v->pub.ud = r->ud;
        v->pub.chunk = *ch;
        char *w = buf;
#define PUT(field, n)                                                                              \
    do {                                                                                           \
        if (ch->field) {                                                                           \
            memcpy(w, ch->field, n);                                                               \
            w[n] = 0;                                                                              \
            v->pub.chunk.field = w;                                                                \
            w += (n) + 1;                                                                          \
        }                                                                                          \
    } while (0)
        PUT(text, ch->len);
        if (!ch->text) { /* keep merged text growing from the buffer's start */
            buf[0] = 0;
            v->pub.chunk.text = NULL;
        }
        PUT(name, ch->name_len);
        PUT(arguments_json, ch->arguments_len);
        PUT(digest, strlen(ch->digest));
#undef PUT
        v->acct = ch->len + ch->name_len + ch->arguments_len;
        pthread_mutex_lock(&e->mu);
        outbox_push(e, v);
    }
check:
    if (e->pending > e->max_pending && r->req && !r->paused) {
        r->paused = 1;
        e->need_resume = 1;
        e->st.paused++;
        e->st.pauses++;
        ag__eng_unlock_signal(e);
        r->pnext = e->paused;
        e->paused = r;
        ag_request_pause(r->req);
        return;
    }
    ag__eng_unlock_signal(e);
}

/* the end: an event, or the blocked caller woken; the request is forgotten */
static void deliver_done(ag_engine *e, ereq *r, const ag_result *res, const ag_agent_result *ares,
                         int status) {
    live_remove(e, r);
    pthread_mutex_lock(&e->mu);
    e->st.active--;
    if (r->paused) e->st.paused--;
    ag__eng_unlock_signal(e);
    if (r->sw) {
        sync_wait *s = r->sw;
        ag_result *rc = res ? ag_result_dup(res) : NULL;
        ag_agent_result *ac = ares ? ag_agent_result_dup(ares) : NULL;
        pthread_mutex_lock(&e->mu);
        s->result = rc;
        s->agent_result = ac;
        s->oom |= (res && !rc) || (ares && !ac);
        s->status = status;
        s->done = 1;
        pthread_cond_broadcast(&e->done_cv);
        ag__eng_unlock_signal(e);
        ag__eng_ereq_free(r);
        return;
    }
    ev *v = calloc(1, sizeof *v);
    if (v) {
        v->pub.kind = AG_EVENT_DONE;
        v->pub.id = r->id;
        v->pub.ud = r->ud;
        v->pub.status = status;
        if (res) {
            v->pub.result = ag_result_dup(res);
            if (!v->pub.result) v->pub.status = AG_ENOMEM;
        }
        if (ares) {
            v->pub.agent_result = ag_agent_result_dup(ares);
            if (!v->pub.agent_result) v->pub.status = AG_ENOMEM;
        }
        pthread_mutex_lock(&e->mu);
        outbox_push(e, v);
        ag__eng_unlock_signal(e);
    }
    /* else: out of memory with nowhere to say so; the consumer never hears
     * of this id (the only way an accepted request goes unanswered) */
    ag__eng_ereq_free(r);
}

static void on_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    (void)req;
    ectx *x = ud;
    deliver_chunk(x->e, x->r, ch);
}

static void on_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    ectx x = *(ectx *)ud;
    deliver_done(x.e, x.r, res, NULL, res->status);
}

static void on_task_chunk(ag_task *t, const ag_chunk *ch, void *ud) {
    (void)t;
    ectx *x = ud;
    deliver_chunk(x->e, x->r, ch);
}

static void on_task_done(ag_task *t, const ag_agent_result *res, void *ud) {
    (void)t;
    ectx x = *(ectx *)ud;
    deliver_done(x.e, x.r, NULL, res, res->status);
}

/* where the callbacks find (engine, request): inside the request's arena */
static ectx *ctx_of(ag_engine *e, ereq *r) {
    ectx *x = ag__arena_alloc(NULL, &r->ar, sizeof *x);
    if (x) {
        x->e = e;
        x->r = r;
    }
    return x;
}

static void start(ag_engine *e, ereq *r) {
    ectx *x = ctx_of(e, r);
    int rc = AG_ENOMEM;
    live_add(e, r);
    if (x) {
        ag_callbacks cb = {on_chunk, on_done, x};
        switch (r->kind) {
        case K_CHAT: rc = ag_chat(e->c, &r->p.chat, &cb, &r->req); break;
        case K_GENERATE: rc = ag_generate(e->c, &r->p.gen, &cb, &r->req); break;
        case K_EMBED: rc = ag_embed(e->c, &r->p.embed, &cb, &r->req); break;
        case K_ADMIN: rc = ag_admin(e->c, r->op, &r->p.model, &cb, &r->req); break;
        case K_FORWARD: rc = ag_forward(e->c, &r->p.fwd, &cb, &r->req); break;
        case K_AGENT: {
            ag_agent_callbacks acb = {on_task_chunk, on_task_done, x};
            rc = ag_agent_run_with(r->p.agent.agent, r->p.agent.msgs, r->p.agent.n,
                                   r->p.agent.has_ro ? &r->p.agent.ro : NULL, &acb, &r->task);
            break;
        }
        }
    }
    if (rc != 0) {
        /* refused at the start: the one completion says why */
        if (r->kind == K_AGENT) {
            ag_agent_result ar;
            memset(&ar, 0, sizeof ar);
            ar.status = rc;
            ar.error = ag_strerror(rc);
            deliver_done(e, r, NULL, &ar, rc);
        } else {
            ag_result res;
            memset(&res, 0, sizeof res);
            res.status = rc;
            res.error = ag_strerror(rc);
            res.timing.ttft_ns = -1;
            res.server.total_duration = res.server.load_duration = res.server.prompt_eval_count =
                res.server.prompt_eval_duration = res.server.eval_count = res.server.eval_duration = -1;
            deliver_done(e, r, &res, NULL, rc);
        }
    }
}

static void freed(void *ud) {
    ag_engine *e = ud;
    e->c = NULL;
    event_base_loopbreak(e->base);
}

static void inbox_cb(evutil_socket_t fd, short what, void *ud) {
    (void)fd;
    (void)what;
    ag_engine *e = ud;
    pthread_mutex_lock(&e->mu);
    cmd *list = e->in_head;
    e->in_head = e->in_tail = NULL;
    fd_drain(e->in_fd);
    ag__eng_unlock_signal(e);
    while (list) {
        cmd *c = list;
        list = c->next;
        switch (c->type) {
        case C_START:
            if (e->c) start(e, c->r);
            else ag__eng_ereq_free(c->r);
            break;
        case C_CANCEL: {
            ereq *r = e->c ? live_find(e, c->id) : NULL;
            if (r && r->req) ag_request_cancel(r->req);
            else if (r && r->task) ag_task_cancel(r->task);
            break;
        }
        case C_CALL:
            if (e->c) c->fn(e->c, c->ud);
            pthread_mutex_lock(&e->mu);
            *c->done = 1;
            pthread_cond_broadcast(&e->done_cv);
            ag__eng_unlock_signal(e);
            break;
        case C_RESUME: {
            pthread_mutex_lock(&e->mu);
            e->resume_posted = 0;
            for (ereq *p = e->paused; p; p = p->pnext) e->st.paused--;
            ag__eng_unlock_signal(e);
            ereq *p = e->paused;
            e->paused = NULL;
            for (; p; p = p->pnext) {
                p->paused = 0;
                ag_request_resume(p->req);
            }
            break;
        }
        case C_STOP:
            /* every pending request completes (ESHUTDOWN); the loop ends once
             * the client is gone */
            if (e->c) ag_client_free_notify(e->c, freed, e);
            break;
        }
        free(c);
    }
}

static void *thread_main(void *ud) {
    ag_engine *e = ud;
    event_base_loop(e->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- any thread's side ---- */

ag_engine *ag_engine_new(const ag_engine_options *o, int *err) {
    int rc = AG_ENOMEM;
    ag_engine *e = calloc(1, sizeof *e);
    if (!e) goto fail;
    e->in_fd = e->out_fd = -1;
    e->max_pending = o && o->max_pending ? o->max_pending : DEFAULT_MAX_PENDING;
    e->no_coalesce = o ? o->no_coalesce : 0;
    e->stop_cmd = calloc(1, sizeof *e->stop_cmd);
    if (!e->stop_cmd) goto fail;
    e->stop_cmd->type = C_STOP;
    e->in_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e->out_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->in_fd < 0 || e->out_fd < 0) goto fail;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->ev_cv, NULL);
    pthread_cond_init(&e->done_cv, NULL);
    e->base = event_base_new();
    if (!e->base) goto fail_sync;
    e->in_ev = event_new(e->base, e->in_fd, EV_READ | EV_PERSIST, inbox_cb, e);
    if (!e->in_ev || event_add(e->in_ev, NULL) < 0) goto fail_sync;
    if (o && o->notify_delay > 0) {
        e->notify_ev = evtimer_new(e->base, notify_cb, e);
        if (!e->notify_ev) goto fail_sync;
        e->notify_tv.tv_sec = (time_t)o->notify_delay;
        e->notify_tv.tv_usec = (suseconds_t)((o->notify_delay - (double)e->notify_tv.tv_sec) * 1e6);
    }
    if (o && o->pool) e->c = ag_pool_new(e->base, o->pool, &rc);
    else e->c = ag_client_new(e->base, o ? o->client : NULL, &rc);
    if (!e->c) goto fail_sync;
    /* the client and loop are handed to the thread: pthread_create orders
     * everything written above before anything the thread does */
    sigset_t all, old;
    sigfillset(&all);
    /* the engine's thread takes no signals: the program's handlers run on
     * its own threads, and a write to a closed socket gives EPIPE there */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = pthread_create(&e->th, NULL, thread_main, e) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        rc = AG_ENOMEM;
        ag_client_free(e->c);
        goto fail_sync;
    }
    if (err) *err = 0;
    return e;
fail_sync:
    if (e->in_ev) event_free(e->in_ev);
    if (e->notify_ev) event_free(e->notify_ev);
    if (e->base) event_base_free(e->base);
    pthread_cond_destroy(&e->done_cv);
    pthread_cond_destroy(&e->ev_cv);
    pthread_mutex_destroy(&e->mu);
fail:
    if (e) {
        if (e->in_fd >= 0) close(e->in_fd);
        if (e->out_fd >= 0) close(e->out_fd);
        free(e->stop_cmd);
        free(e);
    }
    if (err) *err = rc;
    return NULL;
}

int ag__eng_on_engine_thread(const ag_engine *e) {
    return pthread_equal(pthread_self(), e->th);
}

void ag_engine_stop(ag_engine *e) {
    if (!e || ag__eng_on_engine_thread(e)) return;
    pthread_mutex_lock(&e->mu);
    if (e->closing) { /* stopping or stopped: wait for the one who stops it */
        while (!e->stopped) pthread_cond_wait(&e->done_cv, &e->mu);
        ag__eng_unlock_signal(e);
        return;
    }
    e->closing = 1;
    pthread_cond_broadcast(&e->ev_cv);
    ag__eng_inbox_push(e, e->stop_cmd); /* made at the start: stopping needs no memory */
    e->stop_cmd = NULL;
    ag__eng_unlock_signal(e);
    pthread_join(e->th, NULL);
    /* the client is gone; commands that came after the stop never start */
    pthread_mutex_lock(&e->mu);
    e->stopped = 1;
    cmd *list = e->in_head;
    e->in_head = e->in_tail = NULL;
    pthread_cond_broadcast(&e->done_cv);
    pthread_cond_broadcast(&e->ev_cv);
    ag__eng_unlock_signal(e);
    while (list) {
        cmd *c = list;
        list = c->next;
        ag__eng_ereq_free(c->r);
        free(c);
    }
}

void ag_engine_free(ag_engine *e) {
    if (!e || ag__eng_on_engine_thread(e)) return;
    ag_engine_stop(e);
    /* threads woken by the stop leave their calls before the memory goes */
    pthread_mutex_lock(&e->mu);
    while (e->inside) pthread_cond_wait(&e->done_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    for (ev *v = e->out_head; v;) {
        ev *n = v->next;
        ev_free(v);
        v = n;
    }
    free(e->stop_cmd);
    event_free(e->in_ev);
    if (e->notify_ev) event_free(e->notify_ev);
    event_base_free(e->base);
    close(e->in_fd);
    close(e->out_fd);
    pthread_cond_destroy(&e->done_cv);
    pthread_cond_destroy(&e->ev_cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

int ag_engine_fd(const ag_engine *e) {
    return e ? e->out_fd : -1;
}

ag_client *ag_engine_client(ag_engine *e) {
    return e ? e->c : NULL;
}

/* hands r to the loop; 0 or an error (r is then freed) */
int ag__eng_submit(ag_engine *e, ereq *r, uint64_t *id) {
    if (!r) return AG_ENOMEM;
    cmd *c = calloc(1, sizeof *c);
    if (!c) {
        ag__eng_ereq_free(r);
        return AG_ENOMEM;
    }
    c->type = C_START;
    c->r = r;
    pthread_mutex_lock(&e->mu);
    if (e->closing) {
        ag__eng_unlock_signal(e);
        ag__eng_ereq_free(r);
        free(c);
        return AG_ESHUTDOWN;
    }
    r->id = ++e->next_id;
    e->st.active++;
    if (id) *id = r->id;
    ag__eng_inbox_push(e, c);
    ag__eng_unlock_signal(e);
    return 0;
}

int ag_engine_chat(ag_engine *e, const ag_chat_params *p, void *ud, uint64_t *id) {
    if (!e || !p) return AG_EINVAL;
    return ag__eng_submit(e, ag__eng_copy_chat(p, ud), id);
}

int ag_engine_generate(ag_engine *e, const ag_generate_params *p, void *ud, uint64_t *id) {
    if (!e || !p) return AG_EINVAL;
    return ag__eng_submit(e, ag__eng_copy_generate(p, ud), id);
}

int ag_engine_embed(ag_engine *e, const ag_embed_params *p, void *ud, uint64_t *id) {
    if (!e || !p) return AG_EINVAL;
    return ag__eng_submit(e, ag__eng_copy_embed(p, ud), id);
}

int ag_engine_admin(ag_engine *e, int op, const ag_model_params *p, void *ud, uint64_t *id) {
    if (!e) return AG_EINVAL;
    return ag__eng_submit(e, ag__eng_copy_model(p, op, ud), id);
}

int ag_engine_forward(ag_engine *e, const ag_forward_params *p, void *ud, uint64_t *id) {
    if (!e || !p) return AG_EINVAL;
    return ag__eng_submit(e, ag__eng_copy_forward(p, ud), id);
}

int ag_engine_agent_run(ag_engine *e, ag_agent *a, const ag_message *msgs, size_t n,
                        const ag_run_options *ro, void *ud, uint64_t *id) {
    if (!e || !a || (n && !msgs)) return AG_EINVAL;
    return ag__eng_submit(e, ag__eng_copy_agent(a, msgs, n, ro, ud), id);
}

void ag_engine_cancel(ag_engine *e, uint64_t id) {
    if (!e || !id) return;
    cmd *c = calloc(1, sizeof *c);
    if (!c) return;
    c->type = C_CANCEL;
    c->id = id;
    pthread_mutex_lock(&e->mu);
    if (e->closing) free(c);
    else ag__eng_inbox_push(e, c);
    ag__eng_unlock_signal(e);
}

/* deadline for a wait of ms milliseconds */
static struct timespec after_ms(int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int ag_engine_next(ag_engine *e, ag_event **out, int timeout_ms) {
    if (!e || !out) return AG_EINVAL;
    *out = NULL;
    pthread_mutex_lock(&e->mu);
    if (!e->out_head && timeout_ms != 0 && !e->closing) {
        struct timespec until = after_ms(timeout_ms > 0 ? timeout_ms : 0);
        e->inside++;
        while (!e->out_head && !e->closing) {
            if (timeout_ms < 0) pthread_cond_wait(&e->ev_cv, &e->mu);
            else if (pthread_cond_timedwait(&e->ev_cv, &e->mu, &until) == ETIMEDOUT)
                break;
        }
        if (--e->inside == 0 && e->stopped) pthread_cond_broadcast(&e->done_cv);
    }
    ev *v = e->out_head;
    int rc = 0, drain = 0;
    if (v && !e->closing) {
        e->out_head = v->next;
        if (!e->out_head) {
            e->out_tail = NULL;
            drain = 1;
        }
        e->pending -= v->acct;
        e->st.queued_events--;
        maybe_resume(e);
        v->next = NULL;
        *out = &v->pub;
        rc = 1;
    } else if (e->closing) {
        rc = AG_ESHUTDOWN;
    } else {
        drain = 1; /* a late write for an event already taken */
    }
    ag__eng_unlock_signal(e);
    if (drain) {
        /* outside the lock (the producer is not kept waiting on a system
         * call); an event pushed meanwhile may have had its write eaten by
         * this read: say it again */
        fd_drain(e->out_fd);
        pthread_mutex_lock(&e->mu);
        if (e->out_head && !e->closing) e->out_due = 1;
        ag__eng_unlock_signal(e);
    }
    return rc;
}

/* after taking events, under the mutex: the resume the consumer owes */
static void maybe_resume(ag_engine *e) {
    if (e->need_resume && e->pending <= e->max_pending / 2 && !e->resume_posted) {
        cmd *c = calloc(1, sizeof *c);
        if (c) {
            c->type = C_RESUME;
            e->need_resume = 0;
            e->resume_posted = 1;
            ag__eng_inbox_push(e, c);
        }
    }
}

size_t ag_engine_take_text(ag_engine *e, void *buf, size_t size) {
    if (!e || !buf) return 0;
    unsigned char *out = buf;
    size_t used = 0;
    ev *done = NULL, **tail = &done;
    pthread_mutex_lock(&e->mu);
    if (e->closing) {
        ag__eng_unlock_signal(e);
        return 0;
    }
    for (ev *v = e->out_head; v; v = e->out_head) {
        int k = v->pub.chunk.kind;
        if (v->pub.kind != AG_EVENT_CHUNK || (k != AG_CHUNK_CONTENT && k != AG_CHUNK_THINKING)) break;
        size_t len = v->pub.chunk.len, rec = (16 + len + 7) & ~(size_t)7;
        if (used + rec > size || len > UINT32_MAX) break;
        uint64_t ud = (uint64_t)(uintptr_t)v->pub.ud;
        uint32_t l32 = (uint32_t)len;
        uint16_t k16 = (uint16_t)k, zero = 0;
        memcpy(out + used, &ud, 8); /* x86-64 and aarch64 Linux: little-endian */
        memcpy(out + used + 8, &l32, 4);
        memcpy(out + used + 12, &k16, 2);
        memcpy(out + used + 14, &zero, 2);
        if (len) memcpy(out + used + 16, v->pub.chunk.text, len);
        used += rec;
        e->out_head = v->next;
        e->pending -= v->acct;
        e->st.queued_events--;
        v->next = NULL;
        *tail = v; /* freed outside the lock */
        tail = &v->next;
    }
    int drain = 0;
    if (!e->out_head) {
        e->out_tail = NULL;
        drain = 1;
    }
    maybe_resume(e);
    ag__eng_unlock_signal(e);
    if (drain) {
        fd_drain(e->out_fd);
        pthread_mutex_lock(&e->mu);
        if (e->out_head && !e->closing) e->out_due = 1;
        ag__eng_unlock_signal(e);
    }
    while (done) {
        ev *n = done->next;
        ev_free(done);
        done = n;
    }
    return used;
}

void ag_engine_get_stats(ag_engine *e, ag_engine_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    out->pending_bytes = e->pending;
    ag__eng_unlock_signal(e);
}
