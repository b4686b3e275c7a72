/* payments — the payments context's read model "payments_payments": table payments<suffix>, one
 * row per order's payment (order_id, customer_id, status requested | captured | declined |
 * refund_requested | refunded, amount_minor, currency, gateway_ref, decline_reason, refund_ref,
 * version, updated_at). Read by the API (order answers carry the payment status) with the
 * read-only user: column names are a contract. */
#ifndef PJ_PAYMENTS_H
#define PJ_PAYMENTS_H

#include "pj_runtime.h"

extern const pj_projection_t payments_payments_projection;

/* The payment status a payments event's short name leads to ("PaymentRequested" ->
 * "requested", "PaymentCaptured" -> "captured", "PaymentDeclined" -> "declined",
 * "PaymentRefundRequested" -> "refund_requested", "PaymentRefunded" -> "refunded"); NULL for
 * any other type. Static string. */
const char *payments_status_of(const char *event_type);

#endif
