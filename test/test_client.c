/* The local client against simulated nodes on 127.0.0.1 ephemeral ports:
 * every endpoint, concurrency, keep-alive, cancel/free from callbacks,
 * backpressure and each injected fault. */
#include "support.h"
#include <sys/resource.h>
#include <event2/dns.h>
#include <arpa/inet.h>
#include <math.h>
#include <yajl/yajl_tree.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef struct rec {
    int dones, chunks, status, http_status, cancel_at, free_at, pause_at;
    ag_client *free_client;
    char text[65536];
    size_t tlen;
    char thinking[4096];
    char tools[1024];
    char progress[1024];
    ag_result *res;
    int *counter;
    ag_request *req;
} rec;

static void on_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    rec *x = ud;
    x->chunks++;
    if (ch->kind == AG_CHUNK_CONTENT && x->tlen + ch->len < sizeof x->text) {
        memcpy(x->text + x->tlen, ch->text, ch->len);
        x->tlen += ch->len;
        x->text[x->tlen] = 0;
    }
    if (ch->kind == AG_CHUNK_THINKING) strncat(x->thinking, ch->text, ch->len);
    if (ch->kind == AG_CHUNK_TOOL_CALL) {
        strncat(x->tools, ch->name, ch->name_len);
        strncat(x->tools, ch->arguments_json, ch->arguments_len);
    }
    if (ch->kind == AG_CHUNK_PROGRESS) {
        strncat(x->progress, ch->text, ch->len);
        strcat(x->progress, ";");
    }
    if (x->cancel_at && x->chunks == x->cancel_at) ag_request_cancel(r);
    if (x->free_at && x->chunks == x->free_at) ag_client_free(x->free_client);
}

static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    rec *x = ud;
    x->dones++;
    x->status = res->status;
    x->http_status = res->http_status;
    if (x->res) ag_result_free(x->res);
    x->res = ag_result_dup(res);
    if (x->counter) (*x->counter)++;
    if (res->status && getenv("AG_TEST_VERBOSE"))
        fprintf(stderr, "done: %s: %s\n", ag_err_name(res->status), res->error);
}

static void rec_free(rec *x) {
    ag_result_free(x->res);
    x->res = NULL;
}

static ag_callbacks cbs(rec *x) {
    ag_callbacks cb = {on_chunk, on_done, x};
    return cb;
}

static void expected_text(const char *model, const char *prompt, int n, int from, char *out) {
    out[0] = 0;
    for (int i = from; i < n; i++) strcat(out, ag_sim_token(model, prompt, i));
}

static int chat(env *e, rec *x, const char *prompt, int no_stream, const char *options) {
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = "llama3.2";
    p.messages = &m;
    p.n_messages = 1;
    p.gen.no_stream = no_stream;
    p.gen.options_json = options;
    ag_callbacks cb = cbs(x);
    return ag_chat(e->c, &p, &cb, &x->req);
}

/* ---- endpoints ---- */
static void chat_stream(void) {
    env e;
    ag_sim_config cfg = {.tokens = 20};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    CHECK_INT(chat(&e, &x, "why is the sky blue?", 0, NULL), 0);
    CHECK_INT(x.dones, 0); /* never from inside the starting call */
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    char want[4096];
    expected_text("llama3.2", "why is the sky blue?", 20, 0, want);
    CHECK_STR(x.text, want);
    CHECK_INT(x.chunks, 20);
    REQUIRE(x.res);
    CHECK_STR(x.res->done_reason, "stop");
    CHECK_STR(x.res->model, "llama3.2");
    CHECK_INT(x.res->server.eval_count, 20);
    CHECK(x.res->server.total_duration > 0);
    CHECK(x.res->created_at && strlen(x.res->created_at) > 20);
    CHECK_INT(x.res->timing.chunks, 20);
    CHECK(x.res->timing.ttft_ns > 0 && x.res->timing.ttft_ns <= x.res->timing.e2e_ns);
    CHECK(x.res->timing.itl_max_ns >= x.res->timing.itl_mean_ns);
    CHECK_STR(x.res->node, e.host);
    CHECK_INT(x.res->http_status, 200);
    rec_free(&x);
    env_close(&e);
}

static void chat_nostream(void) {
    env e;
    env_open(&e, NULL, NULL);
    rec x = {0};
    CHECK_INT(chat(&e, &x, "hello", 1, "{\"num_predict\": 7, \"temperature\": 0}"), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    char want[4096];
    expected_text("llama3.2", "hello", 7, 0, want);
    CHECK_STR(x.text, want);
    CHECK_INT(x.chunks, 1); /* the whole answer is one chunk */
    CHECK_INT(x.res->server.eval_count, 7);
    rec_free(&x);
    env_close(&e);
}

static void chat_thinking(void) {
    env e;
    ag_sim_config cfg = {.tokens = 8};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_message m = {"user", "think about it", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "qwen3:4b", .messages = &m, .n_messages = 1};
    p.gen.think = "true";
    ag_callbacks cb = cbs(&x);
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    char want[1024];
    expected_text("qwen3:4b", "think about it", 2, 0, want);
    CHECK_STR(x.thinking, want);
    expected_text("qwen3:4b", "think about it", 8, 2, want);
    CHECK_STR(x.text, want);
    rec_free(&x);
    env_close(&e);
}

/* The simulated node's wire, field by field against a real capture and
 * Ollama's behaviours: thinking pieces carry an empty content (ollama-js
 * adds message.content up), a whole answer keeps its thinking, an empty
 * message list is a load answer, an embedding model refuses chat, /api/ps
 * has context_length */
static yajl_val line_tree(const char *s, size_t n) {
    char buf[4096];
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return yajl_tree_parse(buf, NULL, 0);
}

static void keys_of(yajl_val obj, char *out, size_t size) {
    out[0] = 0;
    for (size_t i = 0; obj && YAJL_IS_OBJECT(obj) && i < obj->u.object.len; i++) {
        strncat(out, obj->u.object.keys[i], size - strlen(out) - 2);
        strncat(out, ",", size - strlen(out) - 1);
    }
}

typedef struct rawcap {
    int dones;
    char think_line[2048];
} rawcap;
static void rawcap_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    rawcap *g = ud;
    if (ch->kind == AG_CHUNK_RAW && !g->think_line[0] && ch->len < sizeof g->think_line &&
        memmem(ch->text, ch->len, "\"thinking\"", 10)) {
        memcpy(g->think_line, ch->text, ch->len);
        g->think_line[ch->len] = 0;
    }
}
static void rawcap_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r, (void)res;
    ((rawcap *)ud)->dones++;
}

typedef struct fwdcap {
    int dones;
    char body[8192];
} fwdcap;
static void fwdcap_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    fwdcap *f = ud;
    if (ch->kind == AG_CHUNK_BODY && strlen(f->body) + ch->len < sizeof f->body) strncat(f->body, ch->text, ch->len);
}
static void fwdcap_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r, (void)res;
    ((fwdcap *)ud)->dones++;
}

