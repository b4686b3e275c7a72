#include "shipping.h"
#include "dm_json.h"
#include <string.h>

#define ID_MAX       128
#define TRACKING_MAX 64

static int check_text(hd_decision_t *d, const json_t *obj, const char *field, size_t max)
{
    const char *s = dm_str(obj, field);
    if (!s || !*s || strlen(s) > max)
        return hd_reject(d, "invalid_field", "%s: must be 1 to %zu characters", field, max), -1;
    return 0;
}

static int check_lines(hd_decision_t *d, const json_t *lines)
{
    size_t i;
    const json_t *line;
    if (!json_is_array(lines) || json_array_size(lines) == 0 ||
        json_array_size(lines) > SHIPPING_LINES_MAX)
        return hd_reject(d, "invalid_field", "lines: must hold 1 to %d lines", SHIPPING_LINES_MAX),
               -1;
    json_array_foreach(lines, i, line)
    {
        const json_t *q = json_object_get(line, "quantity");
        if (check_text(d, line, "sku", 64))
            return -1;
        if (!json_is_integer(q) || json_integer_value(q) < 1)
            return hd_reject(d, "invalid_field", "lines[%zu].quantity: must be at least 1", i), -1;
    }
    return 0;
}

static int decide_request(const json_t *state, const char *order, const json_t *cmd,
                          hd_decision_t *d)
{
    if (check_text(d, cmd, "customer_id", ID_MAX) || check_lines(d, json_object_get(cmd, "lines")))
        return 0;
    if (state)
        return 0; /* requested already: the saga's command again */
    json_t *addr = json_object_get(cmd, "shipping_address_enc");
    hd_emit(d, SHIPPING_NS "ShipmentRequested",
            json_pack("{s:s, s:s, s:O, s:O}", "order_id", order, "customer_id",
                      dm_str(cmd, "customer_id"), "lines", json_object_get(cmd, "lines"),
                      "shipping_address_enc", addr ? addr : json_null()));
    return 0;
}

static int decide_dispatch(const json_t *state, const char *order, const json_t *cmd,
                           hd_decision_t *d)
{
    if (check_text(d, cmd, "tracking_number", TRACKING_MAX))
        return 0;
    const char *tracking = dm_str(cmd, "tracking_number");
    const char *status = dm_str(state, "status");
    if (!strcmp(status, "requested")) {
        const char *carrier = dm_str(cmd, "carrier");
        hd_emit(d, SHIPPING_NS "ShipmentDispatched",
                json_pack("{s:s, s:s, s:s, s:s}", "order_id", order, "customer_id",
                          dm_str(state, "customer_id") ?: "", "tracking_number", tracking,
                          "carrier", carrier ? carrier : ""));
        return 0;
    }
    if (!strcmp(status, "dispatched") && !strcmp(dm_str(state, "tracking_number") ?: "", tracking))
        return 0; /* the same dispatch again */
    return hd_reject(d, "invalid_state", "shipment of order '%.128s' is %s with tracking '%.64s'",
                     order, status, dm_str(state, "tracking_number") ?: "");
}

static int decide_delivery(const json_t *state, const char *order, const json_t *cmd,
                           hd_decision_t *d)
{
    const json_t *at = json_object_get(cmd, "delivered_at");
    if (!json_is_integer(at) || json_integer_value(at) < 0)
        return hd_reject(d, "invalid_field", "delivered_at: must be a timestamp in milliseconds");
    const char *status = dm_str(state, "status");
    if (!strcmp(status, "delivered"))
        return 0; /* the same delivery again */
    if (strcmp(status, "dispatched"))
        return hd_reject(d, "invalid_state", "shipment of order '%.128s' is %s, not dispatched",
                         order, status);
    hd_emit(d, SHIPPING_NS "ShipmentDelivered",
            json_pack("{s:s, s:s, s:s, s:I}", "order_id", order, "customer_id",
                      dm_str(state, "customer_id") ?: "", "tracking_number",
                      dm_str(state, "tracking_number") ?: "", "delivered_at",
                      json_integer_value(at)));
    return 0;
}

int shipping_decide(const json_t *state, const char *cmd_type, const json_t *cmd,
                    const json_t *view, hd_decision_t *out)
{
    (void)view;
    if (strncmp(cmd_type, SHIPPING_NS, strlen(SHIPPING_NS)))
        return hd_reject(out, "unknown_command", "'%.128s' is not a shipping command", cmd_type);
    const char *name = cmd_type + strlen(SHIPPING_NS);
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *role = dm_str(meta, "actor_role");
    if (!role || strcmp(role, "admin"))
        return hd_reject(out, "forbidden", "role '%.16s' may not issue shipping commands",
                         role ? role : "");
    const char *order = dm_str(cmd, "order_id");
    const char *agg = dm_str(meta, "aggregate_id");
    if (check_text(out, cmd, "order_id", ID_MAX))
        return 0;
    if (!agg || strcmp(order, agg))
        return hd_reject(out, "invalid_field",
                         "metadata.aggregate_id: '%.128s' is not the order id '%.128s'",
                         agg ? agg : "", order);
    if (!strcmp(name, "RequestShipment"))
        return decide_request(state, order, cmd, out);
    if (strcmp(name, "RecordDispatch") && strcmp(name, "RecordDelivery"))
        return hd_reject(out, "unknown_command", "'%.128s' is not a shipping command", cmd_type);
    if (!state || !dm_str(state, "status"))
        return hd_reject(out, "unknown_shipment", "no shipment was requested for order '%.128s'",
                         order);
    if (!strcmp(name, "RecordDispatch"))
        return decide_dispatch(state, order, cmd, out);
    return decide_delivery(state, order, cmd, out);
}

json_t *shipping_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strncmp(event_type, SHIPPING_NS, strlen(SHIPPING_NS)))
        return state;
    const char *name = event_type + strlen(SHIPPING_NS);
    if (!strcmp(name, "ShipmentRequested")) {
        json_decref(state);
        const char *customer = dm_str(payload, "customer_id");
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "order_id",
                         dm_str(payload, "order_id") ?: "", "customer_id", customer ? customer : "",
                         "status", "requested", "tracking_number", "", "carrier", "",
                         "delivered_at", (json_int_t)0, "version", (json_int_t)0);
    }
    if (!state)
        return NULL;
    if (!strcmp(name, "ShipmentDispatched")) {
        const char *carrier = dm_str(payload, "carrier");
        json_object_set_new(state, "status", json_string("dispatched"));
        json_object_set_new(state, "tracking_number",
                            json_string(dm_str(payload, "tracking_number") ?: ""));
        json_object_set_new(state, "carrier", json_string(carrier ? carrier : ""));
    } else if (!strcmp(name, "ShipmentDelivered")) {
        json_object_set_new(state, "status", json_string("delivered"));
        json_object_set_new(
            state, "delivered_at",
            json_integer(json_integer_value(json_object_get(payload, "delivered_at"))));
    }
    return state;
}
