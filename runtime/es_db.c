#include "es_db.h"
#include "es_env.h"
#include "es_mem.h"
#include <ctype.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prepared statements are kept per connection, keyed by their SQL text: the projector runs the
 * same few statements thousands of times per second, and a prepare is one more round-trip. */
#define DB_STMT_CACHE 32
#define DB_MAX_PARAMS 64

struct db_cached {
    char *sql;
    MYSQL_STMT *stmt;
};

struct es_db {
    MYSQL *my;
    char *name; /* database name, for messages */
    struct db_cached cache[DB_STMT_CACHE];
    size_t ncached;
    size_t evict; /* round-robin victim once the cache is full */
};

/* One place converts a MariaDB error number into our codes (es_err.h). Lost connections and
 * lock conflicts that a retry resolves are ES_EIO; a value the column refuses is bad input. */
static es_code_t db_code(unsigned int no)
{
    switch (no) {
    case ER_DUP_ENTRY:
    case ER_DUP_ENTRY_WITH_KEY_NAME:
        return ES_ECONFLICT;
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_UNKNOWN_HOST:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
        return ES_EIO;
    case ER_DATA_TOO_LONG:
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
    case ER_BAD_NULL_ERROR:
    case ER_WARN_DATA_OUT_OF_RANGE:
    case ER_CONSTRAINT_FAILED:
        return ES_EINVAL;
    default:
        return no >= 2000 && no < 3000 ? ES_EIO : ES_EINTERNAL;
    }
}

static int db_fail_stmt(es_err_t *err, MYSQL_STMT *st, const char *what)
{
    unsigned int no = mysql_stmt_errno(st);
    return es_set(err, db_code(no), "mysql %s: %s (%u)", what, mysql_stmt_error(st), no);
}

static int db_fail(es_err_t *err, MYSQL *my, const char *what)
{
    unsigned int no = mysql_errno(my);
    return es_set(err, db_code(no), "mysql %s: %s (%u)", what, mysql_error(my), no);
}

es_db_t *es_db_open(const char *context, es_err_t *err)
{
    return es_db_open_timeout(context, 5, 60, err);
}

es_db_t *es_db_open_timeout(const char *context, unsigned connect_s, unsigned io_s, es_err_t *err)
{
    char up[64], var[128], user_def[128], dbname[128];
    size_t i;
    for (i = 0; context[i] && i < sizeof up - 1; i++)
        up[i] = (char)toupper((unsigned char)context[i]);
    up[i] = '\0';
    snprintf(dbname, sizeof dbname, "eventshop_%s", context);
    snprintf(user_def, sizeof user_def, "eventshop_%s", context);
    snprintf(var, sizeof var, "EVENTSHOP_MYSQL_%s_USER", up);
    const char *user = es_env_str(var, user_def);
    const char *host = es_env_str("EVENTSHOP_MYSQL_HOST", "127.0.0.1");
    const char *sock = es_env_str("EVENTSHOP_MYSQL_SOCKET", NULL);
    unsigned int port = (unsigned int)es_env_long("EVENTSHOP_MYSQL_PORT", 3306);
    snprintf(var, sizeof var, "EVENTSHOP_MYSQL_%s_PASSWORD", up);
    char *password = es_env_secret(var);

    MYSQL *my = mysql_init(NULL);
    if (!my) {
        es_set(err, ES_EIO, "mysql_init failed");
        goto fail;
    }
    my_bool off = 0;
    unsigned int connect_timeout = connect_s, io_timeout = io_s;
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(my, MYSQL_OPT_RECONNECT, &off);
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    if (!mysql_real_connect(my, host, user, password, dbname, port, sock, 0)) {
        /* every failure to connect (refused, denied, unknown database) may heal on retry */
        es_set(err, ES_EIO, "mysql connect to '%s' as '%s': %s (%u)", dbname, user, mysql_error(my),
               mysql_errno(my));
        mysql_close(my);
        goto fail;
    }
    if (password) {
        memset(password, 0, strlen(password));
        free(password);
    }
    es_db_t *db = xcalloc(1, sizeof *db);
    db->my = my;
    db->name = xstrdup(dbname);
    return db;
fail:
    if (password) {
        memset(password, 0, strlen(password));
        free(password);
    }
    return NULL;
}

