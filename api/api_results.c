#include "api_results.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_POLL_MS 1000 /* the consumer's longest wait for a result: how soon a stop is seen */

struct waiter {
    char command_id[ES_UUID_LEN];
    es_http_pending_t *pending;
    long long deadline_ms; /* monotonic */
    int wait_s;
    struct api_created created; /* key "" if none */
    struct waiter *next;
};

/* An outcome, or only the sender of a command sent here and not decided yet. */
struct entry {
    struct api_outcome o;
    bool decided;
};

/* The last event offset a result named, per context and partition. */
struct known_position {
    char ctx[32];
    int32_t partition;
    int64_t offset;
};

/* The outcomes read per context: what the console's command rate and rejections are made of. */
struct context_count {
    char ctx[32];
    long long accepted, rejected;
};

struct api_results {
    pthread_mutex_t lock;
    /* The map: a ring of outcomes in arrival order (the oldest at head is evicted when full)
     * indexed by a chained hash of command ids. */
    struct entry *ring;
    int32_t *chain; /* next index in the same bucket, -1 ends */
    int32_t *buckets;
    size_t capacity, head, count, nbuckets;
    struct waiter *waiters;
    es_metric_t *pending_gauge;
    struct known_position *known; /* grows to contexts x partitions */
    size_t n_known;
    struct context_count *counts; /* grows to the contexts */
    size_t n_counts;

    ev_codec_t *codec;
    es_kafka_t *rk;
    pthread_t thread;
    bool has_thread;
    atomic_bool stop;
};

static size_t hash_id(const char *s, size_t nbuckets)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h & (nbuckets - 1));
}

static int32_t find_locked(api_results_t *res, const char *id)
{
    for (int32_t i = res->buckets[hash_id(id, res->nbuckets)]; i >= 0; i = res->chain[i])
        if (!strcmp(res->ring[i].o.command_id, id))
            return i;
    return -1;
}

static void unlink_locked(api_results_t *res, int32_t idx)
{
    int32_t *link = &res->buckets[hash_id(res->ring[idx].o.command_id, res->nbuckets)];
    while (*link >= 0 && *link != idx)
        link = &res->chain[*link];
    if (*link == idx)
        *link = res->chain[idx];
}

api_results_t *api_results_new_offline(size_t capacity)
{
    api_results_t *res = xcalloc(1, sizeof *res);
    pthread_mutex_init(&res->lock, NULL);
    res->capacity = capacity ? capacity : 1;
    res->nbuckets = 1;
    while (res->nbuckets < res->capacity * 2)
        res->nbuckets <<= 1;
    /* calloc'd pages stay untouched until used, so a large capacity costs little at first */
    res->ring = xcalloc(res->capacity, sizeof *res->ring);
    res->chain = xcalloc(res->capacity, sizeof *res->chain);
    res->buckets = xmalloc(res->nbuckets * sizeof *res->buckets);
    memset(res->buckets, 0xff, res->nbuckets * sizeof *res->buckets);
    res->pending_gauge = es_gauge("eventshop_api_pending_waiters",
                                  "requests waiting for a command outcome (Prefer: wait)", "");
    return res;
}

bool api_results_get(api_results_t *res, const char *command_id, struct api_outcome *o)
{
    pthread_mutex_lock(&res->lock);
    int32_t i = find_locked(res, command_id);
    bool known = i >= 0 && res->ring[i].decided;
    if (known)
        *o = res->ring[i].o;
    pthread_mutex_unlock(&res->lock);
    return known;
}

bool api_results_find(api_results_t *res, const char *command_id, struct api_outcome *o,
                      bool *decided)
{
    pthread_mutex_lock(&res->lock);
    int32_t i = find_locked(res, command_id);
    if (i >= 0) {
        *o = res->ring[i].o;
        *decided = res->ring[i].decided;
    }
    pthread_mutex_unlock(&res->lock);
    return i >= 0;
}

/* A new entry for id (the oldest is evicted when full): its index. */
static int32_t insert_locked(api_results_t *res, const char *id)
{
    int32_t idx;
    if (res->count == res->capacity) {
        idx = (int32_t)res->head;
        unlink_locked(res, idx);
        res->head = (res->head + 1) % res->capacity;
    } else {
        idx = (int32_t)((res->head + res->count) % res->capacity);
        res->count++;
    }
    memset(&res->ring[idx], 0, sizeof res->ring[idx]);
    snprintf(res->ring[idx].o.command_id, sizeof res->ring[idx].o.command_id, "%s", id);
    size_t b = hash_id(id, res->nbuckets);
    res->chain[idx] = res->buckets[b];
    res->buckets[b] = idx;
    return idx;
}

