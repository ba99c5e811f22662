/* core/pool/nodes.c - the pool's nodes: adding one from an address (its
 * transport, its probe timers), the nodes file, the model lists each node has,
 * has loaded and said it lacks. */
#include "core/pool/pool_internal.h"
#include "core/base/hash.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "llama3.2" and "llama3.2:latest" are the same model */
static int same_model(const char *a, const char *b) {
    size_t la = strcspn(a, ":"), lb = strcspn(b, ":");
    const char *ta = a[la] ? a + la + 1 : "latest", *tb = b[lb] ? b + lb + 1 : "latest";
    return la == lb && memcmp(a, b, la) == 0 && strcmp(ta, tb) == 0;
}

int ag__pool_in_list(char **list, size_t n, const char *model) {
    for (size_t i = 0; i < n; i++)
        if (same_model(list[i], model)) return 1;
    return 0;
}

void ag__pool_free_list(const ag_alloc_funcs *a, char ***list, size_t *n) {
    for (size_t i = 0; i < *n; i++) ag__free(a, (*list)[i]);
    ag__free(a, *list);
    *list = NULL;
    *n = 0;
}

int ag__pool_set_list(const ag_alloc_funcs *a, char ***list, size_t *n, const ag_result *res) {
    ag__pool_free_list(a, list, n);
    if (!res->n_models) return 0;
    char **l = ag__calloc(a, res->n_models * sizeof *l);
    if (!l) return AG_ENOMEM;
    for (size_t i = 0; i < res->n_models; i++) {
        const char *nm = res->models[i].name ? res->models[i].name : "";
        size_t len = strlen(nm);
        l[i] = ag__malloc(a, len + 1);
        if (!l[i]) {
            *list = l;
            *n = i;
            ag__pool_free_list(a, list, n);
            return AG_ENOMEM;
        }
        memcpy(l[i], nm, len + 1);
    }
    *list = l;
    *n = res->n_models;
    return 0;
}

int ag__pool_node_serves(const pnode *n, const char *model) {
    if (!*model) return 1;
    if (ag__pool_in_list(n->missing, n->nmissing, model)) return 0; /* it said 404 */
    if (!n->models_known) return 1;                         /* unknown yet: maybe */
    return ag__pool_in_list(n->models, n->nmodels, model);
}

static int list_add(const ag_alloc_funcs *a, char ***list, size_t *n, const char *model) {
    if (ag__pool_in_list(*list, *n, model)) return 0;
    char **l = ag__realloc(a, *list, (*n + 1) * sizeof *l);
    if (!l) return AG_ENOMEM;
    *list = l;
    size_t len = strlen(model);
    char *m = ag__malloc(a, len + 1);
    if (!m) return AG_ENOMEM;
    memcpy(m, model, len + 1);
    l[(*n)++] = m;
    return 0;
}

static void list_drop(const ag_alloc_funcs *a, char **list, size_t *n, const char *model) {
    for (size_t i = 0; i < *n; i++)
        if (same_model(list[i], model)) {
            ag__free(a, list[i]);
            list[i] = list[--*n];
            return;
        }
}

/* A 404 for model from this node: a fact about the node, remembered */
void ag__pool_mark_missing(pnode *n, const char *model) {
    const ag_alloc_funcs *a = n->pool->base.alloc;
    if (n->nmissing < 64) list_add(a, &n->missing, &n->nmissing, model);
    list_drop(a, n->loaded, &n->nloaded, model);
}

void ag__pool_mark_loaded(pnode *n, const char *model) {
    if (!*model) return;
    const ag_alloc_funcs *a = n->pool->base.alloc;
    list_drop(a, n->missing, &n->nmissing, model); /* it has it now */
    list_add(a, &n->loaded, &n->nloaded, model);
}

void ag__pool_node_free(ag__pool *p, pnode *n) {
    const ag_alloc_funcs *a = p->base.alloc;
    ag__pool_index_forget(p, n);
    if (n->pf_ns_tok > 0 && p->pf_n) { /* out of the pool's mean prompt rate */
        p->pf_sum -= n->pf_ns_tok;
        p->pf_n--;
    }
    event_del(&n->limit_ev);
    event_del(&n->probe_timer);
    event_del(&n->probe_timeout);
    ag__node_free(n->t);
    ag__pool_free_list(a, &n->models, &n->nmodels);
    ag__pool_free_list(a, &n->loaded, &n->nloaded);
    ag__pool_free_list(a, &n->missing, &n->nmissing);
    ag__buf_free(a, &n->props);
    ag__free(a, n->pfx);
    ag__free(a, n);
}

