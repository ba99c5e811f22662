/* core/pool.c - the pool client: many nodes, one ag_client contract.
 *
 * Each node wraps a transport node (its own keep-alive pool) with what the
 * scheduler needs: health state, in-flight count and cap, a peak-EWMA latency,
 * the models it has and has loaded, and metrics. Requests are routed when
 * submitted, re-routed when an attempt fails before any output, and wait in
 * one bounded FIFO when every candidate node is at its cap.
 *
 * Health probes are ordinary pinned requests (GET /api/version, /api/tags,
 * /api/ps) driven by a small state machine per node (enum probe_phase +
 * probe_step), on the same loop.
 */
#include "core/internal.h"
#include "core/errclass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EWMA_TAU_NS 10e9 /* peak-EWMA decay time constant */

typedef struct pnode pnode;

enum probe_phase { PR_IDLE, PR_VERSION, PR_TAGS, PR_PS };

struct pnode {
    ag__pool *pool;
    ag__node *t;
    ag_host host;
    char host_header[300];
    char auth[700];
    int dialect;
    char name[600];
    int state;
    int removed;
    unsigned in_flight, cap;
    uint64_t requests, errors, retries, tokens;
    unsigned fails; /* consecutive */
    unsigned stalls; /* real requests timed out in a row: probes do not clear them */
    double ewma_ns;
    int64_t ewma_t;
    int64_t busy_ns;
    ag__hist ttft, itl, e2e;
    char version[64];
    char **models, **loaded;
    size_t nmodels, nloaded;
    int models_known;
    /* models this node answered 404 for since its last /api/tags: not routed
     * there until a probe lists them again (a pull may add one) */
    char **missing;
    size_t nmissing;
    /* health probe: one at a time, a timer for the next one */
    enum probe_phase phase;
    ag_request *probe_req;
    struct event probe_timer;   /* next probe (interval, or backoff when ejected) */
    struct event probe_timeout; /* the running probe's deadline */
    double backoff;
};

struct ag__pool {
    ag_client *c;
    ag_pool_options opt;
    char *nodes_file;
    pnode **nodes;
    size_t n, cap;
    pnode **scratch;
    ag_request *qhead, **qtail;
    unsigned qlen;
    uint64_t rng;
    unsigned rr;
    ag_pool_stats st;
    double ewma_max; /* the slowest measured node: the guess for one not yet measured */
    struct event tick;
    const char **info_models; /* scratch for ag_pool_nodes */
};

static void probe_start(pnode *n);
static void drain_queue(ag__pool *p);

/* ---- small helpers ---- */
static uint64_t rnd(ag__pool *p) { /* xorshift64* */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 2685821657736338717ull;
}

static void tv_of(struct timeval *tv, double s) {
    tv->tv_sec = (long)s;
    tv->tv_usec = (long)((s - (double)tv->tv_sec) * 1e6);
}

/* "llama3.2" and "llama3.2:latest" are the same model */
static int same_model(const char *a, const char *b) {
    size_t la = strcspn(a, ":"), lb = strcspn(b, ":");
    const char *ta = a[la] ? a + la + 1 : "latest", *tb = b[lb] ? b + lb + 1 : "latest";
    return la == lb && memcmp(a, b, la) == 0 && strcmp(ta, tb) == 0;
}

static int in_list(char **list, size_t n, const char *model) {
    for (size_t i = 0; i < n; i++)
        if (same_model(list[i], model)) return 1;
    return 0;
}

static void free_list(const ag_alloc_funcs *a, char ***list, size_t *n) {
    for (size_t i = 0; i < *n; i++) ag__free(a, (*list)[i]);
    ag__free(a, *list);
    *list = NULL;
    *n = 0;
}

static int set_list(const ag_alloc_funcs *a, char ***list, size_t *n, const ag_result *res) {
    free_list(a, list, n);
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
            free_list(a, list, n);
            return AG_ENOMEM;
        }
        memcpy(l[i], nm, len + 1);
    }
    *list = l;
    *n = res->n_models;
    return 0;
}

static int node_serves(const pnode *n, const char *model) {
    if (!*model) return 1;
    if (in_list(n->missing, n->nmissing, model)) return 0; /* it said 404 */
    if (!n->models_known) return 1;                         /* unknown yet: maybe */
    return in_list(n->models, n->nmodels, model);
}

