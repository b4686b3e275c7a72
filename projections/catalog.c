#include "catalog.h"
#include "pj_event.h"
#include <stdlib.h>
#include <string.h>

static const char *const catalog_products_tables[] = {"products", NULL};

static void catalog_products_ddl(const char *suffix, pj_plan_t *out)
{
    /* sku and vendor_id compare byte for byte, as the decider does; name_description serves
     * GET /v1/products?q= (added in version 3: older tables are rebuilt once) */
    pj_plan_add(out, PJ_DDL, "products",
                "CREATE TABLE IF NOT EXISTS `products%s` ("
                "sku VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
                "vendor_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
                "name VARCHAR(200),"
                "description TEXT,"
                "category VARCHAR(100),"
                "attributes JSON,"
                "currency CHAR(3),"
                "status ENUM('listed','delisted'),"
                "version BIGINT,"
                "applied_events BIGINT,"
                "listed_at BIGINT,"
                "updated_at BIGINT,"
                "last_event_id CHAR(36),"
                "PRIMARY KEY (sku),"
                "KEY vendor_sku (vendor_id, sku),"
                "KEY category_sku (category, sku),"
                "FULLTEXT KEY name_description (name, description)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                suffix);
}

/* The attributes as JSON text, kept by out; NULL with err when they are not a map of strings. */
static const char *attrs_text(const json_t *event, pj_plan_t *out, es_err_t *err)
{
    json_t *a = json_object_get(event, "attributes");
    if (!a)
        return "{}";
    const char *k;
    json_t *v;
    if (!json_is_object(a)) {
        es_set(err, ES_EINVAL, "attributes: not a map");
        return NULL;
    }
    json_object_foreach(a, k, v)
    {
        if (!json_is_string(v)) {
            es_set(err, ES_EINVAL, "attributes.%s: not a string", k);
            return NULL;
        }
    }
    const char *text = pj_plan_dump(out, a, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        es_set(err, ES_EINVAL, "attributes: cannot be printed as JSON");
    return text;
}

/* The descriptive fields ProductListed and ProductDetailsChanged both carry. */
struct details {
    const char *name, *description, *category, *attrs;
};

static int read_details(const json_t *event, pj_plan_t *out, struct details *d, es_err_t *err)
{
    if (!(d->name = pj_event_str(event, "", "name", 0, 200, err)) ||
        !(d->category = pj_event_str(event, "", "category", 0, 100, err)))
        return -1;
    d->description = "";
    if (json_object_get(event, "description") &&
        !(d->description = pj_event_str(event, "", "description", 0, 65535, err)))
        return -1;
    if (strlen(d->description) > 65535) /* TEXT holds 64 KiB */
        return es_set(err, ES_EINVAL, "description: over 65535 bytes");
    return (d->attrs = attrs_text(event, out, err)) ? 0 : -1;
}

static int plan_listed(const char *suffix, const json_t *event, const char *sku,
                       const struct pj_meta *m, pj_plan_t *out, es_err_t *err)
{
    const char *vendor, *currency;
    struct details d;
    if (!(vendor = pj_event_str(event, "", "vendor_id", 1, 64, err)) ||
        !(currency = pj_event_str(event, "", "currency", 3, 3, err)) ||
        read_details(event, out, &d, err))
        return -1;
    /* a relisting (or, by a bug, a redelivery) lands on the same row: applied_events keeps
     * counting so that a double apply shows as applied_events > version */
    struct pj_stmt *st = pj_plan_add(
        out, PJ_UPSERT, "products",
        "INSERT INTO `products%s` (sku, vendor_id, name, description, category, attributes, "
        "currency, status, version, applied_events, listed_at, updated_at, last_event_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'listed', ?, 1, ?, ?, ?) "
        "ON DUPLICATE KEY UPDATE vendor_id=VALUES(vendor_id), name=VALUES(name), "
        "description=VALUES(description), category=VALUES(category), "
        "attributes=VALUES(attributes), currency=VALUES(currency), status='listed', "
        "version=VALUES(version), applied_events=applied_events+1, "
        "listed_at=VALUES(listed_at), updated_at=VALUES(updated_at), "
        "last_event_id=VALUES(last_event_id)",
        suffix);
    PJ_BIND(st, ES_DB_S(sku), ES_DB_S(vendor), ES_DB_S(d.name), ES_DB_S(d.description),
            ES_DB_S(d.category), ES_DB_S(d.attrs), ES_DB_S(currency), ES_DB_I(m->version),
            ES_DB_I(m->occurred_at), ES_DB_I(m->occurred_at), ES_DB_S(m->event_id));
    return 0;
}

static int plan_changed(const char *suffix, const json_t *event, const char *sku,
                        const struct pj_meta *m, pj_plan_t *out, es_err_t *err)
{
    struct details d;
    if (read_details(event, out, &d, err))
        return -1;
    struct pj_stmt *st =
        pj_plan_add(out, PJ_UPDATE, "products",
                    "UPDATE `products%s` SET name=?, description=?, category=?, attributes=?, "
                    "version=?, applied_events=applied_events+1, updated_at=?, last_event_id=? "
                    "WHERE sku=?",
                    suffix);
    PJ_BIND(st, ES_DB_S(d.name), ES_DB_S(d.description), ES_DB_S(d.category), ES_DB_S(d.attrs),
            ES_DB_I(m->version), ES_DB_I(m->occurred_at), ES_DB_S(m->event_id), ES_DB_S(sku));
    st->must_match = true;
    /* merged in a batch as an upsert: sku is products' only unique key, and applied_events
     * always changes an existing row; vendor_id is NOT NULL, so a missing row's insert (undone
     * with the batch) gives it '' */
    pj_stmt_set_upsert(
        out, st,
        "INSERT INTO `products%s` (name, description, category, attributes, version, "
        "updated_at, last_event_id, sku, vendor_id, applied_events) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 1) "
        "ON DUPLICATE KEY UPDATE name=VALUES(name), "
        "description=VALUES(description), category=VALUES(category), "
        "attributes=VALUES(attributes), version=VALUES(version), "
        "applied_events=applied_events+1, updated_at=VALUES(updated_at), "
        "last_event_id=VALUES(last_event_id)",
        suffix);
    return 0;
}

static int plan_delisted(const char *suffix, const char *sku, const struct pj_meta *m,
                         pj_plan_t *out)
{
    struct pj_stmt *st = pj_plan_add(
        out, PJ_UPDATE, "products",
        "UPDATE `products%s` SET status='delisted', version=?, applied_events=applied_events+1, "
        "updated_at=?, last_event_id=? WHERE sku=?",
        suffix);
    PJ_BIND(st, ES_DB_I(m->version), ES_DB_I(m->occurred_at), ES_DB_S(m->event_id), ES_DB_S(sku));
    st->must_match = true;
    pj_stmt_set_upsert(out, st,
                       "INSERT INTO `products%s` (version, updated_at, last_event_id, sku, "
                       "vendor_id, status, applied_events) VALUES (?, ?, ?, ?, '', 'delisted', 1) "
                       "ON DUPLICATE KEY UPDATE status='delisted', version=VALUES(version), "
                       "applied_events=applied_events+1, updated_at=VALUES(updated_at), "
                       "last_event_id=VALUES(last_event_id)",
                       suffix);
    return 0;
}

/* ProductListed: one upsert; ProductDetailsChanged, ProductDelisted: one must-match UPDATE.
 * ES_EINVAL naming the field when the event is malformed. */
static int catalog_products_plan(const char *suffix, const char *event_type, const json_t *event,
                                 pj_plan_t *out, es_err_t *err)
{
    bool listed = strcmp(event_type, "ProductListed") == 0;
    bool changed = strcmp(event_type, "ProductDetailsChanged") == 0;
    bool delisted = strcmp(event_type, "ProductDelisted") == 0;
    if (!listed && !changed && !delisted)
        return 0;
    if (!json_is_object(event))
        return es_set(err, ES_EINVAL, "%s: not a record", event_type);
    struct pj_meta m;
    if (pj_event_meta(event, &m, err))
        return -1;
    const char *sku = pj_event_str(event, "", "sku", 1, 64, err);
    if (!sku)
        return -1;
    pj_plan_set_subject(out, "sku '%s'", sku);
    pj_plan_set_key(out, sku);
    if (listed)
        return plan_listed(suffix, event, sku, &m, out, err);
    if (changed)
        return plan_changed(suffix, event, sku, &m, out, err);
    return plan_delisted(suffix, sku, &m, out);
}

const pj_projection_t catalog_products_projection = PJ_PROJECTION(catalog_products, "catalog", 3);
