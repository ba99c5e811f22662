/* core/codec/ollama.c - Ollama's answers (chat, generate, embed, tags, ps,
 * show, version, pull) decoded on yajl's token stream. */
#include "core/codec/codec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* ---- decoding ---- */
static int cap_active(ag__dec *d) {
    return d->cap_depth > 0;
}

static ag_model_info *cur_model(ag__dec *d) {
    return d->nmodels ? &d->models[d->nmodels - 1] : NULL;
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
            d->ctxv[d->nctx++] = ag__parse_i64(s, n);
        }
        return 1;
    }
    if (d->depth == 1) {
        int64_t v = ag__parse_i64(s, n);
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
        if (m && k == K_SIZE) m->size = ag__parse_i64(s, n);
        if (m && k == K_SIZE_VRAM) m->size_vram = ag__parse_i64(s, n);
        return 1;
    }
    if (k == K_INDEX && d->in_tool) d->tool_index = (int)ag__parse_i64(s, n);
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
        case K_MODEL: ag__sstr_set(d->alloc, &d->model, s, n, 256); return 1;
        case K_CREATED_AT: ag__sstr_set(d->alloc, &d->created_at, s, n, 64); return 1;
        case K_DONE_REASON: ag__sstr_set(d->alloc, &d->done_reason, s, n, 32); return 1;
        case K_VERSION: ag__sstr_set(d->alloc, &d->version, s, n, 64); return 1;
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
    if (d->in_tool && d->depth == 5 && k == K_ARGUMENTS) { /* arguments as a string: one JSON value, as OpenAI's */
        char *j;
        size_t jl;
        if (!ag__dec_args_json(d, (const char *)s, n, &j, &jl)) return 0;
        d->args.len = 0;
        int e = ag__buf_add(d->alloc, &d->args, j, jl);
        ag__free(d->alloc, j);
        if (e) return fail(d, AG_ENOMEM, "out of memory");
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
    d->cur_key[d->depth - 1] = (uint8_t)ag__key_id(s, n);
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
            d->cap = ag__gen_new(d->alloc);
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
    yajl_alloc_funcs af;
    d->yh = yajl_alloc(&callbacks, ag__yajl_funcs(a, &af), d);
    if (!d->yh) return AG_ENOMEM;
    yajl_config(d->yh, yajl_allow_multiple_values, 1);
    yajl_config(d->yh, yajl_dont_validate_strings, 0);
    d->fast = kind == AG__K_CHAT || kind == AG__K_GENERATE;
    d->line_start = 1;
    d->ekeep = kind == AG__K_EMBED;
    return 0;
}

int ag__dec_parse_error(ag__dec *d, const unsigned char *p, size_t n) {
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
