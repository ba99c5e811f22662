/* core/gateway/gateway.c - the gateway's requests: routes, credentials, the
 * body's model, forwarding through the client; the gateway's life cycle.
 *
 * The server engine (transport/server.c) reads and bounds each request; this
 * file decides what it is and answers it: locally (/, /metrics, /dashboard),
 * by one ag_forward() (forward.c), or by a fan-out to every node (fan.c). */
#include <openssl/ssl.h>
#include "core/gateway/gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/util.h>
#include <llhttp.h>
#include <yajl/yajl_parse.h>

#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/json.h"
#include "core/base/mem.h"
#include "core/errclass.h"
#include "core/client_ext.h"

/* ---- status for a request that failed before any byte was sent ---- */
int ag__gw_http_for(ag_gateway *g, const ag_result *res, const char *model) {
    if (res->http_status >= 400) return res->http_status;
    if (res->status == AG_ENONODE) /* the model nowhere, or no node up */
        return model && *model && !ag__pool_may_serve(g->c, model) ? 404 : 503;
    int st = ag__err_http(res->status); /* the error table's status */
    return st ? st : 502;
}

void ag__gw_finish(gconn *gc) {
    ag__obs_finish(gc); /* its log line, figures and spans */
    if (gc->key_taken) ag__gw_key_done(gc, NULL); /* ended without an answer */
    ag__gw_key_hold(gc, NULL);
    gc->deadline = 0;
    gc->auth[0] = gc->node[0] = gc->model[0] = gc->origin[0] = gc->session[0] = 0;
    gc->route = R_NONE;
    gc->stream = gc->v1 = gc->preflight = gc->pull = 0;
    ag__buf_free(gc->g->a, &gc->whole);
    ag__buf_free(gc->g->a, &gc->tail);
    gc->usage_tail = 0;
    gc->whole_status = gc->whole_chunked = 0;
    ag__sconn_finish(gc->sc);
}

/* An error the gateway answers itself: Ollama's shape, or OpenAI's on /v1
 * ({"error":{"message","type","param","code"}}, the types Ollama's own /v1
 * uses) */
/* Anthropic's shape on /v1/messages: {"type":"error","error":{"type","message"}} */
static void send_error_anthropic(gconn *gc, int status, const char *msg) {
    const ag_alloc_funcs *a = gc->g->a;
    const char *type = status == 400 || status == 413 ? "invalid_request_error" : status == 401 ? "authentication_error"
                       : status == 403 ? "permission_error" : status == 404 ? "not_found_error"
                       : status == 429 ? "rate_limit_error" : status == 503 || status == 529 ? "overloaded_error"
                                                                               : "api_error";
    ag__buf q = {0};
    int rc = ag__buf_str(a, &q, "{\"type\":\"error\",\"error\":{\"type\":\"");
    if (!rc) rc = ag__buf_str(a, &q, type);
    if (!rc) rc = ag__buf_str(a, &q, "\",\"message\":");
    if (!rc) rc = ag__buf_json(a, &q, msg, strlen(msg));
    if (!rc) rc = ag__buf_str(a, &q, "}}");
    if (rc) ag__sconn_send_error(gc->sc, 500, "out of memory");
    else ag__sconn_send_whole(gc->sc, status, "application/json; charset=utf-8", q.p, q.len);
    ag__buf_free(a, &q);
}

/* the API family of a request, by its path: Ollama's (0), OpenAI's (1), Anthropic's (2) */
static int family_of(const ag__sconn *sc) {
    size_t ul;
    const char *u = ag__sconn_url(sc, &ul);
    if (ul >= 12 && !memcmp(u, "/v1/messages", 12) && (ul == 12 || u[12] == '/' || u[12] == '?')) return 2;
    return ul >= 4 && !memcmp(u, "/v1/", 4) ? 1 : 0;
}

