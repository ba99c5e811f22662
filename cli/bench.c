/* cli/bench.c - `agents bench`: the node-latency benchmark. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* ---- the run's metadata, for the reports ---- */
static void jesc(char *out, size_t n, size_t *o, const char *s) {
    for (; s && *s && *o + 8 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') out[(*o)++] = '\\', out[(*o)++] = (char)ch;
        else if (ch < 0x20) *o += (size_t)snprintf(out + *o, n - *o, "\\u%04x", ch);
        else out[(*o)++] = (char)ch;
    }
    out[*o] = 0;
}
static void jadd(char *out, size_t n, size_t *o, const char *s) {
    size_t l = strlen(s);
    if (*o + l + 1 < n) {
        memcpy(out + *o, s, l + 1);
        *o += l;
    }
}

/* an argument as the report shows it: a token's value and credentials in an
 * address are not written down */
static void masked_arg(char *out, size_t n, const char *prev, const char *a) {
    if (prev && (!strcmp(prev, "--token") || !strcmp(prev, "--client-token"))) {
        snprintf(out, n, "***");
        return;
    }
    const char *eq = !strncmp(a, "--token=", 8) ? a + 8 : NULL;
    if (eq) {
        snprintf(out, n, "--token=***");
        return;
    }
    snprintf(out, n, "%s", a);
    for (char *at, *sc = strstr(out, "://"); sc && (at = strchr(sc + 3, '@')) && !memchr(sc + 3, '/', (size_t)(at - sc - 3));
         sc = strstr(at, "://")) {
        memmove(sc + 6, at, strlen(at) + 1); /* the user part becomes three stars */
        memcpy(sc + 3, "***", 3);
        at = sc + 6;
    }
}

static char *bench_meta(ag_client *c, opts *o, int argc, char **argv) {
    size_t n = 65536, k = 0;
    char *m = malloc(n), t[40], tmp[1024];
    if (!m) return NULL;
    time_t now = time(NULL);
    struct tm tm;
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    k = (size_t)snprintf(m, n, "{\"started_at\":\"%s\",\"version\":\"%s\",\"cpus\":%ld,\"host\":\"", t, ag_version(),
                         sysconf(_SC_NPROCESSORS_ONLN));
    jesc(m, n, &k, host);
    jadd(m, n, &k, "\",\"command\":\"");
    for (int i = 0; i < argc; i++) {
        masked_arg(tmp, sizeof tmp, i ? argv[i - 1] : NULL, argv[i]);
        if (i) jadd(m, n, &k, " ");
        int q = !*tmp || strpbrk(tmp, " \t\"'$*?[]{}();&|<>") != NULL;
        if (q) jadd(m, n, &k, "'");
        jesc(m, n, &k, tmp);
        if (q) jadd(m, n, &k, "'");
    }
    jadd(m, n, &k, "\",\"nodes\":[");
    if (g_is_pool) {
        wait_probes(c);
        ag_node_info info[256];
        size_t nn = ag_pool_nodes(c, info, 256);
        for (size_t i = 0; i < nn && i < 256; i++) {
            jadd(m, n, &k, i ? ",{\"name\":\"" : "{\"name\":\"");
            masked_arg(tmp, sizeof tmp, NULL, info[i].name);
            jesc(m, n, &k, tmp);
            jadd(m, n, &k, "\",\"version\":\"");
            jesc(m, n, &k, info[i].version);
            jadd(m, n, &k, "\",\"state\":\"");
            jadd(m, n, &k, ag_node_state_name(info[i].state));
            jadd(m, n, &k, "\",\"models\":[");
            for (size_t j = 0; j < info[i].n_models; j++) {
                jadd(m, n, &k, j ? ",\"" : "\"");
                jesc(m, n, &k, info[i].models[j]);
                jadd(m, n, &k, "\"");
            }
            jadd(m, n, &k, "]}");
        }
    } else { /* one node: what it says of itself */
        const char *h = o->host ? o->host : getenv("OLLAMA_HOST") ? getenv("OLLAMA_HOST") : "127.0.0.1:11434";
        masked_arg(tmp, sizeof tmp, NULL, h);
        jadd(m, n, &k, "{\"name\":\"");
        jesc(m, n, &k, tmp);
        ag_sync_out so;
        memset(&so, 0, sizeof so);
        ag_model_params mp;
        memset(&mp, 0, sizeof mp);
        jadd(m, n, &k, "\",\"version\":\"");
        if (ag_admin_sync(c, AG_OP_VERSION, &mp, NULL, NULL, &so) == 0 && so.result && so.result->version)
            jesc(m, n, &k, so.result->version);
        ag_sync_out_free(&so);
        memset(&so, 0, sizeof so);
        jadd(m, n, &k, "\",\"models\":[");
        if (ag_admin_sync(c, AG_OP_TAGS, &mp, NULL, NULL, &so) == 0 && so.result)
            for (size_t j = 0; j < so.result->n_models; j++) {
                jadd(m, n, &k, j ? ",\"" : "\"");
                jesc(m, n, &k, so.result->models[j].name ? so.result->models[j].name : "");
                jadd(m, n, &k, "\"");
            }
        ag_sync_out_free(&so);
        jadd(m, n, &k, "]}");
    }
    jadd(m, n, &k, "]}");
    return m;
}

