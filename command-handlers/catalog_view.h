/* catalog_view — the shared fold of catalog events into a view of product ownership, for the
 * contexts whose deciders must know who owns a sku and whether it is listed (inventory,
 * pricing). Pure. A context uses it as
 *     static const hd_view_t views[] = {{"catalog.events", catalog_view_fold}};
 * and reads it in its decider with catalog_view_product(view, sku). */
#ifndef CATALOG_VIEW_H
#define CATALOG_VIEW_H

#include "hd_context.h"

/* hd_view_t.fold for "catalog.events": keeps view["products"][sku] = {"vendor_id": "...",
 * "status": "listed"|"delisted", "currency": ISO-4217} from ProductListed (sets all) and
 * ProductDelisted (status); other event types are ignored. view borrowed and mutated; event
 * borrowed. */
void catalog_view_fold(json_t *view, const char *event_type, const json_t *event);

/* view["products"][sku] (borrowed), or NULL when the sku was never listed. */
const json_t *catalog_view_product(const json_t *view, const char *sku);

/* The owning vendor of a listed sku (borrowed), or NULL when sku is unknown or delisted. */
const char *catalog_view_listed_owner(const json_t *view, const char *sku);

#endif
