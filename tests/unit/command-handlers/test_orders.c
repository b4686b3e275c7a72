#include "catalog_view.h"
#include "orders.h"
#include <criterion/criterion.h>
#include <string.h>

static json_t *meta(const char *order, const char *actor, const char *role)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "command_id",
                     "00000000-0000-4000-8000-000000000001", "correlation_id", "c", "aggregate_id",
                     order, "issued_at", (json_int_t)1000, "actor", actor, "actor_role", role);
}

static json_t *view_with(const char *sku, long long price)
{
    json_t *v = json_object();
    json_t *listed = json_pack("{s:s, s:s, s:s, s:s}", "sku", sku, "vendor_id", "v1", "name", "n",
                               "currency", "EUR");
    catalog_view_fold(v, "eventshop.catalog.ProductListed", listed);
    json_t *ps = json_pack("{s:s, s:I, s:s}", "sku", sku, "amount_minor", (json_int_t)price,
                           "currency", "EUR");
    orders_pricing_fold(v, "eventshop.pricing.PriceSet", ps);
    json_decref(listed);
    json_decref(ps);
    return v;
}

/* decides cmd against *state and folds the events into it; returns the decision's reason */
static const char *run(json_t **state, const char *type, json_t *cmd, const json_t *view,
                       json_t **events)
{
    hd_decision_t d;
    hd_decision_init(&d);
    cr_assert_eq(orders_decide(*state, type, cmd, view, &d), 0);
    size_t i;
    json_t *e;
    json_array_foreach(d.events, i, e) *state = orders_evolve(
        *state, json_string_value(json_object_get(e, "type")), json_object_get(e, "payload"));
    if (events)
        *events = json_incref(d.events);
    const char *reason = d.reason;
    hd_decision_release(&d);
    json_decref(cmd);
    return reason;
}

static json_t *place(const char *sku, long long q)
{
    return json_pack("{s:o, s:s, s:s, s:[{s:s, s:I}], s:n, s:I, s:I}", "metadata",
                     meta("o1", "cust1", "customer"), "order_id", "o1", "customer_id", "cust1",
                     "lines", "sku", sku, "quantity", (json_int_t)q, "shipping_address_enc",
                     "reserve_by", (json_int_t)5000, "pay_by", (json_int_t)9000);
}

static json_t *saga_cmd(const char *extra_key, const char *extra)
{
    json_t *c = json_pack("{s:o, s:s}", "metadata", meta("o1", "svc-order-saga", "admin"),
                          "order_id", "o1");
    if (extra_key)
        json_object_set_new(c, extra_key, json_string(extra));
    return c;
}

Test(orders, places_prices_and_walks_to_delivered)
{
    json_t *view = view_with("SKU-1", 1250), *state = NULL, *ev = NULL;
    cr_assert_null(run(&state, ORDERS_NS "PlaceOrder", place("SKU-1", 2), view, &ev));
    json_t *placed = json_object_get(json_array_get(ev, 0), "payload");
    cr_assert_eq(json_integer_value(json_object_get(placed, "total_minor")), 2500);
    cr_assert_str_eq(json_string_value(json_object_get(placed, "currency")), "EUR");
    json_decref(ev);
    cr_assert_null(
        run(&state, ORDERS_NS "RecordStockReserved", saga_cmd("sku", "SKU-1"), view, &ev));
    cr_assert_eq(json_array_size(ev), 2); /* the line, then the whole order */
    json_decref(ev);
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "stock_reserved");
    cr_assert_null(
        run(&state, ORDERS_NS "ConfirmOrder", saga_cmd("gateway_ref", "pi_1"), view, NULL));
    cr_assert_null(
        run(&state, ORDERS_NS "MarkShipped", saga_cmd("tracking_number", "T1"), view, NULL));
    /* a customer cannot cancel a shipped order */
    json_t *cancel = json_pack("{s:o, s:s, s:s}", "metadata", meta("o1", "cust1", "customer"),
                               "order_id", "o1", "reason", "customer");
    cr_assert_str_eq(run(&state, ORDERS_NS "CancelOrder", cancel, view, NULL), "already_shipped");
    cr_assert_null(run(&state, ORDERS_NS "MarkDelivered", saga_cmd(NULL, NULL), view, NULL));
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "delivered");
    json_decref(state);
    json_decref(view);
}

