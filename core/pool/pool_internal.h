/* core/pool/pool_internal.h - the pool client: many nodes, one ag_client contract.
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
#ifndef AG_CORE_POOL_INTERNAL_H
#define AG_CORE_POOL_INTERNAL_H
#include "core/internal.h"
#include "core/errclass.h"

#define EWMA_TAU_NS 10e9 /* peak-EWMA decay time constant */

typedef struct pnode pnode;
typedef struct pgroup pgroup; /* dns.c: a name that expands into nodes */
/* the queue (route.c): one FIFO per (priority, tenant), the flows of a
 * priority class taking turns */
typedef struct pflow {
    int priority;
    uint64_t tenant;
    ag_request *head, **tail;
    unsigned n;
    struct pflow *next, *prev; /* the class's ring of flows with requests */
    struct pflow *all;         /* every flow, for lookup and freeing */
} pflow;
/* prefix affinity (prefix.c): prompts hashed in blocks of this many bytes
 * (about 64 tokens), at most this many blocks (64 KiB) a request */
#define AG__PFX_BLOCK 256
#define AG__PFX_MAX_BLOCKS 256
typedef struct pfx_slot {
    uint64_t h;    /* a chained block hash; 0 = empty */
    uint32_t tick; /* when last stored (the node's pfx_seq) */
    uint32_t session; /* 1: a session key routed here, not a prefix block */
} pfx_slot;
enum probe_phase { PR_IDLE, PR_VERSION, PR_TAGS, PR_PS, PR_PROPS, PR_METRICS };
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
    int reap;               /* (reap's mark: nothing refers to it) */
    unsigned in_flight, cap;
    unsigned cap_stated; /* "host:port slots=N" in the node list or file; 0 = not stated */
    /* (cap is derived from these by ag__pool_set_cap: stated, else said, else max_in_flight) */
    unsigned cap_said;   /* what the node says (llama.cpp's /props total_slots); 0 = nothing */
    ag__buf props;       /* the /props answer being read (a probe of an OpenAI-dialect node); a
                          * /metrics line being read */
    double m_running, m_waiting; /* /metrics: the gauges summed so far (-1: none seen) */
    unsigned cap_metrics;        /* what its /metrics showed it running while others waited; 0 = nothing */
    /* learned capacity (learn.c), the cap when nothing is stated or said */
    unsigned cap_learned;     /* what it was seen to run at once (1 at first) */
    unsigned learn_sure;      /* the most seen running at once lately (cap_learned over it: a try) */
    int learn_slow;           /* no sample has waited yet: the cap doubles */
    unsigned learn_fail_k;    /* the count at which a request last waited inside it */
    unsigned learn_fails;     /* tries of that count that failed in a row: the back-off */
    int64_t learn_retry_at;   /* that count is not tried again before */
    double learn_floor_ns;    /* the least unexplained TTFT (0 = no sample yet) */
    double learn_typ_ns;      /* the usual unexplained TTFT (EWMA of every sample) */
    double learn_ttft_ok_ns;  /* the usual TTFT of answers that did not wait (EWMA) */
    unsigned learn_late_k;    /* a late answer (TTFT only) at this count, waiting for a second */
    double learn_gap_floor_ns; /* the least wait the node itself reports (its overhead) */
    uint64_t learn_samples, learn_waits, learn_ups, learn_downs;
    /* for predicting a request's time to first token here (route.c) */
    double svc_ns;            /* a request's whole time here (EWMA; 0 = none seen) */
    double pf_ns_tok;         /* prompt evaluation per token, as it reports (EWMA; 0 = unknown) */
    unsigned waiters;         /* queued requests waiting for a place here rather than elsewhere */
    uint64_t requests, errors, retries, tokens;
    uint64_t key;           /* the name hashed: rendezvous hashing for sessions */
    uint64_t affinity_hits; /* routed here by session */
    uint64_t prefix_hits;   /* routed here by the prefix it holds */
    int64_t up_since;       /* back from ejection at (ns): its keys return over affinity_ramp */
    int was_ejected;        /* ejected since it was last up */
    pgroup *group;          /* the dns+ name it came from, or NULL */
    /* rate limited (it answered 429): avoided until then, not failing */
    int64_t limited_until;
    unsigned limited_in_a_row;
    uint64_t rate_limited;
    struct event limit_ev;  /* its end: what waits may go there again */
    int group_seen;         /* in its name's latest answer */
    pfx_slot *pfx;          /* the prefixes sent here lately (allocated at the first) */
    size_t pfx_cap, pfx_used;
    size_t sessions;        /* session keys among them (routed here lately) */
    uint32_t pfx_seq;       /* prompts stored here so far: an entry's age is counted in them */
    unsigned fails; /* consecutive */
    unsigned stalls; /* real requests timed out in a row: probes do not clear them */
    double ewma_ns;
    int64_t ewma_t;
    int64_t busy_ns;
    ag__hist ttft, itl, e2e;
    char version[64];
    char reason[160];  /* why it is down or ejected (the last failure), "" when up */
    int64_t state_t;   /* when it entered its state (monotonic ns) */
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
    ag_client base; /* first: an ag__pool is an ag_client */
    int closing;    /* destroyed: late probe answers are ignored */
    const char *cur_detail; /* the failure being accounted (pool_retry), for the node's reason */
    ag_pool_options opt;
    char *nodes_file;
    pnode **nodes;
    size_t n, cap;
    pnode **scratch;
    unsigned qlen;      /* requests waiting in the flows below */
    pflow *flows;       /* every flow made (they are few: classes x tenants) */
    pflow **rings;      /* per class, highest first: the flow whose turn it is */
    int *ring_prio;
    unsigned *ring_n;   /* flows in each ring */
    size_t nrings;
    int draining, drain_again;
    /* priority_reserve, per model: the highest class seen lately for it */
    struct {
        char model[128];
        int prio;
        int64_t at;
        int lo;        /* the lowest class seen for it lately */
        int64_t lo_at;
    } tops[64];
    unsigned ntops;
    uint64_t rng;
    unsigned rr;
    pgroup **groups;        /* dns+ names (dns.c) */
    size_t ngroups;
    unsigned resolving;     /* names without a first answer: requests wait */
    struct ag__dnsref *dnsref;
    ag_pool_stats st;
    double ewma_max; /* the slowest measured node: the guess for one not yet measured */
    /* large clusters (over 32 nodes): the pool-wide index of where prompts
     * and sessions went (a prompt's first block, or a session key -> the
     * last 4 nodes sent it), so that a prediction looks at those nodes and
     * two sampled ones instead of every node (route.c) */
    struct pidx {
        uint64_t h;
        pnode *n[4];
    } *idx;
    double pf_sum;   /* the nodes' pf_ns_tok summed, over pf_n nodes: the guess for one not yet measured */
    unsigned pf_n;
    struct event tick;
    struct event reap;  /* frees the nodes that are gone, once nothing refers to them */
    struct event kick;  /* a cap grew: the queue is drained from the loop */
    unsigned gone;      /* removed nodes still in nodes[] (reap counts them again) */
    const char **info_models; /* scratch for ag_pool_nodes */
};

