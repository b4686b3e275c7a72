/* The projector runtime is plumbing: it alone talks to librdkafka here; projections only see
 * decoded events and a database handle inside an open transaction. */
#include "pj_runtime.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
/* ev_codec.h's comment holds a path with "/\*" in it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "ev_codec.h"
#pragma GCC diagnostic pop
#include "sr_client.h"
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PJ_BACKOFF_MIN_MS 200
#define PJ_BACKOFF_MAX_MS 5000
#define PJ_IDLE_POLL_MS   100
#define PJ_LAG_EVERY_MS   1000

struct pj_part {
    bool assigned;
    int64_t stored; /* next offset stored in MariaDB; -1: none (from the beginning) */
    int64_t next;   /* one past the last offset put in the batch; -1: none yet */
    bool in_batch;
    es_metric_t *lag;
};

struct pj_runtime {
    const pj_projection_t *p;
    char *group, *suffix, *key; /* key: offsets and dead letters are kept under it */
    char topic[200];
    int batch_max, linger_ms;
    es_db_t *db;
    sr_client_t *sr;
    ev_codec_t *codec;
    rd_kafka_t *rk;
    struct pj_part *parts;
    int nparts;
    rd_kafka_message_t **batch;
    int nbatch;
    bool need_resync; /* positions must be reloaded from MariaDB before the next batch */
    int backoff_ms;
    volatile sig_atomic_t stop;
    es_metric_t *m_events, *m_batch, *m_dead;
};

