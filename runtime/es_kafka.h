/* es_kafka — every Kafka client of the engine, through one door: configuration from the
 * environment (so every producer uses the Java-compatible murmur2_random partitioner), clients,
 * a synchronous or asynchronous idempotent producer, a consumer (subscribe or assign, poll into
 * es_kafka_msg_t, positions, seeks, commits, watermarks), topic names, error conversion and
 * reading a partition up to its end (state recovery). The transactional producer is es_txn.h.
 *
 * librdkafka stays behind this header: its handles are opaque here, messages are read through
 * es_kafka_msg_t and partition lists are es_kafka_parts_t. Error codes (an int: 0 for none, the
 * ES_KAFKA_ERR_* below) are librdkafka's; es_kafka_err_str names them. */
#ifndef ES_KAFKA_H
#define ES_KAFKA_H

#include "es_err.h"
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rd_kafka_s es_kafka_t;                               /* a client */
typedef struct es_kafka_conf es_kafka_conf_t;                       /* its settings */
typedef struct rd_kafka_headers_s es_kafka_headers_t;               /* headers to produce */
typedef struct rd_kafka_consumer_group_metadata_s es_kafka_group_t; /* for es_txn */

typedef enum es_kafka_type { ES_KAFKA_PRODUCER, ES_KAFKA_CONSUMER } es_kafka_type_t;

/* librdkafka's codes and logical offsets used by the roles (checked against rdkafka.h) */
#define ES_KAFKA_ERR_FATAL             (-150)
#define ES_KAFKA_ERR_NO_OFFSET         (-168)
#define ES_KAFKA_ERR_REVOKE_PARTITIONS (-174)
#define ES_KAFKA_ERR_ASSIGN_PARTITIONS (-175)
#define ES_KAFKA_ERR_PARTITION_EOF     (-191)
#define ES_KAFKA_ERR_MSG_TIMED_OUT     (-192)
#define ES_KAFKA_OFFSET_BEGINNING      (-2)
#define ES_KAFKA_OFFSET_END            (-1)
#define ES_KAFKA_PARTITION_ANY         (-1) /* produce: by key; subscribe: every partition */

/* The text of code (static). */
const char *es_kafka_err_str(int code);

/* --- partition lists -------------------------------------------------------------------- */

typedef struct es_kafka_part {
    char *topic; /* owned by the list */
    int32_t partition;
    int64_t offset; /* -1001 (invalid) when added */
    int err;
} es_kafka_part_t;

typedef struct es_kafka_parts {
    int cnt, size;
    es_kafka_part_t *elems;
} es_kafka_parts_t;

es_kafka_parts_t *es_kafka_parts_new(int size);
/* Adds topic/partition (offset invalid, err 0); the element is valid until the next add. */
es_kafka_part_t *es_kafka_parts_add(es_kafka_parts_t *l, const char *topic, int32_t partition);
es_kafka_part_t *es_kafka_parts_find(const es_kafka_parts_t *l, const char *topic,
                                     int32_t partition);
es_kafka_parts_t *es_kafka_parts_copy(const es_kafka_parts_t *l);
void es_kafka_parts_free(es_kafka_parts_t *l); /* NULL is a no-op */

/* --- configuration and clients ----------------------------------------------------------- */

/* A new configuration with bootstrap.servers from EVENTSHOP_KAFKA_BROKERS, client.id,
 * partitioner=murmur2_random, the connection's security from the environment
 * (EVENTSHOP_KAFKA_SECURITY_PROTOCOL plaintext|ssl|sasl_ssl, default plaintext; for sasl_ssl
 * EVENTSHOP_KAFKA_SASL_MECHANISM, default SCRAM-SHA-512, EVENTSHOP_KAFKA_SASL_USERNAME and
 * EVENTSHOP_KAFKA_SASL_PASSWORD_FILE, the password only ever from that file; for ssl and sasl_ssl
 * EVENTSHOP_KAFKA_SSL_CA_FILE, default the system's CAs), then each "key", "value" pair of kv
 * (NULL-terminated list, may be NULL). A consumer's configuration (one with a group.id or
 * isolation.level key) gets no partitioner. Caller owns the result (or hands it to es_kafka_new).
 * NULL with err (ES_EINVAL, naming the variable, never the password) on a bad key or a bad or
 * inconsistent security setting. */
