/* The threading model, checked: one client per thread, each on its own
 * event_base, share nothing (the library has no mutable global state), so
 * four threads each running their own node and client complete every
 * request. (helgrind on this program: see the note in client.h.) */
#include "support.h"
#include <pthread.h>

typedef struct worker {
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
    struct event_base *base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = 8};
    ag_sim *sim = ag_sim_new(base, "127.0.0.1", 0, &cfg);
    if (!sim) return NULL;
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", ag_sim_port(sim));
    ag_client_options o = {.host = host};
    ag_client *c = ag_client_new(base, &o, NULL);
    ag_message m = {"user", "threads", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {NULL, w_done, w};
    for (int i = 0; i < 50; i++) ag_chat(c, &p, &cb, NULL);
    for (int i = 0; i < 5000 && w->done < 50; i++) event_base_loop(base, EVLOOP_ONCE);
    ag_client_free(c);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ag_sim_free(sim);
    event_base_free(base);
    return NULL;
}

static void four_threads(void) {
    pthread_t th[4];
    worker w[4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 4; i++) REQUIRE(pthread_create(&th[i], NULL, run_worker, &w[i]) == 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(w[i].done, 50);
        CHECK_INT(w[i].ok, 50);
    }
}

T_MAIN(T(four_threads))
