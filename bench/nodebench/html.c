/* bench/nodebench/html.c - the HTML report: one page, inline SVG, no scripts. */
#include "nodebench_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

static const char *palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

typedef struct series {
    const double *x, *y;
    size_t n;
    const char *label;
} series;

static double nice_max(double v) {
    if (v <= 0) return 1;
    double p = pow(10, floor(log10(v)));
    double m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* a line chart: axes, ticks, one polyline per series, a legend */
static void svg_lines(FILE *f, const char *title, const char *xl, const char *yl, const series *s, int ns, int steps) {
    const double W = 560, H = 300, L = 60, R = 20, T = 30, B = 45;
    double xmax = 0, ymax = 0;
    for (int i = 0; i < ns; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            if (s[i].x[k] > xmax) xmax = s[i].x[k];
            if (s[i].y[k] > ymax) ymax = s[i].y[k];
        }
    xmax = nice_max(xmax);
    ymax = nice_max(ymax);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/><text x=\"%.0f\" y=\"18\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", L, title);
    for (int t = 0; t <= 5; t++) {
        double y = T + (H - T - B) * (1 - t / 5.0), x = L + (W - L - R) * t / 5.0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, y, W - R, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%g</text>", L - 4, y + 3, ymax * t / 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%g</text>\n", x, H - B + 14, xmax * t / 5);
    }
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#000\"/><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#000\"/>\n",
            L, H - B, W - R, H - B, L, T, L, H - B);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">%s</text>", (L + W - R) / 2, H - 8, xl);
    fprintf(f, "<text x=\"12\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 %.0f)\">%s</text>\n",
            (T + H - B) / 2, (T + H - B) / 2, yl);
    for (int i = 0; i < ns; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", palette[i % 8]);
        double px = L, py = H - B;
        for (size_t k = 0; k < s[i].n; k++) {
            double x = L + (W - L - R) * s[i].x[k] / xmax, y = H - B - (H - T - B) * s[i].y[k] / ymax;
            if (steps && k) fprintf(f, "%.1f,%.1f ", x, py);
            fprintf(f, "%.1f,%.1f ", x, y);
            px = x;
            py = y;
        }
        (void)px;
        fprintf(f, "\"/>");
        if (s[i].n == 1 || !steps) /* points for sweeps */
            for (size_t k = 0; k < s[i].n && !steps; k++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", L + (W - L - R) * s[i].x[k] / xmax,
                        H - B - (H - T - B) * s[i].y[k] / ymax, palette[i % 8]);
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%s</text>\n",
                W - R - 150, T + 4 + 15.0 * i, palette[i % 8], W - R - 136, T + 13 + 15.0 * i, s[i].label);
    }
    fprintf(f, "</svg>\n");
}

/* ---- the scraped server metrics, charted over the point's time ---- */
typedef struct mseries {
    char *key;  /* "url name{labels}" */
    const char *name; /* into key: the metric's own name and labels */
    double *t, *v;
    size_t n, cap;
    int counter; /* a _total: charted as a rate */
} mseries;
typedef struct mset {
    mseries *s;
    size_t n, cap, cursor;
} mset;

static mseries *ms_get(mset *m, const char *url, const char *name) {
    size_t ul = strlen(url), nl = strlen(name);
    /* the samples list their lines in the same order: try the next first */
    for (size_t probe = 0; probe < m->n; probe++) {
        mseries *x = &m->s[(m->cursor + probe) % m->n];
        if (strncmp(x->key, url, ul) == 0 && x->key[ul] == ' ' && strcmp(x->key + ul + 1, name) == 0) {
            m->cursor = (size_t)(x - m->s) + 1;
            return x;
        }
    }
    if (m->n >= 4096) return NULL;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        mseries *ns = realloc(m->s, nc * sizeof *ns);
        if (!ns) return NULL;
        m->s = ns;
        m->cap = nc;
    }
    mseries *x = &m->s[m->n];
    memset(x, 0, sizeof *x);
    x->key = malloc(ul + nl + 2);
    if (!x->key) return NULL;
    memcpy(x->key, url, ul);
    x->key[ul] = ' ';
    memcpy(x->key + ul + 1, name, nl + 1);
    x->name = x->key + ul + 1;
    const char *brace = strchr(name, '{');
    size_t base = brace ? (size_t)(brace - name) : nl;
    x->counter = base > 6 && strncmp(name + base - 6, "_total", 6) == 0;
    m->n++;
    m->cursor = m->n;
    return x;
}

