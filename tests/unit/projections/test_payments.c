#include "payments.h"
#include "pj_test.h"
#include <criterion/criterion.h>

Test(payments_projection, maps_every_event_to_its_status)
{
    cr_assert_str_eq(payments_status_of("PaymentRequested"), "requested");
    cr_assert_str_eq(payments_status_of("PaymentCaptured"), "captured");
    cr_assert_str_eq(payments_status_of("PaymentDeclined"), "declined");
    cr_assert_str_eq(payments_status_of("PaymentRefundRequested"), "refund_requested");
    cr_assert_str_eq(payments_status_of("PaymentRefunded"), "refunded");
    cr_assert_null(payments_status_of("StockReserved"));
    cr_assert_null(payments_status_of(NULL));
}

Test(payments_projection, is_the_payments_context_projection)
{
    cr_assert_eq(pj_projection_find("payments", NULL), &payments_payments_projection);
    cr_assert_str_eq(payments_payments_projection.tables[0], "payments");
    cr_assert_null(payments_payments_projection.tables[1]);
}

static json_t *payment_event(json_int_t version, json_t *body)
{
    json_t *ev =
        json_pack("{s:{s:I,s:I},s:s,s:s}", "metadata", "aggregate_version", version, "occurred_at",
                  (json_int_t)1700000000900, "order_id", "o-1", "customer_id", "c-1");
    json_object_update(ev, body);
    json_decref(body);
    return ev;
}

/* The one upsert every payments event turns into. */
static const struct pj_stmt *expect_upsert(const pj_plan_t *p, const char *status, long long v)
{
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPSERT, "payments", "INSERT INTO `payments_s` (", false, 10);
    cr_assert(strstr(st->sql, "version = GREATEST(version, VALUES(version))"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("o-1"), ES_DB_S("c-1"), ES_DB_S(status));
    pj_expect_i(st, 8, v);
    pj_expect_i(st, 9, 1700000000900);
    return st;
}

Test(payments_projection, requested_and_captured_carry_the_amount_and_reference)
{
    json_t *ev = payment_event(
        1, json_pack("{s:I,s:s}", "amount_minor", (json_int_t)2500, "currency", "EUR"));
    pj_plan_t *p =
        pj_expect_plan(&payments_payments_projection, "_s", "PaymentRequested", ev, 0, NULL);
    const struct pj_stmt *st = expect_upsert(p, "requested", 1);
    PJ_EXPECT_PARAMS(st, 3, ES_DB_I(2500), ES_DB_S("EUR"), ES_DB_S(""), ES_DB_S(""), ES_DB_S(""));
    pj_plan_free(p);
    json_object_set_new(ev, "gateway_ref", json_string("g-7"));
    json_object_set_new(json_object_get(ev, "metadata"), "aggregate_version", json_integer(2));
    p = pj_expect_plan(&payments_payments_projection, "_s", "PaymentCaptured", ev, 0, NULL);
    st = expect_upsert(p, "captured", 2);
    pj_expect_i(st, 3, 2500);
    pj_expect_s(st, 5, "g-7");
    pj_plan_free(p);
    json_decref(ev);
}

Test(payments_projection, declined_keeps_the_amount_and_records_the_reason)
{
    json_t *ev = payment_event(2, json_pack("{s:s}", "reason", "insufficient_funds"));
    pj_plan_t *p =
        pj_expect_plan(&payments_payments_projection, "_s", "PaymentDeclined", ev, 0, NULL);
    const struct pj_stmt *st = expect_upsert(p, "declined", 2);
    pj_expect_i(st, 3, 0);
    pj_expect_s(st, 4, "");
    pj_expect_s(st, 6, "insufficient_funds");
    pj_plan_free(p);
    /* a reason on another event is not a decline reason */
    p = pj_expect_plan(&payments_payments_projection, "_s", "PaymentRefundRequested", ev, 0, NULL);
    pj_expect_s(expect_upsert(p, "refund_requested", 2), 6, "");
    pj_plan_free(p);
    json_decref(ev);
}

Test(payments_projection, refunded_records_the_refund_reference)
{
    json_t *ev = payment_event(4, json_pack("{s:s,s:I,s:s}", "refund_ref", "r-9", "amount_minor",
                                            (json_int_t)2500, "currency", "EUR"));
    pj_plan_t *p =
        pj_expect_plan(&payments_payments_projection, "_s", "PaymentRefunded", ev, 0, NULL);
    pj_expect_s(expect_upsert(p, "refunded", 4), 7, "r-9");
    pj_plan_free(p);
    json_decref(ev);
}

Test(payments_projection, malformed_events_are_invalid_and_others_ignored)
{
    json_t *ev = payment_event(1, json_object());
    json_object_del(ev, "customer_id");
    pj_plan_free(pj_expect_plan(&payments_payments_projection, "", "PaymentCaptured", ev, -1,
                                "PaymentCaptured: order_id, customer_id or metadata missing"));
    pj_plan_t *p = pj_expect_plan(&payments_payments_projection, "", "OrderPlaced", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    pj_plan_free(p);
    json_decref(ev);
    p = pj_plan_new();
    payments_payments_projection.ddl("_s", p);
    cr_assert_eq(pj_plan_len(p), 1);
    pj_expect_stmt(p, 0, PJ_DDL, "payments", "CREATE TABLE IF NOT EXISTS `payments_s`", false, 0);
    pj_plan_free(p);
}