static void sim_wire_like_ollama(void) {
    /* the capture's first thinking line: its message's fields, in order */
    size_t fl = 0;
    char *fx = t_read_file(FIXTURES "/chat-stream-thinking-blankline.ndjson", &fl);
    REQUIRE(fx);
    yajl_val want = line_tree(fx, strcspn(fx, "\n"));
    REQUIRE(want);
    const char *mp[] = {"message", NULL};
    char want_keys[128], got_keys[128];
    keys_of(yajl_tree_get(want, mp, yajl_t_object), want_keys, sizeof want_keys);
    CHECK_STR(want_keys, "role,thinking,content,");
    env e;
    ag_sim_config cfg = {.tokens = 8};
    env_open(&e, &cfg, NULL);
    ag_message m = {"user", "think about it", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "qwen3:4b", .messages = &m, .n_messages = 1};
    p.gen.think = "true";
    /* the simulated node's thinking line: the same fields, content "" */
    rawcap g;
    memset(&g, 0, sizeof g);
    ag_callbacks cb = {rawcap_chunk, rawcap_done, &g};
    ag_request *req = NULL;
    CHECK_INT(ag_chat(e.c, &p, &cb, &req), 0);
    ag_request_set_raw(req, 1);
    CHECK(run_until(e.base, &g.dones, 1, 10));
    yajl_val got = line_tree(g.think_line, strlen(g.think_line));
    REQUIRE(got);
    keys_of(yajl_tree_get(got, mp, yajl_t_object), got_keys, sizeof got_keys);
    CHECK_STR(got_keys, want_keys);
    const char *cp[] = {"message", "content", NULL};
    yajl_val content = yajl_tree_get(got, cp, yajl_t_string);
    CHECK(content && YAJL_GET_STRING(content)[0] == 0);
    yajl_tree_free(got);
    /* a whole answer keeps its thinking */
    ag_sync_out o;
    p.gen.no_stream = 1;
    CHECK_INT(ag_chat_sync(e.c, &p, NULL, NULL, &o), 0);
    char th[1024], tx[1024];
    expected_text("qwen3:4b", "think about it", 2, 0, th);
    expected_text("qwen3:4b", "think about it", 8, 2, tx);
    CHECK_STR(o.thinking, th);
    CHECK_STR(o.text, tx);
    ag_sync_out_free(&o);
    ag_generate_params gp = {.model = "qwen3:4b", .prompt = "think"};
    gp.gen.think = "true";
    gp.gen.no_stream = 1;
    CHECK_INT(ag_generate_sync(e.c, &gp, NULL, NULL, &o), 0);
    CHECK(o.thinking && *o.thinking);
    ag_sync_out_free(&o);
    /* an empty message list: the model loads, nothing is generated */
    ag_chat_params empty = {.model = "llama3.2", .messages = NULL, .n_messages = 0};
    CHECK_INT(ag_chat_sync(e.c, &empty, NULL, NULL, &o), 0);
    CHECK(o.result && o.result->done_reason && !strcmp(o.result->done_reason, "load"));
    CHECK(o.text == NULL || o.text[0] == 0);
    ag_sync_out_free(&o);
    /* chat on an embedding model: 400, as Ollama says */
    ag_chat_params emb = {.model = "nomic-embed-text", .messages = &m, .n_messages = 1};
    CHECK_INT(ag_chat_sync(e.c, &emb, NULL, NULL, &o), AG_EBADREQUEST);
    CHECK(o.result && o.result->error && strstr(o.result->error, "does not support chat"));
    ag_sync_out_free(&o);
    /* /api/ps: context_length, as Ollama lists it (the loaded model's) */
    ag_forward_params fp = {.method = "GET", .path = "/api/ps"};
    fwdcap fc;
    memset(&fc, 0, sizeof fc);
    ag_callbacks fcb = {fwdcap_chunk, fwdcap_done, &fc};
    CHECK_INT(ag_forward(e.c, &fp, &fcb, NULL), 0);
    CHECK(run_until(e.base, &fc.dones, 1, 10));
    CHECK(strstr(fc.body, "\"context_length\":") != NULL);
    /* a whole chat answer: the capture's fields, in the capture's order */
    size_t wl = 0;
    char *wfx = t_read_file(FIXTURES "/chat-nostream-gemma3.json", &wl);
    REQUIRE(wfx);
    yajl_val wwant = line_tree(wfx, wl);
    REQUIRE(wwant);
    ag_forward_params wp = {.method = "POST", .path = "/api/chat",
                            .body = "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"};
    wp.body_len = strlen(wp.body);
    fwdcap wc;
    memset(&wc, 0, sizeof wc);
    ag_callbacks wcb = {fwdcap_chunk, fwdcap_done, &wc};
    CHECK_INT(ag_forward(e.c, &wp, &wcb, NULL), 0);
    CHECK(run_until(e.base, &wc.dones, 1, 10));
    yajl_val wgot = line_tree(wc.body, strlen(wc.body));
    REQUIRE(wgot);
    char wk[400], gk[400];
    keys_of(wwant, wk, sizeof wk);
    keys_of(wgot, gk, sizeof gk);
    CHECK_STR(gk, wk);
    yajl_tree_free(wgot);
    yajl_tree_free(wwant);
    free(wfx);
    env_close(&e);
    yajl_tree_free(want);
    free(fx);
}

