#include "catalog.h"
#include "catalog_view.h"
#include "pricing.h"
#include <criterion/criterion.h>
#include <string.h>

#define NS PRICING_NS

static json_t *view;

/* the catalog view as the runtime folds it: AB-1 of v1 in EUR, OLD-1 of v1 delisted */
static void setup(void)
{
    view = json_object();
    json_t *listed =
        json_pack("{s:s, s:s, s:s}", "sku", "AB-1", "vendor_id", "v1", "currency", "EUR");
    catalog_view_fold(view, CATALOG_NS "ProductListed", listed);
    json_object_set_new(listed, "sku", json_string("OLD-1"));
    catalog_view_fold(view, CATALOG_NS "ProductListed", listed);
    catalog_view_fold(view, CATALOG_NS "ProductDelisted", listed);
    json_decref(listed);
}

static void teardown(void)
{
    json_decref(view);
}

TestSuite(pricing, .init = setup, .fini = teardown);

static json_t *meta(const char *role, const char *vendor, const char *sku)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:n}", "command_id",
                     "6f1c1f4e-0000-4000-8000-000000000001", "correlation_id", "corr-1",
                     "aggregate_id", sku, "issued_at", (json_int_t)1700000000000, "actor", "user-1",
                     "actor_role", role, "actor_vendor", vendor, "expected_version");
}

static json_t *set_cmd(const char *role, const char *vendor, const char *sku, json_int_t amount,
                       const char *cur)
{
    return json_pack("{s:o, s:s, s:I, s:s}", "metadata", meta(role, vendor, sku), "sku", sku,
                     "amount_minor", amount, "currency", cur);
}

/* an AddPriceRule of kind with the given extra members (stolen) merged in */
static json_t *add_cmd(const char *role, const char *vendor, const char *sku, const char *rule_id,
                       const char *kind, json_t *extra)
{
    json_t *c = json_pack("{s:o, s:s, s:s, s:s}", "metadata", meta(role, vendor, sku), "sku", sku,
                          "rule_id", rule_id, "kind", kind);
    json_object_update(c, extra);
    json_decref(extra);
    return c;
}

static json_t *remove_cmd(const char *role, const char *vendor, const char *sku, const char *id)
{
    return json_pack("{s:o, s:s, s:s}", "metadata", meta(role, vendor, sku), "sku", sku, "rule_id",
                     id);
}

static const char *decide(const json_t *state, const char *type, json_t *cmd, hd_decision_t *d)
{
    hd_decision_init(d);
    cr_assert_eq(pricing_decide(state, type, cmd, view, d), 0);
    json_decref(cmd);
    if (d->reason)
        cr_assert_eq(json_array_size(d->events), 0);
    return d->reason;
}

/* decides cmd against state (stolen) and returns the evolved state (owned); must be accepted */
static json_t *step(json_t *state, const char *type, json_t *cmd)
{
    hd_decision_t d;
    const char *reason = decide(state, type, cmd, &d);
    cr_assert_null(reason, "rejected %s: %s", reason, d.detail);
    size_t i;
    json_t *ev;
    json_array_foreach(d.events, i, ev)
    {
        state = pricing_evolve(state, json_string_value(json_object_get(ev, "type")),
                               json_object_get(ev, "payload"));
    }
    hd_decision_release(&d);
    return state;
}

struct reject_case {
    const char *name;
    const char *type;
    json_t *cmd;
    const char *reason;
    const char *detail_part;
};

static void expect_rejections(const json_t *state, struct reject_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hd_decision_t d;
        const char *got = decide(state, cases[i].type, cases[i].cmd, &d);
        cr_expect(got, "%s: accepted", cases[i].name);
        if (got) {
            cr_expect_str_eq(got, cases[i].reason, "%s: %s (%s)", cases[i].name, got, d.detail);
            if (cases[i].detail_part)
                cr_expect(strstr(d.detail, cases[i].detail_part), "%s: detail '%s' lacks '%s'",
                          cases[i].name, d.detail, cases[i].detail_part);
        }
        hd_decision_release(&d);
    }
}

