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
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s sim [options]   runs simulated Ollama nodes until interrupted\n\n"
                   "  --listen ADDR        address to bind (default 127.0.0.1)\n"
                   "  --port N             first port (default 11434; 0 = ephemeral)\n"
                   "  --nodes N            N nodes on consecutive ports (default 1)\n"
                   "  --models a,b         model names (default llama3.2,qwen3:4b,nomic-embed-text)\n"
                   "  --tokens N           tokens per answer when num_predict is absent (default 32)\n"
                   "  --ttft MS            delay before the first token\n"
                   "  --itl MS             delay between tokens (0 = as fast as the socket takes them)\n"
                   "  --load MS            cold-load delay the first time a model is used\n"
                   "  --slots N[,N...]     parallel generations (0 = unlimited); more wait in the node's own\n"
                   "                       queue, as Ollama's do, unsaid; a list gives each node its own\n"
                   "                       (--slots 1,2,4: a heterogeneous cluster; the last repeats)\n"
                   "  --queue N            waiting requests before 503 (default 512)\n"
                   "  --dim N              embedding dimensions (default 768)\n"
                   "  --fault KIND         reset, error-line, malformed, http500, http503, http429, stall, silent,\n"
                   "                       close-before-final, close-after-final, truncate, keepalive\n"
                   "  --fault-after N      tokens before the fault (default 0); http429: Retry-After N s\n"
                   "  --fault-every N      fault every Nth generation request (default 1)\n"
                   "  --api openai         speak the OpenAI-compatible API (/v1/chat/completions, SSE)\n"
                   "  --prefill-rate N     prompt tokens evaluated per second per slot; a prefix cache\n"
                   "                       keeps what was evaluated (0 = no prefill time, no cache)\n"
                   "  --prefix-cache N     conversations the prefix cache keeps, LRU (default 64); slots: one\n"
                   "                       a slot, as Ollama keeps a conversation's cache in its slot\n"
                   "  --says WHAT          with --api openai, what the node says of its capacity: props\n"
                   "                       (llama.cpp's /props total_slots and /slots), metrics (vLLM's\n"
                   "                       /metrics running and waiting), or props,metrics\n"
                   "Prints one line 'listening on ADDR:PORT' per node.\n", prog);
            return 0;
        }
        else if (!strcmp(a, "--listen")) listen = need(argc, argv, &i);
        else if (!strcmp(a, "--port")) port = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--nodes")) nodes = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--models")) cfg.models = need(argc, argv, &i);
        else if (!strcmp(a, "--tokens")) cfg.tokens = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--ttft")) cfg.ttft_ms = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--itl")) cfg.itl_ms = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--load")) cfg.load_ms = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--slots")) {
            const char *v = need(argc, argv, &i);
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
        }
        else if (!strcmp(a, "--queue")) cfg.max_queue = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--dim")) cfg.dim = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--prefill-rate")) cfg.prefill_rate = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--prefix-cache")) {
            const char *v = need(argc, argv, &i);
            cache_per_slot = !strcmp(v, "slots");
            cfg.prefix_cache = cache_per_slot ? 0 : atoi(v);
        }
        else if (!strcmp(a, "--fault")) cfg.fault = need(argc, argv, &i);
        else if (!strcmp(a, "--fault-after")) cfg.fault_after = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--fault-every")) cfg.fault_every = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--says")) {
            const char *v = need(argc, argv, &i);
            cfg.says = 0;
            if (strstr(v, "props")) cfg.says |= AG_SIM_SAYS_PROPS;
            if (strstr(v, "metrics")) cfg.says |= AG_SIM_SAYS_METRICS;
            if (!cfg.says) die_usage("--says is props, metrics or props,metrics, not '%s'", v);
        }
        else if (!strcmp(a, "--api")) {
            const char *v = need(argc, argv, &i);
            if (strcmp(v, "ollama") && strcmp(v, "openai")) die_usage("--api is ollama or openai, not '%s'", v);
            cfg.api = !strcmp(v, "openai");
        }
        else die_usage("unknown option '%s'", a);
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

