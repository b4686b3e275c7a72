/* api_stream_hub — see api_stream_hub.h. */
#include "api_stream_hub.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_retry.h"
#include "es_time.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS       1000 /* the thread's longest sleep: how soon a stop is seen */
#define BATCH_MAX     512  /* records appended before the watchers are woken */
#define SETUP_WAIT_MS 5000
#define QUEUE_KBYTES  "4096" /* what librdkafka prefetches for the hub */
#define MAX_CONTEXTS  8

static void *memdup(const void *p, size_t n)
{
    void *q = xmalloc(n ? n : 1);
    memcpy(q, p, n);
    return q;
}

struct part {
    int ctx;
    int32_t partition;
    char topic[64];
    int64_t covered_from; /* the ring holds every record of the partition from here */
    int64_t tail;         /* after the last record appended (covered_from when none) */
};

struct entry {
    int part;
    int64_t offset;
    void *value;
    size_t len;
};

struct api_stream_hub {
    char contexts[MAX_CONTEXTS][32];
    size_t n_contexts;
    pthread_mutex_t lock;
    struct part *parts; /* fixed once ready */
    int n_parts;
    atomic_bool ready;
    struct entry *ring;  /* ring[seq % API_STREAM_RING_ENTRIES] */
    uint64_t first, end; /* sequence numbers: [first, end) are held */
    size_t bytes;
    es_http_waker_t **watchers;
    size_t n_watchers, cap_watchers;
    es_kafka_t *rk;
    pthread_t thread;
    atomic_bool stop;
    es_log_every_t error_log;
    struct api_stream_sink sink; /* start NULL: none */
};

bool api_stream_hub_ready(api_stream_hub_t *hub)
{
    return hub && atomic_load(&hub->ready);
}

int api_stream_hub_count(api_stream_hub_t *hub)
{
    return api_stream_hub_ready(hub) ? hub->n_parts : 0;
}

void api_stream_hub_part(api_stream_hub_t *hub, int part, int *ctx, int32_t *partition)
{
    *ctx = hub->parts[part].ctx;
    *partition = hub->parts[part].partition;
}

int api_stream_hub_find(api_stream_hub_t *hub, int ctx, int32_t partition)
{
    for (int i = 0; i < api_stream_hub_count(hub); i++)
        if (hub->parts[i].ctx == ctx && hub->parts[i].partition == partition)
            return i;
    return -1;
}

uint64_t api_stream_hub_now(api_stream_hub_t *hub, int64_t *cursor)
{
    pthread_mutex_lock(&hub->lock);
    for (int i = 0; i < hub->n_parts; i++)
        cursor[i] = hub->parts[i].tail;
    uint64_t end = hub->end;
    pthread_mutex_unlock(&hub->lock);
    return end;
}

bool api_stream_hub_covers(api_stream_hub_t *hub, const int64_t *cursor, const bool *want)
{
    bool all = true;
    pthread_mutex_lock(&hub->lock);
    for (int i = 0; i < hub->n_parts && all; i++)
        all = !want[i] || cursor[i] >= hub->parts[i].covered_from;
    pthread_mutex_unlock(&hub->lock);
    return all;
}

int64_t api_stream_hub_covered_from(api_stream_hub_t *hub, int part)
{
    pthread_mutex_lock(&hub->lock);
    int64_t from = hub->parts[part].covered_from;
    pthread_mutex_unlock(&hub->lock);
    return from;
}

uint64_t api_stream_hub_first(api_stream_hub_t *hub)
{
    pthread_mutex_lock(&hub->lock);
    uint64_t first = hub->first;
    pthread_mutex_unlock(&hub->lock);
    return first;
}

