/* core/gateway/observe.c - what an operator sees of each request: its id
 * (X-Request-Id, taken or made, sent to the node and returned), its trace
 * (W3C traceparent/tracestate taken or started; each attempt a span of its
 * own, the pool rewriting the parent id per attempt), a JSON line in the
 * access log, its figures in the histograms of /metrics, and its spans
 * exported as OTLP/HTTP JSON to a collector, batched, from a bounded queue
 * that drops (and counts) rather than wait. */
#include "core/gateway/gateway_internal.h"
#include "core/base/clock.h"
#include "agents/version.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

/* ---- ids ---- */
static void hex_random(char *out, size_t bytes) {
    static const char hx[] = "0123456789abcdef";
    unsigned char b[16];
    do evutil_secure_rng_get_bytes(b, bytes);
    while (bytes == 8 ? !(b[0] | b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7]) : 0);
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * bytes] = 0;
}

static int is_hex(const char *s, size_t n) {
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

static int64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ag__obs_header(gconn *gc, const char *f, size_t fl, const char *v, size_t vl) {
    gobs *o = &gc->obs;
    while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (fl == 12 && strncasecmp(f, "x-request-id", 12) == 0) {
        /* a client's id is kept when it is short and plain (it goes into headers and logs) */
        if (vl == 0 || vl >= sizeof o->rid) return;
        for (size_t i = 0; i < vl; i++)
            if (v[i] <= ' ' || v[i] > '~' || v[i] == '"' || v[i] == '\\') return;
        memcpy(o->rid, v, vl);
        o->rid[vl] = 0;
    } else if (fl == 11 && strncasecmp(f, "traceparent", 11) == 0) {
        /* version-traceid-parentid-flags; a version we do not know is read
         * for its first four fields, as the W3C spec says; ff is invalid */
        if (vl < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (vl > 55 && v[55] != '-')) return;
        if (!is_hex(v, 2) && !(v[0] == '0' && v[1] == '0')) return;
        if ((v[0] == 'f' && v[1] == 'f') || (v[0] == '0' && v[1] == '0' && vl != 55)) return;
        if (!is_hex(v + 3, 32) || !is_hex(v + 36, 16)) return;
        if (!((v[53] >= '0' && v[53] <= '9') || (v[53] >= 'a' && v[53] <= 'f')) ||
            !((v[54] >= '0' && v[54] <= '9') || (v[54] >= 'a' && v[54] <= 'f')))
            return;
        memcpy(o->trace, v + 3, 32);
        o->trace[32] = 0;
        memcpy(o->parent, v + 36, 16);
        o->parent[16] = 0;
        o->flags[0] = v[53], o->flags[1] = v[54], o->flags[2] = 0;
    } else if (fl == 10 && strncasecmp(f, "tracestate", 10) == 0) {
        if (vl >= sizeof o->tracestate) return; /* (512 bytes at most, as the spec allows) */
        for (size_t i = 0; i < vl; i++)
            if (v[i] < ' ' || v[i] > '~') return;
        memcpy(o->tracestate, v, vl);
        o->tracestate[vl] = 0;
    }
}

/* the head is whole: ids made where the client sent none, the request id returned */
void ag__obs_head(gconn *gc) {
    gobs *o = &gc->obs;
    o->t0 = ag__now_ns();
    o->wall0 = wall_ns();
    if (!o->rid[0]) hex_random(o->rid, 16);
    if (!o->trace[0]) { /* no trace came: this request starts one */
        hex_random(o->trace, 16);
        o->parent[0] = 0;
        memcpy(o->flags, "01", 3);
    }
    hex_random(o->span, 8); /* the gateway's own span */
    char line[128];
    snprintf(line, sizeof line, "X-Request-Id: %s\r\n", o->rid);
    ag__sconn_add_headers(gc->sc, line);
}

const char *ag__obs_node_headers(gconn *gc) {
    gobs *o = &gc->obs;
    /* the pool writes each attempt's own span id over the parent id given here */
    int n = snprintf(o->hdrs, sizeof o->hdrs, "X-Request-Id: %s\ntraceparent: 00-%s-%s-%s", o->rid, o->trace, o->span,
                     o->flags);
    if (o->tracestate[0] && n > 0 && (size_t)n < sizeof o->hdrs)
        snprintf(o->hdrs + n, sizeof o->hdrs - (size_t)n, "\ntracestate: %s", o->tracestate);
    return o->hdrs;
}

void ag__obs_result(gconn *gc, const ag_result *res) {
    gobs *o = &gc->obs;
    o->have = 1;
    o->status = res->status;
    snprintf(o->err, sizeof o->err, "%s", res->status ? (res->error ? res->error : ag_strerror(res->status)) : "");
    o->ntries = 0;
    for (size_t i = 0; i < res->n_tries && i < 8; i++) {
        const ag_attempt *t = &res->tries[i];
        struct gtry *x = &o->tries[o->ntries++];
        snprintf(x->node, sizeof x->node, "%s", t->node ? t->node : "");
        x->status = t->status;
        x->http = t->http_status;
        x->start_ms = t->start_ms;
        x->end_ms = t->end_ms;
        snprintf(x->span, sizeof x->span, "%s", t->span_id ? t->span_id : "");
    }
    o->ttft_ms = res->timing.ttft_ns >= 0 && res->timing.chunks > 0 ? res->timing.ttft_ns / 1e6 : -1;
    o->itl_ms = res->timing.chunks > 1 ? res->timing.itl_mean_ns / 1e6 : -1;
    o->tok_in = res->server.prompt_eval_count;
    o->tok_out = res->server.eval_count;
    o->e2e_ms = res->timing.e2e_ns / 1e6;
}

/* ---- the access log: one JSON line a request, one write(2) each ---- */
int ag__obs_open_log(ag_gateway *g) {
    if (!g->log_path) return 0;
    int fd = !strcmp(g->log_path, "-") ? dup(1) : open(g->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return AG_EINVAL;
    if (g->log_fd >= 0) close(g->log_fd);
    g->log_fd = fd;
    g->log_err = 0;
    return 0;
}

static void jkey(const ag_alloc_funcs *a, ag__buf *b, const char *k, int first) {
    ag__buf_str(a, b, first ? "\"" : ",\"");
    ag__buf_str(a, b, k);
    ag__buf_str(a, b, "\":");
}
static void jstr(const ag_alloc_funcs *a, ag__buf *b, const char *k, const char *v) {
    jkey(a, b, k, 0);
    ag__buf_json(a, b, v ? v : "", v ? strlen(v) : 0);
}
static void jnum(const ag_alloc_funcs *a, ag__buf *b, const char *k, double v, int decimals) {
    char n[48];
    jkey(a, b, k, 0);
    if (decimals < 0) snprintf(n, sizeof n, "%lld", (long long)v);
    else snprintf(n, sizeof n, "%.*f", decimals, v);
    ag__buf_str(a, b, n);
}

static void iso_time(int64_t wall, char *out, size_t n) {
    time_t s = (time_t)(wall / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t l = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + l, n - l, ".%03dZ", (int)(wall / 1000000 % 1000));
}

static void access_line(gconn *gc, int status, double dur_ms) {
    if (!status) status = 499; /* the client left before any answer (nginx's code for it) */
    ag_gateway *g = gc->g;
    const ag_alloc_funcs *a = g->a;
    gobs *o = &gc->obs;
    ag__buf b = {0};
    char t[40], peer[64];
    iso_time(o->wall0, t, sizeof t);
    ag__sconn_peer(gc->sc, peer, sizeof peer);
    size_t ul, bl;
    const char *url = ag__sconn_url(gc->sc, &ul);
    char path[512];
    size_t pl = gc->plen < ul ? gc->plen : ul;
    if (pl >= sizeof path) pl = sizeof path - 1;
    memcpy(path, url, pl); /* the path only: a query may carry a token */
    path[pl] = 0;
    ag__sconn_body(gc->sc, &bl);
    ag__buf_str(a, &b, "{");
    jkey(a, &b, "time", 1);
    ag__buf_json(a, &b, t, strlen(t));
    jstr(a, &b, "request_id", o->rid);
    jstr(a, &b, "trace_id", o->trace);
    jstr(a, &b, "span_id", o->span);
    jstr(a, &b, "client", peer);
    jstr(a, &b, "key", gc->key ? gc->key->name : "");
    jstr(a, &b, "method", ag__sconn_method_name(gc->sc));
    jstr(a, &b, "path", path);
    jstr(a, &b, "model", gc->model);
    jnum(a, &b, "status", status, -1);
    jnum(a, &b, "bytes_in", (double)o->bytes_in, -1);
    jnum(a, &b, "bytes_out", (double)ag__sconn_resp_bytes(gc->sc), -1);
    jnum(a, &b, "duration_ms", dur_ms, 3);
    if (o->have) {
        jnum(a, &b, "queue_ms", o->ntries ? o->tries[0].start_ms : 0, 3);
        if (o->ttft_ms >= 0) jnum(a, &b, "ttft_ms", o->ttft_ms, 3);
        if (o->tok_in >= 0) jnum(a, &b, "tokens_in", (double)o->tok_in, -1);
        if (o->tok_out >= 0) jnum(a, &b, "tokens_out", (double)o->tok_out, -1);
        jkey(a, &b, "attempts", 0);
        ag__buf_str(a, &b, "[");
        for (int i = 0; i < o->ntries; i++) {
            const struct gtry *x = &o->tries[i];
            ag__buf_str(a, &b, i ? ",{" : "{");
            jkey(a, &b, "node", 1);
            ag__buf_json(a, &b, x->node, strlen(x->node));
            jstr(a, &b, "outcome", x->status ? ag_err_name(x->status) : "ok");
            if (x->http) jnum(a, &b, "http_status", x->http, -1);
            jnum(a, &b, "start_ms", x->start_ms, 3);
            jnum(a, &b, "end_ms", x->end_ms, 3);
            ag__buf_str(a, &b, "}");
        }
        ag__buf_str(a, &b, "]");
        if (o->status) {
            jstr(a, &b, "error_code", ag_err_name(o->status));
            jstr(a, &b, "error", o->err);
        }
    } else if (status >= 400 && o->err[0]) {
        jstr(a, &b, "error", o->err);
    }
    ag__buf_str(a, &b, "}\n");
    if (b.p && !g->log_err) {
        ssize_t w = write(g->log_fd, b.p, b.len);
        if (w != (ssize_t)b.len) g->log_err = errno ? errno : EIO; /* said once, in the stats */
    }
    if (b.p) g->log_lines++;
    ag__buf_free(a, &b);
}

/* ---- histograms for /metrics: per (node, model), seconds ---- */
static const double bounds[AG__OBS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

static ghist *series(ag_gateway *g, const char *node, const char *model) {
    for (size_t i = 0; i < g->nhist; i++)
        if (!strcmp(g->hist[i].node, node) && !strcmp(g->hist[i].model, model)) return &g->hist[i];
    if (g->nhist == AG__OBS_SERIES) { /* the table is full: into one series for the rest */
        for (size_t i = 0; i < g->nhist; i++)
            if (!strcmp(g->hist[i].node, "other") && !strcmp(g->hist[i].model, "other")) return &g->hist[i];
        node = model = "other";
        ghist *h = &g->hist[g->nhist - 1];
        memset(h, 0, sizeof *h);
        snprintf(h->node, sizeof h->node, "other");
        snprintf(h->model, sizeof h->model, "other");
        return h;
    }
    ghist *h = &g->hist[g->nhist++];
    memset(h, 0, sizeof *h);
    snprintf(h->node, sizeof h->node, "%s", node);
    snprintf(h->model, sizeof h->model, "%s", model);
    return h;
}

static void observe(struct gbuckets *b, double secs) {
    if (secs < 0) return;
    for (int i = 0; i < AG__OBS_BUCKETS; i++)
        if (secs <= bounds[i]) b->le[i]++;
    b->count++;
    b->sum += secs;
}

static gtok *tok_series(ag_gateway *g, const char *key, const char *model) {
    for (size_t i = 0; i < g->ntok; i++)
        if (!strcmp(g->tok[i].key, key) && !strcmp(g->tok[i].model, model)) return &g->tok[i];
    if (g->ntok == AG__OBS_SERIES) return NULL;
    gtok *t = &g->tok[g->ntok++];
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", key);
    snprintf(t->model, sizeof t->model, "%s", model);
    return t;
}

static void escape_label(struct evbuffer *b, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') evbuffer_add_printf(b, "\\%c", *s);
        else if (*s == '\n') evbuffer_add(b, "\\n", 2);
        else evbuffer_add(b, s, 1);
    }
}

void ag__obs_metrics(ag_gateway *g, const gkey *only, struct evbuffer *b) {
    static const struct {
        const char *name, *help;
    } fam[4] = {{"agents_request_ttft_seconds", "Time to first token, per node and model (an attempt's node)."},
                {"agents_request_itl_seconds", "A request's mean gap between tokens, per node and model."},
                {"agents_request_queue_seconds", "Time from arrival to the first attempt's start (the pool's queue)."},
                {"agents_request_duration_seconds", "Whole request time at the gateway, per node and model."}};
    for (int f = 0; f < 4; f++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", fam[f].name, fam[f].help, fam[f].name);
        for (size_t i = 0; i < g->nhist; i++) {
            const struct gbuckets *x = &g->hist[i].h[f];
            for (int k = 0; k <= AG__OBS_BUCKETS; k++) {
                evbuffer_add_printf(b, "%s_bucket{node=\"", fam[f].name);
                escape_label(b, g->hist[i].node);
                evbuffer_add_printf(b, "\",model=\"");
                escape_label(b, g->hist[i].model);
                if (k < AG__OBS_BUCKETS) evbuffer_add_printf(b, "\",le=\"%g\"} %llu\n", bounds[k], (unsigned long long)x->le[k]);
                else evbuffer_add_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)x->count);
            }
            for (int k = 0; k < 2; k++) {
                evbuffer_add_printf(b, "%s_%s{node=\"", fam[f].name, k ? "count" : "sum");
                escape_label(b, g->hist[i].node);
                evbuffer_add_printf(b, "\",model=\"");
                escape_label(b, g->hist[i].model);
                if (k) evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)x->count);
                else evbuffer_add_printf(b, "\"} %.6f\n", x->sum);
            }
        }
    }
    evbuffer_add_printf(b, "# HELP agents_tokens_total Tokens the nodes reported, by key and model.\n"
                           "# TYPE agents_tokens_total counter\n");
    for (size_t i = 0; i < g->ntok; i++)
        for (int k = 0; k < 2 && (!only || !strcmp(only->name, g->tok[i].key)); k++) { /* a key sees its own */
            evbuffer_add_printf(b, "agents_tokens_total{key=\"");
            escape_label(b, g->tok[i].key);
            evbuffer_add_printf(b, "\",model=\"");
            escape_label(b, g->tok[i].model);
            evbuffer_add_printf(b, "\",direction=\"%s\"} %llu\n", k ? "out" : "in",
                                (unsigned long long)(k ? g->tok[i].out : g->tok[i].in));
        }
    evbuffer_add_printf(b, "# HELP agents_access_log_lines_total Lines written to the access log.\n"
                           "# TYPE agents_access_log_lines_total counter\nagents_access_log_lines_total %llu\n"
                           "# HELP agents_otlp_spans_exported_total Spans the collector took.\n"
                           "# TYPE agents_otlp_spans_exported_total counter\nagents_otlp_spans_exported_total %llu\n"
                           "# HELP agents_otlp_spans_dropped_total Spans dropped: the queue full, or the collector slow or down.\n"
                           "# TYPE agents_otlp_spans_dropped_total counter\nagents_otlp_spans_dropped_total %llu\n",
                        (unsigned long long)g->log_lines, (unsigned long long)g->otlp.exported,
                        (unsigned long long)g->otlp.dropped);
}

