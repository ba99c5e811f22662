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
    int shared_prefix;         /* a system prompt of about this many tokens, the same for all */
    int turn_tokens;           /* each turn's new message padded to about this many tokens
                                  (a tool result in an agent's loop); 0 = a short question */
    int no_session;            /* do not give each conversation a session key */
    int progress;              /* a live line on stderr */
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
} nb_node;

typedef struct nb_req {
    double start_ms, ttft_ms, end_ms; /* from the point's start; ttft -1 when no token */
    int tokens, status;
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
    nb_node *nodes;
    size_t n_nodes;
    nb_req *reqs;
    size_t n_reqs;
    float *itl_ms;           /* every inter-token gap (capped) */
    size_t n_itl;
} nb_point;

typedef struct nb_report {
    nb_point *points;
    int n_points;
} nb_report;

/* Runs every point on c's loop (blocking). 0 or an AG_E* code. */
int nb_run(ag_client *c, const nb_config *cfg, nb_report *out);
void nb_report_free(nb_report *r);

void nb_print_table(FILE *f, const nb_config *cfg, const nb_report *r);
int nb_write_json(const char *path, const nb_config *cfg, const nb_report *r);
int nb_write_csv(const char *path, const nb_report *r);
int nb_write_html(const char *path, const nb_config *cfg, const nb_report *r);

#endif
