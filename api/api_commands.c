/* Commands over HTTP, for every context: api_command_send turns a validated body into a command
 * record on <ctx>.commands; GET /v1/commands/{id} tells a command's outcome to its sender (or an
 * admin), and is a 404 for anyone else, as for an unknown id, so that it reveals nothing.
 *
 * The sender is the actor of the command's metadata, which the handler copies into its
 * CommandResult; until the result arrives, the API that sent the command knows it (noted when
 * sending). A command sent through another replica and not decided yet is a 404 here until its
 * result arrives (a few milliseconds, normally): a client polling it retries.
 *
 * A creating command's 202 names what it creates (e.g. "order_id", "sku", "user_id") and links
 * to it (Link: <url>; rel="related"), while Location stays the command's URL.
 *
 * A command is answered only once Kafka has it (the delivery report): 202 pending, or with
 * Prefer: wait=N the outcome from the results thread, or 202 again when N seconds pass. The
 * Idempotency-Key maps to a stable command id, so a retry is the same command: if its outcome
 * is known it is answered at once, else it is sent again and the handler dedupes. */
#include "api_app.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "es_trace.h"
#include "es_zipkin.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct in_flight {
    struct api_app *app;
    es_http_pending_t *pending;
    char command_id[ES_UUID_LEN];
    struct api_created created; /* key "" if none */
    int wait_s;
};

/* The next hop of the request's trace, or a new trace; parent gets the client's traceparent
 * when valid, "" otherwise. */
static void make_traceparent(es_http_req_t *r, char out[ES_TRACEPARENT_LEN],
                             char parent[ES_TRACEPARENT_LEN])
{
    char *tp = es_http_header_dup(r, "traceparent");
    es_trace_child(tp, out);
    snprintf(parent, ES_TRACEPARENT_LEN, "%s", es_trace_valid(tp) ? tp : "");
    free(tp);
}

static void on_delivered(void *opaque, bool ok, const char *error)
{
    struct in_flight *f = opaque;
    if (!ok) {
        es_error("command %s not sent: %s", f->command_id, error);
        es_http_complete(f->pending, 503,
                         api_problem_new(503, NULL, NULL, "the command could not be queued"), 1,
                         NULL);
    } else if (f->wait_s > 0) {
        api_results_wait(f->app->results, f->command_id, f->pending, f->wait_s,
                         f->created.key[0] ? &f->created : NULL);
    } else {
        struct api_answer a;
        api_answer_pending(&a, f->command_id, f->created.key[0] ? &f->created : NULL);
        api_complete_answer(f->pending, &a);
    }
    free(f);
}

/* eventshop_api_commands_total{context, type}: the registry hands back the same counter for
 * the same labels */
static void count_command(const char *ctx, const char *short_type)
{
    char labels[160];
    snprintf(labels, sizeof labels, "context=\"%s\",type=\"%s\"", ctx, short_type);
    es_metric_add(es_counter("eventshop_api_commands_total", "commands sent to Kafka", labels), 1);
}

/* One command on its way: what the handler gave, the headers it takes from the request and what
 * is made for it. */
struct command {
    const struct api_principal *who;
    const char *ctx, *type, *aggregate_id, *created_location; /* borrowed from the caller */
    char *key, *if_match, *corr, *prefer; /* the request's headers (owned; NULL when absent) */
    int64_t expected;                     /* from If-Match; -1: none */
    char id[ES_UUID_LEN];
    char traceparent[ES_TRACEPARENT_LEN], parent[ES_TRACEPARENT_LEN];
    int64_t start_us;
};

static void command_release(struct command *c)
{
    free(c->key);
    free(c->if_match);
    free(c->corr);
    free(c->prefer);
}

/* The context is served and the headers are well formed: 0 with c->expected and c->id set, or
 * -1 after answering 503 or 400. */
