/* The pricing context over HTTP. PUT /v1/prices/{sku}, POST /v1/prices/{sku}/rules and DELETE
 * /v1/prices/{sku}/rules/{rule_id} become SetListPrice, AddPriceRule and RemovePriceRule on
 * pricing.commands. GET /v1/prices/{sku}[?at=] computes the effective price with the pure
 * pricing_rules.h function from the pricing read model (tables prices and price_rules of
 * eventshop_pricing, projection "pricing_prices") and the available stock of the inventory read
 * model (table stock of eventshop_inventory; when the API does not serve inventory or the row or
 * database is missing, the stock is unknown and no low-stock surcharge applies). GET
 * /v1/prices/{sku}/history lists the price's events. The GET of a price holds no loop thread
 * (api_query_async); the history reads on the thread's blocking connection. */
#include "api_app.h"
#include "api_cache.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "pricing_rules.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTX        "pricing"
#define PROJECTION "pricing_prices"
#define NS         "eventshop.pricing."

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil) */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int64_t *out)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

int api_parse_instant(const char *s, int64_t *ms)
{
    if (!s || !*s || strlen(s) > 40)
        return -1;
    /* integer milliseconds since the epoch */
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p && strspn(p, "0123456789") == strlen(p)) {
        if (strlen(p) > 15) /* beyond the year 33000 */
            return -1;
        *ms = strtoll(s, NULL, 10);
        return 0;
    }
    /* YYYY-MM-DDTHH:MM:SS[.fff]{Z|+HH:MM|-HH:MM} */
    int64_t y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0;
    p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't') || !*p++ || digits(&p, 2, &h) ||
        *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
        return -1;
    if (*p == '.') {
        p++;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac *= 10;
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
    } else {
        return -1; /* an instant needs its offset: local time is ambiguous */
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    secs -= sign * (oh * 3600 + om * 60);
    *ms = secs * 1000 + frac;
    return 0;
}

/* GET /v1/prices/{sku} reads the list price with its rules (one query, the price's columns on
 * every row) and the available stock (inventory's read model) at once, each on a non-blocking
 * connection; this state collects both (a reference per query) and the last to arrive answers. */
struct price_get {
    int refs, pending;
    int64_t at;
    json_t *price; /* the rows of price_sql, NULL when it failed (err) */
    es_err_t err;
    int64_t available;
};

static void price_get_release(void *arg)
{
    struct price_get *g = arg;
    if (--g->refs > 0)
        return;
    json_decref(g->price);
    free(g);
}

static const char price_sql[] =
    "SELECT p.list_amount_minor, p.currency, p.version, r.rule_id, r.kind, "
    "r.currency AS rule_currency, r.basis_points, r.amount_minor, r.threshold, r.cap_minor, "
    "r.valid_from, r.valid_until FROM prices p LEFT JOIN price_rules r "
    "ON r.sku = p.sku AND r.removed = 0 WHERE p.sku = ? ORDER BY r.rule_id";
static const char stock_sql[] = "SELECT available FROM stock WHERE sku = ?";

/* The rules on the rows of price_sql into pr (room for every row): their count. A row's rule
 * currency becomes its "currency" (pr_rule_from_json's key), so the caller reads the price's
 * before. */
static size_t price_rules(json_t *rows, pr_rule_t *pr)
{
    size_t n = 0, i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (json_is_null(json_object_get(row, "rule_id")))
            continue;
        json_object_set(row, "currency", json_object_get(row, "rule_currency"));
        if (pr_rule_from_json(row, &pr[n]) == 0)
            n++;
    }
    return n;
}

