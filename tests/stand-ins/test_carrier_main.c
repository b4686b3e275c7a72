/* eventshop-test-carrier: the local stand-in for a parcel carrier and an SMS provider
 * (test_carrier.c), for the stack and the tests, never for production. Serves on
 * EVENTSHOP_FAKE_ADDR (127.0.0.1:8091); a shipment is delivered
 * EVENTSHOP_TEST_CARRIER_DELIVERY_MS (2000) after its booking. */
#include "es_env.h"
#include "es_log.h"
#include "standin.h"
#include "test_carrier.h"
#include <stdio.h>

int main(void)
{
    es_log_init("eventshop-test-carrier");
    long long delivery_ms = es_env_long("EVENTSHOP_TEST_CARRIER_DELIVERY_MS", 2000);
    test_carrier_t *c = test_carrier_new(delivery_ms);
    char about[64];
    snprintf(about, sizeof about, ", delivery after %lld ms", delivery_ms);
    int rc = standin_serve("test carrier", es_env_str("EVENTSHOP_FAKE_ADDR", "127.0.0.1:8091"),
                           test_carrier_routes, test_carrier_routes_count, c, about);
    test_carrier_free(c);
    return rc;
}
