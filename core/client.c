/* core/client.c - the client contract and the request state machine every backend shares
 * (the local client is core/local.c, the pool core/pool/).
 *
 * A request moves QUEUED (waiting for a node, a connection, a connect) ->
 * HEAD (sent, waiting for the answer's head) -> STREAM (or ERRBODY) -> DONE;
 * a retry elsewhere goes back to QUEUED. The handlers below are driven by
 * the transport's four callbacks; every path that ends a request goes
 * through ag__complete(), which runs the user's done callback exactly once and
 * frees the request after it returns. An error names the phase it met.
 */
#include "core/internal.h"
#include "core/errclass.h"
#include "core/base/hash.h"

#include <openssl/ssl.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *phase_name(enum ag__rq_phase p) {
    switch (p) {
    case RQ_QUEUED: return "connect";
    case RQ_HEAD: return "waiting for the answer";
    case RQ_STREAM: return "stream";
    case RQ_ERRBODY: return "error body";
    case RQ_DONE: return "done";
    }
    return "?";
}


/* ---- completion ---- */
void ag__req_unlink(ag_request *r) {
    if (!r->prev) return;
    *r->prev = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = NULL;
    r->next = NULL;
}

void ag__req_free(ag_request *r) {
    ag_client *c = r->client;
    if (c->ops->release) c->ops->release(c, r);
    if (event_initialized(&r->defer_ev)) event_del(&r->defer_ev);
    if (r->prog_on) event_del(&r->prog_ev);
    if (r->deadline_on) event_del(&r->tm->deadline_ev);
    if (r->ttft_on) event_del(&r->tm->ttft_ev);
    if (r->backoff_on) event_del(&r->tm->backoff_ev);
    ag__free(c->alloc, r->tm);
    ag__free(c->alloc, r->def_detail);
    if (r->bres_owned) ag_result_free(r->bres);
    ag__dec_free(&r->dec);
    ag__buf_free(c->alloc, &r->errbody);
    ag__buf_free(c->alloc, &r->rawline);
    ag__free(c->alloc, r->wire);
    ag__body_free(c->alloc, &r->body);
    ag__buf_free(c->alloc, &r->partial);
    ag__free(c->alloc, r);
}

void ag__complete(ag_request *r, int status, const char *detail) {
    ag_client *c = r->client;
    if (r->phase == RQ_DONE) return;
    r->phase = RQ_DONE;
    ag__req_unlink(r);
    if (!r->pinned) {
        c->in_flight--;
        c->done++;
    }
    ag_result res;
    memset(&res, 0, sizeof res);
    if (r->bres) res = *r->bres; /* a backend's answer (core/backend.c) */
    else ag__dec_result(&r->dec, &res);
    res.status = status;
    res.http_status = r->http_status;
    res.timing = r->timing;
    res.timing.e2e_ns = ag__now_ns() - r->t0;
    if (r->timing.chunks > 1) res.timing.itl_mean_ns = r->gap_sum / (r->timing.chunks - 1);
    res.timing.itl_max_ns = r->gap_max;
    if (status) res.error = detail && *detail ? detail : ag_strerror(status);
    else res.error = NULL;
    if (c->ops->finished) c->ops->finished(c, r, status, &res);
    res.node = c->ops->node_name(c, r);
    /* a backend that counts attempts counts those after a backoff too */
    res.attempts = c->ops->attempts ? c->ops->attempts(c, r) : 1 + r->backoff_tries;
    ag_attempt tries[8];
    if (c->ops->tries && (res.n_tries = c->ops->tries(c, r, tries, 8)) > 0) res.tries = tries;
    if (c->hooks.finished) c->hooks.finished(r, &res, c->hooks.ud);
    c->in_cb++;
    r->in_cb = 1;
    if (r->cb.on_done) r->cb.on_done(r, &res, r->cb.ud);
    c->in_cb--;
    ag__req_free(r);
    if (c->freeing && c->in_cb == 0 && !c->reqs) {
        /* freed from a callback: finish from the loop, off this stack */
        event_active(&c->free_ev, EV_TIMEOUT, 1);
    }
}

