/* core/base/jsondepth.h - how deep a JSON text nests, read before building a tree.
 * yajl's parser keeps its own stack, but freeing a tree and every walk over
 * one recurse once per level: a line nested a million deep (from a node, a
 * client or an input file) would overflow the C stack. Texts nested deeper
 * than any real answer or request are refused before the tree is built
 * (ag__json_tree, core/base/json.h). No dependencies. */
#ifndef AG_CORE_BASE_JSONDEPTH_H
#define AG_CORE_BASE_JSONDEPTH_H
#include <stddef.h>

/* Deeper than any Ollama or OpenAI body (tool schemas nest a few levels). */
#define AG__JSON_MAX_DEPTH 64

/* 1 when the text (n bytes) opens more than max arrays/objects at once
 * (brackets inside strings do not count). Malformed texts are left to the
 * parser. */
static inline int ag__json_too_deep(const char *s, size_t n, int max) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) return 1;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}


#endif
