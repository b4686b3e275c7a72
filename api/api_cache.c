/* api_cache — see api_cache.h. */
#include "api_cache.h"
#include "api_app.h"
#include "api_validate.h"
#include "es_db.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include "pj_row.h"
#include "pj_runtime.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_ENTRIES 20000
#define DOORKEEPER      8192 /* recent misses remembered: a sku is loaded on its second miss */
#define BUCKETS_MIN     1024
#define MAX_TABLES      2
#define RETRY_MS        1000 /* no load of a context for this long after its database failed */

/* What is cached of a context: its projection and the tables held per sku (the first must have
 * the sku's row for an entry to exist). */
static const struct {
    const char *ctx, *projection;
    const char *tables[MAX_TABLES + 1];
} kinds[] = {
    {"catalog", "catalog_products", {"products", NULL}},
    {"pricing", "pricing_prices", {"prices", "price_rules", NULL}},
    {"inventory", "inventory_stock", {"stock", NULL}},
};
#define NKINDS (sizeof kinds / sizeof *kinds)

struct kind {
    bool served;
    int ctx; /* index in the contexts given */
    const pj_projection_t *p;
    const char *const *tables; /* kinds[].tables */
    pj_schema_t *schema;
    char *select[MAX_TABLES];
    char topic[64];
    int nparts;         /* Kafka partitions of <ctx>.events */
    int *part_of;       /* Kafka partition -> the hub's partition number */
    es_db_t *db;        /* the loader's */
    long long retry_at; /* es_mono_ms before which no load is tried (its database failed) */
};

struct recent {
    uint64_t hash;
    int64_t offset;
};

/* One partition of the hub, as the feed has read it. */
struct feed {
    int kind;     /* -1: a context not cached */
    int64_t next; /* every record below it is applied */
    struct recent *ring;
    size_t head, count;
    int64_t ring_from; /* the ring holds every record from here to next */
};

struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU (head: most recent); pending list while loading */
    int kind;
    uint64_t hash;
    char *sku;
    json_t *tables; /* NULL while loading; then never changed, replaced whole */
    bool queued;    /* a placeholder in the pending list */
    int32_t part;   /* the sku's Kafka partition */
    int64_t from;   /* the rows hold every event of the sku below it */
};

struct api_cache {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct kind kinds[NKINDS];
    ev_codec_t *codec;
    struct feed *feeds; /* by the hub's partition number; NULL until started */
    int nfeeds;
    struct entry **buckets;
    size_t nbuckets, count, max;
    struct entry *lru_head, *lru_tail;
    uint64_t seen[DOORKEEPER]; /* hashes of recent misses, by hash % DOORKEEPER */
    struct entry *pending;     /* loads queued, oldest last */
    size_t npending;
    bool stop;
    pthread_t loader;
    es_metric_t *m_hits, *m_misses, *m_loads, *m_dropped, *m_evictions, *m_entries;
};

/* FNV-1a over the kind and the key. */
static uint64_t key_hash(int kind, const void *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)key)[i]) * 1099511628211ULL;
    return h;
}

/* ---- the map and the LRU (under lock) ---- */

static struct entry *find_locked(api_cache_t *c, int kind, const char *key, size_t len, uint64_t h)
{
    for (struct entry *e = c->buckets[h % c->nbuckets]; e; e = e->hnext)
        if (e->hash == h && e->kind == kind && strlen(e->sku) == len && !memcmp(e->sku, key, len))
            return e;
    return NULL;
}

static void list_unlink(struct entry **head, struct entry **tail, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        *head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else if (tail)
        *tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(api_cache_t *c, struct entry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head)
        c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

/* Drops e from the map and from its list (the LRU when loaded, else the pending list). */
static void remove_locked(api_cache_t *c, struct entry *e)
{
    struct entry **pp = &c->buckets[e->hash % c->nbuckets];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->tables) {
        list_unlink(&c->lru_head, &c->lru_tail, e);
        c->count--;
        es_metric_set(c->m_entries, (double)c->count);
    } else {
        if (e->queued)
            list_unlink(&c->pending, NULL, e);
        c->npending--;
    }
    json_decref(e->tables);
    free(e->sku);
    free(e);
}

/* ---- the feed (the hub's thread) ---- */