static void send_error(gconn *gc, int status, const char *msg) {
    snprintf(gc->obs.err, sizeof gc->obs.err, "%s", msg); /* for the access log */
    int fam = family_of(gc->sc);
    if (fam == 2) {
        send_error_anthropic(gc, status, msg);
        return;
    }
    if (!gc->v1 && fam != 1) {
        ag__sconn_send_error(gc->sc, status, msg);
        return;
    }
    const ag_alloc_funcs *a = gc->g->a;
    const char *type = status == 400 ? "invalid_request_error" : status == 404 ? "not_found_error"
                       : status == 429 ? "requests" : status == 401 || status == 403 ? "invalid_request_error" : "api_error";
    ag__buf q = {0};
    int rc = ag__buf_str(a, &q, "{\"error\":{\"message\":");
    if (!rc) rc = ag__buf_json(a, &q, msg, strlen(msg));
    if (!rc) rc = ag__buf_str(a, &q, ",\"type\":\"");
    if (!rc) rc = ag__buf_str(a, &q, type);
    if (!rc) rc = ag__buf_str(a, &q, status == 429   ? "\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}"
                                     : status == 401 ? "\",\"param\":null,\"code\":\"invalid_api_key\"}}"
                                                     : "\",\"param\":null,\"code\":null}}");
    if (rc) ag__sconn_send_error(gc->sc, 500, "out of memory");
    else ag__sconn_send_whole(gc->sc, status, "application/json; charset=utf-8", q.p, q.len);
    ag__buf_free(a, &q);
}

void ag__gw_send_error(gconn *gc, int status, const char *msg) { send_error(gc, status, msg); }

int ag__gw_request_options(gconn *gc, ag_request_options *ro) {
    memset(ro, 0, sizeof *ro);
    ro->headers = ag__obs_node_headers(gc); /* its request id and trace go with it */
    if (gc->session[0]) ro->session = gc->session; /* X-Session-Id: the same node while it can take it */
    if (gc->key) { /* the key's class, and its turn among the class's keys in the pool's queue */
        ro->priority = gc->key->priority;
        ro->tenant = gc->key->name;
    }
    if (gc->deadline > 0) ro->first_token_deadline = gc->deadline; /* X-Request-Deadline: shed past it, not run */
    return 1;
}

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
        IS("/v1/completions") || IS("/v1/embeddings") || IS("/v1/messages") || IS("/v1/messages/count_tokens") ||
        IS("/v1/responses"))
        return post ? R_MODEL : -1; /* (Anthropic's Messages, OpenAI's Responses: forwarded to the nodes, which serve them) */
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

/* the body's top-level "model" (or "name") and "stream", with keys matched
 * as the node's decoder (Go's encoding/json) matches them: without case, the
 * last of several winning. Whatever the gateway checks must be what the node
 * reads, so a body that names one of these fields twice is refused. */
typedef struct bodyscan {
    int depth, key; /* key: 1 model, 2 name, 3 stream, 4 source, 5 destination, 0 other */
    char model[256], name[256], source[256];
    int stream; /* -1 absent */
    int too_long;
    int seen[6]; /* how often each field was named */
} bodyscan;

/* 1 when the object key s (l bytes, decoded) names field (lower-case ASCII
 * letters) as Go matches field names: ASCII letters in either case, and the
 * two letters outside ASCII that fold to ASCII ones (U+017F long s to "s",
 * U+212A Kelvin sign to "k") */