static void chat_tools(void) {
    env e;
    env_open(&e, NULL, NULL);
    rec x = {0};
    ag_message m[3] = {{"system", "be brief", NULL, NULL, 0, NULL, NULL},
                       {"user", "weather in Paris", NULL, NULL, 0, NULL, NULL}};
    ag_chat_params p = {.model = "llama3.2", .messages = m, .n_messages = 2};
    p.tools_json = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"d\","
                   "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
                   "\"days\":{\"type\":\"integer\"}},\"required\":[\"city\"]}}}]";
    ag_callbacks cb = cbs(&x);
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    CHECK_STR(x.tools, "get_weather{\"city\":\"Paris\",\"days\":42}");
    /* the tool's answer goes back; the model uses it */
    rec y = {0};
    m[2] = (ag_message){"assistant", "", NULL, NULL, 0,
                        "[{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]", NULL};
    ag_message m4[4] = {m[0], m[1], m[2], {"tool", "sunny, 21C", NULL, NULL, 0, NULL, "get_weather"}};
    p.messages = m4;
    p.n_messages = 4;
    cb = cbs(&y);
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    CHECK(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(y.status, 0);
    CHECK(strncmp(y.text, "Tool said: sunny, 21C. ", 23) == 0);
    CHECK_STR(y.tools, "");
    rec_free(&x);
    rec_free(&y);
    env_close(&e);
}

static void generate_modes(void) {
    env e;
    ag_sim_config cfg = {.tokens = 5};
    env_open(&e, &cfg, NULL);
    rec x = {0}, y = {0}, l = {0}, u = {0};
    ag_generate_params p = {.model = "llama3.2", .prompt = "once upon"};
    ag_callbacks cb = cbs(&x);
    CHECK_INT(ag_generate(e.c, &p, &cb, NULL), 0);
    p.gen.no_stream = 1;
    cb = cbs(&y);
    CHECK_INT(ag_generate(e.c, &p, &cb, NULL), 0);
    ag_generate_params lp = {.model = "llama3.2"};
    cb = cbs(&l);
    CHECK_INT(ag_generate(e.c, &lp, &cb, NULL), 0);
    lp.gen.keep_alive = "0";
    cb = cbs(&u);
    CHECK_INT(ag_generate(e.c, &lp, &cb, NULL), 0);
    int total = 0;
    x.counter = y.counter = l.counter = u.counter = &total;
    CHECK(run_until(e.base, &total, 4, 10));
    char want[1024];
    expected_text("llama3.2", "once upon", 5, 0, want);
    CHECK_STR(x.text, want);
    CHECK_STR(y.text, want);
    CHECK_INT(x.status, 0);
    CHECK_INT(y.status, 0);
    CHECK(x.res->n_context == 3 && x.res->context[2] == 3);
    CHECK_STR(l.res->done_reason, "load");
    CHECK_STR(u.res->done_reason, "unload");
    CHECK_INT(l.chunks, 0);
    rec_free(&x);
    rec_free(&y);
    rec_free(&l);
    rec_free(&u);
    env_close(&e);
}

static void embed(void) {
    env e;
    ag_sim_config cfg = {.dim = 64};
    env_open(&e, &cfg, NULL);
    const char *texts[] = {"the cat sat", "a cat sat down", "quarterly revenue grew"};
    ag_embed_params p = {.model = "nomic-embed-text", .inputs = texts, .n_inputs = 3, .truncate = -1};
    ag_sync_out out;
    CHECK_INT(ag_embed_sync(e.c, &p, &out), 0);
    REQUIRE(out.result);
    CHECK_INT(out.result->n_embeddings, 3);
    CHECK_INT(out.result->dim, 64);
    float want[64];
    for (int i = 0; i < 3; i++) {
        ag_sim_embed_text(texts[i], 64, want);
        t_checks++;
        for (int j = 0; j < 64; j++)
            if (fabsf(want[j] - out.result->embeddings[i * 64 + j]) > 1e-6f) {
                fprintf(stderr, "vector %d[%d]: %g vs %g\n", i, j, out.result->embeddings[i * 64 + j], want[j]);
                t_failures++;
                break;
            }
    }
    CHECK_INT(out.result->server.prompt_eval_count, 24);
    ag_sync_out_free(&out);
    /* legacy endpoint, and dimensions */
    p.legacy = 1;
    p.n_inputs = 1;
    CHECK_INT(ag_embed_sync(e.c, &p, &out), 0);
    CHECK(out.result && out.result->n_embeddings == 1 && out.result->dim == 64);
    ag_sync_out_free(&out);
    p.legacy = 0;
    p.dimensions = 16;
    CHECK_INT(ag_embed_sync(e.c, &p, &out), 0);
    CHECK(out.result && out.result->dim == 16);
    ag_sync_out_free(&out);
    /* legacy takes one input only */
    p.legacy = 1;
    p.n_inputs = 2;
    CHECK_INT(ag_embed_sync(e.c, &p, &out), AG_EINVAL);
    ag_sync_out_free(&out);
    env_close(&e);
}

static void admin(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_sync_out out;
    CHECK_INT(ag_admin_sync(e.c, AG_OP_VERSION, NULL, NULL, NULL, &out), 0);
    CHECK_STR(out.result->version, "0.12.6-sim");
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_TAGS, NULL, NULL, NULL, &out), 0);
    CHECK_INT(out.result->n_models, 3);
    CHECK_STR(out.result->models[0].name, "llama3.2:latest");
    CHECK_STR(out.result->models[2].family, "nomic-bert");
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_PS, NULL, NULL, NULL, &out), 0);
    CHECK_INT(out.result->n_models, 0); /* nothing loaded yet */
    ag_sync_out_free(&out);
    ag_model_params mp = {.model = "llama3.2"};
    CHECK_INT(ag_admin_sync(e.c, AG_OP_SHOW, &mp, NULL, NULL, &out), 0);
    REQUIRE(out.result->show);
    CHECK_INT(out.result->show->n_capabilities, 3);
    CHECK_STR(out.result->show->capabilities[1], "tools");
    CHECK_STR(out.result->show->parameter_size, "3.2B");
    ag_sync_out_free(&out);
    rec x = {0};
    mp.model = "tinyllama";
    CHECK_INT(ag_admin_sync(e.c, AG_OP_PULL, &mp, on_chunk, &x, &out), 0);
    CHECK(strstr(x.progress, "pulling manifest;") == x.progress);
    CHECK(strstr(x.progress, "success;") != NULL);
    ag_sync_out_free(&out);
    mp.destination = "tiny2";
    CHECK_INT(ag_admin_sync(e.c, AG_OP_COPY, &mp, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_TAGS, NULL, NULL, NULL, &out), 0);
    CHECK_INT(out.result->n_models, 5);
    ag_sync_out_free(&out);
    mp.model = "tiny2";
    CHECK_INT(ag_admin_sync(e.c, AG_OP_DELETE, &mp, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_DELETE, &mp, NULL, NULL, &out), AG_ENOTFOUND);
    CHECK(out.result && strstr(out.result->error, "not found"));
    CHECK_INT(out.result->http_status, 404);
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_PING, NULL, NULL, NULL, &out), 0);
    CHECK_INT(out.result->http_status, 200);
    ag_sync_out_free(&out);
    /* a chat loads the model: now /api/ps lists it */
    rec y = {0};
    chat(&e, &y, "x", 0, NULL);
    CHECK(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(ag_admin_sync(e.c, AG_OP_PS, NULL, NULL, NULL, &out), 0);
    CHECK_INT(out.result->n_models, 1);
    CHECK(out.result->models[0].size_vram > 0);
    ag_sync_out_free(&out);
    rec_free(&y);
    env_close(&e);
}

static void http_errors(void) {
    env e;
    env_open(&e, NULL, NULL);
    rec x = {0};
    ag_message m = {"user", "hi", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "no-such-model", .messages = &m, .n_messages = 1};
    ag_callbacks cb = cbs(&x);
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, AG_ENOTFOUND);
    CHECK_STR(x.res->error, "HTTP 404: model \"no-such-model\" not found, try pulling it first");
    rec_free(&x);
    /* bad arguments never reach the wire */
    p.model = NULL;
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), AG_EINVAL);
    p.model = "llama3.2";
    p.gen.options_json = "{not json";
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), AG_EINVAL);
    p.gen.options_json = "[1]";
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), AG_EINVAL);
    p.gen.options_json = NULL;
    p.tools_json = "[{\"a\":}]";
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), AG_EINVAL);
    run_for(e.base, 0.02);
    CHECK_INT(x.dones, 1); /* only the first call was accepted */
    env_close(&e);
}

static void raw_mode(void) {
    env e;
    ag_sim_config cfg = {.tokens = 3};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    int raws = 0;
    CHECK_INT(chat(&e, &x, "raw", 0, NULL), 0);
    ag_request_set_raw(x.req, 1);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    /* 3 content chunks + 4 raw lines */
    raws = x.chunks - 3;
    CHECK_INT(raws, 4);
    rec_free(&x);
    env_close(&e);
}

/* ---- scale and reuse ---- */
/* 1,000 requests at once, each on a connection of its own (the client's
 * default allows them): two descriptors each in this process (client and
 * node), so the open-file limit is raised to what that needs, or the case
 * says plainly that it cannot run (a limit of 1024 is common) */
