/* shipping — the decider of the shipping context: the Shipment aggregate (key order id).
 * Commands RequestShipment (the order saga), RecordDispatch and RecordDelivery (the shipping
 * subscriber); events ShipmentRequested, ShipmentDispatched, ShipmentDelivered; state
 * ShipmentState (events/schemas/shipping/). No views. Pure.
 *
 * Rules: only an admin (the saga and the subscriber act as admin) issues shipping commands. A
 * shipment moves requested -> dispatched -> delivered. Repeating the command that made the
 * current step (same tracking number for a dispatch) is accepted without a new event, so a
 * redelivered subscriber command is harmless; a step out of order is rejected invalid_state. */
#ifndef SHIPPING_H
#define SHIPPING_H

#include "hd_context.h"

#define SHIPPING_NS        "eventshop.shipping."
#define SHIPPING_LINES_MAX 100

/* hd_context_t.decide for shipping; see hd_context.h for ownership. Rejection codes: forbidden,
 * invalid_field, unknown_shipment (dispatch or delivery of a shipment never requested),
 * invalid_state, unknown_command. */
hd_decide_fn shipping_decide;
/* hd_context_t.evolve for shipping: state stolen, payload borrowed, new state owned. */
hd_evolve_fn shipping_evolve;

#endif
