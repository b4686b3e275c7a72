/* catalog — the catalog context's read models. catalog_products keeps one row per sku in table
 * products<suffix> (read by the API with the read-only user: column names are a contract). */
#ifndef PJ_CATALOG_H
#define PJ_CATALOG_H

#include "pj_runtime.h"

extern const pj_projection_t catalog_products_projection;

/* The projection's functions (pj_projection_t): pure, unit-tested. */
extern const char *const catalog_products_tables[];
void catalog_products_ddl(const char *suffix, pj_plan_t *out);
/* ProductListed: one upsert; ProductDetailsChanged, ProductDelisted: one must-match UPDATE.
 * ES_EINVAL naming the field when the event is malformed. */
int catalog_products_plan(const char *suffix, const char *event_type, const json_t *event,
                          pj_plan_t *out, es_err_t *err);

#endif
