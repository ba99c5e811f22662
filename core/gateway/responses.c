/* core/gateway/responses.c - OpenAI's Responses API (/v1/responses) served
 * by OpenAI-compatible nodes that have only chat completions: when every node
 * is "openai+http://", the gateway reads the request into the client's chat
 * parameters (instructions, input as text or items: messages with
 * input_text/output_text/input_image parts, function_call and
 * function_call_output items; function tools; reasoning effort; text.format;
 * max_output_tokens, temperature, top_p), starts it through the client, and
 * writes the answer as the Responses API does: one response object, or its
 * events (response.created, in_progress, output_item.added/done,
 * content_part.added/done, output_text.delta/done, function_call_arguments
 * .delta/.done, reasoning summary text, completed or incomplete). */
#include "core/gateway/gateway_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/json.h"
#include "core/base/mem.h"

typedef struct rx {
    gconn *gc;
    ag__arena ar;
    char model[256], id[40];
    long created;
    int stream, started, seq;
    int reasoning_open, message_open, nitems; /* the items opened so far, in order */
    ag__buf text, thinking, calls;            /* what was said; calls: function_call items, comma-separated */
    int ncalls;
} rx;


/* the text of a content value: a string, or its text parts joined */
static const char *text_of(rx *x, yajl_val c) { return ag__gw_text_parts(x->gc->g->a, &x->ar, c); }

