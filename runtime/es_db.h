/* es_db — a MariaDB/MySQL connection with parameterised statements, for the projector runtime,
 * projections, the API's queries and the subscribers. Parameters are bound as prepared-statement
 * values, never pasted into SQL. Not thread-safe: one connection per thread.
 *
 * A long-lived user opts in to reconnection (es_db_set_reconnect): a connection lost (server gone
 * 2006, lost 2013, a failed connect) is then reopened on the next use, never inside a transaction,
 * with capped exponential backoff and jitter between connect attempts (a call made before the next
 * attempt is due fails at once with ES_EIO: no sleep, no busy loop). A handle whose connection
 * carries session state (GET_LOCK, session variables) must not opt in: it would lose that state
 * silently.
 *
 * es_db_async.h is the non-blocking connection for an event loop, with the same rules. */
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
/* A tool's connection to a database not of a context: as account's user (EVENTSHOP_MYSQL_
 * <ACCOUNT>_USER, default eventshop_<account>; password EVENTSHOP_MYSQL_<ACCOUNT>_PASSWORD(_FILE))
 * to database (NULL: none, e.g. to CREATE DATABASE it). Otherwise as es_db_open. */
es_db_t *es_db_open_as(const char *account, const char *database, es_err_t *err);
void es_db_close(es_db_t *db);

/* Whether the server still answers on this connection (one round trip): 0, or ES_EIO with err
 * when the connection is gone (close it and open another; a reconnecting handle is reopened on
 * its next use). */
int es_db_ping(es_db_t *db, es_err_t *err);

/* Makes db reopen its connection by itself once lost (see the top of this file). dependency (a
 * static string such as "mysql", or NULL) is then kept in es_metrics_set_dependency: up while the
 * connection is, down from its loss or a failed connect until a connect succeeds; declared up now.
 * One handle per dependency name. After a loss:
 *   - outside a transaction, the next call connects first (when the backoff allows) and then
 *     runs; a connection idle for ES_DB_IDLE_PING_MS is pinged before a statement is sent, so a
 *     server restarted meanwhile costs no statement. A statement that failed with the loss is run
 *     again once on a fresh connection only when that is safe: es_db_query (a read) always, and
 *     es_db_exec when the statement was never sent (its prepare failed);
 *   - inside a transaction (es_db_begin .. es_db_commit/es_db_rollback), the transaction is gone:
 *     the failing call and every later one but es_db_rollback return ES_EIO, and es_db_commit ends
 *     it with ES_EIO. The caller rolls back and redoes its work.
 * Fault point (es_fault.h) db.lost_in_tx: a reconnecting handle's connection is shut down just
 * before a statement inside a transaction is sent (a real loss: the server rolls back). */
void es_db_set_reconnect(es_db_t *db, const char *dependency);
/* A reconnecting handle (es_db_set_reconnect, no dependency) to database eventshop_<context>, with
 * es_db_open_timeout's timeouts, that is not connected yet: its first call connects, and a server
 * away then is tried again with the backoff of a lost connection (a call made before the next
 * attempt is due fails at once with ES_EIO). For a long-lived reader that must come up, and stay
 * up, whether or not the server is there. Never NULL; es_db_close frees it. */
es_db_t *es_db_open_reconnecting(const char *context, unsigned connect_s, unsigned io_s);

/* For a reconnecting handle's idle loop (readiness): 0 without I/O when a round trip succeeded
 * within the last idle_ms; else connects when down (if the backoff allows) and pings. 0, or ES_EIO
 * with err when the server cannot be reached (the dependency is down then). */
int es_db_check(es_db_t *db, long idle_ms, es_err_t *err);

/* The wait before connect attempt number failures + 1, after failures consecutive failed
 * attempts: 0 for none, then ES_DB_BACKOFF_BASE_MS doubled per failure and capped at
 * ES_DB_BACKOFF_MAX_MS, of which the upper half is drawn at random (jitter: processes that lost
 * the same server do not all come back at once). *rng is the random state (any non-zero seed,
 * updated). Pure: no clock, no I/O. */
#define ES_DB_BACKOFF_BASE_MS 100
#define ES_DB_BACKOFF_MAX_MS  5000
#define ES_DB_IDLE_PING_MS    2000
long es_db_backoff_ms(unsigned failures, unsigned *rng);

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