/* The effective price of g's list price and rules at g->at with g's available stock. */
static void answer_price(es_http_req_t *r, const struct price_get *g)
{
    const char *sku = es_http_param(r, "sku");
    json_t *row = json_array_get(g->price, 0);
    json_t *currency = json_incref(json_object_get(row, "currency"));
    long long version = json_integer_value(json_object_get(row, "version"));
    int64_t list = json_integer_value(json_object_get(row, "list_amount_minor"));
    pr_rule_t *pr = xcalloc(json_array_size(g->price) + 1, sizeof *pr);
    size_t n = price_rules(g->price, pr);
    pr_result_t res;
    if (pr_effective_price(list, json_string_value(currency), pr, n, g->available, g->at, &res)) {
        api_reply_problem(r, 500, NULL, NULL, "sku '%s' has a malformed list price", sku);
        goto out;
    }
    json_t *applied = json_array();
    for (size_t k = 0; k < res.n_applied; k++)
        json_array_append_new(applied,
                              json_pack("{s:s, s:s, s:I}", "rule_id", res.applied[k].rule_id,
                                        "kind", pr_kind_name(res.applied[k].kind), "amount_minor",
                                        (json_int_t)res.applied[k].delta_minor));
    json_t *body = json_pack(
        "{s:s, s:I, s:O, s:I, s:I, s:o, s:o, s:I}", "sku", sku, "amount_minor",
        (json_int_t)res.amount_minor, "currency", currency, "list_amount_minor",
        (json_int_t)res.list_amount_minor, "at", (json_int_t)g->at, "applied_rules", applied,
        "available", g->available == PR_STOCK_UNKNOWN ? json_null() : json_integer(g->available),
        "version", (json_int_t)version);
    char etag[32];
    snprintf(etag, sizeof etag, "\"%lld\"", version);
    es_http_add_header(r, "ETag", etag);
    es_http_reply_json(r, 200, body);
out:
    free(pr);
    json_decref(currency);
}

/* Both reads are in: the answer. */
static void price_get_done(es_http_req_t *r, struct price_get *g)
{
    if (--g->pending > 0)
        return;
    if (!g->price) {
        api_reply_read_failed(r, CTX, &g->err);
        return;
    }
    json_t *row = json_array_get(g->price, 0);
    if (!row || !json_is_integer(json_object_get(row, "list_amount_minor"))) {
        api_reply_problem(r, 404, "urn:eventshop:problem:no_list_price", "sku",
                          "sku '%s' has no list price", es_http_param(r, "sku"));
        return;
    }
    answer_price(r, g);
}

static void got_price(es_http_req_t *r, void *arg, json_t *rows, const es_err_t *err)
{
    struct price_get *g = arg;
    g->price = rows;
    if (!rows)
        es_set(&g->err, err->code, "%s", err->msg);
    price_get_done(r, g);
}

/* The stock is known, or unknown (inventory not served, database or row missing): a price never
 * fails for want of it. */
static void got_stock(es_http_req_t *r, void *arg, json_t *rows, const es_err_t *err)
{
    struct price_get *g = arg;
    json_t *v = json_object_get(json_array_get(rows, 0), "available");
    if (json_is_integer(v))
        g->available = json_integer_value(v);
    else if (!rows)
        es_debug("stock of '%s' unknown: %s", es_http_param(r, "sku"), err->msg);
    json_decref(rows);
    price_get_done(r, g);
}

/* The sku of the path and the instant of ?at= (now without it) into *at, or NULL after a 4xx. */
static const char *price_params_or_reply(es_http_req_t *r, int64_t *at)
{
    const char *sku = es_http_param(r, "sku");
    char *at_s = es_http_query_dup(r, "at");
    struct api_verr e = {0};
    *at = es_wall_ms();
    if (api_validate_sku(sku, 404, &e)) {
        api_reply_verr(r, &e);
        sku = NULL;
    } else if (at_s && api_parse_instant(at_s, at)) {
        api_reply_problem(r, 400, NULL, "at",
                          "at: '%.64s' is neither milliseconds since the epoch nor an ISO-8601 "
                          "instant with an offset",
                          at_s);
        sku = NULL;
    }
    free(at_s);
    return sku;
}

static struct price_get *price_get_new(int64_t at, int pending)
{
    struct price_get *g = xcalloc(1, sizeof *g);
    g->refs = g->pending = pending;
    g->at = at;
    g->available = PR_STOCK_UNKNOWN;
    return g;
}

