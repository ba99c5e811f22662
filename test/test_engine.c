/* The engine (agents/engine.h): a client on a thread of its own, used from
 * other threads and through its notification fd. The nodes run in another
 * process (`agents sim`), so that every thread here is ours or the engine's. */
#include <agents.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sim.h"
#include "spawn.h"
#include "test.h"

static pid_t sim_pid;
static char nodes[512];

static void sim_start(char *const extra[]) {
    sim_pid = ag_bench_spawn_sim(AGENTS_BIN, 1, extra, nodes, sizeof nodes);
}

static ag_engine *engine_on(const char *host, size_t max_pending, int no_coalesce) {
    ag_client_options co = {.host = host};
    ag_engine_options eo = {.client = &co, .max_pending = max_pending, .no_coalesce = no_coalesce};
    int err = 0;
    ag_engine *e = ag_engine_new(&eo, &err);
    REQUIRE(e && err == 0);
    return e;
}

/* an engine running a pool of two simulated nodes (another process) */
static ag_engine *pool_engine(char *const sim_args[], pid_t *pid) {
    *pid = ag_bench_spawn_sim(AGENTS_BIN, 2, sim_args, nodes, sizeof nodes);
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.nodes = nodes;
    ag_engine_options eo = {.pool = &po};
    ag_engine *e = ag_engine_new(&eo, NULL);
    REQUIRE(e);
    return e;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ag_message user_msg = {"user", "tell me about threads", NULL, NULL, 0, NULL, NULL};

/* the simulated node's answer to user_msg, from its own token function: what
 * every engine path must deliver (not the engine's own blocking call) */
static void check_sim_text(const ag_sync_out *o, int n) {
    char want[16384] = "";
    size_t l = 0;
    for (int i = 0; i < n; i++) {
        const char *t = ag_sim_token("llama3.2", user_msg.content, i);
        size_t k = strlen(t);
        REQUIRE(l + k < sizeof want);
        memcpy(want + l, t, k + 1);
        l += k;
    }
    CHECK(o->text != NULL && o->text_len == l && memcmp(o->text, want, l) == 0);
}

/* ---- events from several submitting threads, taken through the fd ---- */

#define SUBMITTERS 4
#define PER_THREAD 50
#define TOTAL (SUBMITTERS * PER_THREAD)

typedef struct track {
    char text[4096];
    size_t len;
    int dones, status, chunks_after_done;
    uint64_t id;
} track;

static track tracks[TOTAL];
static ag_engine *shared;

static void *submitter(void *arg) {
    int base = (int)(size_t)arg * PER_THREAD;
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    for (int i = 0; i < PER_THREAD; i++) {
        int rc = ag_engine_chat(shared, &p, &tracks[base + i], &tracks[base + i].id);
        if (rc != 0) tracks[base + i].status = rc;
    }
    return NULL;
}

static void take_all(ag_engine *e, int *done, int want, double seconds) {
    double end = now_s() + seconds;
    while (*done < want && now_s() < end) {
        struct pollfd pfd = {ag_engine_fd(e), POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) continue;
        ag_event *ev;
        while (ag_engine_next(e, &ev, 0) == 1) {
            track *t = ev->ud;
            if (ev->kind == AG_EVENT_CHUNK) {
                if (t->dones) t->chunks_after_done++;
                if (ev->chunk.kind == AG_CHUNK_CONTENT && t->len + ev->chunk.len < sizeof t->text) {
                    memcpy(t->text + t->len, ev->chunk.text, ev->chunk.len);
                    t->len += ev->chunk.len;
                }
            } else {
                t->dones++;
                t->status = ev->status;
                if (ev->id != t->id) t->status = 12345;
                (*done)++;
            }
            ag_event_free(ev);
        }
    }
}

static void events_from_threads(void) {
    sim_start((char *[]){"--tokens", "16", "--itl", "1", NULL});
    shared = engine_on(nodes, 0, 0);
    /* the answer every request should get, by the blocking call */
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    ag_sync_out want;
    CHECK_INT(ag_engine_chat_sync(shared, &p, &want), 0);
    check_sim_text(&want, 16);
    REQUIRE(want.text && want.text_len > 0);
    memset(tracks, 0, sizeof tracks);
    pthread_t th[SUBMITTERS];
    for (size_t i = 0; i < SUBMITTERS; i++) pthread_create(&th[i], NULL, submitter, (void *)i);
    for (int i = 0; i < SUBMITTERS; i++) pthread_join(th[i], NULL);
    int done = 0;
    take_all(shared, &done, TOTAL, 60);
    CHECK_INT(done, TOTAL);
    int ok = 0;
    for (int i = 0; i < TOTAL; i++) {
        track *t = &tracks[i];
        if (t->dones == 1 && t->status == 0 && t->chunks_after_done == 0 && t->len == want.text_len &&
            memcmp(t->text, want.text, t->len) == 0)
            ok++;
        else if (i < 3 || ok < i - 3)
            fprintf(stderr, "request %d: dones %d status %d len %zu (want %zu) after %d\n", i, t->dones,
                    t->status, t->len, want.text_len, t->chunks_after_done);
    }
    CHECK_INT(ok, TOTAL);
    /* nothing waits: the fd is not readable */
    struct pollfd pfd = {ag_engine_fd(shared), POLLIN, 0};
    CHECK_INT(poll(&pfd, 1, 50), 0);
    ag_event *ev = NULL;
    CHECK_INT(ag_engine_next(shared, &ev, 10), 0);
    CHECK(ev == NULL);
    ag_sync_out_free(&want);
    ag_engine_free(shared);
    ag_bench_stop_sim(sim_pid);
}

/* ---- blocking calls from many threads at once ---- */

static int sync_ok[8];

static void *sync_worker(void *arg) {
    size_t k = (size_t)arg;
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    for (int i = 0; i < 20; i++) {
        ag_sync_out o;
        int rc = ag_engine_chat_sync(shared, &p, &o);
        if (rc == 0 && o.text_len > 0 && o.result && o.result->server.eval_count == 8) sync_ok[k]++;
        ag_sync_out_free(&o);
    }
    return NULL;
}

static void sync_from_threads(void) {
    sim_start((char *[]){"--tokens", "8", "--itl", "2", NULL});
    shared = engine_on(nodes, 0, 0);
    memset(sync_ok, 0, sizeof sync_ok);
    pthread_t th[8];
    for (size_t i = 0; i < 8; i++) pthread_create(&th[i], NULL, sync_worker, (void *)i);
    /* the blocked threads' requests run at once on the engine: watch how many
     * are active together (one at a time would mean the threads took turns) */
    unsigned most = 0;
    for (int i = 0; i < 2000; i++) {
        ag_engine_stats st;
        ag_engine_get_stats(shared, &st);
        if (st.active > most) most = st.active;
        if (most >= 4) break;
        usleep(1000);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) CHECK_INT(sync_ok[i], 20);
    CHECK(most >= 4);
    /* an embedding and an admin call the same way */
    const char *in[] = {"a", "b"};
    ag_embed_params ep = {.model = "nomic-embed-text", .inputs = in, .n_inputs = 2};
    ag_sync_out o;
    CHECK_INT(ag_engine_embed_sync(shared, &ep, &o), 0);
    CHECK(o.result && o.result->n_embeddings == 2 && o.result->dim == 768);
    ag_sync_out_free(&o);
    CHECK_INT(ag_engine_admin_sync(shared, AG_OP_VERSION, NULL, &o), 0);
    CHECK(o.result && o.result->version && *o.result->version);
    ag_sync_out_free(&o);
    ag_engine_free(shared);
    ag_bench_stop_sim(sim_pid);
}

/* ---- cancel from another thread ---- */

static void cancel_from_thread(void) {
    sim_start((char *[]){"--tokens", "200", "--itl", "20", NULL});
    ag_engine *e = engine_on(nodes, 0, 0);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    uint64_t id = 0;
    CHECK_INT(ag_engine_chat(e, &p, NULL, &id), 0);
    CHECK(id != 0);
    int chunks = 0, dones = 0, status = 1;
    double end = now_s() + 20;
    while (dones == 0 && now_s() < end) {
        ag_event *ev;
        if (ag_engine_next(e, &ev, 500) != 1) continue;
        if (ev->kind == AG_EVENT_CHUNK && ++chunks == 1) ag_engine_cancel(e, id);
        if (ev->kind == AG_EVENT_DONE) {
            dones++;
            status = ev->status;
            CHECK(ev->result != NULL);
        }
        ag_event_free(ev);
    }
    CHECK_INT(dones, 1);
    CHECK_INT(status, AG_ECANCELED);
    CHECK(chunks < 50);
    /* cancelling an id that is over, or never was: nothing */
    ag_engine_cancel(e, id);
    ag_engine_cancel(e, 999999);
    ag_event *ev = NULL;
    CHECK_INT(ag_engine_next(e, &ev, 100), 0);
    ag_engine_free(e);
    ag_bench_stop_sim(sim_pid);
}

/* ---- a slow consumer slows the stream; nothing is lost ---- */

static void backpressure(void) {
    sim_start((char *[]){"--tokens", "40000", NULL});
    ag_engine *e = engine_on(nodes, 8192, 1);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    CHECK_INT(ag_engine_chat(e, &p, NULL, NULL), 0);
    /* the consumer looks away; then counts what was queued meanwhile */
    usleep(400 * 1000);
    ag_engine_stats st;
    ag_engine_get_stats(e, &st);
    CHECK_INT(st.active, 1);
    CHECK_INT(st.paused, 1);
    CHECK(st.pauses >= 1);
    size_t queued = 0, total = 0;
    int dones = 0, status = 1;
    ag_event *ev;
    while (ag_engine_next(e, &ev, 0) == 1) {
        if (ev->kind == AG_EVENT_CHUNK) queued += ev->chunk.len;
        else dones++;
        ag_event_free(ev);
    }
    total = queued;
    double end = now_s() + 60;
    while (!dones && now_s() < end) {
        if (ag_engine_next(e, &ev, 500) != 1) continue;
        if (ev->kind == AG_EVENT_CHUNK) total += ev->chunk.len;
        else {
            dones++;
            status = ev->status;
            CHECK(ev->result && ev->result->server.eval_count == 40000);
            CHECK(ev->result && (size_t)ev->result->timing.bytes == total);
        }
        ag_event_free(ev);
    }
    fprintf(stderr, "queued while away: %zu bytes in %zu events; whole answer %zu bytes\n",
            st.pending_bytes, st.queued_events, total);
    /* the cap (8 KiB) plus at most one read per request past it */
    CHECK(st.pending_bytes < 8192 + 70000);
    CHECK(queued >= st.pending_bytes);
    CHECK(total > 150000);
    CHECK_INT(dones, 1);
    CHECK_INT(status, 0);
    ag_engine_get_stats(e, &st);
    CHECK_INT(st.active, 0);
    CHECK_INT(st.paused, 0);
    CHECK_INT(st.pending_bytes, 0);
    CHECK_INT(st.queued_events, 0);
    ag_engine_free(e);
    ag_bench_stop_sim(sim_pid);
}

/* ---- a consumer that is behind gets merged chunks, not lost text ---- */

static void coalesce(void) {
    sim_start((char *[]){"--tokens", "300", NULL});
    ag_engine *e = engine_on(nodes, 0, 0);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    ag_sync_out want;
    CHECK_INT(ag_engine_chat_sync(e, &p, &want), 0);
    check_sim_text(&want, 300);
    CHECK_INT(ag_engine_chat(e, &p, NULL, NULL), 0);
    usleep(300 * 1000); /* the answer is complete by now */
    ag_engine_stats st;
    ag_engine_get_stats(e, &st);
    CHECK(st.merged > 0);
    int events = 0, dones = 0;
    char text[65536];
    size_t len = 0;
    ag_event *ev;
    double end = now_s() + 20;
    while (!dones && now_s() < end) {
        if (ag_engine_next(e, &ev, 200) != 1) continue;
        if (ev->kind == AG_EVENT_CHUNK && ev->chunk.kind == AG_CHUNK_CONTENT) {
            events++;
            if (len + ev->chunk.len <= sizeof text) memcpy(text + len, ev->chunk.text, ev->chunk.len);
            len += ev->chunk.len;
            CHECK(ev->chunk.text[ev->chunk.len] == 0);
        } else if (ev->kind == AG_EVENT_DONE) {
            dones++;
            CHECK(ev->result && ev->result->timing.chunks == 300);
        }
        ag_event_free(ev);
    }
    CHECK_INT(dones, 1);
    CHECK(events >= 1 && events < 30);
    CHECK_INT(len, want.text_len);
    CHECK(len <= sizeof text && memcmp(text, want.text, len) == 0);
    ag_sync_out_free(&want);
    ag_engine_free(e);
    ag_bench_stop_sim(sim_pid);
}

/* ---- errors: at the call, and from the start on the engine's thread ---- */

static void errors(void) {
    sim_start((char *[]){"--tokens", "4", NULL});
    ag_engine *e = engine_on(nodes, 0, 0);
    CHECK_INT(ag_engine_chat(e, NULL, NULL, NULL), AG_EINVAL);
    CHECK_INT(ag_engine_chat(NULL, NULL, NULL, NULL), AG_EINVAL);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    p.gen.options_json = "{not json";
    uint64_t id = 0;
    CHECK_INT(ag_engine_chat(e, &p, (void *)0x1234, &id), 0);
    ag_event *ev = NULL;
    CHECK_INT(ag_engine_next(e, &ev, 5000), 1);
    REQUIRE(ev);
    CHECK_INT(ev->kind, AG_EVENT_DONE);
    CHECK_INT(ev->status, AG_EINVAL);
    CHECK(ev->id == id && ev->ud == (void *)0x1234);
    CHECK(ev->result && ev->result->status == AG_EINVAL && ev->result->node == NULL);
    ag_event_free(ev);
    ag_sync_out o;
    CHECK_INT(ag_engine_chat_sync(e, &p, &o), AG_EINVAL);
    ag_sync_out_free(&o);
    /* a model the node lacks: the node's 404 */
    p.gen.options_json = NULL;
    p.model = "no-such-model";
    CHECK_INT(ag_engine_chat_sync(e, &p, &o), AG_ENOTFOUND);
    CHECK(o.result && o.result->http_status == 404);
    ag_sync_out_free(&o);
    ag_engine_free(e);
    ag_bench_stop_sim(sim_pid);
}

/* ---- free with work everywhere: pending requests, a thread blocked in
 * next(), another in a blocking call ---- */

static int blocked_rc, sync_rc;

static void *blocked_next(void *arg) {
    ag_event *ev = NULL;
    int rc;
    /* take events until the engine goes away */
    while ((rc = ag_engine_next(arg, &ev, -1)) == 1) ag_event_free(ev);
    blocked_rc = rc;
    return NULL;
}

static void *blocked_sync(void *arg) {
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    ag_sync_out o;
    sync_rc = ag_engine_chat_sync(arg, &p, &o);
    ag_sync_out_free(&o);
    return NULL;
}

static void free_with_pending(void) {
    sim_start((char *[]){"--tokens", "1000", "--itl", "20", NULL});
    ag_engine *e = engine_on(nodes, 0, 0);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    for (int i = 0; i < 20; i++) CHECK_INT(ag_engine_chat(e, &p, NULL, NULL), 0);
    blocked_rc = sync_rc = 1;
    pthread_t a, b;
    pthread_create(&a, NULL, blocked_next, e);
    pthread_create(&b, NULL, blocked_sync, e);
    usleep(200 * 1000);
    ag_engine_stop(e);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    /* stopped: everything is refused, nothing waits */
    CHECK_INT(ag_engine_chat(e, &p, NULL, NULL), AG_ESHUTDOWN);
    ag_event *ev = NULL;
    CHECK_INT(ag_engine_next(e, &ev, -1), AG_ESHUTDOWN);
    ag_sync_out o;
    CHECK_INT(ag_engine_chat_sync(e, &p, &o), AG_ESHUTDOWN);
    ag_engine_stop(e);
    ag_engine_free(e);
    CHECK_INT(blocked_rc, AG_ESHUTDOWN);
    CHECK_INT(sync_rc, AG_ESHUTDOWN);
    ag_bench_stop_sim(sim_pid);
}

/* ---- running code on the engine's thread ---- */

/* ---- request options' strings are the engine's own copies ----
 * A request's session and tenant (like its headers and node) are read on the
 * engine's thread after the starting call returned: the caller's strings may
 * be gone by then (ASan and valgrind see it if they are not copied). */
static volatile int busy_in;
static void hold_engine(ag_client *c, void *ud) {
    (void)c, (void)ud;
    busy_in = 1;
    usleep(100000); /* the engine's thread busy: what is started meanwhile waits */
}
static void *hold_thread(void *arg) {
    ag_engine_call(arg, hold_engine, NULL);
    return NULL;
}
/* A chat started while the engine's thread is held busy, whose option
 * strings (session, headers, tenant when given) the caller overwrites and
 * frees before the engine reads them: it must complete with the values it
 * was given. *t its events. */
static void chat_while_busy(ag_engine *e, const char *tenant_s, track *t) {
    busy_in = 0;
    pthread_t th;
    pthread_create(&th, NULL, hold_thread, e);
    for (int i = 0; i < 2000 && !busy_in; i++) usleep(1000);
    CHECK(busy_in);
    char *session = strdup("session-of-a-conversation"), *hdr = strdup("X-Request-Id: 7");
    char *tenant = tenant_s ? strdup(tenant_s) : NULL;
    ag_request_options ro = {.session = session, .tenant = tenant, .headers = hdr,
                             .priority = tenant ? AG_PRIORITY_INTERACTIVE : 0};
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1, .request = &ro};
    memset(t, 0, sizeof *t);
    CHECK_INT(ag_engine_chat(e, &p, t, &t->id), 0);
    memset(session, 'x', strlen(session)); /* gone, as far as the engine may know */
    memset(hdr, 'y', strlen(hdr));
    if (tenant) memset(tenant, 'z', strlen(tenant));
    free(session);
    free(hdr);
    free(tenant);
    pthread_join(th, NULL);
    int done = 0;
    take_all(e, &done, 1, 10);
    CHECK_INT(done, 1);
    CHECK_INT(t->status, 0);
}

