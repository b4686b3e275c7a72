/* carrier — the shipping subscriber's view of a parcel carrier: book a shipment for an order and
 * ask where a tracked parcel is. One implementation speaks HTTP/JSON with libcurl (the local
 * eventshop-test-carrier speaks the same):
 *
 *   POST {base}/shipments    Idempotency-Key: <carrier_idempotency_key(order id)>
 *        {"order_id", "reference", "parcels": [{"sku", "quantity"}]}
 *        -> 200/201 {"tracking_number": "...", "status": "..."}   (a retry gets the same number)
 *   GET  {base}/shipments/{tracking}
 *        -> 200 {"tracking_number", "status": "in_transit" | "delivered", "delivered_at": ms}
 *
 * A 5xx, a timeout or a broken connection is ES_EIO (retry later); a 4xx is ES_EINVAL (the
 * request will never succeed); an answer without the expected members is ES_EIO. Not
 * thread-safe: one carrier per thread. */
#ifndef CARRIER_H
#define CARRIER_H

#include "es_err.h"
#include "es_uuid.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CARRIER_TRACKING_MAX 64
#define CARRIER_NAME         "eventshop-test-carrier"

typedef struct carrier carrier_t;

/* An HTTP carrier at base_url (borrowed, copied), e.g. "http://127.0.0.1:8091"; timeout_ms per
 * request (<= 0: 5000). NULL with err ES_EINVAL for an empty URL. */
carrier_t *carrier_http_new(const char *base_url, long timeout_ms, es_err_t *err);
void carrier_free(carrier_t *c); /* NULL is a no-op */

/* The Idempotency-Key of order_id's booking (a name-based uuid): the same order always books
 * the same shipment, so a retry after a crash never ships twice. */
void carrier_idempotency_key(const char *order_id, char out[ES_UUID_LEN]);

/* Books the shipment of order_id (borrowed) with parcels (borrowed JSON array of {sku,
 * quantity}); the tracking number goes to tracking (CARRIER_TRACKING_MAX + 1 bytes). 0, or -1
 * with err. */
int carrier_book(carrier_t *c, const char *order_id, const json_t *parcels,
                 char tracking[CARRIER_TRACKING_MAX + 1], es_err_t *err);
/* Asks for tracking's status: *delivered is set, and *delivered_at (ms; the call time's
 * caller-supplied fallback now_ms when the carrier gives none). 0, or -1 with err. */
int carrier_track(carrier_t *c, const char *tracking, long long now_ms, bool *delivered,
                  long long *delivered_at, es_err_t *err);

/* The parsers behind carrier_book and carrier_track, for tests: body (len bytes, borrowed) is
 * the carrier's JSON answer. 0, or -1 with err ES_EIO naming what is missing. */
int carrier_parse_booking(const char *body, size_t len, char tracking[CARRIER_TRACKING_MAX + 1],
                          es_err_t *err);
int carrier_parse_tracking(const char *body, size_t len, long long now_ms, bool *delivered,
                           long long *delivered_at, es_err_t *err);

#endif
