/* core/pool/pool.c - the pool client: the ag_client operations (submit, retry
 * elsewhere or resume, finish, abort), and the public pool API. */
#include "core/pool/pool_internal.h"

#include <event2/util.h>
#include <strings.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the client operations ---- */
static int pool_submit(ag_client *c, ag_request *r) {
    ag__pool *p = ag__pool_of(c);
    if (r->pinned) { /* a health probe: straight to its node */
        pnode *n = r->pin;
        ag__target t = {n->host_header, n->host.path, c->user_agent, n->auth, n->dialect};
        int rc = ag__request_frame(r, &t);
        return rc ? rc : ag__http_start(n->t, &r->http);
    }
    if (p->opt.resume && r->kind == AG__K_CHAT && r->streaming && !r->body.fwd) r->keep_partial = 1;
    return ag__pool_route(p, r);
}

static void pool_first_output(ag_client *c, ag_request *r) {
    (void)c;
    if (!r->pinned) ag__learn_first(r);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__pool_drain_queue(arg);
}

void ag__pool_kick(ag__pool *p) {
    if (p->qlen && !p->closing) event_active(&p->kick, EV_TIMEOUT, 1);
}

static void pool_rearm(ag_client *c, ag_request *r) {
    (void)c;
    PR(r)->ntried = 0;
}

static void pool_abort(ag_client *c, ag_request *r) {
    ag__pool *p = ag__pool_of(c);
    if (PR(r)->qprev) ag__pool_queue_remove(p, r);
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
    if (!PR(r)->orig_body) { /* keep the original for every later resume */
        PR(r)->orig_body = r->body.data;
        PR(r)->orig_len = r->body.len;
        r->body.data = NULL;
    }
    const char *orig = PR(r)->orig_body;
    size_t me = r->body.msgs_end, len = PR(r)->orig_len;
    yajl_gen g = ag__gen_new(c->alloc);
    if (!g) return AG_ENOMEM;
    yajl_gen_map_open(g);
    yajl_gen_string(g, (const unsigned char *)"role", 4);
    yajl_gen_string(g, (const unsigned char *)"assistant", 9);
    yajl_gen_string(g, (const unsigned char *)"content", 7);
    ag__gen_text(c->alloc, g, r->partial.p ? r->partial.p : "", r->partial.len);
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
    PR(r)->resumed++;
    return 0;
}

/* kinds whose 404 means "this node lacks the model" */
static int model_bound(const ag_request *r) {
    return (r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE || r->kind == AG__K_EMBED ||
            r->kind == AG__K_EMBED_LEGACY || r->kind == AG__K_SHOW) &&
           r->body.model[0] && !r->body.pin;
}

