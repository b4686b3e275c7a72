#include "api_ratelimit.h"
#include <criterion/criterion.h>
#include <stdio.h>

Test(ratelimit, bucket_empties_then_refills)
{
    api_ratelimit_t *rl = api_ratelimit_new(64, 3, 0.5); /* 3 failures, then one per 2 s */
    cr_assert_eq(api_ratelimit_check(rl, "ip:1", 100.0), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(api_ratelimit_check(rl, "ip:1", 100.0), 0, "attempt %d", i);
        api_ratelimit_charge(rl, "ip:1", 100.0);
    }
    long wait = api_ratelimit_check(rl, "ip:1", 100.0);
    cr_assert_eq(wait, 2, "one token back after 2 s, got %ld", wait);
    cr_assert_eq(api_ratelimit_check(rl, "ip:2", 100.0), 0, "other keys are not limited");
    cr_assert_eq(api_ratelimit_check(rl, "ip:1", 101.0), 1);
    cr_assert_eq(api_ratelimit_check(rl, "ip:1", 102.0), 0, "refilled");
    api_ratelimit_charge(rl, "ip:1", 102.0);
    cr_assert(api_ratelimit_check(rl, "ip:1", 102.0) > 0);
    api_ratelimit_reset(rl, "ip:1");
    cr_assert_eq(api_ratelimit_check(rl, "ip:1", 102.0), 0, "reset clears");
    api_ratelimit_free(rl);
}

Test(ratelimit, table_is_bounded)
{
    api_ratelimit_t *rl = api_ratelimit_new(16, 1, 0.001);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        api_ratelimit_charge(rl, key, (double)i);
    }
    cr_assert(api_ratelimit_check(rl, "k9999", 9999.0) > 0, "the newest key keeps its bucket");
    api_ratelimit_free(rl);
}
