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
    es_kafka_t *rk;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool ready;
};

static void check_brokers(api_producer_t *p)
{
    bool ok = es_kafka_reachable(p->rk, 2000);
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
        es_kafka_serve(p->rk,
                       1000); /* a delivery report ends the wait at once: idle, 1 wake a second */
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
    /* linger 0: a command alone leaves at once; under load librdkafka batches what queues up
     * while earlier requests are in flight */
    es_kafka_t *rk = es_kafka_idempotent_new(client_id, 0, 10000, err);
    if (!rk)
        return NULL;
    api_producer_t *p = xcalloc(1, sizeof *p);
    p->rk = rk;
    check_brokers(p);
    if (pthread_create(&p->thread, NULL, producer_main, p)) {
        es_kafka_destroy(rk);
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
    es_kafka_flush(p->rk, 5000);
    es_kafka_serve(p->rk, 0);
    es_kafka_destroy(p->rk);
    free(p);
}

int api_producer_send(api_producer_t *p, const char *topic, const char *key, const void *value,
                      size_t len, const char *traceparent, api_delivered_fn fn, void *opaque,
                      es_err_t *err)
{
    int e = es_kafka_produce(p->rk, topic, ES_KAFKA_PARTITION_ANY, key, strlen(key), value, len,
                             traceparent, fn, opaque);
    return es_kafka_resp_error(err, e, topic);
}

bool api_producer_is_ready(api_producer_t *p)
{
    return p && atomic_load(&p->ready);
}

es_kafka_t *api_producer_client(api_producer_t *p)
{
    return p->rk;
}

int api_producer_high_watermark(api_producer_t *p, const char *topic, int32_t partition,
                                int *partitions, int64_t *high, int timeout_ms, es_err_t *err)
{
    /* a metadata request for this topic goes to a broker every time: the count is fresh */
    *partitions = 0;
    int n = es_kafka_partition_count_within(p->rk, topic, timeout_ms, err);
    if (n < 0)
        return -1;
    *partitions = n;
    if (partition < 0 || partition >= *partitions)
        return es_set(err, ES_ENOTFOUND, "partition %d is outside '%s' (%d partitions)",
                      (int)partition, topic, *partitions);
    int64_t low = 0;
    return es_kafka_resp_error(
        err, es_kafka_query_watermarks(p->rk, topic, partition, &low, high, timeout_ms), topic);
}
