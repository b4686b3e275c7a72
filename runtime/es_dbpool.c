/* es_dbpool — see es_dbpool.h.
 *
 * Each connection has one watcher of its socket on the loop (es_http_fd, on a dup of the socket,
 * made again whenever the connection is: its generation changed). A query's request is held
 * (es_http_hold) while it waits or runs; a request that goes away leaves the queue at once, or,
 * when its query runs, lets it finish on its connection (the connection stays in step) and
 * drops the rows.
 *
 * Lookups (es_dbpool_lookup) wait in the same queue, and while a statement of lookups of the
 * same prefix runs (pool_dispatch). A connection that takes one takes with it every other lookup
 * of that prefix waiting (LOOKUP_MOST at most) and asks their keys in one "<prefix> IN (?, ...)"
 * statement, whose rows it then deals out by key: alone, a lookup goes at once; under load,
 * those that came while one statement ran go in the next. Their number is rounded up to a
 * power of two (the last key repeated) so that a connection prepares a few statements, not one
 * per count. */
#include "es_dbpool.h"
#include "es_db_async.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_strbuf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOKUP_MOST       32 /* lookups asked in one statement at most (a power of two) */
#define LOOKUP_STATEMENTS 1  /* statements of lookups of one prefix running at once on a pool */

struct pool_op;

struct pool_conn {
    es_dbpool_t *pool;
    es_db_async_t *db;
    es_http_fd_t *watch; /* of the connection of generation gen; NULL: none */
    unsigned gen;
    struct pool_op *op; /* running; NULL when idle */
};

struct pool_op {
    es_dbpool_t *pool;
    struct pool_op *next;   /* in the queue */
    es_http_hold_t *hold;   /* NULL once the request went away */
    struct pool_conn *conn; /* running on; NULL while queued */
    char *sql;              /* a query's (owned); NULL for a lookup */
    es_db_val_t *params;    /* strings copied */
    size_t n;
    es_dbpool_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
    /* a lookup's (es_dbpool_lookup; NULL: a query), borrowed from its caller; params[0] is its
     * key */
    const char *prefix, *key_column;
    struct pool_op *batch; /* running: the next lookup asked in the same statement */
    char *in_sql;          /* running, the batch's first: its statement and keys (borrowed) */
    es_db_val_t *in_params;
};

struct es_dbpool {
    es_http_loop_t *loop;
    char *context;
    unsigned connect_s, io_s;
    struct pool_conn *conns;
    size_t size, nconns;
    struct pool_op *head, *tail; /* waiting for a connection */
    es_metric_t *m_lookups, *m_statements, *m_queued;
};

es_dbpool_t *es_dbpool_new(es_http_loop_t *loop, const char *context, size_t size,
                           unsigned connect_s, unsigned io_s)
{
    es_dbpool_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->context = xstrdup(context);
    p->size = size ? size : 1;
    p->connect_s = connect_s;
    p->io_s = io_s;
    p->conns = xcalloc(p->size, sizeof *p->conns);
    char labels[96];
    snprintf(labels, sizeof labels, "context=\"%.64s\"", context);
    p->m_lookups = es_counter("eventshop_db_lookups_total",
                              "point reads asked on non-blocking pools (es_dbpool_lookup)", labels);
    p->m_statements =
        es_counter("eventshop_db_lookup_statements_total",
                   "statements that asked them (lookups waiting together share one)", labels);
    p->m_queued =
        es_gauge("eventshop_db_queued", "queries waiting for a non-blocking connection", labels);
    return p;
}

static void op_free(struct pool_op *op)
{
    if (op->free_arg)
        op->free_arg(op->arg);
    for (size_t i = 0; i < op->n; i++)
        if (op->params[i].type == ES_DB_STR)
            free((char *)op->params[i].s);
    free(op->params);
    free(op->sql);
    free(op->in_sql);
    free(op->in_params);
    free(op);
}

/* Frees op and the lookups asked with it, their requests dropped (never answered). */
static void op_drop_batch(struct pool_op *op)
{
    while (op) {
        struct pool_op *next = op->batch;
        es_http_hold_drop(op->hold);
        op_free(op);
        op = next;
    }
}

