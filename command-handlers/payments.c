#include "payments.h"
#include "dm_json.h"
#include <ctype.h>
#include <string.h>

#define ORDER_ID_MAX 128
#define REF_MAX      255

/* Emits an event of short name type; the payload is the payment's identity (order_id,
 * customer_id, amount_minor, currency from state) plus extra's members (stolen). */
static void emit(hd_decision_t *d, const char *type, const json_t *state, json_t *extra)
{
    char full[96];
    snprintf(full, sizeof full, PAYMENTS_NS "%s", type);
    json_t *p =
        json_pack("{s:s, s:s, s:I, s:s}", "order_id", dm_str(state, "order_id") ?: "",
                  "customer_id", dm_str(state, "customer_id") ?: "", "amount_minor",
                  dm_int(state, "amount_minor"), "currency", dm_str(state, "currency") ?: "");
    json_object_update(p, extra);
    json_decref(extra);
    hd_emit(d, full, p);
}

static int check_text(hd_decision_t *d, const json_t *cmd, const char *field, size_t max)
{
    const char *v = dm_str(cmd, field);
    if (!v || !*v || strlen(v) > max)
        return hd_reject(d, "invalid_field", "%s: must be 1 to %zu characters", field, max), -1;
    return 0;
}

static bool is_currency(const char *c)
{
    return c && strlen(c) == 3 && isupper((unsigned char)c[0]) && isupper((unsigned char)c[1]) &&
           isupper((unsigned char)c[2]);
}

static int decide_request(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    if (check_text(d, cmd, "customer_id", ORDER_ID_MAX))
        return 0;
    json_t *amount = json_object_get(cmd, "amount_minor");
    if (!json_is_integer(amount) || json_integer_value(amount) < 1 ||
        json_integer_value(amount) > PAYMENTS_MAX_AMOUNT)
        return hd_reject(d, "invalid_amount", "amount_minor: must be 1 to %lld",
                         PAYMENTS_MAX_AMOUNT);
    const char *currency = dm_str(cmd, "currency");
    if (!is_currency(currency))
        return hd_reject(d, "invalid_field", "currency: '%.8s' is not an ISO-4217 code",
                         currency ? currency : "");
    if (state) {
        /* the same request again (a redelivered saga command): harmless */
        if (dm_int(state, "amount_minor") == json_integer_value(amount) &&
            !strcmp(dm_str(state, "currency") ?: "", currency) &&
            !strcmp(dm_str(state, "customer_id") ?: "", dm_str(cmd, "customer_id")))
            return 0;
        return hd_reject(d, "payment_exists",
                         "order '%.128s' already has a payment of %lld %.3s for customer '%.64s'",
                         dm_str(cmd, "order_id"), (long long)dm_int(state, "amount_minor"),
                         dm_str(state, "currency") ?: "", dm_str(state, "customer_id") ?: "");
    }
    json_t *init =
        json_pack("{s:s, s:s, s:O, s:s}", "order_id", dm_str(cmd, "order_id"), "customer_id",
                  dm_str(cmd, "customer_id"), "amount_minor", amount, "currency", currency);
    emit(d, "PaymentRequested", init, json_object());
    json_decref(init);
    return 0;
}

static int decide_captured(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    if (check_text(d, cmd, "gateway_ref", REF_MAX))
        return 0;
    const char *ref = dm_str(cmd, "gateway_ref");
    const char *order = dm_str(state, "order_id");
    if (dm_is_status(state, "declined"))
        return hd_reject(d, "payment_declined", "the payment of order '%.128s' was declined",
                         order);
    if (!dm_is_status(state, "requested")) { /* captured, refund_requested or refunded */
        if (!strcmp(dm_str(state, "gateway_ref") ?: "", ref))
            return 0; /* the same capture again: harmless */
        return hd_reject(d, "already_captured",
                         "the payment of order '%.128s' was captured as '%.64s', not '%.64s'",
                         order, dm_str(state, "gateway_ref") ?: "", ref);
    }
    emit(d, "PaymentCaptured", state, json_pack("{s:s}", "gateway_ref", ref));
    return 0;
}

static int decide_declined(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    if (check_text(d, cmd, "reason", REF_MAX))
        return 0;
    const char *order = dm_str(state, "order_id");
    if (dm_is_status(state, "declined"))
        return 0; /* the same decline again: harmless */
    if (!dm_is_status(state, "requested"))
        return hd_reject(d, "already_captured",
                         "the payment of order '%.128s' was captured, it cannot be declined",
                         order);
    const char *ref = dm_str(cmd, "gateway_ref");
    emit(d, "PaymentDeclined", state,
         json_pack("{s:s, s:s}", "reason", dm_str(cmd, "reason"), "gateway_ref", ref ? ref : ""));
    return 0;
}