/* A node that is gone (ag_pool_remove_node, dropped from the nodes file,
 * no longer in its dns+ name's answer) takes no new work; what runs there
 * finishes. Its memory (connections, prefix table, histograms) is freed once
 * nothing refers to it: no request runs or probes there and no live request
 * has tried it (their tried lists and result names point at it). Without
 * that, a name whose servers come back at new addresses (pods) or a nodes
 * file rewritten now and then would grow the pool without bound. */
void ag__pool_node_gone(ag__pool *p, pnode *n) {
    if (n->removed) return;
    n->removed = 1;
    event_del(&n->probe_timer);
    ag__pool_reap_soon(p);
}

void ag__pool_reap_soon(ag__pool *p) {
    if (p->closing) return;
    if (!p->gone) p->gone = 1; /* counted for real by the reap */
    if (!evtimer_pending(&p->reap, NULL)) {
        struct timeval tv = {0, 100000};
        evtimer_add(&p->reap, &tv);
    }
}

void ag__pool_reap_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    ag__pool *p = arg;
    size_t marked = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        n->reap = n->removed && n->in_flight == 0 && n->phase == PR_IDLE && !n->probe_req;
        marked += n->reap;
    }
    if (marked)
        for (ag_request *r = p->base.reqs; r; r = r->next) {
            if (r->pinned && r->pin) ((pnode *)r->pin)->reap = 0;
            const preq *q = PR(r);
            if (q->node) q->node->reap = 0;
            if (q->want) q->want->reap = 0;
            for (int i = 0; i < q->ntried; i++) q->tried[i]->reap = 0;
        }
    size_t k = 0;
    unsigned gone = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->reap) {
            ag__log(&p->base, AG_LOG_DEBUG, "node %s: freed (gone, and nothing refers to it)", n->name);
            ag__pool_node_free(p, n);
            continue;
        }
        gone += n->removed;
        p->nodes[k++] = n;
    }
    p->n = k;
    p->gone = gone; /* those still referred to: tried again when requests end */
}

/* a rate-limited node's time is over: what waits may go to it */
static void limit_over_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    pnode *n = arg;
    /* the loop's timers run on a coarser clock than ours and may fire a few
     * milliseconds early: while the node is still limited by our clock, wait
     * out the rest (else the requests queued for it would wait for nothing) */
    int64_t left = n->limited_until - ag__now_ns();
    if (left > 0) {
        struct timeval tv;
        ag__timeval(&tv, (double)left / 1e9 + 0.001);
        evtimer_add(&n->limit_ev, &tv);
        return;
    }
    ag__pool_drain_queue(n->pool);
}

/* ---- nodes ---- */
const char *ag__pool_cap_source(const pnode *n) {
    return n->cap_stated ? "stated" : n->cap_said || n->cap_metrics ? "said" : ag__learn_on(n) ? "learned" : "max";
}

void ag__pool_set_cap(pnode *n) { /* (the order of ag__pool_cap_source) */
    unsigned max = n->pool->opt.node_max_in_flight;
    unsigned said = n->cap_said ? n->cap_said : n->cap_metrics;
    unsigned want = n->cap_stated ? n->cap_stated : said ? said : ag__learn_on(n) ? n->cap_learned : max;
    n->cap = want < max ? want : max;
}

pnode *ag__pool_find_node(ag__pool *p, const ag_host *h) {
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->host.port == h->port && strcmp(n->host.host, h->host) == 0 &&
            strcmp(n->host.path, h->path) == 0)
            return n;
    }
    return NULL;
}

