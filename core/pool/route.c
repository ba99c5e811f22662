/* core/pool/route.c - routing: which node a request goes to (power of two
 * choices on peak-EWMA cost, round robin, random, least in flight), the per-
 * node caps, and the pool's bounded queue when every candidate is full. */
#include "core/pool/pool_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "core/base/hash.h"

/* ---- small helpers ---- */
static uint64_t rnd(ag__pool *p) { /* xorshift64* */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 2685821657736338717ull;
}

/* Up, not heard from yet, or failing but not ejected (suspect: it costs more,
 * see cost()); ejected nodes get only their half-open probes. */
int ag__pool_routable(const pnode *n) {
    return !n->removed && n->state != AG_NODE_EJECTED;
}

/* rate limited (it answered 429): no new work until then */
int ag__pool_limited(const pnode *n, int64_t now) {
    return n->limited_until > now;
}

/* the request was encoded for this node's API (an OpenAI node cannot pull) */
static int speaks(const ag_request *r, const pnode *n) {
    return n->dialect == AG_API_OPENAI ? r->body.oai_path != NULL : r->body.path != NULL;
}

static int tried(const ag_request *r, const pnode *n) {
    for (int i = 0; i < PR(r)->ntried; i++)
        if (PR(r)->tried[i] == n) return 1;
    return 0;
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
    if (any_loaded && !ag__pool_in_list(n->loaded, n->nloaded, model)) c *= 3;
    if (n->fails) c *= (double)(1u << (n->fails < 8 ? n->fails : 8));
    return c;
}

/* Session affinity: rendezvous hashing (each candidate scored by the key
 * and its name; the highest takes the key, so a node that goes away moves
 * only its own keys) with bounded loads (a node over (1 + slack) x the mean
 * in flight, plus one, passes the key to the next). Among the nroom
 * candidates with room at the front of scratch; NULL when every one is over
 * its bound (the normal policy then). */
/* the most a node may have in flight to take a request for its affinity */
static double load_bound(ag__pool *p, size_t nc, size_t nroom) {
    double load = 1;
    for (size_t i = 0; i < nroom; i++) load += p->scratch[i]->in_flight;
    double slack = p->opt.affinity_slack > 0 ? p->opt.affinity_slack : 0.25;
    return (1 + slack) * load / (double)(nc ? nc : 1) + 1;
}

/* a node back from ejection less than affinity_ramp ago takes a share of
 * its keys growing with the time since (the same keys first) */
static int returning(ag__pool *p, const pnode *n, uint64_t key) {
    if (!n->up_since || p->opt.affinity_ramp < 0) return 0;
    double ramp = (p->opt.affinity_ramp > 0 ? p->opt.affinity_ramp : 30) * 1e9;
    double since = (double)(ag__now_ns() - n->up_since);
    if (since >= ramp) return 0;
    return (double)(ag__mix64(key ^ 0x5851f42d4c957f2dull) >> 11) / 9007199254740992.0 >= since / ramp;
}

static pnode *by_session(ag__pool *p, uint64_t key, size_t nc, size_t nroom) {
    double bound = load_bound(p, nc, nroom), idle, gap;
    ag__affinity_gap(p, nroom, &idle, &gap);
    pnode *best = NULL;
    uint64_t best_score = 0;
    for (size_t i = 0; i < nroom; i++) {
        pnode *n = p->scratch[i];
        if ((double)n->in_flight + 1 > bound || (double)n->in_flight > idle + gap || returning(p, n, key)) continue;
        uint64_t sc = ag__mix64(key ^ n->key);
        if (!best || sc > best_score) {
            best = n;
            best_score = sc;
        }
    }
    return best;
}

/* the places n has for a request: a place being tried (learn.c) is not
 * for one above the lowest class about (it may not exist) */
static unsigned cap_for(const pnode *n, int may_try) {
    return !may_try && n->learn_sure < n->cap && ag__learn_on(n) ? n->learn_sure : n->cap;
}