#define N(a) (sizeof a / sizeof a[0])

Test(pricing, owner_sets_list_price)
{
    hd_decision_t d;
    cr_assert_null(
        decide(NULL, NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 1999, "EUR"), &d));
    cr_assert_eq(json_array_size(d.events), 1);
    json_t *ev = json_array_get(d.events, 0);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), NS "PriceSet");
    json_t *p = json_object_get(ev, "payload");
    cr_assert_eq(json_integer_value(json_object_get(p, "amount_minor")), 1999);
    cr_assert(json_is_null(json_object_get(p, "previous_amount_minor")));
    json_t *state = pricing_evolve(NULL, NS "PriceSet", p);
    cr_assert_eq(json_integer_value(json_object_get(state, "list_amount_minor")), 1999);
    cr_assert_str_eq(json_string_value(json_object_get(state, "currency")), "EUR");
    hd_decision_release(&d);

    /* a second price carries the previous one; the same price again emits nothing */
    cr_assert_null(
        decide(state, NS "SetListPrice", set_cmd("admin", NULL, "AB-1", 2500, "EUR"), &d));
    p = json_object_get(json_array_get(d.events, 0), "payload");
    cr_assert_eq(json_integer_value(json_object_get(p, "previous_amount_minor")), 1999);
    hd_decision_release(&d);
    cr_assert_null(
        decide(state, NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 1999, "EUR"), &d));
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    json_decref(state);
}

Test(pricing, rejects_bad_set_commands)
{
    json_t *no_amount = set_cmd("vendor", "v1", "AB-1", 1, "EUR");
    json_object_del(no_amount, "amount_minor");
    struct reject_case cases[] = {
        {"other vendor", NS "SetListPrice", set_cmd("vendor", "v2", "AB-1", 100, "EUR"),
         "not_owner", "belongs to vendor 'v1'"},
        {"customer", NS "SetListPrice", set_cmd("customer", NULL, "AB-1", 100, "EUR"), "not_owner",
         "role 'customer'"},
        {"unknown sku", NS "SetListPrice", set_cmd("admin", NULL, "ZZ-9", 100, "EUR"),
         "unknown_sku", "'ZZ-9'"},
        {"delisted", NS "SetListPrice", set_cmd("vendor", "v1", "OLD-1", 100, "EUR"), "delisted",
         "'OLD-1'"},
        {"negative", NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", -1, "EUR"), "invalid_field",
         "amount_minor"},
        {"too large", NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", PR_AMOUNT_MAX + 1, "EUR"),
         "invalid_field", "amount_minor"},
        {"missing amount", NS "SetListPrice", no_amount, "invalid_field", "amount_minor"},
        {"other currency", NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 100, "USD"),
         "currency_mismatch", "priced in EUR, not in USD"},
        {"bad currency", NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 100, "eu"),
         "invalid_field", "currency"},
        {"bad sku", NS "SetListPrice", set_cmd("admin", NULL, "a b", 100, "EUR"), "invalid_field",
         "sku"},
        {"unknown command", NS "Bogus", set_cmd("admin", NULL, "AB-1", 100, "EUR"),
         "unknown_command", NULL},
    };
    expect_rejections(NULL, cases, N(cases));
}

Test(pricing, aggregate_must_be_the_sku)
{
    json_t *c = set_cmd("admin", NULL, "AB-1", 100, "EUR");
    json_object_set_new(json_object_get(c, "metadata"), "aggregate_id", json_string("OTHER"));
    struct reject_case cases[] = {
        {"aggregate", NS "SetListPrice", c, "invalid_field", "aggregate_id"}};
    expect_rejections(NULL, cases, N(cases));
}

