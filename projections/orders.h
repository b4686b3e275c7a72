/* orders — the orders context's read model "orders_orders": table orders<suffix> (one row per
 * order: customer_id, status, total_minor, currency, cancel_reason, tracking_number, version,
 * placed_at, updated_at), order_lines<suffix> (order_id, sku, vendor_id, quantity,
 * unit_amount_minor) and order_timeline<suffix> (order_id, version, status, at). Read by the
 * API with the read-only user: column names are a contract. */
#ifndef PJ_ORDERS_H
#define PJ_ORDERS_H

#include "pj_runtime.h"

extern const pj_projection_t orders_orders_projection;

#endif
