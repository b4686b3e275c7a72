/* api_positions — see api_positions.h.
 *
 * Locking: p->lock guards the snapshots, the subscriptions and the counts of waiters. The thread
 * (an es_worker, woken by a new waiter, run again after p->ms while someone waits) reads the
 * database without it (each context's connection is the thread's alone) and publishes
 * under it; it posts wake-ups under it too, so a subscription being removed (under the lock) is
 * never posted after api_positions_unsubscribe returns. */
#include "api_positions.h"
#include "es_db.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include "es_worker.h"
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MIN_MS        1 /* while the offsets move */
#define POLL_MAX_MS        8 /* while they stand still */
#define DB_CONNECT_S       2
#define DB_IO_S            10
#define API_POSITIONS_MAXC 8

/* One stored offset: projection's next offset to apply on partition part. */
struct stored_offset {
    char projection[64];
    int32_t part;
    int64_t next;
};

struct snapshot {
    struct stored_offset *offs;
    size_t n, cap;
};

struct pos_ctx {
    const char *name;     /* borrowed */
    char topic[64];       /* "<ctx>.events" */
    struct snapshot snap; /* published, under the lock */
    bool down;            /* the last read failed, under the lock */
    int waiting;          /* requests waiting on this context, under the lock */
    /* the thread's own */
    es_db_t *db; /* reconnecting: made again by es_db after a loss, with backoff */
    struct snapshot read;
    es_metric_t *queries;
    es_log_every_t warned; /* one line per 10 s while the database stays away */
};

struct api_positions_sub {
    api_positions_t *p;
    size_t ctx;
    es_http_waker_t *wake;
    int want;
    struct api_positions_sub *prev, *next;
};

struct api_positions {
    pthread_mutex_t lock;
    struct pos_ctx ctxs[API_POSITIONS_MAXC];
    size_t n;
    api_positions_sub_t *subs;
    int waiting;        /* over every context */
    bool poke;          /* a new waiter: read at once (the worker is woken too) */
    es_worker_t *watch; /* the thread: runs positions_run */
    int ms;             /* the thread's: the wait before its next read while someone waits */
};

/* --- reading (the thread, without the lock) ----------------------------------------------- */

static void snapshot_fill(struct snapshot *s, json_t *rows)
{
    size_t n = json_array_size(rows);
    if (n > s->cap) {
        s->offs = xrealloc(s->offs, n * sizeof *s->offs);
        s->cap = n;
    }
    s->n = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, i);
        const char *proj = json_string_value(json_object_get(row, "projection"));
        json_t *part = json_object_get(row, "part"), *next = json_object_get(row, "next_offset");
        if (!proj || !json_is_integer(part) || !json_is_integer(next))
            continue;
        struct stored_offset *o = &s->offs[s->n++];
        snprintf(o->projection, sizeof o->projection, "%s", proj);
        o->part = (int32_t)json_integer_value(part);
        o->next = json_integer_value(next);
    }
}

/* Reads every stored offset of c's events topic into c->read: 0, or -1 (logged). c->db is a
 * reconnecting handle: a connection found lost (the server restarted, or dropped it while idle)
 * is made again at once and the read runs once more on it, and a server that stays away is tried
 * again after a back-off; so only a database that stays away fails the waiters. */
static int ctx_read(struct pos_ctx *c)
{
    static const char sql[] =
        "SELECT projection, part, next_offset FROM projection_offsets WHERE topic = ?";
    es_err_t err = ES_ERR_INIT;
    es_db_val_t params[] = {ES_DB_S(c->topic)};
    es_metric_add(c->queries, 1);
    json_t *rows = es_db_query(c->db, sql, params, 1, &err);
    if (!rows) {
        long skipped = 0;
        if (es_log_every_pass(&c->warned, es_mono_ms(), 10000, &skipped))
            es_warn("%s stored offsets: %s (%ld more since the last line)", c->name, err.msg,
                    skipped);
        return -1;
    }
    snapshot_fill(&c->read, rows);
    json_decref(rows);
    return 0;
}

/* --- publishing (under the lock) ---------------------------------------------------------- */

static struct stored_offset *snapshot_find(const struct snapshot *s, const char *projection,
                                           int32_t part)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->offs[i].part == part && !strcmp(s->offs[i].projection, projection))
            return &s->offs[i];
    return NULL;
}

/* Makes c->snap the offsets just read (rc 0) or marks the context down; whether a waiter may
 * have something new to learn: an offset moved, or the database failed. */
static bool ctx_publish(struct pos_ctx *c, int rc)
{
    if (rc != 0) {
        c->down = true;
        return true;
    }
    bool moved = c->down || c->read.n != c->snap.n;
    for (size_t i = 0; !moved && i < c->read.n; i++) {
        const struct stored_offset *o =
            snapshot_find(&c->snap, c->read.offs[i].projection, c->read.offs[i].part);
        moved = !o || o->next != c->read.offs[i].next;
    }
    c->down = false;
    struct snapshot t = c->snap;
    c->snap = c->read;
    c->read = t;
    return moved;
}

