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

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        cli_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) {
            cli_usage(stdout);
            return 0;
        }
        const cli_cmd *c = cli_cmd_find(argv[2]);
        if (!c) die_usage("no command '%s'", argv[2]);
        cli_help(stdout, c);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("agents %s\n", ag_version());
        return 0;
    }
    if (!strcmp(cmd, "__options")) { /* what the parser knows, for the test that the manual and completions have it */
        for (const cli_cmd *c = cli_cmds; c->name; c++) printf("command %s\n", c->name);
        for (const cli_opt *o = cli_opts; o->lng; o++) printf("option --%s%s%c\n", o->lng, o->shrt ? " -" : "", o->shrt ? o->shrt : ' ');
        return 0;
    }
    if (!strcmp(cmd, "__man")) { /* the manual page, made at build time */
        cli_man(stdout);
        return 0;
    }
    const cli_cmd *c = cli_cmd_find(cmd);
    if (!c) {
        fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    cmd = c->name;
    if (!strcmp(cmd, "run")) return cmd_run(argc, argv);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc, argv, 0);
    if (!strcmp(cmd, "generate")) return cmd_chat(argc, argv, 1);
    if (!strcmp(cmd, "embed")) return cmd_embed(argc, argv);
    if (!strcmp(cmd, "sim")) return cmd_sim(argc, argv);
    if (!strcmp(cmd, "demo")) return cmd_demo(argc, argv);
    if (!strcmp(cmd, "batch")) return cmd_batch(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "gateway")) return cmd_gateway(argc, argv);
    if (!strcmp(cmd, "create")) return cmd_create(argc, argv);
    if (!strcmp(cmd, "completion")) {
        int i = 2, id;
        const char *v, *shell = NULL;
        while ((id = cli_next(argc, argv, &i, F_HELP, "completion", &v)) != O_END) {
            if (id == O_HELP) {
                cli_help(stdout, c);
                return 0;
            }
            shell = v;
        }
        if (!shell || cli_completion(stdout, shell) != 0) die_usage("completion wants bash or zsh%s", "");
        return 0;
    }
    return cmd_admin(argc, argv, cmd);
}