/* the model's entry in tops: the classes seen for it lately */
static unsigned tops_of(ag__pool *p, const char *model, int prio, int64_t now, int *fresh) {
    unsigned k = 0;
    *fresh = 0;
    while (k < p->ntops && strcmp(p->tops[k].model, model) != 0) k++;
    if (k < p->ntops) return k;
    if (p->ntops < sizeof p->tops / sizeof p->tops[0]) { /* a model not seen lately: its entry (or the stalest one's) */
        k = p->ntops++;
    } else {
        k = 0;
        for (unsigned i = 1; i < p->ntops; i++)
            if (p->tops[i].at < p->tops[k].at) k = i;
    }
    snprintf(p->tops[k].model, sizeof p->tops[k].model, "%s", model);
    p->tops[k].prio = p->tops[k].lo = prio;
    p->tops[k].at = p->tops[k].lo_at = now;
    *fresh = 1;
    return k;
}

/* r may take a place being tried: no lower class was seen for its model in
 * the last minute */
static int may_try(ag__pool *p, const ag_request *r, const char *model, int64_t now) {
    int fresh;
    unsigned k = tops_of(p, model, r->priority, now, &fresh);
    if (fresh) return 1;
    if (r->priority <= p->tops[k].lo || now - p->tops[k].lo_at > (int64_t)60000000000) {
        p->tops[k].lo = r->priority;
        p->tops[k].lo_at = now;
        return 1;
    }
    return 0;
}

/* ---- routing by predicted time to first token ----
 * For a request whose prompt some node may hold (a session, or a prompt of
 * a block or more), each candidate is scored by when its first token would
 * come: the wait for a place there (none while it has room; else the
 * requests ahead of it, the queued ones that chose this node and itself,
 * times the node's request time over its places) plus the evaluation of
 * the part of the prompt the node does not hold (the longest prefix in its
 * table; tokens taken as 4 bytes, at the node's own reported rate, else the
 * mean of the others', else 0.25 ms). The least wins; a conversation stays
 * where its cache is while waiting there is cheaper than evaluating its
 * whole history elsewhere, and moves when it is not. Near-ties (within 2 %
 * and 0.1 ms: a new conversation, held nowhere) go to a node with room,
 * then to the lightest load for its places (in flight and waiting for it:
 * conversations spread in proportion to what nodes run), then by the
 * session's rendezvous score. (What a node holds is taken from the
 * table of what was sent there: a node whose cache keeps less, as
 * Ollama's keeps a conversation in the slot that ran it, may have let it
 * go; modelling that by the prompts sent since made conversations move
 * for nothing in bench/gateway/conversations.sh, and was left out.) */
#define PRED_BYTES_PER_TOKEN 4.0
#define PRED_PF_DEFAULT_NS 250000.0

static double pf_rate(const ag__pool *p, const pnode *n) {
    if (n->pf_ns_tok > 0) return n->pf_ns_tok;
    return p->pf_n && p->pf_sum > 0 ? p->pf_sum / p->pf_n : PRED_PF_DEFAULT_NS;
}

/* the expected wait for a place on n (cap: the places r may take) */
static double wait_ns(const pnode *n, unsigned cap, const ag_request *r) {
    if (n->in_flight < cap) return 0;
    double svc = n->svc_ns > 0 ? n->svc_ns : n->ewma_t ? 4 * n->ewma_ns : 1e9;
    double ahead = (double)(n->waiters - (PR(r)->want == n)) + 1 + (double)(n->in_flight - cap);
    return ahead * svc / (double)(cap ? cap : 1);
}

static double predicted_ns(const ag__pool *p, const pnode *n, unsigned cap, const ag_request *r, int held) {
    double unc = (double)PR(r)->pbytes - (double)held * AG__PFX_BLOCK;
    if (unc < 0) unc = 0;
    double t = wait_ns(n, cap, r) + unc / PRED_BYTES_PER_TOKEN * pf_rate(p, n);
    if (n->fails) t = (t + 1e6) * (double)(1u << (n->fails < 8 ? n->fails : 8)); /* suspect */
    return t;
}

