#include "es_kafka.h"
#include "es_env.h"
#include "es_fault.h"
#include "es_kafka_rd.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_retry.h"
#include "es_time.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

_Static_assert(ES_KAFKA_ERR_FATAL == RD_KAFKA_RESP_ERR__FATAL, "code");
_Static_assert(ES_KAFKA_ERR_NO_OFFSET == RD_KAFKA_RESP_ERR__NO_OFFSET, "code");
_Static_assert(ES_KAFKA_ERR_REVOKE_PARTITIONS == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS, "code");
_Static_assert(ES_KAFKA_ERR_ASSIGN_PARTITIONS == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, "code");
_Static_assert(ES_KAFKA_ERR_PARTITION_EOF == RD_KAFKA_RESP_ERR__PARTITION_EOF, "code");
_Static_assert(ES_KAFKA_ERR_MSG_TIMED_OUT == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "code");
_Static_assert(ES_KAFKA_OFFSET_BEGINNING == RD_KAFKA_OFFSET_BEGINNING, "offset");
_Static_assert(ES_KAFKA_OFFSET_END == RD_KAFKA_OFFSET_END, "offset");
_Static_assert(ES_KAFKA_PARTITION_ANY == RD_KAFKA_PARTITION_UA, "partition");

/* A configuration: librdkafka's, with the callbacks es_kafka_new installs. */
struct es_kafka_conf {
    rd_kafka_conf_t *rd;
    void *arg;
    es_kafka_rebalance_fn rebalance;
    es_kafka_committed_fn committed;
};

/* What every client's librdkafka opaque points to (freed by es_kafka_destroy). */
typedef struct es_kafka_hooks {
    void *arg;
    es_kafka_rebalance_fn rebalance;
    es_kafka_committed_fn committed;
    /* a consumer's queue, taken once (rd_kafka_queue_get_consumer makes a reference each time)
     * for es_kafka_poll_batch; NULL for a producer, a consumer without a group, and from the
     * consumer's close on (consumer_queue_drop) */
    rd_kafka_queue_t *queue;
} es_kafka_hooks_t;

/* When (es_mono_ms) a client of this process last lost or failed to reach a broker, 0: never.
 * es_kafka_fence_is_twin tells an outage's fence from a twin's by it. */
static _Atomic long long broker_trouble_ms;

/* A broker that is away makes every client report an error at each reconnect (about once a
 * second): each client logs at most one line per ERROR_LOG_MS, saying how many it held back.
 * Clients are remade (a lost producer, a fenced consumer) and never say goodbye, so a new one
 * takes the slot that logged longest ago. */
#define ERROR_LOG_MS      10000
#define ERROR_LOG_CLIENTS 64
static struct {
    pthread_mutex_t lock;
    const rd_kafka_t *rk[ERROR_LOG_CLIENTS];
    es_log_every_t every[ERROR_LOG_CLIENTS];
} error_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool error_log_pass(const rd_kafka_t *rk, long long now, long *skipped)
{
    pthread_mutex_lock(&error_log.lock);
    size_t slot = 0;
    for (size_t i = 0; i < ERROR_LOG_CLIENTS; i++) {
        if (error_log.rk[i] == rk) {
            slot = i;
            break;
        }
        if (error_log.every[i].last_ms < error_log.every[slot].last_ms)
            slot = i; /* an empty slot (last_ms 0) or the one idle longest */
    }
    if (error_log.rk[slot] != rk) {
        error_log.rk[slot] = rk;
        error_log.every[slot] = (es_log_every_t){0};
    }
    bool pass = es_log_every_pass(&error_log.every[slot], now, ERROR_LOG_MS, skipped);
    pthread_mutex_unlock(&error_log.lock);
    return pass;
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)opaque;
    long long now = es_mono_ms();
    if (code != RD_KAFKA_RESP_ERR__FATAL)
        atomic_store(&broker_trouble_ms, now);
    long skipped = 0;
    if (code != RD_KAFKA_RESP_ERR__FATAL && !error_log_pass(rk, now, &skipped))
        return;
    if (skipped)
        es_warn("kafka %s: %s (%ld more errors since the last line)", rd_kafka_name(rk), reason,
                skipped);
    else
        es_warn("kafka %s: %s", rd_kafka_name(rk), reason);
}

/* One property of the security settings; a secret's value stays out of the error. */
static int conf_set_checked(rd_kafka_conf_t *conf, const char *key, const char *value, bool secret,
                            es_err_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return 0;
    return secret ? es_set(err, ES_EINVAL, "kafka config '%s' was rejected", key)
                  : es_set(err, ES_EINVAL, "kafka config '%s': %s", key, errstr);
}

/* The broker connection's security from the environment, checked before any client is made:
 * EVENTSHOP_KAFKA_SECURITY_PROTOCOL plaintext (default) | ssl | sasl_ssl -> security.protocol;
 * with sasl_ssl, EVENTSHOP_KAFKA_SASL_MECHANISM (default SCRAM-SHA-512) -> sasl.mechanisms,
 * EVENTSHOP_KAFKA_SASL_USERNAME -> sasl.username and the contents of the file named by
 * EVENTSHOP_KAFKA_SASL_PASSWORD_FILE (trailing newlines dropped; never a password in the
 * environment) -> sasl.password; with ssl or sasl_ssl, EVENTSHOP_KAFKA_SSL_CA_FILE (default: the
 * system's CAs) -> ssl.ca.location. A setting the protocol does not use is an error rather than
 * ignored (credentials meant for TLS must not go unnoticed on a plaintext connection). The
 * password is wiped after librdkafka has copied it and is never put in err. 0, or -1 with err. */
