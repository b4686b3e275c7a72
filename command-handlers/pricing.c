#include "pricing.h"
#include "catalog_view.h"
#include "dm_json.h"
#include <stdbool.h>
#include <string.h>

#define ID_MAX 64

/* 0 when s (may be NULL) is 1..ID_MAX of A-Z a-z 0-9 . _ - */
static int check_id(hd_decision_t *d, const char *field, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > ID_MAX)
        return hd_reject(d, "invalid_field", "%s: must be 1 to %d characters", field, ID_MAX), -1;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            hd_reject(d, "invalid_field", "%s: '%.64s' may hold only A-Z a-z 0-9 . _ -", field, s);
            return -1;
        }
    }
    return 0;
}

/* The product behind the command, checked in this order: the sku itself, the aggregate, known
 * to the catalog, listed (unless removal is allowed on a delisted one), owner or admin. */
static const json_t *check_product(const json_t *cmd, const json_t *view, bool allow_delisted,
                                   hd_decision_t *d)
{
    const char *sku = dm_str(cmd, "sku");
    const json_t *meta = json_object_get(cmd, "metadata");
    if (check_id(d, "sku", sku))
        return NULL;
    const char *agg = dm_str(meta, "aggregate_id");
    if (!agg || strcmp(agg, sku) != 0) {
        hd_reject(d, "invalid_field", "metadata.aggregate_id: '%.64s' is not the sku '%s'",
                  agg ? agg : "", sku);
        return NULL;
    }
    const json_t *p = catalog_view_product(view, sku);
    if (!p) {
        hd_reject(d, "unknown_sku", "sku '%s' is not listed", sku);
        return NULL;
    }
    const char *status = dm_str(p, "status");
    if (!allow_delisted && (!status || strcmp(status, "listed") != 0)) {
        hd_reject(d, "delisted", "sku '%s' is delisted", sku);
        return NULL;
    }
    const char *role = dm_str(meta, "actor_role");
    const char *actor_vendor = dm_str(meta, "actor_vendor");
    const char *owner = dm_str(p, "vendor_id");
    if (role && strcmp(role, "admin") == 0)
        return p;
    if (role && strcmp(role, "vendor") == 0 && actor_vendor && owner &&
        strcmp(actor_vendor, owner) == 0)
        return p;
    if (role && strcmp(role, "vendor") == 0)
        hd_reject(d, "not_owner", "sku '%s' belongs to vendor '%.64s', not to '%.64s'", sku,
                  owner ? owner : "", actor_vendor ? actor_vendor : "");
    else
        hd_reject(d, "not_owner", "role '%.16s' may not manage prices", role ? role : "");
    return NULL;
}

/* The product's catalog currency: the view's, else (a view from before currency was folded)
 * the price state's; NULL when neither knows. */
static const char *product_currency(const json_t *product, const json_t *state)
{
    const char *c = dm_str(product, "currency");
    if (pr_currency_is_valid(c))
        return c;
    c = dm_str(state, "currency");
    return pr_currency_is_valid(c) ? c : NULL;
}

/* 0 when cur (may be NULL: then nothing to check) is an ISO code equal to want (may be NULL:
 * unknown, anything valid is accepted) */
static int check_currency(hd_decision_t *d, const char *sku, const char *cur, const char *want)
{
    if (!cur)
        return 0;
    if (!pr_currency_is_valid(cur))
        return hd_reject(d, "invalid_field", "currency: '%.16s' is not an ISO-4217 code", cur), -1;
    if (want && strcmp(cur, want) != 0) {
        hd_reject(d, "currency_mismatch", "sku '%s' is priced in %s, not in %s", sku, want, cur);
        return -1;
    }
    return 0;
}

static const json_t *find_rule(const json_t *state, const char *rule_id, size_t *index)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(state, "rules"), i, r)
    {
        const char *id = dm_str(r, "rule_id");
        if (id && strcmp(id, rule_id) == 0) {
            if (index)
                *index = i;
            return r;
        }
    }
    return NULL;
}