void api_results_note_sent(api_results_t *res, const char *command_id, const char *actor)
{
    pthread_mutex_lock(&res->lock);
    if (find_locked(res, command_id) < 0) {
        int32_t idx = insert_locked(res, command_id);
        snprintf(res->ring[idx].o.actor, sizeof res->ring[idx].o.actor, "%s", actor);
    }
    pthread_mutex_unlock(&res->lock);
}

static void complete(struct waiter *w, const struct api_outcome *o)
{
    struct api_answer a;
    char pref[32];
    if (o)
        api_answer_outcome(&a, o, w->created.location[0] ? w->created.location : NULL);
    else
        api_answer_pending(&a, w->command_id, w->created.key[0] ? &w->created : NULL);
    snprintf(pref, sizeof pref, "wait=%d", w->wait_s);
    api_answer_add_header(&a, "Preference-Applied", pref);
    es_http_complete(w->pending, a.status, a.body, a.problem, a.headers);
    free(w);
}

/* Unlinks the waiters of command_id, or with command_id NULL those past their deadline at now
 * (all of them when force), and returns them as a list (last taken first). Under res->lock. */
static struct waiter *take_waiters_locked(api_results_t *res, const char *command_id, bool force,
                                          long long now)
{
    struct waiter *taken = NULL;
    for (struct waiter **w = &res->waiters; *w;) {
        struct waiter *x = *w;
        if (command_id ? !strcmp(x->command_id, command_id) : force || x->deadline_ms <= now) {
            *w = x->next;
            x->next = taken;
            taken = x;
            es_metric_add(res->pending_gauge, -1);
        } else {
            w = &x->next;
        }
    }
    return taken;
}

void api_results_put(api_results_t *res, const struct api_outcome *o)
{
    struct waiter *done = NULL;
    pthread_mutex_lock(&res->lock);
    int32_t idx = find_locked(res, o->command_id);
    if (idx < 0)
        idx = insert_locked(res, o->command_id);
    if (!res->ring[idx].decided) {
        /* the sender noted at sending stands in for a result that does not carry one */
        char actor[sizeof o->actor];
        snprintf(actor, sizeof actor, "%s", res->ring[idx].o.actor);
        res->ring[idx].o = *o;
        res->ring[idx].decided = true;
        if (!o->actor[0])
            snprintf(res->ring[idx].o.actor, sizeof actor, "%s", actor);
    }
    /* a redelivered or repeated result keeps the first outcome */
    done = take_waiters_locked(res, o->command_id, false, 0);
    struct api_outcome first = res->ring[idx].o;
    pthread_mutex_unlock(&res->lock);
    while (done) {
        struct waiter *next = done->next;
        complete(done, &first);
        done = next;
    }
}

void api_results_wait(api_results_t *res, const char *command_id, es_http_pending_t *p, int wait_s,
                      const struct api_created *created)
{
    struct waiter *w = xcalloc(1, sizeof *w);
    if (created)
        w->created = *created;
    snprintf(w->command_id, sizeof w->command_id, "%s", command_id);
    w->pending = p;
    w->wait_s = wait_s;
    w->deadline_ms = es_mono_ms() + wait_s * 1000LL;
    struct api_outcome o;
    pthread_mutex_lock(&res->lock);
    int32_t i = find_locked(res, command_id);
    if (i >= 0 && res->ring[i].decided) {
        o = res->ring[i].o;
    } else {
        w->next = res->waiters;
        res->waiters = w;
        es_metric_add(res->pending_gauge, 1);
    }
    bool decided = i >= 0 && res->ring[i].decided;
    pthread_mutex_unlock(&res->lock);
    if (decided)
        complete(w, &o);
}

static struct known_position *known_find_locked(api_results_t *res, const char *ctx,
                                                int32_t partition)
{
    for (size_t i = 0; i < res->n_known; i++)
        if (res->known[i].partition == partition && !strcmp(res->known[i].ctx, ctx))
            return &res->known[i];
    return NULL;
}

