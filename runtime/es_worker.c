/* es_worker — see es_worker.h. */
#include "es_worker.h"
#include "es_mem.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct es_worker {
    es_worker_run_fn run;
    es_worker_drop_fn drop;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a post, a wake or the stop */
    void **jobs;         /* under lock: posted, not yet run */
    size_t n, cap;
    bool woken, stop; /* under lock */
    pthread_t thread;
};

/* Waits (under the lock) for a post, a wake or the stop; when ms >= 0, for ms at most. */
static void es_worker_wait(es_worker_t *w, int ms)
{
    if (ms < 0) {
        while (!w->stop && !w->woken)
            pthread_cond_wait(&w->cond, &w->lock);
        return;
    }
    if (ms == 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!w->stop && !w->woken)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
            break;
}

static void *es_worker_main(void *arg)
{
    es_worker_t *w = arg;
    void **batch = NULL;
    size_t cap = 0;
    int ms = ES_WORKER_IDLE;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        es_worker_wait(w, ms);
        if (w->stop)
            break;
        /* the jobs so far take this run; later ones wait for the next (none is answered by a
         * run begun before it came); the two arrays trade places, so no run allocates */
        void **t = batch;
        size_t c = cap, n = w->n;
        batch = w->jobs;
        cap = w->cap;
        w->jobs = t;
        w->cap = c;
        w->n = 0;
        w->woken = false;
        pthread_mutex_unlock(&w->lock);
        ms = w->run(w->arg, batch, n);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    free(batch);
    return NULL;
}

es_worker_t *es_worker_new(const char *name, es_worker_run_fn run, es_worker_drop_fn drop,
                           void *arg, es_err_t *err)
{
    es_worker_t *w = xcalloc(1, sizeof *w);
    w->run = run;
    w->drop = drop;
    w->arg = arg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, es_worker_main, w)) {
        es_set(err, ES_EINTERNAL, "cannot start the %s thread", name);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void es_worker_free(es_worker_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (w->n && w->drop)
        w->drop(w->arg, w->jobs, w->n);
    free(w->jobs);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void es_worker_post(es_worker_t *w, void *job)
{
    pthread_mutex_lock(&w->lock);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4;
        w->jobs = xrealloc(w->jobs, w->cap * sizeof *w->jobs);
    }
    w->jobs[w->n++] = job;
    w->woken = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void es_worker_wake(es_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->woken = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}