/* ---- OTLP/HTTP JSON export ---- */
#define OTLP_QUEUE 4096 /* spans waiting; more are dropped */
#define OTLP_BATCH 512  /* spans a request */

static void otlp_flush(ag_gateway *g);

static void otlp_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    ag_gateway *g = ud;
    g->otlp.req = NULL;
    if (res->status == 0 && res->http_status >= 200 && res->http_status < 300) g->otlp.exported += g->otlp.sending;
    else {
        g->otlp.dropped += g->otlp.sending;
        g->otlp.failures++;
    }
    g->otlp.sending = 0;
    ag__buf_free(g->a, &g->otlp.body);
    if (g->otlp.n >= OTLP_BATCH && !g->otlp.stopping) otlp_flush(g);
}

static void otlp_flush(ag_gateway *g) {
    if (g->otlp.req || !g->otlp.n || !g->otlp.c || g->otlp.stopping) return;
    const ag_alloc_funcs *a = g->a;
    ag__buf *b = &g->otlp.body;
    b->len = 0;
    ag__buf_str(a, b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"agents-gateway\"}},"
                      "{\"key\":\"service.version\",\"value\":{\"stringValue\":\"" AG_VERSION_STRING "\"}}]},"
                      "\"scopeSpans\":[{\"scope\":{\"name\":\"agents\",\"version\":\"" AG_VERSION_STRING "\"},\"spans\":[");
    /* up to a batch of whole spans from the queue (each a JSON object, NUL-separated) */
    size_t take = 0, off = 0;
    while (take < g->otlp.n && take < OTLP_BATCH) {
        const char *s = g->otlp.q.p + off;
        size_t l = strlen(s);
        if (take) ag__buf_str(a, b, ",");
        ag__buf_add(a, b, s, l);
        off += l + 1;
        take++;
    }
    ag__buf_str(a, b, "]}]}]}");
    memmove(g->otlp.q.p, g->otlp.q.p + off, g->otlp.q.len - off);
    g->otlp.q.len -= off;
    g->otlp.n -= take;
    if (!b->p) { /* out of memory: the batch is lost */
        g->otlp.dropped += take;
        return;
    }
    ag_forward_params fp;
    memset(&fp, 0, sizeof fp);
    fp.method = "POST";
    fp.path = g->otlp.path;
    fp.body = b->p;
    fp.body_len = b->len;
    ag_callbacks cb = {NULL, otlp_done, g};
    g->otlp.sending = take;
    if (ag_forward(g->otlp.c, &fp, &cb, &g->otlp.req) != 0) {
        g->otlp.req = NULL;
        g->otlp.dropped += take;
        g->otlp.sending = 0;
    }
}