static int list_add(const ag_alloc_funcs *a, char ***list, size_t *n, const char *model) {
    if (in_list(*list, *n, model)) return 0;
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
static void mark_missing(pnode *n, const char *model) {
    const ag_alloc_funcs *a = n->pool->c->alloc;
    if (n->nmissing < 64) list_add(a, &n->missing, &n->nmissing, model);
    list_drop(a, n->loaded, &n->nloaded, model);
}

/* Up, not heard from yet, or failing but not ejected (suspect: it costs more,
 * see cost()); ejected nodes get only their half-open probes. */
static int routable(const pnode *n) {
    return !n->removed && n->state != AG_NODE_EJECTED;
}

/* the request was encoded for this node's API (an OpenAI node cannot pull) */
static int speaks(const ag_request *r, const pnode *n) {
    return n->dialect == AG_API_OPENAI ? r->body.oai_path != NULL : r->body.path != NULL;
}

static int tried(const ag_request *r, const pnode *n) {
    for (int i = 0; i < r->ntried; i++)
        if (r->tried[i] == n) return 1;
    return 0;
}

/* ---- health bookkeeping ---- */
static void schedule_probe(pnode *n, double secs) {
    struct timeval tv;
    tv_of(&tv, secs);
    evtimer_add(&n->probe_timer, &tv);
}

static void node_failed(pnode *n) {
    ag__pool *p = n->pool;
    n->errors++;
    n->fails++;
    if (n->state == AG_NODE_EJECTED) return;
    if (n->fails >= p->opt.eject_after) {
        n->state = AG_NODE_EJECTED;
        n->backoff = p->opt.readmit_min;
        schedule_probe(n, n->backoff); /* half-open: one probe decides */
    } else {
        n->state = AG_NODE_DOWN;
    }
}

static void node_ok(pnode *n) {
    int was_out = n->state != AG_NODE_UP;
    n->fails = 0;
    n->state = AG_NODE_UP;
    if (was_out) drain_queue(n->pool);
}

static void ewma_update(pnode *n, int64_t sample) {
    int64_t now = ag__now_ns();
    double w = n->ewma_t ? exp(-(double)(now - n->ewma_t) / EWMA_TAU_NS) : 0;
    n->ewma_t = now;
    if ((double)sample > n->ewma_ns) n->ewma_ns = (double)sample; /* peak: rise at once */
    else n->ewma_ns = n->ewma_ns * w + (double)sample * (1 - w);
    ag__pool *p = n->pool;
    p->ewma_max = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->nodes[i]->ewma_t && p->nodes[i]->ewma_ns > p->ewma_max) p->ewma_max = p->nodes[i]->ewma_ns;
}

/* Failures a node is to blame for (not the request's: 4xx, cancel, caps):
 * the error table says (core/errclass.h). */
static int node_fault(int status, int http_status) {
    return (ag__err_class(status, http_status) & AG__EC_NODE) != 0;
}

/* ---- routing ---- */
/* Peak-EWMA latency x (in flight + 1); a node that does not have the model
 * loaded pays 3x (a cold load costs seconds on a real server), a suspect
 * node 2x per failure in a row. */
static double cost(const pnode *n, const char *model, int any_loaded) {
    /* a node never measured is assumed as slow as the slowest measured one,
     * not infinitely fast (which would pull work to it whatever it costs);
     * its in-flight count still brings it work when the others are busy */
    double lat = n->ewma_t ? n->ewma_ns : n->pool->ewma_max;
    double c = (lat + 1e6) * (double)(n->in_flight + 1);
    if (any_loaded && !in_list(n->loaded, n->nloaded, model)) c *= 3;
    if (n->fails) c *= (double)(1u << (n->fails < 8 ? n->fails : 8));
    return c;
}

static void mark_loaded(pnode *n, const char *model) {
    if (!*model) return;
    const ag_alloc_funcs *a = n->pool->c->alloc;
    list_drop(a, n->missing, &n->nmissing, model); /* it has it now */
    list_add(a, &n->loaded, &n->nloaded, model);
}

/* Picks a node for r, or NULL. *waiting is set when candidates exist but all
 * are at their caps (the request should wait in the queue). */