static int pool_retry(ag_client *c, ag_request *r, int *status_io, int http_status, const char *detail) {
    ag__pool *p = ag__pool_of(c);
    int status = *status_io;
    if (r->pinned) return 0;
    pnode *was = PR(r)->node;
    p->cur_detail = detail; /* why, for the node's record */
    ag__pool_account_attempt_end(r, status, NULL);
    p->cur_detail = NULL;
    int notfound = status == AG_ENOTFOUND && was && model_bound(r) && !ag__request_has_output(r);
    if (notfound) {
        /* the model is not on that node: remember it, and try one that may
         * have it (outside the retry budget: each node is tried once) */
        ag__pool_mark_missing(was, r->body.model);
        PR(r)->notfound++;
        int waiting = 0;
        pnode *n = PR(r)->notfound <= (int)p->n ? ag__pool_choose(p, r, &waiting) : NULL;
        if (n) {
            p->st.retried++;
            if (ag__pool_dispatch(p, n, r) == 0) return 1;
        } else if (waiting && p->qlen < p->opt.max_queue && ag__pool_queue_push(p, r) == 0) {
            p->st.retried++;
            return 1;
        }
        *status_io = AG_ENONODE;
        char *dd = ag__request_detail(r);
        if (dd) snprintf(dd, AG__DETAIL, "no healthy node serves model \"%s\" (%s)",
                 r->body.model, detail && *detail ? detail : "HTTP 404");
        return 0;
    }
    if (status == AG_EHTTP && http_status == 429 && was && !ag__request_has_output(r) && PR(r)->limited < 8) {
        /* rate limited: that node again once its time is over (it is avoided
         * until then), and the attempt is not held against the budget */
        PR(r)->limited++;
        for (int i = 0; i < PR(r)->ntried; i++)
            if (PR(r)->tried[i] == was) {
                memmove(&PR(r)->tried[i], &PR(r)->tried[i + 1], (size_t)(PR(r)->ntried - i - 1) * sizeof PR(r)->tried[0]);
                PR(r)->ntried--;
                break;
            }
    }
    int resume = status == AG_ELOST && p->opt.resume && r->keep_partial && r->kind == AG__K_CHAT;
    if (!resume && (ag__request_has_output(r) || !retryable(status, http_status))) return 0;
    /* the request's own budget (at most 7: the nodes tried are kept in 8), else the pool's */
    int budget = r->budget > 0 ? (r->budget < 7 ? r->budget : 7) : r->budget < 0 ? 0 : (int)p->opt.retry_budget;
    if (PR(r)->attempts - PR(r)->notfound - PR(r)->limited > budget) return 0;
    if (resume) {
        if (resume_body(c, r)) return 0;
        p->st.resumed++;
    }
    int waiting;
    pnode *n = ag__pool_choose(p, r, &waiting);
    if (n)
        ag__log(c, AG_LOG_INFO, "%s on %s: %s; retrying on %s", ag_err_name(status), was ? was->name : "?",
                detail && *detail ? detail : ag_strerror(status), n->name);
    if (n) {
        n->retries++;
        p->st.retried++;
        return ag__pool_dispatch(p, n, r) == 0;
    }
    if (waiting && p->qlen < p->opt.max_queue && ag__pool_queue_push(p, r) == 0) {
        p->st.retried++;
        return 1;
    }
    return 0;
}

static void pool_finished(ag_client *c, ag_request *r, int status, const ag_result *res) {
    ag__pool *p = ag__pool_of(c);
    ag__prefix_release(p, r);
    ag__free(c->alloc, PR(r)->orig_body); /* a resume's first body, kept until the end */
    PR(r)->orig_body = NULL;
    if (PR(r)->qprev) ag__pool_queue_remove(p, r);
    if (p->gone) ag__pool_reap_soon(p); /* this request may have been what kept one */
    if (r->pinned) return;
    int had_node = PR(r)->node != NULL;
    ag__pool_account_attempt_end(r, status, res);
    if (had_node) ag__pool_drain_queue(p);
}

static const char *pool_node_name(const ag_client *c, const ag_request *r) {
    (void)c;
    const pnode *n = r->pinned ? r->pin : PR(r)->node ? PR(r)->node : (PR(r)->ntried ? PR(r)->tried[PR(r)->ntried - 1] : NULL);
    return n ? n->name : NULL;
}

static int pool_attempts(const ag_client *c, const ag_request *r) {
    (void)c;
    return PR(r)->attempts;
}

/* A traceparent among r's headers gets a parent id of its own for this
 * attempt (written over the old one, the same length): each attempt is a
 * span, whose id goes into span (16 hex digits, "" when there is none). */
