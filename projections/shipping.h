/* shipping — the shipping context's read model "shipping_shipments": table shipments<suffix>, one
 * row per order id: customer_id, status (requested | dispatched | delivered), tracking_number,
 * carrier, requested_at, dispatched_at, delivered_at (ms), version, applied_events. Read by the
 * API (order answers) and by the shipping subscriber's tick (dispatched shipments to poll):
 * column names are a contract. */
#ifndef PJ_SHIPPING_H
#define PJ_SHIPPING_H

#include "pj_runtime.h"

extern const pj_projection_t shipping_shipments_projection;

/* The projection's functions (pj_projection_t): pure, unit-tested. */
extern const char *const shipping_shipments_tables[];
void shipping_shipments_ddl(const char *suffix, pj_plan_t *out);
/* ShipmentRequested: the row's insert; ShipmentDispatched, ShipmentDelivered: a must-match
 * UPDATE. ES_EINVAL when order_id, metadata.aggregate_version or (dispatched) tracking_number is
 * missing. */
int shipping_shipments_plan(const char *suffix, const char *event_type, const json_t *event,
                            pj_plan_t *out, es_err_t *err);

#endif
