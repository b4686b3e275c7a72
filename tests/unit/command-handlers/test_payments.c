#include "payments.h"
#include <criterion/criterion.h>
#include <string.h>

#define NS PAYMENTS_NS

static json_t *meta(const char *role, const char *order)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "command_id",
                     "6f1c1f4e-0000-4000-8000-000000000002", "correlation_id", "c", "aggregate_id",
                     order, "issued_at", (json_int_t)1700000000000, "actor", "svc", "actor_role",
                     role);
}

static json_t *request(const char *role, const char *order, json_int_t amount, const char *cur)
{
    return json_pack("{s:o, s:s, s:s, s:I, s:s}", "metadata", meta(role, order), "order_id", order,
                     "customer_id", "cust-1", "amount_minor", amount, "currency", cur);
}

/* a command of payments with order o1 and one extra string field (key may be NULL) */
static json_t *cmd(const char *key, const char *value)
{
    json_t *c = json_pack("{s:o, s:s}", "metadata", meta("admin", "o1"), "order_id", "o1");
    if (key)
        json_object_set_new(c, key, json_string(value));
    return c;
}

/* Decides c (stolen) of short name type on *state like the runtime: accepted events are evolved
 * into *state. Returns the decision's reason (NULL: accepted) and sets *n_events. */
static const char *run(json_t **state, const char *type, json_t *c, size_t *n_events,
                       char *first_event)
{
    char full[96];
    snprintf(full, sizeof full, NS "%s", type);
    hd_decision_t d;
    hd_decision_init(&d);
    cr_assert_eq(payments_decide(*state, full, c, NULL, &d), 0);
    const char *reason = d.reason;
    *n_events = json_array_size(d.events);
    if (first_event)
        first_event[0] = '\0';
    size_t i;
    json_t *ev;
    json_array_foreach(d.events, i, ev)
    {
        const char *t = json_string_value(json_object_get(ev, "type"));
        if (i == 0 && first_event)
            snprintf(first_event, 64, "%s", t + strlen(NS));
        *state = payments_evolve(*state, t, json_object_get(ev, "payload"));
    }
    hd_decision_release(&d);
    json_decref(c);
    return reason;
}

