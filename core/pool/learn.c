/* core/pool/learn.c - what a node can run at once, learned from outside.
 *
 * An Ollama node runs OLLAMA_NUM_PARALLEL requests and queues the rest inside
 * itself without saying so. Seen from here, a request that had to queue
 * there starts late: its time to first token holds a wait that nothing else
 * explains. So each streamed answer is a sample: how many requests the node
 * had from us when it was sent (k, itself included), and whether it waited.
 *
 *   unexplained = TTFT seen here - load_duration - prompt_eval_duration
 *
 * (the node's own figures, from its last line: a cold load or a long prompt
 * is not a wait). Where the node reports neither, the whole TTFT counts. A
 * node's floor is the least unexplained time of its samples (creeping up
 * slowly with those that did not wait, so a slower network lifts it); a
 * sample waited when it is over twice the floor plus two of the node's usual
 * gaps between tokens (at least 2 ms), and over 1.5 times the usual
 * unexplained time (an EWMA of every sample: a loaded client's own lateness
 * is no wait); and a wait is only taken from two late answers in a row at
 * a count or above (none on time between), never from one sent alone.
 *
 *  - waited at k >= 2: the node runs fewer than k: the cap becomes k - 1,
 *    and k is not tried again for 2 s, doubling with each failed try to 16 s
 *    (a node restarted with more slots is found again within that);
 *  - did not wait at k == cap, while requests wait in the pool's queue or
 *    another node runs more than this cap: it runs at least cap: one more
 *    is tried (while no sample has ever waited, a slow start: one more for
 *    every answer on time sent with the node at least half full).
 *    Without such demand the cap stays: a node is not credited with places
 *    nobody asked for.
 *
 * Where the node reports all of its durations (Ollama does), their own
 * account of the wait is read instead: total_duration less load, prompt
 * and eval durations, over twice its floor plus half a token gap (at least
 * 1 ms): short waits, which the TTFT cannot tell from the network's noise,
 * are seen too.
 *
 * "Did not wait" is often known at the first token (a TTFT under the
 * threshold cannot hold a wait, or only a short one: the node's account at
 * the end may still say so); "waited" only at the end. A failed try costs one request a wait inside the
 * node, once per back-off, and only a request of the lowest class about
 * takes a place being tried (route.c): an interactive request does not
 * land on a place that may not exist. A node that was down (restarted, perhaps with
 * other settings) starts its tries afresh. The cap never goes under 1 nor
 * over node_max_in_flight. */
#include "core/pool/pool_internal.h"

#define LEARN_RETRY_MIN_NS 2000000000LL
#define LEARN_RETRY_MAX_NS 16000000000LL
#define LEARN_SLACK_NS 2000000.0
enum { LEARN_OPEN, LEARN_RAN_EARLY, LEARN_NONE }; /* preq.learned */

int ag__learn_on(const pnode *n) {
    return n->pool->opt.learn_capacity >= 0 && !n->cap_stated && !n->cap_said && !n->cap_metrics;
}

void ag__learn_reset(pnode *n, int keep_cap) {
    if (!keep_cap || !n->cap_learned) n->cap_learned = n->learn_sure = 1;
    n->learn_slow = !keep_cap;
    n->learn_fail_k = 0;
    n->learn_fails = 0;
    n->learn_retry_at = 0;
}

/* over this, a first token was late for want of a place: twice the floor,
 * plus two of the node's usual gaps between tokens (a wait shorter than
 * that costs little), at least 2 ms */
static double threshold(const pnode *n) {
    double gap = 2 * (double)ag__hist_quantile(&n->itl, 0.5);
    double t = 2 * n->learn_floor_ns + (gap > LEARN_SLACK_NS ? gap : LEARN_SLACK_NS);
    /* and over half again the usual unexplained time: a client whose own
     * loop is late (a loaded host) sees every first token late, which is
     * no wait for a place (a real one is cut short: the cap comes down) */
    return 1.5 * n->learn_typ_ns > t ? 1.5 * n->learn_typ_ns : t;
}

