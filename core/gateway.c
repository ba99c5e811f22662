/* core/gateway.c - Ollama's API served in front of an ag_client.
 *
 * One connection (gconn) per client socket, with llhttp in request mode. A
 * connection moves IDLE -> READING -> SERVING -> IDLE (keep-alive) or
 * CLOSING: requests are handled one at a time, pipelined bytes wait in the
 * input buffer. Serving is either local (/, /metrics, /dashboard), one
 * ag_forward() whose AG_CHUNK_BODY chunks are written to the client as HTTP
 * chunks, or a fan-out to every node whose answers are merged.
 *
 * Teardown is deferred: a connection is marked closing and freed from its
 * own event, never inside a call that may still touch it.
 */
#include "core/internal.h"
#include "core/errclass.h"
#include "core/base/jsondepth.h"
#include "agents/gateway.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <llhttp.h>
#include <yajl/yajl_tree.h>

#define OUT_HIGH (1u << 20) /* pause the upstream request, or stop reading requests, above this much unsent */

typedef struct gconn gconn;
typedef struct fan fan;

enum gphase { G_IDLE, G_READING, G_SERVING, G_CLOSING };
enum groute {
    R_NONE, R_ROOT, R_METRICS, R_DASH, R_DASH_JSON, R_VERSION, R_TAGS, R_PS, R_V1_MODELS,
    R_MODEL,  /* routed by model: chat, generate, embed, show, /v1 */
    R_ADMIN   /* to the node named in X-Agents-Node */
};

struct ag_gateway {
    struct event_base *base;
    ag_client *c;
    ag_gateway_options opt;
    char *token;
    struct evconnlistener *lis;
    int port;
    gconn *conns;
    ag_gateway_stats st;
    int64_t t0;
    struct event accept_retry; /* accept paused after EMFILE: resumes from here */
};

struct gconn {
    ag_gateway *g;
    gconn *next, **prev;
    struct bufferevent *bev;
    llhttp_t parser;
    enum gphase phase;
    struct event timer; /* idle or request deadline */
    struct event kick;  /* deferred: parse pipelined input, or free */
    /* the request being read */
    ag__buf url, body, field, value;
    size_t head_bytes;
    unsigned nheaders;
    int err_status;
    const char *err_msg;
    char auth[512], node[300], model[256];
    int expect_continue, has_host;
    int out_blocked; /* not reading requests until the output drains */
    /* the response */
    int route, stream, v1, keep_alive, http10;
    ag_request *req;
    fan *fan;
    int head_sent, head_status, paused;
    char head[256];
    size_t head_len; /* a head not written yet */
    struct evbuffer *pend; /* written at the end of this batch of callbacks */
    struct event flush;
    int flush_pending;
};

/* ---- small output helpers ---- */
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

static void count_status(ag_gateway *g, int status) {
    if (status < 300) g->st.status_2xx++;
    else if (status < 500) g->st.status_4xx++;
    else g->st.status_5xx++;
}

/* msg as a JSON string value ("..." with every character escaped); its
 * length. A message too long for out is cut first (an escape may take six
 * bytes a byte), so that the value always closes. */
static int json_str(char *out, size_t size, const char *msg) {
    ag__buf q = {0};
    size_t n = strlen(msg);
    int rc = ag__buf_json(NULL, &q, msg, n);
    if (!rc && q.len >= size) { /* cut: at most six bytes out per byte in */
        q.len = 0;
        rc = ag__buf_json(NULL, &q, msg, (size - 3) / 6);
    }
    if (rc) {
        ag__buf_free(NULL, &q);
        return snprintf(out, size, "\"out of memory\"");
    }
    memcpy(out, q.p, q.len + 1);
    int l = (int)q.len;
    ag__buf_free(NULL, &q);
    return l;
}

/* {"error":"msg"}, Ollama's error body; its length */
static int error_json(char *out, size_t size, const char *msg) {
    char q[1100];
    json_str(q, sizeof q, msg);
    int n = snprintf(out, size, "{\"error\":%s}", q);
    return n < (int)size ? n : (int)size - 1;
}

static void gc_finish(gconn *gc);
static void gc_close(gconn *gc);
static void release_body(gconn *gc);

/* A whole response with a known body. */
static void gc_write(gconn *gc, struct iovec *iov, int n);
static void send_whole(gconn *gc, int status, const char *ctype, const char *body, size_t len) {
    char head[400];
    int hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                      status, reason(status), ctype, len, gc->keep_alive ? "" : "Connection: close\r\n");
    struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, len}};
    int head_only = llhttp_get_method(&gc->parser) == HTTP_HEAD;
    gc_write(gc, iov, head_only ? 1 : 2);
    gc->head_sent = 1;
    count_status(gc->g, status);
}

static void send_error(gconn *gc, int status, const char *msg) {
    char b[1200];
    int n = error_json(b, sizeof b, msg);
    send_whole(gc, status, "application/json; charset=utf-8", b, (size_t)n);
}

/* Output is gathered in gc->pend and flushed once the current batch of
 * callbacks is over (one writev for every token that arrived in one read
 * from the node), straight to the socket when nothing waits before it: a
 * bufferevent would first wait a loop turn for writability (three more
 * system calls and a turn of latency). What the socket does not take goes
 * through the bufferevent as usual. */
static void gc_flush(gconn *gc) {
    gc->flush_pending = 0;
    if (evbuffer_get_length(gc->pend) == 0) return;
    struct evbuffer *out = bufferevent_get_output(gc->bev);
    if (evbuffer_get_length(out) == 0) evbuffer_write(gc->pend, bufferevent_getfd(gc->bev));
    if (evbuffer_get_length(gc->pend)) evbuffer_add_buffer(out, gc->pend);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    gconn *gc = arg;
    if (gc->phase != G_CLOSING) gc_flush(gc);
}

static void gc_write(gconn *gc, struct iovec *iov, int n) {
    for (int i = 0; i < n; i++) evbuffer_add(gc->pend, iov[i].iov_base, iov[i].iov_len);
    if (!gc->flush_pending) {
        gc->flush_pending = 1;
        event_active(&gc->flush, EV_TIMEOUT, 1);
    }
}

static void write_chunk(gconn *gc, const char *p, size_t n) {
    if (!n) return;
    char pre[64];
    struct iovec iov[4];
    int k = 0;
    if (gc->head_len) { /* the head goes out with the first chunk */
        iov[k].iov_base = gc->head;
        iov[k++].iov_len = gc->head_len;
    }
    if (!gc->http10) {
        iov[k].iov_base = pre;
        iov[k++].iov_len = (size_t)snprintf(pre, sizeof pre, "%zx\r\n", n);
    }
    iov[k].iov_base = (void *)p;
    iov[k++].iov_len = n;
    if (!gc->http10) {
        iov[k].iov_base = (void *)"\r\n";
        iov[k++].iov_len = 2;
    }
    gc_write(gc, iov, k);
    gc->head_len = 0;
    gc->g->st.bytes_out += n;
}

