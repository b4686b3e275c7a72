/* pj_batch — a batch's plans applied as few multi-row statements per table, with the final state
 * of its statements run one by one in order.
 *
 * The plans of a batch's events, in order, are one sequence of statements. Statements of
 * different tables commute, and so do statements with different keys (the rules in pj_plan.h).
 * So per table, a statement goes to layer n when it is the n-th of its key there (keys compared
 * as MariaDB may: ASCII case and trailing spaces ignored; a key with other bytes, or none, is a
 * layer of its own that nothing crosses), and within a layer the statements of the same SQL
 * become one statement of up to PJ_BATCH_ROWS rows:
 *   INSERT ... VALUES (row) tail   ->  INSERT ... VALUES (row), (row), ... tail
 *     (MariaDB applies the rows in order, each as its own statement would: ON DUPLICATE KEY
 *     UPDATE with relative updates, IGNORE);
 *   UPDATE t SET ... WHERE ...     ->  UPDATE t JOIN (SELECT ? AS p0, ... UNION ALL SELECT ...)
 *     AS pj_d SET ... WHERE ... with each parameter read from pj_d (the keys of a layer differ,
 *     so each row is updated once, as by its own statement);
 *   a must-match UPDATE with an upsert form (pj_stmt_set_upsert) -> that form merged as an INSERT
 *     above (MariaDB ran the joined UPDATE at about twice a multi-row upsert's time a row).
 * A statement whose SQL has neither shape (or the only one of its SQL in its layer) runs as
 * written. pj_batch_apply fails on the first failing statement, and with ES_ENOTFOUND when a
 * merged must-match UPDATE changes fewer rows than it merged (one of them may match none; for an
 * upsert form, fewer than 2 affected rows a row: one of them may have been inserted): the
 * caller then rolls back and applies the events one by one (pj_plan_apply), which names and
 * dead-letters the culprit. */
#ifndef PJ_BATCH_H
#define PJ_BATCH_H

#include "es_db.h"
#include "es_err.h"
#include "pj_plan.h"
#include <stddef.h>

#define PJ_BATCH_ROWS 500 /* rows of one merged statement at most */

typedef struct pj_batch pj_batch_t;

pj_batch_t *pj_batch_new(void);
void pj_batch_free(pj_batch_t *b); /* NULL: no-op */
/* Empties b for the next batch (keeps its memory). */
void pj_batch_reset(pj_batch_t *b);
/* Appends plan (borrowed: it and what its parameters borrow must outlive b's use). */
void pj_batch_add(pj_batch_t *b, const pj_plan_t *plan);
/* Pure: orders and merges the statements added since the reset (once; later calls reuse the
 * result). How many statements there are to run, and the i-th's SQL, parameters and rows
 * (borrowed, valid until reset). */
size_t pj_batch_build(pj_batch_t *b);
const char *pj_batch_sql(const pj_batch_t *b, size_t i);
const es_db_val_t *pj_batch_params(const pj_batch_t *b, size_t i, size_t *n);
size_t pj_batch_rows(const pj_batch_t *b, size_t i);
/* Builds and runs b's statements on db inside the caller's transaction. 0, or es_db_exec's code
 * of the first failing statement, or ES_ENOTFOUND (see above), with err. */
int pj_batch_apply(es_db_t *db, pj_batch_t *b, es_err_t *err);

#endif