static void otlp_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    otlp_flush(arg);
}

int ag__obs_otlp_start(ag_gateway *g, const char *e) {
    if (!e) return 0;
    /* http://host:port[/path]: the path is where spans go (default /v1/traces) */
    const char *hs = strstr(e, "://");
    hs = hs ? hs + 3 : e;
    const char *slash = strchr(hs, '/');
    char host[512];
    snprintf(host, sizeof host, "%.*s", (int)(slash ? (size_t)(slash - e) : strlen(e)), e);
    snprintf(g->otlp.path, sizeof g->otlp.path, "%s", slash && slash[1] ? slash : "/v1/traces");
    ag_client_options co;
    memset(&co, 0, sizeof co);
    co.host = host;
    co.connect_timeout = 2;
    co.first_byte_timeout = 5; /* a slow collector costs spans, never requests */
    co.idle_timeout = 5;
    co.max_connections = 1;
    int err;
    g->otlp.c = ag_client_new(g->base, &co, &err);
    if (!g->otlp.c) return err;
    g->otlp.tick = event_new(g->base, -1, EV_PERSIST, otlp_tick, g);
    struct timeval tv = {1, 0};
    if (!g->otlp.tick || event_add(g->otlp.tick, &tv)) return AG_ENOMEM;
    return 0;
}

