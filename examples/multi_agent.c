/* examples/multi_agent.c - a pipeline of agents, each one's answer the next
 * one's input: research, then analysis, then a summary (the original
 * package's multi_agent_workflow.py, in C).
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./multi_agent llama3.2 "quantum computing"
 *
 * Blocking calls on one client; each stage prints the start of its answer.
 * With a pool (OLLAMA_HOSTS="a:11434,b:11434") the stages go where there is
 * room, and a node that fails is replaced without the pipeline noticing. */
#include <agents.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one stage: an agent on a prompt; the answer malloc'd, NULL on failure */
static char *stage(const char *title, ag_agent *a, const char *prompt) {
    printf("== %s\n", title);
    ag_message m = {.role = "user", .content = prompt};
    ag_agent_result *res = NULL;
    int rc = ag_agent_get_full_response(a, &m, 1, NULL, &res);
    char *answer = NULL;
    if (rc == 0 && res && res->text) {
        answer = strdup(res->text);
        printf("%.400s%s\n[%lld tokens from %s]\n\n", res->text, res->text_len > 400 ? "..." : "",
               (long long)res->eval_count, res->node ? res->node : "?");
    } else {
        fprintf(stderr, "%s failed: %s\n", title, res && res->error ? res->error : ag_strerror(rc));
    }
    ag_agent_result_free(res);
    return answer;
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL TOPIC\n", argv[0]), 2;
    const char *model = argv[1], *topic = argv[2];
    int err = 0;
    /* NULL base: a private loop for the blocking calls; $OLLAMA_HOSTS makes a pool */
    ag_client *c = getenv("OLLAMA_HOSTS") ? ag_pool_new(NULL, NULL, &err) : ag_client_new(NULL, NULL, &err);
    if (!c) return fprintf(stderr, "client: %s\n", ag_strerror(err)), 1;
    ag_agent *researcher = ag_agent_research(c, model, NULL, NULL, 0); /* no documents */
    ag_agent *analyst = ag_agent_reasoning(c, model);
    ag_agent *summarizer = ag_agent_summarizer(c, model, 0);

    char prompt[1024];
    snprintf(prompt, sizeof prompt, "Research the topic: %s", topic);
    char *research = stage("Stage 1: research", researcher, prompt);
    char *analysis = NULL, *summary = NULL;
    if (research) {
        size_t n = strlen(research) + 64;
        char *p = malloc(n);
        snprintf(p, n, "Analyze this research and identify key insights:\n\n%s", research);
        analysis = stage("Stage 2: analysis", analyst, p);
        free(p);
    }
    if (analysis) {
        size_t n = strlen(research) + strlen(analysis) + 96;
        char *p = malloc(n);
        snprintf(p, n, "Summarize these findings:\n\nResearch:\n%s\n\nAnalysis:\n%s", research, analysis);
        summary = stage("Stage 3: summary", summarizer, p);
        free(p);
    }
    int ok = summary != NULL;
    free(research);
    free(analysis);
    free(summary);
    ag_agent_free(researcher);
    ag_agent_free(analyst);
    ag_agent_free(summarizer);
    ag_client_free(c);
    return ok ? 0 : 1;
}
