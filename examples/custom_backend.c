/* examples/custom_backend.c - your own backend behind ag_client: here an
 * in-process "echo model" that streams the last user message back a word at
 * a time, and embeds text as letter counts. Agents, sync calls and the rest
 * run on it unchanged (the original package let you subclass its client for
 * this).
 *
 *   ./custom_backend "the quick brown fox"
 */
#include <agents.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one answer in progress */
typedef struct echo_job {
    struct echo_job *next;
    ag_request *req;
    struct event *tick;
    char *text;  /* what is left to say */
    size_t pos;
    int words;
} echo_job;

typedef struct echo {
    struct event_base *base;
    echo_job *jobs;
} echo;

static void job_end(echo *e, echo_job *j) {
    for (echo_job **pp = &e->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    event_free(j->tick);
    free(j->text);
    free(j);
}

static echo *g_echo;

/* a word per tick, then the end */
static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    echo_job *j = arg;
    const char *t = j->text + j->pos;
    if (*t) {
        size_t n = strcspn(t, " ");
        n += t[n] == ' ';
        ag_chunk ch = {.kind = AG_CHUNK_CONTENT, .text = t, .len = n};
        j->pos += n;
        j->words++;
        if (ag_backend_chunk(j->req, &ch) == AG_ECANCELED) { /* the caller stopped it */
            job_end(g_echo, j);
            return;
        }
        struct timeval tv = {0, 5000};
        evtimer_add(j->tick, &tv);
        return;
    }
    ag_result res;
    memset(&res, 0, sizeof res);
    res.model = "echo";
    res.done_reason = "stop";
    res.server.eval_count = j->words;
    res.server.total_duration = res.server.load_duration = res.server.prompt_eval_count =
        res.server.prompt_eval_duration = res.server.eval_duration = -1;
    ag_request *r = j->req;
    job_end(g_echo, j);
    ag_backend_done(r, &res);
}

static int echo_start(void *self, ag_request *req, const ag_backend_call *call) {
    echo *e = self;
    if (call->kind == AG_BACKEND_EMBED) { /* at once: 26 letter counts a text */
        size_t n = call->embed->n_inputs;
        float *v = calloc(n * 26, sizeof *v);
        for (size_t i = 0; i < n; i++)
            for (const char *p = call->embed->inputs[i]; *p; p++)
                if (*p >= 'a' && *p <= 'z') v[i * 26 + (size_t)(*p - 'a')] += 1;
        ag_result res;
        memset(&res, 0, sizeof res);
        res.embeddings = v;
        res.n_embeddings = n;
        res.dim = 26;
        ag_backend_done(req, &res); /* inside start: the library defers it */
        free(v);
        return 0;
    }
    if (call->kind != AG_BACKEND_CHAT) return AG_EINVAL; /* this model only chats and embeds */
    const char *last = "";
    for (size_t i = 0; i < call->chat->n_messages; i++)
        if (!strcmp(call->chat->messages[i].role, "user")) last = call->chat->messages[i].content;
    echo_job *j = calloc(1, sizeof *j);
    j->req = req;
    j->text = strdup(last); /* the parameters are borrowed: copy */
    j->tick = evtimer_new(e->base, on_tick, j);
    j->next = e->jobs;
    e->jobs = j;
    struct timeval tv = {0, 5000};
    evtimer_add(j->tick, &tv);
    return 0;
}

static void echo_cancel(void *self, ag_request *req) {
    echo *e = self;
    for (echo_job *j = e->jobs; j; j = j->next)
        if (j->req == req) {
            job_end(e, j);
            return;
        }
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s TEXT\n", argv[0]), 2;
    echo e = {0};
    g_echo = &e;
    ag_backend b = {.name = "echo", .start = echo_start, .cancel = echo_cancel, .self = &e};
    ag_client *c = ag_client_new_backend(NULL, &b, NULL, NULL); /* a private loop: sync calls */
    e.base = ag_client_base(c);

    /* an agent on it, unchanged */
    ag_agent *a = ag_agent_chat(c, "echo");
    ag_agent_result *res = NULL;
    int rc = ag_agent_full_response(a, argv[1], &res);
    printf("agent said: %s\n[%lld words from %s, first after %.1f ms]\n", res ? res->text : "",
           res ? (long long)res->eval_count : 0LL, res && res->node ? res->node : "?",
           res ? res->timing.ttft_ns / 1e6 : 0.0);
    ag_agent_result_free(res);
    ag_agent_free(a);

    /* embeddings through the same client */
    const char *texts[] = {argv[1]};
    ag_embed_params ep = {.model = "echo", .inputs = texts, .n_inputs = 1};
    ag_sync_out o;
    int erc = ag_embed_sync(c, &ep, &o);
    if (erc == 0) printf("embedding: %zu dimensions, 'o' counted %.0f times\n", o.result->dim,
                         (double)o.result->embeddings['o' - 'a']);
    ag_sync_out_free(&o);
    ag_client_free(c);
    return rc || erc ? 1 : 0;
}