static void sink_start(void *arg, int n, const int *ctx, const int32_t *partition,
                       const int64_t *offset)
{
    api_cache_t *c = arg;
    struct feed *feeds = xcalloc((size_t)n + 1, sizeof *feeds);
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < n; i++) {
        feeds[i] = (struct feed){.kind = -1, .next = offset[i], .ring_from = offset[i]};
        for (size_t k = 0; k < NKINDS; k++) {
            struct kind *kd = &c->kinds[k];
            if (!kd->served || kd->ctx != ctx[i])
                continue;
            feeds[i].kind = (int)k;
            feeds[i].ring = xcalloc(API_CACHE_RING, sizeof *feeds[i].ring);
            if (partition[i] >= kd->nparts) {
                kd->part_of = xrealloc(kd->part_of, (size_t)(partition[i] + 1) * sizeof(int));
                for (int q = kd->nparts; q <= partition[i]; q++)
                    kd->part_of[q] = -1;
                kd->nparts = partition[i] + 1;
            }
            kd->part_of[partition[i]] = i;
        }
    }
    c->feeds = feeds;
    c->nfeeds = n;
    pthread_mutex_unlock(&c->lock);
}

/* A decoded and planned record, ready to apply to its entry. */
struct planned {
    bool ok;    /* planned (else: dropped by the projection, or the entry must go) */
    bool evict; /* the cache cannot follow it: drop the entry */
    pj_plan_t *plan;
    json_t *value;
};

static void plan_record(api_cache_t *c, int kind, const void *value, size_t len,
                        struct planned *out)
{
    const char *full_name = NULL;
    es_err_t err = ES_ERR_INIT;
    *out = (struct planned){.plan = pj_plan_new()};
    if (!value || ev_decode(c->codec, value, len, &full_name, &out->value, &err)) {
        out->evict = value != NULL; /* the projector may read it later (a registry back) */
        return;
    }
    const char *dot = strrchr(full_name, '.');
    const pj_projection_t *p = c->kinds[kind].p;
    if (p->plan("", dot ? dot + 1 : full_name, out->value, out->plan, &err) == 0)
        out->ok = true;
    else
        out->evict = err.code != ES_EINVAL; /* ES_EINVAL: dead-lettered, no change */
}

static void planned_release(struct planned *pl)
{
    pj_plan_free(pl->plan);
    json_decref(pl->value);
}

/* Applies pl to e on a copy, as the projector applies it (or, failing, dead-letters it). */
static void apply_locked(api_cache_t *c, struct entry *e, const struct planned *pl)
{
    if (pl->evict) {
        remove_locked(c, e);
        return;
    }
    if (!pl->ok)
        return;
    json_t *copy = json_deep_copy(e->tables);
    es_err_t err = ES_ERR_INIT;
    if (pj_row_apply(c->kinds[e->kind].schema, copy, pl->plan, &err) == 0) {
        json_decref(e->tables);
        e->tables = copy;
        return;
    }
    json_decref(copy);
    if (err.code == ES_EINVAL) { /* SQL the interpreter does not read: stop following it */
        es_warn("api cache: sku '%s' dropped: %s", e->sku, err.msg);
        remove_locked(c, e);
    }
}

static void sink_record(void *arg, int part, int64_t offset, const void *key, size_t key_len,
                        const void *value, size_t len)
{
    api_cache_t *c = arg;
    struct feed *f = &c->feeds[part];
    if (f->kind < 0 || !key)
        return;
    uint64_t h = key_hash(f->kind, key, key_len);
    struct planned pl = {0};
    bool planned = false;
    pthread_mutex_lock(&c->lock);
    struct entry *e = find_locked(c, f->kind, key, key_len, h);
    bool wanted = e && e->tables && offset >= e->from;
    pthread_mutex_unlock(&c->lock);
    if (wanted) { /* decoded outside the lock: a first schema may be fetched from the registry */
        plan_record(c, f->kind, value, len, &pl);
        planned = true;
    }
    pthread_mutex_lock(&c->lock);
    if (offset >= f->next) {
        e = find_locked(c, f->kind, key, key_len, h); /* loaded or evicted meanwhile */
        if (e && e->tables && offset >= e->from) {
            if (!planned) {
                plan_record(c, f->kind, value, len, &pl);
                planned = true;
            }
            apply_locked(c, e, &pl);
        }
        if (f->count == API_CACHE_RING)
            f->ring_from = f->ring[f->head].offset + 1; /* the oldest goes */
        else
            f->count++;
        f->ring[f->head] = (struct recent){h, offset};
        f->head = (f->head + 1) % API_CACHE_RING;
        f->next = offset + 1;
    }
    pthread_mutex_unlock(&c->lock);
    if (planned)
        planned_release(&pl);
}

