/* eventshop-history as-of (issue 11, item 2): the chosen contexts' read models as they were at a
 * TIME (the events whose record timestamp is at or before it) or at POSITIONS (per partition the
 * first offset left out, as projection_offsets keeps them), built by the live projectors' own code
 * (pj_projection_setup, pj_projection_apply) into a MariaDB database of their own, never a live
 * one. The database records what it holds: asof_run (the argument, the contexts, the instant, when
 * the run started and finished) and asof_positions (the end of every partition, fixed when the
 * run starts: TIME resolved through offsets-for-times, "latest" the ends then), beside the
 * projector's own projection_offsets, projection_dead_letters and projection_versions. Each batch
 * of events is one transaction, rows and offsets together, so an interrupted run resumes (same
 * --database) where its last commit left it, and stops at the same positions. */
#include "es_db.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "hi.h"
#include "hi_positions.h"
#include "pj_arena.h"
#include "pj_batch.h"
#include "pj_internal.h"
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HI_ASOF_MAX_PROJ 8     /* projections of one context */
#define HI_ASOF_MAX_CTX  16    /* contexts of one run */
#define HI_ASOF_STALL_MS 60000 /* no progress below the end this long: an open transaction */

static volatile sig_atomic_t hi_asof_stopping;

static void hi_asof_on_signal(int sig)
{
    (void)sig;
    hi_asof_stopping = 1;
}

static const char hi_run_ddl[] =
    "CREATE TABLE IF NOT EXISTS asof_run ("
    "id TINYINT NOT NULL PRIMARY KEY, spec TEXT NOT NULL, contexts VARCHAR(500) NOT NULL,"
    "as_of_ms BIGINT NULL, as_of VARCHAR(32) NULL,"
    "started_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), finished_at TIMESTAMP(3) NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char hi_ends_ddl[] =
    "CREATE TABLE IF NOT EXISTS asof_positions ("
    "topic VARCHAR(200) NOT NULL, part INT NOT NULL, end_offset BIGINT NOT NULL,"
    "PRIMARY KEY (topic, part)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

struct hi_asof {
    const char *spec_s, *contexts, *database;
    int batch;
    hi_spec_t spec;
    es_kafka_t *rk;
    sr_client_t *sr;
    ev_codec_t *codec;
    es_db_t *db;
    hi_progress_t pg;
};

/* One event of a batch, decoded once for every projection of its context. */
struct hi_ev {
    es_kafka_msg_t *m;
    const char *type; /* without namespace; NULL: undecodable (why says why) */
    json_t *value;
    bool in_arena; /* value was made in pj_arena's region, as the projector's are */
    char why[300];
};

/* One context: its topic, its projections and, per partition, where the run ends and where each
 * projection's stored offsets stand. */
struct hi_ctx {
    char topic[200];
    const pj_projection_t *proj[HI_ASOF_MAX_PROJ];
    int nproj, nparts, left;
    int64_t *end;     /* per partition: the first offset left out */
    int64_t *next;    /* [j * nparts + p]: projection j's next offset of partition p (0: none) */
    int64_t *pending; /* per partition: its next offset once the batch commits; -1: unchanged */
    bool *done;
    struct hi_ev *batch;
    int nbatch;
};

static int hi_asof_usage(FILE *f, int rc)
{
    fputs("usage: eventshop-history as-of TIME|POSITIONS|latest --database NAME\n"
          "         [--contexts " HI_DEFAULT_CONTEXTS "] [--batch N]\n"
          "  Builds the contexts' read models, with the projectors' own code, into the MariaDB\n"
          "  database NAME (made if missing; never a live eventshop_* one) as they were at:\n"
          "  TIME, ISO-8601 (2024-05-01T12:00:00Z): the events whose record timestamp is at or\n"
          "  before it; POSITIONS, TOPIC:PARTITION=OFFSET,...: the events before those offsets\n"
          "  (the partitions not named: up to their end now); latest: up to every end now.\n"
          "  The ends are fixed when the run starts and recorded in NAME (tables asof_run,\n"
          "  asof_positions; projection_offsets as the projector keeps them). N events per\n"
          "  transaction (default 2000). Re-running with the same NAME resumes an interrupted\n"
          "  run. MariaDB user: EVENTSHOP_MYSQL_HISTORY_USER (eventshop_history), password in\n"
          "  EVENTSHOP_MYSQL_HISTORY_PASSWORD_FILE, with the grant\n"
          "    GRANT ALL ON `asof\\_%`.* TO eventshop_history  (so NAME starts with asof_)\n"
          "  env: EVENTSHOP_KAFKA_BROKERS, EVENTSHOP_REGISTRY_URL, EVENTSHOP_MYSQL_HOST/PORT\n",
          f);
    return rc;
}

