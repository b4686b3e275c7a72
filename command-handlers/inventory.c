#include "inventory.h"
#include "catalog_view.h"
#include "dm_json.h"
#include <string.h>

#define ORDER_ID_MAX 128

/* the facts every decision starts from */
struct stock {
    const char *sku;
    const char *vendor_id; /* the catalog's owner, "" if unknown */
    json_int_t on_hand, reserved;
    const json_t *reservations; /* order id -> units, borrowed, may be NULL */
    const json_t *closed;       /* order id -> "released" | "committed", may be NULL */
};

/* Emits an event of short name type for s after the change: payload gets sku, vendor_id,
 * on_hand and reserved. extra is stolen (its members are added). */
static void emit(hd_decision_t *d, const char *type, const struct stock *s, json_int_t on_hand,
                 json_int_t reserved, json_t *extra)
{
    char full[96];
    snprintf(full, sizeof full, INVENTORY_NS "%s", type);
    json_t *p = json_pack("{s:s, s:s, s:I, s:I}", "sku", s->sku, "vendor_id", s->vendor_id,
                          "on_hand", on_hand, "reserved", reserved);
    json_object_update(p, extra);
    json_decref(extra);
    hd_emit(d, full, p);
}

static int check_quantity(hd_decision_t *d, const char *field, const json_t *cmd)
{
    json_t *q = json_object_get(cmd, field);
    if (!json_is_integer(q) || json_integer_value(q) < 1 ||
        json_integer_value(q) > INVENTORY_MAX_QUANTITY)
        return hd_reject(d, "invalid_quantity", "%s: must be 1 to %d", field,
                         INVENTORY_MAX_QUANTITY),
               -1;
    return 0;
}

static int check_order_id(hd_decision_t *d, const char *order_id)
{
    if (!order_id || !*order_id || strlen(order_id) > ORDER_ID_MAX)
        return hd_reject(d, "invalid_field", "order_id: must be 1 to %d characters", ORDER_ID_MAX),
               -1;
    return 0;
}

/* 0 when the actor may receive or adjust: an admin, or the vendor owning the sku */
static int check_owner(hd_decision_t *d, const json_t *meta, const struct stock *s)
{
    if (dm_is_admin(meta))
        return 0;
    const char *role = dm_str(meta, "actor_role");
    const char *actor_vendor = dm_str(meta, "actor_vendor");
    if (role && !strcmp(role, "vendor") && actor_vendor && !strcmp(actor_vendor, s->vendor_id))
        return 0;
    if (role && !strcmp(role, "vendor"))
        hd_reject(d, "not_owner", "sku '%.64s' belongs to vendor '%.64s', not to '%.64s'", s->sku,
                  s->vendor_id, actor_vendor ? actor_vendor : "");
    else
        hd_reject(d, "not_owner", "role '%.16s' may not manage the stock of sku '%.64s'",
                  role ? role : "", s->sku);
    return -1;
}

static int check_admin(hd_decision_t *d, const json_t *meta)
{
    if (dm_is_admin(meta))
        return 0;
    const char *role = dm_str(meta, "actor_role");
    hd_reject(d, "forbidden", "role '%.16s' may not reserve, release or commit stock",
              role ? role : "");
    return -1;
}

static int decide_receive(const struct stock *s, const json_t *cmd, bool delisted, hd_decision_t *d)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    if (check_owner(d, meta, s) || check_quantity(d, "quantity", cmd))
        return 0;
    if (delisted)
        return hd_reject(d, "delisted", "sku '%.64s' is delisted", s->sku);
    json_int_t q = dm_int(cmd, "quantity");
    emit(d, "StockReceived", s, s->on_hand + q, s->reserved, json_pack("{s:I}", "quantity", q));
    return 0;
}

