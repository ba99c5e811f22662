/* core/forward.c - ag_forward(): a body sent as is, the node's bytes
 * delivered unchanged (what `agents gateway` does); chat and generate answers
 * decoded on the side, line by line. */
#include "core/internal.h"
#include "core/errclass.h"
#include "core/base/hash.h"
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ag_forward(): the node's bytes, unchanged ---- */
int ag__fwd_emit(ag_request *r, const char *p, size_t n) {
    ag_chunk ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = AG_CHUNK_BODY;
    ch.text = p;
    ch.len = n;
    ch.index = r->http_status;
    r->fwd_out = 1;
    r->timing.bytes += (int64_t)n; /* forwarded: the body bytes the caller has */
    return ag__sink(r, &ch);
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
        ag__note_chunk(r);
        r->dec.objects++;
        ag__progress_at(r, r->tlast);
        return 0;
    }
    int rc = ag__dec_feed(&r->dec, line, len);
    if (r->cancel_req) return 1;
    ag__progress_check(r);
    return rc;
}

int ag__blank_line(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\n' && p[i] != '\r' && p[i] != ' ' && p[i] != '\t') return 0;
    return 1;
}

/* Decoded answers go out in whole lines, each after it was looked at, so
 * that an error line before any output stays with this attempt (the pool
 * may retry it elsewhere). The complete lines of one read go out as one
 * chunk. 0, or an AG_E* code (not completed yet), or 1 when cancelled from
 * the callback. */
int ag__fwd_body(ag_request *r, const char *p, size_t n) {
    ag_client *c = r->client;
    if (r->kind == AG__K_EMPTY) return ag__fwd_emit(r, p, n);
    size_t cap = r->streaming ? c->opt.max_token : c->opt.max_body;
    if (r->rawline.len) { /* complete the line held from the last read */
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        if (r->rawline.len + k > cap) return AG_ETOOBIG;
        if (ag__buf_add(c->alloc, &r->rawline, p, k)) return AG_ENOMEM;
        p += k;
        n -= k;
        if (!nl) return 0;
        if (!r->fwd_out && ag__blank_line(r->rawline.p, r->rawline.len)) {
            r->rawline.len = 0; /* blank lines before any output are not output */
            return ag__fwd_body(r, p, n);
        }
        int rc = fwd_line(r, r->rawline.p, r->rawline.len);
        if (rc) return rc;
        if (r->dec.server_error.len && !r->fwd_out) return 0; /* held: see on_end */
        if (ag__fwd_emit(r, r->rawline.p, r->rawline.len)) return 1;
        r->rawline.len = 0;
    }
    size_t span = 0; /* complete lines looked at, not yet emitted */
    while (span < n) {
        const char *nl = memchr(p + span, '\n', n - span);
        if (!nl) break;
        size_t k = (size_t)(nl - (p + span)) + 1;
        if (!r->fwd_out && span == 0 && ag__blank_line(p, k)) { /* not output: dropped */
            p += k;
            n -= k;
            continue;
        }
        int rc = fwd_line(r, p + span, k);
        if (rc) return rc;
        if (r->dec.server_error.len && !r->fwd_out && span == 0) return 0; /* held: see on_end */
        span += k;
    }
    if (span && ag__fwd_emit(r, p, span)) return 1;
    if (span < n) {
        if (n - span > cap) return AG_ETOOBIG;
        if (ag__buf_add(c->alloc, &r->rawline, p + span, n - span)) return AG_ENOMEM;
    }
    return 0;
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
    return ag__req_start(c, &b, p->stream ? 1 : 0, cb, out, NULL, p->request);
}

int ag__admin_pinned(ag_client *c, int op, const ag_model_params *p, void *node,
                     const ag_callbacks *cb, ag_request **out) {
    ag__body b;
    int rc = ag__encode_admin(c->alloc, op, p, &b);
    if (rc) return rc;
    ag__encode_admin_oai(op, &b); /* a probe may go to either kind of node */
    return ag__req_start(c, &b, 0, cb, out, node, NULL);
}
