/* core/base/json.h - writing text into yajl generators: every string the
 * library writes into JSON goes through here, so that ill-formed UTF-8
 * (a user's bytes, a tool's result) never makes a body invalid. */
#ifndef AG_CORE_BASE_JSON_H
#define AG_CORE_BASE_JSON_H
#include <stddef.h>

#include <yajl/yajl_common.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "agents/alloc.h"

/* yajl's allocator table for a (filled into *out), or NULL for libc: what
 * yajl_alloc and yajl_gen_alloc take, so that yajl's own memory goes through
 * the caller's allocator too. */
yajl_alloc_funcs *ag__yajl_funcs(const ag_alloc_funcs *a, yajl_alloc_funcs *out);
/* 1 when s (NUL-terminated) is one JSON object and nothing else but blanks,
 * read by yajl through a; 0 otherwise (or out of memory). */
int ag__json_is_object(const ag_alloc_funcs *a, const char *s);
/* A JSON text (NUL-terminated) as a tree of yajl's public struct yajl_val_s,
 * every node, string and array allocated through a (yajl's own tree parser
 * takes no allocator): read it with YAJL_IS_* and yajl_tree_get, free it with
 * ag__json_tree_free, never yajl_tree_free. Texts nested deeper than
 * AG__JSON_MAX_DEPTH are refused. NULL on error, with a message in err. */
yajl_val ag__json_tree(const ag_alloc_funcs *a, const char *text, char *err, size_t err_size);
void ag__json_tree_free(const ag_alloc_funcs *a, yajl_val v);
/* obj's member key (any type), or NULL (obj NULL too) */
yajl_val ag__json_get(yajl_val obj, const char *key);
/* An object's member key as a string (NULL when absent or not a string),
 * or as a number (dflt when absent or not a number). */
const char *ag__json_str(yajl_val obj, const char *key);
double ag__json_num(yajl_val obj, const char *key, double dflt);
/* The generator's text as a NUL-terminated string allocated through a (its
 * length in *len when len is not NULL), and the generator freed either way;
 * NULL when out of memory. */
char *ag__gen_take(const ag_alloc_funcs *a, yajl_gen g, size_t *len);
/* A generator that allocates through a (NULL = libc); NULL when out of memory. */
yajl_gen ag__gen_new(const ag_alloc_funcs *a);

/* A JSON string of n bytes of text (a: the allocator for a repaired copy); ill-formed UTF-8 is written as U+FFFD
 * (core/base/utf8.h). 0, AG_ENOMEM or AG_EINVAL (the generator's state). */
int ag__gen_text(const ag_alloc_funcs *a, yajl_gen g, const char *s, size_t n);

/* Writes a tree (from ag__json_tree) into g: 0, AG_ENOMEM or AG_EINVAL. */
int ag__gen_value(const ag_alloc_funcs *a, yajl_gen g, yajl_val v);
/* The object base (NULL or "" = {}) with over's keys laid on top, key by
 * key (over's value wins; base's other keys keep their order), as new text
 * allocated through a. NULL with *err AG_EINVAL when either is not a JSON
 * object, AG_ENOMEM when out of memory. */
char *ag__json_merge(const ag_alloc_funcs *a, const char *base, const char *over, int *err);

#endif
