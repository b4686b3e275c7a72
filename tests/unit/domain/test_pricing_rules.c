#include "pricing_rules.h"
#include <criterion/criterion.h>
#include <string.h>

#define T0      1700000000000LL /* an instant, ms */
#define HOUR    3600000LL
#define UNKNOWN PR_STOCK_UNKNOWN

/* rule builders: window ends of 0 mean open (no test uses the epoch itself as an end) */
static pr_rule_t pct(const char *id, int64_t bp, int64_t from, int64_t until)
{
    return (pr_rule_t){.rule_id = id,
                       .kind = PR_PERCENT_OFF,
                       .basis_points = bp,
                       .has_from = from != 0,
                       .valid_from = from,
                       .has_until = until != 0,
                       .valid_until = until};
}

static pr_rule_t amt(const char *id, int64_t minor, int64_t from, int64_t until)
{
    return (pr_rule_t){.rule_id = id,
                       .kind = PR_AMOUNT_OFF,
                       .amount_minor = minor,
                       .has_from = from != 0,
                       .valid_from = from,
                       .has_until = until != 0,
                       .valid_until = until};
}

static pr_rule_t flr(const char *id, int64_t minor)
{
    return (pr_rule_t){.rule_id = id, .kind = PR_FLOOR, .amount_minor = minor};
}

static pr_rule_t sur(const char *id, int64_t bp, int64_t threshold, int64_t cap)
{
    return (pr_rule_t){.rule_id = id,
                       .kind = PR_LOW_STOCK_SURCHARGE,
                       .basis_points = bp,
                       .threshold = threshold,
                       .cap_minor = cap};
}

static pr_rule_t in_currency(pr_rule_t r, const char *cur)
{
    r.currency = cur;
    return r;
}

#define MAX_RULES 6

struct price_case {
    const char *name;
    int64_t list;
    pr_rule_t rules[MAX_RULES];
    size_t n;
    int64_t available;
    int64_t at;
    int64_t want;
    const char *want_rules; /* applied rule ids joined by ',' in order, "" for none */
};

static void check_cases(const struct price_case *cases, size_t n_cases)
{
    for (size_t i = 0; i < n_cases; i++) {
        const struct price_case *c = &cases[i];
        pr_result_t res;
        cr_assert_eq(pr_effective_price(c->list, "EUR", c->rules, c->n, c->available, c->at, &res),
                     0, "%s: refused", c->name);
        cr_expect_eq(res.amount_minor, c->want, "%s: got %lld, want %lld", c->name,
                     (long long)res.amount_minor, (long long)c->want);
        cr_expect_eq(res.list_amount_minor, c->list, "%s: list", c->name);
        char ids[128] = "";
        for (size_t k = 0; k < res.n_applied; k++) {
            if (k)
                strcat(ids, ",");
            strcat(ids, res.applied[k].rule_id);
        }
        cr_expect_str_eq(ids, c->want_rules, "%s: applied '%s', want '%s'", c->name, ids,
                         c->want_rules);
        /* the deltas always add up to the effective price */
        int64_t sum = res.list_amount_minor;
        for (size_t k = 0; k < res.n_applied; k++)
            sum += res.applied[k].delta_minor;
        cr_expect_eq(sum, res.amount_minor, "%s: deltas do not add up", c->name);
    }
}

#define CHECK(cases) check_cases(cases, sizeof cases / sizeof cases[0])

