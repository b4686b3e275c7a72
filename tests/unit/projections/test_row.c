/* pj_row: the projections' own plans applied to rows in memory give the rows MariaDB holds after
 * running the same statements (the expected rows below are what the live tables show; the
 * integration test test_api_cache.py compares the two under concurrent writes). */
#include "catalog.h"
#include "inventory.h"
#include "pj_row.h"
#include "pj_test.h"
#include "pricing.h"
#include <criterion/criterion.h>
#include <string.h>

#define EVENT_ID "0b7c6f0e-3f5e-4a0a-9a55-2d1f0c3b4a44"

static json_t *event(json_int_t version, json_t *body)
{
    json_t *ev = json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s}}", "metadata", "event_id", EVENT_ID,
                           "aggregate_id", "SKU-1", "aggregate_version", version, "command_id",
                           EVENT_ID, "correlation_id", "c1", "occurred_at",
                           (json_int_t)(1700000000000LL + version), "actor", "u1");
    json_object_update(ev, body);
    json_decref(body);
    return ev;
}

/* Plans type's event ev (stolen) with p and applies it to tables; the code of pj_row_apply. */
static int apply(const pj_projection_t *p, const pj_schema_t *s, json_t *tables, const char *type,
                 json_t *ev, es_err_t *err)
{
    pj_plan_t *plan = pj_plan_new();
    cr_assert_eq(p->plan("", type, ev, plan, err), 0, "%s: %s", type, err->msg);
    int rc = pj_row_apply(s, tables, plan, err);
    pj_plan_free(plan);
    json_decref(ev);
    return rc;
}

static void expect_json(const json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    cr_assert_not_null(want, "bad expectation %s", want_text);
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq(g, w);
    free(g);
    free(w);
    json_decref(want);
}

