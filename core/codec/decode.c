/* core/codec/decode.c - the response decoders' entry points: feed, finish,
 * free, result, whatever the dialect; NDJSON feeding in slices (a token that
 * never ends is caught by the cap); the key table and number parsing.
 *
 * One yajl handle per response, multiple values allowed (NDJSON), fed the
 * body bytes as they come off the socket. The decoder tracks where it is with
 * a small stack of (container, key) and acts on the leaves it knows; text
 * pieces go to the sink straight from yajl's buffer (zero copy), numbers are
 * parsed from yajl's raw number text, embeddings land in one float array.
 */
#include "core/codec/codec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static const struct {
    const char *name;
    uint8_t len, id;
} keys[] = {
#define KEY(s, id) {s, sizeof(s) - 1, id}
    KEY("message", K_MESSAGE), KEY("content", K_CONTENT), KEY("done", K_DONE),
    KEY("model", K_MODEL), KEY("created_at", K_CREATED_AT), KEY("role", K_ROLE),
    KEY("response", K_RESPONSE), KEY("thinking", K_THINKING), KEY("tool_calls", K_TOOL_CALLS),
    KEY("function", K_FUNCTION), KEY("name", K_NAME), KEY("arguments", K_ARGUMENTS),
    KEY("index", K_INDEX), KEY("done_reason", K_DONE_REASON),
    KEY("total_duration", K_TOTAL_DURATION), KEY("load_duration", K_LOAD_DURATION),
    KEY("prompt_eval_count", K_PROMPT_EVAL_COUNT),
    KEY("prompt_eval_duration", K_PROMPT_EVAL_DURATION), KEY("eval_count", K_EVAL_COUNT),
    KEY("eval_duration", K_EVAL_DURATION), KEY("context", K_CONTEXT), KEY("error", K_ERROR),
    KEY("embeddings", K_EMBEDDINGS), KEY("embedding", K_EMBEDDING), KEY("models", K_MODELS),
    KEY("digest", K_DIGEST), KEY("size", K_SIZE), KEY("modified_at", K_MODIFIED_AT),
    KEY("expires_at", K_EXPIRES_AT), KEY("size_vram", K_SIZE_VRAM), KEY("details", K_DETAILS),
    KEY("family", K_FAMILY), KEY("format", K_FORMAT), KEY("parameter_size", K_PARAMETER_SIZE),
    KEY("quantization_level", K_QUANTIZATION_LEVEL), KEY("parent_model", K_PARENT_MODEL),
    KEY("modelfile", K_MODELFILE), KEY("parameters", K_PARAMETERS), KEY("template", K_TEMPLATE),
    KEY("capabilities", K_CAPABILITIES), KEY("version", K_VERSION), KEY("status", K_STATUS),
    KEY("total", K_TOTAL), KEY("completed", K_COMPLETED),
    KEY("choices", K_CHOICES), KEY("delta", K_DELTA), KEY("finish_reason", K_FINISH_REASON),
    KEY("usage", K_USAGE), KEY("prompt_tokens", K_PROMPT_TOKENS),
    KEY("completion_tokens", K_COMPLETION_TOKENS), KEY("reasoning_content", K_REASONING_CONTENT),
    KEY("reasoning", K_REASONING), KEY("text", K_TEXT), KEY("data", K_DATA), KEY("id", K_ID),
#undef KEY
};

/* The most frequent keys of a streamed chunk come first in the table. */
int ag__key_id(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].len == n && memcmp(keys[i].name, s, n) == 0) return keys[i].id;
    return K_OTHER;
}


/* ---- small helpers ---- */
void ag__copy_fixed(char *dst, size_t cap, const unsigned char *s, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

void ag__sstr_grow_set(const ag_alloc_funcs *a, ag__sstr *dst, const void *s, size_t n, size_t max) {
    if (n >= max) n = max - 1;
    if (n + 1 > dst->cap) {
        size_t cap = (n + 16) & ~(size_t)15;
        char *p = ag__realloc(a, dst->p, cap);
        if (!p) return;
        dst->p = p;
        dst->cap = cap;
    }
    memcpy(dst->p, s, n);
    dst->p[n] = 0;
}

/* Parses a JSON integer; non-integers are truncated toward zero. */
int64_t ag__parse_i64(const char *s, size_t n) {
    int neg = 0;
    size_t i = 0;
    uint64_t v = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) return neg ? INT64_MIN : INT64_MAX;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n) { /* fraction or exponent: fall back */
        char tmp[64];
        if (n >= sizeof tmp) return neg ? INT64_MIN : INT64_MAX;
        memcpy(tmp, s, n);
        tmp[n] = 0;
        double d = strtod(tmp, NULL);
        if (d >= 9.2e18) return INT64_MAX;
        if (d <= -9.2e18) return INT64_MIN;
        return (int64_t)d;
    }
    if (v > (uint64_t)INT64_MAX) return neg ? INT64_MIN : INT64_MAX;
    return neg ? -(int64_t)v : (int64_t)v;
}

