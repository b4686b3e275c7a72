#include "sr_log.h"
#include "es_fault.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_worker.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SR_LOG_CHECK_EVERY_S 5    /* how often the watcher asks a broker for metadata */
#define SR_LOG_CHECK_WAIT_MS 2000 /* the longest one such request may take */

struct sr_log {
    es_kafka_t *rk; /* replaced (under lock) after a fatal error */
    char *topic;
    pthread_mutex_t lock;
    es_worker_t *watcher; /* NULL: it could not start (readiness then not reported) */
    sr_store_t *store;    /* for the re-read after a failed write; may be NULL */
    bool dirty;           /* a write failed: the store may lack a record the log has */
};

#define SR_LOG_REREAD_TIMEOUT_MS 30000

static es_kafka_t *producer_new(es_err_t *err)
{
    /* message.timeout.ms bounds the wait for a delivery report in sr_log_write */
    return es_kafka_idempotent_new("eventshop-registry", 0, 15000, err);
}

/* Readiness: every SR_LOG_CHECK_EVERY_S, whether a broker answers (the registry reads from
 * memory without Kafka, but cannot register a schema). A run of the watcher (es_worker). */
static int watch_run(void *arg, void **jobs, size_t n)
{
    sr_log_t *log = arg;
    (void)jobs;
    (void)n;
    pthread_mutex_lock(&log->lock);
    es_metrics_set_dependency("kafka", es_kafka_reachable(log->rk, SR_LOG_CHECK_WAIT_MS));
    pthread_mutex_unlock(&log->lock);
    return SR_LOG_CHECK_EVERY_S * 1000;
}

sr_log_t *sr_log_new(const char *topic, es_err_t *err)
{
    es_kafka_t *rk = producer_new(err);
    if (!rk)
        return NULL;
    sr_log_t *log = xcalloc(1, sizeof *log);
    log->rk = rk;
    log->topic = xstrdup(topic);
    pthread_mutex_init(&log->lock, NULL);
    es_err_t werr = ES_ERR_INIT;
    if ((log->watcher = es_worker_new("kafka watcher", watch_run, NULL, log, &werr)))
        es_worker_wake(log->watcher); /* the first check at once */
    else
        es_warn("registry: %s: kafka's readiness is not reported", werr.msg);
    return log;
}

void sr_log_free(sr_log_t *log)
{
    if (!log)
        return;
    es_worker_free(log->watcher);
    es_kafka_flush(log->rk, 10000);
    es_kafka_destroy(log->rk);
    pthread_mutex_destroy(&log->lock);
    free(log->topic);
    free(log);
}

void sr_log_set_store(sr_log_t *log, sr_store_t *st)
{
    log->store = st;
}

int sr_log_write(void *arg, const char *key, const char *value, es_err_t *err)
{
    sr_log_t *log = arg;
    pthread_mutex_lock(&log->lock);
    if (log->dirty && log->store) {
        es_err_t rerr = ES_ERR_INIT;
        int rc = sr_log_replay(log->topic, log->store, SR_LOG_REREAD_TIMEOUT_MS, &rerr);
        if (rc == 0)
            log->dirty = false;
        pthread_mutex_unlock(&log->lock);
        if (rc)
            return es_set(err, ES_EIO, "re-reading '%s' after a failed write: %s", log->topic,
                          rerr.msg);
        es_info("re-read '%s' after a failed write", log->topic);
        return es_set(err, ES_EIO, "'%s' was re-read after a failed write: retry", log->topic);
    }
    int code = es_kafka_produce_sync(log->rk, log->topic, 0, key, strlen(key), value,
                                     value ? strlen(value) : 0);
    /* tests: the record is in the log, but the write is reported failed (a timeout would be) */
    if (!code && es_fault_hit("registry.after_write"))
        code = ES_KAFKA_ERR_MSG_TIMED_OUT;
    /* a fatal error (the idempotent producer lost its sequence during an outage) ends this
     * producer, not the registry: the next write gets a new one */
    char errstr[512];
    if (es_kafka_fatal_error(log->rk, errstr, sizeof errstr)) {
        es_err_t perr = ES_ERR_INIT;
        es_kafka_t *fresh = producer_new(&perr);
        es_error("registry producer: fatal error '%s': %s", errstr,
                 fresh ? "replaced by a new producer" : perr.msg);
        if (fresh) {
            es_kafka_destroy(log->rk);
            log->rk = fresh;
        }
    }
    if (code)
        log->dirty = true;
    pthread_mutex_unlock(&log->lock);
    if (code) {
        es_error("writing to '%s' failed: %s", log->topic, es_kafka_err_str(code));
        return es_set(err, ES_EIO, "writing to '%s': %s", log->topic, es_kafka_err_str(code));
    }
    return 0;
}

static int replay_one(const es_kafka_msg_t *m, void *arg)
{
    if (m->key)
        sr_store_apply(arg, m->key, m->key_len, m->value, m->len);
    return 0;
}

int sr_log_replay(const char *topic, sr_store_t *st, int timeout_ms, es_err_t *err)
{
    return es_kafka_read_partition(topic, 0, replay_one, st, timeout_ms, err) ? -1 : 0;
}
