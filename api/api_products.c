/* The catalog context over HTTP: POST/PATCH/DELETE on products become ListProduct,
 * ChangeProductDetails and DelistProduct commands on catalog.commands (api_command_send), and
 * queries read table products of eventshop_catalog (filled by the catalog projector
 * "catalog_products") with read-your-writes (api_query_at_position): a product by its sku on
 * the loop thread's non-blocking pool (api_lookup_async_or_reply: asked together with the other
 * products' lookups waiting for a connection), listings on its blocking connection.
 * A listing's products carry their current price and stock (api_prices_offers), what a shop
 * shows beside each. */
#include "api_app.h"
#include "api_cache.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTX        "catalog"
#define PROJECTION "catalog_products"

#define PRODUCT_COLUMNS                                                                            \
    "sku, vendor_id, name, description, category, attributes, currency, status, version"
static const char product_columns[] = "SELECT " PRODUCT_COLUMNS " FROM products";
/* a product by its sku: es_dbpool_lookup's prefix (sku is utf8mb4_bin) */
static const char product_lookup[] = "SELECT " PRODUCT_COLUMNS " FROM products WHERE sku";

/* A row as the API shows it (new reference to row, whose members are replaced, never changed:
 * they may be shared, the object itself is the caller's): attributes parsed from their JSON
 * text. */
static json_t *product_from_row(json_t *row)
{
    const char *text = json_string_value(json_object_get(row, "attributes"));
    json_t *attrs = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(attrs)) {
        json_decref(attrs);
        attrs = json_object();
    }
    json_object_set_new(row, "attributes", attrs);
    if (json_is_null(json_object_get(row, "description")))
        json_object_set_new(row, "description", json_string(""));
    return json_incref(row);
}

/* 200 with the product of row (borrowed, the caller's object), or 304 when If-None-Match names
 * its version */
static void reply_product(es_http_req_t *r, json_t *row)
{
    json_t *p = product_from_row(row);
    api_reply_versioned(r, (long long)json_integer_value(json_object_get(p, "version")), p);
}

static json_t *query_or_reply(es_http_req_t *r, const char *sql, const es_db_val_t *params,
                              size_t n)
{
    return api_query_or_reply(r, CTX, sql, params, n);
}

/* The answer to GET /v1/products/{sku} from the rows (stolen) of product_lookup. */
static void answer_product(es_http_req_t *r, void *arg, json_t *rows)
{
    (void)arg;
    const char *sku = es_http_param(r, "sku");
    if (json_array_size(rows) == 0) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_sku", "sku",
                          "no product with sku '%s'", sku);
    } else {
        reply_product(r, json_array_get(rows, 0));
    }
    json_decref(rows);
}

static void run_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    const char *sku = api_path_sku_or_reply(r);
    if (!sku)
        return;
    api_lookup_async_or_reply(r, CTX, product_lookup, "sku", sku, answer_product, NULL, NULL);
}

/* Adds to each product of items (borrowed) its current "price" and "available" stock. */
static void add_offers(es_http_req_t *r, json_t *items)
{
    size_t n = json_array_size(items), i;
    const char **skus = xcalloc(n + 1, sizeof *skus);
    json_t *p;
    json_array_foreach(items, i, p) skus[i] = json_string_value(json_object_get(p, "sku"));
    json_t *offers = api_prices_offers(r, skus, n);
    json_array_foreach(items, i, p)
    {
        json_t *o = json_object_get(offers, skus[i]);
        json_object_set(p, "price", json_object_get(o, "price"));
        json_object_set(p, "available", json_object_get(o, "available"));
    }
    json_decref(offers);
    free(skus);
}

/* Filters, each optional: vendor, category, status, and q (full text over name and
 * description, api_search_query); keyset paging by sku whichever filters apply. */