/* The head is kept until the first chunk (or the end), to go out in one write. */
static void send_head_chunked(gconn *gc, int status, const char *ctype) {
    gc->head_status = status;
    if (gc->http10) gc->keep_alive = 0; /* the body ends when the connection does */
    int n = snprintf(gc->head, sizeof gc->head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s\r\n", status,
                     reason(status), ctype, gc->http10 ? "" : "Transfer-Encoding: chunked\r\n",
                     gc->keep_alive ? "" : "Connection: close\r\n");
    gc->head_len = n > 0 && (size_t)n < sizeof gc->head ? (size_t)n : 0;
    gc->head_sent = 1;
    count_status(gc->g, status);
}

static void end_chunked(gconn *gc) {
    struct iovec iov[2];
    int k = 0;
    if (gc->head_len) {
        iov[k].iov_base = gc->head;
        iov[k++].iov_len = gc->head_len;
        gc->head_len = 0;
    }
    if (!gc->http10) {
        iov[k].iov_base = (void *)"0\r\n\r\n";
        iov[k++].iov_len = 5;
    }
    if (k) gc_write(gc, iov, k);
}

/* ---- status for a request that failed before any byte was sent ---- */
static int http_for(ag_gateway *g, const ag_result *res, const char *model) {
    if (res->http_status >= 400) return res->http_status;
    if (res->status == AG_ENONODE) /* the model nowhere, or no node up */
        return model && *model && !ag__pool_may_serve(g->c, model) ? 404 : 503;
    int st = ag__err_http(res->status); /* the error table's status */
    return st ? st : 502;
}

/* ---- forwarding: one upstream request ---- */
static void fwd_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    (void)req;
    gconn *gc = ud;
    if (gc->phase == G_CLOSING || ch->kind != AG_CHUNK_BODY) return;
    if (!gc->head_sent) {
        int st = ch->index ? ch->index : 200;
        const char *ct = st >= 300 ? "application/json; charset=utf-8"
                         : !gc->stream ? "application/json; charset=utf-8"
                         : gc->v1 ? "text/event-stream"
                         : "application/x-ndjson";
        if (gc->route == R_ADMIN && gc->stream && st < 300) ct = "application/x-ndjson";
        send_head_chunked(gc, st, ct);
    }
    write_chunk(gc, ch->text, ch->len);
    if (!gc->paused && evbuffer_get_length(bufferevent_get_output(gc->bev)) + evbuffer_get_length(gc->pend) > OUT_HIGH) {
        gc->paused = 1; /* a slow client: stop reading the node until it catches up */
        ag_request_pause(gc->req);
    }
}

static void fwd_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    gconn *gc = ud;
    ag_gateway *g = gc->g;
    gc->req = NULL;
    gc->paused = 0;
    if (g->st.in_flight) g->st.in_flight--;
    if (gc->phase == G_CLOSING) return;
    if (!gc->head_sent) {
        if (res->status == 0 && llhttp_get_method(&gc->parser) == HTTP_HEAD) { /* a head, no body */
            send_whole(gc, res->http_status ? res->http_status : 200, "application/json; charset=utf-8", "", 0);
        } else if (res->status == 0) { /* an empty answer */
            send_head_chunked(gc, res->http_status ? res->http_status : 200,
                              "application/json; charset=utf-8");
            end_chunked(gc);
        } else {
            char msg[700];
            int st = http_for(g, res, gc->model);
            if (st == 404 && res->http_status != 404)
                snprintf(msg, sizeof msg, "model \"%s\" not found, try pulling it first", gc->model);
            else
                snprintf(msg, sizeof msg, "%s", res->error ? res->error : ag_strerror(res->status));
            send_error(gc, st, msg);
        }
        gc_finish(gc);
        return;
    }
    if (res->status != 0 && gc->head_status < 300) {
        if (!gc->stream) { /* a whole answer cut short: end the connection, the client sees it broken */
            gc->keep_alive = 0;
            gc_finish(gc);
            return;
        }
        g->st.broken_streams++;
        if (res->status != AG_ESERVER) { /* (else the node's own error line went through) */
            char q[1100], line[1200];
            json_str(q, sizeof q, res->error ? res->error : ag_strerror(res->status));
            /* Ollama's error line, or an SSE event as OpenAI-compatible servers send it */
            int n = gc->v1 ? snprintf(line, sizeof line, "data: {\"error\":{\"message\":%s}}\n\n", q)
                           : snprintf(line, sizeof line, "{\"error\":%s}\n", q);
            write_chunk(gc, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
        }
    }
    end_chunked(gc);
    gc_finish(gc);
}

/* The URL for the node: the query string without a token= parameter (the
 * gateway's own credential is never passed on). */
static void forward_path(gconn *gc, char *path, size_t size) {
    size_t ul = gc->url.len < size - 1 ? gc->url.len : size - 1;
    const char *u = gc->url.p ? gc->url.p : "/";
    const char *qm = memchr(u, '?', ul);
    size_t o = qm ? (size_t)(qm - u) : ul;
    memcpy(path, u, o);
    if (qm) {
        int first = 1;
        for (const char *q = qm + 1; q < u + ul;) {
            const char *amp = memchr(q, '&', (size_t)(u + ul - q));
            size_t pl = amp ? (size_t)(amp - q) : (size_t)(u + ul - q);
            if (pl && !(pl >= 6 && memcmp(q, "token=", 6) == 0)) {
                path[o++] = first ? '?' : '&';
                memcpy(path + o, q, pl);
                o += pl;
                first = 0;
            }
            q = amp ? amp + 1 : u + ul;
        }
    }
    path[o] = 0;
}

static void start_forward(gconn *gc, const char *model, const char *pin) {
    ag_gateway *g = gc->g;
    char path[4200];
    forward_path(gc, path, sizeof path);
    ag_forward_params fp;
    memset(&fp, 0, sizeof fp);
    fp.method = llhttp_method_name(llhttp_get_method(&gc->parser));
    fp.path = path;
    fp.body = gc->body.len ? gc->body.p : NULL;
    fp.body_len = gc->body.len;
    fp.model = model;
    fp.node = pin;
    snprintf(gc->model, sizeof gc->model, "%s", model ? model : "");
    fp.stream = gc->stream;
    ag_callbacks cb = {fwd_chunk, fwd_done, gc};
    int rc = ag_forward(g->c, &fp, &cb, &gc->req);
    release_body(gc); /* the request has its own copy */
    if (rc) {
        ag_result res;
        memset(&res, 0, sizeof res);
        res.status = rc;
        char msg[400];
        snprintf(msg, sizeof msg, "%s", ag_strerror(rc));
        send_error(gc, http_for(g, &res, gc->model), msg);
        gc_finish(gc);
        return;
    }
    g->st.in_flight++;
}

/* ---- fan-out: /api/tags, /api/ps, /v1/models merged over the nodes ---- */
typedef struct fan_part {
    fan *f;
    ag_request *req;
    ag__buf body;
    int ok;
} fan_part;

struct fan {
    gconn *gc; /* NULL once the client is gone */
    const ag_alloc_funcs *a;
    int v1;
    size_t n, pending;
    char last_error[400];
    fan_part parts[];
};

static void fan_free(fan *f) {
    for (size_t i = 0; i < f->n; i++) ag__buf_free(f->a, &f->parts[i].body);
    ag__free(f->a, f);
}

