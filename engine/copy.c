/* engine/copy.c - the engine's deep copies of a caller's parameters: every
 * string and array a request's parameters point at, copied into the
 * request's arena during the starting call (the engine's thread reads them
 * later, when the caller's may be gone). */
#include "engine/engine_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/mem.h"


static char *cp_str(ag__arena *ar, const char *s, int *oom) {
    if (!s) return NULL;
    char *p = ag__arena_strndup(NULL, ar, s, strlen(s));
    if (!p) *oom = 1;
    return p;
}

static const char *cp_mem(ag__arena *ar, const char *s, size_t n, int *oom) {
    if (!s) return NULL;
    char *p = ag__arena_strndup(NULL, ar, s, n);
    if (!p) *oom = 1;
    return p;
}

static const char *const *cp_strv(ag__arena *ar, const char *const *v, size_t n, int *oom) {
    if (!v || !n) return NULL;
    const char **o = ag__arena_alloc(NULL, ar, n * sizeof *o);
    if (!o) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) o[i] = cp_str(ar, v[i], oom);
    return o;
}

/* Tripwires: the copies below name every field that points at the caller's
 * memory. A field added to one of these public structs (they grow at the
 * end) breaks the build here until its copy is written and the named last
 * field updated. */
#define AG__ENDS_WITH(T, f)                                                                        \
    _Static_assert(sizeof(T) == (offsetof(T, f) + sizeof(((T *)0)->f) + _Alignof(T) - 1) / _Alignof(T) * _Alignof(T), \
                   #T " has a field after " #f ": copy it in engine/engine.c, then name it here")
AG__ENDS_WITH(ag_request_options, tenant);
AG__ENDS_WITH(ag_gen_options, no_stream);
AG__ENDS_WITH(ag_message, tool_name);
AG__ENDS_WITH(ag_chat_params, request);
AG__ENDS_WITH(ag_generate_params, request);
AG__ENDS_WITH(ag_embed_params, request);
AG__ENDS_WITH(ag_model_params, request);
AG__ENDS_WITH(ag_forward_params, request);
AG__ENDS_WITH(ag_run_options, request);

static const ag_request_options *cp_ropts(ag__arena *ar, const ag_request_options *ro, int *oom) {
    if (!ro) return NULL;
    ag_request_options *o = ag__arena_alloc(NULL, ar, sizeof *o);
    if (!o) {
        *oom = 1;
        return NULL;
    }
    *o = *ro;
    o->headers = cp_str(ar, ro->headers, oom);
    o->node = cp_str(ar, ro->node, oom);
    o->session = cp_str(ar, ro->session, oom);
    o->tenant = cp_str(ar, ro->tenant, oom);
    return o;
}

static void cp_gen(ag__arena *ar, ag_gen_options *g, int *oom) {
    g->format = cp_str(ar, g->format, oom);
    g->options_json = cp_str(ar, g->options_json, oom);
    g->keep_alive = cp_str(ar, g->keep_alive, oom);
    g->think = cp_str(ar, g->think, oom);
}

static ag_message *cp_msgs(ag__arena *ar, const ag_message *m, size_t n, int *oom) {
    if (!m || !n) return NULL;
    ag_message *o = ag__arena_alloc(NULL, ar, n * sizeof *o);
    if (!o) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        o[i] = m[i];
        o[i].role = cp_str(ar, m[i].role, oom);
        o[i].content = cp_str(ar, m[i].content, oom);
        o[i].thinking = cp_str(ar, m[i].thinking, oom);
        o[i].images = cp_strv(ar, m[i].images, m[i].n_images, oom);
        o[i].tool_calls_json = cp_str(ar, m[i].tool_calls_json, oom);
        o[i].tool_name = cp_str(ar, m[i].tool_name, oom);
    }
    return o;
}

ereq *ag__eng_ereq_new(int kind, void *ud) {
    ereq *r = calloc(1, sizeof *r);
    if (r) {
        r->kind = kind;
        r->ud = ud;
    }
    return r;
}

void ag__eng_ereq_free(ereq *r) {
    if (!r) return;
    ag__arena_free(NULL, &r->ar);
    free(r);
}

/* r, or NULL (and r freed) when a copy ran out of memory */
static ereq *copied(ereq *r, int oom) {
    if (!oom) return r;
    ag__eng_ereq_free(r);
    return NULL;
}

