/* transport/conn.c - connections, the per-node keep-alive pool, and HTTP/1.1
 * exchanges parsed by llhttp.
 *
 * One connection carries one exchange at a time. A finished exchange puts its
 * connection back on the node's idle list (LIFO: the warmest socket first) or
 * hands it straight to the oldest waiting exchange. Callbacks into the owner
 * happen only from libevent callbacks, with conn->dispatching set so that a
 * close requested meanwhile is deferred until llhttp has returned.
 */
#include "transport/http.h"
#include "transport/sock.h"
#include "core/base/clock.h"
#include "core/base/mem.h"
#include "agents/error.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <llhttp.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum conn_phase { C_CONNECTING, C_IDLE, C_BUSY, C_CLOSED };

struct ag__conn {
    ag__node *node;
    struct bufferevent *bev;
    struct event timer; /* connect timeout */
    llhttp_t parser;
    ag__http *http;
    ag__conn *next, **prev; /* idle list or all-busy list */
    enum conn_phase phase;
    unsigned served;        /* exchanges completed on this connection */
    int status;             /* status of the current final response, 0 before the head */
    unsigned dispatching : 1, close_pending : 1, msg_done : 1, abandoned : 1, informational : 1,
        eof_pending : 1;
    /* Plain connections read by themselves once connected (conn_rawread_cb):
     * one recv per wake-up, where a bufferevent's read first asks the kernel
     * how much is there (ioctl FIONREAD) every time. TLS reads through its
     * bufferevent. */
    unsigned raw : 1, rev_on : 1, rto_on : 1;
    /* Retry-After on a 429 or 503: the field's name as it arrives (llhttp
     * may split it), then its value */
    char hf[12], ra[32];
    unsigned char hfl, ral, hf_over, in_ra;
    struct event rev;
    struct timeval rto; /* the read timeout (first byte, then idle) when rto_on */
};

struct ag__node {
    ag__node_cfg cfg;
    char host[256];
    char name[300];
    struct evdns_base *dns;
    int own_dns;
    int numeric; /* host is an IP literal: no DNS */
    struct sockaddr_storage sa;
    int salen;
    ag__conn *idle;   /* LIFO */
    ag__conn *others; /* connecting or busy */
    ag__http *qhead, **qtail;
    ag__node_stats st;
};


static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_close(ag__conn *c);
static void conn_assign(ag__conn *c, ag__http *h);
static int conn_open(ag__node *n, ag__http *h);

/* ---- lists ---- */
static void list_push(ag__conn **head, ag__conn *c) {
    c->next = *head;
    if (*head) (*head)->prev = &c->next;
    *head = c;
    c->prev = head;
}
static void list_remove(ag__conn *c) {
    if (!c->prev) return;
    *c->prev = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = NULL;
    c->prev = NULL;
}
static void queue_push(ag__node *n, ag__http *h) {
    h->qnext = NULL;
    h->qprev = n->qtail;
    *n->qtail = h;
    n->qtail = &h->qnext;
    h->queued = 1;
    n->st.queued++;
}
static void queue_remove(ag__node *n, ag__http *h) {
    if (!h->queued) return;
    if (h->qnext) h->qnext->qprev = h->qprev;
    else n->qtail = h->qprev;
    *h->qprev = h->qnext;
    h->queued = 0;
    h->qnext = NULL;
    h->qprev = NULL;
    n->st.queued--;
}
static ag__http *queue_pop(ag__node *n) {
    ag__http *h = n->qhead;
    if (h) queue_remove(n, h);
    return h;
}

