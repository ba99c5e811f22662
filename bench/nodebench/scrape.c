/* bench/nodebench/scrape.c - --scrape-metrics: the servers' own figures
 * (Prometheus /metrics, Ollama /api/ps) polled during a point. */
#include "nodebench_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define MAX_SCRAPE 8
typedef struct scraper {
    double t0;
    int n, samples;
    ag_client *c[MAX_SCRAPE];
    ag_request *req[MAX_SCRAPE];
    char path[MAX_SCRAPE][256];
    const char *url[MAX_SCRAPE];
    char *body[MAX_SCRAPE];
    size_t blen[MAX_SCRAPE];
    struct event *ev;
    char *out; /* a JSON array being built */
    size_t len, cap;
} scraper;

static void sc_add(scraper *sc, const char *s, size_t n) {
    if (sc->len + n + 2 > sc->cap) {
        size_t nc = sc->cap ? sc->cap * 2 : 4096;
        while (nc < sc->len + n + 2) nc *= 2;
        char *o = realloc(sc->out, nc);
        if (!o) return;
        sc->out = o;
        sc->cap = nc;
    }
    memcpy(sc->out + sc->len, s, n);
    sc->len += n;
    sc->out[sc->len] = 0;
}
static void sc_str(scraper *sc, const char *s, size_t n) { /* a JSON string */
    sc_add(sc, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') sc_add(sc, "\\", 1);
        if (ch >= 0x20) sc_add(sc, s + i, 1);
    }
    sc_add(sc, "\"", 1);
}

static int sc_index(scraper *sc, ag_request *r) {
    for (int i = 0; i < sc->n; i++)
        if (sc->req[i] == r) return i;
    return -1;
}
static void sc_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    scraper *sc = ud;
    int i = sc_index(sc, r);
    if (i < 0 || ch->kind != AG_CHUNK_BODY || sc->blen[i] + ch->len > (1 << 20)) return;
    char *b = realloc(sc->body[i], sc->blen[i] + ch->len + 1);
    if (!b) return;
    memcpy(b + sc->blen[i], ch->text, ch->len);
    sc->blen[i] += ch->len;
    b[sc->blen[i]] = 0;
    sc->body[i] = b;
}
static void sc_done(ag_request *r, const ag_result *res, void *ud) {
    scraper *sc = ud;
    int i = sc_index(sc, r);
    if (i < 0) return;
    sc->req[i] = NULL;
    char *b = sc->body[i];
    size_t bl = sc->blen[i];
    sc->body[i] = NULL;
    sc->blen[i] = 0;
    if (res->status == 0 && res->http_status == 200 && b && sc->samples < 1000 && sc->len < ((size_t)64 << 20)) {
        /* (at most 1,000 samples and 64 MiB of them a point: a server's
         * answers cannot grow the report without bound) */
        char head[160];
        snprintf(head, sizeof head, "%s{\"t_s\":%.3f,\"url\":", sc->samples ? "," : "", (nb__now_ms() - sc->t0) / 1e3);
        sc_add(sc, head, strlen(head));
        sc_str(sc, sc->url[i], strlen(sc->url[i]));
        const char *p = b;
        while (*p == ' ' || *p == '\n') p++;
        if (*p == '{') { /* JSON (Ollama's /api/ps): kept as it came, when it parses */
            char *js = NULL;
            if (ag_json_extract(b, bl, 1, &js) == 0 && js) {
                sc_add(sc, ",\"json\":", 8);
                sc_add(sc, js, strlen(js));
            }
            free(js);
        } else { /* Prometheus text: "name{labels} value" lines */
            sc_add(sc, ",\"metrics\":{", 12);
            int k = 0;
            for (char *sv = NULL, *line = strtok_r(b, "\n", &sv); line && k < 2000; line = strtok_r(NULL, "\n", &sv)) {
                if (*line == '#' || !*line) continue;
                char *sp = strrchr(line, ' ');
                if (!sp) continue;
                char *e;
                double v = strtod(sp + 1, &e);
                if (e == sp + 1 || !isfinite(v)) continue;
                if (k++) sc_add(sc, ",", 1);
                sc_str(sc, line, (size_t)(sp - line));
                char num[40];
                snprintf(num, sizeof num, ":%.9g", v);
                sc_add(sc, num, strlen(num));
            }
            sc_add(sc, "}", 1);
        }
        sc_add(sc, "}", 1);
        sc->samples++;
    }
    free(b);
}
static void sc_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    scraper *sc = arg;
    for (int i = 0; i < sc->n; i++) {
        if (sc->req[i] || !sc->c[i]) continue;
        ag_forward_params fp = {.method = "GET", .path = sc->path[i]};
        ag_callbacks cb = {sc_chunk, sc_done, sc};
        if (ag_forward(sc->c[i], &fp, &cb, &sc->req[i]) != 0) sc->req[i] = NULL;
    }
}
scraper *nb__sc_start(struct event_base *base, const nb_config *cfg, double t0) {
    if (!cfg->n_scrape) return NULL;
    scraper *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    sc->t0 = t0;
    sc_add(sc, "[", 1);
    for (int i = 0; i < cfg->n_scrape && sc->n < MAX_SCRAPE; i++) {
        const char *u = cfg->scrape[i], *hs = strstr(u, "://");
        hs = hs ? hs + 3 : u;
        const char *slash = strchr(hs, '/');
        char host[300];
        snprintf(host, sizeof host, "%.*s", (int)(slash ? slash - u : (long)strlen(u)), u);
        ag_client_options co = {.host = host};
        int k = sc->n;
        sc->c[k] = ag_client_new(base, &co, NULL);
        if (!sc->c[k]) continue;
        snprintf(sc->path[k], sizeof sc->path[k], "%s", slash ? slash : "/metrics");
        sc->url[k] = u;
        sc->n++;
    }
    sc->ev = event_new(base, -1, EV_PERSIST, sc_tick, sc);
    double iv = cfg->scrape_interval > 0 ? cfg->scrape_interval : 1;
    struct timeval tv = {(long)iv, (long)((iv - floor(iv)) * 1e6)};
    event_add(sc->ev, &tv);
    sc_tick(-1, 0, sc); /* a first sample at the start */
    return sc;
}
static void sc_noop(evutil_socket_t fd, short what, void *arg) { (void)fd, (void)what, (void)arg; }

void nb__sc_finish(scraper *sc, struct event_base *base) {
    if (!sc) return;
    sc_tick(-1, 0, sc);
    for (int t = 0; t < 200; t++) { /* let the last samples arrive (bounded: 2 s) */
        int busy = 0;
        for (int i = 0; i < sc->n; i++) busy += sc->req[i] != NULL;
        if (!busy) break;
        struct timeval tv = {0, 10000};
        event_base_once(base, -1, EV_TIMEOUT, sc_noop, NULL, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
}
char *nb__sc_stop(scraper *sc) {
    if (!sc) return NULL;
    event_free(sc->ev);
    for (int i = 0; i < sc->n; i++) {
        if (sc->req[i]) ag_request_cancel(sc->req[i]);
        ag_client_free(sc->c[i]);
        free(sc->body[i]);
    }
    sc_add(sc, "]", 1);
    char *out = sc->out;
    free(sc);
    return out;
}

