/* es_retry — see es_retry.h. */
#include "es_retry.h"
#include "es_log.h"
#include "es_time.h"
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define RETRY_SLICE_MS 50 /* how soon a stop asked during a wait is seen */

static bool retry_stopped(const es_retry_t *r)
{
    return r->stop && *r->stop;
}

static void retry_wait(const es_retry_t *r, long ms)
{
    long long until = es_mono_ms() + ms;
    for (long long left = ms; left > 0 && !retry_stopped(r); left = until - es_mono_ms()) {
        long slice = left < RETRY_SLICE_MS ? (long)left : RETRY_SLICE_MS;
        nanosleep(&(struct timespec){0, slice * 1000000L}, NULL);
    }
}

int es_retry_until(const es_retry_t *r, int (*attempt)(void *arg, es_err_t *err), void *arg,
                   es_err_t *err)
{
    es_err_t local = ES_ERR_INIT;
    if (!err)
        err = &local;
    long ceiling = 0;
    /* replicas failing together must not retry together */
    unsigned seed = (unsigned)(uintptr_t)arg ^ (unsigned)getpid() ^ (unsigned)es_mono_ms();
    for (;;) {
        es_clear(err);
        int rc = attempt(arg, err);
        if (rc == ES_RETRY_DONE)
            return 0;
        if (rc != ES_RETRY_AGAIN || retry_stopped(r) || es_mono_ms() >= r->deadline_ms)
            return -1;
        long wait_ms = es_backoff_next(&ceiling, r->min_ms, r->max_ms, &seed);
        es_warn("%s: %s (again in %ld ms)", r->what, err->msg, wait_ms);
        if (r->heartbeat)
            r->heartbeat();
        retry_wait(r, wait_ms);
    }
}
