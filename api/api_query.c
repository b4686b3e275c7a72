/* Queries on any context's read models: the connection helper and read-your-writes.
 *
 * Read-your-writes: a command's outcome carries position "<partition>:<offset>" of its last
 * event on <ctx>.events. A query may pass it back as the X-Min-Position header (or the
 * ?min_position= parameter); it is then answered only once the projection's stored offset for
 * that partition (projection_offsets row (projection, '<ctx>.events', part)) has a next_offset
 * beyond it.
 *
 * A position is a client's claim, so it is checked before anyone waits on it: a partition
 * outside the topic or an offset at or past the partition's high watermark cannot be reached
 * ever, and is a 400 at once. A position a command's outcome named (api_results_position_known:
 * the usual case, a client reading its own write) exists and is not checked further; any other
 * is checked against the high watermark asked of the broker for that request (a cached one would
 * refuse a position written since), on the loop thread, for the length of one metadata and one
 * watermark request. When the broker is unreachable the check is skipped and the request waits
 * as a real position would: the wait is bounded and cheap.
 *
 * Waiting costs no query per request: one watcher thread per process (api_positions.h) reads a
 * context's stored offsets while anyone waits on it, at once when a request starts waiting and
 * every 1-8 ms after, and wakes the loop threads whose waiters may be answered; each loop thread
 * keeps its waiters per context (struct api_watch) and runs those whose position was reached.
 * So the queries while N requests wait do not grow with N
 * (eventshop_api_position_watch_queries_total), and nobody waiting costs nothing. Each waiting
 * request keeps its own deadline timer (504 after 5 s) and its own lifetime: a client that goes
 * away leaves the watcher through es_http_after's free_arg. */
#include "api_app.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_POSITION_MAX_MS  5000
#define WATERMARK_TIMEOUT_MS 1000

json_t *api_query(es_http_req_t *r, const char *ctx, const char *sql, const es_db_val_t *params,
                  size_t n, es_err_t *err)
{
    json_t *rows = NULL;
    for (int attempt = 0; attempt < 2 && !rows; attempt++) {
        es_clear(err);
        es_db_t *db = api_db_ctx(r, ctx, err);
        rows = db ? es_db_query(db, sql, params, n, err) : NULL;
        if (rows || !db || err->code != ES_EIO)
            break;
        api_db_ctx_broken(r, ctx); /* a broken connection: once more on a new one */
    }
    return rows;
}

void api_reply_read_failed(es_http_req_t *r, const char *ctx, const es_err_t *err)
{
    es_warn("%s query failed: %s", ctx, err->msg);
    if (err->code == ES_EIO) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", api_db_retry_after_s(r, ctx));
        es_http_add_header(r, "Retry-After", secs);
    }
    api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", ctx);
}

json_t *api_query_or_reply(es_http_req_t *r, const char *ctx, const char *sql,
                           const es_db_val_t *params, size_t n)
{
    es_err_t err = ES_ERR_INIT;
    json_t *rows = api_query(r, ctx, sql, params, n, &err);
    if (!rows)
        api_reply_read_failed(r, ctx, &err);
    return rows;
}

/* ctx's pool on r's thread, or NULL after failing fn at once (free_arg called): the shape of
 * api_query_async and api_lookup_async */
static es_dbpool_t *pool_or_fail(es_http_req_t *r, const char *ctx, es_dbpool_fn fn, void *arg,
                                 void (*free_arg)(void *arg))
{
    es_err_t err = ES_ERR_INIT;
    es_dbpool_t *pool = api_pool_ctx(r, ctx, &err);
    if (pool)
        return pool;
    fn(r, arg, NULL, &err);
    if (free_arg)
        free_arg(arg);
    return NULL;
}

void api_query_async(es_http_req_t *r, const char *ctx, const char *sql, const es_db_val_t *params,
                     size_t n, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg))
{
    es_dbpool_t *pool = pool_or_fail(r, ctx, fn, arg, free_arg);
    if (pool)
        es_dbpool_query(pool, r, sql, params, n, fn, arg, free_arg);
}

void api_lookup_async(es_http_req_t *r, const char *ctx, const char *prefix, const char *key_column,
                      const char *key, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg))
{
    es_dbpool_t *pool = pool_or_fail(r, ctx, fn, arg, free_arg);
    if (pool)
        es_dbpool_lookup(pool, r, prefix, key_column, key, fn, arg, free_arg);
}

/* api_query_async_or_reply's callback and its argument */
struct or_reply {
    const char *ctx; /* static */
    api_rows_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
};

static void or_reply_done(es_http_req_t *r, void *arg, json_t *rows, const es_err_t *err)
{
    struct or_reply *o = arg;
    if (rows)
        o->fn(r, o->arg, rows);
    else
        api_reply_read_failed(r, o->ctx, err);
}

