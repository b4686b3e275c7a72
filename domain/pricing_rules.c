#include "pricing_rules.h"
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    [PR_PERCENT_OFF] = "percent_off",
    [PR_AMOUNT_OFF] = "amount_off",
    [PR_LOW_STOCK_SURCHARGE] = "low_stock_surcharge",
    [PR_FLOOR] = "floor",
};

const char *pr_kind_name(pr_kind_t kind)
{
    if ((unsigned)kind >= sizeof kind_names / sizeof kind_names[0])
        return "unknown";
    return kind_names[kind];
}

int pr_kind_parse(const char *name, pr_kind_t *out)
{
    for (size_t i = 0; name && i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (pr_kind_t)i;
            return 0;
        }
    }
    return -1;
}

const char *const pr_rule_params[PR_N_PARAMS] = {"basis_points", "amount_minor", "threshold",
                                                 "cap_minor"};

bool pr_kind_uses(pr_kind_t kind, const char *param)
{
    switch (kind) {
    case PR_PERCENT_OFF:
        return strcmp(param, "basis_points") == 0;
    case PR_AMOUNT_OFF:
    case PR_FLOOR:
        return strcmp(param, "amount_minor") == 0;
    case PR_LOW_STOCK_SURCHARGE:
        return strcmp(param, "amount_minor") != 0;
    }
    return false;
}

