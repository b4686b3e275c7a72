#include "catalog.h"
#include "catalog_view.h"
#include "es_uuid.h"
#include "hd_runtime.h"
#include "inventory.h"
#include "orders.h"
#include "payments.h"
#include "pricing.h"
#include "shipping.h"
#include "users.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static json_t *event(const char *type, json_int_t version, json_t *payload)
{
    json_object_set_new(payload, "metadata",
                        json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s}", "event_id",
                                  "6f1c1f4e-0000-5000-8000-000000000001", "aggregate_id", "AB-1",
                                  "aggregate_version", version, "command_id",
                                  "6f1c1f4e-0000-4000-8000-000000000001", "correlation_id", "c",
                                  "occurred_at", (json_int_t)1700000000000, "actor", "u1"));
    return json_pack("{s:s, s:o}", "type", type, "payload", payload);
}

Test(replay, folds_events_and_sets_version)
{
    json_t *events = json_array();
    json_array_append_new(events,
                          event(CATALOG_NS "ProductListed", 1,
                                json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}, s:s}", "sku", "AB-1",
                                          "vendor_id", "v1", "name", "Mug", "description", "",
                                          "category", "kitchen", "attributes", "currency", "EUR")));
    json_array_append_new(events, event(CATALOG_NS "ProductDetailsChanged", 2,
                                        json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "sku", "AB-1",
                                                  "name", "Big mug", "description", "d", "category",
                                                  "kitchen", "attributes", "size", "L")));
    json_array_append_new(
        events, event(CATALOG_NS "ProductDelisted", 3, json_pack("{s:s}", "sku", "AB-1")));
    json_t *s = hd_replay(hd_context_find("catalog"), NULL, events);
    cr_assert_not_null(s);
    json_t *want =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:I}", "sku", "AB-1", "vendor_id",
                  "v1", "name", "Big mug", "description", "d", "category", "kitchen", "attributes",
                  "size", "L", "currency", "EUR", "status", "DELISTED", "version", (json_int_t)3);
    char *got = json_dumps(s, JSON_SORT_KEYS);
    cr_assert(json_equal(s, want), "got %s", got);
    free(got);
    json_decref(want);
    json_decref(s);
    json_decref(events);
}

Test(replay, continues_from_a_given_state)
{
    json_t *state =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}, s:s, s:s, s:I}", "sku", "AB-1", "vendor_id",
                  "v1", "name", "Mug", "description", "", "category", "kitchen", "attributes",
                  "currency", "EUR", "status", "LISTED", "version", (json_int_t)7);
    json_t *events = json_array();
    json_array_append_new(
        events, event(CATALOG_NS "ProductDelisted", 8, json_pack("{s:s}", "sku", "AB-1")));
    json_t *s = hd_replay(hd_context_find("catalog"), state, events);
    cr_assert_eq(json_integer_value(json_object_get(s, "version")), 8);
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "DELISTED");
    json_decref(s);
    json_decref(events);
}

Test(replay, empty_history_keeps_state)
{
    json_t *events = json_array();
    cr_assert_null(hd_replay(hd_context_find("catalog"), NULL, events));
    json_decref(events);
}

Test(runtime, event_stamp_derives_metadata_from_the_command)
{
    json_t *meta =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:n, s:n}", "command_id",
                  "6f1c1f4e-0000-4000-8000-000000000009", "correlation_id", "corr", "aggregate_id",
                  "AB-1", "issued_at", (json_int_t)1700000000123, "actor", "u7", "actor_role",
                  "vendor", "actor_vendor", "expected_version");
    json_t *payload = json_pack("{s:s}", "sku", "AB-1");
    json_t *e0 = hd_event_stamp(meta, "AB-1", 0, 4, payload);
    json_t *e1 = hd_event_stamp(meta, "AB-1", 1, 5, payload);
    json_t *again = hd_event_stamp(meta, "AB-1", 0, 4, payload);
    json_t *m0 = json_object_get(e0, "metadata");
    cr_assert_str_eq(json_string_value(json_object_get(m0, "aggregate_id")), "AB-1");
    cr_assert_eq(json_integer_value(json_object_get(m0, "aggregate_version")), 4);
    cr_assert_eq(json_integer_value(json_object_get(m0, "occurred_at")), 1700000000123);
    cr_assert_str_eq(json_string_value(json_object_get(m0, "actor")), "u7");
    cr_assert_str_eq(json_string_value(json_object_get(m0, "correlation_id")), "corr");
    cr_assert_str_eq(json_string_value(json_object_get(m0, "command_id")),
                     "6f1c1f4e-0000-4000-8000-000000000009");
    const char *id0 = json_string_value(json_object_get(m0, "event_id"));
    cr_assert(es_uuid_valid(id0));
    /* stable for a redone batch, distinct per index */
    cr_assert_str_eq(
        id0, json_string_value(json_object_get(json_object_get(again, "metadata"), "event_id")));
    cr_assert_str_neq(
        id0, json_string_value(json_object_get(json_object_get(e1, "metadata"), "event_id")));
    cr_assert_null(json_object_get(payload, "metadata"), "the payload was borrowed");
    json_decref(e0);
    json_decref(e1);
    json_decref(again);
    json_decref(payload);
    json_decref(meta);
}

