/* cli/gateway.c - `agents gateway`: Ollama's API in front of a pool. */
#include "cli/cli.h"

#include <ctype.h>
#include <stdarg.h>
#include <time.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

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

/* ---- the event log: one line an event on stderr, logfmt or JSON ---- */
static int log_min = AG_LOG_INFO, log_json;
static ag_client *log_client; /* for a node's reason */
static ag_gateway *log_gw;

static void put_val(const char *v) {
    int quote = log_json || !*v || strpbrk(v, " \"=\\") != NULL;
    if (quote) fputc('"', stderr);
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch == '"' || ch == '\\') fprintf(stderr, "\\%c", ch);
        else if (ch < 0x20) fprintf(stderr, log_json ? "\\u%04x" : "\\x%02x", ch);
        else fputc(ch, stderr);
    }
    if (quote) fputc('"', stderr);
}

/* evlog(level, event, key, value, ..., NULL) */
static void evlog(int level, const char *event, ...) {
    if (level < log_min) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char t[40];
    size_t l = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + l, sizeof t - l, ".%03ldZ", ts.tv_nsec / 1000000);
    fprintf(stderr, log_json ? "{\"time\":\"%s\",\"level\":\"%s\",\"event\":" : "time=%s level=%s event=", t,
            names[level < 0 ? 0 : level > 3 ? 3 : level]);
    put_val(event);
    va_list ap;
    va_start(ap, event);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        fprintf(stderr, log_json ? ",\"%s\":" : " %s=", k);
        put_val(v ? v : "");
    }
    va_end(ap);
    fputs(log_json ? "}\n" : "\n", stderr);
}

/* a node changed state: with its reason and its errors in a row */
static void on_node_state(const char *node, int from, int to, void *ud) {
    (void)ud;
    ag_node_info info[256];
    size_t n = log_client ? ag_pool_nodes(log_client, info, 256) : 0;
    const char *reason = "";
    char inrow[24] = "0";
    for (size_t i = 0; i < n && i < 256; i++)
        if (!strcmp(info[i].name, node)) {
            reason = info[i].reason ? info[i].reason : "";
            snprintf(inrow, sizeof inrow, "%llu", (unsigned long long)info[i].failures_in_a_row);
        }
    if (to == AG_NODE_UP)
        evlog(AG_LOG_INFO, from == AG_NODE_PROBING ? "node_up" : "node_readmitted", "node", node, "from",
              ag_node_state_name(from), (const char *)NULL);
    else
        evlog(AG_LOG_WARN, to == AG_NODE_EJECTED ? "node_ejected" : "node_down", "node", node, "from",
              ag_node_state_name(from), "reason", reason, "errors_in_a_row", inrow, (const char *)NULL);
}

/* the pool's other lines: failovers, 429s, stalls, capacity, names resolved */
static void on_log(int level, const char *msg, void *ud) {
    (void)ud;
    if (!strncmp(msg, "node ", 5) && strstr(msg, " -> ")) return; /* a state change: on_node_state said it */
    const char *ev = strstr(msg, "at once") ? "capacity" : strstr(msg, "retrying on") ? "failover"
                     : strstr(msg, "rate limited") ? "rate_limited" : strstr(msg, "timed out") ? "stall" : "pool";
    evlog(level, ev, "msg", msg, (const char *)NULL);
}

static void gw_reloaded(void *ud, int rc, const char *err) {
    (void)ud;
    if (rc) evlog(AG_LOG_ERROR, "keys_not_reloaded", "error", err, (const char *)NULL);
    else {
        char n[24];
        snprintf(n, sizeof n, "%zu", ag_gateway_keys(log_gw, NULL, 0));
        evlog(AG_LOG_INFO, "keys_reloaded", "keys", n, (const char *)NULL);
    }
}

/* SIGHUP: the keys file again, parsed aside; the access log opened again
 * (the nodes file has its own handler) */
static const char *hup_keys;
static void gw_sighup(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    if (ag_gateway_reopen_logs(arg) != 0) evlog(AG_LOG_ERROR, "access_log_not_reopened", "error", strerror(errno), (const char *)NULL);
    if (!hup_keys) return;
    int rc = ag_gateway_reload_start(arg, gw_reloaded, NULL);
    if (rc == AG_EBUSY) evlog(AG_LOG_WARN, "keys_reload_skipped", "why", "a reload of the keys is under way", (const char *)NULL);
    else if (rc) evlog(AG_LOG_ERROR, "keys_not_reloaded", "error", ag_strerror(rc), (const char *)NULL);
}

