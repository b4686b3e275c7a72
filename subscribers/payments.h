/* payments — the payments subscriber (sb_payments, `eventshop-subscriber payments`): reads
 * payments.events and moves money through the gateway (gateway.h), recording each outcome as a
 * payments command:
 *
 *   PaymentRequested       -> charge (create + confirm [+ capture]) -> RecordPaymentCaptured
 *                             {order_id, gateway_ref} or RecordPaymentDeclined {order_id, reason}
 *   PaymentRefundRequested -> refund -> RecordPaymentRefunded {order_id, refund_ref}
 *
 * The card charged is a test payment method chosen from the customer id
 * (gateway_test_payment_method). Every gateway call carries an idempotency key derived from the
 * order id, so a redelivered event (a crash before the batch committed, a retried batch) gets
 * the gateway's first answer: a customer is charged at most once per order. Transient gateway
 * failures are retried with backoff inside the call, then the batch is retried (ES_EIO);
 * permanent ones (bad key, bad request) are dead-lettered for an operator to replay.
 *
 * Configuration: EVENTSHOP_PAYMENTS_GATEWAY_URL (default http://127.0.0.1:8090),
 * EVENTSHOP_PAYMENTS_SECRET_KEY_FILE (or EVENTSHOP_PAYMENTS_SECRET_KEY; required, never logged),
 * EVENTSHOP_PAYMENTS_TIMEOUT_MS (10000), EVENTSHOP_PAYMENTS_MAX_ATTEMPTS (5),
 * EVENTSHOP_PAYMENTS_BACKOFF_MS (200, doubled per attempt, at most 5000). */
#ifndef SB_PAYMENTS_H
#define SB_PAYMENTS_H

#include "gateway.h"
#include "sb_runtime.h"

extern const sb_subscriber_t sb_payments;

/* The handler proper, over any gateway (borrowed): handles event (borrowed) of full name
 * event_type into out. 0, or -1 with err ES_EIO when the gateway keeps failing transiently. */
int payments_handle_event(gateway_t *gw, const char *event_type, const json_t *event, sb_out_t *out,
                          es_err_t *err);

#endif
