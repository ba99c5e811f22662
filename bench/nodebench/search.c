/* bench/nodebench/search.c - `agents bench --slo-search` (the highest load
 * that meets every objective) and `agents bench compare` (two saved
 * reports, and whether each difference is beyond the runs' noise). */
#include "nodebench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

enum { M_TTFT, M_ITL, M_TPOT, M_E2E };

int nb_objectives_parse(const char *s, nb_objective *o, int max) {
    int n = 0;
    char buf[512];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        if (n == max) return -1;
        char *eq = strchr(t, '=');
        if (!eq) return -1;
        *eq = 0;
        char *us = strchr(t, '_');
        const char *q = us ? us + 1 : "mean";
        if (us) *us = 0;
        nb_objective *x = &o[n];
        if (!strcmp(t, "ttft")) x->metric = M_TTFT;
        else if (!strcmp(t, "itl")) x->metric = M_ITL;
        else if (!strcmp(t, "tpot")) x->metric = M_TPOT;
        else if (!strcmp(t, "e2e")) x->metric = M_E2E;
        else return -1;
        if (!strcmp(q, "mean")) x->q = 0;
        else if (!strcmp(q, "p50")) x->q = 50;
        else if (!strcmp(q, "p90")) x->q = 90;
        else if (!strcmp(q, "p95")) x->q = 95;
        else if (!strcmp(q, "p99")) x->q = 99;
        else return -1;
        char *e;
        double v = strtod(eq + 1, &e);
        if (e == eq + 1 || !(v > 0)) return -1;
        if (!strcmp(e, "s")) v *= 1000;
        else if (!strcmp(e, "us")) v /= 1000;
        else if (strcmp(e, "ms") && *e) return -1;
        x->ms = v;
        n++;
    }
    return n ? n : -1;
}

static double objective_value(const nb_point *p, const nb_objective *o) {
    const nb_stats *s = o->metric == M_TTFT ? &p->ttft : o->metric == M_ITL ? &p->itl : o->metric == M_TPOT ? &p->tpot : &p->e2e;
    return o->q == 50 ? s->p50 : o->q == 90 ? s->p90 : o->q == 95 ? s->p95 : o->q == 99 ? s->p99 : s->mean;
}

/* 1: every objective met and nothing failed; *close: a value within 10 % of its limit */
static int meets(const nb_point *p, const nb_objective *o, int n, int *close) {
    int ok = p->failed == 0 && p->ok > 0;
    *close = 0;
    for (int i = 0; i < n; i++) {
        double v = objective_value(p, &o[i]);
        if (!(v <= o[i].ms)) ok = 0;
        if (fabs(v - o[i].ms) <= 0.1 * o[i].ms) *close = 1;
    }
    return ok;
}

static int cmp_point(const void *a, const void *b) {
    const nb_point *x = a, *y = b;
    double lx = x->rate ? x->rate : x->concurrency, ly = y->rate ? y->rate : y->concurrency;
    return lx < ly ? -1 : lx > ly ? 1 : x->repeat_index - y->repeat_index;
}

/* runs one point at load x (a concurrency, or a rate); a close call runs
 * again and passes only if both do */
static int try_load(ag_client *c, const nb_config *cfg, const nb_objective *o, int n, int by_rate, double x,
                    nb_report *out, int *cap) {
    int pass = 1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (out->n_points == *cap) {
            int nc = *cap ? *cap * 2 : 16;
            nb_point *np = realloc(out->points, (size_t)nc * sizeof *np);
            if (!np) return -1;
            out->points = np;
            *cap = nc;
        }
        nb_point *pt = &out->points[out->n_points];
        memset(pt, 0, sizeof *pt);
        int rc = by_rate ? nb_run_point(c, cfg, pt, 0, x) : nb_run_point(c, cfg, pt, (int)x, 0);
        pt->repeat_index = attempt;
        out->n_points++;
        if (rc) return -1;
        int close = 0;
        pass = pass && meets(pt, o, n, &close);
        if (cfg->progress)
            fprintf(stderr, "slo search: %s %g %s%s\n", by_rate ? "rate" : "concurrency", x, pass ? "meets" : "misses",
                    close && !attempt ? " (close: again)" : "");
        if (!close || !pass) break;
    }
    return pass;
}