static pnode *choose(ag__pool *p, ag_request *r, int *waiting) {
    const char *model = r->kind == AG__K_PULL ? "" : r->body.model; /* a pull may go anywhere */
    size_t nc = 0, nroom = 0;
    *waiting = 0;
    if (r->body.pin[0]) { /* forwarded to one named node: that node or none */
        for (size_t i = 0; i < p->n; i++) {
            pnode *n = p->nodes[i];
            if (n->removed || strcmp(n->name, r->body.pin) != 0 || tried(r, n)) continue;
            if (n->in_flight >= n->cap) {
                *waiting = 1;
                return NULL;
            }
            return n;
        }
        return NULL;
    }
    if (p->opt.policy == AG_POLICY_P2C && p->n > 32) {
        /* large clusters: sample two eligible nodes instead of scanning all;
         * the full scan below remains the fallback (few eligible nodes) */
        pnode *x = NULL, *y = NULL;
        for (int t = 0; t < 16 && !y; t++) {
            pnode *n = p->nodes[rnd(p) % p->n];
            if (n == x || !routable(n) || tried(r, n) || n->in_flight >= n->cap || !node_serves(n, model) || !speaks(r, n))
                continue;
            if (!x) x = n;
            else y = n;
        }
        if (y) {
            int al = *model && (in_list(x->loaded, x->nloaded, model) || in_list(y->loaded, y->nloaded, model));
            return cost(x, model, al) <= cost(y, model, al) ? x : y;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (routable(n) && !tried(r, n) && node_serves(n, model) && speaks(r, n)) p->scratch[nc++] = n;
    }
    if (nc == 0) return NULL;
    int any_loaded = 0;
    for (size_t i = 0; i < nc; i++) {
        pnode *n = p->scratch[i];
        if (n->in_flight < n->cap) {
            p->scratch[nroom++] = n;
            if (*model && in_list(n->loaded, n->nloaded, model)) any_loaded = 1;
        }
    }
    if (nroom == 0) {
        *waiting = 1;
        return NULL;
    }
    switch (p->opt.policy) {
    case AG_POLICY_ROUND_ROBIN:
        return p->scratch[p->rr++ % nroom];
    case AG_POLICY_RANDOM:
        return p->scratch[rnd(p) % nroom];
    case AG_POLICY_LEAST: {
        pnode *best = NULL;
        size_t ties = 0;
        for (size_t i = 0; i < nroom; i++) {
            pnode *n = p->scratch[i];
            if (!best || n->in_flight < best->in_flight) {
                best = n;
                ties = 1;
            } else if (n->in_flight == best->in_flight && rnd(p) % ++ties == 0) {
                best = n; /* uniform among ties (reservoir) */
            }
        }
        return best;
    }
    default: { /* power of two choices */
        if (nroom == 1) return p->scratch[0];
        size_t a = rnd(p) % nroom, b = rnd(p) % (nroom - 1);
        if (b >= a) b++;
        pnode *x = p->scratch[a], *y = p->scratch[b];
        return cost(x, model, any_loaded) <= cost(y, model, any_loaded) ? x : y;
    }
    }
}

static int dispatch(ag__pool *p, pnode *n, ag_request *r) {
    ag__target t = {n->host_header, n->host.path, p->c->user_agent, n->auth, n->dialect};
    int rc = ag__request_frame(r, &t);
    if (rc) return rc;
    n->in_flight++;
    r->node = n;
    if (r->ntried < (int)(sizeof r->tried / sizeof r->tried[0])) r->tried[r->ntried++] = n;
    r->attempts++;
    r->t_attempt = ag__now_ns();
    r->itl_hist = &n->itl;
    p->st.routed++;
    rc = ag__http_start(n->t, &r->http);
    if (rc) {
        n->in_flight--;
        r->node = NULL;
    }
    return rc;
}

static void queue_push(ag__pool *p, ag_request *r) {
    r->qnext = NULL;
    r->qprev = p->qtail;
    *p->qtail = r;
    p->qtail = &r->qnext;
    p->qlen++;
    p->st.queued_total++;
}

static void queue_remove(ag__pool *p, ag_request *r) {
    if (!r->qprev) return;
    if (r->qnext) r->qnext->qprev = r->qprev;
    else p->qtail = r->qprev;
    *r->qprev = r->qnext;
    r->qnext = NULL;
    r->qprev = NULL;
    p->qlen--;
}

/* Routes r now, or queues it. 0, AG_EQUEUEFULL or AG_ENONODE. */
static int route(ag__pool *p, ag_request *r) {
    int waiting;
    pnode *n = choose(p, r, &waiting);
    if (n) return dispatch(p, n, r);
    if (!waiting) return AG_ENONODE;
    if (p->qlen >= p->opt.max_queue) {
        p->st.rejected_queue_full++;
        return AG_EQUEUEFULL;
    }
    queue_push(p, r);
    return 0;
}

/* Capacity came free, or a node came back: start what waits, oldest first;
 * a request nothing can serve any more ends with AG_ENONODE. */
static void drain_queue(ag__pool *p) {
    ag_request *r = p->qhead;
    while (r) {
        ag_request *next = r->qnext;
        int waiting;
        pnode *n = choose(p, r, &waiting);
        if (n || !waiting) {
            queue_remove(p, r);
            if (!n || dispatch(p, n, r) != 0) {
                char msg[320];
                snprintf(msg, sizeof msg, "no healthy node serves model \"%s\"", r->body.model);
                ag__request_fail_later(r, AG_ENONODE, msg);
            }
        }
        r = next;
    }
}

/* ---- the client operations ---- */
static int pool_submit(ag_client *c, ag_request *r) {
    ag__pool *p = c->pool;
    if (r->pinned) { /* a health probe: straight to its node */
        pnode *n = r->node;
        ag__target t = {n->host_header, n->host.path, c->user_agent, n->auth, n->dialect};
        int rc = ag__request_frame(r, &t);
        return rc ? rc : ag__http_start(n->t, &r->http);
    }
    if (p->opt.resume && r->kind == AG__K_CHAT && r->streaming && !r->body.fwd) r->keep_partial = 1;
    return route(p, r);
}

static void pool_abort(ag_client *c, ag_request *r) {
    ag__pool *p = c->pool;
    if (r->qprev) queue_remove(p, r);
    else ag__http_abort(&r->http);
}

/* An attempt worth repeating on another node: the node's transient fault
 * (4xx fail the same everywhere; cancels and caps are ours). */
static int retryable(int status, int http_status) {
    unsigned cls = ag__err_class(status, http_status);
    return (cls & AG__EC_RETRY) && (cls & AG__EC_NODE);
}

/* Rebuilds a chat body with the partial answer as a trailing assistant
 * message, from the original messages: the next node continues the answer. */
static int resume_body(ag_client *c, ag_request *r) {
    if (!r->orig_body) { /* keep the original for every later resume */
        r->orig_body = r->body.data;
        r->orig_len = r->body.len;
        r->body.data = NULL;
    }
    const char *orig = r->orig_body;
    size_t me = r->body.msgs_end, len = r->orig_len;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) return AG_ENOMEM;
    yajl_gen_map_open(g);
    yajl_gen_string(g, (const unsigned char *)"role", 4);
    yajl_gen_string(g, (const unsigned char *)"assistant", 9);
    yajl_gen_string(g, (const unsigned char *)"content", 7);
    ag__gen_text(g, r->partial.p ? r->partial.p : "", r->partial.len);
    yajl_gen_map_close(g);
    const unsigned char *m;
    size_t ml;
    yajl_gen_get_buf(g, &m, &ml);
    char *nb = ag__malloc(c->alloc, len + ml + 2);
    if (!nb) {
        yajl_gen_free(g);
        return AG_ENOMEM;
    }
    size_t o = me;
    memcpy(nb, orig, me);
    if (me > 0 && orig[me - 1] != '[') nb[o++] = ',';
    memcpy(nb + o, m, ml);
    o += ml;
    memcpy(nb + o, orig + me, len - me);
    o += len - me;
    nb[o] = 0;
    yajl_gen_free(g);
    ag__free(c->alloc, r->body.data);
    r->body.data = nb;
    r->body.len = o;
    r->resumed++;
    return 0;
}

