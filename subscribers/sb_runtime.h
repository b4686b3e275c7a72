/* CHANGE NOTE (orders helper): one additive function, sb_runtime_replay_dead_letters (the
 * operator's `eventshop-subscriber <name> --replay-dead-letters`). The runtime also creates
 * "<name>.deadletter" itself at start. Outputs of a tick get ids derived from their content
 * (the same tick output twice is the same command). On an aborted batch the events are
 * handled again: handle must tolerate seeing an event twice.
 *
 * sb_runtime — the generic event-subscriber runtime (DESIGN.md §4: payments, notifications,
 * shipping, the order saga). A subscriber reads event topics (read_committed, consumer group
 * eventshop-<name>-subscriber) and, per batch, in ONE Kafka transaction with the consumed
 * offsets, produces the commands (and any events of its own) its handler asked for. So its
 * Kafka effects are exactly-once; effects outside Kafka (a card charge, an e-mail) are made
 * idempotent by the handler with keys derived from the event (gateway Idempotency-Key,
 * a sent-notification record), since a crash may deliver an event again.
 *
 * The transactional steps are runtime/es_txn's: an aborted batch is rewound and handled again
 * after a backoff; a lost producer (fatal error) is made again and the consumer rewound to its
 * committed offsets; only a fence by another instance with the same transactional id stops the
 * runtime with an error.
 *
 * Handlers are called on the runtime's thread, one event at a time, in partition order. */
#ifndef SB_RUNTIME_H
#define SB_RUNTIME_H

#include "es_err.h"
#include <jansson.h>

typedef struct sb_runtime sb_runtime_t;

/* What a handler asks for, collected by the runtime and written in the batch's transaction. */
typedef struct sb_out sb_out_t;
/* A command for context ctx ("orders", "payments", ...): command_type is the record full name,
 * aggregate_id its key, fields the command without metadata (stolen). The runtime fills
 * CommandMetadata (command_id derived from the triggering event id and index, so a redelivered
 * event gives the same command ids and the handler's dedupe absorbs them; correlation_id from
 * the event; actor = the subscriber's service identity with role admin) and the traceparent. */
void sb_out_command(sb_out_t *out, const char *ctx, const char *command_type,
                    const char *aggregate_id, json_t *fields);
/* An event of the subscriber's own (e.g. NotificationSent on "notifications.events"): event_type
 * is the record full name, aggregate_id its key, payload without metadata (stolen). The runtime
 * stamps the metadata (event_id derived from the triggering event's id and index,
 * aggregate_version 1) and writes it in the batch's transaction. */
void sb_out_event(sb_out_t *out, const char *topic, const char *event_type,
                  const char *aggregate_id, json_t *payload);
/* A message that could not be processed: goes to "<name>.deadletter" with the reason, counted
 * in eventshop_dead_letters_total{subscriber}; processing goes on. */
void sb_out_dead_letter(sb_out_t *out, const char *reason);
/* Where the event being handled was read: its topic (borrowed, valid during handle), partition
 * and offset; topic NULL and partition/offset -1 outside handle (a tick). For a subscriber that
 * keeps its own per-partition progress (the saga's deadline table). */
void sb_out_source(const sb_out_t *out, const char **topic, int *partition, long long *offset);

typedef struct sb_subscriber {
    const char *name; /* "order-saga", "payments", "notifications", "shipping" */
    const char *const
        *topics; /* NULL-terminated: e.g. {"orders.events", "payments.events", NULL} */
    void *(*init)(es_err_t *err); /* the handler's state (clients, DB), NULL on error */
    /* Instead of init when set: the same, given the runtime (borrowed, outlives the state) for
     * sb_runtime_read_history. */
    void *(*init_with)(sb_runtime_t *rt, es_err_t *err);
    void (*release)(void *state);
    /* Handles one decoded event (borrowed). Returns 0, or -1 with err for a transient failure
     * (ES_EIO: the batch is aborted and retried with backoff). */
    int (*handle)(void *state, const char *event_type, const json_t *event, const char *traceparent,
                  sb_out_t *out, es_err_t *err);
    /* Called about once a second between batches (deadlines); may be NULL. now_ms is wall time. */
    int (*tick)(void *state, long long now_ms, sb_out_t *out, es_err_t *err);
    /* May be NULL. Called from the consumer group's rebalance, once per subscribed topic, with
     * the partitions of topic this instance now owns (partitions borrowed; n 0 when revoked),
     * before any event of a new assignment is handled. */
    void (*assigned)(void *state, const char *topic, const int *partitions, size_t n);
} sb_subscriber_t;

sb_runtime_t *sb_runtime_new(const sb_subscriber_t *sub, es_err_t *err);
int sb_runtime_run(sb_runtime_t *rt, es_err_t *err); /* until sb_runtime_stop */
void sb_runtime_stop(sb_runtime_t *rt);              /* async-signal-safe */
/* Re-processes every message of "<name>.deadletter" not yet replayed (consumer group
 * eventshop-<name>-deadletter-replay) up to the end seen at the call, through handle, in
 * transactions like sb_runtime_run; a message failing again goes to the dead-letter topic
 * again (after the end, so it is not replayed twice in one call). *replayed (may be NULL) gets
 * the number of messages read. Returns 0 or -1 with err. */
int sb_runtime_replay_dead_letters(sb_runtime_t *rt, long *replayed, es_err_t *err);
void sb_runtime_free(sb_runtime_t *rt);

/* Called by sb_runtime_read_history for each decoded event (borrowed) at offset. 0 to go on,
 * non-zero to stop with that value. */
typedef int (*sb_history_fn)(void *arg, const char *event_type, const json_t *event,
                             long long offset, es_err_t *err);
/* Reads topic/partition from its beginning to its end (read_committed), decoding each event
 * with the runtime's codec and calling fn; tombstones and undecodable records (the live consumer
 * dead-letters those) are skipped. *next gets the offset after the last record read (0 when
 * none). For a subscriber that rebuilds its own state from history once (the saga). 0, fn's
 * value, or -1 with err (ES_EIO when the registry could not decode). */
int sb_runtime_read_history(sb_runtime_t *rt, const char *topic, int partition, sb_history_fn fn,
                            void *arg, int timeout_ms, long long *next, es_err_t *err);

#endif
