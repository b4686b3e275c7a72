#include "api_producer.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct api_producer {
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool ready;
};

struct delivery {
    api_delivered_fn fn;
    void *opaque;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *app)
{
    (void)rk;
    (void)app;
    struct delivery *d = m->_private;
    if (!d)
        return;
    d->fn(d->opaque, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
          m->err ? rd_kafka_err2str(m->err) : NULL);
    free(d);
}

static void check_brokers(api_producer_t *p)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, NULL, &md, 2000);
    bool ok = !e && md && md->broker_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    atomic_store(&p->ready, ok);
    es_metrics_set_dependency("kafka", ok); /* logs the changes */
}

/* Serves delivery reports; every few seconds asks a broker for metadata so /readyz can answer
 * without blocking a loop thread. */
static void *producer_main(void *arg)
{
    api_producer_t *p = arg;
    struct timespec last = {0};
    while (!atomic_load(&p->stop)) {
        es_metrics_heartbeat("api-producer");
        rd_kafka_poll(p->rk, 100);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - last.tv_sec >= 5) {
            check_brokers(p);
            last = now;
        }
    }
    es_metrics_heartbeat_end();
    return NULL;
}

api_producer_t *api_producer_new(const char *client_id, es_err_t *err)
{
    const char *kv[] = {"enable.idempotence", "true",  "acks", "all", "linger.ms", "2",
                        "message.timeout.ms", "10000", NULL};
    rd_kafka_conf_t *conf = es_kafka_conf_new(client_id, kv, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = es_kafka_new(RD_KAFKA_PRODUCER, conf, err);
    if (!rk)
        return NULL;
    api_producer_t *p = xcalloc(1, sizeof *p);
    p->rk = rk;
    check_brokers(p);
    if (pthread_create(&p->thread, NULL, producer_main, p)) {
        rd_kafka_destroy(rk);
        free(p);
        es_set(err, ES_EINTERNAL, "cannot start the producer thread");
        return NULL;
    }
    return p;
}

void api_producer_free(api_producer_t *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    rd_kafka_flush(p->rk, 5000);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
    free(p);
}

int api_producer_send(api_producer_t *p, const char *topic, const char *key, const void *value,
                      size_t len, const char *traceparent, api_delivered_fn fn, void *opaque,
                      es_err_t *err)
{
    struct delivery *d = xmalloc(sizeof *d);
    d->fn = fn;
    d->opaque = opaque;
    rd_kafka_resp_err_t e;
    if (traceparent)
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADER("traceparent", traceparent, -1),
                              RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    else
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
                              RD_KAFKA_V_END);
    if (e) {
        free(d);
        return es_kafka_resp_error(err, e, topic);
    }
    return 0;
}

bool api_producer_is_ready(api_producer_t *p)
{
    return p && atomic_load(&p->ready);
}

int api_producer_high_watermark(api_producer_t *p, const char *topic, int32_t partition,
                                int *partitions, int64_t *high, int timeout_ms, es_err_t *err)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    /* a metadata request for this topic goes to a broker every time: the count is fresh */
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, t, &md, timeout_ms);
    int rc = 0;
    *partitions = 0;
    if (e) {
        rc = es_kafka_resp_error(err, e, topic);
        goto out;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        rc = es_set(err, ES_ENOTFOUND, "topic '%s' does not exist", topic);
        goto out;
    }
    *partitions = md->topics[0].partition_cnt;
    if (partition < 0 || partition >= *partitions) {
        rc = es_set(err, ES_ENOTFOUND, "partition %d is outside '%s' (%d partitions)",
                    (int)partition, topic, *partitions);
        goto out;
    }
    int64_t low = 0;
    e = rd_kafka_query_watermark_offsets(p->rk, topic, partition, &low, high, timeout_ms);
    if (e)
        rc = es_kafka_resp_error(err, e, topic);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return rc;
}
