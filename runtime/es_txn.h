/* es_txn — the one transactional producer loop both Kafka-transactional runtimes share (the
 * command handlers and the subscribers): consume a batch, produce what it decides, send the
 * consumed offsets, commit; on failure abort and rewind the consumer to the batch's first
 * offsets so it is read and decided again (DESIGN.md §4, LIBRARY-NOTES "Transactions").
 *
 * Every transactional call classifies its librdkafka error in one place:
 *  - retriable (a timeout, a coordinator moving): the call is retried in place with capped
 *    exponential backoff and jitter, for at most the transaction timeout;
 *  - abortable (anything else that is not fatal, and a retriable error that outlived the
 *    retries): ES_TXN_ABORT — call es_txn_abort, es_txn_rewind, then redo the batch after
 *    es_txn_backoff;
 *  - fatal: ES_TXN_LOST — the producer is unusable (its epoch was bumped after a broker outage
 *    longer than the transaction timeout, its state was lost): call es_txn_recreate, then
 *    rebuild whatever was derived from the lost transaction (rewind to the committed offsets
 *    with es_txn_rewind_committed; drop staged state) — or ES_TXN_FENCED when another live
 *    instance took the same transactional id: the caller must exit non-zero.
 * A fenced error while a transaction has been open for less than transaction.timeout.ms can
 * only come from another instance (the coordinator bumps the epoch on its own only when the
 * open transaction times out), so it is ES_TXN_FENCED; otherwise ES_TXN_LOST.
 *
 * Fault points (es_fault.h): "txn.before_commit=fail" makes es_txn_commit answer ES_TXN_ABORT
 * without committing (as an abortable broker error would); "txn.fatal_before_commit=fail"
 * raises a real fatal error on the producer (librdkafka's test_fatal_error) just before the commit,
 * so the commit answers ES_TXN_LOST.
 *
 * Not thread-safe: one es_txn_t belongs to the thread running the batch loop (its delivery
 * reports are served by the same thread's calls). */
#ifndef ES_TXN_H
#define ES_TXN_H

#include "es_err.h"
#include "es_kafka.h"
#include "es_metrics.h"
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_txn es_txn_t;

typedef enum es_txn_rc {
    ES_TXN_OK = 0,
    ES_TXN_ABORT,  /* abort, rewind, redo the batch */
    ES_TXN_LOST,   /* es_txn_recreate, then rebuild from the committed state */
    ES_TXN_FENCED, /* another instance owns the transactional id: exit */
} es_txn_rc_t;

typedef struct es_txn_config {
    const char *client_id;        /* client.id, borrowed during es_txn_new */
    const char *transactional_id; /* borrowed during es_txn_new */
    int timeout_ms; /* bounds each blocking call (default 30000); transaction.timeout.ms is
                       twice it */
    /* the caller's stop flag (may be NULL): retries and backoffs end early once it is set.
     * Borrowed, must outlive the es_txn_t. */
    const volatile sig_atomic_t *stop;
    /* counted on each commit / abort / producer recreation (each may be NULL); borrowed */
    es_metric_t *m_commits, *m_aborts, *m_recreates;
    /* called (on the caller's thread) at least every 50 ms while es_txn waits between retries,
     * backs off, waits out a full queue or makes the producer again, so a liveness probe sees
     * that the loop is not wedged. May be NULL. */
    void (*heartbeat)(void);
} es_txn_config_t;

/* Creates the transactional producer (murmur2_random, linger.ms 0) and calls
 * init_transactions, which fences any earlier instance with this id and aborts its open
 * transaction. cfg is copied. NULL with err on failure. */
es_txn_t *es_txn_new(const es_txn_config_t *cfg, es_err_t *err);
/* Flushes (bounded) and destroys the producer. NULL is a no-op. */
void es_txn_free(es_txn_t *t);

/* The producer, borrowed: valid until the next es_txn_recreate or es_txn_free (for admin calls
 * such as creating a topic; never for transactional calls, which go through es_txn). */
es_kafka_t *es_txn_producer(es_txn_t *t);

/* Destroys the producer and makes a new one with the same settings, calling init_transactions
 * (which finishes or aborts the lost transaction on the broker) and retrying with capped
 * backoff while the broker is away. Forgets the batch. Returns 0, or -1 with err once the stop
 * flag is set (the es_txn_t then has no producer: free it). */
