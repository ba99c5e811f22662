/* core/client.c - the client contract and the request state machine every backend shares
 * (the local client is core/local.c, the pool core/pool/).
 *
 * A request moves QUEUED (waiting for a node, a connection, a connect) ->
 * HEAD (sent, waiting for the answer's head) -> STREAM (or ERRBODY) -> DONE;
 * a retry elsewhere goes back to QUEUED. The handlers below are driven by
 * the transport's four callbacks; every path that ends a request goes
 * through complete(), which runs the user's done callback exactly once and
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

static void client_real_free(ag_client *c);

/* ---- completion ---- */
static void req_unlink(ag_request *r) {
    if (!r->prev) return;
    *r->prev = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = NULL;
    r->next = NULL;
}

static void req_free(ag_request *r) {
    ag_client *c = r->client;
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

static void complete(ag_request *r, int status, const char *detail) {
    ag_client *c = r->client;
    if (r->phase == RQ_DONE) return;
    r->phase = RQ_DONE;
    req_unlink(r);
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
    req_free(r);
    if (c->freeing && c->in_cb == 0 && !c->reqs) {
        /* freed from a callback: finish from the loop, off this stack */
        event_active(&c->free_ev, EV_TIMEOUT, 1);
    }
}

static void defer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_request *r = arg;
    complete(r, r->def_status, r->def_detail);
}

char *ag__request_detail(ag_request *r) {
    if (!r->def_detail) {
        r->def_detail = ag__malloc(r->client->alloc, AG__DETAIL);
        if (r->def_detail) r->def_detail[0] = 0;
    }
    return r->def_detail;
}

/* Completes from the loop, never inside the current call. */
static void complete_later(ag_request *r, int status, const char *detail) {
    if (r->deferred) return;
    r->deferred = 1;
    r->def_status = status;
    char *d = ag__request_detail(r);
    if (d) snprintf(d, AG__DETAIL, "%s", detail ? detail : "");
    event_active(&r->defer_ev, EV_TIMEOUT, 1);
}

/* ---- decoder sink: chunks to the user, measured ---- */
/* a chunk of output now: time to first token, the gap since the last one */
static void note_chunk(ag_request *r) {
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

static int sink(void *ctx, const ag_chunk *ch) {
    ag_request *r = ctx;
    ag_client *c = r->client;
    if (r->cancel_req) return 1;
    if (ch->kind == AG_CHUNK_CONTENT || ch->kind == AG_CHUNK_THINKING ||
        ch->kind == AG_CHUNK_TOOL_CALL) {
        note_chunk(r);
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
    sink(r, ch);
    if (r->cancel_req) { /* ended from inside the caller's callback */
        complete(r, r->cancel_code, NULL);
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
            complete_later(r, AG_ENOMEM, NULL);
            return 0;
        }
        r->bres_owned = 1;
        complete_later(r, res->status, res->error);
        return 0;
    }
    r->bres = (ag_result *)res;
    complete(r, res->status, res->error);
    return 0;
}

/* output at time now: what the progress timer compares with */
static inline void progress_at(ag_request *r, int64_t now) {
    r->prog_objects = r->dec.objects;
    r->prog_bytes = r->body_bytes;
    r->tprog = now;
}
/* output arrived: an object decoded since the last look */
static inline void progress_check(ag_request *r) {
    if (r->dec.objects != r->prog_objects) progress_at(r, ag__now_ns());
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
            if (sink(r, &ch)) return 0;
        }
        r->rawline.len = 0;
        p = nl + 1;
        n -= k + 1;
    }
    return 0;
}

/* ---- ag_forward(): the node's bytes, unchanged ---- */
static int fwd_emit(ag_request *r, const char *p, size_t n) {
    ag_chunk ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = AG_CHUNK_BODY;
    ch.text = p;
    ch.len = n;
    ch.index = r->http_status;
    r->fwd_out = 1;
    r->timing.bytes += (int64_t)n; /* forwarded: the body bytes the caller has */
    return sink(r, &ch);
}

/* A streamed token line from an Ollama node ends with "done":false}: it is
 * counted for the metrics without being decoded (the bytes go to the caller
 * unchanged either way). Every other line (the final one with its figures,
 * an error line, anything unusual) goes through the decoder. */
