/* The payments subscriber's handler over a scripted gateway: retries, outcomes, keys. */
#include "payments.h"
#include "sb_out.h"
#include <criterion/criterion.h>
#include <string.h>

/* a scripted gateway: answers create with script[i] (then the last one), records every key */
struct fake {
    gateway_outcome_t script[8];
    int n_script, calls, captures, refunds;
    char keys[16][GATEWAY_REF_MAX + 1];
    const char *status; /* of a successful create: "succeeded" or "requires_capture" */
};

static void record(struct fake *f, const char *key)
{
    if (f->calls < 16)
        snprintf(f->keys[f->calls], sizeof f->keys[0], "%s", key);
    f->calls++;
}

static int fake_create(void *impl, const gateway_charge_t *c, const char *key,
                       gateway_result_t *res, es_err_t *err)
{
    (void)err;
    struct fake *f = impl;
    int i = f->calls < f->n_script ? f->calls : f->n_script - 1;
    record(f, key);
    res->outcome = f->script[i];
    res->http_status = res->outcome == GATEWAY_RETRY ? 500 : 200;
    snprintf(res->ref, sizeof res->ref, "pi_%s", c->order_id);
    snprintf(res->status, sizeof res->status, "%s", f->status ? f->status : "succeeded");
    if (res->outcome == GATEWAY_DECLINED)
        snprintf(res->reason, sizeof res->reason, "generic_decline");
    return 0;
}

static int fake_capture(void *impl, const char *ref, const char *key, gateway_result_t *res,
                        es_err_t *err)
{
    (void)err;
    struct fake *f = impl;
    record(f, key);
    f->captures++;
    res->outcome = GATEWAY_OK;
    snprintf(res->ref, sizeof res->ref, "%s", ref);
    snprintf(res->status, sizeof res->status, "succeeded");
    return 0;
}

static int fake_refund(void *impl, const char *order_id, const char *ref, const char *key,
                       gateway_result_t *res, es_err_t *err)
{
    (void)err;
    (void)ref;
    struct fake *f = impl;
    record(f, key);
    f->refunds++;
    res->outcome = GATEWAY_OK;
    snprintf(res->ref, sizeof res->ref, "re_%s", order_id);
    return 0;
}

static const gateway_ops_t fake_ops = {fake_create, fake_capture, fake_refund, NULL};
static const gateway_retry_t fast = {.max_attempts = 4, .backoff_ms = 1, .max_backoff_ms = 2};

static json_t *requested(const char *customer)
{
    return json_pack("{s:{s:s}, s:s, s:s, s:I, s:s}", "metadata", "event_id",
                     "6f1c1f4e-0000-4000-8000-0000000000aa", "order_id", "o1", "customer_id",
                     customer, "amount_minor", (json_int_t)2500, "currency", "EUR");
}

/* the i-th output's type and the named field of it */
static const char *output(sb_out_t *out, size_t i, const char *field, json_t **keep)
{
    const char *topic, *type, *key;
    *keep = sb_out_build(out, i, "payments", NULL, 1700000000000LL, &topic, &type, &key);
    cr_assert_not_null(*keep);
    cr_assert_str_eq(topic, "payments.commands");
    cr_assert_str_eq(key, "o1");
    return field ? json_string_value(json_object_get(*keep, field)) : type;
}

