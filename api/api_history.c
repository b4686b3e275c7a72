/* An aggregate's history over HTTP: GET /v1/history/{context}/{aggregate_id}. The positions come
 * from the context's event index (table event_index of eventshop_<ctx>, kept by its projector in
 * the transaction of its rows, projections/pj_runtime.h), read with the API's read-only user; only
 * those records are then read from <ctx>.events (es_kafka_read_offsets) and decoded with the
 * API's codec, so no request scans the topic.
 *
 * Who may read what: an admin every aggregate of every served context; a vendor the skus it owns
 * (the catalog's vendor_id) in catalog, inventory and pricing; a customer its own orders and its
 * own account. Another's aggregate is a 404, as an unknown one, so ids cannot be probed; a context
 * the role may never read is a 403. Sealed personal fields ("<f>_enc") are opened with their
 * owner's key for the entitled reader and shown as "<f>"; a forgotten owner's come out as null
 * and the event says "shredded": true; a password hash is never shown. */
#include "api_access.h"
#include "api_app.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "users_crypto.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX          128
#define KAFKA_WAIT_MS   5000
#define URN_UNKNOWN_AGG "urn:eventshop:problem:unknown_aggregate"

/* Whether ctx is a context whose projector keeps an event index. */
static bool has_index(const char *ctx)
{
    static const char *const indexed[] = {"catalog",  "inventory", "pricing", "orders",
                                          "payments", "shipping",  "users"};
    for (size_t i = 0; i < sizeof indexed / sizeof *indexed; i++)
        if (!strcmp(indexed[i], ctx))
            return true;
    return false;
}

static void reply_unknown(es_http_req_t *r, const char *ctx, const char *id)
{
    api_reply_problem(r, 404, URN_UNKNOWN_AGG, "aggregate_id", "no aggregate '%.128s' in %s", id,
                      ctx);
}

/* the aggregate id of the path when it can be one (1-128 bytes, no control character), else
 * NULL after answering 404 */
static const char *path_id_or_reply(es_http_req_t *r, const char *ctx)
{
    const char *id = es_http_param(r, "aggregate_id");
    size_t n = id ? strlen(id) : 0;
    bool ok = n >= 1 && n <= ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)id[i] >= 0x20 && id[i] != 0x7f;
    if (!ok) {
        reply_unknown(r, ctx, id ? id : "");
        return NULL;
    }
    return id;
}

/* 0 when who may read id's history in ctx; otherwise -1 after answering (403, 404 or 503). */
static int entitled_or_reply(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                             const char *id)
{
    if (!api_access_role_reads(who, ctx)) {
        api_reply_problem(r, 403, "urn:eventshop:problem:forbidden", "context",
                          "a %s may read no history of %s", who->role, ctx);
        return -1;
    }
    char owner[ID_MAX + 1];
    es_err_t err = ES_ERR_INIT;
    int found = api_access_owner(r, who, ctx, id, owner, sizeof owner, &err);
    if (found < 0) {
        char after[16];
        snprintf(after, sizeof after, "%d", api_db_retry_after_s(r, ctx));
        es_http_add_header(r, "Retry-After", after);
        api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", ctx);
        return -1;
    }
    if (found && api_access_is_owner(who, owner))
        return 0;
    reply_unknown(r, ctx, id); /* another's is not found either: no oracle of ids */
    return -1;
}

