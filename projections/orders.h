/* orders — the orders context's read model "orders_orders": table orders<suffix> (one row per
 * order: customer_id, status, total_minor, currency, cancel_reason, tracking_number, version,
 * placed_at, updated_at), order_lines<suffix> (order_id, sku, vendor_id, quantity,
 * unit_amount_minor) and order_timeline<suffix> (order_id, version, status, at). Read by the
 * API with the read-only user: column names are a contract. */
#ifndef PJ_ORDERS_H
#define PJ_ORDERS_H

#include "pj_runtime.h"

extern const pj_projection_t orders_orders_projection;

/* The projection's functions (pj_projection_t): pure, unit-tested. */
extern const char *const orders_orders_tables[];
void orders_orders_ddl(const char *suffix, pj_plan_t *out);
/* OrderPlaced: the orders row and one order_lines row per line (inserts); any later order event:
 * an UPDATE of the row (status, cancel reason, tracking number, refund flag: each only when the
 * event sets it); then, when the event moves the status, an order_timeline row (INSERT IGNORE).
 * ES_EINVAL when order_id, the metadata or (OrderPlaced) customer_id or currency are missing. */
int orders_orders_plan(const char *suffix, const char *event_type, const json_t *event,
                       pj_plan_t *out, es_err_t *err);

#endif
