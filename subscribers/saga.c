/* order-saga — the fulfilment saga (orders-flow brief): turns the events of orders, inventory,
 * payments and shipping into the next commands, and acts on the deadlines of open orders.
 *
 * Nearly stateless: every event carries what its next command needs (OrderCancelled lists the
 * skus to release and whether to refund; a capture after a cancel comes back from the orders
 * decider as OrderRefundRequested), so the decider, the single owner of an order, settles every
 * race. Dispatch too: on OrderConfirmed the saga asks the decider to approve the dispatch
 * (ApproveDispatch, at once or after EVENTSHOP_ORDER_DISPATCH_HOLD_MS) and requests the shipment
 * only on OrderDispatchApproved; a cancel that the decider saw first wins (nothing is shipped),
 * one it sees after the approval is refused.
 *
 * The only memory is the deadline table of open orders, in the saga's own database
 * (eventshop_order_saga, user EVENTSHOP_MYSQL_ORDER_SAGA_USER):
 *   open_orders(orders_partition, order_id, status, reserve_by, pay_by, dispatch_at, ...)
 *     one row per order still waiting on a deadline: placed (reserve_by), stock_reserved
 *     (pay_by) or confirmed (dispatch_at, only with a hold); closed orders are deleted
 *   progress(orders_partition, next_offset) the next orders.events offset folded into the table
 * Each orders event that changes a row is folded in one MariaDB transaction with its partition's
 * progress, and only when its offset is at or past that progress: events delivered again after
 * an aborted Kafka batch (the table committed, the Kafka transaction not) change nothing. The
 * table is always at or ahead of the consumer's committed offsets, so on an assignment the saga
 * reads the open orders of the orders.events partitions it now owns and carries on from there:
 * several replicas share the partitions through the consumer group, and no history is read,
 * except once for a partition the table has never folded (no progress row: the first start
 * after the in-memory saga of old, so that the orders open at the upgrade keep their deadlines).
 * The table is for an admin endpoint to list too: every row of open_orders is an open order. */
#include "dm_json.h"
#include "es_db.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include "sb_runtime.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESEND_MS        5000 /* a deadline command not yet seen applied is sent again after this */
#define SAGA_DB_CHECK_MS 3000 /* an idle tick pings the table's server this often */
#define ORDERS_TOPIC     "orders.events"
#define ORDERS_NS        "eventshop.orders."

static const char *const saga_topics[] = {ORDERS_TOPIC, "inventory.events", "payments.events",
                                          "shipping.events", NULL};

typedef struct saga {
    es_db_t *db;       /* NULL until connected (again) */
    sb_runtime_t *rt;  /* for reading history once (bootstrap); borrowed */
    json_t *open;      /* order id -> {"partition", "status", "reserve_by", "pay_by",
                          "dispatch_at", "sent_at"}: the owned partitions' rows */
    int *owned;        /* the orders.events partitions this instance owns */
    size_t n_owned;    /* ... and how many */
    bool loaded;       /* open holds the rows of every owned partition */
    long long hold_ms; /* time between confirmation and the dispatch approval */
} saga_t;

/* --- the deadline table ------------------------------------------------------------------- */