void es_db_close(es_db_t *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->ncached; i++) {
        mysql_stmt_close(db->cache[i].stmt);
        free(db->cache[i].sql);
    }
    mysql_close(db->my);
    free(db->name);
    free(db);
}

int es_db_ping(es_db_t *db, es_err_t *err)
{
    if (mysql_ping(db->my))
        return es_set(err, ES_EIO, "mysql ping '%s': %s (%u)", db->name, mysql_error(db->my),
                      mysql_errno(db->my));
    return 0;
}

static int db_simple(es_db_t *db, const char *sql, es_err_t *err)
{
    if (mysql_real_query(db->my, sql, strlen(sql)))
        return db_fail(err, db->my, sql);
    return 0;
}

int es_db_begin(es_db_t *db, es_err_t *err)
{
    return db_simple(db, "START TRANSACTION", err);
}

int es_db_commit(es_db_t *db, es_err_t *err)
{
    if (mysql_commit(db->my))
        return db_fail(err, db->my, "commit");
    return 0;
}

int es_db_rollback(es_db_t *db)
{
    return mysql_rollback(db->my) ? -1 : 0;
}

/* A prepared statement for sql, from the cache or new; borrowed, owned by db. */
static MYSQL_STMT *db_prepare(es_db_t *db, const char *sql, es_err_t *err)
{
    for (size_t i = 0; i < db->ncached; i++)
        if (strcmp(db->cache[i].sql, sql) == 0)
            return db->cache[i].stmt;
    MYSQL_STMT *st = mysql_stmt_init(db->my);
    if (!st) {
        db_fail(err, db->my, "stmt_init");
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, strlen(sql))) {
        db_fail_stmt(err, st, "prepare");
        mysql_stmt_close(st);
        return NULL;
    }
    struct db_cached *slot;
    if (db->ncached < DB_STMT_CACHE) {
        slot = &db->cache[db->ncached++];
    } else {
        slot = &db->cache[db->evict];
        db->evict = (db->evict + 1) % DB_STMT_CACHE;
        mysql_stmt_close(slot->stmt);
        free(slot->sql);
    }
    slot->sql = xstrdup(sql);
    slot->stmt = st;
    return st;
}

