/* bench/nodebench/stats.c - a point's statistics: percentiles by selection,
 * and the summary of its requests (rates, goodput, server timings, the
 * self-check). */
#include "nodebench_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nb__cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* v[k] as it would be in sorted order, v[lo..hi) rearranged so that what
 * is left of k is <= v[k] and what is right >= (selection with a three-way
 * partition, so runs of equal gaps cost nothing): O(n) on average, where
 * sorting millions of gaps cost more than the run's own bookkeeping */
static double select_k(double *v, size_t lo, size_t hi, size_t k) {
    while (hi - lo > 1) {
        double p = v[lo + (hi - lo) / 2], t;
        size_t lt = lo, i = lo, gt = hi; /* [lo,lt) < p, [lt,i) == p, [gt,hi) > p */
        while (i < gt) {
            if (v[i] < p) {
                t = v[lt], v[lt++] = v[i], v[i++] = t;
            } else if (v[i] > p) {
                t = v[--gt], v[gt] = v[i], v[i] = t;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt;
        else if (k >= gt) lo = gt;
        else return p;
    }
    return v[k];
}

nb_stats nb__stats_of(double *v, size_t n) {
    nb_stats s;
    memset(&s, 0, sizeof s);
    s.n = n;
    if (!n) return s;
    double sum = 0, max = v[0];
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] > max) max = v[i];
    }
    s.mean = sum / n;
    /* each selection narrows the range of the next (the quantiles ascend) */
    size_t k50 = (size_t)(0.5 * (n - 1) + 0.5), k90 = (size_t)(0.9 * (n - 1) + 0.5),
           k95 = (size_t)(0.95 * (n - 1) + 0.5), k99 = (size_t)(0.99 * (n - 1) + 0.5);
    s.p50 = select_k(v, 0, n, k50);
    s.p90 = select_k(v, k50, n, k90);
    s.p95 = select_k(v, k90, n, k95);
    s.p99 = select_k(v, k95, n, k99);
    s.max = max;
    return s;
}