static int check_request_or_reply(es_http_req_t *r, struct command *c)
{
    if (!api_context_enabled(es_http_app(r), c->ctx)) { /* a route of a context not served */
        api_reply_problem(r, 503, NULL, NULL, "the %s context is not served here", c->ctx);
        return -1;
    }
    if (c->key && !api_is_valid_idempotency_key(c->key)) {
        api_reply_problem(r, 400, NULL, "Idempotency-Key",
                          "Idempotency-Key must be 1-200 "
                          "printable characters");
        return -1;
    }
    c->expected = -1;
    if (c->if_match && api_parse_if_match(c->if_match, &c->expected)) {
        api_reply_problem(r, 400, NULL, "If-Match", "If-Match '%.64s' is not a version",
                          c->if_match);
        return -1;
    }
    if (c->key)
        es_uuid_derive(c->who->sub, c->key, c->id);
    else
        es_uuid_random(c->id);
    return 0;
}

/* A retry of an Idempotency-Key whose outcome is known gets it at once: true when answered. */
static bool answered_known(es_http_req_t *r, const struct command *c)
{
    struct api_app *app = es_http_app(r);
    struct api_outcome known;
    if (!c->key || !api_results_get(app->results, c->id, &known))
        return false;
    struct api_answer a;
    api_answer_outcome(&a, &known, c->created_location);
    api_reply_answer(r, &a);
    return true;
}

/* The command's CommandMetadata (new reference). */
static json_t *command_metadata(const struct command *c)
{
    const struct api_principal *who = c->who;
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "command_id", c->id, "correlation_id",
        c->corr && api_is_valid_idempotency_key(c->corr) ? c->corr : c->id, "aggregate_id",
        c->aggregate_id, "issued_at", (json_int_t)es_wall_ms(), "actor", who->sub, "actor_role",
        who->role, "actor_vendor", who->vendor_id[0] ? json_string(who->vendor_id) : json_null(),
        "expected_version", c->expected >= 0 ? json_integer(c->expected) : json_null());
}

/* Hands the encoded command (buf, len: borrowed) to the producer for topic and defers the answer
 * to its delivery report (on_delivered). 0, or -1 after answering 503. */
static int produce_or_reply(es_http_req_t *r, const struct command *c, const char *topic,
                            const void *buf, size_t len)
{
    struct api_app *app = es_http_app(r);
    es_err_t err = ES_ERR_INIT;
    struct in_flight *f = xcalloc(1, sizeof *f);
    f->app = app;
    snprintf(f->command_id, sizeof f->command_id, "%s", c->id);
    if (c->created_location)
        api_created_init(&f->created, c->type, c->aggregate_id, c->created_location);
    f->wait_s = api_parse_prefer_wait(c->prefer);
    api_results_note_sent(app->results, c->id, c->who->sub);
    f->pending = es_http_defer(r);
    if (api_producer_send(app->producer, topic, c->aggregate_id, buf, len, c->traceparent,
                          on_delivered, f, &err)) {
        es_error("command %s not sent: %s", c->id, err.msg);
        es_http_complete(f->pending, 503,
                         api_problem_new(503, NULL, NULL, "the command could not be queued"), 1,
                         NULL);
        free(f);
        return -1;
    }
    return 0;
}

/* The sent command counted, logged and, with tracing on, its request span ended. */
static void note_sent(es_http_req_t *r, const struct command *c)
{
    char trace_id[33];
    snprintf(trace_id, sizeof trace_id, "%.32s", c->traceparent + 3);
    const char *short_type = strrchr(c->type, '.');
    short_type = short_type ? short_type + 1 : c->type;
    count_command(c->ctx, short_type);
    es_log_kv(es_trace_log_level(c->traceparent), trace_id,
              ES_F("command_id", c->id, "command_type", short_type, "context", c->ctx),
              "command %s %s %s '%s' by '%s' (%s)", c->id, short_type, api_aggregate_key(c->type),
              c->aggregate_id, c->who->sub, c->who->role);
    if (es_zipkin_enabled()) { /* the request span, parent of the handler's decide span */
        char name[160];
        snprintf(name, sizeof name, "%s %s", es_http_method(r), short_type);
        es_zipkin_span(c->traceparent, c->parent, name, "SERVER", c->start_us,
                       es_zipkin_now_us() - c->start_us,
                       ES_F("http.path", es_http_path(r), "command_id", c->id, "context", c->ctx));
    }
}

