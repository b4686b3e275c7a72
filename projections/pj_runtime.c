/* The projector runtime is plumbing: it and its rebuild (pj_rebuild.c) alone talk to librdkafka
 * here; projections only see decoded events and a database handle inside an open transaction. */
#include "pj_runtime.h"
#include "es_env.h"
#include "es_fault.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include "es_time.h"
#include "es_trace.h"
#include "es_zipkin.h"
#include "pj_arena.h"
#include "pj_internal.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PJ_BACKOFF_MIN_MS 200
#define PJ_BACKOFF_MAX_MS 5000
#define PJ_LAG_EVERY_MS   1000
#define PJ_CHECK_EVERY_MS 5000  /* idle: how often Kafka and MariaDB are asked if they answer */
#define PJ_CHECK_WAIT_MS  2000  /* the longest such a Kafka check may take */
#define PJ_COMMIT_WAIT_MS 5000  /* after a failed Kafka commit, the next one waits this long */
#define PJ_COMMIT_LOG_MS  60000 /* at most one warning per minute about failed Kafka commits */
/* the smallest batch written on the writer thread while the next is decoded: a smaller one (an
 * idle projector's, or a test's batch of 5) is written at once, as the two threads' hand-offs
 * cost more than the overlap gives back on a loaded machine (a replay in batches of 5 took a
 * quarter longer) */
#define PJ_PIPELINE_MIN 64
/* while a batch is written, how long a poll for the next may wait (a message ends it at once) */
#define PJ_FLIGHT_POLL_MS 2

const char pj_offsets_ddl[] =
    "CREATE TABLE IF NOT EXISTS projection_offsets ("
    "projection VARCHAR(64) NOT NULL, topic VARCHAR(200) NOT NULL, part INT NOT NULL,"
    "next_offset BIGINT NOT NULL,"
    "updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    "PRIMARY KEY (projection, topic, part)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
const char pj_dead_ddl[] =
    "CREATE TABLE IF NOT EXISTS projection_dead_letters ("
    "projection VARCHAR(64) NOT NULL, topic VARCHAR(200) NOT NULL, part INT NOT NULL,"
    "`offset` BIGINT NOT NULL, error VARCHAR(1000) NOT NULL,"
    "at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    "PRIMARY KEY (projection, topic, part, `offset`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

const char pj_versions_ddl[] = "CREATE TABLE IF NOT EXISTS projection_versions ("
                               "projection VARCHAR(64) NOT NULL PRIMARY KEY, version INT NOT NULL,"
                               "built_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
                               ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

char *pj_lock_name(const char *context, const char *key)
{
    return xasprintf("eventshop.%s.%s", context, key);
}

int pj_lock(es_db_t *db, const char *name, int wait_s, es_err_t *err)
{
    const es_db_val_t params[] = {ES_DB_S(name), ES_DB_I(wait_s)};
    json_t *rows = es_db_query(db, "SELECT GET_LOCK(?, ?) AS got", params, 2, err);
    if (!rows)
        return -1;
    json_t *got = json_object_get(json_array_get(rows, 0), "got");
    int rc = json_is_integer(got) && json_integer_value(got) == 1
                 ? 0
                 : es_set(err, ES_ETIMEOUT, "lock '%s' is held elsewhere", name);
    json_decref(rows);
    return rc;
}

void pj_unlock(es_db_t *db, const char *name)
{
    const es_db_val_t params[] = {ES_DB_S(name)};
    json_decref(es_db_query(db, "SELECT RELEASE_LOCK(?) AS released", params, 1, NULL));
}

void pj_options_from_env(pj_options_t *opt)
{
    opt->group = es_env_str("EVENTSHOP_PROJECTOR_GROUP", NULL);
    opt->suffix = es_env_str("EVENTSHOP_PROJECTOR_TABLE_SUFFIX", NULL);
    opt->batch_max = (int)es_env_long("EVENTSHOP_PROJECTOR_BATCH", 500);
    opt->linger_ms = (int)es_env_long("EVENTSHOP_PROJECTOR_LINGER_MS", 20);
}

static void pj_ev_release(struct pj_ev *ev);
static int pj_land(pj_runtime_t *rt);
static bool pj_in_flight(const pj_runtime_t *rt);

static struct pj_part *pj_part_get(pj_runtime_t *rt, int32_t p)
{
    if (p < 0)
        return NULL;
    if (p >= rt->nparts) {
        rt->parts = xrealloc(rt->parts, sizeof *rt->parts * (size_t)(p + 1));
        memset(rt->parts + rt->nparts, 0, sizeof *rt->parts * (size_t)(p + 1 - rt->nparts));
        for (int i = rt->nparts; i <= p; i++)
            rt->parts[i].stored = rt->parts[i].next = rt->parts[i].committed = -1;
        rt->nparts = p + 1;
    }
    struct pj_part *pp = &rt->parts[p];
    if (!pp->lag) {
        char labels[160];
        snprintf(labels, sizeof labels, "projection=\"%s\",partition=\"%d\"", rt->key, (int)p);
        pp->lag =
            es_gauge("eventshop_projector_lag",
                     "Events of the partition not yet projected (high watermark - next)", labels);
    }
    return pp;
}

/* Releases n messages of batch and the first nprepared of evs (their decoded events). */
static void pj_msgs_release(es_kafka_msg_t **batch, int n, struct pj_ev *evs, int nprepared)
{
    for (int i = 0; i < nprepared; i++)
        pj_ev_release(&evs[i]);
    for (int i = 0; i < n; i++)
        es_kafka_msg_free(batch[i]);
}

/* Releases the batch being filled: its decoded events and messages. */
static void pj_batch_release(pj_runtime_t *rt)
{
    pj_msgs_release(rt->batch, rt->nbatch, rt->evs, rt->nprepared);
    rt->nprepared = rt->nbatch = 0;
}

static void pj_batch_discard(pj_runtime_t *rt)
{
    pj_batch_release(rt);
    for (int i = 0; i < rt->nparts; i++) {
        rt->parts[i].in_batch = false;
        rt->parts[i].next = rt->parts[i].stored;
    }
}

/* Opens the connection if there is none; readiness follows whether that works. */
static int pj_db_ensure(pj_runtime_t *rt, es_err_t *err)
{
    if (rt->db)
        return 0;
    rt->db = es_db_open(rt->p->context, err);
    es_metrics_set_dependency("mysql", rt->db != NULL);
    return rt->db ? 0 : -1;
}

static void pj_db_drop(pj_runtime_t *rt)
{
    if (rt->db) {
        es_db_rollback(rt->db);
        es_db_close(rt->db);
        rt->db = NULL;
    }
}

json_t *pj_offsets_load(es_db_t *db, const char *key, const char *topic, bool for_update,
                        es_err_t *err)
{
    const es_db_val_t params[] = {ES_DB_S(key), ES_DB_S(topic)};
    return es_db_query(db,
                       for_update ? "SELECT part, next_offset FROM projection_offsets "
                                    "WHERE projection=? AND topic=? FOR UPDATE"
                                  : "SELECT part, next_offset FROM projection_offsets "
                                    "WHERE projection=? AND topic=?",
                       params, 2, err);
}

int pj_offset_store(es_db_t *db, const char *key, const char *topic, int32_t part, int64_t next,
                    es_err_t *err)
{
    const es_db_val_t params[] = {ES_DB_S(key), ES_DB_S(topic), ES_DB_I(part), ES_DB_I(next)};
    return es_db_exec(db,
                      "INSERT INTO projection_offsets (projection, topic, part, next_offset, "
                      "updated_at) VALUES (?, ?, ?, ?, NOW(3)) ON DUPLICATE KEY UPDATE "
                      "next_offset=VALUES(next_offset), updated_at=VALUES(updated_at)",
                      params, 4, NULL, err);
}

int64_t pj_offsets_find(const json_t *rows, int32_t part)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (json_integer_value(json_object_get(row, "part")) == part)
            return json_integer_value(json_object_get(row, "next_offset"));
    }
    return -1;
}