static pnode *by_prediction(ag__pool *p, ag_request *r, size_t nc, int tries, int *waiting) {
    pnode *best = NULL;
    double bt = 0, bload = 0;
    int broom = 0, bheld = 0, bhs = 0, max_held = 0, any_hs = 0;
    uint64_t bscore = 0;
    for (size_t i = 0; i < nc; i++) {
        pnode *n = p->scratch[i];
        if (r->session && nc > 1 && returning(p, n, r->session)) continue; /* (its keys come back gradually) */
        unsigned cap = cap_for(n, tries);
        int held = ag__prefix_held(n, r);
        int hs = r->session && ag__prefix_has_session(n, r->session);
        if (held > max_held) max_held = held;
        any_hs |= hs;
        double t = predicted_ns(p, n, cap, r, held);
        int room = n->in_flight < cap;
        double load = (double)(n->in_flight + n->waiters) / (double)(cap ? cap : 1);
        uint64_t score = r->session ? ag__mix64(r->session ^ n->key) : 0;
        int take;
        if (!best) take = 1;
        else if (t < bt - (bt * 0.02 + 1e5)) take = 1;
        else if (t > bt + (bt * 0.02 + 1e5)) take = 0;
        else if (room != broom) take = room;
        else if (load != bload) take = load < bload; /* a new conversation: where it has most room */
        else take = r->session && score > bscore;
        if (take) {
            best = n;
            bt = t;
            broom = room;
            bload = load;
            bscore = score;
            bheld = held;
            bhs = hs;
        }
    }
    if (!best) return NULL;
    if (!broom) { /* waiting for it is cheaper than any place now */
        if (PR(r)->want != best) {
            ag__pool_unwant(r);
            best->waiters++;
            PR(r)->want = best;
        }
        *waiting = 1;
        return NULL;
    }
    if (r->session) best->affinity_hits++;
    else if (bheld) best->prefix_hits++;
    if (any_hs || max_held > 0) { /* a follow-up: did it stay with what it left? */
        p->st.followups++;
        p->st.followups_stayed += r->session && any_hs ? bhs : bheld == max_held;
    }
    return best;
}

/* ---- the pool-wide index (over 32 nodes) ---- */
#define IDX_SLOTS 8192
static uint64_t session_hash(uint64_t key) {
    uint64_t h = ag__mix64(key ^ 0x2545f4914f6cdd1dull);
    return h ? h : 1;
}

static struct pidx *idx_find(ag__pool *p, uint64_t h, int make) {
    if (!p->idx) {
        if (!make || !(p->idx = ag__calloc(p->base.alloc, IDX_SLOTS * sizeof *p->idx))) return NULL;
    }
    size_t home = (size_t)(h % IDX_SLOTS);
    for (size_t i = 0; i < 8; i++) { /* a short probe; past it the home slot is taken over */
        struct pidx *e = &p->idx[(home + i) % IDX_SLOTS];
        if (e->h == h) return e;
        if (!e->h) {
            if (!make) return NULL;
            e->h = h;
            return e;
        }
    }
    if (!make) return NULL;
    struct pidx *e = &p->idx[home];
    memset(e, 0, sizeof *e);
    e->h = h;
    return e;
}

static void idx_note(ag__pool *p, uint64_t h, pnode *n) {
    struct pidx *e = idx_find(p, h, 1);
    if (!e) return; /* (out of memory: the full scan) */
    int k = 0;
    while (k < 3 && e->n[k] != n) k++;
    memmove(e->n + 1, e->n, (size_t)k * sizeof e->n[0]); /* n first, the others after it */
    e->n[0] = n;
}

void ag__pool_index_forget(ag__pool *p, const pnode *n) {
    if (!p->idx) return;
    for (size_t i = 0; i < IDX_SLOTS; i++)
        for (int k = 0; k < 4; k++)
            if (p->idx[i].n[k] == n) {
                memmove(p->idx[i].n + k, p->idx[i].n + k + 1, (size_t)(3 - k) * sizeof(pnode *));
                p->idx[i].n[3] = NULL;
                k--;
            }
}

static int eligible(const pnode *n, const ag_request *r, const char *model, int64_t now) {
    return ag__pool_routable(n) && !tried(r, n) && !ag__pool_limited(n, now) && ag__pool_node_serves(n, model) &&
           speaks(r, n);
}