static void run_list(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    char *vendor = es_http_query_dup(r, "vendor");
    char *category = es_http_query_dup(r, "category");
    char *status = es_http_query_dup(r, "status");
    char *cursor = es_http_query_dup(r, "cursor");
    char *q = es_http_query_dup(r, "q");
    char *after = NULL, *match = NULL;
    struct api_verr e = {0};
    int limit = api_query_limit_or_reply(r);
    if (limit < 0)
        goto out;
    if (q && !(match = api_search_query(q, &e))) {
        api_reply_verr(r, &e);
        goto out;
    }
    if (cursor && !(after = api_cursor_decode(cursor))) {
        api_reply_problem(r, 400, NULL, "cursor", "cursor '%.64s' is not valid", cursor);
        goto out;
    }
    if (status && strcmp(status, "listed") && strcmp(status, "delisted") && strcmp(status, "any")) {
        api_reply_problem(r, 400, NULL, "status", "status must be listed, delisted or any");
        goto out;
    }
    /* Only fixed clauses go into the SQL; every value is a bound parameter. Public listings
     * show listed products unless asked otherwise. */
    char sql[640];
    es_db_val_t params[6];
    size_t n = 0;
    int w = snprintf(sql, sizeof sql, "%s WHERE sku > ?", product_columns);
    params[n++] = ES_DB_S(after ? after : "");
    if (!status || strcmp(status, "any")) {
        w += snprintf(sql + w, sizeof sql - w, " AND status = ?");
        params[n++] = ES_DB_S(status ? status : "listed");
    }
    if (vendor) {
        w += snprintf(sql + w, sizeof sql - w, " AND vendor_id = ?");
        params[n++] = ES_DB_S(vendor);
    }
    if (category) {
        w += snprintf(sql + w, sizeof sql - w, " AND category = ?");
        params[n++] = ES_DB_S(category);
    }
    if (match) {
        /* the FULLTEXT index name_description; a query with no word long enough matches none */
        w += snprintf(sql + w, sizeof sql - w,
                      " AND MATCH(name, description) AGAINST (? IN BOOLEAN MODE)");
        params[n++] = ES_DB_S(match);
        if (!*match)
            w += snprintf(sql + w, sizeof sql - w, " AND FALSE");
    }
    snprintf(sql + w, sizeof sql - w, " ORDER BY sku LIMIT ?");
    params[n++] = ES_DB_I(limit + 1); /* one more tells whether a next page exists */
    json_t *rows = query_or_reply(r, sql, params, n);
    if (!rows)
        goto out;
    json_t *items = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (i == (size_t)limit)
            break;
        json_array_append_new(items, product_from_row(row));
    }
    json_t *next = json_null();
    if (json_array_size(rows) > (size_t)limit) {
        char *c = api_cursor_encode(
            json_string_value(json_object_get(json_array_get(rows, limit - 1), "sku")));
        next = json_string(c);
        free(c);
    }
    json_decref(rows);
    add_offers(r, items);
    es_http_reply_json(r, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
out:
    free(vendor);
    free(category);
    free(status);
    free(cursor);
    free(q);
    free(after);
    free(match);
}

void api_products_get(es_http_req_t *r, const struct api_principal *who)
{
    json_t *row = api_cache_row(r, CTX, "products", PRODUCT_COLUMNS);
    if (row) {
        reply_product(r, row);
        json_decref(row);
        return;
    }
    api_query_at_position(r, who, CTX, PROJECTION, run_get);
}

void api_products_list(es_http_req_t *r, const struct api_principal *who)
{
    api_query_at_position(r, who, CTX, PROJECTION, run_list);
}

void api_products_post(es_http_req_t *r, const struct api_principal *who)
{
    json_t *body = api_json_body_or_reply(r);
    if (!body)
        return;
    struct api_verr e = {0};
    json_t *fields =
        api_validate_list_product(body, who->role, who->vendor_id[0] ? who->vendor_id : NULL, &e);
    if (!fields) {
        api_reply_verr(r, &e);
    } else {
        char sku[72], location[96];
        snprintf(sku, sizeof sku, "%s", json_string_value(json_object_get(fields, "sku")));
        snprintf(location, sizeof location, "/v1/products/%s", sku);
        api_command_send(r, who, CTX, "eventshop.catalog.ListProduct", sku, fields, location);
    }
    json_decref(body);
}

void api_products_patch(es_http_req_t *r, const struct api_principal *who)
{
    const char *sku = api_path_sku_or_reply(r);
    if (!sku)
        return;
    json_t *body = api_json_body_or_reply(r);
    if (!body)
        return;
    struct api_verr e = {0};
    json_t *fields = api_validate_change_details(body, &e);
    if (!fields) {
        api_reply_verr(r, &e);
    } else {
        json_object_set_new(fields, "sku", json_string(sku));
        api_command_send(r, who, CTX, "eventshop.catalog.ChangeProductDetails", sku, fields, NULL);
    }
    json_decref(body);
}

void api_products_delete(es_http_req_t *r, const struct api_principal *who)
{
    const char *sku = api_path_sku_or_reply(r);
    if (sku)
        api_command_send(r, who, CTX, "eventshop.catalog.DelistProduct", sku,
                         json_pack("{s:s}", "sku", sku), NULL);
}
