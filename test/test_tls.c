/* https nodes and credentials: a local TLS server with a certificate this
 * test makes (for localhost and 127.0.0.1), verification on by default, a CA
 * file, the insecure switch, a name mismatch; Basic and Bearer credentials
 * sent to their node only and never printed. */
#include "support.h"
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static char cert_path[128], key_path[128], other_cert[128], other_key[128];

static void make_cert(const char *cn, const char *san, const char *cpath, const char *kpath) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    REQUIRE(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cpath, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(kpath, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void setup(void) {
    if (cert_path[0]) return;
    snprintf(cert_path, sizeof cert_path, "/tmp/ag_tls_cert_%d.pem", (int)getpid());
    snprintf(key_path, sizeof key_path, "/tmp/ag_tls_key_%d.pem", (int)getpid());
    snprintf(other_cert, sizeof other_cert, "/tmp/ag_tls_cert2_%d.pem", (int)getpid());
    snprintf(other_key, sizeof other_key, "/tmp/ag_tls_key2_%d.pem", (int)getpid());
    make_cert("localhost", "DNS:localhost,IP:127.0.0.1", cert_path, key_path);
    make_cert("elsewhere", "DNS:elsewhere.example", other_cert, other_key);
}
static void teardown(void) {
    unlink(cert_path);
    unlink(key_path);
    unlink(other_cert);
    unlink(other_key);
    cert_path[0] = 0;
}

typedef struct tls_env {
    struct event_base *base;
    ag_sim *sim;
    int port;
} tls_env;

static void tls_open(tls_env *t, const char *cert, const char *key) {
    setup();
    t->base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = 5, .tls_cert = cert, .tls_key = key};
    t->sim = ag_sim_new(t->base, "127.0.0.1", 0, &cfg);
    REQUIRE(t->sim);
    t->port = ag_sim_port(t->sim);
}
static void tls_close(tls_env *t) {
    event_base_loop(t->base, EVLOOP_NONBLOCK);
    ag_sim_free(t->sim);
    event_base_free(t->base);
}

static int version_via(tls_env *t, ag_client_options *co, ag_sync_out *out) {
    ag_client *c = ag_client_new(t->base, co, NULL);
    REQUIRE(c);
    int rc = ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, out);
    ag_client_free(c);
    return rc;
}

static void verified(void) {
    tls_env t;
    tls_open(&t, cert_path, key_path);
    char host[64];
    snprintf(host, sizeof host, "https://127.0.0.1:%d", t.port);
    ag_client_options co = {.host = host, .tls_ca_file = cert_path};
    ag_sync_out out;
    CHECK_INT(version_via(&t, &co, &out), 0);
    CHECK_STR(out.result->version, "0.12.6-sim");
    ag_sync_out_free(&out);
    /* a streamed chat over TLS, and keep-alive reuse */
    ag_client *c = ag_client_new(t.base, &co, NULL);
    ag_message m = {"user", "tls", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    for (int i = 0; i < 3; i++) {
        CHECK_INT(ag_chat_sync(c, &p, NULL, NULL, &out), 0);
        CHECK(out.text && strlen(out.text) > 0);
        ag_sync_out_free(&out);
    }
    ag_client_stats st;
    ag_client_get_stats(c, &st);
    CHECK_INT(st.connections_opened, 1);
    ag_client_free(c);
    tls_close(&t);
    teardown();
}

static void unknown_ca(void) {
    tls_env t;
    tls_open(&t, cert_path, key_path);
    char host[64];
    snprintf(host, sizeof host, "https://127.0.0.1:%d", t.port);
    ag_client_options co = {.host = host}; /* the system's CAs do not know it */
    ag_sync_out out;
    CHECK_INT(version_via(&t, &co, &out), AG_ETLS);
    CHECK(strstr(out.result->error, "TLS") != NULL);
    CHECK(strstr(out.result->error, "certificate") != NULL);
    ag_sync_out_free(&out);
    co.tls_insecure = 1; /* the explicit switch */
    CHECK_INT(version_via(&t, &co, &out), 0);
    ag_sync_out_free(&out);
    tls_close(&t);
    teardown();
}

static void wrong_name(void) {
    tls_env t;
    tls_open(&t, other_cert, other_key); /* a valid certificate, for another name */
    char host[64];
    snprintf(host, sizeof host, "https://127.0.0.1:%d", t.port);
    ag_client_options co = {.host = host, .tls_ca_file = other_cert};
    ag_sync_out out;
    CHECK_INT(version_via(&t, &co, &out), AG_ETLS);
    CHECK(strstr(out.result->error, "mismatch") != NULL);
    ag_sync_out_free(&out);
    /* plain http to a TLS port: a clear failure, not a hang */
    snprintf(host, sizeof host, "http://127.0.0.1:%d", t.port);
    ag_client_options plain = {.host = host, .idle_timeout = 2};
    int rc = version_via(&t, &plain, &out);
    CHECK(rc == AG_EPROTO || rc == AG_ECONNRESET || rc == AG_EHTTP || rc == AG_EBADREQUEST);
    ag_sync_out_free(&out);
    tls_close(&t);
    teardown();
}

static void credentials(void) {
    env e;
    env_open(&e, NULL, NULL);
    char host[128];
    /* Basic from the address, percent-escapes decoded */
    snprintf(host, sizeof host, "http://alice:s%%40cret@127.0.0.1:%d", ag_sim_port(e.sim));
    ag_client_options co = {.host = host};
    ag_client *c = ag_client_new(e.base, &co, NULL);
    ag_sync_out out;
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), 0);
    CHECK_STR(ag_sim_last_auth(e.sim), "Basic YWxpY2U6c0BjcmV0"); /* alice:s@cret */
    CHECK(strstr(out.result->node, "alice") == NULL && strstr(out.result->node, "cret") == NULL);
    ag_sync_out_free(&out);
    ag_client_free(c);
    /* Bearer from the options */
    snprintf(host, sizeof host, "127.0.0.1:%d", ag_sim_port(e.sim));
    ag_client_options cb = {.host = host, .bearer_token = "tok-123"};
    c = ag_client_new(e.base, &cb, NULL);
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), 0);
    CHECK_STR(ag_sim_last_auth(e.sim), "Bearer tok-123");
    ag_sync_out_free(&out);
    ag_client_free(c);
    /* a token with a line break never reaches a header */
    ag_client_options bad = {.host = host, .bearer_token = "x\r\nX-Evil: 1"};
    c = ag_client_new(e.base, &bad, NULL);
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), 0);
    CHECK(ag_sim_last_auth(e.sim) == NULL);
    ag_sync_out_free(&out);
    ag_client_free(c);
    /* no credentials: no header */
    ag_client_options none = {.host = host};
    c = ag_client_new(e.base, &none, NULL);
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), 0);
    CHECK(ag_sim_last_auth(e.sim) == NULL);
    ag_sync_out_free(&out);
    ag_client_free(c);
    env_close(&e);
}

