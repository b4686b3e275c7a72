/* test_gateway — the state and routes of eventshop-test-gateway, the local stand-in for a
 * Stripe-compatible payment gateway (its API and its test controls: test_gateway.c). For the
 * stack and the tests only. */
#ifndef TEST_GATEWAY_H
#define TEST_GATEWAY_H

#include "es_http.h"
#include <stddef.h>

typedef struct test_gateway test_gateway_t;

/* The payments it has taken, in memory. secret_key (copied; NULL: any "sk_test_..." bearer) is
 * the bearer token every /v1 request must carry. */
test_gateway_t *test_gateway_new(const char *secret_key);
/* NULL is a no-op. */
void test_gateway_free(test_gateway_t *g);

/* The routes; each handler finds its test_gateway_t as es_http_app(): serve them with the
 * gateway as the app, on one loop thread (its handlers take no lock). */
extern const es_http_route_t test_gateway_routes[];
extern const size_t test_gateway_routes_count;

#endif
