#include "inventory.h"
#include <string.h>

static const char *const inventory_stock_tables[] = {"stock", "stock_movements", NULL};

static const struct {
    const char *type, *kind;
} kinds[] = {
    {"StockReceived", "received"}, {"StockAdjusted", "adjusted"},
    {"StockReserved", "reserved"}, {"StockReservationRejected", "rejected"},
    {"StockReleased", "released"}, {"StockCommitted", "committed"},
};

const char *inventory_movement_kind(const char *event_type)
{
    for (size_t i = 0; event_type && i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(kinds[i].type, event_type))
            return kinds[i].kind;
    return NULL;
}

static void inventory_stock_ddl(const char *suffix, pj_plan_t *out)
{
    /* sku and vendor_id compare byte for byte, as the deciders do */
    pj_plan_add(
        out, PJ_DDL, "stock",
        "CREATE TABLE IF NOT EXISTS `stock%s` ("
        "sku VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
        "vendor_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',"
        "on_hand BIGINT NOT NULL,"
        "reserved BIGINT NOT NULL,"
        "available BIGINT NOT NULL,"
        "version BIGINT NOT NULL,"
        "applied_events BIGINT NOT NULL,"
        "updated_at BIGINT,"
        "PRIMARY KEY (sku),"
        "KEY vendor_sku (vendor_id, sku)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        suffix);
    pj_plan_add(
        out, PJ_DDL, "stock_movements",
        "CREATE TABLE IF NOT EXISTS `stock_movements%s` ("
        "event_id CHAR(36) NOT NULL,"
        "sku VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
        "version BIGINT NOT NULL,"
        "kind ENUM('received','adjusted','reserved','rejected','released','committed') NOT NULL,"
        "quantity BIGINT NOT NULL,"
        "order_id VARCHAR(128),"
        "reason VARCHAR(16),"
        "on_hand BIGINT NOT NULL,"
        "reserved BIGINT NOT NULL,"
        "at BIGINT NOT NULL,"
        "PRIMARY KEY (event_id),"
        "UNIQUE KEY sku_version (sku, version)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        suffix);
}

/* Every inventory event: the stock row's upsert (the counts the event carries), then its
 * stock_movements row. ES_EINVAL when the sku, metadata or counts are missing or inconsistent. */
static int inventory_stock_plan(const char *suffix, const char *event_type, const json_t *event,
                                pj_plan_t *out, es_err_t *err)
{
    const char *kind = inventory_movement_kind(event_type);
    if (!kind)
        return 0;
    const json_t *md = json_object_get(event, "metadata");
    const char *sku = json_string_value(json_object_get(event, "sku"));
    const char *event_id = json_string_value(json_object_get(md, "event_id"));
    const char *vendor = json_string_value(json_object_get(event, "vendor_id"));
    json_t *on_hand = json_object_get(event, "on_hand");
    json_t *reserved = json_object_get(event, "reserved");
    json_t *version = json_object_get(md, "aggregate_version");
    if (!sku || !event_id || !json_is_integer(on_hand) || !json_is_integer(reserved) ||
        !json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: sku, metadata or counts missing", event_type);
    pj_plan_set_key(out, sku);
    long long oh = json_integer_value(on_hand), rs = json_integer_value(reserved);
    long long v = json_integer_value(version);
    if (oh < 0 || rs < 0 || oh < rs)
        return es_set(err, ES_EINVAL, "%s: sku '%s' with on hand %lld and reserved %lld",
                      event_type, sku, oh, rs);
    json_t *q = json_object_get(event, "quantity");
    long long quantity = json_is_integer(q) ? json_integer_value(q)
                                            : json_integer_value(json_object_get(event, "delta"));
    const char *order = json_string_value(json_object_get(event, "order_id"));
    const char *reason = json_string_value(json_object_get(event, "reason"));
    long long at = json_integer_value(json_object_get(md, "occurred_at"));

    struct pj_stmt *st = pj_plan_add(
        out, PJ_UPSERT, "stock",
        "INSERT INTO `stock%s` (sku, vendor_id, on_hand, reserved, available, version, "
        "applied_events, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON DUPLICATE KEY UPDATE "
        "vendor_id = IF(VALUES(vendor_id) = '', vendor_id, VALUES(vendor_id)), "
        "on_hand = VALUES(on_hand), reserved = VALUES(reserved), available = VALUES(available), "
        "version = VALUES(version), applied_events = applied_events + 1, "
        "updated_at = VALUES(updated_at)",
        suffix);
    PJ_BIND(st, ES_DB_S(sku), ES_DB_S(vendor ? vendor : ""), ES_DB_I(oh), ES_DB_I(rs),
            ES_DB_I(oh - rs), ES_DB_I(v), ES_DB_I(at));
    st = pj_plan_add(out, PJ_INSERT, "stock_movements",
                     "INSERT INTO `stock_movements%s` (event_id, sku, version, kind, quantity, "
                     "order_id, reason, on_hand, reserved, at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     suffix);
    PJ_BIND(st, ES_DB_S(event_id), ES_DB_S(sku), ES_DB_I(v), ES_DB_S(kind), ES_DB_I(quantity),
            order ? ES_DB_S(order) : ES_DB_N, reason ? ES_DB_S(reason) : ES_DB_N, ES_DB_I(oh),
            ES_DB_I(rs), ES_DB_I(at));
    return 0;
}

const pj_projection_t inventory_stock_projection = PJ_PROJECTION(inventory_stock, "inventory", 2);
