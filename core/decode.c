/* core/decode.c - Ollama response decoders on yajl's token stream.
 *
 * One yajl handle per response, multiple values allowed (NDJSON), fed the
 * body bytes as they come off the socket. The decoder tracks where it is with
 * a small stack of (container, key) and acts on the leaves it knows; text
 * pieces go to the sink straight from yajl's buffer (zero copy), numbers are
 * parsed from yajl's raw number text, embeddings land in one float array.
 */
#include "core/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
static int key_id(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].len == n && memcmp(keys[i].name, s, n) == 0) return keys[i].id;
    return K_OTHER;
}

/* ---- small helpers ---- */
static void copy_fixed(char *dst, size_t cap, const unsigned char *s, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* Parses a JSON integer; non-integers are truncated toward zero. */
static int64_t parse_i64(const char *s, size_t n) {
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
double ag__parse_double(const char *s, size_t n);
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

/* ---- decoding ---- */
static int fail(ag__dec *d, int err, const char *msg) {
    if (!d->err) {
        d->err = err;
        snprintf(d->errmsg, sizeof d->errmsg, "%s", msg);
    }
    return 0;
}

static int emit(ag__dec *d, const ag_chunk *ch) {
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

static int cap_active(ag__dec *d) {
    return d->cap_depth > 0;
}

static void mark_token(ag__dec *d) {
    d->token_seen = 1;
}

static int push(ag__dec *d, int is_map) {
    unsigned i = (unsigned)d->depth;
    if (i >= AG__MAXDEPTH) return fail(d, AG_EJSON, "JSON nested too deeply");
    uint8_t u = (uint8_t)here(d);
    d->is_map[i] = (uint8_t)is_map;
    d->under[i] = u;
    d->cur_key[i] = K_NONE;
    d->depth = (int)i + 1;
    return 1;
}

static void object_begin(ag__dec *d) {
    d->has_status = 0;
    d->status.len = 0;
    d->digest.len = 0;
    d->total = d->completed = -1;
    d->tool_index = 0;
}

static ag_model_info *cur_model(ag__dec *d) {
    return d->nmodels ? &d->models[d->nmodels - 1] : NULL;
}

static int add_float(ag__dec *d, double v) {
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

static int on_number(void *ctx, const char *s, size_t n) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) return yajl_gen_number(d->cap, s, n) == yajl_gen_status_ok;
    if (d->skip_depth) return 1;
    int k = here(d);
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    /* embeddings: [[...], ...] and the legacy [...] */
    if (d->depth >= 2 && !d->is_map[d->depth - 1]) {
        int u = under(d, d->depth - 1);
        if ((d->kind == AG__K_EMBED && d->depth == 3 && under(d, 1) == K_EMBEDDINGS) ||
            (d->kind == AG__K_EMBED_LEGACY && d->depth == 2 && u == K_EMBEDDING))
            return add_float(d, ag__parse_double(s, n));
        if (d->depth == 2 && u == K_CONTEXT) {
            if (d->nctx == d->capctx) {
                size_t nc = d->capctx ? d->capctx * 2 : 256;
                int64_t *q = ag__realloc(d->alloc, d->ctxv, nc * sizeof *q);
                if (!q) return fail(d, AG_ENOMEM, "out of memory for context");
                d->ctxv = q;
                d->capctx = nc;
            }
            d->ctxv[d->nctx++] = parse_i64(s, n);
        }
        return 1;
    }
    if (d->depth == 1) {
        int64_t v = parse_i64(s, n);
        switch (k) {
        case K_TOTAL_DURATION: d->server.total_duration = v; break;
        case K_LOAD_DURATION: d->server.load_duration = v; break;
        case K_PROMPT_EVAL_COUNT: d->server.prompt_eval_count = v; break;
        case K_PROMPT_EVAL_DURATION: d->server.prompt_eval_duration = v; break;
        case K_EVAL_COUNT: d->server.eval_count = v; break;
        case K_EVAL_DURATION: d->server.eval_duration = v; break;
        case K_TOTAL: d->total = v; break;
        case K_COMPLETED: d->completed = v; break;
        default: break;
        }
        return 1;
    }
    if (d->depth == 3 && (d->kind == AG__K_TAGS || d->kind == AG__K_PS) && under(d, 1) == K_MODELS) {
        ag_model_info *m = cur_model(d);
        if (m && k == K_SIZE) m->size = parse_i64(s, n);
        if (m && k == K_SIZE_VRAM) m->size_vram = parse_i64(s, n);
        return 1;
    }
    if (k == K_INDEX && d->in_tool) d->tool_index = (int)parse_i64(s, n);
    return 1;
}

static int on_bool(void *ctx, int b) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) return yajl_gen_bool(d->cap, b) == yajl_gen_status_ok;
    if (d->skip_depth) return 1;
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    if (d->depth == 1 && here(d) == K_DONE && b) d->got_final = 1;
    return 1;
}