es_kafka_conf_t *es_kafka_conf_new(const char *client_id, const char *const *kv, es_err_t *err);
es_kafka_conf_t *es_kafka_conf_dup(const es_kafka_conf_t *conf);
void es_kafka_conf_free(es_kafka_conf_t *conf); /* NULL is a no-op */
/* The value of property key in conf into buf (size bytes); false when unset or too long. */
bool es_kafka_conf_get(const es_kafka_conf_t *conf, const char *key, char *buf, size_t size);

/* A consumer's rebalance: code ES_KAFKA_ERR_ASSIGN_PARTITIONS (then assign parts, e.g. with
 * es_kafka_assign), ES_KAFKA_ERR_REVOKE_PARTITIONS or another error (then es_kafka_assign(rk,
 * NULL)). parts is borrowed for the call; its offsets may be changed before assigning it. */
typedef void (*es_kafka_rebalance_fn)(es_kafka_t *rk, int code, es_kafka_parts_t *parts, void *arg);
/* The outcome of an asynchronous es_kafka_commit (code, or each element's err). */
typedef void (*es_kafka_committed_fn)(es_kafka_t *rk, int code, const es_kafka_parts_t *offsets,
                                      void *arg);
/* arg is what the callbacks get, and es_kafka_arg answers. */
void es_kafka_conf_set_arg(es_kafka_conf_t *conf, void *arg);
void es_kafka_conf_on_rebalance(es_kafka_conf_t *conf, es_kafka_rebalance_fn fn);
void es_kafka_conf_on_committed(es_kafka_conf_t *conf, es_kafka_committed_fn fn);

/* A client of type with conf, which it takes over in every case (freed on failure): the client,
 * or NULL with err (ES_EIO "kafka producer|consumer: <librdkafka's reason>"). A consumer's main
 * queue is redirected to its consumer queue (poll it with es_kafka_poll only). */
es_kafka_t *es_kafka_new(es_kafka_type_t type, es_kafka_conf_t *conf, es_err_t *err);
/* The arg of the client's configuration. */
void *es_kafka_arg(es_kafka_t *rk);
/* Leaves a consumer's group (revoking its partitions through the rebalance callback). */
void es_kafka_close(es_kafka_t *rk);
/* Destroys the client. NULL is a no-op. */
void es_kafka_destroy(es_kafka_t *rk);
/* Serves a producer's delivery reports and callbacks for up to timeout_ms; never on a consumer
 * (LIBRARY-NOTES: it aborts the process once a fetched message is queued). */
void es_kafka_serve(es_kafka_t *rk, int timeout_ms);
/* Waits for everything queued by a producer to be delivered: 0, or the error code. */
int es_kafka_flush(es_kafka_t *rk, int timeout_ms);
/* The client's fatal error code (0: none), its text in buf when buf is not NULL. */
int es_kafka_fatal_error(es_kafka_t *rk, char *buf, size_t size);

/* --- the idempotent producer -------------------------------------------------------------- */

/* A producer with enable.idempotence, acks=all, linger.ms and message.timeout.ms (which bounds
 * the wait for a delivery report): the API's and the registry's. NULL with err. */
es_kafka_t *es_kafka_idempotent_new(const char *client_id, int linger_ms, int timeout_ms,
                                    es_err_t *err);
/* Called once per message of es_kafka_produce, from es_kafka_serve or es_kafka_flush: ok, or the
 * delivery error's text. */
typedef void (*es_kafka_delivered_fn)(void *opaque, bool ok, const char *error);
/* Queues value (copied, may be NULL) with key (copied) and, when traceparent is not NULL, a
 * traceparent header, on topic/partition (ES_KAFKA_PARTITION_ANY: by key) of idempotent producer
 * p. fn(opaque, ...) is called exactly once if this returns 0; never otherwise (the error code
 * is returned: a full queue, an unknown partition, ...). */
int es_kafka_produce(es_kafka_t *p, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t len, const char *traceparent,
                     es_kafka_delivered_fn fn, void *opaque);
/* es_kafka_produce, then serves p until the delivery report came (at the latest after
 * message.timeout.ms): 0 or the error code. */
int es_kafka_produce_sync(es_kafka_t *p, const char *topic, int32_t partition, const void *key,
                          size_t key_len, const void *value, size_t len);

/* Headers of a message to produce (es_txn_produce). */
es_kafka_headers_t *es_kafka_headers_new(size_t count);
/* Adds name: value (NUL-terminated, copied). */
void es_kafka_header_add(es_kafka_headers_t *h, const char *name, const char *value);
void es_kafka_headers_free(es_kafka_headers_t *h); /* NULL is a no-op */

