/* core/base/json.h - writing text into yajl generators: every string the
 * library writes into JSON goes through here, so that ill-formed UTF-8
 * (a user's bytes, a tool's result) never makes a body invalid. */
#ifndef AG_CORE_BASE_JSON_H
#define AG_CORE_BASE_JSON_H
#include <stddef.h>

#include <yajl/yajl_gen.h>

/* A JSON string of n bytes of text; ill-formed UTF-8 is written as U+FFFD
 * (core/base/utf8.h). 0, AG_ENOMEM or AG_EINVAL (the generator's state). */
int ag__gen_text(yajl_gen g, const char *s, size_t n);

#endif
