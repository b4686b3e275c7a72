#include "inventory.h"
#include "pj_test.h"
#include <criterion/criterion.h>

Test(inventory_projection, movement_kinds)
{
    cr_assert_str_eq(inventory_movement_kind("StockReceived"), "received");
    cr_assert_str_eq(inventory_movement_kind("StockAdjusted"), "adjusted");
    cr_assert_str_eq(inventory_movement_kind("StockReserved"), "reserved");
    cr_assert_str_eq(inventory_movement_kind("StockReservationRejected"), "rejected");
    cr_assert_str_eq(inventory_movement_kind("StockReleased"), "released");
    cr_assert_str_eq(inventory_movement_kind("StockCommitted"), "committed");
    cr_assert_null(inventory_movement_kind("ProductListed"));
    cr_assert_null(inventory_movement_kind(NULL));
}

Test(inventory_projection, is_in_the_table_of_projections)
{
    const pj_projection_t *p = pj_projection_find("inventory", NULL);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "inventory_stock");
    cr_assert_str_eq(p->tables[0], "stock");
    cr_assert_str_eq(p->tables[1], "stock_movements");
    cr_assert_null(p->tables[2]);
}

#define EVENT_ID "0b7c6f0e-3f5e-4a0a-9a55-2d1f0c3b4a33"

static json_t *stock_event(json_int_t version, json_t *body)
{
    json_t *ev = json_pack("{s:{s:s,s:I,s:I}}", "metadata", "event_id", EVENT_ID,
                           "aggregate_version", version, "occurred_at", (json_int_t)1700000000500);
    json_object_update(ev, body);
    json_decref(body);
    return ev;
}

/* The stock row's upsert and the movement's insert, in that order, with the counts given. */
static void expect_stock_plan(const pj_plan_t *p, const char *sku, const char *vendor,
                              long long version, long long on_hand, long long reserved,
                              const char *kind, long long quantity)
{
    cr_assert_eq(pj_plan_len(p), 2);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPSERT, "stock", "INSERT INTO `stock_t` (", false, 7);
    cr_assert(strstr(st->sql, "vendor_id = IF(VALUES(vendor_id) = '', vendor_id"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S(sku), ES_DB_S(vendor), ES_DB_I(on_hand), ES_DB_I(reserved),
                     ES_DB_I(on_hand - reserved), ES_DB_I(version), ES_DB_I(1700000000500));
    st = pj_expect_stmt(p, 1, PJ_INSERT, "stock_movements", "INSERT INTO `stock_movements_t` (",
                        false, 10);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S(EVENT_ID), ES_DB_S(sku), ES_DB_I(version), ES_DB_S(kind),
                     ES_DB_I(quantity));
    PJ_EXPECT_PARAMS(st, 7, ES_DB_I(on_hand), ES_DB_I(reserved), ES_DB_I(1700000000500));
}

Test(inventory_projection, received_upserts_the_counts_and_records_the_movement)
{
    json_t *ev = stock_event(1, json_pack("{s:s,s:s,s:I,s:I,s:I}", "sku", "SKU-1", "vendor_id",
                                          "v-1", "quantity", (json_int_t)10, "on_hand",
                                          (json_int_t)10, "reserved", (json_int_t)0));
    pj_plan_t *p = pj_expect_plan(&inventory_stock_projection, "_t", "StockReceived", ev, 0, NULL);
    expect_stock_plan(p, "SKU-1", "v-1", 1, 10, 0, "received", 10);
    const struct pj_stmt *mv = pj_plan_stmt(p, 1);
    pj_expect_null(mv, 5); /* no order */
    pj_expect_null(mv, 6); /* no reason */
    pj_plan_free(p);
    json_decref(ev);
}

Test(inventory_projection, adjusted_takes_the_delta_and_keeps_the_vendor)
{
    json_t *ev = stock_event(3, json_pack("{s:s,s:I,s:s,s:I,s:I}", "sku", "SKU-1", "delta",
                                          (json_int_t)-2, "reason", "damaged", "on_hand",
                                          (json_int_t)8, "reserved", (json_int_t)1));
    pj_plan_t *p = pj_expect_plan(&inventory_stock_projection, "_t", "StockAdjusted", ev, 0, NULL);
    expect_stock_plan(p, "SKU-1", "", 3, 8, 1, "adjusted", -2);
    pj_expect_s(pj_plan_stmt(p, 1), 6, "damaged");
    pj_plan_free(p);
    json_decref(ev);
}

Test(inventory_projection, reserved_records_the_order)
{
    json_t *ev = stock_event(4, json_pack("{s:s,s:I,s:s,s:I,s:I}", "sku", "SKU-1", "quantity",
                                          (json_int_t)3, "order_id", "o-1", "on_hand",
                                          (json_int_t)8, "reserved", (json_int_t)4));
    static const char *const types[] = {"StockReserved", "StockReservationRejected",
                                        "StockReleased", "StockCommitted"};
    static const char *const kinds[] = {"reserved", "rejected", "released", "committed"};
    for (size_t i = 0; i < 4; i++) {
        pj_plan_t *p = pj_expect_plan(&inventory_stock_projection, "_t", types[i], ev, 0, NULL);
        expect_stock_plan(p, "SKU-1", "", 4, 8, 4, kinds[i], 3);
        pj_expect_s(pj_plan_stmt(p, 1), 5, "o-1");
        pj_plan_free(p);
    }
    json_decref(ev);
}

Test(inventory_projection, malformed_counts_are_invalid_and_other_events_ignored)
{
    json_t *ev = stock_event(1, json_pack("{s:s,s:I,s:I}", "sku", "SKU-1", "on_hand", (json_int_t)2,
                                          "reserved", (json_int_t)3));
    pj_plan_free(pj_expect_plan(&inventory_stock_projection, "", "StockReserved", ev, -1,
                                "StockReserved: sku 'SKU-1' with on hand 2 and reserved 3"));
    json_object_del(ev, "reserved");
    pj_plan_free(pj_expect_plan(&inventory_stock_projection, "", "StockReceived", ev, -1,
                                "StockReceived: sku, metadata or counts missing"));
    pj_plan_t *p = pj_expect_plan(&inventory_stock_projection, "", "ProductListed", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    pj_plan_free(p);
    json_decref(ev);
}

Test(inventory_projection, ddl_creates_both_tables)
{
    pj_plan_t *p = pj_plan_new();
    inventory_stock_projection.ddl("_x", p);
    cr_assert_eq(pj_plan_len(p), 2);
    pj_expect_stmt(p, 0, PJ_DDL, "stock", "CREATE TABLE IF NOT EXISTS `stock_x`", false, 0);
    pj_expect_stmt(p, 1, PJ_DDL, "stock_movements",
                   "CREATE TABLE IF NOT EXISTS `stock_movements_x`", false, 0);
    pj_plan_free(p);
}
