/* The response decoders: every fixture replayed at every chunk size from 1
 * byte up, every decoded field asserted. */
#include "test.h"
#include <agents.h>
#include "core/internal.h"

#ifndef FIXTURES
#define FIXTURES "../shared/fixtures"
#endif

typedef struct got {
    char content[8192], thinking[4096], tools[1024], progress[2048];
    int n_content, n_thinking, n_tools, n_progress, stop_after;
} got;

static int sink(void *ctx, const ag_chunk *ch) {
    got *g = ctx;
    switch (ch->kind) {
    case AG_CHUNK_CONTENT:
        strncat(g->content, ch->text, ch->len);
        g->n_content++;
        break;
    case AG_CHUNK_THINKING:
        strncat(g->thinking, ch->text, ch->len);
        g->n_thinking++;
        break;
    case AG_CHUNK_TOOL_CALL: {
        char t[512];
        snprintf(t, sizeof t, "%d:%.*s%.*s;", ch->index, (int)ch->name_len, ch->name,
                 (int)ch->arguments_len, ch->arguments_json);
        strcat(g->tools, t);
        g->n_tools++;
        break;
    }
    case AG_CHUNK_PROGRESS: {
        char t[256];
        snprintf(t, sizeof t, "%.*s/%lld/%lld;", (int)ch->len, ch->text, (long long)ch->total,
                 (long long)ch->completed);
        strcat(g->progress, t);
        g->n_progress++;
        break;
    }
    }
    if (g->stop_after && g->n_content >= g->stop_after) return 1;
    return 0;
}

typedef void (*check_fn)(const ag__dec *d, const got *g, int rc, int chunk);
static int oai_mode; /* 0: Ollama, 1: OpenAI whole JSON, 2: OpenAI SSE */

/* Replays body at every chunk size; check() sees the outcome each time. */
static void replay(int kind, const char *body, size_t len, check_fn check) {
    for (size_t k = 1; k <= len + 1; k++) {
        ag__dec d;
        got g;
        memset(&g, 0, sizeof g);
        if (oai_mode) REQUIRE(ag__dec_init_oai(&d, kind, oai_mode == 2, NULL, 1 << 20, sink, &g) == 0);
        else REQUIRE(ag__dec_init(&d, kind, NULL, 1 << 20, sink, &g) == 0);
        int rc = 0;
        for (size_t off = 0; off < len && !rc; off += k)
            rc = ag__dec_feed(&d, body + off, off + k > len ? len - off : k);
        if (!rc) rc = ag__dec_finish(&d);
        int before = t_failures;
        check(&d, &g, rc, (int)k);
        ag__dec_free(&d);
        if (t_failures != before) {
            fprintf(stderr, "  (at chunk size %zu)\n", k);
            return;
        }
    }
}

static char *fixture(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    char *b = t_read_file(path, len);
    if (!b) fprintf(stderr, "missing fixture %s\n", path);
    REQUIRE(b);
    return b;
}

/* ---- ../shared/fixtures ---- */
static void c_gemma(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "OK.");
    CHECK_INT(d->got_final, 1);
    CHECK_STR(d->model.p, "gemma3:latest");
    CHECK_STR(d->created_at.p, "2026-08-31T21:24:10.632534Z");
    CHECK_STR(d->done_reason.p, "stop");
    CHECK_INT(d->server.total_duration, 8785179500LL);
    CHECK_INT(d->server.load_duration, 7085390400LL);
    CHECK_INT(d->server.prompt_eval_count, 24);
    CHECK_INT(d->server.prompt_eval_duration, 1673361000LL);
    CHECK_INT(d->server.eval_count, 3);
    CHECK_INT(d->server.eval_duration, 23066000);
}
static void fx_gemma(void) {
    size_t n;
    char *b = fixture("chat-nostream-gemma3.json", &n);
    replay(AG__K_CHAT, b, n, c_gemma);
    free(b);
}

static void c_windows(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, " OK");
    CHECK_STR(d->created_at.p, "2026-08-31T21:29:47.0178503Z");
    CHECK_STR(d->model.p, "deepseek-coder-v2:16b");
    CHECK_INT(d->server.total_duration, 34996859700LL);
    CHECK_INT(d->server.eval_duration, 147947000);
}
static void fx_windows(void) {
    size_t n;
    char *b = fixture("chat-nostream-windows-timestamp.json", &n);
    replay(AG__K_CHAT, b, n, c_windows);
    free(b);
}