void ag__pool_attempt_span(ag_request *r, char span[17]) {
    span[0] = 0;
    char *h = r->body.headers;
    for (char *l = h; l && *l;) {
        if (strncasecmp(l, "traceparent:", 12) == 0) {
            char *v = l + 12;
            while (*v == ' ' || *v == '\t') v++;
            /* 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags> */
            if (strlen(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return;
            unsigned char b[8];
            do evutil_secure_rng_get_bytes(b, sizeof b);
            while (!(b[0] | b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7]));
            static const char hx[] = "0123456789abcdef";
            for (int i = 0; i < 8; i++) {
                span[2 * i] = v[36 + 2 * i] = hx[b[i] >> 4];
                span[2 * i + 1] = v[37 + 2 * i] = hx[b[i] & 15];
            }
            span[16] = 0;
            return;
        }
        char *e = strchr(l, '\n');
        l = e ? e + 1 : NULL;
    }
}

static void pool_release(ag_client *c, ag_request *r) {
    ag__free(c->alloc, PR(r)->more);
    PR(r)->more = NULL;
}

static size_t pool_tries(const ag_client *c, const ag_request *r, ag_attempt *out, size_t max) {
    (void)c;
    size_t n = 0;
    for (int i = 0; i < PR(r)->nlog && n < max; i++, n++) {
        const struct ptry *t = ag__pool_try(PR(r), i);
        out[n].node = t->n->name;
        out[n].status = t->status;
        out[n].http_status = t->http;
        out[n].start_ms = (double)(t->t0 - r->t0) / 1e6;
        out[n].end_ms = t->t1 ? (double)(t->t1 - r->t0) / 1e6 : 0;
        out[n].span_id = t->span;
    }
    return n;
}

static void pool_destroy(ag_client *c) {
    ag__pool *p = ag__pool_of(c);
    const ag_alloc_funcs *a = c->alloc;
    event_del(&p->tick);
    event_del(&p->reap);
    event_del(&p->kick);
    ag__pool_queue_free(p);
    ag__pool_groups_free(p);
    ag__free(a, p->idx); /* (before the nodes: nothing to forget) */
    p->idx = NULL;
    for (size_t i = 0; i < p->n; i++) ag__pool_node_free(p, p->nodes[i]);
    ag__free(a, p->nodes);
    ag__free(a, p->scratch);
    ag__free(a, p->nodes_file);
    ag__free(a, p->info_models);
    p->closing = 1; /* the block itself is the client's: freed with it */
}

static void pool_stats(const ag_client *c, ag_client_stats *out) {
    ag__pool *p = ag__pool_of(c);
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

const ag__client_ops ag__pool_ops = {
    .routes_sessions = 1,
    .submit = pool_submit,
    .abort = pool_abort,
    .rearm = pool_rearm,
    .retry = pool_retry,
    .finished = pool_finished,
    .destroy = pool_destroy,
    .stats = pool_stats,
    .node_name = pool_node_name,
    .attempts = pool_attempts,
    .tries = pool_tries,
    .release = pool_release,
    .first_output = pool_first_output,
    .req_size = sizeof(preq),
};

/* ---- public ---- */
ag_client *ag_pool_new(struct event_base *base, const ag_pool_options *opts, int *err) {
    int dummy;
    if (!err) err = &dummy;
    ag_pool_options o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    ag_client *c = ag__client_alloc(base, &o.client, sizeof(ag__pool), err);
    if (!c) return NULL;
    ag__pool *p = (ag__pool *)c;
    c->ops = &ag__pool_ops;
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
    p->opt = o;
    p->opt.nodes = NULL;
    p->opt.nodes_file = NULL;
    evtimer_assign(&p->tick, c->base, ag__pool_tick_cb, p);
    evtimer_assign(&p->reap, c->base, ag__pool_reap_cb, p);
    evtimer_assign(&p->kick, c->base, kick_cb, p);
    int rc = 0;
    if (o.nodes_file) {
        size_t l = strlen(o.nodes_file);
        p->nodes_file = ag__malloc(c->alloc, l + 1);
        if (!p->nodes_file) rc = AG_ENOMEM;
        else {
            memcpy(p->nodes_file, o.nodes_file, l + 1);
            rc = ag__pool_load_file(p);
        }
    }
    if (!rc && o.nodes) rc = ag__pool_add_list(p, o.nodes, NULL, NULL);
    if (!rc && !o.nodes && !o.nodes_file) {
        const char *env = getenv("OLLAMA_HOSTS");
        if (env && *env) rc = ag__pool_add_list(p, env, NULL, NULL);
        else {
            const char *h = getenv("OLLAMA_HOST");
            if (!h || !*h) h = getenv("OLLAMA_URL");
            rc = ag__pool_add_node(p, h ? h : "");
        }
    }
    if (!rc && p->n == 0 && p->ngroups == 0) rc = AG_EHOST;
    if (rc) {
        pool_destroy(c);
        ag__client_dealloc(c);
        *err = rc;
        return NULL;
    }
    if (o.probe_interval > 0) {
        struct timeval tv;
        ag__timeval(&tv, o.probe_interval);
        event_assign(&p->tick, c->base, -1, EV_PERSIST, ag__pool_tick_cb, p);
        event_add(&p->tick, &tv);
    }
    *err = 0;
    return c;
}

int ag_pool_add_node(ag_client *c, const char *addr) {
    ag__pool *p = ag__pool_of(c);
    if (!p || !addr) return AG_EINVAL;
    return ag__pool_add_node(p, addr);
}

int ag_pool_remove_node(ag_client *c, const char *addr) {
    ag__pool *p = ag__pool_of(c);
    if (!p || !addr) return AG_EINVAL;
    ag_host h;
    if (ag_host_parse(addr, &h) != 0) return AG_EHOST;
    pnode *n = ag__pool_find_node(p, &h);
    if (!n) return AG_EINVAL;
    ag__pool_node_gone(p, n);
    return 0;
}

int ag_pool_reload(ag_client *c) {
    ag__pool *p = ag__pool_of(c);
    if (!p || (!p->nodes_file && !p->ngroups)) return AG_EINVAL;
    if (p->nodes_file) return ag__pool_load_file(p);
    ag__pool_groups_sweep(p); /* dns+ names: resolve again now */
    return 0;
}

void ag_pool_probe_now(ag_client *c) {
    ag__pool *p = ag__pool_of(c);
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) ag__pool_probe_start(p->nodes[i]);
}

size_t ag_pool_nodes(ag_client *c, ag_node_info *out, size_t max) {
    ag__pool *p = ag__pool_of(c); /* NULL for NULL or another backend */
    if (!p) return 0;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->removed) continue;
        if (k < max) {
            ag_node_info *o = &out[k];
            memset(o, 0, sizeof *o);
            o->name = n->name;
            o->state = n->state;
            o->api = n->dialect;
            o->version = n->version;
            o->in_flight = n->in_flight;
            o->max_in_flight = n->cap;
            o->slots = n->cap;
            o->slots_source = ag__pool_cap_source(n);
            o->learn_samples = n->learn_samples;
            o->learn_waits = n->learn_waits;
            o->reason = n->state == AG_NODE_UP ? "" : n->reason;
            o->state_ms = n->state_t ? (double)(ag__now_ns() - n->state_t) / 1e6 : 0;
            o->requests = n->requests;
            o->errors = n->errors;
            o->retries = n->retries;
            o->failures_in_a_row = n->fails;
            o->tokens = n->tokens;
            o->affinity_hits = n->affinity_hits;
            o->prefix_hits = n->prefix_hits;
            o->prefix_entries = n->pfx_used;
            o->prefix_bytes = n->pfx_cap * sizeof *n->pfx;
            o->sessions = n->sessions;
            o->rate_limited = n->rate_limited;
            int64_t left = n->limited_until - ag__now_ns();
            o->limited_ms = left > 0 ? (double)left / 1e6 : 0;
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
    ag__pool *p = ag__pool_of(c); /* NULL for NULL or another backend */
    if (!p) return 1;
    for (size_t i = 0; i < p->n; i++)
        if (!p->nodes[i]->removed && strcmp(p->nodes[i]->name, name) == 0) return 1;
    return 0;
}

int ag__pool_may_serve(ag_client *c, const char *model) {
    ag__pool *p = ag__pool_of(c); /* NULL for NULL or another backend */
    if (!p) return 1;
    int any_known = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (n->removed) continue;
        if (ag__pool_in_list(n->missing, n->nmissing, model)) {
            any_known = 1;
            continue;
        }
        if (!n->models_known) continue;
        any_known = 1;
        if (ag__pool_in_list(n->models, n->nmodels, model)) return 1;
    }
    return !any_known; /* nothing heard yet: do not claim it is missing */
}

void ag_pool_get_stats(ag_client *c, ag_pool_stats *out) {
    memset(out, 0, sizeof *out);
    ag__pool *p = ag__pool_of(c);
    if (!p) return;
    *out = p->st;
    out->queued_now = p->qlen;
    for (size_t i = 0; i < p->n; i++) {
        if (p->nodes[i]->removed) continue;
        out->nodes++;
        if (p->nodes[i]->state == AG_NODE_UP) out->nodes_up++;
    }
}

const char *ag_node_state_name(int state) {
    switch (state) {
    case AG_NODE_PROBING: return "probing";
    case AG_NODE_UP: return "up";
    case AG_NODE_DOWN: return "down";
    case AG_NODE_EJECTED: return "ejected";
    default: return "?";
    }
}