int es_txn_recreate(es_txn_t *t, es_err_t *err);

/* --- the batch: what was consumed ------------------------------------------------------ */

/* Forgets the messages noted for the batch (call before gathering the next batch's offsets). */
void es_txn_batch_reset(es_txn_t *t);
/* Notes a consumed message (borrowed): its partition's first offset in the batch (for a rewind)
 * and the next offset to commit. */
void es_txn_batch_add(es_txn_t *t, const es_kafka_msg_t *msg);
/* Moves consumer (borrowed) back to the first noted message of each partition, so the batch is
 * read again. A partition revoked meanwhile fails to seek: its new owner starts from the
 * committed offset anyway (logged, not an error). */
void es_txn_rewind(es_txn_t *t, es_kafka_t *consumer);
/* Moves consumer (borrowed) to the committed offset of each partition it is assigned (the
 * beginning where none is committed): after ES_TXN_LOST, when what the lost transaction did is
 * unknown until the broker says. Returns 0 or -1 with err (retry later). */
int es_txn_rewind_committed(es_kafka_t *consumer, int timeout_ms, es_err_t *err);

/* --- the transaction --------------------------------------------------------------------- */

/* Begins a transaction. Delivery slots of the previous one are forgotten and late reports of
 * its messages are ignored. A state error (no transaction can begin) is ES_TXN_LOST. */
es_txn_rc_t es_txn_begin(es_txn_t *t, es_err_t *err);
/* Produces buf (stolen; NULL for a tombstone) of len bytes keyed by key (borrowed, key_len
 * bytes) to topic/partition (ES_KAFKA_PARTITION_ANY: by key) inside the open transaction, with
 * headers (stolen, may be NULL). A full local queue is waited out, at most timeout_ms. With slot
 * non-NULL the delivery is tracked and *slot is its index for es_txn_offset. Ownership of buf
 * and headers passes in every case. */
es_txn_rc_t es_txn_produce(es_txn_t *t, const char *topic, int32_t partition, const void *key,
                           size_t key_len, void *buf, size_t len, es_kafka_headers_t *headers,
                           size_t *slot, es_err_t *err);
/* Waits for every message produced in the transaction to be delivered (at most timeout_ms); a
 * tracked message not delivered is ES_TXN_ABORT. */
es_txn_rc_t es_txn_flush(es_txn_t *t, es_err_t *err);
/* The offset a tracked message got (valid after es_txn_flush answered ES_TXN_OK), or -1. */
int64_t es_txn_offset(const es_txn_t *t, size_t slot);
/* Sends the next offset of every noted partition, for consumer group (borrowed: es_kafka_group_of
 * the consumer, or es_kafka_group_new), in the transaction; once per transaction (a second call
 * does nothing). */
es_txn_rc_t es_txn_send_offsets(es_txn_t *t, const es_kafka_group_t *group, es_err_t *err);
/* Commits the transaction (counted in m_commits, resets the backoff). */
es_txn_rc_t es_txn_commit(es_txn_t *t, es_err_t *err);
/* Aborts the open transaction (counted in m_aborts, grows the backoff). ES_TXN_OK, or
 * ES_TXN_LOST / ES_TXN_FENCED when even the abort fails. */
es_txn_rc_t es_txn_abort(es_txn_t *t, es_err_t *err);

/* Sleeps the current backoff (0.2 s after the first abort, doubling to 5 s, with jitter; 0
 * after a commit) in slices of 50 ms so a stop is seen at once. Returns the seconds waited. */
double es_txn_backoff(es_txn_t *t);
/* Sleeps s seconds in slices of 50 ms, calling the heartbeat, ending early on a stop: the wait
 * between the attempts of a caller's own recovery loop. */
void es_txn_sleep(es_txn_t *t, double s);
/* The current backoff in seconds (for log lines). */
double es_txn_backoff_s(const es_txn_t *t);

/* --- one step of the loop ------------------------------------------------------------------ */

/* One batch of a transactional loop, the messages already noted (es_txn_batch_reset/_add). */
typedef struct es_txn_step {
    /* the batch's (borrowed): rewound after an abort; NULL: the caller rewinds (es_txn_rewind),
     * group must then be set (a step run on a thread other than the consumer's) */
    es_kafka_t *consumer;
    const es_kafka_group_t *group; /* its group for the offsets; NULL: es_kafka_group_of */
    size_t n;                      /* the batch's size and what it is made of ("commands"), */
    const char *what;              /* for the abort's log line */
    /* produces what the batch decides, in the open transaction: ES_TXN_OK or the failure */
    es_txn_rc_t (*work)(void *arg, es_err_t *err);
    void (*discard)(void *arg); /* forgets what work staged after a failure; may be NULL */
    void *arg;
} es_txn_step_t;

