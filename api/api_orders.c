/* The orders context over HTTP. POST /v1/orders (a customer places its own order: the API
 * makes the order id, seals the shipping address with the customer's key, made now if it has
 * none, and stamps the deadlines from EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS / _PAY_TIMEOUT_MS);
 * POST /v1/orders/{id}/cancel; GET /v1/orders/{id} and GET /v1/orders read tables orders,
 * order_lines, order_timeline of eventshop_orders (projection "orders_orders") plus the payment
 * and shipment rows of eventshop_payments / eventshop_shipping when those are served. */
#include "api_app.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "es_uuid.h"
#include "users_crypto.h"
#include "users_keys.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTX        "orders"
#define PROJECTION "orders_orders"
#define NS         "eventshop.orders."
#define MAX_LINES  50
#define MAX_QTY    1000
#define SKU_MAX    64
#define ADDR_MAX   200

/* customer_id's key, made now if it has none: 0, or -1 with err */
static int customer_key(es_http_req_t *r, const char *customer_id,
                        unsigned char key[USERS_KEY_BYTES], es_err_t *err)
{
    es_db_t *db = api_db_keys(r, err);
    int rc = db ? users_keys_get_or_make(db, customer_id, key, err) : -1;
    if (rc < 0)
        api_db_keys_failed(r, err);
    return rc;
}

/* the lines of the body as PlaceOrder lines (new), or NULL with e */
static json_t *lines_field(const json_t *body, struct api_verr *e)
{
    static const char *const allowed[] = {"sku", "quantity", NULL};
    const json_t *lines = json_object_get(body, "lines");
    size_t n = json_array_size(lines);
    if (!json_is_array(lines) || n < 1 || n > MAX_LINES) {
        api_verr_set(e, 422, "lines", "lines must be an array of 1 to %d lines", MAX_LINES);
        return NULL;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        const json_t *l = json_array_get(lines, i);
        const char *sku = json_string_value(json_object_get(l, "sku"));
        json_t *q = json_object_get(l, "quantity");
        if (!json_is_object(l) || api_validate_only_fields(l, allowed, "lines: ", e)) {
            if (!json_is_object(l))
                api_verr_set(e, 422, "lines", "lines[%zu] must be an object", i);
            goto bad;
        }
        if (api_validate_sku(sku, 422, NULL)) { /* one that can exist, refused at once */
            api_verr_set(e, 422, "lines", "lines[%zu].sku must be 1 to %d of [A-Za-z0-9._-]", i,
                         SKU_MAX);
            goto bad;
        }
        if (!json_is_integer(q) || json_integer_value(q) < 1 || json_integer_value(q) > MAX_QTY) {
            api_verr_set(e, 422, "lines", "lines[%zu].quantity must be an integer 1 to %d", i,
                         MAX_QTY);
            goto bad;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(sku, json_string_value(json_object_get(json_array_get(out, j), "sku")))) {
                api_verr_set(e, 422, "lines", "lines[%zu].sku '%.64s' appears twice", i, sku);
                goto bad;
            }
        }
        json_array_append_new(out, json_pack("{s:s, s:O}", "sku", sku, "quantity", q));
    }
    return out;
bad:
    json_decref(out);
    return NULL;
}

static int address_field(const json_t *body, struct api_verr *e)
{
    static const char *const fields[] = {"name", "line1", "city", "postal_code", "country", NULL};
    const json_t *a = json_object_get(body, "shipping_address");
    if (!json_is_object(a))
        return api_verr_set(e, 422, "shipping_address", "shipping_address must be an object");
    if (api_validate_only_fields(a, fields, "shipping_address: ", e))
        return -1;
    for (const char *const *f = fields; *f; f++) {
        const char *v = json_string_value(json_object_get(a, *f));
        if (!v || !*v || api_utf8_chars(v) > ADDR_MAX)
            return api_verr_set(e, 422, "shipping_address",
                                "shipping_address.%s must be 1 to %d "
                                "characters",
                                *f, ADDR_MAX);
    }
    return 0;
}