void ag__obs_otlp_stop(ag_gateway *g) {
    g->otlp.stopping = 1;
    if (g->otlp.tick) event_free(g->otlp.tick);
    g->otlp.tick = NULL;
    if (g->otlp.c) ag_client_free(g->otlp.c); /* a batch on its way ends here (its done runs: counted as dropped) */
    g->otlp.c = NULL;
    ag__buf_free(g->a, &g->otlp.q);
    ag__buf_free(g->a, &g->otlp.body);
}

static void span_attr_s(const ag_alloc_funcs *a, ag__buf *b, const char *k, const char *v, int first) {
    ag__buf_str(a, b, first ? "{\"key\":\"" : ",{\"key\":\"");
    ag__buf_str(a, b, k);
    ag__buf_str(a, b, "\",\"value\":{\"stringValue\":");
    ag__buf_json(a, b, v, strlen(v));
    ag__buf_str(a, b, "}}");
}
static void span_attr_i(const ag_alloc_funcs *a, ag__buf *b, const char *k, long long v) {
    char n[40];
    snprintf(n, sizeof n, "%lld", v);
    ag__buf_str(a, b, ",{\"key\":\"");
    ag__buf_str(a, b, k);
    ag__buf_str(a, b, "\",\"value\":{\"intValue\":\"");
    ag__buf_str(a, b, n);
    ag__buf_str(a, b, "\"}}");
}

