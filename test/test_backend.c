/* A backend of one's own (agents/backend.h): the client's contract holds
 * for whatever answers - streaming, completion once and from the loop,
 * cancel, deadlines, free, agents and the sync wrappers on top. */
#include <agents.h>
#include <event2/event.h>

#include "test.h"

/* a scripted backend: answers "one two three ..." a word per timer tick */
typedef struct job {
    struct job *next;
    ag_request *req;
    struct event *ev;
    int words, sent;
    int status; /* done with this status instead of answering */
} job;

typedef struct script {
    struct event_base *base;
    job *jobs;
    int words;           /* per answer */
    int refuse;          /* start returns this */
    int done_in_start;   /* ag_backend_done from inside start, with this status (1 = 0) */
    int chunk_in_start_rc;
    int starts, cancels, destroys, completed;
    char last_model[64];
} script;

static void job_forget(script *s, job *j) {
    for (job **pp = &s->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    event_free(j->ev);
    free(j);
}

static const char *const WORDS[] = {"one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight "};

static script *g_script; /* the one backend of a test */

static void tick2(evutil_socket_t fd, short w, void *arg) {
    (void)fd, (void)w;
    job *j = arg;
    script *s = g_script;
    if (j->sent < j->words) {
        ag_chunk ch = {.kind = AG_CHUNK_CONTENT, .text = WORDS[j->sent % 8], .len = strlen(WORDS[j->sent % 8])};
        j->sent++;
        if (ag_backend_chunk(j->req, &ch) == AG_ECANCELED) { /* ended in the caller's callback */
            job_forget(s, j);
            return;
        }
        struct timeval tv = {0, 2000};
        evtimer_add(j->ev, &tv);
        return;
    }
    ag_result res;
    memset(&res, 0, sizeof res);
    res.model = s->last_model;
    res.done_reason = "stop";
    res.server.eval_count = j->words;
    res.server.total_duration = res.server.load_duration = res.server.prompt_eval_count =
        res.server.prompt_eval_duration = res.server.eval_duration = -1;
    ag_request *r = j->req;
    job_forget(s, j);
    s->completed++;
    ag_backend_done(r, &res);
}

static int b_start(void *self, ag_request *req, const ag_backend_call *call) {
    script *s = self;
    s->starts++;
    if (s->refuse) return s->refuse;
    if (call->kind == AG_BACKEND_CHAT) snprintf(s->last_model, sizeof s->last_model, "%s", call->chat->model);
    s->chunk_in_start_rc = ag_backend_chunk(req, &(ag_chunk){.kind = AG_CHUNK_CONTENT, .text = "x", .len = 1});
    if (s->done_in_start) {
        ag_result res;
        memset(&res, 0, sizeof res);
        res.status = s->done_in_start == 1 ? 0 : s->done_in_start;
        res.error = res.status ? "refused in start" : NULL;
        res.version = "script-1";
        return ag_backend_done(req, &res);
    }
    job *j = calloc(1, sizeof *j);
    j->req = req;
    j->words = s->words;
    j->ev = evtimer_new(s->base, tick2, j);
    j->next = s->jobs;
    s->jobs = j;
    struct timeval tv = {0, 2000};
    evtimer_add(j->ev, &tv);
    return 0;
}

static void b_cancel(void *self, ag_request *req) {
    script *s = self;
    s->cancels++;
    for (job *j = s->jobs; j; j = j->next)
        if (j->req == req) {
            job_forget(s, j);
            return;
        }
}

static void b_destroy(void *self) {
    ((script *)self)->destroys++;
}

static ag_client *open_backend(script *s, struct event_base *base) {
    memset(s, 0, sizeof *s);
    s->base = base;
    s->words = 5;
    g_script = s;
    ag_backend b = {"script", b_start, b_cancel, b_destroy, s};
    int err = 0;
    ag_client *c = ag_client_new_backend(base, &b, NULL, &err);
    REQUIRE(c && err == 0);
    return c;
}

typedef struct got {
    int dones, chunks, status, in_start;
    char text[256];
    size_t len;
    ag_result *res;
    int cancel_at;
    ag_request *req;
} got;

static void g_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    got *g = ud;
    g->chunks++;
    if (g->len + ch->len < sizeof g->text) {
        memcpy(g->text + g->len, ch->text, ch->len);
        g->len += ch->len;
    }
    if (g->cancel_at && g->chunks == g->cancel_at) ag_request_cancel(r);
}

static void g_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    got *g = ud;
    g->dones++;
    g->status = res->status;
    g->res = ag_result_dup(res);
}

static int run_until(struct event_base *base, int *flag, int n) {
    for (int i = 0; i < 5000 && *flag < n; i++) event_base_loop(base, EVLOOP_ONCE);
    return *flag >= n;
}

static int start_chat(ag_client *c, got *g, const ag_request_options *ro) {
    ag_message m = {"user", "hi", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "scripted", .messages = &m, .n_messages = 1, .request = ro};
    ag_callbacks cb = {g_chunk, g_done, g};
    return ag_chat(c, &p, &cb, &g->req);
}