/* Assigns list with each partition positioned at its stored next offset (the beginning if none)
 * and records those positions. Without a database the assignment still happens (the group must
 * not stall) and need_resync makes the loop fix positions before any batch. */
static void pj_assign_from_db(pj_runtime_t *rt, es_kafka_parts_t *list)
{
    es_err_t err = ES_ERR_INIT;
    json_t *rows = NULL;
    if (pj_db_ensure(rt, &err) == 0)
        rows = pj_offsets_load(rt->db, rt->key, rt->topic, false, &err);
    if (!rows) {
        es_warn("projector %s: cannot read stored offsets, will retry: %s", rt->key, err.msg);
        pj_db_drop(rt);
        rt->need_resync = true;
    }
    for (int i = 0; i < rt->nparts; i++)
        rt->parts[i].assigned = false;
    for (int i = 0; i < list->cnt; i++) {
        es_kafka_part_t *tp = &list->elems[i];
        struct pj_part *pp = pj_part_get(rt, tp->partition);
        int64_t stored = rows ? pj_offsets_find(rows, tp->partition) : -1;
        tp->offset = stored >= 0 ? stored : ES_KAFKA_OFFSET_BEGINNING;
        pp->assigned = true;
        pp->stored = pp->next = stored;
        pp->committed = -1;
        pp->in_batch = false;
        es_info("projector %s: partition %s[%d] from offset %lld", rt->key, rt->topic,
                (int)tp->partition, (long long)stored);
    }
    json_decref(rows);
    int e = es_kafka_assign(rt->rk, list);
    if (e)
        es_error("projector %s: assign: %s", rt->key, es_kafka_err_str(e));
}

static void pj_rebalance_cb(es_kafka_t *rk, int e, es_kafka_parts_t *list, void *opaque)
{
    pj_runtime_t *rt = opaque;
    (void)rk;
    if (e == ES_KAFKA_ERR_ASSIGN_PARTITIONS) {
        pj_land(rt);
        pj_batch_discard(rt); /* nothing batched may straddle two assignments */
        pj_assign_from_db(rt, list);
        es_metrics_set_ready(true);
        return;
    }
    /* revoked (or an error): finish what is batched while the partitions are still ours; if
     * that fails the new owner redoes it from the stored offsets */
    pj_flush(rt);
    pj_batch_discard(rt);
    for (int i = 0; i < rt->nparts; i++)
        rt->parts[i].assigned = false;
    es_kafka_assign(rt->rk, NULL);
    if (e != ES_KAFKA_ERR_REVOKE_PARTITIONS)
        es_warn("projector %s: rebalance: %s", rt->key, es_kafka_err_str(e));
}

/* Re-reads stored offsets and re-positions the current assignment on them. */
static int pj_resync(pj_runtime_t *rt)
{
    es_kafka_parts_t *list = NULL;
    pj_land(rt);
    pj_batch_discard(rt);
    int e = es_kafka_assignment(rt->rk, &list);
    if (e) {
        es_error("projector %s: assignment: %s", rt->key, es_kafka_err_str(e));
        return -1;
    }
    rt->need_resync = false;
    es_kafka_assign(rt->rk, NULL);
    pj_assign_from_db(rt, list);
    es_kafka_parts_free(list);
    if (rt->need_resync)
        return -1;
    rt->backoff_ms = 0;
    return 0;
}

/* A Kafka commit of offsets failed (why): counted, retried after PJ_COMMIT_WAIT_MS, logged at
 * most once per PJ_COMMIT_LOG_MS. Never more: the commit is informational. */
static void pj_commit_failed(pj_runtime_t *rt, const char *why, const es_kafka_parts_t *offsets)
{
    long long now = es_mono_ms();
    es_metric_add(rt->m_commit_failed, 1);
    rt->commit_retry_at = now + PJ_COMMIT_WAIT_MS;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        int32_t p = offsets->elems[i].partition;
        if (p >= 0 && p < rt->nparts && rt->parts[p].committed == offsets->elems[i].offset)
            rt->parts[p].committed = -1; /* commit it again */
    }
    long skipped;
    if (!es_log_every_pass(&rt->commit_warn, now, PJ_COMMIT_LOG_MS, &skipped))
        return;
    es_warn("projector %s: committing its positions to group '%s' failed (%ld more since the "
            "last warning): %s; only autoscaling on the group's lag is affected, the positions "
            "in MariaDB stay the truth",
            rt->key, rt->group, skipped, why);
}

/* The outcome of an asynchronous commit, served by es_kafka_poll. */
static void pj_offset_commit_cb(es_kafka_t *rk, int err, const es_kafka_parts_t *offsets,
                                void *opaque)
{
    pj_runtime_t *rt = opaque;
    (void)rk;
    if (err == ES_KAFKA_ERR_NO_OFFSET)
        return; /* nothing was to be committed */
    int first = err;
    for (int i = 0; !first && offsets && i < offsets->cnt; i++)
        first = offsets->elems[i].err;
    if (first)
        pj_commit_failed(rt, es_kafka_err_str(first), offsets);
}

/* The applied position of every assigned partition (offset: the next to apply), for the lag and
 * the group's commit: its stored next offset, or the consumer's position when that lies further.
 * With no batch in hand (being filled or in flight) and no resync pending, every message consumed
 * since the assignment was applied (an assignment resets the position: librdkafka 2.0.2 reports
 * none until a message or marker is consumed), so the position passes the stored offset by
 * transaction markers only (control records, never delivered), without which the lag of a topic
 * written in transactions would never reach 0. With a batch in hand (a busy live projector lands
 * one while it fills the next): the stored offsets alone. */
static es_kafka_parts_t *pj_applied_positions(pj_runtime_t *rt)
{
    es_kafka_parts_t *list = es_kafka_parts_new(rt->nparts);
    for (int i = 0; i < rt->nparts; i++)
        if (rt->parts[i].assigned)
            es_kafka_parts_add(list, rt->topic, i)->offset = -1;
    if (list->cnt > 0 && rt->nbatch == 0 && !pj_in_flight(rt) && !rt->need_resync)
        es_kafka_position(rt->rk, list);
    for (int i = 0; i < list->cnt; i++) {
        int64_t stored = rt->parts[list->elems[i].partition].stored;
        if (stored > list->elems[i].offset)
            list->elems[i].offset = stored;
    }
    return list;
}

/* Commits the applied positions to the consumer group, asynchronously, so that the group's lag
 * (what KEDA scales projectors on) is the projector's. Informational only: the projector never
 * reads them back (pj_assign_from_db), so a lost or failed commit costs nothing but a stale lag.
 * Only what changed is sent. Not for a rebuild (manual): its group is a one-off nobody watches.
 * Fault point pj.kafka_commit fails the commit instead (tests). */
static void pj_commit_positions(pj_runtime_t *rt, const es_kafka_parts_t *applied)
{
    if (rt->manual || rt->need_resync || es_mono_ms() < rt->commit_retry_at)
        return;
    es_kafka_parts_t *offsets = es_kafka_parts_new(rt->nparts);
    for (int i = 0; i < applied->cnt; i++) {
        struct pj_part *pp = &rt->parts[applied->elems[i].partition];
        int64_t next = applied->elems[i].offset;
        if (next < 0 || next == pp->committed)
            continue;
        es_kafka_parts_add(offsets, rt->topic, applied->elems[i].partition)->offset = next;
        pp->committed = next;
    }
    if (offsets->cnt > 0 && es_fault_hit("pj.kafka_commit")) {
        pj_commit_failed(rt, "fault point pj.kafka_commit", offsets);
    } else if (offsets->cnt > 0) {
        int e = es_kafka_commit(rt->rk, offsets, 1);
        if (e)
            pj_commit_failed(rt, es_kafka_err_str(e), offsets);
    }
    es_kafka_parts_free(offsets);
}

