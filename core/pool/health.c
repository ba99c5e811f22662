/* core/pool/health.c - health: passive (every attempt's outcome, the peak-EWMA
 * latency) and active (a probe state machine per node: version -> tags -> ps),
 * ejection after consecutive failures and half-open re-admission with backoff. */
#include "core/pool/pool_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- health probes: version -> tags -> ps, one state machine per node ---- */
static void probe_done_cb(ag_request *req, const ag_result *res, void *ud);

/* ---- health bookkeeping ---- */
void ag__pool_schedule_probe(pnode *n, double secs) {
    struct timeval tv;
    ag__timeval(&tv, secs);
    evtimer_add(&n->probe_timer, &tv);
}

/* every state change goes through here: the hook and the log hear of it */
static void set_state(pnode *n, int to) {
    int from = n->state;
    if (from == to) return;
    n->state = to;
    if (to == AG_NODE_EJECTED) {
        ag__prefix_forget(n); /* what it held may be gone when it returns */
        n->up_since = 0;
        n->was_ejected = 1;
    }
    if (to == AG_NODE_UP && from != AG_NODE_PROBING) ag__learn_reset(n, 1); /* perhaps restarted: try afresh */
    if (to == AG_NODE_UP && n->was_ejected) {
        n->up_since = ag__now_ns(); /* its keys come back over affinity_ramp */
        n->was_ejected = 0;
    }
    n->state_t = ag__now_ns();
    ag_client *c = &n->pool->base;
    if (c->hooks.node_state) c->hooks.node_state(n->name, from, to, c->hooks.ud);
    if (to == AG_NODE_UP) {
        ag__log(c, AG_LOG_INFO, "node %s: %s -> up%s", n->name, ag_node_state_name(from),
                from == AG_NODE_PROBING ? "" : " (answered again)");
        n->reason[0] = 0;
    } else {
        ag__log(c, AG_LOG_WARN, "node %s: %s -> %s (%s; %u error%s in a row)", n->name, ag_node_state_name(from),
                ag_node_state_name(to), n->reason[0] ? n->reason : "no answer", n->fails, n->fails == 1 ? "" : "s");
    }
}

/* why: the failure, in a few words, for the log and the dashboard */
static void node_failed_why(pnode *n, int status, const char *detail) {
    if (detail && *detail) snprintf(n->reason, sizeof n->reason, "%s: %s", ag_err_name(status), detail);
    else snprintf(n->reason, sizeof n->reason, "%s: %s", ag_err_name(status), ag_strerror(status));
}

static void node_failed(pnode *n) {
    ag__pool *p = n->pool;
    n->errors++;
    n->fails++;
    if (n->state == AG_NODE_EJECTED) return;
    if (n->fails >= p->opt.eject_after) {
        set_state(n, AG_NODE_EJECTED);
        n->backoff = p->opt.readmit_min;
        ag__pool_schedule_probe(n, n->backoff); /* half-open: one probe decides */
    } else {
        set_state(n, AG_NODE_DOWN);
    }
}

