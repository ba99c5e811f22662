/* HTTP edge cases against a scripted server: 1xx, chunk extensions and
 * trailers, close-delimited bodies, a keep-alive connection the server closed,
 * proxies' non-JSON errors, garbage, invalid UTF-8. */
#include "support.h"
#include "rawsrv.h"

typedef struct one {
    struct event_base *base;
    rawsrv srv;
    ag_client *c;
} one;

static void one_open(one *o, int nresp, const char **resp) {
    memset(o, 0, sizeof *o);
    o->base = ag_sim_base_new();
    for (int i = 0; i < nresp; i++) o->srv.resp[i] = resp[i];
    o->srv.nresp = nresp;
    rawsrv_start(&o->srv, o->base);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", o->srv.port);
    ag_client_options co = {.host = host, .idle_timeout = 5};
    o->c = ag_client_new(o->base, &co, NULL);
    REQUIRE(o->c);
}

static void one_close(one *o) {
    ag_client_free(o->c);
    event_base_loop(o->base, EVLOOP_NONBLOCK);
    evconnlistener_free(o->srv.l);
    event_base_free(o->base);
}

static int version_of(one *o, ag_sync_out *out) {
    return ag_admin_sync(o->c, AG_OP_VERSION, NULL, NULL, NULL, out);
}

#define JSONV "{\"version\":\"9.9.9\"}"

static void informational(void) {
    const char *r[] = {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n" JSONV};
    one o;
    one_open(&o, 1, r);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), 0);
    CHECK_STR(out.result->version, "9.9.9");
    CHECK_INT(out.result->http_status, 200);
    ag_sync_out_free(&out);
    one_close(&o);
}

static void chunk_ext_trailers(void) {
    const char *r[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
                       "5;name=value\r\n{\"ver\r\n"
                       "e;x\r\nsion\":\"9.9.9\"}\r\n"
                       "0\r\nX-T: done\r\n\r\n"};
    one o;
    one_open(&o, 1, r);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), 0);
    CHECK_STR(out.result->version, "9.9.9");
    ag_sync_out_free(&out);
    /* and the connection is reused afterwards */
    CHECK_INT(version_of(&o, &out), 0);
    ag_sync_out_free(&out);
    CHECK_INT(o.srv.conns, 1);
    one_close(&o);
}

static void close_delimited(void) {
    const char *r[] = {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" JSONV};
    one o;
    one_open(&o, 1, r);
    o.srv.close_after = 1;
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), 0);
    CHECK_STR(out.result->version, "9.9.9");
    ag_sync_out_free(&out);
    CHECK_INT(version_of(&o, &out), 0); /* a new connection */
    ag_sync_out_free(&out);
    CHECK_INT(o.srv.conns, 2);
    one_close(&o);
}

/* the server keeps the connection after the first answer, then closes it as
 * the second request arrives: the request is retried once, transparently */
static void stale_keepalive(void) {
    const char *r[] = {"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n" JSONV, NULL,
                       "HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n" JSONV};
    for (int rst = 0; rst <= 1; rst++) {
        one o;
        one_open(&o, 3, r);
        o.srv.rst = rst;
        ag_sync_out out;
        CHECK_INT(version_of(&o, &out), 0);
        ag_sync_out_free(&out);
        CHECK_INT(version_of(&o, &out), 0);
        CHECK_STR(out.result->version, "9.9.9");
        ag_sync_out_free(&out);
        ag_client_stats st;
        ag_client_get_stats(o.c, &st);
        CHECK_INT(st.retries_stale, 1);
        CHECK_INT(o.srv.conns, 2);
        one_close(&o);
    }
}