static char utf8_expect[1024];
static void c_utf8(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, utf8_expect);
    CHECK_INT(d->server.eval_count, 46);
    CHECK_STR(d->model.p, "qwen3:4b-instruct");
}
static void fx_utf8(void) {
    size_t n;
    char *b = fixture("chat-nostream-utf8.json", &n);
    /* the expected text: the content string with \n unescaped, as yajl does */
    const char *s = strstr(b, "\"content\":\"") + 11;
    size_t o = 0;
    while (*s != '"') {
        if (s[0] == '\\' && s[1] == 'n') { utf8_expect[o++] = '\n'; s += 2; }
        else utf8_expect[o++] = *s++;
    }
    utf8_expect[o] = 0;
    CHECK(strstr(utf8_expect, "\xF0\x9F") != NULL); /* the emoji survived */
    replay(AG__K_CHAT, b, n, c_utf8);
    free(b);
}

static void c_sparse(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "hi");
    CHECK_INT(g->n_content, 1);
    CHECK_INT(d->objects, 3);
    CHECK_INT(d->got_final, 1);
    CHECK_INT(d->server.total_duration, 2000000000LL);
    CHECK_INT(d->server.eval_duration, 1500000000LL);
    CHECK_INT(d->server.load_duration, 100000000LL);
    CHECK_INT(d->server.eval_count, 80);
}
static void fx_sparse(void) {
    size_t n;
    char *b = fixture("generate-stream-sparse.ndjson", &n);
    replay(AG__K_GENERATE, b, n, c_sparse);
    free(b);
}

static void c_thinking(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->thinking, "hmm more hmm");
    CHECK_STR(g->content, "Good morning.");
    CHECK_INT(g->n_thinking, 2);
    CHECK_INT(g->n_content, 2); /* empty strings are not chunks */
    CHECK_INT(d->objects, 5);
    CHECK_INT(d->got_final, 1);
    CHECK_INT(d->server.total_duration, 1);
    CHECK_INT(d->server.eval_count, -1);
}
static void fx_thinking(void) {
    size_t n;
    char *b = fixture("chat-stream-thinking-blankline.ndjson", &n);
    replay(AG__K_CHAT, b, n, c_thinking);
    free(b);
}

static void c_crlf(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "ab");
    CHECK_INT(d->got_final, 1);
    CHECK(!d->model.p || d->model.p[0] == 0);
}
static void fx_crlf(void) {
    size_t n;
    char *b = fixture("chat-stream-crlf.ndjson", &n);
    replay(AG__K_CHAT, b, n, c_crlf);
    free(b);
}

static void c_tool(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->tools, "0:get_weather{\"city\":\"London\"};");
    CHECK_INT(g->n_content, 0);
    CHECK_INT(d->server.eval_count, 42);
    CHECK_INT(d->server.total_duration, 1234567);
}
static void fx_toolcall(void) {
    size_t n;
    char *b = fixture("chat-stream-toolcall.ndjson", &n);
    replay(AG__K_CHAT, b, n, c_tool);
    free(b);
}

static void c_errline(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0); /* well-formed JSON: the request layer turns it into AG_ESERVER */
    CHECK_STR(g->content, "par");
    CHECK_STR(d->server_error.p, "model requires more system memory");
    CHECK_INT(d->got_final, 0);
}
static void fx_errline(void) {
    size_t n;
    char *b = fixture("chat-stream-error-line.ndjson", &n);
    replay(AG__K_CHAT, b, n, c_errline);
    free(b);
}

static void c_offset(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "Waves crash on silent shores");
    CHECK_STR(d->created_at.p, "2026-08-27T12:00:00.200000+00:00");
    CHECK_STR(d->model.p, "amazon.nova-micro-v1:0");
    CHECK_INT(d->server.prompt_eval_duration, 123456789);
    CHECK_INT(d->server.eval_count, 11);
}
static void fx_offset(void) {
    size_t n;
    char *b = fixture("generate-stream-offset-timestamp.ndjson", &n);
    replay(AG__K_GENERATE, b, n, c_offset);
    free(b);
}

/* ---- our own bodies ---- */
static const char embed_body[] =
    "{\"model\":\"all-minilm\",\"embeddings\":[[0.010071029,-0.0017594862,0.05007221,1.2e-05],"
    "[-0.5,0.25,1E2,-3.0e-3]],\"total_duration\":14143917,\"load_duration\":1019500,"
    "\"prompt_eval_count\":8}";
static void c_embed(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_INT(d->rows, 2);
    CHECK_INT(d->dim, 4);
    static const float want[] = {0.010071029f, -0.0017594862f, 0.05007221f, 1.2e-05f,
                                 -0.5f,        0.25f,          100.0f,      -0.003f};
    for (int i = 0; i < 8; i++) CHECK(d->vec[i] == want[i]);
    CHECK_INT(d->server.prompt_eval_count, 8);
    CHECK_INT(d->server.total_duration, 14143917);
}
static void embed(void) {
    replay(AG__K_EMBED, embed_body, strlen(embed_body), c_embed);
}

