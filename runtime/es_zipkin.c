#include "es_zipkin.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_trace.h"
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX    2048 /* spans waiting; more are dropped */
#define BATCH_MAX    256  /* spans per POST */
#define LINGER_MS    500  /* a partial batch waits at most this long */
#define POST_TIMEOUT 5L   /* seconds */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stopping;
    char *url, *service;
    json_t *queue; /* array of spans, owned */
    es_metric_t *sent, *dropped, *failed;
} zk = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

bool es_zipkin_enabled(void)
{
    return zk.running;
}

int64_t es_zipkin_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* POSTs one batch (a JSON array); a failure is counted and logged, the spans are lost */
static void post_batch(CURL *c, json_t *batch)
{
    char *body = json_dumps(batch, JSON_COMPACT);
    size_t n = json_array_size(batch);
    if (!body)
        return;
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, zk.url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT, POST_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 200 || status >= 300) {
        es_metric_add(zk.failed, (double)n);
        es_warn("zipkin: %zu spans not exported: %s", n,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "the collector did not answer 2xx");
    } else {
        es_metric_add(zk.sent, (double)n);
    }
    curl_slist_free_all(hdr);
    free(body);
}

static void *exporter_main(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    pthread_mutex_lock(&zk.lock);
    for (;;) {
        if (!zk.stopping && json_array_size(zk.queue) < BATCH_MAX) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += LINGER_MS * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&zk.wake, &zk.lock, &until);
        }
        size_t n = json_array_size(zk.queue);
        if (n == 0) {
            if (zk.stopping)
                break;
            continue;
        }
        if (n > BATCH_MAX)
            n = BATCH_MAX;
        json_t *batch = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append(batch, json_array_get(zk.queue, i));
        for (size_t i = 0; i < n; i++)
            json_array_remove(zk.queue, 0);
        pthread_mutex_unlock(&zk.lock);
        if (c)
            post_batch(c, batch);
        json_decref(batch);
        pthread_mutex_lock(&zk.lock);
    }
    pthread_mutex_unlock(&zk.lock);
    curl_easy_cleanup(c);
    return NULL;
}

int es_zipkin_init(const char *service, es_err_t *err)
{
    const char *base = es_env_str("EVENTSHOP_ZIPKIN_URL", "");
    if (!*base || zk.running)
        return 0;
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
        return es_set(err, ES_EINVAL, "EVENTSHOP_ZIPKIN_URL '%s' is not an http(s) url", base);
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    const char *path = "/api/v2/spans";
    bool has_path = len >= strlen(path) && !strncmp(base + len - strlen(path), path, strlen(path));
    zk.url = xasprintf("%.*s%s", (int)len, base, has_path ? "" : path);
    zk.service = xstrdup(service);
    zk.queue = json_array();
    zk.sent = es_counter("eventshop_zipkin_spans_sent_total", "spans exported to zipkin", "");
    zk.dropped = es_counter("eventshop_zipkin_spans_dropped_total",
                            "spans dropped because the export queue was full", "");
    zk.failed = es_counter("eventshop_zipkin_spans_failed_total",
                           "spans lost because the collector refused them or was unreachable", "");
    curl_global_init(CURL_GLOBAL_ALL);
    zk.stopping = false;
    if (pthread_create(&zk.thread, NULL, exporter_main, NULL) != 0) {
        json_decref(zk.queue);
        zk.queue = NULL;
        return es_set(err, ES_EINTERNAL, "cannot start the zipkin exporter thread");
    }
    zk.running = true;
    es_info("exporting spans to %s", zk.url);
    return 0;
}

static json_t *span_new(const char *span, const char *parent, const char *name, const char *kind,
                        int64_t start_us, int64_t duration_us, const char *const *tags)
{
    char trace_id[ES_TRACE_ID_LEN];
    es_trace_id(span, trace_id);
    json_t *o =
        json_pack("{s:s, s:s#, s:s, s:I, s:I, s:{s:s}}", "traceId", trace_id, "id", span + 36,
                  (int)16, "name", name ? name : "span", "timestamp", (json_int_t)start_us,
                  "duration", (json_int_t)(duration_us > 0 ? duration_us : 1), "localEndpoint",
                  "serviceName", zk.service);
    if (!o)
        return NULL;
    /* the same trace only: a foreign parent would make an orphan */
    if (es_trace_valid(parent) && !strncmp(parent + 3, span + 3, 32))
        json_object_set_new(o, "parentId", json_stringn(parent + 36, 16));
    if (kind)
        json_object_set_new(o, "kind", json_string(kind));
    if (tags) {
        json_t *t = json_object();
        for (size_t i = 0; tags[i]; i += 2)
            if (tags[i + 1])
                json_object_set_new(t, tags[i], json_string(tags[i + 1]));
        json_object_set_new(o, "tags", t);
    }
    return o;
}

void es_zipkin_span(const char *span, const char *parent, const char *name, const char *kind,
                    int64_t start_us, int64_t duration_us, const char *const *tags)
{
    if (!zk.running || !es_trace_valid(span))
        return;
    json_t *o = span_new(span, parent, name, kind, start_us, duration_us, tags);
    if (!o)
        return;
    pthread_mutex_lock(&zk.lock);
    if (json_array_size(zk.queue) >= QUEUE_MAX) {
        pthread_mutex_unlock(&zk.lock);
        es_metric_add(zk.dropped, 1);
        json_decref(o);
        return;
    }
    json_array_append_new(zk.queue, o);
    if (json_array_size(zk.queue) >= BATCH_MAX)
        pthread_cond_signal(&zk.wake);
    pthread_mutex_unlock(&zk.lock);
}

void es_zipkin_shutdown(void)
{
    if (!zk.running)
        return;
    pthread_mutex_lock(&zk.lock);
    zk.stopping = true;
    pthread_cond_signal(&zk.wake);
    pthread_mutex_unlock(&zk.lock);
    pthread_join(zk.thread, NULL);
    zk.running = false;
    json_decref(zk.queue);
    zk.queue = NULL;
    free(zk.url);
    free(zk.service);
    zk.url = zk.service = NULL;
}