void ag__defer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_request *r = arg;
    ag__complete(r, r->def_status, r->def_detail);
}

char *ag__request_detail(ag_request *r) {
    if (!r->def_detail) {
        r->def_detail = ag__malloc(r->client->alloc, AG__DETAIL);
        if (r->def_detail) r->def_detail[0] = 0;
    }
    return r->def_detail;
}

/* Completes from the loop, never inside the current call. */
void ag__complete_later(ag_request *r, int status, const char *detail) {
    if (r->deferred) return;
    r->deferred = 1;
    r->def_status = status;
    char *d = ag__request_detail(r);
    if (d) snprintf(d, AG__DETAIL, "%s", detail ? detail : "");
    event_active(&r->defer_ev, EV_TIMEOUT, 1);
}

/* ---- decoder ag__sink: chunks to the user, measured ---- */
/* a chunk of output now: time to first token, the gap since the last one */
void ag__note_chunk(ag_request *r) {
    int64_t now = ag__now_ns();
    if (r->timing.chunks == 0) {
        r->timing.ttft_ns = now - r->t0;
        if (r->ttft_on) { /* output came in time */
            event_del(&r->tm->ttft_ev);
            r->ttft_on = 0;
        }
        if (r->client->ops->first_output) r->client->ops->first_output(r->client, r);
    } else {
        int64_t gap = now - r->tlast;
        r->gap_sum += gap;
        if (gap > r->gap_max) r->gap_max = gap;
        if (r->itl_hist) ag__hist_add(r->itl_hist, gap);
    }
    r->tlast = now;
    r->timing.chunks++;
}

int ag__sink(void *ctx, const ag_chunk *ch) {
    ag_request *r = ctx;
    ag_client *c = r->client;
    if (r->cancel_req) return 1;
    if (ch->kind == AG_CHUNK_CONTENT || ch->kind == AG_CHUNK_THINKING ||
        ch->kind == AG_CHUNK_TOOL_CALL) {
        ag__note_chunk(r);
        if (r->keep_partial && ch->kind == AG_CHUNK_CONTENT &&
            ag__buf_add(c->alloc, &r->partial, ch->text, ch->len))
            r->keep_partial = 0; /* out of memory: this request just cannot resume */
        r->timing.bytes += (int64_t)ch->len;
    }
    if (!r->cb.on_chunk || (r->body.fwd && ch->kind != AG_CHUNK_BODY && ch->kind != AG_CHUNK_READ_END)) return 0;
    if (ch->kind != AG_CHUNK_READ_END) r->sunk++;
    c->in_cb++;
    r->in_cb = 1;
    r->cb.on_chunk(r, ch, r->cb.ud);
    r->in_cb = 0;
    c->in_cb--;
    return r->cancel_req;
}

/* A backend's chunk (core/backend.c): delivered as a decoded one. */
int ag__request_deliver(ag_request *r, const ag_chunk *ch) {
    if (r->starting || r->phase == RQ_DONE || r->deferred) return AG_EINVAL;
    r->phase = RQ_STREAM;
    ag__sink(r, ch);
    if (r->cancel_req) { /* ended from inside the caller's callback */
        ag__complete(r, r->cancel_code, NULL);
        return AG_ECANCELED;
    }
    return 0;
}

/* A backend's completion: now, or from the loop when it comes inside the
 * starting call (then with a copy of res). */
int ag__request_complete_with(ag_request *r, const ag_result *res) {
    if (r->phase == RQ_DONE || r->deferred || !res) return AG_EINVAL;
    r->http_status = res->http_status;
    if (r->starting) {
        r->bres = ag_result_dup(res);
        if (!r->bres) {
            ag__complete_later(r, AG_ENOMEM, NULL);
            return 0;
        }
        r->bres_owned = 1;
        ag__complete_later(r, res->status, res->error);
        return 0;
    }
    r->bres = (ag_result *)res;
    ag__complete(r, res->status, res->error);
    return 0;
}