static void pj_update_lag(pj_runtime_t *rt, const es_kafka_parts_t *applied)
{
    for (int i = 0; i < applied->cnt; i++) {
        int32_t p = applied->elems[i].partition;
        int64_t lo = 0, hi = 0, next = applied->elems[i].offset;
        if (es_kafka_watermarks(rt->rk, rt->topic, p, &lo, &hi) || hi < 0)
            continue;
        if (next < lo)
            next = lo;
        es_metric_set(rt->parts[p].lag, (double)(hi > next ? hi - next : 0));
    }
}

/* Stores, for each partition whose consumer passed offsets that hold no event (the commit marker
 * after a transaction's last event), the consumer's position as the next offset: an idle
 * projector then stands at the high watermark, and the lag read from projection_offsets (the
 * operator's list) is 0, not 1 per marker and growing in seconds. Only with nothing in hand
 * (every event below the position is applied and stored), under the projection's lock (not
 * waited for) and while the stored offset is still the one this runtime knows (a rebuild's swap
 * moves it): nothing is claimed that is not applied. Best effort: left for the next tick. */
static void pj_store_passed(pj_runtime_t *rt, const es_kafka_parts_t *applied)
{
    if (rt->manual || rt->need_resync || rt->nbatch > 0 || pj_in_flight(rt) || !rt->db)
        return;
    int n = 0, *part = xcalloc((size_t)applied->cnt + 1, sizeof *part);
    for (int i = 0; i < applied->cnt; i++) {
        int32_t p = applied->elems[i].partition;
        if (rt->parts[p].stored >= 0 && applied->elems[i].offset > rt->parts[p].stored)
            part[n++] = i; /* passed offsets that hold no event */
    }
    es_err_t err = ES_ERR_INIT;
    if (n == 0 || pj_lock(rt->db, rt->lock, 0, &err)) {
        free(part);
        return;
    }
    json_t *rows = NULL;
    int rc = es_db_begin(rt->db, &err);
    if (rc == 0)
        rc = (rows = pj_offsets_load(rt->db, rt->key, rt->topic, true, &err)) ? 0 : -1;
    for (int k = 0; k < n; k++) { /* a partition whose stored offset moved meanwhile is left */
        const es_kafka_part_t *e = &applied->elems[part[k]];
        if (rc == 0 && pj_offsets_find(rows, e->partition) != rt->parts[e->partition].stored)
            part[k] = -1;
        else if (rc == 0)
            rc = pj_offset_store(rt->db, rt->key, rt->topic, e->partition, e->offset, &err);
    }
    rc = rc == 0 ? es_db_commit(rt->db, &err) : (es_db_rollback(rt->db), -1);
    for (int k = 0; rc == 0 && k < n; k++)
        if (part[k] >= 0)
            rt->parts[applied->elems[part[k]].partition].stored = applied->elems[part[k]].offset;
    json_decref(rows);
    free(part);
    pj_unlock(rt->db, rt->lock);
    if (rc)
        es_debug("projector %s: positions past markers not stored: %s", rt->key, err.msg);
}

/* After a flush or on the idle tick: the positions past markers stored, the lag gauges and the
 * group's commit, from one reading of the positions. */
static void pj_publish_positions(pj_runtime_t *rt)
{
    es_kafka_parts_t *applied = pj_applied_positions(rt);
    pj_store_passed(rt, applied);
    pj_update_lag(rt, applied);
    pj_commit_positions(rt, applied);
    es_kafka_parts_free(applied);
}

/* Whether err is the event's fault (dead-letter it) rather than the database's (retry). */
static bool pj_is_poison(const es_err_t *err)
{
    return err->code == ES_EINVAL || err->code == ES_ENOTFOUND || err->code == ES_ECONFLICT ||
           err->code == ES_ETOOLARGE;
}

/* Remembers an applied event for pj_log_applied: its ids and traceparent. */
static void pj_note_applied(pj_runtime_t *rt, es_kafka_msg_t *m, const char *type,
                            const json_t *value, int64_t start_us)
{
    char *tp = es_kafka_header_dup(m, "traceparent");
    /* nothing to log or send for an unsampled trace at info: no note (they cost a third of a
     * live projector's time); the event's tree is not touched before that (on the writer thread,
     * a lookup there was a cache miss an event) */
    if (!es_trace_sampled(tp) && es_log_min_level > ES_LOG_DEBUG && !es_zipkin_enabled()) {
        free(tp);
        return;
    }
    const json_t *meta = json_object_get(value, "metadata");
    json_array_append_new(
        rt->applied, json_pack("{s:s?, s:s?, s:s, s:s?, s:i, s:I, s:I}", "event_id",
                               json_string_value(json_object_get(meta, "event_id")), "command_id",
                               json_string_value(json_object_get(meta, "command_id")), "type", type,
                               "traceparent", tp, "partition", (int)m->partition, "offset",
                               (json_int_t)m->offset, "start_us", (json_int_t)start_us));
    free(tp);
}

/* One line per event of a committed batch, with the trace id of the event's traceparent, and
 * an apply span (child of the handler's decide span): at info for a sampled trace (a client asked
 * to follow it), else debug; rebuilds replay history: debug only. */
static void pj_log_applied(pj_runtime_t *rt)
{
    int64_t end_us = es_zipkin_now_us();
    size_t i;
    json_t *a;
    json_array_foreach(rt->applied, i, a)
    {
        const char *tp = json_string_value(json_object_get(a, "traceparent"));
        es_log_level_t lvl = rt->manual ? ES_LOG_DEBUG : es_trace_log_level(tp);
        const char *event_id = json_string_value(json_object_get(a, "event_id"));
        const char *type = json_string_value(json_object_get(a, "type"));
        char trace_id[ES_TRACE_ID_LEN], pos[48], span[ES_TRACEPARENT_LEN];
        es_trace_id(tp, trace_id);
        snprintf(pos, sizeof pos, "%d:%lld",
                 (int)json_integer_value(json_object_get(a, "partition")),
                 (long long)json_integer_value(json_object_get(a, "offset")));
        const char *const *fields = ES_F("event_id", event_id, "event_type", type, "command_id",
                                         json_string_value(json_object_get(a, "command_id")),
                                         "projection", rt->key, "position", pos);
        es_log_kv(lvl, trace_id[0] ? trace_id : NULL, fields, "projector %s: applied %s %s at %s",
                  rt->key, type, event_id ? event_id : "?", pos);
        if (es_zipkin_enabled() && trace_id[0] && !rt->manual) {
            int64_t start_us = json_integer_value(json_object_get(a, "start_us"));
            char name[160];
            snprintf(name, sizeof name, "apply %s", type);
            es_trace_child(tp, span);
            es_zipkin_span(span, tp, name, "CONSUMER", start_us, end_us - start_us, fields);
        }
    }
    json_array_clear(rt->applied);
}

/* Decodes m and plans it into ev (its plan kept, the rest replaced): ev->err set when it has
 * no payload, does not decode or the projection rejects it. */
static void pj_ev_prepare(pj_runtime_t *rt, const es_kafka_msg_t *m, struct pj_ev *ev)
{
    ev->full_name = ev->type = NULL;
    ev->value = NULL;
    ev->whole = false;
    ev->err = (es_err_t)ES_ERR_INIT;
    if (!ev->plan)
        ev->plan = pj_plan_new();
    pj_plan_reset(ev->plan);
    if (!m->value) {
        es_set(&ev->err, ES_EINVAL, "message without payload");
        return;
    }
    /* the writer's schema first, outside the arena: a first sight of it is fetched and kept */
    const char *writer = NULL;
    bool current = false;
    es_err_t werr = ES_ERR_INIT;
    int32_t id = ev_frame_schema_id(m->value, m->len);
    bool arena = id >= 0 && (id == rt->known_writer ||
                             ev_codec_writer_info(rt->codec, id, &writer, &current, &werr) == 0);
    if (arena)
        rt->known_writer = id;
    if (arena)
        pj_arena_enter();
    int rc = ev_decode(rt->codec, m->value, m->len, &ev->full_name, &ev->value, &ev->err);
    bool whole = arena && pj_arena_leave(rc == 0);
    ev->arena = arena && rc == 0 ? pj_arena_current() : NULL;
    ev->whole = whole && ev->arena && rc == 0;
    if (rc) {
        ev->full_name = NULL;
        return;
    }
    const char *dot = strrchr(ev->full_name, '.');
    ev->type = dot ? dot + 1 : ev->full_name;
    const pj_position_t at = {m->partition, m->offset};
    pj_projection_plan_at(rt->p, rt->suffix, ev->type, ev->value, &at, ev->plan, &ev->err);
}

