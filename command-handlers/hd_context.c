#include "hd_context.h"
#include "catalog.h"
#include "catalog_view.h"
#include "inventory.h"
#include "orders.h"
#include "payments.h"
#include "pricing.h"
#include "shipping.h"
#include "users.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hd_decision_init(hd_decision_t *d)
{
    d->events = json_array();
    d->reason = NULL;
    d->detail[0] = '\0';
    d->keep_events = false;
}

void hd_decision_release(hd_decision_t *d)
{
    json_decref(d->events);
    d->events = NULL;
}

static void hd_set_rejected(hd_decision_t *d, const char *reason, bool keep_events, const char *fmt,
                            va_list ap)
{
    vsnprintf(d->detail, sizeof d->detail, fmt, ap);
    d->reason = reason;
    d->keep_events = keep_events;
    if (!keep_events)
        json_array_clear(d->events);
}

int hd_reject(hd_decision_t *d, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hd_set_rejected(d, reason, false, fmt, ap);
    va_end(ap);
    return 0;
}

int hd_reject_keep_events(hd_decision_t *d, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hd_set_rejected(d, reason, true, fmt, ap);
    va_end(ap);
    return 0;
}

void hd_emit(hd_decision_t *d, const char *type, json_t *payload)
{
    /* built key by key: json_pack parses its format on every event */
    json_t *e = json_object();
    json_object_set_new_nocheck(e, "type", json_string(type));
    json_object_set_new_nocheck(e, "payload", payload);
    json_array_append_new(d->events, e);
}

static const hd_view_t catalog_only[] = {{"catalog.events", catalog_view_fold}};
static const hd_view_t catalog_and_prices[] = {{"catalog.events", catalog_view_fold},
                                               {"pricing.events", orders_pricing_fold}};
#define VIEWS(v) v, sizeof v / sizeof *v

/* the one table of contexts: a role binary picks its context by name */
static const hd_context_t contexts[] = {
    {"catalog", CATALOG_NS "ProductState", catalog_decide, catalog_evolve, NULL, 0},
    {"inventory", INVENTORY_NS "StockItemState", inventory_decide, inventory_evolve,
     VIEWS(catalog_only)},
    {"users", USERS_NS "UserState", users_decide, users_evolve, NULL, 0},
    {"pricing", PRICING_NS "PriceState", pricing_decide, pricing_evolve, VIEWS(catalog_only)},
    {"shipping", SHIPPING_NS "ShipmentState", shipping_decide, shipping_evolve, NULL, 0},
    {"payments", PAYMENTS_NS "PaymentState", payments_decide, payments_evolve, NULL, 0},
    {"orders", ORDERS_NS "OrderState", orders_decide, orders_evolve, VIEWS(catalog_and_prices)},
};
/* the same names in the same order, for hd_context_names */
static const char *const context_names[] = {"catalog",  "inventory", "users",  "pricing",
                                            "shipping", "payments",  "orders", NULL};

const hd_context_t *hd_context_find(const char *name)
{
    for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) {
        if (name && strcmp(contexts[i].name, name) == 0)
            return &contexts[i];
    }
    return NULL;
}

const char *const *hd_context_names(void)
{
    return context_names;
}

json_t *hd_replay(const hd_context_t *ctx, json_t *state, const json_t *events)
{
    size_t i;
    const json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        const json_t *payload = json_object_get(ev, "payload");
        if (!type || !payload)
            continue;
        state = ctx->evolve(state, type, payload);
        json_t *version =
            json_object_get(json_object_get(payload, "metadata"), "aggregate_version");
        if (state && json_is_integer(version))
            json_object_set_new(state, "version", json_integer(json_integer_value(version)));
    }
    return state;
}