static void run_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    int64_t at;
    const char *sku = price_params_or_reply(r, &at);
    if (!sku)
        return;
    struct price_get *g = price_get_new(at, 2);
    es_db_val_t params[] = {ES_DB_S(sku)};
    /* held across both: the first may be done at once (a database in its back-off), and its end
     * must not find the request unanswered with nothing pending */
    es_http_hold_t *both = es_http_hold_new(r, NULL, NULL);
    api_query_async(r, CTX, price_sql, params, 1, got_price, g, price_get_release);
    api_query_async(r, "inventory", stock_sql, params, 1, got_stock, g, price_get_release);
    es_http_hold_end(both);
}

#define PRICE_COLUMNS "list_amount_minor, currency, version"
#define RULE_COLUMNS                                                                               \
    "rule_id, kind, currency, basis_points, amount_minor, threshold, cap_minor, valid_from, "      \
    "valid_until, removed"

/* The cache's snapshot (borrowed) of a price as price_sql's rows: the price's columns on each
 * live rule's row (its currency as rule_currency), or on one row without a rule; no row when
 * the sku has no price. */
static json_t *held_price_rows(const json_t *held)
{
    json_t *price = api_cache_rows(held, "prices", PRICE_COLUMNS);
    json_t *rules = api_cache_rows(held, "price_rules", RULE_COLUMNS);
    json_t *row = json_array_get(price, 0), *out = json_array(), *rule;
    size_t i;
    json_array_foreach(rules, i, rule)
    {
        if (!row || json_integer_value(json_object_get(rule, "removed")) != 0)
            continue;
        json_object_del(rule, "removed");
        json_object_set(rule, "rule_currency", json_object_get(rule, "currency"));
        json_object_update(rule, row);
        json_array_append(out, rule);
    }
    if (row && json_array_size(out) == 0) {
        json_t *only = json_deep_copy(row);
        json_object_set_new(only, "rule_id", json_null());
        json_array_append_new(out, only);
    }
    json_decref(price);
    json_decref(rules);
    return out;
}

/* GET /v1/prices/{sku} from the cache's rows (held, borrowed): the price at once, the stock from
 * the cache too when it holds the sku's, else its own non-blocking read. */
static void run_get_held(es_http_req_t *r, const json_t *held)
{
    int64_t at;
    const char *sku = price_params_or_reply(r, &at);
    if (!sku)
        return;
    struct price_get *g = price_get_new(at, 1);
    g->price = held_price_rows(held);
    json_t *stock = api_cache_peek(r, "inventory", sku);
    if (stock) {
        json_t *v =
            json_object_get(json_array_get(json_object_get(stock, "stock"), 0), "available");
        if (json_is_integer(v))
            g->available = json_integer_value(v);
        json_decref(stock);
        price_get_done(r, g);
        price_get_release(g);
        return;
    }
    es_db_val_t params[] = {ES_DB_S(sku)};
    api_query_async(r, "inventory", stock_sql, params, 1, got_stock, g, price_get_release);
}

static void run_history(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    const char *sku = api_path_sku_or_reply(r);
    if (!sku)
        return;
    es_db_val_t params[] = {ES_DB_S(sku)};
    json_t *rows = api_query_or_reply(
        r, CTX,
        "SELECT version, event_id, event_type, occurred_at, actor, amount_minor, currency, "
        "rule_id, details FROM price_history WHERE sku = ? ORDER BY version LIMIT 1000",
        params, 1);
    if (!rows)
        return;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *text = json_string_value(json_object_get(row, "details"));
        json_t *details = text ? json_loads(text, 0, NULL) : NULL;
        json_object_set_new(row, "details", details ? details : json_object());
    }
    es_http_reply_json(r, 200, json_pack("{s:s, s:o}", "sku", sku, "items", rows));
}

/* ---- a listing's offers (api_prices_offers) ---- */

/* Rows of "<head> IN (?, ...) <tail>" over skus on ctx's connection; NULL (logged) when ctx is not
 * served or the query failed. */