static void tree_gen(yajl_gen y, yajl_val v) {
    if (YAJL_IS_STRING(v)) yajl_gen_string(y, (const unsigned char *)v->u.string, strlen(v->u.string));
    else if (YAJL_IS_NUMBER(v)) yajl_gen_number(y, v->u.number.r, strlen(v->u.number.r));
    else if (YAJL_IS_TRUE(v)) yajl_gen_bool(y, 1);
    else if (YAJL_IS_FALSE(v)) yajl_gen_bool(y, 0);
    else if (YAJL_IS_NULL(v)) yajl_gen_null(y);
    else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(y);
        for (size_t i = 0; i < v->u.array.len; i++) tree_gen(y, v->u.array.values[i]);
        yajl_gen_array_close(y);
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(y);
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_gen_string(y, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            tree_gen(y, v->u.object.values[i]);
        }
        yajl_gen_map_close(y);
    }
}

static void fan_reply(fan *f) {
    gconn *gc = f->gc;
    const char *list_key = f->v1 ? "data" : "models", *id_key = f->v1 ? "id" : "name";
    yajl_val trees[256];
    size_t nt = 0, nok = 0;
    yajl_gen y = yajl_gen_alloc(NULL);
    if (!y) {
        send_error(gc, 500, "out of memory");
        gc_finish(gc);
        return;
    }
    yajl_gen_map_open(y);
    if (f->v1) {
        yajl_gen_string(y, (const unsigned char *)"object", 6);
        yajl_gen_string(y, (const unsigned char *)"list", 4);
    }
    yajl_gen_string(y, (const unsigned char *)list_key, strlen(list_key));
    yajl_gen_array_open(y);
    const char *seen[4096];
    size_t nseen = 0;
    for (size_t i = 0; i < f->n && nt < 256; i++) {
        fan_part *pt = &f->parts[i];
        if (!pt->ok || ag__buf_add(f->a, &pt->body, "", 1)) continue; /* NUL-terminate */
        char eb[128];
        yajl_val root = ag__tree_parse(pt->body.p, eb, sizeof eb);
        if (!root) continue;
        trees[nt++] = root;
        nok++;
        const char *path[] = {list_key, NULL};
        yajl_val arr = yajl_tree_get(root, path, yajl_t_array);
        if (!arr) continue;
        for (size_t k = 0; k < arr->u.array.len; k++) {
            yajl_val m = arr->u.array.values[k];
            const char *ip[] = {id_key, NULL};
            yajl_val id = yajl_tree_get(m, ip, yajl_t_string);
            int dup = 0;
            if (id)
                for (size_t s = 0; s < nseen && !dup; s++) dup = strcmp(seen[s], id->u.string) == 0;
            if (dup) continue;
            if (id && nseen < sizeof seen / sizeof seen[0]) seen[nseen++] = id->u.string;
            tree_gen(y, m);
        }
    }
    yajl_gen_array_close(y);
    yajl_gen_map_close(y);
    if (nok == 0 && f->n > 0) {
        char msg[500];
        snprintf(msg, sizeof msg, "no node answered: %s", f->last_error[0] ? f->last_error : "none is up");
        send_error(gc, 502, msg);
    } else {
        const unsigned char *b;
        size_t l;
        yajl_gen_get_buf(y, &b, &l);
        send_whole(gc, 200, "application/json; charset=utf-8", (const char *)b, l);
        gc->g->st.bytes_out += l;
    }
    yajl_gen_free(y);
    for (size_t i = 0; i < nt; i++) yajl_tree_free(trees[i]);
    gc_finish(gc);
}

static void fan_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    fan_part *pt = ud;
    if (ch->kind != AG_CHUNK_BODY || ch->index >= 300) return;
    if (pt->body.len + ch->len > ((size_t)16 << 20) || ag__buf_add(pt->f->a, &pt->body, ch->text, ch->len))
        ag_request_cancel(req);
}

static void fan_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    fan_part *pt = ud;
    fan *f = pt->f;
    pt->req = NULL;
    pt->ok = res->status == 0 && res->http_status < 300;
    if (!pt->ok && res->error) snprintf(f->last_error, sizeof f->last_error, "%s", res->error);
    if (--f->pending > 0) return;
    gconn *gc = f->gc;
    if (gc) {
        gc->fan = NULL;
        if (gc->phase != G_CLOSING) fan_reply(f);
    }
    fan_free(f);
}

static void start_fan(gconn *gc, const char *path) {
    ag_gateway *g = gc->g;
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n == 0) { /* a one-node client: just forward */
        start_forward(gc, NULL, NULL);
        return;
    }
    if (n > 256) n = 256;
    fan *f = ag__calloc(g->c->alloc, sizeof *f + n * sizeof(fan_part));
    if (!f) {
        send_error(gc, 500, "out of memory");
        gc_finish(gc);
        return;
    }
    f->gc = gc;
    f->a = g->c->alloc;
    f->v1 = gc->route == R_V1_MODELS;
    char names[256][300];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (info[i].state != AG_NODE_EJECTED) snprintf(names[k++], sizeof names[0], "%s", info[i].name);
    gc->fan = f;
    f->pending = 1; /* held while starting, so that no reply goes out midway */
    for (size_t i = 0; i < k; i++) {
        fan_part *pt = &f->parts[f->n];
        pt->f = f;
        ag_forward_params fp;
        memset(&fp, 0, sizeof fp);
        fp.method = "GET";
        fp.path = path;
        fp.node = names[i];
        ag_callbacks cb = {fan_chunk, fan_done, pt};
        if (ag_forward(g->c, &fp, &cb, &pt->req) == 0) {
            f->n++;
            f->pending++;
        }
    }
    if (--f->pending == 0) { /* nothing started */
        gc->fan = NULL;
        fan_reply(f);
        fan_free(f);
    }
}

/* ---- metrics and the dashboard ---- */
static const char *state_name(int s) {
    switch (s) {
    case AG_NODE_PROBING: return "probing";
    case AG_NODE_UP: return "up";
    case AG_NODE_DOWN: return "down";
    default: return "ejected";
    }
}

