/* Fuzz target: the HTTP response path end to end. A loopback listener
 * answers one streamed chat request with the input bytes and closes; the
 * client must complete the request exactly once, whatever the bytes. Byte 0
 * picks the request kind (chat, embed, tags, HEAD). */
#include <agents.h>
#include "core/internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static struct event_base *base;
static ag_client *client;
static const unsigned char *answer;
static size_t answer_len;
static int dones;

static void srv_read(struct bufferevent *bev, void *arg) {
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0) return;
    evbuffer_drain(in, evbuffer_get_length(in));
    if (!answer_len) { /* nothing to say: close at once */
        bufferevent_free(bev);
        return;
    }
    bufferevent_write(bev, answer, answer_len); /* srv_write closes once it is out */
    answer_len = 0;
}
static void srv_write(struct bufferevent *bev, void *arg) {
    (void)arg;
    bufferevent_free(bev);
}
static void srv_event(struct bufferevent *bev, short what, void *arg) {
    (void)what;
    (void)arg;
    bufferevent_free(bev);
}
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl, void *arg) {
    (void)l;
    (void)sa;
    (void)sl;
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, srv_read, srv_write, srv_event, NULL);
    bufferevent_enable(bev, EV_READ);
}

static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    (void)ud;
    if (res->status && !res->error) __builtin_trap();
    dones++;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!base) {
        base = event_base_new();
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct evconnlistener *l = evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                                           64, (struct sockaddr *)&sa, sizeof sa);
        if (!l) return 0;
        socklen_t len = sizeof sa;
        getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sa, &len);
        char host[64];
        snprintf(host, sizeof host, "127.0.0.1:%d", ntohs(sa.sin_port));
        ag_client_options co = {.host = host, .idle_timeout = 2, .max_token = 1 << 16, .max_body = 1 << 20};
        client = ag_client_new(base, &co, NULL);
    }
    if (size < 1 || !client) return 0;
    answer = data + 1;
    answer_len = size - 1;
    dones = 0;
    ag_callbacks cb = {NULL, on_done, NULL};
    int rc;
    switch (data[0] % 4) {
    case 0: {
        ag_message m = {"user", "hi", NULL, NULL, 0, NULL, NULL};
        ag_chat_params p = {.model = "m", .messages = &m, .n_messages = 1};
        rc = ag_chat(client, &p, &cb, NULL);
        break;
    }
    case 1: {
        const char *t[] = {"x"};
        ag_embed_params p = {.model = "m", .inputs = t, .n_inputs = 1, .truncate = -1};
        rc = ag_embed(client, &p, &cb, NULL);
        break;
    }
    case 2: rc = ag_admin(client, AG_OP_TAGS, NULL, &cb, NULL); break;
    default: rc = ag_admin(client, AG_OP_PING, NULL, &cb, NULL); break;
    }
    if (rc) return 0;
    for (int i = 0; i < 100000 && !dones; i++) event_base_loop(base, EVLOOP_ONCE);
    if (dones != 1) __builtin_trap(); /* exactly one completion */
    return 0;
}
