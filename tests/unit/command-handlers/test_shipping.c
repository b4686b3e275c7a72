#include "shipping.h"
#include <criterion/criterion.h>
#include <string.h>

#define NS SHIPPING_NS

static json_t *meta(const char *role, const char *order)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "command_id",
                     "6f1c1f4e-0000-4000-8000-000000000009", "correlation_id", "c", "aggregate_id",
                     order, "issued_at", (json_int_t)1700000000000, "actor", "svc", "actor_role",
                     role);
}

static json_t *request(const char *role, const char *order)
{
    return json_pack("{s:o, s:s, s:s, s:[{s:s, s:I}], s:n}", "metadata", meta(role, order),
                     "order_id", order, "customer_id", "cust-1", "lines", "sku", "AB-1", "quantity",
                     (json_int_t)2, "shipping_address_enc");
}

static json_t *dispatch(const char *order, const char *tracking)
{
    return json_pack("{s:o, s:s, s:s, s:s}", "metadata", meta("admin", order), "order_id", order,
                     "tracking_number", tracking, "carrier", "test");
}

static json_t *delivery(const char *order)
{
    return json_pack("{s:o, s:s, s:I}", "metadata", meta("admin", order), "order_id", order,
                     "delivered_at", (json_int_t)1700000005000);
}

/* decides cmd (stolen) against *state, folds the events into *state; returns the decision */
static hd_decision_t run(json_t **state, const char *type, json_t *cmd)
{
    hd_decision_t d;
    hd_decision_init(&d);
    cr_assert_eq(shipping_decide(*state, type, cmd, NULL, &d), 0);
    size_t i;
    json_t *ev;
    json_array_foreach(d.events, i, ev)
    {
        *state = shipping_evolve(*state, json_string_value(json_object_get(ev, "type")),
                                 json_object_get(ev, "payload"));
    }
    json_decref(cmd);
    return d;
}

static const char *ev_type(const hd_decision_t *d, size_t i)
{
    return json_string_value(json_object_get(json_array_get(d->events, i), "type"));
}

static const json_t *ev_payload(const hd_decision_t *d, size_t i)
{
    return json_object_get(json_array_get(d->events, i), "payload");
}

Test(shipping, moves_requested_dispatched_delivered)
{
    json_t *state = NULL;
    hd_decision_t d = run(&state, NS "RequestShipment", request("admin", "o-1"));
    cr_assert_null(d.reason);
    cr_assert_str_eq(ev_type(&d, 0), NS "ShipmentRequested");
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "requested");
    hd_decision_release(&d);

    d = run(&state, NS "RecordDispatch", dispatch("o-1", "TC1"));
    cr_assert_null(d.reason);
    cr_assert_str_eq(ev_type(&d, 0), NS "ShipmentDispatched");
    cr_assert_str_eq(json_string_value(json_object_get(ev_payload(&d, 0), "customer_id")),
                     "cust-1");
    cr_assert_str_eq(json_string_value(json_object_get(state, "tracking_number")), "TC1");
    hd_decision_release(&d);

    d = run(&state, NS "RecordDelivery", delivery("o-1"));
    cr_assert_null(d.reason);
    cr_assert_str_eq(ev_type(&d, 0), NS "ShipmentDelivered");
    cr_assert_str_eq(json_string_value(json_object_get(ev_payload(&d, 0), "tracking_number")),
                     "TC1");
    cr_assert_str_eq(json_string_value(json_object_get(state, "status")), "delivered");
    cr_assert_eq(json_integer_value(json_object_get(state, "delivered_at")), 1700000005000);
    hd_decision_release(&d);
    json_decref(state);
}

Test(shipping, repeated_commands_are_accepted_without_events)
{
    json_t *state = NULL;
    hd_decision_t d = run(&state, NS "RequestShipment", request("admin", "o-2"));
    hd_decision_release(&d);
    d = run(&state, NS "RequestShipment", request("admin", "o-2"));
    cr_assert_null(d.reason);
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    d = run(&state, NS "RecordDispatch", dispatch("o-2", "TC2"));
    hd_decision_release(&d);
    d = run(&state, NS "RecordDispatch", dispatch("o-2", "TC2"));
    cr_assert_null(d.reason);
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    d = run(&state, NS "RecordDispatch", dispatch("o-2", "OTHER"));
    cr_assert_str_eq(d.reason, "invalid_state");
    hd_decision_release(&d);
    d = run(&state, NS "RecordDelivery", delivery("o-2"));
    hd_decision_release(&d);
    d = run(&state, NS "RecordDelivery", delivery("o-2"));
    cr_assert_null(d.reason);
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    json_decref(state);
}

Test(shipping, rejects_steps_out_of_order)
{
    json_t *state = NULL;
    hd_decision_t d = run(&state, NS "RecordDispatch", dispatch("o-3", "TC3"));
    cr_assert_str_eq(d.reason, "unknown_shipment");
    hd_decision_release(&d);
    d = run(&state, NS "RequestShipment", request("admin", "o-3"));
    hd_decision_release(&d);
    d = run(&state, NS "RecordDelivery", delivery("o-3"));
    cr_assert_str_eq(d.reason, "invalid_state");
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    json_decref(state);
}

Test(shipping, only_admins_and_the_right_aggregate)
{
    json_t *state = NULL;
    hd_decision_t d = run(&state, NS "RequestShipment", request("customer", "o-4"));
    cr_assert_str_eq(d.reason, "forbidden");
    hd_decision_release(&d);
    json_t *cmd = request("admin", "o-4");
    json_object_set_new(json_object_get(cmd, "metadata"), "aggregate_id", json_string("o-5"));
    d = run(&state, NS "RequestShipment", cmd);
    cr_assert_str_eq(d.reason, "invalid_field");
    hd_decision_release(&d);
    cmd = request("admin", "o-4");
    json_object_set_new(cmd, "lines", json_array());
    d = run(&state, NS "RequestShipment", cmd);
    cr_assert_str_eq(d.reason, "invalid_field");
    hd_decision_release(&d);
    d = run(&state, "eventshop.inventory.ReserveStock", request("admin", "o-4"));
    cr_assert_str_eq(d.reason, "unknown_command");
    hd_decision_release(&d);
    cr_assert_null(state);
}