static int key_is(const unsigned char *s, size_t l, const char *field) {
    size_t i = 0;
    for (const char *f = field; *f; f++) {
        if (i >= l) return 0;
        if ((s[i] | 0x20) == (unsigned char)*f) i++;
        else if (*f == 's' && i + 1 < l && s[i] == 0xC5 && s[i + 1] == 0xBF) i += 2;
        else if (*f == 'k' && i + 2 < l && s[i] == 0xE2 && s[i + 1] == 0x84 && s[i + 2] == 0xAA) i += 3;
        else return 0;
    }
    return i == l;
}
static int bs_str(void *ctx, const unsigned char *s, size_t l) {
    bodyscan *b = ctx;
    if (b->depth == 1 && (b->key == 1 || b->key == 2 || b->key == 4)) {
        char *dst = b->key == 1 ? b->model : b->key == 2 ? b->name : b->source;
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
    if (key_is(s, l, "model")) b->key = 1;
    else if (key_is(s, l, "name")) b->key = 2;
    else if (key_is(s, l, "stream")) b->key = 3;
    else if (key_is(s, l, "source")) b->key = 4;
    else if (key_is(s, l, "destination")) b->key = 5;
    b->seen[b->key]++;
    return 1;
}
static int bs_open(void *ctx) { ((bodyscan *)ctx)->depth++; return 1; }
static int bs_close(void *ctx) { ((bodyscan *)ctx)->depth--; return 1; }
static const yajl_callbacks scan_cb = {bs_other, bs_bool, NULL, NULL, bs_num, bs_str,
                                       bs_open, bs_key, bs_close, bs_open, bs_close};

/* the secret the client presented: a Bearer token, or ?token= on the
 * dashboard and metrics routes (a browser cannot send a header there) */
static int presented(gconn *gc, const char *query, size_t qlen, int route, const char **out, size_t *outlen) {
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
    *out = got;
    *outlen = gl;
    return got != NULL;
}

static int token_ok(ag_gateway *g, gconn *gc, const char *query, size_t qlen, int route) {
    if (!g->token) return 1;
    size_t tl = strlen(g->token), gl;
    const char *got;
    if (!presented(gc, query, qlen, route, &got, &gl) || gl != tl) return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < tl; i++) d |= (unsigned char)(got[i] ^ g->token[i]);
    return d == 0;
}

/* the route of the request's path, and its query string */
static int route_here(gconn *gc, const char **query, size_t *qlen, size_t *plen, int *sdef) {
    size_t ul;
    const char *url = ag__sconn_url(gc->sc, &ul);
    const char *qm = memchr(url, '?', ul);
    *plen = qm ? (size_t)(qm - url) : ul;
    *query = qm ? qm + 1 : NULL;
    *qlen = qm ? ul - *plen - 1 : 0;
    return route_of(url, *plen, ag__sconn_method(gc->sc), sdef);
}

/* ---- the server's callbacks ---- */
static void *on_open(void *app, ag__sconn *sc) {
    ag_gateway *g = app;
    gconn *gc = ag__calloc(g->a, sizeof *gc);
    if (!gc) return NULL;
    gc->g = g;
    gc->sc = sc;
    return gc;
}

static int on_header(void *st, const char *f, size_t fl, const char *v, size_t vl, const char **msg) {
    gconn *gc = st;
    ag__obs_header(gc, f, fl, v, vl); /* X-Request-Id, traceparent, tracestate */
    if (fl == 13 && strncasecmp(f, "authorization", 13) == 0 && vl < sizeof gc->auth) {
        memcpy(gc->auth, v, vl);
        gc->auth[vl] = 0;
    } else if (fl == 9 && strncasecmp(f, "x-api-key", 9) == 0 && !gc->auth[0] && vl + 7 < sizeof gc->auth) {
        /* Anthropic's clients send their key so: taken as a Bearer token
         * (an Authorization header, when there is one, wins) */
        memcpy(gc->auth, "Bearer ", 7);
        memcpy(gc->auth + 7, v, vl);
        gc->auth[vl + 7] = 0;
    } else if (fl == 6 && strncasecmp(f, "origin", 6) == 0) {
        if (vl >= sizeof gc->origin) {
            *msg = "Origin value too long";
            return 400;
        }
        memcpy(gc->origin, v, vl);
        gc->origin[vl] = 0;
    } else if (fl == 29 && strncasecmp(f, "access-control-request-method", 29) == 0) {
        gc->preflight = 1;
    } else if (fl == 12 && strncasecmp(f, "x-session-id", 12) == 0) {
        size_t l = vl < sizeof gc->session ? vl : sizeof gc->session - 1; /* a longer key: its prefix */
        memcpy(gc->session, v, l);
        gc->session[l] = 0;
    } else if (fl == 18 && strncasecmp(f, "x-request-deadline", 18) == 0) {
        /* seconds the request may take to start answering: shed (504) past it */
        char num[32];
        while (vl && (*v == ' ' || *v == '\t')) v++, vl--; /* optional whitespace, as HTTP allows around a value */
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
        size_t l = vl < sizeof num - 1 ? vl : sizeof num - 1;
        memcpy(num, v, l);
        num[l] = 0;
        char *e;
        double d = strtod(num, &e);
        if (e == num || *e || !(d > 0) || d > 86400) {
            *msg = "X-Request-Deadline is seconds (above 0, at most 86400)";
            return 400;
        }
        gc->deadline = d;
    } else if (fl == 13 && strncasecmp(f, "x-agents-node", 13) == 0) {
        if (vl >= sizeof gc->node) {
            *msg = "X-Agents-Node value too long";
            return 400;
        }
        memcpy(gc->node, v, vl);
        gc->node[vl] = 0;
    }
    return 0;
}

