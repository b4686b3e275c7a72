/* The pricing context over HTTP. PUT /v1/prices/{sku}, POST /v1/prices/{sku}/rules and DELETE
 * /v1/prices/{sku}/rules/{rule_id} become SetListPrice, AddPriceRule and RemovePriceRule on
 * pricing.commands. GET /v1/prices/{sku}[?at=] computes the effective price with the pure
 * pricing_rules.h function from the pricing read model (tables prices and price_rules of
 * eventshop_pricing, projection "pricing_prices") and the available stock of the inventory read
 * model (table stock of eventshop_inventory; when the API does not serve inventory or the row or
 * database is missing, the stock is unknown and no low-stock surcharge applies). GET
 * /v1/prices/{sku}/history lists the price's events. */
#include "api_app.h"
#include "api_cache.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_log.h"
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

/* Available stock of sku from the inventory read model, or PR_STOCK_UNKNOWN when it cannot be
 * known (inventory not served, database or row missing): a price never fails for want of it. */
static int64_t available_stock(es_http_req_t *r, const char *sku)
{
    json_t *held = api_cache_peek(r, "inventory", sku);
    if (held) {
        json_t *v = json_object_get(json_array_get(json_object_get(held, "stock"), 0), "available");
        int64_t available = json_is_integer(v) ? json_integer_value(v) : PR_STOCK_UNKNOWN;
        json_decref(held);
        return available;
    }
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = api_db_ctx(r, "inventory", &err); /* ES_ENOTFOUND when not served */
    if (!db)
        return PR_STOCK_UNKNOWN;
    es_db_val_t params[] = {ES_DB_S(sku)};
    json_t *rows = es_db_query(db, "SELECT available FROM stock WHERE sku = ?", params, 1, &err);
    if (!rows) {
        if (err.code == ES_EIO)
            api_db_ctx_broken(r, "inventory");
        es_debug("stock of '%s' unknown: %s", sku, err.msg);
        return PR_STOCK_UNKNOWN;
    }
    json_t *v = json_object_get(json_array_get(rows, 0), "available");
    int64_t available = json_is_integer(v) ? json_integer_value(v) : PR_STOCK_UNKNOWN;
    json_decref(rows);
    return available;
}

#define PRICE_COLUMNS "list_amount_minor, currency, version"
#define RULE_COLUMNS                                                                               \
    "rule_id, kind, currency, basis_points, amount_minor, threshold, cap_minor, valid_from, "      \
    "valid_until"

/* The live rules of the cache's snapshot (borrowed) as the MySQL query gives them. */
static json_t *held_rules(const json_t *held)
{
    json_t *all = api_cache_rows(held, "price_rules", RULE_COLUMNS ", removed");
    json_t *live = json_array();
    size_t i;
    json_t *rule;
    json_array_foreach(all, i, rule)
    {
        if (json_integer_value(json_object_get(rule, "removed")) != 0)
            continue;
        json_object_del(rule, "removed");
        json_array_append(live, rule);
    }
    json_decref(all);
    return live;
}

/* The price of the path's sku, from held (the cache's rows, borrowed) or else from MySQL. */
static void answer_get(es_http_req_t *r, const json_t *held)
{
    const char *sku = es_http_param(r, "sku");
    char *at_s = es_http_query_dup(r, "at");
    json_t *price = NULL, *rules = NULL;
    pr_rule_t *pr = NULL;
    struct api_verr e = {0};
    if (api_validate_sku(sku, 404, &e)) {
        api_reply_verr(r, &e);
        goto out;
    }
    int64_t at = es_wall_ms();
    if (at_s && api_parse_instant(at_s, &at)) {
        api_reply_problem(r, 400, NULL, "at",
                          "at: '%.64s' is neither milliseconds since the epoch nor an ISO-8601 "
                          "instant with an offset",
                          at_s);
        goto out;
    }
    es_db_val_t params[] = {ES_DB_S(sku)};
    if (held) {
        price = api_cache_rows(held, "prices", PRICE_COLUMNS);
        rules = held_rules(held);
    } else if (!(price = api_query_or_reply(
                     r, CTX, "SELECT " PRICE_COLUMNS " FROM prices WHERE sku = ?", params, 1))) {
        goto out;
    }
    json_t *row = json_array_get(price, 0);
    json_t *list = json_object_get(row, "list_amount_minor");
    if (!row || !json_is_integer(list)) {
        api_reply_problem(r, 404, "urn:eventshop:problem:no_list_price", "sku",
                          "sku '%s' has no list price", sku);
        goto out;
    }
    if (!rules && !(rules = api_query_or_reply(r, CTX,
                                               "SELECT " RULE_COLUMNS " FROM price_rules "
                                               "WHERE sku = ? AND removed = 0 ORDER BY rule_id",
                                               params, 1)))
        goto out;
    size_t n = 0, i;
    json_t *rj;
    pr = calloc(json_array_size(rules) + 1, sizeof *pr);
    json_array_foreach(rules, i, rj)
    {
        if (pr_rule_from_json(rj, &pr[n]) == 0)
            n++;
    }
    int64_t available = available_stock(r, sku);
    const char *currency = json_string_value(json_object_get(row, "currency"));
    pr_result_t res;
    if (pr_effective_price(json_integer_value(list), currency, pr, n, available, at, &res)) {
        api_reply_problem(r, 500, NULL, NULL, "sku '%s' has a malformed list price", sku);
        goto out;
    }
    json_t *applied = json_array();
    for (size_t k = 0; k < res.n_applied; k++)
        json_array_append_new(applied,
                              json_pack("{s:s, s:s, s:I}", "rule_id", res.applied[k].rule_id,
                                        "kind", pr_kind_name(res.applied[k].kind), "amount_minor",
                                        (json_int_t)res.applied[k].delta_minor));
    json_t *body = json_pack("{s:s, s:I, s:s, s:I, s:I, s:o, s:o, s:O}", "sku", sku, "amount_minor",
                             (json_int_t)res.amount_minor, "currency", currency,
                             "list_amount_minor", (json_int_t)res.list_amount_minor, "at",
                             (json_int_t)at, "applied_rules", applied, "available",
                             available == PR_STOCK_UNKNOWN ? json_null() : json_integer(available),
                             "version", json_object_get(row, "version"));
    char etag[32];
    snprintf(etag, sizeof etag, "\"%lld\"",
             (long long)json_integer_value(json_object_get(row, "version")));
    es_http_add_header(r, "ETag", etag);
    es_http_reply_json(r, 200, body);
out:
    free(pr);
    json_decref(price);
    json_decref(rules);
    free(at_s);
}

static void run_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    answer_get(r, NULL);
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

void api_prices_get(es_http_req_t *r, const struct api_principal *who)
{
    json_t *held = api_cache_get(r, CTX);
    if (held) {
        answer_get(r, held);
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