static int conf_security(rd_kafka_conf_t *conf, es_err_t *err)
{
    static const char *const protocols[] = {"plaintext", "ssl", "sasl_ssl", NULL};
    static const char *const mechanisms[] = {"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", NULL};
    const char *proto_in = es_env_str("EVENTSHOP_KAFKA_SECURITY_PROTOCOL", "plaintext");
    const char *mech_in = es_env_str("EVENTSHOP_KAFKA_SASL_MECHANISM", NULL);
    const char *user = es_env_str("EVENTSHOP_KAFKA_SASL_USERNAME", NULL);
    const char *pw_file = es_env_str("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE", NULL);
    const char *ca_file = es_env_str("EVENTSHOP_KAFKA_SSL_CA_FILE", NULL);
    const char *proto = NULL, *mech = NULL;
    for (const char *const *p = protocols; *p && !proto; p++)
        if (!strcasecmp(proto_in, *p))
            proto = *p;
    if (!proto)
        return es_set(err, ES_EINVAL,
                      "EVENTSHOP_KAFKA_SECURITY_PROTOCOL '%.64s': expected plaintext, ssl or "
                      "sasl_ssl",
                      proto_in);
    bool sasl = !strcmp(proto, "sasl_ssl"), tls = strcmp(proto, "plaintext") != 0;
    if (!sasl && (mech_in || user || pw_file))
        return es_set(err, ES_EINVAL,
                      "EVENTSHOP_KAFKA_SASL_%s is set but EVENTSHOP_KAFKA_SECURITY_PROTOCOL is "
                      "'%s': SASL needs sasl_ssl",
                      mech_in ? "MECHANISM"
                      : user  ? "USERNAME"
                              : "PASSWORD_FILE",
                      proto);
    if (!tls && ca_file)
        return es_set(err, ES_EINVAL,
                      "EVENTSHOP_KAFKA_SSL_CA_FILE is set but EVENTSHOP_KAFKA_SECURITY_PROTOCOL is "
                      "'plaintext': a CA needs ssl or sasl_ssl");
    if (conf_set_checked(conf, "security.protocol", proto, false, err))
        return -1;
    if (ca_file) {
        if (access(ca_file, R_OK) != 0)
            return es_set(err, ES_EINVAL, "EVENTSHOP_KAFKA_SSL_CA_FILE '%.128s': %s", ca_file,
                          strerror(errno));
        if (conf_set_checked(conf, "ssl.ca.location", ca_file, false, err))
            return -1;
    }
    if (!sasl)
        return 0;
    mech_in = mech_in ? mech_in : "SCRAM-SHA-512";
    for (const char *const *m = mechanisms; *m && !mech; m++)
        if (!strcasecmp(mech_in, *m))
            mech = *m;
    if (!mech)
        return es_set(err, ES_EINVAL,
                      "EVENTSHOP_KAFKA_SASL_MECHANISM '%.64s': expected SCRAM-SHA-512, "
                      "SCRAM-SHA-256 or PLAIN",
                      mech_in);
    if (!user)
        return es_set(err, ES_EINVAL,
                      "EVENTSHOP_KAFKA_SASL_USERNAME is required with "
                      "EVENTSHOP_KAFKA_SECURITY_PROTOCOL=sasl_ssl");
    if (!pw_file)
        return es_set(err, ES_EINVAL,
                      "EVENTSHOP_KAFKA_SASL_PASSWORD_FILE is required with "
                      "EVENTSHOP_KAFKA_SECURITY_PROTOCOL=sasl_ssl (the password is read from a "
                      "file only)");
    size_t n = 0;
    char *pw = es_read_file(pw_file, &n);
    if (!pw)
        return es_set(err, ES_EINVAL, "EVENTSHOP_KAFKA_SASL_PASSWORD_FILE '%.128s': %s", pw_file,
                      strerror(errno));
    while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
        pw[--n] = '\0';
    int rc = 0;
    if (n == 0 || strlen(pw) != n)
        rc = es_set(err, ES_EINVAL, "EVENTSHOP_KAFKA_SASL_PASSWORD_FILE '%.128s': %s", pw_file,
                    n == 0 ? "empty" : "holds a NUL byte");
    else if (conf_set_checked(conf, "sasl.mechanisms", mech, false, err) ||
             conf_set_checked(conf, "sasl.username", user, false, err) ||
             conf_set_checked(conf, "sasl.password", pw, true, err))
        rc = -1;
    explicit_bzero(pw, n);
    free(pw);
    return rc;
}

