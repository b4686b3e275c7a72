#include "catalog.h"
#include "catalog_view.h"
#include "inventory.h"
#include <criterion/criterion.h>
#include <string.h>

#define NS INVENTORY_NS

static json_t *view;

static void setup(void)
{
    view = json_object();
    json_t *ev = json_pack("{s:s, s:s}", "sku", "AB-1", "vendor_id", "v1");
    catalog_view_fold(view, CATALOG_NS "ProductListed", ev);
    json_object_set_new(ev, "sku", json_string("OLD-1"));
    catalog_view_fold(view, CATALOG_NS "ProductListed", ev);
    catalog_view_fold(view, CATALOG_NS "ProductDelisted", ev);
    json_decref(ev);
}

static void teardown(void)
{
    json_decref(view);
}

TestSuite(inventory, .init = setup, .fini = teardown);

static json_t *meta(const char *role, const char *vendor, const char *sku)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?}", "command_id",
                     "6f1c1f4e-0000-4000-8000-000000000001", "correlation_id", "c", "aggregate_id",
                     sku, "issued_at", (json_int_t)1700000000000, "actor", "u1", "actor_role", role,
                     "actor_vendor", vendor);
}

static json_t *receive(const char *role, const char *vendor, const char *sku, json_int_t q)
{
    return json_pack("{s:o, s:s, s:I}", "metadata", meta(role, vendor, sku), "sku", sku, "quantity",
                     q);
}

static json_t *adjust(const char *role, const char *vendor, json_int_t delta, const char *why)
{
    return json_pack("{s:o, s:s, s:I, s:s}", "metadata", meta(role, vendor, "AB-1"), "sku", "AB-1",
                     "delta", delta, "reason", why);
}

static json_t *reserve(const char *role, const char *order, json_int_t q)
{
    return json_pack("{s:o, s:s, s:s, s:I}", "metadata", meta(role, NULL, "AB-1"), "sku", "AB-1",
                     "order_id", order, "quantity", q);
}

static json_t *closing(const char *order)
{
    return json_pack("{s:o, s:s, s:s}", "metadata", meta("admin", NULL, "AB-1"), "sku", "AB-1",
                     "order_id", order);
}

/* Decides cmd (stolen) against *state; on events evolves *state. Returns the reason or NULL. */
static const char *run(json_t **state, const char *type, json_t *cmd, hd_decision_t *d,
                       size_t *nevents)
{
    hd_decision_init(d);
    cr_assert_eq(inventory_decide(*state, type, cmd, view, d), 0);
    json_decref(cmd);
    size_t i;
    json_t *e;
    json_array_foreach(d->events, i, e)
    {
        *state = inventory_evolve(*state, json_string_value(json_object_get(e, "type")),
                                  json_object_get(e, "payload"));
    }
    if (nevents)
        *nevents = json_array_size(d->events);
    return d->reason;
}

static void ok(json_t **state, const char *type, json_t *cmd, size_t want_events)
{
    hd_decision_t d;
    size_t n = 0;
    const char *r = run(state, type, cmd, &d, &n);
    cr_assert_null(r, "%s rejected: %s %s", type, r, d.detail);
    cr_assert_eq(n, want_events, "%s: %zu events, want %zu", type, n, want_events);
    hd_decision_release(&d);
}

static void rejected(json_t **state, const char *type, json_t *cmd, const char *reason,
                     const char *detail_part)
{
    hd_decision_t d;
    const char *r = run(state, type, cmd, &d, NULL);
    cr_assert(r, "%s accepted, want %s", type, reason);
    cr_assert_str_eq(r, reason, "detail: %s", d.detail);
    if (detail_part)
        cr_assert(strstr(d.detail, detail_part), "detail '%s' lacks '%s'", d.detail, detail_part);
    hd_decision_release(&d);
}

static void counts(const json_t *state, json_int_t on_hand, json_int_t reserved)
{
    cr_assert_eq(json_integer_value(json_object_get(state, "on_hand")), on_hand);
    cr_assert_eq(json_integer_value(json_object_get(state, "reserved")), reserved);
}

