/* test/test.h - a tiny runner: each test is a function; `prog NAME` runs one
 * (ctest runs each in its own process with a timeout), `prog` runs all,
 * `prog --list` names them (what ctest registers). A case that checks
 * nothing fails; a case that cannot run here says T_SKIP(why) and exits
 * with T_SKIP_CODE, which ctest reports as skipped, not passed. */
#ifndef AG_TEST_H
#define AG_TEST_H
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern int t_failures, t_checks, t_skipped;
#define T_SKIP_CODE 77
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
            t_failures++;                                                                          \
        }                                                                                          \
    } while (0)
#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        t_checks++;                                                                                \
        if (_a != _b) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
            t_failures++;                                                                          \
        }                                                                                          \
    } while (0)
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        t_checks++;                                                                                \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                                   \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    _a ? _a : "(null)", _b ? _b : "(null)");                                      \
            t_failures++;                                                                          \
        }                                                                                          \
    } while (0)
#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        t_checks++;                                                                                \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #c);                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct t_case {
    const char *name;
    void (*fn)(void);
} t_case;

/* the case cannot run here (no IPv6 loopback, ...): reported as skipped */
#define T_SKIP(why)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "skipped: %s\n", why);                                                     \
        t_skipped = 1;                                                                             \
        return;                                                                                    \
    } while (0)

#define T_MAIN(...)                                                                                \
    int t_failures, t_checks, t_skipped;                                                           \
    static const t_case t_cases[] = {__VA_ARGS__};                                                 \
    int main(int argc, char **argv) {                                                              \
        signal(SIGPIPE, SIG_IGN);                                                                  \
        int ran = 0, skipped = 0;                                                                  \
        if (argc > 1 && strcmp(argv[1], "--list") == 0) {                                          \
            for (size_t i = 0; i < sizeof t_cases / sizeof t_cases[0]; i++) puts(t_cases[i].name); \
            return 0;                                                                              \
        }                                                                                          \
        for (size_t i = 0; i < sizeof t_cases / sizeof t_cases[0]; i++) {                          \
            if (argc > 1 && strcmp(argv[1], t_cases[i].name) != 0) continue;                       \
            int before = t_failures, checks = t_checks;                                            \
            t_skipped = 0;                                                                         \
            alarm(120); /* every test is bounded in time */                                        \
            t_cases[i].fn();                                                                       \
            if (!t_skipped && t_checks == checks) { /* a test that checks nothing cannot fail */   \
                fprintf(stderr, "%s: no assertion ran\n", t_cases[i].name);                        \
                t_failures++;                                                                      \
            }                                                                                      \
            fprintf(stderr, "%s %s\n", t_failures != before ? "FAIL" : t_skipped ? "skip" : "ok  ",  \
                    t_cases[i].name);                                                              \
            skipped += t_skipped && t_failures == before;                                          \
            ran++;                                                                                 \
        }                                                                                          \
        if (!ran) {                                                                                \
            fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "?");                       \
            return 2;                                                                              \
        }                                                                                          \
        return t_failures ? 1 : skipped == ran ? T_SKIP_CODE : 0;                                  \
    }
#define T(name) {#name, name}

/* reads a whole file; NULL if missing */
static inline char *t_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    if (len) *len = got;
    return b;
}
#endif