/* ---- llhttp callbacks ---- */
static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    ag__conn *c = p->data;
    if (c->in_ra) c->hfl = 0, c->hf_over = 0; /* a value came: this is a new field */
    c->in_ra = 0;
    if (p->status_code != 429 && p->status_code != 503) return 0;
    if (c->hfl + len > sizeof c->hf) c->hf_over = 1;
    else {
        memcpy(c->hf + c->hfl, at, len);
        c->hfl = (unsigned char)(c->hfl + len);
    }
    return 0;
}
static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    ag__conn *c = p->data;
    if (c->in_ra != 1) { /* the value of the field just named */
        c->in_ra = !c->hf_over && c->hfl == 11 && strncasecmp(c->hf, "retry-after", 11) == 0 ? 1 : 2;
        if (c->in_ra == 1) c->ral = 0;
    }
    if (c->in_ra == 1 && c->ral + len < sizeof c->ra) {
        memcpy(c->ra + c->ral, at, len);
        c->ral = (unsigned char)(c->ral + len);
        c->ra[c->ral] = 0;
    }
    c->hfl = 0;
    c->hf_over = 0;
    return 0;
}
/* delay-seconds, or an HTTP-date (then from now); -1 when unreadable */
static int retry_after_ms(const char *v) {
    while (*v == ' ' || *v == '\t') v++;
    if (*v >= '0' && *v <= '9') {
        char *e;
        double s = strtod(v, &e);
        return s >= 0 && s < 86400 ? (int)(s * 1000) : 86400000;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!e) return -1;
    double d = difftime(timegm(&tm), time(NULL));
    return d <= 0 ? 0 : d < 86400 ? (int)(d * 1000) : 86400000;
}

static int on_headers_complete(llhttp_t *p) {
    ag__conn *c = p->data;
    int status = p->status_code;
    if (status >= 100 && status < 200 && status != 101) {
        c->informational = 1; /* 100 Continue, 103 Early Hints: skip */
        return 0;
    }
    c->informational = 0;
    c->status = status;
    if (c->http) c->http->retry_after_ms = c->ral ? retry_after_ms(c->ra) : -1;
    if (c->http && c->http->ops->on_head(c->http->owner, status)) {
        c->abandoned = 1;
        return -1;
    }
    return c->http && c->http->is_head ? 1 : 0;
}
static int on_body(llhttp_t *p, const char *at, size_t len) {
    ag__conn *c = p->data;
    if (c->http && c->http->ops->on_body(c->http->owner, at, len)) {
        c->abandoned = 1;
        return HPE_USER;
    }
    return 0;
}
static int on_message_complete(llhttp_t *p) {
    ag__conn *c = p->data;
    if (c->informational) {
        c->informational = 0;
        return 0;
    }
    c->msg_done = 1;
    return HPE_PAUSED;
}

/* one table for every connection, constant: what llhttp_settings_init
 * would leave NULL stays NULL */
static const llhttp_settings_t settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- node ---- */
ag__node *ag__node_new(const ag__node_cfg *cfg) {
    ag__node *n = ag__calloc(cfg->alloc, sizeof *n);
    if (!n) return NULL;
    n->cfg = *cfg;
    snprintf(n->host, sizeof n->host, "%s", cfg->host);
    n->cfg.host = n->host;
    if (strchr(n->host, ':')) snprintf(n->name, sizeof n->name, "[%s]:%d", n->host, cfg->port);
    else snprintf(n->name, sizeof n->name, "%s:%d", n->host, cfg->port);
    n->qtail = &n->qhead;
    n->dns = cfg->dns;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&n->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&n->sa;
    if (evutil_inet_pton(AF_INET, n->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)cfg->port);
        n->salen = sizeof *s4;
        n->numeric = 1;
    } else if (evutil_inet_pton(AF_INET6, n->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)cfg->port);
        n->salen = sizeof *s6;
        n->numeric = 1;
    }
    return n;
}

void ag__node_free(ag__node *n) {
    if (!n) return;
    ag__http *h;
    while ((h = queue_pop(n)) != NULL) h->node = NULL;
    while (n->idle) conn_close(n->idle);
    while (n->others) {
        ag__conn *c = n->others;
        if (c->http) c->http->conn = NULL;
        c->http = NULL;
        conn_close(c);
    }
    if (n->own_dns) evdns_base_free(n->dns, 0);
    ag__free(n->cfg.alloc, n);
}

void ag__node_get_stats(const ag__node *n, ag__node_stats *out) {
    *out = n->st;
}
const char *ag__node_name(const ag__node *n) {
    return n->name;
}

