/* The kernel's floor for reading streamed answers: epoll and recv, nothing
 * else - no libevent, no HTTP parser, no JSON. Sends prebuilt requests on
 * CONCURRENCY kept-alive connections, counts the "}\n" that end NDJSON
 * objects (the final ones too, as the raw reader does), and sends the next
 * request once an answer's chunked body ends ("0\r\n\r\n").
 *   floor HOST MODE N CONCURRENCY     MODE: chat (the only one)
 * Prints {"count": objects, "ttft_p50_ms": median}. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd, prev_brace;
    char tail[8];
    double t0, first;
} conn;

static char req[512];
static size_t req_len;
static double ttft[100000];
static int nttft;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    char host[64];
    snprintf(host, sizeof host, "%s", argv[1]);
    char *colon = strrchr(host, ':');
    if (!colon) return 2;
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int n = atoi(argv[3]), conc = atoi(argv[4]);
    const char *body = "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"peer benchmark\"}]}";
    req_len = (size_t)snprintf(req, sizeof req,
                               "POST /api/chat HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n%s",
                               argv[1], strlen(body), body);
    int ep = epoll_create1(0);
    conn *cs = calloc((size_t)conc, sizeof *cs);
    int started = 0, done = 0;
    long count = 0;
    for (int i = 0; i < conc && started < n; i++, started++) {
        conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) return 1;
        c->t0 = now_ms();
        c->first = -1;
        if (write(c->fd, req, req_len) != (ssize_t)req_len) return 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    char buf[65536];
    while (done < n) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 5000);
        if (k <= 0) break;
        for (int e = 0; e < k; e++) {
            conn *c = evs[e].data.ptr;
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                return 1;
            }
            for (ssize_t j = 0; j < r; j++) {
                if (buf[j] == '\n' && c->prev_brace) {
                    if (c->first < 0) c->first = now_ms();
                    count++;
                }
                c->prev_brace = buf[j] == '}';
            }
            if (r >= 7) memcpy(c->tail, buf + r - 7, 7);
            else {
                memmove(c->tail, c->tail + r, (size_t)(7 - r));
                memcpy(c->tail + 7 - r, buf, (size_t)r);
            }
            if (!memcmp(c->tail + 2, "0\r\n\r\n", 5)) { /* the answer is whole */
                done++;
                if (c->first >= 0 && nttft < 100000) ttft[nttft++] = c->first - c->t0;
                memset(c->tail, 0, sizeof c->tail);
                if (started < n) {
                    started++;
                    c->t0 = now_ms();
                    c->first = -1;
                    if (write(c->fd, req, req_len) != (ssize_t)req_len) return 1;
                }
            }
        }
    }
    qsort(ttft, (size_t)nttft, sizeof *ttft, cmp);
    printf("{\"count\": %ld, \"ttft_p50_ms\": %.4f}\n", count, nttft ? ttft[nttft / 2] : -1.0);
    return done == n ? 0 : 1;
}