static void account_attempt_end(ag_request *r, int status, const ag_result *res) {
    pnode *n = r->node;
    if (!n) return;
    r->node = NULL;
    r->itl_hist = NULL;
    n->in_flight--;
    n->requests++;
    if (status == 0) {
        int64_t now = ag__now_ns();
        int64_t e2e = now - r->t_attempt;
        ag__hist_add(&n->e2e, e2e);
        if (res && res->timing.chunks > 0 && res->timing.ttft_ns >= 0) {
            int64_t ttft = r->t0 + res->timing.ttft_ns - r->t_attempt;
            if (ttft < 0) ttft = 0;
            ag__hist_add(&n->ttft, ttft);
            ewma_update(n, ttft);
        } else {
            ewma_update(n, e2e);
        }
        if (res) n->tokens += (uint64_t)res->timing.chunks;
        n->busy_ns += e2e;
        if (r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE || r->kind == AG__K_EMBED ||
            r->kind == AG__K_EMBED_LEGACY)
            mark_loaded(n, r->body.model); /* it is now, whatever /api/ps said */
        n->stalls = 0;
        node_ok(n);
    } else if (node_fault(status, r->http_status)) {
        if (status == AG_EIDLE) n->stalls++;
        node_failed(n);
    }
}

/* kinds whose 404 means "this node lacks the model" */
static int model_bound(const ag_request *r) {
    return (r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE || r->kind == AG__K_EMBED ||
            r->kind == AG__K_EMBED_LEGACY || r->kind == AG__K_SHOW) &&
           r->body.model[0] && !r->body.pin[0];
}

static int pool_retry(ag_client *c, ag_request *r, int *status_io, int http_status, const char *detail) {
    ag__pool *p = c->pool;
    int status = *status_io;
    if (r->pinned) return 0;
    pnode *was = r->node;
    account_attempt_end(r, status, NULL);
    int notfound = status == AG_ENOTFOUND && was && model_bound(r) && !ag__request_has_output(r);
    if (notfound) {
        /* the model is not on that node: remember it, and try one that may
         * have it (outside the retry budget: each node is tried once) */
        mark_missing(was, r->body.model);
        r->notfound++;
        int waiting = 0;
        pnode *n = r->notfound <= (int)p->n ? choose(p, r, &waiting) : NULL;
        if (n) {
            p->st.retried++;
            if (dispatch(p, n, r) == 0) return 1;
        } else if (waiting && p->qlen < p->opt.max_queue) {
            p->st.retried++;
            queue_push(p, r);
            return 1;
        }
        *status_io = AG_ENONODE;
        snprintf(r->def_detail, sizeof r->def_detail, "no healthy node serves model \"%s\" (%s)",
                 r->body.model, detail && *detail ? detail : "HTTP 404");
        return 0;
    }
    int resume = status == AG_ELOST && p->opt.resume && r->keep_partial && r->kind == AG__K_CHAT;
    if (!resume && (ag__request_has_output(r) || !retryable(status, http_status))) return 0;
    if (r->attempts - r->notfound > (int)p->opt.retry_budget) return 0;
    if (resume) {
        if (resume_body(c, r)) return 0;
        p->st.resumed++;
    }
    int waiting;
    pnode *n = choose(p, r, &waiting);
    if (n) {
        n->retries++;
        p->st.retried++;
        return dispatch(p, n, r) == 0;
    }
    if (waiting && p->qlen < p->opt.max_queue) {
        p->st.retried++;
        queue_push(p, r);
        return 1;
    }
    return 0;
}