/* ---- reading: the connection's own read event, or its bufferevent's ---- */
static void conn_read_on(ag__conn *c) {
    if (!c->raw) {
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    event_add(&c->rev, c->rto_on ? &c->rto : NULL); /* (re)arms the timeout too */
    c->rev_on = 1;
}

static void conn_read_off(ag__conn *c) {
    if (!c->raw) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    if (c->rev_on) event_del(&c->rev);
    c->rev_on = 0;
}

/* the silence allowed from now on (NULL: none) */
static void conn_read_timeout(ag__conn *c, const struct timeval *tv) {
    if (!c->raw) {
        bufferevent_set_timeouts(c->bev, tv, NULL);
        return;
    }
    c->rto_on = tv != NULL;
    if (tv) c->rto = *tv;
    if (c->rev_on) event_add(&c->rev, tv); /* a pending event takes the new timeout */
}

/* ---- connections ---- */
static void conn_free_now(ag__conn *c) {
    ag__node *n = c->node;
    list_remove(c);
    if (event_initialized(&c->timer)) event_del(&c->timer);
    if (c->raw && event_initialized(&c->rev)) event_del(&c->rev);
    if (c->bev) bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->phase == C_IDLE) n->st.idle--;
    n->st.open--;
    ag__free(n->cfg.alloc, c);
}

/* After a connection goes away, a waiting exchange may now open one. */
static void node_kick_queue(ag__node *n) {
    while (n->qhead && n->st.open < n->cfg.max_conns) {
        ag__http *h = queue_pop(n);
        if (conn_open(n, h) != 0) {
            h->ops->on_end(h->owner, AG_ENOMEM, "out of memory opening a connection");
        }
    }
}

static void conn_close(ag__conn *c) {
    if (c->phase == C_CLOSED) return;
    if (c->dispatching) {
        c->close_pending = 1;
        if (c->bev) bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        if (c->raw && c->rev_on) conn_read_off(c);
        return;
    }
    ag__node *n = c->node;
    conn_free_now(c);
    node_kick_queue(n);
}

/* The outcome of one exchange: detach, then tell the owner last, so that a
 * request started from on_end can already reuse this connection. */
