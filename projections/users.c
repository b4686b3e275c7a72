#include "users.h"
#include "dm_json.h"
#include <string.h>

static const char *const users_accounts_tables[] = {"users", NULL};

static void users_accounts_ddl(const char *suffix, pj_plan_t *out)
{
    pj_plan_add(out, PJ_DDL, "users",
                "CREATE TABLE IF NOT EXISTS users%s ("
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
}

static es_db_val_t opt(const json_t *event, const char *key)
{
    const char *s = dm_str(event, key);
    return s ? ES_DB_S(s) : ES_DB_N;
}

static int plan_registered(const char *suffix, const json_t *event, const char *user_id,
                           json_int_t v, pj_plan_t *out, es_err_t *err)
{
    const char *index = dm_str(event, "email_index");
    const char *role = dm_str(event, "role");
    const char *status = dm_str(event, "status");
    if (!index || !role || !status || !dm_str(event, "email_enc") ||
        !dm_str(event, "password_hash_enc"))
        return es_set(err, ES_EINVAL, "UserRegistered: user '%s' lacks a field", user_id);
    /* an upsert: a forgotten e-mail registers again on the same user id */
    struct pj_stmt *st =
        pj_plan_add(out, PJ_UPSERT, "users",
                    "INSERT INTO users%s (user_id, email_index, role, status, vendor_id, crypto,"
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
    const json_t *at = json_object_get(json_object_get(event, "metadata"), "occurred_at");
    PJ_BIND(st, ES_DB_S(user_id), ES_DB_S(index), ES_DB_S(role), ES_DB_S(status),
            opt(event, "crypto"), opt(event, "email_enc"), opt(event, "name_enc"),
            opt(event, "phone_enc"), opt(event, "password_hash_enc"),
            json_is_integer(at) ? ES_DB_I(json_integer_value(at)) : ES_DB_N, ES_DB_I(v));
    return 0;
}

/* UserRegistered: one upsert; VendorApproved, UserRoleChanged, UserForgotten: one must-match
 * UPDATE. ES_EINVAL when the event lacks a field. */
static int users_accounts_plan(const char *suffix, const char *event_type, const json_t *event,
                               pj_plan_t *out, es_err_t *err)
{
    const json_t *version =
        json_object_get(json_object_get(event, "metadata"), "aggregate_version");
    const char *user_id = dm_str(event, "user_id");
    if (!user_id)
        return es_set(err, ES_EINVAL, "%s: user_id is missing", event_type);
    if (!json_is_integer(version))
        return es_set(err, ES_EINVAL, "%s: metadata.aggregate_version is missing", event_type);
    json_int_t v = json_integer_value(version);
    pj_plan_set_subject(out, "user '%s'", user_id);

    if (strcmp(event_type, "UserRegistered") == 0)
        return plan_registered(suffix, event, user_id, v, out, err);
    struct pj_stmt *st = NULL;
    if (strcmp(event_type, "VendorApproved") == 0) {
        const char *vendor = dm_str(event, "vendor_id");
        if (!vendor)
            return es_set(err, ES_EINVAL, "VendorApproved: user '%s' lacks vendor_id", user_id);
        st = pj_plan_add(out, PJ_UPDATE, "users",
                         "UPDATE users%s SET status = 'active', vendor_id = ?, version = ?,"
                         " applied_events = applied_events + 1 WHERE user_id = ?",
                         suffix);
        PJ_BIND(st, ES_DB_S(vendor));
    } else if (strcmp(event_type, "UserRoleChanged") == 0) {
        const char *role = dm_str(event, "role");
        const char *status = dm_str(event, "status");
        if (!role || !status)
            return es_set(err, ES_EINVAL, "UserRoleChanged: user '%s' lacks a field", user_id);
        /* a vendor id is earned by approval: any role change drops it */
        st = pj_plan_add(out, PJ_UPDATE, "users",
                         "UPDATE users%s SET role = ?, status = ?, vendor_id = NULL, version = ?,"
                         " applied_events = applied_events + 1 WHERE user_id = ?",
                         suffix);
        PJ_BIND(st, ES_DB_S(role), ES_DB_S(status));
    } else if (strcmp(event_type, "UserForgotten") == 0) {
        st = pj_plan_add(
            out, PJ_UPDATE, "users",
            "UPDATE users%s SET status = 'forgotten', email_index = NULL, vendor_id = NULL,"
            " email_enc = NULL, name_enc = NULL, phone_enc = NULL,"
            " password_hash_enc = NULL, version = ?, applied_events = applied_events + 1"
            " WHERE user_id = ?",
            suffix);
    } else {
        return 0; /* not ours: nothing to do */
    }
    /* every UPDATE ends with the version and the user's key */
    PJ_BIND(st, ES_DB_I(v), ES_DB_S(user_id));
    st->must_match = true;
    return 0;
}

const pj_projection_t users_accounts_projection = PJ_PROJECTION(users_accounts, "users", 2);
