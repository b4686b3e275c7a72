/* hd_runtime — the generic command-handler runtime (DESIGN.md §2, §4): consumes
 * "<ctx>.commands" in the group "eventshop-<ctx>-handler", decides each command with the
 * context's pure decider against the aggregate's state, and writes the events ("<ctx>.events",
 * same partition as the command), the new states ("<ctx>.changelog") and one CommandResult per
 * command ("<ctx>.results") in ONE Kafka transaction per batch, together with the consumed
 * offsets. The states and the dedupe map (command_id -> first result) of each assigned partition
 * live in a store on local disk (hd_store), written after each commit with the changelog and
 * results offsets it reflects; on assignment only the topics' tails since those offsets are
 * replayed into it (everything, on an empty disk). The context's global views
 * (hd_view_t) are read from their beginning at start and caught up to the last stable offsets
 * before each batch is decided. Deciders never see Kafka. Two threads: the loop's gathers and
 * decides batch n+1 while a transaction thread writes batch n (its transaction, then its store
 * write); n+1 decides from what n staged and is dropped and read again with n if n fails. */
#ifndef HD_RUNTIME_H
#define HD_RUNTIME_H

#include "es_err.h"
#include "ev_codec.h"
#include "hd_context.h"
#include <jansson.h>

typedef struct hd_runtime hd_runtime_t;

/* Settings, each from the environment with a default (hd_runtime_config_init). */
typedef struct hd_runtime_config {
    int batch_max; /* EVENTSHOP_HANDLER_BATCH, default 500 */
    int linger_ms; /* EVENTSHOP_HANDLER_LINGER_MS, default 0 (adaptive: es_kafka_gather) */
    int recovery_timeout_ms; /* EVENTSHOP_HANDLER_RECOVERY_MS, default 60000 */
    /* EVENTSHOP_HANDLER_TXN_TIMEOUT_MS, default 30000, at least 1000: bounds each blocking call
     * of the transactional producer; transaction.timeout.ms is twice it (es_txn) */
    int txn_timeout_ms;
    int view_wait_ms;      /* EVENTSHOP_HANDLER_VIEW_WAIT_MS, default 10000: longest wait for
                              the views to catch up before a batch (then it is read again) */
    char instance_id[128]; /* EVENTSHOP_INSTANCE_ID, default the hostname */
    char state_dir[512];   /* EVENTSHOP_HANDLER_STATE_DIR: the folder of the state store (one
                              per process), default $TMPDIR/eventshop-handler-<ctx>-<instance> */
    int state_map_mb;      /* EVENTSHOP_HANDLER_STATE_MAP_MB, default 4096: the store's largest
                              size (a sparse file of that size) */
    int cache_max;         /* EVENTSHOP_HANDLER_CACHE, default 10000: decoded states cached in
                              front of the store (0: none) */
} hd_runtime_config_t;

void hd_runtime_config_init(hd_runtime_config_t *cfg);

/* Creates the consumer and the transactional producer (es_txn) and calls init_transactions. ctx
 * and codec are borrowed and must outlive the runtime (the codec's context must already be
 * registered); cfg is copied (NULL: from the environment). NULL with err on failure. */
hd_runtime_t *hd_runtime_new(const hd_context_t *ctx, ev_codec_t *codec,
                             const hd_runtime_config_t *cfg, es_err_t *err);
/* Runs the batch loop until hd_runtime_stop, then closes the consumer. An aborted batch is
 * rewound and decided again after a backoff; a lost transactional producer (fatal error, e.g.
 * after a broker outage longer than the transaction timeout) is made again, and every assigned
 * partition's state recovered and its consumer rewound to the committed offset, as on an
 * assignment. Returns 0 after a stop, -1 with err on a fatal error: fenced by another instance
 * with the same transactional id, a fatal consumer error, a state the schema refuses (the caller
 * exits non-zero; recovery makes a restart safe). */
int hd_runtime_run(hd_runtime_t *rt, es_err_t *err);
/* Asks the loop to finish its current batch and return. Async-signal-safe. */
void hd_runtime_stop(hd_runtime_t *rt);
void hd_runtime_free(hd_runtime_t *rt);

/* The event the runtime writes for the index-th (0-based) event of a decision: a deep copy of
 * payload (borrowed) with "metadata" set from the command's metadata cmd_meta (borrowed):
 * event_id = es_uuid_derive(command_id, index), aggregate_id, aggregate_version = version,
 * command_id, correlation_id, occurred_at = issued_at, actor. New reference. */
json_t *hd_event_stamp(const json_t *cmd_meta, const char *aggregate_id, size_t index,
                       json_int_t version, const json_t *payload);
/* hd_event_stamp without the copy: sets "metadata" of payload (borrowed, modified; a non-object
 * is left as it is, for the codec to refuse). For the runtime, whose decision owns its events'
 * payloads and drops them after encoding: copying every payload was a tenth of deciding. */
void hd_event_stamp_in(const json_t *cmd_meta, const char *aggregate_id, size_t index,
                       json_int_t version, json_t *payload);

#endif
