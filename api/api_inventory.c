/* The inventory context over HTTP. Commands: receipts and adjustments (the sku's owning vendor
 * or an admin; the decider checks ownership against the catalog), reservations (admin only: the
 * order saga acts as admin). Queries read tables stock and stock_movements of
 * eventshop_inventory (projection "inventory_stock"), with read-your-writes. */
#include "api_app.h"
#include "api_cache.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTX          "inventory"
#define PROJECTION   "inventory_stock"
#define NS           "eventshop.inventory."
#define MAX_QUANTITY 1000000
#define ORDER_ID_MAX 128

/* body[key] as an integer in lo..hi (0 excluded when nonzero). 0 or -1 with e (422). */
static int int_field(const json_t *body, const char *key, long long lo, long long hi, bool nonzero,
                     long long *out, struct api_verr *e)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi ||
        (nonzero && json_integer_value(v) == 0))
        return api_verr_set(e, 422, key, "%s must be an integer %lld to %lld%s", key, lo, hi,
                            nonzero ? ", not 0" : "");
    *out = json_integer_value(v);
    return 0;
}

static bool is_order_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > ORDER_ID_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-' || *s == ':'))
            return false;
    return true;
}

static const char *order_id_field(const json_t *body, struct api_verr *e)
{
    const char *s = json_string_value(json_object_get(body, "order_id"));
    if (!is_order_id(s)) {
        api_verr_set(e, 422, "order_id", "order_id must be 1 to %d of [A-Za-z0-9._:-]",
                     ORDER_ID_MAX);
        return NULL;
    }
    return s;
}

/* A stock command's fields from its body (borrowed) and the path's sku, as a new object, or NULL
 * with e (422); a creating command writes its resource's URL to location. Pure. */
typedef json_t *(*stock_fields_fn)(const json_t *body, const char *sku, struct api_verr *e,
                                   char *location, size_t cap);

static json_t *receipt_fields(const json_t *body, const char *sku, struct api_verr *e,
                              char *location, size_t cap)
{
    (void)location, (void)cap;
    long long q = 0;
    if (int_field(body, "quantity", 1, MAX_QUANTITY, false, &q, e))
        return NULL;
    return json_pack("{s:s, s:I}", "sku", sku, "quantity", (json_int_t)q);
}

static json_t *adjustment_fields(const json_t *body, const char *sku, struct api_verr *e,
                                 char *location, size_t cap)
{
    (void)location, (void)cap;
    long long delta = 0;
    const char *reason = json_string_value(json_object_get(body, "reason"));
    if (int_field(body, "delta", -MAX_QUANTITY, MAX_QUANTITY, true, &delta, e))
        return NULL;
    if (!reason ||
        (strcmp(reason, "count") && strcmp(reason, "damage") && strcmp(reason, "return"))) {
        api_verr_set(e, 422, "reason", "reason must be count, damage or return");
        return NULL;
    }
    return json_pack("{s:s, s:I, s:s}", "sku", sku, "delta", (json_int_t)delta, "reason", reason);
}

static json_t *reservation_fields(const json_t *body, const char *sku, struct api_verr *e,
                                  char *location, size_t cap)
{
    long long q = 0;
    const char *order = order_id_field(body, e);
    if (!order || int_field(body, "quantity", 1, MAX_QUANTITY, false, &q, e))
        return NULL;
    snprintf(location, cap, "/v1/inventory/%s/reservations/%s", sku, order);
    return json_pack("{s:s, s:s, s:I}", "sku", sku, "order_id", order, "quantity", (json_int_t)q);
}

/* The command of the path's sku whose body has only the allowed fields (NULL-terminated) and
 * whose fields fields() makes; answers in every case. */
static void send_stock_command(es_http_req_t *r, const struct api_principal *who,
                               const char *command_type, const char *const *allowed,
                               stock_fields_fn fields)
{
    const char *sku = api_path_sku_or_reply(r);
    json_t *body = sku ? api_json_body_or_reply(r) : NULL;
    if (!body)
        return;
    struct api_verr e = {0};
    char location[256] = "";
    json_t *f = NULL;
    if (api_validate_only_fields(body, allowed, "", &e) ||
        !(f = fields(body, sku, &e, location, sizeof location)))
        api_reply_verr(r, &e);
    else
        api_command_send(r, who, CTX, command_type, sku, f, location[0] ? location : NULL);
    json_decref(body);
}

void api_inventory_receive(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"quantity", NULL};
    send_stock_command(r, who, NS "ReceiveStock", allowed, receipt_fields);
}

void api_inventory_adjust(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"delta", "reason", NULL};
    send_stock_command(r, who, NS "AdjustStock", allowed, adjustment_fields);
}

