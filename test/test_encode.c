/* The request encoder: exact bodies, valid framing, raw JSON validated. */
#include "test.h"
#include <agents.h>
#include "core/internal.h"

static const ag__target T0 = {"127.0.0.1:11434", "", "agents-test", NULL, 0};

/* encode, then frame for one node, as a request's first attempt does */
#define ENC(name, ptype)                                                                           \
    static int enc_##name(const ag_alloc_funcs *a, const ag__target *t, const ptype *p, char **w,  \
                          size_t *n) {                                                             \
        ag__body b;                                                                                \
        int rc = ag__encode_##name(a, p, &b);                                                      \
        if (!rc) rc = ag__frame(a, t, &b, w, n);                                                   \
        ag__body_free(a, &b);                                                                      \
        return rc;                                                                                 \
    }
ENC(chat, ag_chat_params)
ENC(generate, ag_generate_params)
ENC(embed, ag_embed_params)

static int enc_admin(const ag_alloc_funcs *a, const ag__target *t, int op, const ag_model_params *p,
                     char **w, size_t *n, int *kind, int *is_head) {
    ag__body b;
    int rc = ag__encode_admin(a, op, p, &b);
    if (!rc) rc = ag__frame(a, t, &b, w, n);
    *kind = b.kind;
    *is_head = b.is_head;
    ag__body_free(a, &b);
    return rc;
}

/* splits wire into head and body; checks Content-Length */
static const char *body_of(const char *wire, size_t len) {
    const char *b = strstr(wire, "\r\n\r\n");
    REQUIRE(b);
    b += 4;
    const char *cl = strstr(wire, "Content-Length: ");
    if (cl && cl < b) CHECK_INT(strtoul(cl + 16, NULL, 10), len - (size_t)(b - wire));
    /* no CR or LF inside any header line: each line ends with CRLF */
    for (const char *p = wire; p < b - 2; p++) {
        if (*p == '\n') CHECK(p[-1] == '\r');
        if (*p == '\r') CHECK(p[1] == '\n');
    }
    return b;
}

static void chat_full(void) {
    const char *imgs[] = {"aGVsbG8="};
    ag_message m[3] = {
        {"system", "be \"brief\"\r\nX-Evil: 1", NULL, NULL, 0, NULL, NULL},
        {"user", "look", NULL, imgs, 1, NULL, NULL},
        {"tool", "22C", NULL, NULL, 0, NULL, "weather"},
    };
    ag_chat_params p = {.model = "llama3.2", .messages = m, .n_messages = 3};
    p.tools_json = " [ {\"type\": \"function\", \"function\": {\"name\": \"weather\"}} ] ";
    p.gen.format = "{\"type\":\"object\"}";
    p.gen.options_json = "{\"temperature\": 0.5, \"stop\": [\"a\"], \"num_predict\": -1}";
    p.gen.keep_alive = "5m";
    p.gen.think = "high";
    char *w;
    size_t n;
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
    CHECK(strncmp(w, "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nUser-Agent: agents-test\r\n"
                     "Accept: application/x-ndjson\r\nContent-Type: application/json\r\n", 126) == 0);
    CHECK_STR(body_of(w, n),
              "{\"model\":\"llama3.2\",\"messages\":["
              "{\"role\":\"system\",\"content\":\"be \\\"brief\\\"\\r\\nX-Evil: 1\"},"
              "{\"role\":\"user\",\"content\":\"look\",\"images\":[\"aGVsbG8=\"]},"
              "{\"role\":\"tool\",\"content\":\"22C\",\"tool_name\":\"weather\"}],"
              "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}],"
              "\"format\":{\"type\":\"object\"},"
              "\"options\":{\"temperature\":0.5,\"stop\":[\"a\"],\"num_predict\":-1},"
              "\"keep_alive\":\"5m\",\"think\":\"high\",\"stream\":true}");
    free(w);
}

static void chat_options(void) {
    ag_message m = {"assistant", NULL, "hmm", NULL, 0, "[{\"function\":{\"name\":\"f\",\"arguments\":{}}}]", NULL};
    ag_chat_params p = {.model = "m", .messages = &m, .n_messages = 1};
    p.gen.keep_alive = "0";
    p.gen.think = "false";
    p.gen.format = "json";
    p.gen.no_stream = 1;
    char *w;
    size_t n;
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
    CHECK(strstr(w, "Accept: application/json\r\n") != NULL);
    CHECK_STR(body_of(w, n), "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\","
                             "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{}}}]}],"
                             "\"format\":\"json\",\"keep_alive\":0,\"think\":false,\"stream\":false}");
    free(w);
    p.gen.keep_alive = "-1";
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
    CHECK(strstr(w, "\"keep_alive\":-1,") != NULL);
    free(w);
    p.gen.keep_alive = "1.5";
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
    CHECK(strstr(w, "\"keep_alive\":1.5,") != NULL);
    free(w);
}