int api_history_unseal(json_t *payload, const unsigned char *key)
{
    const char *owner = json_string_value(json_object_get(payload, "user_id"));
    if (!owner)
        owner = json_string_value(json_object_get(payload, "customer_id"));
    const char *k;
    json_t *v;
    void *tmp;
    int shredded = 0;
    json_object_foreach_safe(payload, tmp, k, v)
    {
        size_t n = strlen(k);
        if (n <= 4 || strcmp(k + n - 4, "_enc"))
            continue;
        char field[64];
        snprintf(field, sizeof field, "%.*s", (int)(n - 4), k);
        json_t *shown = json_null();
        if (json_is_string(v) && strcmp(field, "password_hash")) {
            if (!key || !owner) {
                shredded = 1;
            } else {
                es_err_t err = ES_ERR_INIT;
                char *plain = users_open(key, owner, field, json_string_value(v), &err);
                if (!plain)
                    return -1;
                /* an address is sealed as JSON text: shown as the object it was */
                shown = json_loads(plain, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                if (!json_is_object(shown)) {
                    json_decref(shown);
                    shown = json_string(plain);
                }
                sodium_memzero(plain, strlen(plain));
                free(plain);
            }
        }
        json_object_del(payload, k);
        json_object_set_new(payload, field, shown);
    }
    if (shredded && json_object_get(payload, "email_index"))
        json_object_set_new(payload, "email_index", json_null());
    return shredded;
}

/* The rows of the page (index rows, version order) and what the Kafka reads fill in. */
struct page {
    ev_codec_t *codec;
    json_t *rows;  /* borrowed: part, offset, version, event_type, occurred_at */
    json_t *items; /* the events decoded, one slot per row (null until read) */
    es_err_t err;
};

static int page_take(const es_kafka_msg_t *m, void *arg)
{
    struct page *pg = arg;
    size_t i;
    json_t *row;
    json_array_foreach(pg->rows, i, row)
    {
        if (json_integer_value(json_object_get(row, "part")) != m->partition ||
            json_integer_value(json_object_get(row, "offset")) != m->offset)
            continue;
        const char *full_name = NULL;
        json_t *value = NULL;
        if (!m->value ||
            ev_decode(pg->codec, m->value, m->len, &full_name, &value, &pg->err) != 0) {
            if (!m->value)
                es_set(&pg->err, ES_EINVAL, "%s[%d]@%lld has no payload", m->topic,
                       (int)m->partition, (long long)m->offset);
            return -1;
        }
        json_array_set_new(pg->items, i,
                           json_pack("{s:s, s:o}", "type", full_name, "payload", value));
    }
    return 0;
}

static int offset_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Reads the page's events from <ctx>.events, a partition at a time: 0, or -1 with pg->err. */
static int page_read(struct page *pg, const char *ctx)
{
    char topic[64];
    es_topic(topic, sizeof topic, ctx, "events");
    size_t n = json_array_size(pg->rows);
    int64_t *offsets = xmalloc((n ? n : 1) * sizeof *offsets);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int32_t part =
            (int32_t)json_integer_value(json_object_get(json_array_get(pg->rows, i), "part"));
        bool seen = false; /* this partition was read with an earlier row's */
        for (size_t j = 0; j < i && !seen; j++)
            seen = json_integer_value(json_object_get(json_array_get(pg->rows, j), "part")) == part;
        if (seen)
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++) {
            const json_t *row = json_array_get(pg->rows, j);
            if (json_integer_value(json_object_get(row, "part")) == part)
                offsets[k++] = json_integer_value(json_object_get(row, "offset"));
        }
        qsort(offsets, k, sizeof *offsets, offset_cmp);
        rc = es_kafka_read_offsets(topic, part, offsets, k, page_take, pg, KAFKA_WAIT_MS, &pg->err);
    }
    free(offsets);
    return rc ? -1 : 0;
}

/* Opens (or nulls) the sealed fields of item's payload for who: 0, or -1 after answering. */
static int unseal_or_reply(es_http_req_t *r, const struct api_principal *who, json_t *item,
                           struct api_owner_key *ok)
{
    es_err_t err = ES_ERR_INIT;
    if (api_access_open_personal(r, who, item, ok, &err) == 0)
        return 0;
    api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
    return -1;
}

/* The items of rows (index rows) from pg->items (decoded events): new, or NULL after answering. */
static json_t *items_or_reply(es_http_req_t *r, const struct api_principal *who, struct page *pg)
{
    struct api_owner_key ok = {.state = 0};
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(pg->rows, i, row)
    {
        json_t *item = json_array_get(pg->items, i);
        if (!json_is_object(item)) {
            es_error("history: %s[%lld]@%lld is in the index but was not read",
                     json_string_value(json_object_get(row, "event_type")),
                     json_integer_value(json_object_get(row, "part")),
                     json_integer_value(json_object_get(row, "offset")));
            api_reply_problem(r, 503, NULL, NULL, "the event log is unavailable");
            json_decref(out);
            out = NULL;
            break;
        }
        json_t *payload = json_object_get(item, "payload");
        json_t *md = json_object_get(payload, "metadata");
        char pos[48];
        snprintf(pos, sizeof pos, "%lld:%lld", json_integer_value(json_object_get(row, "part")),
                 json_integer_value(json_object_get(row, "offset")));
        json_object_set(item, "version", json_object_get(row, "version"));
        json_object_set(item, "occurred_at", json_object_get(row, "occurred_at"));
        json_object_set_new(item, "position", json_string(pos));
        json_object_set(item, "event_id", json_object_get(md, "event_id"));
        json_object_set(item, "actor", json_object_get(md, "actor"));
        json_object_del(payload, "metadata");
        if (unseal_or_reply(r, who, item, &ok)) {
            json_decref(out);
            out = NULL;
            break;
        }
        json_array_append(out, item);
    }
    api_access_key_release(&ok);
    return out;
}

