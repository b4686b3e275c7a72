#include "es_mem.h"
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

static void plan_ok(const char *type, json_t *ev, struct pricing_plan *p)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(pricing_prices_plan("_rb1", type, ev, p, &err), 0, "%s", err.msg);
}

Test(pricing_projection, price_set_upserts_the_list_and_records_history)
{
    json_t *ev =
        event(3, json_pack("{s:s,s:I,s:s,s:I}", "sku", "SKU-1", "amount_minor", (json_int_t)1999,
                           "currency", "EUR", "previous_amount_minor", (json_int_t)1500));
    struct pricing_plan p;
    plan_ok("PriceSet", ev, &p);
    cr_assert_eq(p.n, 2);
    cr_assert(strstr(p.stmts[0].sql, "INSERT INTO `prices_rb1`"));
    cr_assert(strstr(p.stmts[0].sql, "list_amount_minor=VALUES(list_amount_minor)"));
    cr_assert_eq(p.stmts[0].params[1].i, 1999);
    cr_assert_eq(p.stmts[0].params[3].i, 3);
    cr_assert(strstr(p.stmts[1].sql, "INSERT INTO `price_history_rb1`"));
    cr_assert_eq(p.stmts[1].params[1].i, 3);
    cr_assert_str_eq(p.stmts[1].params[3].s, "PriceSet");
    cr_assert_eq(p.stmts[1].params[6].i, 1999);
    cr_assert_eq(p.stmts[1].params[8].type, ES_DB_NULL);
    cr_assert(strstr(p.details, "\"previous_amount_minor\":1500"), "%s", p.details);
    cr_assert_null(strstr(p.details, "metadata"));
    pricing_plan_release(&p);
    json_decref(ev);
}

Test(pricing_projection, rule_added_keeps_the_list_and_stores_params)
{
    json_t *ev = event(2, json_pack("{s:s,s:s,s:s,s:s,s:I,s:n,s:n,s:n,s:I,s:n}", "sku", "SKU-1",
                                    "rule_id", "summer", "kind", "percent_off", "currency", "EUR",
                                    "basis_points", (json_int_t)1500, "amount_minor", "threshold",
                                    "cap_minor", "valid_from", (json_int_t)1000, "valid_until"));
    struct pricing_plan p;
    plan_ok("PriceRuleAdded", ev, &p);
    cr_assert_eq(p.n, 3);
    cr_assert_null(strstr(p.stmts[0].sql, "list_amount_minor=VALUES"), "a rule must not touch it");
    cr_assert_eq(p.stmts[0].params[1].type, ES_DB_NULL);
    const struct pricing_stmt *r = &p.stmts[1];
    cr_assert(strstr(r->sql, "`price_rules_rb1`"));
    cr_assert_str_eq(r->params[2].s, "percent_off");
    cr_assert_eq(r->params[4].i, 1500);
    cr_assert_eq(r->params[5].type, ES_DB_NULL);
    cr_assert_eq(r->params[8].i, 1000);
    cr_assert_eq(r->params[9].type, ES_DB_NULL);
    cr_assert_eq(r->params[10].i, 2);
    cr_assert_str_eq(p.stmts[2].params[8].s, "summer");
    pricing_plan_release(&p);
    json_decref(ev);
}

Test(pricing_projection, rule_removed_must_find_the_live_rule)
{
    json_t *ev = event(4, json_pack("{s:s,s:s}", "sku", "SKU-1", "rule_id", "summer"));
    struct pricing_plan p;
    plan_ok("PriceRuleRemoved", ev, &p);
    cr_assert_eq(p.n, 3);
    cr_assert(p.stmts[0].must_match);
    cr_assert(p.stmts[1].must_match);
    cr_assert(strstr(p.stmts[1].sql, "removed=0"));
    pricing_plan_release(&p);
    json_decref(ev);
}

Test(pricing_projection, rejects_malformed_events_and_ignores_others)
{
    struct pricing_plan p;
    es_err_t err = ES_ERR_INIT;
    json_t *ev = event(1, json_pack("{s:s,s:I,s:s}", "sku", "SKU-1", "amount_minor", (json_int_t)-5,
                                    "currency", "EUR"));
    cr_assert_eq(pricing_prices_plan("", "PriceSet", ev, &p, &err), -1);
    cr_assert_eq(err.code, ES_EINVAL);
    cr_assert(strstr(err.msg, "amount_minor"), "%s", err.msg);
    pricing_plan_release(&p);
    json_decref(ev);

    es_clear(&err);
    ev = event(1, json_pack("{s:s}", "sku", "SKU-1"));
    cr_assert_eq(pricing_prices_plan("", "PriceRuleRemoved", ev, &p, &err), -1);
    cr_assert(strstr(err.msg, "rule_id"), "%s", err.msg);
    pricing_plan_release(&p);

    es_clear(&err);
    cr_assert_eq(pricing_prices_plan("", "ProductListed", ev, &p, &err), 0);
    cr_assert_eq(p.n, 0);
    pricing_plan_release(&p);
    json_decref(ev);
}

Test(pricing_projection, ddl_names_every_table_with_the_suffix)
{
    char **ddl = pricing_prices_ddl("_v2");
    size_t n = 0;
    for (; ddl[n]; n++) {
        cr_assert(strstr(ddl[n], "_v2`"), "%s", ddl[n]);
        free(ddl[n]);
    }
    free(ddl);
    cr_assert_eq(n, 3);
    cr_assert_eq(pj_projection_find("pricing", NULL), &pricing_prices_projection);
}