/* --json: whole objects, one per line, exactly as sent (CR and blank lines dropped) */
static int raw_lines(ag_request *r, const char *p, size_t n) {
    ag_client *c = r->client;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (r->rawline.len + k > c->opt.max_token) return AG_ETOOBIG;
        if (ag__buf_add(c->alloc, &r->rawline, p, k)) return AG_ENOMEM;
        if (!nl) break;
        size_t l = r->rawline.len;
        while (l && (r->rawline.p[l - 1] == '\r' || r->rawline.p[l - 1] == ' ')) l--;
        const char *t = r->rawline.p;
        if (l && r->dec.sse && t[0] != '{') {
            /* Server-Sent Events: the objects are the "data:" payloads; comments,
             * other fields and the closing [DONE] are framing */
            if (l >= 5 && memcmp(t, "data:", 5) == 0) {
                t += 5;
                l -= 5;
                if (l && *t == ' ') t++, l--;
                if (l == 6 && memcmp(t, "[DONE]", 6) == 0) l = 0;
            } else {
                l = 0;
            }
        }
        if (l) {
            ag_chunk ch;
            memset(&ch, 0, sizeof ch);
            ch.kind = AG_CHUNK_RAW;
            ch.text = t;
            ch.len = l;
            if (ag__sink(r, &ch)) return 0;
        }
        r->rawline.len = 0;
        p = nl + 1;
        n -= k + 1;
    }
    return 0;
}

/* ---- transport callbacks ---- */
static void fail_or_retry(ag_request *r, int status, const char *detail);

/* The node's answer is unusable (malformed JSON, ...) while the transport is
 * still inside its parser: before any output the attempt may go elsewhere,
 * so it leaves this connection first (closed once the parser unwinds). */
static int body_failed(ag_request *r, int status, const char *detail) {
    if (!ag__request_has_output(r) && r->client->ops->retry) {
        ag__http_abort(&r->http);
        fail_or_retry(r, status, detail);
    } else {
        ag__complete(r, status, detail);
    }
    return 1;
}

void ag__c_abort(ag_request *r);

/* ---- the first-byte and idle timeouts, counted in output ---- */
static double fb_timeout(const ag_request *r) {
    return r->http.first_byte_timeout ? r->http.first_byte_timeout : r->client->opt.first_byte_timeout;
}
static double idle_timeout(const ag_request *r) {
    return r->http.idle_timeout ? r->http.idle_timeout : r->client->opt.idle_timeout;
}

static void prog_arm(ag_request *r, double secs) {
    struct timeval tv;
    ag__timeval(&tv, secs > 0.001 ? secs : 0.001);
    evtimer_add(&r->prog_ev, &tv);
    r->prog_on = 1;
}

static void prog_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    ag_request *r = arg;
    r->prog_on = 0;
    if (r->phase == RQ_DONE || r->phase == RQ_QUEUED) return;
    int64_t now = ag__now_ns();
    ag__progress_check(r);
    double fb = fb_timeout(r), idle = idle_timeout(r);
    if (r->http.paused) { /* the caller holds it back: not the node's silence */
        r->tprog = now;
        prog_arm(r, idle > 0 ? idle : fb);
        return;
    }
    if (r->body_bytes == r->prog_bytes) { /* plain silence: the transport's byte timeouts say so */
        prog_arm(r, r->tprog <= r->tsent ? fb : idle);
        return;
    }
    char msg[300];
    if (r->tprog <= r->tsent) { /* no output yet */
        double left = fb - (double)(now - r->tsent) / 1e9;
        if (left > 0.0005) {
            prog_arm(r, left);
            return;
        }
        snprintf(msg, sizeof msg, "no output within %.3g s of sending (first-byte timeout; %zu bytes came without any)",
                 fb, r->body_bytes);
    } else {
        if (idle <= 0) return;
        double left = idle - (double)(now - r->tprog) / 1e9;
        if (left > 0.0005) {
            prog_arm(r, left);
            return;
        }
        snprintf(msg, sizeof msg, "no output for %.3g s (idle timeout; after %lld chunks were delivered)", idle,
                 (long long)r->timing.chunks);
    }
    if (!ag__request_has_output(r) && r->client->ops->retry) {
        ag__http_abort(&r->http);
        fail_or_retry(r, AG_EIDLE, msg);
    } else {
        ag__c_abort(r);
        ag__complete(r, AG_EIDLE, msg);
    }
}