static void metrics(gconn *gc, struct evbuffer *b) {
    ag_gateway *g = gc->g;
    ag_gateway_stats s;
    ag_gateway_get_stats(g, &s);
    evbuffer_add_printf(b,
        "# HELP agents_gateway_clients Client connections open now.\n# TYPE agents_gateway_clients gauge\n"
        "agents_gateway_clients %u\n"
        "# HELP agents_gateway_in_flight Upstream requests running now.\n# TYPE agents_gateway_in_flight gauge\n"
        "agents_gateway_in_flight %u\n"
        "# HELP agents_gateway_connections_total Client connections accepted.\n# TYPE agents_gateway_connections_total counter\n"
        "agents_gateway_connections_total %llu\n"
        "# HELP agents_gateway_rejected_total Connections turned away at the client limit.\n# TYPE agents_gateway_rejected_total counter\n"
        "agents_gateway_rejected_total %llu\n"
        "# HELP agents_gateway_requests_total Requests parsed.\n# TYPE agents_gateway_requests_total counter\n"
        "agents_gateway_requests_total %llu\n"
        "# HELP agents_gateway_responses_total Responses by status class.\n# TYPE agents_gateway_responses_total counter\n"
        "agents_gateway_responses_total{code=\"2xx\"} %llu\nagents_gateway_responses_total{code=\"4xx\"} %llu\n"
        "agents_gateway_responses_total{code=\"5xx\"} %llu\n"
        "# HELP agents_gateway_broken_streams_total Streams ended with an error line after output.\n# TYPE agents_gateway_broken_streams_total counter\n"
        "agents_gateway_broken_streams_total %llu\n"
        "# HELP agents_gateway_client_aborts_total Clients gone before their answer ended.\n# TYPE agents_gateway_client_aborts_total counter\n"
        "agents_gateway_client_aborts_total %llu\n"
        "# HELP agents_gateway_body_bytes_total Response body bytes sent to clients.\n# TYPE agents_gateway_body_bytes_total counter\n"
        "agents_gateway_body_bytes_total %llu\n",
        s.clients, s.in_flight, (unsigned long long)s.accepted, (unsigned long long)s.rejected,
        (unsigned long long)s.requests, (unsigned long long)s.status_2xx,
        (unsigned long long)s.status_4xx, (unsigned long long)s.status_5xx,
        (unsigned long long)s.broken_streams, (unsigned long long)s.client_aborts,
        (unsigned long long)s.bytes_out);
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n > 256) n = 256;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"agents_node_up", "gauge", "1 when the node is up or not yet probed, 0 when down or ejected."},
        {"agents_node_in_flight", "gauge", "Requests running on the node."},
        {"agents_node_requests_total", "counter", "Attempts sent to the node."},
        {"agents_node_errors_total", "counter", "Attempts that failed through the node's fault."},
        {"agents_node_retries_total", "counter", "Attempts it received as a failover target."},
        {"agents_node_tokens_total", "counter", "Streamed tokens (chunks) it produced."},
        {"agents_node_tokens_per_second", "gauge", "Tokens per second over its busy time."},
        {"agents_node_latency_ewma_seconds", "gauge", "Peak-EWMA latency the router uses."},
        {"agents_node_ttft_seconds", "summary", "Time to first token."},
        {"agents_node_itl_seconds", "summary", "Gap between consecutive tokens."},
        {"agents_node_e2e_seconds", "summary", "Whole request time."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (size_t i = 0; i < n; i++) {
            const ag_node_info *x = &info[i];
            const char *nm = x->name;
            switch (f) {
            case 0: evbuffer_add_printf(b, "%s{node=\"%s\"} %d\n", fam[f].name, nm, x->state <= AG_NODE_UP); break;
            case 1: evbuffer_add_printf(b, "%s{node=\"%s\"} %u\n", fam[f].name, nm, x->in_flight); break;
            case 2: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->requests); break;
            case 3: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->errors); break;
            case 4: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->retries); break;
            case 5: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->tokens); break;
            case 6: evbuffer_add_printf(b, "%s{node=\"%s\"} %.3f\n", fam[f].name, nm, x->tokens_per_s); break;
            case 7: evbuffer_add_printf(b, "%s{node=\"%s\"} %.6f\n", fam[f].name, nm, x->ewma_ms / 1e3); break;
            default: {
                double p50 = f == 8 ? x->ttft_p50_ms : f == 9 ? x->itl_p50_ms : x->e2e_p50_ms;
                double p99 = f == 8 ? x->ttft_p99_ms : f == 9 ? x->itl_p99_ms : x->e2e_p99_ms;
                evbuffer_add_printf(b, "%s{node=\"%s\",quantile=\"0.5\"} %.6f\n%s{node=\"%s\",quantile=\"0.99\"} %.6f\n",
                                    fam[f].name, nm, p50 / 1e3, fam[f].name, nm, p99 / 1e3);
            }
            }
        }
    }
}

static void jstr(yajl_gen y, const char *s) { ag__gen_text(y, s, strlen(s)); }
static void jnum(yajl_gen y, const char *k, double v) {
    jstr(y, k);
    if (!isfinite(v)) v = 0;
    yajl_gen_double(y, v);
}
static void jint(yajl_gen y, const char *k, uint64_t v) {
    jstr(y, k);
    yajl_gen_integer(y, (long long)v);
}

static void dash_json(gconn *gc) {
    ag_gateway *g = gc->g;
    yajl_gen y = yajl_gen_alloc(NULL);
    if (!y) {
        send_error(gc, 500, "out of memory");
        return;
    }
    ag_gateway_stats s;
    ag_gateway_get_stats(g, &s);
    yajl_gen_map_open(y);
    jstr(y, "version");
    jstr(y, AG_VERSION_STRING);
    jnum(y, "uptime_s", (double)(ag__now_ns() - g->t0) / 1e9);
    jstr(y, "gateway");
    yajl_gen_map_open(y);
    jint(y, "clients", s.clients);
    jint(y, "in_flight", s.in_flight);
    jint(y, "connections", s.accepted);
    jint(y, "rejected", s.rejected);
    jint(y, "requests", s.requests);
    jint(y, "status_2xx", s.status_2xx);
    jint(y, "status_4xx", s.status_4xx);
    jint(y, "status_5xx", s.status_5xx);
    jint(y, "broken_streams", s.broken_streams);
    jint(y, "client_aborts", s.client_aborts);
    jint(y, "bytes_out", s.bytes_out);
    yajl_gen_map_close(y);
    ag_pool_stats ps;
    ag_pool_get_stats(g->c, &ps);
    jstr(y, "pool");
    yajl_gen_map_open(y);
    jint(y, "routed", ps.routed);
    jint(y, "retried", ps.retried);
    jint(y, "queued_now", ps.queued_now);
    jint(y, "rejected_queue_full", ps.rejected_queue_full);
    yajl_gen_map_close(y);
    jstr(y, "nodes");
    yajl_gen_array_open(y);
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n > 256) n = 256;
    for (size_t i = 0; i < n; i++) {
        const ag_node_info *x = &info[i];
        yajl_gen_map_open(y);
        jstr(y, "name");
        jstr(y, x->name);
        jstr(y, "state");
        jstr(y, state_name(x->state));
        jstr(y, "version");
        jstr(y, x->version);
        jint(y, "in_flight", x->in_flight);
        jint(y, "max_in_flight", x->max_in_flight);
        jint(y, "requests", x->requests);
        jint(y, "errors", x->errors);
        jint(y, "retries", x->retries);
        jint(y, "tokens", x->tokens);
        jnum(y, "tokens_per_s", x->tokens_per_s);
        jnum(y, "ewma_ms", x->ewma_ms);
        jnum(y, "ttft_p50_ms", x->ttft_p50_ms);
        jnum(y, "ttft_p99_ms", x->ttft_p99_ms);
        jnum(y, "itl_p50_ms", x->itl_p50_ms);
        jnum(y, "itl_p99_ms", x->itl_p99_ms);
        jnum(y, "e2e_p50_ms", x->e2e_p50_ms);
        jnum(y, "e2e_p99_ms", x->e2e_p99_ms);
        jstr(y, "models");
        yajl_gen_array_open(y);
        for (size_t k = 0; k < x->n_models; k++) jstr(y, x->models[k]);
        yajl_gen_array_close(y);
        jstr(y, "loaded");
        yajl_gen_array_open(y);
        for (size_t k = 0; k < x->n_loaded; k++) jstr(y, x->loaded[k]);
        yajl_gen_array_close(y);
        yajl_gen_map_close(y);
    }
    yajl_gen_array_close(y);
    yajl_gen_map_close(y);
    const unsigned char *b;
    size_t l;
    yajl_gen_get_buf(y, &b, &l);
    send_whole(gc, 200, "application/json; charset=utf-8", (const char *)b, l);
    yajl_gen_free(y);
}