static int fwd_token_line(const ag_request *r, const char *line, size_t len) {
    static const char tail[] = "\"done\":false}";
    if (!r->streaming || r->dialect != AG_API_OLLAMA || len < sizeof tail || line[0] != '{') return 0;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    return len >= sizeof tail - 1 && memcmp(line + len - (sizeof tail - 1), tail, sizeof tail - 1) == 0;
}


/* One whole line: counted or decoded. 0, 1 (cancelled) or an AG_E* code. */
static int fwd_line(ag_request *r, const char *line, size_t len) {
    if (fwd_token_line(r, line, len)) {
        note_chunk(r);
        r->dec.objects++;
        progress_at(r, r->tlast);
        return 0;
    }
    int rc = ag__dec_feed(&r->dec, line, len);
    if (r->cancel_req) return 1;
    progress_check(r);
    return rc;
}

static int blank_line(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\n' && p[i] != '\r' && p[i] != ' ' && p[i] != '\t') return 0;
    return 1;
}

/* Decoded answers go out in whole lines, each after it was looked at, so
 * that an error line before any output stays with this attempt (the pool
 * may retry it elsewhere). The complete lines of one read go out as one
 * chunk. 0, or an AG_E* code (not completed yet), or 1 when cancelled from
 * the callback. */
static int fwd_body(ag_request *r, const char *p, size_t n) {
    ag_client *c = r->client;
    if (r->kind == AG__K_EMPTY) return fwd_emit(r, p, n);
    size_t cap = r->streaming ? c->opt.max_token : c->opt.max_body;
    if (r->rawline.len) { /* complete the line held from the last read */
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        if (r->rawline.len + k > cap) return AG_ETOOBIG;
        if (ag__buf_add(c->alloc, &r->rawline, p, k)) return AG_ENOMEM;
        p += k;
        n -= k;
        if (!nl) return 0;
        if (!r->fwd_out && blank_line(r->rawline.p, r->rawline.len)) {
            r->rawline.len = 0; /* blank lines before any output are not output */
            return fwd_body(r, p, n);
        }
        int rc = fwd_line(r, r->rawline.p, r->rawline.len);
        if (rc) return rc;
        if (r->dec.server_error.len && !r->fwd_out) return 0; /* held: see on_end */
        if (fwd_emit(r, r->rawline.p, r->rawline.len)) return 1;
        r->rawline.len = 0;
    }
    size_t span = 0; /* complete lines looked at, not yet emitted */
    while (span < n) {
        const char *nl = memchr(p + span, '\n', n - span);
        if (!nl) break;
        size_t k = (size_t)(nl - (p + span)) + 1;
        if (!r->fwd_out && span == 0 && blank_line(p, k)) { /* not output: dropped */
            p += k;
            n -= k;
            continue;
        }
        int rc = fwd_line(r, p + span, k);
        if (rc) return rc;
        if (r->dec.server_error.len && !r->fwd_out && span == 0) return 0; /* held: see on_end */
        span += k;
    }
    if (span && fwd_emit(r, p, span)) return 1;
    if (span < n) {
        if (n - span > cap) return AG_ETOOBIG;
        if (ag__buf_add(c->alloc, &r->rawline, p + span, n - span)) return AG_ENOMEM;
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
        complete(r, status, detail);
    }
    return 1;
}

static void c_abort(ag_request *r);

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
    progress_check(r);
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
        c_abort(r);
        complete(r, AG_EIDLE, msg);
    }
}