static const char *const ddl[] = {
    "CREATE TABLE IF NOT EXISTS open_orders (orders_partition INT NOT NULL,"
    " order_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
    " status VARCHAR(16) NOT NULL, reserve_by BIGINT NOT NULL, pay_by BIGINT NOT NULL,"
    " dispatch_at BIGINT NOT NULL DEFAULT 0, folded_offset BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL, PRIMARY KEY (orders_partition, order_id), KEY status (status))"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS progress (orders_partition INT NOT NULL PRIMARY KEY,"
    " next_offset BIGINT NOT NULL, updated_at BIGINT NOT NULL) ENGINE=InnoDB",
};

/* The table's connection, opened (with the tables) on first use. Once open it reconnects by
 * itself after a loss (es_db_set_reconnect) and keeps the "mysql" readiness dependency. */
static es_db_t *db_get(saga_t *s, es_err_t *err)
{
    if (s->db)
        return s->db;
    es_db_t *db = es_db_open("order_saga", err);
    if (!db)
        goto fail;
    for (size_t i = 0; i < sizeof ddl / sizeof *ddl; i++) {
        if (es_db_exec(db, ddl[i], NULL, 0, NULL, err) != 0) {
            es_db_close(db);
            goto fail;
        }
    }
    es_db_set_reconnect(db, "mysql");
    return s->db = db;
fail:
    es_metrics_set_dependency("mysql", false);
    return NULL;
}

/* After a failed statement (its error in e): the transaction is rolled back (a lost connection
 * is reopened by es_db on next use); err gets ES_EIO, so that the runtime retries the batch
 * rather than dead-letter the event. */
static int db_failed(saga_t *s, const es_err_t *e, const char *what, es_err_t *err)
{
    if (s->db)
        es_db_rollback(s->db);
    return es_set(err, ES_EIO, "order saga table, %s: %s", what, e->msg);
}

typedef enum { ROW_NONE, ROW_INSERT, ROW_RESERVED, ROW_CONFIRMED, ROW_DELETE } row_op_t;

static row_op_t row_op(const saga_t *s, const char *name)
{
    if (!strcmp(name, "OrderPlaced"))
        return ROW_INSERT;
    if (!strcmp(name, "OrderStockReserved"))
        return ROW_RESERVED;
    if (!strcmp(name, "OrderConfirmed")) /* waits for its dispatch approval only with a hold */
        return s->hold_ms > 0 ? ROW_CONFIRMED : ROW_DELETE;
    if (!strcmp(name, "OrderDispatchApproved") || !strcmp(name, "OrderCancelled") ||
        !strcmp(name, "OrderShipped") || !strcmp(name, "OrderDelivered"))
        return ROW_DELETE;
    return ROW_NONE;
}

static long long dispatch_at(const saga_t *s, const json_t *ev)
{
    return dm_int(json_object_get(ev, "metadata"), "occurred_at") + s->hold_ms;
}

/* Folds orders event ev (name without namespace) read at partition:offset into the table, in
 * one transaction with the partition's progress. *applied tells whether it changed anything (an
 * event below the progress was folded before). 0, or -1 with err ES_EIO. */
static int fold_row(saga_t *s, row_op_t op, const json_t *ev, const char *order, int partition,
                    long long offset, bool *applied, es_err_t *err)
{
    es_err_t e = ES_ERR_INIT;
    *applied = false;
    es_db_t *db = db_get(s, &e);
    if (!db)
        return db_failed(s, &e, "connect", err);
    if (es_db_begin(db, &e) != 0)
        return db_failed(s, &e, "begin", err);
    es_db_val_t pp[] = {ES_DB_I(partition)};
    json_t *rows = es_db_query(
        db, "SELECT next_offset FROM progress WHERE orders_partition = ? FOR UPDATE", pp, 1, &e);
    if (!rows)
        return db_failed(s, &e, "progress", err);
    json_t *row = json_array_get(rows, 0);
    bool seen = row && offset < dm_int(row, "next_offset");
    json_decref(rows);
    if (seen) { /* delivered again: the table has it already */
        es_db_rollback(db);
        return 0;
    }
    long long now = es_wall_ms();
    int rc = 0;
    if (op == ROW_INSERT) {
        es_db_val_t p[] = {ES_DB_I(partition),
                           ES_DB_S(order),
                           ES_DB_I(dm_int(ev, "reserve_by")),
                           ES_DB_I(dm_int(ev, "pay_by")),
                           ES_DB_I(offset),
                           ES_DB_I(now)};
        rc = es_db_exec(db,
                        "INSERT IGNORE INTO open_orders (orders_partition, order_id, status, "
                        "reserve_by, pay_by, folded_offset, updated_at) "
                        "VALUES (?, ?, 'placed', ?, ?, ?, ?)",
                        p, sizeof p / sizeof *p, NULL, &e);
    } else if (op == ROW_RESERVED || op == ROW_CONFIRMED) {
        es_db_val_t p[] = {ES_DB_S(op == ROW_RESERVED ? "stock_reserved" : "confirmed"),
                           ES_DB_I(op == ROW_CONFIRMED ? dispatch_at(s, ev) : 0),
                           ES_DB_I(offset),
                           ES_DB_I(now),
                           ES_DB_I(partition),
                           ES_DB_S(order)};
        rc = es_db_exec(db,
                        "UPDATE open_orders SET status = ?, dispatch_at = ?, folded_offset = ?, "
                        "updated_at = ? WHERE orders_partition = ? AND order_id = ?",
                        p, sizeof p / sizeof *p, NULL, &e);
    } else {
        es_db_val_t p[] = {ES_DB_I(partition), ES_DB_S(order)};
        rc = es_db_exec(db, "DELETE FROM open_orders WHERE orders_partition = ? AND order_id = ?",
                        p, 2, NULL, &e);
    }
    if (rc != 0)
        return db_failed(s, &e, "open order", err);
    es_db_val_t q[] = {ES_DB_I(partition), ES_DB_I(offset + 1), ES_DB_I(now)};
    if (es_db_exec(db,
                   "INSERT INTO progress (orders_partition, next_offset, updated_at) "
                   "VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE "
                   "next_offset = GREATEST(next_offset, VALUES(next_offset)), "
                   "updated_at = VALUES(updated_at)",
                   q, 3, NULL, &e) != 0)
        return db_failed(s, &e, "progress", err);
    if (es_db_commit(db, &e) != 0) {
        /* a commit lost with its connection may have happened: the redelivered event will then
         * be seen as folded, so memory is read again from the table rather than folded here */
        s->loaded = false;
        return db_failed(s, &e, "commit", err);
    }
    *applied = true;
    return 0;
}

/* The same change in memory, once the table has it. */
static void fold_memory(saga_t *s, row_op_t op, const json_t *ev, const char *order, int partition)
{
    json_t *o = json_object_get(s->open, order);
    if (op == ROW_INSERT && !o) {
        json_object_set_new(s->open, order,
                            json_pack("{s:i, s:s, s:I, s:I, s:I, s:I}", "partition", partition,
                                      "status", "placed", "reserve_by", dm_int(ev, "reserve_by"),
                                      "pay_by", dm_int(ev, "pay_by"), "dispatch_at", (json_int_t)0,
                                      "sent_at", (json_int_t)0));
    } else if ((op == ROW_RESERVED || op == ROW_CONFIRMED) && o) {
        json_object_set_new(o, "status",
                            json_string(op == ROW_RESERVED ? "stock_reserved" : "confirmed"));
        json_object_set_new(o, "dispatch_at",
                            json_integer(op == ROW_CONFIRMED ? dispatch_at(s, ev) : 0));
        json_object_set_new(o, "sent_at", json_integer(0));
    } else if (op == ROW_DELETE) {
        json_object_del(s->open, order);
    }
}

/* sql_head followed by " IN (?, ?, ...)" with one placeholder per owned partition, and the
 * parameters (both owned by the caller). */
static char *owned_in(const saga_t *s, const char *sql_head, es_db_val_t **params)
{
    size_t cap = strlen(sql_head) + 16 + 3 * s->n_owned;
    char *sql = xmalloc(cap);
    int len = snprintf(sql, cap, "%s IN (?", sql_head);
    for (size_t i = 1; i < s->n_owned; i++)
        len += snprintf(sql + len, cap - (size_t)len, ", ?");
    snprintf(sql + len, cap - (size_t)len, ")");
    *params = xcalloc(s->n_owned, sizeof **params);
    for (size_t i = 0; i < s->n_owned; i++)
        (*params)[i] = ES_DB_I(s->owned[i]);
    return sql;
}

typedef struct boot_arg {
    saga_t *s;
    int partition;
    size_t folded;
} boot_arg_t;

static int boot_event(void *arg, const char *type, const json_t *ev, long long offset,
                      es_err_t *err)
{
    boot_arg_t *a = arg;
    const char *order = dm_str(ev, "order_id");
    row_op_t op = strncmp(type, ORDERS_NS, strlen(ORDERS_NS))
                      ? ROW_NONE
                      : row_op(a->s, type + strlen(ORDERS_NS));
    bool applied;
    if (op != ROW_NONE && order && *order) {
        if (fold_row(a->s, op, ev, order, a->partition, offset, &applied, err))
            return 1;
        a->folded += applied;
    }
    return 0;
}

/* A partition the table never folded (the first start after the in-memory saga, whose table
 * was rebuilt from the whole history at every start): folds its history once, then marks it
 * folded up to the end read. Partitions folded before are never read again. */
static int bootstrap(saga_t *s, int partition, es_err_t *err)
{
    boot_arg_t a = {s, partition, 0};
    long long next = 0;
    long timeout = es_env_long("EVENTSHOP_SAGA_REBUILD_TIMEOUT_MS", 120000);
    if (sb_runtime_read_history(s->rt, ORDERS_TOPIC, partition, boot_event, &a, (int)timeout, &next,
                                err) != 0)
        return es_set(err, ES_EIO, "reading %s[%d]", ORDERS_TOPIC, partition);
    es_err_t e = ES_ERR_INIT;
    es_db_t *db = db_get(s, &e);
    es_db_val_t q[] = {ES_DB_I(partition), ES_DB_I(next), ES_DB_I(es_wall_ms())};
    if (!db || es_db_exec(db,
                          "INSERT INTO progress (orders_partition, next_offset, updated_at) "
                          "VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE "
                          "next_offset = GREATEST(next_offset, VALUES(next_offset))",
                          q, 3, NULL, &e) != 0)
        return db_failed(s, &e, "progress", err);
    es_info("order saga: %s[%d] folded into the table once from its history (%zu events)",
            ORDERS_TOPIC, partition, a.folded);
    return 0;
}

/* Reads the open orders of the owned partitions into memory, after folding the history of any
 * owned partition the table has never seen. 0, or -1 with err. */
static int load(saga_t *s, es_err_t *err)
{
    json_object_clear(s->open);
    s->loaded = false;
    if (s->n_owned == 0) {
        s->loaded = true;
        return 0;
    }
    es_err_t e = ES_ERR_INIT;
    es_db_t *db = db_get(s, &e);
    if (!db)
        return db_failed(s, &e, "connect", err);
    es_db_val_t *params;
    char *sql =
        owned_in(s, "SELECT orders_partition FROM progress WHERE orders_partition", &params);
    json_t *known = es_db_query(db, sql, params, s->n_owned, &e);
    free(params);
    free(sql);
    if (!known)
        return db_failed(s, &e, "progress", err);
    for (size_t k = 0; k < s->n_owned; k++) {
        bool seen = false;
        size_t i;
        json_t *r;
        json_array_foreach(known, i, r) seen |= dm_int(r, "orders_partition") == s->owned[k];
        if (!seen && bootstrap(s, s->owned[k], err) != 0) {
            json_decref(known);
            return -1;
        }
    }
    json_decref(known);
    if (!(db = db_get(s, &e)))
        return db_failed(s, &e, "connect", err);
    sql = owned_in(s,
                   "SELECT orders_partition, order_id, status, reserve_by, pay_by, dispatch_at "
                   "FROM open_orders WHERE orders_partition",
                   &params);
    json_t *rows = es_db_query(db, sql, params, s->n_owned, &e);
    free(params);
    free(sql);
    if (!rows)
        return db_failed(s, &e, "open orders", err);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *order = dm_str(r, "order_id");
        if (order)
            json_object_set_new(
                s->open, order,
                json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}", "partition",
                          dm_int(r, "orders_partition"), "status", dm_str(r, "status") ?: "placed",
                          "reserve_by", dm_int(r, "reserve_by"), "pay_by", dm_int(r, "pay_by"),
                          "dispatch_at", dm_int(r, "dispatch_at"), "sent_at", (json_int_t)0));
    }
    json_decref(rows);
    s->loaded = true;
    es_info("order saga: %zu open orders read from the table for %zu orders partitions",
            json_object_size(s->open), s->n_owned);
    return 0;
}

