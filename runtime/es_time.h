/* es_time — the monotonic clock, for deadlines, back-offs and durations, and the wall clock, for
 * the timestamps written in events, rows and answers (never for measuring time). */
#ifndef ES_TIME_H
#define ES_TIME_H

#include <stdlib.h>
#include <time.h>

/* Milliseconds of the monotonic clock. */
static inline long long es_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch (the wall clock). */
static inline long long es_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds of the monotonic clock. */
static inline double es_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The next wait of a capped exponential back-off with jitter: *ceiling doubles from min_ms up to
 * max_ms (set it to 0 after a success), and the wait is drawn between half the ceiling and the
 * ceiling, so that replicas failing together do not retry together. seed is rand_r's state. */
static inline long es_backoff_next(long *ceiling, long min_ms, long max_ms, unsigned *seed)
{
    *ceiling = *ceiling ? *ceiling * 2 : min_ms;
    if (*ceiling > max_ms)
        *ceiling = max_ms;
    return *ceiling / 2 + rand_r(seed) % (*ceiling / 2 + 1);
}

#endif
