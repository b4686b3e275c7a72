#include "es_db.h"
#include "es_db_int.h"
#include "es_env.h"
#include "es_fault.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include <ctype.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Prepared statements are kept per connection, keyed by their SQL text: the projector runs the
 * same few statements thousands of times per second, and a prepare is one more round-trip. */
#define DB_STMT_CACHE 48
/* MariaDB's own limit on a statement's placeholders (a projector's multi-row statements have
 * thousands); the binds of up to DB_STACK_PARAMS live on the stack */
#define DB_MAX_PARAMS   65535
#define DB_STACK_PARAMS 64

struct db_cached {
    char *sql;
    MYSQL_STMT *stmt;
};

struct es_db {
    MYSQL *my;  /* NULL while a reconnecting handle's connection is down */
    char *name; /* database name, for messages */
    char *context;
    unsigned connect_s, io_s;
    struct db_cached cache[DB_STMT_CACHE];
    size_t ncached;
    MYSQL_BIND *binds; /* for statements of more than DB_STACK_PARAMS: kept, grown as needed */
    unsigned long *lens;
    size_t nbinds;
    size_t evict; /* round-robin victim once the cache is full */
    /* reconnection (es_db_set_reconnect) */
    bool reconnect;
    const char *dep;    /* readiness dependency kept up to date, or NULL */
    bool in_tx;         /* between es_db_begin and es_db_commit/es_db_rollback */
    bool tx_lost;       /* ... and its connection was lost: only a rollback helps */
    bool sent;          /* the last statement reached mysql_stmt_execute */
    unsigned failures;  /* consecutive failed connect attempts */
    long long retry_at; /* monotonic ms: no connect attempt before */
    long long used_at;  /* monotonic ms of the last round trip that got an answer */
    unsigned rng;
};

long es_db_backoff_ms(unsigned failures, unsigned *rng)
{
    if (failures == 0)
        return 0;
    long cap = ES_DB_BACKOFF_BASE_MS;
    for (unsigned i = 1; i < failures && cap < ES_DB_BACKOFF_MAX_MS; i++)
        cap *= 2;
    if (cap > ES_DB_BACKOFF_MAX_MS)
        cap = ES_DB_BACKOFF_MAX_MS;
    /* xorshift32: enough to spread processes apart, and reproducible in tests */
    unsigned x = *rng ? *rng : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *rng = x;
    long half = cap / 2;
    return cap - half + (long)(x % (unsigned)(half + 1));
}

/* Whether error no means the connection is unusable (as opposed to a statement refused). */
bool es_db_is_lost_error(unsigned int no)
{
    switch (no) {
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
        return true;
    default:
        return false;
    }
}

static void db_drop_cache(es_db_t *db)
{
    for (size_t i = 0; i < db->ncached; i++) {
        mysql_stmt_close(db->cache[i].stmt);
        free(db->cache[i].sql);
    }
    db->ncached = 0;
    db->evict = 0;
}

/* A reconnecting handle's connection is gone: closed now, reopened on the next use. */
static void db_lost(es_db_t *db, const char *why)
{
    if (!db->reconnect || !db->my)
        return;
    es_warn("database '%s': connection lost (%s)%s; reopening it on next use", db->name, why,
            db->in_tx ? " inside a transaction" : "");
    db_drop_cache(db);
    mysql_close(db->my);
    db->my = NULL;
    if (db->in_tx)
        db->tx_lost = true;
    db->failures = 0;
    db->retry_at = 0; /* the first attempt at once: a server restarted meanwhile is there */
    if (db->dep)
        es_metrics_set_dependency(db->dep, false);
}

/* One place converts a MariaDB error number into our codes (es_err.h). Lost connections and
 * lock conflicts that a retry resolves are ES_EIO; a value the column refuses is bad input. */
es_code_t es_db_code_of(unsigned int no)
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
    case ER_SERVER_SHUTDOWN:   /* a server going down or just back (a restart) */
    case ER_CONNECTION_KILLED: /* ... */
    case ER_QUERY_INTERRUPTED: /* ... */
    case ER_CON_COUNT_ERROR:
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