static void saga_assigned(void *state, const char *topic, const int *partitions, size_t n)
{
    saga_t *s = state;
    if (strcmp(topic, ORDERS_TOPIC))
        return;
    free(s->owned);
    s->owned = xcalloc(n ? n : 1, sizeof *s->owned);
    memcpy(s->owned, partitions, n * sizeof *partitions);
    s->n_owned = n;
    es_err_t err = ES_ERR_INIT;
    if (load(s, &err) != 0) /* the tick tries again; events are folded into the table meanwhile */
        es_warn("order saga: reading open orders: %s", err.msg);
}

static void saga_release(void *state);

static void *saga_init(sb_runtime_t *rt, es_err_t *err)
{
    (void)err;
    saga_t *s = xcalloc(1, sizeof *s);
    s->open = json_object();
    s->rt = rt;
    s->loaded = true; /* nothing owned yet */
    s->hold_ms = es_env_long("EVENTSHOP_ORDER_DISPATCH_HOLD_MS", 0);
    if (s->hold_ms < 0)
        s->hold_ms = 0;
    es_err_t derr = ES_ERR_INIT;
    if (!db_get(s, &derr)) /* not fatal: folding waits for the database */
        es_warn("order saga: %s", derr.msg);
    return s;
}

static void saga_release(void *state)
{
    saga_t *s = state;
    if (!s)
        return;
    es_db_close(s->db);
    json_decref(s->open);
    free(s->owned);
    free(s);
}