static const char legacy_body[] = "{\"embedding\":[0.5,-1.5,2.0e0]}";
static void c_legacy(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_INT(d->rows, 1);
    CHECK_INT(d->dim, 3);
    CHECK(d->vec[1] == -1.5f && d->vec[2] == 2.0f);
}
static void embed_legacy(void) {
    replay(AG__K_EMBED_LEGACY, legacy_body, strlen(legacy_body), c_legacy);
}

static void c_ragged(const ag__dec *d, const got *g, int rc, int k) {
    (void)d;
    (void)g;
    (void)k;
    CHECK_INT(rc, AG_EJSON);
}
static void embed_ragged(void) {
    const char *b = "{\"embeddings\":[[1,2,3],[1,2]]}";
    replay(AG__K_EMBED, b, strlen(b), c_ragged);
}

static void numbers(void) {
    extern double ag__parse_double(const char *s, size_t n);
    const char *cases[] = {"0", "-0", "1", "-1.5", "3.14159265358979", "1e-7", "1.2E+3",
                           "0.000123456789012345678", "123456789012345678901234", "1e308", "2.2250738585072014e-308",
                           "0.1", "-0.0017594862", "9007199254740993", "1e-30"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double want = strtod(cases[i], NULL);
        double got = ag__parse_double(cases[i], strlen(cases[i]));
        /* floats are what we keep: equal after rounding to float */
        t_checks++;
        if ((float)want != (float)got) {
            fprintf(stderr, "parse_double(%s) = %.17g, want %.17g\n", cases[i], got, want);
            t_failures++;
        }
    }
}

static const char tags_body[] =
    "{\"models\":[{\"name\":\"codellama:13b\",\"model\":\"codellama:13b\",\"modified_at\":"
    "\"2023-11-04T14:56:49.277302595-07:00\",\"size\":7365960935,\"digest\":\"9f438cb9cd58\","
    "\"details\":{\"format\":\"gguf\",\"family\":\"llama\",\"families\":null,\"parameter_size\":"
    "\"13B\",\"quantization_level\":\"Q4_0\"}},{\"name\":\"llama3:latest\",\"model\":"
    "\"llama3:latest\",\"size\":3825819519,\"digest\":\"fe938a131f40\",\"details\":{\"parent_model\":"
    "\"\",\"format\":\"gguf\",\"family\":\"llama\",\"families\":[\"llama\"],\"parameter_size\":\"8.0B\","
    "\"quantization_level\":\"Q4_0\"},\"extra\":{\"nested\":[1,{\"name\":\"x\"}]}}]}";
static void c_tags(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    REQUIRE(d->nmodels == 2);
    CHECK_STR(d->models[0].name, "codellama:13b");
    CHECK_STR(d->models[0].modified_at, "2023-11-04T14:56:49.277302595-07:00");
    CHECK_INT(d->models[0].size, 7365960935LL);
    CHECK_STR(d->models[0].parameter_size, "13B");
    CHECK_STR(d->models[0].quantization_level, "Q4_0");
    CHECK_STR(d->models[1].name, "llama3:latest");
    CHECK_STR(d->models[1].digest, "fe938a131f40");
    CHECK_STR(d->models[1].family, "llama");
    CHECK_STR(d->models[1].parent_model, "");
    CHECK_INT(d->models[1].size_vram, -1);
}
static void tags(void) {
    replay(AG__K_TAGS, tags_body, strlen(tags_body), c_tags);
}

static const char ps_body[] =
    "{\"models\":[{\"name\":\"mistral:latest\",\"model\":\"mistral:latest\",\"size\":5137025024,"
    "\"digest\":\"2ae6f6dd7a3d\",\"details\":{\"family\":\"llama\"},\"expires_at\":"
    "\"2024-06-04T14:38:31.83753-07:00\",\"size_vram\":5137025024}]}";
static void c_ps(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    REQUIRE(d->nmodels == 1);
    CHECK_STR(d->models[0].expires_at, "2024-06-04T14:38:31.83753-07:00");
    CHECK_INT(d->models[0].size_vram, 5137025024LL);
}
static void ps(void) {
    replay(AG__K_PS, ps_body, strlen(ps_body), c_ps);
}

