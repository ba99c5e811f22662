/* agents/pool.h - many nodes behind one ag_client.
 *
 * ag_pool_new() returns an ag_client: every call in client.h works on it
 * unchanged (code moves from one node to a cluster by changing its
 * constructor). The pool adds a node scheduler:
 *
 * - Routing: among healthy nodes that serve the requested model (preferring
 *   nodes where it is loaded), by power of two choices on a peak-EWMA cost,
 *   latency x (in flight + 1). Round robin, random and least-in-flight are
 *   there for comparison. Each node has an in-flight cap; when every
 *   candidate is at its cap, requests wait in a bounded queue in the client
 *   instead of overrunning servers into 503s.
 * - Health: periodic probes (GET /api/version, then /api/tags and /api/ps)
 *   on the loop, plus passive health from real requests. A node is ejected
 *   after consecutive failures and re-admitted through half-open probes with
 *   exponential backoff. A node whose real requests time out stays suspect
 *   (AG_NODE_DOWN) however its probes answer, until a real request succeeds.
 * - Failover: a request that fails before any output reached the caller
 *   (refused, reset, HTTP 5xx, 503 busy or 429, connect or first-byte
 *   timeout, a TLS handshake or certificate failure, an error line, a
 *   malformed, empty or truncated answer before any output) is retried on a
 *   node it has not tried, within a retry budget. Other 4xx answers are not
 *   retried, except a 404 for the model: that node lacks it, which the pool
 *   remembers until the node's next /api/tags, and the request goes to a node
 *   that may have it, outside the budget; AG_ENONODE when none has it. A stream that dies
 *   after output was delivered ends with AG_ELOST saying how much was
 *   delivered, or, with resume on, continues on another node from the partial
 *   answer (chat only: the partial answer is sent as an assistant message).
 * - Metrics per node, readable with ag_pool_nodes().
 *
 * Node addresses use OLLAMA_HOST syntax ("host:port", "http://host:port/base").
 */
#ifndef AGENTS_POOL_H
#define AGENTS_POOL_H
#include "version.h"
#include <stddef.h>
#include <stdint.h>
#include "client.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ag_policy {
    AG_POLICY_P2C = 0, /* power of two choices on peak-EWMA latency x (in flight + 1) */
    AG_POLICY_ROUND_ROBIN,
    AG_POLICY_RANDOM,
    AG_POLICY_LEAST /* least in flight */
};

enum ag_node_state {
    AG_NODE_PROBING = 0, /* not heard from yet: routable */
    AG_NODE_UP,
    AG_NODE_DOWN,        /* failing, not yet ejected: used only when nothing is up */
    AG_NODE_EJECTED      /* not routed to; half-open probes with backoff */
};