static void on_sent(void *owner) {
    ag_request *r = owner;
    r->phase = RQ_HEAD;
    double fb = fb_timeout(r);
    r->tsent = ag__now_ns();
    ag__progress_at(r, r->tsent);
    if (fb > 0) {
        if (!event_initialized(&r->prog_ev)) evtimer_assign(&r->prog_ev, r->client->base, prog_cb, r);
        prog_arm(r, fb);
    }
}

static int on_head(void *owner, int status) {
    ag_request *r = owner;
    r->http_status = status;
    r->phase = status >= 200 && status < 300 ? RQ_STREAM : RQ_ERRBODY;
    return 0;
}

static int on_body(void *owner, const char *p, size_t n) {
    ag_request *r = owner;
    ag_client *c = r->client;
    if (r->phase == RQ_ERRBODY) {
        size_t room = r->errbody.len < 4096 ? 4096 - r->errbody.len : 0;
        if (room && ag__buf_add(c->alloc, &r->errbody, p, n < room ? n : room)) {
            ag__complete(r, AG_ENOMEM, "out of memory");
            return 1;
        }
        return 0;
    }
    r->body_bytes += n;
    if (!r->streaming && r->body_bytes > c->opt.max_body) {
        char d[128];
        snprintf(d, sizeof d, "response body over %zu bytes", c->opt.max_body);
        ag__complete(r, AG_ETOOBIG, d);
        return 1;
    }
    if (r->body.fwd) {
        int rc = ag__fwd_body(r, p, n);
        if (rc == 0) return 0;
        if (rc == 1) ag__complete(r, r->cancel_code, NULL);
        else if (rc == AG_ETOOBIG) ag__complete(r, rc, "a response line over the cap");
        else body_failed(r, rc, r->dec.errmsg);
        return 1;
    }
    if (r->kind == AG__K_EMPTY) return 0;
    if (r->raw) {
        int rc = raw_lines(r, p, n);
        if (rc) {
            ag__complete(r, rc, rc == AG_ETOOBIG ? "a response line over the cap" : NULL);
            return 1;
        }
        if (r->cancel_req) {
            ag__complete(r, r->cancel_code, NULL);
            return 1;
        }
    }
    int rc = ag__dec_feed(&r->dec, p, n);
    if (r->cancel_req) {
        ag__complete(r, r->cancel_code, NULL);
        return 1;
    }
    if (rc) return rc == AG_EJSON ? body_failed(r, rc, r->dec.errmsg) : (ag__complete(r, rc, r->dec.errmsg), 1);
    ag__progress_check(r);
    if (!r->streaming && !ag__blank_line(p, n)) { /* a whole answer coming: its bytes are its progress */
        r->tprog = ag__now_ns();
        r->prog_bytes = r->body_bytes;
    }
    return 0;
}

/* The server's error message from an error body: {"error": "..."} or a
 * prefix of whatever a proxy sent. */
