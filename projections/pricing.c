#include "pricing.h"
#include "es_mem.h"
#include <stdlib.h>
#include <string.h>

static const char *const pricing_tables[] = {"prices", "price_rules", "price_history", NULL};

#define BIN "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" /* ids compare byte for byte */

char **pricing_prices_ddl(const char *suffix)
{
    char **ddl = xcalloc(4, sizeof *ddl);
    ddl[0] = xasprintf("CREATE TABLE IF NOT EXISTS `prices%s` ("
                       "sku VARCHAR(64) " BIN " NOT NULL,"
                       "list_amount_minor BIGINT NULL,"
                       "currency CHAR(3) NOT NULL,"
                       "version BIGINT NOT NULL,"
                       "applied_events BIGINT NOT NULL,"
                       "updated_at BIGINT NOT NULL,"
                       "last_event_id CHAR(36) NOT NULL,"
                       "PRIMARY KEY (sku)"
                       ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                       suffix);
    ddl[1] = xasprintf("CREATE TABLE IF NOT EXISTS `price_rules%s` ("
                       "sku VARCHAR(64) " BIN " NOT NULL,"
                       "rule_id VARCHAR(64) " BIN " NOT NULL,"
                       "kind VARCHAR(32) NOT NULL,"
                       "currency CHAR(3) NOT NULL,"
                       "basis_points BIGINT NULL,"
                       "amount_minor BIGINT NULL,"
                       "threshold BIGINT NULL,"
                       "cap_minor BIGINT NULL,"
                       "valid_from BIGINT NULL,"
                       "valid_until BIGINT NULL,"
                       "removed TINYINT NOT NULL DEFAULT 0,"
                       "added_version BIGINT NOT NULL,"
                       "removed_version BIGINT NULL,"
                       "added_at BIGINT NOT NULL,"
                       "removed_at BIGINT NULL,"
                       "PRIMARY KEY (sku, rule_id)"
                       ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                       suffix);
    ddl[2] = xasprintf("CREATE TABLE IF NOT EXISTS `price_history%s` ("
                       "sku VARCHAR(64) " BIN " NOT NULL,"
                       "version BIGINT NOT NULL,"
                       "event_id CHAR(36) NOT NULL,"
                       "event_type VARCHAR(32) NOT NULL,"
                       "occurred_at BIGINT NOT NULL,"
                       "actor VARCHAR(64) NOT NULL,"
                       "amount_minor BIGINT NULL,"
                       "currency CHAR(3) NULL,"
                       "rule_id VARCHAR(64) " BIN " NULL,"
                       "details JSON NOT NULL,"
                       "PRIMARY KEY (sku, version),"
                       "UNIQUE KEY event_id (event_id)"
                       ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                       suffix);
    return ddl;
}

static const char *field_str(const json_t *obj, const char *path, const char *key, size_t min,
                             size_t max, es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (!s || n != json_string_length(v) || n < min || n > max) {
        es_set(err, ES_EINVAL, "%s%s: missing, or not %zu to %zu bytes", path, key, min, max);
        return NULL;
    }
    return s;
}

static int field_int(const json_t *obj, const char *key, long long min, long long *out,
                     es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return es_set(err, ES_EINVAL, "%s: missing or not an integer >= %lld", key, min);
    *out = json_integer_value(v);
    return 0;
}

/* an optional long: null or absent is SQL NULL */
static int opt_int(const json_t *obj, const char *key, es_db_val_t *out, es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = ES_DB_N;
        return 0;
    }
    if (!json_is_integer(v))
        return es_set(err, ES_EINVAL, "%s: not an integer", key);
    *out = ES_DB_I(json_integer_value(v));
    return 0;
}

struct meta {
    const char *event_id, *actor;
    long long version, occurred_at;
};

static int read_meta(const json_t *event, struct meta *m, es_err_t *err)
{
    json_t *md = json_object_get(event, "metadata");
    if (!json_is_object(md))
        return es_set(err, ES_EINVAL, "metadata: missing or not a record");
    if (!(m->event_id = field_str(md, "metadata.", "event_id", 36, 36, err)) ||
        !(m->actor = field_str(md, "metadata.", "actor", 0, 64, err)))
        return -1;
    if (field_int(md, "aggregate_version", 1, &m->version, err) ||
        field_int(md, "occurred_at", 0, &m->occurred_at, err))
        return -1;
    return 0;
}

