/* bench/sim/sim.c - a simulated Ollama node.
 *
 * Speaks enough of Ollama's API for every client path: models, streamed and
 * whole chat/generate answers with configurable timing, parallel slots with a
 * bounded queue that answers 503 as Ollama does, deterministic embeddings in
 * which texts sharing words are close, tool calls when tools are offered, a
 * pull progress stream, and injected faults. Answers are written as
 * preformatted lines straight into evhttp's chunk buffers, so the node stays
 * far cheaper than any client it serves.
 */
#include "sim_internal.h"
#include "core/base/buf.h"
#include "core/base/json.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <yajl/yajl_tree.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

static const char *fault_names[] = {"",      "reset",  "error-line", "malformed",          "http500",
                                    "http503", "stall", "silent",     "close-before-final", "close-after-final", "truncate",
                                    "http429", "keepalive"};

static int fault_id(const char *s) {
    for (size_t i = 1; i < sizeof fault_names / sizeof fault_names[0]; i++)
        if (strcmp(s, fault_names[i]) == 0) return (int)i;
    return F_NONE;
}

/* ---- helpers ---- */
/* name as served: itself, or without a tag the model's ":latest" (no copy:
 * a long name cannot be cut into another model's) */
model *sim_find_model(ag_sim *s, const char *name) {
    size_t nl = strlen(name);
    int tagged = strchr(name, ':') != NULL;
    for (int i = 0; i < s->nmodels; i++) {
        const char *m = s->models[i].name;
        if (strcmp(m, name) == 0) return &s->models[i];
        if (!tagged && strncmp(m, name, nl) == 0 && strcmp(m + nl, ":latest") == 0) return &s->models[i];
    }
    return NULL;
}

void sim_add_model(ag_sim *s, const char *name) {
    if (s->nmodels >= MAX_MODELS || sim_find_model(s, name)) return;
    model *m = &s->models[s->nmodels++];
    snprintf(m->name, sizeof m->name, "%s%s", name, strchr(name, ':') ? "" : ":latest");
    m->loaded = 0;
    m->size = 2019393189 + (int64_t)s->nmodels * 1000;
}

void sim_now_str(char *buf, size_t n) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t l = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + l, n - l, ".%06ldZ", (long)tv.tv_usec);
}

int64_t sim_since_ns(const struct timeval *t0) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)(tv.tv_sec - t0->tv_sec) * 1000000000 + (int64_t)(tv.tv_usec - t0->tv_usec) * 1000;
}

/* s inside a JSON string (the quotes are the caller's) */
void sim_json_escape(struct evbuffer *b, const char *s) {
    ag__buf q = {0};
    if (ag__buf_json(NULL, &q, s, strlen(s)) == 0) evbuffer_add(b, q.p + 1, q.len - 2);
    ag__buf_free(NULL, &q);
}

static int oai_errors; /* the sim handling this request speaks OpenAI (one loop, one request at a time) */
int sim_anth_errors; /* ... Anthropic's Messages */

void sim_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg) {
    struct evbuffer *b = evbuffer_new();
    if (sim_anth_errors) {
        evbuffer_add_printf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"",
                            code == 400 ? "invalid_request_error" : code == 404 ? "not_found_error"
                            : code == 429 ? "rate_limit_error" : code == 503 ? "overloaded_error" : "api_error");
        sim_json_escape(b, msg);
        evbuffer_add_printf(b, "\"}}");
    } else if (oai_errors) {
        evbuffer_add_printf(b, "{\"error\":{\"message\":\"");
        sim_json_escape(b, msg);
        evbuffer_add_printf(b, "\",\"type\":\"%s\",\"param\":null,\"code\":null}}",
                            code == 400 ? "invalid_request_error" : code == 404 ? "not_found_error" : "api_error");
    } else {
        evbuffer_add(b, "{\"error\":\"", 10);
        sim_json_escape(b, msg);
        evbuffer_add(b, "\"}", 2);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

void sim_reply_json(struct evhttp_request *req, struct evbuffer *b) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
}

