/* api_stream_hub — the one Kafka consumer of an API process that feeds every GET /v1/stream.
 *
 * A thread assigns itself every partition of "<ctx>.events" of the served contexts (no group,
 * read_committed) at their last stable offsets when it starts, and appends each record, as
 * Confluent-framed bytes with its position, to a bounded ring (API_STREAM_RING_ENTRIES records and
 * API_STREAM_RING_BYTES bytes, the oldest evicted first), then wakes the streams that watch it.
 * The ring covers partition p from covered_from[p]: every committed record of p at or after that
 * offset that the consumer has fetched is in the ring. A stream whose cursor is at or past
 * covered_from for each of its partitions reads the ring; an older one catches up with a reader of
 * its own first (api_stream.c). Partitions are numbered 0..n-1 across contexts, in ES_CONTEXTS
 * order and then by partition. */
#ifndef API_STREAM_HUB_H
#define API_STREAM_HUB_H

#include "es_err.h"
#include "es_http.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_STREAM_RING_ENTRIES 8192
#define API_STREAM_RING_BYTES   (16u << 20)

typedef struct api_stream_hub api_stream_hub_t;

/* One record copied out of the ring (value owned by the copy: api_stream_hub_records_free). */
struct api_stream_record {
    int part; /* the hub's partition number */
    int64_t offset;
    void *value; /* NULL for a tombstone */
    size_t len;
};

/* A reader of the hub's records beside the streams (the API cache, api_cache.h), called on the
 * hub's thread: start once, when the partitions are assigned, with each partition's context index,
 * Kafka partition and the offset the hub starts from (n of them, by partition number); then record
 * for each committed record, in offset order per partition (key and value borrowed for the call,
 * value NULL for a tombstone). */
struct api_stream_sink {
    void (*start)(void *arg, int n, const int *ctx, const int32_t *partition,
                  const int64_t *offset);
    void (*record)(void *arg, int part, int64_t offset, const void *key, size_t key_len,
                   const void *value, size_t len);
    void *arg;
};

/* Starts the thread for contexts (n names, copied), feeding sink too (copied; NULL: none). Never
 * NULL: Kafka is reached in the background, and api_stream_hub_ready says when the partitions are
 * known. */
api_stream_hub_t *api_stream_hub_new(const char (*contexts)[32], size_t n,
                                     const struct api_stream_sink *sink);
void api_stream_hub_free(api_stream_hub_t *hub); /* NULL is a no-op */

/* Whether the partitions are known and assigned (streams may start). */
bool api_stream_hub_ready(api_stream_hub_t *hub);
/* The number of partitions (ready hub), the context index (into the contexts given) and the
 * Kafka partition of partition number part, and the number of part for (ctx, partition) or -1. */
int api_stream_hub_count(api_stream_hub_t *hub);
void api_stream_hub_part(api_stream_hub_t *hub, int part, int *ctx, int32_t *partition);
int api_stream_hub_find(api_stream_hub_t *hub, int ctx, int32_t partition);

/* "Now": fills cursor[0..count) with, for each partition, the offset after the last record the
 * ring holds (or covered_from when none), and returns the ring's end (the sequence number the next
 * record will get). Reading from that sequence with that cursor gives what comes after now. */
uint64_t api_stream_hub_now(api_stream_hub_t *hub, int64_t *cursor);
/* Whether the ring covers cursor[p] for every partition p with want[p] set. */
bool api_stream_hub_covers(api_stream_hub_t *hub, const int64_t *cursor, const bool *want);
/* The offset from which the ring holds partition part. */
int64_t api_stream_hub_covered_from(api_stream_hub_t *hub, int part);
/* The ring's oldest sequence number. */
uint64_t api_stream_hub_first(api_stream_hub_t *hub);

/* Copies into out (up to max records and about max_bytes) the records from sequence *seq on
 * whose partition is in want, and moves *seq past what it looked at. Returns how many; -1 when
 * *seq was evicted already (the reader fell behind the ring). *at_end tells whether *seq is the
 * ring's end after the call. */
int api_stream_hub_read(api_stream_hub_t *hub, uint64_t *seq, const bool *want,
                        struct api_stream_record *out, int max, size_t max_bytes, bool *at_end);
void api_stream_hub_records_free(struct api_stream_record *recs, int n);

/* Wakes w (borrowed; api_stream_hub_unwatch before freeing it) after each batch appended. */
void api_stream_hub_watch(api_stream_hub_t *hub, es_http_waker_t *w);
void api_stream_hub_unwatch(api_stream_hub_t *hub, es_http_waker_t *w);

#endif
