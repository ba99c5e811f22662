/* test/spawn.h - what the tests and benchmarks share: `agents sim` in a child process
 * (so that the node's CPU is not the client's), and reading RSS. */
#ifndef AG_BENCH_SPAWN_H
#define AG_BENCH_SPAWN_H
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Starts `bin sim --port 0 --nodes N extra...`; writes "127.0.0.1:P1,..." to
 * nodes. Returns the child's pid (exits the program when it cannot). */
static inline pid_t ag_bench_spawn_sim(const char *bin, int n, char *const extra[], char *nodes, size_t size) {
    int p[2];
    if (pipe(p)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        char count[16];
        snprintf(count, sizeof count, "%d", n);
        char *argv[32] = {(char *)bin, "sim", "--port", "0", "--nodes", count};
        int k = 6;
        for (int i = 0; extra && extra[i] && k < 30; i++) argv[k++] = extra[i];
        argv[k] = NULL;
        execv(bin, argv);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[128];
    nodes[0] = 0;
    for (int i = 0; i < n && fgets(line, sizeof line, f); i++) {
        char *c = strstr(line, "127.0.0.1:");
        if (!c) break;
        c[strcspn(c, "\n")] = 0;
        if (i) strncat(nodes, ",", size - strlen(nodes) - 1);
        strncat(nodes, c, size - strlen(nodes) - 1);
    }
    fclose(f);
    if (!nodes[0]) {
        fprintf(stderr, "the simulated node did not start\n");
        exit(1);
    }
    return pid;
}

/* this process's resident memory now, KiB */
static inline long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

static inline void ag_bench_stop_sim(pid_t pid) {
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}
#endif