struct api_stream_sink api_cache_sink(api_cache_t *c)
{
    return (struct api_stream_sink){.start = sink_start, .record = sink_record, .arg = c};
}

/* Whether a record of hash h is in [from, f->next) of f's ring; -1 when the ring does not reach
 * back to from (the range cannot be told). */
static int ring_holds_locked(const struct feed *f, uint64_t h, int64_t from)
{
    if (from >= f->next)
        return 0;
    if (from < f->ring_from)
        return -1;
    for (size_t i = 0; i < f->count; i++) {
        const struct recent *x = &f->ring[(f->head + API_CACHE_RING - 1 - i) % API_CACHE_RING];
        if (x->offset < from)
            break;
        if (x->hash == h)
            return 1;
    }
    return 0;
}

/* ---- the loader ---- */

/* Where the first table's rows stand, selected beside them: the sku's partition (from the event
 * index) and the projection's next offset there; one statement reads one consistent view. */
#define WHERE_COLUMNS                                                                              \
    ", (SELECT part FROM `" PJ_INDEX_TABLE "` WHERE aggregate_id = ? LIMIT 1) AS pj_part, "        \
    "(SELECT o.next_offset FROM projection_offsets o JOIN `" PJ_INDEX_TABLE "` i "                 \
    "ON o.part = i.part WHERE i.aggregate_id = ? AND o.projection = ? AND o.topic = ? LIMIT 1) "   \
    "AS pj_from"

/* Takes pj_part and pj_from out of rows (the first table's, at least one): 0, or -1 when the
 * sku's events are not indexed or the projection stored no offset there. */
static int take_where(json_t *rows, int32_t *part, int64_t *from)
{
    json_t *first = json_array_get(rows, 0);
    json_t *p = json_object_get(first, "pj_part"), *f = json_object_get(first, "pj_from");
    if (!json_is_integer(p) || !json_is_integer(f))
        return -1;
    *part = (int32_t)json_integer_value(p);
    *from = json_integer_value(f);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_object_del(row, "pj_part");
        json_object_del(row, "pj_from");
    }
    return 0;
}

/* The rows of sku and where they stand, read in one snapshot: {table: rows}, the sku's partition
 * and the projection's next offset there. One statement for a one-table kind; a transaction WITH
 * CONSISTENT SNAPSHOT around the tables' statements otherwise. NULL when the sku has no row, or
 * with err. */
static json_t *load_snapshot(struct kind *kd, const char *sku, int32_t *part, int64_t *from,
                             es_err_t *err)
{
    es_db_val_t first[] = {ES_DB_S(sku), ES_DB_S(sku), ES_DB_S(kd->p->name), ES_DB_S(kd->topic),
                           ES_DB_S(sku)};
    json_t *tables = json_object(), *rows = NULL;
    bool txn = kd->tables[1] != NULL, ok = false;
    if (txn && es_db_exec(kd->db, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", NULL, 0,
                          NULL, err))
        goto out;
    for (size_t t = 0; kd->tables[t]; t++) {
        if (!(rows = es_db_query(kd->db, kd->select[t], t ? first + 4 : first, t ? 1 : 5, err)) ||
            (t == 0 && (json_array_size(rows) == 0 || take_where(rows, part, from))))
            goto out;
        json_object_set_new(tables, kd->tables[t], rows);
        rows = NULL;
    }
    ok = true;
out:
    json_decref(rows);
    if (txn)
        es_db_exec(kd->db, "COMMIT", NULL, 0, NULL, NULL);
    if (!ok)
        json_decref(tables);
    return ok ? tables : NULL;
}

/* The loader's connection to kd's database, made on first use, in REPEATABLE READ (a consistent
 * snapshot in READ COMMITTED would not hold across the statements). */
