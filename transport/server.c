/* transport/server.c - the HTTP/1.1 server engine (see server.h). */
#include "transport/server.h"
#include "transport/sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <llhttp.h>

#include "agents/error.h"
#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/mem.h"

enum sphase { S_IDLE, S_READING, S_SERVING, S_CLOSING };

struct ag__srv {
    struct event_base *base;
    const ag__srv_ops *ops;
    void *app;
    ag__srv_limits lim;
    const ag_alloc_funcs *a;
    struct evconnlistener *lis;
    int port;
    ag__sconn *conns;
    ag__srv_stats st;
    struct event accept_retry; /* accept paused after EMFILE: resumes from here */
    /* connections per client address (max_clients_per_ip): open addressing,
     * linear probing, deletion by backward shift; n = 0 is an empty slot */
    struct ipcount {
        unsigned char a[16]; /* IPv6, or IPv4 mapped into it */
        uint32_t n;
    } *ips;
    size_t ipcap; /* a power of two, at least twice max_clients */
};

struct ag__sconn {
    ag__srv *s;
    void *st; /* the application's */
    ag__sconn *next, **prev;
    struct bufferevent *bev;
    llhttp_t parser;
    enum sphase phase;
    struct event timer; /* idle or request deadline */
    struct event kick;  /* deferred: parse pipelined input, or free */
    /* the request being read */
    ag__buf url, body, field, value;
    size_t head_bytes;
    unsigned nheaders;
    int err_status;
    const char *err_msg;
    int expect_continue, has_host;
    /* the response */
    int keep_alive, http10;
    int head_sent, head_status;
    char head[1536];
    size_t head_len;       /* a head not written yet */
    char extra[1024];      /* header lines the application adds to this response */
    size_t extra_len;
    struct evbuffer *pend; /* written at the end of this batch of callbacks */
    struct event flush;
    int flush_pending;
    int out_blocked; /* not reading requests until the output drains */
    int handshaking; /* https: the TLS handshake is not done yet (its own timeout) */
    unsigned char ip[16]; /* the client's address, as counted in s->ips */
    uint64_t resp_bytes;  /* this response's body bytes so far */
};

/* TLS handshakes that take longer are dropped: a client that opens
 * connections and never finishes them holds no place for long */
#define HANDSHAKE_TIMEOUT_S 10.0
/* What the kernel may hold unsent for a client (TCP_NOTSENT_LOWAT): past it
 * output waits in our buffer, where backpressure and the send timeout see
 * it. Without it, a client that stops reading gets megabytes into the
 * kernel's send buffer before anything notices (its node slot held all the
 * while). In-flight bytes do not count: throughput is not capped. */
#define NOTSENT_LOWAT (64 << 10)

/* ---- connections per client address ---- */
static void ip_key(const struct sockaddr *sa, unsigned char out[16]) {
    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa && sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff; /* ::ffff:a.b.c.d, as IPv4 is seen on an IPv6 socket */
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

static size_t ip_home(const ag__srv *s, const unsigned char a[16]) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++) h = (h ^ a[i]) * 1099511628211ull;
    h ^= h >> 29;
    return (size_t)h & (s->ipcap - 1);
}

/* the count of address a, or NULL when the table is off: a new address gets
 * an empty slot (n = 0, as empty as before until the connection is counted) */
static struct ipcount *ip_count(ag__srv *s, const unsigned char a[16]) {
    if (!s->ips) return NULL;
    size_t i = ip_home(s, a);
    while (s->ips[i].n && memcmp(s->ips[i].a, a, 16) != 0) i = (i + 1) & (s->ipcap - 1);
    if (!s->ips[i].n) memcpy(s->ips[i].a, a, 16);
    return &s->ips[i];
}