/* one span into the queue, or dropped when it is full */
static void span(ag_gateway *g, gconn *gc, const char *id, const char *parent, const char *name, int kind,
                 int64_t start, int64_t end, const char *node, int http, int err, const char *msg) {
    const ag_alloc_funcs *a = g->a;
    if (g->otlp.n >= OTLP_QUEUE) {
        g->otlp.dropped++;
        return;
    }
    gobs *o = &gc->obs;
    ag__buf *q = &g->otlp.q;
    char n[96];
    ag__buf_str(a, q, "{\"traceId\":\"");
    ag__buf_str(a, q, o->trace);
    ag__buf_str(a, q, "\",\"spanId\":\"");
    ag__buf_str(a, q, id);
    if (parent && *parent) {
        ag__buf_str(a, q, "\",\"parentSpanId\":\"");
        ag__buf_str(a, q, parent);
    }
    if (kind == 2 && o->tracestate[0]) {
        ag__buf_str(a, q, "\",\"traceState\":");
        ag__buf_json(a, q, o->tracestate, strlen(o->tracestate));
        ag__buf_str(a, q, ",\"name\":");
    } else ag__buf_str(a, q, "\",\"name\":");
    ag__buf_json(a, q, name, strlen(name));
    snprintf(n, sizeof n, ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\"", kind, (long long)start);
    ag__buf_str(a, q, n);
    snprintf(n, sizeof n, ",\"endTimeUnixNano\":\"%lld\"", (long long)end);
    ag__buf_str(a, q, n);
    ag__buf_str(a, q, ",\"attributes\":[");
    const char *op = strstr(name, "chat") ? "chat" : strstr(name, "embed") ? "embeddings" : strstr(name, "generate") || strstr(name, "completions") ? "text_completion" : "";
    span_attr_s(a, q, "gen_ai.system", "ollama", 1);
    if (*op) span_attr_s(a, q, "gen_ai.operation.name", op, 0);
    if (gc->model[0]) span_attr_s(a, q, "gen_ai.request.model", gc->model, 0);
    if (o->have && o->tok_in >= 0) span_attr_i(a, q, "gen_ai.usage.input_tokens", o->tok_in);
    if (o->have && o->tok_out >= 0) span_attr_i(a, q, "gen_ai.usage.output_tokens", o->tok_out);
    span_attr_s(a, q, "http.request.method", ag__sconn_method_name(gc->sc), 0);
    if (http) span_attr_i(a, q, "http.response.status_code", http);
    if (node && *node) span_attr_s(a, q, "server.address", node, 0);
    if (kind == 2) span_attr_s(a, q, "http.request.header.x-request-id", o->rid, 0);
    if (kind == 2 && gc->key) span_attr_s(a, q, "agents.key", gc->key->name, 0);
    ag__buf_str(a, q, "],\"status\":{\"code\":");
    ag__buf_str(a, q, err ? "2,\"message\":" : "1");
    if (err) ag__buf_json(a, q, msg ? msg : "", msg ? strlen(msg) : 0);
    ag__buf_str(a, q, "}}");
    if (!q->p) return;
    ag__buf_add(a, q, "", 1); /* the separator */
    g->otlp.n++;
    if (g->otlp.n >= OTLP_BATCH) otlp_flush(g);
}

