/* cli/main.c - the `agents` command. */
#include <agents.h>

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

#include <event2/event.h>

#include "sim.h"
#include "nodebench.h"

#define EXIT_REQ 1   /* the request failed: server or network */
#define EXIT_USAGE 2 /* bad command line */
#define EXIT_INT 130 /* interrupted */

static const char *prog = "agents";

static void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    exit(EXIT_USAGE);
}

/* ---- options common to request commands ---- */
typedef struct opts {
    const char *host, *model, *system, *keep_alive, *think, *format, *tools;
    const char *nodes, *nodes_file, *policy, *discover;
    int resume;
    const char *agent, *docs, *embed_model, *in, *out;
    const char *ca_file, *token;
    int tls_insecure, api;
    int top_k, context, concurrency, strict, no_progress, retry_failed;
    char options_json[4096];
    size_t olen;
    int json, no_stream, help, verbose, insecure, legacy, dims;
    double connect_timeout, idle_timeout, first_byte_timeout;
    /* gateway */
    const char *listen, *client_token;
    unsigned max_clients, max_in_flight;
    double max_body_mb, request_timeout, client_idle, send_timeout;
    const char *args[64];
    int nargs;
} opts;

static int is_num(const char *s) {
    if (!*s) return 0;
    char *e;
    strtod(s, &e);
    return *e == 0;
}

static void add_option(opts *o, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) die_usage("--option wants key=value, got '%s'", kv);
    char val[1024];
    size_t vn = 0;
    const char *v = eq + 1;
    int raw = is_num(v) || !strcmp(v, "true") || !strcmp(v, "false") || v[0] == '[' || v[0] == '{';
    if (raw) vn = (size_t)snprintf(val, sizeof val, "%s", v);
    else {
        val[vn++] = '"';
        for (; *v && vn < sizeof val - 8; v++) {
            if (*v == '"' || *v == '\\') val[vn++] = '\\';
            if ((unsigned char)*v < 0x20) continue;
            val[vn++] = *v;
        }
        val[vn++] = '"';
        val[vn] = 0;
    }
    int n = snprintf(o->options_json + o->olen, sizeof o->options_json - o->olen, "%s\"%.*s\":%s",
                     o->olen ? "," : "{", (int)(eq - kv), kv, val);
    if (n < 0 || (size_t)n >= sizeof o->options_json - o->olen - 2) die_usage("too many options%s", "");
    o->olen += (size_t)n;
}

static const char *options_json(opts *o) {
    if (!o->olen) return NULL;
    if (o->options_json[o->olen - 1] != '}') {
        o->options_json[o->olen] = '}';
        o->options_json[o->olen + 1] = 0;
    }
    return o->options_json;
}

static const char *need(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die_usage("%s needs a value", argv[*i]);
    return argv[++*i];
}

static void parse_common(int argc, char **argv, int start, opts *o) {
    memset(o, 0, sizeof *o);
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) o->help = 1;
        else if (!strcmp(a, "--host") || !strcmp(a, "-H")) o->host = need(argc, argv, &i);
        else if (!strcmp(a, "--model") || !strcmp(a, "-m")) o->model = need(argc, argv, &i);
        else if (!strcmp(a, "--system") || !strcmp(a, "-s")) o->system = need(argc, argv, &i);
        else if (!strcmp(a, "--keep-alive")) o->keep_alive = need(argc, argv, &i);
        else if (!strcmp(a, "--think")) o->think = need(argc, argv, &i);
        else if (!strcmp(a, "--format")) o->format = need(argc, argv, &i);
        else if (!strcmp(a, "--tools")) o->tools = need(argc, argv, &i);
        else if (!strcmp(a, "--option") || !strcmp(a, "-o")) add_option(o, need(argc, argv, &i));
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--no-stream")) o->no_stream = 1;
        else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) o->verbose = 1;
        else if (!strcmp(a, "--insecure")) o->insecure = 1;
        else if (!strcmp(a, "--legacy")) o->legacy = 1;
        else if (!strcmp(a, "--dimensions")) o->dims = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--connect-timeout")) o->connect_timeout = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--nodes") || !strcmp(a, "-N")) o->nodes = need(argc, argv, &i);
        else if (!strcmp(a, "--nodes-file")) o->nodes_file = need(argc, argv, &i);
        else if (!strcmp(a, "--policy")) o->policy = need(argc, argv, &i);
        else if (!strcmp(a, "--discover")) o->discover = need(argc, argv, &i);
        else if (!strcmp(a, "--resume")) o->resume = 1;
        else if (!strcmp(a, "--agent") || !strcmp(a, "-a")) o->agent = need(argc, argv, &i);
        else if (!strcmp(a, "--ca-file")) o->ca_file = need(argc, argv, &i);
        else if (!strcmp(a, "--tls-insecure")) o->tls_insecure = 1;
        else if (!strcmp(a, "--token")) o->token = need(argc, argv, &i);
        else if (!strcmp(a, "--api")) {
            const char *v = need(argc, argv, &i);
            if (strcmp(v, "ollama") && strcmp(v, "openai")) die_usage("--api is ollama or openai, not '%s'", v);
            o->api = !strcmp(v, "openai");
        }
        else if (!strcmp(a, "--docs")) o->docs = need(argc, argv, &i);
        else if (!strcmp(a, "--embed-model")) o->embed_model = need(argc, argv, &i);
        else if (!strcmp(a, "--top-k")) o->top_k = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--context")) o->context = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--in")) o->in = need(argc, argv, &i);
        else if (!strcmp(a, "--out")) o->out = need(argc, argv, &i);
        else if (!strcmp(a, "--concurrency") || !strcmp(a, "-c")) o->concurrency = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--strict")) o->strict = 1;
        else if (!strcmp(a, "--retry-failed")) o->retry_failed = 1;
        else if (!strcmp(a, "--no-progress")) o->no_progress = 1;
        else if (!strcmp(a, "--idle-timeout")) o->idle_timeout = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--first-byte-timeout")) o->first_byte_timeout = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--listen")) o->listen = need(argc, argv, &i);
        else if (!strcmp(a, "--client-token")) o->client_token = need(argc, argv, &i);
        else if (!strcmp(a, "--max-clients")) o->max_clients = (unsigned)atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--max-in-flight")) o->max_in_flight = (unsigned)atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--max-body-mb")) o->max_body_mb = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--request-timeout")) o->request_timeout = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--client-idle-timeout")) o->client_idle = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--send-timeout")) o->send_timeout = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--")) {
            for (i++; i < argc && o->nargs < 64; i++) o->args[o->nargs++] = argv[i];
        } else if (a[0] == '-' && a[1]) die_usage("unknown option '%s'", a);
        else if (o->nargs < 64) o->args[o->nargs++] = a;
    }
}

/* ---- client setup and one request ---- */
static struct event_base *g_base;
static ag_request *g_req;
static int g_interrupted;
static ag_task *g_task;
static struct event *g_sig;

static void on_sigint(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    g_interrupted = 1;
    if (g_req) ag_request_cancel(g_req);
    if (g_task) ag_task_cancel(g_task);
}

static int g_is_pool;
static ag_client *g_client;

static void on_sighup(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    if (g_client && ag_pool_reload(g_client) != 0)
        fprintf(stderr, "%s: could not re-read the nodes file\n", prog);
}
static struct event *g_hup;