/* --- reacting ----------------------------------------------------------------------------- */

static void per_sku(sb_out_t *out, const char *command, const char *order, const json_t *skus)
{
    size_t i;
    json_t *v;
    json_array_foreach(skus, i, v)
    {
        const char *sku = json_string_value(v);
        if (sku)
            sb_out_command(out, "inventory", command, sku,
                           json_pack("{s:s, s:s}", "sku", sku, "order_id", order));
    }
}

static void approve_dispatch(sb_out_t *out, const char *order)
{
    sb_out_command(out, "orders", ORDERS_NS "ApproveDispatch", order,
                   json_pack("{s:s}", "order_id", order));
}

static int on_orders(const saga_t *s, const char *name, const json_t *ev, const char *order,
                     sb_out_t *out)
{
    if (!strcmp(name, "OrderPlaced")) {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(ev, "lines"), i, l)
        {
            const char *sku = dm_str(l, "sku");
            if (!sku)
                return -1;
            sb_out_command(out, "inventory", "eventshop.inventory.ReserveStock", sku,
                           json_pack("{s:s, s:s, s:I}", "sku", sku, "order_id", order, "quantity",
                                     dm_int(l, "quantity")));
        }
    } else if (!strcmp(name, "OrderStockReserved")) {
        if (!dm_str(ev, "customer_id") || !dm_str(ev, "currency"))
            return -1;
        sb_out_command(out, "payments", "eventshop.payments.RequestPayment", order,
                       json_pack("{s:s, s:s, s:I, s:s}", "order_id", order, "customer_id",
                                 dm_str(ev, "customer_id"), "amount_minor",
                                 dm_int(ev, "total_minor"), "currency", dm_str(ev, "currency")));
    } else if (!strcmp(name, "OrderConfirmed")) {
        if (s->hold_ms == 0) /* with a hold, the tick approves once it is over */
            approve_dispatch(out, order);
    } else if (!strcmp(name, "OrderDispatchApproved")) {
        json_t *lines = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(ev, "lines"), i, l)
            json_array_append_new(lines, json_pack("{s:s, s:I}", "sku", dm_str(l, "sku") ?: "",
                                                   "quantity", dm_int(l, "quantity")));
        json_t *addr = json_object_get(ev, "shipping_address_enc");
        sb_out_command(out, "shipping", "eventshop.shipping.RequestShipment", order,
                       json_pack("{s:s, s:s, s:o, s:O}", "order_id", order, "customer_id",
                                 dm_str(ev, "customer_id") ?: "", "lines", lines,
                                 "shipping_address_enc", addr ? addr : json_null()));
    } else if (!strcmp(name, "OrderCancelled")) {
        per_sku(out, "eventshop.inventory.ReleaseStock", order, json_object_get(ev, "skus"));
        if (json_is_true(json_object_get(ev, "refund")))
            sb_out_command(out, "payments", "eventshop.payments.RefundPayment", order,
                           json_pack("{s:s, s:s}", "order_id", order, "reason", "order_cancelled"));
    } else if (!strcmp(name, "OrderRefundRequested")) {
        sb_out_command(out, "payments", "eventshop.payments.RefundPayment", order,
                       json_pack("{s:s, s:s}", "order_id", order, "reason", "order_cancelled"));
    } else if (!strcmp(name, "OrderShipped")) {
        per_sku(out, "eventshop.inventory.CommitStock", order, json_object_get(ev, "skus"));
    }
    return 0;
}

