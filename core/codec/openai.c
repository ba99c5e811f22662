/* core/codec/openai.c - the OpenAI-compatible dialect's answers (chat and
 * text completions, streamed or whole; embeddings; models). */
#include "core/codec/codec.h"
#include "core/base/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* ---- the OpenAI-compatible dialect ----
 * Chat chunks: {"choices":[{"index":0,"delta":{"content":"..","reasoning_content":"..",
 * "tool_calls":[{"index":0,"id":"..","function":{"name":"..","arguments":"{\"a"}}]},
 * "finish_reason":null}],"usage":{...}}; whole answers carry "message" instead of
 * "delta"; completions "text"; embeddings and models a "data" array. Tool call
 * arguments come as string fragments per index and are emitted whole when the
 * choice finishes. */
int ag__dec_args_json(ag__dec *d, const char *p, size_t n, char **out, size_t *len) {
    *out = NULL;
    char *t = ag__malloc(d->alloc, n + 1); /* (the tree parser takes a C string) */
    if (!t) return fail(d, AG_ENOMEM, "out of memory");
    memcpy(t, p, n);
    t[n] = 0;
    char err[32];
    yajl_val v = memchr(p, 0, n) ? NULL : ag__json_tree(d->alloc, t, err, sizeof err);
    ag__free(d->alloc, t);
    yajl_gen g = ag__gen_new(d->alloc);
    if (!g) {
        ag__json_tree_free(d->alloc, v);
        return fail(d, AG_ENOMEM, "out of memory");
    }
    int bad = v ? ag__gen_value(d->alloc, g, v) : ag__gen_text(d->alloc, g, p, n);
    ag__json_tree_free(d->alloc, v);
    if (bad) {
        yajl_gen_free(g);
        return fail(d, bad == AG_ENOMEM ? AG_ENOMEM : AG_EJSON, "tool call arguments could not be written as JSON");
    }
    if (!(*out = ag__gen_take(d->alloc, g, len))) return fail(d, AG_ENOMEM, "out of memory");
    return 1;
}

int ag__dec_oai_flush_calls(ag__dec *d) {
    struct ag__oai_calls *oc = d->oai_calls;
    for (int i = 0; i < d->oai_ncalls && oc; i++) {
        ag_chunk ch;
        memset(&ch, 0, sizeof ch);
        ch.kind = AG_CHUNK_TOOL_CALL;
        ch.name = oc->name[i].p ? oc->name[i].p : "";
        ch.name_len = oc->name[i].len;
        ch.arguments_json = oc->args[i].len ? oc->args[i].p : "{}";
        ch.arguments_len = oc->args[i].len ? oc->args[i].len : 2;
        ch.index = i;
        /* OpenAI sends the arguments as a string of JSON, as the model wrote
         * it; Ollama's are an object: the same compact JSON either way. Text
         * that is not one JSON value (a model under prompt injection writes
         * what it likes) goes as a JSON string: arguments_json is always
         * JSON that a consumer can paste into its own output. */
        char *compact = NULL;
        if (oc->args[i].len) {
            if (!ag__dec_args_json(d, oc->args[i].p, oc->args[i].len, &compact, &ch.arguments_len)) return 0;
            ch.arguments_json = compact;
        }
        int ok = emit(d, &ch);
        ag__free(d->alloc, compact);
        if (!ok) return 0;
        oc->name[i].len = oc->args[i].len = 0;
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
        if (k == K_PROMPT_TOKENS) d->server.prompt_eval_count = ag__parse_i64(s, n);
        if (k == K_COMPLETION_TOKENS) d->server.eval_count = ag__parse_i64(s, n);
    }
    /* top(0) > choices(1) > choice(2) > delta or message(3) > tool_calls(4) > call(5) > function(6) */
    if (k == K_INDEX && d->depth == 6 && under(d, 4) == K_TOOL_CALLS) {
        /* an integer from 0 to 7 (the calls a message may hold here); anything
         * else would merge distinct calls into one */
        int integral = 1;
        for (size_t c = 0; c < n; c++) integral &= s[c] >= '0' && s[c] <= '9';
        int64_t i = integral && n <= 3 ? ag__parse_i64(s, n) : -1;
        if (i < 0 || i >= 8) return fail(d, AG_EJSON, "a tool call's index is not an integer from 0 to 7");
        d->oai_index = (int)i;
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
        if (k == K_MODEL) ag__sstr_set(d->alloc, &d->model, s, n, 256);
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
            ag__sstr_set(d->alloc, &d->done_reason, s, n, 32);
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
            if (!d->oai_calls && !(d->oai_calls = ag__calloc(d->alloc, sizeof *d->oai_calls)))
                return fail(d, AG_ENOMEM, "out of memory");
            ag__buf *b = k == K_NAME ? &d->oai_calls->name[i] : k == K_ARGUMENTS ? &d->oai_calls->args[i] : NULL;
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
    d->cur_key[d->depth - 1] = (uint8_t)ag__key_id(s, n);
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
    if (d->depth == 2 && under(d, 1) == K_CHOICES && d->finish_seen && d->oai_ncalls) return ag__dec_oai_flush_calls(d);
    if (d->depth == 0) {
        d->objects++;
        if (d->finish_seen && !d->sse) d->got_final = 1; /* a whole answer */
        /* such servers have no /api/version: the model list answering is the health check */
        if (d->kind == AG__K_VERSION && !d->server_error.len) ag__sstr_set(d->alloc, &d->version, "openai-compatible", 17, 64);
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
    yajl_alloc_funcs af;
    d->yh = yajl_alloc(&oai_callbacks, ag__yajl_funcs(a, &af), d);
    if (!d->yh) return AG_ENOMEM;
    yajl_config(d->yh, yajl_allow_multiple_values, 1);
    d->oai = 1;
    d->sse = sse;
    d->fast = 0;
    d->ekeep = 0;
    return 0;
}
