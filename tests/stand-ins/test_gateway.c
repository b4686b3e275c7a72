/* The test gateway (test_gateway.h): a local stand-in for a Stripe-compatible payment gateway,
 * for the stack and the tests (never for production). On EVENTSHOP_FAKE_ADDR, form-encoded
 * like Stripe's API, with "Authorization: Bearer <key>" (the key of
 * EVENTSHOP_PAYMENTS_SECRET_KEY_FILE when set, else any "sk_test_..."):
 *
 *   POST /v1/payment_intents            amount, currency, payment_method, confirm, capture_method,
 *                                       metadata[order_id]: confirm=true charges the card, unless
 *                                       it is a declining test card (payment_method containing
 *                                       "Declined" or "decline": 402 card_error card_declined)
 *   POST /v1/payment_intents/{id}/capture   captures an authorised (capture_method=manual) intent
 *   POST /v1/refunds                    payment_intent: refunds a succeeded intent in full, once
 *   GET  /healthz                       200
 *
 * Idempotency-Key as Stripe does it: the same key gets the first answer again (status and body,
 * header Idempotent-Replayed: true) and changes nothing; the same key with other parameters is a
 * 400 idempotency_error. Injected failures are not remembered under the key.
 *
 * For tests:
 *   POST /_control {"fail_next": n, "delay_ms": ms, "reset": true}   the next n /v1 requests get
 *        a 500 (before doing anything); every /v1 answer waits delay_ms AFTER its effect (so a
 *        client killed meanwhile has charged without hearing it); reset forgets every payment.
 *        Answers the settings.
 *   GET  /_charges[?order_id=X]  {"orders": {order_id: {"charges": n, "refunds": n,
 *        "amount_charged": m, "amount_refunded": m, "intents": [...], "refund_ids": [...]}},
 *        "requests": n, "injected_failures": n, "replays": n}
 *
 * State is in memory, on the handle every handler gets as es_http_app(); one loop thread, so the
 * handlers need no lock. */
#include "test_gateway.h"
#include "es_log.h"
#include "es_mem.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct test_gateway {
    char *secret_key; /* required bearer, NULL: any sk_test_ key */
    json_t *intents;  /* id -> payment intent */
    json_t *refunds;  /* id -> refund */
    json_t *by_key;   /* idempotency key -> {"path", "params", "status", "body"} */
    long long fail_next, delay_ms, n_requests, n_injected, n_replays, next_id;
};

test_gateway_t *test_gateway_new(const char *secret_key)
{
    test_gateway_t *g = xcalloc(1, sizeof *g);
    g->secret_key = secret_key ? xstrdup(secret_key) : NULL;
    g->intents = json_object();
    g->refunds = json_object();
    g->by_key = json_object();
    return g;
}

void test_gateway_free(test_gateway_t *g)
{
    if (!g)
        return;
    json_decref(g->intents);
    json_decref(g->refunds);
    json_decref(g->by_key);
    free(g->secret_key);
    free(g);
}

static long long now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec;
}

/* ---- form bodies */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static char *form_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* The request's form as a JSON object of strings (the last of a repeated key wins). */
static json_t *form_parse(const char *body, size_t len)
{
    json_t *f = json_object();
    size_t i = 0;
    while (body && i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && body[eq] != '=')
            eq++;
        if (eq > i) {
            char *k = form_decode(body + i, eq - i);
            char *v = eq < end ? form_decode(body + eq + 1, end - eq - 1) : xstrdup("");
            json_object_set_new(f, k, json_string(v));
            free(k);
            free(v);
        }
        i = end + 1;
    }
    return f;
}

static const char *fstr(const json_t *f, const char *key)
{
    return json_string_value(json_object_get(f, key));
}

/* ---- answers */

static json_t *error_body(const char *type, const char *code, const char *message)
{
    json_t *e = json_pack("{s:s, s:s}", "type", type, "message", message);
    if (code)
        json_object_set_new(e, "code", json_string(code));
    return json_pack("{s:o}", "error", e);
}

struct later {
    int status;
    char *body;
    int replayed;
};

static void later_free(void *arg)
{
    struct later *l = arg;
    free(l->body);
    free(l);
}

