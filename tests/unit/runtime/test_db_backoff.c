#include "es_db.h"
#include "es_time.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* es_db_backoff_ms: the wait between connect attempts of a reconnecting es_db handle. */

Test(db_backoff, no_failure_means_no_wait)
{
    unsigned rng = 1;
    cr_assert_eq(es_db_backoff_ms(0, &rng), 0);
    cr_assert_eq(rng, 1, "no random draw without a wait");
}

Test(db_backoff, doubles_per_failure_within_its_upper_half)
{
    unsigned rng = 12345;
    long cap = ES_DB_BACKOFF_BASE_MS;
    for (unsigned f = 1; f <= 12; f++) {
        for (int i = 0; i < 200; i++) {
            long d = es_db_backoff_ms(f, &rng);
            cr_assert(d >= cap - cap / 2 && d <= cap, "failure %u: %ld ms outside [%ld, %ld]", f, d,
                      cap - cap / 2, cap);
        }
        cap = cap * 2 > ES_DB_BACKOFF_MAX_MS ? ES_DB_BACKOFF_MAX_MS : cap * 2;
    }
}

Test(db_backoff, capped_even_after_very_many_failures)
{
    unsigned rng = 7;
    unsigned many[] = {30, 31, 32, 33, 64, 1000, 4000000000u};
    for (size_t i = 0; i < sizeof many / sizeof *many; i++) {
        long d = es_db_backoff_ms(many[i], &rng);
        cr_assert(d >= ES_DB_BACKOFF_MAX_MS / 2 && d <= ES_DB_BACKOFF_MAX_MS,
                  "after %u failures: %ld ms", many[i], d);
    }
}

Test(db_backoff, jitter_spreads_the_waits)
{
    /* processes that lost the same server draw different waits: many distinct values */
    unsigned rng = 99;
    long seen[64];
    size_t distinct = 0;
    for (int i = 0; i < 64; i++) {
        long d = es_db_backoff_ms(8, &rng);
        bool known = false;
        for (size_t k = 0; k < distinct; k++)
            known |= seen[k] == d;
        if (!known)
            seen[distinct++] = d;
    }
    cr_assert_gt(distinct, 32, "only %zu distinct waits of 64", distinct);
}

Test(db_backoff, same_seed_same_waits)
{
    unsigned a = 4242, b = 4242;
    for (unsigned f = 1; f < 10; f++)
        cr_assert_eq(es_db_backoff_ms(f, &a), es_db_backoff_ms(f, &b));
    unsigned zero = 0; /* a zero seed still draws (xorshift would stay at 0) */
    cr_assert_gt(es_db_backoff_ms(3, &zero), 0);
    cr_assert_neq(zero, 0);
}

/* es_backoff_next (es_time.h): the projector's, the API's and the registry's back-off. */

Test(backoff_next, doubles_from_min_to_max_and_draws_in_the_upper_half)
{
    unsigned seed = 99;
    long ceiling = 0, expect = 200;
    for (int step = 0; step < 10; step++) {
        long d = es_backoff_next(&ceiling, 200, 5000, &seed);
        cr_assert_eq(ceiling, expect, "step %d: ceiling %ld, expected %ld", step, ceiling, expect);
        cr_assert(d >= ceiling / 2 && d <= ceiling, "step %d: %ld ms outside [%ld, %ld]", step, d,
                  ceiling / 2, ceiling);
        expect = expect * 2 > 5000 ? 5000 : expect * 2;
    }
    ceiling = 0; /* a success starts over at the minimum */
    cr_assert_leq(es_backoff_next(&ceiling, 200, 5000, &seed), 200);
}

/* es_db_open_reconnecting: a handle made without a server, which connects on its first call and,
 * while the server is away, tries again only once the backoff allows (no connect per call). */
Test(db_backoff, a_lazy_handle_connects_on_use_and_backs_off_while_the_server_is_away)
{
    setenv("EVENTSHOP_MYSQL_HOST", "127.0.0.1", 1);
    setenv("EVENTSHOP_MYSQL_PORT", "1", 1); /* nothing listens there: refused at once */
    unsetenv("EVENTSHOP_MYSQL_SOCKET");
    es_db_t *db = es_db_open_reconnecting("nowhere", 1, 1);
    cr_assert_not_null(db);
    es_err_t err = ES_ERR_INIT;
    cr_assert_null(es_db_query(db, "SELECT 1", NULL, 0, &err));
    cr_assert_eq(err.code, ES_EIO, "%s", err.msg);
    cr_assert(strstr(err.msg, "connect to 'eventshop_nowhere'"), "%s", err.msg);
    es_err_t again = ES_ERR_INIT;
    cr_assert_neq(es_db_exec(db, "DO 1", NULL, 0, NULL, &again), 0);
    cr_assert_eq(again.code, ES_EIO, "%s", again.msg);
    cr_assert(strstr(again.msg, "next connect attempt in"), "no backoff: %s", again.msg);
    es_db_close(db);
}
