/* The table of every projection, by context: the projector role picks its context's; and how
 * the runtime sets up and applies a projection's plans. */
#include "catalog.h"
#include "inventory.h"
#include "orders.h"
#include "payments.h"
#include "pj_runtime.h"
#include "pricing.h"
#include "shipping.h"
#include "users.h"
#include <string.h>

const pj_projection_t *const pj_projections[] = {
    &catalog_products_projection,   &inventory_stock_projection,
    &users_accounts_projection,     &pricing_prices_projection,
    &shipping_shipments_projection, &payments_payments_projection,
    &orders_orders_projection,      NULL,
};

const pj_projection_t *pj_projection_find(const char *context, const char *name)
{
    for (const pj_projection_t *const *p = pj_projections; *p; p++)
        if (strcmp((*p)->context, context) == 0 && (!name || strcmp((*p)->name, name) == 0))
            return *p;
    return NULL;
}

bool pj_suffix_is_valid(const char *suffix)
{
    size_t n = strlen(suffix);
    if (n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = suffix[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

int pj_projection_setup(es_db_t *db, const pj_projection_t *p, const char *suffix, es_err_t *err)
{
    pj_plan_t *plan = pj_plan_new();
    p->ddl(suffix, plan);
    int rc = pj_plan_apply(db, plan, p->name, err);
    pj_plan_free(plan);
    return rc;
}

int pj_projection_apply(es_db_t *db, const pj_projection_t *p, const char *suffix,
                        const char *event_type, const json_t *event, es_err_t *err)
{
    pj_plan_t *plan = pj_plan_new();
    int rc = p->plan(suffix, event_type, event, plan, err);
    if (rc == 0)
        rc = pj_plan_apply(db, plan, event_type, err);
    pj_plan_free(plan);
    return rc;
}
