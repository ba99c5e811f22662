/* examples/chat_stream.c - stream a chat answer inside your own libevent loop.
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./chat_stream llama3.2 "why is the sky blue?"
 */
#include <agents.h>
#include <event2/event.h>
#include <stdio.h>

static void on_chunk(ag_request *req, const ag_chunk *c, void *ud) {
    (void)req, (void)ud;
    if (c->kind == AG_CHUNK_CONTENT) fwrite(c->text, 1, c->len, stdout), fflush(stdout);
}

static int status = 1;

static void on_done(ag_request *req, const ag_result *res, void *base) {
    (void)req;
    status = res->status;
    event_base_loopbreak(base); /* a real server would keep its loop running */
    if (res->status) fprintf(stderr, "\nerror: %s\n", res->error);
    else printf("\n[%lld tokens, first after %.1f ms]\n", (long long)res->server.eval_count,
                res->timing.ttft_ns / 1e6);
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]), 2;
    struct event_base *base = event_base_new();
    ag_client *client = ag_client_new(base, NULL, NULL); /* host from OLLAMA_HOST */
    ag_message msg = {.role = "user", .content = argv[2]};
    ag_chat_params p = {.model = argv[1], .messages = &msg, .n_messages = 1};
    ag_callbacks cb = {on_chunk, on_done, base};
    if (!client || ag_chat(client, &p, &cb, NULL) != 0) return 1;
    event_base_dispatch(base);
    ag_client_free(client);
    event_base_free(base);
    return status == 0 ? 0 : 1;
}
