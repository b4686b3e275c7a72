/* The test carrier (test_carrier.h): a local stand-in for a parcel carrier and an SMS provider,
 * for the stack and the tests (never for production). On EVENTSHOP_FAKE_ADDR:
 *
 *   POST /shipments        books a shipment (carrier.h); the same Idempotency-Key (or order_id)
 *                          gets the same tracking number
 *   GET  /shipments/{t}    {"tracking_number", "status": "in_transit" | "delivered",
 *                          "delivered_at"}: delivered the handle's delivery_ms after booking
 *   GET  /_shipments       every booking, for tests
 *   POST /sms              captures an SMS webhook call (JSON body kept as is)
 *   GET  /_sms             every captured SMS, oldest first
 *   GET  /healthz          200
 *
 * State is in memory, on the handle every handler gets as es_http_app(); one loop thread, so the
 * handlers need no lock. */
#include "test_carrier.h"
#include "carrier.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct test_carrier {
    json_t *by_key;       /* idempotency key -> tracking number */
    json_t *by_tracking;  /* tracking number -> {order_id, booked_at} */
    json_t *sms_messages; /* captured webhook bodies */
    long long delivery_ms;
};

test_carrier_t *test_carrier_new(long long delivery_ms)
{
    test_carrier_t *c = xcalloc(1, sizeof *c);
    c->by_key = json_object();
    c->by_tracking = json_object();
    c->sms_messages = json_array();
    c->delivery_ms = delivery_ms;
    return c;
}

void test_carrier_free(test_carrier_t *c)
{
    if (!c)
        return;
    json_decref(c->by_key);
    json_decref(c->by_tracking);
    json_decref(c->sms_messages);
    free(c);
}

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static json_t *body_json(es_http_req_t *r)
{
    size_t len = 0;
    const char *body = es_http_body(r, &len);
    return body && len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

static json_t *shipment_view(const test_carrier_t *c, const char *tracking, const json_t *s)
{
    long long booked = json_integer_value(json_object_get(s, "booked_at"));
    bool delivered = now_ms() >= booked + c->delivery_ms;
    json_t *v =
        json_pack("{s:s, s:O, s:s}", "tracking_number", tracking, "order_id",
                  json_object_get(s, "order_id"), "status", delivered ? "delivered" : "in_transit");
    if (delivered)
        json_object_set_new(v, "delivered_at", json_integer(booked + c->delivery_ms));
    return v;
}

static void book(es_http_req_t *r)
{
    test_carrier_t *c = es_http_app(r);
    json_t *req = body_json(r);
    const char *order = json_string_value(json_object_get(req, "order_id"));
    char *key = es_http_header_dup(r, "Idempotency-Key");
    if (!order || !*order) {
        es_http_reply_problem(r, 400, NULL, "bad request", "order_id is required");
        goto out;
    }
    const char *k = key ? key : order;
    const char *tracking = json_string_value(json_object_get(c->by_key, k));
    if (!tracking) {
        char id[ES_UUID_LEN], t[CARRIER_TRACKING_MAX + 1];
        es_uuid_derive("eventshop-test-carrier", k, id);
        snprintf(t, sizeof t, "TC%.8s%.4s%.4s", id, id + 9, id + 14);
        json_object_set_new(c->by_key, k, json_string(t));
        json_object_set_new(c->by_tracking, t,
                            json_pack("{s:s, s:I}", "order_id", order, "booked_at", now_ms()));
        tracking = json_string_value(json_object_get(c->by_key, k));
        es_info("booked shipment '%s' for order '%s'", tracking, order);
    }
    es_http_reply_json(
        r, 201, json_pack("{s:s, s:s}", "tracking_number", tracking, "status", "in_transit"));
out:
    free(key);
    json_decref(req);
}

static void track(es_http_req_t *r)
{
    test_carrier_t *c = es_http_app(r);
    const char *t = es_http_param(r, "tracking");
    json_t *s = json_object_get(c->by_tracking, t);
    if (!s) {
        es_http_reply_problem(r, 404, NULL, "not found", "no shipment '%.64s'", t);
        return;
    }
    es_http_reply_json(r, 200, shipment_view(c, t, s));
}

static void list_shipments(es_http_req_t *r)
{
    test_carrier_t *c = es_http_app(r);
    json_t *all = json_array();
    const char *t;
    json_t *s;
    json_object_foreach(c->by_tracking, t, s) json_array_append_new(all, shipment_view(c, t, s));
    es_http_reply_json(r, 200, all);
}

static void sms_post(es_http_req_t *r)
{
    test_carrier_t *c = es_http_app(r);
    json_t *req = body_json(r);
    if (!json_is_object(req)) {
        json_decref(req);
        es_http_reply_problem(r, 400, NULL, "bad request", "a JSON object is required");
        return;
    }
    char *key = es_http_header_dup(r, "Idempotency-Key");
    if (key)
        json_object_set_new(req, "idempotency_key", json_string(key));
    free(key);
    json_array_append_new(c->sms_messages, req);
    es_http_reply_json(r, 202, json_pack("{s:s}", "status", "queued"));
}

static void sms_list(es_http_req_t *r)
{
    test_carrier_t *c = es_http_app(r);
    es_http_reply_json(r, 200, json_incref(c->sms_messages));
}

static void healthz(es_http_req_t *r)
{
    es_http_reply(r, 200, "text/plain", "ok\n", 3);
}

const es_http_route_t test_carrier_routes[] = {
    {"POST", "/shipments", book, NULL},
    {"GET", "/shipments/{tracking}", track, NULL},
    {"GET", "/_shipments", list_shipments, NULL},
    {"POST", "/sms", sms_post, NULL},
    {"GET", "/_sms", sms_list, NULL},
    {"GET", "/healthz", healthz, NULL},
};

const size_t test_carrier_routes_count = sizeof test_carrier_routes / sizeof *test_carrier_routes;