static MYSQL_STMT *db_run(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
                          es_err_t *err)
{
    if (n > DB_MAX_PARAMS) {
        es_set(err, ES_EINTERNAL, "too many parameters (%zu)", n);
        return NULL;
    }
    MYSQL_STMT *st = db_prepare(db, sql, err);
    if (!st)
        return NULL;
    if (mysql_stmt_param_count(st) != n) {
        es_set(err, ES_EINTERNAL, "statement wants %lu parameters, got %zu",
               mysql_stmt_param_count(st), n);
        return NULL;
    }
    MYSQL_BIND bind[DB_MAX_PARAMS];
    unsigned long lens[DB_MAX_PARAMS];
    memset(bind, 0, sizeof bind[0] * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        switch (params[i].type) {
        case ES_DB_STR:
            if (!params[i].s) {
                bind[i].buffer_type = MYSQL_TYPE_NULL;
                break;
            }
            lens[i] = strlen(params[i].s);
            bind[i].buffer_type = MYSQL_TYPE_STRING;
            bind[i].buffer = (void *)params[i].s;
            bind[i].buffer_length = lens[i];
            bind[i].length = &lens[i];
            break;
        case ES_DB_INT:
            bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
            bind[i].buffer = (void *)&params[i].i;
            break;
        default:
            bind[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        }
    }
    if (n && mysql_stmt_bind_param(st, bind)) {
        db_fail_stmt(err, st, "bind");
        return NULL;
    }
    if (mysql_stmt_execute(st)) {
        db_fail_stmt(err, st, "execute");
        return NULL;
    }
    return st;
}

int es_db_exec(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
               long long *affected, es_err_t *err)
{
    MYSQL_STMT *st = db_run(db, sql, params, n, err);
    if (!st)
        return -1;
    if (affected)
        *affected = (long long)mysql_stmt_affected_rows(st);
    if (mysql_stmt_field_count(st) > 0) {
        /* a statement with a result set run for its effect: drain it */
        mysql_stmt_store_result(st);
        mysql_stmt_free_result(st);
    }
    return 0;
}

static bool db_is_int(enum enum_field_types t)
{
    return t == MYSQL_TYPE_TINY || t == MYSQL_TYPE_SHORT || t == MYSQL_TYPE_LONG ||
           t == MYSQL_TYPE_INT24 || t == MYSQL_TYPE_LONGLONG || t == MYSQL_TYPE_YEAR;
}

json_t *es_db_query(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
                    es_err_t *err)
{
    json_t *rows = NULL;
    MYSQL_RES *meta = NULL;
    MYSQL_BIND *res = NULL;
    struct col {
        long long i;
        char *buf;
        unsigned long len;
        my_bool is_null, error;
    } *cols = NULL;
    unsigned int ncols = 0;
    bool stored = false;

    MYSQL_STMT *st = db_prepare(db, sql, err);
    if (!st)
        return NULL;
    my_bool yes = 1;
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &yes);
    if (!db_run(db, sql, params, n, err))
        return NULL;
    meta = mysql_stmt_result_metadata(st);
    if (!meta) {
        es_set(err, ES_EINTERNAL, "query returns no result set");
        goto out;
    }
    if (mysql_stmt_store_result(st)) {
        db_fail_stmt(err, st, "store_result");
        goto out;
    }
    stored = true;
    ncols = mysql_num_fields(meta);
    MYSQL_FIELD *fields = mysql_fetch_fields(meta);
    res = xcalloc(ncols ? ncols : 1, sizeof *res);
    cols = xcalloc(ncols ? ncols : 1, sizeof *cols);
    for (unsigned int c = 0; c < ncols; c++) {
        res[c].is_null = &cols[c].is_null;
        res[c].error = &cols[c].error;
        res[c].length = &cols[c].len;
        if (db_is_int(fields[c].type)) {
            res[c].buffer_type = MYSQL_TYPE_LONGLONG;
            res[c].buffer = &cols[c].i;
            res[c].is_unsigned = (fields[c].flags & UNSIGNED_FLAG) != 0;
        } else {
            cols[c].buf = xmalloc(fields[c].max_length + 1);
            res[c].buffer_type = MYSQL_TYPE_STRING;
            res[c].buffer = cols[c].buf;
            res[c].buffer_length = fields[c].max_length + 1;
        }
    }
    if (ncols && mysql_stmt_bind_result(st, res)) {
        db_fail_stmt(err, st, "bind_result");
        goto out;
    }
    rows = json_array();
    for (;;) {
        int r = mysql_stmt_fetch(st);
        if (r == MYSQL_NO_DATA)
            break;
        if (r == 1) {
            db_fail_stmt(err, st, "fetch");
            json_decref(rows);
            rows = NULL;
            goto out;
        }
        /* MYSQL_DATA_TRUNCATED cannot happen: buffers are sized by max_length */
        json_t *row = json_object();
        for (unsigned int c = 0; c < ncols; c++) {
            json_t *v;
            if (cols[c].is_null)
                v = json_null();
            else if (res[c].buffer_type == MYSQL_TYPE_LONGLONG)
                v = json_integer(cols[c].i);
            else if (!(v = json_stringn(cols[c].buf, cols[c].len))) {
                es_set(err, ES_EINTERNAL, "column '%s' is not valid utf-8", fields[c].name);
                json_decref(row);
                json_decref(rows);
                rows = NULL;
                goto out;
            }
            json_object_set_new(row, fields[c].name, v);
        }
        json_array_append_new(rows, row);
    }
out:
    if (stored)
        mysql_stmt_free_result(st);
    if (meta)
        mysql_free_result(meta);
    for (unsigned int c = 0; cols && c < ncols; c++)
        free(cols[c].buf);
    free(cols);
    free(res);
    return rows;
}
