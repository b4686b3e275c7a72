/* es_db_async — see es_db_async.h. A query is a small state machine over libmariadb's
 * non-blocking calls: connect (when not connected), prepare (when not cached), execute, store;
 * the stored rows are then fetched from memory with the blocking calls, which do no I/O there. */
#include "es_db_async.h"
#include "es_db_int.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(ES_DB_WAIT_READ == MYSQL_WAIT_READ && ES_DB_WAIT_WRITE == MYSQL_WAIT_WRITE &&
                   ES_DB_WAIT_TIMEOUT == MYSQL_WAIT_TIMEOUT,
               "ES_DB_WAIT_* are libmariadb's MYSQL_WAIT_*");

#define ASYNC_STMT_CACHE 32

enum async_state { S_IDLE, S_CONNECT, S_PREPARE, S_EXECUTE, S_STORE };

struct async_stmt {
    char *sql;
    MYSQL_STMT *stmt;
};

struct es_db_async {
    char *context, *name;
    unsigned connect_s, io_s;
    MYSQL *my; /* NULL when not connected */
    unsigned gen;
    struct async_stmt cache[ASYNC_STMT_CACHE];
    size_t ncached, evict;
    unsigned failures;  /* consecutive failed connects */
    long long retry_at; /* monotonic ms: no connect attempt before */
    unsigned rng;
    /* the query under way */
    enum async_state state;
    const char *sql;
    const es_db_val_t *params;
    size_t n;
    MYSQL_BIND *bind;
    unsigned long *lens;
    size_t nbind;
    MYSQL_STMT *stmt;           /* being prepared (not cached yet) or run */
    bool fresh;                 /* the connection was made by this query */
    bool retried;               /* it runs a second time already */
    bool timed_out;             /* the last wait ended on the timeout */
    struct es_db_target target; /* while connecting */
    json_t *rows;
    es_err_t err;
};

es_db_async_t *es_db_async_new(const char *context, unsigned connect_s, unsigned io_s)
{
    es_db_async_t *a = xcalloc(1, sizeof *a);
    a->context = xstrdup(context);
    a->name = xasprintf("eventshop_%s", context);
    a->connect_s = connect_s;
    a->io_s = io_s;
    a->rng = (unsigned)es_mono_ms() ^ (unsigned)(uintptr_t)a;
    return a;
}

static void async_drop_cache(es_db_async_t *a)
{
    for (size_t i = 0; i < a->ncached; i++) {
        mysql_stmt_close(a->cache[i].stmt);
        free(a->cache[i].sql);
    }
    a->ncached = 0;
    a->evict = 0;
}

/* Closes the connection: lost, or abandoned mid-way. */
static void async_close(es_db_async_t *a)
{
    if (a->stmt && a->state == S_PREPARE) /* not cached yet: ours alone */
        mysql_stmt_close(a->stmt);
    a->stmt = NULL;
    a->state = S_IDLE;
    async_drop_cache(a);
    if (a->my)
        mysql_close(a->my);
    a->my = NULL;
    es_db_target_release(&a->target);
}

void es_db_async_free(es_db_async_t *a)
{
    if (!a)
        return;
    async_close(a);
    free(a->bind);
    free(a->lens);
    free(a->context);
    free(a->name);
    free(a);
}

int es_db_async_fd(const es_db_async_t *a)
{
    return a->my ? (int)mysql_get_socket(a->my) : -1;
}

unsigned es_db_async_generation(const es_db_async_t *a)
{
    return a->gen;
}

unsigned es_db_async_timeout_ms(const es_db_async_t *a)
{
    unsigned ms = a->my ? mysql_get_timeout_value_ms(a->my) : 0;
    return ms ? ms : 1000 * (a->state == S_CONNECT ? a->connect_s : a->io_s);
}

bool es_db_async_is_connected(const es_db_async_t *a)
{
    return a->my != NULL;
}

long long es_db_async_retry_in_ms(const es_db_async_t *a)
{
    long long left = a->retry_at - es_mono_ms();
    return left > 0 ? left : 0;
}

json_t *es_db_async_result(es_db_async_t *a, es_err_t *err)
{
    json_t *rows = a->rows;
    a->rows = NULL;
    if (!rows)
        es_set(err, a->err.code ? a->err.code : ES_EIO, "%s", a->err.msg);
    return rows;
}

