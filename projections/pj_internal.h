/* pj_internal — what the projector runtime (pj_runtime.c) and its rebuild (pj_rebuild.c) share:
 * the runtime's state, its named locks and stored offsets, and the steps of its consume loop.
 * Not for projections: they see pj_runtime.h only. */
#ifndef PJ_INTERNAL_H
#define PJ_INTERNAL_H

#include "es_metrics.h"
#include "pj_arena.h"
#include "pj_batch.h"
#include "pj_runtime.h"
/* ev_codec.h's comment holds a path with "/\*" in it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "ev_codec.h"
#pragma GCC diagnostic pop
#include "es_kafka.h"
#include "sr_client.h"
#include <signal.h>
#include <stdint.h>

#define PJ_IDLE_POLL_MS 100
#define PJ_LOCK_WAIT_S  30 /* a rebuild holds the live lock for one catch-up and a RENAME */

struct pj_part {
    bool assigned;
    int64_t stored; /* next offset stored in MariaDB; -1: none (from the beginning) */
    int64_t next;   /* one past the last offset put in the batch; -1: none yet */
    bool in_batch;
    int64_t committed; /* last offset committed to the Kafka group; -1: none this assignment */
    es_metric_t *lag;
};

/* One message of the batch, decoded and planned once (pj_flush), whatever the passes over it. */
struct pj_ev {
    const char *full_name; /* the record's full name; NULL: no payload or undecodable */
    const char *type;      /* full_name without its namespace */
    json_t *value;         /* owned */
    pj_arena_t *arena;     /* the region value was made in (pj_arena.h); NULL: none */
    bool whole;            /* value is all in arena: dropped without its json_decref walk */
    pj_plan_t *plan;       /* kept from batch to batch */
    es_err_t err;          /* why it could not be planned (err.code 0: planned) */
};

struct pj_runtime {
    const pj_projection_t *p;
    char *group, *suffix, *key; /* key: offsets and dead letters are kept under it */
    char *lock;                 /* MariaDB named lock held around each batch (pj_lock_name) */
    bool manual;                /* rebuild: every partition assigned, no consumer group */
    const int64_t *limit;       /* rebuild catch-up: per partition, offsets to stop before */
    long long done;             /* events committed (applied or dead-lettered) */
    char topic[200];
    int batch_max, linger_ms;
    es_db_t *db;
    sr_client_t *sr;
    ev_codec_t *codec;
    /* the last schema id pj_ev_prepare found the writer of (-1: none): the codec keeps every
     * writer it found for its life, so the same id is not looked up again (a lock and a search
     * an event) */
    int32_t known_writer;
    es_kafka_t *rk;
    struct pj_part *parts;
    int nparts;
    es_kafka_msg_t **batch; /* the batch being filled (pj_take) */
    int nbatch;
    struct pj_ev *evs; /* batch_max of them: the batch's messages decoded and planned */
    int nprepared;     /* how many of evs hold the batch's (pj_flush) */
    /* the batch being written, by a thread of its own while the loop fills and decodes the next
     * (pj_runtime.c); merge and applied are its own until it lands */
    struct pj_flight *fl;
    pj_batch_t *merge; /* the batch's plans as multi-row statements */
    bool need_resync;  /* positions must be reloaded from MariaDB before the next batch */
    long backoff_ms;   /* ceiling of the current back-off; 0 after a success */
    unsigned jitter;   /* rand_r state for the back-off's jitter */
    volatile sig_atomic_t stop;
    es_metric_t *m_events, *m_batch, *m_dead, *m_commit_failed;
    json_t *applied;            /* the batch in flight's applied events, logged once committed */
    long long commit_retry_at;  /* no Kafka commit before (es_mono_ms), after a failed one */
    es_log_every_t commit_warn; /* failed Kafka commits: one warning a minute */
    struct pj_ops *ops;         /* operator actions (pj_ops.c); NULL: none read (a rebuild) */
};

/* CREATE TABLE IF NOT EXISTS projection_offsets and projection_dead_letters: the runtime's
 * tables (also made by eventshop-history as-of in its own database, with the same shape). */
extern const char pj_offsets_ddl[], pj_dead_ddl[];
/* CREATE TABLE IF NOT EXISTS projection_versions: the version each live table set was built
 * with. */
extern const char pj_versions_ddl[];

/* "eventshop.<context>.<key>" (new string): named locks are server-wide, so the context is in
 * the name. */
char *pj_lock_name(const char *context, const char *key);
/* GET_LOCK(name, wait_s) on db. 0: held; ES_ETIMEOUT when someone else kept it; ES_EIO... */
int pj_lock(es_db_t *db, const char *name, int wait_s, es_err_t *err);
void pj_unlock(es_db_t *db, const char *name);
/* The next offsets stored under key (a projection's name, with its suffix) for topic's
 * partitions: a new JSON array of {part, next_offset}; for_update locks the rows until the
 * transaction ends. NULL with err. */
json_t *pj_offsets_load(es_db_t *db, const char *key, const char *topic, bool for_update,
                        es_err_t *err);
/* Stores next as the next offset of topic's partition part under key (in db's open transaction:
 * with the rows it covers). */
int pj_offset_store(es_db_t *db, const char *key, const char *topic, int32_t part, int64_t next,
                    es_err_t *err);
/* The next_offset of part in rows (borrowed: pj_offsets_load's {part, next_offset}); -1: none. */
int64_t pj_offsets_find(const json_t *rows, int32_t part);

/* pj_runtime_new, or with manual a rebuild's runtime, which reads every partition itself (no
 * group, no rebalance) from its stored offsets. */