static const char show_body[] =
    "{\"modelfile\":\"FROM x\\n\",\"parameters\":\"num_keep 24\",\"template\":\"{{ .Prompt }}\","
    "\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\",\"families\":[\"llama\"],"
    "\"parameter_size\":\"8.0B\",\"quantization_level\":\"Q4_0\"},\"model_info\":{\"general.architecture\":"
    "\"llama\",\"tokenizer.ggml.tokens\":[\"a\",\"b\"],\"x\":{\"capabilities\":[\"no\"]}},"
    "\"capabilities\":[\"completion\",\"vision\"]}";
static void c_show(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(d->show.modelfile, "FROM x\n");
    CHECK_STR(d->show.parameters, "num_keep 24");
    CHECK_STR(d->show.template_, "{{ .Prompt }}");
    CHECK_STR(d->show.family, "llama");
    CHECK_STR(d->show.parameter_size, "8.0B");
    CHECK_INT(d->ncaps, 2);
    if (d->ncaps == 2) {
        CHECK_STR(d->caps[0], "completion");
        CHECK_STR(d->caps[1], "vision");
    }
}
static void show(void) {
    replay(AG__K_SHOW, show_body, strlen(show_body), c_show);
}

static void c_version(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(d->version.p, "0.12.6");
}
static void version(void) {
    const char *b = "{\"version\":\"0.12.6\"}";
    replay(AG__K_VERSION, b, strlen(b), c_version);
}

static const char pull_body[] =
    "{\"status\":\"pulling manifest\"}\n"
    "{\"status\":\"pulling 6a0746a1ec1a\",\"digest\":\"sha256:6a07\",\"total\":2019393189,\"completed\":241970}\n"
    "{\"status\":\"verifying sha256 digest\"}\n{\"status\":\"success\"}\n";
static void c_pull(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_INT(g->n_progress, 4);
    CHECK_STR(g->progress, "pulling manifest/-1/-1;pulling 6a0746a1ec1a/2019393189/241970;"
                           "verifying sha256 digest/-1/-1;success/-1/-1;");
    CHECK_INT(d->got_final, 1);
}
static void pull(void) {
    replay(AG__K_PULL, pull_body, strlen(pull_body), c_pull);
}

static const char gen_ctx_body[] =
    "{\"model\":\"m\",\"response\":\"a\\u00e9\\\"\\n\\ud83c\\udf0d\",\"done\":true,\"context\":[1,2,-3,4000000000]}";
static void c_ctx(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "a\xc3\xa9\"\n\xf0\x9f\x8c\x8d");
    REQUIRE(d->nctx == 4);
    CHECK_INT(d->ctxv[2], -3);
    CHECK_INT(d->ctxv[3], 4000000000LL);
}
static void generate_context(void) {
    replay(AG__K_GENERATE, gen_ctx_body, strlen(gen_ctx_body), c_ctx);
}

static const char tools2_body[] =
    "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
    "{\"id\":\"call_1\",\"function\":{\"index\":0,\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":[true,null,{\"c\":\"d\"}]}}},"
    "{\"function\":{\"index\":1,\"name\":\"echo\",\"arguments\":\"{\\\"s\\\":1}\"}}]},\"done\":true}";
static void c_tools2(const ag__dec *d, const got *g, int rc, int k) {
    (void)d;
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->tools, "0:add{\"a\":1,\"b\":[true,null,{\"c\":\"d\"}]};1:echo{\"s\":1};");
}
static void tool_calls_many(void) {
    replay(AG__K_CHAT, tools2_body, strlen(tools2_body), c_tools2);
}

static void c_malformed(const ag__dec *d, const got *g, int rc, int k) {
    (void)d;
    (void)k;
    CHECK_INT(rc, AG_EJSON);
    CHECK_STR(g->content, "xy"); /* what came before the bad token was delivered */
}
static void malformed(void) {
    const char *b = "{\"message\":{\"content\":\"x\"},\"done\":false}\n{\"message\":{\"content\":\"y\"},\"done\":fal}\n";
    replay(AG__K_CHAT, b, strlen(b), c_malformed);
}

static void c_trunc(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, AG_EJSON); /* finish() sees the unfinished value */
    CHECK_INT(d->got_final, 0);
    CHECK_STR(g->content, "x");
}
static void truncated(void) {
    const char *b = "{\"message\":{\"content\":\"x\"},\"done\":false}\n{\"message\":{\"con";
    replay(AG__K_CHAT, b, strlen(b), c_trunc);
}