typedef struct ag_pool_options {
    /* Transport options applied to every node (timeouts, caps, allocator,
     * dns, user agent); .host is ignored. */
    ag_client_options client;
    /* Nodes: a list separated by commas or spaces. When NULL and nodes_file
     * is NULL: $OLLAMA_HOSTS, else $OLLAMA_HOST, else $OLLAMA_URL, else
     * 127.0.0.1:11434. An address may be followed by "slots=N", what that
     * node can run at once as its operator knows it ("10.0.0.5:11434
     * slots=4": OLLAMA_NUM_PARALLEL): its cap, within node_max_in_flight; the
     * pool keeps what is over it in its own queue (AG_EHOST for a bad N).
     * Where a node says it (an OpenAI-dialect node serving llama.cpp's
     * /props "total_slots", read by its health probes), that is its cap when
     * the list states none; for a node that says nothing (Ollama) the pool
     * learns it (learn_capacity). ag_node_info.slots shows the cap in force
     * and where it comes from. */
    const char *nodes;
    /* A file with one node a line ('#' starts a comment; "slots=N" as in
     * nodes), read at creation and again by ag_pool_reload(). */
    const char *nodes_file;
    int policy;                  /* enum ag_policy */
    unsigned node_max_in_flight; /* per node; 0 = 64 */
    unsigned max_queue;          /* requests waiting for a node with room; 0 = 10000. When full,
                                  * a request of a higher class, or of a tenant with fewer
                                  * waiting than the busiest tenant of its class, takes the
                                  * place of that class's or tenant's newest (which ends with
                                  * AG_EQUEUEFULL); otherwise it is refused with AG_EQUEUEFULL */
    double probe_interval;       /* seconds between health probes; 0 = 5; < 0 = never */
    double probe_timeout;        /* seconds; 0 = 2 */
    unsigned eject_after;        /* consecutive failures; 0 = 3 */
    double readmit_min, readmit_max; /* half-open probe backoff; 0 = 1 s and 60 s */
    unsigned retry_budget;       /* extra attempts per request; 0 = 2; at most 7 */
    int resume;                  /* 1 = continue a stream that died mid-answer elsewhere */
    uint64_t seed;               /* for the random choices; 0 = fixed default */
    /* Session affinity (ag_request_options.session) and prefix affinity.
     * With learned capacity (learn_capacity 0, the default) a session's
     * request, or one whose prompt is a block (256 bytes) or more, goes to
     * the node where its first token is predicted soonest: the wait for a
     * place there (none with room; else the requests queued for it and
     * itself, times the node's request time over its places) plus the
     * evaluation of the part of the prompt the node does not hold (tokens
     * taken as 4 bytes, at the node's reported prompt_eval rate). It may
     * wait in the queue for that node rather than take a place elsewhere.
     * With learn_capacity off, the bound below applies instead: a node
     * takes a session's request while its load is at most (1 + slack) x
     * the mean load of the candidates (plus one); 0 = 0.25. Negative =
     * affinity off (sessions and prefixes): load alone. */
    double affinity_slack;
    /* Prefix affinity (requests without a session): each node remembers the
     * prompt prefixes it was sent lately, hashed in blocks of 256 bytes, in a
     * table of this many entries (16 bytes each, allocated at its first
     * use); a request goes to the node holding the longest prefix of its
     * prompt among those within the load bound above, when that prefix is
     * longer than some other candidate's. 0 = 4096 (64 KiB a node, about
     * 1 MiB of prompt text); negative = prefix affinity off. */
    int prefix_entries;
    /* A node back from ejection takes its session keys back gradually: a
     * share growing linearly over this many seconds (its cache starts cold,
     * and its keys' conversations are warm where they went meanwhile).
     * 0 = 30; negative = at once. */
    double affinity_ramp;
    /* Node entries "dns+NAME" (dns+ollama.ns.svc:11434,
     * dns+openai+http://vllm:8000) stand for every address NAME resolves to
     * (a Kubernetes headless Service, Consul): one node each, resolved again
     * every resolve_interval seconds and on ag_pool_reload(); new addresses
     * join, gone ones drain. Requests wait for a name's first answer. The
     * resolver is client.dns, or one made from /etc/resolv.conf and
     * /etc/hosts. 0 = 30 s; negative = only on ag_pool_reload(). */
    double resolve_interval;
    /* Headroom for the classes above (ag_request_options.priority), per
     * model: while a request of a higher class was seen for a model in the
     * last minute, lower classes do not take the last priority_reserve free
     * places (caps) of the nodes that serve that model, so that the next
     * higher-class request starts at once instead of after a running one
     * ends. Other models' nodes are not held back. 0 = none (every place for
     * whoever comes first in the queue's order). */
    unsigned priority_reserve;
    /* Learned capacity, for the nodes whose list entry states no slots= and
     * that say nothing themselves (Ollama): 0 = on. Each node starts at one
     * request at a time; a streamed answer that started at once while the
     * node had its cap in flight lets one more go (doubling until the first
     * wait); one that waited inside the node (its time to first token, less
     * the node's own load_duration and prompt_eval_duration, over twice the
     * least seen plus two of its usual gaps between tokens) brings the cap under the count it went at, which
     * is tried again after 2 s, doubling to 16 s. So what a node cannot run
     * waits in the pool's queue, where priorities, turns, the reserve and
     * deadlines apply. node_max_in_flight bounds it. Negative = off: every
     * such node gets node_max_in_flight. */
    int learn_capacity;
} ag_pool_options;

/* Makes a pool client. Returns NULL with *err set: AG_EHOST for a bad node
 * address (or none), AG_EINVAL for an unreadable nodes file, AG_ENOMEM. */
AG_API ag_client *ag_pool_new(struct event_base *base, const ag_pool_options *opts, int *err);

/* Adds a node (no effect if present). AG_EINVAL when c is not a pool. */
AG_API int ag_pool_add_node(ag_client *c, const char *addr);
/* Removes a node: no new requests go to it; those in flight finish. Its
 * memory is freed soon after the last request that ran or tried there ends
 * (so is a node dropped from nodes_file or from a dns+ name's answer), so a
 * pool whose nodes come and go keeps only what it has. */
