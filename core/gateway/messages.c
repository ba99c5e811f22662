/* core/gateway/messages.c - Anthropic's Messages API (/v1/messages) served by
 * OpenAI-compatible nodes: when every node is "openai+http://", the gateway
 * reads the request into the client's chat parameters (system, text, image,
 * tool_use and tool_result blocks, tools, thinking, max_tokens, stop
 * sequences, sampling), starts it through the client, and writes the answer
 * as Anthropic writes it: one message, or the stream of events
 * (message_start, ping, content_block_start / _delta / _stop for thinking,
 * text and tool_use blocks, message_delta with the stop reason and usage,
 * message_stop). /v1/messages/count_tokens is answered from the text's
 * length (a quarter of its bytes, as the nodes count roughly). */
#include "core/gateway/gateway_internal.h"

#include <stdio.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "core/base/buf.h"
#include "core/base/json.h"
#include "core/base/clock.h"
#include "core/base/mem.h"

typedef struct mx {
    gconn *gc;
    ag__arena ar;
    char model[256], id[40];
    int stream, started, block, block_open, block_kind; /* the open block: its index, kind (1 thinking, 2 text) */
    int ncalls;
    ag__buf text, thinking, calls; /* a whole answer's pieces; calls: tool_use blocks, comma-separated */
} mx;


/* a value as JSON text in the arena */
static const char *json_of(mx *x, yajl_val v) { return ag__gw_json_text(x->gc->g->a, &x->ar, v); }

/* the text of a content value: a string, or its text blocks joined */
static const char *text_of(mx *x, yajl_val c) { return ag__gw_text_parts(x->gc->g->a, &x->ar, c); }

/* ---- writing the answer ---- */
static void send_event(mx *x, const char *name, const ag__buf *data) {
    ag__sconn *sc = x->gc->sc;
    if (!ag__sconn_head_sent(sc)) ag__sconn_head_chunked(sc, 200, "text/event-stream");
    char head[96];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", name);
    ag__sconn_chunk(sc, head, (size_t)n);
    ag__sconn_chunk(sc, data->p, data->len);
    ag__sconn_chunk(sc, "\n\n", 2);
}

static void event_str(mx *x, const char *name, const char *json) {
    ag__buf b = {(char *)json, strlen(json), 0};
    send_event(x, name, &b);
}

