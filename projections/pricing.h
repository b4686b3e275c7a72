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

#include "es_db.h"
#include "es_err.h"
#include "pj_runtime.h"
#include <jansson.h>
#include <stdbool.h>

extern const pj_projection_t pricing_prices_projection;

#define PRICING_STMT_MAX_PARAMS 16
#define PRICING_PLAN_MAX        3

struct pricing_stmt {
    char *sql; /* owned */
    es_db_val_t params[PRICING_STMT_MAX_PARAMS];
    size_t n;
    bool must_match; /* an UPDATE that must find its row (else ES_ENOTFOUND) */
};

/* The statements one event turns into, in order, built without I/O (unit-tested). */
struct pricing_plan {
    struct pricing_stmt stmts[PRICING_PLAN_MAX];
    size_t n;      /* 0: the event changes nothing */
    char *details; /* owned: the history row's JSON; params borrow it and the event's strings */
};

/* The CREATE TABLE IF NOT EXISTS statements of the three tables, NULL-terminated array of owned
 * strings (free each and the array). */
char **pricing_prices_ddl(const char *suffix);
/* Fills *out (zeroed first) from event (borrowed) of event_type (name without namespace).
 * ES_EINVAL naming the field when the event is malformed. Release *out in every case. */
int pricing_prices_plan(const char *suffix, const char *event_type, const json_t *event,
                        struct pricing_plan *out, es_err_t *err);
void pricing_plan_release(struct pricing_plan *p);

#endif
