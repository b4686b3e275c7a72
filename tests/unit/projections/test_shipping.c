#include "pj_test.h"
#include "shipping.h"
#include <criterion/criterion.h>

static json_t *shipment_event(json_int_t version, json_t *body)
{
    json_t *ev = json_pack("{s:{s:I,s:I},s:s}", "metadata", "aggregate_version", version,
                           "occurred_at", (json_int_t)1700000000700, "order_id", "o-1");
    json_object_update(ev, body);
    json_decref(body);
    return ev;
}

Test(shipping_projection, requested_inserts_the_shipment)
{
    json_t *ev = shipment_event(1, json_pack("{s:s}", "customer_id", "c-1"));
    pj_plan_t *p =
        pj_expect_plan(&shipping_shipments_projection, "_s", "ShipmentRequested", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_INSERT, "shipments", "INSERT INTO `shipments_s` (", false, 4);
    cr_assert(strstr(st->sql, "'requested'"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("o-1"), ES_DB_S("c-1"), ES_DB_I(1700000000700), ES_DB_I(1));
    pj_plan_free(p);
    json_decref(ev);
}

Test(shipping_projection, dispatched_must_find_the_shipment)
{
    json_t *ev =
        shipment_event(2, json_pack("{s:s,s:s}", "tracking_number", "T-1", "carrier", "dhl"));
    pj_plan_t *p =
        pj_expect_plan(&shipping_shipments_projection, "_s", "ShipmentDispatched", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st = pj_expect_stmt(
        p, 0, PJ_UPDATE, "shipments", "UPDATE `shipments_s` SET status = 'dispatched'", true, 5);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("T-1"), ES_DB_S("dhl"), ES_DB_I(1700000000700), ES_DB_I(2),
                     ES_DB_S("o-1"));
    cr_assert_str_eq(pj_plan_subject(p), "shipment of order 'o-1'");
    pj_plan_free(p);
    json_decref(ev);
}

Test(shipping_projection, delivered_takes_its_time_or_the_event_s)
{
    json_t *ev = shipment_event(3, json_pack("{s:I}", "delivered_at", (json_int_t)1700000000800));
    pj_plan_t *p =
        pj_expect_plan(&shipping_shipments_projection, "", "ShipmentDelivered", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st = pj_expect_stmt(
        p, 0, PJ_UPDATE, "shipments", "UPDATE `shipments` SET status = 'delivered'", true, 3);
    PJ_EXPECT_PARAMS(st, 0, ES_DB_I(1700000000800), ES_DB_I(3), ES_DB_S("o-1"));
    pj_plan_free(p);
    json_object_del(ev, "delivered_at");
    p = pj_expect_plan(&shipping_shipments_projection, "", "ShipmentDelivered", ev, 0, NULL);
    pj_expect_i(pj_plan_stmt(p, 0), 0, 1700000000700);
    pj_plan_free(p);
    json_decref(ev);
}

Test(shipping_projection, malformed_events_are_invalid_and_others_ignored)
{
    json_t *ev = shipment_event(2, json_object());
    pj_plan_free(pj_expect_plan(&shipping_shipments_projection, "", "ShipmentDispatched", ev, -1,
                                "ShipmentDispatched: order 'o-1' lacks tracking_number"));
    json_object_del(ev, "order_id");
    pj_plan_free(pj_expect_plan(&shipping_shipments_projection, "", "ShipmentRequested", ev, -1,
                                "order_id or metadata.aggregate_version is missing"));
    pj_plan_t *p = pj_expect_plan(&shipping_shipments_projection, "", "OrderShipped", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    pj_plan_free(p);
    json_decref(ev);
}

Test(shipping_projection, ddl_and_table_of_projections)
{
    pj_plan_t *p = pj_plan_new();
    shipping_shipments_projection.ddl("_s", p);
    cr_assert_eq(pj_plan_len(p), 1);
    pj_expect_stmt(p, 0, PJ_DDL, "shipments", "CREATE TABLE IF NOT EXISTS `shipments_s`", false, 0);
    pj_plan_free(p);
    cr_assert_eq(pj_projection_find("shipping", NULL), &shipping_shipments_projection);
}
