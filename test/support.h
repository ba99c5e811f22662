/* test/support.h - a loop, a simulated node and a client, for integration
 * tests; every wait is bounded in time. */
#ifndef AG_TEST_SUPPORT_H
#define AG_TEST_SUPPORT_H
#include <agents.h>
#include <event2/event.h>
#include "sim.h"
#include "test.h"

/* a non-blocking TCP connection to 127.0.0.1:port, made before this
 * returns; rcvbuf > 0 sets a small receive buffer (a client that reads
 * slowly fills it at once) */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
static inline int t_tcp_connect(int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

typedef struct env {
    struct event_base *base;
    ag_sim *sim;
    ag_client *c;
    char host[64];
} env;

static inline void env_open(env *e, const ag_sim_config *cfg, const ag_client_options *co) {
    memset(e, 0, sizeof *e);
    e->base = ag_sim_base_new();
    REQUIRE(e->base);
    e->sim = ag_sim_new(e->base, "127.0.0.1", 0, cfg);
    REQUIRE(e->sim);
    snprintf(e->host, sizeof e->host, "127.0.0.1:%d", ag_sim_port(e->sim));
    ag_client_options o;
    if (co) o = *co;
    else memset(&o, 0, sizeof o);
    o.host = e->host;
    int err = 0;
    e->c = ag_client_new(e->base, &o, &err);
    REQUIRE(e->c);
}

static inline void env_close(env *e) {
    ag_client_free(e->c);
    /* let the node see the closes */
    event_base_loop(e->base, EVLOOP_NONBLOCK);
    ag_sim_free(e->sim);
    event_base_free(e->base);
}

static void t_timeout_cb(evutil_socket_t fd, short w, void *arg) {
    (void)fd;
    (void)w;
    *(int *)arg = 1;
}

/* Runs the loop until *flag >= want or seconds pass. Returns 1 if reached. */
static inline int run_until(struct event_base *base, const int *flag, int want, double seconds) {
    int expired = 0;
    struct timeval tv = {(long)seconds, (long)((seconds - (long)seconds) * 1e6)};
    struct event *t = evtimer_new(base, t_timeout_cb, &expired);
    evtimer_add(t, &tv);
    while (*flag < want && !expired) event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    if (*flag < want && want != (1 << 30)) fprintf(stderr, "run_until: timed out (%d of %d)\n", *flag, want);
    return *flag >= want;
}

/* runs the loop for a while regardless */
static inline void run_for(struct event_base *base, double seconds) {
    int never = 0;
    run_until(base, &never, 1 << 30, seconds);
}
#endif
