/* pj_runtime — the generic projector: reads a context's events topic (read_committed), applies
 * each event to a projection's read tables and stores the next offset of every partition in the
 * same MariaDB transaction as the rows (DESIGN.md §5), so that a crash anywhere leaves each event
 * applied exactly once. Kafka's own committed offsets are never read: after each batch the
 * positions are also committed to the consumer group, asynchronously, only so that the group's
 * lag (what KEDA scales projectors on) is the projector's; a rebuild commits nothing.
 *
 * A projection is data plus two pure functions (pj_plan.h): it never touches Kafka nor MariaDB. Its
 * tables are named
 * "<table><suffix>": suffix is "" for the live tables; pj_rebuild fills tables with another
 * suffix beside the live ones, then swaps them with one RENAME TABLE.
 *
 * Coordination with a rebuild: each live batch runs under the MariaDB named lock
 * "eventshop.<context>.<projection><suffix>" (GET_LOCK), and after taking it checks its stored
 * offsets under row locks: with SELECT ... FOR UPDATE, or, once every partition of the batch has
 * one, with the UPDATE that stores the batch's (a row per partition where the offset is still the
 * expected one; fewer changed rows: moved). A rebuild's own batches (its shadow key, which nobody
 * else writes) take no named lock, only that check. A rebuild takes the live lock between two
 * batches, brings its tables to the live offsets, swaps, and moves its offsets to the live name;
 * the live projector's next batch sees the moved offsets (or the same ones) and carries on from
 * them.
 *
 * Versions: table projection_versions holds the version each live table set was built with. */
#ifndef PJ_RUNTIME_H
#define PJ_RUNTIME_H

#include "es_db.h"
#include "es_err.h"
#include "pj_plan.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pj_projection {
    const char *name;          /* "catalog_products": offsets and metrics are keyed by it */
    const char *context;       /* "catalog": reads catalog.events, writes eventshop_catalog */
    int version;               /* bumped when the tables' shape or meaning changes */
    const char *const *tables; /* NULL-terminated: the tables it owns, without suffix */
    /* Pure: puts into out (empty) the CREATE TABLE IF NOT EXISTS of each table "<t><suffix>". */
    void (*ddl)(const char *suffix, pj_plan_t *out);
    /* Pure: puts into out (empty) the statements one decoded event turns into, in order; the
     * runtime applies them inside its open transaction. event_type is the record's name without
     * namespace ("ProductListed"); event is borrowed, and out's parameters may borrow from it. An
     * event type the projection does not know leaves out empty (return 0). A malformed event is
     * ES_EINVAL naming the field (out is then reset by the caller): the runtime dead-letters it,
     * as it does when applying the plan fails with ES_EINVAL, ES_ENOTFOUND (a must-match UPDATE
     * found no row) or ES_ECONFLICT (a duplicate key); any other code (ES_EIO...) makes it roll
     * back and retry the whole batch. */
    int (*plan)(const char *suffix, const char *event_type, const json_t *event, pj_plan_t *out,
                es_err_t *err);
} pj_projection_t;

/* The descriptor of a projection whose functions follow the names <prefix>_tables, <prefix>_ddl
 * and <prefix>_plan: const pj_projection_t catalog_products_projection =
 * PJ_PROJECTION(catalog_products, "catalog", 1); */
#define PJ_PROJECTION(prefix, context_, version_)                                                  \
    {                                                                                              \
        .name = #prefix, .context = (context_), .version = (version_), .tables = prefix##_tables,  \
        .ddl = prefix##_ddl, .plan = prefix##_plan                                                 \
    }

/* The event index: beside its own tables, every projection keeps in PJ_INDEX_TABLE"<suffix>" one
 * row per event of its context, whatever its plan does with it: (part, offset) -> aggregate_id,
 * aggregate_version, event_type (without namespace), occurred_at (ms). An aggregate's history
 * (GET /v1/history, eventshop-history show) reads its positions there and fetches only those
 * events from Kafka. It is one of the projection's tables: made by pj_projection_setup, filled
 * by pj_projection_apply_at, rebuilt and swapped with the others (pj_projection_table). */
#define PJ_INDEX_TABLE "event_index"

/* Where an event was read. */
typedef struct pj_position {
    int32_t partition;
    int64_t offset;
} pj_position_t;

/* The i-th table of p without suffix (static): p->tables, then PJ_INDEX_TABLE; NULL past them. */
const char *pj_projection_table(const pj_projection_t *p, size_t i);

/* Creates p's tables "<t><suffix>" and the event index if they do not exist (p->ddl and
 * pj_index_ddl, run on db). 0 or -1 with err. */
int pj_projection_setup(es_db_t *db, const pj_projection_t *p, const char *suffix, es_err_t *err);
/* Plans one event with p->plan, adds its index row when at is not NULL (pj_index_plan), and
 * applies the plan on db, inside the caller's transaction; the codes are p->plan's,
 * pj_index_plan's and pj_plan_apply's (see plan above). at is borrowed. */
int pj_projection_apply_at(es_db_t *db, const pj_projection_t *p, const char *suffix,
                           const char *event_type, const json_t *event, const pj_position_t *at,
                           es_err_t *err);
