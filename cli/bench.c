/* cli/bench.c - `agents bench`: the node-latency benchmark. */
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

#include "nodebench.h"

/* ---- bench ---- */
static int parse_list_i(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s || v < 1 || v > 100000) return -1;
        out[n++] = (int)v;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}
static int parse_list_d(const char *s, double *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *e;
        double v = strtod(s, &e);
        if (e == s || !(v > 0)) return -1;
        out[n++] = v;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return n;
}
/* "500ms", "2s", "1.5" (ms) */
static double parse_ms(const char *s) {
    char *e;
    double v = strtod(s, &e);
    if (e == s || v < 0) return -1;
    if (!strcmp(e, "s")) return v * 1000;
    if (!strcmp(e, "ms") || !*e) return v;
    if (!strcmp(e, "us")) return v / 1000;
    return -1;
}

int cmd_bench(int argc, char **argv) {
    int conc[64], nconc = 0, n_prompts = 0;
    double rate[64];
    int nrate = 0;
    nb_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *json = NULL, *csv = NULL, *html = NULL, *prompts_file = NULL;
    /* bench's own options first; the rest (host, nodes, model...) as everywhere */
    char *rest[256];
    int nrest = 0;
    rest[nrest++] = argv[0];
    rest[nrest++] = argv[1];
    for (int i = 2; i < argc && nrest < 250; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--concurrency") || !strcmp(a, "-c")) {
            if ((nconc = parse_list_i(need(argc, argv, &i), conc, 64)) <= 0) die_usage("--concurrency wants N or N,N,... %s", "");
        } else if (!strcmp(a, "--rate")) {
            if ((nrate = parse_list_d(need(argc, argv, &i), rate, 64)) <= 0) die_usage("--rate wants R or R,R,... (requests/s)%s", "");
        } else if (!strcmp(a, "--requests") || !strcmp(a, "-n")) cfg.requests = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--duration")) cfg.duration = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--warmup")) cfg.warmup = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--seed")) cfg.seed = strtoull(need(argc, argv, &i), NULL, 10);
        else if (!strcmp(a, "--max-tokens")) cfg.max_tokens = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--prompts")) prompts_file = need(argc, argv, &i);
        else if (!strcmp(a, "--turns")) {
            if ((cfg.turns = atoi(need(argc, argv, &i))) < 1 || cfg.turns > 1000) die_usage("--turns wants 1..1000%s", "");
        } else if (!strcmp(a, "--shared-prefix")) {
            if ((cfg.shared_prefix = atoi(need(argc, argv, &i))) < 0 || cfg.shared_prefix > 1000000)
                die_usage("--shared-prefix wants a number of tokens (0..1000000)%s", "");
        } else if (!strcmp(a, "--turn-tokens")) {
            if ((cfg.turn_tokens = atoi(need(argc, argv, &i))) < 0 || cfg.turn_tokens > 1000000)
                die_usage("--turn-tokens wants a number of tokens (0..1000000)%s", "");
        } else if (!strcmp(a, "--no-session")) cfg.no_session = 1;
        else if (!strcmp(a, "--endpoint")) {
            const char *e = need(argc, argv, &i);
            cfg.endpoint = !strcmp(e, "chat") ? NB_CHAT : !strcmp(e, "generate") ? NB_GENERATE : !strcmp(e, "embed") ? NB_EMBED : -1;
            if (cfg.endpoint < 0) die_usage("--endpoint is chat, generate or embed, not '%s'", e);
        } else if (!strcmp(a, "--slo")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", need(argc, argv, &i));
            for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
                char *eq = strchr(t, '=');
                double v = eq ? parse_ms(eq + 1) : -1;
                if (!eq || v < 0) die_usage("--slo wants ttft=500ms,tpot=50ms,e2e=10s, not '%s'", t);
                *eq = 0;
                if (!strcmp(t, "ttft")) cfg.slo_ttft_ms = v;
                else if (!strcmp(t, "tpot")) cfg.slo_tpot_ms = v;
                else if (!strcmp(t, "e2e")) cfg.slo_e2e_ms = v;
                else die_usage("--slo knows ttft, tpot and e2e, not '%s'", t);
            }
        } else if (!strcmp(a, "--json")) json = need(argc, argv, &i);
        else if (!strcmp(a, "--csv")) csv = need(argc, argv, &i);
        else if (!strcmp(a, "--html")) html = need(argc, argv, &i);
        else rest[nrest++] = argv[i];
    }
    opts o;
    parse_common(nrest, rest, 2, &o);
    if (o.help) {
        printf("usage: %s bench -m MODEL [options]\n\n"
               "Measures what a node (or, with --nodes, a cluster) delivers: TTFT, inter-token latency\n"
               "(ITL), time per output token (TPOT), end to end, throughput and goodput.\n\n"
               "  -c, --concurrency N[,N...]  closed loop at each concurrency (default 1)\n"
               "      --rate R[,R...]         open loop: Poisson arrivals at R requests/s\n"
               "  -n, --requests N            requests per point (default 100), or\n"
               "      --duration S            seconds per point\n"
               "      --warmup N              requests before each point, not counted (default 0)\n"
               "      --seed N                for the arrivals (default 42)\n"
               "      --prompts FILE          one prompt a line, or JSONL with \"prompt\"\n"
               "      --max-tokens N          num_predict\n"
               "      --turns K               conversations of K turns: each re-sends the history (questions\n"
               "                              and answers as received) plus a new question; -n counts turns\n"
               "      --shared-prefix T       a system prompt of about T tokens shared by every request\n"
               "      --turn-tokens T         each turn adds a message of about T tokens (an agent's tool\n"
               "                              result) instead of a short question\n"
               "      --no-session            conversations without a session key (see --policy)\n"
               "      --endpoint E            chat (default), generate or embed\n"
               "      --slo ttft=500ms,tpot=50ms,e2e=10s   goodput counts requests within all of them\n"
               "      --json FILE             every point: config, percentiles, server timings, nodes\n"
               "      --csv FILE              one row per request with every timestamp\n"
               "      --html FILE             a self-contained page: CDFs, ITL histogram, sweep charts, nodes\n%s",
               prog, common_help);
        return 0;
    }
    cfg.model = model_or_die(&o);
    if (cfg.turns > 1 && cfg.endpoint != NB_CHAT) die_usage("--turns wants --endpoint chat%s", "");
    cfg.max_tokens = cfg.max_tokens ? cfg.max_tokens : 0;
    if (nrate && nconc) die_usage("--rate and --concurrency exclude each other%s", "");
    if (!nrate && !nconc) conc[nconc++] = 1;
    cfg.concurrency = conc;
    cfg.n_conc = nrate ? 0 : nconc;
    cfg.rate = rate;
    cfg.n_rate = nrate;
    cfg.progress = isatty(2);
    char **prompts = NULL;
    if (prompts_file) {
        FILE *pf = fopen(prompts_file, "r");
        if (!pf) die_usage("cannot read --prompts %s", prompts_file);
        char *line = NULL;
        size_t cap = 0;
        ssize_t k;
        while ((k = getline(&line, &cap, pf)) > 0) {
            while (k && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = 0;
            if (!k) continue;
            char *text = NULL;
            if (line[0] == '{') {
                char *js = NULL;
                if (ag_json_extract(line, (size_t)k, 1, &js) == 0) {
                    const char *pk = strstr(js, "\"prompt\"");
                    /* a small, strict read of "prompt": "..." */
                    if (pk && (pk = strchr(pk + 8, '"'))) {
                        const char *e = pk + 1;
                        while (*e && *e != '"') e += *e == '\\' && e[1] ? 2 : 1;
                        text = strndup(pk + 1, (size_t)(e - pk - 1));
                    }
                    free(js);
                }
                if (!text) die_usage("--prompts: a JSON line without \"prompt\" in %s", prompts_file);
            } else {
                text = strdup(line);
            }
            prompts = realloc(prompts, (size_t)(n_prompts + 1) * sizeof *prompts);
            prompts[n_prompts++] = text;
        }
        free(line);
        fclose(pf);
        if (!n_prompts) die_usage("--prompts %s has no prompts", prompts_file);
        cfg.prompts = (const char *const *)prompts;
        cfg.n_prompts = n_prompts;
    }
    g_plain_base = !nrate; /* the arrival schedule wants timers to the microsecond */
    ag_client *c = make_client(&o);
    nb_report rep;
    int rc = nb_run(c, &cfg, &rep);
    if (rc) fprintf(stderr, "%s: bench: %s\n", prog, ag_strerror(rc));
    else {
        nb_print_table(stdout, &cfg, &rep);
        if (json && nb_write_json(json, &cfg, &rep)) fprintf(stderr, "%s: cannot write %s\n", prog, json), rc = 1;
        if (csv && nb_write_csv(csv, &rep)) fprintf(stderr, "%s: cannot write %s\n", prog, csv), rc = 1;
        if (html && nb_write_html(html, &cfg, &rep)) fprintf(stderr, "%s: cannot write %s\n", prog, html), rc = 1;
    }
    size_t failed = 0;
    for (int i = 0; i < rep.n_points; i++) failed += rep.points[i].failed;
    nb_report_free(&rep);
    ag_client_free(c);
    free_loop();
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    return rc ? EXIT_REQ : failed ? EXIT_REQ : 0;
}