int api_stream_hub_read(api_stream_hub_t *hub, uint64_t *seq, const bool *want,
                        struct api_stream_record *out, int max, size_t max_bytes, bool *at_end)
{
    int n = 0;
    size_t bytes = 0;
    pthread_mutex_lock(&hub->lock);
    if (*seq < hub->first) {
        pthread_mutex_unlock(&hub->lock);
        return -1;
    }
    for (; *seq < hub->end && n < max && bytes < max_bytes; (*seq)++) {
        const struct entry *e = &hub->ring[*seq % API_STREAM_RING_ENTRIES];
        if (!want[e->part])
            continue;
        out[n] = (struct api_stream_record){e->part, e->offset, NULL, e->len};
        if (e->value)
            out[n].value = memdup(e->value, e->len);
        bytes += e->len;
        n++;
    }
    *at_end = *seq == hub->end;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

void api_stream_hub_records_free(struct api_stream_record *recs, int n)
{
    for (int i = 0; i < n; i++) {
        free(recs[i].value);
        recs[i].value = NULL;
    }
}

void api_stream_hub_watch(api_stream_hub_t *hub, es_http_waker_t *w)
{
    pthread_mutex_lock(&hub->lock);
    if (hub->n_watchers == hub->cap_watchers) {
        hub->cap_watchers = hub->cap_watchers ? hub->cap_watchers * 2 : 16;
        hub->watchers = xrealloc(hub->watchers, hub->cap_watchers * sizeof *hub->watchers);
    }
    hub->watchers[hub->n_watchers++] = w;
    pthread_mutex_unlock(&hub->lock);
}

void api_stream_hub_unwatch(api_stream_hub_t *hub, es_http_waker_t *w)
{
    pthread_mutex_lock(&hub->lock);
    for (size_t i = 0; i < hub->n_watchers; i++)
        if (hub->watchers[i] == w) {
            hub->watchers[i] = hub->watchers[--hub->n_watchers];
            break;
        }
    pthread_mutex_unlock(&hub->lock);
}

/* ---- the thread ---- */

static void evict_locked(api_stream_hub_t *hub)
{
    struct entry *e = &hub->ring[hub->first % API_STREAM_RING_ENTRIES];
    struct part *p = &hub->parts[e->part];
    if (e->offset + 1 > p->covered_from)
        p->covered_from = e->offset + 1;
    hub->bytes -= e->len;
    free(e->value);
    e->value = NULL;
    hub->first++;
}

static int part_of(api_stream_hub_t *hub, const char *topic, int32_t partition)
{
    for (int i = 0; i < hub->n_parts; i++)
        if (hub->parts[i].partition == partition && !strcmp(hub->parts[i].topic, topic))
            return i;
    return -1;
}

/* The partition number of m when appended, -1 when dropped (unknown or already held). */
static int append_locked(api_stream_hub_t *hub, const es_kafka_msg_t *m)
{
    int part = part_of(hub, m->topic, m->partition);
    if (part < 0 || m->offset < hub->parts[part].tail)
        return -1;
    while (hub->end - hub->first >= API_STREAM_RING_ENTRIES ||
           (hub->end > hub->first && hub->bytes + m->len > API_STREAM_RING_BYTES))
        evict_locked(hub);
    struct entry *e = &hub->ring[hub->end % API_STREAM_RING_ENTRIES];
    *e = (struct entry){part, m->offset, m->value ? memdup(m->value, m->len) : NULL, m->len};
    hub->bytes += m->len;
    hub->parts[part].tail = m->offset + 1;
    hub->end++;
    return part;
}

/* The sink's start with the partitions just assigned (on the hub's thread, before any record). */
static void sink_start(api_stream_hub_t *hub)
{
    if (!hub->sink.start)
        return;
    int n = hub->n_parts;
    int *ctx = xcalloc((size_t)n + 1, sizeof *ctx);
    int32_t *partition = xcalloc((size_t)n + 1, sizeof *partition);
    int64_t *offset = xcalloc((size_t)n + 1, sizeof *offset);
    for (int i = 0; i < n; i++) {
        ctx[i] = hub->parts[i].ctx;
        partition[i] = hub->parts[i].partition;
        offset[i] = hub->parts[i].tail;
    }
    hub->sink.start(hub->sink.arg, n, ctx, partition, offset);
    free(ctx);
    free(partition);
    free(offset);
}

/* The partitions of every context and their last stable offsets (read_committed: the end a
 * reader of committed records sees), then the assignment there: 0, or -1 with err. */
static int hub_assign(api_stream_hub_t *hub, es_err_t *err)
{
    es_kafka_parts_t *list = es_kafka_parts_new(16);
    int rc = -1;
    for (size_t c = 0; c < hub->n_contexts; c++) {
        char topic[64];
        es_topic(topic, sizeof topic, hub->contexts[c], "events");
        int n = es_kafka_partition_count_within(hub->rk, topic, SETUP_WAIT_MS, err);
        if (n < 0)
            goto out;
        for (int i = 0; i < n; i++)
            es_kafka_parts_add(list, topic, i)->offset = ES_KAFKA_OFFSET_END;
    }
    int e = es_kafka_offsets_for_times(hub->rk, list, SETUP_WAIT_MS);
    if (e || (e = es_kafka_assign(hub->rk, list))) {
        es_kafka_resp_error(err, e, "stream hub: last stable offsets");
        goto out;
    }
    struct part *parts = xcalloc((size_t)(list->cnt ? list->cnt : 1), sizeof *parts);
    for (int i = 0; i < list->cnt; i++) {
        es_kafka_part_t *el = &list->elems[i];
        parts[i].partition = el->partition;
        snprintf(parts[i].topic, sizeof parts[i].topic, "%s", el->topic);
        for (size_t c = 0; c < hub->n_contexts; c++)
            if (!strncmp(el->topic, hub->contexts[c], strlen(hub->contexts[c])) &&
                el->topic[strlen(hub->contexts[c])] == '.')
                parts[i].ctx = (int)c;
        parts[i].covered_from = parts[i].tail = el->offset < 0 ? 0 : el->offset;
    }
    pthread_mutex_lock(&hub->lock);
    hub->parts = parts;
    hub->n_parts = list->cnt;
    pthread_mutex_unlock(&hub->lock);
    rc = 0;
out:
    es_kafka_parts_free(list);
    return rc;
}

/* Until the partitions are assigned or a stop: capped back-off between attempts. */
static bool hub_setup(api_stream_hub_t *hub)
{
    long backoff = 0;
    unsigned jitter = (unsigned)time(NULL);
    while (!atomic_load(&hub->stop)) {
        es_err_t err = ES_ERR_INIT;
        if (hub_assign(hub, &err) == 0) {
            sink_start(hub);
            atomic_store(&hub->ready, true);
            es_info("stream hub: %d partitions assigned", hub->n_parts);
            return true;
        }
        es_warn("stream hub: %s (retrying)", err.msg);
        long wait = es_backoff_next(&backoff, 200, 5000, &jitter);
        for (long t = 0; t < wait && !atomic_load(&hub->stop); t += 100)
            nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    return false;
}

static void wake_all(api_stream_hub_t *hub)
{
    pthread_mutex_lock(&hub->lock);
    for (size_t i = 0; i < hub->n_watchers; i++)
        es_http_waker_wake(hub->watchers[i]);
    pthread_mutex_unlock(&hub->lock);
}

static void *hub_main(void *arg)
{
    api_stream_hub_t *hub = arg;
    if (!hub_setup(hub))
        return NULL;
    while (!atomic_load(&hub->stop)) {
        es_kafka_msg_t *m = es_kafka_poll(hub->rk, POLL_MS);
        int n = 0;
        while (m) {
            long skipped = 0;
            if (m->err && m->err != ES_KAFKA_ERR_PARTITION_EOF &&
                es_log_every_pass(&hub->error_log, es_mono_ms(), 10000, &skipped))
                es_warn("stream hub: consumer: %s (%ld more not logged)", m->errstr, skipped);
            else if (!m->err) {
                pthread_mutex_lock(&hub->lock);
                int part = append_locked(hub, m);
                pthread_mutex_unlock(&hub->lock);
                if (part >= 0 && hub->sink.record)
                    hub->sink.record(hub->sink.arg, part, m->offset, m->key, m->key_len, m->value,
                                     m->len);
                n++;
            }
            es_kafka_msg_free(m);
            m = n < BATCH_MAX ? es_kafka_poll(hub->rk, 0) : NULL;
        }
        if (n)
            wake_all(hub);
    }
    return NULL;
}

api_stream_hub_t *api_stream_hub_new(const char (*contexts)[32], size_t n,
                                     const struct api_stream_sink *sink)
{
    api_stream_hub_t *hub = xcalloc(1, sizeof *hub);
    if (sink)
        hub->sink = *sink;
    for (size_t i = 0; i < n && i < MAX_CONTEXTS; i++)
        snprintf(hub->contexts[hub->n_contexts++], sizeof hub->contexts[0], "%s", contexts[i]);
    pthread_mutex_init(&hub->lock, NULL);
    hub->ring = xcalloc(API_STREAM_RING_ENTRIES, sizeof *hub->ring);
    /* an offset out of range resumes at the end, as with librdkafka's default it always did */
    const char *kv[] = {"auto.offset.reset", "latest", "queued.max.messages.kbytes", QUEUE_KBYTES,
                        NULL};
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_read_committed_conf("eventshop-api-stream",
                                                         "eventshop-api-stream", false, kv, &err);
    hub->rk = conf ? es_kafka_new(ES_KAFKA_CONSUMER, conf, &err) : NULL;
    if (!hub->rk)
        es_error("stream hub: %s: GET /v1/stream answers 503", err.msg);
    else if (pthread_create(&hub->thread, NULL, hub_main, hub)) {
        es_error("stream hub: cannot start its thread: GET /v1/stream answers 503");
        es_kafka_destroy(hub->rk);
        hub->rk = NULL;
    }
    return hub;
}

void api_stream_hub_free(api_stream_hub_t *hub)
{
    if (!hub)
        return;
    if (hub->rk) {
        atomic_store(&hub->stop, true);
        pthread_join(hub->thread, NULL);
        es_kafka_destroy(hub->rk);
    }
    while (hub->first < hub->end)
        evict_locked(hub);
    free(hub->ring);
    free(hub->parts);
    free(hub->watchers);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
}
