#include "carrier.h"
#include <criterion/criterion.h>
#include <string.h>

Test(carrier, idempotency_key_is_stable_per_order)
{
    char a[ES_UUID_LEN], b[ES_UUID_LEN], c[ES_UUID_LEN];
    carrier_idempotency_key("order-1", a);
    carrier_idempotency_key("order-1", b);
    carrier_idempotency_key("order-2", c);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert(es_uuid_valid(a));
    cr_assert_str_neq(a, "order-1");
}

Test(carrier, parses_a_booking)
{
    char t[CARRIER_TRACKING_MAX + 1];
    es_err_t err = ES_ERR_INIT;
    const char *ok = "{\"tracking_number\":\"TC123\",\"status\":\"in_transit\"}";
    cr_assert_eq(carrier_parse_booking(ok, strlen(ok), t, &err), 0);
    cr_assert_str_eq(t, "TC123");
    const char *none = "{\"status\":\"in_transit\"}";
    cr_assert_neq(carrier_parse_booking(none, strlen(none), t, &err), 0);
    cr_assert_eq(err.code, ES_EIO);
    cr_assert(strstr(err.msg, "tracking_number"));
    const char *junk = "<html>";
    cr_assert_neq(carrier_parse_booking(junk, strlen(junk), t, NULL), 0);
    char longer[200];
    snprintf(longer, sizeof longer, "{\"tracking_number\":\"%0100d\"}", 1);
    cr_assert_neq(carrier_parse_booking(longer, strlen(longer), t, NULL), 0);
}

Test(carrier, parses_tracking)
{
    bool delivered = true;
    long long at = 0;
    const char *transit = "{\"tracking_number\":\"T\",\"status\":\"in_transit\"}";
    cr_assert_eq(carrier_parse_tracking(transit, strlen(transit), 5, &delivered, &at, NULL), 0);
    cr_assert_not(delivered);
    const char *done = "{\"status\":\"delivered\",\"delivered_at\":1700000000123}";
    cr_assert_eq(carrier_parse_tracking(done, strlen(done), 5, &delivered, &at, NULL), 0);
    cr_assert(delivered);
    cr_assert_eq(at, 1700000000123LL);
    const char *no_time = "{\"status\":\"delivered\"}";
    cr_assert_eq(carrier_parse_tracking(no_time, strlen(no_time), 77, &delivered, &at, NULL), 0);
    cr_assert_eq(at, 77, "falls back to the caller's time");
    const char *dup = "{\"status\":\"delivered\",\"status\":\"in_transit\"}";
    cr_assert_neq(carrier_parse_tracking(dup, strlen(dup), 5, &delivered, &at, NULL), 0);
}

Test(carrier, refuses_an_empty_url)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_null(carrier_http_new("", 0, &err));
    cr_assert_eq(err.code, ES_EINVAL);
    carrier_t *c = carrier_http_new("http://127.0.0.1:1/", 200, &err);
    cr_assert_not_null(c);
    char t[CARRIER_TRACKING_MAX + 1];
    es_err_t e2 = ES_ERR_INIT;
    cr_assert_neq(carrier_book(c, "o-1", NULL, t, &e2), 0);
    cr_assert_eq(e2.code, ES_EIO, "a refused connection is retriable: %s", e2.msg);
    carrier_free(c);
}