static const char *recorded_paths[NREC] = {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings",
                                           "/api/show", "/api/pull", "/api/copy", "/api/delete",
                                           "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                                           "/api/create", "/api/push"};
static ag_sim *cur_sim; /* the sim handling the current request (one loop, one at a time) */

char *sim_body_of(struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    evbuffer_copyout(in, s, n);
    s[n] = 0;
    const char *uri = evhttp_request_get_uri(req);
    for (int i = 0; cur_sim && i < NREC; i++)
        if (!strncmp(uri, recorded_paths[i], strlen(recorded_paths[i])) && uri[strlen(recorded_paths[i])] == 0) {
            free(cur_sim->last_body[i]);
            cur_sim->last_body[i] = strdup(s);
        }
    return s;
}

const char *ag_sim_last_auth(const ag_sim *s) {
    return s->last_auth;
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg) {
    SSL *ssl = SSL_new(arg);
    return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
}

int ag_sim_count_header(const ag_sim *s, const char *path_prefix, const char *line, int *total) {
    int with = 0, all = 0;
    unsigned n = s->nheads < 256 ? s->nheads : 256;
    for (unsigned i = 0; i < n; i++) {
        const char *h = s->heads[i];
        if (!h || strncmp(h, path_prefix, strlen(path_prefix)) != 0) continue;
        all++;
        const char *nl = strchr(h, '\n');
        for (const char *q = nl ? nl + 1 : h + strlen(h); q && *q;) {
            const char *e = strchr(q, '\n');
            size_t l = e ? (size_t)(e - q) : strlen(q);
            if (l == strlen(line) && strncasecmp(q, line, l) == 0) {
                with++;
                break;
            }
            q = e ? e + 1 : NULL;
        }
    }
    if (total) *total = all;
    return with;
}

const char *ag_sim_last_header(const ag_sim *s, const char *path_prefix, const char *name, char *out, size_t n) {
    size_t nl = strlen(name);
    unsigned have = s->nheads < 256 ? s->nheads : 256;
    for (unsigned k = 0; k < have; k++) { /* the newest first */
        const char *h = s->heads[(s->nheads - 1 - k) % 256];
        if (!h || strncmp(h, path_prefix, strlen(path_prefix)) != 0) continue;
        for (const char *q = strchr(h, '\n'); q && *++q;) {
            const char *e = strchr(q, '\n');
            size_t l = e ? (size_t)(e - q) : strlen(q);
            if (l > nl + 1 && strncasecmp(q, name, nl) == 0 && q[nl] == ':') {
                const char *v = q + nl + 1;
                while (*v == ' ') v++;
                snprintf(out, n, "%.*s", (int)(q + l - v), v);
                return out;
            }
            q = e;
        }
        return NULL;
    }
    return NULL;
}

const char *ag_sim_last_body(const ag_sim *s, const char *path) {
    for (int i = 0; i < NREC; i++)
        if (!strcmp(path, recorded_paths[i])) return s->last_body[i];
    return NULL;
}

yajl_val sim_get(yajl_val obj, const char *key) {
    const char *path[] = {key, NULL};
    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

/* a message's text: its content, or in OpenAI's parts form ([{"type":
 * "text","text":...},{"type":"image_url",...}]) its first text part */
static const char *msg_text(yajl_val m) {
    yajl_val c = sim_get(m, "content");
    if (c && YAJL_IS_STRING(c)) return YAJL_GET_STRING(c);
    if (c && YAJL_IS_ARRAY(c))
        for (size_t i = 0; i < c->u.array.len; i++) {
            const char *type = ag__json_str(c->u.array.values[i], "type");
            if (type && (!strcmp(type, "text") || !strcmp(type, "input_text") || !strcmp(type, "output_text")))
                return ag__json_str(c->u.array.values[i], "text");
        }
    return NULL;
}

/* Anthropic: the text of a tool_result block in a message (its content a
 * string or text blocks), or NULL */
static const char *anth_tool_result(yajl_val m) {
    yajl_val c = sim_get(m, "content");
    for (size_t i = 0; c && YAJL_IS_ARRAY(c) && i < c->u.array.len; i++) {
        yajl_val blk = c->u.array.values[i];
        const char *type = ag__json_str(blk, "type");
        if (!type || strcmp(type, "tool_result") != 0) continue;
        yajl_val rc = sim_get(blk, "content");
        if (rc && YAJL_IS_STRING(rc)) return rc->u.string;
        for (size_t k = 0; rc && YAJL_IS_ARRAY(rc) && k < rc->u.array.len; k++) {
            const char *t = ag__json_str(rc->u.array.values[k], "text");
            if (t) return t;
        }
        return "";
    }
    return NULL;
}

/* ---- request handlers ---- */
static void handle_generate(ag_sim *s, struct evhttp_request *req, enum skind kind) {
    yajl_val root;
    const char *mname = sim_model_request(s, req, &root);
    if (!mname) return;
    if (strstr(mname, "embed")) { /* an embedding-only model, as Ollama answers */
        char msg[300];
        snprintf(msg, sizeof msg, "\"%s\" does not support %s", mname, kind == S_CHAT ? "chat" : "generate");
        sim_reply_error(req, 400, "Bad Request", msg);
        ag__json_tree_free(NULL, root);
        return;
    }
    if (s->req_oai && kind == S_GENERATE) {
        yajl_val pr = sim_get(root, "prompt");
        if (pr && !YAJL_IS_STRING(pr)) {
            sim_reply_error(req, 400, "Bad Request", "invalid prompt: only a string is supported");
            ag__json_tree_free(NULL, root);
            return;
        }
    }
    int maxq = s->cfg.max_queue > 0 ? s->cfg.max_queue : 512;
    if (s->cfg.slots > 0 && (int)s->st.active >= s->cfg.slots && (int)s->st.queued >= maxq) {
        s->st.rejected_busy++;
        sim_reply_error(req, 503, "Service Unavailable", "server busy, please try again.  maximum pending requests exceeded");
        ag__json_tree_free(NULL, root);
        return;
    }
    stream *st = calloc(1, sizeof *st);
    st->sim = s;
    st->req = req;
    st->kind = kind;
    gettimeofday(&st->t0, NULL);
    snprintf(st->model, sizeof st->model, "%s", mname);
    yajl_val sv = sim_get(root, "stream");
    st->resp = s->req_resp;
    st->oai = s->req_oai && !st->resp;
    st->anth = s->req_anth;
    if (st->anth || st->resp) {
        snprintf(st->oai_id, sizeof st->oai_id, "%s%llu", st->anth ? "msg_" : "rsp_", (unsigned long long)++s->oai_ids);
        st->created = (long)time(NULL);
    }
    if (st->oai) {
        const char *up[] = {"stream_options", "include_usage", NULL};
        yajl_val iu = yajl_tree_get(root, up, yajl_t_true);
        st->usage = iu != NULL;
        snprintf(st->oai_id, sizeof st->oai_id, "%s-%llu", kind == S_CHAT ? "chatcmpl" : "cmpl",
                 (unsigned long long)++s->oai_ids);
        st->created = (long)time(NULL);
    }
    st->do_stream = st->oai || st->anth || st->resp ? sv && YAJL_IS_TRUE(sv) : !(sv && YAJL_IS_FALSE(sv)); /* OpenAI, Anthropic: off by default */
    st->ntokens = s->cfg.tokens > 0 ? s->cfg.tokens : 32;
    yajl_val mt = sim_get(root, st->resp ? "max_output_tokens" : "max_completion_tokens"); /* (the newer name wins) */
    if (!mt && !st->resp) mt = sim_get(root, "max_tokens");
    if ((st->oai || st->anth || st->resp) && mt && YAJL_IS_INTEGER(mt) && YAJL_GET_INTEGER(mt) >= 0) {
        /* Anthropic's max_tokens (always given) and Responses' max_output_tokens bound the answer; OpenAI's sets it */
        if (!(st->anth || st->resp) || YAJL_GET_INTEGER(mt) < st->ntokens) {
            st->ntokens = (int)YAJL_GET_INTEGER(mt);
            st->limited = 1;
        }
    }
    yajl_val opts = sim_get(root, "options");
    yajl_val np = sim_get(opts, "num_predict");
    if (np && YAJL_IS_INTEGER(np) && YAJL_GET_INTEGER(np) >= 0) {
        st->ntokens = (int)YAJL_GET_INTEGER(np);
        st->limited = 1;
    }
    yajl_val think = sim_get(root, st->oai ? "reasoning_effort" : "think");
    int thinking = think && (YAJL_IS_TRUE(think) || (YAJL_IS_STRING(think) && think->u.string &&
                                                     strcmp(think->u.string, "none") != 0 && strcmp(think->u.string, "false") != 0));
    if (st->anth) { /* Anthropic: "thinking": {"type": "enabled", "budget_tokens": N} */
        const char *tt = ag__json_str(sim_get(root, "thinking"), "type");
        thinking = tt && !strcmp(tt, "enabled");
    }
    if (st->resp) { /* Responses: "reasoning": {"effort": "low" ...} */
        const char *ef = ag__json_str(sim_get(root, "reasoning"), "effort");
        thinking = ef && strcmp(ef, "none") != 0 && strcmp(ef, "minimal") != 0;
    }
    yajl_val fmt = st->resp ? sim_get(sim_get(root, "text"), "format") : sim_get(root, st->oai ? "response_format" : "format");
    if (st->resp && fmt) { /* Responses' text.format: {"type": "json_schema", "schema": ...}, json_object or text */
        const char *ft = ag__json_str(fmt, "type");
        if (!ft || !strcmp(ft, "text")) fmt = NULL;
    }
    st->json_format = fmt != NULL && !YAJL_IS_NULL(fmt);
    if (st->json_format && st->ntokens < 2) st->ntokens = 2;
    if (kind == S_GENERATE) {
        const char *p = ag__json_str(root, "prompt"), *sy = ag__json_str(root, "system");
        snprintf(st->prompt, sizeof st->prompt, "%s", p ? p : "");
        st->prompt_chars = (p ? strlen(p) : 0) + (sy ? strlen(sy) : 0);
        if (!p || !*p) {
            yajl_val ka = sim_get(root, "keep_alive");
            int unload = ka && ((YAJL_IS_NUMBER(ka) && YAJL_GET_DOUBLE(ka) == 0) ||
                                (YAJL_IS_STRING(ka) && ka->u.string && strcmp(ka->u.string, "0") == 0));
            st->load = unload ? 2 : 1;
            st->ntokens = 0;
        }
    } else {
        yajl_val msgs = sim_get(root, st->resp ? "input" : "messages");
        const char *last_user = "", *last_role = "";
        const char *tool_content = NULL, *assistant_prefix = NULL;
        if (st->resp) { /* Responses: instructions, and input as text or items */
            const char *ins = ag__json_str(root, "instructions");
            if (ins) st->prompt_chars += strlen(ins);
            if (ins && strstr(ins, "fenced")) st->code_answer = 1;
            if (msgs && YAJL_IS_STRING(msgs)) {
                last_user = msgs->u.string;
                last_role = "user";
                st->prompt_chars += strlen(last_user);
            }
        }
        if (msgs && YAJL_IS_ARRAY(msgs)) {
            for (size_t i = 0; i < msgs->u.array.len; i++) {
                yajl_val m = msgs->u.array.values[i];
                const char *role = ag__json_str(m, "role");
                const char *content = msg_text(m);
                const char *itype = st->resp ? ag__json_str(m, "type") : NULL;
                if (itype && !strcmp(itype, "function_call_output")) { /* a tool's result */
                    last_role = "tool";
                    tool_content = ag__json_str(m, "output");
                    if (!tool_content) tool_content = "";
                    continue;
                }
                if (itype && !strcmp(itype, "function_call")) {
                    last_role = "assistant";
                    continue;
                }
                if (!role) continue;
                last_role = role;
                const char *tr = st->anth ? anth_tool_result(m) : NULL;
                if (tr) { /* Anthropic: a tool's result is a user message's block */
                    last_role = "tool";
                    tool_content = tr;
                    continue;
                }
                if (strcmp(role, "user") == 0 && content) last_user = content;
                if (content) st->prompt_chars += strlen(content);
                if (strcmp(role, "tool") == 0) tool_content = content;
                if (strcmp(role, "system") == 0 && content && strstr(content, "fenced")) st->code_answer = 1;
                assistant_prefix = strcmp(role, "assistant") == 0 ? content : NULL;
            }
        }
        snprintf(st->prompt, sizeof st->prompt, "%s", last_user);
        st->seed = sim_fnv(st->model, st->prompt);
        if (!st->oai && !st->resp && !st->anth && msgs && YAJL_IS_ARRAY(msgs) && msgs->u.array.len == 0) {
            /* no messages: Ollama loads (or, with keep_alive 0, unloads) the model */
            yajl_val ka = sim_get(root, "keep_alive");
            int unload = ka && ((YAJL_IS_NUMBER(ka) && YAJL_GET_DOUBLE(ka) == 0) ||
                                (YAJL_IS_STRING(ka) && ka->u.string && strcmp(ka->u.string, "0") == 0));
            st->load = unload ? 2 : 1;
            st->ntokens = 0;
        }
        /* a trailing assistant message is continued, as Ollama does: find
         * how many of our tokens it already holds and go on from there */
        if (assistant_prefix && *assistant_prefix) {
            size_t off = 0, plen = strlen(assistant_prefix);
            int k = 0;
            while (k < st->ntokens) {
                const char *t = sim_token_at(st->seed, k)->raw;
                size_t tl = strlen(t);
                if (off + tl > plen || memcmp(assistant_prefix + off, t, tl) != 0) break;
                off += tl;
                k++;
            }
            if (off == plen) st->sent = st->first = k;
        }
        yajl_val tools = sim_get(root, "tools");
        if (tools && YAJL_IS_ARRAY(tools) && tools->u.array.len > 0 && strcmp(last_role, "tool") != 0) {
            yajl_val t0 = tools->u.array.values[0];
            const char *fpath[] = {"function", "name", NULL}, *apath[] = {"name", NULL};
            yajl_val nm = yajl_tree_get(t0, st->anth || st->resp ? apath : fpath, yajl_t_string); /* Anthropic's, Responses': name */
            if (nm) {
                st->tool_call = 1;
                snprintf(st->tool_name, sizeof st->tool_name, "%s", YAJL_GET_STRING(nm));
                /* arguments: each declared property, from the user's last word */
                const char *ppath[] = {"function", "parameters", "properties", NULL};
                const char *aprops[] = {"input_schema", "properties", NULL};
                const char *rprops[] = {"parameters", "properties", NULL};
                yajl_val props = yajl_tree_get(t0, st->anth ? aprops : st->resp ? rprops : ppath, yajl_t_object);
                char lastw[64] = "x";
                const char *e = last_user + strlen(last_user);
                while (e > last_user && !isalnum((unsigned char)e[-1])) e--;
                const char *b = e;
                while (b > last_user && isalnum((unsigned char)b[-1])) b--;
                if (e > b) snprintf(lastw, sizeof lastw, "%.*s", (int)(e - b), b);
                size_t off = 0;
                off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "{");
                for (size_t i = 0; props && i < props->u.object.len && off < sizeof st->tool_args - 80; i++) {
                    yajl_val pv = props->u.object.values[i];
                    const char *ty = ag__json_str(pv, "type");
                    const char *k = props->u.object.keys[i];
                    if (ty && (strcmp(ty, "number") == 0 || strcmp(ty, "integer") == 0))
                        off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "%s\"%s\":42", i ? "," : "", k);
                    else if (ty && strcmp(ty, "boolean") == 0)
                        off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "%s\"%s\":true", i ? "," : "", k);
                    else
                        off += (size_t)snprintf(st->tool_args + off, sizeof st->tool_args - off, "%s\"%s\":\"%s\"", i ? "," : "", k, lastw);
                }
                snprintf(st->tool_args + off, sizeof st->tool_args - off, "}");
            }
        }
        if (tool_content) {
            /* echo the tool result, JSON-escaped by hand into a safe subset */
            size_t o = 0;
            for (const char *q = tool_content; *q && o < sizeof st->tool_result - 8; q++) {
                unsigned char ch = (unsigned char)*q;
                if (ch == '"' || ch == '\\') { st->tool_result[o++] = '\\'; st->tool_result[o++] = (char)ch; }
                else if (ch >= 0x20) st->tool_result[o++] = (char)ch;
            }
            st->tool_result[o] = 0;
        }
    }
    if (s->cfg.prefill_rate > 0) { /* the whole prompt, for the prefix cache */
        struct evbuffer *rb = evbuffer_new();
        if (kind == S_CHAT) {
            yajl_val msgs = sim_get(root, "messages");
            for (size_t i = 0; msgs && YAJL_IS_ARRAY(msgs) && i < msgs->u.array.len; i++) {
                const char *role = ag__json_str(msgs->u.array.values[i], "role");
                const char *content = msg_text(msgs->u.array.values[i]);
                evbuffer_add_printf(rb, "%s\n%s\n", role ? role : "user", content ? content : "");
            }
        } else {
            const char *sys = ag__json_str(root, "system");
            evbuffer_add_printf(rb, "%s\n%s", sys ? sys : "", st->prompt);
        }
        size_t rl = evbuffer_get_length(rb);
        st->rendered = malloc(rl + 1);
        if (st->rendered) {
            evbuffer_remove(rb, st->rendered, rl);
            st->rendered[rl] = 0;
        }
        evbuffer_free(rb);
    }
    if (st->code_answer) st->ntokens = 9;
    if (thinking && !st->tool_call) st->think_tokens = st->ntokens / 4;
    if (!st->seed) st->seed = sim_fnv(st->model, st->prompt);
    if (st->json_format && !st->tool_call && !st->load) {
        /* structured output: "json" / json_object, or an instance of the schema
         * (Ollama's format object, OpenAI's json_schema), in pieces of 8 bytes */
        yajl_val schema = NULL;
        if (fmt && YAJL_IS_OBJECT(fmt) && !st->oai) schema = fmt;
        yajl_val ft = st->oai || st->resp ? sim_get(fmt, "type") : NULL;
        if (ft && YAJL_IS_STRING(ft) && !strcmp(ft->u.string, "json_schema"))
            schema = st->resp ? sim_get(fmt, "schema") : sim_get(sim_get(fmt, "json_schema"), "schema");
        if (!(ft && YAJL_IS_STRING(ft) && !strcmp(ft->u.string, "text"))) {
            st->structured = sim_structured(schema, st->seed);
            st->slen = st->structured ? strlen(st->structured) : 0;
            int pieces = (int)((st->slen + 7) / 8);
            st->ntokens = st->think_tokens + (pieces ? pieces : 1); /* whole, whatever num_predict says */
            st->limited = 0;
        }
    }
    ag__json_tree_free(NULL, root);
    /* faults strike generation requests */
    if (s->fault[0]) {
        s->gen_count++;
        int every = s->cfg.fault_every > 0 ? s->cfg.fault_every : 1;
        if (s->gen_count % (uint64_t)every == 0) st->fault = fault_id(s->fault);
    }
    st->timer = evtimer_new(s->base, sim_stream_step, st);
    st->evcon = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(st->evcon, sim_on_client_close, st);
    st->anext = s->all;
    if (s->all) s->all->aprev = &st->anext;
    s->all = st;
    st->aprev = &s->all;
    if (s->cfg.slots > 0 && (int)s->st.active >= s->cfg.slots) {
        st->phase = SP_WAIT_SLOT;
        if (s->waiting_tail) s->waiting_tail->qnext = st;
        else s->waiting_head = st;
        s->waiting_tail = st;
        s->st.queued++;
        return;
    }
    sim_stream_start(st);
}

