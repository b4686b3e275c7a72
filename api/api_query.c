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
 * ever, and is a 400 at once. The watermark is asked of the broker for each such request (a
 * cached one would refuse a position written since); only positions the read model has not
 * reached yet pay for it, on the loop thread, for the length of one metadata and one watermark
 * request. When the broker is unreachable the check is skipped and the request waits as a real
 * position would: the wait is bounded and cheap.
 *
 * Waiting costs no query per request: each loop thread has one watcher per context, which reads
 * the context's stored offsets (one query, every projection and partition) once per tick while
 * anyone waits, and runs every waiting request whose position was reached. A request arriving
 * reads the offsets itself only when the watcher's last read is older than a tick. So the
 * queries while N requests wait do not grow with N (eventshop_api_position_watch_queries_total).
 * Each waiting request keeps its own deadline timer (504 after 5 s) and its own lifetime: a
 * client that goes away leaves the watcher through es_http_after's free_arg. */
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

#define WATCH_TICK_MS        20
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

json_t *api_query_or_reply(es_http_req_t *r, const char *ctx, const char *sql,
                           const es_db_val_t *params, size_t n)
{
    es_err_t err = ES_ERR_INIT;
    json_t *rows = api_query(r, ctx, sql, params, n, &err);
    if (!rows) {
        es_warn("%s query failed: %s", ctx, err.msg);
        if (err.code == ES_EIO) {
            char secs[16];
            snprintf(secs, sizeof secs, "%d", api_db_retry_after_s(r, ctx));
            es_http_add_header(r, "Retry-After", secs);
        }
        api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", ctx);
    }
    return rows;
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

/* One stored offset: projection's next offset to apply on partition part. */
struct stored_offset {
    char projection[64];
    int32_t part;
    int64_t next;
};

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

/* The read-your-writes watcher of one context on one loop thread. */
struct api_watch {
    struct api_tls *tls;
    const char *ctx; /* the app's copy */
    char topic[64];  /* "<ctx>.events" */
    es_http_timer_t *timer;
    struct waiter *waiters;
    long long read_ms; /* monotonic time of the last read of the offsets, 0 if none */
    struct stored_offset *offs;
    size_t n_offs, cap_offs;
    es_metric_t *queries, *waiting;
};

static void watch_tick(void *arg);

static struct api_watch *watch_get(es_http_req_t *r, const char *ctx)
{
    struct api_tls *t = es_http_thread_state(r);
    size_t i = 0;
    while (i < t->app->n_contexts && strcmp(t->app->contexts[i], ctx))
        i++;
    if (i == t->app->n_contexts)
        return NULL;
    if (!t->watches[i]) {
        struct api_watch *w = xcalloc(1, sizeof *w);
        char labels[64];
        w->tls = t;
        w->ctx = t->app->contexts[i];
        es_topic(w->topic, sizeof w->topic, w->ctx, "events");
        w->timer = es_http_timer_new(r, watch_tick, w);
        snprintf(labels, sizeof labels, "context=\"%s\"", w->ctx);
        w->queries =
            es_counter("eventshop_api_position_watch_queries_total",
                       "reads of the stored offsets by the read-your-writes watchers", labels);
        w->waiting = es_gauge("eventshop_api_position_waiters",
                              "queries waiting for the read model to reach their position", labels);
        t->watches[i] = w;
    }
    return t->watches[i];
}

/* Reads every stored offset of the context's events topic into w->offs: 0, or -1 (logged; the
 * connection is dropped on ES_EIO). */
static int watch_read(struct api_watch *w)
{
    static const char sql[] =
        "SELECT projection, part, next_offset FROM projection_offsets WHERE topic = ?";
    es_err_t err = ES_ERR_INIT;
    es_db_val_t params[] = {ES_DB_S(w->topic)};
    es_db_t *db = api_tls_db(w->tls, w->ctx, &err);
    es_metric_add(w->queries, 1);
    json_t *rows = db ? es_db_query(db, sql, params, 1, &err) : NULL;
    if (!rows) {
        es_warn("%s stored offsets: %s", w->ctx, err.msg);
        if (err.code == ES_EIO)
            api_tls_db_broken(w->tls, w->ctx);
        return -1;
    }
    size_t n = json_array_size(rows);
    if (n > w->cap_offs) {
        w->offs = xrealloc(w->offs, n * sizeof *w->offs);
        w->cap_offs = n;
    }
    w->n_offs = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, i);
        const char *proj = json_string_value(json_object_get(row, "projection"));
        json_t *part = json_object_get(row, "part"), *next = json_object_get(row, "next_offset");
        if (!proj || !json_is_integer(part) || !json_is_integer(next))
            continue;
        struct stored_offset *o = &w->offs[w->n_offs++];
        snprintf(o->projection, sizeof o->projection, "%s", proj);
        o->part = (int32_t)json_integer_value(part);
        o->next = json_integer_value(next);
    }
    json_decref(rows);
    w->read_ms = es_mono_ms();
    return 0;
}

/* Whether the last read showed projection past offset on partition. Stored offsets only grow
 * (a rebuild swaps in tables that caught up with the live ones), so an old read that says yes is
 * still right. */
static bool watch_reached(const struct api_watch *w, const char *projection, int32_t partition,
                          int64_t offset)
{
    for (size_t i = 0; i < w->n_offs; i++)
        if (w->offs[i].part == partition && !strcmp(w->offs[i].projection, projection))
            return w->offs[i].next > offset;
    return false;
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
    es_http_timer_arm(w->timer, WATCH_TICK_MS);
}

/* One tick: one read of the offsets, then every waiter it satisfies runs (or every waiter gets
 * a 503 if the database is gone); ticks go on while anyone waits. */
static void watch_tick(void *arg)
{
    struct api_watch *w = arg;
    if (!w->waiters)
        return;
    int rc = watch_read(w);
    struct waiter *ready = NULL;
    for (struct waiter *x = w->waiters, *next; x; x = next) {
        next = x->next;
        if (rc == 0 && !watch_reached(w, x->projection, x->partition, x->offset))
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
        if (rc == 0) {
            struct api_principal who = x->who;
            api_query_fn run = x->run;
            run(r, &who);
        } else {
            api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", w->ctx);
        }
    }
    if (w->waiters)
        es_http_timer_arm(w->timer, WATCH_TICK_MS);
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
        es_http_timer_free(w->timer);
        free(w->offs);
        free(w);
        t->watches[i] = NULL;
    }
}

/* 0 if position may be real, or -1 after answering 400: a partition outside the topic or an
 * offset at or past the high watermark. A broker that does not answer lets it through. */
static int check_position_or_reply(es_http_req_t *r, const char *topic, int32_t partition,
                                   int64_t offset)
{
    struct api_app *app = es_http_app(r);
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
    if (es_mono_ms() - w->read_ms >= WATCH_TICK_MS && watch_read(w)) {
        api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", ctx);
        goto out;
    }
    if (watch_reached(w, projection, partition, offset)) {
        run(r, who);
        goto out;
    }
    if (check_position_or_reply(r, w->topic, partition, offset))
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