/* the route is known once the head is, and the credentials are checked
 * before any body byte is read */
static int on_head(void *st, ag__sconn *sc, const char **msg) {
    gconn *gc = st;
    ag__obs_head(gc); /* its id, its trace */
    const char *query;
    size_t qlen;
    gc->route = route_here(gc, &query, &qlen, &gc->plen, &gc->stream_default);
    if (gc->origin[0]) { /* a browser: Ollama's CORS rules */
        if (!ag__gw_origin_ok(gc->g, gc->origin)) {
            *msg = "origin not allowed (see --origins, OLLAMA_ORIGINS)";
            ag__obs_refused(gc, 403, *msg);
            return 403;
        }
        char line[320];
        snprintf(line, sizeof line, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", gc->origin);
        ag__sconn_add_headers(sc, line);
        if (ag__sconn_method(sc) == HTTP_OPTIONS && gc->preflight) {
            gc->route = R_PREFLIGHT; /* no credentials in a preflight */
            return 0;
        }
    }
    ag_gateway *g = gc->g;
    if (!g->token && !g->kt.n) return 0;
    if (g->token && token_ok(g, gc, query, qlen, gc->route)) return 0; /* the single token: no limits */
    if (g->kt.n) {
        const char *got;
        size_t gl;
        gkey *k;
        if (presented(gc, query, qlen, gc->route, &got, &gl) && (k = ag__gw_key_for(g, got, gl))) {
            ag__gw_key_hold(gc, k);
            return 0;
        }
    }
    *msg = "unauthorized: send Authorization: Bearer <token>";
    ag__obs_refused(gc, 401, *msg);
    return 401;
}

static void serve_local(gconn *gc) {
    ag_gateway *g = gc->g;
    ag__sconn *sc = gc->sc;
    switch (gc->route) {
    case R_ROOT:
        ag__sconn_send_whole(sc, 200, "text/plain; charset=utf-8", "Ollama is running", 17);
        break;
    case R_METRICS: {
        struct evbuffer *b = evbuffer_new();
        if (!b) {
            send_error(gc, 500, "out of memory");
            break;
        }
        ag__gw_metrics(g, gc, b);
        size_t l = evbuffer_get_length(b);
        ag__sconn_send_whole(sc, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)evbuffer_pullup(b, -1), l);
        evbuffer_free(b);
        break;
    }
    case R_DASH:
        ag__sconn_send_whole(sc, 200, "text/html; charset=utf-8", ag__dashboard_html, strlen(ag__dashboard_html));
        break;
    default: { /* R_DASH_JSON */
        char *js;
        size_t l;
        if (ag__gw_dash_json(g, gc, &js, &l)) {
            send_error(gc, 500, "out of memory");
            break;
        }
        ag__sconn_send_whole(sc, 200, "application/json; charset=utf-8", js, l);
        ag__free(g->a, js);
    }
    }
    ag__gw_finish(gc);
}

/* pull, push, create, copy, delete, blobs: gc->model is the model named
 * (copy: its source) */
