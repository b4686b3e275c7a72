#include "hd_runtime.h"
#include "es_env.h"
#include "es_fault.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_retry.h"
#include "es_time.h"
#include "es_trace.h"
#include "es_txn.h"
#include "es_zipkin.h"
#include "hd_store.h"
#include "hd_views.h"
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TXN_TIMEOUT_MS 30000
/* records replayed into the store between two of its commits during a recovery */
#define REPLAY_CHUNK 10000

/* a record the batch in flight produced, written to the store once its transaction committed */
typedef struct hd_pending {
    hd_store_log_t log;
    char *key; /* aggregate id or command id, owned */
    void *buf; /* the encoded record, owned; NULL: a tombstone */
    size_t len;
    size_t slot; /* a result's delivery slot (es_txn_offset) */
} hd_pending_t;

/* what the runtime holds of one assigned partition (its committed states and decided commands
 * live in the store, hd_store): what the batch in flight has staged */
typedef struct hd_part {
    bool owned;
    json_t *staged_states;  /* aggregate id -> state, or null for a deletion */
    json_t *staged_results; /* command id -> CommandResult */
    hd_pending_t *pending;  /* the batch's records for the store */
    size_t npending, cap_pending;
    bool clog_tracked; /* clog_slot is the delivery slot of its last changelog record */
    size_t clog_slot;
    int64_t results_next; /* the results offset the store reflects, as last known */
} hd_part_t;

/* one command of the batch in flight */
typedef struct hd_item {
    es_kafka_msg_t *msg;
    json_t *result;     /* CommandResult, owned; NULL if undecodable */
    const char *type;   /* command full name, borrowed from the codec; NULL if undecodable */
    const char *status; /* metric label */
    size_t last_slot;   /* delivery slot of its last event, if it has events */
    bool has_events;
    bool duplicate;
    char *traceparent;             /* the command's, owned; NULL if it came without one */
    char span[ES_TRACEPARENT_LEN]; /* the decide span: the next hop, carried by its events */
    int64_t start_us;              /* when deciding began (zipkin clock) */
} hd_item_t;

typedef struct hd_counter {
    char *type;
    const char *status;
    es_metric_t *m;
} hd_counter_t;

struct hd_runtime {
    const hd_context_t *ctx;
    ev_codec_t *codec;
    hd_runtime_config_t cfg;
    char t_commands[128], t_events[128], t_changelog[128], t_results[128];
    es_kafka_t *consumer;
    es_kafka_conf_t *cconf;    /* the consumer's settings, to make it again */
    bool consumer_lost;        /* its fatal error was seen: make it again */
    double consumer_fenced_at; /* when it was last made again after a fence, 0: never */
    es_txn_t *txn;             /* the transactional producer */
    es_txn_rc_t produce_rc;    /* why the last produce of the batch failed */
    hd_part_t *parts;
    int nparts;
    volatile sig_atomic_t stop;
    bool rebalanced; /* the assignment changed while a batch was being gathered */
    bool fatal;
    es_err_t fatal_err;
    hd_counter_t *counters;
    size_t ncounters;
    hd_views_t *views; /* the context's global views */
    hd_store_t *store; /* the partitions' states and decided commands on local disk */
    es_metric_t *m_replayed_changelog, *m_replayed_results;
    es_metric_t *m_commits, *m_aborts, *m_recreates, *m_batch_seconds, *m_batch_size;
};

/* The liveness beat of the batch loop (also called by es_txn while it waits or backs off). */
static void hd_heartbeat(void)
{
    es_metrics_heartbeat("handler");
}

void hd_runtime_config_init(hd_runtime_config_t *cfg)
{
    cfg->batch_max = (int)es_env_long("EVENTSHOP_HANDLER_BATCH", 500);
    if (cfg->batch_max < 1)
        cfg->batch_max = 1;
    cfg->linger_ms = (int)es_env_long("EVENTSHOP_HANDLER_LINGER_MS", 0);
    if (cfg->linger_ms < 0)
        cfg->linger_ms = 0;
    cfg->recovery_timeout_ms = (int)es_env_long("EVENTSHOP_HANDLER_RECOVERY_MS", 60000);
    cfg->view_wait_ms = (int)es_env_long("EVENTSHOP_HANDLER_VIEW_WAIT_MS", 10000);
    if (cfg->view_wait_ms < 1)
        cfg->view_wait_ms = 1;
    cfg->cache_max = (int)es_env_long("EVENTSHOP_HANDLER_CACHE", 10000);
    if (cfg->cache_max < 0)
        cfg->cache_max = 0;
    cfg->state_map_mb = (int)es_env_long("EVENTSHOP_HANDLER_STATE_MAP_MB", 4096);
    if (cfg->state_map_mb < 16)
        cfg->state_map_mb = 16;
    const char *dir = es_env_str("EVENTSHOP_HANDLER_STATE_DIR", "");
    snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s", dir && *dir ? dir : "");
    const char *id = es_env_str("EVENTSHOP_INSTANCE_ID", NULL);
    if (id && *id) {
        snprintf(cfg->instance_id, sizeof cfg->instance_id, "%s", id);
    } else if (gethostname(cfg->instance_id, sizeof cfg->instance_id) != 0) {
        snprintf(cfg->instance_id, sizeof cfg->instance_id, "0");
    }
    cfg->instance_id[sizeof cfg->instance_id - 1] = '\0';
}

static void set_fatal(hd_runtime_t *rt, es_err_t *e)
{
    rt->fatal = true;
    es_set(&rt->fatal_err, e->code ? e->code : ES_EFATAL, "%s", e->msg);
}

/* --- partitions ------------------------------------------------------------------------- */

static hd_part_t *part_get(hd_runtime_t *rt, int32_t p)
{
    if (p < 0)
        return NULL;
    if (p >= rt->nparts) {
        rt->parts = xrealloc(rt->parts, (size_t)(p + 1) * sizeof *rt->parts);
        memset(rt->parts + rt->nparts, 0, (size_t)(p + 1 - rt->nparts) * sizeof *rt->parts);
        rt->nparts = p + 1;
    }
    return &rt->parts[p];
}

static void pending_clear(hd_part_t *pt)
{
    for (size_t i = 0; i < pt->npending; i++) {
        free(pt->pending[i].key);
        free(pt->pending[i].buf);
    }
    pt->npending = 0;
    pt->clog_tracked = false;
}