static void ip_release(ag__srv *s, const unsigned char a[16]) {
    if (!s->ips) return;
    size_t i = ip_home(s, a);
    while (s->ips[i].n && memcmp(s->ips[i].a, a, 16) != 0) i = (i + 1) & (s->ipcap - 1);
    if (!s->ips[i].n || --s->ips[i].n) return;
    /* the slot is empty now: move later entries of the run back into it */
    size_t hole = i;
    for (size_t j = (i + 1) & (s->ipcap - 1); s->ips[j].n; j = (j + 1) & (s->ipcap - 1)) {
        size_t home = ip_home(s, s->ips[j].a);
        /* j may move to hole when its home is not in (hole, j] (cyclically) */
        if ((j > hole && (home <= hole || home > j)) || (j < hole && home <= hole && home > j)) {
            s->ips[hole] = s->ips[j];
            s->ips[j].n = 0;
            hole = j;
        }
    }
}

static const char *reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static void count_status(ag__srv *s, int status) {
    if (status < 300) s->st.status_2xx++;
    else if (status < 500) s->st.status_4xx++;
    else s->st.status_5xx++;
}

static void sc_close(ag__sconn *c);

/* ---- output ----
 * Output is gathered in c->pend and flushed once the current batch of
 * callbacks is over (one writev for every token that arrived in one read
 * from the node), straight to the socket when nothing waits before it: a
 * bufferevent would first wait a loop turn for writability (three more
 * system calls and a turn of latency). What the socket does not take goes
 * through the bufferevent as usual. */
static void sc_flush(ag__sconn *c) {
    c->flush_pending = 0;
    if (evbuffer_get_length(c->pend) == 0) return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (!c->s->lim.tls && evbuffer_get_length(out) == 0) evbuffer_write(c->pend, bufferevent_getfd(c->bev));
    if (evbuffer_get_length(c->pend)) evbuffer_add_buffer(out, c->pend);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__sconn *c = arg;
    if (c->phase != S_CLOSING) sc_flush(c);
}

static void sc_write(ag__sconn *c, struct iovec *iov, int n) {
    for (int i = 0; i < n; i++) evbuffer_add(c->pend, iov[i].iov_base, iov[i].iov_len);
    if (!c->flush_pending) {
        c->flush_pending = 1;
        event_active(&c->flush, EV_TIMEOUT, 1);
    }
}

size_t ag__sconn_unsent(const ag__sconn *c) {
    return evbuffer_get_length(bufferevent_get_output(c->bev)) + evbuffer_get_length(c->pend);
}

/* "Date: ..." as HTTP writes it (RFC 9110), remade once a second */
static const char *date_line(void) {
    static __thread char line[64];
    static __thread time_t made;
    time_t now = time(NULL);
    if (now != made) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        made = now;
    }
    return line;
}

void ag__sconn_add_headers(ag__sconn *c, const char *lines) {
    size_t n = strlen(lines);
    if (c->extra_len + n >= sizeof c->extra) return; /* (the application's lines are short and few) */
    memcpy(c->extra + c->extra_len, lines, n);
    c->extra_len += n;
    c->extra[c->extra_len] = 0;
}

void ag__sconn_send_whole(ag__sconn *c, int status, const char *ctype, const char *body, size_t len) {
    char head[1700], content[320] = ""; /* 204 and 304: no body, no length */
    if (status == 204 || status == 304) len = 0;
    else snprintf(content, sizeof content, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, len);
    int hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s%s%.*s%s\r\n", status, reason(status), content, date_line(),
                      (int)c->extra_len, c->extra, c->keep_alive ? "" : "Connection: close\r\n");
    if (hl < 0 || (size_t)hl >= sizeof head) hl = 0;
    struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, len}};
    int head_only = llhttp_get_method(&c->parser) == HTTP_HEAD || len == 0;
    sc_write(c, iov, head_only ? 1 : 2);
    c->head_sent = 1;
    c->head_status = status;
    if (!head_only) c->s->st.bytes_out += len;
    if (!head_only) c->resp_bytes += len;
    count_status(c->s, status);
}

uint64_t ag__sconn_resp_bytes(const ag__sconn *c) { return c->resp_bytes; }