Test(pricing_rules, windows_are_half_open)
{
    const struct price_case cases[] = {
        {"no rules", 1000, {{0}}, 0, UNKNOWN, T0, 1000, ""},
        {"before from", 1000, {pct("a", 1000, T0, T0 + HOUR)}, 1, UNKNOWN, T0 - 1, 1000, ""},
        {"at from", 1000, {pct("a", 1000, T0, T0 + HOUR)}, 1, UNKNOWN, T0, 900, "a"},
        {"last ms", 1000, {pct("a", 1000, T0, T0 + HOUR)}, 1, UNKNOWN, T0 + HOUR - 1, 900, "a"},
        {"at until", 1000, {pct("a", 1000, T0, T0 + HOUR)}, 1, UNKNOWN, T0 + HOUR, 1000, ""},
        {"open start", 1000, {pct("a", 1000, 0, T0)}, 1, UNKNOWN, -5 * HOUR, 900, "a"},
        {"open end", 1000, {pct("a", 1000, T0, 0)}, 1, UNKNOWN, INT64_MAX, 900, "a"},
        {"both open", 1000, {pct("a", 1000, 0, 0)}, 1, UNKNOWN, T0, 900, "a"},
        {"empty window ignored", 1000, {pct("a", 1000, T0, T0)}, 1, UNKNOWN, T0, 1000, ""},
        {"inverted window ignored", 1000, {pct("a", 1000, T0, T0 - 1)}, 1, UNKNOWN, T0, 1000, ""},
    };
    CHECK(cases);
}

Test(pricing_rules, overlapping_discounts_do_not_stack_best_wins)
{
    const struct price_case cases[] = {
        {"percent beats amount",
         1000,
         {pct("p", 2000, T0, T0 + 2 * HOUR), amt("m", 150, T0 + HOUR, T0 + 3 * HOUR)},
         2,
         UNKNOWN,
         T0 + HOUR,
         800,
         "p"},
        {"amount beats percent",
         1000,
         {pct("p", 1000, T0, T0 + 2 * HOUR), amt("m", 150, T0 + HOUR, T0 + 3 * HOUR)},
         2,
         UNKNOWN,
         T0 + HOUR,
         850,
         "m"},
        {"only the first active",
         1000,
         {pct("p", 1000, T0, T0 + 2 * HOUR), amt("m", 150, T0 + HOUR, T0 + 3 * HOUR)},
         2,
         UNKNOWN,
         T0 + HOUR - 1,
         900,
         "p"},
        {"only the second active",
         1000,
         {pct("p", 1000, T0, T0 + 2 * HOUR), amt("m", 150, T0 + HOUR, T0 + 3 * HOUR)},
         2,
         UNKNOWN,
         T0 + 2 * HOUR,
         850,
         "m"},
        {"three overlapping percents",
         1000,
         {pct("a", 500, 0, 0), pct("b", 3000, 0, 0), pct("c", 2500, 0, 0)},
         3,
         UNKNOWN,
         T0,
         700,
         "b"},
        {"tie goes to the smaller id",
         1000,
         {amt("z", 100, 0, 0), pct("k", 1000, 0, 0)},
         2,
         UNKNOWN,
         T0,
         900,
         "k"},
        {"tie independent of order",
         1000,
         {pct("k", 1000, 0, 0), amt("z", 100, 0, 0)},
         2,
         UNKNOWN,
         T0,
         900,
         "k"},
    };
    CHECK(cases);
}

Test(pricing_rules, percent_rounds_half_up)
{
    const struct price_case cases[] = {
        /* 999 * 15% = 149.85 -> 150 */
        {"above half", 999, {pct("a", 1500, 0, 0)}, 1, UNKNOWN, T0, 849, "a"},
        /* 10 * 15% = 1.5 -> 2 */
        {"exactly half", 10, {pct("a", 1500, 0, 0)}, 1, UNKNOWN, T0, 8, "a"},
        /* 13 * 10% = 1.3 -> 1 */
        {"below half", 13, {pct("a", 1000, 0, 0)}, 1, UNKNOWN, T0, 12, "a"},
        /* 1 * 0.01% = 0.0001 -> 0: nothing changed, nothing reported */
        {"rounds to nothing", 1, {pct("a", 1, 0, 0)}, 1, UNKNOWN, T0, 1, ""},
        /* 5 * 1% = 0.05 -> 0, 50 * 1% = 0.5 -> 1 */
        {"half of a minor unit", 50, {pct("a", 100, 0, 0)}, 1, UNKNOWN, T0, 49, "a"},
        {"100 percent is free", 1234, {pct("a", 10000, 0, 0)}, 1, UNKNOWN, T0, 0, "a"},
        /* largest list price: no overflow, exact: 10^15 * 33.33% */
        {"largest list",
         PR_AMOUNT_MAX,
         {pct("a", 3333, 0, 0)},
         1,
         UNKNOWN,
         T0,
         PR_AMOUNT_MAX - 333300000000000LL,
         "a"},
        /* 10^15 - 1 = 999999999999999 * 0.01% = 99999999999.9999 -> 100000000000 */
        {"largest odd list",
         PR_AMOUNT_MAX - 1,
         {pct("a", 1, 0, 0)},
         1,
         UNKNOWN,
         T0,
         PR_AMOUNT_MAX - 1 - 100000000000LL,
         "a"},
    };
    CHECK(cases);
}