static void ms_add(mset *m, const char *url, const char *name, double t, double v) {
    mseries *x = ms_get(m, url, name);
    if (!x || x->n >= 1000) return;
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        double *nt = realloc(x->t, nc * sizeof *nt);
        if (!nt) return;
        x->t = nt;
        double *nv = realloc(x->v, nc * sizeof *nv);
        if (!nv) return;
        x->v = nv;
        x->cap = nc;
    }
    x->t[x->n] = t;
    x->v[x->n++] = v;
}

/* how much a chart of it says about serving: the queue and the batch first */
static int ms_rank(const mseries *x) {
    static const char *const words[] = {"waiting", "running", "queue", "in_flight", "cache", "kv", "preempt",
                                        "swapped", "tokens", "requests", "models loaded", "VRAM"};
    for (int i = 0; i < (int)(sizeof words / sizeof words[0]); i++)
        if (strstr(x->name, words[i])) return i;
    return 100;
}

static int ms_skip(const mseries *x) {
    if (x->n < 2 || strstr(x->name, "_bucket") || strstr(x->name, "_created") || strstr(x->name, "quantile=") ||
        strstr(x->name, "_sum") || strstr(x->name, "_count") || strstr(x->name, "_info"))
        return 1;
    for (size_t k = 1; k < x->n; k++)
        if (x->v[k] != x->v[0]) return 0;
    return 1; /* a flat line says nothing */
}

/* s with HTML's special characters escaped, into out (cut to fit) */
static const char *html_esc(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : *s == '"' ? "&quot;" : NULL;
        if (e) {
            memcpy(out + o, e, strlen(e));
            o += strlen(e);
        } else {
            out[o++] = *s;
        }
    }
    out[o] = 0;
    return out;
}

/* Up to 12 charts of the series that moved during the point: gauges as they
 * were, counters (_total) as rates per second, Ollama's /api/ps as the models
 * loaded and their VRAM. */
static void html_scraped(FILE *f, const nb_point *p, const char *label) {
    char err[128];
    if (strlen(p->scraped) > ((size_t)32 << 20)) { /* a parsed tree is many times that: the JSON has it all */
        fprintf(f, "<p>Server metrics during the run (%s): too many samples to chart here; they are in the JSON report.</p>\n", label);
        return;
    }
    yajl_val root = yajl_tree_parse(p->scraped, err, sizeof err);
    if (!root || !YAJL_IS_ARRAY(root)) {
        yajl_tree_free(root);
        return;
    }
    mset m = {0};
    for (size_t i = 0; i < root->u.array.len; i++) {
        yajl_val smp = root->u.array.values[i];
        const char *tp[] = {"t_s", NULL}, *up[] = {"url", NULL}, *mp[] = {"metrics", NULL}, *jp[] = {"json", NULL};
        yajl_val t = yajl_tree_get(smp, tp, yajl_t_number), u = yajl_tree_get(smp, up, yajl_t_string);
        if (!t || !u) continue;
        const double ts = YAJL_GET_DOUBLE(t);
        const char *url = YAJL_GET_STRING(u);
        yajl_val mo = yajl_tree_get(smp, mp, yajl_t_object), jo = yajl_tree_get(smp, jp, yajl_t_object);
        if (mo)
            for (size_t k = 0; k < mo->u.object.len; k++)
                if (YAJL_IS_NUMBER(mo->u.object.values[k])) ms_add(&m, url, mo->u.object.keys[k], ts, YAJL_GET_DOUBLE(mo->u.object.values[k]));
        const char *modp[] = {"models", NULL};
        yajl_val models = jo ? yajl_tree_get(jo, modp, yajl_t_array) : NULL;
        if (models) {
            double vram = 0;
            for (size_t k = 0; k < models->u.array.len; k++) {
                const char *vp[] = {"size_vram", NULL};
                yajl_val v = yajl_tree_get(models->u.array.values[k], vp, yajl_t_number);
                if (v) vram += YAJL_GET_DOUBLE(v);
            }
            ms_add(&m, url, "models loaded", ts, (double)models->u.array.len);
            ms_add(&m, url, "VRAM of the loaded models (GiB)", ts, vram / 1073741824.0);
        }
    }
    yajl_tree_free(root);
    /* the charts: by rank, then in the order first seen */
    size_t order[12];
    int nc = 0;
    int *rank = malloc((m.n + 1) * sizeof *rank);
    for (size_t i = 0; rank && i < m.n; i++) rank[i] = ms_skip(&m.s[i]) ? -1 : ms_rank(&m.s[i]);
    for (int want = 0; rank && want <= 100 && nc < 12; want++)
        for (size_t i = 0; i < m.n && nc < 12; i++)
            if (rank[i] == want) order[nc++] = i;
    free(rank);
    if (nc) {
        fprintf(f, "<h2>Server metrics during the run (%s)</h2><p>Every sample is in the JSON report (\"scraped\"); "
                   "charted here: up to 12 series that moved, counters (<code>_total</code>) as rates per second.</p>"
                   "<div class=\"charts\">\n", label);
    }
    for (int c = 0; c < nc; c++) {
        mseries *x = &m.s[order[c]];
        double *y = malloc(x->n * sizeof *y);
        if (!y) break;
        for (size_t k = 0; k < x->n; k++) {
            if (!x->counter) y[k] = x->v[k] > 0 ? x->v[k] : 0;
            else if (k == 0) y[k] = 0;
            else {
                double dt = x->t[k] - x->t[k - 1], d = x->v[k] - x->v[k - 1];
                y[k] = dt > 0 && d > 0 ? d / dt : 0; /* (a reset counts as nothing) */
            }
        }
        char title[200], etitle[1200], src[120], esrc[720];
        snprintf(title, sizeof title, "%.150s%s", x->name, x->counter ? " per s" : "");
        snprintf(src, sizeof src, "%.*s", (int)(x->name - x->key - 1), x->key); /* the url before the name */
        series sr = {x->t, y, x->n, html_esc(esrc, sizeof esrc, src)};
        svg_lines(f, html_esc(etitle, sizeof etitle, title), "seconds into the point", x->counter ? "per second" : "value", &sr, 1, 0);
        free(y);
    }
    if (nc) fprintf(f, "</div>\n");
    for (size_t i = 0; i < m.n; i++) {
        free(m.s[i].key);
        free(m.s[i].t);
        free(m.s[i].v);
    }
    free(m.s);
}

