/* users_keys — the store of per-user keys, outside Kafka: table user_keys of MySQL database
 * eventshop_keys (es_db_open("keys"): user EVENTSHOP_MYSQL_KEYS_USER, who may only SELECT,
 * INSERT and DELETE on that table). A key is made once and never replaced (INSERT IGNORE, then
 * read back: concurrent makers agree on the first), and destroyed by DELETE when its user is
 * forgotten. Key bytes are wiped from every buffer here after use; they are never logged.
 *
 *   CREATE TABLE user_keys (user_id CHAR(36) NOT NULL PRIMARY KEY,
 *                           key_material VARBINARY(32) NOT NULL, created_at DATETIME NOT NULL)
 *
 * The connection (borrowed by every call) belongs to one thread (es_db.h). */
#ifndef USERS_KEYS_H
#define USERS_KEYS_H

#include "es_db.h"
#include "es_err.h"
#include "users_crypto.h"

/* The table's DDL, for the stack script and tests (static string). */
const char *users_keys_ddl(void);
/* user_id's key into key: 1 found, 0 none (destroyed or never made), -1 with err. */
int users_keys_get(es_db_t *db, const char *user_id, unsigned char key[USERS_KEY_BYTES],
                   es_err_t *err);
/* user_id's key, made now if it has none: 0, or -1 with err. */
int users_keys_get_or_make(es_db_t *db, const char *user_id, unsigned char key[USERS_KEY_BYTES],
                           es_err_t *err);
/* Destroys user_id's key (no key is not an error): 0, or -1 with err. */
int users_keys_destroy(es_db_t *db, const char *user_id, es_err_t *err);

#endif
