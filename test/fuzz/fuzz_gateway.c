/* Fuzz target: the gateway's request side. A client connection writes the
 * input bytes to a gateway in front of one simulated node and reads until
 * the gateway closes it (short request and idle deadlines make sure it
 * does). Whatever the bytes, nothing crashes, and afterwards no client
 * connection and no upstream request is left behind, and no key counts a
 * request in flight or waiting. Inputs that carry "Bearer " go to a second
 * gateway with client keys (limits, models, waiting, priorities, an admin
 * key restricted to one model) and --pull-all. Both write an access log
 * line and spans for every request. */
#include <agents.h>
#include "core/internal.h"
#include "sim.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct event_base *base;
static ag_client *pool;
static ag_client *opool;
static ag_gateway *gw, *gwk, *gwo;
static int closed;

static void cli_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}
static void cli_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) closed = 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!base) {
        base = event_base_new();
        ag_sim_config sc = {.tokens = 3, .quiet = 1};
        ag_sim *sim = ag_sim_new(base, "127.0.0.1", 0, &sc);
        if (!sim) return 0;
        char nodes[64];
        snprintf(nodes, sizeof nodes, "127.0.0.1:%d", ag_sim_port(sim));
        ag_pool_options po = {.nodes = nodes, .probe_interval = -1};
        pool = ag_pool_new(base, &po, NULL);
        /* the access log and the spans written for every input (the log to
         * nowhere, the spans to a collector that is not there) */
        ag_gateway_options go = {.listen = "127.0.0.1:0", .request_timeout = 0.02, .idle_timeout = 0.02,
                                 .max_body = 1 << 16, .max_head = 4096, .max_headers = 16,
                                 .access_log = "/dev/null", .otlp_endpoint = "http://127.0.0.1:1"};
        gw = pool ? ag_gateway_new(base, pool, &go, NULL) : NULL;
        char kp[64];
        snprintf(kp, sizeof kp, "/tmp/ag_fuzz_keys_%d", (int)getpid());
        FILE *f = fopen(kp, "w");
        if (f) {
            /* (b waits only for its own other request: a wait for a minute's
             * window would outlast the fuzzer's timeout, by design) */
            fputs("{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"rpm\":2}\n"
                  "{\"name\":\"b\",\"secret\":\"secret-bbbb\",\"models\":[\"qwen3:*\"],\"concurrent\":1,"
                  "\"over_limit\":\"wait\",\"priority\":\"interactive\"}\n"
                  "{\"name\":\"c\",\"secret\":\"secret-cccc\",\"priority\":\"batch\",\"tpm\":50}\n"
                  "{\"name\":\"d\",\"secret\":\"secret-dddd\",\"admin\":true,\"models\":[\"llama3.2\"],\"rpm\":5}\n", f);
            fclose(f);
            go.keys_file = kp;
            go.token = "admin-secret";
            go.pull_all = 1; /* (a pull there goes to every node, its progress merged) */
            gwk = pool ? ag_gateway_new(base, pool, &go, NULL) : NULL;
            unlink(kp);
        }
    }
    if (!gwo) { /* a third: its one node speaks the OpenAI-compatible API, so that Ollama's
                 * routes and Anthropic's Messages are translated (inputs with "x-api-key") */
        ag_sim_config oc = {.tokens = 3, .quiet = 1, .api = 1};
        ag_sim *osim = ag_sim_new(base, "127.0.0.1", 0, &oc);
        char onodes[80];
        snprintf(onodes, sizeof onodes, "openai+http://127.0.0.1:%d", osim ? ag_sim_port(osim) : 1);
        ag_pool_options opo = {.nodes = onodes, .probe_interval = -1};
        opool = osim ? ag_pool_new(base, &opo, NULL) : NULL;
        ag_gateway_options oo = {.listen = "127.0.0.1:0", .request_timeout = 0.02, .idle_timeout = 0.02,
                                 .max_body = 1 << 16, .max_head = 4096, .max_headers = 16};
        gwo = opool ? ag_gateway_new(base, opool, &oo, NULL) : NULL; /* (its node's dialect is in its address) */
    }
    if (!gw || !gwk || !gwo) return 0;
    ag_gateway *g = memmem(data, size, "x-api-key", 9) ? gwo : memmem(data, size, "Bearer ", 7) ? gwk : gw;
    struct bufferevent *c = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ag_gateway_port(g)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bufferevent_setcb(c, cli_read, NULL, cli_event, NULL);
    if (bufferevent_socket_connect(c, (struct sockaddr *)&sa, sizeof sa) != 0) {
        bufferevent_free(c);
        return 0;
    }
    bufferevent_enable(c, EV_READ | EV_WRITE);
    bufferevent_write(c, data, size);
    closed = 0;
    for (int i = 0; i < 200000 && !closed; i++) event_base_loop(base, EVLOOP_ONCE);
    bufferevent_free(c);
    ag_gateway_stats st;
    for (int i = 0; i < 100000; i++) {
        ag_gateway_get_stats(g, &st);
        if (st.clients == 0 && st.in_flight == 0) break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    ag_gateway_get_stats(g, &st);
    if (!closed || st.clients || st.in_flight) __builtin_trap(); /* closed, and nothing left behind */
    ag_key_info ki[4];
    size_t nk = ag_gateway_keys(gwk, ki, 4);
    for (size_t i = 0; i < nk && i < 4; i++)
        if (ki[i].in_flight || ki[i].waiting) __builtin_trap(); /* every key's slots given back */
    return 0;
}
