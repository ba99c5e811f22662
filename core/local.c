/* core/local.c - the local client: one node, the first ag_client backend. */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

/* the local client: the base, then its one node */
typedef struct ag__local {
    ag_client base;
    ag_host host;
    char host_header[300];
    ag__node *node;
    char auth[700]; /* the Authorization value, "" = none */
    int dialect;    /* its node's */
} ag__local;

static ag__local *local_of(const ag_client *c) {
    return (ag__local *)c;
}

static int local_submit(ag_client *c, ag_request *r) {
    ag__local *l = local_of(c);
    ag__target t = {l->host_header, l->host.path, c->user_agent, l->auth, l->dialect};
    int rc = ag__request_frame(r, &t);
    if (rc) return rc;
    if (c->hooks.attempt && !r->pinned) c->hooks.attempt(r, ag__node_name(l->node), 1, c->hooks.ud);
    return ag__http_start(l->node, &r->http);
}

static void local_destroy(ag_client *c) {
    ag__local *l = local_of(c);
    ag__node_free(l->node);
    l->node = NULL;
}

static void local_stats(const ag_client *c, ag_client_stats *out) {
    ag__node_stats ns;
    ag__node_get_stats(local_of(c)->node, &ns);
    out->connections_opened = ns.opened;
    out->connections_reused = ns.reused;
    out->retries_stale = ns.stale_retries;
    out->open_connections = ns.open;
    out->idle_connections = ns.idle;
    out->queued = ns.queued;
}

static const char *local_node_name(const ag_client *c, const ag_request *r) {
    (void)r;
    const ag__local *l = local_of(c);
    return l->node ? ag__node_name(l->node) : NULL;
}

static const ag__client_ops local_ops = {
    .submit = local_submit,
    .destroy = local_destroy,
    .stats = local_stats,
    .node_name = local_node_name,
};

int ag__host_header(const ag_host *h, char *buf, size_t size) {
    if (strchr(h->host, ':')) return snprintf(buf, size, "[%s]:%d", h->host, h->port);
    return snprintf(buf, size, "%s:%d", h->host, h->port);
}

ag_client *ag_client_new(struct event_base *base, const ag_client_options *opts, int *err) {
    int dummy;
    if (!err) err = &dummy;
    ag_host host;
    int rc = opts && opts->host ? ag_host_parse(opts->host, &host) : ag_host_from_env(&host);
    if (rc) {
        *err = rc;
        return NULL;
    }
    ag_client *c = ag__client_alloc(base, opts, sizeof(ag__local), err);
    if (!c) return NULL;
    ag__local *l = local_of(c);
    c->ops = &local_ops;
    l->host = host;
    l->dialect = ag__dialect_of(c, &host);
    c->oai_mode = l->dialect == AG_API_OPENAI ? AG__BODIES_OPENAI : AG__BODIES_OLLAMA;
    ag__host_header(&l->host, l->host_header, sizeof l->host_header);
    ag__auth_value(&host, c->auth_all, l->auth, sizeof l->auth);
    ag__node_cfg nc;
    int trc = ag__node_cfg_for(c, &l->host, &nc);
    if (trc) {
        ag__client_dealloc(c);
        *err = trc;
        return NULL;
    }
    l->node = ag__node_new(&nc);
    if (!l->node) {
        ag__client_dealloc(c);
        *err = AG_ENOMEM;
        return NULL;
    }
    return c;
}
