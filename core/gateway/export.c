/* core/gateway/export.c - what the gateway tells about itself and its
 * nodes: /metrics in Prometheus' text format, /dashboard.json for the page. */
#include "core/gateway/gateway_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "core/base/clock.h"
#include "core/base/json.h"
#include "core/base/mem.h"

/* per-key figures: every key for an admin (its key says "admin", or the
 * single token, or a gateway without credentials), its own for another key */
static const gkey *keys_shown(const gconn *gc) {
    return gc && gc->key && !gc->key->admin ? gc->key : NULL;
}

void ag__gw_metrics(ag_gateway *g, const gconn *gc, struct evbuffer *b) {
    ag_gateway_stats s;
    ag_gateway_get_stats(g, &s);
    evbuffer_add_printf(b,
        "# HELP agents_gateway_clients Client connections open now.\n# TYPE agents_gateway_clients gauge\n"
        "agents_gateway_clients %u\n"
        "# HELP agents_gateway_in_flight Upstream requests running now.\n# TYPE agents_gateway_in_flight gauge\n"
        "agents_gateway_in_flight %u\n"
        "# HELP agents_gateway_connections_total Client connections accepted.\n# TYPE agents_gateway_connections_total counter\n"
        "agents_gateway_connections_total %llu\n"
        "# HELP agents_gateway_rejected_total Connections turned away at the client limit.\n# TYPE agents_gateway_rejected_total counter\n"
        "agents_gateway_rejected_total %llu\n"
        "# HELP agents_gateway_requests_total Requests parsed.\n# TYPE agents_gateway_requests_total counter\n"
        "agents_gateway_requests_total %llu\n"
        "# HELP agents_gateway_responses_total Responses by status class.\n# TYPE agents_gateway_responses_total counter\n"
        "agents_gateway_responses_total{code=\"2xx\"} %llu\nagents_gateway_responses_total{code=\"4xx\"} %llu\n"
        "agents_gateway_responses_total{code=\"5xx\"} %llu\n"
        "# HELP agents_gateway_broken_streams_total Streams ended with an error line after output.\n# TYPE agents_gateway_broken_streams_total counter\n"
        "agents_gateway_broken_streams_total %llu\n"
        "# HELP agents_gateway_client_aborts_total Clients gone before their answer ended.\n# TYPE agents_gateway_client_aborts_total counter\n"
        "agents_gateway_client_aborts_total %llu\n"
        "# HELP agents_gateway_body_bytes_total Response body bytes sent to clients.\n# TYPE agents_gateway_body_bytes_total counter\n"
        "agents_gateway_body_bytes_total %llu\n",
        s.clients, s.in_flight, (unsigned long long)s.accepted, (unsigned long long)s.rejected,
        (unsigned long long)s.requests, (unsigned long long)s.status_2xx,
        (unsigned long long)s.status_4xx, (unsigned long long)s.status_5xx,
        (unsigned long long)s.broken_streams, (unsigned long long)s.client_aborts,
        (unsigned long long)s.bytes_out);
    ag_pool_stats ps;
    ag_pool_get_stats(g->c, &ps);
    evbuffer_add_printf(b,
        "# HELP agents_pool_queued Requests waiting in the gateway's queue for a place on a node.\n# TYPE agents_pool_queued gauge\n"
        "agents_pool_queued %u\n"
        "# HELP agents_pool_refused_deadline_total Requests refused at once: they could not start before their deadline.\n"
        "# TYPE agents_pool_refused_deadline_total counter\nagents_pool_refused_deadline_total %llu\n"
        "# HELP agents_pool_followups_total Requests whose session or prompt prefix a node held.\n"
        "# TYPE agents_pool_followups_total counter\nagents_pool_followups_total %llu\n"
        "# HELP agents_pool_followups_stayed_total Of those, sent to the node that held it.\n"
        "# TYPE agents_pool_followups_stayed_total counter\nagents_pool_followups_stayed_total %llu\n",
        ps.queued_now, (unsigned long long)ps.refused_deadline, (unsigned long long)ps.followups,
        (unsigned long long)ps.followups_stayed);
    if (g->kt.n) { /* per client key */
        ag_key_info ki[256];
        size_t nk = ag__gw_key_infos(g, keys_shown(gc), ki, 256);
        if (nk > 256) nk = 256;
        static const char *const kf[][3] = {
            {"agents_key_requests_total", "counter", "Requests admitted for the key."},
            {"agents_key_refused_total", "counter", "Requests refused for the key (429 over a limit, 403 a model not allowed)."},
            {"agents_key_errors_total", "counter", "Admitted requests that failed."},
            {"agents_key_tokens_total", "counter", "Tokens the nodes reported for the key's requests, by kind."},
            {"agents_key_in_flight", "gauge", "The key's requests running now."},
            {"agents_key_waiting", "gauge", "The key's requests waiting for its limits now."},
            {"agents_key_queue_wait_seconds", "gauge", "Mean time from a request's arrival to its start."},
            {"agents_key_ttft_seconds", "summary", "Time to first token of the key's requests."},
        };
        for (size_t f = 0; f < sizeof kf / sizeof kf[0]; f++) {
            evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", kf[f][0], kf[f][2], kf[f][0], kf[f][1]);
            for (size_t i = 0; i < nk; i++) {
                const ag_key_info *x = &ki[i];
                const char *nm = kf[f][0];
                switch (f) {
                case 0: evbuffer_add_printf(b, "%s{key=\"%s\"} %llu\n", nm, x->name, (unsigned long long)x->requests); break;
                case 1: evbuffer_add_printf(b, "%s{key=\"%s\"} %llu\n", nm, x->name, (unsigned long long)x->refused); break;
                case 2: evbuffer_add_printf(b, "%s{key=\"%s\"} %llu\n", nm, x->name, (unsigned long long)x->errors); break;
                case 3:
                    evbuffer_add_printf(b, "%s{key=\"%s\",kind=\"prompt\"} %llu\n%s{key=\"%s\",kind=\"output\"} %llu\n", nm,
                                        x->name, (unsigned long long)x->prompt_tokens, nm, x->name,
                                        (unsigned long long)x->output_tokens);
                    break;
                case 4: evbuffer_add_printf(b, "%s{key=\"%s\"} %u\n", nm, x->name, x->in_flight); break;
                case 5: evbuffer_add_printf(b, "%s{key=\"%s\"} %u\n", nm, x->name, x->waiting); break;
                case 6: evbuffer_add_printf(b, "%s{key=\"%s\"} %.6f\n", nm, x->name, x->queue_wait_ms / 1e3); break;
                default:
                    evbuffer_add_printf(b, "%s{key=\"%s\",quantile=\"0.5\"} %.6f\n%s{key=\"%s\",quantile=\"0.99\"} %.6f\n", nm,
                                        x->name, x->ttft_p50_ms / 1e3, nm, x->name, x->ttft_p99_ms / 1e3);
                }
            }
        }
    }
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n > 256) n = 256;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"agents_node_up", "gauge", "1 when the node is up or not yet probed, 0 when down or ejected."},
        {"agents_node_in_flight", "gauge", "Requests running on the node."},
        {"agents_node_requests_total", "counter", "Attempts sent to the node."},
        {"agents_node_errors_total", "counter", "Attempts that failed through the node's fault."},
        {"agents_node_retries_total", "counter", "Attempts it received as a failover target."},
        {"agents_node_tokens_total", "counter", "Output tokens it produced (its eval_count; chunks where it reports none)."},
        {"agents_node_tokens_per_second", "gauge", "One stream's decode rate: tokens over the node's busy time (not its throughput)."},
        {"agents_node_latency_ewma_seconds", "gauge", "Peak-EWMA latency the router uses."},
        {"agents_node_ttft_seconds", "summary", "Time to first token."},
        {"agents_node_itl_seconds", "summary", "Gap between consecutive tokens."},
        {"agents_node_e2e_seconds", "summary", "Whole request time."},
        {"agents_node_affinity_hits_total", "counter", "Requests routed to the node by their session (X-Session-Id)."},
        {"agents_node_prefix_hits_total", "counter", "Requests routed to the node by the prompt prefix it holds."},
        {"agents_node_sessions", "gauge", "Session keys routed to the node lately (its affinity table)."},
        {"agents_node_prefix_table_entries", "gauge", "Entries used in the node's affinity table."},
        {"agents_node_prefix_table_bytes", "gauge", "Memory of the node's affinity table."},
        {"agents_node_slots", "gauge", "What the node runs at once as the pool holds it (source: stated, said, learned, max)."},
        {"agents_node_learn_waits_total", "counter", "Streamed answers seen waiting inside the node for a place."},
        {"agents_node_info", "gauge", "1 per node, with its state and, when down or ejected, the reason (its last failure)."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (size_t i = 0; i < n; i++) {
            const ag_node_info *x = &info[i];
            const char *nm = x->name;
            switch (f) {
            case 0: evbuffer_add_printf(b, "%s{node=\"%s\"} %d\n", fam[f].name, nm, x->state <= AG_NODE_UP); break;
            case 1: evbuffer_add_printf(b, "%s{node=\"%s\"} %u\n", fam[f].name, nm, x->in_flight); break;
            case 2: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->requests); break;
            case 3: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->errors); break;
            case 4: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->retries); break;
            case 5: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->tokens); break;
            case 6: evbuffer_add_printf(b, "%s{node=\"%s\"} %.3f\n", fam[f].name, nm, x->tokens_per_s); break;
            case 7: evbuffer_add_printf(b, "%s{node=\"%s\"} %.6f\n", fam[f].name, nm, x->ewma_ms / 1e3); break;
            case 11:
                evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->affinity_hits);
                break;
            case 12: evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->prefix_hits); break;
            case 13: evbuffer_add_printf(b, "%s{node=\"%s\"} %zu\n", fam[f].name, nm, x->sessions); break;
            case 14: evbuffer_add_printf(b, "%s{node=\"%s\"} %zu\n", fam[f].name, nm, x->prefix_entries); break;
            case 15: evbuffer_add_printf(b, "%s{node=\"%s\"} %zu\n", fam[f].name, nm, x->prefix_bytes); break;
            case 16:
                evbuffer_add_printf(b, "%s{node=\"%s\",source=\"%s\"} %u\n", fam[f].name, nm, x->slots_source, x->slots);
                break;
            case 17:
                evbuffer_add_printf(b, "%s{node=\"%s\"} %llu\n", fam[f].name, nm, (unsigned long long)x->learn_waits);
                break;
            case 18: {
                evbuffer_add_printf(b, "%s{node=\"%s\",state=\"%s\",version=\"", fam[f].name, nm, ag_node_state_name(x->state));
                for (const char *c = x->version; c && *c; c++)
                    if (*c != '"' && *c != '\\' && *c != '\n') evbuffer_add(b, c, 1);
                evbuffer_add_printf(b, "\",reason=\"");
                for (const char *c = x->reason; c && *c; c++) {
                    if (*c == '"' || *c == '\\') evbuffer_add_printf(b, "\\%c", *c);
                    else if (*c != '\n') evbuffer_add(b, c, 1);
                }
                evbuffer_add_printf(b, "\"} 1\n");
                break;
            }
            default: {
                double p50 = f == 8 ? x->ttft_p50_ms : f == 9 ? x->itl_p50_ms : x->e2e_p50_ms;
                double p99 = f == 8 ? x->ttft_p99_ms : f == 9 ? x->itl_p99_ms : x->e2e_p99_ms;
                evbuffer_add_printf(b, "%s{node=\"%s\",quantile=\"0.5\"} %.6f\n%s{node=\"%s\",quantile=\"0.99\"} %.6f\n",
                                    fam[f].name, nm, p50 / 1e3, fam[f].name, nm, p99 / 1e3);
            }
            }
        }
    }
    ag__obs_metrics(g, keys_shown(gc), b); /* the histograms and token counters, the access log, OTLP */
}

