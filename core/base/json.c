/* core/base/json.c - text into yajl generators, UTF-8 repaired. */
#include "core/base/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "agents/error.h"
#include "core/base/mem.h"
#include "core/base/utf8.h"

static void *y_malloc(void *ctx, size_t n) { return ag__malloc(ctx, n); }
static void *y_realloc(void *ctx, void *p, size_t n) { return ag__realloc(ctx, p, n); }
static void y_free(void *ctx, void *p) { ag__free(ctx, p); }

yajl_alloc_funcs *ag__yajl_funcs(const ag_alloc_funcs *a, yajl_alloc_funcs *out) {
    if (!a) return NULL;
    out->malloc = y_malloc;
    out->realloc = y_realloc;
    out->free = y_free;
    out->ctx = (void *)a;
    return out;
}

int ag__json_is_object(const ag_alloc_funcs *a, const char *s) {
    const char *p = s;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p != '{') return 0;
    yajl_alloc_funcs af;
    yajl_handle h = yajl_alloc(NULL, ag__yajl_funcs(a, &af), NULL);
    if (!h) return 0;
    yajl_status st = yajl_parse(h, (const unsigned char *)p, strlen(p));
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    yajl_free(h);
    return st == yajl_status_ok;
}

yajl_gen ag__gen_new(const ag_alloc_funcs *a) {
    yajl_alloc_funcs af;
    return yajl_gen_alloc(ag__yajl_funcs(a, &af));
}

int ag__gen_text(const ag_alloc_funcs *a, yajl_gen g, const char *s, size_t n) {
    yajl_gen_status st;
    if (ag__utf8_check(s, n) == n) {
        st = yajl_gen_string(g, (const unsigned char *)s, n);
    } else { /* ill-formed bytes become U+FFFD, as Go's and Python's encoders do */
        char small[256], *fix = n <= sizeof small / 3 ? small : NULL;
        if (!fix && (n > SIZE_MAX / 3 || !(fix = ag__malloc(a, 3 * n)))) return AG_ENOMEM;
        size_t m = ag__utf8_repair(s, n, fix);
        st = yajl_gen_string(g, (const unsigned char *)fix, m);
        if (fix != small) ag__free(a, fix);
    }
    return st == yajl_gen_status_ok ? 0 : AG_EINVAL;
}