static void on_sent(void *owner) {
    ag_request *r = owner;
    r->phase = RQ_HEAD;
    double fb = fb_timeout(r);
    r->tsent = ag__now_ns();
    progress_at(r, r->tsent);
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
            complete(r, AG_ENOMEM, "out of memory");
            return 1;
        }
        return 0;
    }
    r->body_bytes += n;
    if (!r->streaming && r->body_bytes > c->opt.max_body) {
        char d[128];
        snprintf(d, sizeof d, "response body over %zu bytes", c->opt.max_body);
        complete(r, AG_ETOOBIG, d);
        return 1;
    }
    if (r->body.fwd) {
        int rc = fwd_body(r, p, n);
        if (rc == 0) return 0;
        if (rc == 1) complete(r, r->cancel_code, NULL);
        else if (rc == AG_ETOOBIG) complete(r, rc, "a response line over the cap");
        else body_failed(r, rc, r->dec.errmsg);
        return 1;
    }
    if (r->kind == AG__K_EMPTY) return 0;
    if (r->raw) {
        int rc = raw_lines(r, p, n);
        if (rc) {
            complete(r, rc, rc == AG_ETOOBIG ? "a response line over the cap" : NULL);
            return 1;
        }
        if (r->cancel_req) {
            complete(r, r->cancel_code, NULL);
            return 1;
        }
    }
    int rc = ag__dec_feed(&r->dec, p, n);
    if (r->cancel_req) {
        complete(r, r->cancel_code, NULL);
        return 1;
    }
    if (rc) return rc == AG_EJSON ? body_failed(r, rc, r->dec.errmsg) : (complete(r, rc, r->dec.errmsg), 1);
    progress_check(r);
    if (!r->streaming && !blank_line(p, n)) { /* a whole answer coming: its bytes are its progress */
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

static int dec_init_for(ag_request *r) {
    ag_client *c = r->client;
    if (r->dialect == AG_API_OPENAI)
        return ag__dec_init_oai(&r->dec, r->body.kind, r->body.oai_sse, c->alloc, c->opt.max_token, sink, r);
    return ag__dec_init(&r->dec, r->body.kind, c->alloc, c->opt.max_token, sink, r);
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
    return dec_init_for(r);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_request *r = arg;
    ag_client *c = r->client;
    if (c->ops->rearm) c->ops->rearm(c, r);
    int rc = c->ops->submit(c, r);
    if (rc) complete(r, rc, rc == AG_ENONODE ? "no healthy node serves the model (retrying with backoff)"
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
        fwd_emit(r, r->errbody.p ? r->errbody.p : "", r->errbody.len); /* the node's own words */
        if (r->cancel_req) status = r->cancel_code;
    }
    complete(r, status, detail);
}

static void on_end(void *owner, int err, const char *detail) {
    ag_request *r = owner;
    char msg[600];
    if (r->starting) { /* the transport failed inside the starting call */
        complete_later(r, err ? err : AG_ECONNECT, detail);
        return;
    }
    if (err && r->dec.got_final && !r->dec.server_error.len &&
        (err == AG_ECONNRESET || err == AG_EPROTO)) {
        /* the final object arrived whole; only the framing after it broke */
        complete(r, 0, NULL);
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
        complete(r, 0, NULL);
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
        complete(r, r->cancel_code, NULL);
        return;
    }
    if (r->dec.server_error.len) {
        snprintf(msg, sizeof msg, "%s", r->dec.server_error.p);
        if (r->body.fwd && r->fwd_out && r->rawline.len) { /* the rest of the error line */
            fwd_emit(r, r->rawline.p, r->rawline.len);
            r->rawline.len = 0;
            if (r->cancel_req) {
                complete(r, r->cancel_code, NULL);
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
        fwd_emit(r, r->rawline.p, r->rawline.len);
        r->rawline.len = 0;
        if (r->cancel_req) {
            complete(r, r->cancel_code, NULL);
            return;
        }
    }
    complete(r, 0, NULL);
}

static void c_abort(ag_request *r);

/* the chunks of one read were delivered: a forwarder may flush now */
static void on_read_end(void *owner) {
    ag_request *r = owner;
    if (!r->read_end || r->sunk == r->sunk_at_read_end || r->phase == RQ_DONE) return;
    r->sunk_at_read_end = r->sunk;
    ag_chunk ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = AG_CHUNK_READ_END;
    if (sink(r, &ch)) { /* cancelled from that callback */
        c_abort(r);
        complete(r, r->cancel_code, NULL);
    }
}

static const ag__http_ops http_ops = {on_sent, on_head, on_body, on_read_end, on_end};

/* ---- starting requests ---- */
static void deadline_cb(evutil_socket_t fd, short what, void *arg);


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

static int req_start(ag_client *c, ag__body *body, int streaming, const ag_callbacks *cb,
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
    r->http.ops = &http_ops;
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
    event_assign(&r->defer_ev, c->base, -1, 0, defer_cb, r);
    struct timeval tv;
    if (ro && (ro->deadline > 0 || ro->first_token_deadline > 0) &&
        !(r->tm = ag__calloc(c->alloc, sizeof *r->tm))) {
        req_free(r);
        return AG_ENOMEM;
    }
    if (r->tm) {
        double by = ro->deadline > 0 ? ro->deadline : ro->first_token_deadline;
        if (ro->first_token_deadline > 0 && ro->first_token_deadline < by) by = ro->first_token_deadline;
        r->tm->start_by = ag__now_ns() + (int64_t)(by * 1e9);
    }
    if (ro && ro->deadline > 0) {
        evtimer_assign(&r->tm->deadline_ev, c->base, deadline_cb, r);
        ag__timeval(&tv, ro->deadline);
        evtimer_add(&r->tm->deadline_ev, &tv);
        r->deadline_on = 1;
    }
    if (ro && ro->first_token_deadline > 0) {
        evtimer_assign(&r->tm->ttft_ev, c->base, deadline_cb, r);
        ag__timeval(&tv, ro->first_token_deadline);
        evtimer_add(&r->tm->ttft_ev, &tv);
        r->ttft_on = 1;
    }
    r->dialect = c->oai_mode == 1 ? AG_API_OPENAI : AG_API_OLLAMA;
    if (body->fwd) r->dialect = strncmp(body->path, "/v1/", 4) == 0 ? AG_API_OPENAI : AG_API_OLLAMA;
    if (dec_init_for(r)) {
        req_free(r);
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
        req_unlink(r);
        if (!r->pinned) {
            c->in_flight--;
            c->started--;
        }
        req_free(r);
        return rc;
    }
    if (rc) {
        char msg[320];
        if (rc == AG_ENONODE)
            snprintf(msg, sizeof msg, "no healthy node serves model \"%s\"", r->body.model);
        else
            snprintf(msg, sizeof msg, "%s", c->ops->no_backoff ? "the backend refused the request" : "could not start the connection");
        complete_later(r, rc, msg);
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
        rc = dec_init_for(r);
    }
    return rc;
}

int ag_chat(ag_client *c, const ag_chat_params *p, const ag_callbacks *cb, ag_request **out) {
    if (!c || !p) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    int rc = c->oai_mode != 1 ? ag__encode_chat(c->alloc, p, &b) : 0;
    if (!rc && c->oai_mode) rc = ag__encode_chat_oai(c->alloc, p, &b);
    if (rc) {
        ag__body_free(c->alloc, &b);
        return rc;
    }
    b.params = p;
    return req_start(c, &b, !p->gen.no_stream, cb, out, NULL, p->request);
}

int ag_generate(ag_client *c, const ag_generate_params *p, const ag_callbacks *cb,
                ag_request **out) {
    if (!c || !p) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    int rc = c->oai_mode != 1 ? ag__encode_generate(c->alloc, p, &b) : 0;
    if (!rc && c->oai_mode) rc = ag__encode_generate_oai(c->alloc, p, &b);
    if (rc) {
        ag__body_free(c->alloc, &b);
        return rc;
    }
    b.params = p;
    return req_start(c, &b, !p->gen.no_stream, cb, out, NULL, p->request);
}

int ag_embed(ag_client *c, const ag_embed_params *p, const ag_callbacks *cb, ag_request **out) {
    if (!c || !p) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    int rc = c->oai_mode != 1 || p->legacy ? ag__encode_embed(c->alloc, p, &b) : 0;
    if (!rc && c->oai_mode && !p->legacy) rc = ag__encode_embed_oai(c->alloc, p, &b);
    if (rc) {
        ag__body_free(c->alloc, &b);
        return rc;
    }
    b.params = p;
    return req_start(c, &b, 0, cb, out, NULL, p->request);
}

int ag_admin(ag_client *c, int op, const ag_model_params *p, const ag_callbacks *cb,
             ag_request **out) {
    if (!c) return AG_EINVAL;
    ag__body b;
    int rc = ag__encode_admin(c->alloc, op, p, &b);
    if (rc) return rc;
    if (c->oai_mode) ag__encode_admin_oai(op, &b);
    if (c->oai_mode == 1 && !b.oai_path) { /* model management is Ollama's */
        ag__body_free(c->alloc, &b);
        return AG_EINVAL;
    }
    b.params = p;
    b.op = op;
    return req_start(c, &b, op == AG_OP_PULL && !(p && p->no_stream), cb, out, NULL, p ? p->request : NULL);
}

static int fwd_kind(const char *path, int *oai) {
    size_t n = strcspn(path, "?");
    *oai = 0;
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(path, lit, n) == 0)
    if (IS("/api/chat")) return AG__K_CHAT;
    if (IS("/api/generate")) return AG__K_GENERATE;
    *oai = 1;
    if (IS("/v1/chat/completions")) return AG__K_CHAT;
    if (IS("/v1/completions")) return AG__K_GENERATE;
#undef IS
    *oai = 0;
    return AG__K_EMPTY;
}

static int clean(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= ' ' || s[n] == 0x7f || n >= max) return 0;
    return 1;
}

int ag_forward(ag_client *c, const ag_forward_params *p, const ag_callbacks *cb, ag_request **out) {
    if (!c || !p || !p->method || !p->path || p->path[0] != '/' || !clean(p->path, 4096))
        return AG_EINVAL;
    static const char *const methods[] = {"GET", "POST", "DELETE", "HEAD", "PUT"};
    const char *method = NULL;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(p->method, methods[i]) == 0) method = methods[i];
    if (!method || (p->body_len && !p->body)) return AG_EINVAL;
    if (p->model && (strlen(p->model) > 255 || strpbrk(p->model, "\r\n"))) return AG_EINVAL;
    if (p->node && (strlen(p->node) >= 300 || !clean(p->node, 300))) return AG_EINVAL;
    ag__body b;
    memset(&b, 0, sizeof b);
    b.fwd = 1;
    int oai;
    b.kind = fwd_kind(p->path, &oai);
    b.method = b.oai_method = method;
    b.is_head = method == methods[3];
    size_t pl = strlen(p->path);
    b.own_path = ag__malloc(c->alloc, pl + 1);
    if (!b.own_path) return AG_ENOMEM;
    memcpy(b.own_path, p->path, pl + 1);
    b.path = b.own_path;
    if (strncmp(p->path, "/v1/", 4) == 0) b.oai_path = b.own_path; /* both kinds of node serve it */
    b.accept = b.oai_accept = "*/*";
    b.oai_sse = oai && p->stream;
    if (p->body) {
        b.data = ag__malloc(c->alloc, p->body_len + 1);
        if (!b.data) {
            ag__body_free(c->alloc, &b);
            return AG_ENOMEM;
        }
        memcpy(b.data, p->body, p->body_len);
        b.data[p->body_len] = 0;
        b.len = p->body_len;
    }
    if (ag__body_set_model(c->alloc, &b, p->model)) {
        ag__body_free(c->alloc, &b);
        return AG_ENOMEM;
    }
    if (p->node && *p->node && !(b.pin = ag__strdup(c->alloc, p->node))) {
        ag__body_free(c->alloc, &b);
        return AG_ENOMEM;
    }
    b.params = p;
    return req_start(c, &b, p->stream ? 1 : 0, cb, out, NULL, p->request);
}

