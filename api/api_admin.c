/* Projections as an operator sees them (admin only). GET /v1/admin/projections reads, in each
 * served context's database with its read-only user, the projectors' projection_status,
 * projection_offsets and projection_dead_letters, and asks the broker the events' high
 * watermarks; GET /v1/admin/dead-letters lists the dead letters. The operations (pause, resume,
 * shadow rebuild and swap, dead-letter replay and discard) are OperatorAction events produced to
 * operations.events, with who (the token's subject) and why (the body's reason): the record of the
 * operation and the command every projector replica acts on (projections/pj_ops.c). 202 once the
 * broker has it. */
#include "api_app.h"
#include "api_reply.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "es_uuid.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_OPS_TOPIC     "operations.events"
#define API_OPS_TYPE      "eventshop.operations.OperatorAction"
#define REASON_MAX        500
#define WATERMARK_WAIT_MS 1000

/* What the projector's pj_runtime.h allows in a key: [a-z0-9_], 1-64. */
static bool is_projection_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* One partition of topic: its position (0 when none is stored: from the beginning), the high
 * watermark and the lag. idle_ms is how long ago the position last moved: while events wait, the
 * lag in seconds. *parts gets the topic's partition count (unchanged when the broker is silent). */
static json_t *partition_view(struct api_app *app, const char *topic, int32_t part, int64_t next,
                              long long idle_ms, int *parts)
{
    int64_t high = -1;
    es_err_t err = ES_ERR_INIT;
    json_t *v = json_pack("{s:i, s:I}", "partition", (int)part, "position", (json_int_t)next);
    if (api_producer_high_watermark(app->producer, topic, part, parts, &high, WATERMARK_WAIT_MS,
                                    &err)) {
        json_object_set_new(v, "high_watermark", json_null());
        json_object_set_new(v, "lag_events", json_null());
        json_object_set_new(v, "lag_seconds", json_null());
        return v;
    }
    int64_t lag = high > next ? high - next : 0;
    json_object_set_new(v, "high_watermark", json_integer(high));
    json_object_set_new(v, "lag_events", json_integer(lag));
    json_object_set_new(v, "lag_seconds",
                        json_real(lag > 0 && idle_ms > 0 ? (double)idle_ms / 1000.0 : 0.0));
    return v;
}

/* Every partition of topic for projection name, from its stored offsets (offs: rows of every
 * projection of the context), as a new array. */
static json_t *partitions_of(struct api_app *app, const char *topic, const char *name,
                             const json_t *offs)
{
    json_t *out = json_array();
    int n = 1;
    for (int32_t part = 0; part < n && part < 1024; part++) {
        int64_t next = 0;
        long long idle = 0;
        size_t j;
        json_t *o;
        json_array_foreach(offs, j, o)
        {
            const char *p = json_string_value(json_object_get(o, "projection"));
            if (p && !strcmp(p, name) && json_integer_value(json_object_get(o, "part")) == part) {
                next = json_integer_value(json_object_get(o, "next_offset"));
                idle = json_integer_value(json_object_get(o, "idle_ms"));
            }
        }
        json_array_append_new(out, partition_view(app, topic, part, next, idle, &n));
    }
    return out;
}

/* The state an operator reads: paused and rebuilding as the projector says; a running one with
 * dead letters is degraded; a status not renewed for a minute means no projector runs. */
static const char *effective_state(const char *state, long long dead, long long age_ms)
{
    if (!state)
        return "unknown";
    if (!strcmp(state, "running") && age_ms > 60000)
        return "stopped";
    if (!strcmp(state, "running") && dead > 0)
        return "degraded";
    return state;
}

/* A rebuild's progress line in projection_status.detail ("phase=replay applied=N remaining=M
 * events_per_s=R eta_s=E elapsed_s=S", projections/pj_rebuild.c) as an object of those keys
 * (numbers, -1 unknown), so that a console draws a progress bar; NULL when detail is not one. */