void nb__summarize(const nb_config *cfg, nb_point *pt, double wall_s, double cpu, machine_cpu m0, machine_cpu m1) {
    size_t n = pt->n_reqs;
    double *ttft = calloc(n + 1, sizeof *ttft), *e2e = calloc(n + 1, sizeof *e2e),
           *tpot = calloc(n + 1, sizeof *tpot);
    double *itl = calloc(pt->n_itl + 1, sizeof *itl);
    size_t nt = 0, ne = 0, np = 0, nl = 0;
    double *later = calloc(n + 1, sizeof *later);
    double sent = 0, evaluated = 0;
    double load = 0, prompt = 0, eval = 0, total = 0, net = 0;
    size_t nsrv = 0;
    for (size_t i = 0; i < n; i++) {
        nb_req *q = &pt->reqs[i];
        if (q->status) {
            pt->failed++;
            pt->errors[(-q->status) & 31]++;
            continue;
        }
        pt->ok++;
        pt->tokens += (uint64_t)q->tokens;
        double d = q->end_ms - q->start_ms;
        e2e[ne++] = d;
        if (q->ttft_ms >= 0) ttft[nt++] = q->ttft_ms;
        if (q->ttft_ms >= 0 && q->turn > 1) later[nl++] = q->ttft_ms;
        if (q->prompt_evaluated >= 0 && q->prompt_tokens > 0) {
            sent += q->prompt_tokens;
            evaluated += q->prompt_evaluated < q->prompt_tokens ? (double)q->prompt_evaluated : q->prompt_tokens;
        }
        double tp = q->tokens > 1 && q->ttft_ms >= 0 ? (d - q->ttft_ms) / (q->tokens - 1) : -1;
        if (tp >= 0) tpot[np++] = tp;
        int good = (!cfg->slo_ttft_ms || (q->ttft_ms >= 0 && q->ttft_ms <= cfg->slo_ttft_ms)) &&
                   (!cfg->slo_tpot_ms || (tp >= 0 && tp <= cfg->slo_tpot_ms)) && (!cfg->slo_e2e_ms || d <= cfg->slo_e2e_ms);
        pt->good += good;
        if (q->srv_total_ms >= 0) {
            nsrv++;
            total += q->srv_total_ms;
            net += d - q->srv_total_ms;
            load += q->srv_load_ms > 0 ? q->srv_load_ms : 0;
            prompt += q->srv_prompt_ms > 0 ? q->srv_prompt_ms : 0;
            eval += q->srv_eval_ms > 0 ? q->srv_eval_ms : 0;
        }
    }
    for (size_t i = 0; i < pt->n_itl; i++) itl[i] = pt->itl_ms[i];
    pt->ttft = nb__stats_of(ttft, nt);
    pt->ttft_later = nb__stats_of(later, nl);
    /* only where the workload re-sends text (otherwise the estimate of the
     * prompt's size against the server's count says nothing) */
    int resends = cfg->turns > 1 || cfg->shared_prefix > 0;
    pt->cache_hit = sent > 0 && resends ? 1 - evaluated / sent : -1;
    free(later);
    pt->e2e = nb__stats_of(e2e, ne);
    pt->tpot = nb__stats_of(tpot, np);
    pt->itl = nb__stats_of(itl, pt->n_itl);
    pt->wall_s = wall_s;
    pt->req_per_s = wall_s > 0 ? pt->ok / wall_s : 0;
    pt->tok_per_s = wall_s > 0 ? pt->tokens / wall_s : 0;
    pt->goodput_req_per_s = wall_s > 0 ? pt->good / wall_s : 0;
    if (nsrv) {
        pt->srv_total_ms = total / nsrv;
        pt->srv_load_ms = load / nsrv;
        pt->srv_prompt_ms = prompt / nsrv;
        pt->srv_eval_ms = eval / nsrv;
        pt->net_queue_ms = net / nsrv;
    }
    pt->overhead_ns_per_token = pt->tokens ? cpu / (double)pt->tokens * 1e9 : 0;
    /* the self-check: was the tool on time, and was it the bottleneck? */
    int open = pt->rate > 0 || cfg->trace;
    double *lag = calloc(n + 1, sizeof *lag), in_sum = 0;
    size_t nlag = 0, in_n = 0;
    for (size_t i = 0; i < n; i++) {
        nb_req *q = &pt->reqs[i];
        if (open && lag) lag[nlag++] = q->send_lag_ms;
        if (q->in_target > 0 && q->prompt_evaluated > 0) {
            in_sum += (double)q->prompt_evaluated / q->in_target;
            in_n++;
        }
    }
    pt->send_lag = nb__stats_of(lag, nlag);
    free(lag);
    pt->in_len_ratio = in_n ? in_sum / (double)in_n : -1;
    pt->cpu_share = wall_s > 0 ? cpu / wall_s : 0;
    const double mt = m1.total - m0.total;
    pt->steal_share = mt > 0 ? (m1.steal - m0.steal) / mt : -1;
    pt->machine_busy = mt > 0 ? 1 - (m1.idle - m0.idle) / mt : -1;
    pt->flagged = 0;
    pt->flag_why[0] = 0;
    if (open && pt->send_lag.n && pt->send_lag.p99 > 1.0) {
        pt->flagged = 1;
        snprintf(pt->flag_why, sizeof pt->flag_why, "send lag p99 %.2f ms (over 1 ms)", pt->send_lag.p99);
    } else if (pt->cpu_share > 0.9) {
        pt->flagged = 1;
        snprintf(pt->flag_why, sizeof pt->flag_why, "the tool used %.0f %% of a core (saturated)", 100 * pt->cpu_share);
    }
    /* why a point may be late though the tool was idle: the hypervisor took
     * the machine's CPU (steal), or the machine had no core to spare */
    if (pt->flagged && pt->steal_share > 0.01)
        snprintf(pt->flag_why + strlen(pt->flag_why), sizeof pt->flag_why - strlen(pt->flag_why),
                 "; the hypervisor took %.1f %% of the machine's CPU (steal)", 100 * pt->steal_share);
    else if (pt->flagged && pt->machine_busy > 0.9)
        snprintf(pt->flag_why + strlen(pt->flag_why), sizeof pt->flag_why - strlen(pt->flag_why),
                 "; the machine's CPUs were %.0f %% busy", 100 * pt->machine_busy);
    /* per node */
    for (size_t i = 0; i < n; i++) {
        nb_req *q = &pt->reqs[i];
        size_t j = 0;
        while (j < pt->n_nodes && strcmp(pt->nodes[j].name, q->node)) j++;
        if (j == pt->n_nodes) {
            pt->nodes = realloc(pt->nodes, (pt->n_nodes + 1) * sizeof *pt->nodes);
            memset(&pt->nodes[j], 0, sizeof pt->nodes[j]);
            snprintf(pt->nodes[j].name, sizeof pt->nodes[j].name, "%s", q->node);
            pt->n_nodes++;
        }
        pt->nodes[j].requests++;
        if (q->status) pt->nodes[j].errors++;
    }
    for (size_t j = 0; j < pt->n_nodes; j++) {
        nb_node *nd = &pt->nodes[j];
        size_t a = 0, b = 0;
        uint64_t tok = 0;
        for (size_t i = 0; i < n; i++) {
            nb_req *q = &pt->reqs[i];
            if (q->status || strcmp(q->node, nd->name)) continue;
            e2e[b++] = q->end_ms - q->start_ms;
            if (q->ttft_ms >= 0) ttft[a++] = q->ttft_ms;
            tok += (uint64_t)q->tokens;
            if (q->prompt_evaluated >= 0 && q->prompt_tokens > 0) {
                nd->prompt_tokens += q->prompt_tokens;
                nd->prompt_evaluated += q->prompt_evaluated < q->prompt_tokens ? (double)q->prompt_evaluated : q->prompt_tokens;
            }
        }
        nd->cache_hit = nd->prompt_tokens > 0 && resends ? 1 - nd->prompt_evaluated / nd->prompt_tokens : -1;
        nd->ttft = nb__stats_of(ttft, a);
        nd->e2e = nb__stats_of(e2e, b);
        nd->tok_per_s = wall_s > 0 ? tok / wall_s : 0;
    }
    free(ttft);
    free(e2e);
    free(tpot);
    free(itl);
}