static int on_null(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) return yajl_gen_null(d->cap) == yajl_gen_status_ok;
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    return 1;
}

static const char *arena_str(ag__dec *d, const unsigned char *s, size_t n) {
    const char *p = ag__arena_strndup(d->alloc, &d->arena, (const char *)s, n);
    if (!p) fail(d, AG_ENOMEM, "out of memory");
    return p;
}

static int model_string(ag__dec *d, int k, const unsigned char *s, size_t n) {
    ag_model_info *m = cur_model(d);
    if (!m) return 1;
    const char **slot = NULL;
    int in_details = d->depth == 4 && under(d, 3) == K_DETAILS;
    if (d->depth == 3) {
        switch (k) {
        case K_NAME: slot = &m->name; break;
        case K_MODEL: slot = &m->model; break;
        case K_DIGEST: slot = &m->digest; break;
        case K_MODIFIED_AT: slot = &m->modified_at; break;
        case K_EXPIRES_AT: slot = &m->expires_at; break;
        default: break;
        }
    } else if (in_details) {
        switch (k) {
        case K_FAMILY: slot = &m->family; break;
        case K_FORMAT: slot = &m->format; break;
        case K_PARAMETER_SIZE: slot = &m->parameter_size; break;
        case K_QUANTIZATION_LEVEL: slot = &m->quantization_level; break;
        case K_PARENT_MODEL: slot = &m->parent_model; break;
        default: break;
        }
    }
    if (slot) *slot = arena_str(d, s, n);
    return !d->err;
}

static int on_string(void *ctx, const unsigned char *s, size_t n) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) return yajl_gen_string(d->cap, s, n) == yajl_gen_status_ok;
    if (d->skip_depth) return 1;
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    if (d->max_token && n > d->max_token) return fail(d, AG_ETOOBIG, "a JSON string over the cap");
    int k = here(d);
    ag_chunk ch;
    if (d->depth == 1) {
        switch (k) {
        case K_MODEL: copy_fixed(d->model, sizeof d->model, s, n); return 1;
        case K_CREATED_AT: copy_fixed(d->created_at, sizeof d->created_at, s, n); return 1;
        case K_DONE_REASON: copy_fixed(d->done_reason, sizeof d->done_reason, s, n); return 1;
        case K_VERSION: copy_fixed(d->version, sizeof d->version, s, n); return 1;
        case K_ERROR:
            d->server_error.len = 0;
            if (ag__buf_add(d->alloc, &d->server_error, s, n > 4096 ? 4096 : n))
                return fail(d, AG_ENOMEM, "out of memory");
            return 1;
        case K_RESPONSE:
        case K_THINKING:
            if (d->kind != AG__K_GENERATE || n == 0) return 1;
            memset(&ch, 0, sizeof ch);
            ch.kind = k == K_RESPONSE ? AG_CHUNK_CONTENT : AG_CHUNK_THINKING;
            ch.text = (const char *)s;
            ch.len = n;
            return emit(d, &ch);
        case K_STATUS:
            d->has_status = 1;
            d->status.len = 0;
            if (ag__buf_add(d->alloc, &d->status, s, n > 1024 ? 1024 : n))
                return fail(d, AG_ENOMEM, "out of memory");
            return 1;
        case K_DIGEST:
            d->digest.len = 0;
            if (ag__buf_add(d->alloc, &d->digest, s, n > 256 ? 256 : n))
                return fail(d, AG_ENOMEM, "out of memory");
            return 1;
        case K_MODELFILE: if (d->kind == AG__K_SHOW) d->show.modelfile = arena_str(d, s, n); return !d->err;
        case K_PARAMETERS: if (d->kind == AG__K_SHOW) d->show.parameters = arena_str(d, s, n); return !d->err;
        case K_TEMPLATE: if (d->kind == AG__K_SHOW) d->show.template_ = arena_str(d, s, n); return !d->err;
        default: return 1;
        }
    }
    if (d->kind == AG__K_CHAT && d->depth == 2 && under(d, 1) == K_MESSAGE) {
        if ((k == K_CONTENT || k == K_THINKING) && n > 0) {
            memset(&ch, 0, sizeof ch);
            ch.kind = k == K_CONTENT ? AG_CHUNK_CONTENT : AG_CHUNK_THINKING;
            ch.text = (const char *)s;
            ch.len = n;
            return emit(d, &ch);
        }
        return 1;
    }
    if (d->in_tool && d->depth == 5 && k == K_NAME) { /* under "function" */
        d->tname.len = 0;
        if (ag__buf_add(d->alloc, &d->tname, s, n)) return fail(d, AG_ENOMEM, "out of memory");
        return 1;
    }
    if (d->in_tool && d->depth == 5 && k == K_ARGUMENTS) { /* arguments as a string */
        d->args.len = 0;
        if (ag__buf_add(d->alloc, &d->args, s, n)) return fail(d, AG_ENOMEM, "out of memory");
        return 1;
    }
    if ((d->kind == AG__K_TAGS || d->kind == AG__K_PS) && under(d, 1) == K_MODELS)
        return model_string(d, k, s, n);
    if (d->kind == AG__K_SHOW) {
        if (d->depth == 2 && !d->is_map[1] && under(d, 1) == K_CAPABILITIES) {
            if (d->ncaps == d->capcaps) {
                size_t nc = d->capcaps ? d->capcaps * 2 : 8;
                const char **q = ag__realloc(d->alloc, d->caps, nc * sizeof *q);
                if (!q) return fail(d, AG_ENOMEM, "out of memory");
                d->caps = q;
                d->capcaps = nc;
            }
            d->caps[d->ncaps++] = arena_str(d, s, n);
            return !d->err;
        }
        if (d->depth == 2 && under(d, 1) == K_DETAILS) {
            const char **slot = NULL;
            switch (k) {
            case K_FAMILY: slot = &d->show.family; break;
            case K_FORMAT: slot = &d->show.format; break;
            case K_PARAMETER_SIZE: slot = &d->show.parameter_size; break;
            case K_QUANTIZATION_LEVEL: slot = &d->show.quantization_level; break;
            default: break;
            }
            if (slot) *slot = arena_str(d, s, n);
            return !d->err;
        }
    }
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *s, size_t n) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) return yajl_gen_string(d->cap, s, n) == yajl_gen_status_ok;
    if (d->skip_depth) return 1;
    d->cur_key[d->depth - 1] = (uint8_t)key_id(s, n);
    return 1;
}