static void invalid_inputs(void) {
    ag_message m = {"user", "x", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "m", .messages = &m, .n_messages = 1};
    char *w = NULL;
    size_t n;
    const char *bad[] = {"{", "{\"a\":1}}", "{\"a\" 1}", "[1,]", "", "{} {}", "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.tools_json = bad[i];
        CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), AG_EINVAL);
    }
    p.tools_json = NULL;
    p.gen.options_json = "[]"; /* options must be an object */
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), AG_EINVAL);
    p.gen.options_json = NULL;
    p.model = "";
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), AG_EINVAL);
    p.model = "m";
    m.role = NULL;
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), AG_EINVAL);
    ag_embed_params e = {.model = "m", .n_inputs = 0};
    CHECK_INT(enc_embed(NULL, &T0, &e, &w, &n), AG_EINVAL);
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_SHOW, NULL, &w, &n, &(int){0}, &(int){0}), AG_EINVAL);
    ag_model_params mp = {.model = "a"};
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_COPY, &mp, &w, &n, &(int){0}, &(int){0}), AG_EINVAL);
    CHECK_INT(enc_admin(NULL, &T0, 999, &mp, &w, &n, &(int){0}, &(int){0}), AG_EINVAL);
}

static void generate_full(void) {
    ag_generate_params p = {.model = "m", .prompt = "p", .suffix = "s", .system = "sys",
                            .template_ = "{{ .Prompt }}", .raw = 1};
    p.gen.options_json = "{\"seed\":42}";
    char *w;
    size_t n;
    ag__target t = {"[::1]:8080", "/ollama", "ua", "Bearer tok", 0};
    CHECK_INT(enc_generate(NULL, &t, &p, &w, &n), 0);
    CHECK(strncmp(w, "POST /ollama/api/generate HTTP/1.1\r\nHost: [::1]:8080\r\n", 53) == 0);
    CHECK(strstr(w, "\r\nUser-Agent: ua\r\nAuthorization: Bearer tok\r\n") != NULL);
    CHECK_STR(body_of(w, n), "{\"model\":\"m\",\"prompt\":\"p\",\"suffix\":\"s\",\"system\":\"sys\","
                             "\"template\":\"{{ .Prompt }}\",\"raw\":true,\"options\":{\"seed\":42},\"stream\":true}");
    free(w);
}

static void embed_forms(void) {
    const char *one[] = {"hello"};
    const char *two[] = {"a", "b\n"};
    ag_embed_params p = {.model = "e", .inputs = one, .n_inputs = 1, .truncate = -1};
    char *w;
    size_t n;
    CHECK_INT(enc_embed(NULL, &T0, &p, &w, &n), 0);
    CHECK_STR(body_of(w, n), "{\"model\":\"e\",\"input\":\"hello\"}");
    free(w);
    p.inputs = two;
    p.n_inputs = 2;
    p.truncate = 0;
    p.dimensions = 256;
    p.keep_alive = "10m";
    CHECK_INT(enc_embed(NULL, &T0, &p, &w, &n), 0);
    CHECK_STR(body_of(w, n), "{\"model\":\"e\",\"input\":[\"a\",\"b\\n\"],\"truncate\":false,\"dimensions\":256,\"keep_alive\":\"10m\"}");
    free(w);
    ag_embed_params l = {.model = "e", .inputs = one, .n_inputs = 1, .legacy = 1};
    CHECK_INT(enc_embed(NULL, &T0, &l, &w, &n), 0);
    CHECK(strncmp(w, "POST /api/embeddings ", 21) == 0);
    CHECK_STR(body_of(w, n), "{\"model\":\"e\",\"prompt\":\"hello\"}");
    free(w);
}

static void admin_forms(void) {
    char *w;
    size_t n;
    int kind, head;
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_TAGS, NULL, &w, &n, &kind, &head), 0);
    CHECK(strncmp(w, "GET /api/tags HTTP/1.1\r\n", 24) == 0);
    CHECK(strstr(w, "Content-Length") == NULL);
    CHECK_INT(kind, AG__K_TAGS);
    free(w);
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_PING, NULL, &w, &n, &kind, &head), 0);
    CHECK(strncmp(w, "HEAD / HTTP/1.1\r\n", 17) == 0);
    CHECK_INT(head, 1);
    free(w);
    ag_model_params mp = {.model = "a", .destination = "b"};
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_COPY, &mp, &w, &n, &kind, &head), 0);
    CHECK_STR(body_of(w, n), "{\"source\":\"a\",\"destination\":\"b\"}");
    free(w);
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_DELETE, &mp, &w, &n, &kind, &head), 0);
    CHECK(strncmp(w, "DELETE /api/delete HTTP/1.1\r\n", 29) == 0);
    free(w);
    mp.insecure = 1;
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_PULL, &mp, &w, &n, &kind, &head), 0);
    CHECK_STR(body_of(w, n), "{\"model\":\"a\",\"insecure\":true,\"stream\":true}");
    CHECK_INT(kind, AG__K_PULL);
    free(w);
    mp.verbose = 1;
    CHECK_INT(enc_admin(NULL, &T0, AG_OP_SHOW, &mp, &w, &n, &kind, &head), 0);
    CHECK_STR(body_of(w, n), "{\"model\":\"a\",\"verbose\":true}");
    free(w);
}