static void dispatch_admin(gconn *gc) {
    ag_gateway *g = gc->g;
    ag__sconn *sc = gc->sc;
    size_t ul;
    const char *url = ag__sconn_url(sc, &ul);
    size_t plen = gc->plen;
    if (ag__gw_openai_only(g)) { /* nothing to send it to: say why */
        send_error(gc, 501, "model management (pull, push, create, copy, delete, blobs) is Ollama's API; "
                            "every node of this gateway speaks the OpenAI-compatible one");
        ag__gw_finish(gc);
        return;
    }
    if (gc->node[0]) { /* pinned: that node only */
        ag__gw_forward(gc, NULL, gc->node);
        return;
    }
    int is_delete = ag__sconn_method(sc) == HTTP_DELETE;
    int is_copy = plen == 9 && memcmp(url, "/api/copy", 9) == 0;
    int is_pull_all = g->opt.pull_all && plen == 9 && memcmp(url, "/api/pull", 9) == 0;
    if (is_delete || is_copy || is_pull_all) { /* every node */
        gc->pull = is_pull_all;
        if (!gc->model[0]) {
            send_error(gc, 400, "model is required");
            ag__gw_finish(gc);
            return;
        }
        ag__gw_fan_admin(gc);
        return;
    }
    /* pull and push: where the pool would send it; create and blobs: the
     * first node that is up, so that a model's blobs and its create meet */
    const char *pin = NULL;
    ag_node_info info[256];
    size_t n = (plen >= 11 && memcmp(url, "/api/create", 11) == 0) || (plen > 11 && memcmp(url, "/api/blobs/", 11) == 0)
                   ? ag_pool_nodes(g->c, info, 256) : 0;
    for (size_t i = 0; i < n && i < 256 && !pin; i++)
        if (info[i].state == AG_NODE_UP || info[i].state == AG_NODE_PROBING) pin = info[i].name;
    char pinned[300] = "";
    if (pin) snprintf(pinned, sizeof pinned, "%s", pin);
    ag__gw_forward(gc, NULL, pinned[0] ? pinned : NULL);
}

static void on_request(void *st, ag__sconn *sc) {
    gconn *gc = st;
    ag_gateway *g = gc->g;
    gc->t_parsed = ag__now_ns();
    ag__sconn_body(sc, &gc->obs.bytes_in);
    size_t plen = gc->plen; /* the route was read with the head (on_head) */
    int sdef = gc->stream_default;
    size_t ul;
    const char *url = ag__sconn_url(sc, &ul);
    gc->v1 = plen >= 4 && memcmp(url, "/v1/", 4) == 0;
    if (gc->route == R_PREFLIGHT) {
        ag__sconn_add_headers(sc, ag__gw_cors_preflight);
        ag__sconn_send_whole(sc, 204, "text/plain", "", 0);
        ag__gw_finish(gc);
        return;
    }
    if (gc->route == R_NONE || gc->route < 0) {
        send_error(gc, gc->route ? 405 : 404, gc->route ? "405 method not allowed" : "404 page not found");
        ag__gw_finish(gc);
        return;
    }
    switch (gc->route) {
    case R_ROOT: case R_METRICS: case R_DASH: case R_DASH_JSON:
        serve_local(gc);
        return;
    case R_TAGS:
        ag__gw_fan(gc, "/api/tags");
        return;
    case R_PS:
        ag__gw_fan(gc, "/api/ps");
        return;
    case R_V1_MODELS:
        ag__gw_fan(gc, "/v1/models");
        return;
    case R_VERSION:
        gc->stream = 0;
        if (ag__gw_openai_only(g)) { /* such nodes have no version: the gateway's */
            char v[64];
            int l = snprintf(v, sizeof v, "{\"version\":\"%s\"}", ag_version());
            ag__sconn_send_whole(sc, 200, "application/json; charset=utf-8", v, (size_t)l);
            ag__gw_finish(gc);
            return;
        }
        ag__gw_forward(gc, NULL, NULL);
        return;
    default:
        break;
    }
    /* routed by the body's model, or to a named node */
    bodyscan bs;
    memset(&bs, 0, sizeof bs);
    bs.stream = -1;
    size_t blen;
    const char *body = ag__sconn_body(sc, &blen);
    if (blen) {
        yajl_alloc_funcs af;
        yajl_handle h = yajl_alloc(&scan_cb, ag__yajl_funcs(g->a, &af), &bs);
        if (!h) {
            send_error(gc, 500, "out of memory");
            ag__gw_finish(gc);
            return;
        }
        yajl_status yst = yajl_parse(h, (const unsigned char *)body, blen);
        if (yst == yajl_status_ok) yst = yajl_complete_parse(h);
        if (yst != yajl_status_ok) {
            unsigned char *e = yajl_get_error(h, 0, NULL, 0);
            char msg[300];
            snprintf(msg, sizeof msg, "invalid JSON in the request body: %s", e ? (const char *)e : "?");
            msg[strcspn(msg, "\n")] = 0;
            if (e) yajl_free_error(h, e);
            yajl_free(h);
            send_error(gc, 400, msg);
            ag__gw_finish(gc);
            return;
        }
        yajl_free(h);
    }
    gc->stream = bs.stream >= 0 ? bs.stream : sdef;
    if (bs.too_long) {
        send_error(gc, 400, "model name too long");
        ag__gw_finish(gc);
        return;
    }
    static const char *const field[] = {"", "model", "name", "stream", "source", "destination"};
    for (int f = 1; f < 6; f++)
        if (bs.seen[f] > 1) {
            char msg[160];
            snprintf(msg, sizeof msg, "the body names \"%s\" more than once (field names are matched without case)",
                     field[f]);
            send_error(gc, 400, msg);
            ag__gw_finish(gc);
            return;
        }
    if (gc->node[0] && !ag__pool_has_node(g->c, gc->node)) {
        char msg[400];
        snprintf(msg, sizeof msg, "no node named \"%s\" (X-Agents-Node; names are listed at /dashboard.json)",
                 gc->node);
        send_error(gc, 400, msg);
        ag__gw_finish(gc);
        return;
    }
    if (gc->route == R_ADMIN) { /* the key's right and limits first (ag__gw_admit), then dispatch_admin */
        snprintf(gc->model, sizeof gc->model, "%s",
                 plen == 9 && memcmp(url, "/api/copy", 9) == 0 ? bs.source : bs.model[0] ? bs.model : bs.name);
        if (ag__gw_admit(gc)) dispatch_admin(gc);
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
        ag__gw_finish(gc);
        return;
    }
    snprintf(gc->model, sizeof gc->model, "%s", model);
    if (ag__gw_admit(gc)) ag__gw_dispatch_model(gc); /* else refused, or waiting for its key's limits */
}

