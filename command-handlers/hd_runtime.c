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
#include "es_worker.h"
#include "es_zipkin.h"
#include "hd_store.h"
#include "hd_views.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* records replayed into the store between two of its commits during a recovery */
#define REPLAY_CHUNK 10000

/* a record a batch produced, written to the store once its transaction committed */
typedef struct hd_pending {
    hd_store_log_t log;
    char *key; /* aggregate id or command id, owned */
    void *buf; /* the encoded record, owned; NULL: a tombstone */
    size_t len;
    size_t slot;    /* a result's delivery slot (es_txn_offset) */
    int64_t offset; /* a result's offset, once its transaction committed; -1: not reported */
} hd_pending_t;

/* what one batch staged for one partition: read by the deciding of the batch after it (which
 * sees what this one decided before it is committed), written to the store after its commit */
typedef struct hd_stage {
    json_t *states;        /* aggregate id -> state, or null for a deletion; NULL: none yet */
    json_t *results;       /* command id -> CommandResult; NULL: none yet */
    hd_pending_t *pending; /* the batch's records for the store */
    size_t npending, cap_pending;
    hd_pending_t *enc; /* the staged states, encoded once deciding is done (log, slot unused) */
    size_t nenc, cap_enc;
    size_t nevents;    /* events the batch writes to this partition */
    bool clog_tracked; /* clog_slot is the delivery slot of its last changelog record */
    size_t clog_slot;
    int64_t clog_offset; /* once committed: the offset of its last changelog record, -1: none */
} hd_stage_t;

/* what the runtime holds of one assigned partition (its committed states and decided commands
 * live in the store, hd_store; what a batch staged, in the batch) */
typedef struct hd_part {
    bool owned;
} hd_part_t;

/* one command of a batch: decided on the loop's thread (its events encoded, its result made),
 * produced on the transaction's thread */
typedef struct hd_item {
    es_kafka_msg_t *msg; /* owned */
    json_t *result;      /* CommandResult, owned; NULL if undecodable */
    const char *type;    /* command full name, borrowed from the codec; NULL if undecodable */
    const char *status;  /* metric label */
    size_t nevents;      /* its encoded events, to be produced */
    void **events;       /* owned until handed to produce (then NULL) */
    size_t *event_lens;
    size_t last_slot;   /* delivery slot of its last event, if it has events */
    int64_t last_guess; /* the offset its last event will get if no one else wrote (-1: unknown) */
    void *result_buf;   /* its result, encoded while deciding (NULL: to be encoded when produced) */
    size_t result_len;
    int64_t result_guess; /* the position result_buf carries, if it has events */
    bool has_events;
    bool duplicate;
    char *traceparent;             /* the command's, owned; NULL if it came without one */
    char span[ES_TRACEPARENT_LEN]; /* the decide span: the next hop, carried by its events */
    int64_t start_us;              /* when deciding began (zipkin clock) */
} hd_item_t;

/* The stages of a batch, timed with the monotonic clock: on the loop's thread (gathering,
 * deciding, waiting for the batch in flight), on the transaction thread (from taking the batch
 * to the commit), on the store's thread (the write, from the commit), and the hand-off between
 * them. Each goes to a histogram
 * (eventshop_handler_stage_seconds) and, at debug level, to one line per batch. */
typedef enum {
    ST_GATHER,  /* the consumer's poll for the batch's commands */
    ST_DECIDE,  /* the views' catch-up and deciding every command */
    ST_WAIT,    /* the loop waiting for the batch in flight before handing this one over */
    ST_HANDOFF, /* from the hand-over to the transaction thread taking it */
    ST_BEGIN,   /* begin_transaction */
    ST_EVENTS,  /* producing the events */
    ST_STATES,  /* producing the changelog states (encoded on the loop's thread) */
    ST_OFFSETS, /* send_offsets_to_transaction */
    ST_FLUSH,   /* waiting for the delivery of the records */
    ST_RESULTS, /* producing the results (encoded on the loop's thread if their positions were) */
    ST_COMMIT,  /* commit_transaction */
    ST_STORE,   /* the LMDB write of the committed batch, on the store's thread, from the commit */
    ST_N
} hd_stage_id_t;

static const char *const stage_names[ST_N] = {"gather", "decide",  "wait",   "handoff",
                                              "begin",  "events",  "states", "offsets",
                                              "flush",  "results", "commit", "store"};

/* A batch: gathered and decided on the loop's thread, then written in one transaction on the
 * transaction's thread while the loop gathers and decides the next batch, stored (hd_store) on
 * the loop's thread once committed. */
typedef struct hd_batch {
    hd_runtime_t *rt;
    hd_item_t *items;
    es_kafka_msg_t **msgs;
    size_t n;
    hd_stage_t *stages; /* per partition */
    int nstages;
    double t0;
    es_txn_rc_t decide_rc; /* not ES_TXN_OK: deciding failed (decide_err): the transaction aborts */
    es_err_t decide_err;
    /* written by the transaction's thread, read by the loop's once it finished the batch */
    es_kafka_group_t *group; /* the consumer's group for the offsets, owned */
    es_txn_rc_t produce_rc;  /* why the last produce failed */
    bool fatal;              /* a state the schema refuses (a bug): fatal_err */
    bool store_failed;       /* (the store's thread) its write failed: fatal_err */
    es_err_t fatal_err;
    es_txn_rc_t trc; /* the transaction's outcome */
    bool stored;     /* (under rt->lock) its store write is done, or none will be made */
    es_err_t err;
    double stage_s[ST_N]; /* seconds spent in each stage (hd_stage_id_t) */
    double mark;          /* the monotonic time the running stage began */
} hd_batch_t;

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
    es_kafka_conf_t *cconf;     /* the consumer's settings, to make it again */
    bool consumer_lost;         /* its fatal error was seen: make it again */
    double consumer_fenced_at;  /* when it was last made again after a fence, 0: never */
    es_kafka_readiness_t ready; /* the loop's "kafka" readiness check of the consumer */
    es_txn_t *txn;              /* the transactional producer: the transaction thread's only */
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
    es_metric_t *m_dropped; /* batches decided on top of one in flight that failed */
    es_metric_t *m_stage[ST_N];
    /* the pipeline: batch n is written by the transaction thread while batch n+1 is decided */
    hd_batch_t *spare[2]; /* batches not in flight, to be reused */
    hd_batch_t *inflight; /* handed to the transaction thread, not yet stored; NULL: none */
    int drained_rc;       /* what finishing the batch in flight asked for when a rebalance did it */
    pthread_t worker;
    bool worker_started;
    es_worker_t *storer; /* writes committed batches to the store beside the next transaction */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    hd_batch_t *job; /* for the transaction thread; NULL: none */
    bool quit;
    /* The transaction thread's knowledge of the events topic: the offset the next record of
     * each partition gets (-1: unknown). The handler is the only writer of its events: after a
     * committed transaction that wrote to a partition, its next record comes 2 after the last
     * (1 for the commit marker). Lets a batch's results carry their positions without waiting
     * for the events' delivery; the delivery checks the guess before the commit. */
    int64_t *ev_next;
    int nev_next;
    bool ev_forget; /* set under lock by the loop's thread: forget ev_next (a writer may differ) */
    /* The loop's thread's guess of the same once every batch handed over or decided commits
     * (-1: unknown): the positions a batch's results carry when encoded while deciding. Taken
     * from ev_next after each committed batch, plus the events of the batch decided since. */
    int64_t *lg_next;
    int nlg_next;
};

