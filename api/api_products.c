/* Queries on the products read model (table products of eventshop_catalog, filled by the
 * catalog projector), on the loop thread's own DB connection.
 *
 * Read-your-writes: a command's outcome carries position "<partition>:<offset>" of its last
 * event on catalog.events. A query may pass it back as the X-Min-Position header (or the
 * ?min_position= parameter); it is then answered only once the projector's stored offset for
 * that partition (projection_offsets row 'catalog_products', 'catalog.events', part) has a
 * next_offset beyond it, polling every 20 ms without blocking the loop (es_http_after), for at
 * most 5 s, after which the answer is a 504 problem. */
#include "api_app.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_POSITION_POLL_MS 20
#define MIN_POSITION_MAX_MS  5000

static const char product_columns[] =
    "SELECT sku, vendor_id, name, description, category, attributes, currency, status, version "
    "FROM products";

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A row as the API shows it (new reference): attributes parsed from their JSON text. */
static json_t *product_from_row(const json_t *row)
{
    json_t *p = json_deep_copy(row);
    const char *text = json_string_value(json_object_get(row, "attributes"));
    json_t *attrs = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(attrs)) {
        json_decref(attrs);
        attrs = json_object();
    }
    json_object_set_new(p, "attributes", attrs);
    if (json_is_null(json_object_get(p, "description")))
        json_object_set_new(p, "description", json_string(""));
    return p;
}

static json_t *query_or_reply(es_http_req_t *r, const char *sql, const es_db_val_t *params,
                              size_t n)
{
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = api_db(r, &err);
    json_t *rows = db ? es_db_query(db, sql, params, n, &err) : NULL;
    if (!rows) {
        es_warn("catalog query failed: %s", err.msg);
        if (err.code == ES_EIO)
            api_db_broken(r);
        api_reply_problem(r, 503, NULL, NULL, "the catalog read model is unavailable");
    }
    return rows;
}

static void run_get(es_http_req_t *r)
{
    const char *sku = es_http_param(r, "sku");
    struct api_verr e = {0};
    if (api_validate_sku(sku, 404, &e)) {
        api_reply_verr(r, &e);
        return;
    }
    char sql[256];
    snprintf(sql, sizeof sql, "%s WHERE sku = ?", product_columns);
    es_db_val_t params[] = {ES_DB_S(sku)};
    json_t *rows = query_or_reply(r, sql, params, 1);
    if (!rows)
        return;
    if (json_array_size(rows) == 0) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_sku", "sku",
                          "no product with sku '%s'", sku);
    } else {
        json_t *p = product_from_row(json_array_get(rows, 0));
        char etag[32];
        snprintf(etag, sizeof etag, "\"%lld\"",
                 (long long)json_integer_value(json_object_get(p, "version")));
        es_http_add_header(r, "ETag", etag);
        es_http_reply_json(r, 200, p);
    }
    json_decref(rows);
}

static void run_list(es_http_req_t *r)
{
    char *vendor = es_http_query_dup(r, "vendor");
    char *category = es_http_query_dup(r, "category");
    char *status = es_http_query_dup(r, "status");
    char *limit_s = es_http_query_dup(r, "limit");
    char *cursor = es_http_query_dup(r, "cursor");
    char *after = NULL;
    int limit = api_parse_limit(limit_s);
    if (limit < 0) {
        api_reply_problem(r, 400, NULL, "limit", "limit must be 1-200");
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
    char sql[512];
    es_db_val_t params[5];
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
    es_http_reply_json(r, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
out:
    free(vendor);
    free(category);
    free(status);
    free(limit_s);
    free(cursor);
    free(after);
}

struct min_position {
    void (*run)(es_http_req_t *r);
    int32_t partition;
    int64_t offset;
    long long deadline_ms;
};

/* 1 if the projection has applied offset of partition, 0 if not yet, -1 answered (error). */
static int position_reached(es_http_req_t *r, const struct min_position *mp)
{
    static const char sql[] = "SELECT next_offset FROM projection_offsets WHERE projection = ? "
                              "AND topic = ? AND part = ?";
    es_db_val_t params[] = {ES_DB_S("catalog_products"), ES_DB_S("catalog.events"),
                            ES_DB_I(mp->partition)};
    json_t *rows = query_or_reply(r, sql, params, 3);
    if (!rows)
        return -1;
    json_t *next = json_object_get(json_array_get(rows, 0), "next_offset");
    int reached = json_is_integer(next) && json_integer_value(next) > mp->offset;
    json_decref(rows);
    return reached;
}

static void poll_position(es_http_req_t *r, void *arg)
{
    struct min_position *mp = arg;
    int reached = position_reached(r, mp);
    if (reached < 0) {
        free(mp);
        return;
    }
    if (reached) {
        mp->run(r);
        free(mp);
    } else if (mono_ms() >= mp->deadline_ms) {
        api_reply_problem(r, 504, "urn:eventshop:problem:position_not_reached", NULL,
                          "the read model has not reached %d:%lld within %d ms", (int)mp->partition,
                          (long long)mp->offset, MIN_POSITION_MAX_MS);
        free(mp);
    } else {
        es_http_after(r, MIN_POSITION_POLL_MS, poll_position, mp, free);
    }
}

/* Runs the query now, or once the read model reached the request's minimum position. */
static void with_min_position(es_http_req_t *r, void (*run)(es_http_req_t *r))
{
    char *pos = es_http_header_dup(r, "X-Min-Position");
    if (!pos)
        pos = es_http_query_dup(r, "min_position");
    if (!pos) {
        run(r);
        return;
    }
    struct min_position *mp = xcalloc(1, sizeof *mp);
    if (api_parse_position(pos, &mp->partition, &mp->offset)) {
        api_reply_problem(r, 400, NULL, "X-Min-Position",
                          "position '%.64s' is not <partition>:<offset>", pos);
        free(mp);
    } else {
        mp->run = run;
        mp->deadline_ms = mono_ms() + MIN_POSITION_MAX_MS;
        poll_position(r, mp);
    }
    free(pos);
}

void api_products_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    with_min_position(r, run_get);
}

void api_products_list(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    with_min_position(r, run_list);
}