static const double pow10tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* JSON number to double, fast for the shapes servers write (up to 19
 * significant digits, small exponents), exact strtod otherwise. */
double ag__parse_double(const char *s, size_t n) {
    size_t i = 0;
    int neg = 0, digits = 0;
    uint64_t m = 0;
    int exp10 = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    while (i < n && s[i] == '0') i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (digits < 19) { m = m * 10 + (uint64_t)(s[i] - '0'); digits++; }
        else exp10++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (digits == 0)
            while (i < n && s[i] == '0') { i++; exp10--; }
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 19) { m = m * 10 + (uint64_t)(s[i] - '0'); digits++; exp10--; }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, e = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) { eneg = s[i] == '-'; i++; }
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 10000) e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
    }
    if (i == n && m < (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        d = exp10 < 0 ? d / pow10tab[-exp10] : d * pow10tab[exp10];
        return neg ? -d : d;
    }
    char tmp[512];
    if (n >= sizeof tmp) n = sizeof tmp - 1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return strtod(tmp, NULL);
}


/* Feeds in slices so that one token that never ends (a 10 GB string) is
 * caught by the cap before yajl has buffered much more than the cap. */
#define SLICE 65536
static int feed_slices(ag__dec *d, const char *p, size_t n);
int ag__dec_feed_json(ag__dec *d, const char *p, size_t n) {
    if (d->err) return d->err;
    if (d->stopped) return 0;
    if (!d->fast) return feed_slices(d, p, n);
    while (n > 0) { /* line by line: whole token lines of the usual shape skip yajl */
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        if (nl && d->line_start && d->depth == 0) {
            size_t l = k - 1;
            if (l && p[l - 1] == '\r') l--;
            if (l && ag__dec_fast_line(d, p, l)) {
                d->fed += k;
                d->last_token_at = d->fed;
                p += k;
                n -= k;
                if (d->stopped) return 0;
                continue;
            }
        }
        if (!nl) { /* a tail with no line end yet: is it only blanks so far? */
            if (d->line_start) {
                d->tail_ws = 1;
                d->tail_objs = d->objects;
            }
            for (size_t i = 0; i < k && d->tail_ws; i++)
                d->tail_ws = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
        }
        int rc = feed_slices(d, p, k);
        if (rc || d->stopped) return rc;
        d->line_start = nl != NULL;
        p += k;
        n -= k;
    }
    return 0;
}

static int feed_slices(ag__dec *d, const char *p, size_t n) {
    if (d->err) return d->err;
    if (d->stopped) return 0;
    while (n > 0) {
        size_t k = n > SLICE ? SLICE : n;
        d->token_seen = 0;
        yajl_status st = yajl_parse(d->yh, (const unsigned char *)p, k);
        d->fed += k;
        if (d->token_seen) d->last_token_at = d->fed - k;
        if (st != yajl_status_ok) {
            if (d->stopped && !d->err) return 0;
            return ag__dec_parse_error(d, (const unsigned char *)p, k);
        }
        if (d->max_token && d->fed - d->last_token_at > d->max_token + SLICE)
            return fail(d, AG_ETOOBIG, "a JSON token over the cap"), d->err;
        p += k;
        n -= k;
    }
    return 0;
}



static int embed_to_yajl(ag__dec *d) {
    d->ekeep = 0;
    int rc = ag__dec_feed_json(d, d->ebuf.p ? d->ebuf.p : "", d->ebuf.len);
    ag__buf_free(d->alloc, &d->ebuf);
    return rc;
}