static const char pj_offsets_ddl[] =
    "CREATE TABLE IF NOT EXISTS projection_offsets ("
    "projection VARCHAR(64) NOT NULL, topic VARCHAR(200) NOT NULL, part INT NOT NULL,"
    "next_offset BIGINT NOT NULL,"
    "updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    "PRIMARY KEY (projection, topic, part)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char pj_dead_ddl[] =
    "CREATE TABLE IF NOT EXISTS projection_dead_letters ("
    "projection VARCHAR(64) NOT NULL, topic VARCHAR(200) NOT NULL, part INT NOT NULL,"
    "`offset` BIGINT NOT NULL, error VARCHAR(1000) NOT NULL,"
    "at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    "PRIMARY KEY (projection, topic, part, `offset`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

static long long pj_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void pj_options_from_env(pj_options_t *opt)
{
    opt->group = es_env_str("EVENTSHOP_PROJECTOR_GROUP", NULL);
    opt->suffix = es_env_str("EVENTSHOP_PROJECTOR_TABLE_SUFFIX", NULL);
    opt->batch_max = (int)es_env_long("EVENTSHOP_PROJECTOR_BATCH", 500);
    opt->linger_ms = (int)es_env_long("EVENTSHOP_PROJECTOR_LINGER_MS", 20);
}

static struct pj_part *pj_part_get(pj_runtime_t *rt, int32_t p)
{
    if (p < 0)
        return NULL;
    if (p >= rt->nparts) {
        rt->parts = xrealloc(rt->parts, sizeof *rt->parts * (size_t)(p + 1));
        memset(rt->parts + rt->nparts, 0, sizeof *rt->parts * (size_t)(p + 1 - rt->nparts));
        for (int i = rt->nparts; i <= p; i++)
            rt->parts[i].stored = rt->parts[i].next = -1;
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

static void pj_batch_discard(pj_runtime_t *rt)
{
    for (int i = 0; i < rt->nbatch; i++)
        rd_kafka_message_destroy(rt->batch[i]);
    rt->nbatch = 0;
    for (int i = 0; i < rt->nparts; i++) {
        rt->parts[i].in_batch = false;
        rt->parts[i].next = rt->parts[i].stored;
    }
}

static int pj_db_ensure(pj_runtime_t *rt, es_err_t *err)
{
    if (rt->db)
        return 0;
    rt->db = es_db_open(rt->p->context, err);
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

/* Stored next offsets of this projection's partitions: a new JSON array of {part, next_offset}. */
static json_t *pj_offsets_load(pj_runtime_t *rt, bool for_update, es_err_t *err)
{
    const es_db_val_t params[] = {ES_DB_S(rt->key), ES_DB_S(rt->topic)};
    return es_db_query(rt->db,
                       for_update ? "SELECT part, next_offset FROM projection_offsets "
                                    "WHERE projection=? AND topic=? FOR UPDATE"
                                  : "SELECT part, next_offset FROM projection_offsets "
                                    "WHERE projection=? AND topic=?",
                       params, 2, err);
}

static int64_t pj_offsets_find(const json_t *rows, int32_t part)
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
static void pj_assign_from_db(pj_runtime_t *rt, rd_kafka_topic_partition_list_t *list)
{
    es_err_t err = ES_ERR_INIT;
    json_t *rows = NULL;
    if (pj_db_ensure(rt, &err) == 0)
        rows = pj_offsets_load(rt, false, &err);
    if (!rows) {
        es_warn("projector %s: cannot read stored offsets, will retry: %s", rt->key, err.msg);
        pj_db_drop(rt);
        rt->need_resync = true;
    }
    for (int i = 0; i < rt->nparts; i++)
        rt->parts[i].assigned = false;
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        struct pj_part *pp = pj_part_get(rt, tp->partition);
        int64_t stored = rows ? pj_offsets_find(rows, tp->partition) : -1;
        tp->offset = stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
        pp->assigned = true;
        pp->stored = pp->next = stored;
        pp->in_batch = false;
        es_info("projector %s: partition %s[%d] from offset %lld", rt->key, rt->topic,
                (int)tp->partition, (long long)stored);
    }
    json_decref(rows);
    rd_kafka_resp_err_t e = rd_kafka_assign(rt->rk, list);
    if (e)
        es_error("projector %s: assign: %s", rt->key, rd_kafka_err2str(e));
}

static int pj_flush(pj_runtime_t *rt);

static void pj_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                            rd_kafka_topic_partition_list_t *list, void *opaque)
{
    pj_runtime_t *rt = opaque;
    (void)rk;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
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
    rd_kafka_assign(rt->rk, NULL);
    if (e != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        es_warn("projector %s: rebalance: %s", rt->key, rd_kafka_err2str(e));
}

/* Re-reads stored offsets and re-positions the current assignment on them. */
static int pj_resync(pj_runtime_t *rt)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    pj_batch_discard(rt);
    rd_kafka_resp_err_t e = rd_kafka_assignment(rt->rk, &list);
    if (e) {
        es_error("projector %s: assignment: %s", rt->key, rd_kafka_err2str(e));
        return -1;
    }
    rt->need_resync = false;
    rd_kafka_assign(rt->rk, NULL);
    pj_assign_from_db(rt, list);
    rd_kafka_topic_partition_list_destroy(list);
    return rt->need_resync ? -1 : 0;
}

static void pj_update_lag(pj_runtime_t *rt)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(rt->nparts);
    for (int i = 0; i < rt->nparts; i++)
        if (rt->parts[i].assigned)
            rd_kafka_topic_partition_list_add(list, rt->topic, i);
    rd_kafka_position(rt->rk, list);
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets(rt->rk, rt->topic, p, &lo, &hi) || hi < 0)
            continue;
        /* the consumer's position may lie past the stored offset by control records only
         * (every consumed message was committed by the last flush) */
        int64_t next = rt->parts[p].stored;
        if (list->elems[i].offset > next)
            next = list->elems[i].offset;
        if (next < lo)
            next = lo;
        es_metric_set(rt->parts[p].lag, (double)(hi > next ? hi - next : 0));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* Whether err is the event's fault (dead-letter it) rather than the database's (retry). */
static bool pj_is_poison(const es_err_t *err)
{
    return err->code == ES_EINVAL || err->code == ES_ENOTFOUND || err->code == ES_ECONFLICT ||
           err->code == ES_ETOOLARGE;
}

/* Decodes and applies one message under a savepoint. 0: applied; 1: dead-lettered; -1: the
 * batch must be retried (err set). */
static int pj_apply_one(pj_runtime_t *rt, rd_kafka_message_t *m, es_err_t *err)
{
    es_err_t ev_err = ES_ERR_INIT;
    json_t *value = NULL;
    const char *full_name = NULL;
    int rc = -1;
    if (!m->payload) {
        es_set(&ev_err, ES_EINVAL, "message without payload");
    } else if (ev_decode(rt->codec, m->payload, m->len, &full_name, &value, &ev_err) == 0) {
        const char *dot = strrchr(full_name, '.');
        const char *type = dot ? dot + 1 : full_name;
        if (es_db_exec(rt->db, "SAVEPOINT pj_event", NULL, 0, NULL, err))
            goto out;
        if (rt->p->apply(rt->db, rt->suffix, type, value, &ev_err) == 0) {
            rc = 0;
            goto out;
        }
        if (pj_is_poison(&ev_err) &&
            es_db_exec(rt->db, "ROLLBACK TO SAVEPOINT pj_event", NULL, 0, NULL, err))
            goto out;
    }
    if (!pj_is_poison(&ev_err)) {
        es_set(err, ev_err.code, "%s", ev_err.msg);
        goto out;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "%s: %s", full_name ? full_name : "undecodable", ev_err.msg);
    const es_db_val_t params[] = {ES_DB_S(rt->key), ES_DB_S(rt->topic), ES_DB_I(m->partition),
                                  ES_DB_I(m->offset), ES_DB_S(msg)};
    if (es_db_exec(rt->db,
                   "INSERT INTO projection_dead_letters (projection, topic, part, `offset`, "
                   "error, at) VALUES (?, ?, ?, ?, ?, NOW(3)) ON DUPLICATE KEY UPDATE "
                   "error=VALUES(error), at=VALUES(at)",
                   params, 5, NULL, err))
        goto out;
    es_error("projector %s: dead letter %s[%d]@%lld: %s", rt->key, rt->topic, (int)m->partition,
             (long long)m->offset, msg);
    rc = 1;
out:
    json_decref(value);
    return rc;
}

/* Applies the batch and stores the offsets in one transaction. 0: committed (or nothing to do);
 * -1: rolled back, batch discarded, positions to resync. */
static int pj_flush(pj_runtime_t *rt)
{
    if (rt->nbatch == 0)
        return 0;
    if (rt->need_resync || !rt->db) {
        pj_batch_discard(rt);
        rt->need_resync = true;
        return -1;
    }
    es_err_t err = ES_ERR_INIT;
    long long t0 = pj_now_ms();
    int applied = 0, dead = 0;
    json_t *rows = NULL;
    if (es_db_begin(rt->db, &err))
        goto fail;
    /* Fence: the stored offsets must still be where this consumer started, or another consumer
     * (a zombie of an old assignment) has moved them; the row locks keep it so until COMMIT. */
    if (!(rows = pj_offsets_load(rt, true, &err)))
        goto fail;
    for (int i = 0; i < rt->nparts; i++) {
        if (rt->parts[i].in_batch && pj_offsets_find(rows, i) != rt->parts[i].stored) {
            es_set(&err, ES_ECONFLICT,
                   "stored offset of %s[%d] moved to %lld (expected %lld): another projector",
                   rt->topic, i, (long long)pj_offsets_find(rows, i),
                   (long long)rt->parts[i].stored);
            goto fail;
        }
    }
    for (int i = 0; i < rt->nbatch; i++) {
        int r = pj_apply_one(rt, rt->batch[i], &err);
        if (r < 0)
            goto fail;
        if (r == 0)
            applied++;
        else
            dead++;
    }
    for (int i = 0; i < rt->nparts; i++) {
        if (!rt->parts[i].in_batch)
            continue;
        const es_db_val_t params[] = {ES_DB_S(rt->key), ES_DB_S(rt->topic), ES_DB_I(i),
                                      ES_DB_I(rt->parts[i].next)};
        if (es_db_exec(rt->db,
                       "INSERT INTO projection_offsets (projection, topic, part, next_offset, "
                       "updated_at) VALUES (?, ?, ?, ?, NOW(3)) ON DUPLICATE KEY UPDATE "
                       "next_offset=VALUES(next_offset), updated_at=VALUES(updated_at)",
                       params, 4, NULL, &err))
            goto fail;
    }
    if (es_db_commit(rt->db, &err))
        goto fail;
    json_decref(rows);
    for (int i = 0; i < rt->nparts; i++) {
        if (rt->parts[i].in_batch)
            rt->parts[i].stored = rt->parts[i].next;
        rt->parts[i].in_batch = false;
    }
    for (int i = 0; i < rt->nbatch; i++)
        rd_kafka_message_destroy(rt->batch[i]);
    rt->nbatch = 0;
    es_metric_add(rt->m_events, applied);
    if (dead)
        es_metric_add(rt->m_dead, dead);
    es_metric_observe(rt->m_batch, (double)(pj_now_ms() - t0) / 1000.0);
    es_debug("projector %s: batch of %d committed (%d dead letters)", rt->key, applied + dead,
             dead);
    pj_update_lag(rt);
    rt->backoff_ms = 0;
    return 0;
fail:
    json_decref(rows);
    es_error("projector %s: batch of %d rolled back: %s", rt->key, rt->nbatch, err.msg);
    if (err.code == ES_ECONFLICT)
        es_db_rollback(rt->db); /* fenced: the connection is fine */
    else
        pj_db_drop(rt);
    pj_batch_discard(rt);
    rt->need_resync = true;
    return -1;
}

/* Sleeps the back-off (doubling up to PJ_BACKOFF_MAX_MS) in slices, returning early on stop. */
static void pj_backoff(pj_runtime_t *rt)
{
    rt->backoff_ms = rt->backoff_ms ? rt->backoff_ms * 2 : PJ_BACKOFF_MIN_MS;
    if (rt->backoff_ms > PJ_BACKOFF_MAX_MS)
        rt->backoff_ms = PJ_BACKOFF_MAX_MS;
    for (int left = rt->backoff_ms; left > 0 && !rt->stop; left -= 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        /* serve the group protocol while waiting, without taking messages */
        rd_kafka_poll(rt->rk, 0);
    }
}

pj_runtime_t *pj_runtime_new(const pj_projection_t *p, const pj_options_t *opt, es_err_t *err)
{
    pj_runtime_t *rt = xcalloc(1, sizeof *rt);
    rt->p = p;
    const char *suffix = opt && opt->suffix ? opt->suffix : "";
    if (!pj_suffix_is_valid(suffix)) {
        es_set(err, ES_EINVAL, "table suffix '%s' is not [a-z0-9_]{0,32}", suffix);
        goto fail;
    }
    rt->suffix = xstrdup(suffix);
    rt->key = xasprintf("%s%s", p->name, suffix);
    rt->group =
        opt && opt->group ? xstrdup(opt->group) : xasprintf("eventshop-%s-projector", p->name);
    rt->batch_max = opt && opt->batch_max > 0 ? opt->batch_max : 500;
    rt->linger_ms = opt && opt->linger_ms > 0 ? opt->linger_ms : 20;
    rt->batch = xcalloc((size_t)rt->batch_max, sizeof *rt->batch);
    es_topic(rt->topic, sizeof rt->topic, p->context, "events");

    char labels[128];
    snprintf(labels, sizeof labels, "projection=\"%s\"", rt->key);
    rt->m_events = es_counter("eventshop_projector_events_total", "Events applied", labels);
    rt->m_dead = es_counter("eventshop_projector_dead_letters_total",
                            "Events recorded in projection_dead_letters", labels);
    rt->m_batch = es_histogram("eventshop_projector_batch_seconds",
                               "Time to apply and commit one batch", labels);

    if (pj_db_ensure(rt, err) || es_db_exec(rt->db, pj_offsets_ddl, NULL, 0, NULL, err) ||
        es_db_exec(rt->db, pj_dead_ddl, NULL, 0, NULL, err) || p->setup(rt->db, suffix, err))
        goto fail;

    if (!(rt->sr = sr_client_new(es_env_registry_url(), err)) ||
        !(rt->codec = ev_codec_new(es_env_schema_dir(), rt->sr, err)))
        goto fail;

    const char *kv[] = {"group.id", rt->group, "isolation.level", "read_committed",
                        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                        "auto.offset.reset", "earliest", "enable.partition.eof", "false",
                        /* a killed projector's partitions move on after 10 s, not 45 */
                        "session.timeout.ms", "10000", NULL};
    char client_id[128];
    snprintf(client_id, sizeof client_id, "eventshop-projector-%s", rt->key);
    rd_kafka_conf_t *conf = es_kafka_conf_new(client_id, kv, err);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, pj_rebalance_cb);
    rd_kafka_conf_set_opaque(conf, rt);
    char errstr[512];
    if (!(rt->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr))) {
        rd_kafka_conf_destroy(conf);
        es_set(err, ES_EIO, "kafka consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(rt->rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, rt->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rt->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (es_kafka_resp_error(err, e, "subscribe"))
        goto fail;
    es_info("projector %s: group '%s', topic '%s', batch %d, linger %d ms", rt->key, rt->group,
            rt->topic, rt->batch_max, rt->linger_ms);
    return rt;
fail:
    pj_runtime_free(rt);
    return NULL;
}

void pj_runtime_stop(pj_runtime_t *rt)
{
    rt->stop = 1;
}

int pj_runtime_run(pj_runtime_t *rt, es_err_t *err)
{
    long long first_at = 0, lag_at = 0;
    char errstr[512];
    while (!rt->stop) {
        if (rd_kafka_fatal_error(rt->rk, errstr, sizeof errstr))
            return es_set(err, ES_EFATAL, "kafka: %s", errstr);
        if (rt->need_resync) {
            es_err_t e = ES_ERR_INIT;
            if (pj_db_ensure(rt, &e) || pj_resync(rt)) {
                if (e.code)
                    es_warn("projector %s: database unavailable: %s", rt->key, e.msg);
                pj_backoff(rt);
                continue;
            }
        }
        long long now = pj_now_ms();
        int timeout = PJ_IDLE_POLL_MS;
        if (rt->nbatch > 0) {
            long long left = first_at + rt->linger_ms - now;
            timeout = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m =
            timeout > 0 || rt->nbatch == 0 ? rd_kafka_consumer_poll(rt->rk, timeout) : NULL;
        if (m && m->err) {
            es_warn("projector %s: consume: %s", rt->key, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            m = NULL;
        } else if (m) {
            struct pj_part *pp = m->partition < rt->nparts ? &rt->parts[m->partition] : NULL;
            if (rt->need_resync || !pp || !pp->assigned || m->offset < pp->next) {
                rd_kafka_message_destroy(m); /* from an old position: fetched again later */
            } else {
                if (rt->nbatch == 0)
                    first_at = pj_now_ms();
                rt->batch[rt->nbatch++] = m;
                pp->next = m->offset + 1;
                pp->in_batch = true;
            }
        }
        now = pj_now_ms();
        if (rt->nbatch > 0 && (rt->nbatch >= rt->batch_max || now - first_at >= rt->linger_ms ||
                               (!m && timeout == 0))) {
            if (pj_flush(rt))
                pj_backoff(rt);
            lag_at = pj_now_ms();
        } else if (rt->nbatch == 0 && now - lag_at >= PJ_LAG_EVERY_MS) {
            pj_update_lag(rt);
            lag_at = now;
        }
    }
    pj_flush(rt);
    es_info("projector %s: stopping", rt->key);
    rd_kafka_consumer_close(rt->rk);
    return 0;
}

void pj_runtime_free(pj_runtime_t *rt)
{
    if (!rt)
        return;
    if (rt->rk) {
        pj_batch_discard(rt);
        rd_kafka_destroy(rt->rk);
    }
    ev_codec_free(rt->codec);
    sr_client_free(rt->sr);
    es_db_close(rt->db);
    free(rt->batch);
    free(rt->parts);
    free(rt->group);
    free(rt->suffix);
    free(rt->key);
    free(rt);
}