extern const char ag__dashboard_html[];

/* ---- the request: route it ---- */
static int route_of(const char *path, size_t n, int method, int *stream_default) {
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(path, lit, n) == 0)
#define PRE(lit) (n >= sizeof(lit) - 1 && memcmp(path, lit, sizeof(lit) - 1) == 0)
    *stream_default = 0;
    int get = method == HTTP_GET || method == HTTP_HEAD, post = method == HTTP_POST;
    if (IS("/")) return get ? R_ROOT : -1;
    if (IS("/metrics")) return get ? R_METRICS : -1;
    if (IS("/dashboard")) return get ? R_DASH : -1;
    if (IS("/dashboard.json")) return get ? R_DASH_JSON : -1;
    if (IS("/api/version")) return get ? R_VERSION : -1;
    if (IS("/api/tags")) return get ? R_TAGS : -1;
    if (IS("/api/ps")) return get ? R_PS : -1;
    if (IS("/v1/models")) return get ? R_V1_MODELS : -1;
    if (IS("/api/chat") || IS("/api/generate")) {
        *stream_default = 1;
        return post ? R_MODEL : -1;
    }
    if (IS("/api/embed") || IS("/api/embeddings") || IS("/api/show") || IS("/v1/chat/completions") ||
        IS("/v1/completions") || IS("/v1/embeddings"))
        return post ? R_MODEL : -1;
    if (IS("/api/pull") || IS("/api/push") || IS("/api/create")) {
        *stream_default = 1;
        return post ? R_ADMIN : -1;
    }
    if (IS("/api/copy")) return post ? R_ADMIN : -1;
    if (IS("/api/delete")) return method == HTTP_DELETE ? R_ADMIN : -1;
    if (PRE("/api/blobs/")) return post || method == HTTP_HEAD ? R_ADMIN : -1;
    if (PRE("/v1/models/")) return get ? R_MODEL : -1; /* "/v1/models/NAME": routed by the name */
    return R_NONE;
#undef IS
#undef PRE
}

/* the body's top-level "model" (or "name") and "stream" */
typedef struct bodyscan {
    int depth, key; /* key: 1 model, 2 name, 3 stream, 0 other */
    char model[256], name[256];
    int stream; /* -1 absent */
    int too_long;
} bodyscan;
static int bs_str(void *ctx, const unsigned char *s, size_t l) {
    bodyscan *b = ctx;
    if (b->depth == 1 && (b->key == 1 || b->key == 2)) {
        char *dst = b->key == 1 ? b->model : b->name;
        if (l >= 256) b->too_long = 1;
        else {
            memcpy(dst, s, l);
            dst[l] = 0;
        }
    }
    return 1;
}
static int bs_bool(void *ctx, int v) {
    bodyscan *b = ctx;
    if (b->depth == 1 && b->key == 3) b->stream = v;
    return 1;
}
static int bs_other(void *ctx) { (void)ctx; return 1; }
static int bs_num(void *ctx, const char *s, size_t l) { (void)ctx; (void)s; (void)l; return 1; }
static int bs_key(void *ctx, const unsigned char *s, size_t l) {
    bodyscan *b = ctx;
    b->key = 0;
    if (b->depth != 1) return 1;
    if (l == 5 && memcmp(s, "model", 5) == 0) b->key = 1;
    else if (l == 4 && memcmp(s, "name", 4) == 0) b->key = 2;
    else if (l == 6 && memcmp(s, "stream", 6) == 0) b->key = 3;
    return 1;
}
static int bs_open(void *ctx) { ((bodyscan *)ctx)->depth++; return 1; }
static int bs_close(void *ctx) { ((bodyscan *)ctx)->depth--; return 1; }
static const yajl_callbacks scan_cb = {bs_other, bs_bool, NULL, NULL, bs_num, bs_str,
                                       bs_open, bs_key, bs_close, bs_open, bs_close};

static int token_ok(ag_gateway *g, gconn *gc, const char *query, size_t qlen, int route) {
    if (!g->token) return 1;
    size_t tl = strlen(g->token);
    const char *got = NULL;
    size_t gl = 0;
    if (strncasecmp(gc->auth, "Bearer ", 7) == 0) {
        got = gc->auth + 7;
        gl = strlen(got);
    } else if ((route == R_DASH || route == R_DASH_JSON || route == R_METRICS) && qlen) {
        for (const char *q = query; q && q < query + qlen;) {
            const char *amp = memchr(q, '&', (size_t)(query + qlen - q));
            size_t pl = amp ? (size_t)(amp - q) : (size_t)(query + qlen - q);
            if (pl > 6 && memcmp(q, "token=", 6) == 0) {
                got = q + 6;
                gl = pl - 6;
            }
            q = amp ? amp + 1 : NULL;
        }
    }
    if (!got || gl != tl) return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < tl; i++) d |= (unsigned char)(got[i] ^ g->token[i]);
    return d == 0;
}