static void jstr(const ag_alloc_funcs *a, yajl_gen y, const char *s) { ag__gen_text(a, y, s, strlen(s)); }
static void jnum(const ag_alloc_funcs *a, yajl_gen y, const char *k, double v) {
    jstr(a, y, k);
    if (!isfinite(v)) v = 0;
    yajl_gen_double(y, v);
}
static void jint(const ag_alloc_funcs *a, yajl_gen y, const char *k, uint64_t v) {
    jstr(a, y, k);
    yajl_gen_integer(y, (long long)v);
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void ag__gw_history_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    ag_gateway *g = arg;
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n > 256) n = 256;
    uint64_t tok = 0;
    unsigned inf = 0;
    for (size_t i = 0; i < n; i++) {
        tok += info[i].tokens;
        inf += info[i].in_flight;
    }
    ag_pool_stats ps;
    ag_pool_get_stats(g->c, &ps);
    uint32_t at = g->hi.head;
    g->hi.tps[at] = (float)(tok >= g->hi.last_tokens ? tok - g->hi.last_tokens : 0);
    g->hi.in_flight[at] = (float)inf;
    g->hi.queued[at] = (float)ps.queued_now;
    g->hi.head = (at + 1) % AG__HIST_N;
    if (g->hi.n < AG__HIST_N) g->hi.n++;
    g->hi.last_tokens = tok;
    /* each node's tokens, for its throughput over the last seconds */
    uint32_t s = g->hi.nsnap++ % 6;
    g->hi.snap[s].n = n;
    for (size_t i = 0; i < n; i++) {
        g->hi.snap[s].h[i] = name_hash(info[i].name);
        g->hi.snap[s].tok[i] = info[i].tokens;
    }
}