static void not_object(void) {
    ag__dec d;
    REQUIRE(ag__dec_init(&d, AG__K_CHAT, NULL, 1024, NULL, NULL) == 0);
    CHECK_INT(ag__dec_feed(&d, "[1,2]", 5), AG_EJSON);
    ag__dec_free(&d);
    REQUIRE(ag__dec_init(&d, AG__K_CHAT, NULL, 1024, NULL, NULL) == 0);
    CHECK_INT(ag__dec_feed(&d, "\"str\"", 5), AG_EJSON);
    ag__dec_free(&d);
}

/* a string longer than the cap ends the response, fed whole or byte by byte */
static void token_cap(void) {
    size_t n = 80000;
    char *b = malloc(n + 64);
    strcpy(b, "{\"message\":{\"content\":\"");
    size_t o = strlen(b);
    memset(b + o, 'a', n);
    strcpy(b + o + n, "\"},\"done\":true}");
    size_t len = strlen(b);
    size_t steps[] = {1, 1000, len};
    for (int s = 0; s < 3; s++) {
        ag__dec d;
        REQUIRE(ag__dec_init(&d, AG__K_CHAT, NULL, 1000, NULL, NULL) == 0);
        int rc = 0;
        for (size_t off = 0; off < len && !rc; off += steps[s])
            rc = ag__dec_feed(&d, b + off, off + steps[s] > len ? len - off : steps[s]);
        CHECK_INT(rc, AG_ETOOBIG);
        ag__dec_free(&d);
    }
    free(b);
}

/* the sink can stop the decoder (cancel from a chunk callback) */
static void stop_from_sink(void) {
    ag__dec d;
    got g;
    memset(&g, 0, sizeof g);
    g.stop_after = 1;
    REQUIRE(ag__dec_init(&d, AG__K_CHAT, NULL, 1024, sink, &g) == 0);
    const char *b = "{\"message\":{\"content\":\"a\"}}{\"message\":{\"content\":\"b\"}}";
    CHECK_INT(ag__dec_feed(&d, b, strlen(b)), 0);
    CHECK_INT(g.n_content, 1);
    CHECK_INT(d.stopped, 1);
    ag__dec_free(&d);
}

/* random bytes never crash the decoders (a quick smoke; the fuzzers go further) */
static void garbage(void) {
    unsigned seed = 12345;
    char buf[512];
    for (int kind = AG__K_CHAT; kind <= AG__K_PULL; kind++) {
        for (int it = 0; it < 300; it++) {
            size_t n = (size_t)(rand_r(&seed) % sizeof buf);
            for (size_t i = 0; i < n; i++) {
                static const char alphabet[] = "{}[]\":,0123456789.eE-+ truefalsenul\\abc\n";
                buf[i] = (rand_r(&seed) & 3) ? alphabet[rand_r(&seed) % (sizeof alphabet - 1)]
                                              : (char)rand_r(&seed);
            }
            ag__dec d;
            REQUIRE(ag__dec_init(&d, kind, NULL, 4096, NULL, NULL) == 0);
            if (ag__dec_feed(&d, buf, n) == 0) ag__dec_finish(&d);
            ag__dec_free(&d);
        }
    }
}

/* ---- the OpenAI-compatible dialect ---- */
#define CHUNK(x) "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0," x "}]}\n\n"
static const char oai_stream[] =
    ": a comment, then a keep-alive\n\n"
    CHUNK("\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null")
    CHUNK("\"delta\":{\"reasoning_content\":\"think\"},\"finish_reason\":null")
    "event: message\r\n"
    CHUNK("\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null")
    CHUNK("\"delta\":{\"content\":\"lo \\u00e9\"},\"finish_reason\":null")
    CHUNK("\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null")
    CHUNK("\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null")
    CHUNK("\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null")
    CHUNK("\"delta\":{},\"finish_reason\":\"tool_calls\"")
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\r\n\r\n"
    "data: [DONE]\n\n";

static void c_oai_stream(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "Hello \xc3\xa9");
    CHECK_STR(g->thinking, "think");
    CHECK_STR(g->tools, "0:get_weather{\"city\":\"Paris\"};");
    CHECK_STR(d->done_reason.p, "tool_calls");
    CHECK_INT(d->server.prompt_eval_count, 9);
    CHECK_INT(d->server.eval_count, 12);
    CHECK_INT(d->got_final, 1);
}
static void oai_chat_stream(void) {
    oai_mode = 2;
    replay(AG__K_CHAT, oai_stream, strlen(oai_stream), c_oai_stream);
    oai_mode = 0;
}

static void c_oai_truncated(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "Hello \xc3\xa9");
    CHECK_INT(d->got_final, 0); /* no [DONE], no finish_reason: the request layer says truncated */
}
static void oai_stream_cut(void) {
    oai_mode = 2;
    const char *cut = strstr(oai_stream, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\"");
    replay(AG__K_CHAT, oai_stream, (size_t)(cut - oai_stream), c_oai_truncated);
    oai_mode = 0;
}

