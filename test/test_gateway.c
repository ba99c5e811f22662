/* The gateway in front of a pool of simulated nodes, all on one loop:
 * answers equal to a node's own, merged lists, failover before the first
 * byte, the error line after it, a node killed under load, malformed and
 * hostile clients, limits, disconnects, the dashboard and metrics. */
#include "support.h"
#include <agents.h>
#include "core/internal.h"
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
#include "rawsrv.h"
#include <yajl/yajl_tree.h>

#define MAXN 4

typedef struct gw {
    struct event_base *base;
    ag_sim *sim[MAXN];
    int port[MAXN];
    int n;
    ag_client *pool;
    ag_gateway *g;
    int gport;
    ag_client *via;    /* a local client pointed at the gateway */
    ag_client *direct; /* a local client pointed at node 0 */
} gw;

static void gw_open(gw *k, int n, const ag_sim_config *cfgs, const ag_pool_options *po,
                    const ag_gateway_options *go, const char *extra_node) {
    memset(k, 0, sizeof *k);
    k->base = ag_sim_base_new();
    k->n = n;
    char nodes[512] = "";
    for (int i = 0; i < n; i++) {
        k->sim[i] = ag_sim_new(k->base, "127.0.0.1", 0, cfgs ? &cfgs[i] : NULL);
        REQUIRE(k->sim[i]);
        k->port[i] = ag_sim_port(k->sim[i]);
        char one[64];
        snprintf(one, sizeof one, "%s127.0.0.1:%d", i ? "," : "", k->port[i]);
        strncat(nodes, one, sizeof nodes - strlen(nodes) - 1);
    }
    if (extra_node) {
        strncat(nodes, ",", sizeof nodes - strlen(nodes) - 1);
        strncat(nodes, extra_node, sizeof nodes - strlen(nodes) - 1);
    }
    ag_pool_options o;
    if (po) o = *po;
    else memset(&o, 0, sizeof o);
    o.nodes = nodes;
    int err = 0;
    k->pool = ag_pool_new(k->base, &o, &err);
    REQUIRE(k->pool);
    ag_gateway_options g;
    if (go) g = *go;
    else memset(&g, 0, sizeof g);
    g.listen = "127.0.0.1:0";
    k->g = ag_gateway_new(k->base, k->pool, &g, &err);
    if (!k->g) fprintf(stderr, "ag_gateway_new: %s\n", ag_strerror(err));
    REQUIRE(k->g);
    k->gport = ag_gateway_port(k->g);
    REQUIRE(k->gport > 0);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", k->gport);
    ag_client_options co;
    memset(&co, 0, sizeof co);
    co.host = host;
    k->via = ag_client_new(k->base, &co, &err);
    REQUIRE(k->via);
    snprintf(host, sizeof host, "127.0.0.1:%d", k->port[0]);
    co.host = host;
    k->direct = ag_client_new(k->base, &co, &err);
    REQUIRE(k->direct);
}

static void gw_close(gw *k) {
    ag_client_free(k->via);
    ag_client_free(k->direct);
    event_base_loop(k->base, EVLOOP_NONBLOCK);
    ag_gateway_free(k->g);
    ag_client_free(k->pool);
    event_base_loop(k->base, EVLOOP_NONBLOCK);
    for (int i = 0; i < k->n; i++)
        if (k->sim[i]) ag_sim_free(k->sim[i]);
    event_base_free(k->base);
}

static int wait_up(gw *k, int want) {
    for (int t = 0; t < 300; t++) {
        ag_node_info info[MAXN + 1];
        size_t n = ag_pool_nodes(k->pool, info, MAXN + 1);
        int up = 0;
        for (size_t i = 0; i < n && i < MAXN + 1; i++) up += info[i].state == AG_NODE_UP && info[i].n_models > 0;
        if (up >= want) return 1;
        run_for(k->base, 0.01);
    }
    return 0;
}

/* ---- a raw client: bytes in, every byte out until the server closes ---- */
typedef struct rawcli {
    struct bufferevent *bev;
    char *in;
    size_t len, cap;
    int closed;
} rawcli;

static void rc_read(struct bufferevent *bev, void *arg) {
    rawcli *r = arg;
    struct evbuffer *b = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(b);
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->in = realloc(r->in, r->cap);
    }
    evbuffer_remove(b, r->in + r->len, n);
    r->len += n;
    r->in[r->len] = 0;
}
static void rc_event(struct bufferevent *bev, short what, void *arg) {
    rawcli *r = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        rc_read(bev, arg);
        r->closed = 1;
    }
}
static void rc_open(rawcli *r, struct event_base *base, int port) {
    memset(r, 0, sizeof *r);
    r->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    REQUIRE(r->bev);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bufferevent_setcb(r->bev, rc_read, NULL, rc_event, r);
    REQUIRE(bufferevent_socket_connect(r->bev, (struct sockaddr *)&sa, sizeof sa) == 0);
    bufferevent_enable(r->bev, EV_READ | EV_WRITE);
}
static void rc_send(rawcli *r, const char *s, size_t n) {
    bufferevent_write(r->bev, s, n);
}
static void rc_close(rawcli *r) {
    if (r->bev) bufferevent_free(r->bev);
    free(r->in);
    memset(r, 0, sizeof *r);
}
static int rc_status(const rawcli *r) {
    return r->in && r->len > 12 && strncmp(r->in, "HTTP/1.1 ", 9) == 0 ? atoi(r->in + 9) : 0;
}
/* one request with Connection: close; the whole response back */
static char *post(gw *k, const char *path, const char *body, int *status) {
    rawcli r;
    rc_open(&r, k->base, k->gport);
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      path, strlen(body));
    rc_send(&r, head, (size_t)hl);
    rc_send(&r, body, strlen(body));
    run_until(k->base, &r.closed, 1, 10);
    *status = rc_status(&r);
    char *out = r.in ? strdup(r.in) : strdup("");
    rc_close(&r);
    return out;
}

/* de-chunks the body of a chunked response (in place into out) */
static size_t dechunk(const char *resp, char *out, size_t cap) {
    const char *p = strstr(resp, "\r\n\r\n");
    size_t o = 0;
    if (!p) return 0;
    p += 4;
    for (;;) {
        char *end;
        unsigned long n = strtoul(p, &end, 16);
        if (end == p || strncmp(end, "\r\n", 2) != 0) return (size_t)-1;
        if (n == 0) return o;
        p = end + 2;
        if (o + n >= cap) return (size_t)-1;
        memcpy(out + o, p, n);
        o += n;
        out[o] = 0;
        p += n + 2;
    }
}

/* drops the values that differ per answer: "created_at" and the durations */
static void normalize(char *s) {
    char *p;
    while ((p = strstr(s, "\"created_at\":\"")) != NULL) {
        char *v = p + 14, *q = strchr(v, '"');
        if (!q) return;
        memmove(p, q + 1, strlen(q + 1) + 1);
    }
    for (p = s; (p = strstr(p, "_duration\":")) != NULL;) {
        p += 11;
        char *q = p;
        while (*q >= '0' && *q <= '9') q++;
        memmove(p, q, strlen(q) + 1);
    }
}

/* ---- collecting answers through ag_client ---- */
typedef struct got {
    int done, status, http;
    char text[8192];
    size_t len;
    int64_t eval_count;
    size_t n_emb, dim;
    float emb0[8];
    size_t n_models;
    char models[8][64];
    char err[300];
} got;

static void g_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    got *g = ud;
    if ((ch->kind == AG_CHUNK_CONTENT || ch->kind == AG_CHUNK_BODY) && g->len + ch->len < sizeof g->text) {
        memcpy(g->text + g->len, ch->text, ch->len);
        g->len += ch->len;
        g->text[g->len] = 0;
    }
}
static void g_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    got *g = ud;
    g->status = res->status;
    g->http = res->http_status;
    g->eval_count = res->server.eval_count;
    g->n_emb = res->n_embeddings;
    g->dim = res->dim;
    if (res->embeddings && res->dim >= 8) memcpy(g->emb0, res->embeddings, sizeof g->emb0);
    g->n_models = res->n_models;
    for (size_t i = 0; i < res->n_models && i < 8; i++) snprintf(g->models[i], 64, "%s", res->models[i].name);
    if (res->error) snprintf(g->err, sizeof g->err, "%s", res->error);
    g->done++;
}

static int chat(ag_client *c, const char *model, const char *prompt, int n, int stream, got *g) {
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    char opt[64];
    snprintf(opt, sizeof opt, "{\"num_predict\":%d}", n);
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = model;
    p.messages = &m;
    p.n_messages = 1;
    p.gen.options_json = opt;
    p.gen.no_stream = !stream;
    ag_callbacks cb = {g_chunk, g_done, g};
    return ag_chat(c, &p, &cb, NULL);
}

/* ---- the same answers as a node gives ---- */
static void gw_chat_generate_embed_same_as_node(void) {
    gw k;
    gw_open(&k, 2, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 2));
    got a, b;
    for (int stream = 1; stream >= 0; stream--) {
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        CHECK_INT(chat(k.via, "llama3.2", "why is the sky blue", 12, stream, &a), 0);
        CHECK_INT(chat(k.direct, "llama3.2", "why is the sky blue", 12, stream, &b), 0);
        run_until(k.base, &a.done, 1, 10);
        run_until(k.base, &b.done, 1, 10);
        CHECK_INT(a.status, 0);
        CHECK_INT(b.status, 0);
        CHECK(a.len > 0);
        CHECK_STR(a.text, b.text);
        CHECK_INT(a.eval_count, 12);
    }
    /* embeddings: the same vectors */
    const char *in[] = {"alpha beta", "gamma"};
    ag_embed_params ep;
    memset(&ep, 0, sizeof ep);
    ep.model = "nomic-embed-text";
    ep.inputs = in;
    ep.n_inputs = 2;
    ep.truncate = -1;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    ag_callbacks ca = {NULL, g_done, &a}, cbb = {NULL, g_done, &b};
    CHECK_INT(ag_embed(k.via, &ep, &ca, NULL), 0);
    CHECK_INT(ag_embed(k.direct, &ep, &cbb, NULL), 0);
    run_until(k.base, &a.done, 1, 10);
    run_until(k.base, &b.done, 1, 10);
    CHECK_INT(a.status, 0);
    CHECK_INT(a.n_emb, 2);
    CHECK_INT(a.dim, 768);
    CHECK(memcmp(a.emb0, b.emb0, sizeof a.emb0) == 0);
    /* byte for byte: a streamed chat's body through the gateway and from the node */
    const char *body = "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"options\":{\"num_predict\":5}}";
    int st;
    char *resp = post(&k, "/api/chat", body, &st);
    CHECK_INT(st, 200);
    CHECK(strstr(resp, "Content-Type: application/x-ndjson\r\n") != NULL);
    CHECK(strstr(resp, "Transfer-Encoding: chunked\r\n") != NULL);
    static char via_body[16384], node_body[16384];
    size_t vl = dechunk(resp, via_body, sizeof via_body);
    CHECK(vl != (size_t)-1 && vl > 0);
    free(resp);
    ag_forward_params fp = {"POST", "/api/chat", body, strlen(body), "llama3.2", NULL, 1, NULL};
    memset(&b, 0, sizeof b);
    ag_callbacks cf = {g_chunk, g_done, &b};
    CHECK_INT(ag_forward(k.direct, &fp, &cf, NULL), 0);
    run_until(k.base, &b.done, 1, 10);
    snprintf(node_body, sizeof node_body, "%s", b.text);
    normalize(via_body);
    normalize(node_body);
    CHECK_STR(via_body, node_body);
    CHECK_INT(strlen(node_body) > 100, 1);
    gw_close(&k);
}

/* /api/tags and /api/ps merged across nodes, one entry per name */
static void gw_tags_merged(void) {
    ag_sim_config cfg[3];
    memset(cfg, 0, sizeof cfg);
    cfg[0].models = "llama3.2,qwen3:4b";
    cfg[1].models = "qwen3:4b,mistral";
    cfg[2].models = "phi4";
    gw k;
    gw_open(&k, 3, cfg, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 3));
    got a;
    memset(&a, 0, sizeof a);
    ag_callbacks cb = {NULL, g_done, &a};
    CHECK_INT(ag_admin(k.via, AG_OP_TAGS, NULL, &cb, NULL), 0);
    run_until(k.base, &a.done, 1, 10);
    CHECK_INT(a.status, 0);
    CHECK_INT(a.n_models, 4);
    const char *want[] = {"llama3.2:latest", "qwen3:4b", "mistral:latest", "phi4:latest"};
    for (int i = 0; i < 4; i++) CHECK_STR(a.models[i], want[i]);
    /* a model one node has: routed there, never a 404 */
    got c;
    memset(&c, 0, sizeof c);
    CHECK_INT(chat(k.via, "phi4", "x", 3, 1, &c), 0);
    run_until(k.base, &c.done, 1, 10);
    CHECK_INT(c.status, 0);
    /* ps: loaded models of every node */
    memset(&a, 0, sizeof a);
    CHECK_INT(ag_admin(k.via, AG_OP_PS, NULL, &cb, NULL), 0);
    run_until(k.base, &a.done, 1, 10);
    CHECK_INT(a.status, 0);
    CHECK(a.n_models >= 1);
    /* version, show, HEAD / */
    memset(&a, 0, sizeof a);
    CHECK_INT(ag_admin(k.via, AG_OP_VERSION, NULL, &cb, NULL), 0);
    run_until(k.base, &a.done, 1, 10);
    CHECK_INT(a.status, 0);
    memset(&a, 0, sizeof a);
    ag_model_params mp = {"mistral", NULL, 0, 0, 0, NULL};
    CHECK_INT(ag_admin(k.via, AG_OP_SHOW, &mp, &cb, NULL), 0);
    run_until(k.base, &a.done, 1, 10);
    CHECK_INT(a.status, 0);
    memset(&a, 0, sizeof a);
    CHECK_INT(ag_admin(k.via, AG_OP_PING, NULL, &cb, NULL), 0);
    run_until(k.base, &a.done, 1, 10);
    CHECK_INT(a.status, 0);
    CHECK_INT(a.http, 200);
    /* a model no node has: 404 as Ollama says it */
    int st;
    char *resp = post(&k, "/api/chat", "{\"model\":\"nowhere\",\"messages\":[]}", &st);
    CHECK_INT(st, 404);
    CHECK(strstr(resp, "{\"error\":\"model \\\"nowhere\\\" not found, try pulling it first\"}") != NULL);
    free(resp);
    gw_close(&k);
}

