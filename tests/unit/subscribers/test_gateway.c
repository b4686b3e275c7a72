#include "gateway.h"
#include <criterion/criterion.h>
#include <string.h>

Test(gateway, derives_idempotency_keys_from_the_order)
{
    char a[GATEWAY_REF_MAX + 1], b[GATEWAY_REF_MAX + 1];
    cr_assert_eq(gateway_idempotency_key("payment", "o-1", a, sizeof a), 0);
    cr_assert_str_eq(a, "eventshop-payment-o-1");
    cr_assert_eq(gateway_idempotency_key("payment", "o-1", b, sizeof b), 0);
    cr_assert_str_eq(a, b, "the same order must always give the same key");
    cr_assert_eq(gateway_idempotency_key("refund", "o-1", b, sizeof b), 0);
    cr_assert_str_eq(b, "eventshop-refund-o-1");
    cr_assert_eq(gateway_idempotency_key("payment", "o-2", b, sizeof b), 0);
    cr_assert_str_neq(a, b);
    cr_assert_eq(gateway_idempotency_key("payment", "", b, sizeof b), -1);
    char small[8];
    cr_assert_eq(gateway_idempotency_key("payment", "o-1", small, sizeof small), -1);
    char big[1024];
    char order[300];
    memset(order, 'x', sizeof order - 1);
    order[sizeof order - 1] = '\0';
    cr_assert_eq(gateway_idempotency_key("payment", order, big, sizeof big), -1,
                 "beyond Stripe's 255 characters");
}

Test(gateway, picks_the_test_card_from_the_customer)
{
    cr_assert_str_eq(gateway_test_payment_method("cust-1"), "pm_card_visa");
    cr_assert_str_eq(gateway_test_payment_method("cust-decline-7"), "pm_card_chargeDeclined");
    cr_assert_str_eq(gateway_test_payment_method(NULL), "pm_card_visa");
}

Test(gateway, backs_off_exponentially_with_a_cap)
{
    gateway_retry_t r = {.max_attempts = 5, .backoff_ms = 100, .max_backoff_ms = 1000};
    cr_assert_eq(gateway_backoff_ms(&r, 1), 100);
    cr_assert_eq(gateway_backoff_ms(&r, 2), 200);
    cr_assert_eq(gateway_backoff_ms(&r, 3), 400);
    cr_assert_eq(gateway_backoff_ms(&r, 5), 1000);
    cr_assert_eq(gateway_backoff_ms(&r, 40), 1000);
}

Test(gateway_stripe, builds_a_form_encoded_confirmed_intent)
{
    gateway_charge_t c = {.order_id = "o 1&x",
                          .customer_id = "c1",
                          .amount_minor = 2500,
                          .currency = "EUR",
                          .payment_method = "pm_card_visa"};
    char *form = gateway_stripe_charge_form(&c);
    cr_assert_str_eq(form, "amount=2500&currency=eur&confirm=true&payment_method=pm_card_visa&"
                           "payment_method_types%5B0%5D=card&metadata%5Border_id%5D=o%201%26x&"
                           "metadata%5Bcustomer_id%5D=c1");
    free(form);
    form = gateway_stripe_refund_form("o1", "pi_123");
    cr_assert_str_eq(form, "payment_intent=pi_123&metadata%5Border_id%5D=o1");
    free(form);
}

static gateway_result_t parse(int status, const char *body)
{
    gateway_result_t r;
    gateway_stripe_parse(status, body, body ? strlen(body) : 0, &r);
    return r;
}

Test(gateway_stripe, parses_a_succeeded_intent)
{
    gateway_result_t r = parse(200, "{\"id\": \"pi_3N\", \"object\": \"payment_intent\", "
                                    "\"amount\": 2500, \"status\": \"succeeded\"}");
    cr_assert_eq(r.outcome, GATEWAY_OK);
    cr_assert_str_eq(r.ref, "pi_3N");
    cr_assert_str_eq(r.status, "succeeded");
    r = parse(200, "{\"id\": \"pi_4\", \"object\": \"payment_intent\", \"status\": "
                   "\"requires_capture\"}");
    cr_assert_eq(r.outcome, GATEWAY_OK);
    cr_assert_str_eq(r.status, "requires_capture");
}

