/* bench/micro/bench_batch.c - the batch runner end to end: N chat tasks through
 * `ag_batch_run` on a pool of simulated nodes in another process (zero
 * delays), reporting tasks/s, tokens/s and the runner's own CPU per task.
 *
 *   bench_batch AGENTS_BINARY [tasks] [concurrency] [tokens]
 */
#include <agents.h>
#include <event2/event.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim.h"
#include "spawn.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s AGENTS [tasks] [concurrency] [tokens]\n", argv[0]);
        return 2;
    }
    int tasks = argc > 2 ? atoi(argv[2]) : 10000, conc = argc > 3 ? atoi(argv[3]) : 256;
    const char *tokens = argc > 4 ? argv[4] : "32";
    signal(SIGPIPE, SIG_IGN);
    char nodes[128];
    char *extra[] = {"--tokens", (char *)tokens, NULL};
    pid_t pid = ag_bench_spawn_sim(argv[1], 2, extra, nodes, sizeof nodes);
    char in[64], out[64];
    snprintf(in, sizeof in, "/tmp/bench_batch_%d.in", (int)getpid());
    snprintf(out, sizeof out, "/tmp/bench_batch_%d.out", (int)getpid());
    FILE *f = fopen(in, "w");
    for (int i = 1; i <= tasks; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"task number %d\"}\n", i, i);
    fclose(f);
    unlink(out);
    struct event_base *base = ag_sim_base_new();
    ag_pool_options po = {.nodes = nodes, .node_max_in_flight = (unsigned)conc};
    ag_client *c = ag_pool_new(base, &po, NULL);
    ag_agent *a = ag_agent_chat(c, "llama3.2");
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = (unsigned)conc, .progress = 0};
    ag_batch_summary s;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    int rc = ag_batch_run(a, &bo, &s);
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    printf("batch: %d tasks x %s tokens at concurrency %d over 2 nodes: %zu ok, %zu failed, %.2f s, "
           "%.0f tasks/s, %.0f tokens/s, runner cpu %.3f s (%.1f us/task), p50 %.1f ms, p99 %.1f ms\n",
           tasks, tokens, conc, s.ok, s.failed, s.wall_s, s.tasks_per_s, s.tokens_per_s, cpu,
           cpu / (s.ok + s.failed) * 1e6, s.p50_ms, s.p99_ms);
    ag_agent_free(a);
    ag_client_free(c);
    event_base_free(base);
    ag_bench_stop_sim(pid);
    struct rusage rc2;
    getrusage(RUSAGE_CHILDREN, &rc2);
    double sim = rc2.ru_utime.tv_sec + rc2.ru_utime.tv_usec / 1e6 + rc2.ru_stime.tv_sec + rc2.ru_stime.tv_usec / 1e6;
    printf("sim: cpu %.3f s (%.1f us/task)\n", sim, sim / tasks * 1e6);
    unlink(in);
    unlink(out);
    return rc;
}