static void or_reply_free(void *arg)
{
    struct or_reply *o = arg;
    if (o->free_arg)
        o->free_arg(o->arg);
    free(o);
}

static struct or_reply *or_reply_new(const char *ctx, api_rows_fn fn, void *arg,
                                     void (*free_arg)(void *arg))
{
    struct or_reply *o = xcalloc(1, sizeof *o);
    o->ctx = ctx;
    o->fn = fn;
    o->arg = arg;
    o->free_arg = free_arg;
    return o;
}

void api_query_async_or_reply(es_http_req_t *r, const char *ctx, const char *sql,
                              const es_db_val_t *params, size_t n, api_rows_fn fn, void *arg,
                              void (*free_arg)(void *arg))
{
    api_query_async(r, ctx, sql, params, n, or_reply_done, or_reply_new(ctx, fn, arg, free_arg),
                    or_reply_free);
}

void api_lookup_async_or_reply(es_http_req_t *r, const char *ctx, const char *prefix,
                               const char *key_column, const char *key, api_rows_fn fn, void *arg,
                               void (*free_arg)(void *arg))
{
    api_lookup_async(r, ctx, prefix, key_column, key, or_reply_done,
                     or_reply_new(ctx, fn, arg, free_arg), or_reply_free);
}

int api_query_limit_or_reply(es_http_req_t *r)
{
    char *value = es_http_query_dup(r, "limit");
    int limit = api_parse_limit(value);
    free(value);
    if (limit < 0)
        api_reply_problem(r, 400, NULL, "limit", "limit must be 1-200");
    return limit;
}

struct waiter {
    struct api_watch *watch; /* NULL when not in a watcher's list */
    struct waiter *prev, *next;
    es_http_req_t *r;
    api_query_fn run;
    struct api_principal who;
    const char *projection;
    int32_t partition;
    int64_t offset;
    bool done; /* answered: the deadline timer (or the request's end) only frees it */
};

/* The read-your-writes waiters of one context on one loop thread, woken by the process's
 * position watcher (api_positions.h) when the context's stored offsets moved. */
struct api_watch {
    const char *ctx; /* the app's copy */
    char topic[64];  /* "<ctx>.events" */
    es_http_waker_t *wake;
    api_positions_sub_t *sub;
    struct waiter *waiters;
    es_metric_t *waiting;
};

static void watch_woken(void *arg);

static struct api_watch *watch_get(es_http_req_t *r, const char *ctx)
{
    struct api_tls *t = es_http_thread_state(r);
    size_t i = 0;
    while (i < t->app->n_contexts && strcmp(t->app->contexts[i], ctx))
        i++;
    if (i == t->app->n_contexts || !t->app->positions)
        return NULL;
    if (!t->watches[i]) {
        struct api_watch *w = xcalloc(1, sizeof *w);
        char labels[64];
        w->ctx = t->app->contexts[i];
        es_topic(w->topic, sizeof w->topic, w->ctx, "events");
        w->wake = es_http_waker_new(r, watch_woken, w);
        w->sub = api_positions_subscribe(t->app->positions, i, w->wake);
        snprintf(labels, sizeof labels, "context=\"%s\"", w->ctx);
        w->waiting = es_gauge("eventshop_api_position_waiters",
                              "queries waiting for the read model to reach their position", labels);
        t->watches[i] = w;
    }
    return t->watches[i];
}

static void watch_unlink(struct waiter *x)
{
    struct api_watch *w = x->watch;
    if (!w)
        return;
    if (x->prev)
        x->prev->next = x->next;
    else
        w->waiters = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->watch = NULL;
    es_metric_add(w->waiting, -1);
    api_positions_want(w->sub, -1);
}

static void watch_link(struct api_watch *w, struct waiter *x)
{
    x->watch = w;
    x->prev = NULL;
    x->next = w->waiters;
    if (w->waiters)
        w->waiters->prev = x;
    w->waiters = x;
    es_metric_add(w->waiting, 1);
    api_positions_want(w->sub, 1); /* the watcher reads the offsets at once */
}

/* The watcher read the context's offsets and they moved (or the database failed): every waiter
 * whose position was reached runs (or every waiter gets a 503 if the database is gone). */
static void watch_woken(void *arg)
{
    struct api_watch *w = arg;
    struct waiter *ready = NULL;
    bool down = false;
    for (struct waiter *x = w->waiters, *next; x; x = next) {
        next = x->next;
        bool reached = api_positions_reached(w->sub, x->projection, x->partition, x->offset, &down);
        if (!reached && !down)
            continue;
        watch_unlink(x);
        x->done = true;
        x->next = ready;
        ready = x;
    }
    /* a run may end its request at once, freeing x (its deadline timer's free_arg): take what
     * is needed first */
    while (ready) {
        struct waiter *x = ready;
        ready = x->next;
        x->next = NULL;
        es_http_req_t *r = x->r;
        if (api_positions_reached(w->sub, x->projection, x->partition, x->offset, NULL)) {
            struct api_principal who = x->who;
            api_query_fn run = x->run;
            run(r, &who);
        } else {
            api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", w->ctx);
        }
    }
}