static int gen_ok(yajl_gen_status st) {
    return st == yajl_gen_status_ok;
}

static int on_start_map(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) {
        d->cap_depth++;
        return gen_ok(yajl_gen_map_open(d->cap));
    }
    if (d->skip_depth) {
        d->skip_depth++;
        return 1;
    }
    int k = here(d);
    if (d->depth == 0) object_begin(d);
    /* tool call arguments: capture the object as compact JSON */
    if (d->in_tool && d->depth == 5 && k == K_ARGUMENTS) {
        if (!d->cap) {
            d->cap = yajl_gen_alloc(NULL);
            if (!d->cap) return fail(d, AG_ENOMEM, "out of memory");
        } else {
            yajl_gen_reset(d->cap, NULL);
            yajl_gen_clear(d->cap);
        }
        d->cap_depth = 1;
        return gen_ok(yajl_gen_map_open(d->cap));
    }
    /* subtrees we never look into */
    if (k == K_OTHER) {
        d->skip_depth = 1;
        return 1;
    }
    if (!push(d, 1)) return 0;
    /* top(0) > message(1) > tool_calls(2) > call(3) > function(4) */
    if (d->depth == 4 && d->kind == AG__K_CHAT && under(d, 1) == K_MESSAGE &&
        under(d, 2) == K_TOOL_CALLS) {
        d->in_tool = 1;
        d->tname.len = 0;
        d->args.len = 0;
    }
    if (d->depth == 3 && (d->kind == AG__K_TAGS || d->kind == AG__K_PS) && under(d, 1) == K_MODELS) {
        if (d->nmodels == d->capmodels) {
            size_t nc = d->capmodels ? d->capmodels * 2 : 16;
            ag_model_info *q = ag__realloc(d->alloc, d->models, nc * sizeof *q);
            if (!q) return fail(d, AG_ENOMEM, "out of memory");
            d->models = q;
            d->capmodels = nc;
        }
        memset(&d->models[d->nmodels], 0, sizeof d->models[0]);
        d->models[d->nmodels].size = d->models[d->nmodels].size_vram = -1;
        d->nmodels++;
    }
    return 1;
}

