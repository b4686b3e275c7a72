/* The generic event-subscriber runtime: consume, handle, produce and commit offsets in one
 * Kafka transaction per batch (see sb_runtime.h). */
#include "sb_runtime.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include "es_trace.h"
#include "es_txn.h"
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

struct sb_runtime {
    const sb_subscriber_t *sub;
    void *state;
    sr_client_t *sr;
    ev_codec_t *codec;
    es_kafka_t *consumer;
    bool consumer_lost;        /* its fatal error was seen: make it again */
    double consumer_fenced_at; /* when it was last made again after a fence, 0: never */
    es_txn_t *txn;             /* the transactional producer */
    es_txn_rc_t produce_rc;    /* why the last produce of the batch failed */
    char group[160], t_dead[160], instance[128];
    int batch_max, linger_ms;
    volatile sig_atomic_t stop;
    bool rebalanced;
    bool fatal;
    es_err_t fatal_err;
    sb_out_t *out;
    es_metric_t *m_dead, *m_events, *m_commits, *m_aborts, *m_recreates, *m_batch_seconds;
};

/* The liveness beat of the batch loop (also called by es_txn while it waits or backs off). */
static void sb_heartbeat(void)
{
    es_metrics_heartbeat("subscriber");
}

static void set_fatal(sb_runtime_t *rt, const char *what, const char *msg)
{
    rt->fatal = true;
    es_set(&rt->fatal_err, ES_EFATAL, "%s: %s", what, msg);
}

/* --- transactions ------------------------------------------------------------------------- */

/* Produces buf (stolen) with headers h (stolen) inside the open transaction; partition chosen by
 * key. Returns 0, or -1 with err and rt->produce_rc set. */
static int produce(sb_runtime_t *rt, const char *topic, const void *key, size_t key_len, void *buf,
                   size_t len, es_kafka_headers_t *h, es_err_t *err)
{
    es_txn_rc_t rc = es_txn_produce(rt->txn, topic, ES_KAFKA_PARTITION_ANY, key, key_len, buf, len,
                                    h, NULL, err);
    if (rc == ES_TXN_OK)
        return 0;
    rt->produce_rc = rc;
    return -1;
}

static void consumer_fatal(sb_runtime_t *rt, es_kafka_t *consumer);

/* After a lost producer (trc ES_TXN_LOST or ES_TXN_FENCED, with msg): fenced is fatal; else the
 * producer is made again (its last transaction is finished by the broker meanwhile) and
 * consumer (may be NULL: a tick) moved to its committed offsets, since what the lost transaction
 * did is known only now; retried with capped backoff. Returns 0, or -1 (fatal, or a stop). */
static int recover_lost(sb_runtime_t *rt, es_kafka_t *consumer, es_txn_rc_t trc, const char *msg)
{
    if (trc == ES_TXN_FENCED) {
        set_fatal(rt, "transaction", msg);
        return -1;
    }
    es_error("subscriber '%s' lost its transactional producer: %s", rt->sub->name, msg);
    es_err_t err = ES_ERR_INIT;
    if (es_txn_recreate(rt->txn, &err) != 0)
        return -1;
    double wait = 0.2;
    while (consumer && es_txn_rewind_committed(consumer, 30000, &err) != 0) {
        if (es_kafka_fatal_error(consumer, NULL, 0)) {
            /* the outage fenced the consumer too: a new one starts from the committed offsets */
            consumer_fatal(rt, consumer);
            return rt->fatal ? -1 : 0;
        }
        if (rt->stop)
            return -1;
        es_warn("rewinding after a lost producer: %s (again in %.1f s)", err.msg, wait);
        es_clear(&err);
        es_txn_sleep(rt->txn, wait);
        wait = wait * 2 > 30 ? 30 : wait * 2;
    }
    es_info("subscriber '%s' recovered after a lost producer", rt->sub->name);
    return 0;
}

