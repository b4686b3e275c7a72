/* The shipping subscriber: on ShipmentRequested it books the parcel with the carrier (the
 * Idempotency-Key derives from the order id, so a redelivered event books nothing new) and
 * records the dispatch; its tick polls the carrier for the shipments the read model
 * (eventshop_shipping.shipments) shows dispatched and records their delivery. Both commands are
 * idempotent in the shipping decider, so repeats are harmless. */
#include "carrier.h"
#include "dm_json.h"
#include "es_db.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "sb_runtime.h"
#include <stdlib.h>
#include <string.h>

#define SHIPPING_NS     "eventshop.shipping."
#define POLL_BATCH      100
#define REPORT_QUIET_MS 10000 /* do not record the same delivery again within this time */

struct shipping {
    carrier_t *carrier;
    es_db_t *db; /* the shipments read model, opened on first poll */
    long poll_ms;
    long long next_poll;
    json_t *reported; /* order id -> when its delivery was last recorded */
};

static void *shipping_init(es_err_t *err)
{
    struct shipping *s = xcalloc(1, sizeof *s);
    s->carrier = carrier_http_new(es_env_str("EVENTSHOP_CARRIER_URL", "http://127.0.0.1:8091"),
                                  es_env_long("EVENTSHOP_CARRIER_TIMEOUT_MS", 5000), err);
    if (!s->carrier) {
        free(s);
        return NULL;
    }
    s->poll_ms = es_env_long("EVENTSHOP_SHIPPING_POLL_MS", 1000);
    s->reported = json_object();
    return s;
}

static void shipping_release(void *state)
{
    struct shipping *s = state;
    if (!s)
        return;
    carrier_free(s->carrier);
    es_db_close(s->db);
    json_decref(s->reported);
    free(s);
}

static int shipping_handle(void *state, const char *event_type, const json_t *event,
                           const char *traceparent, sb_out_t *out, es_err_t *err)
{
    struct shipping *s = state;
    (void)traceparent;
    if (strcmp(event_type, SHIPPING_NS "ShipmentRequested"))
        return 0;
    const char *order = dm_str(event, "order_id");
    if (!order || !*order) {
        sb_out_dead_letter(out, "ShipmentRequested without order_id");
        return 0;
    }
    char tracking[CARRIER_TRACKING_MAX + 1];
    es_err_t cerr = ES_ERR_INIT;
    if (carrier_book(s->carrier, order, json_object_get(event, "lines"), tracking, &cerr)) {
        if (cerr.code == ES_EINVAL) { /* the carrier will never take it */
            sb_out_dead_letter(out, cerr.msg);
            return 0;
        }
        return es_set(err, ES_EIO, "booking order '%s': %s", order, cerr.msg);
    }
    es_info("order '%s' booked with the carrier, tracking '%s'", order, tracking);
    sb_out_command(out, "shipping", SHIPPING_NS "RecordDispatch", order,
                   json_pack("{s:s, s:s, s:s}", "order_id", order, "tracking_number", tracking,
                             "carrier", CARRIER_NAME));
    return 0;
}

static int shipping_tick(void *state, long long now_ms, sb_out_t *out, es_err_t *err)
{
    struct shipping *s = state;
    (void)err;
    if (now_ms < s->next_poll)
        return 0;
    s->next_poll = now_ms + s->poll_ms;
    es_err_t derr = ES_ERR_INIT;
    if (!s->db) {
        if (!(s->db = es_db_open("shipping", &derr))) {
            es_metrics_set_dependency("mysql", false);
            es_warn("shipping poll: %s", derr.msg);
            return 0; /* the read model is not there yet: try at the next tick */
        }
        /* from here a lost connection is reopened by es_db, with backoff */
        es_db_set_reconnect(s->db, "mysql");
    }
    es_db_val_t p[] = {ES_DB_I(POLL_BATCH)};
    json_t *rows = es_db_query(s->db,
                               "SELECT order_id, tracking_number FROM shipments WHERE status = "
                               "'dispatched' ORDER BY dispatched_at LIMIT ?",
                               p, 1, &derr);
    if (!rows) {
        /* es_db logs a lost connection and its return; other failures are worth a line */
        if (es_metrics_is_ready())
            es_warn("shipping poll: %s", derr.msg);
        return 0;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *order = dm_str(row, "order_id");
        const char *tracking = dm_str(row, "tracking_number");
        json_t *last = json_object_get(s->reported, order ? order : "");
        if (!order || !tracking || (last && now_ms - json_integer_value(last) < REPORT_QUIET_MS))
            continue;
        bool delivered = false;
        long long at = 0;
        es_err_t cerr = ES_ERR_INIT;
        if (carrier_track(s->carrier, tracking, now_ms, &delivered, &at, &cerr)) {
            es_warn("tracking '%s' of order '%s': %s", tracking, order, cerr.msg);
            continue;
        }
        if (!delivered)
            continue;
        es_info("order '%s' delivered (tracking '%s')", order, tracking);
        sb_out_command(out, "shipping", SHIPPING_NS "RecordDelivery", order,
                       json_pack("{s:s, s:I}", "order_id", order, "delivered_at", at));
        json_object_set_new(s->reported, order, json_integer(now_ms));
    }
    /* forget old reports so the map stays small */
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe(s->reported, tmp, k, v)
    {
        if (now_ms - json_integer_value(v) > 10 * REPORT_QUIET_MS)
            json_object_del(s->reported, k);
    }
    json_decref(rows);
    return 0;
}

static const char *const shipping_topics[] = {"shipping.events", NULL};

const sb_subscriber_t sb_shipping = {
    .name = "shipping",
    .topics = shipping_topics,
    .init = shipping_init,
    .release = shipping_release,
    .handle = shipping_handle,
    .tick = shipping_tick,
};
