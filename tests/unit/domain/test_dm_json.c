#include "dm_json.h"
#include <criterion/criterion.h>

/* The readers replaced a copy in every decider, projection and subscriber: these are the answers
 * those copies gave, kept so that no call site changes meaning. */

static json_t *record(void)
{
    return json_pack("{s:s, s:I, s:f, s:n, s:b, s:s, s:s, s:s}", "sku", "AB-1", "quantity",
                     (json_int_t)7, "ratio", 0.5, "note", "flag", 1, "status", "PLACED",
                     "actor_role", "admin", "empty", "");
}

Test(dm_json, str_is_borrowed_or_null)
{
    json_t *r = record();
    cr_assert_str_eq(dm_str(r, "sku"), "AB-1");
    cr_assert_eq(dm_str(r, "sku"), json_string_value(json_object_get(r, "sku")), "borrowed");
    cr_assert_str_eq(dm_str(r, "empty"), "");
    cr_assert_null(dm_str(r, "missing"));
    cr_assert_null(dm_str(r, "quantity"), "an integer is not a string");
    cr_assert_null(dm_str(r, "note"), "null is not a string");
    cr_assert_null(dm_str(NULL, "sku"), "no record reads as a record without the field");
    json_t *arr = json_pack("[s]", "sku");
    cr_assert_null(dm_str(arr, "sku"), "an array has no fields");
    json_decref(arr);
    json_decref(r);
}

Test(dm_json, int_is_zero_unless_an_integer)
{
    json_t *r = record();
    cr_assert_eq(dm_int(r, "quantity"), 7);
    cr_assert_eq(dm_int(r, "ratio"), 0, "a real is not an integer");
    cr_assert_eq(dm_int(r, "sku"), 0);
    cr_assert_eq(dm_int(r, "flag"), 0, "a boolean is not an integer");
    cr_assert_eq(dm_int(r, "missing"), 0);
    cr_assert_eq(dm_int(NULL, "quantity"), 0);
    json_decref(r);
}

Test(dm_json, str_is_compares_exactly)
{
    json_t *r = record();
    cr_assert(dm_str_is(r, "sku", "AB-1"));
    cr_assert_not(dm_str_is(r, "sku", "ab-1"), "byte for byte");
    cr_assert_not(dm_str_is(r, "sku", "AB-"), "not a prefix");
    cr_assert_not(dm_str_is(r, "missing", ""));
    cr_assert_not(dm_str_is(r, "note", ""), "null is no string");
    cr_assert(dm_str_is(r, "empty", ""));
    json_decref(r);
}

Test(dm_json, status_and_admin)
{
    json_t *r = record();
    cr_assert(dm_is_status(r, "PLACED"));
    cr_assert_not(dm_is_status(r, "CANCELLED"));
    cr_assert_not(dm_is_status(NULL, "PLACED"), "no state has no status");
    cr_assert(dm_is_admin(r));
    json_t *vendor = json_pack("{s:s}", "actor_role", "vendor");
    cr_assert_not(dm_is_admin(vendor));
    json_t *none = json_pack("{s:n}", "actor_role");
    cr_assert_not(dm_is_admin(none));
    cr_assert_not(dm_is_admin(NULL));
    json_decref(none);
    json_decref(vendor);
    json_decref(r);
}

Test(dm_json, opt_reads_null_as_absent)
{
    json_t *r = record();
    cr_assert_eq(dm_opt(r, "sku"), json_object_get(r, "sku"), "borrowed");
    cr_assert_eq(dm_opt(r, "empty"), json_object_get(r, "empty"), "an empty string is a value");
    cr_assert_eq(dm_opt(r, "flag"), json_object_get(r, "flag"));
    cr_assert_null(dm_opt(r, "note"), "null reads as absent");
    cr_assert_null(dm_opt(r, "missing"));
    cr_assert_null(dm_opt(NULL, "sku"));
    json_decref(r);
}