Test(inventory, owner_and_admin_receive)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("vendor", "v1", "AB-1", 5), 1);
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 3), 1);
    counts(s, 8, 0);
    cr_assert_str_eq(json_string_value(json_object_get(s, "vendor_id")), "v1");
    json_decref(s);
}

Test(inventory, other_vendor_and_customer_may_not_receive_or_adjust)
{
    json_t *s = NULL;
    rejected(&s, NS "ReceiveStock", receive("vendor", "v2", "AB-1", 5), "not_owner", "'v1'");
    rejected(&s, NS "ReceiveStock", receive("customer", NULL, "AB-1", 5), "not_owner", NULL);
    rejected(&s, NS "AdjustStock", adjust("vendor", "v2", 1, "count"), "not_owner", NULL);
    cr_assert_null(s);
}

Test(inventory, unknown_sku_is_rejected)
{
    json_t *s = NULL;
    rejected(&s, NS "ReceiveStock", receive("admin", NULL, "NOPE", 5), "unknown_sku", "'NOPE'");
}

Test(inventory, delisted_sku_receives_nothing)
{
    json_t *s = NULL;
    rejected(&s, NS "ReceiveStock", receive("admin", NULL, "OLD-1", 5), "delisted", NULL);
}

Test(inventory, quantities_are_bounded)
{
    json_t *s = NULL;
    rejected(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 0), "invalid_quantity", NULL);
    rejected(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", -3), "invalid_quantity", NULL);
    rejected(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", INVENTORY_MAX_QUANTITY + 1),
             "invalid_quantity", NULL);
    rejected(&s, NS "AdjustStock", adjust("admin", NULL, 0, "count"), "invalid_quantity", NULL);
    rejected(&s, NS "ReserveStock", reserve("admin", "o1", 0), "invalid_quantity", NULL);
}

Test(inventory, adjust_needs_a_known_reason)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 5), 1);
    rejected(&s, NS "AdjustStock", adjust("admin", NULL, -1, "theft"), "invalid_field", "reason");
    ok(&s, NS "AdjustStock", adjust("vendor", "v1", -2, "damage"), 1);
    ok(&s, NS "AdjustStock", adjust("admin", NULL, 1, "return"), 1);
    counts(s, 4, 0);
    json_decref(s);
}

Test(inventory, adjust_never_makes_on_hand_negative_nor_below_reserved)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 5), 1);
    rejected(&s, NS "AdjustStock", adjust("admin", NULL, -6, "count"), "insufficient_stock",
             "5 available");
    ok(&s, NS "ReserveStock", reserve("admin", "o1", 3), 1);
    rejected(&s, NS "AdjustStock", adjust("admin", NULL, -3, "damage"), "insufficient_stock",
             "2 available");
    ok(&s, NS "AdjustStock", adjust("admin", NULL, -2, "damage"), 1);
    counts(s, 3, 3);
    json_decref(s);
}

Test(inventory, rejects_reservation_beyond_available)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 2), 1);
    ok(&s, NS "ReserveStock", reserve("admin", "o1", 1), 1);
    hd_decision_t d;
    size_t n = 0;
    const char *r = run(&s, NS "ReserveStock", reserve("admin", "o2", 2), &d, &n);
    cr_assert_str_eq(r, "insufficient_stock");
    cr_assert(strstr(d.detail, "2 requested, 1 available"), "%s", d.detail);
    cr_assert(d.keep_events);
    cr_assert_eq(n, 1);
    json_t *ev = json_array_get(d.events, 0);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), NS "StockReservationRejected");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ev, "payload"), "available")),
                 1);
    hd_decision_release(&d);
    counts(s, 2, 1);
    json_decref(s);
}

Test(inventory, reservation_on_nothing_is_rejected_with_zero_available)
{
    json_t *s = NULL;
    rejected(&s, NS "ReserveStock", reserve("admin", "o1", 1), "insufficient_stock", "0 available");
    counts(s, 0, 0);
    json_decref(s);
}

