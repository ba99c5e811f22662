/* core/gateway/translate.c - Ollama's API served by OpenAI-compatible nodes.
 *
 * When no Ollama node can take a request on one of Ollama's routes (every
 * node is "openai+http://"), the gateway reads the body into the client's
 * parameters, starts the request through the client (which speaks the
 * node's dialect), and writes the answer back as Ollama writes it: NDJSON
 * lines for a stream, one object otherwise, the figures from the node's
 * usage, the time from the gateway's own clock. */
#include "core/gateway/gateway_internal.h"
#include "agents/host.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_tree.h>

#include "core/base/buf.h"
#include "core/base/json.h"
#include "core/base/mem.h"

typedef struct xlate {
    gconn *gc;
    ag__arena ar;     /* the parameters' strings */
    int kind;         /* 1 chat, 2 generate, 3 embed, 4 legacy embeddings */
    int stream, started;
    char model[256];
    ag__buf text, thinking, calls; /* a whole answer's pieces; calls: JSON objects, comma-separated */
} xlate;

/* 1 when the pool has no node that speaks Ollama's API and is not ejected */
int ag__gw_openai_only(ag_gateway *g) {
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n == 0) return 0;
    for (size_t i = 0; i < n && i < 256; i++)
        if (info[i].api != AG_API_OPENAI && info[i].state != AG_NODE_EJECTED) return 0;
    return 1;
}

static void now_rfc3339(char *buf, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%09ldZ", base, ts.tv_nsec);
}

/* a value as JSON text in the arena (objects, arrays, strings as given) */
const char *ag__gw_json_text(const ag_alloc_funcs *a, ag__arena *ar, yajl_val v) {
    if (!v) return NULL;
    yajl_gen g = ag__gen_new(a);
    if (!g || ag__gen_value(a, g, v)) {
        if (g) yajl_gen_free(g);
        return NULL;
    }
    size_t l;
    char *t = ag__gen_take(a, g, &l);
    if (!t) return NULL;
    char *c = ag__arena_strndup(a, ar, t, l);
    ag__free(a, t);
    return c;
}

static const char *json_text(xlate *x, yajl_val v);

/* keep_alive as text ("5m", or a number of seconds) */
static const char *keep_alive_of(xlate *x, yajl_val root) {
    const char *p[] = {"keep_alive", NULL};
    yajl_val v = yajl_tree_get(root, p, yajl_t_any);
    if (!v) return NULL;
    if (YAJL_IS_STRING(v)) return v->u.string;
    if (YAJL_IS_NUMBER(v)) return ag__arena_strndup(x->gc->g->a, &x->ar, v->u.number.r, strlen(v->u.number.r));
    return NULL;
}

