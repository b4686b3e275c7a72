/* catalog — the catalog context's read models. catalog_products keeps one row per sku in table
 * products<suffix> (read by the API with the read-only user: column names are a contract). */
#ifndef PJ_CATALOG_H
#define PJ_CATALOG_H

#include "pj_runtime.h"

extern const pj_projection_t catalog_products_projection;

#endif
