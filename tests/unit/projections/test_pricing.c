#include "es_mem.h"
#include "pj_test.h"
#include "pricing.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_ID "0b7c6f0e-3f5e-4a0a-9a55-2d1f0c3b4a22"

static json_t *event(json_int_t version, json_t *body)
{
    json_t *ev = json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s}}", "metadata", "event_id", EVENT_ID,
                           "aggregate_id", "SKU-1", "aggregate_version", version, "command_id",
                           EVENT_ID, "correlation_id", "c1", "occurred_at",
                           (json_int_t)1700000000123LL, "actor", "u1");
    json_object_update(ev, body);
    json_decref(body);
    return ev;
}

static pj_plan_t *plan_ok(const char *type, json_t *ev)
{
    return pj_expect_plan(&pricing_prices_projection, "_rb1", type, ev, 0, NULL);
}

Test(pricing_projection, price_set_upserts_the_list_and_records_history)
{
    json_t *ev =
        event(3, json_pack("{s:s,s:I,s:s,s:I}", "sku", "SKU-1", "amount_minor", (json_int_t)1999,
                           "currency", "EUR", "previous_amount_minor", (json_int_t)1500));
    pj_plan_t *p = plan_ok("PriceSet", ev);
    cr_assert_eq(pj_plan_len(p), 2);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPSERT, "prices", "INSERT INTO `prices_rb1`", false, 6);
    cr_assert(strstr(st->sql, "list_amount_minor=VALUES(list_amount_minor)"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("SKU-1"), ES_DB_I(1999), ES_DB_S("EUR"), ES_DB_I(3),
                     ES_DB_I(1700000000123LL), ES_DB_S(EVENT_ID));
    st = pj_expect_stmt(p, 1, PJ_INSERT, "price_history", "INSERT INTO `price_history_rb1`", false,
                        10);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("SKU-1"), ES_DB_I(3), ES_DB_S(EVENT_ID), ES_DB_S("PriceSet"),
                     ES_DB_I(1700000000123LL), ES_DB_S("u1"), ES_DB_I(1999), ES_DB_S("EUR"),
                     ES_DB_N);
    const char *details = st->params[9].s;
    cr_assert(strstr(details, "\"previous_amount_minor\":1500"), "%s", details);
    cr_assert_null(strstr(details, "metadata"));
    pj_plan_free(p);
    json_decref(ev);
}

Test(pricing_projection, rule_added_keeps_the_list_and_stores_params)
{
    json_t *ev = event(2, json_pack("{s:s,s:s,s:s,s:s,s:I,s:n,s:n,s:n,s:I,s:n}", "sku", "SKU-1",
                                    "rule_id", "summer", "kind", "percent_off", "currency", "EUR",
                                    "basis_points", (json_int_t)1500, "amount_minor", "threshold",
                                    "cap_minor", "valid_from", (json_int_t)1000, "valid_until"));
    pj_plan_t *p = plan_ok("PriceRuleAdded", ev);
    cr_assert_eq(pj_plan_len(p), 3);
    const struct pj_stmt *st = pj_expect_stmt(p, 0, PJ_UPSERT, "prices", "`prices_rb1`", false, 6);
    cr_assert_null(strstr(st->sql, "list_amount_minor=VALUES"), "a rule must not touch it");
    pj_expect_null(st, 1);
    const struct pj_stmt *r =
        pj_expect_stmt(p, 1, PJ_UPSERT, "price_rules", "`price_rules_rb1`", false, 12);
    PJ_EXPECT_PARAMS(r, 0, ES_DB_S("SKU-1"), ES_DB_S("summer"), ES_DB_S("percent_off"),
                     ES_DB_S("EUR"), ES_DB_I(1500), ES_DB_N, ES_DB_N, ES_DB_N, ES_DB_I(1000),
                     ES_DB_N, ES_DB_I(2), ES_DB_I(1700000000123LL));
    st = pj_expect_stmt(p, 2, PJ_INSERT, "price_history", "`price_history_rb1`", false, 10);
    pj_expect_s(st, 3, "PriceRuleAdded");
    pj_expect_null(st, 6);
    pj_expect_s(st, 8, "summer");
    pj_plan_free(p);
    json_decref(ev);
}

