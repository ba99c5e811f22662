/* cli/common.c - what every command uses: options, the loop, the client (one
 * node or a pool), printing an answer, exit codes. */
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


const char *prog = "agents";

struct event_base *cli_base_new(void) {
    struct event_config *cfg = event_config_new();
    if (!cfg) return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    /* two priorities: a schedule's timer (bench's arrivals) ahead of I/O */
    if (b) event_base_priority_init(b, 2);
    return b;
}

void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try --help)\n");
    exit(EXIT_USAGE);
}

/* ---- options common to request commands ---- */

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

const char *options_json(opts *o) {
    if (!o->olen) return NULL;
    if (o->options_json[o->olen - 1] != '}') {
        o->options_json[o->olen] = '}';
        o->options_json[o->olen + 1] = 0;
    }
    return o->options_json;
}

const char *need(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die_usage("%s needs a value", argv[*i]);
    return argv[++*i];
}

void parse_common(int argc, char **argv, int start, opts *o) {
    memset(o, 0, sizeof *o);
    o->priority_reserve = -1;
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
        else if (!strcmp(a, "--priority-reserve")) o->priority_reserve = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--learn-slots")) {
            const char *v = need(argc, argv, &i);
            if (strcmp(v, "on") && strcmp(v, "off")) die_usage("--learn-slots is on or off, not '%s'", v);
            o->learn_slots = !strcmp(v, "off");
        }
        else if (!strcmp(a, "--resolve-interval")) {
            o->resolve_interval = atof(need(argc, argv, &i));
            if (!(o->resolve_interval > 0)) die_usage("--resolve-interval wants seconds > 0%s", "");
        }
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
        else if (!strcmp(a, "--retries")) o->retries = atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--retry-delay")) o->retry_delay = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--retry-factor")) o->retry_factor = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--first-byte-timeout")) o->first_byte_timeout = atof(need(argc, argv, &i));
        else if (!strcmp(a, "--listen")) o->listen = need(argc, argv, &i);
        else if (!strcmp(a, "--client-token")) o->client_token = need(argc, argv, &i);
        else if (!strcmp(a, "--keys-file")) o->keys_file = need(argc, argv, &i);
        else if (!strcmp(a, "--tls-cert")) o->tls_cert = need(argc, argv, &i);
        else if (!strcmp(a, "--tls-key")) o->tls_key = need(argc, argv, &i);
        else if (!strcmp(a, "--origins")) o->origins = need(argc, argv, &i);
        else if (!strcmp(a, "--pull-all")) o->pull_all = 1;
        else if (!strcmp(a, "--max-clients")) o->max_clients = (unsigned)atoi(need(argc, argv, &i));
        else if (!strcmp(a, "--max-clients-per-ip")) o->max_clients_per_ip = atoi(need(argc, argv, &i));
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
    /* the original package's variable for how long a model stays loaded */
    if (!o->keep_alive) {
        const char *ka = getenv("OLLAMA_KEEP_ALIVE");
        if (ka && *ka) o->keep_alive = ka;
    }
}

/* ---- client setup and one request ---- */
struct event_base *g_base;
ag_request *g_req;
int g_interrupted;
ag_task *g_task;
struct event *g_sig;

static void on_sigint(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    g_interrupted = 1;
    if (g_req) ag_request_cancel(g_req);
    if (g_task) ag_task_cancel(g_task);
}

int g_is_pool;
static ag_client *g_client;

static void on_sighup(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    if (g_client && ag_pool_reload(g_client) != 0)
        fprintf(stderr, "%s: could not re-read the nodes file\n", prog);
}
static struct event *g_hup;

/* --policy BASE[+AFFINITY]: the load policy, then what may override it */
static void policy_of(const char *s, ag_pool_options *po) {
    char base[32];
    const char *plus = s ? strchr(s, '+') : NULL;
    snprintf(base, sizeof base, "%.*s", s ? (plus ? (int)(plus - s) : (int)strlen(s)) : 3, s ? s : "p2c");
    if (!strcmp(base, "p2c")) po->policy = AG_POLICY_P2C;
    else if (!strcmp(base, "rr") || !strcmp(base, "round-robin")) po->policy = AG_POLICY_ROUND_ROBIN;
    else if (!strcmp(base, "random")) po->policy = AG_POLICY_RANDOM;
    else if (!strcmp(base, "least")) po->policy = AG_POLICY_LEAST;
    else die_usage("--policy is p2c, rr, random or least (then +cache, +session or +load), not '%s'", s);
    if (!plus || !strcmp(plus, "+cache")) return; /* sessions and prefixes */
    if (!strcmp(plus, "+session")) po->prefix_entries = -1;
    else if (!strcmp(plus, "+load")) po->affinity_slack = -1;
    else die_usage("--policy: after the '+' comes cache, session or load, not '%s'", plus + 1);
}