static void node_ok(pnode *n) {
    int was_out = n->state != AG_NODE_UP;
    n->fails = 0;
    set_state(n, AG_NODE_UP);
    if (was_out) ag__pool_drain_queue(n->pool);
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

void ag__pool_account_attempt_end(ag_request *r, int status, const ag_result *res) {
    pnode *n = PR(r)->node;
    if (!n) return;
    PR(r)->node = NULL;
    struct ptry *tr = PR(r)->nlog ? ag__pool_try(PR(r), PR(r)->nlog - 1) : NULL;
    if (tr && tr->n == n && !tr->t1) {
        tr->t1 = ag__now_ns();
        tr->status = status;
        tr->http = r->http_status;
    }
    r->itl_hist = NULL;
    n->in_flight--;
    n->requests++;
    if (status == 0) {
        int64_t now = ag__now_ns();
        int64_t e2e = now - PR(r)->t_attempt;
        ag__hist_add(&n->e2e, e2e);
        if (res && res->timing.chunks > 0 && res->timing.ttft_ns >= 0) {
            int64_t ttft = r->t0 + res->timing.ttft_ns - PR(r)->t_attempt;
            if (ttft < 0) ttft = 0;
            ag__hist_add(&n->ttft, ttft);
            ewma_update(n, ttft);
        } else {
            ewma_update(n, e2e);
        }
        /* output tokens as the node counted them (a whole answer is one chunk
         * but many tokens); chunks where it reports none */
        if (res) n->tokens += res->server.eval_count >= 0 ? (uint64_t)res->server.eval_count : (uint64_t)res->timing.chunks;
        if (r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE) { /* what predictions of its TTFT need */
            /* its time with a place, less what its own prompt cost (a long
             * prompt's turn says little of when the next place frees) */
            double svc = (double)e2e;
            if (res && res->server.prompt_eval_duration > 0) svc -= (double)res->server.prompt_eval_duration;
            if (res && res->server.load_duration > 0) svc -= (double)res->server.load_duration;
            if (svc < 1e5) svc = 1e5;
            n->svc_ns = n->svc_ns > 0 ? n->svc_ns * 0.9 + svc * 0.1 : svc;
            if (res && res->server.prompt_eval_count > 0 && res->server.prompt_eval_duration > 0) {
                double v = (double)res->server.prompt_eval_duration / (double)res->server.prompt_eval_count;
                double was = n->pf_ns_tok;
                n->pf_ns_tok = was > 0 ? was * 0.8 + v * 0.2 : v;
                n->pool->pf_sum += n->pf_ns_tok - was;
                if (was <= 0) n->pool->pf_n++;
            }
        }
        ag__learn_end(r, n, res);
        n->busy_ns += e2e;
        if (r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE || r->kind == AG__K_EMBED ||
            r->kind == AG__K_EMBED_LEGACY)
            ag__pool_mark_loaded(n, r->body.model); /* it is now, whatever /api/ps said */
        n->stalls = 0;
        n->limited_in_a_row = 0;
        node_ok(n);
    } else if (status == AG_EHTTP && r->http_status == 429) {
        /* rate limited: not a failure (not ejected, nothing in a row); no new
         * work until the time it gave, else 1 s doubling to 60 s */
        int ms = r->http.retry_after_ms;
        unsigned k = n->limited_in_a_row < 6 ? n->limited_in_a_row : 6;
        double s = ms >= 0 ? ms / 1e3 : (double)(1u << k);
        if (s > 3600) s = 3600;
        if (ms < 0 && s > 60) s = 60;
        n->limited_until = ag__now_ns() + (int64_t)(s * 1e9);
        n->limited_in_a_row++;
        n->rate_limited++;
        struct timeval tv;
        ag__timeval(&tv, s > 0 ? s : 0.001);
        evtimer_add(&n->limit_ev, &tv);
        ag__log(&n->pool->base, AG_LOG_WARN, "node %s: rate limited (HTTP 429), avoided for %.3f s", n->name, s);
    } else if (node_fault(status, r->http_status)) {
        node_failed_why(n, status, res && res->error ? res->error : n->pool->cur_detail);
        if (status == AG_EIDLE) {
            n->stalls++;
            ag__log(&n->pool->base, AG_LOG_WARN, "node %s: a request timed out (%u in a row)", n->name, n->stalls);
        }
        node_failed(n);
    }
}

static void probe_issue(pnode *n, int op) {
    ag_callbacks cb = {NULL, probe_done_cb, n};
    if (ag__admin_pinned(&n->pool->base, op, NULL, n, &cb, &n->probe_req) != 0) {
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
        if (n->state == AG_NODE_EJECTED) set_state(n, AG_NODE_DOWN);
        n->backoff = 0;
        ag__pool_drain_queue(p);
    } else if (ok) {
        node_ok(n);
        n->backoff = 0;
    } else if (n->state == AG_NODE_EJECTED) {
        n->errors++;
        n->fails++;
        n->backoff = n->backoff * 2 < p->opt.readmit_max ? n->backoff * 2 : p->opt.readmit_max;
        ag__pool_schedule_probe(n, n->backoff);
    } else {
        node_failed(n);
    }
}

/* an OpenAI-dialect node's /props: llama.cpp says its parallel slots there
 * ("total_slots"); what it says caps what the pool sends it (a statement in
 * the node list wins; max_in_flight bounds both) */
static void props_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    pnode *n = ud;
    if (ch->kind != AG_CHUNK_BODY) return;
    if (n->props.len + ch->len > 65536 || ag__buf_add(n->pool->base.alloc, &n->props, ch->text, ch->len))
        ag_request_cancel(req); /* (no /props is that long) */
}
static void props_read(pnode *n, const ag_result *res) {
    ag__pool *p = n->pool;
    const ag_alloc_funcs *a = p->base.alloc;
    unsigned said = 0;
    if (res->status == 0 && res->http_status == 200 && ag__buf_add(a, &n->props, "", 1) == 0) {
        char err[32];
        yajl_val v = ag__json_tree(a, n->props.p, err, sizeof err);
        const char *path[] = {"total_slots", NULL};
        yajl_val ts = v ? yajl_tree_get(v, path, yajl_t_number) : NULL;
        if (ts && YAJL_IS_INTEGER(ts) && YAJL_GET_INTEGER(ts) >= 1 && YAJL_GET_INTEGER(ts) <= 1000000)
            said = (unsigned)YAJL_GET_INTEGER(ts);
        ag__json_tree_free(a, v);
    }
    n->props.len = 0;
    if (said != n->cap_said)
        ag__log(&p->base, AG_LOG_INFO, "node %s: says it runs %u at once (/props total_slots)", n->name, said);
    n->cap_said = said;
    ag__pool_set_cap(n);
}

