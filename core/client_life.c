/* core/client_life.c - a client's life: made, its stats and hooks, its log,
 * freed (from a callback too). */
#include "core/internal.h"
#include "core/errclass.h"
#include "core/base/hash.h"
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_ev_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag__client_real_free(arg);
}

/* Shared setup of every backend: options with their defaults, allocator,
 * loop. The backend fills in ops and its own state. */
ag_client *ag__client_alloc(struct event_base *base, const ag_client_options *opts, size_t size, int *err) {
    ag_client_options o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    const ag_alloc_funcs *a = o.alloc;
    ag_client *c = ag__calloc(a, size);
    if (!c) {
        *err = AG_ENOMEM;
        return NULL;
    }
    if (a) {
        c->alloc_store = *a;
        c->alloc = &c->alloc_store;
    }
    const char *ua = o.user_agent ? o.user_agent : "agents/" AG_VERSION_STRING;
    for (const char *q = ua; *q; q++)
        if ((unsigned char)*q < ' ') {
            ag__free(a, c);
            *err = AG_EINVAL;
            return NULL;
        }
    snprintf(c->user_agent, sizeof c->user_agent, "%s", ua);
    if (!o.connect_timeout) o.connect_timeout = 10;
    /* an idle timeout the caller chose covers the first byte too, as it
     * always did ("no bytes while waiting"), unless a first-byte one is set */
    if (!o.first_byte_timeout)
        o.first_byte_timeout = o.idle_timeout ? o.idle_timeout : AG_DEFAULT_FIRST_BYTE_TIMEOUT;
    if (!o.idle_timeout) o.idle_timeout = AG_DEFAULT_IDLE_TIMEOUT;
    if (!o.max_connections) o.max_connections = 1024;
    if (!o.max_idle) o.max_idle = 64;
    if (!o.max_queue) o.max_queue = 100000;
    if (!o.max_body) o.max_body = (size_t)256 << 20;
    if (!o.max_token) o.max_token = (size_t)16 << 20;
    c->opt = o;
    c->opt.alloc = c->alloc;
    c->opt.host = NULL;
    c->opt.user_agent = NULL;
    c->opt.tls_ca_file = NULL; /* only while the TLS context is made: keep a copy */
    ag__auth_options(&o, c->auth_all, sizeof c->auth_all);
    c->opt.bearer_token = c->opt.basic_user = c->opt.basic_password = NULL; /* borrowed: gone after this call */
    if (o.tls_ca_file) {
        size_t l = strlen(o.tls_ca_file);
        char *ca = ag__malloc(a, l + 1);
        if (ca) memcpy(ca, o.tls_ca_file, l + 1);
        c->ca_file = ca;
        c->opt.tls_ca_file = ca;
    }
    if (!base) {
        base = event_base_new();
        c->own_base = 1;
        if (!base) {
            ag__free(a, c);
            *err = AG_ENOMEM;
            return NULL;
        }
    }
    c->base = base;
    event_assign(&c->free_ev, base, -1, 0, free_ev_cb, c);
    *err = 0;
    return c;
}

/* Undoes ag__client_alloc when a backend's own setup fails. */
void ag__client_dealloc(ag_client *c) {
    if (c->tls) SSL_CTX_free(c->tls);
    ag__free(c->alloc, c->ca_file);
    if (c->own_base) event_base_free(c->base);
    ag__free(c->alloc, c);
}

void ag__client_real_free(ag_client *c) {
    void (*freed)(void *) = c->freed;
    void *ud = c->freed_ud;
    event_del(&c->free_ev);
    c->ops->destroy(c);
    if (c->tls) SSL_CTX_free(c->tls);
    ag__free(c->alloc, c->ca_file);
    if (c->own_base) event_base_free(c->base);
    ag__free(c->alloc, c);
    if (freed) freed(ud); /* the last thing: the caller may free the loop now */
}

void ag_client_free_notify(ag_client *c, void (*freed)(void *ud), void *ud) {
    if (!c) return;
    c->freed = freed;
    c->freed_ud = ud;
    ag_client_free(c);
}

void ag_client_free(ag_client *c) {
    if (!c || c->freeing) return;
    c->freeing = 1;
    /* every pending request ends with AG_ESHUTDOWN; one that is inside its own
     * callback right now ends as soon as that callback returns */
    for (;;) {
        ag_request *r = c->reqs;
        while (r && r->in_cb) {
            r->cancel_req = 1;
            r->cancel_code = AG_ESHUTDOWN;
            r = r->next;
        }
        if (!r) break;
        /* done callbacks may cancel or start others: rescan from the head */
        ag__c_abort(r);
        ag__complete(r, AG_ESHUTDOWN, "client freed while the request was pending");
    }
    if (c->in_cb == 0 && !c->reqs) ag__client_real_free(c);
    /* else: the last completion schedules free_ev */
}

struct event_base *ag_client_base(const ag_client *c) {
    return c->base;
}

void ag_client_get_stats(const ag_client *c, ag_client_stats *out) {
    memset(out, 0, sizeof *out);
    c->ops->stats(c, out);
    out->requests_started = c->started;
    out->requests_done = c->done;
    out->in_flight = c->in_flight;
}

const ag_alloc_funcs *ag__client_allocator(const ag_client *c) {
    return c ? c->alloc : NULL;
}

int ag__client_wait(ag_client *c, const int *done) {
    while (!*done)
        if (event_base_loop(c->base, EVLOOP_ONCE) < 0) return 0;
    return 1;
}

void ag_client_set_hooks(ag_client *c, const ag_hooks *hooks) {
    if (!c) return;
    if (hooks) c->hooks = *hooks;
    else memset(&c->hooks, 0, sizeof c->hooks);
}

void ag__log(const ag_client *c, int level, const char *fmt, ...) {
    if (!c || !c->hooks.log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->hooks.log(level, line, c->hooks.ud);
}