/* the OpenAI-compatible routes: an OpenAI-dialect client through the gateway */
/* X-Session-Id: a client that names its session (or conversation) gets the
 * same node each time */
static char *raw(gw *k, const char *req, size_t len, double secs);
#define RAW(k, s) raw(k, s, sizeof(s) - 1, 5)

static void gw_session_header(void) {
    gw k;
    gw_open(&k, 3, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 3));
    ag_message m = {"user", "hello", NULL, NULL, 0, NULL, NULL};
    ag_request_options ro = {.headers = "X-Session-Id: chat-42"};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1, .request = &ro};
    for (int i = 0; i < 10; i++) {
        ag_sync_out o;
        CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), 0);
        ag_sync_out_free(&o);
    }
    ag_node_info info[3];
    size_t n = ag_pool_nodes(k.pool, info, 3);
    int holders = 0;
    uint64_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        holders += info[i].affinity_hits > 0;
        hits += info[i].affinity_hits;
    }
    CHECK_INT(holders, 1);
    CHECK_INT(hits, 10);
    /* ag_request_options.session on a client of the gateway: sent as the header */
    ag_request_options rs = {.session = "chat-43"};
    p.request = &rs;
    for (int i = 0; i < 6; i++) {
        ag_sync_out o;
        CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), 0);
        ag_sync_out_free(&o);
    }
    p.request = &ro;
    n = ag_pool_nodes(k.pool, info, 3);
    hits = 0;
    for (size_t i = 0; i < n; i++) hits += info[i].affinity_hits;
    CHECK_INT(hits, 16);
    rs.session = "bad\r\nkey";
    p.request = &rs;
    ag_sync_out bad;
    CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &bad), AG_EINVAL);
    ag_sync_out_free(&bad);
    p.request = &ro;
    /* the figures: /metrics and the dashboard's JSON */
    char *resp = RAW(&k, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(resp, "agents_node_affinity_hits_total{node=") != NULL);
    CHECK(strstr(resp, "# TYPE agents_node_sessions gauge") != NULL);
    CHECK(strstr(resp, "# TYPE agents_node_prefix_hits_total counter") != NULL);
    free(resp);
    resp = RAW(&k, "GET /dashboard.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(resp, "\"affinity_hits\":") != NULL);
    CHECK(strstr(resp, "\"sessions\":1,") != NULL || strstr(resp, "\"sessions\":2,") != NULL); /* two keys */
    free(resp);
    /* without a header, a long conversation goes back to its prefix's node */
    char sys[1500];
    memset(sys, 'g', sizeof sys - 1);
    sys[sizeof sys - 1] = 0;
    ag_message conv[3] = {{.role = "system", .content = sys}, {.role = "user", .content = "one"},
                          {.role = "user", .content = "two"}};
    ag_chat_params cp = {.model = "llama3.2", .messages = conv, .n_messages = 2};
    for (int i = 0; i < 6; i++) {
        ag_sync_out o;
        cp.n_messages = 2 + (size_t)(i % 2);
        CHECK_INT(ag_chat_sync(k.via, &cp, NULL, NULL, &o), 0);
        ag_sync_out_free(&o);
    }
    n = ag_pool_nodes(k.pool, info, 3);
    uint64_t phits = 0;
    for (size_t i = 0; i < n; i++) phits += info[i].prefix_hits;
    CHECK_INT(phits, 5);
    gw_close(&k);
}

/* Ollama's API from a cluster whose nodes all speak the OpenAI-compatible
 * API: the gateway translates (an Ollama client sees Ollama's answers) */
static void gw_translates(void) {
    ag_sim_config cfg[2];
    memset(cfg, 0, sizeof cfg);
    cfg[0].api = cfg[1].api = 1;
    cfg[0].tokens = cfg[1].tokens = 7;
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.client.api = AG_API_OPENAI;
    gw k;
    gw_open(&k, 2, cfg, &po, NULL, NULL);
    REQUIRE(wait_up(&k, 2));
    ag_message m = {"user", "translate me", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_sync_out o;
    CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), 0);
    char want[2048] = "";
    for (int i = 0; i < 7; i++) strcat(want, ag_sim_token("llama3.2", "translate me", i));
    CHECK_STR(o.text, want);
    CHECK(o.result && o.result->server.eval_count == 7 && o.result->done_reason && !strcmp(o.result->done_reason, "stop"));
    ag_sync_out_free(&o);
    p.gen.no_stream = 1; /* a whole answer */
    CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), 0);
    CHECK_STR(o.text, want);
    ag_sync_out_free(&o);
    ag_generate_params gp = {.model = "llama3.2", .prompt = "translate me"};
    CHECK_INT(ag_generate_sync(k.via, &gp, NULL, NULL, &o), 0);
    CHECK(o.text && *o.text);
    ag_sync_out_free(&o);
    /* images (chat's and generate's) go as OpenAI's content parts; a
     * generate with an image or a system prompt as a chat */
    const char *img[] = {"iVBORw0KGgoAAAA="};
    ag_generate_params gi = {.model = "llama3.2", .prompt = "describe", .system = "briefly", .images = img, .n_images = 1};
    CHECK_INT(ag_generate_sync(k.via, &gi, NULL, NULL, &o), 0);
    want[0] = 0;
    for (int i = 0; i < 7; i++) strcat(want, ag_sim_token("llama3.2", "describe", i));
    CHECK_STR(o.text, want);
    ag_sync_out_free(&o);
    const char *b0 = ag_sim_last_body(k.sim[0], "/v1/chat/completions"), *b1 = ag_sim_last_body(k.sim[1], "/v1/chat/completions");
    const char *parts = "{\"role\":\"system\",\"content\":\"briefly\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"describe\"},"
                        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgoAAAA=\"}}]}";
    CHECK((b0 && strstr(b0, parts)) || (b1 && strstr(b1, parts)));
    m.images = img;
    m.n_images = 1;
    CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), 0);
    ag_sync_out_free(&o);
    m.images = NULL;
    m.n_images = 0;
    b0 = ag_sim_last_body(k.sim[0], "/v1/chat/completions");
    b1 = ag_sim_last_body(k.sim[1], "/v1/chat/completions");
    CHECK((b0 && strstr(b0, "{\"type\":\"text\",\"text\":\"translate me\"},{\"type\":\"image_url\"")) ||
          (b1 && strstr(b1, "{\"type\":\"text\",\"text\":\"translate me\"},{\"type\":\"image_url\"")));
    const char *in[] = {"a", "b"};
    ag_embed_params ep = {.model = "nomic-embed-text", .inputs = in, .n_inputs = 2};
    CHECK_INT(ag_embed_sync(k.via, &ep, &o), 0);
    CHECK(o.result && o.result->n_embeddings == 2 && o.result->dim == 768);
    ag_sync_out_free(&o);
    CHECK_INT(ag_admin_sync(k.via, AG_OP_TAGS, NULL, NULL, NULL, &o), 0);
    CHECK(o.result && o.result->n_models == 3);
    ag_sync_out_free(&o);
    CHECK_INT(ag_admin_sync(k.via, AG_OP_VERSION, NULL, NULL, NULL, &o), 0);
    CHECK(o.result && o.result->version && !strcmp(o.result->version, ag_version()));
    ag_sync_out_free(&o);
    p.model = "nope";
    CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), AG_ENOTFOUND);
    ag_sync_out_free(&o);
    gw_close(&k);
}

static void gw_openai_routes(void) {
    ag_sim_config cfg[2];
    memset(cfg, 0, sizeof cfg);
    cfg[1].api = 1; /* one Ollama node (which serves /v1 too), one OpenAI-only node */
    gw k;
    gw_open(&k, 1, cfg, NULL, NULL, NULL);
    ag_sim *oai = ag_sim_new(k.base, "127.0.0.1", 0, &cfg[1]);
    REQUIRE(oai);
    k.sim[1] = oai; /* gw_close frees it */
    k.n = 2;
    char addr[80];
    snprintf(addr, sizeof addr, "openai+http://127.0.0.1:%d", ag_sim_port(oai));
    CHECK_INT(ag_pool_add_node(k.pool, addr), 0);
    REQUIRE(wait_up(&k, 2));
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", k.gport);
    ag_client_options co;
    memset(&co, 0, sizeof co);
    co.host = host;
    co.api = AG_API_OPENAI;
    int err;
    ag_client *o = ag_client_new(k.base, &co, &err);
    REQUIRE(o);
    for (int i = 0; i < 6; i++) { /* both kinds of node serve these */
        got a;
        memset(&a, 0, sizeof a);
        CHECK_INT(chat(o, "llama3.2", "why is the sky blue", 7, i % 2, &a), 0);
        run_until(k.base, &a.done, 1, 10);
        CHECK_INT(a.status, 0);
        char want[256] = "";
        for (int t = 0; t < 7; t++) strcat(want, ag_sim_token("llama3.2", "why is the sky blue", t));
        CHECK_STR(a.text, want);
    }
    got m;
    memset(&m, 0, sizeof m);
    ag_callbacks cb = {NULL, g_done, &m};
    CHECK_INT(ag_admin(o, AG_OP_TAGS, NULL, &cb, NULL), 0); /* /v1/models, merged */
    run_until(k.base, &m.done, 1, 10);
    CHECK_INT(m.status, 0);
    CHECK_INT(m.n_models, 3);
    ag_client_free(o);
    event_base_loop(k.base, EVLOOP_NONBLOCK);
    gw_close(&k);
}

/* ---- failover ---- */
/* a node that refuses and one that sends an error line first: every client
 * gets its whole answer from the good node, and never sees the failures */
static void failover_before_first_byte(const char *fault) {
    ag_sim_config cfg[2];
    memset(cfg, 0, sizeof cfg);
    cfg[0].fault = fault;
    gw k;
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.policy = AG_POLICY_ROUND_ROBIN;
    po.eject_after = 1000; /* keep the sick node in rotation */
    po.retry_budget = 3;
    gw_open(&k, 2, cfg, &po, NULL, "127.0.0.1:1");
    run_for(k.base, 0.2);
    enum { N = 30 };
    static got a[N];
    memset(a, 0, sizeof a);
    int done = 0;
    for (int i = 0; i < N; i++) CHECK_INT(chat(k.via, "llama3.2", "fail me over", 6, 1, &a[i]), 0);
    for (int t = 0; t < 500 && done < N; t++) {
        run_for(k.base, 0.02);
        done = 0;
        for (int i = 0; i < N; i++) done += a[i].done;
    }
    CHECK_INT(done, N);
    char want[256] = "";
    for (int t = 0; t < 6; t++) strcat(want, ag_sim_token("llama3.2", "fail me over", t));
    int ok = 0;
    for (int i = 0; i < N; i++) ok += a[i].status == 0 && strcmp(a[i].text, want) == 0;
    CHECK_INT(ok, N);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.broken_streams, 0);
    ag_pool_stats ps;
    ag_pool_get_stats(k.pool, &ps);
    CHECK(ps.retried > 0);
    gw_close(&k);
}
static void gw_failover_before_first_byte(void) { failover_before_first_byte("error-line"); }
/* the same for a malformed first line, an empty body, a lone blank line and
 * a close: each the node's fault before output (once a 502 to the client) */
static void gw_failover_malformed_first(void) { failover_before_first_byte("malformed"); }
static void gw_failover_empty_body(void) { failover_before_first_byte("truncate"); }
static void gw_failover_blank_then_close(void) { failover_before_first_byte("close-before-final"); }

/* after bytes went out, a failure ends the stream with an Ollama-style error
 * line, the HTTP framing stays whole, and the connection can be reused */
static void gw_error_line_after_output(void) {
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fault = "reset";
    cfg.fault_after = 3;
    gw k;
    gw_open(&k, 1, &cfg, NULL, NULL, NULL);
    run_for(k.base, 0.1);
    int st;
    char *resp = post(&k, "/api/chat",
                      "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                      "\"options\":{\"num_predict\":10}}",
                      &st);
    CHECK_INT(st, 200);
    static char body[16384];
    size_t bl = dechunk(resp, body, sizeof body);
    CHECK(bl != (size_t)-1); /* the chunked framing ends properly */
    int lines = 0;
    for (char *p = body; (p = strchr(p, '\n')); p++) lines++;
    CHECK_INT(lines, 4); /* three tokens, then the error line */
    char *last = strstr(body, "{\"error\":");
    CHECK(last != NULL && strstr(last, "after 3 chunks") != NULL);
    free(resp);
    /* through an Ollama client: the tokens, then the error */
    got a;
    memset(&a, 0, sizeof a);
    CHECK_INT(chat(k.via, "llama3.2", "x", 10, 1, &a), 0);
    run_until(k.base, &a.done, 1, 10);
    CHECK_INT(a.status, AG_ESERVER);
    CHECK(strstr(a.err, "connection lost") != NULL || strstr(a.err, "connection") != NULL);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.broken_streams, 2);
    gw_close(&k);
}

/* a node killed while 60 streams run through the gateway */
typedef struct killer {
    gw *k;
    int idx;
} killer;
static void kill_cb(evutil_socket_t fd, short w, void *arg) {
    (void)fd;
    (void)w;
    killer *x = arg;
    ag_sim_free(x->k->sim[x->idx]);
    x->k->sim[x->idx] = NULL;
}