static int decide_set(const json_t *state, const json_t *cmd, const json_t *view,
                      hd_decision_t *out)
{
    const json_t *p = check_product(cmd, view, false, out);
    if (!p)
        return 0;
    const char *sku = dm_str(cmd, "sku");
    const char *cur = dm_str(cmd, "currency");
    json_t *amount = json_object_get(cmd, "amount_minor");
    if (!json_is_integer(amount) || json_integer_value(amount) < 0 ||
        json_integer_value(amount) > PR_AMOUNT_MAX)
        return hd_reject(out, "invalid_field", "amount_minor: must be an integer 0 to %lld",
                         (long long)PR_AMOUNT_MAX);
    if (!cur)
        return hd_reject(out, "invalid_field", "currency: is missing");
    if (check_currency(out, sku, cur, product_currency(p, state)))
        return 0;
    json_t *prev = json_object_get(state, "list_amount_minor");
    const char *prev_cur = dm_str(state, "currency");
    if (json_is_integer(prev) && json_integer_value(prev) == json_integer_value(amount) &&
        prev_cur && strcmp(prev_cur, cur) == 0)
        return 0; /* accepted, nothing changed */
    hd_emit(out, PRICING_NS "PriceSet",
            json_pack("{s:s, s:I, s:s, s:O}", "sku", sku, "amount_minor",
                      json_integer_value(amount), "currency", cur, "previous_amount_minor",
                      json_is_integer(prev) ? prev : json_null()));
    return 0;
}

static int opt_long(hd_decision_t *d, const json_t *cmd, const char *field, bool *has, int64_t *v)
{
    json_t *j = dm_opt(cmd, field);
    *has = j != NULL;
    if (*has && !json_is_integer(j))
        return hd_reject(d, "invalid_field", "%s: must be an integer", field), -1;
    *v = *has ? json_integer_value(j) : 0;
    return 0;
}

static int decide_add(const json_t *state, const json_t *cmd, const json_t *view,
                      hd_decision_t *out)
{
    const json_t *p = check_product(cmd, view, false, out);
    if (!p)
        return 0;
    const char *sku = dm_str(cmd, "sku");
    const char *rule_id = dm_str(cmd, "rule_id");
    const char *kind_name = dm_str(cmd, "kind");
    pr_rule_t r = {.rule_id = rule_id};
    if (check_id(out, "rule_id", rule_id))
        return 0;
    if (pr_kind_parse(kind_name, &r.kind))
        return hd_reject(out, "invalid_field", "kind: '%.32s' is not a rule kind",
                         kind_name ? kind_name : "");
    int64_t params[PR_N_PARAMS];
    bool has[PR_N_PARAMS];
    for (size_t i = 0; i < PR_N_PARAMS; i++) {
        if (opt_long(out, cmd, pr_rule_params[i], &has[i], &params[i]))
            return 0;
        if (has[i] && !pr_kind_uses(r.kind, pr_rule_params[i]))
            return hd_reject(out, "invalid_field", "%s: not used by a %s rule", pr_rule_params[i],
                             kind_name);
        if (!has[i] && pr_kind_uses(r.kind, pr_rule_params[i]))
            return hd_reject(out, "invalid_field", "%s: is required by a %s rule",
                             pr_rule_params[i], kind_name);
    }
    r.basis_points = params[0];
    r.amount_minor = params[1];
    r.threshold = params[2];
    r.cap_minor = params[3];
    if (opt_long(out, cmd, "valid_from", &r.has_from, &r.valid_from) ||
        opt_long(out, cmd, "valid_until", &r.has_until, &r.valid_until))
        return 0;
    const char *want = product_currency(p, state);
    const char *cur = dm_str(cmd, "currency");
    if (check_currency(out, sku, cur, want))
        return 0;
    r.currency = cur ? cur : want;
    if (!r.currency)
        return hd_reject(out, "invalid_field", "currency: sku '%s' has no known currency", sku);
    char why[200];
    if (pr_rule_check(&r, why, sizeof why))
        return hd_reject(out, "invalid_field", "%s", why);
    if (find_rule(state, rule_id, NULL))
        return hd_reject(out, "rule_exists", "sku '%s' already has a rule '%s'", sku, rule_id);
    if (json_array_size(json_object_get(state, "rules")) >= PRICING_RULES_MAX)
        return hd_reject(out, "too_many_rules", "sku '%s' already has %d rules", sku,
                         PRICING_RULES_MAX);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "sku", sku, "rule_id", rule_id, "kind",
                           pr_kind_name(r.kind), "currency", r.currency);
    for (size_t i = 0; i < PR_N_PARAMS; i++)
        json_object_set_new(ev, pr_rule_params[i], has[i] ? json_integer(params[i]) : json_null());
    json_object_set_new(ev, "valid_from", r.has_from ? json_integer(r.valid_from) : json_null());
    json_object_set_new(ev, "valid_until", r.has_until ? json_integer(r.valid_until) : json_null());
    hd_emit(out, PRICING_NS "PriceRuleAdded", ev);
    return 0;
}