static rd_kafka_conf_t *conf_new(const char *client_id, const char *const *kv, es_err_t *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_error_cb(conf, on_error);
    char errstr[512];
    /* the partitioner only means something to a producer; librdkafka warns on consumers */
    int consumer = 0;
    for (const char *const *p = kv; p && p[0]; p += 2)
        consumer |= !strcmp(p[0], "group.id") || !strcmp(p[0], "isolation.level");
    const char *base[] = {"bootstrap.servers", es_env_brokers(), "client.id", client_id,
                          /* librdkafka's default of 10 s: after a broker outage of that
                           * order every client waited up to 10 s more to come back */
                          "reconnect.backoff.max.ms", "1000", consumer ? NULL : "partitioner",
                          "murmur2_random", NULL};
    for (int pass = 0; pass < 2; pass++) {
        const char *const *p = pass == 0 ? base : kv;
        if (pass == 1 && conf_security(conf, err) != 0) { /* before kv, which may override */
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
        for (; p && p[0]; p += 2) {
            if (rd_kafka_conf_set(conf, p[0], p[1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
                es_set(err, ES_EINVAL, "kafka config '%s': %s", p[0], errstr);
                rd_kafka_conf_destroy(conf);
                return NULL;
            }
        }
    }
    return conf;
}

es_kafka_conf_t *es_kafka_conf_new(const char *client_id, const char *const *kv, es_err_t *err)
{
    rd_kafka_conf_t *rd = conf_new(client_id, kv, err);
    if (!rd)
        return NULL;
    es_kafka_conf_t *conf = xcalloc(1, sizeof *conf);
    conf->rd = rd;
    return conf;
}

es_kafka_conf_t *es_kafka_conf_dup(const es_kafka_conf_t *conf)
{
    es_kafka_conf_t *d = xmalloc(sizeof *d);
    *d = *conf;
    d->rd = rd_kafka_conf_dup(conf->rd);
    return d;
}

void es_kafka_conf_free(es_kafka_conf_t *conf)
{
    if (!conf)
        return;
    rd_kafka_conf_destroy(conf->rd);
    free(conf);
}

bool es_kafka_conf_get(const es_kafka_conf_t *conf, const char *key, char *buf, size_t size)
{
    size_t n = size;
    return rd_kafka_conf_get(conf->rd, key, buf, &n) == RD_KAFKA_CONF_OK && n <= size;
}

rd_kafka_conf_t *es_kafka_conf_rd(es_kafka_conf_t *conf)
{
    return conf->rd;
}

void es_kafka_conf_set_arg(es_kafka_conf_t *conf, void *arg)
{
    conf->arg = arg;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    es_kafka_hooks_t *h = opaque;
    es_kafka_parts_t *parts = es_kafka_parts_from_rd(list);
    h->rebalance(rk, code, parts, h->arg);
    es_kafka_parts_free(parts);
}

static void committed_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    es_kafka_hooks_t *h = opaque;
    es_kafka_parts_t *parts = offsets ? es_kafka_parts_from_rd(offsets) : NULL;
    h->committed(rk, code, parts, h->arg);
    es_kafka_parts_free(parts);
}

void es_kafka_conf_on_rebalance(es_kafka_conf_t *conf, es_kafka_rebalance_fn fn)
{
    conf->rebalance = fn;
    rd_kafka_conf_set_rebalance_cb(conf->rd, fn ? rebalance_cb : NULL);
}

void es_kafka_conf_on_committed(es_kafka_conf_t *conf, es_kafka_committed_fn fn)
{
    conf->committed = fn;
    rd_kafka_conf_set_offset_commit_cb(conf->rd, fn ? committed_cb : NULL);
}

es_kafka_t *es_kafka_new(es_kafka_type_t type, es_kafka_conf_t *conf, es_err_t *err)
{
    es_kafka_hooks_t *h = xmalloc(sizeof *h);
    *h = (es_kafka_hooks_t){conf->arg, conf->rebalance, conf->committed, NULL};
    rd_kafka_conf_set_opaque(conf->rd, h);
    char errstr[512];
    bool consumer = type == ES_KAFKA_CONSUMER;
    rd_kafka_t *rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf->rd,
                                  errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf->rd);
        free(h);
        es_set(err, ES_EIO, "kafka %s: %s", consumer ? "consumer" : "producer", errstr);
    } else if (consumer) {
        rd_kafka_poll_set_consumer(rk);
        h->queue = rd_kafka_queue_get_consumer(rk);
    }
    free(conf);
    return rk;
}

void *es_kafka_arg(es_kafka_t *rk)
{
    es_kafka_hooks_t *h = rd_kafka_opaque(rk);
    return h ? h->arg : NULL;
}

/* Gives back a consumer's reference to its queue. First in its teardown: rdkafka.h requires it
 * before rd_kafka_consumer_close, which rd_kafka_destroy calls for a consumer not closed yet. */
static void consumer_queue_drop(rd_kafka_t *rk)
{
    es_kafka_hooks_t *h = rd_kafka_opaque(rk);
    if (h && h->queue) {
        rd_kafka_queue_destroy(h->queue);
        h->queue = NULL;
    }
}

void es_kafka_close(es_kafka_t *rk)
{
    consumer_queue_drop(rk);
    rd_kafka_consumer_close(rk);
}

void es_kafka_destroy(es_kafka_t *rk)
{
    if (!rk)
        return;
    consumer_queue_drop(rk); /* a consumer destroyed without es_kafka_close is closed here */
    es_kafka_hooks_t *h = rd_kafka_opaque(rk);
    rd_kafka_destroy(rk);
    free(h);
}

void es_kafka_serve(es_kafka_t *rk, int timeout_ms)
{
    rd_kafka_poll(rk, timeout_ms);
}

int es_kafka_flush(es_kafka_t *rk, int timeout_ms)
{
    return rd_kafka_flush(rk, timeout_ms);
}

int es_kafka_fatal_error(es_kafka_t *rk, char *buf, size_t size)
{
    return rd_kafka_fatal_error(rk, buf, buf ? size : 0);
}

const char *es_kafka_err_str(int code)
{
    return rd_kafka_err2str(code);
}

const char *es_topic(char *buf, size_t size, const char *context, const char *kind)
{
    snprintf(buf, size, "%s.%s", context, kind);
    return buf;
}

int es_kafka_error(es_err_t *err, rd_kafka_error_t *kerr, const char *what)
{
    if (!kerr)
        return 0;
    es_set(err, rd_kafka_error_is_fatal(kerr) ? ES_EFATAL : ES_EIO, "%s: %s", what,
           rd_kafka_error_string(kerr));
    rd_kafka_error_destroy(kerr);
    return -1;
}

int es_kafka_resp_error(es_err_t *err, int code, const char *what)
{
    if (!code)
        return 0;
    return es_set(err, code == RD_KAFKA_RESP_ERR__FATAL ? ES_EFATAL : ES_EIO, "%s: %s", what,
                  rd_kafka_err2str(code));
}

int es_kafka_consumer_fatal(rd_kafka_t *rk, es_err_t *err)
{
    char msg[512];
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, msg, sizeof msg);
    if (code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
        char *id = NULL;
        size_t n = 0;
        const rd_kafka_conf_t *conf = rd_kafka_conf(rk);
        if (rd_kafka_conf_get(conf, "group.instance.id", NULL, &n) == RD_KAFKA_CONF_OK && n) {
            id = xmalloc(n);
            rd_kafka_conf_get(conf, "group.instance.id", id, &n);
        }
        es_set(err, ES_EFATAL,
               "fenced by another instance with group.instance.id '%s': two instances share "
               "EVENTSHOP_INSTANCE_ID (%s)",
               id ? id : "?", msg);
        free(id);
        return -1;
    }
    return es_set(err, ES_EFATAL, "consumer: %s", code ? msg : "fatal error");
}

