#include "sr_server.h"
#include "es_http.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "sr_compat.h"
#include "sr_log.h"
#include "sr_store.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define SR_CONTENT_TYPE "application/vnd.schemaregistry.v1+json"
#define MAX_BODY        (4 << 20)
#define REPLAY_TIMEOUT  60000

struct sr_server {
    sr_log_t *log;
    sr_store_t *store;
    es_http_server_t *http;
    es_metric_t *schemas; /* gauge: distinct schema ids */
};

/* ---- answers ------------------------------------------------------------------------------- */

static void reply(es_http_req_t *r, int status, json_t *body /* stolen */)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    es_http_reply(r, status, SR_CONTENT_TYPE, text, strlen(text));
    free(text);
}

/* Confluent's error body; the status is the code, or its first three digits. */
static void reply_error(es_http_req_t *r, int code, const char *msg)
{
    int status = code < 1000 ? code : code / 100;
    reply(r, status, json_pack("{s:i, s:s}", "error_code", code, "message", msg));
}

/* Answers out (stolen) with 200, or the error rc carries. */
static void reply_result(es_http_req_t *r, int rc, json_t *out, const es_err_t *err)
{
    if (rc)
        reply_error(r, rc, err->msg);
    else
        reply(r, 200, out);
}

static bool query_is_true(es_http_req_t *r, const char *name)
{
    char *v = es_http_query_dup(r, name);
    bool yes = v && strcmp(v, "true") == 0;
    free(v);
    return yes;
}

