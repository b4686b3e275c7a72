#include "notify_templates.h"
#include "es_mem.h"
#include "es_uuid.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *short_name(const char *type)
{
    const char *dot = type ? strrchr(type, '.') : NULL;
    return dot ? dot + 1 : type ? type : "";
}

nt_kind_t nt_kind_of(const char *event_type, const json_t *event)
{
    const char *name = short_name(event_type);
    if (!strcmp(name, "OrderConfirmed"))
        return NT_ORDER_CONFIRMED;
    if (!strcmp(name, "PaymentDeclined"))
        return NT_PAYMENT_DECLINED;
    if (!strcmp(name, "OrderCancelled")) {
        const char *reason = json_string_value(json_object_get(event, "reason"));
        return reason && !strcmp(reason, "payment_declined") ? NT_NONE : NT_ORDER_CANCELLED;
    }
    if (!strcmp(name, "ShipmentDispatched"))
        return NT_ORDER_SHIPPED;
    if (!strcmp(name, "ShipmentDelivered"))
        return NT_ORDER_DELIVERED;
    return NT_NONE;
}

const char *nt_kind_name(nt_kind_t kind)
{
    static const char *const names[] = {"order_confirmed", "payment_declined", "order_cancelled",
                                        "order_shipped", "order_delivered"};
    return kind < NT_NONE ? names[kind] : "none";
}

void nt_money_format(long long minor, const char *currency, char *out, size_t cap)
{
    const char *cur = currency && *currency ? currency : "";
    bool no_decimals = !strcmp(cur, "JPY") || !strcmp(cur, "KRW");
    const char *sign = minor < 0 ? "-" : "";
    unsigned long long v = minor < 0 ? -(unsigned long long)minor : (unsigned long long)minor;
    if (no_decimals)
        snprintf(out, cap, "%s%llu %s", sign, v, cur);
    else
        snprintf(out, cap, "%s%llu.%02llu %s", sign, v / 100, v % 100, cur);
    size_t n = strlen(out);
    if (n > 0 && out[n - 1] == ' ')
        out[n - 1] = '\0';
}

static const char *reason_text(const char *reason)
{
    if (!reason)
        return "it could not be completed";
    if (!strcmp(reason, "out_of_stock"))
        return "an item is out of stock";
    if (!strcmp(reason, "customer"))
        return "you asked us to cancel it";
    if (!strcmp(reason, "deadline"))
        return "it was not completed in time";
    if (!strcmp(reason, "payment_declined"))
        return "the payment was declined";
    return reason;
}

void nt_render(nt_kind_t kind, const nt_facts_t *f, nt_message_t *out)
{
    const char *order = f->order_id ? f->order_id : "";
    char total[64] = "";
    if (f->total_minor >= 0)
        nt_money_format(f->total_minor, f->currency, total, sizeof total);
    char total_line[96] = "";
    if (*total)
        snprintf(total_line, sizeof total_line, "Order total: %s\n", total);
    const char *tracking = f->tracking_number ? f->tracking_number : "";
    switch (kind) {
    case NT_ORDER_CONFIRMED:
        out->subject = xasprintf("Your order %s is confirmed", order);
        out->text = xasprintf("Hello,\n\nthank you: your order %s is paid and confirmed.\n%s\n"
                              "We will let you know when it ships.\n\n-- eventshop\n",
                              order, total_line);
        out->sms =
            xasprintf("eventshop: order %s confirmed%s%s.", order, *total ? ", total " : "", total);
        break;
    case NT_PAYMENT_DECLINED:
        out->subject = xasprintf("Payment declined for order %s", order);
        out->text =
            xasprintf("Hello,\n\nthe payment for your order %s was declined (%s), so the order "
                      "was cancelled and nothing was charged.\n%s\n-- eventshop\n",
                      order, f->reason ? f->reason : "declined", total_line);
        out->sms =
            xasprintf("eventshop: payment for order %s declined; the order is cancelled.", order);
        break;
    case NT_ORDER_CANCELLED:
        out->subject = xasprintf("Your order %s is cancelled", order);
        out->text = xasprintf("Hello,\n\nyour order %s was cancelled because %s. Any payment "
                              "taken is refunded.\n%s\n-- eventshop\n",
                              order, reason_text(f->reason), total_line);
        out->sms = xasprintf("eventshop: order %s cancelled.", order);
        break;
    case NT_ORDER_SHIPPED:
        out->subject = xasprintf("Your order %s has shipped", order);
        out->text = xasprintf("Hello,\n\nyour order %s is on its way.\nTracking number: %s\n%s\n"
                              "-- eventshop\n",
                              order, tracking, total_line);
        out->sms = xasprintf("eventshop: order %s shipped, tracking %s.", order, tracking);
        break;
    case NT_ORDER_DELIVERED:
    default:
        out->subject = xasprintf("Your order %s was delivered", order);
        out->text = xasprintf("Hello,\n\nyour order %s was delivered (tracking number %s).\n%s\n"
                              "Enjoy!\n\n-- eventshop\n",
                              order, tracking, total_line);
        out->sms = xasprintf("eventshop: order %s delivered.", order);
        break;
    }
}

void nt_message_release(nt_message_t *m)
{
    free(m->subject);
    free(m->text);
    free(m->sms);
    m->subject = m->text = m->sms = NULL;
}

void nt_notification_key(const char *event_id, nt_kind_t kind, char out[NT_KEY_LEN])
{
    /* kind names have no ':', so "kind:event_id" keeps every pair apart; the namespace keeps
     * these ids apart from every other id derived from the same event */
    char *name = xasprintf("%s:%s", nt_kind_name(kind), event_id ? event_id : "");
    es_uuid_derive("eventshop-notification", name, out);
    free(name);
}

void nt_message_id(const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "<%s@eventshop.local>", key ? key : "");
}

bool nt_header_safe(const char *s)
{
    if (!s || !*s || strlen(s) > 254)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

char *nt_email_build(const char *from, const char *to, const nt_message_t *m,
                     const char *message_id, long long date_ms)
{
    if (!nt_header_safe(from) || !nt_header_safe(to) || !nt_header_safe(m->subject) ||
        !nt_header_safe(message_id))
        return NULL;
    char date[64];
    time_t t = (time_t)(date_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    /* the body with CRLF line ends */
    size_t n = strlen(m->text);
    char *body = xmalloc(2 * n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (m->text[i] == '\n' && (i == 0 || m->text[i - 1] != '\r'))
            body[j++] = '\r';
        body[j++] = m->text[i];
    }
    body[j] = '\0';
    char *msg = xasprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n"
                          "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: 8bit\r\n\r\n%s",
                          from, to, m->subject, date, message_id, body);
    free(body);
    return msg;
}