void ag__gw_dispatch_model(gconn *gc) {
    ag_gateway *g = gc->g;
    if (gc->route == R_ADMIN) {
        dispatch_admin(gc);
        return;
    }
    ag__sconn *sc = gc->sc;
    size_t ul;
    const char *url = ag__sconn_url(sc, &ul);
    size_t plen = gc->plen;
    if (plen >= 12 && memcmp(url, "/v1/messages", 12) == 0 && ag__gw_openai_only(g)) { /* Anthropic's, translated */
        ag__gw_translate_messages(gc, plen > 12);
        return;
    }
    if (plen == 13 && memcmp(url, "/v1/responses", 13) == 0 && ag__gw_openai_only(g)) { /* the Responses API, translated */
        ag__gw_translate_responses(gc);
        return;
    }
    if (!gc->v1 && ag__gw_openai_only(g)) { /* Ollama's API from OpenAI-compatible nodes */
        if (ag__gw_translate(gc, url, plen)) return;
        if (plen == 9 && memcmp(url, "/api/show", 9) == 0 && !ag__pool_may_serve(g->c, gc->model)) {
            char msg[400]; /* no node lists it: Ollama's answer for a model it does not have */
            snprintf(msg, sizeof msg, "model '%s' not found", gc->model);
            send_error(gc, 404, msg);
            ag__gw_finish(gc);
            return;
        }
        if (plen == 9 && memcmp(url, "/api/show", 9) == 0) { /* what such a node can say of a model */
            static const char show[] = "{\"modelfile\":\"\",\"parameters\":\"\",\"template\":\"\",\"details\":"
                                       "{\"parent_model\":\"\",\"format\":\"\",\"family\":\"\",\"families\":null,"
                                       "\"parameter_size\":\"\",\"quantization_level\":\"\"},\"model_info\":{},"
                                       "\"capabilities\":[\"completion\"]}";
            ag__sconn_send_whole(sc, 200, "application/json; charset=utf-8", show, sizeof show - 1);
            ag__gw_finish(gc);
            return;
        }
    }
    ag__gw_forward(gc, gc->model, gc->node[0] ? gc->node : NULL);
}