Test(pricing, adds_rules_of_every_kind)
{
    json_t *state = step(NULL, NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 1000, "EUR"));
    state =
        step(state, NS "AddPriceRule",
             add_cmd("vendor", "v1", "AB-1", "summer", "percent_off",
                     json_pack("{s:I, s:I, s:I}", "basis_points", (json_int_t)1500, "valid_from",
                               (json_int_t)1000, "valid_until", (json_int_t)2000)));
    state =
        step(state, NS "AddPriceRule",
             add_cmd("admin", NULL, "AB-1", "minus-1", "amount_off",
                     json_pack("{s:I, s:s}", "amount_minor", (json_int_t)100, "currency", "EUR")));
    state = step(state, NS "AddPriceRule",
                 add_cmd("vendor", "v1", "AB-1", "scarce", "low_stock_surcharge",
                         json_pack("{s:I, s:I, s:I}", "basis_points", (json_int_t)1000, "threshold",
                                   (json_int_t)5, "cap_minor", (json_int_t)50)));
    state = step(state, NS "AddPriceRule",
                 add_cmd("vendor", "v1", "AB-1", "min", "floor",
                         json_pack("{s:I}", "amount_minor", (json_int_t)700)));
    json_t *rules = json_object_get(state, "rules");
    cr_assert_eq(json_array_size(rules), 4);
    json_t *r0 = json_array_get(rules, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r0, "currency")), "EUR");
    cr_assert_eq(json_integer_value(json_object_get(r0, "valid_until")), 2000);
    cr_assert(json_is_null(json_object_get(r0, "amount_minor")));

    /* the state's rules feed the price function directly */
    pr_rule_t pr[4];
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(pr_rule_from_json(json_array_get(rules, i), &pr[i]), 0);
    pr_result_t res;
    cr_assert_eq(pr_effective_price(1000, "EUR", pr, 4, 2, 1500, &res), 0);
    cr_assert_eq(res.amount_minor, 1000 - 150 + 50);
    cr_assert_eq(pr_effective_price(1000, "EUR", pr, 4, 9, 2000, &res), 0);
    cr_assert_eq(res.amount_minor, 900);

    /* removal drops exactly that rule */
    state = step(state, NS "RemovePriceRule", remove_cmd("vendor", "v1", "AB-1", "minus-1"));
    cr_assert_eq(json_array_size(json_object_get(state, "rules")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(state, "rules"), 1), "rule_id")),
                     "scarce");
    json_decref(state);
}

Test(pricing, rules_may_precede_the_list_price)
{
    json_t *state = step(NULL, NS "AddPriceRule",
                         add_cmd("vendor", "v1", "AB-1", "p", "percent_off",
                                 json_pack("{s:I}", "basis_points", (json_int_t)500)));
    cr_assert(json_is_null(json_object_get(state, "list_amount_minor")));
    cr_assert_str_eq(json_string_value(json_object_get(state, "currency")), "EUR");
    state = step(state, NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 1000, "EUR"));
    cr_assert_eq(json_array_size(json_object_get(state, "rules")), 1);
    cr_assert_eq(json_integer_value(json_object_get(state, "list_amount_minor")), 1000);
    json_decref(state);
}