/* Takes *link, the op after prev (NULL: the head) in p's queue, out of the queue; returns it. */
static struct pool_op *queue_unlink(es_dbpool_t *p, struct pool_op **link, struct pool_op *prev)
{
    struct pool_op *op = *link;
    *link = op->next;
    if (p->tail == op)
        p->tail = prev;
    op->next = NULL;
    es_metric_add(p->m_queued, -1);
    return op;
}

/* Whether a and b are lookups asked by one statement: the same prefix and key column (the same
 * strings, mostly: callers pass static ones). */
static bool lookup_alike(const struct pool_op *a, const struct pool_op *b)
{
    return a->key_column && b->key_column &&
           (a->prefix == b->prefix || !strcmp(a->prefix, b->prefix)) &&
           (a->key_column == b->key_column || !strcmp(a->key_column, b->key_column));
}

void es_dbpool_free(es_dbpool_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nconns; i++) {
        struct pool_conn *c = &p->conns[i];
        es_http_fd_free(c->watch);
        es_db_async_free(c->db);
        if (c->op)
            op_drop_batch(c->op);
    }
    while (p->head) {
        struct pool_op *op = queue_unlink(p, &p->head, NULL);
        es_http_hold_drop(op->hold);
        op_free(op);
    }
    free(p->conns);
    free(p->context);
    free(p);
}

long long es_dbpool_retry_in_ms(const es_dbpool_t *p)
{
    long long most = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        long long left = es_db_async_retry_in_ms(p->conns[i].db);
        if (left > most)
            most = left;
    }
    return most;
}

static void pool_dispatch(es_dbpool_t *p);

/* Answers each lookup of the batch that begins with op (freed) from rows (stolen; NULL: err):
 * the rows whose key column holds its key, in their order. */
static void lookup_answer(struct pool_op *op, json_t *rows, const es_err_t *err)
{
    struct pool_op *first = op;
    bool alone = !op->batch;
    while (op) {
        struct pool_op *next = op->batch;
        if (op->hold) {
            json_t *mine = NULL;
            if (rows && alone) {
                mine = json_incref(rows);
            } else if (rows) {
                /* a row goes to one lookup as it is, to another of the same key as a copy */
                bool again = false;
                for (const struct pool_op *q = first; q != op && !again; q = q->batch)
                    again = !strcmp(q->params[0].s, op->params[0].s);
                mine = json_array();
                size_t i;
                json_t *row;
                json_array_foreach(rows, i, row)
                {
                    const char *k = json_string_value(json_object_get(row, op->key_column));
                    if (k && !strcmp(k, op->params[0].s))
                        json_array_append_new(mine, again ? json_deep_copy(row) : json_incref(row));
                }
            }
            op->fn(es_http_hold_req(op->hold), op->arg, mine, err); /* may query again */
            es_http_hold_end(op->hold);
            op->hold = NULL;
        }
        op = next;
    }
    json_decref(rows);
    op_drop_batch(first); /* their keys were compared until now */
}

/* The op of c is done with rows (stolen) or err: its callback (if its request is still there),
 * then the next queued op. */
static void conn_finish(struct pool_conn *c, json_t *rows, const es_err_t *err)
{
    es_dbpool_t *p = c->pool;
    struct pool_op *op = c->op;
    c->op = NULL;
    if (!es_db_async_is_connected(c->db)) {
        es_http_fd_free(c->watch); /* its dup holds the old socket open */
        c->watch = NULL;
    }
    if (op->key_column) {
        lookup_answer(op, rows, err);
    } else if (op->hold) {
        op->fn(es_http_hold_req(op->hold), op->arg, rows, err); /* may query again */
        es_http_hold_end(op->hold);
        op_free(op);
    } else {
        json_decref(rows);
        op_free(op);
    }
    pool_dispatch(p);
}

static void conn_done(struct pool_conn *c)
{
    es_err_t err = ES_ERR_INIT;
    json_t *rows = es_db_async_result(c->db, &err);
    conn_finish(c, rows, &err);
}