static void reply_now(es_http_req_t *r, int status, const char *body, int replayed)
{
    if (replayed)
        es_http_add_header(r, "Idempotent-Replayed", "true");
    es_http_reply(r, status, "application/json", body, strlen(body));
}

static void reply_later(es_http_req_t *r, void *arg)
{
    struct later *l = arg;
    reply_now(r, l->status, l->body, l->replayed);
    later_free(l);
}

/* Answers status with body (stolen), after the configured delay. */
static void answer(es_http_req_t *r, int status, json_t *body, int replayed)
{
    test_gateway_t *g = es_http_app(r);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (g->delay_ms <= 0) {
        reply_now(r, status, text, replayed);
        free(text);
        return;
    }
    struct later *l = xmalloc(sizeof *l);
    *l = (struct later){status, text, replayed};
    es_http_after(r, (unsigned)g->delay_ms, reply_later, l, later_free);
}

/* ---- the API */

static char *new_id(test_gateway_t *g, const char *prefix)
{
    return xasprintf("%s_test%06lld", prefix, ++g->next_id);
}

/* A payment intent: the effect of one create request. Returns the status and sets *body. */
static int create_intent(test_gateway_t *g, const json_t *f, json_t **body)
{
    const char *amount = fstr(f, "amount"), *currency = fstr(f, "currency");
    char *end = NULL;
    long long a = amount ? strtoll(amount, &end, 10) : 0;
    if (!amount || !*amount || *end || a < 1)
        return *body = error_body("invalid_request_error", "parameter_missing",
                                  "amount: a positive integer is required"),
               400;
    if (!currency || strlen(currency) != 3)
        return *body = error_body("invalid_request_error", "parameter_missing",
                                  "currency: a three-letter code is required"),
               400;
    const char *pm = fstr(f, "payment_method") ?: "";
    const char *confirm = fstr(f, "confirm");
    const char *capture = fstr(f, "capture_method");
    bool manual = capture && !strcmp(capture, "manual");
    char *id = new_id(g, "pi");
    json_t *pi =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:n, s:{s:s?, s:s?}, s:I}", "id", id, "object",
                  "payment_intent", "amount", (json_int_t)a, "currency", currency, "payment_method",
                  pm, "amount_refunded", (json_int_t)0, "latest_charge", "metadata", "order_id",
                  fstr(f, "metadata[order_id]"), "customer_id", fstr(f, "metadata[customer_id]"),
                  "created", (json_int_t)now_s());
    int status = 200;
    if (!confirm || strcmp(confirm, "true")) {
        json_object_set_new(pi, "status", json_string("requires_confirmation"));
        *body = json_incref(pi);
    } else if (strstr(pm, "Declined") || strstr(pm, "decline")) {
        json_object_set_new(pi, "status", json_string("requires_payment_method"));
        json_object_set_new(pi, "last_payment_error",
                            json_pack("{s:s, s:s, s:s, s:s}", "type", "card_error", "code",
                                      "card_declined", "decline_code", "generic_decline", "message",
                                      "Your card was declined."));
        json_t *err = error_body("card_error", "card_declined", "Your card was declined.");
        json_t *e = json_object_get(err, "error");
        json_object_set_new(e, "decline_code", json_string("generic_decline"));
        json_object_set(e, "payment_intent", pi);
        *body = err;
        status = 402;
    } else {
        json_object_set_new(pi, "status", json_string(manual ? "requires_capture" : "succeeded"));
        char *ch = new_id(g, "ch");
        json_object_set_new(pi, "latest_charge", json_string(ch));
        free(ch);
        *body = json_incref(pi);
    }
    json_object_set_new(g->intents, id, pi);
    free(id);
    return status;
}

static int capture_intent(test_gateway_t *g, const char *id, json_t **body)
{
    json_t *pi = json_object_get(g->intents, id);
    if (!pi)
        return *body = error_body("invalid_request_error", "resource_missing",
                                  "no such payment_intent"),
               404;
    if (strcmp(fstr(pi, "status") ?: "", "requires_capture"))
        return *body = error_body("invalid_request_error", "payment_intent_unexpected_state",
                                  "this payment intent cannot be captured"),
               400;
    json_object_set_new(pi, "status", json_string("succeeded"));
    char *ch = new_id(g, "ch");
    json_object_set_new(pi, "latest_charge", json_string(ch));
    free(ch);
    *body = json_incref(pi);
    return 200;
}

