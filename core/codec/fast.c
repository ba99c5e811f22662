/* core/codec/fast.c - the fast paths: a streamed token line of Ollama's
 * usual shape, and a whole /api/embed answer, read by hand; anything else
 * goes to yajl. */
#include "core/codec/codec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* ---- the fast path: a streamed Ollama token line of the usual shape ----
 * {"model":"M","created_at":"T","message":{"role":"assistant","content":"C"},"done":false}
 * {"model":"M","created_at":"T","response":"C","done":false}
 * with strings free of escapes and control characters: read by hand, with the
 * same effects as the yajl path (the codec tests replay every body at every
 * split, which runs both paths on the same lines). Anything else, and any
 * line not whole in one feed, goes to yajl. */
/* A JSON string whose bytes need no decoding except the one-letter escapes
 * (\" \\ \/ \b \f \n \r \t; *esc is set when there are some). Returns the end
 * (past the closing quote), or NULL: control characters, \u escapes, bad
 * escapes or bad UTF-8 (checked as yajl checks it) all go to yajl. Eight
 * bytes at a time while none of them is special. */
static const char *fast_str(const char *p, const char *e, const char **s, size_t *n, int *esc) {
    if (p >= e || *p != '"') return NULL;
    const char *q = ++p;
    for (;;) {
        while (e - q >= 8) {
            uint64_t v;
            memcpy(&v, q, 8);
            uint64_t quote = v ^ 0x2222222222222222ull, bslash = v ^ 0x5c5c5c5c5c5c5c5cull;
            uint64_t special = ((quote - 0x0101010101010101ull) & ~quote) |
                               ((bslash - 0x0101010101010101ull) & ~bslash) |
                               (v - 0x2020202020202020ull) | v;
            special &= 0x8080808080808080ull;
            if (special) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* the lowest flagged byte is a real one (a false flag only
                 * follows a real one): go straight to it */
                q += __builtin_ctzll(special) >> 3;
#endif
                break;
            }
            q += 8;
        }
        if (q >= e) return NULL;
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            *s = p;
            *n = (size_t)(q - p);
            return q + 1;
        }
        if (c == '\\') {
            if (e - q < 2 || !q[1] || !strchr("\"\\/bfnrt", q[1])) return NULL;
            *esc = 1;
            q += 2;
            continue;
        }
        if (c < 0x20) return NULL;
        if (c < 0x80) {
            q++;
            continue;
        }
        int extra = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
        if (extra < 0 || e - q <= extra) return NULL;
        for (int i = 1; i <= extra; i++)
            if (((unsigned char)q[i] >> 6) != 0x2) return NULL;
        q += extra + 1;
    }
}

/* the text of a string fast_str accepted, its escapes decoded into b */
static int fast_unescape(ag__dec *d, ag__buf *b, const char *s, size_t n) {
    b->len = 0;
    if (ag__buf_add(d->alloc, b, s, n)) return AG_ENOMEM; /* room for all of it */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            switch (s[++i]) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default: c = s[i]; break; /* " \ / */
            }
        }
        b->p[o++] = c;
    }
    b->len = o;
    return 0;
}