/* a's "key", "value" pairs, then b's, then c's (each NULL-terminated, may be NULL) as a new
 * NULL-terminated list: the caller frees the list, the strings stay borrowed. */
static const char **kv_join(const char *const *a, const char *const *b, const char *const *c)
{
    const char *const *lists[] = {a, b, c};
    size_t n = 0;
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i += 2)
            n += 2;
    const char **all = xmalloc((n + 1) * sizeof *all);
    n = 0;
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i += 2) {
            all[n++] = lists[l][i];
            all[n++] = lists[l][i + 1];
        }
    all[n] = NULL;
    return all;
}

/* es_kafka_read_committed_conf with two lists of extra pairs, extra then kv (kv's win), joined
 * once. */
static es_kafka_conf_t *read_committed_conf(const char *client_id, const char *group, bool eof,
                                            const char *const *extra, const char *const *kv,
                                            es_err_t *err)
{
    const char *const head[] = {"isolation.level",
                                "read_committed",
                                "enable.auto.commit",
                                "false",
                                "auto.offset.reset",
                                "earliest",
                                "group.id",
                                group,
                                "enable.partition.eof",
                                eof ? "true" : "false",
                                NULL};
    const char **all = kv_join(head, extra, kv);
    es_kafka_conf_t *conf = es_kafka_conf_new(client_id, all, err);
    free(all);
    return conf;
}

es_kafka_conf_t *es_kafka_read_committed_conf(const char *client_id, const char *group, bool eof,
                                              const char *const *kv, es_err_t *err)
{
    return read_committed_conf(client_id, group, eof, NULL, kv, err);
}

es_kafka_t *es_kafka_reader_new_with(const char *client_id, const char *const *kv, es_err_t *err)
{
    /* short fetch waits: the end of a partition is seen at once */
    static const char *const reader[] = {"fetch.wait.max.ms", "10", NULL};
    es_kafka_conf_t *conf = read_committed_conf(client_id, client_id, true, reader, kv, err);
    return conf ? es_kafka_new(ES_KAFKA_CONSUMER, conf, err) : NULL;
}

es_kafka_t *es_kafka_reader_new(const char *client_id, es_err_t *err)
{
    return es_kafka_reader_new_with(client_id, NULL, err);
}

/* Assigns rk topic/partition from offset: 0, or -1 with err. */
static int es_kafka_reader_assign(rd_kafka_t *rk, const char *topic, int32_t partition,
                                  int64_t offset, es_err_t *err)
{
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    return e ? es_kafka_resp_error(err, e, "assign") : 0;
}

int es_kafka_read_partition(const char *topic, int32_t partition, es_kafka_msg_fn fn, void *arg,
                            int timeout_ms, es_err_t *err)
{
    es_kafka_span_t span = {0, 0, 0};
    return es_kafka_read_partition_from(topic, partition, &span, fn, arg, timeout_ms, err);
}

int es_kafka_read_partition_from(const char *topic, int32_t partition, es_kafka_span_t *span,
                                 es_kafka_msg_fn fn, void *arg, int timeout_ms, es_err_t *err)
{
    rd_kafka_t *rk = es_kafka_reader_new("eventshop-reader", err);
    if (!rk)
        return -1;
    int rc = -1;
    long long deadline = es_mono_ms() + timeout_ms;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, timeout_ms);
    if (e) {
        es_kafka_resp_error(err, e, topic);
        goto out;
    }
    span->lo = lo;
    span->hi = hi;
    if (span->start > hi) {
        es_set(err, ES_ECONFLICT, "%s[%d]: offset %lld lies past the end (%lld)", topic,
               (int)partition, (long long)span->start, (long long)hi);
        goto out;
    }
    int64_t from = span->start > lo ? span->start : lo;
    if (hi <= from) {
        rc = 0;
        goto out;
    }
    /* at the low watermark, not OFFSET_BEGINNING: a logical offset is looked up once the
     * partition's leader is known, and librdkafka retries that lookup after 500 ms, which made
     * each read (two per partition at a handler's start) take 0.5-1 s instead of ~15 ms; a low
     * watermark that compaction moved meanwhile resets to the earliest offset */
    if (es_kafka_reader_assign(rk, topic, partition, from, err))
        goto out;
    for (;;) {
        long long left = deadline - es_mono_ms();
        if (left <= 0) {
            es_set(err, ES_ETIMEOUT, "reading %s[%d] took over %d ms", topic, partition,
                   timeout_ms);
            goto out;
        }
        es_kafka_msg_t *m = es_kafka_poll(rk, (int)(left < 100 ? left : 100));
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* read_committed stops at the last stable offset, which may lie below the high
             * watermark seen earlier (control records, open transactions): EOF is the end */
            es_kafka_msg_free(m);
            rc = 0;
            goto out;
        }
        if (m->err) {
            es_set(err, ES_EIO, "reading %s[%d]: %s", topic, partition, m->errstr);
            es_kafka_msg_free(m);
            goto out;
        }
        int64_t off = m->offset;
        int r = fn(m, arg);
        es_kafka_msg_free(m);
        if (r) {
            rc = r;
            goto out;
        }
        if (off + 1 >= hi) {
            rc = 0;
            goto out;
        }
    }
out:
    es_kafka_close(rk);
    es_kafka_destroy(rk);
    return rc;
}

/* Offsets between two wanted ones beyond which es_kafka_read_offsets seeks rather than reads. */
#define ES_KAFKA_READ_GAP 256