/* Each returns the copy, or NULL (out of memory). */
ereq *ag__eng_copy_chat(const ag_chat_params *p, void *ud) {
    ereq *r = ag__eng_ereq_new(K_CHAT, ud);
    if (!r) return NULL;
    int oom = 0;
    ag_chat_params *o = &r->p.chat;
    *o = *p;
    o->model = cp_str(&r->ar, p->model, &oom);
    o->messages = cp_msgs(&r->ar, p->messages, p->n_messages, &oom);
    o->tools_json = cp_str(&r->ar, p->tools_json, &oom);
    cp_gen(&r->ar, &o->gen, &oom);
    o->request = cp_ropts(&r->ar, p->request, &oom);
    return copied(r, oom);
}

ereq *ag__eng_copy_generate(const ag_generate_params *p, void *ud) {
    ereq *r = ag__eng_ereq_new(K_GENERATE, ud);
    if (!r) return NULL;
    int oom = 0;
    ag_generate_params *o = &r->p.gen;
    *o = *p;
    o->model = cp_str(&r->ar, p->model, &oom);
    o->prompt = cp_str(&r->ar, p->prompt, &oom);
    o->suffix = cp_str(&r->ar, p->suffix, &oom);
    o->system = cp_str(&r->ar, p->system, &oom);
    o->template_ = cp_str(&r->ar, p->template_, &oom);
    o->images = cp_strv(&r->ar, p->images, p->n_images, &oom);
    cp_gen(&r->ar, &o->gen, &oom);
    o->request = cp_ropts(&r->ar, p->request, &oom);
    return copied(r, oom);
}

ereq *ag__eng_copy_embed(const ag_embed_params *p, void *ud) {
    ereq *r = ag__eng_ereq_new(K_EMBED, ud);
    if (!r) return NULL;
    int oom = 0;
    ag_embed_params *o = &r->p.embed;
    *o = *p;
    o->model = cp_str(&r->ar, p->model, &oom);
    o->inputs = cp_strv(&r->ar, p->inputs, p->n_inputs, &oom);
    o->options_json = cp_str(&r->ar, p->options_json, &oom);
    o->keep_alive = cp_str(&r->ar, p->keep_alive, &oom);
    o->request = cp_ropts(&r->ar, p->request, &oom);
    return copied(r, oom);
}

ereq *ag__eng_copy_model(const ag_model_params *p, int op, void *ud) {
    ereq *r = ag__eng_ereq_new(K_ADMIN, ud);
    if (!r) return NULL;
    int oom = 0;
    r->op = op;
    ag_model_params *o = &r->p.model;
    if (p) {
        *o = *p;
        o->model = cp_str(&r->ar, p->model, &oom);
        o->destination = cp_str(&r->ar, p->destination, &oom);
        o->request = cp_ropts(&r->ar, p->request, &oom);
    }
    return copied(r, oom);
}

ereq *ag__eng_copy_forward(const ag_forward_params *p, void *ud) {
    ereq *r = ag__eng_ereq_new(K_FORWARD, ud);
    if (!r) return NULL;
    int oom = 0;
    ag_forward_params *o = &r->p.fwd;
    *o = *p;
    o->method = cp_str(&r->ar, p->method, &oom);
    o->path = cp_str(&r->ar, p->path, &oom);
    o->body = cp_mem(&r->ar, p->body, p->body_len, &oom);
    o->model = cp_str(&r->ar, p->model, &oom);
    o->node = cp_str(&r->ar, p->node, &oom);
    o->request = cp_ropts(&r->ar, p->request, &oom);
    return copied(r, oom);
}

ereq *ag__eng_copy_agent(ag_agent *a, const ag_message *m, size_t n, const ag_run_options *ro, void *ud) {
    ereq *r = ag__eng_ereq_new(K_AGENT, ud);
    if (!r) return NULL;
    int oom = 0;
    r->p.agent.agent = a;
    r->p.agent.msgs = cp_msgs(&r->ar, m, n, &oom);
    r->p.agent.n = n;
    if (ro) {
        ag_run_options *o = &r->p.agent.ro;
        *o = *ro;
        o->options_json = cp_str(&r->ar, ro->options_json, &oom);
        o->options_replace = cp_str(&r->ar, ro->options_replace, &oom);
        o->system = cp_str(&r->ar, ro->system, &oom);
        o->request = cp_ropts(&r->ar, ro->request, &oom);
        r->p.agent.has_ro = 1;
    }
    return copied(r, oom);
}