void ag__sconn_peer(const ag__sconn *c, char *out, size_t n) {
    static const unsigned char v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(c->ip, v4, 12)) evutil_inet_ntop(AF_INET, c->ip + 12, out, n);
    else evutil_inet_ntop(AF_INET6, c->ip, out, n);
}

void ag__sconn_send_error(ag__sconn *c, int status, const char *msg) {
    ag__buf q = {0};
    if (ag__buf_str(c->s->a, &q, "{\"error\":") || ag__buf_json(c->s->a, &q, msg, strlen(msg)) ||
        ag__buf_str(c->s->a, &q, "}")) {
        ag__buf_free(c->s->a, &q);
        static const char oom[] = "{\"error\":\"out of memory\"}";
        ag__sconn_send_whole(c, 500, "application/json; charset=utf-8", oom, sizeof oom - 1);
        return;
    }
    ag__sconn_send_whole(c, status, "application/json; charset=utf-8", q.p, q.len);
    ag__buf_free(c->s->a, &q);
}

void ag__sconn_chunk(ag__sconn *c, const char *p, size_t n) {
    if (!n) return;
    char pre[64];
    struct iovec iov[4];
    int k = 0;
    if (c->head_len) { /* the head goes out with the first chunk */
        iov[k].iov_base = c->head;
        iov[k++].iov_len = c->head_len;
    }
    if (!c->http10) {
        iov[k].iov_base = pre;
        iov[k++].iov_len = (size_t)snprintf(pre, sizeof pre, "%zx\r\n", n);
    }
    iov[k].iov_base = (void *)p;
    iov[k++].iov_len = n;
    if (!c->http10) {
        iov[k].iov_base = (void *)"\r\n";
        iov[k++].iov_len = 2;
    }
    sc_write(c, iov, k);
    c->head_len = 0;
    c->s->st.bytes_out += n;
    c->resp_bytes += n;
}

void ag__sconn_head_chunked(ag__sconn *c, int status, const char *ctype) {
    c->head_status = status;
    if (c->http10) c->keep_alive = 0; /* the body ends when the connection does */
    int n = snprintf(c->head, sizeof c->head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%.*s%s\r\n", status,
                     reason(status), ctype, c->http10 ? "" : "Transfer-Encoding: chunked\r\n", date_line(),
                     (int)c->extra_len, c->extra, c->keep_alive ? "" : "Connection: close\r\n");
    c->head_len = n > 0 && (size_t)n < sizeof c->head ? (size_t)n : 0;
    c->head_sent = 1;
    count_status(c->s, status);
}

void ag__sconn_end_chunked(ag__sconn *c) {
    struct iovec iov[2];
    int k = 0;
    if (c->head_len) {
        iov[k].iov_base = c->head;
        iov[k++].iov_len = c->head_len;
        c->head_len = 0;
    }
    if (!c->http10) {
        iov[k].iov_base = (void *)"0\r\n\r\n";
        iov[k++].iov_len = 5;
    }
    if (k) sc_write(c, iov, k);
}

int ag__sconn_head_sent(const ag__sconn *c) { return c->head_sent; }
int ag__sconn_head_status(const ag__sconn *c) { return c->head_status; }
int ag__sconn_closing(const ag__sconn *c) { return c->phase == S_CLOSING; }
void ag__sconn_no_keep_alive(ag__sconn *c) { c->keep_alive = 0; }
int ag__sconn_method(const ag__sconn *c) { return llhttp_get_method((llhttp_t *)&c->parser); }
const char *ag__sconn_method_name(const ag__sconn *c) {
    return llhttp_method_name(llhttp_get_method((llhttp_t *)&c->parser));
}
const char *ag__sconn_url(const ag__sconn *c, size_t *len) {
    *len = c->url.len;
    return c->url.p ? c->url.p : "/";
}
const char *ag__sconn_body(const ag__sconn *c, size_t *len) {
    *len = c->body.len;
    return c->body.len ? c->body.p : NULL;
}

/* A request's body, handed on or answered: its bytes leave the total, and a
 * large buffer is given back. */