/* every string the user can pass, with every byte value, still gives valid JSON */
static void all_bytes(void) {
    char s[256];
    for (int i = 1; i < 256; i++) s[i - 1] = (char)i;
    s[255] = 0;
    ag_message m = {"user", s, NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = s, .messages = &m, .n_messages = 1};
    char *w;
    size_t n;
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
    const char *b = body_of(w, n);
    /* parse it back: it must be one valid value */
    yajl_handle h = yajl_alloc(NULL, NULL, NULL); /* strings validated: UTF-8 only */
    CHECK(yajl_parse(h, (const unsigned char *)b, strlen(b)) == yajl_status_ok);
    CHECK(yajl_complete_parse(h) == yajl_status_ok);
    yajl_free(h);
    for (const char *q = b; *q; q++) CHECK((unsigned char)*q >= 0x20);
    free(w);
}

/* ill-formed UTF-8 in a user's text: each bad byte becomes U+FFFD, so the
 * body stays valid JSON (it once went out raw, and strict servers said 400) */
static void invalid_utf8(void) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff\xfe" "b", "a\xEF\xBF\xBD\xEF\xBF\xBD" "b"},
        {"\xC0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong NUL */
        {"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong / */
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* a surrogate */
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
        {"x\xE2\x82", "x\xEF\xBF\xBD\xEF\xBF\xBD"},              /* cut at the end */
        {"\xF0\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong 4-byte form */
        {"\xF0\x8F\xBF\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong U+FFFF */
        {"\xF5\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* lead bytes F5-F7 */
        {"\xF7\xBF\xBF\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xE2\x82" "A", "\xEF\xBF\xBD\xEF\xBF\xBD" "A"},           /* a bad third byte */
        {"\xF0\x9F\x98" "A", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "A"}, /* a bad fourth byte */
        {"\xF0\x9F" "A\x80", "\xEF\xBF\xBD\xEF\xBF\xBD" "A\xEF\xBF\xBD"}, /* a bad third of four */
        {"\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9", "\xE2\x82\xAC \xF0\x9F\x98\x80 \xC3\xA9"}, /* valid */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ag_message m = {"user", cases[i].in, NULL, NULL, 0, NULL, NULL};
        ag_chat_params p = {.model = "m\xff", .messages = &m, .n_messages = 1};
        char *w;
        size_t n;
        CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
        const char *b = body_of(w, n);
        char want[256];
        snprintf(want, sizeof want,
                 "{\"model\":\"m\xEF\xBF\xBD\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
                 "\"stream\":true}",
                 cases[i].out);
        CHECK_STR(b, want);
        yajl_handle h = yajl_alloc(NULL, NULL, NULL); /* validates UTF-8 */
        CHECK(yajl_parse(h, (const unsigned char *)b, strlen(b)) == yajl_status_ok);
        CHECK(yajl_complete_parse(h) == yajl_status_ok);
        yajl_free(h);
        free(w);
    }
    /* long text goes through the heap path */
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[1000] = (char)0xff;
    ag_message m = {"user", big, NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "m", .messages = &m, .n_messages = 1};
    char *w;
    size_t n;
    CHECK_INT(enc_chat(NULL, &T0, &p, &w, &n), 0);
    CHECK(strstr(body_of(w, n), "aaa\xEF\xBF\xBD" "aaa") != NULL);
    free(w);
}

/* JSON string literals written by hand (the tool log, error bodies) */
static void buf_json(void) {
    ag__buf b = {0};
    const char in[] = "a\"b\\c\n\t\x01\xff\xE2\x82\xAC";
    CHECK_INT(ag__buf_json(NULL, &b, in, sizeof in - 1), 0);
    CHECK_STR(b.p, "\"a\\\"b\\\\c\\n\\t\\u0001\xEF\xBF\xBD\xE2\x82\xAC\"");
    yajl_handle h = yajl_alloc(NULL, NULL, NULL); /* valid JSON, UTF-8 checked */
    CHECK(yajl_parse(h, (const unsigned char *)b.p, b.len) == yajl_status_ok);
    CHECK(yajl_complete_parse(h) == yajl_status_ok);
    yajl_free(h);
    ag__buf_free(NULL, &b);
}

T_MAIN(T(chat_full), T(chat_options), T(invalid_inputs), T(generate_full), T(embed_forms),
       T(admin_forms), T(all_bytes),
       T(invalid_utf8), T(buf_json))