Test(orders, rejects_unknown_sku_and_missing_price)
{
    json_t *view = view_with("SKU-1", 100), *state = NULL;
    cr_assert_str_eq(run(&state, ORDERS_NS "PlaceOrder", place("NOPE", 1), view, NULL),
                     "unknown_sku");
    json_t *listed = json_pack("{s:s, s:s, s:s, s:s}", "sku", "SKU-2", "vendor_id", "v1", "name",
                               "n", "currency", "EUR");
    catalog_view_fold(view, "eventshop.catalog.ProductListed", listed);
    json_decref(listed);
    cr_assert_str_eq(run(&state, ORDERS_NS "PlaceOrder", place("SKU-2", 1), view, NULL),
                     "no_price");
    cr_assert_null(state);
    json_decref(view);
}

Test(orders, capture_after_cancel_asks_for_a_refund_and_cancel_after_pay_refunds)
{
    json_t *view = view_with("SKU-1", 100), *state = NULL, *ev = NULL;
    run(&state, ORDERS_NS "PlaceOrder", place("SKU-1", 1), view, NULL);
    run(&state, ORDERS_NS "RecordStockReserved", saga_cmd("sku", "SKU-1"), view, NULL);
    cr_assert_null(run(&state, ORDERS_NS "CancelOrder", saga_cmd("reason", "deadline"), view, &ev));
    json_t *c = json_object_get(json_array_get(ev, 0), "payload");
    cr_assert(json_is_false(json_object_get(c, "refund")));
    json_decref(ev);
    cr_assert_str_eq(
        run(&state, ORDERS_NS "ConfirmOrder", saga_cmd("gateway_ref", "pi"), view, &ev),
        "order_cancelled");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ev, 0), "type")),
                     ORDERS_NS "OrderRefundRequested");
    json_decref(ev);
    json_decref(state);
    state = NULL;
    /* paid, then cancelled by its customer: the cancel carries refund */
    run(&state, ORDERS_NS "PlaceOrder", place("SKU-1", 1), view, NULL);
    run(&state, ORDERS_NS "RecordStockReserved", saga_cmd("sku", "SKU-1"), view, NULL);
    run(&state, ORDERS_NS "ConfirmOrder", saga_cmd("gateway_ref", "pi"), view, NULL);
    /* a late deadline does nothing to a paid order */
    cr_assert_null(run(&state, ORDERS_NS "CancelOrder", saga_cmd("reason", "deadline"), view, &ev));
    cr_assert_eq(json_array_size(ev), 0);
    json_decref(ev);
    json_t *cancel = json_pack("{s:o, s:s, s:s}", "metadata", meta("o1", "cust1", "customer"),
                               "order_id", "o1", "reason", "customer");
    cr_assert_null(run(&state, ORDERS_NS "CancelOrder", cancel, view, &ev));
    c = json_object_get(json_array_get(ev, 0), "payload");
    cr_assert(json_is_true(json_object_get(c, "refund")));
    cr_assert_eq(json_array_size(json_object_get(c, "skus")), 1);
    json_decref(ev);
    json_decref(state);
    json_decref(view);
}

Test(orders, out_of_stock_cancels_and_another_customer_cannot_cancel)
{
    json_t *view = view_with("SKU-1", 100), *state = NULL, *ev = NULL;
    run(&state, ORDERS_NS "PlaceOrder", place("SKU-1", 1), view, NULL);
    json_t *cancel = json_pack("{s:o, s:s, s:s}", "metadata", meta("o1", "cust2", "customer"),
                               "order_id", "o1", "reason", "customer");
    cr_assert_str_eq(run(&state, ORDERS_NS "CancelOrder", cancel, view, NULL), "not_owner");
    cr_assert_null(
        run(&state, ORDERS_NS "RecordStockRejected", saga_cmd("sku", "SKU-1"), view, &ev));
    json_t *c = json_object_get(json_array_get(ev, 0), "payload");
    cr_assert_str_eq(json_string_value(json_object_get(c, "reason")), "out_of_stock");
    json_decref(ev);
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "cancelled");
    json_decref(state);
    json_decref(view);
}

static json_t *customer_cancel(void)
{
    return json_pack("{s:o, s:s, s:s}", "metadata", meta("o1", "cust1", "customer"), "order_id",
                     "o1", "reason", "customer");
}

/* a paid order: placed, reserved, confirmed */
static json_t *confirmed_order(const json_t *view)
{
    json_t *state = NULL;
    run(&state, ORDERS_NS "PlaceOrder", place("SKU-1", 3), view, NULL);
    run(&state, ORDERS_NS "RecordStockReserved", saga_cmd("sku", "SKU-1"), view, NULL);
    run(&state, ORDERS_NS "ConfirmOrder", saga_cmd("gateway_ref", "pi"), view, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "confirmed");
    return state;
}

