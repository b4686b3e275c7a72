/* pj_row — a projection's plans applied to rows held in memory, as MariaDB applies them to its
 * tables: the one interpreter of the SQL the projections write, for a reader that keeps some rows
 * itself (the API's cache, api_cache.h) and must stay byte for byte what the read model holds,
 * without a second copy of any projection's logic.
 *
 * The schema comes from the projection's own DDL (pj_projection_t.ddl): each table's columns in
 * order, whether each is an integer (es_db_query gives integers for those, strings otherwise), a
 * CHAR(n) (MariaDB drops its trailing spaces on reading), its DEFAULT literal, and the primary
 * key. Rows are JSON objects column -> string, integer or null, as es_db_query gives them; a table
 * is held as a JSON array of rows sorted by primary key.
 *
 * The SQL subset understood (what pj_plan statements are made of; anything else is ES_EINVAL):
 *   INSERT [IGNORE] INTO t (c, ...) VALUES (e, ...) [ON DUPLICATE KEY UPDATE c = e, ...]
 *   UPDATE t SET c = e, ... WHERE c = e [AND c = e ...]
 * where e is ?, 'text', an integer, NULL, a column, VALUES(c), IF(e = e, e, e), e + e, e - e or
 * (e). Assignments run left to right, each seeing the ones before (MariaDB's order); '=' compares
 * strings as the _bin collations with PAD SPACE do (trailing spaces ignored); a duplicate is
 * found on the primary key only (the held tables have no other unique key). */
#ifndef PJ_ROW_H
#define PJ_ROW_H

#include "es_err.h"
#include "pj_plan.h"
#include "pj_runtime.h"
#include <jansson.h>

typedef struct pj_schema pj_schema_t;

/* The tables of p's DDL; NULL with err (ES_EINVAL naming the table) when a statement is not a
 * CREATE TABLE this parser reads. p borrowed. */
pj_schema_t *pj_schema_new(const pj_projection_t *p, es_err_t *err);
void pj_schema_free(pj_schema_t *s); /* NULL: no-op */

/* Table's columns in DDL order ("sku, vendor_id, ...") and its primary key columns ("sku,
 * rule_id"), borrowed; NULL when the projection has no such table. */
const char *pj_schema_columns(const pj_schema_t *s, const char *table);
const char *pj_schema_key(const pj_schema_t *s, const char *table);

/* Applies plan's statements in order to tables (a JSON object: table name -> array of rows), the
 * rows of every table it holds; a statement on a table it does not hold is skipped. 0, or -1 with
 * err as the projector would fail the event: ES_ENOTFOUND (a must-match UPDATE changed no row),
 * ES_ECONFLICT (a plain INSERT of a key held), ES_EINVAL (SQL outside the subset); tables are then
 * left half changed: apply to a copy when that matters. */
int pj_row_apply(const pj_schema_t *s, json_t *tables, const pj_plan_t *plan, es_err_t *err);

#endif
