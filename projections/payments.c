#include "payments.h"
#include <string.h>

static const char *const payments_payments_tables[] = {"payments", NULL};

static const struct {
    const char *type, *status;
} statuses[] = {
    {"PaymentRequested", "requested"}, {"PaymentCaptured", "captured"},
    {"PaymentDeclined", "declined"},   {"PaymentRefundRequested", "refund_requested"},
    {"PaymentRefunded", "refunded"},
};

const char *payments_status_of(const char *event_type)
{
    for (size_t i = 0; event_type && i < sizeof statuses / sizeof *statuses; i++)
        if (!strcmp(statuses[i].type, event_type))
            return statuses[i].status;
    return NULL;
}

static void payments_payments_ddl(const char *suffix, pj_plan_t *out)
{
    pj_plan_add(
        out, PJ_DDL, "payments",
        "CREATE TABLE IF NOT EXISTS `payments%s` ("
        "order_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
        "customer_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
        "status ENUM('requested','captured','declined','refund_requested','refunded') NOT NULL,"
        "amount_minor BIGINT NOT NULL,"
        "currency CHAR(3) NOT NULL,"
        "gateway_ref VARCHAR(255) NOT NULL DEFAULT '',"
        "decline_reason VARCHAR(255) NOT NULL DEFAULT '',"
        "refund_ref VARCHAR(255) NOT NULL DEFAULT '',"
        "version BIGINT NOT NULL,"
        "updated_at BIGINT NOT NULL,"
        "PRIMARY KEY (order_id),"
        "KEY customer (customer_id)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        suffix);
}

/* Every payments event: one upsert of the order's payment row, which moves only forward in
 * version. ES_EINVAL when order_id, customer_id or the metadata are missing. */
static int payments_payments_plan(const char *suffix, const char *event_type, const json_t *event,
                                  pj_plan_t *out, es_err_t *err)
{
    const char *status = payments_status_of(event_type);
    if (!status)
        return 0;
    const json_t *md = json_object_get(event, "metadata");
    const char *order = json_string_value(json_object_get(event, "order_id"));
    const char *customer = json_string_value(json_object_get(event, "customer_id"));
    const char *currency = json_string_value(json_object_get(event, "currency"));
    json_t *amount = json_object_get(event, "amount_minor");
    json_t *version = json_object_get(md, "aggregate_version");
    if (!order || !customer || !json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: order_id, customer_id or metadata missing", event_type);
    pj_plan_set_key(out, order);
    /* PaymentDeclined carries no amount: the row keeps the requested one */
    bool has_amount = json_is_integer(amount) && currency;
    const char *ref = json_string_value(json_object_get(event, "gateway_ref"));
    const char *reason =
        !strcmp(status, "declined") ? json_string_value(json_object_get(event, "reason")) : NULL;
    const char *refund = json_string_value(json_object_get(event, "refund_ref"));
    long long at = json_integer_value(json_object_get(md, "occurred_at"));
    /* versions only grow: a redelivered older event never moves a row back */
    struct pj_stmt *st = pj_plan_add(
        out, PJ_UPSERT, "payments",
        "INSERT INTO `payments%s` (order_id, customer_id, status, amount_minor, currency, "
        "gateway_ref, decline_reason, refund_ref, version, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
        "status = IF(VALUES(version) > version, VALUES(status), status), "
        "gateway_ref = IF(VALUES(version) > version AND VALUES(gateway_ref) <> '', "
        "VALUES(gateway_ref), gateway_ref), "
        "decline_reason = IF(VALUES(version) > version AND VALUES(decline_reason) <> '', "
        "VALUES(decline_reason), decline_reason), "
        "refund_ref = IF(VALUES(version) > version AND VALUES(refund_ref) <> '', "
        "VALUES(refund_ref), refund_ref), "
        "updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at), "
        "version = GREATEST(version, VALUES(version))",
        suffix);
    PJ_BIND(st, ES_DB_S(order), ES_DB_S(customer), ES_DB_S(status),
            ES_DB_I(has_amount ? json_integer_value(amount) : 0),
            ES_DB_S(has_amount ? currency : ""), ES_DB_S(ref ? ref : ""),
            ES_DB_S(reason ? reason : ""), ES_DB_S(refund ? refund : ""),
            ES_DB_I(json_integer_value(version)), ES_DB_I(at));
    return 0;
}

const pj_projection_t payments_payments_projection =
    PJ_PROJECTION(payments_payments, "payments", 2);