static int policy_of(const char *s) {
    if (!s || !strcmp(s, "p2c")) return AG_POLICY_P2C;
    if (!strcmp(s, "rr") || !strcmp(s, "round-robin")) return AG_POLICY_ROUND_ROBIN;
    if (!strcmp(s, "random")) return AG_POLICY_RANDOM;
    if (!strcmp(s, "least")) return AG_POLICY_LEAST;
    die_usage("--policy is p2c, rr, random or least, not '%s'", s);
    return 0;
}

static int g_plain_base;
static int discovered = -1;
static void on_discovered(ag_client *c, int added, void *ud) {
    (void)c;
    (void)ud;
    discovered = added;
}

/* One node (--host, $OLLAMA_HOST) or a pool (--nodes, --nodes-file,
 * --discover, $OLLAMA_HOSTS). */
static ag_client *make_client(opts *o) {
    ag_client_options co;
    memset(&co, 0, sizeof co);
    co.host = o->host;
    co.connect_timeout = o->connect_timeout;
    co.idle_timeout = o->idle_timeout;
    co.first_byte_timeout = o->first_byte_timeout;
    co.tls_ca_file = o->ca_file;
    co.tls_insecure = o->tls_insecure;
    co.api = o->api;
    co.bearer_token = o->token ? o->token : getenv("AGENTS_TOKEN");
    if (o->tls_insecure) fprintf(stderr, "%s: warning: TLS certificates are not verified (--tls-insecure)\n", prog);
    const char *env_hosts = getenv("OLLAMA_HOSTS");
    g_is_pool = !o->host && (o->nodes || o->nodes_file || o->discover || (env_hosts && *env_hosts));
    if (!o->host && !g_is_pool) {
        ag_host h;
        if (ag_host_from_env(&h) != 0) {
            fprintf(stderr, "%s: OLLAMA_HOST='%s' is not a valid address\n", prog, getenv("OLLAMA_HOST"));
            exit(EXIT_USAGE);
        }
    }
    /* precise timers for measuring commands (bench); a plain loop for the
     * gateway, whose timers are coarse (saves a timerfd_settime per turn) */
    g_base = g_plain_base ? event_base_new() : ag_sim_base_new();
    int err;
    ag_client *c;
    if (g_is_pool) {
        ag_pool_options po;
        memset(&po, 0, sizeof po);
        po.client = co;
        po.nodes = o->nodes;
        po.nodes_file = o->nodes_file;
        po.policy = policy_of(o->policy);
        po.resume = o->resume;
        po.node_max_in_flight = o->max_in_flight;
        if (!o->nodes && !o->nodes_file && o->discover && !(env_hosts && *env_hosts)) {
            /* discovery only: start from the first address of the range */
            static char first[64];
            size_t k = strcspn(o->discover, "-:");
            const char *colon = strrchr(o->discover, ':');
            if (!colon || k >= 40) die_usage("--discover wants HOST[-HOST]:PORT[-PORT], not '%s'", o->discover);
            snprintf(first, sizeof first, "%.*s:%d", (int)k, o->discover, atoi(colon + 1));
            po.nodes = first;
        }
        c = ag_pool_new(g_base, &po, &err);
        if (!c) {
            fprintf(stderr, "%s: bad node list: %s\n", prog,
                    err == AG_EHOST ? "an address is not host, host:port or http://host:port" :
                    err == AG_EINVAL ? "cannot read the nodes file" : ag_strerror(err));
            exit(EXIT_USAGE);
        }
        if (o->discover) {
            if (ag_pool_discover(c, o->discover, 64, on_discovered, NULL) != 0)
                die_usage("--discover wants HOST[-HOST]:PORT[-PORT] (IPv4, at most 65536 addresses), not '%s'", o->discover);
            while (discovered < 0) event_base_loop(g_base, EVLOOP_ONCE);
            fprintf(stderr, "%s: discovery found %d more node(s)\n", prog, discovered);
        }
        if (o->nodes_file) {
            g_hup = evsignal_new(g_base, SIGHUP, on_sighup, NULL);
            evsignal_add(g_hup, NULL);
        }
    } else {
        c = ag_client_new(g_base, &co, &err);
        if (!c) {
            fprintf(stderr, "%s: bad host '%s': %s\n", prog, o->host ? o->host : getenv("OLLAMA_HOST"),
                    err == AG_EHOST ? "not an address (host, host:port, http://host:port, https://host)" :
                    err == AG_ETLS ? "cannot set up TLS (check --ca-file)" : ag_strerror(err));
            exit(EXIT_USAGE);
        }
    }
    g_client = c;
    g_sig = evsignal_new(g_base, SIGINT, on_sigint, NULL);
    evsignal_add(g_sig, NULL);
    return c;
}

static const char *state_name(int s) {
    switch (s) {
    case AG_NODE_PROBING: return "probing";
    case AG_NODE_UP: return "up";
    case AG_NODE_DOWN: return "down";
    case AG_NODE_EJECTED: return "ejected";
    }
    return "?";
}

/* The cluster, one line a node, to stderr (or stdout for `ps`). */
static void print_nodes(FILE *f, ag_client *c) {
    ag_node_info info[256];
    size_t n = ag_pool_nodes(c, info, 256);
    fprintf(f, "%-24s %-8s %-12s %5s %8s %6s %7s %9s %9s %9s  %s\n", "NODE", "STATE", "VERSION", "BUSY",
            "REQS", "ERRS", "RETRIES", "TTFT p50", "E2E p99", "TOKENS/S", "LOADED");
    for (size_t i = 0; i < n && i < 256; i++) {
        const ag_node_info *x = &info[i];
        char loaded[256] = "";
        for (size_t j = 0; j < x->n_loaded; j++) {
            if (j) strncat(loaded, ",", sizeof loaded - strlen(loaded) - 1);
            strncat(loaded, x->loaded[j], sizeof loaded - strlen(loaded) - 1);
        }
        fprintf(f, "%-24s %-8s %-12s %2u/%-2u %8llu %6llu %7llu %7.1fms %7.1fms %9.1f  %s\n", x->name,
                state_name(x->state), x->version[0] ? x->version : "-", x->in_flight, x->max_in_flight,
                (unsigned long long)x->requests, (unsigned long long)x->errors,
                (unsigned long long)x->retries, x->ttft_p50_ms, x->e2e_p99_ms, x->tokens_per_s, loaded);
    }
}

/* waits (bounded) until every node has answered or failed its first probe */
static void wait_probes(ag_client *c) {
    ag_pool_probe_now(c);
    for (int i = 0; i < 300; i++) {
        ag_node_info info[256];
        size_t n = ag_pool_nodes(c, info, 256), pending = 0;
        for (size_t j = 0; j < n && j < 256; j++)
            pending += info[j].state == AG_NODE_PROBING || (info[j].state == AG_NODE_UP && !info[j].version[0]);
        if (!pending) return;
        struct timeval tv = {0, 10000};
        event_base_loopexit(g_base, &tv);
        event_base_dispatch(g_base);
    }
}

typedef struct run_state {
    opts *o;
    int done, status;
    int tty;
    int in_thinking;
    int printed_any;
    char *last_char;
    char last;
} run_state;