/* tokens a second the node delivered over all its streams, over the last
 * (up to) 5 s of samples; 0 before two samples */
static double node_throughput(const ag_gateway *g, const ag_node_info *x) {
    uint32_t have = g->hi.nsnap < 6 ? g->hi.nsnap : 6;
    if (have < 2) return 0;
    uint32_t oldest = (g->hi.nsnap - have) % 6;
    uint64_t h = name_hash(x->name);
    for (size_t i = 0; i < g->hi.snap[oldest].n; i++)
        if (g->hi.snap[oldest].h[i] == h) {
            uint64_t was = g->hi.snap[oldest].tok[i];
            return x->tokens > was ? (double)(x->tokens - was) / (double)(have - 1) : 0;
        }
    return 0;
}

static void hist_series(const ag_alloc_funcs *a, yajl_gen y, const char *k, const ag_gateway *g, const float *v) {
    jstr(a, y, k);
    yajl_gen_array_open(y);
    for (uint32_t i = 0; i < g->hi.n; i++) {
        uint32_t at = (g->hi.head + AG__HIST_N - g->hi.n + i) % AG__HIST_N;
        yajl_gen_integer(y, (long long)v[at]);
    }
    yajl_gen_array_close(y);
}

int ag__gw_dash_json(ag_gateway *g, const gconn *gc, char **out, size_t *len) {
    yajl_gen y = ag__gen_new(g->a);
    if (!y) return AG_ENOMEM;
    ag_gateway_stats s;
    ag_gateway_get_stats(g, &s);
    yajl_gen_map_open(y);
    jstr(g->a, y, "version");
    jstr(g->a, y, AG_VERSION_STRING);
    jnum(g->a, y, "uptime_s", (double)(ag__now_ns() - g->t0) / 1e9);
    jstr(g->a, y, "gateway");
    yajl_gen_map_open(y);
    jint(g->a, y, "clients", s.clients);
    jint(g->a, y, "in_flight", s.in_flight);
    jint(g->a, y, "connections", s.accepted);
    jint(g->a, y, "rejected", s.rejected);
    jint(g->a, y, "requests", s.requests);
    jint(g->a, y, "status_2xx", s.status_2xx);
    jint(g->a, y, "status_4xx", s.status_4xx);
    jint(g->a, y, "status_5xx", s.status_5xx);
    jint(g->a, y, "broken_streams", s.broken_streams);
    jint(g->a, y, "client_aborts", s.client_aborts);
    jint(g->a, y, "bytes_out", s.bytes_out);
    yajl_gen_map_close(y);
    ag_pool_stats ps;
    ag_pool_get_stats(g->c, &ps);
    jstr(g->a, y, "pool");
    yajl_gen_map_open(y);
    jint(g->a, y, "routed", ps.routed);
    jint(g->a, y, "retried", ps.retried);
    jint(g->a, y, "queued_now", ps.queued_now);
    jint(g->a, y, "rejected_queue_full", ps.rejected_queue_full);
    jint(g->a, y, "refused_deadline", ps.refused_deadline);
    jint(g->a, y, "followups", ps.followups);
    jint(g->a, y, "followups_stayed", ps.followups_stayed);
    yajl_gen_map_close(y);
    jstr(g->a, y, "history"); /* oldest first, one a second */
    yajl_gen_map_open(y);
    jint(g->a, y, "interval_s", 1);
    hist_series(g->a, y, "tokens_per_s", g, g->hi.tps);
    hist_series(g->a, y, "in_flight", g, g->hi.in_flight);
    hist_series(g->a, y, "queued", g, g->hi.queued);
    yajl_gen_map_close(y);
    jstr(g->a, y, "keys");
    yajl_gen_array_open(y);
    ag_key_info ki[256];
    size_t nk = ag__gw_key_infos(g, keys_shown(gc), ki, 256);
    for (size_t i = 0; i < nk && i < 256; i++) {
        const ag_key_info *x = &ki[i];
        yajl_gen_map_open(y);
        jstr(g->a, y, "name");
        jstr(g->a, y, x->name);
        jstr(g->a, y, "priority");
        jstr(g->a, y, x->priority > 0 ? "interactive" : x->priority < 0 ? "batch" : "default");
        jint(g->a, y, "requests", x->requests);
        jint(g->a, y, "refused", x->refused);
        jint(g->a, y, "errors", x->errors);
        jint(g->a, y, "in_flight", x->in_flight);
        jint(g->a, y, "waiting", x->waiting);
        jint(g->a, y, "prompt_tokens", x->prompt_tokens);
        jint(g->a, y, "output_tokens", x->output_tokens);
        jnum(g->a, y, "queue_wait_ms", x->queue_wait_ms);
        jnum(g->a, y, "ttft_p50_ms", x->ttft_p50_ms);
        jnum(g->a, y, "ttft_p99_ms", x->ttft_p99_ms);
        yajl_gen_map_close(y);
    }
    yajl_gen_array_close(y);
    jstr(g->a, y, "nodes");
    yajl_gen_array_open(y);
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n > 256) n = 256;
    for (size_t i = 0; i < n; i++) {
        const ag_node_info *x = &info[i];
        yajl_gen_map_open(y);
        jstr(g->a, y, "name");
        jstr(g->a, y, x->name);
        jstr(g->a, y, "state");
        jstr(g->a, y, ag_node_state_name(x->state));
        jstr(g->a, y, "version");
        jstr(g->a, y, x->version);
        jint(g->a, y, "in_flight", x->in_flight);
        jint(g->a, y, "max_in_flight", x->max_in_flight);
        jint(g->a, y, "slots", x->slots);
        jstr(g->a, y, "slots_source");
        jstr(g->a, y, x->slots_source);
        jint(g->a, y, "learn_samples", x->learn_samples);
        jint(g->a, y, "learn_waits", x->learn_waits);
        jint(g->a, y, "requests", x->requests);
        jint(g->a, y, "affinity_hits", x->affinity_hits);
        jint(g->a, y, "prefix_hits", x->prefix_hits);
        jint(g->a, y, "sessions", x->sessions);
        jint(g->a, y, "prefix_entries", x->prefix_entries);
        jint(g->a, y, "prefix_bytes", x->prefix_bytes);
        jint(g->a, y, "errors", x->errors);
        jint(g->a, y, "retries", x->retries);
        jint(g->a, y, "tokens", x->tokens);
        jnum(g->a, y, "tokens_per_s", x->tokens_per_s); /* one stream's decode rate (over its busy time) */
        jnum(g->a, y, "throughput_tps", node_throughput(g, x)); /* all its streams, the last seconds */
        jstr(g->a, y, "reason");
        jstr(g->a, y, x->reason ? x->reason : "");
        jnum(g->a, y, "state_s", x->state_ms / 1e3);
        jnum(g->a, y, "ewma_ms", x->ewma_ms);
        jnum(g->a, y, "ttft_p50_ms", x->ttft_p50_ms);
        jnum(g->a, y, "ttft_p99_ms", x->ttft_p99_ms);
        jnum(g->a, y, "itl_p50_ms", x->itl_p50_ms);
        jnum(g->a, y, "itl_p99_ms", x->itl_p99_ms);
        jnum(g->a, y, "e2e_p50_ms", x->e2e_p50_ms);
        jnum(g->a, y, "e2e_p99_ms", x->e2e_p99_ms);
        jstr(g->a, y, "models");
        yajl_gen_array_open(y);
        for (size_t k = 0; k < x->n_models; k++) jstr(g->a, y, x->models[k]);
        yajl_gen_array_close(y);
        jstr(g->a, y, "loaded");
        yajl_gen_array_open(y);
        for (size_t k = 0; k < x->n_loaded; k++) jstr(g->a, y, x->loaded[k]);
        yajl_gen_array_close(y);
        yajl_gen_map_close(y);
    }
    yajl_gen_array_close(y);
    yajl_gen_map_close(y);
    *out = ag__gen_take(g->a, y, len);
    return *out ? 0 : AG_ENOMEM;
}