static const char *think_of(yajl_val root) {
    const char *p[] = {"think", NULL};
    yajl_val v = yajl_tree_get(root, p, yajl_t_any);
    if (!v) return NULL;
    if (YAJL_IS_TRUE(v)) return "true";
    if (YAJL_IS_FALSE(v)) return "false";
    return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

/* ---- the answer, as Ollama writes it ---- */
static void put_line(xlate *x, ag__buf *b) {
    ag__buf_add(x->gc->g->a, b, "\n", 1);
    ag__sconn *sc = x->gc->sc;
    if (!ag__sconn_head_sent(sc)) ag__sconn_head_chunked(sc, 200, "application/x-ndjson");
    ag__sconn_chunk(sc, b->p, b->len);
}

static void line_head(xlate *x, ag__buf *b) {
    const ag_alloc_funcs *a = x->gc->g->a;
    char ts[64];
    now_rfc3339(ts, sizeof ts);
    ag__buf_str(a, b, "{\"model\":");
    ag__buf_json(a, b, x->model, strlen(x->model));
    ag__buf_str(a, b, ",\"created_at\":\"");
    ag__buf_str(a, b, ts);
    ag__buf_str(a, b, "\",");
}

/* "message":{...} (chat) or "response":..,"thinking":.. (generate) */
static void body_fields(xlate *x, ag__buf *b, const char *text, size_t tl, const char *think, size_t thl,
                        const char *calls, size_t cl) {
    const ag_alloc_funcs *a = x->gc->g->a;
    if (x->kind == 1) {
        ag__buf_str(a, b, "\"message\":{\"role\":\"assistant\",\"content\":");
        ag__buf_json(a, b, text ? text : "", tl);
        if (thl) {
            ag__buf_str(a, b, ",\"thinking\":");
            ag__buf_json(a, b, think, thl);
        }
        if (cl) {
            ag__buf_str(a, b, ",\"tool_calls\":[");
            ag__buf_add(a, b, calls, cl);
            ag__buf_str(a, b, "]");
        }
        ag__buf_str(a, b, "}");
    } else {
        ag__buf_str(a, b, "\"response\":");
        ag__buf_json(a, b, text ? text : "", tl);
        if (thl) {
            ag__buf_str(a, b, ",\"thinking\":");
            ag__buf_json(a, b, think, thl);
        }
    }
}

/* 1 when s (n bytes) is exactly one JSON value, blanks around it allowed */
static int one_json_value(const ag_alloc_funcs *a, const char *s, size_t n) {
    char *t = ag__malloc(a, n + 1);
    if (!t) return 0;
    memcpy(t, s, n);
    t[n] = 0;
    char err[8];
    yajl_val v = memchr(s, 0, n) ? NULL : ag__json_tree(a, t, err, sizeof err);
    ag__free(a, t);
    ag__json_tree_free(a, v);
    return v != NULL;
}

static void x_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    xlate *x = ud;
    const ag_alloc_funcs *a = x->gc->g->a;
    if (ag__sconn_closing(x->gc->sc)) return;
    if (ch->kind != AG_CHUNK_CONTENT && ch->kind != AG_CHUNK_THINKING && ch->kind != AG_CHUNK_TOOL_CALL) return;
    ag__buf call = {0};
    if (ch->kind == AG_CHUNK_TOOL_CALL) {
        /* the arguments are JSON (the decoder's promise); checked here all the
         * same, since they are written into the line unescaped: text that is
         * not one JSON value goes as a string, never as line syntax */
        ag__buf_str(a, &call, "{\"function\":{\"name\":");
        ag__buf_json(a, &call, ch->name, ch->name_len);
        ag__buf_str(a, &call, ",\"arguments\":");
        if (one_json_value(a, ch->arguments_json, ch->arguments_len))
            ag__buf_add(a, &call, ch->arguments_json, ch->arguments_len);
        else
            ag__buf_json(a, &call, ch->arguments_json, ch->arguments_len);
        ag__buf_str(a, &call, "}}");
    }
    if (!x->stream) { /* a whole answer: held until the end */
        if (ch->kind == AG_CHUNK_CONTENT) ag__buf_add(a, &x->text, ch->text, ch->len);
        else if (ch->kind == AG_CHUNK_THINKING) ag__buf_add(a, &x->thinking, ch->text, ch->len);
        else {
            if (x->calls.len) ag__buf_add(a, &x->calls, ",", 1);
            ag__buf_add(a, &x->calls, call.p, call.len);
        }
        ag__buf_free(a, &call);
        return;
    }
    ag__buf line = {0};
    line_head(x, &line);
    if (ch->kind == AG_CHUNK_CONTENT) body_fields(x, &line, ch->text, ch->len, NULL, 0, NULL, 0);
    else if (ch->kind == AG_CHUNK_THINKING) body_fields(x, &line, "", 0, ch->text, ch->len, NULL, 0);
    else body_fields(x, &line, "", 0, NULL, 0, call.p, call.len);
    ag__buf_str(a, &line, ",\"done\":false}");
    put_line(x, &line);
    x->started = 1;
    ag__buf_free(a, &line);
    ag__buf_free(a, &call);
}

static void x_free(xlate *x) {
    const ag_alloc_funcs *a = x->gc->g->a;
    ag__arena_free(a, &x->ar);
    ag__buf_free(a, &x->text);
    ag__buf_free(a, &x->thinking);
    ag__buf_free(a, &x->calls);
    ag__free(a, x);
}

static void figures(xlate *x, ag__buf *b, const ag_result *res) {
    char f[400];
    int64_t total = res->timing.e2e_ns, pe = res->server.prompt_eval_count, ev = res->server.eval_count;
    snprintf(f, sizeof f,
             ",\"total_duration\":%lld,\"load_duration\":0,\"prompt_eval_count\":%lld,\"prompt_eval_duration\":0,"
             "\"eval_count\":%lld,\"eval_duration\":%lld",
             (long long)total, (long long)(pe >= 0 ? pe : 0), (long long)(ev >= 0 ? ev : res->timing.chunks),
             (long long)(res->timing.ttft_ns >= 0 ? total - res->timing.ttft_ns : total));
    ag__buf_str(x->gc->g->a, b, f);
}