static void start(mx *x, int input_tokens) {
    if (x->started) return;
    x->started = 1;
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__buf b = {0};
    char f[160];
    ag__buf_str(a, &b, "{\"type\":\"message_start\",\"message\":{\"id\":\"");
    ag__buf_str(a, &b, x->id);
    ag__buf_str(a, &b, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    ag__buf_json(a, &b, x->model, strlen(x->model));
    snprintf(f, sizeof f, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":%d,\"output_tokens\":1}}}",
             input_tokens);
    ag__buf_str(a, &b, f);
    send_event(x, "message_start", &b);
    ag__buf_free(a, &b);
    event_str(x, "ping", "{\"type\":\"ping\"}");
}

static void block_stop(mx *x) {
    if (!x->block_open) return;
    char f[96];
    snprintf(f, sizeof f, "{\"type\":\"content_block_stop\",\"index\":%d}", x->block);
    event_str(x, "content_block_stop", f);
    x->block_open = 0;
    x->block++;
}

/* a piece of thinking (kind 1) or text (2): its block opened when it is another kind */
static void delta(mx *x, int kind, const char *t, size_t n) {
    const ag_alloc_funcs *a = x->gc->g->a;
    if (x->block_open && x->block_kind != kind) block_stop(x);
    char f[200];
    if (!x->block_open) {
        snprintf(f, sizeof f,
                 kind == 1 ? "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}"
                           : "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
                 x->block);
        event_str(x, "content_block_start", f);
        x->block_open = 1;
        x->block_kind = kind;
    }
    ag__buf b = {0};
    snprintf(f, sizeof f, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":", x->block,
             kind == 1 ? "thinking_delta" : "text_delta", kind == 1 ? "thinking" : "text");
    ag__buf_str(a, &b, f);
    ag__buf_json(a, &b, t, n);
    ag__buf_str(a, &b, "}}");
    send_event(x, "content_block_delta", &b);
    ag__buf_free(a, &b);
}

/* a tool_use block: {"type":"tool_use","id","name","input"} into out */
static void tool_block(mx *x, ag__buf *out, const ag_chunk *ch, int empty_input) {
    const ag_alloc_funcs *a = x->gc->g->a;
    char id[64];
    snprintf(id, sizeof id, "toolu_%s_%d", x->id + 4, x->ncalls++);
    ag__buf_str(a, out, "{\"type\":\"tool_use\",\"id\":\"");
    ag__buf_str(a, out, id);
    ag__buf_str(a, out, "\",\"name\":");
    ag__buf_json(a, out, ch->name, ch->name_len);
    ag__buf_str(a, out, ",\"input\":");
    if (empty_input || !ch->arguments_len) ag__buf_str(a, out, "{}");
    else ag__buf_add(a, out, ch->arguments_json, ch->arguments_len); /* a JSON object: the decoder's promise */
    ag__buf_str(a, out, "}");
}

static void m_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    mx *x = ud;
    const ag_alloc_funcs *a = x->gc->g->a;
    if (ag__sconn_closing(x->gc->sc)) return;
    if (!x->stream) {
        if (ch->kind == AG_CHUNK_CONTENT) ag__buf_add(a, &x->text, ch->text, ch->len);
        else if (ch->kind == AG_CHUNK_THINKING) ag__buf_add(a, &x->thinking, ch->text, ch->len);
        else if (ch->kind == AG_CHUNK_TOOL_CALL) {
            if (x->calls.len) ag__buf_add(a, &x->calls, ",", 1);
            tool_block(x, &x->calls, ch, 0);
        }
        return;
    }
    if (ch->kind != AG_CHUNK_CONTENT && ch->kind != AG_CHUNK_THINKING && ch->kind != AG_CHUNK_TOOL_CALL) return;
    start(x, 0);
    if (ch->kind == AG_CHUNK_TOOL_CALL) { /* its block whole: started, its input in one delta, stopped */
        block_stop(x);
        ag__buf b = {0};
        char f[96];
        snprintf(f, sizeof f, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":", x->block);
        ag__buf_str(a, &b, f);
        tool_block(x, &b, ch, 1);
        ag__buf_str(a, &b, "}");
        send_event(x, "content_block_start", &b);
        b.len = 0;
        snprintf(f, sizeof f, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":",
                 x->block);
        ag__buf_str(a, &b, f);
        ag__buf_json(a, &b, ch->arguments_len ? ch->arguments_json : "{}", ch->arguments_len ? ch->arguments_len : 2);
        ag__buf_str(a, &b, "}}");
        send_event(x, "content_block_delta", &b);
        ag__buf_free(a, &b);
        x->block_open = 1;
        x->block_kind = 3;
        block_stop(x);
        return;
    }
    if (ch->len) delta(x, ch->kind == AG_CHUNK_THINKING ? 1 : 2, ch->text, ch->len);
}

static void m_free(mx *x) {
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__arena_free(a, &x->ar);
    ag__buf_free(a, &x->text);
    ag__buf_free(a, &x->thinking);
    ag__buf_free(a, &x->calls);
    ag__free(a, x);
}

static const char *stop_reason(const mx *x, const ag_result *res) {
    if (x->ncalls) return "tool_use";
    return res->done_reason && !strcmp(res->done_reason, "length") ? "max_tokens" : "end_turn";
}

static void m_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    mx *x = ud;
    gconn *gc = x->gc;
    const ag_alloc_funcs *a = gc->g->a;
    ag__gw_translated_end(gc, res);
    gc->mx = NULL;
    if (ag__sconn_closing(gc->sc)) {
        m_free(x);
        return;
    }
    long long in = res->server.prompt_eval_count > 0 ? res->server.prompt_eval_count : 0;
    long long out = res->server.eval_count >= 0 ? res->server.eval_count : res->timing.chunks;
    char f[300];
    if (res->status && !x->started) { /* nothing went out: an error answer, in Anthropic's shape */
        ag__gw_translated_error(gc, res, x->model);
    } else if (x->stream) {
        if (res->status) { /* broken after output: Anthropic's error event */
            ag__buf b = {0};
            ag__buf_str(a, &b, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":");
            const char *e = res->error ? res->error : ag_strerror(res->status);
            ag__buf_json(a, &b, e, strlen(e));
            ag__buf_str(a, &b, "}}");
            send_event(x, "error", &b);
            ag__buf_free(a, &b);
        } else {
            start(x, (int)in);
            block_stop(x);
            snprintf(f, sizeof f, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                                  "\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld}}",
                     stop_reason(x, res), in, out);
            event_str(x, "message_delta", f);
            event_str(x, "message_stop", "{\"type\":\"message_stop\"}");
        }
        ag__sconn_end_chunked(gc->sc);
    } else {
        ag__buf b = {0};
        ag__buf_str(a, &b, "{\"id\":\"");
        ag__buf_str(a, &b, x->id);
        ag__buf_str(a, &b, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        ag__buf_json(a, &b, x->model, strlen(x->model));
        ag__buf_str(a, &b, ",\"content\":[");
        int any = 0;
        if (x->thinking.len) {
            ag__buf_str(a, &b, "{\"type\":\"thinking\",\"thinking\":");
            ag__buf_json(a, &b, x->thinking.p, x->thinking.len);
            ag__buf_str(a, &b, ",\"signature\":\"\"}");
            any = 1;
        }
        if (x->text.len || !x->calls.len) {
            ag__buf_str(a, &b, any ? ",{\"type\":\"text\",\"text\":" : "{\"type\":\"text\",\"text\":");
            ag__buf_json(a, &b, x->text.p ? x->text.p : "", x->text.len);
            ag__buf_str(a, &b, "}");
            any = 1;
        }
        if (x->calls.len) {
            if (any) ag__buf_add(a, &b, ",", 1);
            ag__buf_add(a, &b, x->calls.p, x->calls.len);
        }
        snprintf(f, sizeof f, "],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld}}",
                 stop_reason(x, res), in, out);
        ag__buf_str(a, &b, f);
        if (b.p) ag__sconn_send_whole(gc->sc, 200, "application/json", b.p, b.len);
        else ag__sconn_send_error(gc->sc, 500, "out of memory");
        ag__buf_free(a, &b);
    }
    m_free(x);
    ag__gw_finish(gc);
}

