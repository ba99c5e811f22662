/* core/backend.c - a client on a backend of the user's own (agents/backend.h):
 * the request machinery of core/client.c (contract, timing, deadlines,
 * hooks, retries with backoff) with the user's functions where a node would
 * be. */
#include "agents/backend.h"
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

typedef struct ag__bclient {
    ag_client base;
    ag_backend b;
    char name[128];
} ag__bclient;

static ag__bclient *bc_of(const ag_client *c) {
    return (ag__bclient *)c;
}

static int b_submit(ag_client *c, ag_request *r) {
    ag__bclient *bc = bc_of(c);
    ag_backend_call call;
    memset(&call, 0, sizeof call);
    const void *p = r->body.params;
    call.stream = r->streaming;
    if (r->body.fwd) {
        call.kind = AG_BACKEND_FORWARD;
        call.forward = p;
    } else {
        switch (r->kind) {
        case AG__K_CHAT: call.kind = AG_BACKEND_CHAT; call.chat = p; break;
        case AG__K_GENERATE: call.kind = AG_BACKEND_GENERATE; call.generate = p; break;
        case AG__K_EMBED:
        case AG__K_EMBED_LEGACY: call.kind = AG_BACKEND_EMBED; call.embed = p; break;
        default: call.kind = AG_BACKEND_ADMIN; call.op = r->body.op; call.model = p; break;
        }
    }
    if (c->hooks.attempt) c->hooks.attempt(r, bc->name, 1, c->hooks.ud);
    /* the parameters are the caller's, valid during this call only */
    r->body.params = NULL;
    return bc->b.start(bc->b.self, r, &call);
}

static void b_abort(ag_client *c, ag_request *r) {
    ag__bclient *bc = bc_of(c);
    bc->b.cancel(bc->b.self, r);
}

static void b_destroy(ag_client *c) {
    ag__bclient *bc = bc_of(c);
    if (bc->b.destroy) bc->b.destroy(bc->b.self);
}

static void b_stats(const ag_client *c, ag_client_stats *out) {
    (void)c;
    (void)out;
}

static const char *b_node_name(const ag_client *c, const ag_request *r) {
    (void)r;
    return bc_of(c)->name;
}

static const ag__client_ops backend_ops = {
    .submit = b_submit,
    .abort = b_abort,
    .destroy = b_destroy,
    .stats = b_stats,
    .node_name = b_node_name,
    .no_backoff = 1, /* the call's parameters are gone after the start */
};

ag_client *ag_client_new_backend(struct event_base *base, const ag_backend *b, const ag_client_options *opts,
                                 int *err) {
    int dummy;
    if (!err) err = &dummy;
    if (!b || !b->start || !b->cancel) {
        *err = AG_EINVAL;
        return NULL;
    }
    ag_client *c = ag__client_alloc(base, opts, sizeof(ag__bclient), err);
    if (!c) return NULL;
    ag__bclient *bc = bc_of(c);
    c->ops = &backend_ops;
    bc->b = *b;
    snprintf(bc->name, sizeof bc->name, "%s", b->name && *b->name ? b->name : "backend");
    bc->b.name = bc->name;
    return c;
}

int ag_backend_chunk(ag_request *req, const ag_chunk *chunk) {
    if (!req || !chunk || req->client->ops != &backend_ops) return AG_EINVAL;
    return ag__request_deliver(req, chunk);
}

int ag_backend_done(ag_request *req, const ag_result *res) {
    if (!req || !res || req->client->ops != &backend_ops) return AG_EINVAL;
    return ag__request_complete_with(req, res);
}