static const char *fast_lit(const char *p, const char *e, const char *lit, size_t n) {
    return p && (size_t)(e - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}
#define FAST_LIT(p, e, s) fast_lit(p, e, s, sizeof(s) - 1)

/* 1: the line (without its line end) was taken; 0: yajl's turn */
int ag__dec_fast_line(ag__dec *d, const char *p, size_t n) {
    const char *e = p + n, *m, *ca, *t;
    size_t ml, cal, tl;
    int esc = 0, tesc = 0;
    const char *q = FAST_LIT(p, e, "{\"model\":");
    if (!q || !(q = fast_str(q, e, &m, &ml, &esc))) return 0;
    if (!(q = FAST_LIT(q, e, ",\"created_at\":")) || !(q = fast_str(q, e, &ca, &cal, &esc))) return 0;
    if (d->kind == AG__K_CHAT) {
        q = FAST_LIT(q, e, ",\"message\":{\"role\":\"assistant\",\"content\":");
        if (!q || !(q = fast_str(q, e, &t, &tl, &tesc))) return 0;
        q = FAST_LIT(q, e, "},\"done\":false}");
    } else {
        q = FAST_LIT(q, e, ",\"response\":");
        if (!q || !(q = fast_str(q, e, &t, &tl, &tesc))) return 0;
        q = FAST_LIT(q, e, ",\"done\":false}");
    }
    if (q != e || esc) return 0; /* escapes in the model or the time: yajl's */
    if (d->max_token && (ml > d->max_token || cal > d->max_token || tl > d->max_token)) return 0;
    if (tesc) {
        if (fast_unescape(d, &d->fast_text, t, tl)) return 0;
        t = d->fast_text.p;
        tl = d->fast_text.len;
    }
    object_begin(d);
    ag__sstr_set(d->alloc, &d->model, m, ml, 256);
    ag__sstr_set(d->alloc, &d->created_at, ca, cal, 64);
    if (tl) {
        ag_chunk ch;
        memset(&ch, 0, sizeof ch);
        ch.kind = AG_CHUNK_CONTENT;
        ch.text = t;
        ch.len = tl;
        emit(d, &ch);
    }
    d->objects++;
    return 1;
}

/* ---- the fast path for /api/embed: the whole answer, read by hand ----
 * {"model":"M","embeddings":[[f,f,...],...],"total_duration":N,"load_duration":N,
 * "prompt_eval_count":N} (keys in any order, blanks allowed). The body is
 * kept until its end (it is not streamed anyway) and read here; any other
 * shape, and any number yajl would not take, sends the whole body through
 * yajl instead, which then decides. Past EMBED_KEEP bytes the body goes to
 * yajl as it comes. */
static const char *fast_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}
/* a JSON number as the grammar has it; the end, or NULL */
static const char *fast_num(const char *p, const char *e) {
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9') return NULL;
    if (*p == '0') p++;
    else
        while (p < e && *p >= '0' && *p <= '9') p++;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    return p;
}
/* the rows: '[' already consumed by the caller; returns the end or NULL */
static const char *fast_rows(ag__dec *d, const char *q, const char *e) {
    q = fast_ws(q, e);
    if (q < e && *q == ']') return q + 1;
    for (;;) {
        if (q >= e || *q != '[') return NULL;
        q = fast_ws(q + 1, e);
        d->row_len = 0;
        if (q < e && *q != ']') {
            for (;;) {
                const char *t = fast_num(q, e);
                if (!t || (d->max_token && (size_t)(t - q) > d->max_token)) return NULL;
                if (!add_float(d, ag__parse_double(q, (size_t)(t - q)))) return NULL;
                q = fast_ws(t, e);
                if (q < e && *q == ',') {
                    q = fast_ws(q + 1, e);
                    continue;
                }
                break;
            }
        }
        if (q >= e || *q != ']') return NULL;
        if (!end_row(d)) return NULL;
        q = fast_ws(q + 1, e);
        if (q < e && *q == ',') {
            q = fast_ws(q + 1, e);
            continue;
        }
        if (q < e && *q == ']') return q + 1;
        return NULL;
    }
}
/* 1: taken; 0: yajl's turn (nothing of it kept) */
int ag__dec_fast_embed(ag__dec *d, const char *p, size_t n) {
    const char *e = p + n, *q = fast_ws(p, e), *s;
    size_t sl;
    int esc = 0, got_rows = 0;
    if (q >= e || *q != '{') return 0;
    object_begin(d);
    q = fast_ws(q + 1, e);
    if (q < e && *q == '}') goto fallback; /* an empty object: let yajl say what it is */
    for (;;) {
        if (!(q = fast_str(q, e, &s, &sl, &esc)) || esc) goto fallback;
        q = fast_ws(q, e);
        if (q >= e || *q != ':') goto fallback;
        q = fast_ws(q + 1, e);
        int k = ag__key_id((const unsigned char *)s, sl);
        if (k == K_MODEL) {
            const char *v;
            size_t vl;
            if (!(q = fast_str(q, e, &v, &vl, &esc)) || esc || (d->max_token && vl > d->max_token)) goto fallback;
            ag__sstr_set(d->alloc, &d->model, v, vl, 256);
        } else if (k == K_EMBEDDINGS && !got_rows) {
            if (q >= e || *q != '[' || !(q = fast_rows(d, q + 1, e))) goto fallback;
            got_rows = 1;
        } else if (k == K_TOTAL_DURATION || k == K_LOAD_DURATION || k == K_PROMPT_EVAL_COUNT) {
            const char *t = fast_num(q, e);
            if (!t) goto fallback;
            int64_t v = ag__parse_i64(q, (size_t)(t - q));
            if (k == K_TOTAL_DURATION) d->server.total_duration = v;
            else if (k == K_LOAD_DURATION) d->server.load_duration = v;
            else d->server.prompt_eval_count = v;
            q = t;
        } else {
            goto fallback;
        }
        q = fast_ws(q, e);
        if (q < e && *q == ',') {
            q = fast_ws(q + 1, e);
            continue;
        }
        if (q < e && *q == '}') break;
        goto fallback;
    }
    if (fast_ws(q + 1, e) != e) goto fallback;
    d->objects = 1;
    return 1;
fallback: /* undo: yajl starts from nothing */
    if (d->err) return 1; /* out of memory or over a cap: that is the outcome */
    d->nvec = d->rows = d->dim = d->row_len = 0;
    if (d->model.p) d->model.p[0] = 0;
    d->server.total_duration = d->server.load_duration = d->server.prompt_eval_count = -1;
    return 0;
}