/* The error of a failed call into err; a lost connection of a reconnecting handle is dropped
 * (after the message is taken: closing frees it). */
static int db_fail_stmt(es_db_t *db, es_err_t *err, MYSQL_STMT *st, const char *what)
{
    unsigned int no = mysql_stmt_errno(st);
    int rc = es_set(err, es_db_code_of(no), "mysql %s: %s (%u)", what, mysql_stmt_error(st), no);
    if (es_db_is_lost_error(no))
        db_lost(db, mysql_stmt_error(st));
    return rc;
}

/* The error of a failed statement into err, without dropping anything: the error number when
 * the connection is lost (the caller drops it once done with st), else 0. */
unsigned int es_db_note_stmt(es_err_t *err, MYSQL_STMT *st, const char *what)
{
    unsigned int no = mysql_stmt_errno(st);
    es_set(err, es_db_code_of(no), "mysql %s: %s (%u)", what, mysql_stmt_error(st), no);
    return es_db_is_lost_error(no) ? no : 0;
}

static int db_fail(es_db_t *db, es_err_t *err, const char *what)
{
    unsigned int no = mysql_errno(db->my);
    int rc = es_set(err, es_db_code_of(no), "mysql %s: %s (%u)", what, mysql_error(db->my), no);
    if (es_db_is_lost_error(no)) {
        char why[128];
        snprintf(why, sizeof why, "%s", mysql_error(db->my));
        db_lost(db, why);
    }
    return rc;
}

es_db_t *es_db_open(const char *context, es_err_t *err)
{
    return es_db_open_timeout(context, 5, 60, err);
}

void es_db_target_load(struct es_db_target *t, const char *account)
{
    char up[64], var[128], user_def[128];
    size_t i;
    for (i = 0; account[i] && i < sizeof up - 1; i++)
        up[i] = (char)toupper((unsigned char)account[i]);
    up[i] = '\0';
    snprintf(user_def, sizeof user_def, "eventshop_%s", account);
    snprintf(var, sizeof var, "EVENTSHOP_MYSQL_%s_USER", up);
    snprintf(t->user, sizeof t->user, "%s", es_env_str(var, user_def));
    t->host = es_env_str("EVENTSHOP_MYSQL_HOST", "127.0.0.1");
    t->sock = es_env_str("EVENTSHOP_MYSQL_SOCKET", NULL);
    t->port = (unsigned int)es_env_long("EVENTSHOP_MYSQL_PORT", 3306);
    snprintf(var, sizeof var, "EVENTSHOP_MYSQL_%s_PASSWORD", up);
    t->password = es_env_secret(var);
}

void es_db_target_release(struct es_db_target *t)
{
    if (t->password) {
        memset(t->password, 0, strlen(t->password));
        free(t->password);
        t->password = NULL;
    }
}

MYSQL *es_db_init_options(unsigned connect_s, unsigned io_s)
{
    MYSQL *my = mysql_init(NULL);
    if (!my)
        return NULL;
    my_bool off = 0;
    unsigned int connect_timeout = connect_s, io_timeout = io_s;
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(my, MYSQL_OPT_RECONNECT, &off);
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    return my;
}

/* Connects db (its MYSQL is NULL) with the context's settings and secret. 0, or ES_EIO. */
static int db_connect(es_db_t *db, es_err_t *err)
{
    struct es_db_target t = {0};
    int rc = -1;
    es_db_target_load(&t, db->context);
    MYSQL *my = es_db_init_options(db->connect_s, db->io_s);
    if (!my) {
        es_set(err, ES_EIO, "mysql_init failed");
        goto out;
    }
    if (!mysql_real_connect(my, t.host, t.user, t.password, *db->name ? db->name : NULL, t.port,
                            t.sock, 0)) {
        /* every failure to connect (refused, denied, unknown database) may heal on retry */
        es_set(err, ES_EIO, "mysql connect to '%s' as '%s': %s (%u)", db->name, t.user,
               mysql_error(my), mysql_errno(my));
        mysql_close(my);
        goto out;
    }
    db->my = my;
    db->used_at = es_mono_ms();
    rc = 0;
out:
    es_db_target_release(&t);
    return rc;
}