/* a pool: each node's credentials go to that node only; errors name nodes
 * without their secrets */
static void pool_credentials(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim *a = ag_sim_new(base, "127.0.0.1", 0, NULL), *b = ag_sim_new(base, "127.0.0.1", 0, NULL);
    char nodes[256];
    snprintf(nodes, sizeof nodes, "http://tokenA@127.0.0.1:%d,http://bob:pw@127.0.0.1:%d", ag_sim_port(a), ag_sim_port(b));
    ag_pool_options po = {.nodes = nodes, .probe_interval = -1, .policy = AG_POLICY_ROUND_ROBIN};
    ag_client *c = ag_pool_new(base, &po, NULL);
    REQUIRE(c);
    for (int i = 0; i < 4; i++) {
        ag_sync_out out;
        const char *t[] = {"x"};
        ag_embed_params ep = {.model = "nomic-embed-text", .inputs = t, .n_inputs = 1, .truncate = -1};
        CHECK_INT(ag_embed_sync(c, &ep, &out), 0);
        CHECK(strstr(out.result->node, "tokenA") == NULL && strstr(out.result->node, "pw") == NULL);
        ag_sync_out_free(&out);
    }
    CHECK_STR(ag_sim_last_auth(a), "Bearer tokenA");
    CHECK_STR(ag_sim_last_auth(b), "Basic Ym9iOnB3"); /* bob:pw */
    ag_node_info info[2];
    ag_pool_nodes(c, info, 2);
    CHECK(strstr(info[0].name, "tokenA") == NULL);
    CHECK(strstr(info[1].name, "bob") == NULL);
    ag_client_free(c);
    ag_sim_free(a);
    ag_sim_free(b);
    event_base_free(base);
}

/* a pool mixing an https node, an https node whose certificate names another
 * host, and a plain node: every request is served (the bad certificate is a
 * node failure the pool routes around), the token goes to its node only */