static es_db_t *loader_db(struct kind *kd, const char *ctx, es_err_t *err)
{
    if (!kd->db && (kd->db = es_db_open_timeout(ctx, 2, 5, err)) &&
        es_db_exec(kd->db, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", NULL, 0, NULL,
                   err)) {
        es_db_close(kd->db);
        kd->db = NULL;
    }
    return kd->db;
}

/* Whether rows loaded at from on part may join the feed: the ring of part shows no record of the
 * sku (hash h) between from and where the feed stands. */
static bool may_join_locked(api_cache_t *c, const struct kind *kd, uint64_t h, int32_t part,
                            int64_t from)
{
    if (part < 0 || part >= kd->nparts || kd->part_of[part] < 0)
        return false;
    return ring_holds_locked(&c->feeds[kd->part_of[part]], h, from) == 0;
}

/* Settles the placeholder e with the rows loaded (stolen; NULL: none): an entry, or gone. */
static void settle_locked(api_cache_t *c, struct entry *e, json_t *tables, int32_t part,
                          int64_t from)
{
    const struct kind *kd = &c->kinds[e->kind];
    if (tables && may_join_locked(c, kd, e->hash, part, from)) {
        c->npending--;
        e->tables = tables;
        e->part = part;
        e->from = from;
        lru_push(c, e);
        c->count++;
        es_metric_add(c->m_loads, 1);
        while (c->count > c->max) {
            remove_locked(c, c->lru_tail);
            es_metric_add(c->m_evictions, 1);
        }
        es_metric_set(c->m_entries, (double)c->count);
        return;
    }
    if (tables)
        es_metric_add(c->m_dropped, 1);
    json_decref(tables);
    remove_locked(c, e);
}

/* Loads e's rows, unless its database failed less than RETRY_MS ago: a database that is gone
 * costs one connect attempt a second, not one per miss. */
static void load_one_locked(api_cache_t *c, struct entry *e)
{
    struct kind *kd = &c->kinds[e->kind];
    if (es_mono_ms() < kd->retry_at) {
        settle_locked(c, e, NULL, -1, 0);
        return;
    }
    char *sku = xstrdup(e->sku);
    pthread_mutex_unlock(&c->lock);
    es_err_t err = ES_ERR_INIT;
    int32_t part = -1;
    int64_t from = 0;
    json_t *tables = NULL;
    if (loader_db(kd, kinds[e->kind].ctx, &err))
        tables = load_snapshot(kd, sku, &part, &from, &err);
    bool failed = !kd->db || err.code == ES_EIO;
    if (err.code)
        es_debug("api cache: '%s' not loaded: %s", sku, err.msg);
    if (failed) {
        es_db_close(kd->db);
        kd->db = NULL;
    }
    pthread_mutex_lock(&c->lock);
    if (failed)
        kd->retry_at = es_mono_ms() + RETRY_MS;
    settle_locked(c, e, tables, part, from); /* placeholders are removed by the loader only */
    free(sku);
}

static void *loader_main(void *arg)
{
    api_cache_t *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct entry *e = c->pending;
        if (!e) {
            pthread_cond_wait(&c->wake, &c->lock);
            continue;
        }
        list_unlink(&c->pending, NULL, e);
        e->queued = false;
        load_one_locked(c, e);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* A miss: on the sku's second recent miss (a sku read once in a while, as a scan over many
 * does, costs MySQL no load and evicts nothing), a placeholder in the map, queued for the loader
 * (unless the queue is full). */
static void queue_locked(api_cache_t *c, int kind, const char *sku, uint64_t h)
{
    uint64_t *seen = &c->seen[h % DOORKEEPER];
    if (*seen != h) {
        *seen = h;
        return;
    }
    if (c->npending >= API_CACHE_PENDING || es_mono_ms() < c->kinds[kind].retry_at)
        return;
    struct entry *e = xcalloc(1, sizeof *e);
    e->kind = kind;
    e->hash = h;
    e->sku = xstrdup(sku);
    e->hnext = c->buckets[h % c->nbuckets];
    c->buckets[h % c->nbuckets] = e;
    e->next = c->pending;
    if (c->pending)
        c->pending->prev = e;
    c->pending = e;
    e->queued = true;
    c->npending++;
    pthread_cond_signal(&c->wake);
}

