/* bench/nodebench/nodebench.h - the node-latency benchmark behind `agents bench`:
 * closed-loop (fixed concurrency) and open-loop (Poisson arrivals) workloads
 * against any ag_client, measured at the socket callbacks with a monotonic
 * clock, summarised like serving benchmarks do (TTFT, ITL, TPOT, E2E
 * percentiles, throughput, goodput under SLOs), written as a table, JSON,
 * CSV and a self-contained HTML page. */
#ifndef AG_NODEBENCH_H
#define AG_NODEBENCH_H
#include <stdint.h>
#include <stdio.h>
#include <agents.h>

enum nb_endpoint { NB_CHAT, NB_GENERATE, NB_EMBED };
enum nb_arrival { NB_POISSON, NB_CONSTANT, NB_GAMMA };
enum nb_dist_kind { NB_D_NONE, NB_D_FIXED, NB_D_UNIFORM, NB_D_NORMAL, NB_D_LOGNORMAL };

/* a length distribution (tokens): fixed N, uniform MIN..MAX, normal or
 * lognormal with a mean and a standard deviation; samples are at least 1 */
typedef struct nb_dist {
    int kind;
    double a, b;
} nb_dist;
/* "N", "fixed:N", "uniform:MIN,MAX", "normal:MEAN,SD", "lognormal:MEAN,SD"; 0 or -1 */
int nb_dist_parse(const char *s, nb_dist *d);
int nb_dist_sample(const nb_dist *d, uint64_t *rng);
double nb_rand01(uint64_t *rng);
double nb_gamma(uint64_t *rng, double shape); /* Gamma(shape, 1) */

/* a dataset's or a trace's request: its messages (chat) and what it asks */
typedef struct nb_item {
    const char *system;     /* NULL = none */
    const char *const *roles, *const *contents;
    size_t n;               /* messages (roles[i], contents[i]) */
    int out_len;            /* output tokens (0 = from --output-len or the model) */
    int in_len;             /* a trace's input tokens when it has no text (0 = none) */
    double at_ms;           /* a trace's arrival, from its first (-1 = none) */
    size_t seq;             /* its line (ties in a trace keep their order) */
} nb_item;
typedef struct nb_items {
    nb_item *v;
    size_t n;
    void *mem; /* everything the items point into */
} nb_items;
/* ShareGPT JSON (an array of {"conversations": [{"from", "value"}...]}), or
 * JSON Lines of {"prompt"} / {"messages": [...]} (with optional "output_len",
 * "input_len", "timestamp" in ms for a trace). trace = 1: every line needs a
 * timestamp. 0, or -1 with a message in err. */
int nb_items_load(const char *path, int trace, nb_items *out, char *err, size_t errlen);
void nb_items_free(nb_items *it);
/* a prompt of about `tokens` tokens at chars_per_token, varied by seed (malloc) */
char *nb_make_text(int tokens, double chars_per_token, uint64_t seed);

typedef struct nb_config {
    const char *model;
    int endpoint;              /* enum nb_endpoint */
    const int *concurrency;    /* closed loop sweep points; n_conc 0 = open loop */
    int n_conc;
    const double *rate;        /* open loop: requests/s per point */
    int n_rate;
    int requests;              /* per point (0 = by duration) */
    double duration;           /* seconds per point, when requests == 0 */
    int warmup;                /* requests before each point that are not counted */
    uint64_t seed;
    const char *const *prompts;
    int n_prompts;
    int max_tokens;            /* num_predict; 0 = the model's default */
    double slo_ttft_ms, slo_tpot_ms, slo_e2e_ms; /* 0 = no objective */
    /* conversations (chat): each of `turns` requests re-sends the history (the
     * earlier questions and the answers as received) plus a new question; 0 or
     * 1 = single requests. The requests count turns. */
    int turns;
    /* --interactive C: beside the load (then of priority "batch", tenant
     * "batch"), C short chats at a time of priority "interactive" (tenant
     * "interactive"), for as long as the load runs, reported apart: what a
     * flood does to an interactive user through this client's queue */
    int interactive;
    int shared_prefix;         /* a system prompt of about this many tokens, the same for all */
    int turn_tokens;           /* each turn's new message padded to about this many tokens
                                  (a tool result in an agent's loop); 0 = a short question */
    double think_ms;           /* a conversation's next turn goes this long after its answer (a
                                  user reading): other conversations run meanwhile */
    int context_tokens;        /* each conversation's first message carries a context of about
                                  this many tokens of its own (a document it is about) */
    int no_session;            /* do not give each conversation a session key */
    /* workloads */
    nb_dist in_len, out_len;   /* prompts built to sampled lengths; num_predict sampled */
    const nb_items *items;     /* a dataset's requests, in turn (or a trace's, on schedule) */
    int trace;                 /* items carry arrival times: an open loop on their schedule */
    /* arrivals (open loop) */
    int arrival;               /* enum nb_arrival */
    double burstiness;         /* gamma: shape (1 = Poisson, < 1 burstier, > 1 steadier) */
    double ramp_up;            /* seconds from 0 to the rate, linearly */
    double trace_speed;        /* a trace replayed this many times faster (0 = 1) */
    int repeat;                /* runs of the whole sweep (mean, CV, 95 % CI); 0 = 1 */
    /* servers' metrics during the run: Prometheus endpoints and /api/ps
     * (URLs "http://host:port/metrics", "http://host:port/api/ps") */
    const char *const *scrape;
    int n_scrape;
    double scrape_interval;    /* seconds; 0 = 1 */
    int progress;              /* a live line on stderr */
    /* the run's metadata, a JSON object the caller made (when it began, the
     * tool's version, the command line, the machine's CPUs, the nodes and
     * what each said of itself), written into the reports as "meta"; NULL =
     * none */
    const char *meta_json;
} nb_config;