static int end_tool_call(ag__dec *d) {
    ag_chunk ch;
    memset(&ch, 0, sizeof ch);
    ch.kind = AG_CHUNK_TOOL_CALL;
    ch.name = d->tname.p ? d->tname.p : "";
    ch.name_len = d->tname.len;
    ch.arguments_json = d->args.len ? d->args.p : "{}";
    ch.arguments_len = d->args.len ? d->args.len : 2;
    ch.index = d->tool_index;
    d->in_tool = 0;
    d->tool_index++;
    return emit(d, &ch);
}

static int end_object(ag__dec *d) {
    d->objects++;
    if (d->kind == AG__K_PULL && d->has_status) {
        ag_chunk ch;
        memset(&ch, 0, sizeof ch);
        ch.kind = AG_CHUNK_PROGRESS;
        ch.text = d->status.p;
        ch.len = d->status.len;
        ch.digest = d->digest.len ? d->digest.p : NULL;
        ch.total = d->total;
        ch.completed = d->completed;
        if (d->status.len == 7 && memcmp(d->status.p, "success", 7) == 0) d->got_final = 1;
        return emit(d, &ch);
    }
    return 1;
}

static int on_end_map(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) {
        if (!gen_ok(yajl_gen_map_close(d->cap))) return 0;
        if (--d->cap_depth == 0) {
            const unsigned char *buf;
            size_t len;
            yajl_gen_get_buf(d->cap, &buf, &len);
            d->args.len = 0;
            if (ag__buf_add(d->alloc, &d->args, buf, len)) return fail(d, AG_ENOMEM, "out of memory");
        }
        return 1;
    }
    if (d->skip_depth) {
        d->skip_depth--;
        return 1;
    }
    d->depth--;
    if (d->in_tool && d->depth == 3) return end_tool_call(d);
    if (d->depth == 0) return end_object(d);
    return 1;
}

static int on_start_array(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) {
        d->cap_depth++;
        return gen_ok(yajl_gen_array_open(d->cap));
    }
    if (d->skip_depth) {
        d->skip_depth++;
        return 1;
    }
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    int k = here(d);
    int want = 0;
    switch (k) {
    case K_TOOL_CALLS: want = d->kind == AG__K_CHAT && d->depth == 2; break;
    case K_EMBEDDINGS: want = d->kind == AG__K_EMBED && d->depth == 1; break;
    case K_EMBEDDING: want = d->kind == AG__K_EMBED_LEGACY && d->depth == 1; break;
    case K_CONTEXT: want = d->depth == 1; break;
    case K_MODELS: want = d->depth == 1 && (d->kind == AG__K_TAGS || d->kind == AG__K_PS); break;
    case K_CAPABILITIES: want = d->depth == 1 && d->kind == AG__K_SHOW; break;
    case K_NONE: /* an array inside an array we decode */
        want = d->kind == AG__K_EMBED && d->depth == 2 && under(d, 1) == K_EMBEDDINGS;
        break;
    default: break;
    }
    if (!want) {
        d->skip_depth = 1;
        return 1;
    }
    if (!push(d, 0)) return 0;
    if (d->depth == 3 && d->kind == AG__K_EMBED) d->row_len = 0;
    if (d->depth == 2 && d->kind == AG__K_EMBED_LEGACY) d->row_len = 0;
    if (k == K_CONTEXT) d->nctx = 0;
    return 1;
}

static int end_row(ag__dec *d) {
    if (d->rows == 0) d->dim = d->row_len;
    else if (d->row_len != d->dim) return fail(d, AG_EJSON, "embedding vectors of different lengths");
    d->rows++;
    return 1;
}

static int on_end_array(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (cap_active(d)) {
        d->cap_depth--;
        return gen_ok(yajl_gen_array_close(d->cap));
    }
    if (d->skip_depth) {
        d->skip_depth--;
        return 1;
    }
    d->depth--;
    if (d->kind == AG__K_EMBED && d->depth == 2) return end_row(d);
    if (d->kind == AG__K_EMBED_LEGACY && d->depth == 1) return end_row(d);
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_bool, NULL, NULL, on_number, on_string, on_start_map, on_map_key, on_end_map,
    on_start_array, on_end_array};

