/* es_db — a MariaDB/MySQL connection with parameterised statements, for the projector runtime,
 * projections and the API's queries. Parameters are bound as prepared-statement values, never
 * pasted into SQL. Not thread-safe: one connection per thread. */
#ifndef ES_DB_H
#define ES_DB_H

#include "es_err.h"
#include <jansson.h>
#include <stddef.h>

typedef struct es_db es_db_t;

typedef enum { ES_DB_NULL, ES_DB_STR, ES_DB_INT } es_db_type_t;
typedef struct es_db_val {
    es_db_type_t type;
    const char *s; /* ES_DB_STR: borrowed, NUL-terminated */
    long long i;   /* ES_DB_INT */
} es_db_val_t;
#define ES_DB_S(x) ((es_db_val_t){.type = ES_DB_STR, .s = (x)})
#define ES_DB_I(x) ((es_db_val_t){.type = ES_DB_INT, .i = (x)})
#define ES_DB_N    ((es_db_val_t){.type = ES_DB_NULL})

/* Connects to database eventshop_<context> as that context's least-privilege user:
 * EVENTSHOP_MYSQL_HOST (127.0.0.1), EVENTSHOP_MYSQL_PORT (3306), EVENTSHOP_MYSQL_SOCKET (unset),
 * user EVENTSHOP_MYSQL_<CONTEXT>_USER (eventshop_<context>), password from the secret
 * EVENTSHOP_MYSQL_<CONTEXT>_PASSWORD(_FILE). utf8mb4, autocommit on, reconnect off. */
es_db_t *es_db_open(const char *context, es_err_t *err);
/* es_db_open with other timeouts (es_db_open: connect 5 s, read and write 60 s, above the 30 s
 * a projector may wait in GET_LOCK). A server that hangs (not gone: a SIGSTOP, a full disk)
 * blocks a call that long: request paths use short ones. */
es_db_t *es_db_open_timeout(const char *context, unsigned connect_s, unsigned io_s, es_err_t *err);
void es_db_close(es_db_t *db);

/* Whether the server still answers on this connection (one round trip, no reconnect):
 * 0, or ES_EIO with err when the connection is gone (close it and open another). */
int es_db_ping(es_db_t *db, es_err_t *err);

int es_db_begin(es_db_t *db, es_err_t *err);
int es_db_commit(es_db_t *db, es_err_t *err);
int es_db_rollback(es_db_t *db); /* best effort */

/* Runs a statement with '?' placeholders. *affected (may be NULL) gets the affected rows.
 * A duplicate key is ES_ECONFLICT; a lost connection ES_EIO; other SQL errors ES_EINTERNAL. */
int es_db_exec(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
               long long *affected, es_err_t *err);
/* Runs a query; returns a new JSON array with one object per row, column name -> string, integer
 * (for integer columns) or null. NULL with err on failure. */
json_t *es_db_query(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
                    es_err_t *err);

#endif
