/* pricing_rules — the effective price of a sku at an instant: a pure, deterministic function of
 * its list price, its rules and the available stock (no I/O, no clock, no allocation, no floats).
 * Shared by the pricing decider (rule validation), the orders decider (the price of each line)
 * and the API (GET /v1/prices/{sku}), so that every place computes the same price.
 *
 * The computation, in this order (pr_effective_price):
 *  1. Active rules. A rule is active at instant t when valid_from <= t < valid_until; either end
 *     may be open. A window with valid_until <= valid_from is never active. A rule whose currency
 *     is set and differs from the list price's, or whose parameters are out of range
 *     (pr_rule_check), is ignored: the decider rejects such rules, this is only a defence.
 *  2. Discount: percent_off and amount_off rules do NOT stack. Each active discount is computed
 *     against the list price (percent: list * basis_points / 10000 rounded half up; amount: the
 *     amount, at most the list price) and the single largest one wins. Overlapping windows
 *     therefore never compound; when two discounts are equal the smaller rule_id (strcmp) wins,
 *     so the answer does not depend on the order of the rules.
 *  3. Floor: the largest active floor bounds the discounted price from below; it limits what
 *     rules may take away, it never raises a price above its list price (the bound is
 *     min(floor, list)). A floor that actually bounded the price is reported as applied, with
 *     the amount it gave back.
 *  4. Low-stock surcharge: applies only when the stock is known and available < threshold
 *     (strictly). list * basis_points / 10000 rounded half up, at most cap_minor. Of several,
 *     the largest wins (tiers such as "+5% under 10, +15% under 3" work as expected); ties go to
 *     the smaller rule_id. The surcharge is added after the floor: a scarcity premium is never
 *     swallowed by a floor.
 *  So: effective = max(list - discount, min(floor, list)) + surcharge.
 *
 * Rounding: every percentage is of the list price, in integer arithmetic, rounded half up
 * (x.5 minor units goes up: the customer gets the larger discount, the shop the larger
 * surcharge). Amounts are bounded by PR_AMOUNT_MAX so nothing can overflow. */
#ifndef PRICING_RULES_H
#define PRICING_RULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PR_AMOUNT_MAX       1000000000000000LL /* 10^15 minor units */
#define PR_PERCENT_OFF_MAX  10000              /* 100 %: a discount may make a sku free */
#define PR_SURCHARGE_BP_MAX 100000             /* +1000 % */
#define PR_THRESHOLD_MAX    1000000000LL
#define PR_STOCK_UNKNOWN    INT64_MIN /* available stock not known: no surcharge applies */
#define PR_RULE_ID_MAX      64
#define PR_MAX_APPLIED      3 /* one discount, one floor, one surcharge */

typedef enum pr_kind {
    PR_PERCENT_OFF,
    PR_AMOUNT_OFF,
    PR_LOW_STOCK_SURCHARGE,
    PR_FLOOR,
} pr_kind_t;

/* One rule; strings are borrowed from the caller. */
typedef struct pr_rule {
    const char *rule_id; /* 1..PR_RULE_ID_MAX bytes */
    pr_kind_t kind;
    const char *currency; /* NULL: not tied to a currency; else must equal the list's */
    int64_t basis_points; /* percent_off: 1..10000; low_stock_surcharge: 1..100000 */
    int64_t amount_minor; /* amount_off: 1..PR_AMOUNT_MAX; floor: 0..PR_AMOUNT_MAX */
    int64_t threshold;    /* low_stock_surcharge: 1..PR_THRESHOLD_MAX */
    int64_t cap_minor;    /* low_stock_surcharge: 0..PR_AMOUNT_MAX */
    bool has_from, has_until;
    int64_t valid_from, valid_until; /* ms since the epoch, [from, until) */
} pr_rule_t;

/* One rule that changed the price, in the order applied; rule_id borrowed from the rule. */
typedef struct pr_applied {
    const char *rule_id;
    pr_kind_t kind;
    int64_t delta_minor; /* signed change it made: negative for a discount */
} pr_applied_t;

typedef struct pr_result {
    int64_t amount_minor; /* the effective price */
    int64_t list_amount_minor;
    pr_applied_t applied[PR_MAX_APPLIED];
    size_t n_applied;
} pr_result_t;

/* "percent_off", "amount_off", "low_stock_surcharge", "floor" (static). */
const char *pr_kind_name(pr_kind_t kind);
/* Parses a kind name (borrowed) into *out. Returns 0, or -1 when name is unknown or NULL. */
int pr_kind_parse(const char *name, pr_kind_t *out);

/* Whether s (may be NULL) is three upper-case ASCII letters. */
bool pr_currency_is_valid(const char *s);

/* The numeric parameters of a rule, in this order (PR_N_PARAMS); which a kind takes:
 * pr_kind_uses (a rule must give exactly those, the others absent or null). */
#define PR_N_PARAMS 4
extern const char *const pr_rule_params[PR_N_PARAMS];
bool pr_kind_uses(pr_kind_t kind, const char *param);

/* Checks r (borrowed) against the ranges above for its kind and that its window is not empty.
 * Returns 0, or -1 with a lowercase explanation naming the field in why (caller's buffer of n
 * bytes, may be NULL). Parameters a kind does not use are not looked at. */
int pr_rule_check(const pr_rule_t *r, char *why, size_t n);

/* Whether r (borrowed) is active at instant at_ms (ms since the epoch): the window alone. */
bool pr_rule_is_active(const pr_rule_t *r, int64_t at_ms);

/* The effective price at at_ms of a list price (list_minor in currency, borrowed) under rules
 * (borrowed array of n, may be NULL when n == 0) with available stock (or PR_STOCK_UNKNOWN).
 * Fills *out (its rule ids borrow from rules). Returns 0, or -1 when the list price is out of
 * 0..PR_AMOUNT_MAX or the currency is invalid (then *out is zeroed). */
int pr_effective_price(int64_t list_minor, const char *currency, const pr_rule_t *rules, size_t n,
                       int64_t available, int64_t at_ms, pr_result_t *out);

/* Fills *out from a rule object (borrowed: a PriceState rule, a PriceRuleAdded payload or a
 * read-model row as JSON) whose strings it borrows. Returns 0, or -1 when the kind is unknown
 * or rule_id missing (other ranges are pr_rule_check's). */
int pr_rule_from_json(const json_t *rule, pr_rule_t *out);

#endif