typedef struct nb_stats {
    double mean, p50, p90, p95, p99, max;
    size_t n;
} nb_stats;

typedef struct nb_node {
    char name[64];
    size_t requests, errors;
    nb_stats ttft, e2e, itl;
    double tok_per_s;
    double prompt_tokens, prompt_evaluated; /* sums: estimated sent, reported evaluated */
    double cache_hit;                       /* 1 - evaluated / sent, -1 unknown */
    unsigned slots;                         /* what the pool held it runs at once (0: not a pool) */
    char slots_source[12];                  /* stated, said, learned, max */
} nb_node;

typedef struct nb_req {
    double start_ms, ttft_ms, end_ms; /* from the point's start; ttft -1 when no token */
    int tokens, status;
    double send_lag_ms;       /* open loop: sent this late against its schedule */
    int in_target;            /* input tokens asked for (0 = none) */
    int turn;                 /* 1-based within its conversation (0: single requests) */
    int prompt_tokens;        /* estimated from the characters sent */
    int64_t prompt_evaluated; /* the server's prompt_eval_count, -1 absent */
    double srv_total_ms, srv_load_ms, srv_prompt_ms, srv_eval_ms;
    char node[64];
} nb_req;

typedef struct nb_point {
    int concurrency;         /* closed loop, else 0 */
    double rate;             /* open loop, else 0 */
    size_t ok, failed;
    size_t errors[32];       /* by -status */
    double wall_s, req_per_s, tok_per_s, goodput_req_per_s;
    size_t good;
    uint64_t tokens;
    nb_stats ttft, itl, tpot, e2e;
    double srv_load_ms, srv_prompt_ms, srv_eval_ms, srv_total_ms, net_queue_ms; /* means */
    double overhead_ns_per_token; /* the tool's own CPU / tokens */
    double cache_hit;        /* prompt tokens the servers did not evaluate, of those sent; -1 unknown */
    nb_stats ttft_later;     /* TTFT of turns after the first (conversations) */
    nb_stats i_ttft;         /* --interactive: the interactive class's TTFT */
    size_t i_ok, i_failed;
    double i_req_per_s;
    /* the tool's self-check */
    nb_stats send_lag;       /* open loop: how late each request was sent (ms) */
    double cpu_share;        /* the tool's CPU over the point's wall time (1 = a core) */
    double machine_busy;     /* the machine's CPUs busy over the point (0-1; -1 unknown) */
    double steal_share;      /* of the machine's CPU time, what the hypervisor took (-1 unknown) */
    int flagged;             /* the figures may be the tool's: lag p99 > 1 ms or CPU saturated */
    char flag_why[160];
    double in_len_ratio;     /* server-counted prompt tokens / tokens asked (-1 = none) */
    int repeat_index;        /* which run of the sweep (--repeat) */
    /* --scrape-metrics: samples as JSON text (an array), malloc'd */
    char *scraped;
    nb_node *nodes;
    size_t n_nodes;
    nb_req *reqs;
    size_t n_reqs;
    float *itl_ms;           /* every inter-token gap (capped) */
    size_t n_itl;
} nb_point;

typedef struct nb_report {
    nb_point *points;
    int n_points;            /* runs x sweep points, run by run */
    int per_run;             /* sweep points in one run */
    /* --slo-search: the highest load meeting every objective (0 = none) */
    double slo_found;
    int slo_searched;
} nb_report;

/* --slo-search objectives: metric (ttft, itl, tpot, e2e) at a quantile
 * (50, 90, 95, 99, or 0 for the mean), at most this many ms */
typedef struct nb_objective {
    int metric, q;
    double ms;
} nb_objective;
int nb_objectives_parse(const char *s, nb_objective *o, int max);
/* finds the highest concurrency (or rate, when start_rate > 0) whose point
 * meets every objective: doubling to bracket, then bisection; the points
 * tried are the report's, sorted by load */
int nb_slo_search(ag_client *c, const nb_config *cfg, const nb_objective *o, int n, double start_rate, nb_report *out);
/* agents bench compare A.json B.json: differences, and whether beyond noise */
int nb_compare(const char *a, const char *b, FILE *out);

/* One point (a concurrency, or a rate when rate > 0); cfg as nb_config_defaults left it. */
int nb_run_point(ag_client *c, const nb_config *cfg, nb_point *pt, int conc, double rate);
void nb_config_defaults(nb_config *cfg);
/* Runs every point on c's loop (blocking). 0 or an AG_E* code. */
int nb_run(ag_client *c, const nb_config *cfg, nb_report *out);
void nb_report_free(nb_report *r);

void nb_print_table(FILE *f, const nb_config *cfg, const nb_report *r);
int nb_write_json(const char *path, const nb_config *cfg, const nb_report *r);
int nb_write_csv(const char *path, const nb_report *r);
int nb_write_html(const char *path, const nb_config *cfg, const nb_report *r);

#endif
