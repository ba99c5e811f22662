/* core/tls.c - the client's TLS context and credentials. */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

int ag__client_tls(ag_client *c, struct ssl_ctx_st **out) {
    if (!c->tls) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) return AG_ETLS;
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (c->opt.tls_insecure) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
            int ok = c->opt.tls_ca_file ? SSL_CTX_load_verify_locations(ctx, c->opt.tls_ca_file, NULL)
                                        : SSL_CTX_set_default_verify_paths(ctx);
            if (ok != 1) {
                SSL_CTX_free(ctx);
                return AG_ETLS;
            }
        }
        c->tls = ctx;
    }
    *out = c->tls;
    return 0;
}

int ag__node_cfg_for(ag_client *c, const ag_host *h, ag__node_cfg *out) {
    ag__node_cfg nc = {c->base, c->opt.dns, h->host, h->port, c->opt.connect_timeout,
                       c->opt.idle_timeout, c->opt.first_byte_timeout, c->opt.max_connections,
                       c->opt.max_idle, c->opt.max_queue, c->alloc, NULL, 0};
    if (!strcmp(h->scheme, "https")) {
        int rc = ag__client_tls(c, &nc.tls);
        if (rc) return rc;
        nc.tls_verify = !c->opt.tls_insecure;
    }
    *out = nc;
    return 0;
}

int ag__dialect_of(const ag_client *c, const ag_host *h) {
    return h->dialect == AG_API_OPENAI || c->opt.api == AG_API_OPENAI ? AG_API_OPENAI : AG_API_OLLAMA;
}

static void b64(const unsigned char *in, size_t n, char *out, size_t size) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < size; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

static void basic(const char *user, const char *pass, char *out, size_t size) {
    char up[520], enc[720];
    int n = snprintf(up, sizeof up, "%s:%s", user, pass);
    if (n < 0 || (size_t)n >= sizeof up) n = (int)sizeof up - 1;
    b64((const unsigned char *)up, (size_t)n, enc, sizeof enc);
    snprintf(out, size, "Basic %s", enc);
}

static int clean(const char *s) {
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

void ag__auth_options(const ag_client_options *o, char *out, size_t size) {
    out[0] = 0;
    if (o->bearer_token && *o->bearer_token && clean(o->bearer_token))
        snprintf(out, size, "Bearer %s", o->bearer_token);
    else if (o->basic_user && clean(o->basic_user) && clean(o->basic_password))
        basic(o->basic_user, o->basic_password ? o->basic_password : "", out, size);
}

void ag__auth_value(const ag_host *h, const char *client_wide, char *out, size_t size) {
    if (h && h->user[0]) {
        if (h->has_password) basic(h->user, h->password, out, size);
        else snprintf(out, size, "Bearer %s", h->user);
    } else {
        snprintf(out, size, "%s", client_wide ? client_wide : "");
    }
}
