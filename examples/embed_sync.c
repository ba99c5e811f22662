/* examples/embed_sync.c - blocking calls for scripts: embed two texts and
 * compare them, no event loop of your own.
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./embed_sync nomic-embed-text "a cat" "a kitten"
 */
#include <agents.h>
#include <math.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 4) return fprintf(stderr, "usage: %s MODEL TEXT1 TEXT2\n", argv[0]), 2;
    int err;
    ag_client *c = ag_client_new(NULL, NULL, &err); /* private loop for *_sync */
    if (!c) return fprintf(stderr, "client: %s\n", ag_strerror(err)), 1;
    const char *texts[] = {argv[2], argv[3]};
    ag_embed_params p = {.model = argv[1], .inputs = texts, .n_inputs = 2, .truncate = -1};
    ag_sync_out out;
    int rc = ag_embed_sync(c, &p, &out);
    if (rc == 0) {
        const float *a = out.result->embeddings, *b = a + out.result->dim;
        double dot = 0, na = 0, nb = 0;
        for (size_t i = 0; i < out.result->dim; i++)
            dot += a[i] * b[i], na += a[i] * a[i], nb += b[i] * b[i];
        printf("dim %zu, cosine %.4f\n", out.result->dim, dot / (sqrt(na) * sqrt(nb)));
    } else {
        fprintf(stderr, "embed: %s\n", out.result ? out.result->error : ag_strerror(rc));
    }
    ag_sync_out_free(&out);
    ag_client_free(c);
    return rc == 0 ? 0 : 1;
}