/* Empties ev (its plan is kept for the next batch). */
static void pj_ev_release(struct pj_ev *ev)
{
    if (ev->plan)
        pj_plan_reset(ev->plan);
    /* a value all in its region has nothing to free: the walk of its tree (a tenth of a live
     * projector's time) is skipped, the region is let go of with its last value */
    if (!ev->whole)
        json_decref(ev->value);
    ev->value = NULL;
    ev->whole = false;
    pj_arena_release_in(ev->arena);
    ev->arena = NULL;
}

/* Records m in projection_dead_letters with why (the event type, or "undecodable", first). */
static int pj_dead_letter(pj_runtime_t *rt, const es_kafka_msg_t *m, const struct pj_ev *ev,
                          const es_err_t *why, es_err_t *err)
{
    char msg[300];
    snprintf(msg, sizeof msg, "%s: %s", ev->full_name ? ev->full_name : "undecodable", why->msg);
    const es_db_val_t params[] = {ES_DB_S(rt->key), ES_DB_S(rt->topic), ES_DB_I(m->partition),
                                  ES_DB_I(m->offset), ES_DB_S(msg)};
    if (es_db_exec(rt->db,
                   "INSERT INTO projection_dead_letters (projection, topic, part, `offset`, "
                   "error, at) VALUES (?, ?, ?, ?, ?, NOW(3)) ON DUPLICATE KEY UPDATE "
                   "error=VALUES(error), at=VALUES(at)",
                   params, 5, NULL, err))
        return -1;
    es_error("projector %s: dead letter %s[%d]@%lld: %s", rt->key, rt->topic, (int)m->partition,
             (long long)m->offset, msg);
    return 0;
}

/* Whether applied events are remembered for pj_log_applied: its lines are logged, or spans sent. */
static bool pj_notes_applied(const pj_runtime_t *rt)
{
    return !rt->manual || es_log_min_level <= ES_LOG_DEBUG;
}

/* Applies one prepared event's plan. guarded: under a savepoint, so that an event the projection
 * rejects as malformed is undone alone and dead-lettered. Unguarded (one statement less per
 * event), such an event may have left part of its changes in the transaction: it returns 2 and
 * the caller rolls the batch back and redoes it guarded from that event on. An event that does
 * not plan wrote nothing and is dead-lettered either way.
 * 0: applied; 1: dead-lettered; 2: rejected unguarded; -1: the batch must be retried (err set). */
static int pj_ev_apply(pj_runtime_t *rt, es_kafka_msg_t *m, struct pj_ev *ev, bool guarded,
                       es_err_t *err)
{
    es_err_t ev_err = ev->err;
    if (!ev_err.code) {
        if (guarded && es_db_exec(rt->db, "SAVEPOINT pj_event", NULL, 0, NULL, err))
            return -1;
        int64_t start_us = es_zipkin_now_us();
        if (pj_plan_apply(rt->db, ev->plan, ev->type, &ev_err) == 0) {
            if (pj_notes_applied(rt))
                pj_note_applied(rt, m, ev->type, ev->value, start_us);
            return 0;
        }
        if (pj_is_poison(&ev_err) && !guarded) {
            es_warn("projector %s: %s[%d]@%lld rejected: %s", rt->key, rt->topic, (int)m->partition,
                    (long long)m->offset, ev_err.msg);
            return 2;
        }
        if (pj_is_poison(&ev_err) &&
            es_db_exec(rt->db, "ROLLBACK TO SAVEPOINT pj_event", NULL, 0, NULL, err))
            return -1;
    }
    if (!pj_is_poison(&ev_err))
        return es_set(err, ev_err.code, "%s", ev_err.msg);
    return pj_dead_letter(rt, m, ev, &ev_err, err) ? -1 : 1;
}

int pj_apply_one(pj_runtime_t *rt, es_kafka_msg_t *m, bool guarded, es_err_t *err)
{
    struct pj_ev ev = {0};
    pj_ev_prepare(rt, m, &ev);
    int rc = pj_ev_apply(rt, m, &ev, guarded, err);
    pj_ev_release(&ev);
    pj_plan_free(ev.plan);
    return rc;
}

/* The batch being written: its messages and decoded events (moved out of the runtime's filling
 * arrays when it is sent), each partition's offsets when it was sent (next: one past its last
 * message, -1 when it holds none of the partition's), and the outcome of its write. Between
 * pj_send and pj_land the writer thread alone touches it, rt->db, rt->merge and rt->applied; the
 * loop's thread meanwhile polls and decodes the next batch (decoding stays on that one thread:
 * avro-c's error buffer and the arena's regions are per thread). */
/* What one pass over the batch did. */
struct pj_tally {
    int applied, dead;
    int rejected; /* the index of the event rejected unguarded, -1: none */
};

struct pj_flight_part {
    int64_t next, stored;
};

struct pj_flight {
    bool busy;     /* sent and not yet landed */
    bool done;     /* written (atomic: set by the writer thread) */
    bool threaded; /* written by thread (else already written inline) */
    pthread_t thread;
    es_kafka_msg_t **batch;
    struct pj_ev *evs;
    int nbatch, nprepared;
    struct pj_flight_part *parts;
    int nparts, capparts;
    long long t0, t1; /* decoding began, writing ended */
    struct pj_tally t;
    bool locked, moved;
    int rc;
    es_err_t err;
};

/* Fence: the stored offsets must still be where this consumer started, or another consumer (a
 * zombie of an old assignment) or a rebuild's swap has moved them (*moved, ES_ECONFLICT). They are
 * re-read inside the transaction, after taking the lock, and the row locks keep them so until
 * COMMIT. */
static int pj_fence(pj_runtime_t *rt, const struct pj_flight *f, bool *moved, es_err_t *err)
{
    json_t *rows = pj_offsets_load(rt->db, rt->key, rt->topic, true, err);
    if (!rows)
        return -1;
    int rc = 0;
    for (int i = 0; i < f->nparts && rc == 0; i++) {
        if (f->parts[i].next >= 0 && pj_offsets_find(rows, i) != f->parts[i].stored) {
            *moved = true;
            rc = es_set(err, ES_ECONFLICT,
                        "stored offset of %s[%d] moved to %lld (expected %lld): another projector",
                        rt->topic, i, (long long)pj_offsets_find(rows, i),
                        (long long)f->parts[i].stored);
        }
    }
    json_decref(rows);
    return rc;
}

#define PJ_OFFSETS_ROWS 64

/* The partitions of f the batch holds messages of (a next offset), from *from on: at most most of
 * them, their indexes into part. Returns how many; *from moves past the last one looked at. The
 * one row loop of the offsets' statements (pj_fence_store, pj_offsets_store). */
static int pj_offsets_rows(const struct pj_flight *f, int *from, int *part, int most)
{
    int n = 0;
    for (; *from < f->nparts && n < most; (*from)++)
        if (f->parts[*from].next >= 0)
            part[n++] = *from;
    return n;
}

/* Appends n times clause to sql, sep between two. */
static void pj_sql_repeat(struct es_strbuf *sql, const char *clause, const char *sep, int n)
{
    for (int j = 0; j < n; j++) {
        if (j)
            es_strbuf_adds(sql, sep);
        es_strbuf_adds(sql, clause);
    }
}

