/* bench/micro/bench_stream.c - the client end to end against a simulated node in a
 * separate process: CPU (user+sys) the client spends per streamed token, and
 * the client's peak RSS with many concurrent streams held open.
 *
 *   bench_stream AGENTS_BINARY cpu STREAMS CONCURRENCY TOKENS
 *   bench_stream AGENTS_BINARY rss STREAMS
 */
#include <agents.h>
#include <event2/event.h>
#include "sim.h"
#include "spawn.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t sim_pid;

static void stop_sim(void) {
    ag_bench_stop_sim(sim_pid);
    sim_pid = 0;
}

static double cpu_of(const struct rusage *a, const struct rusage *b) {
    return (double)(b->ru_utime.tv_sec - a->ru_utime.tv_sec) + (b->ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6 +
           (double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec) + (b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6;
}

typedef struct state {
    ag_client *c;
    long started, done, errors, tokens, first_tokens;
    long total;
    int concurrency;
} state;

static void on_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    state *s = ud;
    if (ch->kind == AG_CHUNK_CONTENT) {
        s->tokens++;
    }
}

static void start_one(state *s);
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    state *s = ud;
    s->done++;
    if (res->status && res->status != AG_ESHUTDOWN) {
        if (s->errors++ < 3) fprintf(stderr, "error: %s\n", res->error);
    }
    if (s->started < s->total) start_one(s);
}

static void start_one(state *s) {
    static ag_message m = {"user", "benchmark prompt", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {on_chunk, on_done, s};
    s->started++;
    if (ag_chat(s->c, &p, &cb, NULL) != 0) { s->errors++; s->done++; }
}

/* rss mode: count streams that have seen their first token */
static void on_first(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    (void)ch;
    state *s = ud;
    s->tokens++;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s AGENTS cpu STREAMS CONCURRENCY TOKENS | %s AGENTS rss STREAMS\n", argv[0], argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    const char *bin = argv[1];
    struct event_base *base = ag_sim_base_new();
    char host[64];
    if (strcmp(argv[2], "cpu") == 0) {
        long streams = atol(argv[3]);
        int conc = atoi(argv[4]);
        char *tokens = argv[5];
        char *extra[] = {"--tokens", tokens, NULL};
        sim_pid = ag_bench_spawn_sim(bin, 1, extra, host, sizeof host);
        ag_client_options co = {.host = host};
        state s = {0};
        s.c = ag_client_new(base, &co, NULL);
        s.total = streams;
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        int64_t t0 = 0;
        {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            t0 = ts.tv_sec * 1000000000LL + ts.tv_nsec;
        }
        for (int i = 0; i < conc && s.started < streams; i++) start_one(&s);
        while (s.done < streams) event_base_loop(base, EVLOOP_ONCE);
        getrusage(RUSAGE_SELF, &r1);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double wall = (ts.tv_sec * 1000000000LL + ts.tv_nsec - t0) / 1e9;
        double cpu = cpu_of(&r0, &r1);
        printf("cpu: %ld streams x %s tokens at concurrency %d: %ld tokens, %ld errors, client cpu %.3f s "
               "(%.0f ns/token), wall %.3f s (%.0f tokens/s)\n",
               streams, tokens, conc, s.tokens, s.errors, cpu, cpu / (double)s.tokens * 1e9, wall, s.tokens / wall);
        ag_client_free(s.c);
        stop_sim();
        struct rusage rc;
        getrusage(RUSAGE_CHILDREN, &rc);
        double sim_cpu = rc.ru_utime.tv_sec + rc.ru_utime.tv_usec / 1e6 + rc.ru_stime.tv_sec + rc.ru_stime.tv_usec / 1e6;
        printf("sim: cpu %.3f s (%.0f ns/token): the node costs %.2fx the client\n", sim_cpu,
               sim_cpu / (double)s.tokens * 1e9, sim_cpu / cpu);
    } else {
        long streams = atol(argv[3]);
        /* slow streams: one token now, then nothing for a long while */
        char *extra[] = {"--tokens", "1000", "--itl", "60000", NULL};
        sim_pid = ag_bench_spawn_sim(bin, 1, extra, host, sizeof host);
        ag_client_options co = {.host = host, .max_connections = (unsigned)streams + 10};
        state s = {0};
        s.c = ag_client_new(base, &co, NULL);
        long before = rss_kb();
        static ag_message m = {"user", "hold", NULL, NULL, 0, NULL, NULL};
        ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
        ag_callbacks cb = {on_first, on_done, &s};
        s.total = 0;
        for (long i = 0; i < streams; i++)
            if (ag_chat(s.c, &p, &cb, NULL) != 0) s.errors++;
        while (s.tokens + s.errors < streams && s.done == 0) event_base_loop(base, EVLOOP_ONCE);
        long after = rss_kb();
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("rss: %ld concurrent streams open (%ld errors): RSS %ld KiB before, %ld KiB with them open, "
               "%.2f KiB per stream (peak RSS %ld KiB)\n",
               streams, s.errors + s.done, before, after, (double)(after - before) / (double)streams, ru.ru_maxrss);
        ag_client_free(s.c);
    }
    event_base_free(base);
    stop_sim();
    return 0;
}