static void run_kill(double ttft_ms, double kill_at, int *ok_out, int *err_out, int *total) {
    ag_sim_config cfg[3];
    memset(cfg, 0, sizeof cfg);
    for (int i = 0; i < 3; i++) {
        cfg[i].ttft_ms = ttft_ms;
        cfg[i].itl_ms = 4;
        cfg[i].tokens = 40;
    }
    gw k;
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.policy = AG_POLICY_ROUND_ROBIN;
    gw_open(&k, 3, cfg, &po, NULL, NULL);
    REQUIRE(wait_up(&k, 3));
    enum { N = 60 };
    static got a[N];
    memset(a, 0, sizeof a);
    for (int i = 0; i < N; i++) CHECK_INT(chat(k.via, "llama3.2", "under load", 40, 1, &a[i]), 0);
    killer x = {&k, 1};
    struct event *ev = evtimer_new(k.base, kill_cb, &x);
    struct timeval tv = {0, (long)(kill_at * 1e6)};
    evtimer_add(ev, &tv);
    int done = 0;
    for (int t = 0; t < 1000 && done < N; t++) {
        run_for(k.base, 0.02);
        done = 0;
        for (int i = 0; i < N; i++) done += a[i].done;
    }
    event_free(ev);
    CHECK_INT(done, N); /* nothing hangs */
    char want[512] = "";
    for (int t = 0; t < 40; t++) strcat(want, ag_sim_token("llama3.2", "under load", t));
    int ok = 0, err = 0;
    for (int i = 0; i < N; i++) {
        if (a[i].status == 0 && strcmp(a[i].text, want) == 0) ok++;
        else if (a[i].status == AG_ESERVER && a[i].len > 0 && strncmp(want, a[i].text, a[i].len) == 0) err++;
        else fprintf(stderr, "request %d: %s (%s)\n", i, ag_err_name(a[i].status), a[i].err);
        CHECK_INT(a[i].done, 1);
    }
    *ok_out = ok;
    *err_out = err;
    *total = N;
    gw_close(&k);
}

/* killed before any first token: every client still gets its whole answer */
static void gw_node_killed_before_output(void) {
    int ok, err, n;
    run_kill(300, 0.1, &ok, &err, &n);
    CHECK_INT(ok, n);
    CHECK_INT(err, 0);
}

/* killed mid-stream: its clients get their partial answer and the error
 * line; the others are untouched */
static void gw_node_killed_mid_stream(void) {
    int ok, err, n;
    run_kill(0, 0.08, &ok, &err, &n);
    CHECK_INT(ok + err, n);
    CHECK(err >= 1);
    CHECK(ok >= n / 2);
}

/* ---- hostile and broken clients ---- */
static char *raw(gw *k, const char *req, size_t len, double secs) {
    rawcli r;
    rc_open(&r, k->base, k->gport);
    rc_send(&r, req, len);
    run_until(k->base, &r.closed, 1, secs);
    char *out = r.in ? strdup(r.in) : strdup("");
    if (!r.closed) {
        free(out);
        out = strdup("(still open)");
    }
    rc_close(&r);
    return out;
}

#define BYTES800 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
static void gw_malformed_requests(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.max_body = 1024;
    go.max_headers = 8;
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    struct {
        const char *req;
        const char *status, *body;
    } cases[] = {
        {"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"model\":",
         "HTTP/1.1 400 ", "{\"error\":\"invalid JSON in the request body: parse error: premature EOF\"}"},
        {"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"messages\":[]}",
         "HTTP/1.1 400 ", "{\"error\":\"model is required\"}"},
        {"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413 ",
         "{\"error\":\"request body over the size limit\"}"},
        /* chunked: no length said in advance, the cap counted as the chunks come (800 + 800 > 1024) */
        {"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n"
         BYTES800 "\r\n320\r\n" BYTES800 "\r\n0\r\n\r\n", "HTTP/1.1 413 ", "{\"error\":\"request body over the size limit\"}"},
        {"GET /api/tags HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\n\r\n",
         "HTTP/1.1 431 ", "{\"error\":\"too many request headers\"}"},
        {"HELLO WORLD\r\n\r\n", "HTTP/1.1 400 ", "{\"error\":\"malformed HTTP request"},
        {"GET /api/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 ", "{\"error\":\"404 page not found\"}"},
        {"GET /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 ", "{\"error\":"},
        {"POST /api/pull HTTP/1.1\r\nHost: x\r\nX-Agents-Node: nowhere:1\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"model\":\"x:1\"}",
         "HTTP/1.1 400 ", "no node named"},
        {"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
         "zz\r\n{\"mod\r\n", "HTTP/1.1 400 ", "{\"error\":\"malformed HTTP request"},
        /* RFC 9112: an HTTP/1.1 request without Host is a 400 (it was served) */
        {"GET /api/version HTTP/1.1\r\nConnection: close\r\n\r\n", "HTTP/1.1 400 ",
         "{\"error\":\"missing Host header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *resp = raw(&k, cases[i].req, strlen(cases[i].req), 5);
        t_checks++;
        if (strncmp(resp, cases[i].status, strlen(cases[i].status)) != 0 || !strstr(resp, cases[i].body)) {
            fprintf(stderr, "case %zu: got:\n%s\n", i, resp);
            t_failures++;
        }
        CHECK(strstr(resp, "Content-Type: application/json") != NULL);
        free(resp);
    }
    /* a body sent in chunks is fine; so is a pipelined pair on one connection */
    char *resp = RAW(&k, "POST /api/show HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "a\r\n{\"model\":\"\r\na\r\nllama3.2\"}\r\n0\r\n\r\n"
                         "GET /api/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    char *second = strstr(resp + 1, "HTTP/1.1 200 ");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    CHECK(second != NULL && strstr(second, "\"version\"") != NULL);
    free(resp);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.status_4xx, 11);
    gw_close(&k);
}

/* slow-loris: a head that never ends gets 408 and the connection closes,
 * while another client is served as usual */
static void gw_slow_loris(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.request_timeout = 0.4;
    go.idle_timeout = 0.6;
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    rawcli slow, idle;
    rc_open(&slow, k.base, k.gport);
    rc_open(&idle, k.base, k.gport);
    const char *part = "POST /api/chat HTTP/1.1\r\nHost: x\r\n";
    rc_send(&slow, part, strlen(part));
    got a;
    memset(&a, 0, sizeof a);
    CHECK_INT(chat(k.via, "llama3.2", "meanwhile", 5, 1, &a), 0);
    run_until(k.base, &a.done, 1, 5);
    CHECK_INT(a.status, 0);
    CHECK_INT(slow.closed, 0);
    for (int i = 0; i < 10 && !slow.closed; i++) {
        rc_send(&slow, "X", 1); /* a byte now and then does not keep it alive */
        run_for(k.base, 0.1);
    }
    run_until(k.base, &slow.closed, 1, 3);
    CHECK_INT(slow.closed, 1);
    CHECK_INT(rc_status(&slow), 408);
    run_until(k.base, &idle.closed, 1, 3); /* an idle connection closes quietly */
    CHECK_INT(idle.closed, 1);
    CHECK_INT(idle.len, 0);
    rc_close(&slow);
    rc_close(&idle);
    gw_close(&k);
}

/* over max_clients: 503 and closed; a token guards the API */
static void gw_limits_and_token(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.max_clients = 2;
    go.token = "s3cret";
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    rawcli c1, c2, c3;
    rc_open(&c1, k.base, k.gport);
    rc_open(&c2, k.base, k.gport);
    run_for(k.base, 0.1);
    rc_open(&c3, k.base, k.gport);
    run_until(k.base, &c3.closed, 1, 3);
    CHECK_INT(rc_status(&c3), 503);
    CHECK(strstr(c3.in ? c3.in : "", "too many clients") != NULL);
    rc_close(&c1);
    rc_close(&c2);
    rc_close(&c3);
    run_for(k.base, 0.1);
    char *resp = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 401 ", 13) == 0);
    free(resp);
    resp = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong!\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 401 ", 13) == 0);
    free(resp);
    resp = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    free(resp);
    resp = RAW(&k, "GET /dashboard.json?token=s3cret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    free(resp);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.rejected, 1);
    gw_close(&k);
}

/* a client that goes away cancels its upstream request */
static void gw_client_disconnect_cancels(void) {
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.itl_ms = 20;
    cfg.tokens = 500;
    gw k;
    gw_open(&k, 1, &cfg, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 1));
    rawcli r;
    rc_open(&r, k.base, k.gport);
    const char *body = "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}";
    char req[256];
    int rl = snprintf(req, sizeof req, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    rc_send(&r, req, (size_t)rl);
    for (int i = 0; i < 200 && r.len < 200; i++) run_for(k.base, 0.01);
    CHECK(r.len >= 200);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.in_flight, 1);
    rc_close(&r);
    for (int i = 0; i < 100; i++) {
        run_for(k.base, 0.01);
        ag_gateway_get_stats(k.g, &s);
        if (s.in_flight == 0) break;
    }
    CHECK_INT(s.in_flight, 0);
    CHECK_INT(s.client_aborts, 1);
    CHECK_INT(s.clients, 0);
    run_for(k.base, 0.1);
    ag_sim_stats ss;
    ag_sim_get_stats(k.sim[0], &ss);
    CHECK_INT(ss.active, 0); /* the node stopped generating */
    CHECK_INT(ss.disconnects, 1);
    gw_close(&k);
}

/* model management to a named node; HTTP/1.0 clients get a close-delimited stream */
static void gw_admin_and_http10(void) {
    gw k;
    gw_open(&k, 2, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 2));
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /api/pull HTTP/1.1\r\nHost: x\r\nX-Agents-Node: 127.0.0.1:%d\r\nContent-Length: 20\r\n"
                     "Connection: close\r\n\r\n{\"model\":\"newmodel\"}",
                     k.port[1]);
    char *resp = raw(&k, req, (size_t)n, 10);
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(resp, "\"status\":\"success\"") != NULL);
    free(resp);
    n = snprintf(req, sizeof req,
                 "POST /api/pull HTTP/1.1\r\nHost: x\r\nX-Agents-Node: 127.0.0.1:1\r\nContent-Length: 20\r\n"
                 "Connection: close\r\n\r\n{\"model\":\"newmodel\"}");
    resp = raw(&k, req, (size_t)n, 10);
    CHECK(strncmp(resp, "HTTP/1.1 400 ", 13) == 0); /* no such node, said plainly */
    CHECK(strstr(resp, "no node named \\\"127.0.0.1:1\\\"") != NULL);
    free(resp);
    /* HEAD to a named node: a head and no body, whatever the answer */
    n = snprintf(req, sizeof req,
                 "HEAD /api/blobs/sha256:abc HTTP/1.1\r\nHost: x\r\nX-Agents-Node: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
                 k.port[0]);
    resp = raw(&k, req, (size_t)n, 10);
    CHECK(strncmp(resp, "HTTP/1.1 404 ", 13) == 0);
    char *end = strstr(resp, "\r\n\r\n");
    CHECK(end != NULL && end[4] == 0);
    free(resp);
    resp = RAW(&k, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    end = strstr(resp, "\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0 && end != NULL && end[4] == 0);
    free(resp);
    resp = RAW(&k, "POST /api/generate HTTP/1.0\r\nContent-Length: 70\r\n\r\n"
                   "{\"model\":\"llama3.2\",\"prompt\":\"old client\",\"options\":{\"num_predict\":4}}");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(resp, "Transfer-Encoding") == NULL);
    CHECK(strstr(resp, "\"done\":true") != NULL);
    free(resp);
    gw_close(&k);
}

/* --pull-all: one merged progress stream (each status once, a layer's bytes
 * summed over the nodes, success when every node is done); not streamed,
 * one answer; a client gone mid-pull leaves nothing behind */
static void gw_pull_all(void) {
    gw k;
    ag_gateway_options go = {.pull_all = 1};
    gw_open(&k, 3, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 3));
    char *r = RAW(&k, "POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{\"model\":\"everywhere\"}");
    CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(r, "Content-Type: application/x-ndjson") != NULL);
    const char *first = strstr(r, "{\"status\":\"pulling manifest\"}\n");
    CHECK(first && !strstr(first + 1, "{\"status\":\"pulling manifest\"}"));
    CHECK(strstr(r, "\"digest\":\"sha256:6a0746a1ec1a\",\"total\":6058179567,\"completed\":6058179567}") != NULL);
    CHECK(strstr(r, "{\"status\":\"success\"}\n") != NULL);
    free(r);
    for (int i = 0; i < 3; i++) CHECK(strstr(ag_sim_last_body(k.sim[i], "/api/pull"), "everywhere") != NULL);
    r = RAW(&k, "POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{\"model\":\"everywhere\",\"stream\":false}");
    CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(r, "\r\n\r\n{\"status\":\"success\"}\n") != NULL);
    CHECK(strstr(r, "digest") == NULL);
    free(r);
    /* a client gone at once */
    rawcli c;
    static const char q[] = "POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n{\"model\":\"everywhere\"}";
    rc_open(&c, k.base, k.gport);
    rc_send(&c, q, sizeof q - 1);
    rc_close(&c);
    run_for(k.base, 0.2);
    gw_close(&k);
}

/* a gateway (k->g, k->pool) on base in front of nodes that are scripted
 * servers (no probes) */
static void gw_over_raw(gw *k, struct event_base *base, const char *nodes, int pull_all, int api) {
    memset(k, 0, sizeof *k);
    k->base = base;
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.client.api = api;
    po.nodes = nodes;
    po.probe_interval = -1;
    k->pool = ag_pool_new(base, &po, NULL);
    REQUIRE(k->pool);
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.listen = "127.0.0.1:0";
    go.pull_all = pull_all;
    k->g = ag_gateway_new(base, k->pool, &go, NULL);
    REQUIRE(k->g);
    k->gport = ag_gateway_port(k->g);
}

