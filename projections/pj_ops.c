/* pj_ops — a live projector's side of operator actions (DESIGN: issue 11 item 4). Every replica
 * reads operations.events, all partitions, from the beginning at start (so a pause survives a
 * restart), then live between batches, and acts on the OperatorActions naming its key: pause and
 * resume in memory (each replica alone: the topic is the durable state), replay and discard of a
 * dead letter in its database, once per action id for all replicas together (the id goes into
 * projection_operations in the transaction that acts), rebuild as a shadow rebuild on a thread of
 * its own (pj_rebuild.c; one replica runs it) and swap passed to that thread. It also keeps its
 * row of projection_status, where the API reads what state it is in (a shadow rebuild's thread
 * writes it while it runs). */
#include "es_env.h"
#include "es_fault.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_retry.h"
#include "es_time.h"
#include "pj_internal.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PJ_OPS_TOPIC       "operations.events"
#define PJ_OPS_TYPE        "eventshop.operations.OperatorAction"
#define PJ_OPS_CATCHUP_MS  15000  /* the longest a start waits to fold the topic */
#define PJ_OPS_START_MS    120000 /* the longest a start retries a broker that gives no ends */
#define PJ_OPS_FETCH_MS    10000  /* the longest a replay waits for its dead letter's message */
#define PJ_STATUS_EVERY_MS 5000   /* readers call a status older than a minute stopped */

struct pj_ops {
    es_kafka_t *rk;
    bool paused;
    char why[300];            /* who paused it and why */
    char rebuilt[300];        /* the last shadow rebuild's outcome, shown while running */
    long long status_at;      /* es_mono_ms of the last status written */
    const char *status_said;  /* the state last written */
    struct pj_shadow *shadow; /* a shadow rebuild this replica started; it writes the status */
};

static const char pj_status_ddl[] =
    "CREATE TABLE IF NOT EXISTS projection_status ("
    "projection VARCHAR(64) NOT NULL PRIMARY KEY, version INT NOT NULL, state VARCHAR(16) NOT NULL,"
    "detail VARCHAR(1000) NOT NULL DEFAULT '',"
    "updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char pj_operations_ddl[] =
    "CREATE TABLE IF NOT EXISTS projection_operations ("
    "projection VARCHAR(64) NOT NULL, action_id CHAR(36) NOT NULL, action VARCHAR(16) NOT NULL,"
    "actor VARCHAR(128) NOT NULL, reason VARCHAR(1000) NOT NULL,"
    "done_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),"
    "PRIMARY KEY (projection, action_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

bool pj_ops_paused(const pj_runtime_t *rt)
{
    return rt->ops && rt->ops->paused;
}

void pj_status_write(pj_runtime_t *rt, const char *state, const char *detail)
{
    if (rt->db)
        pj_status_put(rt->db, rt->key, rt->p->version, state, detail);
}

void pj_status_put(es_db_t *db, const char *key, int version, const char *state, const char *detail)
{
    es_err_t err = ES_ERR_INIT;
    const es_db_val_t params[] = {ES_DB_S(key), ES_DB_I(version), ES_DB_S(state),
                                  ES_DB_S(detail ? detail : "")};
    if (es_db_exec(db,
                   "INSERT INTO projection_status (projection, version, state, detail, updated_at) "
                   "VALUES (?, ?, ?, ?, NOW(3)) ON DUPLICATE KEY UPDATE version=VALUES(version), "
                   "state=VALUES(state), detail=VALUES(detail), updated_at=VALUES(updated_at)",
                   params, 4, NULL, &err))
        es_warn("projector %s: status: %s", key, err.msg);
}

/* Writes the state when it changed or every PJ_STATUS_EVERY_MS (updated_at says it is alive). */
static void pj_status_beat(pj_runtime_t *rt, bool force)
{
    struct pj_ops *o = rt->ops;
    const char *state = o->paused ? "paused" : "running";
    long long now = es_mono_ms();
    if (o->shadow && !pj_shadow_over(o->shadow))
        return; /* the shadow's thread writes rebuilding, shadow_ready */
    if (o->shadow) {
        if (*pj_shadow_outcome(o->shadow))
            snprintf(o->rebuilt, sizeof o->rebuilt, "%s", pj_shadow_outcome(o->shadow));
        pj_shadow_free(o->shadow);
        o->shadow = NULL;
        force = true;
    }
    if (!force && o->status_said == state && now - o->status_at < PJ_STATUS_EVERY_MS)
        return;
    pj_status_write(rt, state, o->paused ? o->why : o->rebuilt);
    o->status_said = state;
    o->status_at = now;
}

