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
    if (argc >= 3 && !strcmp(argv[2], "compare")) {
        if (argc != 5) die_usage("usage: bench compare A.json B.json%s", "");
        return nb_compare(argv[3], argv[4], stdout) ? EXIT_USAGE : 0;
    }
    int conc[64], nconc = 0, n_prompts = 0;
    const char *dataset = NULL, *trace = NULL, *slo_search = NULL, *scrape_list = NULL;
    const char *scrape[8];
    int n_scrape = 0;
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
        } else if (!strcmp(a, "--interactive")) {
            if ((cfg.interactive = atoi(need(argc, argv, &i))) < 1 || cfg.interactive > 10000)
                die_usage("--interactive wants a number of requests at a time (1..10000)%s", "");
        } else if (!strcmp(a, "--think-ms")) {
            if (!((cfg.think_ms = atof(need(argc, argv, &i))) >= 0 && cfg.think_ms <= 3600000))
                die_usage("--think-ms wants milliseconds (0..3600000)%s", "");
        } else if (!strcmp(a, "--context-tokens")) {
            if ((cfg.context_tokens = atoi(need(argc, argv, &i))) < 0 || cfg.context_tokens > 1000000)
                die_usage("--context-tokens wants a number of tokens (0..1000000)%s", "");
        } else if (!strcmp(a, "--turn-tokens")) {
            if ((cfg.turn_tokens = atoi(need(argc, argv, &i))) < 0 || cfg.turn_tokens > 1000000)
                die_usage("--turn-tokens wants a number of tokens (0..1000000)%s", "");
        } else if (!strcmp(a, "--no-session")) cfg.no_session = 1;
        else if (!strcmp(a, "--input-len")) {
            const char *v = need(argc, argv, &i);
            if (nb_dist_parse(v, &cfg.in_len)) die_usage("--input-len wants N, uniform:MIN,MAX, normal:MEAN,SD or lognormal:MEAN,SD, not '%s'", v);
        } else if (!strcmp(a, "--output-len")) {
            const char *v = need(argc, argv, &i);
            if (nb_dist_parse(v, &cfg.out_len)) die_usage("--output-len wants N, uniform:MIN,MAX, normal:MEAN,SD or lognormal:MEAN,SD, not '%s'", v);
        } else if (!strcmp(a, "--dataset")) dataset = need(argc, argv, &i);
        else if (!strcmp(a, "--trace")) trace = need(argc, argv, &i);
        else if (!strcmp(a, "--trace-speed")) {
            cfg.trace_speed = atof(need(argc, argv, &i));
            if (!(cfg.trace_speed > 0) || cfg.trace_speed > 1e6) die_usage("--trace-speed wants a factor above 0 (2 = twice as fast)%s", "");
        }
        else if (!strcmp(a, "--arrival")) {
            const char *v = need(argc, argv, &i);
            cfg.arrival = !strcmp(v, "poisson") ? NB_POISSON : !strcmp(v, "constant") ? NB_CONSTANT : !strcmp(v, "gamma") ? NB_GAMMA : -1;
            if (cfg.arrival < 0) die_usage("--arrival is poisson, constant or gamma, not '%s'", v);
        } else if (!strcmp(a, "--burstiness")) {
            cfg.burstiness = atof(need(argc, argv, &i));
            if (!(cfg.burstiness > 0) || cfg.burstiness > 1000) die_usage("--burstiness wants a number above 0 (1 = Poisson)%s", "");
            cfg.arrival = NB_GAMMA;
        } else if (!strcmp(a, "--ramp-up")) {
            cfg.ramp_up = atof(need(argc, argv, &i));
            if (!(cfg.ramp_up > 0)) die_usage("--ramp-up wants seconds above 0%s", "");
        } else if (!strcmp(a, "--repeat")) {
            cfg.repeat = atoi(need(argc, argv, &i));
            if (cfg.repeat < 1 || cfg.repeat > 100) die_usage("--repeat wants 1..100%s", "");
        } else if (!strcmp(a, "--slo-search")) slo_search = need(argc, argv, &i);
        else if (!strcmp(a, "--scrape-metrics")) scrape_list = need(argc, argv, &i);
        else if (!strcmp(a, "--scrape-interval")) {
            cfg.scrape_interval = atof(need(argc, argv, &i));
            if (!(cfg.scrape_interval >= 0.05)) die_usage("--scrape-interval wants seconds, at least 0.05%s", "");
        }
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
               "      --interactive C         beside the load (then of priority batch), C short chats at a\n"
               "                              time of priority interactive, reported apart: their TTFT\n"
               "                              under the flood, through this client's queue (a pool, -N)\n"
               "      --think-ms T            a conversation's next turn goes T ms after its answer (a user\n"
               "                              reading); other conversations run meanwhile\n"
               "      --context-tokens T      each conversation opens with a context of about T tokens of\n"
               "                              its own (a document it is about)\n"
               "      --no-session            conversations without a session key (see --policy)\n"
               "      --input-len D           prompts built to D tokens (checked against the server's count)\n"
               "      --output-len D          num_predict drawn from D; D is N, uniform:MIN,MAX, normal:MEAN,SD\n"
               "                              or lognormal:MEAN,SD\n"
               "      --dataset FILE          requests from ShareGPT JSON, or JSONL of {\"prompt\"} / {\"messages\"}\n"
               "                              (optional \"output_len\"), in turn\n"
               "      --trace FILE            JSONL with \"timestamp\" (ms) and a prompt, messages or\n"
               "                              \"input_len\"/\"output_len\": replayed on its schedule (-n past\n"
               "                              its end: from its start again)\n"
               "      --trace-speed X         the trace X times faster (0.5: half as fast)\n"
               "      --arrival A             open loop arrivals: poisson (default), constant or gamma\n"
               "      --burstiness B          gamma arrivals of shape B (1 = Poisson, < 1 burstier)\n"
               "      --ramp-up S             the rate grows linearly from 0 over S seconds\n"
               "      --repeat N              the whole sweep N times: mean, CV and 95 %% intervals\n"
               "      --slo-search OBJ        the highest concurrency (or, with --rate R, rate from R) meeting\n"
               "                              every objective: ttft_p99=500ms,tpot_p50=50ms,e2e_mean=5s\n"
               "      --scrape-metrics URLS   poll Prometheus /metrics or Ollama /api/ps during each point\n"
               "                              (http://host:port/metrics,...; --scrape-interval S, default 1)\n"
               "  %s bench compare A.json B.json   the differences, and whether each is beyond noise\n"
               "      --endpoint E            chat (default), generate or embed\n"
               "      --slo ttft=500ms,tpot=50ms,e2e=10s   goodput counts requests within all of them\n"
               "      --json FILE             every point: config, percentiles, server timings, nodes\n"
               "      --csv FILE              one row per request with every timestamp\n"
               "      --html FILE             a self-contained page: CDFs, ITL histogram, sweep charts, nodes\n%s",
               prog, prog, common_help);
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
    nb_items items;
    memset(&items, 0, sizeof items);
    if (dataset && trace) die_usage("--dataset and --trace exclude each other%s", "");
    if (dataset || trace) {
        char err[512];
        if (nb_items_load(dataset ? dataset : trace, trace != NULL, &items, err, sizeof err)) die_usage("%s", err);
        cfg.items = &items;
        cfg.trace = trace != NULL;
        if (cfg.trace && (nrate || nconc > 1 || slo_search)) die_usage("--trace sets the arrivals: no --rate, --concurrency or --slo-search%s", "");
        if (cfg.trace && !cfg.requests && cfg.duration <= 0) cfg.requests = (int)items.n;
    }
    if (cfg.trace_speed > 0 && !cfg.trace) die_usage("--trace-speed is for --trace%s", "");
    if (cfg.endpoint == NB_EMBED && (cfg.in_len.kind || cfg.out_len.kind)) die_usage("--input-len and --output-len are for chat and generate%s", "");
    if (scrape_list) {
        static char sbuf[2048];
        snprintf(sbuf, sizeof sbuf, "%s", scrape_list);
        for (char *sv = NULL, *t = strtok_r(sbuf, ",", &sv); t && n_scrape < 8; t = strtok_r(NULL, ",", &sv)) scrape[n_scrape++] = t;
        cfg.scrape = scrape;
        cfg.n_scrape = n_scrape;
    }
    nb_objective objs[8];
    int n_obj = 0;
    if (slo_search && (n_obj = nb_objectives_parse(slo_search, objs, 8)) < 0)
        die_usage("--slo-search wants METRIC_Q=LIMIT,... (ttft, itl, tpot, e2e; p50, p90, p95, p99 or mean): '%s'", slo_search);
    if (slo_search && (nconc > 1 || nrate > 1)) die_usage("--slo-search chooses the loads: one --rate to start from, or none%s", "");
    g_plain_base = !nrate && !cfg.trace; /* the arrival schedule wants timers to the microsecond */
    ag_client *c = make_client(&o);
    nb_report rep;
    int rc = slo_search ? nb_slo_search(c, &cfg, objs, n_obj, nrate ? rate[0] : 0, &rep) : nb_run(c, &cfg, &rep);
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
    nb_items_free(&items);
    if (slo_search) failed = 0; /* the points past the knee fail by design */
    return rc ? EXIT_REQ : failed ? EXIT_REQ : 0;
}