static int decide_refund(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    const char *order = dm_str(state, "order_id");
    if (dm_is_status(state, "refund_requested") || dm_is_status(state, "refunded"))
        return 0; /* refunded once, whatever the number of requests */
    if (dm_is_status(state, "declined"))
        return hd_reject(d, "payment_declined",
                         "the payment of order '%.128s' was declined: nothing to refund", order);
    if (!dm_is_status(state, "captured"))
        return hd_reject(d, "not_captured",
                         "the payment of order '%.128s' is not captured: nothing to refund", order);
    const char *reason = dm_str(cmd, "reason");
    if (reason && strlen(reason) > REF_MAX)
        return hd_reject(d, "invalid_field", "reason: must be at most %d characters", REF_MAX);
    emit(d, "PaymentRefundRequested", state,
         json_pack("{s:s, s:s}", "gateway_ref", dm_str(state, "gateway_ref") ?: "", "reason",
                   reason && *reason ? reason : "order_cancelled"));
    return 0;
}

static int decide_refunded(const json_t *state, const json_t *cmd, hd_decision_t *d)
{
    if (check_text(d, cmd, "refund_ref", REF_MAX))
        return 0;
    const char *order = dm_str(state, "order_id");
    const char *ref = dm_str(cmd, "refund_ref");
    if (dm_is_status(state, "refunded")) {
        if (!strcmp(dm_str(state, "refund_ref") ?: "", ref))
            return 0;
        return hd_reject(d, "already_refunded",
                         "the payment of order '%.128s' was refunded as '%.64s', not '%.64s'",
                         order, dm_str(state, "refund_ref") ?: "", ref);
    }
    if (!dm_is_status(state, "refund_requested"))
        return hd_reject(d, "refund_not_requested",
                         "no refund of the payment of order '%.128s' was requested", order);
    emit(d, "PaymentRefunded", state,
         json_pack("{s:s, s:s}", "gateway_ref", dm_str(state, "gateway_ref") ?: "", "refund_ref",
                   ref));
    return 0;
}

int payments_decide(const json_t *state, const char *cmd_type, const json_t *cmd,
                    const json_t *view, hd_decision_t *out)
{
    (void)view;
    if (strncmp(cmd_type, PAYMENTS_NS, strlen(PAYMENTS_NS)))
        return hd_reject(out, "unknown_command", "'%.128s' is not a payments command", cmd_type);
    const char *name = cmd_type + strlen(PAYMENTS_NS);
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *role = dm_str(meta, "actor_role");
    if (!role || strcmp(role, "admin"))
        return hd_reject(out, "forbidden", "role '%.16s' may not send payment commands",
                         role ? role : "");
    const char *order = dm_str(cmd, "order_id");
    const char *agg = dm_str(meta, "aggregate_id");
    if (!order || !*order || strlen(order) > ORDER_ID_MAX)
        return hd_reject(out, "invalid_field", "order_id: must be 1 to %d characters",
                         ORDER_ID_MAX);
    if (!agg || strcmp(order, agg))
        return hd_reject(out, "invalid_field",
                         "metadata.aggregate_id: '%.128s' is not the order_id '%.128s'",
                         agg ? agg : "", order);

    if (!strcmp(name, "RequestPayment"))
        return decide_request(state, cmd, out);
    bool known = !strcmp(name, "RecordPaymentCaptured") || !strcmp(name, "RecordPaymentDeclined") ||
                 !strcmp(name, "RefundPayment") || !strcmp(name, "RecordPaymentRefunded");
    if (!known)
        return hd_reject(out, "unknown_command", "'%.128s' is not a payments command", cmd_type);
    if (!state)
        return hd_reject(out, "unknown_payment", "order '%.128s' has no payment", order);
    if (!strcmp(name, "RecordPaymentCaptured"))
        return decide_captured(state, cmd, out);
    if (!strcmp(name, "RecordPaymentDeclined"))
        return decide_declined(state, cmd, out);
    if (!strcmp(name, "RefundPayment"))
        return decide_refund(state, cmd, out);
    return decide_refunded(state, cmd, out);
}

json_t *payments_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strncmp(event_type, PAYMENTS_NS, strlen(PAYMENTS_NS)))
        return state;
    const char *name = event_type + strlen(PAYMENTS_NS);
    static const struct {
        const char *event, *status;
    } moves[] = {
        {"PaymentRequested", "requested"}, {"PaymentCaptured", "captured"},
        {"PaymentDeclined", "declined"},   {"PaymentRefundRequested", "refund_requested"},
        {"PaymentRefunded", "refunded"},
    };
    const char *status = NULL;
    for (size_t i = 0; i < sizeof moves / sizeof *moves; i++)
        if (!strcmp(moves[i].event, name))
            status = moves[i].status;
    if (!status)
        return state;
    if (!state)
        state = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:I}", "order_id",
                          dm_str(payload, "order_id") ?: "", "customer_id",
                          dm_str(payload, "customer_id") ?: "", "amount_minor",
                          dm_int(payload, "amount_minor"), "currency",
                          dm_str(payload, "currency") ?: "", "status", status, "gateway_ref", "",
                          "decline_reason", "", "refund_ref", "", "version", (json_int_t)0);
    json_object_set_new(state, "status", json_string(status));
    const char *ref = dm_str(payload, "gateway_ref");
    if (ref && *ref)
        json_object_set_new(state, "gateway_ref", json_string(ref));
    if (!strcmp(name, "PaymentDeclined"))
        json_object_set_new(state, "decline_reason", json_string(dm_str(payload, "reason") ?: ""));
    if (!strcmp(name, "PaymentRefunded"))
        json_object_set_new(state, "refund_ref", json_string(dm_str(payload, "refund_ref") ?: ""));
    return state;
}