static const char oai_error_stream[] = CHUNK("\"delta\":{\"content\":\"par\"},\"finish_reason\":null")
    "data: {\"error\":{\"message\":\"the model crashed\",\"type\":\"server_error\",\"code\":500}}\n\n";
static void c_oai_error(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "par");
    CHECK_STR(d->server_error.p, "the model crashed");
}
static void oai_stream_error(void) {
    oai_mode = 2;
    replay(AG__K_CHAT, oai_error_stream, strlen(oai_error_stream), c_oai_error);
    oai_mode = 0;
}

/* tool-call arguments that are not JSON become a JSON string (never raw
 * text a consumer would paste into its own output); indexes outside 0..7
 * are an error, not merged into one call */
#define TOOL(idx, args) CHUNK("\"delta\":{\"tool_calls\":[{\"index\":" idx ",\"function\":{\"name\":\"f\",\"arguments\":\"" args "\"}}]},\"finish_reason\":null")
static const char oai_bad_args[] = TOOL("0", "{not json") TOOL("1", "1},\\\"x\\\":{") TOOL("2", "{\\\"ok\\\": [1, 2]}")
    CHUNK("\"delta\":{},\"finish_reason\":\"tool_calls\"") "data: [DONE]\n\n";
static void c_oai_bad_args(const ag__dec *d, const got *g, int rc, int k) {
    (void)k, (void)d;
    CHECK_INT(rc, 0);
    CHECK_STR(g->tools, "0:f\"{not json\";1:f\"1},\\\"x\\\":{\";2:f{\"ok\":[1,2]};");
}
static void c_oai_bad_index(const ag__dec *d, const got *g, int rc, int k) {
    (void)k, (void)g;
    CHECK_INT(rc, AG_EJSON);
    CHECK(d->errmsg && strstr(d->errmsg, "index") != NULL);
}
static void oai_tool_args_hostile(void) {
    oai_mode = 2;
    replay(AG__K_CHAT, oai_bad_args, strlen(oai_bad_args), c_oai_bad_args);
    static const char *const idx[] = {TOOL("2147483647", "{}"), TOOL("-1", "{}"), TOOL("1e300", "{}"), TOOL("8", "{}"),
                                      TOOL("0.5", "{}")};
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        replay(AG__K_CHAT, idx[i], strlen(idx[i]), c_oai_bad_index);
    }
    oai_mode = 0;
}

static const char oai_whole[] =
    "{\"id\":\"c2\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Hi there\",\"tool_calls\":[{\"id\":\"x\",\"type\":\"function\",\"function\":"
    "{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":1}\"}}]},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,"
    "\"completion_tokens\":2}}";
static void c_oai_whole(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "Hi there");
    CHECK_STR(g->tools, "0:add{\"a\":1};");
    CHECK_INT(d->got_final, 1);
    CHECK_INT(d->server.eval_count, 2);
    CHECK_STR(d->done_reason.p, "stop");
}
static void oai_chat_whole(void) {
    oai_mode = 1;
    replay(AG__K_CHAT, oai_whole, strlen(oai_whole), c_oai_whole);
    oai_mode = 0;
}

static const char oai_completions[] =
    "data: {\"id\":\"x\",\"object\":\"text_completion\",\"choices\":[{\"text\":\"Once\",\"index\":0,\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"x\",\"choices\":[{\"text\":\" upon\",\"index\":0,\"finish_reason\":\"length\"}]}\n\n"
    "data: [DONE]\n\n";
static void c_oai_completions(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "Once upon");
    CHECK_STR(d->done_reason.p, "length");
    CHECK_INT(d->got_final, 1);
}
static void oai_completions_stream(void) {
    oai_mode = 2;
    replay(AG__K_GENERATE, oai_completions, strlen(oai_completions), c_oai_completions);
    oai_mode = 0;
}

static const char oai_embeddings[] =
    "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.5,-1.5]},"
    "{\"object\":\"embedding\",\"index\":1,\"embedding\":[2e0,0.25]}],\"model\":\"e\",\"usage\":{\"prompt_tokens\":4,\"total_tokens\":4}}";
static void c_oai_embed(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_INT(d->rows, 2);
    CHECK_INT(d->dim, 2);
    CHECK(d->vec[1] == -1.5f && d->vec[2] == 2.0f && d->vec[3] == 0.25f);
    CHECK_INT(d->server.prompt_eval_count, 4);
}
static void oai_embed(void) {
    oai_mode = 1;
    replay(AG__K_EMBED, oai_embeddings, strlen(oai_embeddings), c_oai_embed);
    oai_mode = 0;
}