typedef struct mixed_req {
    int done, status;
    char node[64];
    size_t len;
} mixed_req;
static void mixed_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    if (ch->kind == AG_CHUNK_CONTENT) ((mixed_req *)ud)->len += ch->len;
}
static void mixed_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    mixed_req *m = ud;
    m->status = res->status;
    snprintf(m->node, sizeof m->node, "%s", res->node ? res->node : "");
    m->done = 1;
}
static void mixed_https_pool(void) {
    setup();
    struct event_base *base = ag_sim_base_new();
    ag_sim_config good = {.tokens = 6, .tls_cert = cert_path, .tls_key = key_path};
    ag_sim_config bad = {.tokens = 6, .tls_cert = other_cert, .tls_key = other_key};
    ag_sim_config plain = {.tokens = 6};
    ag_sim *a = ag_sim_new(base, "127.0.0.1", 0, &good), *b = ag_sim_new(base, "127.0.0.1", 0, &bad),
           *p = ag_sim_new(base, "127.0.0.1", 0, &plain);
    REQUIRE(a && b && p);
    char nodes[300];
    snprintf(nodes, sizeof nodes, "https://tokA@127.0.0.1:%d,https://127.0.0.1:%d,http://127.0.0.1:%d",
             ag_sim_port(a), ag_sim_port(b), ag_sim_port(p));
    ag_pool_options po = {.nodes = nodes, .policy = AG_POLICY_ROUND_ROBIN, .probe_interval = -1,
                          .retry_budget = 3};
    po.client.tls_ca_file = cert_path;
    ag_client *c = ag_pool_new(base, &po, NULL);
    REQUIRE(c);
    enum { N = 24 };
    static mixed_req m[N];
    memset(m, 0, sizeof m);
    ag_message msg = {"user", "mixed", NULL, NULL, 0, NULL, NULL};
    ag_chat_params cp = {.model = "llama3.2", .messages = &msg, .n_messages = 1};
    for (int i = 0; i < N; i++) {
        ag_callbacks cb = {mixed_chunk, mixed_done, &m[i]};
        CHECK_INT(ag_chat(c, &cp, &cb, NULL), 0);
    }
    int done = 0;
    for (int t = 0; t < 500 && done < N; t++) {
        run_for(base, 0.02);
        done = 0;
        for (int i = 0; i < N; i++) done += m[i].done;
    }
    CHECK_INT(done, N);
    char an[64], pn[64], bn[64];
    snprintf(an, sizeof an, "127.0.0.1:%d", ag_sim_port(a));
    snprintf(bn, sizeof bn, "127.0.0.1:%d", ag_sim_port(b));
    snprintf(pn, sizeof pn, "127.0.0.1:%d", ag_sim_port(p));
    int on_a = 0, on_p = 0, on_b = 0;
    for (int i = 0; i < N; i++) {
        CHECK_INT(m[i].status, 0);
        CHECK(m[i].len > 0);
        on_a += strcmp(m[i].node, an) == 0;
        on_b += strcmp(m[i].node, bn) == 0;
        on_p += strcmp(m[i].node, pn) == 0;
    }
    CHECK(on_a > 0 && on_p > 0);
    CHECK_INT(on_a + on_p, N);
    CHECK_INT(on_b, 0);
    CHECK_STR(ag_sim_last_auth(a), "Bearer tokA");
    CHECK(ag_sim_last_auth(p) == NULL); /* the https node's token stays with it */
    ag_node_info info[3];
    CHECK_INT(ag_pool_nodes(c, info, 3), 3);
    CHECK(info[1].errors > 0);
    CHECK_INT(info[0].errors, 0);
    ag_client_free(c);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ag_sim_free(a);
    ag_sim_free(b);
    ag_sim_free(p);
    event_base_free(base);
    teardown();
}

/* a simulated node (plain HTTP) and a pool of it, for a gateway to serve */
static ag_client *pool_of_one(struct event_base **base, ag_sim **sim) {
    *base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = 5};
    *sim = ag_sim_new(*base, "127.0.0.1", 0, &cfg);
    REQUIRE(*sim);
    char node[64];
    snprintf(node, sizeof node, "127.0.0.1:%d", ag_sim_port(*sim));
    ag_pool_options po = {.nodes = node, .probe_interval = -1};
    ag_client *pool = ag_pool_new(*base, &po, NULL);
    REQUIRE(pool);
    return pool;
}

/* The gateway over https: streamed chats with keep-alive through it, its
 * own certificate checked by the client, plain HTTP refused on its port, a
 * certificate that does not load refused at creation */