static struct pricing_stmt *next_stmt(struct pricing_plan *p)
{
    return &p->stmts[p->n++];
}

#define P(st, v) ((st)->params[(st)->n++] = (v))

/* the prices row follows every event: an upsert that counts it (a rule may come first) */
static void plan_prices(struct pricing_plan *plan, const char *suffix, bool sets_list,
                        const char *sku, const json_t *event, const char *currency,
                        const struct meta *m)
{
    struct pricing_stmt *st = next_stmt(plan);
    st->sql = xasprintf(
        "INSERT INTO `prices%s` (sku, list_amount_minor, currency, version, applied_events, "
        "updated_at, last_event_id) VALUES (?, ?, ?, ?, 1, ?, ?) ON DUPLICATE KEY UPDATE %s"
        "version=VALUES(version), applied_events=applied_events+1, "
        "updated_at=VALUES(updated_at), last_event_id=VALUES(last_event_id)",
        suffix,
        sets_list ? "list_amount_minor=VALUES(list_amount_minor), currency=VALUES(currency), "
                  : "");
    P(st, ES_DB_S(sku));
    P(st,
      sets_list ? ES_DB_I(json_integer_value(json_object_get(event, "amount_minor"))) : ES_DB_N);
    P(st, ES_DB_S(currency));
    P(st, ES_DB_I(m->version));
    P(st, ES_DB_I(m->occurred_at));
    P(st, ES_DB_S(m->event_id));
}

int pricing_prices_plan(const char *suffix, const char *event_type, const json_t *event,
                        struct pricing_plan *out, es_err_t *err)
{
    memset(out, 0, sizeof *out);
    bool set = strcmp(event_type, "PriceSet") == 0;
    bool added = strcmp(event_type, "PriceRuleAdded") == 0;
    bool removed = strcmp(event_type, "PriceRuleRemoved") == 0;
    if (!set && !added && !removed)
        return 0;
    if (!json_is_object(event))
        return es_set(err, ES_EINVAL, "%s: not a record", event_type);
    struct meta m;
    if (read_meta(event, &m, err))
        return -1;
    const char *sku = field_str(event, "", "sku", 1, 64, err);
    if (!sku)
        return -1;
    const char *currency = NULL, *rule_id = NULL;
    long long amount = 0;
    if ((set || added) && !(currency = field_str(event, "", "currency", 3, 3, err)))
        return -1;
    if (set && field_int(event, "amount_minor", 0, &amount, err))
        return -1;
    if ((added || removed) && !(rule_id = field_str(event, "", "rule_id", 1, 64, err)))
        return -1;

    if (set || added) {
        plan_prices(out, suffix, set, sku, event, currency, &m);
    } else {
        struct pricing_stmt *st = next_stmt(out);
        st->sql = xasprintf("UPDATE `prices%s` SET version=?, applied_events=applied_events+1, "
                            "updated_at=?, last_event_id=? WHERE sku=?",
                            suffix);
        P(st, ES_DB_I(m.version));
        P(st, ES_DB_I(m.occurred_at));
        P(st, ES_DB_S(m.event_id));
        P(st, ES_DB_S(sku));
        st->must_match = true;
    }

