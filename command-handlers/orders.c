#include "orders.h"
#include "catalog_view.h"
#include "dm_json.h"
#include "pricing_rules.h"
#include <stdio.h>
#include <string.h>

#define ID_MAX 128

/* --- the prices view ---------------------------------------------------------------------- */

void orders_pricing_fold(json_t *view, const char *event_type, const json_t *event)
{
    const char *sku = dm_str(event, "sku");
    if (!sku || strncmp(event_type, "eventshop.pricing.", 18))
        return;
    const char *name = event_type + 18;
    json_t *prices = json_object_get(view, "prices");
    if (!prices) {
        prices = json_object();
        json_object_set_new(view, "prices", prices);
    }
    json_t *p = json_object_get(prices, sku);
    if (!p) {
        p = json_pack("{s:n, s:s, s:{}}", "amount_minor", "currency", "", "rules");
        json_object_set_new(prices, sku, p);
    }
    if (!strcmp(name, "PriceSet")) {
        json_object_set(p, "amount_minor", json_object_get(event, "amount_minor"));
        json_object_set_new(p, "currency", json_string(dm_str(event, "currency") ?: ""));
    } else if (!strcmp(name, "PriceRuleAdded") && dm_str(event, "rule_id")) {
        json_t *rule = json_deep_copy(event);
        json_object_del(rule, "metadata");
        json_object_set_new(json_object_get(p, "rules"), dm_str(event, "rule_id"), rule);
    } else if (!strcmp(name, "PriceRuleRemoved") && dm_str(event, "rule_id")) {
        json_object_del(json_object_get(p, "rules"), dm_str(event, "rule_id"));
    }
}

/* The effective unit price of sku at at_ms: 0 with *amount and *currency (borrowed), or -1
 * when it has no list price. */
static int price_of(const json_t *view, const char *sku, json_int_t at_ms, json_int_t *amount,
                    const char **currency)
{
    const json_t *p = json_object_get(json_object_get(view, "prices"), sku);
    if (!p || !json_is_integer(json_object_get(p, "amount_minor")))
        return -1;
    const json_t *rules = json_object_get(p, "rules");
    pr_rule_t rs[64];
    size_t n = 0;
    const char *k;
    json_t *r;
    json_object_foreach((json_t *)rules, k, r)
    {
        if (n < sizeof rs / sizeof rs[0] && pr_rule_from_json(r, &rs[n]) == 0)
            n++;
    }
    pr_result_t res;
    *currency = dm_str(p, "currency");
    if (pr_effective_price(dm_int(p, "amount_minor"), *currency, rs, n, PR_STOCK_UNKNOWN, at_ms,
                           &res) != 0)
        return -1;
    *amount = res.amount_minor;
    return 0;
}

/* --- decisions ---------------------------------------------------------------------------- */

static json_t *skus_of(const json_t *state)
{
    json_t *skus = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(state, "lines"), i, l)
        json_array_append_new(skus, json_string(dm_str(l, "sku")));
    return skus;
}

static json_t *lines_public(const json_t *state)
{
    json_t *lines = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(state, "lines"), i, l)
    {
        json_array_append_new(
            lines, json_pack("{s:s, s:s, s:I, s:I}", "sku", dm_str(l, "sku"), "vendor_id",
                             dm_str(l, "vendor_id") ?: "", "quantity", dm_int(l, "quantity"),
                             "unit_amount_minor", dm_int(l, "unit_amount_minor")));
    }
    return lines;
}

static json_t *address_of(const json_t *state)
{
    json_t *a = json_object_get(state, "shipping_address_enc");
    return a ? json_incref(a) : json_null();
}