/* nodes.c */
int ag__pool_in_list(char **list, size_t n, const char *model);
void ag__pool_free_list(const ag_alloc_funcs *a, char ***list, size_t *n);
int ag__pool_set_list(const ag_alloc_funcs *a, char ***list, size_t *n, const ag_result *res);
int ag__pool_node_serves(const pnode *n, const char *model);
void ag__pool_mark_missing(pnode *n, const char *model);
void ag__pool_mark_loaded(pnode *n, const char *model);
void ag__pool_node_free(ag__pool *p, pnode *n);
void ag__pool_node_gone(ag__pool *p, pnode *n);
void ag__pool_reap_soon(ag__pool *p);
void ag__pool_reap_cb(evutil_socket_t fd, short what, void *arg);
pnode *ag__pool_find_node(ag__pool *p, const ag_host *h);
/* n->cap from what is stated, said and allowed (node_max_in_flight bounds all) */
void ag__pool_set_cap(pnode *n);
const char *ag__pool_cap_source(const pnode *n); /* "stated", "said", "learned" or "max" (static) */
int ag__pool_add_node(ag__pool *p, const char *addr);
int ag__pool_add_list(ag__pool *p, const char *list, char ***seen, size_t *nseen);
int ag__pool_load_file(ag__pool *p);
/* route.c */
int ag__pool_routable(const pnode *n);
int ag__pool_limited(const pnode *n, int64_t now);
pnode *ag__pool_choose(ag__pool *p, ag_request *r, int *waiting);
int ag__pool_dispatch(ag__pool *p, pnode *n, ag_request *r);
int ag__pool_queue_push(ag__pool *p, ag_request *r); /* 0 or AG_ENOMEM */
void ag__pool_queue_free(ag__pool *p);
void ag__pool_queue_remove(ag__pool *p, ag_request *r);
void ag__pool_unwant(ag_request *r); /* no longer waiting for one node */
void ag__pool_index_forget(ag__pool *p, const pnode *n); /* n is going: out of the index */
int ag__pool_route(ag__pool *p, ag_request *r);
void ag__pool_drain_queue(ag__pool *p);
/* dns.c */
int ag__pool_add_group(ag__pool *p, const char *spec);
void ag__pool_groups_mark(ag__pool *p);
void ag__pool_groups_sweep(ag__pool *p);
int ag__pool_node_listed(const pnode *n);
void ag__pool_groups_free(ag__pool *p);
/* prefix.c */
int ag__prefix_of(ag__pool *p, ag_request *r);
void ag__prefix_release(ag__pool *p, ag_request *r);
void ag__prefix_store(ag__pool *p, pnode *n, ag_request *r);
void ag__prefix_forget(pnode *n);
int ag__prefix_held(const pnode *n, const ag_request *r); /* leading blocks of r's prompt n holds */
int ag__prefix_has_session(const pnode *n, uint64_t key);
void ag__affinity_gap(ag__pool *p, size_t nroom, double *idle, double *gap);
void ag__prefix_store_session(ag__pool *p, pnode *n, uint64_t key);
pnode *ag__prefix_choose(ag__pool *p, ag_request *r, size_t nroom, double bound,
                         double (*cost)(const pnode *, const char *, int), const char *model, int any_loaded);
