/* bench/micro/bench_engine.c - what the engine (agents/engine.h) costs over
 * the C API on the caller's own loop: the same streams, against the same
 * simulated node in another process, in alternating rounds; CPU (user+sys of
 * the whole process, the engine's thread included) per streamed token.
 *
 *   bench_engine AGENTS_BINARY STREAMS CONCURRENCY TOKENS ITL_MS ROUNDS
 *
 * ITL_MS 0 is the burst regime (the node writes as fast as the socket takes
 * it: many tokens a read); 2 is the regime real nodes produce (a token per
 * write, milliseconds apart). Three clients: "api" (callbacks on our loop),
 * "engine" (events through the fd, taken with poll + ag_engine_next, chunks
 * merged while queued), "engine-1by1" (no_coalesce: an event per chunk) and
 * "engine-delay" (notify_delay 0.5 ms: a wake-up for the events of a window). */
#include <agents.h>
#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "spawn.h"

static int streams, conc, started, done;
static long tokens;
static char host[256];

static double cpu_now(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static ag_message msg = {"user", "engine benchmark", NULL, NULL, 0, NULL, NULL};

/* ---- the C API on our loop ---- */
static ag_client *api;
static void api_start(void);
static void api_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r, (void)ch, (void)ud;
}
static void api_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r, (void)ud;
    done++;
    if (res->status == 0) tokens += res->server.eval_count;
    if (started < streams) api_start();
}
static void api_start(void) {
    ag_chat_params p = {.model = "llama3.2", .messages = &msg, .n_messages = 1};
    ag_callbacks cb = {api_chunk, api_done, NULL};
    started++;
    if (ag_chat(api, &p, &cb, NULL) != 0) done++;
}
static void run_api(void) {
    struct event_base *base = event_base_new();
    ag_client_options co = {.host = host};
    api = ag_client_new(base, &co, NULL);
    started = done = 0;
    for (int i = 0; i < conc && started < streams; i++) api_start();
    while (done < streams) event_base_loop(base, EVLOOP_ONCE);
    ag_client_free(api);
    event_base_free(base);
}

/* ---- the engine, from this thread through its fd ---- */
static void run_engine(int no_coalesce, double notify_delay) {
    ag_client_options co = {.host = host};
    ag_engine_options eo = {.client = &co, .no_coalesce = no_coalesce, .notify_delay = notify_delay};
    ag_engine *e = ag_engine_new(&eo, NULL);
    ag_chat_params p = {.model = "llama3.2", .messages = &msg, .n_messages = 1};
    started = done = 0;
    for (int i = 0; i < conc && started < streams; i++, started++) ag_engine_chat(e, &p, NULL, NULL);
    while (done < streams) {
        struct pollfd pfd = {ag_engine_fd(e), POLLIN, 0};
        if (poll(&pfd, 1, 1000) <= 0) continue;
        ag_event *ev;
        while (ag_engine_next(e, &ev, 0) == 1) {
            if (ev->kind == AG_EVENT_DONE) {
                done++;
                if (ev->status == 0) tokens += ev->result->server.eval_count;
                if (started < streams) {
                    started++;
                    ag_engine_chat(e, &p, NULL, NULL);
                }
            }
            ag_event_free(ev);
        }
    }
    ag_engine_free(e);
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s AGENTS STREAMS CONCURRENCY TOKENS ITL_MS ROUNDS\n", argv[0]);
        return 2;
    }
    streams = atoi(argv[2]);
    conc = atoi(argv[3]);
    int rounds = atoi(argv[6]);
    char *extra[] = {"--tokens", argv[4], "--itl", argv[5], NULL};
    pid_t sim = ag_bench_spawn_sim(argv[1], 1, extra, host, sizeof host);
    const char *names[] = {"api", "engine", "engine-1by1", "engine-delay"};
    double cpu[4] = {0}, tok[4] = {0};
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < 4; j++) {
            int k = (r + j) % 4; /* each client first in turn: no order favours one */
            tokens = 0;
            double t0 = cpu_now();
            if (k == 0) run_api();
            else run_engine(k == 2, k == 3 ? 0.0005 : 0);
            cpu[k] += cpu_now() - t0;
            tok[k] += (double)tokens;
        }
    ag_bench_stop_sim(sim);
    printf("streams %d, concurrency %d, tokens %s, itl %s ms, rounds %d\n", streams, conc, argv[4], argv[5], rounds);
    printf("| client | CPU per token | x api |\n|---|---|---|\n");
    double base = cpu[0] / tok[0];
    for (int k = 0; k < 4; k++)
        printf("| %s | %.3f us | %.2fx |\n", names[k], cpu[k] / tok[k] * 1e6, cpu[k] / tok[k] / base);
    return 0;
}