static void print_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    run_state *s = ud;
    if (s->o->json) {
        if (ch->kind == AG_CHUNK_RAW) {
            fwrite(ch->text, 1, ch->len, stdout);
            fputc('\n', stdout);
            if (s->tty) fflush(stdout);
        }
        return;
    }
    switch (ch->kind) {
    case AG_CHUNK_THINKING:
        if (!s->in_thinking) {
            fputs(s->tty ? "\033[2mThinking...\n" : "Thinking...\n", stdout);
            s->in_thinking = 1;
        }
        fwrite(ch->text, 1, ch->len, stdout);
        break;
    case AG_CHUNK_CONTENT:
        if (s->in_thinking) {
            fputs(s->tty ? "\n...done thinking.\033[0m\n\n" : "\n...done thinking.\n\n", stdout);
            s->in_thinking = 0;
        }
        fwrite(ch->text, 1, ch->len, stdout);
        if (ch->len) s->last = ch->text[ch->len - 1];
        s->printed_any = 1;
        break;
    case AG_CHUNK_TOOL_CALL:
        printf("[tool call] %.*s(%.*s)\n", (int)ch->name_len, ch->name, (int)ch->arguments_len,
               ch->arguments_json);
        s->last = '\n';
        s->printed_any = 1;
        break;
    case AG_CHUNK_PROGRESS:
        if (ch->total > 0 && ch->completed >= 0)
            fprintf(stderr, "%.*s %5.1f%%\n", (int)ch->len, ch->text, 100.0 * (double)ch->completed / (double)ch->total);
        else
            fprintf(stderr, "%.*s\n", (int)ch->len, ch->text);
        break;
    default: break;
    }
    if (s->tty) fflush(stdout);
}

static void print_stats(const ag_result *res) {
    fprintf(stderr, "\nnode:                 %s\n", res->node ? res->node : "?");
    if (res->timing.ttft_ns >= 0)
        fprintf(stderr, "time to first token:  %.1f ms\n", res->timing.ttft_ns / 1e6);
    fprintf(stderr, "end to end:           %.1f ms\n", res->timing.e2e_ns / 1e6);
    if (res->timing.chunks > 1)
        fprintf(stderr, "inter-token (mean/max): %.2f / %.2f ms\n", res->timing.itl_mean_ns / 1e6,
                res->timing.itl_max_ns / 1e6);
    fprintf(stderr, "chunks:               %lld\n", (long long)res->timing.chunks);
    if (res->server.total_duration >= 0)
        fprintf(stderr, "total duration:       %.1f ms (server)\n", res->server.total_duration / 1e6);
    if (res->server.load_duration >= 0)
        fprintf(stderr, "load duration:        %.1f ms\n", res->server.load_duration / 1e6);
    if (res->server.prompt_eval_count >= 0)
        fprintf(stderr, "prompt eval count:    %lld token(s)\n", (long long)res->server.prompt_eval_count);
    if (res->server.eval_count >= 0)
        fprintf(stderr, "eval count:           %lld token(s)\n", (long long)res->server.eval_count);
    if (res->server.eval_count > 0 && res->server.eval_duration > 0)
        fprintf(stderr, "eval rate:            %.2f tokens/s\n",
                res->server.eval_count / (res->server.eval_duration / 1e9));
    if (res->done_reason) fprintf(stderr, "done reason:          %s\n", res->done_reason);
}

typedef void (*print_result_fn)(const ag_result *res, opts *o);

typedef struct done_state {
    run_state *rs;
    print_result_fn pr;
} done_state;

static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    done_state *d = ud;
    run_state *s = d->rs;
    g_req = NULL;
    s->done = 1;
    s->status = res->status;
    if (s->in_thinking) fputs(s->tty ? "\033[0m\n" : "\n", stdout);
    if (res->status == 0) {
        if (s->printed_any && s->last != '\n' && !s->o->json) fputc('\n', stdout);
        if (d->pr) d->pr(res, s->o);
        fflush(stdout); /* the answer before the figures, even into a file */
        if (s->o->verbose) print_stats(res);
    } else if (!(g_interrupted && res->status == AG_ECANCELED)) {
        if (s->printed_any && s->last != '\n') fputc('\n', stdout);
        fflush(stdout);
        fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(res->status), res->error ? res->error : ag_strerror(res->status));
    }
    fflush(stdout);
}

static void cb_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    print_chunk(r, ch, ((done_state *)ud)->rs);
}

static void free_loop(void) {
    if (g_sig) event_free(g_sig);
    g_sig = NULL;
    if (g_hup) event_free(g_hup);
    g_hup = NULL;
    event_base_free(g_base);
}

static int finish_run(ag_client *c, run_state *s, int rc) {
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(rc), rc == AG_EINVAL ? "invalid request (check JSON arguments such as --format, --tools, --option)" : ag_strerror(rc));
        ag_client_free(c);
        free_loop();
        return rc == AG_EINVAL ? EXIT_USAGE : EXIT_REQ;
    }
    while (!s->done) event_base_loop(g_base, EVLOOP_ONCE);
    if (g_is_pool && s->o->verbose) {
        fflush(stdout);
        fputc('\n', stderr);
        print_nodes(stderr, c);
    }
    ag_client_free(c);
    free_loop();
    if (g_interrupted) return EXIT_INT;
    return s->status == 0 ? 0 : EXIT_REQ;
}

/* prompt from the arguments, else stdin */
static char *read_prompt(opts *o) {
    size_t cap = 4096, len = 0;
    char *buf;
    if (o->nargs > 0) {
        buf = malloc(cap);
        buf[0] = 0;
        for (int i = 0; i < o->nargs; i++) {
            size_t l = strlen(o->args[i]);
            while (len + l + 2 > cap) buf = realloc(buf, cap *= 2);
            if (i) buf[len++] = ' ';
            memcpy(buf + len, o->args[i], l + 1);
            len += l;
        }
        return buf;
    }
    if (isatty(0)) die_usage("no prompt: give it as an argument or on stdin%s", "");
    buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
    return buf;
}

static const char *model_or_die(opts *o) {
    if (o->model) return o->model;
    const char *m = getenv("AGENTS_MODEL");
    if (m && *m) return m;
    die_usage("no model: pass --model NAME (or set AGENTS_MODEL)%s", "");
    return NULL;
}

static ag_gen_options gen_opts(opts *o) {
    ag_gen_options g;
    memset(&g, 0, sizeof g);
    g.format = o->format;
    g.options_json = options_json(o);
    g.keep_alive = o->keep_alive;
    g.think = o->think;
    g.no_stream = o->no_stream;
    return g;
}

