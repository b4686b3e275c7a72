#include "es_worker.h"
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* es_worker: the one thread of the API's activity reading and position watcher and of the
 * registry's broker watcher. */

/* What the test's callbacks saw, under lock; done is signalled on every change. */
struct seen {
    pthread_mutex_t lock;
    pthread_cond_t done;
    pthread_t caller;
    bool other_thread;  /* every run on a thread other than the test's */
    intptr_t order[64]; /* the jobs run, in order */
    int njobs, runs, empty_runs, dropped;
    int next_ms; /* what a run returns */
    bool gate;   /* a run of job 100 waits for it */
    int held;    /* 1: that run is waiting */
};

static void seen_init(struct seen *s, int next_ms)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->done, NULL);
    s->caller = pthread_self();
    s->other_thread = true;
    s->next_ms = next_ms;
}

static int run(void *arg, void **jobs, size_t n)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    s->other_thread = s->other_thread && !pthread_equal(pthread_self(), s->caller);
    s->runs++;
    s->empty_runs += n == 0;
    for (size_t i = 0; i < n; i++) {
        intptr_t j = (intptr_t)jobs[i];
        if (j == 100) {
            s->held = 1;
            pthread_cond_broadcast(&s->done);
            while (!s->gate)
                pthread_cond_wait(&s->done, &s->lock);
        }
        s->order[s->njobs++] = j;
    }
    pthread_cond_broadcast(&s->done);
    int ms = s->next_ms;
    pthread_mutex_unlock(&s->lock);
    return ms;
}

static void drop(void *arg, void **jobs, size_t n)
{
    struct seen *s = arg;
    (void)jobs;
    pthread_mutex_lock(&s->lock);
    s->dropped += (int)n;
    pthread_mutex_unlock(&s->lock);
}

/* Waits until *count reaches want (under s->lock on return). */
static void wait_count(struct seen *s, const int *count, int want)
{
    pthread_mutex_lock(&s->lock);
    while (*count < want)
        pthread_cond_wait(&s->done, &s->lock);
}

Test(es_worker, runs_posted_jobs_in_order_on_its_own_thread, .timeout = 10)
{
    struct seen s;
    seen_init(&s, ES_WORKER_IDLE);
    es_err_t err = ES_ERR_INIT;
    es_worker_t *w = es_worker_new("test", run, drop, &s, &err);
    cr_assert_not_null(w, "%s", err.msg);
    for (intptr_t j = 1; j <= 5; j++)
        es_worker_post(w, (void *)j);
    wait_count(&s, &s.njobs, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(s.order[i], i + 1);
    cr_assert(s.other_thread);
    cr_assert_eq(s.empty_runs, 0);
    pthread_mutex_unlock(&s.lock);
    es_worker_free(w);
    cr_assert_eq(s.dropped, 0);
}

Test(es_worker, jobs_posted_during_a_run_take_the_next_one_together, .timeout = 10)
{
    struct seen s;
    seen_init(&s, ES_WORKER_IDLE);
    es_worker_t *w = es_worker_new("test", run, drop, &s, NULL);
    es_worker_post(w, (void *)100);
    wait_count(&s, &s.held, 1); /* the first run is under way */
    pthread_mutex_unlock(&s.lock);
    es_worker_post(w, (void *)2);
    es_worker_post(w, (void *)3);
    pthread_mutex_lock(&s.lock);
    s.gate = true;
    pthread_cond_broadcast(&s.done);
    pthread_mutex_unlock(&s.lock);
    wait_count(&s, &s.njobs, 3);
    cr_assert_eq(s.runs, 2, "two runs: the first job's, then both later ones");
    cr_assert_eq(s.order[1], 2);
    cr_assert_eq(s.order[2], 3);
    pthread_mutex_unlock(&s.lock);
    es_worker_free(w);
}

Test(es_worker, a_wake_runs_it_with_no_job_and_a_delay_asked_runs_it_again, .timeout = 10)
{
    struct seen s;
    seen_init(&s, ES_WORKER_IDLE);
    es_worker_t *w = es_worker_new("test", run, drop, &s, NULL);
    es_worker_wake(w);
    wait_count(&s, &s.runs, 1);
    cr_assert_eq(s.empty_runs, 1);
    s.next_ms = 5; /* from now on each run asks for another 5 ms later */
    pthread_mutex_unlock(&s.lock);
    es_worker_wake(w);
    wait_count(&s, &s.empty_runs, 5); /* no post, no wake: the delays alone */
    s.next_ms = ES_WORKER_IDLE;
    pthread_mutex_unlock(&s.lock);
    es_worker_free(w);
}

static void *free_worker(void *w)
{
    es_worker_free(w);
    return NULL;
}

Test(es_worker, free_waits_for_the_run_under_way_and_each_job_is_run_or_dropped_once, .timeout = 10)
{
    struct seen s;
    seen_init(&s, ES_WORKER_IDLE);
    es_worker_t *w = es_worker_new("test", run, drop, &s, NULL);
    es_worker_post(w, (void *)100);
    wait_count(&s, &s.held, 1);
    pthread_mutex_unlock(&s.lock);
    es_worker_post(w, (void *)2);
    es_worker_post(w, (void *)3);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_worker, w), 0);
    pthread_mutex_lock(&s.lock);
    s.gate = true;
    pthread_cond_broadcast(&s.done);
    pthread_mutex_unlock(&s.lock);
    pthread_join(t, NULL);
    cr_assert_eq(s.order[0], 100);
    cr_assert_eq(s.njobs + s.dropped, 3, "run %d, dropped %d", s.njobs, s.dropped);
}

Test(es_worker, free_of_null_is_a_no_op, .timeout = 10)
{
    es_worker_free(NULL);
}
