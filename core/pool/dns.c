/* core/pool/dns.c - nodes that follow an orchestrator: a node entry
 * "dns+NAME" (any address form after the prefix: dns+http://svc:11434,
 * dns+openai+http://vllm.ns.svc:8000) is a name with one address per live
 * server (a Kubernetes headless Service, Consul); it expands into one node
 * per address, re-resolved every resolve_interval seconds and on
 * ag_pool_reload(), adding the new addresses and draining the gone ones. */
#include "core/pool/pool_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/util.h>

struct pgroup {
    ag__pool *p;      /* NULL once the pool is gone: a lookup under way frees the group */
    struct ag__dnsref *ref;
    char spec[600];   /* the address after "dns+" */
    ag_host h;
    int removed;      /* no longer listed (nodes file re-read) */
    int answered;     /* a first answer came (requests wait for it) */
    struct evdns_getaddrinfo_request *req;
    struct event timer;
};

/* the resolver, shared by the groups; when the pool made it, it is freed
 * once the pool is gone and no lookup is under way */
struct ag__dnsref {
    struct evdns_base *dns;
    struct event_base *base;
    int own, pending, orphan;
};

static void dnsref_free_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    struct ag__dnsref *d = arg;
    if (d->own) evdns_base_free(d->dns, 0);
    free(d);
}

static void dnsref_release(struct ag__dnsref *d) {
    if (!d->orphan || d->pending) return;
    /* not from inside the resolver's own callback: on the next loop turn */
    if (event_base_once(d->base, -1, EV_TIMEOUT, dnsref_free_cb, d, NULL) != 0) dnsref_free_cb(-1, 0, d);
}

static void resolve(pgroup *g);

static void group_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    resolve(arg);
}

/* The address of one member: the spec with its name replaced by ip. */
static int member_addr(const pgroup *g, const char *ip, int v6, char *out, size_t size) {
    const char *s = g->spec, *st = strstr(s, "://");
    st = st ? st + 3 : s;
    const char *at = strchr(st, '@'), *slash = strchr(st, '/');
    if (at && (!slash || at < slash)) st = at + 1;
    size_t hl = strlen(g->h.host);
    if (strncasecmp(st, g->h.host, hl) != 0) return -1;
    int k = snprintf(out, size, "%.*s%s%s%s%s", (int)(st - s), s, v6 ? "[" : "", ip, v6 ? "]" : "", st + hl);
    return k > 0 && (size_t)k < size ? 0 : -1;
}

static void resolved_cb(int result, struct evutil_addrinfo *res, void *arg) {
    pgroup *g = arg;
    ag__pool *p = g->p;
    struct ag__dnsref *d = g->ref;
    g->req = NULL;
    d->pending--;
    if (!p) { /* the pool is gone */
        if (res) evutil_freeaddrinfo(res);
        free(g);
        dnsref_release(d);
        return;
    }
    ag_client *c = &p->base;
    int first = !g->answered;
    g->answered = 1;
    if (first) p->resolving--;
    if (result == 0 || result == EVUTIL_EAI_NONAME || result == EVUTIL_EAI_NODATA) {
        /* the set is what the answer says (none for a name without addresses) */
        for (size_t i = 0; i < p->n; i++)
            if (p->nodes[i]->group == g) p->nodes[i]->group_seen = 0;
        size_t count = 0;
        for (struct evutil_addrinfo *ai = result == 0 ? res : NULL; ai; ai = ai->ai_next) {
            char ip[64], addr[700];
            int v6 = ai->ai_family == AF_INET6;
            const void *src = v6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                 : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
            if ((ai->ai_family != AF_INET && !v6) || !evutil_inet_ntop(ai->ai_family, src, ip, sizeof ip)) continue;
            if (member_addr(g, ip, v6, addr, sizeof addr) != 0) continue;
            ag_host h;
            if (ag_host_parse(addr, &h) != 0) continue;
            pnode *n = ag__pool_find_node(p, &h);
            int was_removed = n && n->removed;
            if (!n || was_removed) {
                if (ag__pool_add_node(p, addr) != 0) continue;
                n = ag__pool_find_node(p, &h);
                if (!n) continue;
                ag__log(c, AG_LOG_INFO, "node %s: added (%s resolves to it)", n->name, g->h.host);
            }
            n->group = g;
            n->group_seen = 1;
            count++;
        }
        for (size_t i = 0; i < p->n; i++) {
            pnode *n = p->nodes[i];
            if (n->group == g && !n->group_seen && !n->removed) {
                ag__pool_node_gone(p, n); /* no new work; what runs there finishes */
                ag__log(c, AG_LOG_INFO, "node %s: drained (%s no longer resolves to it)", n->name, g->h.host);
            }
        }
        if (!count) ag__log(c, AG_LOG_WARN, "%s resolves to no address", g->h.host);
    } else {
        /* a failing resolver says nothing about the servers: keep the set */
        ag__log(c, AG_LOG_WARN, "resolving %s: %s; keeping its %s", g->h.host, evutil_gai_strerror(result),
                "nodes as they were");
    }
    if (res) evutil_freeaddrinfo(res);
    if (!g->removed && p->opt.resolve_interval >= 0) {
        struct timeval tv;
        ag__timeval(&tv, p->opt.resolve_interval > 0 ? p->opt.resolve_interval : 30);
        evtimer_add(&g->timer, &tv);
    }
    ag__pool_drain_queue(p); /* waiting requests: to the new nodes, or AG_ENONODE */
}

