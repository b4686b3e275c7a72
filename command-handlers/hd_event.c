/* The metadata the runtime stamps on every event: pure, so it is unit-tested without Kafka. */
#include "es_uuid.h"
#include "hd_runtime.h"
#include <stdio.h>

json_t *hd_event_stamp(const json_t *cmd_meta, const char *aggregate_id, size_t index,
                       json_int_t version, const json_t *payload)
{
    json_t *ev = json_deep_copy(payload);
    hd_event_stamp_in(cmd_meta, aggregate_id, index, version, ev);
    return ev;
}

void hd_event_stamp_in(const json_t *cmd_meta, const char *aggregate_id, size_t index,
                       json_int_t version, json_t *payload)
{
    const char *command_id = json_string_value(json_object_get(cmd_meta, "command_id"));
    const char *correlation_id = json_string_value(json_object_get(cmd_meta, "correlation_id"));
    const char *actor = json_string_value(json_object_get(cmd_meta, "actor"));
    char idx[32], event_id[ES_UUID_LEN];
    snprintf(idx, sizeof idx, "%zu", index);
    /* derived, not random: a batch redone after a crash writes the very same event ids */
    es_uuid_derive(command_id ? command_id : "", idx, event_id);
    /* built key by key: json_pack's format parsing was a tenth of deciding a command */
    json_t *m = json_object();
    json_object_set_new_nocheck(m, "event_id", json_string(event_id));
    json_object_set_new_nocheck(m, "aggregate_id", json_string(aggregate_id));
    json_object_set_new_nocheck(m, "aggregate_version", json_integer(version));
    json_object_set_new_nocheck(m, "command_id", json_string(command_id ? command_id : ""));
    json_object_set_new_nocheck(m, "correlation_id",
                                json_string(correlation_id ? correlation_id : ""));
    json_object_set_new_nocheck(
        m, "occurred_at", json_integer(json_integer_value(json_object_get(cmd_meta, "issued_at"))));
    json_object_set_new_nocheck(m, "actor", json_string(actor ? actor : ""));
    json_object_set_new(payload, "metadata", m);
}
