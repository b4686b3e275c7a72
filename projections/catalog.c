#include "catalog.h"
#include "es_mem.h"
#include <stdlib.h>
#include <string.h>

static const char *const catalog_products_tables[] = {"products", NULL};

char *catalog_products_ddl(const char *suffix)
{
    /* sku and vendor_id compare byte for byte, as the decider does */
    return xasprintf("CREATE TABLE IF NOT EXISTS `products%s` ("
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
                     "KEY category_sku (category, sku)"
                     ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                     suffix);
}

/* Characters, not bytes: VARCHAR(n) counts characters. jansson strings are valid UTF-8. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static const char *field_str(const json_t *obj, const char *path, const char *key, size_t min,
                             size_t max, es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        es_set(err, ES_EINVAL, "%s%s: missing or not a string", path, key);
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = utf8_chars(s);
    if (strlen(s) != json_string_length(v) || n < min || n > max) {
        es_set(err, ES_EINVAL, "%s%s: '%.40s' must have %zu to %zu characters", path, key, s, min,
               max);
        return NULL;
    }
    return s;
}

static int field_int(const json_t *obj, const char *path, const char *key, long long min,
                     long long *out, es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return es_set(err, ES_EINVAL, "%s%s: missing or not an integer >= %lld", path, key, min);
    *out = json_integer_value(v);
    return 0;
}

static int attrs_text(const json_t *event, char **out, es_err_t *err)
{
    json_t *a = json_object_get(event, "attributes");
    if (!a) {
        *out = xstrdup("{}");
        return 0;
    }
    const char *k;
    json_t *v;
    if (!json_is_object(a))
        return es_set(err, ES_EINVAL, "attributes: not a map");
    json_object_foreach(a, k, v)
    {
        if (!json_is_string(v))
            return es_set(err, ES_EINVAL, "attributes.%s: not a string", k);
    }
    *out = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    return 0;
}

struct meta {
    const char *event_id;
    long long version, occurred_at;
};

static int read_meta(const json_t *event, struct meta *m, es_err_t *err)
{
    json_t *md = json_object_get(event, "metadata");
    if (!json_is_object(md))
        return es_set(err, ES_EINVAL, "metadata: missing or not a record");
    if (!(m->event_id = field_str(md, "metadata.", "event_id", 36, 36, err)))
        return -1;
    if (field_int(md, "metadata.", "aggregate_version", 1, &m->version, err) ||
        field_int(md, "metadata.", "occurred_at", 0, &m->occurred_at, err))
        return -1;
    return 0;
}

#define P(v) (out->params[out->n++] = (v))

int catalog_products_plan(const char *suffix, const char *event_type, const json_t *event,
                          struct catalog_stmt *out, es_err_t *err)
{
    memset(out, 0, sizeof *out);
    bool listed = strcmp(event_type, "ProductListed") == 0;
    bool changed = strcmp(event_type, "ProductDetailsChanged") == 0;
    bool delisted = strcmp(event_type, "ProductDelisted") == 0;
    if (!listed && !changed && !delisted)
        return 0;
    if (!json_is_object(event))
        return es_set(err, ES_EINVAL, "%s: not a record", event_type);
    struct meta m;
    if (read_meta(event, &m, err))
        return -1;
    const char *sku = field_str(event, "", "sku", 1, 64, err);
    if (!sku)
        return -1;
    if (delisted) {
        out->sql = xasprintf("UPDATE `products%s` SET status='delisted', version=?, "
                             "applied_events=applied_events+1, updated_at=?, last_event_id=? "
                             "WHERE sku=?",
                             suffix);
        P(ES_DB_I(m.version));
        P(ES_DB_I(m.occurred_at));
        P(ES_DB_S(m.event_id));
        P(ES_DB_S(sku));
        out->must_match = true;
        return 0;
    }
    const char *vendor = NULL, *currency = NULL;
    if (listed && (!(vendor = field_str(event, "", "vendor_id", 1, 64, err)) ||
                   !(currency = field_str(event, "", "currency", 3, 3, err))))
        return -1;
    const char *name = field_str(event, "", "name", 0, 200, err);
    const char *category = field_str(event, "", "category", 0, 100, err);
    if (!name || !category)
        return -1;
    const char *description = "";
    if (json_object_get(event, "description") &&
        !(description = field_str(event, "", "description", 0, 65535, err)))
        return -1;
    if (strlen(description) > 65535) /* TEXT holds 64 KiB */
        return es_set(err, ES_EINVAL, "description: over 65535 bytes");
    if (attrs_text(event, &out->attrs, err))
        return -1;
    if (listed) {
        /* a relisting (or, by a bug, a redelivery) lands on the same row: applied_events keeps
         * counting so that a double apply shows as applied_events > version */
        out->sql = xasprintf(
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
        P(ES_DB_S(sku));
        P(ES_DB_S(vendor));
        P(ES_DB_S(name));
        P(ES_DB_S(description));
        P(ES_DB_S(category));
        P(ES_DB_S(out->attrs));
        P(ES_DB_S(currency));
        P(ES_DB_I(m.version));
        P(ES_DB_I(m.occurred_at));
        P(ES_DB_I(m.occurred_at));
        P(ES_DB_S(m.event_id));
        return 0;
    }
    out->sql = xasprintf("UPDATE `products%s` SET name=?, description=?, category=?, "
                         "attributes=?, version=?, applied_events=applied_events+1, "
                         "updated_at=?, last_event_id=? WHERE sku=?",
                         suffix);
    P(ES_DB_S(name));
    P(ES_DB_S(description));
    P(ES_DB_S(category));
    P(ES_DB_S(out->attrs));
    P(ES_DB_I(m.version));
    P(ES_DB_I(m.occurred_at));
    P(ES_DB_S(m.event_id));
    P(ES_DB_S(sku));
    out->must_match = true;
    return 0;
}

void catalog_stmt_release(struct catalog_stmt *s)
{
    free(s->sql);
    free(s->attrs);
    s->sql = s->attrs = NULL;
    s->n = 0;
}

static int catalog_products_setup(es_db_t *db, const char *suffix, es_err_t *err)
{
    char *sql = catalog_products_ddl(suffix);
    int rc = es_db_exec(db, sql, NULL, 0, NULL, err);
    free(sql);
    return rc;
}

static int catalog_products_apply(es_db_t *db, const char *suffix, const char *event_type,
                                  const json_t *event, es_err_t *err)
{
    struct catalog_stmt st;
    long long affected = 0;
    int rc = catalog_products_plan(suffix, event_type, event, &st, err);
    if (rc || !st.sql)
        goto out;
    rc = es_db_exec(db, st.sql, st.params, st.n, &affected, err);
    if (!rc && st.must_match && affected == 0)
        rc = es_set(err, ES_ENOTFOUND, "%s: sku '%s' is not in the read model", event_type,
                    json_string_value(json_object_get(event, "sku")));
out:
    catalog_stmt_release(&st);
    return rc;
}

const pj_projection_t catalog_products_projection = {
    .name = "catalog_products",
    .context = "catalog",
    .version = 1,
    .tables = catalog_products_tables,
    .setup = catalog_products_setup,
    .apply = catalog_products_apply,
};