int es_kafka_read_offsets(const char *topic, int32_t partition, const int64_t *offsets, size_t n,
                          es_kafka_msg_fn fn, void *arg, int timeout_ms, es_err_t *err)
{
    if (n == 0)
        return 0;
    rd_kafka_t *rk = es_kafka_reader_new("eventshop-reader", err);
    if (!rk)
        return -1;
    int rc = -1;
    long long deadline = es_mono_ms() + timeout_ms;
    size_t i = 0;
    if (es_kafka_reader_assign(rk, topic, partition, offsets[0], err))
        goto out;
    while (i < n) {
        long long left = deadline - es_mono_ms();
        if (left <= 0) {
            es_set(err, ES_ETIMEOUT, "reading %zu offsets of %s[%d] took over %d ms", n, topic,
                   partition, timeout_ms);
            goto out;
        }
        es_kafka_msg_t *m = es_kafka_poll(rk, (int)(left < 100 ? left : 100));
        if (!m)
            continue;
        if (m->err) {
            es_set(err, m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? ES_ENOTFOUND : ES_EIO,
                   "reading %s[%d]@%lld: %s", topic, partition, (long long)offsets[i],
                   m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? "past the end" : m->errstr);
            es_kafka_msg_free(m);
            goto out;
        }
        /* an offset with no record to read (a transaction marker, an aborted record) is passed */
        while (i < n && offsets[i] < m->offset)
            i++;
        int r = i < n && offsets[i] == m->offset ? fn(m, arg) : 0;
        if (i < n && offsets[i] == m->offset)
            i++;
        int64_t next = m->offset + 1;
        es_kafka_msg_free(m);
        if (r) {
            rc = r;
            goto out;
        }
        if (i < n && offsets[i] - next > ES_KAFKA_READ_GAP &&
            es_kafka_reader_assign(rk, topic, partition, offsets[i], err))
            goto out;
    }
    rc = 0;
out:
    es_kafka_close(rk);
    es_kafka_destroy(rk);
    return rc;
}

int es_kafka_partition_count_within(es_kafka_t *rk, const char *topic, int timeout_ms,
                                    es_err_t *err)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    int n = -1;
    if (e)
        es_kafka_resp_error(err, e, topic);
    else if (md->topic_cnt != 1 || md->topics[0].err)
        es_set(err, ES_ENOTFOUND, "topic '%s' does not exist", topic);
    else
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return n;
}

int es_kafka_partition_counts(es_kafka_t *rk, const char *const *topics, int n, int *counts,
                              es_err_t *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    if (e)
        return es_kafka_resp_error(err, e, "metadata");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        counts[i] = -1;
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, topics[i]) == 0 && !md->topics[t].err)
                counts[i] = md->topics[t].partition_cnt;
        if (counts[i] < 0)
            rc = es_set(err, ES_ENOTFOUND, "topic '%s' does not exist", topics[i]);
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

int es_kafka_partition_count(es_kafka_t *rk, const char *topic, es_err_t *err)
{
    return es_kafka_partition_count_within(rk, topic, 10000, err);
}

char *es_kafka_header_dup(const es_kafka_msg_t *msg, const char *name)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(msg->raw, &h) || !h)
        return NULL;
    const void *v;
    size_t n;
    if (rd_kafka_header_get_last(h, name, &v, &n))
        return NULL;
    return v ? xstrndup(v, n) : NULL;
}

bool es_kafka_reachable(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    bool up = !e && md && md->broker_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    return up;
}

void es_kafka_check_readiness(es_kafka_t *rk, es_kafka_readiness_t *r)
{
    if (!rk || es_mono_s() < r->next_at)
        return;
    r->up = es_kafka_reachable(rk, 1000);
    es_metrics_set_dependency("kafka", r->up);
    r->next_at = es_mono_s() + 5.0;
}

int es_kafka_readiness_wait_ms(const es_kafka_readiness_t *r)
{
    if (r->up)
        return -1;
    double ms = (r->next_at - es_mono_s()) * 1000.0;
    return ms > 1.0 ? (int)ms : 1;
}

bool es_kafka_fence_is_twin(rd_kafka_t *rk, double last_remake_s, double now_s)
{
    const double window_s = 120.0;
    double trouble_s = atomic_load(&broker_trouble_ms) / 1000.0;
    if (trouble_s <= 0 || now_s - trouble_s > window_s || trouble_s <= last_remake_s)
        return true;
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof why);
    es_warn("consumer fenced (%s) %.0f s after the broker connection failed: making it again, as "
            "librdkafka's own rejoin after an outage does this; a fence with no broker trouble "
            "before it means a twin instance",
            why, now_s - trouble_s);
    return false;
}

/* One fetch of the committed offsets of a new assignment, for es_retry_until. */
typedef struct committed_fetch {
    rd_kafka_t *rk;
    es_kafka_parts_t *parts;
    int e; /* the last attempt's error */
} committed_fetch_t;

static int committed_fetch(void *arg, es_err_t *err)
{
    committed_fetch_t *f = arg;
    f->e = es_fault_hit("kafka.committed") ? RD_KAFKA_RESP_ERR_NOT_COORDINATOR
                                           : es_kafka_committed(f->rk, f->parts, 10000);
    for (int i = 0; !f->e && i < f->parts->cnt; i++)
        f->e = f->parts->elems[i].err;
    if (!f->e)
        return ES_RETRY_DONE;
    es_set(err, ES_EIO, "%s", rd_kafka_err2str(f->e));
    return ES_RETRY_AGAIN;
}

int es_kafka_assign_committed(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms,
                              volatile sig_atomic_t *stop, void (*heartbeat)(void), es_err_t *err)
{
    char what[64];
    snprintf(what, sizeof what, "committed offsets of %d partitions", parts->cnt);
    const es_retry_t retry = {.what = what,
                              .deadline_ms = es_mono_ms() + timeout_ms,
                              .min_ms = 100,
                              .max_ms = 2000,
                              .stop = stop,
                              .heartbeat = heartbeat};
    committed_fetch_t f = {rk, parts, RD_KAFKA_RESP_ERR_NO_ERROR};
    if (es_retry_until(&retry, committed_fetch, &f, NULL))
        return es_kafka_resp_error(err, f.e, "committed offsets");
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].offset < 0)
            parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    return es_kafka_resp_error(err, es_kafka_assign(rk, parts), "assign");
}

