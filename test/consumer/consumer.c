/* A program with its own llhttp and its own libevent setup, statically linked
 * with libagents.a: both parsers work, neither replaces the other. */
#include <agents.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <llhttp.h>
#include <stdio.h>
#include <string.h>

static int my_bodies;
static int my_on_body(llhttp_t *p, const char *at, size_t len) {
    (void)p;
    (void)at;
    my_bodies += (int)len;
    return 0;
}

static int chunks, done, status;
static void on_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    (void)r;
    (void)ud;
    if (c->kind == AG_CHUNK_CONTENT) chunks++;
}
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    (void)ud;
    done = 1;
    status = res->status;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    evthread_use_pthreads(); /* the consumer's own libevent_pthreads */
    /* the program's llhttp */
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_body = my_on_body;
    llhttp_t p;
    llhttp_init(&p, HTTP_RESPONSE, &st);
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    if (llhttp_execute(&p, resp, sizeof resp - 1) != HPE_OK || my_bodies != 5) {
        fprintf(stderr, "the program's own llhttp failed\n");
        return 1;
    }
    /* the library's, through a chat */
    struct event_base *base = event_base_new();
    ag_client_options o = {.host = argv[1]};
    ag_client *c = ag_client_new(base, &o, NULL);
    ag_message m = {"user", "hi", NULL, NULL, 0, NULL, NULL};
    ag_chat_params cp = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    ag_callbacks cb = {on_chunk, on_done, NULL};
    if (!c || ag_chat(c, &cp, &cb, NULL) != 0) return 1;
    for (int i = 0; i < 1000 && !done; i++) event_base_loop(base, EVLOOP_ONCE);
    ag_client_free(c);
    event_base_free(base);
    printf("own llhttp: %d body bytes; agents: status %d, %d chunks\n", my_bodies, status, chunks);
    return done && status == 0 && chunks > 0 ? 0 : 1;
}