void api_results_note_position(api_results_t *res, const char *ctx, int32_t partition,
                               int64_t offset)
{
    pthread_mutex_lock(&res->lock);
    struct known_position *k = known_find_locked(res, ctx, partition);
    if (!k) {
        res->known = xrealloc(res->known, (res->n_known + 1) * sizeof *res->known);
        k = &res->known[res->n_known++];
        snprintf(k->ctx, sizeof k->ctx, "%s", ctx);
        k->partition = partition;
        k->offset = offset;
    }
    if (offset > k->offset)
        k->offset = offset;
    pthread_mutex_unlock(&res->lock);
}

bool api_results_position_known(api_results_t *res, const char *ctx, int32_t partition,
                                int64_t offset)
{
    pthread_mutex_lock(&res->lock);
    const struct known_position *k = known_find_locked(res, ctx, partition);
    bool known = k && offset <= k->offset;
    pthread_mutex_unlock(&res->lock);
    return known;
}

/* Answers 202 to every waiter past its deadline (all of them when force). Returns how long the
 * consumer may wait for the next result: until the soonest deadline left, at most IDLE_POLL_MS. A
 * waiter added meanwhile waits at least a second (wait_s > 0), so the consumer, back by then,
 * answers it on time. */
static int expire_waiters(api_results_t *res, bool force)
{
    long long now = es_mono_ms(), next = now + IDLE_POLL_MS;
    pthread_mutex_lock(&res->lock);
    struct waiter *done = take_waiters_locked(res, NULL, force, now);
    for (const struct waiter *w = res->waiters; w; w = w->next)
        if (w->deadline_ms < next)
            next = w->deadline_ms;
    pthread_mutex_unlock(&res->lock);
    while (done) {
        struct waiter *next = done->next;
        complete(done, NULL);
        done = next;
    }
    return next > now ? (int)(next - now) : 1;
}

void api_results_count(api_results_t *res, const char *ctx, bool accepted)
{
    pthread_mutex_lock(&res->lock);
    struct context_count *c = NULL;
    for (size_t i = 0; i < res->n_counts && !c; i++)
        if (!strcmp(res->counts[i].ctx, ctx))
            c = &res->counts[i];
    if (!c) {
        res->counts = xrealloc(res->counts, (res->n_counts + 1) * sizeof *res->counts);
        c = &res->counts[res->n_counts++];
        *c = (struct context_count){0};
        snprintf(c->ctx, sizeof c->ctx, "%s", ctx);
    }
    if (accepted)
        c->accepted++;
    else
        c->rejected++;
    pthread_mutex_unlock(&res->lock);
}

void api_results_counts(api_results_t *res, const char *ctx, long long *accepted,
                        long long *rejected)
{
    *accepted = *rejected = 0;
    pthread_mutex_lock(&res->lock);
    for (size_t i = 0; i < res->n_counts; i++)
        if (!strcmp(res->counts[i].ctx, ctx)) {
            *accepted = res->counts[i].accepted;
            *rejected = res->counts[i].rejected;
        }
    pthread_mutex_unlock(&res->lock);
}

/* Records o, read from topic "<ctx>.results", its count and the position it names on
 * <ctx>.events. */
static void note_outcome(api_results_t *res, const char *topic, const struct api_outcome *o)
{
    api_results_put(res, o);
    const char *dot = topic ? strrchr(topic, '.') : NULL;
    char ctx[32];
    if (!dot || (size_t)(dot - topic) >= sizeof ctx)
        return;
    snprintf(ctx, sizeof ctx, "%.*s", (int)(dot - topic), topic);
    api_results_count(res, ctx, o->accepted);
    if (o->offset >= 0)
        api_results_note_position(res, ctx, o->partition, o->offset);
}