/* a translated request's end, before its answer is written: the gateway's
 * books (in flight, the log's result, the key's tokens and waiters) */
void ag__gw_translated_end(gconn *gc, const ag_result *res) {
    gc->req = NULL;
    if (gc->g->in_flight) gc->g->in_flight--;
    ag__obs_result(gc, res);
    ag__gw_key_done(gc, res);
}

/* nothing went out: the error answer, one status for one cause as on the forwarded route */
void ag__gw_translated_error(gconn *gc, const ag_result *res, const char *model) {
    int st = ag__gw_http_for(gc->g, res, model);
    char msg[700];
    if (st == 404 && res->http_status != 404) snprintf(msg, sizeof msg, "model \"%s\" not found, try pulling it first", model);
    else snprintf(msg, sizeof msg, "%s", res->error ? res->error : ag_strerror(res->status));
    ag__gw_send_error(gc, st, msg);
}

static void x_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    xlate *x = ud;
    gconn *gc = x->gc;
    const ag_alloc_funcs *a = gc->g->a;
    ag__gw_translated_end(gc, res);
    gc->xl = NULL;
    if (ag__sconn_closing(gc->sc)) {
        x_free(x);
        return;
    }
    if (res->status && !x->started) { /* nothing went out: an error answer */
        ag__gw_translated_error(gc, res, x->model);
        x_free(x);
        ag__gw_finish(gc);
        return;
    }
    ag__buf out = {0};
    if (x->kind >= 3) { /* embeddings */
        if (x->kind == 3) {
            ag__buf_str(a, &out, "{\"model\":");
            ag__buf_json(a, &out, x->model, strlen(x->model));
            ag__buf_str(a, &out, ",\"embeddings\":[");
        } else {
            ag__buf_str(a, &out, "{\"embedding\":");
        }
        char num[40];
        for (size_t i = 0; i < res->n_embeddings && (x->kind == 3 || i < 1); i++) {
            ag__buf_str(a, &out, i ? ",[" : "[");
            for (size_t j = 0; j < res->dim; j++) {
                int l = snprintf(num, sizeof num, j ? ",%.9g" : "%.9g", (double)res->embeddings[i * res->dim + j]);
                ag__buf_add(a, &out, num, (size_t)l);
            }
            ag__buf_str(a, &out, "]");
        }
        if (x->kind == 3) {
            ag__buf_str(a, &out, "]");
            char f[120];
            snprintf(f, sizeof f, ",\"total_duration\":%lld,\"load_duration\":0,\"prompt_eval_count\":%lld}",
                     (long long)res->timing.e2e_ns, (long long)(res->server.prompt_eval_count > 0 ? res->server.prompt_eval_count : 0));
            ag__buf_str(a, &out, f);
        } else {
            ag__buf_str(a, &out, "}");
        }
        ag__sconn_send_whole(gc->sc, 200, "application/json; charset=utf-8", out.p, out.len);
    } else if (res->status) { /* after output: Ollama's error line */
        ag__buf_str(a, &out, "{\"error\":");
        const char *e = res->error ? res->error : ag_strerror(res->status);
        ag__buf_json(a, &out, e, strlen(e));
        ag__buf_str(a, &out, "}");
        put_line(x, &out);
        ag__sconn_end_chunked(gc->sc);
        gc->g->broken_streams++;
    } else {
        line_head(x, &out);
        if (x->stream) body_fields(x, &out, "", 0, NULL, 0, NULL, 0);
        else body_fields(x, &out, x->text.p, x->text.len, x->thinking.p, x->thinking.len, x->calls.p, x->calls.len);
        const char *dr = res->done_reason;
        if (dr && !strcmp(dr, "tool_calls")) dr = "stop"; /* Ollama's word for it */
        ag__buf_str(a, &out, ",\"done\":true,\"done_reason\":");
        ag__buf_json(a, &out, dr ? dr : "stop", strlen(dr ? dr : "stop"));
        figures(x, &out, res);
        ag__buf_str(a, &out, "}");
        if (x->stream) {
            put_line(x, &out);
            ag__sconn_end_chunked(gc->sc);
        } else {
            ag__sconn_send_whole(gc->sc, 200, "application/json; charset=utf-8", out.p, out.len);
        }
    }
    ag__buf_free(a, &out);
    x_free(x);
    ag__gw_finish(gc);
}

