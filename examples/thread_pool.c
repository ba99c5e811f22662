/* examples/thread_pool.c - a batch with worker threads, each blocking on its
 * own calls while one engine runs them all concurrently.
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./thread_pool llama3.2 8 < prompts.txt
 *
 * Reads one prompt a line, answers them with N threads, prints the answers in
 * input order: "i<TAB>status<TAB>tokens<TAB>answer" (newlines in answers as
 * \n). Threads share the engine and nothing else but the next-line counter. */
#include <agents.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    char *prompt;
    char *answer;
    int status;
    long long tokens;
} job;

static ag_engine *engine;
static const char *model;
static job *jobs;
static size_t n_jobs, next_job;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        size_t i = next_job < n_jobs ? next_job++ : n_jobs;
        pthread_mutex_unlock(&mu);
        if (i == n_jobs) return NULL;
        ag_message m = {.role = "user", .content = jobs[i].prompt};
        ag_chat_params p = {.model = model, .messages = &m, .n_messages = 1};
        ag_sync_out out;
        jobs[i].status = ag_engine_chat_sync(engine, &p, &out); /* blocks this thread only */
        jobs[i].answer = out.text ? strdup(out.text) : NULL;
        jobs[i].tokens = out.result ? (long long)out.result->server.eval_count : 0;
        ag_sync_out_free(&out);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL THREADS < prompts\n", argv[0]), 2;
    model = argv[1];
    int n_threads = atoi(argv[2]);
    if (n_threads < 1 || n_threads > 256) return fprintf(stderr, "THREADS: 1 to 256\n"), 2;
    char line[8192];
    size_t cap = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        if (n_jobs == cap) {
            cap = cap ? cap * 2 : 64;
            job *j = realloc(jobs, cap * sizeof *jobs);
            if (!j) return 1;
            jobs = j;
        }
        jobs[n_jobs++] = (job){.prompt = strdup(line)};
    }
    int err = 0;
    engine = ag_engine_new(NULL, &err); /* a local client on $OLLAMA_HOST */
    if (!engine) return fprintf(stderr, "engine: %s\n", ag_strerror(err)), 1;
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    for (int i = 0; i < n_threads; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
    ag_engine_free(engine);
    int failed = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        printf("%zu\t%s\t%lld\t", i + 1, jobs[i].status ? ag_err_name(jobs[i].status) : "ok", jobs[i].tokens);
        for (const char *c = jobs[i].answer ? jobs[i].answer : ""; *c; c++)
            if (*c == '\n') fputs("\\n", stdout);
            else putchar(*c);
        putchar('\n');
        failed += jobs[i].status != 0;
        free(jobs[i].prompt);
        free(jobs[i].answer);
    }
    free(jobs);
    free(th);
    fprintf(stderr, "[%zu prompts, %d failed, %d threads]\n", n_jobs, failed, n_threads);
    return failed ? 1 : 0;
}
