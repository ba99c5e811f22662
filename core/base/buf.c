/* core/base/buf.c - the growable buffer, JSON string literals into it, and
 * the arena. */
#include "core/base/buf.h"

#include <stdio.h>
#include <string.h>

#include "agents/error.h"
#include "core/base/mem.h"
#include "core/base/utf8.h"

int ag__buf_add(const ag_alloc_funcs *a, ag__buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->len + n + 1) nc *= 2;
        char *q = ag__realloc(a, b->p, nc);
        if (!q) return AG_ENOMEM;
        b->p = q;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int ag__buf_str(const ag_alloc_funcs *a, ag__buf *b, const char *s) {
    return ag__buf_add(a, b, s, strlen(s));
}

int ag__buf_json(const ag_alloc_funcs *a, ag__buf *b, const char *s, size_t n) {
    int rc = ag__buf_add(a, b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* bytes copied as they are, in one go */
    for (size_t i = 0; i < n && !rc;) {
        unsigned char c = u[i];
        size_t k = c < 0x80 ? (c >= 0x20 && c != '"' && c != '\\') : ag__utf8_seq(u + i, n - i);
        if (k) {
            run += k;
            i += k;
            continue;
        }
        if (run) rc = ag__buf_add(a, b, s + i - run, run);
        run = 0;
        if (rc) break;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = ag__buf_add(a, b, esc, 2);
        } else if (c < 0x20) {
            const char *sh = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (sh) rc = ag__buf_add(a, b, sh, 2);
            else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                rc = ag__buf_add(a, b, esc, 6);
            }
        } else {
            rc = ag__buf_add(a, b, "\xEF\xBF\xBD", 3); /* an ill-formed byte */
        }
        i++;
    }
    if (!rc && run) rc = ag__buf_add(a, b, s + n - run, run);
    return rc ? rc : ag__buf_add(a, b, "\"", 1);
}

void ag__buf_free(const ag_alloc_funcs *a, ag__buf *b) {
    ag__free(a, b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

struct ag__arena_blk {
    ag__arena_blk *next;
    size_t used, cap;
    max_align_t data[];
};

void *ag__arena_alloc(const ag_alloc_funcs *a, ag__arena *ar, size_t n) {
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    ag__arena_blk *b = ar->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        b = ag__malloc(a, sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = ar->head;
        ar->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    ar->used_total += n;
    return p;
}

char *ag__arena_strndup(const ag_alloc_funcs *a, ag__arena *ar, const char *s, size_t n) {
    char *p = ag__arena_alloc(a, ar, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void ag__arena_free(const ag_alloc_funcs *a, ag__arena *ar) {
    ag__arena_blk *b = ar->head;
    while (b) {
        ag__arena_blk *nx = b->next;
        ag__free(a, b);
        b = nx;
    }
    ar->head = NULL;
    ar->used_total = 0;
}