int ag__pool_add_node(ag__pool *p, const char *addr) {
    ag_client *c = &p->base;
    if (strncasecmp(addr, "dns+", 4) == 0) return ag__pool_add_group(p, addr + 4);
    ag_host h;
    if (ag_host_parse(addr, &h) != 0) return AG_EHOST;
    pnode *old = ag__pool_find_node(p, &h);
    if (old) {
        old->removed = 0;
        return 0;
    }
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 8;
        pnode **nn = ag__realloc(c->alloc, p->nodes, nc * sizeof *nn);
        if (!nn) return AG_ENOMEM;
        p->nodes = nn;
        pnode **ns = ag__realloc(c->alloc, p->scratch, nc * sizeof *ns);
        if (!ns) return AG_ENOMEM;
        p->scratch = ns;
        p->cap = nc;
    }
    pnode *n = ag__calloc(c->alloc, sizeof *n);
    if (!n) return AG_ENOMEM;
    n->pool = p;
    n->host = h;
    ag__host_header(&h, n->host_header, sizeof n->host_header);
    snprintf(n->name, sizeof n->name, "%s%s", n->host_header, h.path);
    n->key = ag__fnv1a(n->name); /* its place for session keys */
    ag__learn_reset(n, 0);
    ag__pool_set_cap(n);
    n->state = AG_NODE_PROBING;
    n->dialect = ag__dialect_of(c, &h);
    if (n->dialect == AG_API_OPENAI) c->oai_mode = AG__BODIES_BOTH; /* requests from now on carry both forms */
    ag__auth_value(&h, c->auth_all, n->auth, sizeof n->auth);
    ag__node_cfg nc;
    int trc = ag__node_cfg_for(c, &n->host, &nc);
    if (trc) {
        ag__free(c->alloc, n);
        return trc;
    }
    n->t = ag__node_new(&nc);
    if (!n->t) {
        ag__free(c->alloc, n);
        return AG_ENOMEM;
    }
    evtimer_assign(&n->probe_timer, c->base, ag__pool_probe_timer_cb, n);
    evtimer_assign(&n->probe_timeout, c->base, ag__pool_probe_timeout_cb, n);
    evtimer_assign(&n->limit_ev, c->base, limit_over_cb, n);
    p->nodes[p->n++] = n;
    if (p->opt.probe_interval > 0) ag__pool_schedule_probe(n, 0); /* first probe right away, from the loop */
    ag__pool_drain_queue(p);
    return 0;
}

/* Splits a list on commas, spaces and newlines; '#' comments to the end of a line. */
int ag__pool_add_list(ag__pool *p, const char *list, char ***seen, size_t *nseen) {
    const char *s = list;
    int rc = 0;
    pnode *last = NULL; /* the address just read: a "slots=N" after it is its own */
    while (*s && !rc) {
        if (*s == '#') {
            while (*s && *s != '\n') s++;
            continue;
        }
        size_t k = strcspn(s, ", \t\r\n#");
        if (k && k > 6 && strncmp(s, "slots=", 6) == 0) {
            /* "host:port slots=N": what the node can run at once, as its
             * operator states it (--max-in-flight stays the upper bound) */
            char *e;
            long v = strtol(s + 6, &e, 10);
            if (e != s + k || v < 1 || v > 1000000) return AG_EHOST;
            if (last) {
                last->cap_stated = (unsigned)v;
                ag__pool_set_cap(last);
            }
            s += k;
            continue;
        }
        if (k) {
            char addr[600];
            if (k >= sizeof addr) return AG_EHOST;
            memcpy(addr, s, k);
            addr[k] = 0;
            last = NULL;
            rc = ag__pool_add_node(p, addr);
            if (!rc && strncasecmp(addr, "dns+", 4) != 0) { /* (its slots=, if any, follows) */
                ag_host lh;
                if (ag_host_parse(addr, &lh) == 0) last = ag__pool_find_node(p, &lh);
                if (last && last->cap_stated) { /* a statement the list no longer makes: gone */
                    last->cap_stated = 0;
                    ag__pool_set_cap(last);
                }
            }
            if (!rc && seen && strncasecmp(addr, "dns+", 4) != 0) {
                ag_host h;
                ag_host_parse(addr, &h);
                pnode *n = ag__pool_find_node(p, &h);
                char **ns = ag__realloc(p->base.alloc, *seen, (*nseen + 1) * sizeof *ns);
                if (!ns) return AG_ENOMEM;
                *seen = ns;
                (*seen)[(*nseen)++] = (char *)n;
            }
            s += k;
        } else {
            s++;
        }
    }
    return rc;
}

static char *read_file(const ag_alloc_funcs *a, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    ag__buf b = {0};
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (ag__buf_add(a, &b, tmp, k) || b.len > (1 << 20)) {
            fclose(f);
            ag__buf_free(a, &b);
            return NULL;
        }
    fclose(f);
    if (!b.p) ag__buf_add(a, &b, "", 0);
    return b.p;
}

int ag__pool_load_file(ag__pool *p) {
    const ag_alloc_funcs *a = p->base.alloc;
    char *text = read_file(a, p->nodes_file);
    if (!text) return AG_EINVAL;
    char **seen = NULL;
    size_t nseen = 0;
    ag__pool_groups_mark(p);
    int rc = ag__pool_add_list(p, text, &seen, &nseen);
    ag__free(a, text);
    if (rc == 0) { /* nodes no longer listed stop taking new work */
        for (size_t i = 0; i < p->n; i++) {
            int keep = 0;
            for (size_t j = 0; j < nseen; j++)
                if ((pnode *)seen[j] == p->nodes[i]) keep = 1;
            if (!keep && !ag__pool_node_listed(p->nodes[i])) ag__pool_node_gone(p, p->nodes[i]);
        }
    }
    ag__pool_groups_sweep(p);
    ag__free(a, seen);
    return rc;
}
