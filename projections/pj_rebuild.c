/* pj_rebuild — a projection rebuilt beside its live tables and swapped in (pj_runtime.h): replay
 * from offset 0 with a manual runtime (pj_internal.h), catch-up to the live projector's stored
 * offsets under its lock, one RENAME TABLE. Also the version check that decides a rebuild is
 * due. */
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "pj_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The stop a signal asks (pj_rebuild_stop). Process-wide, not on a handle: the signal handler
 * (projector_main.c) reaches the rebuild through pj_rebuild_stop(void) only, pj_rebuild owns all
 * it makes from call to return, and a handler may only set a volatile sig_atomic_t, never follow a
 * pointer to state that may be gone. */
static volatile sig_atomic_t pj_rebuild_stopping;

void pj_rebuild_stop(void)
{
    pj_rebuild_stopping = 1;
}

int pj_version_check(const pj_projection_t *p, int *stored, es_err_t *err)
{
    int rc = -1;
    json_t *rows = NULL;
    es_db_t *db = es_db_open(p->context, err);
    if (!db)
        return -1;
    const es_db_val_t params[] = {ES_DB_S(p->name), ES_DB_I(p->version)};
    if (es_db_exec(db, pj_versions_ddl, NULL, 0, NULL, err) ||
        es_db_exec(db, "INSERT IGNORE INTO projection_versions (projection, version) VALUES (?, ?)",
                   params, 2, NULL, err) ||
        !(rows = es_db_query(db, "SELECT version FROM projection_versions WHERE projection=?",
                             params, 1, err)))
        goto out;
    *stored = (int)json_integer_value(json_object_get(json_array_get(rows, 0), "version"));
    rc = *stored != p->version;
out:
    json_decref(rows);
    es_db_close(db);
    return rc;
}

/* The consumer's position of partition i, past control records; -1 if unknown. */
static int64_t pj_position(pj_runtime_t *rt, int32_t i)
{
    es_kafka_parts_t *list = es_kafka_parts_new(1);
    es_kafka_parts_add(list, rt->topic, i);
    es_kafka_position(rt->rk, list);
    int64_t pos = list->elems[0].offset >= 0 ? list->elems[0].offset : -1;
    es_kafka_parts_free(list);
    return pos;
}

/* Events of the topic not yet read, from the end offsets; -1 if unknown. cached: the high
 * watermarks the last fetch responses carried (no request; they lag a fetch behind). Else one
 * ListOffsets request for every partition at once (offsets_for_times at "latest": the last
 * stable offset for this read_committed consumer), not one watermark query per partition each
 * queued behind a long-polling fetch. */
static long long pj_remaining(pj_runtime_t *rt, bool cached)
{
    long long left = 0;
    es_kafka_parts_t *ends = NULL;
    if (!cached) {
        ends = es_kafka_parts_new(rt->nparts);
        for (int i = 0; i < rt->nparts; i++)
            if (rt->parts[i].assigned)
                es_kafka_parts_add(ends, rt->topic, i)->offset = ES_KAFKA_OFFSET_END;
        if (es_kafka_offsets_for_times(rt->rk, ends, 5000)) {
            left = -1;
            goto out;
        }
    }
    for (int i = 0; i < rt->nparts; i++) {
        if (!rt->parts[i].assigned)
            continue;
        int64_t lo = -1, hi = -1;
        if (cached) {
            if (es_kafka_watermarks(rt->rk, rt->topic, i, &lo, &hi))
                hi = -1;
        } else {
            es_kafka_part_t *tp = es_kafka_parts_find(ends, rt->topic, i);
            if (tp && !tp->err)
                hi = tp->offset;
        }
        if (hi < 0) {
            left = -1;
            goto out;
        }
        int64_t next = rt->parts[i].stored, pos = pj_position(rt, i);
        if (pos > next)
            next = pos;
        if (next < lo)
            next = lo;
        left += hi > next ? hi - next : 0;
    }
out:
    if (ends)
        es_kafka_parts_free(ends);
    return left;
}

/* One turn of a rebuild's consume loop: polls at most one message into the batch (none at or
 * past rt->limit when set) and flushes when the batch is due. Returns 1 if it batched one. */
static int pj_step(pj_runtime_t *rt, long long *first_at)
{
    es_metrics_heartbeat("projector");
    if (!pj_ready(rt))
        return 0;
    es_kafka_msg_t *m = es_kafka_poll(rt->rk, pj_poll_timeout(rt, *first_at));
    int took = pj_take(rt, m, first_at);
    if (rt->nbatch > 0 &&
        (rt->nbatch >= rt->batch_max || es_mono_ms() - *first_at >= rt->linger_ms || took < 0) &&
        pj_flush(rt) == -1)
        pj_backoff(rt);
    return took == 1;
}