/* Notes a copy of buf (borrowed, NULL for a tombstone) of the batch for the store. */
static void pending_add(hd_part_t *pt, hd_store_log_t log, const char *key, const void *buf,
                        size_t len, size_t slot)
{
    if (pt->npending == pt->cap_pending) {
        pt->cap_pending = pt->cap_pending ? pt->cap_pending * 2 : 64;
        pt->pending = xrealloc(pt->pending, pt->cap_pending * sizeof *pt->pending);
    }
    void *copy = NULL;
    if (buf) {
        copy = xmalloc(len ? len : 1);
        memcpy(copy, buf, len);
    }
    pt->pending[pt->npending++] = (hd_pending_t){log, xstrdup(key), copy, len, slot};
}

static void part_drop(hd_part_t *pt)
{
    json_decref(pt->staged_states);
    json_decref(pt->staged_results);
    pending_clear(pt);
    free(pt->pending);
    memset(pt, 0, sizeof *pt);
}

/* The next owned partition at or after *p (then moved past it), or NULL. */
static hd_part_t *owned_next(hd_runtime_t *rt, int *p)
{
    for (; *p < rt->nparts; (*p)++)
        if (rt->parts[*p].owned)
            return &rt->parts[(*p)++];
    return NULL;
}

static void discard_staged(hd_runtime_t *rt)
{
    hd_part_t *pt;
    for (int p = 0; (pt = owned_next(rt, &p));) {
        json_object_clear(pt->staged_states);
        json_object_clear(pt->staged_results);
        pending_clear(pt);
    }
}

/* Writes partition p's records of the committed batch to the store (open write) and its staged
 * states to the cache; the changelog and results offsets move past the batch's last records. */
