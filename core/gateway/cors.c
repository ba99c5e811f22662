/* core/gateway/cors.c - browsers, with Ollama's rules: which origins may
 * call the gateway, and what a preflight is told. */
#include "core/gateway/gateway_internal.h"

#include <string.h>
#include <strings.h>

/* pattern with at most one '*' (any run of characters) */
static int origin_match(const char *pat, size_t pl, const char *o) {
    const char *star = memchr(pat, '*', pl);
    size_t ol = strlen(o);
    if (!star) return pl == ol && strncasecmp(pat, o, pl) == 0;
    size_t pre = (size_t)(star - pat), suf = pl - pre - 1;
    return ol >= pre + suf && strncasecmp(o, pat, pre) == 0 && strncasecmp(o + ol - suf, star + 1, suf) == 0;
}

int ag__gw_origin_ok(const ag_gateway *g, const char *o) {
    static const char *const defaults[] = {
        "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
        "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
        "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
        "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
        /* browser extensions */
        "chrome-extension://*", "safari-extension://*", "moz-extension://*", "ms-browser-extension://*"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (origin_match(defaults[i], strlen(defaults[i]), o)) return 1;
    for (const char *p = g->origins; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        while (l && (*p == ' ' || *p == '\t')) p++, l--;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t')) l--;
        if (l == 1 && *p == '*') return 1;
        if (l && origin_match(p, l, o)) return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

const char ag__gw_cors_preflight[] =
    "Access-Control-Allow-Methods: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS\r\n"
    "Access-Control-Allow-Headers: Authorization, Content-Type, User-Agent, Accept, X-Requested-With, "
    "OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, "
    "x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
    "x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
    "x-stainless-timeout, X-Agents-Node, X-Session-Id, X-Request-Deadline, X-Request-Id, traceparent, tracestate\r\n"
    "Access-Control-Max-Age: 43200\r\n";
