/* eventshop-test-carrier: a local stand-in for a parcel carrier and an SMS provider, for the
 * stack and the tests (never for production). On EVENTSHOP_FAKE_ADDR (127.0.0.1:8091):
 *
 *   POST /shipments        books a shipment (carrier.h); the same Idempotency-Key (or order_id)
 *                          gets the same tracking number
 *   GET  /shipments/{t}    {"tracking_number", "status": "in_transit" | "delivered",
 *                          "delivered_at"}: delivered EVENTSHOP_TEST_CARRIER_DELIVERY_MS (2000)
 *                          after booking
 *   GET  /_shipments       every booking, for tests
 *   POST /sms              captures an SMS webhook call (JSON body kept as is)
 *   GET  /_sms             every captured SMS, oldest first
 *   GET  /healthz          200
 *
 * State is in memory; one loop thread, so the handlers need no lock. */
#include "carrier.h"
#include "es_env.h"
#include "es_http.h"
#include "es_log.h"
#include "es_mem.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static es_http_server_t *server;
static json_t *by_key;       /* idempotency key -> tracking number */
static json_t *by_tracking;  /* tracking number -> {order_id, booked_at} */
static json_t *sms_messages; /* captured webhook bodies */
static long long delivery_ms;

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

static json_t *shipment_view(const char *tracking, const json_t *s)
{
    long long booked = json_integer_value(json_object_get(s, "booked_at"));
    bool delivered = now_ms() >= booked + delivery_ms;
    json_t *v =
        json_pack("{s:s, s:O, s:s}", "tracking_number", tracking, "order_id",
                  json_object_get(s, "order_id"), "status", delivered ? "delivered" : "in_transit");
    if (delivered)
        json_object_set_new(v, "delivered_at", json_integer(booked + delivery_ms));
    return v;
}

static void book(es_http_req_t *r)
{
    json_t *req = body_json(r);
    const char *order = json_string_value(json_object_get(req, "order_id"));
    char *key = es_http_header_dup(r, "Idempotency-Key");
    if (!order || !*order) {
        es_http_reply_problem(r, 400, NULL, "bad request", "order_id is required");
        goto out;
    }
    const char *k = key ? key : order;
    const char *tracking = json_string_value(json_object_get(by_key, k));
    if (!tracking) {
        char id[ES_UUID_LEN], t[CARRIER_TRACKING_MAX + 1];
        es_uuid_derive("eventshop-test-carrier", k, id);
        snprintf(t, sizeof t, "TC%.8s%.4s%.4s", id, id + 9, id + 14);
        json_object_set_new(by_key, k, json_string(t));
        json_object_set_new(by_tracking, t,
                            json_pack("{s:s, s:I}", "order_id", order, "booked_at", now_ms()));
        tracking = json_string_value(json_object_get(by_key, k));
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
    const char *t = es_http_param(r, "tracking");
    json_t *s = json_object_get(by_tracking, t);
    if (!s) {
        es_http_reply_problem(r, 404, NULL, "not found", "no shipment '%.64s'", t);
        return;
    }
    es_http_reply_json(r, 200, shipment_view(t, s));
}

static void list_shipments(es_http_req_t *r)
{
    json_t *all = json_array();
    const char *t;
    json_t *s;
    json_object_foreach(by_tracking, t, s) json_array_append_new(all, shipment_view(t, s));
    es_http_reply_json(r, 200, all);
}

static void sms_post(es_http_req_t *r)
{
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
    json_array_append_new(sms_messages, req);
    es_http_reply_json(r, 202, json_pack("{s:s}", "status", "queued"));
}

static void sms_list(es_http_req_t *r)
{
    es_http_reply_json(r, 200, json_incref(sms_messages));
}

static void healthz(es_http_req_t *r)
{
    es_http_reply(r, 200, "text/plain", "ok\n", 3);
}

static const es_http_route_t routes[] = {
    {"POST", "/shipments", book, NULL},
    {"GET", "/shipments/{tracking}", track, NULL},
    {"GET", "/_shipments", list_shipments, NULL},
    {"POST", "/sms", sms_post, NULL},
    {"GET", "/_sms", sms_list, NULL},
    {"GET", "/healthz", healthz, NULL},
};

static void on_signal(int sig)
{
    (void)sig;
    es_http_server_stop(server);
}

int main(void)
{
    es_log_init("eventshop-test-carrier");
    signal(SIGPIPE, SIG_IGN);
    es_err_t err = ES_ERR_INIT;
    const char *addr = es_env_str("EVENTSHOP_FAKE_ADDR", "127.0.0.1:8091");
    const char *colon = strrchr(addr, ':');
    delivery_ms = es_env_long("EVENTSHOP_TEST_CARRIER_DELIVERY_MS", 2000);
    if (!colon || atoi(colon + 1) <= 0) {
        es_error("cannot start: EVENTSHOP_FAKE_ADDR '%s' is not host:port", addr);
        return 1;
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    by_key = json_object();
    by_tracking = json_object();
    sms_messages = json_array();
    es_http_config_t cfg = {
        .host = host, .port = atoi(colon + 1), .threads = 1, .max_body = 64 * 1024};
    server = es_http_server_new(&cfg, routes, sizeof routes / sizeof *routes, &err);
    if (!server) {
        es_error("cannot start: %s", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    es_info("test carrier on %s, delivery after %lld ms", addr, delivery_ms);
    int rc = es_http_server_run(server);
    es_http_server_free(server);
    json_decref(by_key);
    json_decref(by_tracking);
    json_decref(sms_messages);
    return rc;
}
