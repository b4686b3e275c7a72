/* What the operator console shows live besides the projections (admin only).
 *
 * GET /v1/admin/activity: per served context, the commands sent (the sum of the high watermarks
 * of <ctx>.commands; the API's producer is idempotent, so its commands take one offset each, but
 * a subscriber's transaction (the order saga's) adds its commit marker, and a partition whose
 * last write was one shows a lag of 1 at rest), the outcomes this process read (accepted and
 * rejected, api_results_counts: every API process reads every result) and the handler's position:
 * its group's committed offsets on <ctx>.commands (an OffsetFetch through the admin API) and its
 * lag behind the watermarks, both asked on the API's producer client: a client per context kept
 * its threads waking (about 5 a second each) long after the console closed. Totals only: the
 * console makes rates of two readings. Those requests are sequential and take up to a second
 * each when the broker is slow, so api_activity's worker thread (es_worker) asks them, never a
 * loop thread: the requests that come while it reads wait for its next reading, which answers
 * them all.
 *
 * GET /v1/admin/sagas: the order saga's open orders with the deadline each waits on, from the
 * saga's own table (eventshop_order_saga.open_orders, subscribers/saga.c) read with a read-only
 * user (EVENTSHOP_MYSQL_ORDER_SAGA_USER in the API's environment), soonest deadline first, paged
 * by a cursor "<deadline>:<order_id>". */
#include "api_app.h"
#include "api_reply.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "es_worker.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFFSETS_WAIT_MS 1000

/* Sums over the partitions of <ctx>.commands: the high watermarks into *sent and the handler
 * group's committed offsets (none: 0) into *handled. */
static int commands_position(es_kafka_t *rk, const char *ctx, long long *sent, long long *handled,
                             es_err_t *err)
{
    /* the group is described (an OffsetFetch), never joined nor read; tests/deploy/
     * test_kafka_security.py reads the format of a variable named described_* */
    char described_group[96];
    snprintf(described_group, sizeof described_group, "eventshop-%s-handler", ctx);
    char topic[64];
    es_topic(topic, sizeof topic, ctx, "commands");
    int n = es_kafka_partition_count_within(rk, topic, OFFSETS_WAIT_MS, err);
    if (n < 0)
        return -1;
    es_kafka_parts_t *parts = es_kafka_parts_new(n > 0 ? n : 1);
    *sent = *handled = 0;
    int rc = 0;
    for (int p = 0; p < n && rc == 0; p++) {
        int64_t lo = 0, hi = 0;
        rc = es_kafka_resp_error(
            err, es_kafka_query_watermarks(rk, topic, p, &lo, &hi, OFFSETS_WAIT_MS), topic);
        *sent += hi;
        es_kafka_parts_add(parts, topic, p);
    }
    if (rc == 0)
        rc = es_kafka_group_committed(rk, described_group, parts, OFFSETS_WAIT_MS, err);
    for (int p = 0; rc == 0 && p < parts->cnt; p++)
        if (!parts->elems[p].err && parts->elems[p].offset > 0)
            *handled += parts->elems[p].offset;
    es_kafka_parts_free(parts);
    return rc;
}

/* The entry of context i: its outcomes always, its positions when the broker answered. Once it
 * did not (*broker_ok false), the next contexts do not ask it: a reading waits a second or two,
 * not one per context. */
static json_t *context_activity(struct api_app *app, size_t i, bool *broker_ok)
{
    const char *ctx = app->contexts[i];
    long long accepted = 0, rejected = 0, sent = 0, handled = 0;
    api_results_counts(app->results, ctx, &accepted, &rejected);
    json_t *v = json_pack("{s:s, s:I, s:I}", "context", ctx, "accepted", (json_int_t)accepted,
                          "rejected", (json_int_t)rejected);
    es_err_t err = ES_ERR_INIT;
    int rc = -1;
    if (*broker_ok) {
        rc = commands_position(api_producer_client(app->producer), ctx, &sent, &handled, &err);
        if (rc)
            es_warn("activity of %s: %s", ctx, err.msg);
        *broker_ok = rc == 0;
    }
    if (rc) {
        json_object_set_new(v, "commands", json_null());
        json_object_set_new(v, "handler_position", json_null());
        json_object_set_new(v, "handler_lag", json_null());
        return v;
    }
    json_object_set_new(v, "commands", json_integer(sent));
    json_object_set_new(v, "handler_position", json_integer(handled));
    json_object_set_new(v, "handler_lag", json_integer(sent > handled ? sent - handled : 0));
    return v;
}

/* A reading of every served context (new reference). */
static json_t *activity_reading(struct api_app *app)
{
    json_t *out = json_array();
    bool broker_ok = true;
    for (size_t i = 0; i < app->n_contexts; i++)
        json_array_append_new(out, context_activity(app, i, &broker_ok));
    return json_pack("{s:I, s:o}", "at", (json_int_t)es_wall_ms(), "contexts", out);
}

/* The activity worker (es_worker): each run takes the requests that came since the last one and
 * answers them all with one reading (none is answered with a reading begun before it came). */
struct api_activity {
    struct api_app *app;
    es_worker_t *worker;
};

static int activity_run(void *arg, void **jobs, size_t n)
{
    struct api_activity *a = arg;
    if (n == 0)
        return ES_WORKER_IDLE;
    json_t *body = activity_reading(a->app);
    for (size_t i = 0; i < n; i++)
        es_http_complete(jobs[i], 200, i + 1 < n ? json_deep_copy(body) : body, 0, NULL);
    return ES_WORKER_IDLE;
}

static void activity_drop(void *arg, void **jobs, size_t n)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        es_http_complete(jobs[i], 503, api_problem_new(503, NULL, NULL, "the api is stopping"), 1,
                         NULL);
}