/* learn.c */
int ag__learn_on(const pnode *n);
void ag__learn_reset(pnode *n, int keep_cap);
void ag__learn_first(ag_request *r);
void ag__learn_end(ag_request *r, pnode *n, const ag_result *res);
/* pool.c: a traceparent among r's headers gets a parent id of its own for
 * this attempt (written over the old one): its id into span, "" when none */
void ag__pool_attempt_span(ag_request *r, char span[17]);
/* pool.c: drain the queue from the loop (not inside the caller's callback) */
void ag__pool_kick(ag__pool *p);
/* health.c */
void ag__pool_schedule_probe(pnode *n, double secs);
void ag__pool_account_attempt_end(ag_request *r, int status, const ag_result *res);
void ag__pool_probe_timeout_cb(evutil_socket_t fd, short what, void *arg);
void ag__pool_probe_start(pnode *n);
void ag__pool_probe_timer_cb(evutil_socket_t fd, short what, void *arg);
void ag__pool_tick_cb(evutil_socket_t fd, short what, void *arg);

/* What the pool keeps for each request, after it (ag__request_backend). */
typedef struct preq {
    pnode *node;       /* the current attempt's */
    pnode *tried[8];   /* nodes tried, in order (a bound, with the retry budget) */
    int ntried, attempts, resumed;
    int notfound;      /* attempts that met a node without the model (not in the budget) */
    int limited;       /* attempts answered 429 (outside the budget, up to 8) */
    ag_request *qnext, **qprev; /* the pool's queue: its flow's FIFO */
    pflow *flow;
    int64_t t_attempt;
    unsigned k_at;     /* the node's requests in flight when this attempt went, itself included */
    int learned;       /* this attempt's capacity sample: open, taken early, or none (learn.c) */
    pnode *want;       /* queued for a place on this node (its prediction: waiting beats moving) */
    size_t pbytes;     /* the prompt's bytes (prefix.c) */
    char *orig_body;   /* resume: the body as first encoded */
    size_t orig_len;
    uint64_t *pfx;     /* the prompt's chained block hashes (prefix.c), computed once */
    int npfx, pfx_done;
    struct ptry {      /* each attempt (the first 8): res.tries */
        pnode *n;
        int status, http;
        int64_t t0, t1; /* t1 = 0 while it runs */
        char span[17];  /* the span id its traceparent carried, "" when none */
    } log1, *more;     /* the first inline; the next 7 allocated when a second attempt goes
                          (most requests make one: 400 bytes a request saved) */
    int nlog;
} preq;
/* the i-th attempt's record (i < nlog) */
static inline struct ptry *ag__pool_try(preq *q, int i) { return i == 0 ? &q->log1 : &q->more[i - 1]; }
_Static_assert(sizeof(struct ag_request) % _Alignof(preq) == 0, "the pool's state after a request is aligned");
static inline preq *PR(const ag_request *r) {
    return (preq *)ag__request_backend(r);
}

/* pool.c: the pool's client operations; c as a pool, or NULL when c is another backend */
extern const ag__client_ops ag__pool_ops;
static inline ag__pool *ag__pool_of(const ag_client *c) {
    return c && c->ops == &ag__pool_ops ? (ag__pool *)c : NULL;
}

#endif
