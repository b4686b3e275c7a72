/* notify_templates — the notifications subscriber's pure part: which events notify, the one
 * plain-text template per kind, and the RFC 5322 message around it. No I/O, no clock. */
#ifndef NOTIFY_TEMPLATES_H
#define NOTIFY_TEMPLATES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    NT_ORDER_CONFIRMED,
    NT_PAYMENT_DECLINED,
    NT_ORDER_CANCELLED,
    NT_ORDER_SHIPPED,
    NT_ORDER_DELIVERED,
    NT_NONE
} nt_kind_t;

/* The kind of notification an event of full name event_type (borrowed) triggers: OrderConfirmed,
 * PaymentDeclined, OrderCancelled (not for reason "payment_declined": the decline already told
 * the customer), ShipmentDispatched (shipped, with the tracking number), ShipmentDelivered;
 * NT_NONE otherwise. event (borrowed) is the decoded event. */
nt_kind_t nt_kind_of(const char *event_type, const json_t *event);
/* "order_confirmed", ... (the NotificationKind enum symbols); static. */
const char *nt_kind_name(nt_kind_t kind);

/* What a template is filled with; strings borrowed, any may be NULL (then left out). */
typedef struct nt_facts {
    const char *order_id;
    long long total_minor; /* < 0: unknown */
    const char *currency;
    const char *tracking_number;
    const char *reason; /* cancellation or decline reason */
} nt_facts_t;

/* A rendered notification, owned (nt_message_release). */
typedef struct nt_message {
    char *subject;
    char *text; /* the e-mail body, LF line ends */
    char *sms;  /* one short line */
} nt_message_t;

void nt_render(nt_kind_t kind, const nt_facts_t *facts, nt_message_t *out);
void nt_message_release(nt_message_t *m);

/* "12.34 EUR" from minor units and an ISO-4217 code (2 decimals, or 0 for JPY/KRW) into out. */
void nt_money_format(long long minor, const char *currency, char *out, size_t cap);
#define NT_KEY_LEN 37 /* a UUID and its NUL */

/* The key of the notification of kind that the event event_id (borrowed) triggers: a name-based
 * UUID (version 5) of (kind, event_id), the same at every attempt and on every replica. It is the
 * SMS webhook's Idempotency-Key and the local part of the e-mail's Message-ID, so a receiver can
 * fold a resend. */
void nt_notification_key(const char *event_id, nt_kind_t kind, char out[NT_KEY_LEN]);
/* The Message-ID of the e-mail of that notification, "<key@eventshop.local>", into out. */
void nt_message_id(const char *key, char *out, size_t cap);
/* Whether s may go into a mail header: printable, no CR or LF, at most 254 bytes. */
bool nt_header_safe(const char *s);
/* The whole message (headers, blank line, body), CRLF line ends, owned; date_ms gives the Date
 * header (UTC). NULL if from or to is not header-safe. */
char *nt_email_build(const char *from, const char *to, const nt_message_t *m,
                     const char *message_id, long long date_ms);

#endif
