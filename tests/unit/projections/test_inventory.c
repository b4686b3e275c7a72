#include "inventory.h"
#include <criterion/criterion.h>

Test(inventory_projection, movement_kinds)
{
    cr_assert_str_eq(inventory_movement_kind("StockReceived"), "received");
    cr_assert_str_eq(inventory_movement_kind("StockAdjusted"), "adjusted");
    cr_assert_str_eq(inventory_movement_kind("StockReserved"), "reserved");
    cr_assert_str_eq(inventory_movement_kind("StockReservationRejected"), "rejected");
    cr_assert_str_eq(inventory_movement_kind("StockReleased"), "released");
    cr_assert_str_eq(inventory_movement_kind("StockCommitted"), "committed");
    cr_assert_null(inventory_movement_kind("ProductListed"));
    cr_assert_null(inventory_movement_kind(NULL));
}

Test(inventory_projection, is_in_the_table_of_projections)
{
    const pj_projection_t *p = pj_projection_find("inventory", NULL);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "inventory_stock");
    cr_assert_str_eq(p->tables[0], "stock");
    cr_assert_str_eq(p->tables[1], "stock_movements");
    cr_assert_null(p->tables[2]);
}
