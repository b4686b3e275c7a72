/* orders — the decider of the orders context: the Order aggregate (key order_id). Commands
 * PlaceOrder, RecordStockReserved, RecordStockRejected, ConfirmOrder, ApproveDispatch, CancelOrder,
 * MarkShipped, MarkDelivered; events OrderPlaced, OrderLineReserved, OrderStockReserved,
 * OrderConfirmed, OrderDispatchApproved, OrderCancelled, OrderRefundRequested, OrderShipped,
 * OrderDelivered; state OrderState
 * (events/schemas/orders/). Views: the catalog (owner and listing of each sku) and the prices
 * (list price and rules per sku, folded by orders_pricing_fold); each line is priced with
 * pr_effective_price at the command's issued_at, stock unknown. Pure.
 *
 * Life: placed -> stock_reserved -> confirmed -> shipped -> delivered, or -> cancelled (final).
 * Only the saga (role admin) records reservations, confirms, approves dispatch, ships and
 * delivers; a customer places and cancels its own orders, an admin any. This decider is the one
 * owner of the race between a cancel and the dispatch: nothing is shipped before it approved the
 * dispatch (ApproveDispatch -> OrderDispatchApproved, the saga then requests the shipment), and
 * from that approval on a cancel is refused already_shipped; an approval that comes after a
 * cancel records nothing (the cancel won: stock released, payment refunded). A deadline
 * cancel applies only before confirmation, a payment_declined one only before confirmation;
 * commands that come too late for the order's status are accepted without events (the saga's
 * races are harmless), except ConfirmOrder on a cancelled order: rejected order_cancelled with
 * an OrderRefundRequested event kept (the captured payment must be refunded). */
#ifndef ORDERS_H
#define ORDERS_H

#include "hd_context.h"

#define ORDERS_NS        "eventshop.orders."
#define ORDERS_MAX_LINES 50
#define ORDERS_MAX_QTY   1000

/* hd_context_t.decide for orders. Rejection codes: invalid_field, invalid_quantity,
 * unknown_sku, delisted, no_price, mixed_currency, order_exists, unknown_order, not_owner,
 * forbidden, already_shipped, order_final, order_cancelled, invalid_state, unknown_command. */
hd_decide_fn orders_decide;
/* hd_context_t.evolve for orders: state stolen, payload borrowed, new state owned. */
hd_evolve_fn orders_evolve;
/* hd_view_t.fold for "pricing.events": view["prices"][sku] = {"amount_minor", "currency",
 * "rules": {rule_id: rule}} from PriceSet, PriceRuleAdded, PriceRuleRemoved. */
void orders_pricing_fold(json_t *view, const char *event_type, const json_t *event);

#endif