static void concurrent_1000_at(unsigned max_connections) {
    env e;
    ag_sim_config cfg = {.tokens = 16};
    ag_client_options co;
    memset(&co, 0, sizeof co);
    co.max_connections = max_connections;
    env_open(&e, &cfg, &co);
    static rec xs[1000];
    int finished = 0;
    for (int i = 0; i < 1000; i++) {
        memset(&xs[i], 0, sizeof xs[i]);
        xs[i].counter = &finished;
        char prompt[32];
        snprintf(prompt, sizeof prompt, "q%d", i % 7);
        REQUIRE(chat(&e, &xs[i], prompt, 0, NULL) == 0);
    }
    ag_client_stats st;
    ag_client_get_stats(e.c, &st);
    CHECK_INT(st.in_flight, 1000);
    CHECK(run_until(e.base, &finished, 1000, 60));
    int ok = 0, dones = 0;
    long chunks = 0;
    for (int i = 0; i < 1000; i++) {
        ok += xs[i].status == 0;
        if (xs[i].status && ok + 1 >= i) /* the first failures, for whoever reads this */
            fprintf(stderr, "request %d: %s: %s\n", i, ag_err_name(xs[i].status),
                    xs[i].res && xs[i].res->error ? xs[i].res->error : "");
        dones += xs[i].dones;
        chunks += xs[i].chunks;
        if (i < 7) {
            char prompt[32], want[2048];
            snprintf(prompt, sizeof prompt, "q%d", i % 7);
            expected_text("llama3.2", prompt, 16, 0, want);
            CHECK_STR(xs[i].text, want);
        }
        rec_free(&xs[i]);
    }
    CHECK_INT(ok, 1000);
    CHECK_INT(dones, 1000); /* exactly one completion each */
    CHECK_INT(chunks, 16000);
    ag_client_get_stats(e.c, &st);
    CHECK_INT(st.in_flight, 0);
    CHECK_INT(st.requests_done, 1000);
    CHECK(st.connections_opened <= (max_connections ? max_connections : 1000));
    env_close(&e);
}

static void concurrent_1000(void) {
    struct rlimit rl;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    const rlim_t need = 2200; /* 1,000 connections, both ends, and the rest */
    if (rl.rlim_cur < need) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (up.rlim_cur < need || setrlimit(RLIMIT_NOFILE, &up) != 0) {
            fprintf(stderr, "concurrent_1000 needs %llu open files; the hard limit is %llu (ulimit -Hn)\n",
                    (unsigned long long)need, (unsigned long long)rl.rlim_max);
            REQUIRE(0);
        }
    }
    concurrent_1000_at(0);
    if (rl.rlim_cur < need) setrlimit(RLIMIT_NOFILE, &rl);
}

/* the same 1,000 at once under the common `ulimit -n 1024`: a client capped
 * at 256 connections queues the rest, and every request completes */