/* --- the consumer -------------------------------------------------------------------------- */

/* A consumed message, or a consumer's event (err non-zero: ES_KAFKA_ERR_PARTITION_EOF at the end
 * of a partition, ES_KAFKA_ERR_FATAL, another error; errstr says what). value is NULL for a
 * tombstone. Fields are valid until es_kafka_msg_free. */
typedef struct es_kafka_msg {
    int err;
    const char *errstr; /* "" when err is 0 */
    const char *topic;  /* NULL for an error not tied to a partition */
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t len;
    int64_t timestamp_ms; /* -1 when unknown */
    struct rd_kafka_message_s *raw;
} es_kafka_msg_t;

/* The next message or event of consumer rk, waiting up to timeout_ms; NULL when none. */
es_kafka_msg_t *es_kafka_poll(es_kafka_t *rk, int timeout_ms);
void es_kafka_msg_free(es_kafka_msg_t *m); /* NULL is a no-op */
/* Up to max (at most ES_KAFKA_BATCH_MAX) messages or events of consumer rk into msgs, in the order
 * es_kafka_poll would give them: those already fetched without waiting, else the first to come
 * within timeout_ms. The number filled (0: none came). A reader's loop: librdkafka's queue lock
 * and clock are taken once a batch rather than once a message, and nothing is allocated. Each
 * filled element is valid until es_kafka_msgs_release(msgs, n). */
#define ES_KAFKA_BATCH_MAX 512
size_t es_kafka_poll_batch(es_kafka_t *rk, int timeout_ms, es_kafka_msg_t *msgs, size_t max);
void es_kafka_msgs_release(es_kafka_msg_t *msgs, size_t n);
/* Value of header name in msg as a new NUL-terminated string (caller frees), or NULL. */
char *es_kafka_header_dup(const es_kafka_msg_t *msg, const char *name);

/* How es_kafka_gather collects a batch. The flags are the caller's (borrowed). Batching is
 * adaptive: once the first message came (and linger_ms passed, 0 by default), every message the
 * client has already fetched joins the batch, up to max, and nothing more is waited for. Alone, a
 * message goes through at once; under load, what arrived while the last batch was being written
 * fills the next one. */
typedef struct es_kafka_gather {
    size_t max;                        /* at most this many messages */
    int wait_ms;                       /* for the first message; -1: until one comes (or a stop) */
    int linger_ms;                     /* waited for more after the first came (0: none) */
    const volatile sig_atomic_t *stop; /* set: return now (with what was gathered) */
    const bool *failed;                /* the same (the caller's fatal error) */
    /* set by the caller's rebalance callback: what was gathered is dropped (the new assignment
     * reads from the committed offsets); cleared when the gathering starts */
    bool *rebalanced;
} es_kafka_gather_t;

/* Gathers messages of consumer rk into msgs (each freed by the caller) as g says. Consumer errors
 * are logged ("consumer: <why>"), except a partition's end. Returns how many; 0 with *fatal set
 * (and nothing gathered) on a fatal consumer error (es_kafka_consumer_fatal tells it). */
size_t es_kafka_gather(es_kafka_t *rk, const es_kafka_gather_t *g, es_kafka_msg_t **msgs,
                       bool *fatal);

/* Subscribes rk to every partition of the n topics: 0 or the error code. */
int es_kafka_subscribe(es_kafka_t *rk, const char *const *topics, int n);
/* Assigns parts (NULL: unassigns): 0 or the error code. */
int es_kafka_assign(es_kafka_t *rk, const es_kafka_parts_t *parts);
/* The current assignment into *parts (a new list, also on failure when the code is 0): 0 or
 * the error code. */
int es_kafka_assignment(es_kafka_t *rk, es_kafka_parts_t **parts);
int es_kafka_pause(es_kafka_t *rk, const es_kafka_parts_t *parts); /* parts NULL: nothing */
int es_kafka_resume(es_kafka_t *rk, const es_kafka_parts_t *parts);
/* Fills each element's offset with the consumer's position (the next offset it will give; -1001
 * when none) / the group's committed offset (asks the broker) / the first offset at or after the
 * element's offset taken as a timestamp in ms (ES_KAFKA_OFFSET_END: the end). Each element's err
 * is set. 0 or the error code. */