/* An OpenAI-dialect node without /props may serve Prometheus /metrics:
 * vLLM's vllm:num_requests_running and _waiting, SGLang's
 * sglang:num_running_reqs and num_queue_reqs (summed over their labels). A
 * node seen with requests waiting while N run says it runs N at once; seen
 * with none waiting it says nothing new (more may fit), unless N is over
 * what it said: then N. Read line by line as it streams (such a page holds
 * histograms: it may be long), a line at most 4 KiB. */
static void metrics_line(pnode *n, const char *l, size_t len) {
    static const struct {
        const char *name;
        int waiting;
    } g[] = {{"vllm:num_requests_running", 0}, {"vllm:num_requests_waiting", 1},
             {"sglang:num_running_reqs", 0}, {"sglang:num_queue_reqs", 1}};
    if (!len || l[0] == '#') return;
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        size_t k = strlen(g[i].name);
        if (len <= k || memcmp(l, g[i].name, k) != 0 || (l[k] != '{' && l[k] != ' ')) continue;
        const char *v = l + len;
        while (v > l && v[-1] != ' ') v--;
        char num[32];
        size_t nl = (size_t)(l + len - v);
        if (!nl || nl >= sizeof num) return;
        memcpy(num, v, nl);
        num[nl] = 0;
        char *end;
        double x = strtod(num, &end);
        if (end == num || *end || !(x >= 0 && x <= 1e6)) return;
        double *acc = g[i].waiting ? &n->m_waiting : &n->m_running;
        *acc = (*acc < 0 ? 0 : *acc) + x;
        return;
    }
}
static void metrics_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    pnode *n = ud;
    (void)req;
    if (ch->kind != AG_CHUNK_BODY) return;
    const char *p = ch->text, *e = ch->text + ch->len;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t take = (size_t)((nl ? nl : e) - p);
        if (n->props.len + take > 4096) n->props.len = 4097; /* too long: skipped to its end */
        else if (ag__buf_add(n->pool->base.alloc, &n->props, p, take)) n->props.len = 4097;
        if (!nl) break;
        if (n->props.len <= 4096) metrics_line(n, n->props.p ? n->props.p : "", n->props.len);
        n->props.len = 0;
        p = nl + 1;
    }
}
static void metrics_read(pnode *n, const ag_result *res) {
    if (n->props.len && n->props.len <= 4096) metrics_line(n, n->props.p, n->props.len); /* a last line */
    n->props.len = 0;
    if (res->status || res->http_status != 200 || n->m_running < 0) return;
    unsigned running = (unsigned)n->m_running, said = n->cap_metrics;
    if (n->m_waiting > 0 && running >= 1) said = running;
    else if (said && running > said) said = running;
    if (said != n->cap_metrics)
        ag__log(&n->pool->base, AG_LOG_INFO, "node %s: runs %u at once by its /metrics (%u waiting)", n->name, said,
                (unsigned)(n->m_waiting > 0 ? n->m_waiting : 0));
    n->cap_metrics = said;
    ag__pool_set_cap(n);
}