Test(pricing, rejects_bad_rules)
{
    json_t *state = step(NULL, NS "AddPriceRule",
                         add_cmd("vendor", "v1", "AB-1", "taken", "floor",
                                 json_pack("{s:I}", "amount_minor", (json_int_t)10)));
    struct reject_case cases[] = {
        {"other vendor", NS "AddPriceRule",
         add_cmd("vendor", "v2", "AB-1", "x", "floor", json_pack("{s:I}", "amount_minor", 1)),
         "not_owner", NULL},
        {"unknown kind", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "bogo", json_object()), "invalid_field",
         "kind: 'bogo'"},
        {"missing percent", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "percent_off", json_object()), "invalid_field",
         "basis_points: is required"},
        {"foreign param", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "percent_off",
                 json_pack("{s:i, s:i}", "basis_points", 100, "amount_minor", 5)),
         "invalid_field", "amount_minor: not used by a percent_off rule"},
        {"percent over 100", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "percent_off",
                 json_pack("{s:i}", "basis_points", 10001)),
         "invalid_field", "basis_points: must be 1 to 10000"},
        {"surcharge without cap", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "low_stock_surcharge",
                 json_pack("{s:i, s:i}", "basis_points", 100, "threshold", 3)),
         "invalid_field", "cap_minor: is required"},
        {"empty window", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "percent_off",
                 json_pack("{s:i, s:i, s:i}", "basis_points", 100, "valid_from", 50, "valid_until",
                           50)),
         "invalid_field", "valid_until"},
        {"string amount", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "amount_off",
                 json_pack("{s:s}", "amount_minor", "5")),
         "invalid_field", "amount_minor: must be an integer"},
        {"rule in usd", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "x", "amount_off",
                 json_pack("{s:i, s:s}", "amount_minor", 5, "currency", "USD")),
         "currency_mismatch", "not in USD"},
        {"duplicate id", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "taken", "floor", json_pack("{s:i}", "amount_minor", 1)),
         "rule_exists", "'taken'"},
        {"bad id", NS "AddPriceRule",
         add_cmd("vendor", "v1", "AB-1", "a/b", "floor", json_pack("{s:i}", "amount_minor", 1)),
         "invalid_field", "rule_id"},
        {"delisted", NS "AddPriceRule",
         add_cmd("vendor", "v1", "OLD-1", "x", "floor", json_pack("{s:i}", "amount_minor", 1)),
         "delisted", NULL},
        {"remove unknown", NS "RemovePriceRule", remove_cmd("vendor", "v1", "AB-1", "nope"),
         "unknown_rule", "'nope'"},
        {"remove by other vendor", NS "RemovePriceRule",
         remove_cmd("vendor", "v2", "AB-1", "taken"), "not_owner", NULL},
    };
    expect_rejections(state, cases, N(cases));
    json_decref(state);
}

Test(pricing, caps_the_number_of_rules)
{
    json_t *state = NULL;
    char id[16];
    for (int i = 0; i < PRICING_RULES_MAX; i++) {
        snprintf(id, sizeof id, "r%d", i);
        state = step(
            state, NS "AddPriceRule",
            add_cmd("admin", NULL, "AB-1", id, "floor", json_pack("{s:i}", "amount_minor", i)));
    }
    struct reject_case cases[] = {
        {"one too many", NS "AddPriceRule",
         add_cmd("admin", NULL, "AB-1", "last", "floor", json_pack("{s:i}", "amount_minor", 1)),
         "too_many_rules", NULL},
    };
    expect_rejections(state, cases, N(cases));
    json_decref(state);
}

Test(pricing, replay_gives_the_same_state)
{
    json_t *state = step(NULL, NS "SetListPrice", set_cmd("vendor", "v1", "AB-1", 1000, "EUR"));
    hd_decision_t d;
    cr_assert_null(decide(state, NS "AddPriceRule",
                          add_cmd("vendor", "v1", "AB-1", "p", "percent_off",
                                  json_pack("{s:i}", "basis_points", 100)),
                          &d));
    json_t *ev = json_deep_copy(json_array_get(d.events, 0));
    hd_decision_release(&d);
    json_object_set_new(json_object_get(ev, "payload"), "metadata",
                        json_pack("{s:I}", "aggregate_version", (json_int_t)2));
    json_t *events =
        json_pack("[{s:s, s:{s:s, s:I, s:s, s:{s:I}}}, o]", "type", NS "PriceSet", "payload", "sku",
                  "AB-1", "amount_minor", (json_int_t)1000, "currency", "EUR", "metadata",
                  "aggregate_version", (json_int_t)1, ev);
    json_t *replayed = hd_replay(hd_context_find("pricing"), NULL, events);
    cr_assert_eq(json_integer_value(json_object_get(replayed, "version")), 2);
    json_object_set_new(replayed, "version", json_integer(0));
    state = step(state, NS "AddPriceRule",
                 add_cmd("vendor", "v1", "AB-1", "p", "percent_off",
                         json_pack("{s:i}", "basis_points", 100)));
    cr_assert(json_equal(replayed, state), "%s vs %s", json_dumps(replayed, 0),
              json_dumps(state, 0));
    json_decref(events);
    json_decref(replayed);
    json_decref(state);
}