Test(payments_subscriber, retries_a_failing_gateway_with_the_same_key_then_records_capture)
{
    struct fake f = {.script = {GATEWAY_RETRY, GATEWAY_RETRY, GATEWAY_OK}, .n_script = 3};
    gateway_t *gw = gateway_new(&fake_ops, &f, &fast);
    sb_out_t *out = sb_out_new();
    json_t *ev = requested("cust-1");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(payments_handle_event(gw, "eventshop.payments.PaymentRequested", ev, out, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(f.calls, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(f.keys[i], "eventshop-payment-o1");
    cr_assert_eq(sb_out_count(out), 1);
    json_t *c;
    cr_assert_str_eq(output(out, 0, NULL, &c), "eventshop.payments.RecordPaymentCaptured");
    json_decref(c);
    cr_assert_str_eq(output(out, 0, "gateway_ref", &c), "pi_o1");
    json_decref(c);
    json_decref(ev);
    sb_out_free(out);
    gateway_free(gw);
}

Test(payments_subscriber, gives_up_transiently_so_the_batch_is_retried)
{
    struct fake f = {.script = {GATEWAY_RETRY}, .n_script = 1};
    gateway_t *gw = gateway_new(&fake_ops, &f, &fast);
    sb_out_t *out = sb_out_new();
    json_t *ev = requested("cust-1");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(payments_handle_event(gw, "eventshop.payments.PaymentRequested", ev, out, &err),
                 -1);
    cr_assert_eq(err.code, ES_EIO);
    cr_assert_eq(f.calls, 4);
    cr_assert_eq(sb_out_count(out), 0);
    json_decref(ev);
    sb_out_free(out);
    gateway_free(gw);
}

Test(payments_subscriber, records_a_decline)
{
    struct fake f = {.script = {GATEWAY_DECLINED}, .n_script = 1};
    gateway_t *gw = gateway_new(&fake_ops, &f, &fast);
    sb_out_t *out = sb_out_new();
    json_t *ev = requested("cust-decline");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(payments_handle_event(gw, "eventshop.payments.PaymentRequested", ev, out, &err),
                 0);
    cr_assert_eq(f.calls, 1, "a decline is not retried");
    json_t *c;
    cr_assert_str_eq(output(out, 0, NULL, &c), "eventshop.payments.RecordPaymentDeclined");
    json_decref(c);
    cr_assert_str_eq(output(out, 0, "reason", &c), "generic_decline");
    json_decref(c);
    json_decref(ev);
    sb_out_free(out);
    gateway_free(gw);
}

Test(payments_subscriber, captures_an_authorised_payment_under_its_own_key)
{
    struct fake f = {.script = {GATEWAY_OK}, .n_script = 1, .status = "requires_capture"};
    gateway_t *gw = gateway_new(&fake_ops, &f, &fast);
    sb_out_t *out = sb_out_new();
    json_t *ev = requested("cust-1");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(payments_handle_event(gw, "eventshop.payments.PaymentRequested", ev, out, &err),
                 0);
    cr_assert_eq(f.captures, 1);
    cr_assert_str_eq(f.keys[1], "eventshop-capture-o1");
    json_t *c;
    cr_assert_str_eq(output(out, 0, "gateway_ref", &c), "pi_o1");
    json_decref(c);
    json_decref(ev);
    sb_out_free(out);
    gateway_free(gw);
}

Test(payments_subscriber, refunds_with_the_refund_key_and_ignores_other_events)
{
    struct fake f = {.script = {GATEWAY_OK}, .n_script = 1};
    gateway_t *gw = gateway_new(&fake_ops, &f, &fast);
    sb_out_t *out = sb_out_new();
    json_t *ev = json_pack("{s:{s:s}, s:s, s:s, s:s}", "metadata", "event_id",
                           "6f1c1f4e-0000-4000-8000-0000000000bb", "order_id", "o1", "gateway_ref",
                           "pi_o1", "customer_id", "c");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(payments_handle_event(gw, "eventshop.payments.PaymentCaptured", ev, out, &err), 0);
    cr_assert_eq(f.calls, 0);
    cr_assert_eq(
        payments_handle_event(gw, "eventshop.payments.PaymentRefundRequested", ev, out, &err), 0);
    cr_assert_eq(f.refunds, 1);
    cr_assert_str_eq(f.keys[0], "eventshop-refund-o1");
    json_t *c;
    cr_assert_str_eq(output(out, 0, NULL, &c), "eventshop.payments.RecordPaymentRefunded");
    json_decref(c);
    cr_assert_str_eq(output(out, 0, "refund_ref", &c), "re_o1");
    json_decref(c);
    json_decref(ev);
    sb_out_free(out);
    gateway_free(gw);
}

Test(payments_subscriber, dead_letters_a_malformed_event)
{
    struct fake f = {.script = {GATEWAY_OK}, .n_script = 1};
    gateway_t *gw = gateway_new(&fake_ops, &f, &fast);
    sb_out_t *out = sb_out_new();
    json_t *ev = json_pack("{s:s}", "order_id", "o1");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(payments_handle_event(gw, "eventshop.payments.PaymentRequested", ev, out, &err),
                 0);
    cr_assert_not_null(sb_out_dead_reason(out));
    cr_assert_eq(f.calls, 0);
    json_decref(ev);
    sb_out_free(out);
    gateway_free(gw);
}