/* Whether every partition has been applied up to limit (stored, or skipped control records). */
static bool pj_reached(pj_runtime_t *rt, const int64_t *limit)
{
    if (rt->nbatch > 0 || rt->need_resync)
        return false;
    for (int i = 0; i < rt->nparts; i++)
        if (rt->parts[i].assigned && rt->parts[i].stored < limit[i] &&
            pj_position(rt, i) < limit[i])
            return false;
    return true;
}

struct pj_progress {
    const char *phase;
    long long t0, last;
    char line[200]; /* the last report's numbers, for projection_status */
    es_metric_t *m_done, *m_left, *m_rate, *m_eta;
};

static void pj_progress_report(pj_runtime_t *rt, struct pj_progress *pg, long long left)
{
    long long now = es_mono_ms();
    double secs = (double)(now - pg->t0) / 1000.0;
    double rate = secs > 0 ? (double)rt->done / secs : 0;
    double eta = left < 0 ? -1 : rate > 0 ? (double)left / rate : left == 0 ? 0 : -1;
    es_metric_set(pg->m_done, (double)rt->done);
    es_metric_set(pg->m_left, (double)left);
    es_metric_set(pg->m_rate, rate);
    es_metric_set(pg->m_eta, eta);
    /* one line per second, its numbers as key=value so that tools can read them */
    snprintf(pg->line, sizeof pg->line,
             "phase=%s applied=%lld remaining=%lld events_per_s=%.0f eta_s=%.1f elapsed_s=%.1f",
             pg->phase, rt->done, left, rate, eta, secs);
    es_info("rebuild %s: progress %s", rt->key, pg->line);
    pg->last = now;
}

/* Name of live table t exists in the database. */
static int pj_table_exists(es_db_t *db, const char *t, bool *exists, es_err_t *err)
{
    const es_db_val_t params[] = {ES_DB_S(t)};
    json_t *rows = es_db_query(db,
                               "SELECT table_name AS t FROM information_schema.tables "
                               "WHERE table_schema = DATABASE() AND table_name = ?",
                               params, 1, err);
    if (!rows)
        return -1;
    *exists = json_array_size(rows) > 0;
    json_decref(rows);
    return 0;
}

/* With the live lock held on ctl: one RENAME TABLE moving every live table of p (suffix ls, key
 * lkey) to ls + old_suffix and every rebuilt one to the live name, then (one transaction) the
 * rebuild's offsets, dead letters and version become the live ones. The RENAME comes first: a crash
 * between the two leaves the live offsets at or behind the rebuilt rows only when the rebuild had
 * to go past them (logged). */
static int pj_swap(es_db_t *ctl, pj_runtime_t *rt, const char *ls, const char *lkey,
                   const char *old_suffix, const int64_t *live, es_err_t *err)
{
    const pj_projection_t *p = rt->p;
    size_t cap = 64;
    const char *t;
    for (size_t i = 0; (t = pj_projection_table(p, i)); i++)
        cap += 3 * strlen(t) + 3 * strlen(ls) + strlen(rt->suffix) + strlen(old_suffix) + 32;
    char *sql = xmalloc(cap);
    size_t n = (size_t)snprintf(sql, cap, "RENAME TABLE ");
    int rc = -1;
    for (size_t i = 0; (t = pj_projection_table(p, i)); i++) {
        bool exists = false;
        char *live_t = xasprintf("%s%s", t, ls);
        int e = pj_table_exists(ctl, live_t, &exists, err);
        free(live_t);
        if (e)
            goto out;
        if (exists)
            n += (size_t)snprintf(sql + n, cap - n, "`%s%s` TO `%s%s%s`, ", t, ls, t, ls,
                                  old_suffix);
        n += (size_t)snprintf(sql + n, cap - n, "`%s%s` TO `%s%s`%s", t, rt->suffix, t, ls,
                              pj_projection_table(p, i + 1) ? ", " : "");
    }
    if (es_db_exec(ctl, sql, NULL, 0, NULL, err))
        goto out;
    const es_db_val_t keys[] = {ES_DB_S(lkey), ES_DB_S(rt->key), ES_DB_S(rt->topic)};
    if (es_db_begin(ctl, err) ||
        es_db_exec(ctl, "DELETE FROM projection_offsets WHERE projection=? AND topic=?", keys + 1,
                   2, NULL, err) ||
        es_db_exec(ctl, "DELETE FROM projection_dead_letters WHERE projection=?", keys, 1, NULL,
                   err) ||
        es_db_exec(ctl, "UPDATE projection_dead_letters SET projection=? WHERE projection=?", keys,
                   2, NULL, err))
        goto rollback;
    for (int i = 0; i < rt->nparts; i++) {
        int64_t next = rt->parts[i].stored > live[i] ? rt->parts[i].stored : live[i];
        if (!rt->parts[i].assigned || next < 0)
            continue;
        if (pj_offset_store(ctl, lkey, rt->topic, i, next, err))
            goto rollback;
    }
    const es_db_val_t ver[] = {ES_DB_S(lkey), ES_DB_I(p->version)};
    if (es_db_exec(ctl,
                   "INSERT INTO projection_versions (projection, version, built_at) VALUES "
                   "(?, ?, NOW(3)) ON DUPLICATE KEY UPDATE version=VALUES(version), "
                   "built_at=VALUES(built_at)",
                   ver, 2, NULL, err) ||
        es_db_commit(ctl, err))
        goto rollback;
    rc = 0;
    goto out;
rollback:
    es_db_rollback(ctl);
out:
    free(sql);
    return rc;
}