static void exchange_end(ag__conn *c, int err, const char *detail) {
    ag__http *h = c->http;
    c->http = NULL;
    if (h) h->conn = NULL;
    if (h) h->ops->on_end(h->owner, err, detail);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

/* the exchange's own timeouts, else the node's */
static double first_byte_of(const ag__conn *c, const ag__http *h) {
    return h && h->first_byte_timeout ? h->first_byte_timeout : c->node->cfg.first_byte_timeout;
}
static double idle_of(const ag__conn *c, const ag__http *h) {
    return h && h->idle_timeout ? h->idle_timeout : c->node->cfg.idle_timeout;
}

/* Writes straight to the socket when nothing is queued before it: a
 * bufferevent would first wait a loop turn for the socket to be writable
 * (epoll_ctl, epoll_wait, then writev, then epoll_ctl again). What the
 * socket does not take goes through the bufferevent as usual. Not for TLS. */
static void conn_send(ag__conn *c, const char *p, size_t n) {
    if (!c->node->cfg.tls && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        ssize_t w = send(bufferevent_getfd(c->bev), p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (n) bufferevent_write(c->bev, p, n);
}

static void conn_begin(ag__conn *c) {
    ag__http *h = c->http;
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    c->status = 0;
    c->hfl = c->ral = c->hf_over = c->in_ra = 0;
    c->msg_done = 0;
    c->abandoned = 0;
    c->informational = 0;
    /* the wait for the first byte (a model load can take minutes), then the
     * silence allowed between bytes: see conn_process */
    struct timeval tv;
    double fb = first_byte_of(c, h);
    if (fb > 0) ag__timeval(&tv, fb);
    conn_read_timeout(c, fb > 0 ? &tv : NULL);
    conn_send(c, h->wire, h->wire_len);
    if (!h->paused) conn_read_on(c);
    if (h->ops->on_sent) h->ops->on_sent(h->owner);
}

static void conn_assign(ag__conn *c, ag__http *h) {
    c->http = h;
    h->conn = c;
    if (c->phase == C_IDLE) {
        c->node->st.idle--;
        list_remove(c);
        list_push(&c->node->others, c);
        c->phase = C_BUSY;
        c->node->st.reused++;
        conn_begin(c);
    }
    /* C_CONNECTING: conn_begin runs once connected */
}

/* A failure on a connection: retry once on a fresh connection when a reused
 * keep-alive socket died before a single response byte came back (the server
 * closed it as we wrote), else report. */
static void conn_fail(ag__conn *c, int err, const char *detail) {
    ag__http *h = c->http;
    ag__node *n = c->node;
    int stale = h && c->served > 0 && !h->got_bytes && !h->retried &&
                (err == AG_ECONNRESET || err == AG_ECONNREFUSED);
    c->http = NULL;
    if (h) h->conn = NULL;
    conn_close(c);
    if (!h) return;
    if (stale) {
        h->retried = 1;
        n->st.stale_retries++;
        if (conn_open(n, h) == 0) return;
    }
    h->ops->on_end(h->owner, err, detail);
}

static void conn_finish_message(ag__conn *c) {
    ag__node *n = c->node;
    ag__http *h = c->http;
    int keep = llhttp_should_keep_alive(&c->parser) &&
               evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 && !c->close_pending;
    c->served++;
    c->http = NULL;
    h->conn = NULL;
    if (keep) {
        conn_read_timeout(c, NULL);
        ag__http *next = queue_pop(n);
        if (next) {
            c->http = next;
            next->conn = c;
            n->st.reused++;
            conn_begin(c);
        } else if (n->st.idle < n->cfg.max_idle) {
            list_remove(c);
            c->phase = C_IDLE;
            n->st.idle++;
            list_push(&n->idle, c);
            conn_read_on(c); /* notice a server close */
        } else {
            conn_close(c);
        }
    } else {
        conn_close(c);
    }
    h->ops->on_end(h->owner, 0, NULL);
}

/* Feed what is buffered to llhttp, one contiguous piece at a time. */
static int conn_process(ag__conn *c) {
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->http && !c->http->paused && !c->close_pending) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        if (!c->http->got_bytes) { /* from here on, the silence between bytes counts */
            c->http->got_bytes = 1;
            struct timeval tv;
            double idle = idle_of(c, c->http);
            if (idle > 0) ag__timeval(&tv, idle);
            conn_read_timeout(c, idle > 0 ? &tv : NULL);
        }
        c->dispatching = 1;
        llhttp_errno_t e = llhttp_execute(&c->parser, v.iov_base, v.iov_len);
        c->dispatching = 0;
        size_t used = v.iov_len;
        if (e != HPE_OK) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            if (pos) used = (size_t)(pos - (const char *)v.iov_base);
        }
        if (c->abandoned || c->close_pending) {
            /* the owner walked away (its exchange may already be freed: do not
             * touch it) or the connection was closed from a callback */
            c->http = NULL;
            c->close_pending = 0;
            conn_close(c);
            return 1;
        }
        evbuffer_drain(in, used);
        if (e == HPE_PAUSED && c->msg_done) {
            conn_finish_message(c);
            return 1;
        }
        if (e != HPE_OK) {
            char detail[160];
            snprintf(detail, sizeof detail, "HTTP parse error: %s (%s)", llhttp_errno_name(e),
                     llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser)
                                                         : "");
            conn_fail(c, AG_EPROTO, detail);
            return 1;
        }
    }
    return 0;
}

static void conn_handle_eof(ag__conn *c);

static void conn_readcb(struct bufferevent *bev, void *arg) {
    (void)bev;
    ag__conn *c = arg;
    if (c->phase == C_IDLE || !c->http) {
        /* bytes on an idle connection: the server is confused; drop it */
        conn_close(c);
        return;
    }
    if (conn_process(c)) return;
    if (c->http && c->http->ops->on_read_end) {
        /* the owner may walk away from here: closing waits until it returns */
        c->dispatching = 1;
        c->http->ops->on_read_end(c->http->owner);
        c->dispatching = 0;
        if (c->close_pending || !c->http) {
            c->http = NULL;
            c->close_pending = 0;
            conn_close(c);
            return;
        }
    }
    if (c->eof_pending && c->http && !c->http->paused) conn_handle_eof(c);
}

/* A plain connection's read: what the socket has (up to 64 KiB) into the
 * input buffer, then the same processing as a bufferevent's read; the end
 * of the stream, an error and the timeout go to conn_eventcb as a
 * bufferevent would report them. */