static void options_copied(void) {
    pid_t pid;
    ag_engine *e = pool_engine((char *[]){"--tokens", "4", NULL}, &pid);
    track t;
    chat_while_busy(e, "team-a", &t);
    CHECK(t.len > 0);
    ag_engine_free(e);
    ag_bench_stop_sim(pid);
}

/* a node of one request on a thread of its own: keeps the request's head
 * and body, answers one whole chat */
typedef struct capture {
    int lfd, port;
    char got[8192];
    size_t len;
} capture;
static void *capture_thread(void *arg) {
    capture *c = arg;
    struct pollfd pf = {c->lfd, POLLIN, 0};
    if (poll(&pf, 1, 10000) != 1) return NULL;
    int fd = accept(c->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    for (int i = 0; i < 1000 && c->len < sizeof c->got - 1; i++) {
        struct pollfd q = {fd, POLLIN, 0};
        if (poll(&q, 1, 10000) != 1) break;
        ssize_t n = recv(fd, c->got + c->len, sizeof c->got - 1 - c->len, 0);
        if (n <= 0) break;
        c->len += (size_t)n;
        c->got[c->len] = 0;
        const char *end = strstr(c->got, "\r\n\r\n"), *cl = strstr(c->got, "Content-Length: ");
        if (end && cl && c->len >= (size_t)(end + 4 - c->got) + (size_t)atoi(cl + 16)) break;
    }
    static const char body[] = "{\"model\":\"llama3.2\",\"created_at\":\"2026-01-01T00:00:00Z\",\"message\":{\"role\":"
                               "\"assistant\",\"content\":\"ok\"},\"done\":true,\"done_reason\":\"stop\"}\n";
    char resp[512];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof body - 1, body);
    ssize_t w = send(fd, resp, (size_t)n, MSG_NOSIGNAL);
    (void)w;
    close(fd);
    return NULL;
}