int es_kafka_position(es_kafka_t *rk, es_kafka_parts_t *parts);
int es_kafka_committed(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms);
int es_kafka_offsets_for_times(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms);
/* Fills each element's offset with group's committed offset (-1001 when none) and its err, asking
 * the group's coordinator with the admin API: any client can ask, a producer too, without joining
 * or naming the group in its configuration. 0, or -1 with err when the broker did not answer in
 * timeout_ms or refused. */
int es_kafka_group_committed(es_kafka_t *rk, const char *group, es_kafka_parts_t *parts,
                             int timeout_ms, es_err_t *err);
/* Commits parts' offsets to the group, asynchronously with async (es_kafka_conf_on_committed
 * tells the outcome): 0 or the error code. */
int es_kafka_commit(es_kafka_t *rk, const es_kafka_parts_t *parts, bool async);
/* Seeks each element of parts to its offset, setting each element's err: 0, or -1 with err. */
int es_kafka_seek(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms, es_err_t *err);
/* The low and high watermarks of topic/partition as last seen by rk's fetches (no request) /
 * asked of the broker now: 0 or the error code. */
int es_kafka_watermarks(es_kafka_t *rk, const char *topic, int32_t partition, int64_t *lo,
                        int64_t *hi);
int es_kafka_query_watermarks(es_kafka_t *rk, const char *topic, int32_t partition, int64_t *lo,
                              int64_t *hi, int timeout_ms);
/* The consumer group of rk (after a subscribe or with a group.id), or of group by name, for
 * es_txn_send_offsets. Free with es_kafka_group_free. */
es_kafka_group_t *es_kafka_group_of(es_kafka_t *rk);
es_kafka_group_t *es_kafka_group_new(const char *group);
void es_kafka_group_free(es_kafka_group_t *g);

/* --- shared helpers ------------------------------------------------------------------------- */

/* "<context>.<kind>", e.g. es_topic(buf, sizeof buf, "catalog", "events"). Returns buf. */
const char *es_topic(char *buf, size_t size, const char *context, const char *kind);

/* Sets err from code (0: returns 0). ES_EFATAL if fatal, ES_EIO otherwise; -1. */
int es_kafka_resp_error(es_err_t *err, int code, const char *what);

/* Fills err (ES_EFATAL) from the fatal error of consumer rk after a message with
 * ES_KAFKA_ERR_FATAL: a static member fenced by another with the same group.instance.id
 * gets a message saying two instances share that id. Returns -1. */
int es_kafka_consumer_fatal(es_kafka_t *rk, es_err_t *err);

/* The settings of a read_committed consumer, the one place they are written: es_kafka_conf_new
 * (client_id) with isolation.level=read_committed, enable.auto.commit=false (the offsets are the
 * caller's to keep: a transaction, a table or none), auto.offset.reset=earliest, group.id group
 * and enable.partition.eof eof, then the "key", "value" pairs of kv (NULL-terminated, may be NULL;
 * a key already set is overridden). Caller owns the result. NULL with err. */
es_kafka_conf_t *es_kafka_read_committed_conf(const char *client_id, const char *group, bool eof,
                                              const char *const *kv, es_err_t *err);

/* A consumer for reading by assign (es_kafka_assign at explicit offsets): read_committed, no
 * commits, a partition's end reported (ES_KAFKA_ERR_PARTITION_EOF), short fetch waits (10 ms: the
 * end of a partition is seen at once), group.id and client.id client_id. NULL with err. */
es_kafka_t *es_kafka_reader_new(const char *client_id, es_err_t *err);
/* The same, then the "key", "value" pairs of kv (NULL-terminated, may be NULL): a reader tuned by
 * its caller (e.g. larger local queues). */
es_kafka_t *es_kafka_reader_new_with(const char *client_id, const char *const *kv, es_err_t *err);

/* Reads topic/partition from its beginning up to the high watermark seen at the call
 * (read_committed, so aborted transactions are skipped), calling fn for each message in order.
 * fn returns 0 to go on, non-zero to stop with that value. Returns 0, fn's value, or -1 with err.
 * timeout_ms bounds the whole read. */
typedef int (*es_kafka_msg_fn)(const es_kafka_msg_t *msg, void *arg);
int es_kafka_read_partition(const char *topic, int32_t partition, es_kafka_msg_fn fn, void *arg,
                            int timeout_ms, es_err_t *err);
/* The same from span->start on (the low watermark when below it), filling span->lo and span->hi
 * with the watermarks seen at the call. A start past the high watermark (the topic was made
 * again) reads nothing: -1 with err ES_ECONFLICT. */