static int store_part(hd_runtime_t *rt, hd_part_t *pt, int32_t p, es_err_t *err)
{
    int64_t results_max = -1;
    for (size_t i = 0; i < pt->npending; i++) {
        hd_pending_t *e = &pt->pending[i];
        int rc;
        if (e->log == HD_LOG_CHANGELOG) {
            rc = hd_store_state_put(rt->store, p, e->key, e->buf, e->len, err);
        } else {
            /* a delivery not reported yet: the offset the store reflects is below its own */
            int64_t off = es_txn_offset(rt->txn, e->slot);
            if (off > results_max)
                results_max = off;
            rc = hd_store_result_add(rt->store, p, e->key, off >= 0 ? off : pt->results_next,
                                     e->buf, e->len, err);
        }
        if (rc != 0)
            return -1;
    }
    int64_t clog = pt->clog_tracked ? es_txn_offset(rt->txn, pt->clog_slot) : -1;
    if (clog >= 0 && hd_store_offset_set(rt->store, p, HD_LOG_CHANGELOG, clog + 1, err) != 0)
        return -1;
    if (results_max >= 0) {
        if (hd_store_offset_set(rt->store, p, HD_LOG_RESULTS, results_max + 1, err) != 0)
            return -1;
        pt->results_next = results_max + 1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(pt->staged_states, k, v)
    {
        hd_store_cache_update(rt->store, p, k, json_is_null(v) ? NULL : v);
    }
    return 0;
}

/* After the batch's transaction committed (and only then: a zombie's records never commit):
 * writes its states, results and offsets to the store in one write. A store that cannot be
 * written is fatal: the restart replays the changelog since the offsets the store kept. */
static void store_batch(hd_runtime_t *rt)
{
    es_err_t err = ES_ERR_INIT;
    int rc = hd_store_begin(rt->store, &err);
    hd_part_t *pt;
    for (int p = 0; (pt = owned_next(rt, &p));) {
        if (rc == 0)
            rc = store_part(rt, pt, (int32_t)(pt - rt->parts), &err);
        json_object_clear(pt->staged_states);
        json_object_clear(pt->staged_results);
        pending_clear(pt);
    }
    if (rc == 0)
        rc = hd_store_commit(rt->store, &err);
    if (rc != 0) {
        hd_store_abort(rt->store);
        hd_store_cache_clear(rt->store);
        es_error("cannot write the committed batch to the state store: %s", err.msg);
        set_fatal(rt, &err);
    }
}

/* --- recovery ----------------------------------------------------------------------------- */

/* One log (changelog or results) of a partition being replayed into the store. */
typedef struct hd_replay {
    hd_runtime_t *rt;
    int32_t p;
    hd_store_log_t log;
    size_t n, chunk; /* records replayed; in the store's open write */
    int64_t next;    /* the offset after the last record replayed, -1: none */
    es_err_t err;
} hd_replay_t;

/* Commits the records replayed so far with the offset they reach, and opens the next write. */
static int replay_commit(hd_replay_t *r)
{
    hd_store_t *st = r->rt->store;
    r->chunk = 0;
    if (r->next >= 0 && hd_store_offset_set(st, r->p, r->log, r->next, &r->err) != 0)
        return -1;
    if (hd_store_commit(st, &r->err) != 0)
        return -1;
    return hd_store_begin(st, &r->err);
}

static int replay_msg(const es_kafka_msg_t *m, void *arg)
{
    hd_replay_t *r = arg;
    hd_store_t *st = r->rt->store;
    int rc = 0;
    if (m->key && m->key_len > 0) {
        char *key = xstrndup(m->key, m->key_len);
        es_err_t err = ES_ERR_INIT;
        if (r->log == HD_LOG_CHANGELOG) /* a tombstone: the aggregate is gone */
            rc = hd_store_state_put(st, r->p, key, m->value, m->value ? m->len : 0, &err);
        else if (m->value)
            rc = hd_store_result_add(st, r->p, key, m->offset, m->value, m->len, &err);
        if (rc != 0 && err.code == ES_EINVAL) { /* a key the store cannot hold: passed over */
            es_error("%s[%d]@%lld: %s",
                     r->log == HD_LOG_CHANGELOG ? r->rt->t_changelog : r->rt->t_results,
                     (int)m->partition, (long long)m->offset, err.msg);
            rc = 0;
        } else if (rc != 0) {
            es_set(&r->err, err.code, "%s", err.msg);
        }
        free(key);
    }
    r->n++;
    r->next = m->offset + 1;
    if (rc == 0 && ++r->chunk >= REPLAY_CHUNK)
        rc = replay_commit(r);
    return rc ? -1 : 0;
}

/* What a replay of one log did, for the recovery's log line. */
typedef struct hd_replay_stats {
    size_t n, pruned;
    int64_t from;
} hd_replay_stats_t;

/* Reads span from span->start into the store (its write open). A start past the end means the
 * store's partition belongs to an earlier topic of that name: forgotten, read from 0. */
static int replay_read(hd_replay_t *r, const char *topic, es_kafka_span_t *span, es_err_t *err)
{
    hd_runtime_t *rt = r->rt;
    int rc = es_kafka_read_partition_from(topic, r->p, span, replay_msg, r,
                                          rt->cfg.recovery_timeout_ms, err);
    if (rc != 0 && !es_failed(&r->err) && err->code == ES_ECONFLICT) {
        es_warn("state store: %s; the topic was made again, its partition %d is read whole",
                err->msg, (int)r->p);
        es_clear(err);
        span->start = 0;
        if ((rc = hd_store_forget(rt->store, r->p, r->log, err)) == 0)
            rc = es_kafka_read_partition_from(topic, r->p, span, replay_msg, r,
                                              rt->cfg.recovery_timeout_ms, err);
    }
    if (es_failed(&r->err))
        es_set(err, r->err.code, "%s", r->err.msg);
    return rc != 0 ? -1 : 0;
}

/* Replays the tail of log (topic) of partition p since the offset the store reflects into it;
 * results past the topic's retention (below its low watermark) are forgotten. */
static int replay_log(hd_runtime_t *rt, int32_t p, hd_store_log_t log, const char *topic,
                      hd_replay_stats_t *stats, es_err_t *err)
{
    es_kafka_span_t span = {0, 0, 0};
    if (hd_store_offset(rt->store, p, log, &span.start, err) != 0 ||
        hd_store_begin(rt->store, err) != 0)
        return -1;
    stats->from = span.start;
    hd_replay_t r = {rt, p, log, 0, 0, -1, ES_ERR_INIT};
    int rc = replay_read(&r, topic, &span, err);
    stats->n = r.n;
    if (rc == 0 && r.next < 0 && span.start < span.lo)
        r.next = span.lo;
    if (rc == 0 && r.next >= 0)
        rc = hd_store_offset_set(rt->store, p, log, r.next, err);
    if (rc == 0 && log == HD_LOG_RESULTS && span.lo > 0)
        rc = hd_store_prune_results(rt->store, p, span.lo, &stats->pruned, err);
    if (rc == 0)
        rc = hd_store_commit(rt->store, err);
    else
        hd_store_abort(rt->store);
    es_metric_add(log == HD_LOG_CHANGELOG ? rt->m_replayed_changelog : rt->m_replayed_results,
                  (double)r.n);
    return rc;
}

/* Brings the store's partition p up to the end of its changelog and results (the tails since
 * the offsets it reflects: everything on an empty disk) and takes the partition. */
static int recover_partition(hd_runtime_t *rt, int32_t p, es_err_t *err)
{
    double t0 = es_mono_s();
    hd_part_t *pt = part_get(rt, p);
    part_drop(pt);
    /* states cached before a lost producer or a revoke may be older than the changelog's */
    hd_store_cache_clear(rt->store);
    if (es_fault_hit("hd.recover")) /* as a broker just back from a hang may answer */
        return es_set(err, ES_EIO, "%s: fault 'hd.recover' (unknown partition)", rt->t_changelog);
    hd_replay_stats_t cs = {0, 0, 0}, rs = {0, 0, 0};
    if (replay_log(rt, p, HD_LOG_CHANGELOG, rt->t_changelog, &cs, err) != 0 ||
        replay_log(rt, p, HD_LOG_RESULTS, rt->t_results, &rs, err) != 0 ||
        hd_store_offset(rt->store, p, HD_LOG_RESULTS, &pt->results_next, err) != 0)
        return -1;
    pt->staged_states = json_object();
    pt->staged_results = json_object();
    pt->owned = true;
    es_info("recovered partition %d: replayed %zu changelog records from offset %lld and %zu "
            "results from offset %lld (%zu past retention forgotten) in %.3f s",
            (int)p, cs.n, (long long)cs.from, rs.n, (long long)rs.from, rs.pruned,
            es_mono_s() - t0);
    return 0;
}

/* One recovery of a partition, for es_retry_until. */
typedef struct recover_try {
    hd_runtime_t *rt;
    int32_t partition;
} recover_try_t;

static int recover_attempt(void *arg, es_err_t *err)
{
    recover_try_t *t = arg;
    if (recover_partition(t->rt, t->partition, err) == 0)
        return ES_RETRY_DONE;
    return err->code == ES_EIO || err->code == ES_ETIMEOUT ? ES_RETRY_AGAIN : ES_RETRY_GIVE_UP;
}

/* recover_partition, again after a transient Kafka error (a broker just back from a hang may
 * answer "unknown partition" for a moment) for as long as the recovery timeout allows. */
static int recover_partition_retrying(hd_runtime_t *rt, int32_t p, es_err_t *err)
{
    char what[48];
    snprintf(what, sizeof what, "recovering partition %d", (int)p);
    const es_retry_t retry = {.what = what,
                              .deadline_ms = es_mono_ms() + rt->cfg.recovery_timeout_ms,
                              .min_ms = 200,
                              .max_ms = 2000,
                              .stop = &rt->stop,
                              .heartbeat = hd_heartbeat};
    recover_try_t t = {rt, p};
    return es_retry_until(&retry, recover_attempt, &t, err);
}

static void rebalance_cb(es_kafka_t *rk, int code, es_kafka_parts_t *parts, void *opaque)
{
    hd_runtime_t *rt = opaque;
    rt->rebalanced = true;
    if (code == ES_KAFKA_ERR_ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt && !rt->fatal; i++) {
            es_err_t err = ES_ERR_INIT;
            if (recover_partition_retrying(rt, parts->elems[i].partition, &err) != 0) {
                es_error("cannot recover partition %d: %s", (int)parts->elems[i].partition,
                         err.msg);
                set_fatal(rt, &err);
            }
        }
        es_err_t err = ES_ERR_INIT;
        if (!rt->fatal && es_kafka_assign_committed(rk, parts, rt->cfg.recovery_timeout_ms,
                                                    &rt->stop, hd_heartbeat, &err) != 0) {
            es_error("cannot assign the partitions of '%s': %s", rt->t_commands, err.msg);
            set_fatal(rt, &err);
        }
        es_err_t terr = ES_ERR_INIT; /* what the recovery wrote is not the working set */
        if (!rt->fatal && hd_store_trim(rt->store, &terr) != 0)
            set_fatal(rt, &terr);
        if (!rt->fatal) {
            es_info("assigned %d partitions of '%s'", parts->cnt, rt->t_commands);
            es_metrics_set_ready(true);
        }
    } else {
        for (int p = 0; p < rt->nparts; p++)
            part_drop(&rt->parts[p]);
        es_kafka_assign(rk, NULL);
        es_info("partitions of '%s' revoked (%s)", rt->t_commands, es_kafka_err_str(code));
    }
}

/* --- producing ---------------------------------------------------------------------------- */

/* Produces buf (stolen, may be NULL for a tombstone) inside the open transaction, with a
 * traceparent header when given. slot non-NULL: delivery tracked (es_txn_offset). Returns 0, or
 * -1 with err and rt->produce_rc set (the batch must then be aborted, or the producer made
 * again). */