void api_orders_post(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"lines", "shipping_address", NULL};
    json_t *body = api_json_body_nested_or_reply(r, 3); /* body > lines > line */
    if (!body)
        return;
    struct api_verr e = {0};
    json_t *lines = NULL;
    char *addr = NULL, *sealed = NULL, *idem = NULL;
    unsigned char key[USERS_KEY_BYTES];
    if (api_validate_only_fields(body, allowed, "", &e) || !(lines = lines_field(body, &e)) ||
        address_field(body, &e)) {
        api_reply_verr(r, &e);
        goto out;
    }
    struct api_app *app = es_http_app(r);
    es_err_t err = ES_ERR_INIT;
    if (!app->sealing || customer_key(r, who->sub, key, &err) != 0) {
        api_reply_problem(r, 503, NULL, NULL, "the customer key store is unavailable");
        goto out;
    }
    addr = json_dumps(json_object_get(body, "shipping_address"), JSON_SORT_KEYS | JSON_COMPACT);
    sealed = users_seal(key, who->sub, "shipping_address", addr);
    memset(key, 0, sizeof key);
    /* a retry with the same Idempotency-Key is the same order */
    char order_id[ES_UUID_LEN];
    idem = es_http_header_dup(r, "Idempotency-Key");
    if (idem && *idem) {
        char *name = xasprintf("%s:%s", who->sub, idem);
        es_uuid_derive("eventshop-order", name, order_id);
        free(name);
    } else {
        es_uuid_random(order_id);
    }
    long long now = es_wall_ms();
    long long reserve = es_env_long("EVENTSHOP_ORDER_RESERVE_TIMEOUT_MS", 60000);
    long long pay = es_env_long("EVENTSHOP_ORDER_PAY_TIMEOUT_MS", 300000);
    char location[96];
    snprintf(location, sizeof location, "/v1/orders/%s", order_id);
    api_command_send(r, who, CTX, NS "PlaceOrder", order_id,
                     json_pack("{s:s, s:s, s:O, s:s, s:I, s:I}", "order_id", order_id,
                               "customer_id", who->sub, "lines", lines, "shipping_address_enc",
                               sealed, "reserve_by", (json_int_t)(now + reserve), "pay_by",
                               (json_int_t)(now + pay)),
                     location);
out:
    free(idem);
    if (addr) {
        memset(addr, 0, strlen(addr));
        free(addr);
    }
    free(sealed);
    json_decref(lines);
    json_decref(body);
}

static const char *order_param_or_reply(es_http_req_t *r)
{
    const char *id = es_http_param(r, "id");
    size_t n = id ? strlen(id) : 0;
    bool ok = n >= 1 && n <= 128;
    for (size_t i = 0; ok && i < n; i++)
        ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
             (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-';
    if (!ok) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_order", "id",
                          "'%.64s' is not an order id", id ? id : "");
        return NULL;
    }
    return id;
}

void api_orders_cancel(es_http_req_t *r, const struct api_principal *who)
{
    const char *id = order_param_or_reply(r);
    if (!id)
        return;
    bool admin = !strcmp(who->role, "admin");
    api_command_send(
        r, who, CTX, NS "CancelOrder", id,
        json_pack("{s:s, s:s}", "order_id", id, "reason", admin ? "admin" : "customer"), NULL);
}

/* status of order id in table of ctx (a served context), or NULL */
static json_t *side_status(es_http_req_t *r, const char *ctx, const char *sql, const char *id)
{
    if (!api_context_enabled(es_http_app(r), ctx))
        return json_null();
    es_err_t err = ES_ERR_INIT;
    es_db_val_t p[] = {ES_DB_S(id)};
    json_t *rows = api_query(r, ctx, sql, p, 1, &err);
    if (!rows) {
        es_warn("%s query failed: %s", ctx, err.msg);
        return json_null(); /* a side read model down does not hide the order */
    }
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return row ? row : json_null();
}