/* The fence and the offsets' store in one statement, when every partition of the batch has a
 * stored offset (a live projector's steady state): an UPDATE of the batch's partitions, each row
 * only where its stored offset is still the one this consumer started from. It takes the same row
 * locks as pj_fence's SELECT ... FOR UPDATE (every row of the key, until COMMIT), so it is run
 * where pj_fence would be: after the named lock, first in the transaction; every row changes
 * (a batch's next offset lies past its stored one), so fewer affected rows than partitions means
 * one moved: pj_fence then reads them to say which (*moved, ES_ECONFLICT). 1: not applicable
 * (a partition without a stored offset, or too many), nothing sent; 0: fenced and stored; -1:
 * err. */
static int pj_fence_store(pj_runtime_t *rt, const struct pj_flight *f, bool *moved, es_err_t *err)
{
    int part[PJ_OFFSETS_ROWS], from = 0, rest[1];
    int n = pj_offsets_rows(f, &from, part, PJ_OFFSETS_ROWS);
    if (n == 0 || pj_offsets_rows(f, &from, rest, 1) > 0)
        return 1;
    for (int j = 0; j < n; j++)
        if (f->parts[part[j]].stored < 0)
            return 1;
    es_db_val_t params[4 * PJ_OFFSETS_ROWS + 2];
    size_t k = 0;
    for (int j = 0; j < n; j++) {
        params[k++] = ES_DB_I(part[j]);
        params[k++] = ES_DB_I(f->parts[part[j]].next);
    }
    params[k++] = ES_DB_S(rt->key);
    params[k++] = ES_DB_S(rt->topic);
    for (int j = 0; j < n; j++) {
        params[k++] = ES_DB_I(part[j]);
        params[k++] = ES_DB_I(f->parts[part[j]].stored);
    }
    struct es_strbuf sql = ES_STRBUF_INIT;
    es_strbuf_adds(&sql, "UPDATE projection_offsets SET updated_at=NOW(3), next_offset=CASE");
    pj_sql_repeat(&sql, " WHEN part=? THEN ?", "", n);
    es_strbuf_adds(&sql, " END WHERE projection=? AND topic=? AND (");
    pj_sql_repeat(&sql, "(part=? AND next_offset=?)", " OR ", n);
    es_strbuf_addc(&sql, ')');
    long long affected = 0;
    int rc = es_db_exec(rt->db, sql.s, params, k, &affected, err);
    es_strbuf_release(&sql);
    if (rc)
        return -1;
    if (affected == n)
        return 0;
    if (pj_fence(rt, f, moved, err) == 0) {
        *moved = true;
        return es_set(err, ES_ECONFLICT, "stored offsets of %s moved (%lld of %d stored)",
                      rt->topic, affected, n);
    }
    return -1;
}

/* One pass over the batch in the open transaction, events from guard_from on under savepoints;
 * stops at the first event rejected unguarded. -1 with err when the batch must be retried. */
static int pj_apply_pass(pj_runtime_t *rt, struct pj_flight *f, int guard_from, struct pj_tally *t,
                         es_err_t *err)
{
    *t = (struct pj_tally){.rejected = -1};
    json_array_clear(rt->applied);
    for (int i = 0; i < f->nbatch && t->rejected < 0; i++) {
        int r = pj_ev_apply(rt, f->batch[i], &f->evs[i], i >= guard_from, err);
        if (r < 0)
            return -1;
        if (r == 2)
            t->rejected = i;
        else if (r == 0)
            t->applied++;
        else
            t->dead++;
    }
    return 0;
}

/* The whole batch as few multi-row statements (pj_batch.h), events that did not plan
 * dead-lettered. 0: applied; 2: a statement failed on an event's fault (the caller rolls back and
 * goes event by event); -1 with err when the batch must be retried. */
static int pj_apply_merged(pj_runtime_t *rt, struct pj_flight *f, struct pj_tally *t, es_err_t *err)
{
    *t = (struct pj_tally){.rejected = -1};
    json_array_clear(rt->applied);
    pj_batch_reset(rt->merge);
    for (int i = 0; i < f->nbatch; i++) {
        struct pj_ev *ev = &f->evs[i];
        if (!ev->err.code) {
            pj_batch_add(rt->merge, ev->plan);
            t->applied++;
        } else if (!pj_is_poison(&ev->err)) {
            return es_set(err, ev->err.code, "%s", ev->err.msg);
        } else if (pj_dead_letter(rt, f->batch[i], ev, &ev->err, err)) {
            return -1;
        } else {
            t->dead++;
        }
    }
    int64_t start_us = es_zipkin_now_us();
    es_err_t e = ES_ERR_INIT;
    if (pj_batch_apply(rt->db, rt->merge, &e)) {
        if (!pj_is_poison(&e))
            return es_set(err, e.code, "%s", e.msg);
        es_info("projector %s: the batch of %d as multi-row statements failed (%s): applying it "
                "event by event",
                rt->key, f->nbatch, e.msg);
        return 2;
    }
    for (int i = 0; pj_notes_applied(rt) && i < f->nbatch; i++)
        if (!f->evs[i].err.code)
            pj_note_applied(rt, f->batch[i], f->evs[i].type, f->evs[i].value, start_us);
    return 0;
}

/* Begins the batch's transaction, fences it and applies the batch: first as multi-row
 * statements; when that fails on an event's fault, rolled back and redone event by event, events
 * from guard_from on under savepoints. That pass has none; if an event is rejected there, the
 * batch is rolled back and redone guarded from that event (the ones before it applied cleanly to
 * the same rows); should an unguarded one fail on the redo anyway, the last pass guards every
 * event, so it cannot be rejected unguarded again. Returns with the transaction open, or -1 with
 * err. */
static int pj_apply_batch(pj_runtime_t *rt, struct pj_flight *f, struct pj_tally *t, bool *moved,
                          bool *stored, es_err_t *err)
{
    int guard_from = f->nbatch;
    for (int pass = 0;; pass++) {
        if (es_db_begin(rt->db, err))
            return -1;
        int fs = pj_fence_store(rt, f, moved, err);
        if (fs < 0 || (fs == 1 && pj_fence(rt, f, moved, err)))
            return -1;
        *stored = fs == 0;
        int r =
            pass == 0 ? pj_apply_merged(rt, f, t, err) : pj_apply_pass(rt, f, guard_from, t, err);
        if (r < 0)
            return -1;
        if (r == 0 && t->rejected < 0)
            return 0;
        /* a failed ROLLBACK must not be followed by START TRANSACTION, which would commit */
        if (es_db_rollback(rt->db))
            return es_set(err, ES_EIO, "rollback to redo the batch failed");
        if (pass == 0)
            continue;
        guard_from = pass == 1 ? t->rejected : 0;
        es_info("projector %s: redoing the batch of %d with savepoints from event %d on", rt->key,
                f->nbatch, guard_from);
    }
}

/* Stores the next offset of every partition in the batch, in the open transaction: one statement
 * of a row a partition (a statement each was a round trip each, four a batch for a topic of four
 * partitions), up to PJ_OFFSETS_ROWS a statement. Only when pj_fence_store did not. */
