#include "users_keys.h"
#include <sodium.h>
#include <string.h>

const char *users_keys_ddl(void)
{
    return "CREATE TABLE IF NOT EXISTS user_keys (user_id CHAR(36) NOT NULL PRIMARY KEY,"
           " key_material VARBINARY(32) NOT NULL, created_at DATETIME NOT NULL) ENGINE=InnoDB";
}

int users_keys_get(es_db_t *db, const char *user_id, unsigned char key[USERS_KEY_BYTES],
                   es_err_t *err)
{
    static const char sql[] = "SELECT LOWER(HEX(key_material)) AS k FROM user_keys "
                              "WHERE user_id = ?";
    es_db_val_t p[] = {ES_DB_S(user_id)};
    json_t *rows = es_db_query(db, sql, p, 1, err);
    if (!rows)
        return -1;
    int rc = 0;
    json_t *k = json_object_get(json_array_get(rows, 0), "k");
    if (json_is_string(k)) {
        rc = users_key_from_hex(json_string_value(k), key) == 0 ? 1 : -1;
        if (rc < 0)
            es_set(err, ES_EINTERNAL, "the key of user '%s' is malformed", user_id);
        /* jansson owns the hex text: overwrite it before it is freed */
        sodium_memzero((char *)json_string_value(k), json_string_length(k));
    }
    json_decref(rows);
    return rc;
}

int users_keys_get_or_make(es_db_t *db, const char *user_id, unsigned char key[USERS_KEY_BYTES],
                           es_err_t *err)
{
    int got = users_keys_get(db, user_id, key, err);
    if (got != 0)
        return got < 0 ? -1 : 0;
    unsigned char fresh[USERS_KEY_BYTES];
    char hex[2 * USERS_KEY_BYTES + 1];
    users_key_new(fresh);
    users_key_to_hex(fresh, hex);
    static const char sql[] = "INSERT IGNORE INTO user_keys (user_id, key_material, created_at) "
                              "VALUES (?, UNHEX(?), UTC_TIMESTAMP())";
    es_db_val_t p[] = {ES_DB_S(user_id), ES_DB_S(hex)};
    int rc = es_db_exec(db, sql, p, 2, NULL, err);
    sodium_memzero(fresh, sizeof fresh);
    sodium_memzero(hex, sizeof hex);
    if (rc)
        return -1;
    got = users_keys_get(db, user_id, key, err); /* whoever inserted first wins */
    if (got == 0)
        es_set(err, ES_EIO, "the key of user '%s' vanished while being made", user_id);
    return got == 1 ? 0 : -1;
}

int users_keys_destroy(es_db_t *db, const char *user_id, es_err_t *err)
{
    static const char sql[] = "DELETE FROM user_keys WHERE user_id = ?";
    es_db_val_t p[] = {ES_DB_S(user_id)};
    return es_db_exec(db, sql, p, 1, NULL, err);
}