static void conn_ready(void *arg, int ready);

/* Waits for what the connection asked (wait != 0), or ends the op. */
static void conn_step(struct pool_conn *c, int wait)
{
    if (wait && c->watch && c->gen != es_db_async_generation(c->db)) {
        es_http_fd_free(c->watch);
        c->watch = NULL;
    }
    if (wait && !c->watch) {
        int fd = es_db_async_fd(c->db);
        c->gen = es_db_async_generation(c->db);
        if (fd < 0 || !(c->watch = es_http_fd_new(c->pool->loop, fd, conn_ready, c))) {
            /* cannot wait on it: give the connection up, the query fails */
            es_err_t err = ES_ERR_INIT;
            es_set(&err, ES_EIO, "database 'eventshop_%s': cannot watch its connection",
                   c->pool->context);
            es_db_async_free(c->db);
            c->db = es_db_async_new(c->pool->context, c->pool->connect_s, c->pool->io_s);
            conn_finish(c, NULL, &err);
            return;
        }
    }
    if (!wait) {
        conn_done(c);
        return;
    }
    int what = (wait & ES_DB_WAIT_READ ? ES_HTTP_FD_READ : 0) |
               (wait & ES_DB_WAIT_WRITE ? ES_HTTP_FD_WRITE : 0);
    es_http_fd_wait(c->watch, what, wait & ES_DB_WAIT_TIMEOUT ? es_db_async_timeout_ms(c->db) : 0);
}

static void conn_ready(void *arg, int ready)
{
    struct pool_conn *c = arg;
    int got = (ready & ES_HTTP_FD_READ ? ES_DB_WAIT_READ : 0) |
              (ready & ES_HTTP_FD_WRITE ? ES_DB_WAIT_WRITE : 0) |
              (ready & ES_HTTP_FD_TIMEOUT ? ES_DB_WAIT_TIMEOUT : 0);
    conn_step(c, es_db_async_cont(c->db, got));
}

/* Takes out of the queue the lookups of op's statement waiting there (oldest first), up to
 * LOOKUP_MOST with op, into op's batch; returns how many the batch holds. */
static size_t lookup_gather(es_dbpool_t *p, struct pool_op *op)
{
    size_t n = 1;
    struct pool_op **link = &p->head, *prev = NULL, *last = op;
    while (*link && n < LOOKUP_MOST) {
        struct pool_op *q = *link;
        if (lookup_alike(q, op)) {
            queue_unlink(p, link, prev);
            q->conn = op->conn;
            last->batch = q;
            last = q;
            n++;
        } else {
            prev = q;
            link = &q->next;
        }
    }
    return n;
}

static void conn_run(struct pool_conn *c, struct pool_op *op)
{
    c->op = op;
    op->conn = c;
    if (!op->key_column) {
        conn_step(c, es_db_async_query(c->db, op->sql, op->params, op->n));
        return;
    }
    size_t n = lookup_gather(c->pool, op), asked = 1;
    while (asked < n)
        asked *= 2;
    /* "<prefix> = ?" or "<prefix> IN (?, ?, ...)", in one allocation */
    struct es_strbuf sql;
    es_strbuf_init(&sql, strlen(op->prefix) + sizeof " IN (?)" + 3 * asked);
    es_strbuf_adds(&sql, op->prefix);
    if (asked == 1) {
        es_strbuf_adds(&sql, " = ?");
    } else {
        es_strbuf_adds(&sql, " IN (?");
        for (size_t i = 1; i < asked; i++)
            es_strbuf_adds(&sql, ", ?");
        es_strbuf_addc(&sql, ')');
    }
    op->in_sql = es_strbuf_take(&sql, NULL);
    op->in_params = xcalloc(asked, sizeof *op->in_params);
    size_t i = 0;
    for (const struct pool_op *q = op; q; q = q->batch)
        op->in_params[i++] = q->params[0];
    for (; i < asked; i++)
        op->in_params[i] = op->in_params[n - 1];
    es_metric_add(c->pool->m_lookups, (double)n);
    es_metric_add(c->pool->m_statements, 1);
    conn_step(c, es_db_async_query(c->db, op->in_sql, op->in_params, asked));
}