int cmd_gateway(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    const char *env_hosts = getenv("OLLAMA_HOSTS");
    if (o.host) die_usage("the gateway serves a pool: name its nodes with -N (not %s)", "-H");
    if (!o.nodes && !o.nodes_file && !o.discover && !(env_hosts && *env_hosts))
        die_usage("name the nodes: -N host:port,host:port (or --nodes-file, --discover, $OLLAMA_HOSTS)%s", "");
    signal(SIGPIPE, SIG_IGN);
    if (o.log_level) {
        log_min = !strcmp(o.log_level, "debug") ? AG_LOG_DEBUG : !strcmp(o.log_level, "info") ? AG_LOG_INFO
                  : !strcmp(o.log_level, "warn") ? AG_LOG_WARN : !strcmp(o.log_level, "error") ? AG_LOG_ERROR : -1;
        if (log_min < 0) die_usage("--log-level is debug, info, warn or error, not '%s'", o.log_level);
    }
    if (o.log_format && strcmp(o.log_format, "logfmt") && strcmp(o.log_format, "json"))
        die_usage("--log-format is logfmt or json, not '%s'", o.log_format);
    log_json = o.log_format && !strcmp(o.log_format, "json");
    g_plain_base = 1;
    ag_client *c = make_client(&o);
    log_client = c;
    ag_hooks hooks = {.log = on_log, .node_state = on_node_state};
    ag_client_set_hooks(c, &hooks);
    ag_gateway_options go;
    memset(&go, 0, sizeof go);
    go.listen = o.listen;
    go.token = o.client_token ? o.client_token : getenv("AGENTS_GATEWAY_TOKEN");
    if (go.token && !*go.token) go.token = NULL;
    go.max_clients = clients_within_fd_limit(o.max_clients ? o.max_clients : 1024);
    go.send_timeout = o.send_timeout;
    go.max_clients_per_ip = o.max_clients_per_ip;
    go.origins = o.origins; /* NULL: $OLLAMA_ORIGINS */
    go.pull_all = o.pull_all;
    go.max_body = o.max_body_mb > 0 ? (size_t)(o.max_body_mb * 1048576.0) : 0;
    go.request_timeout = o.request_timeout;
    go.idle_timeout = o.client_idle;
    go.keys_file = o.keys_file;
    go.tls_cert = o.tls_cert;
    go.tls_key = o.tls_key;
    go.access_log = o.access_log;
    go.otlp_endpoint = o.otlp;
    if (!!o.tls_cert != !!o.tls_key) die_usage("--tls-cert and --tls-key go together%s", "");
    if (o.keys_file) {
        char kerr[400];
        if (ag_gateway_keys_check(o.keys_file, kerr, sizeof kerr) != 0) {
            fprintf(stderr, "%s: gateway: %s\n", prog, kerr);
            ag_client_free(c);
            return EXIT_USAGE;
        }
    }
    int err;
    ag_gateway *g = ag_gateway_new(g_base, c, &go, &err);
    if (!g) {
        const char *why = err == AG_EINVAL ? (o.access_log ? "not ADDR:PORT, a bad option, or the access log cannot be opened"
                                                          : "not ADDR:PORT (or a bad option)")
                          : err == AG_ETLS ? "the certificate or key does not load, or they do not match"
                                           : strerror(errno);
        fprintf(stderr, "%s: gateway: cannot listen on %s: %s\n", prog, o.listen ? o.listen : "127.0.0.1:11434", why);
        evlog(AG_LOG_ERROR, "listen_failed", "address", o.listen ? o.listen : "127.0.0.1:11434", "error", why, (const char *)NULL);
        ag_client_free(c);
        return err == AG_EINVAL || err == AG_ETLS ? EXIT_USAGE : EXIT_REQ;
    }
    const char *l = o.listen ? o.listen : "127.0.0.1:11434";
    size_t hl = strlen(l);
    const char *colon = strrchr(l, ':');
    if (colon) hl = (size_t)(colon - l);
    printf("gateway listening on %.*s:%d\n", (int)hl, l, ag_gateway_port(g));
    fflush(stdout);
    log_gw = g;
    char addr[320];
    snprintf(addr, sizeof addr, "%.*s:%d", (int)hl, l, ag_gateway_port(g));
    evlog(AG_LOG_INFO, "listening", "address", addr, "tls", go.tls_cert ? "on" : "off", "access_log",
          o.access_log ? o.access_log : "", "otlp", o.otlp ? o.otlp : "", (const char *)NULL);
    /* SIGINT and SIGTERM end the loop */
    event_free(g_sig);
    g_sig = evsignal_new(g_base, SIGINT, sim_sigint, g_base);
    struct event *st = evsignal_new(g_base, SIGTERM, sim_sigint, g_base);
    evsignal_add(g_sig, NULL);
    evsignal_add(st, NULL);
    hup_keys = o.keys_file;
    struct event *hup = o.keys_file || o.access_log ? evsignal_new(g_base, SIGHUP, gw_sighup, g) : NULL;
    if (hup) evsignal_add(hup, NULL);
    event_base_dispatch(g_base);
    if (hup) event_free(hup);
    ag_gateway_free(g);
    ag_client_free(c);
    event_free(st);
    free_loop();
    return 0;
}

