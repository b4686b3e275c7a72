/* The shared transactional loop (see es_txn.h): one place classifies librdkafka's transactional
 * errors, retries, aborts, rewinds and recreates the producer. */
#include "es_txn.h"
#include "es_fault.h"
#include "es_kafka.h"
#include "es_kafka_rd.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_S 0.2
#define BACKOFF_MAX_S   5.0 /* a dependency back after an outage is used within ~5 s */
#define RETRY_MAX_S     2.0 /* a retriable call is retried at most this far apart */
#define SLICE_MS        50

typedef struct es_txn_slot {
    int64_t offset;
    rd_kafka_resp_err_t err;
    bool done;
} es_txn_slot_t;

struct es_txn {
    char *client_id, *txn_id;
    int timeout_ms, txn_timeout_ms;
    const volatile sig_atomic_t *stop;
    es_metric_t *m_commits, *m_aborts, *m_recreates;
    void (*heartbeat)(void);
    rd_kafka_t *producer;
    bool open;         /* a transaction was begun and not yet committed or aborted */
    bool offsets_sent; /* the batch's offsets are in the open transaction already */
    double begun_at;   /* when it was begun (monotonic seconds) */
    uint32_t epoch;    /* transaction counter, tags delivery reports */
    es_txn_slot_t *slots;
    size_t nslots, cap_slots;
    /* the batch: per partition the first offset (rewind) and the next one (commit) */
    rd_kafka_topic_partition_list_t *first, *next;
    double backoff_s;
    unsigned int seed;
};

static void beat(const es_txn_t *t)
{
    if (t->heartbeat)
        t->heartbeat();
}

static bool stopping(const es_txn_t *t)
{
    return t->stop && *t->stop;
}

/* Sleeps s seconds in slices, returning early on a stop. Never a busy wait. */
static void sleep_s(const es_txn_t *t, double s)
{
    double until = es_mono_s() + s;
    for (;;) {
        beat(t);
        double left = until - es_mono_s();
        if (left <= 0 || stopping(t))
            return;
        int ms = left * 1000 < SLICE_MS ? (int)(left * 1000) + 1 : SLICE_MS;
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stopping(t))
            ;
    }
}

/* s spread by +-20 % so that instances that failed together do not retry together */
static double jitter(es_txn_t *t, double s)
{
    return s * (0.8 + 0.4 * ((double)rand_r(&t->seed) / RAND_MAX));
}

const char *es_txn_rc_name(es_txn_rc_t rc)
{
    switch (rc) {
    case ES_TXN_OK:
        return "ok";
    case ES_TXN_ABORT:
        return "abort";
    case ES_TXN_LOST:
        return "lost";
    case ES_TXN_FENCED:
        return "fenced";
    }
    return "unknown";
}

/* --- producer ----------------------------------------------------------------------------- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)opaque;
    es_txn_t *t = es_kafka_arg(rk);
    /* the opaque carries the transaction's epoch: a late report of an aborted transaction's
     * purged message must not land in a slot of the next one */
    intptr_t tag = (intptr_t)m->_private;
    intptr_t slot = tag & 0xffffffff;
    if (tag >= 0 && (uint32_t)(tag >> 32) == t->epoch && (size_t)slot < t->nslots) {
        t->slots[slot].offset = m->offset;
        t->slots[slot].err = m->err;
        t->slots[slot].done = true;
    }
    /* an abort purges what the transaction had not sent yet: expected, not worth a line each */
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        es_debug("delivery to %s[%d] purged", rd_kafka_topic_name(m->rkt), (int)m->partition);
    else if (m->err)
        es_error("delivery to %s[%d] failed: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                 rd_kafka_err2str(m->err));
}