static int async_begin(es_db_async_t *a);

/* The query failed with no (a MariaDB error number, 0 for none) and err set: a lost connection is
 * closed, and a query that found an older connection lost runs once more on a new one. */
static int async_fail(es_db_async_t *a, unsigned int no)
{
    a->state = S_IDLE;
    if (no && es_db_is_lost_error(no)) {
        es_warn("database '%s': connection lost (%s); opening another", a->name, a->err.msg);
        async_close(a);
        a->failures = 0;
        a->retry_at = 0; /* at once: a server restarted meanwhile is there */
        if (!a->fresh && !a->retried && !a->timed_out) {
            es_info("database '%s': reading again on a new connection: %s", a->name, a->err.msg);
            a->retried = true;
            es_clear(&a->err);
            return async_begin(a);
        }
    }
    return 0;
}

static int async_fail_stmt(es_db_async_t *a, MYSQL_STMT *st, const char *what)
{
    return async_fail(a, es_db_note_stmt(&a->err, st, what));
}

/* The rows of the stored result of a->stmt: fetched from memory. */
static int async_read_rows(es_db_async_t *a)
{
    struct es_db_result res = {0};
    unsigned int lost = 0;
    res.meta = mysql_stmt_result_metadata(a->stmt);
    if (!res.meta)
        es_set(&a->err, ES_EINTERNAL, "query returns no result set");
    else if (es_db_result_bind(a->stmt, &res, &lost, &a->err) == 0)
        a->rows = es_db_result_rows(a->stmt, &res, &lost, &a->err);
    mysql_stmt_free_result(a->stmt);
    es_db_result_release(&res);
    a->stmt = NULL; /* cached */
    a->state = S_IDLE;
    return a->rows ? 0 : async_fail(a, lost);
}

static int async_stored(es_db_async_t *a, int status, int rc)
{
    if (status) {
        a->state = S_STORE;
        return status;
    }
    if (rc)
        return async_fail_stmt(a, a->stmt, "store_result");
    return async_read_rows(a);
}

static int async_executed(es_db_async_t *a, int status, int rc)
{
    if (status) {
        a->state = S_EXECUTE;
        return status;
    }
    if (rc)
        return async_fail_stmt(a, a->stmt, "execute");
    status = mysql_stmt_store_result_start(&rc, a->stmt);
    return async_stored(a, status, rc);
}

static int async_execute(es_db_async_t *a)
{
    if (mysql_stmt_param_count(a->stmt) != a->n) {
        es_set(&a->err, ES_EINTERNAL, "statement wants %lu parameters, got %zu",
               mysql_stmt_param_count(a->stmt), a->n);
        a->stmt = NULL;
        return async_fail(a, 0);
    }
    if (a->n > a->nbind) {
        a->bind = xrealloc(a->bind, a->n * sizeof *a->bind);
        a->lens = xrealloc(a->lens, a->n * sizeof *a->lens);
        a->nbind = a->n;
    }
    if (a->n) {
        es_db_bind_params(a->bind, a->lens, a->params, a->n);
        if (mysql_stmt_bind_param(a->stmt, a->bind))
            return async_fail_stmt(a, a->stmt, "bind");
    }
    int rc = 0;
    int status = mysql_stmt_execute_start(&rc, a->stmt);
    return async_executed(a, status, rc);
}

/* Keeps the prepared a->stmt for its SQL (the oldest goes once the cache is full). */
static void async_cache(es_db_async_t *a)
{
    struct async_stmt *slot;
    if (a->ncached < ASYNC_STMT_CACHE) {
        slot = &a->cache[a->ncached++];
    } else {
        slot = &a->cache[a->evict];
        a->evict = (a->evict + 1) % ASYNC_STMT_CACHE;
        mysql_stmt_close(slot->stmt);
        free(slot->sql);
    }
    slot->sql = xstrdup(a->sql);
    slot->stmt = a->stmt;
}

