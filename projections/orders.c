#include "orders.h"
#include <string.h>

static const char *const orders_orders_tables[] = {"orders", "order_lines", "order_timeline", NULL};

/* the status each event leaves the order in; NULL: the event changes no status */
static const struct {
    const char *type, *status;
} statuses[] = {
    {"OrderPlaced", "placed"},       {"OrderStockReserved", "stock_reserved"},
    {"OrderConfirmed", "confirmed"}, {"OrderCancelled", "cancelled"},
    {"OrderShipped", "shipped"},     {"OrderDelivered", "delivered"},
    {"OrderLineReserved", NULL},     {"OrderRefundRequested", NULL},
};

#define BIN "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

static void orders_orders_ddl(const char *suffix, pj_plan_t *out)
{
    pj_plan_add(out, PJ_DDL, "orders",
                "CREATE TABLE IF NOT EXISTS `orders%s` ("
                "order_id VARCHAR(128) " BIN " NOT NULL,"
                "customer_id VARCHAR(128) " BIN " NOT NULL,"
                "status VARCHAR(16) NOT NULL,"
                "total_minor BIGINT NOT NULL,"
                "currency CHAR(3) NOT NULL,"
                "cancel_reason VARCHAR(64),"
                "refund_requested TINYINT NOT NULL DEFAULT 0,"
                "tracking_number VARCHAR(128),"
                "version BIGINT NOT NULL,"
                "placed_at BIGINT NOT NULL,"
                "updated_at BIGINT NOT NULL,"
                "PRIMARY KEY (order_id),"
                "KEY customer (customer_id, placed_at),"
                "KEY status (status)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                suffix);
    pj_plan_add(out, PJ_DDL, "order_lines",
                "CREATE TABLE IF NOT EXISTS `order_lines%s` ("
                "order_id VARCHAR(128) " BIN " NOT NULL,"
                "sku VARCHAR(64) " BIN " NOT NULL,"
                "vendor_id VARCHAR(64) " BIN " NOT NULL,"
                "quantity BIGINT NOT NULL,"
                "unit_amount_minor BIGINT NOT NULL,"
                "PRIMARY KEY (order_id, sku),"
                "KEY vendor (vendor_id, order_id)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                suffix);
    pj_plan_add(out, PJ_DDL, "order_timeline",
                "CREATE TABLE IF NOT EXISTS `order_timeline%s` ("
                "order_id VARCHAR(128) " BIN " NOT NULL,"
                "version BIGINT NOT NULL,"
                "status VARCHAR(16) NOT NULL,"
                "detail VARCHAR(64),"
                "at BIGINT NOT NULL,"
                "PRIMARY KEY (order_id, version)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                suffix);
}

static int plan_placed(const char *suffix, const json_t *event, const char *order,
                       const char *status, long long v, long long at, pj_plan_t *out, es_err_t *err)
{
    const char *customer = json_string_value(json_object_get(event, "customer_id"));
    const char *currency = json_string_value(json_object_get(event, "currency"));
    if (!customer || !currency)
        return es_set(err, ES_EINVAL, "OrderPlaced '%s': customer_id or currency missing", order);
    struct pj_stmt *st =
        pj_plan_add(out, PJ_INSERT, "orders",
                    "INSERT INTO `orders%s` (order_id, customer_id, status, total_minor, "
                    "currency, version, placed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    suffix);
    PJ_BIND(st, ES_DB_S(order), ES_DB_S(customer), ES_DB_S(status),
            ES_DB_I(json_integer_value(json_object_get(event, "total_minor"))), ES_DB_S(currency),
            ES_DB_I(v), ES_DB_I(at), ES_DB_I(at));
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(event, "lines"), i, l)
    {
        const char *sku = json_string_value(json_object_get(l, "sku"));
        const char *vendor = json_string_value(json_object_get(l, "vendor_id"));
        st = pj_plan_add(out, PJ_INSERT, "order_lines",
                         "INSERT INTO `order_lines%s` (order_id, sku, vendor_id, quantity, "
                         "unit_amount_minor) VALUES (?, ?, ?, ?, ?)",
                         suffix);
        PJ_BIND(st, ES_DB_S(order), ES_DB_S(sku ? sku : ""), ES_DB_S(vendor ? vendor : ""),
                ES_DB_I(json_integer_value(json_object_get(l, "quantity"))),
                ES_DB_I(json_integer_value(json_object_get(l, "unit_amount_minor"))));
    }
    return 0;
}

/* Any later event: each column moves only when the event sets it, the version never back. */
static void plan_changed(const char *suffix, const char *event_type, const json_t *event,
                         const char *order, const char *status, long long v, long long at,
                         pj_plan_t *out)
{
    const char *reason = json_string_value(json_object_get(event, "reason"));
    const char *tracking = json_string_value(json_object_get(event, "tracking_number"));
    bool refund = json_is_true(json_object_get(event, "refund")) ||
                  !strcmp(event_type, "OrderRefundRequested");
    struct pj_stmt *st =
        pj_plan_add(out, PJ_UPDATE, "orders",
                    "UPDATE `orders%s` SET status = COALESCE(?, status), "
                    "cancel_reason = COALESCE(?, cancel_reason), "
                    "tracking_number = COALESCE(?, tracking_number), "
                    "refund_requested = GREATEST(refund_requested, ?), "
                    "version = GREATEST(version, ?), updated_at = ? WHERE order_id = ?",
                    suffix);
    PJ_BIND(st, status ? ES_DB_S(status) : ES_DB_N,
            reason && !strcmp(event_type, "OrderCancelled") ? ES_DB_S(reason) : ES_DB_N,
            tracking && *tracking ? ES_DB_S(tracking) : ES_DB_N, ES_DB_I(refund ? 1 : 0),
            ES_DB_I(v), ES_DB_I(at), ES_DB_S(order));
}

/* OrderPlaced: the orders row and one order_lines row per line (inserts); any later order event:
 * an UPDATE of the row (status, cancel reason, tracking number, refund flag: each only when the
 * event sets it); then, when the event moves the status, an order_timeline row (INSERT IGNORE).
 * ES_EINVAL when order_id, the metadata or (OrderPlaced) customer_id or currency are missing. */
static int orders_orders_plan(const char *suffix, const char *event_type, const json_t *event,
                              pj_plan_t *out, es_err_t *err)
{
    size_t k;
    for (k = 0; k < sizeof statuses / sizeof *statuses; k++)
        if (!strcmp(statuses[k].type, event_type))
            break;
    if (k == sizeof statuses / sizeof *statuses)
        return 0;
    const char *status = statuses[k].status;
    const json_t *md = json_object_get(event, "metadata");
    const char *order = json_string_value(json_object_get(event, "order_id"));
    json_t *version = json_object_get(md, "aggregate_version");
    long long at = json_integer_value(json_object_get(md, "occurred_at"));
    if (!order || !json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: order_id or metadata missing", event_type);
    long long v = json_integer_value(version);
    pj_plan_set_key(out, order);
    if (!strcmp(event_type, "OrderPlaced")) {
        if (plan_placed(suffix, event, order, status, v, at, out, err))
            return -1;
    } else {
        plan_changed(suffix, event_type, event, order, status, v, at, out);
    }
    if (status) {
        const char *detail = json_string_value(json_object_get(event, "reason"));
        struct pj_stmt *st =
            pj_plan_add(out, PJ_INSERT, "order_timeline",
                        "INSERT IGNORE INTO `order_timeline%s` (order_id, version, status, "
                        "detail, at) VALUES (?, ?, ?, ?, ?)",
                        suffix);
        PJ_BIND(st, ES_DB_S(order), ES_DB_I(v), ES_DB_S(status), detail ? ES_DB_S(detail) : ES_DB_N,
                ES_DB_I(at));
    }
    return 0;
}

const pj_projection_t orders_orders_projection = PJ_PROJECTION(orders_orders, "orders", 2);
