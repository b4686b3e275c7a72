/* catalog — the decider of the catalog context: the Product aggregate (key sku), owned by a
 * vendor. Commands ListProduct, ChangeProductDetails, DelistProduct; events ProductListed,
 * ProductDetailsChanged, ProductDelisted; state ProductState (events/schemas/catalog/). Pure. */
#ifndef CATALOG_H
#define CATALOG_H

#include "hd_context.h"

#define CATALOG_NS "eventshop.catalog."

/* hd_context_t.decide for the catalog: see hd_context.h for ownership. Rejection codes:
 * not_owner, already_listed, delisted, unknown_sku, invalid_field, unknown_command. */
hd_decide_fn catalog_decide;
/* hd_context_t.evolve for the catalog: state stolen, payload borrowed, new state owned. */
hd_evolve_fn catalog_evolve;

#endif
