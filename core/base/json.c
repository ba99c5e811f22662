/* core/base/json.c - text into yajl generators, UTF-8 repaired. */
#include "core/base/json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "agents/error.h"
#include "core/base/jsondepth.h"
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

char *ag__gen_take(const ag_alloc_funcs *a, yajl_gen g, size_t *len) {
    const unsigned char *b;
    size_t n;
    yajl_gen_get_buf(g, &b, &n);
    char *s = ag__strndup(a, (const char *)b, n);
    if (s && len) *len = n;
    yajl_gen_free(g);
    return s;
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

/* ---- trees: yajl_val-shaped values built through an allocator ----
 * yajl's own tree parser allocates with libc and takes no allocator; this one
 * builds the same public struct yajl_val_s (so YAJL_IS_*, yajl_tree_get and
 * every reader work unchanged) with each node, string and array through a.
 * Nesting is refused past AG__JSON_MAX_DEPTH, so freeing may recurse. */
typedef struct tree_build {
    const ag_alloc_funcs *a;
    yajl_val stack[AG__JSON_MAX_DEPTH + 1];
    size_t cap[AG__JSON_MAX_DEPTH + 1];
    char *key[AG__JSON_MAX_DEPTH + 1]; /* an object's key awaiting its value */
    int depth;
    yajl_val root;
} tree_build;

static yajl_val node(tree_build *b, yajl_type t) {
    yajl_val v = ag__malloc(b->a, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->type = t;
    }
    return v;
}

/* v into its container (or as the root); 0 when out of memory (v is freed) */
static int attach(tree_build *b, yajl_val v) {
    if (!v) return 0;
    if (b->depth == 0) {
        if (b->root) ag__json_tree_free(b->a, b->root); /* one value only: yajl refuses a second */
        b->root = v;
        return 1;
    }
    int i = b->depth - 1;
    yajl_val p = b->stack[i];
    size_t n = p->type == yajl_t_object ? p->u.object.len : p->u.array.len;
    if (n == b->cap[i]) {
        size_t nc = b->cap[i] ? b->cap[i] * 2 : 4;
        yajl_val *vals = ag__realloc(b->a, p->type == yajl_t_object ? p->u.object.values : p->u.array.values,
                                     nc * sizeof *vals);
        if (!vals) goto oom;
        if (p->type == yajl_t_object) {
            p->u.object.values = vals;
            const char **keys = ag__realloc(b->a, (void *)p->u.object.keys, nc * sizeof *keys);
            if (!keys) goto oom;
            p->u.object.keys = keys;
        } else {
            p->u.array.values = vals;
        }
        b->cap[i] = nc;
    }
    if (p->type == yajl_t_object) {
        p->u.object.keys[n] = b->key[i];
        b->key[i] = NULL;
        p->u.object.values[n] = v;
        p->u.object.len++;
    } else {
        p->u.array.values[n] = v;
        p->u.array.len++;
    }
    return 1;
oom:
    ag__json_tree_free(b->a, v);
    return 0;
}

static int t_null(void *ctx) { return attach(ctx, node(ctx, yajl_t_null)); }
static int t_bool(void *ctx, int v) { return attach(ctx, node(ctx, v ? yajl_t_true : yajl_t_false)); }
static int t_number(void *ctx, const char *s, size_t n) {
    tree_build *b = ctx;
    yajl_val v = node(b, yajl_t_number);
    if (!v) return 0;
    v->u.number.r = ag__strndup(b->a, s, n);
    if (!v->u.number.r) {
        ag__free(b->a, v);
        return 0;
    }
    char *end;
    errno = 0;
    v->u.number.i = strtoll(v->u.number.r, &end, 10);
    if (errno == 0 && *end == 0) v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && *end == 0) v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return attach(b, v);
}
static int t_string(void *ctx, const unsigned char *s, size_t n) {
    tree_build *b = ctx;
    yajl_val v = node(b, yajl_t_string);
    if (!v) return 0;
    v->u.string = ag__strndup(b->a, (const char *)s, n);
    if (!v->u.string) {
        ag__free(b->a, v);
        return 0;
    }
    return attach(b, v);
}
static int t_open(tree_build *b, yajl_type t) {
    if (b->depth >= AG__JSON_MAX_DEPTH) return 0;
    yajl_val v = node(b, t);
    if (!attach(b, v)) return 0;
    b->stack[b->depth] = v;
    b->cap[b->depth] = 0;
    b->key[b->depth] = NULL;
    b->depth++;
    return 1;
}
static int t_start_map(void *ctx) { return t_open(ctx, yajl_t_object); }
static int t_start_array(void *ctx) { return t_open(ctx, yajl_t_array); }
static int t_key(void *ctx, const unsigned char *s, size_t n) {
    tree_build *b = ctx;
    int i = b->depth - 1;
    ag__free(b->a, b->key[i]);
    b->key[i] = ag__strndup(b->a, (const char *)s, n);
    return b->key[i] != NULL;
}
static int t_close(void *ctx) {
    tree_build *b = ctx;
    b->depth--;
    return 1;
}
static const yajl_callbacks tree_cb = {t_null,      t_bool, NULL,  NULL,          t_number, t_string,
                                       t_start_map, t_key,  t_close, t_start_array, t_close};