static int decide_adjust(const struct stock *s, const json_t *cmd, hd_decision_t *d)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    if (check_owner(d, meta, s))
        return 0;
    json_t *dj = json_object_get(cmd, "delta");
    json_int_t delta = json_integer_value(dj);
    if (!json_is_integer(dj) || delta == 0 || delta > INVENTORY_MAX_QUANTITY ||
        delta < -INVENTORY_MAX_QUANTITY)
        return hd_reject(d, "invalid_quantity", "delta: must be non-zero, -%d to %d",
                         INVENTORY_MAX_QUANTITY, INVENTORY_MAX_QUANTITY);
    const char *reason = dm_str(cmd, "reason");
    if (!reason ||
        (strcmp(reason, "count") && strcmp(reason, "damage") && strcmp(reason, "return")))
        return hd_reject(d, "invalid_field", "reason: '%.32s' is not count, damage or return",
                         reason ? reason : "");
    json_int_t on_hand = s->on_hand + delta;
    if (on_hand < s->reserved)
        return hd_reject(d, "insufficient_stock",
                         "sku '%.64s': a delta of %lld would leave %lld on hand, below the %lld "
                         "reserved; %lld available",
                         s->sku, (long long)delta, (long long)on_hand, (long long)s->reserved,
                         (long long)(s->on_hand - s->reserved));
    emit(d, "StockAdjusted", s, on_hand, s->reserved,
         json_pack("{s:I, s:s}", "delta", delta, "reason", reason));
    return 0;
}

static int decide_reserve(const struct stock *s, const json_t *cmd, bool delisted, hd_decision_t *d)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *order = dm_str(cmd, "order_id");
    if (check_admin(d, meta) || check_order_id(d, order) || check_quantity(d, "quantity", cmd))
        return 0;
    json_int_t q = dm_int(cmd, "quantity");
    json_t *held = json_object_get(s->reservations, order);
    if (held) { /* the same reservation again: harmless */
        if (json_integer_value(held) == q)
            return 0;
        return hd_reject(d, "reservation_exists",
                         "order '%.128s' already holds %lld of sku '%.64s'", order,
                         (long long)json_integer_value(held), s->sku);
    }
    const char *closed = dm_str(s->closed, order);
    if (closed)
        return hd_reject(d, "reservation_closed",
                         "the reservation of order '%.128s' on sku '%.64s' is %s", order, s->sku,
                         closed);
    if (delisted)
        return hd_reject(d, "delisted", "sku '%.64s' is delisted", s->sku);
    json_int_t available = s->on_hand - s->reserved;
    if (q > available) {
        emit(
            d, "StockReservationRejected", s, s->on_hand, s->reserved,
            json_pack("{s:s, s:I, s:I}", "order_id", order, "quantity", q, "available", available));
        return hd_reject_keep_events(d, "insufficient_stock",
                                     "sku '%.64s': %lld requested, %lld available", s->sku,
                                     (long long)q, (long long)available);
    }
    emit(d, "StockReserved", s, s->on_hand, s->reserved + q,
         json_pack("{s:s, s:I}", "order_id", order, "quantity", q));
    return 0;
}

/* ReleaseStock and CommitStock: close the order's open reservation */
static int decide_close(const struct stock *s, const json_t *cmd, bool commit, hd_decision_t *d)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *order = dm_str(cmd, "order_id");
    if (check_admin(d, meta) || check_order_id(d, order))
        return 0;
    const char *want = commit ? "committed" : "released";
    json_t *held = json_object_get(s->reservations, order);
    if (!held) {
        const char *closed = dm_str(s->closed, order);
        if (closed && !strcmp(closed, want))
            return 0; /* the same command again: harmless */
        if (closed)
            return hd_reject(d, "reservation_closed",
                             "the reservation of order '%.128s' on sku '%.64s' is %s", order,
                             s->sku, closed);
        return hd_reject(d, "unknown_reservation", "order '%.128s' holds no stock of sku '%.64s'",
                         order, s->sku);
    }
    json_int_t q = json_integer_value(held);
    json_t *extra = json_pack("{s:s, s:I}", "order_id", order, "quantity", q);
    if (commit)
        emit(d, "StockCommitted", s, s->on_hand - q, s->reserved - q, extra);
    else
        emit(d, "StockReleased", s, s->on_hand, s->reserved - q, extra);
    return 0;
}