/* "images": [base64...] of a message or a generate */
static int images_of(xlate *x, yajl_val v, const char *const **out, size_t *n) {
    const char *ip[] = {"images", NULL};
    yajl_val im = yajl_tree_get(v, ip, yajl_t_array);
    *out = NULL;
    *n = 0;
    if (!im || !im->u.array.len) return 0;
    const char **iv = ag__arena_alloc(x->gc->g->a, &x->ar, im->u.array.len * sizeof *iv);
    if (!iv) return AG_ENOMEM;
    size_t k = 0;
    for (size_t j = 0; j < im->u.array.len; j++)
        if (YAJL_IS_STRING(im->u.array.values[j])) iv[k++] = im->u.array.values[j]->u.string;
    *out = iv;
    *n = k;
    return 0;
}

/* messages[] into the client's: role, content, images, tool calls, tool name */
static int messages_of(xlate *x, yajl_val root, ag_message **out, size_t *n) {
    const char *p[] = {"messages", NULL};
    yajl_val arr = yajl_tree_get(root, p, yajl_t_array);
    *out = NULL;
    *n = 0;
    if (!arr) return 0;
    const ag_alloc_funcs *a = x->gc->g->a;
    ag_message *m = ag__arena_alloc(a, &x->ar, (arr->u.array.len + 1) * sizeof *m);
    if (!m) return AG_ENOMEM;
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val v = arr->u.array.values[i];
        memset(&m[i], 0, sizeof m[i]);
        m[i].role = ag__json_str(v, "role") ? ag__json_str(v, "role") : "user";
        m[i].content = ag__json_str(v, "content") ? ag__json_str(v, "content") : "";
        m[i].thinking = ag__json_str(v, "thinking");
        m[i].tool_name = ag__json_str(v, "tool_name") ? ag__json_str(v, "tool_name") : ag__json_str(v, "name");
        const char *tp[] = {"tool_calls", NULL};
        yajl_val tc = yajl_tree_get(v, tp, yajl_t_array);
        if (tc) m[i].tool_calls_json = json_text(x, tc);
        if (images_of(x, v, &m[i].images, &m[i].n_images)) return AG_ENOMEM;
    }
    *out = m;
    *n = arr->u.array.len;
    return 0;
}