/* Folds an orders event into the table (and memory), when it was read from orders.events (a
 * replayed dead letter comes from elsewhere and has no place in the partition's progress). */
static int track(saga_t *s, const char *name, const json_t *ev, const char *order,
                 const sb_out_t *out, es_err_t *err)
{
    row_op_t op = row_op(s, name);
    const char *topic;
    int partition;
    long long offset;
    sb_out_source(out, &topic, &partition, &offset);
    if (op == ROW_NONE || !topic || strcmp(topic, ORDERS_TOPIC) || partition < 0)
        return 0;
    bool applied;
    if (fold_row(s, op, ev, order, partition, offset, &applied, err) != 0)
        return -1;
    if (applied && s->loaded)
        fold_memory(s, op, ev, order, partition);
    return 0;
}

static int saga_handle(void *state, const char *type, const json_t *ev, const char *traceparent,
                       sb_out_t *out, es_err_t *err)
{
    (void)traceparent;
    saga_t *s = state;
    const char *order = dm_str(ev, "order_id");
    if (!strncmp(type, ORDERS_NS, strlen(ORDERS_NS))) {
        const char *name = type + strlen(ORDERS_NS);
        if (!order || !*order) {
            sb_out_dead_letter(out, "an orders event without order_id");
            return 0;
        }
        if (on_orders(s, name, ev, order, out) != 0) {
            sb_out_dead_letter(out, "an orders event missing a field the saga needs");
            return 0;
        }
        if (track(s, name, ev, order, out, err) != 0)
            return -1; /* ES_EIO: the batch is retried */
        char labels[128];
        snprintf(labels, sizeof labels, "event=\"%.100s\"", name);
        es_metric_add(es_counter("eventshop_saga_transitions_total",
                                 "order events the saga acted on, by event (its state changes)",
                                 labels),
                      1);
        return 0;
    }
    if (!order || !*order) /* stock or payment events of no order: not the saga's */
        return 0;
    const char *sku = dm_str(ev, "sku");
    if (!strcmp(type, "eventshop.inventory.StockReserved") && sku) {
        sb_out_command(out, "orders", ORDERS_NS "RecordStockReserved", order,
                       json_pack("{s:s, s:s}", "order_id", order, "sku", sku));
    } else if (!strcmp(type, "eventshop.inventory.StockReservationRejected") && sku) {
        sb_out_command(out, "orders", ORDERS_NS "RecordStockRejected", order,
                       json_pack("{s:s, s:s}", "order_id", order, "sku", sku));
    } else if (!strcmp(type, "eventshop.payments.PaymentCaptured")) {
        sb_out_command(out, "orders", ORDERS_NS "ConfirmOrder", order,
                       json_pack("{s:s, s:s}", "order_id", order, "gateway_ref",
                                 dm_str(ev, "gateway_ref") ?: ""));
    } else if (!strcmp(type, "eventshop.payments.PaymentDeclined")) {
        sb_out_command(out, "orders", ORDERS_NS "CancelOrder", order,
                       json_pack("{s:s, s:s}", "order_id", order, "reason", "payment_declined"));
    } else if (!strcmp(type, "eventshop.shipping.ShipmentDispatched")) {
        sb_out_command(out, "orders", ORDERS_NS "MarkShipped", order,
                       json_pack("{s:s, s:s}", "order_id", order, "tracking_number",
                                 dm_str(ev, "tracking_number") ?: ""));
    } else if (!strcmp(type, "eventshop.shipping.ShipmentDelivered")) {
        sb_out_command(out, "orders", ORDERS_NS "MarkDelivered", order,
                       json_pack("{s:s}", "order_id", order));
    }
    return 0;
}