static json_t *rebuild_progress(const char *detail)
{
    if (!detail || strncmp(detail, "phase=", 6))
        return NULL;
    json_t *o = json_object();
    char key[24], val[48];
    for (const char *c = detail; *c;) {
        int used = 0;
        if (sscanf(c, " %23[a-z_]=%47s%n", key, val, &used) != 2 || used <= 0)
            break;
        char *end = NULL;
        double d = strtod(val, &end);
        json_object_set_new(o, key, *end ? json_string(val) : json_real(d));
        c += used;
    }
    return o;
}

/* The projections of ctx (rows appended to out); a database that does not answer is one entry
 * of state degraded. */
static void context_projections(es_http_req_t *r, const char *ctx, json_t *out)
{
    struct api_app *app = es_http_app(r);
    es_err_t err = ES_ERR_INIT;
    char topic[64];
    es_topic(topic, sizeof topic, ctx, "events");
    json_t *st = api_query(r, ctx,
                           "SELECT projection, version, state, detail, "
                           "CAST(TIMESTAMPDIFF(MICROSECOND, updated_at, NOW(3)) / 1000 AS SIGNED) "
                           "AS age_ms, (SELECT COUNT(*) FROM projection_dead_letters d WHERE "
                           "d.projection=s.projection) AS dead FROM projection_status s "
                           "ORDER BY projection",
                           NULL, 0, &err);
    json_t *offs = st ? api_query(r, ctx,
                                  "SELECT projection, part, next_offset, CAST(TIMESTAMPDIFF("
                                  "MICROSECOND, updated_at, NOW(3)) / 1000 AS SIGNED) AS idle_ms "
                                  "FROM projection_offsets WHERE topic=? ORDER BY part",
                                  (es_db_val_t[]){ES_DB_S(topic)}, 1, &err)
                      : NULL;
    if (!st || !offs) {
        json_array_append_new(out,
                              json_pack("{s:n, s:s, s:s, s:s+}", "name", "context", ctx, "state",
                                        "degraded", "detail", "database unreachable: ", err.msg));
        json_decref(st);
        return;
    }
    size_t i;
    json_t *s;
    json_array_foreach(st, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "projection"));
        long long dead = json_integer_value(json_object_get(s, "dead"));
        json_t *parts = partitions_of(app, topic, name ? name : "", offs);
        json_t *view =
            json_pack("{s:s?, s:s, s:O?, s:s, s:O?, s:I, s:o}", "name", name, "context", ctx,
                      "version", json_object_get(s, "version"), "state",
                      effective_state(json_string_value(json_object_get(s, "state")), dead,
                                      json_integer_value(json_object_get(s, "age_ms"))),
                      "detail", json_object_get(s, "detail"), "dead_letters", (json_int_t)dead,
                      "partitions", parts);
        /* a shadow rebuild waiting for its swap: its comparison with the live tables */
        const char *state = json_string_value(json_object_get(s, "state"));
        json_t *cmp = state && !strcmp(state, "shadow_ready")
                          ? json_loads(json_string_value(json_object_get(s, "detail")), 0, NULL)
                          : NULL;
        if (json_is_object(cmp))
            json_object_set(view, "compare", cmp);
        json_decref(cmp);
        json_t *progress = state && !strcmp(state, "rebuilding")
                               ? rebuild_progress(json_string_value(json_object_get(s, "detail")))
                               : NULL;
        if (progress)
            json_object_set_new(view, "rebuild", progress);
        json_array_append_new(out, view);
    }
    json_decref(st);
    json_decref(offs);
}

void api_admin_projections(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    struct api_app *app = es_http_app(r);
    json_t *out = json_array();
    for (size_t i = 0; i < app->n_contexts; i++)
        context_projections(r, app->contexts[i], out);
    es_http_reply_json(r, 200, json_pack("{s:o}", "projections", out));
}