/* Whether action_id was already carried out on this database (by any replica). */
static bool pj_ops_done(pj_runtime_t *rt, const char *action_id)
{
    const es_db_val_t params[] = {ES_DB_S(rt->key), ES_DB_S(action_id)};
    json_t *rows = es_db_query(rt->db,
                               "SELECT 1 AS done FROM projection_operations WHERE projection=? "
                               "AND action_id=?",
                               params, 2, NULL);
    bool done = rows && json_array_size(rows) > 0;
    json_decref(rows);
    return done;
}

/* A consumer of rt's for assigned partitions only (read_committed, nothing committed; its group
 * is the projector's, never joined), client id "eventshop-projector-<key>-<role>"; NULL with
 * err. An action ends the broker's fetch wait at once; the wait only bounds how often an idle
 * projector asks (twice a second: a shorter one cost it 20 wake-ups a second doing nothing). */
static es_kafka_t *pj_ops_consumer(pj_runtime_t *rt, const char *role, es_err_t *err)
{
    const char *kv[] = {"fetch.wait.max.ms", "500", NULL};
    char client_id[128];
    snprintf(client_id, sizeof client_id, "eventshop-projector-%s-%s", rt->key, role);
    es_kafka_conf_t *conf = es_kafka_read_committed_conf(client_id, rt->group, false, kv, err);
    return conf ? es_kafka_new(ES_KAFKA_CONSUMER, conf, err) : NULL;
}

/* The message at part:off of the events topic (new, es_kafka_msg_free), or NULL with err. *rk
 * gets the consumer that read it (or NULL), to close and destroy once the message is freed:
 * librdkafka's destroy waits for every message of the client to be freed first. */
static es_kafka_msg_t *pj_ops_fetch(pj_runtime_t *rt, int32_t part, int64_t off, es_kafka_t **rk,
                                    es_err_t *err)
{
    if (!(*rk = pj_ops_consumer(rt, "replay", err)))
        return NULL;
    es_kafka_parts_t *one = es_kafka_parts_new(1);
    es_kafka_parts_add(one, rt->topic, part)->offset = off;
    es_kafka_msg_t *got = NULL;
    if (es_kafka_resp_error(err, es_kafka_assign(*rk, one), "assign") == 0) {
        long long until = es_mono_ms() + PJ_OPS_FETCH_MS;
        while (!got && es_mono_ms() < until) {
            es_kafka_msg_t *m = es_kafka_poll(*rk, 100);
            if (m && !m->err && m->partition == part && m->offset == off)
                got = m;
            else if (m && !m->err && m->offset > off)
                break; /* not a committed message: never delivered */
            else
                es_kafka_msg_free(m);
        }
        if (!got)
            es_set(err, ES_ENOTFOUND, "no committed message at %s[%d]@%lld", rt->topic, (int)part,
                   (long long)off);
    }
    es_kafka_parts_free(one);
    return got;
}

/* In the open transaction: records the action as done; ES_ECONFLICT when it already was. */
static int pj_ops_mark(pj_runtime_t *rt, const json_t *a, es_err_t *err)
{
    const char *reason = json_string_value(json_object_get(a, "reason"));
    char why[1000];
    snprintf(why, sizeof why, "%s", reason ? reason : "");
    const es_db_val_t params[] = {
        ES_DB_S(rt->key), ES_DB_S(json_string_value(json_object_get(a, "action_id"))),
        ES_DB_S(json_string_value(json_object_get(a, "action"))),
        ES_DB_S(json_string_value(json_object_get(a, "actor"))), ES_DB_S(why)};
    return es_db_exec(rt->db,
                      "INSERT INTO projection_operations (projection, action_id, action, actor, "
                      "reason) VALUES (?, ?, ?, ?, ?)",
                      params, 5, NULL, err);
}

/* In the open transaction, holding the lock: replays m (NULL: discards) the dead letter at
 * part:off. 1: replayed or discarded; 0: it failed again (its error updated) or was not there. */