static void on_drain(void *st, ag__sconn *sc) {
    (void)sc;
    gconn *gc = st;
    if (gc->paused && gc->req) {
        gc->paused = 0;
        ag_request_resume(gc->req);
    }
}

static void on_close(void *st, ag__sconn *sc) {
    (void)sc;
    gconn *gc = st;
    if (gc->req || gc->fan || gc->waiting) gc->g->client_aborts++;
    if (gc->req) {
        ag_request *r = gc->req;
        gc->req = NULL;
        ag_request_cancel(r); /* fwd_done sees the connection closing */
    }
    ag__gw_key_gone(gc);
    ag__gw_key_hold(gc, NULL);
    if (gc->fan) {
        fan *f = gc->fan;
        gc->fan = NULL;
        ag__gw_fan_detach(f);
    }
    ag__buf_free(gc->g->a, &gc->whole);
    ag__free(gc->g->a, gc);
}

/* a request the server refuses (its head: 401, 403, 413, 431, ...): in the
 * shape of the request's API family */
static void on_refuse(void *st, ag__sconn *sc, int status, const char *msg) {
    gconn *gc = st;
    (void)sc;
    send_error(gc, status, msg);
}

static const ag__srv_ops gw_ops = {on_open, on_header, on_head, on_request, on_drain, on_close, on_refuse};

/* ---- the gateway ---- */
static SSL_CTX *server_tls(const char *cert, const char *key) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* what a gateway holds besides its server, and itself */
static void gw_release(ag_gateway *g) {
    const ag_alloc_funcs *a = g->a;
    if (g->hi.tick) event_free(g->hi.tick);
    ag__obs_otlp_stop(g);
    if (g->log_fd >= 0) close(g->log_fd);
    ag__free(a, g->log_path);
    ag__free(a, g->hist);
    ag__free(a, g->tok);
    if (g->tls) SSL_CTX_free(g->tls);
    ag__gw_keys_free(g);
    ag__free(a, g->keys_file);
    ag__free(a, g->token);
    ag__free(a, g->origins);
    ag__free(a, g);
}

/* a gateway that could not be made: what it holds so far, freed (NULL) */
static ag_gateway *gw_unmade(ag_gateway *g, int *err, int code) {
    gw_release(g);
    if (code) *err = code;
    return NULL;
}

