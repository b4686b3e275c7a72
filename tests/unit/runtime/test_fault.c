#include "es_fault.h"
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>

/* Each criterion test runs in its own process, so each may arm its own faults. */

Test(fault, unarmed_points_never_fire)
{
    unsetenv("EVENTSHOP_FAULTS");
    for (int i = 0; i < 5; i++)
        cr_assert_not(es_fault_hit("notify.after_claim"));
}

Test(fault, fail_fires_on_the_nth_hit_only)
{
    setenv("EVENTSHOP_FAULTS", "other.point=fail,txn.commit=fail@3", 1);
    cr_assert_not(es_fault_hit("txn.commit"));
    cr_assert_not(es_fault_hit("txn.commit"));
    cr_assert(es_fault_hit("txn.commit"));
    cr_assert_not(es_fault_hit("txn.commit"));
    cr_assert(es_fault_hit("other.point"));
    cr_assert_not(es_fault_hit("txn.commi"));
}

Test(fault, plus_fires_from_the_nth_hit_on)
{
    setenv("EVENTSHOP_FAULTS", "txn.commit=fail@2+", 1);
    cr_assert_not(es_fault_hit("txn.commit"));
    cr_assert(es_fault_hit("txn.commit"));
    cr_assert(es_fault_hit("txn.commit"));
}

Test(fault, crash_kills_the_process, .signal = SIGKILL)
{
    setenv("EVENTSHOP_FAULTS", "notify.after_accept", 1);
    es_fault_hit("notify.after_accept");
}