struct api_activity *api_activity_new(struct api_app *app, es_err_t *err)
{
    struct api_activity *a = xcalloc(1, sizeof *a);
    a->app = app;
    if (!(a->worker = es_worker_new("activity", activity_run, activity_drop, a, err))) {
        free(a);
        return NULL;
    }
    return a;
}

void api_activity_free(struct api_activity *a)
{
    if (!a)
        return;
    es_worker_free(a->worker);
    free(a);
}

void api_admin_activity(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    struct api_activity *a = ((struct api_app *)es_http_app(r))->activity;
    es_worker_post(a->worker, es_http_defer(r));
}

/* ---- the order saga's open orders */

/* A query of the saga's table on the thread's connection (made on first use, once more after a
 * broken one); NULL with err. */
static json_t *saga_query(es_http_req_t *r, const char *sql, const es_db_val_t *params, size_t n,
                          es_err_t *err)
{
    struct api_tls *t = es_http_thread_state(r);
    json_t *rows = NULL;
    for (int attempt = 0; attempt < 2 && !rows; attempt++) {
        es_clear(err);
        if (!t->saga)
            t->saga = es_db_open_timeout("order_saga", 2, 10, err);
        rows = t->saga ? es_db_query(t->saga, sql, params, n, err) : NULL;
        if (rows || !t->saga || err->code != ES_EIO)
            break;
        es_db_close(t->saga);
        t->saga = NULL;
    }
    return rows;
}

/* "<deadline>:<order_id>" into its parts, as the contract says: 1-18 digits, then 1-140
 * characters (UTF-8), none a control character; false when it is not one. */
static bool parse_cursor(const char *s, long long *deadline, const char **order_id)
{
    size_t digits = strspn(s, "0123456789"), chars = 0;
    if (digits < 1 || digits > 18 || s[digits] != ':')
        return false;
    *deadline = strtoll(s, NULL, 10);
    *order_id = s + digits + 1;
    for (const unsigned char *c = (const unsigned char *)*order_id; *c; c++) {
        if (*c < 0x20 || *c == 0x7F)
            return false;
        chars += (*c & 0xC0) != 0x80;
    }
    return chars >= 1 && chars <= 140;
}

/* The next page's URL: the cursor percent-encoded. */
static void next_url(char *buf, size_t cap, int limit, long long deadline, const char *order_id)
{
    int n = snprintf(buf, cap, "/v1/admin/sagas?limit=%d&after=%lld%%3A", limit, deadline);
    for (const unsigned char *c = (const unsigned char *)order_id; *c && n + 4 < (int)cap; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~')
            buf[n++] = (char)*c;
        else
            n += snprintf(buf + n, cap - (size_t)n, "%%%02X", *c);
    }
    buf[n < (int)cap ? n : (int)cap - 1] = '\0';
}

#define SAGA_ROWS                                                                                  \
    "SELECT order_id, status, orders_partition AS `partition`, reserve_by, pay_by, dispatch_at, "  \
    "updated_at, deadline, CASE status WHEN 'placed' THEN 'reserve_by' WHEN 'stock_reserved' "     \
    "THEN 'pay_by' ELSE 'dispatch_at' END AS waits_on FROM (SELECT *, CASE status WHEN 'placed' "  \
    "THEN reserve_by WHEN 'stock_reserved' THEN pay_by ELSE dispatch_at END AS deadline FROM "     \
    "open_orders) o WHERE deadline > ? OR (deadline = ? AND order_id > ?) ORDER BY deadline, "     \
    "order_id LIMIT ?"

void api_admin_sagas(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    int limit = api_query_limit_or_reply(r);
    if (limit < 0)
        return;
    char *after = es_http_query_dup(r, "after");
    long long deadline = -1;
    const char *order_id = "";
    if (after && !parse_cursor(after, &deadline, &order_id)) {
        api_reply_problem(r, 400, NULL, "after", "after must be a cursor from a 'next' link");
        free(after);
        return;
    }
    es_err_t err = ES_ERR_INIT;
    const es_db_val_t p[] = {ES_DB_I(deadline), ES_DB_I(deadline), ES_DB_S(order_id),
                             ES_DB_I(limit + 1)};
    json_t *rows = saga_query(r, SAGA_ROWS, p, 4, &err);
    json_t *total =
        rows ? saga_query(r, "SELECT COUNT(*) AS n FROM open_orders", NULL, 0, &err) : NULL;
    free(after);
    if (!rows || !total) {
        es_warn("open orders: %s", err.msg);
        json_decref(rows);
        es_http_add_header(r, "Retry-After", "2");
        api_reply_problem(r, 503, NULL, NULL, "the order saga's table is unavailable");
        return;
    }
    bool more = json_array_size(rows) > (size_t)limit;
    if (more)
        json_array_remove(rows, (size_t)limit);
    char next[512] = "";
    if (more) {
        json_t *last = json_array_get(rows, (size_t)limit - 1);
        next_url(next, sizeof next, limit, json_integer_value(json_object_get(last, "deadline")),
                 json_string_value(json_object_get(last, "order_id")));
        char link[600];
        snprintf(link, sizeof link, "<%s>; rel=\"next\"", next);
        es_http_add_header(r, "Link", link);
    }
    json_t *n = json_object_get(json_array_get(total, 0), "n");
    es_http_reply_json(r, 200,
                       json_pack("{s:o, s:I, s:I, s:o}", "open_orders", rows, "total",
                                 (json_int_t)json_integer_value(n), "now", (json_int_t)es_wall_ms(),
                                 "next", more ? json_string(next) : json_null()));
    json_decref(total);
}