/* the candidates of a prediction in a large cluster: the nodes the index
 * names for r's prompt or session, and two sampled ones; their count */
static size_t indexed_candidates(ag__pool *p, ag_request *r, const char *model, int64_t now) {
    size_t nc = 0;
    uint64_t keys[2] = {PR(r)->npfx > 0 ? PR(r)->pfx[0] : 0, r->session ? session_hash(r->session) : 0};
    for (int j = 0; j < 2; j++) {
        struct pidx *e = keys[j] ? idx_find(p, keys[j], 0) : NULL;
        for (int k = 0; e && k < 4 && e->n[k]; k++) {
            pnode *n = e->n[k];
            int dup = 0;
            for (size_t i = 0; i < nc; i++) dup |= p->scratch[i] == n;
            if (!dup && eligible(n, r, model, now)) p->scratch[nc++] = n;
        }
    }
    for (int t = 0, got = 0; t < 16 && got < 2; t++) {
        pnode *n = p->nodes[rnd(p) % p->n];
        int dup = 0;
        for (size_t i = 0; i < nc; i++) dup |= p->scratch[i] == n;
        if (dup || !eligible(n, r, model, now)) continue;
        p->scratch[nc++] = n;
        got++;
    }
    return nc;
}

void ag__pool_unwant(ag_request *r) {
    if (PR(r)->want) {
        PR(r)->want->waiters--;
        PR(r)->want = NULL;
    }
}

/* the earliest a queued request can expect to start: its place among the
 * requests of its class and above, at the rate the candidates finish them */
static double queue_wait_ns(ag__pool *p, const ag_request *r, const char *model) {
    double rate = 0; /* requests a nanosecond */
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (!ag__pool_routable(n) || !ag__pool_node_serves(n, model) || !speaks(r, n)) continue;
        double svc = n->svc_ns > 0 ? n->svc_ns : n->ewma_t ? 4 * n->ewma_ns : 0;
        if (svc <= 0) return 0; /* a node not measured yet: no foresight */
        rate += (double)n->cap / svc;
    }
    if (rate <= 0) return 0;
    unsigned ahead = 0;
    for (pflow *f = p->flows; f; f = f->all)
        if (f->priority >= r->priority) ahead += f->n;
    return ((double)ahead + 1) / rate;
}

/* priority_reserve, per model: r is of a class below one seen for its model
 * in the last minute, and the nodes that serve that model have no more than
 * the reserve of free places left: it waits. (Per model, so that interactive
 * use of one model does not hold back a batch on nodes that serve another.) */
static int leave_for_others(ag__pool *p, const ag_request *r, const char *model, int64_t now) {
    if (!p->opt.priority_reserve) return 0;
    int fresh;
    unsigned k = tops_of(p, model, r->priority, now, &fresh);
    if (fresh) return 0;
    int expired = now - p->tops[k].at > (int64_t)60000000000; /* a minute */
    if (r->priority >= p->tops[k].prio || expired) {
        p->tops[k].prio = r->priority;
        p->tops[k].at = now;
        return 0;
    }
    unsigned room = 0; /* sure places only: the reserve is not a place being tried */
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        unsigned cap = cap_for(n, 0);
        if (ag__pool_routable(n) && !ag__pool_limited(n, now) && cap > n->in_flight && ag__pool_node_serves(n, model))
            room += cap - n->in_flight;
    }
    return room <= p->opt.priority_reserve;
}

/* Picks a node for r, or NULL. *waiting is set when candidates exist but all
 * are at their caps (the request should wait in the queue). */