/* ---- lookups (the loop threads) ---- */

static int kind_of(const api_cache_t *c, const char *ctx)
{
    for (size_t k = 0; k < NKINDS; k++)
        if (c->kinds[k].served && !strcmp(kinds[k].ctx, ctx))
            return (int)k;
    return -1;
}

/* Whether e holds every event of its sku up to position q:x of its context. */
static bool reached_locked(const api_cache_t *c, const struct kind *kd, const struct entry *e,
                           int32_t q, int64_t x)
{
    if (q < 0 || q >= kd->nparts || kd->part_of[q] < 0)
        return false;
    int64_t at = c->feeds[kd->part_of[q]].next;
    if (q == e->part && e->from > at)
        at = e->from;
    return at > x;
}

/* The snapshot of sku in ctx (new reference) when held at q:x (any when !at), else NULL (a load
 * queued when it is not held at all). */
static json_t *lookup(api_cache_t *c, const char *ctx, const char *sku, bool at, int32_t q,
                      int64_t x)
{
    int k = kind_of(c, ctx);
    if (k < 0)
        return NULL;
    size_t len = strlen(sku);
    uint64_t h = key_hash(k, sku, len);
    json_t *snap = NULL;
    pthread_mutex_lock(&c->lock);
    struct entry *e = c->feeds ? find_locked(c, k, sku, len, h) : NULL;
    if (!e && c->feeds)
        queue_locked(c, k, sku, h);
    if (e && e->tables && (!at || reached_locked(c, &c->kinds[k], e, q, x))) {
        snap = json_incref(e->tables);
        list_unlink(&c->lru_head, &c->lru_tail, e);
        lru_push(c, e);
    }
    pthread_mutex_unlock(&c->lock);
    es_metric_add(snap ? c->m_hits : c->m_misses, 1);
    return snap;
}

/* The request's position as api_query_at_position reads it: 0 none, 1 *q:*x, -1 malformed. */
static int request_position(es_http_req_t *r, int32_t *q, int64_t *x)
{
    char *header = es_http_header_dup(r, "X-Min-Position");
    char *query = es_http_query_dup(r, "min_position");
    int rc = 0;
    if (query && api_parse_position(query, q, x))
        rc = -1; /* refused even beside a header */
    else if (header)
        rc = api_parse_position(header, q, x) ? -1 : 1;
    else if (query)
        rc = 1;
    free(header);
    free(query);
    return rc;
}

/* Whether Cache-Control lists the no-cache directive. */
static bool no_cache(es_http_req_t *r)
{
    char *cc = es_http_header_dup(r, "Cache-Control");
    bool skip = false;
    for (const char *s = cc; s && *s && !skip;) {
        s += strspn(s, " \t,");
        size_t n = strcspn(s, " \t,=");
        skip = n == 8 && !strncasecmp(s, "no-cache", 8);
        s += strcspn(s, ",");
    }
    free(cc);
    return skip;
}

json_t *api_cache_get(es_http_req_t *r, const char *ctx)
{
    api_cache_t *c = ((struct api_app *)es_http_app(r))->cache;
    const char *sku = es_http_param(r, "sku");
    struct api_verr e = {0};
    int32_t q = 0;
    int64_t x = 0;
    int at;
    if (!c || !sku || api_validate_sku(sku, 404, &e) || no_cache(r) ||
        (at = request_position(r, &q, &x)) < 0)
        return NULL;
    return lookup(c, ctx, sku, at == 1, q, x);
}

json_t *api_cache_peek(es_http_req_t *r, const char *ctx, const char *sku)
{
    api_cache_t *c = ((struct api_app *)es_http_app(r))->cache;
    struct api_verr e = {0};
    if (!c || !sku || api_validate_sku(sku, 404, &e) || no_cache(r))
        return NULL;
    return lookup(c, ctx, sku, false, 0, 0);
}

json_t *api_cache_rows(const json_t *snap, const char *table, const char *columns)
{
    json_t *rows = json_object_get(snap, table);
    if (!json_is_array(rows))
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *o = json_object();
        for (const char *s = columns; *s;) {
            s += strspn(s, ", ");
            size_t n = strcspn(s, ", ");
            if (!n)
                break;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)n, s);
            json_t *v = json_object_get(row, name);
            json_object_set(o, name, v ? v : json_null());
            s += n;
        }
        json_array_append_new(out, o);
    }
    return out;
}