static const char *common_help =
    "  -H, --host ADDR       node address (default: $OLLAMA_HOST or 127.0.0.1:11434)\n"
    "  -m, --model NAME      model (default: $AGENTS_MODEL)\n"
    "  -o, --option K=V      a model option (num_predict=64, temperature=0.2, stop=[\"x\"]); repeatable\n"
    "      --keep-alive D    how long the model stays loaded (5m, 1h, 0 = unload, -1 = forever)\n"
    "      --think V         true, false, low, medium or high\n"
    "      --format F        json, or a JSON schema object\n"
    "      --json            print the server's NDJSON objects as they arrive\n"
    "      --no-stream       ask for one whole answer\n"
    "  -v, --verbose         print timings and counts to stderr afterwards\n"
    "      --connect-timeout S   seconds to connect, DNS included (default 10)\n"
    "      --first-byte-timeout S  seconds to the answer's first byte (default 300: a cold\n"
    "                            model load takes minutes); -1 = none\n"
    "      --idle-timeout S      seconds of silence once the answer began (default 120); -1 = none\n"
    "  -N, --nodes LIST      several nodes (a:11434,b:11434): a pool with routing and failover\n"
    "      --nodes-file F    nodes from a file, one a line (re-read on SIGHUP); also $OLLAMA_HOSTS\n"
    "      --policy P        p2c (default), rr, random, least\n"
    "      --discover RANGE  probe HOST[-HOST]:PORT[-PORT] for nodes (opt-in)\n"
    "      --resume          a stream that dies mid-answer continues on another node\n"
    "      --ca-file F       CA certificates (PEM) for https:// nodes; --tls-insecure skips checks\n"
    "      --api openai      the nodes speak the OpenAI-compatible API (llama.cpp, vLLM, LocalAI,\n"
    "                        LM Studio, TGI); per node: openai+http://host:8000\n"
    "      --token T         a Bearer token for the node(s) (default: $AGENTS_TOKEN); per node,\n"
    "                        put it in the address: https://TOKEN@host or https://user:pass@host\n";

static int cmd_chat(int argc, char **argv, int generate) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s %s [options] [PROMPT...]   (PROMPT from stdin when absent)\n\n%s%s",
               prog, generate ? "generate" : "chat",
               generate ? "Streams a completion from /api/generate.\n\n" : "Streams a chat answer from /api/chat.\n\n",
               common_help);
        printf("  -s, --system TEXT     system prompt\n%s", generate ? "" : "      --tools JSON      tool definitions (a JSON array)\n");
        return 0;
    }
    const char *model = model_or_die(&o);
    char *prompt = read_prompt(&o);
    ag_client *c = make_client(&o);
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    s.tty = isatty(1);
    done_state d = {&s, NULL};
    ag_callbacks cb = {cb_chunk, on_done, &d};
    int rc;
    if (generate) {
        ag_generate_params p;
        memset(&p, 0, sizeof p);
        p.model = model;
        p.prompt = prompt;
        p.system = o.system;
        p.gen = gen_opts(&o);
        rc = ag_generate(c, &p, &cb, &g_req);
    } else {
        ag_message m[2];
        size_t n = 0;
        memset(m, 0, sizeof m);
        if (o.system) { m[n].role = "system"; m[n].content = o.system; n++; }
        m[n].role = "user";
        m[n].content = prompt;
        n++;
        ag_chat_params p;
        memset(&p, 0, sizeof p);
        p.model = model;
        p.messages = m;
        p.n_messages = n;
        p.tools_json = o.tools;
        p.gen = gen_opts(&o);
        rc = ag_chat(c, &p, &cb, &g_req);
    }
    if (rc == 0 && o.json) ag_request_set_raw(g_req, 1);
    int ex = finish_run(c, &s, rc);
    free(prompt);
    return ex;
}

static void print_embed(const ag_result *res, opts *o) {
    (void)o;
    for (size_t i = 0; i < res->n_embeddings; i++) {
        fputc('[', stdout);
        for (size_t j = 0; j < res->dim; j++)
            printf(j ? ",%.9g" : "%.9g", (double)res->embeddings[i * res->dim + j]);
        fputs("]\n", stdout);
    }
}

static int cmd_embed(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s embed [options] TEXT...   (one vector per TEXT, a JSON array a line;\n"
               "       texts from stdin, one a line, when none is given)\n\n%s"
               "      --dimensions N    ask for N dimensions\n      --legacy          use /api/embeddings\n",
               prog, common_help);
        return 0;
    }
    const char *model = model_or_die(&o);
    const char **inputs = NULL;
    size_t n = 0;
    char *text = NULL;
    if (o.nargs) {
        inputs = o.args;
        n = (size_t)o.nargs;
    } else {
        text = read_prompt(&o);
        size_t cap = 16;
        inputs = malloc(cap * sizeof *inputs);
        for (char *save = NULL, *t = strtok_r(text, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
            if (n == cap) inputs = realloc(inputs, (cap *= 2) * sizeof *inputs);
            inputs[n++] = t;
        }
    }
    ag_client *c = make_client(&o);
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    done_state d = {&s, print_embed};
    ag_callbacks cb = {NULL, on_done, &d};
    ag_embed_params p;
    memset(&p, 0, sizeof p);
    p.model = model;
    p.inputs = inputs;
    p.n_inputs = n;
    p.truncate = -1;
    p.dimensions = o.dims;
    p.options_json = options_json(&o);
    p.keep_alive = o.keep_alive;
    p.legacy = o.legacy;
    if (o.json) { /* raw body passes through */
        cb.on_chunk = cb_chunk;
        d.pr = NULL;
    }
    int rc = ag_embed(c, &p, &cb, &g_req);
    if (rc == 0 && o.json) ag_request_set_raw(g_req, 1);
    int ex = finish_run(c, &s, rc);
    if (text) { free(text); free(inputs); }
    return ex;
}

static void human_size(int64_t b, char *out, size_t n) {
    if (b < 0) snprintf(out, n, "-");
    else if (b >= 1000000000) snprintf(out, n, "%.1f GB", b / 1e9);
    else if (b >= 1000000) snprintf(out, n, "%.0f MB", b / 1e6);
    else snprintf(out, n, "%lld B", (long long)b);
}

static void print_models(const ag_result *res, opts *o) {
    (void)o;
    printf("%-32s %-14s %-10s %-10s %s\n", "NAME", "ID", "SIZE", "PARAMS", "QUANT");
    for (size_t i = 0; i < res->n_models; i++) {
        const ag_model_info *m = &res->models[i];
        char sz[32];
        human_size(m->size, sz, sizeof sz);
        printf("%-32s %-14.12s %-10s %-10s %s\n", m->name ? m->name : "?", m->digest ? m->digest : "", sz,
               m->parameter_size ? m->parameter_size : "", m->quantization_level ? m->quantization_level : "");
    }
}

static void print_ps(const ag_result *res, opts *o) {
    (void)o;
    printf("%-32s %-14s %-10s %-10s %s\n", "NAME", "ID", "SIZE", "VRAM", "UNTIL");
    for (size_t i = 0; i < res->n_models; i++) {
        const ag_model_info *m = &res->models[i];
        char sz[32], vr[32];
        human_size(m->size, sz, sizeof sz);
        human_size(m->size_vram, vr, sizeof vr);
        printf("%-32s %-14.12s %-10s %-10s %s\n", m->name ? m->name : "?", m->digest ? m->digest : "", sz, vr,
               m->expires_at ? m->expires_at : "");
    }
}

static void print_show(const ag_result *res, opts *o) {
    (void)o;
    const ag_show_info *s = res->show;
    if (!s) return;
    printf("  Model\n");
    if (s->family) printf("    architecture    %s\n", s->family);
    if (s->parameter_size) printf("    parameters      %s\n", s->parameter_size);
    if (s->quantization_level) printf("    quantization    %s\n", s->quantization_level);
    if (s->n_capabilities) {
        printf("\n  Capabilities\n");
        for (size_t i = 0; i < s->n_capabilities; i++) printf("    %s\n", s->capabilities[i]);
    }
    if (s->parameters) printf("\n  Parameters\n    %s\n", s->parameters);
}