static void dispatch(gconn *gc) {
    ag_gateway *g = gc->g;
    g->st.requests++;
    evtimer_del(&gc->timer);
    gc->phase = G_SERVING;
    gc->keep_alive = llhttp_should_keep_alive(&gc->parser);
    gc->http10 = gc->parser.http_major == 1 && gc->parser.http_minor == 0;
    size_t ul = gc->url.len;
    const char *url = gc->url.p ? gc->url.p : "/";
    const char *qm = memchr(url, '?', ul);
    size_t plen = qm ? (size_t)(qm - url) : ul;
    int method = llhttp_get_method(&gc->parser);
    int sdef;
    gc->route = route_of(url, plen, method, &sdef);
    gc->v1 = plen >= 4 && memcmp(url, "/v1/", 4) == 0;
    if (!token_ok(g, gc, qm ? qm + 1 : NULL, qm ? ul - plen - 1 : 0, gc->route)) {
        send_error(gc, 401, "unauthorized: send Authorization: Bearer <token>");
        gc_finish(gc);
        return;
    }
    if (gc->route == R_NONE) {
        send_error(gc, 404, "404 page not found");
        gc_finish(gc);
        return;
    }
    if (gc->route < 0) {
        send_error(gc, 405, "405 method not allowed");
        gc_finish(gc);
        return;
    }
    switch (gc->route) {
    case R_ROOT:
        send_whole(gc, 200, "text/plain; charset=utf-8", "Ollama is running", 17);
        gc_finish(gc);
        return;
    case R_METRICS: {
        struct evbuffer *b = evbuffer_new();
        if (!b) {
            send_error(gc, 500, "out of memory");
        } else {
            metrics(gc, b);
            size_t l = evbuffer_get_length(b);
            send_whole(gc, 200, "text/plain; version=0.0.4; charset=utf-8",
                       (const char *)evbuffer_pullup(b, -1), l);
            evbuffer_free(b);
        }
        gc_finish(gc);
        return;
    }
    case R_DASH:
        send_whole(gc, 200, "text/html; charset=utf-8", ag__dashboard_html, strlen(ag__dashboard_html));
        gc_finish(gc);
        return;
    case R_DASH_JSON:
        dash_json(gc);
        gc_finish(gc);
        return;
    case R_TAGS:
        start_fan(gc, "/api/tags");
        return;
    case R_PS:
        start_fan(gc, "/api/ps");
        return;
    case R_V1_MODELS:
        start_fan(gc, "/v1/models");
        return;
    case R_VERSION:
        gc->stream = 0;
        start_forward(gc, NULL, NULL);
        return;
    default:
        break;
    }
    /* routed by the body's model, or to a named node */
    bodyscan bs;
    memset(&bs, 0, sizeof bs);
    bs.stream = -1;
    if (gc->body.len) {
        yajl_handle h = yajl_alloc(&scan_cb, NULL, &bs);
        if (!h) {
            send_error(gc, 500, "out of memory");
            gc_finish(gc);
            return;
        }
        yajl_status st = yajl_parse(h, (const unsigned char *)gc->body.p, gc->body.len);
        if (st == yajl_status_ok) st = yajl_complete_parse(h);
        if (st != yajl_status_ok) {
            unsigned char *e = yajl_get_error(h, 0, NULL, 0);
            char msg[300];
            snprintf(msg, sizeof msg, "invalid JSON in the request body: %s", e ? (const char *)e : "?");
            msg[strcspn(msg, "\n")] = 0;
            if (e) yajl_free_error(h, e);
            yajl_free(h);
            send_error(gc, 400, msg);
            gc_finish(gc);
            return;
        }
        yajl_free(h);
    }
    gc->stream = bs.stream >= 0 ? bs.stream : sdef;
    if (bs.too_long) {
        send_error(gc, 400, "model name too long");
        gc_finish(gc);
        return;
    }
    if (gc->node[0] && !ag__pool_has_node(g->c, gc->node)) {
        char msg[400];
        snprintf(msg, sizeof msg, "no node named \"%s\" (X-Agents-Node; names are listed at /dashboard.json)",
                 gc->node);
        send_error(gc, 400, msg);
        gc_finish(gc);
        return;
    }
    if (gc->route == R_ADMIN) {
        if (!gc->node[0]) {
            send_error(gc, 400,
                       "model management goes to one node: name it with the X-Agents-Node header "
                       "(names are listed at /dashboard.json)");
            gc_finish(gc);
            return;
        }
        start_forward(gc, NULL, gc->node);
        return;
    }
    const char *model = bs.model[0] ? bs.model : bs.name;
    if (plen > 11 && memcmp(url, "/v1/models/", 11) == 0) { /* the model is in the path */
        size_t ml = plen - 11;
        if (ml >= sizeof bs.model) ml = sizeof bs.model - 1;
        memcpy(bs.model, url + 11, ml);
        bs.model[ml] = 0;
        model = bs.model;
    }
    if (!*model) {
        send_error(gc, 400, "model is required");
        gc_finish(gc);
        return;
    }
    start_forward(gc, model, gc->node[0] ? gc->node : NULL);
}

/* ---- llhttp: the request ---- */
static llhttp_settings_t srv_settings;
static int srv_ready;

static int limit(gconn *gc, int status, const char *msg) {
    gc->err_status = status;
    gc->err_msg = msg;
    return -1;
}

static int p_begin(llhttp_t *p) {
    gconn *gc = p->data;
    gc->phase = G_READING;
    struct timeval tv = {(long)gc->g->opt.request_timeout,
                         (long)((gc->g->opt.request_timeout - (long)gc->g->opt.request_timeout) * 1e6)};
    evtimer_add(&gc->timer, &tv);
    return 0;
}
static int head_add(gconn *gc, ag__buf *b, const char *at, size_t len, size_t cap) {
    gc->head_bytes += len;
    if (gc->head_bytes > gc->g->opt.max_head) return limit(gc, 431, "request head over the size limit");
    if (b->len + len > cap) return limit(gc, 431, "request head over the size limit");
    if (ag__buf_add(gc->g->c->alloc, b, at, len)) return limit(gc, 500, "out of memory");
    return 0;
}
static int p_url(llhttp_t *p, const char *at, size_t len) {
    gconn *gc = p->data;
    if (gc->url.len + len > 4096) return limit(gc, 414, "request URL too long");
    return head_add(gc, &gc->url, at, len, 4096);
}
static int p_field(llhttp_t *p, const char *at, size_t len) {
    gconn *gc = p->data;
    return head_add(gc, &gc->field, at, len, 256);
}
static int p_value(llhttp_t *p, const char *at, size_t len) {
    gconn *gc = p->data;
    return head_add(gc, &gc->value, at, len, 8192);
}
static int p_value_done(llhttp_t *p) {
    gconn *gc = p->data;
    if (++gc->nheaders > gc->g->opt.max_headers) return limit(gc, 431, "too many request headers");
    size_t fl = gc->field.len, vl = gc->value.len;
    const char *f = gc->field.p ? gc->field.p : "", *v = gc->value.p ? gc->value.p : "";
    if (fl == 13 && strncasecmp(f, "authorization", 13) == 0 && vl < sizeof gc->auth) {
        memcpy(gc->auth, v, vl);
        gc->auth[vl] = 0;
    } else if (fl == 13 && strncasecmp(f, "x-agents-node", 13) == 0) {
        if (vl >= sizeof gc->node) return limit(gc, 400, "X-Agents-Node value too long");
        memcpy(gc->node, v, vl);
        gc->node[vl] = 0;
    } else if (fl == 4 && strncasecmp(f, "host", 4) == 0) {
        gc->has_host = 1;
    } else if (fl == 6 && strncasecmp(f, "expect", 6) == 0 && vl == 12 && strncasecmp(v, "100-continue", 12) == 0) {
        gc->expect_continue = 1;
    }
    gc->field.len = gc->value.len = 0;
    return 0;
}
static int token_ok(ag_gateway *g, gconn *gc, const char *query, size_t qlen, int route);
static int route_of(const char *path, size_t n, int method, int *stream_default);

/* The head is whole: what can be refused is refused now, before any body
 * byte is read (an unauthenticated client cannot make the gateway buffer). */
