/* core/base/json.c - text into yajl generators, UTF-8 repaired. */
#include "core/base/json.h"

#include <stdint.h>
#include <stdlib.h>

#include "agents/error.h"
#include "core/base/utf8.h"

int ag__gen_text(yajl_gen g, const char *s, size_t n) {
    yajl_gen_status st;
    if (ag__utf8_check(s, n) == n) {
        st = yajl_gen_string(g, (const unsigned char *)s, n);
    } else { /* ill-formed bytes become U+FFFD, as Go's and Python's encoders do */
        char small[256], *fix = n <= sizeof small / 3 ? small : NULL;
        if (!fix && (n > SIZE_MAX / 3 || !(fix = malloc(3 * n)))) return AG_ENOMEM;
        size_t m = ag__utf8_repair(s, n, fix);
        st = yajl_gen_string(g, (const unsigned char *)fix, m);
        if (fix != small) free(fix);
    }
    return st == yajl_gen_status_ok ? 0 : AG_EINVAL;
}
