/* Queries on any context's read models: the connection helper and read-your-writes.
 *
 * Read-your-writes: a command's outcome carries position "<partition>:<offset>" of its last
 * event on <ctx>.events. A query may pass it back as the X-Min-Position header (or the
 * ?min_position= parameter); it is then answered only once the projection's stored offset for
 * that partition (projection_offsets row (projection, '<ctx>.events', part)) has a next_offset
 * beyond it, polling every 20 ms without blocking the loop (es_http_after), for at most 5 s,
 * after which the answer is a 504 problem. */
#include "api_app.h"
#include "api_reply.h"
#include "api_validate.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MIN_POSITION_POLL_MS 20
#define MIN_POSITION_MAX_MS  5000

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

json_t *api_query_or_reply(es_http_req_t *r, const char *ctx, const char *sql,
                           const es_db_val_t *params, size_t n)
{
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = api_db_ctx(r, ctx, &err);
    json_t *rows = db ? es_db_query(db, sql, params, n, &err) : NULL;
    if (!rows) {
        es_warn("%s query failed: %s", ctx, err.msg);
        if (err.code == ES_EIO)
            api_db_ctx_broken(r, ctx);
        api_reply_problem(r, 503, NULL, NULL, "the %s read model is unavailable", ctx);
    }
    return rows;
}

struct min_position {
    api_query_fn run;
    struct api_principal who;
    const char *ctx;
    const char *projection;
    int32_t partition;
    int64_t offset;
    long long deadline_ms;
};

/* 1 if the projection has applied offset of partition, 0 if not yet, -1 answered (error). */
static int position_reached(es_http_req_t *r, const struct min_position *mp)
{
    static const char sql[] = "SELECT next_offset FROM projection_offsets WHERE projection = ? "
                              "AND topic = ? AND part = ?";
    char topic[64];
    es_topic(topic, sizeof topic, mp->ctx, "events");
    es_db_val_t params[] = {ES_DB_S(mp->projection), ES_DB_S(topic), ES_DB_I(mp->partition)};
    json_t *rows = api_query_or_reply(r, mp->ctx, sql, params, 3);
    if (!rows)
        return -1;
    json_t *next = json_object_get(json_array_get(rows, 0), "next_offset");
    int reached = json_is_integer(next) && json_integer_value(next) > mp->offset;
    json_decref(rows);
    return reached;
}

static void poll_position(es_http_req_t *r, void *arg)
{
    struct min_position *mp = arg;
    int reached = position_reached(r, mp);
    if (reached < 0) {
        free(mp);
        return;
    }
    if (reached) {
        mp->run(r, &mp->who);
        free(mp);
    } else if (mono_ms() >= mp->deadline_ms) {
        api_reply_problem(r, 504, "urn:eventshop:problem:position_not_reached", NULL,
                          "the read model has not reached %d:%lld within %d ms", (int)mp->partition,
                          (long long)mp->offset, MIN_POSITION_MAX_MS);
        free(mp);
    } else {
        es_http_after(r, MIN_POSITION_POLL_MS, poll_position, mp, free);
    }
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
    struct min_position *mp = xcalloc(1, sizeof *mp);
    if (api_parse_position(pos, &mp->partition, &mp->offset)) {
        api_reply_problem(r, 400, NULL, "X-Min-Position",
                          "position '%.64s' is not <partition>:<offset>", pos);
        free(mp);
    } else {
        mp->run = run;
        mp->who = *who;
        mp->ctx = ctx;
        mp->projection = projection;
        mp->deadline_ms = mono_ms() + MIN_POSITION_MAX_MS;
        poll_position(r, mp);
    }
    free(pos);
}