/* Every context of --contexts has a projection and comes once, and every topic POSITIONS names
 * is the events topic of one of them. */
static int hi_asof_check(const struct hi_asof *x, es_err_t *err)
{
    char *list = xstrdup(x->contexts), *save = NULL, *seen[HI_ASOF_MAX_CTX];
    int n = 0, rc = 0;
    for (char *c = strtok_r(list, ",", &save); c && !rc; c = strtok_r(NULL, ",", &save)) {
        for (int i = 0; i < n && !rc; i++)
            if (!strcmp(seen[i], c))
                rc = es_set(err, ES_EINVAL, "context '%s' is named twice", c);
        if (!rc && !pj_projection_find(c, NULL))
            rc = es_set(err, ES_EINVAL, "no projection reads context '%s'", c);
        if (!rc && n == HI_ASOF_MAX_CTX)
            rc = es_set(err, ES_EINVAL, "more than %d contexts", HI_ASOF_MAX_CTX);
        if (!rc)
            seen[n++] = c;
    }
    for (int i = 0; !rc && i < x->spec.n; i++) {
        bool found = false;
        for (int k = 0; k < n && !found; k++) {
            char topic[200];
            found = !strcmp(x->spec.pos[i].topic, es_topic(topic, sizeof topic, seen[k], "events"));
        }
        if (!found)
            rc = es_set(err, ES_EINVAL,
                        "position '%s:%d': not the events topic of a context of --contexts",
                        x->spec.pos[i].topic, (int)x->spec.pos[i].partition);
    }
    free(list);
    return rc;
}

static int hi_asof_args(struct hi_asof *x, int argc, char **argv)
{
    static const struct option opts[] = {{"database", required_argument, NULL, 'd'},
                                         {"contexts", required_argument, NULL, 'c'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    x->contexts = HI_DEFAULT_CONTEXTS;
    x->batch = 2000;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'd':
            x->database = optarg;
            break;
        case 'c':
            x->contexts = optarg;
            break;
        case 'b':
            x->batch = atoi(optarg);
            break;
        case 'h':
            return hi_asof_usage(stdout, 3);
        default:
            return hi_asof_usage(stderr, 2);
        }
    }
    if (optind != argc - 1 || !x->database || x->batch <= 0 || !*x->contexts)
        return hi_asof_usage(stderr, 2);
    x->spec_s = argv[optind];
    es_err_t err = ES_ERR_INIT;
    if (hi_spec_parse(x->spec_s, &x->spec, &err) || hi_database_check(x->database, &err) ||
        hi_asof_check(x, &err)) {
        fprintf(stderr, "eventshop-history as-of: %s\n", err.msg);
        return 2;
    }
    return 0;
}

/* --- the database and what it records --------------------------------------------------------- */

/* Makes database NAME if missing, connects to it, takes its lock (one run at a time) and creates
 * the run's tables. */
