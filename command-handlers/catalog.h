/* catalog — the decider of the catalog context: the Product aggregate (key sku), owned by a
 * vendor. Commands ListProduct, ChangeProductDetails, DelistProduct; events ProductListed,
 * ProductDetailsChanged, ProductDelisted; state ProductState (events/schemas/catalog/). Pure. */
#ifndef CATALOG_H
#define CATALOG_H

#include "hd_context.h"

#define CATALOG_NS "eventshop.catalog."

/* hd_context_t.decide for the catalog: see hd_context.h for ownership. Rejection codes:
 * not_owner, already_listed, delisted, unknown_sku, invalid_field, unknown_command. */
int catalog_decide(const json_t *state, const char *cmd_type, const json_t *cmd, const json_t *view,
                   hd_decision_t *out);
/* hd_context_t.evolve for the catalog: state stolen, payload borrowed, new state owned. */
json_t *catalog_evolve(json_t *state, const char *event_type, const json_t *payload);

extern const hd_context_t catalog_context;

#endif