/* CDF of v (sorted copy), downsampled to at most 400 points */
static void cdf_of(const double *v0, size_t n, double **x, double **y, size_t *m) {
    double *v = malloc((n + 1) * sizeof *v);
    memcpy(v, v0, n * sizeof *v);
    qsort(v, n, sizeof *v, nb__cmp_d);
    size_t step = n > 400 ? n / 400 : 1;
    *m = 0;
    *x = malloc((n / step + 2) * sizeof **x);
    *y = malloc((n / step + 2) * sizeof **y);
    for (size_t i = 0; i < n; i += step) {
        (*x)[*m] = v[i];
        (*y)[*m] = (double)(i + 1) / n;
        (*m)++;
    }
    if (n && (*x)[*m - 1] != v[n - 1]) {
        (*x)[*m] = v[n - 1];
        (*y)[*m] = 1;
        (*m)++;
    }
    free(v);
}

static void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* the run's metadata as a table: when, what, where, against which nodes */
static void html_meta(FILE *f, const char *meta) {
    yajl_val m = yajl_tree_parse(meta, NULL, 0);
    if (!m) return;
    static const char *keys[][2] = {{"started_at", "started"}, {"version", "agents"}, {"command", "command"},
                                    {"host", "machine"}, {"cpus", "CPUs"}};
    fputs("<table class=\"meta\">", f);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *p[] = {keys[i][0], NULL};
        yajl_val v = yajl_tree_get(m, p, yajl_t_any);
        if (!v) continue;
        fprintf(f, "<tr><th>%s</th><td style=\"text-align:left\">", keys[i][1]);
        if (YAJL_IS_STRING(v)) html_text(f, YAJL_GET_STRING(v));
        else if (YAJL_IS_NUMBER(v)) fprintf(f, "%lld", YAJL_GET_INTEGER(v));
        fputs("</td></tr>", f);
    }
    const char *np[] = {"nodes", NULL};
    yajl_val nodes = yajl_tree_get(m, np, yajl_t_array);
    for (size_t i = 0; nodes && i < nodes->u.array.len; i++) {
        yajl_val n = nodes->u.array.values[i];
        const char *pn[] = {"name", NULL}, *pv[] = {"version", NULL}, *pm[] = {"models", NULL};
        yajl_val nm = yajl_tree_get(n, pn, yajl_t_string), ver = yajl_tree_get(n, pv, yajl_t_string);
        yajl_val ms = yajl_tree_get(n, pm, yajl_t_array);
        fputs("<tr><th>node</th><td style=\"text-align:left\">", f);
        html_text(f, nm ? YAJL_GET_STRING(nm) : "?");
        fputs(" (", f);
        html_text(f, ver && *YAJL_GET_STRING(ver) ? YAJL_GET_STRING(ver) : "version unknown");
        fputs(")", f);
        for (size_t k = 0; ms && k < ms->u.array.len; k++) {
            fputs(k ? ", " : ": ", f);
            if (YAJL_IS_STRING(ms->u.array.values[k])) html_text(f, YAJL_GET_STRING(ms->u.array.values[k]));
        }
        fputs("</td></tr>", f);
    }
    fputs("</table>\n", f);
    yajl_tree_free(m);
}

