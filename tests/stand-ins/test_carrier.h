/* test_carrier — the state and routes of eventshop-test-carrier, the local stand-in for a parcel
 * carrier (carrier.h speaks to it) and an SMS provider's webhook (test_carrier.c). For the stack
 * and the tests only. */
#ifndef TEST_CARRIER_H
#define TEST_CARRIER_H

#include "es_http.h"
#include <stddef.h>

typedef struct test_carrier test_carrier_t;

/* The shipments booked and the SMS captured, in memory; a shipment is delivered delivery_ms
 * after its booking. */
test_carrier_t *test_carrier_new(long long delivery_ms);
/* NULL is a no-op. */
void test_carrier_free(test_carrier_t *c);

/* The routes; each handler finds its test_carrier_t as es_http_app(): serve them with the
 * carrier as the app, on one loop thread (its handlers take no lock). */
extern const es_http_route_t test_carrier_routes[];
extern const size_t test_carrier_routes_count;

#endif
