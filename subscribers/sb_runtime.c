/* The generic event-subscriber runtime: consume, handle, produce and commit offsets in one
 * Kafka transaction per batch (see sb_runtime.h). */
#include "sb_runtime.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_trace.h"
#include "ev_codec.h"
#include "sb_out.h"
#include "sr_client.h"
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TXN_TIMEOUT_MS 30000
#define BACKOFF_MAX_S  30.0

struct sb_runtime {
    const sb_subscriber_t *sub;
    void *state;
    sr_client_t *sr;
    ev_codec_t *codec;
    rd_kafka_t *consumer, *producer;
    char group[160], t_dead[160], instance[128];
    int batch_max, linger_ms;
    volatile sig_atomic_t stop;
    bool rebalanced;
    bool fatal;
    es_err_t fatal_err;
    sb_out_t *out;
    double backoff_s;
    es_metric_t *m_dead, *m_events, *m_commits, *m_aborts, *m_batch_seconds;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_fatal(sb_runtime_t *rt, const char *what, const char *msg)
{
    rt->fatal = true;
    es_set(&rt->fatal_err, ES_EFATAL, "%s: %s", what, msg);
}

/* --- transactions ------------------------------------------------------------------------- */

typedef enum { TXN_OK, TXN_ABORT, TXN_FATAL } txn_rc_t;

/* Classifies a transactional error (destroyed here): fatal stops the runtime, retriable is
 * retried in place when retry is given, anything else aborts the batch. */
static txn_rc_t txn_check(sb_runtime_t *rt, rd_kafka_error_t *e, const char *what, bool *retry)
{
    if (retry)
        *retry = false;
    if (!e)
        return TXN_OK;
    txn_rc_t rc = TXN_ABORT;
    if (rd_kafka_error_is_fatal(e)) {
        set_fatal(rt, what, rd_kafka_error_string(e));
        rc = TXN_FATAL;
    } else if (rd_kafka_error_is_retriable(e) && retry) {
        es_warn("%s: %s (retrying)", what, rd_kafka_error_string(e));
        *retry = true;
    } else {
        es_warn("%s: %s (aborting the batch)", what, rd_kafka_error_string(e));
    }
    rd_kafka_error_destroy(e);
    return rc;
}

static void txn_abort(sb_runtime_t *rt)
{
    bool retry;
    do {
        if (txn_check(rt, rd_kafka_abort_transaction(rt->producer, TXN_TIMEOUT_MS),
                      "abort_transaction", &retry) == TXN_FATAL)
            return;
    } while (retry);
    es_metric_add(rt->m_aborts, 1);
}

static txn_rc_t txn_commit(sb_runtime_t *rt)
{
    bool retry;
    txn_rc_t rc;
    do {
        rc = txn_check(rt, rd_kafka_commit_transaction(rt->producer, TXN_TIMEOUT_MS),
                       "commit_transaction", &retry);
    } while (retry);
    return rc;
}

/* Produces buf (stolen) inside the open transaction; partition chosen by key. */
static int produce(sb_runtime_t *rt, const char *topic, const void *key, size_t key_len, void *buf,
                   size_t len, rd_kafka_headers_t *h, es_err_t *err)
{
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(rt->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!e)
            return 0;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rt->producer, 50);
            continue;
        }
        if (h)
            rd_kafka_headers_destroy(h);
        free(buf);
        return es_kafka_resp_error(err, e, topic);
    }
}

/* The original message, as it came, to "<name>.deadletter" with the reason in headers. */
static int produce_dead_letter(sb_runtime_t *rt, const rd_kafka_message_t *m, const char *reason,
                               es_err_t *err)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    char num[32];
    rd_kafka_header_add(h, "reason", -1, reason, -1);
    rd_kafka_header_add(h, "source-topic", -1, rd_kafka_topic_name(m->rkt), -1);
    snprintf(num, sizeof num, "%d", (int)m->partition);
    rd_kafka_header_add(h, "source-partition", -1, num, -1);
    snprintf(num, sizeof num, "%lld", (long long)m->offset);
    rd_kafka_header_add(h, "source-offset", -1, num, -1);
    char *tp = es_kafka_header_dup(m, "traceparent");
    if (tp)
        rd_kafka_header_add(h, "traceparent", -1, tp, -1);
    free(tp);
    void *buf = NULL;
    if (m->len) {
        buf = xmalloc(m->len);
        memcpy(buf, m->payload, m->len);
    }
    es_metric_add(rt->m_dead, 1);
    es_warn("dead letter from %s[%d]@%lld: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
            (long long)m->offset, reason);
    return produce(rt, rt->t_dead, m->key, m->key_len, buf, m->len, h, err);
}

