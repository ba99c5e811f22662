/* examples/chat_loop.c - an interactive chat that keeps its history (the
 * original package's example_app.py chat mode, in C).
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./chat_loop llama3.2
 *
 * Each line you type is a turn; the answer streams as it comes, and the
 * whole conversation goes with the next turn. "/reset" forgets it, "/quit"
 * (or end of input) leaves. When the history outgrows the budget, the oldest
 * turns are left out of what is sent (the system prompt always stays). */
#include <agents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TURNS 512
#define BUDGET_TOKENS 3000

static void on_chunk(ag_task *t, const ag_chunk *c, void *ud) {
    (void)t, (void)ud;
    if (c->kind == AG_CHUNK_CONTENT) fwrite(c->text, 1, c->len, stdout), fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL [SYSTEM_PROMPT]\n", argv[0]), 2;
    int err = 0;
    ag_client *c = ag_client_new(NULL, NULL, &err);
    if (!c) return fprintf(stderr, "client: %s\n", ag_strerror(err)), 1;
    ag_agent_config cfg = {.name = "chat", .model = argv[1],
                           .system = argc > 2 ? argv[2] : "You are a helpful assistant."};
    ag_agent *a = ag_agent_new(c, &cfg);
    ag_message hist[MAX_TURNS];
    size_t n = 0;
    char line[4096];
    int failures = 0;
    printf("> ");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset") || n + 2 > MAX_TURNS) {
            for (size_t i = 0; i < n; i++) free((char *)hist[i].content);
            n = 0;
            printf("(history cleared)\n> ");
            fflush(stdout);
            if (!strcmp(line, "/reset")) continue;
        }
        if (!*line) {
            printf("> ");
            fflush(stdout);
            continue;
        }
        hist[n++] = (ag_message){.role = "user", .content = strdup(line)};
        /* the newest turns that fit the budget */
        unsigned char keep[MAX_TURNS];
        ag_truncate_messages(hist, n, BUDGET_TOKENS, keep);
        ag_message send[MAX_TURNS];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (keep[i]) send[k++] = hist[i];
        ag_agent_result *res = NULL;
        int rc = ag_agent_run_sync(a, send, k, on_chunk, NULL, &res);
        if (rc == 0 && res) {
            hist[n++] = (ag_message){.role = "assistant", .content = strndup(res->text, res->text_len)};
            printf("\n[turn %zu, %lld tokens, %zu of %zu messages sent]\n> ", n / 2,
                   (long long)res->eval_count, k, n - 1);
        } else {
            failures++;
            free((char *)hist[--n].content); /* the turn did not happen */
            printf("\n[error: %s]\n> ", res && res->error ? res->error : ag_strerror(rc));
        }
        fflush(stdout);
        ag_agent_result_free(res);
    }
    printf("\n");
    for (size_t i = 0; i < n; i++) free((char *)hist[i].content);
    ag_agent_free(a);
    ag_client_free(c);
    return failures ? 1 : 0;
}