static void db_free(es_db_t *db)
{
    free(db->binds);
    free(db->lens);
    free(db->name);
    free(db->context);
    free(db);
}

/* A handle to database name (owned; "": none) as account's user, not connected yet. */
static es_db_t *db_new(const char *account, char *name, unsigned connect_s, unsigned io_s)
{
    es_db_t *db = xcalloc(1, sizeof *db);
    db->context = xstrdup(account);
    db->name = name;
    db->connect_s = connect_s;
    db->io_s = io_s;
    return db;
}

/* Connects to database name (owned; "": none) as account's user. */
static es_db_t *db_open(const char *account, char *name, unsigned connect_s, unsigned io_s,
                        es_err_t *err)
{
    es_db_t *db = db_new(account, name, connect_s, io_s);
    if (db_connect(db, err) != 0) {
        db_free(db);
        return NULL;
    }
    return db;
}

es_db_t *es_db_open_timeout(const char *context, unsigned connect_s, unsigned io_s, es_err_t *err)
{
    return db_open(context, xasprintf("eventshop_%s", context), connect_s, io_s, err);
}

es_db_t *es_db_open_as(const char *account, const char *database, es_err_t *err)
{
    return db_open(account, xstrdup(database ? database : ""), 5, 60, err);
}

void es_db_close(es_db_t *db)
{
    if (!db)
        return;
    db_drop_cache(db);
    if (db->my)
        mysql_close(db->my);
    db_free(db);
}

void es_db_set_reconnect(es_db_t *db, const char *dependency)
{
    db->reconnect = true;
    db->dep = dependency;
    db->rng = (unsigned)es_mono_ms() ^ ((unsigned)getpid() << 16) ^ (unsigned)(uintptr_t)db;
    if (dependency)
        es_metrics_set_dependency(dependency, db->my != NULL);
}

es_db_t *es_db_open_reconnecting(const char *context, unsigned connect_s, unsigned io_s)
{
    es_db_t *db = db_new(context, xasprintf("eventshop_%s", context), connect_s, io_s);
    es_db_set_reconnect(db, NULL); /* down until the first call connects (retry_at 0: at once) */
    return db;
}

/* Before a call sends anything: a reconnecting handle's connection is made again when it is down
 * (if the backoff allows) or, when check is set or it sat idle, is pinged (and made again if that
 * fails: nothing was sent yet). 0, or ES_EIO with err. Inside a transaction whose connection was
 * lost, always ES_EIO: a fresh connection would run the rest of it outside any transaction. */
static int db_ready(es_db_t *db, bool check, es_err_t *err)
{
    if (!db->reconnect)
        return 0;
    if (db->tx_lost)
        return es_set(err, ES_EIO,
                      "database '%s': the connection was lost inside a transaction: roll back "
                      "and redo it",
                      db->name);
    long long now = es_mono_ms();
    if (db->my && !db->in_tx && (check || now - db->used_at >= ES_DB_IDLE_PING_MS)) {
        if (mysql_ping(db->my) == 0) {
            db->used_at = now;
            return 0;
        }
        es_err_t perr = ES_ERR_INIT;
        db_fail(db, &perr, "ping");
        if (db->my) /* not a lost connection: the server answered something else */
            return es_set(err, perr.code, "%s", perr.msg);
        /* dropped: connected again below, nothing was sent */
    }
    if (db->my)
        return 0;
    if (now < db->retry_at)
        return es_set(err, ES_EIO, "database '%s' unavailable: next connect attempt in %lld ms",
                      db->name, db->retry_at - now);
    es_err_t cerr = ES_ERR_INIT;
    bool first = db->used_at == 0; /* never connected yet: es_db_open_reconnecting */
    if (db_connect(db, &cerr) != 0) {
        db->failures++;
        db->retry_at = now + es_db_backoff_ms(db->failures, &db->rng);
        if (db->dep)
            es_metrics_set_dependency(db->dep, false);
        return es_set(err, ES_EIO, "%s (attempt %u, next in %lld ms)", cerr.msg, db->failures,
                      db->retry_at - now);
    }
    if (db->failures > 0 || db->in_tx)
        es_info("database '%s': connected %safter %u failed attempt(s)", db->name,
                first ? "" : "again ", db->failures);
    else if (!first)
        es_info("database '%s': connected again", db->name);
    db->failures = 0;
    db->retry_at = 0;
    if (db->dep)
        es_metrics_set_dependency(db->dep, true);
    return 0;
}