int g_plain_base = 1; /* cmd_bench clears it for an open loop */
static int discovered = -1;
static void on_discovered(ag_client *c, int added, void *ud) {
    (void)c;
    (void)ud;
    discovered = added;
}

/* One node (--host, $OLLAMA_HOST) or a pool (--nodes, --nodes-file,
 * --discover, $OLLAMA_HOSTS). */
ag_client *make_client(opts *o) {
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
    /* precise timers only where a schedule needs them (bench's open loop):
     * elsewhere they would re-arm a timerfd every loop turn */
    g_base = g_plain_base ? event_base_new() : cli_base_new();
    int err;
    ag_client *c;
    if (g_is_pool) {
        ag_pool_options po;
        memset(&po, 0, sizeof po);
        po.client = co;
        po.nodes = o->nodes;
        po.nodes_file = o->nodes_file;
        policy_of(o->policy, &po);
        po.resume = o->resume;
        po.resolve_interval = o->resolve_interval;
        /* one place a model kept for a higher class while one is about: an
         * interactive request does not wait behind a batch (one class: no effect) */
        po.priority_reserve = o->priority_reserve >= 0 ? (unsigned)o->priority_reserve : 1;
        po.learn_capacity = o->learn_slots ? -1 : 0;
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
        if (o->nodes_file || (o->nodes && strstr(o->nodes, "dns+")) || (!o->nodes && env_hosts && strstr(env_hosts, "dns+"))) {
            g_hup = evsignal_new(g_base, SIGHUP, on_sighup, NULL); /* re-read the file, resolve the names again */
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

/* The cluster, one line a node, to stderr (or stdout for `ps`). */
void print_nodes(FILE *f, ag_client *c) {
    ag_node_info info[256];
    size_t n = ag_pool_nodes(c, info, 256);
    fprintf(f, "%-24s %-8s %-12s %5s %-11s %8s %6s %7s %9s %9s %9s  %s\n", "NODE", "STATE", "VERSION", "BUSY",
            "SLOTS", "REQS", "ERRS", "RETRIES", "TTFT p50", "E2E p99", "TOKENS/S", "LOADED");
    for (size_t i = 0; i < n && i < 256; i++) {
        const ag_node_info *x = &info[i];
        char loaded[256] = "";
        for (size_t j = 0; j < x->n_loaded; j++) {
            if (j) strncat(loaded, ",", sizeof loaded - strlen(loaded) - 1);
            strncat(loaded, x->loaded[j], sizeof loaded - strlen(loaded) - 1);
        }
        char slots[32];
        snprintf(slots, sizeof slots, "%u %s", x->slots, x->slots_source ? x->slots_source : "");
        fprintf(f, "%-24s %-8s %-12s %2u/%-2u %-11s %8llu %6llu %7llu %7.1fms %7.1fms %9.1f  %s\n", x->name,
                ag_node_state_name(x->state), x->version[0] ? x->version : "-", x->in_flight, x->max_in_flight, slots,
                (unsigned long long)x->requests, (unsigned long long)x->errors,
                (unsigned long long)x->retries, x->ttft_p50_ms, x->e2e_p99_ms, x->tokens_per_s, loaded);
    }
}

/* waits (bounded) until every node has answered or failed its first probe */
void wait_probes(ag_client *c) {
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


void print_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
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
    if (res->attempts > 1) fprintf(stderr, "attempts:             %d\n", res->attempts);
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



void on_done(ag_request *r, const ag_result *res, void *ud) {
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
        if (res->attempts > 1) fprintf(stderr, "%s: after %d attempts\n", prog, res->attempts);
    }
    fflush(stdout);
}

void cb_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    print_chunk(r, ch, ((done_state *)ud)->rs);
}

void free_loop(void) {
    if (g_sig) event_free(g_sig);
    g_sig = NULL;
    if (g_hup) event_free(g_hup);
    g_hup = NULL;
    event_base_free(g_base);
}

int finish_run(ag_client *c, run_state *s, int rc) {
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
char *read_prompt(opts *o) {
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

const char *model_or_die(opts *o) {
    if (o->model) return o->model;
    const char *m = getenv("AGENTS_MODEL");
    if (m && *m) return m;
    m = getenv("OLLAMA_MODEL"); /* the original package's name for it */
    if (m && *m) return m;
    die_usage("no model: pass --model NAME (or set AGENTS_MODEL or OLLAMA_MODEL)%s", "");
    return NULL;
}

ag_gen_options gen_opts(opts *o) {
    ag_gen_options g;
    memset(&g, 0, sizeof g);
    g.format = o->format;
    g.options_json = options_json(o);
    g.keep_alive = o->keep_alive;
    g.think = o->think;
    g.no_stream = o->no_stream;
    return g;
}

const ag_request_options *req_opts(opts *o) {
    if (o->retries <= 0) return NULL;
    memset(&o->ro, 0, sizeof o->ro);
    o->ro.retries = o->retries;
    o->ro.retry_delay = o->retry_delay;
    o->ro.retry_factor = o->retry_factor;
    return &o->ro;
}

const char *common_help =
    "  -H, --host ADDR       node address (default: $OLLAMA_HOST, else $OLLAMA_URL, else\n"
    "                        127.0.0.1:11434)\n"
    "  -m, --model NAME      model (default: $AGENTS_MODEL, else $OLLAMA_MODEL)\n"
    "  -o, --option K=V      a model option (num_predict=64, temperature=0.2, stop=[\"x\"]); repeatable\n"
    "      --keep-alive D    how long the model stays loaded (5m, 1h, 0 = unload, -1 = forever;\n"
    "                        default: $OLLAMA_KEEP_ALIVE, else the server's)\n"
    "      --think V         true, false, low, medium or high\n"
    "      --format F        json, or a JSON schema object\n"
    "      --json            print the server's NDJSON objects as they arrive\n"
    "      --no-stream       ask for one whole answer\n"
    "  -v, --verbose         print timings and counts to stderr afterwards\n"
    "      --connect-timeout S   seconds to connect, DNS included (default 10)\n"
    "      --first-byte-timeout S  seconds to the answer's first byte (default 300: a cold\n"
    "                            model load takes minutes); -1 = none\n"
    "      --idle-timeout S      seconds of silence once the answer began (default 120); -1 = none\n"
    "      --retries N       after a transient failure before any output, wait and retry up to\n"
    "                        N times (--retry-delay S, default 1; --retry-factor F, default 2)\n"
    "  -N, --nodes LIST      several nodes (a:11434,b:11434): a pool with routing and failover\n"
    "      --nodes-file F    nodes from a file, one a line (re-read on SIGHUP); also $OLLAMA_HOSTS\n"
    "      --policy P[+A]    p2c (default), rr, random, least; +cache (default): a request\n"
    "                        goes to the node holding its session or its prompt's prefix,\n"
    "                        within a load bound; +session: sessions only; +load: load alone\n"
    "      --discover RANGE  probe HOST[-HOST]:PORT[-PORT] for nodes (opt-in)\n"
    "                        a node dns+NAME:PORT is every address NAME resolves to (a headless\n"
    "                        Service), resolved again every --resolve-interval S (30) and on SIGHUP\n"
    "      --resume          a stream that dies mid-answer continues on another node\n"
    "      --priority-reserve N  lower priority classes leave the last N free places of a model's\n"
    "                        nodes while a higher class was seen for it in the last minute (1)\n"
    "      --learn-slots on|off  learn what each node runs at once where neither its slots=N\n"
    "                        nor the node says it (on); off: --max-in-flight each\n"
    "      --ca-file F       CA certificates (PEM) for https:// nodes; --tls-insecure skips checks\n"
    "      --api openai      the nodes speak the OpenAI-compatible API (llama.cpp, vLLM, LocalAI,\n"
    "                        LM Studio, TGI); per node: openai+http://host:8000\n"
    "      --token T         a Bearer token for the node(s) (default: $AGENTS_TOKEN); per node,\n"
    "                        put it in the address: https://TOKEN@host or https://user:pass@host\n";

