/* pricing — the pricing context's read model in eventshop_pricing, read by the API with the
 * read-only user (column names are a contract):
 *   prices<suffix>        one row per sku: list_amount_minor (NULL until a list price is set),
 *                         currency, version, applied_events, updated_at, last_event_id
 *   price_rules<suffix>   one row per (sku, rule_id): kind, currency, basis_points,
 *                         amount_minor, threshold, cap_minor, valid_from, valid_until (NULL:
 *                         open), removed (0/1), added_version, removed_version
 *   price_history<suffix> one row per event: (sku, version) key, event_id, event_type,
 *                         occurred_at, actor, amount_minor, currency, rule_id, details (the
 *                         event without its metadata, as JSON)
 * The effective price is not stored: it depends on the instant and the stock, so the API
 * computes it with pricing_rules.h from these rows. */
#ifndef PJ_PRICING_H
#define PJ_PRICING_H

#include "pj_runtime.h"

extern const pj_projection_t pricing_prices_projection;

#endif