static int decide_place(const json_t *state, const json_t *cmd, const json_t *view,
                        hd_decision_t *d)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *order = dm_str(cmd, "order_id"), *customer = dm_str(cmd, "customer_id");
    const char *role = dm_str(meta, "actor_role"), *actor = dm_str(meta, "actor");
    if (state)
        return hd_reject(d, "order_exists", "order '%.128s' exists", order);
    if (!customer || !*customer || strlen(customer) > ID_MAX)
        return hd_reject(d, "invalid_field", "customer_id: must be 1 to %d characters", ID_MAX);
    if (!role || (strcmp(role, "admin") && strcmp(role, "customer")))
        return hd_reject(d, "forbidden", "only customers place orders");
    if (!strcmp(role, "customer") && (!actor || strcmp(actor, customer)))
        return hd_reject(d, "not_owner", "customer_id '%.64s' is not the caller", customer);
    const json_t *lines = json_object_get(cmd, "lines");
    size_t n = json_array_size(lines);
    if (n < 1 || n > ORDERS_MAX_LINES)
        return hd_reject(d, "invalid_field", "lines: must hold 1 to %d lines", ORDERS_MAX_LINES);
    json_int_t at = dm_int(meta, "issued_at"), total = 0;
    const char *currency = NULL;
    json_t *out_lines = json_array();
    for (size_t i = 0; i < n; i++) {
        const json_t *l = json_array_get(lines, i);
        const char *sku = dm_str(l, "sku");
        json_int_t q = dm_int(l, "quantity");
        if (!sku || !*sku)
            goto invalid_sku;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(sku, dm_str(json_array_get(lines, j), "sku"))) {
                json_decref(out_lines);
                return hd_reject(d, "invalid_field", "lines[%zu].sku: '%.64s' appears twice", i,
                                 sku);
            }
        }
        if (q < 1 || q > ORDERS_MAX_QTY) {
            json_decref(out_lines);
            return hd_reject(d, "invalid_quantity", "lines[%zu].quantity: must be 1 to %d", i,
                             ORDERS_MAX_QTY);
        }
        if (!catalog_view_product(view, sku)) {
            json_decref(out_lines);
            return hd_reject(d, "unknown_sku", "no product with sku '%.64s' in the catalog", sku);
        }
        const char *vendor = catalog_view_listed_owner(view, sku);
        if (!vendor) {
            json_decref(out_lines);
            return hd_reject(d, "delisted", "sku '%.64s' is delisted", sku);
        }
        json_int_t unit;
        const char *cur;
        if (price_of(view, sku, at, &unit, &cur) != 0) {
            json_decref(out_lines);
            return hd_reject(d, "no_price", "sku '%.64s' has no price", sku);
        }
        if (currency && strcmp(currency, cur)) {
            json_decref(out_lines);
            return hd_reject(d, "mixed_currency", "sku '%.64s' is priced in %s, not %s", sku, cur,
                             currency);
        }
        currency = cur;
        total += unit * q;
        json_array_append_new(out_lines,
                              json_pack("{s:s, s:s, s:I, s:I}", "sku", sku, "vendor_id", vendor,
                                        "quantity", q, "unit_amount_minor", unit));
    }
    json_t *addr = json_object_get(cmd, "shipping_address_enc");
    hd_emit(d, ORDERS_NS "OrderPlaced",
            json_pack("{s:s, s:s, s:o, s:I, s:s, s:O, s:I, s:I}", "order_id", order, "customer_id",
                      customer, "lines", out_lines, "total_minor", total, "currency", currency,
                      "shipping_address_enc", addr ? addr : json_null(), "reserve_by",
                      dm_int(cmd, "reserve_by"), "pay_by", dm_int(cmd, "pay_by")));
    return 0;
invalid_sku:
    json_decref(out_lines);
    return hd_reject(d, "invalid_field", "lines: every line needs a sku");
}