static void print_version(const ag_result *res, opts *o) {
    (void)o;
    printf("server version: %s\nclient version: %s\n", res->version ? res->version : "?", ag_version());
}

static void print_ok(const ag_result *res, opts *o) {
    (void)res;
    (void)o;
}

static int cmd_admin(int argc, char **argv, const char *name) {
    opts o;
    parse_common(argc, argv, 2, &o);
    int op = 0;
    print_result_fn pr = NULL;
    const char *usage = "";
    if (!strcmp(name, "models") || !strcmp(name, "list") || !strcmp(name, "tags")) { op = AG_OP_TAGS; pr = print_models; usage = "models   lists the node's models (/api/tags)"; }
    else if (!strcmp(name, "ps")) { op = AG_OP_PS; pr = print_ps; usage = "ps   lists the models loaded now (/api/ps)"; }
    else if (!strcmp(name, "show")) { op = AG_OP_SHOW; pr = print_show; usage = "show MODEL   details of a model (/api/show)"; }
    else if (!strcmp(name, "version")) { op = AG_OP_VERSION; pr = print_version; usage = "version   the server's and the client's versions"; }
    else if (!strcmp(name, "pull")) { op = AG_OP_PULL; pr = print_ok; usage = "pull MODEL [--insecure]   downloads a model, progress on stderr"; }
    else if (!strcmp(name, "delete") || !strcmp(name, "rm")) { op = AG_OP_DELETE; pr = print_ok; usage = "delete MODEL   removes a model"; }
    else if (!strcmp(name, "copy") || !strcmp(name, "cp")) { op = AG_OP_COPY; pr = print_ok; usage = "copy SOURCE DESTINATION   copies a model"; }
    else if (!strcmp(name, "ping")) { op = AG_OP_PING; pr = print_ok; usage = "ping   HEAD / (is the server up?)"; }
    if (o.help) {
        printf("usage: %s %s\n\n"
               "  -H, --host ADDR       node address (default: $OLLAMA_HOST or 127.0.0.1:11434)\n"
               "  -N, --nodes LIST      several nodes: `ps` and `models` then show the whole cluster\n"
               "      --nodes-file F    nodes from a file (also $OLLAMA_HOSTS)\n"
               "      --json            print the server's JSON as it arrives\n", prog, usage);
        return 0;
    }
    ag_model_params p;
    memset(&p, 0, sizeof p);
    p.model = o.nargs > 0 ? o.args[0] : o.model;
    p.destination = o.nargs > 1 ? o.args[1] : NULL;
    p.insecure = o.insecure;
    p.verbose = o.verbose;
    p.no_stream = o.no_stream;
    if ((op == AG_OP_SHOW || op == AG_OP_PULL || op == AG_OP_DELETE || op == AG_OP_COPY) && !p.model)
        die_usage("%s needs a model name", name);
    if (op == AG_OP_COPY && !p.destination) die_usage("copy needs SOURCE and DESTINATION%s", "");
    if ((o.api || (o.host && !strncmp(o.host, "openai+", 7))) &&
        (op == AG_OP_SHOW || op == AG_OP_PULL || op == AG_OP_DELETE || op == AG_OP_COPY))
        die_usage("'%s' is Ollama's model management: not part of the OpenAI-compatible API", name);
    ag_client *c = make_client(&o);
    if (g_is_pool && (op == AG_OP_PS || op == AG_OP_TAGS) && !o.json) {
        /* the cluster as the pool sees it, after one probe of every node */
        wait_probes(c);
        int up = 0;
        ag_node_info info[256];
        size_t n = ag_pool_nodes(c, info, 256);
        for (size_t i = 0; i < n && i < 256; i++) up += info[i].state == AG_NODE_UP;
        if (op == AG_OP_PS) {
            print_nodes(stdout, c);
        } else {
            printf("%-40s %s\n", "NAME", "NODES");
            for (size_t i = 0; i < n && i < 256; i++)
                for (size_t j = 0; j < info[i].n_models; j++) {
                    const char *m = info[i].models[j];
                    int seen = 0, count = 0;
                    for (size_t a = 0; a < n && a < 256 && !seen; a++)
                        for (size_t b = 0; b < info[a].n_models; b++)
                            if (strcmp(info[a].models[b], m) == 0) {
                                if (a < i || (a == i && b < j)) seen = 1;
                                else count++;
                                break;
                            }
                    if (!seen) printf("%-40s %d\n", m, count);
                }
        }
        ag_client_free(c);
        free_loop();
        if (up == 0) {
            fprintf(stderr, "%s: ENONODE: no node answered\n", prog);
            return EXIT_REQ;
        }
        return 0;
    }
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    o.verbose = 0;
    done_state d = {&s, o.json ? NULL : pr};
    ag_callbacks cb = {cb_chunk, on_done, &d};
    int rc = ag_admin(c, op, &p, &cb, &g_req);
    if (rc == 0 && o.json) ag_request_set_raw(g_req, 1);
    return finish_run(c, &s, rc);
}