static void pool_finished(ag_client *c, ag_request *r, int status, const ag_result *res) {
    ag__pool *p = c->pool;
    if (r->qprev) queue_remove(p, r);
    if (r->pinned) return;
    int had_node = r->node != NULL;
    account_attempt_end(r, status, res);
    if (had_node) drain_queue(p);
}

static const char *pool_node_name(const ag_client *c, const ag_request *r) {
    (void)c;
    const pnode *n = r->node ? r->node : (r->ntried ? r->tried[r->ntried - 1] : NULL);
    return n ? n->name : NULL;
}

static void node_free(ag__pool *p, pnode *n) {
    const ag_alloc_funcs *a = p->c->alloc;
    event_del(&n->probe_timer);
    event_del(&n->probe_timeout);
    ag__node_free(n->t);
    free_list(a, &n->models, &n->nmodels);
    free_list(a, &n->loaded, &n->nloaded);
    free_list(a, &n->missing, &n->nmissing);
    ag__free(a, n);
}

static void pool_destroy(ag_client *c) {
    ag__pool *p = c->pool;
    const ag_alloc_funcs *a = c->alloc;
    event_del(&p->tick);
    for (size_t i = 0; i < p->n; i++) node_free(p, p->nodes[i]);
    ag__free(a, p->nodes);
    ag__free(a, p->scratch);
    ag__free(a, p->nodes_file);
    ag__free(a, p->info_models);
    ag__free(a, p);
    c->pool = NULL;
}

static void pool_stats(const ag_client *c, ag_client_stats *out) {
    ag__pool *p = c->pool;
    for (size_t i = 0; i < p->n; i++) {
        ag__node_stats ns;
        ag__node_get_stats(p->nodes[i]->t, &ns);
        out->connections_opened += ns.opened;
        out->connections_reused += ns.reused;
        out->retries_stale += ns.stale_retries;
        out->open_connections += ns.open;
        out->idle_connections += ns.idle;
        out->queued += ns.queued;
    }
    out->queued += p->qlen;
}

static const ag__client_ops pool_ops = {
    .submit = pool_submit,
    .abort = pool_abort,
    .retry = pool_retry,
    .finished = pool_finished,
    .destroy = pool_destroy,
    .stats = pool_stats,
    .node_name = pool_node_name,
};

/* ---- health probes: version -> tags -> ps, one state machine per node ---- */
static void probe_done_cb(ag_request *req, const ag_result *res, void *ud);

static void probe_issue(pnode *n, int op) {
    ag_callbacks cb = {NULL, probe_done_cb, n};
    if (ag__admin_pinned(n->pool->c, op, NULL, n, &cb, &n->probe_req) != 0) {
        n->probe_req = NULL;
        n->phase = PR_IDLE;
    }
}

static void probe_finish(pnode *n, int ok) {
    ag__pool *p = n->pool;
    n->phase = PR_IDLE;
    n->probe_req = NULL;
    event_del(&n->probe_timeout);
    if (ok && n->stalls) {
        /* it answers probes but its requests stall: routable again (a
         * half-open trial), yet still suspect until a real request succeeds */
        if (n->state == AG_NODE_EJECTED) n->state = AG_NODE_DOWN;
        n->backoff = 0;
        drain_queue(p);
    } else if (ok) {
        node_ok(n);
        n->backoff = 0;
    } else if (n->state == AG_NODE_EJECTED) {
        n->errors++;
        n->fails++;
        n->backoff = n->backoff * 2 < p->opt.readmit_max ? n->backoff * 2 : p->opt.readmit_max;
        schedule_probe(n, n->backoff);
    } else {
        node_failed(n);
    }
}

/* Re-entered with each probe answer; the phase says which one it was. */
static void probe_step(pnode *n, const ag_result *res) {
    const ag_alloc_funcs *a = n->pool->c->alloc;
    if (res->status) {
        probe_finish(n, 0);
        return;
    }
    switch (n->phase) {
    case PR_VERSION:
        snprintf(n->version, sizeof n->version, "%s", res->version ? res->version : "");
        n->phase = PR_TAGS;
        probe_issue(n, AG_OP_TAGS);
        break;
    case PR_TAGS:
        if (set_list(a, &n->models, &n->nmodels, res) == 0) {
            n->models_known = 1;
            free_list(a, &n->missing, &n->nmissing); /* the list is the truth again */
        }
        n->phase = PR_PS;
        probe_issue(n, AG_OP_PS);
        break;
    case PR_PS:
        set_list(a, &n->loaded, &n->nloaded, res);
        probe_finish(n, 1);
        break;
    case PR_IDLE:
        break;
    }
}

static void probe_done_cb(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    pnode *n = ud;
    n->probe_req = NULL;
    if (res->status == AG_ESHUTDOWN || !n->pool->c->pool) return; /* the pool is going away */
    probe_step(n, res);
}