static void error_message(ag_request *r, char *out, size_t size) {
    const char *body = r->errbody.p ? r->errbody.p : "";
    ag__dec d;
    int ok = r->dialect == AG_API_OPENAI ? ag__dec_init_oai(&d, AG__K_VERSION, 0, r->client->alloc, 1 << 16, NULL, NULL)
                                         : ag__dec_init(&d, AG__K_VERSION, r->client->alloc, 1 << 16, NULL, NULL);
    if (ok == 0) {
        ag__dec_feed(&d, body, r->errbody.len);
        if (ag__dec_finish(&d) == 0 && d.server_error.len) {
            snprintf(out, size, "HTTP %d: %s", r->http_status, d.server_error.p);
            ag__dec_free(&d);
            return;
        }
        ag__dec_free(&d);
    }
    size_t n = r->errbody.len;
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r' || body[n - 1] == ' ')) n--;
    if (n > 200) n = 200;
    char clean[201];
    for (size_t i = 0; i < n; i++) clean[i] = (unsigned char)body[i] < ' ' ? ' ' : body[i];
    clean[n] = 0;
    if (n) snprintf(out, size, "HTTP %d: %s", r->http_status, clean);
    else snprintf(out, size, "HTTP %d with an empty body", r->http_status);
}

static int status_code(int http) {
    switch (http) {
    case 400: return AG_EBADREQUEST;
    case 401:
    case 403: return AG_EAUTH;
    case 404: return AG_ENOTFOUND;
    case 503: return AG_EBUSY;
    default: return AG_EHTTP;
    }
}

int ag__dec_init_for(ag_request *r) {
    ag_client *c = r->client;
    if (r->dialect == AG_API_OPENAI)
        return ag__dec_init_oai(&r->dec, r->body.kind, r->body.oai_sse, c->alloc, c->opt.max_token, ag__sink, r);
    return ag__dec_init(&r->dec, r->body.kind, c->alloc, c->opt.max_token, ag__sink, r);
}

/* Clears what one attempt left behind, for another attempt elsewhere. */
static int reset_attempt(ag_request *r) {
    if (r->prog_on) {
        event_del(&r->prog_ev);
        r->prog_on = 0;
    }
    r->phase = RQ_QUEUED;
    r->http_status = 0;
    r->errbody.len = 0;
    r->rawline.len = 0;
    r->body_bytes = 0;
    r->fwd_errbody = 0;
    int streaming = r->streaming;
    ag__dec_free(&r->dec);
    r->streaming = streaming;
    return ag__dec_init_for(r);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_request *r = arg;
    ag_client *c = r->client;
    if (c->ops->rearm) c->ops->rearm(c, r);
    int rc = c->ops->submit(c, r);
    if (rc) ag__complete(r, rc, rc == AG_ENONODE ? "no healthy node serves the model (retrying with backoff)"
                                             : "could not start the connection (retrying with backoff)");
}

/* Retry with backoff (ag_request_options.retries): 1 when the request waits
 * for its next attempt. */
static int backoff(ag_request *r, int status, const char *detail) {
    ag_client *c = r->client;
    if (r->backoff_left <= 0 || c->ops->no_backoff || r->cancel_req || c->freeing || ag__request_has_output(r) ||
        !(ag__err_class(status, r->http_status) & AG__EC_RETRY) || r->fwd_out)
        return 0;
    if (!r->tm && !(r->tm = ag__calloc(c->alloc, sizeof *r->tm))) return 0;
    /* said before the attempt is reset: detail may live in its decoder */
    ag__log(c, AG_LOG_INFO, "%s (%s); attempt %d in %.3g s", ag_err_name(status),
            detail && *detail ? detail : ag_strerror(status), r->backoff_tries + 2, r->backoff_delay);
    if (reset_attempt(r) != 0) return 0;
    r->backoff_left--;
    r->backoff_tries++;
    if (!r->backoff_on) {
        evtimer_assign(&r->tm->backoff_ev, c->base, backoff_cb, r);
        r->backoff_on = 1;
    }
    struct timeval tv;
    ag__timeval(&tv, r->backoff_delay);
    r->backoff_delay *= r->backoff_factor;
    evtimer_add(&r->tm->backoff_ev, &tv);
    return 1;
}

/* A failed attempt: the backend may send it elsewhere (the pool's failover),
 * or it waits and goes again (retry with backoff); otherwise it completes. */
