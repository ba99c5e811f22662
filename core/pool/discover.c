/* core/pool/discover.c - opt-in discovery: probes every address of a range for
 * an Ollama node and adds those that answer. */
#include "core/pool/pool_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- opt-in range discovery ---- */
typedef struct disc {
    ag_client *pool;
    uint32_t h0, h1;
    int p0, p1;
    uint64_t next, total;
    unsigned running, conc;
    int added;
    void (*done)(ag_client *, int, void *);
    void *ud;
} disc;

typedef struct disc_probe {
    disc *d;
    ag_client *c;
    char addr[64];
} disc_probe;

static void disc_next(disc *d);

static void disc_free_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_client_free(arg);
}

static void disc_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    disc_probe *dp = ud;
    disc *d = dp->d;
    if (res->status == 0 && ag__pool_of(d->pool)) {
        ag_host h;
        ag_host_parse(dp->addr, &h);
        int known = ag__pool_find_node(ag__pool_of(d->pool), &h) != NULL;
        if (ag__pool_add_node(ag__pool_of(d->pool), dp->addr) == 0 && !known) d->added++;
    }
    /* free the probe's client off its own stack */
    event_base_once(dp->c->base, -1, EV_TIMEOUT, disc_free_cb, dp->c, NULL);
    ag__free(d->pool->alloc, dp);
    d->running--;
    disc_next(d);
}

static void disc_next(disc *d) {
    while (d->running < d->conc && d->next < d->total) {
        uint64_t i = d->next++;
        uint64_t nports = (uint64_t)(d->p1 - d->p0 + 1);
        uint32_t h = d->h0 + (uint32_t)(i / nports);
        int port = d->p0 + (int)(i % nports);
        disc_probe *dp = ag__calloc(d->pool->alloc, sizeof *dp);
        if (!dp) break;
        dp->d = d;
        snprintf(dp->addr, sizeof dp->addr, "%u.%u.%u.%u:%d", h >> 24, (h >> 16) & 255, (h >> 8) & 255,
                 h & 255, port);
        ag_client_options co = {.host = dp->addr, .connect_timeout = ag__pool_of(d->pool)->opt.probe_timeout,
                                .idle_timeout = ag__pool_of(d->pool)->opt.probe_timeout,
                                .first_byte_timeout = ag__pool_of(d->pool)->opt.probe_timeout,
                                .alloc = d->pool->alloc};
        dp->c = ag_client_new(d->pool->base, &co, NULL);
        ag_callbacks cb = {NULL, disc_done, dp};
        if (!dp->c || ag_admin(dp->c, AG_OP_VERSION, NULL, &cb, NULL) != 0) {
            ag_client_free(dp->c);
            ag__free(d->pool->alloc, dp);
            continue;
        }
        d->running++;
    }
    if (d->running == 0 && d->next >= d->total) {
        if (d->done) d->done(d->pool, d->added, d->ud);
        ag__free(d->pool->alloc, d);
    }
}

static int parse_ip4(const char *s, size_t n, uint32_t *out) {
    unsigned a, b, c, e;
    char buf[32];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char tail;
    if (sscanf(buf, "%u.%u.%u.%u%c", &a, &b, &c, &e, &tail) != 4 || a > 255 || b > 255 || c > 255 || e > 255)
        return -1;
    *out = (a << 24) | (b << 16) | (c << 8) | e;
    return 0;
}

int ag_pool_discover(ag_client *c, const char *range, unsigned concurrency,
                     void (*done)(ag_client *c, int added, void *ud), void *ud) {
    if (!c || !ag__pool_of(c) || !range) return AG_EINVAL;
    const char *colon = strrchr(range, ':');
    if (!colon) return AG_EINVAL;
    const char *dash = memchr(range, '-', (size_t)(colon - range));
    uint32_t h0, h1;
    if (parse_ip4(range, (size_t)((dash ? dash : colon) - range), &h0)) return AG_EINVAL;
    if (dash) {
        if (parse_ip4(dash + 1, (size_t)(colon - dash - 1), &h1)) return AG_EINVAL;
    } else {
        h1 = h0;
    }
    char *end;
    long p0 = strtol(colon + 1, &end, 10), p1 = p0;
    if (*end == '-') p1 = strtol(end + 1, &end, 10);
    if (*end || p0 < 1 || p1 > 65535 || p1 < p0 || h1 < h0) return AG_EINVAL;
    uint64_t total = (uint64_t)(h1 - h0 + 1) * (uint64_t)(p1 - p0 + 1);
    if (total > 65536) return AG_EINVAL;
    disc *d = ag__calloc(c->alloc, sizeof *d);
    if (!d) return AG_ENOMEM;
    d->pool = c;
    d->h0 = h0;
    d->h1 = h1;
    d->p0 = (int)p0;
    d->p1 = (int)p1;
    d->total = total;
    d->conc = concurrency ? concurrency : 64;
    d->done = done;
    d->ud = ud;
    disc_next(d);
    return 0;
}