/* Begins a transaction, calls s->work, sends the noted offsets and commits. On a failure calls
 * s->discard; an abortable one is aborted (logged "aborting a batch of <n> <what>, retrying in
 * <backoff> s: <why>") and the consumer rewound, so that the batch is read again after
 * es_txn_backoff: ES_TXN_ABORT. ES_TXN_LOST / ES_TXN_FENCED (err set) when the producer is lost,
 * also when even the abort failed: the caller recovers (es_txn_recreate) or stops. */
es_txn_rc_t es_txn_step(es_txn_t *t, const es_txn_step_t *s, es_err_t *err);
/* For s->work: sends the batch's offsets now, for s's group, so that they travel while what work
 * produced is still in flight (the commit then sends them no more). Returns as es_txn_send_offsets.
 */
es_txn_rc_t es_txn_step_send_offsets(es_txn_t *t, const es_txn_step_t *s, es_err_t *err);

/* The settings of a transactional loop's consumer (client.id client),
 * es_kafka_read_committed_conf's and these: consumer group group, a static member instance when not
 * NULL (a restarted instance takes its partitions back at once instead of waiting for the session
 * of its dead predecessor to time out), session.timeout.ms 15000, no auto commit
 * (es_txn_send_offsets commits), read_committed, the earliest offset where none is committed,
 * partition EOF events with eof; then the "key", "value" pairs of extra (at most 4 pairs, may be
 * NULL). arg and rebalance (may be NULL) for the callbacks. NULL with err. */
es_kafka_conf_t *es_txn_consumer_conf(const char *client, const char *group, const char *instance,
                                      bool eof, const char *const *extra, void *arg,
                                      es_kafka_rebalance_fn rebalance, es_err_t *err);

/* Makes a role's consumer again after a fence: open(arg, err) makes a subscribed consumer (or
 * answers NULL with err, leaving nothing behind), retried with a capped backoff (0.2 s doubling
 * to 30 s) until it succeeds or the stop flag is set (then NULL). Logs "consumer of '<who>' made
 * again", or each failure. */
es_kafka_t *es_txn_remake_consumer(es_txn_t *t, const char *who,
                                   es_kafka_t *(*open)(void *arg, es_err_t *err), void *arg);

/* The end of a role's transactional loop (its heartbeat ended): with fatal set (its error
 * fatal_err) logs "<who> stops on a fatal error: <why>" and returns -1 with err; else logs
 * "<who> stopping", closes consumer (may be NULL) and returns 0. */
int es_txn_loop_end(const char *who, es_kafka_t *consumer, bool fatal, const es_err_t *fatal_err,
                    es_err_t *err);

/* --- error classification (pure, LIBRARY-NOTES "Transactions") -------------------------------- */

/* The outcome of a transactional call's error: fatal is ES_TXN_LOST (es_txn_fatal_outcome tells
 * a fence apart); one that requires an abort is ES_TXN_ABORT; a retriable one is ES_TXN_ABORT
 * with *retry set (call again, for at most the transaction timeout, then give up with other);
 * anything else is other, what a plain error means at that call (ES_TXN_ABORT for send_offsets
 * and commit, ES_TXN_LOST for abort). */
es_txn_rc_t es_txn_error_outcome(bool fatal, bool requires_abort, bool retriable, es_txn_rc_t other,
                                 bool *retry);
/* The outcome of the producer's fatal error code (librdkafka's) while its transaction has been
 * open for open_s seconds (0 when none is): a fence (fenced, producer fenced, invalid epoch)
 * within the transaction timeout can only come from another instance with the same
 * transactional id (ES_TXN_FENCED); later, or any other fatal error, the coordinator timed the
 * transaction out or the producer's state was lost (ES_TXN_LOST). */
es_txn_rc_t es_txn_fatal_outcome(int code, double open_s, int txn_timeout_ms);

/* Lower-case name of rc: "ok", "abort", "lost", "fenced". */
const char *es_txn_rc_name(es_txn_rc_t rc);

#endif