int nb_write_html(const char *path, const nb_config *cfg, const nb_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return AG_EINVAL;
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>agents bench: %s</title>\n"
               "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}"
               "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
               ".charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>\n",
            cfg->model);
    fprintf(f, "<h1>agents bench</h1><p>model <b>%s</b>, endpoint %s, %d warm-up request(s), agents %s</p>\n", cfg->model,
            cfg->endpoint == NB_EMBED ? "embed" : cfg->endpoint == NB_GENERATE ? "generate" : "chat", cfg->warmup, ag_version());
    if (cfg->meta_json) html_meta(f, cfg->meta_json);
    fprintf(f, "<table><tr><th>point</th><th>ok</th><th>failed</th><th>req/s</th><th>tokens/s</th><th>goodput req/s</th>"
               "<th>TTFT p50</th><th>TTFT p99</th><th>ITL p50</th><th>TPOT p50</th><th>E2E p50</th><th>E2E p99</th><th>network+queue</th>"
               "<th>send lag p99</th><th>tool CPU</th><th>self-check</th></tr>\n");
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        char name[64];
        if (cfg->trace) snprintf(name, sizeof name, "trace");
        else if (p->rate) snprintf(name, sizeof name, "rate %g/s", p->rate);
        else snprintf(name, sizeof name, "concurrency %d", p->concurrency);
        if (r->n_points > r->per_run) snprintf(name + strlen(name), sizeof name - strlen(name), " (run %d)", p->repeat_index + 1);
        fprintf(f, "<tr><td>%s</td><td>%zu</td><td>%zu</td><td>%.2f</td><td>%.1f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
                   "<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.3f</td><td>%.0f %%</td><td>%s%s</td></tr>\n",
                name, p->ok, p->failed, p->req_per_s, p->tok_per_s, p->goodput_req_per_s, p->ttft.p50, p->ttft.p99, p->itl.p50,
                p->tpot.p50, p->e2e.p50, p->e2e.p99, p->net_queue_ms, p->send_lag.p99, 100 * p->cpu_share,
                p->flagged ? "<b>FLAGGED</b>: " : "ok", p->flagged ? p->flag_why : "");
    }
    fprintf(f, "</table><p>Latencies in milliseconds, measured by the client at its socket callbacks. Self-check: a point "
               "is flagged when its requests left more than 1 ms (p99) behind their schedule or the tool used over 90 %% of "
               "a core: its figures may then be the tool's, not the server's; the reason names the hypervisor's steal or a "
               "machine with no core to spare when there was one.</p>\n");
    if (r->slo_searched)
        fprintf(f, "<p><b>SLO search</b>: the highest %s meeting every objective is <b>%g</b> (the points tried are above).</p>\n",
                r->points[0].rate ? "rate" : "concurrency", r->slo_found);
    fprintf(f, "<div class=\"charts\">\n");
    int np = r->n_points < 8 ? r->n_points : 8;
    series ttft[8], e2e[8];
    double *bufs[32];
    int nb = 0;
    char labels[8][48];
    for (int i = 0; i < np; i++) {
        const nb_point *p = &r->points[i];
        double *v = malloc((p->n_reqs + 1) * sizeof *v), *w = malloc((p->n_reqs + 1) * sizeof *w);
        size_t a = 0, b = 0;
        for (size_t k = 0; k < p->n_reqs; k++)
            if (!p->reqs[k].status) {
                if (p->reqs[k].ttft_ms >= 0) v[a++] = p->reqs[k].ttft_ms;
                w[b++] = p->reqs[k].end_ms - p->reqs[k].start_ms;
            }
        if (p->rate) snprintf(labels[i], sizeof labels[i], "rate %g", p->rate);
        else snprintf(labels[i], sizeof labels[i], "concurrency %d", p->concurrency);
        double *x, *y;
        size_t m;
        cdf_of(v, a, &x, &y, &m);
        ttft[i] = (series){x, y, m, labels[i]};
        bufs[nb++] = x;
        bufs[nb++] = y;
        cdf_of(w, b, &x, &y, &m);
        e2e[i] = (series){x, y, m, labels[i]};
        bufs[nb++] = x;
        bufs[nb++] = y;
        free(v);
        free(w);
    }
    if (cfg->endpoint != NB_EMBED) svg_lines(f, "TTFT, cumulative distribution", "time to first token (ms)", "fraction of requests", ttft, np, 1);
    svg_lines(f, "End-to-end latency, cumulative distribution", "end to end (ms)", "fraction of requests", e2e, np, 1);
    /* ITL histogram of the last point: 40 bins up to its p99 x 1.5 */
    const nb_point *last = &r->points[r->n_points - 1];
    if (cfg->endpoint != NB_EMBED && last->n_itl) {
        double hi = last->itl.p99 * 1.5 > 0 ? last->itl.p99 * 1.5 : 1, bx[40], by[40];
        size_t cnt[40] = {0};
        for (size_t k = 0; k < last->n_itl; k++) {
            int bin = (int)(last->itl_ms[k] / hi * 40);
            if (bin >= 40) bin = 39;
            if (bin < 0) bin = 0;
            cnt[bin]++;
        }
        for (int k = 0; k < 40; k++) {
            bx[k] = hi * (k + 0.5) / 40;
            by[k] = (double)cnt[k];
        }
        series s = {bx, by, 40, "inter-token gaps"};
        svg_lines(f, "Inter-token latency, histogram (last point)", "gap between tokens (ms)", "gaps", &s, 1, 1);
    }
    if (r->n_points > 1) { /* the sweep */
        double x[64], thr[64], p99[64];
        int n = r->n_points < 64 ? r->n_points : 64;
        for (int i = 0; i < n; i++) {
            x[i] = r->points[i].rate ? r->points[i].rate : r->points[i].concurrency;
            thr[i] = r->points[i].tok_per_s;
            p99[i] = r->points[i].ttft.p99;
        }
        const char *xl = r->points[0].rate ? "offered rate (requests/s)" : "concurrency";
        series a = {x, thr, (size_t)n, "output tokens/s"}, b = {x, p99, (size_t)n, "p99 TTFT (ms)"};
        svg_lines(f, "Throughput against load", xl, "output tokens/s", &a, 1, 0);
        svg_lines(f, "p99 TTFT against load", xl, "ms", &b, 1, 0);
    }
    fprintf(f, "</div>\n");
    for (int i = 0, shown = 0; i < r->n_points && shown < 4; i++) /* (a sweep: its first points) */
        if (r->points[i].scraped) {
            char label[64];
            if (r->points[i].rate) snprintf(label, sizeof label, "rate %g", r->points[i].rate);
            else if (cfg->trace) snprintf(label, sizeof label, "trace");
            else snprintf(label, sizeof label, "concurrency %d", r->points[i].concurrency);
            html_scraped(f, &r->points[i], label);
            shown++;
        }
    if (last->n_nodes > 1) {
        fprintf(f, "<h2>Per node (last point)</h2><table><tr><th>node</th><th>requests</th><th>errors</th><th>TTFT p50</th>"
                   "<th>TTFT p99</th><th>E2E p50</th><th>E2E p99</th><th>tokens/s</th><th>prompt cache hit</th></tr>\n");
        double nx[64], ny[64];
        size_t nn = last->n_nodes < 64 ? last->n_nodes : 64;
        for (size_t j = 0; j < nn; j++) {
            const nb_node *d = &last->nodes[j];
            char hit[16] = "-";
            if (d->cache_hit >= 0) snprintf(hit, sizeof hit, "%.1f %%", 100 * d->cache_hit);
            fprintf(f, "<tr><td>%s</td><td>%zu</td><td>%zu</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.1f</td><td>%s</td></tr>\n",
                    d->name, d->requests, d->errors, d->ttft.p50, d->ttft.p99, d->e2e.p50, d->e2e.p99, d->tok_per_s, hit);
            nx[j] = (double)(j + 1);
            ny[j] = d->ttft.p50;
        }
        fprintf(f, "</table><div class=\"charts\">");
        series s = {nx, ny, nn, "TTFT p50 (ms) by node number"};
        svg_lines(f, "TTFT p50 per node", "node (as listed above)", "ms", &s, 1, 0);
        fprintf(f, "</div>\n");
    }
    fprintf(f, "</body></html>\n");
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return fclose(f) == 0 ? 0 : AG_EINVAL;
}
