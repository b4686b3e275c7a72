#include "shipping.h"
#include "dm_json.h"
#include "es_mem.h"
#include <stdlib.h>
#include <string.h>

static const char *const shipping_tables[] = {"shipments", NULL};

static int shipping_setup(es_db_t *db, const char *suffix, es_err_t *err)
{
    char *sql =
        xasprintf("CREATE TABLE IF NOT EXISTS `shipments%s` ("
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
    int rc = es_db_exec(db, sql, NULL, 0, NULL, err);
    free(sql);
    return rc;
}

static int shipping_apply(es_db_t *db, const char *suffix, const char *event_type,
                          const json_t *event, es_err_t *err)
{
    const json_t *md = json_object_get(event, "metadata");
    const char *order = dm_str(event, "order_id");
    const json_t *version = json_object_get(md, "aggregate_version");
    long long at = json_integer_value(json_object_get(md, "occurred_at"));
    char *sql = NULL;
    long long affected = 0;
    int rc = 0;
    bool known = !strcmp(event_type, "ShipmentRequested") ||
                 !strcmp(event_type, "ShipmentDispatched") ||
                 !strcmp(event_type, "ShipmentDelivered");
    if (!known)
        return 0;
    if (!order || !json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: order_id or metadata.aggregate_version is missing",
                      event_type);
    long long v = json_integer_value(version);
    if (!strcmp(event_type, "ShipmentRequested")) {
        const char *customer = dm_str(event, "customer_id");
        sql = xasprintf("INSERT INTO `shipments%s` (order_id, customer_id, status, requested_at, "
                        "version, applied_events) VALUES (?, ?, 'requested', ?, ?, 1)",
                        suffix);
        es_db_val_t p[] = {ES_DB_S(order), ES_DB_S(customer ? customer : ""), ES_DB_I(at),
                           ES_DB_I(v)};
        rc = es_db_exec(db, sql, p, sizeof p / sizeof *p, &affected, err);
        goto out;
    }
    if (!strcmp(event_type, "ShipmentDispatched")) {
        const char *tracking = dm_str(event, "tracking_number");
        const char *carrier = dm_str(event, "carrier");
        if (!tracking) {
            rc = es_set(err, ES_EINVAL, "ShipmentDispatched: order '%s' lacks tracking_number",
                        order);
            goto out;
        }
        sql = xasprintf("UPDATE `shipments%s` SET status = 'dispatched', tracking_number = ?, "
                        "carrier = ?, dispatched_at = ?, version = ?, "
                        "applied_events = applied_events + 1 WHERE order_id = ?",
                        suffix);
        es_db_val_t p[] = {ES_DB_S(tracking), ES_DB_S(carrier ? carrier : ""), ES_DB_I(at),
                           ES_DB_I(v), ES_DB_S(order)};
        rc = es_db_exec(db, sql, p, sizeof p / sizeof *p, &affected, err);
    } else {
        const json_t *delivered = json_object_get(event, "delivered_at");
        sql = xasprintf("UPDATE `shipments%s` SET status = 'delivered', delivered_at = ?, "
                        "version = ?, applied_events = applied_events + 1 WHERE order_id = ?",
                        suffix);
        es_db_val_t p[] = {ES_DB_I(json_is_integer(delivered) ? json_integer_value(delivered) : at),
                           ES_DB_I(v), ES_DB_S(order)};
        rc = es_db_exec(db, sql, p, sizeof p / sizeof *p, &affected, err);
    }
    if (!rc && affected == 0)
        rc = es_set(err, ES_ENOTFOUND, "%s: shipment of order '%s' is not in the read model",
                    event_type, order);
out:
    free(sql);
    return rc;
}

const pj_projection_t shipping_shipments_projection = {
    .name = "shipping_shipments",
    .context = "shipping",
    .version = 1,
    .tables = shipping_tables,
    .setup = shipping_setup,
    .apply = shipping_apply,
};