/* the same through an engine on one node, which sends the session and the
 * headers on the wire: the node receives the caller's values, whole, though
 * the caller's strings were freed (and overwritten) before the engine's
 * thread read them */
static void options_copied_on_the_wire(void) {
    capture cap;
    memset(&cap, 0, sizeof cap);
    cap.lfd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(cap.lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(cap.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(cap.lfd, 4) == 0);
    socklen_t sl = sizeof sa;
    getsockname(cap.lfd, (struct sockaddr *)&sa, &sl);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", ntohs(sa.sin_port));
    pthread_t node;
    pthread_create(&node, NULL, capture_thread, &cap);
    ag_client_options co = {.host = host};
    ag_engine_options eo = {.client = &co};
    ag_engine *e = ag_engine_new(&eo, NULL);
    REQUIRE(e);
    track t;
    chat_while_busy(e, NULL, &t);
    pthread_join(node, NULL);
    CHECK(strstr(cap.got, "\r\nX-Session-Id: session-of-a-conversation\r\n") != NULL);
    CHECK(strstr(cap.got, "\r\nX-Request-Id: 7\r\n") != NULL);
    CHECK(strstr(cap.got, "\"content\":\"tell me about threads\"") != NULL);
    if (!strstr(cap.got, "X-Session-Id: session-of-a-conversation")) fprintf(stderr, "the node got:\n%s\n", cap.got);
    ag_engine_free(e);
    close(cap.lfd);
}

typedef struct call_ctx {
    ag_engine *e;
    int ran, inner_call, inner_sync, inner_start;
    size_t nodes;
    ag_agent *agent;
} call_ctx;

static void on_engine(ag_client *c, void *ud) {
    call_ctx *x = ud;
    x->ran++;
    ag_node_info info[4];
    x->nodes = ag_pool_nodes(c, info, 4);
    /* the blocking functions refuse to run here; starting does not block */
    x->inner_call = ag_engine_call(x->e, on_engine, x);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    ag_sync_out o;
    x->inner_sync = ag_engine_chat_sync(x->e, &p, &o);
    x->inner_start = ag_engine_chat(x->e, &p, NULL, NULL);
    x->agent = ag_agent_coding(c, "llama3.2");
}

static void free_agent(ag_client *c, void *ud) {
    (void)c;
    ag_agent_free(ud);
}

static void call_and_agents(void) {
    pid_t pid;
    ag_engine *e = pool_engine((char *[]){"--tokens", "6", NULL}, &pid);
    call_ctx x = {.e = e};
    CHECK_INT(ag_engine_call(e, on_engine, &x), 0);
    CHECK_INT(x.ran, 1);
    CHECK_INT(x.nodes, 2);
    CHECK_INT(x.inner_call, AG_EINVAL);
    CHECK_INT(x.inner_sync, AG_EINVAL);
    CHECK_INT(x.inner_start, 0);
    REQUIRE(x.agent);
    /* the agent's task through events, then blocking */
    ag_message m = {"user", "write hello world in C", NULL, NULL, 0, NULL, NULL};
    uint64_t id;
    CHECK_INT(ag_engine_agent_run(e, x.agent, &m, 1, NULL, NULL, &id), 0);
    int task_done = 0, req_done = 0;
    size_t text = 0;
    double end = now_s() + 20;
    while ((!task_done || !req_done) && now_s() < end) {
        ag_event *ev;
        if (ag_engine_next(e, &ev, 200) != 1) continue;
        if (ev->kind == AG_EVENT_CHUNK && ev->id == id) text += ev->chunk.len;
        if (ev->kind == AG_EVENT_DONE && ev->id == id) {
            task_done++;
            CHECK_INT(ev->status, 0);
            CHECK(ev->agent_result && ev->result == NULL);
            CHECK(ev->agent_result && ev->agent_result->text_len == text && text > 0);
        } else if (ev->kind == AG_EVENT_DONE) {
            req_done++; /* the one on_engine started */
            CHECK_INT(ev->status, 0);
        }
        ag_event_free(ev);
    }
    CHECK_INT(task_done, 1);
    CHECK_INT(req_done, 1);
    ag_agent_result *ar = NULL;
    ag_run_options ro = {.options_json = "{\"num_predict\":3}", .no_stream = 1};
    CHECK_INT(ag_engine_agent_run_sync(e, x.agent, &m, 1, &ro, &ar), 0);
    /* (the simulated node's canned code answer ignores num_predict; the options
     * reaching the body are checked in test_agents) */
    CHECK(ar && ar->status == 0 && ar->text_len > 0 && ar->steps == 1);
    ag_agent_result_free(ar);
    CHECK_INT(ag_engine_call(e, free_agent, x.agent), 0);
    ag_engine_free(e);
    ag_bench_stop_sim(pid);
}

/* ---- text chunks packed for bindings (ag_engine_take_text) ---- */
static void take_text(void) {
    sim_start((char *[]){"--tokens", "50", NULL});
    ag_engine_options eo = {.no_coalesce = 1, .notify_delay = 0.0005};
    ag_client_options co = {.host = nodes};
    eo.client = &co;
    ag_engine *e = ag_engine_new(&eo, NULL);
    REQUIRE(e);
    ag_chat_params p = {.model = "llama3.2", .messages = &user_msg, .n_messages = 1};
    ag_sync_out want;
    CHECK_INT(ag_engine_chat_sync(e, &p, &want), 0);
    check_sim_text(&want, 50);
    CHECK_INT(ag_engine_chat(e, &p, (void *)(uintptr_t)0xABCDEF12345ull, NULL), 0);
    char text[8192];
    size_t tlen = 0;
    int records = 0, dones = 0;
    unsigned char buf[256];
    double end = now_s() + 20;
    while (!dones && now_s() < end) {
        size_t n = ag_engine_take_text(e, buf, sizeof buf);
        CHECK(n <= sizeof buf);
        for (size_t off = 0; off < n;) {
            uint64_t ud;
            uint32_t len;
            uint16_t kind, zero;
            memcpy(&ud, buf + off, 8);
            memcpy(&len, buf + off + 8, 4);
            memcpy(&kind, buf + off + 12, 2);
            memcpy(&zero, buf + off + 14, 2);
            CHECK(ud == 0xABCDEF12345ull);
            CHECK_INT(kind, AG_CHUNK_CONTENT);
            CHECK_INT(zero, 0);
            if (tlen + len < sizeof text) memcpy(text + tlen, buf + off + 16, len);
            tlen += len;
            records++;
            off += (16 + len + 7) & ~(size_t)7;
        }
        if (n) continue;
        ag_event *ev;
        if (ag_engine_next(e, &ev, 0) == 1) {
            /* what take_text leaves: the completion, or a chunk that came
             * between the two calls */
            if (ev->kind == AG_EVENT_DONE) {
                dones++;
            } else {
                CHECK_INT(ev->chunk.kind, AG_CHUNK_CONTENT);
                if (tlen + ev->chunk.len < sizeof text) memcpy(text + tlen, ev->chunk.text, ev->chunk.len);
                tlen += ev->chunk.len;
                records++;
            }
            ag_event_free(ev);
        } else {
            struct pollfd pfd = {ag_engine_fd(e), POLLIN, 0};
            poll(&pfd, 1, 100);
        }
    }
    CHECK_INT(dones, 1);
    CHECK_INT(records, 50);
    CHECK_INT(tlen, want.text_len);
    CHECK(tlen == want.text_len && memcmp(text, want.text, tlen) == 0);
    /* a buffer too small for the first record: nothing packed, it stays */
    CHECK_INT(ag_engine_chat(e, &p, NULL, NULL), 0);
    ag_event *ev = NULL;
    for (int i = 0; i < 200 && !ev; i++) {
        if (ag_engine_take_text(e, buf, 8) != 0) CHECK(0);
        if (ag_engine_next(e, &ev, 50) != 1) ev = NULL;
    }
    CHECK(ev && ev->kind == AG_EVENT_CHUNK);
    ag_event_free(ev);
    ag_sync_out_free(&want);
    ag_engine_free(e);
    ag_bench_stop_sim(sim_pid);
}

/* ---- the blocking health check (agents/agent.h) ---- */
#include <netinet/in.h>
#include <sys/socket.h>

static void node_health(void) {
    sim_start((char *[]){"--tokens", "4", NULL});
    ag_node_health h;
    CHECK_INT(ag_node_health_check(nodes, 5, &h), 1);
    CHECK(h.up && h.status == 0 && h.version[0] && h.error[0] == 0 && h.rtt_ms > 0);
    ag_bench_stop_sim(sim_pid);
    CHECK_INT(ag_node_health_check("127.0.0.1:1", 2, &h), 0);
    CHECK_INT(h.status, AG_ECONNREFUSED);
    CHECK(!h.up && h.error[0] && h.version[0] == 0);
    /* a port that accepts and never answers: down within the timeout */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 8) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", ntohs(a.sin_port));
    double t0 = now_s();
    CHECK_INT(ag_node_health_check(host, 0.3, &h), 0);
    CHECK(now_s() - t0 < 3); /* bounded: 0.3 s asked, 3 allowed for a busy machine */
    CHECK(h.status == AG_EIDLE || h.status == AG_EDEADLINE);
    close(fd);
    CHECK_INT(ag_node_health_check("bad:port:x", 1, &h), 0);
    CHECK_INT(h.status, AG_EHOST);
}

T_MAIN(T(events_from_threads), T(options_copied), T(options_copied_on_the_wire), T(sync_from_threads), T(cancel_from_thread), T(backpressure),
       T(coalesce), T(errors), T(free_with_pending), T(call_and_agents), T(node_health), T(take_text))