/* but a fresh connection that dies is not retried (it was no stale socket) */
static void fresh_dies(void) {
    const char *r[] = {NULL};
    one o;
    one_open(&o, 1, r);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), AG_ECONNRESET);
    CHECK(strstr(out.result->error, "before answering"));
    /* the request was sent: the error names that phase (it once said "connect") */
    CHECK(strstr(out.result->error, "(in phase waiting for the answer)"));
    ag_sync_out_free(&out);
    CHECK_INT(o.srv.requests, 1);
    /* nothing listening: the connect phase */
    int port = o.srv.port;
    evconnlistener_free(o.srv.l);
    o.srv.l = NULL;
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    ag_client_options co = {.host = host};
    ag_client *c = ag_client_new(o.base, &co, NULL);
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), AG_ECONNREFUSED);
    CHECK(strstr(out.result->error, "(in phase connect)"));
    ag_sync_out_free(&out);
    ag_client_free(c);
    ag_client_free(o.c);
    event_base_loop(o.base, EVLOOP_NONBLOCK);
    event_base_free(o.base);
}

static void proxy_html(void) {
    const char *r[] = {("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 54\r\n\r\n"
                        "<html><body>\r\n<h1>502 Bad Gateway</h1>\r\n</body></html>"),
                       "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                       "HTTP/1.1 400 Bad Request\r\nContent-Length: 41\r\n\r\n{\"error\":\"invalid character 'x' in JSON\"}"};
    one o;
    one_open(&o, 3, r);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), AG_EHTTP);
    CHECK_STR(out.result->error, "HTTP 502: <html><body>  <h1>502 Bad Gateway</h1>  </body></html>");
    CHECK_INT(out.result->http_status, 502);
    ag_sync_out_free(&out);
    CHECK_INT(version_of(&o, &out), AG_EHTTP);
    CHECK_STR(out.result->error, "HTTP 500 with an empty body");
    ag_sync_out_free(&out);
    CHECK_INT(version_of(&o, &out), AG_EBADREQUEST);
    CHECK_STR(out.result->error, "HTTP 400: invalid character 'x' in JSON");
    ag_sync_out_free(&out);
    one_close(&o);
}

static void garbage(void) {
    const char *r[] = {"HELLO THERE\r\n\r\n"};
    one o;
    one_open(&o, 1, r);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), AG_EPROTO);
    CHECK(strstr(out.result->error, "HTTP parse error"));
    ag_sync_out_free(&out);
    one_close(&o);
}

static void bad_utf8(void) {
    static char resp[256];
    const char *body = "{\"message\":{\"content\":\"ok \xff\xfe\"},\"done\":true}\n";
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    const char *r[] = {resp};
    one o;
    one_open(&o, 1, r);
    ag_message m = {"user", "x", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "m", .messages = &m, .n_messages = 1};
    ag_sync_out out;
    CHECK_INT(ag_chat_sync(o.c, &p, NULL, NULL, &out), AG_EJSON);
    CHECK(strstr(out.result->error, "UTF8"));
    ag_sync_out_free(&out);
    one_close(&o);
}

static void empty_body(void) {
    const char *r[] = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    one o;
    one_open(&o, 1, r);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), AG_ETRUNCATED);
    ag_sync_out_free(&out);
    one_close(&o);
}

/* the idle timeout fires on a server that answers one byte, then nothing */
static void idle_after_bytes(void) {
    const char *r[] = {"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n{"};
    one o;
    one_open(&o, 1, r);
    ag_client_free(o.c);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", o.srv.port);
    ag_client_options co = {.host = host, .idle_timeout = 0.2};
    o.c = ag_client_new(o.base, &co, NULL);
    ag_sync_out out;
    CHECK_INT(version_of(&o, &out), AG_EIDLE);
    ag_sync_out_free(&out);
    one_close(&o);
}

/* a request's extra headers reach the node in its head, CRLF-framed, before
 * the blank line */
