/* bench/soak/soak.c - long runs against simulated nodes in another process:
 * RSS flat after warm-up, no file descriptor growth, no error the nodes did
 * not cause. Exit status 1 when one of those fails.
 *
 *   soak AGENTS REQUESTS CONCURRENCY     e.g. 1000000 256 (the long one), 20000 128 (CI)
 *   soak AGENTS --hold STREAMS           STREAMS slow streams open at once, all completed
 */
#include <agents.h>
#include <event2/event.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "spawn.h"

static int fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d)) n++;
    if (d) closedir(d);
    return n - 3; /* ".", "..", and the DIR itself */
}
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct state {
    ag_client *c;
    long total, started, done, errors, tokens;
    int conc;
    long next_mark;
    long rss_warm, rss_peak_after;
    int fd_base, fd_warm;
    double t0;
} state;

static void start_one(state *s);
static void on_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    if (ch->kind == AG_CHUNK_CONTENT) ((state *)ud)->tokens++;
}
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    state *s = ud;
    s->done++;
    if (res->status && s->errors++ < 5) fprintf(stderr, "error: %s: %s\n", ag_err_name(res->status), res->error);
    if (s->done == s->next_mark) {
        long rss = rss_kb();
        if (s->done >= s->total / 5) { /* after warm-up */
            if (!s->rss_warm) {
                s->rss_warm = rss;
                s->fd_warm = fds();
            }
            if (rss > s->rss_peak_after) s->rss_peak_after = rss;
        }
        printf("%9ld done  %7.0f req/s  RSS %6ld KiB  fds %4d  errors %ld\n", s->done, s->done / (now_s() - s->t0), rss,
               fds(), s->errors);
        fflush(stdout);
        s->next_mark += s->total / 10 > 0 ? s->total / 10 : 1;
    }
    if (s->started < s->total) start_one(s);
}
static void start_one(state *s) {
    static ag_message m = {"user", "soak", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {on_chunk, on_done, s};
    s->started++;
    if (ag_chat(s->c, &p, &cb, NULL) != 0) {
        s->errors++;
        s->done++;
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s AGENTS REQUESTS CONCURRENCY | %s AGENTS --hold STREAMS\n", argv[0], argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int hold = !strcmp(argv[2], "--hold");
    long n = atol(argv[3]);
    if (hold && (long)rl.rlim_cur < n + 256) { /* one fd a stream, plus ours */
        printf("note: the file limit is %ld: holding %ld streams instead of %ld\n", (long)rl.rlim_cur,
               (long)rl.rlim_cur - 256, n);
        n = (long)rl.rlim_cur - 256;
    }
    char nodes[128];
    char *fast[] = {"--tokens", "4", NULL};
    char *slow[] = {"--tokens", "20", "--itl", "100", NULL}; /* 2 s a stream */
    pid_t sim_pid = ag_bench_spawn_sim(argv[1], 2, hold ? slow : fast, nodes, sizeof nodes);
    struct event_base *base = ag_sim_base_new();
    ag_pool_options po = {.nodes = nodes, .node_max_in_flight = hold ? (unsigned)n : 512,
                          .client.max_connections = hold ? (unsigned)n + 16 : 0};
    state s;
    memset(&s, 0, sizeof s);
    s.c = ag_pool_new(base, &po, NULL);
    int fail = 0;
    s.fd_base = fds();
    s.t0 = now_s();
    if (hold) {
        s.total = n;
        s.next_mark = n;
        long before = rss_kb();
        for (long i = 0; i < n; i++) start_one(&s);
        while (s.done < n) event_base_loop(base, EVLOOP_ONCE);
        printf("%ld streams held open at once: %ld ok, %ld errors, %.1f s; RSS %ld -> %ld KiB\n", n, n - s.errors, s.errors,
               now_s() - s.t0, before, rss_kb());
        fail = s.errors != 0;
    } else {
        s.total = atol(argv[2]);
        s.conc = atoi(argv[3]) > 0 ? atoi(argv[3]) : 128;
        s.next_mark = s.total / 10 > 0 ? s.total / 10 : 1;
        for (int i = 0; i < s.conc && s.started < s.total; i++) start_one(&s);
        while (s.done < s.total) event_base_loop(base, EVLOOP_ONCE);
        int fd_end = fds();
        long growth = s.rss_peak_after - s.rss_warm;
        printf("%ld requests at concurrency %d: %ld errors, %.1f s (%.0f req/s), %ld tokens; RSS after warm-up %ld KiB, "
               "peak %ld KiB (+%ld); fds %d at start, %d after warm-up, %d at the end\n",
               s.total, s.conc, s.errors, now_s() - s.t0, s.total / (now_s() - s.t0), s.tokens, s.rss_warm,
               s.rss_peak_after, growth, s.fd_base, s.fd_warm, fd_end);
        if (s.errors) fail = 1, fprintf(stderr, "FAIL: errors the nodes did not cause\n");
#if defined(__SANITIZE_ADDRESS__)
        (void)growth; /* ASan's quarantine holds freed memory on purpose: RSS says nothing here */
        printf("note: built with AddressSanitizer: the RSS check is skipped\n");
#else
        if (growth > 2048 && growth > s.rss_warm / 10) fail = 1, fprintf(stderr, "FAIL: RSS grew after warm-up\n");
#endif
        /* the idle keep-alive pools (64 a node) stay open; nothing else may grow */
        if (fd_end > s.fd_warm + 2) fail = 1, fprintf(stderr, "FAIL: file descriptors grew after warm-up\n");
        if (s.tokens != 4 * s.total) fail = 1, fprintf(stderr, "FAIL: tokens %ld, expected %ld\n", s.tokens, 4 * s.total);
    }
    ag_client_free(s.c);
    event_base_free(base);
    ag_bench_stop_sim(sim_pid);
    printf("%d passed, %d failed\n", !fail, fail);
    return fail;
}