/* --pull-all against hostile nodes: 2,000 layers (1,024 kept), sizes past
 * int64's range summed (UBSan would see an overflow), junk lines, an error:
 * one stream, success only when every node is done, else an error line */
static void gw_pull_all_hostile(void) {
    struct event_base *base = ag_sim_base_new();
    rawsrv bad, good;
    memset(&bad, 0, sizeof bad);
    memset(&good, 0, sizeof good);
    size_t cap = 2000 * 160 + 400;
    char *body = malloc(cap), *resp = malloc(cap + 200);
    size_t bl = 0;
    for (int i = 0; i < 2000; i++)
        bl += (size_t)snprintf(body + bl, cap - bl,
                               "{\"status\":\"pulling\",\"digest\":\"sha256:%d\",\"total\":9223372036854775807,\"completed\":%s}\n", i % 1500,
                               i % 2 ? "-5" : "9223372036854775807");
    bl += (size_t)snprintf(body + bl, cap - bl, "not json\n{\"status\":\"pulling manifest\"}\n{\"error\":\"disk full\"}\n");
    int hl = snprintf(resp, 200, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n", bl);
    memcpy(resp + hl, body, bl);
    bad.resp[0] = resp;
    bad.resp_len[0] = (size_t)hl + bl;
    bad.nresp = 1;
    good.resp[0] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: 51\r\n\r\n"
                   "{\"status\":\"pulling manifest\"}\n{\"status\":\"success\"}\n";
    good.nresp = 1;
    rawsrv_start(&bad, base);
    rawsrv_start(&good, base);
    char nodes[128];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,127.0.0.1:%d", bad.port, good.port);
    gw k;
    gw_over_raw(&k, base, nodes, 1, 0);
    char *r = RAW(&k, "POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"model\":\"m:1\"}");
    CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(r, "\"total\":1125899906842624,") != NULL); /* clamped to 2^50 before summing */
    CHECK(strstr(r, "{\"error\":\"1 of 2 nodes failed to pull: disk full\"}") != NULL);
    CHECK(strstr(r, "\"success\"") == NULL);
    const char *first = strstr(r, "{\"status\":\"pulling manifest\"}");
    CHECK(first && !strstr(first + 1, "{\"status\":\"pulling manifest\"}"));
    free(r);
    ag_gateway_free(k.g);
    ag_client_free(k.pool);
    evconnlistener_free(bad.l);
    evconnlistener_free(good.l);
    for (int i = 0; i < 5; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    free(body);
    free(resp);
}


/* An OpenAI-compatible node whose tool-call arguments are not JSON (a model
 * under prompt injection writes what it likes) or whose indexes are out of
 * range: the translated Ollama answer stays well-formed, every line one JSON
 * object, the arguments a JSON string, no forged "done" line or field */
static void gw_tool_args_hostile(void) {
    static const char *const args[] = {
        "{not json",
        "{}}}],\\\"content\\\":\\\"INJECTED\\\"},\\\"done\\\":true}\\n{\\\"model\\\":\\\"x\\\",\\\"done\\\":true}",
        "1},\\\"x\\\":{",
        "{\\\"a\\\":1}", /* (well-formed: kept as an object) */
    };
    for (int stream = 0; stream < 2; stream++)
        for (size_t ai = 0; ai < sizeof args / sizeof args[0]; ai++) {
            struct event_base *base = ag_sim_base_new();
            rawsrv srv;
            memset(&srv, 0, sizeof srv);
            char body[1024], resp[1400];
            int bl = !stream ? snprintf(body, sizeof body,
                              "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
                              "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"t\","
                              "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"%s\"}}]},"
                              "\"finish_reason\":\"tool_calls\"}]}", args[ai]) : snprintf(body, sizeof body,
                              "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,"
                              "\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"type\":\"function\","
                              "\"function\":{\"name\":\"f\",\"arguments\":\"%s\"}}]},\"finish_reason\":null}]}\n\n"
                              "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,"
                              "\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
                              args[ai]);
            snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
                     stream ? "text/event-stream" : "application/json", bl, body);
            srv.resp[0] = resp;
            srv.nresp = 1;
            rawsrv_start(&srv, base);
            char nodes[64];
            snprintf(nodes, sizeof nodes, "127.0.0.1:%d", srv.port);
            gw k;
            gw_over_raw(&k, base, nodes, 0, AG_API_OPENAI);
            char q[512];
            const char *cb = stream ? "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
                                    : "{\"model\":\"m\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
            int n = snprintf(q, sizeof q, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                             strlen(cb), cb);
            char *r = raw(&k, q, (size_t)n, 5);
            CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
            /* the body's lines (chunked framing removed by hand: each line is
             * one chunk, or the whole body one) */
            char *b = strstr(r, "\r\n\r\n");
            REQUIRE(b);
            b += 4;
            int lines = 0, done = 0, objects = 0;
            const int chunked = strstr(r, "Transfer-Encoding: chunked") != NULL;
            for (char *p = b; *p;) {
                char *e = chunked ? strstr(p, "\r\n") : p + strlen(p);
                if (!e) break;
                int last = !*e;
                *e = 0;
                if (p[0] == '{') {
                    for (char *l = p; l && *l;) {
                        char *nl = strchr(l, '\n');
                        if (nl) *nl = 0;
                        if (*l) {
                            lines++;
                            char yerr[64];
                            yajl_val v = yajl_tree_parse(l, yerr, sizeof yerr);
                            objects += v && YAJL_IS_OBJECT(v);
                            yajl_tree_free(v);
                            done += strstr(l, "\"done\":true") != NULL;
                            if (ai < 3) CHECK(strstr(l, "INJECTED") == NULL || strstr(l, "\"arguments\":\"{}}}]") != NULL);
                            if (ai == 2) CHECK(strstr(l, "\"x\":{") == NULL || strstr(l, "\"arguments\":\"1}") != NULL);
                        }
                        l = nl ? nl + 1 : NULL;
                    }
                }
                if (last) break;
                p = e + 2;
            }
            if (objects != lines || done != 1) fprintf(stderr, "args %zu stream %d:\n%s\n", ai, stream, b);
            CHECK(lines >= 1);
            CHECK_INT(objects, lines);
            CHECK_INT(done, 1);
            free(r);
            ag_gateway_free(k.g);
            ag_client_free(k.pool);
            evconnlistener_free(srv.l);
            for (int i = 0; i < 5; i++) event_base_loop(base, EVLOOP_NONBLOCK);
            event_base_free(base);
        }
}

/* the dashboard page, its JSON and /metrics name every node */
static void gw_dashboard_and_metrics(void) {
    gw k;
    gw_open(&k, 3, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 3));
    got a;
    memset(&a, 0, sizeof a);
    CHECK_INT(chat(k.via, "llama3.2", "count me", 8, 1, &a), 0);
    run_until(k.base, &a.done, 1, 5);
    char *page = RAW(&k, "GET /dashboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(page, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(page, "text/html") != NULL);
    CHECK(strstr(page, "dashboard.json") != NULL);
    CHECK(strstr(page, "src=") == NULL && strstr(page, "href=\"http") == NULL); /* nothing external */
    free(page);
    char *js = RAW(&k, "GET /dashboard.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    char *m = RAW(&k, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "\"127.0.0.1:%d\"", k.port[i]);
        CHECK(strstr(js, name) != NULL);
        snprintf(name, sizeof name, "agents_node_up{node=\"127.0.0.1:%d\"} 1", k.port[i]);
        CHECK(strstr(m, name) != NULL);
    }
    CHECK(strstr(js, "\"state\":\"up\"") != NULL);
    CHECK(strstr(m, "# TYPE agents_node_ttft_seconds summary") != NULL);
    CHECK(strstr(m, "agents_gateway_requests_total 4") != NULL);
    /* 8 tokens went through one of the nodes */
    long tokens = 0;
    for (char *p = m; (p = strstr(p, "agents_node_tokens_total{")); p++) tokens += atol(strchr(p, '}') + 2);
    CHECK_INT(tokens, 8);
    free(js);
    free(m);
    gw_close(&k);
}


/* ---- hostile clients: each of these once pushed memory or a node slot
 * without bound ---- */

extern const char ag__dashboard_html[];

/* a plain socket to the gateway, with a small receive buffer, non-blocking */
static int plain_connect(int port) {
    return t_tcp_connect(port, 4096);
}

/* 9 MiB of pipelined GET /dashboard from a client that never reads: the
 * gateway stops reading it once about 1 MiB of answers waits (once 1.3 GB) */
static void gw_pipelined_nonreader(void) {
    gw k;
    gw_open(&k, 1, NULL, NULL, NULL, NULL);
    static const char one[] = "GET /dashboard HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t total = (size_t)9 << 20, sent = 0, n1 = sizeof one - 1;
    char *reqs = malloc(total);
    REQUIRE(reqs);
    for (size_t o = 0; o + n1 <= total; o += n1) memcpy(reqs + o, one, n1);
    total -= total % n1;
    int fd = plain_connect(k.gport);
    for (int i = 0; i < 300 && sent < total; i++) {
        ssize_t w = send(fd, reqs + sent, total - sent, MSG_NOSIGNAL);
        if (w > 0) sent += (size_t)w;
        run_for(k.base, 0.005);
    }
    run_for(k.base, 0.2);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    size_t page = strlen(ag__dashboard_html);
    fprintf(stderr, "sent %zu of %zu bytes, %llu requests parsed, %zu bytes unsent\n", sent, total,
            (unsigned long long)s.requests, s.unsent);
    CHECK(s.unsent <= ((size_t)1 << 20) + page + 4096);
    CHECK(s.requests < total / n1);
    close(fd);
    run_for(k.base, 0.1);
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.clients, 0);
    free(reqs);
    gw_close(&k);
}

/* with a token set, a body is not read before the head's credentials are
 * checked: a 60 MiB body without them gets its 401 at once (once buffered) */
static void gw_token_checked_at_head(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.token = "s3cret";
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    rawcli r;
    rc_open(&r, k.base, k.gport);
    static const char head[] = "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 62914560\r\n\r\n";
    rc_send(&r, head, sizeof head - 1);
    char *mib = calloc(1, 1 << 20);
    memset(mib, 'x', 1 << 20);
    rc_send(&r, mib, 1 << 20);
    free(mib);
    run_until(k.base, &r.closed, 1, 5);
    CHECK(r.closed);
    CHECK_INT(rc_status(&r), 401);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT((int)s.buffered, 0);
    rc_close(&r);
    gw_close(&k);
}

/* the bodies held over all clients are capped (max_buffered), and released
 * when their requests end */
static void gw_buffered_total_cap(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.max_buffered = 1 << 20;
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    rawcli a, b;
    rc_open(&a, k.base, k.gport);
    rc_open(&b, k.base, k.gport);
    static const char head[] = "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 800000\r\n\r\n";
    char *part = malloc(700000);
    memset(part, ' ', 700000);
    rc_send(&a, head, sizeof head - 1);
    rc_send(&a, part, 700000);
    run_for(k.base, 0.2);
    rc_send(&b, head, sizeof head - 1);
    rc_send(&b, part, 700000);
    run_until(k.base, &b.closed, 1, 5);
    CHECK_INT(rc_status(&b), 503);
    CHECK_INT(a.closed, 0);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK(s.buffered <= (size_t)1 << 20);
    rc_close(&b);
    /* a finishes its request: answered, and its body released */
    const char *rest = "{\"model\":\"llama3.2\",\"prompt\":\"x\",\"stream\":false}";
    size_t rl = strlen(rest);
    char *tail = malloc(100000);
    memset(tail, ' ', 100000);
    memcpy(tail + 100000 - rl, rest, rl);
    rc_send(&a, tail, 100000);
    for (int i = 0; i < 200 && !strstr(a.in ? a.in : "", "\"done\":true"); i++) run_for(k.base, 0.01);
    CHECK_INT(rc_status(&a), 200);
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT((int)s.buffered, 0);
    free(part);
    free(tail);
    rc_close(&a);
    gw_close(&k);
}

/* a client asks for a very long generation and never reads: until the
 * gateway closes it for not reading (send_timeouts), at most max loop turns
 * of 10 ms; the client's socket, *s the stats then */
static int ask_long_and_stop_reading(gw *k, ag_gateway_stats *s, int max) {
    int fd = plain_connect(k->gport);
    const char *body = "{\"model\":\"llama3.2\",\"prompt\":\"long\",\"options\":{\"num_predict\":200000}}";
    char req[512];
    int n = snprintf(req, sizeof req, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    CHECK(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
    for (int i = 0; i < max; i++) {
        run_for(k->base, 0.01);
        ag_gateway_get_stats(k->g, s);
        if (s->send_timeouts) break;
    }
    return fd;
}

/* a client that asks for a long stream and stops reading: after
 * send_timeout its connection closes and the node's slot is freed (once
 * held forever) */
static void gw_nonreading_client_times_out(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.send_timeout = 0.3;
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    ag_gateway_stats s;
    int fd = ask_long_and_stop_reading(&k, &s, 500);
    CHECK_INT((int)s.send_timeouts, 1);
    run_for(k.base, 0.2);
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.in_flight, 0);
    CHECK_INT(s.clients, 0);
    ag_sim_stats ss;
    ag_sim_get_stats(k.sim[0], &ss);
    CHECK(ss.disconnects >= 1); /* the upstream request was cancelled */
    close(fd);
    gw_close(&k);
}


/* A client that stops reading a stream that comes a token a millisecond:
 * the kernel holds little of it unsent (TCP_NOTSENT_LOWAT), so the send
 * timeout starts within a moment of the client's last read and its node
 * slot comes back; without the cap the kernel's send buffer took megabytes
 * first (minutes at this rate) */
static void gw_nonreading_slow_stream(void) {
    ag_sim_config cfg[1] = {{.itl_ms = 1, .slots = 1}};
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.send_timeout = 0.5;
    gw k;
    gw_open(&k, 1, cfg, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ag_gateway_stats s;
    int fd = ask_long_and_stop_reading(&k, &s, 9000); /* at most 90 s */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  (closed after %.1f s, %llu body bytes written)\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, (unsigned long long)s.bytes_out);
    CHECK_INT((int)s.send_timeouts, 1);
    CHECK(s.bytes_out < (1u << 20)); /* the kernel's share is bounded: 3.9 MB went before */
    run_for(k.base, 0.1);
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT(s.in_flight, 0);
    close(fd);
    /* the node's one slot is free again: another client is served */
    char *r = RAW(&k, "POST /api/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 76\r\n\r\n"
                      "{\"model\":\"llama3.2\",\"prompt\":\"x\",\"stream\":false,\"options\":{\"num_predict\":3}}");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    gw_close(&k);
}

/* connections from one address are capped (max_clients_per_ip): the next
 * gets 503 on plain HTTP; a place freed is taken again */
static void gw_clients_per_ip(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.max_clients_per_ip = 3;
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    int fds[3];
    for (int i = 0; i < 3; i++) fds[i] = plain_connect(k.gport);
    run_for(k.base, 0.05);
    char *r = RAW(&k, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "HTTP/1.1 503") == r);
    free(r);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    CHECK_INT((int)s.rejected_per_ip, 1);
    close(fds[0]);
    run_for(k.base, 0.05);
    r = RAW(&k, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    close(fds[1]);
    close(fds[2]);
    gw_close(&k);
}

static int open_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n - 2;
}