/* The JSON object body, or NULL after answering 400. */
static json_t *body_or_reply(es_http_req_t *r)
{
    size_t len;
    const char *body = es_http_body(r, &len);
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        char msg[256];
        snprintf(msg, sizeof msg, "the request body is not a JSON object: %s", jerr.text);
        reply_error(r, SR_EBAD_REQUEST, j ? "the request body is not a JSON object" : msg);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The JSON object body (new), with *schema its "schema" string (borrowed from it); or NULL after
 * answering 400 (not a JSON object) or 422 (no schema string, or references). */
static json_t *schema_body_or_reply(es_http_req_t *r, const char **schema)
{
    json_t *body = body_or_reply(r);
    if (!body)
        return NULL;
    json_t *refs = json_object_get(body, "references");
    *schema = json_string_value(json_object_get(body, "schema"));
    if (!*schema)
        reply_error(r, SR_EINVALID_SCHEMA, "invalid schema: the body has no 'schema' string");
    else if (json_array_size(refs) > 0)
        reply_error(r, SR_EINVALID_SCHEMA, "invalid schema: schema references are not supported");
    else
        return body;
    json_decref(body);
    return NULL;
}

/* An id path parameter, or -1 after answering 404. */
static long id_or_reply(es_http_req_t *r)
{
    const char *s = es_http_param(r, "id");
    char *end;
    errno = 0;
    long id = strtol(s, &end, 10);
    if (errno || *end || end == s || id < 0 || id > INT_MAX) {
        char msg[128];
        snprintf(msg, sizeof msg, "schema %.60s not found", s);
        reply_error(r, SR_ESCHEMA_NOT_FOUND, msg);
        return -1;
    }
    return id;
}

static sr_server_t *server(es_http_req_t *r)
{
    return es_http_app(r);
}

/* ---- handlers ------------------------------------------------------------------------------ */

static void h_root(es_http_req_t *r)
{
    reply(r, 200, json_object());
}

/* /healthz: the HTTP loops turn (es_metrics heartbeats); /readyz: a broker answers (sr_log). */
static void h_probe(es_http_req_t *r, bool readiness)
{
    char *body = NULL;
    int status = es_metrics_probe(readiness, &body);
    es_http_reply(r, status, "application/json", body, strlen(body));
    free(body);
}

static void h_healthz(es_http_req_t *r)
{
    h_probe(r, false);
}

static void h_readyz(es_http_req_t *r)
{
    h_probe(r, true);
}

static void h_metrics(es_http_req_t *r)
{
    char *text = es_metrics_render();
    es_http_reply(r, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}

static void h_schema_types(es_http_req_t *r)
{
    reply(r, 200, json_pack("[s]", "AVRO"));
}

static void h_register(es_http_req_t *r)
{
    sr_server_t *s = server(r);
    const char *schema;
    json_t *body = schema_body_or_reply(r, &schema);
    if (!body)
        return;
    es_err_t err = ES_ERR_INIT;
    int id = 0;
    int rc = sr_store_register(s->store, es_http_param(r, "subject"),
                               json_string_value(json_object_get(body, "schemaType")), schema,
                               strlen(schema), &id, NULL, &err);
    es_metric_set(s->schemas, (double)sr_store_schema_count(s->store));
    reply_result(r, rc, rc ? NULL : json_pack("{s:i}", "id", id), &err);
    json_decref(body);
}

static void h_lookup(es_http_req_t *r)
{
    const char *schema;
    json_t *body = schema_body_or_reply(r, &schema), *out = NULL;
    if (!body)
        return;
    es_err_t err = ES_ERR_INIT;
    int rc = sr_store_lookup(server(r)->store, es_http_param(r, "subject"), schema, strlen(schema),
                             &out, &err);
    reply_result(r, rc, out, &err);
    json_decref(body);
}

/* A read or a delete answered with the store's result as it is. The route's data is one of
 * these: the store function, fed the path's id, or its subject and version (NULL on a route
 * without one). */
struct store_call {
    int (*by_id)(sr_store_t *st, long id, json_t **out, es_err_t *err);
    int (*by_subject)(sr_store_t *st, const char *subject, const char *version, json_t **out,
                      es_err_t *err);
};

/* sr_store_versions as a subject call: its route has no version. */
static int live_versions(sr_store_t *st, const char *subject, const char *version, json_t **out,
                         es_err_t *err)
{
    (void)version;
    return sr_store_versions(st, subject, out, err);
}

static const struct store_call get_schema = {.by_id = sr_store_get_schema};
static const struct store_call get_schema_versions = {.by_id = sr_store_get_schema_versions};
static const struct store_call get_versions = {.by_subject = live_versions};
static const struct store_call get_version = {.by_subject = sr_store_get_version};
static const struct store_call delete_versions = {.by_subject = sr_store_delete};

static void h_store_call(es_http_req_t *r)
{
    const struct store_call *call = es_http_route_data(r);
    es_err_t err = ES_ERR_INIT;
    json_t *out = NULL;
    int rc;
    if (call->by_id) {
        long id = id_or_reply(r);
        if (id < 0)
            return;
        rc = call->by_id(server(r)->store, id, &out, &err);
    } else {
        rc = call->by_subject(server(r)->store, es_http_param(r, "subject"),
                              es_http_param(r, "version"), &out, &err);
    }
    reply_result(r, rc, out, &err);
}

static void h_subjects(es_http_req_t *r)
{
    reply(r, 200, sr_store_subjects(server(r)->store));
}

static void h_version_schema(es_http_req_t *r)
{
    es_err_t err = ES_ERR_INIT;
    json_t *out = NULL;
    int rc = sr_store_get_version(server(r)->store, es_http_param(r, "subject"),
                                  es_http_param(r, "version"), &out, &err);
    if (rc) {
        reply_error(r, rc, err.msg);
        return;
    }
    const char *text = json_string_value(json_object_get(out, "schema"));
    es_http_reply(r, 200, SR_CONTENT_TYPE, text, strlen(text));
    json_decref(out);
}

static void h_compat(es_http_req_t *r)
{
    const char *schema;
    json_t *body = schema_body_or_reply(r, &schema);
    if (!body)
        return;
    es_err_t err = ES_ERR_INIT;
    json_t *msgs = json_array(), *out = NULL;
    bool ok = false;
    int rc = sr_store_test(server(r)->store, es_http_param(r, "subject"),
                           es_http_param(r, "version"), schema, strlen(schema), &ok, msgs, &err);
    if (!rc) {
        out = json_pack("{s:b}", "is_compatible", ok);
        if (query_is_true(r, "verbose"))
            json_object_set(out, "messages", msgs);
    }
    reply_result(r, rc, out, &err);
    json_decref(msgs);
    json_decref(body);
}

static void h_get_config(es_http_req_t *r)
{
    es_err_t err = ES_ERR_INIT;
    const char *level = NULL;
    int rc = sr_store_get_level(server(r)->store, es_http_param(r, "subject"),
                                query_is_true(r, "defaultToGlobal"), &level, &err);
    reply_result(r, rc, rc ? NULL : json_pack("{s:s}", "compatibilityLevel", level), &err);
}

static void h_put_config(es_http_req_t *r)
{
    json_t *body = body_or_reply(r);
    if (!body)
        return;
    json_t *level = json_object_get(body, "compatibility");
    if (!level)
        level = json_object_get(body, "compatibilityLevel");
    es_err_t err = ES_ERR_INIT;
    int rc = sr_store_set_level(server(r)->store, es_http_param(r, "subject"),
                                json_string_value(level), &err);
    reply_result(
        r, rc,
        rc ? NULL
           : json_pack("{s:s}", "compatibility",
                       sr_level_name((sr_level_t)sr_level_parse(json_string_value(level)))),
        &err);
    json_decref(body);
}

static void h_delete_config(es_http_req_t *r)
{
    es_err_t err = ES_ERR_INIT;
    const char *old = NULL;
    int rc = sr_store_delete_level(server(r)->store, es_http_param(r, "subject"), &old, &err);
    reply_result(r, rc, rc ? NULL : json_pack("{s:s}", "compatibilityLevel", old), &err);
}

static void h_not_found(es_http_req_t *r);

/* Catch-alls at the end answer unknown paths with Confluent's body (es_http's own 404 is
 * problem+json). Paths deeper than 7 segments still get es_http's answer. */
#define CATCH_ALL(m)                                                                               \
    {m, "/{a}", h_not_found, NULL}, {m, "/{a}/{b}", h_not_found, NULL},                            \
        {m, "/{a}/{b}/{c}", h_not_found, NULL}, {m, "/{a}/{b}/{c}/{d}", h_not_found, NULL},        \
        {m, "/{a}/{b}/{c}/{d}/{e}", h_not_found, NULL},                                            \
        {m, "/{a}/{b}/{c}/{d}/{e}/{f}", h_not_found, NULL},                                        \
    {                                                                                              \
        m, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}", h_not_found, NULL                                       \
    }

static const es_http_route_t routes[] = {
    {"GET", "/", h_root, NULL},
    {"GET", "/healthz", h_healthz, NULL},
    {"GET", "/readyz", h_readyz, NULL},
    {"GET", "/metrics", h_metrics, NULL},
    {"GET", "/schemas/types", h_schema_types, NULL},
    {"GET", "/schemas/ids/{id}", h_store_call, &get_schema},
    {"GET", "/schemas/ids/{id}/versions", h_store_call, &get_schema_versions},
    {"GET", "/subjects", h_subjects, NULL},
    {"POST", "/subjects/{subject}", h_lookup, NULL},
    {"DELETE", "/subjects/{subject}", h_store_call, &delete_versions},
    {"GET", "/subjects/{subject}/versions", h_store_call, &get_versions},
    {"POST", "/subjects/{subject}/versions", h_register, NULL},
    {"GET", "/subjects/{subject}/versions/{version}", h_store_call, &get_version},
    {"DELETE", "/subjects/{subject}/versions/{version}", h_store_call, &delete_versions},
    {"GET", "/subjects/{subject}/versions/{version}/schema", h_version_schema, NULL},
    {"POST", "/compatibility/subjects/{subject}/versions/{version}", h_compat, NULL},
    {"POST", "/compatibility/subjects/{subject}/versions", h_compat, NULL},
    {"GET", "/config", h_get_config, NULL},
    {"PUT", "/config", h_put_config, NULL},
    {"DELETE", "/config", h_delete_config, NULL},
    {"GET", "/config/{subject}", h_get_config, NULL},
    {"PUT", "/config/{subject}", h_put_config, NULL},
    {"DELETE", "/config/{subject}", h_delete_config, NULL},
    CATCH_ALL("GET"),
    CATCH_ALL("POST"),
    CATCH_ALL("PUT"),
    CATCH_ALL("DELETE"),
};

/* Does pattern match path segment by segment ({x} matches any non-empty segment)? */
static bool pattern_matches(const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (*pattern++ != '/' || *path++ != '/')
            return false;
        const char *pe = strchr(pattern, '/'), *se = strchr(path, '/');
        size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t sl = se ? (size_t)(se - path) : strlen(path);
        if (pattern[0] == '{' ? sl == 0 : pl != sl || memcmp(pattern, path, pl) != 0)
            return false;
        pattern += pl;
        path += sl;
    }
    return !*pattern && !*path;
}

static void h_not_found(es_http_req_t *r)
{
    for (size_t i = 0; routes[i].fn != h_not_found; i++) {
        if (pattern_matches(routes[i].pattern, es_http_path(r))) {
            reply_error(r, 405, "HTTP 405 Method Not Allowed");
            return;
        }
    }
    reply_error(r, 404, "HTTP 404 Not Found");
}

/* ---- life cycle ---------------------------------------------------------------------------- */

sr_server_t *sr_server_new(const struct sr_server_config *cfg, es_err_t *err)
{
    const char *colon = strrchr(cfg->addr, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == cfg->addr || !end || *end || port <= 0 || port > 65535) {
        es_set(err, ES_EINVAL, "registry address '%s' is not host:port", cfg->addr);
        return NULL;
    }
    sr_server_t *s = xcalloc(1, sizeof *s);
    char *host = xstrndup(cfg->addr, (size_t)(colon - cfg->addr));
    s->log = sr_log_new(cfg->topic, err);
    if (!s->log)
        goto fail;
    s->store = sr_store_new(sr_log_write, s->log);
    sr_log_set_store(s->log, s->store);
    if (sr_log_replay(cfg->topic, s->store, REPLAY_TIMEOUT, err))
        goto fail;
    s->schemas = es_gauge("eventshop_registry_schemas", "Distinct schemas (ids) registered", "");
    es_metric_set(s->schemas, (double)sr_store_schema_count(s->store));
    es_info("read %zu schemas from '%s'", sr_store_schema_count(s->store), cfg->topic);
    es_http_config_t hc = {.host = host,
                           .port = (int)port,
                           .threads = cfg->threads > 0 ? cfg->threads : 1,
                           .max_body = MAX_BODY,
                           .app = s};
    s->http = es_http_server_new(&hc, routes, sizeof routes / sizeof *routes, err);
    if (!s->http)
        goto fail;
    free(host);
    es_metrics_set_ready(true);
    return s;
fail:
    free(host);
    sr_server_free(s);
    return NULL;
}

int sr_server_run(sr_server_t *s)
{
    return es_http_server_run(s->http);
}

void sr_server_stop(sr_server_t *s)
{
    es_http_server_stop(s->http);
}

void sr_server_free(sr_server_t *s)
{
    if (!s)
        return;
    if (s->http)
        es_http_server_free(s->http);
    sr_store_free(s->store);
    sr_log_free(s->log);
    free(s);
}