static int produce(hd_runtime_t *rt, const char *topic, int32_t p, const char *key, void *buf,
                   size_t len, const char *traceparent, size_t *slot, es_err_t *err)
{
    es_kafka_headers_t *h = NULL;
    if (traceparent) {
        h = es_kafka_headers_new(1);
        es_kafka_header_add(h, "traceparent", traceparent);
    }
    es_txn_rc_t rc = es_txn_produce(rt->txn, topic, p, key, strlen(key), buf, len, h, slot, err);
    if (rc == ES_TXN_OK)
        return 0;
    rt->produce_rc = rc;
    return -1;
}

/* --- deciding ----------------------------------------------------------------------------- */

static json_t *new_result(const json_t *meta, const char *aggregate_id, const char *type,
                          const char *reason, const char *detail, json_int_t version, int32_t p)
{
    const char *cid = json_string_value(json_object_get(meta, "command_id"));
    const char *corr = json_string_value(json_object_get(meta, "correlation_id"));
    /* the sender: the API answers GET /v1/commands/{id} to it alone */
    const char *actor = json_string_value(json_object_get(meta, "actor"));
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:I, s:i, s:I, s:i, s:I, s:s}", "command_id",
        cid ? cid : "", "correlation_id", corr ? corr : "", "aggregate_id", aggregate_id,
        "command_type", type, "status", reason ? "REJECTED" : "ACCEPTED", "reason", reason,
        "detail", detail ? detail : "", "aggregate_version", version, "partition", (int)p, "offset",
        (json_int_t)-1, "event_count", 0, "decided_at", es_wall_ms(), "actor", actor ? actor : "");
}

/* Decodes a record the store kept (buf owned) of log: a new reference, or NULL (logged) when
 * the schema no longer reads it (then it counts as absent, as a recovery from the topic did). */
static json_t *stored_decode(hd_runtime_t *rt, int32_t p, const char *id, void *buf, size_t len)
{
    json_t *v = NULL;
    es_err_t derr = ES_ERR_INIT;
    if (ev_decode(rt->codec, buf, len, NULL, &v, &derr) != 0)
        es_error("state store, partition %d, '%s': %s", (int)p, id, derr.msg);
    free(buf);
    return v;
}

/* The state of aggregate id in partition p as this batch staged it, else as committed (the
 * cache, then the store): a new reference, NULL if none. -1 in *failed (err set) when the
 * store cannot be read. */
static json_t *state_get(hd_runtime_t *rt, hd_part_t *pt, int32_t p, const char *id, bool *failed,
                         es_err_t *err)
{
    json_t *s = json_object_get(pt->staged_states, id);
    if (s)
        return json_is_null(s) ? NULL : json_incref(s);
    if ((s = hd_store_cache_get(rt->store, p, id)))
        return json_incref(s);
    void *buf = NULL;
    size_t len = 0;
    int rc = hd_store_state_get(rt->store, p, id, &buf, &len, err);
    *failed = rc < 0;
    if (rc != 0)
        return NULL;
    s = stored_decode(rt, p, id, buf, len);
    if (s)
        hd_store_cache_set(rt->store, p, id, s);
    return s;
}

/* What deciding one command knows of it. */
typedef struct hd_cmd {
    const json_t *meta;    /* the command's metadata, borrowed from the decoded command */
    const char *cid, *agg; /* its command id and aggregate id */
    int32_t partition;
    json_t *state;      /* the aggregate's staged state, owned; NULL if none */
    json_int_t version; /* the aggregate's version, 0 if none */
} hd_cmd_t;

static json_t *cmd_result(const hd_cmd_t *c, const hd_item_t *it, const char *reason,
                          const char *detail, json_int_t version)
{
    return new_result(c->meta, c->agg, it->type, reason, detail, version, c->partition);
}

/* Decodes the command of it (new reference) and reads its metadata into c; NULL, it->status
 * set, when it must be skipped (logged). */
static json_t *cmd_read(hd_runtime_t *rt, hd_item_t *it, hd_cmd_t *c)
{
    es_kafka_msg_t *m = it->msg;
    json_t *cmd = NULL;
    es_err_t derr = ES_ERR_INIT;
    if (!m->value || ev_decode(rt->codec, m->value, m->len, &it->type, &cmd, &derr) != 0) {
        es_error("skipping undecodable command at %s[%d]@%lld: %s", rt->t_commands,
                 (int)m->partition, (long long)m->offset, m->value ? derr.msg : "empty message");
        it->status = "undecodable";
        it->type = NULL;
        return NULL;
    }
    c->meta = json_object_get(cmd, "metadata");
    c->cid = json_string_value(json_object_get(c->meta, "command_id"));
    c->agg = json_string_value(json_object_get(c->meta, "aggregate_id"));
    c->partition = m->partition;
    if (!c->cid || !c->agg) {
        es_error("skipping command without metadata at %s[%d]@%lld", rt->t_commands,
                 (int)m->partition, (long long)m->offset);
        it->status = "undecodable";
        json_decref(cmd);
        return NULL;
    }
    return cmd;
}

/* Whether the command was decided before (in this batch, or kept in the store): then
 * it->result is its first outcome again, and no event follows. -1 (err set) when the store
 * cannot be read. */
static int cmd_is_duplicate(hd_runtime_t *rt, hd_part_t *pt, const hd_cmd_t *c, hd_item_t *it,
                            es_err_t *err)
{
    json_t *first = json_incref(json_object_get(pt->staged_results, c->cid));
    if (!first) {
        void *buf = NULL;
        size_t len = 0;
        int rc = hd_store_result_get(rt->store, c->partition, c->cid, NULL, &buf, &len, err);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        first = stored_decode(rt, c->partition, c->cid, buf, len);
    }
    if (!first)
        return 0;
    it->result = first;
    it->duplicate = true;
    it->status = "duplicate";
    return 1;
}

/* Whether the command expects another version of the aggregate: then it->result rejects it. */
static bool cmd_version_conflicts(const hd_cmd_t *c, hd_item_t *it)
{
    json_t *expected = json_object_get(c->meta, "expected_version");
    if (!json_is_integer(expected) || json_integer_value(expected) == c->version)
        return false;
    char detail[160];
    snprintf(detail, sizeof detail, "expected version %lld, aggregate '%.64s' is at %lld",
             (long long)json_integer_value(expected), c->agg, (long long)c->version);
    it->result = cmd_result(c, it, "version_conflict", detail, c->version);
    it->status = "rejected";
    return true;
}

/* A decision's events, stamped and encoded, and the state they evolve the aggregate into. */
typedef struct hd_encoded {
    size_t n;
    void **bufs;  /* n encoded events, owned until handed to produce (then NULL) */
    size_t *lens; /* their lengths */
    json_t *next; /* the state after them, owned; NULL: none */
} hd_encoded_t;