Test(pricing_projection, rule_removed_must_find_the_live_rule)
{
    json_t *ev = event(4, json_pack("{s:s,s:s}", "sku", "SKU-1", "rule_id", "summer"));
    pj_plan_t *p = plan_ok("PriceRuleRemoved", ev);
    cr_assert_eq(pj_plan_len(p), 3);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPDATE, "prices", "UPDATE `prices_rb1` SET version=?", true, 4);
    pj_expect_i(st, 0, 4);
    pj_expect_s(st, 3, "SKU-1");
    st = pj_expect_stmt(p, 1, PJ_UPDATE, "price_rules", "removed=0", true, 4);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_I(4), ES_DB_I(1700000000123LL), ES_DB_S("SKU-1"),
                     ES_DB_S("summer"));
    st = pj_expect_stmt(p, 2, PJ_INSERT, "price_history", "`price_history_rb1`", false, 10);
    PJ_EXPECT_PARAMS(st, 6, ES_DB_N, ES_DB_N, ES_DB_S("summer"));
    cr_assert_str_eq(pj_plan_subject(p), "sku 'SKU-1' (rule 'summer')");
    pj_plan_free(p);
    json_decref(ev);
}

Test(pricing_projection, rejects_malformed_events_and_ignores_others)
{
    json_t *ev = event(1, json_pack("{s:s,s:I,s:s}", "sku", "SKU-1", "amount_minor", (json_int_t)-5,
                                    "currency", "EUR"));
    pj_plan_free(
        pj_expect_plan(&pricing_prices_projection, "", "PriceSet", ev, -1, "amount_minor"));
    json_decref(ev);

    ev = event(1, json_pack("{s:s}", "sku", "SKU-1"));
    pj_plan_free(
        pj_expect_plan(&pricing_prices_projection, "", "PriceRuleRemoved", ev, -1, "rule_id"));
    pj_plan_free(pj_expect_plan(&pricing_prices_projection, "", "PriceSet", ev, -1, "currency"));
    pj_plan_t *p = pj_expect_plan(&pricing_prices_projection, "", "ProductListed", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    pj_plan_free(p);
    json_decref(ev);

    ev = event(1, json_pack("{s:s,s:s,s:s,s:s}", "sku", "SKU-1", "rule_id", "r", "currency", "EUR",
                            "basis_points", "ten"));
    pj_plan_free(pj_expect_plan(&pricing_prices_projection, "", "PriceRuleAdded", ev, -1, "kind"));
    json_object_set_new(ev, "kind", json_string("percent_off"));
    pj_plan_free(
        pj_expect_plan(&pricing_prices_projection, "", "PriceRuleAdded", ev, -1, "basis_points"));
    json_object_set_new(json_object_get(ev, "metadata"), "actor", json_integer(1));
    pj_plan_free(
        pj_expect_plan(&pricing_prices_projection, "", "PriceRuleAdded", ev, -1, "metadata.actor"));
    json_decref(ev);
}

Test(pricing_projection, ddl_names_every_table_with_the_suffix)
{
    pj_plan_t *p = pj_plan_new();
    pricing_prices_projection.ddl("_v2", p);
    cr_assert_eq(pj_plan_len(p), 3);
    pj_expect_stmt(p, 0, PJ_DDL, "prices", "`prices_v2`", false, 0);
    pj_expect_stmt(p, 1, PJ_DDL, "price_rules", "`price_rules_v2`", false, 0);
    pj_expect_stmt(p, 2, PJ_DDL, "price_history", "`price_history_v2`", false, 0);
    pj_plan_free(p);
    cr_assert_eq(pj_projection_find("pricing", NULL), &pricing_prices_projection);
}
