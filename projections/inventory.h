/* inventory — the inventory context's read model "inventory_stock": table stock<suffix> (one
 * row per sku: vendor_id, on_hand, reserved, available, version, applied_events) and table
 * stock_movements<suffix> (one row per event: kind, quantity, order_id, reason, the counts after
 * it, at). Read by the API with the read-only user: column names are a contract. */
#ifndef PJ_INVENTORY_H
#define PJ_INVENTORY_H

#include "pj_runtime.h"

extern const pj_projection_t inventory_stock_projection;

/* The movement kind of an inventory event's short name ("StockReceived" -> "received",
 * "StockAdjusted" -> "adjusted", "StockReserved" -> "reserved", "StockReservationRejected" ->
 * "rejected", "StockReleased" -> "released", "StockCommitted" -> "committed"); NULL if the type
 * is not an inventory event. Static string. */
const char *inventory_movement_kind(const char *event_type);

#endif
