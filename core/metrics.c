/* core/metrics.c - log-linear latency histograms. */
#include "core/internal.h"

static int bucket_of(int64_t ns) {
    uint64_t v = ns < 1000 ? 1000 : (uint64_t)ns; /* floor: 1 us */
    v /= 1000 / AG__HIST_SUB;                       /* units of 1/8 us */
    int msb = 63 - __builtin_clzll(v);              /* v >= 8, so msb >= 3 */
    int sub = (int)((v >> (msb - 3)) & (AG__HIST_SUB - 1));
    int b = (msb - 3) * AG__HIST_SUB + sub;
    return b < AG__HIST_BUCKETS ? b : AG__HIST_BUCKETS - 1;
}

/* the upper bound of bucket b, in ns */
static int64_t bucket_top(int b) {
    int msb = b / AG__HIST_SUB + 3, sub = b % AG__HIST_SUB;
    uint64_t v = ((uint64_t)(AG__HIST_SUB + sub + 1)) << (msb - 3);
    return (int64_t)(v * (1000 / AG__HIST_SUB));
}

void ag__hist_add(ag__hist *h, int64_t ns) {
    if (ns < 0) ns = 0;
    h->b[bucket_of(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns > h->max) h->max = ns;
}

int64_t ag__hist_quantile(const ag__hist *h, double q) {
    if (!h->count) return 0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.5);
    if (want < 1) want = 1;
    uint64_t seen = 0;
    for (int b = 0; b < AG__HIST_BUCKETS; b++) {
        seen += h->b[b];
        if (seen >= want) {
            int64_t top = bucket_top(b);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