void ag__sconn_release_body(ag__sconn *c) {
    ag__srv *s = c->s;
    s->st.buffered -= c->body.len <= s->st.buffered ? c->body.len : s->st.buffered;
    c->body.len = 0;
    if (c->body.cap > 65536) ag__buf_free(s->a, &c->body);
}

/* ---- llhttp: the request ---- */
static int limit(ag__sconn *c, int status, const char *msg) {
    c->err_status = status;
    c->err_msg = msg;
    return -1;
}

static int p_begin(llhttp_t *p) {
    ag__sconn *c = p->data;
    c->phase = S_READING;
    struct timeval tv;
    ag__timeval(&tv, c->s->lim.request_timeout);
    evtimer_add(&c->timer, &tv);
    return 0;
}
static int head_add(ag__sconn *c, ag__buf *b, const char *at, size_t len, size_t cap) {
    c->head_bytes += len;
    if (c->head_bytes > c->s->lim.max_head) return limit(c, 431, "request head over the size limit");
    if (b->len + len > cap) return limit(c, 431, "request head over the size limit");
    if (ag__buf_add(c->s->a, b, at, len)) return limit(c, 500, "out of memory");
    return 0;
}
static int p_url(llhttp_t *p, const char *at, size_t len) {
    ag__sconn *c = p->data;
    if (c->url.len + len > 4096) return limit(c, 414, "request URL too long");
    return head_add(c, &c->url, at, len, 4096);
}
static int p_field(llhttp_t *p, const char *at, size_t len) {
    return head_add(p->data, &((ag__sconn *)p->data)->field, at, len, 256);
}
static int p_value(llhttp_t *p, const char *at, size_t len) {
    return head_add(p->data, &((ag__sconn *)p->data)->value, at, len, 8192);
}
static int p_value_done(llhttp_t *p) {
    ag__sconn *c = p->data;
    if (++c->nheaders > c->s->lim.max_headers) return limit(c, 431, "too many request headers");
    size_t fl = c->field.len, vl = c->value.len;
    const char *f = c->field.p ? c->field.p : "", *v = c->value.p ? c->value.p : "";
    if (fl == 4 && strncasecmp(f, "host", 4) == 0) {
        c->has_host = 1;
    } else if (fl == 6 && strncasecmp(f, "expect", 6) == 0 && vl == 12 && strncasecmp(v, "100-continue", 12) == 0) {
        c->expect_continue = 1;
    } else if (c->s->ops->on_header) {
        const char *msg = NULL;
        int st = c->s->ops->on_header(c->st, f, fl, v, vl, &msg);
        if (st) return limit(c, st, msg ? msg : "bad request header");
    }
    c->field.len = c->value.len = 0;
    return 0;
}
/* The head is whole: what can be refused is refused now, before any body
 * byte is read (an unauthenticated client cannot make the server buffer). */
static int p_headers_done(llhttp_t *p) {
    ag__sconn *c = p->data;
    if (p->http_major == 1 && p->http_minor >= 1 && !c->has_host)
        return limit(c, 400, "missing Host header (required by HTTP/1.1)");
    if (c->s->ops->on_head) {
        const char *msg = NULL;
        int st = c->s->ops->on_head(c->st, c, &msg);
        if (st) return limit(c, st, msg ? msg : "request refused");
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->s->lim.max_body)
        return limit(c, 413, "request body over the size limit");
    if (c->expect_continue) evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}
static int p_body(llhttp_t *p, const char *at, size_t len) {
    ag__sconn *c = p->data;
    ag__srv *s = c->s;
    if (c->body.len + len > s->lim.max_body) return limit(c, 413, "request body over the size limit");
    if (s->st.buffered + len > s->lim.max_buffered)
        return limit(c, 503, "the gateway holds too many request bytes: try again");
    if (ag__buf_add(s->a, &c->body, at, len)) return limit(c, 500, "out of memory");
    s->st.buffered += len;
    return 0;
}
static int p_done(llhttp_t *p) {
    (void)p;
    return HPE_PAUSED;
}