static int pj_ops_act(pj_runtime_t *rt, es_kafka_msg_t *m, int32_t part, int64_t off, es_err_t *err)
{
    const es_db_val_t key[] = {ES_DB_S(rt->key), ES_DB_S(rt->topic), ES_DB_I(part), ES_DB_I(off)};
    json_t *rows = es_db_query(rt->db,
                               "SELECT error FROM projection_dead_letters WHERE projection=? AND "
                               "topic=? AND part=? AND `offset`=? FOR UPDATE",
                               key, 4, err);
    if (!rows)
        return -1;
    size_t found = json_array_size(rows);
    json_decref(rows);
    if (!found)
        return 0;
    int r = m ? pj_apply_one(rt, m, true, err) : 0;
    json_array_clear(rt->applied);
    if (r != 0)
        return r < 0 ? -1 : 0;
    return es_db_exec(rt->db,
                      "DELETE FROM projection_dead_letters WHERE projection=? AND topic=? AND "
                      "part=? AND `offset`=?",
                      key, 4, NULL, err)
               ? -1
               : 1;
}

/* Replays (or discards) one dead letter, once per action id across the replicas: fetches its
 * message, then under the live lock, in one transaction, marks the action done and applies the
 * event (guarded: should it fail again it stays a dead letter, with the new error) and removes
 * the dead letter. */
static void pj_ops_dead_letter(pj_runtime_t *rt, const json_t *a, bool discard)
{
    const char *id = json_string_value(json_object_get(a, "action_id"));
    json_t *jp = json_object_get(a, "dead_letter_part"),
           *jo = json_object_get(a, "dead_letter_offset");
    if (!rt->db || !id || !json_is_integer(jp) || !json_is_integer(jo) || pj_ops_done(rt, id))
        return;
    int32_t part = (int32_t)json_integer_value(jp);
    int64_t off = json_integer_value(jo);
    es_err_t err = ES_ERR_INIT;
    es_kafka_t *rk = NULL;
    es_kafka_msg_t *m = discard ? NULL : pj_ops_fetch(rt, part, off, &rk, &err);
    int r = -1;
    bool locked = false;
    if ((!discard && !m) || pj_lock(rt->db, rt->lock, PJ_LOCK_WAIT_S, &err))
        goto out;
    locked = true;
    if (es_db_begin(rt->db, &err))
        goto out;
    if (pj_ops_mark(rt, a, &err) || (r = pj_ops_act(rt, m, part, off, &err)) < 0 ||
        es_db_commit(rt->db, &err)) {
        es_db_rollback(rt->db);
        r = err.code == ES_ECONFLICT ? 2 : -1; /* ES_ECONFLICT: another replica did it */
    }
out:
    if (locked)
        pj_unlock(rt->db, rt->lock);
    es_kafka_msg_free(m); /* before its consumer goes */
    if (rk)
        es_kafka_close(rk);
    es_kafka_destroy(rk);
    const char *what = discard ? "discard" : "replay";
    if (r < 0)
        es_error("projector %s: %s of dead letter %s[%d]@%lld (action %s): %s", rt->key, what,
                 rt->topic, (int)part, (long long)off, id, err.msg);
    else if (r == 2)
        es_info("projector %s: action %s carried out by another replica", rt->key, id);
    else
        es_info("projector %s: %s of dead letter %s[%d]@%lld by %s (%s): %s", rt->key, what,
                rt->topic, (int)part, (long long)off,
                json_string_value(json_object_get(a, "actor")),
                json_string_value(json_object_get(a, "reason")),
                r == 1 ? "done" : "nothing to do, or it failed again");
}

/* rebuild: a shadow rebuild on a thread of this process (pj_shadow_start), unless the action was
 * done (by any replica: its id in projection_operations; the replica taking the rebuild lock first
 * runs it, the others' threads end at once) or one runs here: that one records it as refused
 * (pj_shadow_refuse), else a restart, reading the actions again, would run it. swap: passed to the
 * shadow this replica runs; the others have none. */
static void pj_ops_rebuild_action(pj_runtime_t *rt, const json_t *a, const char *action)
{
    struct pj_ops *o = rt->ops;
    const char *id = json_string_value(json_object_get(a, "action_id"));
    if (o->shadow && pj_shadow_over(o->shadow))
        pj_status_beat(rt, true); /* takes its outcome, frees it */
    if (!strcmp(action, "swap")) {
        if (o->shadow)
            pj_shadow_swap(o->shadow);
        return;
    }
    if (strcmp(action, "rebuild") || !id || !rt->db || pj_ops_done(rt, id))
        return;
    if (o->shadow && pj_shadow_refuse(o->shadow, a)) {
        es_warn("projector %s: rebuild %s asked by %s: a shadow rebuild runs already: refused",
                rt->key, id, json_string_value(json_object_get(a, "actor")));
        return;
    }
    if (o->shadow)
        pj_status_beat(rt, true); /* it ended meanwhile: takes its outcome, frees it */
    o->shadow = pj_shadow_start(rt, a);
}

