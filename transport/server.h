/* transport/server.h - private: an HTTP/1.1 server engine on the loop.
 *
 * The server side of the transport, as conn.c is the client side: it knows
 * HTTP, not Ollama. One listener; per client socket one connection with
 * llhttp in request mode, moving IDLE -> READING -> SERVING -> IDLE
 * (keep-alive) or CLOSING; requests on a connection are answered one at a
 * time (pipelined bytes wait in the input buffer). Teardown is deferred: a
 * connection is marked closing and freed from its own event, never inside a
 * call that may still touch it.
 *
 * What it bounds by itself, whatever the application does: the head (size,
 * header count, URL), the body (per request and over all connections), the
 * time a request may take to arrive (408) and a kept-alive connection may
 * sit idle, the unsent output of a connection (no further request is read
 * while over 1 MiB waits), the time output may wait for a client that does
 * not read (then the connection closes), the number of connections (503 and
 * close), accept() failures (EMFILE: accepting pauses for 100 ms). Its own
 * refusals are JSON bodies {"error": "..."}.
 *
 * The application (the gateway) sees: a connection opened (it makes its
 * per-connection state), each header, the whole head (it may refuse the
 * request before any body byte is read), the whole request (it answers now
 * or later, then calls ag__sconn_finish), the output drained (resume what
 * it paused), and the connection going away (drop what it started). Every
 * function below is for the loop's thread; ag__sconn_* may be called from
 * the application's callbacks. */
#ifndef AG_TRANSPORT_SERVER_H
#define AG_TRANSPORT_SERVER_H
#include <stddef.h>
#include <stdint.h>

#include "agents/alloc.h"

struct event_base;
struct sockaddr;
typedef struct ag__srv ag__srv;
typedef struct ag__sconn ag__sconn;

#define AG__SRV_OUT_HIGH ((size_t)1 << 20) /* unsent output that stops reading requests */

typedef struct ag__srv_ops {
    /* a new connection: the application's state for it (NULL: refuse it) */
    void *(*on_open)(void *app, ag__sconn *c);
    /* one request header (borrowed bytes); 0 to go on, or an HTTP status to
     * refuse the request with (*msg: the error's text, static) */
    int (*on_header)(void *st, const char *name, size_t nl, const char *value, size_t vl, const char **msg);
    /* the head is whole (method, URL, headers known; no body read yet): 0,
     * or an HTTP status to refuse with (the connection then closes) */
    int (*on_head)(void *st, ag__sconn *c, const char **msg);
    /* the whole request: answer it, now or later, ending with ag__sconn_finish */
    void (*on_request)(void *st, ag__sconn *c);
    /* the client read what was waiting (called after each drain to empty) */
    void (*on_drain)(void *st, ag__sconn *c);
    /* the connection goes away: cancel what it started, free st */
    void (*on_close)(void *st, ag__sconn *c);
    /* a request refused by the server or by on_header/on_head (status, its
     * text): the application answers it in its own shape, with
     * ag__sconn_send_whole/send_error (NULL: {"error": msg}); the connection
     * closes after it */
    void (*on_refuse)(void *st, ag__sconn *c, int status, const char *msg);
} ag__srv_ops;

typedef struct ag__srv_limits {
    unsigned max_clients;   /* open connections; over it: 503 and close */
    unsigned max_headers;   /* header count; over it: 431 */
    size_t max_head;        /* request line + headers, bytes: 431 */
    size_t max_body;        /* one request's body: 413 */
    size_t max_buffered;    /* bodies held over all connections: 503 */
    double idle_timeout;    /* a kept-alive connection idle this long closes */
    double request_timeout; /* a request's first byte to its last: 408 */
    double send_timeout;    /* output waiting this long for a client that does not read: close */
    unsigned max_clients_per_ip; /* open connections from one address; over it: 503 and close (0 = no cap) */
    struct ssl_ctx_st *tls; /* non-NULL: serve https with this context (borrowed) */
} ag__srv_limits;

typedef struct ag__srv_stats {
    uint64_t accepted, rejected, requests, status_2xx, status_4xx, status_5xx, bytes_out;
    uint64_t send_timeouts, accept_errors, rejected_per_ip;
    unsigned clients;
    size_t buffered, unsent;
} ag__srv_stats;

/* Header lines ("Name: value\r\n" each) for the response being made, sent
 * with its head; they go with this request only. */
void ag__sconn_add_headers(ag__sconn *c, const char *lines);

/* Listens on sa. NULL with *err: AG_ECONNECT (cannot bind), AG_ENOMEM. */
ag__srv *ag__srv_new(struct event_base *base, const struct sockaddr *sa, int salen,
                     const ag__srv_limits *lim, const ag__srv_ops *ops, void *app,
                     const ag_alloc_funcs *a, int *err);
int ag__srv_port(const ag__srv *s);
/* Closes every connection (on_close runs for each) and the listener. */
void ag__srv_free(ag__srv *s);
void ag__srv_get_stats(const ag__srv *s, ag__srv_stats *out);

/* ---- the request being served (valid until ag__sconn_finish) ---- */
int ag__sconn_method(const ag__sconn *c);  /* llhttp's enum llhttp_method */
const char *ag__sconn_method_name(const ag__sconn *c);
const char *ag__sconn_url(const ag__sconn *c, size_t *len);
const char *ag__sconn_body(const ag__sconn *c, size_t *len);
/* The body was handed on: its bytes leave the total (max_buffered) now. */
void ag__sconn_release_body(ag__sconn *c);

/* ---- the response ---- */
/* A whole response (HEAD requests get the head only). */
void ag__sconn_send_whole(ag__sconn *c, int status, const char *ctype, const char *body, size_t len);
/* {"error": msg} with status */
void ag__sconn_send_error(ag__sconn *c, int status, const char *msg);
/* A streamed response: the head is held until the first chunk or the end
 * (one write); chunked, or close-delimited for an HTTP/1.0 client. */
void ag__sconn_head_chunked(ag__sconn *c, int status, const char *ctype);
void ag__sconn_chunk(ag__sconn *c, const char *p, size_t n);
void ag__sconn_end_chunked(ag__sconn *c);
int ag__sconn_head_sent(const ag__sconn *c);
int ag__sconn_head_status(const ag__sconn *c);
/* Output waiting for the client (bytes). */
size_t ag__sconn_unsent(const ag__sconn *c);
/* The response is complete: keep the connection for the next request, or
 * close it (HTTP/1.0, "Connection: close", or after a cut answer when
 * keep_alive was cleared with ag__sconn_no_keep_alive). */
void ag__sconn_finish(ag__sconn *c);
void ag__sconn_no_keep_alive(ag__sconn *c);
/* The connection is going away (the client left, or it is being freed). */
int ag__sconn_closing(const ag__sconn *c);
/* The response's body bytes written so far (for the access log). */
uint64_t ag__sconn_resp_bytes(const ag__sconn *c);
/* The client's address as text ("127.0.0.1", "::1"). */
void ag__sconn_peer(const ag__sconn *c, char *out, size_t n);

#endif