static void handle_message(api_results_t *res, const es_kafka_msg_t *m)
{
    if (m->err) {
        if (m->err != ES_KAFKA_ERR_PARTITION_EOF)
            es_warn("results consumer: %s", m->errstr);
        return;
    }
    es_err_t err = ES_ERR_INIT;
    json_t *v = NULL;
    const char *name = NULL;
    if (ev_decode(res->codec, m->value, m->len, &name, &v, &err)) {
        es_warn("results partition %d offset %lld: %s", (int)m->partition, (long long)m->offset,
                err.msg);
        return;
    }
    struct api_outcome o;
    if (name && strcmp(name, "eventshop.CommandResult"))
        es_warn("results partition %d offset %lld: unexpected record '%s'", (int)m->partition,
                (long long)m->offset, name);
    else if (api_outcome_from_result(v, &o))
        es_warn("results partition %d offset %lld: incomplete command result", (int)m->partition,
                (long long)m->offset);
    else
        note_outcome(res, m->topic, &o);
    json_decref(v);
}

static void *results_main(void *arg)
{
    api_results_t *res = arg;
    int wait_ms = 1;
    while (!atomic_load(&res->stop)) {
        es_metrics_heartbeat("api-results");
        es_kafka_msg_t *m = es_kafka_poll(res->rk, wait_ms);
        if (m) {
            handle_message(res, m);
            es_kafka_msg_free(m);
        }
        wait_ms = expire_waiters(res, false);
    }
    es_metrics_heartbeat_end();
    return NULL;
}

/* Assigns every partition of every context's results topic from the first offset at or after
 * (now - lookback); a partition with nothing that recent starts at its end. */
static int assign_recent(es_kafka_t *rk, const char *const *contexts, size_t nctx, es_err_t *err)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t since = now.tv_sec * 1000LL + now.tv_nsec / 1000000 - API_RESULTS_LOOKBACK_MS;
    es_kafka_parts_t *parts = es_kafka_parts_new(8);
    int rc = -1;
    for (size_t c = 0; c < nctx; c++) {
        char topic[128];
        es_topic(topic, sizeof topic, contexts[c], "results");
        int n = es_kafka_partition_count(rk, topic, err);
        if (n < 0)
            goto out;
        for (int i = 0; i < n; i++)
            es_kafka_parts_add(parts, topic, i)->offset = since;
    }
    int e = es_kafka_offsets_for_times(rk, parts, 10000);
    if (e) {
        es_kafka_resp_error(err, e, "offsets for times");
        goto out;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].err || parts->elems[i].offset < 0)
            parts->elems[i].offset = ES_KAFKA_OFFSET_END;
    e = es_kafka_assign(rk, parts);
    if (e) {
        es_kafka_resp_error(err, e, "assign results partitions");
        goto out;
    }
    rc = 0;
out:
    es_kafka_parts_free(parts);
    return rc;
}

api_results_t *api_results_new(ev_codec_t *codec, const char *const *contexts, size_t n,
                               size_t capacity, es_err_t *err)
{
    char group[96], id[ES_UUID_LEN];
    /* librdkafka wants a group id for the consumer queue; it is never joined (assign only) and
     * no offset is ever committed */
    es_uuid_random(id);
    snprintf(group, sizeof group, "eventshop-api-results-%s", id);
    /* an offset out of range resumes at the end, as with librdkafka's default it always did */
    const char *kv[] = {"enable.auto.offset.store", "false", "auto.offset.reset", "latest", NULL};
    es_kafka_conf_t *conf =
        es_kafka_read_committed_conf("eventshop-api-results", group, false, kv, err);
    if (!conf)
        return NULL;
    es_kafka_t *rk = es_kafka_new(ES_KAFKA_CONSUMER, conf, err);
    if (!rk)
        return NULL;
    if (assign_recent(rk, contexts, n, err)) {
        es_kafka_destroy(rk);
        return NULL;
    }
    api_results_t *res = api_results_new_offline(capacity);
    res->codec = codec;
    res->rk = rk;
    if (pthread_create(&res->thread, NULL, results_main, res)) {
        es_set(err, ES_EINTERNAL, "cannot start the results thread");
        api_results_free(res);
        return NULL;
    }
    res->has_thread = true;
    return res;
}

void api_results_free(api_results_t *res)
{
    if (!res)
        return;
    atomic_store(&res->stop, true);
    if (res->has_thread)
        pthread_join(res->thread, NULL);
    expire_waiters(res, true);
    if (res->rk) {
        es_kafka_close(res->rk);
        es_kafka_destroy(res->rk);
    }
    free(res->known);
    free(res->counts);
    free(res->ring);
    free(res->chain);
    free(res->buckets);
    pthread_mutex_destroy(&res->lock);
    free(res);
}