static void fail_or_retry(ag_request *r, int status, const char *detail) {
    ag_client *c = r->client;
    int st = status;
    if (c->ops->retry && !r->cancel_req && !c->freeing &&
        c->ops->retry(c, r, &st, r->http_status, detail)) {
        if (reset_attempt(r) == 0) return;
        st = AG_ENOMEM;
        if (r->def_detail) r->def_detail[0] = 0;
    } else if (st == status && backoff(r, status, detail)) {
        return;
    }
    if (st != status) {
        status = st;
        detail = r->def_detail;
    }
    if (r->fwd_errbody && !r->fwd_out && r->errbody.len && r->errbody.len < 4096 && !r->cancel_req) {
        ag__fwd_emit(r, r->errbody.p ? r->errbody.p : "", r->errbody.len); /* the node's own words */
        if (r->cancel_req) status = r->cancel_code;
    }
    ag__complete(r, status, detail);
}

static void on_end(void *owner, int err, const char *detail) {
    ag_request *r = owner;
    char msg[600];
    if (r->starting) { /* the transport failed inside the starting call */
        ag__complete_later(r, err ? err : AG_ECONNECT, detail);
        return;
    }
    if (err && r->dec.got_final && !r->dec.server_error.len &&
        (err == AG_ECONNRESET || err == AG_EPROTO)) {
        /* the final object arrived whole; only the framing after it broke */
        ag__complete(r, 0, NULL);
        return;
    }
    if (err) {
        if (ag__request_has_output(r) && (err == AG_ECONNRESET || err == AG_EPROTO)) {
            snprintf(msg, sizeof msg, "%s after %lld chunks (%lld bytes) were delivered",
                     detail ? detail : "connection lost", (long long)r->timing.chunks,
                     (long long)r->timing.bytes);
            fail_or_retry(r, AG_ELOST, msg);
        } else if (ag__request_has_output(r) && err == AG_EIDLE) {
            snprintf(msg, sizeof msg, "%s (after %lld chunks were delivered)", detail,
                     (long long)r->timing.chunks);
            fail_or_retry(r, err, msg);
        } else {
            snprintf(msg, sizeof msg, "%s (in phase %s)", detail ? detail : ag_strerror(err),
                     phase_name(r->phase));
            fail_or_retry(r, err, msg);
        }
        return;
    }
    if (r->phase == RQ_ERRBODY) {
        error_message(r, msg, sizeof msg);
        r->fwd_errbody = r->body.fwd;
        fail_or_retry(r, status_code(r->http_status), msg);
        return;
    }
    if (r->kind == AG__K_EMPTY) {
        ag__complete(r, 0, NULL);
        return;
    }
    if (r->body_bytes == 0) { /* the node's fault: another may answer */
        fail_or_retry(r, AG_ETRUNCATED, "empty response body");
        return;
    }
    if (r->raw && r->rawline.len) raw_lines(r, "\n", 1); /* a last line without newline */
    if (r->body.fwd && r->rawline.len) { /* a whole answer, or a last line without newline */
        int frc = ag__dec_feed(&r->dec, r->rawline.p, r->rawline.len);
        if (frc) {
            fail_or_retry(r, frc, r->dec.errmsg); /* retried only before output */
            return;
        }
    }
    int rc = ag__dec_finish(&r->dec);
    if (r->cancel_req) {
        ag__complete(r, r->cancel_code, NULL);
        return;
    }
    if (r->dec.server_error.len) {
        snprintf(msg, sizeof msg, "%s", r->dec.server_error.p);
        if (r->body.fwd && r->fwd_out && r->rawline.len) { /* the rest of the error line */
            ag__fwd_emit(r, r->rawline.p, r->rawline.len);
            r->rawline.len = 0;
            if (r->cancel_req) {
                ag__complete(r, r->cancel_code, NULL);
                return;
            }
        }
        fail_or_retry(r, AG_ESERVER, msg);
        return;
    }
    if (rc) {
        int lost = rc == AG_EJSON && r->dec.objects > 0 && r->streaming;
        fail_or_retry(r, lost ? AG_ETRUNCATED : rc, r->dec.errmsg); /* retried only before output */
        return;
    }
    if (r->dec.objects == 0) {
        fail_or_retry(r, AG_ETRUNCATED, "no JSON object in the response body");
        return;
    }
    int needs_final = r->kind == AG__K_CHAT || r->kind == AG__K_GENERATE ||
                      (r->kind == AG__K_PULL && r->streaming);
    if (needs_final && !r->dec.got_final) {
        snprintf(msg, sizeof msg, "the stream ended without \"done\": true after %lld chunks",
                 (long long)r->timing.chunks);
        fail_or_retry(r, AG_ETRUNCATED, msg);
        return;
    }
    if (r->body.fwd && r->rawline.len) { /* a last line without a newline (a whole answer) */
        ag__fwd_emit(r, r->rawline.p, r->rawline.len);
        r->rawline.len = 0;
        if (r->cancel_req) {
            ag__complete(r, r->cancel_code, NULL);
            return;
        }
    }
    ag__complete(r, 0, NULL);
}

