/* cli/agents.c - the agent commands: run (one task), batch (a JSONL file of
 * tasks). */
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

/* ---- agents ---- */
static ag_agent *make_agent(ag_client *c, opts *o, ag_docstore **store) {
    const char *kind = o->agent ? o->agent : "chat";
    const char *model = model_or_die(o);
    ag_agent *a = NULL;
    *store = NULL;
    if (!strcmp(kind, "chat")) a = ag_agent_chat(c, model);
    else if (!strcmp(kind, "coding")) a = ag_agent_coding(c, model);
    else if (!strcmp(kind, "reasoning")) a = ag_agent_reasoning(c, model);
    else if (!strcmp(kind, "summarization") || !strcmp(kind, "summarize"))
        a = ag_agent_summarizer(c, model, o->context > 0 ? (size_t)o->context : 0);
    else if (!strcmp(kind, "embedding") || !strcmp(kind, "embed"))
        a = ag_agent_embedder(c, model);
    else if (!strcmp(kind, "research") && !o->docs)
        a = ag_agent_research(c, model, NULL, NULL, 0);
    else if (!strcmp(kind, "research")) {
        *store = ag_docstore_new(0, 0);
        struct stat st;
        int rc = stat(o->docs, &st) != 0 ? AG_EINVAL
                 : S_ISDIR(st.st_mode)  ? ag_docstore_add_dir(*store, o->docs)
                                        : ag_docstore_add_file(*store, o->docs);
        if (rc || ag_docstore_passages(*store) == 0) {
            fprintf(stderr, "%s: --docs %s: no readable text documents\n", prog, o->docs);
            exit(EXIT_USAGE);
        }
        a = ag_agent_research(c, model, o->embed_model ? o->embed_model : "nomic-embed-text", *store, o->top_k);
    } else {
        die_usage("unknown agent '%s' (chat, coding, reasoning, research, summarization, embedding)", kind);
    }
    if (!a) die_usage("could not make the %s agent", kind);
    if ((o->system && ag_agent_set(a, "system", o->system)) ||
        (options_json(o) && ag_agent_set(a, "options", options_json(o))) ||
        (o->keep_alive && ag_agent_set(a, "keep_alive", o->keep_alive)) ||
        (o->think && ag_agent_set(a, "think", o->think)) || (o->format && ag_agent_set(a, "format", o->format)))
        die_usage("bad agent settings (check --option values)%s", "");
    return a;
}

typedef struct agent_run {
    run_state rs;
    int done, status;
} agent_run;

static void agent_chunk(ag_task *t, const ag_chunk *c, void *ud) {
    (void)t;
    print_chunk(NULL, c, &((agent_run *)ud)->rs);
}

static void agent_done(ag_task *t, const ag_agent_result *res, void *ud) {
    (void)t;
    agent_run *x = ud;
    run_state *s = &x->rs;
    x->done = 1;
    x->status = res->status;
    g_task = NULL;
    if (s->in_thinking) fputs(s->tty ? "\033[0m\n" : "\n", stdout);
    if (s->printed_any && s->last != '\n') fputc('\n', stdout);
    if (res->status) {
        if (!(g_interrupted && res->status == AG_ECANCELED))
            fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(res->status), res->error);
        return;
    }
    if (res->n_sources) {
        printf("\nSources:\n");
        for (int i = 0; i < res->n_sources; i++)
            printf("[%d] %s (similarity %.3f)\n", res->sources[i].index, res->sources[i].name, res->sources[i].score);
    }
    if (res->embeddings || (res->n_embeddings && !res->dim)) { /* the embedding agent: its vector */
        for (size_t i = 0; i < res->n_embeddings; i++) {
            fputc('[', stdout);
            for (size_t j = 0; j < res->dim; j++)
                printf(j ? ",%.9g" : "%.9g", (double)res->embeddings[i * res->dim + j]);
            fputs("]\n", stdout);
        }
    }
    if (res->n_blocks) fprintf(stderr, "[%d code block%s extracted]\n", res->n_blocks, res->n_blocks > 1 ? "s" : "");
    if (s->o->verbose) {
        fflush(stdout);
        fprintf(stderr, "\nmodel calls:          %d\n", res->steps);
        fprintf(stderr, "output tokens:        %lld\n", (long long)res->eval_count);
        if (res->timing.ttft_ns >= 0)
            fprintf(stderr, "time to first token:  %.1f ms\n", res->timing.ttft_ns / 1e6);
        fprintf(stderr, "end to end:           %.1f ms\n", res->timing.e2e_ns / 1e6);
        if (res->node) fprintf(stderr, "node:                 %s\n", res->node);
    }
    fflush(stdout);
}