int ag__dec_feed(ag__dec *d, const char *p, size_t n) {
    if (d->err) return d->err;
    if (d->stopped) return 0;
    if (d->ekeep) {
        if (d->ebuf.len + n <= EMBED_KEEP) {
            if (ag__buf_add(d->alloc, &d->ebuf, p, n)) return fail(d, AG_ENOMEM, "out of memory"), d->err;
            return 0;
        }
        int rc = embed_to_yajl(d);
        if (rc) return rc;
    }
    if (d->sse && !d->sse_decided) {
        /* a server asked for a stream may answer with one whole JSON object
         * (some do when they do not stream): take it as such */
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
        if (i == n) return 0; /* blanks only so far */
        d->sse_decided = 1;
        if (p[i] == '{') d->sse = 0;
    }
    return d->sse ? ag__dec_sse_feed(d, p, n) : ag__dec_feed_json(d, p, n);
}

int ag__dec_finish(ag__dec *d) {
    if (d->err) return d->err;
    if (d->stopped) return 0;
    if (d->ekeep) {
        d->ekeep = 0;
        if (ag__dec_fast_embed(d, d->ebuf.p ? d->ebuf.p : "", d->ebuf.len)) {
            ag__buf_free(d->alloc, &d->ebuf);
            return d->err;
        }
        int rc = embed_to_yajl(d);
        if (rc) return rc;
    }
    if (d->oai && d->oai_ncalls && (d->finish_seen || d->got_final)) ag__dec_oai_flush_calls(d);
    /* a last line that is neither blank nor a whole object: an error, whichever
     * path read the lines before it (yajl alone lets a cut value pass after a
     * whole one, and calls it an error when it saw none) */
    if (d->fast && !d->line_start && !d->tail_ws && d->depth == 0 && d->objects == d->tail_objs)
        return fail(d, AG_EJSON, "malformed JSON: the last line is cut short or not an object"), d->err;
    /* whole lines only, some of them read by the fast path: yajl holds nothing
     * unfinished (and may have seen no value at all, which it would call an error) */
    if (d->fast && (d->line_start || d->tail_ws) && d->depth == 0 && d->objects > 0) return 0;
    yajl_status st = yajl_complete_parse(d->yh);
    if (st != yajl_status_ok) {
        if (d->stopped && !d->err) return 0;
        return ag__dec_parse_error(d, NULL, 0);
    }
    return 0;
}

void ag__dec_free(ag__dec *d) {
    if (d->yh) yajl_free(d->yh);
    if (d->cap) yajl_gen_free(d->cap);
    ag__buf_free(d->alloc, &d->args);
    ag__buf_free(d->alloc, &d->tname);
    ag__buf_free(d->alloc, &d->fast_text);
    ag__buf_free(d->alloc, &d->ebuf);
    ag__buf_free(d->alloc, &d->server_error);
    ag__buf_free(d->alloc, &d->status);
    ag__buf_free(d->alloc, &d->digest);
    for (int i = 0; d->oai_calls && i < 8; i++) {
        ag__buf_free(d->alloc, &d->oai_calls->name[i]);
        ag__buf_free(d->alloc, &d->oai_calls->args[i]);
    }
    ag__free(d->alloc, d->oai_calls);
    ag__free(d->alloc, d->vec);
    ag__free(d->alloc, d->ctxv);
    ag__free(d->alloc, d->models);
    ag__free(d->alloc, d->caps);
    ag__arena_free(d->alloc, &d->arena);
    ag__free(d->alloc, d->model.p);
    ag__free(d->alloc, d->created_at.p);
    ag__free(d->alloc, d->done_reason.p);
    ag__free(d->alloc, d->version.p);
    memset(d, 0, sizeof *d);
}

void ag__dec_result(ag__dec *d, ag_result *r) {
    r->model = ag__sstr_get(&d->model);
    r->created_at = ag__sstr_get(&d->created_at);
    r->done_reason = ag__sstr_get(&d->done_reason);
    r->server = d->server;
    r->context = d->nctx ? d->ctxv : NULL;
    r->n_context = d->nctx;
    if (d->kind == AG__K_EMBED || d->kind == AG__K_EMBED_LEGACY) {
        r->embeddings = d->vec;
        r->n_embeddings = d->rows;
        r->dim = d->dim;
    }
    r->models = d->models;
    r->n_models = d->nmodels;
    if (d->kind == AG__K_SHOW) {
        d->show.capabilities = d->caps;
        d->show.n_capabilities = d->ncaps;
        r->show = &d->show;
    }
    r->version = ag__sstr_get(&d->version);
}