static void conn_rawread_cb(evutil_socket_t fd, short what, void *arg) {
    ag__conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (what & EV_TIMEOUT) {
        conn_eventcb(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
        return;
    }
    char buf[65536];
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
        if (evbuffer_add(in, buf, (size_t)r) != 0) {
            conn_fail(c, AG_ENOMEM, "out of memory reading a response");
            return;
        }
        conn_readcb(c->bev, c);
        return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        /* woken for bytes already buffered (a resume) */
        if (evbuffer_get_length(in) > 0) conn_readcb(c->bev, c);
        return;
    }
    int err = r < 0 ? errno : 0;
    conn_read_off(c); /* nothing more to read: the end, or an error */
    errno = err;
    conn_eventcb(c->bev, BEV_EVENT_READING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg) {
    ag__conn *c = arg;
    ag__node *n = c->node;
    char detail[512];
    if (what & BEV_EVENT_CONNECTED) {
        event_del(&c->timer);
        ag__sock_tune(bufferevent_getfd(bev));
        if (!n->cfg.tls) { /* from now on this connection reads by itself */
            c->raw = 1;
            event_assign(&c->rev, n->cfg.base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, conn_rawread_cb, c);
        }
        c->phase = C_BUSY;
        if (c->http) conn_begin(c);
        else conn_close(c);
        return;
    }
    if (c->phase == C_IDLE || !c->http) {
        conn_close(c);
        return;
    }
    if (c->phase == C_CONNECTING) {
        int dnserr = bufferevent_socket_get_dns_error(bev);
        int se = EVUTIL_SOCKET_ERROR();
        unsigned long tlserr = n->cfg.tls ? bufferevent_get_openssl_error(bev) : 0;
        if (tlserr) {
            char e[160];
            ERR_error_string_n(tlserr, e, sizeof e);
            const char *why = strstr(e, "certificate verify failed") ? " (certificate verify failed)" : "";
            SSL *ssl = bufferevent_openssl_get_ssl(bev);
            long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
            char vs[160];
            snprintf(vs, sizeof vs, "%s", vr != X509_V_OK ? X509_verify_cert_error_string(vr) : e);
            snprintf(detail, sizeof detail, "%.300s: TLS: %s%s", n->name, vs, vr != X509_V_OK ? "" : why);
            conn_fail(c, AG_ETLS, detail);
        } else if (dnserr) {
            snprintf(detail, sizeof detail, "%s: %s", n->host, evutil_gai_strerror(dnserr));
            conn_fail(c, AG_EDNS, detail);
        } else if (se == ECONNREFUSED) {
            snprintf(detail, sizeof detail, "%s: connection refused", n->name);
            conn_fail(c, AG_ECONNREFUSED, detail);
        } else {
            snprintf(detail, sizeof detail, "%s: %s", n->name, evutil_socket_error_to_string(se));
            conn_fail(c, AG_ECONNECT, detail);
        }
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (c->http && !c->http->got_bytes)
            snprintf(detail, sizeof detail, "%s: no bytes within %.3g s of sending (first-byte timeout)", n->name,
                     first_byte_of(c, c->http));
        else
            snprintf(detail, sizeof detail, "%s: no bytes for %.3g s (idle timeout)", n->name,
                     idle_of(c, c->http));
        conn_fail(c, AG_EIDLE, detail);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->eof_pending = 1;
        /* deliver anything still buffered, then let llhttp judge the end */
        if (conn_process(c)) return;
        if (c->http && !c->http->paused) conn_handle_eof(c);
        return; /* when paused: judged on resume */
    }
    int se = EVUTIL_SOCKET_ERROR();
    snprintf(detail, sizeof detail, "%s: %s", n->name, evutil_socket_error_to_string(se));
    conn_fail(c, AG_ECONNRESET, detail);
}

static void conn_handle_eof(ag__conn *c) {
    ag__node *n = c->node;
    char detail[512];
    c->dispatching = 1;
    llhttp_finish(&c->parser);
    c->dispatching = 0;
    if (c->abandoned || c->close_pending) {
        c->http = NULL;
        c->close_pending = 0;
        conn_close(c);
        return;
    }
    if (c->msg_done) { /* close-delimited body, complete */
        c->served++;
        exchange_end(c, 0, NULL);
        conn_close(c);
        return;
    }
    snprintf(detail, sizeof detail, "%s closed the connection %s", n->name,
             c->status ? "in the middle of the response" : "before answering");
    conn_fail(c, AG_ECONNRESET, detail);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__conn *c = arg;
    char detail[512];
    snprintf(detail, sizeof detail, "%s: connect timed out after %.3g s", c->node->name,
             c->node->cfg.connect_timeout);
    conn_fail(c, AG_ETIMEDOUT, detail);
}

static int conn_open(ag__node *n, ag__http *h) {
    ag__conn *c = ag__calloc(n->cfg.alloc, sizeof *c);
    if (!c) return AG_ENOMEM;
    c->node = n;
    if (n->cfg.tls) {
        SSL *ssl = SSL_new(n->cfg.tls);
        if (!ssl) {
            ag__free(n->cfg.alloc, c);
            return AG_ENOMEM;
        }
        if (!n->numeric) SSL_set_tlsext_host_name(ssl, n->host); /* SNI */
        if (n->cfg.tls_verify) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (n->numeric) X509_VERIFY_PARAM_set1_ip_asc(vp, n->host);
            else X509_VERIFY_PARAM_set1_host(vp, n->host, 0);
        }
        c->bev = bufferevent_openssl_socket_new(n->cfg.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (c->bev) bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1); /* servers often skip close_notify */
        else SSL_free(ssl);
    } else {
        c->bev = bufferevent_socket_new(n->cfg.base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) {
        ag__free(n->cfg.alloc, c);
        return AG_ENOMEM;
    }
    c->phase = C_CONNECTING;
    n->st.open++;
    n->st.opened++;
    list_push(&n->others, c);
    bufferevent_setcb(c->bev, conn_readcb, NULL, conn_eventcb, c);
    evtimer_assign(&c->timer, n->cfg.base, conn_timer_cb, c);
    struct timeval tv;
    ag__timeval(&tv, n->cfg.connect_timeout > 0 ? n->cfg.connect_timeout : 10.0);
    evtimer_add(&c->timer, &tv);
    c->http = h;
    h->conn = c;
    int rc;
    if (n->numeric) {
        rc = bufferevent_socket_connect(c->bev, (struct sockaddr *)&n->sa, n->salen);
    } else {
        if (!n->dns) {
            n->dns = evdns_base_new(n->cfg.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
            n->own_dns = n->dns != NULL;
        }
        rc = bufferevent_socket_connect_hostname(c->bev, n->dns, AF_UNSPEC, n->host, n->cfg.port);
    }
    if (rc < 0) {
        /* the error event may not have been delivered: report from the loop */
        if (c->phase != C_CLOSED && c->http == h) {
            c->http = NULL;
            h->conn = NULL;
            conn_close(c);
            return AG_ECONNECT;
        }
    }
    return 0;
}

/* ---- exchanges ---- */
int ag__http_start(ag__node *n, ag__http *h) {
    h->node = n;
    h->retry_after_ms = -1;
    h->conn = NULL;
    h->retried = 0;
    h->got_bytes = 0;
    h->queued = 0;
    if (n->idle) {
        conn_assign(n->idle, h);
        return 0;
    }
    if (n->st.open < n->cfg.max_conns) {
        int rc = conn_open(n, h);
        if (rc == AG_ECONNECT) {
            /* immediate failure: queue it as a fresh attempt from the loop is
             * overkill; report through the normal path on the next tick */
            return rc;
        }
        return rc;
    }
    if (n->st.queued >= n->cfg.max_queue) return AG_EQUEUEFULL;
    queue_push(n, h);
    return 0;
}

void ag__http_abort(ag__http *h) {
    if (h->queued && h->node) {
        queue_remove(h->node, h);
        return;
    }
    ag__conn *c = h->conn;
    if (!c) return;
    c->http = NULL;
    h->conn = NULL;
    conn_close(c);
}

void ag__http_pause(ag__http *h, int paused) {
    h->paused = paused ? 1 : 0;
    ag__conn *c = h->conn;
    if (!c || c->phase != C_BUSY) return;
    if (paused) {
        conn_read_off(c);
    } else {
        conn_read_on(c);
        /* bytes already buffered would otherwise wait for the next packet */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
            if (c->raw) event_active(&c->rev, EV_READ, 1); /* processed from the loop */
            else bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
        }
    }
}