static int hi_asof_db_open(struct hi_asof *x, es_err_t *err)
{
    es_db_t *server = es_db_open_as("history", NULL, err);
    char *sql = xasprintf("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4", x->database);
    int rc = server ? es_db_exec(server, sql, NULL, 0, NULL, err) : -1;
    free(sql);
    es_db_close(server);
    if (rc || !(x->db = es_db_open_as("history", x->database, err)))
        return -1;
    char *lock = xasprintf("eventshop.asof.%s", x->database);
    es_err_t e = ES_ERR_INIT;
    rc = pj_lock(x->db, lock, 0, &e);
    free(lock);
    if (rc)
        return es_set(err, e.code == ES_ETIMEOUT ? ES_ECONFLICT : e.code, "%s",
                      e.code == ES_ETIMEOUT ? "another as-of is building this database" : e.msg);
    const char *ddl[] = {hi_run_ddl, hi_ends_ddl, pj_offsets_ddl, pj_dead_ddl, pj_versions_ddl};
    for (size_t i = 0; i < sizeof ddl / sizeof *ddl; i++)
        if (es_db_exec(x->db, ddl[i], NULL, 0, NULL, err))
            return -1;
    return 0;
}

/* Resolves the end of every partition of topic and records it. */
static int hi_asof_fix_topic(struct hi_asof *x, const char *topic, es_err_t *err)
{
    int n = es_kafka_partition_count(x->rk, topic, err);
    if (n < 0)
        return -1;
    for (int i = 0; i < x->spec.n; i++)
        if (!strcmp(x->spec.pos[i].topic, topic) && x->spec.pos[i].partition >= n)
            return es_set(err, ES_EINVAL, "%s has no partition %d", topic,
                          (int)x->spec.pos[i].partition);
    int64_t *ends = xcalloc((size_t)n, sizeof *ends);
    int rc = hi_resolve(x->rk, &x->spec, true, topic, n, ends, err);
    for (int p = 0; !rc && p < n; p++) {
        const es_db_val_t v[] = {ES_DB_S(topic), ES_DB_I(p), ES_DB_I(ends[p])};
        rc = es_db_exec(x->db,
                        "INSERT INTO asof_positions (topic, part, end_offset) VALUES (?, ?, ?)", v,
                        3, NULL, err);
    }
    free(ends);
    return rc;
}

/* Fixes the run's ends (a first run) in one transaction with its asof_run row, or checks that
 * the database holds a run of the same argument and contexts (resume). *finished: it is done. */
static int hi_asof_fix_run(struct hi_asof *x, bool *finished, es_err_t *err)
{
    json_t *rows = es_db_query(
        x->db, "SELECT spec, contexts, finished_at IS NOT NULL AS finished FROM asof_run", NULL, 0,
        err);
    if (!rows)
        return -1;
    json_t *run = json_array_get(rows, 0);
    int rc = 0;
    *finished = false;
    if (run) {
        if (strcmp(json_string_value(json_object_get(run, "spec")), x->spec_s) ||
            strcmp(json_string_value(json_object_get(run, "contexts")), x->contexts))
            rc = es_set(err, ES_ECONFLICT,
                        "database '%s' holds an as-of of '%s' for %s: use another --database",
                        x->database, json_string_value(json_object_get(run, "spec")),
                        json_string_value(json_object_get(run, "contexts")));
        *finished = json_integer_value(json_object_get(run, "finished")) != 0;
        if (!rc)
            fprintf(stderr, "as-of: %s the run recorded in database '%s'\n",
                    *finished ? "already complete:" : "resuming", x->database);
        json_decref(rows);
        return rc;
    }
    json_decref(rows);
    char at[32];
    const es_db_val_t v[] = {ES_DB_S(x->spec_s), ES_DB_S(x->contexts),
                             x->spec.is_time ? ES_DB_I(x->spec.time_ms) : ES_DB_N,
                             x->spec.is_time ? ES_DB_S(hi_time_format(x->spec.time_ms, at))
                                             : ES_DB_N};
    if (es_db_begin(x->db, err) ||
        es_db_exec(x->db,
                   "INSERT INTO asof_run (id, spec, contexts, as_of_ms, as_of, started_at) "
                   "VALUES (1, ?, ?, ?, ?, NOW(3))",
                   v, 4, NULL, err))
        goto rollback;
    char *list = xstrdup(x->contexts), *save = NULL;
    for (char *c = strtok_r(list, ",", &save); c && !rc; c = strtok_r(NULL, ",", &save)) {
        char topic[200];
        rc = hi_asof_fix_topic(x, es_topic(topic, sizeof topic, c, "events"), err);
    }
    free(list);
    if (!rc && !es_db_commit(x->db, err))
        return 0;
rollback:
    es_db_rollback(x->db);
    return -1;
}