static int decide_stock(const json_t *state, const json_t *cmd, bool reserved, hd_decision_t *d)
{
    const char *order = dm_str(cmd, "order_id"), *sku = dm_str(cmd, "sku");
    if (!dm_is_status(state, "placed"))
        return 0; /* late news for a cancelled or already reserved order: nothing to do */
    const json_t *line = NULL;
    size_t i, left = 0;
    json_t *l;
    json_array_foreach(json_object_get(state, "lines"), i, l)
    {
        if (sku && !strcmp(dm_str(l, "sku"), sku))
            line = l;
        else if (!json_is_true(json_object_get(l, "reserved")))
            left++;
    }
    if (!line)
        return hd_reject(d, "invalid_field", "order '%.128s' has no line of sku '%.64s'", order,
                         sku ? sku : "");
    if (!reserved) {
        hd_emit(d, ORDERS_NS "OrderCancelled",
                json_pack("{s:s, s:s, s:s, s:o, s:b}", "order_id", order, "customer_id",
                          dm_str(state, "customer_id"), "reason", "out_of_stock", "skus",
                          skus_of(state), "refund", 0));
        return 0;
    }
    if (json_is_true(json_object_get(line, "reserved")))
        return 0;
    hd_emit(d, ORDERS_NS "OrderLineReserved",
            json_pack("{s:s, s:s}", "order_id", order, "sku", sku));
    if (left == 0)
        hd_emit(d, ORDERS_NS "OrderStockReserved",
                json_pack("{s:s, s:s, s:I, s:s}", "order_id", order, "customer_id",
                          dm_str(state, "customer_id"), "total_minor", dm_int(state, "total_minor"),
                          "currency", dm_str(state, "currency")));
    return 0;
}

static int decide_confirm(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    const char *order = dm_str(cmd, "order_id"), *ref = dm_str(cmd, "gateway_ref") ?: "";
    if (dm_is_status(state, "cancelled")) {
        if (json_is_true(json_object_get(state, "paid")))
            return 0; /* its refund was already asked for */
        hd_emit(d, ORDERS_NS "OrderRefundRequested",
                json_pack("{s:s, s:s, s:s}", "order_id", order, "customer_id",
                          dm_str(state, "customer_id"), "gateway_ref", ref));
        return hd_reject_keep_events(
            d, "order_cancelled", "order '%.128s' was cancelled: its payment is refunded", order);
    }
    if (!dm_is_status(state, "stock_reserved")) {
        if (json_is_true(json_object_get(state, "paid")))
            return 0; /* confirmed already */
        return hd_reject(d, "invalid_state", "order '%.128s' is %s", order,
                         dm_str(state, "status"));
    }
    hd_emit(d, ORDERS_NS "OrderConfirmed",
            json_pack("{s:s, s:s, s:s, s:o, s:I, s:s, s:o}", "order_id", order, "customer_id",
                      dm_str(state, "customer_id"), "gateway_ref", ref, "lines",
                      lines_public(state), "total_minor", dm_int(state, "total_minor"), "currency",
                      dm_str(state, "currency"), "shipping_address_enc", address_of(state)));
    return 0;
}

static int decide_cancel(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *order = dm_str(cmd, "order_id"), *reason = dm_str(cmd, "reason") ?: "";
    const char *role = dm_str(meta, "actor_role") ?: "", *actor = dm_str(meta, "actor") ?: "";
    bool admin = !strcmp(role, "admin");
    if (!admin && strcmp(actor, dm_str(state, "customer_id")))
        return hd_reject(d, "not_owner", "order '%.128s' is not the caller's", order);
    if (!admin && strcmp(reason, "customer"))
        return hd_reject(d, "invalid_field", "reason: a customer cancels with 'customer'");
    const char *status = dm_str(state, "status");
    if (!strcmp(status, "cancelled") || !strcmp(status, "delivered"))
        return hd_reject(d, "order_final", "order '%.128s' is %s", order, status);
    if (!strcmp(status, "shipped"))
        return hd_reject(d, "already_shipped", "order '%.128s' is shipped", order);
    bool system = !strcmp(reason, "deadline") || !strcmp(reason, "payment_declined") ||
                  !strcmp(reason, "out_of_stock");
    if (system && !strcmp(status, "confirmed"))
        return 0; /* the saga's late deadline or decline: the order was paid meanwhile */
    /* committed to dispatch: the parcel may be on its way, nothing can stop it any more */
    if (json_is_true(json_object_get(state, "dispatch_approved")))
        return hd_reject(d, "already_shipped", "order '%.128s' is being dispatched", order);
    if (!*reason || strlen(reason) > 64)
        return hd_reject(d, "invalid_field", "reason: must be 1 to 64 characters");
    hd_emit(d, ORDERS_NS "OrderCancelled",
            json_pack("{s:s, s:s, s:s, s:o, s:b}", "order_id", order, "customer_id",
                      dm_str(state, "customer_id"), "reason", reason, "skus", skus_of(state),
                      "refund", json_is_true(json_object_get(state, "paid"))));
    return 0;
}