static const char oai_models[] =
    "{\"object\":\"list\",\"data\":[{\"id\":\"llama-3.1-8b\",\"object\":\"model\",\"owned_by\":\"me\",\"meta\":{\"n_ctx\":8192}},"
    "{\"id\":\"qwen2.5\",\"object\":\"model\"}]}";
static void c_oai_models(const ag__dec *d, const got *g, int rc, int k) {
    (void)g;
    (void)k;
    CHECK_INT(rc, 0);
    REQUIRE(d->nmodels == 2);
    CHECK_STR(d->models[0].name, "llama-3.1-8b");
    CHECK_STR(d->models[1].model, "qwen2.5");
}
static void oai_models_list(void) {
    oai_mode = 1;
    replay(AG__K_TAGS, oai_models, strlen(oai_models), c_oai_models);
    oai_mode = 0;
}

/* ---- the token-line fast path: Ollama's usual streamed shape ----
 * Lines of that exact shape are read without yajl when a whole line is in
 * one feed; at chunk size 1 every line goes through yajl. Replaying at every
 * size checks that both paths give the same result. */
static const char fast_chat[] =
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.1Z\",\"message\":{\"role\":\"assistant\",\"content\":\"The \"},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.2Z\",\"message\":{\"role\":\"assistant\",\"content\":\"caf\xc3\xa9 \xf0\x9f\x98\x8a \"},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.3Z\",\"message\":{\"role\":\"assistant\",\"content\":\"a\\\"q\\\"\\n\"},\"done\":false}\r\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.4Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.4Z\",\"message\":{\"role\":\"assistant\",\"content\":\"t\\tx\\u00e9\\/\\\\ \"},\"done\":false}\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.4Z\",\"message\":{\"role\":\"assistant\",\"content\":\"0123456789abcdef0123456789\\r\\b\\f \"},\"done\":false}\n"
    "\n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.5Z\",\"message\":{\"role\":\"assistant\",\"content\":\"end\"},\"done\":false} \n"
    "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T10:00:00.6Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":5}\n"
    "  ";
static void c_fast_chat(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "The caf\xc3\xa9 \xf0\x9f\x98\x8a a\"q\"\nt\tx\xc3\xa9/\\ 0123456789abcdef0123456789\r\b\f end");
    CHECK_INT(g->n_content, 6); /* empty strings are not chunks */
    CHECK_INT(d->objects, 8);
    CHECK_INT(d->got_final, 1);
    CHECK_STR(d->model.p, "llama3.2");
    CHECK_STR(d->created_at.p, "2026-11-25T10:00:00.6Z");
    CHECK_INT(d->server.eval_count, 5);
}
static void fast_path_chat(void) {
    replay(AG__K_CHAT, fast_chat, sizeof fast_chat - 1, c_fast_chat);
}

static const char fast_gen[] =
    "{\"model\":\"m\",\"created_at\":\"t1\",\"response\":\"x\",\"done\":false}\n"
    "{\"model\":\"m\",\"created_at\":\"t2\",\"response\":\"y\",\"done\":false}\n"
    "{\"model\":\"m\",\"created_at\":\"t3\",\"response\":\"\",\"done\":true,\"context\":[1,2]}";
static void c_fast_gen(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, 0);
    CHECK_STR(g->content, "xy");
    CHECK_INT(d->objects, 3);
    CHECK_INT(d->got_final, 1);
    CHECK_INT(d->nctx, 2);
    CHECK_STR(d->created_at.p, "t3");
}
static void fast_path_generate(void) {
    replay(AG__K_GENERATE, fast_gen, sizeof fast_gen - 1, c_fast_gen);
}

/* what the fast path must not let through: bad UTF-8, a cut stream, garbage
 * after a line, a top-level non-object after the fast lines */
static const char fast_bad_utf8[] =
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"done\":false}\n"
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\xc3\x28\"},\"done\":false}\n";
static void c_bad_utf8(const ag__dec *d, const got *g, int rc, int k) {
    (void)d;
    (void)k;
    CHECK_INT(rc, AG_EJSON);
    CHECK_STR(g->content, "ok");
}
static const char fast_cut[] =
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}\n"
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"b\"},\"done\":false}\n"
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assis";
static void c_cut(const ag__dec *d, const got *g, int rc, int k) {
    (void)k;
    CHECK_INT(rc, AG_EJSON);
    CHECK_STR(g->content, "ab");
    CHECK_INT(d->got_final, 0);
}
static const char fast_trailing[] =
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}x\n";
static void c_trailing(const ag__dec *d, const got *g, int rc, int k) {
    (void)d;
    (void)g;
    (void)k;
    CHECK_INT(rc, AG_EJSON);
}
static const char fast_then_scalar[] =
    "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}\n"
    "tru";