/* --- partition lists ------------------------------------------------------------------------ */

es_kafka_parts_t *es_kafka_parts_new(int size)
{
    es_kafka_parts_t *l = xcalloc(1, sizeof *l);
    l->size = size > 0 ? size : 1;
    l->elems = xcalloc((size_t)l->size, sizeof *l->elems);
    return l;
}

es_kafka_part_t *es_kafka_parts_add(es_kafka_parts_t *l, const char *topic, int32_t partition)
{
    if (l->cnt == l->size) {
        l->size *= 2;
        l->elems = xrealloc(l->elems, (size_t)l->size * sizeof *l->elems);
    }
    es_kafka_part_t *p = &l->elems[l->cnt++];
    *p = (es_kafka_part_t){xstrdup(topic), partition, RD_KAFKA_OFFSET_INVALID, 0};
    return p;
}

es_kafka_part_t *es_kafka_parts_find(const es_kafka_parts_t *l, const char *topic,
                                     int32_t partition)
{
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].partition == partition && !strcmp(l->elems[i].topic, topic))
            return &l->elems[i];
    return NULL;
}

es_kafka_parts_t *es_kafka_parts_copy(const es_kafka_parts_t *l)
{
    es_kafka_parts_t *c = es_kafka_parts_new(l->cnt);
    for (int i = 0; i < l->cnt; i++) {
        const es_kafka_part_t *e = &l->elems[i];
        es_kafka_part_t *p = es_kafka_parts_add(c, e->topic, e->partition);
        p->offset = e->offset;
        p->err = e->err;
    }
    return c;
}

void es_kafka_parts_free(es_kafka_parts_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->cnt; i++)
        free(l->elems[i].topic);
    free(l->elems);
    free(l);
}

rd_kafka_topic_partition_list_t *es_kafka_parts_to_rd(const es_kafka_parts_t *l)
{
    rd_kafka_topic_partition_list_t *r = rd_kafka_topic_partition_list_new(l->cnt);
    for (int i = 0; i < l->cnt; i++)
        rd_kafka_topic_partition_list_add(r, l->elems[i].topic, l->elems[i].partition)->offset =
            l->elems[i].offset;
    return r;
}

es_kafka_parts_t *es_kafka_parts_from_rd(const rd_kafka_topic_partition_list_t *l)
{
    /* the same layout of fields that matter: a view of l, copied */
    es_kafka_parts_t view = {l->cnt, l->cnt,
                             xcalloc((size_t)(l->cnt ? l->cnt : 1), sizeof *view.elems)};
    for (int i = 0; i < l->cnt; i++)
        view.elems[i] = (es_kafka_part_t){l->elems[i].topic, l->elems[i].partition,
                                          l->elems[i].offset, l->elems[i].err};
    es_kafka_parts_t *c = es_kafka_parts_copy(&view);
    free(view.elems);
    return c;
}

/* Copies the offsets and errors of r (made by es_kafka_parts_to_rd(l), same order) back into l
 * and destroys r. */
static void parts_back(es_kafka_parts_t *l, rd_kafka_topic_partition_list_t *r)
{
    for (int i = 0; i < l->cnt && i < r->cnt; i++) {
        l->elems[i].offset = r->elems[i].offset;
        l->elems[i].err = r->elems[i].err;
    }
    rd_kafka_topic_partition_list_destroy(r);
}

/* --- the consumer --------------------------------------------------------------------------- */

static void msg_of(es_kafka_msg_t *m, rd_kafka_message_t *r)
{
    rd_kafka_timestamp_type_t tstype;
    *m = (es_kafka_msg_t){
        .err = r->err,
        .errstr = r->err ? rd_kafka_message_errstr(r) : "",
        .topic = r->rkt ? rd_kafka_topic_name(r->rkt) : NULL,
        .partition = r->partition,
        .offset = r->offset,
        .key = r->key,
        .key_len = r->key_len,
        .value = r->payload,
        .len = r->payload ? r->len : 0,
        .timestamp_ms = r->err ? -1 : rd_kafka_message_timestamp(r, &tstype),
        .raw = r,
    };
}

es_kafka_msg_t *es_kafka_poll(es_kafka_t *rk, int timeout_ms)
{
    rd_kafka_message_t *r = rd_kafka_consumer_poll(rk, timeout_ms);
    if (!r)
        return NULL;
    es_kafka_msg_t *m = xmalloc(sizeof *m);
    msg_of(m, r);
    return m;
}

/* rd_kafka_consume_batch_queue waits until the batch is full or timeout_ms has passed: so first
 * what is there without waiting, and only when nothing is, a wait for one. */
size_t es_kafka_poll_batch(es_kafka_t *rk, int timeout_ms, es_kafka_msg_t *msgs, size_t max)
{
    rd_kafka_message_t *r[ES_KAFKA_BATCH_MAX];
    const es_kafka_hooks_t *h = rd_kafka_opaque(rk);
    rd_kafka_queue_t *q = h ? h->queue : NULL; /* borrowed: the client's, kept until its close */
    ssize_t n = 0;
    max = max < ES_KAFKA_BATCH_MAX ? max : ES_KAFKA_BATCH_MAX;
    if (!q) { /* a consumer without a group: one at a time */
        r[0] = max ? rd_kafka_consumer_poll(rk, timeout_ms) : NULL;
        n = r[0] != NULL;
    } else {
        n = max ? rd_kafka_consume_batch_queue(q, 0, r, max) : 0;
        if (n == 0 && max && timeout_ms)
            n = rd_kafka_consume_batch_queue(q, timeout_ms, r, 1);
    }
    for (ssize_t i = 0; i < n; i++)
        msg_of(&msgs[i], r[i]);
    return n > 0 ? (size_t)n : 0;
}

void es_kafka_msgs_release(es_kafka_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i].raw);
}

void es_kafka_msg_free(es_kafka_msg_t *m)
{
    if (!m)
        return;
    rd_kafka_message_destroy(m->raw);
    free(m);
}