AG_API int ag_pool_remove_node(ag_client *c, const char *addr);
/* Re-reads nodes_file: adds new nodes, removes those no longer listed. Call
 * it from your SIGHUP handler (the library installs no signal handlers). */
AG_API int ag_pool_reload(ag_client *c);
/* Probes every node now instead of at the next interval. */
AG_API void ag_pool_probe_now(ag_client *c);

/* Opt-in discovery: probes every host:port of a range and adds the nodes
 * that answer /api/version. range: "HOST[-HOST]:PORT[-PORT]", IPv4 hosts
 * ranging over the last octet, e.g. "10.0.0.1-10.0.0.40:11434" or
 * "127.0.0.1:11434-11444"; at most 65536 addresses, `concurrency` probes at
 * once (0 = 64). done (may be NULL) runs once with the number of nodes added.
 * Nothing is scanned unless this is called. */
AG_API int ag_pool_discover(ag_client *c, const char *range, unsigned concurrency,
                     void (*done)(ag_client *c, int added, void *ud), void *ud);

typedef struct ag_node_info {
    const char *name;     /* "host:port" */
    int state;            /* enum ag_node_state */
    const char *version;  /* from /api/version, "" until known */
    unsigned in_flight, max_in_flight;
    uint64_t requests, errors, retries, failures_in_a_row, tokens;
    double ewma_ms;       /* peak-EWMA latency (time to first byte of output) */
    double ttft_p50_ms, ttft_p99_ms, itl_p50_ms, itl_p99_ms, e2e_p50_ms, e2e_p99_ms;
    double tokens_per_s;  /* over the node's busy time */
    size_t n_models, n_loaded;
    const char *const *models; /* names from /api/tags */
    const char *const *loaded; /* names from /api/ps */
    int api;              /* enum ag_api: the API the node speaks */
    uint64_t affinity_hits; /* requests routed here by their session */
    uint64_t prefix_hits;   /* requests routed here by the prompt prefix it holds */
    size_t prefix_entries;  /* entries used in this node's table (prefix blocks and sessions) */
    size_t prefix_bytes;    /* the table's memory */
    size_t sessions;        /* session keys routed here lately (kept in the same table) */
    /* HTTP 429 answers: the node is avoided (not failed, not ejected) until
     * its Retry-After, or 1 s doubling to 60 s without one */
    uint64_t rate_limited;  /* 429s received */
    double limited_ms;      /* time left before it takes requests again (0 = not limited) */
    /* What it runs at once, as the pool holds it (= max_in_flight), and where
     * that comes from: "stated" (slots= in the node list), "said" (the node's
     * own /props or /metrics), "learned" (seen from outside: see
     * learn_capacity) or "max" (node_max_in_flight; learning off). */
    unsigned slots;
    const char *slots_source; /* static */
    uint64_t learn_samples;   /* streamed answers it learned from */
    uint64_t learn_waits;     /* of those, how many waited inside the node */
    /* why it is down or ejected: its last failure ("ECONNREFUSED: ...",
     * "EIDLE: ..."), "" when up; and how long it has been in its state */
    const char *reason;
    double state_ms;
} ag_node_info;

/* Fills up to max records (borrowed: valid until the next call into the
 * pool or the loop's next turn, when a removed node may be freed) and
 * returns the number of nodes. */
AG_API size_t ag_pool_nodes(ag_client *c, ag_node_info *out, size_t max);
/* "probing", "up", "down" or "ejected" for an AG_NODE_* state (static). */
AG_API const char *ag_node_state_name(int state);

/* The pool's own counters. */
typedef struct ag_pool_stats {
    uint64_t routed, retried, resumed, queued_total, rejected_queue_full;
    unsigned queued_now, nodes, nodes_up;
    /* refused at once with AG_EDEADLINE: the work queued ahead (of its class
     * and above, at the rate its nodes finish requests) would not let it
     * start before its deadline (ag_request_options.deadline or
     * first_token_deadline) */
    uint64_t refused_deadline;
    /* follow-ups: requests routed by prediction whose session, or a prefix
     * of whose prompt, some candidate node held; of those, sent to a node
     * that held it (the session, or the longest prefix held) */
    uint64_t followups, followups_stayed;
} ag_pool_stats;
AG_API void ag_pool_get_stats(ag_client *c, ag_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif
