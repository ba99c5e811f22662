/* core/host.c - OLLAMA_HOST, parsed as Ollama's envconfig.Host() parses it. */
#include "agents/host.h"
#include "agents/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_defaults(ag_host *h) {
    memset(h, 0, sizeof *h);
    strcpy(h->scheme, "http");
    strcpy(h->host, "127.0.0.1");
    h->port = 11434;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* %XX decoding; control characters refused (they would reach a header) */
static int pct_decode(const char *s, char *out, size_t size) {
    size_t o = 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            c = hexval(s[1]) * 16 + hexval(s[2]);
            s += 2;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= size) return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 0;
}

/* a DNS name or an IPv4 address (letters, digits, '.', '-', '_'), or an IPv6
 * address (with an optional %zone); anything else cannot be reached and
 * would not survive being written back as a URL */
static int valid_host(const char *h) {
    if (strchr(h, ':')) {
        char a[128];
        size_t n = strcspn(h, "%");
        if (n >= sizeof a) return 0;
        memcpy(a, h, n);
        a[n] = 0;
        unsigned char buf[16];
        return inet_pton(AF_INET6, a, buf) == 1;
    }
    for (const char *q = h; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_') return 0;
    return 1;
}

static int bad_char(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) return 1;
    return 0;
}

int ag_host_parse(const char *in, ag_host *out) {
    set_defaults(out);
    if (!in) in = "";
    /* trim spaces, then quotes (Ollama: strings.Trim(s, "\"' ")) */
    const char *b = in, *e = in + strlen(in);
    while (b < e && (*b == ' ' || *b == '"' || *b == '\'' || *b == '\t')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '"' || e[-1] == '\'' || e[-1] == '\t')) e--;
    char buf[600];
    size_t n = (size_t)(e - b);
    if (n >= sizeof buf) return AG_EHOST;
    memcpy(buf, b, n);
    buf[n] = 0;
    char *s = buf;
    int default_port = 11434;
    if (!strncmp(s, "openai+", 7)) {
        out->dialect = AG_API_OPENAI;
        s += 7;
    } else if (!strncmp(s, "ollama+", 7)) {
        s += 7;
    }
    char *sep = strstr(s, "://");
    if (sep) {
        *sep = 0;
        if (strcmp(s, "http") == 0) default_port = 80;
        else if (strcmp(s, "https") == 0) default_port = 443;
        else return AG_EHOST;
        strcpy(out->scheme, default_port == 80 ? "http" : "https");
        s = sep + 3;
    }
    out->port = default_port;
    /* credentials: userinfo before the last '@' of the authority */
    size_t auth_len = strcspn(s, "/");
    char *at = NULL;
    for (char *q = s; q < s + auth_len; q++)
        if (*q == '@') at = q;
    if (at) {
        *at = 0;
        char *colon = strchr(s, ':');
        if (colon) *colon = 0;
        if (pct_decode(s, out->user, sizeof out->user) ||
            (colon && pct_decode(colon + 1, out->password, sizeof out->password)))
            return AG_EHOST;
        out->has_password = colon != NULL;
        s = at + 1;
    }
    /* a path after the host is the base path */
    char *slash = strchr(s, '/');
    if (slash) {
        size_t pl = strlen(slash);
        while (pl > 0 && slash[pl - 1] == '/') slash[--pl] = 0;
        if (pl >= sizeof out->path || bad_char(slash, pl)) return AG_EHOST;
        memcpy(out->path, slash, pl + 1);
        *slash = 0;
    }
    if (bad_char(s, strlen(s))) return AG_EHOST;
    /* split host:port like net.SplitHostPort; on failure the whole is the host */
    char *host = s, *port = NULL;
    if (s[0] == '[') {
        char *rb = strchr(s, ']');
        if (rb && rb[1] == ':') {
            *rb = 0;
            host = s + 1;
            port = rb + 2;
        } else if (rb && rb[1] == 0) {
            *rb = 0;
            host = s + 1;
        }
    } else {
        char *colon = strchr(s, ':');
        if (colon && !strchr(colon + 1, ':')) {
            *colon = 0;
            port = colon + 1;
        }
    }
    if (*host) {
        if (strlen(host) >= sizeof out->host || !valid_host(host)) return AG_EHOST;
        strcpy(out->host, host);
    }
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (!*port || *end || p < 0 || p > 65535) {
            out->port = default_port;
            return AG_EHOST;
        }
        out->port = (int)p;
    }
    return 0;
}

int ag_host_from_env(ag_host *out) {
    const char *h = getenv("OLLAMA_HOST");
    if (!h || !*h) h = getenv("OLLAMA_URL"); /* the original package's name for it */
    return ag_host_parse(h, out);
}

char *ag_host_format(const ag_host *h, char *buf, unsigned size) {
    if (strchr(h->host, ':'))
        snprintf(buf, size, "%s://[%s]:%d%s", h->scheme, h->host, h->port, h->path);
    else
        snprintf(buf, size, "%s://%s:%d%s", h->scheme, h->host, h->port, h->path);
    return buf;
}