static void gateway_https(void) {
    setup();
    struct event_base *base;
    ag_sim *sim;
    ag_client *pool = pool_of_one(&base, &sim);
    int err = 0;
    ag_gateway_options go = {.listen = "127.0.0.1:0", .tls_cert = cert_path, .tls_key = key_path};
    ag_gateway *g = ag_gateway_new(base, pool, &go, &err);
    REQUIRE(g);
    char host[64];
    snprintf(host, sizeof host, "https://127.0.0.1:%d", ag_gateway_port(g));
    ag_client_options co = {.host = host, .tls_ca_file = cert_path};
    ag_client *c = ag_client_new(base, &co, NULL);
    REQUIRE(c);
    ag_message m = {"user", "through tls", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_sync_out out;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(ag_chat_sync(c, &p, NULL, NULL, &out), 0);
        CHECK(out.text && strlen(out.text) > 0);
        ag_sync_out_free(&out);
    }
    ag_client_stats st;
    ag_client_get_stats(c, &st);
    CHECK_INT(st.connections_opened, 1); /* keep-alive over TLS */
    ag_client_free(c);
    /* the system's CAs do not know it: refused by the client */
    ag_client_options unk = {.host = host};
    c = ag_client_new(base, &unk, NULL);
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out), AG_ETLS);
    ag_sync_out_free(&out);
    ag_client_free(c);
    /* plain HTTP on the https port: no answer in plain text */
    snprintf(host, sizeof host, "127.0.0.1:%d", ag_gateway_port(g));
    ag_client_options plain = {.host = host};
    c = ag_client_new(base, &plain, NULL);
    CHECK(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &out) != 0);
    ag_sync_out_free(&out);
    ag_client_free(c);
    ag_gateway_free(g);
    /* a key that is not the certificate's */
    ag_gateway_options bad = {.listen = "127.0.0.1:0", .tls_cert = cert_path, .tls_key = other_key};
    CHECK(ag_gateway_new(base, pool, &bad, &err) == NULL);
    CHECK_INT(err, AG_ETLS);
    ag_gateway_options half = {.listen = "127.0.0.1:0", .tls_cert = cert_path};
    CHECK(ag_gateway_new(base, pool, &half, &err) == NULL);
    ag_client_free(pool);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ag_sim_free(sim);
    event_base_free(base);
    teardown();
}


/* a TCP connection to 127.0.0.1:port that sends nothing (a handshake never begun) */
static int idle_connect(int port) {
    return t_tcp_connect(port, 0);
}

/* 1 when the server closed fd (EOF or reset) */
static int closed_by_server(int fd) {
    char b[64];
    ssize_t r = recv(fd, b, sizeof b, 0);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Half-finished TLS handshakes hold no place for long, and one address
 * holds at most max_clients_per_ip places: 40 connections that never start
 * their handshake do not lock a client out */
static void gateway_handshake_flood(void) {
    setup();
    struct event_base *base;
    ag_sim *sim;
    ag_client *pool = pool_of_one(&base, &sim);
    int err = 0;
    /* the handshake's timeout is the idle timeout when that is shorter (10 s otherwise) */
    ag_gateway_options go = {.listen = "127.0.0.1:0", .tls_cert = cert_path, .tls_key = key_path,
                             .max_clients = 16, .max_clients_per_ip = 8, .idle_timeout = 0.4};
    ag_gateway *g = ag_gateway_new(base, pool, &go, &err);
    REQUIRE(g);
    int port = ag_gateway_port(g);
    int fds[40];
    for (int i = 0; i < 40; i++) {
        fds[i] = idle_connect(port);
        run_for(base, 0.002);
    }
    run_for(base, 0.05);
    ag_gateway_stats gs;
    ag_gateway_get_stats(g, &gs);
    CHECK_INT((int)gs.clients, 8);             /* one address: 8 places, not 16 */
    CHECK_INT((int)gs.rejected_per_ip, 32);
    int closed_now = 0;
    for (int i = 8; i < 40; i++) closed_now += closed_by_server(fds[i]);
    CHECK_INT(closed_now, 32);                 /* on a TLS port: closed, no plain text */
    /* past the handshake's timeout the 8 are dropped and a real client gets in */
    run_for(base, 0.6);
    ag_gateway_get_stats(g, &gs);
    CHECK_INT((int)gs.clients, 0);
    int closed_later = 0;
    for (int i = 0; i < 8; i++) closed_later += closed_by_server(fds[i]);
    CHECK_INT(closed_later, 8);
    for (int i = 0; i < 40; i++) close(fds[i]);
    char host[64];
    snprintf(host, sizeof host, "https://127.0.0.1:%d", port);
    ag_client_options co = {.host = host, .tls_ca_file = cert_path};
    ag_client *c = ag_client_new(base, &co, NULL);
    REQUIRE(c);
    ag_message m = {"user", "after the flood", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_sync_out out;
    CHECK_INT(ag_chat_sync(c, &p, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    /* a connection that finished its handshake is kept past the handshake's
     * timeout while it works (its idle timeout applies between requests) */
    CHECK_INT(ag_chat_sync(c, &p, NULL, NULL, &out), 0);
    ag_sync_out_free(&out);
    ag_client_free(c);
    ag_gateway_free(g);
    ag_client_free(pool);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ag_sim_free(sim);
    event_base_free(base);
    teardown();
}

T_MAIN(T(verified), T(unknown_ca), T(wrong_name), T(credentials), T(pool_credentials), T(mixed_https_pool), T(gateway_https), T(gateway_handshake_flood))
