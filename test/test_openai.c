/* The OpenAI-compatible dialect end to end against the simulated node in
 * OpenAI mode: every call, tool calls streamed as fragments, thinking,
 * faults, a mixed pool serving one batch, and the agents unchanged. */
#include "support.h"
#include <math.h>

typedef struct got {
    char text[4096], think[1024], tools[512];
    int dones, status;
    ag_result *res;
} got;
static void g_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    (void)r;
    got *g = ud;
    if (c->kind == AG_CHUNK_CONTENT) strncat(g->text, c->text, c->len);
    if (c->kind == AG_CHUNK_THINKING) strncat(g->think, c->text, c->len);
    if (c->kind == AG_CHUNK_TOOL_CALL) {
        strncat(g->tools, c->name, c->name_len);
        strncat(g->tools, c->arguments_json, c->arguments_len);
    }
}
static void g_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    got *g = ud;
    g->dones++;
    g->status = res->status;
    g->res = ag_result_dup(res);
}

static void oai_env(env *e, int tokens) {
    memset(e, 0, sizeof *e);
    e->base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = tokens, .api = 1, .dim = 32};
    e->sim = ag_sim_new(e->base, "127.0.0.1", 0, &cfg);
    REQUIRE(e->sim);
    snprintf(e->host, sizeof e->host, "openai+http://127.0.0.1:%d", ag_sim_port(e->sim));
    ag_client_options co = {.host = e->host};
    e->c = ag_client_new(e->base, &co, NULL);
    REQUIRE(e->c);
}

static void want_text(const char *model, const char *prompt, int from, int to, char *out) {
    out[0] = 0;
    for (int i = from; i < to; i++) strcat(out, ag_sim_token(model, prompt, i));
}

static int chat(env *e, got *g, const char *prompt, int no_stream, const char *tools, const char *think) {
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1, .tools_json = tools};
    p.gen.no_stream = no_stream;
    p.gen.think = think;
    p.gen.options_json = "{\"temperature\":0.2,\"num_predict\":12,\"num_ctx\":4096}";
    ag_callbacks cb = {g_chunk, g_done, g};
    int rc = ag_chat(e->c, &p, &cb, NULL);
    if (rc) return rc;
    return run_until(e->base, &g->dones, 1, 10) ? 0 : -999;
}

