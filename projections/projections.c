/* The table of every projection, by context: the projector role picks its context's; and how
 * the runtime sets up and applies a projection's plans. */
#include "catalog.h"
#include "es_mem.h"
#include "inventory.h"
#include "orders.h"
#include "payments.h"
#include "pj_event.h"
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

const char *pj_projection_table(const pj_projection_t *p, size_t i)
{
    size_t n = 0;
    while (p->tables[n])
        n++;
    return i < n ? p->tables[i] : i == n ? PJ_INDEX_TABLE : NULL;
}

void pj_index_ddl(const char *suffix, pj_plan_t *out)
{
    /* aggregate ids compare byte for byte, as the deciders do; the key on the aggregate covers
     * the history's query (one aggregate, in version order) without reading the rows */
    pj_plan_add(out, PJ_DDL, PJ_INDEX_TABLE,
                "CREATE TABLE IF NOT EXISTS `" PJ_INDEX_TABLE "%s` ("
                "part INT NOT NULL,"
                "`offset` BIGINT NOT NULL,"
                "aggregate_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
                "aggregate_version BIGINT NOT NULL,"
                "event_type VARCHAR(128) NOT NULL,"
                "occurred_at BIGINT NOT NULL,"
                "PRIMARY KEY (part, `offset`),"
                "KEY aggregate (aggregate_id, aggregate_version, part, `offset`)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                suffix);
}

int pj_index_plan(const char *suffix, const char *event_type, const json_t *event,
                  const pj_position_t *at, pj_plan_t *out, es_err_t *err)
{
    struct pj_meta m;
    if (pj_event_meta(event, &m, err))
        return -1;
    const char *id =
        pj_event_str(json_object_get(event, "metadata"), "metadata.", "aggregate_id", 1, 128, err);
    if (!id)
        return -1;
    /* IGNORE: an event is indexed once per table set; a second projection of the same context
     * (none today) would index it again */
    struct pj_stmt *st =
        pj_plan_add(out, PJ_INSERT, PJ_INDEX_TABLE,
                    "INSERT IGNORE INTO `" PJ_INDEX_TABLE "%s` (part, `offset`, aggregate_id, "
                    "aggregate_version, event_type, occurred_at) VALUES (?, ?, ?, ?, ?, ?)",
                    suffix);
    PJ_BIND(st, ES_DB_I(at->partition), ES_DB_I(at->offset), ES_DB_S(id), ES_DB_I(m.version),
            ES_DB_S(event_type), ES_DB_I(m.occurred_at));
    /* the row is the event's own: it commutes with every other event's (pj_batch) */
    st->key = pj_plan_position_key(out, at->partition, at->offset);
    return 0;
}

int pj_projection_setup(es_db_t *db, const pj_projection_t *p, const char *suffix, es_err_t *err)
{
    pj_plan_t *plan = pj_plan_new();
    p->ddl(suffix, plan);
    pj_index_ddl(suffix, plan);
    int rc = pj_plan_apply(db, plan, p->name, err);
    pj_plan_free(plan);
    return rc;
}

int pj_projection_apply(es_db_t *db, const pj_projection_t *p, const char *suffix,
                        const char *event_type, const json_t *event, es_err_t *err)
{
    return pj_projection_apply_at(db, p, suffix, event_type, event, NULL, err);
}

int pj_projection_plan_at(const pj_projection_t *p, const char *suffix, const char *event_type,
                          const json_t *event, const pj_position_t *at, pj_plan_t *out,
                          es_err_t *err)
{
    pj_plan_reset(out);
    int rc = p->plan(suffix, event_type, event, out, err);
    if (rc == 0 && at)
        rc = pj_index_plan(suffix, event_type, event, at, out, err);
    if (rc)
        pj_plan_reset(out);
    return rc;
}

int pj_projection_apply_at(es_db_t *db, const pj_projection_t *p, const char *suffix,
                           const char *event_type, const json_t *event, const pj_position_t *at,
                           es_err_t *err)
{
    pj_plan_t *plan = pj_plan_new();
    int rc = pj_projection_plan_at(p, suffix, event_type, event, at, plan, err);
    if (rc == 0)
        rc = pj_plan_apply(db, plan, event_type, err);
    pj_plan_free(plan);
    return rc;
}