typedef struct bench_args {
    int conc[64], nconc, nrate;
    double rate[64];
    const char *dataset, *trace, *slo_search, *scrape_list, *json, *csv, *html, *prompts_file;
    nb_config cfg;
} bench_args;

static void bench_opt(int id, const char *v, void *ud) {
    bench_args *b = ud;
    nb_config *c = &b->cfg;
    switch (id) {
    case O_B_CONCURRENCY:
        if ((b->nconc = parse_list_i(v, b->conc, 64)) <= 0) die_usage("--concurrency wants N or N,N,... %s", "");
        break;
    case O_B_RATE:
        if ((b->nrate = parse_list_d(v, b->rate, 64)) <= 0) die_usage("--rate wants R or R,R,... (requests/s)%s", "");
        break;
    case O_B_REQUESTS: c->requests = atoi(v); break;
    case O_B_DURATION: c->duration = atof(v); break;
    case O_B_WARMUP: c->warmup = atoi(v); break;
    case O_B_SEED: c->seed = strtoull(v, NULL, 10); break;
    case O_B_MAX_TOKENS: c->max_tokens = atoi(v); break;
    case O_B_PROMPTS: b->prompts_file = v; break;
    case O_B_TURNS:
        if ((c->turns = atoi(v)) < 1 || c->turns > 1000) die_usage("--turns wants 1..1000%s", "");
        break;
    case O_B_SHARED_PREFIX:
        if ((c->shared_prefix = atoi(v)) < 0 || c->shared_prefix > 1000000)
            die_usage("--shared-prefix wants a number of tokens (0..1000000)%s", "");
        break;
    case O_B_INTERACTIVE:
        if ((c->interactive = atoi(v)) < 1 || c->interactive > 10000)
            die_usage("--interactive wants a number of requests at a time (1..10000)%s", "");
        break;
    case O_B_THINK_MS:
        if (!((c->think_ms = atof(v)) >= 0 && c->think_ms <= 3600000)) die_usage("--think-ms wants milliseconds (0..3600000)%s", "");
        break;
    case O_B_CONTEXT_TOKENS:
        if ((c->context_tokens = atoi(v)) < 0 || c->context_tokens > 1000000)
            die_usage("--context-tokens wants a number of tokens (0..1000000)%s", "");
        break;
    case O_B_TURN_TOKENS:
        if ((c->turn_tokens = atoi(v)) < 0 || c->turn_tokens > 1000000)
            die_usage("--turn-tokens wants a number of tokens (0..1000000)%s", "");
        break;
    case O_B_NO_SESSION: c->no_session = 1; break;
    case O_B_INPUT_LEN:
        if (nb_dist_parse(v, &c->in_len)) die_usage("--input-len wants N, uniform:MIN,MAX, normal:MEAN,SD or lognormal:MEAN,SD, not '%s'", v);
        break;
    case O_B_OUTPUT_LEN:
        if (nb_dist_parse(v, &c->out_len)) die_usage("--output-len wants N, uniform:MIN,MAX, normal:MEAN,SD or lognormal:MEAN,SD, not '%s'", v);
        break;
    case O_B_DATASET: b->dataset = v; break;
    case O_B_TRACE: b->trace = v; break;
    case O_B_TRACE_SPEED:
        c->trace_speed = atof(v);
        if (!(c->trace_speed > 0) || c->trace_speed > 1e6) die_usage("--trace-speed wants a factor above 0 (2 = twice as fast)%s", "");
        break;
    case O_B_ARRIVAL:
        c->arrival = !strcmp(v, "poisson") ? NB_POISSON : !strcmp(v, "constant") ? NB_CONSTANT : !strcmp(v, "gamma") ? NB_GAMMA : -1;
        if (c->arrival < 0) die_usage("--arrival is poisson, constant or gamma, not '%s'", v);
        break;
    case O_B_BURSTINESS:
        c->burstiness = atof(v);
        if (!(c->burstiness > 0) || c->burstiness > 1000) die_usage("--burstiness wants a number above 0 (1 = Poisson)%s", "");
        c->arrival = NB_GAMMA;
        break;
    case O_B_RAMP_UP:
        c->ramp_up = atof(v);
        if (!(c->ramp_up > 0)) die_usage("--ramp-up wants seconds above 0%s", "");
        break;
    case O_B_REPEAT:
        c->repeat = atoi(v);
        if (c->repeat < 1 || c->repeat > 100) die_usage("--repeat wants 1..100%s", "");
        break;
    case O_B_SLO_SEARCH: b->slo_search = v; break;
    case O_B_SCRAPE: b->scrape_list = v; break;
    case O_B_SCRAPE_INTERVAL:
        c->scrape_interval = atof(v);
        if (!(c->scrape_interval >= 0.05)) die_usage("--scrape-interval wants seconds, at least 0.05%s", "");
        break;
    case O_B_ENDPOINT:
        c->endpoint = !strcmp(v, "chat") ? NB_CHAT : !strcmp(v, "generate") ? NB_GENERATE : !strcmp(v, "embed") ? NB_EMBED : -1;
        if (c->endpoint < 0) die_usage("--endpoint is chat, generate or embed, not '%s'", v);
        break;
    case O_B_SLO: {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v);
        for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
            char *eq = strchr(t, '=');
            double ms = eq ? parse_ms(eq + 1) : -1;
            if (!eq || ms < 0) die_usage("--slo wants ttft=500ms,tpot=50ms,e2e=10s, not '%s'", t);
            *eq = 0;
            if (!strcmp(t, "ttft")) c->slo_ttft_ms = ms;
            else if (!strcmp(t, "tpot")) c->slo_tpot_ms = ms;
            else if (!strcmp(t, "e2e")) c->slo_e2e_ms = ms;
            else die_usage("--slo knows ttft, tpot and e2e, not '%s'", t);
        }
        break;
    }
    case O_B_JSON: b->json = v; break;
    case O_B_CSV: b->csv = v; break;
    case O_B_HTML: b->html = v; break;
    default: break;
    }
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[2], "compare")) {
        if (argc == 4 && (!strcmp(argv[3], "--help") || !strcmp(argv[3], "-h"))) {
            cli_help(stdout, cli_cmd_find("bench"));
            return 0;
        }
        if (argc != 5) die_usage("usage: bench compare A.json B.json%s", "");
        return nb_compare(argv[3], argv[4], stdout) ? EXIT_USAGE : 0;
    }
    static bench_args b;
    memset(&b, 0, sizeof b);
    opts o;
    parse_common_x(argc, argv, 2, &o, bench_opt, &b);
    nb_config cfg = b.cfg;
    int *conc = b.conc, nconc = b.nconc, nrate = b.nrate, n_prompts = 0;
    double *rate = b.rate;
    const char *dataset = b.dataset, *trace = b.trace, *slo_search = b.slo_search, *scrape_list = b.scrape_list;
    const char *json = b.json, *csv = b.csv, *html = b.html, *prompts_file = b.prompts_file;
    const char *scrape[8];
    int n_scrape = 0;
    positional_model(&o);
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
    char *meta = (json || html) ? bench_meta(c, &o, argc, argv) : NULL;
    cfg.meta_json = meta;
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
    free(meta);
    ag_client_free(c);
    free_loop();
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    nb_items_free(&items);
    if (slo_search) failed = 0; /* the points past the knee fail by design */
    return rc ? EXIT_REQ : failed ? EXIT_REQ : 0;
}