Test(pricing_rules, amount_off_never_goes_negative)
{
    const struct price_case cases[] = {
        {"amount below list", 1000, {amt("a", 250, 0, 0)}, 1, UNKNOWN, T0, 750, "a"},
        {"amount equals list", 1000, {amt("a", 1000, 0, 0)}, 1, UNKNOWN, T0, 0, "a"},
        {"amount above list", 1000, {amt("a", 5000, 0, 0)}, 1, UNKNOWN, T0, 0, "a"},
        {"zero list", 0, {amt("a", 5, 0, 0), pct("b", 500, 0, 0)}, 2, UNKNOWN, T0, 0, ""},
    };
    CHECK(cases);
}

Test(pricing_rules, floor_bounds_what_rules_take_away)
{
    const struct price_case cases[] = {
        {"floor binds", 1000, {pct("d", 5000, 0, 0), flr("f", 800)}, 2, UNKNOWN, T0, 800, "d,f"},
        {"floor not reached",
         1000,
         {pct("d", 1000, 0, 0), flr("f", 800)},
         2,
         UNKNOWN,
         T0,
         900,
         "d"},
        {"floor equal to result",
         1000,
         {pct("d", 2000, 0, 0), flr("f", 800)},
         2,
         UNKNOWN,
         T0,
         800,
         "d"},
        {"floor alone changes nothing", 1000, {flr("f", 800)}, 1, UNKNOWN, T0, 1000, ""},
        {"floor above list never raises it", 1000, {flr("f", 1500)}, 1, UNKNOWN, T0, 1000, ""},
        {"floor above list cancels a discount",
         1000,
         {amt("d", 300, 0, 0), flr("f", 1500)},
         2,
         UNKNOWN,
         T0,
         1000,
         "d,f"},
        {"highest floor wins",
         1000,
         {amt("d", 900, 0, 0), flr("f1", 300), flr("f2", 500)},
         3,
         UNKNOWN,
         T0,
         500,
         "d,f2"},
        {"zero floor", 1000, {amt("d", 2000, 0, 0), flr("f", 0)}, 2, UNKNOWN, T0, 0, "d"},
        {"floor outside its window",
         1000,
         {pct("d", 5000, 0, 0), (pr_rule_t){.rule_id = "f",
                                            .kind = PR_FLOOR,
                                            .amount_minor = 800,
                                            .has_from = true,
                                            .valid_from = T0 + 1}},
         2,
         UNKNOWN,
         T0,
         500,
         "d"},
    };
    CHECK(cases);
}

Test(pricing_rules, low_stock_surcharge_needs_known_low_stock)
{
    const struct price_case cases[] = {
        {"stock unknown", 1000, {sur("s", 1000, 5, 10000)}, 1, UNKNOWN, T0, 1000, ""},
        {"stock at threshold", 1000, {sur("s", 1000, 5, 10000)}, 1, 5, T0, 1000, ""},
        {"stock below threshold", 1000, {sur("s", 1000, 5, 10000)}, 1, 4, T0, 1100, "s"},
        {"no stock at all", 1000, {sur("s", 1000, 5, 10000)}, 1, 0, T0, 1100, "s"},
        {"negative available", 1000, {sur("s", 1000, 5, 10000)}, 1, -3, T0, 1100, "s"},
        {"capped", 1000, {sur("s", 5000, 5, 120)}, 1, 1, T0, 1120, "s"},
        {"cap zero", 1000, {sur("s", 5000, 5, 0)}, 1, 1, T0, 1000, ""},
        {"surcharge rounds half up", 10, {sur("s", 1500, 5, 100)}, 1, 1, T0, 12, "s"},
        {"tiers: largest applicable",
         1000,
         {sur("s10", 500, 10, 1000), sur("s3", 1500, 3, 1000)},
         2,
         2,
         T0,
         1150,
         "s3"},
        {"tiers: only the wide one",
         1000,
         {sur("s10", 500, 10, 1000), sur("s3", 1500, 3, 1000)},
         2,
         5,
         T0,
         1050,
         "s10"},
        {"over 100 percent", 1000, {sur("s", 20000, 5, 100000)}, 1, 1, T0, 3000, "s"},
    };
    CHECK(cases);
}