static rd_kafka_t *producer_new(es_txn_t *t, es_err_t *err)
{
    char txn_timeout[16];
    snprintf(txn_timeout, sizeof txn_timeout, "%d", t->txn_timeout_ms);
    const char *kv[] = {"transactional.id", t->txn_id, "transaction.timeout.ms", txn_timeout,
                        /* a batch's records go in a few large requests, not many small ones
                         * (the broker's CPU per record halved: it shares the cores). No added
                         * wait: the flush before the commit sends what lingers at once, and
                         * send_offsets, called before it, takes about as long */
                        "linger.ms", "5",
                        /* the coordinator answers CONCURRENT_TRANSACTIONS to the next batch's
                         * AddPartitionsToTxn and AddOffsetsToTxn until it has written the last
                         * commit's markers, a few ms; librdkafka retries after this backoff
                         * (default 100 ms): send_offsets took 167 of a batch's ~400 ms */
                        "retry.backoff.ms", "10", NULL};
    es_kafka_conf_t *conf = es_kafka_conf_new(t->client_id, kv, err);
    if (!conf)
        return NULL;
    es_kafka_conf_set_arg(conf, t);
    rd_kafka_conf_set_dr_msg_cb(es_kafka_conf_rd(conf), dr_msg_cb);
    rd_kafka_t *p = es_kafka_new(ES_KAFKA_PRODUCER, conf, err);
    if (!p)
        return NULL;
    /* fences any earlier instance with this id and aborts (or completes) its open transaction */
    if (es_kafka_error(err, rd_kafka_init_transactions(p, t->txn_timeout_ms),
                       "init_transactions") != 0) {
        es_kafka_destroy(p);
        return NULL;
    }
    return p;
}

es_txn_t *es_txn_new(const es_txn_config_t *cfg, es_err_t *err)
{
    es_txn_t *t = xcalloc(1, sizeof *t);
    t->client_id = xstrdup(cfg->client_id);
    t->txn_id = xstrdup(cfg->transactional_id);
    t->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    t->txn_timeout_ms = t->timeout_ms * 2;
    t->stop = cfg->stop;
    t->m_commits = cfg->m_commits;
    t->m_aborts = cfg->m_aborts;
    t->m_recreates = cfg->m_recreates;
    t->heartbeat = cfg->heartbeat;
    t->seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)t;
    t->first = rd_kafka_topic_partition_list_new(8);
    t->next = rd_kafka_topic_partition_list_new(8);
    if (!(t->producer = producer_new(t, err))) {
        es_txn_free(t);
        return NULL;
    }
    return t;
}

void es_txn_free(es_txn_t *t)
{
    if (!t)
        return;
    if (t->producer) {
        rd_kafka_flush(t->producer, 5000);
        es_kafka_destroy(t->producer);
    }
    rd_kafka_topic_partition_list_destroy(t->first);
    rd_kafka_topic_partition_list_destroy(t->next);
    free(t->slots);
    free(t->client_id);
    free(t->txn_id);
    free(t);
}

rd_kafka_t *es_txn_producer(es_txn_t *t)
{
    return t->producer;
}

