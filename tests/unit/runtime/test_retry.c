#include "es_retry.h"
#include "es_time.h"
#include <criterion/criterion.h>
#include <stdio.h>

/* es_retry_until: the retry loop of a handler's partition recovery and of
 * es_kafka_assign_committed. */

/* An attempt that fails (with `fail_as`) until its `succeed_at`-th call; 0: never succeeds. */
typedef struct attempts {
    int calls, succeed_at, fail_as;
    bool err_was_clear; /* every call found err cleared */
} attempts_t;

static int attempt(void *arg, es_err_t *err)
{
    attempts_t *a = arg;
    a->calls++;
    if (err->code != ES_OK || err->msg[0])
        a->err_was_clear = false;
    if (a->calls == a->succeed_at)
        return ES_RETRY_DONE;
    es_set(err, ES_EIO, "attempt %d failed", a->calls);
    return a->fail_as;
}

static int heartbeats;
static volatile sig_atomic_t stop_flag;

static void count_heartbeat(void)
{
    heartbeats++;
}

static void stop_on_heartbeat(void)
{
    stop_flag = 1;
}

static es_retry_t quick(void)
{
    return (es_retry_t){.what = "trying",
                        .deadline_ms = es_mono_ms() + 10000,
                        .min_ms = 2,
                        .max_ms = 4,
                        .heartbeat = count_heartbeat};
}

Test(retry, first_success_is_one_attempt)
{
    es_retry_t r = quick();
    attempts_t a = {.succeed_at = 1, .fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(es_retry_until(&r, attempt, &a, &err), 0);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(heartbeats, 0, "no wait, no heartbeat");
    cr_assert_eq(err.code, ES_OK);
}

Test(retry, transient_failures_are_tried_again_with_err_cleared)
{
    es_retry_t r = quick();
    attempts_t a = {.succeed_at = 4, .fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(es_retry_until(&r, attempt, &a, &err), 0);
    cr_assert_eq(a.calls, 4);
    cr_assert(a.err_was_clear, "an attempt found the previous one's error");
    cr_assert_eq(heartbeats, 3, "one heartbeat per wait");
    cr_assert_eq(err.code, ES_OK);
}

Test(retry, a_lasting_failure_is_not_tried_again)
{
    es_retry_t r = quick();
    attempts_t a = {.fail_as = ES_RETRY_GIVE_UP, .err_was_clear = true};
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(es_retry_until(&r, attempt, &a, &err), -1);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(heartbeats, 0);
    cr_assert_str_eq(err.msg, "attempt 1 failed");
}

Test(retry, a_passed_deadline_leaves_the_last_error)
{
    es_retry_t r = quick();
    r.deadline_ms = es_mono_ms() + 30;
    attempts_t a = {.fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    es_err_t err = ES_ERR_INIT;
    long long t0 = es_mono_ms();
    cr_assert_eq(es_retry_until(&r, attempt, &a, &err), -1);
    cr_assert_geq(es_mono_ms() - t0, 30);
    cr_assert_lt(es_mono_ms() - t0, 1000);
    cr_assert_gt(a.calls, 1);
    char last[32];
    snprintf(last, sizeof last, "attempt %d failed", a.calls);
    cr_assert_str_eq(err.msg, last, "err is the last attempt's, not the first's");
    cr_assert_eq(err.code, ES_EIO);
}

Test(retry, always_one_attempt_even_past_the_deadline)
{
    es_retry_t r = quick();
    r.deadline_ms = es_mono_ms() - 1;
    attempts_t a = {.succeed_at = 1, .fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    cr_assert_eq(es_retry_until(&r, attempt, &a, NULL), 0);
    a = (attempts_t){.fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    cr_assert_eq(es_retry_until(&r, attempt, &a, NULL), -1, "err may be NULL");
    cr_assert_eq(a.calls, 1);
}

Test(retry, waits_grow_from_min_to_max)
{
    /* ceilings 20, 40, 40 ms: each wait is at least half its ceiling */
    es_retry_t r = quick();
    r.min_ms = 20;
    r.max_ms = 40;
    attempts_t a = {.succeed_at = 4, .fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    long long t0 = es_mono_ms();
    cr_assert_eq(es_retry_until(&r, attempt, &a, NULL), 0);
    long long took = es_mono_ms() - t0;
    cr_assert_geq(took, 10 + 20 + 20, "%lld ms", took);
    cr_assert_leq(took, 20 + 40 + 40 + 500, "%lld ms", took);
}

Test(retry, a_stop_ends_the_wait_and_the_retries)
{
    /* the heartbeat before the first wait asks the stop: the 10 s wait ends at once, one more
     * attempt is made (as before the stop), then no other */
    stop_flag = 0;
    es_retry_t r = quick();
    r.min_ms = r.max_ms = 10000;
    r.stop = &stop_flag;
    r.heartbeat = stop_on_heartbeat;
    attempts_t a = {.fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    es_err_t err = ES_ERR_INIT;
    long long t0 = es_mono_ms();
    cr_assert_eq(es_retry_until(&r, attempt, &a, &err), -1);
    cr_assert_lt(es_mono_ms() - t0, 1000);
    cr_assert_eq(a.calls, 2);
    cr_assert_str_eq(err.msg, "attempt 2 failed");
}

Test(retry, a_stop_before_the_call_still_makes_one_attempt)
{
    stop_flag = 1;
    es_retry_t r = quick();
    r.stop = &stop_flag;
    attempts_t a = {.succeed_at = 1, .fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    cr_assert_eq(es_retry_until(&r, attempt, &a, NULL), 0);
    a = (attempts_t){.fail_as = ES_RETRY_AGAIN, .err_was_clear = true};
    cr_assert_eq(es_retry_until(&r, attempt, &a, NULL), -1);
    cr_assert_eq(a.calls, 1);
}