/* The single owner settles the race between a cancel and the dispatch: whichever of the two
 * this decider sees first wins, and the other is refused (a cancel: already_shipped) or
 * ignored (an approval after the cancel: no event, the shipment is never requested). */
static int decide_approve_dispatch(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    const char *order = dm_str(cmd, "order_id");
    const char *status = dm_str(state, "status");
    if (!strcmp(status, "cancelled") || !strcmp(status, "shipped") ||
        !strcmp(status, "delivered") || json_is_true(json_object_get(state, "dispatch_approved")))
        return 0; /* the cancel won, or approved already: nothing to do */
    if (strcmp(status, "confirmed"))
        return hd_reject(d, "invalid_state", "order '%.128s' is %s, not confirmed", order, status);
    json_t *lines = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(state, "lines"), i, l) json_array_append_new(
        lines, json_pack("{s:s, s:I}", "sku", dm_str(l, "sku"), "quantity", dm_int(l, "quantity")));
    hd_emit(d, ORDERS_NS "OrderDispatchApproved",
            json_pack("{s:s, s:s, s:o, s:o}", "order_id", order, "customer_id",
                      dm_str(state, "customer_id"), "lines", lines, "shipping_address_enc",
                      address_of(state)));
    return 0;
}

int orders_decide(const json_t *state, const char *cmd_type, const json_t *cmd, const json_t *view,
                  hd_decision_t *out)
{
    if (strncmp(cmd_type, ORDERS_NS, strlen(ORDERS_NS)))
        return hd_reject(out, "unknown_command", "'%.128s' is not an orders command", cmd_type);
    const char *name = cmd_type + strlen(ORDERS_NS);
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *order = dm_str(cmd, "order_id"), *agg = dm_str(meta, "aggregate_id");
    if (!order || !*order || strlen(order) > ID_MAX || !agg || strcmp(order, agg))
        return hd_reject(out, "invalid_field", "metadata.aggregate_id: '%.64s' is not the order_id",
                         agg ? agg : "");
    if (!strcmp(name, "PlaceOrder"))
        return decide_place(state, cmd, view, out);
    if (!state)
        return hd_reject(out, "unknown_order", "no order '%.128s'", order);
    if (!strcmp(name, "CancelOrder"))
        return decide_cancel(state, cmd, out);
    const char *role = dm_str(meta, "actor_role");
    if (!role || strcmp(role, "admin"))
        return hd_reject(out, "forbidden", "only the order saga may send %s", name);
    if (!strcmp(name, "RecordStockReserved"))
        return decide_stock(state, cmd, true, out);
    if (!strcmp(name, "RecordStockRejected"))
        return decide_stock(state, cmd, false, out);
    if (!strcmp(name, "ConfirmOrder"))
        return decide_confirm(state, cmd, out);
    if (!strcmp(name, "ApproveDispatch"))
        return decide_approve_dispatch(state, cmd, out);
    if (!strcmp(name, "MarkShipped")) {
        if (!dm_is_status(state, "confirmed"))
            return dm_is_status(state, "shipped") || dm_is_status(state, "delivered")
                       ? 0
                       : hd_reject(out, "invalid_state", "order '%.128s' is %s", order,
                                   dm_str(state, "status"));
        hd_emit(out, ORDERS_NS "OrderShipped",
                json_pack("{s:s, s:s, s:s, s:o}", "order_id", order, "customer_id",
                          dm_str(state, "customer_id"), "tracking_number",
                          dm_str(cmd, "tracking_number") ?: "", "skus", skus_of(state)));
        return 0;
    }
    if (!strcmp(name, "MarkDelivered")) {
        if (!dm_is_status(state, "shipped"))
            return dm_is_status(state, "delivered")
                       ? 0
                       : hd_reject(out, "invalid_state", "order '%.128s' is %s", order,
                                   dm_str(state, "status"));
        hd_emit(out, ORDERS_NS "OrderDelivered",
                json_pack("{s:s, s:s}", "order_id", order, "customer_id",
                          dm_str(state, "customer_id")));
        return 0;
    }
    return hd_reject(out, "unknown_command", "'%.128s' is not an orders command", cmd_type);
}