int inventory_decide(const json_t *state, const char *cmd_type, const json_t *cmd,
                     const json_t *view, hd_decision_t *out)
{
    if (strncmp(cmd_type, INVENTORY_NS, strlen(INVENTORY_NS)))
        return hd_reject(out, "unknown_command", "'%.128s' is not an inventory command", cmd_type);
    const char *name = cmd_type + strlen(INVENTORY_NS);
    struct stock s = {0};
    s.sku = dm_str(cmd, "sku");
    const char *agg = dm_str(json_object_get(cmd, "metadata"), "aggregate_id");
    if (!s.sku || !agg || strcmp(s.sku, agg))
        return hd_reject(out, "invalid_field",
                         "metadata.aggregate_id: '%.64s' is not the sku "
                         "'%.64s'",
                         agg ? agg : "", s.sku ? s.sku : "");
    const json_t *product = catalog_view_product(view, s.sku);
    if (!product)
        return hd_reject(out, "unknown_sku", "no product with sku '%.64s' in the catalog", s.sku);
    s.vendor_id = dm_str(product, "vendor_id");
    if (!s.vendor_id)
        s.vendor_id = "";
    bool delisted = !catalog_view_listed_owner(view, s.sku);
    s.on_hand = dm_int(state, "on_hand");
    s.reserved = dm_int(state, "reserved");
    s.reservations = json_object_get(state, "reservations");
    s.closed = json_object_get(state, "closed");

    if (!strcmp(name, "ReceiveStock"))
        return decide_receive(&s, cmd, delisted, out);
    if (!strcmp(name, "AdjustStock"))
        return decide_adjust(&s, cmd, out);
    if (!strcmp(name, "ReserveStock"))
        return decide_reserve(&s, cmd, delisted, out);
    if (!strcmp(name, "ReleaseStock"))
        return decide_close(&s, cmd, false, out);
    if (!strcmp(name, "CommitStock"))
        return decide_close(&s, cmd, true, out);
    return hd_reject(out, "unknown_command", "'%.128s' is not an inventory command", cmd_type);
}

json_t *inventory_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strncmp(event_type, INVENTORY_NS, strlen(INVENTORY_NS)))
        return state;
    const char *name = event_type + strlen(INVENTORY_NS);
    if (!state)
        state =
            json_pack("{s:s, s:s, s:I, s:I, s:{}, s:{}, s:I}", "sku", dm_str(payload, "sku") ?: "",
                      "vendor_id", "", "on_hand", (json_int_t)0, "reserved", (json_int_t)0,
                      "reservations", "closed", "version", (json_int_t)0);
    /* every event carries the resulting counts */
    json_object_set_new(state, "on_hand", json_integer(dm_int(payload, "on_hand")));
    json_object_set_new(state, "reserved", json_integer(dm_int(payload, "reserved")));
    const char *vendor = dm_str(payload, "vendor_id");
    if (vendor && *vendor)
        json_object_set_new(state, "vendor_id", json_string(vendor));
    const char *order = dm_str(payload, "order_id");
    json_t *open = json_object_get(state, "reservations");
    json_t *closed = json_object_get(state, "closed");
    if (!order || !open || !closed)
        return state;
    if (!strcmp(name, "StockReserved")) {
        json_object_set_new(open, order, json_integer(dm_int(payload, "quantity")));
    } else if (!strcmp(name, "StockReleased") || !strcmp(name, "StockCommitted")) {
        json_object_del(open, order);
        json_object_set_new(closed, order,
                            json_string(!strcmp(name, "StockReleased") ? "released" : "committed"));
    }
    return state;
}