static int pj_offsets_store(pj_runtime_t *rt, const struct pj_flight *f, es_err_t *err)
{
    int part[PJ_OFFSETS_ROWS], n, from = 0, rc = 0;
    es_db_val_t params[4 * PJ_OFFSETS_ROWS];
    struct es_strbuf sql = ES_STRBUF_INIT;
    while (rc == 0 && (n = pj_offsets_rows(f, &from, part, PJ_OFFSETS_ROWS)) > 0) {
        for (int j = 0; j < n; j++) {
            params[4 * j] = ES_DB_S(rt->key);
            params[4 * j + 1] = ES_DB_S(rt->topic);
            params[4 * j + 2] = ES_DB_I(part[j]);
            params[4 * j + 3] = ES_DB_I(f->parts[part[j]].next);
        }
        es_strbuf_reset(&sql);
        es_strbuf_adds(&sql, "INSERT INTO projection_offsets (projection, topic, part, "
                             "next_offset, updated_at) VALUES ");
        pj_sql_repeat(&sql, "(?, ?, ?, ?, NOW(3))", ", ", n);
        es_strbuf_adds(&sql, " ON DUPLICATE KEY UPDATE next_offset=VALUES(next_offset), "
                             "updated_at=VALUES(updated_at)");
        rc = es_db_exec(rt->db, sql.s, params, 4 * (size_t)n, NULL, err) ? -1 : 0;
    }
    es_strbuf_release(&sql);
    return rc;
}

/* The write of flight f: the batch applied and its offsets stored in one transaction, holding
 * the projection's named lock (a rebuild takes it to swap tables between two batches). f->rc 0:
 * committed and the lock released; -1: f->err, the transaction and lock left for pj_land. */
static void pj_write(pj_runtime_t *rt, struct pj_flight *f)
{
    f->err = (es_err_t)ES_ERR_INIT;
    f->t = (struct pj_tally){.rejected = -1};
    f->locked = f->moved = false;
    f->rc = -1;
    json_array_clear(rt->applied);
    /* A rebuild's runtime (manual) writes tables and offsets of its own shadow key, which no one
     * else writes or locks: the rebuild's own lock (eventshop.<ctx>.<key>.rebuild, held on its
     * control connection from start to swap) keeps a second rebuild, and the shadow sweep, away;
     * the live lock it takes for the swap is another name. So its batches skip the per-batch
     * named lock (two round trips); the fence still runs. */
    if (!rt->manual) {
        if (pj_lock(rt->db, rt->lock, PJ_LOCK_WAIT_S, &f->err))
            return;
        f->locked = true;
    }
    bool stored = false;
    if (pj_apply_batch(rt, f, &f->t, &f->moved, &stored, &f->err) ||
        (!stored && pj_offsets_store(rt, f, &f->err)))
        return;
    /* fault points for the exactly-once tests: a crash (or a failure) with the batch applied
     * but not committed, and a crash right after the commit */
    if (es_fault_hit("pj.before_commit")) {
        es_set(&f->err, ES_EIO, "fault point pj.before_commit");
        return;
    }
    if (es_db_commit(rt->db, &f->err))
        return;
    es_fault_hit("pj.after_commit");
    if (f->locked)
        pj_unlock(rt->db, rt->lock);
    f->locked = false;
    f->rc = 0;
    f->t1 = es_mono_ms(); /* not when it lands, which may wait for the next batch's decoding */
}

static void *pj_writer_main(void *arg)
{
    pj_runtime_t *rt = arg;
    pj_write(rt, rt->fl);
    __atomic_store_n(&rt->fl->done, true, __ATOMIC_RELEASE);
    return NULL;
}

/* Releases flight f's messages and decoded events. */
static void pj_flight_release(pj_runtime_t *rt, struct pj_flight *f)
{
    pj_msgs_release(f->batch, f->nbatch, f->evs, f->nprepared);
    f->nbatch = f->nprepared = 0;
    pj_batch_reset(rt->merge);
}

/* After the commit: the flight's offsets become the stored ones, its messages are released, and
 * it is counted, logged and committed to the group. */
static void pj_batch_committed(pj_runtime_t *rt, struct pj_flight *f)
{
    const struct pj_tally *t = &f->t;
    rt->done += t->applied + t->dead;
    for (int i = 0; i < f->nparts && i < rt->nparts; i++)
        if (f->parts[i].next >= 0)
            rt->parts[i].stored = f->parts[i].next;
    int n = f->nbatch;
    pj_flight_release(rt, f);
    es_metric_add(rt->m_events, t->applied);
    if (t->dead)
        es_metric_add(rt->m_dead, t->dead);
    es_metric_observe(rt->m_batch, (double)(f->t1 - f->t0) / 1000.0);
    es_debug("projector %s: batch of %d committed (%d dead letters)", rt->key, n, t->dead);
    pj_log_applied(rt);
    pj_publish_positions(rt);
    rt->backoff_ms = 0;
}

/* The flight failed (f->err): rolled back, discarded with the batch being filled, positions to
 * resync. The connection is kept when fenced or the lock was busy (releasing the lock if held),
 * closed otherwise (which also releases the lock). */
static int pj_batch_failed(pj_runtime_t *rt, struct pj_flight *f)
{
    const es_err_t *err = &f->err;
    if (f->moved)
        es_info("projector %s: batch of %d dropped, resyncing: %s", rt->key, f->nbatch, err->msg);
    else
        es_error("projector %s: batch of %d rolled back: %s", rt->key, f->nbatch, err->msg);
    if (err->code == ES_ECONFLICT || err->code == ES_ETIMEOUT) {
        es_db_rollback(rt->db); /* fenced or lock busy: the connection is fine */
        if (f->locked)
            pj_unlock(rt->db, rt->lock);
    } else {
        pj_db_drop(rt); /* closing the connection also releases the lock */
    }
    pj_flight_release(rt, f);
    pj_batch_discard(rt);
    rt->need_resync = true;
    return f->moved ? -2 : -1;
}

static bool pj_in_flight(const pj_runtime_t *rt)
{
    return rt->fl && rt->fl->busy;
}

/* In flight and written: pj_land will not wait. */
static bool pj_flight_done(const pj_runtime_t *rt)
{
    return pj_in_flight(rt) && __atomic_load_n(&rt->fl->done, __ATOMIC_ACQUIRE);
}

/* Waits for the batch in flight, then books its outcome (pj_batch_committed, or pj_batch_failed,
 * which also discards the batch being filled). 0 when nothing was in flight; else as pj_flush. */
static int pj_land(pj_runtime_t *rt)
{
    struct pj_flight *f = rt->fl;
    if (!f || !f->busy)
        return 0;
    if (f->threaded)
        pthread_join(f->thread, NULL);
    f->busy = f->threaded = false;
    if (f->rc)
        return pj_batch_failed(rt, f);
    pj_batch_committed(rt, f);
    return 0;
}

/* Sends the batch being filled (decoded and planned) to be written: its arrays swapped with the
 * flight's, the partitions' offsets noted, then written on the writer thread (async) or at once.
 * The loop's next events decode into another arena region. */
static void pj_send(pj_runtime_t *rt, long long t0, bool async)
{
    struct pj_flight *f = rt->fl;
    es_kafka_msg_t **batch = f->batch;
    struct pj_ev *evs = f->evs;
    f->batch = rt->batch;
    f->evs = rt->evs;
    f->nbatch = rt->nbatch;
    f->nprepared = rt->nprepared;
    rt->batch = batch;
    rt->evs = evs;
    rt->nbatch = rt->nprepared = 0;
    if (f->capparts < rt->nparts) {
        f->capparts = rt->nparts;
        f->parts = xrealloc(f->parts, (size_t)f->capparts * sizeof *f->parts);
    }
    f->nparts = rt->nparts;
    for (int i = 0; i < rt->nparts; i++) {
        f->parts[i].next = rt->parts[i].in_batch ? rt->parts[i].next : -1;
        f->parts[i].stored = rt->parts[i].stored;
        rt->parts[i].in_batch = false;
    }
    f->t0 = t0;
    f->busy = true;
    f->done = false;
    pj_arena_detach();
    f->threaded = async && pthread_create(&f->thread, NULL, pj_writer_main, rt) == 0;
    if (!f->threaded) {
        pj_write(rt, f);
        f->done = true;
    }
}

/* Decodes and plans the batch being filled (while the last one is written), lands the last one,
 * and sends this one: with async, to the writer thread, returning at once (0); else written and
 * landed before returning. Nothing batched: lands what is in flight. */