int nb_slo_search(ag_client *c, const nb_config *cfg0, const nb_objective *o, int n, double start_rate, nb_report *out) {
    nb_config cfg = *cfg0;
    nb_config_defaults(&cfg);
    memset(out, 0, sizeof *out);
    out->slo_searched = 1;
    int cap = 0, by_rate = start_rate > 0;
    double x = by_rate ? start_rate : 1, lo = 0, hi = 0, max = by_rate ? 1e5 : 4096;
    /* bracket: double until a load misses */
    while (x <= max) {
        int r = try_load(c, &cfg, o, n, by_rate, x, out, &cap);
        if (r < 0) return AG_ENOMEM;
        if (!r) {
            hi = x;
            break;
        }
        lo = x;
        x *= 2;
    }
    /* bisect between the last that met and the first that missed */
    while (hi > 0 && (by_rate ? hi - lo > (lo > 0 ? 0.05 * lo : 0.05 * hi) : hi - lo > 1)) {
        double mid = by_rate ? (lo + hi) / 2 : floor((lo + hi) / 2);
        int r = try_load(c, &cfg, o, n, by_rate, mid, out, &cap);
        if (r < 0) return AG_ENOMEM;
        if (r) lo = mid;
        else hi = mid;
    }
    out->slo_found = lo;
    out->per_run = out->n_points;
    qsort(out->points, (size_t)out->n_points, sizeof *out->points, cmp_point);
    return 0;
}

/* ---- compare ---- */
static yajl_val load_json(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    char *b = malloc(cap);
    while (b && (k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) {
            char *nb = cap < (1u << 30) ? realloc(b, cap * 2) : NULL;
            if (!nb) {
                free(b);
                b = NULL;
            } else {
                b = nb;
                cap *= 2;
            }
        }
    }
    fclose(f);
    if (!b) {
        snprintf(err, errlen, "%s is too large", path);
        return NULL;
    }
    b[n] = 0;
    char yerr[128];
    yajl_val v = yajl_tree_parse(b, yerr, sizeof yerr);
    free(b);
    if (!v) snprintf(err, errlen, "%s is not JSON", path);
    return v;
}

static double jnum(yajl_val o, const char *a, const char *b) {
    const char *path[] = {a, b, NULL};
    if (!b) path[1] = NULL;
    yajl_val v = yajl_tree_get(o, path, yajl_t_number);
    return v ? YAJL_GET_DOUBLE(v) : NAN;
}

/* the runs' values of metric k at point i, from "repeats" (NULL when absent) */
static yajl_val rep_values(yajl_val root, int i, const char *metric) {
    const char *path[] = {"repeats", NULL};
    yajl_val reps = yajl_tree_get(root, path, yajl_t_array);
    if (!reps || (size_t)i >= reps->u.array.len) return NULL;
    const char *p2[] = {"metrics", metric, "values", NULL};
    return yajl_tree_get(reps->u.array.values[i], p2, yajl_t_array);
}

static void mean_var(yajl_val a, double *m, double *v, int *n) {
    *m = *v = 0;
    *n = (int)a->u.array.len;
    for (int i = 0; i < *n; i++) *m += YAJL_GET_DOUBLE(a->u.array.values[i]);
    *m /= *n ? *n : 1;
    for (int i = 0; i < *n; i++) {
        double d = YAJL_GET_DOUBLE(a->u.array.values[i]) - *m;
        *v += d * d;
    }
    *v = *n > 1 ? *v / (*n - 1) : 0;
}

static double tq(double df) { /* 97.5 % quantile of Student's t, df possibly fractional */
    static const double t[] = {0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086};
    int d = (int)floor(df);
    return d < 1 ? 12.706 : d <= 20 ? t[d] : d <= 30 ? 2.05 : 1.96;
}