void api_command_send(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                      const char *command_type, const char *aggregate_id, json_t *fields,
                      const char *created_location)
{
    struct api_app *app = es_http_app(r);
    struct command c = {.who = who,
                        .ctx = ctx,
                        .type = command_type,
                        .aggregate_id = aggregate_id,
                        .created_location = created_location,
                        .key = es_http_header_dup(r, "Idempotency-Key"),
                        .if_match = es_http_header_dup(r, "If-Match"),
                        .corr = es_http_header_dup(r, "X-Correlation-Id"),
                        .prefer = es_http_header_dup(r, "Prefer"),
                        .start_us = es_zipkin_now_us()};
    void *buf = NULL;
    size_t len = 0;
    es_err_t err = ES_ERR_INIT;
    char topic[64];
    if (check_request_or_reply(r, &c) || answered_known(r, &c))
        goto out;
    make_traceparent(r, c.traceparent, c.parent);
    json_object_set_new(fields, "metadata", command_metadata(&c));
    es_topic(topic, sizeof topic, ctx, "commands");
    if (ev_encode(app->codec, topic, command_type, fields, &buf, &len, &err)) {
        if (err.code == ES_EINVAL)
            api_reply_problem(r, 422, NULL, NULL, "%s", err.msg);
        else
            api_reply_err(r, &err);
        goto out;
    }
    if (produce_or_reply(r, &c, topic, buf, len) == 0)
        note_sent(r, &c);
out:
    json_decref(fields);
    free(buf);
    command_release(&c);
}

json_t *api_json_body_or_reply(es_http_req_t *r)
{
    return api_json_body_nested_or_reply(r, API_MAX_DEPTH);
}

json_t *api_json_body_nested_or_reply(es_http_req_t *r, int max_depth)
{
    char *ct = es_http_header_dup(r, "Content-Type");
    bool ok = api_is_json_type(ct);
    free(ct);
    if (!ok) {
        api_reply_problem(r, 415, NULL, NULL, "the body must be application/json");
        return NULL;
    }
    size_t len = 0;
    const char *body = es_http_body(r, &len);
    struct api_verr e = {0};
    json_t *v = api_parse_body(body, len, API_MAX_BODY, max_depth, &e);
    if (!v)
        api_reply_verr(r, &e);
    return v;
}

const char *api_path_sku_or_reply(es_http_req_t *r)
{
    const char *sku = es_http_param(r, "sku");
    struct api_verr e = {0};
    if (api_validate_sku(sku, 404, &e)) {
        api_reply_verr(r, &e);
        return NULL;
    }
    return sku;
}

void api_commands_get(es_http_req_t *r, const struct api_principal *who)
{
    struct api_app *app = es_http_app(r);
    const char *id = es_http_param(r, "id");
    if (!id || !es_uuid_valid(id)) {
        api_reply_problem(r, 404, NULL, "id", "'%.64s' is not a command id", id ? id : "");
        return;
    }
    struct api_outcome o;
    struct api_answer a;
    bool decided = false;
    bool found = api_results_find(app->results, id, &o, &decided);
    /* another principal's command is not found either: no oracle of command ids */
    if (!found || (strcmp(who->role, "admin") && (!o.actor[0] || strcmp(o.actor, who->sub)))) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_command", "id", "no command '%s'",
                          id);
        return;
    }
    if (decided)
        api_answer_outcome(&a, &o, NULL); /* created earlier, not by this request: 200 */
    else
        api_answer_pending(&a, id, NULL);
    api_reply_answer(r, &a);
}
