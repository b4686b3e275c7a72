#include "users.h"
#include "dm_json.h"
#include "es_mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const users_accounts_tables[] = {"users", NULL};

char *users_accounts_ddl(const char *suffix)
{
    char *sql = NULL;
    sql = xasprintf("CREATE TABLE IF NOT EXISTS users%s ("
                    " user_id CHAR(36) NOT NULL PRIMARY KEY,"
                    " email_index CHAR(64) NULL,"
                    " role VARCHAR(16) NOT NULL,"
                    " status VARCHAR(16) NOT NULL,"
                    " vendor_id CHAR(36) NULL,"
                    " crypto VARCHAR(40) NULL,"
                    " email_enc TEXT NULL, name_enc TEXT NULL, phone_enc TEXT NULL,"
                    " password_hash_enc TEXT NULL,"
                    " registered_at BIGINT NULL,"
                    " version BIGINT NOT NULL,"
                    " applied_events BIGINT NOT NULL DEFAULT 0,"
                    " UNIQUE KEY users%s_email_index (email_index)"
                    ") ENGINE=InnoDB",
                    suffix, suffix);
    return sql;
}

void users_stmt_release(struct users_stmt *s)
{
    free(s->sql);
    s->sql = NULL;
    s->n = 0;
}

static es_db_val_t opt(const json_t *event, const char *key)
{
    const char *s = dm_str(event, key);
    return s ? ES_DB_S(s) : ES_DB_N;
}

int users_accounts_plan(const char *suffix, const char *event_type, const json_t *event,
                        struct users_stmt *out, es_err_t *err)
{
    memset(out, 0, sizeof *out);
    const json_t *meta = json_object_get(event, "metadata");
    const json_t *version = json_object_get(meta, "aggregate_version");
    const char *user_id = dm_str(event, "user_id");
    if (!user_id)
        return es_set(err, ES_EINVAL, "%s: user_id is missing", event_type);
    if (!json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: metadata.aggregate_version is missing", event_type);
    json_int_t v = json_integer_value(version);
    es_db_val_t *p = out->params;

    if (strcmp(event_type, "UserRegistered") == 0) {
        const char *index = dm_str(event, "email_index");
        const char *role = dm_str(event, "role");
        const char *status = dm_str(event, "status");
        if (!index || !role || !status || !dm_str(event, "email_enc") ||
            !dm_str(event, "password_hash_enc"))
            return es_set(err, ES_EINVAL, "UserRegistered: user '%s' lacks a field", user_id);
        /* an upsert: a forgotten e-mail registers again on the same user id */
        out->sql =
            xasprintf("INSERT INTO users%s (user_id, email_index, role, status, vendor_id, crypto,"
                      " email_enc, name_enc, phone_enc, password_hash_enc, registered_at, version,"
                      " applied_events) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, 1)"
                      " ON DUPLICATE KEY UPDATE email_index = VALUES(email_index),"
                      " role = VALUES(role), status = VALUES(status), vendor_id = NULL,"
                      " crypto = VALUES(crypto), email_enc = VALUES(email_enc),"
                      " name_enc = VALUES(name_enc), phone_enc = VALUES(phone_enc),"
                      " password_hash_enc = VALUES(password_hash_enc),"
                      " registered_at = VALUES(registered_at), version = VALUES(version),"
                      " applied_events = applied_events + 1",
                      suffix);
        p[out->n++] = ES_DB_S(user_id);
        p[out->n++] = ES_DB_S(index);
        p[out->n++] = ES_DB_S(role);
        p[out->n++] = ES_DB_S(status);
        p[out->n++] = opt(event, "crypto");
        p[out->n++] = opt(event, "email_enc");
        p[out->n++] = opt(event, "name_enc");
        p[out->n++] = opt(event, "phone_enc");
        p[out->n++] = opt(event, "password_hash_enc");
        const json_t *at = json_object_get(meta, "occurred_at");
        p[out->n++] = json_is_integer(at) ? ES_DB_I(json_integer_value(at)) : ES_DB_N;
        p[out->n++] = ES_DB_I(v);
        return 0;
    }
    if (strcmp(event_type, "VendorApproved") == 0) {
        const char *vendor = dm_str(event, "vendor_id");
        if (!vendor)
            return es_set(err, ES_EINVAL, "VendorApproved: user '%s' lacks vendor_id", user_id);
        out->sql = xasprintf("UPDATE users%s SET status = 'active', vendor_id = ?, version = ?,"
                             " applied_events = applied_events + 1 WHERE user_id = ?",
                             suffix);
        p[out->n++] = ES_DB_S(vendor);
        p[out->n++] = ES_DB_I(v);
        p[out->n++] = ES_DB_S(user_id);
        out->must_match = true;
        return 0;
    }
    if (strcmp(event_type, "UserRoleChanged") == 0) {
        const char *role = dm_str(event, "role");
        const char *status = dm_str(event, "status");
        if (!role || !status)
            return es_set(err, ES_EINVAL, "UserRoleChanged: user '%s' lacks a field", user_id);
        /* a vendor id is earned by approval: any role change drops it */
        out->sql =
            xasprintf("UPDATE users%s SET role = ?, status = ?, vendor_id = NULL, version = ?,"
                      " applied_events = applied_events + 1 WHERE user_id = ?",
                      suffix);
        p[out->n++] = ES_DB_S(role);
        p[out->n++] = ES_DB_S(status);
        p[out->n++] = ES_DB_I(v);
        p[out->n++] = ES_DB_S(user_id);
        out->must_match = true;
        return 0;
    }
    if (strcmp(event_type, "UserForgotten") == 0) {
        out->sql = xasprintf(
            "UPDATE users%s SET status = 'forgotten', email_index = NULL, vendor_id = NULL,"
            " email_enc = NULL, name_enc = NULL, phone_enc = NULL,"
            " password_hash_enc = NULL, version = ?, applied_events = applied_events + 1"
            " WHERE user_id = ?",
            suffix);
        p[out->n++] = ES_DB_I(v);
        p[out->n++] = ES_DB_S(user_id);
        out->must_match = true;
        return 0;
    }
    return 0; /* not ours: nothing to do */
}

static int users_accounts_setup(es_db_t *db, const char *suffix, es_err_t *err)
{
    char *sql = users_accounts_ddl(suffix);
    int rc = es_db_exec(db, sql, NULL, 0, NULL, err);
    free(sql);
    return rc;
}

static int users_accounts_apply(es_db_t *db, const char *suffix, const char *event_type,
                                const json_t *event, es_err_t *err)
{
    struct users_stmt st;
    long long affected = 0;
    int rc = users_accounts_plan(suffix, event_type, event, &st, err);
    if (rc || !st.sql)
        goto out;
    rc = es_db_exec(db, st.sql, st.params, st.n, &affected, err);
    if (!rc && st.must_match && affected == 0)
        rc = es_set(err, ES_ENOTFOUND, "%s: user '%s' is not in the read model", event_type,
                    json_string_value(json_object_get(event, "user_id")));
out:
    users_stmt_release(&st);
    return rc;
}

const pj_projection_t users_accounts_projection = {
    .name = "users_accounts",
    .context = "users",
    .version = 1,
    .tables = users_accounts_tables,
    .setup = users_accounts_setup,
    .apply = users_accounts_apply,
};