int ag__gw_translate(gconn *gc, const char *path, size_t plen) {
    int kind = plen == 9 && !memcmp(path, "/api/chat", 9)             ? 1
               : plen == 13 && !memcmp(path, "/api/generate", 13)     ? 2
               : plen == 10 && !memcmp(path, "/api/embed", 10)        ? 3
               : plen == 15 && !memcmp(path, "/api/embeddings", 15)   ? 4
                                                                      : 0;
    if (!kind) return 0;
    ag_gateway *g = gc->g;
    const ag_alloc_funcs *a = g->a;
    yajl_val root = ag__gw_body_tree(gc);
    if (!root) return 1; /* (answered) */
    xlate *x = ag__calloc(a, sizeof *x);
    if (!x) {
        ag__json_tree_free(a, root);
        ag__sconn_send_error(gc->sc, 500, "out of memory");
        ag__gw_finish(gc);
        return 1;
    }
    x->gc = gc;
    x->kind = kind;
    x->stream = gc->stream;
    const char *model = ag__json_str(root, "model");
    snprintf(x->model, sizeof x->model, "%s", model ? model : "");
    ag_gen_options gen;
    memset(&gen, 0, sizeof gen);
    const char *op[] = {"options", NULL}, *fp[] = {"format", NULL};
    gen.options_json = json_text(x, yajl_tree_get(root, op, yajl_t_object));
    yajl_val fmt = yajl_tree_get(root, fp, yajl_t_any);
    gen.format = fmt && YAJL_IS_STRING(fmt) ? fmt->u.string : fmt && YAJL_IS_OBJECT(fmt) ? json_text(x, fmt) : NULL;
    gen.keep_alive = keep_alive_of(x, root);
    gen.think = think_of(root);
    gen.no_stream = !x->stream;
    ag_request_options ro; /* the session, the key's place in the pool's queue, the deadline */
    ag__gw_request_options(gc, &ro);
    ag_callbacks cb = {x_chunk, x_done, x};
    int rc;
    if (kind == 1) {
        ag_chat_params p;
        memset(&p, 0, sizeof p);
        p.model = x->model;
        const char *tp[] = {"tools", NULL};
        p.tools_json = json_text(x, yajl_tree_get(root, tp, yajl_t_array));
        p.gen = gen;
        p.request = &ro;
        rc = messages_of(x, root, (ag_message **)&p.messages, &p.n_messages);
        if (!rc) rc = ag_chat(g->c, &p, &cb, &gc->req);
    } else if (kind == 2) {
        ag_generate_params p;
        memset(&p, 0, sizeof p);
        p.model = x->model;
        p.prompt = ag__json_str(root, "prompt");
        p.suffix = ag__json_str(root, "suffix");
        p.system = ag__json_str(root, "system");
        p.gen = gen;
        p.request = &ro;
        rc = images_of(x, root, &p.images, &p.n_images);
        if (!rc) rc = ag_generate(g->c, &p, &cb, &gc->req);
    } else {
        const char *one = ag__json_str(root, kind == 3 ? "input" : "prompt");
        const char *ip[] = {"input", NULL};
        yajl_val arr = kind == 3 ? yajl_tree_get(root, ip, yajl_t_array) : NULL;
        size_t n = arr ? arr->u.array.len : one ? 1 : 0;
        const char **in = n ? ag__arena_alloc(a, &x->ar, n * sizeof *in) : NULL;
        for (size_t i = 0; in && i < n; i++)
            in[i] = arr ? (YAJL_IS_STRING(arr->u.array.values[i]) ? arr->u.array.values[i]->u.string : "") : one;
        ag_embed_params p;
        memset(&p, 0, sizeof p);
        p.model = x->model;
        p.inputs = in;
        p.n_inputs = n;
        p.truncate = -1;
        const char *tp[] = {"truncate", NULL}, *dp[] = {"dimensions", NULL};
        yajl_val tr = yajl_tree_get(root, tp, yajl_t_any), dm = yajl_tree_get(root, dp, yajl_t_number);
        if (tr && YAJL_IS_TRUE(tr)) p.truncate = 1;
        else if (tr && YAJL_IS_FALSE(tr)) p.truncate = 0;
        if (dm && YAJL_IS_INTEGER(dm) && YAJL_GET_INTEGER(dm) > 0 && YAJL_GET_INTEGER(dm) < 1000000)
            p.dimensions = (int)YAJL_GET_INTEGER(dm); /* (OpenAI's "dimensions": the same field) */
        p.options_json = gen.options_json;
        p.keep_alive = gen.keep_alive;
        p.request = &ro;
        x->stream = 0;
        rc = n ? ag_embed(g->c, &p, &cb, &gc->req) : AG_EINVAL;
    }
    if (ag__gw_translated_start(gc, root, rc, NULL, x->model)) {
        x_free(x);
        return 1;
    }
    gc->xl = x;
    return 1;
}

static const char *json_text(xlate *x, yajl_val v) { return ag__gw_json_text(x->gc->g->a, &x->ar, v); }

/* ---- what the three translations share (Ollama's routes here, Anthropic's
 * Messages in messages.c, the Responses API in responses.c) ---- */
yajl_val ag__gw_body_tree(gconn *gc) {
    const ag_alloc_funcs *a = gc->g->a;
    size_t blen;
    const char *body = ag__sconn_body(gc->sc, &blen);
    char err[128];
    yajl_val root = body && blen ? ag__json_tree(a, body, err, sizeof err) : NULL;
    if (root && YAJL_IS_OBJECT(root)) return root;
    ag__json_tree_free(a, root);
    ag__gw_send_error(gc, 400, "invalid JSON in the request body");
    ag__gw_finish(gc);
    return NULL;
}

int ag__gw_translated_start(gconn *gc, yajl_val root, int rc, const char *why, const char *model) {
    ag_gateway *g = gc->g;
    ag__json_tree_free(g->a, root); /* the parameters were read during the starting call */
    ag__sconn_release_body(gc->sc);
    if (!rc) {
        g->in_flight++;
        return 0;
    }
    ag_result er;
    memset(&er, 0, sizeof er);
    er.status = rc;
    ag__gw_send_error(gc, rc == AG_EINVAL ? 400 : ag__gw_http_for(g, &er, model),
                      why ? why : rc == AG_EINVAL ? "invalid request" : ag_strerror(rc));
    ag__gw_finish(gc);
    return rc;
}