int es_db_check(es_db_t *db, long idle_ms, es_err_t *err)
{
    if (db->my && es_mono_ms() - db->used_at < idle_ms)
        return 0;
    if (!db->reconnect)
        return es_db_ping(db, err);
    return db_ready(db, !db->in_tx, err);
}

int es_db_ping(es_db_t *db, es_err_t *err)
{
    if (db_ready(db, false, err))
        return -1;
    if (mysql_ping(db->my)) {
        int rc = es_set(err, ES_EIO, "mysql ping '%s': %s (%u)", db->name, mysql_error(db->my),
                        mysql_errno(db->my));
        if (es_db_is_lost_error(mysql_errno(db->my)))
            db_lost(db, "ping");
        return rc;
    }
    db->used_at = es_mono_ms();
    return 0;
}

static int db_simple(es_db_t *db, const char *sql, es_err_t *err)
{
    if (mysql_real_query(db->my, sql, strlen(sql)))
        return db_fail(db, err, sql);
    db->used_at = es_mono_ms();
    return 0;
}

int es_db_begin(es_db_t *db, es_err_t *err)
{
    db->tx_lost = false; /* a new transaction: whatever was lost is over */
    db->in_tx = false;
    if (db_ready(db, false, err) || db_simple(db, "START TRANSACTION", err))
        return -1;
    db->in_tx = true;
    return 0;
}

int es_db_commit(es_db_t *db, es_err_t *err)
{
    bool lost = db->tx_lost;
    db->in_tx = db->tx_lost = false;
    if (lost || !db->my)
        return es_set(err, ES_EIO,
                      "database '%s': the connection was lost inside the transaction: nothing "
                      "committed",
                      db->name);
    if (mysql_commit(db->my))
        return db_fail(db, err, "commit");
    db->used_at = es_mono_ms();
    return 0;
}

int es_db_rollback(es_db_t *db)
{
    db->in_tx = db->tx_lost = false;
    if (!db->my) /* the server rolled it back when the connection went */
        return 0;
    if (mysql_rollback(db->my)) {
        if (es_db_is_lost_error(mysql_errno(db->my)))
            db_lost(db, "rollback");
        return -1;
    }
    return 0;
}