/* --- evolution ---------------------------------------------------------------------------- */

json_t *orders_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strncmp(event_type, ORDERS_NS, strlen(ORDERS_NS)))
        return state;
    const char *name = event_type + strlen(ORDERS_NS);
    if (!strcmp(name, "OrderPlaced")) {
        json_decref(state);
        json_t *lines = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(payload, "lines"), i, l)
        {
            json_t *c = json_deep_copy(l);
            json_object_set_new(c, "reserved", json_false());
            json_array_append_new(lines, c);
        }
        json_t *addr = json_object_get(payload, "shipping_address_enc");
        return json_pack("{s:s, s:s, s:s, s:o, s:I, s:s, s:O, s:I, s:I, s:b, s:s, s:s, s:b, s:I}",
                         "order_id", dm_str(payload, "order_id") ?: "", "customer_id",
                         dm_str(payload, "customer_id") ?: "", "status", "placed", "lines", lines,
                         "total_minor", dm_int(payload, "total_minor"), "currency",
                         dm_str(payload, "currency") ?: "", "shipping_address_enc",
                         addr ? addr : json_null(), "reserve_by", dm_int(payload, "reserve_by"),
                         "pay_by", dm_int(payload, "pay_by"), "paid", 0, "gateway_ref", "",
                         "cancel_reason", "", "dispatch_approved", 0, "version", (json_int_t)0);
    }
    if (!state)
        return NULL;
    if (!strcmp(name, "OrderLineReserved")) {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(state, "lines"), i, l)
        {
            if (!strcmp(dm_str(l, "sku") ?: "", dm_str(payload, "sku") ?: ""))
                json_object_set_new(l, "reserved", json_true());
        }
    } else if (!strcmp(name, "OrderStockReserved")) {
        json_object_set_new(state, "status", json_string("stock_reserved"));
    } else if (!strcmp(name, "OrderConfirmed")) {
        json_object_set_new(state, "status", json_string("confirmed"));
        json_object_set_new(state, "paid", json_true());
        json_object_set_new(state, "gateway_ref",
                            json_string(dm_str(payload, "gateway_ref") ?: ""));
    } else if (!strcmp(name, "OrderRefundRequested")) {
        json_object_set_new(state, "paid", json_true()); /* captured, and being refunded */
    } else if (!strcmp(name, "OrderCancelled")) {
        json_object_set_new(state, "status", json_string("cancelled"));
        json_object_set_new(state, "cancel_reason", json_string(dm_str(payload, "reason") ?: ""));
    } else if (!strcmp(name, "OrderDispatchApproved")) {
        json_object_set_new(state, "dispatch_approved", json_true());
    } else if (!strcmp(name, "OrderShipped")) {
        json_object_set_new(state, "status", json_string("shipped"));
    } else if (!strcmp(name, "OrderDelivered")) {
        json_object_set_new(state, "status", json_string("delivered"));
    }
    return state;
}
