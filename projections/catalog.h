/* catalog — the catalog context's read models. catalog_products keeps one row per sku in table
 * products<suffix> (read by the API with the read-only user: column names are a contract). */
#ifndef PJ_CATALOG_H
#define PJ_CATALOG_H

#include "es_db.h"
#include "es_err.h"
#include "pj_runtime.h"
#include <jansson.h>
#include <stdbool.h>

extern const pj_projection_t catalog_products_projection;

#define CATALOG_STMT_MAX_PARAMS 16

/* One statement an event turns into, built without I/O (unit-tested). */
struct catalog_stmt {
    char *sql;                                   /* owned; NULL: the event changes nothing */
    es_db_val_t params[CATALOG_STMT_MAX_PARAMS]; /* strings borrowed from the event or attrs */
    size_t n;
    bool must_match; /* an UPDATE that must find its row (else ES_ENOTFOUND) */
    char *attrs;     /* owned: the attributes as JSON text */
};

/* CREATE TABLE IF NOT EXISTS products<suffix> ...; owned by the caller (free()). */
char *catalog_products_ddl(const char *suffix);
/* Fills *out (zeroed first) with the statement event (borrowed) of event_type turns into.
 * ES_EINVAL naming the field when the event is malformed. Release *out in every case. */
int catalog_products_plan(const char *suffix, const char *event_type, const json_t *event,
                          struct catalog_stmt *out, es_err_t *err);
void catalog_stmt_release(struct catalog_stmt *s);

#endif