static int async_prepared(es_db_async_t *a, int status, int rc)
{
    if (status) {
        a->state = S_PREPARE;
        return status;
    }
    if (rc) {
        unsigned int no = mysql_stmt_errno(a->stmt);
        es_set(&a->err, es_db_code_of(no), "mysql prepare: %s (%u)", mysql_stmt_error(a->stmt), no);
        mysql_stmt_close(a->stmt);
        a->stmt = NULL;
        return async_fail(a, no);
    }
    async_cache(a);
    return async_execute(a);
}

static int async_prepare(es_db_async_t *a)
{
    for (size_t i = 0; i < a->ncached; i++)
        if (strcmp(a->cache[i].sql, a->sql) == 0) {
            a->stmt = a->cache[i].stmt;
            return async_execute(a);
        }
    if (!(a->stmt = mysql_stmt_init(a->my))) {
        es_set(&a->err, ES_EIO, "mysql stmt_init: %s", mysql_error(a->my));
        return async_fail(a, mysql_errno(a->my));
    }
    my_bool yes = 1;
    mysql_stmt_attr_set(a->stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &yes);
    int rc = 0;
    int status = mysql_stmt_prepare_start(&rc, a->stmt, a->sql, strlen(a->sql));
    return async_prepared(a, status, rc);
}

static int async_connected(es_db_async_t *a, int status, MYSQL *ret)
{
    if (status) {
        a->state = S_CONNECT;
        return status;
    }
    es_db_target_release(&a->target);
    if (!ret) {
        long long now = es_mono_ms();
        a->failures++;
        a->retry_at = now + es_db_backoff_ms(a->failures, &a->rng);
        es_set(&a->err, ES_EIO, "mysql connect to '%s': %s (%u) (attempt %u, next in %lld ms)",
               a->name, mysql_error(a->my), mysql_errno(a->my), a->failures, a->retry_at - now);
        mysql_close(a->my);
        a->my = NULL;
        a->state = S_IDLE;
        return 0;
    }
    if (a->failures > 0)
        es_info("database '%s': connected again after %u failed attempt(s)", a->name, a->failures);
    a->failures = 0;
    a->retry_at = 0;
    return async_prepare(a);
}

static int async_connect(es_db_async_t *a)
{
    long long now = es_mono_ms();
    if (now < a->retry_at) {
        es_set(&a->err, ES_EIO, "database '%s' unavailable: next connect attempt in %lld ms",
               a->name, a->retry_at - now);
        return 0;
    }
    a->fresh = true;
    a->gen++;
    if (!(a->my = es_db_init_options(a->connect_s, a->io_s))) {
        es_set(&a->err, ES_EIO, "mysql_init failed");
        return 0;
    }
    mysql_options(a->my, MYSQL_OPT_NONBLOCK, 0);
    es_db_target_load(&a->target, a->context);
    MYSQL *ret = NULL;
    int status =
        mysql_real_connect_start(&ret, a->my, a->target.host, a->target.user, a->target.password,
                                 a->name, a->target.port, a->target.sock, 0);
    return async_connected(a, status, ret);
}

static int async_begin(es_db_async_t *a)
{
    a->fresh = false;
    a->timed_out = false;
    return a->my ? async_prepare(a) : async_connect(a);
}

int es_db_async_query(es_db_async_t *a, const char *sql, const es_db_val_t *params, size_t n)
{
    json_decref(a->rows);
    a->rows = NULL;
    es_clear(&a->err);
    a->sql = sql;
    a->params = params;
    a->n = n;
    a->retried = false;
    return async_begin(a);
}

int es_db_async_cont(es_db_async_t *a, int ready)
{
    int rc = 0, status = 0;
    MYSQL *ret = NULL;
    a->timed_out = (ready & ES_DB_WAIT_TIMEOUT) != 0;
    switch (a->state) {
    case S_CONNECT:
        status = mysql_real_connect_cont(&ret, a->my, ready);
        return async_connected(a, status, ret);
    case S_PREPARE:
        status = mysql_stmt_prepare_cont(&rc, a->stmt, ready);
        return async_prepared(a, status, rc);
    case S_EXECUTE:
        status = mysql_stmt_execute_cont(&rc, a->stmt, ready);
        return async_executed(a, status, rc);
    case S_STORE:
        status = mysql_stmt_store_result_cont(&rc, a->stmt, ready);
        return async_stored(a, status, rc);
    default:
        return 0;
    }
}
