/* es_dbpool — see es_dbpool.h.
 *
 * Each connection has one watcher of its socket on the loop (es_http_fd, on a dup of the socket,
 * made again whenever the connection is: its generation changed). A query's request is held
 * (es_http_hold) while it waits or runs; a request that goes away leaves the queue at once, or,
 * when its query runs, lets it finish on its connection (the connection stays in step) and
 * drops the rows. */
#include "es_dbpool.h"
#include "es_db_async.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdlib.h>
#include <string.h>

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
    char *sql;
    es_db_val_t *params; /* strings copied */
    size_t n;
    es_dbpool_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
};

struct es_dbpool {
    es_http_loop_t *loop;
    char *context;
    unsigned connect_s, io_s;
    struct pool_conn *conns;
    size_t size, nconns;
    struct pool_op *head, *tail; /* waiting for a connection */
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
    free(op);
}

void es_dbpool_free(es_dbpool_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nconns; i++) {
        struct pool_conn *c = &p->conns[i];
        es_http_fd_free(c->watch);
        es_db_async_free(c->db);
        if (c->op) {
            es_http_hold_drop(c->op->hold);
            op_free(c->op);
        }
    }
    while (p->head) {
        struct pool_op *op = p->head;
        p->head = op->next;
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

static void conn_run(struct pool_conn *c, struct pool_op *op);

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
    if (op->hold) {
        op->fn(es_http_hold_req(op->hold), op->arg, rows, err); /* may query again */
        es_http_hold_end(op->hold);
    } else {
        json_decref(rows);
    }
    op_free(op);
    if (!c->op && p->head) {
        struct pool_op *next = p->head;
        p->head = next->next;
        if (!p->head)
            p->tail = NULL;
        conn_run(c, next);
    }
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

static void conn_run(struct pool_conn *c, struct pool_op *op)
{
    c->op = op;
    op->conn = c;
    conn_step(c, es_db_async_query(c->db, op->sql, op->params, op->n));
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
        *link = op->next;
    if (p->tail == op)
        p->tail = prev;
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

void es_dbpool_query(es_dbpool_t *p, es_http_req_t *r, const char *sql, const es_db_val_t *params,
                     size_t n, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg))
{
    struct pool_op *op = xcalloc(1, sizeof *op);
    op->pool = p;
    op->sql = xstrdup(sql);
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
    op->hold = es_http_hold_new(r, op_gone, op);
    struct pool_conn *c = pool_idle(p);
    if (c) {
        conn_run(c, op);
        return;
    }
    if (p->tail)
        p->tail->next = op;
    else
        p->head = op;
    p->tail = op;
}
