/* es_retry — the one retry loop for a call that may fail for a moment (a broker just back from a
 * hang answers "unknown partition" or "not coordinator"): attempts with a capped, jittered
 * back-off (es_backoff_next) until one succeeds, fails for good, a deadline passes or a stop is
 * asked. */
#ifndef ES_RETRY_H
#define ES_RETRY_H

#include "es_err.h"
#include <signal.h>

/* What one attempt returns. */
enum {
    ES_RETRY_GIVE_UP = -1, /* failed, and another attempt would fail the same way */
    ES_RETRY_DONE = 0,     /* succeeded */
    ES_RETRY_AGAIN = 1,    /* failed, perhaps for a moment: worth another attempt */
};

typedef struct es_retry {
    const char *what;      /* logged before each wait: "<what>: <err> (again in N ms)" */
    long long deadline_ms; /* es_mono_ms() past which no attempt follows a failure */
    long min_ms, max_ms;   /* the back-off's first and largest ceiling */
    const volatile sig_atomic_t *stop; /* once set, no attempt follows a failure; may be NULL */
    void (*heartbeat)(void);           /* called before each wait; may be NULL */
} es_retry_t;

/* Calls attempt(arg, err), with err cleared before each call, until it returns ES_RETRY_DONE
 * (then 0), or ES_RETRY_GIVE_UP, or ES_RETRY_AGAIN with *r->stop set or r->deadline_ms passed
 * (then -1, err holding the last attempt's error). Between attempts it logs a warning naming
 * r->what and the error, and waits out the back-off in slices that end early on *r->stop. At least
 * one attempt is made. r and arg are borrowed; err may be NULL. */
int es_retry_until(const es_retry_t *r, int (*attempt)(void *arg, es_err_t *err), void *arg,
                   es_err_t *err);

#endif