static int pj_flush_pipelined(pj_runtime_t *rt, bool async)
{
    if (rt->nbatch == 0)
        return pj_land(rt);
    long long t0 = es_mono_ms();
    if (!rt->need_resync && rt->db)
        for (; rt->nprepared < rt->nbatch; rt->nprepared++) /* once, whatever the passes */
            pj_ev_prepare(rt, rt->batch[rt->nprepared], &rt->evs[rt->nprepared]);
    int rc = pj_land(rt);
    if (rc)
        return rc; /* the batch being filled was discarded with it */
    if (rt->need_resync || !rt->db) {
        pj_batch_discard(rt);
        rt->need_resync = true;
        return -1;
    }
    pj_send(rt, t0, async);
    return async ? 0 : pj_land(rt);
}

int pj_flush(pj_runtime_t *rt)
{
    return pj_flush_pipelined(rt, false);
}

/* Waits out a capped exponential back-off (ceiling doubling from PJ_BACKOFF_MIN_MS to
 * PJ_BACKOFF_MAX_MS, the wait drawn between half the ceiling and the ceiling, so that replicas
 * that lost the same server do not retry in step) without taking messages, returning early on
 * stop. es_kafka_serve must not be used here: the main queue is redirected to the consumer's
 * (es_kafka_new), and librdkafka's poll of it aborts the process on the first fetched message
 * it finds there (an assertion in its queue serving, LIBRARY-NOTES).
 * So the assigned partitions are paused and es_kafka_poll keeps serving rebalances,
 * errors and the group's heartbeats; a message fetched before the pause is dropped, and the
 * positions are reloaded from the stored offsets (need_resync) before the next batch. */
void pj_backoff(pj_runtime_t *rt)
{
    long long wait =
        es_backoff_next(&rt->backoff_ms, PJ_BACKOFF_MIN_MS, PJ_BACKOFF_MAX_MS, &rt->jitter);
    es_kafka_parts_t *list = NULL;
    if (es_kafka_assignment(rt->rk, &list) == 0 && list->cnt > 0)
        es_kafka_pause(rt->rk, list);
    if (list)
        es_kafka_parts_free(list);
    rt->need_resync = true;
    long long until = es_mono_ms() + wait;
    for (long long left = wait; left > 0 && !rt->stop; left = until - es_mono_ms()) {
        es_metrics_heartbeat("projector");
        es_kafka_msg_t *m =
            es_kafka_poll(rt->rk, left < PJ_IDLE_POLL_MS ? (int)left : PJ_IDLE_POLL_MS);
        if (m && m->err)
            es_warn("projector %s: consume: %s", rt->key, m->errstr);
        if (m)
            es_kafka_msg_free(m);
    }
    /* the assignment may have changed meanwhile: resume whatever is assigned now */
    list = NULL;
    if (es_kafka_assignment(rt->rk, &list) == 0 && list->cnt > 0)
        es_kafka_resume(rt->rk, list);
    if (list)
        es_kafka_parts_free(list);
}

/* Readiness between batches: whether a broker answers (a metadata request, at most
 * PJ_CHECK_WAIT_MS) and whether MariaDB does (a ping; a dead connection is dropped and the loop
 * reconnects and resyncs with back-off). Both set the role's dependencies for /readyz. */
static void pj_check_dependencies(pj_runtime_t *rt)
{
    es_metrics_set_dependency("kafka", es_kafka_reachable(rt->rk, PJ_CHECK_WAIT_MS));
    es_err_t err = ES_ERR_INIT;
    if (rt->db && es_db_ping(rt->db, &err)) {
        es_warn("projector %s: database connection lost: %s", rt->key, err.msg);
        pj_db_drop(rt);
        es_metrics_set_dependency("mysql", false);
    }
    if (!rt->db)
        rt->need_resync = true;
}

static void pj_metrics_new(pj_runtime_t *rt)
{
    char labels[128];
    snprintf(labels, sizeof labels, "projection=\"%s\"", rt->key);
    rt->m_events = es_counter("eventshop_projector_events_total", "Events applied", labels);
    rt->m_dead = es_counter("eventshop_projector_dead_letters_total",
                            "Events recorded in projection_dead_letters", labels);
    rt->m_batch = es_histogram("eventshop_projector_batch_seconds",
                               "Time to apply and commit one batch", labels);
    rt->m_commit_failed =
        es_counter("eventshop_projector_kafka_commit_failures_total",
                   "Failed commits of the projector's positions to its Kafka consumer group "
                   "(informational: autoscaling reads them)",
                   labels);
}

/* The consumer of rt->topic, in rt->group; a live projector's gets its rebalances and commit
 * outcomes, a rebuild's (manual) neither. */
static int pj_consumer_new(pj_runtime_t *rt, es_err_t *err)
{
    const char *kv[] = {"enable.auto.offset.store", "false",
                        /* a killed projector's partitions move on after 10 s, not 45 */
                        "session.timeout.ms", "10000",
                        /* a rebuild's end-offset requests queue behind the fetch long-poll (live:
                         * the list ends here) */
                        rt->manual ? "fetch.wait.max.ms" : NULL, "100", NULL};
    char client_id[128];
    snprintf(client_id, sizeof client_id, "eventshop-projector-%s", rt->key);
    es_kafka_conf_t *conf = es_kafka_read_committed_conf(client_id, rt->group, false, kv, err);
    if (!conf)
        return -1;
    if (!rt->manual) {
        es_kafka_conf_on_rebalance(conf, pj_rebalance_cb);
        es_kafka_conf_on_committed(conf, pj_offset_commit_cb);
    }
    es_kafka_conf_set_arg(conf, rt);
    if (!(rt->rk = es_kafka_new(ES_KAFKA_CONSUMER, conf, err)))
        return -1;
    return 0;
}

/* A rebuild reads every partition of the topic itself, from its stored offsets. */
static int pj_assign_all(pj_runtime_t *rt, es_err_t *err)
{
    int n = es_kafka_partition_count(rt->rk, rt->topic, err);
    if (n < 0)
        return -1;
    es_kafka_parts_t *all = es_kafka_parts_new(n);
    for (int i = 0; i < n; i++)
        es_kafka_parts_add(all, rt->topic, i);
    pj_assign_from_db(rt, all);
    es_kafka_parts_free(all);
    if (rt->need_resync)
        return es_set(err, ES_EIO, "cannot read the stored offsets of '%s'", rt->key);
    return 0;
}

/* A live projector joins its group; the rebalance callback assigns. */
static int pj_subscribe(pj_runtime_t *rt, es_err_t *err)
{
    const char *topics[] = {rt->topic};
    return es_kafka_resp_error(err, es_kafka_subscribe(rt->rk, topics, 1), "subscribe");
}