static void extra_headers(void) {
    const char *r[] = {"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n" JSONV};
    one o;
    one_open(&o, 1, r);
    ag_request_options ro = {.headers = "X-Request-Id: abc-123\ntraceparent: 00-ab-cd-01"};
    ag_model_params mp;
    memset(&mp, 0, sizeof mp);
    mp.request = &ro;
    ag_sync_out out;
    CHECK_INT(ag_admin_sync(o.c, AG_OP_VERSION, &mp, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    CHECK(strstr(o.srv.last_head, "\r\nX-Request-Id: abc-123\r\ntraceparent: 00-ab-cd-01\r\n\r\n") != NULL);
    CHECK(strncmp(o.srv.last_head, "GET /api/version HTTP/1.1\r\n", 27) == 0);
    one_close(&o);
}

/* An OpenAI-compatible server as clients meet them: a streamed request
 * answered with one whole JSON object, tool arguments written with spaces,
 * and an SSE stream with comments and a retry field (raw mode gives only the
 * events' JSON) */
#define OAI_WHOLE "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0," \
    "\"message\":{\"role\":\"assistant\",\"content\":\"hello\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\"," \
    "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1, \\\"b\\\": [1, 2]}\"}}]},\"finish_reason\":\"tool_calls\"}]," \
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}"
#define OAI_EV1 "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":" \
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"
#define OAI_EV2 "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":" \
    "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
#define OAI_SSE ": keep-alive\nretry: 3000\n\n" OAI_EV1 OAI_EV2 "data: [DONE]\n\n"

typedef struct oai_got {
    int dones, status, raws, tools;
    char text[256], args[256], raw[2048];
} oai_got;
static void oai_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    (void)r;
    oai_got *g = ud;
    if (c->kind == AG_CHUNK_CONTENT) strncat(g->text, c->text, c->len);
    if (c->kind == AG_CHUNK_TOOL_CALL) {
        g->tools++;
        strncat(g->args, c->arguments_json, c->arguments_len);
    }
    if (c->kind == AG_CHUNK_RAW) {
        g->raws++;
        strncat(g->raw, c->text, c->len);
        strcat(g->raw, "|");
    }
}
static void oai_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    oai_got *g = ud;
    g->dones++;
    g->status = res->status;
}

static void openai_server_shapes(void) {
    char whole[2048], sse[2048];
    snprintf(whole, sizeof whole, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(OAI_WHOLE), OAI_WHOLE);
    snprintf(sse, sizeof sse, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(OAI_SSE), OAI_SSE);
    const char *r[] = {whole, sse};
    one o;
    memset(&o, 0, sizeof o);
    o.base = ag_sim_base_new();
    o.srv.resp[0] = r[0];
    o.srv.resp[1] = r[1];
    o.srv.nresp = 2;
    rawsrv_start(&o.srv, o.base);
    char host[80];
    snprintf(host, sizeof host, "openai+http://127.0.0.1:%d", o.srv.port);
    ag_client_options co = {.host = host, .idle_timeout = 5};
    o.c = ag_client_new(o.base, &co, NULL);
    REQUIRE(o.c);
    ag_message m = {"user", "x", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "m", .messages = &m, .n_messages = 1}; /* streamed */
    oai_got g;
    memset(&g, 0, sizeof g);
    ag_callbacks cb = {oai_chunk, oai_done, &g};
    CHECK_INT(ag_chat(o.c, &p, &cb, NULL), 0);
    REQUIRE(run_until(o.base, &g.dones, 1, 5));
    CHECK_INT(g.status, 0);
    CHECK_STR(g.text, "hello");
    CHECK_INT(g.tools, 1);
    CHECK_STR(g.args, "{\"a\":1,\"b\":[1,2]}");
    oai_got h;
    memset(&h, 0, sizeof h);
    ag_callbacks cb2 = {oai_chunk, oai_done, &h};
    ag_request *req = NULL;
    CHECK_INT(ag_chat(o.c, &p, &cb2, &req), 0);
    ag_request_set_raw(req, 1);
    REQUIRE(run_until(o.base, &h.dones, 1, 5));
    CHECK_INT(h.status, 0);
    CHECK_STR(h.text, "hi");
    CHECK_INT(h.raws, 2);
    CHECK(strstr(h.raw, "keep-alive") == NULL && strstr(h.raw, "retry") == NULL && strstr(h.raw, "DONE") == NULL);
    CHECK(strncmp(h.raw, "{\"id\":\"x\"", 9) == 0);
    one_close(&o);
}

T_MAIN(T(openai_server_shapes), T(informational), T(chunk_ext_trailers), T(close_delimited), T(stale_keepalive),
       T(fresh_dies), T(proxy_html), T(garbage), T(bad_utf8), T(empty_body), T(idle_after_bytes),
       T(extra_headers))
