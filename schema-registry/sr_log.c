#include "sr_log.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sr_log {
    rd_kafka_t *rk;
    char *topic;
    pthread_mutex_t lock;
};

/* One write's outcome, filled by the delivery report. */
struct delivery {
    bool done;
    rd_kafka_resp_err_t err;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct delivery *d = m->_private;
    d->err = m->err;
    d->done = true;
}

sr_log_t *sr_log_new(const char *topic, es_err_t *err)
{
    /* message.timeout.ms bounds the wait for a delivery report in sr_log_write */
    const char *kv[] = {"enable.idempotence", "true",  "acks", "all", "linger.ms", "0",
                        "message.timeout.ms", "15000", NULL};
    rd_kafka_conf_t *conf = es_kafka_conf_new("eventshop-registry", kv, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        es_set(err, ES_EIO, "kafka producer: %s", errstr);
        return NULL;
    }
    sr_log_t *log = xcalloc(1, sizeof *log);
    log->rk = rk;
    log->topic = xstrdup(topic);
    pthread_mutex_init(&log->lock, NULL);
    return log;
}

void sr_log_free(sr_log_t *log)
{
    if (!log)
        return;
    rd_kafka_flush(log->rk, 10000);
    rd_kafka_destroy(log->rk);
    pthread_mutex_destroy(&log->lock);
    free(log->topic);
    free(log);
}

int sr_log_write(void *arg, const char *key, const char *value, es_err_t *err)
{
    sr_log_t *log = arg;
    struct delivery d = {false, 0};
    pthread_mutex_lock(&log->lock);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        log->rk, RD_KAFKA_V_TOPIC(log->topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (e) {
        d.err = e;
        d.done = true;
    }
    /* the report always comes, at the latest after message.timeout.ms */
    while (!d.done)
        rd_kafka_poll(log->rk, 100);
    pthread_mutex_unlock(&log->lock);
    if (d.err) {
        es_error("writing to '%s' failed: %s", log->topic, rd_kafka_err2str(d.err));
        return es_set(err, ES_EIO, "writing to '%s': %s", log->topic, rd_kafka_err2str(d.err));
    }
    return 0;
}

static int replay_one(const rd_kafka_message_t *m, void *arg)
{
    if (m->key)
        sr_store_apply(arg, m->key, m->key_len, m->payload, m->payload ? m->len : 0);
    return 0;
}

int sr_log_replay(const char *topic, sr_store_t *st, int timeout_ms, es_err_t *err)
{
    return es_kafka_read_partition(topic, 0, replay_one, st, timeout_ms, err) ? -1 : 0;
}
