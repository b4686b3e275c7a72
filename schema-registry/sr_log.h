/* sr_log — the registry's Kafka log (`_schemas`, one partition): a synchronous idempotent
 * producer for the store's writes and the replay that rebuilds the store at start. */
#ifndef SR_LOG_H
#define SR_LOG_H

#include "es_err.h"
#include "sr_store.h"

typedef struct sr_log sr_log_t;

/* A producer for topic (borrowed, copied): idempotent, acks=all. NULL with err. */
sr_log_t *sr_log_new(const char *topic, es_err_t *err);
void sr_log_free(sr_log_t *log);

/* An sr_store_log_fn (arg is the sr_log_t): produces key/value (borrowed; value NULL is a
 * tombstone) to partition 0 and returns once the broker acknowledged it (0), or failed (-1,
 * ES_EIO with err). Serialised internally. */
int sr_log_write(void *log, const char *key, const char *value, es_err_t *err);

/* The store the log's writes go to (borrowed, outlives log). A write whose delivery failed may
 * still have reached the log (a timeout during an outage): the next write then re-reads the log
 * into st first and fails (ES_EIO) without writing, so that its retry computes ids and versions
 * from what the log holds, never reusing an id the log already gave away. */
void sr_log_set_store(sr_log_t *log, sr_store_t *st);

/* Reads topic partition 0 from the start to its end into st. 0, or -1 with err. */
int sr_log_replay(const char *topic, sr_store_t *st, int timeout_ms, es_err_t *err);

#endif