/* --- one context ------------------------------------------------------------------------------ */

/* Decodes e's message into e->value in pj_arena's region, as the projector does (its writer's
 * schema asked first, outside: a first sight of it is fetched and kept). */
static int hi_ev_decode(struct hi_asof *x, struct hi_ev *e, const char **full, es_err_t *err)
{
    const char *writer = NULL;
    bool current = false;
    es_err_t werr = ES_ERR_INIT;
    int32_t id = ev_frame_schema_id(e->m->value, e->m->len);
    bool arena = id >= 0 && ev_codec_writer_info(x->codec, id, &writer, &current, &werr) == 0;
    if (arena)
        pj_arena_enter();
    int rc = ev_decode(x->codec, e->m->value, e->m->len, full, &e->value, err);
    if (arena)
        pj_arena_leave(rc == 0);
    e->in_arena = arena && rc == 0;
    return rc;
}

static void hi_ev_release(struct hi_ev *e)
{
    json_decref(e->value);
    e->value = NULL;
    if (e->in_arena)
        pj_arena_release();
    e->in_arena = false;
}

static void hi_ctx_free(struct hi_ctx *c)
{
    for (int i = 0; i < c->nbatch; i++) {
        es_kafka_msg_free(c->batch[i].m);
        hi_ev_release(&c->batch[i]);
    }
    free(c->end);
    free(c->next);
    free(c->pending);
    free(c->done);
    free(c->batch);
}

/* Records p's version as the one its tables were built with. */
static int hi_ctx_version(struct hi_asof *x, const pj_projection_t *p, es_err_t *err)
{
    const es_db_val_t v[] = {ES_DB_S(p->name), ES_DB_I(p->version)};
    return es_db_exec(x->db,
                      "INSERT INTO projection_versions (projection, version, built_at) VALUES "
                      "(?, ?, NOW(3)) ON DUPLICATE KEY UPDATE version=VALUES(version)",
                      v, 2, NULL, err);
}

/* The context's projections (their tables made), its recorded ends and their stored offsets. */
static int hi_ctx_open(struct hi_asof *x, struct hi_ctx *c, const char *context, es_err_t *err)
{
    es_topic(c->topic, sizeof c->topic, context, "events");
    for (const pj_projection_t *const *p = pj_projections; *p && c->nproj < HI_ASOF_MAX_PROJ; p++) {
        if (strcmp((*p)->context, context))
            continue;
        c->proj[c->nproj++] = *p;
        if (pj_projection_setup(x->db, *p, "", err) || hi_ctx_version(x, *p, err))
            return -1;
    }
    /* setup makes the event index of a context's own database; this one holds several contexts
     * and builds no index (see hi_ev_apply), so it keeps no empty table that would look like one */
    if (es_db_exec(x->db, "DROP TABLE IF EXISTS `" PJ_INDEX_TABLE "`", NULL, 0, NULL, err))
        return -1;
    const es_db_val_t v[] = {ES_DB_S(c->topic)};
    json_t *ends = es_db_query(
        x->db, "SELECT part, end_offset FROM asof_positions WHERE topic=? ORDER BY part", v, 1,
        err);
    if (!ends)
        return -1;
    c->nparts = (int)json_array_size(ends);
    c->end = xcalloc((size_t)c->nparts + 1, sizeof *c->end);
    c->pending = xcalloc((size_t)c->nparts + 1, sizeof *c->pending);
    c->done = xcalloc((size_t)c->nparts + 1, sizeof *c->done);
    c->next = xcalloc((size_t)(c->nparts * c->nproj) + 1, sizeof *c->next);
    c->batch = xcalloc((size_t)x->batch, sizeof *c->batch);
    for (int p = 0; p < c->nparts; p++) {
        c->end[p] =
            json_integer_value(json_object_get(json_array_get(ends, (size_t)p), "end_offset"));
        c->pending[p] = -1;
    }
    json_decref(ends);
    for (int j = 0; j < c->nproj; j++) {
        json_t *rows = pj_offsets_load(x->db, c->proj[j]->name, c->topic, false, err);
        if (!rows)
            return -1;
        for (int p = 0; p < c->nparts; p++) {
            int64_t at = pj_offsets_find(rows, p);
            c->next[j * c->nparts + p] = at > 0 ? at : 0;
        }
        json_decref(rows);
    }
    return 0;
}