int es_txn_recreate(es_txn_t *t, es_err_t *err)
{
    if (t->producer) {
        /* its transaction, if any, is finished by the next init_transactions: nothing of it
         * must be sent any more */
        rd_kafka_purge(t->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        es_kafka_destroy(t->producer);
        t->producer = NULL;
    }
    t->open = false;
    t->nslots = 0;
    t->offsets_sent = false;
    t->epoch = (t->epoch + 1) & 0x7fffffff;
    es_txn_batch_reset(t);
    double wait = BACKOFF_FIRST_S;
    for (int attempt = 1;; attempt++) {
        es_err_t e = ES_ERR_INIT;
        beat(t);
        if ((t->producer = producer_new(t, &e))) {
            es_metric_add(t->m_recreates, 1);
            es_info("transactional producer '%s' recreated (attempt %d)", t->txn_id, attempt);
            return 0;
        }
        if (stopping(t))
            return es_set(err, e.code ? e.code : ES_EIO, "%s", e.msg);
        wait = jitter(t, wait);
        es_warn("recreating transactional producer '%s' (attempt %d): %s; again in %.1f s",
                t->txn_id, attempt, e.msg, wait);
        sleep_s(t, wait);
        wait = wait * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : wait * 2;
    }
}

/* --- error classification ------------------------------------------------------------------ */

es_txn_rc_t es_txn_fatal_outcome(int code, double open_s, int txn_timeout_ms)
{
    bool fenced = code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                  code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
    return fenced && open_s * 1000 < txn_timeout_ms ? ES_TXN_FENCED : ES_TXN_LOST;
}

es_txn_rc_t es_txn_error_outcome(bool fatal, bool requires_abort, bool retriable, es_txn_rc_t other,
                                 bool *retry)
{
    *retry = !fatal && !requires_abort && retriable;
    if (fatal)
        return ES_TXN_LOST; /* or ES_TXN_FENCED: es_txn_fatal_outcome tells */
    return requires_abort || retriable ? ES_TXN_ABORT : other;
}

/* The producer's fatal error as LOST or FENCED (see es_txn.h), with err set. */
static es_txn_rc_t fatal_rc(es_txn_t *t, rd_kafka_resp_err_t code, const char *what,
                            const char *msg, es_err_t *err)
{
    double age = t->open ? es_mono_s() - t->begun_at : 0;
    if (es_txn_fatal_outcome(code, age, t->txn_timeout_ms) == ES_TXN_FENCED) {
        es_set(err, ES_EFATAL,
               "%s: fenced by another instance with transactional id '%s' (%s): two instances "
               "share EVENTSHOP_INSTANCE_ID",
               what, t->txn_id, msg);
        return ES_TXN_FENCED;
    }
    es_set(err, ES_EIO, "%s: the transactional producer is lost (%s)", what, msg);
    return ES_TXN_LOST;
}

/* Classifies e (destroyed here). *retriable tells a retriable error apart (then ES_TXN_ABORT is
 * returned and err is left unset: the caller retries, or sets it when it gives up). other is
 * what a plain error (not fatal, not abortable, not retriable) means at this call. */
static es_txn_rc_t classify(es_txn_t *t, rd_kafka_error_t *e, const char *what, es_txn_rc_t other,
                            bool *retriable, es_err_t *err)
{
    char fmsg[512];
    rd_kafka_resp_err_t fcode = rd_kafka_fatal_error(t->producer, fmsg, sizeof fmsg);
    bool fatal = rd_kafka_error_is_fatal(e) || fcode;
    es_txn_rc_t rc = es_txn_error_outcome(fatal, rd_kafka_error_txn_requires_abort(e),
                                          rd_kafka_error_is_retriable(e), other, retriable);
    const char *why = rd_kafka_error_string(e);
    if (fatal) {
        rc = fatal_rc(t, fcode ? fcode : rd_kafka_error_code(e), what, fcode ? fmsg : why, err);
        es_error("%s: %s (fatal: %s)", what, why, es_txn_rc_name(rc));
    } else {
        if (!*retriable) /* a retriable one is logged by the caller, with its next attempt */
            es_warn("%s: %s (%s)", what, why,
                    rc == ES_TXN_ABORT ? "aborting the batch" : "recreating the producer");
        es_set(err, ES_EIO, "%s: %s", what, why);
    }
    rd_kafka_error_destroy(e);
    return rc;
}

typedef enum { OP_SEND_OFFSETS, OP_COMMIT, OP_ABORT } txn_op_t;

static rd_kafka_error_t *op_call(es_txn_t *t, txn_op_t op,
                                 const rd_kafka_consumer_group_metadata_t *cgmd)
{
    switch (op) {
    case OP_SEND_OFFSETS:
        return rd_kafka_send_offsets_to_transaction(t->producer, t->next, cgmd, t->timeout_ms);
    case OP_COMMIT:
        return rd_kafka_commit_transaction(t->producer, t->timeout_ms);
    case OP_ABORT:
        return rd_kafka_abort_transaction(t->producer, t->timeout_ms);
    }
    return NULL;
}

/* Calls op, retrying a retriable error with capped backoff for at most the transaction timeout
 * (past it the broker aborts the transaction anyway). other: see classify. */
static es_txn_rc_t call_retrying(es_txn_t *t, txn_op_t op, const char *what,
                                 const rd_kafka_consumer_group_metadata_t *cgmd, es_txn_rc_t other,
                                 es_err_t *err)
{
    double deadline = es_mono_s() + t->txn_timeout_ms / 1000.0;
    double wait = 0.1;
    for (;;) {
        beat(t);
        rd_kafka_error_t *e = op_call(t, op, cgmd);
        if (!e)
            return ES_TXN_OK;
        bool retriable;
        es_err_t cerr = ES_ERR_INIT;
        es_txn_rc_t rc = classify(t, e, what, other, &retriable, &cerr);
        if (!retriable || es_mono_s() >= deadline || stopping(t)) {
            if (retriable) /* it did not get better in time: give up this transaction */
                rc = other;
            es_set(err, cerr.code, "%s", cerr.msg);
            return rc;
        }
        wait = jitter(t, wait);
        es_warn("%s (retrying in %.2f s)", cerr.msg, wait);
        sleep_s(t, wait);
        wait = wait * 2 > RETRY_MAX_S ? RETRY_MAX_S : wait * 2;
    }
}

/* --- the batch ---------------------------------------------------------------------------- */

void es_txn_batch_reset(es_txn_t *t)
{
    rd_kafka_topic_partition_list_destroy(t->first);
    rd_kafka_topic_partition_list_destroy(t->next);
    t->first = rd_kafka_topic_partition_list_new(8);
    t->next = rd_kafka_topic_partition_list_new(8);
}

void es_txn_batch_add(es_txn_t *t, const es_kafka_msg_t *m)
{
    const char *topic = m->topic;
    rd_kafka_topic_partition_t *f =
        rd_kafka_topic_partition_list_find(t->first, topic, m->partition);
    if (!f)
        rd_kafka_topic_partition_list_add(t->first, topic, m->partition)->offset = m->offset;
    else if (m->offset < f->offset)
        f->offset = m->offset;
    rd_kafka_topic_partition_t *n =
        rd_kafka_topic_partition_list_find(t->next, topic, m->partition);
    if (!n)
        n = rd_kafka_topic_partition_list_add(t->next, topic, m->partition);
    if (m->offset + 1 > n->offset)
        n->offset = m->offset + 1;
}

void es_txn_rewind(es_txn_t *t, rd_kafka_t *consumer)
{
    if (t->first->cnt == 0)
        return;
    rd_kafka_topic_partition_list_t *back = rd_kafka_topic_partition_list_copy(t->first);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(consumer, back, 10000);
    if (e) {
        es_warn("seek back after abort: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(back);
}

int es_txn_rewind_committed(rd_kafka_t *consumer, int timeout_ms, es_err_t *err)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(consumer, &parts);
    if (e)
        return es_kafka_resp_error(err, e, "assignment");
    int rc = 0;
    if (parts->cnt > 0) {
        if ((e = rd_kafka_committed(consumer, parts, timeout_ms))) {
            rc = es_kafka_resp_error(err, e, "committed offsets");
            goto out;
        }
        for (int i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].offset < 0)
                parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            parts->elems[i].err = 0;
        }
        rd_kafka_error_t *se = rd_kafka_seek_partitions(consumer, parts, timeout_ms);
        if (se) {
            rc =
                es_set(err, ES_EIO, "seek to the committed offsets: %s", rd_kafka_error_string(se));
            rd_kafka_error_destroy(se);
            goto out;
        }
        for (int i = 0; i < parts->cnt; i++) {
            if (parts->elems[i].err) {
                rc = es_set(err, ES_EIO, "seek %s[%d] to %lld: %s", parts->elems[i].topic,
                            (int)parts->elems[i].partition, (long long)parts->elems[i].offset,
                            rd_kafka_err2str(parts->elems[i].err));
                goto out;
            }
        }
    }
    es_info("rewound %d partitions to their committed offsets", parts->cnt);
out:
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

/* --- the transaction ------------------------------------------------------------------------ */

es_txn_rc_t es_txn_begin(es_txn_t *t, es_err_t *err)
{
    t->nslots = 0;
    t->offsets_sent = false;
    t->epoch = (t->epoch + 1) & 0x7fffffff;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(t->producer);
    if (!e) {
        t->open = true;
        t->begun_at = es_mono_s();
        return ES_TXN_OK;
    }
    bool retriable;
    /* begin fails only on a state error: nothing is open, the producer must be made again */
    return classify(t, e, "begin_transaction", ES_TXN_LOST, &retriable, err) == ES_TXN_FENCED
               ? ES_TXN_FENCED
               : ES_TXN_LOST;
}

/* The outcome of a failed produce: the producer's fatal error if it has one, else abort. */
static es_txn_rc_t produce_failed(es_txn_t *t, rd_kafka_resp_err_t e, const char *topic,
                                  es_err_t *err)
{
    char fmsg[512];
    rd_kafka_resp_err_t fcode = rd_kafka_fatal_error(t->producer, fmsg, sizeof fmsg);
    if (fcode || e == RD_KAFKA_RESP_ERR__FATAL)
        return fatal_rc(t, fcode ? fcode : e, topic, fcode ? fmsg : rd_kafka_err2str(e), err);
    es_kafka_resp_error(err, e, topic);
    return ES_TXN_ABORT;
}

es_txn_rc_t es_txn_produce(es_txn_t *t, const char *topic, int32_t partition, const void *key,
                           size_t key_len, void *buf, size_t len, es_kafka_headers_t *headers,
                           size_t *slot, es_err_t *err)
{
    intptr_t tag = -1;
    if (slot) {
        if (t->nslots == t->cap_slots) {
            t->cap_slots = t->cap_slots ? t->cap_slots * 2 : 64;
            t->slots = xrealloc(t->slots, t->cap_slots * sizeof *t->slots);
        }
        t->slots[t->nslots] = (es_txn_slot_t){-1, 0, false};
        *slot = t->nslots;
        tag = ((intptr_t)t->epoch << 32) | (intptr_t)t->nslots++;
    }
    double deadline = es_mono_s() + t->timeout_ms / 1000.0;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            t->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(buf, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_OPAQUE((void *)tag),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (!e)
            return ES_TXN_OK;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && es_mono_s() < deadline && !stopping(t)) {
            /* serves delivery reports while the queue drains: a blocking wait, not a spin */
            beat(t);
            rd_kafka_poll(t->producer, SLICE_MS);
            continue;
        }
        if (headers)
            rd_kafka_headers_destroy(headers);
        free(buf);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return produce_failed(t, e, topic, err);
        es_set(err, ES_ETIMEOUT, "%s: the producer queue stayed full for %d ms", topic,
               t->timeout_ms);
        return ES_TXN_ABORT;
    }
}