Test(orders, cancel_before_dispatch_wins_and_a_later_approval_ships_nothing)
{
    json_t *view = view_with("SKU-1", 100), *ev = NULL;
    json_t *state = confirmed_order(view);
    cr_assert_null(run(&state, ORDERS_NS "CancelOrder", customer_cancel(), view, &ev));
    json_t *c = json_object_get(json_array_get(ev, 0), "payload");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ev, 0), "type")),
                     ORDERS_NS "OrderCancelled");
    cr_assert(json_is_true(json_object_get(c, "refund")));
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(c, "skus"), 0)), "SKU-1");
    json_decref(ev);
    /* the saga's approval arrives after the cancel: accepted, but no event, so the shipment is
     * never requested */
    cr_assert_null(run(&state, ORDERS_NS "ApproveDispatch", saga_cmd(NULL, NULL), view, &ev));
    cr_assert_eq(json_array_size(ev), 0);
    json_decref(ev);
    cr_assert(!json_is_true(json_object_get(state, "dispatch_approved")));
    /* and a dispatch reported anyway cannot ship the cancelled order */
    cr_assert_str_eq(
        run(&state, ORDERS_NS "MarkShipped", saga_cmd("tracking_number", "T1"), view, NULL),
        "invalid_state");
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "cancelled");
    json_decref(state);
    json_decref(view);
}

Test(orders, approved_dispatch_refuses_every_later_cancel)
{
    json_t *view = view_with("SKU-1", 100), *ev = NULL;
    json_t *state = confirmed_order(view);
    cr_assert_null(run(&state, ORDERS_NS "ApproveDispatch", saga_cmd(NULL, NULL), view, &ev));
    cr_assert_eq(json_array_size(ev), 1);
    json_t *e = json_array_get(ev, 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "type")),
                     ORDERS_NS "OrderDispatchApproved");
    json_t *p = json_object_get(e, "payload");
    cr_assert_str_eq(json_string_value(json_object_get(p, "customer_id")), "cust1");
    json_t *line = json_array_get(json_object_get(p, "lines"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(line, "sku")), "SKU-1");
    cr_assert_eq(json_integer_value(json_object_get(line, "quantity")), 3);
    cr_assert(json_is_null(json_object_get(p, "shipping_address_enc")));
    json_decref(ev);
    cr_assert(json_is_true(json_object_get(state, "dispatch_approved")));
    /* the approval again (a resend): nothing new */
    cr_assert_null(run(&state, ORDERS_NS "ApproveDispatch", saga_cmd(NULL, NULL), view, &ev));
    cr_assert_eq(json_array_size(ev), 0);
    json_decref(ev);
    /* the customer, and an admin, are refused: the parcel may be on its way */
    cr_assert_str_eq(run(&state, ORDERS_NS "CancelOrder", customer_cancel(), view, NULL),
                     "already_shipped");
    json_t *admin = json_pack("{s:o, s:s, s:s}", "metadata", meta("o1", "u-admin", "admin"),
                              "order_id", "o1", "reason", "admin");
    cr_assert_str_eq(run(&state, ORDERS_NS "CancelOrder", admin, view, NULL), "already_shipped");
    /* a late deadline of the saga stays a silent no-op */
    cr_assert_null(run(&state, ORDERS_NS "CancelOrder", saga_cmd("reason", "deadline"), view, &ev));
    cr_assert_eq(json_array_size(ev), 0);
    json_decref(ev);
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "confirmed");
    /* the dispatch then ships it as before */
    cr_assert_null(
        run(&state, ORDERS_NS "MarkShipped", saga_cmd("tracking_number", "T1"), view, NULL));
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "shipped");
    json_decref(state);
    json_decref(view);
}

Test(orders, dispatch_is_approved_only_for_a_paid_order_and_only_by_the_saga)
{
    json_t *view = view_with("SKU-1", 100), *state = NULL;
    run(&state, ORDERS_NS "PlaceOrder", place("SKU-1", 1), view, NULL);
    cr_assert_str_eq(run(&state, ORDERS_NS "ApproveDispatch", saga_cmd(NULL, NULL), view, NULL),
                     "invalid_state");
    run(&state, ORDERS_NS "RecordStockReserved", saga_cmd("sku", "SKU-1"), view, NULL);
    cr_assert_str_eq(run(&state, ORDERS_NS "ApproveDispatch", saga_cmd(NULL, NULL), view, NULL),
                     "invalid_state");
    run(&state, ORDERS_NS "ConfirmOrder", saga_cmd("gateway_ref", "pi"), view, NULL);
    json_t *by_customer =
        json_pack("{s:o, s:s}", "metadata", meta("o1", "cust1", "customer"), "order_id", "o1");
    cr_assert_str_eq(run(&state, ORDERS_NS "ApproveDispatch", by_customer, view, NULL),
                     "forbidden");
    cr_assert(!json_is_true(json_object_get(state, "dispatch_approved")));
    json_decref(state);
    json_decref(view);
}
