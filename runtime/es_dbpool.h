/* es_dbpool — a few non-blocking MariaDB connections (es_db_async) of one context on one HTTP
 * loop thread, driven by that loop (es_http_fd), so that a request whose query is in flight
 * holds no thread: the loop serves other requests meanwhile and a slow query delays only its
 * own request. A query goes to an idle connection (made on first use, up to the pool's size) or
 * waits in a FIFO queue for one (point reads by key, es_dbpool_lookup, may batch). Made, used
 * and freed on one loop thread. */
#ifndef ES_DBPOOL_H
#define ES_DBPOOL_H

#include "es_db.h"
#include "es_http.h"

typedef struct es_dbpool es_dbpool_t;

/* size connections at most (>= 1) to eventshop_<context> with these timeouts; none is opened
 * before a query needs it. loop is borrowed (es_http_loop_of). */
es_dbpool_t *es_dbpool_new(es_http_loop_t *loop, const char *context, size_t size,
                           unsigned connect_s, unsigned io_s);
/* Closes every connection; queries in flight or queued are dropped without their callback (a
 * server stopping: their requests are gone or never answered), their free_arg is called. */
void es_dbpool_free(es_dbpool_t *p);

/* Called on r's loop thread when a query is done: rows (new reference, the callee owns it), or
 * NULL with err (es_db's codes: ES_EIO when the database is unreachable). */
typedef void (*es_dbpool_fn)(es_http_req_t *r, void *arg, json_t *rows, const es_err_t *err);

/* Runs sql with params (copied) for request r, which is held (es_http_hold) until fn has run;
 * fn is not called if r goes away first. free_arg(arg) (may be NULL) is called once in every
 * case, after fn. */
void es_dbpool_query(es_dbpool_t *p, es_http_req_t *r, const char *sql, const es_db_val_t *params,
                     size_t n, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg));

/* Like es_dbpool_query of "<prefix> = ?" with key, for a point read under load: prefix is a
 * "SELECT <columns> FROM <table> WHERE <key_column>" whose columns include key_column, a
 * string column that compares bytes (a binary collation, no trailing spaces in keys). One
 * statement of a prefix runs at a time on a pool: the lookups of that prefix that come while it
 * runs wait, and are asked together in the next statement (LOOKUP_MOST at most); each gets the
 * rows whose key_column equals its key. prefix and key_column are borrowed, not copied (a
 * lookup costs no copy of them): they must stay valid and unchanged until free_arg(arg) has been
 * called (the end of the lookup, or of the pool), e.g. static strings, as every caller's are;
 * key is copied. Metrics eventshop_db_lookups_total and eventshop_db_lookup_statements_total,
 * and eventshop_db_queued (ops waiting), per context. */
void es_dbpool_lookup(es_dbpool_t *p, es_http_req_t *r, const char *prefix, const char *key_column,
                      const char *key, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg));

/* Milliseconds until the pool may connect again after failed attempts (0: now), for a
 * Retry-After. */
long long es_dbpool_retry_in_ms(const es_dbpool_t *p);

#endif