static void probe_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    pnode *n = arg;
    if (n->probe_req) ag_request_cancel(n->probe_req); /* -> probe_step with an error */
}

static void probe_start(pnode *n) {
    if (n->phase != PR_IDLE || n->removed) return;
    n->phase = PR_VERSION;
    struct timeval tv;
    tv_of(&tv, n->pool->opt.probe_timeout);
    evtimer_add(&n->probe_timeout, &tv);
    probe_issue(n, AG_OP_VERSION);
}

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    probe_start(arg);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__pool *p = arg;
    for (size_t i = 0; i < p->n; i++)
        if (p->nodes[i]->state != AG_NODE_EJECTED) probe_start(p->nodes[i]);
}

/* ---- nodes ---- */
static pnode *find_node(ag__pool *p, const ag_host *h) {
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->host.port == h->port && strcmp(n->host.host, h->host) == 0 &&
            strcmp(n->host.path, h->path) == 0)
            return n;
    }
    return NULL;
}

static int add_node(ag__pool *p, const char *addr) {
    ag_client *c = p->c;
    ag_host h;
    if (ag_host_parse(addr, &h) != 0) return AG_EHOST;
    pnode *old = find_node(p, &h);
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
    n->cap = p->opt.node_max_in_flight;
    n->state = AG_NODE_PROBING;
    n->dialect = ag__dialect_of(c, &h);
    if (n->dialect == AG_API_OPENAI) c->oai_mode = 2; /* requests from now on carry both forms */
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
    evtimer_assign(&n->probe_timer, c->base, probe_timer_cb, n);
    evtimer_assign(&n->probe_timeout, c->base, probe_timeout_cb, n);
    p->nodes[p->n++] = n;
    if (p->opt.probe_interval > 0) schedule_probe(n, 0); /* first probe right away, from the loop */
    drain_queue(p);
    return 0;
}

