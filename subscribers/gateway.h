/* gateway — the payments subscriber's view of a card payment gateway: charge an order (create a
 * payment and confirm it, capturing it if the gateway only authorised it) and refund a captured
 * payment. Every call carries an idempotency key derived from the order id
 * (gateway_idempotency_key), so a retry after a timeout, a 5xx or a crash can never charge or
 * refund twice: the gateway answers a repeated key with the first answer.
 *
 * An interface (gateway_ops_t) with one real implementation, the Stripe-compatible client
 * (gateway_stripe_new, libcurl): form-encoded PaymentIntents over HTTPS,
 *
 *   POST {base}/v1/payment_intents   amount, currency, confirm=true, payment_method,
 *        payment_method_types[0]=card, metadata[order_id], metadata[customer_id]
 *   POST {base}/v1/payment_intents/{id}/capture   (only when the answer was requires_capture)
 *   POST {base}/v1/refunds           payment_intent, metadata[order_id]
 *
 * each with "Authorization: Bearer <secret key>" and "Idempotency-Key". The local
 * eventshop-test-gateway speaks the same. Not thread-safe: one gateway per thread. */
#ifndef GATEWAY_H
#define GATEWAY_H

#include "es_err.h"
#include <stddef.h>

#define GATEWAY_REF_MAX 255 /* gateway ids, decline codes, idempotency keys (Stripe's limit) */

typedef enum {
    GATEWAY_OK,       /* charged (captured) or refunded */
    GATEWAY_DECLINED, /* the card was declined: nothing was charged */
    GATEWAY_RETRY,    /* transient (5xx, 409, 429, timeout, no connection): try again later */
    GATEWAY_FAILED,   /* permanent (bad request, bad key): trying again cannot succeed */
} gateway_outcome_t;

typedef struct gateway_result {
    gateway_outcome_t outcome;
    int http_status;                  /* the last answer's, 0 when none came */
    char ref[GATEWAY_REF_MAX + 1];    /* the payment intent's (or refund's) id, "" if none */
    char status[32];                  /* the gateway's status: "succeeded", "requires_capture"... */
    char reason[GATEWAY_REF_MAX + 1]; /* the decline code, or what failed */
} gateway_result_t;

typedef struct gateway_charge {
    const char *order_id;
    const char *customer_id;
    long long amount_minor;
    const char *currency;       /* ISO-4217, any case (sent in lower case) */
    const char *payment_method; /* e.g. "pm_card_visa" (gateway_test_payment_method) */
} gateway_charge_t;

/* An implementation: each call makes ONE attempt and fills res (outcome included); the
 * generic layer owns retries. Return 0 when res is filled, -1 with err on a local failure. */
typedef struct gateway_ops {
    int (*create)(void *impl, const gateway_charge_t *c, const char *idem_key,
                  gateway_result_t *res, es_err_t *err);
    int (*capture)(void *impl, const char *ref, const char *idem_key, gateway_result_t *res,
                   es_err_t *err);
    int (*refund)(void *impl, const char *order_id, const char *ref, const char *idem_key,
                  gateway_result_t *res, es_err_t *err);
    void (*free)(void *impl);
} gateway_ops_t;

typedef struct gateway gateway_t;

typedef struct gateway_retry {
    int max_attempts;    /* per call, >= 1; <= 0: 5 */
    long backoff_ms;     /* the first wait, doubled each time; <= 0: 200 */
    long max_backoff_ms; /* <= 0: 5000 */
} gateway_retry_t;

/* A gateway over ops (borrowed, static) and impl (stolen: ops->free releases it). retry is
 * copied, NULL for the defaults. */
gateway_t *gateway_new(const gateway_ops_t *ops, void *impl, const gateway_retry_t *retry);
void gateway_free(gateway_t *gw); /* NULL is a no-op */

/* Charges c (borrowed): creates and confirms the payment, then captures it if the gateway only
 * authorised it, retrying transient failures with exponential backoff (same idempotency keys).
 * res gets the final outcome: GATEWAY_OK with the payment's ref, GATEWAY_DECLINED with the
 * decline code, GATEWAY_RETRY when every attempt failed transiently, GATEWAY_FAILED. Returns 0,
 * or -1 with err when the call could not be made at all. */
int gateway_charge(gateway_t *gw, const gateway_charge_t *c, gateway_result_t *res, es_err_t *err);
/* Refunds the captured payment ref (borrowed) of order_id in full, like gateway_charge. */
int gateway_refund(gateway_t *gw, const char *order_id, const char *ref, gateway_result_t *res,
                   es_err_t *err);

/* The idempotency key of an action ("payment", "capture" or "refund") on order_id:
 * "eventshop-<kind>-<order_id>". Written to out (cap bytes); 0, or -1 if it does not fit or
 * exceeds GATEWAY_REF_MAX. */
int gateway_idempotency_key(const char *kind, const char *order_id, char *out, size_t cap);

/* The test payment method charged for customer_id: Stripe's test tokens stand in for the card a
 * real checkout would have collected. "pm_card_chargeDeclined" when the customer id contains
 * "decline" (so tests can make a declining customer), else "pm_card_visa". Static string. */
const char *gateway_test_payment_method(const char *customer_id);

/* The wait before retry attempt n (1 after the first failure): backoff_ms * 2^(n-1), capped. */
long gateway_backoff_ms(const gateway_retry_t *retry, int attempt);

/* ---- the Stripe-compatible client */

typedef struct gateway_stripe_config {
    const char *base_url;   /* "https://api.stripe.com" or a stand-in; borrowed, copied */
    const char *secret_key; /* "sk_test_..."; borrowed, copied, never logged */
    long timeout_ms;        /* per request; <= 0: 10000 */
} gateway_stripe_config_t;

/* A gateway speaking Stripe's API; NULL with err ES_EINVAL when the URL or the key is empty. */
gateway_t *gateway_stripe_new(const gateway_stripe_config_t *cfg, const gateway_retry_t *retry,
                              es_err_t *err);

/* The form body of a create-and-confirm request (owned), exposed for tests. */
char *gateway_stripe_charge_form(const gateway_charge_t *c);
/* The form body of a refund request (owned). */
char *gateway_stripe_refund_form(const char *order_id, const char *ref);
/* Interprets one answer: http_status (0 when no answer came) and body (len bytes, may be NULL)
 * into res. Exposed for tests. */
void gateway_stripe_parse(int http_status, const char *body, size_t len, gateway_result_t *res);

#endif