static void chat_stream(void) {
    env e;
    oai_env(&e, 20);
    got g = {0};
    CHECK_INT(chat(&e, &g, "why is the sky blue?", 0, NULL, NULL), 0);
    CHECK_INT(g.status, 0);
    char want[2048];
    want_text("llama3.2", "why is the sky blue?", 0, 12, want); /* max_tokens 12 */
    CHECK_STR(g.text, want);
    CHECK_INT(g.res->server.eval_count, 12);
    CHECK_STR(g.res->done_reason, "length");
    CHECK_INT(g.res->timing.chunks, 12);
    const char *body = ag_sim_last_body(e.sim, "/v1/chat/completions");
    CHECK_STR(body, "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"why is the sky blue?\"}],"
                    "\"temperature\":0.2,\"max_tokens\":12,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    ag_result_free(g.res);
    got w = {0};
    CHECK_INT(chat(&e, &w, "why is the sky blue?", 1, NULL, NULL), 0);
    CHECK_INT(w.status, 0);
    CHECK_STR(w.text, want);
    CHECK_INT(w.res->server.prompt_eval_count, 6);
    ag_result_free(w.res);
    env_close(&e);
}

static void thinking_and_tools(void) {
    env e;
    oai_env(&e, 16);
    got g = {0};
    CHECK_INT(chat(&e, &g, "think", 0, NULL, "high"), 0);
    char think[512];
    want_text("llama3.2", "think", 0, 3, think); /* a quarter of 12 */
    CHECK_STR(g.think, think);
    CHECK(strstr(ag_sim_last_body(e.sim, "/v1/chat/completions"), "\"reasoning_effort\":\"high\"") != NULL);
    ag_result_free(g.res);
    got t = {0};
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
                        "\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}}}}}]";
    CHECK_INT(chat(&e, &t, "weather in Lima", 0, tools, NULL), 0);
    CHECK_STR(t.tools, "get_weather{\"city\":\"Lima\",\"days\":42}"); /* two fragments, one call */
    CHECK_STR(t.res->done_reason, "tool_calls");
    ag_result_free(t.res);
    got w = {0};
    CHECK_INT(chat(&e, &w, "weather in Lima", 1, tools, NULL), 0);
    CHECK_STR(w.tools, "get_weather{\"city\":\"Lima\",\"days\":42}");
    ag_result_free(w.res);
    env_close(&e);
}

static void completions_embed_models(void) {
    env e;
    oai_env(&e, 6);
    ag_generate_params gp = {.model = "llama3.2", .prompt = "once upon"};
    ag_sync_out out;
    CHECK_INT(ag_generate_sync(e.c, &gp, NULL, NULL, &out), 0);
    char want[512];
    want_text("llama3.2", "once upon", 0, 6, want);
    CHECK_STR(out.text, want);
    ag_sync_out_free(&out);
    const char *t[] = {"the cat", "a dog"};
    ag_embed_params ep = {.model = "nomic-embed-text", .inputs = t, .n_inputs = 2, .truncate = -1};
    CHECK_INT(ag_embed_sync(e.c, &ep, &out), 0);
    CHECK_INT(out.result->n_embeddings, 2);
    CHECK_INT(out.result->dim, 32);
    float v[32];
    ag_sim_embed_text("a dog", 32, v);
    CHECK(fabsf(v[5] - out.result->embeddings[32 + 5]) < 1e-6f);
    CHECK_STR(ag_sim_last_body(e.sim, "/v1/embeddings"), "{\"model\":\"nomic-embed-text\",\"input\":[\"the cat\",\"a dog\"]}");
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_TAGS, NULL, NULL, NULL, &out), 0);
    CHECK_INT(out.result->n_models, 3);
    CHECK_STR(out.result->models[0].name, "llama3.2:latest");
    ag_sync_out_free(&out);
    CHECK_INT(ag_admin_sync(e.c, AG_OP_PING, NULL, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    ag_model_params mp = {.model = "llama3.2"};
    CHECK_INT(ag_admin(e.c, AG_OP_SHOW, &mp, NULL, NULL), AG_EINVAL); /* Ollama's only */
    CHECK_INT(ag_admin(e.c, AG_OP_PULL, &mp, NULL, NULL), AG_EINVAL);
    env_close(&e);
}

/* Images reach an OpenAI-compatible server as its API takes them: content
 * parts with data: URLs typed from the image's first bytes (a URL as it is);
 * a generate with images goes as a chat of one user message, and its answer
 * reads as a generate's */
static void images(void) {
    env e;
    oai_env(&e, 4);
    const char *imgs[] = {"iVBORw0KGgoAAAANSUhEUg==", "/9j/4AAQSkZJRg==", "https://example.com/cat.gif"};
    ag_message m = {"user", "what is this?", NULL, imgs, 3, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_sync_out out;
    CHECK_INT(ag_chat_sync(e.c, &p, NULL, NULL, &out), 0);
    char want[512];
    want_text("llama3.2", "what is this?", 0, 4, want);
    CHECK_STR(out.text, want);
    ag_sync_out_free(&out);
    const char *body = ag_sim_last_body(e.sim, "/v1/chat/completions");
    CHECK(body && strstr(body, "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what is this?\"},"
                              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==\"}},"
                              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/4AAQSkZJRg==\"}},"
                              "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.gif\"}}]}]"));
    /* without images: a plain string, as before */
    ag_message t = {"user", "plain", NULL, NULL, 0, NULL, NULL};
    p.messages = &t;
    CHECK_INT(ag_chat_sync(e.c, &p, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    body = ag_sim_last_body(e.sim, "/v1/chat/completions");
    CHECK(body && strstr(body, "\"messages\":[{\"role\":\"user\",\"content\":\"plain\"}]"));
    /* generate with an image and a system prompt */
    const char *one[] = {"R0lGODlhAQABAA=="};
    ag_generate_params gp = {.model = "llama3.2", .prompt = "describe", .system = "be brief", .images = one, .n_images = 1};
    CHECK_INT(ag_generate_sync(e.c, &gp, NULL, NULL, &out), 0);
    want_text("llama3.2", "describe", 0, 4, want);
    CHECK_STR(out.text, want);
    ag_sync_out_free(&out);
    body = ag_sim_last_body(e.sim, "/v1/chat/completions");
    CHECK(body && strstr(body, "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\","
                              "\"content\":[{\"type\":\"text\",\"text\":\"describe\"},{\"type\":\"image_url\",\"image_url\":"
                              "{\"url\":\"data:image/gif;base64,R0lGODlhAQABAA==\"}}]}]"));
    /* a NULL image is the caller's mistake */
    const char *bad[] = {NULL};
    ag_message b = {"user", "x", NULL, bad, 1, NULL, NULL};
    p.messages = &b;
    CHECK_INT(ag_chat(e.c, &p, NULL, NULL), AG_EINVAL);
    env_close(&e);
}

static void fault(const char *kind, int after, int want, const char *msg) {
    env e;
    oai_env(&e, 10);
    ag_sim_set_fault(e.sim, kind, after, 1);
    got g = {0};
    CHECK_INT(chat(&e, &g, "f", 0, NULL, NULL), 0);
    if (g.status != want) fprintf(stderr, "%s: %s %s\n", kind, ag_err_name(g.status), g.res->error);
    CHECK_INT(g.status, want);
    if (msg) CHECK(g.res->error && strstr(g.res->error, msg));
    ag_result_free(g.res);
    env_close(&e);
}
static void faults(void) {
    fault("error-line", 2, AG_ESERVER, "model runner crashed");
    fault("http500", 0, AG_EHTTP, "HTTP 500: llama runner process has terminated");
    fault("http503", 0, AG_EBUSY, "server busy");
    fault("truncate", 3, AG_ETRUNCATED, NULL);
    fault("reset", 3, AG_ELOST, "after 3 chunks");
    fault("malformed", 2, AG_EJSON, NULL);
    env e;
    oai_env(&e, 4);
    ag_message m = {"user", "x", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "no-such", .messages = &m, .n_messages = 1};
    ag_sync_out out;
    CHECK_INT(ag_chat_sync(e.c, &p, NULL, NULL, &out), AG_ENOTFOUND);
    CHECK_STR(out.result->error, "HTTP 404: model \"no-such\" not found, try pulling it first");
    ag_sync_out_free(&out);
    env_close(&e);
}

/* one pool, an Ollama node and an OpenAI node, one batch of agent tasks */
static void mixed_pool_batch(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim_config o = {.tokens = 5}, a = {.tokens = 5, .api = 1};
    ag_sim *s1 = ag_sim_new(base, "127.0.0.1", 0, &o), *s2 = ag_sim_new(base, "127.0.0.1", 0, &a);
    char nodes[128];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,openai+http://127.0.0.1:%d", ag_sim_port(s1), ag_sim_port(s2));
    ag_pool_options po = {.nodes = nodes, .policy = AG_POLICY_ROUND_ROBIN};
    ag_client *c = ag_pool_new(base, &po, NULL);
    REQUIRE(c);
    ag_agent *agent = ag_agent_chat(c, "llama3.2");
    char in[64], out[64];
    snprintf(in, sizeof in, "/tmp/ag_mixed_in_%d", (int)getpid());
    snprintf(out, sizeof out, "/tmp/ag_mixed_out_%d", (int)getpid());
    FILE *f = fopen(in, "w");
    for (int i = 1; i <= 200; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"p %d\"}\n", i, i % 5);
    fclose(f);
    unlink(out);
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 16};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(agent, &bo, &sum), 0);
    CHECK_INT(sum.ok, 200);
    CHECK_INT(sum.tokens, 1000);
    ag_node_info info[2];
    ag_pool_nodes(c, info, 2);
    CHECK(info[0].requests >= 50 && info[1].requests >= 50);
    CHECK_STR(info[1].version, "openai-compatible");
    /* the same answer whichever dialect served it */
    char *res = t_read_file(out, NULL);
    char want[256];
    want_text("llama3.2", "p 1", 0, 5, want);
    char needle[300];
    snprintf(needle, sizeof needle, "\"response\":\"%s\"", want);
    int hits = 0;
    for (const char *q = res; (q = strstr(q, needle)); q++) hits++;
    CHECK_INT(hits, 40); /* prompts "p 1": ids 1, 6, 11, ... */
    free(res);
    unlink(in);
    unlink(out);
    ag_agent_free(agent);
    ag_client_free(c);
    ag_sim_free(s1);
    ag_sim_free(s2);
    event_base_free(base);
}

static int tool_calls;
static int weather(const char *args, size_t len, char **result, void *ud) {
    (void)args;
    (void)len;
    (void)ud;
    tool_calls++;
    *result = strdup("sunny");
    return 0;
}

static void agents_unchanged(void) {
    env e;
    oai_env(&e, 8);
    ag_agent *coder = ag_agent_coding(e.c, "llama3.2");
    ag_agent_result *r;
    CHECK_INT(ag_agent_full_response(coder, "code", &r), 0);
    CHECK_INT(r->n_blocks, 1);
    if (r->n_blocks == 1) CHECK_STR(r->blocks[0].code, "print(42)\n");
    ag_agent_result_free(r);
    ag_agent_free(coder);
    ag_agent_config cfg = {.model = "llama3.2"};
    ag_agent *a = ag_agent_new(e.c, &cfg);
    ag_agent_add_tool(a, "get_weather", "w", "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}", weather, NULL);
    tool_calls = 0;
    CHECK_INT(ag_agent_full_response(a, "weather in Quito", &r), 0);
    CHECK_INT(tool_calls, 1);
    CHECK(r->text && strncmp(r->text, "Tool said: sunny. ", 18) == 0);
    const char *body = ag_sim_last_body(e.sim, "/v1/chat/completions");
    CHECK(strstr(body, "\"tool_calls\":[{\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Quito\\\"}\"}}]") != NULL);
    CHECK(strstr(body, "{\"role\":\"tool\",\"content\":\"sunny\",\"tool_call_id\":\"call_0\",\"name\":\"get_weather\"}") != NULL);
    ag_agent_result_free(r);
    ag_agent_free(a);
    env_close(&e);
}

/* The simulated node's OpenAI wire, as Ollama's /v1 writes it: each response
 * its own id, "created", the role in every delta, the usage chunk only when
 * asked for, base64 embeddings when asked for, one model by id, and a prompt
 * list refused */
typedef struct fwd_got {
    int dones, status, http;
    char body[16384];
} fwd_got;
static void fg_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    (void)r;
    fwd_got *g = ud;
    if (c->kind == AG_CHUNK_BODY && strlen(g->body) + c->len < sizeof g->body) strncat(g->body, c->text, c->len);
}
static void fg_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    fwd_got *g = ud;
    g->dones++;
    g->status = res->status;
    g->http = res->http_status;
    if (res->status && !g->body[0] && res->error) snprintf(g->body, sizeof g->body, "(%s)", res->error);
}
static void forward(env *e, fwd_got *g, const char *method, const char *path, const char *body, int stream) {
    memset(g, 0, sizeof *g);
    ag_forward_params fp = {.method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0,
                            .stream = stream};
    ag_callbacks cb = {fg_chunk, fg_done, g};
    CHECK_INT(ag_forward(e->c, &fp, &cb, NULL), 0);
    CHECK(run_until(e->base, &g->dones, 1, 10));
}

