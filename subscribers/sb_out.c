/* The outputs a handler asks for, and the metadata the runtime stamps on them. */
#include "sb_out.h"
#include "es_mem.h"
#include "es_uuid.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sb_item {
    sb_out_kind_t kind;
    char *topic; /* "<ctx>.commands" or the event topic */
    char *type;
    char *key;
    json_t *body; /* owned, without metadata */
} sb_item_t;

struct sb_out {
    sb_item_t *items;
    size_t n, cap;
    char *dead_reason;
    const char *src_topic; /* the event being handled, or NULL */
    int src_partition;
    long long src_offset;
};

sb_out_t *sb_out_new(void)
{
    sb_out_t *out = xcalloc(1, sizeof(sb_out_t));
    sb_out_set_source(out, NULL, -1, -1);
    return out;
}

void sb_out_set_source(sb_out_t *out, const char *topic, int partition, long long offset)
{
    out->src_topic = topic;
    out->src_partition = partition;
    out->src_offset = offset;
}

void sb_out_source(const sb_out_t *out, const char **topic, int *partition, long long *offset)
{
    *topic = out->src_topic;
    *partition = out->src_partition;
    *offset = out->src_offset;
}

void sb_out_clear(sb_out_t *out)
{
    for (size_t i = 0; i < out->n; i++) {
        free(out->items[i].topic);
        free(out->items[i].type);
        free(out->items[i].key);
        json_decref(out->items[i].body);
    }
    out->n = 0;
    free(out->dead_reason);
    out->dead_reason = NULL;
    sb_out_set_source(out, NULL, -1, -1);
}

void sb_out_free(sb_out_t *out)
{
    if (!out)
        return;
    sb_out_clear(out);
    free(out->items);
    free(out);
}

size_t sb_out_count(const sb_out_t *out)
{
    return out->n;
}

const char *sb_out_dead_reason(const sb_out_t *out)
{
    return out->dead_reason;
}

static void push(sb_out_t *out, sb_out_kind_t kind, char *topic, const char *type, const char *key,
                 json_t *body)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 8;
        out->items = xrealloc(out->items, out->cap * sizeof *out->items);
    }
    out->items[out->n++] = (sb_item_t){kind, topic, xstrdup(type ? type : ""),
                                       xstrdup(key ? key : ""), body ? body : json_object()};
}

void sb_out_command(sb_out_t *out, const char *ctx, const char *command_type,
                    const char *aggregate_id, json_t *fields)
{
    push(out, SB_OUT_COMMAND, xasprintf("%s.commands", ctx), command_type, aggregate_id, fields);
}

void sb_out_event(sb_out_t *out, const char *topic, const char *event_type,
                  const char *aggregate_id, json_t *payload)
{
    push(out, SB_OUT_EVENT, xstrdup(topic), event_type, aggregate_id, payload);
}

void sb_out_dead_letter(sb_out_t *out, const char *reason)
{
    if (!out->dead_reason) /* the first reason wins, like es_err */
        out->dead_reason = xstrdup(reason && *reason ? reason : "unspecified");
}

json_t *sb_out_build(const sb_out_t *out, size_t i, const char *subscriber, const json_t *trigger,
                     long long now_ms, const char **topic, const char **type, const char **key)
{
    const sb_item_t *it = &out->items[i];
    const char *trigger_id = json_string_value(json_object_get(trigger, "event_id"));
    const char *corr = json_string_value(json_object_get(trigger, "correlation_id"));
    char id[ES_UUID_LEN], name[64], actor[128];
    if (trigger_id) {
        /* a redelivered event gives the same ids: the handlers' dedupe absorbs the copies */
        snprintf(name, sizeof name, "%s:%zu", it->kind == SB_OUT_COMMAND ? "command" : "event", i);
        es_uuid_derive(trigger_id, name, id);
    } else {
        char *body = json_dumps(it->body, JSON_SORT_KEYS | JSON_COMPACT);
        char *content =
            xasprintf("tick:%s:%s:%s:%s:%s", subscriber, it->topic, it->type, it->key, body);
        es_uuid_derive(subscriber, content, id);
        free(content);
        free(body);
    }
    snprintf(actor, sizeof actor, "svc-%s", subscriber);
    json_t *rec = json_deep_copy(it->body);
    if (it->kind == SB_OUT_COMMAND) {
        json_object_set_new(rec, "metadata",
                            json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:n, s:n}", "command_id", id,
                                      "correlation_id", corr && *corr ? corr : it->key,
                                      "aggregate_id", it->key, "issued_at", (json_int_t)now_ms,
                                      "actor", actor, "actor_role", "admin", "actor_vendor",
                                      "expected_version"));
    } else {
        char cause[ES_UUID_LEN];
        if (trigger_id)
            snprintf(cause, sizeof cause, "%s", trigger_id);
        else
            snprintf(cause, sizeof cause, "%s", id);
        json_object_set_new(rec, "metadata",
                            json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s}", "event_id", id,
                                      "aggregate_id", it->key, "aggregate_version", (json_int_t)1,
                                      "command_id", cause, "correlation_id",
                                      corr && *corr ? corr : it->key, "occurred_at",
                                      (json_int_t)now_ms, "actor", actor));
    }
    *topic = it->topic;
    *type = it->type;
    *key = it->key;
    return rec;
}