int cmd_run(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    positional_model(&o);
    /* no prompt on a terminal: a session, as `ollama run MODEL` */
    if (!o.nargs && isatty(0) && (!o.agent || !strcmp(o.agent, "chat"))) return repl_run(&o, model_or_die(&o));
    char *prompt = read_prompt(&o);
    ag_client *c = make_client(&o);
    ag_docstore *store;
    ag_agent *a = make_agent(c, &o, &store);
    agent_run x;
    memset(&x, 0, sizeof x);
    x.rs.o = &o;
    x.rs.tty = isatty(1);
    ag_agent_callbacks cb = {agent_chunk, agent_done, &x};
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    ag_run_options ro;
    memset(&ro, 0, sizeof ro);
    ro.no_stream = o.no_stream;
    ro.request = req_opts(&o);
    int rc = ag_agent_run_with(a, &m, 1, &ro, &cb, &g_task);
    if (rc) fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(rc), ag_strerror(rc));
    while (!rc && !x.done) event_base_loop(g_base, EVLOOP_ONCE);
    ag_agent_free(a);
    ag_docstore_free(store);
    ag_client_free(c);
    free_loop();
    free(prompt);
    if (rc) return rc == AG_EINVAL ? EXIT_USAGE : EXIT_REQ;
    if (g_interrupted) return EXIT_INT;
    return x.status ? EXIT_REQ : 0;
}

int cmd_batch(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (!o.in || !o.out) die_usage("batch needs --in FILE and --out FILE%s", "");
    ag_client *c = make_client(&o);
    ag_docstore *store;
    ag_agent *a = make_agent(c, &o, &store);
    ag_batch_options bo = {.in_path = o.in, .out_path = o.out, .concurrency = (unsigned)(o.concurrency > 0 ? o.concurrency : 0),
                           .strict = o.strict, .progress = o.no_progress ? 0 : -1,
                           .retry_failed = o.retry_failed};
    ag_batch_summary sum;
    int rc = ag_batch_run(a, &bo, &sum);
    ag_agent_free(a);
    ag_docstore_free(store);
    ag_client_free(c);
    free_loop();
    if (rc) {
        fprintf(stderr, "%s: batch: cannot use %s or %s\n", prog, o.in, o.out);
        return EXIT_USAGE;
    }
    fprintf(stderr, "%zu task(s) run: %zu ok, %zu failed; %zu skipped (done before), %zu duplicate id(s), %zu malformed line(s)%s\n",
            sum.tasks, sum.ok, sum.failed, sum.skipped, sum.duplicates, sum.malformed,
            sum.stopped ? " (stopped: --strict)" : "");
    if (sum.retried) fprintf(stderr, "%zu failed result(s) of an earlier run taken out and run again\n", sum.retried);
    fprintf(stderr, "%.2f s, %.1f tasks/s, %.0f tokens/s; latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms\n",
            sum.wall_s, sum.tasks_per_s, sum.tokens_per_s, sum.p50_ms, sum.p90_ms, sum.p99_ms);
    return sum.failed || sum.stopped ? EXIT_REQ : 0;
}