/* The request of a queued or running op went away. */
static void op_gone(void *arg)
{
    struct pool_op *op = arg;
    op->hold = NULL;
    if (op->conn)
        return; /* it finishes on its connection; conn_finish frees it */
    es_dbpool_t *p = op->pool;
    struct pool_op **link = &p->head, *prev = NULL;
    while (*link && *link != op) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link)
        queue_unlink(p, link, prev);
    op_free(op);
}

static struct pool_conn *pool_idle(es_dbpool_t *p)
{
    for (size_t i = 0; i < p->nconns; i++)
        if (!p->conns[i].op)
            return &p->conns[i];
    if (p->nconns == p->size)
        return NULL;
    struct pool_conn *c = &p->conns[p->nconns++];
    c->pool = p;
    c->db = es_db_async_new(p->context, p->connect_s, p->io_s);
    return c;
}

/* Whether LOOKUP_STATEMENTS statements of lookups like op run on p's connections. */
static bool lookup_running(const es_dbpool_t *p, const struct pool_op *op)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        const struct pool_op *run = p->conns[i].op;
        if (run && lookup_alike(run, op))
            n++;
    }
    return n >= LOOKUP_STATEMENTS;
}

/* Starts the queued ops that may start, oldest first, while a connection is idle (or may be
 * made). A lookup waits while a statement of its kind runs: the ones that come meanwhile then
 * go together in the next (one at a time per pool, so that under load they batch: asked alone
 * on every connection, each would cost MariaDB a statement). */
static void pool_dispatch(es_dbpool_t *p)
{
    for (;;) {
        struct pool_op **link = &p->head, *prev = NULL;
        while (*link && (*link)->key_column && lookup_running(p, *link)) {
            prev = *link;
            link = &(*link)->next;
        }
        struct pool_op *op = *link;
        struct pool_conn *c = op ? pool_idle(p) : NULL;
        if (!c)
            return;
        queue_unlink(p, link, prev);
        conn_run(c, op); /* may finish at once, and dispatch in turn */
    }
}

static struct pool_op *op_new(es_dbpool_t *p, const es_db_val_t *params, size_t n, es_dbpool_fn fn,
                              void *arg, void (*free_arg)(void *arg))
{
    struct pool_op *op = xcalloc(1, sizeof *op);
    op->pool = p;
    op->params = xcalloc(n ? n : 1, sizeof *op->params);
    op->n = n;
    for (size_t i = 0; i < n; i++) {
        op->params[i] = params[i];
        if (params[i].type == ES_DB_STR && params[i].s)
            op->params[i].s = xstrdup(params[i].s);
    }
    op->fn = fn;
    op->arg = arg;
    op->free_arg = free_arg;
    return op;
}

/* Queues op for r and starts what may start. */
static void op_submit(es_dbpool_t *p, es_http_req_t *r, struct pool_op *op)
{
    op->hold = es_http_hold_new(r, op_gone, op);
    if (p->tail)
        p->tail->next = op;
    else
        p->head = op;
    p->tail = op;
    es_metric_add(p->m_queued, 1);
    pool_dispatch(p);
}

void es_dbpool_query(es_dbpool_t *p, es_http_req_t *r, const char *sql, const es_db_val_t *params,
                     size_t n, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg))
{
    struct pool_op *op = op_new(p, params, n, fn, arg, free_arg);
    op->sql = xstrdup(sql);
    op_submit(p, r, op);
}

void es_dbpool_lookup(es_dbpool_t *p, es_http_req_t *r, const char *prefix, const char *key_column,
                      const char *key, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg))
{
    es_db_val_t param = ES_DB_S(key);
    struct pool_op *op = op_new(p, &param, 1, fn, arg, free_arg);
    op->prefix = prefix;
    op->key_column = key_column;
    op_submit(p, r, op);
}