/* Re-entered with each probe answer; the phase says which one it was. */
static void probe_step(pnode *n, const ag_result *res) {
    const ag_alloc_funcs *a = n->pool->base.alloc;
    if (n->phase == PR_PROPS) { /* optional: a node without /props is no less up */
        int had = res->status == 0 && res->http_status == 200;
        props_read(n, res);
        if (!had && !n->cap_stated) { /* no /props: perhaps /metrics (vLLM, SGLang) */
            n->phase = PR_METRICS;
            n->props.len = 0;
            n->m_running = n->m_waiting = -1;
            ag_callbacks cb = {metrics_chunk, probe_done_cb, n};
            if (ag__get_pinned(&n->pool->base, "/metrics", n, &cb, &n->probe_req) == 0) return;
            n->probe_req = NULL;
        }
        probe_finish(n, 1);
        return;
    }
    if (n->phase == PR_METRICS) {
        metrics_read(n, res);
        probe_finish(n, 1);
        return;
    }
    if (res->status) {
        node_failed_why(n, res->status, res->error);
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
        if (ag__pool_set_list(a, &n->models, &n->nmodels, res) == 0) {
            n->models_known = 1;
            ag__pool_free_list(a, &n->missing, &n->nmissing); /* the list is the truth again */
        }
        n->phase = PR_PS;
        probe_issue(n, AG_OP_PS);
        break;
    case PR_PS:
        ag__pool_set_list(a, &n->loaded, &n->nloaded, res);
        if (n->dialect == AG_API_OPENAI) { /* what such a node may say of its capacity */
            n->phase = PR_PROPS;
            n->props.len = 0;
            ag_callbacks cb = {props_chunk, probe_done_cb, n};
            if (ag__get_pinned(&n->pool->base, "/props", n, &cb, &n->probe_req) == 0) break;
            n->probe_req = NULL;
        }
        probe_finish(n, 1);
        break;
    case PR_PROPS:
    case PR_METRICS:
        break;
    case PR_IDLE:
        break;
    }
}

static void probe_done_cb(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    pnode *n = ud;
    n->probe_req = NULL;
    if (res->status == AG_ESHUTDOWN || n->pool->closing) return; /* the pool is going away */
    probe_step(n, res);
}

void ag__pool_probe_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    pnode *n = arg;
    if (n->probe_req) ag_request_cancel(n->probe_req); /* -> probe_step with an error */
}

void ag__pool_probe_start(pnode *n) {
    if (n->phase != PR_IDLE || n->removed) return;
    n->phase = PR_VERSION;
    struct timeval tv;
    ag__timeval(&tv, n->pool->opt.probe_timeout);
    evtimer_add(&n->probe_timeout, &tv);
    probe_issue(n, AG_OP_VERSION);
}

void ag__pool_probe_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__pool_probe_start(arg);
}

void ag__pool_tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__pool *p = arg;
    for (size_t i = 0; i < p->n; i++)
        if (p->nodes[i]->state != AG_NODE_EJECTED) ag__pool_probe_start(p->nodes[i]);
}