/* set on the transaction thread: the loop's thread beats for it while it waits for it */
static __thread bool on_txn_thread;

/* The liveness beat of the batch loop (also called by es_txn while it waits or backs off). The
 * transaction thread does not beat: it would count as a second loop, silent while idle. */
static void hd_heartbeat(void)
{
    if (!on_txn_thread)
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
    cfg->txn_timeout_ms = (int)es_env_long("EVENTSHOP_HANDLER_TXN_TIMEOUT_MS", 30000);
    if (cfg->txn_timeout_ms < 1000)
        cfg->txn_timeout_ms = 1000;
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

/* Ends b's running stage as stage id (its time since b->mark is added) and begins the next. */
static void stage_mark(hd_batch_t *b, hd_stage_id_t id)
{
    double now = es_mono_s();
    b->stage_s[id] += now - b->mark;
    b->mark = now;
}

/* Per partition of the events topic: the offset its next record gets, -1 unknown (ev_next on
 * the transaction thread, lg_next on the loop's). */
static int64_t next_get(const int64_t *next, int n, int32_t p)
{
    return p >= 0 && p < n ? next[p] : -1;
}

static void next_set(int64_t **next, int *n, int32_t p, int64_t v)
{
    if (p < 0)
        return;
    if (p >= *n) {
        int grown = p + 1 > 2 * *n ? p + 1 : 2 * *n;
        *next = xrealloc(*next, (size_t)grown * sizeof **next);
        for (int i = *n; i < grown; i++)
            (*next)[i] = -1;
        *n = grown;
    }
    (*next)[p] = v;
}

static void set_fatal(hd_runtime_t *rt, es_err_t *e)
{
    rt->fatal = true;
    es_set(&rt->fatal_err, e->code ? e->code : ES_EFATAL, "%s", e->msg);
}

/* --- partitions and batches ----------------------------------------------------------------- */

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

static void part_drop(hd_part_t *pt)
{
    memset(pt, 0, sizeof *pt);
}

/* The stage of partition p in b (made on first use: by the loop's thread only, while it
 * decides b). */
static hd_stage_t *stage_get(hd_batch_t *b, int32_t p)
{
    if (p >= b->nstages) {
        b->stages = xrealloc(b->stages, (size_t)(p + 1) * sizeof *b->stages);
        memset(b->stages + b->nstages, 0, (size_t)(p + 1 - b->nstages) * sizeof *b->stages);
        b->nstages = p + 1;
    }
    hd_stage_t *s = &b->stages[p];
    if (!s->states) {
        s->states = json_object();
        s->results = json_object();
    }
    return s;
}

/* The stage of partition p in b if it has one, else NULL (b may be NULL). */
static hd_stage_t *stage_find(hd_batch_t *b, int32_t p)
{
    return b && p >= 0 && p < b->nstages && b->stages[p].states ? &b->stages[p] : NULL;
}

static void stage_clear(hd_stage_t *s)
{
    if (s->states) {
        json_object_clear(s->states);
        json_object_clear(s->results);
    }
    for (size_t i = 0; i < s->npending; i++) {
        free(s->pending[i].key);
        free(s->pending[i].buf);
    }
    s->npending = 0;
    for (size_t i = 0; i < s->nenc; i++) {
        free(s->enc[i].key);
        free(s->enc[i].buf);
    }
    s->nenc = 0;
    s->nevents = 0;
    s->clog_tracked = false;
    s->clog_offset = -1;
}

/* Notes a copy of buf (borrowed, NULL for a tombstone) of the batch for the store. */
static void pending_add(hd_stage_t *s, hd_store_log_t log, const char *key, const void *buf,
                        size_t len, size_t slot)
{
    if (s->npending == s->cap_pending) {
        s->cap_pending = s->cap_pending ? s->cap_pending * 2 : 64;
        s->pending = xrealloc(s->pending, s->cap_pending * sizeof *s->pending);
    }
    void *copy = NULL;
    if (buf) {
        copy = xmalloc(len ? len : 1);
        memcpy(copy, buf, len);
    }
    s->pending[s->npending++] = (hd_pending_t){log, xstrdup(key), copy, len, slot, -1};
}

static void encoded_events_free(hd_item_t *it)
{
    for (size_t i = 0; i < it->nevents; i++)
        free(it->events[i]);
    free(it->events);
    free(it->event_lens);
    it->events = NULL;
    it->event_lens = NULL;
    it->nevents = 0;
}

/* Empties b (its messages freed): ready for the next batch. */
static void batch_clear(hd_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        hd_item_t *it = &b->items[i];
        json_decref(it->result);
        free(it->result_buf);
        free(it->traceparent);
        encoded_events_free(it);
        es_kafka_msg_free(it->msg);
        memset(it, 0, sizeof *it);
    }
    b->n = 0;
    for (int p = 0; p < b->nstages; p++)
        stage_clear(&b->stages[p]);
    es_kafka_group_free(b->group);
    b->group = NULL;
    b->decide_rc = b->produce_rc = b->trc = ES_TXN_OK;
    b->fatal = b->store_failed = b->stored = false;
    memset(b->stage_s, 0, sizeof b->stage_s);
    es_clear(&b->decide_err);
    es_clear(&b->fatal_err);
    es_clear(&b->err);
}

static hd_batch_t *batch_new(hd_runtime_t *rt)
{
    hd_batch_t *b = xcalloc(1, sizeof *b);
    b->rt = rt;
    b->items = xcalloc((size_t)rt->cfg.batch_max, sizeof *b->items);
    b->msgs = xcalloc((size_t)rt->cfg.batch_max, sizeof *b->msgs);
    b->decide_err = b->fatal_err = b->err = (es_err_t)ES_ERR_INIT;
    return b;
}

static void batch_free(hd_batch_t *b)
{
    if (!b)
        return;
    batch_clear(b);
    for (int p = 0; p < b->nstages; p++) {
        json_decref(b->stages[p].states);
        json_decref(b->stages[p].results);
        free(b->stages[p].pending);
        free(b->stages[p].enc);
    }
    free(b->stages);
    free(b->items);
    free(b->msgs);
    free(b);
}

/* Writes partition p's records of the committed batch to the store (open write); the changelog
 * and results offsets move past the batch's last records. */
static int store_part(hd_runtime_t *rt, hd_stage_t *s, int32_t p, es_err_t *err)
{
    int64_t results_max = -1, results_next = -1;
    for (size_t i = 0; i < s->npending; i++) {
        hd_pending_t *e = &s->pending[i];
        int rc;
        if (e->log == HD_LOG_CHANGELOG) {
            rc = hd_store_state_put(rt->store, p, e->key, e->buf, e->len, err);
        } else {
            /* a delivery not reported yet: the offset the store reflects is below its own */
            if (e->offset < 0 && results_next < 0 &&
                hd_store_offset(rt->store, p, HD_LOG_RESULTS, &results_next, err) != 0)
                return -1;
            if (e->offset > results_max)
                results_max = e->offset;
            rc =
                hd_store_result_add(rt->store, p, e->key, e->offset >= 0 ? e->offset : results_next,
                                    e->buf, e->len, err);
        }
        if (rc != 0)
            return -1;
    }
    if (s->clog_offset >= 0 &&
        hd_store_offset_set(rt->store, p, HD_LOG_CHANGELOG, s->clog_offset + 1, err) != 0)
        return -1;
    if (results_max >= 0 &&
        hd_store_offset_set(rt->store, p, HD_LOG_RESULTS, results_max + 1, err) != 0)
        return -1;
    return 0;
}

