/* payments — the decider of the payments context: the Payment aggregate (key order_id). Commands
 * RequestPayment, RecordPaymentCaptured, RecordPaymentDeclined, RefundPayment,
 * RecordPaymentRefunded; events PaymentRequested, PaymentCaptured, PaymentDeclined,
 * PaymentRefundRequested, PaymentRefunded; state PaymentState (events/schemas/payments/). Pure.
 *
 * Rules that make "charged at most once" hold (DESIGN.md §4): one payment per order; only an
 * admin (the order saga and the payments subscriber act as admin) sends payment commands. The
 * status moves requested -> captured | declined, captured -> refund_requested -> refunded, and
 * never back. A payment is captured at most once: recording the same capture again (same
 * gateway_ref) is accepted without a new event, another gateway_ref is rejected. Only a captured
 * payment is refunded, once: asking again while the refund is pending or done is accepted without
 * a new event. Repeated RequestPayment with the same amount and currency is accepted without a
 * new event (a redelivered saga command). */
#ifndef PAYMENTS_H
#define PAYMENTS_H

#include "hd_context.h"

#define PAYMENTS_NS         "eventshop.payments."
#define PAYMENTS_MAX_AMOUNT 100000000000LL /* minor units */

/* hd_context_t.decide for payments; see hd_context.h for ownership. Rejection codes:
 * forbidden (not an admin), invalid_field, invalid_amount, payment_exists (a payment of another
 * amount or currency, or customer), unknown_payment, already_captured (a capture with another
 * gateway_ref, or a decline of a captured payment), payment_declined (capture or refund of a
 * declined payment), not_captured (refund of a payment not captured), refund_not_requested,
 * unknown_command. */
hd_decide_fn payments_decide;
/* hd_context_t.evolve for payments: state stolen, payload borrowed, new state owned. */
hd_evolve_fn payments_evolve;

#endif