static void handle_embed(ag_sim *s, struct evhttp_request *req, int legacy) {
    yajl_val root;
    const char *mname = sim_model_request(s, req, &root);
    if (!mname) return;
    int dim = s->cfg.dim > 0 ? s->cfg.dim : 768;
    yajl_val dv = sim_get(root, "dimensions");
    if (dv && YAJL_IS_INTEGER(dv) && YAJL_GET_INTEGER(dv) > 0 && YAJL_GET_INTEGER(dv) < dim)
        dim = (int)YAJL_GET_INTEGER(dv);
    yajl_val in = sim_get(root, legacy ? "prompt" : "input");
    const char *single = in && YAJL_IS_STRING(in) ? YAJL_GET_STRING(in) : NULL;
    size_t n = single ? 1 : (in && YAJL_IS_ARRAY(in) ? in->u.array.len : 0);
    if (n == 0 && !legacy) {
        sim_reply_error(req, 400, "Bad Request", "input is required");
        ag__json_tree_free(NULL, root);
        return;
    }
    float *v = malloc(sizeof(float) * (size_t)dim);
    struct evbuffer *b = evbuffer_new();
    int oai = s->req_oai;
    const char *ef = oai ? ag__json_str(root, "encoding_format") : NULL;
    int b64 = ef && strcmp(ef, "base64") == 0; /* the OpenAI SDK's default: float32 LE, base64 */
    if (oai) evbuffer_add_printf(b, "{\"object\":\"list\",\"model\":\"%s\",\"data\":[", mname);
    else evbuffer_add_printf(b, legacy ? "{\"embedding\":" : "{\"model\":\"%s\",\"embeddings\":[", mname);
    for (size_t i = 0; i < n; i++) {
        const char *text = single;
        if (!text) {
            yajl_val e = in->u.array.values[i];
            text = YAJL_IS_STRING(e) ? YAJL_GET_STRING(e) : "";
        }
        ag_sim_embed_text(text, dim, v);
        if (b64) {
            static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            evbuffer_add_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":\"", i ? "," : "", i);
            const unsigned char *p = (const unsigned char *)v; /* little-endian hosts */
            size_t len = sizeof(float) * (size_t)dim;
            for (size_t k = 0; k < len; k += 3) {
                unsigned x = (unsigned)p[k] << 16 | (k + 1 < len ? (unsigned)p[k + 1] << 8 : 0) | (k + 2 < len ? p[k + 2] : 0);
                char q[4] = {tab[x >> 18 & 63], tab[x >> 12 & 63], k + 1 < len ? tab[x >> 6 & 63] : '=',
                             k + 2 < len ? tab[x & 63] : '='};
                evbuffer_add(b, q, 4);
            }
            evbuffer_add(b, "\"}", 2);
            continue;
        }
        if (oai) evbuffer_add_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[", i ? "," : "", i);
        else evbuffer_add(b, i ? ",[" : "[", i ? 2 : 1);
        char num[32];
        for (int j = 0; j < dim; j++) {
            int l = snprintf(num, sizeof num, j ? ",%.9g" : "%.9g", (double)v[j]);
            evbuffer_add(b, num, (size_t)l);
        }
        evbuffer_add(b, oai ? "]}" : "]", oai ? 2 : 1);
    }
    if (oai) evbuffer_add_printf(b, "],\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", n * 8, n * 8);
    else if (legacy) evbuffer_add_printf(b, "}");
    else if (!oai) evbuffer_add_printf(b, "],\"total_duration\":14143917,\"load_duration\":1019500,\"prompt_eval_count\":%zu}", n * 8);
    free(v);
    sim_reply_json(req, b);
    evbuffer_free(b);
    ag__json_tree_free(NULL, root);
}