/* out of descriptors, accept fails: the gateway pauses accepting (a few
 * errors a second) instead of spinning on it, and serves again once
 * descriptors are free */
static void gw_emfile_backs_off(void) {
    gw k;
    gw_open(&k, 1, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 1));
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    int used = open_fds();
    REQUIRE(used > 0);
    struct rlimit low = {(rlim_t)used + 6, old.rlim_max};
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    int fds[8], nf = 0;
    for (int i = 0; i < 8; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)k.gport);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connect(fd, (struct sockaddr *)&sa, sizeof sa); /* completes in the backlog */
        fds[nf++] = fd;
    }
    run_for(k.base, 0.5);
    ag_gateway_stats s;
    ag_gateway_get_stats(k.g, &s);
    fprintf(stderr, "%d client sockets, %llu accept errors in 0.5 s\n", nf,
            (unsigned long long)s.accept_errors);
    CHECK(s.accept_errors >= 1);
    CHECK(s.accept_errors <= 20);
    for (int i = 0; i < nf; i++) close(fds[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    run_for(k.base, 0.3);
    char *resp = RAW(&k, "GET /api/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    free(resp);
    gw_close(&k);
}

/* a node's /api/tags nested 300,000 deep (once a crash while merging), and
 * a token in a query string, which is not passed on to nodes */
static void gw_hostile_node_and_query(void) {
    struct event_base *base = ag_sim_base_new();
    rawsrv srv;
    memset(&srv, 0, sizeof srv);
    enum { DEEP = 300000 };
    size_t bl = 2 * DEEP + 10;
    char *deep = malloc(bl + 100);
    int hl = sprintf(deep, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     bl);
    char *b = deep + hl;
    memcpy(b, "{\"models\":", 10);
    memset(b + 10, '[', DEEP);
    memset(b + 10 + DEEP, ']', DEEP);
    memcpy(b + 10 + 2 * DEEP - 1, "]}", 2); /* closes the object */
    srv.resp[0] = deep;
    srv.resp_len[0] = (size_t)hl + bl;
    srv.resp[1] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
                  "{\"version\":\"0.12.0\"}";
    srv.nresp = 2;
    rawsrv_start(&srv, base);
    char nodes[64];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d", srv.port);
    gw k;
    gw_over_raw(&k, base, nodes, 0, 0);
    char *resp = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 ", 9) == 0); /* answered, not crashed */
    free(resp);
    resp = RAW(&k, "GET /api/version?token=secret&x=1&token=again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
    free(resp);
    CHECK(strncmp(srv.last_head, "GET /api/version?x=1 HTTP/1.1\r\n", 31) == 0);
    CHECK(strstr(srv.last_head, "secret") == NULL);
    ag_gateway_free(k.g);
    ag_client_free(k.pool);
    evconnlistener_free(srv.l);
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
    free(deep);
}

/* a request nested 300,000 deep, forwarded to a simulated node: a 400, and
 * the node (once crashed with all its siblings) goes on serving */
static void gw_deep_request_to_node(void) {
    gw k;
    gw_open(&k, 1, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 1));
    enum { DEEP = 300000 };
    char *body = malloc(2 * DEEP + 64);
    int o = sprintf(body, "{\"model\":\"llama3.2\",\"x\":");
    memset(body + o, '[', DEEP);
    memset(body + o + DEEP, ']', DEEP);
    strcpy(body + o + 2 * DEEP, "}");
    int st = 0;
    char *resp = post(&k, "/api/chat", body, &st);
    CHECK_INT(st, 400);
    free(resp);
    free(body);
    resp = post(&k, "/api/generate", "{\"model\":\"llama3.2\",\"prompt\":\"still here\",\"stream\":false}", &st);
    CHECK_INT(st, 200);
    free(resp);
    gw_close(&k);
}

/* Client keys: 401 without one, limits per key (requests and tokens per
 * minute, requests at once), allowed models, 429 with Retry-After in both
 * error shapes, waiting instead of refusing, reloads, per-key figures */
static char *req_as(gw *k, const char *secret, const char *path, const char *body) {
    char q[2048];
    int n = snprintf(q, sizeof q,
                     "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, secret ? "Authorization: Bearer " : "", secret ? secret : "", secret ? "\r\n" : "",
                     strlen(body), body);
    return raw(k, q, (size_t)n, 5);
}
#define CHAT(m) "{\"model\":\"" m "\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"


/* ag_gateway_reload_start's end, into a box {done, rc, err} */
static void reload_done(void *ud, int rc, const char *err) {
    struct {
        int done, rc;
        char err[400];
    } *b = ud;
    b->done = 1;
    b->rc = rc;
    snprintf(b->err, sizeof b->err, "%s", err);
}

/* a request with a method of its own, as a key */
static char *req_method_as(gw *k, const char *method, const char *secret, const char *path, const char *body) {
    char q[2048];
    int n = snprintf(q, sizeof q,
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, secret, strlen(body), body);
    return raw(k, q, (size_t)n, 5);
}

static char *keys_file_with(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ag_keys_%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Managing models is for admin keys, and goes through their limits; a key
 * restricted to some models sees those only in the lists */
static void gw_keys_admin_routes(void) {
    const char *path = keys_file_with(
        "{\"name\":\"user\",\"secret\":\"secret-user\",\"models\":[\"llama3.2\"]}\n"
        "{\"name\":\"ops\",\"secret\":\"secret-ops1\",\"admin\":true,\"rpm\":3}\n");
    ag_sim_config cfg[1] = {{.tokens = 4, .models = "llama3.2,secret-model,qwen3:4b"}};
    ag_gateway_options go = {.keys_file = path};
    gw k;
    gw_open(&k, 1, cfg, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    static const struct {
        const char *method, *path, *body;
    } admin[] = {{"DELETE", "/api/delete", "{\"model\":\"secret-model\"}"},
                 {"POST", "/api/copy", "{\"source\":\"secret-model\",\"destination\":\"mine\"}"},
                 {"POST", "/api/pull", "{\"model\":\"llama3.2\",\"stream\":false}"},
                 {"POST", "/api/push", "{\"model\":\"llama3.2\",\"stream\":false}"},
                 {"POST", "/api/create", "{\"model\":\"llama3.2\",\"from\":\"llama3.2\",\"stream\":false}"},
                 {"POST", "/api/blobs/sha256:0000", ""}};
    for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++) {
        char *r = req_method_as(&k, admin[i].method, "secret-user", admin[i].path, admin[i].body);
        if (strstr(r, "HTTP/1.1 403") != r) fprintf(stderr, "%s %s: %.60s\n", admin[i].method, admin[i].path, r);
        CHECK(strstr(r, "HTTP/1.1 403") == r);
        CHECK(strstr(r, "may not manage models") != NULL);
        free(r);
    }
    ag_sim_stats st;
    ag_sim_get_stats(k.sim[0], &st);
    const uint64_t before = st.requests;
    /* the admin key may, within its rpm: three, then 429 */
    char *r = req_method_as(&k, "POST", "secret-ops1", "/api/pull", "{\"model\":\"llama3.2\",\"stream\":false}");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_method_as(&k, "POST", "secret-ops1", "/api/copy", "{\"source\":\"llama3.2\",\"destination\":\"l2\"}");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_method_as(&k, "DELETE", "secret-ops1", "/api/delete", "{\"model\":\"l2\"}");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_method_as(&k, "POST", "secret-ops1", "/api/pull", "{\"model\":\"llama3.2\",\"stream\":false}");
    CHECK(strstr(r, "HTTP/1.1 429") == r);
    CHECK(strstr(r, "\r\nRetry-After: ") != NULL);
    free(r);
    ag_sim_get_stats(k.sim[0], &st);
    CHECK_INT((int)(st.requests - before), 3); /* the refused ones never reached the node */
    /* lists: the restricted key sees its model only, in every list */
    r = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-user\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    CHECK(strstr(r, "\"name\":\"llama3.2") != NULL);
    CHECK(strstr(r, "secret-model") == NULL);
    CHECK(strstr(r, "qwen3") == NULL);
    free(r);
    r = RAW(&k, "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-user\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    CHECK(strstr(r, "\"id\":\"llama3.2") != NULL);
    CHECK(strstr(r, "secret-model") == NULL);
    free(r);
    r = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-ops1\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "secret-model") != NULL); /* (an unrestricted key sees all) */
    free(r);
    /* /api/ps after a chat of each: only llama3.2 for the restricted key */
    r = req_as(&k, "secret-ops1", "/api/chat", CHAT("secret-model"));
    free(r);
    r = req_as(&k, "secret-user", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = RAW(&k, "GET /api/ps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-user\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    CHECK(strstr(r, "secret-model") == NULL);
    free(r);
    gw_close(&k);
    unlink(path);
}

/* The body's model is read as the node reads it: JSON keys without case,
 * the last winning; a body that names it twice is refused */
static void gw_keys_model_case(void) {
    const char *path = keys_file_with("{\"name\":\"user\",\"secret\":\"secret-user\",\"models\":[\"llama3.2\"]}\n");
    ag_sim_config cfg[1] = {{.tokens = 4, .models = "llama3.2,secret-model"}};
    ag_gateway_options go = {.keys_file = path};
    gw k;
    gw_open(&k, 1, cfg, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    static const char *const twice[] = {
        "{\"model\":\"llama3.2\",\"Model\":\"secret-model\",\"stream\":false,\"messages\":[]}",
        "{\"model\":\"llama3.2\",\"MODEL\":\"secret-model\",\"stream\":false,\"messages\":[]}",
        "{\"model\":\"llama3.2\",\"model\":\"secret-model\",\"stream\":false,\"messages\":[]}",
        "{\"mod\\u0065l\":\"llama3.2\",\"Model\":\"secret-model\",\"stream\":false,\"messages\":[]}",
        "{\"name\":\"llama3.2\",\"NAME\":\"secret-model\",\"stream\":false}"};
    ag_sim_stats st;
    ag_sim_get_stats(k.sim[0], &st);
    const uint64_t before = st.requests;
    for (size_t i = 0; i < sizeof twice / sizeof twice[0]; i++) {
        char *r = req_as(&k, "secret-user", i == 4 ? "/api/show" : "/api/chat", twice[i]);
        CHECK(strstr(r, "HTTP/1.1 400") == r);
        CHECK(strstr(r, "more than once") != NULL);
        free(r);
    }
    /* one field spelt otherwise is that field: checked against the key */
    char *r = req_as(&k, "secret-user", "/api/chat", "{\"Model\":\"secret-model\",\"stream\":false,\"messages\":[]}");
    CHECK(strstr(r, "HTTP/1.1 403") == r);
    free(r);
    r = req_as(&k, "secret-user", "/api/chat", "{\"MoDeL\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    if (strstr(r, "HTTP/1.1 200") != r) fprintf(stderr, "%s\n", r);
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    /* the long s (U+017F) folds to "s" in Go's matching: "\u017ftream" is "stream" */
    r = req_as(&k, "secret-user", "/api/chat",
               "{\"model\":\"llama3.2\",\"stream\":true,\"\\u017ftream\":false,\"messages\":[]}");
    CHECK(strstr(r, "HTTP/1.1 400") == r);
    free(r);
    ag_sim_get_stats(k.sim[0], &st);
    CHECK_INT((int)(st.requests - before), 1); /* only the well-formed one reached the node */
    gw_close(&k);
    unlink(path);
}

/* Keys files from an attacker or a typo: nesting past the cap, numbers out
 * of range; nothing crashes, the line is named, a running gateway keeps its keys */
static void gw_keys_file_hostile(void) {
    char err[400];
    const size_t depth = 3000000;
    char *deep = malloc(2 * depth + 64);
    REQUIRE(deep);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) deep[n++] = '[';
    for (size_t i = 0; i < depth; i++) deep[n++] = ']';
    deep[n++] = '\n';
    deep[n] = 0;
    const char *path = keys_file_with(deep);
    CHECK_INT(ag_gateway_keys_check(path, err, sizeof err), AG_EINVAL);
    CHECK(strstr(err, "line 1: not JSON") != NULL);
    const char *path2 = keys_file_with("{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"priority\":99999999999}\n");
    CHECK_INT(ag_gateway_keys_check(path2, err, sizeof err), AG_EINVAL);
    CHECK(strstr(err, "line 1: a numeric \"priority\" is an integer from -1000 to 1000") != NULL);
    keys_file_with("# x\n{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"priority\":1.5}\n");
    CHECK_INT(ag_gateway_keys_check(path2, err, sizeof err), AG_EINVAL);
    CHECK(strstr(err, "line 2:") != NULL);
    keys_file_with("{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"admin\":\"yes\"}\n");
    CHECK_INT(ag_gateway_keys_check(path2, err, sizeof err), AG_EINVAL);
    keys_file_with("{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"priority\":-1000,\"admin\":true}\n"
                   "{\"name\":\"b\",\"secret\":\"secret-bbbb\"}\n{\"name\":\"a\",\"secret\":\"secret-cccc\"}\n");
    CHECK_INT(ag_gateway_keys_check(path2, err, sizeof err), AG_EINVAL);
    CHECK(strstr(err, "\"a\" is used twice") != NULL);
    /* a running gateway: the deep file on reload (both ways) changes nothing */
    keys_file_with("{\"name\":\"a\",\"secret\":\"secret-aaaa\"}\n");
    ag_gateway_options go = {.keys_file = path};
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    keys_file_with(deep);
    CHECK_INT(ag_gateway_reload(k.g, err, sizeof err), AG_EINVAL);
    struct done_box {
        int done, rc;
        char err[400];
    } box = {0, 0, ""};
    CHECK_INT(ag_gateway_reload_start(k.g, reload_done, &box), 0);
    CHECK_INT(ag_gateway_reload_start(k.g, reload_done, &box), AG_EBUSY);
    run_until(k.base, &box.done, 1, 30);
    CHECK_INT(box.rc, AG_EINVAL);
    char *r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    gw_close(&k);
    free(deep);
    unlink(path);
}


/* the longest the loop went without running a 1 ms timer */
typedef struct stall {
    struct event *ev;
    int64_t last, max;
} stall;
static void stall_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    stall *s = arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (s->last && now - s->last > s->max) s->max = now - s->last;
    s->last = now;
}

/* 100,000 keys: loaded, found, reloaded on a thread of its own while the
 * loop serves; a removed key's waiting request gets 403, its running one
 * ends as it would, and it is freed (valgrind's leak check sees the rest) */
static void gw_keys_many(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/ag_keys_many_%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    const int nkeys = 100000;
    fprintf(f, "{\"name\":\"w\",\"secret\":\"secret-wait\",\"concurrent\":1,\"over_limit\":\"wait\"}\n");
    for (int i = 1; i < nkeys; i++) fprintf(f, "{\"name\":\"k%d\",\"secret\":\"secret-%08d\",\"rpm\":100}\n", i, i);
    fclose(f);
    ag_sim_config cfg[1] = {{.tokens = 4}};
    ag_gateway_options go = {.keys_file = path};
    gw k;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gw_open(&k, 1, cfg, NULL, &go, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  (100,000 keys loaded with the gateway in %.0f ms)\n",
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    REQUIRE(wait_up(&k, 1));
    ag_key_info ki[1];
    CHECK_INT((int)ag_gateway_keys(k.g, ki, 1), nkeys);
    char *r = req_as(&k, "secret-00099999", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_as(&k, "secret-00100000", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    /* w: one running, one waiting for it */
    rawcli c1, c2;
    char q[1024];
    int n = snprintf(q, sizeof q, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer secret-wait\r\n"
                                  "Content-Length: %zu\r\n\r\n%s", strlen(CHAT("llama3.2")), CHAT("llama3.2"));
    ag_sim_set_timing(k.sim[0], 600000, 0); /* c1 runs until it is closed, whatever the reload takes */
    rc_open(&c1, k.base, k.gport);
    rc_send(&c1, q, (size_t)n);
    run_for(k.base, 0.03);
    rc_open(&c2, k.base, k.gport);
    rc_send(&c2, q, (size_t)n);
    run_for(k.base, 0.03);
    /* the file again, without w and with the k names shifted by one: half the
     * keys replaced */
    f = fopen(path, "w");
    REQUIRE(f);
    for (int i = nkeys / 2; i < nkeys + nkeys / 2; i++) fprintf(f, "{\"name\":\"k%d\",\"secret\":\"secret-%08d\"}\n", i, i);
    fclose(f);
    stall sl = {0, 0, 0};
    sl.ev = event_new(k.base, -1, EV_PERSIST, stall_tick, &sl);
    struct timeval ms = {0, 1000};
    event_add(sl.ev, &ms);
    struct {
        int done, rc;
        char err[400];
    } box = {0, 0, ""};
    CHECK_INT(ag_gateway_reload_start(k.g, reload_done, &box), 0);
    run_until(k.base, &box.done, 1, 60);
    CHECK_INT(box.rc, 0);
    event_free(sl.ev);
    fprintf(stderr, "  (the loop's longest stall during the reload: %.2f ms)\n", (double)sl.max / 1e6);
    for (int t = 0; t < 300 && !c2.closed; t++) run_for(k.base, 0.01);
    CHECK(c2.closed && c2.in && strstr(c2.in, "HTTP/1.1 403") == c2.in); /* waiting: refused at once */
    CHECK(c2.in && strstr(c2.in, "key \\\"w\\\" was removed") != NULL);
    CHECK(!c1.closed && c1.len == 0); /* running: not cut by the reload */
    rc_close(&c1);
    rc_close(&c2);
    ag_sim_set_timing(k.sim[0], 0, 0);
    run_for(k.base, 0.05);
    CHECK_INT((int)ag_gateway_keys(k.g, ki, 1), nkeys);
    r = req_as(&k, "secret-wait", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    r = req_as(&k, "secret-00000001", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    r = req_as(&k, "secret-00149999", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    /* a kept key kept its figures: k99999 had one request */
    size_t all = ag_gateway_keys(k.g, NULL, 0);
    ag_key_info *many = calloc(all, sizeof *many);
    REQUIRE(many);
    ag_gateway_keys(k.g, many, all);
    int found = 0;
    for (size_t i = 0; i < all; i++)
        if (!strcmp(many[i].name, "k99999")) found = (int)many[i].requests + 1;
    CHECK_INT(found, 2);
    free(many);
    gw_close(&k);
    unlink(path);
}

static void gw_keys(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/ag_keys_%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    /* b's secret is "secret-bbbb", given as its SHA-256 */
    fprintf(f, "# team keys\n"
               "{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"rpm\":3}\n"
               "{\"name\":\"b\",\"sha256\":\"%s\",\"models\":[\"qwen3:*\"],\"concurrent\":1,\"over_limit\":\"wait\",\"priority\":\"interactive\"}\n"
               "{\"name\":\"c\",\"secret\":\"secret-cccc\",\"tpm\":4}\n",
            "a62da5eda8e87fc73c4c9678a5c0954773d17618f0b3acf842c361c58a592571");
    fclose(f);
    ag_sim_config cfg[1] = {{.tokens = 4, .ttft_ms = 50}};
    ag_gateway_options go = {.keys_file = path, .token = "admin-token-x"};
    gw k;
    gw_open(&k, 1, cfg, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    char *r = req_as(&k, NULL, "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    r = req_as(&k, "secret-wrong", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    /* a: three a minute, then 429 with Retry-After, in Ollama's shape and OpenAI's */
    for (int i = 0; i < 3; i++) {
        r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
        CHECK(strstr(r, "HTTP/1.1 200") == r);
        free(r);
    }
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 429") == r);
    CHECK(strstr(r, "\r\nRetry-After: ") != NULL);
    CHECK(strstr(r, "{\"error\":\"rate limit exceeded for key \\\"a\\\" (requests per minute)") != NULL);
    free(r);
    r = req_as(&k, "secret-aaaa", "/v1/chat/completions", "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    CHECK(strstr(r, "HTTP/1.1 429") == r);
    CHECK(strstr(r, "\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"") != NULL);
    free(r);
    /* the single token: no limits */
    for (int i = 0; i < 5; i++) {
        r = req_as(&k, "admin-token-x", "/api/chat", CHAT("llama3.2"));
        CHECK(strstr(r, "HTTP/1.1 200") == r);
        free(r);
    }
    /* b: only qwen3:*; one at a time, and a second one waits rather than fails */
    r = req_as(&k, "secret-bbbb", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 403") == r);
    free(r);
    rawcli c1, c2;
    char q[1024];
    int n = snprintf(q, sizeof q, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer secret-bbbb\r\n"
                                  "Content-Length: %zu\r\n\r\n%s", strlen(CHAT("qwen3:4b")), CHAT("qwen3:4b"));
    rc_open(&c1, k.base, k.gport);
    rc_open(&c2, k.base, k.gport);
    rc_send(&c1, q, (size_t)n);
    rc_send(&c2, q, (size_t)n);
    run_for(k.base, 0.02);
    ag_key_info ki[4];
    size_t nk = ag_gateway_keys(k.g, ki, 4);
    CHECK_INT((int)nk, 3);
    CHECK_STR(ki[1].name, "b");
    CHECK_INT((int)ki[1].in_flight, 1);
    CHECK_INT((int)ki[1].waiting, 1);
    CHECK_INT(ki[1].priority, 1);
    int both = 0;
    for (int t = 0; t < 300 && both < 2; t++) {
        run_for(k.base, 0.01);
        both = c1.closed + c2.closed;
    }
    CHECK_INT(both, 2);
    CHECK(c1.in && strstr(c1.in, "HTTP/1.1 200") == c1.in);
    CHECK(c2.in && strstr(c2.in, "HTTP/1.1 200") == c2.in);
    rc_close(&c1);
    rc_close(&c2);
    nk = ag_gateway_keys(k.g, ki, 4);
    CHECK(ki[1].queue_wait_ms > 20); /* the second waited for the first (50 ms to its first token) */
    /* c: four tokens a minute; the first request spends them (prompt + output) */
    r = req_as(&k, "secret-cccc", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_as(&k, "secret-cccc", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 429") == r);
    CHECK(strstr(r, "tokens per minute") != NULL);
    free(r);
    nk = ag_gateway_keys(k.g, ki, 4);
    CHECK_INT((int)ki[2].output_tokens, 4);
    CHECK(ki[2].prompt_tokens > 0);
    CHECK_INT((int)ki[0].requests, 3);
    CHECK_INT((int)ki[0].refused, 2);
    /* the figures: /metrics and the dashboard's JSON (with the single token) */
    r = RAW(&k, "GET /metrics?token=admin-token-x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "agents_key_requests_total{key=\"a\"} 3\n") != NULL);
    CHECK(strstr(r, "agents_key_refused_total{key=\"a\"} 2\n") != NULL);
    CHECK(strstr(r, "agents_key_tokens_total{key=\"c\",kind=\"output\"} 4\n") != NULL);
    free(r);
    r = RAW(&k, "GET /dashboard.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-token-x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "\"keys\":[{\"name\":\"a\",\"priority\":\"default\",\"requests\":3,\"refused\":2") != NULL);
    free(r);
    /* a key that is not an admin sees its own figures only, in both */
    r = RAW(&k, "GET /dashboard.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-cccc\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "\"keys\":[{\"name\":\"c\",") != NULL);
    CHECK(strstr(r, "\"name\":\"a\"") == NULL);
    CHECK(strstr(r, "\"name\":\"b\"") == NULL);
    free(r);
    r = RAW(&k, "GET /metrics?token=secret-cccc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "agents_key_requests_total{key=\"c\"} 1\n") != NULL);
    CHECK(strstr(r, "key=\"a\"") == NULL);
    CHECK(strstr(r, "key=\"b\"") == NULL);
    free(r);
    /* a reload: a gone, d new (and f: room for two and a half of c's
     * requests a minute); a bad file keeps what was */
    const int cost = (int)(ki[2].prompt_tokens + ki[2].output_tokens);
    f = fopen(path, "w");
    fprintf(f, "{\"name\":\"d\",\"secret\":\"secret-dddd\"}\n{\"name\":\"f\",\"secret\":\"secret-ffff\",\"tpm\":%d}\n",
            cost * 5 / 2);
    fclose(f);
    char err[300];
    CHECK_INT(ag_gateway_reload(k.g, err, sizeof err), 0);
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    r = req_as(&k, "secret-dddd", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    /* f: tokens are known at a request's end, so those in flight count at
     * the key's mean: after one request (cost in the window), of three sent
     * at once one more fits (2 x cost) and two are refused (3 x cost > 2.5) */
    r = req_as(&k, "secret-ffff", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    {
        rawcli cf[3];
        n = snprintf(q, sizeof q, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer secret-ffff\r\n"
                                  "Content-Length: %zu\r\n\r\n%s", strlen(CHAT("llama3.2")), CHAT("llama3.2"));
        for (int i = 0; i < 3; i++) {
            rc_open(&cf[i], k.base, k.gport);
            rc_send(&cf[i], q, (size_t)n);
        }
        int done = 0;
        for (int t = 0; t < 300 && done < 3; t++) {
            run_for(k.base, 0.01);
            done = cf[0].closed + cf[1].closed + cf[2].closed;
        }
        CHECK_INT(done, 3);
        int ok = 0, limited = 0;
        for (int i = 0; i < 3; i++) {
            ok += cf[i].in && strstr(cf[i].in, "HTTP/1.1 200") == cf[i].in;
            limited += cf[i].in && strstr(cf[i].in, "HTTP/1.1 429") == cf[i].in && strstr(cf[i].in, "tokens per minute");
            rc_close(&cf[i]);
        }
        CHECK_INT(ok, 1);
        CHECK_INT(limited, 2);
    }
    f = fopen(path, "w");
    fprintf(f, "{\"name\":\"e\",\"secret\":\"short\"}\n");
    fclose(f);
    CHECK_INT(ag_gateway_reload(k.g, err, sizeof err), AG_EINVAL);
    CHECK(strstr(err, "line 1: a \"secret\" shorter than 8 characters") != NULL);
    CHECK_INT(ag_gateway_keys_check(path, err, sizeof err), AG_EINVAL);
    r = req_as(&k, "secret-dddd", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    /* X-Request-Deadline: a request that cannot answer in time is shed (504),
     * not run late; the key's slot comes back */
    r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer secret-dddd\r\n"
                "X-Request-Deadline: 0.01\r\nContent-Length: 79\r\n\r\n"
                "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    CHECK(strstr(r, "HTTP/1.1 504") == r);
    CHECK(strstr(r, "first-token deadline") != NULL);
    free(r);
    r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer secret-dddd\r\n"
                "X-Request-Deadline: soon\r\nContent-Length: 2\r\n\r\n{}");
    CHECK(strstr(r, "HTTP/1.1 400") == r);
    free(r);
    nk = ag_gateway_keys(k.g, ki, 4);
    CHECK_INT((int)ki[0].in_flight, 0);
    gw_close(&k);
    unlink(path);
}



/* A key's minute is a sliding window (by a clock the test moves): past the
 * limit, Retry-After says exactly when the oldest requests leave it, and
 * once they have, the key is served again; "llama3.2" in a key's models
 * allows "llama3.2:latest", as Ollama names it, and no other tag */
extern int64_t ag__gw_clock_skew_ns;
static int retry_after(const char *resp) {
    const char *h = strstr(resp, "\r\nRetry-After: ");
    return h ? atoi(h + 15) : -1;
}
static void gw_keys_window_slides(void) {
    const char *path = keys_file_with("{\"name\":\"a\",\"secret\":\"secret-aaaa\",\"rpm\":2,\"models\":[\"llama3.2\"]}\n");
    ag_sim_config cfg[1] = {{.tokens = 2, .models = "llama3.2,llama3.2:1b"}};
    ag_gateway_options go = {.keys_file = path};
    gw k;
    gw_open(&k, 1, cfg, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    ag__gw_clock_skew_ns = 0;
    /* at the start of a second (so that the two share it) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ag__gw_clock_skew_ns = (int64_t)(1000000000 - ts.tv_nsec) + 1000000;
    char *r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2:latest"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2:1b")); /* another tag: not allowed */
    CHECK(strstr(r, "HTTP/1.1 403") == r);
    free(r);
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 429") == r);
    CHECK(retry_after(r) == 60 || retry_after(r) == 59); /* both leave the window in 60 s (59: a second turned) */
    free(r);
    ag__gw_clock_skew_ns += 30 * (int64_t)1000000000; /* half a minute on: still full */
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 429") == r);
    CHECK(retry_after(r) == 30 || retry_after(r) == 29);
    free(r);
    ag__gw_clock_skew_ns += 31 * (int64_t)1000000000; /* past the minute: served again */
    r = req_as(&k, "secret-aaaa", "/api/chat", CHAT("llama3.2"));
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    ag__gw_clock_skew_ns = 0;
    gw_close(&k);
    unlink(path);
}

/* One status for one cause: a deadline is 504 on the translated route as on
 * the forwarded one; a deadline value with spaces around it is read; a
 * model whose only node is ejected is a 503 (no node up), not a 404 */
static void gw_status_per_cause(void) {
    for (int api = 0; api < 2; api++) {
        ag_sim_config cfg[1] = {{.tokens = 4, .ttft_ms = 300, .api = api}};
        ag_pool_options po;
        memset(&po, 0, sizeof po);
        po.client.api = api ? AG_API_OPENAI : 0;
        po.eject_after = 1;
        po.probe_interval = 0.05;
        gw k;
        gw_open(&k, 1, cfg, &po, NULL, NULL);
        REQUIRE(wait_up(&k, 1));
        char *r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          "X-Request-Deadline: 0.05 \r\nContent-Length: 79\r\n\r\n"
                          "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        if (strstr(r, "HTTP/1.1 504") != r) fprintf(stderr, "api %d: %.80s\n", api, r);
        CHECK(strstr(r, "HTTP/1.1 504") == r);
        free(r);
        r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "X-Request-Deadline:\t5\t\r\nContent-Length: 79\r\n\r\n"
                    "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        CHECK(strstr(r, "HTTP/1.1 200") == r);
        free(r);
        /* the only node goes away: ejected after its probes fail */
        ag_sim_free(k.sim[0]);
        k.sim[0] = NULL;
        for (int t = 0; t < 300; t++) {
            ag_node_info info[1];
            if (ag_pool_nodes(k.pool, info, 1) == 1 && info[0].state == AG_NODE_EJECTED) break;
            run_for(k.base, 0.01);
        }
        r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 79\r\n\r\n"
                    "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        if (strstr(r, "HTTP/1.1 503") != r) fprintf(stderr, "api %d, ejected: %s\n", api, r);
        CHECK(strstr(r, "HTTP/1.1 503") == r);
        free(r);
        /* a model no node ever had is still a 404 */
        r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 78\r\n\r\n"
                    "{\"model\":\"nowhere\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        if (strstr(r, "HTTP/1.1 404") != r) fprintf(stderr, "api %d, nowhere: %.300s\n", api, r);
        CHECK(strstr(r, "HTTP/1.1 404") == r);
        free(r);
        gw_close(&k);
    }
}


/* a node that sends keep-alive bytes but never a token: the gateway's
 * requests go to the other node once the first-byte timeout (counted in
 * output) passes; nothing is held in flight */
static void gw_keepalive_node(void) {
    ag_sim_config cfg[2] = {{.tokens = 4}, {.tokens = 4}};
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.client.idle_timeout = 0.3;
    po.probe_interval = -1;
    po.policy = AG_POLICY_ROUND_ROBIN;
    gw k;
    gw_open(&k, 2, cfg, &po, NULL, NULL);
    ag_sim_set_fault(k.sim[0], "keepalive", 0, 1);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        char *r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 64\r\n\r\n"
                          "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        ok += strstr(r, "HTTP/1.1 200") == r && strstr(r, "\"done\":true") != NULL;
        free(r);
    }
    CHECK_INT(ok, 4);
    ag_gateway_stats gs;
    ag_gateway_get_stats(k.g, &gs);
    CHECK_INT((int)gs.in_flight, 0);
    ag_node_info info[2];
    size_t nn = ag_pool_nodes(k.pool, info, 2);
    char name0[64];
    snprintf(name0, sizeof name0, "127.0.0.1:%d", k.port[0]);
    uint64_t errs = 0, reqs0 = 0;
    for (size_t i = 0; i < nn && i < 2; i++)
        if (!strcmp(info[i].name, name0)) errs = info[i].errors, reqs0 = info[i].requests;
    if (errs < 1) fprintf(stderr, "node 0: %llu requests, %llu errors\n", (unsigned long long)reqs0, (unsigned long long)errs);
    CHECK(errs >= 1);
    gw_close(&k);
}


/* ---- the operator's view: access log, request ids, traces, histograms ---- */

/* the access log's lines, parsed (at most 64) */
static int log_lines(const char *path, yajl_val *out, int max) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[8192];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        char eb[128];
        out[n] = yajl_tree_parse(line, eb, sizeof eb);
        if (!out[n]) fprintf(stderr, "not JSON: %s (%s)\n", line, eb);
        else n++;
    }
    fclose(f);
    return n;
}
static const char *ystr(yajl_val v, const char *k) {
    const char *p[] = {k, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : "";
}
static long long yint(yajl_val v, const char *k) {
    const char *p[] = {k, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_number);
    return s ? YAJL_GET_INTEGER(s) : -1;
}

/* One line a request, with what an operator needs: a request that
 * succeeded, one that failed over (node 0 answers 500), one refused for its
 * credentials; the client's X-Request-Id comes back and reaches the node */
static void gw_access_log(void) {
    char path[] = "/tmp/ag_access_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    ag_sim_config cfg[2];
    memset(cfg, 0, sizeof cfg);
    cfg[0].tokens = cfg[1].tokens = 5;
    cfg[0].fault = "http500";
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.policy = AG_POLICY_ROUND_ROBIN;
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.access_log = path;
    go.token = "tok-12345";
    gw k;
    gw_open(&k, 2, cfg, &po, &go, NULL);
    REQUIRE(wait_up(&k, 2));
    const char body[] = "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":false}";
    char req[1024];
    int rl = snprintf(req, sizeof req,
                      "POST /api/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-12345\r\nX-Request-Id: req-abc-1\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
    for (int i = 0; i < 3; i++) { /* round robin: one of them meets node 0 first and fails over */
        char *r = raw(&k, req, (size_t)rl, 10);
        CHECK(strstr(r, "HTTP/1.1 200") == r);
        CHECK(strstr(r, "\r\nX-Request-Id: req-abc-1\r\n") != NULL);
        free(r);
    }
    char v[128];
    CHECK(ag_sim_last_header(k.sim[1], "/api/chat", "X-Request-Id", v, sizeof v) && !strcmp(v, "req-abc-1"));
    char *r = RAW(&k, "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); /* no credentials */
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    CHECK(strstr(r, "\r\nX-Request-Id: ") != NULL); /* one is made when the client sends none */
    free(r);
    /* the down node's reason, for the dashboard and /metrics */
    ag_node_info info[2];
    size_t n = ag_pool_nodes(k.pool, info, 2);
    int saw_reason = 0;
    for (size_t i = 0; i < n && i < 2; i++) saw_reason |= strstr(info[i].reason, "EHTTP") != NULL;
    CHECK(saw_reason);
    gw_close(&k);
    yajl_val l[64];
    int nl = log_lines(path, l, 64);
    CHECK_INT(nl, 4);
    int ok200 = 0, failover = 0, refused = 0;
    for (int i = 0; i < nl; i++) {
        CHECK(strlen(ystr(l[i], "time")) == 24 && ystr(l[i], "time")[23] == 'Z');
        CHECK(strlen(ystr(l[i], "trace_id")) == 32);
        CHECK(strcmp(ystr(l[i], "client"), "127.0.0.1") == 0);
        if (yint(l[i], "status") == 401) {
            refused++;
            CHECK(strcmp(ystr(l[i], "path"), "/api/tags") == 0);
            CHECK(strstr(ystr(l[i], "error"), "unauthorized") != NULL);
            CHECK(strlen(ystr(l[i], "request_id")) == 32);
            continue;
        }
        CHECK_INT(yint(l[i], "status"), 200);
        CHECK(strcmp(ystr(l[i], "request_id"), "req-abc-1") == 0);
        CHECK(strcmp(ystr(l[i], "model"), "llama3.2") == 0);
        CHECK(strcmp(ystr(l[i], "method"), "POST") == 0);
        CHECK_INT(yint(l[i], "bytes_in"), (long long)strlen(body));
        CHECK(yint(l[i], "bytes_out") > 20);
        CHECK_INT(yint(l[i], "tokens_out"), 5);
        CHECK(yint(l[i], "tokens_in") > 0);
        const char *ap[] = {"attempts", NULL};
        yajl_val at = yajl_tree_get(l[i], ap, yajl_t_array);
        REQUIRE(at);
        size_t na = at->u.array.len;
        ok200++;
        const char *last = ystr(at->u.array.values[na - 1], "outcome");
        CHECK(strcmp(last, "ok") == 0);
        if (na == 2) {
            failover++;
            CHECK(strcmp(ystr(at->u.array.values[0], "outcome"), "EHTTP") == 0);
            CHECK_INT(yint(at->u.array.values[0], "http_status"), 500);
            CHECK(strcmp(ystr(at->u.array.values[0], "node"), ystr(at->u.array.values[1], "node")) != 0);
        }
    }
    CHECK_INT(ok200, 3);
    CHECK(failover >= 1);
    CHECK_INT(refused, 1);
    for (int i = 0; i < nl; i++) yajl_tree_free(l[i]);
    unlink(path);
}

/* a small OTLP/HTTP receiver: each POST body kept */
typedef struct otlp_rx {
    struct evhttp *http;
    int port, posts;
    char *bodies[16];
} otlp_rx;
static void otlp_rx_cb(struct evhttp_request *req, void *arg) {
    otlp_rx *x = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (x->posts < 16 && !strcmp(evhttp_request_get_uri(req), "/v1/traces")) {
        x->bodies[x->posts] = malloc(n + 1);
        evbuffer_copyout(in, x->bodies[x->posts], n);
        x->bodies[x->posts++][n] = 0;
    }
    evhttp_send_reply(req, 200, "OK", NULL);
}

/* every span of every batch received, by id */
static yajl_val find_span(otlp_rx *x, yajl_val *keep, const char *key, const char *val) {
    for (int b = 0; b < x->posts; b++) {
        if (!keep[b]) keep[b] = yajl_tree_parse(x->bodies[b], NULL, 0);
        const char *rp[] = {"resourceSpans", NULL};
        yajl_val rs = yajl_tree_get(keep[b], rp, yajl_t_array);
        for (size_t i = 0; rs && i < rs->u.array.len; i++) {
            const char *sp[] = {"scopeSpans", NULL};
            yajl_val ss = yajl_tree_get(rs->u.array.values[i], sp, yajl_t_array);
            for (size_t j = 0; ss && j < ss->u.array.len; j++) {
                const char *pp[] = {"spans", NULL};
                yajl_val spans = yajl_tree_get(ss->u.array.values[j], pp, yajl_t_array);
                for (size_t k = 0; spans && k < spans->u.array.len; k++)
                    if (!strcmp(ystr(spans->u.array.values[k], key), val)) return spans->u.array.values[k];
            }
        }
    }
    return NULL;
}

static int span_has_attr(yajl_val span, const char *key) {
    const char *ap[] = {"attributes", NULL};
    yajl_val a = yajl_tree_get(span, ap, yajl_t_array);
    for (size_t i = 0; a && i < a->u.array.len; i++)
        if (!strcmp(ystr(a->u.array.values[i], "key"), key)) return 1;
    return 0;
}

/* W3C trace context through the gateway, and the spans exported: the
 * client's trace is kept, the gateway's span is the child of the client's,
 * each attempt a child of the gateway's, and the node gets the attempt's
 * span as its parent. A collector that is down costs spans, not requests. */
static void gw_traces(void) {
    /* the receiver's socket first (its port goes into the gateway's options),
     * served on the gateway's loop once that exists */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(lfd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 16) == 0);
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    evutil_make_socket_nonblocking(lfd);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    ag_sim_config cfg[2];
    memset(cfg, 0, sizeof cfg);
    cfg[0].tokens = cfg[1].tokens = 4;
    cfg[0].fault = "http500"; /* so that one request has two attempts */
    ag_pool_options po;
    memset(&po, 0, sizeof po);
    po.policy = AG_POLICY_ROUND_ROBIN;
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.otlp_endpoint = ep;
    gw k;
    gw_open(&k, 2, cfg, &po, &go, NULL);
    otlp_rx x;
    memset(&x, 0, sizeof x);
    x.http = evhttp_new(k.base);
    REQUIRE(evhttp_accept_socket(x.http, lfd) == 0);
    evhttp_set_gencb(x.http, otlp_rx_cb, &x);
    REQUIRE(wait_up(&k, 2));
    const char *trace = "4bf92f3577b34da6a3ce929d0e0e4736", *parent = "00f067aa0ba902b7";
    const char body[] = "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char req[1024], seen[2][128] = {"", ""};
    int rl = snprintf(req, sizeof req,
                      "POST /api/chat HTTP/1.1\r\nHost: x\r\ntraceparent: 00-%s-%s-01\r\ntracestate: vendor=opaque\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", trace, parent, strlen(body), body);
    for (int i = 0; i < 2; i++) {
        char *r = raw(&k, req, (size_t)rl, 10);
        CHECK(strstr(r, "HTTP/1.1 200") == r);
        free(r);
        CHECK(ag_sim_last_header(k.sim[1], "/api/chat", "traceparent", seen[i], sizeof seen[i]) != NULL);
    }
    /* the node got the client's trace, a parent of its own, the flags and the state */
    char want[80];
    snprintf(want, sizeof want, "00-%s-", trace);
    CHECK(strncmp(seen[1], want, strlen(want)) == 0);
    CHECK(strlen(seen[1]) == 55 && strcmp(seen[1] + 53, "01") == 0);
    CHECK(strncmp(seen[1] + 36, parent, 16) != 0);
    char ts[64];
    CHECK(ag_sim_last_header(k.sim[1], "/api/chat", "tracestate", ts, sizeof ts) && !strcmp(ts, "vendor=opaque"));
    /* the exporter sends each second: until the five spans are in (bounded) */
    for (int t = 0; t < 400; t++) {
        int spans = 0;
        for (int b = 0; b < x.posts; b++)
            for (const char *p = x.bodies[b]; (p = strstr(p, "\"kind\":")); p += 7) spans++;
        if (spans >= 5) break;
        run_for(k.base, 0.01);
    }
    if (!x.posts) {
        char *m = RAW(&k, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        const char *d = strstr(m, "agents_otlp");
        fprintf(stderr, "no spans came: %.600s\n", d ? d : m);
        free(m);
    }
    REQUIRE(x.posts > 0);
    yajl_val keep[16] = {0};
    /* the span the node saw as its parent: an attempt, whose parent is the
     * gateway's span, whose parent is the client's */
    char node_parent[17];
    snprintf(node_parent, sizeof node_parent, "%.16s", seen[1] + 36);
    yajl_val at = find_span(&x, keep, "spanId", node_parent);
    if (!at) fprintf(stderr, "node saw %s; spans: %s\n", seen[1], x.posts ? x.bodies[0] : "");
    REQUIRE(at);
    CHECK(strcmp(ystr(at, "traceId"), trace) == 0);
    CHECK_INT(yint(at, "kind"), 3);
    CHECK(span_has_attr(at, "server.address"));
    yajl_val srv = find_span(&x, keep, "spanId", ystr(at, "parentSpanId"));
    REQUIRE(srv);
    CHECK_INT(yint(srv, "kind"), 2);
    CHECK(strcmp(ystr(srv, "parentSpanId"), parent) == 0);
    CHECK(strcmp(ystr(srv, "traceState"), "vendor=opaque") == 0);
    CHECK(span_has_attr(srv, "gen_ai.request.model"));
    CHECK(span_has_attr(srv, "gen_ai.usage.output_tokens"));
    CHECK(span_has_attr(srv, "gen_ai.usage.input_tokens"));
    /* spans: two servers; an attempt each, and one more for each that failed over (an error) */
    int servers = 0, attempts = 0, errs = 0;
    for (int b = 0; b < x.posts; b++) {
        for (const char *p = x.bodies[b]; (p = strstr(p, "\"kind\":")); p += 7) {
            servers += p[7] == '2';
            attempts += p[7] == '3';
        }
        for (const char *p = x.bodies[b]; (p = strstr(p, "\"status\":{\"code\":2")); p++) errs++;
    }
    /* (round robin: one or both met node 0 first) */
    CHECK_INT(servers, 2);
    CHECK(errs >= 1 && errs <= 2);
    CHECK_INT(attempts, 2 + errs);
    for (int b = 0; b < 16; b++) {
        if (keep[b]) yajl_tree_free(keep[b]);
        free(x.bodies[b]);
    }
    evhttp_free(x.http);
    gw_close(&k);

    /* a collector that is down: the requests are answered; the spans dropped and counted */
    go.otlp_endpoint = "http://127.0.0.1:1";
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    for (int i = 0; i < 3; i++) {
        char *r = raw(&k, req, (size_t)rl, 10);
        CHECK(strstr(r, "HTTP/1.1 200") == r);
        free(r);
    }
    run_for(k.base, 1.5);
    char *m = RAW(&k, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const char *d = strstr(m, "\nagents_otlp_spans_dropped_total ");
    CHECK(d && atoi(strchr(d + 1, ' ') + 1) >= 6);
    free(m);
    gw_close(&k);
}

/* Histograms that several gateways can add up: buckets that only grow, a
 * count that is the number of requests, token counters per key and model */
static void gw_histograms(void) {
    gw k;
    gw_open(&k, 2, NULL, NULL, NULL, NULL);
    REQUIRE(wait_up(&k, 2));
    ag_message msg = {"user", "hello", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &msg, .n_messages = 1};
    long long out_tokens = 0;
    for (int i = 0; i < 5; i++) {
        ag_sync_out o;
        CHECK_INT(ag_chat_sync(k.via, &p, NULL, NULL, &o), 0);
        if (o.result) out_tokens += o.result->server.eval_count;
        ag_sync_out_free(&o);
    }
    char *m = RAW(&k, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const char *fams[] = {"agents_request_ttft_seconds", "agents_request_duration_seconds", "agents_request_queue_seconds"};
    for (int f = 0; f < 3; f++) {
        char pre[96];
        snprintf(pre, sizeof pre, "\n%s_bucket{", fams[f]);
        long long total_inf = 0, count = 0;
        for (const char *q = m; (q = strstr(q, pre)); q++) {
            /* one series: its buckets in order, each at least the one before */
            const char *eol = strchr(q + 1, '\n');
            const char *le = strstr(q, "le=\"");
            if (!le || le > eol) continue;
            static long long prev;
            const char *br = memchr(q + 1, '}', (size_t)(eol - q - 1));
            REQUIRE(br);
            long long v = atoll(br + 2);
            if (!strncmp(le + 4, "0.005\"", 6)) prev = 0;
            CHECK(v >= prev);
            prev = v;
            if (!strncmp(le + 4, "+Inf\"", 5)) total_inf += v;
        }
        snprintf(pre, sizeof pre, "\n%s_count{", fams[f]);
        for (const char *q = m; (q = strstr(q, pre)); q++) count += atoll(strchr(q, '}') + 2);
        CHECK_INT(total_inf, 5);
        CHECK_INT(count, 5);
    }
    const char *t = strstr(m, "agents_tokens_total{key=\"\",model=\"llama3.2\",direction=\"out\"} ");
    CHECK(t && atoll(strchr(t, '}') + 2) == out_tokens);
    CHECK(strstr(m, "agents_node_info{node=\"127.0.0.1:") != NULL);
    free(m);
    gw_close(&k);
}


/* Errors the gateway answers itself come in the shape of the request's API
 * family: Ollama's on /api, OpenAI's on /v1, Anthropic's on /v1/messages;
 * Anthropic's clients' x-api-key is a key like a Bearer token */
static void gw_error_shapes(void) {
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.token = "tok-12345";
    go.max_body = 4096;
    gw k;
    gw_open(&k, 1, NULL, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    char *r = RAW(&k, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    CHECK(strstr(r, "{\"error\":{\"message\":\"unauthorized") != NULL);
    CHECK(strstr(r, "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}") != NULL);
    free(r);
    r = RAW(&k, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    CHECK(strstr(r, "\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"unauthorized") != NULL);
    free(r);
    r = RAW(&k, "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    CHECK(strstr(r, "\r\n\r\n{\"error\":\"unauthorized") != NULL);
    free(r);
    /* a body over the cap, refused at its head: OpenAI's shape on /v1 */
    r = RAW(&k, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-12345\r\nContent-Length: 999999\r\n"
                "Connection: close\r\n\r\n");
    CHECK(strstr(r, "HTTP/1.1 413") == r);
    CHECK(strstr(r, "{\"error\":{\"message\":\"request body over the size limit\",\"type\":\"api_error\"") != NULL);
    free(r);
    /* x-api-key: a key; a wrong one is refused as any */
    const char body[] = "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char req[512];
    int rl = snprintf(req, sizeof req, "POST /api/chat HTTP/1.1\r\nHost: x\r\nx-api-key: tok-12345\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n%s", strlen(body), body);
    r = raw(&k, req, (size_t)rl, 10);
    CHECK(strstr(r, "HTTP/1.1 200") == r);
    free(r);
    rl = snprintf(req, sizeof req, "POST /api/chat HTTP/1.1\r\nHost: x\r\nx-api-key: wrong-key-1\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n%s", strlen(body), body);
    r = raw(&k, req, (size_t)rl, 10);
    CHECK(strstr(r, "HTTP/1.1 401") == r);
    free(r);
    /* a route not served, on /v1/messages: Anthropic's not_found_error */
    r = RAW(&k, "GET /v1/messages/nothing HTTP/1.1\r\nHost: x\r\nx-api-key: tok-12345\r\nConnection: close\r\n\r\n");
    CHECK(strstr(r, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\"") != NULL);
    free(r);
    gw_close(&k);
}


/* Anthropic's Messages and the Responses API pass through undecoded; their
 * usage is still read (from the answer's end) for the key, the log and the
 * metrics, whole and streamed */
static void gw_usage_passthrough(void) {
    char path[] = "/tmp/ag_usage_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.tokens = 7;
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.access_log = path;
    gw k;
    gw_open(&k, 1, &cfg, NULL, &go, NULL);
    REQUIRE(wait_up(&k, 1));
    const char *bodies[4] = {
        "{\"model\":\"llama3.2\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"llama3.2\",\"max_tokens\":64,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"llama3.2\",\"input\":\"hi\",\"max_output_tokens\":4}",
        "{\"model\":\"llama3.2\",\"input\":\"hi\",\"stream\":true}"};
    const char *paths[4] = {"/v1/messages", "/v1/messages", "/v1/responses", "/v1/responses"};
    const long long want[4] = {5, 7, 4, 7};
    for (int i = 0; i < 4; i++) {
        int st;
        char *r = post(&k, paths[i], bodies[i], &st);
        CHECK_INT(st, 200);
        free(r);
    }
    char *m = RAW(&k, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const char *t = strstr(m, "agents_tokens_total{key=\"\",model=\"llama3.2\",direction=\"out\"} ");
    CHECK(t && atoll(strchr(t, '}') + 2) == 5 + 7 + 4 + 7);
    free(m);
    gw_close(&k);
    yajl_val l[16];
    int nl = log_lines(path, l, 16);
    CHECK_INT(nl, 5); /* (and the /metrics request's) */
    for (int i = 0; i < 4 && i < nl; i++) {
        CHECK(strcmp(ystr(l[i], "path"), paths[i]) == 0);
        if (yint(l[i], "tokens_out") != want[i]) fprintf(stderr, "line %d: tokens_out %lld\n", i, yint(l[i], "tokens_out"));
        CHECK(yint(l[i], "tokens_out") == want[i]);
        CHECK(yint(l[i], "tokens_in") > 0);
    }
    for (int i = 0; i < nl; i++) yajl_tree_free(l[i]);
    unlink(path);
}

T_MAIN(T(gw_chat_generate_embed_same_as_node),
       T(gw_tags_merged),
       T(gw_openai_routes), T(gw_translates), T(gw_session_header), T(gw_keys),
       T(gw_keys_admin_routes), T(gw_keys_model_case), T(gw_keys_file_hostile), T(gw_keys_many), T(gw_status_per_cause), T(gw_keys_window_slides), T(gw_tool_args_hostile), T(gw_keepalive_node),
       T(gw_failover_before_first_byte), T(gw_failover_malformed_first),
       T(gw_failover_empty_body), T(gw_failover_blank_then_close),
       T(gw_error_line_after_output),
       T(gw_node_killed_before_output),
       T(gw_node_killed_mid_stream),
       T(gw_malformed_requests),
       T(gw_slow_loris),
       T(gw_limits_and_token),
       T(gw_client_disconnect_cancels),
       T(gw_admin_and_http10), T(gw_pull_all), T(gw_pull_all_hostile),
       T(gw_dashboard_and_metrics),
       T(gw_pipelined_nonreader), T(gw_token_checked_at_head), T(gw_buffered_total_cap),
       T(gw_nonreading_client_times_out), T(gw_nonreading_slow_stream), T(gw_clients_per_ip), T(gw_emfile_backs_off), T(gw_hostile_node_and_query),
       T(gw_deep_request_to_node), T(gw_access_log), T(gw_traces), T(gw_histograms), T(gw_error_shapes), T(gw_usage_passthrough))
