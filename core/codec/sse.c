/* core/codec/sse.c - Server-Sent Events framing for the OpenAI dialect. */
#include "core/codec/codec.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* Server-Sent Events: "data:" payloads go to yajl as they arrive (no line
 * buffer); "data: [DONE]" ends the stream; comments and other fields are
 * skipped; a line may be cut anywhere by a read. */
enum { SSE_LINE, SSE_SKIP, SSE_DATA_SP, SSE_DATA_PRE, SSE_DATA };

int ag__dec_sse_feed(ag__dec *d, const char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        switch (d->sse_state) {
        case SSE_LINE:
            if (c == '\n' || c == '\r') {
                d->sse_flen = 0;
                i++;
            } else if (c == ':') {
                d->sse_state = d->sse_flen == 4 && !memcmp(d->sse_field, "data", 4) ? SSE_DATA_SP : SSE_SKIP;
                d->sse_flen = 0;
                i++;
            } else {
                if (d->sse_flen < (int)sizeof d->sse_field) d->sse_field[d->sse_flen] = c;
                d->sse_flen++;
                if (d->sse_flen > 8) d->sse_state = SSE_SKIP;
                i++;
            }
            break;
        case SSE_SKIP: {
            const char *nl = memchr(p + i, '\n', n - i);
            if (!nl) return 0;
            i = (size_t)(nl - p) + 1;
            d->sse_state = SSE_LINE;
            break;
        }
        case SSE_DATA_SP:
            d->sse_state = SSE_DATA_PRE;
            d->sse_plen = 0;
            if (c == ' ') i++;
            break;
        case SSE_DATA_PRE: /* "[DONE]" or JSON? decided on the first bytes */
            if (d->sse_plen == 0 && c != '[') {
                d->sse_state = SSE_DATA;
                break;
            }
            if (c == '\n' || c == '\r' || d->sse_plen == 6) {
                if (d->sse_plen == 6 && !memcmp(d->sse_pre, "[DONE]", 6)) {
                    d->got_final = 1;
                    if (d->oai_ncalls && !ag__dec_oai_flush_calls(d)) return 0;
                    d->sse_state = SSE_SKIP;
                    break;
                }
                int rc = ag__dec_feed_json(d, d->sse_pre, (size_t)d->sse_plen);
                if (rc) return rc;
                d->sse_state = SSE_DATA;
                break;
            }
            d->sse_pre[d->sse_plen++] = c;
            i++;
            break;
        case SSE_DATA: {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t end = nl ? (size_t)(nl - p) : n;
            if (end > i) {
                int rc = ag__dec_feed_json(d, p + i, end - i);
                if (rc) return rc;
            }
            if (!nl) return 0;
            int rc = ag__dec_feed_json(d, "\n", 1);
            if (rc) return rc;
            i = end + 1;
            d->sse_state = SSE_LINE;
            d->sse_flen = 0;
            break;
        }
        }
        if (d->err) return d->err;
        if (d->stopped) return 0;
    }
    return 0;
}

/* the kept embed body goes to yajl after all (and nothing is kept from now on) */
