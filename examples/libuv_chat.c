/* examples/libuv_chat.c - the library inside a libuv program.
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./libuv_chat llama3.2 "first question" "second question" ...
 *
 * Every prompt is asked at once; the answers stream in interleaved, and each
 * is printed whole when it completes. The engine's fd is watched with
 * uv_poll; a uv_timer keeps ticking meanwhile, to show that nothing blocks
 * the program's loop. */
#include <agents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct answer {
    const char *prompt;
    char *text;
    size_t len;
    int done, status;
    long long tokens;
} answer;

static ag_engine *engine;
static answer *answers;
static int n_answers, n_done, ticks, failures;
static uv_poll_t poller;
static uv_timer_t ticker;

static void on_events(uv_poll_t *h, int status, int events) {
    (void)h, (void)status, (void)events;
    ag_event *ev;
    while (ag_engine_next(engine, &ev, 0) == 1) {
        answer *a = ev->ud;
        if (ev->kind == AG_EVENT_CHUNK && ev->chunk.kind == AG_CHUNK_CONTENT) {
            char *t = realloc(a->text, a->len + ev->chunk.len + 1);
            if (t) {
                memcpy(t + a->len, ev->chunk.text, ev->chunk.len);
                a->len += ev->chunk.len;
                t[a->len] = 0;
                a->text = t;
            }
        } else if (ev->kind == AG_EVENT_DONE) {
            a->done = 1;
            a->status = ev->status;
            a->tokens = ev->status == 0 ? (long long)ev->result->server.eval_count : 0;
            if (ev->status) failures++;
            printf("== %s\n%s\n[%s, %lld tokens]\n", a->prompt, a->text ? a->text : "",
                   ev->status ? ag_strerror(ev->status) : "ok", a->tokens);
            if (++n_done == n_answers) { /* all answered: let the loop end */
                uv_poll_stop(&poller);
                uv_timer_stop(&ticker);
            }
        }
        ag_event_free(ev);
    }
}

static void on_tick(uv_timer_t *t) {
    (void)t;
    ticks++;
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL PROMPT...\n", argv[0]), 2;
    int err = 0;
    engine = ag_engine_new(NULL, &err); /* a local client on $OLLAMA_HOST */
    if (!engine) return fprintf(stderr, "engine: %s\n", ag_strerror(err)), 1;
    n_answers = argc - 2;
    answers = calloc((size_t)n_answers, sizeof *answers);
    for (int i = 0; i < n_answers; i++) {
        answers[i].prompt = argv[i + 2];
        ag_message m = {.role = "user", .content = argv[i + 2]};
        ag_chat_params p = {.model = argv[1], .messages = &m, .n_messages = 1};
        if (ag_engine_chat(engine, &p, &answers[i], NULL) != 0) return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_poll_init(loop, &poller, ag_engine_fd(engine));
    uv_poll_start(&poller, UV_READABLE, on_events);
    uv_timer_init(loop, &ticker);
    uv_timer_start(&ticker, on_tick, 1, 1);
    uv_run(loop, UV_RUN_DEFAULT);
    fprintf(stderr, "[%d answers, the timer ticked %d times meanwhile]\n", n_done, ticks);
    uv_close((uv_handle_t *)&poller, NULL);
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    ag_engine_free(engine);
    for (int i = 0; i < n_answers; i++) free(answers[i].text);
    free(answers);
    return failures ? 1 : 0;
}