static void export_spans(gconn *gc, int status, int64_t end_wall) {
    ag_gateway *g = gc->g;
    gobs *o = &gc->obs;
    size_t ul;
    const char *url = ag__sconn_url(gc->sc, &ul);
    char name[300];
    snprintf(name, sizeof name, "%s %.*s", ag__sconn_method_name(gc->sc), (int)(gc->plen < ul ? gc->plen : ul), url);
    span(g, gc, o->span, o->parent, name, 2, o->wall0, end_wall, NULL, status, status >= 500 || (o->have && o->status),
         o->have && o->status ? o->err : NULL);
    for (int i = 0; i < o->ntries; i++) { /* each attempt: a client span under the gateway's */
        const struct gtry *x = &o->tries[i];
        if (!x->span[0]) continue;
        char aname[420];
        snprintf(aname, sizeof aname, "%s -> %s", name, x->node);
        int64_t s = o->wall0 + (int64_t)(x->start_ms * 1e6);
        int64_t e = x->end_ms > 0 ? o->wall0 + (int64_t)(x->end_ms * 1e6) : end_wall;
        span(g, gc, x->span, o->span, aname, 3, s, e, x->node, x->http, x->status != 0,
             x->status ? ag_err_name(x->status) : NULL);
    }
}

/* refused with the head (401, 403): the server answers, the line is written here */
void ag__obs_refused(gconn *gc, int status, const char *msg) {
    ag_gateway *g = gc->g;
    gobs *o = &gc->obs;
    snprintf(o->err, sizeof o->err, "%s", msg);
    if (g->log_fd >= 0) access_line(gc, status, (double)(ag__now_ns() - o->t0) / 1e6);
    memset(o, 0, sizeof *o);
}