/* ---- reading the request ---- */
/* the name of the tool whose tool_use block had this id (for a tool_result) */
static const char *tool_name_of(yajl_val msgs, const char *id) {
    for (size_t i = 0; id && msgs && i < msgs->u.array.len; i++) {
        yajl_val c = ag__json_get(msgs->u.array.values[i], "content");
        for (size_t k = 0; c && YAJL_IS_ARRAY(c) && k < c->u.array.len; k++) {
            const char *t = ag__json_str(c->u.array.values[k], "type"), *bid = ag__json_str(c->u.array.values[k], "id");
            if (t && !strcmp(t, "tool_use") && bid && !strcmp(bid, id)) return ag__json_str(c->u.array.values[k], "name");
        }
    }
    return NULL;
}

/* the request's messages as the client's: 0, or an error's text */
static const char *read_messages(mx *x, yajl_val root, ag_message **out, size_t *n) {
    const ag_alloc_funcs *a = x->gc->g->a;
    yajl_val msgs = ag__json_get(root, "messages");
    if (!msgs || !YAJL_IS_ARRAY(msgs)) return "messages: field required";
    size_t cap = msgs->u.array.len * 2 + 2;
    ag_message *m = ag__arena_alloc(a, &x->ar, cap * sizeof *m);
    if (!m) return "out of memory";
    memset(m, 0, cap * sizeof *m);
    size_t k = 0;
    yajl_val sys = ag__json_get(root, "system");
    if (sys) {
        m[k].role = "system";
        m[k++].content = text_of(x, sys);
    }
    for (size_t i = 0; i < msgs->u.array.len && k + 2 < cap; i++) {
        yajl_val msg = msgs->u.array.values[i];
        const char *role = ag__json_str(msg, "role");
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant"))) return "messages: each role is user or assistant";
        yajl_val c = ag__json_get(msg, "content");
        ag_message *cur = &m[k++];
        cur->role = role;
        cur->content = text_of(x, c);
        if (!c || !YAJL_IS_ARRAY(c)) continue;
        ag__buf calls = {0};
        const char **imgs = NULL;
        size_t nimg = 0;
        for (size_t j = 0; j < c->u.array.len; j++) {
            yajl_val blk = c->u.array.values[j];
            const char *t = ag__json_str(blk, "type");
            if (!t) continue;
            if (!strcmp(t, "thinking")) cur->thinking = ag__json_str(blk, "thinking");
            else if (!strcmp(t, "image")) { /* base64 sources pass; URLs are the node's to refuse */
                const char *data = ag__json_str(ag__json_get(blk, "source"), "data");
                if (!data) continue;
                if (!imgs) imgs = ag__arena_alloc(a, &x->ar, c->u.array.len * sizeof *imgs);
                if (imgs) imgs[nimg++] = data;
            } else if (!strcmp(t, "tool_use")) {
                const char *input = json_of(x, ag__json_get(blk, "input"));
                const char *name = ag__json_str(blk, "name");
                ag__buf_str(a, &calls, calls.len ? ",{\"function\":{\"name\":" : "[{\"function\":{\"name\":");
                ag__buf_json(a, &calls, name ? name : "", name ? strlen(name) : 0);
                ag__buf_str(a, &calls, ",\"arguments\":");
                ag__buf_str(a, &calls, input ? input : "{}");
                ag__buf_str(a, &calls, "}}");
            } else if (!strcmp(t, "tool_result")) { /* a message of its own, role tool */
                ag_message *tr = &m[k++];
                tr->role = "tool";
                tr->content = text_of(x, ag__json_get(blk, "content"));
                tr->tool_name = tool_name_of(msgs, ag__json_str(blk, "tool_use_id"));
                if (k + 2 >= cap) break;
            }
        }
        if (calls.len) {
            ag__buf_str(a, &calls, "]");
            cur->tool_calls_json = ag__arena_strndup(a, &x->ar, calls.p, calls.len);
        }
        ag__buf_free(a, &calls);
        cur->images = imgs;
        cur->n_images = nimg;
    }
    *out = m;
    *n = k;
    return NULL;
}

