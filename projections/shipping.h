/* shipping — the shipping context's read model "shipping_shipments": table shipments<suffix>, one
 * row per order id: customer_id, status (requested | dispatched | delivered), tracking_number,
 * carrier, requested_at, dispatched_at, delivered_at (ms), version, applied_events. Read by the
 * API (order answers) and by the shipping subscriber's tick (dispatched shipments to poll):
 * column names are a contract. */
#ifndef PJ_SHIPPING_H
#define PJ_SHIPPING_H

#include "pj_runtime.h"

extern const pj_projection_t shipping_shipments_projection;

#endif
