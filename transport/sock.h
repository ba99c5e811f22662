/* transport/sock.h - private: the options every TCP socket of ours gets,
 * client side and server side. */
#ifndef AG_TRANSPORT_SOCK_H
#define AG_TRANSPORT_SOCK_H
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/util.h>

/* No Nagle delay (tokens are small writes), and TCP keep-alive (30 s idle, 3
 * probes 10 s apart): a peer whose host vanished is found even while nothing
 * is written. */
static inline void ag__sock_tune(evutil_socket_t fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
#ifdef TCP_KEEPIDLE
    int idle = 30, intvl = 10, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#endif
}

#endif
