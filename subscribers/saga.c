/* order-saga — the fulfilment saga (orders-flow brief): turns the events of orders, inventory,
 * payments and shipping into the next commands, and cancels orders past their deadlines.
 *
 * Nearly stateless: every event carries what its next command needs (OrderCancelled lists the
 * skus to release and whether to refund; a capture after a cancel comes back from the orders
 * decider as OrderRefundRequested), so the decider, the single owner of an order, settles every
 * race. The only memory is the deadline table of open orders, rebuilt from orders.events at
 * start (single replica: see the deploy notes). */
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "ev_codec.h"
#include "sb_runtime.h"
#include "sr_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESEND_MS 5000 /* a deadline cancel not yet seen applied is sent again after this */

static const char *const saga_topics[] = {"orders.events", "inventory.events", "payments.events",
                                          "shipping.events", NULL};

typedef struct saga {
    json_t *open; /* order id -> {"status", "reserve_by", "pay_by", "sent_at"} */
} saga_t;

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* Folds an orders event into the deadline table (idempotent: events may come twice). */
static void track(saga_t *s, const char *type, const json_t *ev)
{
    const char *order = str(ev, "order_id");
    if (!order)
        return;
    if (!strcmp(type, "eventshop.orders.OrderPlaced")) {
        json_t *o = json_object_get(s->open, order);
        if (!o)
            json_object_set_new(s->open, order,
                                json_pack("{s:s, s:I, s:I, s:I}", "status", "placed", "reserve_by",
                                          num(ev, "reserve_by"), "pay_by", num(ev, "pay_by"),
                                          "sent_at", (json_int_t)0));
    } else if (!strcmp(type, "eventshop.orders.OrderStockReserved")) {
        json_t *o = json_object_get(s->open, order);
        if (o) {
            json_object_set_new(o, "status", json_string("stock_reserved"));
            json_object_set_new(o, "sent_at", json_integer(0));
        }
    } else if (!strcmp(type, "eventshop.orders.OrderConfirmed") ||
               !strcmp(type, "eventshop.orders.OrderCancelled") ||
               !strcmp(type, "eventshop.orders.OrderShipped") ||
               !strcmp(type, "eventshop.orders.OrderDelivered")) {
        json_object_del(s->open, order); /* no deadline any more */
    }
}

/* --- rebuilding the deadline table ------------------------------------------------------ */

typedef struct rebuild_arg {
    saga_t *s;
    ev_codec_t *codec;
    size_t n;
} rebuild_arg_t;

static int rebuild_msg(const rd_kafka_message_t *m, void *arg)
{
    rebuild_arg_t *a = arg;
    const char *type = NULL;
    json_t *ev = NULL;
    es_err_t err = ES_ERR_INIT;
    if (!m->payload || ev_decode(a->codec, m->payload, m->len, &type, &ev, &err) != 0)
        return 0; /* the live consumer dead-letters it */
    track(a->s, type, ev);
    json_decref(ev);
    a->n++;
    return 0;
}

static int rebuild(saga_t *s, es_err_t *err)
{
    int rc = -1;
    sr_client_t *sr = NULL;
    ev_codec_t *codec = NULL;
    rd_kafka_t *rk = NULL;
    char errstr[256];
    if (!(sr = sr_client_new(es_env_registry_url(), err)) ||
        !(codec = ev_codec_new(es_env_schema_dir(), sr, err)))
        goto out;
    rd_kafka_conf_t *conf = es_kafka_conf_new("eventshop-order-saga-rebuild", NULL, err);
    if (!conf)
        goto out;
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr))) {
        rd_kafka_conf_destroy(conf);
        es_set(err, ES_EIO, "kafka: %s", errstr);
        goto out;
    }
    int np = es_kafka_partition_count(rk, "orders.events", err);
    if (np < 0)
        goto out;
    rebuild_arg_t a = {s, codec, 0};
    long timeout = es_env_long("EVENTSHOP_SAGA_REBUILD_TIMEOUT_MS", 120000);
    for (int p = 0; p < np; p++) {
        if (es_kafka_read_partition("orders.events", p, rebuild_msg, &a, (int)timeout, err) < 0)
            goto out;
    }
    es_info("order saga: %zu orders events read, %zu orders open", a.n, json_object_size(s->open));
    rc = 0;
out:
    if (rk)
        rd_kafka_destroy(rk);
    ev_codec_free(codec);
    sr_client_free(sr);
    return rc;
}

static void *saga_init(es_err_t *err)
{
    saga_t *s = xcalloc(1, sizeof *s);
    s->open = json_object();
    if (rebuild(s, err) != 0) {
        json_decref(s->open);
        free(s);
        return NULL;
    }
    return s;
}