Test(inventory, repeating_a_reservation_is_harmless)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 5), 1);
    ok(&s, NS "ReserveStock", reserve("admin", "o1", 2), 1);
    ok(&s, NS "ReserveStock", reserve("admin", "o1", 2), 0);
    rejected(&s, NS "ReserveStock", reserve("admin", "o1", 3), "reservation_exists", NULL);
    counts(s, 5, 2);
    json_decref(s);
}

Test(inventory, only_admins_reserve_release_commit)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 5), 1);
    rejected(&s, NS "ReserveStock", reserve("vendor", "o1", 1), "forbidden", NULL);
    rejected(&s, NS "ReserveStock", reserve("customer", "o1", 1), "forbidden", NULL);
    json_decref(s);
}

Test(inventory, release_gives_back_and_commit_ships)
{
    json_t *s = NULL;
    ok(&s, NS "ReceiveStock", receive("admin", NULL, "AB-1", 10), 1);
    ok(&s, NS "ReserveStock", reserve("admin", "o1", 3), 1);
    ok(&s, NS "ReserveStock", reserve("admin", "o2", 4), 1);
    counts(s, 10, 7);
    ok(&s, NS "ReleaseStock", closing("o1"), 1);
    counts(s, 10, 4);
    ok(&s, NS "CommitStock", closing("o2"), 1);
    counts(s, 6, 0);
    /* repeats are harmless; crossing them is not */
    ok(&s, NS "ReleaseStock", closing("o1"), 0);
    ok(&s, NS "CommitStock", closing("o2"), 0);
    rejected(&s, NS "CommitStock", closing("o1"), "reservation_closed", "released");
    rejected(&s, NS "ReleaseStock", closing("o2"), "reservation_closed", "committed");
    rejected(&s, NS "ReserveStock", reserve("admin", "o1", 3), "reservation_closed", NULL);
    rejected(&s, NS "ReleaseStock", closing("o9"), "unknown_reservation", "'o9'");
    counts(s, 6, 0);
    json_decref(s);
}

Test(inventory, rejects_foreign_commands_and_mismatched_aggregate)
{
    json_t *s = NULL;
    rejected(&s, "eventshop.catalog.ListProduct", receive("admin", NULL, "AB-1", 1),
             "unknown_command", NULL);
    json_t *cmd = receive("admin", NULL, "AB-1", 1);
    json_object_set_new(cmd, "sku", json_string("OTHER"));
    rejected(&s, NS "ReceiveStock", cmd, "invalid_field", "aggregate_id");
}

/* the invariant over many random commands: available and on hand never negative */
Test(inventory, random_commands_keep_the_invariant)
{
    json_t *s = NULL;
    unsigned seed = 12345;
    char order[16];
    for (int i = 0; i < 2000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % 5, o = (seed >> 8) % 20, q = 1 + (seed >> 4) % 7;
        snprintf(order, sizeof order, "o%u", o);
        json_t *cmd;
        const char *type;
        switch (k) {
        case 0:
            cmd = receive("admin", NULL, "AB-1", q), type = NS "ReceiveStock";
            break;
        case 1:
            cmd = adjust("admin", NULL, -(json_int_t)q, "damage"), type = NS "AdjustStock";
            break;
        case 2:
            cmd = reserve("admin", order, q), type = NS "ReserveStock";
            break;
        case 3:
            cmd = closing(order), type = NS "ReleaseStock";
            break;
        default:
            cmd = closing(order), type = NS "CommitStock";
        }
        hd_decision_t d;
        run(&s, type, cmd, &d, NULL);
        hd_decision_release(&d);
        if (s) {
            json_int_t on_hand = json_integer_value(json_object_get(s, "on_hand"));
            json_int_t reserved = json_integer_value(json_object_get(s, "reserved"));
            cr_assert_geq(reserved, 0);
            cr_assert_geq(on_hand - reserved, 0, "step %d: on hand %lld, reserved %lld", i,
                          (long long)on_hand, (long long)reserved);
            json_int_t sum = 0;
            const char *key;
            json_t *v;
            json_object_foreach(json_object_get(s, "reservations"), key, v) sum +=
                json_integer_value(v);
            cr_assert_eq(sum, reserved);
        }
    }
    json_decref(s);
}