/* another node runs more than n's cap: work n could share, if it can */
static int busier_elsewhere(const pnode *n) {
    const ag__pool *p = n->pool;
    for (size_t i = 0; i < p->n; i++)
        if (p->nodes[i] != n && !p->nodes[i]->removed && p->nodes[i]->in_flight > n->cap_learned) return 1;
    return 0;
}

/* a request at k did not wait: at least k run at once */
static void ran(pnode *n, unsigned k) {
    if (k > n->learn_sure) n->learn_sure = k;
    unsigned cap = n->cap_learned, next = cap + 1;
    /* at the cap it says the cap runs: one more; in the slow start, any
     * answer on time sent with the node at least half full lets one more go
     * (a cap's worth of them doubles it, as TCP's window grows per ACK) */
    if (n->learn_slow ? 2 * k < cap : k != cap) return;
    if (!n->pool->qlen && !busier_elsewhere(n)) return; /* no demand for more: no need to know more */
    if (next > n->pool->opt.node_max_in_flight) return;
    if (n->learn_fail_k && next >= n->learn_fail_k && ag__now_ns() < n->learn_retry_at)
        return; /* what failed is tried again after its back-off */
    n->cap_learned = next;
    n->learn_ups++;
    ag__pool_set_cap(n);
    ag__log(&n->pool->base, AG_LOG_DEBUG, "node %s: runs %u at once, learned (an answer on time at %u)", n->name, n->cap, k);
    ag__pool_kick(n->pool); /* room: what waits may go */
}

/* a request at k waited inside the node: fewer than k run at once */
static void waited(pnode *n, unsigned k) {
    n->learn_waits++;
    n->learn_slow = 0;
    if (k < 2) return; /* alone and late: not a matter of places */
    if (k == n->learn_fail_k) {
        if (n->learn_fails < 8) n->learn_fails++;
    } else {
        n->learn_fail_k = k;
        n->learn_fails = 1;
    }
    int64_t back = LEARN_RETRY_MIN_NS << (n->learn_fails - 1);
    if (back > LEARN_RETRY_MAX_NS) back = LEARN_RETRY_MAX_NS;
    n->learn_retry_at = ag__now_ns() + back;
    if (k - 1 < n->learn_sure) n->learn_sure = k - 1;
    if (k - 1 < n->cap_learned) {
        n->cap_learned = k - 1;
        n->learn_downs++;
        ag__pool_set_cap(n);
        ag__log(&n->pool->base, AG_LOG_INFO, "node %s: runs %u at once, learned (an answer waited inside it at %u)", n->name, n->cap, k);
    }
}

/* a streamed generation through the pool on a node whose cap is learned */
static int generation(const ag_request *r, const pnode *n) {
    return n && !r->pinned && r->streaming && (r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE) && ag__learn_on(n);
}

/* a learning sample: such a generation, not excluded at its dispatch */
static int sample(const ag_request *r, const pnode *n) {
    return generation(r, n) && PR(r)->k_at > 0 && PR(r)->learned != LEARN_NONE;
}

static int64_t ttft_here(const ag_request *r, int64_t first_at) {
    int64_t t = first_at - PR(r)->t_attempt;
    return t < 0 ? 0 : t;
}

void ag__learn_first(ag_request *r) {
    pnode *n = PR(r)->node;
    if (!sample(r, n) || PR(r)->learned || (!n->learn_floor_ns && !n->learn_ttft_ok_ns))
        return; /* (nothing known of its first tokens yet: the end decides) */
    int64_t t = ttft_here(r, r->t0 + r->timing.ttft_ns);
    /* on time: under the threshold, or about as soon as this node's first
     * tokens come when they did not wait (its prompt evaluation included:
     * the durations that explain it come only at the end) */
    double usual = n->learn_ttft_ok_ns * 1.25 + LEARN_SLACK_NS;
    if ((double)t > threshold(n) && !(n->learn_ttft_ok_ns > 0 && (double)t <= usual))
        return; /* perhaps a wait, perhaps a cold load or a long prompt: the end tells */
    PR(r)->learned = LEARN_RAN_EARLY;
    n->learn_samples++;
    if (n->learn_late_k && PR(r)->k_at >= n->learn_late_k) n->learn_late_k = 0; /* on time at that count */
    ran(n, PR(r)->k_at);
}

