/* cli/gateway.c - `agents gateway`: Ollama's API in front of a pool. */
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

static void gw_reloaded(void *ud, int rc, const char *err) {
    (void)ud;
    if (rc) fprintf(stderr, "%s: gateway: keys not reloaded: %s\n", prog, err);
    else fprintf(stderr, "%s: gateway: keys reloaded\n", prog);
}

/* SIGHUP: the keys file again, parsed aside (the nodes file has its own handler) */
static void gw_sighup(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    int rc = ag_gateway_reload_start(arg, gw_reloaded, NULL);
    if (rc == AG_EBUSY) fprintf(stderr, "%s: gateway: a reload of the keys is under way; this one is skipped\n", prog);
    else if (rc) fprintf(stderr, "%s: gateway: keys not reloaded: %s\n", prog, ag_strerror(rc));
}

int cmd_gateway(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
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
    go.max_clients_per_ip = o.max_clients_per_ip;
    go.origins = o.origins; /* NULL: $OLLAMA_ORIGINS */
    go.pull_all = o.pull_all;
    go.max_body = o.max_body_mb > 0 ? (size_t)(o.max_body_mb * 1048576.0) : 0;
    go.request_timeout = o.request_timeout;
    go.idle_timeout = o.client_idle;
    go.keys_file = o.keys_file;
    go.tls_cert = o.tls_cert;
    go.tls_key = o.tls_key;
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
        fprintf(stderr, "%s: gateway: cannot listen on %s: %s\n", prog, o.listen ? o.listen : "127.0.0.1:11434",
                err == AG_EINVAL ? "not ADDR:PORT (or a bad option)"
                : err == AG_ETLS ? "the certificate or key does not load, or they do not match"
                                 : strerror(errno));
        ag_client_free(c);
        return err == AG_EINVAL || err == AG_ETLS ? EXIT_USAGE : EXIT_REQ;
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
    struct event *hup = o.keys_file ? evsignal_new(g_base, SIGHUP, gw_sighup, g) : NULL;
    if (hup) evsignal_add(hup, NULL);
    event_base_dispatch(g_base);
    if (hup) event_free(hup);
    ag_gateway_free(g);
    ag_client_free(c);
    event_free(st);
    free_loop();
    return 0;
}