static int decide_remove(const json_t *state, const json_t *cmd, const json_t *view,
                         hd_decision_t *out)
{
    if (!check_product(cmd, view, true, out))
        return 0;
    const char *sku = dm_str(cmd, "sku");
    const char *rule_id = dm_str(cmd, "rule_id");
    if (check_id(out, "rule_id", rule_id))
        return 0;
    if (!find_rule(state, rule_id, NULL))
        return hd_reject(out, "unknown_rule", "sku '%s' has no rule '%s'", sku, rule_id);
    hd_emit(out, PRICING_NS "PriceRuleRemoved",
            json_pack("{s:s, s:s}", "sku", sku, "rule_id", rule_id));
    return 0;
}

int pricing_decide(const json_t *state, const char *cmd_type, const json_t *cmd, const json_t *view,
                   hd_decision_t *out)
{
    if (!json_is_object(cmd))
        return -1;
    if (strcmp(cmd_type, PRICING_NS "SetListPrice") == 0)
        return decide_set(state, cmd, view, out);
    if (strcmp(cmd_type, PRICING_NS "AddPriceRule") == 0)
        return decide_add(state, cmd, view, out);
    if (strcmp(cmd_type, PRICING_NS "RemovePriceRule") == 0)
        return decide_remove(state, cmd, view, out);
    return hd_reject(out, "unknown_command", "'%.128s' is not a pricing command", cmd_type);
}

static json_t *new_state(const json_t *payload)
{
    return json_pack("{s:s, s:s, s:n, s:[], s:I}", "sku", dm_str(payload, "sku") ?: "", "currency",
                     dm_str(payload, "currency") ?: "", "list_amount_minor", "rules", "version",
                     (json_int_t)0);
}

/* a copy of field of src, or null */
static json_t *field_or_null(const json_t *src, const char *field)
{
    json_t *v = json_object_get(src, field);
    return v ? json_deep_copy(v) : json_null();
}

json_t *pricing_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strcmp(event_type, PRICING_NS "PriceSet") == 0) {
        if (!state)
            state = new_state(payload);
        json_object_set_new(state, "list_amount_minor", field_or_null(payload, "amount_minor"));
        json_object_set_new(state, "currency", json_string(dm_str(payload, "currency") ?: ""));
    } else if (strcmp(event_type, PRICING_NS "PriceRuleAdded") == 0) {
        if (!state)
            state = new_state(payload);
        static const char *const fields[] = {"rule_id",      "kind",         "currency",
                                             "basis_points", "amount_minor", "threshold",
                                             "cap_minor",    "valid_from",   "valid_until"};
        json_t *rule = json_object();
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            json_object_set_new(rule, fields[i], field_or_null(payload, fields[i]));
        json_array_append_new(json_object_get(state, "rules"), rule);
    } else if (strcmp(event_type, PRICING_NS "PriceRuleRemoved") == 0) {
        size_t i;
        const char *id = dm_str(payload, "rule_id");
        if (state && id && find_rule(state, id, &i))
            json_array_remove(json_object_get(state, "rules"), i);
    }
    return state;
}