/* Folds one OperatorAction (borrowed) naming this projection. */
static void pj_ops_apply(pj_runtime_t *rt, const json_t *a)
{
    struct pj_ops *o = rt->ops;
    const char *action = json_string_value(json_object_get(a, "action"));
    if (!action)
        return;
    if (!strcmp(action, "pause") || !strcmp(action, "resume")) {
        bool pause = action[0] == 'p';
        if (pause)
            snprintf(o->why, sizeof o->why, "paused by %s: %s",
                     json_string_value(json_object_get(a, "actor")),
                     json_string_value(json_object_get(a, "reason")));
        if (pause != o->paused)
            es_info("projector %s: %s by %s: %s", rt->key, pause ? "paused" : "resumed",
                    json_string_value(json_object_get(a, "actor")),
                    json_string_value(json_object_get(a, "reason")));
        if (!pause && o->paused)
            pj_ops_resume_consumer(rt);
        o->paused = pause;
    } else if (!strcmp(action, "replay") || !strcmp(action, "discard")) {
        pj_ops_dead_letter(rt, a, action[0] == 'd');
    } else {
        pj_ops_rebuild_action(rt, a, action);
    }
}

/* Decodes m and folds it when it names this projection. */
static void pj_ops_take(pj_runtime_t *rt, es_kafka_msg_t *m)
{
    es_err_t err = ES_ERR_INIT;
    const char *name = NULL;
    json_t *a = NULL;
    if (!m->value || ev_decode(rt->codec, m->value, m->len, &name, &a, &err)) {
        es_warn("projector %s: %s[%d]@%lld: %s", rt->key, PJ_OPS_TOPIC, (int)m->partition,
                (long long)m->offset, m->value ? err.msg : "no payload");
        return;
    }
    const char *projection = json_string_value(json_object_get(a, "projection"));
    if (!strcmp(name, PJ_OPS_TYPE) && projection && !strcmp(projection, rt->key))
        pj_ops_apply(rt, a);
    json_decref(a);
}

/* Folds the topic up to the high watermarks seen now (at most PJ_OPS_CATCHUP_MS). */
static int pj_ops_catch_up(pj_runtime_t *rt, es_kafka_parts_t *ends, es_err_t *err)
{
    int left = 0;
    for (int i = 0; i < ends->cnt; i++)
        left += ends->elems[i].offset > 0;
    long long until = es_mono_ms() + PJ_OPS_CATCHUP_MS;
    while (left > 0) {
        if (es_mono_ms() > until)
            return es_set(err, ES_ETIMEOUT, "'%s' not read to its end within %d ms", PJ_OPS_TOPIC,
                          PJ_OPS_CATCHUP_MS);
        es_kafka_msg_t *m = es_kafka_poll(rt->ops->rk, 100);
        if (m && !m->err) {
            pj_ops_take(rt, m);
            es_kafka_part_t *e = es_kafka_parts_find(ends, PJ_OPS_TOPIC, m->partition);
            if (e && e->offset > 0 && m->offset + 1 >= e->offset) {
                e->offset = 0;
                left--;
            }
        }
        es_kafka_msg_free(m);
    }
    return 0;
}

/* Assigns every partition of the topic from the beginning; *ends gets the high watermarks. */
static int pj_ops_assign(pj_runtime_t *rt, es_kafka_parts_t **ends, es_err_t *err)
{
    int n = es_kafka_partition_count(rt->ops->rk, PJ_OPS_TOPIC, err);
    if (n <= 0)
        return n < 0 ? -1 : es_set(err, ES_ENOTFOUND, "topic '%s' has no partitions", PJ_OPS_TOPIC);
    es_kafka_parts_t *all = es_kafka_parts_new(n);
    *ends = es_kafka_parts_new(n);
    for (int i = 0; i < n; i++) {
        int64_t lo = 0, hi = 0;
        es_kafka_parts_add(all, PJ_OPS_TOPIC, i)->offset = ES_KAFKA_OFFSET_BEGINNING;
        if (es_fault_hit("pj.ops_ends") ||
            es_kafka_query_watermarks(rt->ops->rk, PJ_OPS_TOPIC, i, &lo, &hi, 5000)) {
            es_kafka_parts_free(all);
            return es_set(err, ES_EIO, "no watermarks of %s[%d]", PJ_OPS_TOPIC, i);
        }
        es_kafka_parts_add(*ends, PJ_OPS_TOPIC, i)->offset = hi > lo ? hi : 0;
    }
    int e = es_kafka_assign(rt->ops->rk, all);
    es_kafka_parts_free(all);
    return es_kafka_resp_error(err, e, "assign");
}