/* Where partition p's replay starts: the least next offset of the context's projections. */
static int64_t hi_ctx_from(const struct hi_ctx *c, int p)
{
    int64_t from = INT64_MAX;
    for (int j = 0; j < c->nproj; j++)
        if (c->next[j * c->nparts + p] < from)
            from = c->next[j * c->nparts + p];
    return from;
}

/* Events still to apply in c (for the progress line). */
static int64_t hi_ctx_left(const struct hi_ctx *c)
{
    int64_t n = 0;
    for (int p = 0; p < c->nparts; p++)
        n += c->end[p] > hi_ctx_from(c, p) ? c->end[p] - hi_ctx_from(c, p) : 0;
    return n;
}

/* --- applying a batch ------------------------------------------------------------------------ */

/* Whether err is the event's fault (the projector dead-letters it) rather than the database's. */
static bool hi_poison(const es_err_t *err)
{
    return err->code == ES_EINVAL || err->code == ES_ENOTFOUND || err->code == ES_ECONFLICT ||
           err->code == ES_ETOOLARGE;
}

static int hi_dead_letter(struct hi_asof *x, const struct hi_ctx *c, const pj_projection_t *p,
                          const es_kafka_msg_t *m, const char *why, es_err_t *err)
{
    const es_db_val_t v[] = {ES_DB_S(p->name), ES_DB_S(c->topic), ES_DB_I(m->partition),
                             ES_DB_I(m->offset), ES_DB_S(why)};
    es_warn("as-of %s: dead letter %s[%d]@%" PRId64 ": %s", p->name, c->topic, (int)m->partition,
            m->offset, why);
    return es_db_exec(x->db,
                      "INSERT INTO projection_dead_letters (projection, topic, part, `offset`, "
                      "error, at) VALUES (?, ?, ?, ?, ?, NOW(3)) ON DUPLICATE KEY UPDATE "
                      "error=VALUES(error)",
                      v, 5, NULL, err);
}

/* Applies e to every projection not past it, each under a savepoint, as the projector's event by
 * event pass does: a malformed or rejected event is dead-lettered. 0, or -1 with err (the
 * database's). */
static int hi_ev_apply(struct hi_asof *x, const struct hi_ctx *c, const struct hi_ev *e,
                       es_err_t *err)
{
    for (int j = 0; j < c->nproj; j++) {
        const pj_projection_t *p = c->proj[j];
        if (e->m->offset < c->next[j * c->nparts + e->m->partition])
            continue;
        if (!e->type) {
            if (hi_dead_letter(x, c, p, e->m, e->why, err))
                return -1;
            continue;
        }
        es_err_t ev_err = ES_ERR_INIT;
        if (es_db_exec(x->db, "SAVEPOINT hi_event", NULL, 0, NULL, err))
            return -1;
        /* the read model's rows only: the contexts share this database, and the event index
         * (one per context's database) would mix them; an aggregate's history is GET /v1/history */
        if (!pj_projection_apply(x->db, p, "", e->type, e->value, &ev_err))
            continue;
        if (!hi_poison(&ev_err))
            return es_set(err, ev_err.code, "%s", ev_err.msg);
        char why[sizeof e->why];
        snprintf(why, sizeof why, "%s: %.200s", e->type, ev_err.msg);
        if (es_db_exec(x->db, "ROLLBACK TO SAVEPOINT hi_event", NULL, 0, NULL, err) ||
            hi_dead_letter(x, c, p, e->m, why, err))
            return -1;
    }
    return 0;
}

