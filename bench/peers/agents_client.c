/* This library's C API on the peers' workload.
 *   agents_client HOST MODE N CONCURRENCY     MODE: chat | embed | latency
 * Prints {"count": tokens or embeddings, "ttft_p50_ms": median}. */
#include <agents.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ag_client *c;
static int n, conc, started, done, mode_embed;
static long count;
static double ttft[100000];
static int nttft;

static void start(void);
static void on_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r, (void)ud;
    if (ch->kind == AG_CHUNK_CONTENT) count++;
}
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r, (void)ud;
    done++;
    if (mode_embed) count += (long)res->n_embeddings;
    else if (res->timing.ttft_ns >= 0 && nttft < 100000) ttft[nttft++] = res->timing.ttft_ns / 1e6;
    if (started < n) start();
}
static void start(void) {
    ag_callbacks cb = {on_chunk, on_done, NULL};
    int i = started++;
    if (mode_embed) {
        char text[64];
        snprintf(text, sizeof text, "embedding text %d", i % 7);
        const char *in[] = {text};
        ag_embed_params p = {.model = "nomic-embed-text", .inputs = in, .n_inputs = 1, .truncate = -1};
        ag_embed(c, &p, &cb, NULL);
    } else {
        ag_message m = {"user", "peer benchmark", NULL, NULL, 0, NULL, NULL};
        ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
        ag_chat(c, &p, &cb, NULL);
    }
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
int main(int argc, char **argv) {
    if (argc < 5) return 2;
    n = atoi(argv[3]);
    conc = atoi(argv[4]);
    mode_embed = !strcmp(argv[2], "embed");
    struct event_base *base = event_base_new();
    ag_client_options co = {.host = argv[1]};
    c = ag_client_new(base, &co, NULL);
    for (int i = 0; i < conc && started < n; i++) start();
    while (done < n) event_base_loop(base, EVLOOP_ONCE);
    qsort(ttft, (size_t)nttft, sizeof *ttft, cmp);
    printf("{\"count\": %ld, \"ttft_p50_ms\": %.4f}\n", count, nttft ? ttft[nttft / 2] : -1);
    ag_client_free(c);
    event_base_free(base);
    return 0;
}
