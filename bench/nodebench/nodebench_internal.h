/* bench/nodebench/nodebench_internal.h - what the benchmark's files share:
 * nodebench.c runs a point (the load, its schedule, its requests), stats.c
 * sums it up, scrape.c polls the servers' metrics meanwhile, report.c and
 * html.c write the reports, workload.c and search.c build workloads and
 * search for the SLO knee. */
#ifndef AG_NODEBENCH_INTERNAL_H
#define AG_NODEBENCH_INTERNAL_H
#include "nodebench.h"

#include <stdio.h>

#define MAX_ITL 4000000 /* gap samples kept per point (16 MB) */

/* The machine's CPU time so far, from /proc/stat (Linux): all of it, and
 * what the hypervisor took (steal). 0 where there is no such file. */
typedef struct {
    double total, steal, idle;
} machine_cpu;

/* nodebench.c: the monotonic clock in ms */
double nb__now_ms(void);

/* stats.c */
int nb__cmp_d(const void *a, const void *b);
nb_stats nb__stats_of(double *v, size_t n);
void nb__summarize(const nb_config *cfg, nb_point *pt, double wall_s, double cpu, machine_cpu m0, machine_cpu m1);

/* scrape.c */
typedef struct scraper scraper;
scraper *nb__sc_start(struct event_base *base, const nb_config *cfg, double t0);
/* the point is over: one sample more (what the run added), its answers
 * awaited (bounded: 2 s) */
void nb__sc_finish(scraper *sc, struct event_base *base);
/* stops it; the samples as a JSON array (malloc'd), or NULL */
char *nb__sc_stop(scraper *sc);

/* report.c: a JSON string */
void nb__jstr(FILE *f, const char *s);
#endif