void ag__c_abort(ag_request *r);

/* the chunks of one read were delivered: a forwarder may flush now */
static void on_read_end(void *owner) {
    ag_request *r = owner;
    if (!r->read_end || r->sunk == r->sunk_at_read_end || r->phase == RQ_DONE) return;
    r->sunk_at_read_end = r->sunk;
    ag_chunk ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = AG_CHUNK_READ_END;
    if (ag__sink(r, &ch)) { /* cancelled from that callback */
        ag__c_abort(r);
        ag__complete(r, r->cancel_code, NULL);
    }
}

const ag__http_ops ag__http_ops_client = {on_sent, on_head, on_body, on_read_end, on_end};

int ag__get_pinned(ag_client *c, const char *path, void *node, const ag_callbacks *cb, ag_request **out) {
    ag__body b;
    memset(&b, 0, sizeof b);
    b.fwd = 1;
    b.kind = AG__K_EMPTY;
    b.method = b.oai_method = "GET";
    b.own_path = ag__strdup(c->alloc, path);
    if (!b.own_path) return AG_ENOMEM;
    b.path = b.oai_path = b.own_path; /* as it is, whatever the node's dialect */
    b.accept = b.oai_accept = "*/*";
    return ag__req_start(c, &b, 0, cb, out, node, NULL);
}

void ag__request_fail_later(ag_request *r, int status, const char *detail) {
    ag__complete_later(r, status, detail);
}

/* ---- controlling requests ---- */
void ag__c_abort(ag_request *r) {
    ag_client *c = r->client;
    if (c->ops->abort) c->ops->abort(c, r);
    else ag__http_abort(&r->http);
}

/* A deadline of the request's own passed (both timers come here; the one
 * for the first token is gone once output arrived). */
void ag__deadline_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_request *r = arg;
    if (r->phase == RQ_DONE) return;
    int first = r->timing.chunks == 0 && r->ttft_on && !evtimer_pending(&r->tm->ttft_ev, NULL);
    char msg[160];
    snprintf(msg, sizeof msg, "%s after %.3f s (%lld chunks delivered)",
             first ? "no output before the first-token deadline" : "the request's deadline passed",
             (double)(ag__now_ns() - r->t0) / 1e9, (long long)r->timing.chunks);
    ag__c_abort(r);
    ag__complete(r, AG_EDEADLINE, msg);
}

void ag_request_cancel(ag_request *r) {
    if (!r || r->phase == RQ_DONE) return;
    if (r->in_cb) { /* inside its own chunk callback: finish after it returns */
        r->cancel_req = 1;
        return;
    }
    ag__c_abort(r);
    ag__complete(r, AG_ECANCELED, NULL);
}

void ag_request_pause(ag_request *r) {
    if (r && r->phase != RQ_DONE) ag__http_pause(&r->http, 1);
}
void ag_request_resume(ag_request *r) {
    if (r && r->phase != RQ_DONE) ag__http_pause(&r->http, 0);
}
void ag_request_set_raw(ag_request *r, int on) {
    if (r) r->raw = on ? 1 : 0;
}
