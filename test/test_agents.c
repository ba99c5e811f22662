/* Agents and their utilities: unit tests for the text tools, then every
 * agent against a simulated node, asserting what was sent and what came back. */
#include "support.h"
#include <math.h>
#include <yajl/yajl_tree.h>

#include "rawsrv.h"

/* ---- utilities ---- */
static void code_blocks(void) {
    const char *t = "Intro\n```python\nprint(1)\n```\ntext\n~~~\nplain\n~~~\n  ```c  extra\nint x;\n";
    ag_code_block *b;
    int n = ag_code_blocks(t, strlen(t), &b);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(b[0].lang, "python");
        CHECK_STR(b[0].code, "print(1)\n");
        CHECK_STR(b[1].lang, "");
        CHECK_STR(b[1].code, "plain\n");
        CHECK_STR(b[2].lang, "c"); /* unterminated: runs to the end */
        CHECK_STR(b[2].code, "int x;\n");
    }
    ag_code_blocks_free(b, n);
    CHECK_INT(ag_code_blocks("no code", 7, &b), 0);
    /* a shorter fence inside does not close a longer one */
    const char *u = "````md\n```\ninner\n```\n````\n";
    n = ag_code_blocks(u, strlen(u), &b);
    CHECK_INT(n, 1);
    if (n == 1) CHECK_STR(b[0].code, "```\ninner\n```\n");
    ag_code_blocks_free(b, n);
}

typedef struct split_out {
    char think[256], answer[256];
} split_out;
static int collect(int kind, const char *text, size_t len, void *ud) {
    split_out *o = ud;
    strncat(kind == AG_CHUNK_THINKING ? o->think : o->answer, text, len);
    return 0;
}

/* every way of cutting the stream into three pieces gives the same split */
static void think_tags(void) {
    const char *s = "pre <think>a<b</think>answer <i>x</i> <thin";
    size_t n = strlen(s);
    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) {
            ag_think_splitter sp = {0};
            split_out o = {{0}, {0}};
            ag_think_feed(&sp, s, i, collect, &o);
            ag_think_feed(&sp, s + i, j - i, collect, &o);
            ag_think_feed(&sp, s + j, n - j, collect, &o);
            ag_think_flush(&sp, collect, &o);
            t_checks++;
            if (strcmp(o.think, "a<b") || strcmp(o.answer, "pre answer <i>x</i> <thin")) {
                fprintf(stderr, "split at %zu,%zu: think '%s' answer '%s'\n", i, j, o.think, o.answer);
                t_failures++;
                return;
            }
        }
}

static void json_extract(void) {
    char *o;
    const char *a = "Sure! ```json\n{\"a\": [1, 2], \"b\": \"}\"}\n``` done";
    CHECK_INT(ag_json_extract(a, strlen(a), 1, &o), 0);
    CHECK_STR(o, "{\"a\": [1, 2], \"b\": \"}\"}");
    free(o);
    /* an object wins over stray brackets, as in the original */
    const char *b = "list: [1, 2, 3] and {\"x\": 1}";
    CHECK_INT(ag_json_extract(b, strlen(b), 1, &o), 0);
    CHECK_STR(o, "{\"x\": 1}");
    free(o);
    /* an array that holds the object is the value */
    const char *b2 = "here: [{\"x\": 1}, {\"x\": 2}] ok";
    CHECK_INT(ag_json_extract(b2, strlen(b2), 0, &o), 0);
    CHECK_STR(o, "[{\"x\": 1}, {\"x\": 2}]");
    free(o);
    /* a fenced block wins over citations in the prose */
    const char *f = "See [1] and [2]. ```json {\"a\":1}```";
    for (int mode = 0; mode < 2; mode++) {
        CHECK_INT(ag_json_extract(f, strlen(f), mode, &o), 0);
        CHECK_STR(o, "{\"a\":1}");
        free(o);
    }
    const char *f2 = "See [1].\n```\n[3, 4]\n```\n";
    CHECK_INT(ag_json_extract(f2, strlen(f2), 0, &o), 0);
    CHECK_STR(o, "[3, 4]");
    free(o);
    /* strict: the whole text or nothing (the original's strict=True raises) */
    CHECK_INT(ag_json_extract(f, strlen(f), AG_JSON_STRICT, &o), AG_EJSON);
    CHECK_INT(ag_json_extract(" {\"a\": 2}\n", 10, AG_JSON_STRICT, &o), 0);
    CHECK_STR(o, "{\"a\": 2}");
    free(o);
    CHECK_INT(ag_json_extract("", 0, AG_JSON_STRICT, &o), AG_EJSON);
    /* the parsed value */
    struct yajl_val_s *v = NULL;
    CHECK_INT(ag_json_extract_value(f, strlen(f), 0, &v), 0);
    const char *path[] = {"a", NULL};
    yajl_val a1 = v ? yajl_tree_get(v, path, yajl_t_number) : NULL;
    CHECK(a1 && YAJL_GET_INTEGER(a1) == 1);
    ag_json_value_free(v);
    CHECK_INT(ag_json_extract_value("nothing", 7, 0, &v), AG_EJSON);
    CHECK(v == NULL);
    const char *c = "{'name': 'O\\'Brien', \"ok\": True, \"v\": None, \"l\": [1, 2,],}";
    CHECK_INT(ag_json_extract(c, strlen(c), 1, &o), AG_EJSON);
    CHECK_INT(ag_json_extract(c, strlen(c), 0, &o), 0);
    CHECK_STR(o, "{\"name\": \"O'Brien\", \"ok\": true, \"v\": null, \"l\": [1, 2]}");
    free(o);
    const char *d = "{broken {\"fine\": 1}";
    CHECK_INT(ag_json_extract(d, strlen(d), 1, &o), 0);
    CHECK_STR(o, "{\"fine\": 1}");
    free(o);
    CHECK_INT(ag_json_extract("no json here", 12, 0, &o), AG_EJSON);
    CHECK_INT(ag_json_extract("{\"a\": ", 6, 0, &o), AG_EJSON);
}