/* CORS as Ollama allows it by default: local origins (and app/file/tauri/
 * vscode schemes, browser extensions); 1 when the request was a preflight
 * and is answered, or came from another origin and was refused */
static int sim_cors(struct evhttp_request *req) {
    const char *o = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    if (!o) return 0;
    static const char *const ok[] = {"http://localhost", "https://localhost", "http://127.0.0.1", "https://127.0.0.1",
                                     "http://0.0.0.0", "https://0.0.0.0", "app://", "file://", "tauri://",
                                     "vscode-webview://", "vscode-file://", "chrome-extension://",
                                     "moz-extension://", "safari-extension://"};
    int allowed = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0] && !allowed; i++) {
        size_t l = strlen(ok[i]);
        allowed = strncmp(o, ok[i], l) == 0 && (ok[i][l - 1] == '/' || o[l] == 0 || o[l] == ':');
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (!allowed) {
        evhttp_send_reply(req, 403, "Forbidden", NULL);
        return 1;
    }
    evhttp_add_header(h, "Access-Control-Allow-Origin", o);
    evhttp_add_header(h, "Vary", "Origin");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS) {
        evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
        evhttp_add_header(h, "Access-Control-Allow-Headers",
                          "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, "
                          "x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
                          "x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout");
        evhttp_add_header(h, "Access-Control-Max-Age", "43200");
        evhttp_send_reply(req, 204, "No Content", NULL);
        return 1;
    }
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg) {
    ag_sim *s = arg;
    s->st.requests++;
    cur_sim = s;
    if (sim_cors(req)) return;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    free(s->last_auth);
    s->last_auth = auth ? strdup(auth) : NULL;
    { /* the request's path and headers, for tests that check what every call carried */
        struct evbuffer *hb = evbuffer_new();
        if (hb) {
            const char *u = evhttp_request_get_uri(req);
            evbuffer_add_printf(hb, "%s\n", u ? u : "");
            for (struct evkeyval *h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next)
                evbuffer_add_printf(hb, "%s: %s\n", h->key, h->value);
            evbuffer_add(hb, "", 1);
            unsigned at = s->nheads++ % 256;
            free(s->heads[at]);
            s->heads[at] = strdup((const char *)evbuffer_pullup(hb, -1));
            evbuffer_free(hb);
        }
    }
    /* token lines are small writes: do not let Nagle hold them for an ACK */
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) {
        int one = 1;
        setsockopt(bufferevent_getfd(evhttp_connection_get_bufferevent(evcon)), IPPROTO_TCP,
                   TCP_NODELAY, &one, sizeof one);
    }
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char path[256];
    const char *q = strchr(uri, '?');
    size_t pl = q ? (size_t)(q - uri) : strlen(uri);
    if (pl >= sizeof path) pl = sizeof path - 1;
    memcpy(path, uri, pl);
    path[pl] = 0;
    int post = cmd == EVHTTP_REQ_POST;
    /* Ollama serves the OpenAI-compatible routes too, under /v1, and (since
     * 0.14) Anthropic's Messages */
    s->req_anth = s->cfg.api != 1 && strncmp(path, "/v1/messages", 12) == 0;
    s->req_resp = s->cfg.api != 1 && strcmp(path, "/v1/responses") == 0;
    s->req_oai = !s->req_anth && (s->cfg.api == 1 || strncmp(path, "/v1/", 4) == 0);
    oai_errors = s->req_oai;
    sim_anth_errors = s->req_anth;
    if (s->req_anth) {
        if (post && strcmp(path, "/v1/messages") == 0) handle_generate(s, req, S_CHAT);
        else if (post && strcmp(path, "/v1/messages/count_tokens") == 0) sim_anth_count_tokens(s, req);
        else sim_reply_error(req, 404, "Not Found", "404 page not found");
        return;
    }
    if (s->req_oai) { /* the OpenAI-compatible dialect */
        if (post && strcmp(path, "/v1/chat/completions") == 0) handle_generate(s, req, S_CHAT);
        else if (post && s->req_resp) handle_generate(s, req, S_CHAT);
        else if (post && strcmp(path, "/v1/completions") == 0) handle_generate(s, req, S_GENERATE);
        else if (post && strcmp(path, "/v1/embeddings") == 0) handle_embed(s, req, 0);
        else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/v1/models") == 0) sim_handle_models_oai(s, req);
        else if (cmd == EVHTTP_REQ_GET && strncmp(path, "/v1/models/", 11) == 0) {
            const char *id = path + 11;
            model *fm = *id ? sim_find_model(s, id) : NULL;
            if (!fm) {
                char msg[300];
                snprintf(msg, sizeof msg, "model \"%s\" not found", id);
                sim_reply_error(req, 404, "Not Found", msg);
            } else {
                struct evbuffer *b = evbuffer_new();
                evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"model\",\"created\":1759320000,\"owned_by\":\"library\"}", fm->name);
                sim_reply_json(req, b);
                evbuffer_free(b);
            }
        }
        else if (cmd == EVHTTP_REQ_GET && (s->cfg.says & AG_SIM_SAYS_PROPS) && strcmp(path, "/props") == 0) {
            /* llama.cpp: the server's settings, its parallel slots among them */
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_printf(b, "{\"default_generation_settings\":{\"n_ctx\":4096,\"params\":{}},"
                                   "\"total_slots\":%d,\"model_path\":\"models/%s.gguf\",\"chat_template\":\"\"}",
                                s->cfg.slots > 0 ? s->cfg.slots : 1, s->nmodels ? s->models[0].name : "model");
            sim_reply_json(req, b);
            evbuffer_free(b);
        }
        else if (cmd == EVHTTP_REQ_GET && (s->cfg.says & AG_SIM_SAYS_PROPS) && strcmp(path, "/slots") == 0) {
            /* llama.cpp: one object a slot, busy or not */
            struct evbuffer *b = evbuffer_new();
            int n = s->cfg.slots > 0 ? s->cfg.slots : 1;
            evbuffer_add(b, "[", 1);
            for (int i = 0; i < n; i++)
                evbuffer_add_printf(b, "%s{\"id\":%d,\"n_ctx\":4096,\"is_processing\":%s}", i ? "," : "", i,
                                    i < (int)s->st.active ? "true" : "false");
            evbuffer_add(b, "]", 1);
            sim_reply_json(req, b);
            evbuffer_free(b);
        }
        else if (cmd == EVHTTP_REQ_GET && (s->cfg.says & AG_SIM_SAYS_METRICS) && strcmp(path, "/metrics") == 0) {
            /* vLLM: Prometheus text, requests running and waiting */
            struct evbuffer *b = evbuffer_new();
            const char *m = s->nmodels ? s->models[0].name : "model";
            evbuffer_add_printf(b,
                                "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n"
                                "# TYPE vllm:num_requests_running gauge\n"
                                "vllm:num_requests_running{model_name=\"%s\"} %u.0\n"
                                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
                                "# TYPE vllm:num_requests_waiting gauge\n"
                                "vllm:num_requests_waiting{model_name=\"%s\"} %u.0\n",
                                m, s->st.active, m, s->st.queued);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
            evhttp_send_reply(req, 200, "OK", b);
            evbuffer_free(b);
        }
        else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/health") == 0) {
            struct evbuffer *b = evbuffer_new();
            evbuffer_add_printf(b, "{\"status\":\"ok\"}");
            sim_reply_json(req, b);
            evbuffer_free(b);
        } else sim_reply_error(req, 404, "Not Found", "unknown endpoint");
        return;
    }
    if (strcmp(path, "/") == 0 && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "Ollama is running");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else if (post && strcmp(path, "/api/chat") == 0) handle_generate(s, req, S_CHAT);
    else if (post && strcmp(path, "/api/generate") == 0) handle_generate(s, req, S_GENERATE);
    else if (post && strcmp(path, "/api/embed") == 0) handle_embed(s, req, 0);
    else if (post && strcmp(path, "/api/embeddings") == 0) handle_embed(s, req, 1);
    else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/api/tags") == 0) sim_handle_tags(s, req, 0);
    else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/api/ps") == 0) sim_handle_tags(s, req, 1);
    else if (post && strcmp(path, "/api/show") == 0) sim_handle_show(s, req);
    else if (post && strcmp(path, "/api/pull") == 0) sim_handle_pull(s, req);
    else if (cmd == EVHTTP_REQ_DELETE && strcmp(path, "/api/delete") == 0) sim_handle_delete_copy(s, req, 0);
    else if (post && strcmp(path, "/api/copy") == 0) sim_handle_delete_copy(s, req, 1);
    else if (post && strcmp(path, "/api/push") == 0) sim_handle_push(s, req);
    else if (post && strcmp(path, "/api/create") == 0) sim_handle_create(s, req);
    else if ((post || cmd == EVHTTP_REQ_HEAD) && strncmp(path, "/api/blobs/sha256:", 18) == 0 && strlen(path) == 18 + 64)
        sim_handle_blob(s, req, path + 11, !post);
    else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/api/version") == 0) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"version\":\"0.12.6-sim\"}");
        sim_reply_json(req, b);
        evbuffer_free(b);
    } else {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "404 page not found");
        evhttp_send_reply(req, 404, "Not Found", b);
        evbuffer_free(b);
    }
}