/* Splits a list on commas, spaces and newlines; '#' comments to the end of a line. */
static int add_list(ag__pool *p, const char *list, char ***seen, size_t *nseen) {
    const char *s = list;
    int rc = 0;
    while (*s && !rc) {
        if (*s == '#') {
            while (*s && *s != '\n') s++;
            continue;
        }
        size_t k = strcspn(s, ", \t\r\n#");
        if (k) {
            char addr[600];
            if (k >= sizeof addr) return AG_EHOST;
            memcpy(addr, s, k);
            addr[k] = 0;
            rc = add_node(p, addr);
            if (!rc && seen) {
                ag_host h;
                ag_host_parse(addr, &h);
                pnode *n = find_node(p, &h);
                char **ns = ag__realloc(p->c->alloc, *seen, (*nseen + 1) * sizeof *ns);
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

static int load_file(ag__pool *p) {
    const ag_alloc_funcs *a = p->c->alloc;
    char *text = read_file(a, p->nodes_file);
    if (!text) return AG_EINVAL;
    char **seen = NULL;
    size_t nseen = 0;
    int rc = add_list(p, text, &seen, &nseen);
    ag__free(a, text);
    if (rc == 0) { /* nodes no longer listed stop taking new work */
        for (size_t i = 0; i < p->n; i++) {
            int keep = 0;
            for (size_t j = 0; j < nseen; j++)
                if ((pnode *)seen[j] == p->nodes[i]) keep = 1;
            if (!keep) p->nodes[i]->removed = 1;
        }
    }
    ag__free(a, seen);
    return rc;
}

/* ---- public ---- */
ag_client *ag_pool_new(struct event_base *base, const ag_pool_options *opts, int *err) {
    int dummy;
    if (!err) err = &dummy;
    ag_pool_options o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    ag_client *c = ag__client_alloc(base, &o.client, err);
    if (!c) return NULL;
    ag__pool *p = ag__calloc(c->alloc, sizeof *p);
    if (!p) {
        ag__client_dealloc(c);
        *err = AG_ENOMEM;
        return NULL;
    }
    c->pool = p;
    c->ops = &pool_ops;
    p->c = c;
    if (!o.node_max_in_flight) o.node_max_in_flight = 64;
    if (!o.max_queue) o.max_queue = 10000;
    if (!o.probe_interval) o.probe_interval = 5;
    if (!o.probe_timeout) o.probe_timeout = 2;
    if (!o.eject_after) o.eject_after = 3;
    if (!o.readmit_min) o.readmit_min = 1;
    if (!o.readmit_max) o.readmit_max = 60;
    if (!o.retry_budget) o.retry_budget = 2;
    if (o.retry_budget > 7) o.retry_budget = 7;
    p->rng = o.seed ? o.seed : 0x9E3779B97F4A7C15ull;
    p->qtail = &p->qhead;
    p->opt = o;
    p->opt.nodes = NULL;
    p->opt.nodes_file = NULL;
    evtimer_assign(&p->tick, c->base, tick_cb, p);
    int rc = 0;
    if (o.nodes_file) {
        size_t l = strlen(o.nodes_file);
        p->nodes_file = ag__malloc(c->alloc, l + 1);
        if (!p->nodes_file) rc = AG_ENOMEM;
        else {
            memcpy(p->nodes_file, o.nodes_file, l + 1);
            rc = load_file(p);
        }
    }
    if (!rc && o.nodes) rc = add_list(p, o.nodes, NULL, NULL);
    if (!rc && !o.nodes && !o.nodes_file) {
        const char *env = getenv("OLLAMA_HOSTS");
        if (env && *env) rc = add_list(p, env, NULL, NULL);
        else rc = add_node(p, getenv("OLLAMA_HOST") ? getenv("OLLAMA_HOST") : "");
    }
    if (!rc && p->n == 0) rc = AG_EHOST;
    if (rc) {
        pool_destroy(c);
        ag__client_dealloc(c);
        *err = rc;
        return NULL;
    }
    if (o.probe_interval > 0) {
        struct timeval tv;
        tv_of(&tv, o.probe_interval);
        event_assign(&p->tick, c->base, -1, EV_PERSIST, tick_cb, p);
        event_add(&p->tick, &tv);
    }
    *err = 0;
    return c;
}

int ag_pool_add_node(ag_client *c, const char *addr) {
    if (!c || !c->pool || !addr) return AG_EINVAL;
    return add_node(c->pool, addr);
}

int ag_pool_remove_node(ag_client *c, const char *addr) {
    if (!c || !c->pool || !addr) return AG_EINVAL;
    ag_host h;
    if (ag_host_parse(addr, &h) != 0) return AG_EHOST;
    pnode *n = find_node(c->pool, &h);
    if (!n) return AG_EINVAL;
    n->removed = 1;
    event_del(&n->probe_timer);
    return 0;
}

int ag_pool_reload(ag_client *c) {
    if (!c || !c->pool || !c->pool->nodes_file) return AG_EINVAL;
    return load_file(c->pool);
}

void ag_pool_probe_now(ag_client *c) {
    if (!c || !c->pool) return;
    ag__pool *p = c->pool;
    for (size_t i = 0; i < p->n; i++) probe_start(p->nodes[i]);
}

size_t ag_pool_nodes(ag_client *c, ag_node_info *out, size_t max) {
    if (!c || !c->pool) return 0;
    ag__pool *p = c->pool;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->removed) continue;
        if (k < max) {
            ag_node_info *o = &out[k];
            memset(o, 0, sizeof *o);
            o->name = n->name;
            o->state = n->state;
            o->version = n->version;
            o->in_flight = n->in_flight;
            o->max_in_flight = n->cap;
            o->requests = n->requests;
            o->errors = n->errors;
            o->retries = n->retries;
            o->failures_in_a_row = n->fails;
            o->tokens = n->tokens;
            o->ewma_ms = n->ewma_ns / 1e6;
            o->ttft_p50_ms = (double)ag__hist_quantile(&n->ttft, 0.5) / 1e6;
            o->ttft_p99_ms = (double)ag__hist_quantile(&n->ttft, 0.99) / 1e6;
            o->itl_p50_ms = (double)ag__hist_quantile(&n->itl, 0.5) / 1e6;
            o->itl_p99_ms = (double)ag__hist_quantile(&n->itl, 0.99) / 1e6;
            o->e2e_p50_ms = (double)ag__hist_quantile(&n->e2e, 0.5) / 1e6;
            o->e2e_p99_ms = (double)ag__hist_quantile(&n->e2e, 0.99) / 1e6;
            o->tokens_per_s = n->busy_ns > 0 ? (double)n->tokens / ((double)n->busy_ns / 1e9) : 0;
            o->n_models = n->nmodels;
            o->models = (const char *const *)n->models;
            o->n_loaded = n->nloaded;
            o->loaded = (const char *const *)n->loaded;
        }
        k++;
    }
    return k;
}

int ag__pool_has_node(ag_client *c, const char *name) {
    if (!c || !c->pool) return 1;
    ag__pool *p = c->pool;
    for (size_t i = 0; i < p->n; i++)
        if (!p->nodes[i]->removed && strcmp(p->nodes[i]->name, name) == 0) return 1;
    return 0;
}

int ag__pool_may_serve(ag_client *c, const char *model) {
    if (!c || !c->pool) return 1;
    ag__pool *p = c->pool;
    int any_known = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->removed) continue;
        if (in_list(n->missing, n->nmissing, model)) {
            any_known = 1;
            continue;
        }
        if (!n->models_known) continue;
        any_known = 1;
        if (in_list(n->models, n->nmodels, model)) return 1;
    }
    return !any_known; /* nothing heard yet: do not claim it is missing */
}

void ag_pool_get_stats(ag_client *c, ag_pool_stats *out) {
    memset(out, 0, sizeof *out);
    if (!c || !c->pool) return;
    ag__pool *p = c->pool;
    *out = p->st;
    out->queued_now = p->qlen;
    for (size_t i = 0; i < p->n; i++) {
        if (p->nodes[i]->removed) continue;
        out->nodes++;
        if (p->nodes[i]->state == AG_NODE_UP) out->nodes_up++;
    }
}

