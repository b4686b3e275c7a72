#include "catalog.h"
#include "catalog_view.h"
#include <criterion/criterion.h>

static json_t *listed(const char *sku, const char *vendor)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "sku", sku, "vendor_id", vendor, "name", "Mug",
                     "category", "kitchen", "currency", "EUR");
}

Test(catalog_view, listing_records_owner_and_status)
{
    json_t *view = json_object();
    json_t *ev = listed("AB-1", "v1");
    catalog_view_fold(view, CATALOG_NS "ProductListed", ev);
    json_t *want = json_pack("{s:{s:{s:s, s:s, s:s}}}", "products", "AB-1", "vendor_id", "v1",
                             "status", "listed", "currency", "EUR");
    char *got = json_dumps(view, JSON_SORT_KEYS);
    cr_assert(json_equal(view, want), "got %s", got);
    cr_assert_str_eq(catalog_view_listed_owner(view, "AB-1"), "v1");
    cr_assert_null(catalog_view_listed_owner(view, "AB-2"));
    free(got);
    json_decref(want);
    json_decref(ev);
    json_decref(view);
}

Test(catalog_view, delisting_keeps_owner_but_not_listed)
{
    json_t *view = json_object();
    json_t *ev = listed("AB-1", "v1");
    json_t *del = json_pack("{s:s}", "sku", "AB-1");
    catalog_view_fold(view, CATALOG_NS "ProductListed", ev);
    catalog_view_fold(view, CATALOG_NS "ProductDelisted", del);
    const json_t *p = catalog_view_product(view, "AB-1");
    cr_assert_str_eq(json_string_value(json_object_get(p, "status")), "delisted");
    cr_assert_str_eq(json_string_value(json_object_get(p, "vendor_id")), "v1");
    cr_assert_null(catalog_view_listed_owner(view, "AB-1"));
    json_decref(ev);
    json_decref(del);
    json_decref(view);
}

Test(catalog_view, ignores_other_events_and_unknown_skus)
{
    json_t *view = json_object();
    json_t *del = json_pack("{s:s}", "sku", "NEVER");
    json_t *chg = json_pack("{s:s, s:s}", "sku", "AB-1", "name", "x");
    catalog_view_fold(view, CATALOG_NS "ProductDelisted", del);
    catalog_view_fold(view, CATALOG_NS "ProductDetailsChanged", chg);
    catalog_view_fold(view, "eventshop.other.Thing", chg);
    cr_assert_null(catalog_view_product(view, "NEVER"));
    cr_assert_null(catalog_view_product(view, "AB-1"));
    json_decref(del);
    json_decref(chg);
    json_decref(view);
}
