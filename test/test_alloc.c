/* The allocator promise (agents/alloc.h), checked from outside: this program
 * links the shared libagents.so and replaces libc's malloc, calloc, realloc,
 * free, strdup and strndup with versions that note every call made from
 * inside libagents.so or libyajl (yajl allocates only when the library asks
 * it to). Then, with a counting allocator on every client, it runs a chat
 * and an embed on a local client, chats on a pool whose first node fails
 * before output (failover), chats and a merged model list through a gateway
 * on that pool, a chat re-encoded for an OpenAI-compatible node, an agent
 * task that calls a tool, and a batch run with its resume; simulated nodes
 * run in another process.
 *
 * Passes when no call from the library reached libc (the one exception the
 * header names: free() of the string a tool returned, which the tool made
 * with malloc), the counting allocator saw the work, and every block it
 * handed out was given back by the end. */

#include <agents.h>

#include <dlfcn.h>
#include <execinfo.h>
#include <event2/event.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

/* ---- libc, watched ---- */
static uintptr_t lo[4], hi[4];
static int nranges, armed;
static long bypass;
static void *bypass_at[8];
static void *tool_result; /* the one block the library frees with libc by contract */

static int from_library(void *ra) {
    uintptr_t a = (uintptr_t)ra;
    for (int i = 0; i < nranges; i++)
        if (a >= lo[i] && a < hi[i]) return 1;
    return 0;
}
static int in_note;
static void note(void *ra) {
    if (!armed || !from_library(ra) || in_note) return;
    if (bypass < 8) bypass_at[bypass] = ra;
    bypass++;
    if (getenv("AG_ALLOC_TRACE")) { /* where it came from, for whoever mends it */
        in_note = 1;
        void *bt[12];
        int n = backtrace(bt, 12);
        backtrace_symbols_fd(bt, n, 2);
        fputs("--\n", stderr);
        in_note = 0;
    }
}
__attribute__((noinline)) void *malloc(size_t n) {
    note(__builtin_return_address(0));
    return __libc_malloc(n);
}
__attribute__((noinline)) void *calloc(size_t k, size_t n) {
    note(__builtin_return_address(0));
    return __libc_calloc(k, n);
}
__attribute__((noinline)) void *realloc(void *p, size_t n) {
    note(__builtin_return_address(0));
    return __libc_realloc(p, n);
}
__attribute__((noinline)) char *strndup(const char *s, size_t n) {
    note(__builtin_return_address(0));
    size_t l = strnlen(s, n);
    char *p = __libc_malloc(l + 1);
    if (p) {
        memcpy(p, s, l);
        p[l] = 0;
    }
    return p;
}
__attribute__((noinline)) char *strdup(const char *s) {
    note(__builtin_return_address(0));
    size_t l = strlen(s);
    char *p = __libc_malloc(l + 1);
    if (p) memcpy(p, s, l + 1);
    return p;
}

static int find_ranges(struct dl_phdr_info *info, size_t size, void *ud) {
    (void)size;
    (void)ud;
    const char *n = info->dlpi_name ? info->dlpi_name : "";
    if ((!strstr(n, "libagents.so") && !strstr(n, "libyajl.so")) || nranges >= 4) return 0;
    uintptr_t l = UINTPTR_MAX, h = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < l) l = a;
        if (a + ph->p_memsz > h) h = a + ph->p_memsz;
    }
    lo[nranges] = l;
    hi[nranges++] = h;
    return 0;
}

/* ---- the counting allocator ---- */
typedef struct counts {
    long mallocs, reallocs, frees, live;
} counts;
static void *c_malloc(void *ctx, size_t n) {
    counts *c = ctx;
    void *p = __libc_malloc(n);
    if (p) c->mallocs++, c->live++;
    return p;
}
static void *c_realloc(void *ctx, void *p, size_t n) {
    counts *c = ctx;
    void *q = __libc_realloc(p, n);
    if (q) {
        c->reallocs++;
        if (!p) c->live++;
    }
    return q;
}
static void c_free(void *ctx, void *p) {
    counts *c = ctx;
    if (p) c->frees++, c->live--;
    __libc_free(p);
}

