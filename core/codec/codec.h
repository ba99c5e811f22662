/* core/codec/codec.h - private to the response decoders: the keys they
 * know, number parsing, the decoder's small steps (inline: they run per
 * token) and how the files hand work to one another.
 *
 * decode.c   the entry points (feed, finish, free, result), NDJSON feeding
 * ollama.c   Ollama's answers on yajl's token stream
 * fast.c     the hand-read fast paths (a streamed token line; /api/embed)
 * openai.c   the OpenAI-compatible dialect's answers
 * sse.c      Server-Sent Events framing
 */
#ifndef AG_CORE_CODEC_H
#define AG_CORE_CODEC_H
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

enum key {
    K_NONE = 0, K_OTHER, K_MODEL, K_CREATED_AT, K_MESSAGE, K_ROLE, K_CONTENT, K_THINKING,
    K_TOOL_CALLS, K_FUNCTION, K_NAME, K_ARGUMENTS, K_INDEX, K_DONE, K_DONE_REASON,
    K_TOTAL_DURATION, K_LOAD_DURATION, K_PROMPT_EVAL_COUNT, K_PROMPT_EVAL_DURATION,
    K_EVAL_COUNT, K_EVAL_DURATION, K_RESPONSE, K_CONTEXT, K_ERROR, K_EMBEDDINGS, K_EMBEDDING,
    K_MODELS, K_DIGEST, K_SIZE, K_MODIFIED_AT, K_EXPIRES_AT, K_SIZE_VRAM, K_DETAILS, K_FAMILY,
    K_FORMAT, K_PARAMETER_SIZE, K_QUANTIZATION_LEVEL, K_PARENT_MODEL, K_MODELFILE, K_PARAMETERS,
    K_TEMPLATE, K_CAPABILITIES, K_VERSION, K_STATUS, K_TOTAL, K_COMPLETED,
    /* the OpenAI-compatible dialect */
    K_CHOICES, K_DELTA, K_FINISH_REASON, K_USAGE, K_PROMPT_TOKENS, K_COMPLETION_TOKENS,
    K_REASONING_CONTENT, K_REASONING, K_TEXT, K_DATA, K_ID, K_MESSAGE_ERR
};

/* the key's id, K_OTHER for one no decoder reads */
int ag__key_id(const unsigned char *s, size_t n);
void ag__copy_fixed(char *dst, size_t cap, const unsigned char *s, size_t n);
/* s (n bytes, at most max - 1 kept) into dst's buffer, grown when needed
 * (out of memory: dst keeps what it had). Every token of a stream sets the
 * model and created_at: the buffer already fits, inline. */
void ag__sstr_grow_set(const ag_alloc_funcs *a, ag__sstr *dst, const void *s, size_t n, size_t max);
static inline void ag__sstr_set(const ag_alloc_funcs *a, ag__sstr *dst, const void *s, size_t n, size_t max) {
    if (n < dst->cap && n < max) {
        memcpy(dst->p, s, n);
        dst->p[n] = 0;
        return;
    }
    ag__sstr_grow_set(a, dst, s, n, max);
}
static inline const char *ag__sstr_get(const ag__sstr *s) {
    return s->p && s->p[0] ? s->p : NULL;
}
/* a JSON integer; non-integers are truncated toward zero */
int64_t ag__parse_i64(const char *s, size_t n);
/* a JSON number, fast for the shapes servers write, exact strtod otherwise */
double ag__parse_double(const char *s, size_t n);

