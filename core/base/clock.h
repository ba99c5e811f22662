/* core/base/clock.h - the monotonic clock every layer measures with. */
#ifndef AG_CORE_BASE_CLOCK_H
#define AG_CORE_BASE_CLOCK_H
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC (vDSO: no system call). */
static inline int64_t ag__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* s seconds as a struct timeval, for libevent's timers */
static inline void ag__timeval(struct timeval *tv, double s) {
    tv->tv_sec = (long)s;
    tv->tv_usec = (long)((s - (double)tv->tv_sec) * 1e6);
}

#endif
