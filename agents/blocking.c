/* agents/blocking.c - the agents' blocking calls (a run waited for on the
 * caller's loop), results that outlive their callback (ag_agent_result_dup),
 * and the health check of a client or a node. */
#include "agent_internal.h" /* (private: this folder's, not include/agents/) */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* ---- blocking ---- */
typedef struct sync_state {
    int done, status;
    ag_agent_result *copy;
    void (*on_chunk)(ag_task *, const ag_chunk *, void *);
    void *ud;
} sync_state;

static void s_chunk(ag_task *t, const ag_chunk *c, void *ud) {
    sync_state *s = ud;
    if (s->on_chunk) s->on_chunk(t, c, s->ud);
}
static void s_done(ag_task *t, const ag_agent_result *r, void *ud) {
    (void)t;
    sync_state *s = ud;
    s->done = 1;
    s->status = r->status;
    s->copy = ag_agent_result_dup(r);
}

static int wait_sync(ag_agent *a, sync_state *s, int rc, ag_agent_result **out) {
    if (rc == 0) rc = ag__client_wait(a->c, &s->done) ? s->status : AG_ESHUTDOWN;
    if (out) *out = s->copy;
    else ag_agent_result_free(s->copy);
    return rc;
}

int ag_agent_run_sync(ag_agent *a, const ag_message *msgs, size_t n,
                      void (*on_chunk)(ag_task *, const ag_chunk *, void *), void *ud,
                      ag_agent_result **out) {
    sync_state s = {0};
    s.on_chunk = on_chunk;
    s.ud = ud;
    ag_agent_callbacks cb = {s_chunk, s_done, &s};
    if (out) *out = NULL;
    return wait_sync(a, &s, ag_agent_run(a, msgs, n, &cb, NULL), out);
}

int ag_agent_full_response(ag_agent *a, const char *prompt, ag_agent_result **out) {
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    return ag_agent_run_sync(a, &m, 1, NULL, NULL, out);
}

int ag_agent_get_full_response(ag_agent *a, const ag_message *msgs, size_t n, const ag_run_options *ro,
                               ag_agent_result **out) {
    sync_state s = {0};
    ag_agent_callbacks cb = {s_chunk, s_done, &s};
    if (out) *out = NULL;
    return wait_sync(a, &s, ag_agent_run_with(a, msgs, n, ro, &cb, NULL), out);
}

int ag_agent_embed_sync(ag_agent *a, const char *const *texts, size_t n, ag_agent_result **out) {
    sync_state s = {0};
    ag_agent_callbacks cb = {s_chunk, s_done, &s};
    if (out) *out = NULL;
    return wait_sync(a, &s, ag_agent_embed_texts(a, texts, n, &cb, NULL), out);
}

/* ---- results that outlive the callback ---- */
ag_agent_result *ag_agent_result_dup(const ag_agent_result *r) {
    ag_agent_result *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    *o = *r;
    o->error = ag__strdup(NULL, r->error);
    o->node = ag__strdup(NULL, r->node);
    o->tool_log = ag__strdup(NULL, r->tool_log);
    if (r->text) {
        char *x = malloc(r->text_len + 1);
        if (x) {
            memcpy(x, r->text, r->text_len);
            x[r->text_len] = 0;
        }
        o->text = x;
    }
    if (r->thinking) {
        char *x = malloc(r->thinking_len + 1);
        if (x) {
            memcpy(x, r->thinking, r->thinking_len);
            x[r->thinking_len] = 0;
        }
        o->thinking = x;
    }
    if (r->n_blocks > 0) {
        ag_code_block *b = calloc((size_t)r->n_blocks, sizeof *b);
        for (int i = 0; b && i < r->n_blocks; i++) {
            b[i].lang = ag__strdup(NULL, r->blocks[i].lang);
            b[i].code = ag__strdup(NULL, r->blocks[i].code);
        }
        o->blocks = b;
    }
    if (r->n_sources > 0) {
        ag_source *s = calloc((size_t)r->n_sources, sizeof *s);
        for (int i = 0; s && i < r->n_sources; i++) {
            s[i] = r->sources[i];
            s[i].name = ag__strdup(NULL, r->sources[i].name);
            s[i].text = ag__strdup(NULL, r->sources[i].text);
        }
        o->sources = s;
    }
    if (r->n_embeddings && r->dim) {
        float *v = malloc(r->n_embeddings * r->dim * sizeof *v);
        if (v) memcpy(v, r->embeddings, r->n_embeddings * r->dim * sizeof *v);
        o->embeddings = v;
    }
    return o;
}

void ag_agent_result_free(ag_agent_result *r) {
    if (!r) return;
    free((char *)r->error);
    free((char *)r->node);
    free((char *)r->tool_log);
    free((char *)r->text);
    free((char *)r->thinking);
    if (r->blocks) ag_code_blocks_free((ag_code_block *)r->blocks, r->n_blocks);
    for (int i = 0; r->sources && i < r->n_sources; i++) {
        free((char *)r->sources[i].name);
        free((char *)r->sources[i].text);
    }
    free((void *)r->sources);
    free((void *)r->embeddings);
    free(r);
}

/* ---- health ---- */
typedef struct health {
    void (*done)(int, const char *, double, void *);
    void *ud;
    int64_t t0;
    const ag_alloc_funcs *al;
} health;

static void health_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    health *h = ud;
    double ms = (double)(ag__now_ns() - h->t0) / 1e6;
    h->done(res->status == 0 && res->version, res->version ? res->version : "", ms, h->ud);
    ag__free(h->al, h);
}

int ag_health_check(ag_client *c, void (*done)(int ok, const char *version, double rtt_ms, void *ud),
                    void *ud) {
    if (!c || !done) return AG_EINVAL;
    const ag_alloc_funcs *al = ag__client_allocator(c);
    health *h = ag__calloc_n(al, 1, sizeof *h);
    if (!h) return AG_ENOMEM;
    h->al = al;
    h->done = done;
    h->ud = ud;
    h->t0 = ag__now_ns();
    ag_callbacks cb = {NULL, health_done, h};
    int rc = ag_admin(c, AG_OP_VERSION, NULL, &cb, NULL);
    if (rc) ag__free(al, h);
    return rc;
}


int ag_node_health_check(const char *host, double timeout, ag_node_health *out) {
    ag_node_health dummy;
    if (!out) out = &dummy;
    memset(out, 0, sizeof *out);
    if (timeout <= 0) timeout = 2;
    ag_client_options co = {.host = host, .connect_timeout = timeout, .first_byte_timeout = timeout,
                            .idle_timeout = timeout};
    int err = 0;
    int64_t t0 = ag__now_ns();
    ag_client *c = ag_client_new(NULL, &co, &err);
    if (!c) {
        out->status = err;
        snprintf(out->error, sizeof out->error, "%s", ag_strerror(err));
        return 0;
    }
    ag_request_options ro = {.deadline = timeout};
    ag_model_params mp = {.request = &ro};
    ag_sync_out so;
    int rc = ag_admin_sync(c, AG_OP_VERSION, &mp, NULL, NULL, &so);
    out->rtt_ms = (double)(ag__now_ns() - t0) / 1e6;
    out->status = rc;
    out->up = rc == 0;
    if (rc == 0 && so.result && so.result->version)
        snprintf(out->version, sizeof out->version, "%s", so.result->version);
    else if (rc)
        snprintf(out->error, sizeof out->error, "%s",
                 so.result && so.result->error ? so.result->error : ag_strerror(rc));
    ag_sync_out_free(&so);
    ag_client_free(c);
    return out->up;
}