static int p_headers_done(llhttp_t *p) {
    gconn *gc = p->data;
    if (p->http_major == 1 && p->http_minor >= 1 && !gc->has_host)
        return limit(gc, 400, "missing Host header (required by HTTP/1.1)");
    if (gc->g->token) {
        size_t ul = gc->url.len;
        const char *url = gc->url.p ? gc->url.p : "/";
        const char *qm = memchr(url, '?', ul);
        size_t plen = qm ? (size_t)(qm - url) : ul;
        int sdef;
        int route = route_of(url, plen, llhttp_get_method(p), &sdef);
        if (!token_ok(gc->g, gc, qm ? qm + 1 : NULL, qm ? ul - plen - 1 : 0, route))
            return limit(gc, 401, "unauthorized: send Authorization: Bearer <token>");
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > gc->g->opt.max_body)
        return limit(gc, 413, "request body over the size limit");
    if (gc->expect_continue) evbuffer_add(bufferevent_get_output(gc->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}
static int p_body(llhttp_t *p, const char *at, size_t len) {
    gconn *gc = p->data;
    ag_gateway *g = gc->g;
    if (gc->body.len + len > g->opt.max_body) return limit(gc, 413, "request body over the size limit");
    if (g->st.buffered + len > g->opt.max_buffered)
        return limit(gc, 503, "the gateway holds too many request bytes: try again");
    if (ag__buf_add(g->c->alloc, &gc->body, at, len)) return limit(gc, 500, "out of memory");
    g->st.buffered += len;
    return 0;
}
static int p_done(llhttp_t *p) {
    (void)p;
    return HPE_PAUSED;
}

static void settings_init(void) {
    if (srv_ready) return;
    llhttp_settings_init(&srv_settings);
    srv_settings.on_message_begin = p_begin;
    srv_settings.on_url = p_url;
    srv_settings.on_header_field = p_field;
    srv_settings.on_header_value = p_value;
    srv_settings.on_header_value_complete = p_value_done;
    srv_settings.on_headers_complete = p_headers_done;
    srv_settings.on_body = p_body;
    srv_settings.on_message_complete = p_done;
    srv_ready = 1;
}

/* ---- the connection ---- */
/* A request's body, handed on (ag_forward copies it) or answered: its bytes
 * leave the gateway's total, and a large buffer is given back. */
static void release_body(gconn *gc) {
    ag_gateway *g = gc->g;
    g->st.buffered -= gc->body.len <= g->st.buffered ? gc->body.len : g->st.buffered;
    gc->body.len = 0;
    if (gc->body.cap > 65536) ag__buf_free(g->c->alloc, &gc->body);
}

static void reset_request(gconn *gc) {
    release_body(gc);
    gc->url.len = gc->field.len = gc->value.len = 0;
    gc->head_bytes = 0;
    gc->nheaders = 0;
    gc->auth[0] = gc->node[0] = gc->model[0] = 0;
    gc->expect_continue = gc->has_host = 0;
    gc->route = R_NONE;
    gc->stream = gc->v1 = 0;
    gc->head_sent = gc->head_status = 0;
    gc->head_len = 0;
}

static void arm_idle(gconn *gc) {
    double s = gc->g->opt.idle_timeout;
    struct timeval tv = {(long)s, (long)((s - (long)s) * 1e6)};
    evtimer_add(&gc->timer, &tv);
}

static size_t out_len(gconn *gc) {
    return evbuffer_get_length(bufferevent_get_output(gc->bev)) + evbuffer_get_length(gc->pend);
}

/* Parses what has arrived, while no request is being served. A client that
 * pipelines requests without reading the answers is not read any further
 * once over OUT_HIGH of them wait (write_cb resumes it). */
static void gc_parse(gconn *gc) {
    struct evbuffer *in = bufferevent_get_input(gc->bev);
    while (gc->phase == G_IDLE || gc->phase == G_READING) {
        if (gc->phase == G_IDLE && out_len(gc) > OUT_HIGH) {
            gc->out_blocked = 1;
            bufferevent_disable(gc->bev, EV_READ);
            return;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        enum llhttp_errno e = llhttp_execute(&gc->parser, v.iov_base, v.iov_len);
        size_t used = v.iov_len;
        if (e == HPE_PAUSED) {
            used = (size_t)(llhttp_get_error_pos(&gc->parser) - (const char *)v.iov_base);
            llhttp_resume(&gc->parser);
        }
        evbuffer_drain(in, used);
        if (e == HPE_PAUSED) {
            dispatch(gc);
            continue;
        }
        if (e != HPE_OK) {
            gc->keep_alive = 0;
            gc->phase = G_SERVING;
            if (gc->err_status) {
                send_error(gc, gc->err_status, gc->err_msg);
            } else {
                char msg[300];
                snprintf(msg, sizeof msg, "malformed HTTP request: %s", llhttp_get_error_reason(&gc->parser));
                send_error(gc, 400, msg);
            }
            gc_finish(gc);
            return;
        }
    }
    /* while serving, pipelined bytes wait; too many of them: stop reading */
    if (gc->phase == G_SERVING && evbuffer_get_length(in) > gc->g->opt.max_body + gc->g->opt.max_head)
        bufferevent_disable(gc->bev, EV_READ);
}

static void gc_free(gconn *gc) {
    ag_gateway *g = gc->g;
    const ag_alloc_funcs *a = g->c->alloc;
    gc->phase = G_CLOSING;
    if (gc->req) {
        ag_request *r = gc->req;
        gc->req = NULL;
        ag_request_cancel(r); /* fwd_done sees CLOSING */
    }
    if (gc->fan) {
        fan *f = gc->fan;
        gc->fan = NULL;
        f->gc = NULL;
        f->pending++; /* hold it while cancelling */
        for (size_t i = 0; i < f->n; i++)
            if (f->parts[i].req) ag_request_cancel(f->parts[i].req);
        if (--f->pending == 0) fan_free(f);
    }
    event_del(&gc->timer);
    event_del(&gc->kick);
    event_del(&gc->flush);
    if (gc->pend) evbuffer_free(gc->pend);
    if (gc->prev) {
        *gc->prev = gc->next;
        if (gc->next) gc->next->prev = gc->prev;
    }
    if (g->st.clients) g->st.clients--;
    release_body(gc);
    bufferevent_free(gc->bev);
    ag__buf_free(a, &gc->url);
    ag__buf_free(a, &gc->body);
    ag__buf_free(a, &gc->field);
    ag__buf_free(a, &gc->value);
    ag__free(a, gc);
}

/* Marks the connection for closing; it is freed from its own event. */
static void gc_close(gconn *gc) {
    if (gc->phase == G_CLOSING) return;
    gc->phase = G_CLOSING;
    if (gc->req || gc->fan) gc->g->st.client_aborts++;
    event_active(&gc->kick, EV_TIMEOUT, 1);
}

/* The response is complete (written to the output buffer). */
static void gc_finish(gconn *gc) {
    if (gc->phase == G_CLOSING) return;
    gc_flush(gc);
    if (!gc->keep_alive) {
        gc->phase = G_CLOSING; /* freed once the output has drained (write_cb) */
        bufferevent_disable(gc->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(gc->bev)) == 0) event_active(&gc->kick, EV_TIMEOUT, 1);
        return;
    }
    reset_request(gc);
    gc->phase = G_IDLE;
    arm_idle(gc);
    if (out_len(gc) > OUT_HIGH) { /* write_cb reads on once it drained */
        gc->out_blocked = 1;
        bufferevent_disable(gc->bev, EV_READ);
        return;
    }
    bufferevent_enable(gc->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(gc->bev))) event_active(&gc->kick, EV_TIMEOUT, 1);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    gconn *gc = arg;
    if (gc->phase == G_CLOSING) gc_free(gc);
    else gc_parse(gc);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    gconn *gc = arg;
    if (gc->phase == G_READING) {
        gc->keep_alive = 0;
        gc->phase = G_SERVING;
        send_error(gc, 408, "the request did not arrive in time");
        gc_finish(gc);
    } else if (gc->phase == G_IDLE) {
        gc_close(gc);
    }
}

static void read_cb(struct bufferevent *bev, void *arg) {
    (void)bev;
    gc_parse(arg);
}

static void write_cb(struct bufferevent *bev, void *arg) {
    (void)bev;
    gconn *gc = arg;
    if (gc->phase == G_CLOSING) {
        event_active(&gc->kick, EV_TIMEOUT, 1);
        return;
    }
    if (gc->out_blocked) { /* the client read its answers: read its requests again */
        gc->out_blocked = 0;
        bufferevent_enable(gc->bev, EV_READ);
        event_active(&gc->kick, EV_TIMEOUT, 1);
    }
    if (gc->paused && gc->req) {
        gc->paused = 0;
        ag_request_resume(gc->req);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    gconn *gc = arg;
    if (what & BEV_EVENT_TIMEOUT) { /* its answer waited send_timeout for the client to read */
        gc->g->st.send_timeouts++;
        gc_close(gc);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) gc_close(gc);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
    (void)lis;
    (void)sa;
    (void)salen;
    ag_gateway *g = arg;
    if (g->st.clients >= g->opt.max_clients) {
        static const char busy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            "Content-Length: 30\r\nConnection: close\r\n\r\n{\"error\":\"too many clients\"}\n";
        ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        evutil_closesocket(fd);
        g->st.rejected++;
        g->st.status_5xx++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* a client host that vanished is found even while nothing is written */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
#ifdef TCP_KEEPIDLE
    int idle = 30, intvl = 10, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#endif
    gconn *gc = ag__calloc(g->c->alloc, sizeof *gc);
    if (!gc) {
        evutil_closesocket(fd);
        return;
    }
    gc->g = g;
    gc->bev = bufferevent_socket_new(g->base, fd, BEV_OPT_CLOSE_ON_FREE);
    gc->pend = evbuffer_new();
    if (!gc->bev || !gc->pend) {
        if (gc->bev) bufferevent_free(gc->bev);
        else evutil_closesocket(fd);
        if (gc->pend) evbuffer_free(gc->pend);
        ag__free(g->c->alloc, gc);
        return;
    }
    event_assign(&gc->flush, g->base, -1, 0, flush_cb, gc);
    llhttp_init(&gc->parser, HTTP_REQUEST, &srv_settings);
    gc->parser.data = gc;
    evtimer_assign(&gc->timer, g->base, timer_cb, gc);
    event_assign(&gc->kick, g->base, -1, 0, kick_cb, gc);
    gc->next = g->conns;
    if (g->conns) g->conns->prev = &gc->next;
    g->conns = gc;
    gc->prev = &g->conns;
    g->st.clients++;
    g->st.accepted++;
    gc->phase = G_IDLE;
    gc->keep_alive = 1;
    bufferevent_setcb(gc->bev, read_cb, write_cb, event_cb, gc);
    /* output that makes no progress for send_timeout: the client stopped reading */
    struct timeval wt = {(long)g->opt.send_timeout, (long)((g->opt.send_timeout - (long)g->opt.send_timeout) * 1e6)};
    bufferevent_set_timeouts(gc->bev, NULL, &wt);
    bufferevent_enable(gc->bev, EV_READ | EV_WRITE);
    arm_idle(gc);
}

/* accept() failed. Out of descriptors (EMFILE, ENFILE) the pending
 * connection stays in the backlog and the listener would fire again at once:
 * pause accepting for a moment instead of spinning. */
static void accept_retry_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_gateway *g = arg;
    evconnlistener_enable(g->lis);
}
static void accept_error_cb(struct evconnlistener *lis, void *arg) {
    (void)lis;
    ag_gateway *g = arg;
    int e = EVUTIL_SOCKET_ERROR();
    g->st.accept_errors++;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        evconnlistener_disable(g->lis);
        struct timeval tv = {0, 100000};
        evtimer_add(&g->accept_retry, &tv);
    }
}

/* ---- the gateway ---- */
ag_gateway *ag_gateway_new(struct event_base *base, ag_client *c, const ag_gateway_options *opts,
                           int *err) {
    int e0;
    if (!err) err = &e0;
    if (!base || !c) {
        *err = AG_EINVAL;
        return NULL;
    }
    settings_init();
    ag_gateway_options o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    if (!o.max_clients) o.max_clients = 1024;
    if (!o.max_body) o.max_body = (size_t)64 << 20;
    if (!o.max_head) o.max_head = 16 << 10;
    if (!o.max_headers) o.max_headers = 64;
    if (o.idle_timeout <= 0) o.idle_timeout = 60;
    if (o.request_timeout <= 0) o.request_timeout = 30;
    if (o.send_timeout <= 0) o.send_timeout = 30;
    if (!o.max_buffered) o.max_buffered = (size_t)256 << 20;
    const char *listen = o.listen ? o.listen : "127.0.0.1:11434";
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    /* libevent's parser refuses port 0 ("any free port"): parse it as 1, then clear it */
    char la[300];
    size_t ll = strlen(listen);
    int any_port = ll >= 2 && strcmp(listen + ll - 2, ":0") == 0;
    if (ll >= sizeof la - 1 ||
        snprintf(la, sizeof la, "%.*s%s", (int)(any_port ? ll - 1 : ll), listen, any_port ? "1" : "") < 0 ||
        evutil_parse_sockaddr_port(la, (struct sockaddr *)&ss, &sl) != 0) {
        *err = AG_EINVAL;
        return NULL;
    }
    if (any_port) {
        if (ss.ss_family == AF_INET6) ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        else ((struct sockaddr_in *)&ss)->sin_port = 0;
    }
    if (o.token && (!*o.token || strpbrk(o.token, "\r\n"))) {
        *err = AG_EINVAL;
        return NULL;
    }
    ag_gateway *g = ag__calloc(c->alloc, sizeof *g);
    if (!g) {
        *err = AG_ENOMEM;
        return NULL;
    }
    g->base = base;
    g->c = c;
    g->t0 = ag__now_ns();
    if (o.token) {
        size_t l = strlen(o.token);
        g->token = ag__malloc(c->alloc, l + 1);
        if (!g->token) {
            ag__free(c->alloc, g);
            *err = AG_ENOMEM;
            return NULL;
        }
        memcpy(g->token, o.token, l + 1);
    }
    o.listen = NULL;
    o.token = NULL;
    g->opt = o;
    g->lis = evconnlistener_new_bind(base, accept_cb, g, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
                                     (struct sockaddr *)&ss, sl);
    if (!g->lis) {
        ag__free(c->alloc, g->token);
        ag__free(c->alloc, g);
        *err = AG_ECONNECT;
        return NULL;
    }
    evconnlistener_set_error_cb(g->lis, accept_error_cb);
    evtimer_assign(&g->accept_retry, base, accept_retry_cb, g);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(evconnlistener_get_fd(g->lis), (struct sockaddr *)&bound, &bl) == 0)
        g->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    *err = 0;
    return g;
}

int ag_gateway_port(const ag_gateway *g) {
    return g ? g->port : 0;
}

void ag_gateway_free(ag_gateway *g) {
    if (!g) return;
    event_del(&g->accept_retry);
    evconnlistener_free(g->lis);
    while (g->conns) gc_free(g->conns);
    ag__free(g->c->alloc, g->token);
    ag__free(g->c->alloc, g);
}

void ag_gateway_get_stats(const ag_gateway *g, ag_gateway_stats *out) {
    memset(out, 0, sizeof *out);
    if (!g) return;
    *out = g->st;
    for (gconn *gc = g->conns; gc; gc = gc->next)
        if (gc->phase != G_CLOSING) out->unsent += out_len(gc);
}