pnode *ag__pool_choose(ag__pool *p, ag_request *r, int *waiting) {
    const char *model = r->kind == AG__K_PULL ? "" : r->body.model; /* a pull may go anywhere */
    size_t nc = 0, nroom = 0;
    *waiting = 0;
    if (r->body.pin) { /* forwarded to one named node: that node or none */
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
    int64_t now = ag__now_ns();
    if (r->kind != AG__K_PULL && leave_for_others(p, r, model, now)) {
        *waiting = 1; /* the last places are kept for a higher class */
        return NULL;
    }
    int tries = r->kind == AG__K_PULL || may_try(p, r, model, now);
    int affinity = p->opt.affinity_slack >= 0;
    int by_prefix = affinity && !r->session && p->opt.prefix_entries >= 0 && ag__prefix_of(p, r) > 0;
    if (p->opt.policy == AG_POLICY_P2C && p->n > 32 && !(r->session && affinity) && !by_prefix) {
        /* large clusters: sample two eligible nodes instead of scanning all;
         * the full scan below remains the fallback (few eligible nodes) */
        pnode *x = NULL, *y = NULL;
        for (int t = 0; t < 16 && !y; t++) {
            pnode *n = p->nodes[rnd(p) % p->n];
            if (n == x || !ag__pool_routable(n) || tried(r, n) || n->in_flight >= cap_for(n, tries) || ag__pool_limited(n, now) ||
                !ag__pool_node_serves(n, model) || !speaks(r, n))
                continue;
            if (!x) x = n;
            else y = n;
        }
        if (y) {
            int al = *model && (ag__pool_in_list(x->loaded, x->nloaded, model) || ag__pool_in_list(y->loaded, y->nloaded, model));
            return cost(x, model, al) <= cost(y, model, al) ? x : y;
        }
    }
    int predict = affinity && p->opt.learn_capacity >= 0 && (r->session || by_prefix);
    if (predict && !by_prefix) ag__prefix_of(p, r); /* a session's prompt: what each node holds of it */
    if (predict && p->n > 32) { /* the index's nodes and two sampled: not every node */
        nc = indexed_candidates(p, r, model, now);
        if (nc >= 2) return by_prediction(p, r, nc, tries, waiting);
        nc = 0;
    }
    size_t nlimited = 0;
    for (size_t i = 0; i < p->n; i++) {
        pnode *n = p->nodes[i];
        if (ag__pool_routable(n) && !tried(r, n) && ag__pool_node_serves(n, model) && speaks(r, n)) {
            if (ag__pool_limited(n, now)) nlimited++; /* rate limited: wait for it rather than fail */
            else p->scratch[nc++] = n;
        }
    }
    if (nc == 0) {
        *waiting = nlimited > 0;
        return NULL;
    }
    if (predict) {
        pnode *n = by_prediction(p, r, nc, tries, waiting);
        if (n || *waiting) return n;
    }
    int any_loaded = 0;
    for (size_t i = 0; i < nc; i++) {
        pnode *n = p->scratch[i];
        if (n->in_flight < cap_for(n, tries)) {
            p->scratch[nroom++] = n;
            if (*model && ag__pool_in_list(n->loaded, n->nloaded, model)) any_loaded = 1;
        }
    }
    if (nroom == 0) {
        *waiting = 1;
        return NULL;
    }
    if (r->session && p->opt.affinity_slack >= 0) {
        pnode *n = by_session(p, r->session, nc, nroom);
        if (n) {
            n->affinity_hits++;
            return n;
        }
    }
    if (by_prefix && nroom > 1) {
        pnode *n = ag__prefix_choose(p, r, nroom, load_bound(p, nc, nroom), cost, model, any_loaded);
        if (n) {
            n->prefix_hits++;
            return n;
        }
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

/* n now holds r's prompt (or will): its table, and the pool's index */
static void remember(ag__pool *p, pnode *n, ag_request *r) {
    n->pfx_seq++; /* one more prompt sent here: older entries age by one */
    ag__prefix_store(p, n, r);
    if (r->session) ag__prefix_store_session(p, n, r->session);
    if (p->n > 32) { /* the pool-wide index: where to look next time */
        if (PR(r)->npfx > 0) idx_note(p, PR(r)->pfx[0], n);
        if (r->session) idx_note(p, session_hash(r->session), n);
    }
}

int ag__pool_dispatch(ag__pool *p, pnode *n, ag_request *r) {
    char span[17];
    ag__pool_attempt_span(r, span);
    ag__target t = {n->host_header, n->host.path, p->base.user_agent, n->auth, n->dialect};
    int rc = ag__request_frame(r, &t);
    if (rc) return rc;
    n->in_flight++;
    PR(r)->node = n;
    if (PR(r)->ntried < (int)(sizeof PR(r)->tried / sizeof PR(r)->tried[0])) PR(r)->tried[PR(r)->ntried++] = n;
    PR(r)->attempts++;
    PR(r)->t_attempt = ag__now_ns();
    if (PR(r)->nlog == 1 && !PR(r)->more) PR(r)->more = ag__malloc(p->base.alloc, 7 * sizeof *PR(r)->more);
    if (PR(r)->nlog < (PR(r)->more ? 8 : 1)) {
        struct ptry *tr = ag__pool_try(PR(r), PR(r)->nlog++);
        tr->n = n;
        tr->status = tr->http = 0;
        tr->t0 = PR(r)->t_attempt;
        tr->t1 = 0;
        memcpy(tr->span, span, sizeof tr->span);
    }
    PR(r)->k_at = n->in_flight;
    /* a model the node has not loaded is no sample: whatever waits for its
     * load (every request for it meanwhile, not only the one that reports
     * load_duration) is late for another reason than places */
    PR(r)->learned = ag__pool_in_list(n->loaded, n->nloaded, r->body.model) ? 0 : 2; /* (learn.c: open, or none) */
    if (p->base.hooks.attempt && !r->pinned) p->base.hooks.attempt(r, n->name, PR(r)->attempts, p->base.hooks.ud);
    r->itl_hist = &n->itl;
    p->st.routed++;
    rc = ag__http_start(n->t, &r->http);
    if (rc) {
        n->in_flight--;
        PR(r)->node = NULL;
        PR(r)->nlog--; /* it never went */
    } else if (p->opt.affinity_slack >= 0 && p->opt.prefix_entries >= 0) {
        remember(p, n, r);
    }
    return rc;
}

/* ---- the queue: priority classes, tenants taking turns within each ---- */
static int ring_of(ag__pool *p, int prio) { /* the class's index (highest first), made when new */
    size_t i = 0;
    while (i < p->nrings && p->ring_prio[i] > prio) i++;
    if (i < p->nrings && p->ring_prio[i] == prio) return (int)i;
    const ag_alloc_funcs *a = p->base.alloc;
    pflow **nr = ag__realloc(a, p->rings, (p->nrings + 1) * sizeof *nr);
    if (!nr) return -1;
    p->rings = nr;
    int *np = ag__realloc(a, p->ring_prio, (p->nrings + 1) * sizeof *np);
    if (!np) return -1;
    p->ring_prio = np;
    unsigned *nn = ag__realloc(a, p->ring_n, (p->nrings + 1) * sizeof *nn);
    if (!nn) return -1;
    p->ring_n = nn;
    memmove(p->rings + i + 1, p->rings + i, (p->nrings - i) * sizeof *p->rings);
    memmove(p->ring_prio + i + 1, p->ring_prio + i, (p->nrings - i) * sizeof *p->ring_prio);
    memmove(p->ring_n + i + 1, p->ring_n + i, (p->nrings - i) * sizeof *p->ring_n);
    p->rings[i] = NULL;
    p->ring_prio[i] = prio;
    p->ring_n[i] = 0;
    p->nrings++;
    return (int)i;
}

int ag__pool_queue_push(ag__pool *p, ag_request *r) {
    pflow *f = NULL;
    for (pflow *x = p->flows; x && !f; x = x->all)
        if (x->priority == r->priority && x->tenant == r->tenant) f = x;
    int ri = ring_of(p, r->priority);
    if (ri < 0) return AG_ENOMEM;
    if (!f) { /* a flow exists while it has requests */
        f = ag__calloc(p->base.alloc, sizeof *f);
        if (!f) return AG_ENOMEM;
        f->priority = r->priority;
        f->tenant = r->tenant;
        f->tail = &f->head;
        f->all = p->flows;
        p->flows = f;
        pflow *cur = p->rings[ri]; /* into the ring, last in the round */
        if (!cur) {
            f->next = f->prev = f;
            p->rings[ri] = f;
        } else {
            f->next = cur;
            f->prev = cur->prev;
            cur->prev->next = f;
            cur->prev = f;
        }
        p->ring_n[ri]++;
    }
    PR(r)->qnext = NULL;
    PR(r)->qprev = f->tail;
    *f->tail = r;
    f->tail = &PR(r)->qnext;
    f->n++;
    PR(r)->flow = f;
    p->qlen++;
    p->st.queued_total++;
    return 0;
}

void ag__pool_queue_remove(ag__pool *p, ag_request *r) {
    ag__pool_unwant(r);
    pflow *f = PR(r)->flow;
    if (!PR(r)->qprev || !f) return;
    if (PR(r)->qnext) PR(PR(r)->qnext)->qprev = PR(r)->qprev;
    else f->tail = PR(r)->qprev;
    *PR(r)->qprev = PR(r)->qnext;
    PR(r)->qnext = NULL;
    PR(r)->qprev = NULL;
    PR(r)->flow = NULL;
    p->qlen--;
    if (--f->n) return;
    /* empty: out of its ring and freed */
    int ri = ring_of(p, f->priority);
    if (ri >= 0) {
        if (f->next == f) p->rings[ri] = NULL;
        else {
            f->prev->next = f->next;
            f->next->prev = f->prev;
            if (p->rings[ri] == f) p->rings[ri] = f->next;
        }
        p->ring_n[ri]--;
    }
    for (pflow **pp = &p->flows; *pp; pp = &(*pp)->all)
        if (*pp == f) {
            *pp = f->all;
            break;
        }
    ag__free(p->base.alloc, f);
}

void ag__pool_queue_free(ag__pool *p) {
    while (p->flows) {
        pflow *f = p->flows;
        p->flows = f->all;
        ag__free(p->base.alloc, f);
    }
    ag__free(p->base.alloc, p->rings);
    ag__free(p->base.alloc, p->ring_prio);
    ag__free(p->base.alloc, p->ring_n);
    p->rings = NULL;
    p->ring_prio = NULL;
    p->ring_n = NULL;
    p->nrings = 0;
}

/* a flow's newest request (its tail is the qnext field of it) */
static ag_request *flow_last(pflow *f) {
    if (!f->head) return NULL;
    preq *q = (preq *)(void *)((char *)f->tail - offsetof(preq, qnext));
    return (ag_request *)(void *)q - 1; /* (the pool's state follows its request) */
}

/* The queue is full and r would wait: whom it is fairest to refuse. A
 * request of a lower class than r's, else, in r's class, of the tenant with
 * the most waiting when that is more than r's tenant would have: its newest.
 * NULL when that is r itself. So a flood that fills the queue makes room for
 * others' requests rather than shutting them out. */
static ag_request *fairest_refusal(ag__pool *p, const ag_request *r) {
    pflow *mine = NULL, *worst = NULL;
    for (pflow *f = p->flows; f; f = f->all) {
        if (!f->n) continue;
        if (f->priority == r->priority && f->tenant == r->tenant) mine = f;
        if (!worst || f->priority < worst->priority || (f->priority == worst->priority && f->n > worst->n)) worst = f;
    }
    if (!worst || worst->priority > r->priority) return NULL;
    if (worst->priority == r->priority && worst->n <= (mine ? mine->n : 0) + 1) return NULL;
    return flow_last(worst);
}

/* Routes r now, or queues it. 0, AG_EQUEUEFULL or AG_ENONODE. */
int ag__pool_route(ag__pool *p, ag_request *r) {
    int waiting;
    pnode *n = ag__pool_choose(p, r, &waiting);
    if (n) return ag__pool_dispatch(p, n, r);
    if (!waiting && !p->resolving) return AG_ENONODE; /* else: a dns+ name's first answer may bring one */
    if (r->tm && r->tm->start_by && r->kind != AG__K_PULL) { /* deadlines with foresight */
        double w = queue_wait_ns(p, r, r->body.model ? r->body.model : "");
        if (w > 0 && (double)ag__now_ns() + w > (double)r->tm->start_by) {
            ag__pool_unwant(r);
            p->st.refused_deadline++;
            char *d = ag__request_detail(r);
            if (d)
                snprintf(d, AG__DETAIL, "the request cannot start before its deadline: about %.0f ms of work is queued ahead of it",
                         w / 1e6);
            return AG_EDEADLINE;
        }
    }
    if (p->qlen >= p->opt.max_queue) {
        p->st.rejected_queue_full++;
        ag_request *v = fairest_refusal(p, r);
        if (!v) {
            ag__pool_unwant(r);
            return AG_EQUEUEFULL;
        }
        ag__pool_queue_remove(p, v);
        ag__request_fail_later(v, AG_EQUEUEFULL,
                               "the pool's queue is full: this request (the newest of the tenant with the most waiting, or "
                               "of a lower priority class) made room for another");
    }
    return ag__pool_queue_push(p, r);
}

/* Capacity came free, or a node came back: start what waits. Classes in
 * order, highest first; within a class the flows (tenants) take turns, one
 * request a turn, each its oldest that can go now (a look at its first 64:
 * one for a model whose nodes are full, or one waiting for the node that
 * holds its conversation, does not hold up another that can go);
 * a class is done when a whole round starts nothing. A request nothing can
 * serve any more ends with AG_ENONODE. */
void ag__pool_drain_queue(ag__pool *p) {
    if (p->draining) { /* from a dispatch below: once more when done */
        p->drain_again = 1;
        return;
    }
    p->draining = 1;
    do {
        p->drain_again = 0;
        for (size_t c = 0; c < p->nrings; c++) {
            unsigned misses = 0;
            while (p->rings[c] && misses < p->ring_n[c]) {
                pflow *f = p->rings[c];
                ag_request *pick = NULL;
                pnode *n = NULL;
                int waiting = 0, k = 0;
                for (ag_request *r = f->head; r && k < 64; r = PR(r)->qnext, k++) {
                    n = ag__pool_choose(p, r, &waiting);
                    if (n || !waiting) {
                        pick = r;
                        break;
                    }
                }
                if (!pick) { /* nothing of this flow can go: the next one's turn */
                    p->rings[c] = f->next;
                    misses++;
                    continue;
                }
                misses = 0;
                pflow *next = f->next;
                int emptied = f->n == 1;
                ag__pool_queue_remove(p, pick); /* (an emptied flow leaves the ring: the turn moves on) */
                if (!emptied) p->rings[c] = next;
                if (!n || ag__pool_dispatch(p, n, pick) != 0) {
                    char msg[320];
                    snprintf(msg, sizeof msg, "no healthy node serves model \"%s\"", pick->body.model);
                    ag__request_fail_later(pick, AG_ENONODE, msg);
                }
            }
        }
    } while (p->drain_again);
    p->draining = 0;
}

/* For bench/micro/bench_sched.c: `iters` routing decisions for model, as a request
 * would make them (candidates, caps, policy); returns how many found a node.
 * With a JSON body (a chat's), each decision is a new request's whole
 * prefix-affinity cost: hashing its prompt, the lookups, storing it where it
 * goes. */
long ag__pool_bench_choose(ag_client *c, const char *model, const char *body, long iters) {
    ag__pool *p = ag__pool_of(c);
    ag_request *r = calloc(1, sizeof *r + sizeof(preq)); /* the pool's state after it */
    if (!p || !r) {
        free(r);
        return 0;
    }
    r->kind = AG__K_CHAT;
    r->body.path = "/api/chat"; /* an Ollama node can take it */
    r->body.model = (char *)model; /* borrowed: this request is never freed */
    r->body.data = (char *)body;
    r->body.len = body ? strlen(body) : 0;
    long found = 0;
    for (long i = 0; i < iters; i++) {
        int waiting;
        pnode *n = ag__pool_choose(p, r, &waiting);
        found += n != NULL;
        if (body) {
            if (n) remember(p, n, r);
            ag__prefix_release(p, r);
        }
    }
    free(r);
    return found;
}