es_txn_rc_t es_txn_flush(es_txn_t *t, es_err_t *err)
{
    rd_kafka_resp_err_t fe = rd_kafka_flush(t->producer, t->timeout_ms);
    if (fe)
        return produce_failed(t, fe, "flushing", err);
    for (size_t s = 0; s < t->nslots; s++) {
        if (!t->slots[s].done || t->slots[s].err) {
            es_set(err, ES_EIO, "a message was not delivered: %s",
                   rd_kafka_err2str(t->slots[s].err));
            return ES_TXN_ABORT;
        }
    }
    return ES_TXN_OK;
}

int64_t es_txn_offset(const es_txn_t *t, size_t slot)
{
    return slot < t->nslots && t->slots[slot].done ? t->slots[slot].offset : -1;
}

es_txn_rc_t es_txn_send_offsets(es_txn_t *t, const es_kafka_group_t *cgmd, es_err_t *err)
{
    if (t->next->cnt == 0 || t->offsets_sent)
        return ES_TXN_OK;
    es_txn_rc_t rc =
        call_retrying(t, OP_SEND_OFFSETS, "send_offsets_to_transaction", cgmd, ES_TXN_ABORT, err);
    t->offsets_sent = rc == ES_TXN_OK;
    return rc;
}

es_txn_rc_t es_txn_commit(es_txn_t *t, es_err_t *err)
{
    if (es_fault_hit("txn.before_commit")) {
        es_warn("commit_transaction: fault 'txn.before_commit' (aborting the batch)");
        es_set(err, ES_EIO, "commit_transaction: fault 'txn.before_commit'");
        return ES_TXN_ABORT;
    }
    if (es_fault_hit("txn.fatal_before_commit"))
        rd_kafka_test_fatal_error(t->producer, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_ID_MAPPING,
                                  "fault 'txn.fatal_before_commit'");
    char fmsg[512];
    rd_kafka_resp_err_t fcode = rd_kafka_fatal_error(t->producer, fmsg, sizeof fmsg);
    if (fcode) { /* a fatal error raised outside a transactional call (idempotence layer) */
        es_txn_rc_t rc = fatal_rc(t, fcode, "commit_transaction", fmsg, err);
        es_error("commit_transaction: %s (fatal: %s)", fmsg, es_txn_rc_name(rc));
        return rc;
    }
    es_txn_rc_t rc = call_retrying(t, OP_COMMIT, "commit_transaction", NULL, ES_TXN_ABORT, err);
    if (rc == ES_TXN_OK) {
        t->open = false;
        t->backoff_s = 0;
        es_metric_add(t->m_commits, 1);
    }
    return rc;
}