/* the response is complete: its line, its figures, its spans */
void ag__obs_finish(gconn *gc) {
    ag_gateway *g = gc->g;
    gobs *o = &gc->obs;
    if (!o->t0) return; /* no head was read */
    int status = ag__sconn_head_status(gc->sc);
    int64_t now = ag__now_ns();
    double dur_ms = (double)(now - o->t0) / 1e6;
    if (g->log_fd >= 0) access_line(gc, status, dur_ms);
    if (o->have && gc->model[0]) {
        const char *node = o->ntries ? o->tries[o->ntries - 1].node : "";
        ghist *h = series(g, node, gc->model);
        if (o->ttft_ms >= 0) observe(&h->h[0], o->ttft_ms / 1e3);
        if (o->itl_ms >= 0) observe(&h->h[1], o->itl_ms / 1e3);
        if (o->ntries) observe(&h->h[2], o->tries[0].start_ms / 1e3);
        observe(&h->h[3], dur_ms / 1e3);
        gtok *t = tok_series(g, gc->key ? gc->key->name : "", gc->model);
        if (t) {
            if (o->tok_in > 0) t->in += (uint64_t)o->tok_in;
            if (o->tok_out > 0) t->out += (uint64_t)o->tok_out;
        }
    }
    if (g->otlp.c) export_spans(gc, status, o->wall0 + (now - o->t0));
    memset(o, 0, sizeof *o);
}