static int create_refund(test_gateway_t *g, const json_t *f, json_t **body)
{
    const char *pid = fstr(f, "payment_intent");
    json_t *pi = pid ? json_object_get(g->intents, pid) : NULL;
    if (!pi)
        return *body = error_body("invalid_request_error", "resource_missing",
                                  "no such payment_intent"),
               404;
    if (strcmp(fstr(pi, "status") ?: "", "succeeded"))
        return *body = error_body("invalid_request_error", "payment_intent_unexpected_state",
                                  "this payment intent was not charged"),
               400;
    json_int_t amount = json_integer_value(json_object_get(pi, "amount"));
    if (json_integer_value(json_object_get(pi, "amount_refunded")) >= amount)
        return *body = error_body("invalid_request_error", "charge_already_refunded",
                                  "this payment was already refunded"),
               400;
    json_object_set_new(pi, "amount_refunded", json_integer(amount));
    char *id = new_id(g, "re");
    json_t *re = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:O, s:I}", "id", id, "object", "refund",
                           "amount", amount, "currency", fstr(pi, "currency"), "payment_intent",
                           pid, "status", "succeeded", "metadata", json_object_get(pi, "metadata"),
                           "created", (json_int_t)now_s());
    json_object_set_new(g->refunds, id, json_incref(re));
    free(id);
    *body = re;
    return 200;
}

static bool authorised(es_http_req_t *r)
{
    test_gateway_t *g = es_http_app(r);
    char *auth = es_http_header_dup(r, "Authorization");
    bool ok = false;
    if (auth && !strncmp(auth, "Bearer ", 7))
        ok = g->secret_key ? !strcmp(auth + 7, g->secret_key) : !strncmp(auth + 7, "sk_test_", 8);
    free(auth);
    return ok;
}

/* Every /v1 POST: auth, injected failures, idempotency, then the effect. */
static void v1(es_http_req_t *r)
{
    test_gateway_t *g = es_http_app(r);
    g->n_requests++;
    if (!authorised(r)) {
        answer(r, 401,
               error_body("invalid_request_error", "api_key_invalid", "invalid API key provided"),
               0);
        return;
    }
    if (g->fail_next > 0) {
        g->fail_next--;
        g->n_injected++;
        es_http_reply_json(r, 500, error_body("api_error", NULL, "injected failure"));
        return;
    }
    size_t len = 0;
    const char *raw = es_http_body(r, &len);
    json_t *f = form_parse(raw, len);
    char *params = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
    const char *path = es_http_path(r);
    char *key = es_http_header_dup(r, "Idempotency-Key");
    json_t *seen = key ? json_object_get(g->by_key, key) : NULL;
    if (seen) {
        if (strcmp(fstr(seen, "path"), path) || strcmp(fstr(seen, "params"), params)) {
            answer(r, 400,
                   error_body("idempotency_error", NULL,
                              "keys for idempotent requests can only be used with the same "
                              "parameters they were first used with"),
                   0);
        } else {
            g->n_replays++;
            answer(r, (int)json_integer_value(json_object_get(seen, "status")),
                   json_deep_copy(json_object_get(seen, "body")), 1);
        }
        goto out;
    }
    json_t *body = NULL;
    int status;
    const char *id = es_http_param(r, "id");
    if (id)
        status = capture_intent(g, id, &body);
    else if (!strcmp(path, "/v1/refunds"))
        status = create_refund(g, f, &body);
    else
        status = create_intent(g, f, &body);
    if (key)
        json_object_set_new(g->by_key, key,
                            json_pack("{s:s, s:s, s:i, s:O}", "path", path, "params", params,
                                      "status", status, "body", body));
    es_info("%s -> %d (key '%s')", path, status, key ? key : "");
    answer(r, status, body, 0);
out:
    free(key);
    free(params);
    json_decref(f);
}