yajl_val ag__json_tree(const ag_alloc_funcs *a, const char *text, char *err, size_t err_size) {
    if (err && err_size) err[0] = 0;
    size_t len = strlen(text);
    if (ag__json_too_deep(text, len, AG__JSON_MAX_DEPTH)) {
        if (err && err_size) snprintf(err, err_size, "nested deeper than %d levels", AG__JSON_MAX_DEPTH);
        return NULL;
    }
    tree_build b;
    memset(&b, 0, sizeof b);
    b.a = a;
    yajl_alloc_funcs af;
    yajl_handle h = yajl_alloc(&tree_cb, ag__yajl_funcs(a, &af), &b);
    if (!h) {
        if (err && err_size) snprintf(err, err_size, "out of memory");
        return NULL;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        if (err && err_size) {
            unsigned char *m = yajl_get_error(h, 1, (const unsigned char *)text, len);
            snprintf(err, err_size, "%s", m ? (const char *)m : "out of memory");
            if (m) yajl_free_error(h, m);
        }
        for (int i = 0; i <= AG__JSON_MAX_DEPTH; i++) ag__free(a, b.key[i]);
        ag__json_tree_free(a, b.root);
        b.root = NULL;
    }
    yajl_free(h);
    return b.root;
}

void ag__json_tree_free(const ag_alloc_funcs *a, yajl_val v) {
    if (!v) return;
    if (v->type == yajl_t_string) {
        ag__free(a, v->u.string);
    } else if (v->type == yajl_t_number) {
        ag__free(a, v->u.number.r);
    } else if (v->type == yajl_t_object) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            ag__free(a, (void *)v->u.object.keys[i]);
            ag__json_tree_free(a, v->u.object.values[i]); /* depth <= AG__JSON_MAX_DEPTH */
        }
        ag__free(a, (void *)v->u.object.keys);
        ag__free(a, v->u.object.values);
    } else if (v->type == yajl_t_array) {
        for (size_t i = 0; i < v->u.array.len; i++) ag__json_tree_free(a, v->u.array.values[i]);
        ag__free(a, v->u.array.values);
    }
    ag__free(a, v);
}

int ag__gen_value(const ag_alloc_funcs *a, yajl_gen g, yajl_val v) {
    if (!v) return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : AG_EINVAL;
    yajl_gen_status st = yajl_gen_status_ok;
    switch (v->type) {
    case yajl_t_string: return ag__gen_text(a, g, v->u.string, strlen(v->u.string));
    case yajl_t_number: st = yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r)); break;
    case yajl_t_true: st = yajl_gen_bool(g, 1); break;
    case yajl_t_false: st = yajl_gen_bool(g, 0); break;
    case yajl_t_null: st = yajl_gen_null(g); break;
    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) return AG_EINVAL;
        for (size_t i = 0; i < v->u.object.len; i++) {
            int rc = ag__gen_text(a, g, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            if (!rc) rc = ag__gen_value(a, g, v->u.object.values[i]);
            if (rc) return rc;
        }
        st = yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) return AG_EINVAL;
        for (size_t i = 0; i < v->u.array.len; i++) {
            int rc = ag__gen_value(a, g, v->u.array.values[i]);
            if (rc) return rc;
        }
        st = yajl_gen_array_close(g);
        break;
    default: return AG_EINVAL;
    }
    return st == yajl_gen_status_ok ? 0 : AG_EINVAL;
}

char *ag__json_merge(const ag_alloc_funcs *a, const char *base, const char *over, int *err) {
    char msg[64];
    yajl_val b = base && *base ? ag__json_tree(a, base, msg, sizeof msg) : NULL;
    yajl_val o = ag__json_tree(a, over, msg, sizeof msg);
    char *out = NULL;
    int rc = AG_EINVAL;
    yajl_gen g = NULL;
    if (!o || !YAJL_IS_OBJECT(o) || (base && *base && (!b || !YAJL_IS_OBJECT(b)))) goto done;
    rc = AG_ENOMEM;
    g = ag__gen_new(a);
    if (!g || yajl_gen_map_open(g) != yajl_gen_status_ok) goto done;
    rc = 0;
    for (size_t i = 0; b && i < b->u.object.len && !rc; i++) {
        int overridden = 0;
        for (size_t j = 0; j < o->u.object.len && !overridden; j++)
            overridden = !strcmp(b->u.object.keys[i], o->u.object.keys[j]);
        if (overridden) continue;
        rc = ag__gen_text(a, g, b->u.object.keys[i], strlen(b->u.object.keys[i]));
        if (!rc) rc = ag__gen_value(a, g, b->u.object.values[i]);
    }
    for (size_t j = 0; j < o->u.object.len && !rc; j++) {
        rc = ag__gen_text(a, g, o->u.object.keys[j], strlen(o->u.object.keys[j]));
        if (!rc) rc = ag__gen_value(a, g, o->u.object.values[j]);
    }
    if (!rc && yajl_gen_map_close(g) != yajl_gen_status_ok) rc = AG_EINVAL;
    if (!rc) {
        out = ag__gen_take(a, g, NULL);
        g = NULL;
        if (!out) rc = AG_ENOMEM;
    }
done:
    if (g) yajl_gen_free(g);
    ag__json_tree_free(a, b);
    ag__json_tree_free(a, o);
    if (err) *err = rc;
    return out;
}

yajl_val ag__json_get(yajl_val obj, const char *key) {
    const char *path[] = {key, NULL};
    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

const char *ag__json_str(yajl_val obj, const char *key) {
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

double ag__json_num(yajl_val obj, const char *key, double dflt) {
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_number);
    return v ? YAJL_GET_DOUBLE(v) : dflt;
}