/* Encodes every output of rt->out, then produces them (all or, on a bad output, none: the
 * trigger is then dead-lettered). Returns 0, 1 when an output does not encode (bad_reason
 * filled), -1 with err on a Kafka or registry failure (abort the batch). */
static int produce_outputs(sb_runtime_t *rt, const json_t *trigger_meta, const char *traceparent,
                           char *bad_reason, size_t bad_size, es_err_t *err)
{
    size_t n = sb_out_count(rt->out);
    if (n == 0)
        return 0;
    void **bufs = xcalloc(n, sizeof *bufs);
    size_t *lens = xcalloc(n, sizeof *lens);
    const char **topics = xcalloc(n, sizeof *topics), **keys = xcalloc(n, sizeof *keys);
    int rc = 0;
    long long now = wall_ms();
    size_t i;
    for (i = 0; i < n; i++) {
        const char *type;
        es_err_t eerr = ES_ERR_INIT;
        json_t *rec =
            sb_out_build(rt->out, i, rt->sub->name, trigger_meta, now, &topics[i], &type, &keys[i]);
        int erc = ev_encode(rt->codec, topics[i], type, rec, &bufs[i], &lens[i], &eerr);
        json_decref(rec);
        if (erc != 0) {
            if (eerr.code == ES_EINVAL) {
                snprintf(bad_reason, bad_size, "output %s does not encode: %s", type, eerr.msg);
                rc = 1;
            } else {
                es_set(err, eerr.code, "%s", eerr.msg);
                rc = -1;
            }
            break;
        }
    }
    if (rc != 0) {
        for (size_t j = 0; j < n; j++)
            free(bufs[j]);
        goto out;
    }
    char child[ES_TRACEPARENT_LEN];
    for (i = 0; i < n; i++) {
        es_trace_child(traceparent, child);
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "traceparent", -1, child, -1);
        if (rc == 0)
            rc = produce(rt, topics[i], keys[i], strlen(keys[i]), bufs[i], lens[i], h, err);
        else {
            free(bufs[i]);
            rd_kafka_headers_destroy(h);
        }
    }
out:
    free(bufs);
    free(lens);
    free(topics);
    free(keys);
    return rc;
}

/* Handles one consumed message inside the open transaction. Returns 0 (handled, or
 * dead-lettered), -1 with err when the batch must be aborted and retried. */
