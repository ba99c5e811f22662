/* examples/custom_agent.c - a custom agent is a prompt plus hooks: this one
 * shouts (filters every streamed piece to upper case) and signs its answer
 * (the finish hook).
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./custom_agent llama3.2 "tell me about the sea"
 */
#include <agents.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char shout[4096];

static int to_upper(ag_agent *a, int kind, const char **text, size_t *len, void *ud) {
    (void)a, (void)ud;
    if (kind != AG_CHUNK_CONTENT || *len >= sizeof shout) return 0;
    for (size_t i = 0; i < *len; i++) shout[i] = (char)toupper((unsigned char)(*text)[i]);
    *text = shout; /* valid until the next piece: the library copies it before then */
    return 0;
}

static char *sign(ag_agent *a, const char *text, size_t len, void *ud) {
    (void)a, (void)ud;
    char *out = malloc(len + 32);
    if (out) snprintf(out, len + 32, "%.*s\n-- the loud agent", (int)len, text);
    return out;
}

static void on_chunk(ag_task *t, const ag_chunk *c, void *ud) {
    (void)t, (void)ud;
    if (c->kind == AG_CHUNK_CONTENT) fwrite(c->text, 1, c->len, stdout), fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]), 2;
    ag_client *c = ag_client_new(NULL, NULL, NULL);
    ag_agent_config cfg = {.name = "loud", .model = argv[1], .system = "Answer in two sentences.",
                           .hooks = {.filter = to_upper, .finish = sign}};
    ag_agent *a = ag_agent_new(c, &cfg);
    ag_message m = {.role = "user", .content = argv[2]};
    ag_agent_result *r = NULL;
    int rc = ag_agent_run_sync(a, &m, 1, on_chunk, NULL, &r);
    if (rc == 0) printf("\n\nfinal: %s\n", r->text);
    else fprintf(stderr, "error: %s\n", r ? r->error : ag_strerror(rc));
    ag_agent_result_free(r);
    ag_agent_free(a);
    ag_client_free(c);
    return rc == 0 ? 0 : 1;
}
