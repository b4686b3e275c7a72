/* inventory — the decider of the inventory context: the StockItem aggregate (key sku). Commands
 * ReceiveStock, AdjustStock, ReserveStock, ReleaseStock, CommitStock; events StockReceived,
 * StockAdjusted, StockReserved, StockReservationRejected, StockReleased, StockCommitted; state
 * StockItemState (events/schemas/inventory/). Reads the catalog view (catalog_view.h) to know
 * a sku's owner. Pure.
 *
 * Rules: available = on_hand - reserved is never negative, nor is on_hand. Only the sku's
 * owning vendor or an admin receives or adjusts; only an admin (the order saga acts as admin)
 * reserves, releases and commits. Reservations are keyed by order id: repeating one (same
 * quantity) is accepted without a new event, releasing a released one or committing a committed
 * one likewise. A reservation beyond the available units emits StockReservationRejected and is
 * rejected insufficient_stock, saying how many units are available. */
#ifndef INVENTORY_H
#define INVENTORY_H

#include "hd_context.h"

#define INVENTORY_NS           "eventshop.inventory."
#define INVENTORY_MAX_QUANTITY 1000000

/* hd_context_t.decide for inventory; see hd_context.h for ownership. Rejection codes:
 * unknown_sku (never listed in the catalog), delisted (receive or reserve for a delisted sku),
 * not_owner, invalid_quantity, invalid_field, insufficient_stock, reservation_exists (the
 * order already holds another quantity), reservation_closed (released or committed),
 * unknown_reservation, unknown_command. */
hd_decide_fn inventory_decide;
/* hd_context_t.evolve for inventory: state stolen, payload borrowed, new state owned. */
hd_evolve_fn inventory_evolve;

#endif
