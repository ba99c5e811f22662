/* Fuzz target: OLLAMA_HOST parsing and node lists. Accepted addresses have a
 * port in range, no control characters, and format back to a parseable form. */
#include <agents.h>
#include "core/internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    ag_host h;
    if (ag_host_parse(s, &h) == 0) {
        if (h.port < 0 || h.port > 65535) __builtin_trap();
        for (const char *q = h.host; *q; q++)
            if ((unsigned char)*q < 0x20) __builtin_trap();
        for (const char *q = h.path; *q; q++)
            if ((unsigned char)*q <= 0x20) __builtin_trap();
        char buf[700];
        ag_host_format(&h, buf, sizeof buf);
        ag_host h2;
        if (ag_host_parse(buf, &h2) == 0 && (h2.port != h.port || strcmp(h2.host, h.host))) __builtin_trap();
    }
    /* the pool's list parser: a base with no events run, probes off. Lists
     * with an https node are parsed above but not made into a pool here:
     * every pool would make an OpenSSL context, which costs 100 times the
     * parsing (265 inputs a second instead of thousands) */
    static struct event_base *base;
    if (!base) base = event_base_new();
    ag_pool_options po = {.nodes = s, .probe_interval = -1};
    ag_client *c = strcasestr(s, "https") ? NULL : ag_pool_new(base, &po, NULL);
    if (c) {
        ag_node_info info[8];
        size_t n = ag_pool_nodes(c, info, 8);
        if (n == 0) __builtin_trap(); /* a pool always has a node */
        ag_client_free(c);
    }
    free(s);
    return 0;
}
