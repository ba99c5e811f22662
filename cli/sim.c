/* cli/sim.c - `agents sim`: simulated Ollama (or OpenAI-compatible) nodes. */
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

/* ---- sim ---- */
void sim_sigint(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

int cmd_sim(int argc, char **argv) {
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *listen = "127.0.0.1";
    int port = 11434, nodes = 1;
    int slots[256], nslots = 0; /* --slots, per node */
    int cache_per_slot = 0;     /* --prefix-cache slots: one conversation a slot, as Ollama's KV cache */
    int i = 2, id;
    const char *v;
    while ((id = cli_next(argc, argv, &i, F_HELP | F_SIM, "sim", &v)) != O_END) {
        switch (id) {
        case O_HELP: cli_help(stdout, cli_cmd_find("sim")); return 0;
        case O_ARG: die_usage("sim takes no arguments, not '%s'", v); break;
        case O_S_LISTEN: listen = v; break;
        case O_S_PORT: port = atoi(v); break;
        case O_S_NODES: nodes = atoi(v); break;
        case O_S_MODELS: cfg.models = v; break;
        case O_S_TOKENS: cfg.tokens = atoi(v); break;
        case O_S_TTFT: cfg.ttft_ms = atof(v); break;
        case O_S_ITL: cfg.itl_ms = atof(v); break;
        case O_S_LOAD: cfg.load_ms = atof(v); break;
        case O_S_SLOTS:
            nslots = 0;
            for (const char *p = v; *p && nslots < 256;) {
                char *e;
                long n = strtol(p, &e, 10);
                if (e == p || n < 0 || n > 100000 || (*e && *e != ',')) die_usage("--slots takes counts, as 4 or 1,2,4, not '%s'", v);
                slots[nslots++] = (int)n;
                p = *e ? e + 1 : e;
            }
            if (!nslots) die_usage("--slots takes counts, as 4 or 1,2,4, not '%s'", v);
            cfg.slots = slots[0];
            break;
        case O_S_QUEUE: cfg.max_queue = atoi(v); break;
        case O_S_DIM: cfg.dim = atoi(v); break;
        case O_S_PREFILL_RATE: cfg.prefill_rate = atof(v); break;
        case O_S_PREFIX_CACHE:
            cache_per_slot = !strcmp(v, "slots");
            cfg.prefix_cache = cache_per_slot ? 0 : atoi(v);
            break;
        case O_S_FAULT: cfg.fault = v; break;
        case O_S_FAULT_AFTER: cfg.fault_after = atoi(v); break;
        case O_S_FAULT_EVERY: cfg.fault_every = atoi(v); break;
        case O_S_SAYS:
            cfg.says = 0;
            if (strstr(v, "props")) cfg.says |= AG_SIM_SAYS_PROPS;
            if (strstr(v, "metrics")) cfg.says |= AG_SIM_SAYS_METRICS;
            if (!cfg.says) die_usage("--says is props, metrics or props,metrics, not '%s'", v);
            break;
        case O_S_API:
            if (strcmp(v, "ollama") && strcmp(v, "openai")) die_usage("--api is ollama or openai, not '%s'", v);
            cfg.api = !strcmp(v, "openai");
            break;
        default: break;
        }
    }
    if (nodes < 1 || nodes > 256) die_usage("--nodes must be 1..256%s", "");
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = cli_base_new();
    ag_sim *sims[256];
    for (int i = 0; i < nodes; i++) {
        if (nslots) cfg.slots = slots[i < nslots ? i : nslots - 1];
        if (cache_per_slot) cfg.prefix_cache = cfg.slots > 0 ? cfg.slots : 64;
        sims[i] = ag_sim_new(base, listen, port ? port + i : 0, &cfg);
        if (!sims[i]) {
            fprintf(stderr, "%s: sim: cannot listen on %s:%d: %s\n", prog, listen, port ? port + i : 0, strerror(errno));
            return EXIT_REQ;
        }
        printf("listening on %s:%d\n", listen, ag_sim_port(sims[i]));
    }
    fflush(stdout);
    struct event *si = evsignal_new(base, SIGINT, sim_sigint, base);
    struct event *st = evsignal_new(base, SIGTERM, sim_sigint, base);
    evsignal_add(si, NULL);
    evsignal_add(st, NULL);
    event_base_dispatch(base);
    for (int i = 0; i < nodes; i++) ag_sim_free(sims[i]);
    event_free(si);
    event_free(st);
    event_base_free(base);
    return 0;
}