static json_t *query_skus(es_http_req_t *r, const char *ctx, const char *head, const char *tail,
                          const char *const *skus, size_t n)
{
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = api_db_ctx(r, ctx, &err);
    if (!db || n == 0)
        return NULL;
    char *sql = xmalloc(strlen(head) + strlen(tail) + 3 * n + 8), *o = sql;
    o += sprintf(o, "%s IN (", head);
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s?", i ? "," : "");
    sprintf(o, ") %s", tail);
    es_db_val_t *params = xcalloc(n, sizeof *params);
    for (size_t i = 0; i < n; i++)
        params[i] = ES_DB_S(skus[i]);
    json_t *rows = es_db_query(db, sql, params, n, &err);
    if (!rows) {
        if (err.code == ES_EIO)
            api_db_ctx_broken(r, ctx);
        es_debug("offers: %s: %s", ctx, err.msg);
    }
    free(params);
    free(sql);
    return rows;
}

/* The effective price now of one sku's prices row under its rules among all (the rows of every
 * sku, ordered by sku): a new {"amount_minor", "list_amount_minor", "currency"}, or null. */
static json_t *offer_price(const json_t *row, const json_t *all_rules, int64_t available,
                           int64_t now)
{
    const char *sku = json_string_value(json_object_get(row, "sku"));
    const char *currency = json_string_value(json_object_get(row, "currency"));
    json_t *list = json_object_get(row, "list_amount_minor");
    if (!sku || !json_is_integer(list))
        return json_null();
    pr_rule_t *pr = xcalloc(json_array_size(all_rules) + 1, sizeof *pr);
    size_t n = 0, i;
    json_t *rj;
    json_array_foreach(all_rules, i, rj)
    {
        const char *of = json_string_value(json_object_get(rj, "sku"));
        if (of && !strcmp(of, sku) && pr_rule_from_json(rj, &pr[n]) == 0)
            n++;
    }
    pr_result_t res;
    json_t *out = json_null();
    if (pr_effective_price(json_integer_value(list), currency, pr, n, available, now, &res) == 0)
        out =
            json_pack("{s:I, s:I, s:s}", "amount_minor", (json_int_t)res.amount_minor,
                      "list_amount_minor", (json_int_t)res.list_amount_minor, "currency", currency);
    free(pr);
    return out;
}

/* The row of rows (borrowed) whose "sku" is sku, or NULL. */
static json_t *row_of(const json_t *rows, const char *sku)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *s = json_string_value(json_object_get(row, "sku"));
        if (s && !strcmp(s, sku))
            return row;
    }
    return NULL;
}

json_t *api_prices_offers(es_http_req_t *r, const char *const *skus, size_t n)
{
    json_t *stock =
        query_skus(r, "inventory", "SELECT sku, available FROM stock WHERE sku", "", skus, n);
    json_t *prices = query_skus(
        r, CTX, "SELECT sku, list_amount_minor, currency FROM prices WHERE sku", "", skus, n);
    json_t *rules = prices ? query_skus(r, CTX,
                                        "SELECT sku, rule_id, kind, currency, basis_points, "
                                        "amount_minor, threshold, cap_minor, valid_from, "
                                        "valid_until FROM price_rules WHERE removed = 0 AND sku",
                                        "ORDER BY sku, rule_id", skus, n)
                           : NULL;
    json_t *out = json_object();
    int64_t now = es_wall_ms();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_object_get(row_of(stock, skus[i]), "available");
        int64_t available = json_is_integer(s) ? json_integer_value(s) : PR_STOCK_UNKNOWN;
        json_t *p = row_of(prices, skus[i]);
        /* a price whose rules could not be read is not shown: it may not be the current one */
        json_t *price = p && rules ? offer_price(p, rules, available, now) : json_null();
        json_object_set_new(out, skus[i],
                            json_pack("{s:o, s:o}", "price", price, "available",
                                      json_is_integer(s) ? json_integer(available) : json_null()));
    }
    json_decref(stock);
    json_decref(prices);
    json_decref(rules);
    return out;
}