void api_admin_dead_letters(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    struct api_app *app = es_http_app(r);
    json_t *out = json_array();
    for (size_t i = 0; i < app->n_contexts; i++) {
        es_err_t err = ES_ERR_INIT;
        json_t *rows = api_query(r, app->contexts[i],
                                 "SELECT projection, topic, part, `offset`, error, "
                                 "DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%fZ') AS at FROM "
                                 "projection_dead_letters ORDER BY projection, part, `offset`",
                                 NULL, 0, &err);
        size_t j;
        json_t *d;
        json_array_foreach(rows, j, d)
        {
            char id[128];
            snprintf(id, sizeof id, "%s:%lld:%lld",
                     json_string_value(json_object_get(d, "projection")),
                     (long long)json_integer_value(json_object_get(d, "part")),
                     (long long)json_integer_value(json_object_get(d, "offset")));
            json_object_set_new(d, "id", json_string(id));
            json_object_set_new(d, "context", json_string(app->contexts[i]));
            json_object_set(d, "partition", json_object_get(d, "part"));
            json_object_del(d, "part");
            json_array_append(out, d);
        }
        if (!rows)
            es_warn("dead letters of %s: %s", app->contexts[i], err.msg);
        json_decref(rows);
    }
    es_http_reply_json(r, 200, json_pack("{s:o}", "dead_letters", out));
}

/* Whether some served context's projector keeps a status row for name (its context in ctx). */
static bool projection_known(es_http_req_t *r, const char *name, const char **ctx)
{
    struct api_app *app = es_http_app(r);
    for (size_t i = 0; i < app->n_contexts; i++) {
        es_err_t err = ES_ERR_INIT;
        json_t *rows = api_query(r, app->contexts[i],
                                 "SELECT 1 AS known FROM projection_status WHERE projection=?",
                                 (es_db_val_t[]){ES_DB_S(name)}, 1, &err);
        bool known = rows && json_array_size(rows) > 0;
        json_decref(rows);
        if (known) {
            *ctx = app->contexts[i];
            return true;
        }
    }
    return false;
}

struct ops_sent {
    es_http_pending_t *pending;
    json_t *action; /* the answer */
};

static void on_action_delivered(void *opaque, bool ok, const char *error)
{
    struct ops_sent *s = opaque;
    if (ok) {
        es_http_complete(s->pending, 202, s->action, 0, NULL);
    } else {
        es_error("operator action not sent: %s", error);
        es_http_complete(s->pending, 503,
                         api_problem_new(503, NULL, NULL, "the action could not be recorded"), 1,
                         NULL);
        json_decref(s->action);
    }
    free(s);
}

/* The body's reason (borrowed from *body, a new reference the caller frees), or NULL after
 * answering. extra: one more field the body may have (NULL: none). */
static const char *reason_or_reply(es_http_req_t *r, json_t **body, const char *extra)
{
    if (!(*body = api_json_body_or_reply(r)))
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(*body, k, v)
    {
        if (strcmp(k, "reason") && (!extra || strcmp(k, extra))) {
            api_reply_problem(r, 422, NULL, k, "unknown field '%s'", k);
            return NULL;
        }
    }
    const char *reason = json_string_value(json_object_get(*body, "reason"));
    size_t chars = 0; /* characters, as the contract counts them */
    for (const char *c = reason; c && *c; c++)
        chars += ((unsigned char)*c & 0xC0) != 0x80;
    if (!reason || chars < 1 || chars > REASON_MAX) {
        api_reply_problem(r, 422, NULL, "reason", "reason must be a string of 1 to %d characters",
                          REASON_MAX);
        return NULL;
    }
    return reason;
}

/* Produces the OperatorAction a (stolen; action_id, actor, reason and requested_at added) and
 * answers 202 with it once the broker has it. */
static void send_action(es_http_req_t *r, const struct api_principal *who, const char *reason,
                        json_t *a)
{
    struct api_app *app = es_http_app(r);
    char id[ES_UUID_LEN];
    es_uuid_random(id);
    json_object_set_new(a, "action_id", json_string(id));
    json_object_set_new(a, "actor", json_string(who->sub));
    json_object_set_new(a, "reason", json_string(reason));
    json_object_set_new(a, "requested_at", json_integer(es_wall_ms()));
    void *buf = NULL;
    size_t len = 0;
    es_err_t err = ES_ERR_INIT;
    if (ev_encode(app->codec, API_OPS_TOPIC, API_OPS_TYPE, a, &buf, &len, &err)) {
        api_reply_err(r, &err);
        json_decref(a);
        return;
    }
    struct ops_sent *s = xcalloc(1, sizeof *s);
    s->action = a;
    s->pending = es_http_defer(r);
    es_info("operator action %s %s on '%s' by '%s': %s", id,
            json_string_value(json_object_get(a, "action")),
            json_string_value(json_object_get(a, "projection")), who->sub, reason);
    if (api_producer_send(app->producer, API_OPS_TOPIC,
                          json_string_value(json_object_get(a, "projection")), buf, len, NULL,
                          on_action_delivered, s, &err))
        on_action_delivered(s, false, err.msg);
    free(buf);
}