static void encoded_release(hd_encoded_t *enc)
{
    for (size_t i = 0; i < enc->n; i++)
        free(enc->bufs[i]);
    free(enc->bufs);
    free(enc->lens);
    json_decref(enc->next);
}

/* Stamps, evolves and encodes every event of events (borrowed) into enc, stopping at the first
 * the codec refuses (-1 with err). enc is filled either way: encoded_release it. */
static int events_encode(hd_runtime_t *rt, const hd_cmd_t *c, const json_t *events,
                         hd_encoded_t *enc, es_err_t *err)
{
    enc->n = json_array_size(events);
    enc->next = c->state ? json_deep_copy(c->state) : NULL;
    enc->bufs = xcalloc(enc->n ? enc->n : 1, sizeof *enc->bufs);
    enc->lens = xcalloc(enc->n ? enc->n : 1, sizeof *enc->lens);
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        const char *etype = json_string_value(json_object_get(e, "type"));
        json_int_t version = c->version + (json_int_t)i + 1;
        json_t *ev = hd_event_stamp(c->meta, c->agg, i, version, json_object_get(e, "payload"));
        int erc = ev_encode(rt->codec, rt->t_events, etype ? etype : "", ev, &enc->bufs[i],
                            &enc->lens[i], err);
        if (erc == 0) {
            enc->next = rt->ctx->evolve(enc->next, etype, ev);
            if (enc->next)
                json_object_set_new(enc->next, "version", json_integer(version));
        }
        json_decref(ev);
        if (erc != 0)
            break;
    }
    return es_failed(err) ? -1 : 0;
}

/* Produces the encoded events to the command's partition of the events topic, each with the
 * decide span's traceparent. 0, or -1 with err (rt->produce_rc set). */
static int events_produce(hd_runtime_t *rt, hd_item_t *it, const hd_cmd_t *c, hd_encoded_t *enc,
                          es_err_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < enc->n; i++) {
        if (rc == 0)
            rc = produce(rt, rt->t_events, c->partition, c->agg, enc->bufs[i], enc->lens[i],
                         it->span, &it->last_slot, err);
        else
            free(enc->bufs[i]);
        enc->bufs[i] = NULL;
        it->has_events = true;
    }
    return rc;
}

/* Stages a decision that has events (accepted, or rejected with events kept,
 * hd_reject_keep_events): produces them, stages the new state and sets it->result. An event
 * the codec refuses is a decider bug that a redo would repeat, so it rejects the command instead.
 * 0, or -1 with err when the batch must be aborted (the registry failed, or a produce). */
static int decision_stage(hd_runtime_t *rt, hd_item_t *it, hd_part_t *pt, const hd_cmd_t *c,
                          const hd_decision_t *d, es_err_t *err)
{
    /* stamp, evolve and encode every event before producing any */
    hd_encoded_t enc;
    es_err_t eerr = ES_ERR_INIT;
    int rc = -1;
    if (events_encode(rt, c, d->events, &enc, &eerr) != 0) {
        if (eerr.code != ES_EINVAL) { /* the registry, not the data: redo the batch */
            es_set(err, eerr.code, "%s", eerr.msg);
            goto out;
        }
        es_error("command %s: the decider's event does not encode: %s", c->cid, eerr.msg);
        it->result = cmd_result(c, it, "internal", eerr.msg, c->version);
        it->status = "rejected";
        rc = 0;
        goto out;
    }
    if (events_produce(rt, it, c, &enc, err) != 0)
        goto out;
    if (enc.n > 0) {
        json_object_set_new(pt->staged_states, c->agg, enc.next ? enc.next : json_null());
        enc.next = NULL;
    }
    it->result =
        cmd_result(c, it, d->reason, d->reason ? d->detail : NULL, c->version + (json_int_t)enc.n);
    json_object_set_new(it->result, "event_count", json_integer((json_int_t)enc.n));
    it->status = d->reason ? "rejected" : "accepted";
    rc = 0;
out:
    encoded_release(&enc);
    return rc;
}

/* Decides one command into it->result and stages its events, states and result. Returns 0, or
 * -1 with err when the batch must be aborted (an event could not be encoded or produced). */
static int decide_one(hd_runtime_t *rt, hd_item_t *it, es_err_t *err)
{
    hd_part_t *pt = part_get(rt, it->msg->partition);
    hd_cmd_t c = {0};
    json_t *cmd = NULL;
    int rc = 0;
    hd_decision_t d;
    hd_decision_init(&d);
    /* every command gets a decide span, the next hop of its traceparent (or a new trace) */
    it->start_us = es_zipkin_now_us();
    it->traceparent = es_kafka_header_dup(it->msg, "traceparent");
    es_trace_child(it->traceparent, it->span);
    if (!pt->owned) { /* cannot happen: a revoke clears the batch */
        it->status = "skipped";
        goto out;
    }
    int dup = 0;
    bool failed = false;
    if (!(cmd = cmd_read(rt, it, &c)) || (dup = cmd_is_duplicate(rt, pt, &c, it, err)) != 0) {
        rc = dup < 0 ? -1 : 0;
        goto out;
    }
    c.state = state_get(rt, pt, c.partition, c.agg, &failed, err);
    if (failed) {
        rc = -1;
        goto out;
    }
    c.version = c.state ? json_integer_value(json_object_get(c.state, "version")) : 0;
    if (cmd_version_conflicts(&c, it))
        goto out;
    if (rt->ctx->decide(c.state, it->type, cmd, hd_views_get(rt->views), &d) != 0)
        hd_reject(&d, "internal", "the decider failed on '%s'", it->type);
    if (d.reason && !(d.keep_events && json_array_size(d.events) > 0)) {
        it->result = cmd_result(&c, it, d.reason, d.detail, c.version);
        it->status = "rejected";
        goto out;
    }
    rc = decision_stage(rt, it, pt, &c, &d, err);
out:
    if (it->result && !it->duplicate)
        json_object_set(pt->staged_results,
                        json_string_value(json_object_get(it->result, "command_id")), it->result);
    hd_decision_release(&d);
    json_decref(c.state);
    json_decref(cmd);
    return rc;
}

/* --- transactions ------------------------------------------------------------------------- */

static void consumer_fatal(hd_runtime_t *rt);

/* After a lost producer nobody knows whether its last transaction committed until a new
 * producer with the same transactional id has finished it (init_transactions): then drop every
 * partition's state and recover it from the changelog and results, as on an assignment, and
 * move the consumer to the committed offsets. Retried with capped backoff until it succeeds (a
 * partition without its state must not decide). Returns 0, or -1 on a stop. */