static void *y_malloc(void *ctx, size_t n) {
    return ag__malloc(ctx, n);
}
static void *y_realloc(void *ctx, void *p, size_t n) {
    return ag__realloc(ctx, p, n);
}
static void y_free(void *ctx, void *p) {
    ag__free(ctx, p);
}

int ag__dec_init(ag__dec *d, int kind, const ag_alloc_funcs *a, size_t max_token, ag__sink_fn sink,
                 void *ctx) {
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->alloc = a;
    d->sink = sink;
    d->ctx = ctx;
    d->max_token = max_token;
    d->server.total_duration = d->server.load_duration = -1;
    d->server.prompt_eval_count = d->server.prompt_eval_duration = -1;
    d->server.eval_count = d->server.eval_duration = -1;
    yajl_alloc_funcs af = {y_malloc, y_realloc, y_free, (void *)a};
    d->yh = yajl_alloc(&callbacks, a ? &af : NULL, d);
    if (!d->yh) return AG_ENOMEM;
    yajl_config(d->yh, yajl_allow_multiple_values, 1);
    yajl_config(d->yh, yajl_dont_validate_strings, 0);
    d->fast = kind == AG__K_CHAT || kind == AG__K_GENERATE;
    d->line_start = 1;
    d->ekeep = kind == AG__K_EMBED;
    return 0;
}