ag_sim *ag_sim_new(struct event_base *base, const char *addr, int port, const ag_sim_config *cfg) {
    ag_sim *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base = base;
    if (cfg) s->cfg = *cfg;
    const char *models = s->cfg.models ? s->cfg.models : "llama3.2,qwen3:4b,nomic-embed-text";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", models);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) sim_add_model(s, t);
    s->cfg.models = NULL;
    if (s->cfg.fault) snprintf(s->fault, sizeof s->fault, "%s", s->cfg.fault);
    s->cfg.fault = NULL;
    s->http = evhttp_new(base);
    if (!s->http) { free(s); return NULL; }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(s->http, on_request, s);
    if (s->cfg.tls_cert && s->cfg.tls_key) {
        s->tls = SSL_CTX_new(TLS_server_method());
        if (!s->tls || SSL_CTX_use_certificate_chain_file(s->tls, s->cfg.tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(s->tls, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1) {
            if (s->tls) SSL_CTX_free(s->tls);
            evhttp_free(s->http);
            free(s);
            return NULL;
        }
        evhttp_set_bevcb(s->http, tls_bev, s->tls);
    }
    evhttp_set_timeout(s->http, 3600);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(s->http, addr ? addr : "127.0.0.1", (uint16_t)port);
    if (!h) {
        evhttp_free(s->http);
        free(s);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return s;
}

int ag_sim_port(const ag_sim *s) { return s->port; }

struct event_base *ag_sim_base_new(void) {
    struct event_config *cfg = event_config_new();
    if (!cfg) return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return b;
}

void ag_sim_set_fault(ag_sim *s, const char *fault, int after, int every) {
    snprintf(s->fault, sizeof s->fault, "%s", fault ? fault : "");
    s->cfg.fault_after = after;
    s->cfg.fault_every = every;
    s->gen_count = 0;
}

void ag_sim_set_timing(ag_sim *s, double ttft_ms, double itl_ms) {
    s->cfg.ttft_ms = ttft_ms;
    s->cfg.itl_ms = itl_ms;
}

void ag_sim_get_stats(const ag_sim *s, ag_sim_stats *out) { *out = s->st; }

void ag_sim_free(ag_sim *s) {
    if (!s) return;
    while (s->all) {
        stream *st = s->all;
        if (st->evcon) evhttp_connection_set_closecb(st->evcon, NULL, NULL);
        if (st->phase == SP_WAIT_SLOT) st->phase = SP_DELAY; /* list emptied below */
        sim_stream_free(st);
    }
    s->waiting_head = s->waiting_tail = NULL;
    evhttp_free(s->http);
    for (int i = 0; i < NREC; i++) free(s->last_body[i]);
    for (int i = 0; i < 256; i++) free(s->heads[i]);
    free(s->last_auth);
    for (int i = 0; i < s->npc; i++) free(s->pc[i]);
    free(s->pc);
    if (s->tls) SSL_CTX_free(s->tls);
    if (cur_sim == s) cur_sim = NULL;
    free(s);
}
