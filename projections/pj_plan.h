/* pj_plan — what a projection turns one event into: an ordered list of SQL statements on its
 * tables, built without I/O (so a projection is unit-tested without a database), then applied by
 * the runtime inside its open transaction.
 *
 * Each statement records, beside its SQL, the table it writes (without suffix) and its kind, so
 * that a batch's statements can later be merged per table into multi-row statements. Parameters
 * borrow their strings from the event or from buffers the plan owns (pj_plan_keep); the plan must
 * not outlive the event. */
#ifndef PJ_PLAN_H
#define PJ_PLAN_H

#include "es_db.h"
#include "es_err.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PJ_STMT_MAX_PARAMS 16

enum pj_stmt_kind {
    PJ_DDL,    /* CREATE TABLE IF NOT EXISTS */
    PJ_INSERT, /* INSERT (or INSERT IGNORE) of a new row */
    PJ_UPSERT, /* INSERT ... ON DUPLICATE KEY UPDATE */
    PJ_UPDATE, /* UPDATE of the rows of a key */
};

/* Merging (pj_batch.h) rests on three rules every statement keeps: it reads and writes only its own
 * table (statements of different tables commute); an UPDATE names at most one row and its
 * assignments read no column assigned before them in the same SET; and statements of two plans
 * with different keys (pj_plan_set_key) touch different rows (they commute too). */
struct pj_stmt {
    enum pj_stmt_kind kind;
    const char *table; /* static: the table it writes, without the suffix ("products") */
    char *sql;         /* owned by the plan */
    es_db_val_t params[PJ_STMT_MAX_PARAMS]; /* the first n are set, the rest never read */
    size_t n;
    bool must_match; /* an UPDATE that must find its row, else the plan fails with ES_ENOTFOUND */
    const char *key; /* borrowed, NULL: the plan's key (pj_plan_set_key); the row's own key */
    char *upsert;    /* owned by the plan, NULL: none; a must-match UPDATE's upsert form */
};

typedef struct pj_plan pj_plan_t;

pj_plan_t *pj_plan_new(void);
void pj_plan_free(pj_plan_t *plan); /* NULL: no-op */
/* Empties plan (statements, kept buffers, subject) for the next event. */
void pj_plan_reset(pj_plan_t *plan);

/* Appends a statement of kind on table (static string) whose SQL is printf(fmt, ...); borrowed,
 * valid until the next pj_plan_add or reset: bind its parameters at once. fmt is a string literal
 * (a text that never changes at that address): when its one conversion is %s, the SQL printed
 * from it and the same argument for the previous event's statement at this place is reused. */
struct pj_stmt *pj_plan_add(pj_plan_t *plan, enum pj_stmt_kind kind, const char *table,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Binds n parameters after those st already has (at most PJ_STMT_MAX_PARAMS in all: more is a
 * bug and aborts). */
void pj_stmt_bind(struct pj_stmt *st, const es_db_val_t *vals, size_t n);
#define PJ_BIND(st, ...)                                                                           \
    pj_stmt_bind((st), (const es_db_val_t[]){__VA_ARGS__},                                         \
                 sizeof((const es_db_val_t[]){__VA_ARGS__}) / sizeof(es_db_val_t))
/* Gives must-match UPDATE st (the plan's last statement) an upsert form, printf(fmt, ...): an
 * "INSERT INTO t (c, ...) VALUES (row) ON DUPLICATE KEY UPDATE ..." taking st's parameters in the
 * same order, with every placeholder in row. A batch merges such UPDATEs as one multi-row upsert
 * (pj_batch.h), which MariaDB runs at half the cost of the joined UPDATE; the projection vouches
 * that, on the row st names (by its table's primary key, in the row's key columns):
 *   - when that row exists, the upsert changes it exactly as st does, and always changes it (e.g.
 *     a counter it increments), so that MariaDB counts 2 affected rows for it;
 *   - when it does not, the upsert inserts a row (counted 1) and touches no other row: its
 *     table has no other unique key (the batch then counts fewer than 2 a row, fails with
 *     ES_ENOTFOUND and is redone event by event, where st itself runs and finds no row).
 * The insert may fill NOT NULL columns with anything: such a row never survives the batch. */
void pj_stmt_set_upsert(pj_plan_t *plan, struct pj_stmt *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Takes buf (heap, stolen) into the plan, which frees it; returns it, for parameters to borrow. */
const char *pj_plan_keep(pj_plan_t *plan, char *buf);
/* json_dumps(v, flags) printed into a buffer of the plan's own (borrowed, valid until the reset),
 * for parameters to borrow; NULL when v does not dump. The buffers are kept from event to event:
 * no allocation an event once they are grown (json_dumps and the free of its text were several). */
const char *pj_plan_dump(pj_plan_t *plan, const json_t *v, size_t flags);
/* "<part>:<offset>" in a buffer of the plan's own (valid until the reset; one a plan, a later call
 * overwrites it), for a row keyed by the event's position: printed without printf or malloc, as
 * every event of a batch has one (its event_index row). */
const char *pj_plan_position_key(pj_plan_t *plan, int32_t part, int64_t offset);
/* What the must-match statements are about, for the ES_ENOTFOUND message ("sku 'AB-1'"). A
 * format whose conversions are at most two %s is printed only when pj_plan_subject asks: its
 * string arguments are then borrowed until the reset (from the event, as parameters are). */
void pj_plan_set_subject(pj_plan_t *plan, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The key of the rows the plan's statements touch (the aggregate's id: "AB-1"), borrowed from the
 * event or kept by the plan: statements of plans with different keys touch different rows, so a
 * batch may reorder them per key (pj_batch.h). NULL (the default): unknown, no reordering. */
void pj_plan_set_key(pj_plan_t *plan, const char *key);
const char *pj_plan_key(const pj_plan_t *plan);

/* How many statements plan holds, and the i-th (borrowed; NULL when i is out of range). */
size_t pj_plan_len(const pj_plan_t *plan);
const struct pj_stmt *pj_plan_stmt(const pj_plan_t *plan, size_t i);
const char *pj_plan_subject(const pj_plan_t *plan);

/* Runs plan's statements in order on db (inside the caller's transaction), stopping at the first
 * failure: es_db_exec's code, or ES_ENOTFOUND "<what>: <subject> is not in the read model" when a
 * must-match statement changes no row. what names the event type (borrowed). */
int pj_plan_apply(es_db_t *db, const pj_plan_t *plan, const char *what, es_err_t *err);

#endif