/* ---- writing ---- */
static void send_event(rx *x, const char *type, ag__buf *fields) {
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__sconn *sc = x->gc->sc;
    if (!ag__sconn_head_sent(sc)) ag__sconn_head_chunked(sc, 200, "text/event-stream");
    ag__buf b = {0};
    char head[200];
    snprintf(head, sizeof head, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d", type, type, x->seq++);
    ag__buf_str(a, &b, head);
    if (fields && fields->len) {
        ag__buf_str(a, &b, ",");
        ag__buf_add(a, &b, fields->p, fields->len);
    }
    ag__buf_str(a, &b, "}\n\n");
    if (b.p) ag__sconn_chunk(sc, b.p, b.len);
    ag__buf_free(a, &b);
}

/* the response object: its status, its items when done, its usage */
static void response_obj(rx *x, ag__buf *b, const char *status, const ag_result *res) {
    const ag_alloc_funcs *a = x->gc->g->a;
    char f[300];
    snprintf(f, sizeof f, "{\"id\":\"%s\",\"object\":\"response\",\"created_at\":%ld,\"status\":\"%s\",\"model\":", x->id,
             x->created, status);
    ag__buf_str(a, b, f);
    ag__buf_json(a, b, x->model, strlen(x->model));
    ag__buf_str(a, b, ",\"output\":[");
    if (res) {
        int any = 0;
        if (x->thinking.len) {
            snprintf(f, sizeof f, "{\"type\":\"reasoning\",\"id\":\"rs_%s\",\"summary\":[{\"type\":\"summary_text\",\"text\":", x->id + 5);
            ag__buf_str(a, b, f);
            ag__buf_json(a, b, x->thinking.p, x->thinking.len);
            ag__buf_str(a, b, "}]}");
            any = 1;
        }
        if (x->text.len || !x->calls.len) {
            snprintf(f, sizeof f, "%s{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":\"completed\",\"role\":\"assistant\","
                                  "\"content\":[{\"type\":\"output_text\",\"text\":",
                     any ? "," : "", x->id + 5);
            ag__buf_str(a, b, f);
            ag__buf_json(a, b, x->text.p ? x->text.p : "", x->text.len);
            ag__buf_str(a, b, ",\"annotations\":[]}]}");
            any = 1;
        }
        if (x->calls.len) {
            if (any) ag__buf_str(a, b, ",");
            ag__buf_add(a, b, x->calls.p, x->calls.len);
        }
    }
    long long in = res && res->server.prompt_eval_count > 0 ? res->server.prompt_eval_count : 0;
    long long out = res ? (res->server.eval_count >= 0 ? res->server.eval_count : res->timing.chunks) : 0;
    snprintf(f, sizeof f, "],\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld,\"total_tokens\":%lld}", in, out, in + out);
    ag__buf_str(a, b, f);
    int cut = res && res->done_reason && !strcmp(res->done_reason, "length") && !x->calls.len;
    ag__buf_str(a, b, cut ? ",\"incomplete_details\":{\"reason\":\"max_output_tokens\"}}" : ",\"incomplete_details\":null}");
}

static void start(rx *x) {
    if (x->started || !x->stream) return;
    x->started = 1;
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__buf b = {0};
    ag__buf_str(a, &b, "\"response\":");
    response_obj(x, &b, "in_progress", NULL);
    send_event(x, "response.created", &b);
    send_event(x, "response.in_progress", &b);
    ag__buf_free(a, &b);
}

static void fields(rx *x, ag__buf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fields(rx *x, ag__buf *b, const char *fmt, ...) {
    char f[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f, sizeof f, fmt, ap);
    va_end(ap);
    ag__buf_str(x->gc->g->a, b, f);
}

static void close_reasoning(rx *x) {
    if (!x->reasoning_open) return;
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__buf b = {0};
    fields(x, &b, "\"item_id\":\"rs_%s\",\"output_index\":%d,\"summary_index\":0,\"text\":", x->id + 5, x->nitems - 1);
    ag__buf_json(a, &b, x->thinking.p ? x->thinking.p : "", x->thinking.len);
    send_event(x, "response.reasoning_summary_text.done", &b);
    b.len = 0;
    fields(x, &b, "\"output_index\":%d,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_%s\",\"summary\":[{\"type\":\"summary_text\",\"text\":",
           x->nitems - 1, x->id + 5);
    ag__buf_json(a, &b, x->thinking.p ? x->thinking.p : "", x->thinking.len);
    ag__buf_str(a, &b, "}]}");
    send_event(x, "response.output_item.done", &b);
    ag__buf_free(a, &b);
    x->reasoning_open = 0;
}

static void open_message(rx *x) {
    if (x->message_open) return;
    close_reasoning(x);
    ag__buf b = {0};
    fields(x, &b, "\"output_index\":%d,\"item\":{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}",
           x->nitems, x->id + 5);
    send_event(x, "response.output_item.added", &b);
    b.len = 0;
    fields(x, &b, "\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}",
           x->id + 5, x->nitems);
    send_event(x, "response.content_part.added", &b);
    ag__buf_free(x->gc->g->a, &b);
    x->message_open = 1;
    x->nitems++;
}

static void close_message(rx *x) {
    if (!x->message_open) return;
    const ag_alloc_funcs *a = x->gc->g->a;
    int idx = x->nitems - 1;
    ag__buf b = {0};
    fields(x, &b, "\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,\"text\":", x->id + 5, idx);
    ag__buf_json(a, &b, x->text.p ? x->text.p : "", x->text.len);
    send_event(x, "response.output_text.done", &b);
    b.len = 0;
    fields(x, &b, "\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":", x->id + 5, idx);
    ag__buf_json(a, &b, x->text.p ? x->text.p : "", x->text.len);
    ag__buf_str(a, &b, ",\"annotations\":[]}");
    send_event(x, "response.content_part.done", &b);
    b.len = 0;
    fields(x, &b, "\"output_index\":%d,\"item\":{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":\"completed\",\"role\":\"assistant\","
                  "\"content\":[{\"type\":\"output_text\",\"text\":",
           idx, x->id + 5);
    ag__buf_json(a, &b, x->text.p ? x->text.p : "", x->text.len);
    ag__buf_str(a, &b, ",\"annotations\":[]}]}");
    send_event(x, "response.output_item.done", &b);
    ag__buf_free(a, &b);
    x->message_open = 0;
}

/* a function_call item: {"type":"function_call","id","call_id","name","arguments","status"} */
static void call_item(rx *x, ag__buf *b, const ag_chunk *ch, int k, const char *status, int with_args) {
    const ag_alloc_funcs *a = x->gc->g->a;
    fields(x, b, "{\"type\":\"function_call\",\"id\":\"fc_%s_%d\",\"call_id\":\"call_%s_%d\",\"name\":", x->id + 5, k, x->id + 5, k);
    ag__buf_json(a, b, ch->name, ch->name_len);
    ag__buf_str(a, b, ",\"arguments\":");
    if (with_args) ag__buf_json(a, b, ch->arguments_len ? ch->arguments_json : "{}", ch->arguments_len ? ch->arguments_len : 2);
    else ag__buf_str(a, b, "\"\"");
    fields(x, b, ",\"status\":\"%s\"}", status);
}

static void r_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    rx *x = ud;
    const ag_alloc_funcs *a = x->gc->g->a;
    if (ag__sconn_closing(x->gc->sc)) return;
    if (ch->kind != AG_CHUNK_CONTENT && ch->kind != AG_CHUNK_THINKING && ch->kind != AG_CHUNK_TOOL_CALL) return;
    if (ch->kind == AG_CHUNK_TOOL_CALL) {
        int k = x->ncalls++;
        if (x->calls.len) ag__buf_add(a, &x->calls, ",", 1);
        call_item(x, &x->calls, ch, k, "completed", 1);
        if (!x->stream) return;
        start(x);
        close_reasoning(x);
        close_message(x);
        ag__buf b = {0};
        fields(x, &b, "\"output_index\":%d,\"item\":", x->nitems);
        call_item(x, &b, ch, k, "in_progress", 0);
        send_event(x, "response.output_item.added", &b);
        b.len = 0;
        fields(x, &b, "\"item_id\":\"fc_%s_%d\",\"output_index\":%d,\"delta\":", x->id + 5, k, x->nitems);
        ag__buf_json(a, &b, ch->arguments_len ? ch->arguments_json : "{}", ch->arguments_len ? ch->arguments_len : 2);
        send_event(x, "response.function_call_arguments.delta", &b);
        b.len = 0;
        fields(x, &b, "\"item_id\":\"fc_%s_%d\",\"output_index\":%d,\"arguments\":", x->id + 5, k, x->nitems);
        ag__buf_json(a, &b, ch->arguments_len ? ch->arguments_json : "{}", ch->arguments_len ? ch->arguments_len : 2);
        send_event(x, "response.function_call_arguments.done", &b);
        b.len = 0;
        fields(x, &b, "\"output_index\":%d,\"item\":", x->nitems);
        call_item(x, &b, ch, k, "completed", 1);
        send_event(x, "response.output_item.done", &b);
        ag__buf_free(a, &b);
        x->nitems++;
        return;
    }
    ag__buf_add(a, ch->kind == AG_CHUNK_THINKING ? &x->thinking : &x->text, ch->text, ch->len);
    if (!x->stream || !ch->len) return;
    start(x);
    ag__buf b = {0};
    if (ch->kind == AG_CHUNK_THINKING) {
        if (!x->reasoning_open && !x->message_open) {
            fields(x, &b, "\"output_index\":%d,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_%s\",\"summary\":[]}", x->nitems, x->id + 5);
            send_event(x, "response.output_item.added", &b);
            b.len = 0;
            x->reasoning_open = 1;
            x->nitems++;
        }
        if (x->reasoning_open) {
            fields(x, &b, "\"item_id\":\"rs_%s\",\"output_index\":%d,\"summary_index\":0,\"delta\":", x->id + 5, x->nitems - 1);
            ag__buf_json(a, &b, ch->text, ch->len);
            send_event(x, "response.reasoning_summary_text.delta", &b);
        }
    } else {
        open_message(x);
        fields(x, &b, "\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,\"delta\":", x->id + 5, x->nitems - 1);
        ag__buf_json(a, &b, ch->text, ch->len);
        send_event(x, "response.output_text.delta", &b);
    }
    ag__buf_free(a, &b);
}

static void r_free(rx *x) {
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__arena_free(a, &x->ar);
    ag__buf_free(a, &x->text);
    ag__buf_free(a, &x->thinking);
    ag__buf_free(a, &x->calls);
    ag__free(a, x);
}

static void r_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    rx *x = ud;
    gconn *gc = x->gc;
    const ag_alloc_funcs *a = gc->g->a;
    ag__gw_translated_end(gc, res);
    gc->rx = NULL;
    if (ag__sconn_closing(gc->sc)) {
        r_free(x);
        return;
    }
    int cut = res->done_reason && !strcmp(res->done_reason, "length") && !x->calls.len;
    if (res->status && !x->started) {
        ag__gw_translated_error(gc, res, x->model);
    } else if (x->stream) {
        ag__buf b = {0};
        if (res->status) { /* broken after output: an error event */
            ag__buf_str(a, &b, "\"message\":");
            const char *e = res->error ? res->error : ag_strerror(res->status);
            ag__buf_json(a, &b, e, strlen(e));
            send_event(x, "error", &b);
        } else {
            start(x);
            if (!x->nitems) open_message(x); /* no output at all: an empty message */
            close_reasoning(x);
            if (!x->message_open && !x->calls.len && !x->text.len && x->thinking.len) open_message(x);
            close_message(x);
            ag__buf_str(a, &b, "\"response\":");
            response_obj(x, &b, cut ? "incomplete" : "completed", res);
            send_event(x, cut ? "response.incomplete" : "response.completed", &b);
        }
        ag__buf_free(a, &b);
        ag__sconn_end_chunked(gc->sc);
    } else {
        ag__buf b = {0};
        response_obj(x, &b, cut ? "incomplete" : "completed", res);
        if (b.p) ag__sconn_send_whole(gc->sc, 200, "application/json", b.p, b.len);
        else ag__sconn_send_error(gc->sc, 500, "out of memory");
        ag__buf_free(a, &b);
    }
    r_free(x);
    ag__gw_finish(gc);
}

/* ---- reading the request ---- */
static const char *call_name(yajl_val items, const char *call_id) {
    for (size_t i = 0; call_id && items && YAJL_IS_ARRAY(items) && i < items->u.array.len; i++) {
        const char *t = ag__json_str(items->u.array.values[i], "type"), *c = ag__json_str(items->u.array.values[i], "call_id");
        if (t && !strcmp(t, "function_call") && c && !strcmp(c, call_id)) return ag__json_str(items->u.array.values[i], "name");
    }
    return NULL;
}

static const char *read_input(rx *x, yajl_val root, ag_message **out, size_t *n) {
    const ag_alloc_funcs *a = x->gc->g->a;
    yajl_val in = ag__json_get(root, "input");
    size_t cap = (in && YAJL_IS_ARRAY(in) ? in->u.array.len : 1) + 2;
    ag_message *m = ag__arena_alloc(a, &x->ar, cap * sizeof *m);
    if (!m) return "out of memory";
    memset(m, 0, cap * sizeof *m);
    size_t k = 0;
    const char *ins = ag__json_str(root, "instructions");
    if (ins) m[k].role = "system", m[k++].content = ins;
    if (!in) return "input: field required";
    if (YAJL_IS_STRING(in)) {
        m[k].role = "user";
        m[k++].content = in->u.string;
    } else if (YAJL_IS_ARRAY(in)) {
        for (size_t i = 0; i < in->u.array.len && k < cap; i++) {
            yajl_val it = in->u.array.values[i];
            const char *t = ag__json_str(it, "type"), *role = ag__json_str(it, "role");
            if (t && !strcmp(t, "function_call")) { /* the model's call: an assistant message with it */
                const char *name = ag__json_str(it, "name"), *args = ag__json_str(it, "arguments");
                ag__buf c = {0};
                ag__buf_str(a, &c, "[{\"function\":{\"name\":");
                ag__buf_json(a, &c, name ? name : "", name ? strlen(name) : 0);
                ag__buf_str(a, &c, ",\"arguments\":");
                ag__buf_str(a, &c, args && *args ? args : "{}"); /* (a JSON object as text: checked by the encoder) */
                ag__buf_str(a, &c, "}}]");
                m[k].role = "assistant";
                m[k].content = "";
                m[k++].tool_calls_json = c.p ? ag__arena_strndup(a, &x->ar, c.p, c.len) : NULL;
                ag__buf_free(a, &c);
            } else if (t && !strcmp(t, "function_call_output")) {
                m[k].role = "tool";
                m[k].content = text_of(x, ag__json_get(it, "output"));
                m[k++].tool_name = call_name(in, ag__json_str(it, "call_id"));
            } else if (role && (!t || !strcmp(t, "message"))) {
                if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") && strcmp(role, "developer"))
                    return "input: a message's role is user, assistant, system or developer";
                m[k].role = !strcmp(role, "developer") ? "system" : role;
                m[k++].content = text_of(x, ag__json_get(it, "content"));
            }
        }
    } else {
        return "input: a string or an array of items";
    }
    *out = m;
    *n = k;
    return NULL;
}

/* function tools ({"type":"function","name","description","parameters"}) as the client's */
static const char *tools_of(rx *x, yajl_val root) { return ag__gw_function_tools(x->gc->g->a, &x->ar, ag__json_get(root, "tools"), "parameters"); }

static const char *options_of(rx *x, yajl_val root) { return ag__gw_sampling_options(x->gc->g->a, &x->ar, root, "max_output_tokens"); }

/* text.format: json_object is "json", json_schema its schema (Ollama's format) */
static const char *format_of(rx *x, yajl_val root) {
    yajl_val f = ag__json_get(ag__json_get(root, "text"), "format");
    const char *t = ag__json_str(f, "type");
    if (!t) return NULL;
    if (!strcmp(t, "json_object")) return "json";
    if (!strcmp(t, "json_schema")) return ag__gw_json_text(x->gc->g->a, &x->ar, ag__json_get(f, "schema"));
    return NULL;
}

void ag__gw_translate_responses(gconn *gc) {
    ag_gateway *g = gc->g;
    const ag_alloc_funcs *a = g->a;
    yajl_val root = ag__gw_body_tree(gc);
    if (!root) return; /* (answered) */
    rx *x = ag__calloc(a, sizeof *x);
    if (!x) {
        ag__json_tree_free(a, root);
        ag__gw_send_error(gc, 500, "out of memory");
        ag__gw_finish(gc);
        return;
    }
    x->gc = gc;
    snprintf(x->model, sizeof x->model, "%s", gc->model);
    static uint64_t ids;
    snprintf(x->id, sizeof x->id, "resp_%016llx", (unsigned long long)(++ids ^ (uint64_t)ag__now_ns()));
    x->created = (long)time(NULL);
    yajl_val sv = ag__json_get(root, "stream");
    x->stream = sv && YAJL_IS_TRUE(sv);
    ag_message *msgs = NULL;
    size_t n = 0;
    const char *why = read_input(x, root, &msgs, &n);
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = x->model;
    p.messages = msgs;
    p.n_messages = n;
    if (!why) {
        p.tools_json = tools_of(x, root);
        p.gen.options_json = options_of(x, root);
        p.gen.format = format_of(x, root);
        const char *ef = ag__json_str(ag__json_get(root, "reasoning"), "effort");
        if (ef) p.gen.think = !strcmp(ef, "none") || !strcmp(ef, "minimal") ? "false" : ef;
    }
    p.gen.no_stream = !x->stream;
    ag_request_options ro;
    ag__gw_request_options(gc, &ro);
    p.request = &ro;
    ag_callbacks cb = {r_chunk, r_done, x};
    int rc = why ? AG_EINVAL : ag_chat(g->c, &p, &cb, &gc->req);
    if (ag__gw_translated_start(gc, root, rc, why, x->model)) {
        r_free(x);
        return;
    }
    gc->rx = x;
}