/* Pure: the plan pj_projection_apply_at applies, into out (reset first; reset again on failure,
 * with err: p->plan's or pj_index_plan's codes). */
int pj_projection_plan_at(const pj_projection_t *p, const char *suffix, const char *event_type,
                          const json_t *event, const pj_position_t *at, pj_plan_t *out,
                          es_err_t *err);
/* pj_projection_apply_at without a position: the read model's rows only, no index row. */
int pj_projection_apply(es_db_t *db, const pj_projection_t *p, const char *suffix,
                        const char *event_type, const json_t *event, es_err_t *err);

/* Pure: appends to out the CREATE TABLE IF NOT EXISTS of PJ_INDEX_TABLE"<suffix>". */
void pj_index_ddl(const char *suffix, pj_plan_t *out);
/* Pure: appends to out the index row of event (event_type without namespace, read at at); -1
 * with err (ES_EINVAL naming the field, the event is then dead-lettered) when its metadata is
 * malformed or its aggregate_id is not 1 to 128 characters. Parameters borrow from event. */
int pj_index_plan(const char *suffix, const char *event_type, const json_t *event,
                  const pj_position_t *at, pj_plan_t *out, es_err_t *err);

/* The table of every projection (projections.c), NULL-terminated. */
extern const pj_projection_t *const pj_projections[];
/* The projection of context named name, or the first of context when name is NULL; borrowed,
 * NULL if none. */
const pj_projection_t *pj_projection_find(const char *context, const char *name);

/* Whether suffix may be pasted into a table name: at most 32 of [a-z0-9_]; "" is valid. */
bool pj_suffix_is_valid(const char *suffix);

typedef struct pj_runtime pj_runtime_t;

typedef struct pj_options {
    const char *group;  /* consumer group; NULL: "eventshop-<name><suffix>-projector" */
    const char *suffix; /* table suffix; NULL: "" (the live tables) */
    int batch_max;      /* events per transaction; <= 0: 500 */
    int linger_ms;      /* longest a batch fills while events keep coming; <= 0: 20 */
} pj_options_t;

/* Reads pj_options_t from EVENTSHOP_PROJECTOR_GROUP, EVENTSHOP_PROJECTOR_TABLE_SUFFIX,
 * EVENTSHOP_PROJECTOR_BATCH, EVENTSHOP_PROJECTOR_LINGER_MS (strings borrowed from the
 * environment). */
void pj_options_from_env(pj_options_t *opt);

/* Connects to MariaDB (es_db_open(context)), creates the runtime's tables (projection_offsets,
 * projection_dead_letters) and the projection's, builds the codec (registry at
 * EVENTSHOP_REGISTRY_URL) and the consumer. p and opt are borrowed; p must outlive the runtime.
 * NULL with err on failure. */
pj_runtime_t *pj_runtime_new(const pj_projection_t *p, const pj_options_t *opt, es_err_t *err);
/* Consumes until pj_runtime_stop; then finishes the current batch and leaves the group.
 * Returns 0, or -1 with err on an unrecoverable error (ES_EFATAL). Database outages are
 * retried with back-off, never returned. */
int pj_runtime_run(pj_runtime_t *rt, es_err_t *err);
/* Async-signal-safe: asks pj_runtime_run to return. */
void pj_runtime_stop(pj_runtime_t *rt);
void pj_runtime_free(pj_runtime_t *rt);

/* Compares the version p's live tables were built with (projection_versions) with p->version;
 * a first start records p->version (tables that predate the table count as current).
 * 0: equal; 1: they differ (*stored set); -1 with err. */
int pj_version_check(const pj_projection_t *p, int *stored, es_err_t *err);

typedef struct pj_rebuild_options {
    bool keep_old;    /* keep the replaced tables as "<table>_old<unix time>"; default: drop */
    bool live_paused; /* no live projector applies (it waits for this rebuild): swap at once */
    int batch_max;    /* events per transaction; <= 0: 2000 */
    int swap_wait_ms; /* longest wait for the live projector to reach the rebuild's offsets
                       * before moving them forward; <= 0: 15000 */
} pj_rebuild_options_t;

/* Rebuilds p with zero downtime for readers: creates its tables with suffix "_rb<unix time>",
 * replays <context>.events from offset 0 into them (offsets under "<name>_rb<time>"), logging
 * progress once a second (events/s, remaining events from the high watermarks, eta) and setting
 * the eventshop_projector_rebuild_* gauges; catches up; then, holding the live lock, applies the
 * last events up to the live projector's stored offsets, swaps every table of p in one RENAME
 * TABLE, moves the offsets and dead letters to the live name, records p->version, releases the
 * lock and drops (or keeps) the old tables. Only one rebuild of p runs at a time. opt borrowed,
 * may be NULL. 0 after the swap; -1 with err (ES_ECONFLICT: another rebuild runs), and then the
 * new tables are dropped and the live ones untouched. */
int pj_rebuild(const pj_projection_t *p, const pj_rebuild_options_t *opt, es_err_t *err);
/* Async-signal-safe: makes a running pj_rebuild give up (its tables are dropped). */
void pj_rebuild_stop(void);

#endif