static void sim_openai_wire(void) {
    env e;
    oai_env(&e, 4);
    fwd_got a, b;
    const char *chat = "{\"model\":\"llama3.2\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    forward(&e, &a, "POST", "/v1/chat/completions", chat, 1);
    forward(&e, &b, "POST", "/v1/chat/completions", chat, 1);
    CHECK(strstr(a.body, "\"created\":") != NULL);
    CHECK(strstr(a.body, "\"delta\":{\"role\":\"assistant\",\"content\":\"") != NULL);
    CHECK(strstr(a.body, "\"choices\":[]") == NULL); /* no usage chunk unless asked */
    char ida[64] = "", idb[64] = "";
    sscanf(strstr(a.body, "\"id\":\"") + 6, "%63[^\"]", ida);
    sscanf(strstr(b.body, "\"id\":\"") + 6, "%63[^\"]", idb);
    CHECK(ida[0] && idb[0] && strcmp(ida, idb) != 0);
    const char *chat_usage = "{\"model\":\"llama3.2\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    forward(&e, &a, "POST", "/v1/chat/completions", chat_usage, 1);
    CHECK(strstr(a.body, "\"choices\":[],\"usage\":{\"prompt_tokens\":") != NULL);
    /* base64: 32 float32 = 128 bytes = 172 base64 characters */
    forward(&e, &a, "POST", "/v1/embeddings", "{\"model\":\"nomic-embed-text\",\"input\":\"x\",\"encoding_format\":\"base64\"}", 0);
    char *q = strstr(a.body, "\"embedding\":\"");
    REQUIRE(q);
    q += 13;
    CHECK_INT(strcspn(q, "\""), 172);
    /* the same vector as floats */
    float want[32];
    ag_sim_embed_text("x", 32, want);
    unsigned char raw[132];
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nraw = 0;
    for (int i = 0; i + 3 < 172; i += 4) {
        unsigned v = 0;
        for (int k = 0; k < 4; k++) v = v << 6 | (q[i + k] == '=' ? 0 : (unsigned)(strchr(tab, q[i + k]) - tab));
        raw[nraw++] = (unsigned char)(v >> 16);
        raw[nraw++] = (unsigned char)(v >> 8);
        raw[nraw++] = (unsigned char)v;
    }
    float got[32];
    memcpy(got, raw, sizeof got);
    int same = 1;
    for (int i = 0; i < 32; i++) same &= fabsf(got[i] - want[i]) < 1e-6f;
    CHECK(same);
    forward(&e, &a, "GET", "/v1/models/llama3.2", NULL, 0);
    CHECK_INT(a.http, 200);
    CHECK(strstr(a.body, "\"id\":\"llama3.2:latest\",\"object\":\"model\"") != NULL);
    forward(&e, &a, "GET", "/v1/models/nope", NULL, 0);
    CHECK_INT(a.http, 404);
    CHECK(strstr(a.body, "\"type\":\"not_found_error\",\"param\":null,\"code\":null") != NULL);
    forward(&e, &a, "POST", "/v1/completions", "{\"model\":\"llama3.2\",\"prompt\":[\"hi\"]}", 0);
    CHECK_INT(a.http, 400);
    env_close(&e);
}