static int parse_error(ag__dec *d, const unsigned char *p, size_t n) {
    if (d->err) return d->err;
    unsigned char *m = yajl_get_error(d->yh, 0, p, n);
    char msg[200];
    snprintf(msg, sizeof msg, "malformed JSON: %s", m ? (char *)m : "?");
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) msg[--l] = 0;
    if (m) yajl_free_error(d->yh, m);
    fail(d, AG_EJSON, msg);
    return d->err;
}

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
static int fast_line(ag__dec *d, const char *p, size_t n) {
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
    copy_fixed(d->model, sizeof d->model, (const unsigned char *)m, ml);
    copy_fixed(d->created_at, sizeof d->created_at, (const unsigned char *)ca, cal);
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
#define EMBED_KEEP ((size_t)64 << 20)
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
static int fast_embed(ag__dec *d, const char *p, size_t n) {
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
        int k = key_id((const unsigned char *)s, sl);
        if (k == K_MODEL) {
            const char *v;
            size_t vl;
            if (!(q = fast_str(q, e, &v, &vl, &esc)) || esc || (d->max_token && vl > d->max_token)) goto fallback;
            copy_fixed(d->model, sizeof d->model, (const unsigned char *)v, vl);
        } else if (k == K_EMBEDDINGS && !got_rows) {
            if (q >= e || *q != '[' || !(q = fast_rows(d, q + 1, e))) goto fallback;
            got_rows = 1;
        } else if (k == K_TOTAL_DURATION || k == K_LOAD_DURATION || k == K_PROMPT_EVAL_COUNT) {
            const char *t = fast_num(q, e);
            if (!t) goto fallback;
            int64_t v = parse_i64(q, (size_t)(t - q));
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
    d->model[0] = 0;
    d->server.total_duration = d->server.load_duration = d->server.prompt_eval_count = -1;
    return 0;
}

/* Feeds in slices so that one token that never ends (a 10 GB string) is
 * caught by the cap before yajl has buffered much more than the cap. */
#define SLICE 65536
static int feed_slices(ag__dec *d, const char *p, size_t n);
static int feed_json(ag__dec *d, const char *p, size_t n) {
    if (d->err) return d->err;
    if (d->stopped) return 0;
    if (!d->fast) return feed_slices(d, p, n);
    while (n > 0) { /* line by line: whole token lines of the usual shape skip yajl */
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        if (nl && d->line_start && d->depth == 0) {
            size_t l = k - 1;
            if (l && p[l - 1] == '\r') l--;
            if (l && fast_line(d, p, l)) {
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
            return parse_error(d, (const unsigned char *)p, k);
        }
        if (d->max_token && d->fed - d->last_token_at > d->max_token + SLICE)
            return fail(d, AG_ETOOBIG, "a JSON token over the cap"), d->err;
        p += k;
        n -= k;
    }
    return 0;
}


/* ---- the OpenAI-compatible dialect ----
 * Chat chunks: {"choices":[{"index":0,"delta":{"content":"..","reasoning_content":"..",
 * "tool_calls":[{"index":0,"id":"..","function":{"name":"..","arguments":"{\"a"}}]},
 * "finish_reason":null}],"usage":{...}}; whole answers carry "message" instead of
 * "delta"; completions "text"; embeddings and models a "data" array. Tool call
 * arguments come as string fragments per index and are emitted whole when the
 * choice finishes. */
static int oai_flush_calls(ag__dec *d) {
    for (int i = 0; i < d->oai_ncalls; i++) {
        ag_chunk ch;
        memset(&ch, 0, sizeof ch);
        ch.kind = AG_CHUNK_TOOL_CALL;
        ch.name = d->oai_name[i].p ? d->oai_name[i].p : "";
        ch.name_len = d->oai_name[i].len;
        ch.arguments_json = d->oai_args[i].len ? d->oai_args[i].p : "{}";
        ch.arguments_len = d->oai_args[i].len ? d->oai_args[i].len : 2;
        ch.index = i;
        if (!emit(d, &ch)) return 0;
        d->oai_name[i].len = d->oai_args[i].len = 0;
    }
    d->oai_ncalls = 0;
    return 1;
}

static int o_number(void *ctx, const char *s, size_t n) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) return 1;
    int k = here(d);
    if (d->depth >= 2 && !d->is_map[d->depth - 1]) { /* inside arrays */
        if (d->kind == AG__K_EMBED && d->depth == 4 && under(d, 1) == K_DATA && under(d, 3) == K_EMBEDDING)
            return add_float(d, ag__parse_double(s, n));
        return 1;
    }
    if (d->depth == 2 && under(d, 1) == K_USAGE) {
        if (k == K_PROMPT_TOKENS) d->server.prompt_eval_count = parse_i64(s, n);
        if (k == K_COMPLETION_TOKENS) d->server.eval_count = parse_i64(s, n);
    }
    /* top(0) > choices(1) > choice(2) > delta or message(3) > tool_calls(4) > call(5) > function(6) */
    if (k == K_INDEX && d->depth == 6 && under(d, 4) == K_TOOL_CALLS) {
        int64_t i = parse_i64(s, n);
        d->oai_index = i >= 0 && i < 8 ? (int)i : 7;
        if (d->oai_index + 1 > d->oai_ncalls) d->oai_ncalls = d->oai_index + 1;
    }
    return 1;
}

static int o_bool(void *ctx, int b) {
    (void)b;
    mark_token(ctx);
    return 1;
}
static int o_null(void *ctx) {
    mark_token(ctx);
    return 1;
}

static int o_string(void *ctx, const unsigned char *s, size_t n) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) return 1;
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    if (d->max_token && n > d->max_token) return fail(d, AG_ETOOBIG, "a JSON string over the cap");
    int k = here(d);
    ag_chunk ch;
    if (d->depth == 1) {
        if (k == K_MODEL) copy_fixed(d->model, sizeof d->model, s, n);
        if (k == K_ERROR) { /* {"error": "text"} */
            d->server_error.len = 0;
            if (ag__buf_add(d->alloc, &d->server_error, s, n > 4096 ? 4096 : n)) return fail(d, AG_ENOMEM, "out of memory");
        }
        return 1;
    }
    if (d->depth == 2 && under(d, 1) == K_ERROR && k == K_MESSAGE) { /* {"error": {"message": ...}} */
        d->server_error.len = 0;
        if (ag__buf_add(d->alloc, &d->server_error, s, n > 4096 ? 4096 : n)) return fail(d, AG_ENOMEM, "out of memory");
        return 1;
    }
    if (under(d, 1) == K_CHOICES) {
        if (d->depth == 3 && k == K_FINISH_REASON) { /* the choice ends (flushed at its end) */
            copy_fixed(d->done_reason, sizeof d->done_reason, s, n);
            d->finish_seen = 1;
            return 1;
        }
        if (d->depth == 3 && k == K_TEXT && n) { /* completions */
            memset(&ch, 0, sizeof ch);
            ch.kind = AG_CHUNK_CONTENT;
            ch.text = (const char *)s;
            ch.len = n;
            return emit(d, &ch);
        }
        if (d->depth == 4 && (under(d, 3) == K_DELTA || under(d, 3) == K_MESSAGE)) {
            if ((k == K_CONTENT || k == K_REASONING_CONTENT || k == K_REASONING) && n) {
                memset(&ch, 0, sizeof ch);
                ch.kind = k == K_CONTENT ? AG_CHUNK_CONTENT : AG_CHUNK_THINKING;
                ch.text = (const char *)s;
                ch.len = n;
                return emit(d, &ch);
            }
            return 1;
        }
        if (d->depth == 7 && under(d, 4) == K_TOOL_CALLS && under(d, 6) == K_FUNCTION) {
            int i = d->oai_index;
            if (i + 1 > d->oai_ncalls) d->oai_ncalls = i + 1;
            ag__buf *b = k == K_NAME ? &d->oai_name[i] : k == K_ARGUMENTS ? &d->oai_args[i] : NULL;
            if (b && ag__buf_add(d->alloc, b, s, n)) return fail(d, AG_ENOMEM, "out of memory");
            if (b && b->len > d->max_token) return fail(d, AG_ETOOBIG, "tool call arguments over the cap");
        }
        return 1;
    }
    if (d->depth == 3 && under(d, 1) == K_DATA && k == K_ID && (d->kind == AG__K_TAGS || d->kind == AG__K_PS ||
                                                               d->kind == AG__K_VERSION)) {
        if (d->nmodels == d->capmodels) {
            size_t nc = d->capmodels ? d->capmodels * 2 : 16;
            ag_model_info *q = ag__realloc(d->alloc, d->models, nc * sizeof *q);
            if (!q) return fail(d, AG_ENOMEM, "out of memory");
            d->models = q;
            d->capmodels = nc;
        }
        ag_model_info *m = &d->models[d->nmodels++];
        memset(m, 0, sizeof *m);
        m->size = m->size_vram = -1;
        m->name = m->model = arena_str(d, s, n);
        return !d->err;
    }
    return 1;
}

