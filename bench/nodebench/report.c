/* bench/nodebench/report.c - repeated runs (mean, spread, confidence), the
 * terminal table, the JSON and CSV reports. */
#include "nodebench_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- repeated runs: mean, spread, confidence ---- */
static double t95(int df) { /* two-sided 95 % quantile of Student's t */
    static const double t[] = {0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    return df < 1 ? 0 : df <= 30 ? t[df] : 1.96;
}

typedef struct spread {
    double mean, sd, cv, lo, hi;
} spread;

static spread spread_of(const double *v, int n) {
    spread s = {0, 0, 0, 0, 0};
    if (n < 1) return s;
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    s.cv = s.mean ? s.sd / fabs(s.mean) : 0;
    double h = n > 1 ? t95(n - 1) * s.sd / sqrt(n) : 0;
    s.lo = s.mean - h;
    s.hi = s.mean + h;
    return s;
}

/* the figures a repeat summarises, by name, from a point */
static const char *const rep_names[] = {"requests_per_s", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms",
                                        "tpot_p50_ms", "itl_p50_ms", "e2e_p50_ms", "e2e_p99_ms"};
#define N_REP 8
static double rep_value(const nb_point *p, int k) {
    switch (k) {
    case 0: return p->req_per_s;
    case 1: return p->tok_per_s;
    case 2: return p->ttft.p50;
    case 3: return p->ttft.p99;
    case 4: return p->tpot.p50;
    case 5: return p->itl.p50;
    case 6: return p->e2e.p50;
    default: return p->e2e.p99;
    }
}

void nb_report_free(nb_report *r) {
    for (int i = 0; i < r->n_points; i++) {
        free(r->points[i].reqs);
        free(r->points[i].nodes);
        free(r->points[i].itl_ms);
        free(r->points[i].scraped);
    }
    free(r->points);
    memset(r, 0, sizeof *r);
}

/* ---- the terminal table ---- */
static void row(FILE *f, const char *name, const nb_stats *s) {
    fprintf(f, "  %-10s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, s->mean, s->p50, s->p90, s->p95, s->p99, s->max);
}

void nb_print_table(FILE *f, const nb_config *cfg, const nb_report *r) {
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        const char *arr = cfg->arrival == NB_CONSTANT ? "constant" : cfg->arrival == NB_GAMMA ? "gamma" : "Poisson";
        if (cfg->trace) {
            char speed[48] = "";
            if (cfg->trace_speed > 0 && cfg->trace_speed != 1) snprintf(speed, sizeof speed, " (%gx as fast)", cfg->trace_speed);
            fprintf(f, "\n== trace replay, %zu requests on their recorded schedule%s\n", cfg->items->n, speed);
        }
        else if (p->rate)
            fprintf(f, "\n== open loop, %.3g requests/s (%s%s)%s\n", p->rate, arr, cfg->ramp_up > 0 ? ", ramped up" : "",
                    r->n_points > r->per_run ? "" : "");
        else fprintf(f, "\n== closed loop, concurrency %d\n", p->concurrency);
        fprintf(f, "  requests %zu ok, %zu failed in %.2f s: %.2f req/s, %.1f output tokens/s", p->ok, p->failed,
                p->wall_s, p->req_per_s, p->tok_per_s);
        if (cfg->slo_ttft_ms || cfg->slo_tpot_ms || cfg->slo_e2e_ms)
            fprintf(f, ", goodput %.2f req/s (%zu within the SLOs)", p->goodput_req_per_s, p->good);
        fprintf(f, "\n  %-10s %9s %9s %9s %9s %9s %9s   (ms)\n", "", "mean", "p50", "p90", "p95", "p99", "max");
        if (cfg->endpoint != NB_EMBED) {
            row(f, "TTFT", &p->ttft);
            row(f, "ITL", &p->itl);
            row(f, "TPOT", &p->tpot);
        }
        row(f, "E2E", &p->e2e);
        if (cfg->turns > 1) row(f, "TTFT t>1", &p->ttft_later);
        if (p->cache_hit >= 0 && cfg->endpoint != NB_EMBED)
            fprintf(f, "  prompt cache: %.1f %% of the prompt tokens sent were not evaluated (from prompt_eval_count)\n",
                    100 * p->cache_hit);
        fprintf(f, "  server (means): total %.2f ms = load %.2f + prompt eval %.2f + eval %.2f (+ other); "
                   "client saw %.2f ms more (network and queue)\n",
                p->srv_total_ms, p->srv_load_ms, p->srv_prompt_ms, p->srv_eval_ms, p->net_queue_ms);
        for (int e = 1; e < 32; e++)
            if (p->errors[e]) fprintf(f, "  errors %s: %zu\n", ag_err_name(-e), p->errors[e]);
        if (p->i_ok + p->i_failed > 0)
            fprintf(f, "  interactive class (beside the load, which ran as batch): %zu ok, %zu failed, %.2f req/s, "
                       "TTFT p50 %.2f p99 %.2f ms\n",
                    p->i_ok, p->i_failed, p->i_req_per_s, p->i_ttft.p50, p->i_ttft.p99);
        if (p->n_nodes > 1)
            for (size_t j = 0; j < p->n_nodes; j++)
                fprintf(f, "  node %-22s %6zu req %4zu err  TTFT p50 %8.2f p99 %8.2f  E2E p50 %8.2f p99 %8.2f  %.1f tok/s  cache %s%.0f%%"
                           "  slots %u %s\n",
                        p->nodes[j].name, p->nodes[j].requests, p->nodes[j].errors, p->nodes[j].ttft.p50,
                        p->nodes[j].ttft.p99, p->nodes[j].e2e.p50, p->nodes[j].e2e.p99, p->nodes[j].tok_per_s,
                        p->nodes[j].cache_hit < 0 ? "-" : "", p->nodes[j].cache_hit < 0 ? 0 : 100 * p->nodes[j].cache_hit,
                        p->nodes[j].slots, p->nodes[j].slots ? p->nodes[j].slots_source : "-");
        fprintf(f, "  the tool's own CPU: %.0f ns per token, %.1f %% of a core", p->overhead_ns_per_token, 100 * p->cpu_share);
        if (p->machine_busy >= 0)
            fprintf(f, "; the machine: %.0f %% busy, %.1f %% stolen", 100 * p->machine_busy, 100 * p->steal_share);
        if (p->send_lag.n)
            fprintf(f, "; send lag against the schedule p50 %.3f p99 %.3f max %.3f ms", p->send_lag.p50, p->send_lag.p99,
                    p->send_lag.max);
        fprintf(f, "\n  self-check: %s%s\n", p->flagged ? "FLAGGED, the figures may be the tool's: " : "ok",
                p->flagged ? p->flag_why : "");
        if (p->in_len_ratio >= 0)
            fprintf(f, "  input lengths: the server counted %.3f tokens per token asked\n", p->in_len_ratio);
    }
    if (r->n_points > r->per_run && r->per_run > 0) {
        int runs = r->n_points / r->per_run;
        for (int i = 0; i < r->per_run; i++) {
            const nb_point *p0 = &r->points[i];
            fprintf(f, "\n== over %d runs: %s %g (mean, coefficient of variation, 95 %% confidence interval)\n", runs,
                    p0->rate ? "rate" : "concurrency", p0->rate ? p0->rate : (double)p0->concurrency);
            for (int k = 0; k < N_REP; k++) {
                double v[256];
                int m = 0;
                for (int j = 0; j < runs && m < 256; j++) v[m++] = rep_value(&r->points[j * r->per_run + i], k);
                spread sp = spread_of(v, m);
                fprintf(f, "  %-20s %12.3f  CV %5.1f %%  [%.3f, %.3f]\n", rep_names[k], sp.mean, 100 * sp.cv, sp.lo, sp.hi);
            }
        }
    }
    if (r->slo_searched) {
        if (r->slo_found > 0)
            fprintf(f, "\n== SLO search: the highest %s meeting every objective is %g\n",
                    r->points[0].rate ? "rate" : "concurrency", r->slo_found);
        else
            fprintf(f, "\n== SLO search: no load tried meets every objective\n");
    }
}

/* ---- JSON ---- */
static void jstats(FILE *f, const char *name, const nb_stats *s, int comma) {
    fprintf(f, "\"%s\":{\"n\":%zu,\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p95\":%.4f,\"p99\":%.4f,\"max\":%.4f}%s",
            name, s->n, s->mean, s->p50, s->p90, s->p95, s->p99, s->max, comma ? "," : "");
}

void nb__jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

int nb_write_json(const char *path, const nb_config *cfg, const nb_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return AG_EINVAL;
    fprintf(f, "{\"tool\":\"agents bench\",\"version\":\"%s\",", ag_version());
    if (cfg->meta_json) fprintf(f, "\"meta\":%s,", cfg->meta_json);
    fprintf(f, "\"model\":");
    nb__jstr(f, cfg->model);
    fprintf(f, ",\"arrival\":\"%s\",\"burstiness\":%g,\"ramp_up_s\":%g,\"trace\":%s,\"trace_speed\":%g",
            cfg->arrival == NB_CONSTANT ? "constant" : cfg->arrival == NB_GAMMA ? "gamma" : "poisson",
            cfg->arrival == NB_GAMMA ? (cfg->burstiness > 0 ? cfg->burstiness : 1) : 1, cfg->ramp_up, cfg->trace ? "true" : "false",
            cfg->trace_speed > 0 ? cfg->trace_speed : 1);
    fprintf(f, ",\"turns\":%d,\"shared_prefix_tokens\":%d,\"turn_tokens\":%d,\"context_tokens\":%d,\"think_ms\":%.1f,"
               "\"session_keys\":%s",
            cfg->turns, cfg->shared_prefix, cfg->turn_tokens, cfg->context_tokens, cfg->think_ms, cfg->turns > 1 && !cfg->no_session ? "true" : "false");
    fprintf(f, ",\"endpoint\":\"%s\",\"max_tokens\":%d,\"warmup\":%d,\"seed\":%llu,\"slo\":{\"ttft_ms\":%g,\"tpot_ms\":%g,\"e2e_ms\":%g},\"points\":[",
            cfg->endpoint == NB_EMBED ? "embed" : cfg->endpoint == NB_GENERATE ? "generate" : "chat", cfg->max_tokens,
            cfg->warmup, (unsigned long long)cfg->seed, cfg->slo_ttft_ms, cfg->slo_tpot_ms, cfg->slo_e2e_ms);
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        fprintf(f, "%s{\"mode\":\"%s\",\"concurrency\":%d,\"rate\":%g,\"ok\":%zu,\"failed\":%zu,\"errors\":{", i ? "," : "",
                p->rate ? "open" : "closed", p->concurrency, p->rate, p->ok, p->failed);
        int first = 1;
        for (int e = 1; e < 32; e++)
            if (p->errors[e]) {
                fprintf(f, "%s\"%s\":%zu", first ? "" : ",", ag_err_name(-e), p->errors[e]);
                first = 0;
            }
        fprintf(f, "},\"duration_s\":%.4f,\"requests_per_s\":%.4f,\"output_tokens\":%llu,\"output_tokens_per_s\":%.3f,"
                   "\"goodput_requests_per_s\":%.4f,\"within_slo\":%zu,",
                p->wall_s, p->req_per_s, (unsigned long long)p->tokens, p->tok_per_s, p->goodput_req_per_s, p->good);
        jstats(f, "ttft_ms", &p->ttft, 1);
        jstats(f, "itl_ms", &p->itl, 1);
        jstats(f, "tpot_ms", &p->tpot, 1);
        jstats(f, "e2e_ms", &p->e2e, 1);
        jstats(f, "ttft_later_turns_ms", &p->ttft_later, 1);
        jstats(f, "send_lag_ms", &p->send_lag, 1);
        fprintf(f, "\"self_check\":{\"cpu_share\":%.4f,\"machine_busy\":%.4f,\"steal_share\":%.4f,\"flagged\":%s,\"why\":",
                p->cpu_share, p->machine_busy, p->steal_share, p->flagged ? "true" : "false");
        nb__jstr(f, p->flag_why);
        fprintf(f, "},\"input_len_ratio\":%.4f,\"repeat\":%d,", p->in_len_ratio, p->repeat_index);
        if (p->scraped) fprintf(f, "\"scraped\":%s,", p->scraped);
        fprintf(f, "\"prompt_cache_hit\":%.4f,", p->cache_hit);
        if (p->i_ok + p->i_failed > 0) {
            fprintf(f, "\"interactive\":{\"requests\":%zu,\"failed\":%zu,\"requests_per_s\":%.4f,", p->i_ok, p->i_failed,
                    p->i_req_per_s);
            jstats(f, "ttft_ms", &p->i_ttft, 0);
            fprintf(f, "},");
        }
        fprintf(f, "\"server_ms\":{\"total\":%.4f,\"load\":%.4f,\"prompt_eval\":%.4f,\"eval\":%.4f},\"network_and_queue_ms\":%.4f,"
                   "\"overhead_ns_per_token\":%.1f,\"nodes\":[",
                p->srv_total_ms, p->srv_load_ms, p->srv_prompt_ms, p->srv_eval_ms, p->net_queue_ms, p->overhead_ns_per_token);
        for (size_t j = 0; j < p->n_nodes; j++) {
            fprintf(f, "%s{\"name\":", j ? "," : "");
            nb__jstr(f, p->nodes[j].name);
            fprintf(f, ",\"requests\":%zu,\"errors\":%zu,\"output_tokens_per_s\":%.3f,\"prompt_cache_hit\":%.4f,",
                    p->nodes[j].requests, p->nodes[j].errors, p->nodes[j].tok_per_s, p->nodes[j].cache_hit);
            if (p->nodes[j].slots) {
                fprintf(f, "\"slots\":%u,\"slots_source\":", p->nodes[j].slots);
                nb__jstr(f, p->nodes[j].slots_source);
                fputc(',', f);
            }
            jstats(f, "ttft_ms", &p->nodes[j].ttft, 1);
            jstats(f, "e2e_ms", &p->nodes[j].e2e, 0);
            fputc('}', f);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]");
    if (r->n_points > r->per_run && r->per_run > 0) { /* --repeat: each point's figures over the runs */
        int runs = r->n_points / r->per_run;
        fprintf(f, ",\"runs\":%d,\"repeats\":[", runs);
        for (int i = 0; i < r->per_run; i++) {
            fprintf(f, "%s{\"point\":%d,\"metrics\":{", i ? "," : "", i);
            for (int k = 0; k < N_REP; k++) {
                double v[256];
                int m = 0;
                for (int j = 0; j < runs && m < 256; j++) v[m++] = rep_value(&r->points[j * r->per_run + i], k);
                spread sp = spread_of(v, m);
                fprintf(f, "%s\"%s\":{\"mean\":%.6g,\"sd\":%.6g,\"cv\":%.6g,\"ci95\":[%.6g,%.6g],\"values\":[", k ? "," : "",
                        rep_names[k], sp.mean, sp.sd, sp.cv, sp.lo, sp.hi);
                for (int j = 0; j < m; j++) fprintf(f, "%s%.6g", j ? "," : "", v[j]);
                fprintf(f, "]}");
            }
            fprintf(f, "}}");
        }
        fprintf(f, "]");
    }
    if (r->slo_searched) fprintf(f, ",\"slo_search\":{\"found\":%g}", r->slo_found);
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : AG_EINVAL;
}

int nb_write_csv(const char *path, const nb_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return AG_EINVAL;
    fprintf(f, "point,concurrency,rate,request,start_ms,first_token_ms,end_ms,ttft_ms,e2e_ms,tokens,status,"
               "server_total_ms,server_load_ms,server_prompt_eval_ms,server_eval_ms,node,send_lag_ms,repeat,prompt_eval_count\n");
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        for (size_t k = 0; k < p->n_reqs; k++) {
            const nb_req *q = &p->reqs[k];
            fprintf(f, "%d,%d,%g,%zu,%.3f,%.3f,%.3f,%.3f,%.3f,%d,%s,%.3f,%.3f,%.3f,%.3f,%s,%.4f,%d,%lld\n", i, p->concurrency, p->rate,
                    k, q->start_ms, q->ttft_ms >= 0 ? q->start_ms + q->ttft_ms : -1, q->end_ms, q->ttft_ms,
                    q->end_ms - q->start_ms, q->tokens, q->status ? ag_err_name(q->status) : "OK", q->srv_total_ms,
                    q->srv_load_ms, q->srv_prompt_ms, q->srv_eval_ms, q->node, q->send_lag_ms, p->repeat_index,
                    (long long)q->prompt_evaluated);
        }
    }
    return fclose(f) == 0 ? 0 : AG_EINVAL;
}

