#include "pricing.h"
#include "pj_event.h"
#include <stdbool.h>
#include <string.h>

static const char *const pricing_prices_tables[] = {"prices", "price_rules", "price_history", NULL};

#define BIN "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" /* ids compare byte for byte */

/* The three tables' CREATE TABLE IF NOT EXISTS, in the order above. */
static void pricing_prices_ddl(const char *suffix, pj_plan_t *out)
{
    pj_plan_add(out, PJ_DDL, "prices",
                "CREATE TABLE IF NOT EXISTS `prices%s` ("
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
    pj_plan_add(out, PJ_DDL, "price_rules",
                "CREATE TABLE IF NOT EXISTS `price_rules%s` ("
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
    pj_plan_add(out, PJ_DDL, "price_history",
                "CREATE TABLE IF NOT EXISTS `price_history%s` ("
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

/* What every pricing event carries, read and checked once. */
struct price_event {
    const char *type;
    bool set, added, removed;
    struct pj_meta m;
    const char *sku;
    const char *currency; /* PriceSet, PriceRuleAdded; else NULL */
    const char *rule_id;  /* PriceRuleAdded, PriceRuleRemoved; else NULL */
    long long amount;     /* PriceSet */
};

static int read_event(const json_t *event, struct price_event *e, es_err_t *err)
{
    if (!json_is_object(event))
        return es_set(err, ES_EINVAL, "%s: not a record", e->type);
    if (pj_event_meta(event, &e->m, err) ||
        !(e->m.actor =
              pj_event_str(json_object_get(event, "metadata"), "metadata.", "actor", 0, 64, err)) ||
        !(e->sku = pj_event_str(event, "", "sku", 1, 64, err)))
        return -1;
    if ((e->set || e->added) && !(e->currency = pj_event_str(event, "", "currency", 3, 3, err)))
        return -1;
    if (e->set && pj_event_int(event, "", "amount_minor", 0, &e->amount, err))
        return -1;
    if ((e->added || e->removed) && !(e->rule_id = pj_event_str(event, "", "rule_id", 1, 64, err)))
        return -1;
    return 0;
}

/* The prices row follows every event: an upsert that counts it (a rule may come first), or for a
 * removed rule an UPDATE of the row its rule was added to. */
static void plan_prices(const char *suffix, const struct price_event *e, pj_plan_t *out)
{
    struct pj_stmt *st;
    if (e->removed) {
        st = pj_plan_add(out, PJ_UPDATE, "prices",
                         "UPDATE `prices%s` SET version=?, applied_events=applied_events+1, "
                         "updated_at=?, last_event_id=? WHERE sku=?",
                         suffix);
        PJ_BIND(st, ES_DB_I(e->m.version), ES_DB_I(e->m.occurred_at), ES_DB_S(e->m.event_id),
                ES_DB_S(e->sku));
        st->must_match = true;
        return;
    }
    st = pj_plan_add(
        out, PJ_UPSERT, "prices",
        "INSERT INTO `prices%s` (sku, list_amount_minor, currency, version, applied_events, "
        "updated_at, last_event_id) VALUES (?, ?, ?, ?, 1, ?, ?) ON DUPLICATE KEY UPDATE %s"
        "version=VALUES(version), applied_events=applied_events+1, "
        "updated_at=VALUES(updated_at), last_event_id=VALUES(last_event_id)",
        suffix,
        e->set ? "list_amount_minor=VALUES(list_amount_minor), currency=VALUES(currency), " : "");
    PJ_BIND(st, ES_DB_S(e->sku), e->set ? ES_DB_I(e->amount) : ES_DB_N, ES_DB_S(e->currency),
            ES_DB_I(e->m.version), ES_DB_I(e->m.occurred_at), ES_DB_S(e->m.event_id));
}

/* PriceRuleAdded: the rule's row, brought back to life when its id was removed earlier. */
static int plan_rule_added(const char *suffix, const json_t *event, const struct price_event *e,
                           pj_plan_t *out, es_err_t *err)
{
    static const char *const params[] = {"basis_points", "amount_minor", "threshold",
                                         "cap_minor",    "valid_from",   "valid_until"};
    es_db_val_t opt[sizeof params / sizeof params[0]];
    const char *kind = pj_event_str(event, "", "kind", 1, 32, err);
    if (!kind)
        return -1;
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if (opt_int(event, params[i], &opt[i], err))
            return -1;
    struct pj_stmt *st = pj_plan_add(
        out, PJ_UPSERT, "price_rules",
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
    PJ_BIND(st, ES_DB_S(e->sku), ES_DB_S(e->rule_id), ES_DB_S(kind), ES_DB_S(e->currency));
    pj_stmt_bind(st, opt, sizeof opt / sizeof opt[0]);
    PJ_BIND(st, ES_DB_I(e->m.version), ES_DB_I(e->m.occurred_at));
    return 0;
}

/* PriceRuleRemoved: the live rule must be there. */
static void plan_rule_removed(const char *suffix, const struct price_event *e, pj_plan_t *out)
{
    struct pj_stmt *st = pj_plan_add(out, PJ_UPDATE, "price_rules",
                                     "UPDATE `price_rules%s` SET removed=1, removed_version=?, "
                                     "removed_at=? WHERE sku=? AND rule_id=? AND removed=0",
                                     suffix);
    PJ_BIND(st, ES_DB_I(e->m.version), ES_DB_I(e->m.occurred_at), ES_DB_S(e->sku),
            ES_DB_S(e->rule_id));
    st->must_match = true;
}

/* One history row per event, with the event without its metadata as details. */
static void plan_history(const char *suffix, const json_t *event, const struct price_event *e,
                         pj_plan_t *out)
{
    json_t *copy = json_deep_copy(event);
    json_object_del(copy, "metadata");
    const char *details = pj_plan_dump(out, copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    struct pj_stmt *st =
        pj_plan_add(out, PJ_INSERT, "price_history",
                    "INSERT INTO `price_history%s` (sku, version, event_id, event_type, "
                    "occurred_at, actor, amount_minor, currency, rule_id, details) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    suffix);
    PJ_BIND(st, ES_DB_S(e->sku), ES_DB_I(e->m.version), ES_DB_S(e->m.event_id), ES_DB_S(e->type),
            ES_DB_I(e->m.occurred_at), ES_DB_S(e->m.actor), e->set ? ES_DB_I(e->amount) : ES_DB_N,
            e->currency ? ES_DB_S(e->currency) : ES_DB_N,
            e->rule_id ? ES_DB_S(e->rule_id) : ES_DB_N, ES_DB_S(details));
}

/* Every event: the prices row (an upsert, or a must-match UPDATE for PriceRuleRemoved), then for a
 * rule its price_rules row (an upsert, or a must-match UPDATE of the live rule), then one
 * price_history row. ES_EINVAL naming the field when the event is malformed. */
static int pricing_prices_plan(const char *suffix, const char *event_type, const json_t *event,
                               pj_plan_t *out, es_err_t *err)
{
    struct price_event e = {.type = event_type,
                            .set = strcmp(event_type, "PriceSet") == 0,
                            .added = strcmp(event_type, "PriceRuleAdded") == 0,
                            .removed = strcmp(event_type, "PriceRuleRemoved") == 0};
    if (!e.set && !e.added && !e.removed)
        return 0;
    if (read_event(event, &e, err))
        return -1;
    pj_plan_set_subject(out, "sku '%s' (rule '%s')", e.sku, e.rule_id ? e.rule_id : "");
    pj_plan_set_key(out, e.sku);
    plan_prices(suffix, &e, out);
    if (e.added && plan_rule_added(suffix, event, &e, out, err))
        return -1;
    if (e.removed)
        plan_rule_removed(suffix, &e, out);
    plan_history(suffix, event, &e, out);
    return 0;
}

const pj_projection_t pricing_prices_projection = PJ_PROJECTION(pricing_prices, "pricing", 2);