/* ?after_version= (0 when absent): the version after which the page starts, or -1 after 400. */
static long long after_version_or_reply(es_http_req_t *r)
{
    char *v = es_http_query_dup(r, "after_version");
    long long after = 0;
    char *end = NULL;
    if (v) {
        after = strtoll(v, &end, 10);
        if (!v[0] || *end || after < 0 || v[0] == '+' || v[0] == '-' || strlen(v) > 18)
            after = -1;
    }
    free(v);
    if (after < 0)
        api_reply_problem(r, 400, NULL, "after_version",
                          "after_version must be a version, 0 or more");
    return after;
}

/* The path with s percent-encoded but for RFC 3986's unreserved characters, appended to buf. */
static void append_encoded(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            buf[n++] = (char)c;
        else
            n += (size_t)snprintf(buf + n, size - n, "%%%02X", c);
    }
    buf[n] = 0;
}

static void run_history(es_http_req_t *r, const struct api_principal *who)
{
    const char *ctx = es_http_param(r, "context");
    const char *id = es_http_param(r, "aggregate_id");
    int limit = api_query_limit_or_reply(r);
    long long after = limit < 0 ? -1 : after_version_or_reply(r);
    if (after < 0 || entitled_or_reply(r, who, ctx, id))
        return;
    es_db_val_t p[] = {ES_DB_S(id), ES_DB_I(after), ES_DB_I(limit + 1)};
    json_t *rows = api_query_or_reply(
        r, ctx,
        "SELECT part, `offset`, aggregate_version AS version, event_type, occurred_at "
        "FROM event_index WHERE aggregate_id = ? AND aggregate_version > ? "
        "ORDER BY aggregate_version, part, `offset` LIMIT ?",
        p, 3);
    if (!rows)
        return;
    if (json_array_size(rows) == 0 && after == 0) {
        json_decref(rows);
        reply_unknown(r, ctx, id);
        return;
    }
    bool more = json_array_size(rows) > (size_t)limit;
    if (more)
        json_array_remove(rows, (size_t)limit);
    struct page pg = {((struct api_app *)es_http_app(r))->codec, rows, json_array(), ES_ERR_INIT};
    for (size_t i = 0; i < json_array_size(rows); i++)
        json_array_append_new(pg.items, json_null());
    json_t *items = NULL;
    if (page_read(&pg, ctx)) {
        es_error("history of %s '%s': %s", ctx, id, pg.err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the event log is unavailable");
    } else {
        items = items_or_reply(r, who, &pg);
    }
    if (items) {
        char next[512] = "";
        if (more) {
            snprintf(next, sizeof next, "/v1/history/%s/", ctx);
            append_encoded(next, sizeof next - 64, id);
            long long last = json_integer_value(
                json_object_get(json_array_get(rows, json_array_size(rows) - 1), "version"));
            size_t n = strlen(next);
            snprintf(next + n, sizeof next - n, "?limit=%d&after_version=%lld", limit, last);
            char link[560];
            snprintf(link, sizeof link, "<%s>; rel=\"next\"", next);
            es_http_add_header(r, "Link", link);
        }
        es_http_reply_json(r, 200,
                           json_pack("{s:s, s:s, s:o, s:o}", "context", ctx, "aggregate_id", id,
                                     "items", items, "next",
                                     more ? json_string(next) : json_null()));
    }
    json_decref(pg.items);
    json_decref(rows);
}

void api_history_get(es_http_req_t *r, const struct api_principal *who)
{
    const char *ctx = es_http_param(r, "context");
    if (!ctx || !has_index(ctx) || !api_context_enabled(es_http_app(r), ctx)) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_context", "context",
                          "no context '%.32s'", ctx ? ctx : "");
        return;
    }
    if (path_id_or_reply(r, ctx))
        run_history(r, who);
}