/* The waiter's deadline (es_http_after): 504 unless the watcher answered it already. */
static void waiter_deadline(es_http_req_t *r, void *arg)
{
    struct waiter *x = arg;
    if (!x->done) {
        watch_unlink(x);
        api_reply_problem(r, 504, "urn:eventshop:problem:position_not_reached", NULL,
                          "the read model has not reached %d:%lld within %d ms", (int)x->partition,
                          (long long)x->offset, MIN_POSITION_MAX_MS);
    }
    free(x);
}

/* The request went away before its deadline. */
static void waiter_gone(void *arg)
{
    struct waiter *x = arg;
    watch_unlink(x);
    free(x);
}

void api_query_thread_release(struct api_tls *t)
{
    for (size_t i = 0; i < API_MAX_CONTEXTS; i++) {
        struct api_watch *w = t->watches[i];
        if (!w)
            continue;
        while (w->waiters)
            watch_unlink(w->waiters);
        /* unsubscribed first: the watcher posts the wake no more */
        api_positions_unsubscribe(w->sub);
        es_http_waker_free(w->wake);
        free(w);
        t->watches[i] = NULL;
    }
}

/* 0 if position may be real, or -1 after answering 400: a partition outside the topic or an
 * offset at or past the high watermark. A broker that does not answer lets it through. */
static int check_position_or_reply(es_http_req_t *r, const char *ctx, const char *topic,
                                   int32_t partition, int64_t offset)
{
    struct api_app *app = es_http_app(r);
    if (api_results_position_known(app->results, ctx, partition, offset))
        return 0; /* a command's outcome named it: it exists */
    if (!api_producer_is_ready(app->producer))
        return 0;
    es_err_t err = ES_ERR_INIT;
    int partitions = 0;
    int64_t high = 0;
    if (api_producer_high_watermark(app->producer, topic, partition, &partitions, &high,
                                    WATERMARK_TIMEOUT_MS, &err)) {
        if (err.code == ES_ENOTFOUND && partitions > 0) {
            api_reply_problem(r, 400, "urn:eventshop:problem:position_out_of_range",
                              "X-Min-Position", "partition %d is outside %s (%d partitions)",
                              (int)partition, topic, partitions);
            return -1;
        }
        es_warn("position %d:%lld not checked: %s", (int)partition, (long long)offset, err.msg);
        return 0;
    }
    if (offset >= high) {
        api_reply_problem(r, 400, "urn:eventshop:problem:position_out_of_range", "X-Min-Position",
                          "offset %lld is at or past the end of %s partition %d (%lld)",
                          (long long)offset, topic, (int)partition, (long long)high);
        return -1;
    }
    return 0;
}

void api_query_at_position(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                           const char *projection, api_query_fn run)
{
    char *pos = es_http_header_dup(r, "X-Min-Position");
    char *query = es_http_query_dup(r, "min_position");
    int32_t part;
    int64_t off;
    if (pos && query && api_parse_position(query, &part, &off)) {
        /* the header wins, but a malformed parameter is refused all the same */
        api_reply_problem(r, 400, NULL, "min_position",
                          "position '%.64s' is not <partition>:<offset>", query);
        free(pos);
        free(query);
        return;
    }
    if (!pos) {
        pos = query;
        query = NULL;
    }
    free(query);
    if (!pos) {
        run(r, who);
        return;
    }
    int32_t partition;
    int64_t offset;
    struct api_watch *w = NULL;
    if (api_parse_position(pos, &partition, &offset)) {
        api_reply_problem(r, 400, NULL, "X-Min-Position",
                          "position '%.64s' is not <partition>:<offset>", pos);
        goto out;
    }
    if (!(w = watch_get(r, ctx))) {
        api_reply_problem(r, 503, NULL, NULL, "the %s context is not served here", ctx);
        goto out;
    }
    if (api_positions_reached(w->sub, projection, partition, offset, NULL)) {
        run(r, who);
        goto out;
    }
    if (check_position_or_reply(r, ctx, w->topic, partition, offset))
        goto out;
    struct waiter *x = xcalloc(1, sizeof *x);
    x->r = r;
    x->run = run;
    x->who = *who;
    x->projection = projection;
    x->partition = partition;
    x->offset = offset;
    es_http_after(r, MIN_POSITION_MAX_MS, waiter_deadline, x, waiter_gone);
    watch_link(w, x);
out:
    free(pos);
}