static int handle_one(sb_runtime_t *rt, const rd_kafka_message_t *m, es_err_t *err)
{
    const char *type = NULL;
    json_t *ev = NULL;
    es_err_t herr = ES_ERR_INIT;
    char reason[320];
    char *tp = NULL;
    int rc = 0;
    sb_out_clear(rt->out);
    if (!m->payload) /* a tombstone: nothing to handle */
        return 0;
    if (ev_decode(rt->codec, m->payload, m->len, &type, &ev, &herr) != 0) {
        if (herr.code != ES_EINVAL) { /* the registry, not the data */
            es_set(err, herr.code, "%s", herr.msg);
            return -1;
        }
        snprintf(reason, sizeof reason, "undecodable: %s", herr.msg);
        return produce_dead_letter(rt, m, reason, err);
    }
    tp = es_kafka_header_dup(m, "traceparent");
    es_metric_add(rt->m_events, 1);
    sb_out_set_source(rt->out, rd_kafka_topic_name(m->rkt), (int)m->partition,
                      (long long)m->offset);
    if (rt->sub->handle(rt->state, type, ev, tp, rt->out, &herr) != 0) {
        if (herr.code == ES_EIO || herr.code == ES_ETIMEOUT) {
            es_set(err, herr.code, "%s", herr.msg);
            rc = -1;
            goto out;
        }
        snprintf(reason, sizeof reason, "handler failed on %s: %s", type,
                 herr.msg[0] ? herr.msg : "unknown error");
        rc = produce_dead_letter(rt, m, reason, err);
        goto out;
    }
    if (sb_out_dead_reason(rt->out)) {
        rc = produce_dead_letter(rt, m, sb_out_dead_reason(rt->out), err);
        goto out;
    }
    int prc = produce_outputs(rt, json_object_get(ev, "metadata"), tp, reason, sizeof reason, err);
    if (prc == 0) {
        /* one line per handled event, with the trace it belongs to */
        const json_t *meta = json_object_get(ev, "metadata");
        char trace_id[ES_TRACE_ID_LEN];
        es_trace_id(tp, trace_id);
        es_log_kv(ES_LOG_INFO, trace_id[0] ? trace_id : NULL,
                  ES_F("subscriber", rt->sub->name, "event_type", type, "event_id",
                       json_string_value(json_object_get(meta, "event_id")), "aggregate_id",
                       json_string_value(json_object_get(meta, "aggregate_id"))),
                  "handled %s", type);
    }
    if (prc > 0)
        rc = produce_dead_letter(rt, m, reason, err);
    else
        rc = prc;
out:
    sb_out_clear(rt->out);
    free(tp);
    json_decref(ev);
    return rc;
}

