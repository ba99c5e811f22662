/* OLLAMA_HOST parsing, case by case against what Ollama's envconfig does. */
#include "test.h"
#include <agents.h>

static void check(const char *in, int rc, const char *scheme, const char *host, int port,
                  const char *path) {
    ag_host h;
    int got = ag_host_parse(in, &h);
    t_checks++;
    if (got != rc || strcmp(h.scheme, scheme) || strcmp(h.host, host) || h.port != port ||
        strcmp(h.path, path)) {
        fprintf(stderr, "'%s': got rc=%d %s://%s:%d%s, expected rc=%d %s://%s:%d%s\n",
                in ? in : "(null)", got, h.scheme, h.host, h.port, h.path, rc, scheme, host, port, path);
        t_failures++;
    }
}

static void cases(void) {
    check(NULL, 0, "http", "127.0.0.1", 11434, "");
    check("", 0, "http", "127.0.0.1", 11434, "");
    check("   ", 0, "http", "127.0.0.1", 11434, "");
    check(":8080", 0, "http", "127.0.0.1", 8080, "");
    check("example.com", 0, "http", "example.com", 11434, "");
    check("example.com:56789", 0, "http", "example.com", 56789, "");
    check("http://example.com", 0, "http", "example.com", 80, "");
    check("https://example.com", 0, "https", "example.com", 443, "");
    check("http://example.com:1234", 0, "http", "example.com", 1234, "");
    check("  \"http://example.com:1234\"  ", 0, "http", "example.com", 1234, "");
    check("'10.0.0.2:7'", 0, "http", "10.0.0.2", 7, "");
    check("0.0.0.0", 0, "http", "0.0.0.0", 11434, "");
    check("[::1]:11435", 0, "http", "::1", 11435, "");
    check("[::1]", 0, "http", "::1", 11434, "");
    check("http://[fe80::1]:99", 0, "http", "fe80::1", 99, "");
    check("example.com/", 0, "http", "example.com", 11434, "");
    check("https://example.com:8443/ollama/", 0, "https", "example.com", 8443, "/ollama");
    check("http://proxy/base/path", 0, "http", "proxy", 80, "/base/path");
    check("example.com:99999", AG_EHOST, "http", "example.com", 11434, "");
    check("example.com:-1", AG_EHOST, "http", "example.com", 11434, "");
    check("example.com:abc", AG_EHOST, "http", "example.com", 11434, "");
    check("ftp://example.com", AG_EHOST, "http", "127.0.0.1", 11434, "");
    check("exa mple.com", AG_EHOST, "http", "127.0.0.1", 11434, "");
    check("http://h/a\r\nX: y", AG_EHOST, "http", "127.0.0.1", 80, "");
    /* found by the fuzzer: a "host" that no URL can carry */
    check("http:::1:131]44/base", AG_EHOST, "http", "127.0.0.1", 11434, "/base");
    check("exa$mple:80", AG_EHOST, "http", "127.0.0.1", 11434, "");
    check("[fe80::1%eth0]:5", 0, "http", "fe80::1%eth0", 5, "");
    check("user:pw@host:9", 0, "http", "host", 9, "");
}

static void format_roundtrip(void) {
    ag_host h;
    char buf[600];
    ag_host_parse("[::1]:5", &h);
    CHECK_STR(ag_host_format(&h, buf, sizeof buf), "http://[::1]:5");
    ag_host_parse("https://x.org/p/", &h);
    CHECK_STR(ag_host_format(&h, buf, sizeof buf), "https://x.org:443/p");
}

static void env(void) {
    ag_host h;
    setenv("OLLAMA_HOST", "10.1.2.3:4444", 1);
    CHECK_INT(ag_host_from_env(&h), 0);
    CHECK_STR(h.host, "10.1.2.3");
    CHECK_INT(h.port, 4444);
    unsetenv("OLLAMA_HOST");
    CHECK_INT(ag_host_from_env(&h), 0);
    CHECK_INT(h.port, 11434);
}

static void errors_named(void) {
    CHECK_STR(ag_err_name(AG_ECONNREFUSED), "ECONNREFUSED");
    CHECK_STR(ag_strerror(AG_ELOST), "connection lost after output was delivered");
    CHECK_STR(ag_strerror(12345), "unknown error");
    CHECK_STR(ag_err_name(0), "OK");
    CHECK_STR(ag_version(), AG_VERSION_STRING);
    CHECK_INT(ag_version_number(), AG_VERSION_NUMBER);
}

T_MAIN(T(cases), T(format_roundtrip), T(env), T(errors_named))