static void pj_drop_tables(es_db_t *db, const pj_projection_t *p, const char *suffix)
{
    const char *t;
    for (size_t i = 0; (t = pj_projection_table(p, i)); i++) {
        char *sql = xasprintf("DROP TABLE IF EXISTS `%s%s`", t, suffix);
        es_err_t e = ES_ERR_INIT;
        if (es_db_exec(db, sql, NULL, 0, NULL, &e))
            es_warn("rebuild %s: cannot drop '%s%s': %s", p->name, t, suffix, e.msg);
        free(sql);
    }
}

/* Drops table t<rt->suffix>_rb<digits> named name, and the offsets and dead letters of its key;
 * anything else the LIKE matched is left. */
static void pj_sweep_one(pj_runtime_t *rt, const char *t, const char *name)
{
    size_t plen = strlen(t) + strlen(rt->suffix);
    const char *stamp = name + plen + 3;
    if (strlen(name) <= plen + 3 || strncmp(name, t, strlen(t)) ||
        strncmp(name + strlen(t), rt->suffix, strlen(rt->suffix)) || strncmp(name + plen, "_rb", 3))
        return;
    for (const char *c = stamp; *c; c++)
        if (*c < '0' || *c > '9')
            return;
    char *sql = xasprintf("DROP TABLE IF EXISTS `%s`", name);
    char *key = xasprintf("%s_rb%s", rt->key, stamp);
    const es_db_val_t params[] = {ES_DB_S(key)};
    es_err_t e = ES_ERR_INIT;
    if (es_db_exec(rt->db, sql, NULL, 0, NULL, &e) ||
        es_db_exec(rt->db, "DELETE FROM projection_offsets WHERE projection=?", params, 1, NULL,
                   &e) ||
        es_db_exec(rt->db, "DELETE FROM projection_dead_letters WHERE projection=?", params, 1,
                   NULL, &e))
        es_warn("projector %s: cannot drop the abandoned rebuild table '%s': %s", rt->key, name,
                e.msg);
    else
        es_info("projector %s: dropped '%s', left by a rebuild that did not finish", rt->key, name);
    free(sql);
    free(key);
}

void pj_shadow_sweep(pj_runtime_t *rt)
{
    char *lock = xasprintf("eventshop.%s.%s.rebuild", rt->p->context, rt->key);
    es_err_t e = ES_ERR_INIT;
    if (pj_lock(rt->db, lock, 0, &e)) {
        es_info("projector %s: a rebuild runs (%s): its tables are left to it", rt->key, e.msg);
        free(lock);
        return;
    }
    const char *t;
    for (size_t i = 0; (t = pj_projection_table(rt->p, i)); i++) {
        /* '_' matches any character in LIKE: pj_sweep_one checks the exact name */
        char *like = xasprintf("%s%s_rb%%", t, rt->suffix);
        const es_db_val_t params[] = {ES_DB_S(like)};
        json_t *rows = es_db_query(rt->db,
                                   "SELECT table_name AS t FROM information_schema.tables "
                                   "WHERE table_schema = DATABASE() AND table_name LIKE ?",
                                   params, 1, &e);
        size_t k;
        json_t *row;
        json_array_foreach(rows, k, row)
        {
            pj_sweep_one(rt, t, json_string_value(json_object_get(row, "t")));
        }
        json_decref(rows);
        free(like);
    }
    pj_unlock(rt->db, lock);
    free(lock);
}

/* A rebuild in progress: what the steps of pj_rebuild share. */
struct pj_rb {
    const pj_projection_t *p;
    pj_rebuild_options_t o;
    char ls[40];         /* the live tables' suffix ("" but for a test's projector) */
    char *lkey;          /* the live key: name + ls */
    char suffix[80];     /* the rebuilt tables' ls + "_rb<unix time>" */
    char old_suffix[40]; /* the replaced tables' "_old<unix time>" (after ls) */
    char *rb_lock;       /* held from start to end: one rebuild of p at a time */
    char *live_lock;     /* the live projector's per-batch lock */
    char *group;         /* the manual runtime's one-off consumer group */
    es_db_t *ctl;        /* the rebuild's own connection: locks, swap and clean-up */
    pj_runtime_t *rt;    /* the manual runtime replaying into the rebuilt tables */
    int64_t *live;       /* per partition: the live projector's stored offset, -1: none */
    int64_t *limit;      /* per partition: where the catch-up stops */
    bool live_locked, swapped;
    struct pj_shadow *shadow; /* a shadow rebuild (pj_shadow_start); NULL: pj_rebuild's */
    long long first_at;       /* when the batch in flight began */
    struct pj_progress pg;
};