static inline int fail(ag__dec *d, int err, const char *msg) {
    if (!d->err) {
        d->err = err;
        d->errmsg = ag__arena_strndup(d->alloc, &d->arena, msg, strlen(msg)); /* NULL: the code says it */
    }
    return 0;
}
static inline int emit(ag__dec *d, const ag_chunk *ch) {
    if (d->sink && d->sink(d->ctx, ch)) {
        d->stopped = 1;
        return 0;
    }
    return 1;
}
/* the key under which the current value sits (K_NONE at top level) */
static inline int here(ag__dec *d) {
    return d->depth > 0 && d->is_map[d->depth - 1] ? d->cur_key[d->depth - 1] : K_NONE;
}
/* the key under which container at stack index i sits */
static inline int under(ag__dec *d, int i) {
    return i >= 0 && i < d->depth ? d->under[i] : K_NONE;
}
static inline void mark_token(ag__dec *d) {
    d->token_seen = 1;
}
static inline int push(ag__dec *d, int is_map) {
    unsigned i = (unsigned)d->depth;
    if (i >= AG__MAXDEPTH) return fail(d, AG_EJSON, "JSON nested too deeply");
    uint8_t u = (uint8_t)here(d);
    d->is_map[i] = (uint8_t)is_map;
    d->under[i] = u;
    d->cur_key[i] = K_NONE;
    d->depth = (int)i + 1;
    return 1;
}
static inline void object_begin(ag__dec *d) {
    d->has_status = 0;
    d->status.len = 0;
    d->digest.len = 0;
    d->total = d->completed = -1;
    d->tool_index = 0;
}
static inline int add_float(ag__dec *d, double v) {
    if (d->nvec == d->capvec) {
        size_t nc = d->capvec ? d->capvec * 2 : 1024;
        if (nc * sizeof(float) > d->max_token * 16 && d->max_token) {
            if (d->nvec * sizeof(float) >= (size_t)256 << 20)
                return fail(d, AG_ETOOBIG, "embedding array over 256 MiB");
        }
        float *q = ag__realloc(d->alloc, d->vec, nc * sizeof(float));
        if (!q) return fail(d, AG_ENOMEM, "out of memory for embeddings");
        d->vec = q;
        d->capvec = nc;
    }
    d->vec[d->nvec++] = (float)v;
    d->row_len++;
    return 1;
}
static inline const char *arena_str(ag__dec *d, const unsigned char *s, size_t n) {
    const char *p = ag__arena_strndup(d->alloc, &d->arena, (const char *)s, n);
    if (!p) fail(d, AG_ENOMEM, "out of memory");
    return p;
}
static inline int end_row(ag__dec *d) {
    if (d->rows == 0) d->dim = d->row_len;
    else if (d->row_len != d->dim) return fail(d, AG_EJSON, "embedding vectors of different lengths");
    d->rows++;
    return 1;
}

/* /api/embed: bodies up to this size are kept for the fast path */
#define EMBED_KEEP ((size_t)64 << 20)

/* yajl's error at p as d's error (AG_EJSON, "malformed JSON: ..."); d->err */
int ag__dec_parse_error(ag__dec *d, const unsigned char *p, size_t n);
/* NDJSON bytes to the dialect's yajl handle (token lines by the fast path) */
int ag__dec_feed_json(ag__dec *d, const char *p, size_t n);
/* one whole line of the usual streamed shape: 1 when it was read by hand */
int ag__dec_fast_line(ag__dec *d, const char *p, size_t n);
/* the whole /api/embed body: 1 when read by hand, 0 to hand it to yajl */
int ag__dec_fast_embed(ag__dec *d, const char *p, size_t n);
/* OpenAI tool-call fragments gathered so far, out as chunks */
int ag__dec_oai_flush_calls(ag__dec *d);
/* Tool-call arguments that came as text (OpenAI's always; a hostile Ollama
 * node's string) as exactly one compact JSON value: the text's own value
 * when it is one, else the text as a JSON string. Allocated through the
 * decoder's allocator into *out (length *len); 0, or a decoder failure. */
int ag__dec_args_json(ag__dec *d, const char *p, size_t n, char **out, size_t *len);
/* Server-Sent Events bytes: "data:" payloads to yajl */
int ag__dec_sse_feed(ag__dec *d, const char *p, size_t n);

#endif