/* the original package's helpers, with the values it returns */
static void original_helpers(void) {
    CHECK_INT(ag_estimate_tokens(""), 0);
    CHECK_INT(ag_estimate_tokens("abc"), 0);
    CHECK_INT(ag_estimate_tokens("abcdefgh"), 2);
    CHECK_INT(ag_estimate_tokens("h\xc3\xa9llo w\xc3\xb6rld!"), 3); /* 12 code points */
    char *t = ag_truncate_to_tokens("abcdefghij", 2, 4);
    CHECK_STR(t, "abcdefgh...");
    free(t);
    t = ag_truncate_to_tokens("short", 10, 0);
    CHECK_STR(t, "short");
    free(t);
    t = ag_truncate_to_tokens("abcdefgh", 2, 4); /* exactly at the limit: unchanged */
    CHECK_STR(t, "abcdefgh");
    free(t);
    t = ag_truncate_to_tokens("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 1, 2);
    CHECK_STR(t, "\xc3\xa9\xc3\xa9...");
    free(t);
    ag_message m[3] = {{"user", "Hello there", NULL, NULL, 0, NULL, NULL},
                       {"assistant", "Hi", NULL, NULL, 0, NULL, NULL},
                       {NULL, "x", NULL, NULL, 0, NULL, NULL}};
    t = ag_format_chat_history(m, 3, 5);
    CHECK_STR(t, "USER: Hello...\nASSISTANT: Hi\nUNKNOWN: x");
    free(t);
    t = ag_format_chat_history(m, 2, 0);
    CHECK_STR(t, "USER: Hello there\nASSISTANT: Hi");
    free(t);
    t = ag_format_chat_history(NULL, 0, 0);
    CHECK_STR(t, "");
    free(t);
}

static void conversation(void) {
    ag_message m[5] = {{"system", "S", NULL, NULL, 0, NULL, NULL},
                       {"user", "one two three four five six seven eight", NULL, NULL, 0, NULL, NULL},
                       {"assistant", "A", NULL, NULL, 0, NULL, NULL},
                       {"tool", "42", NULL, NULL, 0, NULL, "calc"},
                       {"user", "last", NULL, NULL, 0, NULL, NULL}};
    char *h = ag_history_format(m, 5);
    CHECK_STR(h, "System: S\nUser: one two three four five six seven eight\nAssistant: A\nTool (calc): 42\nUser: last\n");
    free(h);
    CHECK_INT(ag_token_estimate(""), 0);
    CHECK_INT(ag_token_estimate("a"), 1);
    CHECK_INT(ag_token_estimate("one two three four five six seven eight"), 11); /* 8 words */
    CHECK_INT(ag_token_estimate("abcdefghijklmnopqrstuvwxyz0123456789abcd"), 10); /* 40 chars */
    unsigned char keep[5];
    ag_truncate_messages(m, 5, 20, keep);
    CHECK(keep[0] && !keep[1] && keep[2] && keep[3] && keep[4]); /* system + newest turns */
    ag_truncate_messages(m, 5, 1, keep);
    CHECK(keep[0] && keep[4] && !keep[3]); /* the newest message always stays */
    ag_truncate_messages(m, 5, 1000, keep);
    CHECK(keep[0] && keep[1] && keep[2] && keep[3] && keep[4]);
}

static void cosine(void) {
    float a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {3, 0, 0}, z[3] = {0, 0, 0}, d[3] = {1, 1, 0};
    CHECK(fabs(ag_cosine(a, b, 3)) < 1e-12);
    CHECK(fabs(ag_cosine(a, c, 3) - 1) < 1e-12);
    CHECK(ag_cosine(a, z, 3) == 0); /* not NaN */
    CHECK(fabs(ag_cosine(a, d, 3) - 0.70710678118654752) < 1e-9);
    CHECK_STR(ag_node_state_name(AG_NODE_UP), "up");
    CHECK_STR(ag_node_state_name(AG_NODE_EJECTED), "ejected");
    CHECK_STR(ag_node_state_name(99), "?");
}

static void backoff(void) {
    unsigned long long seed = 1;
    double sum = 0;
    for (unsigned a = 0; a < 10; a++)
        for (int i = 0; i < 200; i++) {
            double d = ag_backoff(a, 0.5, 10, &seed);
            double cap = 0.5 * (1 << a) < 10 ? 0.5 * (1 << a) : 10;
            CHECK(d >= 0 && d < cap);
            sum += d;
        }
    CHECK(sum > 0);
}

/* ---- agents against a simulated node ---- */
typedef struct out {
    char text[8192], think[4096], tools[1024];
    int dones, chunks, cancel_at;
    ag_agent_result *res;
} out;
static void o_chunk(ag_task *t, const ag_chunk *c, void *ud) {
    out *o = ud;
    o->chunks++;
    if (c->kind == AG_CHUNK_CONTENT) strncat(o->text, c->text, c->len);
    if (c->kind == AG_CHUNK_THINKING) strncat(o->think, c->text, c->len);
    if (c->kind == AG_CHUNK_TOOL_CALL) strncat(o->tools, c->name, c->name_len);
    if (o->cancel_at && o->chunks == o->cancel_at) ag_task_cancel(t);
}
static void o_done(ag_task *t, const ag_agent_result *r, void *ud) {
    (void)t;
    out *o = ud;
    o->dones++;
    o->res = ag_agent_result_dup(r);
    if (r->status && getenv("AG_TEST_VERBOSE")) fprintf(stderr, "task: %s\n", r->error);
}
static int ask(env *e, ag_agent *a, const char *prompt, out *o) {
    ag_agent_callbacks cb = {o_chunk, o_done, o};
    int rc = ag_agent_ask(a, prompt, &cb, NULL);
    if (rc) return rc;
    CHECK_INT(o->dones, 0); /* never inside the starting call */
    return run_until(e->base, &o->dones, 1, 20) ? 0 : -999;
}

static void expected(const char *model, const char *prompt, int from, int to, int n, char *buf) {
    buf[0] = 0;
    for (int i = from; i < to; i++) strcat(buf, ag_sim_token_n(model, prompt, i, n));
}

static void chat_agent(void) {
    env e;
    ag_sim_config cfg = {.tokens = 12};
    env_open(&e, &cfg, NULL);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    out o = {0};
    CHECK_INT(ask(&e, a, "why is the sky blue?", &o), 0);
    char want[2048];
    expected("llama3.2", "why is the sky blue?", 0, 12, 12, want);
    CHECK_STR(o.text, want);
    CHECK_INT(o.res->status, 0);
    CHECK_STR(o.res->text, want);
    CHECK_INT(o.res->steps, 1);
    CHECK_INT(o.res->eval_count, 12);
    CHECK_STR(ag_sim_last_body(e.sim, "/api/chat"),
              "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"why is the sky blue?\"}],\"stream\":true}");
    ag_agent_result_free(o.res);
    /* blocking forms */
    ag_agent_result *r;
    CHECK_INT(ag_agent_full_response(a, "why is the sky blue?", &r), 0);
    CHECK_STR(r->text, want);
    ag_agent_result_free(r);
    ag_agent_free(a);
    env_close(&e);
}

static void coding_agent(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent *a = ag_agent_coding(e.c, "llama3.2");
    out o = {0};
    CHECK_INT(ask(&e, a, "print 42 in python", &o), 0);
    CHECK_INT(o.res->status, 0);
    CHECK_STR(o.res->text, "Here is code:\n```python\nprint(42)\n```\nDone.");
    CHECK_INT(o.res->n_blocks, 1);
    if (o.res->n_blocks == 1) {
        CHECK_STR(o.res->blocks[0].lang, "python");
        CHECK_STR(o.res->blocks[0].code, "print(42)\n");
    }
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(body && strstr(body, "{\"role\":\"system\",\"content\":\"You are a senior software engineer.") != NULL);
    CHECK(body && strstr(body, "{\"role\":\"user\",\"content\":\"print 42 in python\"}") != NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

static void reasoning_inline_tags(void) {
    env e;
    ag_sim_config cfg = {.tokens = 15};
    env_open(&e, &cfg, NULL);
    ag_pool_options unused;
    (void)unused;
    /* the sim serves an r1-style model that thinks inline */
    ag_sim_free(e.sim);
    ag_client_free(e.c);
    cfg.models = "deepseek-r1:8b";
    e.sim = ag_sim_new(e.base, "127.0.0.1", 0, &cfg);
    snprintf(e.host, sizeof e.host, "127.0.0.1:%d", ag_sim_port(e.sim));
    ag_client_options co = {.host = e.host};
    e.c = ag_client_new(e.base, &co, NULL);
    ag_agent *a = ag_agent_reasoning(e.c, "deepseek-r1:8b");
    out o = {0};
    CHECK_INT(ask(&e, a, "2+2?", &o), 0);
    CHECK_INT(o.res->status, 0);
    char think[1024], answer[1024];
    expected("deepseek-r1:8b", "2+2?", 2, 5, 15, think); /* between "nk>" and "</th" */
    expected("deepseek-r1:8b", "2+2?", 7, 15, 15, answer);
    CHECK_STR(o.think, think);
    CHECK_STR(o.res->thinking, think);
    char want_answer[1100];
    snprintf(want_answer, sizeof want_answer, "\n%s", answer); /* the newline after </think> */
    CHECK_STR(o.res->text, want_answer);
    CHECK(strstr(o.res->text, "think>") == NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

static void reasoning_thinking_fields(void) {
    env e;
    ag_sim_config cfg = {.tokens = 8};
    env_open(&e, &cfg, NULL);
    ag_agent *a = ag_agent_reasoning(e.c, "qwen3:4b");
    CHECK_INT(ag_agent_set(a, "think", "true"), 0);
    CHECK_INT(ag_agent_set(a, "bogus", "x"), AG_EINVAL);
    CHECK_INT(ag_agent_set(a, "options", "[1]"), AG_EINVAL);
    out o = {0};
    CHECK_INT(ask(&e, a, "think", &o), 0);
    char think[512], answer[512];
    expected("qwen3:4b", "think", 0, 2, 8, think);
    expected("qwen3:4b", "think", 2, 8, 8, answer);
    CHECK_STR(o.res->thinking, think);
    CHECK_STR(o.res->text, answer);
    CHECK(strstr(ag_sim_last_body(e.sim, "/api/chat"), "\"think\":true") != NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

/* a tool: the weather, from the model's arguments */
static int weather_calls;
static char weather_args[256];
static int get_weather(const char *args, size_t len, char **result, void *ud) {
    (void)ud;
    weather_calls++;
    snprintf(weather_args, sizeof weather_args, "%.*s", (int)len, args);
    *result = strdup("sunny, 21 C");
    return 0;
}

static void tools_loop(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent_config cfg = {.name = "weather", .model = "llama3.2", .system = "Use the tools."};
    ag_agent *a = ag_agent_new(e.c, &cfg);
    CHECK_INT(ag_agent_add_tool(a, "get_weather", "Current weather for a city",
                                "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}",
                                get_weather, NULL), 0);
    CHECK_INT(ag_agent_add_tool(a, "bad", "x", "{not json", get_weather, NULL), AG_EINVAL);
    weather_calls = 0;
    out o = {0};
    CHECK_INT(ask(&e, a, "weather in Paris", &o), 0);
    CHECK_INT(o.res->status, 0);
    CHECK_INT(weather_calls, 1);
    CHECK_STR(weather_args, "{\"city\":\"Paris\"}");
    CHECK_STR(o.tools, "get_weather");
    CHECK_INT(o.res->steps, 2);
    CHECK(strncmp(o.res->text, "Tool said: sunny, 21 C. ", 24) == 0);
    CHECK_STR(o.res->tool_log, "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"},\"result\":\"sunny, 21 C\"}]");
    /* what the second call sent: the tool list, the assistant's call, the result */
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(body, "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]}") != NULL);
    CHECK(strstr(body, "{\"role\":\"tool\",\"content\":\"sunny, 21 C\",\"tool_name\":\"get_weather\"}") != NULL);
    CHECK(strstr(body, "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"") != NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    /* the step limit */
    cfg.max_steps = 1;
    a = ag_agent_new(e.c, &cfg);
    ag_agent_add_tool(a, "get_weather", "w", NULL, get_weather, NULL);
    out p = {0};
    CHECK_INT(ask(&e, a, "weather in Rome", &p), 0);
    CHECK_INT(p.res->status, AG_ESTEPS);
    CHECK(p.res->error && strstr(p.res->error, "1 steps"));
    ag_agent_result_free(p.res);
    ag_agent_free(a);
    /* a run's request options are the task's own: its second call reads them
     * after the caller's strings are gone (ASan and valgrind would see it) */
    cfg.max_steps = 0;
    a = ag_agent_new(e.c, &cfg);
    ag_agent_add_tool(a, "get_weather", "w", NULL, get_weather, NULL);
    char *tenant = strdup("team-a"), *session = strdup("conversation-1"), *hdr = strdup("X-Trace: 1");
    ag_request_options rq = {.tenant = tenant, .session = session, .headers = hdr};
    ag_run_options rro = {.request = &rq};
    ag_message wm = {"user", "weather in Oslo", NULL, NULL, 0, NULL, NULL};
    out w = {0};
    ag_agent_callbacks wcb = {o_chunk, o_done, &w};
    CHECK_INT(ag_agent_run_with(a, &wm, 1, &rro, &wcb, NULL), 0);
    memset(tenant, 'x', strlen(tenant));
    free(tenant);
    free(session);
    free(hdr);
    CHECK(run_until(e.base, &w.dones, 1, 20));
    CHECK(w.res && w.res->status == 0 && w.res->steps == 2);
    ag_agent_result_free(w.res);
    ag_agent_free(a);
    env_close(&e);
}

/* a tool that succeeds without a result: the model is told "" (the tool
 * log and the request body once carried uninitialised stack bytes) */
static int silent_tool(const char *args, size_t len, char **result, void *ud) {
    (void)args;
    (void)len;
    (void)ud;
    *result = NULL;
    return 0;
}
static void tool_null_result(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent_config cfg = {.name = "w", .model = "llama3.2"};
    ag_agent *a = ag_agent_new(e.c, &cfg);
    CHECK_INT(ag_agent_add_tool(a, "get_weather", "w", NULL, silent_tool, NULL), 0);
    out o = {0};
    CHECK_INT(ask(&e, a, "weather in Paris", &o), 0);
    CHECK_INT(o.res->status, 0);
    CHECK_STR(o.res->tool_log, "[{\"name\":\"get_weather\",\"arguments\":{},\"result\":\"\"}]");
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(body, "{\"role\":\"tool\",\"content\":\"\",\"tool_name\":\"get_weather\"}") != NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

/* a tool that cancels its own task: one on_done (ECANCELED), after the tool
 * returned, no second model call, and a closed tool log (once a use after free) */
static ag_task *cancel_me;
static int cancelling_tool(const char *args, size_t len, char **result, void *ud) {
    (void)args;
    (void)len;
    (void)ud;
    ag_task_cancel(cancel_me);
    ag_task_cancel(cancel_me); /* twice is harmless */
    *result = strdup("cancelled here");
    return 0;
}
static void tool_cancels_task(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent_config cfg = {.name = "w", .model = "llama3.2"};
    ag_agent *a = ag_agent_new(e.c, &cfg);
    CHECK_INT(ag_agent_add_tool(a, "get_weather", "w", NULL, cancelling_tool, NULL), 0);
    out o = {0};
    ag_agent_callbacks cb = {o_chunk, o_done, &o};
    CHECK_INT(ag_agent_ask(a, "weather in Paris", &cb, &cancel_me), 0);
    for (int i = 0; i < 500 && !o.dones; i++) run_for(e.base, 0.01);
    run_for(e.base, 0.05);
    CHECK_INT(o.dones, 1);
    if (o.res) {
        CHECK_INT(o.res->status, AG_ECANCELED);
        CHECK_INT(o.res->steps, 1);
        CHECK_STR(o.res->tool_log, "[{\"name\":\"get_weather\",\"arguments\":{},\"result\":\"cancelled here\"}]");
    }
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

/* a custom agent: a prompt plus hooks */
static int prepare_hook(ag_agent *a, ag_msgs *m, void *ud) {
    (void)a;
    (void)ud;
    return ag_msgs_insert(m, 1, "user", "Context: be nice.");
}
static int filter_hook(ag_agent *a, int kind, const char **text, size_t *len, void *ud) {
    (void)a;
    (void)kind;
    (void)ud;
    static const char star[] = "*";
    if (*len >= 3 && !memcmp(*text, "sky", 3)) { /* censor one word, keep the rest */
        *text = star;
        *len = 1;
    }
    return *len == 3 && !memcmp(*text, "is ", 3); /* drop "is " */
}
static char *finish_hook(ag_agent *a, const char *text, size_t len, void *ud) {
    (void)a;
    (void)ud;
    char *o = malloc(len + 16);
    snprintf(o, len + 16, "%.*s [checked]", (int)len, text);
    return o;
}
static void custom_hooks(void) {
    env e;
    ag_sim_config cfg = {.tokens = 30};
    env_open(&e, &cfg, NULL);
    ag_agent_config c = {.name = "custom", .model = "llama3.2", .system = "You are custom.",
                         .options_json = "{\"temperature\":0}",
                         .hooks = {prepare_hook, filter_hook, finish_hook, NULL}};
    ag_agent *a = ag_agent_new(e.c, &c);
    /* a question whose answer (the sim's, known in advance) holds both words
     * the filter acts on: it must drop one and censor the other */
    char q[64] = "";
    for (int k = 0; k < 1000 && !q[0]; k++) {
        char cand[64];
        snprintf(cand, sizeof cand, "why is the sky blue? (%d)", k);
        int is = 0, sky = 0;
        for (int i = 0; i < 30; i++) {
            const char *t = ag_sim_token("llama3.2", cand, i);
            is += !strcmp(t, "is ");
            sky += !strncmp(t, "sky", 3);
        }
        if (is && sky) snprintf(q, sizeof q, "%s", cand);
    }
    REQUIRE(q[0]);
    out o = {0};
    CHECK_INT(ask(&e, a, q, &o), 0);
    char raw[2048] = "", want[2048] = "";
    expected("llama3.2", q, 0, 30, 30, raw);
    int dropped = 0, censored = 0;
    for (int i = 0; i < 30; i++) {
        const char *t = ag_sim_token("llama3.2", q, i);
        if (!strcmp(t, "is ")) {
            dropped++;
            continue;
        }
        censored += !strncmp(t, "sky", 3);
        strcat(want, !strncmp(t, "sky", 3) ? "*" : t);
    }
    CHECK(dropped > 0 && censored > 0);
    CHECK(strcmp(want, raw) != 0); /* the filter changed the answer */
    CHECK_STR(o.text, want);
    char fin[2100];
    snprintf(fin, sizeof fin, "%s [checked]", want);
    CHECK_STR(o.res->text, fin);
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    char msgs[256];
    snprintf(msgs, sizeof msgs, "[{\"role\":\"system\",\"content\":\"You are custom.\"},{\"role\":\"user\",\"content\":"
             "\"Context: be nice.\"},{\"role\":\"user\",\"content\":\"%s\"}]", q);
    CHECK(strstr(body, msgs) != NULL);
    CHECK(strstr(body, "\"options\":{\"temperature\":0}") != NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

static void research(void) {
    env e;
    ag_sim_config cfg = {.tokens = 6, .dim = 256};
    env_open(&e, &cfg, NULL);
    ag_docstore *s = ag_docstore_new(200, 40);
    CHECK_INT(ag_docstore_add_text(s, "volcanoes.txt", "Volcanoes erupt molten rock called lava. Magma chambers feed volcanoes under the crust."), 0);
    CHECK_INT(ag_docstore_add_text(s, "bread.txt", "Bread dough rises because yeast ferments sugar and releases carbon dioxide gas."), 0);
    CHECK_INT(ag_docstore_add_text(s, "tides.txt", "Ocean tides follow the moon: its gravity pulls the water into bulges."), 0);
    /* a long document becomes several overlapping passages */
    char longdoc[3000] = "";
    for (int i = 0; i < 60; i++) {
        char sent[64];
        snprintf(sent, sizeof sent, "filler sentence %d about nothing much. ", i);
        strcat(longdoc, sent);
    }
    CHECK_INT(ag_docstore_add_text(s, "filler.txt", longdoc), 0);
    CHECK(ag_docstore_passages(s) > 10);
    ag_agent *a = ag_agent_research(e.c, "llama3.2", "nomic-embed-text", s, 2);
    out o = {0};
    CHECK_INT(ask(&e, a, "why does bread dough rise with yeast?", &o), 0);
    CHECK_INT(o.res->status, 0);
    CHECK_INT(o.res->n_sources, 2);
    CHECK_STR(o.res->sources[0].name, "bread.txt");
    CHECK_INT(o.res->sources[0].index, 1);
    CHECK(o.res->sources[0].score > o.res->sources[1].score);
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(body, "Sources:\\n\\n[1] (bread.txt)\\nBread dough rises") != NULL);
    CHECK(strstr(body, "Question: why does bread dough rise with yeast?") != NULL);
    CHECK(strstr(body, "Cite the sources") != NULL);
    size_t cached, requests;
    ag_docstore_stats(s, &cached, &requests);
    CHECK_INT(cached, ag_docstore_passages(s) + 1);
    size_t req1 = requests;
    ag_agent_result_free(o.res);
    /* a second question reuses every passage vector: one request, for the question */
    out p = {0};
    CHECK_INT(ask(&e, a, "what makes the ocean tides?", &p), 0);
    CHECK_STR(p.res->sources[0].name, "tides.txt");
    ag_docstore_stats(s, &cached, &requests);
    CHECK_INT(requests, req1 + 1);
    ag_agent_result_free(p.res);
    ag_agent_free(a);
    ag_docstore_free(s);
    env_close(&e);
}

/* agent.h's promise: a run's request options go with each model call of the
 * run. The node saw the session and the run's header on every call of a
 * research run (the passages' embeddings, the question's, the answer) and of
 * a map-reduce summary (every part, then the combination); a session key
 * that does not fit is refused, never cut */
static void run_options_on_every_call(void) {
    env e;
    ag_sim_config cfg = {.tokens = 6, .dim = 64};
    env_open(&e, &cfg, NULL);
    ag_request_options rq = {.session = "run-7", .headers = "X-Run: r7"};
    ag_run_options ro = {.request = &rq};
    /* research */
    ag_docstore *s = ag_docstore_new(200, 40);
    CHECK_INT(ag_docstore_add_text(s, "a.txt", "Volcanoes erupt molten rock called lava."), 0);
    CHECK_INT(ag_docstore_add_text(s, "b.txt", "Bread dough rises because yeast ferments sugar."), 0);
    ag_agent *r = ag_agent_research(e.c, "llama3.2", "nomic-embed-text", s, 1);
    ag_message q = {"user", "why does bread rise?", NULL, NULL, 0, NULL, NULL};
    out o = {0};
    ag_agent_callbacks cb = {o_chunk, o_done, &o};
    CHECK_INT(ag_agent_run_with(r, &q, 1, &ro, &cb, NULL), 0);
    CHECK(run_until(e.base, &o.dones, 1, 20));
    CHECK_INT(o.res ? o.res->status : -1, 0);
    int total = 0, embeds = 0;
    CHECK_INT(ag_sim_count_header(e.sim, "/api/", "X-Session-Id: run-7", &total), total);
    CHECK_INT(ag_sim_count_header(e.sim, "/api/", "X-Run: r7", NULL), total);
    ag_sim_count_header(e.sim, "/api/embed", "X-Run: r7", &embeds);
    CHECK(total >= 2 && embeds >= 1); /* (embeddings and the answer) */
    ag_agent_result_free(o.res);
    ag_agent_free(r);
    ag_docstore_free(s);
    /* a map-reduce summary */
    ag_agent *sm = ag_agent_summarizer(e.c, "llama3.2", 1024);
    char *text = malloc(40000);
    text[0] = 0;
    for (int i = 0; i < 300; i++) {
        char para[200];
        snprintf(para, sizeof para, "Paragraph %d tells how item %d was made, sold and used.%s", i, i, i % 10 == 9 ? "\n\n" : " ");
        strcat(text, para);
    }
    ag_message t = {"user", text, NULL, NULL, 0, NULL, NULL};
    out p = {0};
    ag_agent_callbacks cb2 = {o_chunk, o_done, &p};
    int before = 0;
    ag_sim_count_header(e.sim, "/api/chat", "X-Run: r7", &before);
    CHECK_INT(ag_agent_run_with(sm, &t, 1, &ro, &cb2, NULL), 0);
    CHECK(run_until(e.base, &p.dones, 1, 30));
    CHECK_INT(p.res ? p.res->status : -1, 0);
    CHECK(p.res && p.res->steps >= 5);
    int chats = 0;
    int with = ag_sim_count_header(e.sim, "/api/chat", "X-Run: r7", &chats);
    CHECK_INT(with, chats);
    CHECK_INT(ag_sim_count_header(e.sim, "/api/chat", "X-Session-Id: run-7", NULL), chats);
    CHECK(chats - before >= 5); /* every part and the combination */
    ag_agent_result_free(p.res);
    /* session keys: over 256 bytes, or with a line break, are refused at the start */
    char big[300];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ag_request_options bad = {.session = big};
    ag_run_options rb = {.request = &bad};
    out z = {0};
    ag_agent_callbacks cb3 = {o_chunk, o_done, &z};
    CHECK_INT(ag_agent_run_with(sm, &q, 1, &rb, &cb3, NULL), AG_EINVAL);
    bad.session = "two\r\nlines";
    CHECK_INT(ag_agent_run_with(sm, &q, 1, &rb, &cb3, NULL), AG_EINVAL);
    CHECK_INT(z.dones, 0);
    free(text);
    ag_agent_free(sm);
    env_close(&e);
}

static void summarize_map_reduce(void) {
    env e;
    ag_sim_config cfg = {.tokens = 20};
    env_open(&e, &cfg, NULL);
    ag_agent *a = ag_agent_summarizer(e.c, "llama3.2", 1024); /* about 512 tokens a part */
    char *text = malloc(40000);
    text[0] = 0;
    for (int i = 0; i < 300; i++) {
        char para[200];
        snprintf(para, sizeof para, "Paragraph %d tells how item %d was made, sold and used.%s", i, i,
                 i % 10 == 9 ? "\n\n" : " ");
        strcat(text, para);
    }
    out o = {0};
    CHECK_INT(ask(&e, a, text, &o), 0);
    CHECK_INT(o.res->status, 0);
    CHECK(o.res->steps >= 5); /* several parts, then the combination */
    CHECK(o.res->text_len > 0);
    CHECK_STR(o.text, o.res->text); /* only the final call streams */
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(body, "Combine them into a single summary") != NULL);
    ag_agent_result_free(o.res);
    /* a short text: one call */
    out p = {0};
    CHECK_INT(ask(&e, a, "A short text.", &p), 0);
    CHECK_INT(p.res->steps, 1);
    /* as the original: the conversation as it is, after the agent's prompt */
    const char *sb = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(sb, "\"messages\":[{\"role\":\"system\",\"content\":\"You condense text.") != NULL);
    CHECK(strstr(sb, "{\"role\":\"user\",\"content\":\"A short text.\"}]") != NULL);
    ag_agent_result_free(p.res);
    free(text);
    ag_agent_free(a);
    env_close(&e);
}

static void embedding_agent(void) {
    env e;
    ag_sim_config cfg = {.dim = 32};
    env_open(&e, &cfg, NULL);
    ag_agent *a = ag_agent_embedder(e.c, "nomic-embed-text");
    enum { N = 150 };
    char *texts[N];
    for (int i = 0; i < N; i++) {
        texts[i] = malloc(32);
        snprintf(texts[i], 32, "text number %d", i);
    }
    out o = {0};
    ag_agent_callbacks cb = {o_chunk, o_done, &o};
    CHECK_INT(ag_agent_embed_texts(a, (const char *const *)texts, N, &cb, NULL), 0);
    CHECK(run_until(e.base, &o.dones, 1, 20));
    CHECK_INT(o.res->status, 0);
    CHECK_INT(o.res->n_embeddings, N);
    CHECK_INT(o.res->dim, 32);
    CHECK_INT(o.res->steps, 3); /* batches of 64 */
    float want[32];
    for (int i = 0; i < N; i += 37) {
        ag_sim_embed_text(texts[i], 32, want);
        for (int j = 0; j < 32; j++) CHECK(fabsf(want[j] - o.res->embeddings[i * 32 + j]) < 1e-6f);
    }
    for (int i = 0; i < N; i++) free(texts[i]);
    ag_agent_result_free(o.res);
    /* run() on a conversation, as the original's EmbeddingAgent.run: the
     * contents joined by blank lines, one vector */
    out r1 = {0};
    ag_message conv[2] = {{"user", "first", NULL, NULL, 0, NULL, NULL},
                          {"assistant", "second", NULL, NULL, 0, NULL, NULL}};
    ag_agent_callbacks cb1 = {o_chunk, o_done, &r1};
    CHECK_INT(ag_agent_run(a, conv, 2, &cb1, NULL), 0);
    CHECK(run_until(e.base, &r1.dones, 1, 10));
    CHECK_INT(r1.res->status, 0);
    CHECK_INT(r1.res->n_embeddings, 1);
    CHECK_INT(r1.res->dim, 32);
    ag_sim_embed_text("first\n\nsecond", 32, want);
    for (int j = 0; j < 32; j++) CHECK(fabsf(want[j] - r1.res->embeddings[j]) < 1e-6f);
    ag_agent_result_free(r1.res);
    /* a blank text: an empty vector, and no request */
    ag_sim_stats before, after;
    ag_sim_get_stats(e.sim, &before);
    ag_agent_result *br = NULL;
    ag_message blank = {"user", "  \n ", NULL, NULL, 0, NULL, NULL};
    CHECK_INT(ag_agent_get_full_response(a, &blank, 1, NULL, &br), 0);
    ag_sim_get_stats(e.sim, &after);
    CHECK(br && br->n_embeddings == 1 && br->dim == 0 && br->embeddings == NULL);
    CHECK_INT(after.requests, before.requests);
    ag_agent_result_free(br);
    /* the blocking call on texts */
    const char *two[] = {"alpha", "beta"};
    ag_agent_result *er = NULL;
    CHECK_INT(ag_agent_embed_sync(a, two, 2, &er), 0);
    CHECK(er && er->n_embeddings == 2 && er->dim == 32);
    ag_agent_result_free(er);
    ag_agent_free(a);
    env_close(&e);
}

/* The original package's BaseAgent.run(messages, **options), compared on the
 * request body: the agent's prompt first, the caller's system message kept
 * after it, per-run options laid over the agent's, stream as asked */
/* A caller's session key travels whole (up to 256 bytes) to a node, as the
 * X-Session-Id header a gateway routes by (a task once cut it at 39 bytes) */
static void session_key_whole(void) {
    struct event_base *base = ag_sim_base_new();
    rawsrv srv;
    memset(&srv, 0, sizeof srv);
    static const char line[] = "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"done\":true}\n";
    char resp[400];
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n%s",
             sizeof line - 1, line);
    srv.resp[0] = resp;
    srv.nresp = 1;
    rawsrv_start(&srv, base);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", srv.port);
    ag_client_options co = {.host = host};
    ag_client *c = ag_client_new(base, &co, NULL);
    REQUIRE(c);
    ag_agent *a = ag_agent_chat(c, "llama3.2");
    char key[201];
    memset(key, 'k', 200);
    key[200] = 0;
    ag_request_options rq = {.session = key};
    ag_run_options ro = {.request = &rq};
    ag_message m = {"user", "hi", NULL, NULL, 0, NULL, NULL};
    out o = {0};
    ag_agent_callbacks cb = {o_chunk, o_done, &o};
    CHECK_INT(ag_agent_run_with(a, &m, 1, &ro, &cb, NULL), 0);
    CHECK(run_until(base, &o.dones, 1, 10));
    CHECK(o.res && o.res->status == 0);
    char want[240];
    snprintf(want, sizeof want, "X-Session-Id: %s\r\n", key);
    CHECK(strstr(srv.last_head, want) != NULL);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    ag_client_free(c);
    evconnlistener_free(srv.l);
    for (int i = 0; i < 5; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
}

static void run_options_like_the_original(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent_config cfg = {.model = "llama3.2", .system = "Agent prompt.",
                           .options_json = "{\"temperature\":0.7,\"num_ctx\":4096}"};
    ag_agent *a = ag_agent_new(e.c, &cfg);
    REQUIRE(a);
    ag_message msgs[2] = {{"system", "Caller system.", NULL, NULL, 0, NULL, NULL},
                          {"user", "Hello", NULL, NULL, 0, NULL, NULL}};
    ag_run_options ro = {.options_json = "{\"temperature\":0.2,\"num_predict\":5}", .no_stream = 1};
    ag_agent_result *res = NULL;
    CHECK_INT(ag_agent_get_full_response(a, msgs, 2, &ro, &res), 0);
    REQUIRE(res);
    CHECK_INT(res->eval_count, 5);
    CHECK(res->text_len > 0);
    const char *body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(body, "\"messages\":[{\"role\":\"system\",\"content\":\"Agent prompt.\"},"
                       "{\"role\":\"system\",\"content\":\"Caller system.\"},"
                       "{\"role\":\"user\",\"content\":\"Hello\"}]") != NULL);
    CHECK(strstr(body, "\"stream\":false") != NULL);
    CHECK(strstr(body, "\"options\":{\"num_ctx\":4096,\"temperature\":0.2,\"num_predict\":5}") != NULL);
    ag_agent_result_free(res);
    /* the agent's own options stay for the next run */
    CHECK_INT(ag_agent_get_full_response(a, msgs + 1, 1, NULL, &res), 0);
    body = ag_sim_last_body(e.sim, "/api/chat");
    CHECK(strstr(body, "\"options\":{\"temperature\":0.7,\"num_ctx\":4096}") != NULL);
    CHECK(strstr(body, "\"stream\":false") == NULL);
    ag_agent_result_free(res);
    /* a bad options object refuses the run */
    ag_run_options bad = {.options_json = "[1]"};
    CHECK_INT(ag_agent_get_full_response(a, msgs, 2, &bad, &res), AG_EINVAL);
    ag_agent_free(a);
    /* the research agent without documents answers from the model */
    ag_agent *r = ag_agent_research(e.c, "llama3.2", NULL, NULL, 0);
    REQUIRE(r);
    CHECK_INT(ag_agent_full_response(r, "What is a qubit?", &res), 0);
    CHECK(res && res->text_len > 0 && res->n_sources == 0);
    CHECK(strstr(ag_sim_last_body(e.sim, "/api/chat"), "You are a careful researcher.") != NULL);
    ag_agent_result_free(res);
    ag_agent_free(r);
    /* the reasoning agent asks for the steps in the answer */
    ag_agent *q = ag_agent_reasoning(e.c, "llama3.2");
    CHECK_INT(ag_agent_full_response(q, "Why?", &res), 0);
    CHECK(strstr(ag_sim_last_body(e.sim, "/api/chat"), "work through them in your answer") != NULL);
    ag_agent_result_free(res);
    ag_agent_free(q);
    env_close(&e);
}

static void cancel_task(void) {
    env e;
    ag_sim_config cfg = {.tokens = 50, .itl_ms = 1};
    env_open(&e, &cfg, NULL);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    out o = {0};
    o.cancel_at = 3;
    CHECK_INT(ask(&e, a, "cancel me", &o), 0);
    CHECK_INT(o.res->status, AG_ECANCELED);
    CHECK_INT(o.chunks, 3);
    run_for(e.base, 0.05);
    CHECK_INT(o.dones, 1);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    env_close(&e);
}

static void retry_whole_task(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_sim_set_fault(e.sim, "http503", 0, 2); /* every second generation answers 503 */
    ag_agent_config c = {.model = "llama3.2", .retries = 2, .retry_base = 0.01};
    ag_agent *a = ag_agent_new(e.c, &c);
    out warm = {0};
    CHECK_INT(ask(&e, a, "first", &warm), 0); /* generation 1: fine */
    CHECK_INT(warm.res->attempts, 1);
    out o = {0};
    CHECK_INT(ask(&e, a, "second", &o), 0); /* generation 2: 503, then 3: fine */
    CHECK_INT(o.res->status, 0);
    CHECK_INT(o.res->attempts, 2);
    ag_agent_result_free(warm.res);
    ag_agent_result_free(o.res);
    ag_agent_free(a);
    /* without retries the 503 is the answer */
    ag_sim_set_fault(e.sim, "http503", 0, 1);
    a = ag_agent_chat(e.c, "llama3.2");
    out p = {0};
    CHECK_INT(ask(&e, a, "third", &p), 0);
    CHECK_INT(p.res->status, AG_EBUSY);
    ag_agent_result_free(p.res);
    ag_agent_free(a);
    env_close(&e);
}

/* the same agent code on a pool */
static void agent_on_pool(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = 5};
    ag_sim *s1 = ag_sim_new(base, "127.0.0.1", 0, &cfg), *s2 = ag_sim_new(base, "127.0.0.1", 0, &cfg);
    char nodes[64];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,127.0.0.1:%d", ag_sim_port(s1), ag_sim_port(s2));
    ag_pool_options po = {.nodes = nodes};
    ag_client *c = ag_pool_new(base, &po, NULL);
    ag_agent *a = ag_agent_coding(c, "llama3.2");
    ag_agent_result *r;
    CHECK_INT(ag_agent_full_response(a, "code please", &r), 0);
    CHECK_INT(r->n_blocks, 1);
    CHECK(r->node != NULL);
    ag_agent_result_free(r);
    ag_agent_free(a);
    ag_client_free(c);
    ag_sim_free(s1);
    ag_sim_free(s2);
    event_base_free(base);
}

static int health_ok = -1;
static double health_ms;
static void on_health(int ok, const char *version, double ms, void *ud) {
    (void)version;
    (void)ud;
    health_ok = ok;
    health_ms = ms;
}
static void health_check(void) {
    env e;
    env_open(&e, NULL, NULL);
    health_ok = -1;
    CHECK_INT(ag_health_check(e.c, on_health, NULL), 0);
    for (int i = 0; i < 200 && health_ok < 0; i++) run_for(e.base, 0.01);
    CHECK_INT(health_ok, 1);
    CHECK(health_ms >= 0 && health_ms < 5000);
    env_close(&e);
}

T_MAIN(T(code_blocks), T(session_key_whole), T(think_tags), T(json_extract), T(conversation), T(cosine), T(backoff), T(chat_agent),
       T(coding_agent), T(reasoning_inline_tags), T(reasoning_thinking_fields), T(tools_loop), T(tool_null_result), T(tool_cancels_task),
       T(custom_hooks), T(research), T(summarize_map_reduce), T(run_options_on_every_call), T(embedding_agent), T(run_options_like_the_original), T(original_helpers), T(cancel_task),
       T(retry_whole_task), T(agent_on_pool), T(health_check))