static void pj_shadow_status(struct pj_rb *rb, const char *state, const char *detail);

/* A signal's stop, or the live projector closing a shadow rebuild. */
static bool pj_rb_cancelled(const struct pj_rb *rb)
{
    return pj_rebuild_stopping || (rb->shadow && pj_shadow_cancelled(rb->shadow));
}

static void pj_rb_progress_init(struct pj_progress *pg, const char *name)
{
    char labels[128];
    snprintf(labels, sizeof labels, "projection=\"%s\"", name);
    *pg = (struct pj_progress){
        .phase = "replay",
        .t0 = es_mono_ms(),
        .m_done = es_gauge("eventshop_projector_rebuild_applied_events",
                           "Events applied to the tables being rebuilt", labels),
        .m_left = es_gauge("eventshop_projector_rebuild_remaining_events",
                           "Events still to apply before the rebuild catches up", labels),
        .m_rate = es_gauge("eventshop_projector_rebuild_events_per_second", "Average rebuild speed",
                           labels),
        .m_eta = es_gauge("eventshop_projector_rebuild_eta_seconds",
                          "Estimated time left to catch up (-1: unknown)", labels),
    };
}

/* Names the rebuild's tables, locks and group (ls: the live tables' suffix); takes the rebuild
 * lock (ES_ECONFLICT when another rebuild of p holds it) and makes the manual runtime, which
 * creates the rebuilt tables. */
static int pj_rb_start(struct pj_rb *rb, const pj_projection_t *p, const char *ls,
                       const pj_rebuild_options_t *ropt, es_err_t *err)
{
    long long stamp = (long long)time(NULL);
    memset(rb, 0, sizeof *rb);
    rb->p = p;
    if (ropt)
        rb->o = *ropt;
    snprintf(rb->ls, sizeof rb->ls, "%s", ls);
    rb->lkey = xasprintf("%s%s", p->name, ls);
    snprintf(rb->suffix, sizeof rb->suffix, "%s_rb%lld", ls, stamp);
    snprintf(rb->old_suffix, sizeof rb->old_suffix, "_old%lld", stamp);
    rb->rb_lock = xasprintf("eventshop.%s.%s.rebuild", p->context, rb->lkey);
    rb->live_lock = pj_lock_name(p->context, rb->lkey);
    rb->group = xasprintf("eventshop-%s-rebuild-%lld", rb->lkey, stamp);
    if (!(rb->ctl = es_db_open(p->context, err)))
        return -1;
    es_err_t e = ES_ERR_INIT;
    if (pj_lock(rb->ctl, rb->rb_lock, 0, &e))
        return es_set(err, e.code == ES_ETIMEOUT ? ES_ECONFLICT : e.code,
                      e.code == ES_ETIMEOUT ? "a rebuild of '%s' is already running" : "%s: %s",
                      e.code == ES_ETIMEOUT ? p->name : "rebuild lock", e.msg);
    pj_options_t opt = {.group = rb->group,
                        .suffix = rb->suffix,
                        .batch_max = rb->o.batch_max > 0 ? rb->o.batch_max : 2000,
                        .linger_ms = 50};
    if (!(rb->rt = pj_runtime_create(p, &opt, true, err)))
        return -1;
    pj_rb_progress_init(&rb->pg, p->name);
    es_info("rebuild %s: replaying %s from offset 0 into tables with suffix '%s' (version %d)",
            p->name, rb->rt->topic, rb->suffix, p->version);
    return 0;
}

/* Replays from 0 and catches up until less than one batch behind the high watermarks. */
static int pj_rb_replay(struct pj_rb *rb, es_err_t *err)
{
    pj_runtime_t *rt = rb->rt;
    char errstr[512];
    for (;;) {
        if (pj_rb_cancelled(rb))
            return es_set(err, ES_ETIMEOUT, "rebuild of '%s' interrupted", rb->lkey);
        if (es_kafka_fatal_error(rt->rk, errstr, sizeof errstr))
            return es_set(err, ES_EFATAL, "kafka: %s", errstr);
        int took = pj_step(rt, &rb->first_at);
        if (took && es_mono_ms() - rb->pg.last < 1000)
            continue;
        /* the cached watermarks tell the progress; only the brokers' say the replay is done */
        long long left = pj_remaining(rt, true);
        if (left < 0 || left <= rt->batch_max)
            left = pj_remaining(rt, false);
        if (es_mono_ms() - rb->pg.last >= 1000) {
            pj_progress_report(rt, &rb->pg, left);
            if (rb->shadow)
                pj_shadow_status(rb, "rebuilding", rb->pg.line);
        }
        if (left >= 0 && left <= rt->batch_max) {
            if (pj_flush(rt) == 0 && !rt->need_resync)
                return 0;
        }
    }
}

