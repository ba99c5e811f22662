/* The threading model, checked: one client per thread, each on its own
 * event_base, share nothing (the library keeps no mutable global state), so
 * four threads, each with its own client and node, complete every request.
 * The nodes run in another process (`agents sim`: the simulated node itself
 * is single-threaded test equipment). helgrind on this program reports races
 * only inside libevent (its debug-mode flag). Usage: test_threads AGENTS */
#include <agents.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "spawn.h"

typedef struct worker {
    char host[64];
    int ok, done;
} worker;

static void w_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    worker *w = ud;
    w->done++;
    if (res->status == 0) w->ok++;
}

static void *run_worker(void *arg) {
    worker *w = arg;
    struct event_base *base = event_base_new();
    ag_client_options o = {.host = w->host};
    ag_client *c = ag_client_new(base, &o, NULL);
    if (!c) return NULL;
    ag_message m = {"user", "threads", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {NULL, w_done, w};
    for (int i = 0; i < 50; i++) ag_chat(c, &p, &cb, NULL);
    for (int i = 0; i < 20000 && w->done < 50; i++) event_base_loop(base, EVLOOP_ONCE);
    ag_client_free(c);
    event_base_free(base);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s AGENTS_BINARY\n", argv[0]);
        return 2;
    }
    char nodes[512];
    pid_t sim = ag_bench_spawn_sim(argv[1], 4, (char *[]){"--tokens", "8", NULL}, nodes, sizeof nodes);
    worker w[4];
    memset(w, 0, sizeof w);
    char *save = NULL, *tok = strtok_r(nodes, ",", &save);
    for (int i = 0; i < 4 && tok; i++, tok = strtok_r(NULL, ",", &save)) snprintf(w[i].host, sizeof w[i].host, "%s", tok);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, run_worker, &w[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    ag_bench_stop_sim(sim);
    int bad = 0;
    for (int i = 0; i < 4; i++)
        if (w[i].done != 50 || w[i].ok != 50) {
            fprintf(stderr, "thread %d: %d of 50 done, %d ok\n", i, w[i].done, w[i].ok);
            bad++;
        }
    printf("%s four_threads\n", bad ? "FAIL" : "ok  ");
    return bad ? 1 : 0;
}
