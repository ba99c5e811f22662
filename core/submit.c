/* core/submit.c - starting requests: a request's own options, its framing
 * for a node, and the public calls that start chat, generate and embed. */
#include "core/internal.h"
#include "core/errclass.h"
#include "core/base/hash.h"
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- starting requests ---- */


/* What a request's own options change before it starts: its headers, node
 * and retry budget go with its body; its timeouts with its exchange. */
static int apply_options(ag_client *c, ag__body *body, const ag_request_options *o) {
    if (!o) return 0;
    if (o->headers) {
        int rc = ag__headers(c->alloc, o->headers, &body->headers);
        if (rc) return rc;
    }
    /* a session key is at most 256 bytes, one line: for every backend */
    if (o->session && (strlen(o->session) > 256 || strpbrk(o->session, "\r\n"))) return AG_EINVAL;
    if (o->session && *o->session && !c->ops->routes_sessions) {
        /* one node (perhaps a gateway in front of many): the key as a header */
        size_t kl = strlen(o->session), hl = body->headers ? strlen(body->headers) : 0;
        char *h = ag__malloc(c->alloc, hl + kl + 17);
        if (!h) return AG_ENOMEM;
        if (hl) memcpy(h, body->headers, hl);
        memcpy(h + hl, "X-Session-Id: ", 14);
        memcpy(h + hl + 14, o->session, kl);
        memcpy(h + hl + 14 + kl, "\r\n", 3);
        ag__free(c->alloc, body->headers);
        body->headers = h;
    }
    if (o->node && *o->node && !body->pin) {
        if (strlen(o->node) >= 300 || strpbrk(o->node, "\r\n")) return AG_EINVAL;
        if (!(body->pin = ag__strdup(c->alloc, o->node))) return AG_ENOMEM;
    }
    if (o->deadline < 0 || o->first_token_deadline < 0) return AG_EINVAL;
    return 0;
}

int ag__req_start(ag_client *c, ag__body *body, int streaming, const ag_callbacks *cb,
                     ag_request **out, void *pin, const ag_request_options *ro) {
    if (c->freeing) {
        ag__body_free(c->alloc, body);
        return AG_ESHUTDOWN;
    }
    int orc = apply_options(c, body, ro);
    if (orc) {
        ag__body_free(c->alloc, body);
        return orc;
    }
    ag_request *r = ag__calloc(c->alloc, sizeof *r + c->ops->req_size);
    if (!r) {
        ag__body_free(c->alloc, body);
        return AG_ENOMEM;
    }
    r->client = c;
    r->body = *body;
    r->kind = body->kind;
    r->streaming = streaming;
    if (cb) r->cb = *cb;
    r->timing.ttft_ns = -1;
    r->cancel_code = AG_ECANCELED;
    r->http.ops = &ag__http_ops_client;
    r->http.owner = r;
    r->http.is_head = body->is_head;
    if (pin) {
        r->pinned = 1;
        r->pin = pin;
    }
    if (ro) {
        r->read_end = ro->read_end ? 1 : 0;
        r->budget = ro->retry_budget;
        r->http.first_byte_timeout = ro->first_byte_timeout;
        r->http.idle_timeout = ro->idle_timeout;
        if (ro->session && *ro->session) r->session = ag__key_of(ro->session);
        r->priority = ro->priority;
        if (ro->tenant && *ro->tenant) r->tenant = ag__key_of(ro->tenant);
        r->backoff_left = ro->retries > 0 ? ro->retries : 0;
        r->backoff_delay = ro->retry_delay > 0 ? ro->retry_delay : 1.0;
        r->backoff_factor = ro->retry_factor > 0 ? ro->retry_factor : 2.0;
    }
    event_assign(&r->defer_ev, c->base, -1, 0, ag__defer_cb, r);
    struct timeval tv;
    if (ro && (ro->deadline > 0 || ro->first_token_deadline > 0) &&
        !(r->tm = ag__calloc(c->alloc, sizeof *r->tm))) {
        ag__req_free(r);
        return AG_ENOMEM;
    }
    if (r->tm) {
        double by = ro->deadline > 0 ? ro->deadline : ro->first_token_deadline;
        if (ro->first_token_deadline > 0 && ro->first_token_deadline < by) by = ro->first_token_deadline;
        r->tm->start_by = ag__now_ns() + (int64_t)(by * 1e9);
    }
    if (ro && ro->deadline > 0) {
        evtimer_assign(&r->tm->deadline_ev, c->base, ag__deadline_cb, r);
        ag__timeval(&tv, ro->deadline);
        evtimer_add(&r->tm->deadline_ev, &tv);
        r->deadline_on = 1;
    }
    if (ro && ro->first_token_deadline > 0) {
        evtimer_assign(&r->tm->ttft_ev, c->base, ag__deadline_cb, r);
        ag__timeval(&tv, ro->first_token_deadline);
        evtimer_add(&r->tm->ttft_ev, &tv);
        r->ttft_on = 1;
    }
    r->dialect = c->oai_mode == AG__BODIES_OPENAI ? AG_API_OPENAI : AG_API_OLLAMA;
    if (body->fwd) r->dialect = strncmp(body->path, "/v1/", 4) == 0 ? AG_API_OPENAI : AG_API_OLLAMA;
    if (ag__dec_init_for(r)) {
        ag__req_free(r);
        return AG_ENOMEM;
    }
    r->t0 = ag__now_ns();
    r->phase = RQ_QUEUED;
    r->next = c->reqs;
    if (c->reqs) c->reqs->prev = &r->next;
    c->reqs = r;
    r->prev = &c->reqs;
    if (!r->pinned) {
        c->in_flight++;
        c->started++;
    }
    r->starting = 1;
    int rc = c->ops->submit(c, r);
    r->starting = 0;
    if (rc == AG_EQUEUEFULL || rc == AG_ENOMEM) {
        ag__req_unlink(r);
        if (!r->pinned) {
            c->in_flight--;
            c->started--;
        }
        ag__req_free(r);
        return rc;
    }
    if (rc) {
        char msg[320];
        if (rc == AG_ENONODE)
            snprintf(msg, sizeof msg, "no healthy node serves model \"%s\"", r->body.model);
        else
            snprintf(msg, sizeof msg, "%s", c->ops->no_backoff ? "the backend refused the request" : "could not start the connection");
        ag__complete_later(r, rc, msg);
    }
    if (out) *out = r;
    return 0;
}