/* The whole batch as the projector writes one: every event's plan for each projection not past
 * it, as few multi-row statements per table (pj_batch.h). 0; 1 when an event is malformed or
 * rejected (the caller redoes the batch event by event, which dead-letters it); -1 with err. */
static int hi_batch_apply(struct hi_asof *x, const struct hi_ctx *c, es_err_t *err)
{
    pj_batch_t *b = pj_batch_new();
    pj_plan_t **plans = xcalloc((size_t)c->nbatch * (size_t)c->nproj + 1, sizeof *plans);
    size_t n = 0;
    int rc = 0;
    for (int i = 0; !rc && i < c->nbatch; i++) {
        const struct hi_ev *e = &c->batch[i];
        for (int j = 0; !rc && j < c->nproj; j++) {
            if (e->m->offset < c->next[j * c->nparts + e->m->partition])
                continue;
            es_err_t pe = ES_ERR_INIT;
            pj_plan_t *plan = plans[n++] = pj_plan_new();
            if (!e->type ||
                pj_projection_plan_at(c->proj[j], "", e->type, e->value, NULL, plan, &pe))
                rc = 1;
            else
                pj_batch_add(b, plan);
        }
    }
    es_err_t be = ES_ERR_INIT;
    if (!rc && pj_batch_apply(x->db, b, &be))
        rc = hi_poison(&be) ? 1 : es_set(err, be.code, "%s", be.msg);
    pj_batch_free(b);
    for (size_t k = 0; k < n; k++)
        pj_plan_free(plans[k]);
    free(plans);
    return rc;
}

/* One transaction: the batch's events (merged, or event by event when guarded), then the
 * partitions' new offsets for every projection. 0: committed; 1: an event was rejected
 * unguarded (rolled back); -1 with err. */
static int hi_ctx_commit(struct hi_asof *x, const struct hi_ctx *c, bool guarded, es_err_t *err)
{
    int rc = es_db_begin(x->db, err);
    if (!rc && !guarded)
        rc = hi_batch_apply(x, c, err);
    for (int i = 0; !rc && guarded && i < c->nbatch; i++)
        rc = hi_ev_apply(x, c, &c->batch[i], err);
    for (int j = 0; !rc && j < c->nproj; j++)
        for (int p = 0; !rc && p < c->nparts; p++)
            if (c->pending[p] > c->next[j * c->nparts + p])
                rc = pj_offset_store(x->db, c->proj[j]->name, c->topic, p, c->pending[p], err);
    if (!rc && !es_db_commit(x->db, err))
        return 0;
    es_db_rollback(x->db);
    return rc == 1 ? 1 : -1;
}

/* Decodes the batch, applies it (redone under savepoints when an event is rejected) and, once
 * committed, moves the offsets on and empties it. */
static int hi_ctx_flush(struct hi_asof *x, struct hi_ctx *c, es_err_t *err)
{
    bool dirty = c->nbatch > 0;
    for (int p = 0; p < c->nparts; p++)
        dirty = dirty || c->pending[p] >= 0;
    if (!dirty)
        return 0;
    for (int i = 0; i < c->nbatch; i++) {
        struct hi_ev *e = &c->batch[i];
        const char *full = NULL;
        es_err_t de = ES_ERR_INIT;
        if (!e->m->value)
            snprintf(e->why, sizeof e->why, "message without payload");
        else if (hi_ev_decode(x, e, &full, &de))
            snprintf(e->why, sizeof e->why, "undecodable: %.250s", de.msg);
        else
            e->type = strrchr(full, '.') ? strrchr(full, '.') + 1 : full;
    }
    int rc = hi_ctx_commit(x, c, false, err);
    if (rc == 1)
        rc = hi_ctx_commit(x, c, true, err);
    if (rc)
        return -1;
    int64_t moved = 0; /* offsets passed: the events and the transaction markers between them */
    for (int p = 0; p < c->nparts; p++) {
        if (c->pending[p] > hi_ctx_from(c, p))
            moved += c->pending[p] - hi_ctx_from(c, p);
        for (int j = 0; j < c->nproj; j++)
            if (c->pending[p] > c->next[j * c->nparts + p])
                c->next[j * c->nparts + p] = c->pending[p];
        c->pending[p] = -1;
    }
    hi_progress_add(&x->pg, moved);
    for (int i = 0; i < c->nbatch; i++) {
        es_kafka_msg_free(c->batch[i].m);
        hi_ev_release(&c->batch[i]);
    }
    memset(c->batch, 0, sizeof *c->batch * (size_t)c->nbatch);
    c->nbatch = 0;
    return 0;
}