/* tools [{name, description, input_schema}] as the client's (OpenAI's function tools) */
static const char *tools_of(mx *x, yajl_val root) { return ag__gw_function_tools(x->gc->g->a, &x->ar, ag__json_get(root, "tools"), "input_schema"); }

/* the sampling options as Ollama's options: num_predict, temperature, top_p, top_k, stop */
static const char *options_of(mx *x, yajl_val root) { return ag__gw_sampling_options(x->gc->g->a, &x->ar, root, "max_tokens"); }

static void count_tokens(gconn *gc, yajl_val root) {
    size_t chars = 0;
    yajl_val msgs = ag__json_get(root, "messages"), sys = ag__json_get(root, "system");
    if (sys && YAJL_IS_STRING(sys)) chars += strlen(sys->u.string);
    for (size_t i = 0; msgs && YAJL_IS_ARRAY(msgs) && i < msgs->u.array.len; i++) {
        yajl_val c = ag__json_get(msgs->u.array.values[i], "content");
        if (c && YAJL_IS_STRING(c)) chars += strlen(c->u.string);
        for (size_t k = 0; c && YAJL_IS_ARRAY(c) && k < c->u.array.len; k++) {
            const char *t = ag__json_str(c->u.array.values[k], "text");
            if (t) chars += strlen(t);
        }
    }
    char out[64];
    int n = snprintf(out, sizeof out, "{\"input_tokens\":%zu}", chars / 4 + 1);
    ag__sconn_send_whole(gc->sc, 200, "application/json", out, (size_t)n);
    ag__gw_finish(gc);
}

void ag__gw_translate_messages(gconn *gc, int count) {
    ag_gateway *g = gc->g;
    const ag_alloc_funcs *a = g->a;
    yajl_val root = ag__gw_body_tree(gc);
    if (!root) return; /* (answered) */
    if (count) {
        count_tokens(gc, root);
        ag__json_tree_free(a, root);
        return;
    }
    mx *x = ag__calloc(a, sizeof *x);
    if (!x) {
        ag__json_tree_free(a, root);
        ag__gw_send_error(gc, 500, "out of memory");
        ag__gw_finish(gc);
        return;
    }
    x->gc = gc;
    snprintf(x->model, sizeof x->model, "%s", gc->model);
    static uint64_t ids;
    snprintf(x->id, sizeof x->id, "msg_%016llx", (unsigned long long)(++ids ^ (uint64_t)ag__now_ns()));
    yajl_val sv = ag__json_get(root, "stream");
    x->stream = sv && YAJL_IS_TRUE(sv);
    ag_message *msgs = NULL;
    size_t nmsgs = 0;
    const char *why = read_messages(x, root, &msgs, &nmsgs);
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = x->model;
    p.messages = msgs;
    p.n_messages = nmsgs;
    p.tools_json = why ? NULL : tools_of(x, root);
    p.gen.options_json = why ? NULL : options_of(x, root);
    const char *tt = ag__json_str(ag__json_get(root, "thinking"), "type");
    if (tt) p.gen.think = !strcmp(tt, "enabled") ? "true" : "false";
    p.gen.no_stream = !x->stream;
    ag_request_options ro;
    ag__gw_request_options(gc, &ro);
    p.request = &ro;
    ag_callbacks cb = {m_chunk, m_done, x};
    int rc = why ? AG_EINVAL : ag_chat(g->c, &p, &cb, &gc->req);
    if (ag__gw_translated_start(gc, root, rc, why, x->model)) {
        m_free(x);
        return;
    }
    gc->mx = x;
}