    if (added) {
        const char *kind = field_str(event, "", "kind", 1, 32, err);
        if (!kind)
            return -1;
        struct pricing_stmt *st = next_stmt(out);
        /* a rule id removed earlier may be added again: the row comes back to life */
        st->sql = xasprintf(
            "INSERT INTO `price_rules%s` (sku, rule_id, kind, currency, basis_points, "
            "amount_minor, threshold, cap_minor, valid_from, valid_until, removed, added_version, "
            "removed_version, added_at, removed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, "
            "NULL, ?, NULL) ON DUPLICATE KEY UPDATE kind=VALUES(kind), currency=VALUES(currency), "
            "basis_points=VALUES(basis_points), amount_minor=VALUES(amount_minor), "
            "threshold=VALUES(threshold), cap_minor=VALUES(cap_minor), "
            "valid_from=VALUES(valid_from), valid_until=VALUES(valid_until), removed=0, "
            "added_version=VALUES(added_version), removed_version=NULL, "
            "added_at=VALUES(added_at), removed_at=NULL",
            suffix);
        P(st, ES_DB_S(sku));
        P(st, ES_DB_S(rule_id));
        P(st, ES_DB_S(kind));
        P(st, ES_DB_S(currency));
        static const char *const params[] = {"basis_points", "amount_minor", "threshold",
                                             "cap_minor",    "valid_from",   "valid_until"};
        for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
            if (opt_int(event, params[i], &st->params[st->n++], err))
                return -1;
        P(st, ES_DB_I(m.version));
        P(st, ES_DB_I(m.occurred_at));
    } else if (removed) {
        struct pricing_stmt *st = next_stmt(out);
        st->sql = xasprintf("UPDATE `price_rules%s` SET removed=1, removed_version=?, "
                            "removed_at=? WHERE sku=? AND rule_id=? AND removed=0",
                            suffix);
        P(st, ES_DB_I(m.version));
        P(st, ES_DB_I(m.occurred_at));
        P(st, ES_DB_S(sku));
        P(st, ES_DB_S(rule_id));
        st->must_match = true;
    }

    json_t *details = json_deep_copy(event);
    json_object_del(details, "metadata");
    out->details = json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(details);
    struct pricing_stmt *st = next_stmt(out);
    st->sql = xasprintf("INSERT INTO `price_history%s` (sku, version, event_id, event_type, "
                        "occurred_at, actor, amount_minor, currency, rule_id, details) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        suffix);
    P(st, ES_DB_S(sku));
    P(st, ES_DB_I(m.version));
    P(st, ES_DB_S(m.event_id));
    P(st, ES_DB_S(event_type));
    P(st, ES_DB_I(m.occurred_at));
    P(st, ES_DB_S(m.actor));
    P(st, set ? ES_DB_I(amount) : ES_DB_N);
    P(st, currency ? ES_DB_S(currency) : ES_DB_N);
    P(st, rule_id ? ES_DB_S(rule_id) : ES_DB_N);
    P(st, ES_DB_S(out->details));
    return 0;
}

void pricing_plan_release(struct pricing_plan *p)
{
    for (size_t i = 0; i < PRICING_PLAN_MAX; i++) {
        free(p->stmts[i].sql);
        p->stmts[i].sql = NULL;
        p->stmts[i].n = 0;
    }
    free(p->details);
    p->details = NULL;
    p->n = 0;
}

static int pricing_setup(es_db_t *db, const char *suffix, es_err_t *err)
{
    char **ddl = pricing_prices_ddl(suffix);
    int rc = 0;
    for (size_t i = 0; ddl[i]; i++) {
        if (!rc)
            rc = es_db_exec(db, ddl[i], NULL, 0, NULL, err);
        free(ddl[i]);
    }
    free(ddl);
    return rc;
}

static int pricing_apply(es_db_t *db, const char *suffix, const char *event_type,
                         const json_t *event, es_err_t *err)
{
    struct pricing_plan plan;
    int rc = pricing_prices_plan(suffix, event_type, event, &plan, err);
    for (size_t i = 0; !rc && i < plan.n; i++) {
        long long affected = 0;
        rc = es_db_exec(db, plan.stmts[i].sql, plan.stmts[i].params, plan.stmts[i].n, &affected,
                        err);
        if (!rc && plan.stmts[i].must_match && affected == 0)
            rc = es_set(err, ES_ENOTFOUND, "%s: sku '%s' (rule '%s') is not in the read model",
                        event_type, json_string_value(json_object_get(event, "sku")),
                        json_string_value(json_object_get(event, "rule_id")) ?: "");
    }
    pricing_plan_release(&plan);
    return rc;
}

const pj_projection_t pricing_prices_projection = {
    .name = "pricing_prices",
    .context = "pricing",
    .version = 1,
    .tables = pricing_tables,
    .setup = pricing_setup,
    .apply = pricing_apply,
};