int nb_compare(const char *pa, const char *pb, FILE *out) {
    char err[256];
    yajl_val a = load_json(pa, err, sizeof err), b = a ? load_json(pb, err, sizeof err) : NULL;
    if (!a || !b) {
        fprintf(stderr, "compare: %s\n", err);
        yajl_tree_free(a);
        return -1;
    }
    const char *pp[] = {"points", NULL};
    yajl_val A = yajl_tree_get(a, pp, yajl_t_array), B = yajl_tree_get(b, pp, yajl_t_array);
    if (!A || !B) {
        fprintf(stderr, "compare: not an agents bench report (no \"points\")\n");
        yajl_tree_free(a);
        yajl_tree_free(b);
        return -1;
    }
    const char *ra[] = {"runs", NULL};
    yajl_val na = yajl_tree_get(a, ra, yajl_t_number), nbv = yajl_tree_get(b, ra, yajl_t_number);
    int runs_a = na ? (int)YAJL_GET_INTEGER(na) : 1, runs_b = nbv ? (int)YAJL_GET_INTEGER(nbv) : 1;
    size_t per_a = A->u.array.len / (size_t)(runs_a > 0 ? runs_a : 1), per_b = B->u.array.len / (size_t)(runs_b > 0 ? runs_b : 1);
    size_t n = per_a < per_b ? per_a : per_b;
    static const struct {
        const char *rep, *obj, *sub, *label;
        int lower_better;
    } m[] = {{"requests_per_s", "requests_per_s", NULL, "requests/s", 0},
             {"output_tokens_per_s", "output_tokens_per_s", NULL, "output tokens/s", 0},
             {"ttft_p50_ms", "ttft_ms", "p50", "TTFT p50 ms", 1},
             {"ttft_p99_ms", "ttft_ms", "p99", "TTFT p99 ms", 1},
             {"tpot_p50_ms", "tpot_ms", "p50", "TPOT p50 ms", 1},
             {"itl_p50_ms", "itl_ms", "p50", "ITL p50 ms", 1},
             {"e2e_p50_ms", "e2e_ms", "p50", "E2E p50 ms", 1},
             {"e2e_p99_ms", "e2e_ms", "p99", "E2E p99 ms", 1}};
    fprintf(out, "A = %s (%d run%s), B = %s (%d run%s)\n", pa, runs_a, runs_a == 1 ? "" : "s", pb, runs_b,
            runs_b == 1 ? "" : "s");
    /* each side's run: when, with what, against which nodes */
    for (int side = 0; side < 2; side++) {
        const char *mp[] = {"meta", NULL};
        yajl_val m = yajl_tree_get(side ? b : a, mp, yajl_t_object);
        if (!m) {
            fprintf(out, "  %s: no metadata (a report from before they were recorded)\n", side ? "B" : "A");
            continue;
        }
        const char *sp[] = {"started_at", NULL}, *vp[] = {"version", NULL}, *cp[] = {"command", NULL},
                   *hp[] = {"cpus", NULL}, *np[] = {"nodes", NULL};
        yajl_val st = yajl_tree_get(m, sp, yajl_t_string), ve = yajl_tree_get(m, vp, yajl_t_string),
                 cm = yajl_tree_get(m, cp, yajl_t_string), cpus = yajl_tree_get(m, hp, yajl_t_number),
                 nodes = yajl_tree_get(m, np, yajl_t_array);
        fprintf(out, "  %s: %s, agents %s, %lld CPU(s): %s\n", side ? "B" : "A", st ? YAJL_GET_STRING(st) : "?",
                ve ? YAJL_GET_STRING(ve) : "?", cpus ? YAJL_GET_INTEGER(cpus) : 0LL, cm ? YAJL_GET_STRING(cm) : "?");
        for (size_t i = 0; nodes && i < nodes->u.array.len; i++) {
            const char *nn[] = {"name", NULL}, *nv[] = {"version", NULL}, *nm[] = {"models", NULL};
            yajl_val x = nodes->u.array.values[i];
            yajl_val name = yajl_tree_get(x, nn, yajl_t_string), ver = yajl_tree_get(x, nv, yajl_t_string),
                     models = yajl_tree_get(x, nm, yajl_t_array);
            fprintf(out, "     node %s (%s), %zu model(s)\n", name ? YAJL_GET_STRING(name) : "?",
                    ver && *YAJL_GET_STRING(ver) ? YAJL_GET_STRING(ver) : "version unknown", models ? models->u.array.len : 0);
        }
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val pa_ = A->u.array.values[i], pb_ = B->u.array.values[i];
        double ca = jnum(pa_, "concurrency", NULL), rta = jnum(pa_, "rate", NULL);
        fprintf(out, "\n== point %zu: %s %g\n", i, rta > 0 ? "rate" : "concurrency", rta > 0 ? rta : ca);
        fprintf(out, "  %-16s %12s %12s %9s  %s\n", "", "A", "B", "B vs A", "beyond noise (Welch's t, 95 %)");
        for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
            yajl_val va = rep_values(a, (int)i, m[k].rep), vb = rep_values(b, (int)i, m[k].rep);
            double xa, xb, sa = 0, sb = 0;
            int ka = 1, kb = 1;
            if (va && vb && va->u.array.len > 1 && vb->u.array.len > 1) {
                mean_var(va, &xa, &sa, &ka);
                mean_var(vb, &xb, &sb, &kb);
            } else {
                xa = jnum(pa_, m[k].obj, m[k].sub);
                xb = jnum(pb_, m[k].obj, m[k].sub);
            }
            double d = xa ? (xb - xa) / xa * 100 : 0;
            char verdict[64];
            if (ka > 1 && kb > 1) {
                double se2 = sa / ka + sb / kb, t = se2 > 0 ? fabs(xb - xa) / sqrt(se2) : (xa == xb ? 0 : INFINITY);
                double df = se2 > 0 ? se2 * se2 / ((sa / ka) * (sa / ka) / (ka - 1) + (sb / kb) * (sb / kb) / (kb - 1) + 1e-300) : 1;
                int beyond = t > tq(df);
                int better = m[k].lower_better ? xb < xa : xb > xa;
                snprintf(verdict, sizeof verdict, "%s%s", beyond ? "yes: " : "no", beyond ? (better ? "B better" : "B worse") : "");
            } else {
                snprintf(verdict, sizeof verdict, "unknown (run both with --repeat)");
            }
            fprintf(out, "  %-16s %12.3f %12.3f %+8.1f%%  %s\n", m[k].label, xa, xb, d, verdict);
        }
    }
    yajl_tree_free(a);
    yajl_tree_free(b);
    return 0;
}