/* After the batch's transaction committed (and only then: a zombie's records never commit), on
 * the store's thread: writes its states, results and offsets to the store in one write (every
 * partition it staged records for is owned: a rebalance waits for the batch in flight and its
 * write). A store that cannot be written is fatal (b->store_failed): the restart replays the
 * changelog since the offsets the store kept. */
static void store_write(hd_runtime_t *rt, hd_batch_t *b)
{
    es_err_t err = ES_ERR_INIT;
    int rc = hd_store_begin(rt->store, &err);
    for (int p = 0; p < b->nstages && rc == 0; p++) {
        hd_stage_t *s = stage_find(b, p);
        if (s && s->npending > 0)
            rc = store_part(rt, s, p, &err);
    }
    if (rc == 0)
        rc = hd_store_commit(rt->store, &err);
    if (rc != 0) {
        hd_store_abort(rt->store);
        b->store_failed = true; /* fatal, once the loop's thread sees it (batch_outcome) */
        es_set(&b->fatal_err, err.code, "%s", err.msg);
    }
}

/* On the loop's thread, once the batch is stored: its states replace those cached. */
static void store_cache(hd_runtime_t *rt, hd_batch_t *b)
{
    if (b->store_failed) {
        hd_store_cache_clear(rt->store);
        es_error("cannot write the committed batch to the state store: %s", b->fatal_err.msg);
        return;
    }
    for (int p = 0; p < b->nstages; p++) {
        hd_stage_t *s = stage_find(b, p);
        const char *k;
        json_t *v;
        if (s)
            json_object_foreach(s->states, k, v)
            {
                hd_store_cache_update(rt->store, p, k, json_is_null(v) ? NULL : v);
            }
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
        replay_log(rt, p, HD_LOG_RESULTS, rt->t_results, &rs, err) != 0)
        return -1;
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

static void inflight_drain(hd_runtime_t *rt);
static void ev_next_forget(hd_runtime_t *rt);

static void rebalance_cb(es_kafka_t *rk, int code, es_kafka_parts_t *parts, void *opaque)
{
    hd_runtime_t *rt = opaque;
    rt->rebalanced = true;
    inflight_drain(rt); /* the batch in flight ends (and is stored) under the old assignment */
    ev_next_forget(rt);
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

/* --- producing (on the transaction thread) ----------------------------------------------- */

/* Produces buf (stolen, may be NULL for a tombstone) inside the open transaction, with a
 * traceparent header when given. slot non-NULL: delivery tracked (es_txn_offset). Returns 0, or
 * -1 with err and b->produce_rc set (the batch must then be aborted, or the producer made
 * again). */
static int produce(hd_batch_t *b, const char *topic, int32_t p, const char *key, void *buf,
                   size_t len, const char *traceparent, size_t *slot, es_err_t *err)
{
    es_kafka_headers_t *h = NULL;
    if (traceparent) {
        h = es_kafka_headers_new(1);
        es_kafka_header_add(h, "traceparent", traceparent);
    }
    es_txn_rc_t rc = es_txn_produce(b->rt->txn, topic, p, key, strlen(key), buf, len, h, slot, err);
    if (rc == ES_TXN_OK)
        return 0;
    b->produce_rc = rc;
    return -1;
}

/* --- deciding (on the loop's thread) ----------------------------------------------------- */

static json_t *new_result(const json_t *meta, const char *aggregate_id, const char *type,
                          const char *reason, const char *detail, json_int_t version, int32_t p)
{
    const char *cid = json_string_value(json_object_get(meta, "command_id"));
    const char *corr = json_string_value(json_object_get(meta, "correlation_id"));
    /* the sender: the API answers GET /v1/commands/{id} to it alone */
    const char *actor = json_string_value(json_object_get(meta, "actor"));
    /* built key by key: json_pack's format parsing cost more than the object */
    json_t *r = json_object();
    json_object_set_new_nocheck(r, "command_id", json_string(cid ? cid : ""));
    json_object_set_new_nocheck(r, "correlation_id", json_string(corr ? corr : ""));
    json_object_set_new_nocheck(r, "aggregate_id", json_string(aggregate_id));
    json_object_set_new_nocheck(r, "command_type", json_string(type));
    json_object_set_new_nocheck(r, "status", json_string(reason ? "REJECTED" : "ACCEPTED"));
    json_object_set_new_nocheck(r, "reason", reason ? json_string(reason) : json_null());
    json_object_set_new_nocheck(r, "detail", json_string(detail ? detail : ""));
    json_object_set_new_nocheck(r, "aggregate_version", json_integer(version));
    json_object_set_new_nocheck(r, "partition", json_integer(p));
    json_object_set_new_nocheck(r, "offset", json_integer(-1));
    json_object_set_new_nocheck(r, "event_count", json_integer(0));
    json_object_set_new_nocheck(r, "decided_at", json_integer(es_wall_ms()));
    json_object_set_new_nocheck(r, "actor", json_string(actor ? actor : ""));
    return r;
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

/* The state of aggregate id in partition p as this batch staged it, else as the batch in flight
 * staged it, else as committed (the cache, then the store): a new reference, NULL if none. -1 in
 * *failed (err set) when the store cannot be read. */
static json_t *state_get(hd_runtime_t *rt, hd_stage_t *st, int32_t p, const char *id, bool *failed,
                         es_err_t *err)
{
    json_t *s = json_object_get(st->states, id);
    hd_stage_t *prev = stage_find(rt->inflight, p);
    if (!s && prev)
        s = json_object_get(prev->states, id);
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

/* Whether the command was decided before (in this batch, in the batch in flight, or kept in the
 * store): then it->result is its first outcome again, and no event follows. -1 (err set) when
 * the store cannot be read. */
static int cmd_is_duplicate(hd_runtime_t *rt, hd_stage_t *st, const hd_cmd_t *c, hd_item_t *it,
                            es_err_t *err)
{
    json_t *first = json_object_get(st->results, c->cid);
    hd_stage_t *prev = stage_find(rt->inflight, c->partition);
    if (!first && prev)
        first = json_object_get(prev->results, c->cid);
    json_incref(first);
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

/* Stamps (in place), evolves and encodes every event of events (borrowed) into it's events,
 * stopping at the first the codec refuses (-1 with err; then they are freed). *next: the state
 * after them (owned; NULL: none). */
static int events_encode(hd_runtime_t *rt, const hd_cmd_t *c, json_t *events, hd_item_t *it,
                         json_t **next, es_err_t *err)
{
    size_t n = json_array_size(events);
    *next = c->state ? json_deep_copy(c->state) : NULL;
    it->events = xcalloc(n ? n : 1, sizeof *it->events);
    it->event_lens = xcalloc(n ? n : 1, sizeof *it->event_lens);
    it->nevents = n;
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        const char *etype = json_string_value(json_object_get(e, "type"));
        json_int_t version = c->version + (json_int_t)i + 1;
        /* the decision's own payload, stamped in place (the decision is dropped after this) */
        json_t *ev = json_incref(json_object_get(e, "payload"));
        if (ev)
            hd_event_stamp_in(c->meta, c->agg, i, version, ev);
        int erc = ev_encode(rt->codec, rt->t_events, etype ? etype : "", ev, &it->events[i],
                            &it->event_lens[i], err);
        if (erc == 0) {
            *next = rt->ctx->evolve(*next, etype, ev);
            if (*next)
                json_object_set_new(*next, "version", json_integer(version));
        }
        json_decref(ev);
        if (erc != 0)
            break;
    }
    if (!es_failed(err))
        return 0;
    encoded_events_free(it);
    json_decref(*next);
    *next = NULL;
    return -1;
}

/* Stages a decision that has events (accepted, or rejected with events kept,
 * hd_reject_keep_events): encodes them (produced with the batch), stages the new state and sets
 * it->result. An event the codec refuses is a decider bug that a redo would repeat, so it rejects
 * the command instead. 0, or -1 with err when the batch must be aborted (the registry failed). */
static int decision_stage(hd_runtime_t *rt, hd_item_t *it, hd_stage_t *st, const hd_cmd_t *c,
                          const hd_decision_t *d, es_err_t *err)
{
    /* stamp, evolve and encode every event before producing any */
    es_err_t eerr = ES_ERR_INIT;
    json_t *next = NULL;
    if (events_encode(rt, c, d->events, it, &next, &eerr) != 0) {
        if (eerr.code != ES_EINVAL) { /* the registry, not the data: redo the batch */
            es_set(err, eerr.code, "%s", eerr.msg);
            return -1;
        }
        es_error("command %s: the decider's event does not encode: %s", c->cid, eerr.msg);
        it->result = cmd_result(c, it, "internal", eerr.msg, c->version);
        it->status = "rejected";
        return 0;
    }
    size_t n = it->nevents;
    if (n > 0) {
        json_object_set_new(st->states, c->agg, next ? next : json_null());
        next = NULL;
        it->has_events = true;
    }
    json_decref(next);
    it->result =
        cmd_result(c, it, d->reason, d->reason ? d->detail : NULL, c->version + (json_int_t)n);
    json_object_set_new(it->result, "event_count", json_integer((json_int_t)n));
    it->status = d->reason ? "rejected" : "accepted";
    return 0;
}

/* Decides one command into it->result and stages its events, state and result in b. Returns 0,
 * or -1 with err when the batch must be aborted (the store cannot be read, an event could not be
 * encoded for want of the registry). */
static int decide_one(hd_runtime_t *rt, hd_batch_t *b, hd_item_t *it, es_err_t *err)
{
    hd_part_t *pt = part_get(rt, it->msg->partition);
    hd_stage_t *st = stage_get(b, it->msg->partition);
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
    if (!(cmd = cmd_read(rt, it, &c)) || (dup = cmd_is_duplicate(rt, st, &c, it, err)) != 0) {
        rc = dup < 0 ? -1 : 0;
        goto out;
    }
    c.state = state_get(rt, st, c.partition, c.agg, &failed, err);
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
    rc = decision_stage(rt, it, st, &c, &d, err);
out:
    if (it->result && !it->duplicate)
        json_object_set(st->results, json_string_value(json_object_get(it->result, "command_id")),
                        it->result);
    hd_decision_release(&d);
    json_decref(c.state);
    json_decref(cmd);
    return rc;
}

/* Encodes the states b staged (each aggregate's last, null: a tombstone), on the loop's thread
 * once deciding is done, for the transaction thread to produce. 0, or -1 with err: the registry
 * failed (the batch is aborted), or a state the schema refuses, a bug: also b->fatal (the
 * transaction is aborted and the process restarts). */
static int states_encode(hd_runtime_t *rt, hd_batch_t *b, es_err_t *err)
{
    for (int p = 0; p < b->nstages; p++) {
        hd_stage_t *s = stage_find(b, p);
        if (!s)
            continue;
        const char *k;
        json_t *v;
        json_object_foreach(s->states, k, v)
        {
            void *buf = NULL;
            size_t len = 0;
            if (!json_is_null(v) &&
                ev_encode(rt->codec, rt->t_changelog, rt->ctx->state_type, v, &buf, &len, err)) {
                if (err->code == ES_EINVAL) {
                    b->fatal = true;
                    es_set(&b->fatal_err, err->code, "%s", err->msg);
                }
                return -1;
            }
            if (s->nenc == s->cap_enc) {
                s->cap_enc = s->cap_enc ? 2 * s->cap_enc : 64;
                s->enc = xrealloc(s->enc, s->cap_enc * sizeof *s->enc);
            }
            s->enc[s->nenc++] = (hd_pending_t){HD_LOG_CHANGELOG, xstrdup(k), buf, len, 0, -1};
        }
    }
    return 0;
}

/* Encodes the results of b while deciding, those of commands with events with the positions
 * their events get if every batch before commits and the handler is still the only writer
 * (lg_next; the transaction thread checks each against its own guess, or the delivered offset,
 * and encodes again the few that differ). A duplicate's first outcome may still get its position
 * from the batch in flight: encoded when produced, as is a result whose position is unknown. */
static void results_encode(hd_runtime_t *rt, hd_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        hd_item_t *it = &b->items[i];
        it->result_guess = -1;
        if (!it->result || it->duplicate)
            continue;
        if (it->has_events) {
            hd_stage_t *s = stage_find(b, it->msg->partition);
            int64_t next = next_get(rt->lg_next, rt->nlg_next, it->msg->partition);
            s->nevents += it->nevents;
            if (next < 0)
                continue;
            it->result_guess = next + (int64_t)s->nevents - 1;
            json_object_set_new(it->result, "offset", json_integer(it->result_guess));
        }
        es_err_t err = ES_ERR_INIT; /* a failure is met again, and reported, when produced */
        if (ev_encode(rt->codec, rt->t_results, "eventshop.CommandResult", it->result,
                      &it->result_buf, &it->result_len, &err) != 0)
            it->result_buf = NULL;
    }
    for (int p = 0; p < b->nstages; p++) {
        hd_stage_t *s = stage_find(b, p);
        int64_t next = next_get(rt->lg_next, rt->nlg_next, p);
        if (s && s->nevents > 0 && next >= 0) /* and one offset for the commit marker */
            next_set(&rt->lg_next, &rt->nlg_next, p, next + (int64_t)s->nevents + 1);
    }
}

/* After batch a committed (the transaction thread idle): the loop's guesses start again from what
 * the transaction thread learned, plus the events of next (decided since, may be NULL). */
static void lg_sync(hd_runtime_t *rt, hd_batch_t *next)
{
    pthread_mutex_lock(&rt->lock);
    bool forget = rt->ev_forget;
    for (int p = 0; p < rt->nev_next || p < rt->nlg_next; p++) {
        int64_t truth = forget ? -1 : next_get(rt->ev_next, rt->nev_next, p);
        hd_stage_t *s = stage_find(next, p);
        if (truth >= 0 && s && s->nevents > 0)
            truth += (int64_t)s->nevents + 1;
        next_set(&rt->lg_next, &rt->nlg_next, p, truth);
    }
    pthread_mutex_unlock(&rt->lock);
}

/* Decides every command of b (on the loop's thread, no Kafka call): a failure is noted in
 * b->decide_rc, for the transaction to abort. */
static void batch_decide(hd_runtime_t *rt, hd_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (decide_one(rt, b, &b->items[i], &b->decide_err) != 0) {
            b->decide_rc = ES_TXN_ABORT;
            return;
        }
    }
    if (states_encode(rt, b, &b->decide_err) != 0) {
        b->decide_rc = ES_TXN_ABORT;
        return;
    }
    results_encode(rt, b);
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
    ev_next_forget(rt);
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

/* One line per decided command (committed), with its trace id, and its decide span. */
static void log_decided(hd_runtime_t *rt, const hd_item_t *it)
{
    /* a line only for a trace a client asked to follow (or at debug level): the fields of every
     * other command are not even gathered */
    es_log_level_t lvl = es_trace_log_level(it->span);
    if (lvl < es_log_min_level && !es_zipkin_enabled())
        return;
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
    es_log_kv(lvl, trace_id[0] ? trace_id : NULL, fields, "command %s %s %s%s%s",
              cid ? cid : "(undecodable)", type, it->status ? it->status : "skipped",
              reason ? ": " : "", reason ? reason : "");
    if (es_zipkin_enabled()) {
        char name[160];
        snprintf(name, sizeof name, "decide %s", type);
        es_zipkin_span(it->span, it->traceparent, name, "CONSUMER", it->start_us,
                       es_zipkin_now_us() - it->start_us, fields);
    }
}

/* --- the transaction (on the transaction thread) -------------------------------------------- */

/* Produces the events every command of b was decided into, to the command's partition of the
 * events topic, each with the decide span's traceparent. 0, or -1 with err (b->produce_rc). */
/* Produces the events b decided, in order, each command's to its own partition. Each item's
 * last_guess is the offset its last event gets if the handler is still the partition's only
 * writer, or -1 when that is not known. Returns 1 when every guess is known, 0 when one is not,
 * -1 on a failure (err). */
static int events_produce(hd_batch_t *b, es_err_t *err)
{
    hd_runtime_t *rt = b->rt;
    int known = 1;
    for (size_t i = 0; i < b->n; i++) {
        hd_item_t *it = &b->items[i];
        es_kafka_msg_t *m = it->msg;
        const char *agg = json_string_value(json_object_get(it->result, "aggregate_id"));
        it->last_guess = -1;
        for (size_t e = 0; e < it->nevents; e++) {
            void *buf = it->events[e];
            it->events[e] = NULL;
            if (produce(b, rt->t_events, m->partition, agg ? agg : "", buf, it->event_lens[e],
                        it->span, &it->last_slot, err))
                return -1;
        }
        if (!it->nevents)
            continue;
        int64_t next = next_get(rt->ev_next, rt->nev_next, m->partition);
        if (next < 0) {
            known = 0;
            continue;
        }
        it->last_guess = next + (int64_t)it->nevents - 1;
        next_set(&rt->ev_next, &rt->nev_next, m->partition, next + (int64_t)it->nevents);
    }
    return known;
}

/* After b's transaction ended: with trc ES_TXN_OK, learns from the offsets its events got where
 * each partition it wrote to goes on (past the commit marker); otherwise (an abort, a lost
 * producer: records and a marker of unknown count) forgets all. */
static void ev_next_learn(hd_runtime_t *rt, hd_batch_t *b, es_txn_rc_t trc)
{
    if (trc != ES_TXN_OK) {
        for (int p = 0; p < rt->nev_next; p++)
            rt->ev_next[p] = -1;
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        const hd_item_t *it = &b->items[i];
        if (it->nevents)
            next_set(&rt->ev_next, &rt->nev_next, it->msg->partition,
                     es_txn_offset(rt->txn, it->last_slot) + 2);
    }
}

/* Until the next committed transaction, nothing is known of the events topic (the loop's thread,
 * with no batch in flight: the assignment or the producer changed). */
static void ev_next_forget(hd_runtime_t *rt)
{
    for (int p = 0; p < rt->nlg_next; p++)
        rt->lg_next[p] = -1;
    pthread_mutex_lock(&rt->lock);
    rt->ev_forget = true;
    pthread_mutex_unlock(&rt->lock);
}

/* Produces the states b staged and encoded (states_encode), of every partition, to the
 * changelog. 0, or 1 with *trc and err set when the batch failed. */
static int states_produce(hd_batch_t *b, es_txn_rc_t *trc, es_err_t *err)
{
    hd_runtime_t *rt = b->rt;
    for (int p = 0; p < b->nstages; p++) {
        hd_stage_t *s = stage_find(b, p);
        for (size_t i = 0; s && i < s->nenc; i++) {
            hd_pending_t *e = &s->enc[i];
            pending_add(s, HD_LOG_CHANGELOG, e->key, e->buf, e->len, 0);
            void *buf = e->buf;
            e->buf = NULL; /* produce takes it */
            if (produce(b, rt->t_changelog, p, e->key, buf, e->len, NULL, &s->clog_slot, err)) {
                *trc = b->produce_rc;
                return 1;
            }
            s->clog_tracked = true;
        }
    }
    return 0;
}

/* Produces the CommandResult of every decided command to its partition of the results topic,
 * with the command's traceparent. A command with events carries the position of its last one:
 * with guessed, the transaction thread's guess (checked at delivery), else the delivered offset.
 * A result encoded while deciding with another position (or not encoded then) is encoded here.
 * 0, or -1 with *trc and err set. */
static int results_produce(hd_batch_t *b, bool guessed, es_txn_rc_t *trc, es_err_t *err)
{
    hd_runtime_t *rt = b->rt;
    for (size_t i = 0; i < b->n; i++) {
        hd_item_t *it = &b->items[i];
        es_kafka_msg_t *m = it->msg;
        if (!it->result)
            continue;
        void *buf = it->result_buf;
        size_t len = it->result_len;
        it->result_buf = NULL;
        if (it->has_events) {
            int64_t pos = guessed ? it->last_guess : es_txn_offset(rt->txn, it->last_slot);
            if (buf && it->result_guess != pos) {
                free(buf);
                buf = NULL;
            }
            if (!buf)
                json_object_set_new(it->result, "offset", json_integer(pos));
        }
        const char *cid = json_string_value(json_object_get(it->result, "command_id"));
        int rc = buf ? 0
                     : ev_encode(rt->codec, rt->t_results, "eventshop.CommandResult", it->result,
                                 &buf, &len, err);
        *trc = ES_TXN_ABORT;
        size_t slot = 0;
        hd_stage_t *s = stage_find(b, m->partition);
        if (rc == 0 && !it->duplicate) /* a duplicate's first outcome is kept already */
            pending_add(s, HD_LOG_RESULTS, cid, buf, len, 0);
        if (rc == 0 && (rc = produce(b, rt->t_results, m->partition, cid, buf, len, it->traceparent,
                                     &slot, err)))
            *trc = b->produce_rc;
        if (rc == 0 && !it->duplicate)
            s->pending[s->npending - 1].slot = slot;
        if (rc)
            return -1;
    }
    return 0;
}

/* Whether every guessed position is the one delivered (0), or -1 with err: someone else wrote
 * to the events topic (a zombie replica's transaction, aborted or not, takes offsets too); the
 * batch is then aborted and written again, its positions taken from the delivery. */
static int guesses_check(hd_batch_t *b, es_err_t *err)
{
    hd_runtime_t *rt = b->rt;
    for (size_t i = 0; i < b->n; i++) {
        const hd_item_t *it = &b->items[i];
        int64_t got = it->nevents ? es_txn_offset(rt->txn, it->last_slot) : -1;
        if (it->nevents && got != it->last_guess)
            return es_set(err, ES_ECONFLICT,
                          "%s[%d] was written by another producer: an event got offset %lld, not "
                          "%lld; written again with the delivered positions",
                          rt->t_events, (int)it->msg->partition, (long long)got,
                          (long long)it->last_guess);
    }
    return 0;
}

/* Produces the events and the staged states of b, and the results, which carry the events'
 * offsets as read-your-writes positions. When the handler knows where each partition it writes
 * goes on (it is their only writer: ev_next), the results carry the guessed offsets and travel
 * with the events; the batch's offsets are sent meanwhile, and the delivery checks every guess
 * before the commit. Otherwise the results wait for the events' delivery. A state the schema
 * refuses (a bug) sets b->fatal. */
static es_txn_rc_t batch_work(void *arg, es_err_t *err)
{
    hd_batch_t *b = arg;
    hd_runtime_t *rt = b->rt;
    es_txn_rc_t trc;
    b->produce_rc = ES_TXN_OK;
    stage_mark(b, ST_BEGIN);
    if (b->decide_rc != ES_TXN_OK) {
        es_set(err, b->decide_err.code, "%s", b->decide_err.msg);
        return b->decide_rc;
    }
    int known = events_produce(b, err);
    if (known < 0)
        return b->produce_rc != ES_TXN_OK ? b->produce_rc : ES_TXN_ABORT;
    stage_mark(b, ST_EVENTS);
    if (states_produce(b, &trc, err) != 0)
        return trc;
    stage_mark(b, ST_STATES);
    if (known) {
        if (results_produce(b, true, &trc, err) != 0)
            return trc;
        stage_mark(b, ST_RESULTS);
    }
    const es_txn_step_t step = {NULL, b->group, b->n, "commands", NULL, NULL, NULL};
    if ((trc = es_txn_step_send_offsets(rt->txn, &step, err)) != ES_TXN_OK)
        return trc;
    stage_mark(b, ST_OFFSETS);
    if ((trc = es_txn_flush(rt->txn, err)) != ES_TXN_OK)
        return trc;
    stage_mark(b, ST_FLUSH);
    if (known)
        return guesses_check(b, err) == 0 ? ES_TXN_OK : ES_TXN_ABORT;
    if (results_produce(b, false, &trc, err) != 0)
        return trc;
    stage_mark(b, ST_RESULTS);
    return ES_TXN_OK;
}

/* Writes b in one transaction (es_txn_step; the loop's thread rewinds after an abort) and, once
 * committed, writes it to the store with the offsets its records got. */
static void batch_txn(hd_batch_t *b)
{
    hd_runtime_t *rt = b->rt;
    const es_txn_step_t step = {NULL, b->group, b->n, "commands", batch_work, NULL, b};
    stage_mark(b, ST_HANDOFF);
    b->trc = es_txn_step(rt->txn, &step, &b->err);
    ev_next_learn(rt, b, b->trc);
    if (b->trc != ES_TXN_OK)
        return;
    stage_mark(b, ST_COMMIT);
    for (int p = 0; p < b->nstages; p++) {
        hd_stage_t *s = stage_find(b, p);
        if (!s)
            continue;
        s->clog_offset = s->clog_tracked ? es_txn_offset(rt->txn, s->clog_slot) : -1;
        for (size_t i = 0; i < s->npending; i++)
            if (s->pending[i].log == HD_LOG_RESULTS)
                s->pending[i].offset = es_txn_offset(rt->txn, s->pending[i].slot);
    }
    es_worker_post(rt->storer, b);
}

/* The store's thread: writes each committed batch, in their order, while the transaction thread
 * writes the next (the loop's thread waits for it before it decides on top: stored_wait). */
static int store_run(void *arg, void **jobs, size_t n)
{
    hd_runtime_t *rt = arg;
    for (size_t i = 0; i < n; i++) {
        hd_batch_t *b = jobs[i];
        store_write(rt, b);
        stage_mark(b, ST_STORE);
        pthread_mutex_lock(&rt->lock);
        b->stored = true;
        pthread_cond_broadcast(&rt->cond);
        pthread_mutex_unlock(&rt->lock);
    }
    return ES_WORKER_IDLE;
}

/* Jobs never run (the runtime ends): nobody waits for their write, the changelog has them. */
static void store_drop(void *arg, void **jobs, size_t n)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        ((hd_batch_t *)jobs[i])->stored = true;
}

/* Keeps b (empty) for a next batch (rt->lock held). */
static void spare_put(hd_runtime_t *rt, hd_batch_t *b)
{
    if (!rt->spare[0])
        rt->spare[0] = b;
    else if (!rt->spare[1])
        rt->spare[1] = b;
    else
        batch_free(b);
}

static void *txn_thread(void *arg)
{
    hd_runtime_t *rt = arg;
    on_txn_thread = true;
    pthread_mutex_lock(&rt->lock);
    for (;;) {
        while (!rt->job && !rt->quit)
            pthread_cond_wait(&rt->cond, &rt->lock);
        if (!rt->job)
            break;
        hd_batch_t *b = rt->job;
        if (rt->ev_forget) {
            rt->ev_forget = false;
            for (int p = 0; p < rt->nev_next; p++)
                rt->ev_next[p] = -1;
        }
        pthread_mutex_unlock(&rt->lock);
        batch_txn(b);
        pthread_mutex_lock(&rt->lock);
        if (b->trc != ES_TXN_OK)
            b->stored = true; /* nothing to write */
        rt->job = NULL;
        pthread_cond_broadcast(&rt->cond);
    }
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

/* --- the pipeline (on the loop's thread) ----------------------------------------------------- */

/* Hands b (decided) to the transaction thread: it becomes the batch in flight. */
static void batch_submit(hd_runtime_t *rt, hd_batch_t *b)
{
    es_txn_batch_reset(rt->txn);
    for (size_t i = 0; i < b->n; i++)
        es_txn_batch_add(rt->txn, b->items[i].msg);
    b->group = es_kafka_group_of(rt->consumer);
    b->mark = es_mono_s(); /* the hand-off begins */
    rt->inflight = b;
    pthread_mutex_lock(&rt->lock);
    rt->job = b;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
}

/* Waits, beating meanwhile (the transaction thread's retries may take up to the transaction
 * timeout, as they did on the loop's thread), until done(rt, b) holds under rt->lock. */
static void beat_until(hd_runtime_t *rt, bool (*done)(const hd_runtime_t *, const hd_batch_t *),
                       const hd_batch_t *b)
{
    pthread_mutex_lock(&rt->lock);
    while (!done(rt, b)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&rt->cond, &rt->lock, &ts);
        hd_heartbeat();
    }
    pthread_mutex_unlock(&rt->lock);
}

static bool txn_idle(const hd_runtime_t *rt, const hd_batch_t *b)
{
    (void)b;
    return !rt->job;
}

static bool batch_stored(const hd_runtime_t *rt, const hd_batch_t *b)
{
    (void)rt;
    return b->stored;
}

/* Until the transaction thread is done with the batch in flight. */
static void inflight_wait(hd_runtime_t *rt)
{
    beat_until(rt, txn_idle, NULL);
}

/* Until b's store write is done (or none will be made). */
static void stored_wait(hd_runtime_t *rt, hd_batch_t *b)
{
    beat_until(rt, batch_stored, b);
}

/* The loop's side of a batch's outcome (the transaction thread is done with it): 0 (committed and
 * stored: cached, counted and logged, or rewound to be read again when the views lagged), 1
 * (aborted: back off, then read again; the caller rewinds), 2 (the producer is lost: recover_lost),
 * -1 on a fatal error (rt->fatal set). */
static int batch_outcome(hd_runtime_t *rt, hd_batch_t *b)
{
    if (b->trc == ES_TXN_OK)
        store_cache(rt, b);
    if (b->fatal || b->store_failed)
        set_fatal(rt, &b->fatal_err);
    if (rt->fatal)
        return -1;
    if (b->trc == ES_TXN_ABORT)
        return 1;
    if (b->trc == ES_TXN_FENCED) {
        set_fatal(rt, &b->err);
        return -1;
    }
    if (b->trc == ES_TXN_LOST) {
        es_error("handler for '%s' lost its transactional producer: %s", rt->ctx->name, b->err.msg);
        return 2;
    }
    es_metric_observe(rt->m_batch_seconds, es_mono_s() - b->t0);
    es_metric_set(rt->m_batch_size, (double)b->n);
    for (size_t i = 0; i < b->n; i++) {
        es_metric_add(command_counter(rt, b->items[i].type, b->items[i].status), 1);
        log_decided(rt, &b->items[i]);
    }
    for (int i = 0; i < ST_N; i++)
        es_metric_observe(rt->m_stage[i], b->stage_s[i]);
    es_debug("committed a batch of %zu commands in %.3f s (ms: gather %.1f decide %.1f wait %.1f "
             "handoff %.1f begin %.1f events %.1f states %.1f offsets %.1f flush %.1f results "
             "%.1f commit %.1f store %.1f)",
             b->n, es_mono_s() - b->t0, b->stage_s[ST_GATHER] * 1e3, b->stage_s[ST_DECIDE] * 1e3,
             b->stage_s[ST_WAIT] * 1e3, b->stage_s[ST_HANDOFF] * 1e3, b->stage_s[ST_BEGIN] * 1e3,
             b->stage_s[ST_EVENTS] * 1e3, b->stage_s[ST_STATES] * 1e3, b->stage_s[ST_OFFSETS] * 1e3,
             b->stage_s[ST_FLUSH] * 1e3, b->stage_s[ST_RESULTS] * 1e3, b->stage_s[ST_COMMIT] * 1e3,
             b->stage_s[ST_STORE] * 1e3);
    return 0;
}

static void batch_recycle(hd_runtime_t *rt, hd_batch_t *b)
{
    batch_clear(b);
    pthread_mutex_lock(&rt->lock);
    spare_put(rt, b);
    pthread_mutex_unlock(&rt->lock);
}

/* Waits for the batch in flight and finishes it (batch_outcome). With rewind, an aborted one is
 * rewound, together with next (decided after it, from what it staged: dropped; may be NULL).
 * Returns batch_outcome's answer, 0 when none was in flight. */
static int inflight_finish(hd_runtime_t *rt, bool rewind, hd_batch_t *next)
{
    hd_batch_t *b = rt->inflight;
    if (!b)
        return 0;
    inflight_wait(rt);
    stored_wait(rt, b);
    rt->inflight = NULL;
    int rc = batch_outcome(rt, b);
    lg_sync(rt, next);
    if (rc == 1 && rewind) {
        for (size_t i = 0; next && i < next->n; i++)
            es_txn_batch_add(rt->txn, next->items[i].msg);
        es_txn_rewind(rt->txn, rt->consumer);
    }
    batch_recycle(rt, b);
    return rc;
}

/* For a rebalance (or a consumer made again): the batch in flight is finished first, so that the
 * partitions it wrote to are stored before they are dropped; what it asks for afterwards (a back
 * off, a recovery) is left to the loop (rt->drained_rc). */
static void inflight_drain(hd_runtime_t *rt)
{
    if (!rt->inflight)
        return;
    int rc = inflight_finish(rt, false, NULL);
    if (rc > rt->drained_rc)
        rt->drained_rc = rc;
}

/* --- life cycle --------------------------------------------------------------------------- */

hd_runtime_t *hd_runtime_new(const hd_context_t *ctx, ev_codec_t *codec,
                             const hd_runtime_config_t *cfg, es_err_t *err)
{
    hd_runtime_t *rt = xcalloc(1, sizeof *rt);
    char group[160], txn_id[320], client[160];
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->cond, NULL);
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
                            .timeout_ms = rt->cfg.txn_timeout_ms,
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
    for (int i = 0; i < ST_N; i++) {
        char labels[48];
        snprintf(labels, sizeof labels, "stage=\"%s\"", stage_names[i]);
        rt->m_stage[i] = es_histogram("eventshop_handler_stage_seconds",
                                      "time a committed batch spent in each stage", labels);
    }
    rt->m_dropped = es_counter("eventshop_handler_batches_dropped_total",
                               "batches decided on top of the batch in flight, dropped (and read "
                               "again) because that batch failed",
                               "");
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
    inflight_drain(rt); /* its offsets went with the old consumer's group: it may still commit */
    ev_next_forget(rt);
    rt->consumer_lost = false;
    rt->consumer_fenced_at = es_mono_s();
    es_kafka_destroy(rt->consumer);
    rt->consumer = NULL;
    for (int p = 0; p < rt->nparts; p++)
        part_drop(&rt->parts[p]);
    rt->consumer = es_txn_remake_consumer(rt->txn, rt->t_commands, consumer_open, rt);
    return rt->consumer ? 0 : -1;
}

/* Gathers up to batch_max commands into b: the first one (waited for wait_ms, -1: until one
 * comes), then what is already fetched (after linger_ms, 0 unless set): alone a command is
 * decided at once, under load the batch fills with what came during the last transaction. A
 * rebalance meanwhile drops what was gathered: the new assignment reads from the committed
 * offsets. */
static void gather(hd_runtime_t *rt, hd_batch_t *b, int wait_ms)
{
    const es_kafka_gather_t g = {(size_t)rt->cfg.batch_max,
                                 wait_ms,
                                 rt->cfg.linger_ms,
                                 &rt->stop,
                                 &rt->fatal,
                                 &rt->rebalanced};
    bool fatal;
    b->n = es_kafka_gather(rt->consumer, &g, b->msgs, &fatal);
    if (fatal)
        consumer_fatal(rt);
    for (size_t i = 0; i < b->n; i++)
        b->items[i] = (hd_item_t){.msg = b->msgs[i]};
}

/* Reads b's commands again (its offsets are those of the consumer's next reads) and empties b. */
static void batch_rewind(hd_runtime_t *rt, hd_batch_t *b)
{
    if (b->n == 0)
        return;
    es_txn_batch_reset(rt->txn);
    for (size_t i = 0; i < b->n; i++)
        es_txn_batch_add(rt->txn, b->items[i].msg);
    es_txn_rewind(rt->txn, rt->consumer);
    batch_clear(b);
}

static hd_batch_t *batch_take(hd_runtime_t *rt)
{
    hd_batch_t *b = NULL;
    pthread_mutex_lock(&rt->lock);
    for (int i = 0; i < 2 && !b; i++) {
        b = rt->spare[i];
        rt->spare[i] = NULL;
    }
    pthread_mutex_unlock(&rt->lock);
    return b ? b : batch_new(rt);
}

/* One turn of the loop: gathers and decides batch n+1 while batch n (in flight) is written on
 * the transaction thread; once n committed, hands n+1 over and stores n. Returns 0, 1 (a batch
 * aborted: back off), 2 (the producer is lost: recover_lost), -1 on a fatal error. */
static int loop_turn(hd_runtime_t *rt)
{
    hd_batch_t *b = batch_take(rt);
    rt->drained_rc = 0;
    b->mark = es_mono_s();
    /* while a batch is in flight only what is fetched already: its commit is not held up; idle,
     * until a command comes, or the next readiness check while the broker did not answer the
     * last (a handler with no commands stayed not ready for good after a broker outage) */
    gather(rt, b, rt->inflight ? 0 : es_kafka_readiness_wait_ms(&rt->ready));
    stage_mark(b, ST_GATHER);
    int rc = rt->drained_rc; /* a rebalance finished the batch in flight */
    if (rc != 0 || rt->fatal) {
        if (rc == 1)
            batch_rewind(rt, b);
        batch_recycle(rt, b);
        return rt->fatal ? -1 : rc;
    }
    bool lagging = false;
    if (b->n > 0) {
        b->t0 = es_mono_s();
        es_err_t err = ES_ERR_INIT;
        /* a command must see every view event committed before it was produced */
        if (hd_views_catch_up(rt->views, rt->cfg.view_wait_ms, &err) != 0) {
            es_warn("deciding later: %s", err.msg);
            lagging = true;
        } else {
            batch_decide(rt, b);
        }
    }
    stage_mark(b, ST_DECIDE);
    hd_batch_t *a = rt->inflight;
    if (a)
        inflight_wait(rt);
    stage_mark(b, ST_WAIT);
    if (a && (a->trc != ES_TXN_OK || a->fatal || lagging || b->n == 0)) {
        /* b was decided from what a staged: read again with a when a failed */
        rc = inflight_finish(rt, true, b);
        a = NULL;
        if (rc != 0 && b->n > 0 && !lagging) /* decided, then discarded */
            es_metric_add(rt->m_dropped, 1);
        if (rc != 0)
            batch_clear(b);
    }
    if (lagging)
        batch_rewind(rt, b);
    if (a) { /* committed */
        lg_sync(rt, b);
        rt->inflight = NULL;
    }
    if (b->n > 0 && !rt->fatal) { /* a is stored, then freed, while b is written */
        batch_submit(rt, b);
        b = NULL;
    }
    if (a) { /* once stored: cached, counted and logged */
        stored_wait(rt, a);
        rc = batch_outcome(rt, a);
        batch_recycle(rt, a);
    }
    if (b)
        batch_recycle(rt, b);
    return rt->fatal ? -1 : rc;
}

typedef struct views_try {
    hd_runtime_t *rt;
    long long deadline_ms;
} views_try_t;

/* One catch-up of the views, for es_retry_until, in the time the recovery has left. */
static int views_attempt(void *arg, es_err_t *err)
{
    views_try_t *t = arg;
    long long left = t->deadline_ms - es_mono_ms();
    if (hd_views_catch_up(t->rt->views, (int)(left > 1000 ? left : 1000), err) == 0)
        return ES_RETRY_DONE;
    return err->code == ES_EIO || err->code == ES_ETIMEOUT ? ES_RETRY_AGAIN : ES_RETRY_GIVE_UP;
}

/* The views read to their ends before the first command, again after a transient Kafka error
 * (topics just made answer "not leader for partition" for a moment; a broker restarting does
 * not answer at all) for as long as the recovery timeout allows, rather than exit at start. */
static int views_catch_up_retrying(hd_runtime_t *rt, es_err_t *err)
{
    views_try_t t = {rt, es_mono_ms() + rt->cfg.recovery_timeout_ms};
    const es_retry_t retry = {.what = "reading the views",
                              .deadline_ms = t.deadline_ms,
                              .min_ms = 200,
                              .max_ms = 2000,
                              .stop = &rt->stop,
                              .heartbeat = hd_heartbeat};
    return es_retry_until(&retry, views_attempt, &t, err);
}

int hd_runtime_run(hd_runtime_t *rt, es_err_t *err)
{
    if (views_catch_up_retrying(rt, err) != 0)
        return -1;
    if (hd_views_partition_count(rt->views) > 0)
        es_info("views of '%s' read: %zu partitions", rt->ctx->name,
                hd_views_partition_count(rt->views));
    if (consumer_subscribe(rt, err) != 0)
        return -1;
    if (!(rt->storer = es_worker_new("the handler's store", store_run, store_drop, rt, err)))
        return -1;
    if (pthread_create(&rt->worker, NULL, txn_thread, rt) != 0)
        return es_set(err, ES_EFATAL, "cannot start the transaction thread");
    rt->worker_started = true;
    while (!rt->stop && !rt->fatal) {
        hd_heartbeat();
        es_kafka_check_readiness(rt->consumer, &rt->ready);
        int brc = loop_turn(rt);
        if (brc == 1)
            es_txn_backoff(rt->txn);
        else if (brc == 2)
            recover_lost(rt);
        if (rt->consumer_lost && !rt->fatal)
            consumer_remake(rt);
    }
    /* the batch in flight is finished (stored once committed) before the consumer closes */
    inflight_finish(rt, false, NULL);
    char who[160];
    snprintf(who, sizeof who, "handler for '%s'", rt->ctx->name);
    return es_txn_loop_end(who, rt->consumer, rt->fatal, &rt->fatal_err, err);
}

void hd_runtime_free(hd_runtime_t *rt)
{
    if (!rt)
        return;
    if (rt->worker_started) {
        inflight_wait(rt);
        pthread_mutex_lock(&rt->lock);
        rt->quit = true;
        pthread_cond_broadcast(&rt->cond);
        pthread_mutex_unlock(&rt->lock);
        pthread_join(rt->worker, NULL);
    }
    es_worker_free(rt->storer); /* after the transaction thread: it posts to it */
    batch_free(rt->inflight);
    batch_free(rt->spare[0]);
    batch_free(rt->spare[1]);
    es_txn_free(rt->txn);
    if (rt->consumer)
        es_kafka_destroy(rt->consumer);
    if (rt->cconf)
        es_kafka_conf_free(rt->cconf);
    hd_views_free(rt->views);
    hd_store_free(rt->store);
    free(rt->ev_next);
    free(rt->lg_next);
    free(rt->parts);
    for (size_t i = 0; i < rt->ncounters; i++)
        free(rt->counters[i].type);
    free(rt->counters);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
    free(rt);
}
