#include "payments.h"
#include "dm_json.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void count_outcome(const char *outcome)
{
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    es_metric_add(es_counter("eventshop_payment_outcomes_total",
                             "gateway answers to charges and refunds, by outcome", labels),
                  1);
}

#define PAYMENTS_NS "eventshop.payments."

static int charge(gateway_t *gw, const json_t *event, sb_out_t *out, es_err_t *err)
{
    const char *order = dm_str(event, "order_id");
    const char *customer = dm_str(event, "customer_id");
    const char *currency = dm_str(event, "currency");
    json_t *amount = json_object_get(event, "amount_minor");
    if (!order || !*order || !customer || !currency || !json_is_integer(amount)) {
        sb_out_dead_letter(out, "PaymentRequested without order_id, customer_id, amount_minor "
                                "or currency");
        return 0;
    }
    gateway_charge_t c = {
        .order_id = order,
        .customer_id = customer,
        .amount_minor = json_integer_value(amount),
        .currency = currency,
        .payment_method = gateway_test_payment_method(customer),
    };
    gateway_result_t res;
    es_err_t gerr = ES_ERR_INIT;
    if (gateway_charge(gw, &c, &res, &gerr)) {
        char *why = xasprintf("charging order '%.128s': %s", order, gerr.msg);
        sb_out_dead_letter(out, why);
        free(why);
        return 0;
    }
    switch (res.outcome) {
    case GATEWAY_OK:
        count_outcome("captured");
        es_info("order '%s' charged %lld %s as '%s'", order, c.amount_minor, currency, res.ref);
        sb_out_command(out, "payments", PAYMENTS_NS "RecordPaymentCaptured", order,
                       json_pack("{s:s, s:s}", "order_id", order, "gateway_ref", res.ref));
        return 0;
    case GATEWAY_DECLINED:
        count_outcome("declined");
        es_info("order '%s': payment declined (%s)", order, res.reason);
        sb_out_command(out, "payments", PAYMENTS_NS "RecordPaymentDeclined", order,
                       json_pack("{s:s, s:s, s:s}", "order_id", order, "reason",
                                 res.reason[0] ? res.reason : "declined", "gateway_ref", res.ref));
        return 0;
    case GATEWAY_RETRY:
        count_outcome("unavailable");
        return es_set(err, ES_EIO, "charging order '%s': gateway unavailable (http %d: %s)", order,
                      res.http_status, res.reason);
    case GATEWAY_FAILED:
    default: {
        char *why = xasprintf("charging order '%.128s': gateway refused: %s", order, res.reason);
        sb_out_dead_letter(out, why);
        free(why);
        return 0;
    }
    }
}

static int refund(gateway_t *gw, const json_t *event, sb_out_t *out, es_err_t *err)
{
    const char *order = dm_str(event, "order_id");
    const char *ref = dm_str(event, "gateway_ref");
    if (!order || !*order || !ref || !*ref) {
        sb_out_dead_letter(out, "PaymentRefundRequested without order_id or gateway_ref");
        return 0;
    }
    gateway_result_t res;
    es_err_t gerr = ES_ERR_INIT;
    if (gateway_refund(gw, order, ref, &res, &gerr)) {
        char *why = xasprintf("refunding order '%.128s': %s", order, gerr.msg);
        sb_out_dead_letter(out, why);
        free(why);
        return 0;
    }
    if (res.outcome == GATEWAY_OK) {
        es_info("order '%s' refunded as '%s'", order, res.ref);
        sb_out_command(out, "payments", PAYMENTS_NS "RecordPaymentRefunded", order,
                       json_pack("{s:s, s:s}", "order_id", order, "refund_ref", res.ref));
        return 0;
    }
    if (res.outcome == GATEWAY_RETRY)
        return es_set(err, ES_EIO, "refunding order '%s': gateway unavailable (http %d: %s)", order,
                      res.http_status, res.reason);
    char *why = xasprintf("refunding order '%.128s': gateway refused: %s", order, res.reason);
    sb_out_dead_letter(out, why);
    free(why);
    return 0;
}

int payments_handle_event(gateway_t *gw, const char *event_type, const json_t *event, sb_out_t *out,
                          es_err_t *err)
{
    if (!event_type || strncmp(event_type, PAYMENTS_NS, strlen(PAYMENTS_NS)))
        return 0;
    const char *name = event_type + strlen(PAYMENTS_NS);
    if (!strcmp(name, "PaymentRequested"))
        return charge(gw, event, out, err);
    if (!strcmp(name, "PaymentRefundRequested"))
        return refund(gw, event, out, err);
    return 0; /* the outcomes it recorded itself, and anything newer */
}

static void *payments_init(es_err_t *err)
{
    char *key = es_env_secret("EVENTSHOP_PAYMENTS_SECRET_KEY");
    if (!key) {
        es_set(err, ES_EINVAL, "no payment gateway key: set EVENTSHOP_PAYMENTS_SECRET_KEY_FILE");
        return NULL;
    }
    gateway_stripe_config_t cfg = {
        .base_url = es_env_str("EVENTSHOP_PAYMENTS_GATEWAY_URL", "http://127.0.0.1:8090"),
        .secret_key = key,
        .timeout_ms = es_env_long("EVENTSHOP_PAYMENTS_TIMEOUT_MS", 10000),
    };
    gateway_retry_t retry = {
        .max_attempts = (int)es_env_long("EVENTSHOP_PAYMENTS_MAX_ATTEMPTS", 5),
        .backoff_ms = es_env_long("EVENTSHOP_PAYMENTS_BACKOFF_MS", 200),
        .max_backoff_ms = 5000,
    };
    gateway_t *gw = gateway_stripe_new(&cfg, &retry, err);
    memset(key, 0, strlen(key));
    free(key);
    if (gw)
        es_info("payments: gateway at %s", cfg.base_url);
    return gw;
}

static void payments_release(void *state)
{
    gateway_free(state);
}

static int payments_handle(void *state, const char *event_type, const json_t *event,
                           const char *traceparent, sb_out_t *out, es_err_t *err)
{
    (void)traceparent;
    return payments_handle_event(state, event_type, event, out, err);
}

static const char *const payments_topics[] = {"payments.events", NULL};

const sb_subscriber_t sb_payments = {
    .name = "payments",
    .topics = payments_topics,
    .init = payments_init,
    .release = payments_release,
    .handle = payments_handle,
    .tick = NULL,
};
