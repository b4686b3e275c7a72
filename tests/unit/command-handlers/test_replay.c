#include "catalog.h"
#include "es_uuid.h"
#include "hd_runtime.h"
#include <criterion/criterion.h>

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
    json_t *s = hd_replay(&catalog_context, NULL, events);
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
    json_t *s = hd_replay(&catalog_context, state, events);
    cr_assert_eq(json_integer_value(json_object_get(s, "version")), 8);
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "DELISTED");
    json_decref(s);
    json_decref(events);
}

Test(replay, empty_history_keeps_state)
{
    json_t *events = json_array();
    cr_assert_null(hd_replay(&catalog_context, NULL, events));
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