void api_prices_get(es_http_req_t *r, const struct api_principal *who)
{
    json_t *held = api_cache_get(r, CTX);
    if (held) {
        run_get_held(r, held);
        json_decref(held);
        return;
    }
    api_query_at_position(r, who, CTX, PROJECTION, run_get);
}

void api_prices_history(es_http_req_t *r, const struct api_principal *who)
{
    api_query_at_position(r, who, CTX, PROJECTION, run_history);
}

/* Copies the allowed members of body into a new object; 422 for an unknown member or a wrong
 * type. kinds: 'i' integer, 's' string, 't' instant (ms integer or ISO-8601 string, stored as
 * ms). required: whether each must be present. */
struct field_spec {
    const char *name;
    char kind;
    bool required;
};

static json_t *pick_fields(const json_t *body, const struct field_spec *spec, size_t n,
                           struct api_verr *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (i < n && strcmp(spec[i].name, k))
            i++;
        if (i == n) {
            api_verr_set(e, 422, k, "%.64s: is not a field of this request", k);
            return NULL;
        }
    }
    json_t *out = json_object();
    for (size_t i = 0; i < n; i++) {
        v = json_object_get(body, spec[i].name);
        if (!v || json_is_null(v)) {
            if (spec[i].required) {
                api_verr_set(e, 422, spec[i].name, "%s: is required", spec[i].name);
                goto fail;
            }
            continue;
        }
        int64_t ms;
        if (spec[i].kind == 'i' && json_is_integer(v)) {
            json_object_set(out, spec[i].name, v);
        } else if (spec[i].kind == 's' && json_is_string(v)) {
            json_object_set(out, spec[i].name, v);
        } else if (spec[i].kind == 't' && json_is_integer(v)) {
            json_object_set(out, spec[i].name, v);
        } else if (spec[i].kind == 't' && json_is_string(v) &&
                   api_parse_instant(json_string_value(v), &ms) == 0) {
            json_object_set_new(out, spec[i].name, json_integer(ms));
        } else {
            api_verr_set(e, 422, spec[i].name, "%s: must be %s", spec[i].name,
                         spec[i].kind == 'i'   ? "an integer"
                         : spec[i].kind == 's' ? "a string"
                                               : "milliseconds or an ISO-8601 instant");
            goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* the path's sku and the fields of a command from the request body, or NULL after answering */
static json_t *sku_and_fields_or_reply(es_http_req_t *r, const struct field_spec *spec, size_t n,
                                       const char **sku)
{
    if (!(*sku = api_path_sku_or_reply(r)))
        return NULL;
    json_t *body = api_json_body_or_reply(r);
    if (!body)
        return NULL;
    struct api_verr e = {0};
    json_t *fields = pick_fields(body, spec, n, &e);
    json_decref(body);
    if (!fields)
        api_reply_verr(r, &e);
    return fields;
}

void api_prices_put(es_http_req_t *r, const struct api_principal *who)
{
    static const struct field_spec spec[] = {{"amount_minor", 'i', true}, {"currency", 's', true}};
    const char *sku;
    json_t *fields = sku_and_fields_or_reply(r, spec, sizeof spec / sizeof *spec, &sku);
    if (!fields)
        return;
    /* the decider's checks that need no state, here too: a request the contract refuses is
     * refused at once, not accepted and then rejected */
    json_int_t amount = json_integer_value(json_object_get(fields, "amount_minor"));
    if (amount < 0 || amount > PR_AMOUNT_MAX) {
        api_reply_problem(r, 422, NULL, "amount_minor", "amount_minor: must be 0 to %lld",
                          (long long)PR_AMOUNT_MAX);
        json_decref(fields);
        return;
    }
    if (!pr_currency_is_valid(json_string_value(json_object_get(fields, "currency")))) {
        api_reply_problem(r, 422, NULL, "currency", "currency: must be an ISO-4217 code");
        json_decref(fields);
        return;
    }
    json_object_set_new(fields, "sku", json_string(sku));
    api_command_send(r, who, CTX, NS "SetListPrice", sku, fields, NULL);
}

/* The decider's checks of a rule that need no state (pricing_rules.h): kind, the parameters its
 * kind takes (exactly those), ranges, rule id, currency code, a window that is not empty.
 * fields are pick_fields' (null members dropped, instants in ms). 0, or -1 with e (422). */
static int rule_check(const json_t *fields, struct api_verr *e)
{
    const char *kind_name = json_string_value(json_object_get(fields, "kind"));
    pr_rule_t rule = {.rule_id = json_string_value(json_object_get(fields, "rule_id")),
                      .currency = json_string_value(json_object_get(fields, "currency"))};
    if (pr_kind_parse(kind_name, &rule.kind))
        return api_verr_set(e, 422, "kind",
                            "kind: must be percent_off, amount_off, low_stock_surcharge or floor");
    if (api_validate_sku(rule.rule_id, 422, NULL))
        return api_verr_set(e, 422, "rule_id", "rule_id: must be 1-64 of [A-Za-z0-9._-]");
    int64_t v[PR_N_PARAMS];
    for (size_t i = 0; i < PR_N_PARAMS; i++) {
        json_t *p = json_object_get(fields, pr_rule_params[i]);
        if (p && !pr_kind_uses(rule.kind, pr_rule_params[i]))
            return api_verr_set(e, 422, pr_rule_params[i], "%s: not used by a %s rule",
                                pr_rule_params[i], kind_name);
        if (!p && pr_kind_uses(rule.kind, pr_rule_params[i]))
            return api_verr_set(e, 422, pr_rule_params[i], "%s: is required by a %s rule",
                                pr_rule_params[i], kind_name);
        v[i] = p ? json_integer_value(p) : 0;
    }
    rule.basis_points = v[0];
    rule.amount_minor = v[1];
    rule.threshold = v[2];
    rule.cap_minor = v[3];
    json_t *from = json_object_get(fields, "valid_from");
    json_t *until = json_object_get(fields, "valid_until");
    rule.has_from = from != NULL;
    rule.valid_from = json_integer_value(from);
    rule.has_until = until != NULL;
    rule.valid_until = json_integer_value(until);
    char why[200];
    if (pr_rule_check(&rule, why, sizeof why)) {
        char field[32];
        snprintf(field, sizeof field, "%.*s", (int)strcspn(why, ":"), why);
        return api_verr_set(e, 422, field, "%s", why);
    }
    return 0;
}

void api_prices_rules_post(es_http_req_t *r, const struct api_principal *who)
{
    static const struct field_spec spec[] = {
        {"rule_id", 's', true},       {"kind", 's', true},        {"basis_points", 'i', false},
        {"amount_minor", 'i', false}, {"threshold", 'i', false},  {"cap_minor", 'i', false},
        {"currency", 's', false},     {"valid_from", 't', false}, {"valid_until", 't', false},
    };
    const char *sku;
    json_t *fields = sku_and_fields_or_reply(r, spec, sizeof spec / sizeof *spec, &sku);
    if (!fields)
        return;
    struct api_verr e = {0};
    if (rule_check(fields, &e)) {
        api_reply_verr(r, &e);
        json_decref(fields);
        return;
    }
    json_object_set_new(fields, "sku", json_string(sku));
    char location[96];
    snprintf(location, sizeof location, "/v1/prices/%s", sku);
    api_command_send(r, who, CTX, NS "AddPriceRule", sku, fields, location);
}

void api_prices_rules_delete(es_http_req_t *r, const struct api_principal *who)
{
    const char *sku = api_path_sku_or_reply(r);
    if (!sku)
        return;
    const char *rule_id = es_http_param(r, "rule_id");
    struct api_verr e = {0};
    if (!rule_id || api_validate_sku(rule_id, 404, &e)) { /* same alphabet and length */
        api_reply_problem(r, 404, NULL, "rule_id", "no rule '%.64s'", rule_id ? rule_id : "");
        return;
    }
    api_command_send(r, who, CTX, NS "RemovePriceRule", sku,
                     json_pack("{s:s, s:s}", "sku", sku, "rule_id", rule_id), NULL);
}