Test(gateway_stripe, parses_a_card_decline)
{
    gateway_result_t r = parse(
        402, "{\"error\": {\"type\": \"card_error\", \"code\": \"card_declined\", "
             "\"decline_code\": \"generic_decline\", \"message\": \"Your card was declined.\", "
             "\"payment_intent\": {\"id\": \"pi_9\", \"status\": \"requires_payment_method\"}}}");
    cr_assert_eq(r.outcome, GATEWAY_DECLINED);
    cr_assert_str_eq(r.reason, "generic_decline");
    cr_assert_str_eq(r.ref, "pi_9");
    r = parse(200, "{\"id\": \"pi_5\", \"object\": \"payment_intent\", \"status\": "
                   "\"requires_payment_method\", \"last_payment_error\": {\"code\": "
                   "\"card_declined\"}}");
    cr_assert_eq(r.outcome, GATEWAY_DECLINED);
    cr_assert_str_eq(r.reason, "card_declined");
    r = parse(200, "{\"id\": \"pi_6\", \"object\": \"payment_intent\", \"status\": "
                   "\"requires_action\"}");
    cr_assert_eq(r.outcome, GATEWAY_DECLINED);
    cr_assert_str_eq(r.reason, "authentication_required");
}

Test(gateway_stripe, retries_only_transient_answers)
{
    cr_assert_eq(parse(500, "{\"error\": {\"type\": \"api_error\"}}").outcome, GATEWAY_RETRY);
    cr_assert_eq(parse(503, "<html>busy</html>").outcome, GATEWAY_RETRY);
    cr_assert_eq(parse(0, NULL).outcome, GATEWAY_RETRY, "no answer (timeout)");
    cr_assert_eq(parse(429, "{}").outcome, GATEWAY_RETRY);
    cr_assert_eq(parse(409, "{\"error\": {\"type\": \"idempotency_error\"}}").outcome,
                 GATEWAY_RETRY);
    gateway_result_t r = parse(401, "{\"error\": {\"type\": \"invalid_request_error\", "
                                    "\"message\": \"Invalid API Key provided\"}}");
    cr_assert_eq(r.outcome, GATEWAY_FAILED);
    cr_assert(strstr(r.reason, "Invalid API Key"), "%s", r.reason);
    cr_assert_eq(parse(400, "{\"error\": {\"type\": \"idempotency_error\"}}").outcome,
                 GATEWAY_FAILED);
    cr_assert_eq(parse(200, "not json").outcome, GATEWAY_FAILED);
    cr_assert_eq(parse(200, "{\"id\": \"pi_7\", \"object\": \"payment_intent\", \"status\": "
                            "\"processing\"}")
                     .outcome,
                 GATEWAY_RETRY);
}

Test(gateway_stripe, parses_refunds)
{
    gateway_result_t r =
        parse(200, "{\"id\": \"re_1\", \"object\": \"refund\", \"status\": \"succeeded\"}");
    cr_assert_eq(r.outcome, GATEWAY_OK);
    cr_assert_str_eq(r.ref, "re_1");
    r = parse(200, "{\"id\": \"re_2\", \"object\": \"refund\", \"status\": \"failed\", "
                   "\"failure_reason\": \"expired_or_canceled_card\"}");
    cr_assert_eq(r.outcome, GATEWAY_FAILED);
    cr_assert_str_eq(r.reason, "expired_or_canceled_card");
}

Test(gateway_stripe, refuses_an_empty_key)
{
    es_err_t err = ES_ERR_INIT;
    gateway_stripe_config_t cfg = {.base_url = "http://127.0.0.1:1", .secret_key = ""};
    cr_assert_null(gateway_stripe_new(&cfg, NULL, &err));
    cr_assert_eq(err.code, ES_EINVAL);
    cr_assert_null(strstr(err.msg, "sk_"));
}
