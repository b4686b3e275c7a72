/* es_db_async — one MariaDB connection whose calls never block, for an event loop (es_dbpool
 * drives it on the API's h2o loops). Each call starts or continues the work and returns what it
 * waits for: 0 when done, else a mask of ES_DB_WAIT_* (the socket es_db_async_fd() readable or
 * writable, or es_db_async_timeout_ms() passing), after which the loop calls es_db_async_cont
 * with what happened. One query at a time. Not thread-safe: one loop thread.
 *
 * Same rules as es_db (es_db.h): parameters bound as prepared-statement values, integer columns
 * as JSON integers, the rest strings or null, the same error codes. It connects on first use as
 * the context's user; a lost connection (server gone, restarted, killed) is closed, and a query
 * that found it lost on a connection made before it runs once more on a new one (a read is safe
 * to repeat); a failed connect makes the next attempts wait a capped exponential backoff with
 * jitter (es_db_backoff_ms), during which a query fails at once with ES_EIO. Prepared statements
 * are kept per connection. */
#ifndef ES_DB_ASYNC_H
#define ES_DB_ASYNC_H

#include "es_db.h"
#include <stdbool.h>

#define ES_DB_WAIT_READ    1 /* = MYSQL_WAIT_READ, checked in es_db_async.c */
#define ES_DB_WAIT_WRITE   2
#define ES_DB_WAIT_TIMEOUT 8

typedef struct es_db_async es_db_async_t;

/* Not connected yet: the first query connects to eventshop_<context> with these timeouts. */
es_db_async_t *es_db_async_new(const char *context, unsigned connect_s, unsigned io_s);
/* Closes the connection (a query in flight is abandoned). NULL is a no-op. */
void es_db_async_free(es_db_async_t *a);

/* Starts query sql with params; sql, params and their strings are borrowed until it is done.
 * Returns 0 when done (es_db_async_result) or the ES_DB_WAIT_* mask. */
int es_db_async_query(es_db_async_t *a, const char *sql, const es_db_val_t *params, size_t n);
/* Continues after ready (the ES_DB_WAIT_* that happened); same return. */
int es_db_async_cont(es_db_async_t *a, int ready);
/* The done query's rows (new reference), or NULL with err. */
json_t *es_db_async_result(es_db_async_t *a, es_err_t *err);

/* The socket to watch while waiting (-1 when not connected) and the generation of the
 * connection it belongs to (changes with every connect: a watcher of an older one is stale). */
int es_db_async_fd(const es_db_async_t *a);
unsigned es_db_async_generation(const es_db_async_t *a);
/* How long the current wait may last (ES_DB_WAIT_TIMEOUT), in ms. */
unsigned es_db_async_timeout_ms(const es_db_async_t *a);
/* Whether a connection is open (or being opened). */
bool es_db_async_is_connected(const es_db_async_t *a);
/* Milliseconds until the next connect attempt is allowed (0: now). */
long long es_db_async_retry_in_ms(const es_db_async_t *a);

#endif
