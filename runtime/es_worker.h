/* es_worker — one thread that does slow work (a broker's or a database's round trips) away from
 * the threads that must not block: a queue of jobs under a mutex and a condition variable, and a
 * callback run on the worker's thread with the jobs posted since its last run. The callback
 * completes them (hands each result back to its owner, e.g. es_http_complete); the worker never
 * looks inside a job.
 *
 * The callback may also ask to be run again after a delay with no new job (a watcher that polls
 * only while someone waits); asked for nothing, the thread sleeps on its condition variable until
 * the next post or wake: an idle worker takes no CPU.
 *
 * Thread-safe: post and wake from any thread. */
#ifndef ES_WORKER_H
#define ES_WORKER_H

#include "es_err.h"
#include <stddef.h>

typedef struct es_worker es_worker_t;

/* What a run returns when it wants no run before the next post or wake. */
#define ES_WORKER_IDLE (-1)

/* Runs on the worker's thread, without the worker's lock. jobs: the n jobs posted since the last
 * run, in their order (the array is borrowed for the call, the jobs are the callback's); n is 0
 * when the run was woken (es_worker_wake) or came due. Returns the milliseconds after which to
 * run again if nothing is posted before (0: at once), or ES_WORKER_IDLE. */
typedef int (*es_worker_run_fn)(void *arg, void **jobs, size_t n);
/* At es_worker_free, on its caller's thread: the n jobs posted but never run (borrowed array),
 * for their owner to fail them. */
typedef void (*es_worker_drop_fn)(void *arg, void **jobs, size_t n);

/* Starts the thread (name, borrowed, for messages), idle until the first post or wake. arg is
 * handed to run and drop; drop may be NULL when no job can be left over. NULL with err. */
es_worker_t *es_worker_new(const char *name, es_worker_run_fn run, es_worker_drop_fn drop,
                           void *arg, es_err_t *err);
/* Stops the thread after the run in progress, if any, and joins it; then drops the jobs left.
 * NULL is a no-op. */
void es_worker_free(es_worker_t *w);

/* Queues job (owned by the callback from now on) and wakes the thread: the next run has it. */
void es_worker_post(es_worker_t *w, void *job);
/* Wakes the thread for a run with no job (or with those posted meanwhile), at once after the run
 * in progress, if any, whatever delay that run asks. */
void es_worker_wake(es_worker_t *w);

#endif