int ag__admin_pinned(ag_client *c, int op, const ag_model_params *p, void *node,
                     const ag_callbacks *cb, ag_request **out) {
    ag__body b;
    int rc = ag__encode_admin(c->alloc, op, p, &b);
    if (rc) return rc;
    ag__encode_admin_oai(op, &b); /* a probe may go to either kind of node */
    return req_start(c, &b, 0, cb, out, node, NULL);
}

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
    return req_start(c, &b, 0, cb, out, node, NULL);
}

void ag__request_fail_later(ag_request *r, int status, const char *detail) {
    complete_later(r, status, detail);
}

/* ---- controlling requests ---- */
static void c_abort(ag_request *r) {
    ag_client *c = r->client;
    if (c->ops->abort) c->ops->abort(c, r);
    else ag__http_abort(&r->http);
}

/* A deadline of the request's own passed (both timers come here; the one
 * for the first token is gone once output arrived). */
static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_request *r = arg;
    if (r->phase == RQ_DONE) return;
    int first = r->timing.chunks == 0 && r->ttft_on && !evtimer_pending(&r->tm->ttft_ev, NULL);
    char msg[160];
    snprintf(msg, sizeof msg, "%s after %.3f s (%lld chunks delivered)",
             first ? "no output before the first-token deadline" : "the request's deadline passed",
             (double)(ag__now_ns() - r->t0) / 1e9, (long long)r->timing.chunks);
    c_abort(r);
    complete(r, AG_EDEADLINE, msg);
}

void ag_request_cancel(ag_request *r) {
    if (!r || r->phase == RQ_DONE) return;
    if (r->in_cb) { /* inside its own chunk callback: finish after it returns */
        r->cancel_req = 1;
        return;
    }
    c_abort(r);
    complete(r, AG_ECANCELED, NULL);
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

static void free_ev_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    client_real_free(arg);
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

static void client_real_free(ag_client *c) {
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
        c_abort(r);
        complete(r, AG_ESHUTDOWN, "client freed while the request was pending");
    }
    if (c->in_cb == 0 && !c->reqs) client_real_free(c);
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