/* one table for every connection, constant */
static const llhttp_settings_t settings = {
    .on_message_begin = p_begin,
    .on_url = p_url,
    .on_header_field = p_field,
    .on_header_value = p_value,
    .on_header_value_complete = p_value_done,
    .on_headers_complete = p_headers_done,
    .on_body = p_body,
    .on_message_complete = p_done,
};

/* ---- the connection ---- */
static void reset_request(ag__sconn *c) {
    ag__sconn_release_body(c);
    c->url.len = c->field.len = c->value.len = 0;
    c->head_bytes = 0;
    c->nheaders = 0;
    c->expect_continue = c->has_host = 0;
    c->head_sent = c->head_status = 0;
    c->head_len = 0;
    c->resp_bytes = 0;
    c->extra_len = 0;
    c->err_status = 0;
    c->err_msg = NULL;
}

static void arm_idle(ag__sconn *c) {
    struct timeval tv;
    ag__timeval(&tv, c->s->lim.idle_timeout);
    evtimer_add(&c->timer, &tv);
}

static void dispatch(ag__sconn *c) {
    c->s->st.requests++;
    evtimer_del(&c->timer);
    c->phase = S_SERVING;
    c->keep_alive = llhttp_should_keep_alive(&c->parser);
    c->http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
    c->s->ops->on_request(c->st, c);
}

/* Parses what has arrived, while no request is being served. A client that
 * pipelines requests without reading the answers is not read any further
 * once over AG__SRV_OUT_HIGH of them wait (write_cb resumes it). */
static void sc_parse(ag__sconn *c) {
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->phase == S_IDLE || c->phase == S_READING) {
        if (c->phase == S_IDLE && ag__sconn_unsent(c) > AG__SRV_OUT_HIGH) {
            c->out_blocked = 1;
            bufferevent_disable(c->bev, EV_READ);
            return;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        enum llhttp_errno e = llhttp_execute(&c->parser, v.iov_base, v.iov_len);
        size_t used = v.iov_len;
        if (e == HPE_PAUSED) {
            used = (size_t)(llhttp_get_error_pos(&c->parser) - (const char *)v.iov_base);
            llhttp_resume(&c->parser);
        }
        evbuffer_drain(in, used);
        if (e == HPE_PAUSED) {
            dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            c->keep_alive = 0;
            c->phase = S_SERVING;
            if (c->err_status && c->st && c->s->ops->on_refuse) {
                c->s->ops->on_refuse(c->st, c, c->err_status, c->err_msg);
            } else if (c->err_status) {
                ag__sconn_send_error(c, c->err_status, c->err_msg);
            } else {
                char msg[300];
                snprintf(msg, sizeof msg, "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
                ag__sconn_send_error(c, 400, msg);
            }
            ag__sconn_finish(c);
            return;
        }
    }
    /* while serving, pipelined bytes wait; too many of them: stop reading */
    if (c->phase == S_SERVING && evbuffer_get_length(in) > c->s->lim.max_body + c->s->lim.max_head)
        bufferevent_disable(c->bev, EV_READ);
}

static void sc_free(ag__sconn *c) {
    ag__srv *s = c->s;
    c->phase = S_CLOSING;
    if (s->ops->on_close) s->ops->on_close(c->st, c);
    c->st = NULL;
    event_del(&c->timer);
    event_del(&c->kick);
    event_del(&c->flush);
    if (c->pend) evbuffer_free(c->pend);
    if (c->prev) {
        *c->prev = c->next;
        if (c->next) c->next->prev = c->prev;
    }
    if (s->st.clients) s->st.clients--;
    ip_release(s, c->ip);
    ag__sconn_release_body(c);
    bufferevent_free(c->bev);
    ag__buf_free(s->a, &c->url);
    ag__buf_free(s->a, &c->body);
    ag__buf_free(s->a, &c->field);
    ag__buf_free(s->a, &c->value);
    ag__free(s->a, c);
}

/* Marks the connection for closing; it is freed from its own event. */
static void sc_close(ag__sconn *c) {
    if (c->phase == S_CLOSING) return;
    c->phase = S_CLOSING;
    event_active(&c->kick, EV_TIMEOUT, 1);
}

void ag__sconn_finish(ag__sconn *c) {
    if (c->phase == S_CLOSING) return;
    sc_flush(c);
    if (!c->keep_alive) {
        c->phase = S_CLOSING; /* freed once the output has drained (write_cb) */
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) event_active(&c->kick, EV_TIMEOUT, 1);
        return;
    }
    reset_request(c);
    c->phase = S_IDLE;
    arm_idle(c);
    if (ag__sconn_unsent(c) > AG__SRV_OUT_HIGH) { /* write_cb reads on once it drained */
        c->out_blocked = 1;
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev))) event_active(&c->kick, EV_TIMEOUT, 1);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__sconn *c = arg;
    if (c->phase == S_CLOSING) sc_free(c);
    else sc_parse(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__sconn *c = arg;
    if (c->phase == S_READING) {
        c->keep_alive = 0;
        c->phase = S_SERVING;
        ag__sconn_send_error(c, 408, "the request did not arrive in time");
        ag__sconn_finish(c);
    } else if (c->phase == S_IDLE) {
        sc_close(c);
    }
}