es_txn_rc_t es_txn_abort(es_txn_t *t, es_err_t *err)
{
    t->backoff_s = t->backoff_s > 0 ? t->backoff_s * 2 : BACKOFF_FIRST_S;
    if (t->backoff_s > BACKOFF_MAX_S)
        t->backoff_s = BACKOFF_MAX_S;
    /* an abort that cannot be done (the broker still away after the transaction timeout, a
     * state error) leaves a producer nobody can trust: make a new one */
    es_txn_rc_t rc = call_retrying(t, OP_ABORT, "abort_transaction", NULL, ES_TXN_LOST, err);
    if (rc == ES_TXN_ABORT)
        rc = ES_TXN_LOST;
    if (rc == ES_TXN_OK) {
        t->open = false;
        es_metric_add(t->m_aborts, 1);
    }
    return rc;
}

double es_txn_backoff(es_txn_t *t)
{
    if (t->backoff_s <= 0)
        return 0;
    double s = jitter(t, t->backoff_s);
    double t0 = es_mono_s();
    sleep_s(t, s);
    return es_mono_s() - t0;
}

void es_txn_sleep(es_txn_t *t, double s)
{
    sleep_s(t, s);
}

double es_txn_backoff_s(const es_txn_t *t)
{
    return t->backoff_s;
}