static void msgs_free(es_kafka_msg_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        es_kafka_msg_free(msgs[i]);
}

size_t es_kafka_gather(es_kafka_t *rk, const es_kafka_gather_t *g, es_kafka_msg_t **msgs,
                       bool *fatal)
{
    size_t n = 0;
    double deadline = es_mono_s() + (g->wait_ms > 0 ? g->wait_ms : 0) / 1000.0;
    bool first = true;
    *fatal = false;
    *g->rebalanced = false;
    while (n < g->max && !*g->stop && !*g->failed) {
        int wait = 100;
        bool draining = false; /* past the deadline: only what is already fetched */
        if (n > 0 || g->wait_ms >= 0) {
            double left = deadline - es_mono_s();
            draining = left <= 0 && !first;
            wait = left > 0 ? (int)(left * 1000) + 1 : 0;
        }
        first = false;
        es_kafka_msg_t *m = es_kafka_poll(rk, wait);
        if (*g->rebalanced) {
            msgs_free(msgs, n);
            n = 0;
            *g->rebalanced = false;
        }
        if (!m) {
            if (draining)
                break;
            continue;
        }
        if (m->err && m->err != ES_KAFKA_ERR_PARTITION_EOF)
            es_warn("consumer: %s", m->errstr);
        if (m->err == ES_KAFKA_ERR_FATAL) {
            es_kafka_msg_free(m);
            msgs_free(msgs, n);
            *fatal = true;
            return 0;
        }
        if (m->err) {
            es_kafka_msg_free(m);
            continue;
        }
        if (n == 0)
            deadline = es_mono_s() + g->linger_ms / 1000.0;
        msgs[n++] = m;
    }
    return n;
}

int es_kafka_subscribe(es_kafka_t *rk, const char *const *topics, int n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e;
}

/* The librdkafka calls that take a partition list. */
typedef enum {
    OP_ASSIGN,
    OP_PAUSE,
    OP_RESUME,
    OP_POSITION,
    OP_COMMITTED,
    OP_FOR_TIMES,
    OP_COMMIT,
    OP_COMMIT_ASYNC
} parts_op_t;

/* Calls op on rk with parts converted (copying offsets and errors back into parts when the
 * call fills them: writable non-NULL). 0 or the error code. */
static int parts_call(es_kafka_t *rk, parts_op_t op, const es_kafka_parts_t *parts,
                      es_kafka_parts_t *writable, int timeout_ms)
{
    rd_kafka_topic_partition_list_t *r = es_kafka_parts_to_rd(writable ? writable : parts);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    switch (op) {
    case OP_ASSIGN:
        e = rd_kafka_assign(rk, r);
        break;
    case OP_PAUSE:
        e = rd_kafka_pause_partitions(rk, r);
        break;
    case OP_RESUME:
        e = rd_kafka_resume_partitions(rk, r);
        break;
    case OP_POSITION:
        e = rd_kafka_position(rk, r);
        break;
    case OP_COMMITTED:
        e = rd_kafka_committed(rk, r, timeout_ms);
        break;
    case OP_FOR_TIMES:
        e = rd_kafka_offsets_for_times(rk, r, timeout_ms);
        break;
    case OP_COMMIT:
    case OP_COMMIT_ASYNC:
        e = rd_kafka_commit(rk, r, op == OP_COMMIT_ASYNC);
        break;
    }
    if (writable)
        parts_back(writable, r);
    else
        rd_kafka_topic_partition_list_destroy(r);
    return e;
}

int es_kafka_assign(es_kafka_t *rk, const es_kafka_parts_t *parts)
{
    return parts ? parts_call(rk, OP_ASSIGN, parts, NULL, 0) : rd_kafka_assign(rk, NULL);
}

int es_kafka_assignment(es_kafka_t *rk, es_kafka_parts_t **parts)
{
    rd_kafka_topic_partition_list_t *r = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(rk, &r);
    *parts = r ? es_kafka_parts_from_rd(r) : NULL;
    if (r)
        rd_kafka_topic_partition_list_destroy(r);
    return e;
}

int es_kafka_pause(es_kafka_t *rk, const es_kafka_parts_t *parts)
{
    return parts ? parts_call(rk, OP_PAUSE, parts, NULL, 0) : 0;
}

int es_kafka_resume(es_kafka_t *rk, const es_kafka_parts_t *parts)
{
    return parts ? parts_call(rk, OP_RESUME, parts, NULL, 0) : 0;
}

int es_kafka_position(es_kafka_t *rk, es_kafka_parts_t *parts)
{
    return parts_call(rk, OP_POSITION, NULL, parts, 0);
}

int es_kafka_committed(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms)
{
    return parts_call(rk, OP_COMMITTED, NULL, parts, timeout_ms);
}

int es_kafka_offsets_for_times(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms)
{
    return parts_call(rk, OP_FOR_TIMES, NULL, parts, timeout_ms);
}

int es_kafka_group_committed(es_kafka_t *rk, const char *group, es_kafka_parts_t *parts,
                             int timeout_ms, es_err_t *err)
{
    rd_kafka_topic_partition_list_t *want = es_kafka_parts_to_rd(parts);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, want);
    rd_kafka_topic_partition_list_destroy(want);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, errstr, sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, opt, q);
    /* the request times out on its own; the wait adds a margin for the result's delivery */
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    const rd_kafka_ListConsumerGroupOffsets_result_t *res =
        ev ? rd_kafka_event_ListConsumerGroupOffsets_result(ev) : NULL;
    size_t cnt = 0;
    const rd_kafka_group_result_t **groups =
        res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &cnt) : NULL;
    const rd_kafka_error_t *gerr = cnt == 1 ? rd_kafka_group_result_error(groups[0]) : NULL;
    int rc = 0;
    if (!ev)
        rc = es_set(err, ES_EIO, "offsets of group '%s': no answer in %d ms", group, timeout_ms);
    else if (rd_kafka_event_error(ev))
        rc = es_set(err, ES_EIO, "offsets of group '%s': %s", group,
                    rd_kafka_event_error_string(ev));
    else if (cnt != 1)
        rc = es_set(err, ES_EIO, "offsets of group '%s': %zu groups in the answer", group, cnt);
    else if (gerr)
        rc = es_set(err, ES_EIO, "offsets of group '%s': %s", group, rd_kafka_error_string(gerr));
    const rd_kafka_topic_partition_list_t *got =
        rc == 0 ? rd_kafka_group_result_partitions(groups[0]) : NULL;
    for (int i = 0; got && i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            got, parts->elems[i].topic, parts->elems[i].partition);
        parts->elems[i].offset = tp ? tp->offset : RD_KAFKA_OFFSET_INVALID;
        parts->elems[i].err = tp ? tp->err : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    return rc;
}

