/* bench/micro/bench_sched.c - the pool's scheduler over simulated clusters.
 *
 *   bench_sched policies    4 nodes at speeds 1, 1, 0.5, 0.25, every policy
 *   bench_sched failure     the same, node 1 killed a third of the way in
 *   bench_sched routing     cost of one routing decision with 10 and 1,000 nodes
 *
 * Each node runs 4 generations at once (--slots 4) and queues the rest; a
 * request is 32 tokens at 2 ms per token on a speed-1 node. The ideal bound
 * is the sum of the nodes' capacities (slots / time per request).
 */
#include <agents.h>
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

long ag__pool_bench_choose(ag_client *c, const char *model, const char *body, long iters);

#define NODES 4
#define TOKENS 32
#define SLOTS 4
static const double speed[NODES] = {1, 1, 0.5, 0.25};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct run {
    struct event_base *base;
    ag_sim *sim[NODES];
    ag_client *c;
    int total, started, done, ok, conc;
    int errors[64];
    double *e2e;
    int kill_after; /* kill node 1 after this many completions; 0 = never */
    int killed;
} run;

static void start_one(run *x);
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    run *x = ud;
    if (res->status == 0) x->e2e[x->ok++] = res->timing.e2e_ns / 1e6;
    else x->errors[-res->status & 63]++;
    x->done++;
    if (x->kill_after && x->done == x->kill_after && !x->killed) {
        ag_sim_free(x->sim[1]);
        x->sim[1] = NULL;
        x->killed = 1;
    }
    if (x->started < x->total) start_one(x);
}
static void start_one(run *x) {
    static ag_message m = {"user", "schedule me", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {NULL, on_done, x};
    x->started++;
    if (ag_chat(x->c, &p, &cb, NULL) != 0) {
        x->done++;
        x->errors[0]++;
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void one(int policy, const char *name, int kill) {
    run x;
    memset(&x, 0, sizeof x);
    x.base = ag_sim_base_new();
    char nodes[256] = "";
    for (int i = 0; i < NODES; i++) {
        ag_sim_config cfg = {.tokens = TOKENS, .itl_ms = 2.0 / speed[i], .slots = SLOTS, .max_queue = 512};
        x.sim[i] = ag_sim_new(x.base, "127.0.0.1", 0, &cfg);
        char one[40];
        snprintf(one, sizeof one, "%s127.0.0.1:%d", i ? "," : "", ag_sim_port(x.sim[i]));
        strcat(nodes, one);
    }
    ag_pool_options po = {.nodes = nodes, .policy = policy, .node_max_in_flight = 4 * SLOTS,
                          .readmit_min = 0.5, .seed = 42};
    x.c = ag_pool_new(x.base, &po, NULL);
    x.total = 2000;
    x.conc = 24;
    x.e2e = calloc((size_t)x.total, sizeof(double));
    x.kill_after = kill ? x.total / 3 : 0;
    double t0 = now_s();
    for (int i = 0; i < x.conc; i++) start_one(&x);
    while (x.done < x.total) event_base_loop(x.base, EVLOOP_ONCE);
    double wall = now_s() - t0;
    qsort(x.e2e, (size_t)x.ok, sizeof(double), cmp);
    double cap = 0;
    for (int i = 0; i < NODES; i++) cap += SLOTS / (TOKENS * 2e-3 / speed[i]);
    if (kill) { /* full capacity for the first third, without node 1 after */
        double after = cap - SLOTS / (TOKENS * 2e-3 / speed[1]);
        cap = x.total / (x.kill_after / cap + (x.total - x.kill_after) / after);
    }
    int errs = x.total - x.ok;
    printf("%-8s %8.1f req/s  (%.0f%% of ideal %.1f)  e2e p50 %7.1f ms  p99 %7.1f ms  errors %d", name,
           x.ok / wall, 100 * (x.ok / wall) / cap, cap, x.e2e[x.ok / 2], x.e2e[(int)(x.ok * 0.99)], errs);
    if (errs) {
        printf(" (");
        for (int e = 0; e < 64; e++)
            if (x.errors[e]) printf("%s %d ", e ? ag_err_name(-e) : "start", x.errors[e]);
        printf(")");
    }
    ag_node_info info[NODES];
    size_t n = ag_pool_nodes(x.c, info, NODES);
    printf("  served:");
    for (size_t i = 0; i < n; i++) printf(" %llu", (unsigned long long)info[i].requests);
    printf("\n");
    ag_client_free(x.c);
    for (int i = 0; i < NODES; i++) ag_sim_free(x.sim[i]);
    event_base_free(x.base);
    free(x.e2e);
}

static void routing(int nodes) {
    struct event_base *base = ag_sim_base_new();
    char *list = malloc((size_t)nodes * 24);
    list[0] = 0;
    for (int i = 0; i < nodes; i++) {
        char one[32];
        snprintf(one, sizeof one, "%s10.0.%d.%d:11434", i ? "," : "", i / 250, i % 250 + 1);
        strcat(list, one);
    }
    const char *names[] = {"p2c", "rr", "random", "least"};
    for (int policy = 0; policy < 4; policy++) {
        ag_pool_options po = {.nodes = list, .policy = policy, .probe_interval = -1};
        ag_client *c = ag_pool_new(base, &po, NULL);
        long iters = nodes > 100 ? 200000 : 2000000;
        struct timespec a, b;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        long found = ag__pool_bench_choose(c, "llama3.2", NULL, iters);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / iters;
        printf("routing, %4d nodes, %-6s: %8.0f ns per decision (%ld of %ld found a node)\n", nodes,
               names[policy], ns, found, iters);
        ag_client_free(c);
    }
    /* prefix affinity: a chat of 8 KiB (a 6,000-character system prompt and
     * a conversation), 32 blocks hashed, looked up on every node, stored */
    char *body = malloc(9000);
    int k = snprintf(body, 9000, "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"system\",\"content\":\"");
    for (int i = 0; i < 6000; i++) body[k++] = "abcdefgh "[i % 9];
    k += snprintf(body + k, 9000 - (size_t)k, "\"},{\"role\":\"user\",\"content\":\"");
    for (int i = 0; i < 2000; i++) body[k++] = "question "[i % 9];
    snprintf(body + k, 9000 - (size_t)k, "\"}],\"stream\":true}");
    for (int prefix = 0; prefix < 2; prefix++) {
        ag_pool_options po = {.nodes = list, .probe_interval = -1, .prefix_entries = prefix ? 0 : -1};
        ag_client *c = ag_pool_new(base, &po, NULL);
        long iters = nodes > 100 ? 20000 : 500000;
        struct timespec a, b;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        long found = ag__pool_bench_choose(c, "llama3.2", body, iters);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / iters;
        ag_node_info info[1000];
        size_t nn = ag_pool_nodes(c, info, 1000);
        size_t bytes = 0;
        for (size_t i = 0; i < nn && i < 1000; i++) bytes += info[i].prefix_bytes;
        printf("routing, %4d nodes, p2c %-7s: %8.0f ns per decision with an 8 KiB chat (%ld of %ld found a node; "
               "tables %zu KiB)\n", nodes, prefix ? "+cache" : "+load", ns, found, iters, bytes / 1024);
        ag_client_free(c);
    }
    free(body);
    free(list);
    event_base_free(base);
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "policies";
    const char *names[] = {"p2c", "rr", "random", "least"};
    if (!strcmp(what, "policies") || !strcmp(what, "failure")) {
        int kill = !strcmp(what, "failure");
        printf("%d nodes at speeds 1, 1, 0.5, 0.25 (%d slots each), 2000 chats of %d tokens, 24 in flight%s\n",
               NODES, SLOTS, TOKENS, kill ? ", node 1 killed after 666" : "");
        for (int p = 0; p < 4; p++) one(p, names[p], kill);
    } else if (!strcmp(what, "routing")) {
        routing(10);
        routing(1000);
    } else {
        fprintf(stderr, "usage: %s policies|failure|routing\n", argv[0]);
        return 2;
    }
    return 0;
}