static void pj_ops_heartbeat(void)
{
    es_metrics_heartbeat("projector");
}

/* One pj_ops_assign, for es_retry_until: a broker that is slow to answer (a loaded one, or one
 * just back) gives no watermarks for a moment, which is no reason to exit. */
struct pj_ops_assign_try {
    pj_runtime_t *rt;
    es_kafka_parts_t **ends;
};

static int pj_ops_assign_attempt(void *arg, es_err_t *err)
{
    struct pj_ops_assign_try *t = arg;
    es_kafka_parts_free(*t->ends);
    *t->ends = NULL;
    if (pj_ops_assign(t->rt, t->ends, err) == 0)
        return ES_RETRY_DONE;
    return err->code == ES_EIO || err->code == ES_ETIMEOUT ? ES_RETRY_AGAIN : ES_RETRY_GIVE_UP;
}

int pj_ops_open(pj_runtime_t *rt, es_err_t *err)
{
    if (es_db_exec(rt->db, pj_status_ddl, NULL, 0, NULL, err) ||
        es_db_exec(rt->db, pj_operations_ddl, NULL, 0, NULL, err))
        return -1;
    rt->ops = xcalloc(1, sizeof *rt->ops);
    if (!(rt->ops->rk = pj_ops_consumer(rt, "ops", err)))
        return -1;
    es_kafka_parts_t *ends = NULL;
    const es_retry_t retry = {.what = "reading " PJ_OPS_TOPIC "'s ends",
                              .deadline_ms = es_mono_ms() + PJ_OPS_START_MS,
                              .min_ms = 200,
                              .max_ms = 5000,
                              .stop = &rt->stop,
                              .heartbeat = pj_ops_heartbeat};
    struct pj_ops_assign_try t = {rt, &ends};
    int rc = es_retry_until(&retry, pj_ops_assign_attempt, &t, err);
    if (rc == 0)
        rc = pj_ops_catch_up(rt, ends, err);
    es_kafka_parts_free(ends);
    if (rc && err->code == ES_ENOTFOUND) {
        /* a stack made before the topic existed: run, but say that operators cannot reach it */
        es_warn("projector %s: %s; operator actions (pause, dead-letter replay) are not read",
                rt->key, err->msg);
        pj_ops_close(rt);
        pj_status_write(rt, "running", "operations.events missing: operator actions not read");
        *err = (es_err_t)ES_ERR_INIT;
        return 0;
    }
    if (rc)
        return -1;
    pj_status_beat(rt, true);
    es_info("projector %s: %s read, %s", rt->key, PJ_OPS_TOPIC,
            rt->ops->paused ? rt->ops->why : "running");
    return 0;
}

bool pj_ops_poll(pj_runtime_t *rt)
{
    if (!rt->ops)
        return false;
    es_kafka_msg_t *m;
    while ((m = es_kafka_poll(rt->ops->rk, 0))) {
        if (!m->err)
            pj_ops_take(rt, m);
        es_kafka_msg_free(m);
    }
    pj_status_beat(rt, false);
    return rt->ops->paused;
}

void pj_ops_paused_wait(pj_runtime_t *rt)
{
    es_kafka_parts_t *list = NULL;
    if (es_kafka_assignment(rt->rk, &list) == 0 && list->cnt > 0)
        es_kafka_pause(rt->rk, list);
    es_kafka_parts_free(list);
    /* whatever was fetched before the pause is dropped: positions are reloaded on resume */
    rt->need_resync = true;
    es_kafka_msg_free(es_kafka_poll(rt->rk, PJ_IDLE_POLL_MS));
}

void pj_ops_resume_consumer(pj_runtime_t *rt)
{
    es_kafka_parts_t *list = NULL;
    if (es_kafka_assignment(rt->rk, &list) == 0 && list->cnt > 0)
        es_kafka_resume(rt->rk, list);
    es_kafka_parts_free(list);
    rt->need_resync = true;
}

void pj_ops_close(pj_runtime_t *rt)
{
    if (!rt->ops)
        return;
    pj_shadow_free(rt->ops->shadow);
    if (rt->ops->rk) {
        es_kafka_close(rt->ops->rk);
        es_kafka_destroy(rt->ops->rk);
    }
    free(rt->ops);
    rt->ops = NULL;
}
