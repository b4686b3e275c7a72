#include "es_uuid.h"
#include "notify_templates.h"
#include <criterion/criterion.h>
#include <string.h>

static nt_facts_t facts(void)
{
    return (nt_facts_t){.order_id = "ord-42",
                        .total_minor = 12345,
                        .currency = "EUR",
                        .tracking_number = "TC99",
                        .reason = "out_of_stock"};
}

Test(notify_templates, maps_events_to_kinds)
{
    json_t *ev = json_pack("{s:s}", "reason", "customer");
    cr_assert_eq(nt_kind_of("eventshop.orders.OrderConfirmed", ev), NT_ORDER_CONFIRMED);
    cr_assert_eq(nt_kind_of("eventshop.payments.PaymentDeclined", ev), NT_PAYMENT_DECLINED);
    cr_assert_eq(nt_kind_of("eventshop.orders.OrderCancelled", ev), NT_ORDER_CANCELLED);
    cr_assert_eq(nt_kind_of("eventshop.shipping.ShipmentDispatched", ev), NT_ORDER_SHIPPED);
    cr_assert_eq(nt_kind_of("eventshop.shipping.ShipmentDelivered", ev), NT_ORDER_DELIVERED);
    cr_assert_eq(nt_kind_of("eventshop.orders.OrderPlaced", ev), NT_NONE);
    cr_assert_eq(nt_kind_of("eventshop.shipping.ShipmentRequested", ev), NT_NONE);
    json_object_set_new(ev, "reason", json_string("payment_declined"));
    cr_assert_eq(nt_kind_of("eventshop.orders.OrderCancelled", ev), NT_NONE,
                 "the decline e-mail already tells the customer");
    json_decref(ev);
    cr_assert_str_eq(nt_kind_name(NT_ORDER_SHIPPED), "order_shipped");
}

Test(notify_templates, every_kind_names_the_order_and_total)
{
    nt_facts_t f = facts();
    for (nt_kind_t k = NT_ORDER_CONFIRMED; k < NT_NONE; k++) {
        nt_message_t m = {0};
        nt_render(k, &f, &m);
        cr_assert(strstr(m.subject, "ord-42"), "%s subject: %s", nt_kind_name(k), m.subject);
        cr_assert(strstr(m.text, "ord-42"), "%s text", nt_kind_name(k));
        cr_assert(strstr(m.text, "123.45 EUR"), "%s text: %s", nt_kind_name(k), m.text);
        cr_assert(strstr(m.sms, "ord-42"), "%s sms", nt_kind_name(k));
        cr_assert_null(strchr(m.sms, '\n'));
        nt_message_release(&m);
    }
}

Test(notify_templates, shipped_and_delivered_carry_the_tracking_number)
{
    nt_facts_t f = facts();
    nt_message_t m = {0};
    nt_render(NT_ORDER_SHIPPED, &f, &m);
    cr_assert(strstr(m.text, "Tracking number: TC99"));
    cr_assert(strstr(m.sms, "TC99"));
    nt_message_release(&m);
    nt_render(NT_ORDER_DELIVERED, &f, &m);
    cr_assert(strstr(m.text, "TC99"));
    nt_message_release(&m);
    nt_render(NT_ORDER_CANCELLED, &f, &m);
    cr_assert(strstr(m.text, "out of stock"), "%s", m.text);
    nt_message_release(&m);
}

Test(notify_templates, unknown_total_is_left_out)
{
    nt_facts_t f = facts();
    f.total_minor = -1;
    nt_message_t m = {0};
    nt_render(NT_ORDER_CONFIRMED, &f, &m);
    cr_assert_null(strstr(m.text, "total"), "%s", m.text);
    nt_message_release(&m);
}

Test(notify_templates, formats_money)
{
    char out[32];
    nt_money_format(5, "EUR", out, sizeof out);
    cr_assert_str_eq(out, "0.05 EUR");
    nt_money_format(100000, "USD", out, sizeof out);
    cr_assert_str_eq(out, "1000.00 USD");
    nt_money_format(1500, "JPY", out, sizeof out);
    cr_assert_str_eq(out, "1500 JPY");
}

Test(notify_templates, key_derives_from_the_event_and_the_template)
{
    const char *ev = "0b6c3f7e-1111-4222-8333-444455556666";
    char a[NT_KEY_LEN], b[NT_KEY_LEN];
    nt_notification_key(ev, NT_ORDER_CONFIRMED, a);
    nt_notification_key(ev, NT_ORDER_CONFIRMED, b);
    cr_assert_str_eq(a, b, "the same (event, template) must give the same key at every attempt");
    cr_assert(es_uuid_valid(a), "a UUID: '%s'", a);
    cr_assert_eq(a[14], '5', "a name-based (version 5) UUID: '%s'", a);
    nt_notification_key("0b6c3f7e-1111-4222-8333-444455556667", NT_ORDER_CONFIRMED, b);
    cr_assert_str_neq(a, b, "another event, another key");
    nt_notification_key(ev, NT_ORDER_SHIPPED, b);
    cr_assert_str_neq(a, b, "another template of the same event, another key");
    /* pinned: a changed derivation would resend every ambiguous e-mail under a new Message-ID
     * during a rolling upgrade, which receivers could no longer fold */
    cr_assert_str_eq(a, "86802557-55cb-5ac2-a093-c9293a1436c2", "derivation changed: '%s'", a);
}

Test(notify_templates, message_id_wraps_the_key)
{
    char id[96];
    nt_message_id("3c3e1a5b-3f56-5b4e-8d5e-6a1f3b2c9d10", id, sizeof id);
    cr_assert_str_eq(id, "<3c3e1a5b-3f56-5b4e-8d5e-6a1f3b2c9d10@eventshop.local>");
    cr_assert(nt_header_safe(id));
}

Test(notify_templates, builds_a_crlf_message_with_headers)
{
    nt_facts_t f = facts();
    nt_message_t m = {0};
    nt_render(NT_ORDER_CONFIRMED, &f, &m);
    char *msg =
        nt_email_build("shop <o@x.test>", "c@y.test", &m, "<e1@eventshop.local>", 1700000000000LL);
    cr_assert_not_null(msg);
    cr_assert(strstr(msg, "To: c@y.test\r\n"));
    cr_assert(strstr(msg, "Message-ID: <e1@eventshop.local>\r\n"));
    cr_assert(strstr(msg, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"), "%s", msg);
    cr_assert(strstr(msg, "\r\n\r\nHello,\r\n"));
    for (const char *p = strchr(msg, '\n'); p; p = strchr(p + 1, '\n'))
        cr_assert_eq(p[-1], '\r', "a bare LF in the message");
    free(msg);
    cr_assert_null(nt_email_build("o@x.test", "c@y.test\r\nBcc: evil@z.test", &m, "<e1@x>", 0),
                   "header injection must be refused");
    nt_message_release(&m);
}
