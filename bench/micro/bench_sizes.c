/* bench/micro/bench_sizes.c - what one request costs in memory before any
 * allocation of its own: the request struct and its parts (a chat, a stream,
 * is one of these plus its connection, yajl's handle and its bytes; the
 * whole stream's RSS is bench_stream's "rss" mode). */
#include "core/internal.h"

#include <stdio.h>

int main(void) {
    printf("struct ag_request       %5zu bytes (a chat request, any kind)\n", sizeof(struct ag_request));
    printf("  of which the decoder  %5zu (ag__dec: every response kind and both dialects)\n", sizeof(ag__dec));
    printf("  the HTTP exchange     %5zu (ag__http)\n", sizeof(ag__http));
    printf("  the body to send      %5zu (ag__body)\n", sizeof(ag__body));
    printf("  two events            %5zu (defer and progress timers, struct event each)\n", 2 * sizeof(struct event));
    return 0;
}