/* --- reading ------------------------------------------------------------------------------- */

/* Partition p has reached its end: no more is read from it. */
static void hi_ctx_reached(struct hi_asof *x, struct hi_ctx *c, int p)
{
    es_kafka_parts_t *l = es_kafka_parts_new(1);
    es_kafka_parts_add(l, c->topic, p);
    es_kafka_pause(x->rk, l);
    es_kafka_parts_free(l);
    c->done[p] = true;
    c->pending[p] = c->end[p];
    c->left--;
}

/* Marks done the partitions whose consumer position has reached their end (past control
 * records, which are never delivered). */
static void hi_ctx_check_ends(struct hi_asof *x, struct hi_ctx *c)
{
    es_kafka_parts_t *l = es_kafka_parts_new(c->nparts);
    for (int p = 0; p < c->nparts; p++)
        if (!c->done[p])
            es_kafka_parts_add(l, c->topic, p);
    if (l->cnt && !es_kafka_position(x->rk, l))
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].offset >= c->end[l->elems[i].partition])
                hi_ctx_reached(x, c, l->elems[i].partition);
    es_kafka_parts_free(l);
}

/* Takes m (stolen) into the batch, or drops it when it lies past its partition's end. Whether
 * it was an event below the end. */
static bool hi_ctx_take(struct hi_asof *x, struct hi_ctx *c, es_kafka_msg_t *m)
{
    int p = m->partition;
    if (p < 0 || p >= c->nparts || c->done[p] || m->offset >= c->end[p]) {
        if (p >= 0 && p < c->nparts && !c->done[p])
            hi_ctx_reached(x, c, p);
        es_kafka_msg_free(m);
        return false;
    }
    c->batch[c->nbatch++] = (struct hi_ev){.m = m};
    c->pending[p] = m->offset + 1;
    if (m->offset + 1 >= c->end[p])
        hi_ctx_reached(x, c, p);
    return true;
}

/* Assigns every partition not yet at its end, from its least stored offset. */
static int hi_ctx_assign(struct hi_asof *x, struct hi_ctx *c, es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new(c->nparts);
    c->left = 0;
    for (int p = 0; p < c->nparts; p++) {
        int64_t from = hi_ctx_from(c, p);
        c->done[p] = from >= c->end[p];
        if (!c->done[p]) {
            es_kafka_parts_add(l, c->topic, p)->offset = from;
            c->left++;
        }
    }
    int rc = c->left ? es_kafka_resp_error(err, es_kafka_assign(x->rk, l), "assign") : 0;
    es_kafka_parts_free(l);
    return rc;
}

/* Replays c's partitions in parallel (one consumer, every partition assigned) up to their ends,
 * a transaction per batch. */