/* --- one step of the loop ------------------------------------------------------------------- */

es_txn_rc_t es_txn_step_send_offsets(es_txn_t *t, const es_txn_step_t *s, es_err_t *err)
{
    if (t->next->cnt == 0 || t->offsets_sent)
        return ES_TXN_OK;
    es_kafka_group_t *own = s->group ? NULL : es_kafka_group_of(s->consumer);
    es_txn_rc_t rc = es_txn_send_offsets(t, s->group ? s->group : own, err);
    es_kafka_group_free(own);
    return rc;
}

/* Sends the batch's offsets for s's group (unless work did), then commits. */
static es_txn_rc_t step_commit(es_txn_t *t, const es_txn_step_t *s, es_err_t *err)
{
    es_txn_rc_t rc = es_txn_step_send_offsets(t, s, err);
    return rc == ES_TXN_OK ? es_txn_commit(t, err) : rc;
}

es_txn_rc_t es_txn_step(es_txn_t *t, const es_txn_step_t *s, es_err_t *err)
{
    es_txn_rc_t rc = es_txn_begin(t, err);
    if (rc == ES_TXN_OK)
        rc = s->work(s->arg, err);
    if (rc == ES_TXN_OK)
        rc = step_commit(t, s, err);
    if (rc == ES_TXN_OK)
        return rc;
    if (s->discard)
        s->discard(s->arg);
    if (rc != ES_TXN_ABORT)
        return rc;
    es_err_t aerr = ES_ERR_INIT;
    if ((rc = es_txn_abort(t, &aerr)) != ES_TXN_OK) {
        es_clear(err);
        es_set(err, aerr.code, "%s", aerr.msg);
        return rc;
    }
    es_warn("aborting a batch of %zu %s, retrying in %.1f s: %s", s->n, s->what,
            es_txn_backoff_s(t), err->msg[0] ? err->msg : "kafka error");
    if (s->consumer)
        es_txn_rewind(t, s->consumer);
    return ES_TXN_ABORT;
}

int es_txn_loop_end(const char *who, es_kafka_t *consumer, bool fatal, const es_err_t *fatal_err,
                    es_err_t *err)
{
    es_metrics_heartbeat_end();
    if (fatal) {
        es_set(err, fatal_err->code, "%s", fatal_err->msg);
        es_error("%s stops on a fatal error: %s", who, fatal_err->msg);
        return -1;
    }
    es_info("%s stopping", who);
    if (consumer)
        es_kafka_close(consumer);
    return 0;
}

es_kafka_t *es_txn_remake_consumer(es_txn_t *t, const char *who,
                                   es_kafka_t *(*open)(void *arg, es_err_t *err), void *arg)
{
    double wait = 0.2;
    for (;;) {
        es_err_t err = ES_ERR_INIT;
        es_kafka_t *c = open(arg, &err);
        if (c) {
            es_info("consumer of '%s' made again", who);
            return c;
        }
        if (stopping(t))
            return NULL;
        es_warn("making the consumer of '%s' again: %s (again in %.1f s)", who, err.msg, wait);
        sleep_s(t, wait);
        wait = wait * 2 > 30 ? 30 : wait * 2;
    }
}

es_kafka_conf_t *es_txn_consumer_conf(const char *client, const char *group, const char *instance,
                                      bool eof, const char *const *extra, void *arg,
                                      es_kafka_rebalance_fn rebalance, es_err_t *err)
{
    const char *kv[32] = {"session.timeout.ms", "15000"};
    size_t n = 2;
    if (instance) {
        kv[n++] = "group.instance.id";
        kv[n++] = instance;
    }
    for (const char *const *p = extra; p && p[0] && n + 2 < sizeof kv / sizeof kv[0]; p += 2) {
        kv[n++] = p[0];
        kv[n++] = p[1];
    }
    es_kafka_conf_t *conf = es_kafka_read_committed_conf(client, group, eof, kv, err);
    if (conf) {
        es_kafka_conf_set_arg(conf, arg);
        es_kafka_conf_on_rebalance(conf, rebalance);
    }
    return conf;
}