int ag__request_frame(ag_request *r, const ag__target *t) {
    ag_client *c = r->client;
    ag__free(c->alloc, r->wire);
    r->wire = NULL;
    int rc = ag__frame(c->alloc, t, &r->body, &r->wire, &r->wire_len);
    r->http.wire = r->wire;
    r->http.wire_len = r->wire_len;
    r->http.is_head = t->dialect == AG_API_OPENAI ? 0 : r->body.is_head;
    if (!rc && !r->body.fwd && t->dialect != r->dialect) { /* the answer will come in the other dialect */
        r->dialect = t->dialect;
        ag__dec_free(&r->dec);
        rc = ag__dec_init_for(r);
    }
    return rc;
}

int ag_chat(ag_client *c, const ag_chat_params *p, const ag_callbacks *cb, ag_request **out) {
    if (!c || !p) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    int rc = c->oai_mode != AG__BODIES_OPENAI ? ag__encode_chat(c->alloc, p, &b) : 0;
    if (!rc && c->oai_mode != AG__BODIES_OLLAMA) rc = ag__encode_chat_oai(c->alloc, p, &b);
    if (rc) {
        ag__body_free(c->alloc, &b);
        return rc;
    }
    b.params = p;
    return ag__req_start(c, &b, !p->gen.no_stream, cb, out, NULL, p->request);
}

int ag_generate(ag_client *c, const ag_generate_params *p, const ag_callbacks *cb,
                ag_request **out) {
    if (!c || !p) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    int rc = c->oai_mode != AG__BODIES_OPENAI ? ag__encode_generate(c->alloc, p, &b) : 0;
    if (!rc && c->oai_mode != AG__BODIES_OLLAMA) rc = ag__encode_generate_oai(c->alloc, p, &b);
    if (rc) {
        ag__body_free(c->alloc, &b);
        return rc;
    }
    b.params = p;
    return ag__req_start(c, &b, !p->gen.no_stream, cb, out, NULL, p->request);
}

int ag_embed(ag_client *c, const ag_embed_params *p, const ag_callbacks *cb, ag_request **out) {
    if (!c || !p) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    int rc = c->oai_mode != AG__BODIES_OPENAI || p->legacy ? ag__encode_embed(c->alloc, p, &b) : 0;
    if (!rc && c->oai_mode != AG__BODIES_OLLAMA && !p->legacy) rc = ag__encode_embed_oai(c->alloc, p, &b);
    if (rc) {
        ag__body_free(c->alloc, &b);
        return rc;
    }
    b.params = p;
    return ag__req_start(c, &b, 0, cb, out, NULL, p->request);
}

int ag_admin(ag_client *c, int op, const ag_model_params *p, const ag_callbacks *cb,
             ag_request **out) {
    if (!c) return AG_EINVAL;
    ag__body b;
    int rc = ag__encode_admin(c->alloc, op, p, &b);
    if (rc) return rc;
    if (c->oai_mode != AG__BODIES_OLLAMA) ag__encode_admin_oai(op, &b);
    if (c->oai_mode == AG__BODIES_OPENAI && !b.oai_path) { /* model management is Ollama's */
        ag__body_free(c->alloc, &b);
        return AG_EINVAL;
    }
    b.params = p;
    b.op = op;
    return ag__req_start(c, &b, op == AG_OP_PULL && !(p && p->no_stream), cb, out, NULL, p ? p->request : NULL);
}