static void concurrent_1000_capped(void) {
    struct rlimit rl, low;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    low = rl;
    if (low.rlim_cur > 1024) low.rlim_cur = 1024;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    concurrent_1000_at(256);
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void keepalive_reuse(void) {
    env e;
    ag_sim_config cfg = {.tokens = 4};
    env_open(&e, &cfg, NULL);
    for (int i = 0; i < 50; i++) {
        rec x = {0};
        REQUIRE(chat(&e, &x, "again", i % 2, NULL) == 0);
        CHECK(run_until(e.base, &x.dones, 1, 10));
        CHECK_INT(x.status, 0);
        rec_free(&x);
    }
    ag_client_stats st;
    ag_client_get_stats(e.c, &st);
    CHECK_INT(st.connections_opened, 1);
    CHECK_INT(st.connections_reused, 49);
    CHECK_INT(st.idle_connections, 1);
    env_close(&e);
}

static void connection_cap_queue(void) {
    env e;
    ag_sim_config cfg = {.tokens = 3, .itl_ms = 1};
    ag_client_options co = {.max_connections = 4, .max_queue = 10};
    env_open(&e, &cfg, &co);
    rec xs[15];
    int finished = 0, accepted = 0, refused = 0;
    for (int i = 0; i < 15; i++) {
        memset(&xs[i], 0, sizeof xs[i]);
        xs[i].counter = &finished;
        int rc = chat(&e, &xs[i], "cap", 0, NULL);
        if (rc == 0) accepted++;
        else if (rc == AG_EQUEUEFULL) refused++;
    }
    CHECK_INT(accepted, 14);
    CHECK_INT(refused, 1);
    ag_client_stats st;
    ag_client_get_stats(e.c, &st);
    CHECK_INT(st.open_connections, 4);
    CHECK_INT(st.queued, 10);
    /* a queued request can be cancelled */
    ag_request_cancel(xs[13].req);
    CHECK_INT(xs[13].status, AG_ECANCELED);
    CHECK(run_until(e.base, &finished, 14, 20));
    for (int i = 0; i < 14; i++) {
        if (i != 13) CHECK_INT(xs[i].status, 0);
        CHECK_INT(xs[i].dones, 1);
        rec_free(&xs[i]);
    }
    ag_client_get_stats(e.c, &st);
    CHECK_INT(st.connections_opened, 4);
    env_close(&e);
}

/* ---- cancel and free, from inside and outside callbacks ---- */
static void cancel_in_chunk(void) {
    env e;
    ag_sim_config cfg = {.tokens = 50, .itl_ms = 1};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    x.cancel_at = 3;
    REQUIRE(chat(&e, &x, "c", 0, NULL) == 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, AG_ECANCELED);
    CHECK_INT(x.chunks, 3);
    /* the client is still good */
    rec y = {0};
    REQUIRE(chat(&e, &y, "c", 0, NULL) == 0);
    CHECK(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(y.status, 0);
    run_for(e.base, 0.05);
    ag_sim_stats ss;
    ag_sim_get_stats(e.sim, &ss);
    CHECK_INT(ss.disconnects, 1); /* the node saw the cancel as a disconnect */
    rec_free(&x);
    rec_free(&y);
    env_close(&e);
}

static void cancel_outside(void) {
    env e;
    ag_sim_config cfg = {.tokens = 50, .itl_ms = 5};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    REQUIRE(chat(&e, &x, "c", 0, NULL) == 0);
    run_for(e.base, 0.05);
    ag_request_cancel(x.req);
    CHECK_INT(x.dones, 1);
    CHECK_INT(x.status, AG_ECANCELED);
    run_for(e.base, 0.05);
    CHECK_INT(x.dones, 1);
    rec_free(&x);
    env_close(&e);
}

static void free_in_chunk(void) {
    env e;
    ag_sim_config cfg = {.tokens = 50, .itl_ms = 1};
    env_open(&e, &cfg, NULL);
    rec a = {0}, b = {0};
    int finished = 0;
    a.counter = b.counter = &finished;
    a.free_at = 2;
    a.free_client = e.c;
    REQUIRE(chat(&e, &a, "a", 0, NULL) == 0);
    REQUIRE(chat(&e, &b, "b", 0, NULL) == 0);
    CHECK(run_until(e.base, &finished, 2, 10));
    CHECK_INT(a.status, AG_ESHUTDOWN);
    CHECK_INT(b.status, AG_ESHUTDOWN);
    CHECK_INT(a.dones, 1);
    CHECK_INT(b.dones, 1);
    run_for(e.base, 0.05); /* the deferred teardown runs */
    rec_free(&a);
    rec_free(&b);
    e.c = NULL;
    env_close(&e);
}

static ag_client *free_me;
static void free_in_done_cb(ag_request *r, const ag_result *res, void *ud) {
    on_done(r, res, ud);
    if (free_me) {
        ag_client_free(free_me);
        free_me = NULL;
    }
}

static void free_in_done(void) {
    env e;
    env_open(&e, NULL, NULL);
    rec a = {0}, b = {0};
    int finished = 0;
    a.counter = b.counter = &finished;
    ag_message m = {"user", "x", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {on_chunk, free_in_done_cb, &a};
    free_me = e.c;
    REQUIRE(ag_chat(e.c, &p, &cb, NULL) == 0);
    p.model = "qwen3:4b";
    ag_sim_set_timing(e.sim, 0, 0);
    ag_callbacks cb2 = cbs(&b);
    ((ag_message *)p.messages)->content = "slow";
    REQUIRE(ag_chat(e.c, &p, &cb2, NULL) == 0);
    CHECK(run_until(e.base, &finished, 2, 10));
    CHECK_INT(a.dones + b.dones, 2);
    CHECK(a.status == 0 || b.status == AG_ESHUTDOWN || b.status == 0);
    run_for(e.base, 0.05);
    rec_free(&a);
    rec_free(&b);
    e.c = NULL;
    env_close(&e);
}

static void free_with_pending(void) {
    env e;
    ag_sim_config cfg = {.tokens = 50, .itl_ms = 2};
    env_open(&e, &cfg, NULL);
    rec xs[20];
    for (int i = 0; i < 20; i++) {
        memset(&xs[i], 0, sizeof xs[i]);
        REQUIRE(chat(&e, &xs[i], "p", 0, NULL) == 0);
    }
    run_for(e.base, 0.03);
    ag_client_free(e.c);
    e.c = NULL;
    for (int i = 0; i < 20; i++) {
        CHECK_INT(xs[i].dones, 1);
        CHECK_INT(xs[i].status, AG_ESHUTDOWN);
        rec_free(&xs[i]);
    }
    env_close(&e);
}

/* ---- backpressure ---- */
typedef struct pauser {
    rec r;
    int paused_chunks;
    int paused;
} pauser;
static void pause_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    pauser *p = ud;
    on_chunk(r, ch, &p->r);
    if (p->paused) p->paused_chunks++;
    if (p->r.chunks == 2) {
        ag_request_pause(r);
        p->paused = 1;
    }
}
static void pause_resume(void) {
    env e;
    ag_sim_config cfg = {.tokens = 40, .itl_ms = 2};
    env_open(&e, &cfg, NULL);
    pauser p;
    memset(&p, 0, sizeof p);
    ag_message m = {"user", "pause", NULL, NULL, 0, NULL, NULL};
    ag_chat_params cp = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {pause_chunk, on_done, &p.r};
    cb.ud = &p;
    /* on_done gets the pauser: its first member is the rec */
    REQUIRE(ag_chat(e.c, &cp, &cb, &p.r.req) == 0);
    int two = 0;
    while (p.r.chunks < 2 && two++ < 1000) event_base_loop(e.base, EVLOOP_ONCE);
    CHECK(p.paused);
    run_for(e.base, 0.3); /* the node writes all it has meanwhile */
    int during = p.paused_chunks;
    CHECK(during <= 1); /* at most what was decoded from the same read */
    CHECK_INT(p.r.dones, 0);
    p.paused = 0;
    ag_request_resume(p.r.req);
    CHECK(run_until(e.base, &p.r.dones, 1, 10));
    CHECK_INT(p.r.status, 0);
    CHECK_INT(p.r.chunks, 40);
    char want[4096];
    expected_text("llama3.2", "pause", 40, 0, want);
    CHECK_STR(p.r.text, want);
    rec_free(&p.r);
    env_close(&e);
}

/* ---- faults ---- */
static void fault_case(const char *fault, int after, int itl, const ag_client_options *co, int want,
                       const char *msg_part, int want_chunks) {
    env e;
    ag_sim_config cfg = {.tokens = 10, .itl_ms = itl};
    env_open(&e, &cfg, co);
    ag_sim_set_fault(e.sim, fault, after, 1);
    rec x = {0};
    REQUIRE(chat(&e, &x, "f", 0, NULL) == 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    if (x.status != want) fprintf(stderr, "fault %s: got %s (%s)\n", fault, ag_err_name(x.status), x.res ? x.res->error : "");
    CHECK_INT(x.status, want);
    if (msg_part && !(x.res && x.res->error && strstr(x.res->error, msg_part)))
        fprintf(stderr, "fault %s: message \"%s\"\n", fault, x.res && x.res->error ? x.res->error : "(none)");
    if (msg_part) CHECK(x.res && x.res->error && strstr(x.res->error, msg_part));
    if (want_chunks >= 0) CHECK_INT(x.chunks, want_chunks);
    run_for(e.base, 0.05);
    CHECK_INT(x.dones, 1);
    /* the client is fine afterwards */
    ag_sim_set_fault(e.sim, NULL, 0, 0);
    rec y = {0};
    REQUIRE(chat(&e, &y, "f", 0, NULL) == 0);
    CHECK(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(y.status, 0);
    rec_free(&x);
    rec_free(&y);
    env_close(&e);
}

static void fault_reset_mid(void) { fault_case("reset", 3, 0, NULL, AG_ELOST, "after 3 chunks", 3); }
static void fault_reset_before(void) { fault_case("reset", 0, 0, NULL, AG_ECONNRESET, NULL, 0); }
static void fault_error_line(void) {
    fault_case("error-line", 2, 0, NULL, AG_ESERVER, "simulated failure: model runner crashed", 2);
}
static void fault_malformed(void) { fault_case("malformed", 2, 0, NULL, AG_EJSON, "malformed JSON", 3); }
static void fault_http500(void) {
    fault_case("http500", 0, 0, NULL, AG_EHTTP, "HTTP 500: llama runner process has terminated", 0);
}
static void fault_http503(void) { fault_case("http503", 0, 0, NULL, AG_EBUSY, "server busy", 0); }
static void fault_truncate(void) { fault_case("truncate", 4, 0, NULL, AG_ETRUNCATED, "without \"done\"", 4); }
static void fault_close_before_final(void) {
    fault_case("close-before-final", 10, 0, NULL, AG_ELOST, "10 chunks", 10);
}
static void fault_close_after_final(void) { fault_case("close-after-final", 10, 0, NULL, 0, NULL, 10); }
static void fault_stall_idle(void) {
    ag_client_options co = {.idle_timeout = 0.2};
    fault_case("stall", 3, 0, &co, AG_EIDLE, "after 3 chunks", 3);
}
static void fault_silent_idle(void) {
    ag_client_options co = {.idle_timeout = 0.2};
    fault_case("silent", 0, 0, &co, AG_EIDLE, "no bytes", 0);
}
/* keep-alive bytes are not output: a node that sends blank lines (or, in
 * the OpenAI dialect, SSE comments) every 100 ms but no token times out like
 * a silent one, before its first token and after some */
static void fault_keepalive_idle(void) {
    for (int api = 0; api < 2; api++) {
        ag_client_options co = {.idle_timeout = 0.35, .api = api};
        fault_case("keepalive", 0, 0, &co, AG_EIDLE, "no output within 0.35 s of sending (first-byte timeout", 0);
        fault_case("keepalive", 4, 0, &co, AG_EIDLE, "no output for 0.35 s (idle timeout; after 4 chunks", 4);
        fault_case("keepalive", 4, 20, &co, AG_EIDLE, "no output for 0.35 s (idle timeout; after 4 chunks", 4);
    }
    /* separate first-byte and idle timeouts: each counts output */
    ag_client_options co = {.first_byte_timeout = 0.3, .idle_timeout = 5};
    fault_case("keepalive", 0, 0, &co, AG_EIDLE, "no output within 0.3 s", 0);
}

/* without an idle timeout a slow server is waited for */
static void slow_is_patience(void) {
    env e;
    ag_sim_config cfg = {.tokens = 3, .itl_ms = 300};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    REQUIRE(chat(&e, &x, "slow", 0, NULL) == 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    CHECK(x.res->timing.itl_mean_ns > 250000000);
    rec_free(&x);
    env_close(&e);
}

static void refused(void) {
    struct event_base *base = ag_sim_base_new();
    /* a port nobody listens on: bind one, close it */
    ag_sim *s = ag_sim_new(base, "127.0.0.1", 0, NULL);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", ag_sim_port(s));
    ag_sim_free(s);
    ag_client_options co = {.host = host};
    ag_client *c = ag_client_new(base, &co, NULL);
    ag_sync_out out;
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), AG_ECONNREFUSED);
    CHECK(out.result && strstr(out.result->error, "connection refused"));
    ag_sync_out_free(&out);
    ag_client_free(c);
    event_base_free(base);
}

/* a nameserver on loopback that answers every query with NXDOMAIN */
static void nx_cb(evutil_socket_t fd, short w, void *arg) {
    (void)w;
    (void)arg;
    unsigned char buf[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n < 12) return;
    buf[2] |= 0x80;                        /* QR: a response */
    buf[3] = (unsigned char)((buf[3] & 0xf0) | 3); /* RCODE 3: no such name */
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

static void dns_failure(void) {
    struct event_base *base = ag_sim_base_new();
    evutil_socket_t u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(u, (struct sockaddr *)&sa, sizeof sa) == 0);
    socklen_t sl = sizeof sa;
    getsockname(u, (struct sockaddr *)&sa, &sl);
    struct event *uev = event_new(base, u, EV_READ | EV_PERSIST, nx_cb, NULL);
    event_add(uev, NULL);
    struct evdns_base *dns = evdns_base_new(base, 0);
    char ns[64];
    snprintf(ns, sizeof ns, "127.0.0.1:%d", ntohs(sa.sin_port));
    REQUIRE(evdns_base_nameserver_ip_add(dns, ns) == 0);
    ag_client_options co = {.host = "no-such-host.invalid:11434", .dns = dns};
    ag_client *c = ag_client_new(base, &co, NULL);
    ag_sync_out out;
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), AG_EDNS);
    CHECK(out.result && strstr(out.result->error, "no-such-host.invalid"));
    ag_sync_out_free(&out);
    ag_client_free(c);
    evdns_base_free(dns, 0);
    event_free(uev);
    evutil_closesocket(u);
    event_base_free(base);
}

static void name_localhost(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim *s = ag_sim_new(base, "127.0.0.1", 0, NULL);
    struct evdns_base *dns = evdns_base_new(base, 0);
    evdns_base_load_hosts(dns, NULL); /* /etc/hosts: localhost, no network */
    char host[64];
    snprintf(host, sizeof host, "http://localhost:%d/", ag_sim_port(s));
    ag_client_options co = {.host = host, .dns = dns};
    ag_client *c = ag_client_new(base, &co, NULL);
    ag_sync_out out;
    int rc = ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out);
    if (rc == AG_ECONNREFUSED) fprintf(stderr, "localhost resolved to ::1 first; sim is on 127.0.0.1\n");
    CHECK(rc == 0 || rc == AG_ECONNREFUSED);
    ag_sync_out_free(&out);
    ag_client_free(c);
    evdns_base_free(dns, 0);
    ag_sim_free(s);
    event_base_free(base);
}

