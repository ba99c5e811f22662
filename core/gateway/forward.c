/* core/gateway/forward.c - one request forwarded to one node: ag_forward()'s
 * AG_CHUNK_BODY chunks written to the client as HTTP chunks (or held for a
 * whole answer with its length), the client's backpressure passed up to the
 * node's stream, and the answer's end: its key's figures, an error line
 * after output, or an error answer in the route's shape before any. */
#include "core/gateway/gateway_internal.h"

#include <stdio.h>
#include <string.h>

#include <llhttp.h>

#include "core/base/buf.h"
#include "core/base/mem.h"
#include "core/errclass.h"
#include "core/client_ext.h"

/* the answer's last bytes (at most 8 KiB: a final event or object's usage is in them) */
static void keep_tail(gconn *gc, const char *p, size_t n) {
    const ag_alloc_funcs *a = gc->g->a;
    if (n > 8192) p += n - 8192, n = 8192;
    if (gc->tail.len + n > 8192) { /* drop the oldest bytes */
        size_t drop = gc->tail.len + n - 8192;
        memmove(gc->tail.p, gc->tail.p + drop, gc->tail.len - drop);
        gc->tail.len -= drop;
    }
    ag__buf_add(a, &gc->tail, p, n);
}

/* "name": N after the last "usage" of the tail; -1 when absent */
static int64_t usage_num(const gconn *gc, const char *from, const char *name) {
    size_t nl = strlen(name);
    const char *end = gc->tail.p + gc->tail.len;
    for (const char *q = from; q && q + nl + 2 < end; q++) {
        q = memchr(q, '"', (size_t)(end - q));
        if (!q || q + nl + 2 >= end) break;
        if (memcmp(q + 1, name, nl) == 0 && q[nl + 1] == '"') {
            const char *v = q + nl + 2;
            while (v < end && (*v == ' ' || *v == ':')) v++;
            int64_t x = 0;
            int digits = 0;
            while (v < end && *v >= '0' && *v <= '9' && digits < 15) x = x * 10 + (*v++ - '0'), digits++;
            return digits ? x : -1;
        }
    }
    return -1;
}

/* the usage the answer reported (Anthropic's input_tokens / output_tokens,
 * the Responses API's too), as Ollama's counts in res */
static void tail_usage(const gconn *gc, ag_result *res) {
    if (!gc->tail.p || !gc->tail.len) return;
    const char *last = NULL, *end = gc->tail.p + gc->tail.len;
    for (const char *q = gc->tail.p; q < end; q++) {
        q = memchr(q, '"', (size_t)(end - q));
        if (!q) break;
        if ((size_t)(end - q) >= 7 && memcmp(q, "\"usage\"", 7) == 0) last = q;
    }
    if (!last) return;
    int64_t in = usage_num(gc, last, "input_tokens"), out = usage_num(gc, last, "output_tokens");
    if (in >= 0) res->server.prompt_eval_count = in;
    if (out >= 0) res->server.eval_count = out;
}

static void fwd_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    (void)req;
    gconn *gc = ud;
    ag__sconn *sc = gc->sc;
    if (ag__sconn_closing(sc) || ch->kind != AG_CHUNK_BODY) return;
    if (!gc->stream && !gc->whole_chunked && !ag__sconn_head_sent(sc)) {
        /* a whole answer goes out with its length, as Ollama sends it; one
         * over 1 MiB goes on chunked rather than held */
        gc->whole_status = ch->index ? ch->index : 200;
        if (gc->whole.len + ch->len <= ((size_t)1 << 20)) {
            if (ag__buf_add(gc->g->a, &gc->whole, ch->text, ch->len) == 0) return;
        }
        gc->whole_chunked = 1;
        ag__sconn_head_chunked(sc, gc->whole_status, "application/json; charset=utf-8");
        if (gc->whole.len) ag__sconn_chunk(sc, gc->whole.p, gc->whole.len);
        ag__buf_free(gc->g->a, &gc->whole);
    }
    if (!ag__sconn_head_sent(sc)) {
        int st = ch->index ? ch->index : 200;
        const char *ct = st >= 300 ? "application/json; charset=utf-8"
                         : !gc->stream ? "application/json; charset=utf-8"
                         : gc->v1 ? "text/event-stream"
                         : "application/x-ndjson";
        if (gc->route == R_ADMIN && gc->stream && st < 300) ct = "application/x-ndjson";
        ag__sconn_head_chunked(sc, st, ct);
    }
    ag__sconn_chunk(sc, ch->text, ch->len);
    if (gc->usage_tail) keep_tail(gc, ch->text, ch->len);
    if (!gc->paused && ag__sconn_unsent(sc) > AG__SRV_OUT_HIGH) {
        gc->paused = 1; /* a slow client: stop reading the node until it catches up */
        ag_request_pause(gc->req);
    }
}

/* a failure after output: Ollama's error line, or an SSE event as
 * OpenAI-compatible servers send it */
