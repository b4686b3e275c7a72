#include "gateway.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gateway {
    const gateway_ops_t *ops;
    void *impl;
    gateway_retry_t retry;
};

gateway_t *gateway_new(const gateway_ops_t *ops, void *impl, const gateway_retry_t *retry)
{
    gateway_t *gw = xcalloc(1, sizeof *gw);
    gw->ops = ops;
    gw->impl = impl;
    if (retry)
        gw->retry = *retry;
    if (gw->retry.max_attempts <= 0)
        gw->retry.max_attempts = 5;
    if (gw->retry.backoff_ms <= 0)
        gw->retry.backoff_ms = 200;
    if (gw->retry.max_backoff_ms <= 0)
        gw->retry.max_backoff_ms = 5000;
    return gw;
}

void gateway_free(gateway_t *gw)
{
    if (!gw)
        return;
    if (gw->ops->free)
        gw->ops->free(gw->impl);
    free(gw);
}

int gateway_idempotency_key(const char *kind, const char *order_id, char *out, size_t cap)
{
    if (!kind || !order_id || !*order_id)
        return -1;
    int n = snprintf(out, cap, "eventshop-%s-%s", kind, order_id);
    if (n < 0 || (size_t)n >= cap || n > GATEWAY_REF_MAX)
        return -1;
    return 0;
}

const char *gateway_test_payment_method(const char *customer_id)
{
    if (customer_id && strstr(customer_id, "decline"))
        return "pm_card_chargeDeclined";
    return "pm_card_visa";
}

long gateway_backoff_ms(const gateway_retry_t *retry, int attempt)
{
    long ms = retry->backoff_ms;
    for (int i = 1; i < attempt && ms < retry->max_backoff_ms; i++)
        ms *= 2;
    return ms < retry->max_backoff_ms ? ms : retry->max_backoff_ms;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1)
        ;
}

enum step { STEP_CREATE, STEP_CAPTURE, STEP_REFUND };

/* One action, retried while the answer is transient; the same key every attempt. */
static int attempt(gateway_t *gw, enum step step, const gateway_charge_t *c, const char *order_id,
                   const char *ref, const char *key, gateway_result_t *res, es_err_t *err)
{
    for (int n = 1;; n++) {
        memset(res, 0, sizeof *res);
        int rc;
        if (step == STEP_CREATE)
            rc = gw->ops->create(gw->impl, c, key, res, err);
        else if (step == STEP_CAPTURE)
            rc = gw->ops->capture(gw->impl, ref, key, res, err);
        else
            rc = gw->ops->refund(gw->impl, order_id, ref, key, res, err);
        if (rc)
            return rc;
        if (res->outcome != GATEWAY_RETRY || n >= gw->retry.max_attempts)
            return 0;
        long wait = gateway_backoff_ms(&gw->retry, n);
        es_warn("gateway: '%s' failed transiently (http %d: %.128s), attempt %d of %d, retrying "
                "in %ld ms",
                key, res->http_status, res->reason, n, gw->retry.max_attempts, wait);
        sleep_ms(wait);
    }
}

int gateway_charge(gateway_t *gw, const gateway_charge_t *c, gateway_result_t *res, es_err_t *err)
{
    char key[GATEWAY_REF_MAX + 1];
    if (gateway_idempotency_key("payment", c->order_id, key, sizeof key))
        return es_set(err, ES_EINVAL, "order id '%.64s' makes no idempotency key",
                      c->order_id ? c->order_id : "");
    if (attempt(gw, STEP_CREATE, c, c->order_id, NULL, key, res, err))
        return -1;
    if (res->outcome != GATEWAY_OK || strcmp(res->status, "requires_capture"))
        return 0;
    /* authorised only: capture it, under a key of its own */
    char ref[sizeof res->ref];
    memcpy(ref, res->ref, sizeof ref);
    if (gateway_idempotency_key("capture", c->order_id, key, sizeof key))
        return es_set(err, ES_EINVAL, "order id '%.64s' makes no idempotency key", c->order_id);
    if (attempt(gw, STEP_CAPTURE, c, c->order_id, ref, key, res, err))
        return -1;
    if (!res->ref[0])
        memcpy(res->ref, ref, sizeof ref);
    return 0;
}

int gateway_refund(gateway_t *gw, const char *order_id, const char *ref, gateway_result_t *res,
                   es_err_t *err)
{
    char key[GATEWAY_REF_MAX + 1];
    if (gateway_idempotency_key("refund", order_id, key, sizeof key))
        return es_set(err, ES_EINVAL, "order id '%.64s' makes no idempotency key",
                      order_id ? order_id : "");
    if (!ref || !*ref)
        return es_set(err, ES_EINVAL, "order '%.128s': no payment to refund", order_id);
    return attempt(gw, STEP_REFUND, NULL, order_id, ref, key, res, err);
}