/* Acts on every open order past its deadline: cancels an order not reserved or not paid in time
 * (the decider ignores a cancel that comes after the order moved on, so a late one is harmless),
 * approves the dispatch of a confirmed order once its hold is over. */
static int saga_tick(void *state, long long now_ms, sb_out_t *out, es_err_t *err)
{
    saga_t *s = state;
    const char *order;
    json_t *o;
    static const char *const help = "orders cancelled because they missed a deadline";
    es_err_t e = ES_ERR_INIT;
    /* readiness while no event comes: the table's server is checked every few idle seconds (es_db
     * keeps the dependency and logs its changes); deadlines go on from memory meanwhile */
    es_db_t *db = db_get(s, &e);
    if (db)
        es_db_check(db, SAGA_DB_CHECK_MS, &e);
    if (!s->loaded && load(s, err) != 0)
        return -1;
    es_metric_t *missed_reservation =
        es_counter("eventshop_saga_deadlines_missed_total", help, "deadline=\"reservation\"");
    es_metric_t *missed_payment =
        es_counter("eventshop_saga_deadlines_missed_total", help, "deadline=\"payment\"");
    es_metric_set(es_gauge("eventshop_saga_open_orders", "orders the saga is waiting on", ""),
                  (double)json_object_size(s->open));
    json_object_foreach(s->open, order, o)
    {
        const char *status = dm_str(o, "status");
        bool placed = !strcmp(status, "placed"), confirmed = !strcmp(status, "confirmed");
        json_int_t by = placed      ? dm_int(o, "reserve_by")
                        : confirmed ? dm_int(o, "dispatch_at")
                                    : dm_int(o, "pay_by");
        if (by <= 0 || now_ms < by || now_ms - dm_int(o, "sent_at") < RESEND_MS)
            continue;
        bool first = !dm_int(o, "sent_at");
        json_object_set_new(o, "sent_at", json_integer(now_ms));
        if (confirmed) {
            approve_dispatch(out, order);
            continue;
        }
        if (first) /* the first cancel for this order, not a resend */
            es_metric_add(placed ? missed_reservation : missed_payment, 1);
        es_info("order '%s' missed its %s deadline: cancelling", order,
                placed ? "reservation" : "payment");
        sb_out_command(out, "orders", ORDERS_NS "CancelOrder", order,
                       json_pack("{s:s, s:s}", "order_id", order, "reason", "deadline"));
    }
    return 0;
}

const sb_subscriber_t sb_order_saga = {
    .name = "order-saga",
    .topics = saga_topics,
    .init_with = saga_init,
    .release = saga_release,
    .handle = saga_handle,
    .tick = saga_tick,
    .assigned = saga_assigned,
};