pj_runtime_t *pj_runtime_create(const pj_projection_t *p, const pj_options_t *opt, bool manual,
                                es_err_t *err)
{
    pj_arena_install();
    pj_runtime_t *rt = xcalloc(1, sizeof *rt);
    rt->p = p;
    rt->manual = manual;
    rt->known_writer = -1;
    rt->applied = json_array();
    const char *suffix = opt && opt->suffix ? opt->suffix : "";
    if (!pj_suffix_is_valid(suffix)) {
        es_set(err, ES_EINVAL, "table suffix '%s' is not [a-z0-9_]{0,32}", suffix);
        goto fail;
    }
    rt->suffix = xstrdup(suffix);
    rt->key = xasprintf("%s%s", p->name, suffix);
    rt->lock = pj_lock_name(p->context, rt->key);
    /* the key, not the name: a projector of other tables must not join the live one's group */
    rt->group =
        opt && opt->group ? xstrdup(opt->group) : xasprintf("eventshop-%s-projector", rt->key);
    rt->batch_max = opt && opt->batch_max > 0 ? opt->batch_max : 500;
    rt->linger_ms = opt && opt->linger_ms > 0 ? opt->linger_ms : 20;
    rt->batch = xcalloc((size_t)rt->batch_max, sizeof *rt->batch);
    rt->evs = xcalloc((size_t)rt->batch_max, sizeof *rt->evs);
    rt->fl = xcalloc(1, sizeof *rt->fl);
    rt->fl->batch = xcalloc((size_t)rt->batch_max, sizeof *rt->fl->batch);
    rt->fl->evs = xcalloc((size_t)rt->batch_max, sizeof *rt->fl->evs);
    rt->merge = pj_batch_new();
    rt->jitter = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)rt;
    es_topic(rt->topic, sizeof rt->topic, p->context, "events");
    pj_metrics_new(rt);

    if (pj_db_ensure(rt, err) || es_db_exec(rt->db, pj_offsets_ddl, NULL, 0, NULL, err) ||
        es_db_exec(rt->db, pj_dead_ddl, NULL, 0, NULL, err) ||
        es_db_exec(rt->db, pj_versions_ddl, NULL, 0, NULL, err) ||
        pj_projection_setup(rt->db, p, suffix, err))
        goto fail;
    if (!(rt->sr = sr_client_new(es_env_registry_url(), err)) ||
        !(rt->codec = ev_codec_new(es_env_schema_dir(), rt->sr, err)))
        goto fail;
    if (pj_consumer_new(rt, err) || (manual ? pj_assign_all(rt, err) : pj_subscribe(rt, err)))
        goto fail;
    if (!manual)
        pj_shadow_sweep(rt); /* before the actions are read: one may start a shadow */
    if (!manual && pj_ops_open(rt, err))
        goto fail;
    es_info("projector %s: group '%s', topic '%s', batch %d, linger %d ms", rt->key, rt->group,
            rt->topic, rt->batch_max, rt->linger_ms);
    return rt;
fail:
    pj_runtime_free(rt);
    return NULL;
}

pj_runtime_t *pj_runtime_new(const pj_projection_t *p, const pj_options_t *opt, es_err_t *err)
{
    return pj_runtime_create(p, opt, false, err);
}

void pj_runtime_stop(pj_runtime_t *rt)
{
    rt->stop = 1;
}

bool pj_ready(pj_runtime_t *rt)
{
    if (!rt->need_resync)
        return true;
    es_err_t e = ES_ERR_INIT;
    if (pj_db_ensure(rt, &e) == 0 && pj_resync(rt) == 0)
        return true;
    if (e.code)
        es_warn("projector %s: database unavailable: %s", rt->key, e.msg);
    pj_backoff(rt);
    return false;
}

int pj_poll_timeout(const pj_runtime_t *rt, long long first_at)
{
    (void)first_at;
    if (pj_in_flight(rt) && !pj_flight_done(rt))
        return PJ_FLIGHT_POLL_MS;
    return rt->nbatch == 0 && !pj_in_flight(rt) ? PJ_IDLE_POLL_MS : 0;
}

int pj_take(pj_runtime_t *rt, es_kafka_msg_t *m, long long *first_at)
{
    if (!m)
        return -1;
    if (m->err) {
        es_warn("projector %s: consume: %s", rt->key, m->errstr);
        es_kafka_msg_free(m);
        return -1;
    }
    struct pj_part *pp = m->partition < rt->nparts ? &rt->parts[m->partition] : NULL;
    if (rt->need_resync || !pp || !pp->assigned || m->offset < pp->next ||
        (rt->limit && m->offset >= rt->limit[m->partition])) {
        es_kafka_msg_free(m); /* from an old position: fetched again later */
        return 0;
    }
    if (rt->nbatch == 0)
        *first_at = es_mono_ms();
    rt->batch[rt->nbatch++] = m;
    pp->next = m->offset + 1;
    pp->in_batch = true;
    return 1;
}

int pj_runtime_run(pj_runtime_t *rt, es_err_t *err)
{
    long long first_at = 0, lag_at = 0, check_at = 0;
    char errstr[512];
    while (!rt->stop) {
        es_metrics_heartbeat("projector");
        if (es_kafka_fatal_error(rt->rk, errstr, sizeof errstr)) {
            es_metrics_heartbeat_end();
            return es_set(err, ES_EFATAL, "kafka: %s", errstr);
        }
        bool idle = rt->nbatch == 0 && !pj_in_flight(rt); /* nothing in hand: rt->db is ours */
        if (idle && es_mono_ms() - check_at >= PJ_CHECK_EVERY_MS) {
            pj_check_dependencies(rt);
            check_at = es_mono_ms();
        }
        if (idle && pj_ops_poll(rt)) {
            pj_ops_paused_wait(rt);
            continue;
        }
        if (!pj_ready(rt))
            continue;
        int timeout = pj_poll_timeout(rt, first_at);
        es_kafka_msg_t *m = es_kafka_poll(rt->rk, timeout);
        int took = pj_take(rt, m, &first_at);
        long long now = es_mono_ms();
        /* a due batch is decoded while the one before is written, then sent to be written
         * in turn. While one is being written the next fills up to batch_max (linger and a dry
         * consumer do not cut it short: it could not be written sooner anyway, and smaller
         * batches cost more a event); once written it lands, and what is batched goes */
        bool busy = pj_in_flight(rt), written = pj_flight_done(rt);
        if (rt->nbatch > 0 && (rt->nbatch >= rt->batch_max ||
                               ((!busy || written) &&
                                (now - first_at >= rt->linger_ms || (took < 0 && timeout == 0))))) {
            if (pj_flush_pipelined(rt, rt->nbatch >= PJ_PIPELINE_MIN) == -1)
                pj_backoff(rt);
            lag_at = es_mono_ms();
        } else if (busy && (written || (rt->nbatch == 0 && took < 0))) {
            if (pj_land(rt) == -1)
                pj_backoff(rt);
            lag_at = es_mono_ms();
        } else if (rt->nbatch == 0 && !busy && now - lag_at >= PJ_LAG_EVERY_MS) {
            pj_publish_positions(rt); /* e.g. after an assignment, or past a marker read since */
            lag_at = now;
        }
    }
    pj_flush(rt);
    pj_status_write(rt, "stopped", "");
    es_info("projector %s: stopping", rt->key);
    es_kafka_close(rt->rk);
    es_metrics_heartbeat_end();
    return 0;
}

void pj_runtime_free(pj_runtime_t *rt)
{
    if (!rt)
        return;
    if (rt->rk) {
        pj_land(rt);
        pj_batch_discard(rt);
        es_kafka_destroy(rt->rk);
    }
    pj_ops_close(rt);
    ev_codec_free(rt->codec);
    sr_client_free(rt->sr);
    es_db_close(rt->db);
    free(rt->batch);
    for (int i = 0; rt->evs && i < rt->batch_max; i++) {
        pj_ev_release(&rt->evs[i]);
        pj_plan_free(rt->evs[i].plan);
    }
    free(rt->evs);
    if (rt->fl) {
        if (rt->fl->busy && rt->fl->threaded) /* landed above unless there was no consumer */
            pthread_join(rt->fl->thread, NULL);
        pj_flight_release(rt, rt->fl);
        for (int i = 0; rt->fl->evs && i < rt->batch_max; i++) {
            pj_ev_release(&rt->fl->evs[i]);
            pj_plan_free(rt->fl->evs[i].plan);
        }
        free(rt->fl->evs);
        free(rt->fl->batch);
        free(rt->fl->parts);
        free(rt->fl);
    }
    pj_batch_free(rt->merge);
    /* A rebuild's runtime ends before the process: its lag would stay on /metrics at its last
     * reading, a lag nobody works off (autoscaling on it would never scale in). */
    for (int i = 0; i < rt->nparts; i++)
        es_metric_retire(rt->parts[i].lag);
    free(rt->parts);
    free(rt->group);
    free(rt->suffix);
    free(rt->key);
    free(rt->lock);
    json_decref(rt->applied);
    free(rt);
}
