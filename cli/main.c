/* cli/main.c - the `agents` command: usage, and one file per family of
 * commands. */
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

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s COMMAND [options]\n\n"
            "Commands:\n"
            "  chat       stream a chat answer            generate   stream a completion\n"
            "  embed      embeddings for texts            models     list models (/api/tags)\n"
            "  ps         loaded models (/api/ps)         show       model details\n"
            "  version    server and client versions      pull       download a model\n"
            "  delete     remove a model                  copy       copy a model\n"
            "  ping       is the server up (HEAD /)       sim        run simulated Ollama nodes\n"
            "  run        one task through an agent       batch      a JSONL file of tasks\n"
            "  bench      node latency: TTFT, ITL, throughput  demo  a tour against simulated nodes\n"
            "  gateway    Ollama's API in front of a pool: any Ollama client uses the whole cluster\n\n"
            "'%s COMMAND --help' for each. Exit codes: 0 ok, 1 the request failed (server or\n"
            "network; one line on stderr), 2 bad usage, 130 interrupted.\n",
            prog, prog);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("agents %s\n", ag_version());
        return 0;
    }
    if (!strcmp(cmd, "chat")) return cmd_chat(argc, argv, 0);
    if (!strcmp(cmd, "generate")) return cmd_chat(argc, argv, 1);
    if (!strcmp(cmd, "embed")) return cmd_embed(argc, argv);
    if (!strcmp(cmd, "sim")) return cmd_sim(argc, argv);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc, argv);
    if (!strcmp(cmd, "run")) return cmd_run(argc, argv);
    if (!strcmp(cmd, "batch")) return cmd_batch(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "gateway")) return cmd_gateway(argc, argv);
    if (!strcmp(cmd, "models") || !strcmp(cmd, "list") || !strcmp(cmd, "tags") || !strcmp(cmd, "ps") ||
        !strcmp(cmd, "show") || !strcmp(cmd, "version") || !strcmp(cmd, "pull") || !strcmp(cmd, "delete") ||
        !strcmp(cmd, "rm") || !strcmp(cmd, "copy") || !strcmp(cmd, "cp") || !strcmp(cmd, "ping"))
        return cmd_admin(argc, argv, cmd);
    fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
    usage(stderr);
    return EXIT_USAGE;
}