/* ---- sim ---- */
static void sim_sigint(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static int cmd_sim(int argc, char **argv) {
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *listen = "127.0.0.1";
    int port = 11434, nodes = 1;
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
                   "  --slots N            parallel generations (0 = unlimited)\n"
                   "  --queue N            waiting requests before 503 (default 512)\n"
                   "  --dim N              embedding dimensions (default 768)\n"
                   "  --fault KIND         reset, error-line, malformed, http500, http503, stall, silent,\n"
                   "                       close-before-final, close-after-final, truncate\n"
                   "  --fault-after N      tokens before the fault (default 0)\n"
                   "  --fault-every N      fault every Nth generation request (default 1)\n"
                   "  --api openai         speak the OpenAI-compatible API (/v1/chat/completions, SSE)\n"
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
        else if (!strcmp(a, "--slots")) cfg.slots = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--queue")) cfg.max_queue = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--dim")) cfg.dim = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--fault")) cfg.fault = need(argc, argv, &i);
        else if (!strcmp(a, "--fault-after")) cfg.fault_after = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--fault-every")) cfg.fault_every = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--api")) {
            const char *v = need(argc, argv, &i);
            if (strcmp(v, "ollama") && strcmp(v, "openai")) die_usage("--api is ollama or openai, not '%s'", v);
            cfg.api = !strcmp(v, "openai");
        }
        else die_usage("unknown option '%s'", a);
    }
    if (nodes < 1 || nodes > 256) die_usage("--nodes must be 1..256%s", "");
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = ag_sim_base_new();
    ag_sim *sims[256];
    for (int i = 0; i < nodes; i++) {
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

/* ---- gateway: Ollama's API in front of the pool ---- */
/* Each client may hold its socket and an upstream one: raise the soft
 * descriptor limit to the hard one, and keep max-clients within it (saying
 * so), so that accept() does not run out. */
static unsigned clients_within_fd_limit(unsigned want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t reserve = 64; /* listeners, DNS, probes, files */
    rlim_t room = rl.rlim_cur > reserve * 2 ? (rl.rlim_cur - reserve) / 2 : 16;
    if ((rlim_t)want > room) {
        fprintf(stderr, "%s: gateway: --max-clients %u lowered to %llu (open file limit %llu, two descriptors a client)\n",
                prog, want, (unsigned long long)room, (unsigned long long)rl.rlim_cur);
        return (unsigned)room;
    }
    return want;
}

static int cmd_gateway(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s gateway -N NODES [options]\n"
               "Serves Ollama's API (and /v1) on one address in front of a pool of nodes: point any\n"
               "Ollama client's OLLAMA_HOST at it. Runs until SIGINT or SIGTERM; SIGHUP re-reads --nodes-file.\n\n"
               "      --listen ADDR         address:port to serve (default 127.0.0.1:11434; port 0 = any)\n"
               "      --client-token T      clients must send 'Authorization: Bearer T'\n"
               "                            (default: $AGENTS_GATEWAY_TOKEN; none when unset)\n"
               "      --max-clients N       client connections at once (default 1024)\n"
               "      --max-body-mb N       request body cap in MiB (default 64)\n"
               "      --request-timeout S   a request must arrive within S seconds (default 30)\n"
               "      --client-idle-timeout S  idle keep-alive connections close after S (default 60)\n"
               "      --send-timeout S      a client that reads none of its answer for S seconds is\n"
               "                            closed and its upstream request cancelled (default 30)\n"
               "      --max-in-flight N     requests per node at once; more wait in the pool's queue (default 64)\n"
               "Nodes (required): -N/--nodes, --nodes-file, --discover or $OLLAMA_HOSTS; also --policy,\n"
               "--api, --token, --ca-file, --connect-timeout, --first-byte-timeout, --idle-timeout as for the other commands.\n"
               "Model management (pull, push, create, copy, delete) goes to the node named in the\n"
               "'X-Agents-Node: HOST:PORT' header. Live view: http://ADDR/dashboard; Prometheus: /metrics.\n",
               prog);
        return 0;
    }
    const char *env_hosts = getenv("OLLAMA_HOSTS");
    if (o.host) die_usage("the gateway serves a pool: name its nodes with -N (not %s)", "-H");
    if (!o.nodes && !o.nodes_file && !o.discover && !(env_hosts && *env_hosts))
        die_usage("name the nodes: -N host:port,host:port (or --nodes-file, --discover, $OLLAMA_HOSTS)%s", "");
    signal(SIGPIPE, SIG_IGN);
    g_plain_base = 1;
    ag_client *c = make_client(&o);
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.listen = o.listen;
    go.token = o.client_token ? o.client_token : getenv("AGENTS_GATEWAY_TOKEN");
    if (go.token && !*go.token) go.token = NULL;
    go.max_clients = clients_within_fd_limit(o.max_clients ? o.max_clients : 1024);
    go.send_timeout = o.send_timeout;
    go.max_body = o.max_body_mb > 0 ? (size_t)(o.max_body_mb * 1048576.0) : 0;
    go.request_timeout = o.request_timeout;
    go.idle_timeout = o.client_idle;
    int err;
    ag_gateway *g = ag_gateway_new(g_base, c, &go, &err);
    if (!g) {
        fprintf(stderr, "%s: gateway: cannot listen on %s: %s\n", prog, o.listen ? o.listen : "127.0.0.1:11434",
                err == AG_EINVAL ? "not ADDR:PORT (or a bad option)" : strerror(errno));
        ag_client_free(c);
        return err == AG_EINVAL ? EXIT_USAGE : EXIT_REQ;
    }
    const char *l = o.listen ? o.listen : "127.0.0.1:11434";
    size_t hl = strlen(l);
    const char *colon = strrchr(l, ':');
    if (colon) hl = (size_t)(colon - l);
    printf("gateway listening on %.*s:%d\n", (int)hl, l, ag_gateway_port(g));
    fflush(stdout);
    /* SIGINT and SIGTERM end the loop */
    event_free(g_sig);
    g_sig = evsignal_new(g_base, SIGINT, sim_sigint, g_base);
    struct event *st = evsignal_new(g_base, SIGTERM, sim_sigint, g_base);
    evsignal_add(g_sig, NULL);
    evsignal_add(st, NULL);
    event_base_dispatch(g_base);
    ag_gateway_free(g);
    ag_client_free(c);
    event_free(st);
    free_loop();
    return 0;
}

/* ---- demo: three simulated nodes in this process, real sockets ---- */
typedef struct demo_job {
    int id, chunks, done, status;
    double ttft_ms, e2e_ms;
    char node[64];
} demo_job;

static int demo_left;
static void demo_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    (void)ch;
    ((demo_job *)ud)->chunks++;
}
static void demo_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    demo_job *j = ud;
    j->done = 1;
    j->status = res->status;
    j->ttft_ms = res->timing.ttft_ns / 1e6;
    j->e2e_ms = res->timing.e2e_ns / 1e6;
    snprintf(j->node, sizeof j->node, "%s", res->node ? res->node : "?");
    demo_left--;
}
static void demo_stream_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    ((demo_job *)ud)->chunks++;
    if (ch->kind == AG_CHUNK_CONTENT) {
        fwrite(ch->text, 1, ch->len, stdout);
        fflush(stdout);
    }
}

static double cosine(const float *a, const float *b, size_t n) {
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    return d / (sqrt(na) * sqrt(nb) + 1e-12);
}