Test(pricing_rules, surcharge_after_discount_and_floor)
{
    const struct price_case cases[] = {
        /* 1000 - 500 -> floor 800 -> + 100 (10% of list) */
        {"all three",
         1000,
         {pct("d", 5000, 0, 0), flr("f", 800), sur("s", 1000, 5, 1000)},
         3,
         1,
         T0,
         900,
         "d,f,s"},
        {"discount and surcharge",
         1000,
         {amt("d", 200, 0, 0), sur("s", 1000, 5, 1000)},
         2,
         1,
         T0,
         900,
         "d,s"},
        {"surcharge of the list, not the discounted",
         1000,
         {pct("d", 5000, 0, 0), sur("s", 1000, 5, 1000)},
         2,
         1,
         T0,
         600,
         "d,s"},
    };
    CHECK(cases);
}

Test(pricing_rules, other_currency_rules_are_ignored)
{
    const struct price_case cases[] = {
        {"amount off in usd",
         1000,
         {in_currency(amt("d", 300, 0, 0), "USD")},
         1,
         UNKNOWN,
         T0,
         1000,
         ""},
        {"same currency applies",
         1000,
         {in_currency(amt("d", 300, 0, 0), "EUR")},
         1,
         UNKNOWN,
         T0,
         700,
         "d"},
        {"floor in usd",
         1000,
         {amt("d", 900, 0, 0), in_currency(flr("f", 800), "USD")},
         2,
         UNKNOWN,
         T0,
         100,
         "d"},
        {"usd discount does not beat eur one",
         1000,
         {in_currency(amt("big", 900, 0, 0), "USD"), in_currency(amt("small", 100, 0, 0), "EUR")},
         2,
         UNKNOWN,
         T0,
         900,
         "small"},
        {"surcharge in usd",
         1000,
         {in_currency(sur("s", 1000, 5, 1000), "USD")},
         1,
         1,
         T0,
         1000,
         ""},
        {"invalid currency ignored",
         1000,
         {in_currency(amt("d", 300, 0, 0), "eur")},
         1,
         UNKNOWN,
         T0,
         1000,
         ""},
    };
    CHECK(cases);
}

Test(pricing_rules, invalid_rules_are_ignored)
{
    const struct price_case cases[] = {
        {"percent over 100", 1000, {pct("a", 10001, 0, 0)}, 1, UNKNOWN, T0, 1000, ""},
        {"percent zero", 1000, {pct("a", 0, 0, 0)}, 1, UNKNOWN, T0, 1000, ""},
        {"negative amount", 1000, {amt("a", -100, 0, 0)}, 1, UNKNOWN, T0, 1000, ""},
        {"no rule id", 1000, {pct(NULL, 1000, 0, 0)}, 1, UNKNOWN, T0, 1000, ""},
        {"negative floor", 1000, {amt("d", 900, 0, 0), flr("f", -1)}, 2, UNKNOWN, T0, 100, "d"},
        {"threshold zero", 1000, {sur("s", 1000, 0, 1000)}, 1, -1, T0, 1000, ""},
        {"bad kind",
         1000,
         {(pr_rule_t){.rule_id = "x", .kind = (pr_kind_t)42, .amount_minor = 5}},
         1,
         UNKNOWN,
         T0,
         1000,
         ""},
    };
    CHECK(cases);
}

