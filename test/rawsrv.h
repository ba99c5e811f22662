/* test/rawsrv.h - a scripted HTTP server on loopback: answers the Nth request
 * with the Nth canned response (bytes exactly as given). A NULL response
 * closes the connection without answering. */
#ifndef AG_TEST_RAWSRV_H
#define AG_TEST_RAWSRV_H
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

typedef struct rawsrv {
    struct evconnlistener *l;
    int port;
    const char *resp[16];
    size_t resp_len[16]; /* 0 = strlen */
    int nresp;
    int requests, conns;
    int close_after; /* close each connection after answering */
    int rst;         /* close with RST instead of FIN when dropping */
    char last_head[1024]; /* the last request's head */
} rawsrv;

typedef struct rawconn {
    rawsrv *s;
    int served;
} rawconn;

static void raw_drop(struct bufferevent *bev, rawconn *rc, int rst) {
    if (rst) {
        struct linger lg = {1, 0};
        setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    bufferevent_free(bev);
    free(rc);
}

static void raw_written(struct bufferevent *bev, void *arg) {
    rawconn *rc = arg;
    if (rc->s->close_after) raw_drop(bev, rc, 0);
}

static void raw_read(struct bufferevent *bev, void *arg) {
    rawconn *rc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (e.pos < 0) return;
        size_t hl = (size_t)e.pos + 4;
        char *head = malloc(hl + 1);
        evbuffer_copyout(in, head, hl);
        head[hl] = 0;
        snprintf(rc->s->last_head, sizeof rc->s->last_head, "%s", head);
        size_t cl = 0;
        char *c = strstr(head, "Content-Length: ");
        if (c) cl = strtoul(c + 16, NULL, 10);
        free(head);
        if (evbuffer_get_length(in) < hl + cl) return;
        evbuffer_drain(in, hl + cl);
        rawsrv *s = rc->s;
        int i = s->requests < s->nresp ? s->requests : s->nresp - 1;
        s->requests++;
        rc->served++;
        const char *r = s->resp[i];
        if (!r) {
            raw_drop(bev, rc, s->rst);
            return;
        }
        bufferevent_write(bev, r, s->resp_len[i] ? s->resp_len[i] : strlen(r));
        if (s->close_after) return; /* raw_written closes */
    }
}

static void raw_event(struct bufferevent *bev, short what, void *arg) {
    (void)what;
    raw_drop(bev, arg, 0);
}

static void raw_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl, void *arg) {
    (void)sa;
    (void)sl;
    rawsrv *s = arg;
    s->conns++;
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    rawconn *rc = calloc(1, sizeof *rc);
    rc->s = s;
    bufferevent_setcb(bev, raw_read, raw_written, raw_event, rc);
    bufferevent_enable(bev, EV_READ);
}

static inline void rawsrv_start(rawsrv *s, struct event_base *base) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->l = evconnlistener_new_bind(base, raw_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                   (struct sockaddr *)&sa, sizeof sa);
    REQUIRE(s->l);
    socklen_t len = sizeof sa;
    getsockname(evconnlistener_get_fd(s->l), (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
}
#endif
