#include "hi_positions.h"
#include <criterion/criterion.h>

Test(hi_time, iso_8601_forms)
{
    int64_t ms = 0;
    cr_assert_eq(hi_time_parse("2001-01-01T00:00:00Z", &ms, NULL), 0);
    cr_assert_eq(ms, 978307200000LL);
    cr_assert_eq(hi_time_parse("2001-01-01", &ms, NULL), 0);
    cr_assert_eq(ms, 978307200000LL, "a date is its midnight, UTC");
    cr_assert_eq(hi_time_parse("2001-01-01T01:00:00.250+01:00", &ms, NULL), 0);
    cr_assert_eq(ms, 978307200250LL);
    cr_assert_eq(hi_time_parse("2000-12-31T23:30-0030", &ms, NULL), 0);
    cr_assert_eq(ms, 978307200000LL);
    char buf[32];
    cr_assert_str_eq(hi_time_format(978307200250LL, buf), "2001-01-01T00:00:00.250Z");
}

Test(hi_time, refuses_what_is_not_a_time)
{
    int64_t ms = 0;
    es_err_t err = ES_ERR_INIT;
    const char *bad[] = {"yesterday",
                         "2001-13-01",
                         "2001-01-01T25:00",
                         "2001-01-01T00:00:00Q",
                         "2001-01-01T00:00:00.",
                         "01-01-2001",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(hi_time_parse(bad[i], &ms, &err), -1, "%s", bad[i]);
        cr_assert_eq(err.code, ES_EINVAL);
    }
}

Test(hi_spec, positions_and_times)
{
    hi_spec_t s;
    cr_assert_eq(hi_spec_parse("catalog.events:0=12,orders.events:3=7", &s, NULL), 0);
    cr_assert_eq(s.is_time, 0);
    cr_assert_eq(s.n, 2);
    cr_assert_eq(hi_spec_offset(&s, "catalog.events", 0, -1), 12);
    cr_assert_eq(hi_spec_offset(&s, "orders.events", 3, -1), 7);
    cr_assert_eq(hi_spec_offset(&s, "orders.events", 2, -1), -1, "not named: the default");
    hi_spec_free(&s);
    cr_assert_eq(hi_spec_parse("2024-05-01T12:00:00Z", &s, NULL), 0);
    cr_assert_eq(s.is_time, 1);
    cr_assert_eq(s.time_ms, 1714564800000LL);
    hi_spec_free(&s);
}

Test(hi_spec, refuses_bad_positions)
{
    hi_spec_t s;
    es_err_t err = ES_ERR_INIT;
    const char *bad[] = {"catalog.events:x=1", "catalog.events=1",    ":0=1",
                         "catalog.events:0=",  "catalog.events:0=-4", "catalog.events:0=1,",
                         "catalog.events:0=1x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(hi_spec_parse(bad[i], &s, &err), -1, "%s", bad[i]);
        cr_assert_eq(s.n, 0);
    }
}

Test(hi_spec, latest_names_no_position)
{
    hi_spec_t s;
    cr_assert_eq(hi_spec_parse("latest", &s, NULL), 0);
    cr_assert_eq(s.is_time, 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(hi_spec_offset(&s, "catalog.events", 0, 42), 42, "every partition: the default");
    hi_spec_free(&s);
}

Test(hi_database, only_names_of_its_own)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(hi_database_check("asof_2024_05_01", &err), 0);
    cr_assert_eq(hi_database_check("Asof1", &err), 0);
    const char *bad[] = {"",
                         "asof-1",
                         "asof`; DROP DATABASE x",
                         "eventshop_catalog",
                         "EventShop_keys",
                         "mysql",
                         "INFORMATION_SCHEMA",
                         "a234567890123456789012345678901234567890123456789012345678901234x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(hi_database_check(bad[i], &err), -1, "%s", bad[i]);
        cr_assert_eq(err.code, ES_EINVAL);
    }
}