/* Moves consumer back to the first message of the batch in each partition. */
static void rewind_batch(rd_kafka_t *consumer, rd_kafka_message_t **msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *back = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        if (!rd_kafka_topic_partition_list_find(back, topic, msgs[i]->partition))
            rd_kafka_topic_partition_list_add(back, topic, msgs[i]->partition)->offset =
                msgs[i]->offset;
    }
    rd_kafka_error_t *e = rd_kafka_seek_partitions(consumer, back, 10000);
    if (e) {
        es_warn("seek back after abort: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(back);
}

/* Handles a batch of messages of consumer in one transaction with their offsets (for group
 * cgmd, borrowed). Returns 0 when committed, 1 when aborted and rewound (retry later), -1 on a
 * fatal error. */
static int run_batch(sb_runtime_t *rt, rd_kafka_t *consumer,
                     const rd_kafka_consumer_group_metadata_t *cgmd, rd_kafka_message_t **msgs,
                     size_t n)
{
    double t0 = now_s();
    es_err_t err = ES_ERR_INIT;
    bool retry;
    txn_rc_t trc;
    if (txn_check(rt, rd_kafka_begin_transaction(rt->producer), "begin_transaction", NULL) !=
        TXN_OK) {
        if (!rt->fatal)
            set_fatal(rt, "begin_transaction", "cannot begin a transaction");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (handle_one(rt, msgs[i], &err) != 0)
            goto abort;
    }
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(offsets, topic, msgs[i]->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(offsets, topic, msgs[i]->partition);
        if (msgs[i]->offset + 1 > tp->offset)
            tp->offset = msgs[i]->offset + 1;
    }
    do {
        trc = txn_check(
            rt, rd_kafka_send_offsets_to_transaction(rt->producer, offsets, cgmd, TXN_TIMEOUT_MS),
            "send_offsets_to_transaction", &retry);
    } while (retry);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (trc == TXN_FATAL)
        return -1;
    if (trc == TXN_ABORT)
        goto abort;
    trc = txn_commit(rt);
    if (trc == TXN_FATAL)
        return -1;
    if (trc == TXN_ABORT)
        goto abort;
    rt->backoff_s = 0;
    es_metric_add(rt->m_commits, 1);
    es_metric_observe(rt->m_batch_seconds, now_s() - t0);
    return 0;
abort:
    if (rt->fatal)
        return -1;
    rt->backoff_s = rt->backoff_s > 0 ? rt->backoff_s * 2 : 0.2;
    if (rt->backoff_s > BACKOFF_MAX_S)
        rt->backoff_s = BACKOFF_MAX_S;
    es_warn("aborting a batch of %zu events, retrying in %.1f s: %s", n, rt->backoff_s,
            err.msg[0] ? err.msg : "kafka error");
    txn_abort(rt);
    rewind_batch(consumer, msgs, n);
    return rt->fatal ? -1 : 1;
}

/* Calls the subscriber's tick and commits what it asked for in a transaction of its own. */
static void run_tick(sb_runtime_t *rt)
{
    es_err_t err = ES_ERR_INIT;
    char bad[320];
    sb_out_clear(rt->out);
    if (rt->sub->tick(rt->state, wall_ms(), rt->out, &err) != 0) {
        es_warn("tick of '%s': %s", rt->sub->name, err.msg);
        sb_out_clear(rt->out);
        return;
    }
    if (sb_out_count(rt->out) == 0)
        return;
    if (txn_check(rt, rd_kafka_begin_transaction(rt->producer), "begin_transaction", NULL) !=
        TXN_OK) {
        if (!rt->fatal)
            set_fatal(rt, "begin_transaction", "cannot begin a transaction");
        return;
    }
    int rc = produce_outputs(rt, NULL, NULL, bad, sizeof bad, &err);
    sb_out_clear(rt->out);
    if (rc != 0) {
        es_error("tick of '%s' dropped: %s", rt->sub->name, rc > 0 ? bad : err.msg);
        txn_abort(rt);
        return;
    }
    if (txn_commit(rt) == TXN_ABORT)
        txn_abort(rt);
}

/* --- consuming ---------------------------------------------------------------------------- */

/* Tells the subscriber, topic by topic, which partitions it owns now (parts NULL: none). */
static void notify_assigned(sb_runtime_t *rt, const rd_kafka_topic_partition_list_t *parts)
{
    if (!rt->sub->assigned || !rt->state)
        return;
    int *ps = xcalloc(parts && parts->cnt > 0 ? (size_t)parts->cnt : 1, sizeof *ps);
    for (const char *const *t = rt->sub->topics; *t; t++) {
        size_t n = 0;
        for (int i = 0; parts && i < parts->cnt; i++) {
            if (!strcmp(parts->elems[i].topic, *t))
                ps[n++] = (int)parts->elems[i].partition;
        }
        rt->sub->assigned(rt->state, *t, ps, n);
    }
    free(ps);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t code,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sb_runtime_t *rt = opaque;
    rt->rebalanced = true;
    bool assign = code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (assign) {
        rd_kafka_assign(rk, parts);
        es_info("'%s' assigned %d partitions", rt->sub->name, parts->cnt);
        es_metrics_set_ready(true);
    } else {
        rd_kafka_assign(rk, NULL);
        es_info("'%s' partitions revoked (%s)", rt->sub->name, rd_kafka_err2str(code));
    }
    notify_assigned(rt, assign ? parts : NULL);
}

/* Gathers up to batch_max messages, waiting at most linger_ms after the first (or wait_ms for
 * the first). A rebalance meanwhile drops what was gathered. */
static size_t gather(sb_runtime_t *rt, rd_kafka_t *consumer, rd_kafka_message_t **msgs, int wait_ms,
                     bool *eof)
{
    size_t n = 0;
    double deadline = now_s() + wait_ms / 1000.0;
    bool first = true;
    rt->rebalanced = false;
    while (n < (size_t)rt->batch_max && !rt->stop && !rt->fatal) {
        double left = deadline - now_s();
        if (left <= 0 && !first)
            break;
        first = false;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, left > 0 ? (int)(left * 1000) : 0);
        if (rt->rebalanced) {
            for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(msgs[i]);
            n = 0;
            rt->rebalanced = false;
        }
        if (!m)
            continue;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (eof)
                    *eof = true;
            } else {
                es_warn("consumer: %s", rd_kafka_message_errstr(m));
                if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                    set_fatal(rt, "consumer", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (n == 0)
            deadline = now_s() + rt->linger_ms / 1000.0;
        msgs[n++] = m;
    }
    return n;
}

/* --- life cycle --------------------------------------------------------------------------- */

/* Creates "<name>.deadletter" unless it exists (dead letters are kept forever). */
static int create_dead_letter_topic(sb_runtime_t *rt, es_err_t *err)
{
    char errstr[256];
    int rf = (int)es_env_long("EVENTSHOP_REPLICATION_FACTOR", 1);
    rd_kafka_NewTopic_t *t =
        rd_kafka_NewTopic_new(rt->t_dead, es_env_partitions(), rf, errstr, sizeof errstr);
    if (!t)
        return es_set(err, ES_EINVAL, "topic '%s': %s", rt->t_dead, errstr);
    rd_kafka_NewTopic_set_config(t, "retention.ms", "-1");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rt->producer);
    rd_kafka_CreateTopics(rt->producer, &t, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    int rc = 0;
    if (!res) {
        rc = es_set(err, ES_EIO, "no answer creating topic '%s'", rt->t_dead);
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                rc = es_set(err, ES_EIO, "topic '%s': %s", rt->t_dead,
                            rd_kafka_topic_result_error_string(tr[i]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(t);
    return rc;
}

static rd_kafka_t *consumer_new(sb_runtime_t *rt, const char *group, const char *instance, bool eof,
                                es_err_t *err)
{
    char client[200], errstr[512];
    snprintf(client, sizeof client, "eventshop-%s-subscriber", rt->sub->name);
    const char *kv[] = {"group.id",
                        group,
                        "session.timeout.ms",
                        "15000",
                        "enable.auto.commit",
                        "false",
                        "isolation.level",
                        "read_committed",
                        "auto.offset.reset",
                        "earliest",
                        "enable.partition.eof",
                        eof ? "true" : "false",
                        "topic.metadata.refresh.interval.ms",
                        "10000",
                        instance ? "group.instance.id" : NULL,
                        instance,
                        NULL};
    rd_kafka_conf_t *conf = es_kafka_conf_new(client, kv, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_opaque(conf, rt);
    if (!eof)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c) {
        rd_kafka_conf_destroy(conf);
        es_set(err, ES_EIO, "kafka consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c);
    return c;
}

sb_runtime_t *sb_runtime_new(const sb_subscriber_t *sub, es_err_t *err)
{
    sb_runtime_t *rt = xcalloc(1, sizeof *rt);
    char errstr[512], txn_id[320], client[200];
    rt->sub = sub;
    rt->out = sb_out_new();
    rt->batch_max = (int)es_env_long("EVENTSHOP_SUBSCRIBER_BATCH", 200);
    if (rt->batch_max < 1)
        rt->batch_max = 1;
    rt->linger_ms = (int)es_env_long("EVENTSHOP_SUBSCRIBER_LINGER_MS", 10);
    if (rt->linger_ms < 0)
        rt->linger_ms = 0;
    const char *id = es_env_str("EVENTSHOP_INSTANCE_ID", NULL);
    if (id && *id)
        snprintf(rt->instance, sizeof rt->instance, "%s", id);
    else if (gethostname(rt->instance, sizeof rt->instance) != 0)
        snprintf(rt->instance, sizeof rt->instance, "0");
    rt->instance[sizeof rt->instance - 1] = '\0';
    snprintf(rt->group, sizeof rt->group, "eventshop-%s-subscriber", sub->name);
    snprintf(rt->t_dead, sizeof rt->t_dead, "%s.deadletter", sub->name);
    snprintf(txn_id, sizeof txn_id, "eventshop-%s-subscriber-%s", sub->name, rt->instance);
    snprintf(client, sizeof client, "eventshop-%s-subscriber", sub->name);

    char labels[200];
    snprintf(labels, sizeof labels, "subscriber=\"%s\"", sub->name);
    rt->m_dead =
        es_counter("eventshop_dead_letters_total", "messages sent to a dead-letter topic", labels);
    rt->m_events = es_counter("eventshop_subscriber_events_total", "events handled", labels);
    rt->m_commits =
        es_counter("eventshop_subscriber_commits_total", "committed subscriber batches", labels);
    rt->m_aborts =
        es_counter("eventshop_subscriber_aborts_total", "aborted subscriber batches", labels);
    rt->m_batch_seconds = es_histogram("eventshop_subscriber_batch_seconds",
                                       "time to handle and commit a batch", labels);

    if (!(rt->sr = sr_client_new(es_env_registry_url(), err)) ||
        !(rt->codec = ev_codec_new(es_env_schema_dir(), rt->sr, err)))
        goto fail;
    char txn_timeout[16];
    snprintf(txn_timeout, sizeof txn_timeout, "%d", TXN_TIMEOUT_MS * 2);
    const char *pkv[] = {
        "transactional.id", txn_id, "transaction.timeout.ms", txn_timeout, "linger.ms", "2", NULL};
    rd_kafka_conf_t *pconf = es_kafka_conf_new(client, pkv, err);
    if (!pconf)
        goto fail;
    rt->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof errstr);
    if (!rt->producer) {
        rd_kafka_conf_destroy(pconf);
        es_set(err, ES_EIO, "kafka producer: %s", errstr);
        goto fail;
    }
    /* fences an earlier instance with this id and aborts its open transaction */
    if (es_kafka_error(err, rd_kafka_init_transactions(rt->producer, 60000), "init_transactions"))
        goto fail;
    if (create_dead_letter_topic(rt, err) != 0)
        goto fail;
    if (!(rt->state = sub->init(err)))
        goto fail;
    es_info("subscriber '%s' ready: group '%s', transactional id '%s'", sub->name, rt->group,
            txn_id);
    return rt;
fail:
    sb_runtime_free(rt);
    return NULL;
}

void sb_runtime_stop(sb_runtime_t *rt)
{
    rt->stop = 1;
}

static void backoff_sleep(sb_runtime_t *rt)
{
    double until = now_s() + rt->backoff_s;
    while (!rt->stop && now_s() < until)
        usleep(50 * 1000);
}

int sb_runtime_run(sb_runtime_t *rt, es_err_t *err)
{
    char inst[300];
    snprintf(inst, sizeof inst, "%s-%s", rt->group, rt->instance);
    /* static membership: a restarted instance takes its partitions back at once */
    if (!(rt->consumer = consumer_new(rt, rt->group, inst, false, err)))
        return -1;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(4);
    for (const char *const *t = rt->sub->topics; *t; t++)
        rd_kafka_topic_partition_list_add(topics, *t, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rt->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e)
        return es_kafka_resp_error(err, e, "subscribe");
    rd_kafka_message_t **msgs = xcalloc((size_t)rt->batch_max, sizeof *msgs);
    /* A subscriber without a tick waits in the consumer for as long as there is nothing to do;
     * one with a tick waits until the tick is due. Never a zero timeout when idle: the deadline
     * is moved forward whenever it passes, so an idle role sleeps in the poll. */
    double next_tick = now_s() + 1;
    while (!rt->stop && !rt->fatal) {
        if (!rt->sub->tick && now_s() >= next_tick)
            next_tick = now_s() + 1;
        int wait = (int)((next_tick - now_s()) * 1000);
        size_t n = gather(rt, rt->consumer, msgs, wait > 1 ? wait : 1, NULL);
        if (n > 0 && !rt->fatal) {
            rd_kafka_consumer_group_metadata_t *cgmd =
                rd_kafka_consumer_group_metadata(rt->consumer);
            if (run_batch(rt, rt->consumer, cgmd, msgs, n) == 1)
                backoff_sleep(rt);
            rd_kafka_consumer_group_metadata_destroy(cgmd);
        }
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
        if (rt->sub->tick && now_s() >= next_tick && !rt->fatal && !rt->stop) {
            next_tick = now_s() + 1;
            run_tick(rt);
        }
    }
    free(msgs);
    if (rt->fatal) {
        es_set(err, rt->fatal_err.code, "%s", rt->fatal_err.msg);
        es_error("subscriber '%s' stops on a fatal error: %s", rt->sub->name, rt->fatal_err.msg);
        return -1;
    }
    es_info("subscriber '%s' stopping", rt->sub->name);
    rd_kafka_consumer_close(rt->consumer);
    return 0;
}

int sb_runtime_replay_dead_letters(sb_runtime_t *rt, long *replayed, es_err_t *err)
{
    char group[200];
    int rc = -1;
    long count = 0;
    snprintf(group, sizeof group, "eventshop-%s-deadletter-replay", rt->sub->name);
    rd_kafka_t *c = consumer_new(rt, group, NULL, true, err);
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata_new(group);
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_message_t **msgs = xcalloc((size_t)rt->batch_max, sizeof *msgs);
    int64_t *end = NULL;
    if (!c)
        goto out;
    int np = es_kafka_partition_count(c, rt->t_dead, err);
    if (np < 0)
        goto out;
    end = xcalloc((size_t)np, sizeof *end);
    parts = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(c, rt->t_dead, p, &lo, &hi, 10000);
        if (e) {
            es_kafka_resp_error(err, e, rt->t_dead);
            goto out;
        }
        end[p] = hi;
        rd_kafka_topic_partition_list_add(parts, rt->t_dead, p);
    }
    rd_kafka_resp_err_t e = rd_kafka_committed(c, parts, 10000);
    if (e) {
        es_kafka_resp_error(err, e, "committed offsets");
        goto out;
    }
    for (int p = 0; p < np; p++) {
        if (parts->elems[p].offset < 0)
            parts->elems[p].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if ((e = rd_kafka_assign(c, parts))) {
        es_kafka_resp_error(err, e, "assign");
        goto out;
    }
    double idle_since = now_s();
    for (;;) {
        bool behind = false;
        rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(parts);
        rd_kafka_position(c, pos);
        for (int p = 0; p < np; p++) {
            int64_t at = pos->elems[p].offset;
            if (at < 0) { /* nothing read yet: use the committed offset */
                at = parts->elems[p].offset;
            }
            if (end[p] > 0 && at < end[p])
                behind = true;
        }
        rd_kafka_topic_partition_list_destroy(pos);
        if (!behind || rt->stop || rt->fatal)
            break;
        size_t n = gather(rt, c, msgs, 1000, NULL);
        size_t keep = 0;
        for (size_t i = 0; i < n; i++) { /* only what was there when the replay started */
            if (msgs[i]->partition < np && msgs[i]->offset < end[msgs[i]->partition])
                msgs[keep++] = msgs[i];
            else
                rd_kafka_message_destroy(msgs[i]);
        }
        int brc = keep ? run_batch(rt, c, cgmd, msgs, keep) : 0;
        if (brc == 0)
            count += (long)keep;
        for (size_t i = 0; i < keep; i++)
            rd_kafka_message_destroy(msgs[i]);
        if (brc == 1)
            backoff_sleep(rt);
        if (brc < 0)
            break;
        if (keep > 0)
            idle_since = now_s();
        else if (now_s() - idle_since > 10) {
            es_warn("dead letters of '%s': no progress in 10 s, stopping", rt->sub->name);
            break;
        }
    }
    if (rt->fatal) {
        es_set(err, rt->fatal_err.code, "%s", rt->fatal_err.msg);
        goto out;
    }
    es_info("replayed %ld dead letters of '%s'", count, rt->sub->name);
    rc = 0;
out:
    if (replayed)
        *replayed = count;
    free(msgs);
    free(end);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    if (c) {
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
    return rc;
}

void sb_runtime_free(sb_runtime_t *rt)
{
    if (!rt)
        return;
    if (rt->state && rt->sub->release)
        rt->sub->release(rt->state);
    rt->state = NULL; /* a consumer destroyed unclosed still calls the rebalance callback */
    if (rt->producer) {
        rd_kafka_flush(rt->producer, 5000);
        rd_kafka_destroy(rt->producer);
    }
    if (rt->consumer)
        rd_kafka_destroy(rt->consumer);
    ev_codec_free(rt->codec);
    sr_client_free(rt->sr);
    sb_out_free(rt->out);
    free(rt);
}