static void resolve(pgroup *g) {
    ag__pool *p = g->p;
    if (!p || g->req || g->removed) return;
    struct ag__dnsref *d = p->dnsref;
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    d->pending++;
    /* NULL when it answered before returning (a numeric name, the hosts
     * file): resolved_cb has run */
    struct evdns_getaddrinfo_request *rq = evdns_getaddrinfo(d->dns, g->h.host, NULL, &hints, resolved_cb, g);
    if (rq) g->req = rq;
}

static void resolve_later(pgroup *g) {
    struct timeval tv = {0, 0};
    evtimer_add(&g->timer, &tv); /* from the loop, not from the caller's stack */
}

int ag__pool_add_group(ag__pool *p, const char *spec) {
    ag_client *c = &p->base;
    ag_host h;
    if (strlen(spec) >= sizeof ((pgroup *)0)->spec || ag_host_parse(spec, &h) != 0 || !h.host[0]) return AG_EHOST;
    for (size_t i = 0; i < p->ngroups; i++) {
        pgroup *g = p->groups[i];
        if (strcmp(g->spec, spec) == 0) {
            if (g->removed) {
                g->removed = 0;
                resolve_later(g);
            }
            return 0;
        }
    }
    if (!p->dnsref) {
        struct ag__dnsref *d = calloc(1, sizeof *d);
        if (!d) return AG_ENOMEM;
        d->base = c->base;
        d->dns = c->opt.dns;
        if (!d->dns) {
            d->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
            d->own = 1;
        }
        if (!d->dns) {
            free(d);
            return AG_ENOMEM;
        }
        p->dnsref = d;
    }
    pgroup **gs = ag__realloc(c->alloc, p->groups, (p->ngroups + 1) * sizeof *gs);
    if (!gs) return AG_ENOMEM;
    p->groups = gs;
    pgroup *g = calloc(1, sizeof *g); /* libc: it may outlive the pool (a lookup under way) */
    if (!g) return AG_ENOMEM;
    g->p = p;
    g->ref = p->dnsref;
    g->h = h;
    memcpy(g->spec, spec, strlen(spec) + 1);
    evtimer_assign(&g->timer, c->base, group_timer_cb, g);
    p->groups[p->ngroups++] = g;
    p->resolving++; /* requests wait for its first answer */
    resolve_later(g);
    return 0;
}

void ag__pool_groups_mark(ag__pool *p) {
    for (size_t i = 0; i < p->ngroups; i++) p->groups[i]->removed = 1;
}

/* after a reload: groups no longer listed stop and their nodes drain; the
 * others resolve again now */
void ag__pool_groups_sweep(ag__pool *p) {
    for (size_t i = 0; i < p->ngroups; i++) {
        pgroup *g = p->groups[i];
        event_del(&g->timer);
        if (g->removed) {
            if (!g->answered) {
                g->answered = 1;
                p->resolving--;
            }
            for (size_t j = 0; j < p->n; j++)
                if (p->nodes[j]->group == g) ag__pool_node_gone(p, p->nodes[j]);
        } else {
            resolve(g);
        }
    }
}

int ag__pool_node_listed(const pnode *n) {
    return n->group && !n->group->removed;
}

void ag__pool_groups_free(ag__pool *p) {
    struct ag__dnsref *d = p->dnsref;
    for (size_t i = 0; i < p->ngroups; i++) {
        pgroup *g = p->groups[i];
        event_del(&g->timer);
        g->p = NULL;
        if (g->req) evdns_getaddrinfo_cancel(g->req); /* resolved_cb frees it (now or later) */
        else free(g);
    }
    ag__free(p->base.alloc, p->groups);
    p->groups = NULL;
    p->ngroups = 0;
    if (d) {
        d->orphan = 1;
        p->dnsref = NULL;
        if (d->pending) return; /* the last lookup's end frees it */
        if (d->own) evdns_base_free(d->dns, 0);
        free(d);
    }
}