Test(pj_row, schema_reads_columns_and_keys_from_the_ddl)
{
    es_err_t err = ES_ERR_INIT;
    pj_schema_t *s = pj_schema_new(&pricing_prices_projection, &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(pj_schema_columns(s, "prices"), "sku, list_amount_minor, currency, version, "
                                                     "applied_events, updated_at, last_event_id");
    cr_assert_str_eq(pj_schema_key(s, "price_rules"), "sku, rule_id");
    cr_assert_null(pj_schema_columns(s, "nope"));
    pj_schema_free(s);
    /* an index of any kind is no column: the catalog's FULLTEXT key (its ?q= search) */
    s = pj_schema_new(&catalog_products_projection, &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(pj_schema_columns(s, "products"),
                     "sku, vendor_id, name, description, category, attributes, currency, status, "
                     "version, applied_events, listed_at, updated_at, last_event_id");
    pj_schema_free(s);
}

Test(pj_row, product_listed_changed_delisted_and_relisted)
{
    const pj_projection_t *p = &catalog_products_projection;
    es_err_t err = ES_ERR_INIT;
    pj_schema_t *s = pj_schema_new(p, &err);
    cr_assert_not_null(s, "%s", err.msg);
    json_t *t = json_pack("{s:[]}", "products");
    json_t *listed =
        json_pack("{s:s,s:s,s:s,s:s,s:{s:s},s:s}", "sku", "SKU-1", "vendor_id", "v-1", "name",
                  "Mug", "category", "kitchen", "attributes", "size", "L", "currency", "EUR");
    cr_assert_eq(apply(p, s, t, "ProductListed", event(1, json_deep_copy(listed)), &err), 0, "%s",
                 err.msg);
    expect_json(t, "{\"products\":[{\"sku\":\"SKU-1\",\"vendor_id\":\"v-1\",\"name\":\"Mug\","
                   "\"description\":\"\",\"category\":\"kitchen\",\"attributes\":"
                   "\"{\\\"size\\\":\\\"L\\\"}\",\"currency\":\"EUR\",\"status\":\"listed\","
                   "\"version\":1,\"applied_events\":1,\"listed_at\":1700000000001,"
                   "\"updated_at\":1700000000001,\"last_event_id\":\"" EVENT_ID "\"}]}");
    cr_assert_eq(apply(p, s, t, "ProductDetailsChanged",
                       event(2, json_pack("{s:s,s:s,s:s,s:s}", "sku", "SKU-1", "name", "Big mug",
                                          "description", "d", "category", "kitchen")),
                       &err),
                 0, "%s", err.msg);
    cr_assert_eq(
        apply(p, s, t, "ProductDelisted", event(3, json_pack("{s:s}", "sku", "SKU-1")), &err), 0,
        "%s", err.msg);
    json_t *row = json_array_get(json_object_get(t, "products"), 0);
    expect_json(row, "{\"sku\":\"SKU-1\",\"vendor_id\":\"v-1\",\"name\":\"Big mug\","
                     "\"description\":\"d\",\"category\":\"kitchen\",\"attributes\":\"{}\","
                     "\"currency\":\"EUR\",\"status\":\"delisted\",\"version\":3,"
                     "\"applied_events\":3,\"listed_at\":1700000000001,"
                     "\"updated_at\":1700000000003,\"last_event_id\":\"" EVENT_ID "\"}");
    /* a relisting lands on the same row and keeps counting */
    cr_assert_eq(apply(p, s, t, "ProductListed", event(4, listed), &err), 0, "%s", err.msg);
    cr_assert_eq(json_array_size(json_object_get(t, "products")), 1);
    row = json_array_get(json_object_get(t, "products"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "listed");
    cr_assert_eq(json_integer_value(json_object_get(row, "applied_events")), 4);
    cr_assert_eq(json_integer_value(json_object_get(row, "listed_at")), 1700000000004);
    json_decref(t);
    pj_schema_free(s);
}

/* plan's statements, each must-match UPDATE replaced by its upsert form (as a batch merges it),
 * applied to tables. */
static int apply_upsert_forms(const pj_schema_t *s, json_t *tables, const pj_plan_t *plan,
                              es_err_t *err)
{
    pj_plan_t *alt = pj_plan_new();
    for (size_t i = 0; i < pj_plan_len(plan); i++) {
        const struct pj_stmt *st = pj_plan_stmt(plan, i);
        bool up = st->must_match && st->upsert;
        struct pj_stmt *a =
            pj_plan_add(alt, up ? PJ_UPSERT : st->kind, st->table, "%s", up ? st->upsert : st->sql);
        pj_stmt_bind(a, st->params, st->n);
    }
    int rc = pj_row_apply(s, tables, alt, err);
    pj_plan_free(alt);
    return rc;
}

/* A change and a delisting written as their upsert forms (a batch's merged statement) leave the
 * row their UPDATEs leave; on a missing row the form inserts one (which a batch counts as 1
 * affected row, not 2, and undoes). */
Test(pj_row, catalog_upsert_forms_write_what_their_updates_write)
{
    const pj_projection_t *p = &catalog_products_projection;
    es_err_t err = ES_ERR_INIT;
    pj_schema_t *s = pj_schema_new(p, &err);
    cr_assert_not_null(s, "%s", err.msg);
    json_t *by_update = json_pack("{s:[]}", "products");
    cr_assert_eq(apply(p, s, by_update, "ProductListed",
                       event(1, json_pack("{s:s,s:s,s:s,s:s,s:{s:s},s:s}", "sku", "SKU-1",
                                          "vendor_id", "v-1", "name", "Mug", "category", "kitchen",
                                          "attributes", "size", "L", "currency", "EUR")),
                       &err),
                 0, "%s", err.msg);
    json_t *by_upsert = json_deep_copy(by_update);
    json_t *evs[] = {
        event(2, json_pack("{s:s,s:s,s:s,s:s,s:{s:s}}", "sku", "SKU-1", "name", "Big mug",
                           "description", "d", "category", "home", "attributes", "c", "red")),
        event(3, json_pack("{s:s}", "sku", "SKU-1"))};
    const char *types[] = {"ProductDetailsChanged", "ProductDelisted"};
    for (int i = 0; i < 2; i++) {
        pj_plan_t *plan = pj_plan_new();
        cr_assert_eq(p->plan("", types[i], evs[i], plan, &err), 0, "%s", err.msg);
        cr_assert_not_null(pj_plan_stmt(plan, 0)->upsert, "%s: no upsert form", types[i]);
        cr_assert_eq(pj_row_apply(s, by_update, plan, &err), 0, "%s", err.msg);
        cr_assert_eq(apply_upsert_forms(s, by_upsert, plan, &err), 0, "%s", err.msg);
        char *a = json_dumps(by_update, JSON_SORT_KEYS | JSON_COMPACT);
        char *b = json_dumps(by_upsert, JSON_SORT_KEYS | JSON_COMPACT);
        cr_assert_str_eq(b, a, "%s", types[i]);
        free(a);
        free(b);
        /* on no row: an insert, not a change of another row */
        json_t *empty = json_pack("{s:[]}", "products");
        cr_assert_eq(apply_upsert_forms(s, empty, plan, &err), 0, "%s", err.msg);
        cr_assert_eq(json_array_size(json_object_get(empty, "products")), 1);
        json_decref(empty);
        pj_plan_free(plan);
        json_decref(evs[i]);
    }
    json_decref(by_update);
    json_decref(by_upsert);
    pj_schema_free(s);
}

Test(pj_row, must_match_update_of_a_missing_row_fails_as_the_projector_does)
{
    const pj_projection_t *p = &catalog_products_projection;
    es_err_t err = ES_ERR_INIT;
    pj_schema_t *s = pj_schema_new(p, &err);
    json_t *t = json_pack("{s:[]}", "products");
    cr_assert_eq(
        apply(p, s, t, "ProductDelisted", event(2, json_pack("{s:s}", "sku", "SKU-1")), &err), -1);
    cr_assert_eq(err.code, ES_ENOTFOUND);
    cr_assert(strstr(err.msg, "sku 'SKU-1'"), "%s", err.msg);
    json_decref(t);
    pj_schema_free(s);
}

Test(pj_row, prices_and_rules_follow_set_add_remove_and_readd)
{
    const pj_projection_t *p = &pricing_prices_projection;
    es_err_t err = ES_ERR_INIT;
    pj_schema_t *s = pj_schema_new(p, &err);
    cr_assert_not_null(s, "%s", err.msg);
    json_t *t = json_pack("{s:[],s:[]}", "prices", "price_rules"); /* price_history not held */
    /* a rule before any list price: the prices row with a NULL list */
    cr_assert_eq(apply(p, s, t, "PriceRuleAdded",
                       event(1, json_pack("{s:s,s:s,s:s,s:s,s:I}", "sku", "SKU-1", "rule_id", "z",
                                          "kind", "percent_off", "currency", "EUR", "basis_points",
                                          (json_int_t)1000)),
                       &err),
                 0, "%s", err.msg);
    cr_assert_eq(apply(p, s, t, "PriceSet",
                       event(2, json_pack("{s:s,s:I,s:s}", "sku", "SKU-1", "amount_minor",
                                          (json_int_t)1999, "currency", "EUR")),
                       &err),
                 0, "%s", err.msg);
    cr_assert_eq(
        apply(p, s, t, "PriceRuleAdded",
              event(3, json_pack("{s:s,s:s,s:s,s:s,s:I}", "sku", "SKU-1", "rule_id", "a", "kind",
                                 "fixed_off", "currency", "EUR", "amount_minor", (json_int_t)100)),
              &err),
        0, "%s", err.msg);
    cr_assert_eq(apply(p, s, t, "PriceRuleRemoved",
                       event(4, json_pack("{s:s,s:s}", "sku", "SKU-1", "rule_id", "z")), &err),
                 0, "%s", err.msg);
    expect_json(json_object_get(t, "prices"),
                "[{\"sku\":\"SKU-1\",\"list_amount_minor\":1999,\"currency\":\"EUR\","
                "\"version\":4,\"applied_events\":4,\"updated_at\":1700000000004,"
                "\"last_event_id\":\"" EVENT_ID "\"}]");
    /* sorted by primary key; the removed rule kept with its removal */
    json_t *rules = json_object_get(t, "price_rules");
    cr_assert_eq(json_array_size(rules), 2);
    expect_json(json_array_get(rules, 0),
                "{\"sku\":\"SKU-1\",\"rule_id\":\"a\",\"kind\":\"fixed_off\",\"currency\":\"EUR\","
                "\"basis_points\":null,\"amount_minor\":100,\"threshold\":null,\"cap_minor\":null,"
                "\"valid_from\":null,\"valid_until\":null,\"removed\":0,\"added_version\":3,"
                "\"removed_version\":null,\"added_at\":1700000000003,\"removed_at\":null}");
    json_t *z = json_array_get(rules, 1);
    cr_assert_eq(json_integer_value(json_object_get(z, "removed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(z, "removed_version")), 4);
    /* removing it again matches no live rule: the event fails (the projector dead-letters it) */
    json_t *copy = json_deep_copy(t);
    cr_assert_eq(apply(p, s, copy, "PriceRuleRemoved",
                       event(5, json_pack("{s:s,s:s}", "sku", "SKU-1", "rule_id", "z")), &err),
                 -1);
    cr_assert_eq(err.code, ES_ENOTFOUND);
    json_decref(copy);
    json_decref(t);
    pj_schema_free(s);
}

Test(pj_row, stock_counts_follow_and_an_empty_vendor_keeps_the_known_one)
{
    const pj_projection_t *p = &inventory_stock_projection;
    es_err_t err = ES_ERR_INIT;
    pj_schema_t *s = pj_schema_new(p, &err);
    cr_assert_not_null(s, "%s", err.msg);
    json_t *t = json_pack("{s:[]}", "stock");
    cr_assert_eq(apply(p, s, t, "StockReceived",
                       event(1, json_pack("{s:s,s:s,s:I,s:I,s:I}", "sku", "SKU-1", "vendor_id",
                                          "v-1", "quantity", (json_int_t)10, "on_hand",
                                          (json_int_t)10, "reserved", (json_int_t)0)),
                       &err),
                 0, "%s", err.msg);
    cr_assert_eq(apply(p, s, t, "StockReserved",
                       event(2, json_pack("{s:s,s:s,s:I,s:I,s:I}", "sku", "SKU-1", "order_id",
                                          "o-1", "quantity", (json_int_t)3, "on_hand",
                                          (json_int_t)10, "reserved", (json_int_t)3)),
                       &err),
                 0, "%s", err.msg);
    expect_json(t, "{\"stock\":[{\"sku\":\"SKU-1\",\"vendor_id\":\"v-1\",\"on_hand\":10,"
                   "\"reserved\":3,\"available\":7,\"version\":2,\"applied_events\":2,"
                   "\"updated_at\":1700000000002}]}");
    json_decref(t);
    pj_schema_free(s);
}