/* ---- opt-in range discovery ---- */
typedef struct disc {
    ag_client *pool;
    uint32_t h0, h1;
    int p0, p1;
    uint64_t next, total;
    unsigned running, conc;
    int added;
    void (*done)(ag_client *, int, void *);
    void *ud;
} disc;

typedef struct disc_probe {
    disc *d;
    ag_client *c;
    char addr[64];
} disc_probe;

static void disc_next(disc *d);

static void disc_free_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_client_free(arg);
}

static void disc_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    disc_probe *dp = ud;
    disc *d = dp->d;
    if (res->status == 0 && d->pool->pool) {
        ag_host h;
        ag_host_parse(dp->addr, &h);
        int known = find_node(d->pool->pool, &h) != NULL;
        if (add_node(d->pool->pool, dp->addr) == 0 && !known) d->added++;
    }
    /* free the probe's client off its own stack */
    event_base_once(dp->c->base, -1, EV_TIMEOUT, disc_free_cb, dp->c, NULL);
    free(dp);
    d->running--;
    disc_next(d);
}

static void disc_next(disc *d) {
    while (d->running < d->conc && d->next < d->total) {
        uint64_t i = d->next++;
        uint64_t nports = (uint64_t)(d->p1 - d->p0 + 1);
        uint32_t h = d->h0 + (uint32_t)(i / nports);
        int port = d->p0 + (int)(i % nports);
        disc_probe *dp = calloc(1, sizeof *dp);
        if (!dp) break;
        dp->d = d;
        snprintf(dp->addr, sizeof dp->addr, "%u.%u.%u.%u:%d", h >> 24, (h >> 16) & 255, (h >> 8) & 255,
                 h & 255, port);
        ag_client_options co = {.host = dp->addr, .connect_timeout = d->pool->pool->opt.probe_timeout,
                                .idle_timeout = d->pool->pool->opt.probe_timeout,
                                .first_byte_timeout = d->pool->pool->opt.probe_timeout};
        dp->c = ag_client_new(d->pool->base, &co, NULL);
        ag_callbacks cb = {NULL, disc_done, dp};
        if (!dp->c || ag_admin(dp->c, AG_OP_VERSION, NULL, &cb, NULL) != 0) {
            ag_client_free(dp->c);
            free(dp);
            continue;
        }
        d->running++;
    }
    if (d->running == 0 && d->next >= d->total) {
        if (d->done) d->done(d->pool, d->added, d->ud);
        free(d);
    }
}

static int parse_ip4(const char *s, size_t n, uint32_t *out) {
    unsigned a, b, c, e;
    char buf[32];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char tail;
    if (sscanf(buf, "%u.%u.%u.%u%c", &a, &b, &c, &e, &tail) != 4 || a > 255 || b > 255 || c > 255 || e > 255)
        return -1;
    *out = (a << 24) | (b << 16) | (c << 8) | e;
    return 0;
}

int ag_pool_discover(ag_client *c, const char *range, unsigned concurrency,
                     void (*done)(ag_client *c, int added, void *ud), void *ud) {
    if (!c || !c->pool || !range) return AG_EINVAL;
    const char *colon = strrchr(range, ':');
    if (!colon) return AG_EINVAL;
    const char *dash = memchr(range, '-', (size_t)(colon - range));
    uint32_t h0, h1;
    if (parse_ip4(range, (size_t)((dash ? dash : colon) - range), &h0)) return AG_EINVAL;
    if (dash) {
        if (parse_ip4(dash + 1, (size_t)(colon - dash - 1), &h1)) return AG_EINVAL;
    } else {
        h1 = h0;
    }
    char *end;
    long p0 = strtol(colon + 1, &end, 10), p1 = p0;
    if (*end == '-') p1 = strtol(end + 1, &end, 10);
    if (*end || p0 < 1 || p1 > 65535 || p1 < p0 || h1 < h0) return AG_EINVAL;
    uint64_t total = (uint64_t)(h1 - h0 + 1) * (uint64_t)(p1 - p0 + 1);
    if (total > 65536) return AG_EINVAL;
    disc *d = calloc(1, sizeof *d);
    if (!d) return AG_ENOMEM;
    d->pool = c;
    d->h0 = h0;
    d->h1 = h1;
    d->p0 = (int)p0;
    d->p1 = (int)p1;
    d->total = total;
    d->conc = concurrency ? concurrency : 64;
    d->done = done;
    d->ud = ud;
    disc_next(d);
    return 0;
}

/* For bench/micro/bench_sched.c: `iters` routing decisions for model, as a request
 * would make them (candidates, caps, policy); returns how many found a node. */
long ag__pool_bench_choose(ag_client *c, const char *model, long iters) {
    ag_request r;
    memset(&r, 0, sizeof r);
    r.kind = AG__K_CHAT;
    snprintf(r.body.model, sizeof r.body.model, "%s", model);
    long found = 0;
    for (long i = 0; i < iters; i++) {
        int waiting;
        found += choose(c->pool, &r, &waiting) != NULL;
    }
    return found;
}