pj_runtime_t *pj_runtime_create(const pj_projection_t *p, const pj_options_t *opt, bool manual,
                                es_err_t *err);

/* Steps of the consume loop. */
/* When positions must be reloaded from MariaDB (need_resync): reconnects and resyncs, or backs
 * off (pj_backoff) when that fails. Whether the loop may poll now. */
bool pj_ready(pj_runtime_t *rt);
/* How long the next poll may wait: idle, PJ_IDLE_POLL_MS; with a batch begun, 0. The batch is
 * adaptive: it takes what the consumer already holds and is flushed as soon as a poll finds
 * nothing more (a lone event goes at once), at batch_max, or linger_ms after its first event
 * while events keep coming. first_at is unused. */
int pj_poll_timeout(const pj_runtime_t *rt, long long first_at);
/* Takes message m (stolen, may be NULL) into the batch, *first_at set when it is the batch's
 * first. 1: batched; 0: dropped (from an old position, or at or past rt->limit); -1: no message
 * (NULL, or a consumer error, logged). */
int pj_take(pj_runtime_t *rt, es_kafka_msg_t *m, long long *first_at);
/* Applies the batch and stores the offsets in one transaction, under the projection's named
 * lock, after the batch in flight (if any) landed; returns with nothing in flight. 0: committed
 * (or nothing to do); -1: rolled back, to resync after a back-off; -2: the same, because the
 * stored offsets moved: resync at once. */
int pj_flush(pj_runtime_t *rt);
/* Decodes and applies one message in the open transaction; guarded: under a savepoint, an event
 * the projection rejects is undone alone and dead-lettered. 0: applied; 1: dead-lettered; 2:
 * rejected unguarded (the batch must be redone guarded); -1 with err: retry the batch. */
int pj_apply_one(pj_runtime_t *rt, es_kafka_msg_t *m, bool guarded, es_err_t *err);

/* Operator actions (pj_ops.c). */
/* Creates projection_status and projection_operations, reads operations.events from the
 * beginning to its end (pause state, dead-letter actions not yet done) and keeps reading it.
 * A missing topic is logged and leaves rt->ops NULL. 0, or -1 with err. */
int pj_ops_open(pj_runtime_t *rt, es_err_t *err);
/* Between batches: folds the actions that arrived, keeps projection_status current. Whether the
 * projection is paused. */
bool pj_ops_poll(pj_runtime_t *rt);
bool pj_ops_paused(const pj_runtime_t *rt);
/* Paused: the assignment paused, the consumer served for PJ_IDLE_POLL_MS, what it fetched
 * dropped (positions are reloaded on resume). */
void pj_ops_paused_wait(pj_runtime_t *rt);
/* Resumes the assigned partitions; positions reloaded before the next batch. */
void pj_ops_resume_consumer(pj_runtime_t *rt);
/* Upserts rt's row of projection_status (autocommit; a failure is logged). */
void pj_status_write(pj_runtime_t *rt, const char *state, const char *detail);
/* The same for key's row on db. */
void pj_status_put(es_db_t *db, const char *key, int version, const char *state,
                   const char *detail);
void pj_ops_close(pj_runtime_t *rt);

/* Shadow rebuilds (pj_rebuild.c), run by the live projector on a thread of their own when an
 * OperatorAction rebuild names its key: tables "<table><suffix>_rb<time>" replayed from offset
 * 0 beside the live ones, which keep serving; caught up to the live offsets under the live lock
 * and compared (row counts, and CHECKSUM TABLE when the columns are the same); left following
 * the log in state shadow_ready until a swap action (or swapped at once when the action said
 * swap when_equal and the comparison passed); swapped with pj_rebuild's one RENAME TABLE. One
 * replica runs it: the one that takes the rebuild lock and records the action id. */
struct pj_shadow;
/* Starts the shadow rebuild the action a (borrowed) asks; NULL when the thread cannot start. */
struct pj_shadow *pj_shadow_start(pj_runtime_t *rt, const json_t *a);
/* Asks the swap: at once when the shadow is ready, else as soon as it is. */
void pj_shadow_swap(struct pj_shadow *s);
/* Another rebuild action a (borrowed, copied) asked while s runs: true when s takes it, to record
 * it as refused (projection_operations) once s holds the rebuild lock and claimed its own action
 * (if s never does, another replica's rebuild runs and records it); false when s has ended (its
 * thread is joined: pj_shadow_over is then true, and a may start a rebuild of its own). */
bool pj_shadow_refuse(struct pj_shadow *s, const json_t *a);
/* Whether the shadow's thread has ended (swapped, failed, or run by another replica). */
bool pj_shadow_over(const struct pj_shadow *s);
bool pj_shadow_cancelled(const struct pj_shadow *s);
/* Once over: "shadow rebuild swapped in (asked by ...)", "... failed: ...", or "" (run by
 * another replica). */
const char *pj_shadow_outcome(const struct pj_shadow *s);
/* Cancels (an unswapped shadow's tables are dropped), joins and frees; NULL: nothing. */
void pj_shadow_free(struct pj_shadow *s);

/* At a live projector's start: the tables "<table><suffix>_rb<digits>" a rebuild left when its
 * process died (a shadow's or eventshop-projector --rebuild's), with their offsets and dead
 * letters, dropped, unless a rebuild holds the rebuild lock (it runs: they are its own). Best
 * effort: failures are logged. */
void pj_shadow_sweep(pj_runtime_t *rt);

/* Waits out the runtime's capped exponential back-off, serving the consumer with the assigned
 * partitions paused; returns early on rt->stop. */
void pj_backoff(pj_runtime_t *rt);

#endif