const char *ag__gw_text_parts(const ag_alloc_funcs *a, ag__arena *ar, yajl_val c) {
    if (!c) return "";
    if (YAJL_IS_STRING(c)) return c->u.string;
    ag__buf b = {0};
    for (size_t i = 0; YAJL_IS_ARRAY(c) && i < c->u.array.len; i++) {
        const char *t = ag__json_str(c->u.array.values[i], "type"), *s = ag__json_str(c->u.array.values[i], "text");
        if (t && s && (!strcmp(t, "text") || !strcmp(t, "input_text") || !strcmp(t, "output_text"))) {
            if (b.len) ag__buf_add(a, &b, "\n", 1);
            ag__buf_str(a, &b, s);
        }
    }
    const char *r = b.p ? ag__arena_strndup(a, ar, b.p, b.len) : "";
    ag__buf_free(a, &b);
    return r ? r : "";
}

const char *ag__gw_function_tools(const ag_alloc_funcs *a, ag__arena *ar, yajl_val tools, const char *schema_key) {
    if (!tools || !YAJL_IS_ARRAY(tools) || !tools->u.array.len) return NULL;
    ag__buf b = {0};
    ag__buf_str(a, &b, "[");
    for (size_t i = 0; i < tools->u.array.len; i++) {
        yajl_val t = tools->u.array.values[i];
        const char *type = ag__json_str(t, "type"), *name = ag__json_str(t, "name"), *desc = ag__json_str(t, "description");
        if (!name || (type && strcmp(type, "function") && strcmp(type, "custom"))) continue; /* (a server's own tools: not ours to run) */
        const char *schema = ag__gw_json_text(a, ar, ag__json_get(t, schema_key));
        if (b.len > 1) ag__buf_str(a, &b, ",");
        ag__buf_str(a, &b, "{\"type\":\"function\",\"function\":{\"name\":");
        ag__buf_json(a, &b, name, strlen(name));
        if (desc) {
            ag__buf_str(a, &b, ",\"description\":");
            ag__buf_json(a, &b, desc, strlen(desc));
        }
        ag__buf_str(a, &b, ",\"parameters\":");
        ag__buf_str(a, &b, schema ? schema : "{\"type\":\"object\"}");
        ag__buf_str(a, &b, "}}");
    }
    ag__buf_str(a, &b, "]");
    const char *r = b.len > 2 && b.p ? ag__arena_strndup(a, ar, b.p, b.len) : NULL;
    ag__buf_free(a, &b);
    return r;
}

const char *ag__gw_sampling_options(const ag_alloc_funcs *a, ag__arena *ar, yajl_val root, const char *max_key) {
    ag__buf b = {0};
    char f[64];
    yajl_val v = ag__json_get(root, max_key);
    ag__buf_str(a, &b, "{");
    if (v && YAJL_IS_INTEGER(v)) snprintf(f, sizeof f, "\"num_predict\":%lld", (long long)YAJL_GET_INTEGER(v)), ag__buf_str(a, &b, f);
    static const char *const num[] = {"temperature", "top_p", "top_k"};
    for (size_t i = 0; i < 3; i++)
        if ((v = ag__json_get(root, num[i])) && YAJL_IS_NUMBER(v)) {
            ag__buf_str(a, &b, b.len > 1 ? ",\"" : "\"");
            ag__buf_str(a, &b, num[i]);
            ag__buf_str(a, &b, "\":");
            ag__buf_str(a, &b, v->u.number.r);
        }
    const char *stop = (v = ag__json_get(root, "stop_sequences")) && YAJL_IS_ARRAY(v) ? ag__gw_json_text(a, ar, v) : NULL;
    if (stop) {
        ag__buf_str(a, &b, b.len > 1 ? ",\"stop\":" : "\"stop\":");
        ag__buf_str(a, &b, stop);
    }
    ag__buf_str(a, &b, "}");
    const char *r = b.len > 2 && b.p ? ag__arena_strndup(a, ar, b.p, b.len) : NULL;
    ag__buf_free(a, &b);
    return r;
}