/* The one table of contexts: every name hd_context_names gives is found, with its decider, its
 * changelog record and the views its decider reads. */
Test(contexts, the_table_names_each_decider_and_its_views)
{
    static const struct {
        const char *name, *state_type;
        hd_decide_fn *decide;
        hd_evolve_fn *evolve;
        const char *view_topics; /* the views' topics, space-separated */
    } want[] = {
        {"catalog", CATALOG_NS "ProductState", catalog_decide, catalog_evolve, ""},
        {"inventory", INVENTORY_NS "StockItemState", inventory_decide, inventory_evolve,
         "catalog.events"},
        {"users", USERS_NS "UserState", users_decide, users_evolve, ""},
        {"pricing", PRICING_NS "PriceState", pricing_decide, pricing_evolve, "catalog.events"},
        {"shipping", SHIPPING_NS "ShipmentState", shipping_decide, shipping_evolve, ""},
        {"payments", PAYMENTS_NS "PaymentState", payments_decide, payments_evolve, ""},
        {"orders", ORDERS_NS "OrderState", orders_decide, orders_evolve,
         "catalog.events pricing.events"},
    };
    const char *const *names = hd_context_names();
    size_t n = 0;
    for (; names[n]; n++) {
        cr_assert_lt(n, sizeof want / sizeof want[0]);
        cr_assert_str_eq(names[n], want[n].name);
        const hd_context_t *c = hd_context_find(names[n]);
        cr_assert_not_null(c, "%s", names[n]);
        cr_assert_str_eq(c->name, want[n].name);
        cr_assert_str_eq(c->state_type, want[n].state_type);
        cr_assert_eq(c->decide, want[n].decide, "%s", names[n]);
        cr_assert_eq(c->evolve, want[n].evolve, "%s", names[n]);
        char topics[128] = "";
        for (size_t v = 0; v < c->n_views; v++) {
            cr_assert_not_null(c->views[v].fold);
            snprintf(topics + strlen(topics), sizeof topics - strlen(topics), "%s%s", v ? " " : "",
                     c->views[v].topic);
        }
        cr_assert_str_eq(topics, want[n].view_topics, "%s", names[n]);
        if (c->n_views == 0)
            cr_assert_null(c->views);
        for (size_t v = 0; v < c->n_views; v++)
            cr_assert_eq(c->views[v].fold, strcmp(c->views[v].topic, "catalog.events") == 0
                                               ? catalog_view_fold
                                               : orders_pricing_fold);
    }
    cr_assert_eq(n, sizeof want / sizeof want[0]);
}

/* hd_reject clears the events emitted so far; hd_reject_keep_events keeps them. */
Test(contexts, reject_clears_or_keeps_the_events)
{
    hd_decision_t d;
    hd_decision_init(&d);
    hd_emit(&d, "t.E", json_object());
    cr_assert_eq(hd_reject_keep_events(&d, "kept", "n=%d", 1), 0);
    cr_assert_str_eq(d.reason, "kept");
    cr_assert_str_eq(d.detail, "n=1");
    cr_assert(d.keep_events);
    cr_assert_eq(json_array_size(d.events), 1);
    cr_assert_eq(hd_reject(&d, "gone", "sku '%s'", "AB-1"), 0);
    cr_assert_str_eq(d.reason, "gone");
    cr_assert_str_eq(d.detail, "sku 'AB-1'");
    cr_assert_not(d.keep_events);
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
}

Test(runtime, event_stamp_in_stamps_the_payload_itself)
{
    json_t *meta =
        json_pack("{s:s, s:s, s:I, s:s}", "command_id", "6f1c1f4e-0000-4000-8000-000000000009",
                  "correlation_id", "corr", "issued_at", (json_int_t)1700000000123, "actor", "u7");
    json_t *payload = json_pack("{s:s}", "sku", "AB-1");
    json_t *copy = hd_event_stamp(meta, "AB-1", 2, 7, payload);
    hd_event_stamp_in(meta, "AB-1", 2, 7, payload);
    /* the same event as the copying stamp, in the payload object itself */
    cr_assert(json_equal(copy, payload));
    cr_assert_eq(json_integer_value(
                     json_object_get(json_object_get(payload, "metadata"), "aggregate_version")),
                 7);
    /* a payload that is not an object is left alone, for the codec to refuse */
    json_t *s = json_string("not an object");
    hd_event_stamp_in(meta, "AB-1", 0, 1, s);
    cr_assert_str_eq(json_string_value(s), "not an object");
    json_decref(s);
    json_decref(copy);
    json_decref(payload);
    json_decref(meta);
}