static int recover_lost(hd_runtime_t *rt)
{
    es_err_t err = ES_ERR_INIT;
    if (es_txn_recreate(rt->txn, &err) != 0)
        return -1;
    double wait = 0.2;
    for (;;) {
        if (es_kafka_fatal_error(rt->consumer, NULL, 0)) {
            /* the outage fenced the consumer too: making it again recovers every partition */
            consumer_fatal(rt);
            return 0;
        }
        es_clear(&err);
        int rc = 0;
        for (int p = 0; p < rt->nparts && rc == 0; p++) {
            if (rt->parts[p].owned)
                rc = recover_partition(rt, p, &err);
            if (rc != 0) /* recover_partition dropped it: keep it owned, to be retried */
                part_get(rt, p)->owned = true;
        }
        if (rc == 0)
            rc = es_txn_rewind_committed(rt->consumer, rt->cfg.recovery_timeout_ms, &err);
        if (rc == 0 && hd_store_trim(rt->store, &err) != 0) {
            set_fatal(rt, &err);
            return 0;
        }
        if (rc == 0) {
            es_info("handler for '%s' recovered after a lost producer", rt->ctx->name);
            return 0;
        }
        if (rt->stop)
            return -1;
        es_warn("recovering after a lost producer: %s (again in %.1f s)", err.msg, wait);
        es_txn_sleep(rt->txn, wait);
        wait = wait * 2 > 30 ? 30 : wait * 2;
    }
}

static es_metric_t *command_counter(hd_runtime_t *rt, const char *type, const char *status)
{
    const char *short_type = type ? strrchr(type, '.') : NULL;
    short_type = short_type ? short_type + 1 : (type ? type : "unknown");
    for (size_t i = 0; i < rt->ncounters; i++) {
        if (strcmp(rt->counters[i].type, short_type) == 0 &&
            strcmp(rt->counters[i].status, status) == 0)
            return rt->counters[i].m;
    }
    char *labels =
        xasprintf("context=\"%s\",type=\"%s\",status=\"%s\"", rt->ctx->name, short_type, status);
    es_metric_t *m = es_counter("eventshop_commands_total", "commands handled", labels);
    free(labels);
    rt->counters = xrealloc(rt->counters, (rt->ncounters + 1) * sizeof *rt->counters);
    rt->counters[rt->ncounters++] = (hd_counter_t){xstrdup(short_type), status, m};
    return m;
}

static void items_release(hd_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(items[i].result);
        items[i].result = NULL;
        items[i].type = NULL;
        items[i].status = NULL;
        items[i].has_events = items[i].duplicate = false;
        free(items[i].traceparent);
        items[i].traceparent = NULL;
    }
}

/* One line per decided command (committed), with its trace id, and its decide span. */
static void log_decided(hd_runtime_t *rt, const hd_item_t *it)
{
    const char *cid = json_string_value(json_object_get(it->result, "command_id"));
    const char *reason = json_string_value(json_object_get(it->result, "reason"));
    const char *type = it->type ? strrchr(it->type, '.') : NULL;
    type = type ? type + 1 : (it->type ? it->type : "unknown");
    char trace_id[ES_TRACE_ID_LEN], events[24];
    es_trace_id(it->span, trace_id);
    snprintf(events, sizeof events, "%lld",
             (long long)json_integer_value(json_object_get(it->result, "event_count")));
    const char *const *fields =
        ES_F("command_id", cid, "command_type", type, "status", it->status, "reason", reason,
             "event_count", it->result ? events : NULL, "context", rt->ctx->name);
    /* a line per command only for a trace a client asked to follow: lines cost throughput */
    es_log_kv(es_trace_log_level(it->span), trace_id[0] ? trace_id : NULL, fields,
              "command %s %s %s%s%s", cid ? cid : "(undecodable)", type,
              it->status ? it->status : "skipped", reason ? ": " : "", reason ? reason : "");
    if (es_zipkin_enabled()) {
        char name[160];
        snprintf(name, sizeof name, "decide %s", type);
        es_zipkin_span(it->span, it->traceparent, name, "CONSUMER", it->start_us,
                       es_zipkin_now_us() - it->start_us, fields);
    }
}

/* Produces the states the batch staged, of every owned partition, to the changelog. 0, or 1 when
 * the batch failed (*trc and err set; on a state the schema refuses, a bug, also rt->fatal: the
 * transaction is aborted and the process restarts). */
static int states_produce(hd_runtime_t *rt, es_txn_rc_t *trc, es_err_t *err)
{
    hd_part_t *pt;
    for (int next = 0; (pt = owned_next(rt, &next));) {
        int32_t p = (int32_t)(pt - rt->parts);
        const char *k;
        json_t *v;
        json_object_foreach(pt->staged_states, k, v)
        {
            void *buf = NULL;
            size_t len = 0;
            if (!json_is_null(v) &&
                ev_encode(rt->codec, rt->t_changelog, rt->ctx->state_type, v, &buf, &len, err)) {
                if (err->code == ES_EINVAL) /* a state the schema refuses: a bug, restart */
                    set_fatal(rt, err);
                *trc = ES_TXN_ABORT;
                return 1;
            }
            pending_add(pt, HD_LOG_CHANGELOG, k, buf, len, 0);
            if (produce(rt, rt->t_changelog, p, k, buf, len, NULL, &pt->clog_slot, err)) {
                *trc = rt->produce_rc;
                return 1;
            }
            pt->clog_tracked = true;
        }
    }
    return 0;
}

/* Produces the CommandResult of every decided command to its partition of the results topic,
 * with the command's traceparent. 0, or -1 with *trc and err set. */
static int results_produce(hd_runtime_t *rt, const hd_item_t *items, size_t n, es_txn_rc_t *trc,
                           es_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        const hd_item_t *it = &items[i];
        es_kafka_msg_t *m = it->msg;
        if (!it->result)
            continue;
        void *buf = NULL;
        size_t len = 0;
        const char *cid = json_string_value(json_object_get(it->result, "command_id"));
        char *tparent = es_kafka_header_dup(m, "traceparent");
        int rc = ev_encode(rt->codec, rt->t_results, "eventshop.CommandResult", it->result, &buf,
                           &len, err);
        *trc = ES_TXN_ABORT;
        size_t slot = 0;
        if (rc == 0 && !it->duplicate) /* a duplicate's first outcome is kept already */
            pending_add(part_get(rt, m->partition), HD_LOG_RESULTS, cid, buf, len, 0);
        if (rc == 0 &&
            (rc = produce(rt, rt->t_results, m->partition, cid, buf, len, tparent, &slot, err)))
            *trc = rt->produce_rc;
        if (rc == 0 && !it->duplicate) {
            hd_part_t *pt = part_get(rt, m->partition);
            pt->pending[pt->npending - 1].slot = slot;
        }
        free(tparent);
        if (rc)
            return -1;
    }
    return 0;
}