static int o_key(void *ctx, const unsigned char *s, size_t n) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) return 1;
    d->cur_key[d->depth - 1] = (uint8_t)key_id(s, n);
    return 1;
}

static int o_start_map(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) {
        d->skip_depth++;
        return 1;
    }
    int k = here(d);
    if (d->depth >= 1 && k == K_OTHER) {
        d->skip_depth = 1;
        return 1;
    }
    return push(d, 1);
}

static int o_end_map(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) {
        d->skip_depth--;
        return 1;
    }
    d->depth--;
    if (d->depth == 2 && under(d, 1) == K_CHOICES && d->finish_seen && d->oai_ncalls) return oai_flush_calls(d);
    if (d->depth == 0) {
        d->objects++;
        if (d->finish_seen && !d->sse) d->got_final = 1; /* a whole answer */
        /* such servers have no /api/version: the model list answering is the health check */
        if (d->kind == AG__K_VERSION && !d->server_error.len) snprintf(d->version, sizeof d->version, "openai-compatible");
    }
    return 1;
}

static int o_start_array(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) {
        d->skip_depth++;
        return 1;
    }
    if (d->depth == 0) return fail(d, AG_EJSON, "a top-level value that is not an object");
    int k = here(d);
    int want = (k == K_CHOICES && d->depth == 1) || (k == K_DATA && d->depth == 1) ||
               (k == K_TOOL_CALLS && d->depth == 4) || (k == K_EMBEDDING && d->depth == 3);
    if (!want) {
        d->skip_depth = 1;
        return 1;
    }
    if (!push(d, 0)) return 0;
    if (k == K_EMBEDDING) d->row_len = 0;
    return 1;
}

static int o_end_array(void *ctx) {
    ag__dec *d = ctx;
    mark_token(d);
    if (d->skip_depth) {
        d->skip_depth--;
        return 1;
    }
    d->depth--;
    if (d->kind == AG__K_EMBED && d->depth == 3 && under(d, 1) == K_DATA) return end_row(d);
    return 1;
}

static const yajl_callbacks oai_callbacks = {o_null, o_bool, NULL, NULL, o_number, o_string, o_start_map,
                                             o_key,  o_end_map, o_start_array, o_end_array};

int ag__dec_init_oai(ag__dec *d, int kind, int sse, const ag_alloc_funcs *a, size_t max_token,
                     ag__sink_fn sink, void *ctx) {
    int rc = ag__dec_init(d, kind, a, max_token, sink, ctx);
    if (rc) return rc;
    yajl_free(d->yh);
    yajl_alloc_funcs af = {y_malloc, y_realloc, y_free, (void *)a};
    d->yh = yajl_alloc(&oai_callbacks, a ? &af : NULL, d);
    if (!d->yh) return AG_ENOMEM;
    yajl_config(d->yh, yajl_allow_multiple_values, 1);
    d->oai = 1;
    d->sse = sse;
    d->fast = 0;
    d->ekeep = 0;
    return 0;
}

