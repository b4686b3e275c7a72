#include "shipping.h"
#include "dm_json.h"
#include <string.h>

static const char *const shipping_shipments_tables[] = {"shipments", NULL};

static void shipping_shipments_ddl(const char *suffix, pj_plan_t *out)
{
    pj_plan_add(out, PJ_DDL, "shipments",
                "CREATE TABLE IF NOT EXISTS `shipments%s` ("
                "order_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
                "customer_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
                "status ENUM('requested','dispatched','delivered') NOT NULL,"
                "tracking_number VARCHAR(64) NULL,"
                "carrier VARCHAR(64) NULL,"
                "requested_at BIGINT NULL, dispatched_at BIGINT NULL, delivered_at BIGINT NULL,"
                "version BIGINT NOT NULL,"
                "applied_events BIGINT NOT NULL DEFAULT 0,"
                "PRIMARY KEY (order_id),"
                "KEY status_order (status, order_id)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                suffix);
}

/* ShipmentRequested: the row's insert; ShipmentDispatched, ShipmentDelivered: a must-match
 * UPDATE. ES_EINVAL when order_id, metadata.aggregate_version or (dispatched) tracking_number is
 * missing. */
static int shipping_shipments_plan(const char *suffix, const char *event_type, const json_t *event,
                                   pj_plan_t *out, es_err_t *err)
{
    const json_t *md = json_object_get(event, "metadata");
    const char *order = dm_str(event, "order_id");
    const json_t *version = json_object_get(md, "aggregate_version");
    long long at = json_integer_value(json_object_get(md, "occurred_at"));
    bool requested = !strcmp(event_type, "ShipmentRequested");
    bool dispatched = !strcmp(event_type, "ShipmentDispatched");
    if (!requested && !dispatched && strcmp(event_type, "ShipmentDelivered"))
        return 0;
    if (!order || !json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: order_id or metadata.aggregate_version is missing",
                      event_type);
    long long v = json_integer_value(version);
    pj_plan_set_subject(out, "shipment of order '%s'", order);
    pj_plan_set_key(out, order);
    struct pj_stmt *st;
    if (requested) {
        const char *customer = dm_str(event, "customer_id");
        st = pj_plan_add(
            out, PJ_INSERT, "shipments",
            "INSERT INTO `shipments%s` (order_id, customer_id, status, "
            "requested_at, version, applied_events) VALUES (?, ?, 'requested', ?, ?, 1)",
            suffix);
        PJ_BIND(st, ES_DB_S(order), ES_DB_S(customer ? customer : ""), ES_DB_I(at), ES_DB_I(v));
        return 0;
    }
    if (dispatched) {
        const char *tracking = dm_str(event, "tracking_number");
        const char *carrier = dm_str(event, "carrier");
        if (!tracking)
            return es_set(err, ES_EINVAL, "ShipmentDispatched: order '%s' lacks tracking_number",
                          order);
        st = pj_plan_add(out, PJ_UPDATE, "shipments",
                         "UPDATE `shipments%s` SET status = 'dispatched', tracking_number = ?, "
                         "carrier = ?, dispatched_at = ?, version = ?, "
                         "applied_events = applied_events + 1 WHERE order_id = ?",
                         suffix);
        PJ_BIND(st, ES_DB_S(tracking), ES_DB_S(carrier ? carrier : ""), ES_DB_I(at));
    } else {
        const json_t *delivered = json_object_get(event, "delivered_at");
        st = pj_plan_add(out, PJ_UPDATE, "shipments",
                         "UPDATE `shipments%s` SET status = 'delivered', delivered_at = ?, "
                         "version = ?, applied_events = applied_events + 1 WHERE order_id = ?",
                         suffix);
        PJ_BIND(st, ES_DB_I(json_is_integer(delivered) ? json_integer_value(delivered) : at));
    }
    PJ_BIND(st, ES_DB_I(v), ES_DB_S(order));
    st->must_match = true;
    return 0;
}

const pj_projection_t shipping_shipments_projection =
    PJ_PROJECTION(shipping_shipments, "shipping", 2);