static int hi_ctx_replay(struct hi_asof *x, struct hi_ctx *c, es_err_t *err)
{
    int rc = hi_ctx_assign(x, c, err);
    for (long long seen = es_mono_ms(); !rc && c->left > 0;) {
        if (hi_asof_stopping) {
            rc = hi_ctx_flush(x, c, err) ? -1
                                         : es_set(err, ES_EIO,
                                                  "interrupted: run it again with "
                                                  "the same --database to resume");
            break;
        }
        es_kafka_msg_t *m = es_kafka_poll(x->rk, 200);
        if (!m || m->err == ES_KAFKA_ERR_PARTITION_EOF) {
            hi_ctx_check_ends(x, c);
            if (!m && c->left && es_mono_ms() - seen > HI_ASOF_STALL_MS)
                rc = es_set(err, ES_ETIMEOUT, "%s: nothing read below the ends for %d s", c->topic,
                            HI_ASOF_STALL_MS / 1000);
        } else if (m->err) {
            es_warn("as-of: consumer: %s", m->errstr);
        } else {
            if (hi_ctx_take(x, c, m))
                seen = es_mono_ms();
            m = NULL; /* taken or freed */
        }
        es_kafka_msg_free(m);
        if (!rc && c->nbatch >= x->batch)
            rc = hi_ctx_flush(x, c, err);
    }
    if (!rc)
        rc = hi_ctx_flush(x, c, err);
    es_kafka_assign(x->rk, NULL);
    return rc;
}

/* --- the run ---------------------------------------------------------------------------------- */

static int hi_asof_contexts(struct hi_asof *x, es_err_t *err)
{
    struct hi_ctx ctx[HI_ASOF_MAX_CTX] = {0};
    int n = 0, rc = 0;
    char *list = xstrdup(x->contexts), *save = NULL;
    for (char *c = strtok_r(list, ",", &save); c && !rc && n < HI_ASOF_MAX_CTX;
         c = strtok_r(NULL, ",", &save))
        rc = hi_ctx_open(x, &ctx[n++], c, err);
    free(list);
    int64_t total = 0;
    for (int i = 0; !rc && i < n; i++)
        total += hi_ctx_left(&ctx[i]);
    hi_progress_start(&x->pg, "as-of", total);
    for (int i = 0; !rc && i < n; i++)
        rc = hi_ctx_replay(x, &ctx[i], err);
    if (!rc)
        hi_progress_end(&x->pg);
    for (int i = 0; i < n; i++)
        hi_ctx_free(&ctx[i]);
    return rc;
}

static int hi_asof_run(struct hi_asof *x, es_err_t *err)
{
    bool finished = false;
    pj_arena_install(); /* the batches' decoded events, as the projector's (pj_arena.h) */
    if (!(x->rk = es_kafka_reader_new("eventshop-history", err)) ||
        !(x->sr = sr_client_new(es_env_registry_url(), err)) ||
        !(x->codec = ev_codec_new(es_env_schema_dir(), x->sr, err)) || hi_asof_db_open(x, err) ||
        hi_asof_fix_run(x, &finished, err))
        return -1;
    if (finished)
        return 0;
    return hi_asof_contexts(x, err) ||
                   es_db_exec(x->db, "UPDATE asof_run SET finished_at=NOW(3) WHERE id=1", NULL, 0,
                              NULL, err)
               ? -1
               : 0;
}

int hi_asof_main(int argc, char **argv)
{
    struct hi_asof x = {0};
    int rc = hi_asof_args(&x, argc, argv);
    if (rc) {
        hi_spec_free(&x.spec);
        return rc == 3 ? 0 : rc;
    }
    struct sigaction sa = {.sa_handler = hi_asof_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    es_err_t err = ES_ERR_INIT;
    rc = hi_asof_run(&x, &err);
    if (rc)
        fprintf(stderr, "eventshop-history as-of: %s\n", err.msg);
    else
        fprintf(stderr,
                "as-of: done: database '%s' holds %s as of %s (ends in its asof_positions)\n",
                x.database, x.contexts, x.spec_s);
    if (x.rk) {
        es_kafka_close(x.rk);
        es_kafka_destroy(x.rk);
    }
    ev_codec_free(x.codec);
    sr_client_free(x.sr);
    es_db_close(x.db);
    hi_spec_free(&x.spec);
    return rc ? 1 : 0;
}