static void ipv6_loopback(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim *s = ag_sim_new(base, "::1", 0, NULL);
    if (!s) {
        event_base_free(base);
        T_SKIP("no IPv6 loopback here");
    }
    char host[64];
    snprintf(host, sizeof host, "[::1]:%d", ag_sim_port(s));
    ag_client_options co = {.host = host};
    ag_client *c = ag_client_new(base, &co, NULL);
    ag_sync_out out;
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), 0);
    CHECK_STR(out.result->node, host);
    ag_sync_out_free(&out);
    ag_client_free(c);
    ag_sim_free(s);
    event_base_free(base);
}

static void connect_timeout(void) {
    /* a listening socket whose backlog is full never completes new connects...
     * portable enough: 10.255.255.1 is not loopback, so instead use a private
     * loop trick: a listener with backlog 0 we never accept from, filled first */
    struct event_base *base = ag_sim_base_new();
    evutil_socket_t l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(l, (struct sockaddr *)&sa, sizeof sa) == 0);
    socklen_t sl = sizeof sa;
    getsockname(l, (struct sockaddr *)&sa, &sl);
    listen(l, 0);
    /* fill the accept queue so further SYNs are dropped */
    evutil_socket_t fill[8];
    for (int i = 0; i < 8; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM, 0);
        evutil_make_socket_nonblocking(fill[i]);
        connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", ntohs(sa.sin_port));
    ag_client_options co = {.host = host, .connect_timeout = 0.3, .idle_timeout = 0.3};
    ag_client *c = ag_client_new(base, &co, NULL);
    ag_sync_out out;
    int rc = ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out);
    /* either the SYN is dropped (connect timeout) or the kernel completes the
     * handshake anyway and nobody answers (idle timeout): never a hang */
    CHECK(rc == AG_ETIMEDOUT || rc == AG_EIDLE);
    ag_sync_out_free(&out);
    ag_client_free(c);
    for (int i = 0; i < 8; i++) evutil_closesocket(fill[i]);
    evutil_closesocket(l);
    event_base_free(base);
}

static void caps(void) {
    env e;
    ag_sim_config cfg = {.dim = 768};
    ag_client_options co = {.max_body = 1000};
    env_open(&e, &cfg, &co);
    const char *t[] = {"a b c"};
    ag_embed_params p = {.model = "nomic-embed-text", .inputs = t, .n_inputs = 1, .truncate = -1};
    ag_sync_out out;
    CHECK_INT(ag_embed_sync(e.c, &p, &out), AG_ETOOBIG);
    ag_sync_out_free(&out);
    env_close(&e);
}

