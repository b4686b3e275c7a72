/* pricing — the decider of the pricing context: the Price aggregate (key sku). Commands
 * SetListPrice, AddPriceRule, RemovePriceRule; events PriceSet, PriceRuleAdded, PriceRuleRemoved;
 * state PriceState (events/schemas/pricing/). Pure. Who owns a sku, whether it is listed and its
 * currency come from the catalog view (catalog_view.h), folded by the runtime from
 * catalog.events. The effective price itself is pricing_rules.h's. */
#ifndef PRICING_H
#define PRICING_H

#include "hd_context.h"
#include "pricing_rules.h"

#define PRICING_NS        "eventshop.pricing."
#define PRICING_RULES_MAX 50 /* active rules per sku: bounds the state and the price query */

/* hd_context_t.decide for pricing: see hd_context.h for ownership. Rejection codes:
 * not_owner (neither the owning vendor nor an admin), unknown_sku (not in the catalog),
 * delisted, invalid_field, currency_mismatch (not the product's catalog currency),
 * rule_exists, unknown_rule, too_many_rules, unknown_command. */
hd_decide_fn pricing_decide;
/* hd_context_t.evolve for pricing: state stolen, payload borrowed, new state owned. */
hd_evolve_fn pricing_evolve;

#endif