static void wake_context(api_positions_t *p, size_t ctx)
{
    for (api_positions_sub_t *s = p->subs; s; s = s->next)
        if (s->ctx == ctx && s->want > 0)
            es_http_waker_wake(s->wake);
}

/* --- the thread --------------------------------------------------------------------------- */

/* One round: reads each context someone waits on, publishes, wakes. Under the lock on entry and
 * exit. Whether anything moved. */
static bool round_once(api_positions_t *p)
{
    bool wanted[API_POSITIONS_MAXC] = {false};
    int rc[API_POSITIONS_MAXC] = {0};
    p->poke = false;
    for (size_t i = 0; i < p->n; i++)
        wanted[i] = p->ctxs[i].waiting > 0;
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        if (wanted[i])
            rc[i] = ctx_read(&p->ctxs[i]);
    pthread_mutex_lock(&p->lock);
    bool moved = false;
    for (size_t i = 0; i < p->n; i++) {
        if (wanted[i] && ctx_publish(&p->ctxs[i], rc[i])) {
            moved = moved || rc[i] == 0;
            wake_context(p, i);
        }
    }
    return moved;
}

/* A run of the watcher (es_worker): a round while someone waits, then the wait before the next
 * one; nobody waiting, none until a waiter wakes it (api_positions_want). */
static int positions_run(void *arg, void **jobs, size_t n)
{
    api_positions_t *p = arg;
    (void)jobs;
    (void)n;
    pthread_mutex_lock(&p->lock);
    if (p->waiting == 0) {
        pthread_mutex_unlock(&p->lock);
        return ES_WORKER_IDLE;
    }
    bool poked = p->poke;
    bool moved = round_once(p);
    p->ms = moved || poked ? POLL_MIN_MS : (p->ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : p->ms * 2);
    pthread_mutex_unlock(&p->lock);
    return p->ms;
}

/* --- the interface ------------------------------------------------------------------------ */

api_positions_t *api_positions_new(const char (*contexts)[32], size_t n, es_err_t *err)
{
    if (n > API_POSITIONS_MAXC) {
        es_set(err, ES_EINVAL, "%zu contexts: at most %d", n, API_POSITIONS_MAXC);
        return NULL;
    }
    api_positions_t *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->ms = POLL_MIN_MS;
    p->n = n;
    for (size_t i = 0; i < n; i++) {
        struct pos_ctx *c = &p->ctxs[i];
        char labels[64];
        c->name = contexts[i];
        es_topic(c->topic, sizeof c->topic, c->name, "events");
        c->db = es_db_open_reconnecting(c->name, DB_CONNECT_S, DB_IO_S); /* connects when read */
        snprintf(labels, sizeof labels, "context=\"%s\"", c->name);
        c->queries =
            es_counter("eventshop_api_position_watch_queries_total",
                       "reads of the stored offsets by the read-your-writes watcher", labels);
    }
    if (!(p->watch = es_worker_new("position watcher", positions_run, NULL, p, err))) {
        api_positions_free(p);
        return NULL;
    }
    return p;
}

void api_positions_free(api_positions_t *p)
{
    if (!p)
        return;
    es_worker_free(p->watch);
    for (size_t i = 0; i < p->n; i++) {
        es_db_close(p->ctxs[i].db);
        free(p->ctxs[i].snap.offs);
        free(p->ctxs[i].read.offs);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

api_positions_sub_t *api_positions_subscribe(api_positions_t *p, size_t ctx, es_http_waker_t *wake)
{
    api_positions_sub_t *s = xcalloc(1, sizeof *s);
    s->p = p;
    s->ctx = ctx;
    s->wake = wake;
    pthread_mutex_lock(&p->lock);
    s->next = p->subs;
    if (p->subs)
        p->subs->prev = s;
    p->subs = s;
    pthread_mutex_unlock(&p->lock);
    return s;
}

void api_positions_unsubscribe(api_positions_sub_t *s)
{
    if (!s)
        return;
    api_positions_t *p = s->p;
    pthread_mutex_lock(&p->lock);
    p->ctxs[s->ctx].waiting -= s->want;
    p->waiting -= s->want;
    if (s->prev)
        s->prev->next = s->next;
    else
        p->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&p->lock);
    free(s);
}

void api_positions_want(api_positions_sub_t *s, int delta)
{
    api_positions_t *p = s->p;
    pthread_mutex_lock(&p->lock);
    s->want += delta;
    p->ctxs[s->ctx].waiting += delta;
    p->waiting += delta;
    if (delta > 0)
        p->poke = true;
    pthread_mutex_unlock(&p->lock);
    if (delta > 0)
        es_worker_wake(p->watch);
}

bool api_positions_reached(api_positions_sub_t *s, const char *projection, int32_t partition,
                           int64_t offset, bool *down)
{
    api_positions_t *p = s->p;
    pthread_mutex_lock(&p->lock);
    const struct pos_ctx *c = &p->ctxs[s->ctx];
    const struct stored_offset *o = snapshot_find(&c->snap, projection, partition);
    bool reached = o && o->next > offset;
    if (down)
        *down = c->down;
    pthread_mutex_unlock(&p->lock);
    return reached;
}