void api_inventory_reserve(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"order_id", "quantity", NULL};
    send_stock_command(r, who, NS "ReserveStock", allowed, reservation_fields);
}

static void close_reservation(es_http_req_t *r, const struct api_principal *who,
                              const char *command_type)
{
    const char *sku = api_path_sku_or_reply(r);
    if (!sku)
        return;
    const char *order = es_http_param(r, "order_id");
    if (!is_order_id(order)) {
        api_reply_problem(r, 404, NULL, "order_id", "'%.64s' is not an order id",
                          order ? order : "");
        return;
    }
    api_command_send(r, who, CTX, command_type, sku,
                     json_pack("{s:s, s:s}", "sku", sku, "order_id", order), NULL);
}

void api_inventory_release(es_http_req_t *r, const struct api_principal *who)
{
    close_reservation(r, who, NS "ReleaseStock");
}

void api_inventory_commit(es_http_req_t *r, const struct api_principal *who)
{
    close_reservation(r, who, NS "CommitStock");
}

#define STOCK_COLUMNS "sku, vendor_id, on_hand, reserved, available, version"
static const char stock_by_sku[] = "SELECT " STOCK_COLUMNS " FROM stock WHERE sku = ?";
/* the same as es_dbpool_lookup's prefix (sku is utf8mb4_bin) */
static const char stock_lookup[] = "SELECT " STOCK_COLUMNS " FROM stock WHERE sku";

/* the stock row of the path's sku (new reference), or NULL after answering (404 if none) */
static json_t *stock_row_or_reply(es_http_req_t *r, const char *sku)
{
    es_db_val_t params[] = {ES_DB_S(sku)};
    json_t *rows = api_query_or_reply(r, CTX, stock_by_sku, params, 1);
    if (!rows)
        return NULL;
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    if (!row)
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_sku", "sku",
                          "no stock for sku '%s'", sku);
    return row;
}

/* 200 with the stock of row (stolen), or 304 when If-None-Match names its version */
static void reply_stock(es_http_req_t *r, json_t *row)
{
    json_object_del(row, "vendor_id");
    api_reply_versioned(r, (long long)json_integer_value(json_object_get(row, "version")), row);
}

/* The answer to GET /v1/inventory/{sku} from the rows (stolen) of the stock query. */
static void answer_stock(es_http_req_t *r, void *arg, json_t *rows)
{
    (void)arg;
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    if (!row) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_sku", "sku",
                          "no stock for sku '%s'", es_http_param(r, "sku"));
        return;
    }
    reply_stock(r, row);
}

static void run_stock(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    const char *sku = api_path_sku_or_reply(r);
    if (!sku)
        return;
    api_lookup_async_or_reply(r, CTX, stock_lookup, "sku", sku, answer_stock, NULL, NULL);
}

static void run_movements(es_http_req_t *r, const struct api_principal *who)
{
    const char *sku = api_path_sku_or_reply(r);
    json_t *row = sku ? stock_row_or_reply(r, sku) : NULL;
    if (!row)
        return;
    const char *owner = json_string_value(json_object_get(row, "vendor_id"));
    bool allowed = !strcmp(who->role, "admin") ||
                   (!strcmp(who->role, "vendor") && owner && !strcmp(owner, who->vendor_id));
    json_decref(row);
    if (!allowed) {
        api_reply_problem(r, 403, "urn:eventshop:problem:not_owner", "sku",
                          "only the vendor owning sku '%s' or an admin sees its movements", sku);
        return;
    }
    int limit = api_query_limit_or_reply(r);
    if (limit < 0)
        return;
    static const char sql[] =
        "SELECT version, kind, quantity, order_id, reason, on_hand, reserved, at, event_id "
        "FROM stock_movements WHERE sku = ? ORDER BY version DESC LIMIT ?";
    es_db_val_t params[] = {ES_DB_S(sku), ES_DB_I(limit)};
    json_t *rows = api_query_or_reply(r, CTX, sql, params, 2);
    if (rows)
        es_http_reply_json(r, 200, json_pack("{s:s, s:o}", "sku", sku, "items", rows));
}

void api_inventory_get(es_http_req_t *r, const struct api_principal *who)
{
    json_t *row = api_cache_row(r, CTX, "stock", STOCK_COLUMNS);
    if (row) {
        reply_stock(r, row);
        return;
    }
    api_query_at_position(r, who, CTX, PROJECTION, run_stock);
}

void api_inventory_movements(es_http_req_t *r, const struct api_principal *who)
{
    api_query_at_position(r, who, CTX, PROJECTION, run_movements);
}