Test(pricing_rules, refuses_bad_list_price)
{
    pr_result_t res;
    cr_assert_eq(pr_effective_price(-1, "EUR", NULL, 0, UNKNOWN, T0, &res), -1);
    cr_assert_eq(pr_effective_price(PR_AMOUNT_MAX + 1, "EUR", NULL, 0, UNKNOWN, T0, &res), -1);
    cr_assert_eq(pr_effective_price(100, "EU", NULL, 0, UNKNOWN, T0, &res), -1);
    cr_assert_eq(pr_effective_price(100, NULL, NULL, 0, UNKNOWN, T0, &res), -1);
    cr_assert_eq(res.amount_minor, 0);
    cr_assert_eq(pr_effective_price(PR_AMOUNT_MAX, "EUR", NULL, 0, UNKNOWN, T0, &res), 0);
    cr_assert_eq(res.amount_minor, PR_AMOUNT_MAX);
}

Test(pricing_rules, is_deterministic_under_permutation)
{
    pr_rule_t rules[] = {pct("a", 1200, T0 - HOUR, T0 + HOUR),
                         amt("b", 120, 0, T0 + 2 * HOUR),
                         flr("c", 850),
                         sur("d", 700, 4, 60),
                         sur("e", 300, 9, 1000),
                         pct("f", 1200, 0, 0)};
    size_t n = sizeof rules / sizeof rules[0];
    pr_result_t first;
    cr_assert_eq(pr_effective_price(1000, "EUR", rules, n, 3, T0, &first), 0);
    cr_assert_eq(first.amount_minor, 880 + 60); /* a (tie with f, smaller id) -> 880, + d capped */
    /* rotate and reverse: same price, same rules */
    for (size_t rot = 0; rot < 2 * n; rot++) {
        pr_rule_t perm[sizeof rules / sizeof rules[0]];
        for (size_t i = 0; i < n; i++)
            perm[i] = rot < n ? rules[(i + rot) % n] : rules[n - 1 - (i + rot) % n];
        pr_result_t res;
        cr_assert_eq(pr_effective_price(1000, "EUR", perm, n, 3, T0, &res), 0);
        cr_assert_eq(res.amount_minor, first.amount_minor, "permutation %zu", rot);
        cr_assert_eq(res.n_applied, first.n_applied);
        for (size_t k = 0; k < res.n_applied; k++)
            cr_assert_str_eq(res.applied[k].rule_id, first.applied[k].rule_id);
    }
}

Test(pricing_rules, check_explains_the_field)
{
    char why[128];
    pr_rule_t r = pct("a", 0, 0, 0);
    cr_assert_eq(pr_rule_check(&r, why, sizeof why), -1);
    cr_assert_str_eq(why, "basis_points: must be 1 to 10000");
    r = pct("a", 1000, T0, T0);
    cr_assert_eq(pr_rule_check(&r, why, sizeof why), -1);
    cr_assert(strstr(why, "valid_until"), "%s", why);
    r = sur("s", 1000, 5, -1);
    cr_assert_eq(pr_rule_check(&r, why, sizeof why), -1);
    cr_assert_str_eq(why, "cap_minor: must be 0 to 1000000000000000");
    r = in_currency(amt("a", 5, 0, 0), "usd");
    cr_assert_eq(pr_rule_check(&r, why, sizeof why), -1);
    cr_assert(strstr(why, "'usd'"), "%s", why);
    r = sur("s", 1000, 5, 100);
    cr_assert_eq(pr_rule_check(&r, why, sizeof why), 0);
}

Test(pricing_rules, kind_names_round_trip)
{
    for (int k = PR_PERCENT_OFF; k <= PR_FLOOR; k++) {
        pr_kind_t back;
        cr_assert_eq(pr_kind_parse(pr_kind_name((pr_kind_t)k), &back), 0);
        cr_assert_eq(back, (pr_kind_t)k);
    }
    pr_kind_t back;
    cr_assert_eq(pr_kind_parse("bogo", &back), -1);
    cr_assert_eq(pr_kind_parse(NULL, &back), -1);
}