static void streams(void) {
    struct event_base *base = event_base_new();
    script s;
    ag_client *c = open_backend(&s, base);
    got g = {0};
    CHECK_INT(start_chat(c, &g, NULL), 0);
    CHECK_INT(g.dones, 0); /* never inside the starting call */
    CHECK_INT(s.chunk_in_start_rc, AG_EINVAL);
    REQUIRE(run_until(base, &g.dones, 1));
    CHECK_INT(g.status, 0);
    CHECK_INT(g.chunks, 5);
    CHECK_STR(g.text, "one two three four five ");
    REQUIRE(g.res);
    CHECK_STR(g.res->model, "scripted");
    CHECK_STR(g.res->done_reason, "stop");
    CHECK_STR(g.res->node, "script");
    CHECK_INT(g.res->server.eval_count, 5);
    CHECK_INT(g.res->attempts, 1);
    CHECK(g.res->timing.ttft_ns > 0 && g.res->timing.chunks == 5 && g.res->timing.bytes == (int64_t)g.len);
    ag_result_free(g.res);
    ag_client_stats st;
    ag_client_get_stats(c, &st);
    CHECK(st.requests_started == 1 && st.requests_done == 1 && st.in_flight == 0);
    ag_client_free(c);
    CHECK_INT(s.destroys, 1);
    event_base_free(base);
}

static void refusals(void) {
    struct event_base *base = event_base_new();
    script s;
    ag_client *c = open_backend(&s, base);
    /* start refuses: done later says so */
    s.refuse = AG_EBUSY;
    got g = {0};
    CHECK_INT(start_chat(c, &g, NULL), 0);
    CHECK_INT(g.dones, 0);
    REQUIRE(run_until(base, &g.dones, 1));
    CHECK_INT(g.status, AG_EBUSY);
    CHECK(g.res && strstr(g.res->error, "backend refused"));
    ag_result_free(g.res);
    /* done inside start: deferred to the loop, the backend's result kept */
    s.refuse = 0;
    s.done_in_start = AG_ESERVER;
    got h = {0};
    CHECK_INT(start_chat(c, &h, NULL), 0);
    CHECK_INT(h.dones, 0);
    REQUIRE(run_until(base, &h.dones, 1));
    CHECK_INT(h.status, AG_ESERVER);
    CHECK(h.res && !strcmp(h.res->error, "refused in start") && !strcmp(h.res->version, "script-1"));
    ag_result_free(h.res);
    /* and successfully, with the sync wrapper on a private loop */
    ag_client_free(c);
    c = open_backend(&s, NULL);
    s.base = ag_client_base(c);
    s.done_in_start = 1;
    ag_sync_out o;
    CHECK_INT(ag_admin_sync(c, AG_OP_VERSION, NULL, NULL, NULL, &o), 0);
    CHECK(o.result && !strcmp(o.result->version, "script-1"));
    ag_sync_out_free(&o);
    ag_client_free(c);
    event_base_free(base);
}

static void cancels(void) {
    struct event_base *base = event_base_new();
    script s;
    ag_client *c = open_backend(&s, base);
    s.words = 100;
    /* from inside a chunk callback: the backend learns from the return */
    got g = {.cancel_at = 3};
    CHECK_INT(start_chat(c, &g, NULL), 0);
    REQUIRE(run_until(base, &g.dones, 1));
    CHECK_INT(g.status, AG_ECANCELED);
    CHECK_INT(g.chunks, 3);
    CHECK(s.jobs == NULL);
    ag_result_free(g.res);
    /* from outside: the backend's cancel runs */
    got h = {0};
    CHECK_INT(start_chat(c, &h, NULL), 0);
    for (int i = 0; i < 1000 && h.chunks < 2; i++) event_base_loop(base, EVLOOP_ONCE);
    ag_request_cancel(h.req);
    CHECK_INT(h.dones, 1);
    CHECK_INT(h.status, AG_ECANCELED);
    CHECK_INT(s.cancels, 1);
    CHECK(s.jobs == NULL);
    ag_result_free(h.res);
    /* a deadline */
    got d = {0};
    ag_request_options ro = {.deadline = 0.05};
    CHECK_INT(start_chat(c, &d, &ro), 0);
    REQUIRE(run_until(base, &d.dones, 1));
    CHECK_INT(d.status, AG_EDEADLINE);
    CHECK_INT(s.cancels, 2);
    ag_result_free(d.res);
    /* free with work pending: each cancelled, ESHUTDOWN, destroy once */
    got p1 = {0}, p2 = {0};
    CHECK_INT(start_chat(c, &p1, NULL), 0);
    CHECK_INT(start_chat(c, &p2, NULL), 0);
    event_base_loop(base, EVLOOP_ONCE);
    ag_client_free(c);
    CHECK_INT(p1.status, AG_ESHUTDOWN);
    CHECK_INT(p2.status, AG_ESHUTDOWN);
    CHECK_INT(s.cancels, 4);
    CHECK_INT(s.destroys, 1);
    CHECK(s.jobs == NULL);
    ag_result_free(p1.res);
    ag_result_free(p2.res);
    event_base_free(base);
}

/* the agents and the engine run on a backend unchanged */
static void agents_on_a_backend(void) {
    struct event_base *base = event_base_new();
    script s;
    ag_client *c = open_backend(&s, base);
    ag_agent *a = ag_agent_coding(c, "scripted");
    ag_agent_result *res = NULL;
    CHECK_INT(ag_agent_full_response(a, "write something", &res), 0);
    CHECK(res && res->text_len == strlen("one two three four five ") && res->steps == 1);
    CHECK(res && res->node && !strcmp(res->node, "script"));
    ag_agent_result_free(res);
    ag_agent_free(a);
    /* NULL start or cancel: refused */
    ag_backend bad = {"x", NULL, b_cancel, NULL, &s};
    int err = 0;
    CHECK(ag_client_new_backend(base, &bad, NULL, &err) == NULL);
    CHECK_INT(err, AG_EINVAL);
    /* chunk and done on a request of another kind of client: refused */
    CHECK_INT(ag_backend_chunk(NULL, NULL), AG_EINVAL);
    ag_client_free(c);
    event_base_free(base);
}

T_MAIN(T(streams), T(refusals), T(cancels), T(agents_on_a_backend))