static void fast_path_rejects(void) {
    replay(AG__K_CHAT, fast_bad_utf8, sizeof fast_bad_utf8 - 1, c_bad_utf8);
    replay(AG__K_CHAT, fast_cut, sizeof fast_cut - 1, c_cut);
    replay(AG__K_CHAT, fast_trailing, sizeof fast_trailing - 1, c_trailing);
    replay(AG__K_CHAT, fast_then_scalar, sizeof fast_then_scalar - 1, c_trailing);
}

/* the /api/embed fast path against yajl alone, on shapes it takes and ones it
 * leaves to yajl: the same vectors, figures and outcome */
static void embed_fast_vs_yajl(void) {
    static const char *bodies[] = {
        "{\"model\":\"e\",\"embeddings\":[[0.5,-1,2e-3,1E2,-0.0,123456789.123456789],[1,2,3,4,5,6]],\"total_duration\":7,\"load_duration\":8,\"prompt_eval_count\":9}",
        " { \"embeddings\" : [ [ 1 , 2 ] , [ 3 , 4 ] ] , \"model\" : \"e\" } \n",
        "{\"model\":\"e\",\"embeddings\":[]}",
        "{\"model\":\"e\",\"embeddings\":[[]]}",
        "{\"model\":\"e\",\"embeddings\":[[1,2],[3]]}",          /* ragged: an error either way */
        "{\"model\":\"e\",\"embeddings\":[[01]]}",               /* not JSON */
        "{\"model\":\"e\",\"embeddings\":[[1.]]}",
        "{\"model\":\"e\",\"embeddings\":[[1,]]}",
        "{\"model\":\"e\",\"embeddings\":[[1]],\"extra\":{\"a\":[1]}}", /* a key it does not read */
        "{\"model\":\"e\\u0041\",\"embeddings\":[[1]]}",        /* an escape */
        "{\"model\":\"e\",\"embeddings\":[[1]]}{\"model\":\"f\"}", /* two values */
        "{\"model\":\"e\",\"embeddings\":[[1]]",                 /* cut */
        "{}",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        const char *b = bodies[i];
        ag__dec x, y;
        REQUIRE(ag__dec_init(&x, AG__K_EMBED, NULL, 1 << 20, NULL, NULL) == 0);
        REQUIRE(ag__dec_init(&y, AG__K_EMBED, NULL, 1 << 20, NULL, NULL) == 0);
        y.ekeep = 0;
        for (size_t k = 0; k < strlen(b); k += 3) { /* in pieces */
            size_t m = strlen(b) - k < 3 ? strlen(b) - k : 3;
            ag__dec_feed(&x, b + k, m);
            ag__dec_feed(&y, b + k, m);
        }
        int rx = ag__dec_finish(&x), ry = ag__dec_finish(&y);
        t_checks++;
        if (rx != ry || x.nvec != y.nvec || x.rows != y.rows || x.dim != y.dim || strcmp(x.model.p ? x.model.p : "", y.model.p ? y.model.p : "") ||
            x.server.total_duration != y.server.total_duration ||
            (x.nvec && memcmp(x.vec, y.vec, x.nvec * sizeof(float)))) {
            fprintf(stderr, "body %zu: fast %d (%zu floats) vs yajl %d (%zu floats)\n", i, rx, x.nvec, ry, y.nvec);
            t_failures++;
        }
        ag__dec_free(&x);
        ag__dec_free(&y);
    }
}

T_MAIN(T(fx_gemma), T(fx_windows), T(fx_utf8), T(fx_sparse), T(fx_thinking), T(fx_crlf),
       T(fx_toolcall), T(fx_errline), T(fx_offset), T(embed), T(embed_legacy), T(embed_ragged),
       T(numbers), T(tags), T(ps), T(show), T(version), T(pull), T(generate_context),
       T(tool_calls_many), T(malformed), T(truncated), T(not_object), T(token_cap),
       T(stop_from_sink), T(garbage), T(oai_chat_stream), T(oai_tool_args_hostile), T(oai_stream_cut), T(oai_stream_error),
       T(oai_chat_whole), T(oai_completions_stream), T(oai_embed), T(oai_models_list),
       T(fast_path_chat), T(fast_path_generate), T(fast_path_rejects), T(embed_fast_vs_yajl))
