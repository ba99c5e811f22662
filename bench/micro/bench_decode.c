/* bench/micro/bench_decode.c - decoder throughput, no network: streamed chat objects
 * decoded per second on one core, and embedding floats decoded in MB/s.
 *
 *   bench_decode [seconds-per-case]     (0 = exactly one pass of each, for callgrind)
 */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long chunks_seen;
static int count_sink(void *ctx, const ag_chunk *ch) {
    (void)ctx;
    (void)ch;
    chunks_seen++;
    return 0;
}

/* feeds body in 16 KiB reads, as a socket would deliver it */
static void feed_all(ag__dec *d, const char *body, size_t len) {
    for (size_t off = 0; off < len; off += 16384) {
        size_t k = len - off < 16384 ? len - off : 16384;
        if (ag__dec_feed(d, body + off, k)) {
            fprintf(stderr, "decode error: %s\n", d->errmsg);
            exit(1);
        }
    }
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    const char *only = argc > 2 ? argv[2] : ""; /* "chat" or "embed" */
    /* a stream of 10,000 realistic chat objects, as Ollama writes them */
    const char *words[] = {"The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", ".", "\\n"};
    size_t cap = 4 << 20, len = 0;
    char *stream = malloc(cap);
    int nobj = 10000;
    for (int i = 0; i < nobj; i++)
        len += (size_t)snprintf(stream + len, cap - len,
                                "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T12:00:%02d.%06dZ\","
                                "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},\"done\":false}\n",
                                i % 60, i % 1000000, words[i % 10]);
    len += (size_t)snprintf(stream + len, cap - len,
                            "{\"model\":\"llama3.2\",\"created_at\":\"2026-11-25T12:01:00Z\",\"message\":{\"role\":"
                            "\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":"
                            "4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":"
                            "342546000,\"eval_count\":10000,\"eval_duration\":4535599000}\n");
    long objs = 0;
    double bytes = 0;
    double t0 = cpu_now(), t = 0;
    if (strcmp(only, "embed") != 0) do {
        ag__dec d;
        ag__dec_init(&d, AG__K_CHAT, NULL, 1 << 24, count_sink, NULL);
        feed_all(&d, stream, len);
        ag__dec_finish(&d);
        if (!d.got_final) { fprintf(stderr, "no final object\n"); return 1; }
        ag__dec_free(&d);
        objs += nobj + 1;
        bytes += (double)len;
        t = cpu_now() - t0;
    } while (t < secs && secs > 0);
    if (strcmp(only, "embed") != 0)
        printf("chat stream: %.0f objects/s, %.1f MB/s, %.0f ns/object (%zu-byte objects, 16 KiB reads)\n",
           objs / t, bytes / t / 1e6, t / objs * 1e9, len / (size_t)(nobj + 1));

    /* /api/embed: 64 vectors of 768 floats, as the server prints them */
    len = 0;
    len += (size_t)snprintf(stream + len, cap - len, "{\"model\":\"nomic-embed-text\",\"embeddings\":[");
    unsigned seed = 7;
    for (int v = 0; v < 64; v++) {
        stream[len++] = v ? ',' : '[';
        if (v) stream[len++] = '[';
        for (int j = 0; j < 768; j++) {
            double x = ((double)rand_r(&seed) / RAND_MAX - 0.5) * 0.2;
            len += (size_t)snprintf(stream + len, cap - len, j ? ",%.9g" : "%.9g", x);
        }
        stream[len++] = ']';
    }
    len += (size_t)snprintf(stream + len, cap - len, "],\"total_duration\":14143917,\"load_duration\":1019500,\"prompt_eval_count\":512}");
    bytes = 0;
    long floats = 0;
    t0 = cpu_now();
    if (strcmp(only, "chat") != 0) do {
        ag__dec d;
        ag__dec_init(&d, AG__K_EMBED, NULL, 1 << 24, NULL, NULL);
        feed_all(&d, stream, len);
        ag__dec_finish(&d);
        if (d.rows != 64 || d.dim != 768) { fprintf(stderr, "bad embed decode\n"); return 1; }
        ag__dec_free(&d);
        floats += 64 * 768;
        bytes += (double)len;
        t = cpu_now() - t0;
    } while (t < secs && secs > 0);
    if (strcmp(only, "chat") != 0)
        printf("embeddings: %.1f MB/s of JSON, %.1f M floats/s (64 x 768 per response)\n", bytes / t / 1e6,
           floats / t / 1e6);
    free(stream);
    return 0;
}