static void run_get(es_http_req_t *r, const struct api_principal *who)
{
    const char *id = order_param_or_reply(r);
    if (!id)
        return;
    es_db_val_t p[] = {ES_DB_S(id)};
    json_t *rows = api_query_or_reply(
        r, CTX,
        "SELECT order_id, customer_id, status, total_minor, currency, cancel_reason, "
        "refund_requested, tracking_number, version, placed_at, updated_at FROM orders "
        "WHERE order_id = ?",
        p, 1);
    if (!rows)
        return;
    json_t *order = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    const char *customer = order ? json_string_value(json_object_get(order, "customer_id")) : NULL;
    bool admin = !strcmp(who->role, "admin");
    bool owner = customer && !strcmp(who->role, "customer") && !strcmp(customer, who->sub);
    json_t *lines = NULL;
    if (order) {
        if (!strcmp(who->role, "vendor")) {
            es_db_val_t q[] = {ES_DB_S(id), ES_DB_S(who->vendor_id)};
            lines = api_query_or_reply(r, CTX,
                                       "SELECT sku, vendor_id, quantity, unit_amount_minor FROM "
                                       "order_lines WHERE order_id = ? AND vendor_id = ?",
                                       q, 2);
        } else {
            lines = api_query_or_reply(r, CTX,
                                       "SELECT sku, vendor_id, quantity, unit_amount_minor FROM "
                                       "order_lines WHERE order_id = ?",
                                       p, 1);
        }
        if (!lines) {
            json_decref(order);
            return;
        }
    }
    bool vendor_lines = !strcmp(who->role, "vendor") && json_array_size(lines) > 0;
    if (!order || (!admin && !owner && !vendor_lines)) {
        /* someone else's order is not found either: no oracle of order ids */
        json_decref(order);
        json_decref(lines);
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_order", "id", "no order '%s'", id);
        return;
    }
    json_t *timeline = api_query_or_reply(
        r, CTX, "SELECT status, detail, at FROM order_timeline WHERE order_id = ? ORDER BY version",
        p, 1);
    if (!timeline) {
        json_decref(order);
        json_decref(lines);
        return;
    }
    json_object_set_new(order, "lines", lines);
    json_object_set_new(order, "timeline", timeline);
    json_object_set_new(order, "payment",
                        side_status(r, "payments",
                                    "SELECT status, amount_minor, currency, gateway_ref FROM "
                                    "payments WHERE order_id = ?",
                                    id));
    json_object_set_new(order, "shipment",
                        side_status(r, "shipping",
                                    "SELECT status, tracking_number, carrier FROM shipments "
                                    "WHERE order_id = ?",
                                    id));
    json_t *pay = json_object_get(order, "payment");
    json_t *ship = json_object_get(order, "shipment");
    json_object_set(order, "payment_status",
                    json_is_object(pay) ? json_object_get(pay, "status") : json_null());
    json_object_set(order, "shipment_status",
                    json_is_object(ship) ? json_object_get(ship, "status") : json_null());
    char etag[32];
    snprintf(etag, sizeof etag, "\"%lld\"",
             (long long)json_integer_value(json_object_get(order, "version")));
    es_http_add_header(r, "ETag", etag);
    es_http_reply_json(r, 200, order);
}

static void run_list(es_http_req_t *r, const struct api_principal *who)
{
    int limit = api_query_limit_or_reply(r);
    if (limit < 0)
        return;
    json_t *rows;
    if (!strcmp(who->role, "admin")) {
        es_db_val_t p[] = {ES_DB_I(limit)};
        rows = api_query_or_reply(r, CTX,
                                  "SELECT order_id, customer_id, status, total_minor, currency, "
                                  "cancel_reason, version, placed_at FROM orders "
                                  "ORDER BY placed_at DESC, order_id LIMIT ?",
                                  p, 1);
    } else if (!strcmp(who->role, "vendor")) {
        es_db_val_t p[] = {ES_DB_S(who->vendor_id), ES_DB_I(limit)};
        rows = api_query_or_reply(
            r, CTX,
            "SELECT o.order_id, o.status, o.currency, o.placed_at, l.sku, l.quantity, "
            "l.unit_amount_minor FROM order_lines l JOIN orders o ON o.order_id = l.order_id "
            "WHERE l.vendor_id = ? ORDER BY o.placed_at DESC, o.order_id, l.sku LIMIT ?",
            p, 2);
    } else {
        es_db_val_t p[] = {ES_DB_S(who->sub), ES_DB_I(limit)};
        rows = api_query_or_reply(r, CTX,
                                  "SELECT order_id, customer_id, status, total_minor, currency, "
                                  "cancel_reason, version, placed_at FROM orders "
                                  "WHERE customer_id = ? ORDER BY placed_at DESC, order_id LIMIT ?",
                                  p, 2);
    }
    if (rows)
        es_http_reply_json(r, 200, json_pack("{s:o}", "items", rows));
}

void api_orders_get(es_http_req_t *r, const struct api_principal *who)
{
    api_query_at_position(r, who, CTX, PROJECTION, run_get);
}

void api_orders_list(es_http_req_t *r, const struct api_principal *who)
{
    api_query_at_position(r, who, CTX, PROJECTION, run_list);
}