ag_gateway *ag_gateway_new(struct event_base *base, ag_client *c, const ag_gateway_options *opts,
                           int *err) {
    int e0;
    if (!err) err = &e0;
    if (!base || !c) {
        *err = AG_EINVAL;
        return NULL;
    }
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
    const ag_alloc_funcs *a = ag__client_allocator(c);
    ag_gateway *g = ag__calloc(a, sizeof *g);
    if (!g) {
        *err = AG_ENOMEM;
        return NULL;
    }
    g->base = base;
    g->c = c;
    g->a = a;
    g->t0 = ag__now_ns();
    g->log_fd = -1;
    if (!(g->hist = ag__calloc(a, AG__OBS_SERIES * sizeof *g->hist)) || !(g->tok = ag__calloc(a, AG__OBS_SERIES * sizeof *g->tok)))
        return gw_unmade(g, err, AG_ENOMEM);
    if (o.access_log && (!(g->log_path = ag__strdup(a, o.access_log)) || ag__obs_open_log(g) != 0))
        return gw_unmade(g, err, AG_EINVAL);
    if (o.otlp_endpoint && ag__obs_otlp_start(g, o.otlp_endpoint) != 0) return gw_unmade(g, err, AG_EINVAL);
    o.access_log = o.otlp_endpoint = NULL;
    if (o.token) {
        size_t l = strlen(o.token);
        g->token = ag__malloc(a, l + 1);
        if (!g->token) return gw_unmade(g, err, AG_ENOMEM);
        memcpy(g->token, o.token, l + 1);
    }
    const char *origins = o.origins ? o.origins : getenv("OLLAMA_ORIGINS");
    if (origins && *origins && !(g->origins = ag__strdup(a, origins))) return gw_unmade(g, err, AG_ENOMEM);
    if (o.keys_file) {
        char kerr[300];
        if (!(g->keys_file = ag__strdup(a, o.keys_file)) || ag__gw_keys_load(g, kerr, sizeof kerr) != 0)
            return gw_unmade(g, err, AG_EINVAL);
    }
    o.listen = NULL;
    o.token = NULL;
    o.origins = NULL;
    o.keys_file = NULL;
    if (!!o.tls_cert != !!o.tls_key || (o.tls_cert && !(g->tls = server_tls(o.tls_cert, o.tls_key))))
        return gw_unmade(g, err, AG_ETLS);
    o.tls_cert = o.tls_key = NULL;
    g->opt = o;
    if (!o.max_clients_per_ip) o.max_clients_per_ip = 64;
    ag__srv_limits lim = {.max_clients = o.max_clients, .max_headers = o.max_headers, .max_head = o.max_head,
                          .max_body = o.max_body, .max_buffered = o.max_buffered, .idle_timeout = o.idle_timeout,
                          .request_timeout = o.request_timeout, .send_timeout = o.send_timeout, .tls = g->tls,
                          .max_clients_per_ip = o.max_clients_per_ip > 0 ? (unsigned)o.max_clients_per_ip : 0};
    g->srv = ag__srv_new(base, (struct sockaddr *)&ss, sl, &lim, &gw_ops, g, a, err);
    if (!g->srv) return gw_unmade(g, err, 0); /* (*err set by the server) */
    ag_node_info ni[256]; /* the history counts tokens from now on */
    size_t nn = ag_pool_nodes(c, ni, 256);
    for (size_t i = 0; i < nn && i < 256; i++) g->hi.last_tokens += ni[i].tokens;
    struct timeval sec = {1, 0};
    if (!(g->hi.tick = event_new(base, -1, EV_PERSIST, ag__gw_history_tick, g)) || event_add(g->hi.tick, &sec)) {
        ag__srv_free(g->srv);
        return gw_unmade(g, err, AG_ENOMEM);
    }
    *err = 0;
    return g;
}

int ag_gateway_reopen_logs(ag_gateway *g) {
    return g ? ag__obs_open_log(g) : AG_EINVAL;
}

int ag_gateway_port(const ag_gateway *g) {
    return g ? ag__srv_port(g->srv) : 0;
}

int ag_gateway_reload(ag_gateway *g, char *err, size_t errlen) {
    char tmp[8];
    if (!err) err = tmp, errlen = sizeof tmp;
    if (errlen) err[0] = 0;
    if (!g || !g->keys_file) return AG_EINVAL;
    return ag__gw_keys_load(g, err, errlen);
}

int ag_gateway_reload_start(ag_gateway *g, void (*done)(void *ud, int rc, const char *err), void *ud) {
    return ag__gw_keys_reload_start(g, done, ud);
}

void ag_gateway_free(ag_gateway *g) {
    if (!g) return;
    ag__srv_free(g->srv);
    gw_release(g);
}

void ag_gateway_get_stats(const ag_gateway *g, ag_gateway_stats *out) {
    memset(out, 0, sizeof *out);
    if (!g) return;
    ag__srv_stats s;
    ag__srv_get_stats(g->srv, &s);
    out->accepted = s.accepted;
    out->rejected = s.rejected;
    out->requests = s.requests;
    out->status_2xx = s.status_2xx;
    out->status_4xx = s.status_4xx;
    out->status_5xx = s.status_5xx;
    out->bytes_out = s.bytes_out;
    out->clients = s.clients;
    out->send_timeouts = s.send_timeouts;
    out->accept_errors = s.accept_errors;
    out->buffered = s.buffered;
    out->unsent = s.unsent;
    out->broken_streams = g->broken_streams;
    out->client_aborts = g->client_aborts;
    out->in_flight = g->in_flight;
    out->rejected_per_ip = s.rejected_per_ip;
}