static void error_line(gconn *gc, const char *msg) {
    const ag_alloc_funcs *a = gc->g->a;
    ag__buf line = {0};
    int rc = ag__buf_str(a, &line, gc->v1 ? "data: {\"error\":{\"message\":" : "{\"error\":");
    if (!rc) rc = ag__buf_json(a, &line, msg, strlen(msg));
    if (!rc) rc = ag__buf_str(a, &line, gc->v1 ? "}}\n\n" : "}\n");
    if (!rc) ag__sconn_chunk(gc->sc, line.p, line.len);
    ag__buf_free(a, &line);
}

static void fwd_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    gconn *gc = ud;
    ag_gateway *g = gc->g;
    ag__sconn *sc = gc->sc;
    gc->req = NULL;
    gc->paused = 0;
    if (g->in_flight) g->in_flight--;
    ag_result withu;
    if (gc->usage_tail) { /* its usage from its last bytes (a whole answer's are in gc->whole) */
        withu = *res;
        if (gc->whole.len) keep_tail(gc, gc->whole.p, gc->whole.len);
        if (res->status == 0) tail_usage(gc, &withu);
        ag__buf_free(g->a, &gc->tail);
        gc->usage_tail = 0;
        res = &withu;
    }
    ag__obs_result(gc, res); /* for its log line, histograms and spans */
    ag__gw_key_done(gc, res); /* its tokens against its key; its waiters go on */
    if (ag__sconn_closing(sc)) return;
    if (!ag__sconn_head_sent(sc) && gc->whole_status && (res->status == 0 || res->http_status >= 400)) {
        /* the whole answer, held: now with its length (a node's error body too) */
        ag__sconn_send_whole(sc, gc->whole_status, "application/json; charset=utf-8", gc->whole.p ? gc->whole.p : "",
                             gc->whole.len);
        ag__gw_finish(gc);
        return;
    }
    if (!ag__sconn_head_sent(sc)) {
        if (res->status == 0 && ag__sconn_method(sc) == HTTP_HEAD) { /* a head, no body */
            ag__sconn_send_whole(sc, res->http_status ? res->http_status : 200, "application/json; charset=utf-8",
                                 "", 0);
        } else if (res->status == 0) { /* an empty answer */
            ag__sconn_head_chunked(sc, res->http_status ? res->http_status : 200, "application/json; charset=utf-8");
            ag__sconn_end_chunked(sc);
        } else {
            char msg[700];
            int st = ag__gw_http_for(g, res, gc->model);
            if (st == 404 && res->http_status != 404)
                snprintf(msg, sizeof msg, "model \"%s\" not found, try pulling it first", gc->model);
            else
                snprintf(msg, sizeof msg, "%s", res->error ? res->error : ag_strerror(res->status));
            ag__gw_send_error(gc, st, msg);
        }
        ag__gw_finish(gc);
        return;
    }
    if (res->status != 0 && ag__sconn_head_status(sc) < 300) {
        if (!gc->stream) { /* a whole answer cut short: end the connection, the client sees it broken */
            ag__sconn_no_keep_alive(sc);
            ag__gw_finish(gc);
            return;
        }
        g->broken_streams++;
        if (res->status != AG_ESERVER) /* (else the node's own error line went through) */
            error_line(gc, res->error ? res->error : ag_strerror(res->status));
    }
    ag__sconn_end_chunked(sc);
    ag__gw_finish(gc);
}

/* The URL for the node: the query string without a token= parameter (the
 * gateway's own credential is never passed on). */
static void forward_path(gconn *gc, char *path, size_t size) {
    size_t ul;
    const char *u = ag__sconn_url(gc->sc, &ul);
    if (ul > size - 1) ul = size - 1;
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

void ag__gw_forward(gconn *gc, const char *model, const char *pin) {
    ag_gateway *g = gc->g;
    char path[4200];
    forward_path(gc, path, sizeof path);
    ag_forward_params fp;
    memset(&fp, 0, sizeof fp);
    fp.method = ag__sconn_method_name(gc->sc);
    fp.path = path;
    fp.body = ag__sconn_body(gc->sc, &fp.body_len);
    fp.model = model;
    fp.node = pin;
    if (model != gc->model) snprintf(gc->model, sizeof gc->model, "%s", model ? model : "");
    fp.stream = gc->stream;
    /* Anthropic's Messages and the Responses API go undecoded: their usage is read from their end */
    gc->usage_tail = !strcmp(path, "/v1/messages") || !strcmp(path, "/v1/responses");
    ag_request_options ro;
    if (ag__gw_request_options(gc, &ro)) fp.request = &ro;
    ag_callbacks cb = {fwd_chunk, fwd_done, gc};
    int rc = ag_forward(g->c, &fp, &cb, &gc->req);
    ag__sconn_release_body(gc->sc); /* the request has its own copy */
    if (rc) {
        ag_result res;
        memset(&res, 0, sizeof res);
        res.status = rc;
        ag__gw_send_error(gc, ag__gw_http_for(g, &res, gc->model), ag_strerror(rc));
        ag__gw_finish(gc);
        return;
    }
    g->in_flight++;
}

