#include "api_outcome.h"
#include <stdio.h>
#include <string.h>

static const struct {
    const char *reason;
    int status;
} reason_table[] = {
    /* every context */
    {"version_conflict", 412},
    {"invalid_field", 422},
    {"not_owner", 403},
    {"forbidden", 403},
    /* catalog */
    {"unknown_sku", 404},
    {"already_listed", 409},
    {"delisted", 409},
    /* inventory */
    {"insufficient_stock", 409},
    {"unknown_reservation", 404},
    {"reservation_exists", 409},
    {"reservation_closed", 409},
    {"invalid_quantity", 422},
    /* pricing */
    {"currency_mismatch", 409}, /* the state (the sku's currency) refuses it, not the input */
    {"rule_exists", 409},
    {"unknown_rule", 404},
    {"too_many_rules", 409},
    /* orders */
    {"unknown_order", 404},
    {"order_exists", 409},
    {"no_price", 409},
    {"mixed_currency", 409},
    {"already_shipped", 409},
    {"order_final", 409},
    {"order_cancelled", 409},
    {"invalid_state", 409},
    /* users */
    {"email_taken", 409},
    {"unknown_user", 404},
    {"already_registered", 409},
    {"user_forgotten", 410},
    {"not_vendor", 409},
    {"not_admin", 403},
    {"self_role_change", 409},
};

static const struct {
    const char *context;
    const char *key;
} aggregate_keys[] = {
    {"catalog", "sku"},   {"inventory", "sku"},   {"pricing", "sku"},
    {"users", "user_id"}, {"orders", "order_id"},
};

const char *api_aggregate_key(const char *command_type)
{
    static const char ns[] = "eventshop.";
    if (!command_type || strncmp(command_type, ns, sizeof ns - 1))
        return "aggregate_id";
    const char *ctx = command_type + sizeof ns - 1;
    const char *dot = strchr(ctx, '.');
    for (size_t i = 0; dot && i < sizeof aggregate_keys / sizeof *aggregate_keys; i++)
        if (strlen(aggregate_keys[i].context) == (size_t)(dot - ctx) &&
            !strncmp(aggregate_keys[i].context, ctx, (size_t)(dot - ctx)))
            return aggregate_keys[i].key;
    return "aggregate_id";
}

int api_reason_status(const char *reason)
{
    for (size_t i = 0; reason && i < sizeof reason_table / sizeof *reason_table; i++)
        if (!strcmp(reason_table[i].reason, reason))
            return reason_table[i].status;
    return 422;
}

static void copy_str(char *dst, size_t size, const json_t *v)
{
    snprintf(dst, size, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int api_outcome_from_result(const json_t *r, struct api_outcome *o)
{
    memset(o, 0, sizeof *o);
    const json_t *id = json_object_get(r, "command_id");
    const json_t *status = json_object_get(r, "status");
    if (!json_is_string(id) || !json_is_string(status) ||
        strlen(json_string_value(id)) >= sizeof o->command_id)
        return -1;
    copy_str(o->command_id, sizeof o->command_id, id);
    copy_str(o->command_type, sizeof o->command_type, json_object_get(r, "command_type"));
    copy_str(o->aggregate_id, sizeof o->aggregate_id, json_object_get(r, "aggregate_id"));
    o->accepted = !strcmp(json_string_value(status), "ACCEPTED");
    copy_str(o->reason, sizeof o->reason, json_object_get(r, "reason"));
    copy_str(o->detail, sizeof o->detail, json_object_get(r, "detail"));
    o->version = json_integer_value(json_object_get(r, "aggregate_version"));
    o->partition = (int32_t)json_integer_value(json_object_get(r, "partition"));
    json_t *off = json_object_get(r, "offset");
    o->offset = json_is_integer(off) ? json_integer_value(off) : -1;
    copy_str(o->actor, sizeof o->actor, json_object_get(r, "actor"));
    return 0;
}

void api_answer_add_header(struct api_answer *a, const char *name, const char *value)
{
    size_t n = 0;
    while (n + 2 < sizeof a->headers / sizeof *a->headers && a->headers[n])
        n += 2;
    if (n + 2 >= sizeof a->headers / sizeof *a->headers)
        return;
    a->headers[n] = name;
    a->headers[n + 1] = value;
    a->headers[n + 2] = NULL;
}

void api_answer_outcome(struct api_answer *a, const struct api_outcome *o,
                        const char *created_location)
{
    const char *key = api_aggregate_key(o->command_type);
    memset(a, 0, sizeof *a);
    if (!o->accepted) {
        const char *reason = o->reason[0] ? o->reason : "rejected";
        char type[128];
        snprintf(type, sizeof type, "urn:eventshop:problem:%s", reason);
        a->status = api_reason_status(o->reason);
        a->problem = true;
        a->body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:I}", "type", type, "title", reason,
                            "status", a->status, "detail", o->detail, "command_id", o->command_id,
                            key, o->aggregate_id, "aggregate_version", (json_int_t)o->version);
        return;
    }
    bool created = created_location && *created_location;
    a->status = created ? 201 : 200;
    json_t *position = json_null();
    if (o->offset >= 0) {
        char pos[48];
        snprintf(pos, sizeof pos, "%d:%lld", (int)o->partition, (long long)o->offset);
        position = json_string(pos);
    }
    a->body = json_pack("{s:s, s:s, s:s, s:I, s:o}", "command_id", o->command_id, "status",
                        "accepted", key, o->aggregate_id, "aggregate_version",
                        (json_int_t)o->version, "position", position);
    snprintf(a->etag, sizeof a->etag, "\"%lld\"", (long long)o->version);
    api_answer_add_header(a, "ETag", a->etag);
    if (created) {
        snprintf(a->location, sizeof a->location, "%s", created_location);
        api_answer_add_header(a, "Location", a->location);
    }
}

void api_answer_pending(struct api_answer *a, const char *command_id,
                        const struct api_created *created)
{
    memset(a, 0, sizeof *a);
    a->status = 202;
    a->body = json_pack("{s:s, s:s}", "command_id", command_id, "status", "pending");
    snprintf(a->location, sizeof a->location, "/v1/commands/%s", command_id);
    api_answer_add_header(a, "Location", a->location);
    if (created && created->key[0] && created->id[0]) {
        json_object_set_new(a->body, created->key, json_string(created->id));
        if (created->location[0]) {
            snprintf(a->link, sizeof a->link, "<%s>; rel=\"related\"", created->location);
            api_answer_add_header(a, "Link", a->link);
        }
    }
}

void api_created_init(struct api_created *c, const char *command_type, const char *aggregate_id,
                      const char *location)
{
    snprintf(c->key, sizeof c->key, "%s", api_aggregate_key(command_type));
    snprintf(c->id, sizeof c->id, "%s", aggregate_id ? aggregate_id : "");
    snprintf(c->location, sizeof c->location, "%s", location ? location : "");
}
