/* api_producer — the API's one idempotent (non-transactional) Kafka producer of commands, with a
 * thread that serves its delivery reports and watches broker reachability for /readyz. */
#ifndef API_PRODUCER_H
#define API_PRODUCER_H

#include "es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_producer api_producer_t;

/* Called once per message on the producer's thread: ok, or the delivery error's text. */
typedef void (*api_delivered_fn)(void *opaque, bool ok, const char *error);

/* A producer with enable.idempotence, acks=all, the murmur2_random partitioner. NULL with err. */
api_producer_t *api_producer_new(const char *client_id, es_err_t *err);
/* Flushes (bounded) and frees; NULL is a no-op. */
void api_producer_free(api_producer_t *p);

/* Queues value (copied) on topic with key (copied, the aggregate id) and a traceparent header
 * (may be NULL). fn(opaque, ...) is called exactly once if this returns 0; never if it fails
 * (-1 with err, ES_EIO when the queue is full or the producer failed). */
int api_producer_send(api_producer_t *p, const char *topic, const char *key, const void *value,
                      size_t len, const char *traceparent, api_delivered_fn fn, void *opaque,
                      es_err_t *err);

/* Asks the broker now (no cache), on the producer's handle, about partition of topic: sets
 * *partitions to the topic's partition count and, when partition is one of them, *high to its
 * high watermark (the offset the next message will get). Blocks the caller for at most about
 * twice timeout_ms (a metadata request, then a watermark request). Returns 0; ES_ENOTFOUND with
 * err when the topic does not exist or partition is outside it; ES_EIO when the broker did not
 * answer. */
int api_producer_high_watermark(api_producer_t *p, const char *topic, int32_t partition,
                                int *partitions, int64_t *high, int timeout_ms, es_err_t *err);

/* The producer's client, lent for readings any client can make (watermarks, a group's committed
 * offsets: es_kafka.h) so that they cost no client of their own; the producer keeps it. */
struct rd_kafka_s *api_producer_client(api_producer_t *p);

/* true once a broker answered metadata within the last few seconds. */
bool api_producer_is_ready(api_producer_t *p);

#endif