static int cmd_demo(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s demo\n\nStarts three simulated Ollama nodes inside this process (loopback,\n"
                   "ephemeral ports) and shows the client at work: a streamed chat, 24 concurrent\n"
                   "chats spread over the nodes, and embeddings.\n", prog);
            return 0;
        }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = ag_sim_base_new();
    ag_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ttft_ms = 120;
    cfg.itl_ms = 25;
    cfg.tokens = 40;
    ag_sim *sims[3];
    ag_client *clients[3];
    for (int i = 0; i < 3; i++) {
        sims[i] = ag_sim_new(base, "127.0.0.1", 0, &cfg);
        if (!sims[i]) { fprintf(stderr, "%s: demo: cannot start a simulated node\n", prog); return EXIT_REQ; }
        char host[64];
        snprintf(host, sizeof host, "127.0.0.1:%d", ag_sim_port(sims[i]));
        ag_client_options co;
        memset(&co, 0, sizeof co);
        co.host = host;
        clients[i] = ag_client_new(base, &co, NULL);
        printf("simulated node %d on %s\n", i + 1, host);
    }
    printf("\n== one streamed chat (llama3.2), token by token ==\n");
    ag_message msg = {"user", "why is the sky blue?", NULL, NULL, 0, NULL, NULL};
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = "llama3.2";
    p.messages = &msg;
    p.n_messages = 1;
    demo_job one;
    memset(&one, 0, sizeof one);
    ag_callbacks cb = {demo_stream_chunk, demo_done, &one};
    demo_left = 1;
    ag_chat(clients[0], &p, &cb, NULL);
    while (demo_left > 0) event_base_loop(base, EVLOOP_ONCE);
    printf("\n-> %s: first token after %.1f ms, %d chunks, %.1f ms in all\n", one.status ? ag_strerror(one.status) : "ok",
           one.ttft_ms, one.chunks, one.e2e_ms);

    printf("\n== 24 chats at once over 3 nodes, one event loop, one thread ==\n");
    demo_job jobs[24];
    memset(jobs, 0, sizeof jobs);
    demo_left = 24;
    const char *qs[] = {"tell me about rivers", "what is a prime number", "how do birds fly", "name a blue thing"};
    for (int i = 0; i < 24; i++) {
        ag_message m = {"user", qs[i % 4], NULL, NULL, 0, NULL, NULL};
        p.messages = &m;
        jobs[i].id = i;
        ag_callbacks c2 = {demo_chunk, demo_done, &jobs[i]};
        ag_chat(clients[i % 3], &p, &c2, NULL);
    }
    while (demo_left > 0) event_base_loop(base, EVLOOP_ONCE);
    double ttft_sum = 0, e2e_max = 0;
    int ok = 0, chunks = 0;
    for (int i = 0; i < 24; i++) {
        if (jobs[i].status == 0) ok++;
        chunks += jobs[i].chunks;
        ttft_sum += jobs[i].ttft_ms;
        if (jobs[i].e2e_ms > e2e_max) e2e_max = jobs[i].e2e_ms;
    }
    printf("%d/24 ok, %d chunks streamed, mean first token %.1f ms, all done in %.1f ms\n", ok, chunks,
           ttft_sum / 24, e2e_max);
    for (int i = 0; i < 3; i++) printf("  job %2d served by %s\n", jobs[i].id, jobs[i].node);

    printf("\n== embeddings (nomic-embed-text): texts sharing words are closer ==\n");
    const char *texts[] = {"the cat sat on the mat", "a cat on a mat", "stock prices fell sharply today"};
    ag_embed_params ep;
    memset(&ep, 0, sizeof ep);
    ep.model = "nomic-embed-text";
    ep.inputs = texts;
    ep.n_inputs = 3;
    ep.truncate = -1;
    ag_sync_out out;
    int rc = ag_embed_sync(clients[1], &ep, &out);
    if (rc == 0 && out.result->n_embeddings == 3) {
        size_t dim = out.result->dim;
        const float *v = out.result->embeddings;
        printf("%zu vectors of %zu floats\n", out.result->n_embeddings, dim);
        printf("  cos(\"%s\", \"%s\") = %.3f\n", texts[0], texts[1], cosine(v, v + dim, dim));
        printf("  cos(\"%s\", \"%s\") = %.3f\n", texts[0], texts[2], cosine(v, v + 2 * dim, dim));
    } else {
        printf("embed failed: %s\n", ag_strerror(rc));
    }
    ag_sync_out_free(&out);

    printf("\n== a batch of 200 agent tasks over the 3 nodes as one pool (agents batch) ==\n");
    char nodes[128], in[64], outp[64];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ag_sim_port(sims[0]),
             ag_sim_port(sims[1]), ag_sim_port(sims[2]));
    snprintf(in, sizeof in, "/tmp/agents-demo-%d.in.jsonl", (int)getpid());
    snprintf(outp, sizeof outp, "/tmp/agents-demo-%d.out.jsonl", (int)getpid());
    FILE *f = fopen(in, "w");
    for (int i = 1; f && i <= 200; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"question %d\"}\n", i, i);
    if (f) fclose(f);
    ag_pool_options po = {.nodes = nodes};
    ag_client *pool = ag_pool_new(base, &po, NULL);
    ag_agent *agent = ag_agent_chat(pool, "llama3.2");
    ag_batch_options bo = {.in_path = in, .out_path = outp, .concurrency = 48, .progress = -1};
    ag_batch_summary bs;
    memset(&bs, 0, sizeof bs);
    int brc = agent ? ag_batch_run(agent, &bo, &bs) : AG_ENOMEM;
    printf("%zu ok, %zu failed in %.2f s (%.0f tasks/s, %.0f tokens/s; p50 %.0f ms, p99 %.0f ms)\n", bs.ok,
           bs.failed, bs.wall_s, bs.tasks_per_s, bs.tokens_per_s, bs.p50_ms, bs.p99_ms);
    ag_node_info info[3];
    size_t nn = ag_pool_nodes(pool, info, 3);
    for (size_t i = 0; i < nn; i++)
        printf("  %s served %llu, TTFT p50 %.1f ms\n", info[i].name, (unsigned long long)info[i].requests,
               info[i].ttft_p50_ms);
    FILE *rf = fopen(outp, "r");
    char first[512] = "";
    if (rf && fgets(first, sizeof first, rf)) printf("a result line: %s", first);
    if (rf) fclose(rf);
    unlink(in);
    ag_agent_free(agent);
    ag_client_free(pool);
    for (int i = 0; i < 3; i++) {
        ag_client_free(clients[i]);
        ag_sim_free(sims[i]);
    }
    event_base_free(base);
    printf("\nNext: `%s sim --nodes 3 --port 11434 &`, then `%s chat -m llama3.2 \"hello\"` or\n"
           "`%s run -a coding -N 127.0.0.1:11434,127.0.0.1:11435 -m llama3.2 \"fizzbuzz in C\"`.\n"
           "Or the whole cluster behind one address for any Ollama client: `%s gateway --listen 127.0.0.1:8080\n"
           "-N 127.0.0.1:11434,127.0.0.1:11435,127.0.0.1:11436`, then OLLAMA_HOST=127.0.0.1:8080 and\n"
           "http://127.0.0.1:8080/dashboard.\n", prog, prog, prog, prog);
    unlink(outp);
    return ok == 24 && rc == 0 && one.status == 0 && brc == 0 && bs.ok == 200 ? 0 : EXIT_REQ;
}

/* ---- agents ---- */
static const char *agent_help =
    "  -a, --agent NAME      chat, coding, reasoning, research, summarization (default chat)\n"
    "      --docs PATH       research: a file or a directory of documents\n"
    "      --embed-model M   research: the embedding model (default nomic-embed-text)\n"
    "      --top-k N         research: passages given to the model (default 4)\n"
    "      --context N       summarization: the model's context in tokens (default 2048)\n";

static ag_agent *make_agent(ag_client *c, opts *o, ag_docstore **store) {
    const char *kind = o->agent ? o->agent : "chat";
    const char *model = model_or_die(o);
    ag_agent *a = NULL;
    *store = NULL;
    if (!strcmp(kind, "chat")) a = ag_agent_chat(c, model);
    else if (!strcmp(kind, "coding")) a = ag_agent_coding(c, model);
    else if (!strcmp(kind, "reasoning")) a = ag_agent_reasoning(c, model);
    else if (!strcmp(kind, "summarization") || !strcmp(kind, "summarize"))
        a = ag_agent_summarizer(c, model, o->context > 0 ? (size_t)o->context : 0);
    else if (!strcmp(kind, "research")) {
        if (!o->docs) die_usage("--agent research needs --docs FILE_OR_DIR%s", "");
        *store = ag_docstore_new(0, 0);
        struct stat st;
        int rc = stat(o->docs, &st) != 0 ? AG_EINVAL
                 : S_ISDIR(st.st_mode)  ? ag_docstore_add_dir(*store, o->docs)
                                        : ag_docstore_add_file(*store, o->docs);
        if (rc || ag_docstore_passages(*store) == 0) {
            fprintf(stderr, "%s: --docs %s: no readable text documents\n", prog, o->docs);
            exit(EXIT_USAGE);
        }
        a = ag_agent_research(c, model, o->embed_model ? o->embed_model : "nomic-embed-text", *store, o->top_k);
    } else {
        die_usage("unknown agent '%s' (chat, coding, reasoning, research, summarization)", kind);
    }
    if (!a) die_usage("could not make the %s agent", kind);
    if ((o->system && ag_agent_set(a, "system", o->system)) ||
        (options_json(o) && ag_agent_set(a, "options", options_json(o))) ||
        (o->keep_alive && ag_agent_set(a, "keep_alive", o->keep_alive)) ||
        (o->think && ag_agent_set(a, "think", o->think)) || (o->format && ag_agent_set(a, "format", o->format)))
        die_usage("bad agent settings (check --option values)%s", "");
    return a;
}

