#include "orders.h"
#include "pj_test.h"
#include <criterion/criterion.h>

static json_t *order_event(json_int_t version, json_t *body)
{
    json_t *ev = json_pack("{s:{s:I,s:I},s:s}", "metadata", "aggregate_version", version,
                           "occurred_at", (json_int_t)1700000000600, "order_id", "o-1");
    json_object_update(ev, body);
    json_decref(body);
    return ev;
}

/* The timeline row a status change ends with. */
static void expect_timeline(const pj_plan_t *p, size_t i, long long v, const char *status)
{
    const struct pj_stmt *st = pj_expect_stmt(p, i, PJ_INSERT, "order_timeline",
                                              "INSERT IGNORE INTO `order_timeline_o`", false, 5);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("o-1"), ES_DB_I(v), ES_DB_S(status));
    pj_expect_i(st, 4, 1700000000600);
}

Test(orders_projection, placed_inserts_the_order_its_lines_and_the_timeline)
{
    json_t *ev = order_event(
        1, json_pack("{s:s,s:s,s:I,s:[{s:s,s:s,s:I,s:I},{s:s,s:s,s:I,s:I}]}", "customer_id", "c-1",
                     "currency", "EUR", "total_minor", (json_int_t)3500, "lines", "sku", "A",
                     "vendor_id", "v-1", "quantity", (json_int_t)1, "unit_amount_minor",
                     (json_int_t)1500, "sku", "B", "vendor_id", "v-2", "quantity", (json_int_t)2,
                     "unit_amount_minor", (json_int_t)1000));
    pj_plan_t *p = pj_expect_plan(&orders_orders_projection, "_o", "OrderPlaced", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 4);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_INSERT, "orders", "INSERT INTO `orders_o` (", false, 8);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("o-1"), ES_DB_S("c-1"), ES_DB_S("placed"), ES_DB_I(3500),
                     ES_DB_S("EUR"), ES_DB_I(1), ES_DB_I(1700000000600), ES_DB_I(1700000000600));
    for (size_t i = 0; i < 2; i++) {
        st = pj_expect_stmt(p, 1 + i, PJ_INSERT, "order_lines", "INSERT INTO `order_lines_o` (",
                            false, 5);
        PJ_EXPECT_PARAMS(st, 0, ES_DB_S("o-1"), ES_DB_S(i ? "B" : "A"), ES_DB_S(i ? "v-2" : "v-1"),
                         ES_DB_I(i ? 2 : 1), ES_DB_I(i ? 1000 : 1500));
    }
    expect_timeline(p, 3, 1, "placed");
    pj_expect_null(pj_plan_stmt(p, 3), 3);
    pj_plan_free(p);
    json_decref(ev);
}

Test(orders_projection, cancelled_updates_status_and_reason)
{
    json_t *ev = order_event(3, json_pack("{s:s,s:b}", "reason", "out_of_stock", "refund", 1));
    pj_plan_t *p = pj_expect_plan(&orders_orders_projection, "_o", "OrderCancelled", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 2);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPDATE, "orders", "UPDATE `orders_o` SET", false, 7);
    cr_assert(strstr(st->sql, "version = GREATEST(version, ?)"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("cancelled"), ES_DB_S("out_of_stock"), ES_DB_N, ES_DB_I(1),
                     ES_DB_I(3), ES_DB_I(1700000000600), ES_DB_S("o-1"));
    expect_timeline(p, 1, 3, "cancelled");
    pj_expect_s(pj_plan_stmt(p, 1), 3, "out_of_stock");
    pj_plan_free(p);
    json_decref(ev);
}

Test(orders_projection, shipped_records_the_tracking_number)
{
    json_t *ev = order_event(5, json_pack("{s:s,s:s}", "tracking_number", "T-1", "reason", "x"));
    pj_plan_t *p = pj_expect_plan(&orders_orders_projection, "_o", "OrderShipped", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 2);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPDATE, "orders", "UPDATE `orders_o` SET", false, 7);
    pj_expect_s(st, 0, "shipped");
    pj_expect_null(st, 1); /* only a cancellation's reason is a cancel reason */
    pj_expect_s(st, 2, "T-1");
    pj_expect_i(st, 3, 0);
    expect_timeline(p, 1, 5, "shipped");
    pj_plan_free(p);
    json_decref(ev);
}

Test(orders_projection, statusless_events_update_without_a_timeline_row)
{
    json_t *ev = order_event(6, json_pack("{s:s}", "tracking_number", ""));
    static const char *const types[] = {"OrderRefundRequested", "OrderLineReserved"};
    for (size_t i = 0; i < 2; i++) {
        pj_plan_t *p = pj_expect_plan(&orders_orders_projection, "_o", types[i], ev, 0, NULL);
        cr_assert_eq(pj_plan_len(p), 1);
        const struct pj_stmt *st =
            pj_expect_stmt(p, 0, PJ_UPDATE, "orders", "UPDATE `orders_o` SET", false, 7);
        pj_expect_null(st, 0);
        pj_expect_null(st, 2); /* an empty tracking number sets nothing */
        pj_expect_i(st, 3, i == 0);
        pj_plan_free(p);
    }
    static const char *const moves[] = {"OrderStockReserved", "OrderConfirmed", "OrderDelivered"};
    static const char *const statuses[] = {"stock_reserved", "confirmed", "delivered"};
    for (size_t i = 0; i < 3; i++) {
        pj_plan_t *p = pj_expect_plan(&orders_orders_projection, "_o", moves[i], ev, 0, NULL);
        cr_assert_eq(pj_plan_len(p), 2);
        pj_expect_s(pj_plan_stmt(p, 0), 0, statuses[i]);
        expect_timeline(p, 1, 6, statuses[i]);
        pj_plan_free(p);
    }
    json_decref(ev);
}

Test(orders_projection, malformed_events_are_invalid_and_others_ignored)
{
    json_t *ev = order_event(1, json_pack("{s:s}", "customer_id", "c-1"));
    pj_plan_free(pj_expect_plan(&orders_orders_projection, "", "OrderPlaced", ev, -1,
                                "OrderPlaced 'o-1': customer_id or currency missing"));
    json_object_del(ev, "order_id");
    pj_plan_free(pj_expect_plan(&orders_orders_projection, "", "OrderConfirmed", ev, -1,
                                "OrderConfirmed: order_id or metadata missing"));
    pj_plan_t *p = pj_expect_plan(&orders_orders_projection, "", "PaymentCaptured", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    pj_plan_free(p);
    json_decref(ev);
}

Test(orders_projection, ddl_creates_the_three_tables)
{
    pj_plan_t *p = pj_plan_new();
    orders_orders_projection.ddl("_o", p);
    cr_assert_eq(pj_plan_len(p), 3);
    pj_expect_stmt(p, 0, PJ_DDL, "orders", "CREATE TABLE IF NOT EXISTS `orders_o`", false, 0);
    pj_expect_stmt(p, 1, PJ_DDL, "order_lines", "`order_lines_o`", false, 0);
    pj_expect_stmt(p, 2, PJ_DDL, "order_timeline", "`order_timeline_o`", false, 0);
    pj_plan_free(p);
    cr_assert_eq(pj_projection_find("orders", NULL), &orders_orders_projection);
}
