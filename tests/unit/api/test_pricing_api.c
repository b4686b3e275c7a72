#include "api_app.h"
#include <criterion/criterion.h>

Test(api_pricing, parses_instants)
{
    const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"1700000000123", 1700000000123LL},
        {"-1000", -1000},
        {"1970-01-01T00:00:00Z", 0},
        {"2023-11-14T22:13:20Z", 1700000000000LL},
        {"2023-11-14T22:13:20.123Z", 1700000000123LL},
        {"2023-11-14T22:13:20.1Z", 1700000000100LL},
        {"2023-11-14T22:13:20.123999Z", 1700000000123LL},
        {"2023-11-15T00:13:20+02:00", 1700000000000LL},
        {"2023-11-14T20:13:20-02:00", 1700000000000LL},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"1969-12-31T23:59:59Z", -1000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = 42;
        cr_assert_eq(api_parse_instant(ok[i].in, &ms), 0, "'%s' refused", ok[i].in);
        cr_expect_eq(ms, ok[i].want, "'%s': got %lld", ok[i].in, (long long)ms);
    }
    const char *bad[] = {"",
                         "abc",
                         "12a",
                         "2023-11-14T22:13:20",
                         "2023-11-14 22:13:20Z",
                         "2023-13-01T00:00:00Z",
                         "2023-02-29T00:00:00Z",
                         "2023-04-31T00:00:00Z",
                         "2023-11-14T24:00:00Z",
                         "2023-11-14T22:13:20.Z",
                         "2023-11-14T22:13:20+2:00",
                         "2023-11-14T22:13:20Zjunk",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        cr_expect_eq(api_parse_instant(bad[i], &ms), -1, "'%s' accepted", bad[i]);
    }
    cr_expect_eq(api_parse_instant(NULL, NULL), -1);
}