typedef struct agent_run {
    run_state rs;
    int done, status;
} agent_run;

static void agent_chunk(ag_task *t, const ag_chunk *c, void *ud) {
    (void)t;
    print_chunk(NULL, c, &((agent_run *)ud)->rs);
}

static void agent_done(ag_task *t, const ag_agent_result *res, void *ud) {
    (void)t;
    agent_run *x = ud;
    run_state *s = &x->rs;
    x->done = 1;
    x->status = res->status;
    g_task = NULL;
    if (s->in_thinking) fputs(s->tty ? "\033[0m\n" : "\n", stdout);
    if (s->printed_any && s->last != '\n') fputc('\n', stdout);
    if (res->status) {
        if (!(g_interrupted && res->status == AG_ECANCELED))
            fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(res->status), res->error);
        return;
    }
    if (res->n_sources) {
        printf("\nSources:\n");
        for (int i = 0; i < res->n_sources; i++)
            printf("[%d] %s (similarity %.3f)\n", res->sources[i].index, res->sources[i].name, res->sources[i].score);
    }
    if (res->n_blocks) fprintf(stderr, "[%d code block%s extracted]\n", res->n_blocks, res->n_blocks > 1 ? "s" : "");
    if (s->o->verbose) {
        fflush(stdout);
        fprintf(stderr, "\nmodel calls:          %d\n", res->steps);
        fprintf(stderr, "output tokens:        %lld\n", (long long)res->eval_count);
        if (res->timing.ttft_ns >= 0)
            fprintf(stderr, "time to first token:  %.1f ms\n", res->timing.ttft_ns / 1e6);
        fprintf(stderr, "end to end:           %.1f ms\n", res->timing.e2e_ns / 1e6);
        if (res->node) fprintf(stderr, "node:                 %s\n", res->node);
    }
    fflush(stdout);
}

static int cmd_run(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s run --agent NAME [options] [PROMPT...]   (PROMPT from stdin when absent)\n\n"
               "Runs one task through a built-in agent and streams its answer.\n\n%s%s", prog, agent_help,
               common_help);
        return 0;
    }
    char *prompt = read_prompt(&o);
    ag_client *c = make_client(&o);
    ag_docstore *store;
    ag_agent *a = make_agent(c, &o, &store);
    agent_run x;
    memset(&x, 0, sizeof x);
    x.rs.o = &o;
    x.rs.tty = isatty(1);
    ag_agent_callbacks cb = {agent_chunk, agent_done, &x};
    int rc = ag_agent_ask(a, prompt, &cb, &g_task);
    if (rc) fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(rc), ag_strerror(rc));
    while (!rc && !x.done) event_base_loop(g_base, EVLOOP_ONCE);
    ag_agent_free(a);
    ag_docstore_free(store);
    ag_client_free(c);
    free_loop();
    free(prompt);
    if (rc) return rc == AG_EINVAL ? EXIT_USAGE : EXIT_REQ;
    if (g_interrupted) return EXIT_INT;
    return x.status ? EXIT_REQ : 0;
}

static int cmd_batch(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s batch --agent NAME --in TASKS.jsonl --out RESULTS.jsonl [options]\n\n"
               "Runs every task of a JSON Lines file through an agent, a bounded number at once,\n"
               "appending each result as it finishes. Rerun with the same --out to finish an\n"
               "interrupted run: ids already there are skipped.\n"
               "Input lines: {\"id\": ..., \"prompt\": \"...\"} or {\"id\": ..., \"messages\": [...]},\n"
               "optionally \"system\" and \"options\". Output lines: id, response, eval_count, ttft_ms,\n"
               "e2e_ms, steps, attempts, node; or id, error, code.\n\n"
               "  -c, --concurrency N   tasks in flight (default 16)\n"
               "      --strict          stop at the first malformed line (default: report, skip)\n"
               "      --retry-failed    resume: run again the ids whose result in --out is an error\n"
               "                        (their error lines are taken out of --out first)\n"
               "      --no-progress     no progress bar (it shows only on a terminal anyway)\n%s%s",
               prog, agent_help, common_help);
        return 0;
    }
    if (!o.in || !o.out) die_usage("batch needs --in FILE and --out FILE%s", "");
    ag_client *c = make_client(&o);
    ag_docstore *store;
    ag_agent *a = make_agent(c, &o, &store);
    ag_batch_options bo = {.in_path = o.in, .out_path = o.out, .concurrency = (unsigned)(o.concurrency > 0 ? o.concurrency : 0),
                           .strict = o.strict, .progress = o.no_progress ? 0 : -1,
                           .retry_failed = o.retry_failed};
    ag_batch_summary sum;
    int rc = ag_batch_run(a, &bo, &sum);
    ag_agent_free(a);
    ag_docstore_free(store);
    ag_client_free(c);
    free_loop();
    if (rc) {
        fprintf(stderr, "%s: batch: cannot use %s or %s\n", prog, o.in, o.out);
        return EXIT_USAGE;
    }
    fprintf(stderr, "%zu task(s) run: %zu ok, %zu failed; %zu skipped (done before), %zu duplicate id(s), %zu malformed line(s)%s\n",
            sum.tasks, sum.ok, sum.failed, sum.skipped, sum.duplicates, sum.malformed,
            sum.stopped ? " (stopped: --strict)" : "");
    if (sum.retried) fprintf(stderr, "%zu failed result(s) of an earlier run taken out and run again\n", sum.retried);
    fprintf(stderr, "%.2f s, %.1f tasks/s, %.0f tokens/s; latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms\n",
            sum.wall_s, sum.tasks_per_s, sum.tokens_per_s, sum.p50_ms, sum.p90_ms, sum.p99_ms);
    return sum.failed || sum.stopped ? EXIT_REQ : 0;
}

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

static int cmd_bench(int argc, char **argv) {
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
               "      --endpoint E            chat (default), generate or embed\n"
               "      --slo ttft=500ms,tpot=50ms,e2e=10s   goodput counts requests within all of them\n"
               "      --json FILE             every point: config, percentiles, server timings, nodes\n"
               "      --csv FILE              one row per request with every timestamp\n"
               "      --html FILE             a self-contained page: CDFs, ITL histogram, sweep charts, nodes\n%s",
               prog, common_help);
        return 0;
    }
    cfg.model = model_or_die(&o);
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
