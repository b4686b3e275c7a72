/* eventshop-test-gateway: the local stand-in for a Stripe-compatible payment gateway
 * (test_gateway.c), for the stack and the tests, never for production. Serves on
 * EVENTSHOP_FAKE_ADDR (127.0.0.1:8090) and requires the bearer of EVENTSHOP_PAYMENTS_SECRET_KEY
 * (or _FILE) when set, else any "sk_test_..." one. */
#include "es_env.h"
#include "es_log.h"
#include "standin.h"
#include "test_gateway.h"
#include <stdlib.h>

int main(void)
{
    es_log_init("eventshop-test-gateway");
    char *key = es_env_secret("EVENTSHOP_PAYMENTS_SECRET_KEY");
    test_gateway_t *g = test_gateway_new(key);
    int rc = standin_serve("test gateway", es_env_str("EVENTSHOP_FAKE_ADDR", "127.0.0.1:8090"),
                           test_gateway_routes, test_gateway_routes_count, g,
                           key ? " (the configured key required)" : " (any sk_test_ key)");
    test_gateway_free(g);
    free(key);
    return rc;
}