static int failures;
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x);                  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static int pending, oks;
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    (void)ud;
    pending--;
    if (res->status == 0) oks++;
    else fprintf(stderr, "request failed: %s: %s\n", ag_err_name(res->status), res->error);
}
static void on_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    (void)r;
    (void)c;
    (void)ud;
}
static void run(struct event_base *base) {
    for (int i = 0; i < 2000 && pending > 0; i++) event_base_loop(base, EVLOOP_ONCE);
}

static int chat(ag_client *c, const char *prompt, int stream) {
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = "llama3.2", .messages = &m, .n_messages = 1};
    p.gen.no_stream = !stream;
    ag_callbacks cb = {on_chunk, on_done, NULL};
    int rc = ag_chat(c, &p, &cb, NULL);
    if (rc == 0) pending++;
    return rc;
}

static int tool(const char *args, size_t len, char **result, void *ud) {
    (void)args;
    (void)len;
    (void)ud;
    *result = tool_result = strdup("sunny"); /* the tool's own malloc, freed by the library with free() */
    return 0;
}
static int task_done, task_status;
static void t_done(ag_task *t, const ag_agent_result *r, void *ud) {
    (void)t;
    (void)ud;
    task_done = 1;
    task_status = r->status;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s AGENTS_BINARY\n", argv[0]);
        return 2;
    }
    dl_iterate_phdr(find_ranges, NULL);
    CHECK(nranges >= 2); /* libagents.so and libyajl */
    char good[256], bad[256];
    pid_t gp = ag_bench_spawn_sim(argv[1], 2, (char *[]){"--tokens", "8", NULL}, good, sizeof good);
    pid_t bp = ag_bench_spawn_sim(argv[1], 1, (char *[]){"--tokens", "8", "--fault", "error-line", NULL}, bad,
                                  sizeof bad);
    if (getenv("AG_TEST_VERBOSE")) fprintf(stderr, "good %s, bad %s\n", good, bad);
    char oai[256];
    pid_t op_ = ag_bench_spawn_sim(argv[1], 1, (char *[]){"--tokens", "4", "--api", "openai", NULL}, oai, sizeof oai);
    char node_a[64], node_b[64];
    sscanf(good, "%63[^,],%63s", node_a, node_b);
    struct event_base *base = event_base_new();
    counts cl = {0}, cp = {0}, cv = {0};
    ag_alloc_funcs al = {c_malloc, c_realloc, c_free, &cl}, ap = {c_malloc, c_realloc, c_free, &cp},
                   av = {c_malloc, c_realloc, c_free, &cv};
    armed = 1;

    /* a local client: a chat and an embed */
    ag_client_options co = {.host = node_a, .alloc = &al};
    ag_client *local = ag_client_new(base, &co, NULL);
    CHECK(local != NULL);
    CHECK(chat(local, "hello", 1) == 0);
    const char *texts[] = {"one", "two"};
    ag_embed_params ep = {.model = "nomic-embed-text", .inputs = texts, .n_inputs = 2, .truncate = -1};
    ag_callbacks ecb = {NULL, on_done, NULL};
    if (ag_embed(local, &ep, &ecb, NULL) == 0) pending++;
    run(base);
    CHECK(oks == 2);

    /* a pool whose first node fails before any output: failover */
    char nodes[600];
    snprintf(nodes, sizeof nodes, "%s,%s", bad, node_b);
    ag_pool_options po = {.nodes = nodes, .policy = AG_POLICY_ROUND_ROBIN, .probe_interval = -1,
                          .eject_after = 1000, .client.alloc = &ap};
    ag_client *pool = ag_pool_new(base, &po, NULL);
    CHECK(pool != NULL);
    oks = 0;
    for (int i = 0; i < 6; i++) CHECK(chat(pool, "fail me over", 1) == 0); /* the sim fails streams */
    run(base);
    CHECK(oks == 6);
    ag_pool_stats ps;
    ag_pool_get_stats(pool, &ps);
    CHECK(ps.retried > 0);
    if (ps.retried == 0) {
        ag_node_info ni[2];
        size_t nn = ag_pool_nodes(pool, ni, 2);
        for (size_t i = 0; i < nn && i < 2; i++)
            fprintf(stderr, "node %s: requests %llu errors %llu\n", ni[i].name, (unsigned long long)ni[i].requests,
                    (unsigned long long)ni[i].errors);
    }

    /* a gateway on that pool, and a client through it */
    ag_gateway_options go = {.listen = "127.0.0.1:0"};
    ag_gateway *gw = ag_gateway_new(base, pool, &go, NULL);
    CHECK(gw != NULL);
    char gh[64];
    snprintf(gh, sizeof gh, "127.0.0.1:%d", ag_gateway_port(gw));
    ag_client_options vo = {.host = gh, .alloc = &av};
    ag_client *via = ag_client_new(base, &vo, NULL);
    oks = 0;
    for (int i = 0; i < 4; i++) CHECK(chat(via, "through the gateway", i % 2) == 0);
    ag_callbacks tcb = {NULL, on_done, NULL};
    if (ag_admin(via, AG_OP_TAGS, NULL, &tcb, NULL) == 0) pending++; /* the gateway merges the lists */
    run(base);
    CHECK(oks == 5);

    /* an OpenAI-compatible node: options and tool calls re-encoded for it */
    ag_client_options oo = {.host = oai, .alloc = &al, .api = AG_API_OPENAI};
    ag_client *oc = ag_client_new(base, &oo, NULL);
    CHECK(oc != NULL);
    ag_message om[2] = {{"user", "hi", NULL, NULL, 0, NULL, NULL},
                        {"assistant", "", NULL, NULL, 0,
                         "[{\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]", NULL}};
    ag_chat_params op = {.model = "llama3.2", .messages = om, .n_messages = 2};
    op.gen.options_json = "{\"temperature\":0.2,\"num_predict\":4,\"stop\":[\"x\"]}";
    ag_callbacks ocb = {on_chunk, on_done, NULL};
    oks = 0;
    if (ag_chat(oc, &op, &ocb, NULL) == 0) pending++;
    run(base);
    CHECK(oks == 1);

    /* an agent task that calls a tool, on the local client */
    ag_agent_config cfg = {.name = "weather", .model = "llama3.2"};
    ag_agent *agent = ag_agent_new(local, &cfg);
    CHECK(agent != NULL);
    CHECK(ag_agent_add_tool(agent, "get_weather", "the weather", NULL, tool, NULL) == 0);
    ag_agent_callbacks acb = {NULL, t_done, NULL};
    CHECK(ag_agent_ask(agent, "weather in Paris", &acb, NULL) == 0);
    for (int i = 0; i < 2000 && !task_done; i++) event_base_loop(base, EVLOOP_ONCE);
    CHECK(task_done && task_status == 0);

    /* research (retrieval over a document store), summarization (map and
     * reduce), the embedding agent */
    ag_docstore *ds = ag_docstore_new_with(0, 0, &al);
    CHECK(ag_docstore_add_text(ds, "notes", "Caching: we decided on an LRU of 512 entries. "
                                            "Deploys happen on Tuesdays.") == 0);
    ag_agent *research = ag_agent_research(local, "llama3.2", "nomic-embed-text", ds, 2);
    ag_agent *summ = ag_agent_summarizer(local, "llama3.2", 600);
    ag_agent *emb = ag_agent_embedder(local, "nomic-embed-text");
    CHECK(research && summ && emb);
    char longtext[6000];
    for (size_t i = 0; i + 40 < sizeof longtext; i += 40) memcpy(longtext + i, "A sentence about the weather today. ", 36), memset(longtext + i + 36, ' ', 4);
    longtext[sizeof longtext - 1] = 0;
    const char *et[] = {"one", "two", "three"};
    task_done = 0;
    CHECK(ag_agent_ask(research, "what did we decide about caching?", &acb, NULL) == 0);
    for (int i = 0; i < 2000 && !task_done; i++) event_base_loop(base, EVLOOP_ONCE);
    CHECK(task_done && task_status == 0);
    task_done = 0;
    CHECK(ag_agent_ask(summ, longtext, &acb, NULL) == 0);
    for (int i = 0; i < 4000 && !task_done; i++) event_base_loop(base, EVLOOP_ONCE);
    CHECK(task_done && task_status == 0);
    task_done = 0;
    CHECK(ag_agent_embed_texts(emb, et, 3, &acb, NULL) == 0);
    for (int i = 0; i < 2000 && !task_done; i++) event_base_loop(base, EVLOOP_ONCE);
    CHECK(task_done && task_status == 0);
    ag_agent_free(research);
    ag_agent_free(summ);
    ag_agent_free(emb);
    ag_docstore_free(ds);

    /* a batch of tasks through the agent */
    char in[64], outp[64];
    snprintf(in, sizeof in, "/tmp/ag_alloc_in_%d", (int)getpid());
    snprintf(outp, sizeof outp, "/tmp/ag_alloc_out_%d", (int)getpid());
    FILE *f = fopen(in, "w");
    for (int i = 1; i <= 3; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"task %d\", \"options\": {\"num_predict\": 3}}\n", i, i);
    fclose(f);
    unlink(outp);
    ag_agent *plain = ag_agent_chat(local, "llama3.2");
    ag_batch_options bo = {.in_path = in, .out_path = outp, .concurrency = 2, .progress = 0};
    ag_batch_summary sum;
    CHECK(ag_batch_run(plain, &bo, &sum) == 0 && sum.ok == 3);
    bo.retry_failed = 1; /* a resume reads the output back */
    CHECK(ag_batch_run(plain, &bo, &sum) == 0 && sum.skipped == 3);
    ag_agent_free(plain);
    unlink(in);
    unlink(outp);

    ag_client_free(oc);
    ag_agent_free(agent);
    ag_client_free(via);
    for (int i = 0; i < 50; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    ag_gateway_free(gw);
    ag_client_free(pool);
    ag_client_free(local);
    for (int i = 0; i < 50; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    armed = 0;

    fprintf(stderr, "local client: %ld mallocs, %ld reallocs, %ld frees, %ld live at the end\n", cl.mallocs,
            cl.reallocs, cl.frees, cl.live);
    fprintf(stderr, "pool + gateway: %ld mallocs, %ld reallocs, %ld frees, %ld live at the end\n", cp.mallocs,
            cp.reallocs, cp.frees, cp.live);
    fprintf(stderr, "client via the gateway: %ld mallocs, %ld frees, %ld live\n", cv.mallocs, cv.frees, cv.live);
    fprintf(stderr, "calls from the library straight to libc: %ld\n", bypass);
    for (long i = 0; i < bypass && i < 8; i++) {
        Dl_info di;
        if (dladdr(bypass_at[i], &di) && di.dli_fname)
            fprintf(stderr, "  at %p (%s+%#lx, near %s)\n", bypass_at[i], di.dli_fname,
                    (unsigned long)((uintptr_t)bypass_at[i] - (uintptr_t)di.dli_fbase),
                    di.dli_sname ? di.dli_sname : "?");
    }
    CHECK(bypass == 0);
    CHECK(cl.mallocs > 50 && cp.mallocs > 50 && cv.mallocs > 10);
    CHECK(cl.live == 0 && cp.live == 0 && cv.live == 0);
    event_base_free(base);
    ag_bench_stop_sim(gp);
    ag_bench_stop_sim(bp);
    ag_bench_stop_sim(op_);
    printf("%s allocator\n", failures ? "FAIL" : "ok  ");
    return failures ? 1 : 0;
}
