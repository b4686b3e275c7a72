#include "payments.h"
#include <criterion/criterion.h>

Test(payments_projection, maps_every_event_to_its_status)
{
    cr_assert_str_eq(payments_status_of("PaymentRequested"), "requested");
    cr_assert_str_eq(payments_status_of("PaymentCaptured"), "captured");
    cr_assert_str_eq(payments_status_of("PaymentDeclined"), "declined");
    cr_assert_str_eq(payments_status_of("PaymentRefundRequested"), "refund_requested");
    cr_assert_str_eq(payments_status_of("PaymentRefunded"), "refunded");
    cr_assert_null(payments_status_of("StockReserved"));
    cr_assert_null(payments_status_of(NULL));
}

Test(payments_projection, is_the_payments_context_projection)
{
    cr_assert_eq(pj_projection_find("payments", NULL), &payments_payments_projection);
    cr_assert_str_eq(payments_payments_projection.tables[0], "payments");
    cr_assert_null(payments_payments_projection.tables[1]);
}