/* Server-Sent Events: "data:" payloads go to yajl as they arrive (no line
 * buffer); "data: [DONE]" ends the stream; comments and other fields are
 * skipped; a line may be cut anywhere by a read. */
enum { SSE_LINE, SSE_SKIP, SSE_DATA_SP, SSE_DATA_PRE, SSE_DATA };

static int sse_feed(ag__dec *d, const char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        switch (d->sse_state) {
        case SSE_LINE:
            if (c == '\n' || c == '\r') {
                d->sse_flen = 0;
                i++;
            } else if (c == ':') {
                d->sse_state = d->sse_flen == 4 && !memcmp(d->sse_field, "data", 4) ? SSE_DATA_SP : SSE_SKIP;
                d->sse_flen = 0;
                i++;
            } else {
                if (d->sse_flen < (int)sizeof d->sse_field) d->sse_field[d->sse_flen] = c;
                d->sse_flen++;
                if (d->sse_flen > 8) d->sse_state = SSE_SKIP;
                i++;
            }
            break;
        case SSE_SKIP: {
            const char *nl = memchr(p + i, '\n', n - i);
            if (!nl) return 0;
            i = (size_t)(nl - p) + 1;
            d->sse_state = SSE_LINE;
            break;
        }
        case SSE_DATA_SP:
            d->sse_state = SSE_DATA_PRE;
            d->sse_plen = 0;
            if (c == ' ') i++;
            break;
        case SSE_DATA_PRE: /* "[DONE]" or JSON? decided on the first bytes */
            if (d->sse_plen == 0 && c != '[') {
                d->sse_state = SSE_DATA;
                break;
            }
            if (c == '\n' || c == '\r' || d->sse_plen == 6) {
                if (d->sse_plen == 6 && !memcmp(d->sse_pre, "[DONE]", 6)) {
                    d->got_final = 1;
                    if (d->oai_ncalls && !oai_flush_calls(d)) return 0;
                    d->sse_state = SSE_SKIP;
                    break;
                }
                int rc = feed_json(d, d->sse_pre, (size_t)d->sse_plen);
                if (rc) return rc;
                d->sse_state = SSE_DATA;
                break;
            }
            d->sse_pre[d->sse_plen++] = c;
            i++;
            break;
        case SSE_DATA: {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t end = nl ? (size_t)(nl - p) : n;
            if (end > i) {
                int rc = feed_json(d, p + i, end - i);
                if (rc) return rc;
            }
            if (!nl) return 0;
            int rc = feed_json(d, "\n", 1);
            if (rc) return rc;
            i = end + 1;
            d->sse_state = SSE_LINE;
            d->sse_flen = 0;
            break;
        }
        }
        if (d->err) return d->err;
        if (d->stopped) return 0;
    }
    return 0;
}

/* the kept embed body goes to yajl after all (and nothing is kept from now on) */
static int embed_to_yajl(ag__dec *d) {
    d->ekeep = 0;
    int rc = feed_json(d, d->ebuf.p ? d->ebuf.p : "", d->ebuf.len);
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
    return d->sse ? sse_feed(d, p, n) : feed_json(d, p, n);
}

int ag__dec_finish(ag__dec *d) {
    if (d->err) return d->err;
    if (d->stopped) return 0;
    if (d->ekeep) {
        d->ekeep = 0;
        if (fast_embed(d, d->ebuf.p ? d->ebuf.p : "", d->ebuf.len)) {
            ag__buf_free(d->alloc, &d->ebuf);
            return d->err;
        }
        int rc = embed_to_yajl(d);
        if (rc) return rc;
    }
    if (d->oai && d->oai_ncalls && (d->finish_seen || d->got_final)) oai_flush_calls(d);
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
        return parse_error(d, NULL, 0);
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
    for (int i = 0; i < 8; i++) {
        ag__buf_free(d->alloc, &d->oai_name[i]);
        ag__buf_free(d->alloc, &d->oai_args[i]);
    }
    ag__free(d->alloc, d->vec);
    ag__free(d->alloc, d->ctxv);
    ag__free(d->alloc, d->models);
    ag__free(d->alloc, d->caps);
    ag__arena_free(d->alloc, &d->arena);
    memset(d, 0, sizeof *d);
}

void ag__dec_result(ag__dec *d, ag_result *r) {
    r->model = d->model[0] ? d->model : NULL;
    r->created_at = d->created_at[0] ? d->created_at : NULL;
    r->done_reason = d->done_reason[0] ? d->done_reason : NULL;
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
    r->version = d->version[0] ? d->version : NULL;
}