static json_t *captured_state(void)
{
    json_t *s = NULL;
    size_t n;
    cr_assert_null(run(&s, "RequestPayment", request("admin", "o1", 2500, "EUR"), &n, NULL));
    cr_assert_null(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_1"), &n, NULL));
    return s;
}

Test(payments, requests_then_captures_once)
{
    json_t *s = NULL;
    size_t n;
    char ev[64];
    cr_assert_null(run(&s, "RequestPayment", request("admin", "o1", 2500, "EUR"), &n, ev));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ev, "PaymentRequested");
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "requested");
    cr_assert_eq(json_integer_value(json_object_get(s, "amount_minor")), 2500);

    cr_assert_null(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_1"), &n, ev));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ev, "PaymentCaptured");
    cr_assert_str_eq(json_string_value(json_object_get(s, "gateway_ref")), "pi_1");

    /* the same capture again (a redelivered outcome): accepted, no second event */
    cr_assert_null(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_1"), &n, NULL));
    cr_assert_eq(n, 0);
    /* another capture of the same order: never */
    cr_assert_str_eq(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_2"), &n, NULL),
                     "already_captured");
    cr_assert_eq(n, 0);
    /* a captured payment is not declined afterwards */
    cr_assert_str_eq(run(&s, "RecordPaymentDeclined", cmd("reason", "card_declined"), &n, NULL),
                     "already_captured");
    json_decref(s);
}

Test(payments, repeated_request_is_harmless_but_another_amount_is_not)
{
    json_t *s = NULL;
    size_t n;
    cr_assert_null(run(&s, "RequestPayment", request("admin", "o1", 2500, "EUR"), &n, NULL));
    cr_assert_null(run(&s, "RequestPayment", request("admin", "o1", 2500, "EUR"), &n, NULL));
    cr_assert_eq(n, 0);
    cr_assert_str_eq(run(&s, "RequestPayment", request("admin", "o1", 2600, "EUR"), &n, NULL),
                     "payment_exists");
    json_decref(s);
}

Test(payments, rejects_bad_requests)
{
    json_t *s = NULL;
    size_t n;
    cr_assert_str_eq(run(&s, "RequestPayment", request("customer", "o1", 2500, "EUR"), &n, NULL),
                     "forbidden");
    cr_assert_str_eq(run(&s, "RequestPayment", request("admin", "o1", 0, "EUR"), &n, NULL),
                     "invalid_amount");
    cr_assert_str_eq(run(&s, "RequestPayment", request("admin", "o1", 10, "eur"), &n, NULL),
                     "invalid_field");
    json_t *c = request("admin", "o1", 10, "EUR");
    json_object_set_new(json_object_get(c, "metadata"), "aggregate_id", json_string("o2"));
    cr_assert_str_eq(run(&s, "RequestPayment", c, &n, NULL), "invalid_field");
    cr_assert_str_eq(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_1"), &n, NULL),
                     "unknown_payment");
    cr_assert_str_eq(run(&s, "CapturePayment", cmd(NULL, NULL), &n, NULL), "unknown_command");
    cr_assert_null(s);
}

Test(payments, declined_is_final)
{
    json_t *s = NULL;
    size_t n;
    char ev[64];
    cr_assert_null(run(&s, "RequestPayment", request("admin", "o1", 2500, "EUR"), &n, NULL));
    cr_assert_null(run(&s, "RecordPaymentDeclined", cmd("reason", "card_declined"), &n, ev));
    cr_assert_str_eq(ev, "PaymentDeclined");
    cr_assert_str_eq(json_string_value(json_object_get(s, "decline_reason")), "card_declined");
    cr_assert_null(run(&s, "RecordPaymentDeclined", cmd("reason", "card_declined"), &n, NULL));
    cr_assert_eq(n, 0);
    cr_assert_str_eq(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_1"), &n, NULL),
                     "payment_declined");
    cr_assert_str_eq(run(&s, "RefundPayment", cmd(NULL, NULL), &n, NULL), "payment_declined");
    json_decref(s);
}

Test(payments, refunds_only_a_captured_payment_once)
{
    json_t *s = NULL;
    size_t n;
    char ev[64];
    cr_assert_null(run(&s, "RequestPayment", request("admin", "o1", 2500, "EUR"), &n, NULL));
    cr_assert_str_eq(run(&s, "RefundPayment", cmd(NULL, NULL), &n, NULL), "not_captured");
    cr_assert_str_eq(run(&s, "RecordPaymentRefunded", cmd("refund_ref", "re_1"), &n, NULL),
                     "refund_not_requested");
    json_decref(s);

    s = captured_state();
    cr_assert_str_eq(run(&s, "RecordPaymentRefunded", cmd("refund_ref", "re_1"), &n, NULL),
                     "refund_not_requested");
    cr_assert_null(run(&s, "RefundPayment", cmd("reason", "order_cancelled"), &n, ev));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ev, "PaymentRefundRequested");
    /* asked again while pending: no second refund */
    cr_assert_null(run(&s, "RefundPayment", cmd(NULL, NULL), &n, NULL));
    cr_assert_eq(n, 0);
    cr_assert_null(run(&s, "RecordPaymentRefunded", cmd("refund_ref", "re_1"), &n, ev));
    cr_assert_str_eq(ev, "PaymentRefunded");
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "refunded");
    cr_assert_null(run(&s, "RecordPaymentRefunded", cmd("refund_ref", "re_1"), &n, NULL));
    cr_assert_eq(n, 0);
    cr_assert_str_eq(run(&s, "RecordPaymentRefunded", cmd("refund_ref", "re_2"), &n, NULL),
                     "already_refunded");
    cr_assert_null(run(&s, "RefundPayment", cmd(NULL, NULL), &n, NULL));
    cr_assert_eq(n, 0);
    /* and never captured again */
    cr_assert_str_eq(run(&s, "RecordPaymentCaptured", cmd("gateway_ref", "pi_9"), &n, NULL),
                     "already_captured");
    json_decref(s);
}

Test(payments, refund_event_carries_the_capture)
{
    json_t *s = captured_state();
    hd_decision_t d;
    hd_decision_init(&d);
    json_t *c = cmd(NULL, NULL);
    cr_assert_eq(payments_decide(s, NS "RefundPayment", c, NULL, &d), 0);
    json_t *p = json_object_get(json_array_get(d.events, 0), "payload");
    cr_assert_str_eq(json_string_value(json_object_get(p, "gateway_ref")), "pi_1");
    cr_assert_str_eq(json_string_value(json_object_get(p, "reason")), "order_cancelled");
    cr_assert_eq(json_integer_value(json_object_get(p, "amount_minor")), 2500);
    cr_assert_str_eq(json_string_value(json_object_get(p, "currency")), "EUR");
    hd_decision_release(&d);
    json_decref(c);
    json_decref(s);
}

Test(payments, is_registered)
{
    const hd_context_t *c = hd_context_find("payments");
    cr_assert_not_null(c);
    cr_assert_str_eq(c->state_type, PAYMENTS_NS "PaymentState");
    cr_assert_eq(c->decide, payments_decide);
    cr_assert_eq(c->evolve, payments_evolve);
    cr_assert_eq(c->n_views, 0);
}