static void read_cb(struct bufferevent *bev, void *arg) {
    (void)bev;
    sc_parse(arg);
}

static void write_cb(struct bufferevent *bev, void *arg) {
    (void)bev;
    ag__sconn *c = arg;
    if (c->phase == S_CLOSING) {
        event_active(&c->kick, EV_TIMEOUT, 1);
        return;
    }
    if (c->out_blocked) { /* the client read its answers: read its requests again */
        c->out_blocked = 0;
        bufferevent_enable(c->bev, EV_READ);
        event_active(&c->kick, EV_TIMEOUT, 1);
    }
    if (c->s->ops->on_drain) c->s->ops->on_drain(c->st, c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    ag__sconn *c = arg;
    if ((what & BEV_EVENT_CONNECTED) && c->handshaking) { /* the TLS handshake is done: the idle timeout from here */
        c->handshaking = 0;
        if (c->phase == S_IDLE) arm_idle(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) { /* its answer waited send_timeout for the client to read */
        c->s->st.send_timeouts++;
        sc_close(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) sc_close(c);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
    (void)lis;
    (void)salen;
    ag__srv *s = arg;
    unsigned char ip[16];
    ip_key(sa, ip);
    struct ipcount *ipc = ip_count(s, ip);
    if (s->st.clients >= s->lim.max_clients || (ipc && ipc->n >= s->lim.max_clients_per_ip)) {
        if (ipc && s->st.clients < s->lim.max_clients) s->st.rejected_per_ip++;
        if (s->lim.tls) { /* no plain text on a TLS port: just closed */
            evutil_closesocket(fd);
            s->st.rejected++;
            return;
        }
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            "Content-Length: 30\r\nConnection: close\r\n\r\n{\"error\":\"too many clients\"}\n";
        ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        evutil_closesocket(fd);
        s->st.rejected++;
        s->st.status_5xx++;
        return;
    }
    ag__sock_tune(fd);
    int lowat = NOTSENT_LOWAT;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    ag__sconn *c = ag__calloc(s->a, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->s = s;
    if (s->lim.tls) { /* https: the handshake first, then the same HTTP */
        SSL *ssl = SSL_new(s->lim.tls);
        c->bev = ssl ? bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (!c->bev && ssl) SSL_free(ssl);
        if (c->bev) bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->pend = evbuffer_new();
    c->st = c->bev && c->pend ? s->ops->on_open(s->app, c) : NULL;
    if (!c->st) {
        if (c->bev) bufferevent_free(c->bev);
        else evutil_closesocket(fd);
        if (c->pend) evbuffer_free(c->pend);
        ag__free(s->a, c);
        return;
    }
    event_assign(&c->flush, s->base, -1, 0, flush_cb, c);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    evtimer_assign(&c->timer, s->base, timer_cb, c);
    event_assign(&c->kick, s->base, -1, 0, kick_cb, c);
    c->next = s->conns;
    if (s->conns) s->conns->prev = &c->next;
    s->conns = c;
    c->prev = &s->conns;
    s->st.clients++;
    memcpy(c->ip, ip, 16);
    if (ipc) ipc->n++;
    s->st.accepted++;
    c->phase = S_IDLE;
    c->keep_alive = 1;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* output that makes no progress for send_timeout: the client stopped reading */
    struct timeval wt;
    ag__timeval(&wt, s->lim.send_timeout);
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (s->lim.tls) { /* until the handshake is done, a shorter wait */
        c->handshaking = 1;
        struct timeval tv;
        double hs = s->lim.idle_timeout < HANDSHAKE_TIMEOUT_S ? s->lim.idle_timeout : HANDSHAKE_TIMEOUT_S;
        ag__timeval(&tv, hs);
        evtimer_add(&c->timer, &tv);
    } else {
        arm_idle(c);
    }
}

/* accept() failed. Out of descriptors (EMFILE, ENFILE) the pending
 * connection stays in the backlog and the listener would fire again at once:
 * pause accepting for a moment instead of spinning. */
static void accept_retry_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__srv *s = arg;
    evconnlistener_enable(s->lis);
}
static void accept_error_cb(struct evconnlistener *lis, void *arg) {
    (void)lis;
    ag__srv *s = arg;
    int e = EVUTIL_SOCKET_ERROR();
    s->st.accept_errors++;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        evconnlistener_disable(s->lis);
        struct timeval tv = {0, 100000};
        evtimer_add(&s->accept_retry, &tv);
    }
}

ag__srv *ag__srv_new(struct event_base *base, const struct sockaddr *sa, int salen,
                     const ag__srv_limits *lim, const ag__srv_ops *ops, void *app,
                     const ag_alloc_funcs *a, int *err) {
    ag__srv *s = ag__calloc(a, sizeof *s);
    if (!s) {
        *err = AG_ENOMEM;
        return NULL;
    }
    s->base = base;
    s->ops = ops;
    s->app = app;
    s->lim = *lim;
    s->a = a;
    if (s->lim.max_clients_per_ip && s->lim.max_clients_per_ip < s->lim.max_clients) {
        s->ipcap = 16;
        while (s->ipcap < 2 * (size_t)s->lim.max_clients) s->ipcap <<= 1;
        if (!(s->ips = ag__calloc(a, s->ipcap * sizeof *s->ips))) {
            ag__free(a, s);
            *err = AG_ENOMEM;
            return NULL;
        }
    }
    s->lis = evconnlistener_new_bind(base, accept_cb, s, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024, sa,
                                     salen);
    if (!s->lis) {
        ag__free(a, s->ips);
        ag__free(a, s);
        *err = AG_ECONNECT;
        return NULL;
    }
    evconnlistener_set_error_cb(s->lis, accept_error_cb);
    evtimer_assign(&s->accept_retry, base, accept_retry_cb, s);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&bound, &bl) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    *err = 0;
    return s;
}

int ag__srv_port(const ag__srv *s) {
    return s ? s->port : 0;
}

void ag__srv_free(ag__srv *s) {
    if (!s) return;
    event_del(&s->accept_retry);
    evconnlistener_free(s->lis);
    while (s->conns) sc_free(s->conns);
    ag__free(s->a, s->ips);
    ag__free(s->a, s);
}

void ag__srv_get_stats(const ag__srv *s, ag__srv_stats *out) {
    memset(out, 0, sizeof *out);
    if (!s) return;
    *out = s->st;
    for (ag__sconn *c = s->conns; c; c = c->next)
        if (c->phase != S_CLOSING) out->unsent += ag__sconn_unsent(c);
}