/* A batch being decided: the es_txn_step's work. */
typedef struct hd_batch {
    hd_runtime_t *rt;
    hd_item_t *items;
    size_t n;
    const es_txn_step_t *step;
} hd_batch_t;

/* Decides every command and produces the events and the staged states; sends the batch's
 * offsets while they travel; once the events are written (their offsets are the read-your-writes
 * positions the results carry), produces the results. Fewer round trips one after another: a
 * lone command's latency. A state the schema refuses (a bug) sets rt->fatal. */
static es_txn_rc_t batch_work(void *arg, es_err_t *err)
{
    hd_batch_t *b = arg;
    hd_runtime_t *rt = b->rt;
    es_txn_rc_t trc;
    for (size_t i = 0; i < b->n; i++)
        if (decide_one(rt, &b->items[i], err) != 0)
            return rt->produce_rc != ES_TXN_OK ? rt->produce_rc : ES_TXN_ABORT;
    if (states_produce(rt, &trc, err) != 0)
        return trc;
    if ((trc = es_txn_step_send_offsets(rt->txn, b->step, err)) != ES_TXN_OK ||
        (trc = es_txn_flush(rt->txn, err)) != ES_TXN_OK)
        return trc;
    for (size_t i = 0; i < b->n; i++) {
        hd_item_t *it = &b->items[i];
        if (it->has_events)
            json_object_set_new(it->result, "offset",
                                json_integer(es_txn_offset(rt->txn, it->last_slot)));
    }
    if (results_produce(rt, b->items, b->n, &trc, err) != 0)
        return trc;
    return ES_TXN_OK;
}

static void batch_discard(void *arg)
{
    discard_staged(((hd_batch_t *)arg)->rt);
}

/* Decides the batch in one transaction (es_txn_step). Returns 0 (committed, or rewound to be
 * read again when the views lag), 1 (aborted and rewound: back off, then read again), 2 (the
 * producer is lost: recover_lost), -1 on a fatal error (rt->fatal set). */
static int run_batch(hd_runtime_t *rt, hd_item_t *items, size_t n)
{
    double t0 = es_mono_s();
    es_err_t err = ES_ERR_INIT;
    rt->produce_rc = ES_TXN_OK;
    es_txn_batch_reset(rt->txn);
    for (size_t i = 0; i < n; i++)
        es_txn_batch_add(rt->txn, items[i].msg);
    /* a command must see every view event committed before it was produced */
    if (hd_views_catch_up(rt->views, rt->cfg.view_wait_ms, &err) != 0) {
        es_warn("deciding later: %s", err.msg);
        es_txn_rewind(rt->txn, rt->consumer);
        return 0;
    }
    hd_batch_t b = {rt, items, n, NULL};
    const es_txn_step_t step = {rt->consumer, NULL, n, "commands", batch_work, batch_discard, &b};
    b.step = &step;
    es_txn_rc_t trc = es_txn_step(rt->txn, &step, &err);
    if (rt->fatal)
        return -1;
    if (trc == ES_TXN_ABORT)
        return 1;
    if (trc == ES_TXN_FENCED) {
        set_fatal(rt, &err);
        return -1;
    }
    if (trc == ES_TXN_LOST) {
        es_error("handler for '%s' lost its transactional producer: %s", rt->ctx->name, err.msg);
        return 2;
    }
    store_batch(rt);
    if (rt->fatal)
        return -1;
    es_metric_observe(rt->m_batch_seconds, es_mono_s() - t0);
    es_metric_set(rt->m_batch_size, (double)n);
    for (size_t i = 0; i < n; i++) {
        es_metric_add(command_counter(rt, items[i].type, items[i].status), 1);
        log_decided(rt, &items[i]);
    }
    es_debug("committed a batch of %zu commands in %.3f s", n, es_mono_s() - t0);
    return 0;
}

/* --- life cycle --------------------------------------------------------------------------- */

hd_runtime_t *hd_runtime_new(const hd_context_t *ctx, ev_codec_t *codec,
                             const hd_runtime_config_t *cfg, es_err_t *err)
{
    hd_runtime_t *rt = xcalloc(1, sizeof *rt);
    char group[160], txn_id[320], client[160];
    rt->ctx = ctx;
    rt->codec = codec;
    if (cfg)
        rt->cfg = *cfg;
    else
        hd_runtime_config_init(&rt->cfg);
    if (rt->cfg.view_wait_ms <= 0)
        rt->cfg.view_wait_ms = 10000;
    es_topic(rt->t_commands, sizeof rt->t_commands, ctx->name, "commands");
    es_topic(rt->t_events, sizeof rt->t_events, ctx->name, "events");
    es_topic(rt->t_changelog, sizeof rt->t_changelog, ctx->name, "changelog");
    es_topic(rt->t_results, sizeof rt->t_results, ctx->name, "results");
    snprintf(group, sizeof group, "eventshop-%s-handler", ctx->name);
    snprintf(txn_id, sizeof txn_id, "eventshop-%s-handler-%s", ctx->name, rt->cfg.instance_id);
    snprintf(client, sizeof client, "eventshop-%s-handler", ctx->name);

    /* static membership: group.instance.id is the transactional id */
    es_kafka_conf_t *cconf =
        es_txn_consumer_conf(client, group, txn_id, false, NULL, rt, rebalance_cb, err);
    if (!cconf)
        goto fail;
    rt->cconf = es_kafka_conf_dup(cconf);
    if (!(rt->consumer = es_kafka_new(ES_KAFKA_CONSUMER, cconf, err)))
        goto fail;

    rt->m_commits = es_counter("eventshop_txn_commits_total", "committed handler transactions", "");
    rt->m_aborts = es_counter("eventshop_txn_aborts_total", "aborted handler transactions", "");
    rt->m_recreates =
        es_counter("eventshop_txn_producer_recreates_total",
                   "handler transactional producers made again after a fatal error", "");
    es_txn_config_t tcfg = {.client_id = client,
                            .transactional_id = txn_id,
                            .timeout_ms = TXN_TIMEOUT_MS,
                            .stop = &rt->stop,
                            .m_commits = rt->m_commits,
                            .m_aborts = rt->m_aborts,
                            .m_recreates = rt->m_recreates,
                            .heartbeat = hd_heartbeat};
    if (!(rt->txn = es_txn_new(&tcfg, err)))
        goto fail;

    if (!(rt->views = hd_views_new(ctx, codec, &rt->stop, err)))
        goto fail;
    if (!rt->cfg.state_dir[0]) /* one store per process: its context and instance */
        snprintf(rt->cfg.state_dir, sizeof rt->cfg.state_dir, "%s/eventshop-handler-%s-%s",
                 es_env_str("TMPDIR", "/tmp"), ctx->name, rt->cfg.instance_id);
    if (!(rt->store = hd_store_open(rt->cfg.state_dir, (size_t)rt->cfg.state_map_mb,
                                    (size_t)rt->cfg.cache_max, err)))
        goto fail;
    rt->m_replayed_changelog =
        es_counter("eventshop_handler_replayed_records_total",
                   "records replayed into the state store at recoveries", "log=\"changelog\"");
    rt->m_replayed_results =
        es_counter("eventshop_handler_replayed_records_total",
                   "records replayed into the state store at recoveries", "log=\"results\"");

    rt->m_batch_seconds =
        es_histogram("eventshop_handler_batch_seconds", "time to decide and commit a batch", "");
    rt->m_batch_size =
        es_gauge("eventshop_handler_batch_size", "commands in the last committed batch", "");
    es_info("handler for '%s' ready: group '%s', transactional id '%s', batch %d, linger %d ms, "
            "state store '%s' (cache of %d states)",
            ctx->name, group, txn_id, rt->cfg.batch_max, rt->cfg.linger_ms, rt->cfg.state_dir,
            rt->cfg.cache_max);
    return rt;
fail:
    hd_runtime_free(rt);
    return NULL;
}