bool pr_currency_is_valid(const char *s)
{
    if (!s || strlen(s) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    return true;
}

static int why_set(char *why, size_t n, const char *fmt, const char *field, long long lo,
                   long long hi)
{
    if (why && n)
        snprintf(why, n, fmt, field, lo, hi);
    return -1;
}

static int check_range(char *why, size_t n, const char *field, int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        return why_set(why, n, "%s: must be %lld to %lld", field, lo, hi);
    return 0;
}

int pr_rule_check(const pr_rule_t *r, char *why, size_t n)
{
    if (!r->rule_id || !r->rule_id[0] || strlen(r->rule_id) > PR_RULE_ID_MAX)
        return why_set(why, n, "%s: must be %lld to %lld bytes", "rule_id", 1, PR_RULE_ID_MAX);
    if (r->currency && !pr_currency_is_valid(r->currency)) {
        if (why && n)
            snprintf(why, n, "currency: '%.16s' is not an ISO-4217 code", r->currency);
        return -1;
    }
    if (r->has_from && r->has_until && r->valid_until <= r->valid_from) {
        if (why && n)
            snprintf(why, n, "valid_until: %lld is not after valid_from %lld",
                     (long long)r->valid_until, (long long)r->valid_from);
        return -1;
    }
    switch (r->kind) {
    case PR_PERCENT_OFF:
        return check_range(why, n, "basis_points", r->basis_points, 1, PR_PERCENT_OFF_MAX);
    case PR_AMOUNT_OFF:
        return check_range(why, n, "amount_minor", r->amount_minor, 1, PR_AMOUNT_MAX);
    case PR_FLOOR:
        return check_range(why, n, "amount_minor", r->amount_minor, 0, PR_AMOUNT_MAX);
    case PR_LOW_STOCK_SURCHARGE:
        if (check_range(why, n, "basis_points", r->basis_points, 1, PR_SURCHARGE_BP_MAX) ||
            check_range(why, n, "threshold", r->threshold, 1, PR_THRESHOLD_MAX) ||
            check_range(why, n, "cap_minor", r->cap_minor, 0, PR_AMOUNT_MAX))
            return -1;
        return 0;
    }
    if (why && n)
        snprintf(why, n, "kind: %d is not a rule kind", (int)r->kind);
    return -1;
}

bool pr_rule_is_active(const pr_rule_t *r, int64_t at_ms)
{
    if (r->has_from && at_ms < r->valid_from)
        return false;
    if (r->has_until && at_ms >= r->valid_until)
        return false;
    return true;
}

/* list * bp / 10000 rounded half up, without overflow for list <= 10^15 and bp <= 10^5:
 * list = q * 10000 + r, so list * bp / 10000 = q * bp + r * bp / 10000 and q * bp is exact. */
static int64_t percent_of(int64_t list, int64_t bp)
{
    int64_t q = list / 10000, r = list % 10000;
    return q * bp + (r * bp + 5000) / 10000;
}

/* whether candidate (amount a, rule ra) beats the current best (amount b, rule rb, NULL: none) */
static bool beats(int64_t a, const pr_rule_t *ra, int64_t b, const pr_rule_t *rb)
{
    if (!rb)
        return true;
    if (a != b)
        return a > b;
    return strcmp(ra->rule_id, rb->rule_id) < 0;
}

static void applied_add(pr_result_t *out, const pr_rule_t *r, int64_t delta)
{
    if (delta == 0)
        return;
    out->applied[out->n_applied++] = (pr_applied_t){r->rule_id, r->kind, delta};
}

int pr_effective_price(int64_t list_minor, const char *currency, const pr_rule_t *rules, size_t n,
                       int64_t available, int64_t at_ms, pr_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (list_minor < 0 || list_minor > PR_AMOUNT_MAX || !pr_currency_is_valid(currency))
        return -1;
    const pr_rule_t *disc = NULL, *floor = NULL, *sur = NULL;
    int64_t disc_amt = 0, floor_amt = 0, sur_amt = 0;
    for (size_t i = 0; i < n; i++) {
        const pr_rule_t *r = &rules[i];
        if (pr_rule_check(r, NULL, 0) || !pr_rule_is_active(r, at_ms))
            continue;
        if (r->currency && strcmp(r->currency, currency) != 0)
            continue; /* the decider rejects it; never mix currencies */
        int64_t v;
        switch (r->kind) {
        case PR_PERCENT_OFF:
        case PR_AMOUNT_OFF:
            v = r->kind == PR_PERCENT_OFF ? percent_of(list_minor, r->basis_points)
                                          : r->amount_minor;
            if (v > list_minor)
                v = list_minor;
            if (beats(v, r, disc_amt, disc))
                disc = r, disc_amt = v;
            break;
        case PR_FLOOR:
            if (beats(r->amount_minor, r, floor_amt, floor))
                floor = r, floor_amt = r->amount_minor;
            break;
        case PR_LOW_STOCK_SURCHARGE:
            if (available == PR_STOCK_UNKNOWN || available >= r->threshold)
                break;
            v = percent_of(list_minor, r->basis_points);
            if (v > r->cap_minor)
                v = r->cap_minor;
            if (beats(v, r, sur_amt, sur))
                sur = r, sur_amt = v;
            break;
        }
    }
    int64_t price = list_minor - disc_amt;
    if (disc)
        applied_add(out, disc, -disc_amt);
    if (floor) {
        int64_t bound = floor_amt < list_minor ? floor_amt : list_minor;
        if (price < bound) {
            applied_add(out, floor, bound - price);
            price = bound;
        }
    }
    if (sur) {
        applied_add(out, sur, sur_amt);
        price += sur_amt;
    }
    out->amount_minor = price;
    out->list_amount_minor = list_minor;
    return 0;
}

int pr_rule_from_json(const json_t *rule, pr_rule_t *out)
{
    memset(out, 0, sizeof *out);
    out->rule_id = json_string_value(json_object_get(rule, "rule_id"));
    out->currency = json_string_value(json_object_get(rule, "currency"));
    if (!out->rule_id ||
        pr_kind_parse(json_string_value(json_object_get(rule, "kind")), &out->kind))
        return -1;
    out->basis_points = json_integer_value(json_object_get(rule, "basis_points"));
    out->amount_minor = json_integer_value(json_object_get(rule, "amount_minor"));
    out->threshold = json_integer_value(json_object_get(rule, "threshold"));
    out->cap_minor = json_integer_value(json_object_get(rule, "cap_minor"));
    json_t *from = json_object_get(rule, "valid_from");
    json_t *until = json_object_get(rule, "valid_until");
    out->has_from = json_is_integer(from);
    out->has_until = json_is_integer(until);
    out->valid_from = json_integer_value(from);
    out->valid_until = json_integer_value(until);
    return 0;
}
