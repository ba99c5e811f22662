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

static double num(const char *v, const char *what) {
    char *e;
    double d = strtod(v, &e);
    if (e == v || *e) {
        fprintf(stderr, "%s: %s wants a number, not '%s' (try --help)\n", prog, what, v);
        exit(EXIT_USAGE);
    }
    return d;
}

void parse_common(int argc, char **argv, int start, opts *o) { parse_common_x(argc, argv, start, o, NULL, NULL); }

void parse_common_x(int argc, char **argv, int start, opts *o, extra_opt_fn extra, void *ud) {
    memset(o, 0, sizeof *o);
    o->priority_reserve = -1;
    const cli_cmd *cmd = cli_cmd_find(argv[1]);
    unsigned fam = cmd ? cmd->fam : ~0u;
    const char *cname = cmd ? cmd->name : argv[1];
    int i = start, id;
    const char *v;
    while ((id = cli_next(argc, argv, &i, fam, cname, &v)) != O_END) {
        switch (id) {
        case O_ARG:
            if (o->nargs < 64) o->args[o->nargs++] = v;
            break;
        case O_HELP: o->help = 1; break;
        case O_HOST: o->host = v; break;
        case O_MODEL: o->model = v; break;
        case O_SYSTEM: o->system = v; break;
        case O_KEEP_ALIVE: o->keep_alive = v; break;
        case O_THINK: o->think = v; break;
        case O_FORMAT: o->format = v; break;
        case O_TOOLS: o->tools = v; break;
        case O_IMAGE:
            if (o->nimages >= 16) die_usage("at most 16 images%s", "");
            o->images[o->nimages++] = v;
            break;
        case O_OPTION: add_option(o, v); break;
        case O_JSON: o->json = 1; break;
        case O_NO_STREAM: o->no_stream = 1; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_INSECURE: o->insecure = 1; break;
        case O_LEGACY: o->legacy = 1; break;
        case O_DIMENSIONS: o->dims = (int)num(v, "--dimensions"); break;
        case O_CONNECT_TIMEOUT: o->connect_timeout = num(v, "--connect-timeout"); break;
        case O_NODES: o->nodes = v; break;
        case O_NODES_FILE: o->nodes_file = v; break;
        case O_POLICY: o->policy = v; break;
        case O_DISCOVER: o->discover = v; break;
        case O_RESUME: o->resume = 1; break;
        case O_PRIORITY_RESERVE: o->priority_reserve = (int)num(v, "--priority-reserve"); break;
        case O_LEARN_SLOTS:
            if (strcmp(v, "on") && strcmp(v, "off")) die_usage("--learn-slots is on or off, not '%s'", v);
            o->learn_slots = !strcmp(v, "off");
            break;
        case O_RESOLVE_INTERVAL:
            o->resolve_interval = num(v, "--resolve-interval");
            if (!(o->resolve_interval > 0)) die_usage("--resolve-interval wants seconds > 0%s", "");
            break;
        case O_AGENT: o->agent = v; break;
        case O_CA_FILE: o->ca_file = v; break;
        case O_TLS_INSECURE: o->tls_insecure = 1; break;
        case O_TOKEN: o->token = v; break;
        case O_API:
            if (strcmp(v, "ollama") && strcmp(v, "openai")) die_usage("--api is ollama or openai, not '%s'", v);
            o->api = !strcmp(v, "openai");
            break;
        case O_DOCS: o->docs = v; break;
        case O_EMBED_MODEL: o->embed_model = v; break;
        case O_TOP_K: o->top_k = (int)num(v, "--top-k"); break;
        case O_CONTEXT: o->context = (int)num(v, "--context"); break;
        case O_IN: o->in = v; break;
        case O_OUT: o->out = v; break;
        case O_CONCURRENCY: o->concurrency = (int)num(v, "--concurrency"); break;
        case O_STRICT: o->strict = 1; break;
        case O_RETRY_FAILED: o->retry_failed = 1; break;
        case O_NO_PROGRESS: o->no_progress = 1; break;
        case O_IDLE_TIMEOUT: o->idle_timeout = num(v, "--idle-timeout"); break;
        case O_RETRIES: o->retries = (int)num(v, "--retries"); break;
        case O_RETRY_DELAY: o->retry_delay = num(v, "--retry-delay"); break;
        case O_RETRY_FACTOR: o->retry_factor = num(v, "--retry-factor"); break;
        case O_FIRST_BYTE_TIMEOUT: o->first_byte_timeout = num(v, "--first-byte-timeout"); break;
        case O_LISTEN: o->listen = v; break;
        case O_CLIENT_TOKEN: o->client_token = v; break;
        case O_KEYS_FILE: o->keys_file = v; break;
        case O_TLS_CERT: o->tls_cert = v; break;
        case O_TLS_KEY: o->tls_key = v; break;
        case O_ORIGINS: o->origins = v; break;
        case O_PULL_ALL: o->pull_all = 1; break;
        case O_MAX_CLIENTS: o->max_clients = (unsigned)num(v, "--max-clients"); break;
        case O_MAX_CLIENTS_PER_IP: o->max_clients_per_ip = (int)num(v, "--max-clients-per-ip"); break;
        case O_MAX_IN_FLIGHT: o->max_in_flight = (unsigned)num(v, "--max-in-flight"); break;
        case O_MAX_BODY_MB: o->max_body_mb = num(v, "--max-body-mb"); break;
        case O_REQUEST_TIMEOUT: o->request_timeout = num(v, "--request-timeout"); break;
        case O_CLIENT_IDLE_TIMEOUT: o->client_idle = num(v, "--client-idle-timeout"); break;
        case O_SEND_TIMEOUT: o->send_timeout = num(v, "--send-timeout"); break;
        case O_FILE: o->file = v; break;
        case O_QUANTIZE: o->quantize = v; break;
        case O_NAMES: o->names = 1; break;
        case O_ACCESS_LOG: o->access_log = v; break;
        case O_OTLP: o->otlp = v; break;
        case O_LOG_LEVEL: o->log_level = v; break;
        case O_LOG_FORMAT: o->log_format = v; break;
        default:
            if (extra) extra(id, v, ud);
            break;
        }
    }
    if (o->help) {
        if (cmd) cli_help(stdout, cmd);
        else cli_usage(stdout);
        exit(0);
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

void print_stats(const ag_result *res) {
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



/* after an EAUTH: what to set */
void auth_hint(int status) {
    if (status != AG_EAUTH) return;
    fprintf(stderr, "%s: the server wants credentials: --token T (or $AGENTS_TOKEN) for a Bearer token, or\n"
                    "%s: https://TOKEN@host or https://user:pass@host as the address\n",
            prog, prog);
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
        auth_hint(res->status);
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

const char *getenv_model(void) {
    const char *m = getenv("AGENTS_MODEL");
    if (m && *m) return m;
    m = getenv("OLLAMA_MODEL"); /* the original package's name for it */
    return m && *m ? m : NULL;
}

/* Ollama's shape: the first argument is the model, unless -m or the
 * environment names one (then every argument is the prompt) */
void positional_model(opts *o) {
    if (o->model || getenv_model() || o->nargs == 0) return;
    o->model = o->args[0];
    memmove(o->args, o->args + 1, (size_t)(o->nargs - 1) * sizeof *o->args);
    o->nargs--;
}

const char *model_or_die(opts *o) {
    if (o->model) return o->model;
    const char *m = getenv_model();
    if (m) return m;
    die_usage("no model: name it first (agents chat MODEL ...), or pass --model NAME (or set AGENTS_MODEL or OLLAMA_MODEL)%s", "");
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