/* POST /v1/admin/projections/{name}/<action>: the action is the route's last path segment. A
 * rebuild's body may say when its shadow is swapped in: "swap": "on_request" (the default: a
 * swap action) or "when_equal" (as soon as the comparison passes). */
void api_admin_projection_action(es_http_req_t *r, const struct api_principal *who)
{
    const char *name = es_http_param(r, "name"), *ctx = NULL;
    const char *action = strrchr(es_http_path(r), '/') + 1;
    bool rebuild = !strcmp(action, "rebuild");
    json_t *body = NULL;
    const char *reason = reason_or_reply(r, &body, rebuild ? "swap" : NULL);
    if (!reason)
        goto out;
    json_t *swap = json_object_get(body, "swap");
    if (swap && (!json_is_string(swap) || (strcmp(json_string_value(swap), "on_request") &&
                                           strcmp(json_string_value(swap), "when_equal")))) {
        api_reply_problem(r, 422, NULL, "swap", "swap must be 'on_request' or 'when_equal'");
        goto out;
    }
    if (!is_projection_name(name) || !projection_known(r, name, &ctx)) {
        api_reply_problem(r, 404, NULL, NULL, "no projection '%s'", name ? name : "");
        goto out;
    }
    send_action(r, who, reason,
                json_pack("{s:s, s:s, s:n, s:n, s:O?}", "action", action, "projection", name,
                          "dead_letter_part", "dead_letter_offset", "swap", swap));
out:
    json_decref(body);
}

/* "<projection>:<partition>:<offset>" into its parts; false when it is not one. */
static bool parse_dead_letter_id(const char *id, char *name, size_t cap, int *part, long long *off)
{
    const char *c1 = id ? strchr(id, ':') : NULL;
    if (!c1 || (size_t)(c1 - id) >= cap)
        return false;
    snprintf(name, cap, "%.*s", (int)(c1 - id), id);
    char tail;
    return is_projection_name(name) && sscanf(c1 + 1, "%d:%lld%c", part, off, &tail) == 2 &&
           *part >= 0 && *off >= 0;
}

/* POST /v1/admin/dead-letters/{id}/replay and /discard. */
void api_admin_dead_letter_action(es_http_req_t *r, const struct api_principal *who)
{
    const char *id = es_http_param(r, "id"), *ctx = NULL;
    const char *action = strrchr(es_http_path(r), '/') + 1;
    char name[72], topic[64];
    int part = 0;
    long long off = 0;
    json_t *body = NULL, *rows = NULL;
    const char *reason = reason_or_reply(r, &body, NULL);
    if (!reason)
        goto out;
    if (parse_dead_letter_id(id, name, sizeof name, &part, &off) &&
        projection_known(r, name, &ctx)) {
        es_err_t err = ES_ERR_INIT;
        es_topic(topic, sizeof topic, ctx, "events");
        const es_db_val_t k[] = {ES_DB_S(name), ES_DB_S(topic), ES_DB_I(part), ES_DB_I(off)};
        rows = api_query(r, ctx,
                         "SELECT 1 AS found FROM projection_dead_letters WHERE projection=? AND "
                         "topic=? AND part=? AND `offset`=?",
                         k, 4, &err);
    }
    if (!rows || json_array_size(rows) == 0) {
        api_reply_problem(r, 404, NULL, NULL, "no dead letter '%s'", id ? id : "");
        goto out;
    }
    send_action(r, who, reason,
                json_pack("{s:s, s:s, s:i, s:I}", "action", action, "projection", name,
                          "dead_letter_part", part, "dead_letter_offset", (json_int_t)off));
out:
    json_decref(rows);
    json_decref(body);
}