void hd_runtime_stop(hd_runtime_t *rt)
{
    rt->stop = 1;
}

/* The consumer's fatal error: only a static member's fence raises one. A fence right after a
 * broker outage is the consumer's own rejoin racing its old member id: the consumer is made
 * again (consumer_remake). A second fence soon after means a twin instance with the same
 * EVENTSHOP_INSTANCE_ID: stop with that said, rather than fence each other forever. */
static void consumer_fatal(hd_runtime_t *rt)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_consumer_fatal(rt->consumer, &err);
    if (es_kafka_fence_is_twin(rt->consumer, rt->consumer_fenced_at, es_mono_s())) {
        set_fatal(rt, &err);
        return;
    }
    rt->consumer_lost = true;
}

static int consumer_subscribe(hd_runtime_t *rt, es_err_t *err)
{
    const char *topics[] = {rt->t_commands};
    return es_kafka_resp_error(err, es_kafka_subscribe(rt->consumer, topics, 1), "subscribe");
}

/* Destroys the fenced consumer (no rebalance callback follows: its partitions' state is
 * dropped here) and makes a new one, which recovers its assignment as on a start. Returns 0, or
 * -1 on a stop (rt->consumer is then NULL). */
/* A new consumer with the handler's settings, subscribed; NULL with err. */
static es_kafka_t *consumer_open(void *arg, es_err_t *err)
{
    hd_runtime_t *rt = arg;
    es_kafka_t *c = es_kafka_new(ES_KAFKA_CONSUMER, es_kafka_conf_dup(rt->cconf), err);
    const char *topics[] = {rt->t_commands};
    if (c && es_kafka_resp_error(err, es_kafka_subscribe(c, topics, 1), "subscribe") != 0) {
        es_kafka_destroy(c);
        c = NULL;
    }
    return c;
}

static int consumer_remake(hd_runtime_t *rt)
{
    rt->consumer_lost = false;
    rt->consumer_fenced_at = es_mono_s();
    es_kafka_destroy(rt->consumer);
    rt->consumer = NULL;
    for (int p = 0; p < rt->nparts; p++)
        part_drop(&rt->parts[p]);
    rt->consumer = es_txn_remake_consumer(rt->txn, rt->t_commands, consumer_open, rt);
    return rt->consumer ? 0 : -1;
}

/* Gathers up to batch_max commands: the first one, then what is already fetched (after linger_ms,
 * 0 unless set): alone a command is decided at once, under load the batch fills with what came
 * during the last transaction. A rebalance meanwhile drops what was gathered: the new
 * assignment reads from the committed offsets. */
static size_t gather(hd_runtime_t *rt, hd_item_t *items, es_kafka_msg_t **msgs)
{
    const es_kafka_gather_t g = {
        (size_t)rt->cfg.batch_max, -1, rt->cfg.linger_ms, &rt->stop, &rt->fatal, &rt->rebalanced};
    bool fatal;
    size_t n = es_kafka_gather(rt->consumer, &g, msgs, &fatal);
    if (fatal)
        consumer_fatal(rt);
    for (size_t i = 0; i < n; i++)
        items[i] = (hd_item_t){.msg = msgs[i]};
    return n;
}

int hd_runtime_run(hd_runtime_t *rt, es_err_t *err)
{
    if (hd_views_catch_up(rt->views, rt->cfg.recovery_timeout_ms, err) != 0)
        return -1;
    if (hd_views_partition_count(rt->views) > 0)
        es_info("views of '%s' read: %zu partitions", rt->ctx->name,
                hd_views_partition_count(rt->views));
    if (consumer_subscribe(rt, err) != 0)
        return -1;
    hd_item_t *items = xcalloc((size_t)rt->cfg.batch_max, sizeof *items);
    es_kafka_msg_t **msgs = xcalloc((size_t)rt->cfg.batch_max, sizeof *msgs);
    double check_at = 0;
    while (!rt->stop && !rt->fatal) {
        hd_heartbeat();
        es_kafka_check_readiness(rt->consumer, &check_at);
        size_t n = gather(rt, items, msgs);
        int brc = 0;
        if (n > 0 && !rt->fatal)
            brc = run_batch(rt, items, n);
        items_release(items, n);
        for (size_t i = 0; i < n; i++)
            es_kafka_msg_free(items[i].msg);
        if (brc == 1)
            es_txn_backoff(rt->txn);
        else if (brc == 2)
            recover_lost(rt);
        if (rt->consumer_lost && !rt->fatal)
            consumer_remake(rt);
    }
    free(items);
    free(msgs);
    char who[160];
    snprintf(who, sizeof who, "handler for '%s'", rt->ctx->name);
    return es_txn_loop_end(who, rt->consumer, rt->fatal, &rt->fatal_err, err);
}

void hd_runtime_free(hd_runtime_t *rt)
{
    if (!rt)
        return;
    es_txn_free(rt->txn);
    if (rt->consumer)
        es_kafka_destroy(rt->consumer);
    if (rt->cconf)
        es_kafka_conf_free(rt->cconf);
    hd_views_free(rt->views);
    hd_store_free(rt->store);
    for (int p = 0; p < rt->nparts; p++)
        part_drop(&rt->parts[p]);
    free(rt->parts);
    for (size_t i = 0; i < rt->ncounters; i++)
        free(rt->counters[i].type);
    free(rt->counters);
    free(rt);
}