/* the allocator hook sees every allocation and every free */
static long live_allocs;
static void *c_malloc(void *ctx, size_t n) { (void)ctx; live_allocs++; return malloc(n); }
static void *c_realloc(void *ctx, void *p, size_t n) { (void)ctx; if (!p) live_allocs++; return realloc(p, n); }
static void c_free(void *ctx, void *p) { (void)ctx; if (p) live_allocs--; free(p); }
static void allocator(void) {
    ag_alloc_funcs a = {c_malloc, c_realloc, c_free, NULL};
    env e;
    ag_client_options co = {.alloc = &a};
    env_open(&e, NULL, &co);
    rec x = {0};
    REQUIRE(chat(&e, &x, "alloc", 0, NULL) == 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    CHECK(live_allocs > 0);
    rec_free(&x);
    env_close(&e);
    CHECK_INT(live_allocs, 0);
}

/* ---- per-request options ---- */
static int chat_opts(env *e, rec *x, const char *prompt, const ag_request_options *ro) {
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = "llama3.2";
    p.messages = &m;
    p.n_messages = 1;
    p.request = ro;
    ag_callbacks cb = cbs(x);
    return ag_chat(e->c, &p, &cb, &x->req);
}

/* a deadline ends a stream that runs too long, with AG_EDEADLINE after the
 * chunks that came in time; the node sees the request cancelled */
static void request_deadline(void) {
    env e;
    ag_sim_config cfg = {.tokens = 40, .itl_ms = 20};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_request_options ro = {.deadline = 0.25};
    CHECK_INT(chat_opts(&e, &x, "slow", &ro), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, AG_EDEADLINE);
    CHECK(x.chunks > 0 && x.chunks < 40);
    CHECK(x.res && x.res->error && strstr(x.res->error, "deadline passed"));
    run_for(e.base, 0.1);
    ag_sim_stats ss;
    ag_sim_get_stats(e.sim, &ss);
    CHECK_INT((int)ss.disconnects, 1);
    rec_free(&x);
    /* the same request without options finishes: the client's settings hold */
    rec y = {0};
    CHECK_INT(chat_opts(&e, &y, "slow", NULL), 0);
    CHECK(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(y.status, 0);
    CHECK_INT(y.chunks, 40);
    rec_free(&y);
    env_close(&e);
}

/* the first-token deadline: nothing before it ends the request; output in
 * time disarms it, however long the rest takes */
static void request_first_token_deadline(void) {
    env e;
    ag_sim_config cfg = {.tokens = 5, .ttft_ms = 400};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_request_options ro = {.first_token_deadline = 0.1, .deadline = 5};
    CHECK_INT(chat_opts(&e, &x, "late", &ro), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, AG_EDEADLINE);
    CHECK_INT(x.chunks, 0);
    CHECK(x.res && x.res->error && strstr(x.res->error, "first-token deadline"));
    rec_free(&x);
    ag_sim_set_timing(e.sim, 20, 100);
    rec y = {0};
    ag_request_options ok = {.first_token_deadline = 0.3};
    CHECK_INT(chat_opts(&e, &y, "in time", &ok), 0);
    CHECK(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(y.status, 0); /* 5 tokens 100 ms apart: past 0.3 s, and fine */
    CHECK_INT(y.chunks, 5);
    rec_free(&y);
    env_close(&e);
}

/* a request's own first-byte timeout, on a client whose default is 300 s */
static void request_first_byte_timeout(void) {
    env e;
    ag_sim_config cfg = {.tokens = 5, .fault = "silent"};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_request_options ro = {.first_byte_timeout = 0.2};
    CHECK_INT(chat_opts(&e, &x, "anyone?", &ro), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, AG_EIDLE);
    CHECK(x.res && x.res->error && strstr(x.res->error, "0.2 s"));
    rec_free(&x);
    env_close(&e);
}

/* extra headers that could break the framing are refused at the call */
static void request_headers_checked(void) {
    env e;
    env_open(&e, NULL, NULL);
    const char *bad[] = {"X-A: 1\r\nX-B: 2", "no colon", ": empty name", "X A: space in the name",
                         "Host: elsewhere", "content-length: 5", "X-A: 1\n\nX-B: 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec x = {0};
        ag_request_options ro = {.headers = bad[i]};
        t_checks++;
        if (chat_opts(&e, &x, "x", &ro) != AG_EINVAL) {
            fprintf(stderr, "headers accepted: %s\n", bad[i]);
            t_failures++;
        }
    }
    rec x = {0};
    ag_request_options ro = {.headers = "X-Request-Id: abc-123\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"};
    CHECK_INT(chat_opts(&e, &x, "traced", &ro), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    rec_free(&x);
    env_close(&e);
}

static int hl_attempts, hl_finishes, hl_res_attempts;
static void hl_attempt(const ag_request *r, const char *node, int n, void *ud) {
    (void)r;
    (void)ud;
    hl_attempts += n == 1 && node && strstr(node, "127.0.0.1:");
}
static void hl_finished(const ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    (void)ud;
    hl_finishes++;
    hl_res_attempts = res->attempts;
}
/* a local client's hooks: one attempt, one finish, res->attempts 1 */
static void hooks_local(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_hooks hk = {NULL, NULL, hl_attempt, hl_finished, NULL};
    ag_client_set_hooks(e.c, &hk);
    rec x = {0};
    CHECK_INT(chat(&e, &x, "hooked", 0, NULL), 0);
    CHECK(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    CHECK_INT(hl_attempts, 1);
    CHECK_INT(hl_finishes, 1);
    CHECK_INT(hl_res_attempts, 1);
    CHECK(x.res && x.res->attempts == 1);
    rec_free(&x);
    env_close(&e);
}

/* AG_CHUNK_READ_END: after the chunks of each read, never two in a row, none
 * without asking; a forwarder's BODY chunks get it too; a cancel from it ends
 * the request cleanly */
typedef struct rend {
    int content, ends, double_ends, last_was_end, body, done, status, cancel_at;
    ag_request *req;
} rend;
static void re_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    rend *x = ud;
    if (c->kind == AG_CHUNK_READ_END) {
        x->ends++;
        if (x->last_was_end) x->double_ends++;
        x->last_was_end = 1;
        if (x->cancel_at && x->ends == x->cancel_at) ag_request_cancel(r);
        return;
    }
    x->last_was_end = 0;
    if (c->kind == AG_CHUNK_CONTENT) x->content++;
    if (c->kind == AG_CHUNK_BODY) x->body++;
}
static void re_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    rend *x = ud;
    x->done++;
    x->status = res->status;
}
static void read_end_chunks(void) {
    env e;
    ag_sim_config cfg = {.tokens = 30, .itl_ms = 5};
    env_open(&e, &cfg, NULL);
    ag_message m = {"user", "reads", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_request_options ro = {.read_end = 1};
    rend a = {0}, b = {0}, f = {0}, z = {0};
    ag_callbacks cb = {re_chunk, re_done, &a};
    p.request = &ro;
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0); /* a token every 5 ms: about a read each */
    CHECK(run_until(e.base, &a.done, 1, 10));
    CHECK_INT(a.status, 0);
    CHECK_INT(a.content, 30);
    CHECK(a.ends >= 2 && a.ends <= 31);
    CHECK_INT(a.double_ends, 0);
    p.request = NULL; /* not asked: none */
    cb.ud = &z;
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    CHECK(run_until(e.base, &z.done, 1, 10));
    CHECK_INT(z.ends, 0);
    /* forwarded bytes */
    const char *body = "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"fwd\"}]}";
    ag_forward_params fp = {"POST", "/api/chat", body, strlen(body), "llama3.2", NULL, 1, &ro};
    cb.ud = &f;
    CHECK_INT(ag_forward(e.c, &fp, &cb, NULL), 0);
    CHECK(run_until(e.base, &f.done, 1, 10));
    CHECK_INT(f.status, 0);
    CHECK(f.body > 0 && f.ends >= 1 && f.double_ends == 0);
    /* cancelled from the signal itself */
    b.cancel_at = 2;
    cb.ud = &b;
    p.request = &ro;
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    CHECK(run_until(e.base, &b.done, 1, 10));
    CHECK_INT(b.done, 1);
    CHECK_INT(b.status, AG_ECANCELED);
    run_for(e.base, 0.05);
    env_close(&e);
}

/* freed from its own done callback: the teardown finishes a loop turn later,
 * and the notification says when (then freeing the loop loses nothing) */
static int nf_freed;
static ag_client *nf_client;
static void nf_on_freed(void *ud) {
    (void)ud;
    nf_freed++;
}
static void nf_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    (void)res;
    ag_client_free_notify(nf_client, nf_on_freed, NULL);
    event_base_loopbreak(ud);
}
static void free_notify(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim *sim = ag_sim_new(base, "127.0.0.1", 0, NULL);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", ag_sim_port(sim));
    ag_client_options o = {.host = host};
    nf_client = ag_client_new(base, &o, NULL);
    REQUIRE(nf_client);
    ag_message m = {"user", "bye", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {NULL, nf_done, base};
    nf_freed = 0;
    CHECK_INT(ag_chat(nf_client, &p, &cb, NULL), 0);
    event_base_dispatch(base);
    CHECK_INT(nf_freed, 0); /* inside the callback: not yet */
    for (int i = 0; i < 100 && !nf_freed; i++) event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    CHECK_INT(nf_freed, 1);
    /* outside any callback: at once */
    ag_client *c2 = ag_client_new(base, &o, NULL);
    ag_client_free_notify(c2, nf_on_freed, NULL);
    CHECK_INT(nf_freed, 2);
    ag_sim_free(sim);
    event_base_free(base); /* valgrind: nothing lost */
}

/* ---- retry with backoff (ag_request_options.retries) ---- */
static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t sim_requests(ag_sim *s) {
    ag_sim_stats st;
    ag_sim_get_stats(s, &st);
    return st.requests;
}

/* every attempt fails: retries + 1 attempts, the waits growing by the factor */
static void retry_backoff_gives_up(void) {
    env e;
    ag_sim_config cfg = {.tokens = 4, .fault = "http503"};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_request_options ro = {.retries = 3, .retry_delay = 0.04, .retry_factor = 2};
    double t0 = mono_s();
    CHECK_INT(chat_opts(&e, &x, "again", &ro), 0);
    REQUIRE(run_until(e.base, &x.dones, 1, 10));
    double took = mono_s() - t0;
    CHECK_INT(x.status, AG_EBUSY);
    REQUIRE(x.res);
    CHECK_INT(x.res->attempts, 4);
    CHECK_INT(sim_requests(e.sim), 4);
    /* waited 0.04 + 0.08 + 0.16 s at least (timers never fire early) */
    CHECK(took >= 0.28);
    rec_free(&x);
    env_close(&e);
}

static void heal(evutil_socket_t fd, short w, void *arg) {
    (void)fd, (void)w;
    ag_sim_set_fault(arg, NULL, 0, 0);
}

/* the node heals during the wait: the next attempt succeeds, the caller sees
 * one whole answer */
static void retry_backoff_recovers(void) {
    env e;
    ag_sim_config cfg = {.tokens = 6, .fault = "reset"};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_request_options ro = {.retries = 2, .retry_delay = 0.2};
    struct timeval tv = {0, 50000};
    event_base_once(e.base, -1, EV_TIMEOUT, heal, e.sim, &tv);
    CHECK_INT(chat_opts(&e, &x, "heal", &ro), 0);
    REQUIRE(run_until(e.base, &x.dones, 1, 10));
    CHECK_INT(x.status, 0);
    REQUIRE(x.res);
    CHECK_INT(x.res->attempts, 2);
    CHECK_INT(x.res->server.eval_count, 6);
    char want[4096];
    expected_text("llama3.2", "heal", 6, 0, want);
    CHECK_INT(x.tlen, strlen(want));
    CHECK(memcmp(x.text, want, x.tlen) == 0);
    rec_free(&x);
    /* a 4xx is the request's own fault: never retried */
    rec y = {0};
    ag_message m = {"user", "x", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "no-such-model", .messages = &m, .n_messages = 1, .request = &ro};
    ag_callbacks cb = cbs(&y);
    CHECK_INT(ag_chat(e.c, &p, &cb, NULL), 0);
    REQUIRE(run_until(e.base, &y.dones, 1, 10));
    CHECK_INT(y.status, AG_ENOTFOUND);
    CHECK_INT(y.res ? y.res->attempts : 0, 1);
    rec_free(&y);
    env_close(&e);
}

static void cancel_it(evutil_socket_t fd, short w, void *arg) {
    (void)fd, (void)w;
    ag_request_cancel(arg);
}

/* cancelled while it waits: ECANCELED at once, nothing more sent; a client
 * freed while one waits completes it with ESHUTDOWN */
static void retry_backoff_cancel(void) {
    env e;
    ag_sim_config cfg = {.tokens = 4, .fault = "http500"};
    env_open(&e, &cfg, NULL);
    rec x = {0};
    ag_request_options ro = {.retries = 5, .retry_delay = 0.3};
    CHECK_INT(chat_opts(&e, &x, "wait", &ro), 0);
    struct timeval tv = {0, 100000};
    event_base_once(e.base, -1, EV_TIMEOUT, cancel_it, x.req, &tv);
    REQUIRE(run_until(e.base, &x.dones, 1, 5));
    CHECK_INT(x.status, AG_ECANCELED);
    run_for(e.base, 0.4);
    CHECK_INT(sim_requests(e.sim), 1);
    rec_free(&x);
    rec y = {0};
    CHECK_INT(chat_opts(&e, &y, "wait", &ro), 0);
    run_for(e.base, 0.1);
    CHECK_INT(y.dones, 0);
    ag_client_free(e.c);
    CHECK_INT(y.dones, 1);
    CHECK_INT(y.status, AG_ESHUTDOWN);
    rec_free(&y);
    e.c = ag_client_new(e.base, NULL, NULL);
    env_close(&e);
}

T_MAIN(T(retry_backoff_gives_up), T(retry_backoff_recovers), T(retry_backoff_cancel),
       T(chat_stream), T(chat_nostream), T(chat_thinking), T(sim_wire_like_ollama), T(chat_tools), T(generate_modes),
       T(embed), T(admin), T(http_errors), T(raw_mode), T(concurrent_1000), T(concurrent_1000_capped), T(keepalive_reuse),
       T(connection_cap_queue), T(cancel_in_chunk), T(cancel_outside), T(free_in_chunk),
       T(free_in_done), T(free_with_pending), T(pause_resume), T(fault_reset_mid),
       T(fault_reset_before), T(fault_error_line), T(fault_malformed), T(fault_http500),
       T(fault_http503), T(fault_truncate), T(fault_close_before_final),
       T(fault_close_after_final), T(fault_stall_idle), T(fault_silent_idle), T(fault_keepalive_idle),
       T(slow_is_patience), T(refused), T(dns_failure), T(name_localhost), T(ipv6_loopback),
       T(connect_timeout), T(caps), T(allocator),
       T(request_deadline), T(request_first_token_deadline), T(request_first_byte_timeout),
       T(request_headers_checked), T(hooks_local), T(read_end_chunks),
       T(free_notify))