typedef struct es_kafka_span {
    int64_t start, lo, hi;
} es_kafka_span_t;
int es_kafka_read_partition_from(const char *topic, int32_t partition, es_kafka_span_t *span,
                                 es_kafka_msg_fn fn, void *arg, int timeout_ms, es_err_t *err);

/* Reads the records at offsets[0..n) (ascending) of topic/partition (read_committed), calling fn
 * for each in order; an offset with no record to read is passed over, seeking instead of reading
 * across long gaps. fn returns as for es_kafka_read_partition. Returns 0, fn's value, or -1 with
 * err (ES_ENOTFOUND when an offset lies past the end, ES_ETIMEOUT past timeout_ms). offsets
 * borrowed. */
int es_kafka_read_offsets(const char *topic, int32_t partition, const int64_t *offsets, size_t n,
                          es_kafka_msg_fn fn, void *arg, int timeout_ms, es_err_t *err);
/* Number of partitions of topic, or -1 with err. */
int es_kafka_partition_count(es_kafka_t *rk, const char *topic, es_err_t *err);
/* The same, asking for at most timeout_ms (the broker is asked each time: the count is fresh). */
int es_kafka_partition_count_within(es_kafka_t *rk, const char *topic, int timeout_ms,
                                    es_err_t *err);
/* The partition counts of n topics into counts, from one metadata request; ES_ENOTFOUND naming
 * the first that does not exist. */
int es_kafka_partition_counts(es_kafka_t *rk, const char *const *topics, int n, int *counts,
                              es_err_t *err);
/* Creates topic with partitions, replication factor rf and the "key", "value" settings of kv
 * (NULL-terminated, may be NULL), through client rk (borrowed), waiting at most timeout_ms. A
 * topic that already exists is not an error. 0, or -1 with err. */
int es_kafka_create_topic(es_kafka_t *rk, const char *topic, int partitions, int rf,
                          const char *const *kv, int timeout_ms, es_err_t *err);
/* Whether the fatal fence of static consumer member rk (borrowed) means a twin instance with
 * the same group.instance.id. A broker outage fences a member once, when librdkafka's own rejoin
 * races its old member id; so a fence is an outage's when a client of this process lost or failed
 * to reach a broker (error callback, set by es_kafka_conf_new) within 120 s before now_s and
 * after the consumer was last made again (last_remake_s, 0 if never), and a twin's otherwise.
 * Twins fence each other back at once, with no broker trouble in between. When not a twin it
 * logs why the caller makes the consumer again. Times are es_mono_s(). */
bool es_kafka_fence_is_twin(es_kafka_t *rk, double last_remake_s, double now_s);

/* Assigns parts (a group assignment, in a rebalance callback) at their committed offsets, fetched
 * here with retries for up to timeout_ms (until *stop), the earliest where none is committed.
 * Left to itself, librdkafka 2.0.2 fetches them once: a "not coordinator" answer from a broker
 * just back from a hang left the partitions assigned and never fetched, a handler wedged while
 * ready. heartbeat (may be NULL) is called between attempts. 0, or -1 with err (nothing
 * assigned). Fault point kafka.committed fails an attempt. */
int es_kafka_assign_committed(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms,
                              volatile sig_atomic_t *stop, void (*heartbeat)(void), es_err_t *err);
/* Whether a broker answers a metadata request of rk (borrowed) within timeout_ms: the cheap
 * check behind a role's "kafka" readiness dependency. */
bool es_kafka_reachable(es_kafka_t *rk, int timeout_ms);
/* A loop's readiness check of its consumer: when the next one is due, and the last answer. */
typedef struct es_kafka_readiness {
    double next_at; /* es_mono_s; 0: at once */
    bool up;        /* whether a broker answered at the last check */
} es_kafka_readiness_t;
/* Once r->next_at has passed: sets the role's "kafka" dependency (/readyz) and r->up from whether
 * a broker answers rk (NULL: nothing) within 1 s, and moves r->next_at 5 s on. For a loop. */
void es_kafka_check_readiness(es_kafka_t *rk, es_kafka_readiness_t *r);
/* How long a loop's idle wait may last (ms, -1: for ever): for ever while the last check found
 * a broker, else until the next check is due (at least 1 ms), so a dependency that came back is
 * seen without a command or an event to wake the loop, and idle costs nothing while all is well. */
int es_kafka_readiness_wait_ms(const es_kafka_readiness_t *r);

#endif
