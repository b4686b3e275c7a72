/* es_kafka — the few Kafka helpers every role shares: one configuration builder (so every
 * producer uses the Java-compatible murmur2_random partitioner), topic names, error conversion,
 * and reading a partition up to its end (state recovery). */
#ifndef ES_KAFKA_H
#define ES_KAFKA_H

#include "es_err.h"
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* A new configuration with bootstrap.servers from EVENTSHOP_KAFKA_BROKERS, client.id,
 * partitioner=murmur2_random, the connection's security from the environment
 * (EVENTSHOP_KAFKA_SECURITY_PROTOCOL plaintext|ssl|sasl_ssl, default plaintext; for sasl_ssl
 * EVENTSHOP_KAFKA_SASL_MECHANISM, default SCRAM-SHA-512, EVENTSHOP_KAFKA_SASL_USERNAME and
 * EVENTSHOP_KAFKA_SASL_PASSWORD_FILE, the password only ever from that file; for ssl and sasl_ssl
 * EVENTSHOP_KAFKA_SSL_CA_FILE, default the system's CAs), then each "key", "value" pair of kv
 * (NULL-terminated list, may be NULL). A consumer's configuration (one with a group.id or
 * isolation.level key) gets no partitioner. Caller owns the result (or hands it to rd_kafka_new).
 * NULL with err (ES_EINVAL, naming the variable, never the password) on a bad key or a bad or
 * inconsistent security setting. */
rd_kafka_conf_t *es_kafka_conf_new(const char *client_id, const char *const *kv, es_err_t *err);
/* rd_kafka_new of type with conf, which it takes over in every case (destroyed on failure): the
 * client, or NULL with err (ES_EIO "kafka producer|consumer: <librdkafka's reason>"). */
rd_kafka_t *es_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, es_err_t *err);

/* "<context>.<kind>", e.g. es_topic(buf, sizeof buf, "catalog", "events"). Returns buf. */
const char *es_topic(char *buf, size_t size, const char *context, const char *kind);

/* Converts and destroys kerr (may be NULL: returns 0). ES_EFATAL if fatal, ES_EIO otherwise. */
int es_kafka_error(es_err_t *err, rd_kafka_error_t *kerr, const char *what);
int es_kafka_resp_error(es_err_t *err, rd_kafka_resp_err_t code, const char *what);

/* Fills err (ES_EFATAL) from the fatal error of consumer rk after a message with
 * RD_KAFKA_RESP_ERR__FATAL: a static member fenced by another with the same group.instance.id
 * gets a message saying two instances share that id. Returns -1. */
int es_kafka_consumer_fatal(rd_kafka_t *rk, es_err_t *err);

/* Reads topic/partition from its beginning up to the high watermark seen at the call
 * (read_committed, so aborted transactions are skipped), calling fn for each message in order.
 * fn returns 0 to go on, non-zero to stop with that value. Returns 0, fn's value, or -1 with err.
 * timeout_ms bounds the whole read. */
typedef int (*es_kafka_msg_fn)(const rd_kafka_message_t *msg, void *arg);
int es_kafka_read_partition(const char *topic, int32_t partition, es_kafka_msg_fn fn, void *arg,
                            int timeout_ms, es_err_t *err);

/* Number of partitions of topic, or -1 with err. */
int es_kafka_partition_count(rd_kafka_t *rk, const char *topic, es_err_t *err);
/* Whether the fatal fence of static consumer member rk (borrowed) means a twin instance with
 * the same group.instance.id. A broker outage fences a member once, when librdkafka's own rejoin
 * races its old member id; so a fence is an outage's when a client of this process lost or failed
 * to reach a broker (error callback, set by es_kafka_conf_new) within 120 s before now_s and
 * after the consumer was last made again (last_remake_s, 0 if never), and a twin's otherwise.
 * Twins fence each other back at once, with no broker trouble in between. When not a twin it
 * logs why the caller makes the consumer again. Times are es_mono_s(). */
bool es_kafka_fence_is_twin(rd_kafka_t *rk, double last_remake_s, double now_s);

/* Assigns parts (a group assignment, in a rebalance callback) at their committed offsets, fetched
 * here with retries for up to timeout_ms (until *stop), the earliest where none is committed.
 * Left to itself, librdkafka 2.0.2 fetches them once: a "not coordinator" answer from a broker
 * just back from a hang left the partitions assigned and never fetched, a handler wedged while
 * ready. heartbeat (may be NULL) is called between attempts. 0, or -1 with err (nothing
 * assigned). Fault point kafka.committed fails an attempt. */
int es_kafka_assign_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                              int timeout_ms, volatile sig_atomic_t *stop, void (*heartbeat)(void),
                              es_err_t *err);
/* Whether a broker answers a metadata request of rk (borrowed) within timeout_ms: the cheap
 * check behind a role's "kafka" readiness dependency. */
bool es_kafka_reachable(rd_kafka_t *rk, int timeout_ms);

/* Value of header name in msg as a new NUL-terminated string (caller frees), or NULL. */
char *es_kafka_header_dup(const rd_kafka_message_t *msg, const char *name);

#endif