/* The original message, as it came, to "<name>.deadletter" with the reason in headers. */
static int produce_dead_letter(sb_runtime_t *rt, const es_kafka_msg_t *m, const char *reason,
                               es_err_t *err)
{
    es_kafka_headers_t *h = es_kafka_headers_new(6);
    char num[32];
    es_kafka_header_add(h, "reason", reason);
    es_kafka_header_add(h, "source-topic", m->topic);
    snprintf(num, sizeof num, "%d", (int)m->partition);
    es_kafka_header_add(h, "source-partition", num);
    snprintf(num, sizeof num, "%lld", (long long)m->offset);
    es_kafka_header_add(h, "source-offset", num);
    char *tp = es_kafka_header_dup(m, "traceparent");
    if (tp)
        es_kafka_header_add(h, "traceparent", tp);
    free(tp);
    void *buf = NULL;
    if (m->len) {
        buf = xmalloc(m->len);
        memcpy(buf, m->value, m->len);
    }
    es_metric_add(rt->m_dead, 1);
    es_warn("dead letter from %s[%d]@%lld: %s", m->topic, (int)m->partition, (long long)m->offset,
            reason);
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
    long long now = es_wall_ms();
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
        es_kafka_headers_t *h = es_kafka_headers_new(1);
        es_kafka_header_add(h, "traceparent", child);
        if (rc == 0)
            rc = produce(rt, topics[i], keys[i], strlen(keys[i]), bufs[i], lens[i], h, err);
        else {
            free(bufs[i]);
            es_kafka_headers_free(h);
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
static int handle_one(sb_runtime_t *rt, const es_kafka_msg_t *m, es_err_t *err)
{
    const char *type = NULL;
    json_t *ev = NULL;
    es_err_t herr = ES_ERR_INIT;
    char reason[320];
    char *tp = NULL;
    int rc = 0;
    sb_out_clear(rt->out);
    if (!m->value) /* a tombstone: nothing to handle */
        return 0;
    if (ev_decode(rt->codec, m->value, m->len, &type, &ev, &herr) != 0) {
        if (herr.code != ES_EINVAL) { /* the registry, not the data */
            es_set(err, herr.code, "%s", herr.msg);
            return -1;
        }
        snprintf(reason, sizeof reason, "undecodable: %s", herr.msg);
        return produce_dead_letter(rt, m, reason, err);
    }
    tp = es_kafka_header_dup(m, "traceparent");
    es_metric_add(rt->m_events, 1);
    sb_out_set_source(rt->out, m->topic, (int)m->partition, (long long)m->offset);
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

/* A batch being handled: the es_txn_step's work. */
typedef struct sb_batch {
    sb_runtime_t *rt;
    es_kafka_msg_t **msgs;
    size_t n;
} sb_batch_t;

static es_txn_rc_t batch_work(void *arg, es_err_t *err)
{
    sb_batch_t *b = arg;
    for (size_t i = 0; i < b->n; i++)
        if (handle_one(b->rt, b->msgs[i], err) != 0)
            return b->rt->produce_rc != ES_TXN_OK ? b->rt->produce_rc : ES_TXN_ABORT;
    return ES_TXN_OK;
}

/* Handles a batch of messages of consumer in one transaction with their offsets (for group
 * cgmd, borrowed; NULL: consumer's own). Returns 0 when committed, 1 when aborted and rewound
 * (retry after es_txn_backoff), 2 when the producer was lost (then made again and consumer rewound
 * to its committed offsets: read again at once), -1 on a fatal error. */
static int run_batch(sb_runtime_t *rt, es_kafka_t *consumer, const es_kafka_group_t *cgmd,
                     es_kafka_msg_t **msgs, size_t n)
{
    double t0 = es_mono_s();
    es_err_t err = ES_ERR_INIT;
    rt->produce_rc = ES_TXN_OK;
    es_txn_batch_reset(rt->txn);
    for (size_t i = 0; i < n; i++)
        es_txn_batch_add(rt->txn, msgs[i]);
    sb_batch_t b = {rt, msgs, n};
    const es_txn_step_t step = {consumer, cgmd, n, "events", batch_work, NULL, &b};
    es_txn_rc_t trc = es_txn_step(rt->txn, &step, &err);
    if (trc == ES_TXN_OK) {
        es_metric_observe(rt->m_batch_seconds, es_mono_s() - t0);
        return 0;
    }
    if (rt->fatal)
        return -1;
    if (trc == ES_TXN_ABORT)
        return 1;
    return recover_lost(rt, consumer, trc, err.msg) == 0 ? 2 : -1;
}

/* Calls the subscriber's tick and commits what it asked for in a transaction of its own. */
static void run_tick(sb_runtime_t *rt)
{
    es_err_t err = ES_ERR_INIT;
    char bad[320];
    sb_out_clear(rt->out);
    if (rt->sub->tick(rt->state, es_wall_ms(), rt->out, &err) != 0) {
        es_warn("tick of '%s': %s", rt->sub->name, err.msg);
        sb_out_clear(rt->out);
        return;
    }
    if (sb_out_count(rt->out) == 0)
        return;
    rt->produce_rc = ES_TXN_OK;
    es_txn_rc_t trc = es_txn_begin(rt->txn, &err);
    if (trc != ES_TXN_OK) {
        sb_out_clear(rt->out);
        recover_lost(rt, NULL, trc, err.msg);
        return;
    }
    int rc = produce_outputs(rt, NULL, NULL, bad, sizeof bad, &err);
    sb_out_clear(rt->out);
    if (rc != 0) {
        es_error("tick of '%s' dropped: %s", rt->sub->name, rc > 0 ? bad : err.msg);
        trc = rc < 0 && rt->produce_rc != ES_TXN_OK ? rt->produce_rc : ES_TXN_ABORT;
    } else {
        trc = es_txn_commit(rt->txn, &err);
    }
    if (trc == ES_TXN_ABORT) {
        es_clear(&err);
        trc = es_txn_abort(rt->txn, &err);
    }
    if (trc != ES_TXN_OK)
        recover_lost(rt, NULL, trc, err.msg);
}

/* --- consuming ---------------------------------------------------------------------------- */

/* Tells the subscriber, topic by topic, which partitions it owns now (parts NULL: none). */
static void notify_assigned(sb_runtime_t *rt, const es_kafka_parts_t *parts)
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

static void rebalance_cb(es_kafka_t *rk, int code, es_kafka_parts_t *parts, void *opaque)
{
    sb_runtime_t *rt = opaque;
    rt->rebalanced = true;
    bool assign = code == ES_KAFKA_ERR_ASSIGN_PARTITIONS;
    if (assign) {
        es_err_t err = ES_ERR_INIT;
        if (es_kafka_assign_committed(rk, parts, 60000, &rt->stop, sb_heartbeat, &err) != 0) {
            set_fatal(rt, "consumer", err.msg);
            return;
        }
        es_info("'%s' assigned %d partitions", rt->sub->name, parts->cnt);
        es_metrics_set_ready(true);
    } else {
        es_kafka_assign(rk, NULL);
        es_info("'%s' partitions revoked (%s)", rt->sub->name, es_kafka_err_str(code));
    }
    notify_assigned(rt, assign ? parts : NULL);
}

/* A consumer's fatal error: only a static member's fence raises one. A fence right after a
 * broker outage is the consumer's own rejoin racing its old member id: the subscription consumer
 * is made again (main_consumer_open). A second fence soon after means a twin instance with the
 * same EVENTSHOP_INSTANCE_ID: stop with that said, rather than fence each other forever. */
static void consumer_fatal(sb_runtime_t *rt, es_kafka_t *consumer)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_consumer_fatal(consumer, &err);
    if (consumer != rt->consumer ||
        es_kafka_fence_is_twin(consumer, rt->consumer_fenced_at, es_mono_s())) {
        set_fatal(rt, "consumer", err.msg);
        return;
    }
    rt->consumer_lost = true;
}

/* Gathers up to batch_max messages: the first (waiting at most wait_ms), then what is already
 * fetched (after linger_ms, 0 unless set; see es_kafka_gather). A rebalance meanwhile drops what
 * was gathered. */
static size_t gather(sb_runtime_t *rt, es_kafka_t *consumer, es_kafka_msg_t **msgs, int wait_ms)
{
    const es_kafka_gather_t g = {
        (size_t)rt->batch_max, wait_ms, rt->linger_ms, &rt->stop, &rt->fatal, &rt->rebalanced};
    bool fatal;
    size_t n = es_kafka_gather(consumer, &g, msgs, &fatal);
    if (fatal)
        consumer_fatal(rt, consumer);
    return n;
}

/* --- life cycle --------------------------------------------------------------------------- */

/* Creates "<name>.deadletter" unless it exists (dead letters are kept forever). */
static int create_dead_letter_topic(sb_runtime_t *rt, es_err_t *err)
{
    int rf = (int)es_env_long("EVENTSHOP_REPLICATION_FACTOR", 1);
    const char *kv[] = {"retention.ms", "-1", NULL};
    return es_kafka_create_topic(es_txn_producer(rt->txn), rt->t_dead, es_env_partitions(), rf, kv,
                                 30000, err);
}

static es_kafka_t *consumer_new(sb_runtime_t *rt, const char *group, const char *instance, bool eof,
                                es_err_t *err)
{
    char client[200];
    snprintf(client, sizeof client, "eventshop-%s-subscriber", rt->sub->name);
    const char *extra[] = {"topic.metadata.refresh.interval.ms", "10000", NULL};
    es_kafka_conf_t *conf = es_txn_consumer_conf(client, group, instance, eof, extra, rt,
                                                 eof ? NULL : rebalance_cb, err);
    if (!conf)
        return NULL;
    return es_kafka_new(ES_KAFKA_CONSUMER, conf, err);
}

sb_runtime_t *sb_runtime_new(const sb_subscriber_t *sub, es_err_t *err)
{
    sb_runtime_t *rt = xcalloc(1, sizeof *rt);
    char txn_id[320], client[200];
    rt->sub = sub;
    rt->out = sb_out_new();
    rt->batch_max = (int)es_env_long("EVENTSHOP_SUBSCRIBER_BATCH", 200);
    if (rt->batch_max < 1)
        rt->batch_max = 1;
    rt->linger_ms = (int)es_env_long("EVENTSHOP_SUBSCRIBER_LINGER_MS", 0);
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
    rt->m_recreates = es_counter("eventshop_subscriber_producer_recreates_total",
                                 "subscriber transactional producers made again after a fatal "
                                 "error",
                                 labels);
    rt->m_batch_seconds = es_histogram("eventshop_subscriber_batch_seconds",
                                       "time to handle and commit a batch", labels);

    if (!(rt->sr = sr_client_new(es_env_registry_url(), err)) ||
        !(rt->codec = ev_codec_new(es_env_schema_dir(), rt->sr, err)))
        goto fail;
    es_txn_config_t tcfg = {.client_id = client,
                            .transactional_id = txn_id,
                            .timeout_ms = TXN_TIMEOUT_MS,
                            .stop = &rt->stop,
                            .m_commits = rt->m_commits,
                            .m_aborts = rt->m_aborts,
                            .m_recreates = rt->m_recreates,
                            .heartbeat = sb_heartbeat};
    if (!(rt->txn = es_txn_new(&tcfg, err)))
        goto fail;
    if (create_dead_letter_topic(rt, err) != 0)
        goto fail;
    if (!(rt->state = sub->init_with ? sub->init_with(rt, err) : sub->init(err)))
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

/* Makes the subscription consumer (rt->consumer) and subscribes it. 0, or -1 with err. */
static int main_consumer_open(sb_runtime_t *rt, es_err_t *err)
{
    char inst[300];
    snprintf(inst, sizeof inst, "%s-%s", rt->group, rt->instance);
    /* static membership: a restarted instance takes its partitions back at once */
    if (!(rt->consumer = consumer_new(rt, rt->group, inst, false, err)))
        return -1;
    int n = 0;
    while (rt->sub->topics[n])
        n++;
    return es_kafka_resp_error(err, es_kafka_subscribe(rt->consumer, rt->sub->topics, n),
                               "subscribe");
}

/* Destroys the fenced subscription consumer and makes a new one (its assignment follows as on a
 * start). Returns 0, or -1 on a stop (rt->consumer is then NULL). */
static es_kafka_t *main_consumer_reopen(void *arg, es_err_t *err)
{
    sb_runtime_t *rt = arg;
    if (main_consumer_open(rt, err) != 0 && rt->consumer) {
        es_kafka_destroy(rt->consumer);
        rt->consumer = NULL;
    }
    return rt->consumer;
}

static int main_consumer_remake(sb_runtime_t *rt)
{
    rt->consumer_lost = false;
    rt->consumer_fenced_at = es_mono_s();
    es_kafka_destroy(rt->consumer);
    rt->consumer = NULL;
    rt->consumer = es_txn_remake_consumer(rt->txn, rt->sub->name, main_consumer_reopen, rt);
    return rt->consumer ? 0 : -1;
}

int sb_runtime_run(sb_runtime_t *rt, es_err_t *err)
{
    if (main_consumer_open(rt, err) != 0)
        return -1;
    es_kafka_msg_t **msgs = xcalloc((size_t)rt->batch_max, sizeof *msgs);
    /* A subscriber without a tick waits in the consumer for as long as there is nothing to do;
     * one with a tick waits until the tick is due. Never a zero timeout when idle: the deadline
     * is moved forward whenever it passes, so an idle role sleeps in the poll. */
    double next_tick = es_mono_s() + 1;
    es_kafka_readiness_t ready = {0};
    while (!rt->stop && !rt->fatal) {
        sb_heartbeat();
        es_kafka_check_readiness(rt->consumer, &ready);
        if (!rt->sub->tick && es_mono_s() >= next_tick)
            next_tick = es_mono_s() + 1;
        int wait = (int)((next_tick - es_mono_s()) * 1000);
        size_t n = gather(rt, rt->consumer, msgs, wait > 1 ? wait : 1);
        if (n > 0 && !rt->fatal) {
            if (run_batch(rt, rt->consumer, NULL, msgs, n) == 1)
                es_txn_backoff(rt->txn);
        }
        for (size_t i = 0; i < n; i++)
            es_kafka_msg_free(msgs[i]);
        if (rt->consumer_lost && !rt->fatal && main_consumer_remake(rt) != 0)
            break;
        if (rt->sub->tick && es_mono_s() >= next_tick && !rt->fatal && !rt->stop) {
            next_tick = es_mono_s() + 1;
            run_tick(rt);
        }
    }
    free(msgs);
    char who[160];
    snprintf(who, sizeof who, "subscriber '%s'", rt->sub->name);
    return es_txn_loop_end(who, rt->consumer, rt->fatal, &rt->fatal_err, err);
}

/* A replay of the dead letters: its own consumer (assigned, no group membership) and where each
 * partition ended when it began. */
typedef struct dl_replay {
    es_kafka_t *c;
    es_kafka_group_t *cgmd;
    es_kafka_parts_t *parts; /* every partition, at its committed offset */
    int64_t *end;            /* per partition: the high watermark at the start */
    int np;
    es_kafka_msg_t **msgs;
    long count; /* dead letters replayed */
} dl_replay_t;

/* Notes each partition's end and assigns them all at their committed offsets (the earliest when
 * none). 0, or -1 with err. */
static int dl_assign(sb_runtime_t *rt, dl_replay_t *r, es_err_t *err)
{
    if ((r->np = es_kafka_partition_count(r->c, rt->t_dead, err)) < 0)
        return -1;
    r->end = xcalloc((size_t)r->np, sizeof *r->end);
    r->parts = es_kafka_parts_new(r->np);
    for (int p = 0; p < r->np; p++) {
        int64_t lo = 0, hi = 0;
        int e = es_kafka_query_watermarks(r->c, rt->t_dead, p, &lo, &hi, 10000);
        if (e)
            return es_kafka_resp_error(err, e, rt->t_dead);
        r->end[p] = hi;
        es_kafka_parts_add(r->parts, rt->t_dead, p);
    }
    int e = es_kafka_committed(r->c, r->parts, 10000);
    if (e)
        return es_kafka_resp_error(err, e, "committed offsets");
    for (int p = 0; p < r->np; p++) {
        if (r->parts->elems[p].offset < 0)
            r->parts->elems[p].offset = ES_KAFKA_OFFSET_BEGINNING;
    }
    return es_kafka_resp_error(err, es_kafka_assign(r->c, r->parts), "assign");
}

/* Whether some partition is still before the end it had at the start. */
static bool dl_behind(const dl_replay_t *r)
{
    bool behind = false;
    es_kafka_parts_t *pos = es_kafka_parts_copy(r->parts);
    es_kafka_position(r->c, pos);
    for (int p = 0; p < r->np; p++) {
        int64_t at = pos->elems[p].offset;
        if (at < 0) /* nothing read yet: use the committed offset */
            at = r->parts->elems[p].offset;
        if (r->end[p] > 0 && at < r->end[p])
            behind = true;
    }
    es_kafka_parts_free(pos);
    return behind;
}

/* Gathers a batch of what was there when the replay started and runs it. The number of dead
 * letters kept (0: none came), or -1 when the replay must end. */
static long dl_step(sb_runtime_t *rt, dl_replay_t *r)
{
    size_t n = gather(rt, r->c, r->msgs, 1000);
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) { /* only what was there when the replay started */
        es_kafka_msg_t *m = r->msgs[i];
        if (m->partition < r->np && m->offset < r->end[m->partition])
            r->msgs[keep++] = m;
        else
            es_kafka_msg_free(m);
    }
    int brc = keep ? run_batch(rt, r->c, r->cgmd, r->msgs, keep) : 0;
    if (brc == 0)
        r->count += (long)keep;
    for (size_t i = 0; i < keep; i++)
        es_kafka_msg_free(r->msgs[i]);
    if (brc == 1)
        es_txn_backoff(rt->txn);
    return brc < 0 ? -1 : (long)keep;
}

/* Runs batches until every partition reached its end, a stop, a fatal error, or 10 s without a
 * dead letter. */
static void dl_run(sb_runtime_t *rt, dl_replay_t *r)
{
    double idle_since = es_mono_s();
    while (dl_behind(r) && !rt->stop && !rt->fatal) {
        long kept = dl_step(rt, r);
        if (kept < 0)
            break;
        if (kept > 0) {
            idle_since = es_mono_s();
        } else if (es_mono_s() - idle_since > 10) {
            es_warn("dead letters of '%s': no progress in 10 s, stopping", rt->sub->name);
            break;
        }
    }
}

int sb_runtime_replay_dead_letters(sb_runtime_t *rt, long *replayed, es_err_t *err)
{
    char group[200];
    int rc = -1;
    snprintf(group, sizeof group, "eventshop-%s-deadletter-replay", rt->sub->name);
    dl_replay_t r = {.c = consumer_new(rt, group, NULL, true, err),
                     .cgmd = es_kafka_group_new(group),
                     .msgs = xcalloc((size_t)rt->batch_max, sizeof *r.msgs)};
    if (r.c && dl_assign(rt, &r, err) == 0) {
        dl_run(rt, &r);
        if (rt->fatal) {
            es_set(err, rt->fatal_err.code, "%s", rt->fatal_err.msg);
        } else {
            es_info("replayed %ld dead letters of '%s'", r.count, rt->sub->name);
            rc = 0;
        }
    }
    if (replayed)
        *replayed = r.count;
    free(r.msgs);
    free(r.end);
    es_kafka_parts_free(r.parts);
    es_kafka_group_free(r.cgmd);
    if (r.c) {
        es_kafka_close(r.c);
        es_kafka_destroy(r.c);
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
    es_txn_free(rt->txn);
    if (rt->consumer)
        es_kafka_destroy(rt->consumer);
    ev_codec_free(rt->codec);
    sr_client_free(rt->sr);
    sb_out_free(rt->out);
    free(rt);
}

/* --- history ---------------------------------------------------------------------------- */

typedef struct history_arg {
    sb_runtime_t *rt;
    sb_history_fn fn;
    void *arg;
    long long next;
    es_err_t *err;
} history_arg_t;

static int history_msg(const es_kafka_msg_t *m, void *arg)
{
    history_arg_t *h = arg;
    h->next = (long long)m->offset + 1;
    if (!m->value)
        return 0;
    const char *type = NULL;
    json_t *ev = NULL;
    es_err_t e = ES_ERR_INIT;
    if (ev_decode(h->rt->codec, m->value, m->len, &type, &ev, &e) != 0) {
        if (e.code == ES_EINVAL) /* the live consumer dead-letters it */
            return 0;
        es_set(h->err, ES_EIO, "%s", e.msg); /* the registry, not the data */
        return 1;
    }
    int rc = h->fn(h->arg, type, ev, (long long)m->offset, h->err);
    json_decref(ev);
    return rc;
}

int sb_runtime_read_history(sb_runtime_t *rt, const char *topic, int partition, sb_history_fn fn,
                            void *arg, int timeout_ms, long long *next, es_err_t *err)
{
    history_arg_t h = {rt, fn, arg, 0, err};
    int rc = es_kafka_read_partition(topic, partition, history_msg, &h, timeout_ms, err);
    *next = h.next;
    return rc;
}
