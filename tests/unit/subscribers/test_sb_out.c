#include "es_uuid.h"
#include "sb_out.h"
#include <criterion/criterion.h>
#include <string.h>

static const char *s(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

Test(sb_out, command_gets_metadata_derived_from_the_trigger)
{
    sb_out_t *out = sb_out_new();
    json_t *trig = json_pack("{s:s, s:s}", "event_id", "6f1c0b0e-3f0e-4a55-9d4b-2d3c1c1a0001",
                             "correlation_id", "corr-1");
    sb_out_command(out, "inventory", "eventshop.inventory.ReserveStock", "SKU-1",
                   json_pack("{s:s, s:s, s:i}", "sku", "SKU-1", "order_id", "o1", "quantity", 2));
    sb_out_command(out, "inventory", "eventshop.inventory.ReserveStock", "SKU-2",
                   json_pack("{s:s, s:s, s:i}", "sku", "SKU-2", "order_id", "o1", "quantity", 1));
    cr_assert_eq(sb_out_count(out), 2);
    const char *topic, *type, *key;
    json_t *a = sb_out_build(out, 0, "order-saga", trig, 1234, &topic, &type, &key);
    cr_assert_str_eq(topic, "inventory.commands");
    cr_assert_str_eq(type, "eventshop.inventory.ReserveStock");
    cr_assert_str_eq(key, "SKU-1");
    json_t *m = json_object_get(a, "metadata");
    cr_assert(es_uuid_valid(s(m, "command_id")));
    cr_assert_str_eq(s(m, "correlation_id"), "corr-1");
    cr_assert_str_eq(s(m, "aggregate_id"), "SKU-1");
    cr_assert_str_eq(s(m, "actor"), "svc-order-saga");
    cr_assert_str_eq(s(m, "actor_role"), "admin");
    cr_assert_eq(json_integer_value(json_object_get(m, "issued_at")), 1234);
    cr_assert_str_eq(s(a, "sku"), "SKU-1");
    /* the same trigger again gives the same id; another index another id */
    json_t *a2 = sb_out_build(out, 0, "order-saga", trig, 9999, &topic, &type, &key);
    json_t *b = sb_out_build(out, 1, "order-saga", trig, 1234, &topic, &type, &key);
    cr_assert_str_eq(s(json_object_get(a2, "metadata"), "command_id"), s(m, "command_id"));
    cr_assert_str_neq(s(json_object_get(b, "metadata"), "command_id"), s(m, "command_id"));
    json_decref(a);
    json_decref(a2);
    json_decref(b);
    json_decref(trig);
    sb_out_free(out);
}

Test(sb_out, tick_ids_derive_from_content)
{
    sb_out_t *out = sb_out_new();
    const char *topic, *type, *key;
    sb_out_command(out, "orders", "eventshop.orders.CancelOrder", "o1",
                   json_pack("{s:s, s:s}", "order_id", "o1", "reason", "deadline"));
    sb_out_command(out, "orders", "eventshop.orders.CancelOrder", "o2",
                   json_pack("{s:s, s:s}", "order_id", "o2", "reason", "deadline"));
    json_t *a = sb_out_build(out, 0, "order-saga", NULL, 1, &topic, &type, &key);
    json_t *b = sb_out_build(out, 1, "order-saga", NULL, 1, &topic, &type, &key);
    sb_out_clear(out);
    cr_assert_eq(sb_out_count(out), 0);
    sb_out_command(out, "orders", "eventshop.orders.CancelOrder", "o1",
                   json_pack("{s:s, s:s}", "reason", "deadline", "order_id", "o1"));
    json_t *a2 = sb_out_build(out, 0, "order-saga", NULL, 777, &topic, &type, &key);
    const char *ida = s(json_object_get(a, "metadata"), "command_id");
    cr_assert_str_eq(ida, s(json_object_get(a2, "metadata"), "command_id"));
    cr_assert_str_neq(ida, s(json_object_get(b, "metadata"), "command_id"));
    cr_assert_str_eq(s(json_object_get(a, "metadata"), "correlation_id"), "o1");
    json_decref(a);
    json_decref(a2);
    json_decref(b);
    sb_out_free(out);
}

Test(sb_out, event_gets_metadata_and_dead_letter_first_reason_wins)
{
    sb_out_t *out = sb_out_new();
    json_t *trig = json_pack("{s:s, s:s}", "event_id", "6f1c0b0e-3f0e-4a55-9d4b-2d3c1c1a0002",
                             "correlation_id", "c");
    sb_out_event(out, "notifications.events", "eventshop.notifications.NotificationSent", "o9",
                 json_pack("{s:s}", "order_id", "o9"));
    const char *topic, *type, *key;
    json_t *e = sb_out_build(out, 0, "notifications", trig, 55, &topic, &type, &key);
    json_t *m = json_object_get(e, "metadata");
    cr_assert_str_eq(topic, "notifications.events");
    cr_assert_eq(json_integer_value(json_object_get(m, "aggregate_version")), 1);
    cr_assert_str_eq(s(m, "command_id"), "6f1c0b0e-3f0e-4a55-9d4b-2d3c1c1a0002");
    cr_assert(es_uuid_valid(s(m, "event_id")));
    cr_assert_eq(json_integer_value(json_object_get(m, "occurred_at")), 55);
    cr_assert_null(sb_out_dead_reason(out));
    sb_out_dead_letter(out, "first");
    sb_out_dead_letter(out, "second");
    cr_assert_str_eq(sb_out_dead_reason(out), "first");
    json_decref(e);
    json_decref(trig);
    sb_out_free(out);
}