/* With the live lock held: reads the live projector's stored offsets into rb->live and the
 * catch-up's limits into rb->limit; *ahead when the rebuild went past one of them. */
static int pj_rb_read_live(struct pj_rb *rb, bool *ahead, es_err_t *err)
{
    pj_runtime_t *rt = rb->rt;
    json_t *rows = pj_offsets_load(rb->ctl, rb->lkey, rt->topic, false, err);
    if (!rows)
        return -1;
    *ahead = false;
    for (int i = 0; i < rt->nparts; i++) {
        rb->live[i] = pj_offsets_find(rows, i);
        rb->limit[i] = rb->live[i] > rt->parts[i].stored ? rb->live[i] : rt->parts[i].stored;
        if (rt->parts[i].stored > (rb->live[i] > 0 ? rb->live[i] : 0))
            *ahead = true;
    }
    json_decref(rows);
    return 0;
}

/* Takes the live lock: the live projector is between batches. Goes no further than its stored
 * offsets, so that the swap moves nothing; if the rebuild is ahead, lets it catch up (up to
 * swap_wait_ms, then moves its offsets forward). Returns holding the lock. */
static int pj_rb_hold_live(struct pj_rb *rb, es_err_t *err)
{
    rb->pg.phase = "swap";
    if (!rb->live) {
        rb->live = xcalloc((size_t)rb->rt->nparts, sizeof *rb->live);
        rb->limit = xcalloc((size_t)rb->rt->nparts, sizeof *rb->limit);
    }
    long long deadline = es_mono_ms() + (rb->o.live_paused        ? 0
                                         : rb->o.swap_wait_ms > 0 ? rb->o.swap_wait_ms
                                                                  : 15000);
    for (;;) {
        if (pj_lock(rb->ctl, rb->live_lock, PJ_LOCK_WAIT_S, err))
            return -1;
        rb->live_locked = true;
        bool ahead = false;
        if (pj_rb_read_live(rb, &ahead, err))
            return -1;
        if (!ahead)
            return 0;
        if (es_mono_ms() >= deadline) {
            if (!rb->o.live_paused)
                es_warn("rebuild %s: the live projector did not reach the rebuild's offsets: "
                        "moving its offsets forward",
                        rb->lkey);
            return 0;
        }
        pj_unlock(rb->ctl, rb->live_lock);
        rb->live_locked = false;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Applies the events up to rb->limit, within PJ_LOCK_WAIT_S. */
static int pj_rb_catch_up(struct pj_rb *rb, es_err_t *err)
{
    pj_runtime_t *rt = rb->rt;
    rt->limit = rb->limit;
    long long until = es_mono_ms() + PJ_LOCK_WAIT_S * 1000LL;
    while (!pj_reached(rt, rb->limit)) {
        if (es_mono_ms() > until || pj_rb_cancelled(rb))
            return es_set(err, ES_ETIMEOUT, "rebuild of '%s' could not reach the live offsets",
                          rb->lkey);
        pj_step(rt, &rb->first_at);
    }
    pj_progress_report(rt, &rb->pg, 0);
    return 0;
}

/* Swaps the rebuilt tables in, releases the live lock, then drops (or keeps) the old tables. */
static int pj_rb_swap_in(struct pj_rb *rb, es_err_t *err)
{
    const pj_projection_t *p = rb->p;
    if (pj_swap(rb->ctl, rb->rt, rb->ls, rb->lkey, rb->old_suffix, rb->live, err))
        return -1;
    rb->swapped = true;
    pj_unlock(rb->ctl, rb->live_lock);
    rb->live_locked = false;
    es_info("rebuild %s: swapped in: %lld events in %.1f s; old tables %s", rb->lkey, rb->rt->done,
            (double)(es_mono_ms() - rb->pg.t0) / 1000.0, rb->o.keep_old ? "kept" : "dropped");
    char *old = xasprintf("%s%s", rb->ls, rb->old_suffix);
    if (!rb->o.keep_old)
        pj_drop_tables(rb->ctl, p, old);
    else
        es_info("rebuild %s: old tables kept with suffix '%s'", rb->lkey, old);
    free(old);
    return 0;
}

/* Releases what the rebuild holds; one that did not swap leaves nothing behind (its tables,
 * offsets and dead letters are dropped): the next one starts from 0 again. */
static void pj_rb_finish(struct pj_rb *rb)
{
    if (rb->ctl && rb->live_locked)
        pj_unlock(rb->ctl, rb->live_lock);
    if (rb->ctl && rb->rt && !rb->swapped) {
        const es_db_val_t key[] = {ES_DB_S(rb->rt->key)};
        pj_drop_tables(rb->ctl, rb->p, rb->suffix);
        es_db_exec(rb->ctl, "DELETE FROM projection_offsets WHERE projection=?", key, 1, NULL,
                   NULL);
        es_db_exec(rb->ctl, "DELETE FROM projection_dead_letters WHERE projection=?", key, 1, NULL,
                   NULL);
    }
    free(rb->live);
    free(rb->limit);
    pj_runtime_free(rb->rt);
    es_db_close(rb->ctl); /* also releases the rebuild lock */
    free(rb->rb_lock);
    free(rb->live_lock);
    free(rb->group);
    free(rb->lkey);
}

int pj_rebuild(const pj_projection_t *p, const pj_rebuild_options_t *ropt, es_err_t *err)
{
    struct pj_rb rb;
    int rc = -1;
    if (pj_rb_start(&rb, p, "", ropt, err) == 0 && pj_rb_replay(&rb, err) == 0 &&
        pj_rb_hold_live(&rb, err) == 0 && pj_rb_catch_up(&rb, err) == 0 &&
        pj_rb_swap_in(&rb, err) == 0)
        rc = 0;
    pj_rb_finish(&rb);
    return rc;
}

/* A shadow rebuild (pj_internal.h): what the live projector and the shadow's thread share. */
struct pj_shadow {
    const pj_projection_t *p;
    char ls[40]; /* the live tables' suffix */
    char action_id[40], actor[128], reason[300];
    bool when_equal;   /* swap as soon as the comparison passes */
    char outcome[300]; /* once over: swapped in, or why not */
    pthread_t thread;
    _Atomic bool swap_asked, cancel, over;
    bool claimed, joined; /* the thread's: it runs action_id; the live projector's: joined */
    pthread_mutex_t lock; /* guards refused and closed */
    json_t *refused;      /* rebuild actions asked while this one runs, to record as refused */
    bool closed;          /* the thread records no more: pj_shadow_refuse says no */
};

bool pj_shadow_cancelled(const struct pj_shadow *s)
{
    return s->cancel;
}

/* One table's comparison, live lt against shadow st (the same offsets applied): row counts, and
 * when their columns are the same CHECKSUM TABLE. A new {"equal", "live_rows", "shadow_rows",
 * "checksum": "equal" | "differs" | "skipped"}; NULL with err. */
static json_t *pj_rb_compare_table(es_db_t *db, const char *lt, const char *st, es_err_t *err)
{
    static const char cols[] =
        "(SELECT GROUP_CONCAT(column_name, ' ', column_type, ' ', is_nullable ORDER BY "
        "ordinal_position) FROM information_schema.columns WHERE table_schema = DATABASE() AND "
        "table_name = ?)";
    char *sql = xasprintf("SELECT (SELECT COUNT(*) FROM `%s`) AS live_rows, (SELECT COUNT(*) FROM "
                          "`%s`) AS shadow_rows, %s = %s AS same_columns",
                          lt, st, cols, cols);
    const es_db_val_t names[] = {ES_DB_S(lt), ES_DB_S(st)};
    json_t *rows = es_db_query(db, sql, names, 2, err), *sums = NULL, *out = NULL;
    free(sql);
    if (!rows)
        return NULL;
    json_t *r = json_array_get(rows, 0);
    json_int_t live = json_integer_value(json_object_get(r, "live_rows")),
               shadow = json_integer_value(json_object_get(r, "shadow_rows"));
    const char *checksum = "skipped";
    if (json_integer_value(json_object_get(r, "same_columns")) == 1) {
        sql = xasprintf("CHECKSUM TABLE `%s`, `%s`", lt, st);
        sums = es_db_query(db, sql, NULL, 0, err);
        free(sql);
        if (!sums)
            goto out;
        checksum = json_equal(json_object_get(json_array_get(sums, 0), "Checksum"),
                              json_object_get(json_array_get(sums, 1), "Checksum"))
                       ? "equal"
                       : "differs";
    }
    out = json_pack("{s:b, s:I, s:I, s:s}", "equal", live == shadow && strcmp(checksum, "differs"),
                    "live_rows", live, "shadow_rows", shadow, "checksum", checksum);
out:
    json_decref(rows);
    json_decref(sums);
    return out;
}

/* With the live lock held, both table sets at the same offsets: every table of p compared. A new
 * {"equal": bool, "tables": [{"table", "live_rows", "shadow_rows", "checksum"}]}; NULL with
 * err. */
static json_t *pj_rb_compare(struct pj_rb *rb, es_err_t *err)
{
    json_t *tables = json_array();
    bool equal = true;
    const char *t;
    for (size_t i = 0; (t = pj_projection_table(rb->p, i)); i++) {
        char *lt = xasprintf("%s%s", t, rb->ls), *st = xasprintf("%s%s", t, rb->suffix);
        json_t *row = pj_rb_compare_table(rb->ctl, lt, st, err);
        free(lt);
        free(st);
        if (!row) {
            json_decref(tables);
            return NULL;
        }
        equal = equal && json_is_true(json_object_get(row, "equal"));
        json_object_del(row, "equal");
        json_object_set_new(row, "table", json_string(t));
        json_array_append_new(tables, row);
    }
    return json_pack("{s:b, s:o}", "equal", equal, "tables", tables);
}

/* One round: holds the live lock, catches up to the live offsets and compares; swaps when asked,
 * or when the comparison passed and the request said when_equal. 1: swapped; 0: not, the live
 * lock released and *detail (new) the comparison; -1 with err. */
static int pj_shadow_round(struct pj_rb *rb, char **detail, es_err_t *err)
{
    if (pj_rb_hold_live(rb, err) || pj_rb_catch_up(rb, err))
        return -1;
    json_t *cmp = pj_rb_compare(rb, err);
    if (!cmp)
        return -1;
    bool equal = json_is_true(json_object_get(cmp, "equal"));
    *detail = json_dumps(cmp, JSON_COMPACT);
    json_decref(cmp);
    es_info("rebuild %s: shadow compared with the live tables: %s", rb->lkey, *detail);
    if (rb->shadow->swap_asked || (rb->shadow->when_equal && equal))
        return pj_rb_swap_in(rb, err) ? -1 : 1;
    if (strlen(*detail) > 1000) { /* projection_status.detail */
        free(*detail);
        *detail = xasprintf("{\"equal\":%s,\"tables\":[]}", equal ? "true" : "false");
    }
    pj_unlock(rb->ctl, rb->live_lock);
    rb->live_locked = false;
    return 0;
}

/* Keeps the shadow tables following the log (positions reloaded: the catch-up dropped what lay
 * past its limits) until a swap is asked or the shadow cancelled; shadow_ready renewed. */
static void pj_shadow_follow(struct pj_rb *rb, const char *detail)
{
    rb->rt->limit = NULL;
    rb->rt->need_resync = true;
    long long beat = 0;
    while (!rb->shadow->swap_asked && !pj_rb_cancelled(rb)) {
        if (es_mono_ms() - beat >= 5000) {
            pj_shadow_status(rb, "shadow_ready", detail);
            beat = es_mono_ms();
        }
        pj_step(rb->rt, &rb->first_at);
    }
}

/* Records the rebuild action as done (projection_operations): once per action id across the
 * replicas and restarts. ES_ECONFLICT when it already was. */
static int pj_shadow_claim(struct pj_rb *rb, es_err_t *err)
{
    const struct pj_shadow *s = rb->shadow;
    const es_db_val_t params[] = {ES_DB_S(rb->lkey), ES_DB_S(s->action_id), ES_DB_S(s->actor),
                                  ES_DB_S(s->reason)};
    return es_db_exec(rb->ctl,
                      "INSERT INTO projection_operations (projection, action_id, action, actor, "
                      "reason) VALUES (?, ?, 'rebuild', ?, ?)",
                      params, 4, NULL, err);
}

/* Records the rebuild actions refused while this one runs (pj_shadow_refuse) as done
 * (projection_operations, action rebuild_refused), so that neither a replica nor a restart, which
 * reads them again, runs them: two rebuilds asked at once run one. Only once this rebuild holds
 * the rebuild lock and claimed its action: no other replica can be running one of them then. */
static void pj_shadow_record_refused(struct pj_rb *rb)
{
    struct pj_shadow *s = rb->shadow;
    if (!s || !s->claimed)
        return;
    pthread_mutex_lock(&s->lock);
    json_t *refused = s->refused;
    s->refused = json_array();
    pthread_mutex_unlock(&s->lock);
    size_t i;
    json_t *a;
    json_array_foreach(refused, i, a)
    {
        const char *id = json_string_value(json_object_get(a, "action_id")),
                   *actor = json_string_value(json_object_get(a, "actor")),
                   *reason = json_string_value(json_object_get(a, "reason"));
        char why[1000];
        snprintf(why, sizeof why, "refused: rebuild %s ran (%s)", s->action_id,
                 reason ? reason : "");
        const es_db_val_t params[] = {ES_DB_S(rb->lkey), ES_DB_S(id), ES_DB_S(actor ? actor : ""),
                                      ES_DB_S(why)};
        es_err_t err = ES_ERR_INIT;
        if (!id || es_db_exec(rb->ctl,
                              "INSERT IGNORE INTO projection_operations (projection, action_id, "
                              "action, actor, reason) VALUES (?, ?, 'rebuild_refused', ?, ?)",
                              params, 4, NULL, &err))
            es_warn("rebuild %s: recording action %s as refused: %s", rb->lkey, id ? id : "?",
                    id ? err.msg : "no action id");
        else
            es_info("rebuild %s: rebuild %s asked by %s refused: rebuild %s runs", rb->lkey, id,
                    actor ? actor : "?", s->action_id);
    }
    json_decref(refused);
}

/* A status row of the shadow's, after recording the actions refused so far. */
static void pj_shadow_status(struct pj_rb *rb, const char *state, const char *detail)
{
    pj_shadow_record_refused(rb);
    pj_status_put(rb->ctl, rb->lkey, rb->p->version, state, detail);
}

/* Rebuilds, compares, waits for a swap and swaps, swap after swap comparison: the shadow's
 * thread. Its status rows replace the live projector's until it ends. */
static void *pj_shadow_main(void *arg)
{
    struct pj_shadow *s = arg;
    struct pj_rb rb;
    es_err_t err = ES_ERR_INIT;
    char *detail = NULL;
    int rc = pj_rb_start(&rb, s->p, s->ls, NULL, &err);
    rb.shadow = s;
    if (rc == 0 && (rc = pj_shadow_claim(&rb, &err)) == 0) {
        s->claimed = true;
        es_info("rebuild %s: shadow rebuild asked by %s (%s); the live tables keep serving",
                rb.lkey, s->actor, s->reason);
        pj_shadow_status(&rb, "rebuilding", "phase=replay");
        rc = pj_rb_replay(&rb, &err);
        while (rc == 0 && (rc = pj_shadow_round(&rb, &detail, &err)) == 0) {
            pj_shadow_status(&rb, "shadow_ready", detail);
            pj_shadow_follow(&rb, detail);
            free(detail);
            detail = NULL;
            if (pj_rb_cancelled(&rb))
                rc = es_set(&err, ES_ETIMEOUT, "shadow rebuild of '%s' cancelled", rb.lkey);
        }
        if (rc == 1)
            snprintf(s->outcome, sizeof s->outcome, "shadow rebuild swapped in (asked by %s)",
                     s->actor);
        else
            snprintf(s->outcome, sizeof s->outcome, "shadow rebuild failed: %s", err.msg);
        if (!pj_rb_cancelled(&rb)) /* else the live projector is stopping: it says so */
            pj_status_put(rb.ctl, rb.lkey, s->p->version, "running", s->outcome);
    }
    /* the last actions refused are recorded while the rebuild lock is still held */
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    pthread_mutex_unlock(&s->lock);
    pj_shadow_record_refused(&rb);
    if (rc < 0 && err.code == ES_ECONFLICT)
        es_info("rebuild %s: action %s: run by another replica", rb.lkey ? rb.lkey : "",
                s->action_id);
    else if (rc < 0)
        es_error("rebuild %s: shadow rebuild: %s", rb.lkey ? rb.lkey : "", err.msg);
    free(detail);
    pj_rb_finish(&rb);
    es_metrics_heartbeat_end(); /* pj_step's beats registered this thread's loop */
    s->over = true;
    return NULL;
}

struct pj_shadow *pj_shadow_start(pj_runtime_t *rt, const json_t *a)
{
    struct pj_shadow *s = xcalloc(1, sizeof *s);
    s->p = rt->p;
    snprintf(s->ls, sizeof s->ls, "%s", rt->suffix);
    snprintf(s->action_id, sizeof s->action_id, "%s",
             json_string_value(json_object_get(a, "action_id")));
    snprintf(s->actor, sizeof s->actor, "%s", json_string_value(json_object_get(a, "actor")));
    snprintf(s->reason, sizeof s->reason, "%s", json_string_value(json_object_get(a, "reason")));
    const char *swap = json_string_value(json_object_get(a, "swap"));
    s->when_equal = swap && !strcmp(swap, "when_equal");
    pthread_mutex_init(&s->lock, NULL);
    s->refused = json_array();
    if (pthread_create(&s->thread, NULL, pj_shadow_main, s)) {
        es_error("projector %s: cannot start the shadow rebuild's thread", rt->key);
        json_decref(s->refused);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    return s;
}

bool pj_shadow_refuse(struct pj_shadow *s, const json_t *a)
{
    pthread_mutex_lock(&s->lock);
    bool taken = !s->closed;
    if (taken)
        json_array_append_new(s->refused, json_deep_copy(a));
    pthread_mutex_unlock(&s->lock);
    if (!taken && !s->joined) {
        pthread_join(s->thread, NULL);
        s->joined = true;
    }
    return taken;
}

void pj_shadow_swap(struct pj_shadow *s)
{
    s->swap_asked = true;
}

bool pj_shadow_over(const struct pj_shadow *s)
{
    return s->over;
}

const char *pj_shadow_outcome(const struct pj_shadow *s)
{
    return s->outcome;
}

void pj_shadow_free(struct pj_shadow *s)
{
    if (!s)
        return;
    s->cancel = true;
    if (!s->joined)
        pthread_join(s->thread, NULL);
    json_decref(s->refused);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