/* an answer that did not wait: the node's usual first token (an EWMA), a
 * cold load taken out */
static void ttft_ok(pnode *n, const ag_request *r, const ag_result *res) {
    double t = (double)ttft_here(r, r->t0 + res->timing.ttft_ns);
    if (res->server.load_duration > 0) t -= (double)res->server.load_duration; /* (a cold load is not usual) */
    if (t < 0) t = 0;
    n->learn_ttft_ok_ns = n->learn_ttft_ok_ns > 0 ? n->learn_ttft_ok_ns + (t - n->learn_ttft_ok_ns) / 8 : t;
}

/* the node's own account of a wait for a place: Ollama's total_duration
 * runs from the request's arrival, its load, prompt and eval durations only
 * while it had a runner and a place; what is left is the wait (and a little
 * overhead: its floor). -1 when the node does not report all four. */
static double reported_wait(const ag_result *res) {
    const ag_server_stats *s = &res->server;
    if (s->total_duration <= 0 || s->eval_duration <= 0 || s->prompt_eval_duration <= 0) return -1;
    double w = (double)s->total_duration - (double)s->eval_duration - (double)s->prompt_eval_duration -
               (s->load_duration > 0 ? (double)s->load_duration : 0);
    return w > 0 ? w : 0;
}

/* a floor: the least seen, creeping up with what is not over its threshold */
static int over_floor(double *floor, double v, double slack) {
    if (!*floor || v < *floor) *floor = v > 1000 ? v : 1000;
    if (v > 2 * *floor + slack) return 1;
    *floor += (v - *floor) / 16;
    return 0;
}

void ag__learn_end(ag_request *r, pnode *n, const ag_result *res) {
    if (!res || res->timing.chunks <= 0 || res->timing.ttft_ns < 0) return;
    if (PR(r)->learned == LEARN_NONE && generation(r, n)) {
        double w = reported_wait(res); /* no sample (its model was loading), yet its first token tells the usual */
        if (w >= 0 && w < 1e6) ttft_ok(n, r, res);
        return;
    }
    if (!sample(r, n)) return;
    int early = PR(r)->learned == LEARN_RAN_EARLY;
    PR(r)->learned = LEARN_NONE;
    unsigned k = PR(r)->k_at;
    double w = reported_wait(res);
    if (w >= 0) { /* the node says: a wait shorter than the TTFT's threshold is seen too */
        double gap = (double)ag__hist_quantile(&n->itl, 0.5) / 2;
        if (!early) n->learn_samples++;
        if (over_floor(&n->learn_gap_floor_ns, w, gap > 1e6 ? gap : 1e6)) waited(n, k);
        else {
            ttft_ok(n, r, res);
            if (!early) ran(n, k);
        }
        return;
    }
    if (early) return;
    double u = (double)ttft_here(r, r->t0 + res->timing.ttft_ns);
    if (res->server.load_duration > 0) u -= (double)res->server.load_duration;
    if (res->server.prompt_eval_duration > 0) u -= (double)res->server.prompt_eval_duration;
    if (u < 0) u = 0;
    n->learn_samples++;
    if (!n->learn_floor_ns || u < n->learn_floor_ns) n->learn_floor_ns = u > 1000 ? u : 1000;
    int late = u > threshold(n);
    n->learn_typ_ns = n->learn_typ_ns > 0 ? n->learn_typ_ns + (u - n->learn_typ_ns) / 16 : u;
    if (late) {
        /* the TTFT alone is noisy (a loaded client's own loop, the network):
         * a wait is taken when a second late answer at that count or above
         * follows, with none on time at that count or above between; a late
         * answer sent alone is noise */
        if (k < 2) n->learn_late_k = 0;
        else if (n->learn_late_k) {
            unsigned m = k < n->learn_late_k ? k : n->learn_late_k;
            n->learn_late_k = 0;
            waited(n, m);
        } else {
            n->learn_late_k = k;
        }
        return;
    }
    if (n->learn_late_k && k >= n->learn_late_k) n->learn_late_k = 0;
    n->learn_floor_ns += (u - n->learn_floor_ns) / 16; /* (u is at least the floor here) */
    ttft_ok(n, r, res);
    ran(n, k);
}