/* What an OpenAI-compatible node may say of its capacity, each source
 * served by the sim on request (Ollama says nothing): llama.cpp's /props
 * and /slots, vLLM's /metrics gauges, following the node's own load */
static void sim_says_capacity(void) {
    env e;
    ag_sim_config cfg = {.api = 1, .tokens = 40, .itl_ms = 20, .slots = 2, .says = AG_SIM_SAYS_PROPS | AG_SIM_SAYS_METRICS};
    env_open(&e, &cfg, NULL); /* (forwarded as they are: the client's dialect plays no part) */
    fwd_got a;
    forward(&e, &a, "GET", "/props", NULL, 0);
    CHECK_INT(a.http, 200);
    CHECK(strstr(a.body, "\"total_slots\":2,") != NULL);
    forward(&e, &a, "GET", "/metrics", NULL, 0);
    CHECK(strstr(a.body, "vllm:num_requests_running{model_name=\"") != NULL);
    CHECK(strstr(a.body, "} 0.0\nvllm:num_requests_waiting") != NULL || strstr(a.body, "} 0.0\n# HELP vllm:num_requests_waiting") != NULL);
    /* three long generations on two slots: two run, one waits */
    fwd_got g[3];
    ag_forward_params fp = {.method = "POST", .path = "/v1/chat/completions",
                            .body = "{\"model\":\"llama3.2\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                            .stream = 1};
    fp.body_len = strlen(fp.body);
    for (int i = 0; i < 3; i++) {
        memset(&g[i], 0, sizeof g[i]);
        ag_callbacks cb = {fg_chunk, fg_done, &g[i]};
        CHECK_INT(ag_forward(e.c, &fp, &cb, NULL), 0);
    }
    run_for(e.base, 0.15);
    forward(&e, &a, "GET", "/slots", NULL, 0);
    CHECK(strstr(a.body, "[{\"id\":0,\"n_ctx\":4096,\"is_processing\":true},{\"id\":1,\"n_ctx\":4096,\"is_processing\":true}]") != NULL);
    forward(&e, &a, "GET", "/metrics", NULL, 0);
    if (!strstr(a.body, "} 2.0\n")) fprintf(stderr, "metrics: %d %d [%s]\n", a.status, a.http, a.body);
    CHECK(strstr(a.body, "} 2.0\n") != NULL); /* running */
    CHECK(strstr(a.body, "} 1.0\n") != NULL); /* waiting */
    for (int i = 0; i < 3; i++) CHECK(run_until(e.base, &g[i].dones, 1, 10));
    /* a node that says nothing answers 404 there, as Ollama does */
    env_close(&e);
    ag_sim_config quiet = {.api = 1, .tokens = 4, .slots = 2};
    env_open(&e, &quiet, NULL);
    forward(&e, &a, "GET", "/props", NULL, 0);
    if (a.http != 404) fprintf(stderr, "props: %d %d [%s]\n", a.status, a.http, a.body);
    CHECK_INT(a.http, 404);
    forward(&e, &a, "GET", "/metrics", NULL, 0);
    CHECK_INT(a.http, 404);
    env_close(&e);
}

T_MAIN(T(sim_openai_wire), T(sim_says_capacity), T(chat_stream), T(thinking_and_tools), T(completions_embed_models), T(images), T(faults), T(mixed_pool_batch),
       T(agents_unchanged))
