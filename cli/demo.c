/* cli/demo.c - `agents demo`: a tour against simulated nodes in this process. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "sim.h"

/* ---- demo: three simulated nodes in this process, real sockets ---- */
typedef struct demo_job {
    int id, chunks, done, status;
    double ttft_ms, e2e_ms;
    char node[64];
} demo_job;

static int demo_left;
static void demo_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    (void)ch;
    ((demo_job *)ud)->chunks++;
}
static void demo_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    demo_job *j = ud;
    j->done = 1;
    j->status = res->status;
    j->ttft_ms = res->timing.ttft_ns / 1e6;
    j->e2e_ms = res->timing.e2e_ns / 1e6;
    snprintf(j->node, sizeof j->node, "%s", res->node ? res->node : "?");
    demo_left--;
}
static void demo_stream_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    ((demo_job *)ud)->chunks++;
    if (ch->kind == AG_CHUNK_CONTENT) {
        fwrite(ch->text, 1, ch->len, stdout);
        fflush(stdout);
    }
}

int cmd_demo(int argc, char **argv) {
    int i = 2, id;
    const char *v;
    while ((id = cli_next(argc, argv, &i, F_HELP, "demo", &v)) != O_END) {
        if (id == O_HELP) {
            cli_help(stdout, cli_cmd_find("demo"));
            return 0;
        }
        die_usage("demo takes no arguments, not '%s'", v);
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = cli_base_new();
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ttft_ms = 120;
    cfg.itl_ms = 25;
    cfg.tokens = 40;
    ag_sim *sims[3];
    ag_client *clients[3];
    for (int i = 0; i < 3; i++) {
        sims[i] = ag_sim_new(base, "127.0.0.1", 0, &cfg);
        if (!sims[i]) { fprintf(stderr, "%s: demo: cannot start a simulated node\n", prog); return EXIT_REQ; }
        char host[64];
        snprintf(host, sizeof host, "127.0.0.1:%d", ag_sim_port(sims[i]));
        ag_client_options co;
        memset(&co, 0, sizeof co);
        co.host = host;
        clients[i] = ag_client_new(base, &co, NULL);
        printf("simulated node %d on %s\n", i + 1, host);
    }
    printf("\n== one streamed chat (llama3.2), token by token ==\n");
    ag_message msg = {"user", "why is the sky blue?", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = "llama3.2";
    p.messages = &msg;
    p.n_messages = 1;
    demo_job one;
    memset(&one, 0, sizeof one);
    ag_callbacks cb = {demo_stream_chunk, demo_done, &one};
    demo_left = 1;
    ag_chat(clients[0], &p, &cb, NULL);
    while (demo_left > 0) event_base_loop(base, EVLOOP_ONCE);
    printf("\n-> %s: first token after %.1f ms, %d chunks, %.1f ms in all\n", one.status ? ag_strerror(one.status) : "ok",
           one.ttft_ms, one.chunks, one.e2e_ms);

    printf("\n== 24 chats at once over 3 nodes, one event loop, one thread ==\n");
    demo_job jobs[24];
    memset(jobs, 0, sizeof jobs);
    demo_left = 24;
    const char *qs[] = {"tell me about rivers", "what is a prime number", "how do birds fly", "name a blue thing"};
    for (int i = 0; i < 24; i++) {
        ag_message m = {"user", qs[i % 4], NULL, NULL, 0, NULL, NULL};
        p.messages = &m;
        jobs[i].id = i;
        ag_callbacks c2 = {demo_chunk, demo_done, &jobs[i]};
        ag_chat(clients[i % 3], &p, &c2, NULL);
    }
    while (demo_left > 0) event_base_loop(base, EVLOOP_ONCE);
    double ttft_sum = 0, e2e_max = 0;
    int ok = 0, chunks = 0;
    for (int i = 0; i < 24; i++) {
        if (jobs[i].status == 0) ok++;
        chunks += jobs[i].chunks;
        ttft_sum += jobs[i].ttft_ms;
        if (jobs[i].e2e_ms > e2e_max) e2e_max = jobs[i].e2e_ms;
    }
    printf("%d/24 ok, %d chunks streamed, mean first token %.1f ms, all done in %.1f ms\n", ok, chunks,
           ttft_sum / 24, e2e_max);
    for (int i = 0; i < 3; i++) printf("  job %2d served by %s\n", jobs[i].id, jobs[i].node);

    printf("\n== embeddings (nomic-embed-text): texts sharing words are closer ==\n");
    const char *texts[] = {"the cat sat on the mat", "a cat on a mat", "stock prices fell sharply today"};
    ag_embed_params ep;
    memset(&ep, 0, sizeof ep);
    ep.model = "nomic-embed-text";
    ep.inputs = texts;
    ep.n_inputs = 3;
    ep.truncate = -1;
    ag_sync_out out;
    int rc = ag_embed_sync(clients[1], &ep, &out);
    if (rc == 0 && out.result->n_embeddings == 3) {
        size_t dim = out.result->dim;
        const float *v = out.result->embeddings;
        printf("%zu vectors of %zu floats\n", out.result->n_embeddings, dim);
        printf("  cos(\"%s\", \"%s\") = %.3f\n", texts[0], texts[1], ag_cosine(v, v + dim, dim));
        printf("  cos(\"%s\", \"%s\") = %.3f\n", texts[0], texts[2], ag_cosine(v, v + 2 * dim, dim));
    } else {
        printf("embed failed: %s\n", ag_strerror(rc));
    }
    ag_sync_out_free(&out);

    printf("\n== a batch of 200 agent tasks over the 3 nodes as one pool (agents batch) ==\n");
    char nodes[128], in[64], outp[64];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ag_sim_port(sims[0]),
             ag_sim_port(sims[1]), ag_sim_port(sims[2]));
    snprintf(in, sizeof in, "/tmp/agents-demo-%d.in.jsonl", (int)getpid());
    snprintf(outp, sizeof outp, "/tmp/agents-demo-%d.out.jsonl", (int)getpid());
    FILE *f = fopen(in, "w");
    for (int i = 1; f && i <= 200; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"question %d\"}\n", i, i);
    if (f) fclose(f);
    ag_pool_options po = {.nodes = nodes};
    ag_client *pool = ag_pool_new(base, &po, NULL);
    ag_agent *agent = ag_agent_chat(pool, "llama3.2");
    ag_batch_options bo = {.in_path = in, .out_path = outp, .concurrency = 48, .progress = -1};
    ag_batch_summary bs;
    memset(&bs, 0, sizeof bs);
    int brc = agent ? ag_batch_run(agent, &bo, &bs) : AG_ENOMEM;
    printf("%zu ok, %zu failed in %.2f s (%.0f tasks/s, %.0f tokens/s; p50 %.0f ms, p99 %.0f ms)\n", bs.ok,
           bs.failed, bs.wall_s, bs.tasks_per_s, bs.tokens_per_s, bs.p50_ms, bs.p99_ms);
    ag_node_info info[3];
    size_t nn = ag_pool_nodes(pool, info, 3);
    for (size_t i = 0; i < nn; i++)
        printf("  %s served %llu, TTFT p50 %.1f ms\n", info[i].name, (unsigned long long)info[i].requests,
               info[i].ttft_p50_ms);
    FILE *rf = fopen(outp, "r");
    char first[512] = "";
    if (rf && fgets(first, sizeof first, rf)) printf("a result line: %s", first);
    if (rf) fclose(rf);
    unlink(in);
    ag_agent_free(agent);
    ag_client_free(pool);
    for (int i = 0; i < 3; i++) {
        ag_client_free(clients[i]);
        ag_sim_free(sims[i]);
    }
    event_base_free(base);
    printf("\nNext: `%s sim --nodes 3 --port 11434 &`, then `%s chat -m llama3.2 \"hello\"` or\n"
           "`%s run -a coding -N 127.0.0.1:11434,127.0.0.1:11435 -m llama3.2 \"fizzbuzz in C\"`.\n"
           "Or the whole cluster behind one address for any Ollama client: `%s gateway --listen 127.0.0.1:8080\n"
           "-N 127.0.0.1:11434,127.0.0.1:11435,127.0.0.1:11436`, then OLLAMA_HOST=127.0.0.1:8080 and\n"
           "http://127.0.0.1:8080/dashboard.\n", prog, prog, prog, prog);
    unlink(outp);
    return ok == 24 && rc == 0 && one.status == 0 && brc == 0 && bs.ok == 200 ? 0 : EXIT_REQ;
}