json_t *api_cache_row(es_http_req_t *r, const char *ctx, const char *table, const char *columns)
{
    json_t *snap = api_cache_get(r, ctx);
    json_t *rows = snap ? api_cache_rows(snap, table, columns) : NULL;
    json_t *row = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    json_decref(snap);
    return row;
}

/* ---- life ---- */

static bool kind_init(struct kind *kd, size_t k, const char (*contexts)[32], size_t n)
{
    size_t i = 0;
    while (i < n && strcmp(contexts[i], kinds[k].ctx))
        i++;
    es_err_t err = ES_ERR_INIT;
    if (i == n || !(kd->p = pj_projection_find(kinds[k].ctx, kinds[k].projection)))
        return false;
    if (!(kd->schema = pj_schema_new(kd->p, &err))) {
        es_error("api cache: %s not cached: %s", kinds[k].projection, err.msg);
        return false;
    }
    kd->ctx = (int)i;
    kd->tables = kinds[k].tables;
    for (size_t t = 0; kd->tables[t]; t++) {
        const char *cols = pj_schema_columns(kd->schema, kd->tables[t]);
        if (!cols)
            return false;
        kd->select[t] = xasprintf("SELECT %s%s FROM `%s` WHERE sku = ? ORDER BY %s", cols,
                                  t ? "" : WHERE_COLUMNS, kd->tables[t],
                                  pj_schema_key(kd->schema, kd->tables[t]));
    }
    es_topic(kd->topic, sizeof kd->topic, kinds[k].ctx, "events");
    return kd->served = true;
}

api_cache_t *api_cache_new(const char (*contexts)[32], size_t n, ev_codec_t *codec)
{
    long max = es_env_long("EVENTSHOP_API_CACHE_ENTRIES", DEFAULT_ENTRIES);
    if (max <= 0)
        return NULL;
    api_cache_t *c = xcalloc(1, sizeof *c);
    bool any = false;
    for (size_t k = 0; k < NKINDS; k++)
        any = kind_init(&c->kinds[k], k, contexts, n) || any;
    c->codec = codec;
    c->max = (size_t)max;
    c->nbuckets = c->max > BUCKETS_MIN ? c->max : BUCKETS_MIN;
    c->buckets = xcalloc(c->nbuckets, sizeof *c->buckets);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (!any || pthread_create(&c->loader, NULL, loader_main, c)) {
        c->stop = true; /* no loader to join */
        api_cache_free(c);
        return NULL;
    }
    c->m_hits = es_counter("eventshop_api_cache_hits_total", "GETs answered from the cache", NULL);
    c->m_misses = es_counter("eventshop_api_cache_misses_total",
                             "GETs the cache could not answer (answered from MySQL)", NULL);
    c->m_loads = es_counter("eventshop_api_cache_loads_total", "entries loaded from MySQL", NULL);
    c->m_dropped = es_counter("eventshop_api_cache_loads_dropped_total",
                              "loads dropped: the feed had read events of the sku since", NULL);
    c->m_evictions =
        es_counter("eventshop_api_cache_evictions_total", "entries evicted (LRU)", NULL);
    c->m_entries = es_gauge("eventshop_api_cache_entries", "entries the cache holds", NULL);
    es_info("api cache: up to %zu entries", c->max);
    return c;
}

void api_cache_free(api_cache_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    bool join = !c->stop;
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    if (join)
        pthread_join(c->loader, NULL);
    for (size_t b = 0; b < c->nbuckets; b++)
        while (c->buckets[b])
            remove_locked(c, c->buckets[b]);
    for (int i = 0; i < c->nfeeds; i++)
        free(c->feeds[i].ring);
    free(c->feeds);
    for (size_t k = 0; k < NKINDS; k++) {
        pj_schema_free(c->kinds[k].schema);
        for (size_t t = 0; t < MAX_TABLES; t++)
            free(c->kinds[k].select[t]);
        free(c->kinds[k].part_of);
        es_db_close(c->kinds[k].db);
    }
    free(c->buckets);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
