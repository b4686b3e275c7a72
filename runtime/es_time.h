/* es_time — the monotonic clock, for deadlines, back-offs and durations (never for timestamps
 * written anywhere: those are wall-clock time). */
#ifndef ES_TIME_H
#define ES_TIME_H

#include <time.h>

/* Milliseconds of the monotonic clock. */
static inline long long es_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds of the monotonic clock. */
static inline double es_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