int es_kafka_commit(es_kafka_t *rk, const es_kafka_parts_t *parts, bool async)
{
    return parts_call(rk, async ? OP_COMMIT_ASYNC : OP_COMMIT, parts, NULL, 0);
}

int es_kafka_seek(es_kafka_t *rk, es_kafka_parts_t *parts, int timeout_ms, es_err_t *err)
{
    rd_kafka_topic_partition_list_t *r = es_kafka_parts_to_rd(parts);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, r, timeout_ms);
    parts_back(parts, r);
    return es_kafka_error(err, e, "seek");
}

int es_kafka_watermarks(es_kafka_t *rk, const char *topic, int32_t partition, int64_t *lo,
                        int64_t *hi)
{
    return rd_kafka_get_watermark_offsets(rk, topic, partition, lo, hi);
}

int es_kafka_query_watermarks(es_kafka_t *rk, const char *topic, int32_t partition, int64_t *lo,
                              int64_t *hi, int timeout_ms)
{
    return rd_kafka_query_watermark_offsets(rk, topic, partition, lo, hi, timeout_ms);
}

es_kafka_group_t *es_kafka_group_of(es_kafka_t *rk)
{
    return rd_kafka_consumer_group_metadata(rk);
}

es_kafka_group_t *es_kafka_group_new(const char *group)
{
    return rd_kafka_consumer_group_metadata_new(group);
}

void es_kafka_group_free(es_kafka_group_t *g)
{
    if (g)
        rd_kafka_consumer_group_metadata_destroy(g);
}

/* --- the idempotent producer ---------------------------------------------------------------- */

/* One message's report: to fn (es_kafka_produce, heap) or into code/done (es_kafka_produce_sync,
 * on its caller's stack). */
typedef struct delivery {
    es_kafka_delivered_fn fn;
    void *opaque;
    int code;
    bool done;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivery_t *d = m->_private;
    if (!d)
        return;
    if (!d->fn) {
        d->code = m->err;
        d->done = true;
        return;
    }
    d->fn(d->opaque, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
          m->err ? rd_kafka_err2str(m->err) : NULL);
    free(d);
}

es_kafka_t *es_kafka_idempotent_new(const char *client_id, int linger_ms, int timeout_ms,
                                    es_err_t *err)
{
    char linger[16], timeout[16];
    snprintf(linger, sizeof linger, "%d", linger_ms);
    snprintf(timeout, sizeof timeout, "%d", timeout_ms);
    const char *kv[] = {"enable.idempotence", "true",  "acks", "all", "linger.ms", linger,
                        "message.timeout.ms", timeout, NULL};
    es_kafka_conf_t *conf = es_kafka_conf_new(client_id, kv, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf->rd, on_delivery);
    return es_kafka_new(ES_KAFKA_PRODUCER, conf, err);
}

static int produce(es_kafka_t *p, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t len, const char *traceparent,
                   delivery_t *d)
{
    if (traceparent)
        return rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_HEADER("traceparent", traceparent, -1),
                                 RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    return rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
                             RD_KAFKA_V_END);
}

int es_kafka_produce(es_kafka_t *p, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t len, const char *traceparent,
                     es_kafka_delivered_fn fn, void *opaque)
{
    delivery_t *d = xmalloc(sizeof *d);
    *d = (delivery_t){fn, opaque, 0, false};
    int e = produce(p, topic, partition, key, key_len, value, len, traceparent, d);
    if (e)
        free(d);
    return e;
}

int es_kafka_produce_sync(es_kafka_t *p, const char *topic, int32_t partition, const void *key,
                          size_t key_len, const void *value, size_t len)
{
    delivery_t d = {NULL, NULL, 0, false};
    int e = produce(p, topic, partition, key, key_len, value, len, NULL, &d);
    if (e)
        return e;
    /* the report always comes, at the latest after message.timeout.ms */
    while (!d.done)
        rd_kafka_poll(p, 100);
    return d.code;
}

es_kafka_headers_t *es_kafka_headers_new(size_t count)
{
    return rd_kafka_headers_new(count);
}

void es_kafka_header_add(es_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

void es_kafka_headers_free(es_kafka_headers_t *h)
{
    if (h)
        rd_kafka_headers_destroy(h);
}

/* --- topics --------------------------------------------------------------------------------- */

int es_kafka_create_topic(es_kafka_t *rk, const char *topic, int partitions, int rf,
                          const char *const *kv, int timeout_ms, es_err_t *err)
{
    char errstr[256];
    rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(topic, partitions, rf, errstr, sizeof errstr);
    if (!t)
        return es_set(err, ES_EINVAL, "topic '%s': %s", topic, errstr);
    for (const char *const *p = kv; p && p[0]; p += 2)
        rd_kafka_NewTopic_set_config(t, p[0], p[1]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &t, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    int rc = 0;
    if (!res) {
        rc = es_set(err, ES_EIO, "no answer creating topic '%s'", topic);
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                rc = es_set(err, ES_EIO, "topic '%s': %s", topic,
                            rd_kafka_topic_result_error_string(tr[i]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(t);
    return rc;
}
