/* The limit: a raw reader that sends the same requests (prebuilt bytes) and
 * only counts the "}\n" that end NDJSON objects. No HTTP parsing, no JSON:
 * the floor for CPU per token. In latency mode it keeps its connection alive
 * (the end of a chunked answer is "0\r\n\r\n"), like the clients it is
 * compared with; otherwise one connection a request ("Connection: close").
 *   raw HOST MODE N CONCURRENCY     MODE: chat | embed | latency */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct sockaddr_in sa;
static char req[512];
static size_t req_len;
static int n, conc, started, done, embed;
static long count;
static double ttft[100000];
static int nttft;
static struct event_base *base;

typedef struct conn {
    double t0, first;
    int prev_brace;
    char tail[8]; /* the last bytes seen: the end of a chunked answer */
} conn;
static int keepalive;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void start(void);
static void finished(conn *c) {
    if (!embed && c->first >= 0 && nttft < 100000) ttft[nttft++] = c->first - c->t0;
    done++;
}
static void readcb(struct bufferevent *bev, void *arg) {
    conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[8];
    int k;
    while ((k = evbuffer_peek(in, -1, NULL, v, 8)) > 0) { /* every piece, 8 at a time */
        size_t seen = 0;
        for (int i = 0; i < k && i < 8; i++) {
            const char *p = v[i].iov_base;
            for (size_t j = 0; j < v[i].iov_len; j++) {
                if (p[j] == '\n' && c->prev_brace) {
                    if (c->first < 0) c->first = now_ms();
                    count++;
                }
                c->prev_brace = p[j] == '}';
            }
            if (keepalive) { /* the last 7 bytes seen, across pieces */
                size_t l = v[i].iov_len;
                if (l >= 7) {
                    memcpy(c->tail, p + l - 7, 7);
                } else {
                    memmove(c->tail, c->tail + l, 7 - l);
                    memcpy(c->tail + 7 - l, p, l);
                }
            }
            seen += v[i].iov_len;
        }
        evbuffer_drain(in, seen);
    }
    if (keepalive && !memcmp(c->tail + 2, "0\r\n\r\n", 5)) { /* the answer is whole: next request */
        finished(c);
        memset(c->tail, 0, sizeof c->tail);
        if (started < n) {
            started++;
            c->t0 = now_ms();
            c->first = -1;
            bufferevent_write(bev, req, req_len);
        } else {
            event_base_loopbreak(base);
        }
    }
}
static void eventcb(struct bufferevent *bev, short what, void *arg) {
    conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    bufferevent_free(bev);
    if (!keepalive) finished(c);
    free(c);
    if (keepalive) return;
    if (started < n) start();
    else if (done == n) event_base_loopbreak(base);
}
static void start(void) {
    started++;
    conn *c = calloc(1, sizeof *c);
    c->t0 = now_ms();
    c->first = -1;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, readcb, NULL, eventcb, c);
    bufferevent_enable(bev, EV_READ);
    bufferevent_socket_connect(bev, (struct sockaddr *)&sa, sizeof sa);
    bufferevent_write(bev, req, req_len);
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
    *colon = 0;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host, &sa.sin_addr);
    embed = !strcmp(argv[2], "embed");
    keepalive = !strcmp(argv[2], "latency");
    n = atoi(argv[3]);
    conc = atoi(argv[4]);
    const char *body = embed ? "{\"model\":\"nomic-embed-text\",\"input\":\"embedding text 1\"}"
                             : "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"peer benchmark\"}]}";
    req_len = (size_t)snprintf(req, sizeof req,
                               "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s"
                               "Content-Length: %zu\r\n\r\n%s",
                               embed ? "/api/embed" : "/api/chat", argv[1], keepalive ? "" : "Connection: close\r\n",
                               strlen(body), body);
    base = event_base_new();
    for (int i = 0; i < conc && started < n; i++) start();
    event_base_dispatch(base);
    qsort(ttft, (size_t)nttft, sizeof *ttft, cmp);
    printf("{\"count\": %ld, \"ttft_p50_ms\": %.4f}\n", count, nttft ? ttft[nttft / 2] : -1);
    event_base_free(base);
    return 0;
}