static void saga_release(void *state)
{
    saga_t *s = state;
    if (!s)
        return;
    json_decref(s->open);
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

static int on_orders(const char *name, const json_t *ev, const char *order, sb_out_t *out)
{
    if (!strcmp(name, "OrderPlaced")) {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(ev, "lines"), i, l)
        {
            const char *sku = str(l, "sku");
            if (!sku)
                return -1;
            sb_out_command(out, "inventory", "eventshop.inventory.ReserveStock", sku,
                           json_pack("{s:s, s:s, s:I}", "sku", sku, "order_id", order, "quantity",
                                     num(l, "quantity")));
        }
    } else if (!strcmp(name, "OrderStockReserved")) {
        if (!str(ev, "customer_id") || !str(ev, "currency"))
            return -1;
        sb_out_command(out, "payments", "eventshop.payments.RequestPayment", order,
                       json_pack("{s:s, s:s, s:I, s:s}", "order_id", order, "customer_id",
                                 str(ev, "customer_id"), "amount_minor", num(ev, "total_minor"),
                                 "currency", str(ev, "currency")));
    } else if (!strcmp(name, "OrderConfirmed")) {
        json_t *lines = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(ev, "lines"), i, l)
            json_array_append_new(lines, json_pack("{s:s, s:I}", "sku", str(l, "sku") ?: "",
                                                   "quantity", num(l, "quantity")));
        json_t *addr = json_object_get(ev, "shipping_address_enc");
        sb_out_command(out, "shipping", "eventshop.shipping.RequestShipment", order,
                       json_pack("{s:s, s:s, s:o, s:O}", "order_id", order, "customer_id",
                                 str(ev, "customer_id") ?: "", "lines", lines,
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

static int saga_handle(void *state, const char *type, const json_t *ev, const char *traceparent,
                       sb_out_t *out, es_err_t *err)
{
    (void)traceparent;
    (void)err;
    saga_t *s = state;
    const char *order = str(ev, "order_id");
    if (!strncmp(type, "eventshop.orders.", 17)) {
        if (!order || !*order) {
            sb_out_dead_letter(out, "an orders event without order_id");
            return 0;
        }
        if (on_orders(type + 17, ev, order, out) != 0) {
            sb_out_dead_letter(out, "an orders event missing a field the saga needs");
            return 0;
        }
        track(s, type, ev);
        char labels[128];
        snprintf(labels, sizeof labels, "event=\"%.100s\"", type + 17);
        es_metric_add(es_counter("eventshop_saga_transitions_total",
                                 "order events the saga acted on, by event (its state changes)",
                                 labels),
                      1);
        return 0;
    }
    if (!order || !*order) /* stock or payment events of no order: not the saga's */
        return 0;
    const char *sku = str(ev, "sku");
    if (!strcmp(type, "eventshop.inventory.StockReserved") && sku) {
        sb_out_command(out, "orders", "eventshop.orders.RecordStockReserved", order,
                       json_pack("{s:s, s:s}", "order_id", order, "sku", sku));
    } else if (!strcmp(type, "eventshop.inventory.StockReservationRejected") && sku) {
        sb_out_command(out, "orders", "eventshop.orders.RecordStockRejected", order,
                       json_pack("{s:s, s:s}", "order_id", order, "sku", sku));
    } else if (!strcmp(type, "eventshop.payments.PaymentCaptured")) {
        sb_out_command(out, "orders", "eventshop.orders.ConfirmOrder", order,
                       json_pack("{s:s, s:s}", "order_id", order, "gateway_ref",
                                 str(ev, "gateway_ref") ?: ""));
    } else if (!strcmp(type, "eventshop.payments.PaymentDeclined")) {
        sb_out_command(out, "orders", "eventshop.orders.CancelOrder", order,
                       json_pack("{s:s, s:s}", "order_id", order, "reason", "payment_declined"));
    } else if (!strcmp(type, "eventshop.shipping.ShipmentDispatched")) {
        sb_out_command(out, "orders", "eventshop.orders.MarkShipped", order,
                       json_pack("{s:s, s:s}", "order_id", order, "tracking_number",
                                 str(ev, "tracking_number") ?: ""));
    } else if (!strcmp(type, "eventshop.shipping.ShipmentDelivered")) {
        sb_out_command(out, "orders", "eventshop.orders.MarkDelivered", order,
                       json_pack("{s:s}", "order_id", order));
    }
    return 0;
}

/* Cancels every open order past its deadline; the decider ignores a cancel that comes after
 * the order moved on, so a late one is harmless. */
static int saga_tick(void *state, long long now_ms, sb_out_t *out, es_err_t *err)
{
    (void)err;
    saga_t *s = state;
    const char *order;
    json_t *o;
    static const char *const help = "orders cancelled because they missed a deadline";
    es_metric_t *missed_reservation =
        es_counter("eventshop_saga_deadlines_missed_total", help, "deadline=\"reservation\"");
    es_metric_t *missed_payment =
        es_counter("eventshop_saga_deadlines_missed_total", help, "deadline=\"payment\"");
    es_metric_set(es_gauge("eventshop_saga_open_orders", "orders the saga is waiting on", ""),
                  (double)json_object_size(s->open));
    json_object_foreach(s->open, order, o)
    {
        const char *status = str(o, "status");
        json_int_t by = !strcmp(status, "placed") ? num(o, "reserve_by") : num(o, "pay_by");
        if (by <= 0 || now_ms < by || now_ms - num(o, "sent_at") < RESEND_MS)
            continue;
        if (!num(o, "sent_at")) /* the first cancel for this order, not a resend */
            es_metric_add(!strcmp(status, "placed") ? missed_reservation : missed_payment, 1);
        json_object_set_new(o, "sent_at", json_integer(now_ms));
        es_info("order '%s' missed its %s deadline: cancelling", order,
                !strcmp(status, "placed") ? "reservation" : "payment");
        sb_out_command(out, "orders", "eventshop.orders.CancelOrder", order,
                       json_pack("{s:s, s:s}", "order_id", order, "reason", "deadline"));
    }
    return 0;
}

const sb_subscriber_t sb_order_saga = {
    .name = "order-saga",
    .topics = saga_topics,
    .init = saga_init,
    .release = saga_release,
    .handle = saga_handle,
    .tick = saga_tick,
};