/* A prepared statement for sql, from the cache or new; borrowed, owned by db. */
static MYSQL_STMT *db_prepare(es_db_t *db, const char *sql, es_err_t *err)
{
    for (size_t i = 0; i < db->ncached; i++)
        if (strcmp(db->cache[i].sql, sql) == 0)
            return db->cache[i].stmt;
    MYSQL_STMT *st = mysql_stmt_init(db->my);
    if (!st) {
        db_fail(db, err, "stmt_init");
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, strlen(sql))) {
        /* taken out first: a lost connection drops the cache and the connection */
        unsigned int no = mysql_stmt_errno(st);
        es_set(err, es_db_code_of(no), "mysql prepare: %s (%u)", mysql_stmt_error(st), no);
        mysql_stmt_close(st);
        if (es_db_is_lost_error(no))
            db_lost(db, "prepare");
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

/* Fills bind[i] (and lens[i]) with params[i] for n parameters. */
void es_db_bind_params(MYSQL_BIND *bind, unsigned long *lens, const es_db_val_t *params, size_t n)
{
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
    MYSQL_BIND sbind[DB_STACK_PARAMS];
    unsigned long slens[DB_STACK_PARAMS];
    MYSQL_BIND *bind = sbind;
    unsigned long *lens = slens;
    if (n > DB_STACK_PARAMS && n > db->nbinds) {
        db->binds = xrealloc(db->binds, n * sizeof *db->binds);
        db->lens = xrealloc(db->lens, n * sizeof *db->lens);
        db->nbinds = n;
    }
    if (n > DB_STACK_PARAMS) {
        bind = db->binds;
        lens = db->lens;
    }
    es_db_bind_params(bind, lens, params, n);
    int rc = n && mysql_stmt_bind_param(st, bind) ? 1 : 0;
    if (rc == 0) {
        db->sent = true;
        if (db->reconnect && db->in_tx && es_fault_hit("db.lost_in_tx"))
            shutdown(mysql_get_socket(db->my), SHUT_RDWR); /* a real loss, mid-transaction */
        rc = mysql_stmt_execute(st) ? 2 : 0;
    }
    if (rc) {
        db_fail_stmt(db, err, st, rc == 1 ? "bind" : "execute");
        return NULL;
    }
    db->used_at = es_mono_ms();
    return st;
}

static int db_exec_once(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
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

/* Sizes and binds res's buffers to st's stored result (res->meta set). Returns 0, or -1 with err
 * set, and *lost the error number of a lost connection if that is why. */
int es_db_result_bind(MYSQL_STMT *st, struct es_db_result *res, unsigned int *lost, es_err_t *err)
{
    res->ncols = mysql_num_fields(res->meta);
    res->fields = mysql_fetch_fields(res->meta);
    res->bind = xcalloc(res->ncols ? res->ncols : 1, sizeof *res->bind);
    res->cols = xcalloc(res->ncols ? res->ncols : 1, sizeof *res->cols);
    for (unsigned int c = 0; c < res->ncols; c++) {
        MYSQL_BIND *b = &res->bind[c];
        struct db_col *col = &res->cols[c];
        b->is_null = &col->is_null;
        b->error = &col->error;
        b->length = &col->len;
        if (db_is_int(res->fields[c].type)) {
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &col->i;
            b->is_unsigned = (res->fields[c].flags & UNSIGNED_FLAG) != 0;
        } else {
            col->buf = xmalloc(res->fields[c].max_length + 1);
            b->buffer_type = MYSQL_TYPE_STRING;
            b->buffer = col->buf;
            b->buffer_length = res->fields[c].max_length + 1;
        }
    }
    if (res->ncols && mysql_stmt_bind_result(st, res->bind)) {
        *lost = es_db_note_stmt(err, st, "bind_result");
        return -1;
    }
    return 0;
}

/* The fetched row in res's buffers as a new object {column: value}, or NULL with err set (a
 * string column that is not valid UTF-8). */
static json_t *db_result_row(const struct es_db_result *res, es_err_t *err)
{
    json_t *row = json_object();
    for (unsigned int c = 0; c < res->ncols; c++) {
        const struct db_col *col = &res->cols[c];
        json_t *v;
        if (col->is_null)
            v = json_null();
        else if (res->bind[c].buffer_type == MYSQL_TYPE_LONGLONG)
            v = json_integer(col->i);
        else if (!(v = json_stringn(col->buf, col->len))) {
            es_set(err, ES_EINTERNAL, "column '%s' is not valid utf-8", res->fields[c].name);
            json_decref(row);
            return NULL;
        }
        json_object_set_new(row, res->fields[c].name, v);
    }
    return row;
}

/* Every row of st's bound result, as a new array; NULL with err set, and *lost the error number
 * of a lost connection if that is why. */
json_t *es_db_result_rows(MYSQL_STMT *st, const struct es_db_result *res, unsigned int *lost,
                          es_err_t *err)
{
    json_t *rows = json_array();
    for (;;) {
        int r = mysql_stmt_fetch(st);
        if (r == MYSQL_NO_DATA)
            return rows;
        json_t *row = NULL;
        if (r == 1)
            *lost = es_db_note_stmt(err, st, "fetch");
        else /* MYSQL_DATA_TRUNCATED cannot happen: buffers are sized by max_length */
            row = db_result_row(res, err);
        if (!row) {
            json_decref(rows);
            return NULL;
        }
        json_array_append_new(rows, row);
    }
}

void es_db_result_release(struct es_db_result *res)
{
    if (res->meta)
        mysql_free_result(res->meta);
    for (unsigned int c = 0; res->cols && c < res->ncols; c++)
        free(res->cols[c].buf);
    free(res->cols);
    free(res->bind);
}

/* Runs sql and reads its whole result set: prepare with max lengths tracked, execute, store,
 * bind, fetch. */
static json_t *db_query_once(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
                             es_err_t *err)
{
    json_t *rows = NULL;
    unsigned int lost = 0; /* the error number of a lost connection, dropped once cleaned up */
    struct es_db_result res = {0};
    bool stored = false;

    MYSQL_STMT *st = db_prepare(db, sql, err);
    if (!st)
        return NULL;
    my_bool yes = 1;
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &yes);
    if (!db_run(db, sql, params, n, err))
        return NULL;
    res.meta = mysql_stmt_result_metadata(st);
    if (!res.meta) {
        es_set(err, ES_EINTERNAL, "query returns no result set");
        goto out;
    }
    if (mysql_stmt_store_result(st)) {
        lost = es_db_note_stmt(err, st, "store_result");
        goto out;
    }
    stored = true;
    if (es_db_result_bind(st, &res, &lost, err) == 0)
        rows = es_db_result_rows(st, &res, &lost, err);
out:
    if (stored)
        mysql_stmt_free_result(st);
    es_db_result_release(&res);
    if (lost)
        db_lost(db, "reading a result");
    else if (rows)
        db->used_at = es_mono_ms();
    return rows;
}

/* Whether a statement that failed with err may run again on a fresh connection: a reconnecting
 * handle outside a transaction whose connection was lost by this call (and which is due to
 * reconnect at once), and the statement was never sent or is a read. */
static bool db_may_rerun(const es_db_t *db, const es_err_t *err, bool is_read)
{
    return db->reconnect && !db->in_tx && !db->my && err->code == ES_EIO && db->failures == 0 &&
           (is_read || !db->sent);
}

int es_db_exec(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
               long long *affected, es_err_t *err)
{
    if (db->in_tx && db->tx_lost)
        return db_ready(db, false, err);
    for (int attempt = 0;; attempt++) {
        es_err_t e = ES_ERR_INIT;
        db->sent = false;
        if (db_ready(db, false, &e) == 0 && db_exec_once(db, sql, params, n, affected, &e) == 0)
            return 0;
        if (attempt > 0 || !db_may_rerun(db, &e, false))
            return es_set(err, e.code ? e.code : ES_EIO, "%s", e.msg);
        es_info("database '%s': running a statement again on a new connection: %s", db->name,
                e.msg);
    }
}

json_t *es_db_query(es_db_t *db, const char *sql, const es_db_val_t *params, size_t n,
                    es_err_t *err)
{
    if (db->in_tx && db->tx_lost) {
        db_ready(db, false, err);
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        es_err_t e = ES_ERR_INIT;
        db->sent = false;
        json_t *rows = NULL;
        if (db_ready(db, false, &e) == 0 && (rows = db_query_once(db, sql, params, n, &e)))
            return rows;
        if (attempt > 0 || !db_may_rerun(db, &e, true)) {
            es_set(err, e.code ? e.code : ES_EIO, "%s", e.msg);
            return NULL;
        }
        es_info("database '%s': reading again on a new connection: %s", db->name, e.msg);
    }
}