static void control(es_http_req_t *r)
{
    test_gateway_t *g = es_http_app(r);
    size_t len = 0;
    const char *raw = es_http_body(r, &len);
    json_t *c = raw && len ? json_loadb(raw, len, JSON_REJECT_DUPLICATES, NULL) : json_object();
    if (!json_is_object(c)) {
        json_decref(c);
        es_http_reply_problem(r, 400, NULL, "Bad Request", "the body must be a JSON object");
        return;
    }
    json_t *v;
    if ((v = json_object_get(c, "fail_next")) && json_is_integer(v))
        g->fail_next = json_integer_value(v);
    if ((v = json_object_get(c, "delay_ms")) && json_is_integer(v))
        g->delay_ms = json_integer_value(v);
    if (json_is_true(json_object_get(c, "reset"))) {
        json_object_clear(g->intents);
        json_object_clear(g->refunds);
        json_object_clear(g->by_key);
        g->n_requests = g->n_injected = g->n_replays = 0;
    }
    json_decref(c);
    es_info("control: fail_next %lld, delay_ms %lld", g->fail_next, g->delay_ms);
    es_http_reply_json(r, 200,
                       json_pack("{s:I, s:I}", "fail_next", (json_int_t)g->fail_next, "delay_ms",
                                 (json_int_t)g->delay_ms));
}

static json_t *order_entry(json_t *orders, const json_t *obj)
{
    const char *order = fstr(json_object_get(obj, "metadata"), "order_id") ?: "";
    json_t *o = json_object_get(orders, order);
    if (!o) {
        o = json_pack("{s:i, s:i, s:I, s:I, s:[], s:[]}", "charges", 0, "refunds", 0,
                      "amount_charged", (json_int_t)0, "amount_refunded", (json_int_t)0, "intents",
                      "refund_ids");
        json_object_set_new(orders, order, o);
    }
    return o;
}

static void add_int(json_t *o, const char *key, json_int_t d)
{
    json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + d));
}

static bool wanted(const json_t *obj, const char *only)
{
    return !only || !strcmp(fstr(json_object_get(obj, "metadata"), "order_id") ?: "", only);
}

static void charges(es_http_req_t *r)
{
    test_gateway_t *g = es_http_app(r);
    char *only = es_http_query_dup(r, "order_id");
    json_t *orders = json_object();
    const char *id;
    json_t *pi, *re;
    json_object_foreach(g->intents, id, pi)
    {
        if (!wanted(pi, only))
            continue;
        json_t *o = order_entry(orders, pi);
        json_array_append_new(
            json_object_get(o, "intents"),
            json_pack("{s:s, s:O}", "id", id, "status", json_object_get(pi, "status")));
        if (!strcmp(fstr(pi, "status") ?: "", "succeeded")) {
            add_int(o, "charges", 1);
            add_int(o, "amount_charged", json_integer_value(json_object_get(pi, "amount")));
        }
    }
    json_object_foreach(g->refunds, id, re)
    {
        if (!wanted(re, only))
            continue;
        json_t *o = order_entry(orders, re);
        json_array_append_new(json_object_get(o, "refund_ids"), json_string(id));
        add_int(o, "refunds", 1);
        add_int(o, "amount_refunded", json_integer_value(json_object_get(re, "amount")));
    }
    free(only);
    es_http_reply_json(r, 200,
                       json_pack("{s:o, s:I, s:I, s:I}", "orders", orders, "requests",
                                 (json_int_t)g->n_requests, "injected_failures",
                                 (json_int_t)g->n_injected, "replays", (json_int_t)g->n_replays));
}

static void healthz(es_http_req_t *r)
{
    es_http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

const es_http_route_t test_gateway_routes[] = {
    {"POST", "/v1/payment_intents", v1, NULL},
    {"POST", "/v1/payment_intents/{id}/capture", v1, NULL},
    {"POST", "/v1/refunds", v1, NULL},
    {"POST", "/_control", control, NULL},
    {"GET", "/_charges", charges, NULL},
    {"GET", "/healthz", healthz, NULL},
};

const size_t test_gateway_routes_count = sizeof test_gateway_routes / sizeof *test_gateway_routes;
